//! Second pass: cross-references and timing, then the final [`Scenario`].
//!
//! Owns every rule that relates two parts of the file: unique names, legs to
//! maps, path groups, faults to legs, fault windows against each other and
//! against the workloads' common duration, one workload per map, the guest
//! timeout, expectations naming legs or maps. Fills the defaults that depend on
//! other tables (a leg's map, a workload's map and duration, the default
//! groups, the guest timeout). With the embedded path manager a
//! map's groups and queueing come from its manager settings (resolved in
//! `manager_resolve`). The only maker of [`MapId`], [`LegId`] and [`FaultId`]: each is the
//! position of what it names in the scenario's vectors.

use std::collections::HashMap;
use std::time::Duration;

use crate::decode::{Draft, DraftFault, DraftMap};
use crate::diag::Report;
use crate::ids::{LegId, MapId};
use crate::kinds::{kinds_of, Layer};
use crate::manager::{ManagerKind, ManagerSettings};
use crate::manager_resolve::resolve_manager;
use crate::model::{
    Backend, Expectations, FaultKind, FaultSpec, GuestSpec, LegSpec, MapSpec, Repeat, Scenario,
    WorkloadSpec,
};
use crate::reader::{Got, Sp};
use crate::units::{format_duration, format_size};

const MIB: u64 = 1 << 20;
/// Guest memory kept for the kernel, pathrig and its buffers: never scratch space.
pub const GUEST_RESERVED_MIB: u64 = 96;
use crate::model::SCRATCH_SLACK;

/// How long the guest may run past the workload by default.
const GUEST_GRACE: Duration = Duration::from_secs(60);

fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| format!("\"{n}\"")).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// Reports the second and later uses of a name; returns name -> first index.
fn unique_names<'a>(
    r: &mut Report,
    what: &str,
    names: impl Iterator<Item = Option<&'a Sp<String>>>,
) -> HashMap<&'a str, usize> {
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, name) in names.enumerate() {
        let Some(name) = name else { continue };
        if let Some(&(_, first_pos)) = seen.get(name.val.as_str()) {
            let line = r.line_of(first_pos);
            r.error(
                name.pos,
                format!(
                    "duplicate {what} name \"{}\"",
                    crate::units::shown(&name.val)
                ),
                format!(
                    "the first {what} named \"{}\" is on line {line}; {what} names must be unique",
                    name.val
                ),
            );
        } else {
            seen.insert(&name.val, (i, name.pos));
        }
    }
    seen.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

/// The map a leg or the workload uses: as written, or the only map; its position in `maps`.
fn pick_map(
    r: &mut Report,
    got: &Got<String>,
    maps: &[&str],
    owner: &str,
    owner_pos: usize,
) -> Option<MapId> {
    match got {
        Got::Invalid => None,
        Got::Ok(m) => {
            if let Some(i) = maps.iter().position(|&n| n == m.val) {
                Some(MapId::new(i))
            } else {
                r.error(
                    m.pos,
                    format!("{owner} names map \"{}\", which does not exist", m.val),
                    format!("maps are: {}", quoted_list(maps.iter().copied())),
                );
                None
            }
        }
        Got::Absent => match maps {
            [] => None,
            [_] => Some(MapId::new(0)),
            _ => {
                r.error(
                    owner_pos,
                    format!(
                        "{owner} does not say which map it uses, and there are {} maps",
                        maps.len()
                    ),
                    format!(
                        "add `map = \"{}\"` (one of {})",
                        maps[0],
                        quoted_list(maps.iter().copied())
                    ),
                );
                None
            }
        },
    }
}

