//! `cargo bench --bench engine` (or `just bench-engine`): pathrig's workload engine against fio
//! in the same kind of guest, on the same stack (tmpfs file → two loops → dm-linear legs →
//! multipath, no path manager), 4 KiB blocks, queue depth 8, O_DIRECT through io_uring.
//!
//! For random reads and for 70% reads, each round runs, one guest after another: the engine
//! without verification, the engine with it, fio with its defaults and fio submitting and
//! reaping half the queue at a time. Rounds repeat `PATHRIG_BENCH_RUNS` times (default 3), so
//! a drift of the machine's speed hits all four alike; the table shows medians and the ratio to
//! both fio configurations. CPU per IO is the issuer's own user + system time (the engine's
//! thread; fio's job) over its completed IOs. Needs fio on the host (`apt-get install fio`):
//! the guest runs the host's fio through its read-only view of the host's root.

use std::path::Path;
use std::process::Command;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One configuration of the table: how the scenario's `[workload]` says it.
struct Issuer {
    label: &'static str,
    workload_keys: &'static str,
}

const ISSUERS: [Issuer; 4] = [
    Issuer {
        label: "pathrig, verify off",
        workload_keys: "verify = false",
    },
    Issuer {
        label: "pathrig, verify on",
        workload_keys: "verify = true",
    },
    Issuer {
        label: "fio 3.33, default",
        workload_keys: "engine = \"fio\"",
    },
    Issuer {
        label: "fio 3.33, batched",
        workload_keys: "engine = \"fio-batched\"",
    },
];

fn scenario(read_percent: u8, issuer: &Issuer) -> String {
    format!(
        r#"name = "engine-bench"
description = "the workload engine against fio on the same stack"
seed = 3

[manager]
kind = "none"

[[map]]
name = "m"
size = "256MiB"
groups = [["a", "b"]]

[[leg]]
name = "a"

[[leg]]
name = "b"

[workload]
duration = "5s"
read_percent = {read_percent}
queue_depth = 8
{keys}
"#,
        keys = issuer.workload_keys
    )
}

#[derive(Default)]
struct Samples {
    iops: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu_us_per_io: Vec<f64>,
}

fn main() {
    let runs: usize = std::env::var("PATHRIG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let pathrig = Path::new(env!("CARGO_BIN_EXE_pathrig"));
    if !Path::new("/usr/bin/fio").exists() && !Path::new("/usr/local/bin/fio").exists() {
        eprintln!("engine bench: fio is not installed; install it with `apt-get install fio`");
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("pathrig-bench-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("run");
    println!("workload engine against fio, in the guest: 4 KiB, queue depth 8, 5 s per run, {runs} rounds (medians)");
    println!("| mix | issuer | IOPS | p50 | p99 | CPU per IO | IOPS / fio default | IOPS / fio batched |");
    println!("|---|---|---|---|---|---|---|---|");
    for (mix, read_percent) in [("random read", 100u8), ("random 70% read", 70)] {
        let mut samples: Vec<Samples> = ISSUERS.iter().map(|_| Samples::default()).collect();
        for _ in 0..runs {
            for (issuer, s) in ISSUERS.iter().zip(samples.iter_mut()) {
                let file = dir.join("scenario.toml");
                std::fs::write(&file, scenario(read_percent, issuer)).unwrap();
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
                assert!(
                    status.success(),
                    "{} failed ({status}); see {}",
                    issuer.label,
                    out.display()
                );
                let json: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(out.join("report.json")).unwrap(),
                )
                .unwrap();
                let w = &json["workload"];
                let ios = w["reads"].as_f64().unwrap() + w["writes"].as_f64().unwrap();
                s.iops
                    .push(ios / (w["elapsed_ms"].as_f64().unwrap() / 1000.0));
                s.p50.push(w["latency_us"]["p50"].as_f64().unwrap());
                s.p99.push(w["latency_us"]["p99"].as_f64().unwrap());
                if let Some(cpu_ms) = w["cpu_ms"].as_f64() {
                    s.cpu_us_per_io.push(cpu_ms * 1000.0 / ios.max(1.0));
                }
            }
        }
        let rows: Vec<(f64, f64, f64, f64)> = samples
            .iter_mut()
            .map(|s| {
                (
                    median(&mut s.iops),
                    median(&mut s.p50),
                    median(&mut s.p99),
                    if s.cpu_us_per_io.is_empty() {
                        f64::NAN
                    } else {
                        median(&mut s.cpu_us_per_io)
                    },
                )
            })
            .collect();
        let (fio_default, fio_batched) = (rows[2].0, rows[3].0);
        for (issuer, (iops, p50, p99, cpu)) in ISSUERS.iter().zip(rows) {
            println!(
                "| {mix} | {} | {iops:.0} | {p50:.0} µs | {p99:.0} µs | {cpu:.1} µs | {:.2} | {:.2} |",
                issuer.label,
                iops / fio_default,
                iops / fio_batched
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
