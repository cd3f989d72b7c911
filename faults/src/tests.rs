//! Tests of `parse` as a whole: the model it builds, its defaults, and the
//! position and wording of every class of error.

use std::path::Path;
use std::time::Duration;

use crate::manager::*;
use crate::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Parses a valid scenario, and checks that it survives the trip through JSON the plan makes.
fn ok(text: &str) -> Scenario {
    match parse(Path::new("t.toml"), text) {
        Ok(s) => {
            let json = serde_json::to_string(&s).unwrap();
            let back: Scenario = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s, "the scenario changed on its way through JSON");
            s
        }
        Err(e) => panic!("expected a valid scenario, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(Path::new("t.toml"), text) {
        Ok(s) => panic!("expected errors, got {s:#?}"),
        Err(e) => {
            assert!(!e.0.is_empty());
            e.0
        }
    }
}

fn dump(d: &[Diagnostic]) -> String {
    Diagnostics(d.to_vec()).to_string()
}

/// The diagnostic at `line:column` whose message contains `needle`.
#[track_caller]
fn at<'d>(d: &'d [Diagnostic], line: usize, column: usize, needle: &str) -> &'d Diagnostic {
    d.iter()
        .find(|x| x.line == line && x.column == column && x.message.contains(needle))
        .unwrap_or_else(|| {
            panic!(
                "no error at {line}:{column} containing {needle:?} in:\n{}",
                dump(d)
            )
        })
}

#[track_caller]
fn help(d: &Diagnostic) -> &str {
    d.help
        .as_deref()
        .unwrap_or_else(|| panic!("no help on {d}"))
}

#[track_caller]
fn only(d: &[Diagnostic]) -> &Diagnostic {
    assert_eq!(d.len(), 1, "expected exactly one error, got:\n{}", dump(d));
    &d[0]
}

/// A valid scenario of nine lines (one map "m", legs "a" and "b", 10s
/// workload); tests append tables from line 10 on.
const MINI: &str = r#"name = "t"
[[map]]
name = "m"
[[leg]]
name = "a"
[[leg]]
name = "b"
[workload]
duration = "10s"
"#;

fn mini(extra: &str) -> String {
    format!("{MINI}{extra}")
}

const FULL: &str = r#"name = "leg-fails-and-returns"
description = "one leg fails for 3 s, IO continues on the other"
seed = 7

[guest]
memory_mib = 512
timeout = "90s"

[[map]]
name = "mpatha"
size = "64MiB"
selector = "round-robin"
queue_if_no_path = false
groups = [["a", "b"]]

[[leg]]
name = "a"
map = "mpatha"

[[leg]]
name = "b"

[[fault]]
at = "3s"
for = "3s"
leg = "a"
kind = "fail"

[[fault]]
at = "8s"
leg = "b"
kind = "delay"
ms = 200

[workload]
duration = "10s"
read_percent = 70
block_size = "4KiB"
queue_depth = 8
rate_iops = 500
pattern = "random"
verify = true
stall_threshold = "1s"

[expect]
app_errors = 0
max_latency_ms = "< 500"
kernel_path_failures = ">= 1"

[expect.final_path_state]
a = "active"
b = "active"

[manager]
kind = "none"
"#;

#[test]
fn full_scenario_parses_into_exactly_the_model() {
    let expected = Scenario {
        name: "leg-fails-and-returns".into(),
        description: Some("one leg fails for 3 s, IO continues on the other".into()),
        seed: 7,
        guest: GuestSpec {
            memory_mib: 512,
            timeout: secs(90),
            scratch_mib: None,
        },
        maps: vec![MapSpec {
            name: "mpatha".into(),
            size_bytes: 64 << 20,
            selector: Selector::RoundRobin,
            queue_if_no_path: false,
            groups: vec![vec![LegId::new(0), LegId::new(1)]],
            kind: MapKind::Multipath,
        }],
        legs: vec![
            LegSpec {
                name: "a".into(),
                map: MapId::new(0),
                prio: 1,
                backend: Backend::Loop,
                dm_layer: true,
                scsi: None,
            },
            LegSpec {
                name: "b".into(),
                map: MapId::new(0),
                prio: 1,
                backend: Backend::Loop,
                dm_layer: true,
                scsi: None,
            },
        ],
        hbas: Vec::new(),
        faults: vec![
            FaultSpec {
                at: secs(3),
                duration: Some(secs(3)),
                repeat: None,
                leg: LegId::new(0),
                kind: FaultKind::Fail,
                line: 23,
            },
            FaultSpec {
                at: secs(8),
                duration: None,
                repeat: None,
                leg: LegId::new(1),
                kind: FaultKind::delay(200),
                line: 29,
            },
        ],
        workloads: vec![WorkloadSpec {
            map: MapId::new(0),
            duration: secs(10),
            read_percent: 70,
            block_size: 4096,
            queue_depth: 8,
            rate_iops: Some(500),
            pattern: Pattern::Random,
            verify: true,
            stall_threshold: secs(1),
            engine: WorkloadEngine::Pathrig,
        }],
        critical: vec![],
        expect: Expectations {
            critical: vec![],
            figures: vec![],
            checks: vec![
                Check {
                    metric: Metric::AppErrors,
                    map: None,
                    cmp: Cmp::Eq,
                    value: 0,
                },
                Check {
                    metric: Metric::MaxLatencyMs,
                    map: None,
                    cmp: Cmp::Lt,
                    value: 500,
                },
                Check {
                    metric: Metric::KernelPathFailures,
                    map: None,
                    cmp: Cmp::Ge,
                    value: 1,
                },
            ],
            final_path_state: vec![
                (LegId::new(0), PathStateExpect::Active),
                (LegId::new(1), PathStateExpect::Active),
            ],
        },
        manager: ManagerSpec {
            kind: ManagerKind::None,
            multipathd: None,
            maps: vec![],
        },
        mirror: Default::default(),
    };
    assert_eq!(ok(FULL), expected);
}

