//! Bounded event logs, grouped mismatches, QA figures and per-path IO phases, on fixtures.

use super::*;
use crate::events::{EventKind, FaultChange, IoDirection, Window};
use rig::blockstat::PathSample;

fn at(t_ms: f64, kind: EventKind) -> Event {
    Event { t_ms, kind }
}

fn io_error(t_ms: f64, errno: &str) -> Event {
    at(
        t_ms,
        EventKind::IoError {
            map: "m".into(),
            op: IoDirection::Write,
            errno: errno.into(),
            block: (t_ms as u64) % 4096,
        },
    )
}

fn fault(t_ms: f64, leg: &str, fault: faults::FaultKind) -> Event {
    at(
        t_ms,
        EventKind::Fault {
            leg: leg.into(),
            change: FaultChange::Applied {
                fault,
                window: Some(Window { n: 1, of: 1 }),
            },
        },
    )
}

/// Two paths sampled every 100 ms over `ms`, with `io(path, t_ms)` IOs per sample.
fn path_io(ms: u64, io: impl Fn(usize, u64) -> u64) -> Vec<PathIo> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, leg)| PathIo {
            map: "m".into(),
            leg: leg.to_string(),
            device: format!("254:{i}"),
            interval_ms: 100,
            samples: (1..=ms / 100)
                .map(|n| PathSample {
                    t_ms: n * 100,
                    reads: io(i, n * 100),
                    writes: 0,
                    in_flight: 1,
                })
                .collect(),
        })
        .collect()
}

#[test]
fn a_minute_of_a_hundred_thousand_errors_stays_under_two_megabytes() {
    let mut r = super::tests_sample();
    r.workloads[0].duration_ms = 60_000;
    r.workloads[0].series = (1..=600)
        .map(|n| rig::workload::series::SeriesPoint {
            t_ms: n * 100,
            reads: 100,
            writes: 100,
            errors: vec![("EIO", 100), ("ENOSPC", 67)],
            in_flight: 8,
            p50_us: 800,
            p99_us: 150_000,
            max_us: 250_000,
        })
        .collect();
    r.path_io = path_io(60_000, |_, _| 100);
    r.events = (0..100_000)
        .map(|i| io_error(i as f64 * 0.6, if i % 3 == 0 { "ENOSPC" } else { "EIO" }))
        .collect();
    let unbounded = json::render(&r).unwrap().len();
    let omitted = bounded::bound_events(&mut r.events).remove("m").unwrap();
    r.workloads[0].errors_omitted = omitted.clone();
    let size = json::render(&r).unwrap().len();
    eprintln!("report.json: {unbounded} bytes unbounded, {size} bytes bounded");
    assert!(size < 2 << 20, "{size} bytes");
    assert!(
        unbounded > 2 << 20,
        "{unbounded} bytes: the fixture is too small to tell"
    );
    assert_eq!(r.events.len(), bounded::KEPT_PER_KIND + 1);
    assert_eq!(
        omitted.io_errors,
        100_000 - bounded::KEPT_PER_KIND as u64 - 1
    );
    assert_eq!(
        omitted.io_errors_by_errno,
        vec![("EIO".to_string(), 66_666), ("ENOSPC".to_string(), 33_334)]
    );
    // The last error is kept.
    assert_eq!(r.events.last().unwrap().t_ms, 99_999.0 * 0.6);
    // report.html of the same run stays readable: a bounded DOM (series as one polyline each).
    let html = html::render(&r);
    let elements = html.matches('<').count();
    eprintln!("report.html: {} bytes, {elements} tags", html.len());
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
    assert!(elements < 5_000, "{elements} tags");
    assert!(html.contains("data-series=\"errors\""));
}

