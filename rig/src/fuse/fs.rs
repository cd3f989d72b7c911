//! The file system itself: a root directory with one regular file per leg, and the per-leg
//! state (rules, parked requests, sequence numbers, counters) that decides every request.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SendError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

use super::exec::{Job, Op, Store, Submit, TimerMsg};
use super::rules::{self, FaultCounts, FaultRule, OpKind, Plan};

/// How long the kernel may cache names and attributes: nothing here ever changes.
const TTL: Duration = Duration::from_secs(3600);

/// Inode number of leg `index`.
fn leg_ino(index: usize) -> INodeNo {
    INodeNo(index as u64 + 2)
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    flushes: AtomicU64,
    errors: AtomicU64,
    delayed: AtomicU64,
    hung: AtomicU64,
    hung_reads: AtomicU64,
    hung_writes: AtomicU64,
    max_held: AtomicU64,
    lost: AtomicU64,
    corrupted: AtomicU64,
}

impl Counters {
    fn arrived(&self, kind: OpKind) {
        let counter = match kind {
            OpKind::Read => &self.reads,
            OpKind::Write => &self.writes,
            OpKind::Flush => &self.flushes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn planned(&self, plan: &Plan, kind: OpKind) {
        let bump = |c: &AtomicU64, yes: bool| {
            if yes {
                c.fetch_add(1, Ordering::Relaxed);
            }
        };
        bump(&self.hung, plan.hang);
        bump(&self.hung_reads, plan.hang && kind == OpKind::Read);
        bump(&self.hung_writes, plan.hang && kind == OpKind::Write);
        bump(&self.delayed, plan.delay.is_some());
        bump(&self.errors, plan.errno.is_some());
        bump(&self.lost, plan.lose);
        bump(&self.corrupted, plan.corrupt.is_some());
    }

    fn snapshot(&self) -> FaultCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            reads: get(&self.reads),
            writes: get(&self.writes),
            flushes: get(&self.flushes),
            errors: get(&self.errors),
            delayed: get(&self.delayed),
            hung: get(&self.hung),
            hung_reads: get(&self.hung_reads),
            hung_writes: get(&self.hung_writes),
            max_held: get(&self.max_held),
            lost: get(&self.lost),
            corrupted: get(&self.corrupted),
        }
    }
}

#[derive(Debug, Default)]
struct LegState {
    rules: Vec<FaultRule>,
    /// Requests held by a hang rule, in arrival order.
    parked: Vec<Job>,
}

#[derive(Debug)]
pub(crate) struct Leg {
    pub(crate) name: String,
    state: Mutex<LegState>,
    /// Next sequence number per [`OpKind`].
    seq: [AtomicU64; 3],
    counts: Counters,
}

impl Leg {
    fn state(&self) -> MutexGuard<'_, LegState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the session threads, the workers and [`super::FuseControl`] share.
#[derive(Debug)]
pub(crate) struct Shared {
    seed: u64,
    pub(crate) legs: Vec<Leg>,
    store: Arc<Store>,
    submit: Submit,
    timer: Sender<TimerMsg>,
    /// Set when the server shuts down: no rule applies any more.
    closing: AtomicBool,
    uid: u32,
    gid: u32,
    created: SystemTime,
}

impl Shared {
    pub(crate) fn new(
        seed: u64,
        legs: &[&str],
        store: Arc<Store>,
        submit: Submit,
        timer: Sender<TimerMsg>,
    ) -> Shared {
        Shared {
            seed,
            legs: legs
                .iter()
                .map(|name| Leg {
                    name: name.to_string(),
                    state: Mutex::default(),
                    seq: Default::default(),
                    counts: Counters::default(),
                })
                .collect(),
            store,
            submit,
            timer,
            closing: AtomicBool::new(false),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            created: SystemTime::now(),
        }
    }

    fn leg_index(&self, name: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.name == name)
    }

    fn leg(&self, name: &str) -> &Leg {
        match self.leg_index(name) {
            Some(i) => &self.legs[i],
            None => panic!(
                "no FUSE leg named {name:?} (the server has {:?})",
                self.legs.iter().map(|l| &l.name).collect::<Vec<_>>()
            ),
        }
    }

    fn leg_of(&self, ino: INodeNo) -> Option<&Leg> {
        let index = ino.0.checked_sub(2)?;
        self.legs.get(usize::try_from(index).ok()?)
    }

    /// Decides the request's fate and starts it on its way: parked, delayed, or served now.
    fn dispatch(&self, leg: &Leg, op: Op) {
        let kind = op.kind();
        let extent = op.extent();
        let seq = leg.seq[kind.index()].fetch_add(1, Ordering::Relaxed);
        leg.counts.arrived(kind);
        let mut state = leg.state();
        let plan = if self.closing.load(Ordering::SeqCst) {
            Plan::default()
        } else {
            rules::plan(&state.rules, self.seed, &leg.name, kind, seq, extent)
        };
        leg.counts.planned(&plan, kind);
        let job = Job { op, plan };
        if plan.hang {
            state.parked.push(job);
            leg.counts
                .max_held
                .fetch_max(state.parked.len() as u64, Ordering::Relaxed);
            return;
        }
        drop(state);
        match plan.delay.filter(|d| !d.is_zero()) {
            Some(delay) => self.delay(Instant::now() + delay, job),
            None => job.run(&self.store),
        }
    }

