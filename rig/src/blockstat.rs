//! Per-path IO accounting from the block layer: a device's counters in `/sys/dev/block/M:m/stat`
//! (see the kernel's Documentation/block/stat.rst), and a sampler thread that reads them for
//! every path of the run at a fixed interval, so the report can say how much IO each path
//! carried, and when.
//!
//! The sampler reads nothing but sysfs and keeps to its own thread: one read per path per
//! interval is its whole cost, so it does not disturb the workload it measures.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The counters of one block device that pathrig uses (the first nine fields of `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockStat {
    pub reads: u64,
    pub read_sectors: u64,
    /// Milliseconds spent on reads.
    pub read_ticks: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub write_ticks: u64,
    /// IOs the driver has been handed and not yet completed.
    pub in_flight: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStatParseError(pub String);

impl fmt::Display for BlockStatParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block stat: {}", self.0)
    }
}

impl std::error::Error for BlockStatParseError {}

impl FromStr for BlockStat {
    type Err = BlockStatParseError;

    fn from_str(line: &str) -> Result<BlockStat, BlockStatParseError> {
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(|w| {
                w.parse::<u64>()
                    .map_err(|_| BlockStatParseError(format!("{w:?} is not a counter in {line:?}")))
            })
            .collect::<Result<_, _>>()?;
        if fields.len() < 11 {
            return Err(BlockStatParseError(format!(
                "{} fields, at least 11 expected: {line:?}",
                fields.len()
            )));
        }
        Ok(BlockStat {
            reads: fields[0],
            read_sectors: fields[2],
            read_ticks: fields[3],
            writes: fields[4],
            write_sectors: fields[6],
            write_ticks: fields[7],
            in_flight: fields[8],
        })
    }
}

/// Reads the counters of the block device `major:minor`.
pub fn read(major: u32, minor: u32) -> io::Result<BlockStat> {
    let path = format!("/sys/dev/block/{major}:{minor}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("read {path}: {e}")))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {e}")))
}

/// One interval of one path: what completed in it, and what was outstanding at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSample {
    /// End of the interval, since the run's origin.
    pub t_ms: u64,
    pub reads: u64,
    pub writes: u64,
    pub in_flight: u64,
}

/// The series of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSeries {
    /// The path's label in the report (the leg's name).
    pub label: String,
    pub major: u32,
    pub minor: u32,
    pub samples: Vec<PathSample>,
}

impl PathSeries {
    /// Reads and writes completed in `(from_ms, to_ms]`, counting the samples whose interval
    /// ends in it.
    pub fn ios_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.t_ms > from_ms && s.t_ms <= to_ms)
            .map(|s| s.reads + s.writes)
            .sum()
    }
}

/// Turns successive readings into per-interval samples (counters only grow; a device that was
/// reset would show as zero rather than as a wrap).
fn delta(before: &BlockStat, now: &BlockStat, t_ms: u64) -> PathSample {
    PathSample {
        t_ms,
        reads: now.reads.saturating_sub(before.reads),
        writes: now.writes.saturating_sub(before.writes),
        in_flight: now.in_flight,
    }
}

/// A running sampler; [`PathSampler::stop`] ends it and returns the series.
pub struct PathSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<PathSeries>>,
}

