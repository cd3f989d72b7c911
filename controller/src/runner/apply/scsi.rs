//! The SCSI backend: a fault of the SCSI layer is a rule of pathrig's SCSI array on the leg's
//! path (no response, CHECK CONDITION, a status, latency; per command class, LBA range and
//! seeded probability), or the path's port going offline. A fault's start adds its rule, the end
//! of its window takes it away (commands it held are then answered); the array changes rules at
//! once, without touching the initiator.

use faults::{FaultKind, IoOp, Layer, Step, StepAction};
use rig::scsi::{ScsiAction, ScsiOp, ScsiRule};

use super::super::{Built, BuiltLeg, RunError};
use super::{reinstate_for_restored_leg, FaultBackend, StepCx, BACKENDS};
use crate::events::{EventKind, FaultChange};

pub(super) struct ScsiBackend;

impl FaultBackend for ScsiBackend {
    fn layer(&self) -> Layer {
        Layer::Scsi
    }

    fn step(&self, cx: &mut StepCx<'_>, step: &Step) -> Result<(), RunError> {
        scsi_step(cx, step)?;
        let healthy = BACKENDS.iter().all(|b| !b.in_force(cx.leg()));
        if matches!(step.action, StepAction::Restore) && healthy && cx.rig_reinstates {
            reinstate_for_restored_leg(cx)?;
        }
        Ok(())
    }

    fn restore(&self, cx: &mut StepCx<'_>) -> Result<(), RunError> {
        let leg = &mut cx.built.legs[cx.leg];
        let Some(scsi) = &mut leg.scsi else {
            return Ok(());
        };
        if !scsi.rules.is_empty() {
            scsi.rules.clear();
            scsi.control.clear(scsi.path);
        }
        if !scsi.online {
            scsi.control.set_port_online(scsi.path, true)?;
            scsi.online = true;
        }
        Ok(())
    }

    fn in_force(&self, leg: &BuiltLeg) -> bool {
        leg.scsi
            .as_ref()
            .is_some_and(|s| !s.rules.is_empty() || !s.online)
    }
}

/// The array's rule for a SCSI fault kind with a rule (every SCSI kind but `port_offline`);
/// `None` for other kinds. Byte ranges become LBA ranges of the array's block size.
pub(super) fn scsi_rule(kind: &FaultKind) -> Option<ScsiRule> {
    let ops = |op: &IoOp| match op {
        IoOp::Read => vec![ScsiOp::Read],
        IoOp::Write => vec![ScsiOp::Write],
        // Validation offers no flush for SCSI kinds: SYNCHRONIZE CACHE is one of the non-data
        // commands `any` takes in.
        IoOp::Flush | IoOp::Any => Vec::new(),
    };
    let shaped = |action: ScsiAction,
                  probability: &faults::Probability,
                  op: &IoOp,
                  range: &Option<faults::ByteRange>| {
        let rule = ScsiRule::new(action)
            .ops(&ops(op))
            .probability(probability.get());
        match range {
            Some(r) => {
                let block = u64::from(rig::scsi::commands::BLOCK_SIZE);
                let first = r.offset / block;
                let last = r.end().div_ceil(block);
                rule.lba_range(first, last - first)
            }
            None => rule,
        }
    };
    Some(match kind {
        FaultKind::NoResponse {
            abort,
            probability,
            op,
            range,
        } => shaped(
            ScsiAction::NoResponse {
                abort: match abort {
                    faults::scsi::AbortPolicy::Honour => rig::scsi::AbortPolicy::Honour,
                    faults::scsi::AbortPolicy::Ignore => rig::scsi::AbortPolicy::Ignore,
                },
            },
            probability,
            op,
            range,
        ),
        FaultKind::CheckCondition {
            sense,
            probability,
            op,
            range,
        } => shaped(
            ScsiAction::CheckCondition {
                key: sense.key,
                asc: sense.asc,
                ascq: sense.ascq,
            },
            probability,
            op,
            range,
        ),
        FaultKind::ScsiStatus {
            status,
            probability,
            op,
            range,
        } => shaped(
            ScsiAction::Status(match status {
                faults::scsi::ScsiStatusCode::Busy => rig::scsi::ScsiStatus::Busy,
                faults::scsi::ScsiStatusCode::TaskSetFull => rig::scsi::ScsiStatus::TaskSetFull,
                faults::scsi::ScsiStatusCode::ReservationConflict => {
                    rig::scsi::ScsiStatus::ReservationConflict
                }
            }),
            probability,
            op,
            range,
        ),
        FaultKind::ScsiLatency { latency, op } => {
            ScsiRule::new(ScsiAction::Latency(super::fuse::latency_dist(latency))).ops(&ops(op))
        }
        _ => return None,
    })
}

