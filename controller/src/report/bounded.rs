//! Keeps report.json bounded however many IOs fail: the first [`KEPT_PER_KIND`] IO-error and
//! mismatch events of each workload (map) stay in the event log individually, with the last one
//! of each kind; the rest are counted ([`ErrorsOmitted`], per workload), and each workload's
//! per-100 ms series still has every error by errno. Mismatches are listed once per distinct
//! block, with a count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MismatchReport;
use crate::events::{Event, EventKind};

/// How many IO-error (and, separately, mismatch) events report.json lists one by one; the
/// last one of each kind is kept too.
pub const KEPT_PER_KIND: usize = 100;

/// What [`bound_events`] left out of the event log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsOmitted {
    /// IO-error events not listed individually.
    pub io_errors: u64,
    /// Mismatch events not listed individually.
    pub mismatches: u64,
    /// Every IO error of the run (listed or not) by errno name, in name order.
    pub io_errors_by_errno: Vec<(String, u64)>,
}

/// Drops the IO-error and mismatch events after the first [`KEPT_PER_KIND`] of each kind of each
/// map's workload (keeping the last one), in place, and says what it dropped, by map (maps
/// whose workload had no error or mismatch are absent). Other events are untouched and the
/// order is kept.
pub fn bound_events(events: &mut Vec<Event>) -> BTreeMap<String, ErrorsOmitted> {
    // The last error and mismatch event of each map.
    let mut last: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::IoError { map, .. } => last.insert(("error", map.clone()), i),
            EventKind::Mismatch { map, .. } => last.insert(("mismatch", map.clone()), i),
            _ => None,
        };
    }
    let mut by_errno: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut omitted: BTreeMap<String, ErrorsOmitted> = BTreeMap::new();
    let mut seen: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    let mut index = 0usize;
    events.retain(|e| {
        let i = index;
        index += 1;
        let (kind, map) = match &e.kind {
            EventKind::IoError { map, errno, .. } => {
                *by_errno
                    .entry(map.clone())
                    .or_default()
                    .entry(errno.clone())
                    .or_default() += 1;
                ("error", map)
            }
            EventKind::Mismatch { map, .. } => ("mismatch", map),
            _ => return true,
        };
        let key = (kind, map.clone());
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        let keep = *n <= KEPT_PER_KIND || last.get(&key) == Some(&i);
        let counts = omitted.entry(map.clone()).or_default();
        if !keep {
            match kind {
                "error" => counts.io_errors += 1,
                _ => counts.mismatches += 1,
            }
        }
        keep
    });
    for (map, errnos) in by_errno {
        omitted.entry(map).or_default().io_errors_by_errno = errnos.into_iter().collect();
    }
    omitted
}

/// The workload's mismatches, one row per distinct block in order of first sight: `(time,
/// block, diagnosis)` records with blocks of `block_size` bytes.
pub fn mismatch_reports<'a>(
    records: impl IntoIterator<Item = (f64, u64, &'a str)>,
    block_size: u32,
) -> Vec<MismatchReport> {
    let mut rows: Vec<MismatchReport> = Vec::new();
    let mut at: BTreeMap<u64, usize> = BTreeMap::new();
    for (t_ms, block, detail) in records {
        match at.get(&block) {
            Some(&i) => rows[i].count += 1,
            None => {
                at.insert(block, rows.len());
                let byte_offset = block * u64::from(block_size);
                rows.push(MismatchReport {
                    t_ms,
                    block,
                    block_size,
                    byte_offset,
                    lba: byte_offset / 512,
                    count: 1,
                    detail: detail.to_string(),
                });
            }
        }
    }
    rows
}
