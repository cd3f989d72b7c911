//! The fault toolbox through the public API: every kind and parameter, its errors (with their
//! positions), leg backends and dm layers, repeating windows, and the overlap rules of dm and
//! FUSE kinds.

use std::path::Path;
use std::time::Duration;

use faults::{
    parse, Backend, BioDir, ByteRange, CorruptBioByte, Diagnostic, Diagnostics, FaultKind, IoOp,
    LatencyDist, Layer, Probability, Repeat, Scenario, StepAction,
};

/// Sixteen lines: map "m" of 4 MiB; legs "a" (loop, dm layer), "f" (FUSE backend, dm layer) and
/// "n" (loop, no dm layer); a 10 s workload. A fault appended with [`with`] starts on line 17
/// (its `[[fault]]` header), its first key on line 18.
const BASE: &str = r#"name = "t"
[manager]
kind = "none"
[[map]]
name = "m"
size = "4MiB"
[[leg]]
name = "a"
[[leg]]
name = "f"
backend = "fuse"
[[leg]]
name = "n"
dm_layer = false
[workload]
duration = "10s"
"#;

/// BASE with one `[[fault]]` per element of `faults` (each a block of `key = value` lines).
fn with(faults: &[&str]) -> String {
    let mut s = BASE.to_string();
    for f in faults {
        s.push_str("[[fault]]\n");
        s.push_str(f.trim_start_matches('\n'));
        if !f.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// Parses a valid scenario, and checks that it survives the trip through JSON the plan makes.
fn ok(text: &str) -> Scenario {
    let s = parse(Path::new("t.toml"), text)
        .unwrap_or_else(|e| panic!("expected valid:\n{e}\n---\n{text}"));
    let back: Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s, "changed on its way through JSON:\n{text}");
    s
}

fn kind(text: &str) -> FaultKind {
    ok(text).faults[0].kind.clone()
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(Path::new("t.toml"), text) {
        Ok(s) => panic!("expected errors, got {:#?}", s.faults),
        Err(e) => e.0,
    }
}

/// The only error, which must be at `line:column` and contain `needle`; returns its help.
#[track_caller]
fn only(text: &str, line: usize, column: usize, needle: &str) -> String {
    let d = errors(text);
    let all = Diagnostics(d.clone()).to_string();
    assert_eq!(d.len(), 1, "expected one error, got:\n{all}");
    let e = &d[0];
    assert_eq!((e.line, e.column), (line, column), "position of:\n{all}");
    assert!(e.message.contains(needle), "{needle:?} not in:\n{all}");
    e.help.clone().unwrap_or_default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- error_range ----

#[test]
fn error_range_with_one_range() {
    let k = kind(&with(&[
        "at = \"1s\"\nleg = \"a\"\nkind = \"error_range\"\noffset = \"1MiB\"\nlength = \"64KiB\"",
    ]));
    assert_eq!(
        k,
        FaultKind::ErrorRange {
            ranges: vec![ByteRange {
                offset: 1 << 20,
                length: 64 << 10
            }]
        }
    );
    assert_eq!(k.layer(), Layer::Dm);
}

#[test]
fn error_range_with_several_ranges_sorted() {
    let k = kind(&with(&[r#"at = "1s"
leg = "a"
kind = "error_range"
ranges = [{ offset = "2MiB", length = 512 }, { offset = 0, length = "4KiB" }]"#]));
    assert_eq!(
        k,
        FaultKind::ErrorRange {
            ranges: vec![
                ByteRange {
                    offset: 0,
                    length: 4096
                },
                ByteRange {
                    offset: 2 << 20,
                    length: 512
                },
            ]
        }
    );
}

#[test]
fn error_range_mistakes() {
    let fault = |params: &str| {
        with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"error_range\"\n{params}"
        )])
    };
    // Not 512-byte aligned: at the value.
    let help = only(
        &fault("offset = 1000\nlength = \"4KiB\""),
        21,
        10,
        "`offset` = 1000 bytes is not a multiple of 512 bytes",
    );
    assert!(help.contains("512-byte sectors"), "{help}");
    only(
        &fault("offset = 0\nlength = 0"),
        22,
        10,
        "`length` must be longer than 0",
    );
    // Half a range.
    let help = only(
        &fault("offset = \"1MiB\""),
        17,
        1,
        "kind = \"error_range\" needs `length`",
    );
    assert!(help.contains("length = \"64KiB\""), "{help}");
    // Nothing at all.
    let help = only(
        &fault(""),
        17,
        1,
        "needs `offset` and `length`, or `ranges`",
    );
    assert!(help.contains("ranges = [{"), "{help}");
    // Both forms.
    only(
        &fault("offset = 0\nranges = [{ offset = 0, length = 512 }]"),
        21,
        1,
        "`offset` cannot be combined with `ranges`",
    );
    // Overlapping ranges: at the later one.
    let help = only(
        &fault("ranges = [{ offset = \"1MiB\", length = \"8KiB\" }, { offset = \"1028KiB\", length = \"4KiB\" }]"),
        21,
        60,
        "the range 4KiB at 1028KiB overlaps the range 8KiB at 1MiB (line 21)",
    );
    assert!(help.contains("merge"), "{help}");
    only(&fault("ranges = []"), 21, 10, "`ranges` is empty");
    let d = errors(&fault("ranges = [{ offset = 0, lenght = 512 }]"));
    let got: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (21, 11, "this range needs `length`"),
            (21, 25, "unknown key `lenght` in a range in `ranges`")
        ]
    );
    // Past the end of the device (map m is 4 MiB).
    let help = only(
        &fault("offset = \"4092KiB\"\nlength = \"8KiB\""),
        21,
        10,
        "the range 8KiB at 4092KiB reaches past the end of leg \"a\"",
    );
    assert_eq!(help, "keep it inside the device: map \"m\" is 4MiB");
    // Ending exactly at the end is fine.
    ok(&fault("offset = \"4088KiB\"\nlength = \"8KiB\""));
}

