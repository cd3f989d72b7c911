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
    // On time, and room for the backing files: neither shows.
    assert!(run.json("timeline_lag").is_null(), "{}", explain());
    // (Except where the scenario fills it on purpose.)
    let fills_scratch = run.json("scenario.name") == "scratch-space-full";
    assert!(
        fills_scratch || run.json("guest.scratch_full").is_null(),
        "{}",
        explain()
    );
    assert!(run
        .json("guest.kernel_release")
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(run.json("scenario.seed").is_u64());
    // report.html next to report.txt (its content is checked in a browser by report_html.rs).
    let html = std::fs::read_to_string(run.run_dir.join("report.html")).unwrap_or_default();
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "no report.html:\n{}",
        explain()
    );
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
    // `workload` is the first of `workloads`, each named by its map.
    let workloads = run.json("workloads").as_array().expect("workloads[]");
    assert_eq!(run.json("workload"), &workloads[0]);
    assert!(workloads.iter().all(|w| w["map"].is_string()));
    // Every path of every map was sampled, and the paths carried the workload's IO.
    let paths: usize = run
        .json("maps")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["paths"].as_array().map_or(0, Vec::len))
        .sum();
    let path_io = run.json("path_io").as_array().expect("path_io[]");
    assert_eq!(path_io.len(), paths, "{}", explain());
    let sampled: u64 = path_io
        .iter()
        .flat_map(|p| p["samples"].as_array().unwrap())
        .map(|s| s["reads"].as_u64().unwrap() + s["writes"].as_u64().unwrap())
        .sum();
    assert!(sampled > 0, "no IO on any path:\n{}", explain());
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

