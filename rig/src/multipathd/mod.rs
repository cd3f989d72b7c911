//! The real multipathd in a guest: lays the cached multipath-tools tree over `/usr` and a
//! writable layer over `/etc` (overlayfs), writes `/etc/multipath.conf`, runs udevd and
//! `multipathd -d` as children with their output captured line by line, waits for the maps it
//! builds, and takes it all down again on every exit path ([`Stack::stop`], or `Drop`).
//!
//! What multipathd logs is parsed in [`log`]; what it answers on its socket (`show paths`,
//! `show maps`) in [`client`].
//!
//! Process starts cost ~0.3 s each in a UML guest, so the stack runs only the two daemons:
//! uevents for the paths are asked for through sysfs (`uevent`), udev's work is waited for by
//! reading its database in `/run/udev/data`, commands go over multipathd's socket, and both
//! daemons are stopped with SIGTERM (multipathd's shutdown, udevd's exit).

pub mod client;
pub mod log;

use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::dm::{DevNum, Dm, MultipathMessage};
use crate::guest::multipath_tools::MultipathTools;
use crate::RigError;

pub use log::{LogEvent, LogLine};

/// Where the stack keeps its writable layer and state in the guest (the guest's tmpfs).
const STATE_DIR: &str = "/run/pathrig-multipathd";

/// Which of the daemons a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Multipathd,
    Udevd,
}

/// One line a daemon wrote, with when pathrig read it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    pub source: Source,
    /// When pathrig read it, since the stack's origin.
    pub at: Duration,
    /// When multipathd says it logged it (its stamp, on the same monotonic clock), since the
    /// origin: the better time of the two. `None` for lines without a stamp.
    pub logged: Option<Duration>,
    pub text: String,
}

impl Captured {
    /// The line's time: multipathd's own stamp where it has one, else when it was read.
    pub fn time(&self) -> Duration {
        self.logged.unwrap_or(self.at)
    }
}

/// How multipathd is run.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The multipathd executable as the guest sees it; `None`: the cached tree's.
    pub multipathd: Option<PathBuf>,
    /// `-v` level: 3 logs checker failures and reinstatements, 4 every checker result too.
    pub verbosity: u8,
    /// The text of `/etc/multipath.conf`.
    pub conf: String,
}

/// How long [`Stack::settle_paths`] waits for udev's record of a path before asking again.
const RETRIGGER: Duration = Duration::from_secs(2);

/// The overlays, udevd and (once started) multipathd. Dropping it stops everything.
pub struct Stack {
    origin: Instant,
    mounted: Vec<&'static str>,
    udevd: Option<Child>,
    multipathd: Option<Child>,
    lines_tx: mpsc::Sender<Captured>,
    /// The lines as they come, until [`Stack::take_feed`] hands them to someone else.
    feed: Option<Feed>,
    /// Every captured line, for the raw log.
    all_lines: Arc<Mutex<Vec<Captured>>>,
    wake_write: Arc<OwnedFd>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// dm names of the maps multipathd built, removed at [`Stack::stop`].
    maps: Vec<String>,
    stopped: bool,
}

/// The daemons' lines as they are captured.
pub struct Feed {
    lines: mpsc::Receiver<Captured>,
    /// Readable when a line arrived (one byte per line, drained by [`Feed::take_lines`]).
    wake_read: OwnedFd,
    /// The zero of the lines' times.
    origin: Instant,
}

impl Feed {
    /// A feed fed by hand (tests of what reads it): send lines with [`FeedSender::send`], their
    /// times counted from `origin`.
    pub fn by_hand(origin: Instant) -> Result<(FeedSender, Feed), RigError> {
        let (wake_read, wake_write) =
            nix::unistd::pipe().map_err(|e| RigError::Guest(format!("pipe: {e}")))?;
        set_nonblocking(wake_read.as_fd())?;
        let (tx, rx) = mpsc::channel();
        Ok((
            FeedSender {
                lines: tx,
                wake_write,
            },
            Feed {
                lines: rx,
                wake_read,
                origin,
            },
        ))
    }

