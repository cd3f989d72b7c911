//! `[manager] kind = "multipathd"`: the real multipathd builds the maps over the legs the
//! runner built. This starts it (rig's multipathd [`Stack`]: overlays, udevd, multipathd), with
//! a conf from the scenario's effective settings in which each map is a `multipaths` entry with
//! its paths' WWID and the map's dm name as alias, waits for the maps and records them as
//! built maps, read back from the kernel, so the kernel watch and the report work as for maps
//! pathrig builds. The stack is kept in [`Built`] and stopped before the legs go.

use std::time::Duration;

use path_manager::lang::write::{write_multipathd_conf, MapIds};
use rig::dm::{DevNum, MultipathTable};
use rig::guest::{kernel, multipath_tools};
use rig::multipathd::{DaemonSpec, Stack};
use rig::naming;
use rig::RigError;

use super::{selector_of, Built, BuiltMap, MapTable, RunError};
use crate::events::{EventKind, EventLog};
use faults::Scenario;

/// How long udev may take to identify the paths, and multipathd to build every map.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
const MAPS_LIMIT: Duration = Duration::from_secs(30);

/// multipathd's `-v`: 3 logs checker results, failed and reinstated paths.
const VERBOSITY: u8 = 3;

/// Starts multipathd over the built legs and records the maps it builds.
pub(super) fn build_maps(
    scenario: &Scenario,
    built: &mut Built,
    log: &EventLog,
) -> Result<(), RunError> {
    let maps: Vec<_> = scenario.map_ids().collect();
    if let Some((_, mirror)) = maps
        .iter()
        .find(|(_, m)| matches!(m.kind, faults::MapKind::Mirror(_)))
    {
        return Err(RigError::Guest(format!(
            "map {} is a mirror, and multipathd builds multipath maps only: run mirrors with the \
             embedded manager",
            mirror.name
        ))
        .into());
    }
    // multipathd takes SCSI disks only; say so before starting anything.
    for (map_id, map) in &maps {
        for (leg_id, leg) in scenario.legs_of(*map_id) {
            let dev = built.leg(leg_id).dev;
            let scsi = format!(
                "/sys/dev/block/{}:{}/device/scsi_level",
                dev.major, dev.minor
            );
            if !std::path::Path::new(&scsi).exists() {
                return Err(RigError::Guest(format!(
                    "map {}: leg {} ({dev}) is not a SCSI disk, and multipathd takes SCSI paths only \
                     ([manager] kind = \"multipathd\" needs legs of the SCSI array)",
                    map.name, leg.name
                ))
                .into());
            }
        }
    }
    let tools = multipath_tools::find_cached(&kernel::cache_dir()).ok_or_else(|| {
        RigError::Guest(format!(
            "multipath-tools is not in the cache ({}); `pathrig guest prepare` fetches it",
            kernel::cache_dir().display()
        ))
    })?;
    let stack = Stack::start(&tools, log.clock().origin)?;
    // From here on teardown stops it, whatever fails next.
    let stack = built.multipathd.insert(stack);

    let mut ids = Vec::new();
    let mut settings = Vec::new();
    for (map_id, map) in &maps {
        let devs: Vec<DevNum> = scenario
            .legs_of(*map_id)
            .map(|(id, _)| built.legs[built.leg_slots[id.index()]].dev)
            .collect();
        let serials = stack.settle_paths(&devs, SETTLE_LIMIT)?;
        let wwid = serials.first().cloned().unwrap_or_default();
        if let Some(other) = serials.iter().find(|s| **s != wwid) {
            return Err(RigError::Guest(format!(
                "map {}: its legs report different WWIDs ({wwid}, {other}): multipathd would make \
                 them separate maps",
                map.name
            ))
            .into());
        }
        ids.push(MapIds {
            wwid,
            alias: naming::map_name(&map.name),
            path_selector: Some(format!("{} 0", selector_of(map.selector).kernel_name())),
        });
        settings.push((
            map.name.clone(),
            scenario
                .manager
                .settings(&map.name)
                .cloned()
                .unwrap_or_default(),
        ));
    }
    let spec = scenario.manager.multipathd.clone().unwrap_or_default();
    let conf = write_multipathd_conf(&settings, &ids, &spec.passthrough);
    stack.start_multipathd(&DaemonSpec {
        multipathd: spec.binary.clone(),
        verbosity: VERBOSITY,
        conf: conf.text,
    })?;
    let dm_names: Vec<String> = ids.iter().map(|i| i.alias.clone()).collect();
    let devs = stack.wait_for_maps(&built.dm, &dm_names, MAPS_LIMIT)?;

    for (((map_id, map), dm_name), dev) in maps.iter().zip(dm_names).zip(devs) {
        let line = built.dm.table(&dm_name)?.join("\n");
        let table = parse_table(&line).map_err(|e| {
            RigError::Guest(format!("the table multipathd loaded for {dm_name}: {e}"))
        })?;
        // Its groups, in table order, as legs.
        let groups = table
            .groups
            .iter()
            .map(|g| {
                g.paths
                    .iter()
                    .filter_map(|p| {
                        scenario
                            .legs_of(*map_id)
                            .find(|(id, _)| built.leg(*id).dev == p.dev)
                            .map(|(id, _)| id)
                    })
                    .collect()
            })
            .collect();
        log.record(EventKind::MapDevice {
            map: map.name.clone(),
            dm_name: dm_name.clone(),
            dev: dev.to_string(),
            table: line,
        });
        let sectors = built
            .leg(scenario.legs_of(*map_id).next().expect("a map has legs").0)
            .sectors;
        built.maps.push(BuiltMap {
            id: *map_id,
            name: map.name.clone(),
            dm_name,
            dev,
            table: MapTable {
                sectors,
                selector: table
                    .groups
                    .first()
                    .map(|g| g.selector)
                    .unwrap_or(selector_of(map.selector)),
                queue_if_no_path: table.queue_if_no_path(),
                bio_based: false,
            },
            groups,
            mirror: None,
        });
    }
    Ok(())
}

/// `0 16384 multipath PARAMS` → the table.
fn parse_table(line: &str) -> Result<MultipathTable, String> {
    let mut words = line.splitn(4, ' ');
    let (_, _, target, params) = (words.next(), words.next(), words.next(), words.next());
    if target != Some("multipath") {
        return Err(format!("not a multipath table: {line:?}"));
    }
    params
        .unwrap_or_default()
        .parse::<MultipathTable>()
        .map_err(|e| e.to_string())
}
