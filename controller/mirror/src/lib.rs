//! A monitor for device-mapper mirror maps (the `mirror` target, dm-raid1) that acts on each
//! leg failure by its type, instead of removing every leg that saw any error.
//!
//! Sans-IO, like quinn-proto and pathrig's path manager: the driver feeds [`Input`]s (the
//! map's status after every dm event or poll, scan and probe results, completions of the
//! actions it ran, ticks) together with the current virtual time, and gets [`Action`]s back.
//! The crate has no clock, does no IO and starts no thread; every action carries a [`Reason`]
//! as data, and [`describe`] renders one stably for reports.
//!
//! # Where the semantics come from
//!
//! - The kernel (`drivers/md/dm-raid1.c`, `drivers/md/dm-log.c`, Linux 6.1): a mirror with
//!   `handle_errors` marks a leg that fails instead of failing the IO, raises a dm event the
//!   first time a leg gets each kind of error, and shows one health character per leg in its
//!   status: `A` alive, `F` a flush failed, `D` a write failed (its regions are out of sync),
//!   `S` a resynchronisation failed, `R` a read failed (served from another leg, so the data
//!   is unaffected), `U` unknown. The character shows the worst error seen (F, D, S, R in that
//!   order) and is only reset by a table reload. A failed resync region is not retried until
//!   the log restarts its search, which a resume does, so suspend/resume restarts a resync.
//!   The status also says how many regions are in sync.
//! - dmeventd's mirror plugin (lvm2, `daemons/dmeventd/plugins/mirror/dmeventd_mirror.c`):
//!   it waits for events, reads the status, and when any leg is not `A` runs
//!   `lvconvert --repair`, which (with the default `mirror_image_fault_policy = "remove"`)
//!   removes every failed leg, whatever the character said. That is this crate's default
//!   ([`MirrorSettings::default`]).
//!
//! # What the monitor does (by health character)
//!
//! - `D`, `F`, `U` ([`DeadPolicy`]): `remove` at once; or `wait` a transient window, probing the
//!   leg ([`Action::ProbeLeg`]); when it answers, [`Action::RestoreLeg`] (reload the map with
//!   the leg, which resets its error state, and let it resync); when the window ends,
//!   remove it (or keep it degraded and go on probing); when the out-of-sync share of regions
//!   reaches the limit first, remove it early.
//! - `S` ([`SyncFailurePolicy`]): `remove`, or restart the resync ([`Action::RestartResync`],
//!   suspend/resume) up to N times, `backoff` apart; an attempt that makes progress gets more
//!   time, one that does not is followed by the next; [`Action::GiveUp`] when they are used up.
//! - `R` ([`ReadFailurePolicy`]): `remove`, `ignore`, or `relocate`: rewrite the failed blocks
//!   from a good leg ([`Action::Relocate`]). The status does not say which blocks; the driver
//!   names them when it knows ([`Input::ReadFailures`]), else the monitor scans the whole leg
//!   ([`Action::ScanSlice`]) and relocates what the scan finds unreadable.
//! - `scan` ([`ScanSettings`]): every interval a slice of every healthy leg is read and compared
//!   with the primary (first healthy) leg; unreadable blocks are relocated, differing blocks
//!   reported or repaired by policy.
//!
//! The monitor never presumes why an event came: it acts only on what a status shows, and on
//! a leg's character changing. A status with every leg `A` after an event (e.g. a resync
//! finished) leads to no action.
//!
//! # Deviations from dmeventd, by design
//!
//! - Per-type policies (above) instead of removal for every character; the defaults keep
//!   dmeventd's behaviour.
//! - Removal is per leg and never of the last leg in the table (that is a [`Action::GiveUp`]);
//!   dmeventd's repair may leave a mirror with no leg and fail the LV.
//! - A failed disk log is noted ([`Reason::LogDeviceFailed`]), not repaired (dmeventd's repair
//!   would replace the log or fall back to a core log).
//! - No `lvconvert`: the driver performs the dm operations itself (see each [`Action`]).
//!
//! # Driving it
//!
//! One [`Monitor`] for all mirror maps of a run ([`MapSetup`]: name, legs in table order,
//! settings from [`MirrorSection::settings_for`] after [`MirrorSection::validate`]). The
//! driver waits for dm events on the maps (and sleeps at most until
//! [`Monitor::next_deadline`], then calls [`Monitor::handle_timeout`]); after each event, and
//! after each action it completed, it reads the map's status and sends [`Input::Status`]
//! with the health of every setup leg (`None` for legs no longer in the table). What the
//! driver does:
//!
//! - For [`Action::RemoveLeg`] / [`Action::RestoreLeg`]: load the table without / with the leg,
//!   suspend, resume; then [`Input::ActionDone`] (or [`Input::ActionFailed`]) and the status.
//! - For [`Action::RestartResync`]: suspend and resume the map (no table change).
//! - For [`Action::Relocate`]: copy the blocks from leg `from` to `leg` (directly on the legs'
//!   devices, with the table offsets), or read and rewrite them through the map.
//! - For [`Action::ScanSlice`]: read the regions (region size from the table) of the leg's device
//!   and of `compare_with`'s, compare, answer with [`Input::ScanResult`].
//! - For [`Action::ProbeLeg`]: read (and, at a scratch spot the workload does not use, write)
//!   the leg's device directly; answer with [`Input::ProbeResult`].
//! - For [`Action::Note`], [`Action::GiveUp`]: into the report; nothing to do.
//!
//! Modules: [`settings`] (the `[mirror]` settings, defaults, validation), `reason` (the
//! [`Reason`]s and [`describe`]), `engine` (the [`Monitor`]: states, timers, rules).

