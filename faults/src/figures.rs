//! The QA figures `[expect]` can state besides the flat metrics: keyed by a leg or a map
//! (`detection_ms.a = "< 2000"`, `group_switches.mpatha = 2`), or for the whole run
//! (`group_switches = 2`, `no_path_ms = "== 0"`, `first_error_ms = "> 4000"`), with values
//! that may be fractions (`io_share.b = "> 0.9"`), and for `io_share` over a window of the run
//! (`io_share.b."3s..5s" = "> 0.9"`). Owns their names, which of them take a
//! key, the decoding of their comparisons, and the check that keys name existing legs or maps.
//! The values are computed by the controller's report (see its `figures` module).

use std::fmt;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use toml::de::DeValue;

use crate::diag::Report;
use crate::model::Cmp;
use crate::reader::{describe, Sp, Table, Value};
use crate::{LegId, MapId, Scenario};

/// A QA figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Per leg: the first fault step on the leg to the kernel failing its path, ms.
    DetectionMs,
    /// The kernel's path-group changes, in the run or (keyed) in one map.
    GroupSwitches,
    /// Time with no usable path, in the run or (keyed) in one map, ms.
    NoPathMs,
    /// The first application error after the first fault step, from that step, ms.
    FirstErrorMs,
    /// Per leg: its share (0 to 1) of the IO completed on its map's paths over the run (or
    /// over a window of it).
    IoShare,
    /// Time the kernel used a group other than the map's first while a path of the first group
    /// was usable: how long failback waited (in the run or, keyed, in one map), ms.
    FailbackMs,
}

/// Whether a figure is stated per leg, optionally per map, or for the run only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKey {
    Leg,
    OptionalMap,
    None,
}

impl Figure {
    pub const ALL: [Figure; 6] = [
        Figure::DetectionMs,
        Figure::GroupSwitches,
        Figure::NoPathMs,
        Figure::FirstErrorMs,
        Figure::IoShare,
        Figure::FailbackMs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Figure::DetectionMs => "detection_ms",
            Figure::GroupSwitches => "group_switches",
            Figure::NoPathMs => "no_path_ms",
            Figure::FirstErrorMs => "first_error_ms",
            Figure::IoShare => "io_share",
            Figure::FailbackMs => "failback_ms",
        }
    }

    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn key(self) -> FigureKey {
        match self {
            Figure::DetectionMs | Figure::IoShare => FigureKey::Leg,
            Figure::GroupSwitches | Figure::NoPathMs | Figure::FailbackMs => FigureKey::OptionalMap,
            Figure::FirstErrorMs => FigureKey::None,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a keyed figure is about: a leg or a map of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureTarget {
    Leg(LegId),
    Map(MapId),
}

impl FigureTarget {
    /// The leg's or map's name in `scenario`.
    pub fn name(self, scenario: &Scenario) -> &str {
        match self {
            FigureTarget::Leg(id) => &scenario.leg(id).name,
            FigureTarget::Map(id) => &scenario.map(id).name,
        }
    }
}

/// A part of the run's clock a figure is computed over: `from_ms` to `to_ms` (or the run's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureWindow {
    pub from_ms: u64,
    pub to_ms: Option<u64>,
}

impl fmt::Display for FigureWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |ms: u64| crate::format_duration(std::time::Duration::from_millis(ms));
        match self.to_ms {
            Some(to) => write!(f, "{}..{}", d(self.from_ms), d(to)),
            None => write!(f, "{}..", d(self.from_ms)),
        }
    }
}

/// One figure expectation: `figure[.key][."window"] cmp value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureCheck {
    pub figure: Figure,
    /// The leg or map; `None`: the whole run.
    pub key: Option<FigureTarget>,
    /// Only `io_share`: the part of the run it is computed over; `None`: the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<FigureWindow>,
    pub cmp: Cmp,
    pub value: f64,
}

/// The value is always finite (decoding refuses anything else), so equality is total.
impl Eq for FigureCheck {}

impl FigureCheck {
    /// Whether `actual` satisfies the check; a figure without a value (a path never failed,
    /// no error after the faults) satisfies none.
    pub fn holds(&self, actual: Option<f64>) -> bool {
        let Some(a) = actual else { return false };
        let v = self.value;
        match self.cmp {
            Cmp::Eq => a == v,
            Cmp::Ne => a != v,
            Cmp::Lt => a < v,
            Cmp::Le => a <= v,
            Cmp::Gt => a > v,
            Cmp::Ge => a >= v,
        }
    }

