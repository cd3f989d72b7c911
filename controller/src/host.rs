//! The host side of `pathrig run`: validate the scenario, prepare the run directory, boot a guest
//! with pathrig as its init (or run in place with `--guest none`), and turn what came back into
//! an exit status: 0 all expectations held, 1 one failed, 2 bad input, 3 rig or guest failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use faults::Scenario;
use rig::guest::boot::{boot_uml, BootSpec, GuestOutcome};
use rig::guest::kernel;

use crate::plan;
use crate::report::{Report, Verdict};
use crate::runner::{self, GuestKind, RunEnv, RunError};

pub const EXIT_PASS: i32 = 0;
pub const EXIT_EXPECTATION_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_RIG_FAILURE: i32 = 3;

/// The scenario file's copy inside the run directory, as a record of what ran. The guest runs
/// the validated plan next to it ([`plan::PLAN_FILE`]), never this file.
pub const SCENARIO_COPY: &str = "scenario.toml";
pub const REPORT_JSON: &str = "report.json";
pub const REPORT_TXT: &str = "report.txt";
pub const REPORT_HTML: &str = "report.html";
/// Where the guest writes a rig failure for the host to show.
pub const ERROR_FILE: &str = "error.txt";

/// Where run directories go by default (relative to the working directory).
pub const DEFAULT_RUNS_DIR: &str = "pathrig-runs";

/// The default run directory: `./pathrig-runs/<scenario name>` (replaced by the next run).
pub fn default_run_dir(scenario: &Scenario) -> PathBuf {
    PathBuf::from(DEFAULT_RUNS_DIR).join(&scenario.name)
}

/// Makes `dir` a run directory owned by this process: claims it (its marker and lock, see
/// `rig::ownership`; a directory a live run owns is refused) and removes an earlier run's files.
/// Returns the canonical path and the claim, to be held until the run has ended. A previous run
/// that was killed (its marker still said running) is mentioned on stderr.
pub fn prepare_run_dir(dir: &Path) -> Result<(PathBuf, rig::ownership::Claim), String> {
    fs::create_dir_all(dir).map_err(|e| format!("create run directory {}: {e}", dir.display()))?;
    let dir = fs::canonicalize(dir).map_err(|e| format!("resolve {}: {e}", dir.display()))?;
    let (claim, previous) = rig::ownership::Claim::take(&dir, rig::ownership::Kind::Run)
        .map_err(|e| format!("{e}; wait for it to end or use another --out directory"))?;
    if let Some(m) = previous.filter(|m| m.state == rig::ownership::State::Running) {
        eprintln!(
            "pathrig: the previous run in {} ({}) was killed before it finished; replacing it",
            dir.display(),
            m.describe()
        );
    }
    for name in RUN_FILES {
        let _ = fs::remove_file(dir.join(name));
    }
    Ok((dir, claim))
}

/// Every file a run writes into its run directory (the README documents each), besides the
/// ownership marker `rig::ownership::MARKER`.
pub const RUN_FILES: &[&str] = &[
    REPORT_JSON,
    REPORT_TXT,
    REPORT_HTML,
    ERROR_FILE,
    SCENARIO_COPY,
    plan::PLAN_FILE,
    rig::guest::CONSOLE_LOG,
    rig::guest::DMESG_FILE,
    rig::guest::EXIT_FILE,
];

/// Writes report.json, report.txt and report.html into `dir`.
pub fn write_report(dir: &Path, report: &Report) -> Result<(), String> {
    let json = crate::report::json::render(report).map_err(|e| e.to_string())?;
    fs::write(dir.join(REPORT_JSON), json)
        .map_err(|e| format!("write {}: {e}", dir.join(REPORT_JSON).display()))?;
    write_rendered(dir, report)
}

/// Writes report.txt and report.html (the renderings of the report) into `dir`.
pub fn write_rendered(dir: &Path, report: &Report) -> Result<(), String> {
    fs::write(dir.join(REPORT_TXT), crate::report::text::render(report))
        .map_err(|e| format!("write {}: {e}", dir.join(REPORT_TXT).display()))?;
    fs::write(dir.join(REPORT_HTML), crate::report::html::render(report))
        .map_err(|e| format!("write {}: {e}", dir.join(REPORT_HTML).display()))?;
    Ok(())
}