#[test]
fn defaults_fill_everything_optional() {
    let s = ok(MINI);
    assert_eq!(s.name, "t");
    assert_eq!(s.description, None);
    assert_eq!(s.seed, 1);
    assert_eq!(
        s.guest,
        GuestSpec {
            memory_mib: 512,
            timeout: secs(70),
            scratch_mib: None,
        }
    );
    assert_eq!(
        s.maps,
        vec![MapSpec {
            name: "m".into(),
            size_bytes: 64 << 20,
            selector: Selector::RoundRobin,
            queue_if_no_path: false,
            // the embedded manager's built-in policy is failover
            groups: vec![vec![LegId::new(0)], vec![LegId::new(1)]],
            kind: MapKind::Multipath,
        }]
    );
    assert!(s.legs.iter().all(|l| l.map == MapId::new(0) && l.prio == 1));
    assert_eq!(
        s.manager,
        ManagerSpec {
            kind: ManagerKind::Embedded,
            multipathd: None,
            maps: vec![("m".into(), ManagerSettings::default())],
        }
    );
    assert!(s.faults.is_empty());
    assert_eq!(
        s.workloads,
        vec![WorkloadSpec {
            map: MapId::new(0),
            duration: secs(10),
            read_percent: 70,
            block_size: 4096,
            queue_depth: 8,
            rate_iops: None,
            pattern: Pattern::Random,
            verify: true,
            stall_threshold: secs(1),
            engine: WorkloadEngine::Pathrig,
        }]
    );
    assert_eq!(s.expect, Expectations::default());
}

#[test]
fn values_in_other_accepted_forms() {
    let s = ok(r#"name = "x-1"
seed = 0
guest = { memory_mib = 4096 }
[[map]]
name = "m"
size = 1048576
selector = "service-time"
queue_if_no_path = true
[[leg]]
name = "a"
[[fault]]
at = 2
leg = "a"
kind = "flakey"
up = 1
down = "2s"
[workload]
duration = 30
block_size = 512
pattern = "sequential"
verify = false
stall_threshold = "250ms"
[expect]
stalls = "!=0"
mismatches = "<= 3"
reads = ">1"
[expect.final_path_state]
a = "failed"
[manager]
kind = "none"
"#);
    assert_eq!(s.seed, 0);
    assert_eq!(s.guest.memory_mib, 4096);
    assert_eq!(s.guest.timeout, secs(90));
    assert_eq!(s.maps[0].size_bytes, 1 << 20);
    assert_eq!(s.maps[0].selector, Selector::ServiceTime);
    assert!(s.maps[0].queue_if_no_path);
    assert_eq!(s.faults[0].at, secs(2));
    assert_eq!(s.faults[0].kind, FaultKind::flakey(secs(1), secs(2)));
    assert_eq!(s.workloads[0].duration, secs(30));
    assert_eq!(s.workloads[0].block_size, 512);
    assert_eq!(s.workloads[0].pattern, Pattern::Sequential);
    assert!(!s.workloads[0].verify);
    assert_eq!(s.workloads[0].stall_threshold, Duration::from_millis(250));
    let checks: Vec<String> = s.expect.checks.iter().map(ToString::to_string).collect();
    assert_eq!(checks, ["stalls != 0", "mismatches <= 3", "reads > 1"]);
    assert_eq!(
        s.expect.final_path_state,
        [(s.leg_id("a").unwrap(), PathStateExpect::Failed)]
    );
}

#[test]
fn lookups_by_name() {
    let s = ok(r#"name = "t"
[[map]]
name = "m"
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "c"
map = "n"
[[leg]]
name = "b"
map = "m"
[workload]
map = "n"
duration = "10s"
[manager]
kind = "none"
"#);
    let (m, n) = (s.map_id("m").unwrap(), s.map_id("n").unwrap());
    let c = s.leg_id("c").unwrap();
    assert_eq!(s.map(s.leg(c).map).name, "n");
    assert_eq!(s.leg_id("zz"), None);
    assert_eq!(s.map(n).name, "n");
    assert!(s.map_id("q").is_none());
    let of_m: Vec<&str> = s.legs_of(m).map(|(_, l)| l.name.as_str()).collect();
    assert_eq!(of_m, ["a", "b"]);
    assert_eq!(s.group_names(m), [vec!["a", "b"]]);
    assert_eq!(s.workloads[0].map, n);
}

// ---- syntax, types and unknown keys ----

#[test]
fn toml_syntax_error_is_one_positioned_diagnostic() {
    let d = errors("name = \"t\"\nseed = = 3\n");
    let d = only(&d);
    assert_eq!(d.line, 2);
    assert!(d.message.starts_with("invalid TOML"), "{}", d.message);
    assert_eq!(d.file, Path::new("t.toml"));
}

#[test]
fn bad_duration_points_at_the_value() {
    let d = errors(
        r#"name = "t"
[workload]
duration = "10s"
[[fault]]
at = "3q"
leg = "a"
kind = "fail"
[[map]]
name = "m"
[[leg]]
name = "a"
"#,
    );
    let e = only(&d);
    assert_eq!((e.line, e.column), (5, 6));
    assert_eq!(
        e.message,
        "`at`: invalid duration \"3q\": unknown unit \"q\""
    );
    assert!(
        help(e).contains("\"250ms\", \"3s\", \"1.5s\", \"2m\" or \"1h\""),
        "{e}"
    );
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "t.toml:5:6: error: `at`: invalid duration \"3q\": unknown unit \"q\""
    );
}

#[test]
fn unknown_top_level_key_lists_valid_keys() {
    let d = errors(&format!("nmae = \"x\"\n{MINI}"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (1, 1));
    assert_eq!(e.message, "unknown key `nmae` in the top-level table");
    assert_eq!(
        help(e),
        "did you mean `name`? valid keys in the top-level table are: name, description, seed, guest, map, leg, fault, workload, expect, manager, mirror, hba, critical"
    );
}

#[test]
fn unknown_key_in_map_lists_map_keys() {
    let d = errors(&MINI.replace("name = \"m\"", "name = \"m\"\nsise = \"4MiB\""));
    let e = at(&d, 4, 1, "unknown key `sise` in [[map]]");
    assert_eq!(
        help(e),
        "did you mean `size`? valid keys in [[map]] are: name, size, selector, queue_if_no_path, groups, kind, log, region_size"
    );
    assert_eq!(d.len(), 1);
}

#[test]
fn unknown_key_in_fault_lists_fault_keys() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nlge = \"a\"\nkind = \"fail\"\n",
    ));
    let e = at(&d, 12, 1, "unknown key `lge` in [[fault]]");
    assert!(help(e).contains("did you mean `leg`?"), "{e}");
    assert!(
        help(e).contains(
            "at, for, every, times, leg, kind, ms, read_ms, write_ms, flush_ms, up, down"
        ),
        "{e}"
    );
    // and the real `leg` is missing, reported at the table header
    let m = at(&d, 10, 1, "[[fault]] is missing required key `leg`");
    assert_eq!(help(m), "add e.g. `leg = \"a\"`");
    assert_eq!(d.len(), 2, "{}", dump(&d));
}

