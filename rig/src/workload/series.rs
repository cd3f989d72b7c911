//! The workload's time series: per fixed interval of the run's clock (100 ms by default), how
//! many IOs completed, how many of them failed and with which errno, how many were outstanding at
//! the interval's end, and the latency of the IOs that completed in it (p50, p99, max).
//!
//! Kept free of IO: the engine feeds completions and the time of each loop turn; intervals with
//! no completion are still emitted (they are what a stall looks like). One scratch histogram is
//! reset at every interval, so memory grows with the number of intervals, not of IOs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The errno values counted in their own column; any other errno counts as `other`.
const NAMED_ERRNOS: [(i32, &str); 5] = [
    (libc::EIO, "EIO"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ENOLINK, "ENOLINK"),
    (libc::EREMOTEIO, "EREMOTEIO"),
];

/// One interval of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Start of the interval, since the run's origin.
    pub t_ms: u64,
    pub reads: u32,
    pub writes: u32,
    /// Completions with an error, by errno name (`EIO`, …, `other`); absent when none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "as_map",
        deserialize_with = "from_map"
    )]
    pub errors: Vec<(&'static str, u32)>,
    /// IOs outstanding at the end of the interval.
    pub in_flight: u32,
    /// Latency of the IOs that completed in the interval (errors included); zero when none.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// `[("EIO", 3)]` as `{"EIO": 3}`.
fn as_map<S: serde::Serializer>(errors: &[(&'static str, u32)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(errors.iter().map(|(name, count)| (*name, *count)))
}

/// `{"EIO": 3}` back as `[("EIO", 3)]` (a name outside [`NAMED_ERRNOS`] reads as `other`).
fn from_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(&'static str, u32)>, D::Error> {
    let map: std::collections::BTreeMap<String, u32> = Deserialize::deserialize(d)?;
    let mut out: Vec<(&'static str, u32)> = Vec::new();
    for (name, count) in map {
        let name = NAMED_ERRNOS
            .iter()
            .map(|(_, n)| *n)
            .find(|n| *n == name)
            .unwrap_or("other");
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += count,
            None => out.push((name, count)),
        }
    }
    // The order the series keeps: named errnos in table order, then `other`.
    let rank = |n: &str| {
        NAMED_ERRNOS
            .iter()
            .position(|(_, m)| *m == n)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|(n, _)| rank(n));
    Ok(out)
}

impl SeriesPoint {
    fn empty(t_ms: u64) -> SeriesPoint {
        SeriesPoint {
            t_ms,
            reads: 0,
            writes: 0,
            errors: Vec::new(),
            in_flight: 0,
            p50_us: 0,
            p99_us: 0,
            max_us: 0,
        }
    }

    pub fn completions(&self) -> u32 {
        self.reads + self.writes + self.error_count()
    }

    pub fn error_count(&self) -> u32 {
        self.errors.iter().map(|(_, n)| n).sum()
    }
}

pub(crate) struct SeriesRecorder {
    interval: Duration,
    current: SeriesPoint,
    /// Index of the current interval since the origin.
    index: u64,
    latency: hdrhistogram::Histogram<u64>,
    points: Vec<SeriesPoint>,
}

impl SeriesRecorder {
    /// `first` is the time since the origin of the first turn.
    pub(crate) fn new(interval: Duration, first: Duration) -> SeriesRecorder {
        let interval = interval.max(Duration::from_millis(1));
        let index = (first.as_nanos() / interval.as_nanos()) as u64;
        let mut latency = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
            .expect("bounds 1..60 s at 2 significant figures are valid");
        latency.auto(true);
        SeriesRecorder {
            interval,
            current: SeriesPoint::empty(Self::start_ms(interval, index)),
            index,
            latency,
            points: Vec::new(),
        }
    }

    fn start_ms(interval: Duration, index: u64) -> u64 {
        (interval.as_millis() as u64).saturating_mul(index)
    }

    /// Moves to the interval that holds `t` (since the origin), closing the ones before it;
    /// `in_flight` is the number of IOs outstanding up to `t`.
    pub(crate) fn advance(&mut self, t: Duration, in_flight: u32) {
        let index = (t.as_nanos() / self.interval.as_nanos()) as u64;
        while self.index < index {
            self.close(in_flight);
        }
    }

    fn close(&mut self, in_flight: u32) {
        let mut point = std::mem::replace(
            &mut self.current,
            SeriesPoint::empty(Self::start_ms(self.interval, self.index + 1)),
        );
        point.in_flight = in_flight;
        if !self.latency.is_empty() {
            point.p50_us = self.latency.value_at_quantile(0.5);
            point.p99_us = self.latency.value_at_quantile(0.99);
            point.max_us = self.latency.max();
            self.latency.reset();
        }
        self.points.push(point);
        self.index += 1;
    }

    /// One completion in the current interval.
    pub(crate) fn completed(&mut self, write: bool, errno: Option<i32>, latency_us: u64) {
        match errno {
            None if write => self.current.writes += 1,
            None => self.current.reads += 1,
            Some(errno) => {
                let name = NAMED_ERRNOS
                    .iter()
                    .find(|(n, _)| *n == errno)
                    .map_or("other", |(_, name)| name);
                match self.current.errors.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => self.current.errors.push((name, 1)),
                }
            }
        }
        self.latency.saturating_record(latency_us.max(1));
    }

    /// Closes the last interval and returns the series.
    pub(crate) fn finish(mut self, in_flight: u32) -> Vec<SeriesPoint> {
        self.close(in_flight);
        self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn intervals_without_completions_are_kept_with_what_was_outstanding() {
        let mut s = SeriesRecorder::new(100 * MS, 30 * MS);
        s.completed(false, None, 500);
        s.completed(true, None, 700);
        // Nothing completes from 100 ms to 400 ms while 8 IOs wait.
        s.advance(420 * MS, 8);
        s.completed(false, Some(libc::EIO), 250_000);
        s.completed(false, Some(libc::EIO), 260_000);
        s.completed(true, Some(libc::ENOSPC), 1_000);
        s.completed(true, Some(9999), 1_000);
        let points = s.finish(5);
        let t: Vec<u64> = points.iter().map(|p| p.t_ms).collect();
        assert_eq!(t, [0, 100, 200, 300, 400]);
        assert_eq!((points[0].reads, points[0].writes), (1, 1));
        assert_eq!(points[0].in_flight, 8);
        assert!(points[1..4]
            .iter()
            .all(|p| p.completions() == 0 && p.in_flight == 8));
        assert_eq!(points[1].max_us, 0);
        let last = &points[4];
        assert_eq!(last.errors, [("EIO", 2), ("ENOSPC", 1), ("other", 1)]);
        assert_eq!(last.completions(), 4);
        assert_eq!(last.in_flight, 5);
        // Two significant figures.
        assert!(
            (255_000..=265_000).contains(&last.max_us),
            "{}",
            last.max_us
        );
        assert!(last.p50_us < last.p99_us);
    }

    #[test]
    fn the_first_interval_is_the_one_holding_the_start() {
        let s = SeriesRecorder::new(100 * MS, 1250 * MS);
        let points = s.finish(0);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].t_ms, 1200);
    }
}
