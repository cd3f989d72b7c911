//! Tests of the `[manager]` section: levels and origins, the multipath.conf
//! syntax and its positions, `conf_file`, groups and queueing made by the
//! manager, and the rules between keywords.

use super::*;

/// Two maps, "m" (leg "a") and "n" (leg "b"), 13 lines; tests append
/// from line 14, so a `[manager]` header is line 14 and its first key line 15.
const TWO: &str = r#"name = "t"
description = "two maps"
workload = { map = "m", duration = "10s" }
[[map]]
name = "m"
[[map]]
name = "n"
[[leg]]
name = "a"
map = "m"
[[leg]]
name = "b"
map = "n"
"#;

fn two(extra: &str) -> String {
    format!("{TWO}{extra}")
}

/// 1-based number of the first line of `text` containing `needle`.
#[track_caller]
fn line_no(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
        + 1
}

fn settings<'s>(s: &'s Scenario, map: &str) -> &'s ManagerSettings {
    s.manager
        .settings(map)
        .unwrap_or_else(|| panic!("no settings for {map}"))
}

fn scen(line: usize) -> Origin {
    Origin::Scenario { line }
}

fn conf_defaults(line: usize) -> Origin {
    Origin::ConfDefaults {
        file: "t.toml".into(),
        line,
    }
}

fn set<T>(value: T, origin: Origin) -> Setting<T> {
    Setting { value, origin }
}

// ---- defaults ----

#[test]
fn no_manager_table_means_the_embedded_manager_with_builtin_settings() {
    let s = ok(TWO);
    assert_eq!(s.manager.kind, ManagerKind::Embedded);
    assert_eq!(
        s.manager.maps,
        [
            ("m".to_string(), ManagerSettings::default()),
            ("n".to_string(), ManagerSettings::default())
        ]
    );
    // built-in: failover groups, no_path_retry fail -> no queueing
    assert_eq!(s.group_names(MapId::new(0)), [vec!["a"]]);
    assert!(!s.maps[0].queue_if_no_path);
    let d = ManagerSettings::default();
    assert_eq!(d.path_checker.value, PathChecker::Directio);
    assert_eq!(d.max_polling_interval.value, d.polling_interval.value * 4);
    // an empty [manager] is the same
    assert_eq!(ok(&two("[manager]\n")), s);
    assert_eq!(ok(&two("[manager]\nkind = \"embedded\"\n")), s);
}

#[test]
fn kind_none_keeps_maps_as_written() {
    let s = ok(&mini("[manager]\nkind = \"none\"\n"));
    assert_eq!(
        s.manager,
        ManagerSpec {
            kind: ManagerKind::None,
            multipathd: None,
            maps: vec![]
        }
    );
    assert_eq!(s.group_names(MapId::new(0)), [vec!["a", "b"]]);
    assert!(!s.maps[0].queue_if_no_path);
}

// ---- levels and origins ----

