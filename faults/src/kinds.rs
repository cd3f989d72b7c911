//! Fault kinds: what can be done to a leg, and their parameters.
//!
//! Everything about a kind lives in this file. To add one: add a variant to
//! [`FaultKind`], an arm to [`FaultKind::name`], and one [`KindDef`] entry in
//! [`KINDS`] giving its [`Layer`], its parameters and the function that decodes
//! and validates them. Unknown kinds, parameters given to the wrong kind, a
//! kind on a leg that lacks its layer, and the overlap rules are all driven
//! from that table, so nothing else in the parser needs to change.
//!
//! Two layers of kinds exist. **dm kinds** (`fail`, `delay`, `flakey`,
//! `error_range`, `dust`) swap or message the leg's dm device, so they need a
//! dm layer, and on one leg they may not overlap: each replaces the leg's
//! table. **FUSE kinds** (`errno`, `latency`, `hang`, `lose`, `corrupt`) act in
//! the FUSE file server under a leg with `backend = "fuse"`; on one leg they
//! may overlap, and then compose (latency + errno: slow, and sometimes
//! failing). `restore` and `kernel_fail` act on the leg as a whole.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::de::DeValue;

use crate::diag::Report;
use crate::reader::{as_int, describe, one_of, type_error, Got, Sp, Table, Value};
use crate::scsi::{AbortPolicy, ScsiStatusCode, Sense};
use crate::units::{format_duration, format_size};

/// What a fault does to its leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kind = "fail"`: the leg becomes a dm-error target.
    Fail,
    /// `kind = "delay"`: dm-delay. `ms = 200` delays every IO; `read_ms`,
    /// `write_ms`, `flush_ms` (any subset, the others 0) delay each class on its own.
    Delay {
        read_ms: u32,
        write_ms: u32,
        flush_ms: u32,
    },
    /// `kind = "flakey"`, `up = "1s"`, `down = "1s"`: dm-flakey; the leg
    /// passes IO for `up`, then misbehaves for `down`, repeating (whole
    /// seconds). Without features every IO fails while down; the features
    /// change that (see [`FaultKind::flakey_down_behaviour`]).
    Flakey {
        up: Duration,
        down: Duration,
        /// While down, writes complete successfully but are not stored; reads pass.
        drop_writes: bool,
        /// While down, writes fail; reads pass.
        error_writes: bool,
        /// While down, the Nth byte of matching bios is overwritten.
        corrupt_bio_byte: Option<CorruptBioByte>,
    },
    /// `kind = "error_range"`: IO touching one of the byte ranges fails (a
    /// dm-error segment), the rest of the leg works (dm-linear segments).
    /// Ranges are 512-byte aligned, sorted, and do not overlap.
    ErrorRange { ranges: Vec<ByteRange> },
    /// `kind = "dust"`: the leg becomes a dm-dust target whose bad blocks are
    /// exactly `bad_blocks` (sorted), in units of `block_size` bytes. A read
    /// of a bad block fails; a write to one succeeds and clears it (dust's
    /// semantics: the drive remapped the sector).
    Dust {
        bad_blocks: Vec<u64>,
        block_size: u32,
        /// dm-dust's quiet mode: no kernel log line per bad-block hit.
        quiet: bool,
    },
    /// `kind = "restore"`: back to the healthy table.
    Restore,
    /// `kind = "kernel_fail"`: the kernel fails the path (a `fail_path` message to the map, as
    /// after a trespass by another node) while the leg itself keeps working. Instantaneous.
    KernelFail,
    /// `kind = "errno"` (FUSE): matching IOs fail with `errno`, each with `probability`.
    Errno {
        errno: Errno,
        probability: Probability,
        op: IoOp,
        range: Option<ByteRange>,
    },
    /// `kind = "latency"` (FUSE): matching IOs are answered late.
    Latency { latency: LatencyDist, op: IoOp },
    /// `kind = "hang"` (FUSE): matching IOs are held until the fault's window
    /// ends (or, without `for`, until a `restore` or the end of the run).
    Hang { op: IoOp },
    /// `kind = "lose"` (FUSE): writes are acknowledged but, with
    /// `probability`, not stored.
    Lose {
        probability: Probability,
        range: Option<ByteRange>,
    },
    /// `kind = "corrupt"` (FUSE): with `probability`, the data of a matching
    /// IO is damaged (a read returns damaged data; a write stores it).
    Corrupt {
        probability: Probability,
        op: IoOp,
        range: Option<ByteRange>,
    },
    /// `kind = "no_response"` (SCSI): with `probability`, a matching command is never answered
    /// while the fault lasts; `abort` says whether the array answers task management for it.
    NoResponse {
        abort: AbortPolicy,
        probability: Probability,
        op: IoOp,
        range: Option<ByteRange>,
    },
    /// `kind = "check_condition"` (SCSI): with `probability`, a matching command ends in CHECK
    /// CONDITION with this sense data.
    CheckCondition {
        sense: Sense,
        probability: Probability,
        op: IoOp,
        range: Option<ByteRange>,
    },
    /// `kind = "scsi_status"` (SCSI): with `probability`, a matching command ends with this
    /// status (BUSY, TASK SET FULL, RESERVATION CONFLICT).
    ScsiStatus {
        status: ScsiStatusCode,
        probability: Probability,
        op: IoOp,
        range: Option<ByteRange>,
    },
    /// `kind = "scsi_latency"` (SCSI): matching commands are answered late.
    ScsiLatency { latency: LatencyDist, op: IoOp },
    /// `kind = "port_offline"` (SCSI): the array's port of the leg goes offline, as a dead link.
    PortOffline,
}

/// Where a fault kind acts, which decides what a leg needs for it and how
/// faults on one leg may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// On the leg's dm device (table swaps, target messages): needs
    /// `dm_layer = true`; faults of this layer on one leg may not overlap.
    Dm,
    /// In the FUSE file server under the leg: needs `backend = "fuse"`;
    /// faults of this layer on one leg may overlap, and compose.
    Fuse,
    /// On the leg as a whole: `restore` (ends the leg's faults) and
    /// `kernel_fail` (on its path in the map). Timed like dm kinds: they may
    /// not fall inside another fault's window on the leg.
    Leg,
    /// In pathrig's SCSI array, on the leg's path: needs `backend = "scsi"`; like FUSE faults,
    /// they may overlap on one leg, and compose.
    Scsi,
}

impl Layer {
    /// Whether faults of this layer may overlap one another on a leg (they are rules that
    /// compose) rather than each replacing the leg's state.
    pub fn composes(self) -> bool {
        matches!(self, Layer::Fuse | Layer::Scsi)
    }
}

impl FaultKind {
    /// `kind = "delay"` with `ms`: every IO delayed alike.
    pub fn delay(ms: u32) -> FaultKind {
        FaultKind::Delay {
            read_ms: ms,
            write_ms: ms,
            flush_ms: ms,
        }
    }

    /// `kind = "flakey"` without features: every IO fails while down.
    pub fn flakey(up: Duration, down: Duration) -> FaultKind {
        FaultKind::Flakey {
            up,
            down,
            drop_writes: false,
            error_writes: false,
            corrupt_bio_byte: None,
        }
    }

