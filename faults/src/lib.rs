//! The pathrig scenario language.
//!
//! A scenario is a TOML file describing the multipath maps and legs to build,
//! the faults to inject into legs over time, the IO workload to run, and what
//! must hold afterwards. This crate parses such a file into a validated
//! [`Scenario`], or reports every mistake it can find as a [`Diagnostic`]
//! naming file, line and column, what is wrong and what would be valid.
//!
//! The crate is pure: [`load`] reads the file (and the multipath.conf file it
//! names, if any), [`parse_with`] reads that through the caller's function,
//! nothing else does IO, and nothing reads a clock.
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
//! scratch_mib = 24                        # optional, 16..=4096: less than the maps need
//!
//! [[map]]                                 # one or more
//! name = "mpatha"                         # at most 16 characters
//! size = "64MiB"                          # default 64MiB; 1MiB..=1GiB, multiple of 4KiB
//! selector = "round-robin"                # or "queue-length", "service-time"
//! # only with [manager] kind = "none" (the path manager decides these otherwise):
//! # queue_if_no_path = false              # default false
//! # groups = [["a"], ["b"]]               # default: one group, every leg of the map
//!
//! [[leg]]                                 # one or more per map
//! name = "a"
//! map = "mpatha"                          # may be left out when there is one map
//! prio = 50                               # 0..=1000, default 1; higher is preferred
//! backend = "loop"                        # default; or "fuse" (FUSE fault kinds need it)
//! dm_layer = true                         # default; false: no dm device (no dm fault kinds)
//!
//! [[leg]]
//! name = "b"
//!
//! [[fault]]                               # zero or more
//! at = "3s"                               # from workload start
//! for = "3s"                              # optional: restore the leg afterwards
//! every = "4s"                            # optional, with `for`: `times` windows,
//! times = 2                               # `every` (> `for`) apart
//! leg = "a"
//! kind = "fail"                           # see "Faults" below for every kind
//!
//! [workload]                              # required (or [[workload]], below)
//! map = "mpatha"                          # may be left out when there is one map
//! duration = "10s"                        # required, 1s..=1h
//! read_percent = 70
//! block_size = "4KiB"
//! queue_depth = 8
//! rate_iops = 500                         # optional
//! pattern = "random"                      # or "sequential"
//! verify = true
//! stall_threshold = "1s"
//!
//! # Several maps with IO at once: one [[workload]] per map instead of [workload],
//! # each naming its map (each map at most one). They all start at clock zero and run for
//! # the same time: `duration` on one of them (the others may repeat the same value).
//! # [[workload]]
//! # map = "m1"
//! # duration = "8s"
//! # [[workload]]
//! # map = "m2"
//! # queue_depth = 4
//!
//! # Time-critical IO beside the workload (module `critical`): one aligned block per interval
//! # with a deadline, through the map or multiplexed down every usable path; an area of its
//! # own above the bulk workload's blocks (which end at the lowest critical area).
//! # [[critical]]
//! # name = "mx"                           # default the map's name
//! # mode = "multiplex"                    # required; or "through_map"
//! # op = "write"                          # or "read"
//! # interval = "100ms"
//! # deadline = "1s"
//! # offset = "62MiB"                      # required
//! # size = "1MiB"
//! # block_size = "4KiB"
//!
//! [expect]                                # optional; integer means ==
//! app_errors = 0                          # unkeyed: the first workload
//! max_latency_ms = "< 500"
//! longest_stall_ms = "< 500"              # longest time with IO outstanding, no completion
//! # per map (that map's workload; one form per metric in a file):
//! # max_latency_ms.m2 = "< 500"
//! # critical IO, per writer or map (or unkeyed: every writer):
//! # critical_deadline_misses.mx = 0
//!
//! [expect.final_path_state]
//! a = "active"
//! b = "active"
//!
//! [manager]                               # optional: the path manager
//! kind = "embedded"                       # default; or "none": no path manager, bare kernel
//! # multipath.conf keywords, same names, at the level of a `defaults` section:
//! path_checker = "directio"               # or "tur", "none"
//! polling_interval = 1                    # seconds, or a duration "500ms"; >= 100ms
//! max_polling_interval = 4                # >= polling_interval; default 4 × polling_interval
//! checker_timeout = 2                     # >= 1s
//! path_grouping_policy = "multibus"       # "failover", "multibus", "group_by_prio"
//! failback = "immediate"                  # "manual", "followover", or seconds to wait
//! no_path_retry = 3                       # "fail", "queue", or N retries
//! san_path_err_threshold = 2              # san_path_err_*: all three or none
//! san_path_err_forget_rate = 10
//! san_path_err_recovery_time = 5          # seconds
//! # marginal_path_double_failed_time = 10 # marginal_path_*: all four or none,
//! # marginal_path_err_sample_time = 20    # and not together with san_path_err_*
//! # marginal_path_err_rate_threshold = 10 # permille, 0..=1000
//! # marginal_path_err_recheck_gap_time = 30
//! marginal_pathgroups = "off"             # or "on"
//! # optional multipath.conf text (a literal string, so no escapes):
//! conf = '''
//! overrides {
//!     failback followover
//! }
//! multipaths {
//!     multipath {
//!         wwid pathrig-mpatha             # or: alias mpatha
//!         no_path_retry queue
//!     }
//! }
//! '''
//! # conf_file = "multipath.conf"          # instead of conf: relative to this file's directory
//!
//! [manager.map.mpatha]                    # optional, per map (like a multipath entry)
//! failback = "manual"
//! ```
//!
//! # Faults
//!
//! | kind | layer | parameters |
//! |---|---|---|
//! | `fail` | dm | — |
//! | `delay` | dm | `ms` (every IO), or any of `read_ms`, `write_ms`, `flush_ms` (others 0) |
//! | `flakey` | dm | `up`, `down` (whole seconds); optional `drop_writes`, `error_writes` (not both), `corrupt_bio_byte = { nth, op = "read"\|"write", value, flags }` |
//! | `error_range` | dm | `offset` + `length`, or `ranges = [{ offset, length }, ...]` (512-byte aligned, inside the device, not overlapping) |
//! | `dust` | dm | `bad_blocks = [..]` (inside the device), `block_size` (default 512), `quiet` |
//! | `restore`, `kernel_fail` | leg | — (instants: no `for`) |
//! | `errno` | FUSE | `errno = "EIO"` (a name from [`ERRNOS`]), `probability`, `op`, optional `offset` + `length` |
//! | `latency` | FUSE | `ms`, or `min_ms` + `max_ms`, or `p50_ms` + `p99_ms`; `op` |
//! | `hang` | FUSE | `op` |
//! | `lose` | FUSE | `probability`, optional `offset` + `length` |
//! | `corrupt` | FUSE | `probability`, `op` (not `"flush"`), optional `offset` + `length` |
//!
//! `op` is `"read"`, `"write"`, `"flush"` or `"any"` (default); `probability`
//! is a number within 0..=1 (default 1). **dm** kinds need the leg's dm layer
//! (`dm_layer = true`, the default) and on one leg may not overlap: each
//! replaces the leg's table. **FUSE** kinds need `backend = "fuse"` and on one
//! leg may overlap each other (they compose) and dm kinds. `restore` ends
//! every fault on its leg and may not fall inside a `for` window;
//! `kernel_fail` fails the leg's path in the map. dm-dust semantics: a read of
//! a bad block fails, a write to one succeeds and clears it; a later `dust`
//! fault on a dust leg changes the bad blocks without a table swap. See
//! [`FaultKind`] for each kind's model and [`Scenario::timeline`] for how
//! `every` / `times` expand.
//!
//! Durations are strings like `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or an
//! integer number of seconds. Sizes are strings like `"64MiB"`, `"4KiB"`, or
//! an integer number of bytes; units are binary and `"MB"` is rejected.
//!
//! # The path manager
//!
//! By default every map is managed by pathrig's embedded path manager, set
//! up with multipath.conf's keywords (see [`manager`] for what each means).
//! `[manager] kind = "none"` runs no path manager; any other `[manager]` key,
//! and a leg's `prio`, is then an error, since it would do nothing.
//!
//! **Levels.** Each keyword is resolved per map, the most specific level
//! winning, and each effective value records its [`manager::Origin`]:
//!
//! 1. a multipath.conf `multipath` entry for the map, or `[manager.map.<name>]`;
//! 2. multipath.conf `overrides`;
//! 3. multipath.conf `defaults`, or the `[manager]` keys;
//! 4. built-in ([`manager::ManagerSettings::default`]).
//!
//! The two sources of one level are one level: setting a keyword twice at a
//! level (say `failback` in `[manager]` and in the conf's `defaults`) is an
//! error naming both places. As in multipath-tools, `polling_interval`,
//! `max_polling_interval`, `checker_timeout` and `marginal_pathgroups` may
//! only be set at the defaults level, and `path_checker` not per map.
//!
//! **Maps and multipath entries.** A map's WWID is `pathrig-<map name>`
//! ([`manager::wwid_of`]). A `multipath` entry is for the map whose name is
//! its `alias` or whose WWID is its `wwid`; if it gives both they must name
//! the same map. An entry that matches no map is an error.
//!
//! **multipath.conf text** (inline `conf`, or `conf_file`; not both) is read
//! with multipath-tools' syntax: `defaults`, `overrides` and `multipaths`
//! sections; `blacklist`, `blacklist_exceptions` and `devices` are errors, as
//! is any keyword pathrig does not implement (`prio`, `rr_weight`, ...), so
//! nothing in a conf pathrig accepts is silently ignored. Errors in
//! an inline `conf` are reported at their line and column in the scenario
//! file (the string's content starts after the opening quotes, or on the next
//! line when they end the line); escape sequences such as `\n` in a basic
//! (`"`) string shift these positions, so prefer a `'''` literal string.
//! Errors in a `conf_file` are reported in that file. Values in
//! multipath.conf may be durations like `"500ms"` too, where a keyword takes
//! seconds.
//!
//! **Rules between keywords.** `max_polling_interval` must be at least
//! `polling_interval`; `san_path_err_*` works with all three keywords or
//! none, `marginal_path_*` with all four or none, and a map may not have
//! both (two mechanisms would fight over the same paths). multipath-tools
//! raises a `marginal_path_err_sample_time` below 120 s to 120 s; pathrig
//! does not, so short tests can sample briefly.
//!
//! **Groups and queueing.** With the embedded manager, a map's
//! [`MapSpec::groups`] come from its `path_grouping_policy` and the legs'
//! `prio` ([`manager::GroupingPolicy::groups`]): `failover` makes one group
//! per leg, highest prio first and equal prios in file order; `multibus`
//! one group with every leg in file order; `group_by_prio` one group per
//! distinct prio, highest first, legs in file order. Its
//! [`MapSpec::queue_if_no_path`] comes from `no_path_retry`: false for
//! `"fail"` (or 0), true for `"queue"` or N retries. Writing `groups` or
//! `queue_if_no_path` in `[[map]]` is then an error; with `kind = "none"`
//! both are taken from `[[map]]` as written.
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
//! let map = s.map_id("mpatha").unwrap();
//! assert_eq!(s.legs_of(map).count(), 1);
//! assert_eq!(s.leg(s.map(map).groups[0][0]).name, "a");
//! assert_eq!(s.guest.timeout.as_secs(), 70);
//! ```

