//! Events of mirror maps: a leg's health character changing (the kernel's view), resync
//! progress (at a coarse cadence, report.json only), and each action of the mirror monitor
//! with its reason, carried as data.

use mirror_monitor::{Action, Health};
use serde::{Deserialize, Serialize};

/// One mirror event (inside [`super::EventKind::Mirror`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mirror_event", rename_all = "snake_case")]
pub enum MirrorEvent {
    /// A leg's health character changed; `None`: the leg is not in the live table.
    LegHealth {
        map: String,
        leg: String,
        device: String,
        from: Option<Health>,
        to: Option<Health>,
    },
    /// Regions in sync (report.json only: sampled at a coarse cadence).
    Resync {
        map: String,
        in_sync: u64,
        total: u64,
    },
    /// Every leg of the map is in the table, alive and in sync again (or no longer).
    Redundancy { map: String, redundant: bool },
    /// An action of the mirror monitor, with its reason.
    Action {
        map: String,
        leg: Option<String>,
        action: Action,
        /// (`what` in report.json already.)
        #[serde(skip)]
        words: String,
        /// The dm operation or IO that carried the action out failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
}

fn health(h: Option<Health>) -> String {
    match h {
        Some(h) => format!("{} ({})", h.as_char(), h.meaning()),
        None => "not in the table".into(),
    }
}

fn verb(action: &Action) -> &'static str {
    match action {
        Action::RemoveLeg { .. } => "remove leg",
        Action::RestoreLeg { .. } => "restore leg",
        Action::RestartResync { .. } => "restart the resync",
        Action::Relocate { .. } => "relocate blocks of leg",
        Action::ScanSlice { .. } => "scan leg",
        Action::ProbeLeg { .. } => "probe leg",
        Action::Note { .. } => "note",
        Action::GiveUp { .. } => "give up",
    }
}

impl MirrorEvent {
    /// Whether report.txt's timeline shows it: health changes, redundancy and the monitor's
    /// decisions; not resync samples, probes or scan slices (their number is timing).
    pub fn in_timeline(&self) -> bool {
        match self {
            MirrorEvent::LegHealth { .. } | MirrorEvent::Redundancy { .. } => true,
            MirrorEvent::Resync { .. } => false,
            MirrorEvent::Action { action, .. } => !matches!(
                action,
                Action::ProbeLeg { .. } | Action::ScanSlice { .. } | Action::Note { .. }
            ),
        }
    }

    /// Health and resync are the kernel's; actions the monitor's.
    pub fn is_kernel(&self) -> bool {
        !matches!(self, MirrorEvent::Action { .. })
    }

    pub fn words(&self, stable: bool) -> String {
        match self {
            MirrorEvent::LegHealth {
                map, leg, from, to, ..
            } => {
                format!(
                    "{map}: mirror leg {leg}: {} -> {}",
                    health(*from),
                    health(*to)
                )
            }
            MirrorEvent::Resync {
                map,
                in_sync,
                total,
            } => format!("{map}: mirror resync {in_sync}/{total} regions in sync"),
            MirrorEvent::Redundancy { map, redundant } => {
                if *redundant {
                    format!("{map}: mirror redundant again (every leg alive and in sync)")
                } else {
                    format!("{map}: mirror lost redundancy")
                }
            }
            MirrorEvent::Action {
                map,
                leg,
                action,
                words,
                failed,
            } => {
                let mut s = if stable {
                    match leg {
                        Some(l)
                            if !matches!(action, Action::Note { .. } | Action::GiveUp { .. }) =>
                        {
                            format!("{map}: mirror monitor: {} {l}", verb(action))
                        }
                        Some(l) => format!("{map}: mirror monitor: {} ({l})", verb(action)),
                        None => format!("{map}: mirror monitor: {}", verb(action)),
                    }
                } else {
                    format!("{map}: mirror monitor: {words}")
                };
                if let Some(f) = failed {
                    s.push_str(&format!(" (failed: {f})"));
                }
                s
            }
        }
    }
}
