//! SCSI legs: building pathrig's SCSI array for a scenario (one LUN per map with SCSI legs, one
//! host adapter per `[[hba]]`, one path per SCSI leg), setting the legs' device knobs and the
//! hosts' `eh_deadline`, and recording what the kernel actually took.
//!
//! The array is built once for the whole scenario, because host adapters are shared between
//! maps; it lives in [`Built`] and goes after the maps over its paths.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use faults::{LegId, MapId, Scenario};
use rig::dm::DevNum;
use rig::scsi::{Array, ArrayControl, ArraySpec, HbaSpec, LunSpec, PathSpec, ScsiRule};
use rig::scsi_watch::{
    Counter, Hctl, MonoClock, ScsiEvent, ScsiEventKind, ScsiWatch, Subject, WatchSpec,
};

use super::{Built, RunError};
use crate::events::{EventKind, EventLog, HostDeadline};
use crate::report::scsi::{EhEpisodeReport, EpisodeEnd, HostReport, ScsiPathReport, ScsiReport};

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
    /// The device's knobs as the kernel read them back once they were set.
    pub knobs: rig::scsi::DeviceKnobs,
}

/// The WWID every path of `map`'s LUN reports: an NAA IEEE Registered Extended identifier
/// (`naa.6…`, 32 hex digits, as real arrays give), unique per scenario and map, so a guest
/// never sees two LUNs with one identity and udev's `ID_SERIAL` is `36…` without spaces.
fn wwid(scenario: &Scenario, map: &str) -> String {
    // FNV-1a over the names, twice with different offsets: 128 bits, of which 124 are used.
    let hash = |offset: u64| {
        format!("{}\0{map}", scenario.name)
            .bytes()
            .fold(offset, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
    };
    let (high, low) = (hash(0xcbf2_9ce4_8422_2325), hash(0x6c62_272e_07bb_0142));
    format!("naa.6{:015x}{:016x}", high >> 4, low)
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
                alua: None,
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
                    port_group: None,
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
    let mut deadlines = Vec::new();
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
        deadlines.push(deadline.clone());
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
                knobs: actual,
            },
        );
    }
    built.scsi_hosts = deadlines;
    Ok(handles)
}

/// The SCSI layer's watcher for a run, with the instant its clock counts from.
pub(super) struct Watch {
    watch: ScsiWatch,
    zero: Instant,
}

/// The sysfs poll interval: a host's state change is seen at most this late (kernel log lines
/// carry their own time).
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Starts watching the array's hosts and devices (nothing without SCSI legs).
pub(super) fn start_watch(built: &mut Built) -> Result<(), RunError> {
    let Some(array) = &built.array else {
        return Ok(());
    };
    let mut hosts: Vec<u32> = array.paths().iter().map(|p| p.host).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let devices = array
        .paths()
        .iter()
        .map(|p| Hctl {
            host: p.host,
            channel: p.channel,
            target: p.target,
            lun: u64::from(p.lun),
        })
        .collect();
    let zero = Instant::now();
    let (clock, _) = MonoClock::for_instant(zero);
    let watch = ScsiWatch::start(WatchSpec {
        hosts,
        devices,
        interval: WATCH_INTERVAL,
        clock,
    })?;
    built.scsi_watch = Some(Watch { watch, zero });
    Ok(())
}

/// Whether an event of the SCSI layer goes into the event stream: every one but the counters
/// of IOs requested and done, which move with every IO.
fn worth_keeping(kind: &ScsiEventKind) -> bool {
    !matches!(
        kind,
        ScsiEventKind::Counter {
            counter: Counter::Done | Counter::Requests,
            ..
        }
    )
}