// ---- flakey features ----

#[test]
fn flakey_features() {
    let flakey = |params: &str| {
        kind(&with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"flakey\"\nup = \"1s\"\ndown = \"2s\"\n{params}"
        )]))
    };
    assert_eq!(flakey(""), FaultKind::flakey(secs(1), secs(2)));
    assert_eq!(
        flakey("drop_writes = true"),
        FaultKind::Flakey {
            up: secs(1),
            down: secs(2),
            drop_writes: true,
            error_writes: false,
            corrupt_bio_byte: None
        }
    );
    assert!(matches!(
        flakey("error_writes = true\ndrop_writes = false"),
        FaultKind::Flakey {
            error_writes: true,
            drop_writes: false,
            ..
        }
    ));
    assert_eq!(
        flakey("corrupt_bio_byte = { nth = 32, op = \"read\", value = 255 }"),
        FaultKind::Flakey {
            up: secs(1),
            down: secs(2),
            drop_writes: false,
            error_writes: false,
            corrupt_bio_byte: Some(CorruptBioByte {
                nth: 32,
                op: BioDir::Read,
                value: 255,
                flags: 0
            })
        }
    );
    // Dropped writes and corrupted reads go together.
    let k = flakey(
        "drop_writes = true\ncorrupt_bio_byte = { nth = 1, op = \"read\", value = 0, flags = 8 }",
    );
    assert!(matches!(
        k,
        FaultKind::Flakey {
            drop_writes: true,
            corrupt_bio_byte: Some(CorruptBioByte { flags: 8, .. }),
            ..
        }
    ));
}

