//! The scenario runner: builds the devices of a validated scenario, runs its workloads (one
//! thread per map with one) while applying the fault timeline at its times, watches the kernel's
//! view of every path through dm events, and assembles the report. It runs wherever
//! device-mapper is: inside the guest (the default) or on the machine itself with `--guest none`.
//!
//! Everything built is held by [`Built`], whose teardown runs on every exit path (error, panic,
//! interrupt), so a run leaves no dm device, loop device or work directory behind.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{FaultId, FaultKind, LegId, MapId, Scenario};
use rig::backing::{self, Loop};
use rig::dm::mpath_status::{KernelPathState, MultipathStatus, PathStatus};
use rig::dm::multipath::Selector;
use rig::dm::{DevNum, Dm, MultipathMessage, Sectors};
use rig::fuse::{FaultRule, FuseControl, FuseServer};
use rig::naming;
use rig::workload::{self, WorkloadConfig, WorkloadEvent, WorkloadReport};

use crate::driver::{BuiltMapInfo, MapTable};
use crate::events::{Clock, EventKind, EventLog, FlushCause, IoDirection, Removed};
use crate::managers::{self, PathManager};
use crate::report::*;
use path_manager::MapView;

// Fault application is a child of the runner so it can act on what the runner built.
mod apply;
// Time-critical IO writers and the usable-path sets they multiplex over.
mod critical;
// Mirror maps: building them and driving the mirror monitor.
mod mirror;
mod multipathd;
mod path_io;
// SCSI legs: the array behind them, their knobs.
mod progress;
mod scsi;

pub use crate::guest::GuestKind;

pub struct RunEnv<'a> {
    pub guest: GuestKind,
    pub kernel_release: String,
    /// Parent of the run's work directory (backing files).
    pub work_root: PathBuf,
    /// Set by a signal handler: abort the run, tear down, report.
    pub interrupted: &'a AtomicBool,
    /// In a guest: time from kernel start to init, and when init started (for the report's
    /// boot-to-ready figures).
    pub boot: Option<(Duration, Instant)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Rig(#[from] rig::RigError),
    #[error("workload: {0}")]
    Workload(std::io::Error),
    #[error("the run was interrupted; everything it built was removed")]
    Interrupted,
    #[error("cleanup failed: {0}")]
    Cleanup(String),
    #[error("injected rig failure at {0} ms ({FAIL_AT_ENV} is set)")]
    Injected(u64),
}

/// Test hook: a scenario time (e.g. `2s`) at which the run fails as if the rig had broken, to
/// prove that a failed run removes everything it built.
pub const FAIL_AT_ENV: &str = "PATHRIG_FAIL_AT";

fn injected_failure_time() -> Option<Duration> {
    let text = std::env::var(FAIL_AT_ENV).ok()?;
    let ms: u64 = text
        .strip_suffix("ms")
        .map(|v| v.parse().ok())
        .unwrap_or_else(|| {
            text.strip_suffix('s')
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| s * 1000)
        })?;
    Some(Duration::from_millis(ms))
}

/// How long after the workload's end queued IO may take before the rig lets it fail.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

struct BuiltLeg {
    id: LegId,
    name: String,
    map: MapId,
    /// The leg's path number in its map: its place among the map's legs, as the path manager
    /// numbers them.
    path: usize,
    /// The leg's dm device; `None` for a leg without a dm layer (its path is the loop device).
    dm_name: Option<String>,
    /// The map's path: the leg's dm device, or its loop device.
    /// The control of the FUSE file server under the leg (`backend = "fuse"`).
    fuse: Option<FuseControl>,
    /// The FUSE rules in force, with the fault each comes from.
    fuse_rules: Vec<(FaultId, FaultRule)>,
    /// The device node the path is opened through (by the manager's checker).
    node: PathBuf,
    dev: DevNum,
    loop_dev: DevNum,
    sectors: Sectors,
    /// The leg's current table: healthy or a fault's.
    fault: Option<FaultKind>,
    /// A SCSI leg's path in the array, with its rules in force.
    scsi: Option<scsi::ScsiLeg>,
}

struct BuiltMap {
    id: MapId,
    name: String,
    dm_name: String,
    dev: DevNum,
    /// What the map's table is made of (its queueing as built).
    table: MapTable,
    /// Legs per group, in table order.
    groups: Vec<Vec<LegId>>,
    /// A mirror map's table as built (`None`: a multipath map).
    mirror: Option<rig::dm::mirror::MirrorTable>,
}

/// Everything a run created, torn down in reverse order exactly once.
struct Built {
    dm: Dm,
    log: EventLog,
    workdir: Option<PathBuf>,
    /// The work directory's ownership marker and lock, held until the directory is removed, so
    /// `pathrig cleanup` never takes a live run's directory.
    workdir_claim: Option<rig::ownership::Claim>,
    loops: Vec<Loop>,
    /// FUSE file servers, unmounted after the loop devices over their files are detached.
    fuse: Vec<FuseServer>,
    /// In the order they were built (map by map).
    legs: Vec<BuiltLeg>,
    /// Where each leg is in `legs`, by [`LegId`] (`usize::MAX` until it is built).
    leg_slots: Vec<usize>,
    /// By [`MapId`]: built in the scenario's map order.
    maps: Vec<BuiltMap>,
    /// pathrig's SCSI array behind the SCSI legs, taken down after the maps over its paths.
    array: Option<rig::scsi::Array>,
    /// The SCSI layer's watcher while the run lasts.
    scsi_watch: Option<scsi::Watch>,
    /// Each `[[hba]]`'s `eh_deadline` as set.
    scsi_hosts: Vec<crate::events::HostDeadline>,
    /// `kind = "multipathd"`: the multipathd that built the maps (it goes first at teardown
    /// and takes its maps with it).
    multipathd: Option<rig::multipathd::Stack>,
    torn_down: bool,
}

