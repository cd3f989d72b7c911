//! The writer: effective per-map settings back to multipath.conf text, and the reader that
//! takes such text (alone, without a scenario) to effective settings again.
//!
//! [`write_conf`] puts the global keywords (`polling_interval`, `max_polling_interval`,
//! `checker_timeout`, `marginal_pathgroups`, and `path_checker`, which multipath.conf does not
//! take per map) in `defaults`, taken from the first map, and every other keyword of every map,
//! written out even where it is the built-in value, in a `multipaths { multipath { wwid ...
//! alias ... } }` entry. [`Dialect::Multipathd`] writes what multipathd reads: no pathrig
//! extensions (`marginal_sample_*`, `marginal_io_timeout`, `marginal_detector`,
//! `marginal_sprt_*`; [`Written::omitted`] lists those whose value is not what pathrig uses
//! when they are not set) and durations in whole seconds (rounded up, listed in
//! [`Written::rounded`]). [`Dialect::Pathrig`] writes everything pathrig reads, so that
//! [`read_conf`] of the text gives the same effective values.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use pathrig_diag::units::format_duration;
use pathrig_diag::{Diagnostics, Report};

use super::decode::{DraftManager, MapSets, Target};
use super::multipath_conf;
use super::resolve::resolve_manager;
use crate::settings::{
    wwid_of, Failback, GroupingPolicy, ManagerSettings, ManagerSpec, MarginalDetector,
    MarginalPathgroups, MarginalSampling, NoPathRetry, PathChecker,
};

/// Which multipath.conf the writer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// What multipathd reads: pathrig's extensions left out, durations in whole seconds.
    Multipathd,
    /// What pathrig reads: every keyword, durations as they are.
    Pathrig,
}

/// multipath.conf text, and what the dialect could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub text: String,
    /// `map: keyword` for each pathrig extension left out although set to a value other than
    /// the built-in one ([`Dialect::Multipathd`] only).
    pub omitted: Vec<String>,
    /// `map: keyword` (or `defaults: keyword`) for each duration rounded up to whole seconds
    /// ([`Dialect::Multipathd`] only).
    pub rounded: Vec<String>,
}

/// The pathrig extensions multipathd does not know.
pub const EXTENSIONS: &[&str] = &[
    "marginal_sample_burst",
    "marginal_sample_gap",
    "marginal_io_timeout",
    "marginal_detector",
    "marginal_sprt_good_permille",
    "marginal_sprt_bad_permille",
    "marginal_sprt_alpha",
    "marginal_sprt_beta",
];

struct Out {
    dialect: Dialect,
    text: String,
    omitted: Vec<String>,
    rounded: Vec<String>,
}

impl Out {
    fn line(&mut self, indent: usize, keyword: &str, value: &str) {
        let _ = writeln!(self.text, "{}{keyword} {value}", "\t".repeat(indent));
    }

    fn duration(&mut self, place: &str, keyword: &str, d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            return d.as_secs().to_string();
        }
        match self.dialect {
            Dialect::Pathrig => format_duration(d),
            Dialect::Multipathd => {
                self.rounded.push(format!("{place}: {keyword}"));
                (d.as_secs() + 1).to_string()
            }
        }
    }

    fn dur_line(&mut self, indent: usize, place: &str, keyword: &str, d: Duration) {
        let v = self.duration(place, keyword, d);
        self.line(indent, keyword, &v);
    }
}

/// Renders the effective settings of these maps (name, settings) as multipath.conf text.
pub fn write_conf(maps: &[(String, ManagerSettings)], dialect: Dialect) -> Written {
    let ids: Vec<MapIds> = maps
        .iter()
        .map(|(name, _)| MapIds {
            wwid: wwid_of(name),
            alias: name.clone(),
            path_selector: None,
        })
        .collect();
    write(maps, &ids, dialect, None)
}

/// What multipathd knows a map by: the WWID of its paths and the alias it gives the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapIds {
    pub wwid: String,
    pub alias: String,
    /// The map's `path_selector` (`"round-robin 0"`); `None`: multipathd's default.
    pub path_selector: Option<String>,
}