#[test]
fn flakey_feature_mistakes() {
    let fault = |params: &str| {
        with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"flakey\"\nup = \"1s\"\ndown = \"2s\"\n{params}"
        )])
    };
    let help = only(
        &fault("drop_writes = true\nerror_writes = true"),
        24,
        1,
        "`error_writes` cannot be combined with `drop_writes`",
    );
    assert!(help.starts_with("dm-flakey takes one of them"), "{help}");
    let help = only(
        &fault("error_writes = true\ncorrupt_bio_byte = { nth = 1, op = \"write\", value = 0 }"),
        24,
        1,
        "`corrupt_bio_byte` with op = \"write\" cannot be combined with `error_writes`",
    );
    assert!(help.contains("op = \"read\""), "{help}");
    let help = only(
        &fault("corrupt_bio_byte = { nth = 1, value = 0 }"),
        23,
        20,
        "corrupt_bio_byte needs `op`",
    );
    assert!(help.contains("op = \"read\""), "{help}");
    only(
        &fault("corrupt_bio_byte = { nth = 0, op = \"read\", value = 0 }"),
        23,
        28,
        "`nth` is out of range: 0",
    );
    only(
        &fault("corrupt_bio_byte = { nth = 1, op = \"read\", value = 256 }"),
        23,
        52,
        "`value` is out of range: 256",
    );
    only(
        &fault("corrupt_bio_byte = { nth = 1, op = \"rw\", value = 1 }"),
        23,
        36,
        "unknown op \"rw\"",
    );
    only(
        &fault("corrupt_bio_byte = 32"),
        23,
        20,
        "`corrupt_bio_byte` must be a table, found an integer",
    );
    only(
        &fault("drop_writes = \"yes\""),
        23,
        15,
        "`drop_writes` must be a boolean",
    );
    // Features belong to flakey only.
    let help = only(
        &with(&["at = \"1s\"\nleg = \"a\"\nkind = \"fail\"\ndrop_writes = true"]),
        21,
        1,
        "`drop_writes` does not apply to kind = \"fail\"",
    );
    assert_eq!(
        help,
        "`drop_writes` is a parameter of kind = \"flakey\" only"
    );
}

// ---- delay ----

#[test]
fn delay_for_all_or_per_class() {
    let delay = |params: &str| {
        kind(&with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"delay\"\n{params}"
        )]))
    };
    assert_eq!(delay("ms = 200"), FaultKind::delay(200));
    assert_eq!(
        delay("write_ms = 200"),
        FaultKind::Delay {
            read_ms: 0,
            write_ms: 200,
            flush_ms: 0
        }
    );
    assert_eq!(
        delay("flush_ms = 1000\nread_ms = 5"),
        FaultKind::Delay {
            read_ms: 5,
            write_ms: 0,
            flush_ms: 1000
        }
    );
}

#[test]
fn delay_mistakes() {
    let fault = |params: &str| {
        with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"delay\"\n{params}"
        )])
    };
    let help = only(
        &fault("ms = 100\nwrite_ms = 200"),
        22,
        1,
        "`write_ms` cannot be combined with `ms`",
    );
    assert!(help.contains("the ones left out are 0"), "{help}");
    only(
        &fault("read_ms = 0\nwrite_ms = 0"),
        21,
        1,
        "every delay of this fault is 0 ms: it would do nothing",
    );
    only(
        &fault("write_ms = 60001"),
        21,
        12,
        "`write_ms` is out of range: 60001",
    );
    only(
        &fault(""),
        17,
        1,
        "kind = \"delay\" needs `ms` (or `read_ms`, `write_ms`, `flush_ms`)",
    );
}

// ---- dust ----

#[test]
fn dust_bad_blocks() {
    let k = kind(&with(&[
        "at = \"1s\"\nleg = \"a\"\nkind = \"dust\"\nbad_blocks = [200, 10, 11]",
    ]));
    assert_eq!(
        k,
        FaultKind::Dust {
            bad_blocks: vec![10, 11, 200],
            block_size: 512,
            quiet: false
        }
    );
    let k = kind(&with(&[
        "at = \"1s\"\nleg = \"a\"\nkind = \"dust\"\nbad_blocks = []\nblock_size = \"4KiB\"\nquiet = true",
    ]));
    assert_eq!(
        k,
        FaultKind::Dust {
            bad_blocks: vec![],
            block_size: 4096,
            quiet: true
        }
    );
    // The last block of a 4 MiB map in 512-byte blocks is 8191.
    ok(&with(&[
        "at = \"1s\"\nleg = \"a\"\nkind = \"dust\"\nbad_blocks = [8191]",
    ]));
}

