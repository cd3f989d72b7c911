//! The runner's side of time-critical IO (`[[critical]]`): each writer's engine settings, its
//! thread (started with the workloads at clock zero, stopped with them), and the usable-path
//! sets the kernel watch publishes after every dm event, one per map with a multiplexing
//! writer, from which the writers pick the paths for each IO.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use faults::critical::{CriticalMode, CriticalOp, CriticalSpec};
use faults::{MapId, Scenario};
use rig::dm::mpath_status::{KernelPathState, MultipathStatus};
use rig::workload::critical::{self, CriticalConfig, CriticalPath, CriticalReport, UsablePaths};
use rig::workload::Op;

use super::{Built, RunError, StartGate};

/// After the workloads' end, how long a writer waits for copies still out (the rig lets go of
/// FUSE hangs 2 s after the end).
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// The blocks below the lowest critical area of `map` are the bulk workload's (the whole map
/// when it has no writer).
pub(super) fn bulk_size(scenario: &Scenario, map: MapId) -> u64 {
    scenario
        .critical
        .iter()
        .filter(|c| c.map == map)
        .map(|c| c.offset)
        .min()
        .unwrap_or(u64::MAX)
        .min(scenario.map(map).size_bytes)
}

/// The usable-path set of every map a multiplexing writer uses, by map name.
pub(super) fn usable_sets(scenario: &Scenario) -> HashMap<String, Arc<UsablePaths>> {
    scenario
        .critical
        .iter()
        .filter(|c| c.mode == CriticalMode::Multiplex)
        .map(|c| {
            (
                scenario.map(c.map).name.clone(),
                Arc::new(UsablePaths::default()),
            )
        })
        .collect()
}

/// The paths `status` lists as usable (active; in any group: dm may switch to any of them).
pub(super) fn publish(usable: &UsablePaths, status: &MultipathStatus) {
    usable.publish(
        status
            .paths()
            .filter(|p| p.state == KernelPathState::Active)
            .map(|p| (p.dev.major, p.dev.minor))
            .collect(),
    );
}

fn config(scenario: &Scenario, built: &Built, index: usize, spec: &CriticalSpec) -> CriticalConfig {
    let map = built.map(spec.map);
    CriticalConfig {
        mode: match spec.mode {
            CriticalMode::ThroughMap => critical::CriticalMode::ThroughMap,
            CriticalMode::Multiplex => critical::CriticalMode::Multiplex,
        },
        op: match spec.op {
            CriticalOp::Write => Op::Write,
            CriticalOp::Read => Op::Read,
        },
        interval: spec.interval,
        deadline: spec.deadline,
        offset: spec.offset,
        size: spec.size,
        block_size: spec.block_size,
        map_size: scenario.map(spec.map).size_bytes,
        // Apart from the bulk workloads' seeds (scenario seed + workload index).
        seed: scenario.seed.wrapping_add(1000 + index as u64),
        duration: scenario.run_length(),
        map_node: PathBuf::from(format!("/dev/dm-{}", map.dev.minor)),
        paths: scenario
            .legs_of(spec.map)
            .map(|(id, _)| {
                let l = built.leg(id);
                CriticalPath {
                    label: l.name.clone(),
                    dev: (l.dev.major, l.dev.minor),
                    node: l.node.clone(),
                }
            })
            .collect(),
        drain_limit: DRAIN_LIMIT,
    }
}

/// One writer's thread.
pub(super) struct CriticalThread {
    pub name: String,
    handle: Option<std::thread::JoinHandle<std::io::Result<CriticalReport>>>,
    /// Closes when the thread ends.
    pub done: OwnedFd,
}

impl CriticalThread {
    pub fn join(&mut self) -> std::io::Result<CriticalReport> {
        self.handle
            .take()
            .expect("a critical thread is joined once")
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the critical IO thread panicked")))
    }
}

/// Starts writer `index`; it waits at `gate` with the workloads, then runs until they stop.
pub(super) fn spawn(
    scenario: &Scenario,
    built: &Built,
    index: usize,
    usable: &HashMap<String, Arc<UsablePaths>>,
    origin: std::time::Instant,
    stop: &Arc<AtomicBool>,
    gate: &StartGate,
) -> Result<CriticalThread, RunError> {
    let spec = &scenario.critical[index];
    let config = config(scenario, built, index, spec);
    let usable = usable
        .get(&scenario.map(spec.map).name)
        .cloned()
        .unwrap_or_default();
    let (done_read, done_write) = nix::unistd::pipe().map_err(|e| RunError::Workload(e.into()))?;
    let stop = stop.clone();
    let gate = gate.clone();
    let handle = std::thread::Builder::new()
        .name(format!("critical-{}", spec.name))
        .spawn(move || {
            let _done = done_write;
            if !gate.wait() {
                return Err(std::io::Error::other(
                    "not started: another workload failed to start",
                ));
            }
            critical::run(&config, &usable, origin, &stop)
        })
        .map_err(RunError::Workload)?;
    Ok(CriticalThread {
        name: spec.name.clone(),
        handle: Some(handle),
        done: done_read,
    })
}
