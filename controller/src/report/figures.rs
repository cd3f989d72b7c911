//! QA figures of a run, computed from its typed events and series, and the per-path IO
//! phases report.txt shows for each map.
//!
//! Figures (report.json `figures`, report.txt "figures", `[expect]` keys):
//! - `detection_ms.<leg>`: the first fault step applied on the leg (anything but `restore`) to
//!   the first time after it that the kernel failed the leg's path; absent if it never did.
//! - `group_switches` (per map, and the run's total): the kernel's path-group changes seen
//!   after clock zero.
//! - `no_path_ms` (per map, and the run's total): time with no usable path in the map, from
//!   "no usable path left" to "a usable path is back" (or the end of the run).
//! - `first_error_ms`: the first application IO error (of any workload) after the run's first
//!   fault step, measured from that step; absent without faults or without errors after them.
//! - `io_share.<leg>`: the leg's share (0 to 1) of all IO the block layer completed on its
//!   map's paths over the whole run; absent if the map's paths carried no IO. Over a window
//!   (`io_share.b."3s..5s"`): the same over the 100 ms samples lying wholly inside it.
//! - `failback_ms` (per map, and the run's total): time the kernel used a group other than
//!   the map's first while a path of the first group was usable (active in the kernel): how
//!   long failback waited. About 0 with `failback = "immediate"`; the wait with `deferred`;
//!   with `followover` the time a path of the first group came back without failback.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Report;
use crate::events::{Event, EventKind, FaultChange};

/// One path's block-layer IO over the run (report.json `path_io`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathIo {
    pub map: String,
    pub leg: String,
    /// `major:minor` of the leg device sampled.
    pub device: String,
    /// The sampling interval; each sample counts the IOs completed in the interval ending at
    /// its `t_ms` (the last one may be shorter: it is taken when the workload ends).
    pub interval_ms: u64,
    pub samples: Vec<rig::blockstat::PathSample>,
}

impl PathIo {
    pub fn total(&self) -> u64 {
        self.samples.iter().map(|s| s.reads + s.writes).sum()
    }

    /// IOs of the full samples lying inside `[from_ms, to_ms]`.
    fn ios_within(&self, from_ms: f64, to_ms: f64) -> u64 {
        self.samples
            .iter()
            .filter(|s| (s.t_ms.saturating_sub(self.interval_ms)) as f64 >= from_ms)
            .filter(|s| s.t_ms as f64 <= to_ms)
            .map(|s| s.reads + s.writes)
            .sum()
    }
}

/// A figure for one leg or map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: String,
    pub value: Option<f64>,
}

/// The QA figures of a run (see the module documentation for each definition).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Figures {
    /// Per leg with a fault step, in leg order.
    pub detection_ms: Vec<Keyed>,
    pub group_switches: u64,
    pub group_switches_by_map: Vec<Keyed>,
    pub no_path_ms: f64,
    pub no_path_ms_by_map: Vec<Keyed>,
    pub first_error_ms: Option<f64>,
    /// Per leg of every map, in path order.
    pub io_share: Vec<Keyed>,
    pub failback_ms: f64,
    pub failback_ms_by_map: Vec<Keyed>,
}

fn is_fault_start(change: &FaultChange) -> bool {
    match change {
        FaultChange::Applied { fault, .. } => *fault != faults::FaultKind::Restore,
        FaultChange::DustChanged { .. } => true,
        _ => false,
    }
}

impl Figures {
    /// The value `[expect]` compares: a figure of a leg or map (`key`), or of the whole run.
    pub fn value(&self, figure: faults::figures::Figure, key: Option<&str>) -> Option<f64> {
        use faults::figures::Figure;
        let find = |rows: &[Keyed]| {
            rows.iter()
                .find(|k| Some(k.key.as_str()) == key)
                .and_then(|k| k.value)
        };
        match (figure, key) {
            (Figure::DetectionMs, _) => find(&self.detection_ms),
            (Figure::IoShare, _) => find(&self.io_share),
            (Figure::GroupSwitches, None) => Some(self.group_switches as f64),
            (Figure::GroupSwitches, Some(_)) => find(&self.group_switches_by_map),
            (Figure::NoPathMs, None) => Some(self.no_path_ms),
            (Figure::NoPathMs, Some(_)) => find(&self.no_path_ms_by_map),
            (Figure::FirstErrorMs, _) => self.first_error_ms,
            (Figure::FailbackMs, None) => Some(self.failback_ms),
            (Figure::FailbackMs, Some(_)) => find(&self.failback_ms_by_map),
        }
    }

