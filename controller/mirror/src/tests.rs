//! Behaviour tests of the monitor on a virtual clock, one scenario per policy, with snapshots
//! of the action logs.

use std::time::Duration;

use crate::*;

fn t(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// One map `m0` with legs `a` and `b` (or more), driven on a virtual clock; every input and
/// action is logged with its time.
struct Sim {
    mon: Monitor,
    now: Duration,
    log: Vec<String>,
    actions: Vec<(Duration, Action)>,
}

impl Sim {
    fn new(settings: MirrorSettings) -> Sim {
        Sim::with_legs(settings, &["a", "b"])
    }

    fn with_legs(settings: MirrorSettings, legs: &[&str]) -> Sim {
        let setup = MapSetup {
            name: "m0".into(),
            legs: legs.iter().map(|s| s.to_string()).collect(),
            settings,
        };
        Sim {
            mon: Monitor::new(vec![setup], Duration::ZERO),
            now: Duration::ZERO,
            log: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn record(&mut self, acts: Vec<Action>) -> Vec<Action> {
        for a in &acts {
            self.log
                .push(format!("{:>8} {}", secs(self.now), self.mon.describe(a)));
            self.actions.push((self.now, a.clone()));
        }
        acts
    }

    /// Runs every timer due up to `until`, then sets the clock to it.
    fn run_until(&mut self, until: f64) -> Vec<Action> {
        let until = t(until);
        let mut acts = Vec::new();
        while let Some(at) = self.mon.next_deadline() {
            if at > until {
                break;
            }
            self.now = at;
            let got = self.mon.handle(at, Input::Tick);
            acts.extend(self.record(got));
        }
        self.now = until;
        acts
    }

    /// Runs the timers due up to `at` (their actions are logged), then feeds `input` and
    /// returns the actions it led to.
    fn input(&mut self, at: f64, input: Input, what: String) -> Vec<Action> {
        self.run_until(at);
        self.log.push(format!("{:>8} > {what}", secs(self.now)));
        let got = self.mon.handle(self.now, input);
        self.record(got)
    }

    /// A status with one character per leg (`-`: not in the table).
    fn status(&mut self, at: f64, chars: &str, in_sync: u64, total: u64) -> Vec<Action> {
        let legs = chars
            .chars()
            .map(|c| match c {
                'A' => Some(Health::Alive),
                'D' => Some(Health::Dead),
                'S' => Some(Health::Sync),
                'R' => Some(Health::Read),
                'F' => Some(Health::Flush),
                'U' => Some(Health::Unknown),
                '-' => None,
                _ => panic!("bad health char {c}"),
            })
            .collect();
        let status = StatusView {
            legs,
            in_sync_regions: in_sync,
            total_regions: total,
            log_failed: false,
        };
        self.input(
            at,
            Input::Status { map: 0, status },
            format!("status {chars} {in_sync}/{total}"),
        )
    }

    fn probe(&mut self, at: f64, leg: usize, ok: bool) -> Vec<Action> {
        self.input(
            at,
            Input::ProbeResult { map: 0, leg, ok },
            format!("probe leg {leg} {}", if ok { "ok" } else { "failed" }),
        )
    }

    fn done(&mut self, at: f64, leg: Option<usize>, kind: ActionKind) -> Vec<Action> {
        self.input(
            at,
            Input::ActionDone { map: 0, leg, kind },
            match leg {
                Some(l) => format!("done {kind:?} leg {l}"),
                None => format!("done {kind:?}"),
            },
        )
    }

    fn scan_result(
        &mut self,
        at: f64,
        leg: usize,
        regions: std::ops::Range<u64>,
        outcome: ScanOutcome,
    ) -> Vec<Action> {
        let what = format!("scan result leg {leg} {regions:?}: {outcome:?}");
        self.input(
            at,
            Input::ScanResult {
                map: 0,
                leg,
                regions,
                outcome,
            },
            what,
        )
    }

    fn dump(&self) -> String {
        self.log.join("\n")
    }

    fn count(&self, pred: impl Fn(&Action) -> bool) -> usize {
        self.actions.iter().filter(|(_, a)| pred(a)).count()
    }

    fn state(&self, leg: usize) -> LegState {
        self.mon.leg_state(0, leg)
    }
}

fn is_remove(a: &Action) -> bool {
    matches!(a, Action::RemoveLeg { .. })
}

fn is_give_up(a: &Action) -> bool {
    matches!(a, Action::GiveUp { .. })
}

fn wait(window: f64, max: Option<u8>, then: AfterWindow) -> MirrorSettings {
    MirrorSettings {
        on_dead: DeadPolicy::Wait {
            window: t(window),
            max_out_of_sync_percent: max,
            then,
            probe_interval: t(1.0),
        },
        ..MirrorSettings::default()
    }
}

fn retry(max_attempts: u32, backoff: f64) -> MirrorSettings {
    MirrorSettings {
        on_sync_failure: SyncFailurePolicy::Retry {
            max_attempts,
            backoff: t(backoff),
        },
        ..MirrorSettings::default()
    }
}

fn relocate() -> MirrorSettings {
    MirrorSettings {
        on_read_failure: ReadFailurePolicy::Relocate,
        ..MirrorSettings::default()
    }
}

fn scan(slice_regions: u64, on_differ: DifferPolicy) -> MirrorSettings {
    MirrorSettings {
        on_read_failure: ReadFailurePolicy::Relocate,
        scan: Some(ScanSettings {
            slice_regions,
            interval: t(1.0),
            on_differ,
        }),
        ..MirrorSettings::default()
    }
}

// --- The default: dmeventd ---

#[test]
fn the_default_removes_a_leg_on_every_failing_character() {
    for c in ['D', 'F', 'U', 'S', 'R'] {
        let mut sim = Sim::new(MirrorSettings::default());
        sim.status(0.0, "AA", 128, 128);
        let acts = sim.status(1.0, &format!("A{c}"), 128, 128);
        assert_eq!(acts.len(), 1, "{c}: {}", sim.dump());
        let Action::RemoveLeg { leg, reason, .. } = &acts[0] else {
            panic!("{c}: {}", sim.dump());
        };
        assert_eq!(*leg, 1);
        let setting = match c {
            'S' => "on_sync_failure",
            'R' => "on_read_failure",
            _ => "on_dead",
        };
        let Reason::FailedRemove { health, setting: s } = reason else {
            panic!("{reason:?}")
        };
        assert_eq!((health.as_char(), *s), (c, setting));
        assert!(matches!(sim.state(1), LegState::Removing { .. }));
        sim.done(1.1, Some(1), ActionKind::RemoveLeg);
        assert_eq!(sim.state(1), LegState::Removed { at: t(1.1) });
        // The status after the removal shows the leg gone: no further action, no "gone" note.
        assert!(sim.status(1.2, "A-", 128, 128).is_empty(), "{}", sim.dump());
        assert_eq!(sim.mon.next_deadline(), None);
    }
}

#[test]
fn default_log_snapshot() {
    let mut sim = Sim::new(MirrorSettings::default());
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AD", 120, 128);
    sim.done(1.2, Some(1), ActionKind::RemoveLeg);
    sim.status(1.3, "A-", 128, 128);
    insta::assert_snapshot!("default_removes", sim.dump());
}

// --- The status is re-read after every event; nothing is presumed ---

#[test]
fn a_status_with_every_leg_alive_after_an_event_leads_to_no_action() {
    let settings = MirrorSettings {
        on_dead: DeadPolicy::wait_default(),
        on_sync_failure: SyncFailurePolicy::retry_default(),
        on_read_failure: ReadFailurePolicy::Relocate,
        scan: None,
    };
    let mut sim = Sim::new(settings);
    assert!(sim.status(0.0, "AA", 10, 128).is_empty());
    // Events (resync progress, resync done): all A, no action, whatever the policy.
    assert!(sim.status(1.0, "AA", 64, 128).is_empty());
    assert!(sim.status(2.0, "AA", 128, 128).is_empty());
    assert!(sim.status(3.0, "AA", 128, 128).is_empty());
    assert_eq!(sim.mon.next_deadline(), None);
    assert_eq!(sim.state(0), LegState::InSync);
    assert_eq!(sim.state(1), LegState::InSync);
    insta::assert_snapshot!("all_alive_no_action", sim.dump());
}

#[test]
fn an_unchanged_failing_character_is_not_acted_on_twice() {
    let mut sim = Sim::new(wait(10.0, None, AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    assert_eq!(sim.status(1.0, "AD", 120, 128).len(), 1);
    // More events with the same character: the window is not restarted.
    assert!(sim.status(2.0, "AD", 110, 128).is_empty());
    assert!(sim.status(3.0, "AD", 100, 128).is_empty());
    assert_eq!(
        sim.state(1),
        LegState::Waiting {
            since: t(1.0),
            until: t(11.0),
            health: Health::Dead
        }
    );
}

#[test]
fn a_leg_that_leaves_the_table_unasked_is_noted_as_gone() {
    let mut sim = Sim::new(wait(10.0, None, AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AD", 120, 128);
    let acts = sim.status(2.0, "A-", 128, 128);
    assert!(
        matches!(
            &acts[..],
            [Action::Note {
                leg: Some(1),
                reason: Reason::LegGone,
                ..
            }]
        ),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.state(1), LegState::Removed { at: t(2.0) });
    // Its window and probes are cancelled.
    assert_eq!(sim.mon.next_deadline(), None);
}

// --- D: wait a transient window ---

#[test]
fn a_transient_dead_leg_back_within_the_window_is_restored_not_removed() {
    let mut sim = Sim::new(wait(10.0, None, AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.status(1.0, "AD", 120, 128);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::WaitingForLeg { .. },
            ..
        }]
    ));
    // Probes every second; the first fails, the second answers.
    let acts = sim.run_until(2.0);
    assert!(matches!(&acts[..], [Action::ProbeLeg { leg: 1, .. }]));
    sim.probe(2.1, 1, false);
    let acts = sim.run_until(3.0);
    assert!(matches!(&acts[..], [Action::ProbeLeg { leg: 1, .. }]));
    let acts = sim.probe(3.1, 1, true);
    let [Action::RestoreLeg { leg: 1, reason, .. }] = &acts[..] else {
        panic!("{}", sim.dump())
    };
    assert_eq!(
        *reason,
        Reason::LegBack {
            health: Health::Dead,
            waited: t(3.1) - t(1.0)
        }
    );
    assert_eq!(sim.mon.next_deadline(), None, "window and probes cancelled");
    sim.done(3.3, Some(1), ActionKind::RestoreLeg);
    assert_eq!(sim.state(1), LegState::Resyncing { since: t(3.1) });
    assert!(sim.status(3.4, "AA", 0, 128).is_empty());
    let acts = sim.status(6.0, "AA", 128, 128);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::LegResynced { .. },
            ..
        }]
    ));
    assert_eq!(sim.state(1), LegState::InSync);
    // Past the window: nothing happens.
    assert!(sim.run_until(30.0).is_empty());
    assert_eq!(sim.count(is_remove), 0, "{}", sim.dump());
    assert_eq!(sim.count(|a| matches!(a, Action::RestoreLeg { .. })), 1);
    insta::assert_snapshot!("dead_transient_restored", sim.dump());
}

#[test]
fn a_dead_leg_past_the_window_is_removed_naming_the_wait() {
    let mut sim = Sim::new(wait(10.0, None, AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AD", 120, 128);
    for s in 2..=10 {
        let acts = sim.run_until(s as f64);
        assert!(matches!(&acts[..], [Action::ProbeLeg { .. }]), "{s}");
        sim.probe(s as f64 + 0.5, 1, false);
    }
    assert_eq!(sim.count(is_remove), 0);
    let acts = sim.run_until(11.0);
    let removal = acts.iter().find(|a| is_remove(a)).expect("removed");
    assert_eq!(
        *removal.reason(),
        Reason::WindowExpired {
            health: Health::Dead,
            window: t(10.0),
            waited: t(10.0)
        }
    );
    assert!(sim.mon.describe(removal).contains("after waiting 10s"));
    assert_eq!(sim.actions.last().unwrap().0, t(11.0));
    // A late probe answer does not bring it back.
    assert!(sim.probe(11.5, 1, true).is_empty());
    assert_eq!(sim.mon.next_deadline(), None);
    insta::assert_snapshot!("dead_window_expired", sim.dump());
}

#[test]
fn reaching_the_out_of_sync_share_removes_the_leg_before_the_window_ends() {
    let mut sim = Sim::new(wait(10.0, Some(25), AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    // 6% out of sync: wait.
    sim.status(1.0, "AD", 120, 128);
    sim.probe(2.1, 1, false);
    // 24%: still wait.
    assert!(sim.status(3.0, "AD", 97, 128).is_empty());
    // 29%: remove now.
    let acts = sim.status(4.0, "AD", 90, 128);
    let [Action::RemoveLeg { leg: 1, reason, .. }] = &acts[..] else {
        panic!("{}", sim.dump())
    };
    assert_eq!(
        *reason,
        Reason::OutOfSyncReached {
            health: Health::Dead,
            percent: 29,
            max_percent: 25,
            waited: t(3.0),
            window: t(10.0)
        }
    );
    // Nothing more at the window's end.
    assert!(sim.run_until(20.0).is_empty(), "{}", sim.dump());
    assert_eq!(sim.count(is_remove), 1);
    insta::assert_snapshot!("dead_out_of_sync_early", sim.dump());
}

#[test]
fn a_failure_already_past_the_share_is_removed_at_once() {
    let mut sim = Sim::new(wait(10.0, Some(10), AfterWindow::Remove));
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.status(1.0, "AD", 64, 128);
    assert!(matches!(
        &acts[..],
        [
            Action::Note { .. },
            Action::RemoveLeg {
                reason: Reason::OutOfSyncReached { percent: 50, .. },
                ..
            }
        ]
    ));
}

#[test]
fn keep_after_the_window_leaves_the_leg_degraded_and_still_probed() {
    let mut sim = Sim::new(wait(3.0, None, AfterWindow::Keep));
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AD", 120, 128);
    let acts = sim.run_until(4.0);
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Note {
            reason: Reason::KeptAfterWindow { .. },
            ..
        }
    )));
    assert_eq!(
        sim.state(1),
        LegState::Kept {
            since: t(1.0),
            health: Health::Dead
        }
    );
    let acts = sim.run_until(5.0);
    assert!(matches!(&acts[..], [Action::ProbeLeg { leg: 1, .. }]));
    let acts = sim.probe(5.2, 1, true);
    assert!(matches!(&acts[..], [Action::RestoreLeg { leg: 1, .. }]));
    assert_eq!(sim.count(is_remove), 0);
}

#[test]
fn the_last_leg_in_the_table_is_never_removed() {
    let mut sim = Sim::new(MirrorSettings::default());
    sim.status(0.0, "A-", 128, 128);
    let acts = sim.status(1.0, "D-", 120, 128);
    assert!(matches!(
        &acts[..],
        [Action::GiveUp {
            leg: Some(0),
            reason: Reason::NoGoodLeg {
                health: Health::Dead
            },
            ..
        }]
    ));
    assert!(matches!(sim.state(0), LegState::Abandoned { .. }));
}

#[test]
fn a_dead_leg_while_the_other_is_removed_is_given_up_not_removed() {
    let mut sim = Sim::new(MirrorSettings::default());
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.status(1.0, "DD", 100, 128);
    assert!(matches!(&acts[0], Action::RemoveLeg { leg: 0, .. }));
    assert!(matches!(&acts[1], Action::GiveUp { leg: Some(1), .. }));
}

// --- S: restart the resync ---

#[test]
fn a_sync_failure_retried_succeeds_on_the_second_attempt() {
    let mut sim = Sim::new(retry(3, 5.0));
    sim.status(0.0, "AA", 64, 128);
    let acts = sim.status(1.0, "AS", 100, 128);
    let [Action::RestartResync {
        attempt: 1, reason, ..
    }] = &acts[..]
    else {
        panic!("{}", sim.dump())
    };
    assert_eq!(
        *reason,
        Reason::SyncFailed {
            max_attempts: 3,
            in_sync: 100,
            total: 128
        }
    );
    assert!(matches!(sim.state(1), LegState::SyncFailed { .. }));
    sim.done(1.1, None, ActionKind::RestartResync);
    // No progress within the backoff: attempt 2.
    sim.status(3.0, "AS", 100, 128);
    let acts = sim.run_until(6.0);
    assert!(
        matches!(&acts[..], [Action::RestartResync { attempt: 2, .. }]),
        "{}",
        sim.dump()
    );
    sim.done(6.1, None, ActionKind::RestartResync);
    let acts = sim.status(8.0, "AS", 128, 128);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::ResyncCompleted { attempts: 2, .. },
            ..
        }]
    ));
    assert_eq!(sim.mon.resync_state(0), ResyncState::Idle);
    assert_eq!(sim.state(1), LegState::InSync);
    assert!(sim.run_until(60.0).is_empty());
    assert_eq!(sim.count(is_give_up) + sim.count(is_remove), 0);
    insta::assert_snapshot!("sync_retry_second_attempt", sim.dump());
}