#[test]
fn unknown_metric_in_expect_lists_metrics() {
    let d = errors(&mini("[expect]\napp_error = 0\n"));
    let e = at(&d, 11, 1, "unknown metric `app_error` in [expect]");
    let h = help(e);
    assert!(h.starts_with("did you mean `app_errors`?"), "{h}");
    for m in Metric::ALL {
        assert!(h.contains(m.name()), "{h}");
    }
    assert_eq!(d.len(), 1);
}

#[test]
fn top_level_key_below_a_table_gets_a_hint() {
    let d = errors(&mini("seed = 3\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (10, 1));
    assert_eq!(e.message, "unknown key `seed` in [workload]");
    assert!(
        help(e).starts_with("`seed` is a top-level key: move it above the first [table] header")
    );
}

#[test]
fn table_key_at_top_level_says_where_it_belongs() {
    let d = errors(&format!("memory_mib = 256\n{MINI}"));
    assert!(help(only(&d)).starts_with("`memory_mib` belongs in a [guest] table"));
}

#[test]
fn type_errors_name_expected_and_found() {
    let d = errors(&MINI.replace(
        "name = \"t\"",
        "name = \"t\"\nseed = \"7\"\ndescription = 3",
    ));
    let e = at(&d, 2, 8, "`seed` must be an integer, found a string");
    assert_eq!(help(e), "remove the quotes: `seed = 7`");
    let e = at(
        &d,
        3,
        15,
        "`description` must be a string, found an integer",
    );
    assert_eq!(help(e), "put the value in double quotes");
    assert_eq!(d.len(), 2);
}

#[test]
fn table_shape_mistakes() {
    let d = errors(
        r#"name = "t"
workload = "fast"
[map]
name = "m"
[[leg]]
name = "a"
"#,
    );
    let e = at(&d, 3, 1, "`map` must be an array of tables");
    assert_eq!(help(e), "write the header as [[map]], with double brackets");
    let e = at(&d, 2, 12, "`workload` must be a table, found a string");
    assert_eq!(help(e), "write a [workload] table");
}

#[test]
fn missing_required_parts() {
    let d = errors("description = \"nothing else\"\n");
    at(
        &d,
        1,
        1,
        "the top-level table is missing required key `name`",
    );
    at(&d, 1, 1, "the scenario defines no [[map]]");
    at(&d, 1, 1, "the scenario has no [workload] table");
    let d = errors(&MINI.replace("duration = \"10s\"", "read_percent = 5"));
    let e = at(&d, 8, 1, "[workload] is missing required key `duration`");
    assert_eq!(help(e), "add e.g. `duration = \"10s\"`");
}

#[test]
fn invalid_names() {
    let d = errors(
        &MINI
            .replace("name = \"t\"", "name = \"Bad_Name\"")
            .replace("name = \"m\"", "name = \"a-very-long-map-name\""),
    );
    let e = at(&d, 1, 8, "invalid scenario name \"Bad_Name\"");
    assert!(help(e).contains("at most 32 characters"));
    let e = at(&d, 3, 8, "invalid map name \"a-very-long-map-name\"");
    assert!(help(e).contains("at most 16 characters"));
    assert_eq!(d.len(), 2, "{}", dump(&d));
    let d = errors(&MINI.replace("name = \"a\"", "name = \"-a\""));
    at(&d, 5, 8, "invalid leg name \"-a\"");
}

// ---- maps, legs and groups ----

#[test]
fn duplicate_map_and_leg_names() {
    let d = errors(
        r#"name = "t"
[[map]]
name = "m"
[[map]]
name = "m"
[[leg]]
name = "a"
[[leg]]
name = "a"
[workload]
duration = "10s"
"#,
    );
    let e = at(&d, 5, 8, "duplicate map name \"m\"");
    assert!(
        help(e).contains("the first map named \"m\" is on line 3"),
        "{e}"
    );
    let e = at(&d, 9, 8, "duplicate leg name \"a\"");
    assert!(help(e).contains("line 7"), "{e}");
    assert_eq!(d.len(), 2, "{}", dump(&d));
}

#[test]
fn leg_naming_a_missing_map() {
    let d = errors(&MINI.replace("name = \"b\"", "name = \"b\"\nmap = \"mm\""));
    let e = only(&d);
    assert_eq!((e.line, e.column), (8, 7));
    assert_eq!(
        e.message,
        "leg \"b\" names map \"mm\", which does not exist"
    );
    assert_eq!(help(e), "maps are: \"m\"");
}

#[test]
fn leg_must_name_its_map_when_there_are_several() {
    let d = errors(
        r#"name = "t"
[[map]]
name = "m"
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "b"
[workload]
map = "m"
duration = "10s"
"#,
    );
    let e = at(
        &d,
        9,
        1,
        "leg \"b\" does not say which map it uses, and there are 2 maps",
    );
    assert_eq!(help(e), "add `map = \"m\"` (one of \"m\", \"n\")");
    // map "n" may have been meant for "b", so it is not also reported as legless
    assert_eq!(d.len(), 1, "{}", dump(&d));
}

#[test]
fn map_without_legs() {
    let d = errors(
        r#"name = "t"
[[map]]
name = "m"
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[workload]
map = "m"
duration = "10s"
"#,
    );
    let e = only(&d);
    assert_eq!((e.line, e.column), (5, 8));
    assert_eq!(e.message, "map \"n\" has no legs");
    assert_eq!(help(e), "add a [[leg]] with `map = \"n\"`");
}

#[test]
fn group_errors_each_point_at_the_offender() {
    let d = errors(
        r#"name = "t"
[[map]]
name = "m"
groups = [["a", "zz"], ["b", "a"], [], ["d"]]
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "b"
map = "m"
[[leg]]
name = "c"
map = "m"
[[leg]]
name = "d"
map = "n"
[workload]
map = "m"
duration = "10s"
[manager]
kind = "none"
"#,
    );
    let e = at(
        &d,
        4,
        17,
        "groups of map \"m\" name leg \"zz\", which does not exist",
    );
    assert_eq!(help(e), "legs of map \"m\" are: \"a\", \"b\", \"c\"");
    let e = at(
        &d,
        4,
        30,
        "leg \"a\" is in more than one group of map \"m\"",
    );
    assert!(help(e).contains("each leg belongs to exactly one group"));
    let e = at(&d, 4, 36, "empty path group in map \"m\"");
    assert!(help(e).contains("remove the empty group"));
    let e = at(&d, 4, 41, "leg \"d\" belongs to map \"n\", not \"m\"");
    assert!(help(e).contains("groups may only name legs of map \"m\""));
    let e = at(&d, 4, 10, "leg \"c\" of map \"m\" is in no group");
    assert!(help(e).starts_with("add \"c\" to one of the groups"));
    assert_eq!(d.len(), 5, "{}", dump(&d));
}

#[test]
fn groups_in_priority_order() {
    let s = ok(&mini("[manager]\nkind = \"none\"\n")
        .replace("name = \"m\"", "name = \"m\"\ngroups = [[\"b\"], [\"a\"]]"));
    assert_eq!(s.group_names(MapId::new(0)), [vec!["b"], vec!["a"]]);
}

#[test]
fn map_size_rules() {
    let d = errors(&MINI.replace("name = \"m\"", "name = \"m\"\nsize = \"64MB\""));
    let e = at(&d, 4, 8, "decimal unit \"MB\"");
    assert!(help(e).starts_with("use MiB"), "{e}");
    let d = errors(&MINI.replace("name = \"m\"", "name = \"m\"\nsize = \"2GiB\""));
    assert_eq!(
        help(at(&d, 4, 8, "map size 2GiB is out of range")),
        "a map is 1MiB to 1GiB, e.g. `size = \"64MiB\"`"
    );
    let d = errors(&MINI.replace("name = \"m\"", "name = \"m\"\nsize = 1049000"));
    at(&d, 4, 8, "map size 1049000 bytes is not a multiple of 4KiB");
    let d = errors(&MINI.replace("name = \"m\"", "name = \"m\"\nselector = \"rr\""));
    let e = at(&d, 4, 12, "unknown selector \"rr\"");
    assert_eq!(
        help(e),
        "valid values are: round-robin, queue-length, service-time"
    );
}

// ---- faults ----

#[test]
fn fault_on_missing_leg_lists_the_legs() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"c\"\nkind = \"fail\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (12, 7));
    assert_eq!(e.message, "fault on leg \"c\", which does not exist");
    assert_eq!(help(e), "legs are: \"a\", \"b\"");
}

#[test]
fn fault_after_the_workload() {
    let d = errors(&mini(
        "[[fault]]\nat = \"10s\"\nleg = \"a\"\nkind = \"fail\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (11, 6));
    assert!(e.message.contains("starts at 10s"), "{e}");
    assert_eq!(
        help(e),
        "`at` must be less than the workload duration (10s)"
    );
}

#[test]
fn fault_window_past_the_workload() {
    let d = errors(&mini(
        "[[fault]]\nat = \"9s\"\nfor = \"3s\"\nleg = \"a\"\nkind = \"fail\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (12, 7));
    assert_eq!(
        e.message,
        "the fault window ends at 12s, after the workload ends at 10s"
    );
    assert_eq!(help(e), "make `for` at most 1s or start the fault earlier");
    // ending exactly with the workload is fine
    ok(&mini(
        "[[fault]]\nat = \"9s\"\nfor = \"1s\"\nleg = \"a\"\nkind = \"fail\"\n",
    ));
}

#[test]
fn zero_window() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nfor = 0\nleg = \"a\"\nkind = \"fail\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (12, 7));
    assert_eq!(e.message, "`for` must be longer than 0s");
}

#[test]
fn overlapping_windows_on_one_leg() {
    let d = errors(&mini(
        r#"[[fault]]
at = "2s"
for = "5s"
leg = "a"
kind = "fail"
[[fault]]
at = "4s"
leg = "a"
kind = "delay"
ms = 50
"#,
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (16, 6));
    assert_eq!(
        e.message,
        "the fault at 4s on leg \"a\" overlaps the fault on line 10, whose window lasts until 7s"
    );
    assert_eq!(
        help(e),
        "start this fault at 7s or later, or shorten the earlier fault's `for`"
    );
}

#[test]
fn overlap_is_found_whatever_the_file_order() {
    let d = errors(&mini(
        "[[fault]]\nat = \"4s\"\nleg = \"a\"\nkind = \"restore\"\n[[fault]]\nat = \"1s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"fail\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (11, 6));
    assert!(e.message.contains("overlaps the fault on line 14"), "{e}");
}

#[test]
fn two_faults_at_the_same_instant_on_one_leg() {
    let d = errors(&mini(
        "[[fault]]\nat = \"3s\"\nleg = \"b\"\nkind = \"fail\"\n[[fault]]\nat = 3\nleg = \"b\"\nkind = \"restore\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 6));
    assert!(
        e.message
            .contains("two faults on leg \"b\" start at the same time (3s)"),
        "{e}"
    );
}

#[test]
fn sequences_that_do_not_overlap_are_fine() {
    let s = ok(&mini(
        r#"[[fault]]
at = "1s"
leg = "a"
kind = "fail"
[[fault]]
at = "2s"
leg = "a"
kind = "delay"
ms = 100
[[fault]]
at = "3s"
leg = "a"
kind = "restore"
[[fault]]
at = "4s"
for = "2s"
leg = "a"
kind = "fail"
[[fault]]
at = "6s"
for = "1s"
leg = "a"
kind = "fail"
[[fault]]
at = "4s"
for = "5s"
leg = "b"
kind = "fail"
"#,
    ));
    assert_eq!(s.faults.len(), 6);
    assert_eq!(s.faults[3].line, 23);
}

#[test]
fn unknown_kind_lists_the_kinds() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"flaky\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (13, 8));
    assert_eq!(e.message, "unknown fault kind \"flaky\"");
    assert_eq!(
        help(e),
        "did you mean \"flakey\"? valid values are: fail, delay, flakey, error_range, dust, restore, kernel_fail, errno, latency, hang, lose, corrupt, no_response, check_condition, scsi_status, scsi_latency, port_offline"
    );
}

#[test]
fn parameters_on_the_wrong_kind() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"fail\"\nms = 200\nup = \"1s\"\n",
    ));
    let e = at(&d, 14, 1, "`ms` does not apply to kind = \"fail\"");
    assert_eq!(
        help(e),
        "`ms` is a parameter of kind = \"delay\" or \"latency\" or \"scsi_latency\" only"
    );
    let e = at(&d, 15, 1, "`up` does not apply to kind = \"fail\"");
    assert_eq!(help(e), "`up` is a parameter of kind = \"flakey\" only");
    assert_eq!(d.len(), 2);
}

#[test]
fn kind_parameters_are_required_and_checked() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"delay\"\n",
    ));
    let e = at(&d, 10, 1, "kind = \"delay\" needs `ms`");
    assert_eq!(
        help(e),
        "add e.g. `ms = 200` to this [[fault]] to delay every IO, or `write_ms = 200` to delay only writes"
    );
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"delay\"\nms = 0\n",
    ));
    let e = at(&d, 14, 6, "`ms` is out of range: 0");
    assert_eq!(help(e), "`ms` takes a whole number from 1 to 60000");
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"flakey\"\nup = \"1.5s\"\n",
    ));
    let e = at(&d, 14, 6, "`up` = 1.5s is not a whole number of seconds");
    assert!(help(e).starts_with("dm-flakey takes whole seconds"));
    at(&d, 10, 1, "kind = \"flakey\" needs `down`");
    assert_eq!(d.len(), 2);
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"flakey\"\nup = \"500ms\"\ndown = \"1s\"\n",
    ));
    at(
        &d,
        14,
        6,
        "`up` = 500ms is not a whole number of seconds (at least 1s)",
    );
}