impl Built {
    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut failures = Vec::new();
        if let Some(mut stack) = self.multipathd.take() {
            let stopped = stack.stop(Some(&self.dm));
            for name in stopped.maps_removed {
                self.log.record(EventKind::Removed {
                    object: Removed::Map,
                    name,
                });
            }
            failures.extend(stopped.failures);
            // Its maps are gone with it.
            self.maps.clear();
        }
        for map in self.maps.iter().rev() {
            // Queued IO keeps a map busy; let it fail so the map can go.
            if map.table.queue_if_no_path {
                let _ = self.dm.send(&map.dm_name, MultipathMessage::FailIfNoPath);
            }
            match self.dm.remove(&map.dm_name) {
                Ok(()) => self.log.record(EventKind::Removed {
                    object: Removed::Map,
                    name: map.dm_name.clone(),
                }),
                Err(err) => failures.push(err.to_string()),
            }
        }
        if let Some(array) = self.array.take() {
            match array.teardown() {
                Ok(()) => self.log.record(EventKind::Removed {
                    object: Removed::ScsiArray,
                    name: "SCSI array".into(),
                }),
                Err(err) => failures.push(err.to_string()),
            }
        }
        for leg in self.legs.iter().rev() {
            let Some(dm_name) = &leg.dm_name else {
                continue;
            };
            match self.dm.remove(dm_name) {
                Ok(()) => self.log.record(EventKind::Removed {
                    object: Removed::Leg,
                    name: dm_name.clone(),
                }),
                Err(err) => failures.push(err.to_string()),
            }
        }
        for lo in self.loops.iter().rev() {
            match backing::detach_loop(&lo.path) {
                Ok(()) => self.log.record(EventKind::Removed {
                    object: Removed::Loop,
                    name: lo.path.display().to_string(),
                }),
                Err(err) => failures.push(err.to_string()),
            }
        }
        // The FUSE servers go after the loop devices over their files; held requests are
        // served first, so nothing waits on them.
        for server in self.fuse.drain(..).rev() {
            let mountpoint = server.mountpoint().to_path_buf();
            match server.unmount() {
                Ok(()) => self.log.record(EventKind::Removed {
                    object: Removed::FuseMount,
                    name: mountpoint.display().to_string(),
                }),
                Err(err) => failures.push(format!("unmount {}: {err}", mountpoint.display())),
            }
        }
        if let Some(dir) = &self.workdir {
            if let Err(err) = std::fs::remove_dir_all(dir) {
                failures.push(format!("remove {}: {err}", dir.display()));
            }
        }
        // The lock goes with the directory.
        self.workdir_claim = None;
        failures
    }

    /// Adds a built leg, reachable by its id from then on.
    fn push_leg(&mut self, leg: BuiltLeg) {
        self.leg_slots[leg.id.index()] = self.legs.len();
        self.legs.push(leg);
    }

    /// Where the leg `id` is in `legs`.
    fn slot(&self, id: LegId) -> usize {
        self.leg_slots[id.index()]
    }

    fn leg(&self, id: LegId) -> &BuiltLeg {
        &self.legs[self.slot(id)]
    }

    fn map(&self, id: MapId) -> &BuiltMap {
        &self.maps[id.index()]
    }

    fn leg_by_dev(&self, dev: DevNum) -> Option<&BuiltLeg> {
        self.legs.iter().find(|l| l.dev == dev)
    }
}

impl Drop for Built {
    fn drop(&mut self) {
        for failure in self.teardown() {
            eprintln!("pathrig: cleanup: {failure}");
        }
    }
}

fn selector_of(s: faults::Selector) -> Selector {
    match s {
        faults::Selector::RoundRobin => Selector::RoundRobin,
        faults::Selector::QueueLength => Selector::QueueLength,
        faults::Selector::ServiceTime => Selector::ServiceTime,
    }
}

/// Runs `scenario` to its report. The report's verdict is already evaluated.
pub fn run(scenario: &Scenario, env: &RunEnv<'_>) -> Result<Report, RunError> {
    let setup_started = Instant::now();
    // Clock zero is set when the workload starts; until then record against a provisional
    // origin and shift afterwards.
    let provisional = EventLog::new(Clock {
        origin: setup_started,
    });
    let mut built = build(scenario, env, &provisional)?;
    let setup = setup_started.elapsed();
    if env.interrupted.load(Ordering::SeqCst) {
        return Err(RunError::Interrupted);
    }

    let origin = Instant::now();
    let log = EventLog::new(Clock { origin });
    log.publish();
    for event in provisional.sorted() {
        log.record_at(
            event.t_ms - setup.as_secs_f64() * 1000.0 - 0.001,
            event.kind,
        );
    }
    built.log = log.clone();

    // One engine per workload, each on its map's device.
    let configs: Vec<WorkloadConfig> = scenario
        .workloads
        .iter()
        .enumerate()
        .map(|(index, w)| workload_config(scenario, &built, index, w))
        .collect();
    let driven = drive(scenario, env, &mut built, &log, &configs)?;

    let final_ms = log.clock().now_ms();
    let scsi_report = scsi::finish(scenario, &mut built, &log);
    // Before teardown removes the backing files.
    let scratch_full = ScratchFull::check(&env.work_root);
    let maps = final_map_reports(scenario, &built, driven.manager.as_deref())?;
    let teardown_started = Instant::now();
    let mut failures = built.teardown();
    let teardown = teardown_started.elapsed();
    failures.extend(
        rig::cleanup::find_leftovers()
            .into_iter()
            .map(|l| format!("left behind: {l}")),
    );
    if !failures.is_empty() {
        return Err(RunError::Cleanup(failures.join("; ")));
    }

    let mut full = Report {
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            seed: scenario.seed,
        },
        guest: GuestInfo {
            kind: env.guest.as_str().into(),
            kernel_release: env.kernel_release.clone(),
            boot_to_init_ms: env.boot.map(|(b, _)| b.as_secs_f64() * 1000.0),
            // Kernel start to the moment the workload starts: modules loaded, devices built.
            boot_to_ready_ms: env
                .boot
                .map(|(b, init)| (b + origin.duration_since(init)).as_secs_f64() * 1000.0),
            scratch_full,
        },
        manager: manager_info(scenario),
        maps,
        mirrors: driven.mirrors.clone(),
        scsi: scsi_report,
        workloads: Workloads(
            scenario
                .workloads
                .iter()
                .zip(&configs)
                .zip(&driven.workloads)
                .map(|((spec, config), (report, first_error))| {
                    summarize_workload(scenario, spec, &config.path, report, *first_error)
                })
                .collect(),
        ),
        events: log.sorted(),
        path_io: driven.path_io,
        critical: scenario
            .critical
            .iter()
            .zip(&driven.critical)
            .map(|(spec, r)| crate::report::critical::CriticalSummary::new(scenario, spec, r))
            .collect(),
        figures: Figures::default(),
        causes: Vec::new(),
        expectations: Vec::new(),
        verdict: Verdict::Pass,
        timing: Timing {
            setup_ms: setup.as_secs_f64() * 1000.0,
            run_ms: final_ms,
            teardown_ms: teardown.as_secs_f64() * 1000.0,
            max_fault_lag_ms: driven.max_lag_ms,
        },
        timeline_lag: driven.timeline_lag.clone(),
    };
    let mut omitted = bounded::bound_events(&mut full.events);
    for w in full.workloads.iter_mut() {
        w.errors_omitted = omitted.remove(&w.map).unwrap_or_default();
    }
    full.evaluate(scenario);
    Ok(full)
}