    /// The instant the lines' times ([`Captured::at`], [`Captured::logged`]) count from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Readable when lines are waiting in [`Feed::take_lines`].
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_read.as_fd()
    }

    /// The lines captured since the last call.
    pub fn take_lines(&self) -> Vec<Captured> {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(self.wake_read.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
        self.lines.try_iter().collect()
    }
}

/// The sending side of [`Feed::by_hand`].
pub struct FeedSender {
    lines: mpsc::Sender<Captured>,
    wake_write: OwnedFd,
}

impl FeedSender {
    pub fn send(&self, line: Captured) {
        let _ = self.lines.send(line);
        let _ = nix::unistd::write(self.wake_write.as_fd(), &[1]);
    }
}

/// What [`Stack::stop`] did, and what it could not.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct StopReport {
    pub multipathd_exit: Option<String>,
    pub udevd_exit: Option<String>,
    pub maps_removed: Vec<String>,
    pub failures: Vec<String>,
}

impl Stack {
    /// Lays `tools` over `/usr`, a writable layer over `/etc`, and starts udevd. `origin` is the
    /// zero of every captured line's time.
    pub fn start(tools: &MultipathTools, origin: Instant) -> Result<Stack, RigError> {
        let (wake_read, wake_write) =
            nix::unistd::pipe().map_err(|e| RigError::Guest(format!("pipe: {e}")))?;
        set_nonblocking(wake_read.as_fd())?;
        let (lines_tx, lines_rx) = mpsc::channel();
        let mut stack = Stack {
            origin,
            mounted: Vec::new(),
            udevd: None,
            multipathd: None,
            lines_tx,
            feed: Some(Feed {
                lines: lines_rx,
                wake_read,
                origin,
            }),
            all_lines: Arc::default(),
            wake_write: Arc::new(wake_write),
            readers: Vec::new(),
            maps: Vec::new(),
            stopped: false,
        };
        stack.mount_layers(tools)?;
        let mut udevd = Command::new("/usr/lib/systemd/systemd-udevd");
        udevd.env_clear().env("PATH", "/usr/sbin:/usr/bin");
        let child = stack.spawn(udevd, Source::Udevd)?;
        stack.udevd = Some(child);
        // udevd is ready once its control socket exists.
        wait_until(Duration::from_secs(10), || {
            Path::new("/run/udev/control").exists()
        })
        .map_err(|_| {
            RigError::Guest("udevd did not create /run/udev/control within 10 s".into())
        })?;
        Ok(stack)
    }

    fn mount_layers(&mut self, tools: &MultipathTools) -> Result<(), RigError> {
        if !tools.usr_tree.join("sbin/multipathd").exists() {
            return Err(RigError::Guest(format!(
                "{} holds no sbin/multipathd",
                tools.usr_tree.display()
            )));
        }
        let lower = format!("lowerdir={}:/usr", tools.usr_tree.display());
        mount(
            Some("pathrig-usr"),
            "/usr",
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(lower.as_str()),
        )
        .map_err(|e| {
            RigError::Guest(format!(
                "overlay {} over /usr: {e} (is the overlay module loaded?)",
                tools.usr_tree.display()
            ))
        })?;
        self.mounted.push("/usr");
        let upper = Path::new(STATE_DIR).join("etc-upper");
        let work = Path::new(STATE_DIR).join("etc-work");
        for dir in [&upper, &work] {
            fs::create_dir_all(dir).map_err(RigError::io("create", dir))?;
        }
        let options = format!(
            "lowerdir=/etc,upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        mount(
            Some("pathrig-etc"),
            "/etc",
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| RigError::Guest(format!("writable overlay over /etc: {e}")))?;
        self.mounted.push("/etc");
        Ok(())
    }

    /// Starts `command` with its output captured as lines of `source`.
    fn spawn(&mut self, mut command: Command, source: Source) -> Result<Child, RigError> {
        let program = command.get_program().to_string_lossy().to_string();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(RigError::io("start", PathBuf::from(&program)))?;
        let outputs: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for output in outputs {
            let tx = self.lines_tx.clone();
            let all = self.all_lines.clone();
            let wake = self.wake_write.clone();
            let origin = self.origin;
            // The origin on the monotonic clock multipathd stamps its lines with.
            let origin_monotonic = monotonic_now().saturating_sub(origin.elapsed());
            self.readers.push(std::thread::spawn(move || {
                for line in BufReader::new(output).lines() {
                    let Ok(text) = line else { break };
                    let logged = log::parse_line(&text)
                        .monotonic()
                        .and_then(|t| t.checked_sub(origin_monotonic));
                    let captured = Captured {
                        source,
                        at: origin.elapsed(),
                        logged,
                        text,
                    };
                    all.lock().expect("not poisoned").push(captured.clone());
                    if tx.send(captured).is_err() {
                        break;
                    }
                    let _ = nix::unistd::write(wake.as_fd(), &[1]);
                }
            }));
        }
        Ok(child)
    }

