//! The same workload run by fio instead of pathrig's engine, as a yardstick: one fio job with
//! the config's mix, block size, queue depth, rate and duration on the same device, through
//! io_uring with `O_DIRECT`, started as a child process in the guest (fio comes from the host's
//! root, which the guest sees read-only).
//!
//! fio does not verify the way pathrig does, so a fio run verifies nothing; its `json+` output
//! gives the counts, the CPU it used and the completion-latency histogram, which fills the same
//! [`WorkloadReport`] as the engine's. Stall detection is the engine's and does not run here.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{LatencySummary, WorkloadConfig, WorkloadReport};

/// How fio submits and reaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FioMode {
    /// fio's defaults: one IO per submission, reaping from one completion on.
    Default,
    /// Submits half the queue at a time and waits for half the queue to complete
    /// (`iodepth_batch_submit` = `iodepth_batch_complete_min` = queue depth / 2).
    Batched,
}

/// Where fio is looked for: the guest's init has no `PATH`.
const FIO_PLACES: &[&str] = &["/usr/local/bin/fio", "/usr/bin/fio"];

pub fn find_fio() -> io::Result<PathBuf> {
    FIO_PLACES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "engine fio: fio is not installed (looked for {}); install it on the host with `apt-get install fio`",
                    FIO_PLACES.join(", ")
                ),
            )
        })
}

/// fio's command line for `config`.
pub fn fio_args(config: &WorkloadConfig, mode: FioMode) -> Vec<String> {
    let rw = match (config.sequential, config.read_percent) {
        (false, 100) => "randread",
        (false, 0) => "randwrite",
        (false, _) => "randrw",
        (true, 100) => "read",
        (true, 0) => "write",
        (true, _) => "rw",
    };
    let mut args = vec![
        "--name=pathrig".to_string(),
        format!("--filename={}", config.path.display()),
        "--ioengine=io_uring".into(),
        "--direct=1".into(),
        format!("--rw={rw}"),
        format!("--rwmixread={}", config.read_percent),
        format!("--bs={}", config.block_size),
        format!("--iodepth={}", config.queue_depth),
        format!("--size={}", config.size_bytes),
        format!("--runtime={}ms", config.duration.as_millis().max(1)),
        "--time_based".into(),
        format!("--randseed={}", config.seed),
        "--norandommap".into(),
        "--continue_on_error=io".into(),
        "--output-format=json+".into(),
    ];
    if let Some(rate) = config.rate_iops {
        args.push(format!("--rate_iops={rate}"));
    }
    if mode == FioMode::Batched {
        let batch = (config.queue_depth / 2).max(1);
        args.push(format!("--iodepth_batch_submit={batch}"));
        args.push(format!("--iodepth_batch_complete_min={batch}"));
    }
    args
}

/// Runs fio on `config.path` and reads its report.
pub fn run(config: &WorkloadConfig, mode: FioMode) -> io::Result<WorkloadReport> {
    let fio = find_fio()?;
    run_with(&fio, config, mode)
}

fn run_with(fio: &Path, config: &WorkloadConfig, mode: FioMode) -> io::Result<WorkloadReport> {
    let output = Command::new(fio)
        .args(fio_args(config, mode))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("start {}: {e}", fio.display())))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{} failed ({}): {}",
            fio.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_report(&String::from_utf8_lossy(&output.stdout), config)
}

