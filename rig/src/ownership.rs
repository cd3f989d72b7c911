//! Proof of ownership for the directories pathrig makes: run directories and scratch (work)
//! directories.
//!
//! Each such directory holds a marker file, [`MARKER`], naming what the directory is, the pid
//! of the pathrig that owns it, that process's start time (so a reused pid is not mistaken for
//! the owner) and the run's state. The owner holds an exclusive `flock` on the marker for its
//! whole life ([`Claim`]); the kernel drops the lock when the owner dies, however it dies. So a
//! directory is pathrig's and not live exactly when its marker parses and its lock can be taken
//! ([`inspect`]). A directory without a valid marker is never pathrig's, whatever its name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The marker file in every run and scratch directory.
pub const MARKER: &str = "pathrig.owner";

/// What a marked directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A run directory: reports and logs, kept after the run.
    Run,
    /// A scratch directory: backing files and mounts, removed at the end of the run.
    Scratch,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Scratch => "scratch",
        }
    }
}

/// The run's state as its marker records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The owner is (or was, if its lock is free now) at work.
    Running,
    /// The owner finished: the directory says how (report or error.txt).
    Finished,
    /// The owner was interrupted (SIGINT/SIGTERM) and wrote error.txt.
    Interrupted,
    /// A later pathrig found the owner dead while the marker still said running (it was killed,
    /// e.g. with SIGKILL) and noted that.
    Killed,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Finished => "finished",
            State::Interrupted => "interrupted",
            State::Killed => "killed",
        }
    }

    fn from_word(w: &str) -> Option<State> {
        [
            State::Running,
            State::Finished,
            State::Interrupted,
            State::Killed,
        ]
        .into_iter()
        .find(|s| s.word() == w)
    }
}

/// A marker's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub kind: Kind,
    pub pid: u32,
    /// The owner's start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// Seconds since the epoch when the directory was claimed.
    pub claimed_at: u64,
    pub state: State,
}

impl Marker {
    fn render(&self) -> String {
        format!(
            "pathrig {}\npid {}\nstart_ticks {}\nclaimed_at {}\nstate {}\n",
            self.kind.word(),
            self.pid,
            self.start_ticks,
            self.claimed_at,
            self.state.word()
        )
    }

    /// Parses a marker; anything else (another program's file of that name) is `None`.
    pub fn parse(text: &str) -> Option<Marker> {
        let mut lines = text.lines();
        let kind = match lines.next()? {
            "pathrig run" => Kind::Run,
            "pathrig scratch" => Kind::Scratch,
            _ => return None,
        };
        let mut field = |name: &str| {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_string)
        };
        let pid = field("pid")?.parse().ok()?;
        let start_ticks = field("start_ticks")?.parse().ok()?;
        let claimed_at = field("claimed_at")?.parse().ok()?;
        let state = State::from_word(&field("state")?)?;
        if lines.next().is_some() {
            return None;
        }
        Some(Marker {
            kind,
            pid,
            start_ticks,
            claimed_at,
            state,
        })
    }

    /// "pid 123, started 2026-…" for messages: the pid and how long ago the claim was made.
    pub fn describe(&self) -> String {
        let now = now_secs();
        format!(
            "pid {}, started {} s ago",
            self.pid,
            now.saturating_sub(self.claimed_at)
        )
    }
}

/// A live claim on a directory: the marker's lock, held until this is dropped.
#[derive(Debug)]
pub struct Claim {
    file: File,
    marker: Marker,
    dir: PathBuf,
}

/// Why a directory could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{} is in use by a live pathrig run ({})", .dir.display(), .owner.as_ref().map_or_else(|| "owner unknown".to_string(), Marker::describe))]
    Busy { dir: PathBuf, owner: Option<Marker> },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Claim {
    /// Claims `dir` (which must exist) for this process: takes the marker's lock without
    /// waiting and writes a fresh marker. Returns the claim and the marker a previous owner
    /// left, if any (a `Running` one whose lock was free means that owner was killed).
    pub fn take(dir: &Path, kind: Kind) -> Result<(Claim, Option<Marker>), ClaimError> {
        let path = dir.join(MARKER);
        let io = |source| ClaimError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut old = String::new();
        if !try_lock(&file).map_err(io)? {
            let _ = file.read_to_string(&mut old);
            return Err(ClaimError::Busy {
                dir: dir.to_path_buf(),
                owner: Marker::parse(&old),
            });
        }
        file.read_to_string(&mut old).map_err(io)?;
        let previous = Marker::parse(&old);
        let marker = Marker {
            kind,
            pid: std::process::id(),
            start_ticks: start_ticks(std::process::id()).unwrap_or(0),
            claimed_at: now_secs(),
            state: State::Running,
        };
        let mut claim = Claim {
            file,
            marker,
            dir: dir.to_path_buf(),
        };
        claim.write().map_err(io)?;
        Ok((claim, previous))
    }

    /// Records how the run ended (the lock is still held until the claim is dropped).
    pub fn set_state(&mut self, state: State) -> std::io::Result<()> {
        self.marker.state = state;
        self.write()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(self.marker.render().as_bytes())?;
        self.file.flush()
    }
}