#[test]
fn restore_takes_no_window() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nfor = \"1s\"\nleg = \"a\"\nkind = \"restore\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (12, 1));
    assert_eq!(e.message, "`for` does not apply to kind = \"restore\"");
}

// ---- workload and guest ----

#[test]
fn workload_range_checks() {
    let d = errors(
        r#"name = "t"
[guest]
memory_mib = 64
[[map]]
name = "m"
[[leg]]
name = "a"
[workload]
duration = "2h"
read_percent = 101
queue_depth = 0
rate_iops = 0
block_size = 3000
stall_threshold = "50ms"
pattern = "zigzag"
verify = "yes"
"#,
    );
    assert_eq!(
        help(at(&d, 3, 14, "`memory_mib` is out of range: 64")),
        "`memory_mib` takes a whole number from 128 to 4096"
    );
    at(&d, 9, 12, "workload duration 2h is out of range");
    assert_eq!(
        help(at(&d, 10, 16, "`read_percent` is out of range: 101")),
        "`read_percent` takes a whole number from 0 to 100"
    );
    at(&d, 11, 15, "`queue_depth` is out of range: 0");
    at(&d, 12, 13, "`rate_iops` is out of range: 0");
    at(
        &d,
        13,
        14,
        "block size 3000 bytes is not a power of two from 512 to 1MiB",
    );
    at(&d, 14, 19, "stall threshold 50ms is too short");
    assert_eq!(
        help(at(&d, 15, 11, "unknown pattern \"zigzag\"")),
        "valid values are: random, sequential"
    );
    assert_eq!(
        help(at(&d, 16, 10, "`verify` must be a boolean, found a string")),
        "write `verify = true` or `verify = false`"
    );
    assert_eq!(d.len(), 9, "{}", dump(&d));
}

