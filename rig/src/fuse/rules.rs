//! The fault model of the FUSE file server, as pure functions: which rules match a request,
//! what happens to it, and every random decision as a hash of the request's identity.
//!
//! Nothing here does IO or reads a clock: [`plan`] turns (rules, seed, leg, op, sequence number,
//! byte extent) into a [`Plan`], and the server carries the plan out.
//!
//! # Composition
//!
//! Rules are kept in the order given. For each *action class* (hang, latency, errno, lose,
//! corrupt) only the **first rule of that class that matches** the request counts; later rules
//! of the same class are ignored for that request, even when the first one's dice say "no".
//! The classes then compose in this fixed order:
//!
//! 1. **Hang** — the request is held until no hang rule matching it is active any more
//!    ([`super::FuseControl::clear`], or [`super::FuseControl::set_rules`] with a set that has
//!    none matching it). It is then served normally: no other rule applies to it.
//! 2. **Latency** — the request waits for the sampled delay, then goes on to 3.
//! 3. **Errno** — with its probability the request fails with the errno, and no IO is done
//!    (so a failed write stores nothing).
//! 4. **Lose** (writes only) — with its probability the write is acknowledged in full and
//!    nothing is stored. Lose wins over corrupt.
//! 5. **Corrupt** (reads and writes) — with its probability one byte in every 512 bytes of the
//!    IO is inverted: in the data returned by a read, or in the data stored by a write.
//!
//! Every decision is taken when the request arrives, so a rule change affects requests that
//! arrive after it — except hang, which is re-examined at every rule change.
//!
//! A rule matches a request when its `ops` is empty or contains the request's [`OpKind`], and
//! its `range` is `None` or overlaps the request's bytes. Flushes (`flush`, `fsync`) have no
//! byte extent: a rule with a range never matches them.
//!
//! # Determinism
//!
//! Every random decision is [`decide`]`(seed, leg, op, seq, rule index)`: a splitmix64 hash of
//! those values mapped to `[0, 1)`. `seq` counts the requests of one [`OpKind`] on one leg
//! (0, 1, 2, …), so the same seed and the same sequence of IOs give the same faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of request a fault rule can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    Read,
    Write,
    /// Both `flush` (sent at every `close`) and `fsync`/`fdatasync`.
    Flush,
}

impl OpKind {
    pub(crate) fn index(self) -> usize {
        match self {
            OpKind::Read => 0,
            OpKind::Write => 1,
            OpKind::Flush => 2,
        }
    }
}

/// One fault rule of a leg.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The request kinds it applies to; empty means all.
    pub ops: Vec<OpKind>,
    /// `(byte offset, length)`: only IOs overlapping these bytes match. `None` is the whole file.
    pub range: Option<(u64, u64)>,
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for every request kind over the whole file.
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            ops: Vec::new(),
            range: None,
            action,
        }
    }

    /// Restricts the rule to these request kinds.
    pub fn ops(mut self, ops: &[OpKind]) -> FaultRule {
        self.ops = ops.to_vec();
        self
    }

    /// Restricts the rule to IOs overlapping `len` bytes from `offset`.
    pub fn range(mut self, offset: u64, len: u64) -> FaultRule {
        self.range = Some((offset, len));
        self
    }

    /// Whether the rule selects a request of kind `op` over `extent` (`(offset, len)`, `None`
    /// for flushes). The action's own restriction (lose: writes only, corrupt: no flushes) is
    /// part of the match.
    pub fn matches(&self, op: OpKind, extent: Option<(u64, u64)>) -> bool {
        if !self.ops.is_empty() && !self.ops.contains(&op) {
            return false;
        }
        let action_applies = match self.action {
            FaultAction::Lose { .. } => op == OpKind::Write,
            FaultAction::Corrupt { .. } => op != OpKind::Flush,
            _ => true,
        };
        if !action_applies {
            return false;
        }
        match (self.range, extent) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((start, len)), Some((offset, size))) => overlaps(start, len, offset, size),
        }
    }
}

