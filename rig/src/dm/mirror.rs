//! Typed values of the kernel's `mirror` target (dm-raid1): its table (constructor arguments)
//! and its status line, each with [`Display`](fmt::Display) in the kernel's exact text form
//! and [`FromStr`] with errors that name the word and what was expected.
//!
//! Formats (Linux 6.1, `drivers/md/dm-raid1.c` `mirror_ctr` / `mirror_status`, the logs in
//! `drivers/md/dm-log.c`):
//!
//! - Table (STATUSTYPE_TABLE, and what `mirror_ctr` takes):
//!   `<log type> <#log args> <log args>... <#mirrors> <dev> <offset>... [<#features> <feature>...]`
//!   with the log `core <region_size> [sync|nosync]` or `disk <dev> <region_size> [sync|nosync]`
//!   and the features `handle_errors` and `keep_log` (`keep_log` needs `handle_errors`).
//! - Status (STATUSTYPE_INFO):
//!   `<#mirrors> <dev>... <in_sync>/<total_regions> 1 <health chars> <#log args> <log args>`
//!   where the log part is `1 core` or `3 disk <dev> <A|D|F>`. The health characters, one per
//!   leg in table order, are `A` (alive), `F` (flush failed), `D` (a write failed), `S` (a
//!   resynchronisation failed), `R` (a read failed), `U` (unknown error); the kernel shows
//!   the first of F, D, S, R that applies, so a leg's character only ever gets "worse" until
//!   the table is reloaded.
//!
//! `block_on_error` is a log argument of the clustered/userspace logs; the 6.1 `core` and
//! `disk` logs reject it. It is modelled so that tables naming it round-trip, and the rig
//! should not load it with those two log types.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::target::DevNum;

/// How the log treats the regions at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum LogSync {
    /// Neither word: regions the log does not know as in sync are resynchronised.
    #[default]
    Default,
    /// `sync`: resynchronise every region.
    Sync,
    /// `nosync`: take every region as in sync (no initial resync).
    NoSync,
}

/// The dirty-region log of a mirror table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorLog {
    pub kind: LogKind,
    /// Region size in 512-byte sectors (a power of two).
    pub region_size: u32,
    pub sync: LogSync,
    /// See the module documentation.
    pub block_on_error: bool,
}

/// Where the log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogKind {
    /// In memory: every activation resynchronises (unless `nosync`).
    Core,
    /// On a device.
    Disk { dev: DevNum },
}

/// One leg of a mirror table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MirrorLeg {
    pub dev: DevNum,
    /// Start on the device, in sectors.
    pub offset: u64,
}

/// The constructor arguments of a `mirror` target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorTable {
    pub log: MirrorLog,
    pub legs: Vec<MirrorLeg>,
    /// `handle_errors`: failed legs are marked (and an event raised) instead of IO erroring.
    pub handle_errors: bool,
    /// `keep_log`: keep the log device when it fails (needs `handle_errors`).
    pub keep_log: bool,
}

/// What the kernel reports about one leg (its health character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LegHealth {
    /// `A`
    Alive,
    /// `D`: a write failed; the mirror is out of sync.
    Dead,
    /// `S`: a resynchronisation failed.
    Sync,
    /// `R`: a read failed (served from another leg; data unaffected).
    Read,
    /// `F`: a flush failed.
    Flush,
    /// `U`: an error of unknown type.
    Unknown,
}

impl LegHealth {
    pub fn as_char(self) -> char {
        match self {
            LegHealth::Alive => 'A',
            LegHealth::Dead => 'D',
            LegHealth::Sync => 'S',
            LegHealth::Read => 'R',
            LegHealth::Flush => 'F',
            LegHealth::Unknown => 'U',
        }
    }

    pub fn from_char(c: char) -> Option<LegHealth> {
        Some(match c {
            'A' => LegHealth::Alive,
            'D' => LegHealth::Dead,
            'S' => LegHealth::Sync,
            'R' => LegHealth::Read,
            'F' => LegHealth::Flush,
            'U' => LegHealth::Unknown,
            _ => return None,
        })
    }
}

