//! How many paths one path-manager core can manage at 1 s polling.
//!
//! Plain harness (`harness = false`, no criterion): builds cores with N = 1k, 10k and 100k paths
//! (maps of 2–4 paths in two groups), drives one virtual hour of 1 s polling through a fake
//! driver (checks answer at once, all up except a small fraction of failures; the kernel fails
//! a few paths by IO errors; fail / reinstate / switch actions update a fake kernel that reports
//! its status back), and measures wall time per virtual second. Prints medians over several runs
//! and the ratio against the N = 1k reference, and "paths manageable at 1 s polling within 10%
//! of one core" = N × (1 s / time per virtual s) × 0.1.
//!
//! Two configurations: `max_polling_interval 4s` (multipathd's default of 4 × polling_interval:
//! healthy paths are checked every 4 s) and `max_polling_interval 1s` (every path every second,
//! the worst case).
//!
//! Environment: `MANAGER_BENCH_VSECS` (virtual seconds per run, default 600: about two minutes in all;
//! 3600 for a full virtual hour),
//! `MANAGER_BENCH_RUNS` (runs per size, default 5 for 1k and 10k, 3 for 100k),
//! `MANAGER_BENCH_SIZES` (comma-separated N, default 1000,10000,100000).

use path_manager as manager;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use path_manager::settings::{Failback, ManagerSettings, NoPathRetry, SanPathErr, Setting};

use manager::{Action, CheckResult, Core, Input, KernelPath, MapSetup, PathRef, PathSetup};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `per_million` / 1e6.
    fn chance(&mut self, per_million: u64) -> bool {
        self.next() % 1_000_000 < per_million
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Probability that a check of a healthy leg finds it down (per million): 0.1%.
const LEG_FAILS_PPM: u64 = 1_000;
/// Probability that a check of a down leg finds it back (per million).
const LEG_RETURNS_PPM: u64 = 300_000;
/// IO errors (the kernel fails a path by itself) per virtual second, per million paths.
const IO_ERRORS_PER_MILLION_PATHS: usize = 100;

struct World {
    core: Core,
    /// Fake kernel: per map, path states and the active group.
    kernel: Vec<(Vec<KernelPath>, Option<usize>)>,
    /// Per map, per path: whether the leg is broken (the checker finds it down).
    broken: Vec<Vec<bool>>,
    paths: Vec<PathRef>,
    rng: Rng,
    queue: VecDeque<Input>,
    checks: u64,
    kernel_actions: u64,
}

fn settings(max_polling: Duration) -> ManagerSettings {
    ManagerSettings {
        polling_interval: Setting::builtin(Duration::from_secs(1)),
        max_polling_interval: Setting::builtin(max_polling),
        failback: Setting::builtin(Failback::Immediate),
        no_path_retry: Setting::builtin(NoPathRetry::Retries(3)),
        san_path_err: Setting::builtin(Some(SanPathErr {
            threshold: 2,
            forget_rate: 10,
            recovery_time: Duration::from_secs(5),
        })),
        ..ManagerSettings::default()
    }
}

fn build(n: usize, max_polling: Duration, seed: u64) -> World {
    let mut maps = Vec::new();
    let mut left = n;
    let mut size = 2;
    while left > 0 {
        // Sizes 2, 3, 4, 2, ...; the last map takes what is left (at least 2 if possible).
        let k = if left < size + 2 { left } else { size };
        let paths: Vec<PathSetup> = (0..k)
            .map(|i| PathSetup {
                leg: format!("m{}p{i}", maps.len()),
                prio: if i % 2 == 0 { 50 } else { 10 },
            })
            .collect();
        let groups = if k == 1 {
            vec![vec![0]]
        } else {
            vec![
                (0..k).filter(|i| i % 2 == 0).collect(),
                (0..k).filter(|i| i % 2 == 1).collect(),
            ]
        };
        maps.push(MapSetup {
            name: format!("m{}", maps.len()),
            settings: settings(max_polling),
            groups,
            paths,
        });
        left -= k;
        size = if size == 4 { 2 } else { size + 1 };
    }
    let kernel = maps
        .iter()
        .map(|m| {
            (
                vec![
                    KernelPath {
                        active: true,
                        fail_count: 0
                    };
                    m.paths.len()
                ],
                Some(0),
            )
        })
        .collect();
    let broken = maps.iter().map(|m| vec![false; m.paths.len()]).collect();
    let paths = maps
        .iter()
        .enumerate()
        .flat_map(|(m, setup)| (0..setup.paths.len()).map(move |p| PathRef { map: m, path: p }))
        .collect();
    let mut world = World {
        core: Core::new(maps, Duration::ZERO),
        kernel,
        broken,
        paths,
        rng: Rng(seed | 1),
        queue: VecDeque::new(),
        checks: 0,
        kernel_actions: 0,
    };
    for m in 0..world.kernel.len() {
        world.queue.push_back(world.status(m));
    }
    world.drain(Duration::ZERO);
    world
}

impl World {
    fn status(&self, m: usize) -> Input {
        Input::KernelStatus {
            map: m,
            paths: self.kernel[m].0.clone(),
            active_group: self.kernel[m].1,
        }
    }

    /// Feed queued inputs (and what their actions cause) until nothing is left.
    fn drain(&mut self, now: Duration) {
        while let Some(input) = self.queue.pop_front() {
            let actions = self.core.handle(now, input);
            self.apply(actions);
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::RunChecker { path } => {
                    self.checks += 1;
                    let broken = &mut self.broken[path.map][path.path];
                    if *broken {
                        *broken = !self.rng.chance(LEG_RETURNS_PPM);
                    } else {
                        *broken = self.rng.chance(LEG_FAILS_PPM);
                    }
                    let result = if *broken {
                        CheckResult::Down {
                            detail: "EIO".into(),
                        }
                    } else {
                        CheckResult::Up
                    };
                    self.queue.push_back(Input::CheckerResult {
                        path,
                        result,
                        latency: Duration::from_millis(1),
                    });
                }
                Action::FailPath { path, .. } => {
                    self.kernel_actions += 1;
                    let k = &mut self.kernel[path.map].0[path.path];
                    if k.active {
                        k.active = false;
                        k.fail_count += 1;
                    }
                    self.queue.push_back(self.status(path.map));
                }
                Action::ReinstatePath { path, .. } => {
                    self.kernel_actions += 1;
                    self.kernel[path.map].0[path.path].active = true;
                    self.queue.push_back(self.status(path.map));
                }
                Action::SwitchGroup { map, group, .. } => {
                    self.kernel_actions += 1;
                    self.kernel[map].1 = Some(group);
                    self.queue.push_back(self.status(map));
                }
                _ => {}
            }
        }
    }

    /// One virtual second at `now`: a few IO errors, then every due wakeup.
    fn second(&mut self, now: Duration) {
        let io_errors = self.paths.len() * IO_ERRORS_PER_MILLION_PATHS / 1_000_000;
        for _ in 0..io_errors {
            let p = self.paths[self.rng.below(self.paths.len())];
            let k = &mut self.kernel[p.map].0[p.path];
            if k.active {
                k.active = false;
                k.fail_count += 1;
                self.queue.push_back(self.status(p.map));
            }
        }
        self.drain(now);
        while self.core.next_wakeup().is_some_and(|w| w <= now) {
            let actions = self.core.handle(now, Input::Tick);
            self.apply(actions);
            self.drain(now);
        }
    }
}

