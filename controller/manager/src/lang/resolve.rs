//! Second pass over the path-manager settings: which map each
//! `[manager.map.<name>]` table and `multipath` entry is for, one value per
//! keyword and level, and then per map the effective [`ManagerSettings`]
//! with their origins: map level > `overrides` > `defaults` / `[manager]` >
//! built-in. Also owns the rules between keywords (`max_polling_interval` >=
//! `polling_interval`; `san_path_err_*` and `marginal_path_*` all or
//! nothing, and not both; the marginal-path extensions: a sample read's
//! timeout shorter than the sample, and the sequential detector's rates on
//! either side of the threshold), and derives the sequential detector's
//! rates from `marginal_path_err_rate_threshold` where they are not set.

use std::collections::HashMap;
use std::time::Duration;

use super::decode::{DraftManager, Target};
use super::keywords::SetAt;
use super::keywords::{Kw, Val, MARGINAL_PATH, SAN_PATH_ERR};
use crate::settings::{
    wwid_of, ManagerKind, ManagerSettings, ManagerSpec, MarginalDetector, MarginalPath,
    MarginalSampling, Origin, Ppm, SanPathErr, Setting,
};
use pathrig_diag::reader::Sp;
use pathrig_diag::units::format_duration;
use pathrig_diag::Report;

const DERIVED_MAX_POLLING: &str = "polling_interval (4 ×)";
const DERIVED_SPRT_GOOD: &str = "marginal_path_err_rate_threshold (÷ 4)";
const DERIVED_SPRT_BAD: &str = "marginal_path_err_rate_threshold (× 2, at most halfway to 1000)";

/// Resolves the settings of every map in `maps` (names, in file order).
pub fn resolve_manager(r: &mut Report, m: &DraftManager, maps: &[&str]) -> ManagerSpec {
    if m.kind == ManagerKind::None {
        return ManagerSpec {
            kind: ManagerKind::None,
            multipathd: None,
            maps: Vec::new(),
        };
    }
    once_per_level(
        r,
        "the defaults level ([manager] and the conf's `defaults`)",
        m.defaults.iter(),
    );
    once_per_level(r, "the `overrides` level", m.overrides.iter());
    let mut own: Vec<Vec<&SetAt>> = vec![Vec::new(); maps.len()];
    for sets in &m.maps {
        if let Some(i) = target_map(r, &sets.target, sets.pos, maps) {
            own[i].extend(&sets.sets);
        }
    }
    for (name, sets) in maps.iter().zip(&own) {
        let level =
            format!("the level of map \"{name}\" ([manager.map.{name}] and its multipath entries)");
        once_per_level(r, &level, sets.iter().copied());
    }
    check_polling(r, &m.defaults);

    let mut findings = Findings::default();
    let settings = maps
        .iter()
        .zip(&own)
        .map(|(name, own)| {
            let pick = |kw: Kw| {
                own.iter()
                    .copied()
                    .find(|s| s.kw == kw)
                    .or_else(|| m.overrides.iter().find(|s| s.kw == kw))
                    .or_else(|| m.defaults.iter().find(|s| s.kw == kw))
            };
            (name.to_string(), settings_of(r, name, pick, &mut findings))
        })
        .collect();
    findings.report(r);
    ManagerSpec {
        kind: m.kind,
        multipathd: m.multipathd.clone(),
        maps: settings,
    }
}

/// Where a setting was written, for messages.
fn place(origin: &Origin) -> &'static str {
    match origin {
        Origin::Scenario { .. } => "[manager]",
        Origin::ScenarioMap { .. } => "[manager.map]",
        Origin::ConfDefaults { .. } => "the conf's `defaults`",
        Origin::ConfOverrides { .. } => "the conf's `overrides`",
        Origin::ConfMultipath { .. } => "a conf `multipath` entry",
        Origin::Builtin | Origin::Derived { .. } => "built in",
    }
}

/// How specific a level is: a more specific setting wins.
fn rank(origin: &Origin) -> u8 {
    match origin {
        Origin::ScenarioMap { .. } | Origin::ConfMultipath { .. } => 3,
        Origin::ConfOverrides { .. } => 2,
        Origin::Scenario { .. } | Origin::ConfDefaults { .. } => 1,
        Origin::Builtin | Origin::Derived { .. } => 0,
    }
}

