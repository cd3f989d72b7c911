//! Why the core did something: one variant per rule, each with a sentence a reviewer understands.
//!
//! Groups are shown with the table's 1-based numbers (as `multipath -ll`, dmsetup and the
//! `switch_group` message count them), while [`super::Action`] carries 0-based indices.

use std::fmt;
use std::time::Duration;

use crate::settings::{MarginalDetector, PathChecker, Ppm};
use serde::{Deserialize, Serialize};

use super::SampleEvidence;

/// Who failed a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailedBy {
    /// The path checker found it down.
    Checker,
    /// The kernel failed it (an IO error, or a `fail_path` message).
    Kernel,
    /// The marginal-path detector took it out to sample it.
    Marginal,
}

/// How a marginal-path verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// The window rule at the end of the sample time.
    Window,
    /// The sequential test crossed a boundary. The statistic and the boundaries are in
    /// thousandths (the log-likelihood ratio 4.617 is 4617).
    Sequential(SprtEvidence),
    /// The sequential test had not crossed a boundary at the end of the sample time: the
    /// window rule decided.
    SequentialUndecided(SprtEvidence),
}

/// The sequential test's state at a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SprtEvidence {
    /// Log-likelihood ratio (marginal vs acceptable) × 1000, saturated for ±infinity.
    pub llr_milli: i64,
    /// `ln(β/(1-α))` × 1000: at or below it the path is good.
    pub lower_milli: i64,
    /// `ln((1-β)/α)` × 1000: at or above it the path is marginal.
    pub upper_milli: i64,
    /// The acceptable and the marginal error rate.
    pub good: Ppm,
    pub bad: Ppm,
}

/// The rule behind an [`super::Action`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The real multipathd decided it (`kind = "multipathd"`); `said` is its log line.
    Multipathd { said: String },
    /// The checker found an active path down: fail it.
    CheckerDown {
        checker: PathChecker,
        detail: String,
    },
    /// The check got no answer within `checker_timeout`: counts as down.
    CheckerTimedOut {
        checker: PathChecker,
        timeout: Duration,
    },
    /// The checker found a path down that the kernel had failed already (note).
    CheckerDownAlreadyFailed {
        checker: PathChecker,
        detail: String,
    },
    /// The checker still finds the path down but the kernel has it active again (a table reload):
    /// fail it again.
    CheckerStillDown {
        checker: PathChecker,
        detail: String,
        since: Duration,
    },
    /// The checker finds the path up while the kernel had failed it: reinstate.
    CheckerUpKernelFailed { checker: PathChecker },
    /// The checker finds the path up again after it was down: reinstate.
    CheckerUpAgain {
        checker: PathChecker,
        down_for: Duration,
    },
    /// The checker finds the path up again; the kernel had kept it active (note).
    CheckerUpAgainActive {
        checker: PathChecker,
        down_for: Duration,
    },
    /// The kernel failed a path by itself; its next check is moved forward (note).
    KernelFailed {
        fail_count: u32,
        recheck_within: Duration,
    },
    /// `failback immediate`: the best group is usable and is not the active one.
    FailbackImmediate {
        group: usize,
        prio: u32,
        active: usize,
    },
    /// `failback N`: the countdown starts (note).
    FailbackDeferredArmed {
        delay: Duration,
        group: usize,
        prio: u32,
        active: usize,
    },
    /// `failback N`: the countdown ran out and the best group is still better than the active.
    FailbackDeferredExpired {
        delay: Duration,
        group: usize,
        prio: u32,
    },
    /// `failback N`: a path of the map failed while the countdown ran (note).
    FailbackDeferredCancelled {
        delay: Duration,
        leg: String,
        by: FailedBy,
    },
    /// `failback N`: the countdown is not needed anymore (note).
    FailbackDeferredDropped {
        delay: Duration,
        active: Option<usize>,
        best: Option<usize>,
    },
    /// `failback followover`: a path of the best group came back and the rest of it was down.
    FailbackFollowover {
        leg: String,
        group: usize,
        prio: u32,
    },
    /// `no_path_retry N`: the last usable path is gone; queueing starts to count down (note).
    NoPathRetryStarted { retries: u32, interval: Duration },
    /// `no_path_retry N`: the countdown ran out: stop queueing.
    NoPathRetryExpired { retries: u32, interval: Duration },
    /// `no_path_retry N`: a path is usable before the countdown ran out (note).
    NoPathRetryStopped {
        retries: u32,
        leg: String,
        after: Duration,
    },
    /// `no_path_retry N`: a path is usable after queueing was stopped: queue again.
    PathBack { leg: String },
    /// `san_path_err_*`: the path comes back with too many failures: hold it back (note).
    DampingHeld {
        failures: u32,
        threshold: u32,
        recovery: Duration,
    },
    /// `san_path_err_*`: the hold-back time is over and the checker still finds it up.
    DampingRecovered { recovery: Duration },
    /// `san_path_err_*`: no other path of the map is usable, so the flapping path is not held
    /// back.
    DampingLastPath { failures: u32, threshold: u32 },
    /// `marginal_path_*`: the path failed twice within `double_failed_time` (`apart` is the
    /// measured time between the failures; a failure of the core's own `fail_path` counts):
    /// hold it, and sample it from the first check that finds it up.
    MarginalTriggered {
        apart: Duration,
        double_failed_time: Duration,
        sample_time: Duration,
        detector: MarginalDetector,
    },
    /// `marginal_path_*`: a triggered path is found up by the checker: its first sample starts.
    MarginalSampleStart {
        checker: PathChecker,
        sample_time: Duration,
        detector: MarginalDetector,
    },
    /// `marginal_path_*`: the recheck gap of a marginal path is over and the checker finds it
    /// up: sample it again.
    MarginalRecheck {
        gap: Duration,
        sample_time: Duration,
        round: u32,
    },
    /// `marginal_path_*`: the sample found the path good (reinstated, or a note when the
    /// kernel has it active already).
    MarginalGood {
        evidence: SampleEvidence,
        elapsed: Duration,
        threshold: u32,
        decision: Decision,
    },
    /// `marginal_path_*`: the sample found the path marginal (note); sampled again after
    /// `recheck`.
    MarginalBad {
        evidence: SampleEvidence,
        elapsed: Duration,
        threshold: u32,
        decision: Decision,
        recheck: Duration,
    },
    /// `marginal_path_*`: the checker finds a held path up and no path of the map is usable:
    /// it is reinstated at once and is no longer marginal (need_io_err_check's early recovery).
    MarginalLastPath,
    /// `marginal_path_*`: a table reload re-activated a sampled (or marginal) path: fail it
    /// again.
    MarginalKeptOut { marginal: bool },
    /// `marginal_pathgroups on`: the table is reloaded so that a path moves into the extra last
    /// group of marginal paths (`into_marginal`) or back to its own group; `group` is its group
    /// in the new table.
    MarginalRegroup {
        leg: String,
        into_marginal: bool,
        group: usize,
    },
    /// `marginal_pathgroups on`: a marginal path is reinstated in the marginal group.
    MarginalGroupReinstate { group: usize },
}

