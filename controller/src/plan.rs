//! The plan file: the validated [`Scenario`] as the host hands it to the guest.
//!
//! The host validates the scenario file once (`faults::load`) and writes the result to
//! [`PLAN_FILE`] in the run directory; the guest's init reads that back with serde and runs it.
//! Nothing in the guest reads the scenario TOML again (its `conf_file` contents are already
//! resolved into the path manager's settings). The file carries [`PLAN_VERSION`], which changes
//! whenever the shape of the plan does, so a guest never runs a plan it would misread.

use std::fs;
use std::path::Path;

use faults::Scenario;
use serde::{Deserialize, Serialize};

/// The plan's name in the run directory.
pub const PLAN_FILE: &str = "plan.json";

/// The version of the plan's shape that this build writes and reads. 2: `workloads` (a list,
/// one per map) instead of `workload`, and `[expect]` checks with an optional `map`.
pub const PLAN_VERSION: u32 = 2;

/// What `plan.json` holds: `{"plan_version": 2, "scenario": {…}}`.
#[derive(Serialize)]
struct PlanOut<'a> {
    plan_version: u32,
    scenario: &'a Scenario,
}

/// The version is read on its own first, so a plan of another shape is refused by its version,
/// not by whatever field it trips over.
#[derive(Deserialize)]
struct Version {
    plan_version: u32,
}

#[derive(Deserialize)]
struct PlanIn {
    scenario: Scenario,
}

/// The plan text for `scenario`.
pub fn to_json(scenario: &Scenario) -> String {
    let plan = PlanOut {
        plan_version: PLAN_VERSION,
        scenario,
    };
    serde_json::to_string_pretty(&plan).expect("a scenario always serialises") + "\n"
}

/// The scenario of a plan text: refused if it is not a plan of [`PLAN_VERSION`], or its ids do
/// not index its own maps, legs and faults.
pub fn from_json(text: &str) -> Result<Scenario, String> {
    let version: Version =
        serde_json::from_str(text).map_err(|e| format!("not a pathrig plan: {e}"))?;
    if version.plan_version != PLAN_VERSION {
        return Err(format!(
            "plan version {} is not the version this pathrig reads ({PLAN_VERSION}): the host and the guest's init must be the same build",
            version.plan_version
        ));
    }
    let plan: PlanIn = serde_json::from_str(text).map_err(|e| format!("unreadable plan: {e}"))?;
    if !plan.scenario.ids_in_range() {
        return Err("the plan refers to a map, leg or fault it does not have".into());
    }
    Ok(plan.scenario)
}

/// Writes `scenario`'s plan into the run directory `dir`.
pub fn write(dir: &Path, scenario: &Scenario) -> Result<(), String> {
    let path = dir.join(PLAN_FILE);
    fs::write(&path, to_json(scenario)).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Reads the plan in the run directory `dir`.
pub fn read(dir: &Path) -> Result<Scenario, String> {
    let path = dir.join(PLAN_FILE);
    let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"name = "t"
[[map]]
name = "m"
[[leg]]
name = "a"
[[leg]]
name = "b"
[[fault]]
at = "1s"
for = "1s"
leg = "b"
kind = "fail"
[workload]
duration = "5s"
[expect.final_path_state]
b = "active"
"#;

    fn scenario() -> Scenario {
        faults::parse_with(Path::new("t.toml"), SCENARIO, &|_| unreachable!("no files")).unwrap()
    }

    #[test]
    fn a_plan_reads_back_as_the_scenario() {
        let s = scenario();
        let text = to_json(&s);
        assert!(text.starts_with("{\n  \"plan_version\": 2,"), "{text}");
        assert_eq!(from_json(&text).unwrap(), s);
    }

    #[test]
    fn a_plan_with_several_workloads_reads_back() {
        let text = SCENARIO
            .replace("[workload]\nduration = \"5s\"\n", "")
            .replace(
                "[[leg]]\nname = \"a\"\n",
                "[[map]]\nname = \"n\"\n[[leg]]\nname = \"c\"\nmap = \"n\"\n[[leg]]\nname = \"a\"\nmap = \"m\"\n",
            )
            .replace("[[leg]]\nname = \"b\"\n", "[[leg]]\nname = \"b\"\nmap = \"m\"\n")
            + "[[workload]]\nmap = \"n\"\nduration = \"5s\"\n[[workload]]\nmap = \"m\"\n[expect]\nreads.n = \"> 0\"\n";
        let s = faults::parse_with(Path::new("t.toml"), &text, &|_| unreachable!("no files"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s.workloads.len(), 2);
        let plan = to_json(&s);
        assert_eq!(from_json(&plan).unwrap(), s);
        // A check's map and a workload's map are ids the plan's own maps must have.
        let mut v: serde_json::Value = serde_json::from_str(&plan).unwrap();
        assert_eq!(v["scenario"]["expect"]["checks"][0]["map"], 1);
        v["scenario"]["expect"]["checks"][0]["map"] = 5.into();
        assert!(from_json(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(&plan).unwrap();
        v["scenario"]["workloads"][1]["map"] = 5.into();
        assert!(from_json(&v.to_string()).is_err());
        v["scenario"]["workloads"] = serde_json::json!([]);
        assert!(from_json(&v.to_string()).is_err());
    }

    #[test]
    fn another_version_is_refused_by_its_version() {
        let text = to_json(&scenario()).replace("\"plan_version\": 2", "\"plan_version\": 7");
        let err = from_json(&text).unwrap_err();
        assert!(err.contains("plan version 7"), "{err}");
        let err = from_json("{\"plan_version\": 1}").unwrap_err();
        assert!(err.contains("plan version 1"), "{err}");
        let err = from_json("name = \"t\"").unwrap_err();
        assert!(err.starts_with("not a pathrig plan"), "{err}");
    }

    #[test]
    fn ids_out_of_range_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(&to_json(&scenario())).unwrap();
        v["scenario"]["faults"][0]["leg"] = 9.into();
        let err = from_json(&v.to_string()).unwrap_err();
        assert!(err.contains("does not have"), "{err}");
    }
}
