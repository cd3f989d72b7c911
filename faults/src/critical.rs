//! Time-critical IO (`[[critical]]`): small aligned IOs with a deadline beside the bulk
//! workload — a cluster's disk heartbeat — sent through the multipath map or multiplexed down
//! every usable path (the rig's `workload::critical`). Owns the table's keys, units, defaults
//! and ranges; the rules for areas (aligned, inside the map, above the bulk workload's blocks,
//! never overlapping another writer's); and the `critical_*` expectations with their keys (a
//! writer or a map).
//!
//! The bulk workload of a map with critical writers uses the blocks below the lowest critical
//! area, so the two never touch one block.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::DeValue;

use crate::diag::Report;
use crate::model::Cmp;
use crate::reader::{as_int, type_error, Got, Sp, Table, Value};
use crate::units::{format_duration, format_size};
use crate::{MapId, Scenario};

pub(crate) const KEYS: &[&str] = &[
    "name",
    "map",
    "mode",
    "op",
    "interval",
    "deadline",
    "offset",
    "size",
    "block_size",
];

/// How the IO reaches the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalMode {
    /// To the multipath map, like any application's IO.
    ThroughMap,
    /// `O_DIRECT` to every path the kernel lists as usable; first success, last failure.
    Multiplex,
}

impl CriticalMode {
    pub fn name(self) -> &'static str {
        match self {
            CriticalMode::ThroughMap => "through_map",
            CriticalMode::Multiplex => "multiplex",
        }
    }
}

/// The timed IO of a writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalOp {
    /// A stamped block, then read back (untimed) to verify it.
    Write,
    /// A block of the area, verified against what it should hold.
    Read,
}

/// One critical writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticalSpec {
    /// Unique among writers; default the map's name.
    pub name: String,
    pub map: MapId,
    pub mode: CriticalMode,
    pub op: CriticalOp,
    /// One IO per interval; 10 ms ..= 60 s, default 100 ms.
    pub interval: Duration,
    /// 1 ms ..= 60 s, default 1 s.
    pub deadline: Duration,
    /// The area, bytes: multiples of `block_size`, inside the map, above the bulk blocks.
    pub offset: u64,
    /// Default 1 MiB.
    pub size: u64,
    /// Power of two, 512 B ..= 64 KiB; default 4 KiB.
    pub block_size: u32,
}

/// A `critical_*` figure of `[expect]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalMetric {
    /// Timed IOs without a success by their deadline.
    DeadlineMisses,
    /// Timed IOs due.
    Ios,
    /// Timed IOs that failed.
    Failures,
    P50Ms,
    P99Ms,
    MaxMs,
    /// IOs whose copies disagreed (multiplex).
    Disagreements,
    /// Reads whose data was not what was written.
    Mismatches,
}

impl CriticalMetric {
    pub const ALL: [CriticalMetric; 8] = [
        CriticalMetric::DeadlineMisses,
        CriticalMetric::Ios,
        CriticalMetric::Failures,
        CriticalMetric::P50Ms,
        CriticalMetric::P99Ms,
        CriticalMetric::MaxMs,
        CriticalMetric::Disagreements,
        CriticalMetric::Mismatches,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CriticalMetric::DeadlineMisses => "critical_deadline_misses",
            CriticalMetric::Ios => "critical_ios",
            CriticalMetric::Failures => "critical_failures",
            CriticalMetric::P50Ms => "critical_p50_ms",
            CriticalMetric::P99Ms => "critical_p99_ms",
            CriticalMetric::MaxMs => "critical_max_ms",
            CriticalMetric::Disagreements => "critical_disagreements",
            CriticalMetric::Mismatches => "critical_mismatches",
        }
    }

    pub fn from_name(name: &str) -> Option<CriticalMetric> {
        CriticalMetric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Latencies combine by their maximum over writers, counts by their sum.
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            CriticalMetric::P50Ms | CriticalMetric::P99Ms | CriticalMetric::MaxMs
        )
    }
}

impl fmt::Display for CriticalMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a keyed critical check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalTarget {
    /// The writer at this index of `Scenario::critical`.
    Writer(usize),
    /// Every writer on the map.
    Map(MapId),
}

/// `critical_metric[.writer or map] cmp value`; unkeyed: every writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticalCheck {
    pub metric: CriticalMetric,
    pub key: Option<CriticalTarget>,
    pub cmp: Cmp,
    pub value: u64,
}

impl CriticalCheck {
    /// The writers the check is about (indices into `Scenario::critical`).
    pub fn writers(&self, scenario: &Scenario) -> Vec<usize> {
        self.writers_in(&scenario.critical)
    }