#[test]
fn the_report_reads_back_from_its_json() {
    let mut r = faulted_run();
    r.evaluate(&super::tests_scenario(
        "[expect]\nio_share.b.\"1s..2s\" = \"> 0.5\"\n",
    ));
    r.workloads[0].mismatch_details =
        bounded::mismatch_reports([(10.0, 3, "stale data"), (30.0, 3, "stale data")], 4096);
    r.workloads[0].series = vec![rig::workload::series::SeriesPoint {
        t_ms: 100,
        reads: 1,
        writes: 2,
        errors: vec![("EIO", 3), ("other", 1)],
        in_flight: 4,
        p50_us: 5,
        p99_us: 6,
        max_us: 7,
    }];
    let json = json::render(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(json::render(&back).unwrap(), json);
    assert_eq!(text::render(&back), text::render(&r));
    assert_eq!(html::render(&back), html::render(&r));
    assert_eq!(back.causes, r.causes);
    // A report from before several workloads (only `workload`), and before causes and
    // failback_ms, still reads.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    let top = old.as_object_mut().unwrap();
    top.remove("workloads");
    top.remove("causes");
    top["figures"]
        .as_object_mut()
        .unwrap()
        .remove("failback_ms");
    let back: Report = serde_json::from_value(old).unwrap();
    assert_eq!(back.workloads.len(), 1);
    assert!(back.causes.is_empty());
}

#[test]
fn causes_name_the_fault_in_force_and_errors_without_a_path() {
    let mut r = faulted_run();
    r.workloads[0].app_errors = 7;
    r.workloads[0].series = (1..=40)
        .map(|n| rig::workload::series::SeriesPoint {
            t_ms: n * 100,
            reads: 10,
            writes: 0,
            // 1150..1400 ms had no usable path: the intervals ending at 1200, 1300, 1400.
            errors: if (12..=14).contains(&n) {
                vec![("EIO", 2)]
            } else if n == 30 {
                vec![("EIO", 1)]
            } else {
                vec![]
            },
            in_flight: 1,
            p50_us: 1,
            p99_us: 1,
            max_us: 1,
        })
        .collect();
    r.evaluate(&super::tests_scenario(""));
    assert_eq!(
        r.causes[0],
        causes::Cause::KernelFailedUnderFault {
            map: "m".into(),
            leg: "a".into(),
            t_ms: 1150.0,
            fault: Some(faults::FaultKind::Fail),
            layer: Some(faults::Layer::Dm),
            fault_ms: Some(1000.0),
        }
    );
    assert_eq!(
        r.causes[1],
        causes::Cause::ErrorsWithoutPath {
            map: "m".into(),
            errors: 6,
            errors_total: 7,
            no_path_ms: 250.0,
            episodes: 1,
        }
    );
    let txt = text::render(&r);
    assert!(
        txt.contains("causes (exact values in report.json)\n  m: application errors came while m had no usable path\n"),
        "{txt}"
    );
    assert!(!txt.contains("dm table"), "{txt}");
    let page = html::render(&r);
    assert!(page.contains(
        "m: the kernel failed path a at 1150 ms while the leg&#39;s dm table had fail (every IO errors) in force, 150 ms after it was applied"
    ), "{}", &page[page.find("causes").unwrap_or(0)..][..600]);
}

/// Path a of map m fails at 1, 2 and 3 s, and the checker finds it up 300 ms after each;
/// `fault` (if any) is applied to leg a at 500 ms, and its window ends at `ends_ms`.
fn failing_while_checked_up(applied: Option<faults::FaultKind>, ends_ms: Option<f64>) -> Report {
    let mut r = faulted_run();
    r.maps[0].dm_name = "pathrig-m".into();
    r.maps[0].paths[0].device = "254:0".into();
    r.events.clear();
    if let Some(f) = applied {
        r.events.push(fault(500.0, "a", f));
    }
    if let Some(end) = ends_ms {
        r.events.push(at(
            end,
            EventKind::Fault {
                leg: "a".into(),
                change: FaultChange::WindowEnded {
                    length: std::time::Duration::from_millis(100),
                    window: None,
                },
            },
        ));
    }
    for t in [1000.0, 2000.0, 3000.0] {
        r.events.push(at(
            t,
            EventKind::PathFailed {
                map: "m".into(),
                leg: "a".into(),
            },
        ));
        r.events.push(at(
            t + 300.0,
            EventKind::CheckerResult {
                dm_name: "pathrig-m".into(),
                node: "/dev/dm-0".into(),
                verdict: crate::events::CheckerVerdict::Up,
                latency_ms: 1.0,
            },
        ));
    }
    r.events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    r.evaluate(&super::tests_scenario(""));
    r
}

fn called_out(r: &Report) -> Vec<&causes::Cause> {
    r.causes
        .iter()
        .filter(|c| matches!(c, causes::Cause::CheckerUpKernelFailing { .. }))
        .collect()
}

#[test]
fn a_path_failed_again_and_again_while_the_checker_says_up_is_called_out() {
    let bad_range = faults::FaultKind::ErrorRange { ranges: vec![] };
    let r = failing_while_checked_up(Some(bad_range.clone()), None);
    assert_eq!(
        called_out(&r),
        vec![&causes::Cause::CheckerUpKernelFailing {
            map: "m".into(),
            leg: "a".into(),
            kernel_failures: 3,
            from_ms: 1000.0,
            to_ms: 3000.0,
        }]
    );
    let txt = text::render(&r);
    assert!(
        txt.contains("the kernel failed path a again and again while the checker found it up"),
        "{txt}"
    );
    // The fault's window ended at 1.1 s, before the check after the first failure; the later
    // failures had no fault of the rig in force: none counts.
    let r = failing_while_checked_up(Some(bad_range), Some(1100.0));
    assert!(called_out(&r).is_empty(), "{:?}", r.causes);
    // Without a fault of the rig in force nothing is known about the checker's view of it.
    let r = failing_while_checked_up(None, None);
    assert!(called_out(&r).is_empty());
    assert!(matches!(
        r.causes[0],
        causes::Cause::KernelFailedUnderFault { fault: None, .. }
    ));
}

#[test]
fn bounding_keeps_every_other_event_in_order() {
    let mut events = vec![fault(0.0, "a", faults::FaultKind::Fail)];
    events.extend((0..150).map(|i| io_error(1.0 + i as f64, "EIO")));
    events.push(at(
        500.0,
        EventKind::PathFailed {
            map: "m".into(),
            leg: "a".into(),
        },
    ));
    events.push(io_error(600.0, "EIO"));
    let omitted = bounded::bound_events(&mut events);
    assert_eq!(omitted["m"].io_errors, 50);
    assert_eq!(events.len(), 1 + 100 + 1 + 1);
    assert!(matches!(events[0].kind, EventKind::Fault { .. }));
    assert!(matches!(events[101].kind, EventKind::PathFailed { .. }));
    assert_eq!(events[102].t_ms, 600.0);
}

#[test]
fn mismatches_are_listed_once_per_block_with_both_units() {
    let rows = bounded::mismatch_reports(
        [
            (10.0, 3, "stale data"),
            (20.0, 5, "zeroes"),
            (30.0, 3, "stale data"),
        ],
        4096,
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].block, 3);
    assert_eq!(rows[0].count, 2);
    assert_eq!(rows[0].byte_offset, 3 * 4096);
    assert_eq!(rows[0].lba, 3 * 8);
    assert_eq!(rows[0].t_ms, 10.0);
    assert_eq!(rows[1].count, 1);
}

