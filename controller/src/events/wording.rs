//! Events in words: the sentence of every [`EventKind`] for report.json's `what` and
//! report.txt's timeline. This is the only place an event becomes prose.

use faults::FaultKind;

use super::{
    CheckerVerdict, EventKind, FaultChange, FlushCause, IoDirection, MultipathdSaid, Window,
};

impl EventKind {
    /// The event in words, with every measured value.
    pub fn what(&self) -> String {
        self.words(false)
    }

    /// The event in words for report.txt: without measured values (timing noise).
    pub fn timeline_text(&self) -> String {
        self.words(true)
    }

    fn words(&self, stable: bool) -> String {
        use EventKind::*;
        match self {
            BackingFile { file, bytes, .. } => format!("backing file {file} ({bytes} bytes)"),
            FuseServer {
                mountpoint, legs, ..
            } => format!(
                "FUSE file server at {mountpoint} for legs {}",
                legs.join(", ")
            ),
            LoopAttached {
                leg,
                loop_device,
                dev,
                direct_io,
            } => format!(
                "leg {leg}: {loop_device} ({dev}){}",
                if *direct_io { ", direct IO" } else { "" }
            ),
            NoDmLayer { leg, dev } => format!("leg {leg}: no dm layer; the map's path is {dev}"),
            LegDevice {
                leg,
                dm_name,
                dev,
                over,
            } => format!("leg {leg}: dm device {dm_name} ({dev}) linear over {over}"),
            MapDevice {
                dm_name,
                dev,
                table,
                ..
            } => format!("map {dm_name} ({dev}): {table}"),
            TableLive { dm_name, table } => format!("{dm_name} table live: {table}"),
            MessageSent { dm_name, message } => format!("{dm_name} message: {message}"),
            FuseRulesCleared { leg } => format!("{leg}: FUSE fault rules cleared"),
            Removed { object, name } => match object {
                super::Removed::Map => format!("removed map {name}"),
                super::Removed::Leg => format!("removed leg {name}"),
                super::Removed::Loop => format!("detached {name}"),
                super::Removed::FuseMount => format!("unmounted {name}"),
                super::Removed::ScsiArray => format!("removed the {name}"),
            },
            RigReinstated { map, leg } => {
                format!("{map}: reinstate_path {leg} (stand-in for the path manager)")
            }
            HangReleased { leg, cause } => {
                format!("{leg}: FUSE hang released ({})", flush_cause(*cause))
            }
            Scsi {
                hba, leg, scsi, ..
            } => scsi_words(hba, leg.as_deref(), scsi),
            ArrayAction {
                leg,
                opcode,
                cmd_id,
                action,
            } => format!("{leg}: the array: {action:?} (command {cmd_id}, opcode {opcode:#04x})"),
            HeldCommandsReleased { leg, cause } => format!(
                "{leg}: the SCSI array answers the commands it held ({})",
                flush_cause(*cause)
            ),
            ScsiHost {
                hba,
                host,
                eh_deadline,
            } => format!(
                "hba {hba}: SCSI host{host}, eh_deadline {}",
                match eh_deadline {
                    super::HostDeadline::KernelDefault => "as the kernel has it".to_string(),
                    super::HostDeadline::Set { actual, .. } => actual.clone(),
                    super::HostDeadline::Unsupported { wanted, detail } =>
                        format!("{wanted} refused by the host ({detail})"),
                }
            ),
            ScsiPath {
                leg,
                hba,
                node,
                dev,
                hctl,
                timeout_s,
                eh_timeout_s,
                queue_depth,
            } => format!(
                "leg {leg}: SCSI path {node} ({dev}, {hctl}) via hba {hba}: timeout {timeout_s} s, eh_timeout {eh_timeout_s} s, queue_depth {queue_depth}"
            ),
            QueueFlushed { map, cause } => {
                format!("{map}: fail_if_no_path ({})", flush_cause(*cause))
            }
            Fault { leg, change } => format!("{leg}: {}", fault_change(change)),
            PathFailed { map, leg } => format!("{map}: path {leg} failed"),
            PathReinstated { map, leg } => format!("{map}: path {leg} reinstated"),
            PathFailedAndReinstated { map, leg } => {
                format!("{map}: path {leg} failed and was reinstated in between")
            }
            GroupSwitched { map, group } => format!("{map}: switched to path group {group}"),
            NoUsablePath { map } => format!("{map}: no usable path left"),
            UsablePathBack { map } => format!("{map}: a usable path is back"),
            CheckerResult {
                dm_name,
                node,
                verdict,
                latency_ms,
            } => {
                let verdict = match verdict {
                    CheckerVerdict::Up => "up".to_string(),
                    CheckerVerdict::Down { errno } => format!("down ({errno})"),
                    CheckerVerdict::TimedOut => "timed out".to_string(),
                    CheckerVerdict::Scsi { detail, .. } => detail.clone(),
                };
                format!("{dm_name}: checker on {node}: {verdict} in {latency_ms:.1} ms")
            }
            Manager {
                words,
                stable_words,
                failed,
                ..
            } => match failed {
                // A failed action keeps its measured values in the timeline too: it is rare,
                // and the exact wording helps whoever reads why it failed.
                Some(err) => format!("{words} — {err}"),
                None if stable => stable_words.clone(),
                None => words.clone(),
            },
            IoError {
                map,
                op,
                errno,
                block,
            } => {
                let op = match op {
                    IoDirection::Read => "read",
                    IoDirection::Write => "write",
                };
                format!("{map}: {op} error {errno} at block {block}")
            }
            Mismatch { map, block, detail } => {
                format!("{map}: data mismatch at block {block}: {detail}")
            }
            StallBegan { map, in_flight } => {
                format!("{map}: IO stall began ({in_flight} IOs in flight)")
            }
            StallEnded { map, length_ms } => {
                format!("{map}: IO stall ended after {length_ms:.0} ms")
            }
            Mirror(m) => m.words(stable),
            Multipathd { said, .. } => match said {
                MultipathdSaid::Log { line, .. } => format!("multipathd: {line}"),
                MultipathdSaid::FinalState { paths, maps } => {
                    let paths: Vec<String> = paths
                        .iter()
                        .map(|p| format!("{} {} {}/{}", p.map, p.dev, p.dm_state, p.checker_state))
                        .collect();
                    format!(
                        "multipathd at the end: {} map(s); paths {}",
                        maps.len(),
                        paths.join(", ")
                    )
                }
            },
        }
    }
}

