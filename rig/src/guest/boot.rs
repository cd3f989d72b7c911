//! Booting a user-mode Linux guest with pathrig as its init and collecting what it produced.
//!
//! The host side: build the kernel command line, start `linux.uml` in its own process group with
//! its console going to `console.log`, enforce the time limit, and turn what happened (exit file,
//! panic or oops in the console, timeout) into a [`GuestOutcome`].
//!
//! The guest never outlives pathrig: `linux.uml` is started with `PR_SET_PDEATHSIG(SIGKILL)`, so
//! the kernel kills it when pathrig dies, even by SIGKILL. The death signal fires when the
//! *thread* that started the guest ends, so [`boot_uml`] must be called from a thread that lives
//! as long as the run (pathrig calls it from its main thread). UML's helper processes are its
//! children in its process group and do *not* end with it; on every way out of [`boot_uml`] the
//! group is killed, and for the way out nobody sees (pathrig killed by SIGKILL) a [`Reaper`]
//! process waits on a pipe whose write end only pathrig holds and kills the group when the pipe
//! closes without a word.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::kernel::UmlKernel;
use super::{CONSOLE_LOG, DMESG_FILE, ENV_MODULES, ENV_RUN_DIR, EXIT_FILE};
use crate::RigError;

/// How to boot one guest.
pub struct BootSpec<'a> {
    pub kernel: &'a UmlKernel,
    pub memory_mib: u32,
    /// Writable run directory, shared with the guest at the same path.
    pub run_dir: &'a Path,
    /// The program the guest runs as init (pathrig itself).
    pub init: &'a Path,
    /// Extra `KEY=value` pairs handed to init through the kernel command line.
    pub env: Vec<(String, String)>,
    pub time_limit: Duration,
    /// Set by a signal handler: stop the guest at once.
    pub interrupted: &'a std::sync::atomic::AtomicBool,
}

/// How a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestOutcome {
    /// Init wrote its exit status and the guest powered off.
    Exited {
        code: i32,
        boot_to_init: Option<Duration>,
        wall: Duration,
    },
    /// The kernel panicked or oopsed; the first offending console line.
    KernelFailure { line: String },
    /// The guest outlived its time limit and was killed.
    TimedOut { limit: Duration },
    /// The person running pathrig interrupted it; the guest was killed.
    Interrupted,
    /// The guest ended without leaving an exit status (init crashed before writing it).
    NoExitStatus { uml_status: String },
}

/// Console lines that mean the guest kernel itself went wrong.
/// Built-in initcalls of Debian's UML kernel that the guest never needs and that cost most of
/// its boot (measured with `initcall_debug` on a 2-core host): the RAID-6 algorithm benchmark
/// (about 0.85 s: no md RAID-5/6 or btrfs RAID is used), zswap and the stream parser (each
/// starts a kernel thread, a host process in UML: about 0.2 s each), the crypto self-tests,
/// btrfs and the pty driver (the console is a plain file descriptor).
const SKIPPED_INITCALLS: &[&str] = &[
    "raid6_select_algo",
    "init_zswap",
    "strp_dev_init",
    "crypto_algapi_init",
    "init_btrfs_fs",
    "pty_init",
];

const KERNEL_FAILURE_MARKERS: &[&str] = &[
    "Kernel panic",
    "Oops:",
    "BUG: ",
    "general protection fault",
    "Call Trace:",
];