#[test]
fn dust_mistakes() {
    let fault = |params: &str| {
        with(&[&format!(
            "at = \"1s\"\nleg = \"a\"\nkind = \"dust\"\n{params}"
        )])
    };
    let help = only(
        &fault("bad_blocks = [8192]"),
        21,
        15,
        "bad block 8192 (512-byte blocks) reaches past the end of leg \"a\"",
    );
    assert_eq!(
        help,
        "map \"m\" is 4MiB: its blocks of 512 bytes are numbered 0 to 8191"
    );
    let help = only(
        &fault("bad_blocks = [1, 2, 1]"),
        21,
        21,
        "bad block 1 is listed twice",
    );
    assert!(help.contains("line 21, column 15"), "{help}");
    only(
        &fault("bad_blocks = [1]\nblock_size = 1000"),
        22,
        14,
        "dust block size 1000 bytes is not a power of two from 512 bytes to 1GiB",
    );
    only(
        &fault("bad_blocks = [1]\nblock_size = \"8MiB\""),
        22,
        14,
        "a dust block of 8MiB reaches past the end of leg \"a\"",
    );
    let help = only(&fault(""), 17, 1, "kind = \"dust\" needs `bad_blocks`");
    assert!(help.contains("bad_blocks = [10, 11, 200]"), "{help}");
    only(
        &fault("bad_blocks = 10"),
        21,
        14,
        "`bad_blocks` must be an array of block numbers, found an integer",
    );
    only(
        &fault("bad_blocks = [\"10\"]"),
        21,
        15,
        "`bad_blocks` must hold block numbers, found a string",
    );
}

// ---- legs: backends and dm layers ----

#[test]
fn leg_backends_and_dm_layers() {
    let s = ok(BASE);
    let legs: Vec<(&str, Backend, bool)> = s
        .legs
        .iter()
        .map(|l| (l.name.as_str(), l.backend, l.dm_layer))
        .collect();
    assert_eq!(
        legs,
        [
            ("a", Backend::Loop, true),
            ("f", Backend::Fuse, true),
            ("n", Backend::Loop, false)
        ]
    );
    // kernel_fail works on any leg: it acts on the path in the map.
    ok(&with(&["at = \"1s\"\nleg = \"n\"\nkind = \"kernel_fail\""]));
    // dm kinds work on a FUSE leg with a dm layer.
    ok(&with(&["at = \"1s\"\nleg = \"f\"\nkind = \"fail\""]));
    let d = errors(&BASE.replace("backend = \"fuse\"", "backend = \"nbd\""));
    assert_eq!((d[0].line, d[0].column), (11, 11));
    assert_eq!(d[0].message, "unknown backend \"nbd\"");
}

#[test]
fn dm_kinds_need_a_dm_layer() {
    let help = only(
        &with(&["at = \"1s\"\nleg = \"n\"\nkind = \"dust\"\nbad_blocks = [1]"]),
        20,
        8,
        "a dust fault on leg \"n\", which has no dm layer",
    );
    assert_eq!(
        help,
        "dm fault kinds (fail, delay, flakey, error_range, dust) act on the leg's dm device: remove `dm_layer = false` from leg \"n\" (line 12)"
    );
    only(
        &with(&["at = \"1s\"\nleg = \"n\"\nkind = \"error_range\"\noffset = 0\nlength = 512"]),
        20,
        8,
        "an error_range fault on leg \"n\", which has no dm layer",
    );
    let help = only(
        &with(&["at = \"1s\"\nleg = \"n\"\nkind = \"restore\""]),
        20,
        8,
        "a restore on leg \"n\", which has neither a dm layer nor a FUSE or SCSI backend",
    );
    assert!(help.starts_with("remove this fault"), "{help}");
}

