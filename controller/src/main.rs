//! `pathrig`: the command line. Also the guest's init: when started as PID 1 by a guest that
//! pathrig booted, it runs the scenario of its run directory and powers the guest off.

mod driver;
mod events;
mod host;
mod manager;
mod report;
mod runner;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use host::{EXIT_BAD_INPUT, EXIT_PASS, EXIT_RIG_FAILURE};
use runner::GuestKind;

#[derive(Parser)]
#[command(
    name = "pathrig",
    version,
    about = "Fault-injection test rig for Linux dm-multipath"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: boot a guest, build the maps, inject the faults, report.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Run directory for report.txt, report.json, console.log, dmesg.txt
        /// [default: ./pathrig-runs/<scenario name>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to run: `uml` boots a throw-away user-mode Linux guest; `none` runs on this
        /// machine's own kernel (it must have device-mapper, and pathrig will create and remove
        /// dm and loop devices on it).
        #[arg(long, value_enum, default_value_t = GuestArg::Uml)]
        guest: GuestArg,
    },
    /// Validate scenario files without running anything.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Guest kernel management.
    Guest {
        #[command(subcommand)]
        action: GuestAction,
    },
    /// Remove leftovers of interrupted runs on this machine: dm devices named `pathrig-*` with a
    /// `PATHRIG-` uuid, loop devices backed by files in `pathrig-*` directories, mounts inside
    /// such directories, and those directories in the temporary directory. Nothing else is
    /// touched.
    Cleanup,
}

#[derive(Subcommand)]
enum GuestAction {
    /// Fetch the guest kernel into the cache (only this; nothing is booted).
    Prepare,
}

#[derive(Clone, Copy, ValueEnum)]
enum GuestArg {
    Uml,
    None,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
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
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PATHRIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    init_logging();
    if rig::guest::init::is_guest_init() {
        host::guest_init_main(&INTERRUPTED);
    }
    let cli = Cli::parse();
    install_signal_handlers();
    let code = match cli.command {
        Command::Run {
            scenario,
            out,
            guest,
        } => run(&scenario, out, guest),
        Command::Check { files } => check(&files),
        Command::Guest {
            action: GuestAction::Prepare,
        } => prepare(),
        Command::Cleanup => cleanup(),
    };
    ExitCode::from(code as u8)
}

fn run(file: &std::path::Path, out: Option<PathBuf>, guest: GuestArg) -> i32 {
    let scenario = match faults::load(file) {
        Ok(s) => s,
        Err(diags) => {
            eprintln!("{diags}");
            return EXIT_BAD_INPUT;
        }
    };
    let dir = out.unwrap_or_else(|| host::default_run_dir(&scenario));
    let run_dir = match host::prepare_run_dir(&dir) {
        Ok(d) => d,
        Err(err) => {
            eprintln!("pathrig: {err}");
            return EXIT_RIG_FAILURE;
        }
    };
    eprintln!(
        "pathrig: running {} in {} (run directory {})",
        scenario.name,
        match guest {
            GuestArg::Uml => "a user-mode Linux guest",
            GuestArg::None => "place, on this machine's kernel",
        },
        run_dir.display()
    );
    let code = match guest {
        GuestArg::Uml => host::run_in_uml(&scenario, file, &run_dir, &INTERRUPTED),
        GuestArg::None => {
            if !nix::unistd::geteuid().is_root() {
                eprintln!("pathrig: --guest none creates dm and loop devices and needs root");
                return EXIT_RIG_FAILURE;
            }
            let release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().to_string())
                .unwrap_or_default();
            let env = runner::RunEnv {
                guest: GuestKind::None,
                kernel_release: release,
                work_root: std::env::temp_dir(),
                interrupted: &INTERRUPTED,
                boot: None,
            };
            host::run_in_place(&scenario, &run_dir, env)
        }
    };
    if let Ok(text) = std::fs::read_to_string(run_dir.join(host::REPORT_TXT)) {
        print!("{text}");
        println!("(report.txt and report.json in {})", run_dir.display());
    }
    code
}

fn check(files: &[PathBuf]) -> i32 {
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

fn prepare() -> i32 {
    let cache = rig::guest::kernel::cache_dir();
    match rig::guest::kernel::prepare_uml(&cache, &mut |line| eprintln!("pathrig: {line}")) {
        Ok(kernel) => {
            println!(
                "guest kernel {} (user-mode-linux {}) at {}",
                kernel.release,
                kernel.package_version,
                kernel.binary.display()
            );
            EXIT_PASS
        }
        Err(err) => {
            eprintln!("pathrig: {err}");
            EXIT_RIG_FAILURE
        }
    }
}

fn cleanup() -> i32 {
    let report = rig::cleanup::remove_leftovers(&std::env::temp_dir());
    for name in &report.removed_dm {
        println!("removed dm device {name}");
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
        println!("nothing of pathrig's was left");
    }
    if report.failures.is_empty() {
        EXIT_PASS
    } else {
        EXIT_RIG_FAILURE
    }
}
