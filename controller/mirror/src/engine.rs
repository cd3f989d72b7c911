//! The monitor's state machine: per-map and per-leg state ([`LegState`], [`ResyncState`]), one
//! table of timers ([`Timer`]), and the rules that turn inputs into [`Action`]s.
//!
//! A leg's failure is acted on when its health character changes to a failing one (the kernel
//! raises an event the first time a leg gets each kind of error, and the character only gets
//! worse until a reload), and only if the leg is not already handled for that class of
//! failure. Map-level rules (the out-of-sync share of waiting legs, the end of a resync) run
//! after every status, once the legs are updated.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use crate::reason::describe_with;
use crate::{
    Action, ActionKind, AfterWindow, DeadPolicy, DifferPolicy, Health, Input, LegState, MapSetup,
    MirrorSettings, ReadFailurePolicy, Reason, ResyncState, ScanOutcome, StatusView,
    SyncFailurePolicy,
};

/// What a timer is for. All timers live in one table ([`Monitor::next_deadline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A waiting dead leg's window ends.
    TransientWindow { map: usize, leg: usize },
    /// A waiting or kept dead leg's next probe is due.
    Probe { map: usize, leg: usize },
    /// The next scan slice of a map is due.
    ScanNext { map: usize },
    /// A restarted resync's backoff is over: check its progress.
    ResyncRetry { map: usize },
}

/// Due times ordered, and each timer's due time (a timer is set at most once).
#[derive(Default)]
struct Timers {
    by_due: BTreeSet<(Duration, Timer)>,
    due_of: BTreeMap<Timer, Duration>,
}

impl Timers {
    fn set(&mut self, at: Duration, timer: Timer) {
        self.cancel(timer);
        self.by_due.insert((at, timer));
        self.due_of.insert(timer, at);
    }

    fn cancel(&mut self, timer: Timer) {
        if let Some(at) = self.due_of.remove(&timer) {
            self.by_due.remove(&(at, timer));
        }
    }

    fn next(&self) -> Option<Duration> {
        self.by_due.first().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: Duration) -> Option<Timer> {
        let (at, timer) = *self.by_due.first()?;
        if at > now {
            return None;
        }
        self.by_due.remove(&(at, timer));
        self.due_of.remove(&timer);
        Some(timer)
    }
}

/// The shortest time a periodic timer is re-armed after (guards unvalidated zero settings).
const MIN_PERIOD: Duration = Duration::from_millis(1);

struct Leg {
    name: String,
    state: LegState,
    /// The character of the last status (`None`: not in the table, or no status yet).
    health: Option<Health>,
}

struct Map {
    name: String,
    settings: MirrorSettings,
    legs: Vec<Leg>,
    status: Option<StatusView>,
    resync: ResyncState,
    scan_cursor: u64,
    scan_paused: bool,
}

/// The mirror monitor. See the crate documentation.
pub struct Monitor {
    maps: Vec<Map>,
    timers: Timers,
    now: Duration,
}

impl Monitor {
    /// A monitor for `maps` at time `now`. Every leg starts [`LegState::InSync`]; the first
    /// [`Input::Status`] of each map tells the truth. The settings are expected validated
    /// ([`MirrorSettings::validate`]); periods of zero are clamped to 1 ms.
    pub fn new(maps: Vec<MapSetup>, now: Duration) -> Monitor {
        let mut timers = Timers::default();
        let maps = maps
            .into_iter()
            .enumerate()
            .map(|(m, setup)| {
                if let Some(scan) = setup.settings.scan {
                    timers.set(
                        now + scan.interval.max(MIN_PERIOD),
                        Timer::ScanNext { map: m },
                    );
                }
                Map {
                    name: setup.name,
                    settings: setup.settings,
                    legs: setup
                        .legs
                        .into_iter()
                        .map(|name| Leg {
                            name,
                            state: LegState::InSync,
                            health: None,
                        })
                        .collect(),
                    status: None,
                    resync: ResyncState::Idle,
                    scan_cursor: 0,
                    scan_paused: false,
                }
            })
            .collect();
        Monitor { maps, timers, now }
    }

