//! Time-critical IO: one aligned block per interval with a deadline (a cluster's disk heartbeat
//! or poison pill), beside the bulk workload, in one of two modes:
//!
//! - [`CriticalMode::ThroughMap`]: the IO goes to the multipath map, like any application's;
//! - [`CriticalMode::Multiplex`]: the same IO goes `O_DIRECT` to every path the kernel currently
//!   lists as usable ([`UsablePaths`], refreshed by the caller on every dm event), through one
//!   io_uring; it completes at the first success and fails at the last failure. The remaining
//!   copies are cancelled (`IORING_OP_ASYNC_CANCEL`; a bio already in a driver cannot be, so
//!   their answers are then ignored) and every late answer is still checked: a write that
//!   succeeded on one path and failed on another, or a read whose copies differ, is a
//!   disagreement.
//!
//! This module owns the writer's loop, its buffers and its report. Every IO is verified like the
//! bulk workload's ([`super::tracker`]): a write stores a stamped block and is read back through
//! the same mode as soon as it succeeded — the read-back is a critical IO too, with its own
//! deadline (a cluster reads its peers' slots under the same deadline); a timed read is judged
//! against what the area should hold. A block is only
//! reused once every copy of every IO on it has answered, so a copy held on a hung path can never
//! land over newer data (the kernel version of the idea would need the same rule).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use serde::Serialize;

use super::codec;
use super::tracker::{Tracker, Verdict};
use super::{LatencySummary, MismatchRecord, Op};

/// Longest the loop sleeps without looking at the clock.
const TICK: Duration = Duration::from_millis(20);
const ALIGN: usize = 4096;
const POISON: u8 = 0xa5;
/// Marks the user data of a cancel request (the rest names the copy it cancels).
const CANCEL_BIT: u64 = 1 << 63;
/// At most this many copies of one IO (paths of one map).
const MAX_COPIES: usize = 255;
/// Details kept per kind (the counts are always complete).
const KEPT_DETAILS: usize = 20;

/// How a critical IO reaches the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticalMode {
    ThroughMap,
    Multiplex,
}

impl CriticalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CriticalMode::ThroughMap => "through_map",
            CriticalMode::Multiplex => "multiplex",
        }
    }
}

/// One path of the map a multiplexing writer may send copies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalPath {
    /// For the report (the leg's name).
    pub label: String,
    /// `(major, minor)`, as the map's status names it.
    pub dev: (u32, u32),
    /// The device node opened `O_RDWR | O_DIRECT`.
    pub node: PathBuf,
}

/// What one critical writer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalConfig {
    pub mode: CriticalMode,
    /// The timed IO: a write (then read back, also timed) or a read.
    pub op: Op,
    pub interval: Duration,
    pub deadline: Duration,
    /// The writer's area on the map, in bytes; both multiples of `block_size`.
    pub offset: u64,
    pub size: u64,
    pub block_size: u32,
    /// The map's size (block numbers are the map's, so a misdirected IO shows).
    pub map_size: u64,
    pub seed: u64,
    /// Issue IO for this long, then wait for every copy.
    pub duration: Duration,
    /// The multipath map's device node (through_map).
    pub map_node: PathBuf,
    /// Every path of the map (multiplex).
    pub paths: Vec<CriticalPath>,
    /// After `duration`, how long to wait for copies still out before giving up on them (their
    /// buffers are then leaked, never reused).
    pub drain_limit: Duration,
}

/// The paths the kernel lists as usable, shared between the runner (which publishes the set
/// after every dm event) and the writers (which look at the generation each IO, and lock only
/// when it moved).
#[derive(Debug, Default)]
pub struct UsablePaths {
    generation: AtomicU64,
    devs: Mutex<Vec<(u32, u32)>>,
}

impl UsablePaths {
    pub fn new(devs: Vec<(u32, u32)>) -> UsablePaths {
        UsablePaths {
            generation: AtomicU64::new(1),
            devs: Mutex::new(devs),
        }
    }

