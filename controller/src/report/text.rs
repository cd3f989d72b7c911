//! report.txt: the report for people and snapshots. The same scenario gives the same text:
//! order of state changes, counts that are behaviour, verdicts; latencies and stalls only as
//! coarse buckets, and nothing measured (that is report.json's).

use std::fmt::Write as _;

use path_manager::settings::ManagerKind;

use super::{bucket, causes::Cause, figures, Report, Verdict};
use crate::events::Event;

/// report.txt: deterministic for a given scenario.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pathrig report: {}", report.scenario.name);
    if let Some(description) = &report.scenario.description {
        let _ = writeln!(out, "  {description}");
    }
    let _ = writeln!(out, "seed: {}", report.scenario.seed);
    let _ = writeln!(out, "guest: {}", report.guest.kind);
    if let Some(full) = &report.guest.scratch_full {
        let _ = writeln!(
            out,
            "  SCRATCH SPACE FULL: {} ({} bytes) had no room left for the backing files; IO \
             errors and failed paths may be the rig's, not the paths' (make the maps smaller or \
             give the guest more memory)",
            full.path, full.size_bytes
        );
    }
    let _ = writeln!(
        out,
        "path manager: {} ({})",
        match report.manager.kind {
            ManagerKind::Embedded => "embedded",
            ManagerKind::None => "none",
            ManagerKind::Multipathd => "multipathd",
        },
        report.manager.note
    );
    for map in &report.maps {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "map {} ({}, queue_if_no_path {})",
            map.name,
            map.selector,
            if map.queue_if_no_path { "on" } else { "off" }
        );
        for (i, group) in map.groups.iter().enumerate() {
            let _ = writeln!(out, "  group {}: {}", i + 1, group.join(" "));
        }
        match map.final_group {
            Some(group) => {
                let _ = writeln!(out, "  IO goes to group {group} at the end");
            }
            None => {
                let _ = writeln!(out, "  no group is in use at the end");
            }
        }
        for path in &map.paths {
            let checker = path
                .checker
                .as_ref()
                .map(|c| format!(", checker: {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  path {}: {} at the end, failed {} time(s){checker}",
                path.leg,
                path.final_state.as_str(),
                path.fail_count
            );
            if let Some(counts) = &path.fuse_faults {
                // Which kinds of fault were injected is behaviour; how many is timing.
                let kinds: Vec<&str> = [
                    ("errors", counts.errors),
                    ("delayed", counts.delayed),
                    ("hung", counts.hung),
                    ("lost writes", counts.lost),
                    ("corrupted", counts.corrupted),
                ]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, _)| *name)
                .collect();
                let kinds = if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                };
                let _ = writeln!(
                    out,
                    "    FUSE faults injected: {kinds} (counts in report.json)"
                );
            }
        }
        io_phases_section(&mut out, report, &map.name);
        if let Some(manager) = &map.manager {
            let _ = writeln!(out, "  manager settings:");
            for row in &manager.settings {
                let _ = writeln!(out, "    {} {} ({})", row.keyword, row.value, row.origin);
            }
        }
    }
    if let Some(scsi) = &report.scsi {
        out.push('\n');
        out.push_str(&super::scsi::text(scsi));
    }
    if !report.mirrors.is_empty() {
        let _ = writeln!(out);
        out.push_str(&super::mirror::text(&report.mirrors));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "timeline (faults, kernel path changes and actions, in order; times and workload events are in report.json)");
    let timeline: Vec<&Event> = report.events.iter().filter(|e| e.in_timeline()).collect();
    if timeline.is_empty() {
        let _ = writeln!(out, "  (nothing happened)");
    }
    for event in timeline {
        let _ = writeln!(
            out,
            "  {:<8} {}",
            event.source().as_str(),
            event.timeline_text()
        );
    }
    // One workload reads as it always did; several are named by their map.
    let named = report.workloads.len() > 1;
    for w in report.workloads.iter() {
        workload_section(&mut out, w, named);
    }
    out.push_str(&super::critical::text(&report.critical));
    figures_section(&mut out, report);
    causes_section(&mut out, report);
    let _ = writeln!(out);
    let _ = writeln!(out, "expectations");
    if report.expectations.is_empty() {
        let _ = writeln!(out, "  (none stated)");
    }
    for e in &report.expectations {
        let _ = writeln!(
            out,
            "  [{}] {}",
            if e.held { "held" } else { "FAILED" },
            e.what
        );
    }
    let _ = writeln!(out);
    if let Some(lag) = &report.timeline_lag {
        // Only a run that is void anyway shows a measured time here.
        let _ = writeln!(out, "RIG FAILURE: {} (exit 3)", lag.describe());
    }
    let _ = writeln!(
        out,
        "verdict: {}",
        match report.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    );
    out
}