    /// The earliest time [`Monitor::handle_timeout`] has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.next()
    }

    /// Every pending timer, in due order.
    pub fn timers(&self) -> impl Iterator<Item = (Duration, Timer)> + '_ {
        self.timers.by_due.iter().copied()
    }

    pub fn leg_state(&self, map: usize, leg: usize) -> LegState {
        self.maps[map].legs[leg].state
    }

    pub fn resync_state(&self, map: usize) -> ResyncState {
        self.maps[map].resync
    }

    /// [`crate::describe`] with the setup's map and leg names.
    pub fn describe(&self, action: &Action) -> String {
        describe_with(action, &|m| self.maps[m].name.clone(), &|m, l| {
            format!("leg {}", self.maps[m].legs[l].name)
        })
    }

    /// Handles one input at time `now` (times never go back; an earlier `now` counts as the
    /// last one).
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        match input {
            Input::Status { map, status } => self.on_status(map, status, &mut out),
            Input::Tick => return self.handle_timeout(now),
            Input::ScanResult {
                map,
                leg,
                regions,
                outcome,
            } => self.on_scan_result(map, leg, regions, outcome, &mut out),
            Input::ReadFailures { map, leg, blocks } => {
                self.on_read_failures(map, leg, blocks, &mut out)
            }
            Input::ProbeResult { map, leg, ok } => self.on_probe(map, leg, ok, &mut out),
            Input::ActionDone { map, leg, kind } => self.on_done(map, leg, kind),
            Input::ActionFailed {
                map,
                leg,
                kind,
                detail,
            } => self.on_failed(map, leg, kind, detail, &mut out),
        }
        out
    }

    /// Runs every timer due at `now`, in due order.
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<Action> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        while let Some(timer) = self.timers.pop_due(self.now) {
            self.on_timer(timer, &mut out);
        }
        out
    }

    fn cancel_leg_timers(&mut self, map: usize, leg: usize) {
        self.timers.cancel(Timer::TransientWindow { map, leg });
        self.timers.cancel(Timer::Probe { map, leg });
    }

    fn on_status(&mut self, m: usize, status: StatusView, out: &mut Vec<Action>) {
        let now = self.now;
        for i in 0..self.maps[m].legs.len() {
            let new = status.legs.get(i).copied().flatten();
            let leg = &mut self.maps[m].legs[i];
            let old = std::mem::replace(&mut leg.health, new);
            match new {
                None => {
                    if !matches!(leg.state, LegState::Removed { .. }) {
                        if !matches!(leg.state, LegState::Removing { .. }) {
                            out.push(Action::Note {
                                map: m,
                                leg: Some(i),
                                reason: Reason::LegGone,
                            });
                        }
                        leg.state = LegState::Removed { at: now };
                        self.cancel_leg_timers(m, i);
                    }
                }
                Some(Health::Alive) => match leg.state {
                    LegState::Restoring { since } => leg.state = LegState::Resyncing { since },
                    LegState::Removed { .. } | LegState::Waiting { .. } | LegState::Kept { .. } => {
                        // Back in the table by a reload the monitor did not ask for.
                        leg.state = LegState::Resyncing { since: now };
                        self.cancel_leg_timers(m, i);
                    }
                    _ => {}
                },
                Some(h) if Some(h) != old => self.on_failure(m, i, h, &status, out),
                Some(_) => {}
            }
        }
        let log_was_failed = self.maps[m].status.as_ref().is_some_and(|s| s.log_failed);
        if status.log_failed && !log_was_failed {
            out.push(Action::Note {
                map: m,
                leg: None,
                reason: Reason::LogDeviceFailed,
            });
        }
        self.maps[m].status = Some(status.clone());

        // Map-level rules, on the whole updated map.
        if let DeadPolicy::Wait {
            max_out_of_sync_percent: Some(max),
            window,
            ..
        } = self.maps[m].settings.on_dead
        {
            let percent = status.out_of_sync_percent();
            if percent >= u64::from(max) {
                for i in 0..self.maps[m].legs.len() {
                    if let LegState::Waiting { since, health, .. } = self.maps[m].legs[i].state {
                        let reason = Reason::OutOfSyncReached {
                            health,
                            percent,
                            max_percent: max,
                            waited: now - since,
                            window,
                        };
                        self.remove(m, i, health, reason, out);
                    }
                }
            }
        }
        if status.in_sync() {
            for i in 0..self.maps[m].legs.len() {
                let leg = &mut self.maps[m].legs[i];
                if let LegState::Resyncing { since } = leg.state {
                    if leg.health == Some(Health::Alive) {
                        leg.state = LegState::InSync;
                        out.push(Action::Note {
                            map: m,
                            leg: Some(i),
                            reason: Reason::LegResynced { took: now - since },
                        });
                    }
                }
            }
            if let ResyncState::Retrying { attempt, since, .. } = self.maps[m].resync {
                self.timers.cancel(Timer::ResyncRetry { map: m });
                self.maps[m].resync = ResyncState::Idle;
                for leg in &mut self.maps[m].legs {
                    if matches!(leg.state, LegState::SyncFailed { .. }) {
                        leg.state = LegState::InSync;
                    }
                }
                out.push(Action::Note {
                    map: m,
                    leg: None,
                    reason: Reason::ResyncCompleted {
                        attempts: attempt,
                        took: now - since,
                    },
                });
            }
        }
    }

    /// Leg `i` now shows the failing character `h` (it showed another one before).
    fn on_failure(
        &mut self,
        m: usize,
        i: usize,
        h: Health,
        status: &StatusView,
        out: &mut Vec<Action>,
    ) {
        let now = self.now;
        let state = self.maps[m].legs[i].state;
        if matches!(
            state,
            LegState::Removing { .. } | LegState::Removed { .. } | LegState::Abandoned { .. }
        ) {
            return;
        }
        let settings = self.maps[m].settings;
        if h.is_dead_class() {
            if matches!(state, LegState::Waiting { .. } | LegState::Kept { .. }) {
                return;
            }
            self.cancel_leg_timers(m, i);
            match settings.on_dead {
                DeadPolicy::Remove => {
                    let reason = Reason::FailedRemove {
                        health: h,
                        setting: "on_dead",
                    };
                    self.remove(m, i, h, reason, out);
                }
                DeadPolicy::Wait {
                    window,
                    max_out_of_sync_percent,
                    probe_interval,
                    ..
                } => {
                    let until = now + window;
                    self.maps[m].legs[i].state = LegState::Waiting {
                        since: now,
                        until,
                        health: h,
                    };
                    self.timers
                        .set(until, Timer::TransientWindow { map: m, leg: i });
                    self.timers.set(
                        now + probe_interval.max(MIN_PERIOD),
                        Timer::Probe { map: m, leg: i },
                    );
                    out.push(Action::Note {
                        map: m,
                        leg: Some(i),
                        reason: Reason::WaitingForLeg {
                            health: h,
                            window,
                            max_out_of_sync_percent,
                        },
                    });
                }
            }
            return;
        }
        if matches!(
            state,
            LegState::Waiting { .. } | LegState::Kept { .. } | LegState::SyncFailed { .. }
        ) {
            return;
        }
        match h {
            Health::Sync => match settings.on_sync_failure {
                SyncFailurePolicy::Remove => {
                    let reason = Reason::FailedRemove {
                        health: h,
                        setting: "on_sync_failure",
                    };
                    self.remove(m, i, h, reason, out);
                }
                SyncFailurePolicy::Retry {
                    max_attempts,
                    backoff,
                } => {
                    self.maps[m].legs[i].state = LegState::SyncFailed { since: now };
                    if !matches!(self.maps[m].resync, ResyncState::Retrying { .. }) {
                        self.maps[m].resync = ResyncState::Retrying {
                            attempt: 1,
                            since: now,
                            baseline: status.in_sync_regions,
                        };
                        self.timers
                            .set(now + backoff.max(MIN_PERIOD), Timer::ResyncRetry { map: m });
                        out.push(Action::RestartResync {
                            map: m,
                            attempt: 1,
                            reason: Reason::SyncFailed {
                                max_attempts,
                                in_sync: status.in_sync_regions,
                                total: status.total_regions,
                            },
                        });
                    }
                }
            },
            Health::Read => {
                if !matches!(state, LegState::InSync | LegState::Resyncing { .. }) {
                    return;
                }
                match settings.on_read_failure {
                    ReadFailurePolicy::Remove => {
                        let reason = Reason::FailedRemove {
                            health: h,
                            setting: "on_read_failure",
                        };
                        self.remove(m, i, h, reason, out);
                    }
                    ReadFailurePolicy::Ignore => out.push(Action::Note {
                        map: m,
                        leg: Some(i),
                        reason: Reason::ReadFailureIgnored,
                    }),
                    ReadFailurePolicy::Relocate => {
                        self.maps[m].legs[i].state = LegState::Locating { since: now };
                        out.push(Action::ScanSlice {
                            map: m,
                            leg: i,
                            regions: 0..status.total_regions,
                            compare_with: None,
                            reason: Reason::LocateReadFailure,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// Asks for leg `i` to be removed, unless no other leg would be left in the table.
    fn remove(
        &mut self,
        m: usize,
        i: usize,
        health: Health,
        reason: Reason,
        out: &mut Vec<Action>,
    ) {
        let now = self.now;
        self.cancel_leg_timers(m, i);
        let other_left = self.maps[m].legs.iter().enumerate().any(|(j, leg)| {
            j != i
                && leg.health.is_some()
                && !matches!(
                    leg.state,
                    LegState::Removing { .. } | LegState::Removed { .. }
                )
        });
        if !other_left {
            self.maps[m].legs[i].state = LegState::Abandoned { since: now, health };
            out.push(Action::GiveUp {
                map: m,
                leg: Some(i),
                reason: Reason::NoGoodLeg { health },
            });
            return;
        }
        self.maps[m].legs[i].state = LegState::Removing { since: now };
        out.push(Action::RemoveLeg {
            map: m,
            leg: i,
            reason,
        });
    }

    /// A healthy leg other than `except` to copy from or compare with: the first one showing
    /// `A`, else the first handled one showing `R`.
    fn good_leg(&self, m: usize, except: Option<usize>) -> Option<usize> {
        let healthy = |want: Health| {
            self.maps[m].legs.iter().enumerate().position(|(j, leg)| {
                Some(j) != except && leg.state == LegState::InSync && leg.health == Some(want)
            })
        };
        healthy(Health::Alive).or_else(|| healthy(Health::Read))
    }

    fn healthy_legs(&self, m: usize) -> Vec<usize> {
        (0..self.maps[m].legs.len())
            .filter(|&j| {
                let leg = &self.maps[m].legs[j];
                leg.state == LegState::InSync
                    && matches!(leg.health, Some(Health::Alive | Health::Read))
            })
            .collect()
    }

    fn relocate(
        &mut self,
        m: usize,
        i: usize,
        blocks: Vec<u64>,
        reason: Reason,
        out: &mut Vec<Action>,
    ) {
        let now = self.now;
        match self.good_leg(m, Some(i)) {
            Some(from) => {
                self.maps[m].legs[i].state = LegState::Relocating { since: now };
                out.push(Action::Relocate {
                    map: m,
                    leg: i,
                    blocks,
                    from,
                    reason,
                });
            }
            None => {
                let health = self.maps[m].legs[i].health.unwrap_or(Health::Read);
                self.maps[m].legs[i].state = LegState::Abandoned { since: now, health };
                out.push(Action::GiveUp {
                    map: m,
                    leg: Some(i),
                    reason: Reason::NoGoodLeg { health },
                });
            }
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        let now = self.now;
        match timer {
            Timer::TransientWindow { map: m, leg: i } => {
                let LegState::Waiting { since, health, .. } = self.maps[m].legs[i].state else {
                    return;
                };
                let DeadPolicy::Wait { window, then, .. } = self.maps[m].settings.on_dead else {
                    return;
                };
                let waited = now - since;
                match then {
                    AfterWindow::Remove => {
                        let reason = Reason::WindowExpired {
                            health,
                            window,
                            waited,
                        };
                        self.remove(m, i, health, reason, out);
                    }
                    AfterWindow::Keep => {
                        self.maps[m].legs[i].state = LegState::Kept { since, health };
                        out.push(Action::Note {
                            map: m,
                            leg: Some(i),
                            reason: Reason::KeptAfterWindow {
                                health,
                                window,
                                waited,
                            },
                        });
                    }
                }
            }
            Timer::Probe { map: m, leg: i } => {
                let (since, health) = match self.maps[m].legs[i].state {
                    LegState::Waiting { since, health, .. } | LegState::Kept { since, health } => {
                        (since, health)
                    }
                    _ => return,
                };
                let DeadPolicy::Wait { probe_interval, .. } = self.maps[m].settings.on_dead else {
                    return;
                };
                self.timers.set(
                    now + probe_interval.max(MIN_PERIOD),
                    Timer::Probe { map: m, leg: i },
                );
                out.push(Action::ProbeLeg {
                    map: m,
                    leg: i,
                    reason: Reason::ProbeDue {
                        health,
                        waited: now - since,
                    },
                });
            }
            Timer::ScanNext { map: m } => {
                let Some(scan) = self.maps[m].settings.scan else {
                    return;
                };
                self.timers.set(
                    now + scan.interval.max(MIN_PERIOD),
                    Timer::ScanNext { map: m },
                );
                self.scan_slice(m, scan.slice_regions, scan.interval, out);
            }
            Timer::ResyncRetry { map: m } => self.resync_check(m, out),
        }
    }

    fn scan_slice(&mut self, m: usize, slice: u64, interval: Duration, out: &mut Vec<Action>) {
        let total = match &self.maps[m].status {
            Some(s) if s.total_regions > 0 => s.total_regions,
            _ => return,
        };
        let healthy = self.healthy_legs(m);
        if healthy.len() < 2 {
            if !self.maps[m].scan_paused {
                self.maps[m].scan_paused = true;
                out.push(Action::Note {
                    map: m,
                    leg: None,
                    reason: Reason::ScanPaused {
                        healthy_legs: healthy.len(),
                    },
                });
            }
            return;
        }
        if self.maps[m].scan_paused {
            self.maps[m].scan_paused = false;
            out.push(Action::Note {
                map: m,
                leg: None,
                reason: Reason::ScanResumed,
            });
        }
        let primary = self.good_leg(m, None).unwrap_or(healthy[0]);
        let start = self.maps[m].scan_cursor % total;
        let end = start.saturating_add(slice.max(1)).min(total);
        self.maps[m].scan_cursor = if end == total { 0 } else { end };
        for leg in healthy {
            out.push(Action::ScanSlice {
                map: m,
                leg,
                regions: start..end,
                compare_with: (leg != primary).then_some(primary),
                reason: Reason::ScanDue { interval },
            });
        }
    }

    fn resync_check(&mut self, m: usize, out: &mut Vec<Action>) {
        let now = self.now;
        let ResyncState::Retrying {
            attempt,
            since,
            baseline,
        } = self.maps[m].resync
        else {
            return;
        };
        let SyncFailurePolicy::Retry {
            max_attempts,
            backoff,
        } = self.maps[m].settings.on_sync_failure
        else {
            return;
        };
        let (in_sync, total) = self.maps[m]
            .status
            .as_ref()
            .map_or((0, 0), |s| (s.in_sync_regions, s.total_regions));
        let next_check = now + backoff.max(MIN_PERIOD);
        if in_sync > baseline {
            self.maps[m].resync = ResyncState::Retrying {
                attempt,
                since,
                baseline: in_sync,
            };
            self.timers.set(next_check, Timer::ResyncRetry { map: m });
            out.push(Action::Note {
                map: m,
                leg: None,
                reason: Reason::ResyncProgressing {
                    attempt,
                    in_sync,
                    total,
                },
            });
        } else if attempt < max_attempts {
            let attempt = attempt + 1;
            self.maps[m].resync = ResyncState::Retrying {
                attempt,
                since,
                baseline: in_sync,
            };
            self.timers.set(next_check, Timer::ResyncRetry { map: m });
            out.push(Action::RestartResync {
                map: m,
                attempt,
                reason: Reason::ResyncStalled {
                    attempt,
                    max_attempts,
                    in_sync,
                    total,
                    backoff,
                },
            });
        } else {
            self.give_up_resync(m, out, |_| Reason::SyncRetriesExhausted {
                attempts: attempt,
                in_sync,
                total,
                waited: now - since,
            });
        }
    }

    fn give_up_resync(&mut self, m: usize, out: &mut Vec<Action>, reason: impl Fn(()) -> Reason) {
        let now = self.now;
        self.timers.cancel(Timer::ResyncRetry { map: m });
        self.maps[m].resync = ResyncState::GaveUp { at: now };
        for leg in &mut self.maps[m].legs {
            if matches!(leg.state, LegState::SyncFailed { .. }) {
                leg.state = LegState::Abandoned {
                    since: now,
                    health: Health::Sync,
                };
            }
        }
        out.push(Action::GiveUp {
            map: m,
            leg: None,
            reason: reason(()),
        });
    }

    fn on_scan_result(
        &mut self,
        m: usize,
        i: usize,
        regions: Range<u64>,
        outcome: ScanOutcome,
        out: &mut Vec<Action>,
    ) {
        let outcome = match outcome {
            ScanOutcome::Unreadable(b) | ScanOutcome::Differs(b) if b.is_empty() => ScanOutcome::Ok,
            o => o,
        };
        match (self.maps[m].legs[i].state, outcome) {
            (LegState::Locating { .. }, ScanOutcome::Unreadable(blocks)) => {
                let reason = Reason::ReadFailure {
                    blocks: blocks.len(),
                    located_by_scan: true,
                };
                self.relocate(m, i, blocks, reason, out);
            }
            (LegState::Locating { .. }, _) => {
                self.maps[m].legs[i].state = LegState::InSync;
                out.push(Action::Note {
                    map: m,
                    leg: Some(i),
                    reason: Reason::ReadFailureNotFound,
                });
            }
            (LegState::InSync, ScanOutcome::Unreadable(blocks)) => {
                let reason = Reason::ScanUnreadable {
                    regions,
                    blocks: blocks.len(),
                };
                self.relocate(m, i, blocks, reason, out);
            }
            (LegState::InSync, ScanOutcome::Differs(blocks)) => {
                let Some(against) = self.good_leg(m, Some(i)) else {
                    return;
                };
                let repair = self.maps[m]
                    .settings
                    .scan
                    .is_some_and(|s| s.on_differ == DifferPolicy::Repair);
                let reason = Reason::ScanDiffers {
                    regions,
                    blocks: blocks.clone(),
                    against,
                    repair,
                };
                if repair {
                    self.relocate(m, i, blocks, reason, out);
                } else {
                    out.push(Action::Note {
                        map: m,
                        leg: Some(i),
                        reason,
                    });
                }
            }
            // Ok, or the leg's state changed since the slice was asked for.
            _ => {}
        }
    }

    fn on_read_failures(&mut self, m: usize, i: usize, blocks: Vec<u64>, out: &mut Vec<Action>) {
        if self.maps[m].settings.on_read_failure != ReadFailurePolicy::Relocate || blocks.is_empty()
        {
            return;
        }
        if matches!(
            self.maps[m].legs[i].state,
            LegState::InSync | LegState::Locating { .. } | LegState::Resyncing { .. }
        ) {
            let reason = Reason::ReadFailure {
                blocks: blocks.len(),
                located_by_scan: false,
            };
            self.relocate(m, i, blocks, reason, out);
        }
    }

    fn on_probe(&mut self, m: usize, i: usize, ok: bool, out: &mut Vec<Action>) {
        let now = self.now;
        let (since, health) = match self.maps[m].legs[i].state {
            LegState::Waiting { since, health, .. } | LegState::Kept { since, health } => {
                (since, health)
            }
            _ => return,
        };
        if !ok {
            return;
        }
        self.cancel_leg_timers(m, i);
        self.maps[m].legs[i].state = LegState::Restoring { since: now };
        out.push(Action::RestoreLeg {
            map: m,
            leg: i,
            reason: Reason::LegBack {
                health,
                waited: now - since,
            },
        });
    }

    fn on_done(&mut self, m: usize, leg: Option<usize>, kind: ActionKind) {
        let now = self.now;
        let Some(i) = leg else { return };
        let leg = &mut self.maps[m].legs[i];
        match (kind, leg.state) {
            (ActionKind::RemoveLeg, LegState::Removing { .. }) => {
                leg.state = LegState::Removed { at: now }
            }
            (ActionKind::RestoreLeg, LegState::Restoring { since }) => {
                leg.state = LegState::Resyncing { since }
            }
            (ActionKind::Relocate, LegState::Relocating { .. }) => leg.state = LegState::InSync,
            _ => {}
        }
    }

    fn on_failed(
        &mut self,
        m: usize,
        leg: Option<usize>,
        kind: ActionKind,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let now = self.now;
        let reason = Reason::ActionFailed { kind, detail };
        match kind {
            ActionKind::RestartResync => self.give_up_resync(m, out, |_| reason.clone()),
            ActionKind::ScanSlice | ActionKind::ProbeLeg => {
                if let Some(i) = leg {
                    if matches!(self.maps[m].legs[i].state, LegState::Locating { .. }) {
                        self.maps[m].legs[i].state = LegState::InSync;
                    }
                }
                out.push(Action::Note {
                    map: m,
                    leg,
                    reason,
                });
            }
            ActionKind::RemoveLeg | ActionKind::RestoreLeg | ActionKind::Relocate => {
                if let Some(i) = leg {
                    self.cancel_leg_timers(m, i);
                    let l = &mut self.maps[m].legs[i];
                    l.state = LegState::Abandoned {
                        since: now,
                        health: l.health.unwrap_or(Health::Unknown),
                    };
                }
                out.push(Action::GiveUp {
                    map: m,
                    leg,
                    reason,
                });
            }
        }
    }
}
