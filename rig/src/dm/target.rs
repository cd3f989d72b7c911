//! Typed device-mapper targets and tables.
//!
//! Every table pathrig loads is built from these values and rendered to the kernel's text form in
//! exactly one place (the `Display` impls here and of [`MultipathTable`]), so no format strings
//! for dm tables live anywhere else. The `FromStr` impls read tables back as the kernel prints
//! them (`dmsetup table`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::multipath::MultipathTable;
use super::sectors::Sectors;

/// A block device number as the kernel prints it in tables and status lines (`major:minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub const fn new(major: u32, minor: u32) -> Self {
        DevNum { major, minor }
    }

    /// Parses `"253:4"`.
    pub fn parse(text: &str) -> Option<DevNum> {
        let (major, minor) = text.split_once(':')?;
        Some(DevNum::new(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A table (or one target's parameters) that is not what pathrig reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {what_table} table {line:?}: {what}")]
pub struct TableParseError {
    /// The target type (or `dm` for a whole line).
    pub what_table: String,
    pub line: String,
    pub what: String,
}

/// A cursor over the words of a table or status line, with errors that quote the line.
pub(crate) struct Words<'a> {
    kind: &'a str,
    line: &'a str,
    iter: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Words<'a> {
    pub(crate) fn new(kind: &'a str, line: &'a str) -> Words<'a> {
        Words {
            kind,
            line,
            iter: line.split_ascii_whitespace(),
        }
    }

    pub(crate) fn fail(&self, what: impl Into<String>) -> TableParseError {
        TableParseError {
            what_table: self.kind.to_string(),
            line: self.line.to_string(),
            what: what.into(),
        }
    }

    pub(crate) fn word(&mut self, what: &str) -> Result<&'a str, TableParseError> {
        self.iter
            .next()
            .ok_or_else(|| self.fail(format!("line ends before {what}")))
    }

    pub(crate) fn peek(&self) -> Option<&'a str> {
        self.iter.clone().next()
    }

    pub(crate) fn number<T: FromStr>(&mut self, what: &str) -> Result<T, TableParseError> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.fail(format!("{what} is {word:?}, not a number")))
    }

    pub(crate) fn dev(&mut self, what: &str) -> Result<DevNum, TableParseError> {
        let word = self.word(what)?;
        DevNum::parse(word).ok_or_else(|| self.fail(format!("{what} {word:?} is not major:minor")))
    }

    pub(crate) fn words(
        &mut self,
        count: usize,
        what: &str,
    ) -> Result<Vec<String>, TableParseError> {
        (0..count)
            .map(|_| self.word(what).map(str::to_string))
            .collect()
    }

    pub(crate) fn end(&mut self) -> Result<(), TableParseError> {
        match self.iter.next() {
            Some(extra) => Err(self.fail(format!("unexpected trailing word {extra:?}"))),
            None => Ok(()),
        }
    }
}

/// The direction of bios a dm-flakey `corrupt_bio_byte` feature applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BioDir {
    Read,
    Write,
}

/// Optional behaviours of dm-flakey during its down interval (kernel 6.1: at most one of
/// `DropWrites` / `ErrorWrites`, and neither together with a write `CorruptBioByte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FlakeyFeature {
    /// Silently drop writes (they complete successfully) instead of failing all IO; reads pass.
    DropWrites,
    /// Fail writes with an error, let reads through.
    ErrorWrites,
    /// Set byte `nth` (from 1) of every bio in direction `dir` whose flags include all of
    /// `flags` (0: every bio) to `value`.
    CorruptBioByte {
        nth: u32,
        dir: BioDir,
        value: u8,
        flags: u32,
    },
}

