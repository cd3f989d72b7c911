//! Scenario tests of the core on a virtual clock, driven by the fake driver of [`crate::sim`]
//! (see there for the defaults every test starts from).

use crate::settings::{Failback, MarginalPathgroups, NoPathRetry, PathChecker, Setting};

use super::*;
use crate::sim::*;

// ---- checkers ---------------------------------------------------------------------------

#[test]
fn checker_down_fails_an_active_path_once() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(2.5).answer(A, down());
    sim.at(30.0);
    // a's checks: 0, 1, 3 (down), then every second while down.
    assert_eq!(sim.times(fails(A)), ts(&[3.01]), "{}", sim.dump());
    assert_eq!(sim.reasons(fails(A)), ["checker directio: down (EIO)"]);
    assert_eq!(
        sim.core.path_state(A),
        &PathState::Down {
            since: t(3.01),
            detail: "EIO".into()
        }
    );
    // Our own fail_path, reported back by the kernel, is not a kernel failure.
    assert!(
        sim.times(note(|r| matches!(r, Reason::KernelFailed { .. })))
            .is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times(checks(A)).len(), 3 + 27, "{}", sim.dump());
}

#[test]
fn no_fail_path_for_a_path_the_kernel_failed_already() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(2.5).answer(A, down()).kernel_fails(A);
    sim.at(20.0);
    assert!(sim.times(any_fail).is_empty(), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(|r| matches!(
            r,
            Reason::CheckerDownAlreadyFailed { .. }
        ))),
        ["checker directio: down (EIO); the kernel had already failed it"],
        "{}",
        sim.dump()
    );
    assert!(sim.core.path_state(A).is_down());
}

#[test]
fn a_timed_out_check_fails_the_path() {
    let mut sim = Sim::one(failover(settings(|s| {
        s.checker_timeout = Setting::builtin(t(2.0));
    })));
    sim.at(2.5)
        .answer(A, CheckResult::TimedOut)
        .latency(A, t(2.0));
    sim.at(10.0);
    // The check started at 3 answers at 5.
    assert_eq!(sim.times(fails(A)), ts(&[5.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(fails(A)),
        ["checker directio: no answer within checker_timeout 2s, counts as down"]
    );
    assert!(
        matches!(sim.core.path_state(A), PathState::Down { detail, .. } if detail == "timed out")
    );
}

#[test]
fn checker_up_reinstates_a_path_the_kernel_failed_at_a_prompt_recheck() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    // a is healthy: checks at 0, 1, 3, 7, 11; the next one would be at 15.
    sim.at(12.0).kernel_fails(A);
    assert_eq!(
        sim.reasons(note(|r| matches!(r, Reason::KernelFailed { .. }))),
        ["the kernel failed the path (fail count 1); next check within 1s"]
    );
    sim.at(22.0);
    // The kernel failure moves the next check to 12 + polling_interval and resets the interval.
    assert_eq!(
        in_window(sim.times(checks(A)), 11.5, 22.0),
        ts(&[13.0, 14.0, 16.0, 20.0]),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times(reinstates(A)), ts(&[13.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(reinstates(A)),
        ["checker directio: up; the kernel had failed it"]
    );
    assert!(sim.view().paths[0].kernel.active);
}

#[test]
fn a_ghost_path_is_never_failed_and_checked_like_an_up_one() {
    let mut sim = Sim::one(failover(settings(|s| {
        s.path_checker = Setting::builtin(PathChecker::Tur);
    })));
    sim.at(0.5).answer(A, CheckResult::Ghost);
    sim.at(20.0);
    assert!(sim.times(any_fail).is_empty(), "{}", sim.dump());
    // Usable: its checks back off as an up path's do (0, 1, 3, 7, 11, 15, 19).
    assert_eq!(
        sim.times(checks(A)),
        ts(&[0.0, 1.0, 3.0, 7.0, 11.0, 15.0, 19.0]),
        "{}",
        sim.dump()
    );
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
}

#[test]
fn a_down_path_found_ghost_is_reinstated() {
    let mut sim = Sim::one(failover(settings(|s| {
        s.path_checker = Setting::builtin(PathChecker::Tur);
    })));
    sim.at(2.5).answer(A, down());
    sim.at(5.5).answer(A, CheckResult::Ghost);
    sim.at(30.0);
    assert_eq!(sim.times(fails(A)), ts(&[3.01]), "{}", sim.dump());
    assert_eq!(sim.times(reinstates(A)), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(reinstates(A)),
        ["checker tur: up again after 3s down"]
    );
}

#[test]
fn a_pending_answer_keeps_the_state_and_rechecks_after_a_second() {
    let mut sim = Sim::one(failover(settings(|s| {
        s.path_checker = Setting::builtin(PathChecker::Tur);
    })));
    // a is up (checked at 0, 1, 3); at 7 and 8 it is transitioning, then up again.
    sim.at(6.5).answer(A, CheckResult::Pending);
    sim.at(8.5).answer(A, CheckResult::Up);
    sim.at(20.0);
    assert!(sim.times(any_fail).is_empty(), "{}", sim.dump());
    assert!(sim.times(reinstates(A)).is_empty(), "{}", sim.dump());
    // 7 and 8 pending (each recheck 1 s after its answer), 9 up; then every
    // max_polling_interval (4 s) again, as before.
    assert_eq!(
        in_window(sim.times(checks(A)), 6.5, 20.0),
        ts(&[7.0, 8.01, 9.02, 13.02, 17.02]),
        "{}",
        sim.dump()
    );
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
}

#[test]
fn a_down_path_that_comes_back_is_reinstated_once() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(2.5).answer(A, down());
    sim.at(5.5).answer(A, CheckResult::Up);
    sim.at(30.0);
    assert_eq!(sim.times(fails(A)), ts(&[3.01]), "{}", sim.dump());
    assert_eq!(sim.times(reinstates(A)), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(reinstates(A)),
        ["checker directio: up again after 3s down"]
    );
}

#[test]
fn the_interval_grows_to_max_while_healthy_and_resets_on_change() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(16.0);
    assert_eq!(
        sim.times(checks(A)),
        ts(&[0.0, 1.0, 3.0, 7.0, 11.0, 15.0]),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.view().paths[0].interval, t(4.0));
    sim.answer(A, down());
    sim.at(22.5).answer(A, CheckResult::Up);
    sim.at(35.0);
    // Down at 19: every second while down; up at 23: 1s, then 2s, then 4s.
    assert_eq!(
        in_window(sim.times(checks(A)), 16.0, 35.0),
        ts(&[19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 26.0, 30.0, 34.0]),
        "{}",
        sim.dump()
    );
}

#[test]
fn no_second_check_while_one_is_pending() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.latency(A, t(2.5));
    sim.at(20.0);
    // A check due while the previous one runs waits for its answer; the next one counts from
    // the start of the previous one.
    assert_eq!(
        sim.times(checks(A)),
        ts(&[0.0, 2.5, 5.0, 9.0, 13.0, 17.0]),
        "{}",
        sim.dump()
    );
    let started = sim.times(checks(A));
    for w in started.windows(2) {
        assert!(
            sim.delivered
                .iter()
                .any(|&(at, p)| p == A && at > w[0] && at <= w[1]),
            "check at {:?} started before the one at {:?} answered",
            w[1],
            w[0]
        );
    }
}

