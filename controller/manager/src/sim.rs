//! A fake driver for the core on a virtual clock, for the core's tests and the snapshot tests
//! of its action logs (feature `sim`).
//!
//! [`Sim`] owns a fake kernel (path states, fail counts, the active group, switching groups by
//! itself when the active one has no path, like dm-multipath on the next IO) and a fake checker
//! (per path: what it answers and after how long). It feeds the core `KernelStatus` after every
//! kernel change, `CheckerResult` when a check's latency is over and `Tick` when the core's
//! wakeup is due, and records every action with its time. The scenario builders at the end
//! (`a_fails_and_returns`, `all_fail`, `damped`, `marginal`, ...) are shared by both.
//!
//! Unless a test says otherwise: polling_interval 1s, max_polling_interval 4s, checks answer
//! after 10ms, so a path's checks start at 0, 1, 3, 7, 11, 15, ... and act at +10ms.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::settings::{
    Failback, ManagerSettings, MarginalDetector, MarginalPath, NoPathRetry, SanPathErr, Setting,
};
use crate::*;

/// Seconds (with millisecond precision) as a Duration.
pub fn t(secs: f64) -> Duration {
    Duration::from_millis((secs * 1000.0).round() as u64)
}

pub fn settings(f: impl FnOnce(&mut ManagerSettings)) -> ManagerSettings {
    let mut s = ManagerSettings {
        polling_interval: Setting::builtin(t(1.0)),
        max_polling_interval: Setting::builtin(t(4.0)),
        ..ManagerSettings::default()
    };
    f(&mut s);
    s
}

pub fn path(leg: &str, prio: u32) -> PathSetup {
    PathSetup {
        leg: leg.into(),
        prio,
    }
}

/// Two paths in two groups: a (prio 50, group 0) and b (prio 10, group 1).
pub fn failover(s: ManagerSettings) -> MapSetup {
    MapSetup {
        name: "m".into(),
        settings: s,
        groups: vec![vec![0], vec![1]],
        paths: vec![path("a", 50), path("b", 10)],
    }
}

/// Four paths in two groups: a1, a2 (prio 50, group 0) and b1, b2 (prio 10, group 1).
pub fn two_by_two(s: ManagerSettings) -> MapSetup {
    MapSetup {
        name: "m".into(),
        settings: s,
        groups: vec![vec![0, 1], vec![2, 3]],
        paths: vec![
            path("a1", 50),
            path("a2", 50),
            path("b1", 10),
            path("b2", 10),
        ],
    }
}

pub const A: PathRef = PathRef { map: 0, path: 0 };
pub const B: PathRef = PathRef { map: 0, path: 1 };
pub const A1: PathRef = PathRef { map: 0, path: 0 };
pub const A2: PathRef = PathRef { map: 0, path: 1 };
pub const B1: PathRef = PathRef { map: 0, path: 2 };

pub fn down() -> CheckResult {
    CheckResult::Down {
        detail: "EIO".into(),
    }
}

pub struct FakeMap {
    pub paths: Vec<KernelPath>,
    pub groups: Vec<Vec<usize>>,
    pub active_group: Option<usize>,
    /// What each path's checker answers, and after how long.
    pub answers: Vec<(CheckResult, Duration)>,
    /// How each path answers sample reads.
    pub samplers: Vec<Sampler>,
}

/// A fake sample-read answerer: outcomes in a repeating pattern, or at random with a fixed error
/// rate (seeded), each after `latency` (a timeout after the burst's timeout); or no answers at
/// all (the test feeds them).
#[derive(Clone)]
pub enum Sampler {
    Pattern {
        outcomes: Vec<SampleOutcome>,
        next: usize,
    },
    Random {
        permille: u32,
        state: u64,
    },
    Silent,
}

impl Sampler {
    pub fn ok() -> Sampler {
        Sampler::Pattern {
            outcomes: vec![SampleOutcome::Ok],
            next: 0,
        }
    }

    pub fn pattern(outcomes: Vec<SampleOutcome>) -> Sampler {
        Sampler::Pattern { outcomes, next: 0 }
    }

    /// `errors` errors in every `of` reads.
    pub fn failing(errors: usize, of: usize) -> Sampler {
        let mut outcomes = vec![eio(); errors];
        outcomes.resize(of, SampleOutcome::Ok);
        Sampler::pattern(outcomes)
    }

    pub fn next_outcome(&mut self) -> Option<SampleOutcome> {
        match self {
            Sampler::Pattern { outcomes, next } => {
                let o = outcomes[*next % outcomes.len()].clone();
                *next += 1;
                Some(o)
            }
            Sampler::Random { permille, state } => {
                // xorshift64*
                *state ^= *state >> 12;
                *state ^= *state << 25;
                *state ^= *state >> 27;
                let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
                let u = x as f64 / (1u64 << 53) as f64;
                Some(if u < f64::from(*permille) / 1000.0 {
                    eio()
                } else {
                    SampleOutcome::Ok
                })
            }
            Sampler::Silent => None,
        }
    }
}

