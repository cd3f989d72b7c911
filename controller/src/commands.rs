//! The commands of `pathrig` as library functions: each takes what the command line parsed
//! and returns the exit status. The binary (`src/main.rs`) only parses arguments and calls them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

use crate::guest::{guest_for, GuestKind};
use crate::host::{self, EXIT_BAD_INPUT, EXIT_PASS, EXIT_RIG_FAILURE};

pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The signal that interrupted the run (SIGINT or SIGTERM), for error.txt.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn install_signal_handlers() {
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        // No SA_RESTART: a blocking poll returns EINTR so the run notices at once.
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = nix::sys::signal::sigaction(signal, &action);
        }
    }
}

/// Diagnostics of the rig (`tracing`) go to stderr — in a guest, into console.log — filtered by
/// `PATHRIG_LOG` (e.g. `PATHRIG_LOG=debug`); warnings and errors by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PATHRIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(file: &Path, out: Option<PathBuf>, kind: GuestKind) -> i32 {
    let started = Instant::now();
    let scenario = match faults::load(file) {
        Ok(s) => s,
        Err(diags) => {
            eprintln!("{diags}");
            return EXIT_BAD_INPUT;
        }
    };
    let guest = guest_for(kind);
    if let Err(why) = guest.preflight() {
        eprintln!("pathrig: {why}");
        return EXIT_RIG_FAILURE;
    }
    let dir = out.unwrap_or_else(|| host::default_run_dir(&scenario));
    let (run_dir, mut claim) = match host::prepare_run_dir(&dir) {
        Ok(d) => d,
        Err(err) => {
            eprintln!("pathrig: {err}");
            return EXIT_RIG_FAILURE;
        }
    };
    eprintln!(
        "pathrig: running {} in {} (run directory {})",
        scenario.name,
        guest.describe(),
        run_dir.display()
    );
    let code = guest.run(&scenario, file, &run_dir, &INTERRUPTED);
    let state = if INTERRUPTED.load(Ordering::SeqCst) {
        record_interrupt(&run_dir, started.elapsed().as_secs_f64());
        rig::ownership::State::Interrupted
    } else {
        rig::ownership::State::Finished
    };
    if let Err(err) = claim.set_state(state) {
        eprintln!(
            "pathrig: record the run's end in {}: {err}",
            run_dir.display()
        );
    }
    if let Ok(text) = std::fs::read_to_string(run_dir.join(host::REPORT_TXT)) {
        print!("{text}");
        println!("(report.txt and report.json in {})", run_dir.display());
    }
    code
}

/// `pathrig report RUN_DIR`: renders report.txt and report.html again from the run directory's
/// report.json (after an upgrade of the renderers, or for a report.json copied from elsewhere).
/// The report's values are used as recorded; nothing is recomputed.
pub fn report(run_dir: &Path) -> i32 {
    let file = run_dir.join(host::REPORT_JSON);
    let report = match read_report(&file) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("pathrig: {err}");
            return EXIT_BAD_INPUT;
        }
    };
    if let Err(err) = host::write_rendered(run_dir, &report) {
        eprintln!("pathrig: {err}");
        return EXIT_RIG_FAILURE;
    }
    println!(
        "wrote {} and {} in {}",
        host::REPORT_TXT,
        host::REPORT_HTML,
        run_dir.display()
    );
    EXIT_PASS
}

/// Reads a report.json back into the report model.
pub fn read_report(file: &Path) -> Result<crate::report::Report, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a pathrig report.json: {e}",
            file.display(),
            e.line(),
            e.column()
        )
    })
}

/// Puts "interrupted at t = … s" at the top of the run directory's error.txt (below it, what the
/// run itself said, if anything).
fn record_interrupt(run_dir: &Path, secs: f64) {
    let signal = match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    };
    let path = run_dir.join(host::ERROR_FILE);
    let earlier = std::fs::read_to_string(&path).unwrap_or_default();
    let text = format!(
        "interrupted at t = {secs:.1} s (after pathrig run started) by {signal}; the run was stopped and everything it built was removed\n{earlier}"
    );
    if let Err(err) = std::fs::write(&path, text) {
        eprintln!("pathrig: write {}: {err}", path.display());
    }
}

pub fn check(files: &[PathBuf]) -> i32 {
    let mut code = EXIT_PASS;
    for file in files {
        match faults::load(file) {
            Ok(s) => println!("{}: ok ({})", file.display(), s.name),
            Err(diags) => {
                eprintln!("{diags}");
                code = EXIT_BAD_INPUT;
            }
        }
    }
    code
}

pub fn prepare() -> i32 {
    let cache = rig::guest::kernel::cache_dir();
    let mut steps = rig::guest::status::Steps::new();
    match rig::guest::kernel::prepare_uml(&cache, &mut |line| steps.step(line)) {
        Ok(kernel) => {
            println!(
                "guest kernel {} (user-mode-linux {}) at {}",
                kernel.release,
                kernel.package_version,
                kernel.binary.display()
            );
            // The real multipathd for `[manager] kind = "multipathd"`.
            match rig::guest::multipath_tools::prepare_multipath_tools(&cache, &mut |line| {
                steps.step(line)
            }) {
                Ok(tools) => {
                    println!(
                        "multipathd ({}) at {}",
                        tools.describe(),
                        tools.usr_tree.display()
                    );
                    EXIT_PASS
                }
                Err(err) => {
                    eprintln!("pathrig: {err}");
                    EXIT_RIG_FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("pathrig: {err}");
            EXIT_RIG_FAILURE
        }
    }
}

pub fn cleanup() -> i32 {
    let runs = PathBuf::from(host::DEFAULT_RUNS_DIR);
    let report = rig::cleanup::remove_leftovers(&std::env::temp_dir(), &[runs.as_path()]);
    for (dir, marker) in &report.killed_runs {
        let path = dir.join(host::ERROR_FILE);
        let earlier = std::fs::read_to_string(&path).unwrap_or_default();
        let text = format!(
            "killed: the run ({}) ended without finishing (e.g. SIGKILL); its files here are incomplete\n{earlier}",
            marker.describe()
        );
        match std::fs::write(&path, text) {
            Ok(()) => println!(
                "{}: its run was killed; noted in {}",
                dir.display(),
                host::ERROR_FILE
            ),
            Err(err) => eprintln!("pathrig: write {}: {err}", path.display()),
        }
    }
    for note in &report.left_alone {
        println!("left alone: {note}");
    }
    for name in &report.removed_dm {
        println!("removed dm device {name}");
    }
    for object in &report.removed_lio {
        println!("removed {object}");
    }
    for lo in &report.detached_loops {
        println!("detached {lo}");
    }
    for mountpoint in &report.unmounted {
        println!("unmounted {mountpoint}");
    }
    for dir in &report.removed_dirs {
        println!("removed {}", dir.display());
    }
    for failure in &report.failures {
        eprintln!("pathrig: {failure}");
    }
    if report.is_empty() {
        if report.left_alone.is_empty() {
            println!("nothing of pathrig's was left");
        } else {
            println!("nothing else of pathrig's was left");
        }
    }
    if report.failures.is_empty() {
        EXIT_PASS
    } else {
        EXIT_RIG_FAILURE
    }
}
