//! Typed device-mapper targets and tables.
//!
//! Every table pathrig loads is built from these values and rendered to the kernel's text form in
//! exactly one place ([`Target::params`]), so no format strings for dm tables live anywhere else.

use std::fmt;

use serde::Serialize;

/// A block device number as the kernel prints it in tables and status lines (`major:minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub fn new(major: u32, minor: u32) -> Self {
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

/// Path selector of a multipath priority group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Selector {
    RoundRobin,
    QueueLength,
    ServiceTime,
}

impl Selector {
    /// The kernel's name of the selector (and of its module, with a `dm-` prefix).
    pub fn kernel_name(self) -> &'static str {
        match self {
            Selector::RoundRobin => "round-robin",
            Selector::QueueLength => "queue-length",
            Selector::ServiceTime => "service-time",
        }
    }

    /// Per-path table arguments the selector expects after each path device.
    fn path_args(self) -> &'static [&'static str] {
        match self {
            // repeat_count
            Selector::RoundRobin => &["1"],
            // repeat_count
            Selector::QueueLength => &["1"],
            // repeat_count relative_throughput
            Selector::ServiceTime => &["1", "1"],
        }
    }
}

/// One priority group of a multipath table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathGroup {
    pub selector: Selector,
    pub paths: Vec<DevNum>,
}

/// The constructor arguments of a `multipath` target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Multipath {
    pub queue_if_no_path: bool,
    /// `queue_mode bio`: needed when the paths are bio-based dm devices (linear, flakey, delay).
    pub bio_based: bool,
    pub groups: Vec<PathGroup>,
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
}

/// Where one class of IO of a dm-delay target goes, and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DelayClass {
    pub dev: DevNum,
    pub offset: u64,
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
        offset: u64,
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
        offset: u64,
    },
    /// Every IO fails with EIO.
    Error,
    /// Delays IO (per class, see [`Delay`]).
    Delay(Delay),
    /// Passes IO for `up_s` seconds, then misbehaves for `down_s` seconds, repeating.
    Flakey {
        dev: DevNum,
        offset: u64,
        up_s: u32,
        down_s: u32,
        features: Vec<FlakeyFeature>,
    },
    /// dm-dust: reads of listed bad blocks (of `block_size` bytes) fail once enabled; a write
    /// to a bad block clears it. Its bad blocks are set by messages ([`DustMessage`]).
    Dust {
        dev: DevNum,
        offset: u64,
        block_size: u32,
    },
    Multipath(Multipath),
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
            Target::Multipath(mp) => mp.params(),
        }
    }

    /// The device numbers this target stacks on (each once, in table order).
    pub fn dependencies(&self) -> Vec<DevNum> {
        let mut devs = match self {
            Target::Linear { dev, .. } | Target::Flakey { dev, .. } | Target::Dust { dev, .. } => {
                vec![*dev]
            }
            Target::Delay(delay) => delay.classes().iter().map(|c| c.dev).collect(),
            Target::Error => vec![],
            Target::Multipath(mp) => mp
                .groups
                .iter()
                .flat_map(|g| g.paths.iter().copied())
                .collect(),
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

/// A message to a dm-dust target (kernel 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DustMessage {
    /// Add block N to the bad block list (an error if it is there already).
    AddBadBlock(u64),
    /// Remove block N from the list (an error if it is not there).
    RemoveBadBlock(u64),
    /// Empty the list.
    ClearBadBlocks,
    /// Start failing reads of bad blocks (a new dust target passes everything: "bypass").
    Enable,
    /// Stop failing reads of bad blocks.
    Disable,
    /// Toggle quiet mode (no kernel log line per bad-block hit).
    ToggleQuiet,
}

impl fmt::Display for DustMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DustMessage::AddBadBlock(n) => write!(f, "addbadblock {n}"),
            DustMessage::RemoveBadBlock(n) => write!(f, "removebadblock {n}"),
            DustMessage::ClearBadBlocks => f.write_str("clearbadblocks"),
            DustMessage::Enable => f.write_str("enable"),
            DustMessage::Disable => f.write_str("disable"),
            DustMessage::ToggleQuiet => f.write_str("quiet"),
        }
    }
}

