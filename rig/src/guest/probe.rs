//! Guest probes: a piece of rig code run inside a throw-away guest, for tests of what only a
//! guest kernel has (dm, LIO and TCMU, the SCSI error handler).
//!
//! A test binary with `harness = false` calls [`serve`] first thing in `main`. On the host it
//! returns at once, and the tests call [`run`], which boots a guest with the test binary itself
//! as init and the probe's name on the kernel command line. In the guest, [`serve`] mounts the
//! guest's file systems, runs the named probe and writes what it returned (JSON, or its error)
//! into the run directory, then powers the guest off; [`run`] reads that back. The kernel log is
//! kept in the run directory as `dmesg.txt`, the console as `console.log`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::boot::{boot_uml, BootSpec, GuestOutcome};
use super::init::{self, GuestEnv};
use super::kernel;

/// Names the probe to run, on the guest's kernel command line.
pub const ENV_PROBE: &str = "PATHRIG_PROBE";
/// The file in the run directory a probe's result is written to.
pub const RESULT_FILE: &str = "probe.json";

/// One probe: runs in the guest as PID 1, with the guest's file systems mounted.
pub type ProbeFn = fn(&GuestEnv) -> Result<serde_json::Value, String>;

/// In a guest started by [`run`]: runs the probe it names and powers the guest off (never
/// returns). Anywhere else: returns at once.
pub fn serve(probes: &[(&str, ProbeFn)]) {
    if !init::is_guest_init() {
        return;
    }
    let name = std::env::var(ENV_PROBE).unwrap_or_default();
    let env = match init::setup() {
        Ok(env) => env,
        Err(err) => {
            eprintln!("probe {name}: guest setup failed: {err}");
            // Without the run directory nothing can be saved; the host sees no exit status.
            init::finish(Path::new("/"), 3, Duration::ZERO)
        }
    };
    let result = match probes.iter().find(|(n, _)| *n == name) {
        Some((_, probe)) => {
            // A panic in the probe must still power the guest off with a result.
            match std::panic::catch_unwind(|| probe(&env)) {
                Ok(result) => result,
                Err(panic) => Err(format!("the probe panicked: {}", panic_text(&panic))),
            }
        }
        None => Err(format!("no probe named {name:?}")),
    };
    let (code, value) = match result {
        Ok(value) => (0, serde_json::json!({ "ok": value })),
        Err(err) => (1, serde_json::json!({ "error": err })),
    };
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let _ = fs::write(env.run_dir.join(RESULT_FILE), text);
    init::finish(&env.run_dir, code, env.boot_to_init)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Where the guest of probe `name` keeps its files: `target/probe-runs/<name>` beside the test
/// binary (replaced on every run).
pub fn run_dir_for(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<binary> → target/probe-runs/<name>
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("probe-runs").join(name)
}

/// On the host: boots a guest that runs probe `name` (registered with [`serve`] in this same
/// binary) and returns what it returned. `env` travels to the guest on the kernel command line
/// (values without white space).
pub fn run(
    name: &str,
    memory_mib: u32,
    time_limit: Duration,
    env: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let run_dir = run_dir_for(name);
    let _ = fs::remove_dir_all(&run_dir);
    fs::create_dir_all(&run_dir).map_err(|e| format!("create {}: {e}", run_dir.display()))?;
    let kernel = kernel::prepare_uml(&kernel::cache_dir(), &mut |line| eprintln!("{line}"))
        .map_err(|e| format!("no guest kernel: {e}"))?;
    let init = std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut guest_env = vec![(ENV_PROBE.to_string(), name.to_string())];
    guest_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    static NEVER: AtomicBool = AtomicBool::new(false);
    let spec = BootSpec {
        kernel: &kernel,
        memory_mib,
        run_dir: &run_dir,
        init: &init,
        env: guest_env,
        time_limit,
        interrupted: &NEVER,
    };
    let console = run_dir.join(super::CONSOLE_LOG);
    let outcome = boot_uml(&spec).map_err(|e| format!("boot: {e}"))?;
    let result = fs::read_to_string(run_dir.join(RESULT_FILE));
    match (outcome, result) {
        (GuestOutcome::Exited { .. }, Ok(text)) => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("probe {name} wrote unreadable JSON: {e}"))?;
            match (value.get("ok"), value.get("error")) {
                (Some(ok), _) => Ok(ok.clone()),
                (None, Some(err)) => Err(format!(
                    "probe {name} failed in the guest: {}; see {}",
                    err.as_str().unwrap_or_default(),
                    console.display()
                )),
                _ => Err(format!(
                    "probe {name}: {RESULT_FILE} has neither ok nor error"
                )),
            }
        }
        (outcome, _) => Err(format!(
            "probe {name}: the guest ended without a result ({outcome:?}); see {}",
            console.display()
        )),
    }
}
