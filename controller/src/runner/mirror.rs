//! Mirror maps in a run: building a `mirror` map (with `handle_errors`, one backing file per
//! leg) over its legs, and driving the mirror monitor: after every dm event (and at a coarse
//! cadence) the map's status is read, health changes and resync progress are recorded and
//! fed to the monitor, and its actions are carried out with real dm operations and direct IO
//! on the legs' devices. Also owns the mirror maps' report.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faults::{MapId, MapSpec, MirrorMapSpec, Scenario};
use mirror_monitor::{
    Action, ActionKind, Health, Input, MapSetup, Monitor, ScanOutcome, StatusView, BLOCK_SIZE,
};
use rig::backing;
use rig::dm::mirror::{LegHealth, LogKind, LogSync, MirrorLeg, MirrorLog, MirrorTable};
use rig::dm::{DevNum, Sectors, Table, Target};
use rig::fuse::FuseServer;
use rig::naming;

use super::{apply, Built, BuiltLeg, BuiltMap, MapTable, RunError};
use crate::events::mirror::MirrorEvent;
use crate::events::{EventKind, EventLog};
pub(super) use crate::report::mirror::MirrorMapReport;
use crate::report::mirror::{HealthSpan, MirrorActionReport, MirrorLegReport};

/// How often the status is read besides dm events (resync progress, missed events).
const STATUS_CADENCE: Duration = Duration::from_millis(500);

/// Builds mirror map `map`: per leg a backing file (FUSE legs: a FUSE server of their own), a
/// loop device and (with `dm_layer`) the leg's dm device; then the mirror over them. The
/// backing files start equal (all zeros), so the first table is `nosync`.
pub(super) fn build_map(
    scenario: &Scenario,
    map_id: MapId,
    map: &MapSpec,
    spec: MirrorMapSpec,
    workdir: &Path,
    built: &mut Built,
    log: &EventLog,
) -> Result<(), RunError> {
    let sectors = Sectors::from_bytes(map.size_bytes);
    let mut devs = Vec::new();
    for (path, (leg_id, leg)) in scenario.legs_of(map_id).enumerate() {
        let file = workdir.join(format!("{}-{}.img", map.name, leg.name));
        backing::create_backing_file(&file, map.size_bytes)?;
        log.record(EventKind::BackingFile {
            map: map.name.clone(),
            file: file.display().to_string(),
            bytes: map.size_bytes,
        });
        let (leg_file, fuse) = match leg.backend {
            faults::Backend::Loop => (file.clone(), None),
            faults::Backend::Fuse => {
                let mountpoint = workdir.join(format!("fuse-{}-{}", map.name, leg.name));
                let server = FuseServer::start(
                    &mountpoint,
                    &file,
                    map.size_bytes,
                    &[leg.name.as_str()],
                    scenario.seed,
                )
                .map_err(rig::RigError::io(
                    "start the FUSE file server at",
                    &mountpoint,
                ))?;
                log.record(EventKind::FuseServer {
                    map: map.name.clone(),
                    mountpoint: mountpoint.display().to_string(),
                    legs: vec![leg.name.clone()],
                });
                let path = server.file_path(&leg.name);
                let control = server.control();
                built.fuse.push(server);
                (path, Some(control))
            }
            faults::Backend::Scsi => unreachable!("validation refuses SCSI legs in mirror maps"),
        };
        let lo = super::attach_leg_loop(built, log, leg, &leg_file)?;
        let (dm_name, node, dev) = if leg.dm_layer {
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
            (
                Some(dm_name),
                PathBuf::from(format!("/dev/dm-{}", dev.minor)),
                dev,
            )
        } else {
            log.record(EventKind::NoDmLayer {
                leg: leg.name.clone(),
                dev: lo.dev.to_string(),
            });
            (None, lo.path.clone(), lo.dev)
        };
        devs.push(dev);
        built.push_leg(BuiltLeg {
            id: leg_id,
            name: leg.name.clone(),
            map: map_id,
            path,
            fuse,
            fuse_rules: Vec::new(),
            dm_name,
            node,
            dev,
            loop_dev: lo.dev,
            sectors,
            fault: None,
            scsi: None,
        });
    }
    let table = MirrorTable {
        log: MirrorLog {
            kind: LogKind::Core,
            region_size: (spec.region_size_bytes / 512) as u32,
            sync: LogSync::NoSync,
            block_on_error: false,
        },
        legs: devs
            .iter()
            .map(|&dev| MirrorLeg { dev, offset: 0 })
            .collect(),
        handle_errors: true,
        keep_log: false,
    };
    let dm_table = Table::single(sectors, Target::Mirror(table.clone()));
    let dm_name = naming::map_name(&map.name);
    let dev = built.dm.create(&dm_name, &dm_table)?;
    log.record(EventKind::MapDevice {
        map: map.name.clone(),
        dm_name: dm_name.clone(),
        dev: dev.to_string(),
        table: dm_table.render(),
    });
    built.maps.push(BuiltMap {
        id: map_id,
        name: map.name.clone(),
        dm_name,
        dev,
        table: MapTable {
            sectors,
            selector: rig::dm::multipath::Selector::RoundRobin,
            queue_if_no_path: false,
            bio_based: true,
        },
        groups: vec![scenario.legs_of(map_id).map(|(id, _)| id).collect()],
        mirror: Some(table),
    });
    Ok(())
}