#[test]
fn checker_none_never_runs_a_checker_and_reinstates_at_the_next_check() {
    let mut sim = Sim::one(failover(settings(|s| {
        s.path_checker = Setting::builtin(PathChecker::None);
    })));
    // "Checks" (no checker runs) at 1, 3, 7, 11, ...
    sim.at(8.0).kernel_fails(A);
    sim.at(20.0);
    assert!(
        sim.times(|a| matches!(a, Action::RunChecker { .. }))
            .is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times(reinstates(A)), ts(&[9.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(reinstates(A)),
        ["checker none: up by definition; the kernel had failed it"]
    );
    assert!(matches!(sim.core.path_state(B), PathState::Up { .. }));
}

#[test]
fn a_table_reload_that_reactivates_a_down_path_fails_it_again_once() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(2.5).answer(A, down());
    sim.at(5.0).kernel_reloads(0);
    sim.at(12.0);
    assert_eq!(sim.times(fails(A)), ts(&[3.01, 5.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(fails(A))[1],
        "checker directio: down (EIO) since 3.01s, but the kernel has it active again"
    );
}

// ---- path groups and failback -------------------------------------------------------------

#[test]
fn best_group_prefers_priority_then_usable_paths_then_table_order() {
    let map = MapSetup {
        name: "m".into(),
        settings: settings(|_| {}),
        groups: vec![vec![0], vec![1, 2], vec![3]],
        paths: vec![
            path("p0", 20),
            path("p1", 20),
            path("p2", 20),
            path("p3", 5),
        ],
    };
    let mut sim = Sim::one(map);
    sim.at(0.5);
    // Equal priority: the group with more usable paths, although it comes later.
    assert_eq!(sim.view().best_group, Some(1));
    assert_eq!(sim.view().groups[1].prio, Some(20));
    sim.kernel_fails(PathRef { map: 0, path: 2 });
    // Equal priority and paths: the earlier group.
    assert_eq!(sim.view().best_group, Some(0));
    sim.kernel_fails(PathRef { map: 0, path: 0 });
    assert_eq!(sim.view().best_group, Some(1));
    sim.kernel_fails(PathRef { map: 0, path: 1 });
    assert_eq!(sim.view().best_group, Some(2));
    assert_eq!(sim.view().groups[1].prio, None);
    sim.kernel_fails(PathRef { map: 0, path: 3 });
    assert_eq!(sim.view().best_group, None);
}

#[test]
fn group_priority_is_the_average_of_usable_paths() {
    let map = MapSetup {
        name: "m".into(),
        settings: settings(|_| {}),
        groups: vec![vec![0, 1], vec![2]],
        paths: vec![path("x", 50), path("y", 10), path("z", 40)],
    };
    let mut sim = Sim::one(map);
    sim.at(0.5);
    assert_eq!(sim.view().groups[0].prio, Some(30));
    assert_eq!(sim.view().best_group, Some(1));
    sim.kernel_fails(PathRef { map: 0, path: 1 });
    assert_eq!(sim.view().groups[0].prio, Some(50));
    assert_eq!(sim.view().best_group, Some(0));
}

#[test]
fn failback_immediate_switches_when_the_best_group_is_usable_again() {
    let mut sim = a_fails_and_returns(Failback::Immediate);
    sim.at(30.0);
    assert_eq!(sim.times(switches), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(sim.times(switches_to(0)), ts(&[6.01]));
    assert_eq!(
        sim.reasons(switches),
        ["failback immediate: group 1 (prio 50) is usable again and preferred to group 2"]
    );
    assert_eq!(sim.view().active_group, Some(0));
}

#[test]
fn failback_manual_never_switches() {
    let mut sim = a_fails_and_returns(Failback::Manual);
    sim.at(30.0);
    assert!(sim.times(switches).is_empty(), "{}", sim.dump());
    assert_eq!(sim.view().best_group, Some(0));
    assert_eq!(sim.view().active_group, Some(1));
}

#[test]
fn failback_deferred_switches_after_the_delay() {
    let mut sim = a_fails_and_returns(Failback::Deferred(t(10.0)));
    sim.at(10.0);
    assert!(
        matches!(sim.view().failback, FailbackState::Armed { due, group: 0, .. } if due == t(16.01))
    );
    sim.at(30.0);
    assert_eq!(
        sim.reasons(note(|r| matches!(r, Reason::FailbackDeferredArmed { .. }))),
        ["deferred failback armed, 10s: group 1 (prio 50) is usable and preferred to group 2"]
    );
    assert_eq!(sim.times(switches_to(0)), ts(&[16.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(switches),
        ["failback 10s: group 1 (prio 50) stayed usable for 10s"]
    );
    assert_eq!(sim.view().failback, FailbackState::Idle);
}

#[test]
fn failback_deferred_is_cancelled_when_a_path_fails_and_rearmed_later() {
    let mut sim = a_fails_and_returns(Failback::Deferred(t(10.0)));
    // a back at 6 (armed, due 16); a's checks 7, 9, 13: down again at 13.
    sim.at(9.5).answer(A, down());
    sim.at(14.5).answer(A, CheckResult::Up);
    sim.at(40.0);
    let armed = |r: &Reason| matches!(r, Reason::FailbackDeferredArmed { .. });
    let cancelled = |r: &Reason| matches!(r, Reason::FailbackDeferredCancelled { .. });
    assert_eq!(sim.times(note(armed)), ts(&[6.01, 15.01]), "{}", sim.dump());
    assert_eq!(sim.times(note(cancelled)), ts(&[13.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(cancelled)),
        ["deferred failback (10s) cancelled: the checker failed path a"]
    );
    // Not at 16 (cancelled), but 10s after the re-arm.
    assert_eq!(sim.times(switches), ts(&[25.01]), "{}", sim.dump());
}

#[test]
fn failback_deferred_starts_over_when_another_path_fails() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Deferred(t(10.0)));
    })));
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    sim.at(5.5).answer(A1, CheckResult::Up);
    // a1 back at 6: armed, due 16. The kernel fails b1 at 10: group 1 is still usable (a1)
    // and group 2 still active (b2), so the countdown starts over.
    sim.at(10.0).kernel_fails(B1);
    sim.at(30.0);
    let armed = |r: &Reason| matches!(r, Reason::FailbackDeferredArmed { .. });
    let cancelled = |r: &Reason| matches!(r, Reason::FailbackDeferredCancelled { .. });
    assert_eq!(sim.times(note(armed)), ts(&[6.01, 10.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(cancelled)),
        ["deferred failback (10s) cancelled: the kernel failed path b1"]
    );
    assert_eq!(sim.times(switches), ts(&[20.0]), "{}", sim.dump());
}

#[test]
fn failback_followover_switches_when_every_other_path_of_the_group_was_down() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    sim.at(5.5).answer(A1, CheckResult::Up);
    sim.at(20.0);
    assert!(sim.view().paths[1].state.is_down());
    assert_eq!(sim.times(switches_to(0)), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(switches),
        [
            "failback followover: path a1 came back and every other path of group 1 (prio 50) \
          was down"
        ]
    );
}

#[test]
fn failback_followover_ignores_paths_the_kernel_failed_while_the_checker_finds_them_up() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    // a2 is down; a1 is failed by the kernel only (a trespass): the checker still finds it up.
    sim.at(2.5).answer(A2, down());
    sim.at(3.5).kernel_fails(A1);
    assert_eq!(sim.view().active_group, Some(1));
    assert!(matches!(sim.core.path_state(A1), PathState::Up { .. }));
    sim.at(5.5).answer(A2, CheckResult::Up);
    sim.at(20.0);
    // a1 was reinstated at its prompt re-check (not a "coming back"); a2 came back later, but
    // a1 was not down according to the checker: no followover.
    assert_eq!(sim.times(reinstates(A1)), ts(&[4.51]), "{}", sim.dump());
    assert_eq!(sim.times(reinstates(A2)), ts(&[6.01]), "{}", sim.dump());
    assert!(sim.times(switches).is_empty(), "{}", sim.dump());
    assert_eq!(sim.view().active_group, Some(1));
    assert_eq!(sim.view().best_group, Some(0));
}

