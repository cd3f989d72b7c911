//! Mirror maps in the scenario language: the `[[map]]` keys of a `kind = "mirror"` map
//! (`log`, `region_size`), the `[mirror]` section (the monitor's defaults) with its
//! `[mirror.map.<name>]` overrides, and the checks that tie them to the maps (overrides name
//! mirror maps, mirror maps carry no multipath-only keys, no `[manager.map.<name>]` for them).
//!
//! The settings themselves (types, defaults, ranges) are the mirror monitor's
//! (`mirror_monitor::settings`); this module decodes them from TOML and turns each
//! [`SettingError`] into a diagnostic at the key's line and column.

use std::collections::HashMap;

use mirror_monitor::{
    AfterWindow, DeadPolicy, DifferPolicy, MirrorOverrides, MirrorSection, MirrorSettings,
    ReadFailurePolicy, SyncFailurePolicy,
};
use serde::{Deserialize, Serialize};

use crate::diag::Report;
use crate::reader::{Got, Sp, Table};

/// What a `[[map]]` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    /// A dm-multipath map: every leg is a path to the same data (the default).
    #[default]
    Multipath,
    /// A dm-mirror map (`mirror` target with `handle_errors`): every leg holds a copy.
    Mirror(MirrorMapSpec),
}

/// The table settings of a mirror map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorMapSpec {
    pub log: MirrorLogKind,
    /// Region size in bytes: a power of two, 4 KiB ..= 16 MiB, at most the map size;
    /// default 512 KiB (lvm2's `mirror_region_size`).
    pub region_size_bytes: u64,
    /// How many legs (two or more; set when the legs are resolved).
    pub legs: u32,
}

/// `log`: where the mirror's dirty-region log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MirrorLogKind {
    /// In memory (`core`): every activation resynchronises.
    #[default]
    Core,
}

pub(crate) const DEFAULT_REGION_SIZE: u64 = 512 * 1024;
const REGION_SIZE_RANGE: (u64, u64) = (4096, 16 << 20);

/// The `[[map]]` keys only a multipath map has.
pub(crate) const MULTIPATH_ONLY_KEYS: &[&str] = &["selector", "queue_if_no_path", "groups"];

