//! What every block of the region is expected to hold, and which blocks have an IO in flight.
//!
//! Owns: the per-block write generation counter, the expected state (`Unwritten`, `Known`,
//! `Uncertain` after a failed write), the rule for judging a read against it (with the
//! human-readable mismatch detail), and the one-IO-per-block-in-flight bookkeeping that keeps
//! those expectations exact.
//!
//! Memory: 8 bytes per block for the last known generation, 1 bit per block for "in flight", and
//! a small map entry only for blocks whose last write failed.

use std::collections::HashMap;

use super::codec::{self, Content};

/// What a block is expected to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockState {
    /// Never written by this workload: reads back as all zeros.
    Unwritten,
    /// Holds exactly this generation.
    Known(u64),
    /// Writes `first..=new` failed since the block last held `old` (`None` = unwritten) for
    /// certain. The kernel may or may not have written any of them, so the block holds `old` or
    /// one of `first..=new`.
    Uncertain {
        old: Option<u64>,
        first: u64,
        new: u64,
    },
}

/// The outcome of checking one successful read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Match,
    Mismatch(String),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Highest generation ever issued to the block (> its known generation).
    issued: u64,
    /// First failed generation of the current uncertainty, if the block is uncertain.
    uncertain_from: Option<u64>,
}

pub(crate) struct Tracker {
    block_size: u32,
    seed: u64,
    /// Generation the block is known to hold; 0 = unwritten.
    known: Vec<u64>,
    /// Blocks whose issued generation runs ahead of `known` (after failed writes).
    pending: HashMap<u64, Pending>,
    busy: Vec<u64>,
    busy_count: u64,
    scratch: Vec<u8>,
}

impl Tracker {
    pub(crate) fn new(blocks: u64, block_size: u32, seed: u64) -> Tracker {
        Tracker {
            block_size,
            seed,
            known: vec![0; blocks as usize],
            pending: HashMap::new(),
            busy: vec![0; (blocks as usize).div_ceil(64)],
            busy_count: 0,
            scratch: vec![0; block_size as usize],
        }
    }

    pub(crate) fn blocks(&self) -> u64 {
        self.known.len() as u64
    }