#[test]
fn failback_followover_ignores_a_kernel_only_failure_of_one_primary_path() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    // Both primaries failed by the kernel only; the checker finds them up and they are
    // reinstated at their next check: that is no "coming back" for followover.
    sim.at(2.5).kernel_fails(A1).kernel_fails(A2);
    sim.at(20.0);
    assert_eq!(sim.times(reinstates(A1)), ts(&[3.01]), "{}", sim.dump());
    assert!(sim.times(switches).is_empty(), "{}", sim.dump());
}

// ---- no_path_retry ----------------------------------------------------------------------

#[test]
fn no_path_retry_stops_queueing_after_n_intervals_and_queues_when_a_path_is_back() {
    let mut sim = all_fail(NoPathRetry::Retries(3));
    sim.at(8.5).answer(B, CheckResult::Up);
    sim.at(20.0);
    let started = |r: &Reason| matches!(r, Reason::NoPathRetryStarted { .. });
    assert_eq!(sim.times(note(started)), ts(&[3.01]), "{}", sim.dump());
    assert_eq!(sim.times(fail_if_no_path), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(fail_if_no_path),
        ["no_path_retry 3: no path for 3 × 1s, stop queueing"]
    );
    assert_eq!(sim.times(queue_if_no_path), ts(&[9.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(queue_if_no_path),
        ["a path is back (b): queue IO again"]
    );
    assert_eq!(sim.view().no_path_retry, RetryState::Idle);
}

#[test]
fn no_path_retry_countdown_interrupted_by_a_returning_path() {
    let mut sim = all_fail(NoPathRetry::Retries(3));
    sim.at(4.5).answer(B, CheckResult::Up);
    // b back at 5 (before the countdown's end at 6); b's checks 6, 8: down again at 8.
    sim.at(7.5).answer(B, down());
    sim.at(20.0);
    let started = |r: &Reason| matches!(r, Reason::NoPathRetryStarted { .. });
    let stopped = |r: &Reason| matches!(r, Reason::NoPathRetryStopped { .. });
    assert_eq!(
        sim.times(note(started)),
        ts(&[3.01, 8.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times(note(stopped)), ts(&[5.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(stopped)),
        ["no_path_retry 3: path b is usable again after 2s, countdown stopped"]
    );
    // Only the second, uninterrupted countdown fails IO.
    assert_eq!(sim.times(fail_if_no_path), ts(&[11.01]), "{}", sim.dump());
    assert!(sim.times(queue_if_no_path).is_empty(), "{}", sim.dump());
    assert!(matches!(sim.view().no_path_retry, RetryState::Failed { since } if since == t(11.01)));
}

#[test]
fn no_path_retry_queue_and_fail_leave_it_to_the_table() {
    for retry in [NoPathRetry::Queue, NoPathRetry::Fail] {
        let mut sim = all_fail(retry);
        sim.at(30.0);
        assert!(
            sim.times(fail_if_no_path).is_empty(),
            "{retry:?}{}",
            sim.dump()
        );
        assert!(
            sim.times(queue_if_no_path).is_empty(),
            "{retry:?}{}",
            sim.dump()
        );
        assert!(sim
            .times(note(|r| matches!(r, Reason::NoPathRetryStarted { .. })))
            .is_empty());
        assert_eq!(sim.view().no_path_retry, RetryState::Idle);
    }
}

// ---- flap damping (san_path_err) ------------------------------------------------------------

#[test]
fn damping_holds_a_flapping_path_back_then_reinstates_it() {
    let mut sim = damped(100);
    flap_a(&mut sim);
    sim.at(6.0);
    assert!(
        matches!(sim.core.path_state(A), PathState::Delayed { until, .. } if *until == t(9.51))
    );
    assert!(!sim.view().paths[0].usable);
    sim.at(20.0);
    let held = |r: &Reason| matches!(r, Reason::DampingHeld { .. });
    assert_eq!(sim.times(note(held)), ts(&[4.51]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(held)),
        ["san_path_err: 3 failures > threshold 2, held back for 5s"]
    );
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 3.51, 9.51]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[2],
        "san_path_err: held back for 5s and the checker still finds it up"
    );
    assert_eq!(sim.view().paths[0].san_path_failures, 0);
}

#[test]
fn damping_never_holds_back_the_last_usable_path() {
    let mut sim = damped(100);
    sim.at(0.5).answer(B, down());
    flap_a(&mut sim);
    sim.at(20.0);
    assert_eq!(sim.times(fails(B)), ts(&[1.01]));
    assert!(
        sim.times(note(|r| matches!(r, Reason::DampingHeld { .. })))
            .is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 3.51, 4.51]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[2],
        "last usable path: not held back despite flapping (3 failures > threshold 2)"
    );
}

#[test]
fn damping_releases_a_held_path_when_the_other_paths_fail() {
    let mut sim = damped(100);
    flap_a(&mut sim);
    sim.at(6.0).kernel_fails(B);
    sim.at(20.0);
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 3.51, 6.0]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[2],
        "last usable path: not held back despite flapping (3 failures > threshold 2)"
    );
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
}

