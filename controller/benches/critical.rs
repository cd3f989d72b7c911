//! `cargo bench -p controller --bench critical` (or `just bench-critical`): time-critical IO
//! through the multipath map against the same IO multiplexed down every usable path, under five
//! faults of one leg — a hard failure (dm error target for 5 s), a slow failure (every IO
//! fails with EIO after 500 ms, FUSE, for 5 s), a hang (FUSE `hang` for 10 s),
//! a slow path (FUSE `latency`, median 20 ms, p99 400 ms, for 10 s) and a flapping link (dm
//! error 1 s in every 2 s, four times). Each scenario runs both writers on one map (areas of
//! their own, one 4 KiB write every 100 ms, read back, deadline 1 s) beside a 500 IOPS bulk
//! workload. Prints per fault and mode the medians over `PATHRIG_BENCH_RUNS` guest runs (default
//! 3, one guest at a time; a void run is repeated) of deadline misses, the ticks the writer
//! itself could not keep (`late`: the guest was not scheduled; not issued, not misses), critical
//! IO p99 and max, failures, disagreeing copies and the IO count.

use std::path::{Path, PathBuf};
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

/// The two writers every scenario here runs, on map m.
const WRITERS: &str = "[[critical]]\nname = \"tm\"\nmode = \"through_map\"\noffset = \"60MiB\"\n\
    [[critical]]\nname = \"mx\"\nmode = \"multiplex\"\noffset = \"62MiB\"\n";

/// Manager, map and two legs (a on `a_backend`, b a loop leg; both with a dm layer), then the
/// fault tables given.
fn two_leg_scenario(name: &str, a_backend: &str, faults: &str) -> String {
    format!(
        "name = \"{name}\"\nseed = 70\n[manager]\npath_grouping_policy = \"multibus\"\npolling_interval = 1\n\
         max_polling_interval = 1\nchecker_timeout = 1\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n\
         backend = \"{a_backend}\"\n[[leg]]\nname = \"b\"\n{faults}[workload]\nduration = \"12s\"\nrate_iops = 500\n{WRITERS}"
    )
}

/// A run's report.json; a run the rig voided (exit 3: on a loaded machine the fault timeline
/// can lag, and a UML guest starved by a loaded host can stall for seconds) is repeated, up to
/// five times.
fn run(pathrig: &Path, file: &Path, out: &Path) -> serde_json::Value {
    let mut attempts = 0;
    let status = loop {
        attempts += 1;
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
        if status.code() != Some(3) || attempts == 5 {
            break status;
        }
        eprintln!("{}: void run (exit 3), again", file.display());
    };
    // Exit 1 (an expectation failed) still has a report; the table is what matters here.
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "{} failed ({status}); see {}",
        file.display(),
        out.display()
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn main() {
    let runs: usize = std::env::var("PATHRIG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let pathrig = Path::new(env!("CARGO_BIN_EXE_pathrig"));
    let dir = std::env::temp_dir().join(format!("pathrig-bench-critical-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../vm-tests/scenarios/{name}.toml"))
    };
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases: Vec<(&str, PathBuf)> = vec![
        (
            "hard fail",
            write(
                "mx-bench-fail",
                two_leg_scenario(
                    "mx-bench-fail",
                    "loop",
                    "[[fault]]\nat = \"2.5s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"fail\"\n",
                ),
            ),
        ),
        (
            "failing slowly",
            write(
                "mx-bench-slowfail",
                two_leg_scenario(
                    "mx-bench-slowfail",
                    "fuse",
                    "[[fault]]\nat = \"2.5s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"errno\"\nerrno = \"EIO\"\n\
                     [[fault]]\nat = \"2.5s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"latency\"\nms = 500\n",
                ),
            ),
        ),
        ("hung (10 s)", suite("multiplex-hung-path")),
        ("slow (p99 400 ms)", suite("multiplex-slow-path")),
        (
            "flapping",
            write(
                "mx-bench-flap",
                two_leg_scenario(
                    "mx-bench-flap",
                    "loop",
                    "[[fault]]\nat = \"2.5s\"\nfor = \"1s\"\nevery = \"2s\"\ntimes = 4\nleg = \"a\"\nkind = \"fail\"\n",
                ),
            ),
        ),
    ];
    println!(
        "critical IO (4 KiB write + read-back every 100 ms, deadline 1 s), medians of {runs} runs"
    );
    println!(
        "{:<18} {:<12} {:>8} {:>15} {:>6} {:>10} {:>10} {:>8} {:>13}",
        "fault",
        "mode",
        "IOs",
        "deadline misses",
        "late",
        "p99 ms",
        "max ms",
        "failed",
        "disagreements"
    );
    for (label, file) in &cases {
        let reports: Vec<serde_json::Value> = (0..runs)
            .map(|i| run(pathrig, file, &dir.join(format!("out-{i}"))))
            .collect();
        for (writer, mode) in [("tm", "through map"), ("mx", "multiplex")] {
            let field = |key: &str| -> f64 {
                let mut v: Vec<f64> = reports
                    .iter()
                    .map(|r| {
                        let c = r["critical"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|c| c["name"] == writer)
                            .unwrap();
                        c.pointer(key).and_then(|x| x.as_f64()).unwrap()
                    })
                    .collect();
                median(&mut v)
            };
            println!(
                "{:<18} {:<12} {:>8} {:>15} {:>6} {:>10.1} {:>10.1} {:>8} {:>13}",
                label,
                mode,
                field("/ios"),
                field("/deadline_misses"),
                field("/late"),
                field("/latency_ms/p99"),
                field("/latency_ms/max"),
                field("/failed"),
                field("/disagreements")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
