//! First pass: the TOML tree to a draft, table by table.
//!
//! Owns the scenario file's layout (which tables and keys exist, their types,
//! units, defaults and per-value ranges). Cross-references between tables
//! (legs to maps, faults to legs, timing against the workload) are checked
//! later in `resolve`, so the draft keeps the position of everything that
//! such a check may need to point at.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::diag::Report;
use crate::kinds::{self, Extent, FaultKind};
use crate::manager_decode::{self, DraftManager, ReadFile};
use crate::model::{
    Backend, Check, Cmp, Metric, PathStateExpect, Pattern, Selector, WorkloadEngine,
};
use crate::reader::{as_int, as_string, one_of, suggest, type_error, Got, Sp, Table};
use crate::units::{format_duration, format_size};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "guest",
    "map",
    "leg",
    "fault",
    "workload",
    "expect",
    "manager",
    "mirror",
    "hba",
    "critical",
];
const GUEST_KEYS: &[&str] = &["memory_mib", "timeout", "scratch_mib"];
const MAP_KEYS: &[&str] = &[
    "name",
    "size",
    "selector",
    "queue_if_no_path",
    "groups",
    "kind",
    "log",
    "region_size",
];
const LEG_KEYS: &[&str] = &[
    "name",
    "map",
    "prio",
    "backend",
    "dm_layer",
    "hba",
    "timeout",
    "eh_timeout",
    "queue_depth",
];
const WORKLOAD_KEYS: &[&str] = &[
    "map",
    "duration",
    "read_percent",
    "block_size",
    "queue_depth",
    "rate_iops",
    "pattern",
    "verify",
    "stall_threshold",
    "engine",
];
const FINAL_STATE_KEY: &str = "final_path_state";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

pub(crate) const SCENARIO_NAME_MAX: usize = 32;
pub(crate) const OBJECT_NAME_MAX: usize = 16;

pub(crate) struct Draft {
    pub name: Option<Sp<String>>,
    pub description: Option<String>,
    pub seed: u64,
    pub guest: DraftGuest,
    pub maps: Vec<DraftMap>,
    pub legs: Vec<DraftLeg>,
    pub faults: Vec<DraftFault>,
    /// `[workload]` (one) or `[[workload]]` (one per map), in file order.
    pub workloads: Vec<DraftWorkload>,
    pub expect: DraftExpect,
    pub manager: DraftManager,
    pub mirror: crate::mirror::DraftMirror,
    pub hbas: Vec<crate::scsi::DraftHba>,
    /// `[[critical]]`, in file order.
    pub critical: Vec<crate::critical::DraftCritical>,
}

pub(crate) struct DraftGuest {
    pub memory_mib: u32,
    /// Position of the `memory_mib` key, when written.
    pub memory_at: Option<usize>,
    pub timeout: Option<Sp<Duration>>,
    /// `scratch_mib`, when written: a scratch tmpfs smaller than the maps need.
    pub scratch_mib: Option<Sp<u64>>,
}

pub(crate) type Groups = Vec<Sp<Vec<Sp<String>>>>;