    /// The `kind` string of this fault in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Fail => "fail",
            FaultKind::Delay { .. } => "delay",
            FaultKind::Flakey { .. } => "flakey",
            FaultKind::ErrorRange { .. } => "error_range",
            FaultKind::Dust { .. } => "dust",
            FaultKind::Restore => "restore",
            FaultKind::KernelFail => "kernel_fail",
            FaultKind::Errno { .. } => "errno",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Hang { .. } => "hang",
            FaultKind::Lose { .. } => "lose",
            FaultKind::Corrupt { .. } => "corrupt",
            FaultKind::NoResponse { .. } => "no_response",
            FaultKind::CheckCondition { .. } => "check_condition",
            FaultKind::ScsiStatus { .. } => "scsi_status",
            FaultKind::ScsiLatency { .. } => "scsi_latency",
            FaultKind::PortOffline => "port_offline",
        }
    }

    /// The layer this kind acts on (from the table of kinds).
    pub fn layer(&self) -> Layer {
        layer_of(self.name())
    }

    /// For `flakey`: what happens to reads and to writes during the down
    /// interval, as dm-flakey (kernel 6.1) does it: ("reads ...", "writes ...").
    pub fn flakey_down_behaviour(&self) -> Option<(String, String)> {
        let FaultKind::Flakey {
            drop_writes,
            error_writes,
            corrupt_bio_byte,
            ..
        } = self
        else {
            return None;
        };
        let corrupt = |c: &CorruptBioByte, what: &str| {
            let flags = if c.flags == 0 {
                String::new()
            } else {
                format!(" with bio flags {:#x}", c.flags)
            };
            format!("{what} get byte {} set to {}{flags}", c.nth, c.value)
        };
        let reads = match corrupt_bio_byte {
            Some(c) if c.op == BioDir::Read => corrupt(c, "reads"),
            _ if *drop_writes || *error_writes || corrupt_bio_byte.is_some() => {
                "reads pass".to_string()
            }
            _ => "reads fail".to_string(),
        };
        let writes = match corrupt_bio_byte {
            _ if *drop_writes => "writes are dropped (acknowledged, not stored)".to_string(),
            _ if *error_writes => "writes fail".to_string(),
            Some(c) if c.op == BioDir::Write => corrupt(c, "writes"),
            Some(_) => "writes pass".to_string(),
            None => "writes fail".to_string(),
        };
        Some((reads, writes))
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Delay {
                read_ms,
                write_ms,
                flush_ms,
            } => {
                if read_ms == write_ms && write_ms == flush_ms {
                    write!(f, "delay {read_ms}ms")
                } else {
                    write!(
                        f,
                        "delay read {read_ms}ms write {write_ms}ms flush {flush_ms}ms"
                    )
                }
            }
            FaultKind::Flakey {
                up,
                down,
                drop_writes,
                error_writes,
                corrupt_bio_byte,
            } => {
                write!(
                    f,
                    "flakey up {} down {}",
                    format_duration(*up),
                    format_duration(*down)
                )?;
                if *drop_writes {
                    f.write_str(" drop_writes")?;
                }
                if *error_writes {
                    f.write_str(" error_writes")?;
                }
                if let Some(c) = corrupt_bio_byte {
                    write!(f, " corrupt_bio_byte {c}")?;
                }
                Ok(())
            }
            FaultKind::ErrorRange { ranges } => {
                f.write_str("error_range")?;
                for (i, r) in ranges.iter().enumerate() {
                    write!(f, "{}{r}", if i == 0 { " " } else { ", " })?;
                }
                Ok(())
            }
            FaultKind::Dust {
                bad_blocks,
                block_size,
                ..
            } => write!(f, "dust {} of {block_size}B", block_list(bad_blocks)),
            FaultKind::Errno {
                errno,
                probability,
                op,
                range,
            } => {
                write!(f, "errno {errno} {probability} of {op}")?;
                write_range(f, range)
            }
            FaultKind::Latency { latency, op } => write!(f, "latency {latency} on {op}"),
            FaultKind::Hang { op } => write!(f, "hang {op}"),
            FaultKind::Lose { probability, range } => {
                write!(f, "lose {probability} of writes")?;
                write_range(f, range)
            }
            FaultKind::Corrupt {
                probability,
                op,
                range,
            } => {
                write!(f, "corrupt {probability} of {op}")?;
                write_range(f, range)
            }
            FaultKind::NoResponse {
                abort,
                probability,
                op,
                range,
            } => {
                write!(f, "no response to {probability} of {op}")?;
                write_range(f, range)?;
                f.write_str(match abort {
                    AbortPolicy::Honour => ", task management answered",
                    AbortPolicy::Ignore => ", task management ignored",
                })
            }
            FaultKind::CheckCondition {
                sense,
                probability,
                op,
                range,
            } => {
                write!(f, "check condition {sense} on {probability} of {op}")?;
                write_range(f, range)
            }
            FaultKind::ScsiStatus {
                status,
                probability,
                op,
                range,
            } => {
                write!(f, "status {} on {probability} of {op}", status.name())?;
                write_range(f, range)
            }
            FaultKind::ScsiLatency { latency, op } => {
                write!(f, "scsi latency {latency} on {op}")
            }
            other => f.write_str(other.name()),
        }
    }
}

fn write_range(f: &mut fmt::Formatter<'_>, range: &Option<ByteRange>) -> fmt::Result {
    match range {
        Some(r) => write!(f, " in {r}"),
        None => Ok(()),
    }
}

/// "10, 11, 200" or "none".
pub fn block_list(blocks: &[u64]) -> String {
    if blocks.is_empty() {
        return "no bad blocks".into();
    }
    let v: Vec<String> = blocks.iter().map(u64::to_string).collect();
    format!("bad blocks {}", v.join(", "))
}

/// A byte range of a leg: `offset` and `length` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

impl ByteRange {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

impl fmt::Display for ByteRange {
    /// "64KiB at 1MiB".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.offset == 0 {
            "0".to_string()
        } else {
            format_size(self.offset)
        };
        write!(f, "{} at {at}", format_size(self.length))
    }
}

/// The direction of bios dm-flakey's `corrupt_bio_byte` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BioDir {
    Read,
    Write,
}

/// dm-flakey's `corrupt_bio_byte <nth> <r|w> <value> <flags>`: during the
/// down interval, byte `nth` (counted from 1) of every matching bio is set to
/// `value`; only bios whose flags include all of `flags` match (0: every bio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptBioByte {
    pub nth: u32,
    pub op: BioDir,
    pub value: u8,
    pub flags: u32,
}

impl fmt::Display for CorruptBioByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            BioDir::Read => "read",
            BioDir::Write => "write",
        };
        write!(f, "{} {op} {} {}", self.nth, self.value, self.flags)
    }
}

/// Which IOs a FUSE fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoOp {
    Read,
    Write,
    Flush,
    Any,
}

impl IoOp {
    pub fn name(self) -> &'static str {
        match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Flush => "flush",
            IoOp::Any => "any",
        }
    }
}

impl fmt::Display for IoOp {
    /// "reads", "writes", "flushes", "every IO".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Read => "reads",
            IoOp::Write => "writes",
            IoOp::Flush => "flushes",
            IoOp::Any => "every IO",
        })
    }
}

/// A probability from 0 to 1 (validated: never NaN, so it is `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Probability(f64);

impl Eq for Probability {}

impl Probability {
    pub const ALWAYS: Probability = Probability(1.0);

    /// `None` unless `p` is within 0..=1.
    pub fn new(p: f64) -> Option<Probability> {
        (0.0..=1.0).contains(&p).then_some(Probability(p))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Probability {
    /// "5%", "0.1%", "100%".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.4}", self.0 * 100.0);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{text}%")
    }
}

/// An errno by name, with its Linux number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno {
    pub name: &'static str,
    pub code: i32,
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// By name, one of [`ERRNOS`].
impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ERRNOS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, code)| Errno { name, code })
            .ok_or_else(|| serde::de::Error::custom(format!("unknown errno \"{name}\"")))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The errno names `kind = "errno"` accepts, with their Linux numbers.
pub const ERRNOS: &[(&str, i32)] = &[
    ("EIO", 5),
    ("ENOSPC", 28),
    ("ETIMEDOUT", 110),
    ("ENOLINK", 67),
    ("EAGAIN", 11),
    ("EREMOTEIO", 121),
    ("ENODEV", 19),
    ("ENXIO", 6),
    ("EROFS", 30),
    ("EBUSY", 16),
    ("EINTR", 4),
    ("ENOMEM", 12),
    ("EPERM", 1),
    ("EACCES", 13),
    ("EINVAL", 22),
    ("EOPNOTSUPP", 95),
    ("ECONNRESET", 104),
    ("EHOSTDOWN", 112),
    ("ENOMEDIUM", 123),
    ("EPROTO", 71),
    ("EILSEQ", 84),
    ("ECANCELED", 125),
];

