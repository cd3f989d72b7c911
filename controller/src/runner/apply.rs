//! Fault application: what each step of a scenario's fault timeline does to its leg, and how the
//! event log words it.
//!
//! A step becomes a [`Plan`]: swap the leg's dm table (load, suspend, resume — the way lvm2's
//! test helpers do it) and then send the new target its messages (dm-dust's bad blocks); only
//! send messages to the live target (a dust fault on a leg that is dust already changes the bad
//! blocks at runtime, without a table swap); send `fail_path` to the map (`kernel_fail`); or
//! for a FUSE fault kind, change the rules of the leg's FUSE file server ([`fuse_step`]). Tables come from
//! the typed targets of [`rig::dm::target`]; no table text is formatted here.
//!
//! Every description recorded is deterministic (no measured value): report.txt shows them and
//! the VM suite snapshots it.
//!
//! Adding a dm fault kind means one arm in [`plan`] and one in
//! [`crate::events::describe_fault`]; both matches
//! are exhaustive, so the compiler points at them.

use std::time::Duration;

use faults::{BioDir, FaultKind, IoOp, Scenario, Step, StepAction};
use rig::dm::mpath_status::{parse_multipath_status, KernelPathState};
use rig::dm::target::{self, Delay, DustMessage, FlakeyFeature};
use rig::dm::{DevNum, Table, Target};
use rig::fuse::{FaultAction, FaultRule, LatencyDist, OpKind};

use super::{Built, KernelWatch, RunError, SECTOR};
use crate::events::{EventKind, EventLog, FaultChange, Window};

/// What one step does to its leg.
enum Plan {
    /// Swap the leg's dm table, then send the new target these messages.
    Table(Table, Vec<DustMessage>),
    /// Send these messages to the leg's live target; no table swap.
    Messages(Vec<DustMessage>),
    /// A `fail_path` message to the map; the leg is not touched.
    KernelFail,
}

/// The healthy table of a leg with a dm layer: linear over its loop device.
pub(super) fn healthy_table(loop_dev: DevNum, sectors: u64) -> Table {
    Table::single(
        sectors,
        Target::Linear {
            dev: loop_dev,
            offset: 0,
        },
    )
}

