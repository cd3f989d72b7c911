//! The core's action logs for its test scenarios (the setups of `path_manager`'s own tests),
//! as snapshots: every action but checker runs, with its time and reason.

use path_manager::settings::{Failback, MarginalPathgroups, NoPathRetry, Setting};
use path_manager::sim::*;
use path_manager::CheckResult;

fn snap(name: &str, sim: &Sim) {
    insta::assert_snapshot!(name, sim.transcript());
}

#[test]
fn failover_to_the_second_group() {
    let mut sim = Sim::one(failover(settings(|_| {})));
    sim.at(2.5).answer(A, down());
    sim.at(10.0);
    snap("failover", &sim);
}

#[test]
fn failback_immediate() {
    let mut sim = a_fails_and_returns(Failback::Immediate);
    sim.at(30.0);
    snap("failback_immediate", &sim);
}

#[test]
fn failback_manual() {
    let mut sim = a_fails_and_returns(Failback::Manual);
    sim.at(30.0);
    snap("failback_manual", &sim);
}

#[test]
fn failback_deferred() {
    let mut sim = a_fails_and_returns(Failback::Deferred(t(10.0)));
    sim.at(30.0);
    snap("failback_deferred", &sim);
}

#[test]
fn failback_followover() {
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    sim.at(5.5).answer(A1, CheckResult::Up);
    sim.at(20.0);
    snap("failback_followover", &sim);
}

#[test]
fn no_path_retry_counts_down_then_queues_again() {
    let mut sim = all_fail(NoPathRetry::Retries(3));
    sim.at(8.5).answer(B, CheckResult::Up);
    sim.at(20.0);
    snap("no_path_retry_3", &sim);
}

#[test]
fn no_path_retry_queue() {
    let mut sim = all_fail(NoPathRetry::Queue);
    sim.at(8.5).answer(B, CheckResult::Up);
    sim.at(20.0);
    snap("no_path_retry_queue", &sim);
}

#[test]
fn no_path_retry_fail() {
    let mut sim = all_fail(NoPathRetry::Fail);
    sim.at(8.5).answer(B, CheckResult::Up);
    sim.at(20.0);
    snap("no_path_retry_fail", &sim);
}

#[test]
fn flap_damping() {
    let mut sim = damped(100);
    flap_a(&mut sim);
    sim.at(20.0);
    snap("san_path_err_damping", &sim);
}

#[test]
fn marginal_window_good() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    flaky_a(&mut sim);
    sim.at(8.0);
    snap("marginal_window_good", &sim);
}

#[test]
fn marginal_window_bad_then_recheck() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    sim.at(14.5);
    snap("marginal_window_bad_recheck", &sim);
}

#[test]
fn marginal_sequential_bad() {
    let mut sim = Sim::one(failover(marginal(sequential)));
    sim.sampler(A, Sampler::failing(1, 1));
    flaky_a(&mut sim);
    sim.at(6.5);
    snap("marginal_sequential_bad", &sim);
}

#[test]
fn marginal_pathgroups_on() {
    let mut sim = Sim::one(failover(marginal(|s| {
        s.marginal_pathgroups = Setting::builtin(MarginalPathgroups::On);
    })));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    sim.at(14.5);
    snap("marginal_pathgroups_on", &sim);
}

#[test]
fn marginal_checker_down_keeps_it_out() {
    // Marginal at 7.01; the checker finds it down, then up again before the recheck gap ends:
    // it stays out (no reinstate_path) until the recheck samples it.
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.sampler(A, Sampler::failing(5, 10));
    flaky_a(&mut sim);
    sim.at(7.5).answer(A, down());
    sim.at(8.5).answer(A, CheckResult::Up);
    sim.at(12.5);
    snap("marginal_checker_down_keeps_it_out", &sim);
}

#[test]
fn marginal_no_usable_path_reinstates_early() {
    let mut sim = Sim::one(failover(marginal(|_| {})));
    sim.at(0.5).answer(B, down());
    flaky_a(&mut sim);
    sim.at(6.5).answer(B, CheckResult::Up);
    sim.at(10.0);
    snap("marginal_no_usable_path_reinstates_early", &sim);
}

#[test]
fn failback_followover_same_round() {
    // Both primaries come back in the same round of checks: each sees the other up, so no
    // followover failback (as multipathd decides after its checker loop).
    let mut sim = Sim::one(two_by_two(settings(|s| {
        s.failback = Setting::builtin(Failback::Followover);
    })));
    sim.at(2.5).answer(A1, down()).answer(A2, down());
    sim.at(5.5)
        .answer(A1, CheckResult::Up)
        .answer(A2, CheckResult::Up);
    sim.at(20.0);
    snap("failback_followover_same_round", &sim);
}