struct Run {
    wall: Duration,
    checks: u64,
    kernel_actions: u64,
}

fn run(n: usize, max_polling: Duration, vsecs: u64, seed: u64) -> Run {
    let mut world = build(n, max_polling, seed);
    let start = Instant::now();
    for s in 0..vsecs {
        world.second(Duration::from_secs(s));
    }
    Run {
        wall: start.elapsed(),
        checks: world.checks,
        kernel_actions: world.kernel_actions,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this without it: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("manager_core bench: skipped (run it with `cargo bench -p path-manager --bench manager_core`)");
        return;
    }
    let vsecs: u64 = env("MANAGER_BENCH_VSECS").map_or(600, |v| v.parse().expect("VSECS"));
    let sizes: Vec<usize> = env("MANAGER_BENCH_SIZES").map_or(vec![1_000, 10_000, 100_000], |v| {
        v.split(',')
            .map(|s| s.trim().parse().expect("SIZES"))
            .collect()
    });
    let runs_for = |n: usize| -> usize {
        env("MANAGER_BENCH_RUNS").map_or(if n >= 100_000 { 3 } else { 5 }, |v| {
            v.parse().expect("RUNS")
        })
    };
    println!("manager core: {vsecs} virtual seconds of 1 s polling per run, medians of wall time");
    for max in [4, 1] {
        let max_polling = Duration::from_secs(max);
        println!();
        println!("polling_interval 1s, max_polling_interval {max}s");
        println!(
            "{:>8} {:>5} {:>13} {:>11} {:>11} {:>9} {:>9} {:>16}",
            "N",
            "runs",
            "µs/virtual s",
            "checks/vs",
            "actions/vs",
            "× 1k",
            "per path",
            "paths at 10%"
        );
        let mut reference: Option<(usize, f64)> = None;
        for &n in &sizes {
            let runs = runs_for(n);
            let mut walls = Vec::new();
            let mut last = None;
            for r in 0..runs {
                let result = run(n, max_polling, vsecs, 0x9e37_79b9 + r as u64);
                walls.push(result.wall.as_secs_f64() / vsecs as f64);
                last = Some(result);
            }
            walls.sort_by(f64::total_cmp);
            let median = walls[walls.len() / 2];
            let last = last.expect("at least one run");
            let (ref_n, ref_t) = *reference.get_or_insert((n, median));
            let ratio = median / ref_t;
            let per_path = ratio / (n as f64 / ref_n as f64);
            let manageable = n as f64 * (1.0 / median) * 0.1;
            println!(
                "{:>8} {:>5} {:>13.1} {:>11.0} {:>11.1} {:>9.2} {:>9.2} {:>16.0}",
                n,
                runs,
                median * 1e6,
                last.checks as f64 / vsecs as f64,
                last.kernel_actions as f64 / vsecs as f64,
                ratio,
                per_path,
                manageable
            );
        }
    }
    println!();
    println!("× 1k: median time per virtual second relative to the first size;");
    println!("actions/vs: fail / reinstate / switch actions per virtual second;");
    println!("per path: the same per path (1.00 = linear scaling);");
    println!("paths at 10%: paths manageable at 1 s polling within 10% of one core,");
    println!("  N × (1 s / time per virtual second) × 0.1.");
}