#[test]
fn each_level_overrides_the_one_below_with_its_origin() {
    let text = two(r#"[manager]
polling_interval = 2
no_path_retry = "queue"
marginal_pathgroups = "on"
conf = '''
defaults {
    failback 30
    path_grouping_policy multibus
}
overrides {
    no_path_retry 5
    path_checker "none"
}
multipaths {
    multipath {
        wwid pathrig-m
        no_path_retry fail
    }
}
'''
[manager.map.n]
failback = "immediate"
"#);
    let s = ok(&text);
    let l = |needle| line_no(&text, needle);
    let ovr = |line| Origin::ConfOverrides {
        file: "t.toml".into(),
        line,
    };
    let common = ManagerSettings {
        path_checker: set(PathChecker::None, ovr(l("path_checker \"none\""))),
        polling_interval: set(secs(2), scen(l("polling_interval = 2"))),
        max_polling_interval: set(
            secs(8),
            Origin::Derived {
                from: "polling_interval (4 ×)".into(),
            },
        ),
        path_grouping_policy: set(GroupingPolicy::Multibus, conf_defaults(l("multibus"))),
        marginal_pathgroups: set(MarginalPathgroups::On, scen(l("marginal_pathgroups"))),
        ..ManagerSettings::default()
    };
    let m = ManagerSettings {
        failback: set(
            Failback::Deferred(secs(30)),
            conf_defaults(l("failback 30")),
        ),
        no_path_retry: set(
            NoPathRetry::Fail,
            Origin::ConfMultipath {
                file: "t.toml".into(),
                line: l("no_path_retry fail"),
            },
        ),
        ..common.clone()
    };
    let n = ManagerSettings {
        failback: set(
            Failback::Immediate,
            Origin::ScenarioMap {
                line: l("failback = \"immediate\""),
            },
        ),
        no_path_retry: set(NoPathRetry::Retries(5), ovr(l("no_path_retry 5"))),
        ..common.clone()
    };
    assert_eq!(settings(&s, "m"), &m);
    assert_eq!(settings(&s, "n"), &n);
    assert_eq!(
        settings(&s, "m").checker_timeout,
        Setting::builtin(secs(30))
    );
    // queueing follows no_path_retry per map
    assert!(!s.map(s.map_id("m").unwrap()).queue_if_no_path);
    assert!(s.map(s.map_id("n").unwrap()).queue_if_no_path);
    // origins print for the report
    assert_eq!(m.failback.origin.to_string(), "t.toml:20 (defaults)");
    assert_eq!(n.failback.origin.to_string(), "[manager.map], line 35");
}

#[test]
fn entries_match_by_alias_or_wwid_and_merge_with_the_map_table() {
    let text = two(r#"[manager]
conf = '''
multipaths {
    multipath {
        alias n
        failback manual
    }
    multipath {
        wwid "pathrig-n"
        alias n
        no_path_retry queue
    }
}
'''
[manager.map.n]
path_grouping_policy = "multibus"
"#);
    let s = ok(&text);
    let n = settings(&s, "n");
    assert_eq!(n.failback.value, Failback::Manual);
    assert_eq!(n.no_path_retry.value, NoPathRetry::Queue);
    assert_eq!(n.path_grouping_policy.value, GroupingPolicy::Multibus);
    assert_eq!(settings(&s, "m"), &ManagerSettings::default());
    assert_eq!(crate::manager::wwid_of("n"), "pathrig-n");
}

#[test]
fn a_keyword_twice_at_one_level_names_both_places() {
    let d = errors(&two(
        "[manager]\npolling_interval = 2\nconf = \"\"\"\ndefaults {\n    polling_interval 3\n}\n\"\"\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (18, 5));
    assert_eq!(
        e.message,
        "`polling_interval` is set twice at the defaults level ([manager] and the conf's `defaults`): on line 15 ([manager]) and on line 18 (the conf's `defaults`)"
    );
    assert!(
        help(e).starts_with("set `polling_interval` once per level"),
        "{e}"
    );

    // twice in one section
    let d = errors(&two(
        "[manager]\nconf = '''\noverrides {\nfailback manual\nfailback 5\n}\n'''\n",
    ));
    let e = at(
        &d,
        18,
        1,
        "`failback` is set twice at the `overrides` level",
    );
    assert!(
        e.message.contains("on line 17 (the conf's `overrides`)"),
        "{e}"
    );

    // [manager.map.m] and the entry for m are one level
    let d = errors(&two(
        "[manager]\nconf = '''\nmultipaths {\nmultipath {\nalias m\nfailback manual\n}\n}\n'''\n[manager.map.m]\nfailback = 3\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (19, 1));
    assert_eq!(
        e.message,
        "`failback` is set twice at the level of map \"m\" ([manager.map.m] and its multipath entries): on line 24 ([manager.map]) and on line 19 (a conf `multipath` entry)"
    );
}

#[test]
fn keywords_only_where_multipath_conf_takes_them() {
    let d = errors(&two(
        "[manager.map.m]\npolling_interval = 2\npath_checker = \"none\"\n[manager]\nconf = '''\noverrides {\n  checker_timeout 5\n}\nmultipaths {\n  multipath {\n    alias n\n    checker none\n  }\n}\n'''\n",
    ));
    let e = at(
        &d,
        15,
        1,
        "`polling_interval` cannot be set in [manager.map.m]",
    );
    assert!(help(e).contains("only in `defaults`"), "{e}");
    let e = at(
        &d,
        16,
        1,
        "`path_checker` cannot be set per map, in [manager.map.m]",
    );
    assert!(
        help(e).contains("only in `defaults` and `overrides`"),
        "{e}"
    );
    at(&d, 20, 3, "`checker_timeout` cannot be set in `overrides`");
    at(
        &d,
        25,
        5,
        "`path_checker` cannot be set per map, in a `multipath` entry",
    );
    assert_eq!(d.len(), 4, "{}", dump(&d));
}

#[test]
fn max_polling_interval_is_derived_or_at_least_polling_interval() {
    let s = ok(&two("[manager]\npolling_interval = \"500ms\"\n"));
    let m = settings(&s, "m");
    assert_eq!(m.polling_interval.value, Duration::from_millis(500));
    assert_eq!(m.max_polling_interval.value, secs(2));
    assert!(matches!(
        m.max_polling_interval.origin,
        Origin::Derived { .. }
    ));

    let s = ok(&two(
        "[manager]\npolling_interval = 1\nmax_polling_interval = 1\n",
    ));
    assert_eq!(
        settings(&s, "n").max_polling_interval,
        set(secs(1), scen(16))
    );

    // against the built-in polling_interval (5s)
    let d = errors(&two("[manager]\nmax_polling_interval = 4\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 1));
    assert_eq!(
        e.message,
        "max_polling_interval 4s is shorter than polling_interval 5s"
    );
    assert_eq!(
        help(e),
        "make it at least 5s, or leave it out for 4 × polling_interval (20s)"
    );
}

#[test]
fn value_ranges_of_the_timing_keywords() {
    let d = errors(&two(
        "[manager]\npolling_interval = \"50ms\"\nchecker_timeout = \"500ms\"\nfailback = 0\nno_path_retry = -1\nmarginal_path_err_rate_threshold = 1001\npath_grouping_policy = \"group_by_serial\"\n",
    ));
    assert_eq!(
        help(at(&d, 15, 20, "`polling_interval` = 50ms is too short")),
        "use at least 100ms"
    );
    assert_eq!(
        help(at(&d, 16, 19, "`checker_timeout` = 500ms is too short")),
        "use at least 1s"
    );
    at(&d, 17, 12, "`failback` = 0 is not a delay");
    at(&d, 18, 17, "`no_path_retry` is out of range: -1");
    at(
        &d,
        19,
        36,
        "`marginal_path_err_rate_threshold` is out of range: 1001",
    );
    let e = at(
        &d,
        20,
        24,
        "unknown path_grouping_policy \"group_by_serial\"",
    );
    assert!(help(e).contains("failover, multibus, group_by_prio"), "{e}");
    assert_eq!(d.len(), 6, "{}", dump(&d));
    let d = errors(&two("[manager]\nfailback = true\n"));
    assert_eq!(
        only(&d).message,
        "`failback` must be \"immediate\", \"manual\", \"followover\" or a number of seconds to wait, found a boolean"
    );
}

#[test]
fn unknown_and_unimplemented_manager_keys() {
    let d = errors(&two("[manager]\nrr_weight = \"uniform\"\nfailbak = 3\n"));
    let e = at(
        &d,
        15,
        1,
        "keyword `rr_weight` is a multipath.conf keyword pathrig does not implement",
    );
    assert!(
        help(e).contains("valid keys in [manager] are: kind, conf, conf_file, map, path_checker"),
        "{e}"
    );
    let e = at(&d, 16, 1, "unknown key `failbak` in [manager]");
    assert!(help(e).starts_with("did you mean `failback`?"), "{e}");
    assert_eq!(d.len(), 2, "{}", dump(&d));

    let d = errors(&two("[manager.map.m]\nprio = 3\nalias = \"x\"\n"));
    let e = at(
        &d,
        15,
        1,
        "keyword `prio` is a multipath.conf keyword pathrig does not implement",
    );
    assert!(
        help(e).starts_with("pathrig gives each leg a fixed priority with `prio` in [[leg]]"),
        "{e}"
    );
    let e = at(&d, 16, 1, "unknown key `alias` in [manager.map.m]");
    assert!(
        help(e).starts_with("the table's name is the map's name"),
        "{e}"
    );

    // a manager key at the top level says where it belongs
    let d = errors(&format!("failback = \"manual\"\n{TWO}"));
    assert!(help(only(&d)).starts_with("`failback` belongs in a [manager] table"));
}

// ---- multipath.conf syntax, positions in the scenario file ----

#[test]
fn inline_conf_errors_land_on_scenario_lines() {
    let text = two(r#"[manager]
conf = """
defaults {
    rr_weight uniform
    polling_intervall 2
    failback soon
    no_path_retry "queue" extra
}
devices {
    device {
        vendor X
    }
}
defaultz {
}
multipaths {
    multipath {
        alias m
        prio const
    }
}
}
overrides {
"""
"#);
    let d = errors(&text);
    let e = at(
        &d,
        17,
        5,
        "keyword `rr_weight` is a multipath.conf keyword pathrig does not implement",
    );
    assert!(
        help(e).starts_with("pathrig takes in `defaults`: path_checker"),
        "{e}"
    );
    let e = at(
        &d,
        18,
        5,
        "unknown keyword `polling_intervall` in `defaults`",
    );
    assert!(
        help(e).starts_with("did you mean `polling_interval`?"),
        "{e}"
    );
    let e = at(&d, 19, 14, "unknown failback \"soon\"");
    assert!(help(e).contains("immediate, manual, followover"), "{e}");
    at(&d, 20, 27, "`no_path_retry` takes one value");
    let e = at(
        &d,
        22,
        1,
        "section `devices` is not supported by pathrig (its legs have no vendor/product)",
    );
    assert!(help(e).contains("remove this section"), "{e}");
    let e = at(&d, 27, 1, "unknown section `defaultz`");
    assert!(help(e).starts_with("did you mean `defaults`?"), "{e}");
    let e = at(
        &d,
        32,
        9,
        "keyword `prio` is a multipath.conf keyword pathrig does not implement",
    );
    assert!(help(e).contains("`prio` in [[leg]]"), "{e}");
    at(&d, 35, 1, "unmatched `}`");
    let e = at(&d, 36, 1, "section `overrides` is never closed");
    assert!(help(e).contains("braces are unbalanced"), "{e}");
    assert_eq!(d.len(), 9, "{}", dump(&d));
    assert!(d.iter().all(|e| e.file == Path::new("t.toml")));
}

#[test]
fn inline_conf_on_the_quote_line_counts_columns_from_the_quote() {
    let d = errors(&two("[manager]\nconf = \"polling_interval 2\"\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 9));
    assert_eq!(e.message, "`polling_interval` is outside any section");
    let d = errors(&two("[manager]\nconf = '''bogus {\n}'''\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 11));
    assert_eq!(e.message, "unknown section `bogus`");
}

#[test]
fn conf_syntax_mistakes() {
    let text = two(r#"[manager]
conf = '''
defaults
{
    failback
    no_path_retry "queue
    path_checker none }
multipaths {
    failback 3
    multipath {
    }
}
'''
"#);
    let d = errors(&text);
    let e = at(
        &d,
        16,
        1,
        "section `defaults` must open with `{` on the same line",
    );
    assert_eq!(help(e), "write `defaults {`");
    // the lone brace then opens it: the keywords below are read as defaults
    let e = at(&d, 18, 5, "`failback` has no value");
    assert_eq!(
        help(e),
        "write the keyword and its value on one line: `failback <value>`"
    );
    at(&d, 19, 19, "unterminated quoted string");
    at(&d, 20, 23, "`}` must be on a line of its own");
    at(&d, 22, 5, "`failback` directly inside `multipaths`");
    let e = at(
        &d,
        23,
        5,
        "this multipath entry has neither `wwid` nor `alias`",
    );
    assert!(
        help(e).contains("maps are: \"m\" (wwid pathrig-m), \"n\" (wwid pathrig-n)"),
        "{e}"
    );
    assert_eq!(d.len(), 6, "{}", dump(&d));
}

#[test]
fn comments_quotes_and_blank_lines_are_fine() {
    let s = ok(&two(r#"[manager]
conf = """
# a comment
! another

defaults {   # trailing comment
	failback "manual"   ! why not
	polling_interval "500ms"
}
"""
"#));
    assert_eq!(settings(&s, "m").failback.value, Failback::Manual);
    assert_eq!(
        settings(&s, "m").polling_interval,
        set(Duration::from_millis(500), conf_defaults(21))
    );
}

// ---- multipath entries and map tables ----

#[test]
fn entries_that_match_no_map() {
    let d = errors(&two(
        "[manager]\nconf = '''\nmultipaths {\n  multipath {\n    wwid 3600a0b80001\n  }\n  multipath {\n    alias m\n    wwid pathrig-n\n  }\n  multipath {\n    alias zz\n    wwid pathrig-m\n  }\n}\n'''\n[manager.map.q]\nfailback = 3\n",
    ));
    let e = at(
        &d,
        18,
        10,
        "the multipath entry with wwid \"3600a0b80001\" matches no map",
    );
    assert_eq!(
        help(e),
        "an entry is for the map whose name is its `alias`, or whose wwid (pathrig-<map name>) is its `wwid`; maps are: \"m\" (wwid pathrig-m), \"n\" (wwid pathrig-n)"
    );
    let e = at(
        &d,
        22,
        10,
        "wwid \"pathrig-n\" is not the wwid of map \"m\", which this entry's alias names",
    );
    assert_eq!(
        help(e),
        "map \"m\" has wwid pathrig-m; correct the wwid or leave it out"
    );
    at(
        &d,
        25,
        11,
        "alias \"zz\" is not the name of map \"m\", whose wwid this entry gives",
    );
    let e = at(
        &d,
        30,
        14,
        "[manager.map.q] is for map \"q\", which does not exist",
    );
    assert!(help(e).starts_with("maps are: \"m\""), "{e}");
    assert_eq!(d.len(), 4, "{}", dump(&d));
}

// ---- groups and queueing made by the manager ----

/// One map "m" with legs a, b, c, d of prio 10, 50, 10, 50, and `manager`.
fn four_legs(manager: &str) -> Scenario {
    ok(&format!(
        r#"name = "t"
[[map]]
name = "m"
[[leg]]
name = "a"
prio = 10
[[leg]]
name = "b"
prio = 50
[[leg]]
name = "c"
prio = 10
[[leg]]
name = "d"
prio = 50
[workload]
duration = "10s"
[manager]
{manager}
"#
    ))
}

fn groups(s: &Scenario) -> Vec<Vec<&str>> {
    s.group_names(MapId::new(0))
}

#[test]
fn groups_follow_the_grouping_policy_and_leg_prio() {
    let s = four_legs("path_grouping_policy = \"failover\"");
    assert_eq!(groups(&s), [vec!["b"], vec!["d"], vec!["a"], vec!["c"]]);
    assert_eq!(s.leg(s.leg_id("b").unwrap()).prio, 50);
    let s = four_legs("path_grouping_policy = \"multibus\"");
    assert_eq!(groups(&s), [vec!["a", "b", "c", "d"]]);
    let s = four_legs("path_grouping_policy = \"group_by_prio\"");
    assert_eq!(groups(&s), [vec!["b", "d"], vec!["a", "c"]]);
    // the built-in policy is failover
    let s = four_legs("");
    assert_eq!(groups(&s), [vec!["b"], vec!["d"], vec!["a"], vec!["c"]]);
    // per map, through the conf
    let s = four_legs("conf = '''\nmultipaths {\nmultipath {\nalias m\npath_grouping_policy group_by_prio\n}\n}\n'''");
    assert_eq!(groups(&s), [vec!["b", "d"], vec!["a", "c"]]);
    // equal prios: file order
    let s = ok(&mini(
        "[manager]\npath_grouping_policy = \"group_by_prio\"\n",
    ));
    assert_eq!(s.group_names(MapId::new(0)), [vec!["a", "b"]]);
    assert_eq!(
        GroupingPolicy::Failover.groups([("x", 0), ("y", 1000), ("z", 0)]),
        [vec!["y"], vec!["x"], vec!["z"]]
    );
}

#[test]
fn leg_prio_range() {
    let d = errors(&MINI.replace("name = \"a\"", "name = \"a\"\nprio = 1001"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (6, 8));
    assert_eq!(e.message, "`prio` is out of range: 1001");
    assert_eq!(help(e), "`prio` takes a whole number from 0 to 1000");
}

#[test]
fn queueing_follows_no_path_retry() {
    for (value, queues) in [
        ("\"fail\"", false),
        ("\"queue\"", true),
        ("3", true),
        ("0", false),
    ] {
        let s = ok(&mini(&format!("[manager]\nno_path_retry = {value}\n")));
        assert_eq!(s.maps[0].queue_if_no_path, queues, "{value}");
    }
}

#[test]
fn groups_and_queueing_by_hand_need_kind_none() {
    let d = errors(&MINI.replace(
        "name = \"m\"",
        "name = \"m\"\ngroups = [[\"a\"], [\"b\"]]\nqueue_if_no_path = true",
    ));
    let e = at(
        &d,
        4,
        1,
        "map \"m\" gives `groups`, but the path manager makes the groups",
    );
    assert_eq!(
        help(e),
        "with the path manager, groups come from path_grouping_policy; set [manager] kind = \"none\" to give groups by hand"
    );
    let e = at(
        &d,
        5,
        1,
        "map \"m\" gives `queue_if_no_path`, but the path manager decides queueing",
    );
    assert!(
        help(e).starts_with("with the path manager, queueing comes from no_path_retry"),
        "{e}"
    );
    assert_eq!(d.len(), 2, "{}", dump(&d));
}

// ---- san_path_err and marginal_path ----

const SAN: &str =
    "san_path_err_threshold = 2\nsan_path_err_forget_rate = 10\nsan_path_err_recovery_time = 5\n";

#[test]
fn san_path_err_all_three_with_the_most_specific_origin() {
    let s = ok(&two(&format!(
        "[manager]\n{SAN}[manager.map.n]\nsan_path_err_recovery_time = \"2s\"\n"
    )));
    let want = |recovery| SanPathErr {
        threshold: 2,
        forget_rate: 10,
        recovery_time: recovery,
    };
    assert_eq!(
        settings(&s, "m").san_path_err,
        set(Some(want(secs(5))), scen(15))
    );
    assert_eq!(
        settings(&s, "n").san_path_err,
        set(Some(want(secs(2))), Origin::ScenarioMap { line: 19 })
    );
    assert_eq!(settings(&s, "m").marginal_path, Setting::builtin(None));
}

#[test]
fn incomplete_groups_name_the_missing_keywords_once_for_all_maps() {
    let d = errors(&two("[manager]\nsan_path_err_threshold = 2\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 1));
    assert_eq!(
        e.message,
        "incomplete san_path_err_* settings for maps \"m\", \"n\": san_path_err_forget_rate and san_path_err_recovery_time are not set"
    );
    assert_eq!(
        help(e),
        "san_path_err_* works only with all of san_path_err_threshold, san_path_err_forget_rate, san_path_err_recovery_time set; set the missing ones, or remove the others to turn it off"
    );
    let d = errors(&two(
        "[manager.map.n]\nmarginal_path_err_sample_time = 20\nmarginal_path_err_rate_threshold = 10\nmarginal_path_err_recheck_gap_time = 30\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 1));
    assert_eq!(
        e.message,
        "incomplete marginal_path_* settings for map \"n\": marginal_path_double_failed_time is not set"
    );
}

#[test]
fn marginal_path_all_four_not_clamped() {
    let s = ok(&two(
        "[manager]\nconf = '''\ndefaults {\n  marginal_path_double_failed_time 10\n  marginal_path_err_sample_time 20\n  marginal_path_err_rate_threshold 10\n  marginal_path_err_recheck_gap_time 30\n}\n'''\n",
    ));
    assert_eq!(
        settings(&s, "m").marginal_path,
        set(
            Some(MarginalPath {
                double_failed_time: secs(10),
                // multipath-tools would raise this to 120s; pathrig does not
                err_sample_time: secs(20),
                err_rate_threshold: 10,
                err_recheck_gap_time: secs(30),
            }),
            conf_defaults(17)
        )
    );
}

#[test]
fn san_path_err_and_marginal_path_together_is_an_error() {
    let text = two(&format!(
        "[manager]\n{SAN}[manager.map.n]\nmarginal_path_double_failed_time = 10\nmarginal_path_err_sample_time = 20\nmarginal_path_err_rate_threshold = 10\nmarginal_path_err_recheck_gap_time = 30\n"
    ));
    let d = errors(&text);
    let e = only(&d);
    assert_eq!((e.line, e.column), (19, 1));
    assert_eq!(
        e.message,
        "both san_path_err_* and marginal_path_* are set for map \"n\": two mechanisms would fight over the same paths: marginal_path_* samples a failing path, san_path_err_* holds it back by counting; choose one"
    );
    assert_eq!(
        help(e),
        "san_path_err_* is set on line 15 ([manager]), marginal_path_* on line 19 ([manager.map]); remove one of the two groups"
    );
}

// ---- kind = "none" ----

#[test]
fn kind_none_with_manager_settings_is_an_error() {
    let d = errors(&two(
        "[manager]\nkind = \"none\"\nfailback = \"manual\"\nconf = \"defaults {\"\n[manager.map.m]\nfailback = 3\n",
    ));
    let e = at(
        &d,
        16,
        1,
        "`failback` is set, but [manager] kind = \"none\"",
    );
    assert!(
        e.message
            .ends_with("no path manager runs, so this setting would do nothing"),
        "{e}"
    );
    assert_eq!(
        help(e),
        "remove `failback`, or remove `kind = \"none\"` to use the embedded path manager"
    );
    // the conf is not even read
    at(&d, 17, 1, "`conf` is set, but [manager] kind = \"none\"");
    at(&d, 18, 10, "`map` is set, but [manager] kind = \"none\"");
    assert_eq!(d.len(), 3, "{}", dump(&d));

    let d = errors(
        &mini("[manager]\nkind = \"none\"\n").replace("name = \"b\"", "name = \"b\"\nprio = 5"),
    );
    let e = only(&d);
    assert_eq!((e.line, e.column), (8, 1));
    assert!(
        e.message
            .ends_with("no path manager runs, so this setting would do nothing"),
        "{e}"
    );
    let d = errors(&mini("[manager]\nkind = \"multipath\"\n"));
    assert!(
        help(only(&d)).contains("valid values are: embedded, none, multipathd"),
        "{}",
        dump(&d)
    );
}

// ---- conf_file ----

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "faults-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mp")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CONF_FILE: &str = "# pathrig test\ndefaults {\n\tpolling_interval 1\n\tfailback manual\n}\nmultipaths {\n\tmultipath {\n\t\twwid pathrig-m\n\t\tfailback immediate\n\t}\n}\n";

#[test]
fn conf_file_is_read_by_load_relative_to_the_scenario() {
    let dir = TempDir::new("conf-file");
    let scenario = dir.0.join("s.toml");
    let conf = dir.0.join("mp").join("multipath.conf");
    let text = two("[manager]\nconf_file = \"mp/multipath.conf\"\n");
    std::fs::write(&scenario, &text).unwrap();
    std::fs::write(&conf, CONF_FILE).unwrap();

    let s = load(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let file = conf.display().to_string();
    let m = settings(&s, "m");
    assert_eq!(
        m.polling_interval,
        set(
            secs(1),
            Origin::ConfDefaults {
                file: file.clone(),
                line: 3
            }
        )
    );
    assert_eq!(
        m.failback,
        set(
            Failback::Immediate,
            Origin::ConfMultipath {
                file: file.clone(),
                line: 9
            }
        )
    );
    assert_eq!(settings(&s, "n").failback.value, Failback::Manual);

    // errors in the conf file are reported in it
    std::fs::write(&conf, "defaults {\n\tcheckr_timeout 5\n").unwrap();
    let d = load(&scenario).unwrap_err().0;
    assert_eq!(d.len(), 2, "{}", dump(&d));
    assert!(d.iter().all(|e| e.file == conf), "{}", dump(&d));
    let e = at(&d, 1, 1, "section `defaults` is never closed");
    assert_eq!(e.file, conf);
    let e = at(&d, 2, 2, "unknown keyword `checkr_timeout` in `defaults`");
    assert!(
        help(e).starts_with("did you mean `checker_timeout`?"),
        "{e}"
    );
    assert!(
        Diagnostics(d.clone()).to_string().starts_with(&format!(
            "{}:1:1: error: section `defaults` is never closed",
            conf.display()
        )),
        "{}",
        dump(&d)
    );

    // a missing file is reported at the value
    std::fs::remove_file(&conf).unwrap();
    let d = load(&scenario).unwrap_err().0;
    let e = only(&d);
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (scenario.as_path(), 15, 13)
    );
    assert!(e.message.starts_with("cannot read conf_file "), "{e}");
    assert!(e.message.contains("multipath.conf"), "{e}");
}

#[test]
fn parse_reads_no_conf_file_but_parse_with_does() {
    let text = two("[manager]\nconf_file = \"multipath.conf\"\n");
    let d = errors(&text);
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 13));
    assert_eq!(
        e.message,
        "`conf_file` needs a file read, and faults::parse reads no files"
    );
    let asked = std::cell::RefCell::new(Vec::new());
    let read = |p: &Path| {
        asked.borrow_mut().push(p.to_path_buf());
        Ok(CONF_FILE.to_string())
    };
    let s = parse_with(Path::new("dir/t.toml"), &text, &read).unwrap();
    assert_eq!(asked.into_inner(), [Path::new("dir/multipath.conf")]);
    assert_eq!(
        settings(&s, "m").failback.origin,
        Origin::ConfMultipath {
            file: "dir/multipath.conf".into(),
            line: 9
        }
    );
    // conf and conf_file together
    let d = errors(&two("[manager]\nconf = \"\"\nconf_file = \"x.conf\"\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (16, 1));
    assert_eq!(e.message, "[manager] has both `conf` and `conf_file`");
}

#[test]
fn manager_serializes_with_origins() {
    let s = ok(&two("[manager]\nfailback = \"manual\"\nconf = \"\"\"\ndefaults {\n  no_path_retry 3\n}\n\"\"\"\n"));
    let v = serde_json::to_value(&s.manager).unwrap();
    assert_eq!(v["kind"], "embedded");
    assert_eq!(v["maps"][0][0], "m");
    let m = &v["maps"][0][1];
    assert_eq!(
        m["failback"],
        serde_json::json!({"value": "manual", "origin": {"kind": "scenario", "line": 15}})
    );
    assert_eq!(
        m["no_path_retry"],
        serde_json::json!({"value": {"retries": 3}, "origin": {"kind": "conf_defaults", "file": "t.toml", "line": 18}})
    );
    assert_eq!(
        m["path_checker"]["origin"],
        serde_json::json!({"kind": "builtin"})
    );
}

#[test]
fn the_format_documentation_parses() {
    let lib = include_str!("../lib.rs");
    let start = lib.find("//! ```toml\n").expect("a toml example") + "//! ```toml\n".len();
    let end = start + lib[start..].find("//! ```\n").expect("its end");
    let text: String = lib[start..end]
        .lines()
        .map(|l| {
            l.strip_prefix("//!")
                .unwrap_or(l)
                .strip_prefix(' ')
                .unwrap_or("")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let s = ok(&text);
    let m = settings(&s, "mpatha");
    assert_eq!(m.no_path_retry.value, NoPathRetry::Queue);
    assert!(matches!(
        m.no_path_retry.origin,
        Origin::ConfMultipath { .. }
    ));
    assert_eq!(m.failback.value, Failback::Manual);
    assert_eq!(s.group_names(MapId::new(0)), [vec!["a", "b"]]);
    assert!(s.maps[0].queue_if_no_path);
}

// ---- marginal-path extensions (pathrig's own keywords) ----

const MARGINAL: &str = "marginal_path_double_failed_time = 10\nmarginal_path_err_sample_time = 20\nmarginal_path_err_rate_threshold = 10\nmarginal_path_err_recheck_gap_time = 30\n";

#[test]
fn marginal_extensions_default_and_derive_from_the_threshold() {
    let s = ok(&two(&format!("[manager]\n{MARGINAL}")));
    let m = &settings(&s, "m").marginal_sampling;
    assert_eq!(m.sample_burst, Setting::builtin(32));
    assert_eq!(m.sample_gap, Setting::builtin(Duration::from_millis(100)));
    assert_eq!(m.io_timeout, Setting::builtin(secs(1)));
    assert_eq!(m.detector, Setting::builtin(MarginalDetector::Window));
    assert_eq!(m.sprt_alpha, Setting::builtin(Ppm(10_000)));
    assert_eq!(m.sprt_beta, Setting::builtin(Ppm(10_000)));
    // threshold 10‰: acceptable 2.5‰, marginal 20‰
    assert_eq!(
        m.sprt_good_permille,
        set(
            Some(Ppm(2_500)),
            Origin::Derived {
                from: "marginal_path_err_rate_threshold (÷ 4)".into()
            }
        )
    );
    assert_eq!(m.sprt_bad_permille.value, Some(Ppm::permille(20)));
    assert!(matches!(m.sprt_bad_permille.origin, Origin::Derived { .. }));
    // without marginal_path_* nothing is derived
    let s = ok(TWO);
    assert_eq!(
        settings(&s, "m").marginal_sampling,
        MarginalSampling::default()
    );
    assert_eq!(
        settings(&s, "m").marginal_sampling.sprt_good_permille,
        Setting::builtin(None)
    );
    // a high threshold: the marginal rate halfway to 1000‰, not twice the threshold
    assert_eq!(MarginalSampling::derived_bad(600), Ppm::permille(800));
    assert_eq!(MarginalSampling::derived_bad(100), Ppm::permille(200));
    assert_eq!(MarginalSampling::derived_good(1), Ppm(250));
    assert_eq!(MarginalSampling::derived_bad(0), Ppm(1));
}

#[test]
fn marginal_extensions_in_toml_and_conf_with_their_origins() {
    let text = two(&format!(
        r#"[manager]
{MARGINAL}marginal_sample_burst = 8
marginal_sample_gap = "250ms"
marginal_detector = "sequential"
marginal_sprt_alpha = 0.05
marginal_sprt_good_permille = 2.5
conf = '''
defaults {{
    marginal_io_timeout 500ms
    marginal_sprt_beta 0.001
}}
multipaths {{
    multipath {{
        alias n
        marginal_sprt_bad_permille 30
        marginal_detector window
    }}
}}
'''
"#
    ));
    let s = ok(&text);
    let l = |needle| line_no(&text, needle);
    let m = &settings(&s, "m").marginal_sampling;
    assert_eq!(m.sample_burst, set(8, scen(l("burst = 8"))));
    assert_eq!(
        m.sample_gap,
        set(Duration::from_millis(250), scen(l("250ms")))
    );
    assert_eq!(
        m.io_timeout,
        set(Duration::from_millis(500), conf_defaults(l("500ms")))
    );
    assert_eq!(
        m.detector,
        set(MarginalDetector::Sequential, scen(l("\"sequential\"")))
    );
    assert_eq!(m.sprt_alpha, set(Ppm(50_000), scen(l("alpha"))));
    assert_eq!(m.sprt_beta, set(Ppm(1_000), conf_defaults(l("beta"))));
    assert_eq!(
        m.sprt_good_permille,
        set(Some(Ppm(2_500)), scen(l("good_permille")))
    );
    assert_eq!(m.sprt_bad_permille.value, Some(Ppm::permille(20)));
    let n = &settings(&s, "n").marginal_sampling;
    let entry = |line| Origin::ConfMultipath {
        file: "t.toml".into(),
        line,
    };
    assert_eq!(
        n.sprt_bad_permille,
        set(Some(Ppm::permille(30)), entry(l("bad_permille 30")))
    );
    assert_eq!(
        n.detector,
        set(MarginalDetector::Window, entry(l("detector window")))
    );
    assert_eq!(Ppm(2_500).permille_text(), "2.5");
    assert_eq!(Ppm(1_000).fraction_text(), "0.001");
}

#[test]
fn marginal_extension_value_ranges() {
    let d = errors(&two(
        "[manager]\nmarginal_sample_burst = 0\nmarginal_sample_gap = \"0s\"\nmarginal_io_timeout = \"5ms\"\nmarginal_detector = \"sequentail\"\nmarginal_sprt_good_permille = 1000\nmarginal_sprt_bad_permille = 0\nmarginal_sprt_alpha = 0.5\nmarginal_sprt_beta = \"1e-2\"\nmarginal_sprt_good_permille_x = 1\n",
    ));
    assert_eq!(
        help(at(&d, 15, 25, "`marginal_sample_burst` is out of range: 0")),
        "`marginal_sample_burst` takes a whole number from 1 to 4096"
    );
    assert_eq!(
        help(at(&d, 16, 23, "`marginal_sample_gap` = 0s is too short")),
        "use at least 1ms"
    );
    at(&d, 17, 23, "`marginal_io_timeout` = 5ms is too short");
    let e = at(&d, 18, 21, "unknown marginal_detector \"sequentail\"");
    assert!(help(e).starts_with("did you mean \"sequential\"?"), "{e}");
    assert_eq!(
        help(at(
            &d,
            19,
            31,
            "`marginal_sprt_good_permille` is out of range: 1000 permille"
        )),
        "`marginal_sprt_good_permille` takes a number of permille from 0 to below 1000, like 2.5"
    );
    at(
        &d,
        20,
        30,
        "`marginal_sprt_bad_permille` is out of range: 0 permille",
    );
    let e = at(&d, 21, 23, "`marginal_sprt_alpha` is out of range: 0.5");
    assert!(help(e).contains("0.5 or more is a coin toss"), "{e}");
    at(
        &d,
        22,
        22,
        "`marginal_sprt_beta`: invalid number \"1e-2\": write digits with at most one decimal point",
    );
    at(&d, 23, 1, "unknown key `marginal_sprt_good_permille_x`");
    assert_eq!(d.len(), 9, "{}", dump(&d));

    let d = errors(&two(
        "[manager]\nmarginal_sample_burst = 4097\nmarginal_sprt_good_permille = \"2.5555\"\nmarginal_sprt_alpha = true\nmarginal_sample_burst_ = 3\n",
    ));
    at(&d, 15, 25, "`marginal_sample_burst` is out of range: 4097");
    at(&d, 16, 31, "at most 3 decimals");
    at(
        &d,
        17,
        23,
        "`marginal_sprt_alpha` must be a probability above 0 and below 0.5, like 0.01, found a boolean",
    );
    let e = at(&d, 18, 1, "unknown key `marginal_sample_burst_`");
    assert!(
        help(e).starts_with("did you mean `marginal_sample_burst`?"),
        "{e}"
    );
    // a float where a whole number is wanted
    let d = errors(&two("[manager]\nmarginal_sample_burst = 2.5\n"));
    assert_eq!(
        only(&d).message,
        "`marginal_sample_burst` must be a whole number from 1 to 4096, found a float"
    );
}

#[test]
fn marginal_io_timeout_must_be_shorter_than_the_sample() {
    let text = two(
        "[manager]\nmarginal_path_double_failed_time = 10\nmarginal_path_err_sample_time = \"800ms\"\nmarginal_path_err_rate_threshold = 10\nmarginal_path_err_recheck_gap_time = 30\n",
    );
    // against the built-in 1s: points at the sample time
    let d = errors(&text);
    let e = only(&d);
    assert_eq!((e.line, e.column), (16, 1));
    assert_eq!(
        e.message,
        "marginal_io_timeout 1s is not shorter than marginal_path_err_sample_time 800ms for maps \"m\", \"n\": a sample read could time out only after the sample is over"
    );
    // set per map: points at it, for that map only
    let d = errors(&format!(
        "{text}[manager.map.n]\nmarginal_io_timeout = \"900ms\"\n[manager.map.m]\nmarginal_io_timeout = \"500ms\"\n"
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (20, 1));
    assert!(
        e.message.contains("900ms") && e.message.contains("map \"n\""),
        "{e}"
    );
}

#[test]
fn sequential_rates_must_lie_on_either_side_of_the_threshold() {
    let base = format!("[manager]\n{MARGINAL}marginal_detector = \"sequential\"\n");
    // good above the threshold (10‰)
    let d = errors(&two(&format!("{base}marginal_sprt_good_permille = 15\n")));
    let e = only(&d);
    assert_eq!((e.line, e.column), (20, 1));
    assert_eq!(
        e.message,
        "the sequential detector's acceptable rate 15‰ (marginal_sprt_good_permille) is above marginal_path_err_rate_threshold 10‰ for maps \"m\", \"n\": it would accept paths the window rule calls marginal"
    );
    assert!(help(e).contains("on either side of it"), "{e}");
    // good not below the (derived) bad rate
    let d = errors(&two(&format!("{base}marginal_sprt_good_permille = 25\n")));
    assert_eq!(
        only(&d).message,
        "the sequential detector's acceptable rate 25‰ (marginal_sprt_good_permille) is not below its marginal rate 20‰ (marginal_sprt_bad_permille, derived from the threshold) for maps \"m\", \"n\""
    );
    // bad at the threshold
    let d = errors(&two(&format!("{base}marginal_sprt_bad_permille = 10\n")));
    let e = only(&d);
    assert_eq!((e.line, e.column), (20, 1));
    assert!(
        e.message.starts_with("the sequential detector's marginal rate 10‰ (marginal_sprt_bad_permille) is not above marginal_path_err_rate_threshold 10‰"),
        "{e}"
    );
    // the window detector does not care
    ok(&two(&format!(
        "[manager]\n{MARGINAL}marginal_sprt_bad_permille = 10\n"
    )));
    // derived rates and a threshold of 1000‰: no rate is marginal; points at the detector
    let d = errors(&two(
        "[manager]\nmarginal_path_double_failed_time = 10\nmarginal_path_err_sample_time = 20\nmarginal_path_err_rate_threshold = 1000\nmarginal_path_err_recheck_gap_time = 30\nmarginal_detector = \"sequential\"\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (19, 1));
    assert!(e.message.contains("marginal rate 1000‰"), "{e}");
}

#[test]
fn kind_multipathd_keeps_the_settings_and_reads_its_own_keys() {
    let s = ok(&two(
        "[manager]\nkind = \"multipathd\"\nfailback = \"immediate\"\n\
         [manager.passthrough]\ndetect_checker = \"no\"\nfast_io_fail_tmo = 5\nretain_attached_hw_handler = true\n",
    ));
    assert_eq!(s.manager.kind, ManagerKind::Multipathd);
    assert!(s.manager.kind.builds_maps());
    assert_eq!(settings(&s, "m").failback.value, Failback::Immediate);
    let spec = s.manager.multipathd.as_ref().unwrap();
    assert_eq!(spec.binary, None);
    assert_eq!(
        spec.passthrough,
        [
            ("detect_checker".to_string(), "no".to_string()),
            ("fast_io_fail_tmo".to_string(), "5".to_string()),
            ("retain_attached_hw_handler".to_string(), "yes".to_string()),
        ]
    );
}

#[test]
fn a_users_own_multipathd_must_be_an_executable_file() {
    let dir = std::env::temp_dir().join(format!("pathrig-test-mpd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("multipathd");
    std::fs::write(&exe, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = |p: &Path| {
        two(&format!(
            "[manager]\nkind = \"multipathd\"\nmultipathd = {:?}\n",
            p.display().to_string()
        ))
    };
    let s = ok(&text(&exe));
    assert_eq!(
        s.manager.multipathd.unwrap().binary.as_deref(),
        Some(exe.as_path())
    );

    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = errors(&text(&exe));
    let e = only(&d);
    assert_eq!((e.line, e.column), (16, 14));
    assert!(e.message.contains("not executable"), "{e}");

    let d = errors(&text(&dir.join("missing")));
    assert!(only(&d).message.contains("no such file"), "{}", dump(&d));
    let d = errors(&text(&dir));
    assert!(only(&d).message.contains("not a file"), "{}", dump(&d));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn multipathd_keys_need_kind_multipathd() {
    let d = errors(&two("[manager]\nmultipathd = \"/bin/true\"\n"));
    let e = only(&d);
    assert_eq!((e.line, e.column), (15, 1));
    assert_eq!(
        e.message,
        "`multipathd` is for [manager] kind = \"multipathd\" only"
    );
    let d = errors(&two(
        "[manager]\n[manager.passthrough]\ndetect_checker = \"no\"\n",
    ));
    assert!(
        only(&d).message.contains("`passthrough` is for"),
        "{}",
        dump(&d)
    );
}

#[test]
fn a_passthrough_may_not_set_what_pathrig_writes() {
    // A keyword pathrig reads goes in [manager] with its effective value.
    let d = errors(&two(
        "[manager]\nkind = \"multipathd\"\n[manager.passthrough]\nno_path_retry = 3\n",
    ));
    let e = only(&d);
    assert_eq!((e.line, e.column), (17, 1));
    assert!(e.message.contains("is a keyword pathrig reads"), "{e}");
    // The multipaths entries are pathrig's.
    let d = errors(&two(
        "[manager]\nkind = \"multipathd\"\n[manager.passthrough]\nalias = \"x\"\n",
    ));
    assert!(
        only(&d).message.contains("pathrig writes `alias`"),
        "{}",
        dump(&d)
    );
    // One line in defaults: no braces, newlines or quotes.
    let d = errors(&two(
        "[manager]\nkind = \"multipathd\"\n[manager.passthrough]\nfoo = \"a } b\"\n",
    ));
    assert!(
        only(&d).message.contains("passthrough `foo`"),
        "{}",
        dump(&d)
    );
    let d = errors(&two(
        "[manager]\nkind = \"multipathd\"\n[manager.passthrough]\n\"Bad-Key\" = \"x\"\n",
    ));
    assert!(
        only(&d).message.contains("not a multipath.conf keyword"),
        "{}",
        dump(&d)
    );
}
