//! The TCMU handler of one path: a thread with one poll loop over the path's uio device and a
//! wake-up eventfd. It takes commands off the ring, decides their fate with [`super::rules`],
//! answers them with [`super::commands`] and the LUN's backing file, and holds, delays or fails
//! them as the rules say.
//!
//! Per batch of commands it costs a `poll`, a `read` of the uio fd and one `write` to it for
//! the completions; per command one `preadv`/`pwritev` (UML charges ~60 µs a system call). The
//! clock is read only while commands are held or delayed, or when something is logged.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use super::alua::{Admit, AluaLun};
use super::commands::{self, status, Action, Identity, OpClass, Sense};
use super::ring::{Command, Entry, Ring, TMR_ABORT_TASK, TMR_LUN_RESET};
use super::rules::{self, AbortPolicy, Failure, ScsiOp, ScsiRule};

/// How many events a path's log keeps (the oldest go first).
pub const LOG_CAPACITY: usize = 512;

/// What the array did on one path, counted since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PathCounts {
    /// Commands that arrived, by class.
    pub reads: u64,
    pub writes: u64,
    pub others: u64,
    /// Commands answered GOOD.
    pub ok: u64,
    /// Commands answered with CHECK CONDITION or another non-GOOD status (injected or not).
    pub failed: u64,
    /// Of `failed`, those a rule failed.
    pub injected: u64,
    /// Commands a latency rule delayed.
    pub delayed: u64,
    /// Commands a NoResponse rule held.
    pub held: u64,
    /// Held commands answered (served) after their rule went away.
    pub released: u64,
    /// Held or delayed commands completed as aborted because of an honoured TMR.
    pub aborted: u64,
    pub tmr_received: u64,
    /// TMRs that named a held or delayed command and were acted on.
    pub tmr_answered: u64,
    /// TMRs that named a held command under an Ignore rule.
    pub tmr_ignored: u64,
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    others: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    injected: AtomicU64,
    delayed: AtomicU64,
    held: AtomicU64,
    released: AtomicU64,
    aborted: AtomicU64,
    tmr_received: AtomicU64,
    tmr_answered: AtomicU64,
    tmr_ignored: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A notable thing the array did on a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A NoResponse rule started holding a command.
    Held,
    /// A held command was answered after its rule went away (`held_for`).
    AnsweredLate { held_for: Duration },
    /// A task-management request: its type (1 ABORT TASK, 5 LUN RESET, …) and how many
    /// commands it named.
    TmrReceived { tmr_type: u8, commands: usize },
    /// A held or delayed command completed as aborted for an honoured TMR.
    Aborted,
    /// A TMR naming a held command that an Ignore rule leaves unanswered.
    TmrIgnored,
    /// A rule failed a command with this status (and sense key/asc/ascq when CHECK CONDITION).
    Failed {
        status: u8,
        sense: Option<(u8, u8, u8)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayEvent {
    pub at: Instant,
    pub cmd_id: u16,
    /// The command's opcode (0 for TMR events).
    pub opcode: u8,
    pub kind: EventKind,
}

/// What one path's handler shares with [`super::ArrayControl`].
pub struct PathShared {
    pub name: String,
    rules: Mutex<Vec<ScsiRule>>,
    generation: AtomicU64,
    counters: Counters,
    log: Mutex<VecDeque<ArrayEvent>>,
    wake: OwnedFd,
    stop: AtomicBool,
}

impl PathShared {
    pub fn new(name: &str) -> Result<PathShared, nix::Error> {
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(nix::Error::last());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let wake = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(PathShared {
            name: name.to_string(),
            rules: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            counters: Counters::default(),
            log: Mutex::new(VecDeque::new()),
            wake,
            stop: AtomicBool::new(false),
        })
    }

    fn poke(&self) {
        let _ = nix::unistd::write(&self.wake, &1u64.to_ne_bytes());
    }

    pub fn set_rules(&self, rules: Vec<ScsiRule>) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = rules;
        self.generation.fetch_add(1, Ordering::Release);
        self.poke();
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.poke();
    }

    pub fn counts(&self) -> PathCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PathCounts {
            reads: get(&c.reads),
            writes: get(&c.writes),
            others: get(&c.others),
            ok: get(&c.ok),
            failed: get(&c.failed),
            injected: get(&c.injected),
            delayed: get(&c.delayed),
            held: get(&c.held),
            released: get(&c.released),
            aborted: get(&c.aborted),
            tmr_received: get(&c.tmr_received),
            tmr_answered: get(&c.tmr_answered),
            tmr_ignored: get(&c.tmr_ignored),
        }
    }

    pub fn log(&self) -> Vec<ArrayEvent> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, cmd_id: u16, opcode: u8, kind: EventKind) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(ArrayEvent {
            at: Instant::now(),
            cmd_id,
            opcode,
            kind,
        });
    }
}

