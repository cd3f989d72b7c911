//! Per-path IO accounting in a run: the block-layer sampler started over every path of every
//! map (the leg devices the map's table names, labelled with the leg's name) before the
//! workload, and stopped after it; its series go to the report as [`PathIo`] rows.

use std::time::{Duration, Instant};

use rig::blockstat::PathSampler;

use crate::report::PathIo;

/// The sampling interval: the workload's own series interval, so both line up.
pub const INTERVAL: Duration = rig::workload::SERIES_INTERVAL;

/// A running sampler with the map each of its paths belongs to.
pub struct PathIoSampler {
    sampler: Option<PathSampler>,
    /// (map, leg) in sampler order.
    owners: Vec<(String, String)>,
}

impl PathIoSampler {
    /// Starts sampling `paths` (map, leg, major, minor). A sampler that cannot start leaves the
    /// report without per-path IO (logged), never the run failed.
    pub fn start(paths: Vec<(String, String, u32, u32)>, origin: Instant) -> PathIoSampler {
        let owners = paths
            .iter()
            .map(|(map, leg, _, _)| (map.clone(), leg.clone()))
            .collect();
        let labelled = paths
            .into_iter()
            .map(|(_, leg, major, minor)| (leg, major, minor))
            .collect();
        let sampler = match PathSampler::start(labelled, origin, INTERVAL) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("pathrig: per-path IO accounting not started: {e}");
                None
            }
        };
        PathIoSampler { sampler, owners }
    }

    /// Stops sampling; one row per path that could be read.
    pub fn stop(self) -> Vec<PathIo> {
        let Some(sampler) = self.sampler else {
            return Vec::new();
        };
        let mut owners = self.owners.into_iter();
        sampler
            .stop()
            .into_iter()
            .filter_map(|series| {
                // Series come back in start order; a path left out is skipped by label.
                let (map, _) = owners.find(|(_, leg)| *leg == series.label)?;
                Some(PathIo {
                    map,
                    leg: series.label,
                    device: format!("{}:{}", series.major, series.minor),
                    interval_ms: INTERVAL.as_millis() as u64,
                    samples: series.samples,
                })
            })
            .collect()
    }
}
