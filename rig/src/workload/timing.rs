//! Time-based policies of the engine, kept free of IO so they can be tested with made-up clocks:
//! the submission pacer (`rate_iops`) and the stall detector (`stall_threshold`).

use std::time::{Duration, Instant};

/// Spaces submissions `1/rate` apart. A submission late by less than one interval keeps the
/// schedule (so wake-up jitter does not lower the rate); after a longer gap (e.g. the queue was
/// full during a hang) the schedule restarts from now, so there is no catch-up burst beyond one.
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next_due: Instant,
}

impl Pacer {
    pub(crate) fn new(rate_iops: Option<u32>, start: Instant) -> Pacer {
        let interval = rate_iops.map(|r| Duration::from_secs(1) / r.max(1));
        Pacer {
            interval,
            next_due: start,
        }
    }

    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.interval.is_none() || now >= self.next_due
    }

    /// How long until the next submission is allowed (zero if now; `None` if unpaced).
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        self.interval
            .map(|_| self.next_due.saturating_duration_since(now))
    }

    /// Records a submission made at `now`.
    pub(crate) fn submitted(&mut self, now: Instant) {
        if let Some(i) = self.interval {
            let floor = now.checked_sub(i).unwrap_or(now);
            self.next_due = self.next_due.max(floor) + i;
        }
    }
}

/// Watches for periods with IO outstanding and no completion.
///
/// The quiet period starts at the last completion, or at the submission that made the
/// outstanding count non-zero, whichever is later; it is a stall once it lasts `threshold`.
pub(crate) struct StallDetector {
    threshold: Duration,
    quiet_since: Option<Instant>,
    open: Option<Instant>,
    /// The longest quiet period a completion ended, stall or not.
    longest_quiet: Duration,
}

impl StallDetector {
    pub(crate) fn new(threshold: Duration) -> StallDetector {
        StallDetector {
            threshold,
            quiet_since: None,
            open: None,
            longest_quiet: Duration::ZERO,
        }
    }

    /// The longest time so far with IO outstanding and no completion, ended by a completion,
    /// whether or not it reached the threshold (a quiet period still open is not counted).
    pub(crate) fn longest_quiet(&self) -> Duration {
        self.longest_quiet
    }

    /// A submission at `now`, when `in_flight` IOs were outstanding before it.
    pub(crate) fn submitted(&mut self, now: Instant, in_flight: u32) {
        if in_flight == 0 {
            self.quiet_since = Some(now);
        }
    }

    /// Called with the time and the outstanding count; returns the instant a stall began the first
    /// time it is noticed.
    pub(crate) fn poll(&mut self, now: Instant, in_flight: u32) -> Option<Instant> {
        let since = self.quiet_since?;
        if in_flight > 0
            && self.open.is_none()
            && now.saturating_duration_since(since) >= self.threshold
        {
            self.open = Some(since);
            return Some(since);
        }
        None
    }

    /// One or more completions at `now`; returns `(began, length)` of the stall they end.
    pub(crate) fn completed(&mut self, now: Instant) -> Option<(Instant, Duration)> {
        if let Some(since) = self.quiet_since {
            self.longest_quiet = self.longest_quiet.max(now.saturating_duration_since(since));
        }
        self.quiet_since = Some(now);
        self.open
            .take()
            .map(|began| (began, now.saturating_duration_since(began)))
    }

    /// How long until a stall would be declared if nothing completes (`None` if none can be).
    pub(crate) fn until_due(&self, now: Instant, in_flight: u32) -> Option<Duration> {
        match (self.quiet_since, self.open) {
            (Some(since), None) if in_flight > 0 => {
                Some((since + self.threshold).saturating_duration_since(now))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pacer_keeps_schedule_and_does_not_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Some(200), t0);
        assert!(p.ready(t0));
        p.submitted(t0);
        assert!(!p.ready(t0 + 4 * MS));
        assert_eq!(p.wait(t0 + 4 * MS), Some(MS));
        // Late by 1 ms: the next is still due at 10 ms, not 11.
        assert!(p.ready(t0 + 6 * MS));
        p.submitted(t0 + 6 * MS);
        assert_eq!(p.wait(t0 + 6 * MS), Some(4 * MS));
        // After a 1 s gap at most one extra submission is allowed right away.
        let late = t0 + 1000 * MS;
        p.submitted(late);
        assert!(p.ready(late));
        p.submitted(late);
        assert!(!p.ready(late));
        // Unpaced.
        let u = Pacer::new(None, t0);
        assert!(u.ready(t0) && u.wait(t0).is_none());
    }

    #[test]
    fn stall_begins_at_last_activity_and_ends_at_next_completion() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(100 * MS);
        assert_eq!(s.poll(t0, 0), None);
        s.submitted(t0, 0);
        s.submitted(t0 + 5 * MS, 1); // does not move the start
        assert_eq!(s.until_due(t0 + 50 * MS, 2), Some(50 * MS));
        assert_eq!(s.poll(t0 + 99 * MS, 2), None);
        assert_eq!(s.poll(t0 + 100 * MS, 2), Some(t0));
        assert_eq!(s.poll(t0 + 150 * MS, 2), None, "reported once");
        assert_eq!(s.until_due(t0 + 150 * MS, 2), None);
        assert_eq!(s.completed(t0 + 400 * MS), Some((t0, 400 * MS)));
        // Completions keep coming: no stall.
        assert_eq!(s.completed(t0 + 450 * MS), None);
        assert_eq!(s.poll(t0 + 540 * MS, 1), None);
        // Quiet with nothing outstanding is not a stall ...
        assert_eq!(s.poll(t0 + 2000 * MS, 0), None);
        // ... and the next stall starts at the submission that ended the idle time.
        s.submitted(t0 + 2000 * MS, 0);
        assert_eq!(s.poll(t0 + 2150 * MS, 1), Some(t0 + 2000 * MS));
        assert_eq!(
            s.completed(t0 + 2200 * MS),
            Some((t0 + 2000 * MS, 200 * MS))
        );
        // The longest quiet period was the 400 ms stall; the idle time did not count.
        assert_eq!(s.longest_quiet(), 400 * MS);
    }

    #[test]
    fn longest_quiet_counts_gaps_below_the_threshold() {
        let t0 = Instant::now();
        let mut s = StallDetector::new(1000 * MS);
        assert_eq!(s.longest_quiet(), Duration::ZERO);
        s.submitted(t0, 0);
        assert_eq!(s.completed(t0 + 30 * MS), None);
        assert_eq!(s.completed(t0 + 280 * MS), None, "250 ms is no stall");
        assert_eq!(s.completed(t0 + 300 * MS), None);
        assert_eq!(s.longest_quiet(), 250 * MS);
    }
}
