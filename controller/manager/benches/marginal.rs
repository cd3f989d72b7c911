//! The marginal-path detector on the path-manager core: how fast it reaches a verdict against
//! a path's error rate, and how often it wrongly calls a healthy path marginal, for the window
//! rule (multipath-tools') and the sequential test (pathrig's `marginal_detector =
//! "sequential"`).
//!
//! Plain harness (`harness = false`): the sans-IO core driven on a virtual clock by a fake
//! driver. Error model: every sample read fails independently with probability r and is
//! answered after 1 ms (failed or not; no timeouts). Settings (printed with the table):
//! `marginal_path_err_rate_threshold` 10‰, `marginal_path_err_sample_time` 120 s (the least
//! multipathd accepts), `marginal_path_double_failed_time` 60 s, `marginal_path_err_recheck_gap_time`
//! 300 s, pathrig's defaults for the rest (bursts of 32 reads, 100 ms gap, 1 s read timeout,
//! sequential rates derived from the threshold: acceptable 2.5‰, marginal 20‰, alpha = beta =
//! 0.01), `path_checker none`, `polling_interval` 5 s.
//!
//! 1. Time to verdict: per error rate r, many triggers (a map of two paths; the kernel fails
//!    path a twice at t = 0), each run until the first verdict. Medians over the triggers.
//! 2. False alarms: maps of two healthy paths with a background error rate of 0.01 % per IO,
//!    for at least 10,000 virtual path-hours per detector. Trigger model: each path carries a
//!    workload of `MARGINAL_BENCH_IOPS` IOs/s (default 10) while the kernel has it active; each
//!    of those IOs fails with the background rate and makes the kernel fail the path (so kernel
//!    failures are a Poisson process of rate IOPS × 0.0001 per active path); the checker finds
//!    the path up at its next check and reinstates it. Two failures within 60 s start a sample,
//!    whose reads fail with the same background rate. A bad verdict is a false alarm.
//!
//! Environment: `MARGINAL_BENCH_TRIGGERS` (triggers per rate and detector, default 1000),
//! `MARGINAL_BENCH_PATH_HOURS` (per detector, default 10000), `MARGINAL_BENCH_IOPS` (workload
//! per path in the false-alarm model, default 10), `MARGINAL_BENCH_THREADS` (default: the
//! machine's cores). The default run takes about half a minute on two cores.

use path_manager as manager;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use path_manager::settings::{
    ManagerSettings, MarginalDetector, MarginalPath, MarginalSampling, PathChecker, Setting,
};

use manager::SampleOutcome;
use manager::{Action, Core, Input, KernelPath, MapSetup, PathRef, PathSetup, Reason};

const THRESHOLD_PERMILLE: u32 = 10;
const SAMPLE_TIME: Duration = Duration::from_secs(120);
const DOUBLE_FAILED_TIME: Duration = Duration::from_secs(60);
const RECHECK_GAP: Duration = Duration::from_secs(300);
const READ_LATENCY: Duration = Duration::from_millis(1);
const POLLING: Duration = Duration::from_secs(5);
/// Background error rate of a healthy path, per IO (0.01 %).
const BACKGROUND: f64 = 1e-4;
const RATES: [f64; 5] = [0.005, 0.01, 0.05, 0.20, 0.50];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Exponentially distributed with this mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

fn settings(detector: MarginalDetector) -> ManagerSettings {
    let mut s = ManagerSettings {
        path_checker: Setting::builtin(PathChecker::None),
        polling_interval: Setting::builtin(POLLING),
        max_polling_interval: Setting::builtin(POLLING * 4),
        marginal_path: Setting::builtin(Some(MarginalPath {
            double_failed_time: DOUBLE_FAILED_TIME,
            err_sample_time: SAMPLE_TIME,
            err_rate_threshold: THRESHOLD_PERMILLE,
            err_recheck_gap_time: RECHECK_GAP,
        })),
        ..ManagerSettings::default()
    };
    s.marginal_sampling.detector = Setting::builtin(detector);
    s
}