#[test]
fn a_sync_failure_exhausting_its_retries_gives_up() {
    let mut sim = Sim::new(retry(3, 5.0));
    sim.status(0.0, "AA", 64, 128);
    sim.status(1.0, "AS", 100, 128);
    sim.run_until(15.0);
    let restarts: Vec<(Duration, u32)> = sim
        .actions
        .iter()
        .filter_map(|(at, a)| match a {
            Action::RestartResync { attempt, .. } => Some((*at, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(restarts, vec![(t(1.0), 1), (t(6.0), 2), (t(11.0), 3)]);
    assert_eq!(sim.count(is_give_up), 0);
    let acts = sim.run_until(16.0);
    let [Action::GiveUp {
        leg: None, reason, ..
    }] = &acts[..]
    else {
        panic!("{}", sim.dump())
    };
    assert_eq!(
        *reason,
        Reason::SyncRetriesExhausted {
            attempts: 3,
            in_sync: 100,
            total: 128,
            waited: t(15.0)
        }
    );
    assert_eq!(sim.mon.resync_state(0), ResyncState::GaveUp { at: t(16.0) });
    assert!(matches!(sim.state(1), LegState::Abandoned { .. }));
    assert_eq!(sim.mon.next_deadline(), None);
    assert_eq!(sim.count(is_remove), 0);
    insta::assert_snapshot!("sync_retry_exhausted", sim.dump());
}

#[test]
fn a_resync_that_progresses_gets_more_time_without_using_an_attempt() {
    let mut sim = Sim::new(retry(2, 5.0));
    sim.status(0.0, "AA", 64, 128);
    sim.status(1.0, "AS", 100, 128);
    sim.status(4.0, "AS", 110, 128);
    let acts = sim.run_until(6.0);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::ResyncProgressing { attempt: 1, .. },
            ..
        }]
    ));
    let acts = sim.run_until(11.0);
    assert!(matches!(
        &acts[..],
        [Action::RestartResync { attempt: 2, .. }]
    ));
}

