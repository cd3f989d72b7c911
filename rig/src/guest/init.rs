//! The guest side of booting: pathrig running as PID 1 inside the guest.
//!
//! [`setup`] mounts what a scenario needs (proc, sys, dev, tmpfs on /tmp and /run, the writable
//! run directory) and loads kernel modules; [`finish`] saves the kernel log and the exit status
//! into the run directory and powers the guest off.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, MsFlags};

use super::{DMESG_FILE, ENV_MODULES, ENV_RUN_DIR, EXIT_FILE};
use crate::kmod::ModuleTree;
use crate::RigError;

/// The guest's writable scratch directory (tmpfs), where backing files go.
pub const GUEST_SCRATCH: &str = "/run";

/// What init learned from the kernel command line.
pub struct GuestEnv {
    pub run_dir: PathBuf,
    pub modules: ModuleTree,
    pub kernel_release: String,
    /// Time from kernel start to init, read from the guest's monotonic clock.
    pub boot_to_init: Duration,
}

/// Whether this process is a guest's init started by pathrig.
pub fn is_guest_init() -> bool {
    std::process::id() == 1 && std::env::var_os(ENV_RUN_DIR).is_some()
}

fn mount_fs(source: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<(), RigError> {
    fs::create_dir_all(target).ok();
    mount(Some(source), target, Some(fstype), MsFlags::empty(), data)
        .map_err(|errno| RigError::Guest(format!("mount {fstype} on {target}: {errno}")))
}

fn is_mounted(target: &str) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(target))
        })
        .unwrap_or(false)
}

/// Gives the scratch tmpfs its size (`bytes`, rounded up to whole pages) instead of the
/// default half of the guest's memory, so that backing files the size of the maps fit.
pub fn size_scratch(bytes: u64) -> Result<(), RigError> {
    let options = format!("mode=755,size={}", bytes.div_ceil(4096) * 4096);
    nix::mount::mount(
        None::<&str>,
        GUEST_SCRATCH,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT,
        Some(options.as_str()),
    )
    .map_err(|e| {
        RigError::Guest(format!(
            "size the tmpfs on {GUEST_SCRATCH} ({options}): {e}"
        ))
    })
}

/// Mounts the guest's file systems and reads its environment.
pub fn setup() -> Result<GuestEnv, RigError> {
    let boot_to_init = monotonic_now();
    let run_dir = PathBuf::from(
        std::env::var_os(ENV_RUN_DIR)
            .ok_or_else(|| RigError::Guest(format!("{ENV_RUN_DIR} is not set")))?,
    );
    let modules_dir = PathBuf::from(
        std::env::var_os(ENV_MODULES)
            .ok_or_else(|| RigError::Guest(format!("{ENV_MODULES} is not set")))?,
    );
    mount_fs("proc", "/proc", "proc", None)?;
    if !is_mounted("/sys") {
        mount_fs("sysfs", "/sys", "sysfs", None)?;
    }
    if !is_mounted("/dev") {
        mount_fs("devtmpfs", "/dev", "devtmpfs", None)?;
    }
    // The host's root is visible read-only. The guest's own scratch space is a tmpfs on /run (an
    // empty /run also keeps libraries from finding the host's udev socket). /tmp stays the host's:
    // the kernel cache or pathrig itself may live there.
    mount_fs("tmpfs", GUEST_SCRATCH, "tmpfs", Some("mode=755"))?;
    let run_dir_text = run_dir.to_string_lossy().to_string();
    mount_fs("none", &run_dir_text, "hostfs", Some(&run_dir_text))?;
    let modules = ModuleTree::open(&modules_dir)?;
    let kernel_release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(GuestEnv {
        run_dir,
        modules,
        kernel_release,
        boot_to_init,
    })
}

fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default()
}

/// Reads the whole kernel log.
pub fn read_kernel_log() -> String {
    let mut buf = vec![0u8; 1 << 20];
    // SYSLOG_ACTION_READ_ALL
    let n = unsafe {
        libc::klogctl(
            3,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len() as libc::c_int,
        )
    };
    if n <= 0 {
        return String::new();
    }
    String::from_utf8_lossy(&buf[..n as usize]).to_string()
}

/// Saves the kernel log and `code` into the run directory, then powers the guest off.
pub fn finish(run_dir: &Path, code: i32, boot_to_init: Duration) -> ! {
    let _ = fs::write(run_dir.join(DMESG_FILE), read_kernel_log());
    if let Ok(mut file) = fs::File::create(run_dir.join(EXIT_FILE)) {
        let _ = writeln!(file, "{code} {}", boot_to_init.as_millis());
        let _ = file.sync_all();
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // reboot only returns on failure; PID 1 must never exit.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
