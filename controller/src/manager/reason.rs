//! Why the core did something: one variant per rule, each with a sentence a reviewer understands.
//!
//! Groups are shown with the table's 1-based numbers (as `multipath -ll`, dmsetup and the
//! `switch_group` message count them), while [`super::Action`] carries 0-based indices.

use std::fmt;
use std::time::Duration;

use faults::manager::PathChecker;

/// Who failed a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBy {
    /// The path checker found it down.
    Checker,
    /// The kernel failed it (an IO error, or a `fail_path` message).
    Kernel,
}

/// The rule behind an [`super::Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The checker found an active path down: fail it.
    CheckerDown {
        checker: PathChecker,
        detail: String,
    },
    /// The check got no answer within `checker_timeout`: counts as down.
    CheckerTimedOut {
        checker: PathChecker,
        timeout: Duration,
    },
    /// The checker found a path down that the kernel had failed already (note).
    CheckerDownAlreadyFailed {
        checker: PathChecker,
        detail: String,
    },
    /// The checker still finds the path down but the kernel has it active again (a table reload):
    /// fail it again.
    CheckerStillDown {
        checker: PathChecker,
        detail: String,
        since: Duration,
    },
    /// The checker finds the path up while the kernel had failed it: reinstate.
    CheckerUpKernelFailed { checker: PathChecker },
    /// The checker finds the path up again after it was down: reinstate.
    CheckerUpAgain {
        checker: PathChecker,
        down_for: Duration,
    },
    /// The checker finds the path up again; the kernel had kept it active (note).
    CheckerUpAgainActive {
        checker: PathChecker,
        down_for: Duration,
    },
    /// The kernel failed a path by itself; its next check is moved forward (note).
    KernelFailed {
        fail_count: u32,
        recheck_within: Duration,
    },
    /// `failback immediate`: the best group is usable and is not the active one.
    FailbackImmediate {
        group: usize,
        prio: u32,
        active: usize,
    },
    /// `failback N`: the countdown starts (note).
    FailbackDeferredArmed {
        delay: Duration,
        group: usize,
        prio: u32,
        active: usize,
    },
    /// `failback N`: the countdown ran out and the best group is still better than the active.
    FailbackDeferredExpired {
        delay: Duration,
        group: usize,
        prio: u32,
    },
    /// `failback N`: a path of the map failed while the countdown ran (note).
    FailbackDeferredCancelled {
        delay: Duration,
        leg: String,
        by: FailedBy,
    },
    /// `failback N`: the countdown is not needed anymore (note).
    FailbackDeferredDropped {
        delay: Duration,
        active: Option<usize>,
        best: Option<usize>,
    },
    /// `failback followover`: a path of the best group came back and the rest of it was down.
    FailbackFollowover {
        leg: String,
        group: usize,
        prio: u32,
    },
    /// `no_path_retry N`: the last usable path is gone; queueing starts to count down (note).
    NoPathRetryStarted { retries: u32, interval: Duration },
    /// `no_path_retry N`: the countdown ran out: stop queueing.
    NoPathRetryExpired { retries: u32, interval: Duration },
    /// `no_path_retry N`: a path is usable before the countdown ran out (note).
    NoPathRetryStopped {
        retries: u32,
        leg: String,
        after: Duration,
    },
    /// `no_path_retry N`: a path is usable after queueing was stopped: queue again.
    PathBack { leg: String },
    /// `san_path_err_*`: the path comes back with too many failures: hold it back (note).
    DampingHeld {
        failures: u32,
        threshold: u32,
        recovery: Duration,
    },
    /// `san_path_err_*`: the hold-back time is over and the checker still finds it up.
    DampingRecovered { recovery: Duration },
    /// `san_path_err_*`: no other path of the map is usable, so the flapping path is not held
    /// back.
    DampingLastPath { failures: u32, threshold: u32 },
}

fn checker_name(c: PathChecker) -> &'static str {
    match c {
        PathChecker::Directio => "directio",
        PathChecker::None => "none",
    }
}