#[test]
fn a_dead_leg_during_resync_retries_follows_the_dead_policy() {
    let mut sim = Sim::new(MirrorSettings {
        on_dead: DeadPolicy::Remove,
        ..retry(3, 5.0)
    });
    sim.status(0.0, "AA", 64, 128);
    sim.status(1.0, "AS", 100, 128);
    let acts = sim.status(2.0, "AD", 90, 128);
    assert!(matches!(
        &acts[..],
        [Action::RemoveLeg {
            leg: 1,
            reason: Reason::FailedRemove {
                health: Health::Dead,
                ..
            },
            ..
        }]
    ));
}

// --- R: relocate ---

#[test]
fn a_read_failure_relocates_the_named_blocks_from_the_healthy_leg() {
    let mut sim = Sim::new(relocate());
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.status(1.0, "RA", 128, 128);
    assert!(matches!(
        &acts[..],
        [Action::ScanSlice {
            leg: 0,
            compare_with: None,
            reason: Reason::LocateReadFailure,
            ..
        }]
    ));
    if let Action::ScanSlice { regions, .. } = &acts[0] {
        assert_eq!(*regions, 0..128, "the whole leg");
    }
    // The driver names the blocks (before the scan answered).
    let acts = sim.input(
        1.5,
        Input::ReadFailures {
            map: 0,
            leg: 0,
            blocks: vec![7, 9],
        },
        "read failures leg 0 [7, 9]".into(),
    );
    let [Action::Relocate {
        leg: 0,
        blocks,
        from: 1,
        reason,
        ..
    }] = &acts[..]
    else {
        panic!("{}", sim.dump())
    };
    assert_eq!(*blocks, vec![7, 9]);
    assert_eq!(
        *reason,
        Reason::ReadFailure {
            blocks: 2,
            located_by_scan: false
        }
    );
    // The late scan answer changes nothing.
    assert!(sim
        .scan_result(1.8, 0, 0..128, ScanOutcome::Unreadable(vec![7, 9]))
        .is_empty());
    sim.done(2.0, Some(0), ActionKind::Relocate);
    assert_eq!(sim.state(0), LegState::InSync);
    // The character stays R until a reload: no second relocation, no removal.
    assert!(sim.status(3.0, "RA", 128, 128).is_empty());
    assert_eq!(sim.count(is_remove), 0);
    insta::assert_snapshot!("read_relocate_named", sim.dump());
}