/// Runs a scenario in place (in a guest's init, or on the host with `--guest none`), writes the
/// report and returns the exit status.
pub fn run_in_place(scenario: &Scenario, run_dir: &Path, env: RunEnv<'_>) -> i32 {
    match runner::run(scenario, &env) {
        Ok(report) => {
            if let Err(err) = write_report(run_dir, &report) {
                eprintln!("pathrig: {err}");
                return EXIT_RIG_FAILURE;
            }
            if let Some(lag) = &report.timeline_lag {
                // The scenario did not run as written: whatever its expectations say, it is void.
                let text = format!("rig failure: {}", lag.describe());
                eprintln!("pathrig: {text}");
                let _ = fs::write(run_dir.join(ERROR_FILE), format!("{text}\n"));
                return EXIT_RIG_FAILURE;
            }
            match report.verdict {
                Verdict::Pass => EXIT_PASS,
                Verdict::Fail => EXIT_EXPECTATION_FAILED,
            }
        }
        Err(err) => {
            let mut text = match &err {
                RunError::Interrupted => err.to_string(),
                _ => format!("rig failure: {err}"),
            };
            // Say plainly whether the failed run left anything behind.
            let leftovers = rig::cleanup::find_leftovers();
            if leftovers.is_empty() {
                text.push_str("\nleft behind: nothing");
            } else {
                text.push_str(&format!("\nleft behind: {}", leftovers.join(", ")));
            }
            eprintln!("pathrig: {text}");
            let _ = fs::write(run_dir.join(ERROR_FILE), format!("{text}\n"));
            EXIT_RIG_FAILURE
        }
    }
}

/// Boots a user-mode Linux guest that runs `scenario`, handed over as the plan in `run_dir`
/// (the scenario file is copied next to it as a record).
pub fn run_in_uml(
    scenario: &Scenario,
    scenario_file: &Path,
    run_dir: &Path,
    interrupted: &'static AtomicBool,
) -> i32 {
    if let Err(err) = fs::copy(scenario_file, run_dir.join(SCENARIO_COPY)) {
        eprintln!(
            "pathrig: copy {} into the run directory: {err}",
            scenario_file.display()
        );
        return EXIT_RIG_FAILURE;
    }
    if let Err(err) = plan::write(run_dir, scenario) {
        eprintln!("pathrig: {err}");
        return EXIT_RIG_FAILURE;
    }
    let mut steps = rig::guest::status::Steps::new();
    let kernel = match kernel::prepare_uml(&kernel::cache_dir(), &mut |line| steps.step(line)) {
        Ok(k) => k,
        Err(err) => {
            eprintln!("pathrig: cannot get a guest kernel: {err}");
            return EXIT_RIG_FAILURE;
        }
    };
    // The real multipathd comes from the cache too; the guest finds it there.
    if scenario.manager.kind == path_manager::settings::ManagerKind::Multipathd {
        if let Err(err) = rig::guest::multipath_tools::prepare_multipath_tools(
            &kernel::cache_dir(),
            &mut |line| steps.step(line),
        ) {
            eprintln!("pathrig: cannot get multipathd: {err}");
            return EXIT_RIG_FAILURE;
        }
    }
    // The preparation's spinner ends here, before the guest's own output.
    drop(steps);
    let init = match std::env::current_exe().and_then(fs::canonicalize) {
        Ok(p) => p,
        Err(err) => {
            eprintln!("pathrig: cannot find its own executable to use as the guest's init: {err}");
            return EXIT_RIG_FAILURE;
        }
    };
    let spec = BootSpec {
        kernel: &kernel,
        memory_mib: scenario.guest.memory_mib,
        run_dir,
        init: &init,
        env: guest_env(),
        time_limit: scenario.guest.timeout,
        interrupted,
    };
    let console = rig::guest::boot::console_log(run_dir);
    match boot_uml(&spec) {
        Ok(GuestOutcome::Exited { code, .. }) => {
            if code == EXIT_RIG_FAILURE {
                let why = fs::read_to_string(run_dir.join(ERROR_FILE)).unwrap_or_default();
                eprintln!(
                    "pathrig: the run failed in the guest: {}see {}",
                    why,
                    console.display()
                );
            }
            code
        }
        Ok(GuestOutcome::KernelFailure { line }) => {
            eprintln!(
                "pathrig: the guest kernel failed: {line}\n  see {}",
                console.display()
            );
            EXIT_RIG_FAILURE
        }
        Ok(GuestOutcome::TimedOut { limit }) => {
            // The guest's watchdog saved its kernel log and the events so far just before.
            let saved: Vec<String> = [rig::guest::DMESG_FILE, PARTIAL_TXT, PARTIAL_JSON]
                .iter()
                .map(|f| run_dir.join(f))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            eprintln!(
                "pathrig: the guest outlived its time limit ({}) and was stopped; see {}{} (raise [guest] timeout if the scenario needs longer)",
                faults::format_duration(limit),
                console.display(),
                if saved.is_empty() { String::new() } else { format!(", {}", saved.join(", ")) }
            );
            EXIT_RIG_FAILURE
        }
        Ok(GuestOutcome::Interrupted) => {
            eprintln!("pathrig: interrupted; the guest was stopped");
            EXIT_RIG_FAILURE
        }
        Ok(GuestOutcome::NoExitStatus { uml_status }) => {
            eprintln!(
                "pathrig: the guest ended ({uml_status}) without an exit status; see {}",
                console.display()
            );
            EXIT_RIG_FAILURE
        }
        Err(err) => {
            eprintln!("pathrig: {err}");
            EXIT_RIG_FAILURE
        }
    }
}