    /// `critical_deadline_misses.mx == 0`.
    pub fn display(&self, scenario: &Scenario) -> String {
        let key = match self.key {
            None => String::new(),
            Some(CriticalTarget::Writer(w)) => format!(".{}", scenario.critical[w].name),
            Some(CriticalTarget::Map(m)) => format!(".{}", scenario.map(m).name),
        };
        format!("{}{key} {} {}", self.metric, self.cmp, self.value)
    }
}

pub(crate) struct DraftCritical {
    pub pos: usize,
    pub name: Option<Sp<String>>,
    pub map: Got<String>,
    pub mode: Option<CriticalMode>,
    pub op: CriticalOp,
    pub interval: Duration,
    pub deadline: Duration,
    pub offset: Option<Sp<u64>>,
    pub size: Sp<u64>,
    pub block_size: u32,
}

pub(crate) struct DraftCheck {
    pub check: CriticalCheck,
    pub key: Option<Sp<String>>,
    /// Where the metric's name is.
    pub pos: usize,
}

fn duration_in(
    r: &mut Report,
    t: &Table,
    key: &str,
    range: std::ops::RangeInclusive<Duration>,
    default: Duration,
) -> Duration {
    match t.duration(r, key) {
        Got::Ok(d) if !range.contains(&d.val) => {
            r.error(
                d.pos,
                format!("`{key}` {} is out of range", format_duration(d.val)),
                format!(
                    "use {} to {}; the default is \"{}\"",
                    format_duration(*range.start()),
                    format_duration(*range.end()),
                    format_duration(default)
                ),
            );
            default
        }
        other => other.ok().map_or(default, |d| d.val),
    }
}

/// `[[critical]]`, in file order (none when absent).
pub(crate) fn decode(r: &mut Report, top: &Table) -> Vec<DraftCritical> {
    if top.get("critical").is_none() {
        return Vec::new();
    }
    top.array_of_tables(r, "critical", "[[critical]]")
        .iter()
        .map(|t| decode_one(r, t))
        .collect()
}

fn decode_one(r: &mut Report, t: &Table) -> DraftCritical {
    t.reject_unknown(r, KEYS, |_| None);
    let mode = t
        .choice(
            r,
            "mode",
            &[
                ("through_map", CriticalMode::ThroughMap),
                ("multiplex", CriticalMode::Multiplex),
            ],
        )
        .required(r, t, "mode", "mode = \"multiplex\"")
        .map(|m| m.val);
    let op = t
        .choice(
            r,
            "op",
            &[("write", CriticalOp::Write), ("read", CriticalOp::Read)],
        )
        .or(CriticalOp::Write);
    let interval = duration_in(
        r,
        t,
        "interval",
        Duration::from_millis(10)..=Duration::from_secs(60),
        Duration::from_millis(100),
    );
    let deadline = duration_in(
        r,
        t,
        "deadline",
        Duration::from_millis(1)..=Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let block_size = match t.size(r, "block_size") {
        Got::Ok(b) if !(b.val.is_power_of_two() && (512..=65536).contains(&b.val)) => {
            r.error(
                b.pos,
                format!(
                    "critical block size {} is not a power of two from 512 to 64KiB",
                    format_size(b.val)
                ),
                "critical IO is one small aligned block, e.g. \"4KiB\" (the default)",
            );
            4096
        }
        other => other.ok().map_or(4096, |b| b.val as u32),
    };
    let size = match t.size(r, "size") {
        Got::Ok(s) => s,
        _ => Sp::new(1 << 20, t.pos),
    };
    let offset = t
        .size(r, "offset")
        .required(r, t, "offset", "offset = \"60MiB\"");
    DraftCritical {
        pos: t.pos,
        name: t.string(r, "name").ok(),
        map: t.string(r, "map"),
        mode,
        op,
        interval,
        deadline,
        offset,
        size,
        block_size,
    }
}

/// The map named `got` (or the only map): its index in `maps`.
fn pick_map(r: &mut Report, got: &Got<String>, maps: &[&str], pos: usize) -> Option<usize> {
    match got {
        Got::Invalid => None,
        Got::Ok(m) => {
            let found = maps.iter().position(|&n| n == m.val);
            if found.is_none() {
                r.error(
                    m.pos,
                    format!("[[critical]] names map \"{}\", which does not exist", m.val),
                    format!("maps are: {}", maps.join(", ")),
                );
            }
            found
        }
        Got::Absent if maps.len() == 1 => Some(0),
        Got::Absent => {
            r.error(
                pos,
                format!(
                    "[[critical]] does not say which map it uses, and there are {} maps",
                    maps.len()
                ),
                format!("add `map = \"{}\"` (one of {})", maps[0], maps.join(", ")),
            );
            None
        }
    }
}

/// What `resolve` knows about a map: its name, size, whether it is a mirror, and the bulk
/// workload's block size on it (if it runs one).
pub(crate) struct MapFacts<'a> {
    pub name: &'a str,
    pub size: Option<u64>,
    pub mirror: bool,
    pub bulk_block_size: Option<u32>,
}