#[test]
fn a_read_failure_without_named_blocks_is_located_by_scanning() {
    let mut sim = Sim::new(relocate());
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AR", 128, 128);
    let acts = sim.scan_result(4.0, 1, 0..128, ScanOutcome::Unreadable(vec![42]));
    assert!(
        matches!(
            &acts[..],
            [Action::Relocate {
                leg: 1,
                from: 0,
                reason: Reason::ReadFailure {
                    blocks: 1,
                    located_by_scan: true
                },
                ..
            }]
        ),
        "{}",
        sim.dump()
    );
}

#[test]
fn a_read_failure_the_scan_cannot_find_is_noted() {
    let mut sim = Sim::new(relocate());
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "AR", 128, 128);
    let acts = sim.scan_result(4.0, 1, 0..128, ScanOutcome::Ok);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::ReadFailureNotFound,
            ..
        }]
    ));
    assert_eq!(sim.state(1), LegState::InSync);
}

#[test]
fn ignore_notes_a_read_failure_and_does_nothing() {
    let mut sim = Sim::new(MirrorSettings {
        on_read_failure: ReadFailurePolicy::Ignore,
        ..MirrorSettings::default()
    });
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.status(1.0, "RA", 128, 128);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::ReadFailureIgnored,
            ..
        }]
    ));
    let acts = sim.input(
        1.5,
        Input::ReadFailures {
            map: 0,
            leg: 0,
            blocks: vec![1],
        },
        "read failures".into(),
    );
    assert!(acts.is_empty());
}