fn flush_cause(cause: FlushCause) -> &'static str {
    match cause {
        FlushCause::Interrupted => "interrupted",
        FlushCause::WorkloadEnded => "the workload ended with IO still queued",
    }
}

fn fault_change(change: &FaultChange) -> String {
    match change {
        FaultChange::Applied { fault, window } => {
            let mut what = describe_fault(fault);
            if let Some(Window { n, of }) = window {
                what.push_str(&format!(", window {n} of {of}"));
            }
            what
        }
        FaultChange::DustChanged {
            bad_blocks,
            block_size,
        } => format!(
            "dust ({} of {block_size} bytes; changed at runtime, no table swap)",
            faults::block_list(bad_blocks)
        ),
        FaultChange::WindowEnded { length, window } => {
            let length = faults::format_duration(*length);
            match window {
                Some(Window { n, of }) => {
                    format!("restore (end of the {length} window, {n} of {of})")
                }
                None => format!("restore (end of the {length} window)"),
            }
        }
        FaultChange::FuseWindowEnded { window } => match window {
            Some(Window { n, of }) => format!("end of the FUSE fault's window {n} of {of}"),
            None => "end of the FUSE fault's window".to_string(),
        },
        FaultChange::FuseRestored => "restore (no FUSE faults left)".to_string(),
        FaultChange::ScsiWindowEnded { window } => match window {
            Some(Window { n, of }) => format!("end of the SCSI fault's window {n} of {of}"),
            None => "end of the SCSI fault's window".to_string(),
        },
        FaultChange::ScsiRestored => "restore (no SCSI faults left, port online)".to_string(),
    }
}

/// An event of the SCSI layer in words: "hba0: host in recovery (was running)".
fn scsi_words(hba: &str, leg: Option<&str>, kind: &rig::scsi_watch::ScsiEventKind) -> String {
    use rig::scsi_watch::ScsiEventKind as K;
    let who = match leg {
        Some(leg) => format!("{hba}: path {leg}"),
        None => hba.to_string(),
    };
    match kind {
        K::CommandTimeout => format!("{who}: a command timed out"),
        K::CommandFailed { host_byte } => match host_byte {
            Some(b) => format!("{who}: a command failed (host byte {b:#04x})"),
            None => format!("{who}: a command failed"),
        },
        K::AbortIssued => format!("{who}: the error handler aborts a command"),
        K::AbortSucceeded => format!("{who}: an abort succeeded"),
        K::AbortFailed => format!("{who}: an abort failed"),
        K::Reset { level } => format!("{who}: {level:?} reset").to_lowercase(),
        K::ResetReported => format!("{who}: the device reports a reset"),
        K::UnitAttention { message } => format!("{who}: unit attention: {message}"),
        K::DeviceOfflined => format!("{who}: device offlined by the error handler"),
        K::IoRejected => format!("{who}: IO rejected (device offline)"),
        K::IoError { sector } => match sector {
            Some(s) => format!("{who}: IO error at sector {s}"),
            None => format!("{who}: IO error"),
        },
        K::HostState { from, to } => format!("{who}: host {to} (was {from})"),
        K::DeviceState { from, to } => format!("{who}: device {to} (was {from})"),
        K::Counter { counter, from, to } => format!("{who}: {counter:?} {from} -> {to}"),
    }
}