pub(crate) struct DraftMap {
    pub name: Option<Sp<String>>,
    /// `None` if the size was invalid (reported).
    pub size: Option<u64>,
    /// Position of the `size` key, when written.
    pub size_at: Option<usize>,
    pub selector: Selector,
    /// The value, at the key's position.
    pub queue_if_no_path: Option<Sp<bool>>,
    pub groups: Option<Sp<Groups>>,
    /// Position of the `groups` key.
    pub groups_key: Option<usize>,
    /// `kind` (and a mirror's `log`, `region_size`).
    pub kind: crate::mirror::DraftKind,
    /// Positions of the multipath-only keys written (refused for a mirror).
    pub multipath_keys_at: Vec<(&'static str, usize)>,
}

pub(crate) struct DraftLeg {
    pub pos: usize,
    pub name: Option<Sp<String>>,
    pub map: Got<String>,
    /// 0..=1000, default 1.
    pub prio: u32,
    /// Position of the `prio` key.
    pub prio_key: Option<usize>,
    pub backend: Backend,
    /// As written; absent means true, but false for a SCSI leg.
    pub dm_layer: Got<bool>,
    pub scsi: crate::scsi::DraftLegScsi,
}

pub(crate) struct DraftFault {
    pub pos: usize,
    pub line: usize,
    pub at: Option<Sp<Duration>>,
    pub window: Option<Sp<Duration>>,
    /// `every` (at its value) and `times`, both valid and consistent with `for`.
    pub repeat: Option<(Sp<Duration>, Sp<u32>)>,
    pub leg: Option<Sp<String>>,
    pub kind: Option<Sp<FaultKind>>,
    /// Byte extents the kind's parameters reach, to check against the leg's size.
    pub extents: Vec<Extent>,
}

pub(crate) struct DraftWorkload {
    pub pos: usize,
    /// `"[workload]"` or `"[[workload]]"`, for messages.
    pub header: &'static str,
    pub map: Got<String>,
    pub duration: Option<Sp<Duration>>,
    pub read_percent: u8,
    pub block_size: Option<Sp<u32>>,
    pub queue_depth: u32,
    pub rate_iops: Option<u32>,
    pub pattern: Pattern,
    pub verify: bool,
    pub stall_threshold: Duration,
    pub engine: WorkloadEngine,
}

#[derive(Default)]
pub(crate) struct DraftExpect {
    /// Each check with the map it names (`max_latency_ms.m2`), if any; the check's `map` is
    /// filled in by `resolve`.
    pub checks: Vec<(Check, Option<Sp<String>>)>,
    pub figures: Vec<crate::figures::DraftFigureCheck>,
    pub final_path_state: Vec<(Sp<String>, PathStateExpect)>,
    /// The `critical_*` checks, their keys still names.
    pub critical: Vec<crate::critical::DraftCheck>,
}

/// Decodes the whole document; every problem found is reported. `read`
/// reads a `conf_file` (`None`: reading files is not allowed).
pub(crate) fn decode(r: &mut Report, doc: &DeTable, read: Option<ReadFile>) -> Draft {
    let top = Table::new("the top-level table", 0, doc);
    let manager_keys = manager_decode::manager_keys();
    top.reject_unknown(r, TOP_KEYS, |key| {
        let home = [
            ("[guest]", GUEST_KEYS),
            ("[workload]", WORKLOAD_KEYS),
            ("[[map]]", MAP_KEYS),
            ("[manager]", manager_keys.as_slice()),
        ]
        .into_iter()
        .find(|(_, keys)| keys.contains(&key))?;
        Some(format!("`{key}` belongs in a {} table", home.0))
    });

    let name = top
        .string(r, "name")
        .required(r, &top, "name", "name = \"my-scenario\"");
    if let Some(n) = &name {
        check_name(r, n, SCENARIO_NAME_MAX, "scenario name");
    }
    let description = top.string(r, "description").ok().map(|d| d.val);
    let seed = top.int(r, "seed", 0..=u64::MAX).or(1);

    let guest = match top.table(r, "guest", "[guest]") {
        Some(t) => decode_guest(r, &t),
        None => DraftGuest {
            memory_mib: 512,
            memory_at: None,
            timeout: None,
            scratch_mib: None,
        },
    };

    let map_tables = top.array_of_tables(r, "map", "[[map]]");
    if map_tables.is_empty() && top.get("map").is_none() {
        r.error(
            0,
            "the scenario defines no [[map]]",
            "add a [[map]] table with at least `name = \"mpatha\"`",
        );
    }
    let maps = map_tables.iter().map(|t| decode_map(r, t)).collect();
    let legs = top
        .array_of_tables(r, "leg", "[[leg]]")
        .iter()
        .map(|t| decode_leg(r, t))
        .collect();
    let faults = top
        .array_of_tables(r, "fault", "[[fault]]")
        .iter()
        .map(|t| decode_fault(r, t))
        .collect();

    let workloads = decode_workloads(r, &top);
    let expect = top
        .table(r, "expect", "[expect]")
        .map(|t| decode_expect(r, &t))
        .unwrap_or_default();
    let manager = manager_decode::decode_manager(r, &top, read);
    let mirror = crate::mirror::decode_section(r, &top);
    let hbas = top
        .array_of_tables(r, "hba", "[[hba]]")
        .iter()
        .map(|t| crate::scsi::decode_hba(r, t))
        .collect();
    let critical = crate::critical::decode(r, &top);

    Draft {
        name,
        description,
        seed,
        guest,
        maps,
        legs,
        faults,
        workloads,
        expect,
        manager,
        mirror,
        hbas,
        critical,
    }
}

/// The names of maps, legs and host adapters.
pub(crate) fn check_object_name(r: &mut Report, name: &Sp<String>, what: &str) {
    check_name(r, name, OBJECT_NAME_MAX, what);
}

/// Names of the scenario, maps and legs: `[a-z0-9][a-z0-9-]*`, at most `max` characters.
fn check_name(r: &mut Report, name: &Sp<String>, max: usize, what: &str) {
    let s = name.val.as_str();
    let charset_ok = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(charset_ok && first_ok && s.len() <= max) {
        r.error(
            name.pos,
            format!("invalid {what} \"{}\"", crate::units::shown(s)),
            format!("use lowercase letters, digits and '-', starting with a letter or digit, at most {max} characters"),
        );
    }
}

fn decode_guest(r: &mut Report, t: &Table) -> DraftGuest {
    t.reject_unknown(r, GUEST_KEYS, top_level_hint);
    DraftGuest {
        memory_mib: t.int(r, "memory_mib", 128..=4096).or(512) as u32,
        memory_at: t.key_pos("memory_mib"),
        timeout: t.duration(r, "timeout").ok(),
        scratch_mib: t.int(r, "scratch_mib", 16..=4096).ok(),
    }
}

/// Advice for a top-level key written below a table header.
fn top_level_hint(key: &str) -> Option<String> {
    TOP_KEYS
        .contains(&key)
        .then(|| format!("`{key}` is a top-level key: move it above the first [table] header"))
}

fn decode_map(r: &mut Report, t: &Table) -> DraftMap {
    t.reject_unknown(r, MAP_KEYS, top_level_hint);
    let name = t
        .string(r, "name")
        .required(r, t, "name", "name = \"mpatha\"");
    if let Some(n) = &name {
        check_name(r, n, OBJECT_NAME_MAX, "map name");
    }
    let size = match t.size(r, "size") {
        Got::Absent => Some(64 * MIB),
        Got::Invalid => None,
        Got::Ok(Sp { val, pos }) => {
            if !(MIB..=GIB).contains(&val) {
                r.error(
                    pos,
                    format!("map size {} is out of range", format_size(val)),
                    "a map is 1MiB to 1GiB, e.g. `size = \"64MiB\"`",
                );
                None
            } else if val % 4096 != 0 {
                r.error(
                    pos,
                    format!("map size {} is not a multiple of 4KiB", format_size(val)),
                    "use a multiple of 4096 bytes, e.g. \"64MiB\"",
                );
                None
            } else {
                Some(val)
            }
        }
    };
    let selector = t
        .choice(
            r,
            "selector",
            &[
                ("round-robin", Selector::RoundRobin),
                ("queue-length", Selector::QueueLength),
                ("service-time", Selector::ServiceTime),
            ],
        )
        .or(Selector::RoundRobin);
    let queue_if_no_path = t
        .boolean(r, "queue_if_no_path")
        .ok()
        .map(|q| Sp::new(q.val, t.key_pos("queue_if_no_path").unwrap_or(q.pos)));
    let groups = t.get("groups").and_then(|v| decode_groups(r, v));
    let kind = crate::mirror::decode_map_kind(r, t, size);
    let multipath_keys_at = crate::mirror::MULTIPATH_ONLY_KEYS
        .iter()
        .filter_map(|k| t.key_pos(k).map(|p| (*k, p)))
        .collect();
    DraftMap {
        name,
        size,
        size_at: t.key_pos("size"),
        selector,
        queue_if_no_path,
        groups,
        groups_key: t.key_pos("groups"),
        kind,
        multipath_keys_at,
    }
}

/// `groups = [["a", "b"], ["c"]]`.
fn decode_groups(r: &mut Report, v: &crate::reader::Value) -> Option<Sp<Groups>> {
    let shape = "write groups as an array of arrays of leg names, e.g. `groups = [[\"a\", \"b\"], [\"c\"]]`";
    let DeValue::Array(outer) = v.get_ref() else {
        type_error(r, v, "groups", "an array of arrays", shape, v.get_ref());
        return None;
    };
    let mut groups = Vec::new();
    let mut ok = true;
    for g in outer.iter() {
        let DeValue::Array(inner) = g.get_ref() else {
            type_error(r, g, "groups", "an array of arrays", shape, g.get_ref());
            ok = false;
            continue;
        };
        let legs: Vec<_> = inner
            .iter()
            .filter_map(|l| as_string(r, l, "groups"))
            .collect();
        ok &= legs.len() == inner.len();
        groups.push(Sp::new(legs, g.span().start));
    }
    ok.then(|| Sp::new(groups, v.span().start))
}

fn decode_leg(r: &mut Report, t: &Table) -> DraftLeg {
    t.reject_unknown(r, LEG_KEYS, top_level_hint);
    let name = t.string(r, "name").required(r, t, "name", "name = \"a\"");
    if let Some(n) = &name {
        check_name(r, n, OBJECT_NAME_MAX, "leg name");
    }
    DraftLeg {
        pos: t.pos,
        name,
        map: t.string(r, "map"),
        prio: t.int(r, "prio", 0..=1000).or(1) as u32,
        prio_key: t.key_pos("prio"),
        backend: t
            .choice(
                r,
                "backend",
                &[
                    ("loop", Backend::Loop),
                    ("fuse", Backend::Fuse),
                    ("scsi", Backend::Scsi),
                ],
            )
            .or(Backend::Loop),
        dm_layer: t.boolean(r, "dm_layer"),
        scsi: crate::scsi::decode_leg_scsi(r, t),
    }
}

fn decode_fault(r: &mut Report, t: &Table) -> DraftFault {
    t.reject_unknown(r, &kinds::fault_keys(), top_level_hint);
    let at = t.duration(r, "at").required(r, t, "at", "at = \"3s\"");
    let window = t.duration(r, "for").ok().filter(|w| {
        if w.val.is_zero() {
            r.error(
                w.pos,
                "`for` must be longer than 0s",
                "give the fault's length, e.g. `for = \"3s\"`, or leave `for` out to keep the fault until the next fault on this leg",
            );
        }
        !w.val.is_zero()
    });
    let repeat = decode_repeat(r, t, window.as_ref());
    let leg = t.string(r, "leg").required(r, t, "leg", "leg = \"a\"");
    let (kind, extents) = match kinds::decode_kind(r, t) {
        Some(d) => (Some(d.kind), d.extents),
        None => (None, Vec::new()),
    };
    DraftFault {
        pos: t.pos,
        line: r.line_of(t.pos),
        at,
        window,
        repeat,
        leg,
        kind,
        extents,
    }
}

/// `every` and `times`: both or neither, and only with a valid `for` shorter than `every`.
fn decode_repeat(
    r: &mut Report,
    t: &Table,
    window: Option<&Sp<Duration>>,
) -> Option<(Sp<Duration>, Sp<u32>)> {
    let every = t.duration(r, "every");
    let times = t.int(r, "times", 1..=10_000);
    let (every, times) = match (every, times) {
        (Got::Absent, Got::Absent) => return None,
        (Got::Ok(e), Got::Ok(n)) => (e, Sp::new(n.val as u32, n.pos)),
        (Got::Ok(e), Got::Absent) => {
            r.error(
                t.key_pos("every").unwrap_or(e.pos),
                "`every` needs `times`",
                "add e.g. `times = 3`: how many windows there are, `every` apart",
            );
            return None;
        }
        (Got::Absent, Got::Ok(n)) => {
            r.error(
                t.key_pos("times").unwrap_or(n.pos),
                "`times` needs `every`",
                "add e.g. `every = \"2s\"`: the time from the start of one window to the start of the next",
            );
            return None;
        }
        _ => return None, // an invalid value, reported
    };
    let Some(window) = window else {
        if t.get("for").is_none() {
            r.error(
                t.key_pos("every").unwrap_or(every.pos),
                "`every` repeats the fault's `for` window, but this fault has no `for`",
                "add `for` (how long each window lasts, e.g. `for = \"1s\"`), or remove `every` and `times`",
            );
        }
        return None;
    };
    if every.val <= window.val {
        r.error(
            every.pos,
            format!(
                "`every` = {} is not longer than `for` = {}",
                format_duration(every.val),
                format_duration(window.val)
            ),
            "the windows would overlap: `every` is the time from one window's start to the next one's, so make it longer than `for`",
        );
        return None;
    }
    Some((every, times))
}

/// `[workload]` (one table) or `[[workload]]` (an array of tables, one per map); at least one.
fn decode_workloads(r: &mut Report, top: &Table) -> Vec<DraftWorkload> {
    let array = matches!(
        top.get("workload").map(|v| v.get_ref()),
        Some(DeValue::Array(_))
    );
    let workloads: Vec<DraftWorkload> = if array {
        let tables = top.array_of_tables(r, "workload", "[[workload]]");
        if let Some(first) = tables.first() {
            if tables.iter().all(|t| t.get("duration").is_none()) {
                r.error(
                    first.pos,
                    "no [[workload]] says how long the workloads run",
                    "add `duration = \"10s\"` to the first [[workload]] (the others run as long; they may repeat the same value)",
                );
            }
        }
        tables
            .iter()
            .map(|t| decode_workload(r, t, "[[workload]]"))
            .collect()
    } else {
        top.table(r, "workload", "[workload]")
            .map(|t| decode_workload(r, &t, "[workload]"))
            .into_iter()
            .collect()
    };
    match top.get("workload") {
        None => r.error(
            0,
            "the scenario has no [workload] table",
            "add a [workload] table with at least `duration = \"10s\"` (or one [[workload]] per map, each with `map = \"...\"`)",
        ),
        Some(v) if array && workloads.is_empty() && matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()) => {
            r.error(
                v.span().start,
                "`workload` is an empty array: the scenario runs no workload",
                "add a [[workload]] table with `map = \"...\"` and `duration = \"10s\"`",
            )
        }
        Some(_) => {}
    }
    workloads
}

