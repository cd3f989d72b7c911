//! The io_uring loop: opens the target `O_DIRECT`, keeps up to `queue_depth` reads and writes in
//! flight from one aligned buffer per slot, reaps completions, feeds them to the tracker and the
//! stall detector, and accumulates the report.
//!
//! Owns buffer lifetime: a buffer is handed to the kernel with its SQE and is only reused after
//! that IO's completion was reaped. The loop never returns normally with IO in flight; if it
//! returns early (an io_uring failure) or unwinds, buffers with IO still in flight are leaked
//! instead of freed, so a late completion can never write into reused memory.
//!
//! Waiting is always bounded (at most [`TICK`]) with an `io_uring_enter` timeout, so stalls are
//! noticed even when nothing completes for a long time.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

use super::generator::OpGenerator;
use super::series::SeriesRecorder;
use super::timing::{Pacer, StallDetector};
use super::tracker::{Tracker, Verdict};
use super::{
    codec, LatencySummary, MismatchRecord, Op, StallRecord, WorkloadConfig, WorkloadEvent,
    WorkloadReport,
};

/// Longest the loop sleeps without looking at the clock.
const TICK: Duration = Duration::from_millis(50);
/// Buffer alignment; enough for O_DIRECT on any logical block size up to 4 KiB.
const ALIGN: usize = 4096;
/// Read buffers are filled with this before each read, so a read that reports success without
/// transferring data cannot pass verification with stale content.
const POISON: u8 = 0xa5;

pub(crate) fn execute(
    config: &WorkloadConfig,
    tracker: &mut Tracker,
    origin: Instant,
    stop: &AtomicBool,
    events: &mut dyn FnMut(WorkloadEvent),
) -> io::Result<WorkloadReport> {
    let file = open_target(config, tracker.blocks())?;
    let ring = IoUring::new(config.queue_depth.next_power_of_two())
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring setup: {e}")))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring without IORING_FEAT_EXT_ARG (kernel < 5.11): cannot wait with a timeout",
        ));
    }
    let bufs = IoBuffers::new(config.queue_depth as usize, config.block_size as usize)?;
    let histogram = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
        .map(|mut h| {
            h.auto(true);
            h
        })
        .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
    let start = Instant::now();
    let cpu_at_start = thread_cpu_time();
    let mut engine = Engine {
        cfg: config,
        generator: OpGenerator::new(
            config.seed,
            tracker.blocks(),
            config.read_percent,
            config.sequential,
        ),
        tracker,
        ring,
        file,
        bufs: ManuallyDrop::new(bufs),
        slots: (0..config.queue_depth).map(|_| None).collect(),
        free: (0..config.queue_depth as usize).rev().collect(),
        in_flight: 0,
        held: None,
        pacer: Pacer::new(config.rate_iops, start),
        stall: StallDetector::new(config.stall_threshold),
        origin,
        reaped: Vec::with_capacity(config.queue_depth as usize),
        reads: 0,
        writes: 0,
        read_errors: 0,
        write_errors: 0,
        verified_blocks: 0,
        mismatches: Vec::new(),
        histogram,
        stalls: Vec::new(),
        series: SeriesRecorder::new(
            super::SERIES_INTERVAL,
            start.saturating_duration_since(origin),
        ),
    };
    engine.main_loop(start, stop, events)?;
    let cpu = thread_cpu_time()
        .zip(cpu_at_start)
        .map(|(end, begin)| end.saturating_sub(begin));
    Ok(engine.into_report(start.elapsed(), cpu))
}

/// User + system CPU time of the calling thread (the engine runs on a thread of its own).
fn thread_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

fn open_target(config: &WorkloadConfig, blocks: u64) -> io::Result<File> {
    let path = &config.path;
    let ctx = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| ctx("open O_RDWR|O_DIRECT", e))?;
    let meta = file.metadata().map_err(|e| ctx("stat", e))?;
    if meta.file_type().is_block_device() {
        let size = file.seek(SeekFrom::End(0)).map_err(|e| ctx("size of", e))?;
        let needed = blocks * u64::from(config.block_size);
        if size < needed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has {size} bytes, the workload region needs {needed}",
                    path.display()
                ),
            ));
        }
    }
    Ok(file)
}

/// One `block_size` buffer per slot, in one anonymous mapping: page-aligned (enough for
/// O_DIRECT), and its pages are only made when first touched. A deep queue of large blocks on a
/// small map uses few of its slots, and zeroing the whole allocation up front cost seconds in a
/// UML guest (256 × 1 MiB: 4.5 s before the first IO).
struct IoBuffers {
    ptr: NonNull<u8>,
    len: usize,
    block_size: usize,
}