/// A run of 4 s: fault on a at 1 s (failed at 1.15 s), restored at 3 s (reinstated at 3.05 s);
/// a carries half the IO before and after, nothing in between.
fn faulted_run() -> Report {
    let mut r = super::tests_sample();
    r.timing.run_ms = 4000.0;
    r.events = vec![
        fault(1000.0, "a", faults::FaultKind::Fail),
        at(
            1150.0,
            EventKind::PathFailed {
                map: "m".into(),
                leg: "a".into(),
            },
        ),
        at(1150.0, EventKind::NoUsablePath { map: "m".into() }),
        at(1400.0, EventKind::UsablePathBack { map: "m".into() }),
        at(
            1500.0,
            EventKind::GroupSwitched {
                map: "m".into(),
                group: 2,
            },
        ),
        fault(3000.0, "a", faults::FaultKind::Restore),
        at(
            3050.0,
            EventKind::PathReinstated {
                map: "m".into(),
                leg: "a".into(),
            },
        ),
    ];
    r.workloads[0].first_error_ms = Some(1010.0);
    r.path_io = path_io(4000, |path, t| match (path, t) {
        (0, t) if t > 1000 && t <= 3000 => {
            if t <= 1100 {
                3
            } else {
                0
            }
        }
        _ => 10,
    });
    r
}

#[test]
fn figures_come_from_the_events_and_series() {
    let mut r = faulted_run();
    r.evaluate(&super::tests_scenario(""));
    let f = &r.figures;
    assert_eq!(f.detection_ms.len(), 1);
    assert_eq!(f.detection_ms[0].key, "a");
    assert_eq!(f.detection_ms[0].value, Some(150.0));
    assert_eq!(f.group_switches, 1);
    assert_eq!(f.no_path_ms, 250.0);
    assert_eq!(f.first_error_ms, Some(10.0));
    let a = f.io_share.iter().find(|s| s.key == "a").unwrap();
    // a: 10 per sample for 20 samples, 3 in one: 203 of 203 + 400.
    assert_eq!(a.value, Some(203.0 / 603.0));
}

#[test]
fn phases_lie_between_fault_steps_and_leave_out_the_reaction() {
    let r = faulted_run();
    let phases = figures::io_phases(&r, "m");
    assert_eq!(phases.len(), 3);
    assert!(phases[0].began_with.is_empty());
    assert_eq!(
        phases[0].shares,
        Some(vec![("a".into(), "some"), ("b".into(), "some")])
    );
    // The sample at 1.1 s (a's last IOs) falls in the settling time.
    assert_eq!(
        phases[1].shares,
        Some(vec![("a".into(), "none"), ("b".into(), "all")])
    );
    assert_eq!(
        phases[2].shares,
        Some(vec![("a".into(), "some"), ("b".into(), "some")])
    );
}

