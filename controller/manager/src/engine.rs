//! The state machine: per-map and per-path state, one ordered set of timers, and the rules.
//!
//! Every input is handled in two steps: first the path-level facts are updated (a checker result,
//! the kernel's status), then the map is evaluated once (damping's last-path exception,
//! `no_path_retry`, failback), so that a map-level decision always sees the whole map.
//! Timers are one enum in one table ordered by due time (`timers`), so [`Core::next_wakeup`] is
//! exact and a tick costs O(log n) per due timer, whatever the number of paths.
//!
//! Marginal paths: a sample result costs O(1) (a counter, and for the sequential test one
//! multiply-add against precomputed logarithms); map-level rules run only when a verdict
//! changes a path's state.

use std::time::Duration;

use crate::settings::{
    Failback, MarginalDetector, MarginalPathgroups, NoPathRetry, PathChecker, Ppm, SanPathErr,
};

mod marginal;
mod timers;

use self::marginal::{MarginalCfg, Sprt};
use self::timers::{slot, Slot, Timer, Timers};
use super::reason::{Secs, SprtEvidence};
use super::{
    Action, CheckResult, CheckState, Decision, FailbackState, FailedBy, GroupView, HeldCheck,
    Input, KernelPath, MapSetup, MapView, PathRef, PathState, PathView, Reason, RetryState,
    SampleEvidence, SampleOutcome,
};

/// The path manager core. See the module documentation.
pub struct Core {
    maps: Vec<Map>,
    timers: Timers,
    now: Duration,
}

struct Map {
    name: String,
    checker: PathChecker,
    checker_timeout: Duration,
    polling: Duration,
    max_polling: Duration,
    failback_policy: Failback,
    no_path_retry: NoPathRetry,
    san_path_err: Option<SanPathErr>,
    /// `marginal_path_*` (with pathrig's sampling settings), when on.
    marginal: Option<MarginalCfg>,
    /// The table's path groups as the core last set them (0-based; see `own_groups`).
    groups: Vec<Vec<usize>>,
    /// The groups of the setup: each path's own group. Equal to `groups` unless
    /// `marginal_pathgroups on` moved marginal paths into an extra last group.
    own_groups: Vec<Vec<usize>>,
    /// That extra last group's index in `groups`.
    marginal_group: Option<usize>,
    paths: Vec<Path>,
    /// As the kernel last reported it, updated by the switches sent since.
    active_group: Option<usize>,
    status_seen: bool,
    failback: FailbackState,
    retry: RetryState,
    /// What the current input changed, for the map evaluation that ends it.
    scratch: Scratch,
}

#[derive(Default)]
struct Scratch {
    /// Something changed that map-level rules must look at.
    dirty: bool,
    /// The first path that went from usable to unusable.
    failed: Option<(usize, FailedBy)>,
    /// Paths that came back after the checker had found them down (for followover, which
    /// looks at them once the map's round of checks is complete).
    returned: Vec<usize>,
}

struct Path {
    leg: String,
    prio: u32,
    /// The path's group in the current table (its own group is found in `Map::own_groups`).
    group: usize,
    state: PathState,
    /// The kernel's view: the last status, with `active` updated by the fail / reinstate actions
    /// sent since (so a path is not failed twice while the dm event is on its way).
    kernel: KernelPath,
    check: CheckState,
    interval: Duration,
    /// Flap damping: kernel failures counted, and healthy checks left before one is forgotten.
    failures: u32,
    forget_left: u32,
    last_latency: Option<Duration>,
    /// `marginal_path_*`: the last kernel failure, while no second one has followed within
    /// `double_failed_time`.
    last_kernel_failure: Option<Duration>,
    /// `marginal_path_*`: sample reads of an ended sample may be answered until this time; a
    /// new sample starts no earlier, so that no late answer is counted in it.
    quiet_at: Duration,
}

impl Path {
    /// Active in the kernel and neither down nor held back by the core (a sampled or marginal
    /// path is active only in the marginal group, or briefly after a table reload).
    fn usable(&self) -> bool {
        self.kernel.active
            && !matches!(
                self.state,
                PathState::Down { .. } | PathState::Delayed { .. } | PathState::Triggered { .. }
            )
    }

    /// Active in the kernel and trusted: neither down, held back, sampled nor marginal.
    fn healthy(&self) -> bool {
        self.kernel.active && matches!(self.state, PathState::Unchecked | PathState::Up { .. })
    }

    /// Held by the marginal-path detector: triggered, sampled or marginal.
    fn held_for_marginal(&self) -> bool {
        self.state.held_check().is_some()
    }
}

