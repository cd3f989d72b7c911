//! `cargo bench --bench guest` (or `just bench`): how long a guest takes to be ready, and one
//! scenario's total wall time, as medians over several runs of the `healthy` scenario.
//!
//! Ratios are against references measured in the same runs: boot-to-ready against the bare
//! kernel's boot-to-init (what pathrig adds on top of booting), and the scenario's wall time
//! against its workload duration (what the rig costs around the workload).
//! Then the path manager's reaction times, from the `checker-finds-idle-dead-path` and
//! `leg-fails-and-returns` scenarios (1 s polling, 1 s checker timeout): an idle leg's failure to
//! the manager's `fail_path`, and a leg's restore to `reinstate_path`, as medians against the
//! configured polling interval.
//! Last, a FUSE leg against a plain loop-over-tmpfs leg in the same kind of guest: 4 KiB random
//! reads at queue depth 8 and 32 on a one-leg map (`FUSE file → loop → dm → multipath` against
//! `tmpfs file → loop → dm → multipath`), IOPS and latency medians, with the ratio FUSE/tmpfs.
//! `PATHRIG_BENCH_RUNS` sets the number of runs (default 5).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs the scenario file `file` and returns its report.json and the wall time in ms.
fn run_file(pathrig: &Path, file: &Path, out: &Path) -> (serde_json::Value, f64) {
    let started = Instant::now();
    let status = Command::new(pathrig)
        .args([
            "run",
            &file.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run pathrig");
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    assert!(
        status.success(),
        "{} failed ({status}); see {}",
        file.display(),
        out.display()
    );
    let json =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (json, wall)
}

/// Runs a suite scenario and returns its report.json.
fn run_scenario(pathrig: &Path, name: &str, out: &Path) -> serde_json::Value {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../vm-tests/scenarios/{name}.toml"));
    run_file(pathrig, &file, out).0
}

/// A one-leg, all-reads scenario over a leg with `backend`, at queue depth `qd`.
fn leg_bench_scenario(backend: &str, qd: u32) -> String {
    format!(
        "name = \"leg-bench\"\n[manager]\nkind = \"none\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\nbackend = \"{backend}\"\n\
         [workload]\nduration = \"3s\"\nread_percent = 100\nqueue_depth = {qd}\nverify = false\n"
    )
}

/// Time of the first event whose text contains `what`.
fn event_ms(report: &serde_json::Value, what: &str) -> f64 {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"].as_str().unwrap().contains(what))
        .unwrap_or_else(|| panic!("no event {what:?}"))["t_ms"]
        .as_f64()
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let runs: usize = std::env::var("PATHRIG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let pathrig = Path::new(env!("CARGO_BIN_EXE_pathrig"));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios/healthy.toml");
    let out = std::env::temp_dir().join(format!("pathrig-bench-{}", std::process::id()));
    let (mut boot_to_init, mut boot_to_ready, mut setup, mut wall, mut workload) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (json, elapsed) = run_file(pathrig, &scenario, &out);
        boot_to_init.push(json["guest"]["boot_to_init_ms"].as_f64().unwrap());
        boot_to_ready.push(json["guest"]["boot_to_ready_ms"].as_f64().unwrap());
        setup.push(json["timing"]["setup_ms"].as_f64().unwrap());
        workload.push(json["workload"]["duration_ms"].as_f64().unwrap());
        wall.push(elapsed);
    }
    let _ = std::fs::remove_dir_all(&out);
    let (init, ready, setup, wall, workload) = (
        median(&mut boot_to_init),
        median(&mut boot_to_ready),
        median(&mut setup),
        median(&mut wall),
        median(&mut workload),
    );
    println!("pathrig guest bench: scenario healthy, user-mode Linux, {runs} runs (medians)");
    println!("| figure | median | ratio | reference |");
    println!("|---|---|---|---|");
    println!("| kernel boot to init | {init:.0} ms | 1.00 | itself |");
    println!("| kernel boot to ready (modules loaded, maps built) | {ready:.0} ms | {:.2} | boot to init |", ready / init);
    println!(
        "| device setup alone (files, loops, legs, maps) | {setup:.1} ms | {:.3} | boot to init |",
        setup / init
    );
    println!("| scenario wall time (host: start to report) | {wall:.0} ms | {:.2} | workload duration {workload:.0} ms |", wall / workload);

    let (mut detect, mut reinstate) = (vec![], vec![]);
    for _ in 0..runs {
        let idle = run_scenario(pathrig, "checker-finds-idle-dead-path", &out);
        detect.push(event_ms(&idle, "fail_path b") - event_ms(&idle, "b: fail"));
        let back = run_scenario(pathrig, "leg-fails-and-returns", &out);
        reinstate.push(event_ms(&back, "reinstate_path a") - event_ms(&back, "a: restore"));
    }
    let _ = std::fs::remove_dir_all(&out);
    let (detect, reinstate) = (median(&mut detect), median(&mut reinstate));
    println!();
    println!("path manager reaction (polling_interval 1 s, checker_timeout 1 s; {runs} runs each, medians)");
    println!("| figure | median | ratio | reference |");
    println!("|---|---|---|---|");
    println!("| idle leg fails -> manager fail_path | {detect:.0} ms | {:.2} | polling_interval 1000 ms |", detect / 1000.0);
    println!("| leg restored -> manager reinstate_path | {reinstate:.0} ms | {:.2} | polling_interval 1000 ms |", reinstate / 1000.0);

    println!();
    println!("FUSE leg against loop over tmpfs, in the guest: 4 KiB random reads, 3 s per run, {runs} runs (medians)");
    println!("| queue depth | leg | reads/s | p50 | p99 | ratio reads/s FUSE/tmpfs |");
    println!("|---|---|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("pathrig-bench-legs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for qd in [8, 32] {
        let mut rows = Vec::new();
        for backend in ["loop", "fuse"] {
            let file = dir.join(format!("leg-bench-{backend}-{qd}.toml"));
            std::fs::write(&file, leg_bench_scenario(backend, qd)).unwrap();
            let (mut iops, mut p50, mut p99) = (vec![], vec![], vec![]);
            for _ in 0..runs {
                let (json, _) = run_file(pathrig, &file, &out);
                let w = &json["workload"];
                iops.push(
                    w["reads"].as_f64().unwrap() / (w["elapsed_ms"].as_f64().unwrap() / 1000.0),
                );
                p50.push(w["latency_us"]["p50"].as_f64().unwrap());
                p99.push(w["latency_us"]["p99"].as_f64().unwrap());
            }
            rows.push((
                backend,
                median(&mut iops),
                median(&mut p50),
                median(&mut p99),
            ));
        }
        let reference = rows[0].1;
        for (backend, iops, p50, p99) in rows {
            let leg = if backend == "fuse" {
                "FUSE"
            } else {
                "loop over tmpfs"
            };
            println!(
                "| {qd} | {leg} | {iops:.0} | {p50:.0} µs | {p99:.0} µs | {:.2} |",
                iops / reference
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}
