//! `cargo bench --bench guest` (or `just bench`): how long a guest takes to be ready, and one
//! scenario's total wall time, as medians over several runs of the `healthy` scenario.
//!
//! Ratios are against references measured in the same runs: boot-to-ready against the bare
//! kernel's boot-to-init (what pathrig adds on top of booting), and the scenario's wall time
//! against its workload duration (what the rig costs around the workload).
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

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let runs: usize = std::env::var("PATHRIG_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let pathrig = Path::new(env!("CARGO_BIN_EXE_pathrig"));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios/healthy.toml");
    let out = std::env::temp_dir().join(format!("pathrig-bench-{}", std::process::id()));
    let (mut boot_to_init, mut boot_to_ready, mut setup, mut wall, mut workload) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let started = Instant::now();
        let status = Command::new(pathrig)
            .args(["run", &scenario.to_string_lossy(), "--out", &out.to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run pathrig");
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.success(), "run {i} failed ({status}); see {}", out.display());
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        boot_to_init.push(json["guest"]["boot_to_init_ms"].as_f64().unwrap());
        boot_to_ready.push(json["guest"]["boot_to_ready_ms"].as_f64().unwrap());
        setup.push(json["timing"]["setup_ms"].as_f64().unwrap());
        workload.push(json["workload"]["duration_ms"].as_f64().unwrap());
        wall.push(elapsed);
    }
    let _ = std::fs::remove_dir_all(&out);
    let (init, ready, setup, wall, workload) =
        (median(&mut boot_to_init), median(&mut boot_to_ready), median(&mut setup), median(&mut wall), median(&mut workload));
    println!("pathrig guest bench: scenario healthy, user-mode Linux, {runs} runs (medians)");
    println!("| figure | median | ratio | reference |");
    println!("|---|---|---|---|");
    println!("| kernel boot to init | {init:.0} ms | 1.00 | itself |");
    println!("| kernel boot to ready (modules loaded, maps built) | {ready:.0} ms | {:.2} | boot to init |", ready / init);
    println!("| device setup alone (files, loops, legs, maps) | {setup:.1} ms | {:.3} | boot to init |", setup / init);
    println!("| scenario wall time (host: start to report) | {wall:.0} ms | {:.2} | workload duration {workload:.0} ms |", wall / workload);
}
