//! The embedded path manager's core: the part of multipathd that decides which paths are usable.
//!
//! Sans-IO, like quinn-proto: the driver feeds [`Input`]s (the kernel's view of a map after every
//! dm event, checker results, ticks) together with the current virtual time, and gets
//! [`Action`]s back (run a checker, fail / reinstate a path, switch group, queue / fail IO when
//! no path is left, and notes for the report). The core has no clock, does no IO and starts no
//! thread, so every decision runs on a virtual clock in the tests and every action carries a
//! [`Reason`] the report can print.
//!
//! What it implements, in multipath.conf words (semantics learnt from multipath-tools'
//! `multipathd/main.c` and `libmultipath/switchgroup.c`):
//!
//! - `path_checker`, `polling_interval`, `max_polling_interval`: every path is checked every
//!   interval; the interval doubles while the path stays healthy (capped at the maximum) and
//!   drops back to `polling_interval` on any change of the path. When the kernel fails a path the
//!   next check is due within `polling_interval` (like multipathd, which shortens the path's tick
//!   to `checkint`). `path_checker none` runs no checker: at each due check the path counts as up.
//! - Path groups: the best group is the one with the highest priority (average of its usable
//!   paths' priorities), ties going to more usable paths, then to the earlier group.
//! - `failback`: immediate, manual, deferred (N seconds) and followover.
//! - `no_path_retry`: a countdown of N × `polling_interval` once no path is usable, then
//!   `fail_if_no_path`; `queue_if_no_path` again when a path is back.
//! - `san_path_err_*`: flap damping; a path with too many kernel failures is held back
//!   ([`PathState::Delayed`]) before it is reinstated, except when it is the last usable path.
//!
//! Marginal paths (`marginal_path_*`) are not implemented yet; [`PathState`] leaves room for
//! them.

mod engine;
mod reason;
#[cfg(test)]
mod tests;
mod timeline_text;

use std::time::Duration;

use faults::manager::ManagerSettings;

pub use engine::Core;
pub use reason::{FailedBy, Reason};

/// One multipath map the core manages.
#[derive(Debug, Clone)]
pub struct MapSetup {
    pub name: String,
    pub settings: ManagerSettings,
    /// Path indices per table group, in table order (group 0 is the table's group 1).
    pub groups: Vec<Vec<usize>>,
    pub paths: Vec<PathSetup>,
}

/// One path of a map.
#[derive(Debug, Clone)]
pub struct PathSetup {
    /// The leg's name (used in reasons: "path a came back").
    pub leg: String,
    /// The path's priority (higher is better).
    pub prio: u32,
}

/// A path of a map: indices into [`Core::new`]'s maps and that map's `paths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathRef {
    pub map: usize,
    pub path: usize,
}

/// What the driver tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Sent once per map at start and after every dm event: the kernel's view (from the map's
    /// status line).
    KernelStatus {
        map: usize,
        /// Indexed like [`MapSetup::paths`].
        paths: Vec<KernelPath>,
        /// 0-based; the group the kernel uses or will use next (the status line's "next group"
        /// field, which a `switch_group` message changes at once). `None` if no group is active.
        active_group: Option<usize>,
    },
    /// Result of a checker the core asked for with [`Action::RunChecker`].
    CheckerResult {
        path: PathRef,
        result: CheckResult,
        latency: Duration,
    },
    /// Time passed (the driver sends this when [`Core::next_wakeup`] is due).
    Tick,
}

/// The kernel's view of one path, as the map's status line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPath {
    /// `A` (active) rather than `F` (failed).
    pub active: bool,
    /// The kernel's failure counter of the path (it grows by one each time the kernel fails it).
    pub fail_count: u32,
}

/// What a path checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Up,
    /// E.g. `detail: "EIO"`.
    Down {
        detail: String,
    },
    /// No answer within `checker_timeout`: counts as down.
    TimedOut,
}

/// What the core asks the driver to do. Every action that is not a checker run carries the
/// [`Reason`] for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the map's path checker on this path and send its [`Input::CheckerResult`].
    RunChecker { path: PathRef },
    /// `fail_path` message to the map.
    FailPath { path: PathRef, reason: Reason },
    /// `reinstate_path` message to the map.
    ReinstatePath { path: PathRef, reason: Reason },
    /// `switch_group` message; `group` is 0-based (the message wants `group + 1`).
    SwitchGroup {
        map: usize,
        group: usize,
        reason: Reason,
    },
    /// `queue_if_no_path` message.
    QueueIfNoPath { map: usize, reason: Reason },
    /// `fail_if_no_path` message.
    FailIfNoPath { map: usize, reason: Reason },
    /// A decision that changes no kernel state but belongs in the report ("deferred failback
    /// armed, 10s", "path b held back: flapping").
    Note {
        map: usize,
        path: Option<usize>,
        reason: Reason,
    },
}

