//! The fault model of one SCSI path, as pure functions, shaped like the FUSE server's
//! (`crate::fuse::rules`): rules in order, the first matching rule of each action class wins,
//! and every random decision is a hash of the command's identity.
//!
//! # Composition
//!
//! Classes, in this order:
//!
//! 1. **NoResponse** — the command is held: never answered while a NoResponse rule matching it
//!    is in force. Held commands are re-examined at every rule change; when none matches any
//!    more, the command is *served normally* (IO done, GOOD). That is what a real array does
//!    when a stuck back end recovers: the command was never failed, it completes late. If the
//!    initiator gave up on it meanwhile (TCMU `cmd_time_out` expired it, or an honoured abort),
//!    the kernel has already finished it and drops the late answer. The abort policy of the
//!    rule that holds it decides what a task-management request for it does
//!    ([`AbortPolicy`]).
//! 2. **Latency** — the command waits for the sampled delay, then goes on to 3.
//! 3. **Error** (CheckCondition and Status share one class) — the command fails with that
//!    sense or status and no IO is done.
//!
//! Every rule has a probability; a rule whose dice say "no" still is the first of its class
//! (later rules of that class do not get a chance), as in the FUSE model.
//!
//! A rule matches when its `ops` is empty or holds the command's [`ScsiOp`], and its
//! `lba_range` is `None` or overlaps the command's blocks. Non-data commands have no blocks: a
//! rule with a range never matches them.
//!
//! # Determinism
//!
//! [`decide`]`(seed, path, op, seq, rule index)`: `seq` counts one path's commands of one op
//! class (0, 1, 2, …).

use std::time::Duration;

use serde::Serialize;

pub use crate::fuse::rules::LatencyDist;

/// The command classes a rule selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ScsiOp {
    Read,
    Write,
    /// Every command that moves no blocks (INQUIRY, TEST UNIT READY, SYNCHRONIZE CACHE, …).
    Other,
}

/// What happens to a task-management request (ABORT TASK, LUN RESET) naming a held command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AbortPolicy {
    /// The held command is completed as aborted at once, so the abort succeeds.
    Honour,
    /// Nothing happens: the abort waits until TCMU's `cmd_time_out` expires the command (or
    /// the rule is cleared), and the initiator's error handling escalates meanwhile.
    Ignore,
}

/// Statuses other than CHECK CONDITION a rule can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScsiStatus {
    Busy,
    TaskSetFull,
    ReservationConflict,
}

impl ScsiStatus {
    pub fn code(self) -> u8 {
        use super::commands::status;
        match self {
            ScsiStatus::Busy => status::BUSY,
            ScsiStatus::TaskSetFull => status::TASK_SET_FULL,
            ScsiStatus::ReservationConflict => status::RESERVATION_CONFLICT,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScsiAction {
    NoResponse { abort: AbortPolicy },
    CheckCondition { key: u8, asc: u8, ascq: u8 },
    Status(ScsiStatus),
    Latency(LatencyDist),
}

impl ScsiAction {
    fn class(&self) -> usize {
        match self {
            ScsiAction::NoResponse { .. } => 0,
            ScsiAction::Latency(_) => 1,
            ScsiAction::CheckCondition { .. } | ScsiAction::Status(_) => 2,
        }
    }
}

/// One fault rule of a path.
#[derive(Debug, Clone, PartialEq)]
pub struct ScsiRule {
    /// Command classes it applies to; empty means all.
    pub ops: Vec<ScsiOp>,
    /// `(first LBA, block count)`; `None` is the whole LUN.
    pub lba_range: Option<(u64, u64)>,
    /// Chance in `[0, 1]` that the rule acts on a matching command.
    pub probability: f64,
    pub action: ScsiAction,
}

impl ScsiRule {
    /// A rule for every command, always.
    pub fn new(action: ScsiAction) -> ScsiRule {
        ScsiRule {
            ops: Vec::new(),
            lba_range: None,
            probability: 1.0,
            action,
        }
    }

    pub fn ops(mut self, ops: &[ScsiOp]) -> ScsiRule {
        self.ops = ops.to_vec();
        self
    }

    pub fn lba_range(mut self, first: u64, count: u64) -> ScsiRule {
        self.lba_range = Some((first, count));
        self
    }

    pub fn probability(mut self, p: f64) -> ScsiRule {
        self.probability = p;
        self
    }

    /// Whether the rule selects a command of class `op` over `extent` (`(lba, blocks)`).
    pub fn matches(&self, op: ScsiOp, extent: Option<(u64, u64)>) -> bool {
        if !self.ops.is_empty() && !self.ops.contains(&op) {
            return false;
        }
        match (self.lba_range, extent) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((a, alen)), Some((b, blen))) => {
                alen > 0 && blen > 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
            }
        }
    }
}

/// How a command fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Sense { key: u8, asc: u8, ascq: u8 },
    Status(ScsiStatus),
}

/// What happens to one command, decided when it arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Plan {
    /// Held (the abort policy of the rule holding it); nothing else applies.
    pub hold: Option<AbortPolicy>,
    pub delay: Option<Duration>,
    /// Fail this way (after the delay), no IO.
    pub fail: Option<Failure>,
}

impl Plan {
    pub fn is_clean(&self) -> bool {
        *self == Plan::default()
    }
}