#[test]
fn fuse_kinds_need_a_fuse_backend() {
    let help = only(
        &with(&["at = \"1s\"\nleg = \"a\"\nkind = \"errno\"\nerrno = \"EIO\""]),
        20,
        8,
        "an errno fault on leg \"a\", whose backend is \"loop\"",
    );
    assert_eq!(
        help,
        "FUSE fault kinds (errno, latency, hang, lose, corrupt) act in the FUSE file server under a leg: set `backend = \"fuse\"` on leg \"a\" (line 7)"
    );
    only(
        &with(&["at = \"1s\"\nleg = \"n\"\nkind = \"hang\""]),
        20,
        8,
        "a hang fault on leg \"n\", whose backend is \"loop\"",
    );
}

// ---- FUSE kinds ----

#[test]
fn fuse_kinds_parse_with_defaults() {
    let fuse = |params: &str| {
        kind(&with(&[&format!(
            "at = \"1s\"\nfor = \"2s\"\nleg = \"f\"\n{params}"
        )]))
    };
    assert_eq!(
        fuse("kind = \"errno\"\nerrno = \"ENOSPC\"\nprobability = 0.05\nop = \"write\""),
        FaultKind::Errno {
            errno: faults::Errno::from_name("ENOSPC").unwrap(),
            probability: Probability::new(0.05).unwrap(),
            op: IoOp::Write,
            range: None
        }
    );
    let k = fuse("kind = \"errno\"\nerrno = \"ETIMEDOUT\"\noffset = \"1MiB\"\nlength = 4096");
    assert_eq!(
        k,
        FaultKind::Errno {
            errno: faults::Errno {
                name: "ETIMEDOUT",
                code: 110
            },
            probability: Probability::ALWAYS,
            op: IoOp::Any,
            range: Some(ByteRange {
                offset: 1 << 20,
                length: 4096
            })
        }
    );
    assert_eq!(k.layer(), Layer::Fuse);
    assert_eq!(
        fuse("kind = \"latency\"\nms = 50"),
        FaultKind::Latency {
            latency: LatencyDist::Fixed { ms: 50 },
            op: IoOp::Any
        }
    );
    assert_eq!(
        fuse("kind = \"latency\"\nmin_ms = 10\nmax_ms = 100\nop = \"read\""),
        FaultKind::Latency {
            latency: LatencyDist::Uniform {
                min_ms: 10,
                max_ms: 100
            },
            op: IoOp::Read
        }
    );
    assert_eq!(
        fuse("kind = \"latency\"\np50_ms = 5\np99_ms = 500"),
        FaultKind::Latency {
            latency: LatencyDist::LongTail {
                p50_ms: 5,
                p99_ms: 500
            },
            op: IoOp::Any
        }
    );
    assert_eq!(
        fuse("kind = \"hang\"\nop = \"flush\""),
        FaultKind::Hang { op: IoOp::Flush }
    );
    assert_eq!(
        fuse("kind = \"lose\"\nprobability = 1"),
        FaultKind::Lose {
            probability: Probability::ALWAYS,
            range: None
        }
    );
    assert_eq!(
        fuse("kind = \"corrupt\"\nprobability = 0\nop = \"read\""),
        FaultKind::Corrupt {
            probability: Probability::new(0.0).unwrap(),
            op: IoOp::Read,
            range: None
        }
    );
    // A hang without `for` holds IO until a restore or the end of the run.
    ok(&with(&["at = \"1s\"\nleg = \"f\"\nkind = \"hang\""]));
}