/// Stops the watcher, puts what it saw into the event log (named by hba and leg), and sums the
/// SCSI layer up for the report: error-handling episodes per host, each path's final state
/// and the array's counts. `None` without SCSI legs.
pub(super) fn finish(scenario: &Scenario, built: &mut Built, log: &EventLog) -> Option<ScsiReport> {
    let array = built.array.as_ref()?;
    let (events, zero) = match built.scsi_watch.take() {
        Some(w) => (w.watch.stop().events, w.zero),
        None => (Vec::new(), Instant::now()),
    };
    let events: Vec<(f64, ScsiEvent)> = events
        .into_iter()
        .map(|e| (log.clock().since_origin(zero + e.at), e))
        .collect();
    let scsi_legs: Vec<&faults::LegSpec> =
        scenario.legs.iter().filter(|l| l.scsi.is_some()).collect();
    let hba_of_host = |host: u32| -> String {
        scenario
            .hbas
            .iter()
            .enumerate()
            .find(|(i, _)| array.hba_host(*i) == host)
            .map_or_else(|| format!("host{host}"), |(_, h)| h.name.clone())
    };
    let leg_of = |hctl: &Hctl| -> Option<String> {
        array
            .paths()
            .iter()
            .zip(&scsi_legs)
            .find(|(p, _)| {
                (p.host, p.channel, p.target, u64::from(p.lun))
                    == (hctl.host, hctl.channel, hctl.target, hctl.lun)
            })
            .map(|(_, l)| l.name.clone())
    };
    let mut timeouts: HashMap<String, u64> = HashMap::new();
    // The kernel logs "Device offlined" once per command it fails with the device; the
    // stream keeps the first per device.
    let mut offlined: Vec<Subject> = Vec::new();
    for (t_ms, e) in &events {
        if e.kind == ScsiEventKind::DeviceOfflined {
            if offlined.contains(&e.subject) {
                continue;
            }
            offlined.push(e.subject);
        }
        let leg = match e.subject {
            Subject::Device(hctl) => leg_of(&hctl),
            Subject::Host(_) => None,
        };
        if let (
            Some(leg),
            ScsiEventKind::Counter {
                counter: Counter::Timeouts,
                from,
                to,
            },
        ) = (&leg, &e.kind)
        {
            *timeouts.entry(leg.clone()).or_default() += to.saturating_sub(*from);
        }
        if worth_keeping(&e.kind) {
            log.record_at(
                *t_ms,
                EventKind::Scsi {
                    hba: hba_of_host(e.subject.host()),
                    leg,
                    scsi: e.kind.clone(),
                    line: e.line.clone(),
                },
            );
        }
    }
    let watched: Vec<ScsiEvent> = events.iter().map(|(_, e)| e.clone()).collect();
    let end_ms = log.clock().now_ms();
    let to_ms = |at: Duration| log.clock().since_origin(zero + at);
    let episodes = rig::scsi_watch::eh_episodes(&watched);
    let hosts = scenario
        .hbas
        .iter()
        .enumerate()
        .map(|(i, hba)| {
            let host = array.hba_host(i);
            let episodes: Vec<EhEpisodeReport> = episodes
                .iter()
                .filter(|e| e.host == host)
                .map(|e| {
                    let start_ms = to_ms(e.start);
                    let end = e.end.map(to_ms);
                    EhEpisodeReport {
                        start_ms,
                        end_ms: end,
                        length_ms: end.map(|end| end - start_ms),
                        entered: e.entered.clone(),
                        ended_by: match &e.ended_by {
                            rig::scsi_watch::EpisodeEnd::Running => EpisodeEnd::Running,
                            rig::scsi_watch::EpisodeEnd::DeviceOfflined(hctl) => {
                                EpisodeEnd::DeviceOfflined {
                                    leg: leg_of(hctl).unwrap_or_else(|| hctl.to_string()),
                                }
                            }
                            rig::scsi_watch::EpisodeEnd::Open => EpisodeEnd::Open,
                        },
                    }
                })
                .collect();
            let eh_total_ms = episodes
                .iter()
                .map(|e| e.end_ms.unwrap_or(end_ms) - e.start_ms)
                .sum();
            HostReport {
                hba: hba.name.clone(),
                host,
                eh_deadline: built
                    .scsi_hosts
                    .get(i)
                    .cloned()
                    .unwrap_or(HostDeadline::KernelDefault),
                episodes,
                eh_total_ms,
            }
        })
        .collect();
    let control = array.control();
    for (i, leg) in scsi_legs.iter().enumerate() {
        for e in control.log(i) {
            log.record_at(
                log.clock().since_origin(e.at),
                EventKind::ArrayAction {
                    leg: leg.name.clone(),
                    opcode: e.opcode,
                    cmd_id: e.cmd_id,
                    action: e.kind,
                },
            );
        }
    }
    let paths = array
        .paths()
        .iter()
        .zip(&scsi_legs)
        .enumerate()
        .map(|(i, (path, leg))| {
            // The knobs as read back when they were set (nothing changes them during a run).
            let knobs = built
                .legs
                .iter()
                .filter_map(|l| l.scsi.as_ref())
                .find(|s| s.path == i)
                .map(|s| s.knobs)
                .expect("every path of the array is a built SCSI leg");
            ScsiPathReport {
                leg: leg.name.clone(),
                hba: scenario.hbas[leg.scsi.expect("a SCSI leg").hba.index()]
                    .name
                    .clone(),
                node: path.dev_node.display().to_string(),
                hctl: path.hctl(),
                timeout_s: knobs.timeout_s,
                eh_timeout_s: knobs.eh_timeout_s,
                queue_depth: knobs.queue_depth,
                final_state: rig::scsi::device_state(path).unwrap_or_else(|e| e.to_string()),
                command_timeouts: timeouts.get(&leg.name).copied().unwrap_or(0),
                array: control.counts(i),
            }
        })
        .collect();
    Some(ScsiReport { hosts, paths })
}

#[cfg(test)]
mod tests {
    #[test]
    fn wwids_are_naa_6_and_differ_by_map() {
        let scenario = faults::parse(
            std::path::Path::new("t.toml"),
            "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[workload]\nduration = \"1s\"\n",
        )
        .unwrap();
        let a = super::wwid(&scenario, "m1");
        let b = super::wwid(&scenario, "m2");
        assert_ne!(a, b);
        for w in [&a, &b] {
            assert!(w.starts_with("naa.6") && w.len() == 36, "{w}");
            assert!(w[4..].chars().all(|c| c.is_ascii_hexdigit()), "{w}");
        }
        assert_eq!(
            a,
            super::wwid(&scenario, "m1"),
            "the same names give the same WWID"
        );
    }
}
