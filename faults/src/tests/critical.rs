//! `[[critical]]`: the writers' keys and defaults, their areas against the map, the bulk
//! workload and each other, and the `critical_*` expectations with their keys.

use super::*;
use crate::critical::{CriticalMetric, CriticalMode, CriticalOp, CriticalTarget};

#[test]
fn two_writers_on_one_map_with_defaults_and_keyed_expectations() {
    let s = ok(&mini(
        "[[critical]]\nname = \"tm\"\nmode = \"through_map\"\noffset = \"60MiB\"\n\
         [[critical]]\nname = \"mx\"\nmode = \"multiplex\"\nop = \"read\"\noffset = \"62MiB\"\n\
         size = \"64KiB\"\ninterval = \"50ms\"\ndeadline = \"500ms\"\nblock_size = \"512\"\n\
         [expect]\ncritical_deadline_misses.mx = 0\ncritical_deadline_misses.tm = \"> 0\"\n\
         critical_p99_ms.m = \"< 2000\"\ncritical_ios = \"> 10\"\n",
    ));
    assert_eq!(s.critical.len(), 2);
    let (tm, mx) = (&s.critical[0], &s.critical[1]);
    assert_eq!(
        (tm.mode, tm.op, tm.offset, tm.size, tm.block_size),
        (
            CriticalMode::ThroughMap,
            CriticalOp::Write,
            60 << 20,
            1 << 20,
            4096
        )
    );
    assert_eq!(
        (tm.interval, tm.deadline),
        (Duration::from_millis(100), secs(1))
    );
    assert_eq!(
        (mx.mode, mx.op, mx.size, mx.block_size, mx.interval),
        (
            CriticalMode::Multiplex,
            CriticalOp::Read,
            64 << 10,
            512,
            Duration::from_millis(50)
        )
    );
    let c = &s.expect.critical;
    assert_eq!(c.len(), 4);
    assert_eq!(
        (c[0].metric, c[0].key),
        (
            CriticalMetric::DeadlineMisses,
            Some(CriticalTarget::Writer(1))
        )
    );
    assert_eq!(c[1].display(&s), "critical_deadline_misses.tm > 0");
    assert_eq!(c[2].key, Some(CriticalTarget::Map(s.map_id("m").unwrap())));
    assert_eq!(c[2].writers(&s), vec![0, 1]);
    assert_eq!((c[3].key, c[3].writers(&s)), (None, vec![0, 1]));
    // The plan round-trips through JSON.
    let back: Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_writer_defaults_to_its_map_name() {
    let s = ok(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"63MiB\"\n",
    ));
    assert_eq!(s.critical[0].name, "m");
    // A scenario without writers has none (and an old plan without the key reads back).
    assert!(ok(MINI).critical.is_empty());
}

#[test]
fn areas_are_aligned_inside_the_map_above_the_bulk_blocks_and_apart() {
    // Lines 10.. are the appended tables.
    let d = errors(&mini("[[critical]]\nmode = \"multiplex\"\noffset = 1000\n"));
    at(&d, 12, 10, "not whole blocks of 4KiB");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"64MiB\"\n",
    ));
    let e = at(&d, 12, 10, "past the end of map \"m\" (64MiB)");
    assert_eq!(help(e), "put it inside the map, e.g. `offset = \"63MiB\"`");
    let d = errors(&mini("[[critical]]\nmode = \"multiplex\"\noffset = 0\n"));
    at(
        &d,
        12,
        10,
        "the bulk workload on map \"m\" uses the blocks below the lowest critical area",
    );
    let d = errors(&mini(
        "[[critical]]\nname = \"x\"\nmode = \"multiplex\"\noffset = \"60MiB\"\n\
         [[critical]]\nname = \"y\"\nmode = \"through_map\"\noffset = \"60.5MiB\"\n",
    ));
    // "60.5MiB" is not a size; use bytes.
    at(&d, 17, 10, "");
    let d = errors(&mini(
        "[[critical]]\nname = \"x\"\nmode = \"multiplex\"\noffset = \"60MiB\"\n\
         [[critical]]\nname = \"y\"\nmode = \"through_map\"\noffset = 63438848\n",
    ));
    let e = at(
        &d,
        17,
        10,
        "overlaps writer \"x\"'s (60MiB..61MiB, line 10)",
    );
    assert!(help(e).contains("area of its own"));
}

#[test]
fn mistakes_in_a_writer_are_positioned() {
    let d = errors(&mini("[[critical]]\noffset = \"60MiB\"\n"));
    at(&d, 10, 1, "missing required key `mode`");
    let d = errors(&mini(
        "[[critical]]\nmode = \"everywhere\"\noffset = \"60MiB\"\n",
    ));
    at(&d, 11, 8, "");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\ninterval = \"1ms\"\n",
    ));
    at(&d, 13, 12, "`interval` 1ms is out of range");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\nblock_size = \"1MiB\"\n",
    ));
    at(&d, 13, 14, "not a power of two from 512 to 64KiB");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\nmap = \"n\"\n",
    ));
    at(&d, 13, 7, "names map \"n\", which does not exist");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\n\
         [[critical]]\nmode = \"through_map\"\noffset = \"62MiB\"\n",
    ));
    at(&d, 13, 1, "duplicate critical writer name \"m\"");
}

#[test]
fn critical_expectations_name_a_writer_or_map_and_need_a_writer() {
    let d = errors(&mini("[expect]\ncritical_deadline_misses = 0\n"));
    at(&d, 11, 1, "no critical writer to measure");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\n[expect]\ncritical_max_ms.zz = \"< 5\"\n",
    ));
    let e = at(&d, 14, 17, "names no critical writer and no map");
    assert_eq!(help(e), "writers and maps are: m");
    let d = errors(&mini(
        "[[critical]]\nmode = \"multiplex\"\noffset = \"60MiB\"\n[expect]\ncritical_ios = \"about 5\"\n",
    ));
    at(&d, 14, 16, "bad comparison");
    let d = errors(&mini("[expect]\ncritical_deadline_mises = 0\n"));
    assert!(
        help(at(&d, 11, 1, "unknown metric")).contains("did you mean `critical_deadline_misses`")
    );
}