fn guest_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    // The cleanup test hook and the log filter travel into the guest.
    for name in [runner::FAIL_AT_ENV, "PATHRIG_LOG"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    }
    // The guest looks up the cache (multipath-tools) where the host put it.
    env.push((
        "PATHRIG_CACHE".to_string(),
        kernel::cache_dir().display().to_string(),
    ));
    env
}

/// What a guest that is about to outlive its time limit leaves: its kernel log, and the events
/// of the run so far.
pub const PARTIAL_JSON: &str = "report-partial.json";
pub const PARTIAL_TXT: &str = "report-partial.txt";

/// How long before the host's time limit the guest's watchdog saves what it has (at most a fifth
/// of the limit).
const WATCHDOG_MARGIN: Duration = Duration::from_secs(4);

/// Starts the guest's watchdog: shortly before the host will kill the guest (`limit` after the
/// guest kernel started, as the host counts), it writes dmesg.txt and a partial report (the
/// events so far) into the run directory. A run that ends in time overwrites dmesg.txt and
/// never writes the partial report.
fn arm_watchdog(run_dir: PathBuf, limit: Duration) {
    let deadline = limit.saturating_sub(WATCHDOG_MARGIN.min(limit / 5));
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                // The guest's monotonic clock starts with its kernel, as the host's limit does.
                let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                    .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
                    .unwrap_or_default();
                if now >= deadline {
                    break;
                }
                std::thread::sleep((deadline - now).min(Duration::from_secs(1)));
            }
            save_partial(&run_dir, limit);
        });
    if let Err(err) = spawned {
        eprintln!("pathrig (guest init): no watchdog: {err}");
    }
}

