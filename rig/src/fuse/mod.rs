//! The FUSE fault-file server: one file per leg over one shared backing file, with faults
//! injected per request.
//!
//! ```text
//! <mountpoint>/<leg> ──> loop device ──> (dm leg) ──> dm-multipath
//!        │
//!   every read, write, flush and fsync reaches this server (direct IO, no page cache),
//!   is decided by the leg's rules (see [`rules`]) and served by pread/pwrite on the backing file
//! ```
//!
//! Because all legs read and write the same backing file, several legs are several paths to one
//! LUN. The controller changes a leg's behaviour at any time with [`FuseControl::set_rules`]
//! (no remount) and reads what was injected with [`FuseControl::counts`].
//!
//! # Concurrency
//!
//! fuser's session loop runs on [`SESSION_THREADS`] threads (each with its own cloned
//! `/dev/fuse` descriptor). A session thread decides a request's fate under its leg's lock
//! (held for the decision only), then:
//! - no delay, no hang: serves it right there (pread/pwrite on the backing file);
//! - delay: hands it to a timer thread, which keeps delayed requests in a binary heap by
//!   deadline and passes each to a small worker pool ([`IO_THREADS`]) when due;
//! - hang: parks it on its leg; a rule change that no longer holds it passes it to the pool.
//!
//! fuser's reply objects travel with the request, so nothing sleeps on a session thread and a
//! delayed or hung request never holds up another one (unlike charybdefs, unreliablefs or lazyfs,
//! which sleep under one global lock).
//!
//! # Mounting
//!
//! The server mounts with the `mount` syscall (file system type `fuse.pathrig`), which needs
//! root (CAP_SYS_ADMIN) and `/dev/fuse` (the `fuse` module); it never runs `fusermount`.
//! Unmounting with a file still open (a loop device still attached) aborts the connection and
//! detaches the mount lazily: see [`FuseServer::unmount`].

mod exec;
mod fs;
mod mount;
pub mod rules;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, Session, SessionACL};

use crate::naming;
use exec::{Pool, Store, Timer};
use fs::{FaultFs, Shared};
pub use rules::{decide, FaultAction, FaultCounts, FaultRule, LatencyDist, OpKind};

/// Threads reading requests from `/dev/fuse` (and serving undelayed ones). More than two was
/// slower on the 2-core host (4 KiB reads at QD 8: 2 threads ~55–80k IOPS, 8 threads ~36k).
pub const SESSION_THREADS: usize = 2;
/// Threads serving requests after a delay or a hang.
pub const IO_THREADS: usize = 4;

/// How long an unmount waits for the session threads to end.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One file on the mount: the path of leg `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseLeg {
    pub name: String,
    /// `<mountpoint>/<name>`: what to attach the loop device to.
    pub path: PathBuf,
}

/// A mounted fault-file server. Dropping it unmounts (see [`FuseServer::unmount`]) and joins
/// its threads.
#[derive(Debug)]
pub struct FuseServer {
    mountpoint: PathBuf,
    legs: Vec<FuseLeg>,
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
    timer: Timer,
    pool: Pool,
    done: bool,
}

/// Changes and reads the faults of a running server's legs. Cheap to clone, `Send + Sync`; it
/// may outlive the server (it then changes nothing that matters).
#[derive(Debug, Clone)]
pub struct FuseControl {
    shared: Arc<Shared>,
}

