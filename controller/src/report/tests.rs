//! The report model's rules (metrics, expectations, buckets) and its renderers, on fixture
//! models: a change of wording shows here as a snapshot diff, without a guest.

use super::*;
use crate::events::{EventKind, FaultChange, Window};

fn sample() -> Report {
    Report {
        mirrors: Vec::new(),
        scsi: None,
        scenario: ScenarioInfo {
            name: "t".into(),
            description: None,
            seed: 1,
        },
        guest: GuestInfo {
            kind: "uml".into(),
            kernel_release: "6.1".into(),
            boot_to_init_ms: None,
            boot_to_ready_ms: None,
            scratch_full: None,
        },
        manager: ManagerInfo {
            kind: ManagerKind::None,
            note: "x".into(),
        },
        maps: vec![MapReport {
            name: "m".into(),
            dm_name: "pathrig-m".into(),
            device: "254:2".into(),
            selector: "round-robin".into(),
            queue_if_no_path: false,
            groups: vec![vec!["a".into(), "b".into()]],
            table: String::new(),
            final_status: String::new(),
            paths: vec![
                PathReport {
                    leg: "a".into(),
                    device: "254:0".into(),
                    group: 1,
                    final_state: FinalPathState::Active,
                    fail_count: 1,
                    checker: None,
                    fuse_faults: None,
                },
                PathReport {
                    leg: "b".into(),
                    device: "254:1".into(),
                    group: 1,
                    final_state: FinalPathState::Failed,
                    fail_count: 2,
                    checker: None,
                    fuse_faults: None,
                },
            ],
            final_group: Some(1),
            manager: None,
        }],
        workloads: Workloads(vec![WorkloadSummary {
            map: "m".into(),
            engine: faults::WorkloadEngine::Pathrig,
            cpu_ms: Some(1234.5),
            device: "/dev/dm-2".into(),
            pattern: "random".into(),
            read_percent: 70,
            block_size: 4096,
            queue_depth: 8,
            duration_ms: 1000,
            elapsed_ms: 1001.0,
            reads: 10,
            writes: 5,
            read_errors: 2,
            write_errors: 1,
            app_errors: 3,
            verified_blocks: 7,
            mismatches: 0,
            mismatch_details: vec![],
            errors_omitted: ErrorsOmitted::default(),
            latency_us: LatencyUs {
                p50: 800,
                p99: 150_000,
                max: 250_000,
                mean: 1000,
            },
            latency_buckets: vec![],
            stalls: vec![StallReport {
                began_ms: 10.0,
                length_ms: 2500.0,
            }],
            max_stall_ms: 2500.0,
            longest_stall_ms: Some(2500.0),
            first_error_ms: Some(3.0),
            series: vec![rig::workload::series::SeriesPoint {
                t_ms: 1000,
                reads: 120,
                writes: 50,
                errors: vec![("EIO", 3)],
                in_flight: 8,
                p50_us: 800,
                p99_us: 150_000,
                max_us: 250_000,
            }],
        }]),
        events: vec![],
        path_io: vec![],
        critical: vec![],
        figures: Figures::default(),
        causes: Vec::new(),
        expectations: vec![],
        verdict: Verdict::Pass,
        timing: Timing {
            setup_ms: 0.0,
            run_ms: 0.0,
            teardown_ms: 0.0,
            max_fault_lag_ms: None,
        },
        timeline_lag: None,
    }
}

fn scenario(expect: &str) -> Scenario {
    let text = format!(
        "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[[leg]]\nname = \"b\"\n[workload]\nduration = \"1s\"\n{expect}"
    );
    faults::parse(std::path::Path::new("t.toml"), &text).unwrap()
}

#[test]
fn metrics_read_the_right_numbers() {
    let r = sample();
    assert_eq!(r.metric(Metric::AppErrors, None), Some(3));
    assert_eq!(r.metric(Metric::MaxLatencyMs, None), Some(250));
    assert_eq!(r.metric(Metric::P99LatencyMs, None), Some(150));
    // 800 µs: the metrics are whole milliseconds, rounded down.
    assert_eq!(r.metric(Metric::P50LatencyMs, None), Some(0));
    assert_eq!(r.metric(Metric::Stalls, None), Some(1));
    assert_eq!(r.metric(Metric::MaxStallMs, None), Some(2500));
    assert_eq!(r.metric(Metric::KernelPathFailures, None), Some(3));
}

#[test]
fn a_failed_expectation_fails_the_verdict() {
    let mut r = sample();
    r.evaluate(&scenario("[expect]\nreads = \"> 0\"\n"));
    assert_eq!(r.verdict, Verdict::Pass);
    r.evaluate(&scenario("[expect]\napp_errors = 0\n"));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.expectations[0].actual, "3");
    r.evaluate(&scenario(
        "[expect.final_path_state]\na = \"active\"\nb = \"active\"\n",
    ));
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(r.expectations[0].held);
    assert!(!r.expectations[1].held);
}

#[test]
fn text_shows_buckets_not_raw_numbers() {
    let mut r = sample();
    r.evaluate(&scenario("[expect]\nmax_stall_ms = \"> 1000\"\n"));
    let text = text::render(&r);
    assert!(text.contains("max latency: 100 ms to 1 s"), "{text}");
    assert!(text.contains("stalls: 1, longest 1 s to 10 s"), "{text}");
    assert!(text.contains("application IO errors: some"), "{text}");
    assert!(text.contains("[held] max_stall_ms > 1000"), "{text}");
    assert!(!text.contains("250000"), "{text}");
}