impl IoBuffers {
    fn new(count: usize, block_size: usize) -> io::Result<IoBuffers> {
        let len = count
            .checked_mul(block_size)
            .filter(|len| *len > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "IO buffers too large"))?;
        // SAFETY: a private anonymous mapping of `len` bytes; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!("IO buffers ({len} bytes): {err}"),
            ));
        }
        debug_assert_eq!(ptr as usize % ALIGN, 0);
        Ok(IoBuffers {
            ptr: NonNull::new(ptr.cast()).expect("mmap does not return null on success"),
            len,
            block_size,
        })
    }

    fn ptr(&self, slot: usize) -> *mut u8 {
        assert!((slot + 1) * self.block_size <= self.len);
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.as_ptr().add(slot * self.block_size) }
    }

    /// The buffer of `slot`. Only call it for a slot with no IO in flight.
    fn slot_mut(&mut self, slot: usize) -> &mut [u8] {
        // SAFETY: in bounds; the mapping's bytes are initialised (zero until written); `&mut self`
        // and the caller's promise that the kernel is not using this slot make the access
        // exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(slot), self.block_size) }
    }
}

impl Drop for IoBuffers {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

struct InFlight {
    op: Op,
    block: u64,
    generation: u64,
    submitted: Instant,
}

struct Engine<'a> {
    cfg: &'a WorkloadConfig,
    tracker: &'a mut Tracker,
    generator: OpGenerator,
    ring: IoUring,
    /// Kept open for the fd the SQEs name.
    file: File,
    /// Freed by `Drop` only once nothing is in flight.
    bufs: ManuallyDrop<IoBuffers>,
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    in_flight: u32,
    /// A candidate that could not be placed because every block was in flight.
    held: Option<(Op, u64)>,
    pacer: Pacer,
    stall: StallDetector,
    origin: Instant,
    reaped: Vec<(u64, i32)>,
    reads: u64,
    writes: u64,
    read_errors: u64,
    write_errors: u64,
    verified_blocks: u64,
    mismatches: Vec<MismatchRecord>,
    histogram: hdrhistogram::Histogram<u64>,
    stalls: Vec<StallRecord>,
    series: SeriesRecorder,
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        if self.in_flight == 0 {
            // SAFETY: dropped exactly once, here; the kernel holds no reference to any buffer.
            unsafe { ManuallyDrop::drop(&mut self.bufs) }
        } else {
            tracing::error!(
                in_flight = self.in_flight,
                "workload ended with IO in flight; leaking its buffers so the kernel cannot write into reused memory"
            );
        }
    }
}