/// The health of a disk log's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogDevHealth {
    /// `A`
    Alive,
    /// `D`: reading or writing the log failed.
    Dead,
    /// `F`: flushing the log failed.
    Flush,
}

impl LogDevHealth {
    pub fn as_char(self) -> char {
        match self {
            LogDevHealth::Alive => 'A',
            LogDevHealth::Dead => 'D',
            LogDevHealth::Flush => 'F',
        }
    }
}

/// The log part of a mirror status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogStatus {
    /// `1 core`
    Core,
    /// `3 disk <dev> <A|D|F>`
    Disk { dev: DevNum, health: LogDevHealth },
}

/// A parsed mirror status line (STATUSTYPE_INFO, the part after `start length mirror`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorStatus {
    /// The legs in table order.
    pub devices: Vec<DevNum>,
    pub in_sync_regions: u64,
    pub total_regions: u64,
    /// One per leg, like `devices`.
    pub health: Vec<LegHealth>,
    pub log: LogStatus,
}

impl MirrorStatus {
    /// Every region is in sync.
    pub fn in_sync(&self) -> bool {
        self.in_sync_regions == self.total_regions
    }

    /// The health of the leg on `dev`, if it is in the table.
    pub fn health_of(&self, dev: DevNum) -> Option<LegHealth> {
        self.devices
            .iter()
            .position(|d| *d == dev)
            .map(|i| self.health[i])
    }

    /// Every leg is `A`.
    pub fn all_alive(&self) -> bool {
        self.health.iter().all(|h| *h == LegHealth::Alive)
    }
}

impl MirrorStatus {
    /// The health of each of `legs` (a map's legs in their setup order, e.g. the table it
    /// was created with), `None` for a leg that is not in this status (removed): what a
    /// monitor indexed by leg wants, whatever legs the live table has left.
    pub fn health_by_leg(&self, legs: &[DevNum]) -> Vec<Option<LegHealth>> {
        legs.iter().map(|dev| self.health_of(*dev)).collect()
    }

    /// The log device failed (`D` or `F`); `false` for a core log.
    pub fn log_failed(&self) -> bool {
        matches!(
            self.log,
            LogStatus::Disk {
                health: LogDevHealth::Dead | LogDevHealth::Flush,
                ..
            }
        )
    }
}

impl MirrorTable {
    /// The table without the leg on `dev` (for removing a failed leg), or `None` if `dev`
    /// is not a leg or is the last one.
    pub fn without_leg(&self, dev: DevNum) -> Option<MirrorTable> {
        let index = self.legs.iter().position(|l| l.dev == dev)?;
        if self.legs.len() == 1 {
            return None;
        }
        let mut table = self.clone();
        table.legs.remove(index);
        Some(table)
    }

    /// The table with `leg` back at `index` of the setup's legs (clamped to the end), for
    /// restoring a leg that came back; the kernel resyncs it. `None` if it is in the table.
    pub fn with_leg(&self, index: usize, leg: MirrorLeg) -> Option<MirrorTable> {
        if self.legs.iter().any(|l| l.dev == leg.dev) {
            return None;
        }
        let mut table = self.clone();
        table.legs.insert(index.min(table.legs.len()), leg);
        Some(table)
    }
}

/// A mirror table or status line the parser did not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse mirror {kind} {line:?}: word {position} ({word:?}): expected {expected}")]
pub struct MirrorParseError {
    /// `table` or `status`.
    pub kind: &'static str,
    pub line: String,
    /// 1-based position of the offending word (one past the last when the line ended early).
    pub position: usize,
    /// The offending word, or `<end of line>`.
    pub word: String,
    pub expected: String,
}

struct Words<'a> {
    kind: &'static str,
    line: &'a str,
    words: Vec<&'a str>,
    next: usize,
}

impl<'a> Words<'a> {
    fn new(kind: &'static str, line: &'a str) -> Self {
        Words {
            kind,
            line,
            words: line.split_ascii_whitespace().collect(),
            next: 0,
        }
    }

    fn fail_at(&self, index: usize, expected: impl Into<String>) -> MirrorParseError {
        MirrorParseError {
            kind: self.kind,
            line: self.line.to_string(),
            position: index + 1,
            word: self
                .words
                .get(index)
                .map_or_else(|| "<end of line>".to_string(), |w| w.to_string()),
            expected: expected.into(),
        }
    }