impl FlakeyFeature {
    /// The feature's words in the table: `drop_writes`, `corrupt_bio_byte 32 r 255 0`.
    fn words(&self) -> Vec<String> {
        match self {
            FlakeyFeature::DropWrites => vec!["drop_writes".into()],
            FlakeyFeature::ErrorWrites => vec!["error_writes".into()],
            FlakeyFeature::CorruptBioByte {
                nth,
                dir,
                value,
                flags,
            } => vec![
                "corrupt_bio_byte".into(),
                nth.to_string(),
                match dir {
                    BioDir::Read => "r".into(),
                    BioDir::Write => "w".into(),
                },
                value.to_string(),
                flags.to_string(),
            ],
        }
    }

    /// Reads features worth `count` words.
    fn parse_all(w: &mut Words<'_>, count: usize) -> Result<Vec<FlakeyFeature>, TableParseError> {
        let mut features = Vec::new();
        let mut left = count;
        while left > 0 {
            let (feature, used) = match w.word("a flakey feature")? {
                "drop_writes" => (FlakeyFeature::DropWrites, 1),
                "error_writes" => (FlakeyFeature::ErrorWrites, 1),
                "corrupt_bio_byte" => {
                    let nth = w.number("the byte to corrupt")?;
                    let dir = match w.word("the bio direction")? {
                        "r" => BioDir::Read,
                        "w" => BioDir::Write,
                        other => return Err(w.fail(format!("bio direction {other:?}"))),
                    };
                    let value = w.number("the corrupt value")?;
                    let flags = w.number("the bio flags")?;
                    (
                        FlakeyFeature::CorruptBioByte {
                            nth,
                            dir,
                            value,
                            flags,
                        },
                        5,
                    )
                }
                other => return Err(w.fail(format!("unknown flakey feature {other:?}"))),
            };
            if used > left {
                return Err(w.fail("a feature's arguments are past the feature word count"));
            }
            left -= used;
            features.push(feature);
        }
        Ok(features)
    }
}

/// Where one class of IO of a dm-delay target goes, and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DelayClass {
    pub dev: DevNum,
    pub offset: Sectors,
    pub ms: u32,
}

impl DelayClass {
    fn words(&self) -> [String; 3] {
        [
            self.dev.to_string(),
            self.offset.to_string(),
            self.ms.to_string(),
        ]
    }

    fn parse(w: &mut Words<'_>) -> Result<DelayClass, TableParseError> {
        Ok(DelayClass {
            dev: w.dev("the device")?,
            offset: w.number("the offset")?,
            ms: w.number("the delay")?,
        })
    }
}

/// The three constructor forms of dm-delay (3, 6 or 9 arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delay {
    /// `<dev> <offset> <ms>`: reads, writes and flushes alike.
    All(DelayClass),
    /// Reads, then writes; flushes are delayed like writes.
    ReadWrite { read: DelayClass, write: DelayClass },
    /// Reads, writes and flushes each on their own.
    ReadWriteFlush {
        read: DelayClass,
        write: DelayClass,
        flush: DelayClass,
    },
}

impl Delay {
    /// All three classes over `dev` from `offset`, in the shortest form that says it: one class
    /// when the three delays are equal, else all three.
    pub fn per_class(
        dev: DevNum,
        offset: Sectors,
        read_ms: u32,
        write_ms: u32,
        flush_ms: u32,
    ) -> Delay {
        let class = |ms| DelayClass { dev, offset, ms };
        if read_ms == write_ms && write_ms == flush_ms {
            Delay::All(class(read_ms))
        } else {
            Delay::ReadWriteFlush {
                read: class(read_ms),
                write: class(write_ms),
                flush: class(flush_ms),
            }
        }
    }

    fn classes(&self) -> Vec<&DelayClass> {
        match self {
            Delay::All(all) => vec![all],
            Delay::ReadWrite { read, write } => vec![read, write],
            Delay::ReadWriteFlush { read, write, flush } => vec![read, write, flush],
        }
    }
}

