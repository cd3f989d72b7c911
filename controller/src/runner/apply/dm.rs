//! The dm backend: a fault of the dm layer swaps the leg's dm table (load, suspend, resume —
//! the way lvm2's test helpers do it) for an error, delay, flakey, dust or partly-error table,
//! and then sends the new target its messages (dm-dust's bad blocks); a dust fault on a leg that
//! is dust already only sends messages. The end of its window, or a `restore`, swaps the healthy
//! linear table back. Tables and messages are the typed values of [`rig::dm`].
//!
//! Adding a dm fault kind means one arm in [`plan`] and one in
//! [`crate::events::describe_fault`]; both matches are exhaustive, so the compiler points at them.

use faults::{BioDir, FaultKind, Layer, StepAction};
use rig::dm::target::{self, Delay, FlakeyFeature};
use rig::dm::{DevNum, DustMessage, Sectors, Table, Target};

use super::super::{BuiltLeg, RunError};
use super::{reinstate_for_restored_leg, FaultBackend, StepCx};
use crate::events::{EventKind, FaultChange};

/// What one step does to its leg.
enum Plan {
    /// Swap the leg's dm table, then send the new target these messages.
    Table(Table, Vec<DustMessage>),
    /// Send these messages to the leg's live target; no table swap.
    Messages(Vec<DustMessage>),
}

/// The healthy table of a leg with a dm layer: linear over its loop device.
pub(in crate::runner) fn healthy_table(loop_dev: DevNum, sectors: Sectors) -> Table {
    Table::single(
        sectors,
        Target::Linear {
            dev: loop_dev,
            offset: Sectors(0),
        },
    )
}

/// What the leg needs so that `fault` is in effect (`None`: healthy again). `current` is the dm
/// fault the leg has now.
fn plan(
    leg_name: &str,
    loop_dev: DevNum,
    sectors: Sectors,
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
        FaultKind::Fail => table(Target::Error),
        FaultKind::Delay {
            read_ms,
            write_ms,
            flush_ms,
        } => table(Target::Delay(Delay::per_class(
            loop_dev,
            Sectors(0),
            *read_ms,
            *write_ms,
            *flush_ms,
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
                offset: Sectors(0),
                up_s: up.as_secs() as u32,
                down_s: down.as_secs() as u32,
                features,
            })
        }
        FaultKind::ErrorRange { ranges } => {
            let sectors_of: Vec<(Sectors, Sectors)> = ranges
                .iter()
                .map(|r| (Sectors::from_bytes(r.offset), Sectors::from_bytes(r.length)))
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
                                offset: Sectors(0),
                                block_size: *block_size,
                            },
                        ),
                        messages,
                    )
                }
            }
        }
        FaultKind::KernelFail
        | FaultKind::Errno { .. }
        | FaultKind::Latency { .. }
        | FaultKind::Hang { .. }
        | FaultKind::Lose { .. }
        | FaultKind::Corrupt { .. }
        | FaultKind::NoResponse { .. }
        | FaultKind::CheckCondition { .. }
        | FaultKind::ScsiStatus { .. }
        | FaultKind::ScsiLatency { .. }
        | FaultKind::PortOffline => {
            unreachable!("only dm kinds become dm tables (the registry picks the backend)")
        }
    }
}

pub(super) struct DmBackend;

impl FaultBackend for DmBackend {
    fn layer(&self) -> Layer {
        Layer::Dm
    }

    fn step(&self, cx: &mut StepCx<'_>, step: &faults::Step) -> Result<(), RunError> {
        let (fault, change) = match &step.action {
            StepAction::Apply(kind) => (
                Some(kind),
                FaultChange::Applied {
                    fault: kind.clone(),
                    window: cx.window,
                },
            ),
            StepAction::Restore => {
                let spec = cx.scenario.fault(step.fault);
                let change = FaultChange::WindowEnded {
                    length: spec.duration.unwrap_or_default(),
                    window: cx.window,
                };
                (None, change)
            }
        };
        swap(cx, fault, change)
    }

    fn restore(&self, cx: &mut StepCx<'_>) -> Result<(), RunError> {
        if cx.leg().dm_name.is_none() {
            return Ok(());
        }
        let change = FaultChange::Applied {
            fault: FaultKind::Restore,
            window: None,
        };
        swap(cx, None, change)
    }

    fn in_force(&self, leg: &BuiltLeg) -> bool {
        leg.fault.is_some()
    }
}

/// Puts `fault` (`None`: the healthy table) into effect on the leg and records `change`.
fn swap(
    cx: &mut StepCx<'_>,
    fault: Option<&FaultKind>,
    change: FaultChange,
) -> Result<(), RunError> {
    let (built, log, leg_index) = (&mut *cx.built, cx.log, cx.leg);
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
        Plan::Table(table, messages) => (Some(table), messages),
        Plan::Messages(messages) => (None, messages),
    };
    let dm_name = leg
        .dm_name
        .clone()
        .expect("the plan puts dm fault kinds only on legs with a dm layer");
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
        built.dm.send(&dm_name, *message)?;
        log.record(EventKind::MessageSent {
            dm_name: dm_name.clone(),
            message: message.to_string(),
        });
    }
    let restored = fault.is_none() && leg.fault.is_some();
    built.legs[leg_index].fault = fault.cloned().filter(|k| k.layer() == Layer::Dm);
    if restored && cx.rig_reinstates {
        reinstate_for_restored_leg(cx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use faults::{BioDir, ByteRange, CorruptBioByte};

    use super::*;
    use crate::events::describe_fault;

    const LOOP: DevNum = DevNum { major: 7, minor: 0 };

    fn table_of(p: Plan) -> (String, Vec<String>) {
        match p {
            Plan::Table(t, m) => (t.render(), m.iter().map(ToString::to_string).collect()),
            Plan::Messages(_) => panic!("not a table swap"),
        }
    }

    fn plan_for(current: Option<&FaultKind>, fault: &FaultKind) -> Plan {
        plan("a", LOOP, Sectors(2048), true, current, Some(fault))
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
            table_of(plan(
                "a",
                LOOP,
                Sectors(2048),
                true,
                Some(&FaultKind::Fail),
                None
            ))
            .0,
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
}
