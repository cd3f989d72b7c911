//! The on-disk format of one verification block, and nothing else: how a block the workload
//! writes is laid out (header + deterministic fill + CRC32), how to build one into a buffer, and
//! how to classify a buffer that came back from a read. Deciding whether what was read is what
//! *should* be there is the tracker's job ([`super::tracker`]).
//!
//! Layout (little-endian), `block_size` bytes:
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 8    | magic `b"PRIGBLK1"`                                      |
//! | 8      | 8    | block index (LBA in units of `block_size`)               |
//! | 16     | 8    | write generation of this block (1 = first write)         |
//! | 24     | 8    | workload seed                                            |
//! | 32     | 4    | block size in bytes                                      |
//! | 36     | 4    | CRC32 (crc32fast) of the whole block with this field = 0 |
//! | 40     | ...  | fill: a splitmix64 stream keyed by (seed, lba, generation) |

pub(crate) const MAGIC: [u8; 8] = *b"PRIGBLK1";
pub(crate) const HEADER_LEN: usize = 40;
const OFF_LBA: usize = 8;
const OFF_GEN: usize = 16;
const OFF_SEED: usize = 24;
const OFF_BSIZE: usize = 32;
const OFF_CRC: usize = 36;

/// The identifying fields of a block header as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub lba: u64,
    pub generation: u64,
    pub seed: u64,
    pub block_size: u32,
}

/// What a buffer read back from the device turned out to hold, judged on its own (without
/// knowing what was expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Every byte is zero: a block never written (the device starts zeroed).
    Zero,
    /// Our magic, a matching CRC, the right size field and the right fill.
    Valid(Header),
    /// Our magic, but the block does not check out; `header` holds the fields as found (they
    /// may themselves be damaged).
    Corrupt {
        header: Header,
        stored_crc: u32,
        computed_crc: u32,
        reason: &'static str,
    },
    /// Not zero and no magic: not a block this workload wrote (or its header is destroyed).
    Garbage,
}

/// Writes the block for (`lba`, `generation`, `seed`) into `buf`; `buf.len()` is the block
/// size (a multiple of 8, at least 512).
pub(crate) fn encode(buf: &mut [u8], lba: u64, generation: u64, seed: u64) {
    assert!(
        buf.len() >= 512 && buf.len() % 8 == 0,
        "bad block size {}",
        buf.len()
    );
    buf[0..8].copy_from_slice(&MAGIC);
    buf[OFF_LBA..OFF_LBA + 8].copy_from_slice(&lba.to_le_bytes());
    buf[OFF_GEN..OFF_GEN + 8].copy_from_slice(&generation.to_le_bytes());
    buf[OFF_SEED..OFF_SEED + 8].copy_from_slice(&seed.to_le_bytes());
    let size = buf.len() as u32;
    buf[OFF_BSIZE..OFF_BSIZE + 4].copy_from_slice(&size.to_le_bytes());
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&[0; 4]);
    let key = fill_key(seed, lba, generation);
    for (i, word) in buf[HEADER_LEN..].chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&fill_word(key, i).to_le_bytes());
    }
    let crc = block_crc(buf);
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Classifies a buffer read back from the device.
pub(crate) fn decode(buf: &[u8]) -> Content {
    if buf[0..8] != MAGIC {
        return if is_zero(buf) {
            Content::Zero
        } else {
            Content::Garbage
        };
    }
    let header = Header {
        lba: u64_at(buf, OFF_LBA),
        generation: u64_at(buf, OFF_GEN),
        seed: u64_at(buf, OFF_SEED),
        block_size: u32::from_le_bytes(buf[OFF_BSIZE..OFF_BSIZE + 4].try_into().unwrap()),
    };
    let stored_crc = u32::from_le_bytes(buf[OFF_CRC..OFF_CRC + 4].try_into().unwrap());
    let computed_crc = block_crc(buf);
    let corrupt = |reason| Content::Corrupt {
        header,
        stored_crc,
        computed_crc,
        reason,
    };
    if stored_crc != computed_crc {
        return corrupt("crc mismatch");
    }
    if header.block_size as usize != buf.len() {
        return corrupt("crc ok but block size field is wrong");
    }
    let key = fill_key(header.seed, header.lba, header.generation);
    let fill_ok = buf[HEADER_LEN..]
        .chunks_exact(8)
        .enumerate()
        .all(|(i, word)| word == fill_word(key, i).to_le_bytes());
    if !fill_ok {
        return corrupt("crc ok but fill does not match the header");
    }
    Content::Valid(header)
}