fn map(name: String, detector: MarginalDetector) -> MapSetup {
    MapSetup {
        name,
        settings: settings(detector),
        groups: vec![vec![0, 1]],
        paths: vec![
            PathSetup {
                leg: "a".into(),
                prio: 1,
            },
            PathSetup {
                leg: "b".into(),
                prio: 1,
            },
        ],
    }
}

/// What the fake driver has scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A sample read's answer.
    Answer { map: u32, path: u32, error: bool },
    /// A workload IO on the path fails (the kernel fails the path if it has it active).
    IoError { map: u32, path: u32 },
}

/// A verdict seen in the actions.
struct Verdict {
    at: Duration,
    marginal: bool,
    reads: u32,
}

/// A fake driver: a kernel (path states), sample reads failing with a per-path probability,
/// and workload IO errors.
struct Driver {
    core: Core,
    now: Duration,
    kernel: Vec<Vec<KernelPath>>,
    /// Error probability of a sample read, per map and path.
    error_rate: Vec<[f64; 2]>,
    /// Workload IO errors per second while active (0: none).
    io_error_rate: f64,
    queue: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
    rng: Rng,
    verdicts: Vec<Verdict>,
    triggers: u64,
    kernel_failures: u64,
}

impl Driver {
    fn new(
        maps: Vec<MapSetup>,
        error_rate: Vec<[f64; 2]>,
        io_error_rate: f64,
        seed: u64,
    ) -> Driver {
        let n = maps.len();
        let mut d = Driver {
            core: Core::new(maps, Duration::ZERO),
            now: Duration::ZERO,
            kernel: vec![
                vec![
                    KernelPath {
                        active: true,
                        fail_count: 0
                    };
                    2
                ];
                n
            ],
            error_rate,
            io_error_rate,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            verdicts: Vec::new(),
            triggers: 0,
            kernel_failures: 0,
        };
        for m in 0..n {
            d.status(m);
            if io_error_rate > 0.0 {
                for p in 0..2 {
                    d.schedule_io_error(m, p);
                }
            }
        }
        d
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn schedule_io_error(&mut self, m: usize, p: usize) {
        let after = self.rng.exp(1.0 / self.io_error_rate);
        let at = self.now + Duration::from_secs_f64(after);
        self.push(
            at,
            Event::IoError {
                map: m as u32,
                path: p as u32,
            },
        );
    }

    fn status(&mut self, m: usize) {
        let input = Input::KernelStatus {
            map: m,
            paths: self.kernel[m].clone(),
            active_group: Some(0),
        };
        self.feed(input);
    }

    fn kernel_fails(&mut self, m: usize, p: usize, times: u32) {
        let k = &mut self.kernel[m][p];
        k.active = false;
        k.fail_count += times;
        self.kernel_failures += u64::from(times);
        self.status(m);
    }

    fn feed(&mut self, input: Input) {
        let actions = self.core.handle(self.now, input);
        let mut changed: Vec<usize> = Vec::new();
        for action in actions {
            match action {
                Action::SampleIo { path, count, .. } => {
                    let rate = self.error_rate[path.map][path.path];
                    for _ in 0..count {
                        let error = self.rng.chance(rate);
                        self.push(
                            self.now + READ_LATENCY,
                            Event::Answer {
                                map: path.map as u32,
                                path: path.path as u32,
                                error,
                            },
                        );
                    }
                }
                Action::FailPath { path, .. } => {
                    let k = &mut self.kernel[path.map][path.path];
                    if k.active {
                        k.active = false;
                        k.fail_count += 1;
                    }
                    changed.push(path.map);
                }
                Action::ReinstatePath { path, reason } => {
                    self.kernel[path.map][path.path].active = true;
                    self.verdict(&reason);
                    changed.push(path.map);
                }
                Action::Note { reason, .. } => {
                    self.verdict(&reason);
                }
                _ => {}
            }
        }
        changed.dedup();
        for m in changed {
            self.status(m);
        }
    }

    fn verdict(&mut self, reason: &Reason) {
        let (marginal, evidence) = match reason {
            Reason::MarginalGood { evidence, .. } => (false, evidence),
            Reason::MarginalBad { evidence, .. } => (true, evidence),
            Reason::MarginalTriggered { .. } | Reason::MarginalRecheck { .. } => {
                self.triggers += 1;
                return;
            }
            _ => return,
        };
        self.verdicts.push(Verdict {
            at: self.now,
            marginal,
            reads: evidence.answered,
        });
    }

    /// Runs until `end`, or until `stop` says so.
    fn run(&mut self, end: Duration, stop: impl Fn(&Driver) -> bool) {
        loop {
            let wake = self.core.next_wakeup();
            let event = self.queue.peek().map(|e| (e.0).0);
            let Some(next) = [wake, event].into_iter().flatten().min() else {
                break;
            };
            if next > end || stop(self) {
                break;
            }
            self.now = self.now.max(next);
            if event == Some(next) {
                let Reverse((_, _, event)) = self.queue.pop().expect("peeked");
                match event {
                    Event::Answer { map, path, error } => {
                        let outcome = if error {
                            SampleOutcome::Error {
                                detail: "EIO".into(),
                            }
                        } else {
                            SampleOutcome::Ok
                        };
                        self.feed(Input::SampleResult {
                            path: PathRef {
                                map: map as usize,
                                path: path as usize,
                            },
                            outcome,
                            latency: READ_LATENCY,
                        });
                    }
                    Event::IoError { map, path } => {
                        let (m, p) = (map as usize, path as usize);
                        if self.kernel[m][p].active {
                            self.kernel_fails(m, p, 1);
                        }
                        self.schedule_io_error(m, p);
                    }
                }
            } else {
                self.feed(Input::Tick);
            }
        }
    }
}

/// One trigger at error rate `r`: (marginal, time to verdict, reads).
fn one_trigger(detector: MarginalDetector, r: f64, seed: u64) -> (bool, Duration, u32) {
    let mut d = Driver::new(
        vec![map("m".into(), detector)],
        vec![[r, BACKGROUND]],
        0.0,
        seed,
    );
    // The kernel fails a twice at once: sampled from t = 0.
    d.kernel_fails(0, 0, 2);
    assert_eq!(d.triggers, 1, "the double failure triggers sampling");
    d.run(SAMPLE_TIME * 2, |d| !d.verdicts.is_empty());
    let v = d
        .verdicts
        .first()
        .expect("a verdict within the sample time");
    (v.marginal, v.at, v.reads)
}

struct RateRow {
    marginal_share: f64,
    median_time: Duration,
    median_time_marginal: Option<Duration>,
    median_reads: u32,
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> Option<T> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn rate_row(detector: MarginalDetector, r: f64, triggers: u64, seed: u64) -> RateRow {
    let runs: Vec<(bool, Duration, u32)> = (0..triggers)
        .map(|i| one_trigger(detector, r, seed * 1_000_003 + i))
        .collect();
    let marginal = runs.iter().filter(|r| r.0).count();
    RateRow {
        marginal_share: marginal as f64 / runs.len() as f64,
        median_time: median(runs.iter().map(|r| r.1).collect()).unwrap_or_default(),
        median_time_marginal: median(runs.iter().filter(|r| r.0).map(|r| r.1).collect()),
        median_reads: median(runs.iter().map(|r| r.2).collect()).unwrap_or_default(),
    }
}

#[derive(Default, Clone, Copy)]
struct Alarms {
    path_hours: f64,
    kernel_failures: u64,
    samples: u64,
    false_alarms: u64,
}

/// `maps` maps of two healthy paths for `hours` virtual hours.
fn healthy_paths(
    detector: MarginalDetector,
    maps: usize,
    hours: f64,
    iops: f64,
    seed: u64,
) -> Alarms {
    let setups = (0..maps).map(|i| map(format!("m{i}"), detector)).collect();
    let mut d = Driver::new(
        setups,
        vec![[BACKGROUND, BACKGROUND]; maps],
        iops * BACKGROUND,
        seed,
    );
    d.run(Duration::from_secs_f64(hours * 3600.0), |_| false);
    Alarms {
        path_hours: maps as f64 * 2.0 * hours,
        kernel_failures: d.kernel_failures,
        samples: d.triggers,
        false_alarms: d.verdicts.iter().filter(|v| v.marginal).count() as u64,
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.0} ms", s * 1000.0)
    }
}

enum Job {
    Rate(usize, MarginalDetector, f64),
    Healthy(usize, MarginalDetector, u64),
}

enum Done {
    Rate(usize, MarginalDetector, RateRow),
    Healthy(MarginalDetector, Alarms),
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "marginal bench: skipped (run it with `cargo bench -p path-manager --bench marginal`)"
        );
        return;
    }
    let started = Instant::now();
    let triggers: u64 = env("MARGINAL_BENCH_TRIGGERS", 1000);
    let path_hours: f64 = env("MARGINAL_BENCH_PATH_HOURS", 10_000.0);
    let iops: f64 = env("MARGINAL_BENCH_IOPS", 10.0);
    let threads: usize = env(
        "MARGINAL_BENCH_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    // False alarms: chunks of 50 maps (100 paths) for 10 virtual hours = 1000 path-hours each.
    let chunk_maps = 50usize;
    let chunk_hours = 10.0;
    let chunks = (path_hours / (chunk_maps as f64 * 2.0 * chunk_hours))
        .ceil()
        .max(1.0) as u64;

    let detectors = [MarginalDetector::Window, MarginalDetector::Sequential];
    let mut jobs = Vec::new();
    for (i, &r) in RATES.iter().enumerate() {
        jobs.push(Job::Rate(i, MarginalDetector::Window, r));
    }
    for c in 0..chunks {
        for det in detectors {
            jobs.push(Job::Healthy(chunk_maps, det, c));
        }
    }
    for (i, &r) in RATES.iter().enumerate() {
        jobs.push(Job::Rate(i, MarginalDetector::Sequential, r));
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let result = match *job {
                    Job::Rate(k, det, r) => {
                        Done::Rate(k, det, rate_row(det, r, triggers, k as u64 + 1))
                    }
                    Job::Healthy(maps, det, c) => {
                        Done::Healthy(det, healthy_paths(det, maps, chunk_hours, iops, 7919 + c))
                    }
                };
                done.lock().unwrap().push(result);
            });
        }
    });
    let done = done.into_inner().unwrap();

    let sampling = MarginalSampling::default();
    let (good, bad) = sampling.sprt_rates(THRESHOLD_PERMILLE);
    println!("marginal-path detector on the core (virtual clock), window vs sequential");
    println!(
        "settings: threshold {THRESHOLD_PERMILLE}‰, sample time {}, double_failed_time {}, recheck gap {}; \
         bursts of {} reads, gap {}, read timeout {}; sequential: acceptable {}‰, marginal {}‰, \
         alpha {}, beta {}",
        secs(SAMPLE_TIME),
        secs(DOUBLE_FAILED_TIME),
        secs(RECHECK_GAP),
        sampling.sample_burst.value,
        secs(sampling.sample_gap.value),
        secs(sampling.io_timeout.value),
        good.permille_text(),
        bad.permille_text(),
        sampling.sprt_alpha.value.fraction_text(),
        sampling.sprt_beta.value.fraction_text(),
    );
    println!(
        "error model: each sample read fails independently with probability r, answered after {}",
        secs(READ_LATENCY)
    );
    println!();
    println!(
        "1. time to verdict after a trigger (share of marginal verdicts; medians of the time to the \
         verdict, of the time to a marginal verdict, and of the reads answered) over {triggers} \
         triggers per cell"
    );
    println!(
        "{:>6} | {:>22} | {:>40} | {:>10}",
        "", "window", "sequential", "seq/window"
    );
    println!(
        "{:>6} | {:>8} {:>8} {:>5} | {:>8} {:>8} {:>14} {:>5} | {:>10}",
        "r",
        "marginal",
        "verdict",
        "reads",
        "marginal",
        "verdict",
        "marginal after",
        "reads",
        "time"
    );
    for (k, &r) in RATES.iter().enumerate() {
        let find = |det: MarginalDetector| {
            done.iter().find_map(|d| match d {
                Done::Rate(i, dd, row) if *i == k && *dd == det => Some(row),
                _ => None,
            })
        };
        let (w, s) = (
            find(MarginalDetector::Window).unwrap(),
            find(MarginalDetector::Sequential).unwrap(),
        );
        println!(
            "{:>5.1}% | {:>7.1}% {:>8} {:>5} | {:>7.1}% {:>8} {:>14} {:>5} | {:>10.1e}",
            r * 100.0,
            w.marginal_share * 100.0,
            secs(w.median_time),
            w.median_reads,
            s.marginal_share * 100.0,
            secs(s.median_time),
            s.median_time_marginal.map_or("-".into(), secs),
            s.median_reads,
            s.median_time.as_secs_f64() / w.median_time.as_secs_f64(),
        );
    }
    println!();
    println!(
        "2. false alarms on healthy paths: background error rate {}% per IO, workload {iops} IOs/s \
         per active path (each failed IO fails the path in the kernel; the checker reinstates it \
         within {}); two failures within {} start a sample",
        BACKGROUND * 100.0,
        secs(POLLING),
        secs(DOUBLE_FAILED_TIME)
    );
    println!(
        "{:>10} | {:>10} {:>15} {:>8} {:>12} {:>22} {:>26}",
        "detector",
        "path-hours",
        "kernel failures",
        "samples",
        "false alarms",
        "per path-hour",
        "95% upper bound /path-hour"
    );
    let mut per_hour = Vec::new();
    for det in detectors {
        let mut a = Alarms::default();
        for d in &done {
            if let Done::Healthy(dd, x) = d {
                if *dd == det {
                    a.path_hours += x.path_hours;
                    a.kernel_failures += x.kernel_failures;
                    a.samples += x.samples;
                    a.false_alarms += x.false_alarms;
                }
            }
        }
        let rate = a.false_alarms as f64 / a.path_hours;
        // Poisson 95% upper bound: 3 / exposure for no event ("rule of three").
        let upper = match a.false_alarms {
            0 => 3.0 / a.path_hours,
            n => (n as f64 + 1.96 * (n as f64).sqrt() + 1.0) / a.path_hours,
        };
        per_hour.push(rate);
        println!(
            "{:>10} | {:>10.0} {:>15} {:>8} {:>12} {:>22.2e} {:>26.1e}",
            match det {
                MarginalDetector::Window => "window",
                MarginalDetector::Sequential => "sequential",
            },
            a.path_hours,
            a.kernel_failures,
            a.samples,
            a.false_alarms,
            rate,
            upper
        );
    }
    let ratio = if per_hour[0] > 0.0 {
        format!("{:.2}", per_hour[1] / per_hour[0])
    } else if per_hour[1] == 0.0 {
        "- (no false alarm with either)".into()
    } else {
        "∞ (none with the window rule)".into()
    };
    println!("false alarms per path-hour, sequential/window: {ratio}");
    println!();
    println!(
        "wall time: {:.1} s on {threads} threads",
        started.elapsed().as_secs_f64()
    );
}