#[test]
fn block_size_must_divide_the_map() {
    let text = MINI
        .replace("name = \"m\"", "name = \"m\"\nsize = \"1028KiB\"")
        .replace(
            "duration = \"10s\"",
            "duration = \"10s\"\nblock_size = \"8KiB\"",
        );
    let d = errors(&text);
    let e = only(&d);
    assert_eq!((e.line, e.column), (11, 14));
    assert_eq!(
        e.message,
        "block size 8KiB does not divide the size of map \"m\" (1028KiB)"
    );
    ok(&text.replace("8KiB", "4KiB"));
}

#[test]
fn workload_map_must_exist_and_be_named_when_ambiguous() {
    let d = errors(&MINI.replace("duration = \"10s\"", "duration = \"10s\"\nmap = \"x\""));
    let e = only(&d);
    assert_eq!((e.line, e.column), (10, 7));
    assert_eq!(
        e.message,
        "[workload] names map \"x\", which does not exist"
    );
    assert_eq!(help(e), "maps are: \"m\"");
    let two = "name = \"t\"\n[[map]]\nname = \"m\"\n[[map]]\nname = \"n\"\n[[leg]]\nname = \"a\"\nmap = \"m\"\n[[leg]]\nname = \"b\"\nmap = \"n\"\n[workload]\nduration = \"5s\"\n";
    let d = errors(two);
    let e = only(&d);
    assert_eq!((e.line, e.column), (12, 1));
    assert!(
        e.message
            .starts_with("[workload] does not say which map it uses"),
        "{e}"
    );
}