#[test]
fn damping_forgets_a_failure_every_forget_rate_healthy_checks() {
    let mut sim = damped(2);
    sim.at(1.5).kernel_fails(A);
    sim.at(3.0).kernel_fails(A);
    // Reinstated at 2.5 and 3.5; healthy checks at 4.5, 6.5, 10.5, 14.5.
    sim.at(4.0);
    assert_eq!(sim.view().paths[0].san_path_failures, 2);
    sim.at(7.0);
    assert_eq!(sim.view().paths[0].san_path_failures, 1);
    sim.at(15.0);
    assert_eq!(sim.view().paths[0].san_path_failures, 0);
    // Two more failures stay under the threshold after forgetting.
    sim.at(16.0).kernel_fails(A);
    sim.at(17.5).kernel_fails(A);
    sim.at(30.0);
    assert!(
        sim.times(note(|r| matches!(r, Reason::DampingHeld { .. })))
            .is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times(reinstates(A)).len(), 4, "{}", sim.dump());
}

#[test]
fn damping_held_path_that_fails_the_checker_is_down_not_delayed() {
    let mut sim = damped(100);
    flap_a(&mut sim);
    // Held back at 4.5; checks at 5.5, 6.5: down at 6.5.
    sim.at(6.0).answer(A, down());
    sim.at(12.0);
    assert!(sim.core.path_state(A).is_down(), "{}", sim.dump());
    // The recovery timer was cancelled: no reinstatement at 9.51.
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 3.51]),
        "{}",
        sim.dump()
    );
}

// ---- reasons ------------------------------------------------------------------------------

#[test]
fn reasons_read_as_sentences() {
    let cases = [
        (
            Reason::NoPathRetryStarted {
                retries: 3,
                interval: t(1.5),
            },
            "no_path_retry 3: no usable path, queueing IO for 3 × 1.5s",
        ),
        (
            Reason::CheckerUpAgain {
                checker: PathChecker::Directio,
                down_for: t(0.25),
            },
            "checker directio: up again after 250ms down",
        ),
        (
            Reason::FailbackDeferredDropped {
                delay: t(10.0),
                active: Some(1),
                best: Some(1),
            },
            "deferred failback (10s) dropped: group 2 is active already",
        ),
        (
            Reason::FailbackDeferredDropped {
                delay: t(10.0),
                active: Some(1),
                best: None,
            },
            "deferred failback (10s) dropped: no group is usable",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn describe_names_map_path_and_one_based_group() {
    let sim = Sim::one(failover(settings(|_| {})));
    let a = Action::SwitchGroup {
        map: 0,
        group: 0,
        reason: Reason::FailbackImmediate {
            group: 0,
            prio: 50,
            active: 1,
        },
    };
    assert_eq!(
        sim.core.describe(&a),
        "m: switch_group 1: failback immediate: group 1 (prio 50) is usable again and \
         preferred to group 2"
    );
}

// ---- marginal paths (marginal_path_*) -----------------------------------------------------

#[test]
fn marginal_two_kernel_failures_within_the_window_start_sampling() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    // Held, not sampled yet: that waits for a check that finds it up.
    assert!(
        matches!(sim.core.path_state(A), PathState::Triggered { since, .. } if *since == t(4.0)),
        "{:?}",
        sim.core.path_state(A)
    );
    assert!(sim.times(sample_ios(A)).is_empty());
    sim.at(5.5);
    assert!(
        matches!(
            sim.core.path_state(A),
            PathState::Sampling { since, until, round: 1, .. } if *since == t(5.01) && *until == t(7.01)
        ),
        "{:?}{}",
        sim.core.path_state(A),
        sim.dump()
    );
    assert_eq!(sim.times(note(triggered)), ts(&[4.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(triggered)),
        [
            "marginal_path: the path failed twice within 2.5s (marginal_path_double_failed_time \
          10s): held, to be sampled for 2s (window detector) from the next check that finds it up"
        ]
    );
    // The kernel had failed it already: no fail_path; the first burst at the check.
    assert!(sim.times(any_fail).is_empty(), "{}", sim.dump());
    assert_eq!(sim.times(sample_ios(A))[..1], ts(&[5.01]));
    assert!(sim.log.iter().any(|(_, a)| matches!(
        a,
        Action::SampleIo { path, count: 10, timeout } if *path == A && *timeout == t(0.5)
    )));
    assert!(!sim.view().paths[0].usable);
}

#[test]
fn marginal_failures_farther_apart_than_the_window_do_not_trigger() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.at(1.5).kernel_fails(A);
    // Reinstated at 2.51; 11.5s later: too far apart, but remembered.
    sim.at(13.0).kernel_fails(A);
    sim.at(14.5);
    assert!(sim.times(note(triggered)).is_empty(), "{}", sim.dump());
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
    assert_eq!(sim.view().paths[0].last_kernel_failure, Some(t(13.0)));
    // 7s after the remembered one: sampled.
    sim.at(20.0).kernel_fails(A);
    assert_eq!(sim.times(note(triggered)), ts(&[20.0]), "{}", sim.dump());
}

#[test]
fn marginal_no_reinstatement_by_the_checker_while_sampling() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    sim.at(6.99);
    // The checker keeps checking the sampled path and finds it up...
    assert!(
        !in_window(sim.times(checks(A)), 5.02, 6.99).is_empty(),
        "{}",
        sim.dump()
    );
    // ...but only the checker's reinstatement after the first failure happened.
    assert_eq!(sim.times(reinstates(A)), ts(&[2.51]), "{}", sim.dump());
    assert!(!sim.view().paths[0].kernel.active);
}

#[test]
fn marginal_window_verdict_good_reinstates() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    sim.at(10.0);
    assert_eq!(sim.times(sample_ios(A)).len(), 14, "{}", sim.dump());
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 7.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[1],
        "marginal_path: sample good after 2s: 0 errors in 140 reads = 0‰; window: error rate \
         at most the threshold 100‰"
    );
    assert!(matches!(sim.core.path_state(A), PathState::Up { since } if *since == t(7.01)));
    assert_eq!(sim.view().paths[0].last_kernel_failure, None);
    assert!(sim.times(sample_ios(A)).iter().all(|&at| at < t(7.01)));
}