/// The engine's settings for the scenario's workload number `index` (`spec`), on its map's
/// device. Every workload but the first gets its own seed (the scenario's plus its index), so
/// two maps do not see the same sequence of offsets; the first keeps the scenario's.
fn workload_config(
    scenario: &Scenario,
    built: &Built,
    index: usize,
    spec: &faults::WorkloadSpec,
) -> WorkloadConfig {
    let map = built.map(spec.map);
    WorkloadConfig {
        path: PathBuf::from(format!("/dev/dm-{}", map.dev.minor)),
        // Below the lowest critical area, if the map has critical writers.
        size_bytes: critical::bulk_size(scenario, spec.map),
        block_size: spec.block_size,
        queue_depth: spec.queue_depth,
        read_percent: spec.read_percent,
        duration: spec.duration,
        rate_iops: spec.rate_iops,
        sequential: spec.pattern == faults::Pattern::Sequential,
        verify: spec.verify,
        seed: scenario.seed.wrapping_add(index as u64),
        stall_threshold: spec.stall_threshold,
        engine: match spec.engine {
            faults::WorkloadEngine::Pathrig => workload::EngineKind::Pathrig,
            faults::WorkloadEngine::Fio => {
                workload::EngineKind::Fio(workload::fio::FioMode::Default)
            }
            faults::WorkloadEngine::FioBatched => {
                workload::EngineKind::Fio(workload::fio::FioMode::Batched)
            }
        },
    }
}

fn build(scenario: &Scenario, env: &RunEnv<'_>, log: &EventLog) -> Result<Built, RunError> {
    let dm = Dm::open()?;
    let workdir = env.work_root.join(format!(
        "{}{}-{}",
        naming::NAME_PREFIX,
        scenario.name,
        std::process::id()
    ));
    std::fs::create_dir(&workdir).map_err(rig::RigError::io("create work directory", &workdir))?;
    let claim = rig::ownership::Claim::take(&workdir, rig::ownership::Kind::Scratch)
        .map(|(claim, _)| claim)
        .map_err(|e| rig::RigError::io("claim work directory", &workdir)(std::io::Error::other(e)));
    let claim = match claim {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&workdir);
            return Err(e.into());
        }
    };
    let mut built = Built {
        dm,
        log: log.clone(),
        workdir: Some(workdir.clone()),
        workdir_claim: Some(claim),
        loops: Vec::new(),
        fuse: Vec::new(),
        legs: Vec::new(),
        leg_slots: vec![usize::MAX; scenario.legs.len()],
        maps: Vec::new(),
        array: None,
        scsi_watch: None,
        scsi_hosts: Vec::new(),
        multipathd: None,
        torn_down: false,
    };
    // Every multipath map's backing file first: the SCSI array serves LUNs of several maps
    // through shared host adapters, so it is built once, over all of them.
    let mut files = HashMap::new();
    for (map_id, map) in scenario.map_ids().filter(|(_, m)| !m.is_mirror()) {
        let file = workdir.join(format!("{}.img", map.name));
        backing::create_backing_file(&file, map.size_bytes)?;
        log.record(EventKind::BackingFile {
            map: map.name.clone(),
            file: file.display().to_string(),
            bytes: map.size_bytes,
        });
        files.insert(map_id, file);
    }
    let scsi_paths = scsi::build_array(scenario, &files, &mut built, log)?;
    scsi::start_watch(&mut built)?;
    for (map_id, map) in scenario.map_ids() {
        if let faults::MapKind::Mirror(spec) = map.kind {
            mirror::build_map(scenario, map_id, map, spec, &workdir, &mut built, log)?;
            continue;
        }
        let file = files[&map_id].clone();
        let sectors = Sectors::from_bytes(map.size_bytes);
        // FUSE legs read and write the same backing file through pathrig's FUSE file server:
        // one server per map, one file per leg.
        let fuse_legs: Vec<&str> = scenario
            .legs_of(map_id)
            .filter(|(_, l)| l.backend == faults::Backend::Fuse)
            .map(|(_, l)| l.name.as_str())
            .collect();
        if !fuse_legs.is_empty() {
            let mountpoint = workdir.join(format!("fuse-{}", map.name));
            let server = FuseServer::start(
                &mountpoint,
                &file,
                map.size_bytes,
                &fuse_legs,
                scenario.seed,
            )
            .map_err(rig::RigError::io(
                "start the FUSE file server at",
                &mountpoint,
            ))?;
            log.record(EventKind::FuseServer {
                map: map.name.clone(),
                mountpoint: mountpoint.display().to_string(),
                legs: fuse_legs.iter().map(|l| l.to_string()).collect(),
            });
            built.fuse.push(server);
        }
        for (path, (leg_id, leg)) in scenario.legs_of(map_id).enumerate() {
            let (leg_file, fuse) = match leg.backend {
                faults::Backend::Loop => (file.clone(), None),
                faults::Backend::Fuse => {
                    let server = built.fuse.last().expect("started above");
                    (server.file_path(&leg.name), Some(server.control()))
                }
                faults::Backend::Scsi => {
                    let scsi = scsi_paths[&leg_id].clone();
                    built.push_leg(BuiltLeg {
                        id: leg_id,
                        name: leg.name.clone(),
                        map: map_id,
                        path,
                        fuse: None,
                        fuse_rules: Vec::new(),
                        dm_name: None,
                        node: scsi.node.clone(),
                        dev: scsi.dev,
                        loop_dev: scsi.dev,
                        sectors,
                        fault: None,
                        scsi: Some(scsi),
                    });
                    continue;
                }
            };
            let lo = attach_leg_loop(&mut built, log, leg, &leg_file)?;
            if !leg.dm_layer {
                log.record(EventKind::NoDmLayer {
                    leg: leg.name.clone(),
                    dev: lo.dev.to_string(),
                });
                built.push_leg(BuiltLeg {
                    id: leg_id,
                    name: leg.name.clone(),
                    map: map_id,
                    path,
                    fuse: fuse.clone(),
                    fuse_rules: Vec::new(),
                    dm_name: None,
                    node: lo.path.clone(),
                    dev: lo.dev,
                    loop_dev: lo.dev,
                    sectors,
                    fault: None,
                    scsi: None,
                });
                continue;
            }
            let dm_name = naming::leg_name(&map.name, &leg.name);
            let dev = built
                .dm
                .create(&dm_name, &apply::healthy_table(lo.dev, sectors))?;
            log.record(EventKind::LegDevice {
                leg: leg.name.clone(),
                dm_name: dm_name.clone(),
                dev: dev.to_string(),
                over: lo.dev.to_string(),
            });
            built.push_leg(BuiltLeg {
                id: leg_id,
                name: leg.name.clone(),
                map: map_id,
                path,
                fuse,
                fuse_rules: Vec::new(),
                dm_name: Some(dm_name),
                // devtmpfs names a dm device after its minor number.
                node: PathBuf::from(format!("/dev/dm-{}", dev.minor)),
                dev,
                loop_dev: lo.dev,
                sectors,
                fault: None,
                scsi: None,
            });
        }
        if scenario.manager.kind.builds_maps() {
            continue; // multipathd builds the maps, below
        }
        let map_table = MapTable {
            sectors,
            selector: selector_of(map.selector),
            queue_if_no_path: map.queue_if_no_path,
            // Legs with a dm layer are bio-based dm devices, which a request-based map
            // refuses; straight over loop devices only, the map stays request-based.
            bio_based: scenario.legs_of(map_id).any(|(_, l)| l.dm_layer),
        };
        let table = map_table.table(
            map.groups
                .iter()
                .map(|group| group.iter().map(|&leg| built.leg(leg).dev).collect()),
        );
        let dm_name = naming::map_name(&map.name);
        let dev = built.dm.create(&dm_name, &table)?;
        log.record(EventKind::MapDevice {
            map: map.name.clone(),
            dm_name: dm_name.clone(),
            dev: dev.to_string(),
            table: table.render(),
        });
        built.maps.push(BuiltMap {
            id: map_id,
            name: map.name.clone(),
            dm_name,
            dev,
            table: map_table,
            groups: map.groups.clone(),
            mirror: None,
        });
    }
    if scenario.manager.kind.builds_maps() {
        multipathd::build_maps(scenario, &mut built, log)?;
    }
    Ok(built)
}

