//! Why the monitor did something: one [`Reason`] variant per rule, carrying the evidence as
//! data (which health character, which setting, how long it waited), and the stable text
//! rendering of actions for reports ([`describe`]).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Action, ActionKind, Health};

/// A policy keyword (`on_dead`, ...). An alias so that serde's derive does not take the field
/// for a string borrowed from its input (which would tie a report's reading to `'static`).
pub type PolicySetting = &'static str;

/// A `FailedRemove` setting read back (from a report): one of the policy keywords.
fn policy_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    const SETTINGS: [&str; 3] = ["on_dead", "on_sync_failure", "on_read_failure"];
    let name = String::deserialize(d)?;
    SETTINGS
        .into_iter()
        .find(|s| *s == name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown policy setting {name:?}")))
}

/// The rule behind an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The leg shows `health` and the policy `setting` (e.g. `on_dead`) says remove at once.
    FailedRemove {
        health: Health,
        #[serde(deserialize_with = "policy_setting")]
        setting: PolicySetting,
    },
    /// A dead leg: waiting up to `window` for it to come back (note).
    WaitingForLeg {
        health: Health,
        window: Duration,
        max_out_of_sync_percent: Option<u8>,
    },
    /// A probe of a waiting (or kept) leg is due.
    ProbeDue { health: Health, waited: Duration },
    /// The dead leg answered a probe after `waited`: restore it.
    LegBack { health: Health, waited: Duration },
    /// The dead leg did not come back within the window: remove it.
    WindowExpired {
        health: Health,
        window: Duration,
        waited: Duration,
    },
    /// The window ran out and `dead_then = keep`: the leg stays, degraded (note).
    KeptAfterWindow {
        health: Health,
        window: Duration,
        waited: Duration,
    },
    /// The out-of-sync share reached its limit before the window ended: remove now.
    OutOfSyncReached {
        health: Health,
        percent: u64,
        max_percent: u8,
        waited: Duration,
        window: Duration,
    },
    /// The restored leg is in sync again (note).
    LegResynced { took: Duration },
    /// `S` was reported: restart the resync (attempt 1).
    SyncFailed {
        max_attempts: u32,
        in_sync: u64,
        total: u64,
    },
    /// The last attempt made no progress within `backoff`: restart again.
    ResyncStalled {
        attempt: u32,
        max_attempts: u32,
        in_sync: u64,
        total: u64,
        backoff: Duration,
    },
    /// The resync progressed since the last check: it gets another `backoff` (note).
    ResyncProgressing {
        attempt: u32,
        in_sync: u64,
        total: u64,
    },
    /// Every region is in sync after `attempts` restarts (note).
    ResyncCompleted { attempts: u32, took: Duration },
    /// The restarts are used up and regions are still out of sync: give up.
    SyncRetriesExhausted {
        attempts: u32,
        in_sync: u64,
        total: u64,
        waited: Duration,
    },
    /// `R` was reported without the failed blocks: scan the whole leg to find them.
    LocateReadFailure,
    /// Rewrite blocks that failed to read (`located_by_scan`: found by [`LocateReadFailure`]).
    ///
    /// [`LocateReadFailure`]: Reason::LocateReadFailure
    ReadFailure {
        blocks: usize,
        located_by_scan: bool,
    },
    /// The locating scan read every block of the leg (note).
    ReadFailureNotFound,
    /// `R` was reported and `on_read_failure = ignore` (note).
    ReadFailureIgnored,
    /// The next slice of the proactive scan.
    ScanDue { interval: Duration },
    /// The proactive scan waits: fewer than two healthy legs (note).
    ScanPaused { healthy_legs: usize },
    /// The proactive scan goes on (note).
    ScanResumed,
    /// The scan found unreadable blocks: rewrite them.
    ScanUnreadable { regions: Range<u64>, blocks: usize },
    /// The scan found blocks that differ from leg `against` (`repair`: copy them from it).
    ScanDiffers {
        regions: Range<u64>,
        blocks: Vec<u64>,
        against: usize,
        repair: bool,
    },
    /// No healthy leg is left to remove this one or to copy from: give up.
    NoGoodLeg { health: Health },
    /// The driver could not perform an action.
    ActionFailed { kind: ActionKind, detail: String },
    /// The leg left the table without the monitor removing it (note).
    LegGone,
    /// The disk log's device failed (note; the monitor does not repair logs).
    LogDeviceFailed,
}

