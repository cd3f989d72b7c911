//! The one ordered event log of a run.
//!
//! Every part of a run (fault timeline, kernel watcher, workload, rig, path manager) records into
//! one [`EventLog`] with times from one monotonic clock: milliseconds since the scenario's clock
//! zero (the workload start; setup happens before it, at negative times).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// Who caused or observed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Fault,
    Kernel,
    Manager,
    Workload,
    Rig,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Fault => "fault",
            Source::Kernel => "kernel",
            Source::Manager => "manager",
            Source::Workload => "workload",
            Source::Rig => "rig",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the scenario's clock zero, with microsecond precision.
    pub t_ms: f64,
    pub source: Source,
    pub what: String,
    /// Whether the event belongs in report.txt's timeline. Setup and teardown steps and
    /// individual IO errors (whose number is timing noise) stay in the JSON only.
    pub in_timeline: bool,
    /// report.txt's wording when `what` carries measured values (how long a path was down):
    /// the same sentence without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_text: Option<String>,
}

/// A clock zero shared by every recorder.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub origin: Instant,
}

impl Clock {
    pub fn since_origin(&self, at: Instant) -> f64 {
        if at >= self.origin {
            at.duration_since(self.origin).as_secs_f64() * 1000.0
        } else {
            -(self.origin.duration_since(at).as_secs_f64() * 1000.0)
        }
    }

    pub fn now_ms(&self) -> f64 {
        self.since_origin(Instant::now())
    }
}

/// Thread-safe, append-only log; [`EventLog::sorted`] gives the final order.
#[derive(Clone)]
pub struct EventLog {
    clock: Clock,
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventLog {
    pub fn new(clock: Clock) -> EventLog {
        EventLog {
            clock,
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Records an event that happens now.
    pub fn record(&self, source: Source, what: impl Into<String>) {
        self.record_at(self.clock.now_ms(), source, what, true);
    }

    /// Records an event whose report.txt wording differs from `what` (see [`Event::timeline_text`]).
    pub fn record_with_text(
        &self,
        source: Source,
        what: impl Into<String>,
        text: impl Into<String>,
    ) {
        let (what, text) = (what.into(), text.into());
        let event = Event {
            t_ms: self.clock.now_ms(),
            source,
            timeline_text: (text != what).then_some(text),
            what,
            in_timeline: true,
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    /// Records an event that stays out of report.txt's timeline.
    pub fn record_detail(&self, source: Source, what: impl Into<String>) {
        self.record_at(self.clock.now_ms(), source, what, false);
    }

    pub fn record_at(&self, t_ms: f64, source: Source, what: impl Into<String>, in_timeline: bool) {
        let event = Event {
            t_ms,
            source,
            what: what.into(),
            in_timeline,
            timeline_text: None,
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }

    /// All events by time; events with equal times keep the order they were recorded in.
    pub fn sorted(&self) -> Vec<Event> {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        events
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn events_come_out_in_time_order_and_stable() {
        let log = EventLog::new(Clock {
            origin: Instant::now(),
        });
        log.record_at(5.0, Source::Kernel, "second", true);
        log.record_at(-3.0, Source::Rig, "setup", false);
        log.record_at(5.0, Source::Rig, "third", true);
        log.record_at(1.0, Source::Fault, "first", true);
        let order: Vec<_> = log.sorted().into_iter().map(|e| e.what).collect();
        assert_eq!(order, ["setup", "first", "second", "third"]);
    }

    #[test]
    fn times_before_the_origin_are_negative() {
        let origin = Instant::now() + Duration::from_millis(50);
        let clock = Clock { origin };
        assert!(clock.now_ms() < 0.0);
        assert!((clock.since_origin(origin + Duration::from_millis(20)) - 20.0).abs() < 0.01);
    }
}