/// "12 errors in 6400 reads (3 timed out)".
pub(crate) struct Counts<'a>(pub &'a SampleEvidence);

impl fmt::Display for Counts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(
            f,
            "{} error{} in {} read{}",
            e.errors,
            if e.errors == 1 { "" } else { "s" },
            e.answered,
            if e.answered == 1 { "" } else { "s" }
        )?;
        if e.timed_out > 0 {
            write!(f, " ({} timed out)", e.timed_out)?;
        }
        Ok(())
    }
}

/// An error rate in permille with one decimal: "0.5‰", "12‰".
pub(crate) struct Rate<'a>(pub &'a SampleEvidence);

impl fmt::Display for Rate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if e.answered == 0 {
            return write!(f, "no rate");
        }
        let tenths =
            (u64::from(e.errors) * 10_000 + u64::from(e.answered) / 2) / u64::from(e.answered);
        if tenths % 10 == 0 {
            write!(f, "{}‰", tenths / 10)
        } else {
            write!(f, "{}.{}‰", tenths / 10, tenths % 10)
        }
    }
}

/// Thousandths as a decimal with two places: "4.62", "-4.60", "∞".
pub(crate) struct Milli(pub i64);

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            i64::MAX => write!(f, "∞"),
            i64::MIN => write!(f, "-∞"),
            m => {
                let hundredths = (m as f64 / 10.0).round() as i64;
                let sign = if hundredths < 0 { "-" } else { "" };
                let a = hundredths.unsigned_abs();
                write!(f, "{sign}{}.{:02}", a / 100, a % 100)
            }
        }
    }
}

pub(crate) fn detector_name(d: MarginalDetector) -> &'static str {
    match d {
        MarginalDetector::Window => "window",
        MarginalDetector::Sequential => "sequential",
    }
}

impl Decision {
    /// The stable part of the verdict: which rule decided, against what.
    pub(crate) fn rule(&self, good: bool, threshold: u32) -> String {
        let window = if good {
            format!("error rate at most the threshold {threshold}‰")
        } else {
            format!("error rate above the threshold {threshold}‰")
        };
        match self {
            Decision::Window => format!("window: {window}"),
            Decision::Sequential(s) => format!(
                "sequential test: {} error rate {}‰ rather than {}‰",
                if good { "acceptable" } else { "marginal" },
                if good { s.good } else { s.bad }.permille_text(),
                if good { s.bad } else { s.good }.permille_text(),
            ),
            Decision::SequentialUndecided(_) => {
                format!("sequential test undecided at the end of the sample, window: {window}")
            }
        }
    }
}