pub fn eio() -> SampleOutcome {
    SampleOutcome::Error {
        detail: "EIO".into(),
    }
}

pub struct Sim {
    pub core: Core,
    pub now: Duration,
    pub kernel: Vec<FakeMap>,
    /// Checker results on their way: (due, path, result, latency).
    pub in_flight: Vec<(Duration, PathRef, CheckResult, Duration)>,
    /// Sample answers on their way, in order of their due time: (due, sequence, path, outcome,
    /// latency).
    pub samples: BTreeSet<(Duration, u64, PathRef, SampleKey)>,
    pub sample_seq: u64,
    /// Sample latency of a read that is answered.
    pub sample_latency: Duration,
    /// Every action with the time it was returned.
    pub log: Vec<(Duration, Action)>,
    /// When each checker result was delivered.
    pub delivered: Vec<(Duration, PathRef)>,
}

impl Sim {
    pub fn new(maps: Vec<MapSetup>) -> Sim {
        let kernel = maps
            .iter()
            .map(|m| FakeMap {
                paths: vec![
                    KernelPath {
                        active: true,
                        fail_count: 0
                    };
                    m.paths.len()
                ],
                groups: m.groups.clone(),
                active_group: Some(0),
                answers: vec![(CheckResult::Up, t(0.01)); m.paths.len()],
                samplers: vec![Sampler::ok(); m.paths.len()],
            })
            .collect();
        let mut sim = Sim {
            core: Core::new(maps, Duration::ZERO),
            now: Duration::ZERO,
            kernel,
            in_flight: Vec::new(),
            samples: BTreeSet::new(),
            sample_seq: 0,
            sample_latency: t(0.01),
            log: Vec::new(),
            delivered: Vec::new(),
        };
        for m in 0..sim.kernel.len() {
            sim.send_status(m);
        }
        sim
    }

    pub fn one(map: MapSetup) -> Sim {
        Sim::new(vec![map])
    }

    /// Run the driver loop up to and including `end`, then stand at `end`.
    pub fn run_until(&mut self, end: Duration) {
        for _ in 0..10_000_000 {
            let wake = self.core.next_wakeup();
            let result = self.in_flight.iter().map(|r| r.0).min();
            let sample = self.samples.first().map(|s| s.0);
            let Some(next) = wake.into_iter().chain(result).chain(sample).min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if sample == Some(next) && result != Some(next) {
                let (_, _, path, key) = self.samples.pop_first().unwrap();
                let (outcome, latency) = key.outcome();
                self.feed(Input::SampleResult {
                    path,
                    outcome,
                    latency,
                });
            } else if result == Some(next) {
                let i = self.in_flight.iter().position(|r| r.0 == next).unwrap();
                let (_, path, result, latency) = self.in_flight.remove(i);
                self.delivered.push((self.now, path));
                self.feed(Input::CheckerResult {
                    path,
                    result,
                    latency,
                });
            } else {
                self.feed(Input::Tick);
            }
        }
        self.now = self.now.max(end);
    }

    pub fn at(&mut self, secs: f64) -> &mut Sim {
        self.run_until(t(secs));
        self
    }

    pub fn feed(&mut self, input: Input) {
        let actions = self.core.handle(self.now, input);
        let mut changed = BTreeSet::new();
        for action in actions {
            self.log.push((self.now, action.clone()));
            match action {
                Action::RunChecker { path } => {
                    let (result, latency) = self.kernel[path.map].answers[path.path].clone();
                    self.in_flight
                        .push((self.now + latency, path, result, latency));
                }
                Action::FailPath { path, .. } => {
                    let k = &mut self.kernel[path.map].paths[path.path];
                    if k.active {
                        k.active = false;
                        k.fail_count += 1;
                    }
                    changed.insert(path.map);
                }
                Action::ReinstatePath { path, .. } => {
                    self.kernel[path.map].paths[path.path].active = true;
                    changed.insert(path.map);
                }
                Action::SwitchGroup { map, group, .. } => {
                    self.kernel[map].active_group = Some(group);
                    changed.insert(map);
                }
                Action::SampleIo {
                    path,
                    count,
                    timeout,
                } => {
                    for _ in 0..count {
                        let Some(outcome) =
                            self.kernel[path.map].samplers[path.path].next_outcome()
                        else {
                            continue;
                        };
                        let (due, key) = match outcome {
                            SampleOutcome::TimedOut => (timeout, SampleKey::TimedOut(timeout)),
                            SampleOutcome::Ok => {
                                (self.sample_latency, SampleKey::Ok(self.sample_latency))
                            }
                            SampleOutcome::Error { .. } => {
                                (self.sample_latency, SampleKey::Error(self.sample_latency))
                            }
                        };
                        self.sample_seq += 1;
                        self.samples
                            .insert((self.now + due, self.sample_seq, path, key));
                    }
                }
                Action::Regroup { map, groups, .. } => {
                    // A table reload: new groups, every path active with a fresh counter, the
                    // kernel starting with the first group.
                    let k = &mut self.kernel[map];
                    k.groups = groups;
                    for p in &mut k.paths {
                        *p = KernelPath {
                            active: true,
                            fail_count: 0,
                        };
                    }
                    k.active_group = Some(0);
                    changed.insert(map);
                }
                _ => {}
            }
        }
        for m in changed {
            self.send_status(m);
        }
    }

