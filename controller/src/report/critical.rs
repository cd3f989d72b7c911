//! The critical IO section of the report: per `[[critical]]` writer, what it ran (mode, op,
//! interval, deadline, area) and what it saw — deadline misses, latency, failures and the last
//! one with the time it took, and for multiplexed IO which path answered first and how often
//! the copies disagreed. Owns the typed summary (report.json `critical[]`), its words in
//! report.txt, and the values of the `critical_*` expectations.

use std::fmt::Write as _;

use faults::critical::{CriticalCheck, CriticalMetric, CriticalSpec};
use faults::Scenario;
use rig::workload::critical::{CriticalFailure, CriticalReport, Disagreement};
use serde::Serialize;

use super::MismatchReport;

/// One writer's summary.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CriticalSummary {
    pub name: String,
    pub map: String,
    /// `through_map` or `multiplex`.
    pub mode: String,
    /// `write` or `read`.
    pub op: String,
    pub interval_ms: f64,
    pub deadline_ms: f64,
    pub offset_bytes: u64,
    pub size_bytes: u64,
    pub block_size: u32,
    /// Timed IOs due (one per interval).
    pub ios: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Timed IOs without a success by their deadline (late, failed, blocked, never answered).
    pub deadline_misses: u64,
    /// Ticks with every block of the area held by copies still in flight.
    pub blocked: u64,
    /// Failed at once because the kernel listed no usable path (multiplex).
    pub no_usable_path: u64,
    /// Ticks the writer itself could not keep (the guest or its thread not scheduled): not
    /// issued, and neither IOs nor misses — the rig's lag, not the storage's.
    pub late: u64,
    /// Issue to success or final failure of the timed IOs, ms.
    pub latency_ms: CriticalLatency,
    /// Multiplex: how often each path's copy was the first success (empty through the map).
    pub first_answer: Vec<FirstAnswer>,
    pub disagreements: u64,
    pub disagreement_details: Vec<Disagreement>,
    /// The first failures (at most 20), the last one, and the longest a failure took.
    pub failures: Vec<CriticalFailure>,
    pub last_failure: Option<CriticalFailure>,
    pub max_failure_ms: Option<f64>,
    pub verified_blocks: u64,
    pub mismatches: u64,
    pub mismatch_details: Vec<MismatchReport>,
    pub readback_errors: u64,
    pub cancels_sent: u64,
    pub cancelled: u64,
    pub unanswered_at_end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct CriticalLatency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FirstAnswer {
    pub path: String,
    pub count: u64,
}

impl CriticalSummary {
    pub fn new(scenario: &Scenario, spec: &CriticalSpec, r: &CriticalReport) -> CriticalSummary {
        let ms = |us: u64| us as f64 / 1000.0;
        CriticalSummary {
            name: spec.name.clone(),
            map: scenario.map(spec.map).name.clone(),
            mode: spec.mode.name().to_string(),
            op: match spec.op {
                faults::critical::CriticalOp::Write => "write",
                faults::critical::CriticalOp::Read => "read",
            }
            .to_string(),
            interval_ms: spec.interval.as_secs_f64() * 1000.0,
            deadline_ms: spec.deadline.as_secs_f64() * 1000.0,
            offset_bytes: spec.offset,
            size_bytes: spec.size,
            block_size: spec.block_size,
            ios: r.ios,
            succeeded: r.succeeded,
            failed: r.failed,
            deadline_misses: r.deadline_misses,
            blocked: r.blocked,
            no_usable_path: r.no_usable_path,
            late: r.late,
            latency_ms: CriticalLatency {
                p50: ms(r.latency.p50_us),
                p99: ms(r.latency.p99_us),
                max: ms(r.latency.max_us),
            },
            first_answer: r
                .first_answer
                .iter()
                .map(|(path, count)| FirstAnswer {
                    path: path.clone(),
                    count: *count,
                })
                .collect(),
            disagreements: r.disagreements,
            disagreement_details: r.disagreement_details.clone(),
            failures: r.failures.clone(),
            last_failure: r.last_failure.clone(),
            max_failure_ms: r.max_failure_ms,
            verified_blocks: r.verified,
            mismatches: r.mismatches.len() as u64,
            mismatch_details: r
                .mismatches
                .iter()
                .map(|m| {
                    let byte_offset = m.block * u64::from(spec.block_size);
                    MismatchReport {
                        block: m.block,
                        block_size: spec.block_size,
                        byte_offset,
                        lba: byte_offset / 512,
                        count: 1,
                        t_ms: m.t.as_secs_f64() * 1000.0,
                        detail: m.detail.clone(),
                    }
                })
                .collect(),
            readback_errors: r.readback_errors,
            cancels_sent: r.cancels_sent,
            cancelled: r.cancelled,
            unanswered_at_end: r.unanswered_at_end,
        }
    }

    fn value(&self, metric: CriticalMetric) -> f64 {
        match metric {
            CriticalMetric::DeadlineMisses => self.deadline_misses as f64,
            CriticalMetric::Ios => self.ios as f64,
            CriticalMetric::Failures => self.failed as f64,
            CriticalMetric::P50Ms => self.latency_ms.p50,
            CriticalMetric::P99Ms => self.latency_ms.p99,
            CriticalMetric::MaxMs => self.latency_ms.max,
            CriticalMetric::Disagreements => self.disagreements as f64,
            CriticalMetric::Mismatches => self.mismatches as f64,
        }
    }
}