    pub(crate) fn block_size(&self) -> u32 {
        self.block_size
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn state(&self, block: u64) -> BlockState {
        let known = self.known[block as usize];
        let old = (known != 0).then_some(known);
        match self.pending.get(&block) {
            Some(Pending {
                issued,
                uncertain_from: Some(first),
            }) => BlockState::Uncertain {
                old,
                first: *first,
                new: *issued,
            },
            _ => old.map_or(BlockState::Unwritten, BlockState::Known),
        }
    }

    /// The generation the next write to `block` carries (strictly above every one issued).
    pub(crate) fn next_generation(&self, block: u64) -> u64 {
        match self.pending.get(&block) {
            Some(p) => p.issued + 1,
            None => self.known[block as usize] + 1,
        }
    }

    /// A write of `generation` (the latest issued to `block`) completed in full.
    pub(crate) fn write_succeeded(&mut self, block: u64, generation: u64) {
        self.known[block as usize] = generation;
        self.pending.remove(&block);
    }

    /// A write of `generation` (the latest issued to `block`) failed: it may or may not be on disk.
    pub(crate) fn write_failed(&mut self, block: u64, generation: u64) {
        let p = self.pending.entry(block).or_insert(Pending {
            issued: generation,
            uncertain_from: None,
        });
        p.issued = generation;
        p.uncertain_from.get_or_insert(generation);
    }

    /// Judges the content of a successful read of `block`. A read of an uncertain block that finds
    /// one of the possible contents collapses the state to it (the failed write is settled: from
    /// now on the other possibilities would be a change nobody wrote).
    pub(crate) fn check_read(&mut self, block: u64, buf: &[u8]) -> Verdict {
        let expected = self.state(block);
        let content = codec::decode(buf);
        let found_gen = match content {
            Content::Zero => Some(0),
            Content::Valid(h) if h.seed == self.seed && h.lba == block => Some(h.generation),
            _ => None,
        };
        if let Some(g) = found_gen {
            if accepts(expected, g) {
                if let BlockState::Uncertain { .. } = expected {
                    self.settle(block, g);
                }
                return Verdict::Match;
            }
        }
        Verdict::Mismatch(self.describe(block, expected, &content, buf))
    }

    fn settle(&mut self, block: u64, generation: u64) {
        self.known[block as usize] = generation;
        if let Some(p) = self.pending.get_mut(&block) {
            p.uncertain_from = None;
            if p.issued == generation {
                self.pending.remove(&block);
            }
        }
    }

    fn describe(
        &mut self,
        block: u64,
        expected: BlockState,
        content: &Content,
        buf: &[u8],
    ) -> String {
        let hi = match expected {
            BlockState::Unwritten => 0,
            BlockState::Known(g) => g,
            BlockState::Uncertain { new, .. } => new,
        };
        let issued = self.next_generation(block) - 1;
        let (found, kind) = match *content {
            Content::Zero => (
                "all zeros".to_string(),
                "lost write (block reads as never written)".to_string(),
            ),
            Content::Valid(h) => {
                let found = format!(
                    "lba {} gen {} seed {:#x}, crc ok",
                    h.lba, h.generation, h.seed
                );
                let kind = if h.seed != self.seed {
                    format!(
                        "foreign data (seed {:#x} is not this workload's {:#x})",
                        h.seed, self.seed
                    )
                } else if h.lba != block {
                    format!("misdirected IO (block holds the data of lba {})", h.lba)
                } else if h.generation < hi {
                    "lost write (older generation)".to_string()
                } else if h.generation > issued {
                    if issued == 0 {
                        "data in a block never written".to_string()
                    } else {
                        "generation newer than any write issued".to_string()
                    }
                } else {
                    "a failed write showed up after the block was read without it (late write)"
                        .to_string()
                };
                (found, kind)
            }
            Content::Corrupt {
                header,
                stored_crc,
                computed_crc,
                reason,
            } => {
                let crc = if stored_crc == computed_crc {
                    "crc ok".to_string()
                } else {
                    format!("crc BAD (stored {stored_crc:#010x}, computed {computed_crc:#010x})")
                };
                let found = format!(
                    "header lba {} gen {} seed {:#x}, {crc}",
                    header.lba, header.generation, header.seed
                );
                (found, format!("corrupt block ({reason})"))
            }
            Content::Garbage => {
                let head: Vec<String> = buf[..16].iter().map(|b| format!("{b:02x}")).collect();
                (
                    format!("no header (starts {}), crc n/a", head.join(" ")),
                    "garbage (not written by this workload)".to_string(),
                )
            }
        };
        // Byte-level diff against the newest acceptable content.
        if hi == 0 {
            self.scratch.fill(0);
        } else {
            codec::encode(&mut self.scratch, block, hi, self.seed);
        }
        let bytes = match codec::diff(&self.scratch, buf) {
            Some((first, n)) => format!(
                "; {n} of {} bytes differ from gen {hi}, first at offset {first}",
                buf.len()
            ),
            None => String::new(),
        };
        format!(
            "block {block}: expected {}; found {found}: {kind}{bytes}",
            expected_text(block, expected)
        )
    }

    /// Marks `block` in flight; false if it already is.
    pub(crate) fn claim(&mut self, block: u64) -> bool {
        let (w, bit) = ((block / 64) as usize, 1u64 << (block % 64));
        if self.busy[w] & bit != 0 {
            return false;
        }
        self.busy[w] |= bit;
        self.busy_count += 1;
        true
    }

    /// Claims `block`, or if it is in flight the next free block after it (wrapping); `None` if
    /// every block is in flight.
    pub(crate) fn claim_near(&mut self, block: u64) -> Option<u64> {
        let n = self.blocks();
        if self.busy_count >= n {
            return None;
        }
        // At most `busy_count` blocks are skipped before a free one.
        (0..=self.busy_count)
            .map(|i| (block + i) % n)
            .find(|&b| self.claim(b))
    }

    pub(crate) fn release(&mut self, block: u64) {
        let (w, bit) = ((block / 64) as usize, 1u64 << (block % 64));
        debug_assert!(self.busy[w] & bit != 0, "release of idle block {block}");
        if self.busy[w] & bit != 0 {
            self.busy[w] &= !bit;
            self.busy_count -= 1;
        }
    }
}

/// Whether a block of generation `g` (0 = all zeros) is acceptable in state `s`.
fn accepts(s: BlockState, g: u64) -> bool {
    match s {
        BlockState::Unwritten => g == 0,
        BlockState::Known(k) => g == k,
        BlockState::Uncertain { old, first, new } => {
            g == old.unwrap_or(0) || (first..=new).contains(&g)
        }
    }
}

fn expected_text(block: u64, s: BlockState) -> String {
    match s {
        BlockState::Unwritten => "unwritten (all zeros)".to_string(),
        BlockState::Known(g) => format!("lba {block} gen {g}"),
        BlockState::Uncertain { old, first, new } => {
            let old = old.map_or("unwritten (all zeros)".to_string(), |g| format!("gen {g}"));
            let new = if first == new {
                format!("gen {new}")
            } else {
                format!("gen {first}..={new}")
            };
            format!("lba {block} {old} or {new} (uncertain after failed write)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: u32 = 4096;
    const SEED: u64 = 7;

    fn img(lba: u64, generation: u64) -> Vec<u8> {
        let mut b = vec![0u8; BS as usize];
        if generation > 0 {
            codec::encode(&mut b, lba, generation, SEED);
        }
        b
    }

    fn mismatch(v: Verdict) -> String {
        match v {
            Verdict::Mismatch(d) => d,
            Verdict::Match => panic!("expected a mismatch"),
        }
    }

    #[test]
    fn unwritten_accepts_zeros_only() {
        let mut t = Tracker::new(8, BS, SEED);
        assert_eq!(t.state(2), BlockState::Unwritten);
        assert_eq!(t.check_read(2, &img(2, 0)), Verdict::Match);
        let d = mismatch(t.check_read(2, &img(2, 1)));
        assert!(d.contains("never written"), "{d}");
    }

    #[test]
    fn known_generation_and_lost_write() {
        let mut t = Tracker::new(8, BS, SEED);
        for g in 1..=3 {
            assert_eq!(t.next_generation(4), g);
            t.write_succeeded(4, g);
        }
        assert_eq!(t.state(4), BlockState::Known(3));
        assert_eq!(t.check_read(4, &img(4, 3)), Verdict::Match);
        let d = mismatch(t.check_read(4, &img(4, 2)));
        assert!(
            d.contains("lost write (older generation)") && d.contains("expected lba 4 gen 3"),
            "{d}"
        );
        assert!(
            d.contains("found lba 4 gen 2") && d.contains("crc ok"),
            "{d}"
        );
        let d = mismatch(t.check_read(4, &img(4, 0)));
        assert!(
            d.contains("lost write (block reads as never written)"),
            "{d}"
        );
        let d = mismatch(t.check_read(4, &img(4, 9)));
        assert!(d.contains("newer than any write"), "{d}");
    }

    #[test]
    fn wrong_lba_is_misdirected() {
        let mut t = Tracker::new(8, BS, SEED);
        t.write_succeeded(1, 1);
        t.write_succeeded(6, 1);
        let d = mismatch(t.check_read(1, &img(6, 1)));
        assert!(d.contains("misdirected") && d.contains("lba 6"), "{d}");
    }

    #[test]
    fn corrupt_and_foreign_and_garbage() {
        let mut t = Tracker::new(8, BS, SEED);
        t.write_succeeded(3, 2);
        let mut b = img(3, 2);
        b[1000] ^= 0xff;
        let d = mismatch(t.check_read(3, &b));
        assert!(
            d.contains("crc BAD")
                && d.contains("1 of 4096 bytes differ")
                && d.contains("offset 1000"),
            "{d}"
        );
        let mut other = vec![0u8; BS as usize];
        codec::encode(&mut other, 3, 2, SEED + 1);
        assert!(mismatch(t.check_read(3, &other)).contains("foreign data"));
        let g = vec![0x5a; BS as usize];
        assert!(mismatch(t.check_read(3, &g)).contains("garbage"));
        // None of that changed the expectation.
        assert_eq!(t.state(3), BlockState::Known(2));
    }

    #[test]
    fn uncertain_accepts_old_or_new_and_rejects_others() {
        let mut t = Tracker::new(8, BS, SEED);
        t.write_succeeded(5, 1);
        t.write_succeeded(5, 2);
        let g = t.next_generation(5);
        assert_eq!(g, 3);
        t.write_failed(5, g);
        assert_eq!(
            t.state(5),
            BlockState::Uncertain {
                old: Some(2),
                first: 3,
                new: 3
            }
        );
        for bad in [img(5, 1), img(5, 4), img(5, 0), img(4, 3)] {
            let d = mismatch(t.check_read(5, &bad));
            assert!(d.contains("uncertain after failed write"), "{d}");
            assert_eq!(
                t.state(5),
                BlockState::Uncertain {
                    old: Some(2),
                    first: 3,
                    new: 3
                }
            );
        }
        // Old content is accepted (and settles the block) ...
        let mut t2 = Tracker::new(8, BS, SEED);
        t2.write_succeeded(5, 1);
        t2.write_succeeded(5, 2);
        t2.write_failed(5, 3);
        assert_eq!(t2.check_read(5, &img(5, 2)), Verdict::Match);
        assert_eq!(t2.state(5), BlockState::Known(2));
        // ... after which the failed write showing up is a change nobody made.
        assert!(mismatch(t2.check_read(5, &img(5, 3))).contains("late write"));
        assert!(mismatch(t2.check_read(5, &img(5, 4))).contains("newer than any write"));
        // Generations keep counting up past the failed one.
        assert_eq!(t2.next_generation(5), 4);
        // New content is accepted too.
        assert_eq!(t.check_read(5, &img(5, 3)), Verdict::Match);
        assert_eq!(t.state(5), BlockState::Known(3));
        assert_eq!(t.next_generation(5), 4);
    }

    #[test]
    fn repeated_failures_widen_uncertainty_until_a_write_succeeds() {
        let mut t = Tracker::new(8, BS, SEED);
        t.write_failed(0, 1);
        t.write_failed(0, 2);
        assert_eq!(
            t.state(0),
            BlockState::Uncertain {
                old: None,
                first: 1,
                new: 2
            }
        );
        for g in [0, 1, 2] {
            let mut c = Tracker::new(8, BS, SEED);
            c.write_failed(0, 1);
            c.write_failed(0, 2);
            assert_eq!(c.check_read(0, &img(0, g)), Verdict::Match, "gen {g}");
        }
        assert!(matches!(t.check_read(0, &img(0, 3)), Verdict::Mismatch(_)));
        // Settled on gen 1, then another failure: gen 2 is no longer possible.
        assert_eq!(t.check_read(0, &img(0, 1)), Verdict::Match);
        t.write_failed(0, t.next_generation(0));
        assert_eq!(
            t.state(0),
            BlockState::Uncertain {
                old: Some(1),
                first: 3,
                new: 3
            }
        );
        assert!(matches!(t.check_read(0, &img(0, 2)), Verdict::Mismatch(_)));
        t.write_succeeded(0, 4);
        assert_eq!(t.state(0), BlockState::Known(4));
        assert_eq!(t.next_generation(0), 5);
    }

    #[test]
    fn one_io_per_block() {
        let mut t = Tracker::new(4, BS, SEED);
        assert!(t.claim(1));
        assert!(!t.claim(1));
        assert_eq!(t.claim_near(1), Some(2));
        assert_eq!(t.claim_near(3), Some(3));
        assert_eq!(t.claim_near(3), Some(0));
        assert_eq!(t.claim_near(2), None);
        t.release(2);
        assert_eq!(t.claim_near(0), Some(2));
    }
}
