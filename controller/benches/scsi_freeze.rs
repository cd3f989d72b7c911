//! `cargo bench -p controller --bench scsi_freeze` (or `just bench-freeze`): how the SCSI knobs
//! bound the HBA-wide freeze of the error handler, measured in the guest through the whole
//! stack (pathrig's SCSI array → tcm_loop → sd → dm-multipath → the workload).
//!
//! The setup is `vm-tests/scenarios/hba-freeze.toml`'s: maps m1 and m2, each preferring its
//! path via hba0 (the other via hba1, path_grouping_policy failover), the embedded manager with
//! the tur checker and `checker_timeout` = the device timeout (multipathd's default); at 2 s
//! m1's LUN stops answering on hba0. For device timeout ∈ {30, 5} s × eh_timeout ∈ {10, 5} s ×
//! eh_deadline ∈ {off, 5 s} × abort honoured/ignored, each run gives: the longest window without
//! a completion on the healthy map m2 and on the failing map m1, the time until the kernel
//! failed the dead path, and the error handler's time on hba0. Rows repeat
//! `PATHRIG_BENCH_RUNS` times (default 3), `PATHRIG_BENCH_GUESTS` guests at once (default 2);
//! the table shows medians and the healthy map's freeze as a ratio to the first row (the
//! kernel's defaults, abort honoured), measured in the same run.
//!
//! tcm_loop hosts have no host-reset handler, so the kernel refuses `eh_deadline` on them
//! (EINVAL): a row whose first run finds it refused is not run again — it is the same
//! experiment as its `off` row — and says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Combo {
    timeout_s: u32,
    eh_timeout_s: u32,
    eh_deadline_s: Option<u32>,
    honour: bool,
}

impl Combo {
    /// Long enough for the slowest course measured: three command timeouts and four of the
    /// error handler's, plus, when aborts are ignored, TCMU's own 60 s command timeout that
    /// ends the blocked abort.
    fn duration_s(&self) -> u32 {
        let ignore = if self.honour { 0 } else { 60 + self.timeout_s };
        2 + 3 * self.timeout_s + 4 * self.eh_timeout_s + ignore + 10
    }

    fn label(&self) -> String {
        format!(
            "{} s | {} s | {} | {}",
            self.timeout_s,
            self.eh_timeout_s,
            self.eh_deadline_s
                .map_or("off".to_string(), |d| format!("{d} s")),
            if self.honour { "honoured" } else { "ignored" }
        )
    }

    fn scenario(&self) -> String {
        let deadline = match self.eh_deadline_s {
            Some(d) => format!("eh_deadline = \"{d}s\"\n"),
            None => "eh_deadline = \"off\"\n".to_string(),
        };
        let hba = |name: &str| {
            format!(
                "[[hba]]\nname = \"{name}\"\ntimeout = \"{}s\"\neh_timeout = \"{}s\"\n{deadline}",
                self.timeout_s, self.eh_timeout_s
            )
        };
        let leg = |name: &str, map: &str, hba: &str, prio: u32| {
            format!(
                "[[leg]]\nname = \"{name}\"\nmap = \"{map}\"\nprio = {prio}\nbackend = \"scsi\"\nhba = \"{hba}\"\n"
            )
        };
        let duration = self.duration_s();
        format!(
            r#"name = "scsi-freeze-bench"
seed = 11

[guest]
timeout = "{guest}s"

[manager]
path_grouping_policy = "failover"
path_checker = "tur"
polling_interval = 1
max_polling_interval = 1
checker_timeout = {checker}

[[map]]
name = "m1"
size = "32MiB"

[[map]]
name = "m2"
size = "32MiB"

{hba0}
{hba1}
{a1}
{b1}
{a2}
{b2}
[[fault]]
at = "2s"
leg = "m1-a"
kind = "no_response"
abort = "{abort}"

[[workload]]
map = "m1"
duration = "{duration}s"

[[workload]]
map = "m2"
"#,
            guest = duration + 90,
            checker = self.timeout_s,
            hba0 = hba("hba0"),
            hba1 = hba("hba1"),
            a1 = leg("m1-a", "m1", "hba0", 50),
            b1 = leg("m1-b", "m1", "hba1", 10),
            a2 = leg("m2-a", "m2", "hba0", 50),
            b2 = leg("m2-b", "m2", "hba1", 10),
            abort = if self.honour { "honour" } else { "ignore" },
        )
    }
}

/// What one run measured (ms).
#[derive(Debug, Default, Clone)]
struct Measured {
    healthy_freeze: f64,
    failing_freeze: f64,
    dead_path_failed: Option<f64>,
    eh_total: f64,
    /// The error handler's episodes on hba0 and how each ended.
    episodes: Vec<String>,
    eh_deadline_refused: bool,
}

