//! The op sequence: which operation (read or write) goes to which block next.
//!
//! Owns the only source of randomness of the workload, a `ChaCha8Rng` seeded with the config's
//! seed, so the same seed gives the same sequence of `(Op, block)` candidates regardless of
//! timing. The engine submits them in order; only when a candidate's block already has an IO in
//! flight does it substitute the next free block (see [`super::tracker::Tracker::claim_near`]),
//! which never touches the random stream.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Op;

pub(crate) struct OpGenerator {
    rng: ChaCha8Rng,
    blocks: u64,
    read_percent: u8,
    sequential: bool,
    cursor: u64,
}

impl OpGenerator {
    pub(crate) fn new(seed: u64, blocks: u64, read_percent: u8, sequential: bool) -> OpGenerator {
        assert!(blocks > 0 && read_percent <= 100);
        OpGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            blocks,
            read_percent,
            sequential,
            cursor: 0,
        }
    }

    /// The next candidate: the op is a read with probability `read_percent`%; the block is
    /// uniform over the region, or the next one in order (wrapping) when sequential.
    pub(crate) fn next_op(&mut self) -> (Op, u64) {
        let op = if self.rng.gen_range(0..100u8) < self.read_percent {
            Op::Read
        } else {
            Op::Write
        };
        let block = if self.sequential {
            let b = self.cursor;
            self.cursor = (self.cursor + 1) % self.blocks;
            b
        } else {
            self.rng.gen_range(0..self.blocks)
        };
        (op, block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(
        seed: u64,
        blocks: u64,
        read_percent: u8,
        sequential: bool,
        n: usize,
    ) -> Vec<(Op, u64)> {
        let mut g = OpGenerator::new(seed, blocks, read_percent, sequential);
        (0..n).map(|_| g.next_op()).collect()
    }

    #[test]
    fn same_seed_same_sequence() {
        for sequential in [false, true] {
            let a = take(1234, 4096, 50, sequential, 10_000);
            assert_eq!(a, take(1234, 4096, 50, sequential, 10_000));
            assert_ne!(a, take(1235, 4096, 50, sequential, 10_000));
        }
    }

    #[test]
    fn mix_and_range() {
        let ops = take(9, 100, 30, false, 20_000);
        let reads = ops.iter().filter(|(op, _)| *op == Op::Read).count();
        assert!(
            (5_000..7_000).contains(&reads),
            "{reads} reads of 20000 at 30%"
        );
        assert!(ops.iter().all(|&(_, b)| b < 100));
        let mut seen = [false; 100];
        ops.iter().for_each(|&(_, b)| seen[b as usize] = true);
        assert!(seen.iter().all(|&s| s), "random blocks cover the region");
        assert!(take(9, 100, 0, false, 1000)
            .iter()
            .all(|(op, _)| *op == Op::Write));
        assert!(take(9, 100, 100, false, 1000)
            .iter()
            .all(|(op, _)| *op == Op::Read));
    }

    #[test]
    fn sequential_walks_and_wraps() {
        let blocks: Vec<u64> = take(3, 5, 50, true, 12)
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        assert_eq!(blocks, vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
    }
}
