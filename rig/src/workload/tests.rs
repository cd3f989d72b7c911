//! Runs of the real engine (io_uring + O_DIRECT) against regular files in a scratch directory.
//! They need a kernel with io_uring and a filesystem with O_DIRECT (ext4/xfs /tmp, or tmpfs on
//! Linux >= 6.6); `failed_writes_*` and `frozen_*` also need root (they mount a tiny tmpfs, and
//! an ext4 image through a loop device, with `mkfs.ext4` and `mount` from the host).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tracker::BlockState;
use super::*;

const BS: u32 = 4096;
const MIB: u64 = 1 << 20;

/// A scratch directory on a filesystem that accepts O_DIRECT, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "pathrig-workload-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        for base in [
            std::env::temp_dir(),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/dev/shm"),
        ] {
            let dir = base.join(&name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let probe = dir.join("probe");
            let ok = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&probe)
                .is_ok();
            let _ = std::fs::remove_file(&probe);
            if ok {
                return Scratch(dir);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("no scratch directory accepts O_DIRECT");
    }

    /// A zero-filled (sparse) file of `size` bytes.
    fn file(&self, name: &str, size: u64) -> PathBuf {
        let path = self.0.join(name);
        File::create(&path).unwrap().set_len(size).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs of `size` mounted on `dir`, detached on drop (also when the test fails).
struct TinyTmpfs(CString);

impl TinyTmpfs {
    fn mount(dir: &Path, size: &str) -> TinyTmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={size}")).unwrap();
        // SAFETY: valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        TinyTmpfs(target)
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        // SAFETY: valid NUL-terminated string.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// An ext4 image mounted with `mount -o loop` (the loop device is auto-cleared on unmount);
/// unmounted on drop, also when the test fails.
struct LoopExt4(PathBuf);

impl LoopExt4 {
    fn mount(image: &Path, size: u64, dir: &Path) -> LoopExt4 {
        File::create(image).unwrap().set_len(size).unwrap();
        let sh = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image));
        std::fs::create_dir_all(dir).unwrap();
        sh(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir));
        LoopExt4(dir.to_path_buf())
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// `FIFREEZE` on the filesystem holding `dir` while alive; `FITHAW` on drop (before a failing
/// test joins the workload thread, which would otherwise wait for frozen writes forever).
struct Frozen(File);

const FIFREEZE: libc::c_ulong = 0xc004_5877; // _IOWR('X', 119, int)
const FITHAW: libc::c_ulong = 0xc004_5878; // _IOWR('X', 120, int)

impl Frozen {
    fn freeze(dir: &Path) -> Frozen {
        let f = File::open(dir).unwrap();
        // SAFETY: FIFREEZE takes no argument beyond the fd.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), FIFREEZE as _, 0) };
        assert_eq!(
            rc,
            0,
            "FIFREEZE {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        Frozen(f)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::ioctl(self.0.as_raw_fd(), FITHAW as _, 0) };
    }
}

fn config(path: &Path, size_bytes: u64) -> WorkloadConfig {
    WorkloadConfig {
        path: path.to_path_buf(),
        size_bytes,
        block_size: BS,
        queue_depth: 8,
        read_percent: 50,
        duration: Duration::from_secs(1),
        rate_iops: None,
        sequential: false,
        verify: true,
        seed: 0x5eed,
        stall_threshold: Duration::from_secs(5),
        engine: EngineKind::Pathrig,
    }
}

/// Runs and collects the events too.
fn run_collect(
    cfg: &WorkloadConfig,
    tracker: Option<&mut Tracker>,
) -> (WorkloadReport, Vec<WorkloadEvent>) {
    let mut events = Vec::new();
    let stop = AtomicBool::new(false);
    let origin = Instant::now();
    let report = match tracker {
        Some(t) => run_with_tracker(cfg, t, origin, &stop, &mut |e| events.push(e)),
        None => run(cfg, origin, &stop, &mut |e| events.push(e)),
    }
    .expect("workload run");
    (report, events)
}

fn assert_clean(r: &WorkloadReport, events: &[WorkloadEvent]) {
    assert_eq!((r.read_errors, r.write_errors), (0, 0), "{r:?}");
    assert!(r.mismatches.is_empty(), "{:#?}", r.mismatches);
    assert!(events.iter().all(|e| !matches!(
        e,
        WorkloadEvent::IoError { .. } | WorkloadEvent::Mismatch { .. }
    )));
}

#[test]
fn random_mixed_run_on_a_file_is_clean() {
    let dir = Scratch::new();
    let path = dir.file("dev", 16 * MIB);
    let cfg = config(&path, 16 * MIB);
    let (r, events) = run_collect(&cfg, None);
    assert_clean(&r, &events);
    assert!(r.reads > 0 && r.writes > 0, "{r:?}");
    assert!(
        r.verified_blocks > 0 && r.verified_blocks == r.reads,
        "{r:?}"
    );
    assert_eq!(r.latency.count, r.reads + r.writes);
    assert_eq!(r.histogram.len(), r.reads + r.writes);
    assert!(r.latency.p50_us <= r.latency.p99_us && r.latency.p99_us <= r.latency.max_us);
    assert!(
        r.elapsed >= Duration::from_secs(1) && r.elapsed < Duration::from_secs(10),
        "{:?}",
        r.elapsed
    );
    assert!(r.stalls.is_empty(), "{:?}", r.stalls);
    // Some quiet time between completions was measured, and it stayed below the threshold.
    let quiet = r.longest_quiet.expect("the engine measures quiet time");
    assert!(
        quiet > Duration::ZERO && quiet < cfg.stall_threshold,
        "{quiet:?}"
    );
    // The time series adds up to the totals, one point per 100 ms of the run, in order.
    let sum =
        |f: fn(&series::SeriesPoint) -> u32| r.series.iter().map(f).map(u64::from).sum::<u64>();
    assert_eq!(sum(|p| p.reads), r.reads);
    assert_eq!(sum(|p| p.writes), r.writes);
    assert_eq!(sum(|p| p.error_count()), 0);
    assert!(r.series.windows(2).all(|w| w[1].t_ms == w[0].t_ms + 100));
    let span_ms = r.series.len() as u64 * 100;
    assert!(
        span_ms >= r.elapsed.as_millis() as u64 && span_ms <= r.elapsed.as_millis() as u64 + 200,
        "{} points for {:?}",
        r.series.len(),
        r.elapsed
    );
    assert_eq!(r.series.last().unwrap().in_flight, 0);
}

/// Run 1 and 2 write every block of a small region (sequential, writes only); between them a
/// copy of block 5 is kept. Then, behind the workload's back, block 3 gets a flipped byte, block
/// 5 its old copy back (a lost write) and block 9 the content of block 7 (a misdirected write).
/// Run 3 reads everything with the expectations carried over in the same tracker: exactly those
/// three blocks must be reported, each with the right diagnosis.
#[test]
fn tampering_behind_the_workload_is_detected() {
    let dir = Scratch::new();
    let blocks = 16u64;
    let path = dir.file("dev", blocks * u64::from(BS));
    let mut cfg = config(&path, blocks * u64::from(BS));
    cfg.queue_depth = 4;
    cfg.read_percent = 0;
    cfg.sequential = true;
    // Long enough to write all 16 blocks even on a machine busy with other work.
    cfg.duration = Duration::from_secs(1);
    let mut tracker = Tracker::new(blocks, BS, cfg.seed);

    let (r1, e1) = run_collect(&cfg, Some(&mut tracker));
    assert_clean(&r1, &e1);
    assert!(r1.writes >= blocks, "{r1:?}");
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let read_block = |b: u64| {
        let mut buf = vec![0u8; BS as usize];
        disk.read_exact_at(&mut buf, b * u64::from(BS)).unwrap();
        buf
    };
    let stale5 = read_block(5);
    let BlockState::Known(g5) = tracker.state(5) else {
        panic!("block 5: {:?}", tracker.state(5))
    };

    let (r2, e2) = run_collect(&cfg, Some(&mut tracker));
    assert_clean(&r2, &e2);
    for b in 0..blocks {
        assert!(
            matches!(tracker.state(b), BlockState::Known(g) if g > 1),
            "block {b}: {:?}",
            tracker.state(b)
        );
    }
    assert!(matches!(tracker.state(5), BlockState::Known(g) if g > g5));

    let mut b3 = read_block(3);
    b3[2000] ^= 0x01;
    disk.write_all_at(&b3, 3 * u64::from(BS)).unwrap();
    disk.write_all_at(&stale5, 5 * u64::from(BS)).unwrap();
    disk.write_all_at(&read_block(7), 9 * u64::from(BS))
        .unwrap();
    disk.sync_all().unwrap();

    cfg.read_percent = 100;
    cfg.duration = Duration::from_millis(200);
    // Without verification nothing is checked (and nothing is reported).
    cfg.verify = false;
    let (r, e) = run_collect(&cfg, Some(&mut tracker));
    assert_clean(&r, &e);
    assert!(r.reads > 0 && r.verified_blocks == 0, "{r:?}");

    cfg.verify = true;
    let (r3, e3) = run_collect(&cfg, Some(&mut tracker));
    assert_eq!(
        (r3.read_errors, r3.write_errors, r3.writes),
        (0, 0, 0),
        "{r3:?}"
    );
    assert!(r3.reads >= 2 * blocks, "{r3:?}");
    assert!(r3.verified_blocks > 0 && r3.verified_blocks + r3.mismatches.len() as u64 == r3.reads);
    let mut bad: Vec<u64> = r3.mismatches.iter().map(|m| m.block).collect();
    bad.sort_unstable();
    bad.dedup();
    assert_eq!(bad, vec![3, 5, 9], "{:#?}", r3.mismatches);
    for m in &r3.mismatches {
        let want = match m.block {
            3 => "crc BAD",
            5 => "lost write (older generation)",
            _ => "misdirected IO (block holds the data of lba 7)",
        };
        assert!(m.detail.contains(want), "block {}: {}", m.block, m.detail);
        assert!(
            m.detail.contains(&format!("expected lba {} gen", m.block)),
            "{}",
            m.detail
        );
    }
    assert!(r3
        .mismatches
        .iter()
        .any(|m| m.block == 3 && m.detail.contains("1 of 4096 bytes differ")));
    let events: Vec<_> = e3
        .iter()
        .filter_map(|e| match e {
            WorkloadEvent::Mismatch { t, block, detail } => Some(MismatchRecord {
                t: *t,
                block: *block,
                detail: detail.clone(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(events, r3.mismatches, "events and report agree");
}

/// Writes into a file on a full tmpfs fail (ENOSPC), like writes through a failing path. The
/// failed blocks become uncertain; later reads of them find the old content (zeros) and must pass.
#[test]
fn failed_writes_leave_blocks_uncertain_not_mismatched() {
    let dir = Scratch::new();
    let mnt = TinyTmpfs::mount(&dir.0.join("mnt"), "256k");
    let path = dir.0.join("mnt/dev");
    File::create(&path).unwrap().set_len(4 * MIB).unwrap();
    let mut cfg = config(&path, 4 * MIB);
    cfg.duration = Duration::from_millis(500);
    let mut tracker = Tracker::new(1024, BS, cfg.seed);
    let (r, events) = run_collect(&cfg, Some(&mut tracker));
    drop(mnt);
    assert!(r.writes > 0 && r.write_errors > 0 && r.reads > 0, "{r:?}");
    assert_eq!(r.read_errors, 0, "{r:?}");
    assert!(r.mismatches.is_empty(), "{:#?}", r.mismatches);
    let failed = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                WorkloadEvent::IoError {
                    op: Op::Write,
                    errno: libc::ENOSPC,
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(
        failed, r.write_errors,
        "every write error is reported as ENOSPC"
    );
    let uncertain = (0..1024)
        .filter(|&b| matches!(tracker.state(b), BlockState::Uncertain { .. }))
        .count();
    let settled_to_zero = (0..1024)
        .filter(|&b| tracker.next_generation(b) > 1 && tracker.state(b) == BlockState::Unwritten)
        .count();
    assert!(
        uncertain + settled_to_zero > 0,
        "failed writes were tracked"
    );
    assert!(r.verified_blocks > 0);
}

/// Writes to a frozen filesystem hang until it is thawed, like IO queued by a multipath map with
/// no path. The freeze spans the end of the duration, so the drain has to wait it out; the stall
/// must be reported from when it began to the first completion after the thaw.
#[test]
fn frozen_writes_are_a_stall_and_the_drain_waits_for_them() {
    let dir = Scratch::new();
    let mnt = dir.0.join("mnt");
    let _fs = LoopExt4::mount(&dir.0.join("ext4.img"), 64 * MIB, &mnt);
    let path = mnt.join("dev");
    File::create(&path).unwrap().set_len(4 * MIB).unwrap();
    let mut cfg = config(&path, 4 * MIB);
    cfg.read_percent = 0;
    cfg.queue_depth = 4;
    cfg.duration = Duration::from_millis(1200);
    cfg.stall_threshold = Duration::from_millis(300);
    let stop = AtomicBool::new(false);
    let origin = Instant::now();
    let (freeze_at, thaw_at) = (Duration::from_millis(300), Duration::from_millis(2000));
    let mut events = Vec::new();
    let report = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            run(&cfg, origin, &stop, &mut |e| {
                events.push((origin.elapsed(), e))
            })
        });
        std::thread::sleep(freeze_at.saturating_sub(origin.elapsed()));
        let frozen = Frozen::freeze(&mnt);
        std::thread::sleep(thaw_at.saturating_sub(origin.elapsed()));
        drop(frozen);
        worker.join().unwrap().unwrap()
    });
    assert_eq!(
        (report.write_errors, report.read_errors),
        (0, 0),
        "{report:?}"
    );
    assert!(report.mismatches.is_empty());
    assert!(
        report.elapsed >= thaw_at - Duration::from_millis(50),
        "drain returned before the thaw: {report:?}"
    );
    let long: Vec<_> = report
        .stalls
        .iter()
        .filter(|s| s.length >= Duration::from_millis(300))
        .collect();
    assert_eq!(long.len(), 1, "{:?}", report.stalls);
    let stall = long[0];
    // Began around the freeze (the last completion before it), ended around the thaw.
    assert!(
        stall.began >= freeze_at - Duration::from_millis(100)
            && stall.began <= freeze_at + Duration::from_millis(200),
        "{stall:?}"
    );
    let end = stall.began + stall.length;
    assert!(
        end >= thaw_at && end <= thaw_at + Duration::from_millis(500),
        "{stall:?}"
    );
    // The freeze was the longest time without a completion.
    assert_eq!(report.longest_quiet, Some(stall.length));
    // StallBegan was sent while the IO was still hanging (within a tick or two of the threshold),
    // not only once it ended.
    let (seen_at, in_flight) = events
        .iter()
        .find_map(|(at, e)| match e {
            WorkloadEvent::StallBegan { t, in_flight } if *t == stall.began => {
                Some((*at, *in_flight))
            }
            _ => None,
        })
        .expect("StallBegan event");
    assert!((1..=4).contains(&in_flight));
    assert!(
        seen_at < stall.began + cfg.stall_threshold + Duration::from_millis(200),
        "noticed late: {seen_at:?} {stall:?}"
    );
    assert!(events.iter().any(|(_, e)| *e
        == WorkloadEvent::StallEnded {
            t: end,
            length: stall.length
        }));
}

#[test]
fn short_reads_past_the_end_are_errors() {
    let dir = Scratch::new();
    // The file holds 8 blocks; the workload believes in 16.
    let path = dir.file("dev", 8 * u64::from(BS));
    let mut cfg = config(&path, 16 * u64::from(BS));
    cfg.read_percent = 100;
    cfg.sequential = true;
    cfg.queue_depth = 2;
    cfg.duration = Duration::from_millis(100);
    let (r, events) = run_collect(&cfg, None);
    assert!(r.read_errors > 0 && r.reads > 0, "{r:?}");
    assert!(r.mismatches.is_empty());
    assert_eq!(r.verified_blocks, r.reads);
    assert_eq!(r.latency.count, r.reads + r.read_errors);
    for e in &events {
        match e {
            WorkloadEvent::IoError {
                op: Op::Read,
                block,
                errno: libc::EIO,
                ..
            } if *block >= 8 => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[test]
fn rate_limit_paces_submissions() {
    let dir = Scratch::new();
    let path = dir.file("dev", 16 * MIB);
    let mut cfg = config(&path, 16 * MIB);
    cfg.rate_iops = Some(200);
    let (r, events) = run_collect(&cfg, None);
    assert_clean(&r, &events);
    let done = r.reads + r.writes;
    assert!(
        (150..=250).contains(&done),
        "{done} IOs at 200 IOPS for 1 s"
    );
}

#[test]
fn stop_flag_ends_the_run_early_and_drains() {
    let dir = Scratch::new();
    let path = dir.file("dev", 16 * MIB);
    let mut cfg = config(&path, 16 * MIB);
    cfg.duration = Duration::from_secs(60);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        run(&cfg, t0, &stop, &mut |_| {}).unwrap()
    });
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(r.reads + r.writes > 0 && r.mismatches.is_empty());
    assert_eq!(r.latency.count, r.reads + r.writes);
}

#[test]
fn setup_errors_are_err() {
    let dir = Scratch::new();
    let path = dir.file("dev", MIB);
    let stop = AtomicBool::new(false);
    let go = |c: &WorkloadConfig| run(c, Instant::now(), &stop, &mut |_| {}).unwrap_err();
    let base = config(&path, MIB);
    for bad in [
        WorkloadConfig {
            block_size: 1000,
            ..base.clone()
        },
        WorkloadConfig {
            block_size: 256,
            ..base.clone()
        },
        WorkloadConfig {
            size_bytes: 100,
            ..base.clone()
        },
        WorkloadConfig {
            queue_depth: 0,
            ..base.clone()
        },
        WorkloadConfig {
            read_percent: 101,
            ..base.clone()
        },
        WorkloadConfig {
            rate_iops: Some(0),
            ..base.clone()
        },
        WorkloadConfig {
            stall_threshold: Duration::ZERO,
            ..base.clone()
        },
    ] {
        assert_eq!(go(&bad).kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    let missing = dir.0.join("missing");
    let e = go(&WorkloadConfig {
        path: missing.clone(),
        ..base.clone()
    });
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
    let mut other = Tracker::new(256, BS, base.seed + 1);
    let e = run_with_tracker(&base, &mut other, Instant::now(), &stop, &mut |_| {}).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