/// What the leg needs so that `fault` is in effect (`None`: healthy again). `current` is the dm
/// fault the leg has now.
fn plan(
    leg_name: &str,
    loop_dev: DevNum,
    sectors: u64,
    has_dm: bool,
    current: Option<&FaultKind>,
    fault: Option<&FaultKind>,
) -> Plan {
    let table = |target| Plan::Table(Table::single(sectors, target), Vec::new());
    let Some(kind) = fault else {
        // apply_step handles a restore of a leg without a dm layer (it only clears FUSE rules).
        assert!(
            has_dm,
            "leg \"{leg_name}\": a dm table plan for a leg without a dm layer"
        );
        return Plan::Table(healthy_table(loop_dev, sectors), Vec::new());
    };
    match kind {
        FaultKind::Restore => plan(leg_name, loop_dev, sectors, has_dm, current, None),
        FaultKind::KernelFail => Plan::KernelFail,
        FaultKind::Fail => table(Target::Error),
        FaultKind::Delay {
            read_ms,
            write_ms,
            flush_ms,
        } => table(Target::Delay(Delay::per_class(
            loop_dev, 0, *read_ms, *write_ms, *flush_ms,
        ))),
        FaultKind::Flakey {
            up,
            down,
            drop_writes,
            error_writes,
            corrupt_bio_byte,
        } => {
            let mut features = Vec::new();
            if *drop_writes {
                features.push(FlakeyFeature::DropWrites);
            }
            if *error_writes {
                features.push(FlakeyFeature::ErrorWrites);
            }
            if let Some(c) = corrupt_bio_byte {
                features.push(FlakeyFeature::CorruptBioByte {
                    nth: c.nth,
                    dir: match c.op {
                        BioDir::Read => target::BioDir::Read,
                        BioDir::Write => target::BioDir::Write,
                    },
                    value: c.value,
                    flags: c.flags,
                });
            }
            table(Target::Flakey {
                dev: loop_dev,
                offset: 0,
                up_s: up.as_secs() as u32,
                down_s: down.as_secs() as u32,
                features,
            })
        }
        FaultKind::ErrorRange { ranges } => {
            let sectors_of: Vec<(u64, u64)> = ranges
                .iter()
                .map(|r| (r.offset / SECTOR, r.length / SECTOR))
                .collect();
            Plan::Table(
                Table::with_error_ranges(loop_dev, sectors, &sectors_of),
                Vec::new(),
            )
        }
        FaultKind::Dust {
            bad_blocks,
            block_size,
            quiet,
        } => {
            // The exact set: clear, then add. (A tracked set could be stale: a write to a bad
            // block clears it in the kernel.)
            let mut messages = vec![DustMessage::ClearBadBlocks];
            messages.extend(bad_blocks.iter().map(|&b| DustMessage::AddBadBlock(b)));
            match current {
                Some(FaultKind::Dust {
                    block_size: now_size,
                    quiet: now_quiet,
                    ..
                }) if now_size == block_size => {
                    if now_quiet != quiet {
                        messages.push(DustMessage::ToggleQuiet);
                    }
                    Plan::Messages(messages)
                }
                _ => {
                    // A new dust target starts verbose, with no bad blocks, in bypass mode.
                    if *quiet {
                        messages.push(DustMessage::ToggleQuiet);
                    }
                    messages.push(DustMessage::Enable);
                    Plan::Table(
                        Table::single(
                            sectors,
                            Target::Dust {
                                dev: loop_dev,
                                offset: 0,
                                block_size: *block_size,
                            },
                        ),
                        messages,
                    )
                }
            }
        }
        FaultKind::Errno { .. }
        | FaultKind::Latency { .. }
        | FaultKind::Hang { .. }
        | FaultKind::Lose { .. }
        | FaultKind::Corrupt { .. } => {
            unreachable!("FUSE kinds are applied by fuse_step, not as dm tables")
        }
    }
}

/// Which window of a repeating fault a step belongs to.
fn window_note(scenario: &Scenario, step: &Step) -> Option<Window> {
    let times = scenario.faults[step.fault_index].times();
    (times > 1).then_some(Window {
        n: step.repetition + 1,
        of: times,
    })
}