    /// Replaces the set; a set equal to the current one changes nothing.
    pub fn publish(&self, mut devs: Vec<(u32, u32)>) {
        devs.sort_unstable();
        let mut cur = self.devs.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != devs {
            *cur = devs;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The set, if it changed since generation `seen` (which is then updated).
    pub fn changed_since(&self, seen: &mut u64) -> Option<Vec<(u32, u32)>> {
        let g = self.generation.load(Ordering::Acquire);
        if g == *seen {
            return None;
        }
        let devs = self.devs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        *seen = g;
        Some(devs)
    }
}

/// A timed IO that failed: on every path it was sent to (multiplex), or through the map.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CriticalFailure {
    /// Since the caller's origin, when it was issued.
    pub t_ms: f64,
    /// Issue to the last failure (0 when no path was usable).
    pub took_ms: f64,
    /// Of the last failure; `None` when no path was usable.
    pub errno: Option<i32>,
    /// Copies sent (0: no usable path).
    pub copies: u32,
}

/// Copies of one IO that did not agree.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Disagreement {
    pub t_ms: f64,
    pub block: u64,
    pub detail: String,
}

/// What a critical writer saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CriticalReport {
    /// Critical IOs: one due per interval (each issued or counted as `blocked`), and for writes
    /// the read-back of each successful one.
    pub ios: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Critical IOs without a success by their deadline (late, failed, blocked, or never
    /// answered).
    pub deadline_misses: u64,
    /// Ticks with every block of the area still held by copies in flight (a miss each).
    pub blocked: u64,
    /// Failed at once: the kernel listed no usable path (multiplex).
    pub no_usable_path: u64,
    /// Ticks that passed while the writer itself was not running (the guest or its thread was
    /// not scheduled): never issued, and counted apart from `ios` and `deadline_misses` — the
    /// rig's lag, not the storage's.
    pub late: u64,
    /// Issue to success or final failure, of every decided timed IO.
    pub latency: LatencySummary,
    /// Multiplex: which path's copy answered first with a success, per path label.
    pub first_answer: Vec<(String, u64)>,
    /// IOs whose copies disagreed (one succeeded, another failed; or reads with different data).
    pub disagreements: u64,
    pub disagreement_details: Vec<Disagreement>,
    pub failures: Vec<CriticalFailure>,
    /// The last failure and the longest a failure took.
    pub last_failure: Option<CriticalFailure>,
    pub max_failure_ms: Option<f64>,
    /// Reads (timed or read-back) whose content matched.
    pub verified: u64,
    pub mismatches: Vec<MismatchRecord>,
    /// Read-backs of written blocks that failed.
    pub readback_errors: u64,
    /// Cancels sent for copies outstanding after an IO was decided, and how many the kernel
    /// could actually cancel (block IO already in a driver cannot be).
    pub cancels_sent: u64,
    pub cancelled: u64,
    /// Copies never answered by the end of the drain (their buffers leaked).
    pub unanswered_at_end: u64,
}

/// A page-aligned block buffer.
struct Buf {
    ptr: *mut u8,
    len: usize,
}