impl Core {
    /// A core for these maps; `now` is the virtual time since the run's clock zero. The first
    /// check of every path is due at `now` (with `path_checker none`, one polling interval later).
    ///
    /// Panics if a map's groups do not hold every path exactly once.
    pub fn new(maps: Vec<MapSetup>, now: Duration) -> Core {
        let mut timers = Timers::default();
        let maps = maps
            .into_iter()
            .enumerate()
            .map(|(m, setup)| {
                let s = &setup.settings;
                // A zero interval would make the core check in a busy loop.
                let polling = s.polling_interval.value.max(Duration::from_millis(1));
                let max_polling = s.max_polling_interval.value.max(polling);
                let checker = s.path_checker.value;
                let mut group_of = vec![None; setup.paths.len()];
                for (g, members) in setup.groups.iter().enumerate() {
                    for &p in members {
                        assert!(
                            p < setup.paths.len() && group_of[p].is_none(),
                            "map {}: path {p} is out of range or in two groups",
                            setup.name
                        );
                        group_of[p] = Some(g);
                    }
                }
                let marginal = s.marginal_path.value.map(|mp| {
                    let ms = &s.marginal_sampling;
                    let (good, bad) = ms.sprt_rates(mp.err_rate_threshold);
                    let ms1 = Duration::from_millis(1);
                    MarginalCfg {
                        double_failed_time: mp.double_failed_time,
                        sample_time: mp.err_sample_time.max(ms1),
                        threshold: mp.err_rate_threshold,
                        recheck_gap: mp.err_recheck_gap_time.max(ms1),
                        burst: ms.sample_burst.value.max(1),
                        // A zero gap would send bursts in a busy loop on a virtual clock.
                        burst_gap: ms.sample_gap.value.max(ms1),
                        io_timeout: ms.io_timeout.value.max(ms1),
                        detector: ms.detector.value,
                        sprt: Sprt::new(good, bad, ms.sprt_alpha.value, ms.sprt_beta.value),
                        pathgroups: s.marginal_pathgroups.value == MarginalPathgroups::On,
                    }
                });
                let paths = setup
                    .paths
                    .into_iter()
                    .enumerate()
                    .map(|(p, ps)| {
                        let (state, first) = match checker {
                            PathChecker::None => (PathState::Up { since: now }, now + polling),
                            PathChecker::Directio | PathChecker::Tur => (PathState::Unchecked, now),
                        };
                        timers.set(Timer::Check(slot(m, p)), first);
                        let group = group_of[p].unwrap_or_else(|| {
                            panic!("map {}: path {p} is in no group", setup.name)
                        });
                        Path {
                            leg: ps.leg,
                            prio: ps.prio,
                            group,
                            state,
                            kernel: KernelPath {
                                active: true,
                                fail_count: 0,
                            },
                            check: CheckState::Due { at: first },
                            interval: polling,
                            failures: 0,
                            forget_left: 0,
                            last_latency: None,
                            last_kernel_failure: None,
                            quiet_at: Duration::ZERO,
                        }
                    })
                    .collect();
                Map {
                    name: setup.name,
                    checker,
                    checker_timeout: s.checker_timeout.value,
                    polling,
                    max_polling,
                    failback_policy: s.failback.value,
                    no_path_retry: s.no_path_retry.value,
                    san_path_err: s.san_path_err.value,
                    marginal,
                    own_groups: setup.groups.clone(),
                    groups: setup.groups,
                    marginal_group: None,
                    paths,
                    active_group: None,
                    status_seen: false,
                    failback: FailbackState::Idle,
                    retry: RetryState::Idle,
                    scratch: Scratch::default(),
                }
            })
            .collect();
        Core { maps, timers, now }
    }