/// One workload table. `duration` is required in `[workload]`; in `[[workload]]` it may be
/// left out of all but one (`resolve` checks that the workloads agree).
fn decode_workload(r: &mut Report, t: &Table, header: &'static str) -> DraftWorkload {
    t.reject_unknown(r, WORKLOAD_KEYS, top_level_hint);
    let duration = t.duration(r, "duration");
    let duration = if header == "[workload]" {
        duration.required(r, t, "duration", "duration = \"10s\"")
    } else {
        duration.ok()
    };
    let duration = duration.filter(|d| {
        let ok = (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d.val);
        if !ok {
            r.error(
                d.pos,
                format!(
                    "workload duration {} is out of range",
                    format_duration(d.val)
                ),
                "the workload runs for 1s to 1h, e.g. `duration = \"10s\"`",
            );
        }
        ok
    });
    let block_size = t.size(r, "block_size").ok().and_then(|b| {
        let ok = b.val.is_power_of_two() && (512..=MIB).contains(&b.val);
        if !ok {
            r.error(
                b.pos,
                format!(
                    "block size {} is not a power of two from 512 to 1MiB",
                    format_size(b.val)
                ),
                "use e.g. \"512\", \"4KiB\", \"64KiB\" or \"1MiB\"",
            );
        }
        ok.then(|| Sp::new(b.val as u32, b.pos))
    });
    let stall_threshold = match t.duration(r, "stall_threshold") {
        Got::Ok(s) if s.val < Duration::from_millis(100) => {
            r.error(
                s.pos,
                format!("stall threshold {} is too short", format_duration(s.val)),
                "use at least \"100ms\"; the default is \"1s\"",
            );
            None
        }
        other => other.ok().map(|s| s.val),
    };
    let engine = t
        .choice(
            r,
            "engine",
            &[
                ("pathrig", WorkloadEngine::Pathrig),
                ("fio", WorkloadEngine::Fio),
                ("fio-batched", WorkloadEngine::FioBatched),
            ],
        )
        .or(WorkloadEngine::Pathrig);
    let verify = match t.boolean(r, "verify").ok() {
        Some(v) if v.val && engine != WorkloadEngine::Pathrig => {
            r.error(
                v.pos,
                "fio does not verify what it reads".to_string(),
                "remove `verify = true`, or use `engine = \"pathrig\"` to verify every read",
            );
            false
        }
        Some(v) => v.val,
        None => engine == WorkloadEngine::Pathrig,
    };
    DraftWorkload {
        pos: t.pos,
        header,
        map: t.string(r, "map"),
        duration,
        read_percent: t.int(r, "read_percent", 0..=100).or(70) as u8,
        block_size,
        queue_depth: t.int(r, "queue_depth", 1..=256).or(8) as u32,
        rate_iops: t
            .int(r, "rate_iops", 1..=u64::from(u32::MAX))
            .ok()
            .map(|v| v.val as u32),
        pattern: t
            .choice(
                r,
                "pattern",
                &[
                    ("random", Pattern::Random),
                    ("sequential", Pattern::Sequential),
                ],
            )
            .or(Pattern::Random),
        verify,
        stall_threshold: stall_threshold.unwrap_or(Duration::from_secs(1)),
        engine,
    }
}