impl Engine<'_> {
    fn main_loop(
        &mut self,
        start: Instant,
        stop: &AtomicBool,
        events: &mut dyn FnMut(WorkloadEvent),
    ) -> io::Result<()> {
        let deadline = start + self.cfg.duration;
        // One clock read per loop turn: in a UML guest every clock read is a system call
        // (about 60 µs), so reading it per IO would cap the rate far below the stack's. The
        // reading taken right after a wake-up is the completion time of everything reaped in
        // that wake-up and the submission time of everything queued before the next wait.
        let mut now = Instant::now();
        loop {
            let submitting = now < deadline && !stop.load(Ordering::Relaxed);
            if submitting {
                self.fill(now);
            }
            if self.in_flight == 0 {
                if !submitting {
                    return Ok(());
                }
                // Idle only because the pacer says not yet.
                let nap = self
                    .pacer
                    .wait(now)
                    .unwrap_or(TICK)
                    .min(TICK)
                    .min(deadline.saturating_duration_since(now));
                std::thread::sleep(nap);
                now = Instant::now();
                self.series.advance(self.since_origin(now), self.in_flight);
                continue;
            }
            let mut timeout = TICK;
            if submitting {
                timeout = timeout.min(deadline.saturating_duration_since(now));
                let can_place = (self.in_flight as usize) < self.slots.len() && self.held.is_none();
                if let (true, Some(wait)) = (can_place, self.pacer.wait(now)) {
                    timeout = timeout.min(wait);
                }
            }
            if let Some(due) = self.stall.until_due(now, self.in_flight) {
                timeout = timeout.min(due);
            }
            self.submit_and_wait(timeout)?;
            now = Instant::now();
            self.series.advance(self.since_origin(now), self.in_flight);
            self.reap(now, events);
        }
    }

    /// Queues SQEs until the queue is full, the pacer says wait, or every block is in flight.
    /// `now` is the loop turn's clock reading; the SQEs go to the kernel at the next wait.
    fn fill(&mut self, now: Instant) {
        let bs = self.cfg.block_size;
        while (self.in_flight as usize) < self.slots.len() {
            if !self.pacer.ready(now) {
                break;
            }
            let (op, wanted) = self.held.take().unwrap_or_else(|| self.generator.next_op());
            let Some(block) = self.tracker.claim_near(wanted) else {
                self.held = Some((op, wanted));
                break;
            };
            let slot = self
                .free
                .pop()
                .expect("a free slot when fewer than queue_depth are in flight");
            let mut generation = 0;
            match op {
                Op::Write => {
                    generation = self.tracker.next_generation(block);
                    codec::encode(self.bufs.slot_mut(slot), block, generation, self.cfg.seed);
                }
                Op::Read => self.bufs.slot_mut(slot).fill(POISON),
            }
            let fd = types::Fd(self.file.as_raw_fd());
            let ptr = self.bufs.ptr(slot);
            let offset = block * u64::from(bs);
            let sqe = match op {
                Op::Read => opcode::Read::new(fd, ptr, bs).offset(offset).build(),
                Op::Write => opcode::Write::new(fd, ptr, bs).offset(offset).build(),
            }
            .user_data(slot as u64);
            // SAFETY: the buffer stays allocated and untouched until this SQE's completion is
            // reaped (or forever, see `Drop`); the fd stays open as long as the ring.
            unsafe { self.ring.submission().push(&sqe) }.expect(
                "the SQ holds queue_depth entries and at most queue_depth IOs are in flight",
            );
            self.slots[slot] = Some(InFlight {
                op,
                block,
                generation,
                submitted: now,
            });
            self.stall.submitted(now, self.in_flight);
            self.in_flight += 1;
            self.pacer.submitted(now);
        }
    }

    /// Submits queued SQEs and waits up to `timeout` for at least one completion.
    fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) => Ok(()),
                // Out of kernel resources or completions backed up: reap, then retry.
                Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                    if self.ring.completion().is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(())
                }
                _ => Err(io::Error::new(e.kind(), format!("io_uring_enter: {e}"))),
            },
        }
    }

    fn reap(&mut self, now: Instant, events: &mut dyn FnMut(WorkloadEvent)) {
        // A stall that ran past the threshold before this wake-up is reported even if a
        // completion ends it in the same breath.
        if let Some(began) = self.stall.poll(now, self.in_flight) {
            events(WorkloadEvent::StallBegan {
                t: self.since_origin(began),
                in_flight: self.in_flight,
            });
        }
        self.reaped.clear();
        self.reaped.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        if self.reaped.is_empty() {
            return;
        }
        if let Some((began, length)) = self.stall.completed(now) {
            let record = StallRecord {
                began: self.since_origin(began),
                length,
            };
            self.stalls.push(record);
            events(WorkloadEvent::StallEnded {
                t: self.since_origin(now),
                length,
            });
        }
        for i in 0..self.reaped.len() {
            let (user_data, res) = self.reaped[i];
            self.complete(user_data as usize, res, now, events);
        }
    }

    fn complete(
        &mut self,
        slot: usize,
        res: i32,
        now: Instant,
        events: &mut dyn FnMut(WorkloadEvent),
    ) {
        let io = self.slots[slot]
            .take()
            .expect("completion for a slot with no IO in flight");
        self.in_flight -= 1;
        self.tracker.release(io.block);
        let us = now
            .saturating_duration_since(io.submitted)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        if self.histogram.record(us).is_err() {
            self.histogram.saturating_record(us);
        }
        let errno = if res < 0 {
            Some(-res)
        } else if res as u32 != self.cfg.block_size {
            Some(libc::EIO)
        } else {
            None
        };
        self.series.completed(io.op == Op::Write, errno, us);
        let t = self.since_origin(now);
        match (io.op, errno) {
            (Op::Write, None) => {
                self.writes += 1;
                self.tracker.write_succeeded(io.block, io.generation);
            }
            (Op::Write, Some(errno)) => {
                self.write_errors += 1;
                self.tracker.write_failed(io.block, io.generation);
                events(WorkloadEvent::IoError {
                    t,
                    op: Op::Write,
                    block: io.block,
                    errno,
                });
            }
            (Op::Read, Some(errno)) => {
                self.read_errors += 1;
                events(WorkloadEvent::IoError {
                    t,
                    op: Op::Read,
                    block: io.block,
                    errno,
                });
            }
            (Op::Read, None) => {
                self.reads += 1;
                if self.cfg.verify {
                    match self.tracker.check_read(io.block, self.bufs.slot_mut(slot)) {
                        Verdict::Match => self.verified_blocks += 1,
                        Verdict::Mismatch(detail) => {
                            tracing::debug!(block = io.block, %detail, "workload read mismatch");
                            self.mismatches.push(MismatchRecord {
                                t,
                                block: io.block,
                                detail: detail.clone(),
                            });
                            events(WorkloadEvent::Mismatch {
                                t,
                                block: io.block,
                                detail,
                            });
                        }
                    }
                }
            }
        }
        self.free.push(slot);
    }

    fn since_origin(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    fn into_report(mut self, elapsed: Duration, cpu: Option<Duration>) -> WorkloadReport {
        let h = std::mem::replace(
            &mut self.histogram,
            hdrhistogram::Histogram::new(3).expect("sigfig 3 is valid"),
        );
        let latency = if h.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
                mean_us: h.mean(),
                count: h.len(),
            }
        };
        WorkloadReport {
            reads: self.reads,
            writes: self.writes,
            read_errors: self.read_errors,
            write_errors: self.write_errors,
            verified_blocks: self.verified_blocks,
            mismatches: std::mem::take(&mut self.mismatches),
            latency,
            histogram: h,
            stalls: std::mem::take(&mut self.stalls),
            longest_quiet: Some(self.stall.longest_quiet()),
            elapsed,
            cpu,
            series: std::mem::replace(
                &mut self.series,
                SeriesRecorder::new(super::SERIES_INTERVAL, Duration::ZERO),
            )
            .finish(self.in_flight),
        }
    }
}
