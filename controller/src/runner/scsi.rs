//! SCSI legs: building pathrig's SCSI array for a scenario (one LUN per map with SCSI legs, one
//! host adapter per `[[hba]]`, one path per SCSI leg), setting the legs' device knobs and the
//! hosts' `eh_deadline`, and recording what the kernel actually took.
//!
//! The array is built once for the whole scenario, because host adapters are shared between
//! maps; it lives in [`Built`] and goes after the maps over its paths.

use std::collections::HashMap;
use std::path::PathBuf;

use faults::{LegId, MapId, Scenario};
use rig::dm::DevNum;
use rig::scsi::{Array, ArrayControl, ArraySpec, HbaSpec, LunSpec, PathSpec, ScsiRule};

use super::{Built, RunError};
use crate::events::{EventKind, EventLog, HostDeadline};

/// A SCSI leg's handle on its path in the array.
#[derive(Clone)]
pub(super) struct ScsiLeg {
    pub control: ArrayControl,
    /// The path's index in the array.
    pub path: usize,
    pub node: PathBuf,
    pub dev: DevNum,
    /// The array's rules for the path in force, with the fault each comes from.
    pub rules: Vec<(faults::FaultId, ScsiRule)>,
    /// Whether the path's port is online.
    pub online: bool,
}

/// The WWID every path of `map`'s LUN reports: unique per scenario and map, so a guest never
/// sees two LUNs with one identity.
fn wwid(scenario: &Scenario, map: &str) -> String {
    format!("{}-{}", scenario.name, map)
}

/// Builds the array behind the scenario's SCSI legs (nothing when it has none), keeps it in
/// `built`, and returns each SCSI leg's handle by leg id.
pub(super) fn build_array(
    scenario: &Scenario,
    files: &HashMap<MapId, PathBuf>,
    built: &mut Built,
    log: &EventLog,
) -> Result<HashMap<LegId, ScsiLeg>, RunError> {
    let scsi_legs: Vec<(LegId, &faults::LegSpec)> = scenario
        .leg_ids()
        .filter(|(_, l)| l.scsi.is_some())
        .collect();
    if scsi_legs.is_empty() {
        return Ok(HashMap::new());
    }
    let mut lun_of_map: HashMap<MapId, usize> = HashMap::new();
    let mut luns = Vec::new();
    for (_, leg) in &scsi_legs {
        lun_of_map.entry(leg.map).or_insert_with(|| {
            let map = scenario.map(leg.map);
            luns.push(LunSpec {
                name: map.name.clone(),
                wwid: wwid(scenario, &map.name),
                backing: files[&leg.map].clone(),
                size_bytes: map.size_bytes,
            });
            luns.len() - 1
        });
    }
    let spec = ArraySpec {
        luns,
        hbas: scenario
            .hbas
            .iter()
            .map(|h| HbaSpec {
                name: h.name.clone(),
            })
            .collect(),
        paths: scsi_legs
            .iter()
            .map(|(_, leg)| {
                let scsi = leg.scsi.expect("filtered");
                PathSpec {
                    name: leg.name.clone(),
                    lun: lun_of_map[&leg.map],
                    hba: scsi.hba.index(),
                    cmd_time_out: None,
                }
            })
            .collect(),
        seed: scenario.seed,
    };
    let run_tag = format!("{}-{}", scenario.name, std::process::id());
    let array = Array::build(&spec, &run_tag)?;
    let control = array.control();
    // Kept at once, so that a failure below still tears it down.
    built.array = Some(array);
    let array = built.array.as_ref().expect("just set");
    for (i, hba) in scenario.hbas.iter().enumerate() {
        let host = array.hba_host(i);
        let deadline = match hba.eh_deadline {
            None => HostDeadline::KernelDefault,
            Some(wanted) => {
                let seconds = match wanted {
                    faults::scsi::EhDeadline::Off => None,
                    faults::scsi::EhDeadline::Seconds(s) => Some(s),
                };
                match rig::scsi::set_eh_deadline(host, seconds)? {
                    rig::scsi::EhDeadline::Set(actual) => HostDeadline::Set {
                        wanted: wanted.to_string(),
                        actual: actual.map_or_else(|| "off".to_string(), |s| format!("{s}s")),
                    },
                    rig::scsi::EhDeadline::UnsupportedByHost => HostDeadline::Unsupported {
                        wanted: wanted.to_string(),
                        detail: "the host has no host-reset handler (EINVAL)".into(),
                    },
                }
            }
        };
        log.record(EventKind::ScsiHost {
            hba: hba.name.clone(),
            host,
            eh_deadline: deadline,
        });
    }
    let mut handles = HashMap::new();
    for (i, (leg_id, leg)) in scsi_legs.iter().enumerate() {
        let path = array.path(i);
        let knobs = leg.scsi.expect("filtered").knobs;
        let actual = rig::scsi::set_device_knobs(
            path,
            knobs.timeout_s,
            knobs.eh_timeout_s,
            knobs.queue_depth,
        )?;
        log.record(EventKind::ScsiPath {
            leg: leg.name.clone(),
            hba: scenario.hbas[leg.scsi.expect("filtered").hba.index()]
                .name
                .clone(),
            node: path.dev_node.display().to_string(),
            dev: path.devnum.to_string(),
            hctl: path.hctl(),
            timeout_s: actual.timeout_s,
            eh_timeout_s: actual.eh_timeout_s,
            queue_depth: actual.queue_depth,
        });
        handles.insert(
            *leg_id,
            ScsiLeg {
                control: control.clone(),
                path: i,
                node: path.dev_node.clone(),
                dev: path.devnum,
                rules: Vec::new(),
                online: true,
            },
        );
    }
    Ok(handles)
}
