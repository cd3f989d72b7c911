//! Probe `tur-checker`: the `tur` checker against a scsi_debug disk — up, a unit attention
//! retried, a stopped unit not ready, and a TUR the target never answers timing out within
//! `checker_timeout` while a read on the same ring completes.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rig::checker::tur;
use rig::checker::{CheckOutcome, CheckerRing, Completed};
use rig::guest::init::GuestEnv;
use serde_json::json;

use super::scsi_debug::{self, KNOBS};

const TIMEOUT: Duration = Duration::from_secs(1);

fn wait_all(
    ring: &mut CheckerRing<&'static str>,
    count: usize,
    limit: Duration,
) -> Vec<(Completed<&'static str>, f64)> {
    let start = Instant::now();
    let mut all = Vec::new();
    while all.len() < count && start.elapsed() < limit {
        let mut fds = [libc::pollfd {
            fd: ring.event_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 10) };
        let now = Instant::now();
        let collected = ring.collect(now);
        // Taken after the collection, so an answer is never dated before the ring saw it.
        let at = now.duration_since(start).as_secs_f64() * 1000.0;
        all.extend(collected.into_iter().map(|c| (c, at)));
    }
    all
}

fn one_tur(ring: &mut CheckerRing<&'static str>, node: &Path) -> Result<serde_json::Value, String> {
    ring.start_tur("tur", node, TIMEOUT);
    let done = wait_all(ring, 1, Duration::from_secs(5));
    let (c, _) = done.first().ok_or("no answer in 5 s")?;
    Ok(outcome_json(&c.outcome, c.latency))
}

fn outcome_json(outcome: &CheckOutcome, latency: Duration) -> serde_json::Value {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match outcome {
        CheckOutcome::Tur(o) => json!({
            "verdict": o.verdict, "attempts": o.attempts, "reply": o.reply,
            "detail": o.detail(), "latency_ms": latency_ms }),
        other => json!({ "other": format!("{other:?}"), "latency_ms": latency_ms }),
    }
}

fn start_stop(node: &Path, start: bool) -> Result<(), String> {
    let file = File::open(node).map_err(|e| e.to_string())?;
    let cdb = [0x1b, 0, 0, 0, u8::from(start), 0];
    let reply =
        tur::send_no_data(&file, &cdb, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    if reply.not_ok {
        return Err(format!("START STOP UNIT start={start}: {reply:?}"));
    }
    Ok(())
}

pub fn tur_checker(env: &GuestEnv) -> Result<serde_json::Value, String> {
    env.modules.load(&["loop"]).map_err(|e| e.to_string())?;
    let disk = scsi_debug::load(env)?;
    let node = disk.node();
    let mut ring: CheckerRing<&'static str> = CheckerRing::new(8).map_err(|e| e.to_string())?;

    let up = one_tur(&mut ring, &node)?;

    // A capacity change raises a unit attention on the next command: retried, then up.
    scsi_debug::write(format!("{KNOBS}/virtual_gb"), "1")?;
    let after_unit_attention = one_tur(&mut ring, &node)?;

    start_stop(&node, false)?;
    let stopped = one_tur(&mut ring, &node)?;
    start_stop(&node, true)?;
    let started_again = one_tur(&mut ring, &node)?;

    // A read on the same ring, to show a held TUR blocks nobody: a loop device over tmpfs.
    let dir = Path::new("/run/pathrig-tur");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let backing = dir.join("disk");
    rig::backing::create_backing_file(&backing, 1 << 20).map_err(|e| e.to_string())?;
    let lo = rig::backing::attach_loop(&backing).map_err(|e| e.to_string())?;
    let held = (|| {
        scsi_debug::ignore_commands(true)?;
        let started = Instant::now();
        ring.start_tur("held tur", &node, TIMEOUT);
        ring.start("read elsewhere", &lo.path, TIMEOUT);
        let done = wait_all(&mut ring, 2, Duration::from_secs(5));
        let returned_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The held TUR's thread is still in the kernel: the next check of the node answers at
        // once, without a second thread.
        ring.start_tur("next tur", &node, TIMEOUT);
        let next = wait_all(&mut ring, 1, Duration::from_secs(5));
        let in_flight_while_stuck = ring.in_flight();
        scsi_debug::ignore_commands(false)?;
        // The worker thread is still in the kernel until error handling ends the TUR.
        let end = Instant::now() + Duration::from_secs(60);
        while ring.in_flight() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
            ring.collect(Instant::now());
        }
        let thread_done_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok::<_, String>(json!({
            "results": done.iter().map(|(c, at)| json!({
                "key": c.key, "seen_at_ms": at, "outcome": outcome_json(&c.outcome, c.latency),
            })).collect::<Vec<_>>(),
            "collected_in_ms": returned_ms,
            "next": next.iter().map(|(c, at)| json!({
                "key": c.key, "seen_at_ms": at, "outcome": outcome_json(&c.outcome, c.latency),
            })).collect::<Vec<_>>(),
            "in_flight_while_stuck": in_flight_while_stuck,
            "worker_done_ms": thread_done_ms,
            "in_flight_after": ring.in_flight(),
            "host_state_after": disk.host_state(),
            "device_state_after": scsi_debug::read(&disk.attr("state").to_string_lossy()),
        }))
    })();
    let _ = rig::backing::detach_loop(&lo.path);
    let _ = std::fs::remove_dir_all(dir);
    let after_recovery = one_tur(&mut ring, &node)?;
    Ok(json!({
        "disk": disk.hctl, "block": disk.block,
        "up": up, "after_unit_attention": after_unit_attention,
        "stopped": stopped, "started_again": started_again,
        "held": held?, "after_recovery": after_recovery,
    }))
}

