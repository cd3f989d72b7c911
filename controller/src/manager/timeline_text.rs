//! How a [`Reason`] reads in report.txt's timeline: the same sentence as its `Display`, without
//! the durations the run measured (how long a path was down), which are timing noise there.
//! Configured durations (intervals, delays, timeouts) stay: they are behaviour. The JSON keeps
//! the full sentence.

use faults::manager::PathChecker;

use super::Reason;

fn checker(c: &PathChecker) -> &'static str {
    match c {
        PathChecker::Directio => "directio",
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
        assert_eq!(expired.timeline_text(), expired.to_string());
        assert!(expired.timeline_text().contains("3 × 1s"));
    }
}
