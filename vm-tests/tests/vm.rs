//! The VM suite: every scenario in `vm-tests/scenarios/` runs in a real user-mode Linux guest,
//! must end with all its expectations held (exit 0), and its report.txt must match the snapshot.
//! Run with `cargo test --workspace` or `just vmtest`; opt out only with `PATHRIG_SKIP_VM=1`.

use std::path::Path;

use vm_tests::{run_scenario, scenario_names, skipped, GuestRun};

fn pathrig() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pathrig"))
}

/// Runs a scenario, requires exit 0, checks the report.json fields every run must have, and
/// snapshots report.txt.
fn scenario(name: &str) -> Option<GuestRun> {
    let run = scenario_without_snapshot(name)?;
    insta::assert_snapshot!(name, run.report_txt);
    Some(run)
}

/// Like [`scenario`], for the few scenarios whose timeline order is timing by nature (two flaky
/// legs interleaving): everything but the snapshot, so the test asserts its behaviour itself.
fn scenario_without_snapshot(name: &str) -> Option<GuestRun> {
    if skipped(name) {
        return None;
    }
    let run = run_scenario(pathrig(), name, &[]);
    assert_eq!(
        run.code,
        0,
        "scenario {name} did not pass:\n{}",
        run.explain()
    );
    check_json_shape(&run);
    Some(run)
}