/// Whether `[a, a + alen)` and `[b, b + blen)` share a byte (saturating at `u64::MAX`).
fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    alen > 0 && blen > 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// What a rule does to the requests it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Fail with `errno` (a positive value such as `libc::EIO`; anything else becomes EIO) with
    /// probability `probability`.
    Errno { errno: i32, probability: f64 },
    /// Delay the request, then serve it (and let the errno, lose and corrupt rules decide).
    Latency(LatencyDist),
    /// Hold the request until no hang rule matching it is active, then serve it normally.
    Hang,
    /// Writes only: acknowledge with probability `probability` and store nothing.
    Lose { probability: f64 },
    /// With probability `probability` invert one byte in every 512 bytes of the IO: in the data
    /// a read returns, or in the data a write stores.
    Corrupt { probability: f64 },
}

impl FaultAction {
    fn class(&self) -> usize {
        match self {
            FaultAction::Hang => 0,
            FaultAction::Latency(_) => 1,
            FaultAction::Errno { .. } => 2,
            FaultAction::Lose { .. } => 3,
            FaultAction::Corrupt { .. } => 4,
        }
    }
}

/// A delay distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyDist {
    Fixed(Duration),
    /// Uniform between `min` and `max` (swapped if given the wrong way round).
    Uniform {
        min: Duration,
        max: Duration,
    },
    /// Log-normal with median `p50` and 99th percentile `p99`: `mu = ln p50`,
    /// `sigma = ln(p99 / p50) / 2.3263`. Samples are capped at [`TAIL_CAP`] × p99 (hit with a
    /// probability of about 10⁻⁷ when p99 = 10 × p50, 7·10⁻⁴ when p99 = 75 × p50). With
    /// `p99 <= p50` it is `Fixed(p50)`.
    LongTail {
        p50: Duration,
        p99: Duration,
    },
}

/// The longest long-tail delay, in multiples of p99. A leg serves its IOs concurrently, so a
/// window draws as many samples as the leg has IOs in flight times the window over the delay —
/// thousands for a 5 s window at queue depth 8 — and an uncapped heavy tail (p99 = 75 × p50 has
/// its p99.99 at 13 × p99) would turn one draw in a few thousand into a stall of seconds, which
/// is a hang, not a slow path.
pub const TAIL_CAP: f64 = 5.0;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

impl LatencyDist {
    /// The delay for the uniform variate `u` in `[0, 1)`: the distribution's quantile at `u`.
    pub fn sample(&self, u: f64) -> Duration {
        match *self {
            LatencyDist::Fixed(d) => d,
            LatencyDist::Uniform { min, max } => {
                let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
                lo + (hi - lo).mul_f64(u.clamp(0.0, 1.0))
            }
            LatencyDist::LongTail { p50, p99 } => {
                if p99 <= p50 || p50.is_zero() {
                    return p50;
                }
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z99;
                let z = normal_quantile(u.clamp(1e-12, 1.0 - 1e-12));
                let secs = p50.as_secs_f64() * (sigma * z).exp();
                Duration::from_secs_f64(secs.min(TAIL_CAP * p99.as_secs_f64()))
            }
        }
    }
}

/// The quantile function of the standard normal distribution (Acklam's rational approximation,
/// relative error below 1.2·10⁻⁹), for `p` in `(0, 1)`.
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Everything injected on one leg so far. `reads`, `writes` and `flushes` count the requests
/// that arrived; the others count the requests a fault was decided for (at arrival).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    /// Requests failed with an injected errno.
    pub errors: u64,
    /// Requests delayed by a latency rule.
    pub delayed: u64,
    /// Requests held by a hang rule.
    pub hung: u64,
    /// Of those, reads and writes (the rest were flushes).
    pub hung_reads: u64,
    pub hung_writes: u64,
    /// The most requests a hang rule held at one time: with the leg's IOs reaching the server
    /// concurrently, every matching IO in flight on the leg.
    pub max_held: u64,
    /// Writes acknowledged and not stored.
    pub lost: u64,
    /// Reads or writes whose data was corrupted.
    pub corrupted: u64,
}

/// What happens to one request, decided when it arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Plan {
    /// Held until released by a rule change; nothing else applies.
    pub hang: bool,
    pub delay: Option<Duration>,
    /// Fail with this errno (after the delay); no IO is done.
    pub errno: Option<i32>,
    /// Acknowledge the write without storing it.
    pub lose: bool,
    /// Corrupt the data, with this salt choosing the bytes (see [`corrupt`]).
    pub corrupt: Option<u64>,
}