    /// Fails on the word just taken.
    fn fail(&self, expected: impl Into<String>) -> MirrorParseError {
        self.fail_at(self.next.saturating_sub(1), expected)
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.next).copied()
    }

    fn word(&mut self, expected: &str) -> Result<&'a str, MirrorParseError> {
        match self.words.get(self.next) {
            Some(w) => {
                self.next += 1;
                Ok(w)
            }
            None => Err(self.fail_at(self.next, expected)),
        }
    }

    fn number<T: FromStr>(&mut self, expected: &str) -> Result<T, MirrorParseError> {
        let word = self.word(expected)?;
        word.parse().map_err(|_| self.fail(expected))
    }

    fn dev(&mut self, expected: &str) -> Result<DevNum, MirrorParseError> {
        let word = self.word(expected)?;
        DevNum::parse(word).ok_or_else(|| self.fail(format!("{expected} (major:minor)")))
    }

    fn end(&self) -> Result<(), MirrorParseError> {
        if self.next < self.words.len() {
            Err(self.fail_at(self.next, "end of line"))
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for MirrorTable {
    /// The kernel's form, e.g. `core 1 1024 2 254:1 0 254:2 0 1 handle_errors`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = &self.log;
        let mut args = Vec::new();
        let kind = match log.kind {
            LogKind::Core => "core",
            LogKind::Disk { dev } => {
                args.push(dev.to_string());
                "disk"
            }
        };
        args.push(log.region_size.to_string());
        match log.sync {
            LogSync::Default => {}
            LogSync::Sync => args.push("sync".into()),
            LogSync::NoSync => args.push("nosync".into()),
        }
        if log.block_on_error {
            args.push("block_on_error".into());
        }
        write!(f, "{kind} {} {}", args.len(), args.join(" "))?;
        write!(f, " {}", self.legs.len())?;
        for leg in &self.legs {
            write!(f, " {} {}", leg.dev, leg.offset)?;
        }
        let features: Vec<&str> = [
            self.handle_errors.then_some("handle_errors"),
            self.keep_log.then_some("keep_log"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !features.is_empty() {
            write!(f, " {} {}", features.len(), features.join(" "))?;
        }
        Ok(())
    }
}

impl FromStr for MirrorTable {
    type Err = MirrorParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut w = Words::new("table", line);
        let kind_word = w.word("a log type (core or disk)")?;
        let is_disk = match kind_word {
            "core" => false,
            "disk" => true,
            _ => return Err(w.fail("a log type (core or disk)")),
        };
        let log_args: usize = w.number("the number of log arguments")?;
        let (min, max) = if is_disk { (2, 4) } else { (1, 3) };
        if log_args < min || log_args > max {
            return Err(w.fail(format!(
                "the number of {kind_word} log arguments ({min} to {max})"
            )));
        }
        let kind = if is_disk {
            LogKind::Disk {
                dev: w.dev("the log device")?,
            }
        } else {
            LogKind::Core
        };
        let region_size = w.number("the region size in sectors")?;
        let mut sync = LogSync::Default;
        let mut block_on_error = false;
        for _ in min..log_args {
            match w.word("a log argument (sync, nosync or block_on_error)")? {
                "sync" if sync == LogSync::Default => sync = LogSync::Sync,
                "nosync" if sync == LogSync::Default => sync = LogSync::NoSync,
                "block_on_error" if !block_on_error => block_on_error = true,
                _ => {
                    return Err(w.fail(
                        "a log argument (sync, nosync or block_on_error, each at most once)",
                    ))
                }
            }
        }
        let leg_count: usize = w.number("the number of mirrors")?;
        if leg_count == 0 {
            return Err(w.fail("the number of mirrors (at least 1)"));
        }
        let mut legs = Vec::with_capacity(leg_count);
        for _ in 0..leg_count {
            let dev = w.dev("a mirror device")?;
            let offset = w.number("the mirror device's offset in sectors")?;
            legs.push(MirrorLeg { dev, offset });
        }
        let mut handle_errors = false;
        let mut keep_log = false;
        if w.peek().is_some() {
            let features: usize = w.number("the number of features")?;
            if features > 2 {
                return Err(w.fail("the number of features (0 to 2)"));
            }
            for _ in 0..features {
                match w.word("a feature (handle_errors or keep_log)")? {
                    "handle_errors" if !handle_errors => handle_errors = true,
                    "keep_log" if !keep_log => keep_log = true,
                    _ => {
                        return Err(
                            w.fail("a feature (handle_errors or keep_log, each at most once)")
                        )
                    }
                }
            }
            if keep_log && !handle_errors {
                return Err(w.fail("handle_errors as well (keep_log requires it)"));
            }
        }
        w.end()?;
        Ok(MirrorTable {
            log: MirrorLog {
                kind,
                region_size,
                sync,
                block_on_error,
            },
            legs,
            handle_errors,
            keep_log,
        })
    }
}

impl fmt::Display for MirrorStatus {
    /// The kernel's form without its trailing blank, e.g. `2 254:1 254:2 80/128 1 AD 1 core`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.devices.len())?;
        for dev in &self.devices {
            write!(f, " {dev}")?;
        }
        let chars: String = self.health.iter().map(|h| h.as_char()).collect();
        write!(
            f,
            " {}/{} 1 {chars}",
            self.in_sync_regions, self.total_regions
        )?;
        match self.log {
            LogStatus::Core => write!(f, " 1 core"),
            LogStatus::Disk { dev, health } => write!(f, " 3 disk {dev} {}", health.as_char()),
        }
    }
}

impl FromStr for MirrorStatus {
    type Err = MirrorParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut w = Words::new("status", line);
        let count: usize = w.number("the number of mirrors")?;
        if count == 0 {
            return Err(w.fail("the number of mirrors (at least 1)"));
        }
        let mut devices = Vec::with_capacity(count);
        for _ in 0..count {
            devices.push(w.dev("a mirror device")?);
        }
        let sync_word = w.word("<in_sync>/<total_regions>")?;
        let (in_sync, total) = sync_word
            .split_once('/')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .ok_or_else(|| w.fail("<in_sync>/<total_regions> (two numbers)"))?;
        if in_sync > total {
            return Err(w.fail("<in_sync>/<total_regions> with in_sync at most total"));
        }
        if w.word("the health field count (1)")? != "1" {
            return Err(w.fail("the health field count (1)"));
        }
        let chars = w.word("the health characters")?;
        let health: Option<Vec<LegHealth>> = chars.chars().map(LegHealth::from_char).collect();
        let health = match health {
            Some(h) if h.len() == count => h,
            _ => {
                return Err(w.fail(format!(
                    "{count} health characters, each one of A D S R F U"
                )))
            }
        };
        let log_args: usize = w.number("the number of log status arguments")?;
        let log = match (log_args, w.word("a log type (core or disk)")?) {
            (1, "core") => LogStatus::Core,
            (3, "disk") => {
                let dev = w.dev("the log device")?;
                let health = match w.word("the log device's health (A, D or F)")? {
                    "A" => LogDevHealth::Alive,
                    "D" => LogDevHealth::Dead,
                    "F" => LogDevHealth::Flush,
                    _ => return Err(w.fail("the log device's health (A, D or F)")),
                };
                LogStatus::Disk { dev, health }
            }
            _ => return Err(w.fail("`core` after 1 log argument or `disk` after 3")),
        };
        w.end()?;
        Ok(MirrorStatus {
            devices,
            in_sync_regions: in_sync,
            total_regions: total,
            health,
            log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("testdata/mirror-6.1.txt");

    /// The fixture's `kind: line` entries (blank lines and `#` comments skipped).
    fn fixture(kind: &str) -> Vec<&'static str> {
        FIXTURE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| *k == kind)
            .map(|(_, line)| line)
            .collect()
    }

    fn dev(major: u32, minor: u32) -> DevNum {
        DevNum::new(major, minor)
    }

    #[test]
    fn every_fixture_status_round_trips() {
        let lines = fixture("status");
        assert!(lines.len() >= 6, "fixture has {} status lines", lines.len());
        for line in lines {
            let status: MirrorStatus = line.parse().unwrap_or_else(|e| panic!("{e}"));
            // The kernel ends the core log's part with a blank; Display does not.
            assert_eq!(status.to_string(), line.trim_end(), "{status:?}");
        }
    }

    #[test]
    fn every_fixture_table_round_trips() {
        let lines = fixture("table");
        assert!(lines.len() >= 5, "fixture has {} table lines", lines.len());
        for line in lines {
            let table: MirrorTable = line.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(table.to_string(), line.trim_end(), "{table:?}");
        }
    }

    #[test]
    fn status_fields_are_typed() {
        let s: MirrorStatus = "3 254:1 254:2 254:3 100/128 1 ADR 3 disk 254:0 F"
            .parse()
            .unwrap();
        assert_eq!(s.devices, vec![dev(254, 1), dev(254, 2), dev(254, 3)]);
        assert_eq!((s.in_sync_regions, s.total_regions), (100, 128));
        assert_eq!(
            s.health,
            vec![LegHealth::Alive, LegHealth::Dead, LegHealth::Read]
        );
        assert_eq!(
            s.log,
            LogStatus::Disk {
                dev: dev(254, 0),
                health: LogDevHealth::Flush
            }
        );
        assert!(!s.in_sync());
        assert!(!s.all_alive());
        assert_eq!(s.health_of(dev(254, 3)), Some(LegHealth::Read));
        assert_eq!(s.health_of(dev(254, 9)), None);
    }

    #[test]
    fn every_health_char_parses_and_unknown_ones_do_not() {
        for c in "ADSRFU".chars() {
            assert_eq!(LegHealth::from_char(c).unwrap().as_char(), c);
        }
        assert_eq!(LegHealth::from_char('X'), None);
        let err = "2 254:1 254:2 1/1 1 AX 1 core"
            .parse::<MirrorStatus>()
            .unwrap_err();
        assert_eq!(err.position, 6);
        assert_eq!(err.word, "AX");
        assert!(err.expected.contains("2 health characters"), "{err}");
    }

    #[test]
    fn status_errors_name_the_word_and_what_was_expected() {
        let cases = [
            ("", 1, "<end of line>", "the number of mirrors"),
            ("2 254:1", 3, "<end of line>", "a mirror device"),
            ("2 254:1 sda 1/1 1 AA 1 core", 3, "sda", "major:minor"),
            (
                "1 254:1 12 1 A 1 core",
                3,
                "12",
                "<in_sync>/<total_regions>",
            ),
            ("1 254:1 3/2 1 A 1 core", 3, "3/2", "at most total"),
            ("1 254:1 2/2 2 A 1 core", 4, "2", "health field count"),
            ("1 254:1 2/2 1 AA 1 core", 5, "AA", "1 health characters"),
            ("1 254:1 2/2 1 A 3 core", 7, "core", "`core` after 1"),
            ("1 254:1 2/2 1 A 3 disk 254:0 X", 9, "X", "A, D or F"),
            ("1 254:1 2/2 1 A 1 core extra", 8, "extra", "end of line"),
        ];
        for (line, position, word, expected) in cases {
            let err = line.parse::<MirrorStatus>().unwrap_err();
            assert_eq!(
                (err.position, err.word.as_str()),
                (position, word),
                "{line:?}: {err}"
            );
            assert!(err.expected.contains(expected), "{line:?}: {err}");
            assert!(err.to_string().contains(&format!("{line:?}")), "{err}");
        }
    }

    #[test]
    fn table_fields_are_typed() {
        let t: MirrorTable =
            "disk 3 254:0 1024 nosync 2 254:1 0 254:2 2048 2 handle_errors keep_log"
                .parse()
                .unwrap();
        assert_eq!(
            t,
            MirrorTable {
                log: MirrorLog {
                    kind: LogKind::Disk { dev: dev(254, 0) },
                    region_size: 1024,
                    sync: LogSync::NoSync,
                    block_on_error: false,
                },
                legs: vec![
                    MirrorLeg {
                        dev: dev(254, 1),
                        offset: 0
                    },
                    MirrorLeg {
                        dev: dev(254, 2),
                        offset: 2048
                    },
                ],
                handle_errors: true,
                keep_log: true,
            }
        );
    }

    #[test]
    fn table_renders_counts_from_the_values() {
        let t = MirrorTable {
            log: MirrorLog {
                kind: LogKind::Core,
                region_size: 512,
                sync: LogSync::Sync,
                block_on_error: true,
            },
            legs: vec![MirrorLeg {
                dev: dev(8, 16),
                offset: 8,
            }],
            handle_errors: false,
            keep_log: false,
        };
        assert_eq!(t.to_string(), "core 3 512 sync block_on_error 1 8:16 8");
        assert_eq!(t.to_string().parse::<MirrorTable>().unwrap(), t);
    }

    #[test]
    fn table_errors_name_the_word_and_what_was_expected() {
        let cases = [
            ("mem 1 1024 1 254:1 0", 1, "mem", "core or disk"),
            ("core 4 1024 1 254:1 0", 2, "4", "1 to 3"),
            ("core 2 1024 fast 1 254:1 0", 4, "fast", "sync, nosync"),
            (
                "core 3 1024 sync nosync 1 254:1 0",
                5,
                "nosync",
                "each at most once",
            ),
            ("core 1 1024 0", 4, "0", "at least 1"),
            ("core 1 1024 2 254:1 0 254:2", 8, "<end of line>", "offset"),
            (
                "core 1 1024 1 254:1 0 1 keep_log",
                8,
                "keep_log",
                "requires",
            ),
            (
                "core 1 1024 1 254:1 0 1 fast",
                8,
                "fast",
                "handle_errors or keep_log",
            ),
            ("core 1 1024 1 254:1 0 0 x", 8, "x", "end of line"),
            ("disk 2 sdb 1024 1 254:1 0", 3, "sdb", "major:minor"),
        ];
        for (line, position, word, expected) in cases {
            let err = line.parse::<MirrorTable>().unwrap_err();
            assert_eq!(
                (err.position, err.word.as_str()),
                (position, word),
                "{line:?}: {err}"
            );
            assert!(err.expected.contains(expected), "{line:?}: {err}");
        }
    }

    #[test]
    fn health_by_leg_follows_the_setup_order_and_marks_removed_legs() {
        let s: MirrorStatus = "2 254:3 254:1 128/128 1 DA 3 disk 254:0 D".parse().unwrap();
        let setup = [dev(254, 1), dev(254, 2), dev(254, 3)];
        assert_eq!(
            s.health_by_leg(&setup),
            vec![Some(LegHealth::Alive), None, Some(LegHealth::Dead)]
        );
        assert!(s.log_failed());
        let core: MirrorStatus = "1 254:1 1/1 1 A 1 core".parse().unwrap();
        assert!(!core.log_failed());
    }

    #[test]
    fn legs_are_removed_and_restored_in_place() {
        let t: MirrorTable = "core 1 1024 3 254:1 0 254:2 0 254:3 0 1 handle_errors"
            .parse()
            .unwrap();
        let without = t.without_leg(dev(254, 2)).unwrap();
        assert_eq!(
            without.to_string(),
            "core 1 1024 2 254:1 0 254:3 0 1 handle_errors"
        );
        assert_eq!(without.without_leg(dev(254, 2)), None, "not a leg");
        let single = without.without_leg(dev(254, 1)).unwrap();
        assert_eq!(single.without_leg(dev(254, 3)), None, "the last leg stays");
        let back = without
            .with_leg(
                1,
                MirrorLeg {
                    dev: dev(254, 2),
                    offset: 0,
                },
            )
            .unwrap();
        assert_eq!(back, t);
        assert_eq!(t.with_leg(0, t.legs[0]), None, "already in the table");
    }

    #[test]
    fn a_zero_feature_count_parses_and_renders_without_features() {
        let t: MirrorTable = "core 1 1024 1 254:1 0 0".parse().unwrap();
        assert!(!t.handle_errors && !t.keep_log);
        assert_eq!(t.to_string(), "core 1 1024 1 254:1 0");
    }
}