    /// Handle one input at virtual time `now` (times before the last input's count as that).
    /// Inputs about unknown maps or paths are ignored.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let now = now.max(self.now);
        self.now = now;
        let mut out = Vec::new();
        match input {
            Input::Tick => self.on_tick(now, &mut out),
            Input::CheckerResult {
                path,
                result,
                latency,
            } => {
                let Some(map) = self.maps.get_mut(path.map) else {
                    return out;
                };
                if path.path >= map.paths.len() {
                    return out;
                }
                let check_at = match map.paths[path.path].check {
                    CheckState::Running { since } => since,
                    CheckState::Due { .. } => {
                        // Not asked for; take it, and count the next check from it.
                        self.timers.cancel(Timer::Check(slot(path.map, path.path)));
                        now.saturating_sub(latency)
                    }
                };
                map.on_result(
                    now,
                    path.map,
                    path.path,
                    check_at,
                    result,
                    Some(latency),
                    &mut self.timers,
                    &mut out,
                );
                map.evaluate(now, path.map, &mut self.timers, &mut out);
            }
            Input::KernelStatus {
                map: m,
                paths,
                active_group,
            } => {
                let Some(map) = self.maps.get_mut(m) else {
                    return out;
                };
                map.on_status(now, m, &paths, active_group, &mut self.timers, &mut out);
                map.evaluate(now, m, &mut self.timers, &mut out);
            }
            Input::SampleResult {
                path,
                outcome,
                latency: _,
            } => {
                let Some(map) = self.maps.get_mut(path.map) else {
                    return out;
                };
                if path.path >= map.paths.len() {
                    return out;
                }
                map.on_sample_result(
                    now,
                    path.map,
                    path.path,
                    &outcome,
                    &mut self.timers,
                    &mut out,
                );
                map.evaluate(now, path.map, &mut self.timers, &mut out);
            }
        }
        out
    }

    /// The earliest time the core needs a [`Input::Tick`] (a check due, a countdown running out);
    /// `None` when nothing is scheduled. May be at or before the last input's time: tick at once.
    pub fn next_wakeup(&self) -> Option<Duration> {
        self.timers.next_deadline()
    }

    // The report reads whole maps through `map_view`; the tests look at single paths.
    #[cfg(test)]
    /// The core's view of a path. Panics on an unknown path.
    pub fn path_state(&self, path: PathRef) -> &PathState {
        &self.maps[path.map].paths[path.path].state
    }

    /// What the report shows of a map. Panics on an unknown map.
    pub fn map_view(&self, map: usize) -> MapView {
        let mp = &self.maps[map];
        MapView {
            name: mp.name.clone(),
            paths: mp
                .paths
                .iter()
                .map(|p| PathView {
                    leg: p.leg.clone(),
                    prio: p.prio,
                    group: p.group,
                    state: p.state.clone(),
                    kernel: p.kernel,
                    usable: p.usable(),
                    check: p.check,
                    interval: p.interval,
                    san_path_failures: p.failures,
                    last_kernel_failure: p.last_kernel_failure,
                    last_latency: p.last_latency,
                })
                .collect(),
            groups: (0..mp.groups.len())
                .map(|g| {
                    let (usable, prio) = mp.group_prio(g);
                    GroupView {
                        paths: mp.groups[g].clone(),
                        usable,
                        prio,
                        marginal: mp.marginal_group == Some(g),
                    }
                })
                .collect(),
            best_group: mp.best_group().map(|(g, _)| g),
            active_group: mp.active_group,
            failback: mp.failback,
            no_path_retry: mp.retry,
        }
    }

    /// Number of maps.
    pub fn maps(&self) -> usize {
        self.maps.len()
    }

    /// One line for the event log: "mpatha: fail_path a: checker directio: down (EIO)".
    /// Groups are shown 1-based, like in the reasons.
    pub fn describe(&self, action: &Action) -> String {
        let map = &self.maps[action.map()];
        let leg = |p: &PathRef| map.paths[p.path].leg.as_str();
        let name = &map.name;
        match action {
            Action::RunChecker { path } => format!("{name}: check {}", leg(path)),
            Action::FailPath { path, reason } => {
                format!("{name}: fail_path {}: {reason}", leg(path))
            }
            Action::ReinstatePath { path, reason } => {
                format!("{name}: reinstate_path {}: {reason}", leg(path))
            }
            Action::SwitchGroup { group, reason, .. } => {
                format!("{name}: switch_group {}: {reason}", group + 1)
            }
            Action::SampleIo {
                path,
                count,
                timeout,
            } => format!(
                "{name}: sample {}: {count} read{}, timeout {}",
                leg(path),
                if *count == 1 { "" } else { "s" },
                Secs(*timeout)
            ),
            Action::Regroup { groups, reason, .. } => {
                let marginal = map.marginal_group;
                let table: Vec<String> = groups
                    .iter()
                    .enumerate()
                    .map(|(g, members)| {
                        let legs: Vec<&str> =
                            members.iter().map(|&p| map.paths[p].leg.as_str()).collect();
                        let tag = if marginal == Some(g) && g + 1 == groups.len() {
                            " (marginal)"
                        } else {
                            ""
                        };
                        format!("{}{tag}: {}", g + 1, legs.join(" "))
                    })
                    .collect();
                format!("{name}: reload with groups {}: {reason}", table.join(", "))
            }
            Action::QueueIfNoPath { reason, .. } => format!("{name}: queue_if_no_path: {reason}"),
            Action::FailIfNoPath { reason, .. } => format!("{name}: fail_if_no_path: {reason}"),
            Action::Note {
                path: Some(p),
                reason,
                ..
            } => format!("{name}: {}: {reason}", map.paths[*p].leg),
            Action::Note {
                path: None, reason, ..
            } => format!("{name}: {reason}"),
        }
    }

    fn on_tick(&mut self, now: Duration, out: &mut Vec<Action>) {
        while let Some((at, timer)) = self.timers.expired(now) {
            match timer {
                Timer::Check(Slot { map, path }) => {
                    let (m, p) = (map as usize, path as usize);
                    let mp = &mut self.maps[m];
                    mp.paths[p].check = CheckState::Running { since: at };
                    match mp.checker {
                        PathChecker::Directio | PathChecker::Tur => out.push(Action::RunChecker {
                            path: PathRef { map: m, path: p },
                        }),
                        PathChecker::None => {
                            mp.on_result(
                                now,
                                m,
                                p,
                                at,
                                CheckResult::Up,
                                None,
                                &mut self.timers,
                                out,
                            );
                            mp.evaluate(now, m, &mut self.timers, out);
                        }
                    }
                }
                Timer::Delay(Slot { map, path }) => {
                    let m = map as usize;
                    self.maps[m].on_delay_over(now, m, path as usize, out);
                    self.maps[m].evaluate(now, m, &mut self.timers, out);
                }
                Timer::Failback(map) => {
                    let m = map as usize;
                    self.maps[m].on_failback_due(m, out);
                }
                Timer::Burst(Slot { map, path }) => {
                    let m = map as usize;
                    self.maps[m].send_burst(now, m, path as usize, &mut self.timers, out);
                }
                Timer::SampleEnd(Slot { map, path }) => {
                    let m = map as usize;
                    self.maps[m].on_sample_end(now, m, path as usize, &mut self.timers, out);
                    self.maps[m].evaluate(now, m, &mut self.timers, out);
                }
                Timer::Recheck(Slot { map, path }) => {
                    let m = map as usize;
                    self.maps[m].on_recheck(now, m, path as usize, &mut self.timers);
                }
                Timer::Retry(map) => {
                    let m = map as usize;
                    let mp = &mut self.maps[m];
                    if let (RetryState::Counting { .. }, NoPathRetry::Retries(retries)) =
                        (mp.retry, mp.no_path_retry)
                    {
                        mp.retry = RetryState::Failed { since: now };
                        out.push(Action::FailIfNoPath {
                            map: m,
                            reason: Reason::NoPathRetryExpired {
                                retries,
                                interval: mp.polling,
                            },
                        });
                    }
                }
            }
        }
    }
}