mod engine;
mod reason;
pub mod settings;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use engine::{Monitor, Timer};
pub use reason::{describe, secs, Reason};
pub use settings::{
    AfterWindow, DeadPolicy, DifferPolicy, MirrorOverrides, MirrorSection, MirrorSettings,
    ReadFailurePolicy, ScanSettings, SectionError, SettingError, SyncFailurePolicy,
};

/// The size of the blocks [`Action::Relocate`] and [`ScanOutcome`] count in: 4 KiB, from the
/// start of the mirror (the driver adds each leg's table offset).
pub const BLOCK_SIZE: u64 = 4096;

/// One mirror map the monitor watches.
#[derive(Debug, Clone)]
pub struct MapSetup {
    /// The dm name (used in descriptions).
    pub name: String,
    /// The legs' names in table order (index = leg number in inputs and actions).
    pub legs: Vec<String>,
    pub settings: MirrorSettings,
}

/// A leg's health character, as the kernel's mirror status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Health {
    /// `A`
    Alive,
    /// `D`: a write failed; the leg is out of sync.
    Dead,
    /// `S`: a resynchronisation failed.
    Sync,
    /// `R`: a read failed; served from another leg.
    Read,
    /// `F`: a flush failed.
    Flush,
    /// `U`: an error of unknown type.
    Unknown,
}

impl Health {
    pub fn as_char(self) -> char {
        match self {
            Health::Alive => 'A',
            Health::Dead => 'D',
            Health::Sync => 'S',
            Health::Read => 'R',
            Health::Flush => 'F',
            Health::Unknown => 'U',
        }
    }

    /// What the character means, for reasons.
    pub fn meaning(self) -> &'static str {
        match self {
            Health::Alive => "alive",
            Health::Dead => "a write failed",
            Health::Sync => "a resync failed",
            Health::Read => "a read failed",
            Health::Flush => "a flush failed",
            Health::Unknown => "an unknown error",
        }
    }

    /// `D`, `F` and `U`: handled by [`DeadPolicy`].
    pub fn is_dead_class(self) -> bool {
        matches!(self, Health::Dead | Health::Flush | Health::Unknown)
    }
}

/// The monitor's plain copy of a mirror status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// Indexed like [`MapSetup::legs`]; `None`: the leg is not in the live table.
    pub legs: Vec<Option<Health>>,
    pub in_sync_regions: u64,
    pub total_regions: u64,
    /// A disk log's device shows `D` or `F` (always `false` for a core log).
    pub log_failed: bool,
}

impl StatusView {
    /// Out-of-sync regions in percent, rounded down (0 for an empty mirror).
    pub fn out_of_sync_percent(&self) -> u64 {
        (self.total_regions - self.in_sync_regions.min(self.total_regions)) * 100
            / self.total_regions.max(1)
    }

    pub fn in_sync(&self) -> bool {
        self.in_sync_regions >= self.total_regions
    }
}

/// What a scan of one slice of one leg found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanOutcome {
    /// Every block read, and equal to the compared leg's.
    Ok,
    /// These blocks ([`BLOCK_SIZE`] units) could not be read.
    Unreadable(Vec<u64>),
    /// These blocks read but differ from the compared leg's.
    Differs(Vec<u64>),
}

/// The kind of an action, for completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    RemoveLeg,
    RestoreLeg,
    RestartResync,
    Relocate,
    ScanSlice,
    ProbeLeg,
}

/// What the driver tells the monitor. Every input comes with the current time
/// ([`Monitor::handle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The map's status, read once at start, after every dm event and after each action the
    /// driver completed (never presumed from the action).
    Status { map: usize, status: StatusView },
    /// Time passed: the driver sends this when [`Monitor::next_deadline`] is due (same as
    /// [`Monitor::handle_timeout`]).
    Tick,
    /// The answer to an [`Action::ScanSlice`].
    ScanResult {
        map: usize,
        leg: usize,
        regions: Range<u64>,
        outcome: ScanOutcome,
    },
    /// The driver knows which blocks of a leg failed to read (e.g. from the IO that hit them).
    ReadFailures {
        map: usize,
        leg: usize,
        blocks: Vec<u64>,
    },
    /// The answer to an [`Action::ProbeLeg`]: the leg's device read and wrote fine.
    ProbeResult { map: usize, leg: usize, ok: bool },
    /// The driver performed an action.
    ActionDone {
        map: usize,
        leg: Option<usize>,
        kind: ActionKind,
    },
    /// The driver could not perform an action.
    ActionFailed {
        map: usize,
        leg: Option<usize>,
        kind: ActionKind,
        detail: String,
    },
}