/// What a directory is, as far as ownership goes.
#[derive(Debug)]
pub enum Status {
    /// No marker, or one that is not pathrig's: not ours, never touched.
    NotOurs,
    /// Marked and its lock is held: a live run owns it.
    Live(Option<Marker>),
    /// Marked, and the lock is ours now: nobody owns it. The lock is held while the value lives,
    /// so no run can claim the directory in between.
    Dead(Marker, DeadLock),
}

/// The lock on a dead directory's marker, held by whoever inspected it.
#[derive(Debug)]
pub struct DeadLock {
    file: File,
}

impl DeadLock {
    /// Rewrites the marker with a new state (e.g. [`State::Killed`]).
    pub fn record(&mut self, marker: &Marker, state: State) -> std::io::Result<()> {
        let text = Marker {
            state,
            ..marker.clone()
        }
        .render();
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())
    }
}

/// Finds out whether `dir` is pathrig's and whether a live run owns it. Never creates a marker
/// and never waits for a lock.
pub fn inspect(dir: &Path) -> Status {
    let path = dir.join(MARKER);
    // Not following a symlink: a marker is a file pathrig made.
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Status::NotOurs;
    };
    if !meta.is_file() || meta.len() > 4096 {
        return Status::NotOurs;
    }
    let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
        return Status::NotOurs;
    };
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return Status::NotOurs;
    }
    let Some(marker) = Marker::parse(&text) else {
        return Status::NotOurs;
    };
    match try_lock(&file) {
        Ok(true) => {
            // Read again under the lock: the owner may have rewritten it meanwhile.
            let mut again = String::new();
            let fresh = file
                .rewind()
                .and_then(|_| file.read_to_string(&mut again))
                .ok()
                .and_then(|_| Marker::parse(&again));
            match fresh {
                Some(m) => Status::Dead(m, DeadLock { file }),
                None => Status::NotOurs,
            }
        }
        Ok(false) => Status::Live(Some(marker)),
        Err(_) => Status::Live(Some(marker)),
    }
}

/// Takes an exclusive flock without waiting: true if taken, false if another holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor this File owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// A process's start time in clock ticks after boot, from `/proc/<pid>/stat`.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rig-own-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_claim_is_live_until_dropped_and_then_dead() {
        let dir = scratch("claim");
        let (mut claim, previous) = Claim::take(&dir, Kind::Run).unwrap();
        assert!(previous.is_none());
        // A second claim (another open file description) is refused while the first lives.
        assert!(matches!(
            Claim::take(&dir, Kind::Run),
            Err(ClaimError::Busy { owner: Some(m), .. }) if m.pid == std::process::id()
        ));
        assert!(matches!(inspect(&dir), Status::Live(Some(_))));
        claim.set_state(State::Interrupted).unwrap();
        drop(claim);
        match inspect(&dir) {
            Status::Dead(m, _) => {
                assert_eq!(m.kind, Kind::Run);
                assert_eq!(m.state, State::Interrupted);
                assert_eq!(m.pid, std::process::id());
                assert_eq!(m.start_ticks, start_ticks(std::process::id()).unwrap());
            }
            other => panic!("{other:?}"),
        }
        // A new claim sees what the previous owner left.
        let (_claim, previous) = Claim::take(&dir, Kind::Run).unwrap();
        assert_eq!(previous.unwrap().state, State::Interrupted);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_without_a_valid_marker_is_not_ours() {
        let dir = scratch("foreign");
        assert!(matches!(inspect(&dir), Status::NotOurs));
        std::fs::write(dir.join(MARKER), "my own notes\n").unwrap();
        assert!(matches!(inspect(&dir), Status::NotOurs));
        std::fs::write(
            dir.join(MARKER),
            "pathrig scratch\npid x\nstart_ticks 1\nclaimed_at 1\nstate running\n",
        )
        .unwrap();
        assert!(matches!(inspect(&dir), Status::NotOurs));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn markers_round_trip() {
        let m = Marker {
            kind: Kind::Scratch,
            pid: 42,
            start_ticks: 7,
            claimed_at: 1_700_000_000,
            state: State::Killed,
        };
        assert_eq!(Marker::parse(&m.render()), Some(m));
        assert_eq!(Marker::parse(""), None);
    }
}