fn decode_expect(r: &mut Report, t: &Table) -> DraftExpect {
    let mut out = DraftExpect::default();
    let metric_names: Vec<&str> = Metric::ALL
        .iter()
        .map(|m| m.name())
        .chain(crate::figures::Figure::ALL.iter().map(|f| f.name()))
        .chain(
            crate::critical::CriticalMetric::ALL
                .iter()
                .map(|m| m.name()),
        )
        .collect();
    for (key, value) in t.entries() {
        if key.val == FINAL_STATE_KEY {
            out.final_path_state = decode_final_states(r, value);
            continue;
        }
        if let Some(figure) = crate::figures::Figure::from_name(key.val) {
            out.figures
                .extend(crate::figures::decode(r, figure, &key, value));
            continue;
        }
        if let Some(metric) = crate::critical::CriticalMetric::from_name(key.val) {
            out.critical
                .extend(crate::critical::decode_check(r, metric, key.pos, value));
            continue;
        }
        let Some(metric) = Metric::from_name(key.val) else {
            let guess = suggest(key.val, metric_names.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            r.error(
                key.pos,
                format!("unknown metric `{}` in [expect]", key.val),
                format!(
                    "{guess}valid metrics are: {}; path states go in [expect.{FINAL_STATE_KEY}]",
                    metric_names.join(", ")
                ),
            );
            continue;
        };
        if let DeValue::Table(per_map) = value.get_ref() {
            // `max_latency_ms.m2 = "< 500"`: one check per map named.
            let per_map = Table::new("[expect]", value.span().start, per_map);
            for (map, value) in per_map.entries() {
                if let Some(check) = decode_check(r, metric, value) {
                    out.checks
                        .push((check, Some(Sp::new(map.val.to_string(), map.pos))));
                }
            }
            continue;
        }
        if let Some(check) = decode_check(r, metric, value) {
            out.checks.push((check, None));
        }
    }
    out
}

const CMP_HELP: &str = "write an integer (meaning ==) or a string \"OP N\" with OP one of ==, !=, <, <=, >, >=, e.g. \"< 500\"";

fn decode_check(r: &mut Report, metric: Metric, v: &crate::reader::Value) -> Option<Check> {
    let pos = v.span().start;
    let (cmp, value) = match v.get_ref() {
        DeValue::Integer(_) => (Cmp::Eq, as_int(r, v, metric.name(), 0..=u64::MAX)?.val),
        DeValue::String(s) => match parse_cmp(s) {
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
                format!("{CMP_HELP}; for one map's workload write `{metric}.MAP = ...`"),
                other,
            );
            return None;
        }
    };
    let check = Check {
        metric,
        map: None,
        cmp,
        value,
    };
    if cmp == Cmp::Lt && value == 0 {
        r.error(
            pos,
            format!("`{check}` can never hold"),
            "metrics are never negative; did you mean \"== 0\"?",
        );
        return None;
    }
    Some(check)
}