impl Plan {
    /// Whether the request can be served right away, with no fault.
    pub fn is_clean(&self) -> bool {
        *self == Plan::default()
    }
}

/// Decides the fate of request number `seq` of kind `op` on `leg` over `extent`
/// (`(offset, len)`; `None` for flushes). See the module docs for the composition.
pub fn plan(
    rules: &[FaultRule],
    seed: u64,
    leg: &str,
    op: OpKind,
    seq: u64,
    extent: Option<(u64, u64)>,
) -> Plan {
    // The first matching rule of each class, by index.
    let mut first: [Option<usize>; 5] = [None; 5];
    for (index, rule) in rules.iter().enumerate() {
        let class = rule.action.class();
        if first[class].is_none() && rule.matches(op, extent) {
            first[class] = Some(index);
        }
    }
    let mut plan = Plan::default();
    if first[0].is_some() {
        plan.hang = true;
        return plan;
    }
    let roll = |index: usize| decide(seed, leg, op, seq, index);
    for index in first[1..].iter().flatten().copied() {
        match rules[index].action {
            FaultAction::Latency(dist) => plan.delay = Some(dist.sample(roll(index))),
            FaultAction::Errno { errno, probability } => {
                if roll(index) < probability {
                    plan.errno = Some(if errno > 0 { errno } else { libc::EIO });
                }
            }
            FaultAction::Lose { probability } => plan.lose = roll(index) < probability,
            FaultAction::Corrupt { probability } => {
                if roll(index) < probability {
                    plan.corrupt = Some(hash(&[seed, leg_hash(leg), op as u64, seq, index as u64]));
                }
            }
            FaultAction::Hang => unreachable!("hang is class 0"),
        }
    }
    if plan.errno.is_some() {
        // A failed request does no IO: nothing is lost or corrupted.
        plan.lose = false;
        plan.corrupt = None;
    }
    if plan.lose {
        plan.corrupt = None;
    }
    plan
}

/// Whether some hang rule in `rules` holds a request of kind `op` over `extent`.
pub fn hang_holds(rules: &[FaultRule], op: OpKind, extent: Option<(u64, u64)>) -> bool {
    rules
        .iter()
        .any(|r| r.action == FaultAction::Hang && r.matches(op, extent))
}

