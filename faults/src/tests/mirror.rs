//! Tests of mirror maps: `kind = "mirror"`, `log`, `region_size`, the `[mirror]` section and
//! its overrides, and what a mirror map refuses.

use std::time::Duration;

use super::*;
use crate::mirror_settings::{DeadPolicy, MirrorSettings, ReadFailurePolicy};

/// A mirror "m" over legs "a" and "b", 14 lines; tests append from line 15.
const MIRROR: &str = r#"name = "t"
workload = { map = "m", duration = "10s" }
[[map]]
name = "m"
kind = "mirror"
size = "16MiB"
region_size = "256KiB"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "b"
map = "m"
dm_layer = true
"#;

fn with(extra: &str) -> String {
    format!("{MIRROR}{extra}")
}

#[track_caller]
fn line_no(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
        + 1
}

#[test]
fn a_mirror_map_decodes_with_its_region_size_and_no_manager_settings() {
    let s = ok(MIRROR);
    let m = &s.maps[0];
    assert_eq!(
        m.kind,
        MapKind::Mirror(MirrorMapSpec {
            log: MirrorLogKind::Core,
            region_size_bytes: 256 << 10,
            legs: 2,
        })
    );
    assert!(m.is_mirror());
    assert_eq!(m.copies(), 2);
    assert_eq!(s.group_names(s.map_id("m").unwrap()), vec![vec!["a", "b"]]);
    assert!(!m.queue_if_no_path);
    assert!(s.manager.settings("m").is_none());
    assert_eq!(s.mirror.settings_for("m"), MirrorSettings::default());
    // Backing files: one per leg.
    assert_eq!(s.scratch_bytes(), 32 << 20 | model::SCRATCH_SLACK);
}

#[test]
fn defaults_and_overrides_of_the_mirror_section() {
    let text = r#"name = "t"
workload = { map = "m", duration = "10s" }
[[map]]
name = "m"
kind = "mirror"
[[map]]
name = "n"
kind = "mirror"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "b"
map = "m"
[[leg]]
name = "c"
map = "n"
[[leg]]
name = "d"
map = "n"
[mirror]
on_dead = "wait"
dead_window = "5s"
on_read_failure = "relocate"
[mirror.map.n]
on_dead = "remove"
"#;
    let s = ok(text);
    let m = s.mirror.settings_for("m");
    assert_eq!(
        m.on_dead,
        DeadPolicy::Wait {
            window: Duration::from_secs(5),
            max_out_of_sync_percent: None,
            then: mirror_monitor::AfterWindow::Remove,
            probe_interval: Duration::from_secs(1),
        }
    );
    assert_eq!(m.on_read_failure, ReadFailurePolicy::Relocate);
    let n = s.mirror.settings_for("n");
    assert_eq!(n.on_dead, DeadPolicy::Remove);
    assert_eq!(n.on_read_failure, ReadFailurePolicy::Relocate);
}

#[test]
fn an_out_of_range_setting_is_reported_at_its_key_with_the_fix() {
    let text = with(
        "[mirror]\non_dead = \"wait\"\ndead_window = \"10ms\"\ndead_probe_interval = \"10ms\"\n",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line_no(&text, "dead_window"));
    assert_eq!(e[0].column, 1);
    assert!(
        e[0].message.contains("dead_window = 0.01s"),
        "{}",
        e[0].message
    );
    assert!(e[0].message.contains("allowed 0.1s to 3600s"));
    assert!(e[0].help.as_deref().unwrap().contains("e.g. \"30s\""));
}

#[test]
fn a_dead_key_without_wait_names_the_key_that_selects_it() {
    let text = with("[mirror]\ndead_window = \"5s\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line_no(&text, "dead_window"));
    assert!(e[0].help.as_deref().unwrap().contains("on_dead = \"wait\""));
}

#[test]
fn an_unknown_policy_lists_the_choices() {
    let text = with("[mirror]\non_dead = \"wiat\"\n");
    let e = errors(&text);
    assert_eq!(e[0].line, line_no(&text, "on_dead"));
    assert_eq!(e[0].column, 11);
    assert!(e[0].help.as_deref().unwrap().contains("wait"), "{:?}", e[0]);
}

#[test]
fn a_mirror_map_refuses_multipath_keys_and_manager_overrides() {
    let text = MIRROR.replace(
        "kind = \"mirror\"\n",
        "kind = \"mirror\"\nselector = \"queue-length\"\n",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line_no(&text, "selector"));
    assert!(e[0].message.contains("mirror"));

    let text = with("[manager.map.m]\nno_path_retry = \"queue\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line_no(&text, "[manager.map.m]"));
    assert!(e[0].message.contains("a mirror map has no path manager"));
}

#[test]
fn overrides_must_name_a_mirror_map_and_a_mirror_needs_two_legs() {
    let text = with("[mirror.map.x]\non_dead = \"wait\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("there is no map \"x\""));
    assert!(e[0].help.as_deref().unwrap().contains("\"m\""));

    let text = MIRROR.replace("[[leg]]\nname = \"b\"\nmap = \"m\"\ndm_layer = true\n", "");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("has one leg"));
    assert_eq!(e[0].line, line_no(&text, "kind"));
}

#[test]
fn a_bad_region_size_is_refused() {
    let text = MIRROR.replace("\"256KiB\"", "\"300KiB\"");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line_no(&text, "region_size"));
    assert!(e[0].help.as_deref().unwrap().contains("power of two"));
}