    fn delay(&self, at: Instant, job: Job) {
        if let Err(SendError(TimerMsg::At(_, job))) = self.timer.send(TimerMsg::At(at, job)) {
            // The timer is gone (shutting down): serve it without the delay.
            self.submit.submit(job);
        }
    }

    /// Replaces a leg's rules; parked requests no hang rule holds any more are served.
    pub(crate) fn set_rules(&self, leg: &str, rules: Vec<FaultRule>) {
        let leg = self.leg(leg);
        let mut state = leg.state();
        state.rules = rules;
        let parked = std::mem::take(&mut state.parked);
        let (held, released): (Vec<Job>, Vec<Job>) = parked
            .into_iter()
            .partition(|job| rules::hang_holds(&state.rules, job.op.kind(), job.op.extent()));
        state.parked = held;
        drop(state);
        self.release(released);
    }

    pub(crate) fn counts(&self, leg: &str) -> FaultCounts {
        self.leg(leg).counts.snapshot()
    }

    /// From now on no rule applies; every parked request is served, on this thread, before
    /// this returns.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for leg in &self.legs {
            let parked = std::mem::take(&mut leg.state().parked);
            for job in parked {
                Job {
                    op: job.op,
                    plan: Plan::default(),
                }
                .run(&self.store);
            }
        }
    }

    fn release(&self, jobs: Vec<Job>) {
        for job in jobs {
            // Served normally: the hang was all that applied to it.
            self.submit.submit(Job {
                op: job.op,
                plan: Plan::default(),
            });
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = if ino == INodeNo::ROOT {
            (FileType::Directory, 0o755, 0, 2)
        } else {
            self.leg_of(ino)?;
            (FileType::RegularFile, 0o600, self.store.size, 1)
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            crtime: self.created,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

/// The fuser file system: a thin layer that hands every request to [`Shared`].
pub(crate) struct FaultFs {
    pub(crate) shared: Arc<Shared>,
}

impl Filesystem for FaultFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Many requests in flight at once (async direct IO from loop devices and io_uring are
        // "background" requests, limited by this).
        let _ = config.set_max_background(256);
        let _ = config.set_congestion_threshold(192);
        // Async direct IO: a direct-IO loop device's requests (async kiocbs) are sent as they
        // come instead of one at a time, each waited for; without it a FUSE leg serves one IO
        // at a time whatever the queue depth. Every kernel since 3.13 has it.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO) {
            tracing::warn!(?missing, "the kernel offers no async direct IO for FUSE");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent == INodeNo::ROOT)
            .then(|| {
                self.shared
                    .legs
                    .iter()
                    .position(|l| OsStr::new(&l.name) == name)
            })
            .flatten()
            .and_then(|i| self.shared.attr(leg_ino(i)));
        match found {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The files have a fixed size; other attribute changes are accepted and ignored.
        match self.shared.attr(ino) {
            Some(attr) if size.is_none_or(|s| s == attr.size) => reply.attr(&TTL, &attr),
            Some(_) => reply.error(Errno::EPERM),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
        ]
        .into_iter()
        .chain(
            self.shared
                .legs
                .iter()
                .enumerate()
                .map(|(i, l)| (leg_ino(i), FileType::RegularFile, l.name.as_str())),
        );
        for (i, (ino, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.shared.leg_of(ino).is_some() {
            // Direct IO: no page cache, every read and write reaches us. Parallel direct
            // writes: the kernel does not serialise writes to the file (Linux 6.2+; older
            // kernels ignore the flag).
            reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES,
            );
        } else if ino == INodeNo::ROOT {
            reply.error(Errno::from_i32(libc::EISDIR));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.shared.leg_of(ino) {
            Some(leg) => self.shared.dispatch(
                leg,
                Op::Read {
                    offset,
                    size,
                    reply,
                },
            ),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.shared.leg_of(ino) {
            Some(leg) => self.shared.dispatch(
                leg,
                Op::Write {
                    offset,
                    data: data.to_vec(),
                    reply,
                },
            ),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.shared.leg_of(ino) {
            Some(leg) => self.shared.dispatch(
                leg,
                Op::Flush {
                    fsync: false,
                    reply,
                },
            ),
            None => reply.ok(),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.shared.leg_of(ino) {
            Some(leg) => self.shared.dispatch(leg, Op::Flush { fsync: true, reply }),
            None => reply.ok(),
        }
    }
}
