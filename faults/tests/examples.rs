//! Example scenarios, written as a user would, parsed through the public API.

use std::path::Path;
use std::time::Duration;

use faults::{parse, Cmp, FaultKind, Metric, PathStateExpect, Selector, StepAction};

/// Parses an example, and checks that it survives the trip through JSON the plan makes.
fn parse_ok(name: &str, text: &str) -> faults::Scenario {
    let s = parse(Path::new(name), text).unwrap_or_else(|e| panic!("{name} should parse:\n{e}"));
    let back: faults::Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s, "{name} changed on its way through JSON");
    s
}

#[test]
fn all_paths_down_with_queueing() {
    let s = parse_ok(
        "all-paths-down.toml",
        r#"
name = "all-paths-down"
description = "both legs fail together; the map queues IO until they return"

[manager]
no_path_retry = "queue"

[[map]]
name = "mpatha"

[[leg]]
name = "a"

[[leg]]
name = "b"

[[fault]]
at = "2s"
for = "2s"
leg = "a"
kind = "fail"

[[fault]]
at = "2s"
for = "2s"
leg = "b"
kind = "fail"

[workload]
duration = "8s"
rate_iops = 200

[expect]
app_errors = 0
max_stall_ms = ">= 1000"

[expect.final_path_state]
a = "active"
b = "active"
"#,
    );
    assert!(s.maps[0].queue_if_no_path);
    let t = s.timeline();
    let kinds: Vec<(u64, &str, bool)> = t
        .iter()
        .map(|st| {
            (
                st.at.as_secs(),
                s.leg(st.leg).name.as_str(),
                st.action == StepAction::Restore,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (2, "a", false),
            (2, "b", false),
            (4, "a", true),
            (4, "b", true)
        ]
    );
    assert_eq!(s.expect.checks[1].metric, Metric::MaxStallMs);
    assert_eq!(s.expect.checks[1].cmp, Cmp::Ge);
    assert!(s.expect.checks[1].holds(1500));
    assert!(!s.expect.checks[1].holds(999));
}

#[test]
fn slow_path_in_a_lower_priority_group() {
    let s = parse_ok(
        "slow-path.toml",
        r#"
name = "slow-standby"
seed = 42

[guest]
memory_mib = 1024

[manager]
path_grouping_policy = "failover"

[[map]]
name = "mpatha"
size = "256MiB"
selector = "service-time"

[[leg]]
name = "slow"
prio = 10

[[leg]]
name = "fast"
prio = 50

[[fault]]
at = "0s"
leg = "slow"
kind = "delay"
ms = 500

[[fault]]
at = "5s"
leg = "fast"
kind = "fail"

[workload]
duration = "20s"
read_percent = 100
block_size = "64KiB"
queue_depth = 32
pattern = "sequential"

[expect]
app_errors = 0
p99_latency_ms = "> 400"
"#,
    );
    assert_eq!(s.seed, 42);
    assert_eq!(s.guest.memory_mib, 1024);
    assert_eq!(s.guest.timeout, Duration::from_secs(80));
    assert_eq!(s.maps[0].selector, Selector::ServiceTime);
    assert_eq!(s.maps[0].size_bytes, 256 << 20);
    let map = s.map_id("mpatha").unwrap();
    assert_eq!(s.group_names(map), [vec!["fast"], vec!["slow"]]);
    assert_eq!(s.faults[0].kind, FaultKind::delay(500));
    assert_eq!(s.workloads[0].block_size, 64 << 10);
}

#[test]
fn flapping_leg_then_restore() {
    let s = parse_ok(
        "flap.toml",
        r#"
name = "flap"
[[map]]
name = "m"
[[leg]]
name = "a"
[[leg]]
name = "b"
[[fault]]
at = "1s"
leg = "a"
kind = "flakey"
up = "2s"
down = "1s"
[[fault]]
at = "9s"
leg = "a"
kind = "restore"
[workload]
duration = "12s"
stall_threshold = "500ms"
[expect]
kernel_path_failures = ">= 1"
[expect.final_path_state]
a = "active"
"#,
    );
    assert_eq!(
        s.faults[0].kind,
        FaultKind::flakey(Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!(s.faults[1].kind, FaultKind::Restore);
    assert_eq!(
        s.expect.final_path_state,
        [(s.leg_id("a").unwrap(), PathStateExpect::Active)]
    );
    assert_eq!(s.timeline().len(), 2);
}

#[test]
fn two_maps_workload_on_one() {
    let s = parse_ok(
        "two-maps.toml",
        r#"
name = "two-maps"
[[map]]
name = "data"
[[map]]
name = "log"
size = "16MiB"
[[leg]]
name = "d1"
map = "data"
[[leg]]
name = "d2"
map = "data"
[[leg]]
name = "l1"
map = "log"
[[fault]]
at = "3s"
for = "1s"
leg = "l1"
kind = "fail"
[workload]
map = "data"
duration = "5s"
"#,
    );
    let data_id = s.map_id("data").unwrap();
    let data: Vec<&str> = s.legs_of(data_id).map(|(_, l)| l.name.as_str()).collect();
    assert_eq!(data, ["d1", "d2"]);
    assert_eq!(s.group_names(s.map_id("log").unwrap()), [vec!["l1"]]);
    assert_eq!(s.workloads[0].map, data_id);
}

#[test]
fn a_broken_scenario_reads_like_a_compiler_error() {
    let text = r#"name = "broken"
[[map]]
name = "mpatha"
size = "64MB"
[[leg]]
name = "a"
[[fault]]
at = "3s"
for = "9s"
leg = "a"
kind = "fail"
[[fault]]
at = "1s"
leg = "c"
kind = "flaky"
[workload]
duration = "10s"
[expect]
app_errors = "< five"
"#;
    let err = parse(Path::new("scenarios/broken.toml"), text).unwrap_err();
    let expected = r#"scenarios/broken.toml:4:8: error: `size`: invalid size "64MB": decimal unit "MB" is not accepted
  help: use MiB (binary units: 1 MiB = 1048576 bytes)
scenarios/broken.toml:9:7: error: the fault window ends at 12s, after the workload ends at 10s
  help: make `for` at most 7s or start the fault earlier
scenarios/broken.toml:14:7: error: fault on leg "c", which does not exist
  help: legs are: "a"
scenarios/broken.toml:15:8: error: unknown fault kind "flaky"
  help: did you mean "flakey"? valid values are: fail, delay, flakey, error_range, dust, restore, kernel_fail, errno, latency, hang, lose, corrupt, no_response, check_condition, scsi_status, scsi_latency, port_offline
scenarios/broken.toml:19:14: error: bad comparison "< five" for `app_errors`
  help: write an integer (meaning ==) or a string "OP N" with OP one of ==, !=, <, <=, >, >=, e.g. "< 500""#;
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.len(), 5);
    let as_error: &dyn std::error::Error = &err;
    assert!(as_error
        .to_string()
        .starts_with("scenarios/broken.toml:4:8"));
}
