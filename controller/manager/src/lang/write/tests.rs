//! The writer's round trip: `read_conf(write_conf(settings))` gives the same effective values.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::settings::{MarginalPath, Origin, Ppm, SanPathErr, Setting};

/// The settings with every origin made built-in: what a round trip must keep.
fn values(s: &ManagerSettings) -> ManagerSettings {
    fn v<T: Clone>(s: &Setting<T>) -> Setting<T> {
        Setting {
            value: s.value.clone(),
            origin: Origin::Builtin,
        }
    }
    let m = &s.marginal_sampling;
    ManagerSettings {
        path_checker: v(&s.path_checker),
        polling_interval: v(&s.polling_interval),
        max_polling_interval: v(&s.max_polling_interval),
        checker_timeout: v(&s.checker_timeout),
        path_grouping_policy: v(&s.path_grouping_policy),
        failback: v(&s.failback),
        no_path_retry: v(&s.no_path_retry),
        san_path_err: v(&s.san_path_err),
        marginal_path: v(&s.marginal_path),
        marginal_pathgroups: v(&s.marginal_pathgroups),
        marginal_sampling: MarginalSampling {
            sample_burst: v(&m.sample_burst),
            sample_gap: v(&m.sample_gap),
            io_timeout: v(&m.io_timeout),
            detector: v(&m.detector),
            sprt_good_permille: v(&m.sprt_good_permille),
            sprt_bad_permille: v(&m.sprt_bad_permille),
            sprt_alpha: v(&m.sprt_alpha),
            sprt_beta: v(&m.sprt_beta),
        },
    }
}

fn sample() -> Vec<(String, ManagerSettings)> {
    let base = ManagerSettings {
        path_checker: Setting::builtin(PathChecker::Directio),
        polling_interval: Setting::builtin(Duration::from_millis(500)),
        max_polling_interval: Setting::builtin(Duration::from_secs(2)),
        checker_timeout: Setting::builtin(Duration::from_secs(3)),
        marginal_pathgroups: Setting::builtin(MarginalPathgroups::On),
        ..ManagerSettings::default()
    };
    let a = ManagerSettings {
        path_grouping_policy: Setting::builtin(GroupingPolicy::Multibus),
        failback: Setting::builtin(Failback::Deferred(Duration::from_millis(1500))),
        no_path_retry: Setting::builtin(NoPathRetry::Retries(3)),
        san_path_err: Setting::builtin(Some(SanPathErr {
            threshold: 2,
            forget_rate: 10,
            recovery_time: Duration::from_secs(5),
        })),
        ..base.clone()
    };
    let mut c = ManagerSettings {
        path_grouping_policy: Setting::builtin(GroupingPolicy::GroupByPrio),
        failback: Setting::builtin(Failback::Followover),
        no_path_retry: Setting::builtin(NoPathRetry::Queue),
        marginal_path: Setting::builtin(Some(MarginalPath {
            double_failed_time: Duration::from_secs(10),
            err_sample_time: Duration::from_secs(4),
            err_rate_threshold: 50,
            err_recheck_gap_time: Duration::from_secs(30),
        })),
        ..base.clone()
    };
    c.marginal_sampling.sample_burst = Setting::builtin(8);
    c.marginal_sampling.sample_gap = Setting::builtin(Duration::from_millis(20));
    c.marginal_sampling.detector = Setting::builtin(MarginalDetector::Sequential);
    c.marginal_sampling.sprt_good_permille = Setting::builtin(Some(Ppm(2_500)));
    c.marginal_sampling.sprt_alpha = Setting::builtin(Ppm(5_000));
    // Effective settings have the sequential rates derived while marginal_path_* is on.
    c.marginal_sampling.sprt_bad_permille =
        Setting::builtin(Some(MarginalSampling::derived_bad(50)));
    let d = ManagerSettings {
        failback: Setting::builtin(Failback::Immediate),
        ..base.clone()
    };
    vec![
        ("mpatha".into(), a),
        ("mpathb".into(), c),
        ("mpathc".into(), d),
    ]
}

fn read(text: &str, maps: &[(String, ManagerSettings)]) -> Vec<ManagerSettings> {
    let names: Vec<&str> = maps.iter().map(|(n, _)| n.as_str()).collect();
    let spec = read_conf(Path::new("multipath.conf"), text, &names)
        .unwrap_or_else(|e| panic!("written conf does not read:\n{e:?}\n{text}"));
    spec.maps.iter().map(|(_, s)| values(s)).collect()
}

#[test]
fn pathrig_dialect_round_trips() {
    let maps = sample();
    let written = write_conf(&maps, Dialect::Pathrig);
    assert!(written.omitted.is_empty() && written.rounded.is_empty());
    let back = read(&written.text, &maps);
    let want: Vec<_> = maps.iter().map(|(_, s)| values(s)).collect();
    assert_eq!(back, want, "{}", written.text);
}

#[test]
fn the_tur_checker_round_trips_in_both_dialects() {
    let tur = ManagerSettings {
        path_checker: Setting::builtin(PathChecker::Tur),
        ..ManagerSettings::default()
    };
    let maps = vec![("m".to_string(), tur.clone())];
    for dialect in [Dialect::Pathrig, Dialect::Multipathd] {
        let written = write_conf(&maps, dialect);
        assert!(
            written.text.contains("\tpath_checker tur\n"),
            "{}",
            written.text
        );
        assert_eq!(read(&written.text, &maps), [values(&tur)]);
    }
}