impl Map {
    /// A checker result (or, for `path_checker none`, a due check) for path `p`, whose check
    /// started at `check_at`.
    #[allow(clippy::too_many_arguments)]
    fn on_result(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        check_at: Duration,
        result: CheckResult,
        latency: Option<Duration>,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let here = PathRef { map: m, path: p };
        let checker = self.checker;
        self.paths[p].last_latency = latency;
        match result {
            CheckResult::Pending => {
                // No new state: keep the path as it is (and its interval) and look again soon.
                let at = now + crate::PENDING_RECHECK;
                self.paths[p].check = CheckState::Due { at };
                timers.set(Timer::Check(slot(m, p)), at);
                return;
            }
            CheckResult::Down { .. } | CheckResult::TimedOut => {
                let (detail, fail_reason) = match result {
                    CheckResult::Down { detail } => {
                        (detail.clone(), Reason::CheckerDown { checker, detail })
                    }
                    _ => (
                        "timed out".to_string(),
                        Reason::CheckerTimedOut {
                            checker,
                            timeout: self.checker_timeout,
                        },
                    ),
                };
                let path = &mut self.paths[p];
                path.interval = self.polling;
                if path.held_for_marginal() {
                    self.marginal_checker_down(m, p, detail, fail_reason, out);
                } else if let PathState::Down { since, detail: d } = &mut path.state {
                    // Still down: act only if the kernel has the path active (again).
                    *d = detail.clone();
                    if path.kernel.active {
                        path.kernel.active = false;
                        out.push(Action::FailPath {
                            path: here,
                            reason: Reason::CheckerStillDown {
                                checker,
                                detail,
                                since: *since,
                            },
                        });
                        self.scratch.dirty = true;
                    }
                } else {
                    let was_usable = path.usable();
                    if let PathState::Delayed { .. } = path.state {
                        timers.cancel(Timer::Delay(slot(m, p)));
                    }
                    path.state = PathState::Down {
                        since: now,
                        detail: detail.clone(),
                    };
                    if path.kernel.active {
                        path.kernel.active = false;
                        out.push(Action::FailPath {
                            path: here,
                            reason: fail_reason,
                        });
                    } else {
                        out.push(Action::Note {
                            map: m,
                            path: Some(p),
                            reason: Reason::CheckerDownAlreadyFailed { checker, detail },
                        });
                    }
                    if was_usable {
                        self.scratch.failed.get_or_insert((p, FailedBy::Checker));
                    }
                    self.scratch.dirty = true;
                }
            }
            // A standby (ghost) path is usable: the same rules as up.
            CheckResult::Up | CheckResult::Ghost => {
                let path = &self.paths[p];
                let down_since = match path.state {
                    PathState::Down { since, .. } => Some(since),
                    _ => None,
                };
                if matches!(path.state, PathState::Delayed { .. }) {
                    // Still up while held back: the recovery timer decides.
                } else if path.held_for_marginal() {
                    // The marginal-path detector decides, not the checker.
                    self.marginal_checker_up(now, m, p, timers, out);
                } else if !path.kernel.active {
                    self.on_up_kernel_failed(now, m, p, down_since, timers, out);
                } else if let Some(since) = down_since {
                    // Up again but the kernel never failed it (a failed fail_path).
                    let path = &mut self.paths[p];
                    path.state = PathState::Up { since: now };
                    path.interval = self.polling;
                    out.push(Action::Note {
                        map: m,
                        path: Some(p),
                        reason: Reason::CheckerUpAgainActive {
                            checker,
                            down_for: now.saturating_sub(since),
                        },
                    });
                    self.scratch.returned.push(p);
                    self.scratch.dirty = true;
                } else {
                    let path = &mut self.paths[p];
                    if path.state == PathState::Unchecked {
                        path.state = PathState::Up { since: now };
                        path.interval = self.polling;
                    } else {
                        // Healthy: forget a counted failure now and then, check less often.
                        if let (Some(s), true) = (self.san_path_err, path.failures > 0) {
                            path.forget_left = path.forget_left.saturating_sub(1);
                            if path.forget_left == 0 {
                                path.failures -= 1;
                                path.forget_left = s.forget_rate;
                            }
                        }
                        path.interval = (path.interval * 2).min(self.max_polling);
                    }
                }
            }
        }
        let path = &mut self.paths[p];
        let at = (check_at + path.interval).max(now);
        path.check = CheckState::Due { at };
        timers.set(Timer::Check(slot(m, p)), at);
    }