#[test]
fn marginal_window_verdict_bad_then_recheck_after_the_gap_then_good() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::failing(2, 10));
    flaky_a(&mut sim);
    sim.at(7.5);
    assert_eq!(sim.times(note(verdict_bad)), ts(&[7.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(verdict_bad)),
        [
            "marginal_path: sample bad after 2s: 28 errors in 140 reads = 200‰; window: error \
          rate above the threshold 100‰; kept out, sampled again in 5s"
        ]
    );
    assert!(
        matches!(
            sim.core.path_state(A),
            PathState::Marginal { next_sample_at, round: 1, evidence, .. }
                if *next_sample_at == t(12.01) && evidence.errors == 28
        ),
        "{:?}",
        sim.core.path_state(A)
    );
    assert!(!sim.view().paths[0].usable);
    // The path heals; the first check after the gap (12.01) samples it again and the sample
    // reinstates it.
    sim.at(8.0).sampler(A, Sampler::ok());
    sim.at(20.0);
    let rechecked = |r: &Reason| matches!(r, Reason::MarginalRecheck { round: 2, .. });
    assert_eq!(sim.times(note(rechecked)), ts(&[12.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(rechecked)),
        [
            "marginal_path: marginal for marginal_path_err_recheck_gap_time 5s: sampling it again \
          for 2s (sample 2)"
        ]
    );
    assert!(in_window(sim.times(sample_ios(A)), 7.01, 12.0).is_empty());
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 14.01]),
        "{}",
        sim.dump()
    );
    assert!(sim.reasons(reinstates(A))[1].starts_with("marginal_path: sample good after 2s"));
}

#[test]
fn marginal_a_timed_out_sample_read_counts_once() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::Silent);
    flaky_a(&mut sim);
    sim.at(5.2);
    for _ in 0..8 {
        sim.sample_answer(A, SampleOutcome::Ok);
    }
    sim.sample_answer(A, eio());
    sim.sample_answer(A, SampleOutcome::TimedOut);
    let evidence = |sim: &Sim| match sim.core.path_state(A) {
        PathState::Sampling { evidence, .. } => *evidence,
        other => panic!("not sampling: {other:?}"),
    };
    let want = SampleEvidence {
        sent: 10,
        answered: 10,
        errors: 2,
        timed_out: 1,
    };
    assert_eq!(evidence(&sim), want);
    // The timed-out read completes late after all: nothing is waiting for it.
    sim.sample_answer(A, eio());
    assert_eq!(evidence(&sim), want);
    // With a driver that times reads out: one burst of 10, one of which times out.
    let mut sim = Sim::one(failover(marginal(|_| {})));
    let mut pattern = vec![SampleOutcome::Ok; 9];
    pattern.push(SampleOutcome::TimedOut);
    sim.sampler(A, Sampler::pattern(pattern));
    flaky_a(&mut sim);
    sim.at(10.0);
    let (good, e) = verdict_evidence(&sim).expect("a verdict");
    assert_eq!((e.errors, e.timed_out), (e.answered / 10, e.answered / 10));
    // 100‰ is the threshold itself: at most the threshold is good (as in multipath-tools).
    assert!(good, "{}", sim.dump());
    // The timeouts stretch the bursts: the next one 100ms after the timeout.
    assert_eq!(
        sim.times(sample_ios(A))[..3],
        ts(&[5.01, 5.61, 6.21]),
        "{}",
        sim.dump()
    );
}

#[test]
fn marginal_results_after_the_sample_ended_are_ignored() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::Silent);
    flaky_a(&mut sim);
    sim.at(7.5);
    // Nothing answered: no evidence against the path (as in multipath-tools).
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 7.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[1],
        "marginal_path: sample good after 2s: 0 errors in 0 reads = no rate (30 more \
         unanswered, ignored); window: error rate at most the threshold 100‰"
    );
    let before = sim.log.len();
    for _ in 0..30 {
        sim.sample_answer(A, eio());
    }
    assert_eq!(sim.log.len(), before, "{}", sim.dump());
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
}

#[test]
fn marginal_a_table_reload_does_not_bring_a_sampled_path_back() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    sim.at(6.0).kernel_reloads(0);
    assert_eq!(sim.times(fails(A)), ts(&[6.0]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(fails(A)),
        ["marginal_path: being sampled, but the kernel has it active again"]
    );
    assert!(matches!(sim.core.path_state(A), PathState::Sampling { .. }));
}

