//! The core's timers: one enum saying what a timer is for, one table ordered by due time.
//!
//! A timer is identified by what it is for ([`Timer`]); setting one that is already set moves
//! it, cancelling one that is not set does nothing. [`Timers::next_deadline`] is the earliest
//! due time of a set timer, and [`Timers::expired`] hands out every timer due at or before
//! `now`, earliest first (ties in the order of [`Timer`]), removing it: after a tick at `now`
//! has drained `expired(now)`, the next deadline is later than `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A path of a map, as a timer names it (`u32`s keep the table's entries small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Slot {
    pub map: u32,
    pub path: u32,
}

/// Path `p` of map `m`.
pub(super) fn slot(m: usize, p: usize) -> Slot {
    Slot {
        map: m as u32,
        path: p as u32,
    }
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A path's next check is due (for `path_checker none`: it counts as up).
    Check(Slot),
    /// A held-back path's recovery time is over.
    Delay(Slot),
    /// A map's deferred failback countdown ran out.
    Failback(u32),
    /// A map's `no_path_retry` countdown ran out.
    Retry(u32),
    /// A sampled path's next burst of sample reads is due.
    Burst(Slot),
    /// A sample's time is over: the window rule decides.
    SampleEnd(Slot),
    /// A marginal path's recheck gap is over.
    Recheck(Slot),
}

impl Timer {
    /// The failback timer of map `m`.
    pub(super) fn failback(m: usize) -> Timer {
        Timer::Failback(m as u32)
    }

    /// The `no_path_retry` timer of map `m`.
    pub(super) fn retry(m: usize) -> Timer {
        Timer::Retry(m as u32)
    }
}

/// Every set timer, by due time and by what it is for.
#[derive(Default)]
pub(super) struct Timers {
    queue: BTreeSet<(Duration, Timer)>,
    due: BTreeMap<Timer, Duration>,
}

impl Timers {
    /// Sets `timer` to fire at `at` (moving it if it was set).
    pub(super) fn set(&mut self, timer: Timer, at: Duration) {
        if let Some(old) = self.due.insert(timer, at) {
            self.queue.remove(&(old, timer));
        }
        self.queue.insert((at, timer));
    }

    /// Cancels `timer` if it is set.
    pub(super) fn cancel(&mut self, timer: Timer) {
        if let Some(at) = self.due.remove(&timer) {
            self.queue.remove(&(at, timer));
        }
    }

    /// The earliest due time of a set timer; `None` when none is set. It can be at or before
    /// the current time only while the timer has not been handed out by [`Timers::expired`].
    pub(super) fn next_deadline(&self) -> Option<Duration> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest timer due at or before `now`, with its due time.
    pub(super) fn expired(&mut self, now: Duration) -> Option<(Duration, Timer)> {
        let &(at, timer) = self.queue.first().filter(|(at, _)| *at <= now)?;
        self.queue.pop_first();
        self.due.remove(&timer);
        Some((at, timer))
    }

    /// How many timers are set.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn set_moves_cancel_removes_expired_drains() {
        let mut t = Timers::default();
        t.set(Timer::Check(slot(0, 1)), ms(30));
        t.set(Timer::failback(0), ms(10));
        t.set(Timer::Check(slot(0, 1)), ms(5));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(ms(5)));
        t.cancel(Timer::Retry(3));
        t.cancel(Timer::Check(slot(0, 1)));
        assert_eq!(t.next_deadline(), Some(ms(10)));
        t.set(Timer::retry(0), ms(10));
        assert_eq!(t.expired(ms(9)), None);
        assert_eq!(t.expired(ms(10)), Some((ms(10), Timer::Failback(0))));
        assert_eq!(t.expired(ms(10)), Some((ms(10), Timer::Retry(0))));
        assert_eq!(t.expired(ms(10)), None);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn after_draining_the_next_deadline_is_in_the_future() {
        let mut t = Timers::default();
        for (i, at) in [7, 3, 3, 12, 0].into_iter().enumerate() {
            t.set(Timer::Check(slot(0, i)), ms(at));
        }
        let now = ms(7);
        let mut fired = Vec::new();
        while let Some((at, _)) = t.expired(now) {
            fired.push(at);
        }
        assert_eq!(fired, [ms(0), ms(3), ms(3), ms(7)]);
        assert!(t.next_deadline().is_some_and(|d| d > now));
    }
}