impl Buf {
    fn new(len: usize) -> io::Result<Buf> {
        let layout = std::alloc::Layout::from_size_align(len, ALIGN)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size (block sizes are at least 512).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "critical IO buffer",
            ));
        }
        Ok(Buf { ptr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: allocated with `len` bytes; only touched when no IO uses it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, ALIGN).expect("checked in new");
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

struct Copy {
    /// Index into the writer's targets.
    target: usize,
    result: Option<i32>,
}

struct Pending {
    /// Every critical IO has a deadline; kept apart from verification IO that might have none.
    timed: bool,
    /// The read-back of a write.
    readback: bool,
    op: Op,
    block: u64,
    generation: u64,
    submitted: Instant,
    deadline: Instant,
    missed: bool,
    /// `Some(true)` at the first success, `Some(false)` at the last failure.
    decided: Option<bool>,
    copies: Vec<Copy>,
    /// A write's one buffer, or one per copy of a read.
    bufs: Vec<Buf>,
    first_ok: Option<usize>,
}

struct Target {
    label: String,
    dev: (u32, u32),
    file: File,
}

/// Runs one critical writer until `duration` has passed (or `stop` is set), then waits for its
/// copies still out, at most `drain_limit`. `Err` only for setup failures and io_uring errors.
pub fn run(
    config: &CriticalConfig,
    usable: &UsablePaths,
    origin: Instant,
    stop: &AtomicBool,
) -> io::Result<CriticalReport> {
    let bs = u64::from(config.block_size);
    if !config.block_size.is_power_of_two()
        || config.block_size < 512
        || config.size < bs
        || config.offset % bs != 0
        || config.size % bs != 0
        || config.offset + config.size > config.map_size
        || config.interval.is_zero()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("critical IO config: bad area or block size: {config:?}"),
        ));
    }
    let open = |node: &PathBuf| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(node)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", node.display())))
    };
    let targets: Vec<Target> = match config.mode {
        CriticalMode::ThroughMap => vec![Target {
            label: "map".into(),
            dev: (0, 0),
            file: open(&config.map_node)?,
        }],
        CriticalMode::Multiplex => config
            .paths
            .iter()
            .take(MAX_COPIES)
            .map(|p| {
                Ok(Target {
                    label: p.label.clone(),
                    dev: p.dev,
                    file: open(&p.node)?,
                })
            })
            .collect::<io::Result<_>>()?,
    };
    let ring = IoUring::builder()
        .setup_cqsize(4096)
        .build(256)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring setup: {e}")))?;
    let histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
    let mut w = Writer {
        cfg: config,
        tracker: Tracker::new(config.map_size / bs, config.block_size, config.seed),
        ring,
        targets,
        usable_seen: 0,
        usable: Vec::new(),
        pending: HashMap::new(),
        held: HashMap::new(),
        next_id: 1,
        cursor: 0,
        origin,
        histogram,
        first_answer: HashMap::new(),
        report: CriticalReport::default(),
    };
    w.refresh_usable(usable);
    let result = w.main_loop(usable, stop);
    let mut report = std::mem::take(&mut w.report);
    report.unanswered_at_end = w
        .pending
        .values()
        .map(|p| p.copies.iter().filter(|c| c.result.is_none()).count() as u64)
        .sum();
    if report.unanswered_at_end > 0 {
        // The kernel may still write into these buffers: never free them.
        for (_, p) in w.pending.drain() {
            std::mem::forget(p.bufs);
        }
    }
    result?;
    let h = &w.histogram;
    if !h.is_empty() {
        report.latency = LatencySummary {
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
            count: h.len(),
        };
    }
    let mut first: Vec<(String, u64)> = w
        .targets
        .iter()
        .map(|t| (t.label.clone(), *w.first_answer.get(&t.label).unwrap_or(&0)))
        .collect();
    if config.mode == CriticalMode::ThroughMap {
        first.clear();
    }
    report.first_answer = first;
    Ok(report)
}

struct Writer<'a> {
    cfg: &'a CriticalConfig,
    tracker: Tracker,
    ring: IoUring,
    targets: Vec<Target>,
    usable_seen: u64,
    /// Indices into `targets` the kernel lists as usable (multiplex).
    usable: Vec<usize>,
    pending: HashMap<u64, Pending>,
    /// Per block: IOs with a copy still out.
    held: HashMap<u64, u32>,
    next_id: u64,
    /// Next block of the area to try, relative to the area's start.
    cursor: u64,
    origin: Instant,
    histogram: hdrhistogram::Histogram<u64>,
    first_answer: HashMap<String, u64>,
    report: CriticalReport,
}

