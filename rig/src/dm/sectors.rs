//! Sizes and offsets on block devices in 512-byte sectors: the unit of every dm table start,
//! length and device offset. [`Sectors`] keeps them apart from byte counts and block numbers.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;

use serde::Serialize;

/// Bytes per sector (the one definition lives with the scenario model, which validates sizes).
pub use faults::SECTOR_BYTES;

/// A count of (or an offset in) 512-byte sectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Sectors {
    /// The whole sectors in `bytes` (rounded down; scenario sizes are validated to be aligned).
    pub const fn from_bytes(bytes: u64) -> Sectors {
        Sectors(bytes / SECTOR_BYTES)
    }

    pub const fn bytes(self) -> u64 {
        self.0 * SECTOR_BYTES
    }

    pub fn min(self, other: Sectors) -> Sectors {
        Sectors(self.0.min(other.0))
    }

    pub fn saturating_add(self, other: Sectors) -> Sectors {
        Sectors(self.0.saturating_add(other.0))
    }
}

impl Add for Sectors {
    type Output = Sectors;
    fn add(self, rhs: Sectors) -> Sectors {
        Sectors(self.0 + rhs.0)
    }
}

impl Sub for Sectors {
    type Output = Sectors;
    fn sub(self, rhs: Sectors) -> Sectors {
        Sectors(self.0 - rhs.0)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Sectors {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Sectors, Self::Err> {
        s.parse().map(Sectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_sectors() {
        assert_eq!(Sectors::from_bytes(64 << 20), Sectors(131072));
        assert_eq!(Sectors(8).bytes(), 4096);
        assert_eq!(Sectors(10) - Sectors(4) + Sectors(1), Sectors(7));
        assert_eq!("2048".parse::<Sectors>().unwrap().to_string(), "2048");
    }
}