    /// The checker finds up a path the kernel has failed: reinstate it, unless flap damping
    /// holds it back.
    fn on_up_kernel_failed(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        down_since: Option<Duration>,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let here = PathRef { map: m, path: p };
        let checker = self.checker;
        self.scratch.dirty = true;
        let held = self
            .san_path_err
            .filter(|s| self.paths[p].failures > s.threshold);
        let reason = match held {
            Some(s) => {
                let failures = self.paths[p].failures;
                let others_usable = self
                    .paths
                    .iter()
                    .enumerate()
                    .any(|(q, path)| q != p && path.usable());
                if others_usable {
                    let reason = Reason::DampingHeld {
                        failures,
                        threshold: s.threshold,
                        recovery: s.recovery_time,
                    };
                    let until = now + s.recovery_time;
                    let path = &mut self.paths[p];
                    path.state = PathState::Delayed {
                        since: now,
                        until,
                        reason: reason.clone(),
                        after_down: down_since.is_some(),
                    };
                    path.interval = self.polling;
                    timers.set(Timer::Delay(slot(m, p)), until);
                    out.push(Action::Note {
                        map: m,
                        path: Some(p),
                        reason,
                    });
                    return;
                }
                self.paths[p].failures = 0;
                Reason::DampingLastPath {
                    failures,
                    threshold: s.threshold,
                }
            }
            None => match down_since {
                Some(since) => Reason::CheckerUpAgain {
                    checker,
                    down_for: now.saturating_sub(since),
                },
                None => Reason::CheckerUpKernelFailed { checker },
            },
        };
        let path = &mut self.paths[p];
        if !matches!(path.state, PathState::Up { .. }) {
            path.state = PathState::Up { since: now };
        }
        path.kernel.active = true;
        path.interval = self.polling;
        out.push(Action::ReinstatePath { path: here, reason });
        if down_since.is_some() {
            self.scratch.returned.push(p);
        }
    }

    /// A held-back path's recovery time is over: reinstate it (the checker still finds it up,
    /// or it would be down).
    fn on_delay_over(&mut self, now: Duration, m: usize, p: usize, out: &mut Vec<Action>) {
        let Some(s) = self.san_path_err else { return };
        let path = &mut self.paths[p];
        let PathState::Delayed { after_down, .. } = path.state else {
            return;
        };
        path.state = PathState::Up { since: now };
        path.failures = 0;
        if !path.kernel.active {
            path.kernel.active = true;
            out.push(Action::ReinstatePath {
                path: PathRef { map: m, path: p },
                reason: Reason::DampingRecovered {
                    recovery: s.recovery_time,
                },
            });
        }
        if after_down {
            self.scratch.returned.push(p);
        }
        self.scratch.dirty = true;
    }