impl Errno {
    pub fn from_name(name: &str) -> Option<Errno> {
        ERRNOS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, code)| Errno { name, code })
    }
}

/// How late a `latency` fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum LatencyDist {
    /// `ms = 50`: every matching IO waits exactly this long.
    Fixed { ms: u32 },
    /// `min_ms` / `max_ms`: uniform between the two.
    Uniform { min_ms: u32, max_ms: u32 },
    /// `p50_ms` / `p99_ms`: a long tail; half the IOs wait at most p50, 1% more than p99.
    LongTail { p50_ms: u32, p99_ms: u32 },
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyDist::Fixed { ms } => write!(f, "{ms} ms"),
            LatencyDist::Uniform { min_ms, max_ms } => write!(f, "{min_ms} to {max_ms} ms"),
            LatencyDist::LongTail { p50_ms, p99_ms } => {
                write!(f, "p50 {p50_ms} ms, p99 {p99_ms} ms")
            }
        }
    }
}

/// A kind-specific key in a `[[fault]]` table.
pub(crate) struct Param {
    pub key: &'static str,
    /// Shown when the parameter is missing: "ms = 200".
    pub example: &'static str,
}

const fn param(key: &'static str, example: &'static str) -> Param {
    Param { key, example }
}

/// Everything the parser knows about one fault kind.
pub(crate) struct KindDef {
    pub name: &'static str,
    pub layer: Layer,
    pub params: &'static [Param],
    /// Whether `for` makes sense (an instantaneous action has no window).
    pub allows_window: bool,
    /// Reads and validates the parameters; `None` if any was wrong (reported).
    pub decode: fn(&mut Params<'_, '_, '_, '_>) -> Option<FaultKind>,
}

const OFFSET: Param = param("offset", "offset = \"1MiB\"");
const LENGTH: Param = param("length", "length = \"64KiB\"");
const OP: Param = param("op", "op = \"read\"");
const PROBABILITY: Param = param("probability", "probability = 0.05");

