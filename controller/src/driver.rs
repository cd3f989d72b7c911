//! The path manager's driver: connects the sans-IO [`path_manager::Core`] to the kernel in the
//! guest. It turns each map's status (read after every dm event) into kernel inputs, runs the
//! configured path checker ([`crate::checkers`]) on the leg devices, its IO and the marginal-path
//! sample reads on one io_uring ([`rig::checker`]), feeds results and
//! ticks to the core, and carries out the core's actions as dm messages, recording every action
//! and its reason in the event log with source `manager`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use faults::{LegId, MapId, Scenario};
use rig::checker::tur::{TurOutcome, TurVerdict};
use rig::checker::{CheckOutcome, CheckerRing};
use rig::dm::mpath_status::{KernelPathState, MultipathStatus};
use rig::dm::multipath::Selector;
use rig::dm::{DevNum, Dm, MultipathMessage, MultipathTable, Sectors, Table, Target};

use crate::checkers::{checker_for, PathChecker, Started};
use crate::events::{CheckerVerdict, EventKind, EventLog};
use path_manager::{
    Action, CheckResult, Core, Input, KernelPath, MapSetup, PathRef, PathSetup, SampleOutcome,
};

/// What a read on the ring is for: a checker round's check, or one read of a marginal-path
/// sample (its offset in 4 KiB blocks from the start of the leg).
#[derive(Debug, Clone, Copy)]
pub enum IoKey {
    Check(u64, PathRef),
    Sample(PathRef),
}

/// Sample reads walk the first MiB of a leg (the smallest map is 1 MiB), block after block,
/// so a burst is a run of continuous reads, like real IO.
const SAMPLE_SPAN_BLOCKS: u64 = 256;

/// One map as the driver knows it.
struct DriverMap {
    dm_name: String,
    /// What a `Regroup` reload needs to rebuild the map's table.
    table: MapTable,
    /// Path index → the leg's dm device number (as in the table) and its device node.
    devs: Vec<DevNum>,
    nodes: Vec<PathBuf>,
    checker: Box<dyn PathChecker>,
    checker_timeout: Duration,
}

/// What the runner tells the driver about one built map.
pub struct BuiltMapInfo<'a> {
    pub id: MapId,
    pub name: &'a str,
    pub dm_name: &'a str,
    /// Legs in the order of `Scenario::legs_of(map)`, with the device numbers the table names
    /// and the device nodes to open them through.
    pub legs: Vec<(LegId, &'a str, DevNum, PathBuf)>,
    /// Legs per table group.
    pub groups: &'a [Vec<LegId>],
    pub table: MapTable,
}

/// The parts of a map's table other than its groups, kept to rebuild it on a `Regroup`.
#[derive(Debug, Clone, Copy)]
pub struct MapTable {
    pub sectors: Sectors,
    pub selector: Selector,
    /// Updated as the manager sends queue_if_no_path / fail_if_no_path, so a reload keeps the
    /// queueing the map has at that moment.
    pub queue_if_no_path: bool,
    pub bio_based: bool,
}

impl MapTable {
    /// The map's table with these groups of path devices: the one place a map table is made
    /// (at build and at every regroup).
    pub fn table(&self, groups: impl IntoIterator<Item = Vec<DevNum>>) -> Table {
        Table::single(
            self.sectors,
            Target::Multipath(MultipathTable::new(
                self.queue_if_no_path,
                self.bio_based,
                self.selector,
                groups,
            )),
        )
    }
}

/// The checks started together (by one input to the core). Their results go back to the core
/// together and in path order once all are in, like multipathd's checker loop walking its paths
/// in order — so two paths found down in the same tick are always reported in the same order.
struct Round {
    pending: usize,
    results: BTreeMap<PathRef, (CheckResult, Duration)>,
}

pub struct Driver {
    core: Core,
    /// Checker reads (keyed by round number and path) and marginal-path sample reads.
    checker: CheckerRing<IoKey>,
    /// Per map and path: the block the next sample read starts at.
    sample_block: Vec<Vec<u64>>,
    rounds: BTreeMap<u64, Round>,
    next_round: u64,
    maps: Vec<DriverMap>,
    origin: Instant,
}