/// Seconds, as short as exact: `30s`, `0.25s`, `1.5s`.
pub fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}

fn ch(h: Health) -> String {
    format!("{} ({})", h.as_char(), h.meaning())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FailedRemove { health, setting } => {
                write!(f, "leg shows {}; {setting} = remove", ch(*health))
            }
            Reason::WaitingForLeg {
                health,
                window,
                max_out_of_sync_percent,
            } => {
                write!(
                    f,
                    "leg shows {}; on_dead = wait: waiting up to {} for it to come back",
                    ch(*health),
                    secs(*window)
                )?;
                if let Some(max) = max_out_of_sync_percent {
                    write!(f, " or until {max}% of the regions are out of sync")?;
                }
                Ok(())
            }
            Reason::ProbeDue { health, waited } => write!(
                f,
                "probe due: leg shows {} for {} now",
                ch(*health),
                secs(*waited)
            ),
            Reason::LegBack { health, waited } => write!(
                f,
                "leg answered a probe {} after it showed {}: reload with it and resync",
                secs(*waited),
                ch(*health)
            ),
            Reason::WindowExpired {
                health,
                window,
                waited,
            } => write!(
                f,
                "leg still {} after waiting {} (dead_window = {})",
                ch(*health),
                secs(*waited),
                secs(*window)
            ),
            Reason::KeptAfterWindow {
                health,
                window,
                waited,
            } => write!(
                f,
                "leg still {} after waiting {} (dead_window = {}); dead_then = keep: left degraded, still probed",
                ch(*health),
                secs(*waited),
                secs(*window)
            ),
            Reason::OutOfSyncReached {
                health,
                percent,
                max_percent,
                waited,
                window,
            } => write!(
                f,
                "leg {}: {percent}% of the regions out of sync after {} (dead_max_out_of_sync_percent = {max_percent}), before dead_window = {} ended",
                ch(*health),
                secs(*waited),
                secs(*window)
            ),
            Reason::LegResynced { took } => {
                write!(f, "restored leg in sync again after {}", secs(*took))
            }
            Reason::SyncFailed {
                max_attempts,
                in_sync,
                total,
            } => write!(
                f,
                "a leg shows S (a resync failed) at {in_sync}/{total} regions; on_sync_failure = retry: attempt 1 of {max_attempts}"
            ),
            Reason::ResyncStalled {
                attempt,
                max_attempts,
                in_sync,
                total,
                backoff,
            } => write!(
                f,
                "no resync progress within {} ({in_sync}/{total} regions): attempt {attempt} of {max_attempts}",
                secs(*backoff)
            ),
            Reason::ResyncProgressing {
                attempt,
                in_sync,
                total,
            } => write!(
                f,
                "resync attempt {attempt} progressing ({in_sync}/{total} regions): waiting on"
            ),
            Reason::ResyncCompleted { attempts, took } => write!(
                f,
                "every region in sync after {attempts} resync restart(s), {}",
                secs(*took)
            ),
            Reason::SyncRetriesExhausted {
                attempts,
                in_sync,
                total,
                waited,
            } => write!(
                f,
                "resync still at {in_sync}/{total} regions after {attempts} restart(s) over {} (sync_retry_attempts = {attempts}); leaving the map as it is",
                secs(*waited)
            ),
            Reason::LocateReadFailure => write!(
                f,
                "leg shows R (a read failed); on_read_failure = relocate: scanning the leg for the failed blocks"
            ),
            Reason::ReadFailure {
                blocks,
                located_by_scan,
            } => write!(
                f,
                "{blocks} block(s) failed to read ({}); on_read_failure = relocate",
                if *located_by_scan {
                    "found by scanning the leg"
                } else {
                    "named by the driver"
                }
            ),
            Reason::ReadFailureNotFound => write!(
                f,
                "the leg showed R but every block read on a full scan; nothing to relocate"
            ),
            Reason::ReadFailureIgnored => {
                write!(f, "leg shows R (a read failed); on_read_failure = ignore")
            }
            Reason::ScanDue { interval } => {
                write!(f, "scan slice due (scan_interval = {})", secs(*interval))
            }
            Reason::ScanPaused { healthy_legs } => write!(
                f,
                "scan paused: {healthy_legs} healthy leg(s), two needed to compare"
            ),
            Reason::ScanResumed => write!(f, "scan resumed: two or more healthy legs"),
            Reason::ScanUnreadable { regions, blocks } => write!(
                f,
                "scan of regions {}..{} found {blocks} unreadable block(s)",
                regions.start, regions.end
            ),
            Reason::ScanDiffers {
                regions,
                blocks,
                against,
                repair,
            } => write!(
                f,
                "scan of regions {}..{} found {} block(s) differing from leg {against} ({blocks:?}); scan_on_differ = {}",
                regions.start,
                regions.end,
                blocks.len(),
                if *repair { "repair" } else { "report" }
            ),
            Reason::NoGoodLeg { health } => write!(
                f,
                "leg shows {} but no other healthy leg is left; leaving it as it is",
                ch(*health)
            ),
            Reason::ActionFailed { kind, detail } => {
                write!(f, "{} failed: {detail}", kind_name(*kind))
            }
            Reason::LegGone => write!(f, "leg left the table (not removed by the monitor)"),
            Reason::LogDeviceFailed => write!(
                f,
                "the log device failed; the mirror goes on, the log is not repaired"
            ),
        }
    }
}