/// Boots the guest and waits for it. The console goes to `<run_dir>/console.log`.
pub fn boot_uml(spec: &BootSpec<'_>) -> Result<GuestOutcome, RigError> {
    let run_dir = spec.run_dir;
    let env_values = spec.env.iter().map(|(_, v)| Path::new(v.as_str()));
    for path in [run_dir, spec.init, spec.kernel.modules.as_path()]
        .into_iter()
        .chain(env_values)
    {
        let text = path.to_string_lossy();
        if text.contains(char::is_whitespace) || text.contains('"') {
            return Err(RigError::Guest(format!(
                "{text} contains white space or quotes, which the kernel command line cannot carry; \
                 use paths without them (e.g. --out /tmp/run1)"
            )));
        }
    }
    let _ = fs::remove_file(run_dir.join(EXIT_FILE));
    let console_path = run_dir.join(CONSOLE_LOG);
    let console = fs::File::create(&console_path).map_err(RigError::io("create", &console_path))?;
    let console_err = console
        .try_clone()
        .map_err(RigError::io("duplicate", &console_path))?;
    // UML keeps its control sockets in uml_dir; keep them in the run directory and remove them after.
    let uml_dir = run_dir.join(".uml");
    fs::create_dir_all(&uml_dir).map_err(RigError::io("create", &uml_dir))?;

    let mut args: Vec<String> = vec![
        format!("mem={}M", spec.memory_mib),
        "quiet".into(),
        format!("initcall_blacklist={}", SKIPPED_INITCALLS.join(",")),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
        "root=/dev/root".into(),
        "rootfstype=hostfs".into(),
        "rootflags=/".into(),
        "ro".into(),
        format!("uml_dir={}", uml_dir.display()),
        format!("umid=pathrig-{}", std::process::id()),
        format!("init={}", spec.init.display()),
        format!("{ENV_RUN_DIR}={}", run_dir.display()),
        format!("{ENV_MODULES}={}", spec.kernel.modules.display()),
    ];
    args.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));

    let mut command = Command::new(&spec.kernel.binary);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(console_err)
        .process_group(0);
    // The guest dies with pathrig (see the module comment). If pathrig died between fork and
    // prctl, the parent is already someone else: end at once.
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: prctl, getppid and raise are async-signal-safe; nothing here allocates.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    // UML backs guest memory with a file in TMPDIR; shared memory is faster than disk.
    if Path::new("/dev/shm").is_dir() {
        command.env("TMPDIR", "/dev/shm");
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(RigError::io("start the guest kernel", &spec.kernel.binary))?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _reaper = match Reaper::start(pgid) {
        Ok(r) => r,
        Err(err) => {
            kill_group(pgid);
            let _ = child.wait();
            return Err(RigError::io(
                "start the guest's reaper",
                &spec.kernel.binary,
            )(err));
        }
    };
    let mut relay = super::status::Relay::new(console_path.clone());
    let status = loop {
        // The guest is a child process; checking on it every 20 ms costs nothing measurable.
        if spec.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            relay.finish();
            kill_group(pgid);
            let _ = child.wait();
            let _ = fs::remove_dir_all(&uml_dir);
            return Ok(GuestOutcome::Interrupted);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > spec.time_limit => break None,
            Ok(None) => {
                relay.poll();
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(err) => {
                kill_group(pgid);
                return Err(RigError::io("wait for the guest", &spec.kernel.binary)(err));
            }
        }
    };
    relay.finish();
    let wall = started.elapsed();
    // UML leaves helper processes in its group; make sure none outlives the run.
    kill_group(pgid);
    let _ = child.wait();
    let _ = fs::remove_dir_all(&uml_dir);

    let console_text = fs::read_to_string(&console_path).unwrap_or_default();
    let dmesg_text = fs::read_to_string(run_dir.join(DMESG_FILE)).unwrap_or_default();
    if let Some(line) =
        first_kernel_failure(&console_text).or_else(|| first_kernel_failure(&dmesg_text))
    {
        return Ok(GuestOutcome::KernelFailure { line });
    }
    let Some(status) = status else {
        return Ok(GuestOutcome::TimedOut {
            limit: spec.time_limit,
        });
    };
    match fs::read_to_string(run_dir.join(EXIT_FILE)) {
        Ok(text) => {
            let mut words = text.split_whitespace();
            let code = words.next().and_then(|w| w.parse().ok()).unwrap_or(3);
            let boot_to_init = words
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .map(Duration::from_millis);
            Ok(GuestOutcome::Exited {
                code,
                boot_to_init,
                wall,
            })
        }
        Err(_) => Ok(GuestOutcome::NoExitStatus {
            uml_status: status.to_string(),
        }),
    }
}

/// A forked process that kills the guest's process group if pathrig dies without saying
/// goodbye. It holds the read end of a pipe; pathrig holds the only write end. Dropping the
/// reaper writes `d` (done: the group is pathrig's business, already killed) and closes the
/// pipe, and the reaper exits without killing; if pathrig dies, the pipe closes with nothing
/// written and the reaper kills the group. It ignores SIGINT and SIGTERM and has a process group
/// of its own, so a Ctrl-C or a group kill aimed at pathrig leaves it to do its job.
pub(crate) struct Reaper {
    write_fd: libc::c_int,
    pid: libc::pid_t,
}

impl Reaper {
    pub(crate) fn start(pgid: nix::unistd::Pid) -> std::io::Result<Reaper> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills the two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (read_fd, write_fd) = (fds[0], fds[1]);
        let group = pgid.as_raw();
        // SAFETY: the child runs only async-signal-safe calls (close, signal, setpgid, read,
        // killpg, _exit) and never returns into Rust code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            unsafe {
                libc::close(read_fd);
                libc::close(write_fd);
            }
            return Err(err);
        }
        if pid == 0 {
            unsafe {
                libc::close(write_fd);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::setpgid(0, 0);
                let mut byte = 0u8;
                let n = loop {
                    let n = libc::read(read_fd, (&mut byte as *mut u8).cast(), 1);
                    if n < 0 && *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    break n;
                };
                if !(n == 1 && byte == b'd') {
                    libc::killpg(group, libc::SIGKILL);
                }
                libc::_exit(0);
            }
        }
        unsafe { libc::close(read_fd) };
        Ok(Reaper { write_fd, pid })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // SAFETY: our own descriptor and child.
        unsafe {
            libc::write(self.write_fd, b"d".as_ptr().cast(), 1);
            libc::close(self.write_fd);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

fn kill_group(pgid: nix::unistd::Pid) {
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
}

/// The first console line that shows a kernel panic, oops or BUG.
pub fn first_kernel_failure(console: &str) -> Option<String> {
    console
        .lines()
        .find(|line| KERNEL_FAILURE_MARKERS.iter().any(|m| line.contains(m)))
        .map(|line| line.trim().to_string())
}

/// The path of the console log of a run directory.
pub fn console_log(run_dir: &Path) -> PathBuf {
    run_dir.join(CONSOLE_LOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_oopses_are_found_in_the_console() {
        assert_eq!(first_kernel_failure("ok\nall good\n"), None);
        assert_eq!(
            first_kernel_failure("x\nKernel panic - not syncing: Attempted to kill init!\n"),
            Some("Kernel panic - not syncing: Attempted to kill init!".into())
        );
        assert!(first_kernel_failure("[ 1.0] BUG: kernel NULL pointer dereference").is_some());
    }
}
