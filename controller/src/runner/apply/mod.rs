//! Fault application: what each step of a scenario's fault timeline does to its leg, and how the
//! event log words it.
//!
//! Each layer a fault kind can act on (`faults::Layer`, given by the table of kinds) has one
//! [`FaultBackend`]: [`dm::DmBackend`] swaps the leg's dm table and sends its target messages,
//! [`fuse::FuseBackend`] changes the rules of the FUSE file server under the leg. [`BACKENDS`]
//! is the registration point; [`apply_step`] picks the backend of a step's kind there. The
//! kinds of the leg as a whole are carried out here: `kernel_fail` (a `fail_path` message to the
//! map; the leg is not touched) and `restore` (every backend ends its faults on the leg).
//!
//! [`scsi::ScsiBackend`] changes the rules of pathrig's SCSI array on the leg's path. A new layer
//! is one `FaultBackend` implementation and one line in [`BACKENDS`].
//!
//! Every description recorded is deterministic (no measured value): report.txt shows them and
//! the VM suite snapshots it.

mod dm;
mod fuse;
mod scsi;

use faults::{FaultKind, Layer, Scenario, Step, StepAction};
use rig::dm::mpath_status::KernelPathState;
use rig::dm::MultipathMessage;

use super::{Built, BuiltLeg, KernelWatch, RunError};
use crate::events::{EventKind, EventLog, FaultChange, Window};

pub(super) use dm::healthy_table;
pub(super) use fuse::release_hung_io;
pub(super) use scsi::release_held_commands;

/// What a backend works with while it carries out one step on one leg.
pub(super) struct StepCx<'a> {
    pub scenario: &'a Scenario,
    pub built: &'a mut Built,
    pub log: &'a EventLog,
    pub watch: &'a mut KernelWatch,
    /// The leg the step is on (index into `Built::legs`).
    pub leg: usize,
    /// Which window of a repeating fault the step belongs to.
    pub window: Option<Window>,
    /// No path manager runs: the rig reinstates a path once its leg is healthy again.
    pub rig_reinstates: bool,
}

impl StepCx<'_> {
    fn leg(&self) -> &BuiltLeg {
        &self.built.legs[self.leg]
    }
}

/// One layer's way of putting faults into effect on a leg.
pub(super) trait FaultBackend: Sync {
    /// The layer whose fault kinds this backend carries out.
    fn layer(&self) -> Layer;