pub mod critical;
mod decode;
pub mod figures;
mod ids;
mod input;
mod kinds;
mod mirror;
mod model;
mod resolve;
pub mod scsi;

// The diagnostics machinery is shared with the path manager's language (crate `pathrig-diag`);
// the `[manager]` settings and multipath.conf language are the path manager's own.
use path_manager::lang::{decode as manager_decode, resolve as manager_resolve};
use pathrig_diag as diag;
use pathrig_diag::{reader, units};

/// The path manager's settings (from crate `path-manager`), as the scenario carries them.
pub use path_manager::settings as manager;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};
pub use ids::{FaultId, HbaId, LegId, MapId};
pub use input::MAX_INPUT;
pub use kinds::SECTOR_BYTES;
pub use mirror::{MapKind, MirrorLogKind, MirrorMapSpec};
pub use mirror_monitor as mirror_settings;
pub use model::{
    block_list, Backend, BioDir, ByteRange, Check, Cmp, CorruptBioByte, Errno, Expectations,
    FaultKind, FaultSpec, GuestSpec, IoOp, LatencyDist, Layer, LegSpec, MapSpec, Metric,
    PathStateExpect, Pattern, Probability, Repeat, Scenario, Selector, Step, StepAction,
    WorkloadEngine, WorkloadSpec, ERRNOS,
};
pub use units::{format_duration, format_size, MAX_DURATION};