/// What a test looks for among report.json's typed events (their `kind` and fields, never
/// their sentences).
#[derive(Debug, Clone, Copy)]
enum On<'a> {
    /// A fault of this kind (`fault.kind`: "fail", "errno", "hang", ...) took effect on a leg.
    Fault(&'a str, &'a str),
    /// A leg's fault ended: a `restore`, the end of a window, or a FUSE restore.
    Restored(&'a str),
    /// The end of a FUSE fault's window on a leg.
    FuseWindowEnded(&'a str),
    /// The end of a SCSI fault's window on a leg.
    ScsiWindowEnded(&'a str),
    /// A repeating fault taking effect in window `n` of `of`.
    Window(u64, u64),
    /// A dust leg's bad blocks changed by messages.
    DustChanged,
    /// A kernel path event (`path_failed`, `path_reinstated`, ...) on a leg.
    Kernel(&'a str, &'a str),
    /// A map-level event without a leg (`no_usable_path`, `usable_path_back`,
    /// `group_switched`, `queue_flushed`).
    Map(&'a str),
    /// The kernel switched to group N (1-based; report.json only).
    KernelGroup(u64),
    /// A path manager action (`fail_path`, `reinstate_path`, `switch_group`,
    /// `queue_if_no_path`, `fail_if_no_path`, `regroup`, `note`), on a leg if given.
    Action(&'a str, Option<&'a str>),
    /// The manager switched to group N (1-based).
    SwitchTo(u64),
    /// A manager action whose reason is this variant of the manager's `Reason`.
    Reason(&'a str),
    /// A manager action whose reason is any marginal-path reason.
    AnyMarginalReason,
    /// Any kernel or manager event about a leg.
    AboutLeg(&'a str),
}

/// The manager action's fields (`{"fail_path": {...}}` → the inner object) and its name.
fn action(e: &serde_json::Value) -> Option<(&str, &serde_json::Value)> {
    let object = e.get("action")?.as_object()?;
    object.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn reason_name(e: &serde_json::Value) -> Option<&str> {
    let (_, fields) = action(e)?;
    fields
        .get("reason")?
        .as_object()?
        .keys()
        .next()
        .map(|k| k.as_str())
}

fn matches(e: &serde_json::Value, on: On) -> bool {
    let kind = e["kind"].as_str().unwrap_or_default();
    let leg = e["leg"].as_str();
    match on {
        On::Fault(l, k) => {
            kind == "fault" && leg == Some(l) && e["change"] == "applied" && e["fault"]["kind"] == k
        }
        On::Restored(l) => {
            kind == "fault"
                && leg == Some(l)
                && (e["change"] == "window_ended"
                    || e["change"] == "fuse_restored"
                    || (e["change"] == "applied" && e["fault"]["kind"] == "restore"))
        }
        On::FuseWindowEnded(l) => {
            kind == "fault" && leg == Some(l) && e["change"] == "fuse_window_ended"
        }
        On::ScsiWindowEnded(l) => {
            kind == "fault" && leg == Some(l) && e["change"] == "scsi_window_ended"
        }
        On::Window(n, of) => {
            kind == "fault"
                && e["change"] == "applied"
                && e["window"]["n"] == n
                && e["window"]["of"] == of
        }
        On::DustChanged => kind == "fault" && e["change"] == "dust_changed",
        On::Kernel(k, l) => kind == k && leg == Some(l),
        On::Map(k) => kind == k,
        On::KernelGroup(g) => kind == "group_switched" && e["group"] == g,
        On::Action(a, l) => {
            kind == "manager"
                && action(e).is_some_and(|(name, _)| name == a)
                && l.is_none_or(|l| leg == Some(l))
        }
        On::SwitchTo(g) => {
            kind == "manager"
                && action(e).is_some_and(|(name, f)| name == "switch_group" && f["group"] == g - 1)
        }
        On::Reason(r) => kind == "manager" && reason_name(e) == Some(r),
        On::AnyMarginalReason => {
            kind == "manager" && reason_name(e).is_some_and(|r| r.starts_with("Marginal"))
        }
        On::AboutLeg(l) => {
            leg == Some(l)
                && matches!(
                    kind,
                    "path_failed" | "path_reinstated" | "path_failed_and_reinstated" | "manager"
                )
        }
    }
}

/// The timeline's events (those report.txt shows), in order.
fn timeline(run: &GuestRun) -> Vec<&serde_json::Value> {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["in_timeline"] == true)
        .collect()
}

fn t_ms(e: &serde_json::Value) -> f64 {
    e["t_ms"].as_f64().unwrap()
}

/// Every event of report.json of one kind (in or out of the timeline), in order.
fn all_of<'r>(run: &'r GuestRun, kind: &str) -> Vec<&'r serde_json::Value> {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// The time of the first timeline event that matches.
fn first(run: &GuestRun, on: On) -> f64 {
    timeline(run)
        .into_iter()
        .find(|e| matches(e, on))
        .map(t_ms)
        .unwrap_or_else(|| panic!("no event {on:?}:\n{}", run.explain()))
}

/// Like [`first`], over every event of report.json, those outside the text timeline too.
fn first_in_json(run: &GuestRun, on: On) -> f64 {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .find(|e| matches(e, on))
        .map(t_ms)
        .unwrap_or_else(|| panic!("no event {on:?}:\n{}", run.explain()))
}

/// The times of the timeline events that match.
fn times_of(run: &GuestRun, on: On) -> Vec<f64> {
    timeline(run)
        .into_iter()
        .filter(|e| matches(e, on))
        .map(t_ms)
        .collect()
}

fn count(run: &GuestRun, on: On) -> usize {
    times_of(run, on).len()
}

/// How many timeline events match strictly between two times.
fn count_between(run: &GuestRun, on: On, after: f64, before: f64) -> usize {
    times_of(run, on)
        .into_iter()
        .filter(|t| *t > after && *t < before)
        .count()
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
fn scratch_space_full() {
    // The fail/reinstate cycles follow the checker's rhythm: timing, so no snapshot.
    let Some(run) = scenario_without_snapshot("scratch-space-full") else {
        return;
    };
    let explain = || run.explain();
    assert_eq!(
        run.json("guest.scratch_full.size_bytes"),
        24 << 20,
        "{}",
        explain()
    );
    assert_eq!(run.json("guest.scratch_full.available_bytes"), 0);
    assert!(run.json("workload.app_errors").as_u64() > Some(0));
    assert_eq!(run.json("workload.mismatches"), 0, "{}", explain());
    let causes = run.json("causes").as_array().cloned().unwrap_or_default();
    // The loop device turns the tmpfs's ENOSPC into a plain IO error, which dm-multipath takes
    // for a path error: the kernel fails both paths with no fault of the rig in force...
    let failures: Vec<_> = causes
        .iter()
        .filter(|c| c["cause"] == "kernel_failed_under_fault")
        .collect();
    assert!(!failures.is_empty(), "{}", explain());
    assert!(failures.iter().all(|c| c["fault"].is_null()), "{causes:?}");
    assert!(failures.iter().any(|c| c["leg"] == "a") && failures.iter().any(|c| c["leg"] == "b"));
    // ...and the report lays them, and the application's errors, at the full scratch space.
    let full = causes
        .iter()
        .find(|c| c["cause"] == "scratch_space_full")
        .unwrap_or_else(|| panic!("no scratch_space_full cause: {causes:?}"));
    assert_eq!(full["path"], "/run");
    assert_eq!(
        full["kernel_failures_without_fault"].as_u64(),
        Some(failures.len() as u64)
    );
    assert_eq!(full["app_errors"], run.json("workload.app_errors").clone());
}

#[test]
fn leg_fails_and_returns() {
    let Some(run) = scenario("leg-fails-and-returns") else {
        return;
    };
    // The fault is applied at 2 s and the kernel fails the path after it, not before.
    let fault = first(&run, On::Fault("a", "fail"));
    assert!(
        (1990.0..2500.0).contains(&fault),
        "fault applied at {fault} ms"
    );
    assert!(first(&run, On::Kernel("path_failed", "a")) >= fault);
    // The manager's checker reinstates a within polling_interval + checker_timeout of the restore.
    let restore = first(&run, On::Restored("a"));
    let reinstate = first(&run, On::Action("reinstate_path", Some("a")));
    assert!(
        reinstate >= restore && reinstate - restore < 2500.0,
        "restore {restore} ms, reinstate {reinstate} ms"
    );
    // The manager reinstated it, not the rig's stand-in.
    assert_eq!(count(&run, On::Kernel("rig_reinstated", "a")), 0);
    assert!(first(&run, On::Kernel("path_reinstated", "a")) >= reinstate);
}

/// The group the kernel uses at the end (1-based), as the report carries it.
fn final_group(run: &GuestRun) -> u64 {
    run.json("maps.0.final_group").as_u64().unwrap()
}

#[test]
fn failback_immediate() {
    let Some(run) = scenario("failback-immediate") else {
        return;
    };
    assert_eq!(count(&run, On::SwitchTo(1)), 1, "{}", run.explain());
    assert!(first(&run, On::SwitchTo(1)) >= first(&run, On::Action("reinstate_path", Some("a"))));
    assert_eq!(final_group(&run), 1);
}

#[test]
fn failback_manual() {
    let Some(run) = scenario("failback-manual") else {
        return;
    };
    assert_eq!(
        count(&run, On::Action("switch_group", None)),
        0,
        "{}",
        run.explain()
    );
    assert!(first(&run, On::Action("reinstate_path", Some("a"))) > first(&run, On::Restored("a")));
    // IO stays on the secondary group.
    assert_eq!(final_group(&run), 2);
}

#[test]
fn failback_deferred() {
    let Some(run) = scenario("failback-deferred") else {
        return;
    };
    let waited =
        first(&run, On::SwitchTo(1)) - first(&run, On::Action("reinstate_path", Some("a")));
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
    assert_eq!(
        count(&run, On::Action("switch_group", None)),
        1,
        "{}",
        run.explain()
    );
    assert!(first_in_json(&run, On::KernelGroup(2)) < first(&run, On::Fault("a1", "fail")));
    // ...the real failure and a1's return did.
    let switch = first(&run, On::SwitchTo(1));
    assert!(
        switch > first(&run, On::Restored("a1")),
        "{}",
        run.explain()
    );
    // The followover rule did it, for a1.
    let followover = timeline(&run)
        .into_iter()
        .find(|e| matches(e, On::Reason("FailbackFollowover")))
        .unwrap_or_else(|| panic!("no followover failback:\n{}", run.explain()));
    let (_, fields) = action(followover).unwrap();
    assert_eq!(fields["reason"]["FailbackFollowover"]["leg"], "a1");
    assert_eq!(final_group(&run), 1);
}

#[test]
fn no_path_retry_count() {
    let Some(run) = scenario("no-path-retry-count") else {
        return;
    };
    let no_path = first(&run, On::Map("no_usable_path"));
    let stop_queueing = first(&run, On::Action("fail_if_no_path", None));
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
    assert!(first(&run, On::Action("queue_if_no_path", None)) > first(&run, On::Restored("b")));
}

#[test]
fn checker_finds_idle_dead_path() {
    let Some(run) = scenario("checker-finds-idle-dead-path") else {
        return;
    };
    // Nothing but the checker touches b: the manager fails it within polling_interval (1 s) +
    // checker_timeout (1 s), plus scheduling slack.
    let detected =
        first(&run, On::Action("fail_path", Some("b"))) - first(&run, On::Fault("b", "fail"));
    assert!(
        (0.0..2500.0).contains(&detected),
        "failed {detected} ms after the fault"
    );

    assert!(
        first(&run, On::Kernel("path_failed", "b"))
            >= first(&run, On::Action("fail_path", Some("b")))
    );
}

#[test]
fn flapping_path_damped() {
    let Some(run) = scenario("flapping-path-damped") else {
        return;
    };
    let held = first(&run, On::Reason("DampingHeld"));
    let back = first(&run, On::Reason("DampingRecovered"));
    assert!(
        back - held >= 3900.0,
        "held at {held} ms, reinstated at {back} ms"
    );
    // While held back, the flapping path is not reinstated.
    let reinstates_while_held =
        count_between(&run, On::Action("reinstate_path", Some("a")), held, back);
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
    let Some(run) = scenario_without_snapshot("all-legs-fail-no-queue") else {
        return;
    };
    // The slowest IO is the one held across a leg's table swap: 117–157 ms this stop, under
    // 100 ms before, on either side of a text bucket's edge; report.json has it, bounded here.
    insta::assert_snapshot!(
        "all-legs-fail-no-queue",
        left_to_json(&run.report_txt, &["  max latency: "])
    );
    let max_us = run.json("workload.latency_us.max").as_u64().unwrap();
    assert!(max_us < 1_000_000, "max latency {max_us} µs");
    // Errors begin only once the last path failed.
    let first_error = run.json("workload.first_error_ms").as_f64().unwrap();
    assert!(
        first_error >= first(&run, On::Kernel("path_failed", "b")) - 50.0,
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

#[test]
fn slow_leg_service_time() {
    let Some(run) = scenario("slow-leg-service-time") else {
        return;
    };
    let share = run.json("figures.io_share.1.value").as_f64().unwrap();
    assert!(share > 0.7, "b's share {share}:\n{}", run.explain());
    assert_eq!(run.json("figures.io_share.1.key"), "b");
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
    let table = all_of(&run, "table_live")
        .into_iter()
        .filter(|e| e["dm_name"].as_str().unwrap().ends_with("leg-a"))
        .map(|e| e["table"].as_str().unwrap())
        .find(|t| t.contains(" error"))
        .unwrap_or_else(|| panic!("no error_range table:\n{}", run.explain()));
    assert!(
        table.ends_with("0 3680 linear 7:0 0\n3680 128 error\n3808 127264 linear 7:0 3808"),
        "{table}"
    );
    // The kernel fails a once, when the sequential workload reaches block 460 (about 2.3 s),
    // not when the fault is applied (1.5 s).
    let failed = times_of(&run, On::Kernel("path_failed", "a"));
    assert_eq!(failed.len(), 1, "{}", run.explain());
    assert!(
        (2200.0..2700.0).contains(&failed[0]),
        "path a failed at {} ms",
        failed[0]
    );
    // The checker reads block 0, outside the range: it brings a back before the range is repaired.
    let reinstate = first(&run, On::Action("reinstate_path", Some("a")));
    assert!(reinstate > failed[0] && reinstate < first(&run, On::Restored("a")));
    assert_eq!(run.json("workload.app_errors"), 0);
}

#[test]
fn lost_writes_after_path_switch() {
    let Some(run) = scenario("lost-writes-after-path-switch") else {
        return;
    };
    let found = mismatches(&run);
    assert!(!found.is_empty(), "{}", run.explain());
    // One detail per distinct block, with how often it mismatched, in both units.
    let details = run.json("workload.mismatch_details").as_array().unwrap();
    let total: u64 = details.iter().map(|m| m["count"].as_u64().unwrap()).sum();
    assert_eq!(run.json("workload.mismatches"), total);
    for m in details {
        let offset = m["byte_offset"].as_u64().unwrap();
        assert_eq!(m["lba"].as_u64().unwrap() * 512, offset);
        assert_eq!(m["block"].as_u64().unwrap() * 4096, offset);
    }
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
    assert_eq!(count(&run, On::AboutLeg("a")), 0, "{}", run.explain());
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
    let failed = times_of(&run, On::Kernel("path_failed", "a"));
    let reinstated = times_of(&run, On::Kernel("path_reinstated", "a"));
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
    assert_eq!(count(&run, On::Window(3, 3)), 1);
}

#[test]
fn dust_bad_blocks() {
    let Some(run) = scenario("dust-bad-blocks") else {
        return;
    };
    // Reads of block 150 (about 1.5 s) and 500 (about 5 s) fail a; block 400 (about 4 s) was
    // removed from the bad blocks at 3.25 s and does not.
    let failed = times_of(&run, On::Kernel("path_failed", "a"));
    assert_eq!(failed.len(), 2, "{}", run.explain());
    assert!((1400.0..1900.0).contains(&failed[0]), "{failed:?}");
    assert!((4900.0..5400.0).contains(&failed[1]), "{failed:?}");
    // The second dust fault changed the bad blocks by message, without a table swap.
    let changed = first(&run, On::DustChanged);
    let restored = first(&run, On::Restored("a"));
    let swaps: Vec<f64> = all_of(&run, "table_live")
        .into_iter()
        .filter(|e| e["dm_name"].as_str().unwrap().ends_with("leg-a"))
        .map(t_ms)
        .filter(|t| *t > changed && *t < restored)
        .collect();
    assert!(swaps.is_empty(), "table swaps at {swaps:?}");
    let messages: Vec<&str> = all_of(&run, "message_sent")
        .into_iter()
        .filter(|e| t_ms(e) >= changed && t_ms(e) < restored)
        .map(|e| e["message"].as_str().unwrap())
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
    assert!(all_of(&run, "table_live")
        .iter()
        .any(|e| e["table"] == "0 131072 delay 7:0 0 0 7:0 0 200 7:0 0 0"));
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
fn a_failed_scsi_run_leaves_nothing_behind() {
    if skipped("a_failed_scsi_run_leaves_nothing_behind") {
        return;
    }
    // The rig breaks at 4 s, while the SCSI array serves both paths and one port is offline:
    // the maps, the array's LIO objects (backstores, tcm_loop ports, LUNs) and its uio devices
    // must all be gone — the runner's own check after teardown lists any of them.
    let run = run_scenario(
        pathrig(),
        "scsi-leg-fails-and-returns",
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
}

#[test]
fn guest_timeout() {
    if skipped("guest_timeout") {
        return;
    }
    // A guest stopped at its time limit still leaves its kernel log and the events so far.
    let run = run_scenario(pathrig(), "guest-timeout", &[]);
    assert_eq!(run.code, 3, "{}", run.explain());
    assert!(
        run.stderr.contains("outlived its time limit"),
        "{}",
        run.explain()
    );
    let dmesg = std::fs::read_to_string(run.run_dir.join("dmesg.txt")).unwrap_or_default();
    assert!(
        dmesg.contains("Linux version"),
        "no kernel log:\n{}",
        run.explain()
    );
    let partial = std::fs::read_to_string(run.run_dir.join("report-partial.txt"))
        .unwrap_or_else(|e| panic!("no partial report ({e}):\n{}", run.explain()));
    assert!(partial.contains("a: fail"), "{partial}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.run_dir.join("report-partial.json")).unwrap(),
    )
    .unwrap();
    assert!(json["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "fault"));
}

#[test]
fn timeline_lag() {
    if skipped("timeline_lag") {
        return;
    }
    // A timeline the guest cannot keep: the run is a rig failure, with its report, saying by
    // how much it lagged and what never ran.
    let run = run_scenario(pathrig(), "timeline-lag", &[]);
    assert_eq!(run.code, 3, "{}", run.explain());
    let lag = run.json("timeline_lag");
    let late = lag["worst"]["late_ms"].as_f64().unwrap_or(0.0);
    let not_run = lag["not_run"].as_u64().unwrap_or(0);
    assert!(late > 1000.0 || not_run > 0, "{lag}\n{}", run.explain());
    assert_eq!(lag["worst"]["line"], 17, "{lag}");
    assert!(run.json("timing.max_fault_lag_ms").as_f64().unwrap() > 1000.0 || not_run > 0);
    assert!(
        run.report_txt
            .contains("RIG FAILURE: the fault timeline lagged"),
        "{}",
        run.report_txt
    );
    let error = std::fs::read_to_string(run.run_dir.join("error.txt")).unwrap();
    assert!(error.contains("the fault timeline lagged"), "{error}");
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
        "eh-offlines-device",
        "eh-recovers",
        "failback-deferred",
        "failback-followover",
        "failback-immediate",
        "failback-manual",
        "fio-yardstick",
        "flapping-link",
        "flapping-path-damped",
        "fuse-concurrent-latency",
        "fuse-corrupt-reads",
        "fuse-hang-writes",
        "fuse-lost-writes",
        "guest-timeout",
        "hba-freeze",
        "hba-freeze-knobs",
        "healthy",
        "hung-path",
        "hung-path-bounded",
        "intermittent-read-errors",
        "leg-fails-and-returns",
        "lost-writes-after-path-switch",
        "marginal-both-legs",
        "marginal-flaky-5pct",
        "marginal-noise-ok",
        "marginal-pathgroup-on",
        "marginal-recovers",
        "mirror-read-error-relocated",
        "mirror-transient-dropout",
        "mirror-transient-dropout-wait",
        "multipathd-leg-fails-and-returns",
        "multiplex-all-paths-fail",
        "multiplex-hung-path",
        "multiplex-slow-path",
        "no-path-retry-count",
        "scratch-space-full",
        "scsi-leg-fails-and-returns",
        "scsi-sense-and-status",
        "slow-leg",
        "slow-leg-service-time",
        "slow-path-long-tail",
        "slow-writes",
        "timeline-lag",
        "two-maps-one-hung",
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
    assert!(first(&run, On::Kernel("path_failed", "a")) > first(&run, On::Fault("a", "errno")));
    assert!(
        first(&run, On::Kernel("path_reinstated", "a")) > first(&run, On::FuseWindowEnded("a"))
    );
}

#[test]
fn hung_path() {
    let Some(run) = scenario("hung-path") else {
        return;
    };
    assert!(fuse_count(&run, 0, "hung") > 0);
    // A hang is no error: only the checker's timeout fails the path, within
    // polling_interval + checker_timeout (+ slack).
    let detected =
        first(&run, On::Action("fail_path", Some("a"))) - first(&run, On::Fault("a", "hang"));
    assert!(
        (0.0..2600.0).contains(&detected),
        "failed {detected} ms after the hang began:\n{}",
        run.explain()
    );
    // The checker's timeout failed it.
    let failed = timeline(&run)
        .into_iter()
        .find(|e| matches(e, On::Action("fail_path", Some("a"))))
        .unwrap();
    let (_, fields) = action(failed).unwrap();
    assert_eq!(
        fields["reason"]["CheckerTimedOut"]["timeout"]["secs"],
        1,
        "{}",
        run.explain()
    );
    let stall = run.json("workload.stalls.0.length_ms").as_f64().unwrap();
    assert!(stall >= 900.0, "stall of {stall} ms");
}

/// Two maps, a workload on each; one of m1's legs hangs from 2 s to 6 s. Each map's IO is its
/// own: m1's stalls for the whole hang (the checker fails a1 about a second in, but the IO held
/// on it comes back only when the hang ends), m2's never stops. The contrast a host-wide
/// freeze (SCSI error handling) shows the other way round.
#[test]
fn two_maps_one_hung() {
    let Some(run) = scenario_without_snapshot("two-maps-one-hung") else {
        return;
    };
    // m2's longest IO lands near the 100 ms bucket edge on a loaded machine (43 to 222 ms
    // measured): the max latency lines are left to report.json, asserted below.
    insta::assert_snapshot!(
        "two-maps-one-hung",
        left_to_json(&run.report_txt, &["  max latency: "])
    );
    let explain = || run.explain();
    assert_eq!(run.json("workloads.0.map"), "m1", "{}", explain());
    assert_eq!(run.json("workloads.1.map"), "m2", "{}", explain());
    // `workload` is the first of `workloads`.
    assert_eq!(run.json("workload"), run.json("workloads.0"));
    assert!(fuse_count(&run, 0, "hung") > 0);
    assert_eq!(run.json("maps.1.paths.0.fuse_faults.hung"), 0);

    // m1: one stall, from about the hang's start to about its end — past the checker failing
    // a1, which did not give the held IO back.
    let hang = first(&run, On::Fault("a1", "hang"));
    let hang_end = first(&run, On::FuseWindowEnded("a1"));
    let failed = first(&run, On::Kernel("path_failed", "a1"));
    let stalls = run.json("workloads.0.stalls").as_array().unwrap();
    assert_eq!(stalls.len(), 1, "{}", explain());
    let began = stalls[0]["began_ms"].as_f64().unwrap();
    let ended = began + stalls[0]["length_ms"].as_f64().unwrap();
    assert!(
        (hang - 100.0..hang + 1000.0).contains(&began),
        "m1's stall began at {began} ms, the hang at {hang} ms:\n{}",
        explain()
    );
    assert!(
        failed < ended && (hang_end - 100.0..hang_end + 1000.0).contains(&ended),
        "m1's stall ended at {ended} ms; a1 failed at {failed} ms, the hang ended at {hang_end} ms:\n{}",
        explain()
    );
    let m1_longest = run.json("workloads.0.longest_stall_ms").as_f64().unwrap();
    assert!(m1_longest >= ended - began - 1.0, "{m1_longest}");
    // m1's slowest IO waited out the hang; m2's did not wait anything like it.
    let max_latency_ms = |w: usize| {
        run.json(&format!("workloads.{w}.latency_us.max"))
            .as_f64()
            .unwrap()
            / 1000.0
    };
    assert!(max_latency_ms(0) >= 2000.0, "{}", explain());
    assert!(max_latency_ms(1) < 1000.0, "{}", explain());

    // m2: no stall, never a second without a completion, and IO all through m1's hang.
    assert_eq!(run.json("workloads.1.stalls"), &serde_json::json!([]));
    let m2_longest = run.json("workloads.1.longest_stall_ms").as_f64().unwrap();
    assert!(
        m2_longest < 1000.0,
        "m2 went {m2_longest} ms without a completion"
    );
    let completions_between = |workload: usize, from: f64, to: f64| -> u64 {
        run.json(&format!("workloads.{workload}.series"))
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| (from..to).contains(&p["t_ms"].as_f64().unwrap()))
            .map(|p| p["reads"].as_u64().unwrap() + p["writes"].as_u64().unwrap())
            .sum()
    };
    let m2_during = completions_between(1, began + 200.0, ended - 200.0);
    let m1_during = completions_between(0, began + 200.0, ended - 200.0);
    assert!(
        m2_during > 1000,
        "m2 completed {m2_during} IOs during m1's stall"
    );
    assert_eq!(m1_during, 0, "m1 completed IO during its stall");
    // Workload events carry their map: only m1's stalled.
    let stall_maps: Vec<&serde_json::Value> = all_of(&run, "stall_began")
        .iter()
        .map(|e| &e["map"])
        .collect();
    assert_eq!(stall_maps, [&serde_json::json!("m1")], "{}", explain());
}

/// Whether every FUSE leg's loop device ran in direct-IO mode.
fn fuse_loops_are_direct(run: &GuestRun) -> bool {
    let loops = all_of(run, "loop_attached");
    !loops.is_empty() && loops.iter().all(|e| e["direct_io"] == true)
}

#[test]
fn fuse_concurrent_latency() {
    let Some(run) = scenario("fuse-concurrent-latency") else {
        return;
    };
    assert!(fuse_loops_are_direct(&run), "{}", run.explain());
    // 16 reads in flight, each held 100 ms by the server, for 3 s: side by side that is about
    // 16 × 30 delayed reads, each taking ~100 ms. One at a time (a buffered loop device) it
    // would be at most 30, the 16th in line waiting 1.6 s.
    let delayed = fuse_count(&run, 0, "delayed");
    assert!(delayed >= 16 * 20, "only {delayed} reads were delayed");
    let max_ms = run.json("workload.latency_us.max").as_f64().unwrap() / 1000.0;
    let p99_ms = run.json("workload.latency_us.p99").as_f64().unwrap() / 1000.0;
    assert!(
        (100.0..400.0).contains(&max_ms) && p99_ms >= 100.0,
        "max {max_ms} ms, p99 {p99_ms} ms:\n{}",
        run.explain()
    );
}

#[test]
fn fuse_hang_writes() {
    let Some(run) = scenario("fuse-hang-writes") else {
        return;
    };
    assert!(fuse_loops_are_direct(&run), "{}", run.explain());
    // The hang holds writes only, and all of them in flight at once: reads kept being served
    // until each of the 8 IOs in flight was a held write (a buffered loop device would hand
    // the server one write and queue every other IO behind it: 1 held).
    assert_eq!(fuse_count(&run, 0, "hung_reads"), 0, "{}", run.explain());
    assert_eq!(fuse_count(&run, 0, "hung_writes"), 8, "{}", run.explain());
    assert_eq!(fuse_count(&run, 0, "max_held"), 8, "{}", run.explain());
    // Then IO stalled (no completion) until the window ended and the writes were released.
    let began = run.json("workload.stalls.0.began_ms").as_f64().unwrap();
    let length = run.json("workload.stalls.0.length_ms").as_f64().unwrap();
    let ended = first(&run, On::FuseWindowEnded("a"));
    assert!(
        (1000.0..1500.0).contains(&began) && (began + length - ended).abs() < 200.0,
        "stall {began} ms + {length} ms, window ended at {ended} ms"
    );
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
    let trigger = first(&run, On::Reason("MarginalTriggered"));
    // Two kernel failures came before the trigger, and none of the checker's reinstatements after.
    assert_eq!(
        count_between(&run, On::Kernel("path_failed", "a"), f64::MIN, trigger),
        2
    );
    assert_eq!(
        count_between(
            &run,
            On::Action("reinstate_path", Some("a")),
            trigger,
            f64::MAX
        ),
        0,
        "{}",
        run.explain()
    );
    assert!(count(&run, On::Reason("MarginalBad")) >= 1);
    assert_eq!(run.json("maps.0.paths.0.checker"), "marginal");
}

#[test]
fn marginal_recovers() {
    let Some(run) = scenario("marginal-recovers") else {
        return;
    };
    let bad = first(&run, On::Reason("MarginalBad"));
    let good = first(&run, On::Reason("MarginalGood"));
    assert!(
        bad < first(&run, On::FuseWindowEnded("a")) && good > first(&run, On::FuseWindowEnded("a"))
    );
    // The kernel reinstates a only after the good verdict (the checker's early reinstatements,
    // before the trigger, do not count).
    assert!(times_of(&run, On::Kernel("path_reinstated", "a"))
        .iter()
        .any(|t| *t >= good));
    assert_eq!(
        count_between(&run, On::Action("reinstate_path", Some("a")), bad, good),
        0
    );
}

#[test]
fn marginal_noise_ok() {
    let Some(run) = scenario("marginal-noise-ok") else {
        return;
    };
    assert_eq!(count(&run, On::AnyMarginalReason), 0, "{}", run.explain());
    assert_eq!(count(&run, On::Kernel("path_failed", "a")), 1);
}

#[test]
fn marginal_pathgroup_on() {
    let Some(run) = scenario("marginal-pathgroup-on") else {
        return;
    };
    // Into the marginal group when its first sample starts (multipathd marks a held path
    // marginal at the check that finds it up), before any verdict...
    let moved = first(&run, On::Reason("MarginalRegroup"));
    assert!(moved >= first(&run, On::Reason("MarginalSampleStart")));
    assert!(moved < first(&run, On::Reason("MarginalBad")));
    assert!(first(&run, On::Reason("MarginalGroupReinstate")) >= moved);
    // ...and it stays there, active, through its rechecks: never failed in dm again.
    assert_eq!(
        count_between(&run, On::Action("fail_path", Some("a")), moved, f64::MAX),
        0,
        "{}",
        run.explain()
    );
    assert!(count(&run, On::Reason("MarginalRecheck")) >= 1);
    // The live table now has the marginal group, used last.
    let table = run.json("maps.0.table").as_str().unwrap();
    assert!(table.contains(" 0 2 1 round-robin "), "{table}");
}

#[test]
fn marginal_both_legs() {
    let Some(run) = scenario_without_snapshot("marginal-both-legs") else {
        return;
    };
    // Both legs were flaky, yet the manager never left the map without a path for long:
    // whenever the kernel lost the last one, the manager reinstated one within a polling
    // interval (+ slack) — a held path early, at its next check (multipathd's
    // need_io_err_check), no longer marginal. (The kernel may fail it again within
    // milliseconds: every path of this map errs under load.)
    let reinstated = times_of(&run, On::Action("reinstate_path", None));
    let end = timeline(&run)
        .into_iter()
        .map(t_ms)
        .fold(f64::MIN, f64::max);
    for t in times_of(&run, On::Map("no_usable_path")) {
        match reinstated.iter().find(|r| **r > t) {
            Some(r) => assert!(r - t < 1600.0, "no reinstate_path for {} ms", r - t),
            None => assert!(end - t < 1600.0, "no reinstate_path after {t} ms"),
        }
    }
    assert!(fuse_count(&run, 0, "errors") > 0 && fuse_count(&run, 1, "errors") > 0);
}

/// Waits up to `limit` for the guest processes of `run_dir` to be gone; returns the survivors.
fn guest_gone(run_dir: &Path, limit: std::time::Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = vm_tests::guest_processes(run_dir);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// SIGKILL of `pathrig run` mid-run: no guest process survives (UML's helpers included), no
/// report appears afterwards, the run directory's marker shows a dead owner, and the next
/// `pathrig cleanup` notes the killed run in error.txt and leaves the directory in place.
#[test]
fn a_killed_run_takes_its_guest_along() {
    if skipped("a_killed_run_takes_its_guest_along") {
        return;
    }
    let root = std::env::temp_dir().join(format!("pathrig-vmtest-{}-killroot", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let run_dir = root.join("pathrig-killed");
    let mut run = vm_tests::start_scenario(
        pathrig(),
        "healthy",
        &run_dir,
        std::time::Duration::from_secs(4),
    );
    assert!(!vm_tests::guest_processes(&run_dir).is_empty());
    let pid = run.child.id();
    run.child.kill().unwrap(); // SIGKILL
    let _ = run.child.wait();
    let left = guest_gone(&run_dir, std::time::Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "guest processes outlived pathrig: {left:?}"
    );
    // The guest would have finished by now; it must not have written a report.
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert!(!run_dir.join("report.json").exists());
    assert!(!run_dir.join("report.txt").exists());
    match rig::ownership::inspect(&run_dir) {
        rig::ownership::Status::Dead(m, _) => {
            assert_eq!(m.pid, pid);
            assert_eq!(m.state, rig::ownership::State::Running);
        }
        other => panic!("{other:?}"),
    }
    let out = std::process::Command::new(pathrig())
        .arg("cleanup")
        .env("TMPDIR", &root)
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("its run was killed"), "{stdout}");
    let error = std::fs::read_to_string(run_dir.join("error.txt")).unwrap_or_default();
    assert!(error.starts_with("killed: the run (pid "), "{error}");
    assert!(
        run_dir.join("console.log").exists(),
        "the run directory was removed"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// SIGTERM of `pathrig run` mid-run: exit 3, error.txt says when it was interrupted, the marker
/// says interrupted, and no guest process survives.
#[test]
fn an_interrupted_run_says_so() {
    if skipped("an_interrupted_run_says_so") {
        return;
    }
    let run_dir = std::env::temp_dir().join(format!("pathrig-vmtest-{}-term", std::process::id()));
    let mut run = vm_tests::start_scenario(
        pathrig(),
        "healthy",
        &run_dir,
        std::time::Duration::from_secs(4),
    );
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) };
    let status = run.child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(guest_gone(&run_dir, std::time::Duration::from_secs(5)).is_empty());
    let error = std::fs::read_to_string(run_dir.join("error.txt")).unwrap_or_default();
    assert!(error.starts_with("interrupted at t = "), "{error}");
    assert!(error.contains("by SIGTERM"), "{error}");
    match rig::ownership::inspect(&run_dir) {
        rig::ownership::Status::Dead(m, _) => {
            assert_eq!(m.state, rig::ownership::State::Interrupted)
        }
        other => panic!("{other:?}"),
    }
    assert!(!run_dir.join("report.json").exists());
    std::fs::remove_dir_all(&run_dir).unwrap();
}

/// A mirror scenario: passes, its report.txt matches the snapshot, and its report.json has the
/// mirror map's typed fields.
fn mirror_scenario(name: &str) -> Option<GuestRun> {
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
    // A mirror's reload or scan lands near the 100 ms bucket edge of the longest IO on a
    // loaded machine, and held writes end in one stall or two, by timing: those lines are left
    // to report.json here.
    let text = left_to_json(&run.report_txt, &["  max latency: ", "  stalls: "]);
    insta::assert_snapshot!(name, text);
    assert_eq!(run.json("verdict"), "pass");
    assert!(run.json("timeline_lag").is_null(), "{}", run.explain());
    assert_eq!(run.json("maps").as_array().map(Vec::len), Some(0));
    assert_eq!(run.json("mirrors.0.name"), "m0");
    assert_eq!(run.json("mirrors.0.region_size_bytes"), 512 * 1024);
    assert_eq!(run.json("mirrors.0.total_regions"), 32);
    assert_eq!(run.json("workload.app_errors"), 0);
    assert_eq!(run.json("workload.mismatches"), 0);
    assert!(run.json("workload.verified_blocks").as_u64().unwrap() > 0);
    Some(run)
}

/// report.txt with every line that starts with one of `prefixes` cut to `PREFIX(report.json)`:
/// for the few lines of a scenario whose bucket is timing on a loaded machine.
fn left_to_json(report_txt: &str, prefixes: &[&str]) -> String {
    report_txt
        .lines()
        .map(|l| match prefixes.iter().find(|p| l.starts_with(**p)) {
            Some(prefix) => format!("{prefix}(report.json)"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The `mirror_event` events of kind `what` (e.g. `leg_health`).
fn mirror_events<'r>(run: &'r GuestRun, what: &str) -> Vec<&'r serde_json::Value> {
    run.json("events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mirror" && e["mirror_event"] == what)
        .collect()
}

#[test]
fn mirror_transient_dropout() {
    let Some(run) = mirror_scenario("mirror-transient-dropout") else {
        return;
    };
    // Leg b goes D, the monitor removes it at once (dmeventd's policy), and the map is
    // linear over a for the rest of the run: no redundancy from the failure to the end.
    let health = mirror_events(&run, "leg_health");
    assert_eq!(health[0]["leg"], "b");
    assert_eq!(health[0]["from"], "Alive");
    assert_eq!(health[0]["to"], "Dead");
    assert!(health[1]["to"].is_null(), "{:?}", health[1]);
    let actions = run.json("mirrors.0.actions").as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["leg"], "b");
    assert_eq!(
        actions[0]["action"]["remove_leg"]["reason"]["failed_remove"]["setting"],
        "on_dead"
    );
    assert!(actions[0]["failed"].is_null());
    assert_eq!(run.json("mirrors.0.legs.0.final_health"), "Alive");
    assert!(run.json("mirrors.0.legs.1.final_health").is_null());
    assert_eq!(run.json("mirrors.0.redundant_at_end"), false);
    assert!(run
        .json("mirrors.0.final_table")
        .as_str()
        .unwrap()
        .contains(" linear "));
    let lost = run.json("mirrors.0.redundancy_lost_ms").as_f64().unwrap();
    assert!(
        (5500.0..6500.0).contains(&lost),
        "redundancy lost for {lost} ms"
    );
    assert_eq!(run.json("mirrors.0.resynced_regions"), 0);
}

#[test]
fn mirror_transient_dropout_wait() {
    let Some(run) = mirror_scenario("mirror-transient-dropout-wait") else {
        return;
    };
    // Leg b goes D; the monitor waits, probes it until it answers after the fault window,
    // reloads the map with it and the mirror resyncs every region.
    let health = mirror_events(&run, "leg_health");
    assert_eq!(health.len(), 2, "{health:?}");
    assert_eq!(health[0]["to"], "Dead");
    assert_eq!(health[1]["to"], "Alive");
    let actions = run.json("mirrors.0.actions").as_array().unwrap();
    let restore = actions
        .iter()
        .find(|a| a["action"].get("restore_leg").is_some())
        .expect("a restore");
    assert_eq!(restore["leg"], "b");
    assert!(actions
        .iter()
        .all(|a| a["action"].get("remove_leg").is_none()));
    let restored_at = restore["t_ms"].as_f64().unwrap();
    assert!(
        (4000.0..5000.0).contains(&restored_at),
        "restored at {restored_at} ms"
    );
    assert_eq!(run.json("mirrors.0.redundant_at_end"), true);
    assert_eq!(run.json("mirrors.0.final_in_sync"), 32);
    assert_eq!(run.json("mirrors.0.resynced_regions"), 32);
    let status = run.json("mirrors.0.final_status").as_str().unwrap();
    assert!(
        status.ends_with(" mirror 2 254:0 254:1 32/32 1 AA 1 core"),
        "{status}"
    );
    let lost = run.json("mirrors.0.redundancy_lost_ms").as_f64().unwrap();
    assert!(
        (1900.0..3500.0).contains(&lost),
        "redundancy lost for {lost} ms"
    );
    // The kernel holds the writes that failed on b until the map is reloaded: the
    // application waits (a stall), but sees no error.
    assert!(!run.json("workload.stalls").as_array().unwrap().is_empty());
}

#[test]
#[ignore = "flaky: in one of three runs no read of leg a failed at all (no R, no relocation); not yet understood"]
fn mirror_read_error_relocated() {
    let Some(run) = mirror_scenario("mirror-read-error-relocated") else {
        return;
    };
    // A read of block 150 fails on a: the kernel serves it from b and shows R on a. The
    // status does not say which block, so the monitor scans a, finds both bad blocks and
    // rewrites them from b; the application saw no error.
    let health = mirror_events(&run, "leg_health");
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0]["leg"], "a");
    assert_eq!(health[0]["to"], "Read");
    let actions = run.json("mirrors.0.actions").as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    let relocate = &actions[0]["action"]["relocate"];
    assert_eq!(relocate["leg"], 0);
    assert_eq!(relocate["from"], 1);
    assert_eq!(relocate["blocks"], serde_json::json!([150, 400]));
    assert_eq!(relocate["reason"]["read_failure"]["located_by_scan"], true);
    assert!(actions[0]["failed"].is_null());
    let status = run.json("mirrors.0.final_status").as_str().unwrap();
    assert!(
        status.ends_with(" mirror 2 254:0 254:1 32/32 1 RA 1 core"),
        "{status}"
    );
}

#[test]
fn fio_yardstick() {
    // fio runs in the guest on the same map; its counts and CPU fill the same report fields.
    let Some(run) = scenario_without_snapshot("fio-yardstick") else {
        return;
    };
    assert_eq!(run.json("workload.engine"), "fio");
    let ios = run.json("workload.reads").as_u64().unwrap()
        + run.json("workload.writes").as_u64().unwrap();
    assert!(ios > 1000, "{ios} IOs in 3 s:\n{}", run.explain());
    assert!(run.json("workload.cpu_ms").as_f64().unwrap() > 0.0);
    assert_eq!(run.json("workload.verified_blocks"), 0);
    assert!(run.json("workload.latency_us.p50").as_u64().unwrap() > 0);
}

// SCSI legs: pathrig's array behind tcm_loop hosts, the SCSI error handler, the tur checker.

/// One error-handling episode of a host, from report.json's `scsi.hosts[]`.
#[derive(Debug)]
struct Episode {
    start: f64,
    end: f64,
    /// `running`, or the leg whose device was offlined.
    ended_by: String,
}

fn eh_episodes(run: &GuestRun, hba: &str) -> Vec<Episode> {
    let hosts = run.json("scsi.hosts").as_array().expect("scsi.hosts[]");
    let host = hosts
        .iter()
        .find(|h| h["hba"] == hba)
        .unwrap_or_else(|| panic!("no hba {hba}:\n{}", run.explain()));
    host["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Episode {
            start: e["start_ms"].as_f64().unwrap(),
            end: e["end_ms"]
                .as_f64()
                .expect("every episode ended within the run"),
            ended_by: match e["ended_by"]["by"].as_str().unwrap() {
                "device_offlined" => e["ended_by"]["leg"].as_str().unwrap().to_string(),
                other => other.to_string(),
            },
        })
        .collect()
}

/// A SCSI path's entry in report.json's `scsi.paths[]`.
fn scsi_path<'r>(run: &'r GuestRun, leg: &str) -> &'r serde_json::Value {
    run.json("scsi.paths")
        .as_array()
        .expect("scsi.paths[]")
        .iter()
        .find(|p| p["leg"] == leg)
        .unwrap_or_else(|| panic!("no SCSI path {leg}:\n{}", run.explain()))
}

/// The stalls of workload `index`: (began, ended) in ms.
fn stalls(run: &GuestRun, index: usize) -> Vec<(f64, f64)> {
    run.json(&format!("workloads.{index}.stalls"))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let began = s["began_ms"].as_f64().unwrap();
            (began, began + s["length_ms"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn scsi_leg_fails_and_returns() {
    let Some(run) = scenario_without_snapshot("scsi-leg-fails-and-returns") else {
        return;
    };
    // The slowest IO lands on either side of a text bucket's edge from run to run.
    insta::assert_snapshot!(
        "scsi-leg-fails-and-returns",
        left_to_json(&run.report_txt, &["  max latency: "])
    );
    let explain = || run.explain();
    let offline = first(&run, On::Fault("a", "port-offline"));
    let failed = first(&run, On::Kernel("path_failed", "a"));
    assert!(
        failed >= offline && failed - offline < 1500.0,
        "offline {offline}, failed {failed}"
    );
    // The tur checker keeps a down while its port is offline, and reinstates it once it is back.
    let back = first(&run, On::ScsiWindowEnded("a"));
    let reinstate = first(&run, On::Action("reinstate_path", Some("a")));
    assert!(
        reinstate >= back && reinstate - back < 2500.0,
        "port back {back} ms, reinstate {reinstate} ms"
    );
    let tur_down = all_of(&run, "checker_result").into_iter().any(|e| {
        e["node"] == scsi_path(&run, "a")["node"] && e["result"] == "scsi" && e["state"] == "down"
    });
    assert!(tur_down, "no tur down for a:\n{}", explain());
    // A dead link fails commands at once: no command timed out, no error handling.
    for hba in ["hba0", "hba1"] {
        assert!(eh_episodes(&run, hba).is_empty(), "{}", explain());
    }
    for leg in ["a", "b"] {
        assert_eq!(scsi_path(&run, leg)["final_state"], "running");
        assert_eq!(scsi_path(&run, leg)["command_timeouts"], 0);
        assert!(scsi_path(&run, leg)["array"]["ok"].as_u64().unwrap() > 0);
    }
    // Both paths of the LUN report one identity, so the map's paths are one LU.
    assert_ne!(scsi_path(&run, "a")["hctl"], scsi_path(&run, "b")["hctl"]);
}

/// The freeze both hba-freeze scenarios show: exactly one error-handling episode on hba0, which
/// ends with m1-a offlined; m2's IO stalls from the episode's start until the manager fails
/// m2-a (its TUR cannot get through a host in recovery), although no fault touched m2; m2-a is
/// reinstated once the host runs again. Returns (episode, m2's stall).
fn assert_hba_freeze(run: &GuestRun) -> (Episode, (f64, f64)) {
    let explain = || run.explain();
    let mut episodes = eh_episodes(run, "hba0");
    assert_eq!(episodes.len(), 1, "{}", explain());
    let eh = episodes.remove(0);
    assert_eq!(eh.ended_by, "m1-a", "{}", explain());
    assert!(eh_episodes(run, "hba1").is_empty(), "{}", explain());
    // No fault on any path of m2.
    for leg in ["m2-a", "m2-b"] {
        assert!(
            !all_of(run, "fault").iter().any(|e| e["leg"] == leg),
            "{}",
            explain()
        );
    }
    let m2 = stalls(run, 1);
    assert_eq!(m2.len(), 1, "m2 stalled {m2:?}:\n{}", explain());
    let stall = m2[0];
    assert!(
        (eh.start - 300.0..eh.start + 1000.0).contains(&stall.0),
        "m2's stall began at {} ms, error handling at {} ms:\n{}",
        stall.0,
        eh.start,
        explain()
    );
    let failed = first(run, On::Action("fail_path", Some("m2-a")));
    assert!(
        failed > eh.start && failed < eh.end,
        "the manager failed m2-a at {failed} ms, error handling {eh:?}"
    );
    assert!(
        (stall.1 - failed).abs() < 500.0,
        "m2's stall ended at {} ms, m2-a failed at {failed} ms",
        stall.1
    );
    let reinstated = first(run, On::Action("reinstate_path", Some("m2-a")));
    assert!(reinstated > eh.end, "{}", explain());
    // m1's IO stalled from the fault until the error handler gave the held commands back.
    let m1 = stalls(run, 0);
    let fault = first(run, On::Fault("m1-a", "no-response"));
    assert!(
        m1.iter()
            .any(|s| s.0 - fault < 1000.0 && (s.1 - eh.end).abs() < 1000.0),
        "m1's stalls {m1:?}, fault {fault}, error handling {eh:?}"
    );
    assert_eq!(scsi_path(run, "m1-a")["final_state"], "offline");
    for leg in ["m1-b", "m2-a", "m2-b"] {
        assert_eq!(scsi_path(run, leg)["final_state"], "running", "{leg}");
    }
    (eh, stall)
}

#[test]
fn hba_freeze() {
    let Some(run) = scenario("hba-freeze") else {
        return;
    };
    let (eh, stall) = assert_hba_freeze(&run);
    // The freeze of m2 lasts about checker_timeout (6 s) from the episode's start.
    let length = stall.1 - stall.0;
    assert!(
        (5000.0..9000.0).contains(&length),
        "m2 froze {length} ms, error handling {eh:?}"
    );
    for leg in ["m1-a", "m2-b"] {
        assert_eq!(scsi_path(&run, leg)["timeout_s"], 5);
        assert_eq!(scsi_path(&run, leg)["eh_timeout_s"], 5);
    }
}

#[test]
fn hba_freeze_knobs() {
    let Some(run) = scenario("hba-freeze-knobs") else {
        return;
    };
    let (eh, stall) = assert_hba_freeze(&run);
    // Shorter knobs, a shorter freeze: about checker_timeout (3 s).
    let length = stall.1 - stall.0;
    assert!(
        (2000.0..5500.0).contains(&length),
        "m2 froze {length} ms, error handling {eh:?}"
    );
    for leg in ["m1-a", "m2-b"] {
        assert_eq!(scsi_path(&run, leg)["timeout_s"], 2);
        assert_eq!(scsi_path(&run, leg)["eh_timeout_s"], 2);
    }
    // tcm_loop hosts have no host reset handler: the kernel refuses eh_deadline, and the report
    // says so rather than pretending.
    for host in run.json("scsi.hosts").as_array().unwrap() {
        assert_eq!(host["eh_deadline"]["state"], "unsupported", "{host}");
        assert_eq!(host["eh_deadline"]["wanted"], "2s");
    }
}

#[test]
fn eh_offlines_device() {
    let Some(run) = scenario("eh-offlines-device") else {
        return;
    };
    let explain = || run.explain();
    let episodes = eh_episodes(&run, "hba0");
    assert_eq!(episodes.len(), 1, "{}", explain());
    assert_eq!(episodes[0].ended_by, "a");
    let back = first(&run, On::ScsiWindowEnded("a"));
    assert!(back > episodes[0].end, "{}", explain());
    // After the LUN answers again, a stays offline and failed: nothing reinstates it.
    assert_eq!(scsi_path(&run, "a")["final_state"], "offline");
    assert!(
        !timeline(&run)
            .into_iter()
            .any(|e| t_ms(e) > back && matches(e, On::Action("reinstate_path", Some("a")))),
        "{}",
        explain()
    );
    assert_eq!(count(&run, On::Kernel("path_failed", "b")), 0);
}

#[test]
fn eh_recovers() {
    let Some(run) = scenario("eh-recovers") else {
        return;
    };
    let explain = || run.explain();
    let episodes = eh_episodes(&run, "hba0");
    assert_eq!(episodes.len(), 1, "{}", explain());
    let eh = &episodes[0];
    assert_eq!(eh.ended_by, "running", "{}", explain());
    let back = first(&run, On::ScsiWindowEnded("a"));
    // The LUN answered again during error handling, and the handler's next command found it.
    assert!(
        eh.start < back && eh.end >= back && eh.end - back < 3000.0,
        "{eh:?}, back {back}"
    );
    assert_eq!(scsi_path(&run, "a")["final_state"], "running");
    let failed = first(&run, On::Action("fail_path", Some("a")));
    let reinstated = first(&run, On::Action("reinstate_path", Some("a")));
    assert!(failed < eh.start && reinstated > back, "{}", explain());
    assert_eq!(count(&run, On::Kernel("path_failed", "b")), 0);
}

#[test]
fn hung_path_bounded() {
    let Some(run) = scenario("hung-path-bounded") else {
        return;
    };
    let explain = || run.explain();
    // The hang lasts from 2 s to the end of the run (38 s); the slowest IO waited about the
    // command timeout and the error handler, and the error handler gave the held IO back.
    let episodes = eh_episodes(&run, "hba0");
    assert_eq!(episodes.len(), 1, "{}", explain());
    let max = run.json("workload.latency_us.max").as_u64().unwrap() as f64 / 1000.0;
    let hang = 38_000.0;
    assert!(max < 30_000.0 && max < hang, "max latency {max} ms");
    assert!(
        stalls(&run, 0)
            .iter()
            .any(|s| (s.1 - episodes[0].end).abs() < 1000.0),
        "{}",
        explain()
    );
    assert_eq!(scsi_path(&run, "a")["final_state"], "offline");
    // Every command the array held was aborted or given back at the end.
    let a = &scsi_path(&run, "a")["array"];
    assert!(
        a["held"].as_u64().unwrap() > 0 && a["aborted"].as_u64().unwrap() > 0,
        "{a}"
    );
}

#[test]
fn scsi_sense_and_status() {
    let Some(run) = scenario_without_snapshot("scsi-sense-and-status") else {
        return;
    };
    // The slowest IO lands on either side of a text bucket's edge from run to run.
    insta::assert_snapshot!(
        "scsi-sense-and-status",
        left_to_json(&run.report_txt, &["  max latency: "])
    );
    let explain = || run.explain();
    // A medium error is not a path error: dm-multipath hands it to the application (the kernel
    // says ENODATA, "critical medium error") and fails no path; every one falls in a's window.
    let medium = first(&run, On::Fault("a", "check-condition"));
    let medium_end = first(&run, On::ScsiWindowEnded("a"));
    let errors = all_of(&run, "io_error");
    assert!(!errors.is_empty(), "{}", explain());
    for e in &errors {
        assert_eq!(e["op"], "read", "{e}");
        assert!(e["errno"].as_str().unwrap().starts_with("ENODATA"), "{e}");
        let t = t_ms(e);
        assert!(
            t >= medium && t <= medium_end + 500.0,
            "error at {t} ms, window {medium}..{medium_end}"
        );
    }
    assert_eq!(count(&run, On::Kernel("path_failed", "a")), 0);
    assert_eq!(count(&run, On::Kernel("path_failed", "b")), 0);
    // BUSY and the unit attention on b were answered (the array counts them) and retried by the
    // midlayer: the application saw none of them.
    assert!(scsi_path(&run, "b")["array"]["injected"].as_u64().unwrap() > 0);
    assert!(scsi_path(&run, "a")["array"]["delayed"].as_u64().unwrap() > 0);
    assert_eq!(run.json("workload.write_errors"), 0);
    for hba in ["hba0", "hba1"] {
        assert!(eh_episodes(&run, hba).is_empty(), "{}", explain());
    }
}

/// The kernel's path-state changes of a run, in order: (kind, leg).
fn kernel_path_sequence(run: &GuestRun) -> Vec<(String, String)> {
    timeline(run)
        .into_iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("path_failed" | "path_reinstated")))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["leg"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The real multipathd over pathrig's SCSI array: it builds the map, and the kernel's path
/// changes come in the order the embedded manager gives in `scsi-leg-fails-and-returns`
/// (conformance: the same scenario, only the manager differs).
#[test]
fn multipathd_leg_fails_and_returns() {
    // multipathd's own lines differ run to run in which of two equivalent messages it prints
    // ("mark as failed" when the kernel failed the path first, "checker failed path" when its
    // checker did): the test asserts its behaviour from report.json instead of a snapshot.
    let Some(run) = scenario_without_snapshot("multipathd-leg-fails-and-returns") else {
        return;
    };
    let explain = || run.explain();
    // a fails and comes back; multipathd 0.9.4 sometimes reinstates it once while its port is
    // still offline (after the kernel failed it, "mark as failed") and fails it again at its
    // next check — never for long: every reinstatement before the port is back is followed by
    // a failure before the port is back.
    let back = first(&run, On::ScsiWindowEnded("a"));
    let sequence = kernel_path_sequence(&run);
    assert_eq!(
        sequence.first().map(|(k, _)| k.as_str()),
        Some("path_failed"),
        "{}",
        explain()
    );
    assert_eq!(
        sequence.last().map(|(k, _)| k.as_str()),
        Some("path_reinstated"),
        "{}",
        explain()
    );
    assert!(sequence.iter().all(|(_, leg)| leg == "a"), "{}", explain());
    assert!(
        sequence.windows(2).all(|w| w[0].0 != w[1].0),
        "failed and reinstated alternate: {sequence:?}"
    );
    let changes: Vec<(f64, &str)> = timeline(&run)
        .into_iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("path_failed" | "path_reinstated")))
        .map(|e| (t_ms(e), e["kind"].as_str().unwrap()))
        .collect();
    for w in changes.windows(2) {
        if w[0].1 == "path_reinstated" && w[0].0 < back {
            assert!(
                w[1].1 == "path_failed" && w[1].0 < back,
                "{changes:?}, port back {back}"
            );
        }
    }
    // multipathd reinstated a after the port came back, within a few polling intervals.
    let reinstate = timeline(&run)
        .into_iter()
        .find(|e| t_ms(e) > back && matches(e, On::Action("reinstate_path", Some("a"))))
        .map(t_ms)
        .unwrap_or_else(|| panic!("multipathd never reinstated a:\n{}", explain()));
    assert!(
        reinstate - back < 3500.0,
        "port back {back} ms, reinstated {reinstate} ms"
    );
    // Its decisions carry its own words.
    assert!(
        all_of(&run, "manager").iter().any(|e| e["what"]
            .as_str()
            .unwrap_or_default()
            .contains("multipathd")),
        "{}",
        explain()
    );
    assert!(!all_of(&run, "multipathd").is_empty(), "{}", explain());
}

#[test]
fn embedded_and_multipathd_agree_on_a_leg_that_fails_and_returns() {
    // Both managers over the same SCSI scenario: the path fails first and is active again at
    // the end, and while the port is back both keep it. The one difference seen is
    // multipathd's (README, "The real multipathd"): an early reinstatement while the port is
    // still offline, undone at its next check; the embedded manager never does that.
    let (Some(embedded), Some(real)) = (
        scenario_without_snapshot("scsi-leg-fails-and-returns"),
        scenario_without_snapshot("multipathd-leg-fails-and-returns"),
    ) else {
        return;
    };
    let collapse = |run: &GuestRun| {
        let mut seq = kernel_path_sequence(run);
        seq.dedup();
        (seq.first().cloned(), seq.last().cloned())
    };
    assert_eq!(
        collapse(&embedded),
        collapse(&real),
        "embedded:\n{}\nmultipathd:\n{}",
        embedded.explain(),
        real.explain()
    );
    assert_eq!(
        kernel_path_sequence(&embedded),
        [
            ("path_failed".to_string(), "a".to_string()),
            ("path_reinstated".to_string(), "a".to_string())
        ]
    );
}

/// report.txt's critical IO sections and its expectations: the rest of a multiplex scenario's
/// report (the order of two legs' failures, the bulk workload's latency buckets around a 10 s
/// hang) is timing, asserted from report.json where it matters.
fn critical_sections(report_txt: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in report_txt.lines() {
        if line.starts_with("critical IO ") || line == "expectations" {
            keep = true;
        } else if line.starts_with("figures") {
            keep = false;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A critical writer's summary in report.json (`critical[]`), by name.
fn critical<'r>(run: &'r GuestRun, name: &str) -> &'r serde_json::Value {
    run.json("critical")
        .as_array()
        .expect("critical[]")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no critical writer {name}:\n{}", run.explain()))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v.pointer(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {key} in {v}"))
}

/// One path holds every IO for 10 s. Through the map, the critical IOs dm sent to it before
/// the checker failed it wait out the whole hang; multiplexed, every IO completes at b's answer.
#[test]
fn multiplex_hung_path() {
    let Some(run) = scenario_without_snapshot("multiplex-hung-path") else {
        return;
    };
    insta::assert_snapshot!(
        "multiplex-hung-path",
        left_to_json(&critical_sections(&run.report_txt), &["  first answers: "])
    );
    let explain = || run.explain();
    let (tm, mx) = (critical(&run, "tm"), critical(&run, "mx"));
    assert_eq!(
        (tm["mode"].as_str(), mx["mode"].as_str()),
        (Some("through_map"), Some("multiplex"))
    );
    // The same IO count in both modes: one write per 100 ms over 14 s, each read back.
    for c in [tm, mx] {
        assert!(num(c, "/ios") <= 290.0, "{c}");
        // Ticks a loaded host kept the writer from are `late`: never issued, counted apart.
        let issued = num(c, "/ios");
        assert!(issued + 2.0 * num(c, "/late") >= 250.0, "{c}");
        assert_eq!(num(c, "/succeeded"), issued, "{}", explain());
        assert_eq!(num(c, "/verified_blocks") * 2.0, issued);
        assert_eq!(num(c, "/mismatches"), 0.0);
    }
    // Through the map: misses, and the slowest waited out most of the hang.
    assert!(num(tm, "/deadline_misses") >= 2.0, "{tm}");
    assert!(num(tm, "/latency_ms/max") > 5000.0, "{tm}");
    // Multiplexed: none, and nothing slow.
    assert_eq!(num(mx, "/deadline_misses"), 0.0, "{mx}");
    assert!(num(mx, "/latency_ms/max") < 1000.0, "{mx}");
    // b answered first at least for every IO of the hang; every first answer counted once.
    let firsts = mx["first_answer"].as_array().unwrap();
    let first_of = |path: &str| {
        firsts
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| num(f, "/count"))
            .unwrap()
    };
    assert_eq!(first_of("a") + first_of("b"), num(mx, "/succeeded"));
    assert!(first_of("b") >= 100.0, "{mx}");
    // The copies left on the hung path were cancelled or ignored, and all answered by the end.
    assert!(num(mx, "/cancels_sent") > 0.0);
    assert_eq!(num(mx, "/unanswered_at_end"), 0.0);
    assert_eq!(num(mx, "/disagreements"), 0.0, "{mx}");
    assert!(fuse_count(&run, 0, "hung") > 0);
}

/// One path with a long latency tail: through the map about half the critical IOs pay it;
/// multiplexed, the fast path answers first and the p99 follows it.
#[test]
fn multiplex_slow_path() {
    let Some(run) = scenario_without_snapshot("multiplex-slow-path") else {
        return;
    };
    insta::assert_snapshot!(
        "multiplex-slow-path",
        left_to_json(
            &critical_sections(&run.report_txt),
            // Through the map, about 1 IO in 800 on a is past the 1 s deadline.
            &[
                "  first answers: ",
                "  slowest critical IO: ",
                "  deadline misses: "
            ]
        )
    );
    let (tm, mx) = (critical(&run, "tm"), critical(&run, "mx"));
    let (tm_p99, mx_p99) = (num(tm, "/latency_ms/p99"), num(mx, "/latency_ms/p99"));
    assert!(
        mx_p99 * 2.0 < tm_p99,
        "multiplexed p99 {mx_p99} ms, through the map {tm_p99} ms:\n{}",
        run.explain()
    );
    // b, the fast path, answered first for most IOs.
    let firsts = mx["first_answer"].as_array().unwrap();
    let b = firsts.iter().find(|f| f["path"] == "b").unwrap();
    assert!(num(b, "/count") > num(mx, "/succeeded") * 0.8, "{mx}");
    assert_eq!(num(mx, "/disagreements"), 0.0, "{mx}");
    assert!(fuse_count(&run, 0, "delayed") > 0);
}

/// Every path fails (EIO after 200 ms). Multiplexed, the first IOs fail at the last of their two
/// copies' failures, about 200 ms after the issue; once the kernel has failed both paths, the
/// IOs fail at once with no usable path. After the paths come back, writes succeed again.
#[test]
fn multiplex_all_paths_fail() {
    let Some(run) = scenario_without_snapshot("multiplex-all-paths-fail") else {
        return;
    };
    insta::assert_snapshot!(
        "multiplex-all-paths-fail",
        left_to_json(
            &critical_sections(&run.report_txt),
            &["  first answers: ", "  copies disagreed: "]
        )
    );
    let explain = || run.explain();
    let mx = critical(&run, "mx");
    let failures = mx["failures"].as_array().unwrap();
    let with_copies: Vec<&serde_json::Value> =
        failures.iter().filter(|f| f["copies"] == 2).collect();
    assert!(
        !with_copies.is_empty(),
        "no failure down both paths:\n{}",
        explain()
    );
    for f in &with_copies {
        assert_eq!(f["errno"], 5, "EIO: {f}");
        let took = num(f, "/took_ms");
        assert!(
            (190.0..1000.0).contains(&took),
            "the last copy failed after {took} ms: {f}"
        );
    }
    assert!(num(mx, "/no_usable_path") > 0.0, "{mx}");
    assert!(
        (190.0..1000.0).contains(&num(mx, "/max_failure_ms")),
        "{mx}"
    );
    // Failures only in the fault window (3 s to 7 s, plus the checker's reinstatement).
    for f in failures {
        assert!((3000.0..9000.0).contains(&num(f, "/t_ms")), "{f}");
    }
    assert!(num(mx, "/succeeded") > 0.0);
    let last = &mx["last_failure"];
    assert!(num(last, "/t_ms") > 6000.0, "{last}");
    // Through the map the same IOs failed too.
    assert!(num(critical(&run, "tm"), "/failed") > 0.0);
}