#[test]
fn a_failed_relocation_gives_up_on_the_leg() {
    let mut sim = Sim::new(relocate());
    sim.status(0.0, "AA", 128, 128);
    sim.status(1.0, "RA", 128, 128);
    sim.scan_result(2.0, 0, 0..128, ScanOutcome::Unreadable(vec![3]));
    let acts = sim.input(
        2.5,
        Input::ActionFailed {
            map: 0,
            leg: Some(0),
            kind: ActionKind::Relocate,
            detail: "EIO writing block 3".into(),
        },
        "relocate failed".into(),
    );
    assert!(matches!(
        &acts[..],
        [Action::GiveUp {
            leg: Some(0),
            reason: Reason::ActionFailed {
                kind: ActionKind::Relocate,
                ..
            },
            ..
        }]
    ));
    assert!(describe(&acts[0]).contains("relocate failed: EIO writing block 3"));
}

// --- scan ---

#[test]
fn the_scan_finds_a_latent_unreadable_block_and_relocates_it() {
    let mut sim = Sim::new(scan(32, DifferPolicy::Report));
    sim.status(0.0, "AA", 128, 128);
    let acts = sim.run_until(1.0);
    let slices: Vec<(usize, std::ops::Range<u64>, Option<usize>)> = acts
        .iter()
        .filter_map(|a| match a {
            Action::ScanSlice {
                leg,
                regions,
                compare_with,
                ..
            } => Some((*leg, regions.clone(), *compare_with)),
            _ => None,
        })
        .collect();
    assert_eq!(slices, vec![(0, 0..32, None), (1, 0..32, Some(0))]);
    sim.scan_result(1.2, 0, 0..32, ScanOutcome::Ok);
    sim.scan_result(1.2, 1, 0..32, ScanOutcome::Ok);
    sim.run_until(2.0);
    sim.scan_result(2.2, 0, 32..64, ScanOutcome::Ok);
    let acts = sim.scan_result(2.3, 1, 32..64, ScanOutcome::Unreadable(vec![300]));
    let [Action::Relocate {
        leg: 1,
        from: 0,
        blocks,
        reason,
        ..
    }] = &acts[..]
    else {
        panic!("{}", sim.dump())
    };
    assert_eq!(*blocks, vec![300]);
    assert_eq!(
        *reason,
        Reason::ScanUnreadable {
            regions: 32..64,
            blocks: 1
        }
    );
    // While it relocates, leg b is not scanned (fewer than two healthy legs: paused).
    let acts = sim.run_until(3.0);
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::ScanPaused { healthy_legs: 1 },
            ..
        }]
    ));
    sim.done(3.1, Some(1), ActionKind::Relocate);
    // The scan goes on where it was, and wraps around.
    let acts = sim.run_until(4.0);
    assert!(matches!(
        &acts[..],
        [
            Action::Note {
                reason: Reason::ScanResumed,
                ..
            },
            Action::ScanSlice { leg: 0, .. },
            Action::ScanSlice { leg: 1, .. }
        ]
    ));
    if let Action::ScanSlice { regions, .. } = &acts[1] {
        assert_eq!(*regions, 64..96);
    }
    sim.run_until(6.0);
    let last: Vec<_> = sim
        .actions
        .iter()
        .rev()
        .take(2)
        .map(|(at, a)| match a {
            Action::ScanSlice { regions, .. } => (*at, regions.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(last, vec![(t(6.0), 0..32), (t(6.0), 0..32)]);
    assert_eq!(sim.count(is_remove), 0);
    insta::assert_snapshot!("scan_latent_unreadable", sim.dump());
}

#[test]
fn scan_differences_are_reported_or_repaired_by_policy() {
    for (policy, repaired) in [(DifferPolicy::Report, false), (DifferPolicy::Repair, true)] {
        let mut sim = Sim::new(scan(64, policy));
        sim.status(0.0, "AA", 128, 128);
        sim.run_until(1.0);
        let acts = sim.scan_result(1.5, 1, 0..64, ScanOutcome::Differs(vec![5]));
        assert_eq!(acts.len(), 1);
        match (&acts[0], repaired) {
            (
                Action::Relocate {
                    leg: 1, from: 0, ..
                },
                true,
            ) => {}
            (
                Action::Note {
                    reason: Reason::ScanDiffers { repair: false, .. },
                    ..
                },
                false,
            ) => {}
            other => panic!("{policy:?}: {other:?}"),
        }
    }
}

#[test]
fn no_scan_before_the_first_status_and_none_without_the_setting() {
    let mut sim = Sim::new(scan(16, DifferPolicy::Report));
    assert_eq!(sim.mon.next_deadline(), Some(t(1.0)));
    assert!(sim.run_until(2.5).is_empty(), "no status yet");
    let sim = Sim::new(MirrorSettings::default());
    assert_eq!(sim.mon.next_deadline(), None);
}

#[test]
fn three_legs_scan_against_the_first_healthy_one() {
    let mut sim = Sim::with_legs(scan(8, DifferPolicy::Report), &["a", "b", "c"]);
    sim.status(0.0, "DAA", 128, 128);
    // Leg a is being removed (default on_dead): b is the primary.
    let acts = sim.run_until(1.0);
    let compared: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::ScanSlice {
                leg, compare_with, ..
            } => Some((*leg, *compare_with)),
            _ => None,
        })
        .collect();
    assert_eq!(compared, vec![(1, None), (2, Some(1))]);
}

