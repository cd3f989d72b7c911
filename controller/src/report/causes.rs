//! Causes: why the kernel failed a path and why the application saw errors, found in the
//! run's typed events and series (report.json `causes`, report.txt "causes", report.html).
//! Typed fields only; the renderers word them.
//!
//! - [`Cause::KernelFailedUnderFault`]: the kernel failed a path while a fault step of the rig
//!   was in force on its leg (the layer and the fault: a dm table, a FUSE rule, a trespass), or
//!   with none in force (`fault: None`, the path failed for a reason the rig did not inject).
//! - [`Cause::CheckerUpKernelFailing`]: the kernel failed a path again and again while the
//!   checker's next answer about it was "up" each time, with the same fault still in force
//!   (multipath-tools issue #54's pattern: the checker's read works, the application's IO does
//!   not).
//! - [`Cause::ErrorsWithoutPath`]: application errors that arrived while the map had no usable
//!   path.
//! - [`Cause::ScratchSpaceFull`]: the guest's scratch tmpfs, which holds the backing files, was
//!   full at the end: the rig's own storage, not a path, refused writes.

use serde::{Deserialize, Serialize};

use super::Report;
use crate::events::{CheckerVerdict, Event, EventKind, FaultChange};

/// A path the kernel failed this many times, with the checker finding it up after each, is
/// called out: once is a trespass or a transient, twice is a pattern.
pub const REPEATED: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// The kernel failed `leg`'s path at `t_ms`; `fault` was in force on the leg then, since
    /// `fault_ms` (`None`: no fault of the rig was).
    KernelFailedUnderFault {
        map: String,
        leg: String,
        t_ms: f64,
        fault: Option<faults::FaultKind>,
        layer: Option<faults::Layer>,
        fault_ms: Option<f64>,
    },
    /// The kernel failed `leg`'s path `kernel_failures` times between `from_ms` and `to_ms`,
    /// and each time the checker's next answer was "up".
    CheckerUpKernelFailing {
        map: String,
        leg: String,
        kernel_failures: u32,
        from_ms: f64,
        to_ms: f64,
    },
    /// `errors` of the workload's `errors_total` application errors fell in 100 ms intervals
    /// while `map` had no usable path, which it had not for `no_path_ms` in `episodes` episodes.
    ErrorsWithoutPath {
        map: String,
        errors: u64,
        errors_total: u64,
        no_path_ms: f64,
        episodes: u32,
    },
    /// The scratch tmpfs at `path` (`size_bytes`) was full at the end of the run: writes the
    /// backing files could not take failed there (ENOSPC), below every path. `app_errors` is
    /// the workloads' total; `kernel_failures_without_fault` the path failures with no fault of
    /// the rig in force, which the full tmpfs may explain.
    ScratchSpaceFull {
        path: String,
        size_bytes: u64,
        app_errors: u64,
        kernel_failures_without_fault: u32,
    },
}

/// The fault step in force on `leg` at `t_ms`: the last step on the leg before it that opened
/// a fault, unless its window ended or a restore came since.
fn fault_in_force<'e>(
    events: &'e [Event],
    leg: &str,
    t_ms: f64,
) -> Option<(f64, &'e faults::FaultKind)> {
    let mut in_force = None;
    for e in events.iter().filter(|e| e.t_ms <= t_ms) {
        let EventKind::Fault { leg: l, change } = &e.kind else {
            continue;
        };
        if l != leg {
            continue;
        }
        match change {
            FaultChange::Applied { fault, .. } if *fault == faults::FaultKind::Restore => {
                in_force = None
            }
            FaultChange::Applied { fault, .. } => in_force = Some((e.t_ms, fault)),
            FaultChange::WindowEnded { .. }
            | FaultChange::FuseWindowEnded { .. }
            | FaultChange::FuseRestored
            | FaultChange::ScsiWindowEnded { .. }
            | FaultChange::ScsiRestored => in_force = None,
            FaultChange::DustChanged { .. } => {}
        }
    }
    in_force
}

/// The `/dev/dm-N` node the checker names for a leg device `major:minor`.
fn checker_node(device: &str) -> Option<String> {
    device
        .split_once(':')
        .map(|(_, minor)| format!("/dev/dm-{minor}"))
}