    /// dm event: the kernel leaves a group without an active path, then reports its status.
    pub fn send_status(&mut self, m: usize) {
        let k = &mut self.kernel[m];
        let has_active = |g: usize| k.groups[g].iter().any(|&p| k.paths[p].active);
        if !k.active_group.is_some_and(has_active) {
            if let Some(g) = (0..k.groups.len()).find(|&g| has_active(g)) {
                k.active_group = Some(g);
            }
        }
        let input = Input::KernelStatus {
            map: m,
            paths: k.paths.clone(),
            active_group: k.active_group,
        };
        self.feed(input);
    }

    /// From now on the path's checker answers this.
    pub fn answer(&mut self, p: PathRef, result: CheckResult) -> &mut Sim {
        self.kernel[p.map].answers[p.path].0 = result;
        self
    }

    /// From now on the path answers sample reads like this.
    pub fn sampler(&mut self, p: PathRef, sampler: Sampler) -> &mut Sim {
        self.kernel[p.map].samplers[p.path] = sampler;
        self
    }

    /// The driver answers one sample read now.
    pub fn sample_answer(&mut self, p: PathRef, outcome: SampleOutcome) -> &mut Sim {
        self.feed(Input::SampleResult {
            path: p,
            outcome,
            latency: t(0.01),
        });
        self
    }

    pub fn latency(&mut self, p: PathRef, latency: Duration) -> &mut Sim {
        self.kernel[p.map].answers[p.path].1 = latency;
        self
    }

    /// The kernel fails the path by itself (an IO error).
    pub fn kernel_fails(&mut self, p: PathRef) -> &mut Sim {
        let k = &mut self.kernel[p.map].paths[p.path];
        if k.active {
            k.active = false;
            k.fail_count += 1;
        }
        self.send_status(p.map);
        self
    }

    /// A table reload: every path active again with fresh counters.
    pub fn kernel_reloads(&mut self, m: usize) -> &mut Sim {
        for k in &mut self.kernel[m].paths {
            *k = KernelPath {
                active: true,
                fail_count: 0,
            };
        }
        self.send_status(m);
        self
    }

    pub fn times(&self, pred: impl Fn(&Action) -> bool) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|(_, a)| pred(a))
            .map(|&(at, _)| at)
            .collect()
    }

    pub fn reasons(&self, pred: impl Fn(&Action) -> bool) -> Vec<String> {
        self.log
            .iter()
            .filter(|(_, a)| pred(a))
            .map(|(_, a)| a.reason().map(|r| r.to_string()).unwrap_or_default())
            .collect()
    }

    pub fn view(&self) -> MapView {
        self.core.map_view(0)
    }

    /// Every action but checker runs, one line each with its time and its description (the
    /// reason's wording), for snapshot tests.
    pub fn transcript(&self) -> String {
        let mut s = String::new();
        for (at, a) in &self.log {
            if !matches!(a, Action::RunChecker { .. }) {
                let _ = writeln!(s, "{:>8.3}  {}", at.as_secs_f64(), self.core.describe(a));
            }
        }
        s
    }

    /// The log, for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = String::from("\nactions:\n");
        for (at, a) in &self.log {
            if !matches!(a, Action::RunChecker { .. } | Action::SampleIo { .. }) {
                let _ = writeln!(s, "  {:>8.3}  {}", at.as_secs_f64(), self.core.describe(a));
            }
        }
        s
    }
}

/// A sample answer on its way (ordered, so that it fits in the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SampleKey {
    Ok(Duration),
    Error(Duration),
    TimedOut(Duration),
}

impl SampleKey {
    pub fn outcome(self) -> (SampleOutcome, Duration) {
        match self {
            SampleKey::Ok(l) => (SampleOutcome::Ok, l),
            SampleKey::Error(l) => (eio(), l),
            SampleKey::TimedOut(l) => (SampleOutcome::TimedOut, l),
        }
    }
}