impl Multipath {
    fn params(&self) -> String {
        let mut features = Vec::new();
        if self.queue_if_no_path {
            features.push("queue_if_no_path");
        }
        if self.bio_based {
            features.extend(["queue_mode", "bio"]);
        }
        let mut words: Vec<String> = vec![features.len().to_string()];
        words.extend(features.iter().map(|f| f.to_string()));
        // No hardware handler; start with the first group.
        words.extend([
            "0".to_string(),
            self.groups.len().to_string(),
            "1".to_string(),
        ]);
        for group in &self.groups {
            words.push(group.selector.kernel_name().to_string());
            words.push("0".to_string()); // selector arguments
            let path_args = group.selector.path_args();
            words.push(group.paths.len().to_string());
            words.push(path_args.len().to_string());
            for path in &group.paths {
                words.push(path.to_string());
                words.extend(path_args.iter().map(|a| a.to_string()));
            }
        }
        words.join(" ")
    }
}

/// One line of a dm table: a target covering `length` sectors from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableLine {
    pub start: u64,
    pub length: u64,
    pub target: Target,
}

/// A whole dm table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table(pub Vec<TableLine>);

impl Table {
    /// A table with one target covering `sectors` sectors.
    pub fn single(sectors: u64, target: Target) -> Table {
        Table(vec![TableLine {
            start: 0,
            length: sectors,
            target,
        }])
    }