pub(crate) const KINDS: &[KindDef] = &[
    KindDef {
        name: "fail",
        layer: Layer::Dm,
        params: &[],
        allows_window: true,
        decode: |_| Some(FaultKind::Fail),
    },
    KindDef {
        name: "delay",
        layer: Layer::Dm,
        params: &[
            param("ms", "ms = 200"),
            param("read_ms", "read_ms = 200"),
            param("write_ms", "write_ms = 200"),
            param("flush_ms", "flush_ms = 200"),
        ],
        allows_window: true,
        decode: decode_delay,
    },
    KindDef {
        name: "flakey",
        layer: Layer::Dm,
        params: &[
            param("up", "up = \"1s\""),
            param("down", "down = \"1s\""),
            param("drop_writes", "drop_writes = true"),
            param("error_writes", "error_writes = true"),
            param(
                "corrupt_bio_byte",
                "corrupt_bio_byte = { nth = 32, op = \"read\", value = 255 }",
            ),
        ],
        allows_window: true,
        decode: decode_flakey,
    },
    KindDef {
        name: "error_range",
        layer: Layer::Dm,
        params: &[
            OFFSET,
            LENGTH,
            param(
                "ranges",
                "ranges = [{ offset = \"1MiB\", length = \"64KiB\" }]",
            ),
        ],
        allows_window: true,
        decode: decode_error_range,
    },
    KindDef {
        name: "dust",
        layer: Layer::Dm,
        params: &[
            param("bad_blocks", "bad_blocks = [10, 11, 200]"),
            param("block_size", "block_size = 512"),
            param("quiet", "quiet = true"),
        ],
        allows_window: true,
        decode: decode_dust,
    },
    KindDef {
        name: "restore",
        layer: Layer::Leg,
        params: &[],
        allows_window: false,
        decode: |_| Some(FaultKind::Restore),
    },
    KindDef {
        name: "kernel_fail",
        layer: Layer::Leg,
        params: &[],
        allows_window: false,
        decode: |_| Some(FaultKind::KernelFail),
    },
    KindDef {
        name: "errno",
        layer: Layer::Fuse,
        params: &[
            param("errno", "errno = \"EIO\""),
            PROBABILITY,
            OP,
            OFFSET,
            LENGTH,
        ],
        allows_window: true,
        decode: |p| {
            let errno = p.errno("errno");
            let probability = p.probability();
            let op = p.op(&[IoOp::Read, IoOp::Write, IoOp::Flush, IoOp::Any]);
            let range = p.optional_range();
            Some(FaultKind::Errno {
                errno: errno?,
                probability: probability?,
                op: op?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "latency",
        layer: Layer::Fuse,
        params: &[
            param("ms", "ms = 50"),
            param("min_ms", "min_ms = 10"),
            param("max_ms", "max_ms = 100"),
            param("p50_ms", "p50_ms = 5"),
            param("p99_ms", "p99_ms = 500"),
            OP,
        ],
        allows_window: true,
        decode: decode_latency,
    },
    KindDef {
        name: "hang",
        layer: Layer::Fuse,
        params: &[OP],
        allows_window: true,
        decode: |p| {
            let op = p.op(&[IoOp::Read, IoOp::Write, IoOp::Flush, IoOp::Any])?;
            Some(FaultKind::Hang { op })
        },
    },
    KindDef {
        name: "lose",
        layer: Layer::Fuse,
        params: &[PROBABILITY, OFFSET, LENGTH],
        allows_window: true,
        decode: |p| {
            let probability = p.probability();
            let range = p.optional_range();
            Some(FaultKind::Lose {
                probability: probability?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "corrupt",
        layer: Layer::Fuse,
        params: &[PROBABILITY, OP, OFFSET, LENGTH],
        allows_window: true,
        decode: |p| {
            let probability = p.probability();
            let op = p.op(&[IoOp::Read, IoOp::Write, IoOp::Any]);
            let range = p.optional_range();
            Some(FaultKind::Corrupt {
                probability: probability?,
                op: op?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "no_response",
        layer: Layer::Scsi,
        params: &[
            param("abort", "abort = \"ignore\""),
            PROBABILITY,
            SCSI_OP,
            OFFSET,
            LENGTH,
        ],
        allows_window: true,
        decode: |p| {
            let abort = p.choice(
                "abort",
                &[
                    ("honour", AbortPolicy::Honour),
                    ("ignore", AbortPolicy::Ignore),
                ],
            );
            let probability = p.probability();
            let op = p.op(SCSI_OPS);
            let range = p.optional_range();
            Some(FaultKind::NoResponse {
                abort: abort?.unwrap_or_default(),
                probability: probability?,
                op: op?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "check_condition",
        layer: Layer::Scsi,
        params: &[
            param("sense", "sense = \"03/11/00\""),
            PROBABILITY,
            SCSI_OP,
            OFFSET,
            LENGTH,
        ],
        allows_window: true,
        decode: |p| {
            let sense = p.sense("sense");
            let probability = p.probability();
            let op = p.op(SCSI_OPS);
            let range = p.optional_range();
            Some(FaultKind::CheckCondition {
                sense: sense?,
                probability: probability?,
                op: op?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "scsi_status",
        layer: Layer::Scsi,
        params: &[
            param("status", "status = \"busy\""),
            PROBABILITY,
            SCSI_OP,
            OFFSET,
            LENGTH,
        ],
        allows_window: true,
        decode: |p| {
            let status = p.choice("status", &ScsiStatusCode::ALL);
            let probability = p.probability();
            let op = p.op(SCSI_OPS);
            let range = p.optional_range();
            let Some(status) = status? else {
                p.missing("status");
                return None;
            };
            Some(FaultKind::ScsiStatus {
                status,
                probability: probability?,
                op: op?,
                range: range?,
            })
        },
    },
    KindDef {
        name: "scsi_latency",
        layer: Layer::Scsi,
        params: &[
            param("ms", "ms = 50"),
            param("min_ms", "min_ms = 10"),
            param("max_ms", "max_ms = 100"),
            param("p50_ms", "p50_ms = 5"),
            param("p99_ms", "p99_ms = 500"),
            SCSI_OP,
        ],
        allows_window: true,
        decode: |p| {
            let (latency, op) = decode_latency_dist(p, SCSI_OPS)?;
            Some(FaultKind::ScsiLatency { latency, op })
        },
    },
    KindDef {
        name: "port_offline",
        layer: Layer::Scsi,
        params: &[],
        allows_window: true,
        decode: |_| Some(FaultKind::PortOffline),
    },
];

/// The commands a SCSI fault can select: reads, writes, or with `any` every command — the
/// non-data ones (TEST UNIT READY, INQUIRY, SYNCHRONIZE CACHE, …) too, as a dead LUN answers
/// none of them.
const SCSI_OPS: &[IoOp] = &[IoOp::Read, IoOp::Write, IoOp::Any];
const SCSI_OP: Param = param("op", "op = \"read\"");

/// The layer of the kind named `name`.
pub(crate) fn layer_of(name: &str) -> Layer {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .map(|k| k.layer)
        .expect("every FaultKind has a KindDef")
}

/// The names of the kinds of `layer`, in table order: "fail, delay, ...".
pub(crate) fn kinds_of(layer: Layer) -> String {
    KINDS
        .iter()
        .filter(|k| k.layer == layer)
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys every `[[fault]]` has, whatever its kind.
pub(crate) const COMMON_KEYS: &[&str] = &["at", "for", "every", "times", "leg", "kind"];

/// Every key allowed in a `[[fault]]` table: the common ones and every kind's parameters.
pub(crate) fn fault_keys() -> Vec<&'static str> {
    let mut keys = COMMON_KEYS.to_vec();
    for p in KINDS.iter().flat_map(|k| k.params) {
        if !keys.contains(&p.key) {
            keys.push(p.key);
        }
    }
    keys
}

/// The kinds that take parameter `key`.
fn kinds_taking(key: &str) -> Vec<&'static str> {
    KINDS
        .iter()
        .filter(|k| k.params.iter().any(|p| p.key == key))
        .map(|k| k.name)
        .collect()
}

/// A byte extent a fault parameter reaches (one past its last byte), checked
/// against the size of the leg's device once the leg is known.
#[derive(Debug, Clone)]
pub(crate) struct Extent {
    pub pos: usize,
    pub end: u64,
    /// "the range 64KiB at 1MiB", "bad block 200 (512-byte blocks)".
    pub what: String,
    /// For a block number: the block size, so the help can name the last block. Such an
    /// extent is not checked when an earlier one of the fault (the block size) is past the end.
    pub block_size: Option<u64>,
}

/// A fault's kind as decoded, with what must be checked against its leg.
pub(crate) struct DecodedKind {
    pub kind: Sp<FaultKind>,
    pub extents: Vec<Extent>,
}

/// The size of a sector, the unit of block devices and of device-mapper tables. Defined here,
/// in the scenario model, so that validation and the rig's `Sectors` share one value.
pub const SECTOR_BYTES: u64 = 512;
const MAX_DELAY_MS: u64 = 60_000;
const MAX_RANGES: usize = 256;
const MAX_BAD_BLOCKS: usize = 4096;

/// Access to a fault's parameters for one kind's decoder.
pub(crate) struct Params<'r, 't, 'a, 'i> {
    report: &'r mut Report<'t>,
    table: &'r Table<'a, 'i>,
    kind: &'static KindDef,
    extents: Vec<Extent>,
}

impl Params<'_, '_, '_, '_> {
    fn example(&self, key: &str) -> &'static str {
        self.kind
            .params
            .iter()
            .find(|p| p.key == key)
            .map_or("", |p| p.example)
    }

    fn missing(&mut self, key: &str) {
        let example = self.example(key);
        self.report.error(
            self.table.pos,
            format!("kind = \"{}\" needs `{key}`", self.kind.name),
            format!("add e.g. `{example}` to this [[fault]]"),
        );
    }

    fn key_pos(&self, key: &str) -> usize {
        self.table.key_pos(key).unwrap_or(self.table.pos)
    }

    /// A required duration of at least one second, in whole seconds.
    pub(crate) fn whole_seconds(&mut self, key: &str) -> Option<Duration> {
        match self.table.duration(self.report, key) {
            Got::Ok(Sp { val, pos }) => {
                if val.subsec_nanos() != 0 || val < Duration::from_secs(1) {
                    self.report.error(
                        pos,
                        format!(
                            "`{key}` = {} is not a whole number of seconds (at least 1s)",
                            format_duration(val)
                        ),
                        format!(
                            "dm-{} takes whole seconds: write e.g. `{key} = \"1s\"`",
                            self.kind.name
                        ),
                    );
                    return None;
                }
                // dm-flakey's table takes unsigned int seconds; never truncate.
                if val.as_secs() > u64::from(u32::MAX) {
                    self.report.error(
                        pos,
                        format!(
                            "`{key}` = {} is more than dm-{} takes",
                            format_duration(val),
                            self.kind.name
                        ),
                        format!("dm-{} takes at most {} seconds", self.kind.name, u32::MAX),
                    );
                    return None;
                }
                Some(val)
            }
            Got::Invalid => None,
            Got::Absent => {
                self.missing(key);
                None
            }
        }
    }

    /// An optional boolean (false when absent); `None` if invalid.
    fn flag(&mut self, key: &str) -> Option<bool> {
        match self.table.boolean(self.report, key) {
            Got::Ok(b) => Some(b.val),
            Got::Absent => Some(false),
            Got::Invalid => None,
        }
    }

    /// `op`, one of `allowed`; default "any".
    fn op(&mut self, allowed: &[IoOp]) -> Option<IoOp> {
        let choices: Vec<(&str, IoOp)> = allowed.iter().map(|o| (o.name(), *o)).collect();
        match self.table.choice(self.report, "op", &choices) {
            Got::Ok(o) => Some(o.val),
            Got::Absent => Some(IoOp::Any),
            Got::Invalid => None,
        }
    }

    /// An optional choice among `choices`; `Some(None)` when absent, `None` if invalid.
    fn choice<T: Copy>(&mut self, key: &str, choices: &[(&str, T)]) -> Option<Option<T>> {
        match self.table.choice(self.report, key, choices) {
            Got::Ok(v) => Some(Some(v.val)),
            Got::Absent => Some(None),
            Got::Invalid => None,
        }
    }

    /// Required sense data, `"03/11/00"`.
    fn sense(&mut self, key: &str) -> Option<Sense> {
        let s = match self.table.string(self.report, key) {
            Got::Ok(s) => s,
            Got::Invalid => return None,
            Got::Absent => {
                self.missing(key);
                return None;
            }
        };
        match crate::scsi::parse_sense(&s.val) {
            Ok(sense) => Some(sense),
            Err(help) => {
                self.report.error(
                    s.pos,
                    format!(
                        "`{key}` = \"{}\" is not sense data",
                        crate::units::shown(&s.val)
                    ),
                    help,
                );
                None
            }
        }
    }

    /// `probability`, a number within 0..=1; default 1 (every matching IO).
    fn probability(&mut self) -> Option<Probability> {
        let Some(v) = self.table.get("probability") else {
            return Some(Probability::ALWAYS);
        };
        let pos = v.span().start;
        let help = "a probability is a number from 0 to 1, e.g. `probability = 0.05` for 5% of the matching IOs";
        let p = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            other => {
                type_error(self.report, v, "probability", "a number", help, other);
                return None;
            }
        };
        match p.and_then(Probability::new) {
            Some(p) => Some(p),
            None => {
                let text = match v.get_ref() {
                    DeValue::Float(f) => f.as_str().to_string(),
                    DeValue::Integer(i) => i.as_str().to_string(),
                    _ => String::new(),
                };
                self.report.error(
                    pos,
                    format!("`probability` = {text} is outside the range 0..=1"),
                    help,
                );
                None
            }
        }
    }

    /// `errno`, a name from [`ERRNOS`].
    fn errno(&mut self, key: &str) -> Option<Errno> {
        let s = match self.table.string(self.report, key) {
            Got::Ok(s) => s,
            Got::Invalid => return None,
            Got::Absent => {
                self.missing(key);
                return None;
            }
        };
        match Errno::from_name(&s.val) {
            Some(e) => Some(e),
            None => {
                let names: Vec<&str> = ERRNOS.iter().map(|(n, _)| *n).collect();
                self.report.error(
                    s.pos,
                    format!("unknown errno \"{}\"", s.val),
                    one_of(&s.val, &names),
                );
                None
            }
        }
    }

    /// A size given as `key` in `table`, 512-byte aligned; `nonzero` refuses 0.
    fn aligned_size(&mut self, table: &Table, key: &str, nonzero: bool) -> Got<u64> {
        match table.size(self.report, key) {
            Got::Ok(s) => {
                if s.val % SECTOR_BYTES != 0 {
                    self.report.error(
                        s.pos,
                        format!(
                            "`{key}` = {} is not a multiple of 512 bytes",
                            format_size(s.val)
                        ),
                        "dm tables work in 512-byte sectors: use e.g. \"4KiB\", \"1MiB\" or a multiple of 512",
                    );
                    Got::Invalid
                } else if nonzero && s.val == 0 {
                    self.report.error(
                        s.pos,
                        format!("`{key}` must be longer than 0"),
                        "give the range's length, e.g. `length = \"64KiB\"`",
                    );
                    Got::Invalid
                } else {
                    Got::Ok(s)
                }
            }
            other => other,
        }
    }

    /// `offset` and `length` of `table` as one range (both required); `None`
    /// if either is missing or wrong (reported; missing ones at `table.pos`).
    fn range_in(&mut self, table: &Table, where_: &str) -> Option<Sp<ByteRange>> {
        let offset = self.aligned_size(table, "offset", false);
        let length = self.aligned_size(table, "length", true);
        for (key, got) in [("offset", &offset), ("length", &length)] {
            if matches!(got, Got::Absent) {
                let example = if key == "offset" {
                    OFFSET.example
                } else {
                    LENGTH.example
                };
                self.report.error(
                    table.pos,
                    format!("{where_} needs `{key}`"),
                    format!("a range is `offset` and `length`: add e.g. `{example}`"),
                );
            }
        }
        let (Got::Ok(offset), Got::Ok(length)) = (offset, length) else {
            return None;
        };
        let range = ByteRange {
            offset: offset.val,
            length: length.val,
        };
        self.extents.push(Extent {
            pos: offset.pos,
            end: range.end(),
            what: format!("the range {range}"),
            block_size: None,
        });
        Some(Sp::new(range, offset.pos))
    }

    /// An optional `offset` + `length` range of the fault itself: both or neither.
    fn optional_range(&mut self) -> Option<Option<ByteRange>> {
        let table = self.table;
        if table.get("offset").is_none() && table.get("length").is_none() {
            return Some(None);
        }
        let where_ = format!("kind = \"{}\" with a range", self.kind.name);
        self.range_in(table, &where_).map(|r| Some(r.val))
    }
}

fn decode_delay(p: &mut Params) -> Option<FaultKind> {
    let ms = p.table.int(p.report, "ms", 1..=MAX_DELAY_MS);
    let split: Vec<(&str, Got<u64>)> = ["read_ms", "write_ms", "flush_ms"]
        .into_iter()
        .map(|k| (k, p.table.int(p.report, k, 0..=MAX_DELAY_MS)))
        .collect();
    let mut ok = !matches!(ms, Got::Invalid);
    ok &= !split.iter().any(|(_, g)| matches!(g, Got::Invalid));
    let given: Vec<&str> = split
        .iter()
        .filter(|(_, g)| !matches!(g, Got::Absent))
        .map(|(k, _)| *k)
        .collect();
    if !matches!(ms, Got::Absent) {
        for key in &given {
            p.report.error(
                p.key_pos(key),
                format!("`{key}` cannot be combined with `ms`"),
                "`ms` delays every IO alike; to delay reads, writes and flushes differently give `read_ms`, `write_ms` and/or `flush_ms` instead (the ones left out are 0)",
            );
            ok = false;
        }
    } else if given.is_empty() {
        p.report.error(
            p.table.pos,
            "kind = \"delay\" needs `ms` (or `read_ms`, `write_ms`, `flush_ms`)",
            "add e.g. `ms = 200` to this [[fault]] to delay every IO, or `write_ms = 200` to delay only writes",
        );
        return None;
    }
    if !ok {
        return None;
    }
    if let Got::Ok(ms) = ms {
        let ms = ms.val as u32;
        return Some(FaultKind::Delay {
            read_ms: ms,
            write_ms: ms,
            flush_ms: ms,
        });
    }
    let value = |key: &str| {
        split
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, g)| match g {
                Got::Ok(v) => Some(v.val as u32),
                _ => None,
            })
            .unwrap_or(0)
    };
    let (read_ms, write_ms, flush_ms) = (value("read_ms"), value("write_ms"), value("flush_ms"));
    if read_ms == 0 && write_ms == 0 && flush_ms == 0 {
        p.report.error(
            p.key_pos(given[0]),
            "every delay of this fault is 0 ms: it would do nothing",
            "give at least one of `read_ms`, `write_ms`, `flush_ms` above 0",
        );
        return None;
    }
    Some(FaultKind::Delay {
        read_ms,
        write_ms,
        flush_ms,
    })
}

fn decode_flakey(p: &mut Params) -> Option<FaultKind> {
    let up = p.whole_seconds("up");
    let down = p.whole_seconds("down");
    let drop_writes = p.flag("drop_writes");
    let error_writes = p.flag("error_writes");
    let corrupt = match p.table.get("corrupt_bio_byte") {
        None => Some(None),
        Some(v) => decode_corrupt_bio_byte(p, v).map(Some),
    };
    let (drop_writes, error_writes, corrupt) = (drop_writes?, error_writes?, corrupt?);
    let mut ok = true;
    if drop_writes && error_writes {
        let (first, second) = ordered(p, "drop_writes", "error_writes");
        p.report.error(
            p.key_pos(second),
            format!("`{second}` cannot be combined with `{first}`"),
            "dm-flakey takes one of them: drop_writes (writes are acknowledged but lost) or error_writes (writes fail); reads pass with either",
        );
        ok = false;
    }
    if corrupt.is_some_and(|c| c.op == BioDir::Write) {
        for (key, set, what) in [
            ("drop_writes", drop_writes, "dropped"),
            ("error_writes", error_writes, "failed"),
        ] {
            if set {
                p.report.error(
                    p.key_pos("corrupt_bio_byte"),
                    format!("`corrupt_bio_byte` with op = \"write\" cannot be combined with `{key}`"),
                    format!("dm-flakey refuses it: a write that is {what} cannot also be corrupted; corrupt reads (op = \"read\") or remove `{key}`"),
                );
                ok = false;
            }
        }
    }
    let (up, down) = (up?, down?);
    ok.then_some(FaultKind::Flakey {
        up,
        down,
        drop_writes,
        error_writes,
        corrupt_bio_byte: corrupt,
    })
}

/// The two keys in file order.
fn ordered<'k>(p: &Params, a: &'k str, b: &'k str) -> (&'k str, &'k str) {
    if p.key_pos(a) <= p.key_pos(b) {
        (a, b)
    } else {
        (b, a)
    }
}

const CORRUPT_KEYS: &[&str] = &["nth", "op", "value", "flags"];

/// `corrupt_bio_byte = { nth = 32, op = "read", value = 255, flags = 0 }`.
fn decode_corrupt_bio_byte(p: &mut Params, v: &Value) -> Option<CorruptBioByte> {
    let DeValue::Table(t) = v.get_ref() else {
        type_error(
            p.report,
            v,
            "corrupt_bio_byte",
            "a table",
            "write `corrupt_bio_byte = { nth = 32, op = \"read\", value = 255 }` (flags = 0 is the default)",
            v.get_ref(),
        );
        return None;
    };
    let t = Table::new("corrupt_bio_byte", v.span().start, t);
    t.reject_unknown(p.report, CORRUPT_KEYS, |_| None);
    let need = |r: &mut Report, key: &str, got: Got<u64>, example: &str| match got {
        Got::Ok(v) => Some(v.val),
        Got::Invalid => None,
        Got::Absent => {
            r.error(
                t.pos,
                format!("corrupt_bio_byte needs `{key}`"),
                format!("add e.g. `{example}`: corrupt_bio_byte takes nth, op, value and (optionally) flags"),
            );
            None
        }
    };
    let nth = t.int(p.report, "nth", 1..=u64::from(u32::MAX));
    let nth = need(p.report, "nth", nth, "nth = 32");
    let value = t.int(p.report, "value", 0..=255);
    let value = need(p.report, "value", value, "value = 255");
    let op = match t.choice(
        p.report,
        "op",
        &[("read", BioDir::Read), ("write", BioDir::Write)],
    ) {
        Got::Ok(o) => Some(o.val),
        Got::Invalid => None,
        Got::Absent => {
            p.report.error(
                t.pos,
                "corrupt_bio_byte needs `op`",
                "add `op = \"read\"` (reads return damaged data) or `op = \"write\"` (damaged data is stored)",
            );
            None
        }
    };
    let flags = t.int(p.report, "flags", 0..=u64::from(u32::MAX)).or(0);
    Some(CorruptBioByte {
        nth: nth? as u32,
        op: op?,
        value: value? as u8,
        flags: flags as u32,
    })
}

fn decode_error_range(p: &mut Params) -> Option<FaultKind> {
    let single = p.table.get("offset").is_some() || p.table.get("length").is_some();
    let Some(list) = p.table.get("ranges") else {
        if !single {
            p.report.error(
                p.table.pos,
                "kind = \"error_range\" needs `offset` and `length`, or `ranges`",
                "add e.g. `offset = \"1MiB\"` and `length = \"64KiB\"` to this [[fault]], or several ranges as `ranges = [{ offset = \"1MiB\", length = \"4KiB\" }, { offset = \"8MiB\", length = \"4KiB\" }]`",
            );
            return None;
        }
        let table = p.table;
        let range = p.range_in(table, "kind = \"error_range\"")?;
        return Some(FaultKind::ErrorRange {
            ranges: vec![range.val],
        });
    };
    if single {
        let key = if p.table.get("offset").is_some() {
            "offset"
        } else {
            "length"
        };
        p.report.error(
            p.key_pos(key),
            format!("`{key}` cannot be combined with `ranges`"),
            "give either one range as `offset` and `length`, or several as `ranges`, not both",
        );
        return None;
    }
    let shape = "write `ranges = [{ offset = \"1MiB\", length = \"4KiB\" }, ...]`";
    let DeValue::Array(items) = list.get_ref() else {
        type_error(
            p.report,
            list,
            "ranges",
            "an array of tables",
            shape,
            list.get_ref(),
        );
        return None;
    };
    if items.is_empty() {
        p.report.error(
            list.span().start,
            "`ranges` is empty",
            format!("an error_range fault needs at least one range: {shape}"),
        );
        return None;
    }
    if items.len() > MAX_RANGES {
        p.report.error(
            list.span().start,
            format!(
                "`ranges` has {} ranges, more than {MAX_RANGES}",
                items.len()
            ),
            "merge neighbouring ranges, or split the fault",
        );
        return None;
    }
    let mut ranges: Vec<Sp<ByteRange>> = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        let DeValue::Table(t) = item.get_ref() else {
            type_error(p.report, item, "ranges", "a table", shape, item.get_ref());
            ok = false;
            continue;
        };
        let t = Table::new("a range in `ranges`", item.span().start, t);
        t.reject_unknown(p.report, &["offset", "length"], |_| None);
        match p.range_in(&t, "this range") {
            Some(r) => ranges.push(r),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    ranges.sort_by_key(|r| (r.val.offset, r.pos));
    for w in ranges.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.val.offset < a.val.end() {
            let line = p.report.line_of(a.pos);
            p.report.error(
                b.pos,
                format!(
                    "the range {} overlaps the range {} (line {line})",
                    b.val, a.val
                ),
                "ranges of one fault may not overlap: merge them into one range",
            );
            ok = false;
        }
    }
    ok.then(|| FaultKind::ErrorRange {
        ranges: ranges.into_iter().map(|r| r.val).collect(),
    })
}

fn decode_dust(p: &mut Params) -> Option<FaultKind> {
    let block_size = match p.table.size(p.report, "block_size") {
        Got::Absent => Some(Sp::new(SECTOR_BYTES, p.table.pos)),
        Got::Invalid => None,
        Got::Ok(b) => {
            let ok = b.val.is_power_of_two() && (SECTOR_BYTES..=1 << 30).contains(&b.val);
            if !ok {
                p.report.error(
                    b.pos,
                    format!(
                        "dust block size {} is not a power of two from 512 bytes to 1GiB",
                        format_size(b.val)
                    ),
                    "use e.g. `block_size = 512` (the default) or `block_size = \"4KiB\"`",
                );
            }
            ok.then_some(b)
        }
    };
    let quiet = p.flag("quiet");
    let Some(list) = p.table.get("bad_blocks") else {
        p.missing("bad_blocks");
        return None;
    };
    let shape = "write the bad blocks as an array of block numbers, e.g. `bad_blocks = [10, 11, 200]` (`[]` for none)";
    let DeValue::Array(items) = list.get_ref() else {
        type_error(
            p.report,
            list,
            "bad_blocks",
            "an array of block numbers",
            shape,
            list.get_ref(),
        );
        return None;
    };
    if items.len() > MAX_BAD_BLOCKS {
        p.report.error(
            list.span().start,
            format!(
                "`bad_blocks` has {} blocks, more than {MAX_BAD_BLOCKS}",
                items.len()
            ),
            "use fewer bad blocks, or an error_range fault for a large area",
        );
        return None;
    }
    let mut blocks: Vec<Sp<u64>> = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Integer(_) => match as_int(p.report, item, "bad_blocks", 0..=u64::MAX >> 30) {
                Some(b) => {
                    if let Some(first) = blocks.iter().find(|x| x.val == b.val) {
                        let (line, col) = p.report.locate(first.pos);
                        p.report.error(
                            b.pos,
                            format!("bad block {} is listed twice", b.val),
                            format!(
                                "it is already listed at line {line}, column {col}; remove one"
                            ),
                        );
                        ok = false;
                    } else {
                        blocks.push(b);
                    }
                }
                None => ok = false,
            },
            other => {
                p.report.error(
                    item.span().start,
                    format!(
                        "`bad_blocks` must hold block numbers, found {}",
                        describe(other)
                    ),
                    shape,
                );
                ok = false;
            }
        }
    }
    let (block_size, quiet) = (block_size?, quiet?);
    if !ok {
        return None;
    }
    p.extents.push(Extent {
        pos: block_size.pos,
        end: block_size.val,
        what: format!("a dust block of {}", format_size(block_size.val)),
        block_size: None,
    });
    for b in &blocks {
        p.extents.push(Extent {
            pos: b.pos,
            end: (b.val + 1) * block_size.val,
            what: format!("bad block {} ({}-byte blocks)", b.val, block_size.val),
            block_size: Some(block_size.val),
        });
    }
    let mut bad_blocks: Vec<u64> = blocks.into_iter().map(|b| b.val).collect();
    bad_blocks.sort_unstable();
    Some(FaultKind::Dust {
        bad_blocks,
        block_size: block_size.val as u32,
        quiet,
    })
}

/// One way to give a latency: its keys with their ranges.
struct LatencyForm {
    /// "`min_ms` and `max_ms`".
    keys: &'static str,
    /// "uniform".
    name: &'static str,
    params: &'static [(&'static str, RangeInclusive<u64>)],
}

const LATENCY_FORMS: [LatencyForm; 3] = [
    LatencyForm {
        keys: "`ms`",
        name: "fixed",
        params: &[("ms", 1..=MAX_DELAY_MS)],
    },
    LatencyForm {
        keys: "`min_ms` and `max_ms`",
        name: "uniform",
        params: &[("min_ms", 0..=MAX_DELAY_MS), ("max_ms", 1..=MAX_DELAY_MS)],
    },
    LatencyForm {
        keys: "`p50_ms` and `p99_ms`",
        name: "long tail",
        params: &[("p50_ms", 0..=MAX_DELAY_MS), ("p99_ms", 1..=MAX_DELAY_MS)],
    },
];

fn decode_latency(p: &mut Params) -> Option<FaultKind> {
    let (latency, op) = decode_latency_dist(p, &[IoOp::Read, IoOp::Write, IoOp::Flush, IoOp::Any])?;
    Some(FaultKind::Latency { latency, op })
}

/// The latency distribution and `op` of a latency kind (`latency`, `scsi_latency`).
fn decode_latency_dist(p: &mut Params, ops: &[IoOp]) -> Option<(LatencyDist, IoOp)> {
    let op = p.op(ops);
    let kind = p.kind.name;
    let forms = &LATENCY_FORMS;
    let help = "give one of: `ms = 50` (every IO waits 50 ms), `min_ms = 10` with `max_ms = 100` (uniform), or `p50_ms = 5` with `p99_ms = 500` (a long tail)";
    let mut values: Vec<Vec<Got<u64>>> = Vec::new();
    let mut ok = true;
    for form in forms {
        let got: Vec<Got<u64>> = form
            .params
            .iter()
            .map(|(k, r)| p.table.int(p.report, k, r.clone()))
            .collect();
        ok &= !got.iter().any(|g| matches!(g, Got::Invalid));
        values.push(got);
    }
    let used: Vec<usize> = (0..forms.len())
        .filter(|&i| values[i].iter().any(|g| !matches!(g, Got::Absent)))
        .collect();
    match used.as_slice() {
        [] => {
            p.report.error(
                p.table.pos,
                format!(
                    "kind = \"{kind}\" needs `ms`, `min_ms` and `max_ms`, or `p50_ms` and `p99_ms`"
                ),
                help,
            );
            return None;
        }
        [_] => {}
        [first, rest @ ..] => {
            for &i in rest {
                let key = forms[i].params[0].0;
                let key = if p.table.get(key).is_some() {
                    key
                } else {
                    forms[i].params[forms[i].params.len() - 1].0
                };
                p.report.error(
                    p.key_pos(key),
                    format!(
                        "{} ({}) cannot be combined with {} ({})",
                        forms[i].keys, forms[i].name, forms[*first].keys, forms[*first].name
                    ),
                    help,
                );
            }
            return None;
        }
    }
    let form = used[0];
    // Both keys of a two-key form.
    for (j, (key, _)) in forms[form].params.iter().enumerate() {
        if matches!(values[form][j], Got::Absent) {
            p.report.error(
                p.table.pos,
                format!("kind = \"{kind}\" with {} needs both", forms[form].keys),
                format!("add `{}`; {help}", p.example(key)),
            );
            ok = false;
        }
    }
    let op = op?;
    if !ok {
        return None;
    }
    let v: Vec<u32> = values[form]
        .iter()
        .map(|g| match g {
            Got::Ok(v) => v.val as u32,
            _ => 0,
        })
        .collect();
    let latency = match form {
        0 => LatencyDist::Fixed { ms: v[0] },
        1 | 2 => {
            let (lo_key, hi_key) = (forms[form].params[0].0, forms[form].params[1].0);
            if v[0] > v[1] {
                p.report.error(
                    p.key_pos(lo_key),
                    format!("`{lo_key}` = {} is more than `{hi_key}` = {}", v[0], v[1]),
                    format!("`{lo_key}` must be at most `{hi_key}`"),
                );
                return None;
            }
            if form == 1 {
                LatencyDist::Uniform {
                    min_ms: v[0],
                    max_ms: v[1],
                }
            } else {
                LatencyDist::LongTail {
                    p50_ms: v[0],
                    p99_ms: v[1],
                }
            }
        }
        _ => unreachable!("three forms"),
    };
    Some((latency, op))
}

/// Reads `kind` and the kind's parameters from a `[[fault]]` table.
///
/// Reports an unknown kind, parameters that belong to other kinds, missing
/// or invalid parameters, and `for` on a kind that takes no window.
pub(crate) fn decode_kind(r: &mut Report, table: &Table) -> Option<DecodedKind> {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let kind = table
        .string(r, "kind")
        .required(r, table, "kind", "kind = \"fail\"")?;
    let Some(def) = KINDS.iter().find(|k| k.name == kind.val) else {
        r.error(
            kind.pos,
            format!("unknown fault kind \"{}\"", kind.val),
            one_of(&kind.val, &names),
        );
        return None;
    };
    let mut ok = true;
    for (key, _) in table.entries() {
        if COMMON_KEYS.contains(&key.val) || def.params.iter().any(|p| p.key == key.val) {
            continue;
        }
        let takers = kinds_taking(key.val);
        if takers.is_empty() {
            continue; // an unknown key, reported by the caller
        }
        ok = false;
        let takers: Vec<String> = takers.iter().map(|k| format!("\"{k}\"")).collect();
        r.error(
            key.pos,
            format!("`{}` does not apply to kind = \"{}\"", key.val, def.name),
            format!(
                "`{}` is a parameter of kind = {} only",
                key.val,
                takers.join(" or ")
            ),
        );
    }
    if !def.allows_window {
        if let Some(pos) = table.key_pos("for") {
            ok = false;
            r.error(
                pos,
                format!("`for` does not apply to kind = \"{}\"", def.name),
                "it happens at an instant: remove `for`",
            );
        }
    }
    let mut params = Params {
        report: r,
        table,
        kind: def,
        extents: Vec::new(),
    };
    let decoded = (def.decode)(&mut params);
    let extents = params.extents;
    match decoded {
        Some(k) if ok => Some(DecodedKind {
            kind: Sp::new(k, kind.pos),
            extents,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<FaultKind> {
        let p = Probability::new(0.5).unwrap();
        vec![
            FaultKind::Fail,
            FaultKind::Delay {
                read_ms: 1,
                write_ms: 1,
                flush_ms: 1,
            },
            FaultKind::Flakey {
                up: Duration::from_secs(1),
                down: Duration::from_secs(1),
                drop_writes: false,
                error_writes: false,
                corrupt_bio_byte: None,
            },
            FaultKind::ErrorRange {
                ranges: vec![ByteRange {
                    offset: 0,
                    length: 512,
                }],
            },
            FaultKind::Dust {
                bad_blocks: vec![1],
                block_size: 512,
                quiet: false,
            },
            FaultKind::Restore,
            FaultKind::KernelFail,
            FaultKind::Errno {
                errno: Errno::from_name("EIO").unwrap(),
                probability: p,
                op: IoOp::Any,
                range: None,
            },
            FaultKind::Latency {
                latency: LatencyDist::Fixed { ms: 5 },
                op: IoOp::Read,
            },
            FaultKind::Hang { op: IoOp::Write },
            FaultKind::Lose {
                probability: p,
                range: None,
            },
            FaultKind::Corrupt {
                probability: p,
                op: IoOp::Read,
                range: None,
            },
            FaultKind::NoResponse {
                abort: AbortPolicy::Ignore,
                probability: Probability::ALWAYS,
                op: IoOp::Any,
                range: None,
            },
            FaultKind::CheckCondition {
                sense: Sense {
                    key: 3,
                    asc: 0x11,
                    ascq: 0,
                },
                probability: Probability::ALWAYS,
                op: IoOp::Read,
                range: None,
            },
            FaultKind::ScsiStatus {
                status: ScsiStatusCode::Busy,
                probability: Probability::ALWAYS,
                op: IoOp::Any,
                range: None,
            },
            FaultKind::ScsiLatency {
                latency: LatencyDist::Fixed { ms: 5 },
                op: IoOp::Any,
            },
            FaultKind::PortOffline,
        ]
    }

    #[test]
    fn every_variant_has_a_definition_with_the_same_name() {
        let samples = samples();
        assert_eq!(samples.len(), KINDS.len());
        for s in &samples {
            assert!(KINDS.iter().any(|k| k.name == s.name()), "{}", s.name());
        }
        let layers: Vec<(&str, Layer)> = samples.iter().map(|s| (s.name(), s.layer())).collect();
        assert_eq!(
            layers,
            [
                ("fail", Layer::Dm),
                ("delay", Layer::Dm),
                ("flakey", Layer::Dm),
                ("error_range", Layer::Dm),
                ("dust", Layer::Dm),
                ("restore", Layer::Leg),
                ("kernel_fail", Layer::Leg),
                ("errno", Layer::Fuse),
                ("latency", Layer::Fuse),
                ("hang", Layer::Fuse),
                ("lose", Layer::Fuse),
                ("corrupt", Layer::Fuse),
                ("no_response", Layer::Scsi),
                ("check_condition", Layer::Scsi),
                ("scsi_status", Layer::Scsi),
                ("scsi_latency", Layer::Scsi),
                ("port_offline", Layer::Scsi),
            ]
        );
        assert_eq!(
            kinds_of(Layer::Dm),
            "fail, delay, flakey, error_range, dust"
        );
        assert_eq!(kinds_of(Layer::Fuse), "errno, latency, hang, lose, corrupt");
        assert_eq!(
            kinds_of(Layer::Scsi),
            "no_response, check_condition, scsi_status, scsi_latency, port_offline"
        );
        assert!(Layer::Scsi.composes() && Layer::Fuse.composes());
        assert!(!Layer::Dm.composes() && !Layer::Leg.composes());
    }

    #[test]
    fn fault_keys_are_common_then_params_once() {
        assert_eq!(
            fault_keys(),
            [
                "at",
                "for",
                "every",
                "times",
                "leg",
                "kind",
                "ms",
                "read_ms",
                "write_ms",
                "flush_ms",
                "up",
                "down",
                "drop_writes",
                "error_writes",
                "corrupt_bio_byte",
                "offset",
                "length",
                "ranges",
                "bad_blocks",
                "block_size",
                "quiet",
                "errno",
                "probability",
                "op",
                "min_ms",
                "max_ms",
                "p50_ms",
                "p99_ms",
                "abort",
                "sense",
                "status",
            ]
        );
        assert_eq!(kinds_taking("ms"), ["delay", "latency", "scsi_latency"]);
        assert_eq!(
            kinds_taking("offset"),
            [
                "error_range",
                "errno",
                "lose",
                "corrupt",
                "no_response",
                "check_condition",
                "scsi_status"
            ]
        );
        assert!(kinds_taking("at").is_empty());
    }

    #[test]
    fn display_is_short_and_readable() {
        let delay = |read_ms, write_ms, flush_ms| FaultKind::Delay {
            read_ms,
            write_ms,
            flush_ms,
        };
        assert_eq!(delay(200, 200, 200).to_string(), "delay 200ms");
        assert_eq!(
            delay(0, 200, 0).to_string(),
            "delay read 0ms write 200ms flush 0ms"
        );
        let f = FaultKind::Flakey {
            up: Duration::from_secs(2),
            down: Duration::from_secs(1),
            drop_writes: false,
            error_writes: false,
            corrupt_bio_byte: None,
        };
        assert_eq!(f.to_string(), "flakey up 2s down 1s");
        let f = FaultKind::Flakey {
            up: Duration::from_secs(2),
            down: Duration::from_secs(1),
            drop_writes: true,
            error_writes: false,
            corrupt_bio_byte: Some(CorruptBioByte {
                nth: 32,
                op: BioDir::Read,
                value: 255,
                flags: 0,
            }),
        };
        assert_eq!(
            f.to_string(),
            "flakey up 2s down 1s drop_writes corrupt_bio_byte 32 read 255 0"
        );
        assert_eq!(FaultKind::Restore.to_string(), "restore");
        let r = FaultKind::ErrorRange {
            ranges: vec![
                ByteRange {
                    offset: 0,
                    length: 4096,
                },
                ByteRange {
                    offset: 1 << 20,
                    length: 64 << 10,
                },
            ],
        };
        assert_eq!(r.to_string(), "error_range 4KiB at 0, 64KiB at 1MiB");
        let d = FaultKind::Dust {
            bad_blocks: vec![10, 11, 200],
            block_size: 512,
            quiet: true,
        };
        assert_eq!(d.to_string(), "dust bad blocks 10, 11, 200 of 512B");
        let e = FaultKind::Errno {
            errno: Errno::from_name("ENOSPC").unwrap(),
            probability: Probability::new(0.05).unwrap(),
            op: IoOp::Write,
            range: None,
        };
        assert_eq!(e.to_string(), "errno ENOSPC 5% of writes");
        let l = FaultKind::Latency {
            latency: LatencyDist::LongTail {
                p50_ms: 5,
                p99_ms: 500,
            },
            op: IoOp::Any,
        };
        assert_eq!(l.to_string(), "latency p50 5 ms, p99 500 ms on every IO");
    }

    #[test]
    fn probabilities_format_as_percentages() {
        let p = |v| Probability::new(v).unwrap().to_string();
        assert_eq!(p(1.0), "100%");
        assert_eq!(p(0.05), "5%");
        assert_eq!(p(0.07), "7%");
        assert_eq!(p(0.001), "0.1%");
        assert_eq!(p(0.0), "0%");
        assert!(Probability::new(1.5).is_none());
        assert!(Probability::new(-0.1).is_none());
        assert!(Probability::new(f64::NAN).is_none());
    }

    #[test]
    fn flakey_down_behaviour_follows_the_kernel() {
        let flakey = |drop_writes, error_writes, corrupt: Option<BioDir>| FaultKind::Flakey {
            up: Duration::from_secs(1),
            down: Duration::from_secs(1),
            drop_writes,
            error_writes,
            corrupt_bio_byte: corrupt.map(|op| CorruptBioByte {
                nth: 7,
                op,
                value: 1,
                flags: 0,
            }),
        };
        let b = |k: FaultKind| k.flakey_down_behaviour().unwrap();
        assert_eq!(
            b(flakey(false, false, None)),
            ("reads fail".into(), "writes fail".into())
        );
        assert_eq!(
            b(flakey(true, false, None)),
            (
                "reads pass".into(),
                "writes are dropped (acknowledged, not stored)".into()
            )
        );
        assert_eq!(
            b(flakey(false, true, None)),
            ("reads pass".into(), "writes fail".into())
        );
        assert_eq!(
            b(flakey(false, false, Some(BioDir::Read))),
            ("reads get byte 7 set to 1".into(), "writes pass".into())
        );
        assert_eq!(
            b(flakey(false, false, Some(BioDir::Write))),
            ("reads pass".into(), "writes get byte 7 set to 1".into())
        );
        assert_eq!(FaultKind::Fail.flakey_down_behaviour(), None);
    }
}