/// A duration the way a person writes it: `10s`, `1.5s`, `250ms`.
pub(crate) struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d >= Duration::from_secs(1) {
            let s = format!("{:.3}", d.as_secs_f64());
            write!(f, "{}s", s.trim_end_matches('0').trim_end_matches('.'))
        } else {
            let s = format!("{:.3}", d.as_secs_f64() * 1000.0);
            write!(f, "{}ms", s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// A 0-based group index shown 1-based.
struct Group(usize);

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0 + 1)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CheckerDown { checker, detail } => {
                write!(f, "checker {}: down ({detail})", checker_name(*checker))
            }
            Reason::CheckerTimedOut { checker, timeout } => write!(
                f,
                "checker {}: no answer within checker_timeout {}, counts as down",
                checker_name(*checker),
                Secs(*timeout)
            ),
            Reason::CheckerDownAlreadyFailed { checker, detail } => write!(
                f,
                "checker {}: down ({detail}); the kernel had already failed it",
                checker_name(*checker)
            ),
            Reason::CheckerStillDown {
                checker,
                detail,
                since,
            } => write!(
                f,
                "checker {}: down ({detail}) since {}, but the kernel has it active again",
                checker_name(*checker),
                Secs(*since)
            ),
            Reason::CheckerUpKernelFailed { checker } => match checker {
                PathChecker::None => {
                    write!(
                        f,
                        "checker none: up by definition; the kernel had failed it"
                    )
                }
                c => write!(
                    f,
                    "checker {}: up; the kernel had failed it",
                    checker_name(*c)
                ),
            },
            Reason::CheckerUpAgain { checker, down_for } => write!(
                f,
                "checker {}: up again after {} down",
                checker_name(*checker),
                Secs(*down_for)
            ),
            Reason::CheckerUpAgainActive { checker, down_for } => write!(
                f,
                "checker {}: up again after {} down; the kernel had kept it active",
                checker_name(*checker),
                Secs(*down_for)
            ),
            Reason::KernelFailed {
                fail_count,
                recheck_within,
            } => write!(
                f,
                "the kernel failed the path (fail count {fail_count}); next check within {}",
                Secs(*recheck_within)
            ),
            Reason::FailbackImmediate {
                group,
                prio,
                active,
            } => write!(
                f,
                "failback immediate: {} (prio {prio}) is usable again and preferred to {}",
                Group(*group),
                Group(*active)
            ),
            Reason::FailbackDeferredArmed {
                delay,
                group,
                prio,
                active,
            } => write!(
                f,
                "deferred failback armed, {}: {} (prio {prio}) is usable and preferred to {}",
                Secs(*delay),
                Group(*group),
                Group(*active)
            ),
            Reason::FailbackDeferredExpired { delay, group, prio } => write!(
                f,
                "failback {}: {} (prio {prio}) stayed usable for {}",
                Secs(*delay),
                Group(*group),
                Secs(*delay)
            ),
            Reason::FailbackDeferredCancelled { delay, leg, by } => write!(
                f,
                "deferred failback ({}) cancelled: the {} failed path {leg}",
                Secs(*delay),
                match by {
                    FailedBy::Checker => "checker",
                    FailedBy::Kernel => "kernel",
                }
            ),
            Reason::FailbackDeferredDropped {
                delay,
                active,
                best,
            } => match (best, active) {
                (None, _) => write!(
                    f,
                    "deferred failback ({}) dropped: no group is usable",
                    Secs(*delay)
                ),
                (Some(b), Some(a)) if a == b => write!(
                    f,
                    "deferred failback ({}) dropped: {} is active already",
                    Secs(*delay),
                    Group(*b)
                ),
                (Some(_), Some(a)) => write!(
                    f,
                    "deferred failback ({}) dropped: active {} has no usable path, the kernel \
                     leaves it by itself",
                    Secs(*delay),
                    Group(*a)
                ),
                (Some(_), None) => write!(
                    f,
                    "deferred failback ({}) dropped: the kernel reports no active group",
                    Secs(*delay)
                ),
            },
            Reason::FailbackFollowover { leg, group, prio } => write!(
                f,
                "failback followover: path {leg} came back and every other path of {} \
                 (prio {prio}) was down",
                Group(*group)
            ),
            Reason::NoPathRetryStarted { retries, interval } => write!(
                f,
                "no_path_retry {retries}: no usable path, queueing IO for {retries} × {}",
                Secs(*interval)
            ),
            Reason::NoPathRetryExpired { retries, interval } => write!(
                f,
                "no_path_retry {retries}: no path for {retries} × {}, stop queueing",
                Secs(*interval)
            ),
            Reason::NoPathRetryStopped {
                retries,
                leg,
                after,
            } => write!(
                f,
                "no_path_retry {retries}: path {leg} is usable again after {}, countdown stopped",
                Secs(*after)
            ),
            Reason::PathBack { leg } => write!(f, "a path is back ({leg}): queue IO again"),
            Reason::DampingHeld {
                failures,
                threshold,
                recovery,
            } => write!(
                f,
                "san_path_err: {failures} failures > threshold {threshold}, held back for {}",
                Secs(*recovery)
            ),
            Reason::DampingRecovered { recovery } => write!(
                f,
                "san_path_err: held back for {} and the checker still finds it up",
                Secs(*recovery)
            ),
            Reason::DampingLastPath {
                failures,
                threshold,
            } => write!(
                f,
                "last usable path: not held back despite flapping ({failures} failures > \
                 threshold {threshold})"
            ),
        }
    }
}