impl PathSampler {
    /// Starts sampling `paths` (label, major, minor) every `interval`, with times since
    /// `origin`. A path whose counters cannot be read is left out of the series from then on,
    /// and the reason is logged.
    pub fn start(
        paths: Vec<(String, u32, u32)>,
        origin: Instant,
        interval: Duration,
    ) -> io::Result<PathSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut state: Vec<(PathSeries, Option<BlockStat>)> = paths
            .into_iter()
            .map(|(label, major, minor)| {
                let first = read(major, minor);
                if let Err(e) = &first {
                    tracing::warn!(%label, "per-path IO accounting: {e}");
                }
                (
                    PathSeries {
                        label,
                        major,
                        minor,
                        samples: Vec::new(),
                    },
                    first.ok(),
                )
            })
            .collect();
        let thread = std::thread::Builder::new()
            .name("path-io".into())
            .spawn(move || {
                let interval = interval.max(Duration::from_millis(10));
                let mut next = Instant::now() + interval;
                loop {
                    let stopping = flag.load(Ordering::Relaxed);
                    let now = Instant::now();
                    if !stopping && now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    let t_ms = now.saturating_duration_since(origin).as_millis() as u64;
                    for (series, last) in state.iter_mut() {
                        let Some(before) = last.as_ref() else { continue };
                        match read(series.major, series.minor) {
                            Ok(stat) => {
                                series.samples.push(delta(before, &stat, t_ms));
                                *last = Some(stat);
                            }
                            Err(e) => {
                                tracing::warn!(label = %series.label, "per-path IO accounting: {e}");
                                *last = None;
                            }
                        }
                    }
                    if stopping {
                        return state.into_iter().map(|(s, _)| s).collect();
                    }
                    // Keep the schedule; after a long delay start again from now.
                    next += interval;
                    if next < now {
                        next = now + interval;
                    }
                }
            })?;
        Ok(PathSampler { stop, thread })
    }

    /// Takes a last sample of every path and returns the series.
    pub fn stop(self) -> Vec<PathSeries> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_line() {
        // A line of /sys/dev/block/7:0/stat (kernel 6.1: 17 fields).
        let line = "     181        0     6394       41    11237       84    89672      832        3      356      942        0        0        0        0       54       67";
        let s: BlockStat = line.parse().unwrap();
        assert_eq!(
            s,
            BlockStat {
                reads: 181,
                read_sectors: 6394,
                read_ticks: 41,
                writes: 11237,
                write_sectors: 89672,
                write_ticks: 832,
                in_flight: 3,
            }
        );
        // The 11 fields of kernels before 4.18 are enough.
        assert!("1 2 3 4 5 6 7 8 9 10 11".parse::<BlockStat>().is_ok());
        assert!("1 2 3".parse::<BlockStat>().is_err());
        assert!("1 2 x 4 5 6 7 8 9 10 11".parse::<BlockStat>().is_err());
    }

    #[test]
    fn samples_are_deltas_and_windows_count_by_interval_end() {
        let a = BlockStat {
            reads: 10,
            writes: 5,
            ..BlockStat::default()
        };
        let b = BlockStat {
            reads: 25,
            writes: 9,
            in_flight: 4,
            ..BlockStat::default()
        };
        assert_eq!(
            delta(&a, &b, 300),
            PathSample {
                t_ms: 300,
                reads: 15,
                writes: 4,
                in_flight: 4
            }
        );
        let series = PathSeries {
            label: "a".into(),
            major: 7,
            minor: 0,
            samples: (1..=5)
                .map(|i| PathSample {
                    t_ms: i * 100,
                    reads: i,
                    writes: 1,
                    in_flight: 0,
                })
                .collect(),
        };
        // Intervals ending at 200 and 300.
        assert_eq!(series.ios_between(100, 300), (2 + 1) + (3 + 1));
    }

    #[test]
    fn samples_a_real_device_of_this_machine() {
        // Any block device the host has; none is fine (a container may have none).
        let Some(dev) = std::fs::read_dir("/sys/dev/block")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        else {
            eprintln!("no block device in /sys/dev/block; skipping");
            return;
        };
        let name = dev.file_name().to_string_lossy().to_string();
        let (major, minor) = name.split_once(':').unwrap();
        let (major, minor) = (major.parse().unwrap(), minor.parse().unwrap());
        let sampler = PathSampler::start(
            vec![("x".into(), major, minor)],
            Instant::now(),
            Duration::from_millis(20),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(110));
        let series = sampler.stop();
        assert_eq!(series.len(), 1);
        let n = series[0].samples.len();
        assert!(n >= 2, "{n} samples in 110 ms at 20 ms");
        assert!(series[0].samples.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    }
}