    /// Asks udev to process each of `paths` (an `add` uevent through sysfs) and waits until its
    /// database has their `ID_SERIAL` (what multipathd takes as the WWID of a SCSI path).
    /// Returns the serials in the order of `paths`.
    pub fn settle_paths(
        &self,
        paths: &[DevNum],
        timeout: Duration,
    ) -> Result<Vec<String>, RigError> {
        let trigger = |dev: &DevNum| -> Result<(), RigError> {
            let uevent =
                PathBuf::from(format!("/sys/dev/block/{}:{}/uevent", dev.major, dev.minor));
            fs::write(&uevent, "add").map_err(RigError::io("write add to", &uevent))
        };
        for dev in paths {
            trigger(dev)?;
        }
        let deadline = Instant::now() + timeout;
        let mut serials = Vec::with_capacity(paths.len());
        for dev in paths {
            let db = PathBuf::from(format!("/run/udev/data/b{}:{}", dev.major, dev.minor));
            // An uevent sent before udevd listened on its netlink socket is lost (udevd only
            // reads what arrives after it bound): ask again while the database has nothing.
            let mut next_trigger = Instant::now() + RETRIGGER;
            loop {
                if let Some(serial) = udev_property(&db, "ID_SERIAL") {
                    serials.push(serial);
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(RigError::Guest(format!(
                        "udev gave block device {dev} no ID_SERIAL within {timeout:?} ({} {}); \
                         multipathd takes only paths with a WWID (SCSI disks)",
                        db.display(),
                        if db.exists() {
                            "has none"
                        } else {
                            "does not exist"
                        }
                    )));
                }
                if !db.exists() && Instant::now() >= next_trigger {
                    trigger(dev)?;
                    next_trigger = Instant::now() + RETRIGGER;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(serials)
    }

    /// Writes `/etc/multipath.conf` and starts `multipathd -d -v<verbosity>`.
    pub fn start_multipathd(&mut self, spec: &DaemonSpec) -> Result<(), RigError> {
        if self.multipathd.is_some() {
            return Err(RigError::Guest("multipathd is already running".into()));
        }
        fs::write("/etc/multipath.conf", &spec.conf)
            .map_err(RigError::io("write", "/etc/multipath.conf"))?;
        let binary = spec
            .multipathd
            .clone()
            .unwrap_or_else(|| PathBuf::from(MultipathTools::GUEST_MULTIPATHD));
        let mut command = Command::new(&binary);
        command
            .args(["-d", &format!("-v{}", spec.verbosity)])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin");
        let child = self.spawn(command, Source::Multipathd)?;
        self.multipathd = Some(child);
        Ok(())
    }

    /// Waits until every map in `dm_names` exists, and returns their device numbers. Fails early
    /// if multipathd exits.
    pub fn wait_for_maps(
        &mut self,
        dm: &Dm,
        dm_names: &[String],
        timeout: Duration,
    ) -> Result<Vec<DevNum>, RigError> {
        let deadline = Instant::now() + timeout;
        loop {
            let listed = dm.list()?;
            let found: Vec<Option<DevNum>> = dm_names
                .iter()
                .map(|n| listed.iter().find(|d| &d.name == n).map(|d| d.dev))
                .collect();
            for (name, dev) in dm_names.iter().zip(&found) {
                if dev.is_some() && !self.maps.contains(name) {
                    self.maps.push(name.clone());
                }
            }
            if found.iter().all(Option::is_some) {
                return Ok(found.into_iter().flatten().collect());
            }
            if let Some(child) = self.multipathd.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(RigError::Guest(format!(
                        "multipathd exited ({status}) before building its maps; its last lines:\n{}",
                        self.tail(12)
                    )));
                }
            }
            if Instant::now() >= deadline {
                let missing: Vec<&str> = dm_names
                    .iter()
                    .zip(&found)
                    .filter(|(_, d)| d.is_none())
                    .map(|(n, _)| n.as_str())
                    .collect();
                return Err(RigError::Guest(format!(
                    "multipathd built no map {} within {timeout:?}; its last lines:\n{}",
                    missing.join(", "),
                    self.tail(12)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` captured lines, for error messages.
    fn tail(&self, n: usize) -> String {
        let all = self.all_lines.lock().expect("not poisoned");
        all.iter()
            .skip(all.len().saturating_sub(n))
            .map(|c| format!("  {:?}: {}", c.source, c.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The lines captured since the last call (none once the feed is taken).
    pub fn take_lines(&self) -> Vec<Captured> {
        self.feed.as_ref().map(Feed::take_lines).unwrap_or_default()
    }

    /// Hands the stream of captured lines to the caller (a path manager that turns them into
    /// events); [`Stack::take_lines`] has none from then on.
    pub fn take_feed(&mut self) -> Option<Feed> {
        self.feed.take()
    }

    /// Every line captured so far.
    pub fn all_lines(&self) -> Vec<Captured> {
        self.all_lines.lock().expect("not poisoned").clone()
    }

    /// Sends `command` to multipathd over its socket and returns the answer.
    pub fn command(&self, command: &str, timeout: Duration) -> Result<String, RigError> {
        client::command(command, timeout)
    }

    /// Stops multipathd (SIGTERM: its shutdown), removes the maps it built, stops udevd and
    /// unmounts the layers. Runs once; later calls return an empty report.
    pub fn stop(&mut self, dm: Option<&Dm>) -> StopReport {
        let mut report = StopReport::default();
        if self.stopped {
            return report;
        }
        self.stopped = true;
        if let Some(child) = self.multipathd.take() {
            report.multipathd_exit = Some(terminate(child, Duration::from_secs(10)));
        }
        let own_dm;
        let dm = match dm {
            Some(dm) => Some(dm),
            None => {
                own_dm = Dm::open().ok();
                own_dm.as_ref()
            }
        };
        if let Some(dm) = dm {
            let listed = dm.list().unwrap_or_default();
            for name in self.maps.iter().rev() {
                if !listed.iter().any(|d| &d.name == name) {
                    continue;
                }
                // Queued IO would keep the map busy.
                let _ = dm.send(name, MultipathMessage::FailIfNoPath);
                match dm.remove(name) {
                    Ok(()) => report.maps_removed.push(name.clone()),
                    Err(e) => report.failures.push(e.to_string()),
                }
            }
        }
        if let Some(child) = self.udevd.take() {
            report.udevd_exit = Some(terminate(child, Duration::from_secs(10)));
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        for target in self.mounted.drain(..).rev() {
            if let Err(e) = umount2(target, MntFlags::empty()) {
                // Something still holds it open; detach it so the guest can go on.
                let _ = umount2(target, MntFlags::MNT_DETACH);
                report.failures.push(format!("unmount {target}: {e}"));
            }
        }
        let _ = fs::remove_dir_all(STATE_DIR);
        report
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for failure in self.stop(None).failures {
            eprintln!("pathrig: multipathd cleanup: {failure}");
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`; returns how the process ended.
fn terminate(mut child: Child, grace: Duration) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    if let Ok(Some(status)) = child.try_wait() {
        return format!("had already exited: {status}");
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    match child.wait() {
        Ok(status) => format!("killed after {grace:?}: {status}"),
        Err(e) => format!("killed after {grace:?}; wait failed: {e}"),
    }
}

fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), RigError> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)
        .map_err(|e| RigError::Guest(format!("fcntl: {e}")))?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| RigError::Guest(format!("fcntl: {e}")))?;
    Ok(())
}

/// A property (`E:KEY=value`) from a udev database file.
pub fn udev_property(db: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(db).ok()?;
    let prefix = format!("E:{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
}

/// Checks that `path` names an executable file (a user's own multipathd).
pub fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable", path.display()));
    }
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: access(2) on a valid C string.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(format!("{} is not executable by this user", path.display()));
    }
    Ok(())
}
