//! Guests: fetching a kernel into the cache ([`kernel`]), booting it with pathrig as init
//! ([`boot`]), and the guest side of that init ([`init`]).
//!
//! The guest sees the host's root read-only (hostfs) and one writable directory, the run
//! directory, at the same path as on the host; everything the guest produces lands there.

pub mod boot;
pub mod init;
pub mod kernel;
pub mod multipath_tools;
pub mod probe;
pub mod status;

/// Environment variable (passed on the kernel command line) that tells pathrig it runs as a
/// guest's init, and which run directory to serve.
pub const ENV_RUN_DIR: &str = "PATHRIG_GUEST_RUN_DIR";
/// Environment variable naming the guest kernel's module directory (`.../modules/<release>`).
pub const ENV_MODULES: &str = "PATHRIG_GUEST_MODULES";
/// File in the run directory where the guest leaves its exit status.
pub const EXIT_FILE: &str = "guest-exit";
/// Lines of the run's status on the console start with this (see [`status`]).
pub const STATUS_PREFIX: &str = "pathrig-status: ";

/// The guest's console output, kept in the run directory.
pub const CONSOLE_LOG: &str = "console.log";
/// The guest kernel's log, written by the guest at the end of the run.
pub const DMESG_FILE: &str = "dmesg.txt";