    /// Carries out `step` (a fault of this layer starts, or its window ends) on the leg and
    /// records it in the event log.
    fn step(&self, cx: &mut StepCx<'_>, step: &Step) -> Result<(), RunError>;

    /// A `restore` of the whole leg: ends every fault of this layer on it (nothing when the leg
    /// has no such layer) and records what it did.
    fn restore(&self, cx: &mut StepCx<'_>) -> Result<(), RunError>;

    /// Whether faults of this layer are in force on the leg.
    fn in_force(&self, leg: &BuiltLeg) -> bool;
}

/// Every fault backend, one per layer. A leg-wide `restore` asks them in this order (so the dm
/// table swap, which may reinstate the path, comes last).
pub(super) static BACKENDS: &[&dyn FaultBackend] =
    &[&fuse::FuseBackend, &scsi::ScsiBackend, &dm::DmBackend];

/// The backend that carries out kinds of `layer` (none for the leg-wide kinds).
fn backend_for(layer: Layer) -> Option<&'static dyn FaultBackend> {
    BACKENDS.iter().copied().find(|b| b.layer() == layer)
}

/// Which window of a repeating fault a step belongs to.
fn window_note(scenario: &Scenario, step: &Step) -> Option<Window> {
    let times = scenario.fault(step.fault).times();
    (times > 1).then_some(Window {
        n: step.repetition + 1,
        of: times,
    })
}

/// Carries out one step of the timeline on its leg and records it.
pub(super) fn apply_step(
    scenario: &Scenario,
    built: &mut Built,
    log: &EventLog,
    watch: &mut KernelWatch,
    step: &Step,
    rig_reinstates: bool,
) -> Result<(), RunError> {
    let leg = built.slot(step.leg);
    let window = window_note(scenario, step);
    let step_kind = match &step.action {
        StepAction::Apply(kind) => kind,
        StepAction::Restore => &scenario.fault(step.fault).kind,
    };
    let mut cx = StepCx {
        scenario,
        built,
        log,
        watch,
        leg,
        window,
        rig_reinstates,
    };
    if let Some(backend) = backend_for(step_kind.layer()) {
        return backend.step(&mut cx, step);
    }
    assert!(
        matches!(step.action, StepAction::Apply(_)),
        "leg-wide kinds are instants: they have no window to end"
    );
    match step_kind {
        FaultKind::KernelFail => {
            let change = FaultChange::Applied {
                fault: FaultKind::KernelFail,
                window,
            };
            kernel_fail(cx.built, log, leg, change)
        }
        FaultKind::Restore => {
            for backend in BACKENDS {
                backend.restore(&mut cx)?;
            }
            if cx.leg().scsi.is_some() {
                log.record(EventKind::Fault {
                    leg: cx.leg().name.clone(),
                    change: FaultChange::ScsiRestored,
                });
            } else if cx.leg().dm_name.is_none() {
                log.record(EventKind::Fault {
                    leg: cx.leg().name.clone(),
                    change: FaultChange::FuseRestored,
                });
            }
            Ok(())
        }
        other => unreachable!(
            "kind {} of layer {:?} has no backend",
            other.name(),
            other.layer()
        ),
    }
}

/// `kernel_fail`: the kernel fails the path as after a trespass; the leg keeps working.
fn kernel_fail(
    built: &Built,
    log: &EventLog,
    leg_index: usize,
    change: FaultChange,
) -> Result<(), RunError> {
    let leg = &built.legs[leg_index];
    let map = built.map(leg.map);
    let at = log.clock().now_ms();
    built
        .dm
        .send(&map.dm_name, MultipathMessage::FailPath(leg.dev))?;
    log.record_at(
        at,
        EventKind::Fault {
            leg: leg.name.clone(),
            change,
        },
    );
    Ok(())
}

/// Stand-in for the path manager: when a leg is restored, reinstate its path if the kernel failed it.
fn reinstate_for_restored_leg(cx: &mut StepCx<'_>) -> Result<(), RunError> {
    let (built, log, leg_index) = (&*cx.built, cx.log, cx.leg);
    let leg = &built.legs[leg_index];
    let map = built.map(leg.map);
    if map.mirror.is_some() {
        // A mirror has no paths to reinstate; its monitor sees the leg come back.
        return Ok(());
    }
    let failed = built
        .dm
        .multipath_status(&map.dm_name)?
        .status
        .path(leg.dev)
        .is_some_and(|p| p.state == KernelPathState::Failed);
    if failed {
        built
            .dm
            .send(&map.dm_name, MultipathMessage::ReinstatePath(leg.dev))?;
        log.record(EventKind::RigReinstated {
            map: map.name.clone(),
            leg: leg.name.clone(),
        });
        cx.watch.observe(built, log)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_but_the_leg_has_exactly_one_backend() {
        for layer in [Layer::Dm, Layer::Fuse, Layer::Scsi] {
            let serving = BACKENDS.iter().filter(|b| b.layer() == layer).count();
            assert_eq!(serving, 1, "{layer:?}");
        }
        // restore and kernel_fail act on the leg as a whole, here.
        assert!(backend_for(FaultKind::Restore.layer()).is_none());
        assert!(backend_for(FaultKind::KernelFail.layer()).is_none());
        assert_eq!(
            backend_for(FaultKind::Fail.layer()).map(|b| b.layer()),
            Some(Layer::Dm)
        );
        let hang = FaultKind::Hang {
            op: faults::IoOp::Any,
        };
        assert_eq!(
            backend_for(hang.layer()).map(|b| b.layer()),
            Some(Layer::Fuse)
        );
    }
}