    /// The name of the leg or map the check is about, if keyed.
    pub fn key_name<'a>(&self, scenario: &'a Scenario) -> Option<&'a str> {
        self.key.map(|k| k.name(scenario))
    }

    /// The check as written, with names: `io_share.b > 0.9`.
    pub fn display<'a>(&'a self, scenario: &'a Scenario) -> impl fmt::Display + 'a {
        DisplayCheck {
            check: self,
            key: self.key_name(scenario),
        }
    }
}

struct DisplayCheck<'a> {
    check: &'a FigureCheck,
    key: Option<&'a str>,
}

impl fmt::Display for DisplayCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.check;
        match (self.key, c.window) {
            (Some(key), Some(w)) => write!(f, "{}.{key} in {w} {} {}", c.figure, c.cmp, c.value),
            (Some(key), None) => write!(f, "{}.{key} {} {}", c.figure, c.cmp, c.value),
            (None, _) => write!(f, "{} {} {}", c.figure, c.cmp, c.value),
        }
    }
}

/// A decoded figure check, its key still a name, with the key's position, for
/// [`resolve_keys`].
#[derive(Debug, Clone)]
pub(crate) struct DraftFigureCheck {
    pub figure: Figure,
    pub key: Option<String>,
    pub window: Option<FigureWindow>,
    pub cmp: Cmp,
    pub value: f64,
    pub key_pos: usize,
}

const FIGURE_HELP: &str = "write a number (meaning ==) or a string \"OP N\" with OP one of ==, !=, <, <=, >, >=, e.g. \"< 2000\" or \"> 0.9\"";

/// Decodes `figure = …` (or the table `figure.key = …`) of `[expect]`.
pub(crate) fn decode(
    r: &mut Report,
    figure: Figure,
    key: &Sp<&str>,
    v: &Value,
) -> Vec<DraftFigureCheck> {
    let mut out = Vec::new();
    if let DeValue::Table(t) = v.get_ref() {
        if figure.key() == FigureKey::None {
            r.error(
                key.pos,
                format!("`{figure}` is a figure of the whole run and takes no leg or map"),
                format!("write e.g. `{figure} = \"> 1000\"`"),
            );
            return out;
        }
        let t = Table::new("[expect]", v.span().start, t);
        for (sub, value) in t.entries() {
            let name = format!("{figure}.{}", sub.val);
            if let DeValue::Table(windows) = value.get_ref() {
                if figure != Figure::IoShare {
                    r.error(
                        sub.pos,
                        format!("`{name}` takes no window; only `io_share` does"),
                        format!("write e.g. `{name} = \"< 2000\"`"),
                    );
                    continue;
                }
                let windows = Table::new("[expect]", value.span().start, windows);
                for (w, value) in windows.entries() {
                    let Some(window) = parse_window(r, &name, &w) else {
                        continue;
                    };
                    if let Some((cmp, value)) =
                        comparison(r, &format!("{name}.\"{}\"", w.val), value)
                    {
                        out.push(DraftFigureCheck {
                            figure,
                            key: Some(sub.val.to_string()),
                            window: Some(window),
                            cmp,
                            value,
                            key_pos: sub.pos,
                        });
                    }
                }
                continue;
            }
            if let Some((cmp, value)) = comparison(r, &name, value) {
                out.push(DraftFigureCheck {
                    figure,
                    key: Some(sub.val.to_string()),
                    window: None,
                    cmp,
                    value,
                    key_pos: sub.pos,
                });
            }
        }
        return out;
    }
    if figure.key() == FigureKey::Leg {
        r.error(
            key.pos,
            format!("`{figure}` is a figure per leg"),
            format!("name the leg: `{figure}.a = \"...\"`"),
        );
        return out;
    }
    if let Some((cmp, value)) = comparison(r, figure.name(), v) {
        out.push(DraftFigureCheck {
            figure,
            key: None,
            window: None,
            cmp,
            value,
            key_pos: key.pos,
        });
    }
    out
}

const WINDOW_HELP: &str = "write the window as a quoted key \"FROM..TO\" (or \"FROM..\" to the run's end) with durations on the run's clock, e.g. `io_share.b.\"3s..5s\" = \"> 0.9\"`";

