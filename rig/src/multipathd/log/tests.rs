//! Lines captured from multipath-tools 0.9.4 (`multipathd -d -v3` and `-v4`) in the UML guest,
//! scsi_debug paths 8:0 (sda) and 8:16 (sdb) in map `pathrig-mpd`, unless a test says otherwise.

use super::*;

fn event(raw: &str) -> LogEvent {
    parse_line(raw).event
}

fn num(major: u32, minor: u32) -> PathRef {
    PathRef::DevNum { major, minor }
}

fn name(n: &str) -> PathRef {
    PathRef::Name(n.into())
}

#[test]
fn the_monotonic_stamp_is_split_off_and_read() {
    let line = parse_line("4.473801 | checker failed path 8:0 in map pathrig-mpd");
    assert_eq!(line.stamp.as_deref(), Some("4.473801"));
    assert_eq!(line.message, "checker failed path 8:0 in map pathrig-mpd");
    assert_eq!(
        line.monotonic(),
        Some(std::time::Duration::from_micros(4_473_801))
    );
}

#[test]
fn a_wall_clock_stamp_is_split_off_but_has_no_monotonic_time() {
    let line = parse_line("Dec 02 16:30:00 | 8:0: reinstated");
    assert_eq!(line.stamp.as_deref(), Some("Dec 02 16:30:00"));
    assert_eq!(line.event, LogEvent::Reinstated { path: num(8, 0) });
    assert_eq!(line.monotonic(), None);
}

#[test]
fn a_line_without_a_stamp_is_read_whole() {
    let line = parse_line("8:16: reinstated");
    assert_eq!(line.stamp, None);
    assert_eq!(line.event, LogEvent::Reinstated { path: num(8, 16) });
}

#[test]
fn checker_failed_path() {
    assert_eq!(
        event("4.473801 | checker failed path 8:0 in map pathrig-mpd"),
        LogEvent::CheckerFailedPath {
            map: "pathrig-mpd".into(),
            path: num(8, 0)
        }
    );
}

#[test]
fn reinstated_and_reinstate_failed() {
    assert_eq!(
        event("10.511128 | 8:16: reinstated"),
        LogEvent::Reinstated { path: num(8, 16) }
    );
    // Not captured (needs a kernel that refuses the reinstate); the format is main.c's.
    assert_eq!(
        event("10.511128 | 8:16: reinstate failed"),
        LogEvent::ReinstateFailed { path: num(8, 16) }
    );
}

#[test]
fn checker_results_at_v3() {
    assert_eq!(
        event("3.407004 | sda: tur state = up"),
        LogEvent::CheckerState {
            path: name("sda"),
            checker: "tur".into(),
            state: "up".into()
        }
    );
    assert_eq!(
        event("3.394945 | sdb: tur state = pending"),
        LogEvent::CheckerState {
            path: name("sdb"),
            checker: "tur".into(),
            state: "pending".into()
        }
    );
    assert_eq!(
        event("4.471617 | sda: state down, checker not called"),
        LogEvent::CheckerNotCalled {
            path: name("sda"),
            state: "down".into()
        }
    );
    assert_eq!(
        event("4.473654 | pathrig-mpd: sda - path offline"),
        LogEvent::PathOffline {
            map: "pathrig-mpd".into(),
            path: name("sda")
        }
    );
}

#[test]
fn checker_results_at_v4() {
    assert_eq!(
        event("5.476720 | pathrig-mpd: sda - tur checker reports path is up"),
        LogEvent::Checker {
            map: "pathrig-mpd".into(),
            path: name("sda"),
            checker: "tur".into(),
            up: Some(true),
            message: "reports path is up".into()
        }
    );
    assert_eq!(
        event("1.662961 | 8:0 : tur checker finished, state up"),
        LogEvent::CheckerState {
            path: num(8, 0),
            checker: "tur".into(),
            state: "up".into()
        }
    );
    // The directio checker's down message (checkers.c's table), same shape.
    assert_eq!(
        event("pathrig-mpd: sdb - directio checker reports path is down"),
        LogEvent::Checker {
            map: "pathrig-mpd".into(),
            path: name("sdb"),
            checker: "directio".into(),
            up: Some(false),
            message: "reports path is down".into()
        }
    );
    // A v4 line that is no decision.
    assert_eq!(
        event("1.653471 | 8:0 : tur checker still running"),
        LogEvent::Other
    );
}