/// A device-mapper target with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Linear {
        dev: DevNum,
        offset: Sectors,
    },
    /// Every IO fails with EIO.
    Error,
    /// Delays IO (per class, see [`Delay`]).
    Delay(Delay),
    /// Passes IO for `up_s` seconds, then misbehaves for `down_s` seconds, repeating.
    Flakey {
        dev: DevNum,
        offset: Sectors,
        up_s: u32,
        down_s: u32,
        features: Vec<FlakeyFeature>,
    },
    /// dm-dust: reads of listed bad blocks (of `block_size` bytes) fail once enabled; a write
    /// to a bad block clears it. Its bad blocks are set by messages
    /// ([`super::message::DustMessage`]).
    Dust {
        dev: DevNum,
        offset: Sectors,
        block_size: u32,
    },
    Multipath(MultipathTable),
    /// dm-mirror (dm-raid1): every leg holds a copy ([`super::mirror`]).
    Mirror(super::mirror::MirrorTable),
}

impl Target {
    /// The kernel's target type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::Linear { .. } => "linear",
            Target::Error => "error",
            Target::Delay(_) => "delay",
            Target::Flakey { .. } => "flakey",
            Target::Dust { .. } => "dust",
            Target::Multipath(_) => "multipath",
            Target::Mirror(_) => "mirror",
        }
    }

    /// The target's constructor parameters, as the kernel expects them in a table line.
    pub fn params(&self) -> String {
        match self {
            Target::Linear { dev, offset } => format!("{dev} {offset}"),
            Target::Error => String::new(),
            Target::Delay(delay) => delay
                .classes()
                .iter()
                .flat_map(|c| c.words())
                .collect::<Vec<_>>()
                .join(" "),
            Target::Flakey {
                dev,
                offset,
                up_s,
                down_s,
                features,
            } => {
                let mut words = vec![
                    dev.to_string(),
                    offset.to_string(),
                    up_s.to_string(),
                    down_s.to_string(),
                ];
                let feature_words: Vec<String> =
                    features.iter().flat_map(FlakeyFeature::words).collect();
                if !feature_words.is_empty() {
                    // The count is of argument words, not of features.
                    words.push(feature_words.len().to_string());
                    words.extend(feature_words);
                }
                words.join(" ")
            }
            Target::Dust {
                dev,
                offset,
                block_size,
            } => format!("{dev} {offset} {block_size}"),
            Target::Multipath(mp) => mp.to_string(),
            Target::Mirror(m) => m.to_string().trim_end().to_string(),
        }
    }

    /// Reads a target of type `type_name` from its parameters, as `dmsetup table` prints them.
    pub fn parse(type_name: &str, params: &str) -> Result<Target, TableParseError> {
        let mut w = Words::new(type_name, params);
        let target = match type_name {
            "linear" => Target::Linear {
                dev: w.dev("the device")?,
                offset: w.number("the offset")?,
            },
            "error" => Target::Error,
            "delay" => {
                let read = DelayClass::parse(&mut w)?;
                if w.peek().is_none() {
                    Target::Delay(Delay::All(read))
                } else {
                    let write = DelayClass::parse(&mut w)?;
                    if w.peek().is_none() {
                        Target::Delay(Delay::ReadWrite { read, write })
                    } else {
                        let flush = DelayClass::parse(&mut w)?;
                        Target::Delay(Delay::ReadWriteFlush { read, write, flush })
                    }
                }
            }
            "flakey" => {
                let dev = w.dev("the device")?;
                let offset = w.number("the offset")?;
                let up_s = w.number("the up interval")?;
                let down_s = w.number("the down interval")?;
                // The kernel prints a feature count of 0; pathrig leaves it out.
                let features = match w.peek() {
                    None => Vec::new(),
                    Some(_) => {
                        let count = w.number("the feature word count")?;
                        FlakeyFeature::parse_all(&mut w, count)?
                    }
                };
                Target::Flakey {
                    dev,
                    offset,
                    up_s,
                    down_s,
                    features,
                }
            }
            "dust" => Target::Dust {
                dev: w.dev("the device")?,
                offset: w.number("the offset")?,
                block_size: w.number("the block size")?,
            },
            "multipath" => return params.parse().map(Target::Multipath),
            "mirror" => {
                return params.parse().map(Target::Mirror).map_err(
                    |e: super::mirror::MirrorParseError| TableParseError {
                        what_table: "mirror".into(),
                        line: params.to_string(),
                        what: e.to_string(),
                    },
                )
            }
            other => return Err(w.fail(format!("pathrig does not use target type {other:?}"))),
        };
        w.end()?;
        Ok(target)
    }

    /// The device numbers this target stacks on (each once, in table order).
    pub fn dependencies(&self) -> Vec<DevNum> {
        let mut devs = match self {
            Target::Linear { dev, .. } | Target::Flakey { dev, .. } | Target::Dust { dev, .. } => {
                vec![*dev]
            }
            Target::Delay(delay) => delay.classes().iter().map(|c| c.dev).collect(),
            Target::Error => vec![],
            Target::Multipath(mp) => mp.devices().collect(),
            Target::Mirror(m) => m.legs.iter().map(|l| l.dev).collect(),
        };
        let mut seen = Vec::new();
        devs.retain(|d| {
            let new = !seen.contains(d);
            seen.push(*d);
            new
        });
        devs
    }
}