#[test]
fn builtin_settings_round_trip_in_both_dialects() {
    let maps = vec![("m".to_string(), ManagerSettings::default())];
    for dialect in [Dialect::Pathrig, Dialect::Multipathd] {
        let written = write_conf(&maps, dialect);
        assert!(written.omitted.is_empty() && written.rounded.is_empty());
        assert_eq!(
            read(&written.text, &maps),
            [values(&ManagerSettings::default())]
        );
    }
}

#[test]
fn multipathd_dialect_leaves_out_extensions_and_says_so() {
    let maps = sample();
    let written = write_conf(&maps, Dialect::Multipathd);
    for kw in EXTENSIONS {
        assert!(!written.text.contains(kw), "{kw} in\n{}", written.text);
    }
    assert_eq!(
        written.omitted,
        [
            "mpathb: marginal_sample_burst",
            "mpathb: marginal_sample_gap",
            "mpathb: marginal_detector",
            "mpathb: marginal_sprt_good_permille",
            "mpathb: marginal_sprt_alpha",
        ]
    );
    assert_eq!(
        written.rounded,
        ["defaults: polling_interval", "mpatha: failback"]
    );
    assert!(!written.text.contains("ms"), "{}", written.text);
    // What it does say reads back: the extensions built-in, the durations rounded up.
    let back = read(&written.text, &maps);
    let mut want: Vec<_> = maps.iter().map(|(_, s)| values(s)).collect();
    for s in &mut want {
        s.marginal_sampling = MarginalSampling::default();
        s.polling_interval.value = Duration::from_secs(1);
    }
    want[0].failback.value = Failback::Deferred(Duration::from_secs(2));
    want[1].marginal_sampling.sprt_good_permille.value = Some(MarginalSampling::derived_good(50));
    want[1].marginal_sampling.sprt_bad_permille.value = Some(MarginalSampling::derived_bad(50));
    assert_eq!(back, want, "{}", written.text);
}

#[test]
fn the_text_is_multipath_conf() {
    let maps = vec![("mpatha".to_string(), ManagerSettings::default())];
    let written = write_conf(&maps, Dialect::Multipathd);
    assert_eq!(
        written.text,
        "# multipath.conf written by pathrig (multipathd dialect)
defaults {
\tpath_checker directio
\tpolling_interval 5
\tmax_polling_interval 20
\tchecker_timeout 30
\tmarginal_pathgroups off
}
multipaths {
\tmultipath {
\t\twwid pathrig-mpatha
\t\talias mpatha
\t\tpath_grouping_policy failover
\t\tfailback manual
\t\tno_path_retry fail
\t}
}
"
    );
}

#[test]
fn the_real_multipathd_gets_real_wwids_a_blacklist_and_the_passthrough() {
    let maps = vec![
        ("a".to_string(), ManagerSettings::default()),
        ("b".to_string(), ManagerSettings::default()),
    ];
    let ids = [
        MapIds {
            wwid: "333333330000007d0".into(),
            alias: "pathrig-a".into(),
            path_selector: Some("queue-length 0".into()),
        },
        MapIds {
            wwid: "36001405.x".into(),
            alias: "pathrig-b".into(),
            path_selector: None,
        },
    ];
    let passthrough = [
        ("detect_checker".to_string(), "no".to_string()),
        ("path_selector".to_string(), "round-robin 0".to_string()),
    ];
    let written = write_multipathd_conf(&maps, &ids, &passthrough);
    let text = &written.text;
    for want in [
        "\tuser_friendly_names no\n",
        "\tfind_multipaths no\n",
        "\tdetect_checker no\n",
        // A value with a space is quoted.
        "\tpath_selector \"round-robin 0\"\n",
        "blacklist {\n\twwid \".*\"\n}\n",
        // Each map's WWID, anchored and with regex characters escaped.
        "blacklist_exceptions {\n\twwid \"^333333330000007d0$\"\n\twwid \"^36001405\\.x$\"\n}\n",
        "\t\twwid 333333330000007d0\n\t\talias pathrig-a\n\t\tpath_selector \"queue-length 0\"\n",
        "\t\twwid 36001405.x\n\t\talias pathrig-b\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // The passthrough comes after pathrig's keywords, inside defaults.
    let defaults_end = text.find("}\n").unwrap();
    assert!(text.find("detect_checker").unwrap() < defaults_end);
    assert!(text.find("marginal_pathgroups").unwrap() < text.find("detect_checker").unwrap());
}

#[test]
fn a_passthrough_of_find_multipaths_replaces_pathrigs_value() {
    let maps = vec![("a".to_string(), ManagerSettings::default())];
    let ids = [MapIds {
        wwid: "w".into(),
        alias: "pathrig-a".into(),
        path_selector: None,
    }];
    let written = write_multipathd_conf(
        &maps,
        &ids,
        &[("find_multipaths".to_string(), "greedy".to_string())],
    );
    assert!(written.text.contains("\tfind_multipaths greedy\n"));
    assert!(!written.text.contains("find_multipaths no"));
    assert!(written.text.contains("\tuser_friendly_names no\n"));
}