    /// `sectors` sectors mapped linearly onto `dev` (same offsets), except the `errors`
    /// ranges (`(start, length)` in sectors), which are dm-error segments — the way lvm2's
    /// test helper `error_dev` breaks part of a device. Ranges are sorted and merged here;
    /// parts past the end are cut off.
    pub fn with_error_ranges(dev: DevNum, sectors: u64, errors: &[(u64, u64)]) -> Table {
        let mut ranges: Vec<(u64, u64)> = errors
            .iter()
            .map(|&(start, len)| (start.min(sectors), start.saturating_add(len).min(sectors)))
            .filter(|(start, end)| end > start)
            .collect();
        ranges.sort_unstable();
        let mut lines = Vec::new();
        let mut at = 0;
        let mut push = |start: u64, end: u64, target: Target| {
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
                    line.start,
                    line.length,
                    line.target.type_name().to_string(),
                    line.target.params(),
                )
            })
            .collect()
    }

    /// The table in `dmsetup table` form, one line per target.
    pub fn render(&self) -> String {
        self.to_ioctl_lines()
            .iter()
            .map(|(start, len, kind, params)| {
                if params.is_empty() {
                    format!("{start} {len} {kind}")
                } else {
                    format!("{start} {len} {kind} {params}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipath_table_over_dm_legs_uses_bio_mode() {
        let target = Target::Multipath(Multipath {
            queue_if_no_path: true,
            bio_based: true,
            groups: vec![PathGroup {
                selector: Selector::RoundRobin,
                paths: vec![DevNum::new(254, 0), DevNum::new(254, 1)],
            }],
        });
        assert_eq!(
            Table::single(131072, target).render(),
            "0 131072 multipath 3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 2 1 254:0 1 254:1 1"
        );
    }

    #[test]
    fn multipath_with_two_groups_and_service_time() {
        let mp = Multipath {
            queue_if_no_path: false,
            bio_based: false,
            groups: vec![
                PathGroup {
                    selector: Selector::ServiceTime,
                    paths: vec![DevNum::new(7, 0)],
                },
                PathGroup {
                    selector: Selector::QueueLength,
                    paths: vec![DevNum::new(7, 1)],
                },
            ],
        };
        assert_eq!(
            Target::Multipath(mp).params(),
            "0 0 2 1 service-time 0 1 2 7:0 1 1 queue-length 0 1 1 7:1 1"
        );
    }

    #[test]
    fn leg_targets_render_like_dmsetup() {
        let dev = DevNum::new(7, 2);
        assert_eq!(Target::Linear { dev, offset: 0 }.params(), "7:2 0");
        assert_eq!(Target::Error.params(), "");
        assert_eq!(Table::single(8, Target::Error).render(), "0 8 error");
        assert_eq!(
            Target::Delay(Delay::All(DelayClass {
                dev,
                offset: 0,
                ms: 200
            }))
            .params(),
            "7:2 0 200"
        );
        let flakey = Target::Flakey {
            dev,
            offset: 0,
            up_s: 2,
            down_s: 1,
            features: vec![FlakeyFeature::DropWrites],
        };
        assert_eq!(flakey.params(), "7:2 0 2 1 1 drop_writes");
        assert_eq!(flakey.dependencies(), vec![dev]);
    }

    #[test]
    fn delay_in_its_three_forms() {
        let dev = DevNum::new(7, 2);
        let class = |ms| DelayClass { dev, offset: 0, ms };
        let all = Target::Delay(Delay::All(class(200)));
        assert_eq!(
            Table::single(131072, all).render(),
            "0 131072 delay 7:2 0 200"
        );
        let rw = Target::Delay(Delay::ReadWrite {
            read: class(0),
            write: class(200),
        });
        assert_eq!(rw.params(), "7:2 0 0 7:2 0 200");
        let rwf = Target::Delay(Delay::ReadWriteFlush {
            read: class(0),
            write: class(200),
            flush: class(50),
        });
        assert_eq!(rwf.params(), "7:2 0 0 7:2 0 200 7:2 0 50");
        assert_eq!(rwf.dependencies(), vec![dev]);
        // per_class picks the short form when the delays agree.
        assert_eq!(
            Target::Delay(Delay::per_class(dev, 0, 100, 100, 100)).params(),
            "7:2 0 100"
        );
        assert_eq!(
            Target::Delay(Delay::per_class(dev, 8, 0, 200, 0)).params(),
            "7:2 8 0 7:2 8 200 7:2 8 0"
        );
    }

    #[test]
    fn flakey_features_count_their_words() {
        let dev = DevNum::new(7, 2);
        let flakey = |features| Target::Flakey {
            dev,
            offset: 0,
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
        assert_eq!(
            flakey(vec![FlakeyFeature::DropWrites, corrupt]).params(),
            "7:2 0 1 4 6 drop_writes corrupt_bio_byte 32 r 255 0"
        );
        assert_eq!(
            Table::single(2048, flakey(vec![corrupt_writes])).render(),
            "0 2048 flakey 7:2 0 1 4 5 corrupt_bio_byte 1 w 0 8"
        );
    }

    #[test]
    fn error_ranges_split_the_leg_into_linear_and_error_segments() {
        let dev = DevNum::new(7, 0);
        // 64 MiB, 64 KiB broken at 1 MiB.
        assert_eq!(
            Table::with_error_ranges(dev, 131072, &[(2048, 128)]).render(),
            "0 2048 linear 7:0 0\n2048 128 error\n2176 128896 linear 7:0 2176"
        );
        // Several ranges, out of order, one at the start and one at the very end.
        assert_eq!(
            Table::with_error_ranges(dev, 4096, &[(4088, 8), (0, 8), (100, 1)]).render(),
            "0 8 error\n8 92 linear 7:0 8\n100 1 error\n101 3987 linear 7:0 101\n4088 8 error"
        );
        // Touching and overlapping ranges merge; a range past the end is cut off.
        assert_eq!(
            Table::with_error_ranges(dev, 100, &[(10, 10), (20, 5), (22, 10), (90, 50)]).render(),
            "0 10 linear 7:0 0\n10 22 error\n32 58 linear 7:0 32\n90 10 error"
        );
        // No range: the healthy table.
        assert_eq!(
            Table::with_error_ranges(dev, 100, &[]),
            Table::single(100, Target::Linear { dev, offset: 0 })
        );
        let lines = Table::with_error_ranges(dev, 100, &[(10, 10)]).to_ioctl_lines();
        assert_eq!(lines[1], (10, 10, "error".to_string(), String::new()));
    }

    #[test]
    fn dust_target_and_messages() {
        let dust = Target::Dust {
            dev: DevNum::new(7, 1),
            offset: 0,
            block_size: 512,
        };
        assert_eq!(
            Table::single(131072, dust.clone()).render(),
            "0 131072 dust 7:1 0 512"
        );
        assert_eq!(dust.dependencies(), vec![DevNum::new(7, 1)]);
        let messages: Vec<String> = [
            DustMessage::AddBadBlock(10),
            DustMessage::RemoveBadBlock(11),
            DustMessage::ClearBadBlocks,
            DustMessage::Enable,
            DustMessage::Disable,
            DustMessage::ToggleQuiet,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            messages,
            [
                "addbadblock 10",
                "removebadblock 11",
                "clearbadblocks",
                "enable",
                "disable",
                "quiet"
            ]
        );
    }

    #[test]
    fn devnum_round_trips() {
        assert_eq!(DevNum::parse("253:17"), Some(DevNum::new(253, 17)));
        assert_eq!(DevNum::parse("253"), None);
        assert_eq!(DevNum::new(8, 16).to_string(), "8:16");
    }
}