pub(crate) fn resolve(r: &mut Report, d: Draft) -> Option<Scenario> {
    // Maps and legs.
    unique_names(r, "map", d.maps.iter().map(|m| m.name.as_ref()));
    let map_names: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for m in d.maps.iter().filter_map(|m| m.name.as_ref()) {
            if !v.contains(&m.val.as_str()) {
                v.push(&m.val);
            }
        }
        v
    };
    let leg_index = unique_names(r, "leg", d.legs.iter().map(|l| l.name.as_ref()));
    let leg_names: Vec<&str> = d
        .legs
        .iter()
        .filter_map(|l| l.name.as_ref().map(|n| n.val.as_str()))
        .collect();
    let scsi_drafts: Vec<_> = d
        .legs
        .iter()
        .map(|l| {
            let name = l.name.as_ref().map(|n| n.val.as_str());
            (name, l.backend == Backend::Scsi, l.pos, &l.scsi)
        })
        .collect();
    let (hbas, leg_scsi) = crate::scsi::resolve(r, &d.hbas, &scsi_drafts);
    let mut legs: Vec<LegSpec> = Vec::new();
    for (leg, scsi) in d.legs.iter().zip(leg_scsi) {
        let owner = match &leg.name {
            Some(n) => format!("leg \"{}\"", n.val),
            None => "this leg".into(),
        };
        let map = pick_map(r, &leg.map, &map_names, &owner, leg.pos);
        if let (Some(name), Some(map)) = (&leg.name, map) {
            let dm_layer = match (&leg.dm_layer, leg.backend) {
                (Got::Ok(written), Backend::Scsi) if written.val => {
                    r.error(
                        written.pos,
                        format!("SCSI leg \"{}\" cannot have a dm layer", name.val),
                        "a SCSI leg's path is its sd device, as on a real host; remove `dm_layer`, and use SCSI fault kinds on it",
                    );
                    false
                }
                (_, Backend::Scsi) => false,
                (Got::Ok(written), _) => written.val,
                _ => true,
            };
            legs.push(LegSpec {
                name: name.val.clone(),
                map,
                prio: leg.prio,
                backend: leg.backend,
                dm_layer,
                scsi,
            });
        }
    }

    // The path manager.
    let manager = resolve_manager(r, &d.manager, &map_names);
    if manager.kind == ManagerKind::None {
        for pos in d.legs.iter().filter_map(|l| l.prio_key) {
            r.error(
                pos,
                "`prio` is set, but [manager] kind = \"none\": no path manager runs, so this setting would do nothing",
                "a leg's prio orders path groups made by the path manager; remove `prio`, or remove `kind = \"none\"`",
            );
        }
    }
    // The map a leg name belongs to, for group checks.
    let map_of: HashMap<&str, &str> = legs
        .iter()
        .map(|l| (l.name.as_str(), map_names[l.map.index()]))
        .collect();
    // Each placed leg's id: its position in `legs` (the first of a duplicated name).
    let mut leg_ids: HashMap<&str, LegId> = HashMap::new();
    for (i, l) in legs.iter().enumerate() {
        leg_ids.entry(l.name.as_str()).or_insert(LegId::new(i));
    }

    let placed = Placed {
        legs: &legs,
        map_of: &map_of,
        leg_ids: &leg_ids,
        map_names: &map_names,
        all_legs: &leg_names,
        all_legs_placed: legs.len() == d.legs.len(),
    };
    let mut maps = Vec::new();
    for m in &d.maps {
        let settings = m.name.as_ref().and_then(|n| manager.settings(&n.val));
        let mirror = matches!(m.kind.kind, crate::mirror::MapKind::Mirror(_));
        let managed = (manager.kind != ManagerKind::None && !mirror)
            .then(|| settings.cloned().unwrap_or_default());
        if let Some(spec) = resolve_map(r, m, &placed, managed.as_ref()) {
            maps.push(spec);
        }
    }

    {
        let kinds: Vec<(&str, crate::mirror::MapKind)> =
            maps.iter().map(|m| (m.name.as_str(), m.kind)).collect();
        let manager_maps: Vec<Sp<String>> = d
            .manager
            .maps
            .iter()
            .filter_map(|m| match &m.target {
                path_manager::lang::decode::Target::Map(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        crate::mirror::check(r, &d.mirror, &kinds, &manager_maps);
    }
    for (leg, draft) in legs.iter().zip(&d.legs) {
        let mirror = maps.get(leg.map.index()).is_some_and(|m| m.is_mirror());
        if mirror && leg.backend == Backend::Scsi {
            r.error(
                draft.pos,
                format!(
                    "leg \"{}\" of mirror map \"{}\" is a SCSI leg; mirror legs are loop devices",
                    leg.name,
                    map_names[leg.map.index()]
                ),
                "remove `backend = \"scsi\"` from the leg, or make the map a multipath map",
            );
        }
    }
    // A mirror map has no path manager.
    let mut manager = manager;
    manager
        .maps
        .retain(|(name, _)| !maps.iter().any(|m| &m.name == name && m.is_mirror()));
    check_scratch_fits(r, &d, &maps);

    // Workloads.
    let workloads = resolve_workloads(r, &d, &map_names);
    let run_length = common_duration(r, &d);

    // Guest.
    if let (Some(t), Some(run)) = (&d.guest.timeout, run_length) {
        if t.val <= run {
            r.error(
                t.pos,
                format!(
                    "guest timeout {} is not longer than the workload ({})",
                    format_duration(t.val),
                    format_duration(run)
                ),
                format!(
                    "make it longer than {}, or leave `timeout` out for the default ({})",
                    format_duration(run),
                    format_duration(run + GUEST_GRACE)
                ),
            );
        }
    }

    // Faults.
    let faults = resolve_faults(r, &d, &placed, &leg_index, run_length);

    // Expectations.
    for (leg, _) in &d.expect.final_path_state {
        if !leg_index.contains_key(leg.val.as_str()) {
            r.error(
                leg.pos,
                format!(
                    "[expect.final_path_state] names leg \"{}\", which does not exist",
                    leg.val
                ),
                format!("legs are: {}", quoted_list(leg_names.iter().copied())),
            );
        }
    }

    let figures = crate::figures::resolve_keys(
        r,
        d.expect.figures.clone(),
        &leg_names,
        &leg_ids,
        &map_names,
    );

    let checks = resolve_checks(r, &d, &map_names, &workloads);

    // Critical IO writers, beside the bulk workloads.
    let facts: Vec<crate::critical::MapFacts<'_>> = d
        .maps
        .iter()
        .filter_map(|m| m.name.as_ref().map(|n| (m, n)))
        .map(|(m, n)| {
            let id = map_names.iter().position(|&x| x == n.val);
            crate::critical::MapFacts {
                name: &n.val,
                size: m.size,
                mirror: matches!(m.kind.kind, crate::mirror::MapKind::Mirror(_)),
                bulk_block_size: workloads
                    .iter()
                    .flatten()
                    .find(|w| Some(w.map.index()) == id)
                    .map(|w| w.block_size),
            }
        })
        .collect();
    let facts_ok = facts.len() == map_names.len();
    let critical = if facts_ok {
        crate::critical::resolve(r, &d.critical, &facts)
    } else {
        Vec::new()
    };
    let critical_checks = crate::critical::resolve_checks(
        r,
        &d.expect.critical,
        &critical,
        &map_names,
        facts_ok && critical.len() == d.critical.len(),
    );

    if r.has_errors() {
        return None;
    }
    let workloads: Vec<WorkloadSpec> = workloads.into_iter().collect::<Option<_>>()?;
    let run_length = run_length?;
    // Every workload runs as long as the first one that gives a duration.
    let workloads: Vec<WorkloadSpec> = workloads
        .into_iter()
        .map(|w| WorkloadSpec {
            duration: run_length,
            ..w
        })
        .collect();
    let final_path_state = d
        .expect
        .final_path_state
        .iter()
        .filter_map(|(leg, state)| Some((*leg_ids.get(leg.val.as_str())?, *state)))
        .collect();
    drop(leg_ids);
    Some(Scenario {
        name: d.name?.val,
        description: d.description,
        seed: d.seed,
        guest: GuestSpec {
            memory_mib: d.guest.memory_mib,
            timeout: d.guest.timeout.map_or(run_length + GUEST_GRACE, |t| t.val),
            scratch_mib: d.guest.scratch_mib.map(|m| m.val as u32),
        },
        maps,
        legs,
        hbas,
        faults,
        workloads,
        manager,
        mirror: d.mirror.section,
        critical,
        expect: Expectations {
            checks,
            figures,
            final_path_state,
            critical: critical_checks,
        },
    })
}

/// Each workload's map (as written, or the only map; at most one workload per map) and the
/// block size against the map's size. `None` for a workload that did not resolve (reported);
/// the duration is filled in by the caller from [`common_duration`].
fn resolve_workloads(r: &mut Report, d: &Draft, map_names: &[&str]) -> Vec<Option<WorkloadSpec>> {
    // The first workload's position on each map.
    let mut taken: HashMap<MapId, usize> = HashMap::new();
    let mut out = Vec::new();
    for w in &d.workloads {
        let map = pick_map(r, &w.map, map_names, w.header, w.pos);
        let map = map.filter(|&id| {
            let pos = match &w.map {
                Got::Ok(m) => m.pos,
                _ => w.pos,
            };
            match taken.get(&id) {
                Some(&first) => {
                    let line = r.line_of(first);
                    let free: Vec<&str> = map_names
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !taken.contains_key(&MapId::new(*i)))
                        .map(|(_, n)| *n)
                        .collect();
                    r.error(
                        pos,
                        format!(
                            "map \"{}\" already has a workload (the [[workload]] on line {line})",
                            map_names[id.index()]
                        ),
                        format!(
                            "each map runs at most one workload: merge the two, or point this one at a map without a workload ({})",
                            quoted_list(free.iter().copied())
                        ),
                    );
                    false
                }
                None => {
                    taken.insert(id, w.pos);
                    true
                }
            }
        });
        if let (Some(id), Some(bs)) = (map, &w.block_size) {
            let map = map_names[id.index()];
            let size = d
                .maps
                .iter()
                .find(|m| m.name.as_ref().is_some_and(|n| n.val == map))
                .and_then(|m| m.size);
            if let Some(size) = size {
                if size % u64::from(bs.val) != 0 {
                    r.error(
                        bs.pos,
                        format!(
                            "block size {} does not divide the size of map \"{map}\" ({})",
                            format_size(bs.val.into()),
                            format_size(size)
                        ),
                        "use a power of two that divides the map size, e.g. \"4KiB\"",
                    );
                }
            }
        }
        out.push(map.map(|map| WorkloadSpec {
            map,
            // Filled in by the caller: every workload runs as long as the common duration.
            duration: Duration::ZERO,
            read_percent: w.read_percent,
            engine: w.engine,
            block_size: w.block_size.as_ref().map_or(4096, |b| b.val),
            queue_depth: w.queue_depth,
            rate_iops: w.rate_iops,
            pattern: w.pattern,
            verify: w.verify,
            stall_threshold: w.stall_threshold,
        }));
    }
    out
}

/// How long the workloads run: every workload starts at clock zero and they all run for the
/// same time, so the fault timeline has one reference. `[[workload]]` tables may leave
/// `duration` out, but at least one gives it and every one given agrees with the first.
/// `None` when no valid duration is written (reported unless the bad value was reported).
fn common_duration(r: &mut Report, d: &Draft) -> Option<Duration> {
    let first = d.workloads.iter().find_map(|w| w.duration.as_ref())?;
    for w in &d.workloads {
        let Some(other) = &w.duration else { continue };
        if other.val != first.val {
            let line = r.line_of(first.pos);
            r.error(
                other.pos,
                format!(
                    "this workload runs for {}, but the one on line {line} runs for {}",
                    format_duration(other.val),
                    format_duration(first.val)
                ),
                format!(
                    "all workloads start together and run for the same time: write `duration = \"{}\"` here, or leave `duration` out of every [[workload]] but one",
                    format_duration(first.val)
                ),
            );
        }
    }
    Some(first.val)
}

/// The `[expect]` checks with their maps: a keyed metric (`max_latency_ms.m2`) names a map
/// that exists and, unless it is `kernel_path_failures` (about the map's paths), has a
/// workload.
fn resolve_checks(
    r: &mut Report,
    d: &Draft,
    map_names: &[&str],
    workloads: &[Option<WorkloadSpec>],
) -> Vec<crate::model::Check> {
    let with_workload: Vec<&str> = workloads
        .iter()
        .flatten()
        .map(|w| map_names[w.map.index()])
        .collect();
    let mut out = Vec::new();
    for (check, map) in &d.expect.checks {
        let Some(map) = map else {
            out.push(*check);
            continue;
        };
        let metric = check.metric;
        let Some(index) = map_names.iter().position(|&n| n == map.val) else {
            r.error(
                map.pos,
                format!(
                    "[expect] `{metric}.{}` names map \"{}\", which does not exist",
                    map.val, map.val
                ),
                format!("maps are: {}", quoted_list(map_names.iter().copied())),
            );
            continue;
        };
        let id = MapId::new(index);
        let needs_workload = metric != crate::model::Metric::KernelPathFailures;
        let all_resolved = workloads.iter().all(Option::is_some);
        if needs_workload && all_resolved && !with_workload.contains(&map.val.as_str()) {
            r.error(
                map.pos,
                format!(
                    "[expect] `{metric}.{}`: map \"{}\" runs no workload, so there is nothing to measure",
                    map.val, map.val
                ),
                format!(
                    "workloads run on {}; add a [[workload]] with `map = \"{}\"`, or name one of those maps",
                    quoted_list(with_workload.iter().copied()),
                    map.val
                ),
            );
            continue;
        }
        out.push(crate::model::Check {
            map: Some(id),
            ..*check
        });
    }
    out
}

/// Whether the maps' backing files fit in the guest's scratch tmpfs, which lives in the guest's
/// memory: every block the workload writes takes memory, so a full map needs its size, and the
/// kernel, pathrig and its buffers need [`GUEST_RESERVED_MIB`] besides. An error at
/// `memory_mib` (or, when it is not written, at the biggest map's size) otherwise.
fn check_scratch_fits(r: &mut Report, d: &Draft, maps: &[MapSpec]) {
    if maps.len() != d.maps.len() {
        return; // a map did not resolve; that was reported
    }
    let scratch = crate::model::scratch_bytes(maps);
    let memory = u64::from(d.guest.memory_mib) * MIB;
    let room = memory.saturating_sub(GUEST_RESERVED_MIB * MIB + SCRATCH_SLACK);
    if let Some(limit) = &d.guest.scratch_mib {
        // A deliberately small scratch space: it must be smaller than the maps need (or it
        // limits nothing) and fit the guest's memory.
        let limit_bytes = limit.val * MIB;
        if limit_bytes >= scratch {
            r.error(
                limit.pos,
                format!(
                    "`scratch_mib = {}` is no smaller than what the maps' backing files need \
                     ({}), so it would limit nothing",
                    limit.val,
                    format_size(scratch)
                ),
                format!(
                    "leave `scratch_mib` out, or set it below {}",
                    scratch.div_ceil(MIB)
                ),
            );
        } else if limit_bytes > memory.saturating_sub(GUEST_RESERVED_MIB * MIB) {
            r.error(
                limit.pos,
                format!(
                    "`scratch_mib = {}` does not fit a guest of {} MiB ({GUEST_RESERVED_MIB} MiB \
                     go to the kernel and pathrig)",
                    limit.val, d.guest.memory_mib
                ),
                format!(
                    "set `memory_mib = {}` (or more) in [guest], or a smaller `scratch_mib`",
                    (limit.val + GUEST_RESERVED_MIB).max(128)
                ),
            );
        }
        return;
    }
    let total = scratch - SCRATCH_SLACK;
    if total <= room {
        return;
    }
    let biggest = d
        .maps
        .iter()
        .max_by_key(|m| m.size.unwrap_or(0))
        .expect("at least one map");
    let pos = d
        .guest
        .memory_at
        .or(biggest.size_at)
        .or(biggest.name.as_ref().map(|n| n.pos))
        .unwrap_or(0);
    let need_mib = (scratch + GUEST_RESERVED_MIB * MIB).div_ceil(MIB).max(128);
    let fix = if need_mib <= 4096 {
        format!(
            "set `memory_mib = {need_mib}` (or more) in [guest], or make the maps at most {} in all",
            format_size(room)
        )
    } else {
        format!(
            "make the maps at most {} in all (`memory_mib` goes up to 4096)",
            format_size(4096 * MIB - GUEST_RESERVED_MIB * MIB - SCRATCH_SLACK)
        )
    };
    r.error(
        pos,
        format!(
            "the maps' backing files take up to {} of the guest's scratch tmpfs (which is guest \
             memory), but a guest of {} MiB has room for {} ({GUEST_RESERVED_MIB} MiB go to the \
             kernel and pathrig, {} to the tmpfs's other files)",
            format_size(total),
            d.guest.memory_mib,
            format_size(room),
            format_size(SCRATCH_SLACK)
        ),
        fix,
    );
}

/// The legs as far as they resolved, for checking a map's groups and the faults' legs.
struct Placed<'a> {
    legs: &'a [LegSpec],
    /// The map of each placed leg.
    map_of: &'a HashMap<&'a str, &'a str>,
    /// The id of each placed leg.
    leg_ids: &'a HashMap<&'a str, LegId>,
    /// Every map name, by [`MapId`].
    map_names: &'a [&'a str],
    /// Every leg name written, placed or not.
    all_legs: &'a [&'a str],
    /// Whether every leg's map could be worked out.
    all_legs_placed: bool,
}

