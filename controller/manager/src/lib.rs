//! pathrig's path manager, modelled on multipathd, as a crate of its own and pure: no IO, no
//! clock, no thread, no system library (its dependency tree has no `nix`, `libc`, `io-uring`,
//! `devicemapper`, `fuser` or `loopdev`). It owns
//!
//! - the sans-IO core (this module, [`Core`] in `engine`, [`Reason`] in `reason`), described
//!   below;
//! - its settings ([`settings`]: the multipath.conf keywords pathrig implements, their defaults
//!   and origins) and their language ([`lang`]: the scenario's `[manager]` table, multipath.conf
//!   text, and a writer that renders effective settings back to multipath.conf).
//!
//! The driver that connects the core to the kernel lives in the controller.
//!
//! # The core
//!
//! The embedded path manager's core is the part of multipathd that decides which paths are
//! usable.
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
//! - `marginal_path_*`: IO-error accounting for intermittently failing paths (semantics learnt
//!   from multipath-tools' `libmultipath/io_err_stat.c`), see below.
//! - `marginal_pathgroups on`: marginal paths are reinstated into an extra path group, used
//!   last ([`Action::Regroup`]).
//!
//! # Marginal paths
//!
//! A path that fails twice within `marginal_path_double_failed_time` (counted from the
//! fail-count increases in [`Input::KernelStatus`]: the kernel's own failures and those of the
//! core's `fail_path`, as multipathd counts every PATH_FAILED uevent) is no longer trusted to
//! the checker: it is held ([`PathState::Triggered`]), failed in dm, and not reinstated by the
//! checker. The first check that finds it up starts its sample ([`PathState::Sampling`]). The
//! core then asks the driver for bursts
//! of sample reads ([`Action::SampleIo`]: `marginal_sample_burst` reads, bounded by
//! `marginal_io_timeout` each; the next burst `marginal_sample_gap` after the last answer of
//! the previous one, and none that could not be answered before the sample ends) for
//! `marginal_path_err_sample_time`, and counts the answers ([`Input::SampleResult`]; a timed-out
//! read is one error). Answers that come when no read is outstanding (after the sample ended,
//! or a second answer for a read) are ignored, and a new sample waits until every read of the
//! previous one has been answered or has timed out.
//!
//! The verdict (`marginal_detector`):
//!
//! - `window`: at the end of the sample time, an error rate (errors per answered read, in
//!   permille) at most `marginal_path_err_rate_threshold` is good, above it bad.
//! - `sequential`: Wald's sequential probability ratio test between the acceptable rate
//!   (`marginal_sprt_good_permille`) and the marginal rate (`marginal_sprt_bad_permille`), with
//!   false-alarm probability `marginal_sprt_alpha` and miss probability `marginal_sprt_beta`:
//!   after each answer the log-likelihood ratio `errors·ln(p1/p0) + oks·ln((1-p1)/(1-p0))` is
//!   compared with `ln((1-β)/α)` (marginal) and `ln(β/(1-α))` (good); the sample stops as soon
//!   as it crosses one, and falls back to the window rule at the end of the sample time.
//!
//! Good: the path is reinstated ([`PathState::Up`]; if the checker finds it down at that
//! moment it is [`PathState::Down`] instead, and the checker reinstates it). Bad: it stays out
//! ([`PathState::Marginal`]); the first check that finds it up after
//! `marginal_path_err_recheck_gap_time` samples it again (the gap's end brings that check
//! forward). Every verdict's [`Reason`] carries the evidence (reads sent and answered, errors,
//! time, and for the sequential test its statistic and boundaries).
//!
//! A held path stays held whatever the checker finds: a "down" fails it in dm if it is active
//! and lets a sample go on, an "up" is no reason to reinstate it ([`HeldCheck`] keeps what the
//! checker found). When the checker finds a held path up and the map has no usable path, the
//! path is reinstated early and is no longer marginal (multipathd's need_io_err_check). With
//! `marginal_pathgroups on`, a sampled or marginal path moves into an extra last path group
//! ([`Action::Regroup`], a table reload) and is active there while the checker finds it up,
//! through its samples and rechecks; a good verdict moves it back to its own group.
//!
//! # Followover
//!
//! `failback followover` switches to the best group when one of its paths came back while
//! every other path of it was down according to the checker — a path held back (flap damping,
//! marginal paths) after being down counts as down, like multipathd's chkrstate. It is decided
//! once the map's round of checks is complete (no check of the map running), as multipathd does
//! after its checker loop: two paths that come back in the same round see each other up.

