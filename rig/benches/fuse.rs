//! FUSE fault-file server overhead on this host: 4 KiB random O_DIRECT reads through io_uring at
//! queue depth 8 and 32, against a FUSE leg file (no rules) and against the plain backing file on
//! tmpfs (/dev/shm), medians of several 2 s runs; then the time 16 concurrent reads take under a
//! fixed 100 ms latency rule. Needs root and /dev/fuse.
//!
//! `cargo bench -p rig --bench fuse` (`PATHRIG_BENCH_SECS` and `PATHRIG_BENCH_RUNS` override the
//! 2 s and 3 runs).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use rig::fuse::{FaultAction, FaultRule, FuseServer, LatencyDist, OpKind};

const FILE_SIZE: u64 = 64 << 20;
const BLOCK: usize = 4096;

/// `n` 4 KiB buffers aligned for O_DIRECT.
struct Buffers {
    ptr: *mut u8,
    layout: Layout,
}

impl Buffers {
    fn new(n: usize) -> Buffers {
        let layout = Layout::from_size_align(n * BLOCK, BLOCK).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Buffers { ptr, layout }
    }

    fn slot(&self, i: usize) -> *mut u8 {
        assert!((i + 1) * BLOCK <= self.layout.size());
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.add(i * BLOCK) }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

struct Rng(u64);

impl Rng {
    fn block(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % (FILE_SIZE / BLOCK as u64)) * BLOCK as u64
    }
}

/// Random 4 KiB reads at queue depth `qd` for `secs`; IOs per second.
fn run(path: &Path, qd: usize, secs: Duration) -> io::Result<f64> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let fd = types::Fd(file.as_raw_fd());
    let mut ring = IoUring::new(qd.next_power_of_two() as u32)?;
    let buffers = Buffers::new(qd);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ qd as u64);
    let submit = |ring: &mut IoUring, slot: usize, offset: u64| {
        let entry = opcode::Read::new(fd, buffers.slot(slot), BLOCK as u32)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer outlives the operation (we drain the ring before returning).
        unsafe { ring.submission().push(&entry).expect("ring has room") };
    };
    for slot in 0..qd {
        submit(&mut ring, slot, rng.block());
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut in_flight = qd;
    let mut stopping = false;
    while in_flight > 0 {
        ring.submit_and_wait(1)?;
        let completed: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        stopping |= start.elapsed() >= secs;
        for (slot, result) in completed {
            in_flight -= 1;
            if result != BLOCK as i32 {
                return Err(io::Error::other(format!(
                    "read of {}: result {result}",
                    path.display()
                )));
            }
            done += 1;
            if !stopping {
                submit(&mut ring, slot as usize, rng.block());
                in_flight += 1;
            }
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> io::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fuse bench: skipped (run it with `cargo bench -p rig --bench fuse`)");
        return Ok(());
    }
    let secs = Duration::from_secs(env_or("PATHRIG_BENCH_SECS", 2));
    let runs = env_or("PATHRIG_BENCH_RUNS", 3) as usize;
    let dir = WorkDir(PathBuf::from(format!(
        "/dev/shm/pathrig-bench-fuse-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0)?;
    let backing = dir.0.join("backing.img");
    let file = File::create(&backing)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for i in 0..FILE_SIZE / chunk.len() as u64 {
        file.write_all_at(&chunk, i * chunk.len() as u64)?;
    }
    drop(file);
    let server = FuseServer::start(&dir.0.join("mnt"), &backing, FILE_SIZE, &["a"], 1)?;
    let leg = server.file_path("a");

    println!(
        "4 KiB random O_DIRECT reads, io_uring, median of {runs} runs of {} s",
        secs.as_secs()
    );
    println!(
        "{:>4}  {:>12}  {:>12}  {:>10}  {:>13}",
        "QD", "FUSE IOPS", "tmpfs IOPS", "FUSE/tmpfs", "FUSE mean lat"
    );
    for qd in [8, 32] {
        let mut fuse = Vec::new();
        let mut tmpfs = Vec::new();
        for _ in 0..runs {
            fuse.push(run(&leg, qd, secs)?);
            tmpfs.push(run(&backing, qd, secs)?);
        }
        let (fuse, tmpfs) = (median(fuse), median(tmpfs));
        println!(
            "{qd:>4}  {fuse:>12.0}  {tmpfs:>12.0}  {:>10.3}  {:>10.1} µs",
            fuse / tmpfs,
            qd as f64 / fuse * 1e6
        );
    }

    server.control().set_rules(
        "a",
        vec![FaultRule::new(FaultAction::Latency(LatencyDist::Fixed(
            Duration::from_millis(100),
        )))
        .ops(&[OpKind::Read])],
    );
    let file = Arc::new(File::open(&leg)?);
    let barrier = Arc::new(Barrier::new(17));
    let threads: Vec<_> = (0..16u64)
        .map(|i| {
            let (file, barrier) = (Arc::clone(&file), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut buf = vec![0; BLOCK];
                barrier.wait();
                file.read_exact_at(&mut buf, i * BLOCK as u64)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("reader thread")?;
    }
    println!(
        "16 concurrent 4 KiB reads under a fixed 100 ms latency rule: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(file);
    server.unmount()
}