pub fn check_tur_checker(v: &serde_json::Value) -> Result<(), String> {
    let want = |what: &str, cond: bool| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v:#}"))
        }
    };
    want("a ready disk is up", v["up"]["verdict"] == "up")?;
    want(
        "a unit attention is retried, then up",
        v["after_unit_attention"]["verdict"] == "up"
            && v["after_unit_attention"]["attempts"].as_u64() >= Some(2),
    )?;
    want(
        "a stopped unit is down with NOT READY 04/02",
        v["stopped"]["verdict"] == "down"
            && v["stopped"]["reply"]["Ok"]["sense"] == json!({"key": 2, "asc": 4, "ascq": 2}),
    )?;
    want(
        "started again it is up",
        v["started_again"]["verdict"] == "up",
    )?;
    let results = v["held"]["results"].as_array().cloned().unwrap_or_default();
    let find = |key: &str| results.iter().find(|r| r["key"] == key).cloned();
    let held = find("held tur").ok_or_else(|| format!("no answer for the held TUR: {v:#}"))?;
    let read = find("read elsewhere").ok_or_else(|| format!("no answer for the read: {v:#}"))?;
    want(
        "the held TUR times out within checker_timeout + 150 ms",
        // The ring's own latency runs from submission; `seen_at_ms` starts later, when the
        // probe began waiting, so it may read a little under the timeout.
        held["outcome"]["other"] == "TimedOut"
            && held["outcome"]["latency_ms"]
                .as_f64()
                .is_some_and(|ms| (1000.0..1150.0).contains(&ms)),
    )?;
    want(
        "the read on the same ring completes while the TUR is held",
        read["outcome"]["other"] == "Up"
            && read["seen_at_ms"].as_f64().is_some_and(|ms| ms < 500.0),
    )?;
    let next = &v["held"]["next"][0];
    want(
        "a check of a node whose TUR is stuck times out at once, with no second thread",
        next["outcome"]["other"] == "TimedOut"
            && next["outcome"]["latency_ms"] == 0.0
            && v["held"]["in_flight_while_stuck"] == 1,
    )?;
    want(
        "the disk answers again after recovery",
        v["after_recovery"]["verdict"] == "up",
    )?;
    Ok(())
}