/// One line of a dm table: a target covering `length` sectors from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableLine {
    pub start: Sectors,
    pub length: Sectors,
    pub target: Target,
}

impl fmt::Display for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.start,
            self.length,
            self.target.type_name()
        )?;
        let params = self.target.params();
        if !params.is_empty() {
            write!(f, " {params}")?;
        }
        Ok(())
    }
}

impl FromStr for TableLine {
    type Err = TableParseError;

    /// `start length type params`, the way `dmsetup table` prints a line.
    fn from_str(line: &str) -> Result<TableLine, TableParseError> {
        let mut w = Words::new("dm", line);
        let start = w.number("the start")?;
        let length = w.number("the length")?;
        let type_name = w.word("the target type")?;
        let params: Vec<&str> = std::iter::from_fn(|| w.iter.next()).collect();
        Ok(TableLine {
            start,
            length,
            target: Target::parse(type_name, &params.join(" "))?,
        })
    }
}

/// A whole dm table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table(pub Vec<TableLine>);

impl Table {
    /// A table with one target covering `length` sectors.
    pub fn single(length: Sectors, target: Target) -> Table {
        Table(vec![TableLine {
            start: Sectors(0),
            length,
            target,
        }])
    }

    /// `sectors` sectors mapped linearly onto `dev` (same offsets), except the `errors`
    /// ranges (`(start, length)`), which are dm-error segments — the way lvm2's test helper
    /// `error_dev` breaks part of a device. Ranges are sorted and merged here; parts past the
    /// end are cut off.
    pub fn with_error_ranges(
        dev: DevNum,
        sectors: Sectors,
        errors: &[(Sectors, Sectors)],
    ) -> Table {
        let mut ranges: Vec<(Sectors, Sectors)> = errors
            .iter()
            .map(|&(start, len)| (start.min(sectors), start.saturating_add(len).min(sectors)))
            .filter(|(start, end)| end > start)
            .collect();
        ranges.sort_unstable();
        let mut lines = Vec::new();
        let mut at = Sectors(0);
        let mut push = |start: Sectors, end: Sectors, target: Target| {
            if end > start {
                lines.push(TableLine {
                    start,
                    length: end - start,
                    target,
                });
            }
        };
        let mut i = 0;
        while i < ranges.len() {
            let (start, mut end) = ranges[i];
            // Merge overlapping or touching ranges into one error segment.
            while i + 1 < ranges.len() && ranges[i + 1].0 <= end {
                end = end.max(ranges[i + 1].1);
                i += 1;
            }
            push(at, start, Target::Linear { dev, offset: at });
            push(start, end, Target::Error);
            at = end;
            i += 1;
        }
        push(at, sectors, Target::Linear { dev, offset: at });
        Table(lines)
    }

