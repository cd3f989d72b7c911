//! Probe `scsi-watch`: the SCSI event watcher against a scsi_debug disk whose commands time
//! out. Phase 1: the host enters recovery, the commands are answered again, it is back to
//! running. Phase 2: they never are, and the error handler offlines the disk.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use rig::guest::init::GuestEnv;
use rig::scsi_watch::{self, MonoClock, ScsiEvent, ScsiEventKind, WatchSpec};
use serde_json::json;

use super::scsi_debug::{self, KNOBS};

/// One 4 KiB direct read of the disk on a thread of its own (it blocks through error handling).
fn read_in_background(node: std::path::PathBuf) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&node)
            .map_err(|e| e.to_string())?;
        #[repr(C, align(4096))]
        struct Block([u8; 4096]);
        let mut block = Box::new(Block([0; 4096]));
        file.read_exact(&mut block.0).map_err(|e| e.to_string())
    })
}

fn wait_for(
    watch: &scsi_watch::ScsiWatch,
    seen: &mut Vec<ScsiEvent>,
    limit: Duration,
    done: impl Fn(&ScsiEvent) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let new = watch.drain();
        let hit = new.iter().any(&done);
        seen.extend(new);
        if hit {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn host_to(to: &'static str) -> impl Fn(&ScsiEvent) -> bool {
    move |e| matches!(&e.kind, ScsiEventKind::HostState { to: t, .. } if t == to)
}

pub fn scsi_watch(env: &GuestEnv) -> Result<serde_json::Value, String> {
    let disk = scsi_debug::load(env)?;
    let logging = "/proc/sys/dev/scsi/logging_level";
    let logging_exists = std::path::Path::new(logging).exists();
    let logging_set = scsi_debug::write(logging, "511").is_ok();
    scsi_debug::write(disk.attr("timeout"), "2")?;
    scsi_debug::write(disk.attr("eh_timeout"), "2")?;
    let hctl = scsi_watch::classify::parse_hctl(&disk.hctl).ok_or("bad H:C:T:L")?;
    let clock = MonoClock::starting_now();
    let watch = scsi_watch::ScsiWatch::start(WatchSpec {
        hosts: vec![disk.host],
        devices: vec![hctl],
        interval: Duration::from_millis(20),
        clock,
    })
    .map_err(|e| e.to_string())?;
    let mut seen = Vec::new();

    // Phase 1: into recovery, then the disk answers again.
    scsi_debug::write(format!("{KNOBS}/statistics"), "1")?;
    scsi_debug::write(format!("{KNOBS}/every_nth"), "1")?;
    // Timeouts, and the driver's notes of aborts and resets.
    scsi_debug::write(format!("{KNOBS}/opts"), &format!("{}", 0x4 | 0x2000))?;
    let read1 = read_in_background(disk.node());
    let recovered = wait_for(
        &watch,
        &mut seen,
        Duration::from_secs(30),
        host_to("recovery"),
    );
    std::thread::sleep(Duration::from_millis(500));
    scsi_debug::write(format!("{KNOBS}/opts"), "0")?;
    let back = recovered
        && wait_for(
            &watch,
            &mut seen,
            Duration::from_secs(60),
            host_to("running"),
        );
    let read1 = read1.join().map_err(|_| "reader panicked")?;
    let phase1_end = seen.len();

    // Phase 2: the disk never answers: the error handler offlines it.
    scsi_debug::write(format!("{KNOBS}/opts"), &format!("{}", 0x4 | 0x2000))?;
    let read2 = read_in_background(disk.node());
    let offlined = wait_for(&watch, &mut seen, Duration::from_secs(120), |e| {
        matches!(&e.kind, ScsiEventKind::DeviceOfflined)
            || matches!(&e.kind, ScsiEventKind::DeviceState { to, .. } if to == "offline")
    });
    let _ = wait_for(
        &watch,
        &mut seen,
        Duration::from_secs(10),
        host_to("running"),
    );
    let read2 = read2.join().map_err(|_| "reader panicked")?;
    scsi_debug::ignore_commands(false)?;
    // Bring the disk back so the guest ends with nothing stuck.
    let _ = scsi_debug::write(disk.attr("state"), "running");
    std::thread::sleep(Duration::from_millis(100));
    let watched_for = clock.at(MonoClock::monotonic_now());
    let stopped = watch.stop();
    let polls = stopped.polls;
    seen.extend(stopped.events);
    // Lines the SCSI core's error-handler logging would print with logging_level raised.
    let log = rig::guest::init::read_kernel_log();
    let eh_logging_lines = log
        .lines()
        .filter(|l| {
            [
                "abort scheduled",
                "cmd abort",
                "Sending BDR",
                "scsi_eh_",
                "aborting command",
            ]
            .iter()
            .any(|m| l.contains(m))
        })
        .count();
    seen.sort_by_key(|e| e.at);
    let episodes = scsi_watch::eh_episodes(&seen);
    let classified_lines = seen.iter().filter(|e| e.line.is_some()).count();
    Ok(json!({
        "disk": disk.hctl,
        "logging_level": { "exists": logging_exists, "set": logging_set },
        "phase1": { "recovery_seen": recovered, "running_again": back, "read": read1, "events": phase1_end },
        "phase2": { "offlined": offlined, "read": read2 },
        "episodes": episodes.iter().map(|e| json!({
            "host": e.host, "start_ms": e.start.as_secs_f64() * 1000.0,
            "length_ms": e.length().map(|l| l.as_secs_f64() * 1000.0),
            "ended_by": e.ended_by, "entered": e.entered,
        })).collect::<Vec<_>>(),
        "events": seen,
        "classified_lines": classified_lines,
        "polls": polls,
        "eh_logging_lines": eh_logging_lines,
        "watch_cpu_ms": stopped.thread_cpu.as_secs_f64() * 1000.0,
        "watched_ms": watched_for.as_secs_f64() * 1000.0,
    }))
}

pub fn check_scsi_watch(v: &serde_json::Value) -> Result<(), String> {
    let events = v["events"].as_array().cloned().unwrap_or_default();
    let short = || {
        let mut s = String::new();
        for e in &events {
            s.push_str(&format!("{}\n", e));
        }
        s
    };
    let want = |what: &str, cond: bool| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {}\n{}", v["episodes"], short()))
        }
    };
    want(
        "phase 1 entered recovery and came back",
        v["phase1"]["recovery_seen"] == true && v["phase1"]["running_again"] == true,
    )?;
    want(
        "phase 1's read succeeded once the disk answered",
        v["phase1"]["read"]["Ok"].is_null() && v["phase1"]["read"].get("Err").is_none(),
    )?;
    want("phase 2 offlined the disk", v["phase2"]["offlined"] == true)?;
    let position = |pred: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(pred);
    let recovery =
        position(&|e| e["kind"]["kind"] == "host_state" && e["kind"]["to"] == "recovery");
    let running = position(&|e| {
        e["kind"]["kind"] == "host_state"
            && e["kind"]["from"] == "recovery"
            && e["kind"]["to"] == "running"
    });
    want(
        "recovery is seen before running again",
        matches!((recovery, running), (Some(a), Some(b)) if a < b),
    )?;
    let kind_seen = |k: &str| {
        events
            .iter()
            .any(|e| e["kind"]["kind"] == k && e["line"].is_string())
    };
    want(
        "the driver's abort lines are classified",
        kind_seen("abort_issued"),
    )?;
    want("reset lines are classified", kind_seen("reset"))?;
    want(
        "the offlining line is classified",
        kind_seen("device_offlined"),
    )?;
    want(
        "the timeout counter moved",
        events
            .iter()
            .any(|e| e["kind"]["kind"] == "counter" && e["kind"]["counter"] == "timeouts"),
    )?;
    let episodes = v["episodes"].as_array().cloned().unwrap_or_default();
    want("two episodes", episodes.len() == 2)?;
    want(
        "the first ends with the host running",
        episodes[0]["ended_by"] == "running",
    )?;
    want(
        "the second ends with the disk offlined",
        episodes[1]["ended_by"].get("device_offlined").is_some(),
    )?;
    // A log line carries the kernel's time: the reset the error handler starts with lies
    // between the host leaving running (seen by a poll at most 20 ms after it) and the end.
    let first = &episodes[0];
    let (start, len) = (
        first["start_ms"].as_f64().unwrap_or(0.0),
        first["length_ms"].as_f64().unwrap_or(0.0),
    );
    let reset_in = events.iter().any(|e| {
        let at = e["at"]["secs"].as_f64().unwrap_or(0.0) * 1000.0
            + e["at"]["nanos"].as_f64().unwrap_or(0.0) / 1e6;
        e["kind"]["kind"] == "reset" && at >= start - 50.0 && at <= start + len
    });
    want("a reset line is timed inside the first episode", reset_in)?;
    want(
        "the command that timed out is classified from its result line",
        events
            .iter()
            .any(|e| e["kind"]["kind"] == "command_timeout" && e["line"].is_string()),
    )?;
    Ok(())
}