fn measure(pathrig: &Path, dir: &Path, combo: Combo, job: usize) -> Result<Measured, String> {
    let file = dir.join(format!("scenario-{job}.toml"));
    let out = dir.join(format!("run-{job}"));
    std::fs::write(&file, combo.scenario()).map_err(|e| e.to_string())?;
    let status = Command::new(pathrig)
        .args([
            "run",
            &file.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("run pathrig: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); see {}",
            combo.label(),
            out.display()
        ));
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let events = json["events"].as_array().cloned().unwrap_or_default();
    let fault = events
        .iter()
        .find(|e| e["kind"] == "fault" && e["leg"] == "m1-a" && e["change"] == "applied")
        .and_then(|e| e["t_ms"].as_f64())
        .unwrap_or(2000.0);
    let failed = events
        .iter()
        .find(|e| e["kind"] == "path_failed" && e["leg"] == "m1-a")
        .and_then(|e| e["t_ms"].as_f64());
    let host = &json["scsi"]["hosts"][0];
    Ok(Measured {
        healthy_freeze: json["workloads"][1]["longest_stall_ms"]
            .as_f64()
            .unwrap_or(f64::NAN),
        failing_freeze: json["workloads"][0]["longest_stall_ms"]
            .as_f64()
            .unwrap_or(f64::NAN),
        dead_path_failed: failed.map(|f| f - fault),
        eh_total: host["eh_total_ms"].as_f64().unwrap_or(0.0),
        episodes: host["episodes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|e| match e["ended_by"]["by"].as_str() {
                        Some("device_offlined") => "offlined".to_string(),
                        Some(other) => other.to_string(),
                        None => "?".to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        eh_deadline_refused: host["eh_deadline"]["state"] == "unsupported",
    })
}

fn main() {
    let runs: usize = std::env::var("PATHRIG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let guests: usize = std::env::var("PATHRIG_BENCH_GUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let pathrig = PathBuf::from(env!("CARGO_BIN_EXE_pathrig"));
    let dir = std::env::temp_dir().join(format!("pathrig-bench-freeze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut combos = Vec::new();
    for timeout_s in [30, 5] {
        for eh_timeout_s in [10, 5] {
            for eh_deadline_s in [None, Some(5)] {
                for honour in [true, false] {
                    combos.push(Combo {
                        timeout_s,
                        eh_timeout_s,
                        eh_deadline_s,
                        honour,
                    });
                }
            }
        }
    }
    // First one run of every row (which also tells whether eh_deadline reaches the kernel),
    // then the remaining runs of the rows that are experiments of their own.
    let results: Arc<Mutex<Vec<Vec<Measured>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); combos.len()]));
    let run_jobs = |jobs: Vec<usize>| {
        let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>()));
        std::thread::scope(|s| {
            for _ in 0..guests {
                let queue = Arc::clone(&queue);
                let results = Arc::clone(&results);
                let (pathrig, dir, combos) = (&pathrig, &dir, &combos);
                s.spawn(move || loop {
                    let Some((job, row)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    match measure(pathrig, dir, combos[row], row * 100 + job) {
                        Ok(m) => results.lock().unwrap()[row].push(m),
                        Err(e) => eprintln!("scsi freeze bench: {e}"),
                    }
                });
            }
        });
    };
    run_jobs((0..combos.len()).collect());
    let refused: Vec<bool> = results
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.first().is_some_and(|m| m.eh_deadline_refused))
        .collect();
    let mut more = Vec::new();
    for (row, combo) in combos.iter().enumerate() {
        if combo.eh_deadline_s.is_some() && refused[row] {
            continue;
        }
        more.extend(std::iter::repeat_n(row, runs.saturating_sub(1)));
    }
    run_jobs(more);

    let results = results.lock().unwrap();
    println!(
        "HBA-wide freeze of the SCSI error handler (maps m1, m2 sharing hba0; m1's LUN stops answering on hba0), medians of up to {runs} guest runs"
    );
    println!("| device timeout | eh_timeout | eh_deadline | abort | runs | healthy map m2: longest without a completion | / first row | failing map m1: longest without a completion | dead path failed after | error handling on hba0 | episodes ended by |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut reference = f64::NAN;
    for (row, combo) in combos.iter().enumerate() {
        let samples = &results[row];
        if combo.eh_deadline_s.is_some() && refused[row] {
            println!(
                "| {} | 1 | refused by the host (tcm_loop has no host reset): the same as eh_deadline off |||||||",
                combo.label()
            );
            continue;
        }
        let pick = |f: &dyn Fn(&Measured) -> Option<f64>| {
            let mut v: Vec<f64> = samples.iter().filter_map(f).collect();
            median(&mut v)
        };
        let healthy = pick(&|m| Some(m.healthy_freeze));
        if row == 0 {
            reference = healthy;
        }
        let failing = pick(&|m| Some(m.failing_freeze));
        let failed = pick(&|m| m.dead_path_failed);
        let eh = pick(&|m| Some(m.eh_total));
        let ends: Vec<String> = samples.iter().map(|m| m.episodes.join("+")).collect();
        println!(
            "| {} | {} | {:.1} s | {:.2} | {:.1} s | {} | {:.1} s | {} |",
            combo.label(),
            samples.len(),
            healthy / 1000.0,
            healthy / reference,
            failing / 1000.0,
            if failed.is_nan() {
                "not failed".to_string()
            } else {
                format!("{:.1} s", failed / 1000.0)
            },
            eh / 1000.0,
            if ends.iter().all(|e| e.is_empty()) {
                "no error handling".to_string()
            } else {
                ends.join(", ")
            }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