#[test]
fn fuse_kind_mistakes() {
    let fault = |params: &str| with(&[&format!("at = \"1s\"\nleg = \"f\"\n{params}")]);
    let help = only(
        &fault("kind = \"errno\"\nerrno = \"EIO\"\nprobability = 1.5"),
        22,
        15,
        "`probability` = 1.5 is outside the range 0..=1",
    );
    assert!(help.contains("a number from 0 to 1"), "{help}");
    only(
        &fault("kind = \"lose\"\nprobability = -0.1"),
        21,
        15,
        "`probability` = -0.1 is outside the range 0..=1",
    );
    only(
        &fault("kind = \"corrupt\"\nprobability = \"5%\""),
        21,
        15,
        "`probability` must be a number, found a string",
    );
    let help = only(
        &fault("kind = \"errno\"\nerrno = \"EIOO\""),
        21,
        9,
        "unknown errno \"EIOO\"",
    );
    assert!(help.starts_with("did you mean \"EIO\"?"), "{help}");
    only(
        &fault("kind = \"errno\""),
        17,
        1,
        "kind = \"errno\" needs `errno`",
    );
    only(
        &fault("kind = \"corrupt\"\nop = \"flush\""),
        21,
        6,
        "unknown op \"flush\"",
    );
    only(
        &fault("kind = \"latency\"\nms = 5\nmin_ms = 1\nmax_ms = 9"),
        22,
        1,
        "`min_ms` and `max_ms` (uniform) cannot be combined with `ms` (fixed)",
    );
    only(
        &fault("kind = \"latency\"\nmin_ms = 100\nmax_ms = 10"),
        21,
        1,
        "`min_ms` = 100 is more than `max_ms` = 10",
    );
    let help = only(
        &fault("kind = \"latency\"\np50_ms = 5"),
        17,
        1,
        "kind = \"latency\" with `p50_ms` and `p99_ms` needs both",
    );
    assert!(help.starts_with("add `p99_ms = 500`"), "{help}");
    only(
        &fault("kind = \"latency\""),
        17,
        1,
        "kind = \"latency\" needs `ms`, `min_ms` and `max_ms`, or `p50_ms` and `p99_ms`",
    );
    only(
        &fault("kind = \"errno\"\nerrno = \"EIO\"\noffset = 512"),
        17,
        1,
        "kind = \"errno\" with a range needs `length`",
    );
    only(
        &fault("kind = \"lose\"\noffset = \"4MiB\"\nlength = 512"),
        21,
        10,
        "the range 512 bytes at 4MiB reaches past the end of leg \"f\"",
    );
    let help = only(
        &fault("kind = \"hang\"\nprobability = 0.5"),
        21,
        1,
        "`probability` does not apply to kind = \"hang\"",
    );
    assert_eq!(
        help,
        "`probability` is a parameter of kind = \"errno\" or \"lose\" or \"corrupt\" or \"no_response\" or \"check_condition\" or \"scsi_status\" only"
    );
}

// ---- repeating windows ----

