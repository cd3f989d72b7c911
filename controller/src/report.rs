//! The behaviour report of a run: `report.json` (everything, exact) and `report.txt` (for people
//! and snapshots: deterministic for a given scenario — order of state changes, counts that are
//! behaviour, verdicts, and latencies and stalls only as coarse buckets).

use std::fmt::Write as _;

use std::time::Duration;

use faults::manager::{
    Failback, GroupingPolicy, ManagerSettings, MarginalPathgroups, NoPathRetry, Origin, PathChecker,
};
use faults::{Metric, PathStateExpect, Scenario};
use serde::Serialize;

use crate::events::Event;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: ScenarioInfo,
    pub guest: GuestInfo,
    pub manager: ManagerInfo,
    pub maps: Vec<MapReport>,
    pub workload: WorkloadSummary,
    pub events: Vec<Event>,
    pub expectations: Vec<ExpectationResult>,
    pub verdict: Verdict,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuestInfo {
    /// `uml`, `qemu` or `none`.
    pub kind: String,
    pub kernel_release: String,
    /// Guest kernel start to pathrig's init starting (guests only).
    pub boot_to_init_ms: Option<f64>,
    /// Guest kernel start to the scenario's clock zero: modules loaded, devices built.
    pub boot_to_ready_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManagerInfo {
    /// `none` until pathrig has its path manager.
    pub kind: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapReport {
    pub name: String,
    pub dm_name: String,
    pub device: String,
    pub selector: String,
    pub queue_if_no_path: bool,
    pub groups: Vec<Vec<String>>,
    /// The live table as the kernel printed it (`dmsetup table` form).
    pub table: String,
    /// The status at the end of the run as the kernel printed it (`dmsetup status` form).
    pub final_status: String,
    pub paths: Vec<PathReport>,
    /// The group the kernel uses (or will use next) at the end, 1-based; none if no group is.
    pub final_group: Option<usize>,
    /// Absent without a path manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<ManagerMapReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    pub leg: String,
    /// The leg's dm device, `major:minor`, as it appears in the table.
    pub device: String,
    /// 1-based path group.
    pub group: usize,
    pub final_state: String,
    pub fail_count: u32,
    /// What the FUSE file server injected on this leg (`backend = "fuse"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse_faults: Option<rig::fuse::FaultCounts>,
    /// The path manager's own (checker's) view at the end; absent without a manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checker: Option<String>,
}

/// The path manager's side of a map.
#[derive(Debug, Clone, Serialize)]
pub struct ManagerMapReport {
    /// Every effective setting and where it came from.
    pub settings: Vec<SettingReport>,
    /// 1-based; the group the manager considers best at the end.
    pub best_group: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingReport {
    pub keyword: String,
    pub value: String,
    pub origin: String,
}

/// The effective settings as multipath.conf keywords with values and origins.
pub fn settings_rows(s: &ManagerSettings) -> Vec<SettingReport> {
    let secs = |d: &Duration| faults::format_duration(*d);
    let row = |keyword: &str, value: String, origin: &Origin| SettingReport {
        keyword: keyword.into(),
        value,
        origin: origin.to_string(),
    };
    let mut rows = vec![
        row(
            "path_checker",
            match s.path_checker.value {
                PathChecker::Directio => "directio".into(),
                PathChecker::None => "none".into(),
            },
            &s.path_checker.origin,
        ),
        row(
            "polling_interval",
            secs(&s.polling_interval.value),
            &s.polling_interval.origin,
        ),
        row(
            "max_polling_interval",
            secs(&s.max_polling_interval.value),
            &s.max_polling_interval.origin,
        ),
        row(
            "checker_timeout",
            secs(&s.checker_timeout.value),
            &s.checker_timeout.origin,
        ),
        row(
            "path_grouping_policy",
            match s.path_grouping_policy.value {
                GroupingPolicy::Failover => "failover".into(),
                GroupingPolicy::Multibus => "multibus".into(),
                GroupingPolicy::GroupByPrio => "group_by_prio".into(),
            },
            &s.path_grouping_policy.origin,
        ),
        row(
            "failback",
            match s.failback.value {
                Failback::Immediate => "immediate".into(),
                Failback::Manual => "manual".into(),
                Failback::Deferred(d) => secs(&d),
                Failback::Followover => "followover".into(),
            },
            &s.failback.origin,
        ),
        row(
            "no_path_retry",
            match s.no_path_retry.value {
                NoPathRetry::Fail => "fail".into(),
                NoPathRetry::Queue => "queue".into(),
                NoPathRetry::Retries(n) => n.to_string(),
            },
            &s.no_path_retry.origin,
        ),
    ];
    match &s.san_path_err.value {
        Some(d) => rows.extend([
            row(
                "san_path_err_threshold",
                d.threshold.to_string(),
                &s.san_path_err.origin,
            ),
            row(
                "san_path_err_forget_rate",
                d.forget_rate.to_string(),
                &s.san_path_err.origin,
            ),
            row(
                "san_path_err_recovery_time",
                secs(&d.recovery_time),
                &s.san_path_err.origin,
            ),
        ]),
        None => rows.push(row("san_path_err_*", "off".into(), &s.san_path_err.origin)),
    }
    match &s.marginal_path.value {
        Some(m) => rows.extend([
            row(
                "marginal_path_double_failed_time",
                secs(&m.double_failed_time),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_sample_time",
                secs(&m.err_sample_time),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_rate_threshold",
                m.err_rate_threshold.to_string(),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_recheck_gap_time",
                secs(&m.err_recheck_gap_time),
                &s.marginal_path.origin,
            ),
        ]),
        None => rows.push(row(
            "marginal_path_*",
            "off".into(),
            &s.marginal_path.origin,
        )),
    }
    rows.push(row(
        "marginal_pathgroups",
        match s.marginal_pathgroups.value {
            MarginalPathgroups::Off => "off".into(),
            MarginalPathgroups::On => "on".into(),
        },
        &s.marginal_pathgroups.origin,
    ));
    rows
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyUs {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MismatchReport {
    pub t_ms: f64,
    pub lba: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    pub began_ms: f64,
    pub length_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSummary {
    pub device: String,
    pub pattern: String,
    pub read_percent: u8,
    pub block_size: u32,
    pub queue_depth: u32,
    pub duration_ms: u64,
    pub elapsed_ms: f64,
    pub reads: u64,
    pub writes: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub app_errors: u64,
    pub verified_blocks: u64,
    pub mismatches: u64,
    pub mismatch_details: Vec<MismatchReport>,
    pub latency_us: LatencyUs,
    /// Completed IOs per latency bucket (bucket label → count).
    pub latency_buckets: Vec<(String, u64)>,
    pub stalls: Vec<StallReport>,
    pub max_stall_ms: f64,
    pub first_error_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    pub what: String,
    pub held: bool,
    pub actual: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Building backing files, loops, legs and maps.
    pub setup_ms: f64,
    /// Clock zero to the last workload completion.
    pub run_ms: f64,
    pub teardown_ms: f64,
}

/// Coarse latency buckets: wide enough that timing noise does not move a value between them.
pub const LATENCY_BUCKETS_MS: &[(u64, &str)] = &[
    (100, "under 100 ms"),
    (1_000, "100 ms to 1 s"),
    (10_000, "1 s to 10 s"),
    (u64::MAX, "10 s or more"),
];

/// The bucket a duration in milliseconds falls into.
pub fn bucket(ms: f64) -> &'static str {
    LATENCY_BUCKETS_MS
        .iter()
        .find(|(limit, _)| ms < *limit as f64)
        .map(|(_, label)| *label)
        .unwrap_or("10 s or more")
}

impl Report {
    /// The value a `[expect]` metric refers to.
    pub fn metric(&self, metric: Metric) -> u64 {
        let w = &self.workload;
        match metric {
            Metric::AppErrors => w.app_errors,
            Metric::ReadErrors => w.read_errors,
            Metric::WriteErrors => w.write_errors,
            Metric::Mismatches => w.mismatches,
            Metric::Reads => w.reads,
            Metric::Writes => w.writes,
            Metric::VerifiedBlocks => w.verified_blocks,
            Metric::MaxLatencyMs => w.latency_us.max / 1000,
            Metric::P99LatencyMs => w.latency_us.p99 / 1000,
            Metric::Stalls => w.stalls.len() as u64,
            Metric::MaxStallMs => w.max_stall_ms as u64,
            Metric::KernelPathFailures => self
                .maps
                .iter()
                .flat_map(|m| &m.paths)
                .map(|p| p.fail_count as u64)
                .sum(),
        }
    }

    /// Checks the scenario's expectations against this report and sets the verdict.
    pub fn evaluate(&mut self, scenario: &Scenario) {
        let mut results = Vec::new();
        for check in &scenario.expect.checks {
            let actual = self.metric(check.metric);
            results.push(ExpectationResult {
                what: check.to_string(),
                held: check.holds(actual),
                actual: actual.to_string(),
            });
        }
        for (leg, expected) in &scenario.expect.final_path_state {
            let actual = self
                .maps
                .iter()
                .flat_map(|m| &m.paths)
                .find(|p| &p.leg == leg)
                .map(|p| p.final_state.clone())
                .unwrap_or_else(|| "unknown".into());
            let wanted = match expected {
                PathStateExpect::Active => "active",
                PathStateExpect::Failed => "failed",
            };
            results.push(ExpectationResult {
                what: format!("final state of path {leg} == {wanted}"),
                held: actual == wanted,
                actual,
            });
        }
        self.verdict = if results.iter().all(|r| r.held) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.expectations = results;
    }

    /// report.txt: deterministic for a given scenario.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "pathrig report: {}", self.scenario.name);
        if let Some(description) = &self.scenario.description {
            let _ = writeln!(out, "  {description}");
        }
        let _ = writeln!(out, "seed: {}", self.scenario.seed);
        let _ = writeln!(out, "guest: {}", self.guest.kind);
        let _ = writeln!(
            out,
            "path manager: {} ({})",
            self.manager.kind, self.manager.note
        );
        for map in &self.maps {
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
                    path.leg, path.final_state, path.fail_count
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
            if let Some(manager) = &map.manager {
                let _ = writeln!(out, "  manager settings:");
                for row in &manager.settings {
                    let _ = writeln!(out, "    {} {} ({})", row.keyword, row.value, row.origin);
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "timeline (faults, kernel path changes and actions, in order; times and workload events are in report.json)");
        let timeline: Vec<&Event> = self.events.iter().filter(|e| e.in_timeline).collect();
        if timeline.is_empty() {
            let _ = writeln!(out, "  (nothing happened)");
        }
        for event in timeline {
            let text = event.timeline_text.as_deref().unwrap_or(&event.what);
            let _ = writeln!(out, "  {:<8} {}", event.source.as_str(), text);
        }
        let w = &self.workload;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "workload ({} IO, {}% reads, {} B blocks, queue depth {}, {} ms)",
            w.pattern, w.read_percent, w.block_size, w.queue_depth, w.duration_ms
        );
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
        let _ = writeln!(out);
        let _ = writeln!(out, "expectations");
        if self.expectations.is_empty() {
            let _ = writeln!(out, "  (none stated)");
        }
        for e in &self.expectations {
            let _ = writeln!(
                out,
                "  [{}] {}",
                if e.held { "held" } else { "FAILED" },
                e.what
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "verdict: {}",
            match self.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "fail",
            }
        );
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            scenario: ScenarioInfo {
                name: "t".into(),
                description: None,
                seed: 1,
            },
            guest: GuestInfo {
                kind: "uml".into(),
                kernel_release: "6.1".into(),
                boot_to_init_ms: None,
                boot_to_ready_ms: None,
            },
            manager: ManagerInfo {
                kind: "none".into(),
                note: "x".into(),
            },
            maps: vec![MapReport {
                name: "m".into(),
                dm_name: "pathrig-m".into(),
                device: "254:2".into(),
                selector: "round-robin".into(),
                queue_if_no_path: false,
                groups: vec![vec!["a".into(), "b".into()]],
                table: String::new(),
                final_status: String::new(),
                paths: vec![
                    PathReport {
                        leg: "a".into(),
                        device: "254:0".into(),
                        group: 1,
                        final_state: "active".into(),
                        fail_count: 1,
                        checker: None,
                        fuse_faults: None,
                    },
                    PathReport {
                        leg: "b".into(),
                        device: "254:1".into(),
                        group: 1,
                        final_state: "failed".into(),
                        fail_count: 2,
                        checker: None,
                        fuse_faults: None,
                    },
                ],
                final_group: Some(1),
                manager: None,
            }],
            workload: WorkloadSummary {
                device: "/dev/dm-2".into(),
                pattern: "random".into(),
                read_percent: 70,
                block_size: 4096,
                queue_depth: 8,
                duration_ms: 1000,
                elapsed_ms: 1001.0,
                reads: 10,
                writes: 5,
                read_errors: 2,
                write_errors: 1,
                app_errors: 3,
                verified_blocks: 7,
                mismatches: 0,
                mismatch_details: vec![],
                latency_us: LatencyUs {
                    p50: 800,
                    p99: 150_000,
                    max: 250_000,
                    mean: 1000,
                },
                latency_buckets: vec![],
                stalls: vec![StallReport {
                    began_ms: 10.0,
                    length_ms: 2500.0,
                }],
                max_stall_ms: 2500.0,
                first_error_ms: Some(3.0),
            },
            events: vec![],
            expectations: vec![],
            verdict: Verdict::Pass,
            timing: Timing {
                setup_ms: 0.0,
                run_ms: 0.0,
                teardown_ms: 0.0,
            },
        }
    }

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[[leg]]\nname = \"b\"\n[workload]\nduration = \"1s\"\n{expect}"
        );
        faults::parse(std::path::Path::new("t.toml"), &text).unwrap()
    }

    #[test]
    fn metrics_read_the_right_numbers() {
        let r = sample();
        assert_eq!(r.metric(Metric::AppErrors), 3);
        assert_eq!(r.metric(Metric::MaxLatencyMs), 250);
        assert_eq!(r.metric(Metric::P99LatencyMs), 150);
        assert_eq!(r.metric(Metric::Stalls), 1);
        assert_eq!(r.metric(Metric::MaxStallMs), 2500);
        assert_eq!(r.metric(Metric::KernelPathFailures), 3);
    }

    #[test]
    fn a_failed_expectation_fails_the_verdict() {
        let mut r = sample();
        r.evaluate(&scenario("[expect]\nreads = \"> 0\"\n"));
        assert_eq!(r.verdict, Verdict::Pass);
        r.evaluate(&scenario("[expect]\napp_errors = 0\n"));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.expectations[0].actual, "3");
        r.evaluate(&scenario(
            "[expect.final_path_state]\na = \"active\"\nb = \"active\"\n",
        ));
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.expectations[0].held);
        assert!(!r.expectations[1].held);
    }

    #[test]
    fn text_shows_buckets_not_raw_numbers() {
        let mut r = sample();
        r.evaluate(&scenario("[expect]\nmax_stall_ms = \"> 1000\"\n"));
        let text = r.render_text();
        assert!(text.contains("max latency: 100 ms to 1 s"), "{text}");
        assert!(text.contains("stalls: 1, longest 1 s to 10 s"), "{text}");
        assert!(text.contains("application IO errors: some"), "{text}");
        assert!(text.contains("[held] max_stall_ms > 1000"), "{text}");
        assert!(!text.contains("250000"), "{text}");
    }

    #[test]
    fn buckets_have_fixed_edges() {
        assert_eq!(bucket(99.9), "under 100 ms");
        assert_eq!(bucket(100.0), "100 ms to 1 s");
        assert_eq!(bucket(9_999.0), "1 s to 10 s");
        assert_eq!(bucket(10_000.0), "10 s or more");
    }
}