impl Writer<'_> {
    fn main_loop(&mut self, usable: &UsablePaths, stop: &AtomicBool) -> io::Result<()> {
        let start = Instant::now();
        let end = start + self.cfg.duration;
        let mut next_tick = start;
        let mut stopped_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let submitting = stopped_at.is_none() && now < end && !stop.load(Ordering::Relaxed);
            if !submitting {
                stopped_at.get_or_insert(now);
            }
            if submitting && now >= next_tick {
                self.refresh_usable(usable);
                self.issue_timed(now)?;
                next_tick += self.cfg.interval;
                if next_tick <= now {
                    // Behind (the guest or this thread was not scheduled): the ticks passed
                    // are not sent in a burst afterwards, and are counted apart — the rig's lag,
                    // not the storage's (like a fault timeline that lags).
                    let behind = (now - next_tick).as_nanos() / self.cfg.interval.as_nanos() + 1;
                    let behind = behind.min(u128::from(u32::MAX)) as u32;
                    self.report.late += u64::from(behind);
                    next_tick += self.cfg.interval * behind;
                }
            }
            self.mark_misses(now);
            if !submitting {
                if self.pending.is_empty() {
                    return Ok(());
                }
                if stopped_at.is_some_and(|t| now.duration_since(t) >= self.cfg.drain_limit) {
                    tracing::warn!(
                        pending = self.pending.len(),
                        "critical IO: copies still out after the drain limit"
                    );
                    return Ok(());
                }
            }
            let mut timeout = TICK;
            if submitting {
                timeout = timeout.min(next_tick.saturating_duration_since(now));
            }
            if let Some(due) = self
                .pending
                .values()
                .filter(|p| p.timed && p.decided.is_none() && !p.missed)
                .map(|p| p.deadline)
                .min()
            {
                timeout = timeout.min(due.saturating_duration_since(now));
            }
            self.submit_and_wait(timeout.max(Duration::from_micros(100)))?;
            let now = Instant::now();
            let cqes: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (user_data, res) in cqes {
                self.completed(user_data, res, now)?;
            }
        }
    }

    fn refresh_usable(&mut self, usable: &UsablePaths) {
        if let Some(devs) = usable.changed_since(&mut self.usable_seen) {
            self.usable = self
                .targets
                .iter()
                .enumerate()
                .filter(|(_, t)| devs.contains(&t.dev))
                .map(|(i, _)| i)
                .collect();
        }
    }

    fn since_origin_ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.origin).as_secs_f64() * 1000.0
    }

    /// The next block of the area with no copy out, from the cursor on.
    fn free_block(&mut self) -> Option<u64> {
        let bs = u64::from(self.cfg.block_size);
        let first = self.cfg.offset / bs;
        let count = self.cfg.size / bs;
        for i in 0..count {
            let b = first + (self.cursor + i) % count;
            if !self.held.contains_key(&b) {
                self.cursor = (self.cursor + i + 1) % count;
                return Some(b);
            }
        }
        None
    }

    fn issue_timed(&mut self, now: Instant) -> io::Result<()> {
        let Some(block) = self.free_block() else {
            self.report.ios += 1;
            self.report.blocked += 1;
            self.report.deadline_misses += 1;
            return Ok(());
        };
        self.issue(self.cfg.op, block, false, now)
    }

    /// A critical IO on `block`, down every usable path or through the map.
    fn issue(&mut self, op: Op, block: u64, readback: bool, now: Instant) -> io::Result<()> {
        self.report.ios += 1;
        let targets: Vec<usize> = match self.cfg.mode {
            CriticalMode::ThroughMap => vec![0],
            CriticalMode::Multiplex => self.usable.clone(),
        };
        if targets.is_empty() {
            // dm lists no usable path: the IO fails at once (it does not queue).
            self.report.no_usable_path += 1;
            self.report.failed += 1;
            self.report.deadline_misses += 1;
            self.record_latency(Duration::ZERO);
            let failure = CriticalFailure {
                t_ms: self.since_origin_ms(now),
                took_ms: 0.0,
                errno: None,
                copies: 0,
            };
            self.note_failure(failure);
            if readback {
                self.report.readback_errors += 1;
            }
            return Ok(());
        }
        self.submit(true, readback, op, block, &targets, now)
    }

    fn submit(
        &mut self,
        timed: bool,
        readback: bool,
        op: Op,
        block: u64,
        targets: &[usize],
        now: Instant,
    ) -> io::Result<()> {
        let bs = self.cfg.block_size as usize;
        let mut generation = 0;
        let mut bufs = Vec::new();
        match op {
            Op::Write => {
                generation = self.tracker.next_generation(block);
                let mut b = Buf::new(bs)?;
                codec::encode(b.bytes(), block, generation, self.cfg.seed);
                bufs.push(b);
            }
            Op::Read => {
                for _ in targets {
                    let mut b = Buf::new(bs)?;
                    b.bytes().fill(POISON);
                    bufs.push(b);
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let offset = block * bs as u64;
        for (copy, &target) in targets.iter().enumerate() {
            let fd = types::Fd(self.targets[target].file.as_raw_fd());
            let buf = &bufs[if op == Op::Write { 0 } else { copy }];
            let sqe = match op {
                Op::Read => opcode::Read::new(fd, buf.ptr, bs as u32)
                    .offset(offset)
                    .build(),
                Op::Write => opcode::Write::new(fd, buf.ptr, bs as u32)
                    .offset(offset)
                    .build(),
            }
            .user_data(id << 8 | copy as u64);
            self.push(&sqe)?;
        }
        *self.held.entry(block).or_insert(0) += 1;
        self.pending.insert(
            id,
            Pending {
                timed,
                readback,
                op,
                block,
                generation,
                submitted: now,
                deadline: now + self.cfg.deadline,
                missed: false,
                decided: None,
                copies: targets
                    .iter()
                    .map(|&target| Copy {
                        target,
                        result: None,
                    })
                    .collect(),
                bufs,
                first_ok: None,
            },
        );
        Ok(())
    }

    fn push(&mut self, sqe: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an SQE names lives in `pending` until its completion is
            // reaped (or is leaked, see `run`); the fds live as long as the ring.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring
                .submit()
                .map_err(|e| io::Error::new(e.kind(), format!("io_uring_enter: {e}")))?;
        }
    }

    fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) => Ok(()),
                Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(1));
                    Ok(())
                }
                _ => Err(io::Error::new(e.kind(), format!("io_uring_enter: {e}"))),
            },
        }
    }

    fn mark_misses(&mut self, now: Instant) {
        for p in self.pending.values_mut() {
            if p.timed && p.decided.is_none() && !p.missed && now >= p.deadline {
                p.missed = true;
                self.report.deadline_misses += 1;
            }
        }
    }

    fn record_latency(&mut self, d: Duration) {
        let us = d.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
        self.histogram.saturating_record(us);
    }

    fn note_failure(&mut self, f: CriticalFailure) {
        self.report.max_failure_ms = Some(self.report.max_failure_ms.unwrap_or(0.0).max(f.took_ms));
        if self.report.failures.len() < KEPT_DETAILS {
            self.report.failures.push(f.clone());
        }
        self.report.last_failure = Some(f);
    }

    fn completed(&mut self, user_data: u64, res: i32, now: Instant) -> io::Result<()> {
        if user_data & CANCEL_BIT != 0 {
            if res == 0 {
                self.report.cancelled += 1;
            }
            return Ok(());
        }
        let (id, copy) = (user_data >> 8, (user_data & 0xff) as usize);
        let bs = self.cfg.block_size;
        let Some(p) = self.pending.get_mut(&id) else {
            return Ok(());
        };
        p.copies[copy].result = Some(res);
        let ok = res >= 0 && res as u32 == bs;
        let t_ms = p
            .submitted
            .saturating_duration_since(self.origin)
            .as_secs_f64()
            * 1000.0;
        let mut readback = None;
        let mut cancel = Vec::new();
        if p.decided.is_none() {
            if ok {
                p.decided = Some(true);
                p.first_ok = Some(copy);
                let took = now.saturating_duration_since(p.submitted);
                let label = self.targets[p.copies[copy].target].label.clone();
                match p.op {
                    Op::Write => self.tracker.write_succeeded(p.block, p.generation),
                    Op::Read => {
                        let buf = p.bufs[copy].bytes();
                        match self.tracker.check_read(p.block, buf) {
                            Verdict::Match => self.report.verified += 1,
                            Verdict::Mismatch(detail) => {
                                if self.report.mismatches.len() < KEPT_DETAILS {
                                    self.report.mismatches.push(MismatchRecord {
                                        t: now.saturating_duration_since(self.origin),
                                        block: p.block,
                                        detail,
                                    });
                                }
                            }
                        }
                    }
                }
                cancel = p
                    .copies
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.result.is_none())
                    .map(|(i, _)| id << 8 | i as u64)
                    .collect();
                if p.timed {
                    self.report.succeeded += 1;
                    if !p.missed && now >= p.deadline {
                        p.missed = true;
                        self.report.deadline_misses += 1;
                    }
                    *self.first_answer.entry(label).or_insert(0) += 1;
                    if p.op == Op::Write {
                        readback = Some(p.block);
                    }
                    let us = took.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
                    self.histogram.saturating_record(us);
                }
            } else if p.copies.iter().all(|c| c.result.is_some()) {
                p.decided = Some(false);
                let took = now.saturating_duration_since(p.submitted);
                let errno = if res < 0 { -res } else { libc::EIO };
                let (timed, op, block, generation) = (p.timed, p.op, p.block, p.generation);
                if p.readback {
                    self.report.readback_errors += 1;
                }
                let copies = p.copies.len() as u32;
                if op == Op::Write {
                    self.tracker.write_failed(block, generation);
                }
                if timed {
                    self.report.failed += 1;
                    if let Some(p) = self.pending.get_mut(&id) {
                        if !p.missed {
                            p.missed = true;
                            self.report.deadline_misses += 1;
                        }
                    }
                    self.record_latency(took);
                    self.note_failure(CriticalFailure {
                        t_ms,
                        took_ms: took.as_secs_f64() * 1000.0,
                        errno: Some(errno),
                        copies,
                    });
                }
            }
        }
        for c in cancel {
            self.report.cancels_sent += 1;
            let sqe = opcode::AsyncCancel::new(c)
                .build()
                .user_data(c | CANCEL_BIT);
            self.push(&sqe)?;
        }
        let p = self.pending.get(&id).expect("still pending");
        if p.copies.iter().all(|c| c.result.is_some()) {
            let p = self.pending.remove(&id).expect("still pending");
            self.check_copies(&p, t_ms);
            if let Some(n) = self.held.get_mut(&p.block) {
                *n -= 1;
                if *n == 0 {
                    self.held.remove(&p.block);
                }
            }
        }
        if let Some(block) = readback {
            self.issue(Op::Read, block, true, now)?;
        }
        Ok(())
    }

    /// Once every copy has answered: did they agree? Cancelled copies say nothing.
    fn check_copies(&mut self, p: &Pending, t_ms: f64) {
        let bs = self.cfg.block_size as i32;
        let answered: Vec<(usize, i32)> = p
            .copies
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.result.map(|r| (i, r)))
            .filter(|(_, r)| *r != -libc::ECANCELED)
            .collect();
        let label = |i: usize| self.targets[p.copies[i].target].label.as_str();
        let ok: Vec<usize> = answered
            .iter()
            .filter(|(_, r)| *r == bs)
            .map(|(i, _)| *i)
            .collect();
        let failed: Vec<(usize, i32)> =
            answered.iter().filter(|(_, r)| *r != bs).copied().collect();
        let what = match p.op {
            Op::Write => "write",
            Op::Read => "read",
        };
        let mut detail = None;
        if let (Some(&o), Some(&(f, r))) = (ok.first(), failed.first()) {
            let errno = if r < 0 {
                errno_name(-r)
            } else {
                "short".into()
            };
            detail = Some(format!(
                "{what} of block {} succeeded on {} and failed on {} ({errno})",
                p.block,
                label(o),
                label(f)
            ));
        } else if p.op == Op::Read && ok.len() > 1 {
            let first = ok[0];
            // SAFETY: every copy has answered, so no IO uses these buffers any more.
            let a = unsafe { std::slice::from_raw_parts(p.bufs[first].ptr, p.bufs[first].len) };
            if let Some(&other) = ok[1..].iter().find(|&&i| {
                // SAFETY: as above.
                let b = unsafe { std::slice::from_raw_parts(p.bufs[i].ptr, p.bufs[i].len) };
                a != b
            }) {
                detail = Some(format!(
                    "read of block {}: the copies from {} and {} differ",
                    p.block,
                    label(first),
                    label(other)
                ));
            }
        }
        if let Some(detail) = detail {
            self.report.disagreements += 1;
            if self.report.disagreement_details.len() < KEPT_DETAILS {
                self.report.disagreement_details.push(Disagreement {
                    t_ms,
                    block: p.block,
                    detail,
                });
            }
        }
    }
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EIO => "EIO".into(),
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ENOLINK => "ENOLINK".into(),
        libc::EREMOTEIO => "EREMOTEIO".into(),
        libc::ENOSPC => "ENOSPC".into(),
        other => format!("errno {other}"),
    }
}