    /// The kernel's view after a dm event (or at start).
    fn on_status(
        &mut self,
        now: Duration,
        m: usize,
        status: &[KernelPath],
        active_group: Option<usize>,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let first = !self.status_seen;
        self.status_seen = true;
        self.scratch.dirty = true;
        self.active_group = active_group.filter(|&g| g < self.groups.len());
        // marginal_path: paths failed twice within double_failed_time (with the time between
        // the failures), and sampled / marginal paths a table reload re-activated.
        let mut triggered: Vec<(usize, Duration)> = Vec::new();
        let mut reactivated: Vec<usize> = Vec::new();
        for (p, new) in status.iter().enumerate().take(self.paths.len()) {
            let path = &mut self.paths[p];
            let old_count = path.kernel.fail_count;
            if let Some(s) = self.san_path_err {
                // The first status is the baseline; a smaller count means the map was reloaded.
                if !first && new.fail_count > path.kernel.fail_count {
                    if path.failures == 0 {
                        path.forget_left = s.forget_rate;
                    }
                    path.failures += new.fail_count - path.kernel.fail_count;
                }
            }
            path.kernel.fail_count = new.fail_count;
            let newly_failed = path.kernel.active && !new.active;
            // marginal_path: every failure counts, the kernel's own and those of the core's
            // fail_path (like io_err_stat_handle_pathfail, which sees every PATH_FAILED uevent;
            // dm-multipath sends one for a fail_path message too), except while the path is
            // held already. A smaller count means the table was reloaded.
            if let (
                Some(cfg),
                PathState::Unchecked | PathState::Up { .. } | PathState::Down { .. },
            ) = (&self.marginal, &path.state)
            {
                let failures = if first {
                    u32::from(newly_failed)
                } else if new.fail_count > old_count {
                    new.fail_count - old_count
                } else if newly_failed {
                    new.fail_count.max(1)
                } else {
                    0
                };
                if failures > 0 {
                    match path.last_kernel_failure {
                        _ if failures >= 2 => triggered.push((p, Duration::ZERO)),
                        Some(prev) if now.saturating_sub(prev) <= cfg.double_failed_time => {
                            triggered.push((p, now.saturating_sub(prev)));
                        }
                        _ => path.last_kernel_failure = Some(now),
                    }
                }
            }
            if newly_failed {
                // The kernel failed it by itself (an IO error, a trespass).
                let was_usable = path.usable();
                path.kernel.active = false;
                path.interval = self.polling;
                if let CheckState::Due { at } = path.check {
                    let soon = now + self.polling;
                    if at > soon {
                        timers.cancel(Timer::Check(slot(m, p)));
                        timers.set(Timer::Check(slot(m, p)), soon);
                        path.check = CheckState::Due { at: soon };
                    }
                }
                if was_usable {
                    self.scratch.failed.get_or_insert((p, FailedBy::Kernel));
                }
                out.push(Action::Note {
                    map: m,
                    path: Some(p),
                    reason: Reason::KernelFailed {
                        fail_count: new.fail_count,
                        recheck_within: self.polling,
                    },
                });
            } else if !path.kernel.active && new.active {
                // Active again without a reinstate from us (a table reload): keep the core's
                // decision for a path that is down or held back.
                let refail = match &path.state {
                    PathState::Down { since, detail } => Some(Reason::CheckerStillDown {
                        checker: self.checker,
                        detail: detail.clone(),
                        since: *since,
                    }),
                    PathState::Delayed { reason, .. } => Some(reason.clone()),
                    _ => None,
                };
                match refail {
                    Some(reason) => out.push(Action::FailPath {
                        path: PathRef { map: m, path: p },
                        reason,
                    }),
                    None => {
                        path.kernel.active = true;
                        let in_marginal_group = self.marginal_group == Some(path.group);
                        match path.state {
                            PathState::Triggered { .. } => reactivated.push(p),
                            PathState::Sampling { .. } | PathState::Marginal { .. }
                                if !in_marginal_group =>
                            {
                                reactivated.push(p)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // A re-activated held path stays in use only if no healthy path is.
        if !reactivated.is_empty() && self.paths.iter().any(Path::healthy) {
            for p in reactivated {
                let path = &mut self.paths[p];
                path.kernel.active = false;
                let marginal = matches!(path.state, PathState::Marginal { .. });
                out.push(Action::FailPath {
                    path: PathRef { map: m, path: p },
                    reason: Reason::MarginalKeptOut { marginal },
                });
            }
        }
        for (p, apart) in triggered {
            self.trigger(now, m, p, apart, out);
        }
    }

    // ---- marginal paths ----------------------------------------------------------------

    /// Average priority of a group's usable paths, with their number.
    fn group_prio(&self, g: usize) -> (usize, Option<u32>) {
        let (mut n, mut sum) = (0usize, 0u64);
        for &p in &self.groups[g] {
            let path = &self.paths[p];
            if path.usable() {
                n += 1;
                sum += u64::from(path.prio);
            }
        }
        (n, (n > 0).then(|| (sum / n as u64) as u32))
    }

    /// The best group and its priority: the highest priority among groups with a usable path,
    /// ties going to more usable paths, then to the earlier group (multipathd's
    /// select_path_group).
    /// With `marginal_pathgroups on`, the marginal group counts only when no other group has a
    /// usable path.
    fn best_group(&self) -> Option<(usize, u32)> {
        self.best_group_among(true)
            .or_else(|| self.best_group_among(false))
    }

    fn best_group_among(&self, skip_marginal: bool) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32, usize)> = None;
        for g in 0..self.groups.len() {
            if skip_marginal && self.marginal_group == Some(g) {
                continue;
            }
            let (n, Some(prio)) = self.group_prio(g) else {
                continue;
            };
            match best {
                Some((_, bp, bn)) if prio < bp || (prio == bp && n <= bn) => {}
                _ => best = Some((g, prio, n)),
            }
        }
        best.map(|(g, prio, _)| (g, prio))
    }

    /// Map-level rules, once per input that changed something.
    fn evaluate(&mut self, now: Duration, m: usize, timers: &mut Timers, out: &mut Vec<Action>) {
        if self.scratch.dirty {
            self.release_last_path(now, m, timers, out);
            self.no_path_retry(now, m, timers, out);
            self.failback(now, m, timers, out);
            self.scratch.dirty = false;
            self.scratch.failed = None;
        }
        if self.failback_policy != Failback::Followover {
            self.scratch.returned.clear();
        } else if !self.scratch.returned.is_empty()
            && !self
                .paths
                .iter()
                .any(|path| matches!(path.check, CheckState::Running { .. }))
        {
            // Like followover_should_failback, after the whole checker loop: once no check of
            // the map is running, so that paths coming back in the same round see each other.
            self.followover(m, out);
            self.scratch.returned.clear();
        }
    }

    /// Flap damping never holds back the last usable path: when no path is usable, reinstate
    /// the best held-back one at once.
    fn release_last_path(
        &mut self,
        now: Duration,
        m: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(s) = self.san_path_err else { return };
        if self.paths.iter().any(Path::usable) {
            return;
        }
        let held = self
            .paths
            .iter()
            .enumerate()
            .filter(|(_, path)| matches!(path.state, PathState::Delayed { .. }))
            .max_by_key(|&(q, path)| (path.prio, std::cmp::Reverse(q)))
            .map(|(q, _)| q);
        let Some(p) = held else { return };
        let path = &mut self.paths[p];
        let PathState::Delayed {
            until: _,
            after_down,
            ..
        } = path.state
        else {
            return;
        };
        timers.cancel(Timer::Delay(slot(m, p)));
        let failures = path.failures;
        path.state = PathState::Up { since: now };
        path.failures = 0;
        if !path.kernel.active {
            path.kernel.active = true;
            out.push(Action::ReinstatePath {
                path: PathRef { map: m, path: p },
                reason: Reason::DampingLastPath {
                    failures,
                    threshold: s.threshold,
                },
            });
        }
        if after_down {
            self.scratch.returned.push(p);
        }
    }

    /// `no_path_retry N`: count down while no path is usable, queue again when one is back.
    fn no_path_retry(
        &mut self,
        now: Duration,
        m: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let NoPathRetry::Retries(retries) = self.no_path_retry else {
            return;
        };
        let usable = self.paths.iter().position(Path::usable);
        match (self.retry, usable) {
            (RetryState::Idle, None) => {
                let until = now + self.polling * retries;
                self.retry = RetryState::Counting { since: now, until };
                timers.set(Timer::retry(m), until);
                out.push(Action::Note {
                    map: m,
                    path: None,
                    reason: Reason::NoPathRetryStarted {
                        retries,
                        interval: self.polling,
                    },
                });
            }
            (RetryState::Counting { since, until: _ }, Some(p)) => {
                timers.cancel(Timer::retry(m));
                self.retry = RetryState::Idle;
                out.push(Action::Note {
                    map: m,
                    path: Some(p),
                    reason: Reason::NoPathRetryStopped {
                        retries,
                        leg: self.paths[p].leg.clone(),
                        after: now.saturating_sub(since),
                    },
                });
            }
            (RetryState::Failed { .. }, Some(p)) => {
                self.retry = RetryState::Idle;
                out.push(Action::QueueIfNoPath {
                    map: m,
                    reason: Reason::PathBack {
                        leg: self.paths[p].leg.clone(),
                    },
                });
            }
            _ => {}
        }
    }

    fn switch(&mut self, m: usize, group: usize, reason: Reason, out: &mut Vec<Action>) {
        self.active_group = Some(group);
        out.push(Action::SwitchGroup {
            map: m,
            group,
            reason,
        });
    }

    /// `failback`: when to switch to the best group.
    fn failback(&mut self, now: Duration, m: usize, timers: &mut Timers, out: &mut Vec<Action>) {
        let best = self.best_group();
        // The best group, when it is not the active one. When the active group has no usable
        // path the kernel leaves it by itself (on the next IO), so that is no failback.
        let better = match (best, self.active_group) {
            (Some((g, prio)), Some(active)) if g != active && self.group_prio(active).0 > 0 => {
                Some((g, prio, active))
            }
            _ => None,
        };
        match self.failback_policy {
            Failback::Manual => {}
            Failback::Immediate => {
                if let Some((group, prio, active)) = better {
                    let reason = Reason::FailbackImmediate {
                        group,
                        prio,
                        active,
                    };
                    self.switch(m, group, reason, out);
                }
            }
            // Decided once the round of checks is complete (`evaluate`).
            Failback::Followover => {}
            Failback::Deferred(delay) => {
                if let FailbackState::Armed { .. } = self.failback {
                    let cancel = if let Some((p, by)) = self.scratch.failed {
                        Some((
                            Some(p),
                            Reason::FailbackDeferredCancelled {
                                delay,
                                leg: self.paths[p].leg.clone(),
                                by,
                            },
                        ))
                    } else if better.is_none() {
                        Some((
                            None,
                            Reason::FailbackDeferredDropped {
                                delay,
                                active: self.active_group,
                                best: best.map(|(g, _)| g),
                            },
                        ))
                    } else {
                        None
                    };
                    if let Some((path, reason)) = cancel {
                        timers.cancel(Timer::failback(m));
                        self.failback = FailbackState::Idle;
                        out.push(Action::Note {
                            map: m,
                            path,
                            reason,
                        });
                    }
                }
                // (Re-)arm while the best group is usable and not active: after a cancel
                // that means the countdown starts over from the failure.
                if let (FailbackState::Idle, Some((group, prio, active))) = (self.failback, better)
                {
                    let due = now + delay;
                    self.failback = FailbackState::Armed {
                        since: now,
                        due,
                        group,
                    };
                    timers.set(Timer::failback(m), due);
                    out.push(Action::Note {
                        map: m,
                        path: None,
                        reason: Reason::FailbackDeferredArmed {
                            delay,
                            group,
                            prio,
                            active,
                        },
                    });
                }
            }
        }
    }

    /// `failback followover` (do_followover_should_failback): a path of the best group came back
    /// while every other path of it was down according to the checker (a path the kernel failed
    /// while the checker finds it up, as in a trespass, does not count as down; a path held
    /// back after being down does).
    fn followover(&mut self, m: usize, out: &mut Vec<Action>) {
        let Some((group, prio)) = self.best_group() else {
            return;
        };
        let Some(active) = self.active_group else {
            return;
        };
        if group == active || self.group_prio(active).0 == 0 {
            return;
        }
        let back = self.scratch.returned.iter().copied().find(|&p| {
            self.paths[p].group == group
                && self.paths[p].usable()
                && self.groups[group]
                    .iter()
                    .all(|&q| q == p || self.paths[q].state.counts_as_down())
        });
        if let Some(p) = back {
            let reason = Reason::FailbackFollowover {
                leg: self.paths[p].leg.clone(),
                group,
                prio,
            };
            self.switch(m, group, reason, out);
        }
    }

    /// The deferred failback countdown ran out: switch if the best group is still better.
    fn on_failback_due(&mut self, m: usize, out: &mut Vec<Action>) {
        let (FailbackState::Armed { .. }, Failback::Deferred(delay)) =
            (self.failback, self.failback_policy)
        else {
            return;
        };
        self.failback = FailbackState::Idle;
        if let (Some((group, prio)), Some(active)) = (self.best_group(), self.active_group) {
            if group != active && self.group_prio(active).0 > 0 {
                let reason = Reason::FailbackDeferredExpired { delay, group, prio };
                self.switch(m, group, reason, out);
            }
        }
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("maps", &self.maps.len())
            .field("timers", &self.timers.len())
            .field("now", &Secs(self.now).to_string())
            .finish()
    }
}