#[test]
fn every_and_times_expand_in_the_timeline() {
    let s = ok(&with(&[
        "at = \"1.5s\"\nfor = \"0.5s\"\nevery = \"3s\"\ntimes = 3\nleg = \"a\"\nkind = \"fail\"",
        "at = \"5s\"\nleg = \"n\"\nkind = \"kernel_fail\"",
    ]));
    assert_eq!(
        s.faults[0].repeat,
        Some(Repeat {
            every: secs(3),
            times: 3
        })
    );
    assert_eq!(s.faults[0].times(), 3);
    assert_eq!(s.faults[1].times(), 1);
    let steps: Vec<(Duration, &str, bool, usize, u32)> = s
        .timeline()
        .iter()
        .map(|st| {
            (
                st.at,
                if s.leg(st.leg).name == "a" { "a" } else { "n" },
                matches!(st.action, StepAction::Restore),
                st.fault.index(),
                st.repetition,
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        steps,
        [
            (ms(1500), "a", false, 0, 0),
            (ms(2000), "a", true, 0, 0),
            (ms(4500), "a", false, 0, 1),
            (secs(5), "a", true, 0, 1),
            (secs(5), "n", false, 1, 0),
            (ms(7500), "a", false, 0, 2),
            (secs(8), "a", true, 0, 2),
        ]
    );
    // The last window may end exactly with the workload.
    ok(&with(&[
        "at = \"1s\"\nfor = \"1s\"\nevery = \"4s\"\ntimes = 3\nleg = \"a\"\nkind = \"fail\"",
    ]));
}

#[test]
fn every_and_times_mistakes() {
    let fault = |params: &str| with(&[&format!("leg = \"a\"\nkind = \"fail\"\n{params}")]);
    let help = only(
        &fault("at = \"1s\"\nfor = \"2s\"\nevery = \"2s\"\ntimes = 2"),
        22,
        9,
        "`every` = 2s is not longer than `for` = 2s",
    );
    assert!(help.contains("make it longer than `for`"), "{help}");
    let help = only(
        &fault("at = \"1s\"\nevery = \"2s\"\ntimes = 2"),
        21,
        1,
        "`every` repeats the fault's `for` window, but this fault has no `for`",
    );
    assert!(help.starts_with("add `for`"), "{help}");
    only(
        &fault("at = \"1s\"\nfor = \"1s\"\ntimes = 2"),
        22,
        1,
        "`times` needs `every`",
    );
    only(
        &fault("at = \"1s\"\nfor = \"1s\"\nevery = \"2s\""),
        22,
        1,
        "`every` needs `times`",
    );
    only(
        &fault("at = \"1s\"\nfor = \"1s\"\nevery = \"2s\"\ntimes = 0"),
        23,
        9,
        "`times` is out of range: 0",
    );
    // Windows at 1, 4, 7, 10 s: the fourth ends at 11 s, after the 10 s workload.
    let help = only(
        &fault("at = \"1s\"\nfor = \"1s\"\nevery = \"3s\"\ntimes = 4"),
        23,
        9,
        "the last of 4 windows ends at 11s, after the workload ends at 10s",
    );
    assert_eq!(
        help,
        "every window must end before the workload does: make `times` at most 3, `every` shorter, or start the fault earlier"
    );
    // A repeated window overlapping another dm fault is reported at `every`.
    let d = errors(&with(&[
        "at = \"1s\"\nfor = \"1s\"\nevery = \"3s\"\ntimes = 2\nleg = \"a\"\nkind = \"fail\"",
        "at = \"3.5s\"\nfor = \"1s\"\nleg = \"a\"\nkind = \"delay\"\nms = 5",
    ]));
    assert_eq!(d.len(), 1, "{}", Diagnostics(d.clone()));
    assert_eq!((d[0].line, d[0].column), (20, 9));
    assert_eq!(
        d[0].message,
        "window 2 of 2 of this fault (at 4s) on leg \"a\" overlaps the fault on line 24, whose window lasts until 4.5s"
    );
}

// ---- overlap rules: dm kinds exclusive, FUSE kinds compose ----

#[test]
fn fuse_kinds_compose_and_dm_kinds_do_not_overlap() {
    // latency + errno on one FUSE leg, overlapping, and a dm fault on the same leg meanwhile.
    ok(&with(&[
        "at = \"1s\"\nfor = \"5s\"\nleg = \"f\"\nkind = \"latency\"\nms = 20",
        "at = \"2s\"\nfor = \"2s\"\nleg = \"f\"\nkind = \"errno\"\nerrno = \"EIO\"\nprobability = 0.1",
        "at = \"1s\"\nfor = \"1s\"\nleg = \"f\"\nkind = \"fail\"",
        "at = \"3s\"\nleg = \"f\"\nkind = \"kernel_fail\"",
    ]));
    // Two dm kinds on one leg may not overlap.
    let d = errors(&with(&[
        "at = \"1s\"\nfor = \"5s\"\nleg = \"f\"\nkind = \"delay\"\nms = 20",
        "at = \"2s\"\nleg = \"f\"\nkind = \"dust\"\nbad_blocks = [1]",
    ]));
    assert_eq!(d.len(), 1, "{}", Diagnostics(d.clone()));
    assert_eq!((d[0].line, d[0].column), (24, 6));
    assert_eq!(
        d[0].message,
        "the fault at 2s on leg \"f\" overlaps the fault on line 17, whose window lasts until 6s"
    );
    // A restore inside a FUSE window would end it early.
    let d = errors(&with(&[
        "at = \"1s\"\nfor = \"5s\"\nleg = \"f\"\nkind = \"hang\"",
        "at = \"2s\"\nleg = \"f\"\nkind = \"restore\"",
    ]));
    assert_eq!(d.len(), 1, "{}", Diagnostics(d.clone()));
    assert_eq!((d[0].line, d[0].column), (23, 6));
    assert!(
        d[0].help
            .as_deref()
            .unwrap()
            .starts_with("a restore ends every fault on the leg: restore at 6s or later"),
        "{}",
        d[0]
    );
    // ...but it may end an open-ended one, and two FUSE faults may start together.
    ok(&with(&[
        "at = \"1s\"\nleg = \"f\"\nkind = \"hang\"\nop = \"write\"",
        "at = \"1s\"\nleg = \"f\"\nkind = \"corrupt\"\nop = \"read\"",
        "at = \"2s\"\nleg = \"f\"\nkind = \"restore\"",
    ]));
    let d = errors(&with(&[
        "at = \"1s\"\nleg = \"f\"\nkind = \"hang\"",
        "at = \"1s\"\nleg = \"f\"\nkind = \"restore\"",
    ]));
    assert!(
        d[0].message
            .contains("two faults on leg \"f\" start at the same time (1s)"),
        "{}",
        d[0]
    );
}

#[test]
fn new_kinds_serialize_for_reports() {
    let s = ok(&with(&[
        "at = \"1s\"\nleg = \"a\"\nkind = \"dust\"\nbad_blocks = [3]",
        "at = \"1s\"\nfor = \"1s\"\nevery = \"2s\"\ntimes = 2\nleg = \"f\"\nkind = \"errno\"\nerrno = \"EIO\"\nprobability = 0.25",
    ]));
    let v = serde_json::to_value(&s.faults).unwrap();
    assert_eq!(
        v[0]["kind"],
        serde_json::json!({"kind": "dust", "bad_blocks": [3], "block_size": 512, "quiet": false})
    );
    assert_eq!(
        v[1]["kind"],
        serde_json::json!({"kind": "errno", "errno": "EIO", "probability": 0.25, "op": "any", "range": null})
    );
    assert_eq!(
        v[1]["repeat"],
        serde_json::json!({"every": {"secs": 2, "nanos": 0}, "times": 2})
    );
    let legs = serde_json::to_value(&s.legs).unwrap();
    assert_eq!(legs[1]["backend"], "fuse");
    assert_eq!(legs[2]["dm_layer"], false);
}

// ---- the README ----

#[test]
fn the_readme_fault_reference_examples_are_valid() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("\n## Fault reference\n")
        .nth(1)
        .expect("README has a fault reference")
        .split("\n## ")
        .next()
        .unwrap();
    let blocks: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 8, "{} examples", blocks.len());
    // Leg a is a loop leg with a dm layer, leg f has the FUSE backend (as the README says).
    let base = "name = \"readme\"\n[manager]\nkind = \"none\"\n[[map]]\nname = \"m\"\nsize = \"64MiB\"\n[[leg]]\nname = \"a\"\n[[leg]]\nname = \"f\"\nbackend = \"fuse\"\n[workload]\nduration = \"10s\"\n";
    let mut kinds = Vec::new();
    for block in blocks {
        let s = parse(Path::new("readme.toml"), &format!("{base}{block}\n"))
            .unwrap_or_else(|e| panic!("README example does not validate:\n{e}\n---\n{block}"));
        kinds.extend(s.faults.iter().map(|f| f.kind.name()));
    }
    for kind in [
        "fail",
        "delay",
        "flakey",
        "error_range",
        "dust",
        "kernel_fail",
        "errno",
        "latency",
        "hang",
    ] {
        assert!(kinds.contains(&kind), "no README example of {kind}");
    }
}