/// `managed`: the map's settings when the embedded path manager runs.
fn resolve_map(
    r: &mut Report,
    m: &DraftMap,
    placed: &Placed,
    managed: Option<&ManagerSettings>,
) -> Option<MapSpec> {
    let Placed {
        legs,
        map_of,
        leg_ids,
        map_names,
        all_legs,
        all_legs_placed,
    } = *placed;
    let name = m.name.as_ref()?;
    let id = map_names
        .iter()
        .position(|&n| n == name.val)
        .map(MapId::new)?;
    let own: Vec<&str> = legs
        .iter()
        .filter(|l| l.map == id)
        .map(|l| l.name.as_str())
        .collect();
    // A leg whose map could not be worked out was reported already; it may
    // have been meant for this map, so only a fully resolved file gets this error.
    if own.is_empty() && all_legs_placed {
        r.error(
            name.pos,
            format!("map \"{}\" has no legs", name.val),
            format!("add a [[leg]] with `map = \"{}\"`", name.val),
        );
    }
    crate::mirror::check_map_keys(r, &name.val, &m.kind, &m.multipath_keys_at, own.len());
    if let crate::mirror::MapKind::Mirror(spec) = m.kind.kind {
        return Some(MapSpec {
            name: name.val.clone(),
            size_bytes: m.size?,
            selector: m.selector,
            queue_if_no_path: false,
            groups: vec![own.iter().filter_map(|l| leg_ids.get(l).copied()).collect()],
            kind: crate::mirror::MapKind::Mirror(crate::mirror::MirrorMapSpec {
                legs: own.len() as u32,
                ..spec
            }),
        });
    }
    if let Some(settings) = managed {
        if let Some(pos) = m.groups_key {
            r.error(
                pos,
                format!("map \"{}\" gives `groups`, but the path manager makes the groups", name.val),
                "with the path manager, groups come from path_grouping_policy; set [manager] kind = \"none\" to give groups by hand",
            );
        }
        if let Some(q) = &m.queue_if_no_path {
            r.error(
                q.pos,
                format!("map \"{}\" gives `queue_if_no_path`, but the path manager decides queueing", name.val),
                format!(
                    "with the path manager, queueing comes from no_path_retry: set no_path_retry = \"queue\" (or a number of retries, or \"fail\") in [manager] or [manager.map.{}]; or set [manager] kind = \"none\"",
                    name.val
                ),
            );
        }
        let policy = settings.path_grouping_policy.value;
        let groups = policy.groups(
            legs.iter()
                .enumerate()
                .filter(|(_, l)| l.map == id)
                .map(|(i, l)| (LegId::new(i), l.prio)),
        );
        return Some(MapSpec {
            name: name.val.clone(),
            size_bytes: m.size?,
            selector: m.selector,
            queue_if_no_path: settings.no_path_retry.value.queue_if_no_path(),
            groups,
            kind: crate::mirror::MapKind::Multipath,
        });
    }
    let groups = match &m.groups {
        None => vec![own.iter().filter_map(|l| leg_ids.get(l).copied()).collect()],
        Some(groups) => {
            let mut placed: HashMap<&str, usize> = HashMap::new();
            for group in &groups.val {
                if group.val.is_empty() {
                    r.error(
                        group.pos,
                        format!("empty path group in map \"{}\"", name.val),
                        format!("every group needs at least one leg of this map ({}); remove the empty group", quoted_list(own.iter().copied())),
                    );
                }
                for leg in &group.val {
                    let l = leg.val.as_str();
                    match map_of.get(l) {
                        None if !all_legs.contains(&l) => r.error(
                            leg.pos,
                            format!(
                                "groups of map \"{}\" name leg \"{l}\", which does not exist",
                                name.val
                            ),
                            format!(
                                "legs of map \"{}\" are: {}",
                                name.val,
                                quoted_list(own.iter().copied())
                            ),
                        ),
                        None => {} // the leg itself is broken; reported there
                        Some(&other) if other != name.val => r.error(
                            leg.pos,
                            format!(
                                "leg \"{l}\" belongs to map \"{other}\", not \"{}\"",
                                name.val
                            ),
                            format!(
                                "groups may only name legs of map \"{}\": {}",
                                name.val,
                                quoted_list(own.iter().copied())
                            ),
                        ),
                        Some(_) => {
                            if let Some(first) = placed.insert(l, leg.pos) {
                                let line = r.line_of(first);
                                r.error(
                                    leg.pos,
                                    format!("leg \"{l}\" is in more than one group of map \"{}\"", name.val),
                                    format!("each leg belongs to exactly one group; \"{l}\" is already in a group on line {line}"),
                                );
                            }
                        }
                    }
                }
            }
            for l in &own {
                if !placed.contains_key(l) {
                    r.error(
                        groups.pos,
                        format!("leg \"{l}\" of map \"{}\" is in no group", name.val),
                        format!("add \"{l}\" to one of the groups; every leg of the map must be in exactly one"),
                    );
                }
            }
            groups
                .val
                .iter()
                .map(|g| {
                    g.val
                        .iter()
                        .filter_map(|l| leg_ids.get(l.val.as_str()).copied())
                        .collect()
                })
                .collect()
        }
    };
    Some(MapSpec {
        name: name.val.clone(),
        size_bytes: m.size?,
        selector: m.selector,
        queue_if_no_path: m.queue_if_no_path.as_ref().is_some_and(|q| q.val),
        groups,
        kind: crate::mirror::MapKind::Multipath,
    })
}