// --- timers ---

#[test]
fn timers_are_one_table_with_the_exact_next_deadline() {
    let mut sim = Sim::new(MirrorSettings {
        on_dead: DeadPolicy::Wait {
            window: t(10.0),
            max_out_of_sync_percent: None,
            then: AfterWindow::Remove,
            probe_interval: t(2.0),
        },
        ..scan(16, DifferPolicy::Report)
    });
    sim.status(0.5, "AA", 128, 128);
    sim.status(0.5, "AD", 120, 128);
    let timers: Vec<_> = sim.mon.timers().collect();
    assert_eq!(
        timers,
        vec![
            (t(1.0), Timer::ScanNext { map: 0 }),
            (t(2.5), Timer::Probe { map: 0, leg: 1 }),
            (t(10.5), Timer::TransientWindow { map: 0, leg: 1 }),
        ]
    );
    assert_eq!(sim.mon.next_deadline(), Some(t(1.0)));
    // Nothing is due before the deadline.
    assert!(sim.mon.handle_timeout(t(0.9)).is_empty());
}

// --- more than one map, other characters, the log ---

#[test]
fn maps_are_independent_and_follow_their_own_settings() {
    let setups = vec![
        MapSetup {
            name: "m0".into(),
            legs: vec!["a".into(), "b".into()],
            settings: MirrorSettings::default(),
        },
        MapSetup {
            name: "m1".into(),
            legs: vec!["c".into(), "d".into()],
            settings: wait(5.0, None, AfterWindow::Remove),
        },
    ];
    let mut mon = Monitor::new(setups, Duration::ZERO);
    let status = |chars: [Option<Health>; 2]| StatusView {
        legs: chars.to_vec(),
        in_sync_regions: 100,
        total_regions: 128,
        log_failed: false,
    };
    let dead = [Some(Health::Alive), Some(Health::Dead)];
    let acts = mon.handle(
        t(1.0),
        Input::Status {
            map: 1,
            status: status(dead),
        },
    );
    assert!(matches!(&acts[..], [Action::Note { map: 1, .. }]));
    let acts = mon.handle(
        t(1.0),
        Input::Status {
            map: 0,
            status: status(dead),
        },
    );
    assert!(matches!(
        &acts[..],
        [Action::RemoveLeg { map: 0, leg: 1, .. }]
    ));
    assert_eq!(
        mon.describe(&acts[0]),
        "m0: remove leg b: leg shows D (a write failed); on_dead = remove"
    );
    let mut removed = Vec::new();
    let mut now = t(1.0);
    while let Some(at) = mon.next_deadline() {
        now = at;
        removed.extend(
            mon.handle_timeout(at)
                .into_iter()
                .filter(|a| matches!(a, Action::RemoveLeg { .. })),
        );
    }
    assert_eq!(now, t(6.0));
    assert!(matches!(
        &removed[..],
        [Action::RemoveLeg { map: 1, leg: 1, .. }]
    ));
    assert!(matches!(mon.leg_state(0, 1), LegState::Removing { .. }));
}

