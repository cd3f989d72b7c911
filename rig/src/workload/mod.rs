//! The verifying IO workload: io_uring + O_DIRECT reads and writes on the multipath map (or, in
//! tests, a regular file) for a fixed time while faults are injected underneath.
//!
//! This module owns the public API (config, events, report, [`run`]) and config validation.
//! The parts:
//! - [`codec`]: the on-disk format of a block (header, fill, CRC32);
//! - [`tracker`]: what each block should hold, including after failed writes, and the
//!   one-IO-per-block rule;
//! - [`generator`]: the seeded op sequence;
//! - [`timing`]: submission pacing and stall detection;
//! - [`engine`]: the io_uring loop that ties them together and drains every in-flight IO before
//!   returning.
//!
//! Precondition: the region starts zeroed (a fresh device or backing file). A block this run has
//! not written must read back as all zeros, or the read is a mismatch.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod codec;
pub mod critical;
mod engine;
pub mod fio;
mod generator;
pub mod series;
mod timing;
mod tracker;

#[cfg(test)]
mod critical_tests;
#[cfg(test)]
mod tests;

pub(crate) use tracker::Tracker;

/// What to run. See [`run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Block device (or, in tests, a regular file), opened `O_RDWR | O_DIRECT`.
    pub path: PathBuf,
    /// The region used is `[0, size_bytes)`, rounded down to whole blocks.
    pub size_bytes: u64,
    /// IO size and verification unit; a power of two >= 512.
    pub block_size: u32,
    /// IOs in flight at most (1..=4096).
    pub queue_depth: u32,
    /// Share of reads, 0..=100.
    pub read_percent: u8,
    /// Stop submitting after this long (then wait for every IO in flight).
    pub duration: Duration,
    /// Cap on submissions per second, evenly paced; `None` = as fast as the queue allows.
    pub rate_iops: Option<u32>,
    /// `false` = uniformly random block indices; `true` = 0, 1, 2, ... wrapping.
    pub sequential: bool,
    /// Check the content of every read (headers are written either way).
    pub verify: bool,
    /// Seed of all randomness (ChaCha8Rng): same seed, same op sequence.
    pub seed: u64,
    /// No completion for this long while IO is outstanding = a stall.
    pub stall_threshold: Duration,
    /// Who issues the IO.
    pub engine: EngineKind,
}

/// Who issues the workload's IO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// pathrig's own io_uring engine, which verifies every read and detects stalls.
    #[default]
    Pathrig,
    /// fio, as a yardstick (see [`fio`]).
    Fio(fio::FioMode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Read,
    Write,
}

/// Sent to the caller as things happen; `t` is the time since the caller's `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadEvent {
    /// An IO completed with an error (a short transfer is reported as `EIO`).
    IoError {
        t: Duration,
        op: Op,
        block: u64,
        errno: i32,
    },
    /// A successful read returned content that no expected state allows.
    Mismatch {
        t: Duration,
        block: u64,
        detail: String,
    },
    /// No completion for `stall_threshold` while IO was outstanding; `t` is when the stall began
    /// (the last completion, or the submission that ended an idle period).
    StallBegan { t: Duration, in_flight: u32 },
    /// The first completion after a stall; `t` is now, `length` how long the stall lasted.
    StallEnded { t: Duration, length: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchRecord {
    pub t: Duration,
    pub block: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallRecord {
    /// Since `origin`.
    pub began: Duration,
    pub length: Duration,
}

/// Latency of every completed IO, errors included, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct WorkloadReport {
    /// Completed successfully.
    pub reads: u64,
    pub writes: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Reads whose content was checked and matched.
    pub verified_blocks: u64,
    pub mismatches: Vec<MismatchRecord>,
    pub latency: LatencySummary,
    /// Latency in microseconds of every completed IO, errors included.
    pub histogram: hdrhistogram::Histogram<u64>,
    /// Every stall, in order; each one is closed by the completion that ended it.
    pub stalls: Vec<StallRecord>,
    /// The longest time with IO outstanding and no completion, stall or not (`None` for fio,
    /// which detects no stalls).
    pub longest_quiet: Option<Duration>,
    /// From the start of the run to the last completion of the drain.
    pub elapsed: Duration,
    /// CPU time (user + system) the IO issuer used, where it could be measured.
    pub cpu: Option<Duration>,
    /// Per [`SERIES_INTERVAL`] of the caller's clock (empty for fio).
    pub series: Vec<series::SeriesPoint>,
}

/// The interval of the workload's time series.
pub const SERIES_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the workload described by `config`, reporting events through `events` as they happen.
///
/// Submits until `config.duration` has passed (or `stop` is set), then waits for every IO still
/// in flight, however long that takes: the caller must make queued IO complete (restore a path,
/// or turn off queueing so it fails). Stall detection keeps running during that wait.
///
/// `Err` only for setup failures (bad config, device cannot be opened, io_uring unavailable) or
/// an io_uring failure mid-run; IO errors are counted in the report. If the run ends with `Err`
/// while IO is still in flight, its buffers are leaked rather than freed.
pub fn run(
    config: &WorkloadConfig,
    origin: Instant,
    stop: &AtomicBool,
    events: &mut dyn FnMut(WorkloadEvent),
) -> io::Result<WorkloadReport> {
    let blocks = validate(config)?;
    if let EngineKind::Fio(mode) = config.engine {
        return fio::run(config, mode);
    }
    let mut tracker = Tracker::new(blocks, config.block_size, config.seed);
    run_with_tracker(config, &mut tracker, origin, stop, events)
}

/// Like [`run`], but against expectations carried over from earlier runs on the same region
/// (`tracker` must match the config's block count, block size and seed). Lets a test run a
/// workload, tamper with the device, and run again knowing what every block should hold.
pub(crate) fn run_with_tracker(
    config: &WorkloadConfig,
    tracker: &mut Tracker,
    origin: Instant,
    stop: &AtomicBool,
    events: &mut dyn FnMut(WorkloadEvent),
) -> io::Result<WorkloadReport> {
    let blocks = validate(config)?;
    if (tracker.blocks(), tracker.block_size(), tracker.seed())
        != (blocks, config.block_size, config.seed)
    {
        return Err(invalid(
            "tracker does not match the config (blocks, block size, seed)".into(),
        ));
    }
    engine::execute(config, tracker, origin, stop, events)
}

/// Checks the config; returns the number of blocks in the region.
fn validate(c: &WorkloadConfig) -> io::Result<u64> {
    if !c.block_size.is_power_of_two() || c.block_size < 512 {
        return Err(invalid(format!(
            "block_size {} is not a power of two >= 512",
            c.block_size
        )));
    }
    let blocks = c.size_bytes / u64::from(c.block_size);
    if blocks == 0 {
        return Err(invalid(format!(
            "size_bytes {} is less than one block",
            c.size_bytes
        )));
    }
    if usize::try_from(blocks).is_err() {
        return Err(invalid(format!("region of {blocks} blocks is too large")));
    }
    if !(1..=4096).contains(&c.queue_depth) {
        return Err(invalid(format!(
            "queue_depth {} is not in 1..=4096",
            c.queue_depth
        )));
    }
    if c.read_percent > 100 {
        return Err(invalid(format!(
            "read_percent {} is over 100",
            c.read_percent
        )));
    }
    if c.rate_iops == Some(0) {
        return Err(invalid("rate_iops must not be 0".into()));
    }
    if c.stall_threshold.is_zero() {
        return Err(invalid("stall_threshold must not be 0".into()));
    }
    Ok(blocks)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("workload config: {msg}"),
    )
}