/// Number of differing bytes between `a` and `b` (same length) and the offset of the first.
pub(crate) fn diff(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    let mut first = None;
    let mut count = 0;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            first.get_or_insert(i);
            count += 1;
        }
    }
    first.map(|f| (f, count))
}

/// Compared against in whole chunks: `memcmp` is many times faster than a byte loop, and the
/// random-read workload checks every never-written block this way.
static ZEROS: [u8; 4096] = [0; 4096];

pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

fn block_crc(buf: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[..OFF_CRC]);
    h.update(&[0; 4]);
    h.update(&buf[OFF_CRC + 4..]);
    h.finalize()
}

fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().unwrap())
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fill_key(seed: u64, lba: u64, generation: u64) -> u64 {
    splitmix64(seed ^ splitmix64(lba ^ splitmix64(generation)))
}

fn fill_word(key: u64, index: usize) -> u64 {
    splitmix64(key.wrapping_add((index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_sees_a_set_byte_anywhere() {
        for size in [512usize, 4096, 8192, 1 << 20] {
            let mut buf = vec![0u8; size];
            assert!(is_zero(&buf));
            for at in [0, size / 2, size - 1] {
                buf[at] = 1;
                assert!(!is_zero(&buf), "byte {at} of {size}");
                buf[at] = 0;
            }
        }
    }

    fn block(lba: u64, generation: u64) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        encode(&mut b, lba, generation, 42);
        b
    }

    #[test]
    fn round_trip() {
        for &bs in &[512usize, 4096, 65536] {
            let mut b = vec![0u8; bs];
            encode(&mut b, 123, 7, 99);
            assert_eq!(
                decode(&b),
                Content::Valid(Header {
                    lba: 123,
                    generation: 7,
                    seed: 99,
                    block_size: bs as u32
                })
            );
        }
    }

    #[test]
    fn zero_and_garbage() {
        assert_eq!(decode(&[0u8; 512]), Content::Zero);
        let mut g = [0u8; 512];
        g[300] = 1;
        assert_eq!(decode(&g), Content::Garbage);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let good = block(5, 3);
        // Every byte of the header (incl. the CRC itself) and a spread of the fill.
        for off in (0..HEADER_LEN)
            .chain((HEADER_LEN..4096).step_by(97))
            .chain([4095])
        {
            let mut b = good.clone();
            b[off] ^= 0x10;
            match decode(&b) {
                Content::Corrupt { .. } | Content::Garbage => {}
                other => panic!("flip at {off} not detected: {other:?}"),
            }
            assert_eq!(diff(&good, &b), Some((off, 1)));
        }
    }

    #[test]
    fn fill_differs_between_blocks_and_generations() {
        let a = block(5, 3);
        assert_ne!(a[HEADER_LEN..], block(5, 4)[HEADER_LEN..]);
        assert_ne!(a[HEADER_LEN..], block(6, 3)[HEADER_LEN..]);
        // A header transplanted onto another block's fill (with a fixed-up CRC) is caught.
        let mut forged = block(6, 3);
        forged[..HEADER_LEN].copy_from_slice(&a[..HEADER_LEN]);
        forged[OFF_CRC..OFF_CRC + 4].copy_from_slice(&[0; 4]);
        let crc = block_crc(&forged);
        forged[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        assert!(
            matches!(decode(&forged), Content::Corrupt { reason, .. } if reason.contains("fill"))
        );
    }
}