#[test]
fn buckets_have_fixed_edges() {
    assert_eq!(bucket(99.9), "under 100 ms");
    assert_eq!(bucket(100.0), "100 ms to 1 s");
    assert_eq!(bucket(9_999.0), "1 s to 10 s");
    assert_eq!(bucket(10_000.0), "10 s or more");
}

/// A fixture of a managed run with one fault, the kernel's reaction and the manager's actions.
fn managed() -> Report {
    let mut r = sample();
    r.manager = ManagerInfo {
        kind: ManagerKind::Embedded,
        note: "pathrig's path manager checks, fails, reinstates and switches groups".into(),
    };
    r.maps[0].paths[0].checker = Some(CheckerView::Up);
    r.maps[0].paths[1].checker = Some(CheckerView::Down {
        detail: "EIO".into(),
    });
    r.maps[0].manager = Some(ManagerMapReport {
        settings: vec![SettingReport {
            keyword: "polling_interval".into(),
            value: "1s".into(),
            origin: "[manager]".into(),
        }],
        best_group: Some(1),
    });
    let at = |t_ms: f64, kind: EventKind| Event { t_ms, kind };
    r.events = vec![
        at(
            -5.0,
            EventKind::BackingFile {
                map: "m".into(),
                file: "/run/pathrig-t/m.img".into(),
                bytes: 1 << 20,
            },
        ),
        at(
            1000.0,
            EventKind::Fault {
                leg: "b".into(),
                change: FaultChange::Applied {
                    fault: faults::FaultKind::Fail,
                    window: Some(Window { n: 1, of: 2 }),
                },
            },
        ),
        at(
            1001.5,
            EventKind::PathFailed {
                map: "m".into(),
                leg: "b".into(),
            },
        ),
        at(
            1002.0,
            EventKind::IoError {
                map: "m".into(),
                op: crate::events::IoDirection::Read,
                errno: "EIO".into(),
                block: 17,
            },
        ),
        at(
            2500.0,
            EventKind::Manager {
                map: "m".into(),
                leg: Some("b".into()),
                action: path_manager::Action::RunChecker {
                    path: path_manager::PathRef { map: 0, path: 1 },
                },
                words: "m: reinstate_path b: up again after 1.498s down".into(),
                stable_words: "m: reinstate_path b: up again".into(),
                failed: None,
            },
        ),
    ];
    r
}

#[test]
fn text_of_a_managed_run() {
    let mut r = managed();
    r.evaluate(&scenario(
        "[expect]\napp_errors = \"> 0\"\n[expect.final_path_state]\nb = \"failed\"\n",
    ));
    insta::assert_snapshot!(text::render(&r));
}

#[test]
fn json_of_a_managed_run() {
    let mut r = managed();
    r.evaluate(&scenario("[expect]\nstalls = 1\n"));
    insta::assert_snapshot!(json::render(&r).unwrap());
}

#[test]
fn json_keeps_the_typed_fields_as_words() {
    let r = managed();
    let json: serde_json::Value = serde_json::from_str(&json::render(&r).unwrap()).unwrap();
    assert_eq!(json["manager"]["kind"], "embedded");
    assert_eq!(json["maps"][0]["paths"][1]["final_state"], "failed");
    assert_eq!(json["maps"][0]["paths"][1]["checker"], "down (EIO)");
    assert_eq!(json["events"][2]["kind"], "path_failed");
    assert_eq!(
        json["events"][4]["timeline_text"],
        "m: reinstate_path b: up again"
    );
    assert!(json["events"][1].get("timeline_text").is_none());
}

#[test]
fn a_full_scratch_space_is_named_only_when_it_happens() {
    let mut r = sample();
    let quiet = super::text::render(&r);
    assert!(!quiet.contains("SCRATCH"), "{quiet}");
    assert!(!super::json::render(&r).unwrap().contains("scratch_full"));
    r.guest.scratch_full = Some(ScratchFull {
        path: "/run".into(),
        size_bytes: 75 << 20,
        available_bytes: 0,
    });
    let text = super::text::render(&r);
    assert!(
        text.contains("SCRATCH SPACE FULL: /run (78643200 bytes)"),
        "{text}"
    );
    assert!(super::json::render(&r)
        .unwrap()
        .contains("\"available_bytes\": 0"));
}

#[test]
fn a_full_scratch_space_is_a_cause_that_takes_the_unexplained_path_failures() {
    use super::causes::{find, Cause};
    let mut r = sample();
    assert!(!find(&r)
        .iter()
        .any(|c| matches!(c, Cause::ScratchSpaceFull { .. })));
    r.guest.scratch_full = Some(ScratchFull {
        path: "/run".into(),
        size_bytes: 24 << 20,
        available_bytes: 0,
    });
    let causes = find(&r);
    let unexplained = causes
        .iter()
        .filter(|c| matches!(c, Cause::KernelFailedUnderFault { fault: None, .. }))
        .count() as u32;
    let Some(Cause::ScratchSpaceFull {
        path,
        size_bytes,
        app_errors,
        kernel_failures_without_fault,
    }) = causes.last()
    else {
        panic!("no scratch cause last: {causes:?}");
    };
    assert_eq!((path.as_str(), *size_bytes), ("/run", 24 << 20));
    assert_eq!(*kernel_failures_without_fault, unexplained);
    assert_eq!(
        *app_errors,
        r.workloads.iter().map(|w| w.app_errors).sum::<u64>()
    );
}

pub(super) fn tests_sample() -> Report {
    sample()
}

pub(super) fn tests_scenario(expect: &str) -> Scenario {
    scenario(expect)
}

#[path = "tests_figures.rs"]
mod figures_tests;
#[path = "tests_workloads.rs"]
mod workloads_tests;