/// The random decision for request `seq` of kind `op` on `leg` under rule `rule_index`: a
/// uniform value in `[0, 1)`, a pure function of its arguments (splitmix64 over them).
pub fn decide(seed: u64, leg: &str, op: OpKind, seq: u64, rule_index: usize) -> f64 {
    let h = hash(&[seed, leg_hash(leg), op as u64, seq, rule_index as u64]);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Inverts one byte in every 512-byte chunk of `buf`, at a position chosen by `salt`.
pub fn corrupt(buf: &mut [u8], salt: u64) {
    for (i, chunk) in buf.chunks_mut(512).enumerate() {
        let pos = hash(&[salt, i as u64]) % chunk.len() as u64;
        chunk[pos as usize] ^= 0xff;
    }
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
        .fold(0x5041_5448_5249_4721, |h, &v| splitmix64(h ^ splitmix64(v)))
}

/// FNV-1a of the leg name.
fn leg_hash(leg: &str) -> u64 {
    leg.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn decide_is_a_pure_function_in_range() {
        for seq in 0..1000 {
            let a = decide(7, "a", OpKind::Read, seq, 0);
            assert_eq!(a, decide(7, "a", OpKind::Read, seq, 0));
            assert!((0.0..1.0).contains(&a), "{a}");
        }
    }

    #[test]
    fn every_input_changes_the_decision() {
        let base = decide(7, "a", OpKind::Read, 5, 0);
        assert_ne!(base, decide(8, "a", OpKind::Read, 5, 0));
        assert_ne!(base, decide(7, "b", OpKind::Read, 5, 0));
        assert_ne!(base, decide(7, "a", OpKind::Write, 5, 0));
        assert_ne!(base, decide(7, "a", OpKind::Read, 6, 0));
        assert_ne!(base, decide(7, "a", OpKind::Read, 5, 1));
    }

    #[test]
    fn different_seeds_fail_different_ios() {
        let failing = |seed| -> Vec<bool> {
            (0..1000)
                .map(|seq| decide(seed, "a", OpKind::Read, seq, 0) < 0.1)
                .collect()
        };
        assert_eq!(failing(1), failing(1));
        assert_ne!(failing(1), failing(2));
    }

    #[test]
    fn the_fraction_under_p_is_p() {
        const N: u64 = 100_000;
        for p in [0.001, 0.01, 0.1, 0.5, 0.9] {
            for seed in [1, 2, 99] {
                let hits = (0..N)
                    .filter(|&seq| decide(seed, "leg-a", OpKind::Write, seq, 2) < p)
                    .count() as f64;
                let expected = p * N as f64;
                // Five standard deviations of a binomial count.
                let tolerance = 5.0 * (N as f64 * p * (1.0 - p)).sqrt();
                assert!(
                    (hits - expected).abs() < tolerance,
                    "p {p} seed {seed}: {hits} hits, expected {expected} ± {tolerance}"
                );
            }
        }
    }

    #[test]
    fn the_values_are_spread_evenly() {
        let mut buckets = [0u32; 10];
        for seq in 0..100_000 {
            buckets[(decide(3, "x", OpKind::Read, seq, 0) * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((9_500..10_500).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn rules_match_by_op_and_overlapping_range() {
        let rule = FaultRule::new(FaultAction::Hang)
            .ops(&[OpKind::Read])
            .range(4096, 4096);
        assert!(rule.matches(OpKind::Read, Some((4096, 512))));
        assert!(rule.matches(OpKind::Read, Some((0, 4097))));
        assert!(rule.matches(OpKind::Read, Some((8191, 10))));
        assert!(!rule.matches(OpKind::Read, Some((0, 4096))));
        assert!(!rule.matches(OpKind::Read, Some((8192, 4096))));
        assert!(!rule.matches(OpKind::Write, Some((4096, 512))));
        assert!(!rule.matches(OpKind::Flush, None));
        let all = FaultRule::new(FaultAction::Hang);
        assert!(all.matches(OpKind::Flush, None));
        assert!(all.matches(OpKind::Write, Some((u64::MAX - 1, 4096))));
        let lose = FaultRule::new(FaultAction::Lose { probability: 1.0 });
        assert!(lose.matches(OpKind::Write, Some((0, 1))));
        assert!(!lose.matches(OpKind::Read, Some((0, 1))));
        let corrupt = FaultRule::new(FaultAction::Corrupt { probability: 1.0 });
        assert!(!corrupt.matches(OpKind::Flush, None));
    }

    fn errno(p: f64) -> FaultRule {
        FaultRule::new(FaultAction::Errno {
            errno: libc::EIO,
            probability: p,
        })
    }

    #[test]
    fn composition_latency_then_errno_and_first_rule_per_class() {
        let rules = vec![
            FaultRule::new(FaultAction::Latency(LatencyDist::Fixed(5 * MS))),
            FaultRule::new(FaultAction::Latency(LatencyDist::Fixed(50 * MS))),
            errno(1.0),
            errno(0.0),
        ];
        let p = plan(&rules, 1, "a", OpKind::Read, 0, Some((0, 4096)));
        assert_eq!(p.delay, Some(5 * MS));
        assert_eq!(p.errno, Some(libc::EIO));
        // The first errno rule decides, even when its dice say no.
        let rules = vec![errno(0.0), errno(1.0)];
        assert_eq!(
            plan(&rules, 1, "a", OpKind::Read, 0, Some((0, 1))).errno,
            None
        );
        // A rule that does not match leaves the next one of its class in charge.
        let rules = vec![errno(1.0).ops(&[OpKind::Write]), errno(1.0).range(0, 10)];
        assert!(plan(&rules, 1, "a", OpKind::Read, 0, Some((0, 1)))
            .errno
            .is_some());
        assert!(plan(&rules, 1, "a", OpKind::Read, 0, Some((10, 1)))
            .errno
            .is_none());
    }

    #[test]
    fn composition_hang_first_errno_over_lose_over_corrupt() {
        let hang_and_errno = vec![errno(1.0), FaultRule::new(FaultAction::Hang)];
        let p = plan(&hang_and_errno, 1, "a", OpKind::Read, 0, Some((0, 1)));
        assert_eq!(
            p,
            Plan {
                hang: true,
                ..Plan::default()
            }
        );
        let lose = FaultRule::new(FaultAction::Lose { probability: 1.0 });
        let corrupt = FaultRule::new(FaultAction::Corrupt { probability: 1.0 });
        let w = Some((0, 4096));
        let p = plan(
            &[corrupt.clone(), lose.clone(), errno(1.0)],
            1,
            "a",
            OpKind::Write,
            0,
            w,
        );
        assert!(p.errno.is_some() && !p.lose && p.corrupt.is_none());
        let p = plan(&[corrupt.clone(), lose], 1, "a", OpKind::Write, 0, w);
        assert!(p.lose && p.corrupt.is_none());
        let p = plan(&[corrupt], 1, "a", OpKind::Read, 0, w);
        assert!(p.corrupt.is_some());
        assert!(plan(&[], 1, "a", OpKind::Read, 0, w).is_clean());
    }

    #[test]
    fn hang_holds_only_matching_requests() {
        let rules = vec![FaultRule::new(FaultAction::Hang).ops(&[OpKind::Write])];
        assert!(hang_holds(&rules, OpKind::Write, Some((0, 1))));
        assert!(!hang_holds(&rules, OpKind::Read, Some((0, 1))));
        assert!(!hang_holds(&[], OpKind::Write, Some((0, 1))));
    }

    #[test]
    fn corrupt_changes_one_byte_per_sector_and_is_deterministic() {
        let mut a = vec![0u8; 4096];
        corrupt(&mut a, 42);
        let changed = a.iter().filter(|&&b| b != 0).count();
        assert_eq!(changed, 8);
        for sector in a.chunks(512) {
            assert_eq!(sector.iter().filter(|&&b| b != 0).count(), 1);
        }
        let mut b = vec![0u8; 4096];
        corrupt(&mut b, 42);
        assert_eq!(a, b);
        let mut short = vec![7u8; 3];
        corrupt(&mut short, 1);
        assert_ne!(short, vec![7u8; 3]);
    }

    #[test]
    fn latency_distributions() {
        assert_eq!(LatencyDist::Fixed(7 * MS).sample(0.3), 7 * MS);
        let uniform = LatencyDist::Uniform {
            min: 10 * MS,
            max: 20 * MS,
        };
        assert_eq!(uniform.sample(0.0), 10 * MS);
        assert_eq!(uniform.sample(0.5), 15 * MS);
        let swapped = LatencyDist::Uniform {
            min: 20 * MS,
            max: 10 * MS,
        };
        assert_eq!(swapped.sample(0.5), 15 * MS);

        let tail = LatencyDist::LongTail {
            p50: 2 * MS,
            p99: 40 * MS,
        };
        const N: usize = 100_000;
        let mut samples: Vec<Duration> = (0..N)
            .map(|i| tail.sample((i as f64 + 0.5) / N as f64))
            .collect();
        samples.sort();
        let close = |got: Duration, want: Duration| {
            let ratio = got.as_secs_f64() / want.as_secs_f64();
            assert!((0.97..1.03).contains(&ratio), "{got:?} vs {want:?}");
        };
        close(samples[N / 2], 2 * MS);
        close(samples[N * 99 / 100], 40 * MS);
        assert!(*samples.last().unwrap() <= 200 * MS);
        // The cap: p99 = 75 × p50 reaches 5 × p99 at the 99.93th percentile.
        let heavy = LatencyDist::LongTail {
            p50: 2 * MS,
            p99: 150 * MS,
        };
        assert_eq!(heavy.sample(0.9999), 750 * MS);
        assert!(heavy.sample(0.999) < 750 * MS);
        assert_eq!(
            LatencyDist::LongTail {
                p50: 5 * MS,
                p99: 5 * MS
            }
            .sample(0.99),
            5 * MS
        );
    }

    #[test]
    fn normal_quantile_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.99) - Z99).abs() < 1e-6);
        assert!((normal_quantile(0.01) + Z99).abs() < 1e-6);
        assert!((normal_quantile(0.841_344_746) - 1.0).abs() < 1e-6);
    }
}
