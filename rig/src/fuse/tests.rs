//! Host tests of the FUSE server: they mount real FUSE file systems and so need root and
//! `/dev/fuse`; they fail (never skip) without them. Every mount is undone by the fixture's
//! drop, on failure too.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::mount::is_mounted;
use super::*;
use crate::backing;

const SIZE: u64 = 1 << 20;
const MS: Duration = Duration::from_millis(1);

/// The byte the backing file starts with at `offset`.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8 ^ (offset / 4096) as u8
}

fn pattern_at(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64).map(pattern).collect()
}

/// A work directory `/tmp/pathrig-fusetest-*` with a patterned backing file and a server
/// mounted at `mnt/`. Dropping it unmounts (lazily if need be) and removes the directory.
struct Fixture {
    server: Option<FuseServer>,
    dir: PathBuf,
    backing: PathBuf,
    mnt: PathBuf,
}

impl Fixture {
    fn new(legs: &[&str], seed: u64) -> Fixture {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pathrig-fusetest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let backing = dir.join("backing.img");
        let mut file = File::create(&backing).unwrap();
        file.write_all(&pattern_at(0, SIZE as usize)).unwrap();
        drop(file);
        let mut fixture = Fixture {
            server: None,
            mnt: dir.join("mnt"),
            dir,
            backing,
        };
        let server = FuseServer::start(&fixture.mnt, &fixture.backing, SIZE, legs, seed)
            .expect("mount the FUSE server (needs root and /dev/fuse)");
        fixture.mnt = server.mountpoint().to_path_buf();
        fixture.server = Some(server);
        fixture
    }

    fn server(&self) -> &FuseServer {
        self.server.as_ref().unwrap()
    }

    fn control(&self) -> FuseControl {
        self.server().control()
    }

    fn open(&self, leg: &str) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.server().file_path(leg))
            .unwrap()
    }

    fn backing_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        File::open(&self.backing)
            .unwrap()
            .read_exact_at(&mut buf, offset)
            .unwrap();
        buf
    }

    fn take(&mut self) -> FuseServer {
        self.server.take().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.server.take());
        if is_mounted(&self.mnt) {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

fn errno_rule(errno: i32, probability: f64) -> FaultRule {
    FaultRule::new(FaultAction::Errno { errno, probability })
}

#[test]
fn round_trip_through_the_fuse_file_and_two_legs_see_the_same_data() {
    let fx = Fixture::new(&["a", "b"], 1);
    let names: Vec<_> = std::fs::read_dir(&fx.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(fx.server().file_path("a").metadata().unwrap().len(), SIZE);

    let (a, b) = (fx.open("a"), fx.open("b"));
    assert_eq!(read_at(&a, 0, 4096).unwrap(), pattern_at(0, 4096));
    assert_eq!(read_at(&b, 12345, 100).unwrap(), pattern_at(12345, 100));
    let data = vec![0xab; 4096];
    a.write_all_at(&data, 8192).unwrap();
    assert_eq!(
        fx.backing_at(8192, 4096),
        data,
        "the write lands in the backing file"
    );
    assert_eq!(
        read_at(&b, 8192, 4096).unwrap(),
        data,
        "leg b sees leg a's write"
    );
    // Reads past the end are short, writes past the end fail.
    assert_eq!(b.read_at(&mut [0; 8192], SIZE - 100).unwrap(), 100);
    assert_eq!(
        a.write_at(&[1], SIZE).unwrap_err().raw_os_error(),
        Some(libc::ENOSPC)
    );
    let counts = fx.control().counts("a");
    assert_eq!((counts.reads, counts.writes), (1, 2));
    assert_eq!(
        counts.errors, 0,
        "an ENOSPC past the end is no injected error"
    );
}

/// An O_DIRECT-ready buffer: `len` bytes aligned to 4 KiB inside `storage`.
fn aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    storage.resize(len + 4096, 0);
    let start = storage.as_ptr().align_offset(4096);
    &mut storage[start..start + len]
}

struct LoopGuard(Option<PathBuf>);

impl LoopGuard {
    fn detach(mut self) -> Result<(), crate::RigError> {
        backing::detach_loop(&self.0.take().unwrap())
    }
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = backing::detach_loop(&path);
        }
    }
}