/// The dm table of a mirror map: the `mirror` target, or `linear` over the last leg (the
/// kernel refuses a mirror of one leg: `mirror: Invalid number of mirrors`; lvm2 likewise
/// turns the LV linear).
fn dm_table(table: &MirrorTable, sectors: Sectors) -> Table {
    match table.legs.as_slice() {
        [only] => Table::single(
            sectors,
            Target::Linear {
                dev: only.dev,
                offset: Sectors(only.offset),
            },
        ),
        _ => Table::single(sectors, Target::Mirror(table.clone())),
    }
}

fn health_of(h: LegHealth) -> Health {
    match h {
        LegHealth::Alive => Health::Alive,
        LegHealth::Dead => Health::Dead,
        LegHealth::Sync => Health::Sync,
        LegHealth::Read => Health::Read,
        LegHealth::Flush => Health::Flush,
        LegHealth::Unknown => Health::Unknown,
    }
}

struct WatchedLeg {
    name: String,
    dev: DevNum,
    node: PathBuf,
    health: Vec<HealthSpan>,
}

struct WatchedMap {
    name: String,
    dm_name: String,
    device: String,
    region_size_bytes: u64,
    settings: mirror_monitor::MirrorSettings,
    /// The table as built (every leg, in setup order).
    setup: MirrorTable,
    /// The live table.
    current: MirrorTable,
    legs: Vec<WatchedLeg>,
    last: Option<StatusView>,
    last_resync_record: Option<(Duration, u64)>,
    resynced_regions: u64,
    redundant: bool,
    lost_since: Option<Duration>,
    lost_total: Duration,
    actions: Vec<MirrorActionReport>,
    final_table: String,
    final_status: String,
}

/// The mirror monitor and what it watches.
pub(super) struct MirrorDriver {
    monitor: Option<Monitor>,
    maps: Vec<WatchedMap>,
    origin: Instant,
    next_sample: Duration,
}