#[test]
fn flush_and_unknown_failures_follow_the_dead_policy() {
    for c in ["AF", "AU"] {
        let mut sim = Sim::new(wait(5.0, None, AfterWindow::Remove));
        sim.status(0.0, "AA", 128, 128);
        let acts = sim.status(1.0, c, 128, 128);
        assert!(
            matches!(
                &acts[..],
                [Action::Note {
                    reason: Reason::WaitingForLeg { .. },
                    ..
                }]
            ),
            "{c}"
        );
        // A worse character while waiting does not restart the window.
        assert!(sim.status(2.0, "AD", 120, 128).is_empty(), "{c}");
        let acts = sim.run_until(6.0);
        assert!(acts.iter().any(is_remove), "{c}: {}", sim.dump());
    }
}

#[test]
fn a_read_failure_that_becomes_a_write_failure_is_handled_as_dead() {
    let mut sim = Sim::new(MirrorSettings {
        on_read_failure: ReadFailurePolicy::Relocate,
        ..wait(5.0, None, AfterWindow::Remove)
    });
    sim.status(0.0, "AA", 128, 128);
    assert!(matches!(
        &sim.status(1.0, "AR", 128, 128)[..],
        [Action::ScanSlice { leg: 1, .. }]
    ));
    assert!(matches!(
        &sim.status(2.0, "AD", 120, 128)[..],
        [Action::Note {
            reason: Reason::WaitingForLeg { .. },
            ..
        }]
    ));
    // The locating scan's late answer is ignored: the leg is waited on now.
    assert!(sim
        .scan_result(2.5, 1, 0..128, ScanOutcome::Unreadable(vec![1]))
        .is_empty());
}