/// One workload's block: what it ran and what it saw, in stable words. `named`: say which map
/// it ran on (a scenario with several workloads).
fn workload_section(out: &mut String, w: &super::WorkloadSummary, named: bool) {
    let _ = writeln!(out);
    let on = if named {
        format!(" on {}", w.map)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "workload{on} ({} IO, {}% reads, {} B blocks, queue depth {}, {} ms)",
        w.pattern, w.read_percent, w.block_size, w.queue_depth, w.duration_ms
    );
    if w.engine != faults::WorkloadEngine::Pathrig {
        // Said only for fio, so the reports of pathrig's own engine read as before.
        let _ = writeln!(
            out,
            "  issued by fio ({}): nothing verified, no stall detection",
            match w.engine {
                faults::WorkloadEngine::FioBatched =>
                    "half the queue submitted and reaped at a time",
                _ => "its default submission and completion",
            }
        );
    }
    let _ = writeln!(out, "  reads completed: {}", yes_no(w.reads > 0));
    let _ = writeln!(out, "  writes completed: {}", yes_no(w.writes > 0));
    let _ = writeln!(
        out,
        "  application IO errors: {}",
        zero_or_some(w.app_errors)
    );
    if w.app_errors > 0 {
        let _ = writeln!(
            out,
            "    reads failed: {}, writes failed: {}",
            zero_or_some(w.read_errors),
            zero_or_some(w.write_errors)
        );
    }
    let _ = writeln!(out, "  blocks verified: {}", yes_no(w.verified_blocks > 0));
    let _ = writeln!(out, "  data mismatches: {}", zero_or_some(w.mismatches));
    let _ = writeln!(
        out,
        "  max latency: {}",
        bucket(w.latency_us.max as f64 / 1000.0)
    );
    if w.stalls.is_empty() {
        let _ = writeln!(out, "  stalls: none");
    } else {
        let _ = writeln!(
            out,
            "  stalls: {}, longest {}",
            w.stalls.len(),
            bucket(w.max_stall_ms)
        );
    }
}

/// Each path's share of the map's IO per phase, as coarse classes.
fn io_phases_section(out: &mut String, report: &Report, map: &str) {
    let phases = figures::io_phases(report, map);
    if phases.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  io per path (phases between fault steps on its legs; shares none, some or all):"
    );
    for phase in phases {
        let began = if phase.began_with.is_empty() {
            "from the start".to_string()
        } else {
            format!("after {}", phase.began_with.join(", "))
        };
        let shares = match phase.shares {
            Some(shares) => shares
                .iter()
                .map(|(leg, class)| format!("{leg} {class}"))
                .collect::<Vec<_>>()
                .join(", "),
            None => "no IO".to_string(),
        };
        let _ = writeln!(out, "    {began}: {shares}");
    }
}

/// The QA figures in stable words: what happened, not how long it took.
fn figures_section(out: &mut String, report: &Report) {
    let f = &report.figures;
    let _ = writeln!(out);
    let _ = writeln!(out, "figures (exact values in report.json)");
    for d in &f.detection_ms {
        let _ = writeln!(
            out,
            "  detection of {}: {}",
            d.key,
            if d.value.is_some() {
                "the kernel failed the path after its fault"
            } else {
                "the kernel never failed the path after its fault"
            }
        );
    }
    for g in &f.group_switches_by_map {
        let _ = writeln!(
            out,
            "  group switches in {}: {}",
            g.key,
            g.value.unwrap_or(0.0) as u64
        );
    }
    for n in &f.no_path_ms_by_map {
        let _ = writeln!(
            out,
            "  time without a usable path in {}: {}",
            n.key,
            if n.value.unwrap_or(0.0) > 0.0 {
                "some"
            } else {
                "none"
            }
        );
    }
    let _ = writeln!(
        out,
        "  first application error after the first fault: {}",
        if f.first_error_ms.is_some() {
            "yes"
        } else {
            "none"
        }
    );
    let shares: Vec<String> = f
        .io_share
        .iter()
        .filter_map(|s| {
            s.value
                .map(|v| format!("{} {}", s.key, figures::share_class_of(v)))
        })
        .collect();
    if !shares.is_empty() {
        let _ = writeln!(out, "  io share over the run: {}", shares.join(", "));
    }
}