/// "a" or "an" before a kind name.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn resolve_faults(
    r: &mut Report,
    d: &Draft,
    placed: &Placed,
    leg_index: &HashMap<&str, usize>,
    run_length: Option<Duration>,
) -> Vec<FaultSpec> {
    let Placed {
        legs,
        leg_ids,
        map_names,
        all_legs: leg_names,
        ..
    } = *placed;
    // Each fault against its leg and the workload.
    for f in &d.faults {
        if let Some(leg) = &f.leg {
            match leg_ids.get(leg.val.as_str()) {
                Some(&id) => {
                    let spec = &legs[id.index()];
                    let map = map_names[spec.map.index()];
                    check_fault_on_leg(r, d, f, spec, map, leg_index);
                }
                None if !leg_index.contains_key(leg.val.as_str()) => r.error(
                    leg.pos,
                    format!("fault on leg \"{}\", which does not exist", leg.val),
                    format!("legs are: {}", quoted_list(leg_names.iter().copied())),
                ),
                None => {} // the leg itself is broken; reported there
            }
        }
        let (Some(at), Some(run)) = (&f.at, run_length) else {
            continue;
        };
        if at.val >= run {
            r.error(
                at.pos,
                format!(
                    "the fault starts at {}, when the workload has already ended ({})",
                    format_duration(at.val),
                    format_duration(run)
                ),
                format!(
                    "`at` must be less than the workload duration ({})",
                    format_duration(run)
                ),
            );
        } else if let Some(w) = &f.window {
            let end = at.val + w.val;
            if end > run {
                r.error(
                    w.pos,
                    format!(
                        "the fault window ends at {}, after the workload ends at {}",
                        format_duration(end),
                        format_duration(run)
                    ),
                    format!(
                        "make `for` at most {} or start the fault earlier",
                        format_duration(run - at.val)
                    ),
                );
            } else if let Some((every, times)) = &f.repeat {
                let last_end = at.val + every.val * (times.val - 1) + w.val;
                if last_end > run {
                    // The most windows that end in time (the first one does).
                    let fit = ((run - end).as_nanos() / every.val.as_nanos()) as u64 + 1;
                    r.error(
                        times.pos,
                        format!(
                            "the last of {} windows ends at {}, after the workload ends at {}",
                            times.val,
                            format_duration(last_end),
                            format_duration(run)
                        ),
                        format!(
                            "every window must end before the workload does: make `times` at most {fit}, `every` shorter, or start the fault earlier"
                        ),
                    );
                }
            }
        }
    }

    check_overlaps(r, d);

    d.faults
        .iter()
        .filter_map(|f| {
            Some(FaultSpec {
                at: f.at.as_ref()?.val,
                duration: f.window.as_ref().map(|w| w.val),
                repeat: f.repeat.as_ref().map(|(every, times)| Repeat {
                    every: every.val,
                    times: times.val,
                }),
                leg: *leg_ids.get(f.leg.as_ref()?.val.as_str())?,
                kind: f.kind.as_ref()?.val.clone(),
                line: f.line,
            })
        })
        .collect()
}