mod engine;
pub mod lang;
mod reason;
pub mod settings;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;
mod timeline_text;

use std::time::Duration;

use crate::settings::ManagerSettings;
use serde::{Deserialize, Serialize};

pub use engine::Core;
pub use reason::{Decision, FailedBy, Reason};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// The answer to one read of an [`Action::SampleIo`] burst. Exactly one per read: a read
    /// without an answer within the burst's `timeout` is reported once as
    /// [`SampleOutcome::TimedOut`], and its late completion is dropped by the driver.
    SampleResult {
        path: PathRef,
        outcome: SampleOutcome,
        latency: Duration,
    },
    /// Time passed (the driver sends this when [`Core::next_wakeup`] is due).
    Tick,
}

/// What one sample read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleOutcome {
    Ok,
    /// E.g. `detail: "EIO"`.
    Error {
        detail: String,
    },
    /// No answer within the burst's timeout: counts as one error.
    TimedOut,
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
    /// Usable, but its target port is in standby (`tur`: NOT READY 04/0B). Treated as up, as
    /// multipathd treats PATH_GHOST: never failed for it, reinstated when the kernel had failed
    /// it. (multipathd also holds back that reinstate while no path of the map is active and
    /// the array does implicit ALUA only; the core knows no ALUA modes.)
    Ghost,
    /// No new state yet (`tur`: NOT READY 04/0A, an ALUA transition): the path keeps its state
    /// and is checked again [`PENDING_RECHECK`] later, as multipathd does with PATH_PENDING.
    Pending,
}

/// When a check answered [`CheckResult::Pending`] runs again (multipathd's next tick).
pub const PENDING_RECHECK: Duration = Duration::from_secs(1);

/// What the core asks the driver to do. Every action that is not a checker run carries the
/// [`Reason`] for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Send `count` sample reads to the path (its leg device, not through the map), each
    /// bounded by `timeout`, and answer each with an [`Input::SampleResult`]. Sent on the core's
    /// timers while the path is [`PathState::Sampling`]; it has no reason (the sampling's start
    /// has one).
    SampleIo {
        path: PathRef,
        count: u32,
        timeout: Duration,
    },
    /// `marginal_pathgroups on`: reload the map's table with these path groups (path indices
    /// per group, 0-based, in table order; marginal paths in an extra last group), keeping the
    /// map's features, then send [`Input::KernelStatus`] as after any dm event. From this action
    /// on, group indices (in [`Action::SwitchGroup`], [`MapView`]) are those of the new table.
    Regroup {
        map: usize,
        groups: Vec<Vec<usize>>,
        reason: Reason,
    },
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
            | Action::SampleIo { path, .. }
            | Action::FailPath { path, .. }
            | Action::ReinstatePath { path, .. } => path.map,
            Action::SwitchGroup { map, .. }
            | Action::Regroup { map, .. }
            | Action::QueueIfNoPath { map, .. }
            | Action::FailIfNoPath { map, .. }
            | Action::Note { map, .. } => *map,
        }
    }

    /// The reason, for every action but [`Action::RunChecker`] and [`Action::SampleIo`].
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Action::RunChecker { .. } | Action::SampleIo { .. } => None,
            Action::FailPath { reason, .. }
            | Action::ReinstatePath { reason, .. }
            | Action::SwitchGroup { reason, .. }
            | Action::Regroup { reason, .. }
            | Action::QueueIfNoPath { reason, .. }
            | Action::FailIfNoPath { reason, .. }
            | Action::Note { reason, .. } => Some(reason),
        }
    }
}