/// The causes report.txt shows: errors while a map had no usable path, and a path the kernel
/// kept failing while its checker found it up. (Which fault was in force when the kernel failed
/// a path is in report.json and report.html: the timeline above already shows the order.)
fn causes_section(out: &mut String, report: &Report) {
    let shown: Vec<&Cause> = report
        .causes
        .iter()
        .filter(|c| !matches!(c, Cause::KernelFailedUnderFault { .. }))
        .collect();
    if shown.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "causes (exact values in report.json)");
    for c in shown {
        let _ = writeln!(out, "  {}", cause_words(c, false));
    }
}

/// A cause in words: `exact` with its measured values (report.html), or without them
/// (report.txt, where they are timing).
pub(super) fn cause_words(c: &Cause, exact: bool) -> String {
    match c {
        Cause::KernelFailedUnderFault {
            map,
            leg,
            t_ms,
            fault,
            layer,
            fault_ms,
        } => {
            let when = if exact {
                format!(" at {t_ms:.0} ms")
            } else {
                String::new()
            };
            match (fault, layer) {
                (Some(fault), Some(layer)) => {
                    let layer = match layer {
                        faults::Layer::Dm => "the leg's dm table",
                        faults::Layer::Fuse => "the leg's FUSE file server",
                        faults::Layer::Leg => "the map (a fail_path message)",
                        faults::Layer::Scsi => "the leg's path in the SCSI array",
                    };
                    let since = match (exact, fault_ms) {
                        (true, Some(at)) => format!(", {:.0} ms after it was applied", t_ms - at),
                        _ => String::new(),
                    };
                    format!(
                        "{map}: the kernel failed path {leg}{when} while {layer} had {} in force{since}",
                        crate::events::describe_fault(fault)
                    )
                }
                _ => format!(
                    "{map}: the kernel failed path {leg}{when} with no fault of the rig in force on its leg"
                ),
            }
        }
        Cause::CheckerUpKernelFailing {
            map,
            leg,
            kernel_failures,
            from_ms,
            to_ms,
        } => {
            if exact {
                format!(
                    "{map}: the kernel failed path {leg} {kernel_failures} times between {from_ms:.0} ms and {to_ms:.0} ms while the checker found it up after each (the checker's IO works, the application's does not)"
                )
            } else {
                format!(
                    "{map}: the kernel failed path {leg} again and again while the checker found it up after each (the checker's IO works, the application's does not)"
                )
            }
        }
        Cause::ErrorsWithoutPath {
            map,
            errors,
            errors_total,
            no_path_ms,
            episodes,
        } => {
            if exact {
                format!(
                    "{map}: {errors} of {errors_total} application errors came while {map} had no usable path ({:.1} s in {episodes} episode(s))",
                    no_path_ms / 1000.0
                )
            } else {
                // How many of them is timing: the errors of the last path's failure fall just
                // before or after the kernel's "no usable path" is seen.
                format!("{map}: application errors came while {map} had no usable path")
            }
        }
        Cause::ScratchSpaceFull {
            path,
            size_bytes,
            app_errors,
            kernel_failures_without_fault,
        } => {
            let errors = if exact {
                format!("{app_errors} application errors")
            } else {
                "application errors".to_string()
            };
            let failures = match (exact, *kernel_failures_without_fault) {
                (_, 0) => String::new(),
                (true, n) => format!(" and {n} path failure(s) with no fault of the rig in force"),
                (false, _) => " and path failures with no fault of the rig in force".to_string(),
            };
            format!(
                "the rig's scratch space {path} ({} MiB) filled up and refused writes below every path: {errors}{failures} may come from it, not from the paths",
                size_bytes >> 20
            )
        }
    }
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

/// Zero is behaviour; how many more than zero is timing.
fn zero_or_some(n: u64) -> &'static str {
    if n == 0 {
        "none"
    } else {
        "some (count in report.json)"
    }
}