/// Reads and parses the scenario file at `path`, and the `conf_file` it
/// names, if any (relative to the scenario file's directory).
///
/// Only regular files of at most [`MAX_INPUT`] bytes are read (a FIFO or a
/// device is refused without blocking). A file that cannot be read is
/// reported as a diagnostic at line 0, column 0; text that is not UTF-8 at
/// the line and column of the first bad byte.
pub fn load(path: &Path) -> Result<Scenario, Diagnostics> {
    match input::read_text(path) {
        Ok(text) => parse_with(path, &text, &|p: &Path| {
            input::read_text(p).map_err(|e| std::io::Error::other(e.to_string()))
        }),
        Err(input::InputError::Utf8 {
            line,
            column,
            offset,
        }) => Err(Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line,
            column,
            message: format!("the file is not valid UTF-8 (byte offset {offset})"),
            help: Some(
                "a scenario is UTF-8 text: re-save the file as UTF-8 or remove the byte".into(),
            ),
        }])),
        Err(e) => Err(Diagnostics::whole_file(
            path,
            format!("cannot read scenario file: {e}"),
        )),
    }
}

/// Parses scenario `text`; `path` is only used to name the file in diagnostics.
///
/// Reads no files: a scenario with `[manager] conf_file` is reported as an
/// error (use [`load`] or [`parse_with`]).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, Diagnostics> {
    parse_inner(path, text, None)
}