#[test]
fn guest_timeout_must_outlast_the_workload() {
    let d = errors(&format!("{MINI}[guest]\ntimeout = \"10s\"\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (11, 11));
    assert_eq!(
        e.message,
        "guest timeout 10s is not longer than the workload (10s)"
    );
    assert_eq!(
        help(e),
        "make it longer than 10s, or leave `timeout` out for the default (70s)"
    );
}

#[test]
fn float_duration_suggests_a_string() {
    let d = errors(&MINI.replace("duration = \"10s\"", "duration = 1.5"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (9, 12));
    assert!(help(e).starts_with("write `duration = \"1.5s\"`"), "{e}");
}

// ---- expectations ----

#[test]
fn bad_comparisons() {
    let d = errors(&mini("[expect]\napp_errors = \"~ 5\"\nstalls = \"5\"\nreads = -1\nwrites = \"< 0\"\nmismatches = true\n"));
    let e = at(&d, 11, 14, "bad comparison \"~ 5\" for `app_errors`");
    assert!(help(e).contains("==, !=, <, <=, >, >="), "{e}");
    at(&d, 12, 10, "bad comparison \"5\" for `stalls`");
    at(&d, 13, 9, "`reads` is out of range: -1");
    let e = at(&d, 14, 10, "`writes < 0` can never hold");
    assert!(help(e).contains("\"== 0\""));
    at(
        &d,
        15,
        14,
        "`mismatches` must be an integer or a comparison string, found a boolean",
    );
    assert_eq!(d.len(), 5, "{}", dump(&d));
}

#[test]
fn final_path_state_names_real_legs() {
    let d = errors(&mini(
        "[expect.final_path_state]\na = \"active\"\nzz = \"failed\"\nb = \"broken\"\n",
    ));
    let e = at(
        &d,
        12,
        1,
        "[expect.final_path_state] names leg \"zz\", which does not exist",
    );
    assert_eq!(help(e), "legs are: \"a\", \"b\"");
    let e = at(&d, 13, 5, "unknown path state \"broken\" for leg `b`");
    assert_eq!(help(e), "valid values are: active, failed");
    assert_eq!(d.len(), 2);
}

#[test]
fn checks_keep_file_order() {
    let s = ok(&mini(
        "[expect]\nwrites = \">= 1\"\napp_errors = 0\nstalls = 0\n",
    ));
    let order: Vec<Metric> = s.expect.checks.iter().map(|c| c.metric).collect();
    assert_eq!(order, [Metric::Writes, Metric::AppErrors, Metric::Stalls]);
}

// ---- collection of many errors ----

#[test]
fn many_errors_are_reported_together_in_file_order() {
    let d = errors(
        r#"name = "T"
[[map]]
name = "m"
size = "3MB"
[[leg]]
name = "a"
[[fault]]
at = "20s"
leg = "q"
kind = "fail"
[workload]
duration = "10s"
queue_depth = 1000
[expect]
latency = 3
"#,
    );
    let positions: Vec<(usize, usize)> = d.iter().map(|x| (x.line, x.column)).collect();
    assert_eq!(
        positions,
        [(1, 8), (4, 8), (8, 6), (9, 7), (13, 15), (15, 1)],
        "{}",
        dump(&d)
    );
}

// ---- timeline ----

#[test]
fn timeline_orders_by_time_restore_first_then_file_order() {
    let s = ok(&mini(
        r#"[[fault]]
at = "2s"
for = "3s"
leg = "a"
kind = "fail"
[[fault]]
at = "5s"
leg = "a"
kind = "delay"
ms = 100
[[fault]]
at = "1s"
for = "4s"
leg = "b"
kind = "fail"
[[fault]]
at = "5s"
leg = "b"
kind = "fail"
"#,
    ));
    let got: Vec<(u64, String, StepAction, usize)> = s
        .timeline()
        .into_iter()
        .map(|st| {
            let leg = s.leg(st.leg).name.clone();
            (st.at.as_secs(), leg, st.action, st.fault.index())
        })
        .collect();
    use StepAction::*;
    assert_eq!(
        got,
        [
            (1, "b".to_string(), Apply(FaultKind::Fail), 2),
            (2, "a".to_string(), Apply(FaultKind::Fail), 0),
            (5, "a".to_string(), Restore, 0),
            (5, "b".to_string(), Restore, 2),
            (5, "a".to_string(), Apply(FaultKind::delay(100)), 1),
            (5, "b".to_string(), Apply(FaultKind::Fail), 3),
        ]
    );
}

#[test]
fn timeline_of_a_scenario_without_faults_is_empty() {
    assert!(ok(MINI).timeline().is_empty());
}

// ---- load and serialization ----

#[test]
fn load_reads_a_file_and_reports_an_unreadable_one() {
    let missing = Path::new("/nonexistent/dir/scenario.toml");
    let e = load(missing).unwrap_err();
    let e = only(&e.0);
    assert_eq!((e.line, e.column), (0, 0));
    assert!(e.message.starts_with("cannot read scenario file"), "{e}");
    assert_eq!(e.file, missing);

    let path = std::env::temp_dir().join(format!("faults-load-test-{}.toml", std::process::id()));
    std::fs::write(&path, MINI).unwrap();
    let loaded = load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap(), ok(MINI));
}

#[test]
fn model_serializes_for_reports() {
    let s = ok(FULL);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v["faults"][1]["kind"],
        serde_json::json!({"kind": "delay", "read_ms": 200, "write_ms": 200, "flush_ms": 200})
    );
    assert_eq!(v["maps"][0]["selector"], "round-robin");
    assert_eq!(
        v["expect"]["checks"][1],
        serde_json::json!({"metric": "max_latency_ms", "cmp": "<", "value": 500})
    );
    assert_eq!(
        v["expect"]["final_path_state"][0],
        serde_json::json!([0, "active"])
    );
    // references are ids, plain numbers
    assert_eq!(v["maps"][0]["groups"], serde_json::json!([[0, 1]]));
    assert_eq!(v["faults"][1]["leg"], 1);
    assert_eq!(v["workloads"][0]["map"], 0);
    let steps = serde_json::to_value(s.timeline()).unwrap();
    assert_eq!(
        steps[0]["action"],
        serde_json::json!({"apply": {"kind": "fail"}})
    );
    assert_eq!(steps[1]["action"], "restore");
}

#[path = "tests/critical.rs"]
mod critical_tests;
mod figures;
mod manager;
#[path = "tests/mirror.rs"]
mod mirror_tests;
#[path = "tests/scsi.rs"]
mod scsi_tests;
mod workloads;

#[test]
fn kernel_fail_is_instantaneous() {
    let s = ok(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"kernel_fail\"\n",
    ));
    assert_eq!(s.faults[0].kind, FaultKind::KernelFail);
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nfor = \"2s\"\nleg = \"a\"\nkind = \"kernel_fail\"\n",
    ));
    assert!(only(&d).message.contains("for"), "{}", only(&d).message);
}

