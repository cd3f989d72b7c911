//! The validated scenario as a plan: it survives serde (what the host hands the guest), and its
//! ids index the maps, legs and faults they name.

use std::path::{Path, PathBuf};

use faults::{load, parse, Scenario};

/// Every scenario of the VM suite.
fn vm_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_vm_scenario_round_trips_through_json() {
    let files = vm_scenarios();
    assert!(files.len() > 10, "found only {files:?}");
    for file in files {
        let s = load(&file).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
        let json = serde_json::to_string(&s).unwrap();
        let back: Scenario = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{}: {e}\n{json}", file.display()));
        assert_eq!(back, s, "{}", file.display());
        assert!(back.ids_in_range(), "{}", file.display());
        for (id, map) in s.map_ids() {
            assert_eq!(
                s.settings(id),
                s.manager.settings(&map.name),
                "{}",
                map.name
            );
        }
    }
}

#[test]
fn ids_index_what_they_name() {
    // Legs of two maps declared interleaved, groups written out of order.
    let s = parse(
        Path::new("t.toml"),
        r#"name = "t"
[[map]]
name = "m"
groups = [["b"], ["a"]]
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "x"
map = "n"
[[leg]]
name = "b"
map = "m"
[[fault]]
at = "1s"
leg = "x"
kind = "fail"
[[fault]]
at = "2s"
leg = "b"
kind = "fail"
[workload]
map = "n"
duration = "5s"
[expect.final_path_state]
b = "active"
x = "failed"
[manager]
kind = "none"
"#,
    )
    .unwrap();
    let (m, n) = (s.map_id("m").unwrap(), s.map_id("n").unwrap());
    let (a, x, b) = (
        s.leg_id("a").unwrap(),
        s.leg_id("x").unwrap(),
        s.leg_id("b").unwrap(),
    );
    assert_eq!((m.index(), n.index()), (0, 1));
    assert_eq!((a.index(), x.index(), b.index()), (0, 1, 2));
    assert_eq!(s.map(m).name, "m");
    assert_eq!(s.leg(x).name, "x");
    assert_eq!(s.leg(a).map, m);
    assert_eq!(s.leg(x).map, n);
    assert_eq!(s.leg(b).map, m);
    assert_eq!(s.map(m).groups, [vec![b], vec![a]]);
    assert_eq!(s.map(n).groups, [vec![x]]);
    let legs_of_m: Vec<_> = s.legs_of(m).map(|(id, _)| id).collect();
    assert_eq!(legs_of_m, [a, b]);
    assert_eq!(s.faults[0].leg, x);
    assert_eq!(s.faults[1].leg, b);
    assert_eq!(s.workloads[0].map, n);
    let expected: Vec<_> = s.expect.final_path_state.iter().map(|(l, _)| *l).collect();
    assert_eq!(expected, [b, x]);
    // the timeline's steps name the leg and the fault they come from
    let steps = s.timeline();
    assert_eq!((steps[0].leg, steps[0].fault), (x, steps[0].fault));
    assert_eq!(s.fault(steps[0].fault).leg, x);
    assert_eq!(s.fault(steps[1].fault).leg, b);
    assert_eq!(steps[1].fault.index(), 1);
    assert!(s.ids_in_range());
}
