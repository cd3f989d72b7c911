//! The FUSE backend: a fault of the FUSE layer is a rule of the FUSE file server under the leg
//! (errno, latency, hang, lose, corrupt, per operation and byte range). A fault's start adds its
//! rule, the end of its window takes it away (requests it held are served); the server changes
//! rules at once, without a remount.

use std::time::Duration;

use faults::{FaultKind, IoOp, Layer, Step, StepAction};
use rig::fuse::{FaultAction, FaultRule, LatencyDist, OpKind};

use super::super::{Built, BuiltLeg, RunError};
use super::{reinstate_for_restored_leg, FaultBackend, StepCx, BACKENDS};
use crate::events::{EventKind, FaultChange};

pub(super) struct FuseBackend;

impl FaultBackend for FuseBackend {
    fn layer(&self) -> Layer {
        Layer::Fuse
    }

    fn step(&self, cx: &mut StepCx<'_>, step: &Step) -> Result<(), RunError> {
        fuse_step(cx, step)?;
        // Without a path manager the rig stands in for it once the leg has no faults left.
        let healthy = BACKENDS.iter().all(|b| !b.in_force(cx.leg()));
        if matches!(step.action, StepAction::Restore) && healthy && cx.rig_reinstates {
            reinstate_for_restored_leg(cx)?;
        }
        Ok(())
    }

    fn restore(&self, cx: &mut StepCx<'_>) -> Result<(), RunError> {
        // A restore ends the leg's FUSE faults (and releases what they hold).
        let leg = &mut cx.built.legs[cx.leg];
        if let Some(control) = &leg.fuse {
            if !leg.fuse_rules.is_empty() {
                leg.fuse_rules.clear();
                control.clear(&leg.name);
                cx.log.record(EventKind::FuseRulesCleared {
                    leg: leg.name.clone(),
                });
            }
        }
        Ok(())
    }

    fn in_force(&self, leg: &BuiltLeg) -> bool {
        !leg.fuse_rules.is_empty()
    }
}

/// The FUSE file server's rule for a FUSE fault kind; `None` for other kinds.
pub(super) fn fuse_rule(kind: &FaultKind) -> Option<FaultRule> {
    let ops = |op: &IoOp| match op {
        IoOp::Read => vec![OpKind::Read],
        IoOp::Write => vec![OpKind::Write],
        IoOp::Flush => vec![OpKind::Flush],
        IoOp::Any => Vec::new(),
    };
    let with_range = |rule: FaultRule, range: &Option<faults::ByteRange>| match range {
        Some(r) => rule.range(r.offset, r.length),
        None => rule,
    };
    let rule = match kind {
        FaultKind::Errno {
            errno,
            probability,
            op,
            range,
        } => with_range(
            FaultRule::new(FaultAction::Errno {
                errno: errno.code,
                probability: probability.get(),
            })
            .ops(&ops(op)),
            range,
        ),
        FaultKind::Latency { latency, op } => {
            FaultRule::new(FaultAction::Latency(latency_dist(latency))).ops(&ops(op))
        }
        // "any" holds reads and writes but not flushes: every close() of the leg's file sends
        // one, and a held close would hang the rig's own teardown rather than the path.
        FaultKind::Hang { op } => FaultRule::new(FaultAction::Hang).ops(&match op {
            IoOp::Any => vec![OpKind::Read, OpKind::Write],
            other => ops(other),
        }),
        FaultKind::Lose { probability, range } => with_range(
            FaultRule::new(FaultAction::Lose {
                probability: probability.get(),
            }),
            range,
        ),
        FaultKind::Corrupt {
            probability,
            op,
            range,
        } => with_range(
            FaultRule::new(FaultAction::Corrupt {
                probability: probability.get(),
            })
            .ops(&ops(op)),
            range,
        ),
        _ => return None,
    };
    Some(rule)
}

/// The rig's latency distribution for a scenario's (the FUSE server and the SCSI array share it).
pub(super) fn latency_dist(latency: &faults::LatencyDist) -> LatencyDist {
    let ms = |v: &u32| Duration::from_millis(u64::from(*v));
    match latency {
        faults::LatencyDist::Fixed { ms: v } => LatencyDist::Fixed(ms(v)),
        faults::LatencyDist::Uniform { min_ms, max_ms } => LatencyDist::Uniform {
            min: ms(min_ms),
            max: ms(max_ms),
        },
        faults::LatencyDist::LongTail { p50_ms, p99_ms } => LatencyDist::LongTail {
            p50: ms(p50_ms),
            p99: ms(p99_ms),
        },
    }
}

/// A FUSE fault's start (its rule joins the leg's rules) or the end of its window (the rule
/// leaves; requests it held are served).
fn fuse_step(cx: &mut StepCx<'_>, step: &Step) -> Result<(), RunError> {
    let (built, log, leg_index, window) = (&mut *cx.built, cx.log, cx.leg, cx.window);
    let leg = &mut built.legs[leg_index];
    let control = leg.fuse.clone().expect(
        "the plan puts FUSE kinds only on legs with backend = \"fuse\", built with a server",
    );
    let change = match &step.action {
        StepAction::Apply(kind) => {
            let rule = fuse_rule(kind).expect("a FUSE kind");
            leg.fuse_rules.push((step.fault, rule));
            FaultChange::Applied {
                fault: kind.clone(),
                window,
            }
        }
        StepAction::Restore => {
            leg.fuse_rules.retain(|(fault, _)| *fault != step.fault);
            FaultChange::FuseWindowEnded { window }
        }
    };
    let began = log.clock().now_ms();
    control.set_rules(
        &leg.name,
        leg.fuse_rules.iter().map(|(_, r)| r.clone()).collect(),
    );
    log.record_at(
        began,
        EventKind::Fault {
            leg: leg.name.clone(),
            change,
        },
    );
    Ok(())
}

/// Lets go of every request a FUSE hang rule holds (the end of the run: the workload must be
/// able to drain). Returns the legs that had hang rules.
pub(in crate::runner) fn release_hung_io(built: &mut Built) -> Vec<String> {
    let mut released = Vec::new();
    for leg in &mut built.legs {
        let Some(control) = &leg.fuse else { continue };
        let before = leg.fuse_rules.len();
        leg.fuse_rules
            .retain(|(_, rule)| !matches!(rule.action, FaultAction::Hang));
        if leg.fuse_rules.len() != before {
            control.set_rules(
                &leg.name,
                leg.fuse_rules.iter().map(|(_, r)| r.clone()).collect(),
            );
            released.push(leg.name.clone());
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fuse_kinds_are_rules() {
        let hang = FaultKind::Hang { op: IoOp::Any };
        assert_eq!(
            fuse_rule(&hang).map(|r| r.ops),
            Some(vec![OpKind::Read, OpKind::Write]),
            "a hang on any op leaves flushes alone"
        );
        assert!(fuse_rule(&FaultKind::Fail).is_none());
        assert!(fuse_rule(&FaultKind::KernelFail).is_none());
    }
}