struct Pending {
    cmd: Command,
    action: Action,
    op: ScsiOp,
}

struct Held {
    pending: Pending,
    since: Instant,
    policy: AbortPolicy,
}

struct Delayed {
    pending: Pending,
    due: Instant,
    fail: Option<Failure>,
}

/// The LUN's backing file mapped shared into the handler, so that reads and writes are a
/// memcpy between it and the command's buffers instead of a system call each. All paths of a
/// LUN map the same file: they share its page cache, as `pread`/`pwrite` would.
pub struct BackingMap {
    ptr: *mut u8,
    len: usize,
}

// Only the handler thread touches the mapping; the kernel keeps it coherent with the file.
unsafe impl Send for BackingMap {}

impl BackingMap {
    /// Maps `len` bytes of `file` (which must be at least that long) read-write, shared.
    pub fn new(file: &File, len: u64) -> std::io::Result<BackingMap> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(BackingMap {
            ptr: ptr as *mut u8,
            len,
        })
    }
}

impl Drop for BackingMap {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Everything one handler thread owns.
pub struct Handler {
    pub shared: Arc<PathShared>,
    pub ring: Ring,
    pub uio: File,
    pub backing: File,
    /// When the backing file could be mapped: IO by memcpy (else `preadv`/`pwritev`).
    pub backing_map: Option<BackingMap>,
    pub identity: Identity,
    pub seed: u64,
    /// The LUN's port groups (shared by its paths) and this path's port index in them.
    pub alua: Option<(Arc<Mutex<AluaLun>>, usize)>,
    rules: Vec<ScsiRule>,
    generation: u64,
    seqs: [u64; 3],
    held: Vec<Held>,
    delayed: Vec<Delayed>,
    completed: bool,
}

fn op_of(class: OpClass) -> ScsiOp {
    match class {
        OpClass::Read => ScsiOp::Read,
        OpClass::Write => ScsiOp::Write,
        OpClass::Other => ScsiOp::Other,
    }
}

impl Handler {
    pub fn new(
        shared: Arc<PathShared>,
        ring: Ring,
        uio: File,
        backing: File,
        identity: Identity,
        seed: u64,
    ) -> Handler {
        Handler {
            shared,
            ring,
            uio,
            backing,
            backing_map: None,
            identity,
            seed,
            alua: None,
            rules: Vec::new(),
            generation: 0,
            seqs: [0; 3],
            held: Vec::new(),
            delayed: Vec::new(),
            completed: false,
        }
    }