impl Action {
    /// The map the action is about.
    pub fn map(&self) -> usize {
        match self {
            Action::RunChecker { path }
            | Action::FailPath { path, .. }
            | Action::ReinstatePath { path, .. } => path.map,
            Action::SwitchGroup { map, .. }
            | Action::QueueIfNoPath { map, .. }
            | Action::FailIfNoPath { map, .. }
            | Action::Note { map, .. } => *map,
        }
    }

    /// The reason, for every action but [`Action::RunChecker`].
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Action::RunChecker { .. } => None,
            Action::FailPath { reason, .. }
            | Action::ReinstatePath { reason, .. }
            | Action::SwitchGroup { reason, .. }
            | Action::QueueIfNoPath { reason, .. }
            | Action::FailIfNoPath { reason, .. }
            | Action::Note { reason, .. } => Some(reason),
        }
    }
}

/// The core's view of one path: what the checker found, and whether the core holds the path
/// back. The kernel's view is kept apart ([`KernelPath`], [`PathView::kernel`]): a path the
/// kernel failed (an IO error, a trespass) while the checker still finds it up is `Up` here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathState {
    /// No checker result yet (the path counts as usable while the kernel has it active).
    Unchecked,
    /// The checker found the path up (or `path_checker none`).
    Up { since: Duration },
    /// The checker found the path down (a timed-out check counts as down).
    Down { since: Duration, detail: String },
    /// The checker finds the path up but flap damping (`san_path_err_*`) holds it back, failed
    /// in the kernel, until `until`.
    Delayed {
        since: Duration,
        until: Duration,
        reason: Reason,
        /// The checker had found the path down before it came back and was held back (for
        /// followover, the path "comes back" when it is finally reinstated).
        after_down: bool,
    },
}

impl PathState {
    /// Down according to the checker.
    pub fn is_down(&self) -> bool {
        matches!(self, PathState::Down { .. })
    }
}

/// Where a path's checker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// The next check is due at this time.
    Due { at: Duration },
    /// The core asked for a check at `since` and waits for its result (no second check meanwhile).
    Running { since: Duration },
}

/// Deferred failback (`failback N`) of one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailbackState {
    Idle,
    /// Armed at `since` for `group` (0-based); switches at `due`.
    Armed {
        since: Duration,
        due: Duration,
        group: usize,
    },
}

/// `no_path_retry N` of one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryState {
    /// A path is usable (or `no_path_retry` is not a number).
    Idle,
    /// No usable path since `since`; IO is queued until `until`.
    Counting { since: Duration, until: Duration },
    /// `fail_if_no_path` was sent at `since`; `queue_if_no_path` follows when a path is back.
    Failed { since: Duration },
}

/// One path as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    pub leg: String,
    pub prio: u32,
    /// 0-based group index.
    pub group: usize,
    pub state: PathState,
    /// The kernel's view: the last status, updated by the fail / reinstate actions sent since.
    pub kernel: KernelPath,
    /// Kernel active and not down or held back according to the core.
    pub usable: bool,
    pub check: CheckState,
    /// The current check interval.
    pub interval: Duration,
    /// Failures counted for flap damping (0 when `san_path_err` is off).
    pub san_path_failures: u32,
    pub last_latency: Option<Duration>,
}

/// One path group as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub paths: Vec<usize>,
    pub usable: usize,
    /// Average priority of the usable paths; `None` when none is usable.
    pub prio: Option<u32>,
}

/// What the report shows of a map: states, the current best group, countdowns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapView {
    pub name: String,
    pub paths: Vec<PathView>,
    pub groups: Vec<GroupView>,
    /// 0-based; `None` when no group has a usable path.
    pub best_group: Option<usize>,
    /// 0-based; as the kernel last reported it, updated by the switches sent since.
    pub active_group: Option<usize>,
    pub failback: FailbackState,
    pub no_path_retry: RetryState,
}
