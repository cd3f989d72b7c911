//! Where a scenario runs. Each kind of guest is one [`Guest`] implementation — a throw-away
//! user-mode Linux guest, or this machine's own kernel — and [`guest_for`] is the one place that
//! maps a [`GuestKind`] to it: adding a kind (QEMU) is one implementation and one line there.
//!
//! A guest gets the validated scenario and a prepared run directory and returns the run's exit
//! status; whatever it needs from the host (a kernel, root) it checks in [`Guest::preflight`],
//! before the run directory is created.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use faults::Scenario;

use crate::host;
use crate::runner::RunEnv;

/// The kinds of guest, as the command line and the report name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A throw-away user-mode Linux guest.
    Uml,
    /// This machine's own kernel (`--guest none`; needs root).
    None,
}

impl GuestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Uml => "uml",
            GuestKind::None => "none",
        }
    }
}

/// One way of running a scenario.
pub trait Guest {
    fn kind(&self) -> GuestKind;

    /// Where the run happens, for the line `pathrig run` prints ("in a user-mode Linux guest").
    fn describe(&self) -> &'static str;

    /// Whether this guest can run here at all; an `Err` says why and what to do, and nothing
    /// has been created yet.
    fn preflight(&self) -> Result<(), String> {
        Ok(())
    }

    /// Runs `scenario` (validated from `scenario_file`) with `run_dir` as its run directory and
    /// returns the exit status (see [`host`]'s `EXIT_*`).
    fn run(
        &self,
        scenario: &Scenario,
        scenario_file: &Path,
        run_dir: &Path,
        interrupted: &'static AtomicBool,
    ) -> i32;
}

/// The registration: the implementation of each kind.
pub fn guest_for(kind: GuestKind) -> Box<dyn Guest> {
    match kind {
        GuestKind::Uml => Box::new(UmlGuest),
        GuestKind::None => Box::new(InPlace),
    }
}

/// Boots user-mode Linux with pathrig as its init; the guest sees the host's root read-only.
pub struct UmlGuest;

impl Guest for UmlGuest {
    fn kind(&self) -> GuestKind {
        GuestKind::Uml
    }

    fn describe(&self) -> &'static str {
        "a user-mode Linux guest"
    }

    fn run(
        &self,
        scenario: &Scenario,
        scenario_file: &Path,
        run_dir: &Path,
        interrupted: &'static AtomicBool,
    ) -> i32 {
        host::run_in_uml(scenario, scenario_file, run_dir, interrupted)
    }
}

/// Runs on this machine's kernel, creating real dm and loop devices on it.
pub struct InPlace;

impl Guest for InPlace {
    fn kind(&self) -> GuestKind {
        GuestKind::None
    }

    fn describe(&self) -> &'static str {
        "place, on this machine's kernel"
    }

    fn preflight(&self) -> Result<(), String> {
        if nix::unistd::geteuid().is_root() {
            Ok(())
        } else {
            Err("--guest none creates dm and loop devices and needs root (or run in a guest: --guest uml)".into())
        }
    }

    fn run(
        &self,
        scenario: &Scenario,
        _scenario_file: &Path,
        run_dir: &Path,
        interrupted: &'static AtomicBool,
    ) -> i32 {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().to_string())
            .unwrap_or_default();
        let env = RunEnv {
            guest: self.kind(),
            kernel_release: release,
            work_root: std::env::temp_dir(),
            interrupted,
            boot: None,
        };
        host::run_in_place(scenario, run_dir, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_registered_with_its_own_implementation() {
        for kind in [GuestKind::Uml, GuestKind::None] {
            assert_eq!(guest_for(kind).kind(), kind);
        }
    }
}
