//! The harness of pathrig's end-to-end suite.
//!
//! The scenario files live in `vm-tests/scenarios/`, the suite in `vm-tests/tests/vm.rs` (built
//! as the `vm` test of the `controller` package, so that it gets the freshly built `pathrig`
//! binary), and its insta snapshots in `vm-tests/tests/snapshots/`. Each test boots a real guest
//! through `pathrig run`. As many guests run at once as the machine has cores (a UML guest keeps
//! at most one core busy); `PATHRIG_VM_GUESTS=N` sets another number (1: one at a time).
//!
//! The suite never skips silently: where no guest can be had the tests fail and say why, unless
//! the person running them sets `PATHRIG_SKIP_VM=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Environment variable that opts out of the VM tests explicitly.
pub const SKIP_ENV: &str = "PATHRIG_SKIP_VM";

/// The scenario files of the suite.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Names (file stems) of every scenario file in the suite.
pub fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("vm-tests/scenarios exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// What one `pathrig run` produced.
pub struct GuestRun {
    pub code: i32,
    pub stderr: String,
    pub run_dir: PathBuf,
    pub report_txt: String,
    pub report_json: serde_json::Value,
}

impl GuestRun {
    /// A readable account of the run for assertion messages.
    pub fn explain(&self) -> String {
        let console = std::fs::read_to_string(self.run_dir.join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(30).collect();
        format!(
            "exit status {}\n--- stderr ---\n{}\n--- report.txt ---\n{}\n--- console.log (last lines) ---\n{}",
            self.code,
            self.stderr,
            self.report_txt,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// A JSON value by a dotted path like `workload.latency_us.p50` or `maps.0.table`.
    pub fn json(&self, path: &str) -> &serde_json::Value {
        let mut value = &self.report_json;
        for part in path.split('.') {
            value = match part.parse::<usize>() {
                Ok(i) => &value[i],
                Err(_) => &value[part],
            };
        }
        value
    }
}

/// Where each run's wall time and its parts are appended, one tab-separated line per run:
/// scenario, wall, boot to ready, device setup, run (workload and drain), teardown, in ms.
pub const TIMES_ENV: &str = "PATHRIG_VM_TIMES";

fn record_times(file: &Path, name: &str, wall: std::time::Duration, json: &serde_json::Value) {
    use std::io::Write;
    let ms = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.0}"));
    let line = format!(
        "{name}\t{}\t{}\t{}\t{}\t{}\n",
        wall.as_millis(),
        ms(&json["guest"]["boot_to_ready_ms"]),
        ms(&json["timing"]["setup_ms"]),
        ms(&json["timing"]["run_ms"]),
        ms(&json["timing"]["teardown_ms"]),
    );
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        eprintln!("{TIMES_ENV}: cannot append to {}: {e}", file.display());
    }
}

/// How many guests may run at once: `PATHRIG_VM_GUESTS`, default one per core of the machine
/// (a UML guest keeps at most one core busy).
pub const GUESTS_ENV: &str = "PATHRIG_VM_GUESTS";

static GUESTS_RUNNING: Mutex<usize> = Mutex::new(0);
static GUEST_FINISHED: Condvar = Condvar::new();

fn guests_allowed() -> usize {
    std::env::var(GUESTS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A place among the guests allowed to run at once, given back on drop.
struct GuestSlot;

impl Drop for GuestSlot {
    fn drop(&mut self) {
        let mut running = GUESTS_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        GUEST_FINISHED.notify_one();
    }
}

/// Whether the VM tests are opted out; says so on stderr when they are.
pub fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because {SKIP_ENV}=1 (the VM suite did not run)");
        return true;
    }
    false
}

fn lock() -> GuestSlot {
    let allowed = guests_allowed();
    let mut running = GUESTS_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    while *running >= allowed {
        running = GUEST_FINISHED
            .wait(running)
            .unwrap_or_else(|e| e.into_inner());
    }
    *running += 1;
    GuestSlot
}

/// Runs `vm-tests/scenarios/<name>.toml` in a user-mode Linux guest with `pathrig` (the binary at
/// `bin`), with extra environment variables, into a fresh run directory.
pub fn run_scenario(bin: &Path, name: &str, env: &[(&str, &str)]) -> GuestRun {
    let _guard = lock();
    let file = scenarios_dir().join(format!("{name}.toml"));
    let run_dir =
        std::env::temp_dir().join(format!("pathrig-vmtest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut command = Command::new(bin);
    command.arg("run").arg(&file).arg("--out").arg(&run_dir);
    for (k, v) in env {
        command.env(k, v);
    }
    let started = std::time::Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let wall = started.elapsed();
    let report_txt = std::fs::read_to_string(run_dir.join("report.txt")).unwrap_or_default();
    let report_json = std::fs::read_to_string(run_dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    if let Some(file) = std::env::var_os(TIMES_ENV) {
        record_times(Path::new(&file), name, wall, &report_json);
    }
    GuestRun {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
        run_dir,
        report_txt,
        report_json,
    }
}

/// A `pathrig run` started in the background (for tests that signal or kill it mid-run); guests
/// count against `PATHRIG_VM_GUESTS` while it lives.
pub struct Started {
    pub child: std::process::Child,
    pub run_dir: PathBuf,
    _guard: GuestSlot,
}

/// Starts `pathrig run` of `vm-tests/scenarios/<name>.toml` into `run_dir` and returns once its
/// guest kernel runs and has been running for `settle` (so the guest is inside the scenario).
pub fn start_scenario(bin: &Path, name: &str, run_dir: &Path, settle: Duration) -> Started {
    let guard = lock();
    let _ = std::fs::remove_dir_all(run_dir);
    let file = scenarios_dir().join(format!("{name}.toml"));
    let child = Command::new(bin)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(run_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while guest_processes(run_dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no guest kernel started for {}",
            run_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(settle);
    Started {
        child,
        run_dir: run_dir.to_path_buf(),
        _guard: guard,
    }
}

/// Processes of the guest of the run in `run_dir`: the cached `linux.uml` (by its executable or
/// its command line) started with that run directory on its command line. UML's helper
/// processes are forks of it and share its command line.
pub fn guest_processes(run_dir: &Path) -> Vec<u32> {
    let needle = format!("uml_dir={}", run_dir.join(".uml").display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            let is_uml =
                cmdline.contains("linux.uml") || exe.file_name().is_some_and(|n| n == "linux.uml");
            is_uml && cmdline.contains(&needle)
        })
        .collect();
    found.sort();
    found
}