/// `"3s..5s"` or `"3s.."`: a window of the run's clock, from before to.
fn parse_window(r: &mut Report, name: &str, w: &Sp<&str>) -> Option<FigureWindow> {
    let Some((from, to)) = w.val.split_once("..") else {
        r.error(
            w.pos,
            format!("`{name}.\"{}\"` is not a window", w.val),
            WINDOW_HELP,
        );
        return None;
    };
    let ms = |r: &mut Report, text: &str| match crate::units::parse_duration(text) {
        Ok(d) => Some(d.as_millis() as u64),
        Err(e) => {
            r.error(w.pos, format!("`{name}`: {}", e.message), WINDOW_HELP);
            None
        }
    };
    let from_ms = ms(r, from)?;
    let to_ms = if to.trim().is_empty() {
        None
    } else {
        Some(ms(r, to)?)
    };
    if to_ms.is_some_and(|to| to <= from_ms) {
        r.error(
            w.pos,
            format!("`{name}.\"{}\"` ends before it begins", w.val),
            WINDOW_HELP,
        );
        return None;
    }
    Some(FigureWindow { from_ms, to_ms })
}

fn comparison(r: &mut Report, name: &str, v: &Value) -> Option<(Cmp, f64)> {
    let pos = v.span().start;
    let parsed = match v.get_ref() {
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (Cmp::Eq, n as f64)),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| (Cmp::Eq, x)),
        DeValue::String(s) => parse_cmp(s),
        other => {
            r.error(
                pos,
                format!(
                    "`{name}` must be a number or a comparison string, found {}",
                    describe(other)
                ),
                FIGURE_HELP,
            );
            return None;
        }
    };
    let Some((cmp, value)) = parsed else {
        r.error(pos, format!("bad comparison for `{name}`"), FIGURE_HELP);
        return None;
    };
    if cmp == Cmp::Lt && value == 0.0 {
        r.error(
            pos,
            format!("`{name} < 0` can never hold"),
            "figures are never negative; did you mean \"== 0\"?",
        );
        return None;
    }
    Some((cmp, value))
}

/// "< 2000", ">0.9", "== 0".
fn parse_cmp(s: &str) -> Option<(Cmp, f64)> {
    let s = s.trim();
    let order = [Cmp::Le, Cmp::Ge, Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Gt];
    let (cmp, rest) = order
        .into_iter()
        .find_map(|c| s.strip_prefix(c.symbol()).map(|rest| (c, rest)))?;
    let rest = rest.trim();
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let value: f64 = rest.parse().ok()?;
    value.is_finite().then_some((cmp, value))
}

/// Checks that every key names a leg (or a map, for the figures keyed by map), and turns
/// the names into ids: a leg's from `leg_ids`, a map's its position in `maps`.
pub(crate) fn resolve_keys(
    r: &mut Report,
    drafts: Vec<DraftFigureCheck>,
    legs: &[&str],
    leg_ids: &HashMap<&str, LegId>,
    maps: &[&str],
) -> Vec<FigureCheck> {
    let mut out = Vec::new();
    for d in drafts {
        let key = match &d.key {
            None => None,
            Some(key) => {
                let (target, names, what) = match d.figure.key() {
                    FigureKey::Leg => (
                        leg_ids.get(key.as_str()).map(|&id| FigureTarget::Leg(id)),
                        legs,
                        "leg",
                    ),
                    _ => (
                        maps.iter()
                            .position(|m| *m == key)
                            .map(|i| FigureTarget::Map(MapId::new(i))),
                        maps,
                        "map",
                    ),
                };
                match target {
                    Some(t) => Some(t),
                    None => {
                        if !names.contains(&key.as_str()) {
                            r.error(
                                d.key_pos,
                                format!(
                                    "[expect] `{}.{key}` names {what} \"{key}\", which does not exist",
                                    d.figure
                                ),
                                format!("{what}s are: {}", names.join(", ")),
                            );
                        }
                        // A leg that exists but was not placed has its own error already.
                        continue;
                    }
                }
            }
        };
        out.push(FigureCheck {
            figure: d.figure,
            key,
            window: d.window,
            cmp: d.cmp,
            value: d.value,
        });
    }
    out
}