/// Finds the causes of `report` (after the run; the figures need not be computed).
pub fn find(report: &Report) -> Vec<Cause> {
    let events: Vec<&Event> = report.events.iter().filter(|e| e.t_ms >= 0.0).collect();
    let mut out = Vec::new();
    let mut failures_without_fault = 0u32;
    for map in &report.maps {
        for path in &map.paths {
            let failures: Vec<f64> = events
                .iter()
                .filter(|e| matches!(&e.kind, EventKind::PathFailed { map: m, leg } if *m == map.name && *leg == path.leg))
                .map(|e| e.t_ms)
                .collect();
            for &t in &failures {
                let found = fault_in_force(&report.events, &path.leg, t);
                failures_without_fault += u32::from(found.is_none());
                out.push(Cause::KernelFailedUnderFault {
                    map: map.name.clone(),
                    leg: path.leg.clone(),
                    t_ms: t,
                    layer: found.map(|(_, f)| f.layer()),
                    fault: found.map(|(_, f)| f.clone()),
                    fault_ms: found.map(|(at, _)| at),
                });
            }
            let node = checker_node(&path.device);
            // A failure counts when the checker's next answer was "up" while the fault in force
            // at the failure still was: the checker's IO worked through the same fault. (A
            // fault window that ended before the check, as a flapping link's, does not count.)
            let up_after: Vec<f64> = failures
                .iter()
                .copied()
                .filter(|&t| {
                    let Some((applied, _)) = fault_in_force(&report.events, &path.leg, t) else {
                        return false;
                    };
                    events
                        .iter()
                        .find_map(|e| match &e.kind {
                            EventKind::CheckerResult {
                                dm_name,
                                node: n,
                                verdict,
                                ..
                            } if e.t_ms > t
                                && *dm_name == map.dm_name
                                && Some(n) == node.as_ref() =>
                            {
                                Some((e.t_ms, *verdict == CheckerVerdict::Up))
                            }
                            _ => None,
                        })
                        .is_some_and(|(checked, up)| {
                            up && fault_in_force(&report.events, &path.leg, checked)
                                .is_some_and(|(at, _)| at == applied)
                        })
                })
                .collect();
            if up_after.len() as u32 >= REPEATED {
                out.push(Cause::CheckerUpKernelFailing {
                    map: map.name.clone(),
                    leg: path.leg.clone(),
                    kernel_failures: up_after.len() as u32,
                    from_ms: up_after[0],
                    to_ms: *up_after.last().unwrap(),
                });
            }
        }
        // Episodes with no usable path.
        let mut episodes: Vec<(f64, f64)> = Vec::new();
        let mut lost_at = None;
        for e in &events {
            match &e.kind {
                EventKind::NoUsablePath { map: m } if *m == map.name => {
                    lost_at.get_or_insert(e.t_ms);
                }
                EventKind::UsablePathBack { map: m } if *m == map.name => {
                    if let Some(at) = lost_at.take() {
                        episodes.push((at, e.t_ms));
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = lost_at {
            episodes.push((at, report.timing.run_ms.max(at)));
        }
        let Some(w) = report.workloads.of(&map.name) else {
            continue;
        };
        if episodes.is_empty() || w.app_errors == 0 {
            continue;
        }
        // An interval counts when its middle lies in an episode (intervals are 100 ms).
        let errors: u64 = w
            .series
            .iter()
            .filter(|p| {
                let mid = p.t_ms as f64 - 50.0;
                episodes.iter().any(|(from, to)| mid >= *from && mid <= *to)
            })
            .map(|p| p.errors.iter().map(|(_, n)| u64::from(*n)).sum::<u64>())
            .sum();
        if errors > 0 {
            out.push(Cause::ErrorsWithoutPath {
                map: map.name.clone(),
                errors,
                errors_total: w.app_errors,
                no_path_ms: episodes.iter().map(|(f, t)| t - f).sum(),
                episodes: episodes.len() as u32,
            });
        }
    }
    if let Some(full) = &report.guest.scratch_full {
        out.push(Cause::ScratchSpaceFull {
            path: full.path.clone(),
            size_bytes: full.size_bytes,
            app_errors: report.workloads.iter().map(|w| w.app_errors).sum(),
            kernel_failures_without_fault: failures_without_fault,
        });
    }
    out
}