/// A fault's kind against what its leg has (a dm layer, a FUSE backend), and
/// the byte extents of its parameters against the leg's size.
fn check_fault_on_leg(
    r: &mut Report,
    d: &Draft,
    f: &DraftFault,
    leg: &LegSpec,
    map: &str,
    leg_index: &HashMap<&str, usize>,
) {
    let Some(kind) = &f.kind else { return };
    let name = kind.val.name();
    let leg_line = leg_index
        .get(leg.name.as_str())
        .map_or(0, |&i| r.line_of(d.legs[i].pos));
    match kind.val.layer() {
        Layer::Dm if leg.backend == Backend::Scsi => r.error(
            kind.pos,
            format!(
                "{} {name} fault on leg \"{}\", which has no dm layer",
                article(name),
                leg.name
            ),
            format!(
                "a SCSI leg's path is its sd device, with no dm device to swap: use a SCSI fault kind ({}) on leg \"{}\" (line {leg_line})",
                kinds_of(Layer::Scsi),
                leg.name
            ),
        ),
        Layer::Dm if !leg.dm_layer => r.error(
            kind.pos,
            format!(
                "{} {name} fault on leg \"{}\", which has no dm layer",
                article(name),
                leg.name
            ),
            format!(
                "dm fault kinds ({}) act on the leg's dm device: remove `dm_layer = false` from leg \"{}\" (line {leg_line})",
                kinds_of(Layer::Dm),
                leg.name
            ),
        ),
        Layer::Fuse if leg.backend != Backend::Fuse => r.error(
            kind.pos,
            format!(
                "{} {name} fault on leg \"{}\", whose backend is \"{}\"",
                article(name),
                leg.name,
                leg.backend.name()
            ),
            format!(
                "FUSE fault kinds ({}) act in the FUSE file server under a leg: set `backend = \"fuse\"` on leg \"{}\" (line {leg_line})",
                kinds_of(Layer::Fuse),
                leg.name
            ),
        ),
        Layer::Scsi if leg.backend != Backend::Scsi => r.error(
            kind.pos,
            format!(
                "{} {name} fault on leg \"{}\", whose backend is \"{}\"",
                article(name),
                leg.name,
                leg.backend.name()
            ),
            format!(
                "SCSI fault kinds ({}) act in pathrig's SCSI array: set `backend = \"scsi\"` and `hba = ...` on leg \"{}\" (line {leg_line})",
                kinds_of(Layer::Scsi),
                leg.name
            ),
        ),
        Layer::Leg
            if kind.val == FaultKind::Restore
                && !leg.dm_layer
                && leg.backend == Backend::Loop =>
        {
            r.error(
                kind.pos,
                format!(
                    "a restore on leg \"{}\", which has neither a dm layer nor a FUSE or SCSI backend: there is nothing to restore",
                    leg.name
                ),
                format!(
                    "remove this fault; faults that a restore ends need a dm layer, `backend = \"fuse\"` or `backend = \"scsi\"` on leg \"{}\" (line {leg_line})",
                    leg.name
                ),
            )
        }
        _ => {}
    }
    let Some(size) = d
        .maps
        .iter()
        .find(|m| m.name.as_ref().is_some_and(|n| n.val == map))
        .and_then(|m| m.size)
    else {
        return;
    };
    let mut reported = false;
    for e in f.extents.iter().filter(|e| e.end > size) {
        if reported && e.block_size.is_some() {
            continue; // the block size itself does not fit
        }
        reported = true;
        let help = match e.block_size {
            Some(bs) => format!(
                "map \"{}\" is {}: its blocks of {bs} bytes are numbered 0 to {}",
                map,
                format_size(size),
                (size / bs).saturating_sub(1)
            ),
            None => format!(
                "keep it inside the device: map \"{}\" is {}",
                map,
                format_size(size)
            ),
        };
        r.error(
            e.pos,
            format!("{} reaches past the end of leg \"{}\"", e.what, leg.name),
            help,
        );
    }
}