/// Watches the kernel's view of every path: the last parsed status of each map.
struct KernelWatch {
    last: HashMap<String, MultipathStatus>,
    /// By map: the paths multiplexing critical writers may use, published at every read.
    usable: HashMap<String, Arc<rig::workload::critical::UsablePaths>>,
}

impl KernelWatch {
    fn observe(&mut self, built: &Built, log: &EventLog) -> Result<(), RunError> {
        for map in built.maps.iter().filter(|m| m.mirror.is_none()) {
            let status = built.dm.multipath_status(&map.dm_name)?.status;
            if let Some(usable) = self.usable.get(&map.name) {
                critical::publish(usable, &status);
            }
            if let Some(before) = self.last.get(&map.name) {
                diff_status(&map.name, before, &status, built, log);
            }
            self.last.insert(map.name.clone(), status);
        }
        Ok(())
    }
}

/// Attaches the loop device of `leg` over `file`, records it and keeps it for teardown. Over a
/// FUSE file in direct-IO mode: the leg serves as many IOs at once as are queued (a buffered loop
/// device would hand the server one at a time).
fn attach_leg_loop(
    built: &mut Built,
    log: &EventLog,
    leg: &faults::LegSpec,
    file: &Path,
) -> Result<Loop, RunError> {
    let lo = match leg.backend {
        faults::Backend::Loop => backing::attach_loop(file)?,
        faults::Backend::Fuse => backing::attach_loop_direct(file)?,
        faults::Backend::Scsi => unreachable!("a SCSI leg's path is its sd device, not a loop"),
    };
    log.record(EventKind::LoopAttached {
        leg: leg.name.clone(),
        loop_device: lo.path.display().to_string(),
        dev: lo.dev.to_string(),
        direct_io: lo.direct_io,
    });
    built.loops.push(lo.clone());
    Ok(lo)
}

fn leg_label(built: &Built, dev: DevNum) -> String {
    built
        .leg_by_dev(dev)
        .map(|l| l.name.clone())
        .unwrap_or_else(|| dev.to_string())
}

/// A change of one path that two reads of the map's status imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathChange {
    Failed,
    Reinstated,
    /// Active at both reads, with a failure in between.
    FailedAndReinstated,
}

/// The changes between two reads of one path. Between two reads a path may have changed more
/// than once: the kernel counts every failure, and a failed path can only fail again after a
/// reinstatement, so a failed path whose count rose was reinstated and failed again in between.
fn path_changes(old: &PathStatus, now: &PathStatus) -> Vec<PathChange> {
    let failures = now.fail_count.saturating_sub(old.fail_count);
    let mut changes = Vec::new();
    if (old.state, now.state) == (KernelPathState::Active, KernelPathState::Active) {
        if failures > 0 {
            changes.push(PathChange::FailedAndReinstated);
        }
        return changes;
    }
    let mut state = old.state;
    for _ in 0..failures {
        if state == KernelPathState::Failed {
            changes.push(PathChange::Reinstated);
        }
        changes.push(PathChange::Failed);
        state = KernelPathState::Failed;
    }
    if state != now.state {
        changes.push(match now.state {
            KernelPathState::Active => PathChange::Reinstated,
            KernelPathState::Failed => PathChange::Failed,
        });
    }
    changes
}

fn diff_status(
    map: &str,
    before: &MultipathStatus,
    now: &MultipathStatus,
    built: &Built,
    log: &EventLog,
) {
    for path in now.paths() {
        let Some(old) = before.path(path.dev) else {
            continue;
        };
        let leg = leg_label(built, path.dev);
        for change in path_changes(old, path) {
            let (map, leg) = (map.to_string(), leg.clone());
            log.record(match change {
                PathChange::Failed => EventKind::PathFailed { map, leg },
                PathChange::Reinstated => EventKind::PathReinstated { map, leg },
                PathChange::FailedAndReinstated => EventKind::PathFailedAndReinstated { map, leg },
            });
        }
    }
    if before.current_group != now.current_group && now.current_group != 0 {
        // JSON only: the kernel switches groups when it maps the next IO, without a dm event of
        // its own, so this is seen at whichever status read comes next — its place among the
        // other events is timing noise. report.txt shows the group in use at the end instead.
        log.record(EventKind::GroupSwitched {
            map: map.to_string(),
            group: now.current_group,
        });
    }
    match (before.active_paths(), now.active_paths()) {
        (b, 0) if b > 0 => log.record(EventKind::NoUsablePath {
            map: map.to_string(),
        }),
        (0, n) if n > 0 => log.record(EventKind::UsablePathBack {
            map: map.to_string(),
        }),
        _ => {}
    }
}