/// A SCSI fault's start or the end of its window.
fn scsi_step(cx: &mut StepCx<'_>, step: &Step) -> Result<(), RunError> {
    let (built, log, leg_index, window) = (&mut *cx.built, cx.log, cx.leg, cx.window);
    let leg = &mut built.legs[leg_index];
    let scsi = leg
        .scsi
        .as_mut()
        .expect("the plan puts SCSI kinds only on legs with backend = \"scsi\"");
    let began = log.clock().now_ms();
    let kind = match &step.action {
        StepAction::Apply(kind) => kind,
        StepAction::Restore => &cx.scenario.fault(step.fault).kind,
    };
    let change = match (&step.action, kind) {
        (StepAction::Apply(_), FaultKind::PortOffline) => {
            scsi.control.set_port_online(scsi.path, false)?;
            scsi.online = false;
            FaultChange::Applied {
                fault: kind.clone(),
                window,
            }
        }
        (StepAction::Restore, FaultKind::PortOffline) => {
            scsi.control.set_port_online(scsi.path, true)?;
            scsi.online = true;
            FaultChange::ScsiWindowEnded { window }
        }
        (StepAction::Apply(_), _) => {
            let rule = scsi_rule(kind).expect("a SCSI kind with a rule");
            scsi.rules.push((step.fault, rule));
            scsi.control.set_rules(
                scsi.path,
                scsi.rules.iter().map(|(_, r)| r.clone()).collect(),
            );
            FaultChange::Applied {
                fault: kind.clone(),
                window,
            }
        }
        (StepAction::Restore, _) => {
            scsi.rules.retain(|(fault, _)| *fault != step.fault);
            scsi.control.set_rules(
                scsi.path,
                scsi.rules.iter().map(|(_, r)| r.clone()).collect(),
            );
            FaultChange::ScsiWindowEnded { window }
        }
    };
    log.record_at(
        began,
        EventKind::Fault {
            leg: leg.name.clone(),
            change,
        },
    );
    Ok(())
}

/// Lets go of every command a `no_response` rule holds (the end of the run: the workload must
/// be able to drain). Returns the legs that had such rules.
pub(in crate::runner) fn release_held_commands(built: &mut Built) -> Vec<String> {
    let mut released = Vec::new();
    for leg in &mut built.legs {
        let Some(scsi) = &mut leg.scsi else { continue };
        let before = scsi.rules.len();
        scsi.rules
            .retain(|(_, rule)| !matches!(rule.action, ScsiAction::NoResponse { .. }));
        if scsi.rules.len() != before {
            scsi.control.set_rules(
                scsi.path,
                scsi.rules.iter().map(|(_, r)| r.clone()).collect(),
            );
            released.push(leg.name.clone());
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use faults::scsi::{AbortPolicy, Sense};
    use faults::{ByteRange, Probability};

    #[test]
    fn scsi_kinds_become_array_rules_with_lba_ranges() {
        let kind = FaultKind::CheckCondition {
            sense: Sense {
                key: 3,
                asc: 0x11,
                ascq: 0,
            },
            probability: Probability::new(0.25).unwrap(),
            op: IoOp::Read,
            range: Some(ByteRange {
                offset: 1 << 20,
                length: 6144,
            }),
        };
        let rule = scsi_rule(&kind).unwrap();
        let block = u64::from(rig::scsi::commands::BLOCK_SIZE);
        assert_eq!(rule.ops, vec![ScsiOp::Read]);
        assert_eq!(rule.probability, 0.25);
        assert_eq!(
            rule.lba_range,
            Some(((1 << 20) / block, 6144u64.div_ceil(block)))
        );
        assert_eq!(
            rule.action,
            ScsiAction::CheckCondition {
                key: 3,
                asc: 0x11,
                ascq: 0
            }
        );
        let hold = FaultKind::NoResponse {
            abort: AbortPolicy::Ignore,
            probability: Probability::ALWAYS,
            op: IoOp::Any,
            range: None,
        };
        let rule = scsi_rule(&hold).unwrap();
        assert!(
            rule.ops.is_empty(),
            "any: every command, TEST UNIT READY included"
        );
        assert_eq!(
            rule.action,
            ScsiAction::NoResponse {
                abort: rig::scsi::AbortPolicy::Ignore
            }
        );
        assert!(scsi_rule(&FaultKind::PortOffline).is_none());
        assert!(scsi_rule(&FaultKind::Fail).is_none());
    }
}