impl FuseServer {
    /// Mounts at `mountpoint` (created if missing; it must be inside a directory whose name
    /// starts with `pathrig-`), serving one file per leg, each `size` bytes, all reading and
    /// writing the first `size` bytes of `backing` (which must be at least that long). `seed`
    /// drives every random decision (see [`decide`]).
    pub fn start(
        mountpoint: &Path,
        backing: &Path,
        size: u64,
        legs: &[&str],
        seed: u64,
    ) -> io::Result<FuseServer> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let parent = mountpoint.parent().unwrap_or(Path::new(""));
        if !naming::is_our_file(&parent.to_string_lossy()) {
            return Err(invalid(format!(
                "FUSE mountpoint {} is not inside a {}* directory",
                mountpoint.display(),
                naming::NAME_PREFIX
            )));
        }
        if legs.is_empty() {
            return Err(invalid("a FUSE server needs at least one leg".into()));
        }
        for (i, leg) in legs.iter().enumerate() {
            if leg.is_empty() || *leg == "." || *leg == ".." || leg.contains(['/', '\0']) {
                return Err(invalid(format!("{leg:?} cannot be a file name")));
            }
            if legs[..i].contains(leg) {
                return Err(invalid(format!("leg {leg:?} given twice")));
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(backing)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", backing.display())))?;
        let backing_len = file.metadata()?.len();
        if backing_len < size {
            return Err(invalid(format!(
                "backing file {} has {backing_len} bytes, fewer than {size}",
                backing.display()
            )));
        }
        std::fs::create_dir_all(mountpoint)?;
        let mountpoint = mountpoint.canonicalize()?;
        if mount::is_mounted(&mountpoint) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is already a mount point", mountpoint.display()),
            ));
        }

        let store = Arc::new(Store { file, size });
        let mut pool = Pool::start(Arc::clone(&store), IO_THREADS)?;
        let timer = match Timer::start(pool.submitter()) {
            Ok(timer) => timer,
            Err(e) => {
                pool.stop();
                return Err(e);
            }
        };
        let shared = Arc::new(Shared::new(
            seed,
            legs,
            store,
            pool.submitter(),
            timer.sender(),
        ));
        let mut server = FuseServer {
            legs: legs
                .iter()
                .map(|name| FuseLeg {
                    name: name.to_string(),
                    path: mountpoint.join(name),
                })
                .collect(),
            mountpoint,
            shared: Arc::clone(&shared),
            session: None,
            timer,
            pool,
            // Nothing mounted yet: a failure below has only threads to stop.
            done: true,
        };
        let fd = mount::mount(&server.mountpoint)?;
        server.done = false;
        let mut config = Config::default();
        config.n_threads = Some(SESSION_THREADS);
        config.clone_fd = true;
        // The handshake reads the INIT request the kernel queued at mount time.
        let session = Session::from_fd(FaultFs { shared }, fd, SessionACL::All, config)?;
        server.session = Some(session.spawn()?);
        tracing::info!(
            mountpoint = %server.mountpoint.display(),
            legs = ?legs,
            size,
            "FUSE fault-file server mounted"
        );
        Ok(server)
    }

    /// The file of leg `leg` (what to attach the loop device to).
    pub fn file_path(&self, leg: &str) -> PathBuf {
        self.mountpoint.join(leg)
    }

    /// The mount point (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The legs' files, in the order given to [`FuseServer::start`].
    pub fn legs(&self) -> &[FuseLeg] {
        &self.legs
    }

    /// A handle to change the legs' rules and read their counts.
    pub fn control(&self) -> FuseControl {
        FuseControl {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Unmounts and joins every thread. Held and delayed requests are served first, without
    /// faults. When the mount is busy (a file still open, a loop device still attached), the
    /// FUSE connection is aborted — IO still in flight or issued later through those files
    /// fails with `ENOTCONN` — the mount is detached lazily, and the result is an error of kind
    /// `ResourceBusy` (the mount is gone all the same).
    pub fn unmount(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if self.done {
            self.timer.stop();
            self.pool.stop();
            return Ok(());
        }
        self.done = true;
        // Serve everything held or delayed before the unmount, which may abort the connection.
        self.shared.close();
        self.timer.stop();
        self.pool.stop();
        let mut result = mount::unmount(&self.mountpoint);
        if let Some(session) = self.session.take() {
            let deadline = Instant::now() + JOIN_TIMEOUT;
            while !session.guard.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if session.guard.is_finished() {
                let joined = session.join();
                if result.is_ok() {
                    result = joined;
                }
            } else if result.is_ok() {
                // Leaves the threads behind: they end when the kernel lets go of the connection.
                result = Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "FUSE session at {} did not end within {JOIN_TIMEOUT:?} of the unmount",
                        self.mountpoint.display()
                    ),
                ));
            }
        }
        result
    }
}

impl Drop for FuseServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(mountpoint = %self.mountpoint.display(), "FUSE unmount: {e}");
        }
    }
}

impl FuseControl {
    /// Replaces the leg's active rules at once. Requests held by a hang rule that no rule of
    /// the new set holds are served. Panics if the server has no such leg.
    pub fn set_rules(&self, leg: &str, rules: Vec<FaultRule>) {
        self.shared.set_rules(leg, rules);
    }

    /// Removes every rule of the leg, serving every request a hang rule held.
    pub fn clear(&self, leg: &str) {
        self.shared.set_rules(leg, Vec::new());
    }

    /// Everything injected on the leg so far. Panics if the server has no such leg.
    pub fn counts(&self, leg: &str) -> FaultCounts {
        self.shared.counts(leg)
    }
}