/// Every writer against its map, the bulk workload and the other writers.
pub(crate) fn resolve(
    r: &mut Report,
    drafts: &[DraftCritical],
    maps: &[MapFacts<'_>],
) -> Vec<CriticalSpec> {
    let names: Vec<&str> = maps.iter().map(|m| m.name).collect();
    let mut out: Vec<(CriticalSpec, usize)> = Vec::new();
    for d in drafts {
        let Some(index) = pick_map(r, &d.map, &names, d.pos) else {
            continue;
        };
        let map = &maps[index];
        let (Some(mode), Some(offset)) = (d.mode, &d.offset) else {
            continue;
        };
        let name = d.name.as_ref().map_or(map.name, |n| n.val.as_str());
        let name_pos = d.name.as_ref().map_or(d.pos, |n| n.pos);
        if let Some(other) = names.iter().find(|&&n| n == name && n != map.name) {
            r.error(
                name_pos,
                format!("critical writer \"{name}\" has the name of map \"{other}\""),
                "a writer's name may only be its own map's: `critical_*.NAME` in [expect] would be ambiguous",
            );
            continue;
        }
        if let Some((first, pos)) = out.iter().find(|(c, _)| c.name == name) {
            let line = r.line_of(*pos);
            r.error(
                name_pos,
                format!("duplicate critical writer name \"{}\"", first.name),
                format!("the writer on line {line} has it already; give each [[critical]] its own `name`"),
            );
            continue;
        }
        if mode == CriticalMode::Multiplex && map.mirror {
            r.error(
                d.pos,
                format!(
                    "map \"{}\" is a mirror: it has no paths to multiplex over",
                    map.name
                ),
                "multiplex needs a multipath map; use `mode = \"through_map\"` on a mirror",
            );
            continue;
        }
        let bs = u64::from(d.block_size);
        if offset.val % bs != 0 || d.size.val % bs != 0 || d.size.val < bs {
            r.error(
                if offset.val % bs != 0 {
                    offset.pos
                } else {
                    d.size.pos
                },
                format!(
                    "the critical area ({} at offset {}) is not whole blocks of {}",
                    format_size(d.size.val),
                    format_size(offset.val),
                    format_size(bs)
                ),
                "critical IO is aligned: make `offset` and `size` multiples of `block_size`",
            );
            continue;
        }
        if let Some(size) = map.size {
            if offset.val.saturating_add(d.size.val) > size {
                r.error(
                    offset.pos,
                    format!(
                        "the critical area ends at {}, past the end of map \"{}\" ({})",
                        format_size(offset.val + d.size.val),
                        map.name,
                        format_size(size)
                    ),
                    format!(
                        "put it inside the map, e.g. `offset = \"{}\"`",
                        format_size(size.saturating_sub(d.size.val))
                    ),
                );
                continue;
            }
        }
        if let Some(wbs) = map.bulk_block_size {
            let wbs = u64::from(wbs);
            if offset.val < wbs || offset.val % wbs != 0 {
                r.error(
                    offset.pos,
                    format!(
                        "offset {}: the bulk workload on map \"{}\" uses the blocks below the lowest critical area, so the offset must be a whole number of its blocks ({}), at least one",
                        format_size(offset.val),
                        map.name,
                        format_size(wbs)
                    ),
                    "place critical areas above the bulk IO, e.g. at the top of the map",
                );
                continue;
            }
        }
        let (lo, hi) = (offset.val, offset.val + d.size.val);
        if let Some((other, pos)) = out
            .iter()
            .find(|(c, _)| c.map.index() == index && c.offset < hi && lo < c.offset + c.size)
        {
            let line = r.line_of(*pos);
            r.error(
                offset.pos,
                format!(
                    "the critical area {}..{} overlaps writer \"{}\"'s ({}..{}, line {line})",
                    format_size(lo),
                    format_size(hi),
                    other.name,
                    format_size(other.offset),
                    format_size(other.offset + other.size)
                ),
                "each writer has an area of its own: move `offset` past the other area",
            );
            continue;
        }
        out.push((
            CriticalSpec {
                name: name.to_string(),
                map: MapId::new(index),
                mode,
                op: d.op,
                interval: d.interval,
                deadline: d.deadline,
                offset: offset.val,
                size: d.size.val,
                block_size: d.block_size,
            },
            d.pos,
        ));
    }
    out.into_iter().map(|(c, _)| c).collect()
}

const CMP_HELP: &str = "write an integer (meaning ==) or a string \"OP N\" with OP one of ==, !=, <, <=, >, >=, e.g. \"== 0\"";

/// `critical_metric = …` or `critical_metric.KEY = …` of `[expect]`.
pub(crate) fn decode_check(
    r: &mut Report,
    metric: CriticalMetric,
    pos: usize,
    v: &Value,
) -> Vec<DraftCheck> {
    let mut out = Vec::new();
    if let DeValue::Table(t) = v.get_ref() {
        let t = Table::new("[expect]", v.span().start, t);
        for (key, value) in t.entries() {
            if let Some(check) = one_check(r, metric, value) {
                out.push(DraftCheck {
                    check,
                    key: Some(Sp::new(key.val.to_string(), key.pos)),
                    pos,
                });
            }
        }
    } else if let Some(check) = one_check(r, metric, v) {
        out.push(DraftCheck {
            check,
            key: None,
            pos,
        });
    }
    out
}

fn one_check(r: &mut Report, metric: CriticalMetric, v: &Value) -> Option<CriticalCheck> {
    let pos = v.span().start;
    let (cmp, value) = match v.get_ref() {
        DeValue::Integer(_) => (Cmp::Eq, as_int(r, v, metric.name(), 0..=u64::MAX)?.val),
        DeValue::String(s) => match crate::decode::parse_cmp(s) {
            Some(c) => c,
            None => {
                r.error(
                    pos,
                    format!("bad comparison \"{s}\" for `{metric}`"),
                    CMP_HELP,
                );
                return None;
            }
        },
        other => {
            type_error(
                r,
                v,
                metric.name(),
                "an integer or a comparison string",
                format!("{CMP_HELP}; for one writer or map write `{metric}.NAME = ...`"),
                other,
            );
            return None;
        }
    };
    if cmp == Cmp::Lt && value == 0 {
        r.error(
            pos,
            format!("`{metric} < 0` can never hold"),
            "critical figures are never negative; did you mean \"== 0\"?",
        );
        return None;
    }
    Some(CriticalCheck {
        metric,
        key: None,
        cmp,
        value,
    })
}

/// Each keyed check's writer (by name) or map; a check needs at least one writer to be about.
pub(crate) fn resolve_checks(
    r: &mut Report,
    drafts: &[DraftCheck],
    writers: &[CriticalSpec],
    map_names: &[&str],
    all_resolved: bool,
) -> Vec<CriticalCheck> {
    let mut out = Vec::new();
    for d in drafts {
        let key = match &d.key {
            None => None,
            Some(k) => {
                if let Some(w) = writers.iter().position(|w| w.name == k.val) {
                    Some(CriticalTarget::Writer(w))
                } else if let Some(m) = map_names.iter().position(|&n| n == k.val) {
                    Some(CriticalTarget::Map(MapId::new(m)))
                } else {
                    if all_resolved {
                        let known: Vec<&str> = writers
                            .iter()
                            .map(|w| w.name.as_str())
                            .chain(map_names.iter().copied())
                            .fold(Vec::new(), |mut v, n| {
                                if !v.contains(&n) {
                                    v.push(n);
                                }
                                v
                            });
                        r.error(
                            k.pos,
                            format!(
                                "[expect] `{}.{}` names no critical writer and no map",
                                d.check.metric, k.val
                            ),
                            format!("writers and maps are: {}", known.join(", ")),
                        );
                    }
                    continue;
                }
            }
        };
        let check = CriticalCheck { key, ..d.check };
        let pos = d.key.as_ref().map_or(d.pos, |k| k.pos);
        if all_resolved && check.writers_in(writers).is_empty() {
            r.error(
                pos,
                format!(
                    "[expect] `{}`: no critical writer to measure",
                    d.check.metric
                ),
                "add a [[critical]] table (on that map), or remove this expectation",
            );
            continue;
        }
        out.push(check);
    }
    out
}

impl CriticalCheck {
    fn writers_in(&self, writers: &[CriticalSpec]) -> Vec<usize> {
        (0..writers.len())
            .filter(|&i| match self.key {
                None => true,
                Some(CriticalTarget::Writer(w)) => w == i,
                Some(CriticalTarget::Map(m)) => writers[i].map == m,
            })
            .collect()
    }
}