impl MirrorDriver {
    pub(super) fn new(scenario: &Scenario, built: &Built, origin: Instant) -> MirrorDriver {
        let mut maps = Vec::new();
        let mut setups = Vec::new();
        for m in built.maps.iter() {
            let Some(table) = &m.mirror else { continue };
            let spec = scenario.map(m.id);
            let region_size_bytes = match spec.kind {
                faults::MapKind::Mirror(s) => s.region_size_bytes,
                faults::MapKind::Multipath => 0,
            };
            let legs: Vec<WatchedLeg> = table
                .legs
                .iter()
                .map(|l| {
                    let b = built.leg_by_dev(l.dev).expect("built");
                    WatchedLeg {
                        name: b.name.clone(),
                        dev: l.dev,
                        node: b.node.clone(),
                        health: Vec::new(),
                    }
                })
                .collect();
            setups.push(MapSetup {
                name: m.name.clone(),
                legs: legs.iter().map(|l| l.name.clone()).collect(),
                settings: scenario.mirror.settings_for(&m.name),
            });
            maps.push(WatchedMap {
                name: m.name.clone(),
                dm_name: m.dm_name.clone(),
                device: m.dev.to_string(),
                region_size_bytes,
                settings: scenario.mirror.settings_for(&m.name),
                setup: table.clone(),
                current: table.clone(),
                legs,
                last: None,
                last_resync_record: None,
                resynced_regions: 0,
                redundant: true,
                lost_since: None,
                lost_total: Duration::ZERO,
                actions: Vec::new(),
                final_table: String::new(),
                final_status: String::new(),
            });
        }
        let now = origin.elapsed();
        MirrorDriver {
            monitor: (!setups.is_empty()).then(|| Monitor::new(setups, now)),
            maps,
            origin,
            next_sample: now,
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// When the driver wants to run next (a monitor deadline or the status cadence).
    pub(super) fn next_wakeup(&self) -> Option<Duration> {
        let monitor = self.monitor.as_ref()?;
        Some(
            monitor
                .next_deadline()
                .map_or(self.next_sample, |d| d.min(self.next_sample)),
        )
    }

    /// Reads every mirror map's status, records what changed and feeds the monitor.
    pub(super) fn observe(&mut self, built: &Built, log: &EventLog) -> Result<(), RunError> {
        if self.monitor.is_none() {
            return Ok(());
        }
        self.next_sample = self.now() + STATUS_CADENCE;
        for index in 0..self.maps.len() {
            self.observe_map(index, built, log)?;
        }
        Ok(())
    }

    fn read_status(&self, index: usize, built: &Built) -> Result<StatusView, RunError> {
        let m = &self.maps[index];
        if let [only] = m.current.legs.as_slice() {
            // Linear over the last leg: no redundancy, nothing to resync.
            let total = m.last.as_ref().map_or(0, |v| v.total_regions);
            return Ok(StatusView {
                legs: m
                    .legs
                    .iter()
                    .map(|l| (l.dev == only.dev).then_some(Health::Alive))
                    .collect(),
                in_sync_regions: total,
                total_regions: total,
                log_failed: false,
            });
        }
        let (_, status) = built.dm.mirror_status(&m.dm_name)?;
        let devs: Vec<DevNum> = m.legs.iter().map(|l| l.dev).collect();
        Ok(StatusView {
            legs: status
                .health_by_leg(&devs)
                .into_iter()
                .map(|h| h.map(health_of))
                .collect(),
            in_sync_regions: status.in_sync_regions,
            total_regions: status.total_regions,
            log_failed: status.log_failed(),
        })
    }

    fn observe_map(&mut self, index: usize, built: &Built, log: &EventLog) -> Result<(), RunError> {
        let view = self.read_status(index, built)?;
        let now = self.now();
        let t_ms = log.clock().now_ms();
        let m = &mut self.maps[index];
        let before = m.last.clone();
        for (i, leg) in m.legs.iter_mut().enumerate() {
            let from = before.as_ref().map(|b| b.legs[i]);
            let to = view.legs[i];
            if from != Some(to) {
                leg.health.push(HealthSpan {
                    t_ms: t_ms.max(0.0),
                    health: to,
                });
                if let Some(from) = from {
                    log.record(EventKind::Mirror(MirrorEvent::LegHealth {
                        map: m.name.clone(),
                        leg: leg.name.clone(),
                        device: leg.dev.to_string(),
                        from,
                        to,
                    }));
                }
            }
        }
        if let Some(b) = &before {
            if view.in_sync_regions > b.in_sync_regions && view.legs.iter().flatten().count() > 1 {
                m.resynced_regions += view.in_sync_regions - b.in_sync_regions;
            }
        }
        let changed = m
            .last_resync_record
            .is_none_or(|(_, r)| r != view.in_sync_regions);
        let due = m
            .last_resync_record
            .is_none_or(|(at, _)| now >= at + Duration::from_secs(1));
        if changed && (due || view.in_sync()) {
            m.last_resync_record = Some((now, view.in_sync_regions));
            log.record(EventKind::Mirror(MirrorEvent::Resync {
                map: m.name.clone(),
                in_sync: view.in_sync_regions,
                total: view.total_regions,
            }));
        }
        let redundant = view.in_sync() && view.legs.iter().all(|h| *h == Some(Health::Alive));
        if redundant != m.redundant {
            m.redundant = redundant;
            if redundant {
                if let Some(since) = m.lost_since.take() {
                    m.lost_total += now.saturating_sub(since);
                }
            } else {
                m.lost_since = Some(now);
            }
            log.record(EventKind::Mirror(MirrorEvent::Redundancy {
                map: m.name.clone(),
                redundant,
            }));
        }
        m.last = Some(view.clone());
        let actions = self.monitor.as_mut().expect("maps are watched").handle(
            now,
            Input::Status {
                map: index,
                status: view,
            },
        );
        self.perform(actions, built, log)
    }

    /// Timers due and the status cadence.
    pub(super) fn poll(&mut self, built: &Built, log: &EventLog) -> Result<(), RunError> {
        let Some(monitor) = self.monitor.as_mut() else {
            return Ok(());
        };
        let now = self.origin.elapsed();
        if monitor.next_deadline().is_some_and(|d| d <= now) {
            let actions = monitor.handle_timeout(now);
            self.perform(actions, built, log)?;
        }
        if self.now() >= self.next_sample {
            self.observe(built, log)?;
        }
        Ok(())
    }

    fn perform(
        &mut self,
        actions: Vec<Action>,
        built: &Built,
        log: &EventLog,
    ) -> Result<(), RunError> {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let index = action.map();
            let words = self
                .monitor
                .as_ref()
                .expect("maps are watched")
                .describe(&action);
            let outcome = self.carry_out(&action, built);
            let m = &mut self.maps[index];
            let leg = action.leg().map(|l| m.legs[l].name.clone());
            let failed = outcome.as_ref().err().cloned();
            let event = MirrorEvent::Action {
                map: m.name.clone(),
                leg: leg.clone(),
                action: action.clone(),
                words: words.clone(),
                failed: failed.clone(),
            };
            if !matches!(action, Action::ProbeLeg { .. } | Action::ScanSlice { .. }) {
                m.actions.push(MirrorActionReport {
                    t_ms: log.clock().now_ms(),
                    leg,
                    action: action.clone(),
                    words,
                    stable_words: event.words(true),
                    failed,
                });
            }
            log.record(EventKind::Mirror(event));
            let now = self.now();
            let monitor = self.monitor.as_mut().expect("maps are watched");
            let Some(kind) = action.kind() else { continue };
            let mut follow = Vec::new();
            match outcome {
                Ok(reply) => {
                    if let Some(reply) = reply {
                        follow.extend(monitor.handle(now, reply));
                    }
                    if !matches!(kind, ActionKind::ProbeLeg | ActionKind::ScanSlice) {
                        follow.extend(monitor.handle(
                            now,
                            Input::ActionDone {
                                map: index,
                                leg: action.leg(),
                                kind,
                            },
                        ));
                    }
                }
                Err(detail) => follow.extend(monitor.handle(
                    now,
                    Input::ActionFailed {
                        map: index,
                        leg: action.leg(),
                        kind,
                        detail,
                    },
                )),
            }
            queue.extend(follow);
            // The status after every completed table change or rewrite.
            if matches!(
                kind,
                ActionKind::RemoveLeg
                    | ActionKind::RestoreLeg
                    | ActionKind::RestartResync
                    | ActionKind::Relocate
            ) {
                let view = self.read_status(index, built)?;
                let now = self.now();
                let more = self.monitor.as_mut().expect("maps are watched").handle(
                    now,
                    Input::Status {
                        map: index,
                        status: view,
                    },
                );
                queue.extend(more);
            }
        }
        Ok(())
    }

    /// Performs one action; `Ok(Some(input))` is the answer to send (probe, scan).
    fn carry_out(&mut self, action: &Action, built: &Built) -> Result<Option<Input>, String> {
        let index = action.map();
        let m = &mut self.maps[index];
        let sectors = Sectors::from_bytes(
            built
                .maps
                .iter()
                .find(|b| b.name == m.name)
                .map(|b| b.table.sectors.0 * 512)
                .unwrap_or(0),
        );
        match action {
            Action::RemoveLeg { leg, .. } => {
                let dev = m.legs[*leg].dev;
                let mut table = m
                    .current
                    .without_leg(dev)
                    .ok_or_else(|| format!("leg {} is not in the table", m.legs[*leg].name))?;
                table.log.sync = LogSync::NoSync;
                // Without flushing: the writes the mirror holds since the failure are requeued
                // to the new table (a flushing suspend fails them with EIO).
                built
                    .dm
                    .reload_map(&m.dm_name, &dm_table(&table, sectors))
                    .map_err(|e| e.to_string())?;
                m.current = table;
                Ok(None)
            }
            Action::RestoreLeg { leg, .. } => {
                // The legs in the table first (the kernel resyncs from the first leg), then the
                // restored one; a full resync (the core log does not know what it missed).
                let dev = m.legs[*leg].dev;
                let mut table = m
                    .current
                    .without_leg(dev)
                    .unwrap_or_else(|| m.current.clone());
                let at = table.legs.len();
                table = table
                    .with_leg(at, MirrorLeg { dev, offset: 0 })
                    .ok_or("the leg is in the table already")?;
                table.log.sync = LogSync::Default;
                // Without flushing: the writes the mirror holds since the failure are requeued
                // to the new table (a flushing suspend fails them with EIO).
                built
                    .dm
                    .reload_map(&m.dm_name, &dm_table(&table, sectors))
                    .map_err(|e| e.to_string())?;
                m.current = table;
                Ok(None)
            }
            Action::RestartResync { .. } => {
                built
                    .dm
                    .suspend_resume(&m.dm_name)
                    .map_err(|e| e.to_string())?;
                Ok(None)
            }
            Action::Relocate {
                leg, blocks, from, ..
            } => {
                let src = open_direct(&m.legs[*from].node, false)?;
                let dst = open_direct(&m.legs[*leg].node, true)?;
                let mut buf = Aligned::new(BLOCK_SIZE as usize);
                for b in blocks {
                    let off = b * BLOCK_SIZE;
                    src.read_exact_at(buf.as_mut(), off)
                        .map_err(|e| format!("read block {b} of {}: {e}", m.legs[*from].name))?;
                    dst.write_all_at(buf.as_mut(), off)
                        .map_err(|e| format!("write block {b} of {}: {e}", m.legs[*leg].name))?;
                }
                Ok(None)
            }
            Action::ScanSlice {
                leg,
                regions,
                compare_with,
                ..
            } => {
                let per_region = m.region_size_bytes / BLOCK_SIZE;
                let total_blocks = sectors.0 * 512 / BLOCK_SIZE;
                let a = open_direct(&m.legs[*leg].node, false)?;
                let b = compare_with
                    .map(|c| open_direct(&m.legs[c].node, false))
                    .transpose()?;
                let mut buf_a = Aligned::new(BLOCK_SIZE as usize);
                let mut buf_b = Aligned::new(BLOCK_SIZE as usize);
                let (mut unreadable, mut differs) = (Vec::new(), Vec::new());
                for block in
                    regions.start * per_region..(regions.end * per_region).min(total_blocks)
                {
                    let off = block * BLOCK_SIZE;
                    if a.read_exact_at(buf_a.as_mut(), off).is_err() {
                        unreadable.push(block);
                        continue;
                    }
                    if let Some(b) = &b {
                        if b.read_exact_at(buf_b.as_mut(), off).is_ok()
                            && buf_a.as_mut() != buf_b.as_mut()
                        {
                            differs.push(block);
                        }
                    }
                }
                let outcome = if !unreadable.is_empty() {
                    ScanOutcome::Unreadable(unreadable)
                } else if !differs.is_empty() {
                    ScanOutcome::Differs(differs)
                } else {
                    ScanOutcome::Ok
                };
                Ok(Some(Input::ScanResult {
                    map: index,
                    leg: *leg,
                    regions: regions.clone(),
                    outcome,
                }))
            }
            Action::ProbeLeg { leg, .. } => {
                // A read of the leg's first block, straight from its device (no write: the
                // workload uses the whole map, so there is no scratch spot to write).
                let ok = open_direct(&m.legs[*leg].node, false).is_ok_and(|f| {
                    let mut buf = Aligned::new(BLOCK_SIZE as usize);
                    f.read_exact_at(buf.as_mut(), 0).is_ok()
                });
                Ok(Some(Input::ProbeResult {
                    map: index,
                    leg: *leg,
                    ok,
                }))
            }
            Action::Note { .. } | Action::GiveUp { .. } => Ok(None),
        }
    }

    /// Final figures, read before teardown.
    pub(super) fn finish(&mut self, built: &Built, log: &EventLog) -> Vec<MirrorMapReport> {
        let _ = self.observe(built, log);
        let now = self.now();
        self.maps
            .iter_mut()
            .map(|m| {
                if let Some(since) = m.lost_since.take() {
                    m.lost_total += now.saturating_sub(since);
                }
                m.final_table = built
                    .dm
                    .table(&m.dm_name)
                    .map(|t| t.join("\n"))
                    .unwrap_or_default();
                m.final_status = built
                    .dm
                    .mirror_status(&m.dm_name)
                    .map(|(l, _)| l.render())
                    .unwrap_or_else(|e| e.to_string());
                let last = m.last.clone();
                MirrorMapReport {
                    name: m.name.clone(),
                    dm_name: m.dm_name.clone(),
                    device: m.device.clone(),
                    region_size_bytes: m.region_size_bytes,
                    settings: m.settings,
                    legs: m
                        .legs
                        .iter()
                        .enumerate()
                        .map(|(i, l)| MirrorLegReport {
                            leg: l.name.clone(),
                            device: l.dev.to_string(),
                            health: l.health.clone(),
                            final_health: last.as_ref().and_then(|v| v.legs[i]),
                        })
                        .collect(),
                    final_in_sync: last.as_ref().map_or(0, |v| v.in_sync_regions),
                    total_regions: last.as_ref().map_or(0, |v| v.total_regions),
                    final_table: m.final_table.clone(),
                    final_status: m.final_status.clone(),
                    resynced_regions: m.resynced_regions,
                    redundancy_lost_ms: m.lost_total.as_secs_f64() * 1000.0,
                    redundant_at_end: m.redundant,
                    actions: m.actions.clone(),
                }
            })
            .collect()
    }

    /// The setup table of a map (for tests and the report).
    #[allow(dead_code)]
    pub(super) fn setup_table(&self, index: usize) -> &MirrorTable {
        &self.maps[index].setup
    }
}

fn open_direct(path: &Path, write: bool) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

/// A buffer aligned for O_DIRECT.
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let storage = vec![0u8; len + 4096];
        let start = storage.as_ptr().align_offset(4096);
        Aligned {
            storage,
            start,
            len,
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}