/// The value a `critical_*` check compares: over its writers, counts add up and latencies take
/// the largest; whole milliseconds, rounded up (so `< 1000` fails at 999.5 ms). `None` without
/// a writer.
pub fn check_value(
    check: &CriticalCheck,
    scenario: &Scenario,
    all: &[CriticalSummary],
) -> Option<u64> {
    let values: Vec<f64> = check
        .writers(scenario)
        .into_iter()
        .filter_map(|i| all.get(i))
        .map(|s| s.value(check.metric))
        .collect();
    if values.is_empty() {
        return None;
    }
    let v = if check.metric.is_latency() {
        values.into_iter().fold(0.0, f64::max)
    } else {
        values.into_iter().sum()
    };
    Some(v.ceil() as u64)
}

fn none_or_some(n: u64) -> &'static str {
    if n == 0 {
        "none"
    } else {
        "some"
    }
}

/// report.txt's words: behaviour as none/some and the deadline against the latency buckets;
/// the numbers are in report.json `critical[]`. Each line starts with a fixed prefix so a
/// snapshot can leave a timing-dependent one to the JSON.
pub fn text(all: &[CriticalSummary]) -> String {
    let mut out = String::new();
    for c in all {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "critical IO {} on map {} ({}: one {} B {}{} every {} ms, deadline {} ms)",
            c.name,
            c.map,
            c.mode.replace('_', " "),
            c.block_size,
            c.op,
            if c.op == "write" { " (read back)" } else { "" },
            c.interval_ms,
            c.deadline_ms
        );
        let _ = writeln!(
            out,
            "  deadline misses: {}",
            none_or_some(c.deadline_misses)
        );
        let _ = writeln!(out, "  failures: {}", none_or_some(c.failed));
        if c.last_failure.is_some() {
            let how = if c.mode == "through_map" {
                "the map failed the IO"
            } else if c.no_usable_path == c.failed {
                "no usable path"
            } else if c.no_usable_path > 0 {
                "every path failed, then no usable path"
            } else {
                "every path failed"
            };
            let _ = writeln!(out, "  failed because: {how}");
        }
        let _ = writeln!(
            out,
            "  slowest critical IO: {}",
            if c.latency_ms.max <= c.deadline_ms {
                "within the deadline"
            } else {
                "past the deadline"
            }
        );
        if c.mode == "multiplex" {
            let total: u64 = c.first_answer.iter().map(|f| f.count).sum();
            let words: Vec<String> = c
                .first_answer
                .iter()
                .map(|f| {
                    let class = match f.count {
                        0 => "none",
                        n if n == total => "all",
                        _ => "some",
                    };
                    format!("{} {class}", f.path)
                })
                .collect();
            let _ = writeln!(out, "  first answers: {}", words.join(", "));
            let _ = writeln!(out, "  copies disagreed: {}", none_or_some(c.disagreements));
        }
        let _ = writeln!(
            out,
            "  verification: {}",
            if c.mismatches == 0 {
                "every read matched"
            } else {
                "MISMATCHES"
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let text =
            "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[[leg]]\nname = \"b\"\n\
             [workload]\nduration = \"5s\"\n\
             [[critical]]\nname = \"tm\"\nmode = \"through_map\"\noffset = \"60MiB\"\n\
             [[critical]]\nname = \"mx\"\nmode = \"multiplex\"\noffset = \"62MiB\"\n\
             [expect]\ncritical_ios = 200\ncritical_deadline_misses.mx = 0\n\
             critical_max_ms.m = \"<= 1500\"\ncritical_p99_ms.tm = \"> 1200\"\n";
        faults::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    fn summaries(s: &Scenario) -> Vec<CriticalSummary> {
        let tm = CriticalReport {
            ios: 100,
            succeeded: 100,
            deadline_misses: 3,
            latency: rig::workload::LatencySummary {
                p50_us: 400,
                p99_us: 1_200_400,
                max_us: 1_500_000,
                mean_us: 0.0,
                count: 100,
            },
            ..CriticalReport::default()
        };
        let mx = CriticalReport {
            ios: 100,
            succeeded: 98,
            failed: 2,
            no_usable_path: 2,
            first_answer: vec![("a".into(), 0), ("b".into(), 98)],
            last_failure: Some(CriticalFailure {
                t_ms: 3000.0,
                took_ms: 0.0,
                errno: None,
                copies: 0,
            }),
            ..CriticalReport::default()
        };
        vec![
            CriticalSummary::new(s, &s.critical[0], &tm),
            CriticalSummary::new(s, &s.critical[1], &mx),
        ]
    }

    #[test]
    fn checks_add_counts_and_take_the_largest_latency_rounded_up() {
        let s = scenario();
        let all = summaries(&s);
        let values: Vec<Option<u64>> = s
            .expect
            .critical
            .iter()
            .map(|c| check_value(c, &s, &all))
            .collect();
        // Unkeyed: both writers; `.mx`: its own; `.m`: the larger max of the map's
        // writers; 1200.4 ms rounds up to 1201, so `> 1200` holds.
        assert_eq!(values, vec![Some(200), Some(0), Some(1500), Some(1201)]);
        assert!(check_value(&s.expect.critical[3], &s, &[]).is_none());
    }

    #[test]
    fn text_words_say_what_happened_not_how_long() {
        let s = scenario();
        let text = text(&summaries(&s));
        assert!(text.contains("critical IO tm on map m (through map: one 4096 B write (read back) every 100 ms, deadline 1000 ms)\n  deadline misses: some\n  failures: none\n  slowest critical IO: past the deadline\n"), "{text}");
        assert!(
            text.contains("critical IO mx on map m (multiplex: "),
            "{text}"
        );
        assert!(
            text.contains("  failures: some\n  failed because: no usable path\n"),
            "{text}"
        );
        assert!(
            text.contains("  first answers: a none, b all\n  copies disagreed: none\n"),
            "{text}"
        );
        assert!(!text.contains("1500"), "no timings in the words: {text}");
    }
}