#[test]
fn marginal_sequential_stops_after_three_reads_of_a_clearly_bad_path() {
    // threshold 100‰: acceptable 25‰, marginal 200‰; alpha = beta = 0.01. An error adds
    // ln 8 = 2.08 to the statistic, the upper boundary is ln 99 = 4.60: three errors.
    let mut sim = Sim::one(failover(marginal(sequential)));
    sim.sampler(A, Sampler::failing(1, 1));
    flaky_a(&mut sim);
    // (rechecked from 10.02)
    sim.at(10.0);
    assert_eq!(sim.times(note(verdict_bad)), ts(&[5.02]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(note(verdict_bad)),
        ["marginal_path: sample bad after 10ms: 3 errors in 3 reads = 1000‰ (7 more \
          unanswered, ignored); sequential test: marginal error rate 200‰ rather than 25‰ (log-likelihood \
          ratio 6.24, boundaries -4.60 and 4.60); kept out, sampled again in 5s"]
    );
    assert_eq!(sim.times(sample_ios(A)), ts(&[5.01]), "{}", sim.dump());
}

#[test]
fn marginal_sequential_stops_after_24_reads_of_a_clearly_good_path() {
    // A good read adds ln(0.8/0.975) = -0.198; the lower boundary ln(0.01/0.99) = -4.60 is
    // crossed at the 24th: in the third burst, at 5.24 instead of 7.01.
    let mut sim = Sim::one(failover(marginal(sequential)));
    flaky_a(&mut sim);
    sim.at(10.0);
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 5.24]),
        "{}",
        sim.dump()
    );
    let (good, e) = verdict_evidence(&sim).unwrap();
    assert!(good);
    assert_eq!((e.answered, e.sent, e.errors), (24, 30, 0));
    assert!(
        sim.reasons(reinstates(A))[1]
            .contains("sequential test: acceptable error rate 25‰ rather than 200‰"),
        "{}",
        sim.dump()
    );
}

/// Reads to a sequential verdict over `runs` triggers of a path erring at `permille`: (mean
/// reads, share of marginal verdicts).
fn sequential_runs(permille: u32, runs: u64) -> (f64, f64) {
    let (mut reads, mut bad) = (0u64, 0u64);
    for seed in 1..=runs {
        let mut sim = Sim::one(failover(marginal(sequential)));
        sim.sampler(
            A,
            Sampler::Random {
                permille,
                state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            },
        );
        flaky_a(&mut sim);
        sim.at(7.5);
        let (good, e) = verdict_evidence(&sim).expect("a verdict");
        reads += u64::from(e.answered);
        bad += u64::from(!good);
    }
    (reads as f64 / runs as f64, bad as f64 / runs as f64)
}

#[test]
fn marginal_sequential_reads_are_in_the_ballpark_of_walds_approximation() {
    let (p0, p1, alpha, beta) = (0.025f64, 0.2f64, 0.01f64, 0.01f64);
    let (upper, lower) = (((1.0 - beta) / alpha).ln(), (beta / (1.0 - alpha)).ln());
    let (per_err, per_ok) = ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln());
    // Wald: E[N | p] = (L(p)·lower + (1 - L(p))·upper) / E[z | p], with L(p0) = 1 - alpha and
    // L(p1) = beta; it ignores the overshoot, so real tests take a little longer.
    let expected = |p: f64, accept: f64| {
        (accept * lower + (1.0 - accept) * upper) / (p * per_err + (1.0 - p) * per_ok)
    };
    let at_p1 = expected(p1, beta); // 17.5 reads
    let at_p0 = expected(p0, 1.0 - alpha); // 32 reads
    let (reads, share) = sequential_runs(200, 300);
    assert!(
        reads > at_p1 * 0.8 && reads < at_p1 * 1.6,
        "at the marginal rate: {reads:.1} reads, theory {at_p1:.1}"
    );
    assert!(share > 0.95, "at the marginal rate: {share} marginal");
    let (reads, share) = sequential_runs(25, 300);
    assert!(
        reads > at_p0 * 0.8 && reads < at_p0 * 1.6,
        "at the acceptable rate: {reads:.1} reads, theory {at_p0:.1}"
    );
    assert!(share < 0.05, "at the acceptable rate: {share} marginal");
    // Clear cases are faster still; the window rule always reads for the whole sample.
    let (reads, share) = sequential_runs(500, 100);
    assert!(reads < 8.0 && share == 1.0, "{reads} {share}");
}

#[test]
fn marginal_pathgroups_on_regroups_into_a_last_group_and_back() {
    let mut sim = Sim::one(failover(marginal(|s| {
        s.marginal_pathgroups = Setting::builtin(MarginalPathgroups::On);
    })));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    sim.at(7.5);
    // Into the marginal group when its sample starts (the check at 5.01 finds it up), as
    // multipathd marks a held path marginal; bad at 7.01: it stays there.
    assert_eq!(sim.times(regroups), ts(&[5.01]), "{}", sim.dump());
    assert_eq!(sim.times(note(verdict_bad)), ts(&[7.01]), "{}", sim.dump());
    let Some((_, Action::Regroup { groups, .. })) = sim.log.iter().find(|(_, a)| regroups(a))
    else {
        unreachable!()
    };
    assert_eq!(groups, &vec![vec![1], vec![0]]);
    assert_eq!(
        sim.reasons(regroups),
        ["marginal_pathgroups on: path a moves to group 2, used after every other group"]
    );
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 5.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[1],
        "marginal_pathgroups on: reinstated in group 2, used after every other group"
    );
    let v = sim.view();
    assert!(v.groups[1].marginal && !v.groups[0].marginal);
    assert_eq!(v.paths[0].group, 1);
    assert!(v.paths[0].usable && v.paths[0].kernel.active);
    // a has the higher prio, but its group is used last.
    assert_eq!(v.best_group, Some(0));
    assert!(
        sim.core
            .describe(&sim.log.iter().find(|(_, a)| regroups(a)).unwrap().1)
            .starts_with("m: reload with groups 1: b, 2 (marginal): a: "),
        "{}",
        sim.dump()
    );
    // Rechecked from 12.01 (in the marginal group, active), good at 14.01: back.
    sim.at(8.0).sampler(A, Sampler::ok());
    sim.at(20.0);
    assert!(sim.times(fails(A)).is_empty(), "{}", sim.dump());
    assert_eq!(sim.times(regroups), ts(&[5.01, 14.01]), "{}", sim.dump());
    assert_eq!(
        sim.reasons(regroups)[1],
        "marginal_pathgroups on: path a moves back to group 1"
    );
    let Some((_, Action::Regroup { groups, .. })) = sim.log.iter().rev().find(|(_, a)| regroups(a))
    else {
        unreachable!()
    };
    assert_eq!(groups, &vec![vec![0], vec![1]]);
    // The reload back re-activates it: no reinstate_path needed.
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 5.01]),
        "{}",
        sim.dump()
    );
    let v = sim.view();
    assert!(v.groups.iter().all(|g| !g.marginal));
    assert_eq!(v.paths[0].group, 0);
    assert!(v.paths.iter().all(|p| p.kernel.active && p.usable));
}