/// Reports every keyword set a second time at one level.
fn once_per_level<'a>(r: &mut Report, level: &str, sets: impl Iterator<Item = &'a SetAt>) {
    let mut first: HashMap<Kw, &SetAt> = HashMap::new();
    for s in sets {
        match first.get(&s.kw) {
            Some(f) => r.error(
                s.pos,
                format!(
                    "`{}` is set twice at {level}: on {} ({}) and on {} ({})",
                    s.kw,
                    r.describe(f.pos),
                    place(&f.origin),
                    r.describe(s.pos),
                    place(&s.origin)
                ),
                format!(
                    "set `{}` once per level: [manager] stands at the level of the conf's `defaults`, [manager.map.<name>] at the level of that map's multipath entry; remove one of the two",
                    s.kw
                ),
            ),
            None => {
                first.insert(s.kw, s);
            }
        }
    }
}

fn quoted_maps(maps: &[&str]) -> String {
    maps.iter()
        .map(|m| format!("\"{m}\" (wwid {})", wwid_of(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the map a per-map table or `multipath` entry is for.
fn target_map(r: &mut Report, target: &Target, pos: usize, maps: &[&str]) -> Option<usize> {
    let index_of = |name: &str| maps.iter().position(|m| *m == name);
    let listing = || format!("maps are: {}", quoted_maps(maps));
    match target {
        Target::Map(name) => {
            let i = index_of(&name.val);
            if i.is_none() {
                r.error(
                    name.pos,
                    format!(
                        "[manager.map.{}] is for map \"{}\", which does not exist",
                        name.val, name.val
                    ),
                    listing(),
                );
            }
            i
        }
        Target::Entry { wwid, alias } => {
            let by_alias = alias.as_ref().map(|a| (a, index_of(&a.val)));
            let by_wwid = wwid
                .as_ref()
                .map(|w| (w, maps.iter().position(|m| wwid_of(m) == w.val)));
            match (by_alias, by_wwid) {
                (None, None) => {
                    r.error(
                        pos,
                        "this multipath entry has neither `wwid` nor `alias`",
                        format!(
                            "name the map it is for with `alias <map name>` or `wwid pathrig-<map name>`; {}",
                            listing()
                        ),
                    );
                    None
                }
                (Some((_, Some(i))), None) | (None, Some((_, Some(i)))) => Some(i),
                (Some((_, Some(i))), Some((_, Some(j)))) if i == j => Some(i),
                (Some((_, Some(i))), Some((w, _))) => {
                    r.error(
                        w.pos,
                        format!(
                            "wwid \"{}\" is not the wwid of map \"{}\", which this entry's alias names",
                            w.val, maps[i]
                        ),
                        format!(
                            "map \"{}\" has wwid {}; correct the wwid or leave it out",
                            maps[i],
                            wwid_of(maps[i])
                        ),
                    );
                    None
                }
                (Some((a, None)), Some((_, Some(j)))) => {
                    r.error(
                        a.pos,
                        format!(
                            "alias \"{}\" is not the name of map \"{}\", whose wwid this entry gives",
                            a.val, maps[j]
                        ),
                        format!(
                            "in pathrig a map's alias is its [[map]] name: write `alias {}` or leave it out",
                            maps[j]
                        ),
                    );
                    None
                }
                (a, w) => {
                    let (what, first): (String, &Sp<String>) = match (a, w) {
                        (Some((a, _)), _) => (format!("alias \"{}\"", a.val), a),
                        (None, Some((w, _))) => (format!("wwid \"{}\"", w.val), w),
                        (None, None) => unreachable!("handled above"),
                    };
                    r.error(
                        first.pos,
                        format!("the multipath entry with {what} matches no map"),
                        format!(
                            "an entry is for the map whose name is its `alias`, or whose wwid (pathrig-<map name>) is its `wwid`; {}",
                            listing()
                        ),
                    );
                    None
                }
            }
        }
    }
}

fn duration(s: &SetAt) -> Option<Duration> {
    match s.val {
        Val::Duration(d) => Some(d),
        _ => None,
    }
}

fn count(s: &SetAt) -> Option<u32> {
    match s.val {
        Val::Count(n) => Some(n),
        _ => None,
    }
}

/// `max_polling_interval` >= `polling_interval` (both only at the defaults level).
fn check_polling(r: &mut Report, defaults: &[SetAt]) {
    let get = |kw| defaults.iter().find(|s| s.kw == kw);
    let Some(max) = get(Kw::MaxPollingInterval) else {
        return;
    };
    let builtin = ManagerSettings::default().polling_interval.value;
    let poll = get(Kw::PollingInterval)
        .and_then(duration)
        .unwrap_or(builtin);
    let Some(max_val) = duration(max) else { return };
    if max_val < poll {
        r.error(
            max.pos,
            format!(
                "max_polling_interval {} is shorter than polling_interval {}",
                format_duration(max_val),
                format_duration(poll)
            ),
            format!(
                "make it at least {}, or leave it out for 4 × polling_interval ({})",
                format_duration(poll),
                format_duration(poll * 4)
            ),
        );
    }
}

/// Errors that may hold for several maps at once (settings at a shared
/// level): reported once, naming every map they concern.
#[derive(Default)]
struct Findings {
    /// (position, message with `{maps}` in it, help, maps)
    items: Vec<(usize, String, String, Vec<String>)>,
}

impl Findings {
    fn add(&mut self, pos: usize, message: String, help: String, map: &str) {
        match self
            .items
            .iter_mut()
            .find(|(p, m, h, _)| *p == pos && *m == message && *h == help)
        {
            Some((.., maps)) => maps.push(map.to_string()),
            None => self.items.push((pos, message, help, vec![map.to_string()])),
        }
    }

    fn report(self, r: &mut Report) {
        for (pos, message, help, maps) in self.items {
            let quoted: Vec<String> = maps.iter().map(|m| format!("\"{m}\"")).collect();
            let maps = if quoted.len() == 1 {
                format!("map {}", quoted[0])
            } else {
                format!("maps {}", quoted.join(", "))
            };
            r.error(pos, message.replace("{maps}", &maps), help);
        }
    }
}

fn setting<T>(slot: &mut Setting<T>, set: Option<&SetAt>, read: impl Fn(&Val) -> Option<T>) {
    if let Some(s) = set {
        if let Some(value) = read(&s.val) {
            *slot = Setting {
                value,
                origin: s.origin.clone(),
            };
        }
    }
}

/// A group of keywords that only work together: the ones set, or `None`
/// if some are missing (reported).
fn all_or_none<'a, const N: usize>(
    group: &str,
    kws: [Kw; N],
    pick: &impl Fn(Kw) -> Option<&'a SetAt>,
    map: &str,
    findings: &mut Findings,
) -> Option<[&'a SetAt; N]> {
    let got = kws.map(pick);
    let missing: Vec<&str> = kws
        .iter()
        .zip(&got)
        .filter(|(_, s)| s.is_none())
        .map(|(k, _)| k.name())
        .collect();
    let first = got.iter().flatten().next()?;
    if !missing.is_empty() {
        let all: Vec<&str> = kws.iter().map(|k| k.name()).collect();
        findings.add(
            first.pos,
            format!(
                "incomplete {group} settings for {{maps}}: {} not set",
                and_list(&missing, "is", "are")
            ),
            format!(
                "{group} works only with all of {} set; set the missing ones, or remove the others to turn it off",
                all.join(", ")
            ),
            map,
        );
        return None;
    }
    Some(got.map(|s| s.expect("checked above")))
}

fn and_list(items: &[&str], one: &str, many: &str) -> String {
    match items {
        [only] => format!("{only} {one}"),
        [init @ .., last] => format!("{} and {last} {many}", init.join(", ")),
        [] => String::new(),
    }
}

/// The most specific origin of a group of settings.
fn group_origin(sets: &[&SetAt]) -> Origin {
    sets.iter()
        .copied()
        .reduce(|best, s| {
            if rank(&s.origin) > rank(&best.origin) {
                s
            } else {
                best
            }
        })
        .map_or(Origin::Builtin, |s| s.origin.clone())
}

/// The effective settings of map `name`.
fn settings_of<'a>(
    r: &Report,
    name: &str,
    pick: impl Fn(Kw) -> Option<&'a SetAt>,
    findings: &mut Findings,
) -> ManagerSettings {
    let mut s = ManagerSettings::default();
    setting(&mut s.path_checker, pick(Kw::PathChecker), |v| match v {
        Val::Checker(c) => Some(*c),
        _ => None,
    });
    let dur = |v: &Val| match v {
        Val::Duration(d) => Some(*d),
        _ => None,
    };
    setting(&mut s.polling_interval, pick(Kw::PollingInterval), dur);
    s.max_polling_interval = Setting {
        value: s.polling_interval.value * 4,
        origin: Origin::Derived {
            from: DERIVED_MAX_POLLING.into(),
        },
    };
    setting(
        &mut s.max_polling_interval,
        pick(Kw::MaxPollingInterval),
        dur,
    );
    setting(&mut s.checker_timeout, pick(Kw::CheckerTimeout), dur);
    setting(
        &mut s.path_grouping_policy,
        pick(Kw::PathGroupingPolicy),
        |v| match v {
            Val::Policy(p) => Some(*p),
            _ => None,
        },
    );
    setting(&mut s.failback, pick(Kw::Failback), |v| match v {
        Val::Failback(f) => Some(*f),
        _ => None,
    });
    setting(&mut s.no_path_retry, pick(Kw::NoPathRetry), |v| match v {
        Val::NoPathRetry(n) => Some(*n),
        _ => None,
    });
    setting(
        &mut s.marginal_pathgroups,
        pick(Kw::MarginalPathgroups),
        |v| match v {
            Val::Pathgroups(g) => Some(*g),
            _ => None,
        },
    );

    let san = all_or_none("san_path_err_*", SAN_PATH_ERR, &pick, name, findings);
    if let Some([threshold, forget_rate, recovery_time]) = san {
        if let (Some(t), Some(f), Some(rt)) = (
            count(threshold),
            count(forget_rate),
            duration(recovery_time),
        ) {
            s.san_path_err = Setting {
                value: Some(SanPathErr {
                    threshold: t,
                    forget_rate: f,
                    recovery_time: rt,
                }),
                origin: group_origin(&[threshold, forget_rate, recovery_time]),
            };
        }
    }
    let marginal = all_or_none("marginal_path_*", MARGINAL_PATH, &pick, name, findings);
    if let Some([double, sample, rate, gap]) = marginal {
        if let (Some(d), Some(s2), Some(rt), Some(g)) = (
            duration(double),
            duration(sample),
            count(rate),
            duration(gap),
        ) {
            s.marginal_path = Setting {
                value: Some(MarginalPath {
                    double_failed_time: d,
                    err_sample_time: s2,
                    err_rate_threshold: rt,
                    err_recheck_gap_time: g,
                }),
                origin: group_origin(&[double, sample, rate, gap]),
            };
        }
    }

    marginal_sampling(&mut s, &pick, name, findings);

    // Both mechanisms, even half-configured: say so now rather than after
    // the missing keywords are added.
    let first_of = |kws: &[Kw]| kws.iter().find_map(|&k| pick(k));
    if let (Some(san), Some(marginal)) = (first_of(&SAN_PATH_ERR), first_of(&MARGINAL_PATH)) {
        findings.add(
            marginal.pos,
            "both san_path_err_* and marginal_path_* are set for {maps}: two mechanisms would fight over the same paths: marginal_path_* samples a failing path, san_path_err_* holds it back by counting; choose one".into(),
            format!(
                "san_path_err_* is set on {} ({}), marginal_path_* on {} ({}); remove one of the two groups",
                r.describe(san.pos),
                place(&san.origin),
                r.describe(marginal.pos),
                place(&marginal.origin)
            ),
            name,
        );
    }
    s
}

/// pathrig's marginal-path extensions: read, derive the sequential detector's rates from the
/// threshold, and check them against the `marginal_path_*` values.
fn marginal_sampling<'a>(
    s: &mut ManagerSettings,
    pick: &impl Fn(Kw) -> Option<&'a SetAt>,
    name: &str,
    findings: &mut Findings,
) {
    let m = &mut s.marginal_sampling;
    let dur = |v: &Val| match v {
        Val::Duration(d) => Some(*d),
        _ => None,
    };
    let ppm = |v: &Val| match v {
        Val::Ppm(p) => Some(*p),
        _ => None,
    };
    setting(
        &mut m.sample_burst,
        pick(Kw::MarginalSampleBurst),
        |v| match v {
            Val::Count(n) => Some(*n),
            _ => None,
        },
    );
    setting(&mut m.sample_gap, pick(Kw::MarginalSampleGap), dur);
    setting(&mut m.io_timeout, pick(Kw::MarginalIoTimeout), dur);
    setting(&mut m.detector, pick(Kw::MarginalDetector), |v| match v {
        Val::Detector(d) => Some(*d),
        _ => None,
    });
    setting(
        &mut m.sprt_good_permille,
        pick(Kw::MarginalSprtGoodPermille),
        |v| ppm(v).map(Some),
    );
    setting(
        &mut m.sprt_bad_permille,
        pick(Kw::MarginalSprtBadPermille),
        |v| ppm(v).map(Some),
    );
    setting(&mut m.sprt_alpha, pick(Kw::MarginalSprtAlpha), ppm);
    setting(&mut m.sprt_beta, pick(Kw::MarginalSprtBeta), ppm);

    let Some(mp) = s.marginal_path.value else {
        return;
    };
    let threshold = mp.err_rate_threshold;
    if m.sprt_good_permille.value.is_none() {
        m.sprt_good_permille = Setting {
            value: Some(MarginalSampling::derived_good(threshold)),
            origin: Origin::Derived {
                from: DERIVED_SPRT_GOOD.into(),
            },
        };
    }
    if m.sprt_bad_permille.value.is_none() {
        m.sprt_bad_permille = Setting {
            value: Some(MarginalSampling::derived_bad(threshold)),
            origin: Origin::Derived {
                from: DERIVED_SPRT_BAD.into(),
            },
        };
    }

    // Where to point at: the keyword if it is set, else the first of the fallbacks that is.
    let pos_of = |kws: &[Kw]| kws.iter().find_map(|&k| pick(k)).map(|set| set.pos);
    let sample_kws = [
        Kw::MarginalPathErrSampleTime,
        Kw::MarginalPathDoubleFailedTime,
    ];

    let (timeout, sample) = (m.io_timeout.value, mp.err_sample_time);
    if timeout >= sample {
        let mut kws = vec![Kw::MarginalIoTimeout];
        kws.extend(sample_kws);
        if let Some(pos) = pos_of(&kws) {
            findings.add(
                pos,
                format!(
                    "marginal_io_timeout {} is not shorter than marginal_path_err_sample_time {} for {{maps}}: a sample read could time out only after the sample is over",
                    format_duration(timeout),
                    format_duration(sample)
                ),
                "make marginal_io_timeout (built-in 1s) shorter than the sample time, or sample for longer".to_string(),
                name,
            );
        }
    }

    if m.detector.value != MarginalDetector::Sequential {
        return;
    }
    let (good, bad) = m.sprt_rates(threshold);
    let origin_text = |o: &Origin| match o {
        Origin::Derived { .. } => ", derived from the threshold",
        Origin::Builtin => ", built-in",
        _ => "",
    };
    let good_text = format!(
        "acceptable rate {}‰ (marginal_sprt_good_permille{})",
        good.permille_text(),
        origin_text(&m.sprt_good_permille.origin)
    );
    let bad_text = format!(
        "marginal rate {}‰ (marginal_sprt_bad_permille{})",
        bad.permille_text(),
        origin_text(&m.sprt_bad_permille.origin)
    );
    let fallback = [Kw::MarginalDetector, Kw::MarginalPathErrRateThreshold];
    let at = |first: Kw| {
        let mut kws = vec![first];
        kws.extend(fallback);
        pos_of(&kws)
    };
    let help = "the sequential test decides between an acceptable error rate below marginal_path_err_rate_threshold and a marginal one above it; set marginal_sprt_good_permille and marginal_sprt_bad_permille on either side of it, or leave them out to derive them from the threshold (a quarter of it, and twice it)";
    let threshold_ppm = Ppm::permille(threshold);
    if good >= bad {
        let kws = [
            Kw::MarginalSprtGoodPermille,
            Kw::MarginalSprtBadPermille,
            Kw::MarginalDetector,
            Kw::MarginalPathErrRateThreshold,
        ];
        if let Some(pos) = pos_of(&kws) {
            findings.add(
                pos,
                format!(
                    "the sequential detector's {good_text} is not below its {bad_text} for {{maps}}"
                ),
                help.to_string(),
                name,
            );
        }
    } else if good > threshold_ppm {
        if let Some(pos) = at(Kw::MarginalSprtGoodPermille) {
            findings.add(
                pos,
                format!(
                    "the sequential detector's {good_text} is above marginal_path_err_rate_threshold {threshold}‰ for {{maps}}: it would accept paths the window rule calls marginal"
                ),
                help.to_string(),
                name,
            );
        }
    } else if bad <= threshold_ppm {
        if let Some(pos) = at(Kw::MarginalSprtBadPermille) {
            findings.add(
                pos,
                format!(
                    "the sequential detector's {bad_text} is not above marginal_path_err_rate_threshold {threshold}‰ for {{maps}}: it would call paths marginal that the window rule accepts"
                ),
                help.to_string(),
                name,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_english() {
        assert_eq!(and_list(&["a"], "is", "are"), "a is");
        assert_eq!(and_list(&["a", "b"], "is", "are"), "a and b are");
        assert_eq!(and_list(&["a", "b", "c"], "is", "are"), "a, b and c are");
    }
}