pub fn checks(p: PathRef) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::RunChecker { path } if *path == p)
}
pub fn fails(p: PathRef) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::FailPath { path, .. } if *path == p)
}
pub fn reinstates(p: PathRef) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::ReinstatePath { path, .. } if *path == p)
}
pub fn any_fail(a: &Action) -> bool {
    matches!(a, Action::FailPath { .. })
}
pub fn switches(a: &Action) -> bool {
    matches!(a, Action::SwitchGroup { .. })
}
pub fn switches_to(g: usize) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::SwitchGroup { group, .. } if *group == g)
}
pub fn fail_if_no_path(a: &Action) -> bool {
    matches!(a, Action::FailIfNoPath { .. })
}
pub fn queue_if_no_path(a: &Action) -> bool {
    matches!(a, Action::QueueIfNoPath { .. })
}
pub fn note(pred: impl Fn(&Reason) -> bool) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::Note { reason, .. } if pred(reason))
}
pub fn in_window(times: Vec<Duration>, from: f64, to: f64) -> Vec<Duration> {
    times
        .into_iter()
        .filter(|&x| x >= t(from) && x <= t(to))
        .collect()
}
pub fn ts(secs: &[f64]) -> Vec<Duration> {
    secs.iter().map(|&s| t(s)).collect()
}

/// a fails at 3 (the kernel moves to group 2), comes back at 6.
pub fn a_fails_and_returns(failback: Failback) -> Sim {
    let mut sim = Sim::one(failover(settings(|s| {
        s.failback = Setting::builtin(failback);
    })));
    sim.at(2.5).answer(A, down());
    sim.at(5.5).answer(A, CheckResult::Up);
    sim
}

pub fn all_fail(retry: NoPathRetry) -> Sim {
    let mut sim = Sim::one(failover(settings(|s| {
        s.no_path_retry = Setting::builtin(retry);
    })));
    sim.at(2.5).answer(A, down()).answer(B, down());
    sim
}

pub fn damped(forget_rate: u32) -> Sim {
    Sim::one(failover(settings(|s| {
        s.san_path_err = Setting::builtin(Some(SanPathErr {
            threshold: 2,
            forget_rate,
            recovery_time: t(5.0),
        }));
    })))
}

/// The kernel fails a at 1.5, 3 and 4; the checker always finds it up, so it is reinstated at
/// 2.5 and 3.5, and comes back with 3 failures at 4.5.
pub fn flap_a(sim: &mut Sim) {
    sim.at(1.5).kernel_fails(A);
    sim.at(3.0).kernel_fails(A);
    sim.at(4.0).kernel_fails(A);
}

/// marginal_path_* on: double_failed_time 10s, sample time 2s, threshold 100‰, recheck gap 5s;
/// bursts of 10 reads, 100ms apart, timeout 500ms; sample reads answer after 10ms.
pub fn marginal(f: impl FnOnce(&mut ManagerSettings)) -> ManagerSettings {
    settings(|s| {
        s.marginal_path = Setting::builtin(Some(MarginalPath {
            double_failed_time: t(10.0),
            err_sample_time: t(2.0),
            err_rate_threshold: 100,
            err_recheck_gap_time: t(5.0),
        }));
        let m = &mut s.marginal_sampling;
        m.sample_burst = Setting::builtin(10);
        m.sample_gap = Setting::builtin(t(0.1));
        m.io_timeout = Setting::builtin(t(0.5));
        f(s);
    })
}

pub fn sequential(s: &mut ManagerSettings) {
    s.marginal_sampling.detector = Setting::builtin(MarginalDetector::Sequential);
}

/// The kernel fails a at 1.5 (the checker reinstates it at 2.51) and again at 4: 2.5s apart,
/// so a is held, and sampled from its next check, which finds it up (pulled to 5 by the
/// failure, its result at 5.01), to 7.01: bursts at 5.01, 5.12, ..., 6.44 (a burst at 6.55
/// could not be answered within the timeout before 7.01), 140 reads.
pub fn flaky_a(sim: &mut Sim) {
    sim.at(1.5).kernel_fails(A);
    sim.at(4.0).kernel_fails(A);
}

pub fn sample_ios(p: PathRef) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::SampleIo { path, .. } if *path == p)
}

pub fn regroups(a: &Action) -> bool {
    matches!(a, Action::Regroup { .. })
}

pub fn triggered(r: &Reason) -> bool {
    matches!(r, Reason::MarginalTriggered { .. })
}

pub fn verdict_bad(r: &Reason) -> bool {
    matches!(r, Reason::MarginalBad { .. })
}

/// The evidence of the (first) verdict in the log.
pub fn verdict_evidence(sim: &Sim) -> Option<(bool, SampleEvidence)> {
    sim.log.iter().find_map(|(_, a)| match a.reason()? {
        Reason::MarginalGood { evidence, .. } => Some((true, *evidence)),
        Reason::MarginalBad { evidence, .. } => Some((false, *evidence)),
        _ => None,
    })
}