#[test]
fn fio_engine_verifies_nothing_and_refuses_verify_true() {
    let fio = ok(&mini("engine = \"fio-batched\"\n"));
    assert_eq!(fio.workloads[0].engine, WorkloadEngine::FioBatched);
    assert!(!fio.workloads[0].verify);
    assert!(ok(MINI).workloads[0].verify);
    let d = errors(&mini("engine = \"fio\"\nverify = true\n"));
    at(&d, 11, 10, "fio does not verify");
    let d = errors(&mini("engine = \"dd\"\n"));
    at(&d, 10, 10, "");
}

#[test]
fn maps_that_cannot_fit_in_the_guest_scratch_space_are_refused() {
    let body = "[[map]]\nname = \"m\"\nsize = \"1GiB\"\n[[leg]]\nname = \"a\"\n[workload]\nduration = \"3s\"\n";
    // memory_mib given: the error is there, with the numbers and the fix.
    let d = errors(&format!("name = \"t\"\n[guest]\nmemory_mib = 128\n{body}"));
    let e = at(&d, 3, 1, "take up to 1GiB of the guest's scratch tmpfs");
    assert!(e.message.contains("128 MiB has room for 24MiB"), "{e}");
    assert_eq!(
        help(e),
        "set `memory_mib = 1128` (or more) in [guest], or make the maps at most 24MiB in all"
    );
    // Not given: the error is at the biggest map's size.
    let d = errors(&format!("name = \"t\"\n{body}"));
    at(&d, 4, 1, "a guest of 512 MiB has room for 408MiB");
    // The fix works; and the default 64 MiB map fits the default guest.
    ok(&format!("name = \"t\"\n[guest]\nmemory_mib = 1128\n{body}"));
    ok(MINI);
    let two =
        "name = \"t\"\n[guest]\nmemory_mib = 160\n[[map]]\nname = \"m\"\n[[map]]\nname = \"n\"\n\
               [[leg]]\nname = \"a\"\nmap = \"m\"\n[[leg]]\nname = \"b\"\nmap = \"n\"\n\
               [workload]\nmap = \"m\"\nduration = \"3s\"\n";
    // Two 64 MiB maps in 160 MiB: 128 MiB of backing files, room for 56 MiB.
    at(&errors(two), 3, 1, "take up to 128MiB");
}

