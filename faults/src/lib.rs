//! The pathrig scenario language.
//!
//! A scenario is a TOML file describing the multipath maps and legs to build,
//! the faults to inject into legs over time, the IO workload to run, and what
//! must hold afterwards. This crate parses such a file into a validated
//! [`Scenario`], or reports every mistake it can find as a [`Diagnostic`]
//! naming file, line and column, what is wrong and what would be valid.
//!
//! The crate is pure: [`load`] reads the file, nothing else does IO, and
//! nothing reads a clock.
//!
//! # Format
//!
//! ```toml
//! name = "leg-fails-and-returns"          # required: [a-z0-9][a-z0-9-]{0,31}
//! description = "one leg fails for 3 s"   # optional
//! seed = 7                                # default 1
//!
//! [guest]                                 # optional
//! memory_mib = 512                        # 128..=4096, default 512
//! timeout = "90s"                         # default: workload duration + 60s
//!
//! [[map]]                                 # one or more
//! name = "mpatha"                         # at most 16 characters
//! size = "64MiB"                          # default 64MiB; 1MiB..=1GiB, multiple of 4KiB
//! selector = "round-robin"                # or "queue-length", "service-time"
//! queue_if_no_path = false
//! groups = [["a"], ["b"]]                 # default: one group, every leg of the map
//!
//! [[leg]]                                 # one or more per map
//! name = "a"
//! map = "mpatha"                          # may be left out when there is one map
//!
//! [[leg]]
//! name = "b"
//!
//! [[fault]]                               # zero or more
//! at = "3s"                               # from workload start
//! for = "3s"                              # optional: restore the leg afterwards
//! leg = "a"
//! kind = "fail"                           # "fail", "delay" (ms = 200),
//!                                         # "flakey" (up = "1s", down = "1s"), "restore"
//!
//! [workload]                              # required
//! duration = "10s"                        # required, 1s..=1h
//! read_percent = 70
//! block_size = "4KiB"
//! queue_depth = 8
//! rate_iops = 500                         # optional
//! pattern = "random"                      # or "sequential"
//! verify = true
//! stall_threshold = "1s"
//!
//! [expect]                                # optional; integer means ==
//! app_errors = 0
//! max_latency_ms = "< 500"
//!
//! [expect.final_path_state]
//! a = "active"
//! b = "active"
//! ```
//!
//! Durations are strings like `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or an
//! integer number of seconds. Sizes are strings like `"64MiB"`, `"4KiB"`, or
//! an integer number of bytes; units are binary and `"MB"` is rejected.
//!
//! ```
//! let text = r#"
//! name = "one-leg"
//! [[map]]
//! name = "mpatha"
//! [[leg]]
//! name = "a"
//! [workload]
//! duration = "10s"
//! "#;
//! let s = faults::parse("one-leg.toml".as_ref(), text).unwrap();
//! assert_eq!(s.legs_of("mpatha").count(), 1);
//! assert_eq!(s.guest.timeout.as_secs(), 70);
//! ```

mod decode;
mod diag;
mod kinds;
pub mod manager;
mod model;
mod reader;
mod resolve;
mod units;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};
pub use model::{
    Check, Cmp, Expectations, FaultKind, FaultSpec, GuestSpec, LegSpec, MapSpec, Metric,
    PathStateExpect, Pattern, Scenario, Selector, Step, StepAction, WorkloadSpec,
};
pub use units::{format_duration, format_size};

/// Reads and parses the scenario file at `path`.
///
/// A file that cannot be read is reported as a diagnostic at line 0, column 0.
pub fn load(path: &Path) -> Result<Scenario, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(Diagnostics::whole_file(
            path,
            format!("cannot read scenario file: {e}"),
        )),
    }
}

/// Parses scenario `text`; `path` is only used to name the file in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, Diagnostics> {
    let mut report = diag::Report::new(path, text);
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            report.error_bare(at, format!("invalid TOML: {}", e.message().trim_end()));
            return Err(report.finish());
        }
    };
    let draft = decode::decode(&mut report, doc.get_ref());
    match resolve::resolve(&mut report, draft) {
        Some(scenario) if !report.has_errors() => Ok(scenario),
        _ => {
            if !report.has_errors() {
                // Every path that drops a value reports why; this is a bug guard.
                report.error_bare(
                    0,
                    "internal error: scenario incomplete but no error was reported",
                );
            }
            Err(report.finish())
        }
    }
}

#[cfg(test)]
mod tests;