/// Like [`parse`], with `read_file` to read the `conf_file` the scenario
/// names; it is given `path`'s directory joined with the name.
pub fn parse_with(
    path: &Path,
    text: &str,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Scenario, Diagnostics> {
    parse_inner(path, text, Some(read_file))
}

fn parse_inner(
    path: &Path,
    text: &str,
    read_file: Option<manager_decode::ReadFile>,
) -> Result<Scenario, Diagnostics> {
    let mut report = diag::Report::new(path, text);
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // An error without a place (the parser's nesting limit) is put
            // where the nesting is deepest.
            let message = format!("invalid TOML: {}", e.message().trim_end());
            match e.span() {
                Some(span) => report.error_bare(span.start, message),
                None => report.error(
                    deepest_nesting(text),
                    message,
                    "tables, arrays and dotted keys nest too deeply here; nest them less deeply",
                ),
            }
            return Err(report.finish());
        }
    };
    let draft = decode::decode(&mut report, doc.get_ref(), read_file);
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

/// Byte offset where tables, arrays and dotted keys nest deepest (the first
/// such place); strings and comments are skipped. Only used to place an error
/// the TOML parser gives no position for.
fn deepest_nesting(text: &str) -> usize {
    let (mut depth, mut best, mut at) = (0usize, 0usize, 0usize);
    let mut in_header = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
            '"' | '\'' => {
                let mut escaped = false;
                for (_, d) in chars.by_ref() {
                    if d == '\n' || (d == c && !escaped) {
                        break;
                    }
                    escaped = c == '"' && d == '\\' && !escaped;
                }
            }
            '[' | '{' => {
                if c == '[' && depth == 0 {
                    in_header = true;
                }
                depth += 1;
            }
            ']' | '}' => {
                depth = depth.saturating_sub(1);
            }
            '.' if in_header => depth += 1,
            '\n' if in_header => {
                depth = 0;
                in_header = false;
            }
            '=' => in_header = false,
            _ => {}
        }
        if depth > best {
            (best, at) = (depth, i);
        }
    }
    at
}

#[cfg(test)]
mod tests;