/// Decides the fate of command number `seq` of class `op` on `path` over `extent`.
pub fn plan(
    rules: &[ScsiRule],
    seed: u64,
    path: &str,
    op: ScsiOp,
    seq: u64,
    extent: Option<(u64, u64)>,
) -> Plan {
    let mut plan = Plan::default();
    let mut seen = [false; 3];
    for (index, rule) in rules.iter().enumerate() {
        let class = rule.action.class();
        if seen[class] || !rule.matches(op, extent) {
            continue;
        }
        seen[class] = true;
        if decide(seed, path, op, seq, index) >= rule.probability {
            continue;
        }
        match &rule.action {
            ScsiAction::NoResponse { abort } => plan.hold = Some(*abort),
            ScsiAction::Latency(dist) => {
                plan.delay = Some(dist.sample(decide(seed ^ 0x4c41_5445, path, op, seq, index)))
            }
            ScsiAction::CheckCondition { key, asc, ascq } => {
                plan.fail = Some(Failure::Sense {
                    key: *key,
                    asc: *asc,
                    ascq: *ascq,
                })
            }
            ScsiAction::Status(s) => plan.fail = Some(Failure::Status(*s)),
        }
    }
    if plan.hold.is_some() {
        return Plan {
            hold: plan.hold,
            ..Plan::default()
        };
    }
    plan
}

/// The abort policy of the first NoResponse rule in `rules` that still holds a command of
/// class `op` over `extent`, or `None` when it is to be released.
pub fn still_held(
    rules: &[ScsiRule],
    op: ScsiOp,
    extent: Option<(u64, u64)>,
) -> Option<AbortPolicy> {
    rules.iter().find_map(|r| match r.action {
        ScsiAction::NoResponse { abort } if r.matches(op, extent) => Some(abort),
        _ => None,
    })
}

/// A uniform value in `[0, 1)`, a pure function of its arguments.
pub fn decide(seed: u64, path: &str, op: ScsiOp, seq: u64, rule_index: usize) -> f64 {
    let h = hash(&[
        seed,
        name_hash(path),
        op as u64 + 0x5c51,
        seq,
        rule_index as u64,
    ]);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(values: &[u64]) -> u64 {
    values
        .iter()
        .fold(0x5343_5349_5041_5448, |h, &v| splitmix64(h ^ splitmix64(v)))
}

/// FNV-1a of a name.
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIUM: ScsiAction = ScsiAction::CheckCondition {
        key: 3,
        asc: 0x11,
        ascq: 0,
    };

    #[test]
    fn rules_match_by_op_and_overlapping_blocks() {
        let r = ScsiRule::new(MEDIUM)
            .ops(&[ScsiOp::Read])
            .lba_range(100, 10);
        assert!(r.matches(ScsiOp::Read, Some((105, 1))));
        assert!(r.matches(ScsiOp::Read, Some((95, 6))));
        assert!(!r.matches(ScsiOp::Read, Some((95, 5))));
        assert!(!r.matches(ScsiOp::Read, Some((110, 8))));
        assert!(!r.matches(ScsiOp::Write, Some((105, 1))));
        assert!(!r.matches(ScsiOp::Read, None));
        let all = ScsiRule::new(MEDIUM);
        assert!(all.matches(ScsiOp::Other, None));
    }

    #[test]
    fn first_rule_per_class_wins_and_hold_excludes_the_rest() {
        let busy = ScsiRule::new(ScsiAction::Status(ScsiStatus::Busy));
        let p = plan(
            &[ScsiRule::new(MEDIUM), busy.clone()],
            1,
            "a",
            ScsiOp::Read,
            0,
            Some((0, 1)),
        );
        assert_eq!(
            p.fail,
            Some(Failure::Sense {
                key: 3,
                asc: 0x11,
                ascq: 0
            })
        );
        // a first error rule that never fires still shadows the second
        let p = plan(
            &[ScsiRule::new(MEDIUM).probability(0.0), busy.clone()],
            1,
            "a",
            ScsiOp::Read,
            0,
            Some((0, 1)),
        );
        assert!(p.is_clean());
        let lat = ScsiRule::new(ScsiAction::Latency(LatencyDist::Fixed(
            Duration::from_millis(5),
        )));
        let p = plan(&[busy.clone(), lat.clone()], 1, "a", ScsiOp::Other, 0, None);
        assert_eq!(p.delay, Some(Duration::from_millis(5)));
        assert_eq!(p.fail, Some(Failure::Status(ScsiStatus::Busy)));
        let hold = ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Ignore,
        });
        let p = plan(&[busy, lat, hold], 1, "a", ScsiOp::Other, 0, None);
        assert_eq!(p.hold, Some(AbortPolicy::Ignore));
        assert_eq!((p.delay, p.fail), (None, None));
    }

    #[test]
    fn probabilities_are_deterministic_and_about_right() {
        let rule = [ScsiRule::new(MEDIUM).probability(0.25)];
        let fails = |seed| {
            (0..4000)
                .filter(|&seq| {
                    plan(&rule, seed, "p0", ScsiOp::Read, seq, Some((0, 8)))
                        .fail
                        .is_some()
                })
                .collect::<Vec<u64>>()
        };
        let a = fails(9);
        assert_eq!(a, fails(9));
        assert_ne!(a, fails(10));
        assert!((900..1100).contains(&a.len()), "{}", a.len());
        assert_ne!(
            decide(1, "p0", ScsiOp::Read, 3, 0),
            decide(1, "p1", ScsiOp::Read, 3, 0)
        );
    }

    #[test]
    fn a_held_command_is_released_when_no_hold_rule_matches_it() {
        let hold = ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Honour,
        })
        .ops(&[ScsiOp::Read]);
        assert_eq!(
            still_held(std::slice::from_ref(&hold), ScsiOp::Read, Some((0, 1))),
            Some(AbortPolicy::Honour)
        );
        assert_eq!(still_held(&[hold], ScsiOp::Write, Some((0, 1))), None);
        assert_eq!(still_held(&[], ScsiOp::Read, Some((0, 1))), None);
    }
}