#[test]
fn marginal_pathgroups_on_the_marginal_group_carries_io_when_nothing_else_can() {
    let mut sim = Sim::one(failover(marginal(|s| {
        s.marginal_pathgroups = Setting::builtin(MarginalPathgroups::On);
        s.no_path_retry = Setting::builtin(NoPathRetry::Retries(3));
    })));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    // b's check at 7 finds it down.
    sim.at(6.5).answer(B, down());
    sim.at(11.5);
    // b is down; a, marginal, is reinstated in its group: the map keeps a path.
    assert!(sim.view().paths[1].state.is_down(), "{}", sim.dump());
    assert_eq!(sim.view().best_group, Some(1));
    assert!(sim.view().paths[0].usable);
    assert!(sim
        .times(note(|r| matches!(r, Reason::NoPathRetryStarted { .. })))
        .is_empty());
    // The recheck from 12.01 keeps a in use (the marginal group is) while it is sampled: a
    // counts as usable itself, so this is no early reinstatement.
    sim.at(12.5);
    assert_eq!(
        in_window(sim.times(fails(A)), 11.5, 12.5),
        vec![],
        "{}",
        sim.dump()
    );
    assert!(matches!(
        sim.core.path_state(A),
        PathState::Sampling { round: 2, .. }
    ));
}

// ---- conformance with multipathd (issue 11) ---------------------------------------------
//
// Each test pins one behaviour where pathrig used to differ from multipath-tools; the comment
// names the upstream function it follows.

/// Deviation 1 (upstream: io_err_stat_handle_pathfail, need_io_err_check; a held path's
/// checker-up results leave it PATH_DELAYED): a checker "down" does not end a marginal path's
/// marginal state, so the next "up" does not reinstate it.
#[test]
fn conform_a_marginal_path_stays_out_across_a_checker_down() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    // Sampled from the check at 5.01 (deviation 3); bad at 7.01; recheck gap 5s.
    sim.at(7.5).answer(A, down());
    sim.at(8.5).answer(A, CheckResult::Up);
    sim.at(11.5);
    assert!(
        matches!(sim.core.path_state(A), PathState::Marginal { .. }),
        "{:?}{}",
        sim.core.path_state(A),
        sim.dump()
    );
    assert_eq!(sim.times(reinstates(A)), ts(&[2.51]), "{}", sim.dump());
    assert!(!sim.view().paths[0].usable);
}

/// Deviation 1, during a sample: the checker finding the path down does not stop the sample
/// (the io_err_stat thread goes on); a good verdict while the checker finds it down does not
/// reinstate it, the checker does when it finds it up again.
#[test]
fn conform_a_checker_down_does_not_stop_the_sample() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    sim.at(5.5).answer(A, down());
    sim.at(7.5).answer(A, CheckResult::Up);
    sim.at(10.0);
    assert!(
        !in_window(sim.times(sample_ios(A)), 6.02, 7.0).is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 8.01]),
        "{}",
        sim.dump()
    );
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
}

/// Deviation 2 (upstream: uev_pathfail_check counts every PATH_FAILED uevent, and dm-multipath
/// sends one for a `fail_path` message too): the core's own fail_path counts.
#[test]
fn conform_the_cores_own_fail_path_counts_for_the_trigger() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.at(2.5).answer(A, down());
    sim.at(3.5).answer(A, CheckResult::Up);
    sim.at(4.5).answer(A, down());
    sim.at(5.5);
    // fail_path at 3.01 and 5.01 (the checker), 2s apart: within double_failed_time 10s.
    assert_eq!(sim.times(fails(A)), ts(&[3.01, 5.01]), "{}", sim.dump());
    assert_eq!(sim.times(note(triggered)), ts(&[5.01]), "{}", sim.dump());
}

/// Deviation 3 (upstream: need_io_err_check runs only for a path the checker finds up): a
/// triggered path is not sampled while it is dead; its sample starts at the first check that
/// finds it up, and it is not reinstated by that check.
#[test]
fn conform_sampling_waits_for_the_checker_to_find_the_path_up() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.at(1.5).kernel_fails(A);
    // The path dies just before its second failure; the checker finds it down at 5.01, 6.01.
    sim.at(3.9).answer(A, down());
    sim.at(4.0).kernel_fails(A);
    sim.at(6.5).answer(A, CheckResult::Up);
    sim.at(7.5);
    assert_eq!(sim.times(note(triggered)), ts(&[4.0]), "{}", sim.dump());
    let samples = sim.times(sample_ios(A));
    assert_eq!(samples.first(), Some(&t(7.01)), "{}", sim.dump());
    assert_eq!(sim.times(reinstates(A)), ts(&[2.51]), "{}", sim.dump());
    assert!(matches!(
        sim.core.path_state(A),
        PathState::Sampling { since, round: 1, .. } if *since == t(7.01)
    ));
}