fn check_json_shape(run: &GuestRun) {
    let explain = || run.explain();
    assert_eq!(run.json("guest.kind"), "uml", "{}", explain());
    assert!(run
        .json("guest.kernel_release")
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(run.json("scenario.seed").is_u64());
    assert!(run
        .json("maps.0.table")
        .as_str()
        .unwrap()
        .contains(" multipath "));
    assert!(run
        .json("maps.0.final_status")
        .as_str()
        .unwrap()
        .contains(" multipath "));
    for key in ["leg", "device", "final_state", "fail_count"] {
        assert!(
            !run.json(&format!("maps.0.paths.0.{key}")).is_null(),
            "maps[].paths[].{key} missing"
        );
    }
    for key in [
        "reads",
        "writes",
        "app_errors",
        "verified_blocks",
        "mismatches",
        "latency_us.p50",
        "latency_us.p99",
        "latency_us.max",
    ] {
        assert!(
            run.json(&format!("workload.{key}")).is_u64(),
            "workload.{key} missing"
        );
    }
    let events = run.json("events").as_array().expect("events[]");
    assert!(events
        .iter()
        .all(|e| e["t_ms"].is_f64() && e["source"].is_string() && e["what"].is_string()));
    let times: Vec<f64> = events.iter().map(|e| e["t_ms"].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events are not in time order"
    );
    assert!(run
        .json("expectations")
        .as_array()
        .is_some_and(|e| e.iter().all(|x| x["held"] == true)));
    assert_eq!(run.json("verdict"), "pass");
}

fn timeline(run: &GuestRun) -> Vec<(f64, String, String)> {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["in_timeline"] == true)
        .map(|e| {
            (
                e["t_ms"].as_f64().unwrap(),
                e["source"].as_str().unwrap().to_string(),
                e["what"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn first(run: &GuestRun, what: &str) -> f64 {
    timeline(run)
        .into_iter()
        .find(|(_, _, w)| w.contains(what))
        .unwrap_or_else(|| panic!("no event {what:?}:\n{}", run.explain()))
        .0
}

/// Like [`first`], over every event of report.json, those outside the text timeline too.
fn first_in_json(run: &GuestRun, what: &str) -> f64 {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"].as_str().unwrap().contains(what))
        .unwrap_or_else(|| panic!("no event {what:?}:\n{}", run.explain()))["t_ms"]
        .as_f64()
        .unwrap()
}

#[test]
fn healthy() {
    let Some(run) = scenario("healthy") else {
        return;
    };
    assert_eq!(run.json("workload.app_errors"), 0);
    assert!(run.json("workload.verified_blocks").as_u64().unwrap() > 0);
}

#[test]
fn leg_fails_and_returns() {
    let Some(run) = scenario("leg-fails-and-returns") else {
        return;
    };
    // The fault is applied at 2 s and the kernel fails the path after it, not before.
    let fault = first(&run, "a: fail");
    assert!(
        (1990.0..2500.0).contains(&fault),
        "fault applied at {fault} ms"
    );
    assert!(first(&run, "path a failed") >= fault);
    // The manager's checker reinstates a within polling_interval + checker_timeout of the restore.
    let restore = first(&run, "a: restore");
    let reinstate = first(&run, "reinstate_path a");
    assert!(
        reinstate >= restore && reinstate - restore < 2500.0,
        "restore {restore} ms, reinstate {reinstate} ms"
    );
    assert_eq!(source_of(&run, "reinstate_path a"), "manager");
    assert!(first(&run, "path a reinstated") >= reinstate);
}

/// The source of the first timeline event whose text contains `what`.
fn source_of(run: &GuestRun, what: &str) -> String {
    timeline(run)
        .into_iter()
        .find(|(_, _, w)| w.contains(what))
        .map(|(_, s, _)| s)
        .unwrap_or_default()
}

fn count(run: &GuestRun, what: &str) -> usize {
    timeline(run)
        .iter()
        .filter(|(_, _, w)| w.contains(what))
        .count()
}

/// The group the kernel uses at the end (1-based), from the final status line.
fn final_group(run: &GuestRun) -> u64 {
    let status = run
        .json("maps.0.final_status")
        .as_str()
        .unwrap()
        .to_string();
    let words: Vec<&str> = status.split_whitespace().collect();
    // start length multipath 2 <queue_io> <pg_init_count> 0 <groups> <current group> ...
    words[8].parse().unwrap()
}

#[test]
fn failback_immediate() {
    let Some(run) = scenario("failback-immediate") else {
        return;
    };
    assert_eq!(count(&run, "switch_group 1"), 1, "{}", run.explain());
    assert!(first(&run, "switch_group 1") >= first(&run, "reinstate_path a"));
    assert_eq!(final_group(&run), 1);
}

#[test]
fn failback_manual() {
    let Some(run) = scenario("failback-manual") else {
        return;
    };
    assert_eq!(count(&run, "switch_group"), 0, "{}", run.explain());
    assert!(first(&run, "reinstate_path a") > first(&run, "a: restore"));
    // IO stays on the secondary group.
    assert_eq!(final_group(&run), 2);
}

#[test]
fn failback_deferred() {
    let Some(run) = scenario("failback-deferred") else {
        return;
    };
    let waited = first(&run, "switch_group 1") - first(&run, "reinstate_path a");
    assert!(
        (2900.0..3700.0).contains(&waited),
        "switched back {waited} ms after reinstating:\n{}",
        run.explain()
    );
    assert_eq!(final_group(&run), 1);
}

#[test]
fn failback_followover() {
    let Some(run) = scenario("failback-followover") else {
        return;
    };
    // The trespass moved IO to group 2 and did not make the manager fail back...
    assert_eq!(count(&run, "switch_group"), 1, "{}", run.explain());
    assert!(
        first_in_json(&run, "switched to path group 2") < first(&run, "a1: fail (every IO errors)")
    );
    // ...the real failure and a1's return did.
    let switch = first(&run, "switch_group 1");
    assert!(switch > first(&run, "a1: restore"), "{}", run.explain());
    assert!(run
        .report_txt
        .contains("failback followover: path a1 came back"));
    assert_eq!(final_group(&run), 1);
}

#[test]
fn no_path_retry_count() {
    let Some(run) = scenario("no-path-retry-count") else {
        return;
    };
    let no_path = first(&run, "no usable path left");
    let stop_queueing = first(&run, "fail_if_no_path");
    let countdown = stop_queueing - no_path;
    assert!(
        (2500.0..4500.0).contains(&countdown),
        "queued for {countdown} ms:\n{}",
        run.explain()
    );
    // Application errors appear only after the countdown.
    let first_error = run.json("workload.first_error_ms").as_f64().unwrap();
    assert!(
        first_error >= stop_queueing - 50.0,
        "first error at {first_error} ms, countdown ended at {stop_queueing} ms"
    );
    assert!(first(&run, "queue_if_no_path") > first(&run, "b: restore"));
}

#[test]
fn checker_finds_idle_dead_path() {
    let Some(run) = scenario("checker-finds-idle-dead-path") else {
        return;
    };
    // Nothing but the checker touches b: the manager fails it within polling_interval (1 s) +
    // checker_timeout (1 s), plus scheduling slack.
    let detected = first(&run, "fail_path b") - first(&run, "b: fail");
    assert!(
        (0.0..2500.0).contains(&detected),
        "failed {detected} ms after the fault"
    );
    assert_eq!(source_of(&run, "fail_path b"), "manager");
    assert!(first(&run, "path b failed") >= first(&run, "fail_path b"));
}

#[test]
fn flapping_path_damped() {
    let Some(run) = scenario("flapping-path-damped") else {
        return;
    };
    let held = first(&run, "held back for 4s");
    let back = first(
        &run,
        "san_path_err: held back for 4s and the checker still finds it up",
    );
    assert!(
        back - held >= 3900.0,
        "held at {held} ms, reinstated at {back} ms"
    );
    // While held back, the flapping path is not reinstated.
    let reinstates_while_held = timeline(&run)
        .iter()
        .filter(|(t, _, w)| *t > held && *t < back && w.contains("reinstate_path a"))
        .count();
    assert_eq!(reinstates_while_held, 0, "{}", run.explain());
}

#[test]
fn all_legs_fail_queue() {
    let Some(run) = scenario("all-legs-fail-queue") else {
        return;
    };
    let stall = &run.json("workload.stalls")[0];
    // The stall lasts from b's failure (3 s) to its return (6 s).
    let length = stall["length_ms"].as_f64().unwrap();
    assert!(
        (2000.0..5000.0).contains(&length),
        "stall of {length} ms:\n{}",
        run.explain()
    );
}

#[test]
fn all_legs_fail_no_queue() {
    let Some(run) = scenario("all-legs-fail-no-queue") else {
        return;
    };
    // Errors begin only once the last path failed.
    let first_error = run.json("workload.first_error_ms").as_f64().unwrap();
    assert!(
        first_error >= first(&run, "path b failed") - 50.0,
        "{}",
        run.explain()
    );
}

#[test]
fn slow_leg() {
    let Some(run) = scenario("slow-leg") else {
        return;
    };
    let slow = run.json("workload.latency_buckets.1.1").as_u64().unwrap();
    assert!(
        slow > 0,
        "no IO in the 100 ms to 1 s bucket:\n{}",
        run.explain()
    );
}

/// Every event, in or out of the timeline, as (t_ms, source, what).
fn all_events(run: &GuestRun) -> Vec<(f64, String, String)> {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["t_ms"].as_f64().unwrap(),
                e["source"].as_str().unwrap().to_string(),
                e["what"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The times of the timeline events whose text contains `what`.
fn times_of(run: &GuestRun, what: &str) -> Vec<f64> {
    timeline(run)
        .into_iter()
        .filter(|(_, _, w)| w.contains(what))
        .map(|(t, _, _)| t)
        .collect()
}

/// The mismatch details of report.json: (t_ms, lba, detail).
fn mismatches(run: &GuestRun) -> Vec<(f64, u64, String)> {
    run.json("workload.mismatch_details")
        .as_array()
        .expect("mismatch_details[]")
        .iter()
        .map(|m| {
            (
                m["t_ms"].as_f64().unwrap(),
                m["lba"].as_u64().unwrap(),
                m["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn bad_sector_range() {
    let Some(run) = scenario("bad-sector-range") else {
        return;
    };
    // While the fault lasts, leg a is linear + error + linear: 64 KiB broken at 1840 KiB.
    let table = all_events(&run)
        .into_iter()
        .find(|(_, s, w)| s == "rig" && w.contains("leg-a table live") && w.contains(" error"))
        .unwrap_or_else(|| panic!("no error_range table:\n{}", run.explain()))
        .2;
    assert!(
        table.ends_with(
            "table live: 0 3680 linear 7:0 0\n3680 128 error\n3808 127264 linear 7:0 3808"
        ),
        "{table}"
    );
    // The kernel fails a once, when the sequential workload reaches block 460 (about 2.3 s),
    // not when the fault is applied (1.5 s).
    let failed = times_of(&run, "path a failed");
    assert_eq!(failed.len(), 1, "{}", run.explain());
    assert!(
        (2200.0..2700.0).contains(&failed[0]),
        "path a failed at {} ms",
        failed[0]
    );
    // The checker reads block 0, outside the range: it brings a back before the range is repaired.
    let reinstate = first(&run, "reinstate_path a");
    assert!(reinstate > failed[0] && reinstate < first(&run, "a: restore"));
    assert_eq!(run.json("workload.app_errors"), 0);
}

#[test]
fn lost_writes_after_path_switch() {
    let Some(run) = scenario("lost-writes-after-path-switch") else {
        return;
    };
    let found = mismatches(&run);
    assert!(!found.is_empty(), "{}", run.explain());
    assert_eq!(run.json("workload.mismatches"), found.len() as u64);
    for (t, lba, detail) in &found {
        // Writes are dropped from the start of the down interval, 2.5 s.
        assert!(*t >= 2400.0, "mismatch at {t} ms: {detail}");
        // Verification names each lost write and its LBA: 4 KiB blocks of a 4 MiB map.
        assert!(detail.contains("lost write"), "{detail}");
        assert!(lba % 8 == 0 && *lba < 8192, "lba {lba}");
        assert!(
            detail.starts_with(&format!("block {}: ", lba / 8)),
            "lba {lba}: {detail}"
        );
    }
    // Nothing failed: no IO error, no kernel path event.
    assert_eq!(run.json("workload.app_errors"), 0);
    assert_eq!(count(&run, "path a"), 0, "{}", run.explain());
}

#[test]
fn corrupt_reads() {
    let Some(run) = scenario("corrupt-reads") else {
        return;
    };
    let found = mismatches(&run);
    assert!(!found.is_empty(), "{}", run.explain());
    for (t, _, detail) in &found {
        assert!(*t >= 2400.0, "mismatch at {t} ms: {detail}");
        // One byte, the 100th, damaged: the CRC catches it.
        assert!(detail.contains("corrupt block (crc mismatch)"), "{detail}");
        assert!(
            detail.contains("1 of 4096 bytes differ") && detail.contains("first at offset 99"),
            "{detail}"
        );
    }
    assert_eq!(run.json("workload.app_errors"), 0);
}

#[test]
fn flapping_link() {
    let Some(run) = scenario("flapping-link") else {
        return;
    };
    let path_a = &run.json("maps.0.paths.0");
    assert_eq!(path_a["leg"], "a");
    assert_eq!(path_a["fail_count"], 3, "{}", run.explain());
    // One failure in each half-second window, one reinstatement after each window.
    let failed = times_of(&run, "path a failed");
    let reinstated = times_of(&run, "path a reinstated");
    assert_eq!(
        (failed.len(), reinstated.len()),
        (3, 3),
        "{}",
        run.explain()
    );
    for (i, start) in [1500.0, 4500.0, 7500.0].into_iter().enumerate() {
        assert!(
            (start - 10.0..start + 500.0).contains(&failed[i]),
            "window {i}: failed at {} ms",
            failed[i]
        );
        assert!(
            reinstated[i] >= start + 500.0 && reinstated[i] < start + 3000.0,
            "window {i}: reinstated at {} ms",
            reinstated[i]
        );
    }
    assert_eq!(count(&run, "window 3 of 3"), 1);
}

#[test]
fn dust_bad_blocks() {
    let Some(run) = scenario("dust-bad-blocks") else {
        return;
    };
    // Reads of block 150 (about 1.5 s) and 500 (about 5 s) fail a; block 400 (about 4 s) was
    // removed from the bad blocks at 3.25 s and does not.
    let failed = times_of(&run, "path a failed");
    assert_eq!(failed.len(), 2, "{}", run.explain());
    assert!((1400.0..1900.0).contains(&failed[0]), "{failed:?}");
    assert!((4900.0..5400.0).contains(&failed[1]), "{failed:?}");
    // The second dust fault changed the bad blocks by message, without a table swap.
    let changed = first(&run, "changed at runtime, no table swap");
    let restored = first(&run, "a: restore");
    let events = all_events(&run);
    let swaps: Vec<f64> = events
        .iter()
        .filter(|(t, s, w)| {
            s == "rig" && w.contains("leg-a table live") && *t > changed && *t < restored
        })
        .map(|(t, _, _)| *t)
        .collect();
    assert!(swaps.is_empty(), "table swaps at {swaps:?}");
    let messages: Vec<&str> = events
        .iter()
        .filter(|(t, s, _)| s == "rig" && *t >= changed && *t < restored)
        .filter_map(|(_, _, w)| w.split_once(" message: ").map(|(_, m)| m))
        .collect();
    assert_eq!(messages, ["clearbadblocks", "addbadblock 500", "quiet"]);
    assert_eq!(run.json("workload.app_errors"), 0);
}

#[test]
fn slow_writes() {
    let Some(run) = scenario("slow-writes") else {
        return;
    };
    // dm-delay's 9-argument form: reads 0 ms, writes 200 ms, flushes 0 ms.
    assert!(all_events(&run).iter().any(|(_, s, w)| s == "rig"
        && w.ends_with("table live: 0 131072 delay 7:0 0 0 7:0 0 200 7:0 0 0")));
    let reads = run.json("workload.reads").as_u64().unwrap();
    let writes = run.json("workload.writes").as_u64().unwrap();
    let fast = run.json("workload.latency_buckets.0.1").as_u64().unwrap();
    let slow = run.json("workload.latency_buckets.1.1").as_u64().unwrap();
    // The slow IOs are the writes of the 7 s of the 8 s run that are delayed, and only they:
    // every read is fast.
    assert!(
        slow <= writes && slow * 4 >= writes * 3,
        "{slow} slow IOs, {writes} writes:\n{}",
        run.explain()
    );
    assert!(fast >= reads, "{fast} fast IOs, {reads} reads");
    assert!(run.json("workload.latency_us.p50").as_u64().unwrap() < 100_000);
}

#[test]
fn a_failed_run_leaves_nothing_behind() {
    if skipped("a_failed_run_leaves_nothing_behind") {
        return;
    }
    // The rig breaks at 4 s, in the middle of the run, while IO is queued on a map with no path.
    let run = run_scenario(
        pathrig(),
        "all-legs-fail-queue",
        &[("PATHRIG_FAIL_AT", "4s")],
    );
    assert_eq!(run.code, 3, "{}", run.explain());
    let error = std::fs::read_to_string(run.run_dir.join("error.txt")).unwrap_or_default();
    assert!(
        error.contains("injected rig failure at 4000 ms"),
        "{error}\n{}",
        run.explain()
    );
    assert!(
        error.contains("left behind: nothing"),
        "{error}\n{}",
        run.explain()
    );
    assert!(!run.run_dir.join("report.json").exists());
}

#[test]
fn every_scenario_file_has_a_test() {
    let tested = [
        "all-legs-fail-no-queue",
        "all-legs-fail-queue",
        "bad-sector-range",
        "checker-finds-idle-dead-path",
        "corrupt-reads",
        "dust-bad-blocks",
        "failback-deferred",
        "failback-followover",
        "failback-immediate",
        "failback-manual",
        "flapping-link",
        "flapping-path-damped",
        "fuse-corrupt-reads",
        "fuse-lost-writes",
        "healthy",
        "hung-path",
        "intermittent-read-errors",
        "leg-fails-and-returns",
        "lost-writes-after-path-switch",
        "marginal-both-legs",
        "marginal-flaky-5pct",
        "marginal-noise-ok",
        "marginal-pathgroup-on",
        "marginal-recovers",
        "no-path-retry-count",
        "slow-leg",
        "slow-path-long-tail",
        "slow-writes",
    ];
    assert_eq!(
        scenario_names(),
        tested,
        "add a test for each new scenario file"
    );
}

/// The FUSE server's count `what` on leg (path index) `path` of the first map.
fn fuse_count(run: &GuestRun, path: usize, what: &str) -> u64 {
    run.json(&format!("maps.0.paths.{path}.fuse_faults.{what}"))
        .as_u64()
        .unwrap_or_else(|| panic!("no FUSE count {what} on path {path}:\n{}", run.explain()))
}

#[test]
fn intermittent_read_errors() {
    let Some(run) = scenario("intermittent-read-errors") else {
        return;
    };
    // The server injected errors; the kernel failed the path once and hid them from the
    // application; nothing else was injected.
    assert!(fuse_count(&run, 0, "errors") > 0);
    assert_eq!(
        fuse_count(&run, 0, "delayed") + fuse_count(&run, 0, "lost"),
        0
    );
    assert!(first(&run, "path a failed") > first(&run, "a: errno EIO"));
    assert!(first(&run, "path a reinstated") > first(&run, "a: end of the FUSE fault"));
}

#[test]
fn hung_path() {
    let Some(run) = scenario("hung-path") else {
        return;
    };
    assert!(fuse_count(&run, 0, "hung") > 0);
    // A hang is no error: only the checker's timeout fails the path, within
    // polling_interval + checker_timeout (+ slack).
    let detected = first(&run, "fail_path a") - first(&run, "a: hang");
    assert!(
        (0.0..2600.0).contains(&detected),
        "failed {detected} ms after the hang began:\n{}",
        run.explain()
    );
    assert!(
        run.report_txt
            .contains("no answer within checker_timeout 1s"),
        "{}",
        run.explain()
    );
    let stall = run.json("workload.stalls.0.length_ms").as_f64().unwrap();
    assert!(stall >= 900.0, "stall of {stall} ms");
}

#[test]
fn slow_path_long_tail() {
    let Some(run) = scenario("slow-path-long-tail") else {
        return;
    };
    assert!(fuse_count(&run, 0, "delayed") > 0);
    let slow = run.json("workload.latency_buckets.1.1").as_u64().unwrap();
    let fast = run.json("workload.latency_buckets.0.1").as_u64().unwrap();
    // A tail: some IOs wait 100 ms or more, most do not.
    assert!(slow > 0 && fast > 50 * slow, "fast {fast}, slow {slow}");
}

#[test]
fn fuse_lost_writes() {
    let Some(run) = scenario("fuse-lost-writes") else {
        return;
    };
    assert!(fuse_count(&run, 0, "lost") > 0);
    // `mismatches` requires every record to carry its time, LBA and detail.
    let details = mismatches(&run);
    assert!(!details.is_empty());
    assert!(
        details.iter().all(|(_, _, d)| d.contains("lost write")),
        "{details:?}"
    );
    // Nothing was lost before the fault began.
    assert!(details.iter().all(|(t, _, _)| *t > 2500.0));
}

#[test]
fn fuse_corrupt_reads() {
    let Some(run) = scenario("fuse-corrupt-reads") else {
        return;
    };
    assert!(fuse_count(&run, 0, "corrupted") > 0);
    let details = mismatches(&run);
    assert!(!details.is_empty());
    // Damage to a written block breaks its checksum ("corrupt"); damage to a never-written
    // (zero) block shows as data nobody wrote ("garbage"). Never a lost write.
    assert!(
        details.iter().any(|(_, _, d)| d.contains("corrupt")),
        "{details:?}"
    );
    assert!(
        details.iter().all(|(_, _, d)| !d.contains("lost write")),
        "{details:?}"
    );
}

#[test]
fn marginal_flaky_5pct() {
    let Some(run) = scenario("marginal-flaky-5pct") else {
        return;
    };
    let trigger = first(&run, "sampling it for 2s");
    // Two kernel failures came before the trigger, and none of the checker's reinstatements after.
    assert_eq!(
        timeline(&run)
            .iter()
            .filter(|(t, _, w)| *t < trigger && w.contains("path a failed"))
            .count(),
        2
    );
    assert!(
        timeline(&run)
            .iter()
            .all(|(t, _, w)| *t < trigger || !w.contains("reinstate_path a")),
        "{}",
        run.explain()
    );
    assert!(count(&run, "sample bad") >= 1);
    assert_eq!(run.json("maps.0.paths.0.checker"), "marginal");
}

#[test]
fn marginal_recovers() {
    let Some(run) = scenario("marginal-recovers") else {
        return;
    };
    let bad = first(&run, "sample bad");
    let good = first(&run, "sample good");
    assert!(
        bad < first(&run, "a: end of the FUSE fault")
            && good > first(&run, "a: end of the FUSE fault")
    );
    // The kernel reinstates a only after the good verdict (the checker's early reinstatements,
    // before the trigger, do not count).
    assert!(timeline(&run)
        .iter()
        .any(|(t, _, w)| *t >= good && w.contains("path a reinstated")));
    assert!(!timeline(&run)
        .iter()
        .any(|(t, _, w)| *t > bad && *t < good && w.contains("reinstate_path a")));
}

#[test]
fn marginal_noise_ok() {
    let Some(run) = scenario("marginal-noise-ok") else {
        return;
    };
    assert_eq!(count(&run, "marginal_path"), 0, "{}", run.explain());
    assert_eq!(count(&run, "path a failed"), 1);
}

#[test]
fn marginal_pathgroup_on() {
    let Some(run) = scenario("marginal-pathgroup-on") else {
        return;
    };
    let moved = first(&run, "path a moves to group 2");
    assert!(moved > first(&run, "sample bad"));
    assert!(first(&run, "reinstated in group 2") >= moved);
    // The live table now has the marginal group, used last.
    let table = run.json("maps.0.table").as_str().unwrap();
    assert!(table.contains(" 0 2 1 round-robin "), "{table}");
}

#[test]
fn marginal_both_legs() {
    let Some(run) = scenario_without_snapshot("marginal-both-legs") else {
        return;
    };
    // Both legs were flaky, yet the map was never left without a path for long: whenever the
    // kernel lost the last one, a usable path was back within a polling interval (+ slack).
    let events = timeline(&run);
    for (t, _, w) in events
        .iter()
        .filter(|(_, _, w)| w.contains("no usable path left"))
    {
        let back = events
            .iter()
            .find(|(u, _, x)| u > t && x.contains("a usable path is back"))
            .unwrap_or_else(|| panic!("no path came back after {w} at {t} ms:\n{}", run.explain()));
        assert!(back.0 - t < 1600.0, "no path for {} ms", back.0 - t);
    }
    assert!(fuse_count(&run, 0, "errors") > 0 && fuse_count(&run, 1, "errors") > 0);
}