/// A map's kind as decoded, with the positions the resolver may point at.
pub(crate) struct DraftKind {
    pub kind: MapKind,
    /// Position of `kind`, when written.
    pub kind_at: Option<usize>,
    /// Positions of `log` / `region_size` on a multipath map (refused by the resolver).
    pub mirror_keys_at: Vec<(&'static str, usize)>,
}

/// Decodes `kind`, `log` and `region_size` of one `[[map]]`.
pub(crate) fn decode_map_kind(r: &mut Report, t: &Table, size: Option<u64>) -> DraftKind {
    #[derive(Clone, Copy)]
    enum K {
        Multipath,
        Mirror,
    }
    let kind = t
        .choice(
            r,
            "kind",
            &[("multipath", K::Multipath), ("mirror", K::Mirror)],
        )
        .or(K::Multipath);
    let log = t
        .choice(r, "log", &[("core", MirrorLogKind::Core)])
        .or(MirrorLogKind::Core);
    let region_size = match t.size(r, "region_size") {
        Got::Ok(Sp { val, pos }) => {
            let (min, max) = REGION_SIZE_RANGE;
            if !val.is_power_of_two() || !(min..=max).contains(&val) {
                r.error(
                    pos,
                    format!("region_size {} is not allowed", crate::format_size(val)),
                    "give a power of two from 4KiB to 16MiB, e.g. `region_size = \"512KiB\"`",
                );
                DEFAULT_REGION_SIZE
            } else if size.is_some_and(|s| val > s) {
                r.error(
                    pos,
                    format!(
                        "region_size {} is larger than the map",
                        crate::format_size(val)
                    ),
                    "give a region size at most the map's size",
                );
                DEFAULT_REGION_SIZE
            } else {
                val
            }
        }
        _ => DEFAULT_REGION_SIZE.min(size.unwrap_or(DEFAULT_REGION_SIZE)),
    };
    let mirror_keys_at = ["log", "region_size"]
        .into_iter()
        .filter_map(|k| t.key_pos(k).map(|p| (k, p)))
        .collect();
    DraftKind {
        kind: match kind {
            K::Multipath => MapKind::Multipath,
            K::Mirror => MapKind::Mirror(MirrorMapSpec {
                log,
                region_size_bytes: region_size,
                legs: 0,
            }),
        },
        kind_at: t.key_pos("kind"),
        mirror_keys_at,
    }
}

const SECTION_KEYS: &[&str] = &[
    "on_dead",
    "dead_window",
    "dead_max_out_of_sync_percent",
    "dead_then",
    "dead_probe_interval",
    "on_sync_failure",
    "sync_retry_attempts",
    "sync_retry_backoff",
    "on_read_failure",
    "scan",
    "scan_slice_regions",
    "scan_interval",
    "scan_on_differ",
];

/// The `[mirror]` section as decoded, with key positions for validation messages.
#[derive(Default)]
pub(crate) struct DraftMirror {
    pub section: MirrorSection,
    /// Position of the `[mirror]` table, when written.
    pub pos: Option<usize>,
    /// Key positions of the defaults.
    pub default_keys: HashMap<&'static str, usize>,
    /// Per override: its map name (at the table's position) and its key positions.
    pub maps: Vec<(Sp<String>, HashMap<&'static str, usize>)>,
}

/// Decodes `[mirror]` and its `[mirror.map.<name>]` tables (names are checked by
/// [`check`]).
pub(crate) fn decode_section(r: &mut Report, top: &Table) -> DraftMirror {
    let Some(t) = top.table(r, "mirror", "[mirror]") else {
        return DraftMirror::default();
    };
    let mut valid = SECTION_KEYS.to_vec();
    valid.push("map");
    t.reject_unknown(r, &valid, |_| None);
    let mut draft = DraftMirror {
        pos: Some(t_pos(&t)),
        ..DraftMirror::default()
    };
    let defaults = MirrorSettings::default();
    let (o, keys) = decode_settings(r, &t, &defaults);
    draft.section.defaults = apply(defaults, &o);
    draft.default_keys = keys;
    if let Some(maps) = t.table(r, "map", "[mirror.map]") {
        for (name, v) in maps.entries() {
            let toml::de::DeValue::Table(inner) = v.get_ref() else {
                r.error(
                    name.pos,
                    format!("`mirror.map.{}` must be a table", name.val),
                    format!(
                        "write the overrides of map \"{}\" as a [mirror.map.{}] table",
                        name.val, name.val
                    ),
                );
                continue;
            };
            let mt = Table::new("[mirror.map.<name>]", v.span().start, inner);
            mt.reject_unknown(r, SECTION_KEYS, |_| None);
            let (o, keys) = decode_settings(r, &mt, &draft.section.defaults);
            draft.section.maps.insert(name.val.to_string(), o);
            draft
                .maps
                .push((Sp::new(name.val.to_string(), name.pos), keys));
        }
    }
    draft
}

fn t_pos(t: &Table) -> usize {
    t.entries().first().map_or(0, |(k, _)| k.pos)
}

fn apply(mut s: MirrorSettings, o: &MirrorOverrides) -> MirrorSettings {
    if let Some(v) = o.on_dead {
        s.on_dead = v;
    }
    if let Some(v) = o.on_sync_failure {
        s.on_sync_failure = v;
    }
    if let Some(v) = o.on_read_failure {
        s.on_read_failure = v;
    }
    if let Some(v) = o.scan {
        s.scan = v;
    }
    s
}

fn keys_of(t: &Table) -> HashMap<&'static str, usize> {
    SECTION_KEYS
        .iter()
        .filter_map(|k| t.key_pos(k).map(|p| (*k, p)))
        .collect()
}

/// The settings one table gives, over `base` (the defaults for an override, the built-in
/// defaults for `[mirror]`). Keys that only apply to a policy the table does not select are
/// refused with the key that selects it.
fn decode_settings(
    r: &mut Report,
    t: &Table,
    base: &MirrorSettings,
) -> (MirrorOverrides, HashMap<&'static str, usize>) {
    let keys = keys_of(t);
    let mut o = MirrorOverrides::default();

    // on_dead and its dead_* keys.
    #[derive(Clone, Copy)]
    enum D {
        Remove,
        Wait,
    }
    let on_dead = t.choice(r, "on_dead", &[("remove", D::Remove), ("wait", D::Wait)]);
    let dead_keys = [
        "dead_window",
        "dead_max_out_of_sync_percent",
        "dead_then",
        "dead_probe_interval",
    ];
    let mut dead = match on_dead {
        Got::Ok(Sp { val: D::Remove, .. }) => Some(DeadPolicy::Remove),
        Got::Ok(Sp { val: D::Wait, .. }) => Some(match base.on_dead {
            w @ DeadPolicy::Wait { .. } => w,
            DeadPolicy::Remove => DeadPolicy::wait_default(),
        }),
        _ => None,
    };
    let dead_given = dead_keys.iter().any(|k| keys.contains_key(k));
    if dead_given {
        let mut policy = dead.unwrap_or(base.on_dead);
        match &mut policy {
            DeadPolicy::Remove => {
                for k in dead_keys {
                    if let Some(&pos) = keys.get(k) {
                        r.error(
                            pos,
                            format!("`{k}` is set, but on_dead is \"remove\": a dead leg is removed at once, so this setting would do nothing"),
                            "set `on_dead = \"wait\"` to wait for a dead leg, or remove this key",
                        );
                    }
                }
            }
            DeadPolicy::Wait {
                window,
                max_out_of_sync_percent,
                then,
                probe_interval,
            } => {
                if let Got::Ok(v) = t.duration(r, "dead_window") {
                    *window = v.val;
                }
                if let Got::Ok(v) = t.int(r, "dead_max_out_of_sync_percent", 0..=255) {
                    *max_out_of_sync_percent = Some(v.val as u8);
                }
                if let Got::Ok(v) = t.choice(
                    r,
                    "dead_then",
                    &[("remove", AfterWindow::Remove), ("keep", AfterWindow::Keep)],
                ) {
                    *then = v.val;
                }
                if let Got::Ok(v) = t.duration(r, "dead_probe_interval") {
                    *probe_interval = v.val;
                }
            }
        }
        dead = Some(policy);
    }
    o.on_dead = dead;

    // on_sync_failure.
    #[derive(Clone, Copy)]
    enum S {
        Remove,
        Retry,
    }
    let mut sync = match t.choice(
        r,
        "on_sync_failure",
        &[("remove", S::Remove), ("retry", S::Retry)],
    ) {
        Got::Ok(Sp { val: S::Remove, .. }) => Some(SyncFailurePolicy::Remove),
        Got::Ok(Sp { val: S::Retry, .. }) => Some(match base.on_sync_failure {
            r @ SyncFailurePolicy::Retry { .. } => r,
            SyncFailurePolicy::Remove => SyncFailurePolicy::retry_default(),
        }),
        _ => None,
    };
    let sync_keys = ["sync_retry_attempts", "sync_retry_backoff"];
    if sync_keys.iter().any(|k| keys.contains_key(k)) {
        let mut policy = sync.unwrap_or(base.on_sync_failure);
        match &mut policy {
            SyncFailurePolicy::Remove => {
                for k in sync_keys {
                    if let Some(&pos) = keys.get(k) {
                        r.error(
                            pos,
                            format!("`{k}` is set, but on_sync_failure is \"remove\": a leg whose resync failed is removed, so this setting would do nothing"),
                            "set `on_sync_failure = \"retry\"` to restart failed resyncs, or remove this key",
                        );
                    }
                }
            }
            SyncFailurePolicy::Retry {
                max_attempts,
                backoff,
            } => {
                if let Got::Ok(v) = t.int(r, "sync_retry_attempts", 0..=u32::MAX as u64) {
                    *max_attempts = v.val as u32;
                }
                if let Got::Ok(v) = t.duration(r, "sync_retry_backoff") {
                    *backoff = v.val;
                }
            }
        }
        sync = Some(policy);
    }
    o.on_sync_failure = sync;

    o.on_read_failure = t
        .choice(
            r,
            "on_read_failure",
            &[
                ("remove", ReadFailurePolicy::Remove),
                ("relocate", ReadFailurePolicy::Relocate),
                ("ignore", ReadFailurePolicy::Ignore),
            ],
        )
        .ok()
        .map(|v| v.val);

    // scan and its scan_* keys.
    let scan_on = t.boolean(r, "scan").ok().map(|v| v.val);
    let scan_keys = ["scan_slice_regions", "scan_interval", "scan_on_differ"];
    let mut scan = scan_on.map(|on| on.then(|| base.scan.unwrap_or_default()));
    if scan_keys.iter().any(|k| keys.contains_key(k)) {
        match scan.unwrap_or(base.scan) {
            None => {
                for k in scan_keys {
                    if let Some(&pos) = keys.get(k) {
                        r.error(
                            pos,
                            format!("`{k}` is set, but the scan is off"),
                            "set `scan = true` to scan the legs, or remove this key",
                        );
                    }
                }
            }
            Some(mut s) => {
                if let Got::Ok(v) = t.int(r, "scan_slice_regions", 0..=u64::MAX) {
                    s.slice_regions = v.val;
                }
                if let Got::Ok(v) = t.duration(r, "scan_interval") {
                    s.interval = v.val;
                }
                if let Got::Ok(v) = t.choice(
                    r,
                    "scan_on_differ",
                    &[
                        ("report", DifferPolicy::Report),
                        ("repair", DifferPolicy::Repair),
                    ],
                ) {
                    s.on_differ = v.val;
                }
                scan = Some(Some(s));
            }
        }
    }
    o.scan = scan;
    (o, keys)
}

/// Cross-checks: overrides name mirror maps; the section's settings are valid (each error at
/// its key); mirror maps have no multipath-only keys and no path manager settings.
/// `maps`: every map's name and kind; `manager_maps`: the `[manager.map.<name>]` tables.
pub(crate) fn check(
    r: &mut Report,
    draft: &DraftMirror,
    maps: &[(&str, MapKind)],
    manager_maps: &[Sp<String>],
) {
    let mirror_names: Vec<&str> = maps
        .iter()
        .filter(|(_, k)| matches!(k, MapKind::Mirror(_)))
        .map(|(n, _)| *n)
        .collect();
    for (name, _) in &draft.maps {
        if !mirror_names.contains(&name.val.as_str()) {
            let what = if maps.iter().any(|(n, _)| *n == name.val) {
                format!("map \"{}\" is a multipath map", name.val)
            } else {
                format!("there is no map \"{}\"", name.val)
            };
            r.error(
                name.pos,
                format!(
                    "[mirror.map.{}] overrides a map that is not a mirror: {what}",
                    name.val
                ),
                if mirror_names.is_empty() {
                    "give the map `kind = \"mirror\"`, or remove this table".to_string()
                } else {
                    format!(
                        "mirror maps are: {}",
                        mirror_names
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            );
        }
    }
    for e in draft.section.validate() {
        let pos = match &e.map {
            None => draft.default_keys.get(e.error.key).copied(),
            Some(m) => draft
                .maps
                .iter()
                .find(|(n, _)| &n.val == m)
                .and_then(|(n, keys)| keys.get(e.error.key).copied().or(Some(n.pos))),
        }
        .or(draft.pos)
        .unwrap_or(0);
        r.error(
            pos,
            format!(
                "{} is out of range (allowed {})",
                match &e.map {
                    None => format!("[mirror] {} = {}", e.error.key, e.error.value),
                    Some(m) => format!("[mirror.map.{m}] {} = {}", e.error.key, e.error.value),
                },
                e.error.allowed
            ),
            &e.error.fix,
        );
    }
    if draft.pos.is_some() && mirror_names.is_empty() {
        r.error(
            draft.pos.unwrap_or(0),
            "[mirror] is set, but no map is a mirror: these settings would do nothing",
            "give a map `kind = \"mirror\"`, or remove [mirror]",
        );
    }
    for m in manager_maps {
        if mirror_names.contains(&m.val.as_str()) {
            r.error(
                m.pos,
                format!(
                    "[manager.map.{}] sets path manager keys for a mirror map: a mirror map has no path manager",
                    m.val
                ),
                format!(
                    "remove [manager.map.{}]; a mirror map's failures are handled by the [mirror] settings (e.g. [mirror.map.{}] on_dead)",
                    m.val, m.val
                ),
            );
        }
    }
}

/// A mirror map's refused multipath keys (`selector`, `queue_if_no_path`, `groups`), or a
/// multipath map's refused mirror keys.
pub(crate) fn check_map_keys(
    r: &mut Report,
    name: &str,
    kind: &DraftKind,
    multipath_keys_at: &[(&'static str, usize)],
    legs: usize,
) {
    match kind.kind {
        MapKind::Mirror(_) => {
            for (k, pos) in multipath_keys_at {
                r.error(
                    *pos,
                    format!("map \"{name}\" is a mirror, but gives `{k}`, a multipath setting"),
                    "a mirror map writes every leg and has no path selector, queueing or groups; remove this key",
                );
            }
            if legs == 1 {
                r.error(
                    kind.kind_at.unwrap_or(0),
                    format!("mirror map \"{name}\" has one leg"),
                    format!(
                        "a mirror needs two or more legs: add a [[leg]] with `map = \"{name}\"`"
                    ),
                );
            }
        }
        MapKind::Multipath => {
            for (k, pos) in &kind.mirror_keys_at {
                r.error(
                    *pos,
                    format!("map \"{name}\" gives `{k}`, but it is a multipath map"),
                    "set `kind = \"mirror\"` for a mirror map, or remove this key",
                );
            }
        }
    }
}