impl Driver {
    /// A driver for the scenario's maps (see [`crate::managers::start`] for the scenario's
    /// manager kind).
    pub fn new(
        scenario: &Scenario,
        maps: &[BuiltMapInfo<'_>],
        origin: Instant,
    ) -> std::io::Result<Driver> {
        let mut setups = Vec::new();
        let mut driver_maps = Vec::new();
        for map in maps {
            let settings = scenario.settings(map.id).cloned().unwrap_or_default();
            // Each leg's path number in the map: its place in `legs`.
            let path_of: HashMap<LegId, usize> = map
                .legs
                .iter()
                .enumerate()
                .map(|(i, (id, ..))| (*id, i))
                .collect();
            let groups = map
                .groups
                .iter()
                .map(|g| g.iter().map(|leg| path_of[leg]).collect())
                .collect();
            let paths = map
                .legs
                .iter()
                .map(|(id, leg, _, _)| PathSetup {
                    leg: leg.to_string(),
                    prio: scenario.leg(*id).prio,
                })
                .collect();
            driver_maps.push(DriverMap {
                dm_name: map.dm_name.to_string(),
                table: map.table,
                devs: map.legs.iter().map(|(_, _, dev, _)| *dev).collect(),
                nodes: map.legs.iter().map(|(.., node)| node.clone()).collect(),
                checker: checker_for(settings.path_checker.value),
                checker_timeout: settings.checker_timeout.value,
            });
            setups.push(MapSetup {
                name: map.name.to_string(),
                settings,
                groups,
                paths,
            });
        }
        let total_paths: usize = driver_maps.iter().map(|m| m.devs.len()).sum();
        let checker = CheckerRing::new((total_paths.max(1) as u32 * 2).max(256))?;
        let sample_block = driver_maps.iter().map(|m| vec![0; m.devs.len()]).collect();
        let now = origin.elapsed();
        Ok(Driver {
            core: Core::new(setups, now),
            checker,
            sample_block,
            rounds: BTreeMap::new(),
            next_round: 0,
            maps: driver_maps,
            origin,
        })
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The checker ring's completion fd, to poll along with the dm events.
    pub fn checker_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.checker.event_fd()
    }

    /// When the driver next needs to run (a core timer or a checker timeout).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let core = self.core.next_wakeup().map(|d| self.origin + d);
        // A round whose checks all answered without IO goes to the core at once.
        let answered = self
            .rounds
            .first_key_value()
            .filter(|(_, r)| r.pending == 0)
            .map(|_| Instant::now());
        [core, self.checker.next_deadline(), answered]
            .into_iter()
            .flatten()
            .min()
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The kernel's view of map `index` changed (or is read for the first time).
    pub fn kernel_status(
        &mut self,
        index: usize,
        status: &MultipathStatus,
        dm: &Dm,
        log: &EventLog,
    ) {
        let map = &self.maps[index];
        let paths = map
            .devs
            .iter()
            .map(|dev| {
                let path = status.path(*dev);
                KernelPath {
                    active: path.is_some_and(|p| p.state == KernelPathState::Active),
                    fail_count: path.map(|p| p.fail_count).unwrap_or(0),
                }
            })
            .collect();
        let active_group = status.current_group.checked_sub(1).map(|g| g as usize);
        let input = Input::KernelStatus {
            map: index,
            paths,
            active_group,
        };
        let actions = self.core.handle(self.now(), input);
        self.execute(actions, dm, log);
    }

    /// Runs due timers and collects finished checks.
    pub fn poll(&mut self, dm: &Dm, log: &EventLog) {
        for done in self.checker.collect(Instant::now()) {
            let (round, path) = match done.key {
                IoKey::Check(round, path) => (round, path),
                IoKey::Sample(path) => {
                    // One answer per read; the ring reports a timeout once and drops the late
                    // completion.
                    let outcome = match done.outcome {
                        CheckOutcome::Up => SampleOutcome::Ok,
                        CheckOutcome::Down { errno } => SampleOutcome::Error {
                            detail: format!("{}", nix::errno::Errno::from_raw(errno)),
                        },
                        CheckOutcome::TimedOut => SampleOutcome::TimedOut,
                        // Samples are reads; a TUR answer here would be a driver bug.
                        CheckOutcome::Tur(o) => SampleOutcome::Error { detail: o.detail() },
                    };
                    let input = Input::SampleResult {
                        path,
                        outcome,
                        latency: done.latency,
                    };
                    let actions = self.core.handle(self.now(), input);
                    self.execute(actions, dm, log);
                    continue;
                }
            };
            if let Some(r) = self.rounds.get_mut(&round) {
                r.pending -= 1;
            }
            self.check_done(round, path, done.outcome, done.latency, log);
        }
        // Complete rounds go to the core oldest first, each in path order.
        while let Some(entry) = self.rounds.first_entry() {
            if entry.get().pending > 0 {
                break;
            }
            let round = entry.remove();
            for (path, (result, latency)) in round.results {
                let input = Input::CheckerResult {
                    path,
                    result,
                    latency,
                };
                let actions = self.core.handle(self.now(), input);
                self.execute(actions, dm, log);
            }
        }
        if self.core.next_wakeup().is_some_and(|at| at <= self.now()) {
            let actions = self.core.handle(self.now(), Input::Tick);
            self.execute(actions, dm, log);
        }
    }

    /// One check's answer: recorded, and kept for its round.
    fn check_done(
        &mut self,
        round: u64,
        path: PathRef,
        outcome: CheckOutcome,
        latency: Duration,
        log: &EventLog,
    ) {
        let map = &self.maps[path.map];
        let node = map.nodes[path.path].display().to_string();
        let (result, verdict) = match outcome {
            CheckOutcome::Up => (CheckResult::Up, CheckerVerdict::Up),
            CheckOutcome::Down { errno } => {
                let name = format!("{}", nix::errno::Errno::from_raw(errno));
                (
                    CheckResult::Down {
                        detail: name.clone(),
                    },
                    CheckerVerdict::Down { errno: name },
                )
            }
            CheckOutcome::TimedOut => (CheckResult::TimedOut, CheckerVerdict::TimedOut),
            CheckOutcome::Tur(outcome) => tur_result(&outcome),
        };
        log.record(EventKind::CheckerResult {
            dm_name: map.dm_name.clone(),
            node,
            verdict,
            latency_ms: latency.as_secs_f64() * 1000.0,
        });
        if let Some(r) = self.rounds.get_mut(&round) {
            r.results.insert(path, (result, latency));
        }
    }

    /// The action's line for the event log, and its wording for report.txt: the description
    /// ends with the reason, which report.txt gets without measured times.
    fn describe(&self, action: &Action) -> (String, String) {
        let line = self.core.describe(action);
        let stable = match action.reason() {
            Some(reason) => line.replacen(&reason.to_string(), &reason.timeline_text(), 1),
            None => line.clone(),
        };
        (line, stable)
    }

    /// The event of an action carried out (or tried: `failed` says why it did not take).
    fn action_event(
        &self,
        action: &Action,
        words: String,
        stable_words: String,
        failed: Option<String>,
    ) -> EventKind {
        let view = self.core.map_view(action.map());
        let path = match action {
            Action::RunChecker { path }
            | Action::FailPath { path, .. }
            | Action::ReinstatePath { path, .. }
            | Action::SampleIo { path, .. } => Some(path.path),
            Action::Note { path, .. } => *path,
            _ => None,
        };
        EventKind::Manager {
            leg: path.map(|p| view.paths[p].leg.clone()),
            map: view.name,
            action: action.clone(),
            words,
            stable_words,
            failed,
        }
    }

    fn execute(&mut self, actions: Vec<Action>, dm: &Dm, log: &EventLog) {
        let round = self.next_round;
        self.next_round += 1;
        for action in actions {
            if let Action::RunChecker { path } = action {
                let map = &self.maps[path.map];
                let entry = self.rounds.entry(round).or_insert_with(|| Round {
                    pending: 0,
                    results: BTreeMap::new(),
                });
                entry.pending += 1;
                let started = map.checker.start(
                    &mut self.checker,
                    IoKey::Check(round, path),
                    &map.nodes[path.path],
                    map.checker_timeout,
                );
                if let Started::Answered(outcome) = started {
                    if let Some(r) = self.rounds.get_mut(&round) {
                        r.pending -= 1;
                    }
                    self.check_done(round, path, outcome, Duration::ZERO, log);
                }
                continue;
            }
            if let Action::SampleIo {
                path,
                count,
                timeout,
            } = action
            {
                let node = &self.maps[path.map].nodes[path.path];
                let block = &mut self.sample_block[path.map][path.path];
                for _ in 0..count {
                    let offset = (*block % SAMPLE_SPAN_BLOCKS) * rig::checker::CHECK_SIZE as u64;
                    *block += 1;
                    self.checker
                        .start_at(IoKey::Sample(path), node, offset, timeout);
                }
                continue;
            }
            let map = &self.maps[action.map()];
            let message = match &action {
                Action::FailPath { path, .. } => {
                    Some(MultipathMessage::FailPath(map.devs[path.path]))
                }
                Action::ReinstatePath { path, .. } => {
                    Some(MultipathMessage::ReinstatePath(map.devs[path.path]))
                }
                Action::SwitchGroup { group, .. } => {
                    Some(MultipathMessage::SwitchGroup(*group as u32 + 1))
                }
                Action::QueueIfNoPath { .. } => Some(MultipathMessage::QueueIfNoPath),
                Action::FailIfNoPath { .. } => Some(MultipathMessage::FailIfNoPath),
                Action::Note { .. } | Action::RunChecker { .. } | Action::SampleIo { .. } => None,
                // A reload, not a message: handled below.
                Action::Regroup { .. } => None,
            };
            if let Action::Regroup { groups, .. } = &action {
                let (line, stable) = self.describe(&action);
                let table = map.table.table(
                    groups
                        .iter()
                        .map(|g| g.iter().map(|&p| map.devs[p]).collect()),
                );
                // The reload's resume raises a dm event; the runner then reads the new status
                // and hands it to the core, which re-fails paths that must stay failed.
                let failed = dm
                    .reload_map(&map.dm_name, &table)
                    .err()
                    .map(|err| format!("the reload failed: {err}"));
                log.record(self.action_event(&action, line, stable, failed));
                continue;
            }
            match &action {
                Action::QueueIfNoPath { map: m, .. } => self.maps[*m].table.queue_if_no_path = true,
                Action::FailIfNoPath { map: m, .. } => self.maps[*m].table.queue_if_no_path = false,
                _ => {}
            }
            let map = &self.maps[action.map()];
            let (line, stable) = self.describe(&action);
            let failed = match message.map(|m| dm.send(&map.dm_name, m)) {
                Some(Err(err)) => Some(format!("the message failed: {err}")),
                _ => None,
            };
            log.record(self.action_event(&action, line, stable, failed));
        }
    }

    /// Waits (at most `limit`) for checks still in flight, so the leg devices they hold open can be
    /// removed.
    pub fn finish(mut self, limit: Duration) {
        let end = Instant::now() + limit;
        while self.checker.in_flight() > 0 && Instant::now() < end {
            let mut fds = [libc::pollfd {
                fd: self.checker.event_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = end
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as i32;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
            let _ = self.checker.collect(Instant::now());
        }
    }
}

/// A `tur` check's answer for the core and for the event log. The verdicts map as multipathd
/// maps its tur checker's: up, ghost (standby) and pending (ALUA transition) keep their own
/// meaning; disconnected (LUN unmapped), no SG_IO and every other failure count as down.
fn tur_result(outcome: &TurOutcome) -> (CheckResult, CheckerVerdict) {
    let cause = || outcome.cause().unwrap_or_else(|| "failed".into());
    let (result, state) = match outcome.verdict {
        TurVerdict::Up => (CheckResult::Up, "up"),
        TurVerdict::Ghost => (CheckResult::Ghost, "ghost"),
        TurVerdict::Transitioning => (CheckResult::Pending, "pending"),
        TurVerdict::Down | TurVerdict::Disconnected | TurVerdict::Unsupported => {
            (CheckResult::Down { detail: cause() }, "down")
        }
    };
    let verdict = CheckerVerdict::Scsi {
        state: state.into(),
        detail: outcome.detail(),
        attempts: outcome.attempts,
        reply: outcome.reply.clone().ok(),
    };
    (result, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::checker::tur::ScsiReply;

    fn outcome(verdict: TurVerdict, reply: Result<ScsiReply, i32>) -> TurOutcome {
        TurOutcome {
            verdict,
            reply,
            attempts: 1,
        }
    }

    #[test]
    fn tur_verdicts_map_to_the_cores_results() {
        let (up, _) = tur_result(&outcome(TurVerdict::Up, Ok(ScsiReply::good())));
        assert_eq!(up, CheckResult::Up);
        let standby = ScsiReply::check_condition(2, 4, 0x0b);
        let (ghost, verdict) = tur_result(&outcome(TurVerdict::Ghost, Ok(standby.clone())));
        assert_eq!(ghost, CheckResult::Ghost);
        assert_eq!(
            verdict,
            CheckerVerdict::Scsi {
                state: "ghost".into(),
                detail: "ghost: NOT READY 04/0b".into(),
                attempts: 1,
                reply: Some(standby),
            }
        );
        let transition = ScsiReply::check_condition(2, 4, 0x0a);
        let (pending, _) = tur_result(&outcome(TurVerdict::Transitioning, Ok(transition)));
        assert_eq!(pending, CheckResult::Pending);
        let stopped = ScsiReply::check_condition(2, 4, 2);
        let (down, _) = tur_result(&outcome(TurVerdict::Down, Ok(stopped)));
        assert_eq!(
            down,
            CheckResult::Down {
                detail: "NOT READY 04/02".into()
            }
        );
        let unmapped = ScsiReply::check_condition(5, 0x25, 0);
        let (down, _) = tur_result(&outcome(TurVerdict::Disconnected, Ok(unmapped)));
        assert_eq!(
            down,
            CheckResult::Down {
                detail: "ILLEGAL REQUEST 25/00".into()
            }
        );
        let (down, verdict) = tur_result(&outcome(TurVerdict::Unsupported, Err(libc::ENOTTY)));
        assert_eq!(
            down,
            CheckResult::Down {
                detail: "ENOTTY".into()
            }
        );
        assert!(matches!(verdict, CheckerVerdict::Scsi { reply: None, .. }));
    }
}
