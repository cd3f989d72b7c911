//! The IO of the path checkers: `directio`, an O_DIRECT read of one 4 KiB block at offset 0 of a
//! path device through io_uring, and `tur`, a SCSI TEST UNIT READY through `SG_IO` ([`tur`]),
//! each bounded by a timeout.
//!
//! Many checks run at once on one ring; the caller polls [`CheckerRing::event_fd`] together with
//! its other event sources and calls [`CheckerRing::collect`] when it is readable or when
//! [`CheckerRing::next_deadline`] has passed. A check that outlives its timeout is reported as
//! timed out once; the read itself cannot be cancelled in a block device, so its buffer and file
//! are kept until the kernel completes it (or leaked if the ring goes away first).
//!
//! `SG_IO` is a blocking ioctl with no io_uring form in 6.1, so each `tur` check runs on a worker
//! thread of its own that posts its outcome and signals the ring's eventfd: a TUR the target
//! never answers holds only its thread (until the kernel's own command timeout — the same
//! `timeout`, passed in the sg header — and error handling end it), never the caller or the
//! other checks. The sg driver's asynchronous write/read interface would avoid the threads, but
//! it needs the `sg` module and the /dev/sgN of each path; a thread works on the path's own node,
//! as multipathd's tur checker does.

pub mod tur;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

/// Size of the checker's read.
pub const CHECK_SIZE: usize = 4096;

#[repr(C, align(4096))]
struct Block([u8; CHECK_SIZE]);

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The read completed with the whole block.
    Up,
    /// The read (or opening the device) failed with this errno; a short read is EIO.
    Down { errno: i32 },
    /// No completion within the timeout.
    TimedOut,
    /// A `tur` check's answer: its verdict, the SCSI reply behind it and how many TURs it took.
    Tur(tur::TurOutcome),
}

/// A finished check.
#[derive(Debug, Clone)]
pub struct Completed<K> {
    pub key: K,
    pub outcome: CheckOutcome,
    /// Start to completion (or to the timeout).
    pub latency: Duration,
}

/// What a pending check holds until the kernel is done with it.
enum PendingIo {
    /// A read on the ring: the file and buffer must live until the kernel completes it.
    Read { _file: File, _buf: Box<Block> },
    /// A TUR on a worker thread, which owns its file; the node it checks.
    Tur { device: std::path::PathBuf },
}

struct Pending<K> {
    key: K,
    io: PendingIo,
    started: Instant,
    deadline: Instant,
    /// Already reported as timed out; its late completion is dropped.
    timed_out: bool,
}

pub struct CheckerRing<K> {
    ring: IoUring,
    eventfd: OwnedFd,
    pending: HashMap<u64, Pending<K>>,
    /// Checks that failed before reaching the kernel (e.g. open failed), reported at next collect.
    immediate: Vec<Completed<K>>,
    /// Outcomes the TUR worker threads posted, by token.
    tur_done: Arc<Mutex<Vec<(u64, tur::TurOutcome)>>>,
    next_token: u64,
    /// Each TUR path's descriptor, opened at its first check and kept, as multipathd keeps a
    /// path's fd from discovery on: opening an sd device waits while its host is in error
    /// handling (`sd_open`), which would stall the caller's loop, not only the check.
    tur_files: HashMap<std::path::PathBuf, Arc<std::fs::File>>,
}

impl<K: Clone> CheckerRing<K> {
    /// A ring for up to `entries` checks in flight at once.
    pub fn new(entries: u32) -> io::Result<Self> {
        let ring = IoUring::new(entries.next_power_of_two().max(8))?;
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, owned descriptor.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(CheckerRing {
            ring,
            eventfd,
            pending: HashMap::new(),
            immediate: Vec::new(),
            tur_done: Arc::new(Mutex::new(Vec::new())),
            next_token: 1,
            tur_files: HashMap::new(),
        })
    }