/// What the monitor asks the driver to do. Each carries its [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reload the map without the leg (load the table without it, suspend, resume).
    RemoveLeg {
        map: usize,
        leg: usize,
        reason: Reason,
    },
    /// Reload the map with the leg back in its place (which resets its error state; the
    /// kernel resyncs it), then send the status.
    RestoreLeg {
        map: usize,
        leg: usize,
        reason: Reason,
    },
    /// Suspend and resume the map to restart its resync (`attempt` from 1).
    RestartResync {
        map: usize,
        attempt: u32,
        reason: Reason,
    },
    /// Read `blocks` from leg `from` and write them to `leg` (or rewrite them through the map,
    /// which writes every leg).
    Relocate {
        map: usize,
        leg: usize,
        blocks: Vec<u64>,
        from: usize,
        reason: Reason,
    },
    /// Read `regions` of `leg` (compared with leg `compare_with`, if any) and answer with an
    /// [`Input::ScanResult`].
    ScanSlice {
        map: usize,
        leg: usize,
        regions: Range<u64>,
        compare_with: Option<usize>,
        reason: Reason,
    },
    /// Read and write a block of the leg's device directly (not through the map) and answer
    /// with an [`Input::ProbeResult`].
    ProbeLeg {
        map: usize,
        leg: usize,
        reason: Reason,
    },
    /// Nothing to do; for the report.
    Note {
        map: usize,
        leg: Option<usize>,
        reason: Reason,
    },
    /// The monitor stops acting on the leg (or the map): it is left as it is.
    GiveUp {
        map: usize,
        leg: Option<usize>,
        reason: Reason,
    },
}

impl Action {
    pub fn map(&self) -> usize {
        match self {
            Action::RemoveLeg { map, .. }
            | Action::RestoreLeg { map, .. }
            | Action::RestartResync { map, .. }
            | Action::Relocate { map, .. }
            | Action::ScanSlice { map, .. }
            | Action::ProbeLeg { map, .. }
            | Action::Note { map, .. }
            | Action::GiveUp { map, .. } => *map,
        }
    }

    pub fn leg(&self) -> Option<usize> {
        match self {
            Action::RemoveLeg { leg, .. }
            | Action::RestoreLeg { leg, .. }
            | Action::Relocate { leg, .. }
            | Action::ScanSlice { leg, .. }
            | Action::ProbeLeg { leg, .. } => Some(*leg),
            Action::Note { leg, .. } | Action::GiveUp { leg, .. } => *leg,
            Action::RestartResync { .. } => None,
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            Action::RemoveLeg { reason, .. }
            | Action::RestoreLeg { reason, .. }
            | Action::RestartResync { reason, .. }
            | Action::Relocate { reason, .. }
            | Action::ScanSlice { reason, .. }
            | Action::ProbeLeg { reason, .. }
            | Action::Note { reason, .. }
            | Action::GiveUp { reason, .. } => reason,
        }
    }

    /// The kind the driver reports back in [`Input::ActionDone`] (none for notes and give-ups).
    pub fn kind(&self) -> Option<ActionKind> {
        Some(match self {
            Action::RemoveLeg { .. } => ActionKind::RemoveLeg,
            Action::RestoreLeg { .. } => ActionKind::RestoreLeg,
            Action::RestartResync { .. } => ActionKind::RestartResync,
            Action::Relocate { .. } => ActionKind::Relocate,
            Action::ScanSlice { .. } => ActionKind::ScanSlice,
            Action::ProbeLeg { .. } => ActionKind::ProbeLeg,
            Action::Note { .. } | Action::GiveUp { .. } => return None,
        })
    }
}

/// What the monitor thinks of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    /// Healthy as far as the monitor knows (its character may still show an error that was
    /// handled, e.g. `R` after a relocation, until the next reload).
    InSync,
    /// `R` was reported and the leg is being scanned to find the failed blocks.
    Locating { since: Duration },
    /// Blocks are being rewritten from another leg.
    Relocating { since: Duration },
    /// `S` was reported; the map's resync is being restarted ([`ResyncState`]).
    SyncFailed { since: Duration },
    /// A dead leg within its transient window, probed.
    Waiting {
        since: Duration,
        until: Duration,
        health: Health,
    },
    /// A dead leg whose window ran out with `then = keep`: degraded, still probed.
    Kept { since: Duration, health: Health },
    /// A removal was asked for.
    Removing { since: Duration },
    /// The leg is not in the table.
    Removed { at: Duration },
    /// A restore was asked for.
    Restoring { since: Duration },
    /// Back in the table, resynchronising.
    Resyncing { since: Duration },
    /// The monitor gave up on the leg and leaves it alone.
    Abandoned { since: Duration, health: Health },
}

/// The map's resync retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncState {
    Idle,
    /// Attempt `attempt` was started; `baseline` regions were in sync when it was last
    /// checked.
    Retrying {
        attempt: u32,
        since: Duration,
        baseline: u64,
    },
    GaveUp {
        at: Duration,
    },
}