/// Turns fio's `json+` output into a report.
pub fn parse_report(text: &str, config: &WorkloadConfig) -> io::Result<WorkloadReport> {
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("fio output: {what}"));
    // fio may print notes before the JSON document.
    let start = text.find('{').ok_or_else(|| bad("no JSON document"))?;
    let doc: Value = serde_json::from_str(&text[start..]).map_err(|e| bad(&e.to_string()))?;
    let job = doc["jobs"].get(0).ok_or_else(|| bad("no job"))?;
    let number = |v: &Value, what: &str| v.as_f64().ok_or_else(|| bad(what));
    let reads = number(&job["read"]["total_ios"], "read.total_ios")? as u64;
    let writes = number(&job["write"]["total_ios"], "write.total_ios")? as u64;
    let errors = number(&job["total_err"], "total_err")? as u64;
    let (read_errors, write_errors) = match (errors, config.read_percent) {
        (0, _) => (0, 0),
        (n, 100) => (n, 0),
        (n, 0) => (0, n),
        (n, _) => {
            return Err(bad(&format!(
                "{n} IO errors, and fio does not say which were reads: use the pathrig engine for runs with errors"
            )))
        }
    };
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| bad(&format!("histogram: {e:?}")))?;
    histogram.auto(true);
    for dir in ["read", "write"] {
        if let Some(bins) = job[dir]["clat_ns"]["bins"].as_object() {
            for (ns, count) in bins {
                let ns: u64 = ns.parse().map_err(|_| bad("a bin that is not a number"))?;
                let count = count.as_u64().ok_or_else(|| bad("a bin count"))?;
                histogram.saturating_record_n((ns / 1000).max(1), count);
            }
        }
    }
    let latency = if histogram.is_empty() {
        LatencySummary::default()
    } else {
        LatencySummary {
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
            count: histogram.len(),
        }
    };
    let runtime_ms = number(&job["job_runtime"], "job_runtime")?;
    let cpu_share = number(&job["usr_cpu"], "usr_cpu")? + number(&job["sys_cpu"], "sys_cpu")?;
    Ok(WorkloadReport {
        reads: reads.saturating_sub(read_errors),
        writes: writes.saturating_sub(write_errors),
        read_errors,
        write_errors,
        verified_blocks: 0,
        mismatches: Vec::new(),
        latency,
        histogram,
        stalls: Vec::new(),
        longest_quiet: None,
        elapsed: Duration::from_secs_f64(runtime_ms / 1000.0),
        cpu: Some(Duration::from_secs_f64(
            runtime_ms * cpu_share / 100.0 / 1000.0,
        )),
        series: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fio 3.33's `json+` output of a 300 ms 70% read run on a file, 4 KiB, queue depth 8.
    const RANDRW: &str = include_str!("testdata/fio-3.33-randrw.json");

    fn config(read_percent: u8) -> WorkloadConfig {
        WorkloadConfig {
            path: PathBuf::from("/dev/dm-2"),
            size_bytes: 8 << 20,
            block_size: 4096,
            queue_depth: 8,
            read_percent,
            duration: Duration::from_millis(300),
            rate_iops: None,
            sequential: false,
            verify: false,
            seed: 1,
            stall_threshold: Duration::from_secs(1),
            engine: super::super::EngineKind::Fio(FioMode::Default),
        }
    }

    #[test]
    fn reads_counts_cpu_and_the_latency_histogram() {
        let r = parse_report(RANDRW, &config(70)).unwrap();
        assert_eq!((r.reads, r.writes), (9004, 3827));
        assert_eq!((r.read_errors, r.write_errors), (0, 0));
        // Every completed IO is in the histogram, from the bins of both directions.
        assert_eq!(r.histogram.len(), 9004 + 3827);
        assert!(r.latency.p50_us > 0 && r.latency.p50_us <= r.latency.p99_us);
        assert!(r.latency.p99_us <= r.latency.max_us);
        assert_eq!(r.elapsed, Duration::from_millis(300));
        // 3.67% user + 39.33% system of 300 ms.
        let cpu = r.cpu.unwrap().as_secs_f64() * 1000.0;
        assert!((cpu - 129.0).abs() < 0.5, "{cpu}");
    }

    #[test]
    fn errors_of_a_mixed_run_are_refused_rather_than_guessed() {
        let with_errors = RANDRW.replacen("\"total_err\" : 0", "\"total_err\" : 5", 1);
        assert_ne!(with_errors, RANDRW);
        let e = parse_report(&with_errors, &config(70)).unwrap_err();
        assert!(e.to_string().contains("5 IO errors"), "{e}");
        let reads_only = parse_report(&with_errors, &config(100)).unwrap();
        assert_eq!((reads_only.reads, reads_only.read_errors), (9004 - 5, 5));
    }

    #[test]
    fn the_command_line_says_the_mix_depth_and_batching() {
        let args = fio_args(&config(70), FioMode::Batched);
        for want in [
            "--rw=randrw",
            "--rwmixread=70",
            "--iodepth=8",
            "--bs=4096",
            "--runtime=300ms",
            "--iodepth_batch_submit=4",
            "--iodepth_batch_complete_min=4",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        let default = fio_args(&config(100), FioMode::Default);
        assert!(default.iter().any(|a| a == "--rw=randread"));
        assert!(!default.iter().any(|a| a.starts_with("--iodepth_batch")));
    }
}
