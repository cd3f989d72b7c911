//! The run's status line: once a second during the workload the runner prints one line to its
//! stderr — in a guest, the console, which the host relays to a terminal (see
//! `rig::guest::status`) — with the time elapsed of the run's length, each map's IOs per second
//! (its block device's completions since the last line), the application errors so far and the
//! kernel's view of every path. The line starts with [`rig::guest::STATUS_PREFIX`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Built, KernelWatch};
use crate::events::{EventKind, EventLog};

/// Time between two status lines.
pub const EVERY: Duration = Duration::from_secs(1);

pub struct Progress {
    next: Duration,
    /// Per map: completions at the last line, and when.
    last: HashMap<String, (u64, Duration)>,
}

impl Progress {
    /// Starts counting at `now`: each map's completions so far are the first line's base.
    pub fn new(built: &Built, now: Duration) -> Progress {
        let last = built
            .maps
            .iter()
            .filter(|m| m.mirror.is_none())
            .filter_map(|m| {
                let s = rig::blockstat::read(m.dev.major, m.dev.minor).ok()?;
                Some((m.name.clone(), (s.reads + s.writes, now)))
            })
            .collect();
        Progress { next: EVERY, last }
    }

    /// When the next line is due (for the runner's sleep).
    pub fn next_due(&self) -> Duration {
        self.next
    }

    /// Prints the status line if one is due at `now`.
    pub fn tick(
        &mut self,
        now: Duration,
        run_length: Duration,
        built: &Built,
        watch: &KernelWatch,
        log: &EventLog,
    ) {
        if now < self.next {
            return;
        }
        while self.next <= now {
            self.next += EVERY;
        }
        eprintln!("{}", self.line(now, run_length, built, watch, log));
    }

    fn line(
        &mut self,
        now: Duration,
        run_length: Duration,
        built: &Built,
        watch: &KernelWatch,
        log: &EventLog,
    ) -> String {
        let mut out = format!(
            "{}{:.0}/{:.0} s",
            rig::guest::STATUS_PREFIX,
            now.as_secs_f64(),
            run_length.as_secs_f64()
        );
        for map in built.maps.iter().filter(|m| m.mirror.is_none()) {
            let ios = rig::blockstat::read(map.dev.major, map.dev.minor)
                .map(|s| s.reads + s.writes)
                .ok();
            let rate = match (ios, self.last.get(&map.name)) {
                (Some(n), Some((before, at))) if now > *at => {
                    let secs = (now - *at).as_secs_f64();
                    format!("{:.0} IO/s", n.saturating_sub(*before) as f64 / secs)
                }
                _ => "- IO/s".to_string(),
            };
            if let Some(n) = ios {
                self.last.insert(map.name.clone(), (n, now));
            }
            let _ = write!(out, "; {} {rate}", map.name);
            if let Some(status) = watch.last.get(&map.name) {
                let paths: Vec<String> = built
                    .legs
                    .iter()
                    .filter_map(|l| {
                        status
                            .path(l.dev)
                            .map(|p| format!("{} {}", l.name, p.state.as_str()))
                    })
                    .collect();
                let _ = write!(out, " ({})", paths.join(", "));
            }
        }
        let errors = log.count(|k| matches!(k, EventKind::IoError { .. }));
        let _ = write!(out, "; {errors} app errors");
        out
    }
}