    /// `io_share` of `leg` over the samples lying wholly inside `window`: its share of the IO
    /// its map's paths completed then; `None` if they completed none (or `leg` is unknown).
    pub fn io_share_within(
        report: &Report,
        leg: &str,
        window: faults::figures::FigureWindow,
    ) -> Option<f64> {
        let mine = report.path_io.iter().find(|p| p.leg == leg)?;
        let from = window.from_ms as f64;
        let to = window.to_ms.map_or(f64::INFINITY, |t| t as f64);
        let total: u64 = report
            .path_io
            .iter()
            .filter(|p| p.map == mine.map)
            .map(|p| p.ios_within(from, to))
            .sum();
        (total > 0).then(|| mine.ios_within(from, to) as f64 / total as f64)
    }

    /// Computes the figures of `report` from its events, workload and path IO.
    pub fn compute(report: &Report) -> Figures {
        let events: Vec<&Event> = report.events.iter().filter(|e| e.t_ms >= 0.0).collect();
        let end_ms = report.timing.run_ms;
        let legs: Vec<(&str, &str)> = report
            .maps
            .iter()
            .flat_map(|m| {
                m.paths
                    .iter()
                    .map(move |p| (m.name.as_str(), p.leg.as_str()))
            })
            .collect();

        let mut detection_ms = Vec::new();
        for (_, leg) in &legs {
            let Some(applied) = events.iter().find(|e| {
                matches!(&e.kind, EventKind::Fault { leg: l, change } if l == leg && is_fault_start(change))
            }) else {
                continue;
            };
            let failed = events.iter().find(|e| {
                e.t_ms >= applied.t_ms
                    && matches!(&e.kind, EventKind::PathFailed { leg: l, .. } if l == leg)
            });
            detection_ms.push(Keyed {
                key: leg.to_string(),
                value: failed.map(|f| f.t_ms - applied.t_ms),
            });
        }

        let mut group_switches_by_map = Vec::new();
        let mut no_path_ms_by_map = Vec::new();
        for map in &report.maps {
            let switches = events
                .iter()
                .filter(|e| matches!(&e.kind, EventKind::GroupSwitched { map: m, .. } if *m == map.name))
                .count();
            group_switches_by_map.push(Keyed {
                key: map.name.clone(),
                value: Some(switches as f64),
            });
            let mut lost_at: Option<f64> = None;
            let mut total = 0.0;
            for e in &events {
                match &e.kind {
                    EventKind::NoUsablePath { map: m } if *m == map.name => {
                        lost_at.get_or_insert(e.t_ms);
                    }
                    EventKind::UsablePathBack { map: m } if *m == map.name => {
                        if let Some(at) = lost_at.take() {
                            total += e.t_ms - at;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(at) = lost_at {
                total += (end_ms - at).max(0.0);
            }
            no_path_ms_by_map.push(Keyed {
                key: map.name.clone(),
                value: Some(total),
            });
        }

        let first_fault = events
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Fault { change, .. } if is_fault_start(change)))
            .map(|e| e.t_ms);
        // A workload whose first error came before the fault has no first error after it (as
        // the workload reports only its first error).
        let first_error_ms = first_fault.and_then(|fault| {
            report
                .workloads
                .iter()
                .filter_map(|w| w.first_error_ms)
                .filter(|&error| error >= fault)
                .reduce(f64::min)
                .map(|error| error - fault)
        });

        let mut map_totals: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &report.path_io {
            *map_totals.entry(p.map.as_str()).or_default() += p.total();
        }
        let io_share = legs
            .iter()
            .map(|(map, leg)| {
                let total = map_totals.get(map).copied().unwrap_or(0);
                let mine = report
                    .path_io
                    .iter()
                    .find(|p| p.map == *map && p.leg == *leg)
                    .map(PathIo::total);
                Keyed {
                    key: leg.to_string(),
                    value: mine.filter(|_| total > 0).map(|n| n as f64 / total as f64),
                }
            })
            .collect();

        let failback_ms_by_map: Vec<Keyed> = report
            .maps
            .iter()
            .map(|m| Keyed {
                key: m.name.clone(),
                value: Some(failback_wait_ms(&report.events, m, end_ms)),
            })
            .collect();

        Figures {
            failback_ms: failback_ms_by_map.iter().filter_map(|k| k.value).sum(),
            failback_ms_by_map,
            detection_ms,
            group_switches: group_switches_by_map
                .iter()
                .filter_map(|k| k.value)
                .sum::<f64>() as u64,
            group_switches_by_map,
            no_path_ms: no_path_ms_by_map.iter().filter_map(|k| k.value).sum(),
            no_path_ms_by_map,
            first_error_ms,
            io_share,
        }
    }
}

/// [`Figure::FailbackMs`](faults::figures::Figure) of one map: replays the kernel's view
/// (group in use from `GroupSwitched`, path states from failed/reinstated) after clock zero and
/// adds up the time spent in a group other than the first while a first-group path was active.
fn failback_wait_ms(events: &[Event], map: &super::MapReport, end_ms: f64) -> f64 {
    let Some(first_group) = map.groups.first() else {
        return 0.0;
    };
    let mut group = 1u32;
    let mut failed: std::collections::BTreeSet<&str> = Default::default();
    let mut waiting_since: Option<f64> = None;
    let mut total = 0.0;
    for e in events {
        match &e.kind {
            EventKind::GroupSwitched { map: m, group: g } if *m == map.name => group = *g,
            EventKind::PathFailed { map: m, leg } if *m == map.name => {
                failed.insert(leg);
            }
            EventKind::PathReinstated { map: m, leg } if *m == map.name => {
                failed.remove(leg.as_str());
            }
            _ => continue,
        }
        if e.t_ms < 0.0 {
            continue;
        }
        let waiting = group != 1 && first_group.iter().any(|l| !failed.contains(l.as_str()));
        match (waiting, waiting_since) {
            (true, None) => waiting_since = Some(e.t_ms),
            (false, Some(since)) => {
                total += e.t_ms - since;
                waiting_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = waiting_since {
        total += (end_ms - since).max(0.0);
    }
    total
}

/// How long after a fault step its phase's IO is left out of the shares: the kernel's
/// reaction to the step (failing or reinstating the path) is timing, not the phase's state.
pub const SETTLE_MS: f64 = 200.0;

/// Fault steps less than this apart begin one phase: steps planned 200 ms apart stay together
/// however the timeline's lag moves them, steps 500 ms apart stay apart.
pub const MERGE_MS: f64 = 250.0;

/// A path's share of a phase as a class: whether it carried none of the IO, all of it, or
/// some. Proportions are timing (how long a path stayed failed, how a selector balanced), so
/// they are report.json's (`path_io`, `figures.io_share`) and `[expect]`'s (`io_share`).
pub fn share_class(mine: u64, total: u64) -> &'static str {
    if mine == 0 {
        "none"
    } else if mine == total {
        "all"
    } else {
        "some"
    }
}

/// [`share_class`] of a share from 0 to 1.
pub fn share_class_of(share: f64) -> &'static str {
    if share <= 0.0 {
        "none"
    } else if share >= 1.0 {
        "all"
    } else {
        "some"
    }
}

/// One phase of a map: what began it and each path's share class (`None`: no IO sampled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// The timeline wording of the fault steps that began it (empty: the run's start).
    pub began_with: Vec<String>,
    pub shares: Option<Vec<(String, &'static str)>>,
}

/// The phases of `map`: intervals between the fault steps on its legs (steps less than
/// [`MERGE_MS`] apart begin one phase), each path's share of the IO in its full samples
/// from [`SETTLE_MS`] after the phase's last step to its end.
pub fn io_phases(report: &Report, map: &str) -> Vec<Phase> {
    let Some(m) = report.maps.iter().find(|m| m.name == map) else {
        return Vec::new();
    };
    let series: Vec<&PathIo> = m
        .paths
        .iter()
        .filter_map(|p| {
            report
                .path_io
                .iter()
                .find(|s| s.map == map && s.leg == p.leg)
        })
        .collect();
    if series.is_empty() {
        return Vec::new();
    }
    // (first step, last step, the steps' words)
    let mut bounds: Vec<(f64, f64, Vec<String>)> = vec![(0.0, 0.0, Vec::new())];
    for e in report.events.iter().filter(|e| e.t_ms >= 0.0) {
        let EventKind::Fault { leg, .. } = &e.kind else {
            continue;
        };
        if !m.paths.iter().any(|p| &p.leg == leg) {
            continue;
        }
        match bounds.last_mut() {
            Some((first, last, words)) if !words.is_empty() && e.t_ms - *first < MERGE_MS => {
                *last = e.t_ms;
                words.push(e.timeline_text());
            }
            _ => bounds.push((e.t_ms, e.t_ms, vec![e.timeline_text()])),
        }
    }
    let end = series
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|s| s.t_ms as f64)
        .fold(0.0, f64::max);
    let mut phases = Vec::new();
    for (i, (_, last, words)) in bounds.iter().enumerate() {
        let stop = bounds.get(i + 1).map(|(t, _, _)| *t).unwrap_or(end);
        let from = if i == 0 { 0.0 } else { last + SETTLE_MS };
        let counts: Vec<u64> = series.iter().map(|s| s.ios_within(from, stop)).collect();
        let total: u64 = counts.iter().sum();
        phases.push(Phase {
            began_with: words.clone(),
            shares: (total > 0).then(|| {
                series
                    .iter()
                    .zip(&counts)
                    .map(|(s, n)| (s.leg.clone(), share_class(*n, total)))
                    .collect()
            }),
        });
    }
    phases
}