    /// The poll loop; returns when told to stop (answering whatever it still holds first).
    pub fn run(mut self) -> Result<(), String> {
        let mut entries = Vec::new();
        loop {
            let Some(timeout) = self.step(&mut entries)? else {
                return Ok(());
            };
            if self.ring.has_new() {
                continue;
            }
            let mut fds = [
                PollFd::new(self.uio.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.shared.wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let uio_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            let wake_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
            if uio_ready {
                let mut count = [0u8; 4];
                self.uio
                    .read_exact(&mut count)
                    .map_err(|e| format!("read uio: {e}"))?;
            }
            if wake_ready {
                let mut value = [0u8; 8];
                let _ = nix::unistd::read(self.shared.wake.as_raw_fd(), &mut value);
            }
        }
    }

    /// One pass without blocking: picks up rule changes, takes every new entry off the ring,
    /// answers what is due and tells the kernel. Returns how long the loop may sleep, or
    /// `None` when the handler has stopped.
    fn step(&mut self, entries: &mut Vec<Entry>) -> Result<Option<PollTimeout>, String> {
        let stopping = self.shared.stop.load(Ordering::Acquire);
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation || stopping {
            self.generation = generation;
            self.rules = if stopping {
                Vec::new()
            } else {
                self.shared
                    .rules
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            };
            self.reexamine_held();
        }
        self.ring.take_new(entries).map_err(|e| e.to_string())?;
        for entry in entries.drain(..) {
            match entry {
                Entry::Command(cmd) => self.arrive(cmd),
                Entry::Tmr(tmr) => self.task_management(tmr.tmr_type, &tmr.cmd_ids),
            }
        }
        let mut timeout = PollTimeout::NONE;
        if !self.delayed.is_empty() {
            let now = Instant::now();
            self.serve_due(now);
            if let Some(next) = self.delayed.iter().map(|d| d.due).min() {
                let ms = next
                    .saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000);
                timeout = PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
            }
        }
        self.flush()?;
        if stopping && self.held.is_empty() && self.delayed.is_empty() {
            return Ok(None);
        }
        Ok(Some(timeout))
    }

    /// Publishes the completions written since the last flush and tells the kernel.
    fn flush(&mut self) -> Result<(), String> {
        if self.completed {
            self.completed = false;
            self.ring.publish();
            self.uio
                .write_all(&1u32.to_ne_bytes())
                .map_err(|e| format!("write uio: {e}"))?;
        }
        Ok(())
    }

    fn arrive(&mut self, cmd: Command) {
        let admitted = match &self.alua {
            None => Admit::Proceed,
            Some((lun, port)) => {
                // SET TARGET PORT GROUPS carries its list in the data-out buffer.
                let data_out = if cmd.cdb.first() == Some(&0xa4) {
                    self.copy_out(&cmd)
                } else {
                    Vec::new()
                };
                lun.lock().unwrap_or_else(|e| e.into_inner()).admit(
                    *port,
                    &cmd.cdb,
                    &data_out,
                    Instant::now(),
                )
            }
        };
        let action = match admitted {
            Admit::Proceed => commands::decode(&cmd.cdb, &self.identity),
            Admit::Answer(action) => action,
        };
        let op = op_of(action.class());
        let c = &self.shared.counters;
        bump(match op {
            ScsiOp::Read => &c.reads,
            ScsiOp::Write => &c.writes,
            ScsiOp::Other => &c.others,
        });
        let pending = Pending { cmd, action, op };
        if self.rules.is_empty() {
            return self.serve(&pending);
        }
        let seq = &mut self.seqs[op as usize];
        let plan = rules::plan(
            &self.rules,
            self.seed,
            &self.shared.name,
            op,
            *seq,
            pending.action.extent(),
        );
        *seq += 1;
        if let Some(policy) = plan.hold {
            bump(&self.shared.counters.held);
            self.shared
                .record(pending.cmd.cmd_id, pending.cmd.cdb[0], EventKind::Held);
            self.held.push(Held {
                pending,
                since: Instant::now(),
                policy,
            });
        } else if let Some(delay) = plan.delay {
            bump(&self.shared.counters.delayed);
            self.delayed.push(Delayed {
                pending,
                due: Instant::now() + delay,
                fail: plan.fail,
            });
        } else if let Some(fail) = plan.fail {
            self.fail(&pending, fail);
        } else {
            self.serve(&pending);
        }
    }

    fn serve_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].due <= now {
                let d = self.delayed.swap_remove(i);
                match d.fail {
                    Some(fail) => self.fail(&d.pending, fail),
                    None => self.serve(&d.pending),
                }
            } else {
                i += 1;
            }
        }
    }

    fn reexamine_held(&mut self) {
        let mut i = 0;
        while i < self.held.len() {
            let p = &self.held[i].pending;
            match rules::still_held(&self.rules, p.op, p.action.extent()) {
                Some(policy) => {
                    self.held[i].policy = policy;
                    i += 1;
                }
                None => {
                    let h = self.held.swap_remove(i);
                    bump(&self.shared.counters.released);
                    self.shared.record(
                        h.pending.cmd.cmd_id,
                        h.pending.cmd.cdb[0],
                        EventKind::AnsweredLate {
                            held_for: h.since.elapsed(),
                        },
                    );
                    self.serve(&h.pending);
                }
            }
        }
    }

    fn task_management(&mut self, tmr_type: u8, cmd_ids: &[u16]) {
        let shared = self.shared.clone();
        let counters = &shared.counters;
        bump(&counters.tmr_received);
        self.shared.record(
            0,
            0,
            EventKind::TmrReceived {
                tmr_type,
                commands: cmd_ids.len(),
            },
        );
        if tmr_type != TMR_ABORT_TASK && tmr_type != TMR_LUN_RESET && cmd_ids.is_empty() {
            return;
        }
        let mut answered = false;
        let mut ignored = false;
        for &id in cmd_ids {
            if let Some(i) = self.held.iter().position(|h| h.pending.cmd.cmd_id == id) {
                if self.held[i].policy == AbortPolicy::Ignore {
                    ignored = true;
                    continue;
                }
                let h = self.held.swap_remove(i);
                self.abort(&h.pending);
                answered = true;
            } else if let Some(i) = self.delayed.iter().position(|d| d.pending.cmd.cmd_id == id) {
                let d = self.delayed.swap_remove(i);
                self.abort(&d.pending);
                answered = true;
            }
        }
        if answered {
            bump(&counters.tmr_answered);
        }
        if ignored {
            bump(&counters.tmr_ignored);
            self.shared.record(0, 0, EventKind::TmrIgnored);
        }
    }

    fn abort(&mut self, p: &Pending) {
        bump(&self.shared.counters.aborted);
        self.shared
            .record(p.cmd.cmd_id, p.cmd.cdb[0], EventKind::Aborted);
        self.ring.complete(p.cmd.cmd_id, status::TASK_ABORTED, None);
        self.completed = true;
    }

    fn fail(&mut self, p: &Pending, fail: Failure) {
        let (code, sense) = match fail {
            Failure::Sense { key, asc, ascq } => {
                (status::CHECK_CONDITION, Some(Sense::new(key, asc, ascq)))
            }
            Failure::Status(s) => (s.code(), None),
        };
        bump(&self.shared.counters.injected);
        self.shared.record(
            p.cmd.cmd_id,
            p.cmd.cdb[0],
            EventKind::Failed {
                status: code,
                sense: sense.map(|s| (s.key, s.asc, s.ascq)),
            },
        );
        self.answer(p.cmd.cmd_id, code, sense);
    }

    fn answer(&mut self, cmd_id: u16, code: u8, sense: Option<Sense>) {
        bump(if code == status::GOOD {
            &self.shared.counters.ok
        } else {
            &self.shared.counters.failed
        });
        let bytes = sense.map(|s| s.fixed_format());
        self.ring
            .complete(cmd_id, code, bytes.as_ref().map(|b| &b[..]));
        self.completed = true;
    }

    /// Carries out a command: IO on the backing file or a ready answer.
    fn serve(&mut self, p: &Pending) {
        let id = p.cmd.cmd_id;
        match &p.action {
            Action::Read { lba, blocks } | Action::Write { lba, blocks } => {
                // A read or write held or delayed while its port lost ownership gets the
                // port's new refusal, as in-flight IO on a trespassed-away controller does.
                if let Some(refusal) = self.alua.as_ref().and_then(|(lun, port)| {
                    lun.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .still_serves(*port)
                }) {
                    return self.answer(id, status::CHECK_CONDITION, Some(refusal));
                }
                let write = matches!(p.action, Action::Write { .. });
                let want = *blocks as usize * commands::BLOCK_SIZE as usize;
                match self.transfer(&p.cmd, lba * u64::from(commands::BLOCK_SIZE), want, write) {
                    Ok(()) => self.answer(id, status::GOOD, None),
                    Err(_) => {
                        let sense = if write {
                            Sense::WRITE_ERROR
                        } else {
                            Sense::UNRECOVERED_READ_ERROR
                        };
                        self.answer(id, status::CHECK_CONDITION, Some(sense))
                    }
                }
            }
            Action::Sync => match nix::unistd::fdatasync(self.backing.as_raw_fd()) {
                Ok(()) => self.answer(id, status::GOOD, None),
                Err(_) => self.answer(id, status::CHECK_CONDITION, Some(Sense::WRITE_ERROR)),
            },
            Action::Data(data) => {
                self.copy_in(&p.cmd, data);
                self.answer(id, status::GOOD, None)
            }
            Action::Good => self.answer(id, status::GOOD, None),
            Action::Check(sense) => self.answer(id, status::CHECK_CONDITION, Some(*sense)),
        }
    }

    /// The command's data-out buffers, concatenated (parameter lists are small).
    fn copy_out(&self, cmd: &Command) -> Vec<u8> {
        let mut out = Vec::new();
        for iov in &cmd.iovs {
            let Some(ptr) = self.ring.data_ptr(*iov) else {
                break;
            };
            // SAFETY: data_ptr checked the iov lies inside the shared map.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, iov.len) });
            if out.len() >= 1 << 16 {
                break;
            }
        }
        out
    }

    /// Copies `data` into the command's buffers, zero-filling the rest.
    fn copy_in(&self, cmd: &Command, data: &[u8]) {
        let mut rest = data;
        for iov in &cmd.iovs {
            let Some(ptr) = self.ring.data_ptr(*iov) else {
                return;
            };
            let n = rest.len().min(iov.len);
            unsafe {
                std::ptr::copy_nonoverlapping(rest.as_ptr(), ptr, n);
                std::ptr::write_bytes(ptr.add(n), 0, iov.len - n);
            }
            rest = &rest[n..];
        }
    }

    /// One `preadv`/`pwritev` between the backing file at `offset` and the command's buffers
    /// (at most `want` bytes). A read past the backing file's end returns zeros.
    fn transfer(
        &self,
        cmd: &Command,
        offset: u64,
        want: usize,
        write: bool,
    ) -> std::io::Result<()> {
        if let Some(map) = &self.backing_map {
            if offset.saturating_add(want as u64) <= map.len as u64 {
                let mut at = offset as usize;
                let mut left = want;
                for iov in &cmd.iovs {
                    if left == 0 {
                        break;
                    }
                    let ptr = self
                        .ring
                        .data_ptr(*iov)
                        .ok_or_else(|| std::io::Error::other("iov outside the shared map"))?;
                    let n = iov.len.min(left);
                    // SAFETY: both ranges are inside their mappings (checked above).
                    unsafe {
                        if write {
                            std::ptr::copy_nonoverlapping(ptr, map.ptr.add(at), n);
                        } else {
                            std::ptr::copy_nonoverlapping(map.ptr.add(at), ptr, n);
                        }
                    }
                    at += n;
                    left -= n;
                }
                return Ok(());
            }
        }
        let mut iovecs = Vec::with_capacity(cmd.iovs.len());
        let mut left = want;
        for iov in &cmd.iovs {
            if left == 0 {
                break;
            }
            let ptr = self
                .ring
                .data_ptr(*iov)
                .ok_or_else(|| std::io::Error::other("iov outside the shared map"))?;
            let n = iov.len.min(left);
            iovecs.push(libc::iovec {
                iov_base: ptr as *mut libc::c_void,
                iov_len: n,
            });
            left -= n;
        }
        let total = want - left;
        let mut done = 0usize;
        while done < total {
            // Rebuild the iovec list past what is done (short transfers are rare: tmpfs).
            let (vecs, skip) = skip_iovecs(&iovecs, done);
            let mut vecs = vecs;
            if let Some(first) = vecs.first_mut() {
                first.iov_base = unsafe { (first.iov_base as *mut u8).add(skip) } as *mut _;
                first.iov_len -= skip;
            }
            let fd = self.backing.as_raw_fd();
            let at = (offset + done as u64) as libc::off_t;
            let n = unsafe {
                if write {
                    libc::pwritev(fd, vecs.as_ptr(), vecs.len() as i32, at)
                } else {
                    libc::preadv(fd, vecs.as_ptr(), vecs.len() as i32, at)
                }
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                if write {
                    return Err(std::io::Error::other("backing file took no bytes"));
                }
                // Past the end of the backing file: the rest reads as zeros.
                let (vecs, skip) = skip_iovecs(&iovecs, done);
                for (i, v) in vecs.iter().enumerate() {
                    let from = if i == 0 { skip } else { 0 };
                    unsafe {
                        std::ptr::write_bytes(
                            (v.iov_base as *mut u8).add(from),
                            0,
                            v.iov_len - from,
                        )
                    };
                }
                return Ok(());
            }
            done += n as usize;
        }
        Ok(())
    }
}