#[test]
fn a_small_scratch_space_sizes_the_tmpfs_below_the_maps() {
    // The map is 64 MiB by default: 24 MiB of scratch space run out a third of the way in.
    let s = ok(&mini("[guest]\nscratch_mib = 24\n"));
    assert_eq!(s.guest.scratch_mib, Some(24));
    assert_eq!(s.scratch_bytes(), 24 << 20);
    // Without the key the tmpfs holds every backing file.
    assert_eq!(ok(MINI).scratch_bytes(), (64 << 20) + model::SCRATCH_SLACK);
}

#[test]
fn a_scratch_space_that_limits_nothing_or_does_not_fit_is_refused() {
    let d = errors(&mini("[guest]\nscratch_mib = 100\n"));
    let e = at(
        &d,
        11,
        15,
        "`scratch_mib = 100` is no smaller than what the maps' backing files need (72MiB), so it would limit nothing",
    );
    assert_eq!(help(e), "leave `scratch_mib` out, or set it below 72");
    let big = MINI.replace("name = \"m\"", "name = \"m\"\nsize = \"1GiB\"");
    let d = errors(&format!(
        "{big}[guest]\nmemory_mib = 128\nscratch_mib = 1000\n"
    ));
    assert!(d.iter().any(|e| e
        .message
        .starts_with("`scratch_mib = 1000` does not fit a guest of 128 MiB")));
    let d = errors(&mini("[guest]\nscratch_mib = 8\n"));
    assert_eq!(only(&d).message, "`scratch_mib` is out of range: 8");
}