    /// Readable when a check completed.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.eventfd.as_fd()
    }

    /// Checks still running (timed-out ones whose read has not come back included).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The earliest timeout of a check not yet reported, or now if a result is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.immediate.is_empty() {
            return Some(Instant::now());
        }
        self.pending
            .values()
            .filter(|p| !p.timed_out)
            .map(|p| p.deadline)
            .min()
    }

    /// Starts a check of `device` with `timeout`: a read of the first block.
    pub fn start(&mut self, key: K, device: &Path, timeout: Duration) {
        self.start_at(key, device, 0, timeout);
    }

    /// Starts a read of the 4 KiB block at byte `offset` (a multiple of 4096) of `device`, bounded
    /// by `timeout` — a checker read elsewhere than at 0, or one IO of a marginal-path sample.
    pub fn start_at(&mut self, key: K, device: &Path, offset: u64, timeout: Duration) {
        let started = Instant::now();
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(device)
        {
            Ok(f) => f,
            Err(err) => {
                self.immediate.push(Completed {
                    key,
                    outcome: CheckOutcome::Down {
                        errno: err.raw_os_error().unwrap_or(libc::EIO),
                    },
                    latency: started.elapsed(),
                });
                return;
            }
        };
        let mut buf = Box::new(Block([0; CHECK_SIZE]));
        let token = self.next_token;
        self.next_token += 1;
        let entry = opcode::Read::new(
            types::Fd(file.as_raw_fd()),
            buf.0.as_mut_ptr(),
            CHECK_SIZE as u32,
        )
        .offset(offset)
        .build()
        .user_data(token);
        // SAFETY: the buffer and the file are kept in `pending` until the completion is reaped
        // (or leaked on drop), so they outlive the read.
        let pushed = unsafe { self.ring.submission().push(&entry).is_ok() };
        if !pushed || self.ring.submit().is_err() {
            self.immediate.push(Completed {
                key,
                outcome: CheckOutcome::Down {
                    errno: libc::EAGAIN,
                },
                latency: started.elapsed(),
            });
            return;
        }
        self.pending.insert(
            token,
            Pending {
                key,
                io: PendingIo::Read {
                    _file: file,
                    _buf: buf,
                },
                started,
                deadline: started + timeout,
                timed_out: false,
            },
        );
    }

    /// Starts a `tur` check of `device`: TEST UNIT READY through `SG_IO` (retried as
    /// [`tur::run_tur`] does) on a worker thread, bounded by `timeout` both in the kernel (the sg
    /// header's timeout, per TUR) and here (the whole check: reported [`CheckOutcome::TimedOut`]
    /// once `timeout` has passed, its late answer dropped).
    ///
    /// While an earlier TUR of the same node is still stuck in the kernel past its timeout, a
    /// new check answers [`CheckOutcome::TimedOut`] at once instead of piling up another thread
    /// (multipathd's tur checker does the same: "tur thread not responding" is a timeout).
    pub fn start_tur(&mut self, key: K, device: &Path, timeout: Duration) {
        let started = Instant::now();
        let stuck = self
            .pending
            .values()
            .any(|p| p.timed_out && matches!(&p.io, PendingIo::Tur { device: d } if d == device));
        if stuck {
            self.immediate.push(Completed {
                key,
                outcome: CheckOutcome::TimedOut,
                latency: Duration::ZERO,
            });
            return;
        }
        // O_NONBLOCK: open a unit that is not ready without waiting on it (as sg3_utils does).
        let opened = match self.tur_files.get(device) {
            Some(file) => Ok(Arc::clone(file)),
            None => OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(device)
                .map(Arc::new),
        };
        let file = match opened {
            Ok(f) => {
                self.tur_files
                    .entry(device.to_path_buf())
                    .or_insert_with(|| Arc::clone(&f));
                f
            }
            Err(err) => {
                self.immediate.push(Completed {
                    key,
                    outcome: CheckOutcome::Down {
                        errno: err.raw_os_error().unwrap_or(libc::EIO),
                    },
                    latency: started.elapsed(),
                });
                return;
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let signal = self.eventfd.try_clone();
        let done = Arc::clone(&self.tur_done);
        let spawned = signal.and_then(|signal| {
            std::thread::Builder::new()
                .name("pathrig-tur".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    let outcome = tur::run_tur(&file, timeout);
                    if let Ok(mut done) = done.lock() {
                        done.push((token, outcome));
                    }
                    let one = 1u64.to_ne_bytes();
                    // SAFETY: writing 8 bytes to an eventfd this thread owns a duplicate of.
                    unsafe { libc::write(signal.as_raw_fd(), one.as_ptr().cast(), 8) };
                })
        });
        if spawned.is_err() {
            self.immediate.push(Completed {
                key,
                outcome: CheckOutcome::Down {
                    errno: libc::EAGAIN,
                },
                latency: started.elapsed(),
            });
            return;
        }
        self.pending.insert(
            token,
            Pending {
                key,
                io: PendingIo::Tur {
                    device: device.to_path_buf(),
                },
                started,
                deadline: started + timeout,
                timed_out: false,
            },
        );
    }

    /// Everything finished since the last call: completions, and checks whose timeout passed.
    pub fn collect(&mut self, now: Instant) -> Vec<Completed<K>> {
        let mut counter = [0u8; 8];
        // Clear the eventfd; EAGAIN just means nothing new.
        // SAFETY: reading 8 bytes into an 8-byte buffer.
        let _ = unsafe { libc::read(self.eventfd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        let mut done = std::mem::take(&mut self.immediate);
        let reads = self.ring.completion().map(|c| {
            let result = c.result();
            let outcome = if result == CHECK_SIZE as i32 {
                CheckOutcome::Up
            } else if result < 0 {
                CheckOutcome::Down { errno: -result }
            } else {
                CheckOutcome::Down { errno: libc::EIO }
            };
            (c.user_data(), outcome)
        });
        let mut finished: Vec<(u64, CheckOutcome)> = reads.collect();
        if let Ok(mut turs) = self.tur_done.lock() {
            finished.extend(turs.drain(..).map(|(t, o)| (t, CheckOutcome::Tur(o))));
        }
        for (token, outcome) in finished {
            let Some(pending) = self.pending.remove(&token) else {
                continue;
            };
            if pending.timed_out {
                continue;
            }
            done.push(Completed {
                key: pending.key,
                outcome,
                latency: pending.started.elapsed(),
            });
        }
        for pending in self.pending.values_mut() {
            if !pending.timed_out && now >= pending.deadline {
                pending.timed_out = true;
                done.push(Completed {
                    key: pending.key.clone(),
                    outcome: CheckOutcome::TimedOut,
                    latency: now - pending.started,
                });
            }
        }
        done
    }
}

impl<K> Drop for CheckerRing<K> {
    fn drop(&mut self) {
        // Reads still in flight may write into their buffers after the ring is gone; leak them.
        // (A TUR's thread owns what it uses and ends by itself.)
        for (_, pending) in self.pending.drain() {
            if let PendingIo::Read { .. } = pending.io {
                std::mem::forget(pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for<K: Clone>(ring: &mut CheckerRing<K>, count: usize) -> Vec<Completed<K>> {
        let mut all = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while all.len() < count && Instant::now() < end {
            let mut fds = [libc::pollfd {
                fd: ring.event_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, 50) };
            all.extend(ring.collect(Instant::now()));
        }
        all
    }

    #[test]
    fn a_readable_device_is_up_and_a_missing_one_is_down() {
        let dir = std::env::temp_dir().join(format!("pathrig-checker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("disk");
        std::fs::write(&file, vec![1u8; 64 * 1024]).unwrap();
        let mut ring = CheckerRing::new(4).unwrap();
        ring.start("good", &file, Duration::from_secs(2));
        ring.start("missing", &dir.join("nope"), Duration::from_secs(2));
        let mut results = wait_for(&mut ring, 2);
        results.sort_by_key(|c| c.key);
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].key, "good");
        assert_eq!(results[0].outcome, CheckOutcome::Up);
        assert_eq!(
            results[1].outcome,
            CheckOutcome::Down {
                errno: libc::ENOENT
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_at_an_offset_past_the_end_are_short() {
        let dir =
            std::env::temp_dir().join(format!("pathrig-checker-offset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("disk");
        std::fs::write(&file, vec![1u8; 16 * 1024]).unwrap();
        let mut ring = CheckerRing::new(4).unwrap();
        ring.start_at("inside", &file, 8192, Duration::from_secs(2));
        ring.start_at("past the end", &file, 16384, Duration::from_secs(2));
        let mut results = wait_for(&mut ring, 2);
        results.sort_by_key(|c| c.key);
        assert_eq!(results[0].key, "inside");
        assert_eq!(results[0].outcome, CheckOutcome::Up);
        assert_eq!(results[1].outcome, CheckOutcome::Down { errno: libc::EIO });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tur_checks_answer_through_the_ring() {
        // A regular file takes no SG_IO: the worker's answer comes back as a Tur outcome.
        let dir = std::env::temp_dir().join(format!("pathrig-checker-tur-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-scsi");
        std::fs::write(&file, b"x").unwrap();
        let mut ring = CheckerRing::new(4).unwrap();
        ring.start_tur("file", &file, Duration::from_secs(2));
        ring.start_tur("missing", &dir.join("nope"), Duration::from_secs(2));
        let mut results = wait_for(&mut ring, 2);
        results.sort_by_key(|c| c.key);
        assert_eq!(results.len(), 2);
        let CheckOutcome::Tur(outcome) = &results[0].outcome else {
            panic!("not a tur outcome: {:?}", results[0]);
        };
        assert_eq!(outcome.verdict, tur::TurVerdict::Unsupported);
        assert_eq!(outcome.reply, Err(libc::ENOTTY));
        assert_eq!(
            results[1].outcome,
            CheckOutcome::Down {
                errno: libc::ENOENT
            }
        );
        assert_eq!(ring.in_flight(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_short_read_is_down() {
        let dir =
            std::env::temp_dir().join(format!("pathrig-checker-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tiny");
        std::fs::write(&file, vec![1u8; 512]).unwrap();
        let mut ring = CheckerRing::new(4).unwrap();
        ring.start(1, &file, Duration::from_secs(2));
        let results = wait_for(&mut ring, 1);
        assert_eq!(results[0].outcome, CheckOutcome::Down { errno: libc::EIO });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_that_never_completes_times_out_once() {
        // A read from a FIFO whose writer stays silent blocks like a hung path. O_DIRECT is
        // refused on a FIFO, so the read is queued by hand here instead of through `start`.
        let mut ring: CheckerRing<u8> = CheckerRing::new(4).unwrap();
        let dir = std::env::temp_dir().join(format!("pathrig-checker-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Keep a writer open so the reader's open does not block, but never write.
        let _writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                let f = OpenOptions::new().write(true).open(&fifo).unwrap();
                std::thread::sleep(Duration::from_secs(2));
                drop(f);
            }
        });
        let started = Instant::now();
        let file = OpenOptions::new().read(true).open(&fifo).unwrap();
        let mut buf = Box::new(Block([0; CHECK_SIZE]));
        let entry = opcode::Read::new(
            types::Fd(file.as_raw_fd()),
            buf.0.as_mut_ptr(),
            CHECK_SIZE as u32,
        )
        .build()
        .user_data(7);
        unsafe { ring.ring.submission().push(&entry).unwrap() };
        ring.ring.submit().unwrap();
        ring.pending.insert(
            7,
            Pending {
                key: 7,
                io: PendingIo::Read {
                    _file: file,
                    _buf: buf,
                },
                started,
                deadline: started + Duration::from_millis(200),
                timed_out: false,
            },
        );
        assert!(ring.collect(Instant::now()).is_empty());
        std::thread::sleep(Duration::from_millis(250));
        let results = ring.collect(Instant::now());
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].outcome, CheckOutcome::TimedOut);
        assert!(ring.next_deadline().is_none());
        // Reported once: its late end (writer closes → EOF) is dropped.
        std::thread::sleep(Duration::from_millis(2000));
        assert!(wait_for(&mut ring, 1).is_empty());
        assert_eq!(ring.in_flight(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