/// The conf for the real multipathd (`kind = "multipathd"`): [`Dialect::Multipathd`], each map
/// an entry with its paths' real WWID and its dm name as alias (`ids`, in map order), every
/// other device blacklisted (multipathd touches pathrig's paths only), `user_friendly_names
/// no` and `find_multipaths no` (each entry is a map to build, even before its second path
/// shows), and `passthrough` verbatim in `defaults` after pathrig's own keywords (it may set
/// `find_multipaths` or `user_friendly_names` itself).
pub fn write_multipathd_conf(
    maps: &[(String, ManagerSettings)],
    ids: &[MapIds],
    passthrough: &[(String, String)],
) -> Written {
    write(maps, ids, Dialect::Multipathd, Some(passthrough))
}

fn conf_value(v: &str) -> String {
    if v.contains(char::is_whitespace) {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn write(
    maps: &[(String, ManagerSettings)],
    ids: &[MapIds],
    dialect: Dialect,
    passthrough: Option<&[(String, String)]>,
) -> Written {
    let mut out = Out {
        dialect,
        text: format!(
            "# multipath.conf written by pathrig ({} dialect)\n",
            match dialect {
                Dialect::Multipathd => "multipathd",
                Dialect::Pathrig => "pathrig",
            }
        ),
        omitted: Vec::new(),
        rounded: Vec::new(),
    };
    out.text.push_str("defaults {\n");
    if let Some((_, s)) = maps.first() {
        let checker = match s.path_checker.value {
            PathChecker::Directio => "directio",
            PathChecker::Tur => "tur",
            PathChecker::None => "none",
        };
        out.line(1, "path_checker", checker);
        out.dur_line(1, "defaults", "polling_interval", s.polling_interval.value);
        out.dur_line(
            1,
            "defaults",
            "max_polling_interval",
            s.max_polling_interval.value,
        );
        out.dur_line(1, "defaults", "checker_timeout", s.checker_timeout.value);
        let groups = match s.marginal_pathgroups.value {
            MarginalPathgroups::Off => "off",
            MarginalPathgroups::On => "on",
        };
        out.line(1, "marginal_pathgroups", groups);
    }
    if let Some(passthrough) = passthrough {
        for (keyword, builtin) in [("user_friendly_names", "no"), ("find_multipaths", "no")] {
            if !passthrough.iter().any(|(k, _)| k == keyword) {
                out.line(1, keyword, builtin);
            }
        }
        if !passthrough.is_empty() {
            out.text.push_str("\t# [manager.passthrough], verbatim\n");
        }
        for (keyword, value) in passthrough {
            out.line(1, keyword, &conf_value(value));
        }
    }
    out.text.push_str("}\n");
    if passthrough.is_some() {
        out.text.push_str("blacklist {\n\twwid \".*\"\n}\n");
        out.text.push_str("blacklist_exceptions {\n");
        for id in ids {
            out.line(1, "wwid", &format!("\"^{}$\"", regex_escape(&id.wwid)));
        }
        out.text.push_str("}\n");
    }
    out.text.push_str("multipaths {\n");
    for ((name, s), id) in maps.iter().zip(ids) {
        out.text.push_str("\tmultipath {\n");
        out.line(2, "wwid", &id.wwid);
        out.line(2, "alias", &id.alias);
        if let Some(selector) = &id.path_selector {
            out.line(2, "path_selector", &conf_value(selector));
        }
        map_keywords(&mut out, name, s);
        out.text.push_str("\t}\n");
    }
    out.text.push_str("}\n");
    Written {
        text: out.text,
        omitted: out.omitted,
        rounded: out.rounded,
    }
}

/// A WWID as a literal in multipathd's (POSIX extended) regular expressions.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn map_keywords(out: &mut Out, name: &str, s: &ManagerSettings) {
    let policy = match s.path_grouping_policy.value {
        GroupingPolicy::Failover => "failover",
        GroupingPolicy::Multibus => "multibus",
        GroupingPolicy::GroupByPrio => "group_by_prio",
    };
    out.line(2, "path_grouping_policy", policy);
    let failback = match s.failback.value {
        Failback::Immediate => "immediate".to_string(),
        Failback::Manual => "manual".to_string(),
        Failback::Followover => "followover".to_string(),
        Failback::Deferred(d) => out.duration(name, "failback", d),
    };
    out.line(2, "failback", &failback);
    let retry = match s.no_path_retry.value {
        NoPathRetry::Fail => "fail".to_string(),
        NoPathRetry::Queue => "queue".to_string(),
        NoPathRetry::Retries(n) => n.to_string(),
    };
    out.line(2, "no_path_retry", &retry);
    if let Some(san) = s.san_path_err.value {
        out.line(2, "san_path_err_threshold", &san.threshold.to_string());
        out.line(2, "san_path_err_forget_rate", &san.forget_rate.to_string());
        out.dur_line(2, name, "san_path_err_recovery_time", san.recovery_time);
    }
    if let Some(mp) = s.marginal_path.value {
        out.dur_line(
            2,
            name,
            "marginal_path_double_failed_time",
            mp.double_failed_time,
        );
        out.dur_line(2, name, "marginal_path_err_sample_time", mp.err_sample_time);
        out.line(
            2,
            "marginal_path_err_rate_threshold",
            &mp.err_rate_threshold.to_string(),
        );
        out.dur_line(
            2,
            name,
            "marginal_path_err_recheck_gap_time",
            mp.err_recheck_gap_time,
        );
    }
    let threshold = s.marginal_path.value.map(|mp| mp.err_rate_threshold);
    extensions(out, name, &s.marginal_sampling, threshold);
}

/// pathrig's marginal-path extensions: written in the pathrig dialect, left out (and listed
/// when not built-in) in the multipathd one.
fn extensions(out: &mut Out, name: &str, m: &MarginalSampling, threshold: Option<u32>) {
    if out.dialect == Dialect::Multipathd {
        // What pathrig reads when none is set: built-in, the sequential rates derived from the
        // threshold while `marginal_path_*` is on.
        let mut builtin = MarginalSampling::default();
        if let Some(t) = threshold {
            builtin.sprt_good_permille.value = Some(MarginalSampling::derived_good(t));
            builtin.sprt_bad_permille.value = Some(MarginalSampling::derived_bad(t));
        }
        let differs = [
            m.sample_burst.value != builtin.sample_burst.value,
            m.sample_gap.value != builtin.sample_gap.value,
            m.io_timeout.value != builtin.io_timeout.value,
            m.detector.value != builtin.detector.value,
            m.sprt_good_permille.value != builtin.sprt_good_permille.value,
            m.sprt_bad_permille.value != builtin.sprt_bad_permille.value,
            m.sprt_alpha.value != builtin.sprt_alpha.value,
            m.sprt_beta.value != builtin.sprt_beta.value,
        ];
        for (kw, differs) in EXTENSIONS.iter().zip(differs) {
            if differs {
                out.omitted.push(format!("{name}: {kw}"));
            }
        }
        return;
    }
    out.line(
        2,
        "marginal_sample_burst",
        &m.sample_burst.value.to_string(),
    );
    out.dur_line(2, name, "marginal_sample_gap", m.sample_gap.value);
    out.dur_line(2, name, "marginal_io_timeout", m.io_timeout.value);
    let detector = match m.detector.value {
        MarginalDetector::Window => "window",
        MarginalDetector::Sequential => "sequential",
    };
    out.line(2, "marginal_detector", detector);
    if let Some(good) = m.sprt_good_permille.value {
        out.line(2, "marginal_sprt_good_permille", &good.permille_text());
    }
    if let Some(bad) = m.sprt_bad_permille.value {
        out.line(2, "marginal_sprt_bad_permille", &bad.permille_text());
    }
    out.line(
        2,
        "marginal_sprt_alpha",
        &m.sprt_alpha.value.fraction_text(),
    );
    out.line(2, "marginal_sprt_beta", &m.sprt_beta.value.fraction_text());
}

/// Reads multipath.conf `text` (named `file` in diagnostics) for these maps, as the embedded
/// manager would with nothing set in the scenario: the effective settings of every map.
pub fn read_conf(file: &Path, text: &str, maps: &[&str]) -> Result<ManagerSpec, Diagnostics> {
    let mut r = Report::new(file, text);
    let conf = multipath_conf::parse(&mut r, text, 0);
    let draft = DraftManager {
        defaults: conf.defaults,
        overrides: conf.overrides,
        maps: conf
            .entries
            .into_iter()
            .map(|e| MapSets {
                pos: e.pos,
                target: Target::Entry {
                    wwid: e.wwid,
                    alias: e.alias,
                },
                sets: e.sets,
            })
            .collect(),
        ..DraftManager::default()
    };
    let spec = resolve_manager(&mut r, &draft, maps);
    if r.has_errors() {
        Err(r.finish())
    } else {
        Ok(spec)
    }
}

#[cfg(test)]
mod tests;