/// The core's view of one path: what the checker found, and whether the core holds the path
/// back (flap damping, marginal-path sampling). One state per path, no side flags. The kernel's
/// view is kept apart ([`KernelPath`], [`PathView::kernel`]): a path the kernel failed (an IO
/// error, a trespass) while the checker still finds it up is `Up` here, and a sampled or
/// marginal path in the marginal group (`marginal_pathgroups on`) is active there.
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
    /// `marginal_path_*`: the path failed twice within `marginal_path_double_failed_time`. It is
    /// kept out (failed in dm) and not reinstated by the checker; the first check that finds it
    /// up starts its first sample, or reinstates it early when the map has no usable path.
    Triggered { since: Duration, checker: HeldCheck },
    /// `marginal_path_*`: the path failed repeatedly and is being sampled; out of use (failed
    /// in dm; with `marginal_pathgroups on` active in the extra last group) and not reinstated
    /// by the checker. Reads are sent in bursts until `until` (or until the sequential test
    /// decides), whatever the checker finds meanwhile.
    Sampling {
        /// When this sample started (its first burst).
        since: Duration,
        /// When the window rule decides.
        until: Duration,
        /// 1 for the sample after the trigger, 2, 3, ... for the rechecks of a marginal path.
        round: u32,
        evidence: SampleEvidence,
        /// Reads sent and not answered yet.
        outstanding: u32,
        /// When the next burst is due; `None` when no further burst fits before `until`.
        next_burst: Option<Duration>,
        checker: HeldCheck,
    },
    /// `marginal_path_*`: the last sample found the path marginal. It stays out (or, with
    /// `marginal_pathgroups on`, in the extra last path group) until it is sampled again at
    /// `next_sample_at`.
    Marginal {
        since: Duration,
        next_sample_at: Duration,
        /// The round of the sample that found it marginal.
        round: u32,
        /// That sample's evidence.
        evidence: SampleEvidence,
        checker: HeldCheck,
    },
}

/// What the checker found of a path the marginal-path detector holds ([`PathState::Triggered`],
/// [`PathState::Sampling`], [`PathState::Marginal`]): a checker result changes how the path is
/// held (a "down" fails it in dm, an "up" may start its sample), never whether.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldCheck {
    /// The checker's last result was down (with what it saw); `None`: up, or not checked yet.
    pub down: Option<String>,
    /// The checker found the path down since it was last usable. Like multipathd's chkrstate,
    /// which a held path's "up" results leave alone: followover counts the path as down, and
    /// it comes back when it is reinstated.
    pub after_down: bool,
}

/// What a marginal-path sample has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleEvidence {
    /// Reads sent.
    pub sent: u32,
    /// Reads answered (a timeout is an answer).
    pub answered: u32,
    /// Answers that were errors, timeouts included.
    pub errors: u32,
    /// Of the errors, how many were timeouts.
    pub timed_out: u32,
}

impl PathState {
    /// Down according to the checker.
    pub fn is_down(&self) -> bool {
        matches!(self, PathState::Down { .. })
    }

    /// What the checker found while the marginal-path detector holds the path.
    pub fn held_check(&self) -> Option<&HeldCheck> {
        match self {
            PathState::Triggered { checker, .. }
            | PathState::Sampling { checker, .. }
            | PathState::Marginal { checker, .. } => Some(checker),
            _ => None,
        }
    }

    /// Down for followover: down according to the checker, or held back after being down
    /// (multipathd keeps a held path's chkrstate at down; see do_followover_should_failback).
    pub fn counts_as_down(&self) -> bool {
        match self {
            PathState::Down { .. } => true,
            PathState::Delayed { after_down, .. } => *after_down,
            other => other.held_check().is_some_and(|c| c.after_down),
        }
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
    /// `marginal_path_*`: the remembered kernel failure a second one within
    /// `marginal_path_double_failed_time` would make the path be sampled.
    pub last_kernel_failure: Option<Duration>,
    pub last_latency: Option<Duration>,
}

/// One path group as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub paths: Vec<usize>,
    pub usable: usize,
    /// Average priority of the usable paths; `None` when none is usable.
    pub prio: Option<u32>,
    /// `marginal_pathgroups on`: the extra last group of marginal paths (used only when no
    /// other group has a usable path).
    pub marginal: bool,
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
