//! `pathrig`: the command line over the `controller` library. Also the guest's init: when
//! started as PID 1 by a guest that pathrig booted, it runs the scenario of its run directory and
//! powers the guest off.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use controller::commands::{self, INTERRUPTED};
use controller::guest::GuestKind;

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
    /// Render report.txt and report.html again from a run directory's report.json.
    Report {
        /// The run directory (the one `run --out` wrote).
        run_dir: PathBuf,
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
    /// such directories, and dead runs' scratch directories in the temporary directory (only
    /// those with a valid `pathrig.owner` marker whose lock no live run holds). Run directories
    /// are never removed; a killed run's gets an error.txt saying so. Nothing else is touched.
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

fn main() -> ExitCode {
    commands::init_logging();
    if rig::guest::init::is_guest_init() {
        controller::host::guest_init_main(&INTERRUPTED);
    }
    let cli = Cli::parse();
    // Only a run has anything to tear down on SIGINT/SIGTERM; every other command keeps the
    // default action and ends at once.
    if matches!(cli.command, Command::Run { .. }) {
        commands::install_signal_handlers();
    }
    let code = match cli.command {
        Command::Run {
            scenario,
            out,
            guest,
        } => commands::run(
            &scenario,
            out,
            match guest {
                GuestArg::Uml => GuestKind::Uml,
                GuestArg::None => GuestKind::None,
            },
        ),
        Command::Check { files } => commands::check(&files),
        Command::Report { run_dir } => commands::report(&run_dir),
        Command::Guest {
            action: GuestAction::Prepare,
        } => commands::prepare(),
        Command::Cleanup => commands::cleanup(),
    };
    ExitCode::from(code as u8)
}