/// One window (or instant) of a fault on the timeline.
struct Occurrence {
    start: Duration,
    /// End of the `for` window; `None` for a fault that lasts until the next one.
    end: Option<Duration>,
    fault: usize,
    repetition: u32,
    layer: Layer,
    restore: bool,
}

/// Faults on the same leg against each other, in time order. dm kinds,
/// `restore` and `kernel_fail` may not overlap one another; FUSE kinds may
/// overlap each other and dm kinds (they compose), but a `restore` may not
/// fall inside a FUSE fault's window (it would end it early).
fn check_overlaps(r: &mut Report, d: &Draft) {
    let mut by_leg: Vec<(&str, Vec<Occurrence>)> = Vec::new();
    for (i, f) in d.faults.iter().enumerate() {
        let (Some(leg), Some(at), Some(kind)) = (&f.leg, &f.at, &f.kind) else {
            continue;
        };
        let (every, times) = f
            .repeat
            .as_ref()
            .map_or((Duration::ZERO, 1), |(e, t)| (e.val, t.val));
        let slot = match by_leg.iter().position(|(l, _)| *l == leg.val) {
            Some(p) => p,
            None => {
                by_leg.push((leg.val.as_str(), Vec::new()));
                by_leg.len() - 1
            }
        };
        for repetition in 0..times {
            let start = at.val + every * repetition;
            by_leg[slot].1.push(Occurrence {
                start,
                end: f.window.as_ref().map(|w| start + w.val),
                fault: i,
                repetition,
                layer: kind.val.layer(),
                restore: kind.val == FaultKind::Restore,
            });
        }
    }
    for (leg, mut occurrences) in by_leg {
        occurrences.sort_by_key(|o| (o.start, o.fault, o.repetition));
        // The latest-ending `for` window so far among the exclusive kinds, and among FUSE kinds.
        let mut window: Option<(Duration, usize)> = None;
        let mut fuse_window: Option<(Duration, usize)> = None;
        let mut prev: Option<&Occurrence> = None;
        let mut prev_fuse: Option<&Occurrence> = None;
        for o in &occurrences {
            let exclusive = !o.layer.composes();
            let f = &d.faults[o.fault];
            let pos = if o.repetition == 0 {
                f.at.as_ref().map_or(f.pos, |a| a.pos)
            } else {
                f.repeat.as_ref().map_or(f.pos, |(e, _)| e.pos)
            };
            let this = if o.repetition == 0 {
                format!("the fault at {}", format_duration(o.start))
            } else {
                format!(
                    "window {} of {} of this fault (at {})",
                    o.repetition + 1,
                    f.repeat.as_ref().map_or(1, |(_, t)| t.val),
                    format_duration(o.start)
                )
            };
            let same_instant = if exclusive {
                prev.filter(|p| p.start == o.start)
                    .or(prev_fuse.filter(|p| o.restore && p.start == o.start))
            } else {
                prev.filter(|p| p.restore && p.start == o.start)
            };
            let inside = if exclusive {
                window
                    .filter(|(end, _)| o.start < *end)
                    .or(fuse_window.filter(|(end, _)| o.restore && o.start < *end))
            } else {
                None
            };
            if let Some(p) = same_instant {
                r.error(
                    pos,
                    format!(
                        "two faults on leg \"{leg}\" start at the same time ({}); the other is on line {}",
                        format_duration(o.start),
                        d.faults[p.fault].line
                    ),
                    "give each fault on a leg its own `at`",
                );
            } else if let Some((end, w)) = inside {
                r.error(
                    pos,
                    format!(
                        "{this} on leg \"{leg}\" overlaps the fault on line {}, whose window lasts until {}",
                        d.faults[w].line,
                        format_duration(end)
                    ),
                    if o.restore && d.faults[w].kind.as_ref().is_some_and(|k| k.val.layer().composes()) {
                        format!(
                            "a restore ends every fault on the leg: restore at {} or later, or shorten the earlier fault's `for`",
                            format_duration(end)
                        )
                    } else {
                        format!(
                            "start this fault at {} or later, or shorten the earlier fault's `for`",
                            format_duration(end)
                        )
                    },
                );
            }
            if let Some(end) = o.end {
                let slot = if exclusive {
                    &mut window
                } else {
                    &mut fuse_window
                };
                if slot.is_none_or(|(e, _)| end > e) {
                    *slot = Some((end, o.fault));
                }
            }
            if exclusive {
                prev = Some(o);
            } else {
                prev_fuse = Some(o);
            }
        }
    }
}
