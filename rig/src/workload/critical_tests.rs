//! The critical writer against regular files on the host (a filesystem with O_DIRECT): through
//! one file, multiplexed over two opens of one file (two "paths" to one LUN), and with a path
//! that answers short. The guest scenarios (`multiplex-*` in the VM suite) cover real dm paths.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::critical::{self, CriticalConfig, CriticalMode, CriticalPath, UsablePaths};
use super::Op;

const MIB: u64 = 1 << 20;

/// A directory whose file system takes O_DIRECT, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        for base in [std::env::temp_dir(), PathBuf::from("/var/tmp")] {
            let dir = base.join(format!("pathrig-critical-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let probe = dir.join("probe");
            let ok = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&probe)
                .is_ok();
            if ok {
                return Dir(dir);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("no scratch directory with O_DIRECT");
    }

    fn file(&self, name: &str, size: u64) -> PathBuf {
        let path = self.0.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(mode: CriticalMode, op: Op, map: PathBuf, paths: Vec<CriticalPath>) -> CriticalConfig {
    CriticalConfig {
        mode,
        op,
        interval: Duration::from_millis(20),
        // Generous: the host's own disk is shared, and these tests are about the mechanics.
        deadline: Duration::from_secs(30),
        offset: MIB,
        size: 64 * 4096,
        block_size: 4096,
        map_size: 2 * MIB,
        seed: 9,
        duration: Duration::from_millis(600),
        map_node: map,
        paths,
        drain_limit: Duration::from_secs(5),
    }
}

fn path(label: &str, dev: (u32, u32), node: &Path) -> CriticalPath {
    CriticalPath {
        label: label.into(),
        dev,
        node: node.to_path_buf(),
    }
}

#[test]
fn through_the_map_every_write_is_read_back_and_verified() {
    let dir = Dir::new("map");
    let lun = dir.file("lun", 2 * MIB);
    let cfg = config(CriticalMode::ThroughMap, Op::Write, lun, Vec::new());
    let usable = UsablePaths::default();
    let r = critical::run(&cfg, &usable, Instant::now(), &AtomicBool::new(false)).unwrap();
    // 30 ticks in 600 ms, each a write and its read-back (a tick a loaded host did not let
    // the writer keep is `late`, not issued).
    let issued = r.ios;
    assert!(
        (40..=62).contains(&(issued + 2 * r.late)) && issued % 2 == 0,
        "{r:?}"
    );
    assert_eq!(r.succeeded, issued, "{r:?}");
    assert_eq!(r.deadline_misses, 0, "{r:?}");
    assert_eq!(r.verified * 2, r.succeeded, "every write read back: {r:?}");
    assert!(
        r.mismatches.is_empty() && r.first_answer.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.latency.count, issued);
}

#[test]
fn multiplexed_copies_of_one_lun_agree_and_one_path_answers_first() {
    let dir = Dir::new("mux");
    let lun = dir.file("lun", 2 * MIB);
    let paths = vec![path("a", (7, 0), &lun), path("b", (7, 1), &lun)];
    let cfg = config(CriticalMode::Multiplex, Op::Write, lun.clone(), paths);
    let usable = UsablePaths::new(vec![(7, 0), (7, 1)]);
    let r = critical::run(&cfg, &usable, Instant::now(), &AtomicBool::new(false)).unwrap();
    assert_eq!(r.succeeded, r.ios, "{r:?}");
    assert_eq!(r.deadline_misses + r.disagreements + r.failed, 0, "{r:?}");
    let firsts: u64 = r.first_answer.iter().map(|(_, n)| n).sum();
    assert_eq!(firsts, r.succeeded, "{r:?}");
    assert_eq!(r.verified * 2, r.succeeded, "{r:?}");
}

#[test]
fn a_path_that_answers_short_is_a_disagreement_but_the_read_succeeds() {
    let dir = Dir::new("short");
    let lun = dir.file("lun", 2 * MIB);
    // An empty file: every read of it comes back short (0 bytes), like a failed path.
    let broken = dir.file("broken", 0);
    let paths = vec![path("a", (7, 0), &lun), path("b", (7, 1), &broken)];
    let cfg = config(CriticalMode::Multiplex, Op::Read, lun.clone(), paths);
    let usable = UsablePaths::new(vec![(7, 0), (7, 1)]);
    let r = critical::run(&cfg, &usable, Instant::now(), &AtomicBool::new(false)).unwrap();
    let issued = r.ios;
    assert_eq!(r.succeeded, issued, "{r:?}");
    assert_eq!(r.deadline_misses, 0, "{r:?}");
    assert_eq!(r.disagreements, issued, "{r:?}");
    assert_eq!(r.first_answer, vec![("a".into(), issued), ("b".into(), 0)]);
    assert!(r.disagreement_details[0]
        .detail
        .contains("succeeded on a and failed on b"));
}

#[test]
fn with_no_usable_path_every_io_fails_at_once_and_misses() {
    let dir = Dir::new("none");
    let lun = dir.file("lun", 2 * MIB);
    let paths = vec![path("a", (7, 0), &lun)];
    let cfg = config(CriticalMode::Multiplex, Op::Write, lun.clone(), paths);
    let usable = UsablePaths::new(vec![(7, 0)]);
    usable.publish(Vec::new());
    let r = critical::run(&cfg, &usable, Instant::now(), &AtomicBool::new(false)).unwrap();
    assert!(r.ios > 0);
    assert_eq!(r.failed, r.ios, "{r:?}");
    assert_eq!(r.no_usable_path, r.failed, "{r:?}");
    assert_eq!(r.deadline_misses, r.ios, "{r:?}");
    let last = r.last_failure.unwrap();
    assert_eq!((last.copies, last.errno), (0, None));
}

#[test]
fn the_usable_set_is_seen_only_when_it_changed() {
    let usable = UsablePaths::new(vec![(1, 2)]);
    let mut seen = 0;
    assert_eq!(usable.changed_since(&mut seen), Some(vec![(1, 2)]));
    assert_eq!(usable.changed_since(&mut seen), None);
    usable.publish(vec![(1, 2)]);
    assert_eq!(usable.changed_since(&mut seen), None, "same set, no change");
    usable.publish(vec![(3, 4), (1, 2)]);
    assert_eq!(usable.changed_since(&mut seen), Some(vec![(1, 2), (3, 4)]));
}

#[test]
fn ticks_the_writer_could_not_keep_are_counted_apart() {
    let dir = Dir::new("late");
    let lun = dir.file("lun", 2 * MIB);
    // A 50 µs interval no writer keeps (each IO is a system call or more).
    let cfg = CriticalConfig {
        interval: Duration::from_micros(50),
        duration: Duration::from_millis(100),
        op: Op::Read,
        ..config(CriticalMode::ThroughMap, Op::Read, lun, Vec::new())
    };
    let usable = UsablePaths::default();
    let r = critical::run(&cfg, &usable, Instant::now(), &AtomicBool::new(false)).unwrap();
    assert!(r.late > 0, "{r:?}");
    // Not issued, so neither IOs nor misses: 100 ms of 50 µs ticks would be 2,000.
    assert!(r.ios + r.late >= 1000 && r.ios < 1000, "{r:?}");
    assert_eq!((r.succeeded, r.deadline_misses), (r.ios, 0), "{r:?}");
}