fn kind_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::RemoveLeg => "remove leg",
        ActionKind::RestoreLeg => "restore leg",
        ActionKind::RestartResync => "restart resync",
        ActionKind::Relocate => "relocate",
        ActionKind::ScanSlice => "scan slice",
        ActionKind::ProbeLeg => "probe leg",
    }
}

/// A stable one-line rendering of `action` for reports, with indices for names
/// (`map 0`, `leg 1`). [`crate::Monitor::describe`] renders with the setup's names.
pub fn describe(action: &Action) -> String {
    describe_with(action, &|m| format!("map {m}"), &|_, l| format!("leg {l}"))
}

pub(crate) fn describe_with(
    action: &Action,
    map_name: &dyn Fn(usize) -> String,
    leg_name: &dyn Fn(usize, usize) -> String,
) -> String {
    let m = action.map();
    let map = map_name(m);
    let leg = |l: usize| leg_name(m, l);
    let what = match action {
        Action::RemoveLeg { leg: l, .. } => format!("remove {}", leg(*l)),
        Action::RestoreLeg { leg: l, .. } => format!("restore {}", leg(*l)),
        Action::RestartResync { attempt, .. } => format!("restart resync (attempt {attempt})"),
        Action::Relocate {
            leg: l,
            blocks,
            from,
            ..
        } => format!(
            "relocate blocks {blocks:?} to {} from {}",
            leg(*l),
            leg(*from)
        ),
        Action::ScanSlice {
            leg: l,
            regions,
            compare_with,
            ..
        } => {
            let mut s = format!(
                "scan {} regions {}..{}",
                leg(*l),
                regions.start,
                regions.end
            );
            if let Some(c) = compare_with {
                s.push_str(&format!(" against {}", leg(*c)));
            }
            s
        }
        Action::ProbeLeg { leg: l, .. } => format!("probe {}", leg(*l)),
        Action::Note { leg: l, .. } => match l {
            Some(l) => format!("note {}", leg(*l)),
            None => "note".to_string(),
        },
        Action::GiveUp { leg: l, .. } => match l {
            Some(l) => format!("give up on {}", leg(*l)),
            None => "give up".to_string(),
        },
    };
    format!("{map}: {what}: {}", action.reason())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_short_and_exact() {
        assert_eq!(secs(Duration::from_secs(30)), "30s");
        assert_eq!(secs(Duration::from_millis(250)), "0.25s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::ZERO), "0s");
    }

    #[test]
    fn descriptions_name_the_character_the_setting_and_the_wait() {
        let a = Action::RemoveLeg {
            map: 0,
            leg: 1,
            reason: Reason::WindowExpired {
                health: Health::Dead,
                window: Duration::from_secs(10),
                waited: Duration::from_secs(10),
            },
        };
        assert_eq!(
            describe(&a),
            "map 0: remove leg 1: leg still D (a write failed) after waiting 10s (dead_window = 10s)"
        );
        let a = Action::RemoveLeg {
            map: 2,
            leg: 0,
            reason: Reason::FailedRemove {
                health: Health::Sync,
                setting: "on_sync_failure",
            },
        };
        assert_eq!(
            describe(&a),
            "map 2: remove leg 0: leg shows S (a resync failed); on_sync_failure = remove"
        );
    }
}