/// "< 500", "<=500", "== 0", "!= 0" (spaces optional).
pub(crate) fn parse_cmp(s: &str) -> Option<(Cmp, u64)> {
    let s = s.trim();
    // two-character operators first so "<=" is not read as "<".
    let order = [Cmp::Le, Cmp::Ge, Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Gt];
    let (cmp, rest) = order
        .into_iter()
        .find_map(|c| s.strip_prefix(c.symbol()).map(|rest| (c, rest)))?;
    let rest = rest.trim();
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((cmp, rest.parse().ok()?))
}

fn decode_final_states(
    r: &mut Report,
    v: &crate::reader::Value,
) -> Vec<(Sp<String>, PathStateExpect)> {
    let DeValue::Table(t) = v.get_ref() else {
        type_error(
            r,
            v,
            FINAL_STATE_KEY,
            "a table",
            format!("write [expect.{FINAL_STATE_KEY}] with lines like `a = \"active\"`"),
            v.get_ref(),
        );
        return Vec::new();
    };
    let t = Table::new("[expect.final_path_state]", v.span().start, t);
    let states = [
        ("active", PathStateExpect::Active),
        ("failed", PathStateExpect::Failed),
    ];
    let names = ["active", "failed"];
    let mut out = Vec::new();
    for (leg, value) in t.entries() {
        let Some(s) = as_string(r, value, leg.val) else {
            continue;
        };
        match states.iter().find(|(n, _)| *n == s.val) {
            Some((_, state)) => out.push((Sp::new(leg.val.to_string(), leg.pos), *state)),
            None => r.error(
                s.pos,
                format!("unknown path state \"{}\" for leg `{}`", s.val, leg.val),
                one_of(&s.val, &names),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_strings() {
        assert_eq!(parse_cmp("< 500"), Some((Cmp::Lt, 500)));
        assert_eq!(parse_cmp("<=500"), Some((Cmp::Le, 500)));
        assert_eq!(parse_cmp(" > 0 "), Some((Cmp::Gt, 0)));
        assert_eq!(parse_cmp(">= 1"), Some((Cmp::Ge, 1)));
        assert_eq!(parse_cmp("== 0"), Some((Cmp::Eq, 0)));
        assert_eq!(parse_cmp("!=0"), Some((Cmp::Ne, 0)));
        for bad in [
            "500", "= 5", "=< 5", "< -1", "<", "< 5ms", "~ 5", "< +5", "",
        ] {
            assert_eq!(parse_cmp(bad), None, "{bad}");
        }
    }
}