/// A fault kind in words, as the timeline shows it when it takes effect.
pub fn describe_fault(kind: &FaultKind) -> String {
    match kind {
        FaultKind::Fail => "fail (every IO errors)".into(),
        FaultKind::Delay {
            read_ms,
            write_ms,
            flush_ms,
        } => {
            if read_ms == write_ms && write_ms == flush_ms {
                format!("delay {read_ms} ms")
            } else {
                format!("delay (reads {read_ms} ms, writes {write_ms} ms, flushes {flush_ms} ms)")
            }
        }
        FaultKind::Flakey { up, down, .. } => {
            let base = format!("flakey (up {}s, down {}s", up.as_secs(), down.as_secs());
            match kind.flakey_down_behaviour() {
                Some((reads, writes)) if reads != "reads fail" || writes != "writes fail" => {
                    format!("{base}; while down: {reads}, {writes})")
                }
                _ => format!("{base})"),
            }
        }
        FaultKind::ErrorRange { ranges } => {
            let list: Vec<String> = ranges.iter().map(ToString::to_string).collect();
            format!(
                "error_range (IO errors in {}; the rest of the leg works)",
                list.join(", ")
            )
        }
        FaultKind::Dust {
            bad_blocks,
            block_size,
            quiet,
        } => format!(
            "dust ({} of {block_size} bytes: a read of one fails, a write clears it{})",
            faults::block_list(bad_blocks),
            if *quiet { "; quiet" } else { "" }
        ),
        FaultKind::Restore => "restore (healthy table)".into(),
        FaultKind::KernelFail => {
            "kernel_fail (the kernel fails the path, as after a trespass; the leg keeps working)"
                .into()
        }
        // FUSE kinds: their Display in the faults crate says what they do, e.g.
        // "errno EIO on read with probability 0.05".
        FaultKind::Errno { .. }
        | FaultKind::Latency { .. }
        | FaultKind::Hang { .. }
        | FaultKind::Lose { .. }
        | FaultKind::Corrupt { .. } => format!("{kind} (in the FUSE file server)"),
        FaultKind::NoResponse { .. }
        | FaultKind::CheckCondition { .. }
        | FaultKind::ScsiStatus { .. }
        | FaultKind::ScsiLatency { .. } => format!("{kind} (in the SCSI array)"),
        FaultKind::PortOffline => {
            "port offline (the array's port of the path goes down, as a dead link)".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fault(change: FaultChange) -> EventKind {
        EventKind::Fault {
            leg: "a".into(),
            change,
        }
    }

    #[test]
    fn a_window_is_numbered() {
        let applied = fault(FaultChange::Applied {
            fault: FaultKind::Fail,
            window: Some(Window { n: 2, of: 3 }),
        });
        assert_eq!(applied.what(), "a: fail (every IO errors), window 2 of 3");
        let ended = fault(FaultChange::WindowEnded {
            length: Duration::from_millis(500),
            window: Some(Window { n: 2, of: 3 }),
        });
        assert_eq!(ended.what(), "a: restore (end of the 500ms window, 2 of 3)");
    }

    #[test]
    fn the_timeline_drops_a_managers_measured_values_but_not_a_failure() {
        let manager = |failed: Option<&str>| EventKind::Manager {
            map: "m".into(),
            leg: Some("a".into()),
            action: path_manager::Action::RunChecker {
                path: path_manager::PathRef { map: 0, path: 0 },
            },
            words: "m: reinstate_path a: up again after 2.992s down".into(),
            stable_words: "m: reinstate_path a: up again".into(),
            failed: failed.map(String::from),
        };
        let ok = manager(None);
        assert_eq!(ok.timeline_text(), "m: reinstate_path a: up again");
        assert_eq!(ok.what(), "m: reinstate_path a: up again after 2.992s down");
        let failed = manager(Some("the message failed: EINVAL"));
        assert_eq!(
            failed.timeline_text(),
            "m: reinstate_path a: up again after 2.992s down — the message failed: EINVAL"
        );
    }

    #[test]
    fn a_checker_result_names_its_device_and_latency() {
        let kind = EventKind::CheckerResult {
            dm_name: "pathrig-m".into(),
            node: "/dev/dm-1".into(),
            verdict: CheckerVerdict::Down {
                errno: "EIO".into(),
            },
            latency_ms: 1.25,
        };
        assert_eq!(
            kind.what(),
            "pathrig-m: checker on /dev/dm-1: down (EIO) in 1.2 ms"
        );
    }
}