#[test]
fn share_classes_have_fixed_edges() {
    assert_eq!(figures::share_class(0, 10), "none");
    assert_eq!(figures::share_class(10, 10), "all");
    assert_eq!(figures::share_class(1, 100), "some");
    assert_eq!(figures::share_class(99, 100), "some");
}

#[test]
fn figure_expectations_compare_the_figures() {
    let mut r = faulted_run();
    r.evaluate(&super::tests_scenario(
        "[expect]\ndetection_ms.a = \"< 200\"\ngroup_switches.m = \"== 1\"\n\
         no_path_ms = \"> 0\"\nfirst_error_ms = \"< 5\"\nio_share.b = \"> 0.6\"\n",
    ));
    let held: Vec<bool> = r.expectations.iter().map(|e| e.held).collect();
    assert_eq!(held, vec![true, true, true, false, true]);
    assert_eq!(r.expectations[3].actual, "10");
    assert_eq!(r.verdict, Verdict::Fail);
    r.evaluate(&super::tests_scenario("[expect]\ngroup_switches = 1\n"));
    assert!(r.expectations[0].held);
    assert_eq!(r.expectations[0].what, "group_switches == 1");
    // A leg that never failed has no detection time: nothing holds.
    r.evaluate(&super::tests_scenario(
        "[expect]\ndetection_ms.b = \"> 0\"\n",
    ));
    assert_eq!(r.expectations[0].actual, "none");
    assert!(!r.expectations[0].held);
}

#[test]
fn steps_close_together_begin_one_phase_settled_after_the_last() {
    let mut r = faulted_run();
    // A second step on b 200 ms after a's (a trespass of both legs, one after the other).
    r.events
        .insert(1, fault(1200.0, "b", faults::FaultKind::KernelFail));
    let phases = figures::io_phases(&r, "m");
    assert_eq!(phases.len(), 3);
    assert_eq!(phases[1].began_with.len(), 2);
}

/// Groups [a], [b]: the kernel switches to b when a fails, and back `back_after_ms` after a is
/// reinstated (at 3050 ms).
fn failback_run(back_after_ms: Option<f64>) -> Report {
    let mut r = faulted_run();
    r.maps[0].groups = vec![vec!["a".into()], vec!["b".into()]];
    if let Some(after) = back_after_ms {
        r.events.push(at(
            3050.0 + after,
            EventKind::GroupSwitched {
                map: "m".into(),
                group: 1,
            },
        ));
    }
    r
}

#[test]
fn failback_ms_is_the_time_off_the_first_group_while_it_was_usable() {
    let scenario = super::tests_scenario("");
    let mut immediate = failback_run(Some(0.5));
    immediate.evaluate(&scenario);
    assert_eq!(immediate.figures.failback_ms, 0.5);
    let mut deferred = failback_run(Some(2000.0));
    deferred.evaluate(&scenario);
    assert_eq!(deferred.figures.failback_ms_by_map[0].value, Some(2000.0));
    // Never failed back: the wait lasts to the run's end (4000 ms).
    let mut manual = failback_run(None);
    manual.evaluate(&scenario);
    assert_eq!(manual.figures.failback_ms, 950.0);
    // While group 1 had no usable path (1150..3050 ms) nothing counts.
    manual.evaluate(&super::tests_scenario(
        "[expect]\nfailback_ms.m = \"> 900\"\n",
    ));
    assert!(manual.expectations[0].held);
    manual.evaluate(&super::tests_scenario(
        "[expect]\nfailback_ms = \"< 1000\"\n",
    ));
    assert!(manual.expectations[0].held);
}

#[test]
fn io_share_over_a_window_counts_only_its_samples() {
    let mut r = faulted_run();
    r.evaluate(&super::tests_scenario(
        "[expect]\nio_share.b.\"1.5s..3s\" = \"== 1\"\nio_share.a.\"3.2s..\" = \"== 0.5\"\n\
         io_share.a.\"0s..1s\" = \"> 0.6\"\n",
    ));
    let held: Vec<bool> = r.expectations.iter().map(|e| e.held).collect();
    assert_eq!(held, vec![true, true, false], "{:?}", r.expectations);
    assert_eq!(r.expectations[0].what, "io_share.b in 1.5s..3s == 1");
    assert_eq!(r.expectations[2].actual, "0.5");
}
