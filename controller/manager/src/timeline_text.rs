//! How a [`Reason`] reads in report.txt's timeline: the same sentence as its `Display`, without
//! the durations the run measured (how long a path was down), which are timing noise there.
//! Configured durations (intervals, delays, timeouts) stay: they are behaviour. The JSON keeps
//! the full sentence.
//!
//! Marginal-path reasons lose their measurements too: the time between the two kernel
//! failures, a sample's read and error counts, its elapsed time and the sequential test's
//! statistic (how many reads fit in a sample, and which of them a flaky leg fails, is timing
//! and chance). What stays is the verdict and the rule that reached it, with its configured
//! threshold or rates.

use crate::settings::PathChecker;

use super::reason::{detector_name, Secs};
use super::Reason;

fn checker(c: &PathChecker) -> &'static str {
    match c {
        PathChecker::Directio => "directio",
        PathChecker::Tur => "tur",
        PathChecker::None => "none",
    }
}

impl Reason {
    pub fn timeline_text(&self) -> String {
        match self {
            Reason::CheckerStillDown {
                checker: c, detail, ..
            } => {
                format!(
                    "checker {}: down ({detail}), but the kernel has it active again",
                    checker(c)
                )
            }
            Reason::CheckerUpAgain { checker: c, .. } => {
                format!("checker {}: up again", checker(c))
            }
            Reason::CheckerUpAgainActive { checker: c, .. } => {
                format!(
                    "checker {}: up again; the kernel had kept it active",
                    checker(c)
                )
            }
            Reason::NoPathRetryStopped { retries, leg, .. } => {
                format!("no_path_retry {retries}: path {leg} is usable again, countdown stopped")
            }
            Reason::MarginalTriggered {
                double_failed_time,
                sample_time,
                detector,
                ..
            } => format!(
                "marginal_path: the path failed twice within \
                 marginal_path_double_failed_time {}: held, to be sampled for {} ({} detector) \
                 from the next check that finds it up",
                Secs(*double_failed_time),
                Secs(*sample_time),
                detector_name(*detector)
            ),
            Reason::MarginalRecheck {
                gap, sample_time, ..
            } => format!(
                "marginal_path: marginal for marginal_path_err_recheck_gap_time {}: sampling it \
                 again for {}",
                Secs(*gap),
                Secs(*sample_time)
            ),
            Reason::MarginalGood {
                threshold,
                decision,
                ..
            } => format!(
                "marginal_path: sample good; {}",
                decision.rule(true, *threshold)
            ),
            Reason::MarginalBad {
                threshold,
                decision,
                recheck,
                ..
            } => format!(
                "marginal_path: sample bad; {}; kept out, sampled again in {}",
                decision.rule(false, *threshold),
                Secs(*recheck)
            ),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn measured_durations_are_left_out_and_configured_ones_kept() {
        let up = Reason::CheckerUpAgain {
            checker: PathChecker::Directio,
            down_for: Duration::from_millis(2992),
        };
        assert!(up.to_string().contains("2.992s"));
        assert_eq!(up.timeline_text(), "checker directio: up again");
        let stopped = Reason::NoPathRetryStopped {
            retries: 3,
            leg: "b".into(),
            after: Duration::from_millis(1234),
        };
        assert!(!stopped.timeline_text().contains("1.234"));
        let expired = Reason::NoPathRetryExpired {
            retries: 3,
            interval: Duration::from_secs(1),
        };
        // Configured numbers only: the timeline keeps the whole sentence.
        assert_eq!(
            expired.timeline_text(),
            "no_path_retry 3: no path for 3 × 1s, stop queueing"
        );
    }

    #[test]
    fn marginal_verdicts_keep_the_rule_and_lose_the_counts() {
        use crate::settings::{MarginalDetector, Ppm};

        use crate::reason::SprtEvidence;
        use crate::{Decision, SampleEvidence};

        let evidence = SampleEvidence {
            sent: 150,
            answered: 140,
            errors: 28,
            timed_out: 2,
        };
        let bad = Reason::MarginalBad {
            evidence,
            elapsed: Duration::from_millis(2003),
            threshold: 100,
            decision: Decision::Window,
            recheck: Duration::from_secs(5),
        };
        assert_eq!(
            bad.to_string(),
            "marginal_path: sample bad after 2.003s: 28 errors in 140 reads (2 timed out) = \
             200‰ (10 more unanswered, ignored); window: error rate above the threshold 100‰; \
             kept out, sampled again in 5s"
        );
        assert_eq!(
            bad.timeline_text(),
            "marginal_path: sample bad; window: error rate above the threshold 100‰; kept out, \
             sampled again in 5s"
        );
        let sprt = SprtEvidence {
            llr_milli: -4617,
            lower_milli: -4595,
            upper_milli: 4595,
            good: Ppm(2500),
            bad: Ppm::permille(20),
        };
        let good = Reason::MarginalGood {
            evidence: SampleEvidence {
                sent: 256,
                answered: 253,
                errors: 0,
                timed_out: 0,
            },
            elapsed: Duration::from_millis(812),
            threshold: 10,
            decision: Decision::Sequential(sprt),
        };
        assert!(good
            .to_string()
            .contains("(log-likelihood ratio -4.62, boundaries -4.60 and 4.60)"));
        assert_eq!(
            good.timeline_text(),
            "marginal_path: sample good; sequential test: acceptable error rate 2.5‰ rather than 20‰"
        );
        let undecided = Reason::MarginalGood {
            evidence,
            elapsed: Duration::from_secs(20),
            threshold: 10,
            decision: Decision::SequentialUndecided(sprt),
        };
        assert_eq!(
            undecided.timeline_text(),
            "marginal_path: sample good; sequential test undecided at the end of the sample, \
             window: error rate at most the threshold 10‰"
        );
        let trigger = Reason::MarginalTriggered {
            apart: Duration::from_millis(2345),
            double_failed_time: Duration::from_secs(10),
            sample_time: Duration::from_secs(20),
            detector: MarginalDetector::Sequential,
        };
        assert!(trigger.to_string().contains("within 2.345s"));
        assert_eq!(
            trigger.timeline_text(),
            "marginal_path: the path failed twice within \
             marginal_path_double_failed_time 10s: held, to be sampled for 20s (sequential \
             detector) from the next check that finds it up"
        );
        let recheck = Reason::MarginalRecheck {
            gap: Duration::from_secs(30),
            sample_time: Duration::from_secs(20),
            round: 7,
        };
        assert!(!recheck.timeline_text().contains('7'));
        assert_eq!(
            Reason::MarginalLastPath.timeline_text(),
            "marginal_path: no usable path: reinstated early, no longer marginal"
        );
    }
}