#[test]
fn group_switches_and_remaining_paths() {
    assert_eq!(
        event("7.934846 | pathrig-mpd: switch to path group #2"),
        LogEvent::SwitchGroup {
            map: "pathrig-mpd".into(),
            group: 2
        }
    );
    assert_eq!(
        event("6.489995 | pathrig-mpd: remaining active paths: 0"),
        LogEvent::RemainingActivePaths {
            map: "pathrig-mpd".into(),
            active: 0
        }
    );
}

#[test]
fn no_path_retry_recovery_mode() {
    assert_eq!(
        event("6.489929 | pathrig-mpd: Entering recovery mode: max_retries=2"),
        LogEvent::EnteringRecovery {
            map: "pathrig-mpd".into(),
            max_retries: 2
        }
    );
    assert_eq!(
        event("8.492871 | pathrig-mpd: Disable queueing"),
        LogEvent::QueueingDisabled {
            map: "pathrig-mpd".into()
        }
    );
    assert_eq!(
        event("pathrig-mpd: Recovered to normal mode"),
        LogEvent::RecoveredToNormal {
            map: "pathrig-mpd".into()
        }
    );
    assert_eq!(
        event("pathrig-mpd: queue_if_no_path enabled"),
        LogEvent::QueueingEnabled {
            map: "pathrig-mpd".into()
        }
    );
}

#[test]
fn a_path_the_kernel_failed_is_marked_failed() {
    assert_eq!(
        event("2.766533 | sda: mark as failed"),
        LogEvent::MarkedFailed { path: name("sda") }
    );
}

#[test]
fn map_tables() {
    assert_eq!(
        event("3.433464 | pathrig-mpd: addmap [0 16384 multipath 1 queue_if_no_path 1 alua 2 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:16 1]"),
        LogEvent::LoadTable {
            map: "pathrig-mpd".into(),
            table: "0 16384 multipath 1 queue_if_no_path 1 alua 2 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:16 1".into(),
            created: true
        }
    );
    assert!(matches!(
        event("1.763445 | pathrig-mpd: load table [0 16384 multipath 0 0 1 1 round-robin 0 1 1 8:0 1]"),
        LogEvent::LoadTable { created: false, .. }
    ));
}

#[test]
fn marginal_and_san_path_err_lines() {
    // Formats from main.c and io_err_stat.c (0.9.4); these need a flaky path to appear.
    assert_eq!(
        event("sdb: path is now marginal"),
        LogEvent::Marginal {
            path: name("sdb"),
            marginal: true
        }
    );
    assert_eq!(
        event("sdb: path is no longer marginal"),
        LogEvent::Marginal {
            path: name("sdb"),
            marginal: false
        }
    );
    assert_eq!(
        event("sdb : hit error threshold. Delaying path reinstatement"),
        LogEvent::ReinstateDelayed { path: name("sdb") }
    );
    assert_eq!(
        event("io error statistic: sdb: IO error rate (12.5/1000)"),
        LogEvent::IoErrStat {
            path: name("sdb"),
            verdict: IoErrVerdict::ErrorRate {
                per_mille: "12.5".into()
            }
        }
    );
    assert_eq!(
        event("io error statistic: pathrig-mpd: enqueue path sdb to check"),
        LogEvent::IoErrStat {
            path: name("sdb"),
            verdict: IoErrVerdict::Enqueued
        }
    );
    assert_eq!(
        event("io error statistic: pathrig-mpd: keep failing the dm path sdb"),
        LogEvent::IoErrStat {
            path: name("sdb"),
            verdict: IoErrVerdict::KeepFailing
        }
    );
    assert_eq!(
        event("io error statistic: sdb: (9/10) good to enable reinstating"),
        LogEvent::IoErrStat {
            path: name("sdb"),
            verdict: IoErrVerdict::GoodToReinstate
        }
    );
}

#[test]
fn everything_else_is_other_with_the_text_kept() {
    for raw in [
        "1.593794 | loading /lib/multipath/libchecktur.so checker",
        "5.398156 | multipathd v0.9.4: start up",
        "4.025 | sda: uid = 333333330000007d0 (udev)",
        "uevent 'change' from '/devices/virtual/block/dm-0'",
        "",
        ": nothing",
    ] {
        let line = parse_line(raw);
        assert_eq!(line.event, LogEvent::Other, "{raw}");
    }
    assert_eq!(
        parse_line("1.593794 | loading /lib/multipath/libchecktur.so checker").message,
        "loading /lib/multipath/libchecktur.so checker"
    );
}