#[test]
fn a_failed_log_device_is_noted_once() {
    let mut mon = Monitor::new(
        vec![MapSetup {
            name: "m0".into(),
            legs: vec!["a".into(), "b".into()],
            settings: MirrorSettings::default(),
        }],
        Duration::ZERO,
    );
    let status = |log_failed| Input::Status {
        map: 0,
        status: StatusView {
            legs: vec![Some(Health::Alive); 2],
            in_sync_regions: 8,
            total_regions: 8,
            log_failed,
        },
    };
    assert!(mon.handle(t(0.0), status(false)).is_empty());
    let acts = mon.handle(t(1.0), status(true));
    assert!(matches!(
        &acts[..],
        [Action::Note {
            reason: Reason::LogDeviceFailed,
            ..
        }]
    ));
    assert!(mon.handle(t(2.0), status(true)).is_empty());
}

#[test]
fn a_failed_resync_restart_gives_up() {
    let mut sim = Sim::new(retry(3, 5.0));
    sim.status(0.0, "AA", 64, 128);
    sim.status(1.0, "SA", 100, 128);
    let acts = sim.input(
        1.1,
        Input::ActionFailed {
            map: 0,
            leg: None,
            kind: ActionKind::RestartResync,
            detail: "suspend: EBUSY".into(),
        },
        "restart failed".into(),
    );
    assert!(matches!(&acts[..], [Action::GiveUp { leg: None, .. }]));
    assert_eq!(sim.mon.next_deadline(), None);
    assert!(matches!(sim.state(0), LegState::Abandoned { .. }));
}
