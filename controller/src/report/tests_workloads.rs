//! Several workloads (one per map): per-map metrics and expectations, per-map bounding of the
//! event log, the text report's named blocks and report.json's `workload` / `workloads`.

use super::*;
use crate::events::{EventKind, IoDirection};

/// The sample report with a second map `n` whose workload saw no error and a 40 ms gap.
fn two_workloads() -> Report {
    let mut r = sample();
    let mut map = r.maps[0].clone();
    map.name = "n".into();
    map.groups = vec![vec!["na".into(), "nb".into()]];
    for p in &mut map.paths {
        p.leg = format!("n{}", p.leg);
        p.fail_count = 0;
    }
    r.maps.push(map);
    let mut w = r.workloads[0].clone();
    w.map = "n".into();
    w.device = "/dev/dm-5".into();
    w.read_errors = 0;
    w.write_errors = 0;
    w.app_errors = 0;
    w.stalls.clear();
    w.max_stall_ms = 0.0;
    w.longest_stall_ms = Some(40.0);
    w.latency_us.max = 40_000;
    w.first_error_ms = None;
    r.workloads.push(w);
    r
}

/// Maps m (legs a, b) and n (legs na, nb), a workload on each.
fn two_map_scenario(expect: &str) -> Scenario {
    let text = format!(
        "name = \"t\"\n[[map]]\nname = \"m\"\n[[map]]\nname = \"n\"\n\
         [[leg]]\nname = \"a\"\nmap = \"m\"\n[[leg]]\nname = \"b\"\nmap = \"m\"\n\
         [[leg]]\nname = \"na\"\nmap = \"n\"\n[[leg]]\nname = \"nb\"\nmap = \"n\"\n\
         [[workload]]\nmap = \"m\"\nduration = \"1s\"\n[[workload]]\nmap = \"n\"\n{expect}"
    );
    faults::parse(std::path::Path::new("t.toml"), &text).unwrap()
}

#[test]
fn metrics_of_one_map_read_its_own_workload() {
    let r = two_workloads();
    assert_eq!(r.metric(Metric::AppErrors, Some("n")), Some(0));
    assert_eq!(r.metric(Metric::AppErrors, Some("m")), Some(3));
    // Without a map: the first workload.
    assert_eq!(r.metric(Metric::AppErrors, None), Some(3));
    assert_eq!(r.metric(Metric::MaxLatencyMs, Some("n")), Some(40));
    assert_eq!(r.metric(Metric::LongestStallMs, Some("n")), Some(40));
    assert_eq!(r.metric(Metric::LongestStallMs, Some("m")), Some(2500));
    assert_eq!(r.metric(Metric::Stalls, Some("n")), Some(0));
    // Path failures of one map, or of every map.
    assert_eq!(r.metric(Metric::KernelPathFailures, Some("n")), Some(0));
    assert_eq!(r.metric(Metric::KernelPathFailures, Some("m")), Some(3));
    assert_eq!(r.metric(Metric::KernelPathFailures, None), Some(3));
    // A map without a workload has nothing to measure.
    assert_eq!(r.metric(Metric::Reads, Some("x")), None);
    assert_eq!(r.metric(Metric::KernelPathFailures, Some("x")), None);
}

#[test]
fn expectations_name_their_map() {
    let mut r = two_workloads();
    r.evaluate(&two_map_scenario(
        "[expect]\nlongest_stall_ms.n = \"< 1000\"\nlongest_stall_ms.m = \"> 1000\"\napp_errors.n = 0\n",
    ));
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.expectations);
    let what: Vec<&str> = r.expectations.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "longest_stall_ms.n < 1000",
            "longest_stall_ms.m > 1000",
            "app_errors.n == 0"
        ]
    );
    assert_eq!(r.expectations[0].actual, "40");
    r.evaluate(&two_map_scenario("[expect]\napp_errors.m = 0\n"));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.expectations[0].actual, "3");
    // fio measures no quiet time: a check on it cannot hold.
    r.workloads[1].longest_stall_ms = None;
    r.evaluate(&two_map_scenario(
        "[expect]\nlongest_stall_ms.n = \"< 1000\"\n",
    ));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.expectations[0].actual, "none");
}

#[test]
fn each_workload_gets_a_named_block_in_the_text() {
    let mut r = two_workloads();
    r.evaluate(&two_map_scenario("[expect]\napp_errors.n = 0\n"));
    let text = text::render(&r);
    insta::assert_snapshot!(text);
    assert!(text.contains("\nworkload on m (random IO"), "{text}");
    assert!(text.contains("\nworkload on n (random IO"), "{text}");
    // One workload keeps the unnamed block of old.
    let mut one = sample();
    one.evaluate(&scenario(""));
    let text = text::render(&one);
    assert!(text.contains("\nworkload (random IO"), "{text}");
    assert!(!text.contains("workload on"), "{text}");
}

#[test]
fn json_has_the_first_workload_and_all_of_them() {
    let r = two_workloads();
    let json: serde_json::Value = serde_json::from_str(&json::render(&r).unwrap()).unwrap();
    assert_eq!(json["workload"], json["workloads"][0]);
    assert_eq!(json["workload"]["map"], "m");
    assert_eq!(json["workloads"][1]["map"], "n");
    assert_eq!(json["workloads"][1]["longest_stall_ms"], 40.0);
    assert_eq!(json["workloads"].as_array().unwrap().len(), 2);
}

fn io_error(t_ms: f64, map: &str) -> Event {
    Event {
        t_ms,
        kind: EventKind::IoError {
            map: map.into(),
            op: IoDirection::Read,
            errno: "EIO".into(),
            block: 1,
        },
    }
}

#[test]
fn each_workload_keeps_its_own_first_errors() {
    let mut events: Vec<Event> = (0..150).map(|i| io_error(i as f64, "m")).collect();
    events.extend((0..3).map(|i| io_error(200.0 + i as f64, "n")));
    let omitted = bounded::bound_events(&mut events);
    assert_eq!(
        omitted["m"].io_errors, 49,
        "the 100 first and the last kept"
    );
    assert_eq!(omitted["m"].io_errors_by_errno, [("EIO".to_string(), 150)]);
    assert_eq!(omitted["n"].io_errors, 0);
    assert_eq!(omitted["n"].io_errors_by_errno, [("EIO".to_string(), 3)]);
    assert_eq!(events.len(), 101 + 3);
    assert!(!omitted.contains_key("x"));
}

#[test]
fn the_first_error_after_a_fault_is_any_workloads() {
    let mut r = two_workloads();
    r.events = vec![Event {
        t_ms: 100.0,
        kind: EventKind::Fault {
            leg: "na".into(),
            change: crate::events::FaultChange::Applied {
                fault: faults::FaultKind::Fail,
                window: None,
            },
        },
    }];
    // m's first error came before the fault; n's after it.
    r.workloads[0].first_error_ms = Some(3.0);
    r.workloads[1].first_error_ms = Some(350.0);
    assert_eq!(Figures::compute(&r).first_error_ms, Some(250.0));
    r.workloads[1].first_error_ms = None;
    assert_eq!(Figures::compute(&r).first_error_ms, None);
}
