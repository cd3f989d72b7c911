//! Carrying out requests off the FUSE session threads: the backing store, a small worker pool,
//! and a timer thread for delayed requests.
//!
//! A request is a [`Job`]: the operation with its fuser reply object and its [`Plan`]. Jobs
//! without delay or hang are served right on the session thread that received them (a pread on
//! the backing file, no sleeping). Delayed jobs go to the [`Timer`] thread, which keeps them in
//! a binary heap by deadline and hands each to the [`Pool`] when it is due. Hung jobs are parked
//! on their leg (see `fs.rs`) and handed to the pool when released. Nothing ever sleeps while
//! holding a request that another request waits for.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SendError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use fuser::{Errno, ReplyData, ReplyEmpty, ReplyWrite};

use super::rules::{self, OpKind, Plan};

/// The backing file every leg reads and writes, `size` bytes of it.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) file: File,
    pub(crate) size: u64,
}

impl Store {
    /// How many of `len` bytes from `offset` lie inside the file.
    fn clip(&self, offset: u64, len: u64) -> u64 {
        len.min(self.size.saturating_sub(offset))
    }

    fn read(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let len = self.clip(offset, u64::from(len)) as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                // The backing file ends early: the rest reads as zeros.
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<usize> {
        let len = self.clip(offset, data.len() as u64) as usize;
        if len == 0 && !data.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.file.write_all_at(&data[..len], offset)?;
        Ok(len)
    }
}

/// One request of a leg file.
#[derive(Debug)]
pub(crate) enum Op {
    Read {
        offset: u64,
        size: u32,
        reply: ReplyData,
    },
    Write {
        offset: u64,
        data: Vec<u8>,
        reply: ReplyWrite,
    },
    /// `flush` (at close) or `fsync`.
    Flush { fsync: bool, reply: ReplyEmpty },
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Read { .. } => OpKind::Read,
            Op::Write { .. } => OpKind::Write,
            Op::Flush { .. } => OpKind::Flush,
        }
    }

    /// `(offset, length)` of the bytes it touches; `None` for flushes.
    pub(crate) fn extent(&self) -> Option<(u64, u64)> {
        match self {
            Op::Read { offset, size, .. } => Some((*offset, u64::from(*size))),
            Op::Write { offset, data, .. } => Some((*offset, data.len() as u64)),
            Op::Flush { .. } => None,
        }
    }
}

/// A request with its fate.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) plan: Plan,
}

impl Job {
    /// Serves the request now: the errno, lose and corrupt parts of the plan apply (the delay
    /// and hang parts are the caller's business, already done).
    pub(crate) fn run(self, store: &Store) {
        let Job { op, plan } = self;
        let injected = plan.errno.map(Errno::from_i32);
        match op {
            Op::Read {
                offset,
                size,
                reply,
            } => {
                if let Some(errno) = injected {
                    return reply.error(errno);
                }
                match store.read(offset, size) {
                    Ok(mut buf) => {
                        if let Some(salt) = plan.corrupt {
                            rules::corrupt(&mut buf, salt);
                        }
                        reply.data(&buf);
                    }
                    Err(e) => reply.error(Errno::from(e)),
                }
            }
            Op::Write {
                offset,
                mut data,
                reply,
            } => {
                if let Some(errno) = injected {
                    return reply.error(errno);
                }
                if plan.lose {
                    let len = store.clip(offset, data.len() as u64);
                    if len == 0 && !data.is_empty() {
                        return reply.error(Errno::from_i32(libc::ENOSPC));
                    }
                    return reply.written(len as u32);
                }
                if let Some(salt) = plan.corrupt {
                    rules::corrupt(&mut data, salt);
                }
                match store.write(offset, &data) {
                    Ok(n) => reply.written(n as u32),
                    Err(e) => reply.error(Errno::from(e)),
                }
            }
            Op::Flush { fsync, reply } => {
                if let Some(errno) = injected {
                    return reply.error(errno);
                }
                if fsync {
                    if let Err(e) = store.file.sync_data() {
                        return reply.error(Errno::from(e));
                    }
                }
                reply.ok();
            }
        }
    }
}

/// Hands jobs to the worker pool; serves them on the calling thread once the pool is gone.
#[derive(Debug, Clone)]
pub(crate) struct Submit {
    tx: Sender<Option<Job>>,
    store: Arc<Store>,
}

impl Submit {
    pub(crate) fn submit(&self, job: Job) {
        if let Err(SendError(Some(job))) = self.tx.send(Some(job)) {
            job.run(&self.store);
        }
    }
}

/// A few threads that serve jobs whose delay is over or whose hang was released.
#[derive(Debug)]
pub(crate) struct Pool {
    submit: Submit,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(store: Arc<Store>, threads: usize) -> io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Option<Job>>();
        let rx = Arc::new(Mutex::new(rx));
        let mut pool = Pool {
            submit: Submit { tx, store },
            threads: Vec::new(),
        };
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let store = Arc::clone(&pool.submit.store);
            let spawned = thread::Builder::new()
                .name(format!("pathrig-fuse-io{i}"))
                .spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        Ok(Some(job)) => job.run(&store),
                        Ok(None) | Err(_) => return,
                    }
                });
            match spawned {
                Ok(handle) => pool.threads.push(handle),
                Err(e) => {
                    pool.stop();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    pub(crate) fn submitter(&self) -> Submit {
        self.submit.clone()
    }

    /// Lets the workers finish what they were given, and joins them. Jobs submitted afterwards
    /// are served on the submitting thread.
    pub(crate) fn stop(&mut self) {
        for _ in &self.threads {
            let _ = self.submit.tx.send(None);
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

pub(crate) enum TimerMsg {
    /// Hand the job to the pool at this instant.
    At(Instant, Job),
    /// Hand every job to the pool now, and every later one as it comes (the server is closing).
    Flush,
}

struct Entry {
    at: Instant,
    id: u64,
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.id).cmp(&(self.at, self.id))
    }
}

/// The thread that holds delayed jobs until their deadline.
#[derive(Debug)]
pub(crate) struct Timer {
    tx: Sender<TimerMsg>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    pub(crate) fn start(submit: Submit) -> io::Result<Timer> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("pathrig-fuse-timer".into())
            .spawn(move || timer_loop(&rx, &submit))?;
        Ok(Timer {
            tx,
            thread: Some(thread),
        })
    }

    pub(crate) fn sender(&self) -> Sender<TimerMsg> {
        self.tx.clone()
    }

    /// Hands every held job to the pool now and joins the thread once every sender is gone.
    pub(crate) fn stop(&mut self) {
        let _ = self.tx.send(TimerMsg::Flush);
        if let Some(thread) = self.thread.take() {
            // Other senders (in the shared server state) may live on: the thread exits when it
            // sees the flush, and later jobs are served by their senders (see `Shared::delay`).
            let _ = thread.join();
        }
    }
}

fn timer_loop(rx: &Receiver<TimerMsg>, submit: &Submit) {
    let mut heap = BinaryHeap::new();
    let mut next_id = 0u64;
    loop {
        let msg = match heap.peek() {
            Some(Entry { at, .. }) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(TimerMsg::At(at, job)) => {
                heap.push(Entry {
                    at,
                    id: next_id,
                    job,
                });
                next_id += 1;
            }
            Ok(TimerMsg::Flush) | Err(RecvTimeoutError::Disconnected) => {
                for entry in heap.drain() {
                    submit.submit(entry.job);
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.at <= now) {
            let entry = heap.pop().expect("peeked");
            submit.submit(entry.job);
        }
    }
}
