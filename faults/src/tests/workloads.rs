//! `[[workload]]`: one workload per map, their common duration, per-map `[expect]` metrics,
//! and the errors of each rule.

use super::*;

/// Maps m1 (a multipath map) and m2 (a mirror), two legs each.
const MAPS: &str = r#"name = "t"
[[map]]
name = "m1"
[[map]]
name = "m2"
kind = "mirror"
[[leg]]
name = "a"
map = "m1"
[[leg]]
name = "b"
map = "m1"
[[leg]]
name = "c"
map = "m2"
[[leg]]
name = "d"
map = "m2"
"#;

#[test]
fn one_workload_per_map_with_a_common_duration() {
    let s = ok(&format!(
        "{MAPS}[[workload]]\nmap = \"m2\"\nduration = \"12s\"\nqueue_depth = 2\n\
         [[workload]]\nmap = \"m1\"\nblock_size = \"64KiB\"\n\
         [[fault]]\nat = \"11s\"\nleg = \"a\"\nkind = \"fail\"\n\
         [expect]\nmax_latency_ms.m2 = \"< 500\"\napp_errors = 0\nreads.m1 = \"> 0\"\n\
         longest_stall_ms.m1 = \"> 1000\"\nkernel_path_failures.m1 = 1\n"
    ));
    let (m1, m2) = (s.map_id("m1").unwrap(), s.map_id("m2").unwrap());
    assert_eq!(s.workloads.len(), 2);
    // File order, each on its map; the second runs as long as the first.
    assert_eq!((s.workloads[0].map, s.workloads[1].map), (m2, m1));
    assert_eq!(s.workloads[0].queue_depth, 2);
    assert_eq!(s.workloads[1].block_size, 64 << 10);
    assert!(s.workloads.iter().all(|w| w.duration == secs(12)));
    assert_eq!(s.run_length(), secs(12));
    assert_eq!(s.workload_of(m1).unwrap().block_size, 64 << 10);
    assert_eq!(s.guest.timeout, secs(72));
    let checks = &s.expect.checks;
    assert_eq!(checks.len(), 5);
    assert_eq!(
        (checks[0].metric, checks[0].map),
        (Metric::MaxLatencyMs, Some(m2))
    );
    assert_eq!((checks[1].metric, checks[1].map), (Metric::AppErrors, None));
    assert_eq!(checks[3].metric, Metric::LongestStallMs);
    assert_eq!(
        checks[3].display(&s).to_string(),
        "longest_stall_ms.m1 > 1000"
    );
    assert_eq!(checks[1].display(&s).to_string(), "app_errors == 0");
    assert_eq!(checks[4].map, Some(m1));
}

#[test]
fn durations_may_repeat_but_not_differ() {
    let s = ok(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [[workload]]\nmap = \"m2\"\nduration = \"5s\"\n"
    ));
    assert_eq!(s.run_length(), secs(5));
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [[workload]]\nmap = \"m2\"\nduration = \"6s\"\n"
    ));
    let e = at(
        &d,
        24,
        12,
        "this workload runs for 6s, but the one on line 21 runs for 5s",
    );
    assert!(help(e).contains("write `duration = \"5s\"` here"), "{e}");
    assert_eq!(d.len(), 1, "{}", dump(&d));
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\n[[workload]]\nmap = \"m2\"\n"
    ));
    let e = at(&d, 19, 1, "no [[workload]] says how long the workloads run");
    assert!(help(e).contains("duration = \"10s\""));
}

#[test]
fn a_map_runs_at_most_one_workload() {
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [[workload]]\nmap = \"m1\"\n"
    ));
    let e = at(
        &d,
        23,
        7,
        "map \"m1\" already has a workload (the [[workload]] on line 19)",
    );
    assert_eq!(
        help(e),
        "each map runs at most one workload: merge the two, or point this one at a map without a workload (\"m2\")"
    );
    assert_eq!(d.len(), 1, "{}", dump(&d));
}

#[test]
fn a_workload_names_an_existing_map() {
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m3\"\nduration = \"5s\"\n[[workload]]\n"
    ));
    let e = at(
        &d,
        20,
        7,
        "[[workload]] names map \"m3\", which does not exist",
    );
    assert_eq!(help(e), "maps are: \"m1\", \"m2\"");
    // With two maps, a workload without `map` is ambiguous.
    let e = at(&d, 22, 1, "[[workload]] does not say which map it uses");
    assert!(help(e).contains("add `map = \"m1\"`"), "{e}");
    assert_eq!(d.len(), 2, "{}", dump(&d));
}

#[test]
fn range_checks_apply_to_every_workload() {
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [[workload]]\nmap = \"m2\"\nqueue_depth = 0\nblock_size = \"3KiB\"\nstall_threshold = \"5ms\"\n"
    ));
    at(&d, 24, 15, "queue_depth");
    at(&d, 25, 14, "block size 3KiB is not a power of two");
    at(&d, 26, 19, "stall threshold 5ms is too short");
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"2h\"\n"
    ));
    at(&d, 21, 12, "workload duration 2h is out of range");
}

#[test]
fn per_map_metrics_name_a_map_with_a_workload() {
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [expect]\nreads.m3 = \"> 0\"\nreads.m2 = \"> 0\"\nkernel_path_failures.m2 = 0\nstalls.m1 = \"soon\"\n"
    ));
    let e = at(
        &d,
        23,
        7,
        "[expect] `reads.m3` names map \"m3\", which does not exist",
    );
    assert_eq!(help(e), "maps are: \"m1\", \"m2\"");
    let e = at(
        &d,
        24,
        7,
        "[expect] `reads.m2`: map \"m2\" runs no workload, so there is nothing to measure",
    );
    assert_eq!(
        help(e),
        "workloads run on \"m1\"; add a [[workload]] with `map = \"m2\"`, or name one of those maps"
    );
    at(&d, 26, 13, "bad comparison \"soon\" for `stalls`");
    // kernel_path_failures is about the map's paths: no workload needed.
    assert_eq!(d.len(), 3, "{}", dump(&d));
}

#[test]
fn faults_are_timed_against_the_common_duration() {
    let d = errors(&format!(
        "{MAPS}[[workload]]\nmap = \"m1\"\nduration = \"5s\"\n\
         [[workload]]\nmap = \"m2\"\n\
         [[fault]]\nat = \"6s\"\nleg = \"c\"\nkind = \"fail\"\n"
    ));
    at(
        &d,
        25,
        6,
        "the fault starts at 6s, when the workload has already ended (5s)",
    );
}

#[test]
fn the_single_table_form_is_unchanged() {
    let s = ok(&format!(
        "{MAPS}[workload]\nmap = \"m2\"\nduration = \"3s\"\n[expect]\nreads = \"> 0\"\n"
    ));
    assert_eq!(s.workloads.len(), 1);
    assert_eq!(s.workloads[0].map, s.map_id("m2").unwrap());
    assert_eq!(s.expect.checks[0].map, None);
    let d = errors(&format!("{MAPS}[workload]\nmap = \"m2\"\n"));
    at(&d, 19, 1, "`duration`");
    let d = errors(&MAPS.replacen("name = \"t\"\n", "name = \"t\"\nworkload = []\n", 1));
    at(&d, 2, 12, "`workload` is an empty array");
}