/// Runs one thread per workload and, on this thread, the fault timeline and the kernel watch,
/// until every workload has finished. The workloads start together (a [`StartGate`]) and stop
/// together: a workload that fails stops the others and ends the run with its error.
fn drive(
    scenario: &Scenario,
    env: &RunEnv<'_>,
    built: &mut Built,
    log: &EventLog,
    configs: &[WorkloadConfig],
) -> Result<Driven, RunError> {
    let origin = log.clock().origin;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = path_io::PathIoSampler::start(
        built
            .maps
            .iter()
            .flat_map(|m| m.groups.iter().flatten().map(move |leg| (m, leg)))
            .filter_map(|(m, leg)| {
                let l = built.legs.iter().find(|l| l.id == *leg)?;
                Some((m.name.clone(), l.name.clone(), l.dev.major, l.dev.minor))
            })
            .collect(),
        origin,
    );
    let gate = StartGate::default();
    let mut threads: Vec<WorkloadThread> = Vec::new();
    for (spec, config) in scenario.workloads.iter().zip(configs) {
        let map = scenario.map(spec.map).name.clone();
        match spawn_workload(map, config.clone(), log, &stop, &gate) {
            Ok(thread) => threads.push(thread),
            Err(err) => {
                // The threads already started never run their engines.
                gate.open(false);
                for mut t in threads {
                    let _ = t.join();
                }
                let _ = sampler.stop();
                return Err(err);
            }
        }
    }
    // The critical writers see the usable paths from their first IO on.
    let usable = critical::usable_sets(scenario);
    let mut critical_threads: Vec<critical::CriticalThread> = Vec::new();
    let mut started: Result<(), RunError> = Ok(());
    for map in built.maps.iter().filter(|m| usable.contains_key(&m.name)) {
        match built.dm.multipath_status(&map.dm_name) {
            Ok(s) => critical::publish(&usable[&map.name], &s.status),
            Err(e) => started = Err(e.into()),
        }
    }
    for index in 0..scenario.critical.len() {
        if started.is_err() {
            break;
        }
        match critical::spawn(scenario, built, index, &usable, origin, &stop, &gate) {
            Ok(t) => critical_threads.push(t),
            Err(e) => started = Err(e),
        }
    }
    if let Err(err) = started {
        gate.open(false);
        for mut t in threads {
            let _ = t.join();
        }
        for mut t in critical_threads {
            let _ = t.join();
        }
        let _ = sampler.stop();
        return Err(err);
    }
    gate.open(true);

    // multipathd's lines go to its path manager.
    let feed = built.multipathd.as_mut().and_then(|m| m.take_feed());
    let mut manager = {
        let infos: Vec<BuiltMapInfo<'_>> = built
            .maps
            .iter()
            .filter(|m| m.mirror.is_none())
            .map(|m| BuiltMapInfo {
                id: m.id,
                name: &m.name,
                dm_name: &m.dm_name,
                legs: scenario
                    .legs_of(m.id)
                    .map(|(id, _)| {
                        let l = built.leg(id);
                        (id, l.name.as_str(), l.dev, l.node.clone())
                    })
                    .collect(),
                groups: &m.groups,
                table: m.table,
            })
            .collect();
        managers::start(scenario, &infos, origin, feed).map_err(RunError::Workload)?
    };
    let mut watch = KernelWatch {
        last: HashMap::new(),
        usable,
    };
    built.dm.arm_events()?;
    watch.observe(built, log)?;
    feed_manager(manager.as_mut(), &watch, built, log);
    let mut mirrors = mirror::MirrorDriver::new(scenario, built, origin);
    mirrors.observe(built, log)?;

    let steps = scenario.timeline();
    let fail_at = injected_failure_time();
    let mut next_step = 0;
    // The most late step so far: (index, how late it began).
    let mut lag: Option<(usize, Duration)> = None;
    let drain_deadline = scenario.run_length() + DRAIN_GRACE;
    // Each workload's result once its thread has ended, in the scenario's order.
    let mut results: Vec<Option<WorkloadResult>> = threads.iter().map(|_| None).collect();
    let mut critical_results: Vec<
        Option<std::io::Result<rig::workload::critical::CriticalReport>>,
    > = critical_threads.iter().map(|_| None).collect();
    let mut flushed = false;
    let mut failure: Option<RunError> = None;
    let mut progress = progress::Progress::new(built, origin.elapsed());
    loop {
        if env.interrupted.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
            failure.get_or_insert(RunError::Interrupted);
            flush_queued_io(built, log, FlushCause::Interrupted);
            flushed = true;
        }
        let now = origin.elapsed();
        if let Some(at) = fail_at.filter(|at| now >= *at && failure.is_none()) {
            stop.store(true, Ordering::SeqCst);
            failure = Some(RunError::Injected(at.as_millis() as u64));
        }
        while failure.is_none() && next_step < steps.len() && steps[next_step].at <= now {
            let late = origin.elapsed().saturating_sub(steps[next_step].at);
            if lag.as_ref().is_none_or(|(_, worst)| late > *worst) {
                lag = Some((next_step, late));
            }
            let rig_reinstates = manager.rig_reinstates();
            if let Err(err) = apply::apply_step(
                scenario,
                built,
                log,
                &mut watch,
                &steps[next_step],
                rig_reinstates,
            ) {
                stop.store(true, Ordering::SeqCst);
                failure = Some(err);
            }
            next_step += 1;
        }
        if !flushed && (now >= drain_deadline || failure.is_some()) {
            flush_queued_io(built, log, FlushCause::WorkloadEnded);
            flushed = true;
        }
        if failure.is_none() && !flushed {
            progress.tick(now, scenario.run_length(), built, &watch, log);
        }
        if failure.is_none() {
            manager.poll(&built.dm, log);
            if let Err(err) = mirrors.poll(built, log) {
                stop.store(true, Ordering::SeqCst);
                failure = Some(err);
            }
        }
        // Sleep until the next thing that is due: a fault step, the injected failure, the drain
        // deadline, a manager timer or checker timeout — or until a dm event or the workload's end.
        let mut wake_at: Vec<Duration> = Vec::new();
        if failure.is_none() {
            wake_at.extend(steps.get(next_step).map(|s| s.at));
            wake_at.extend(fail_at);
            wake_at.extend(mirrors.next_wakeup());
            wake_at.extend(
                manager
                    .next_wakeup()
                    .map(|at| at.saturating_duration_since(origin)),
            );
        }
        if !flushed {
            wake_at.push(drain_deadline);
            if failure.is_none() {
                wake_at.push(progress.next_due());
            }
        }
        let wake_at = wake_at
            .into_iter()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        let timeout = wake_at.saturating_sub(origin.elapsed());
        let checker_fd = manager.wake_fd();
        let mut running: Vec<(usize, &OwnedFd)> = threads
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .map(|(i, t)| (i, &t.done))
            .collect();
        // Critical writers count after the workloads.
        running.extend(
            critical_threads
                .iter()
                .enumerate()
                .filter(|(i, _)| critical_results[*i].is_none())
                .map(|(i, t)| (threads.len() + i, &t.done)),
        );
        let (dm_ready, done) = wait(built, &running, checker_fd, timeout);
        if dm_ready {
            built.dm.arm_events()?;
            watch.observe(built, log)?;
            if failure.is_none() {
                feed_manager(manager.as_mut(), &watch, built, log);
                if let Err(err) = mirrors.observe(built, log) {
                    stop.store(true, Ordering::SeqCst);
                    failure = Some(err);
                }
            }
        }
        for index in done {
            if let Some(c) = index.checked_sub(threads.len()) {
                let result = critical_threads[c].join();
                if let Err(err) = &result {
                    stop.store(true, Ordering::SeqCst);
                    if failure.is_none() {
                        failure = Some(RunError::Workload(std::io::Error::new(
                            err.kind(),
                            format!("critical IO {}: {err}", critical_threads[c].name),
                        )));
                    }
                }
                critical_results[c] = Some(result);
                continue;
            }
            let result = threads[index].join();
            if let Err(err) = &result {
                // One workload failing ends the run: the others stop submitting and drain.
                stop.store(true, Ordering::SeqCst);
                if failure.is_none() {
                    // Named by its map when there are several.
                    let err = match threads.len() {
                        1 => std::io::Error::new(err.kind(), err.to_string()),
                        _ => std::io::Error::new(
                            err.kind(),
                            format!("{}: {err}", threads[index].map),
                        ),
                    };
                    failure = Some(RunError::Workload(err));
                }
            }
            results[index] = Some(result);
        }
        if results.iter().all(Option::is_some) && critical_results.iter().all(Option::is_some) {
            break;
        }
    }
    let path_io = sampler.stop();
    // The last path changes may have come with the last completions.
    watch.observe(built, log)?;
    if let Some(err) = failure {
        return Err(err);
    }
    let mirrors = mirrors.finish(built, log);
    let workloads = results
        .into_iter()
        .map(|r| r.expect("every workload ended").map_err(RunError::Workload))
        .collect::<Result<Vec<_>, _>>()?;
    let critical = critical_results
        .into_iter()
        .map(|r| {
            r.expect("every critical writer ended")
                .map_err(RunError::Workload)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manager = manager.finish(Duration::from_secs(5));
    let step_of = |index: usize, late: Duration| {
        let step = &steps[index];
        LateStep {
            line: scenario.fault(step.fault).line,
            leg: scenario.leg(step.leg).name.clone(),
            window: step.repetition + 1,
            planned_ms: step.at.as_secs_f64() * 1000.0,
            late_ms: late.as_secs_f64() * 1000.0,
        }
    };
    let max_lag_ms = lag.map(|(_, late)| late.as_secs_f64() * 1000.0);
    let worst = lag
        .filter(|(_, late)| *late > TimelineLag::TOLERANCE)
        .map(|(index, late)| step_of(index, late));
    let not_run = steps.len() - next_step;
    let timeline_lag = (worst.is_some() || not_run > 0).then(|| TimelineLag {
        worst,
        not_run,
        first_not_run: (not_run > 0).then(|| step_of(next_step, Duration::ZERO)),
    });
    Ok(Driven {
        critical,
        mirrors,
        path_io,
        workloads,
        manager,
        max_lag_ms,
        timeline_lag,
    })
}

/// What [`drive`] hands back.
struct Driven {
    /// Each critical writer's report, in the scenario's order.
    critical: Vec<rig::workload::critical::CriticalReport>,
    /// The mirror maps' reports.
    mirrors: Vec<mirror::MirrorMapReport>,
    /// Each workload's report and first error (ms), in the scenario's order.
    workloads: Vec<(WorkloadReport, Option<f64>)>,
    /// Per-path IO series over the workload.
    path_io: Vec<PathIo>,
    /// The manager's final view of every map (None without a manager).
    manager: Option<Vec<MapView>>,
    /// The latest a fault step began (None: no steps).
    max_lag_ms: Option<f64>,
    timeline_lag: Option<TimelineLag>,
}

/// A workload's report and its first IO error (ms since clock zero), or its setup failure.
type WorkloadResult = std::io::Result<(WorkloadReport, Option<f64>)>;

/// One workload's thread.
struct WorkloadThread {
    /// The map it runs on.
    map: String,
    /// `None` once joined.
    handle: Option<std::thread::JoinHandle<WorkloadResult>>,
    /// Read end of a pipe whose write end the thread holds: it closes when the thread ends.
    done: OwnedFd,
}

impl WorkloadThread {
    /// Waits for the thread (called once, when `done` says it ended).
    fn join(&mut self) -> WorkloadResult {
        let handle = self
            .handle
            .take()
            .expect("a workload thread is joined once");
        handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the workload thread panicked")))
    }
}

/// Holds every workload thread until all of them are started, so the engines start together;
/// opened with `false` when one could not be started (the others then do not run).
#[derive(Clone, Default)]
struct StartGate(Arc<(std::sync::Mutex<Option<bool>>, std::sync::Condvar)>);

impl StartGate {
    fn open(&self, go: bool) {
        let (state, changed) = &*self.0;
        *state.lock().unwrap_or_else(|e| e.into_inner()) = Some(go);
        changed.notify_all();
    }

    /// Waits until the gate opens; whether to run.
    fn wait(&self) -> bool {
        let (state, changed) = &*self.0;
        let mut open = state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *open {
                return go;
            }
            open = changed.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Starts the workload on `map`'s thread; it waits at `gate` until every workload's thread is
/// started, then runs its engine against `config` and records its events under `map`.
fn spawn_workload(
    map: String,
    config: WorkloadConfig,
    log: &EventLog,
    stop: &Arc<AtomicBool>,
    gate: &StartGate,
) -> Result<WorkloadThread, RunError> {
    // The thread holds the write end; its closing wakes the event loop.
    let (done_read, done_write) = nix::unistd::pipe().map_err(|e| RunError::Workload(e.into()))?;
    let thread_log = log.clone();
    let thread_stop = stop.clone();
    let gate = gate.clone();
    let thread_map = map.clone();
    let origin = log.clock().origin;
    let handle = std::thread::Builder::new()
        .name(format!("workload-{map}"))
        .spawn(move || {
            let _done = done_write;
            if !gate.wait() {
                return Err(std::io::Error::other(
                    "not started: another workload failed to start",
                ));
            }
            let mut first_error: Option<f64> = None;
            let clock = thread_log.clock();
            let result = workload::run(&config, origin, &thread_stop, &mut |event| {
                record_workload_event(&thread_log, clock, &thread_map, &mut first_error, event)
            });
            result.map(|r| (r, first_error))
        })
        .map_err(RunError::Workload)?;
    Ok(WorkloadThread {
        map,
        handle: Some(handle),
        done: done_read,
    })
}

/// Gives the path manager the kernel's current view of every map.
fn feed_manager(manager: &mut dyn PathManager, watch: &KernelWatch, built: &Built, log: &EventLog) {
    for (index, map) in built.maps.iter().filter(|m| m.mirror.is_none()).enumerate() {
        if let Some(status) = watch.last.get(&map.name) {
            manager.kernel_status(index, status, &built.dm, log);
        }
    }
}

/// Waits for a dm event, a workload's end or a checker completion, at most `timeout`.
/// `running`: each running workload's index and the read end of its done pipe. Returns (dm
/// event, the indices of the workloads that ended); checker completions are collected by the
/// driver's poll.
fn wait(
    built: &Built,
    running: &[(usize, &OwnedFd)],
    checker: Option<std::os::fd::RawFd>,
    timeout: Duration,
) -> (bool, Vec<usize>) {
    let mut fds = vec![libc::pollfd {
        fd: built.dm.event_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    fds.extend(running.iter().map(|(_, fd)| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }));
    if let Some(fd) = checker {
        fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // EINTR (a signal) simply returns early; the caller re-checks the interrupt flag.
    // SAFETY: `fds` is a valid array of pollfd for its length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return (false, Vec::new());
    }
    let done = running
        .iter()
        .zip(&fds[1..])
        .filter(|(_, p)| p.revents != 0)
        .map(|((index, _), _)| *index)
        .collect();
    (fds[0].revents & libc::POLLIN != 0, done)
}

/// Workload events go to the JSON only: they are timed by the workload thread, so their order
/// against the kernel events (timed when this thread reads the status) is timing noise. The
/// text report summarises them in its workload section instead.
fn record_workload_event(
    log: &EventLog,
    clock: Clock,
    map: &str,
    first_error: &mut Option<f64>,
    event: WorkloadEvent,
) {
    let map = map.to_string();
    let ms = |t: Duration| clock.since_origin(clock.origin + t);
    let (t, kind) = match event {
        WorkloadEvent::IoError {
            t,
            op,
            block,
            errno,
        } => {
            first_error.get_or_insert(ms(t));
            let op = match op {
                workload::Op::Read => IoDirection::Read,
                workload::Op::Write => IoDirection::Write,
            };
            let errno = nix::errno::Errno::from_raw(errno).to_string();
            (
                t,
                EventKind::IoError {
                    map,
                    op,
                    errno,
                    block,
                },
            )
        }
        WorkloadEvent::Mismatch { t, block, detail } => {
            (t, EventKind::Mismatch { map, block, detail })
        }
        WorkloadEvent::StallBegan { t, in_flight } => (t, EventKind::StallBegan { map, in_flight }),
        WorkloadEvent::StallEnded { t, length } => (
            t,
            EventKind::StallEnded {
                map,
                length_ms: length.as_secs_f64() * 1000.0,
            },
        ),
    };
    log.record_at(ms(t), kind);
}

/// At the end of the run (or when it is cut short): IO the workload still waits for must come
/// back. Requests held by FUSE hang rules and commands held by the SCSI array are let go, and maps that queue with no path left
/// stop queueing.
fn flush_queued_io(built: &mut Built, log: &EventLog, cause: FlushCause) {
    for leg in apply::release_hung_io(built) {
        log.record(EventKind::HangReleased { leg, cause });
    }
    for leg in apply::release_held_commands(built) {
        log.record(EventKind::HeldCommandsReleased { leg, cause });
    }
    for map in built.maps.iter().filter(|m| m.table.queue_if_no_path) {
        let queued = built
            .dm
            .multipath_status(&map.dm_name)
            .is_ok_and(|s| s.status.active_paths() == 0);
        if queued
            && built
                .dm
                .send(&map.dm_name, MultipathMessage::FailIfNoPath)
                .is_ok()
        {
            log.record(EventKind::QueueFlushed {
                map: map.name.clone(),
                cause,
            });
        }
    }
}

fn manager_info(scenario: &Scenario) -> ManagerInfo {
    match scenario.manager.kind {
        path_manager::settings::ManagerKind::Embedded => ManagerInfo {
            kind: path_manager::settings::ManagerKind::Embedded,
            note: "pathrig's path manager checks, fails, reinstates and switches groups".into(),
        },
        path_manager::settings::ManagerKind::None => ManagerInfo {
            kind: path_manager::settings::ManagerKind::None,
            note: "the bare kernel; the rig reinstates a path when its leg is restored".into(),
        },
        path_manager::settings::ManagerKind::Multipathd => ManagerInfo {
            kind: path_manager::settings::ManagerKind::Multipathd,
            note: match scenario
                .manager
                .multipathd
                .as_ref()
                .and_then(|m| m.binary.as_ref())
            {
                Some(binary) => format!(
                    "the real multipathd ({}) builds the maps, checks, fails, reinstates and switches groups",
                    binary.display()
                ),
                None => "the real multipathd (packaged multipath-tools) builds the maps, checks, \
                         fails, reinstates and switches groups"
                    .into(),
            },
        },
    }
}

fn checker_view(state: &path_manager::PathState) -> CheckerView {
    use path_manager::PathState;
    match state {
        PathState::Unchecked => CheckerView::Unchecked,
        PathState::Up { .. } => CheckerView::Up,
        PathState::Down { detail, .. } => CheckerView::Down {
            detail: detail.clone(),
        },
        PathState::Delayed { .. } => CheckerView::HeldBack,
        PathState::Triggered { .. } => CheckerView::ToBeSampled,
        PathState::Sampling { .. } => CheckerView::Sampled,
        PathState::Marginal { .. } => CheckerView::Marginal,
    }
}

fn final_map_reports(
    scenario: &Scenario,
    built: &Built,
    manager: Option<&[MapView]>,
) -> Result<Vec<MapReport>, RunError> {
    let mut maps = Vec::new();
    for (index, map) in built.maps.iter().filter(|m| m.mirror.is_none()).enumerate() {
        let view = manager.and_then(|views| views.get(index));
        let table = built.dm.table(&map.dm_name)?.join("\n");
        let map_status = built.dm.multipath_status(&map.dm_name)?;
        let status = Some(map_status.status);
        let mut paths = Vec::new();
        for (gi, group) in map.groups.iter().enumerate() {
            for &leg_id in group {
                let leg = built.leg(leg_id);
                let path = status.as_ref().and_then(|s| s.path(leg.dev));
                let checker = view
                    .and_then(|v| v.paths.get(leg.path))
                    .map(|p| checker_view(&p.state));
                paths.push(PathReport {
                    checker,
                    fuse_faults: leg.fuse.as_ref().map(|c| c.counts(&leg.name)),
                    leg: leg.name.clone(),
                    device: leg.dev.to_string(),
                    group: gi + 1,
                    final_state: match path.map(|p| p.state) {
                        Some(KernelPathState::Active) => FinalPathState::Active,
                        Some(KernelPathState::Failed) => FinalPathState::Failed,
                        None => FinalPathState::Unknown,
                    },
                    fail_count: path.map(|p| p.fail_count).unwrap_or(0),
                });
            }
        }
        let spec = scenario.map(map.id);
        maps.push(MapReport {
            name: map.name.clone(),
            dm_name: map.dm_name.clone(),
            device: map.dev.to_string(),
            selector: map.table.selector.kernel_name().into(),
            queue_if_no_path: spec.queue_if_no_path,
            groups: map
                .groups
                .iter()
                .map(|g| g.iter().map(|&l| scenario.leg(l).name.clone()).collect())
                .collect(),
            table,
            final_status: map_status.line.render(),
            paths,
            final_group: status
                .as_ref()
                .map(|s| s.current_group as usize)
                .filter(|g| *g > 0),
            manager: view.map(|v| ManagerMapReport {
                settings: scenario
                    .settings(map.id)
                    .map(settings_rows)
                    .unwrap_or_default(),
                best_group: v.best_group.map(|g| g + 1),
            }),
        });
    }
    Ok(maps)
}

fn summarize_workload(
    scenario: &Scenario,
    w: &faults::WorkloadSpec,
    device: &Path,
    report: &WorkloadReport,
    first_error: Option<f64>,
) -> WorkloadSummary {
    let to_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut buckets: Vec<(String, u64)> = Vec::new();
    let mut lower_us = 0u64;
    for (limit_ms, label) in LATENCY_BUCKETS_MS {
        let upper_us = limit_ms.saturating_mul(1000);
        let count = report
            .histogram
            .iter_recorded()
            .filter(|v| v.value_iterated_to() >= lower_us && v.value_iterated_to() < upper_us)
            .map(|v| v.count_at_value())
            .sum();
        buckets.push((label.to_string(), count));
        lower_us = upper_us;
    }
    WorkloadSummary {
        map: scenario.map(w.map).name.clone(),
        device: device.display().to_string(),
        engine: w.engine,
        pattern: match w.pattern {
            faults::Pattern::Random => "random".into(),
            faults::Pattern::Sequential => "sequential".into(),
        },
        read_percent: w.read_percent,
        block_size: w.block_size,
        queue_depth: w.queue_depth,
        duration_ms: w.duration.as_millis() as u64,
        elapsed_ms: to_ms(report.elapsed),
        cpu_ms: report.cpu.map(to_ms),
        reads: report.reads,
        writes: report.writes,
        read_errors: report.read_errors,
        write_errors: report.write_errors,
        app_errors: report.read_errors + report.write_errors,
        verified_blocks: report.verified_blocks,
        mismatches: report.mismatches.len() as u64,
        mismatch_details: bounded::mismatch_reports(
            report
                .mismatches
                .iter()
                .map(|m| (to_ms(m.t), m.block, m.detail.as_str())),
            w.block_size,
        ),
        errors_omitted: ErrorsOmitted::default(),
        latency_us: LatencyUs {
            p50: report.latency.p50_us,
            p99: report.latency.p99_us,
            max: report.latency.max_us,
            mean: report.latency.mean_us.round() as u64,
        },
        latency_buckets: buckets,
        stalls: report
            .stalls
            .iter()
            .map(|s| StallReport {
                began_ms: to_ms(s.began),
                length_ms: to_ms(s.length),
            })
            .collect(),
        max_stall_ms: report
            .stalls
            .iter()
            .map(|s| to_ms(s.length))
            .fold(0.0, f64::max),
        longest_stall_ms: report.longest_quiet.map(to_ms),
        first_error_ms: first_error,
        series: report.series.clone(),
    }
}

#[cfg(test)]
mod path_change_tests {
    use super::*;
    use KernelPathState::{Active, Failed};
    use PathChange as C;

    fn path(state: KernelPathState, fail_count: u32) -> PathStatus {
        PathStatus {
            dev: DevNum { major: 7, minor: 0 },
            state,
            fail_count,
            selector_info: Vec::new(),
        }
    }

    #[test]
    fn one_change_per_read() {
        assert_eq!(
            path_changes(&path(Active, 0), &path(Failed, 1)),
            [C::Failed]
        );
        assert_eq!(
            path_changes(&path(Failed, 1), &path(Active, 1)),
            [C::Reinstated]
        );
        assert_eq!(path_changes(&path(Active, 1), &path(Active, 1)), []);
        assert_eq!(path_changes(&path(Failed, 1), &path(Failed, 1)), []);
    }

    #[test]
    fn changes_between_two_reads_are_rebuilt_from_the_fail_count() {
        assert_eq!(
            path_changes(&path(Active, 0), &path(Active, 1)),
            [C::FailedAndReinstated]
        );
        // Reinstated and failed again before the next read.
        assert_eq!(
            path_changes(&path(Failed, 1), &path(Failed, 2)),
            [C::Reinstated, C::Failed]
        );
        assert_eq!(
            path_changes(&path(Active, 0), &path(Failed, 2)),
            [C::Failed, C::Reinstated, C::Failed]
        );
        assert_eq!(
            path_changes(&path(Failed, 1), &path(Active, 2)),
            [C::Reinstated, C::Failed, C::Reinstated]
        );
    }
}