fn save_partial(run_dir: &Path, limit: Duration) {
    let _ = fs::write(
        run_dir.join(rig::guest::DMESG_FILE),
        rig::guest::init::read_kernel_log(),
    );
    let events = crate::events::EventLog::current()
        .map(|log| log.sorted())
        .unwrap_or_default();
    let note = format!(
        "partial: the guest was about to outlive its time limit ({}); these are the events \
         recorded until then",
        faults::format_duration(limit)
    );
    let json = serde_json::json!({ "partial": note, "events": events });
    let _ = fs::write(
        run_dir.join(PARTIAL_JSON),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    let mut text = format!("{note}\n\n");
    for e in &events {
        text.push_str(&format!("{:>10.1} ms  {}\n", e.t_ms, e.kind.what()));
    }
    let _ = fs::write(run_dir.join(PARTIAL_TXT), text);
    nix::unistd::sync();
}

/// The guest's init: set up the guest, run the scenario in the run directory, power off.
pub fn guest_init_main(interrupted: &'static AtomicBool) -> ! {
    let init_started = std::time::Instant::now();
    let env = match rig::guest::init::setup() {
        Ok(env) => env,
        Err(err) => {
            eprintln!("pathrig (guest init): {err}");
            let dir = PathBuf::from(std::env::var_os(rig::guest::ENV_RUN_DIR).unwrap_or_default());
            let _ = fs::write(dir.join(ERROR_FILE), format!("guest setup: {err}\n"));
            rig::guest::init::finish(&dir, EXIT_RIG_FAILURE, Duration::ZERO);
        }
    };
    let code = std::panic::catch_unwind(|| guest_run(&env, init_started, interrupted))
        .unwrap_or_else(|_| {
            let _ = fs::write(
                env.run_dir.join(ERROR_FILE),
                "pathrig panicked in the guest (see console.log)\n",
            );
            EXIT_RIG_FAILURE
        });
    rig::guest::init::finish(&env.run_dir, code, env.boot_to_init);
}

/// Kernel modules every scenario may need.
pub const GUEST_MODULES: &[&str] = &[
    "loop",
    "dm-mod",
    "dm-multipath",
    "dm-round-robin",
    "dm-queue-length",
    "dm-service-time",
    "dm-flakey",
    "dm-delay",
    "dm-dust",
    "dm-log",
    "dm-region-hash",
    "dm-mirror",
    "fuse",
];

fn guest_run(
    env: &rig::guest::init::GuestEnv,
    init_started: std::time::Instant,
    interrupted: &'static AtomicBool,
) -> i32 {
    if let Err(err) = env.modules.load(GUEST_MODULES) {
        eprintln!("pathrig (guest init): {err}");
        let _ = fs::write(env.run_dir.join(ERROR_FILE), format!("{err}\n"));
        return EXIT_RIG_FAILURE;
    }
    // The host validated the scenario and wrote the plan; a plan it cannot read is a rig
    // failure, not bad input.
    let scenario = match plan::read(&env.run_dir) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("pathrig (guest init): {err}");
            let _ = fs::write(env.run_dir.join(ERROR_FILE), format!("{err}\n"));
            return EXIT_RIG_FAILURE;
        }
    };
    // The real multipathd runs from an overlay over /usr, over SCSI disks.
    if scenario.manager.kind == path_manager::settings::ManagerKind::Multipathd {
        if let Err(err) = env.modules.load(&["overlay", "sd_mod"]) {
            eprintln!("pathrig (guest init): {err}");
            let _ = fs::write(env.run_dir.join(ERROR_FILE), format!("{err}\n"));
            return EXIT_RIG_FAILURE;
        }
    }
    arm_watchdog(env.run_dir.clone(), scenario.guest.timeout);
    // The SCSI stack only for scenarios with SCSI legs: loading it costs boot time.
    if scenario.legs.iter().any(|l| l.scsi.is_some()) {
        if let Err(err) = env.modules.load(rig::scsi::SCSI_MODULES) {
            eprintln!("pathrig (guest init): {err}");
            let _ = fs::write(env.run_dir.join(ERROR_FILE), format!("{err}\n"));
            return EXIT_RIG_FAILURE;
        }
    }
    if let Err(err) = rig::guest::init::size_scratch(scenario.scratch_bytes()) {
        eprintln!("pathrig (guest init): {err}");
        let _ = fs::write(env.run_dir.join(ERROR_FILE), format!("{err}\n"));
        return EXIT_RIG_FAILURE;
    }
    let run_env = RunEnv {
        guest: GuestKind::Uml,
        kernel_release: env.kernel_release.clone(),
        work_root: PathBuf::from(rig::guest::init::GUEST_SCRATCH),
        interrupted,
        boot: Some((env.boot_to_init, init_started)),
    };
    run_in_place(&scenario, &env.run_dir, run_env)
}