/// The FUSE file server's rule for a FUSE fault kind; `None` for other kinds.
fn fuse_rule(kind: &FaultKind) -> Option<FaultRule> {
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
            let ms = |v: &u32| Duration::from_millis(u64::from(*v));
            let dist = match latency {
                faults::LatencyDist::Fixed { ms: v } => LatencyDist::Fixed(ms(v)),
                faults::LatencyDist::Uniform { min_ms, max_ms } => LatencyDist::Uniform {
                    min: ms(min_ms),
                    max: ms(max_ms),
                },
                faults::LatencyDist::LongTail { p50_ms, p99_ms } => LatencyDist::LongTail {
                    p50: ms(p50_ms),
                    p99: ms(p99_ms),
                },
            };
            FaultRule::new(FaultAction::Latency(dist)).ops(&ops(op))
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

/// A FUSE fault's start (its rule joins the leg's rules) or the end of its window (the rule
/// leaves; requests it held are served). The server changes rules at once, without a remount.
fn fuse_step(
    built: &mut Built,
    log: &EventLog,
    leg_index: usize,
    step: &Step,
    window: Option<Window>,
) -> Result<(), RunError> {
    let leg = &mut built.legs[leg_index];
    let control = leg
        .fuse
        .clone()
        .expect("validated: FUSE kinds only on legs with backend = \"fuse\"");
    let change = match &step.action {
        StepAction::Apply(kind) => {
            let rule = fuse_rule(kind).expect("a FUSE kind");
            leg.fuse_rules.push((step.fault_index, rule));
            FaultChange::Applied {
                fault: kind.clone(),
                window,
            }
        }
        StepAction::Restore => {
            leg.fuse_rules
                .retain(|(fault, _)| *fault != step.fault_index);
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
pub(super) fn release_hung_io(built: &mut Built) -> Vec<String> {
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

/// Carries out one step of the timeline on its leg and records it.
pub(super) fn apply_step(
    scenario: &Scenario,
    built: &mut Built,
    log: &EventLog,
    watch: &mut KernelWatch,
    step: &Step,
    rig_reinstates: bool,
) -> Result<(), RunError> {
    let leg_index = built
        .legs
        .iter()
        .position(|l| l.name == step.leg)
        .expect("validated: the leg exists");
    let window = window_note(scenario, step);
    let step_kind = match &step.action {
        StepAction::Apply(kind) => kind,
        StepAction::Restore => &scenario.faults[step.fault_index].kind,
    };
    if step_kind.layer() == faults::Layer::Fuse {
        fuse_step(built, log, leg_index, step, window)?;
        // Without a path manager the rig stands in for it once the leg has no FUSE faults left.
        let healthy =
            built.legs[leg_index].fuse_rules.is_empty() && built.legs[leg_index].fault.is_none();
        if matches!(step.action, StepAction::Restore) && healthy && rig_reinstates {
            reinstate_for_restored_leg(built, log, watch, leg_index)?;
        }
        return Ok(());
    }
    if let StepAction::Apply(FaultKind::Restore) = &step.action {
        // A restore ends the leg's FUSE faults too (and releases what they hold).
        let leg = &mut built.legs[leg_index];
        if let Some(control) = &leg.fuse {
            if !leg.fuse_rules.is_empty() {
                leg.fuse_rules.clear();
                control.clear(&leg.name);
                log.record(EventKind::FuseRulesCleared {
                    leg: leg.name.clone(),
                });
            }
        }
        if leg.dm_name.is_none() {
            log.record(EventKind::Fault {
                leg: leg.name.clone(),
                change: FaultChange::FuseRestored,
            });
            return Ok(());
        }
    }
    let (fault, change) = match &step.action {
        StepAction::Apply(FaultKind::Restore) => (
            None,
            FaultChange::Applied {
                fault: FaultKind::Restore,
                window: None,
            },
        ),
        StepAction::Apply(kind) => (
            Some(kind),
            FaultChange::Applied {
                fault: kind.clone(),
                window,
            },
        ),
        StepAction::Restore => {
            let spec = &scenario.faults[step.fault_index];
            let change = FaultChange::WindowEnded {
                length: spec.duration.unwrap_or_default(),
                window,
            };
            (None, change)
        }
    };
    let leg = &built.legs[leg_index];
    let plan = plan(
        &leg.name,
        leg.loop_dev,
        leg.sectors,
        leg.dm_name.is_some(),
        leg.fault.as_ref(),
        fault,
    );
    let (table, messages) = match plan {
        Plan::KernelFail => return kernel_fail(built, log, leg_index, change),
        Plan::Table(table, messages) => (Some(table), messages),
        Plan::Messages(messages) => (None, messages),
    };
    let dm_name = leg
        .dm_name
        .clone()
        .expect("validated: dm fault kinds only on legs with a dm layer");
    // The fault counts from the moment the leg is suspended for the swap (or the first message
    // is sent): from then on it serves no new IO the old way. When the new table went live is
    // kept as a detail.
    let began = log.clock().now_ms();
    let change = match &table {
        Some(table) => {
            built.dm.swap_table(&dm_name, table)?;
            change
        }
        None => match fault {
            Some(FaultKind::Dust {
                bad_blocks,
                block_size,
                ..
            }) => FaultChange::DustChanged {
                bad_blocks: bad_blocks.clone(),
                block_size: *block_size,
            },
            _ => change,
        },
    };
    log.record_at(
        began,
        EventKind::Fault {
            leg: leg.name.clone(),
            change,
        },
    );
    if let Some(table) = &table {
        log.record(EventKind::TableLive {
            dm_name: dm_name.clone(),
            table: table.render(),
        });
    }
    for message in &messages {
        built.dm.message(&dm_name, &message.to_string())?;
        log.record(EventKind::MessageSent {
            dm_name: dm_name.clone(),
            message: message.to_string(),
        });
    }
    let restored = fault.is_none() && leg.fault.is_some();
    built.legs[leg_index].fault = fault.cloned().filter(|k| k.layer() == faults::Layer::Dm);
    if restored && rig_reinstates {
        reinstate_for_restored_leg(built, log, watch, leg_index)?;
    }
    Ok(())
}

/// `kernel_fail`: the kernel fails the path as after a trespass; the leg keeps working.
fn kernel_fail(
    built: &Built,
    log: &EventLog,
    leg_index: usize,
    change: FaultChange,
) -> Result<(), RunError> {
    let leg = &built.legs[leg_index];
    let map = built
        .maps
        .iter()
        .find(|m| m.name == leg.map)
        .expect("leg belongs to a map");
    let at = log.clock().now_ms();
    built
        .dm
        .message(&map.dm_name, &format!("fail_path {}", leg.dev))?;
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
fn reinstate_for_restored_leg(
    built: &Built,
    log: &EventLog,
    watch: &mut KernelWatch,
    leg_index: usize,
) -> Result<(), RunError> {
    let leg = &built.legs[leg_index];
    let map = built
        .maps
        .iter()
        .find(|m| m.name == leg.map)
        .expect("leg belongs to a map");
    let (_, lines) = built.dm.status(&map.dm_name)?;
    let failed = lines
        .first()
        .and_then(|l| parse_multipath_status(l.params()).ok())
        .and_then(|s| s.path(leg.dev).map(|p| p.state == KernelPathState::Failed))
        .unwrap_or(false);
    if failed {
        built
            .dm
            .message(&map.dm_name, &format!("reinstate_path {}", leg.dev))?;
        log.record(EventKind::RigReinstated {
            map: map.name.clone(),
            leg: leg.name.clone(),
        });
        watch.observe(built, log)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use faults::{ByteRange, CorruptBioByte};

    use super::*;
    use crate::events::describe_fault;

    const LOOP: DevNum = DevNum { major: 7, minor: 0 };

    fn table_of(p: Plan) -> (String, Vec<String>) {
        match p {
            Plan::Table(t, m) => (t.render(), m.iter().map(ToString::to_string).collect()),
            _ => panic!("not a table swap"),
        }
    }

    fn plan_for(current: Option<&FaultKind>, fault: &FaultKind) -> Plan {
        plan("a", LOOP, 2048, true, current, Some(fault))
    }

    #[test]
    fn existing_descriptions_are_unchanged() {
        // report.txt snapshots of the suite depend on these exact words.
        assert_eq!(describe_fault(&FaultKind::Fail), "fail (every IO errors)");
        assert_eq!(describe_fault(&FaultKind::delay(200)), "delay 200 ms");
        assert_eq!(
            describe_fault(&FaultKind::flakey(
                Duration::from_secs(1),
                Duration::from_secs(1)
            )),
            "flakey (up 1s, down 1s)"
        );
        assert_eq!(
            describe_fault(&FaultKind::Restore),
            "restore (healthy table)"
        );
    }

    #[test]
    fn new_kinds_are_described_without_measured_values() {
        let d = FaultKind::Delay {
            read_ms: 0,
            write_ms: 200,
            flush_ms: 0,
        };
        assert_eq!(
            describe_fault(&d),
            "delay (reads 0 ms, writes 200 ms, flushes 0 ms)"
        );
        let f = FaultKind::Flakey {
            up: Duration::from_secs(1),
            down: Duration::from_secs(4),
            drop_writes: true,
            error_writes: false,
            corrupt_bio_byte: None,
        };
        assert_eq!(
            describe_fault(&f),
            "flakey (up 1s, down 4s; while down: reads pass, writes are dropped (acknowledged, not stored))"
        );
        let r = FaultKind::ErrorRange {
            ranges: vec![ByteRange {
                offset: 1 << 20,
                length: 64 << 10,
            }],
        };
        assert_eq!(
            describe_fault(&r),
            "error_range (IO errors in 64KiB at 1MiB; the rest of the leg works)"
        );
        let dust = FaultKind::Dust {
            bad_blocks: vec![10, 11],
            block_size: 512,
            quiet: true,
        };
        assert_eq!(
            describe_fault(&dust),
            "dust (bad blocks 10, 11 of 512 bytes: a read of one fails, a write clears it; quiet)"
        );
    }

    #[test]
    fn dm_kinds_become_typed_tables() {
        assert_eq!(table_of(plan_for(None, &FaultKind::Fail)).0, "0 2048 error");
        let (t, _) = table_of(plan_for(
            None,
            &FaultKind::Delay {
                read_ms: 0,
                write_ms: 200,
                flush_ms: 0,
            },
        ));
        assert_eq!(t, "0 2048 delay 7:0 0 0 7:0 0 200 7:0 0 0");
        let corrupt = FaultKind::Flakey {
            up: Duration::from_secs(1),
            down: Duration::from_secs(3),
            drop_writes: false,
            error_writes: false,
            corrupt_bio_byte: Some(CorruptBioByte {
                nth: 100,
                op: BioDir::Read,
                value: 255,
                flags: 0,
            }),
        };
        assert_eq!(
            table_of(plan_for(None, &corrupt)).0,
            "0 2048 flakey 7:0 0 1 3 5 corrupt_bio_byte 100 r 255 0"
        );
        let range = FaultKind::ErrorRange {
            ranges: vec![ByteRange {
                offset: 512 * 100,
                length: 4096,
            }],
        };
        assert_eq!(
            table_of(plan_for(None, &range)).0,
            "0 100 linear 7:0 0\n100 8 error\n108 1940 linear 7:0 108"
        );
        assert_eq!(
            table_of(plan("a", LOOP, 2048, true, Some(&FaultKind::Fail), None)).0,
            "0 2048 linear 7:0 0"
        );
    }

    #[test]
    fn dust_swaps_once_then_changes_bad_blocks_by_message() {
        let first = FaultKind::Dust {
            bad_blocks: vec![10, 200],
            block_size: 4096,
            quiet: true,
        };
        let (t, m) = table_of(plan_for(Some(&FaultKind::Fail), &first));
        assert_eq!(t, "0 2048 dust 7:0 0 4096");
        assert_eq!(
            m,
            [
                "clearbadblocks",
                "addbadblock 10",
                "addbadblock 200",
                "quiet",
                "enable"
            ]
        );
        let second = FaultKind::Dust {
            bad_blocks: vec![11],
            block_size: 4096,
            quiet: false,
        };
        let Plan::Messages(m) = plan_for(Some(&first), &second) else {
            panic!("a dust leg changes its bad blocks without a table swap");
        };
        let m: Vec<String> = m.iter().map(ToString::to_string).collect();
        assert_eq!(m, ["clearbadblocks", "addbadblock 11", "quiet"]);
        // Another block size needs a new target.
        let third = FaultKind::Dust {
            bad_blocks: vec![],
            block_size: 512,
            quiet: false,
        };
        let (t, m) = table_of(plan_for(Some(&second), &third));
        assert_eq!(t, "0 2048 dust 7:0 0 512");
        assert_eq!(m, ["clearbadblocks", "enable"]);
    }

    #[test]
    fn fuse_kinds_and_kernel_fail_are_not_tables() {
        assert!(matches!(
            plan_for(None, &FaultKind::KernelFail),
            Plan::KernelFail
        ));
        let hang = FaultKind::Hang {
            op: faults::IoOp::Any,
        };
        assert_eq!(
            fuse_rule(&hang).map(|r| r.ops),
            Some(vec![OpKind::Read, OpKind::Write]),
            "a hang on any op leaves flushes alone"
        );
        assert!(fuse_rule(&FaultKind::Fail).is_none());
    }
}