/// Deviation 3, a recheck: the gap's end does not sample a dead path either.
#[test]
fn conform_a_recheck_waits_for_the_checker_to_find_the_path_up() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    // Bad at 7.01, recheck due at 12.01; the checker finds a down from 11 to 14.
    sim.at(10.5).answer(A, down());
    sim.at(13.5).answer(A, CheckResult::Up);
    sim.at(14.5);
    assert!(
        in_window(sim.times(sample_ios(A)), 7.02, 14.0).is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(
        in_window(sim.times(sample_ios(A)), 14.0, 14.5).first(),
        Some(&t(14.02)),
        "{}",
        sim.dump()
    );
    assert!(matches!(
        sim.core.path_state(A),
        PathState::Sampling { round: 2, .. }
    ));
}

/// Deviation 4 (upstream: need_io_err_check, "no paths. recovering early"): with no usable
/// path, a triggered path the checker finds up is reinstated at that check and is no longer
/// marginal; a healthy path coming back later does not take it out again.
#[test]
fn conform_early_reinstatement_clears_the_marginal_state() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.at(0.5).answer(B, down());
    flaky_a(&mut sim);
    sim.at(6.5).answer(B, CheckResult::Up);
    sim.at(10.0);
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 5.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[1],
        "marginal_path: no usable path: reinstated early, no longer marginal"
    );
    assert!(sim.times(sample_ios(A)).is_empty(), "{}", sim.dump());
    assert!(sim.times(fails(A)).is_empty(), "{}", sim.dump());
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
    assert_eq!(sim.times(reinstates(B)), ts(&[7.01]), "{}", sim.dump());
}

/// Deviation 5: pathrig's sample-read timeout stays 1s by default (multipathd's is 60s,
/// IOTIMEOUT_SEC), because pathrig's samples last seconds, not multipathd's 120s at least; a
/// read's timeout must fit in the sample.
#[test]
fn conform_the_sample_read_timeout_defaults_to_one_second() {
    let s = crate::settings::ManagerSettings::default();
    assert_eq!(s.marginal_sampling.io_timeout.value, t(1.0));
    // And the sample reads ask the driver for it.
    let mut sim = Sim::one(failover(marginal(|s| {
        s.marginal_sampling.io_timeout = crate::settings::ManagerSettings::default()
            .marginal_sampling
            .io_timeout;
    })));
    flaky_a(&mut sim);
    sim.at(5.5);
    assert!(sim.log.iter().any(|(_, a)| matches!(
        a,
        Action::SampleIo { path, timeout, .. } if *path == A && *timeout == t(1.0)
    )));
}

/// Deviation 6 (upstream: do_followover_should_failback looks at chkrstate, which a held-back
/// path keeps at down): a path held back by flap damping after being down does not block
/// followover.
#[test]
fn conform_followover_a_held_back_path_counts_as_down() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
        s.san_path_err = Setting::builtin(Some(crate::settings::SanPathErr {
            threshold: 1,
            forget_rate: 100,
            recovery_time: t(10.0),
        }));
    })));
    // a2 fails once by the kernel (reinstated at 1.01), then both primaries are down.
    sim.at(0.5).kernel_fails(A2);
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    // a2 comes back first, with 2 failures: held back; a1 comes back next.
    sim.at(4.5).answer(A2, CheckResult::Up);
    sim.at(5.5).answer(A1, CheckResult::Up);
    sim.at(7.0);
    assert!(
        matches!(sim.core.path_state(A2), PathState::Delayed { .. }),
        "{:?}{}",
        sim.core.path_state(A2),
        sim.dump()
    );
    assert_eq!(sim.times(switches_to(0)), ts(&[6.01]), "{}", sim.dump());
}

/// Deviation 6 (upstream: followover_should_failback runs after the whole checker loop): two
/// paths of the best group that come back in the same round see each other up: no followover.
#[test]
fn conform_followover_decides_after_the_whole_round() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    sim.at(5.5)
        .answer(A1, CheckResult::Up)
        .answer(A2, CheckResult::Up);
    sim.at(10.0);
    assert_eq!(sim.times(reinstates(A1)), ts(&[6.01]), "{}", sim.dump());
    assert_eq!(sim.times(reinstates(A2)), ts(&[6.01]), "{}", sim.dump());
    assert!(sim.times(switches).is_empty(), "{}", sim.dump());
}

/// Deviation 7 (upstream: update_path_state with marginal_pathgroups: a path the io_err_stat
/// code holds is marked marginal and reinstated like any other, in the marginal group): a
/// rechecked path stays in the marginal group, active.
#[test]
fn conform_marginal_pathgroups_on_a_rechecked_path_stays_in_the_marginal_group() {
    let mut sim = Sim::one(failover(marginal(|s| {
        s.marginal_pathgroups = Setting::builtin(MarginalPathgroups::On);
    })));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    sim.at(13.5);
    assert!(
        matches!(sim.core.path_state(A), PathState::Sampling { round: 2, .. }),
        "{:?}{}",
        sim.core.path_state(A),
        sim.dump()
    );
    assert!(sim.times(fails(A)).is_empty(), "{}", sim.dump());
    let v = sim.view();
    assert!(v.groups[v.paths[0].group].marginal, "{}", sim.dump());
    assert!(v.paths[0].kernel.active && v.paths[0].usable);
}

/// Deviation 4, during a sample (an intended difference, see the README): the early
/// reinstatement ends the sample in progress; no verdict follows.
#[test]
fn conform_early_reinstatement_ends_a_sample_in_progress() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    // a is sampled from 5.01; the kernel fails b at 5.5 (b's check is pulled to 6.5), so a's
    // check at 6.01 finds a up with no usable path in the map.
    sim.at(5.5).kernel_fails(B);
    sim.at(10.0);
    assert_eq!(
        sim.times(reinstates(A)),
        ts(&[2.51, 6.01]),
        "{}",
        sim.dump()
    );
    assert_eq!(
        sim.reasons(reinstates(A))[1],
        "marginal_path: no usable path: reinstated early, no longer marginal"
    );
    assert!(
        in_window(sim.times(sample_ios(A)), 6.02, 10.0).is_empty(),
        "{}",
        sim.dump()
    );
    assert_eq!(verdict_evidence(&sim), None, "{}", sim.dump());
    assert!(matches!(sim.core.path_state(A), PathState::Up { .. }));
    assert_eq!(sim.times(reinstates(B)), ts(&[6.51]), "{}", sim.dump());
}
