//! Keeps report.json bounded however many IOs fail: the first [`KEPT_PER_KIND`] IO-error and
//! mismatch events stay in the event log individually, with the last one of each kind; the
//! rest are counted ([`ErrorsOmitted`]), and the workload's per-100 ms series still has every
//! error by errno. Mismatches are listed once per distinct block, with a count.

use std::collections::BTreeMap;

use serde::Serialize;

use super::MismatchReport;
use crate::events::{Event, EventKind};

/// How many IO-error (and, separately, mismatch) events report.json lists one by one; the
/// last one of each kind is kept too.
pub const KEPT_PER_KIND: usize = 100;

/// What [`bound_events`] left out of the event log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorsOmitted {
    /// IO-error events not listed individually.
    pub io_errors: u64,
    /// Mismatch events not listed individually.
    pub mismatches: u64,
    /// Every IO error of the run (listed or not) by errno name, in name order.
    pub io_errors_by_errno: Vec<(String, u64)>,
}

/// Drops the IO-error and mismatch events after the first [`KEPT_PER_KIND`] of each kind
/// (keeping the last one), in place, and says what it dropped. Other events are untouched and
/// the order is kept.
pub fn bound_events(events: &mut Vec<Event>) -> ErrorsOmitted {
    let is_error = |e: &Event| matches!(e.kind, EventKind::IoError { .. });
    let is_mismatch = |e: &Event| matches!(e.kind, EventKind::Mismatch { .. });
    let last_error = events.iter().rposition(is_error);
    let last_mismatch = events.iter().rposition(is_mismatch);
    let mut by_errno: BTreeMap<String, u64> = BTreeMap::new();
    let mut omitted = ErrorsOmitted::default();
    let (mut errors, mut mismatches) = (0usize, 0usize);
    let mut index = 0usize;
    events.retain(|e| {
        let i = index;
        index += 1;
        match &e.kind {
            EventKind::IoError { errno, .. } => {
                *by_errno.entry(errno.clone()).or_default() += 1;
                errors += 1;
                let keep = errors <= KEPT_PER_KIND || Some(i) == last_error;
                omitted.io_errors += u64::from(!keep);
                keep
            }
            EventKind::Mismatch { .. } => {
                mismatches += 1;
                let keep = mismatches <= KEPT_PER_KIND || Some(i) == last_mismatch;
                omitted.mismatches += u64::from(!keep);
                keep
            }
            _ => true,
        }
    });
    omitted.io_errors_by_errno = by_errno.into_iter().collect();
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