fn verdict(
    f: &mut fmt::Formatter<'_>,
    good: bool,
    evidence: &SampleEvidence,
    elapsed: Duration,
    threshold: u32,
    decision: &Decision,
) -> fmt::Result {
    write!(
        f,
        "marginal_path: sample {} after {}: {} = {}",
        if good { "good" } else { "bad" },
        Secs(elapsed),
        Counts(evidence),
        Rate(evidence),
    )?;
    let unanswered = evidence.sent - evidence.answered.min(evidence.sent);
    if unanswered > 0 {
        write!(f, " ({unanswered} more unanswered, ignored)")?;
    }
    write!(f, "; {}", decision.rule(good, threshold))?;
    if let Decision::Sequential(s) | Decision::SequentialUndecided(s) = decision {
        write!(
            f,
            " (log-likelihood ratio {}, boundaries {} and {})",
            Milli(s.llr_milli),
            Milli(s.lower_milli),
            Milli(s.upper_milli)
        )?;
    }
    Ok(())
}

fn checker_name(c: PathChecker) -> &'static str {
    match c {
        PathChecker::Directio => "directio",
        PathChecker::Tur => "tur",
        PathChecker::None => "none",
    }
}

/// A duration the way a person writes it: `10s`, `1.5s`, `250ms`.
pub(crate) struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d >= Duration::from_secs(1) {
            let s = format!("{:.3}", d.as_secs_f64());
            write!(f, "{}s", s.trim_end_matches('0').trim_end_matches('.'))
        } else {
            let s = format!("{:.3}", d.as_secs_f64() * 1000.0);
            write!(f, "{}ms", s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// A 0-based group index shown 1-based.
pub(crate) struct Group(pub usize);

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0 + 1)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Multipathd { said } => write!(f, "multipathd: {said}"),
            Reason::CheckerDown { checker, detail } => {
                write!(f, "checker {}: down ({detail})", checker_name(*checker))
            }
            Reason::CheckerTimedOut { checker, timeout } => write!(
                f,
                "checker {}: no answer within checker_timeout {}, counts as down",
                checker_name(*checker),
                Secs(*timeout)
            ),
            Reason::CheckerDownAlreadyFailed { checker, detail } => write!(
                f,
                "checker {}: down ({detail}); the kernel had already failed it",
                checker_name(*checker)
            ),
            Reason::CheckerStillDown {
                checker,
                detail,
                since,
            } => write!(
                f,
                "checker {}: down ({detail}) since {}, but the kernel has it active again",
                checker_name(*checker),
                Secs(*since)
            ),
            Reason::CheckerUpKernelFailed { checker } => match checker {
                PathChecker::None => {
                    write!(
                        f,
                        "checker none: up by definition; the kernel had failed it"
                    )
                }
                c => write!(
                    f,
                    "checker {}: up; the kernel had failed it",
                    checker_name(*c)
                ),
            },
            Reason::CheckerUpAgain { checker, down_for } => write!(
                f,
                "checker {}: up again after {} down",
                checker_name(*checker),
                Secs(*down_for)
            ),
            Reason::CheckerUpAgainActive { checker, down_for } => write!(
                f,
                "checker {}: up again after {} down; the kernel had kept it active",
                checker_name(*checker),
                Secs(*down_for)
            ),
            Reason::KernelFailed {
                fail_count,
                recheck_within,
            } => write!(
                f,
                "the kernel failed the path (fail count {fail_count}); next check within {}",
                Secs(*recheck_within)
            ),
            Reason::FailbackImmediate {
                group,
                prio,
                active,
            } => write!(
                f,
                "failback immediate: {} (prio {prio}) is usable again and preferred to {}",
                Group(*group),
                Group(*active)
            ),
            Reason::FailbackDeferredArmed {
                delay,
                group,
                prio,
                active,
            } => write!(
                f,
                "deferred failback armed, {}: {} (prio {prio}) is usable and preferred to {}",
                Secs(*delay),
                Group(*group),
                Group(*active)
            ),
            Reason::FailbackDeferredExpired { delay, group, prio } => write!(
                f,
                "failback {}: {} (prio {prio}) stayed usable for {}",
                Secs(*delay),
                Group(*group),
                Secs(*delay)
            ),
            Reason::FailbackDeferredCancelled { delay, leg, by } => write!(
                f,
                "deferred failback ({}) cancelled: the {} failed path {leg}",
                Secs(*delay),
                match by {
                    FailedBy::Checker => "checker",
                    FailedBy::Kernel => "kernel",
                    FailedBy::Marginal => "marginal-path detector",
                }
            ),
            Reason::FailbackDeferredDropped {
                delay,
                active,
                best,
            } => match (best, active) {
                (None, _) => write!(
                    f,
                    "deferred failback ({}) dropped: no group is usable",
                    Secs(*delay)
                ),
                (Some(b), Some(a)) if a == b => write!(
                    f,
                    "deferred failback ({}) dropped: {} is active already",
                    Secs(*delay),
                    Group(*b)
                ),
                (Some(_), Some(a)) => write!(
                    f,
                    "deferred failback ({}) dropped: active {} has no usable path, the kernel \
                     leaves it by itself",
                    Secs(*delay),
                    Group(*a)
                ),
                (Some(_), None) => write!(
                    f,
                    "deferred failback ({}) dropped: the kernel reports no active group",
                    Secs(*delay)
                ),
            },
            Reason::FailbackFollowover { leg, group, prio } => write!(
                f,
                "failback followover: path {leg} came back and every other path of {} \
                 (prio {prio}) was down",
                Group(*group)
            ),
            Reason::NoPathRetryStarted { retries, interval } => write!(
                f,
                "no_path_retry {retries}: no usable path, queueing IO for {retries} × {}",
                Secs(*interval)
            ),
            Reason::NoPathRetryExpired { retries, interval } => write!(
                f,
                "no_path_retry {retries}: no path for {retries} × {}, stop queueing",
                Secs(*interval)
            ),
            Reason::NoPathRetryStopped {
                retries,
                leg,
                after,
            } => write!(
                f,
                "no_path_retry {retries}: path {leg} is usable again after {}, countdown stopped",
                Secs(*after)
            ),
            Reason::PathBack { leg } => write!(f, "a path is back ({leg}): queue IO again"),
            Reason::DampingHeld {
                failures,
                threshold,
                recovery,
            } => write!(
                f,
                "san_path_err: {failures} failures > threshold {threshold}, held back for {}",
                Secs(*recovery)
            ),
            Reason::DampingRecovered { recovery } => write!(
                f,
                "san_path_err: held back for {} and the checker still finds it up",
                Secs(*recovery)
            ),
            Reason::DampingLastPath {
                failures,
                threshold,
            } => write!(
                f,
                "last usable path: not held back despite flapping ({failures} failures > \
                 threshold {threshold})"
            ),
            Reason::MarginalTriggered {
                apart,
                double_failed_time,
                sample_time,
                detector,
            } => write!(
                f,
                "marginal_path: the path failed twice within {} \
                 (marginal_path_double_failed_time {}): held, to be sampled for {} ({} \
                 detector) from the next check that finds it up",
                Secs(*apart),
                Secs(*double_failed_time),
                Secs(*sample_time),
                detector_name(*detector)
            ),
            Reason::MarginalSampleStart {
                checker,
                sample_time,
                detector,
            } => write!(
                f,
                "marginal_path: checker {} finds the held path up: sampling it for {} ({} \
                 detector)",
                checker_name(*checker),
                Secs(*sample_time),
                detector_name(*detector)
            ),
            Reason::MarginalRecheck {
                gap,
                sample_time,
                round,
            } => write!(
                f,
                "marginal_path: marginal for marginal_path_err_recheck_gap_time {}: sampling it \
                 again for {} (sample {round})",
                Secs(*gap),
                Secs(*sample_time)
            ),
            Reason::MarginalGood {
                evidence,
                elapsed,
                threshold,
                decision,
            } => verdict(f, true, evidence, *elapsed, *threshold, decision),
            Reason::MarginalBad {
                evidence,
                elapsed,
                threshold,
                decision,
                recheck,
            } => {
                verdict(f, false, evidence, *elapsed, *threshold, decision)?;
                write!(f, "; kept out, sampled again in {}", Secs(*recheck))
            }
            Reason::MarginalLastPath => {
                f.write_str("marginal_path: no usable path: reinstated early, no longer marginal")
            }
            Reason::MarginalKeptOut { marginal } => write!(
                f,
                "marginal_path: {}, but the kernel has it active again",
                if *marginal {
                    "marginal"
                } else {
                    "being sampled"
                }
            ),
            Reason::MarginalRegroup {
                leg,
                into_marginal: true,
                group,
            } => write!(
                f,
                "marginal_pathgroups on: path {leg} moves to {}, used after every other group",
                Group(*group)
            ),
            Reason::MarginalRegroup {
                leg,
                into_marginal: false,
                group,
            } => write!(
                f,
                "marginal_pathgroups on: path {leg} moves back to {}",
                Group(*group)
            ),
            Reason::MarginalGroupReinstate { group } => write!(
                f,
                "marginal_pathgroups on: reinstated in {}, used after every other group",
                Group(*group)
            ),
        }
    }
}