    /// The form the `devicemapper` crate's `table_load` takes.
    pub fn to_ioctl_lines(&self) -> Vec<(u64, u64, String, String)> {
        self.0
            .iter()
            .map(|line| {
                (
                    line.start.0,
                    line.length.0,
                    line.target.type_name().to_string(),
                    line.target.params(),
                )
            })
            .collect()
    }

    /// The table in `dmsetup table` form, one line per target (its `Display`).
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            line.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Table {
    type Err = TableParseError;

    /// One table line per text line (blank lines are skipped).
    fn from_str(text: &str) -> Result<Table, TableParseError> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S0: Sectors = Sectors(0);

    /// `t` renders as `text`, and `text` parses back to `t`.
    fn round_trip(t: &Table, text: &str) {
        assert_eq!(t.to_string(), text);
        assert_eq!(text.parse::<Table>().as_ref(), Ok(t), "{text}");
    }

    #[test]
    fn leg_targets_render_like_dmsetup() {
        let dev = DevNum::new(7, 2);
        let one = |target| Table::single(Sectors(8), target);
        round_trip(&one(Target::Linear { dev, offset: S0 }), "0 8 linear 7:2 0");
        assert_eq!(Target::Error.params(), "");
        round_trip(&one(Target::Error), "0 8 error");
        round_trip(
            &one(Target::Delay(Delay::All(DelayClass {
                dev,
                offset: S0,
                ms: 200,
            }))),
            "0 8 delay 7:2 0 200",
        );
        let flakey = Target::Flakey {
            dev,
            offset: S0,
            up_s: 2,
            down_s: 1,
            features: vec![FlakeyFeature::DropWrites],
        };
        assert_eq!(flakey.params(), "7:2 0 2 1 1 drop_writes");
        assert_eq!(flakey.dependencies(), vec![dev]);
        round_trip(&one(flakey), "0 8 flakey 7:2 0 2 1 1 drop_writes");
    }

    #[test]
    fn delay_in_its_three_forms() {
        let dev = DevNum::new(7, 2);
        let class = |ms| DelayClass {
            dev,
            offset: S0,
            ms,
        };
        let all = Target::Delay(Delay::All(class(200)));
        round_trip(
            &Table::single(Sectors(131072), all),
            "0 131072 delay 7:2 0 200",
        );
        let rw = Target::Delay(Delay::ReadWrite {
            read: class(0),
            write: class(200),
        });
        assert_eq!(rw.params(), "7:2 0 0 7:2 0 200");
        round_trip(
            &Table::single(Sectors(8), rw),
            "0 8 delay 7:2 0 0 7:2 0 200",
        );
        let rwf = Target::Delay(Delay::ReadWriteFlush {
            read: class(0),
            write: class(200),
            flush: class(50),
        });
        assert_eq!(rwf.params(), "7:2 0 0 7:2 0 200 7:2 0 50");
        assert_eq!(rwf.dependencies(), vec![dev]);
        round_trip(
            &Table::single(Sectors(8), rwf),
            "0 8 delay 7:2 0 0 7:2 0 200 7:2 0 50",
        );
        // per_class picks the short form when the delays agree.
        assert_eq!(
            Target::Delay(Delay::per_class(dev, S0, 100, 100, 100)).params(),
            "7:2 0 100"
        );
        assert_eq!(
            Target::Delay(Delay::per_class(dev, Sectors(8), 0, 200, 0)).params(),
            "7:2 8 0 7:2 8 200 7:2 8 0"
        );
    }

    #[test]
    fn flakey_features_count_their_words() {
        let dev = DevNum::new(7, 2);
        let flakey = |features| Target::Flakey {
            dev,
            offset: S0,
            up_s: 1,
            down_s: 4,
            features,
        };
        assert_eq!(flakey(vec![]).params(), "7:2 0 1 4");
        assert_eq!(
            flakey(vec![FlakeyFeature::ErrorWrites]).params(),
            "7:2 0 1 4 1 error_writes"
        );
        let corrupt = FlakeyFeature::CorruptBioByte {
            nth: 32,
            dir: BioDir::Read,
            value: 255,
            flags: 0,
        };
        assert_eq!(
            flakey(vec![corrupt]).params(),
            "7:2 0 1 4 5 corrupt_bio_byte 32 r 255 0"
        );
        let corrupt_writes = FlakeyFeature::CorruptBioByte {
            nth: 1,
            dir: BioDir::Write,
            value: 0,
            flags: 8,
        };
        round_trip(
            &Table::single(Sectors(8), flakey(vec![FlakeyFeature::DropWrites, corrupt])),
            "0 8 flakey 7:2 0 1 4 6 drop_writes corrupt_bio_byte 32 r 255 0",
        );
        round_trip(
            &Table::single(Sectors(2048), flakey(vec![corrupt_writes])),
            "0 2048 flakey 7:2 0 1 4 5 corrupt_bio_byte 1 w 0 8",
        );
        // The kernel prints a zero feature count.
        assert_eq!(Target::parse("flakey", "7:2 0 1 4 0"), Ok(flakey(vec![])));
        assert!(Target::parse("flakey", "7:2 0 1 4 2 drop_writes").is_err());
    }

    #[test]
    fn error_ranges_split_the_leg_into_linear_and_error_segments() {
        let dev = DevNum::new(7, 0);
        let ranges = |r: &[(u64, u64)]| -> Vec<(Sectors, Sectors)> {
            r.iter().map(|&(s, l)| (Sectors(s), Sectors(l))).collect()
        };
        // 64 MiB, 64 KiB broken at 1 MiB.
        round_trip(
            &Table::with_error_ranges(dev, Sectors(131072), &ranges(&[(2048, 128)])),
            "0 2048 linear 7:0 0\n2048 128 error\n2176 128896 linear 7:0 2176",
        );
        // Several ranges, out of order, one at the start and one at the very end.
        round_trip(
            &Table::with_error_ranges(dev, Sectors(4096), &ranges(&[(4088, 8), (0, 8), (100, 1)])),
            "0 8 error\n8 92 linear 7:0 8\n100 1 error\n101 3987 linear 7:0 101\n4088 8 error",
        );
        // Touching and overlapping ranges merge; a range past the end is cut off.
        round_trip(
            &Table::with_error_ranges(
                dev,
                Sectors(100),
                &ranges(&[(10, 10), (20, 5), (22, 10), (90, 50)]),
            ),
            "0 10 linear 7:0 0\n10 22 error\n32 58 linear 7:0 32\n90 10 error",
        );
        // No range: the healthy table.
        assert_eq!(
            Table::with_error_ranges(dev, Sectors(100), &[]),
            Table::single(Sectors(100), Target::Linear { dev, offset: S0 })
        );
        let lines =
            Table::with_error_ranges(dev, Sectors(100), &ranges(&[(10, 10)])).to_ioctl_lines();
        assert_eq!(lines[1], (10, 10, "error".to_string(), String::new()));
    }

    #[test]
    fn dust_target() {
        let dust = Target::Dust {
            dev: DevNum::new(7, 1),
            offset: S0,
            block_size: 512,
        };
        round_trip(
            &Table::single(Sectors(131072), dust.clone()),
            "0 131072 dust 7:1 0 512",
        );
        assert_eq!(dust.dependencies(), vec![DevNum::new(7, 1)]);
    }

    #[test]
    fn unknown_and_malformed_lines_are_errors() {
        for bad in [
            "0 8 striped 2 8 7:0 0 7:1 0",
            "0 8 linear 7:0",
            "0 8 linear 7:0 0 1",
            "0 8 error x",
            "x 8 error",
            "0 8 delay 7:0 0 1 7:0",
            "0 8 dust 7:0 0",
        ] {
            assert!(bad.parse::<Table>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn devnum_round_trips() {
        assert_eq!(DevNum::parse("253:17"), Some(DevNum::new(253, 17)));
        assert_eq!(DevNum::parse("253"), None);
        assert_eq!(DevNum::new(8, 16).to_string(), "8:16");
    }
}