/// The iovecs from byte `done` on: the remaining list and the offset into its first element.
fn skip_iovecs(iovecs: &[libc::iovec], done: usize) -> (Vec<libc::iovec>, usize) {
    let mut skipped = 0;
    for (i, v) in iovecs.iter().enumerate() {
        if skipped + v.iov_len > done {
            return (iovecs[i..].to_vec(), done - skipped);
        }
        skipped += v.iov_len;
    }
    (Vec::new(), 0)
}

/// Runs until the handler stops; a handler that fails records why in the log's place: stderr.
pub fn spawn(handler: Handler) -> std::io::Result<std::thread::JoinHandle<Result<(), String>>> {
    let name = format!("tcmu-{}", handler.shared.name);
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || handler.run())
}

/// Short sleeps for bounded waits elsewhere in the module.
pub(crate) const POLL_STEP: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::ring::{OP_CMD, OP_TMR};
    use crate::scsi::rules::{ScsiAction, ScsiOp};
    use std::fs::OpenOptions;

    const MAP: usize = 16384;
    const CMDR_OFF: usize = 128;
    const CMDR_SIZE: usize = 4096;
    const ENTRY: usize = 128;

    /// A fake TCMU map the test plays the kernel's part in.
    struct Kernel {
        mem: Box<[u64]>,
        head: usize,
        cleaned: usize,
    }

    impl Kernel {
        fn new() -> Kernel {
            let mut k = Kernel {
                mem: vec![0u64; MAP / 8].into_boxed_slice(),
                head: 0,
                cleaned: 0,
            };
            k.put(4, &(CMDR_OFF as u32).to_ne_bytes());
            k.put(8, &(CMDR_SIZE as u32).to_ne_bytes());
            k
        }
        fn bytes(&mut self) -> &mut [u8] {
            unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr() as *mut u8, MAP) }
        }
        fn put(&mut self, at: usize, b: &[u8]) {
            self.bytes()[at..at + b.len()].copy_from_slice(b);
        }
        fn u32_at(&mut self, at: usize) -> u32 {
            u32::from_ne_bytes(self.bytes()[at..at + 4].try_into().unwrap())
        }
        fn data_at(id: u16) -> usize {
            8192 + 512 * usize::from(id % 16)
        }
        fn cmd(&mut self, id: u16, cdb: &[u8], data_len: usize) {
            let at = CMDR_OFF + self.head;
            let cdb_off = 6144 + 16 * usize::from(id % 64);
            self.put(at, &(ENTRY as u32 | OP_CMD).to_ne_bytes());
            self.put(at + 4, &id.to_ne_bytes());
            self.put(at + 8, &1u32.to_ne_bytes());
            self.put(at + 24, &(cdb_off as u64).to_ne_bytes());
            self.put(at + 48, &(Kernel::data_at(id) as u64).to_ne_bytes());
            self.put(at + 56, &(data_len as u64).to_ne_bytes());
            let mut full = [0u8; 16];
            full[..cdb.len()].copy_from_slice(cdb);
            self.put(cdb_off, &full);
            self.advance(ENTRY);
        }
        fn tmr(&mut self, tmr_type: u8, ids: &[u16]) {
            let at = CMDR_OFF + self.head;
            self.put(at, &(64u32 | OP_TMR).to_ne_bytes());
            self.put(at + 8, &[tmr_type]);
            self.put(at + 12, &(ids.len() as u32).to_ne_bytes());
            for (i, id) in ids.iter().enumerate() {
                self.put(at + 32 + 2 * i, &id.to_ne_bytes());
            }
            self.advance(64);
        }
        fn advance(&mut self, len: usize) {
            self.head = (self.head + len) % CMDR_SIZE;
            let head = self.head as u32;
            self.put(12, &head.to_ne_bytes());
        }
        /// What the kernel would clean: (cmd_id, status, sense key) up to `cmd_tail`.
        fn completions(&mut self) -> Vec<(u16, u8, u8)> {
            let tail = self.u32_at(64) as usize;
            let mut out = Vec::new();
            while self.cleaned != tail {
                let at = CMDR_OFF + self.cleaned;
                let len_op = self.u32_at(at);
                if len_op & 7 == OP_CMD {
                    let b = self.bytes();
                    out.push((
                        u16::from_ne_bytes([b[at + 4], b[at + 5]]),
                        b[at + 8],
                        b[at + 18],
                    ));
                }
                self.cleaned = (self.cleaned + (len_op & !7) as usize) % CMDR_SIZE;
            }
            out
        }
    }

    fn handler(kernel: &mut Kernel, name: &str) -> (Handler, Arc<PathShared>, Vec<u8>) {
        let pattern: Vec<u8> = (0..1 << 20).map(|i: usize| (i * 13 % 251) as u8).collect();
        let file =
            std::env::temp_dir().join(format!("pathrig-handler-{name}-{}", std::process::id()));
        std::fs::write(&file, &pattern).unwrap();
        let backing = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        std::fs::remove_file(&file).unwrap();
        let uio = OpenOptions::new().write(true).open("/dev/null").unwrap();
        let ring = unsafe { Ring::new(kernel.bytes().as_mut_ptr(), MAP) }.unwrap();
        let shared = Arc::new(PathShared::new(name).unwrap());
        let identity = Identity {
            wwid: "lun".into(),
            blocks: 2048,
            relative_port: 1,
            tpgs: 0,
            port_group: None,
        };
        let mut h = Handler::new(shared.clone(), ring, uio, backing, identity, 1);
        if name.ends_with("mapped") {
            h.backing_map = Some(BackingMap::new(&h.backing, 1 << 20).unwrap());
        }
        (h, shared, pattern)
    }

    const READ_LBA_1: [u8; 10] = [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0];

    fn step(h: &mut Handler) {
        h.step(&mut Vec::new()).unwrap();
    }

    #[test]
    fn answers_inquiry_reads_and_failures() {
        for name in ["plain", "mapped"] {
            let mut k = Kernel::new();
            let (mut h, shared, pattern) = handler(&mut k, name);
            k.cmd(1, &[0x12, 0, 0, 0, 36, 0], 36);
            k.cmd(2, &READ_LBA_1, 512);
            step(&mut h);
            assert_eq!(k.completions(), vec![(1, 0, 0), (2, 0, 0)]);
            let at = Kernel::data_at(2);
            assert_eq!(&k.bytes()[at..at + 512], &pattern[512..1024]);
            assert_eq!(
                &k.bytes()[Kernel::data_at(1) + 8..Kernel::data_at(1) + 15],
                b"PATHRIG"
            );
            shared.set_rules(vec![ScsiRule::new(ScsiAction::CheckCondition {
                key: 3,
                asc: 0x11,
                ascq: 0,
            })
            .ops(&[ScsiOp::Read])]);
            k.cmd(3, &READ_LBA_1, 512);
            k.cmd(4, &[0, 0, 0, 0, 0, 0], 0);
            step(&mut h);
            assert_eq!(
                k.completions(),
                vec![(3, status::CHECK_CONDITION, 3), (4, 0, 0)]
            );
            let c = shared.counts();
            assert_eq!(
                (c.reads, c.others, c.injected, c.failed, c.ok),
                (2, 2, 1, 1, 3)
            );
        }
    }

    #[test]
    fn an_honoured_abort_completes_the_held_command() {
        let mut k = Kernel::new();
        let (mut h, shared, _) = handler(&mut k, "honour");
        shared.set_rules(vec![ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Honour,
        })]);
        k.cmd(7, &READ_LBA_1, 512);
        step(&mut h);
        assert_eq!(k.completions(), vec![]);
        k.tmr(TMR_ABORT_TASK, &[7]);
        step(&mut h);
        assert_eq!(k.completions(), vec![(7, status::TASK_ABORTED, 0)]);
        let c = shared.counts();
        assert_eq!(
            (c.held, c.aborted, c.tmr_received, c.tmr_answered),
            (1, 1, 1, 1)
        );
        assert!(shared.log().iter().any(|e| e.kind == EventKind::Aborted));
    }

    #[test]
    fn an_ignored_abort_leaves_the_command_held_until_the_rule_goes() {
        let mut k = Kernel::new();
        let (mut h, shared, pattern) = handler(&mut k, "ignore");
        shared.set_rules(vec![ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Ignore,
        })
        .ops(&[ScsiOp::Read])]);
        k.cmd(9, &READ_LBA_1, 512);
        k.cmd(10, &[0, 0, 0, 0, 0, 0], 0); // TUR is not selected
        step(&mut h);
        assert_eq!(k.completions(), vec![(10, 0, 0)]);
        k.tmr(TMR_LUN_RESET, &[9]);
        step(&mut h);
        assert_eq!(k.completions(), vec![]);
        assert_eq!(shared.counts().tmr_ignored, 1);
        shared.set_rules(Vec::new());
        step(&mut h);
        assert_eq!(k.completions(), vec![(9, 0, 0)]);
        let at = Kernel::data_at(9);
        assert_eq!(&k.bytes()[at..at + 512], &pattern[512..1024]);
        assert_eq!(shared.counts().released, 1);
        assert!(shared
            .log()
            .iter()
            .any(|e| matches!(e.kind, EventKind::AnsweredLate { .. })));
    }

    #[test]
    fn stopping_answers_what_is_held() {
        let mut k = Kernel::new();
        let (mut h, shared, _) = handler(&mut k, "stop");
        shared.set_rules(vec![ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Ignore,
        })]);
        k.cmd(5, &READ_LBA_1, 512);
        assert!(h.step(&mut Vec::new()).unwrap().is_some());
        shared.stop();
        assert!(h.step(&mut Vec::new()).unwrap().is_none());
        assert_eq!(k.completions(), vec![(5, 0, 0)]);
    }

    #[test]
    fn a_write_lands_in_the_backing_file() {
        for name in ["wplain", "wmapped"] {
            let mut k = Kernel::new();
            let (mut h, _, _) = handler(&mut k, name);
            let at = Kernel::data_at(11);
            k.bytes()[at..at + 512].fill(0xab);
            k.cmd(11, &[0x2a, 0, 0, 0, 0, 4, 0, 0, 1, 0], 512);
            step(&mut h);
            assert_eq!(k.completions(), vec![(11, 0, 0)]);
            let mut back = [0u8; 512];
            std::os::unix::fs::FileExt::read_exact_at(&h.backing, &mut back, 4 * 512).unwrap();
            assert_eq!(back, [0xab; 512]);
        }
    }

    #[test]
    fn latency_delays_then_serves_and_a_timeout_is_offered_to_poll() {
        let mut k = Kernel::new();
        let (mut h, shared, _) = handler(&mut k, "latency");
        shared.set_rules(vec![ScsiRule::new(ScsiAction::Latency(
            crate::scsi::rules::LatencyDist::Fixed(Duration::from_millis(30)),
        ))]);
        k.cmd(12, &READ_LBA_1, 512);
        let timeout = h.step(&mut Vec::new()).unwrap().unwrap();
        assert_ne!(timeout, PollTimeout::NONE);
        assert_eq!(k.completions(), vec![]);
        std::thread::sleep(Duration::from_millis(40));
        step(&mut h);
        assert_eq!(k.completions(), vec![(12, 0, 0)]);
        // a delayed command named by a TMR completes as aborted at once
        k.cmd(13, &READ_LBA_1, 512);
        k.tmr(TMR_ABORT_TASK, &[13]);
        step(&mut h);
        assert_eq!(k.completions(), vec![(13, status::TASK_ABORTED, 0)]);
        assert_eq!(shared.counts().delayed, 2);
    }
}