#[test]
fn round_trip_through_a_loop_device_on_the_fuse_file() {
    let mut fx = Fixture::new(&["a", "b"], 1);
    let lo = backing::attach_loop(&fx.server().file_path("a")).expect("attach a loop device");
    let guard = LoopGuard(Some(lo.path.clone()));
    {
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&lo.path)
            .unwrap();
        let mut storage = Vec::new();
        let buf = aligned(&mut storage, 8192);
        dev.read_exact_at(buf, 65536).unwrap();
        assert_eq!(buf, &pattern_at(65536, 8192)[..]);
        buf.fill(0x5a);
        dev.write_all_at(buf, 4096).unwrap();
        assert_eq!(fx.backing_at(4096, 8192), vec![0x5a; 8192]);
        assert_eq!(
            read_at(&fx.open("b"), 4096, 8192).unwrap(),
            vec![0x5a; 8192]
        );
    }
    let counts = fx.control().counts("a");
    assert!(counts.reads >= 1 && counts.writes >= 1, "{counts:?}");
    guard.detach().expect("detach the loop device");
    // Nothing holds the file any more: a clean unmount.
    fx.take()
        .unmount()
        .expect("unmount after the loop device is gone");
}

#[test]
fn an_errno_rule_fails_reads_and_leaves_writes_alone() {
    let fx = Fixture::new(&["a", "b"], 1);
    let ctl = fx.control();
    ctl.set_rules("a", vec![errno_rule(libc::EIO, 1.0).ops(&[OpKind::Read])]);
    let a = fx.open("a");
    let err = read_at(&a, 0, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    a.write_all_at(&[7; 512], 0).unwrap();
    assert_eq!(fx.backing_at(0, 512), vec![7; 512]);
    assert_eq!(
        read_at(&fx.open("b"), 0, 512).unwrap(),
        vec![7; 512],
        "other legs unaffected"
    );
    // Another errno, on flushes only.
    ctl.set_rules(
        "a",
        vec![errno_rule(libc::ENOSPC, 1.0).ops(&[OpKind::Flush])],
    );
    assert_eq!(a.sync_all().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(read_at(&a, 0, 512).unwrap(), vec![7; 512]);
    ctl.clear("a");
    a.sync_all().unwrap();
    let counts = ctl.counts("a");
    assert_eq!(counts.errors, 2, "{counts:?}");
    assert_eq!(counts.reads, 2);
    assert_eq!(counts.writes, 1);
    assert_eq!(counts.flushes, 2);
    assert_eq!(ctl.counts("b").errors, 0);
}

#[test]
fn a_range_limited_rule_only_hits_ios_overlapping_the_range() {
    let fx = Fixture::new(&["a"], 1);
    let ctl = fx.control();
    ctl.set_rules("a", vec![errno_rule(libc::EIO, 1.0).range(8192, 4096)]);
    let a = fx.open("a");
    let fails = |offset, len| read_at(&a, offset, len).is_err();
    assert!(!fails(0, 4096));
    assert!(!fails(4096, 4096));
    assert!(fails(8192, 4096));
    assert!(fails(4096, 8192));
    assert!(fails(12287, 1));
    assert!(!fails(12288, 4096));
    assert!(a.write_all_at(&[1; 512], 8192 + 512).is_err(), "writes too");
    assert!(a.write_all_at(&[1; 512], 0).is_ok());
    a.sync_all()
        .expect("a flush has no range: a ranged rule never matches it");
    assert_eq!(ctl.counts("a").errors, 4);
}

#[test]
fn lose_acknowledges_writes_and_stores_nothing() {
    let fx = Fixture::new(&["a"], 1);
    let ctl = fx.control();
    ctl.set_rules(
        "a",
        vec![FaultRule::new(FaultAction::Lose { probability: 1.0 })],
    );
    let a = fx.open("a");
    assert_eq!(a.write_at(&[0xee; 4096], 4096).unwrap(), 4096);
    assert_eq!(fx.backing_at(4096, 4096), pattern_at(4096, 4096));
    assert_eq!(read_at(&a, 4096, 4096).unwrap(), pattern_at(4096, 4096));
    let counts = ctl.counts("a");
    assert_eq!(
        (counts.writes, counts.lost, counts.reads),
        (1, 1, 1),
        "{counts:?}"
    );
}

#[test]
fn corrupt_flips_bytes_in_reads_and_in_stored_writes() {
    let fx = Fixture::new(&["a", "b"], 1);
    let ctl = fx.control();
    let corrupt = FaultRule::new(FaultAction::Corrupt { probability: 1.0 });
    ctl.set_rules("a", vec![corrupt.clone().ops(&[OpKind::Read])]);
    let a = fx.open("a");
    let got = read_at(&a, 0, 4096).unwrap();
    let want = fx.backing_at(0, 4096);
    let differing = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    assert_eq!(differing, 8, "one byte in every 512");
    assert_eq!(
        fx.backing_at(0, 4096),
        pattern_at(0, 4096),
        "reads store nothing"
    );

    ctl.set_rules("a", vec![corrupt.ops(&[OpKind::Write])]);
    a.write_all_at(&[0; 4096], 65536).unwrap();
    let stored = fx.backing_at(65536, 4096);
    assert_eq!(stored.iter().filter(|&&b| b != 0).count(), 8);
    assert_eq!(read_at(&fx.open("b"), 65536, 4096).unwrap(), stored);
    assert_eq!(ctl.counts("a").corrupted, 2);
}

#[test]
fn counts_reflect_latency_and_probabilistic_errors() {
    let fx = Fixture::new(&["a"], 9);
    let ctl = fx.control();
    ctl.set_rules(
        "a",
        vec![
            FaultRule::new(FaultAction::Latency(LatencyDist::Uniform {
                min: MS,
                max: 2 * MS,
            }))
            .ops(&[OpKind::Read]),
            errno_rule(libc::EIO, 0.5),
        ],
    );
    let a = fx.open("a");
    let failed = (0..40)
        .filter(|i| read_at(&a, i * 4096, 4096).is_err())
        .count() as u64;
    let counts = ctl.counts("a");
    assert_eq!(counts.reads, 40);
    assert_eq!(counts.delayed, 40);
    assert_eq!(counts.errors, failed);
    assert!((5..35).contains(&failed), "{failed} of 40 at p = 0.5");
    assert_eq!((counts.hung, counts.lost, counts.corrupted), (0, 0, 0));
}

/// Which of `n` sequential reads fail under an errno rule with probability `p`.
fn failing_reads(seed: u64, n: u64, p: f64) -> Vec<u64> {
    let fx = Fixture::new(&["a"], seed);
    fx.control()
        .set_rules("a", vec![errno_rule(libc::EIO, p).ops(&[OpKind::Read])]);
    let a = fx.open("a");
    (0..n)
        .filter(|&i| read_at(&a, (i % 256) * 4096, 4096).is_err())
        .collect()
}

#[test]
fn the_same_seed_fails_the_same_ios() {
    let first = failing_reads(42, 200, 0.3);
    assert_eq!(first, failing_reads(42, 200, 0.3));
    assert_ne!(first, failing_reads(43, 200, 0.3));
    // Exactly the reads `decide` picks: read number i is the i-th read request on the leg.
    let predicted: Vec<u64> = (0..200)
        .filter(|&seq| decide(42, "a", OpKind::Read, seq, 0) < 0.3)
        .collect();
    assert_eq!(first, predicted);
}

#[test]
fn delayed_reads_are_served_in_parallel() {
    let fx = Fixture::new(&["a"], 1);
    fx.control().set_rules(
        "a",
        vec![
            FaultRule::new(FaultAction::Latency(LatencyDist::Fixed(100 * MS))).ops(&[OpKind::Read]),
        ],
    );
    let file = Arc::new(fx.open("a"));
    let elapsed = concurrent_reads(&file, 16);
    println!("16 concurrent 4 KiB reads with a fixed 100 ms delay: {elapsed:?}");
    assert!(elapsed >= 100 * MS, "{elapsed:?}");
    assert!(
        elapsed < 400 * MS,
        "delayed reads were serialised: {elapsed:?}"
    );
    assert_eq!(fx.control().counts("a").delayed, 16);
}

#[test]
fn a_direct_io_loop_device_passes_delayed_reads_on_in_parallel() {
    let fx = Fixture::new(&["a"], 1);
    let lo = backing::attach_loop_direct(&fx.server().file_path("a"))
        .expect("attach a loop device in direct-IO mode");
    let guard = LoopGuard(Some(lo.path.clone()));
    assert!(lo.direct_io);
    fx.control().set_rules(
        "a",
        vec![
            FaultRule::new(FaultAction::Latency(LatencyDist::Fixed(100 * MS))).ops(&[OpKind::Read]),
        ],
    );
    // 16 O_DIRECT reads of the loop device at once, 64 KiB apart: one FUSE request each.
    let dev = Arc::new(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&lo.path)
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(17));
    let threads: Vec<_> = (0..16u64)
        .map(|i| {
            let (dev, barrier) = (Arc::clone(&dev), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut storage = Vec::new();
                let buf = aligned(&mut storage, 4096);
                barrier.wait();
                dev.read_exact_at(buf, i * 65536).unwrap();
                assert_eq!(buf, &pattern_at(i * 65536, 4096)[..]);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    println!("16 concurrent reads through a direct-IO loop device, 100 ms each: {elapsed:?}");
    assert!(
        (100 * MS..400 * MS).contains(&elapsed),
        "the loop device passed them on one at a time? {elapsed:?}"
    );
    assert_eq!(fx.control().counts("a").delayed, 16);
    drop(dev);
    guard.detach().expect("detach the loop device");
}

/// `n` threads each read 4 KiB at their own offset, all at once; the time until all are done.
pub(super) fn concurrent_reads(file: &Arc<File>, n: usize) -> Duration {
    let barrier = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (file, barrier) = (Arc::clone(file), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let offset = i as u64 * 4096;
                assert_eq!(
                    read_at(&file, offset, 4096).unwrap(),
                    pattern_at(offset, 4096)
                );
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(MS);
    }
}

#[test]
fn a_hung_read_blocks_nothing_else_and_is_served_after_clear() {
    let fx = Fixture::new(&["a", "b"], 1);
    let ctl = fx.control();
    let hang = FaultRule::new(FaultAction::Hang).ops(&[OpKind::Read]);
    ctl.set_rules("a", vec![hang.clone()]);
    let a = Arc::new(fx.open("a"));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let a = Arc::clone(&a);
        thread::spawn(move || {
            let _ = tx.send(read_at(&a, 4096, 4096).map_err(|e| e.to_string()));
        })
    };
    wait_for("the read to be held", || ctl.counts("a").hung == 1);

    let start = Instant::now();
    assert_eq!(
        read_at(&fx.open("b"), 0, 4096).unwrap(),
        pattern_at(0, 4096)
    );
    a.write_all_at(&[3; 512], 0)
        .expect("a write on the hung leg");
    let other_io = start.elapsed();
    println!("IO beside a hung read took {other_io:?}");
    assert!(other_io < Duration::from_secs(1), "{other_io:?}");

    // The same hang rule in a new set still holds it; one that does not match releases it.
    ctl.set_rules("a", vec![hang, errno_rule(libc::EIO, 0.0)]);
    assert!(rx.recv_timeout(200 * MS).is_err(), "released too early");
    ctl.set_rules(
        "a",
        vec![FaultRule::new(FaultAction::Hang).ops(&[OpKind::Write])],
    );
    let got = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("the held read is served after the rule change");
    assert_eq!(got.unwrap(), pattern_at(4096, 4096));
    reader.join().unwrap();

    // clear() releases a held write too.
    let (tx, rx) = mpsc::channel();
    let writer = {
        let a = Arc::clone(&a);
        thread::spawn(move || {
            let _ = tx.send(a.write_all_at(&[9; 512], 512).map_err(|e| e.to_string()));
        })
    };
    wait_for("the write to be held", || ctl.counts("a").hung == 2);
    assert!(rx.recv_timeout(100 * MS).is_err());
    ctl.clear("a");
    rx.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
    writer.join().unwrap();
    assert_eq!(fx.backing_at(512, 512), vec![9; 512]);
}

#[test]
fn dropping_the_server_releases_held_requests_and_unmounts() {
    let mut fx = Fixture::new(&["a"], 1);
    let mnt = fx.mnt.clone();
    assert!(is_mounted(&mnt));
    fx.control().set_rules(
        "a",
        vec![FaultRule::new(FaultAction::Hang).ops(&[OpKind::Read])],
    );
    let a = fx.open("a");
    let ctl = fx.control();
    let reader = thread::spawn(move || read_at(&a, 0, 4096).map_err(|e| e.raw_os_error()));
    wait_for("the read to be held", || ctl.counts("a").hung == 1);
    // Busy (the reader's file is open): served, then aborted and detached lazily.
    drop(fx.take());
    assert_eq!(reader.join().unwrap().unwrap(), pattern_at(0, 4096));
    assert!(!is_mounted(&mnt), "still in /proc/self/mounts");

    let mut fx = Fixture::new(&["a"], 1);
    let mnt = fx.mnt.clone();
    drop(fx.take());
    assert!(!is_mounted(&mnt), "still in /proc/self/mounts");
}

#[test]
fn unmounting_a_busy_mount_aborts_and_says_so() {
    let mut fx = Fixture::new(&["a"], 1);
    let mnt = fx.mnt.clone();
    let a = fx.open("a");
    let err = fx.take().unmount().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err}");
    assert!(!is_mounted(&mnt));
    let err = read_at(&a, 0, 512).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
}

#[test]
fn start_refuses_a_mountpoint_outside_a_pathrig_directory() {
    let dir = std::env::temp_dir().join(format!("pathrig-fusetest-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backing = dir.join("backing.img");
    File::create(&backing).unwrap().set_len(SIZE).unwrap();
    let outside = Path::new("/tmp/not-ours/mnt");
    let err = FuseServer::start(outside, &backing, SIZE, &["a"], 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(!outside.exists());
    let inside = dir.join("mnt");
    for legs in [&[][..], &["a", "a"], &["a/b"], &[".."]] {
        let err = FuseServer::start(&inside, &backing, SIZE, legs, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{legs:?}");
    }
    let err = FuseServer::start(&inside, &backing, SIZE + 1, &["a"], 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let _ = std::fs::remove_dir_all(&dir);
}
