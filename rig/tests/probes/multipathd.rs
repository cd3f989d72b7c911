//! The real multipathd in a guest (`rig::multipathd`): scsi_debug gives two paths of one LUN
//! (two hosts, `vpd_use_hostno=0` so both report the same WWID), multipathd builds the map, one
//! path is set offline and back, and the parsed log shows the checker failing it and the
//! reinstatement, with times. Afterwards no daemon, no map and no overlay is left.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rig::dm::{DevNum, Dm};
use rig::guest::init::GuestEnv;
use rig::guest::{kernel, multipath_tools};
use rig::multipathd::log::{parse_line, LogEvent, PathRef};
use rig::multipathd::{client, DaemonSpec, Source, Stack};

const MAP: &str = "pathrig-mpd";

/// On the host, before the guest boots: the cached multipath-tools tree.
pub fn prepare() -> Result<Vec<(&'static str, String)>, String> {
    let cache = kernel::cache_dir();
    multipath_tools::prepare_multipath_tools(&cache, &mut |l| eprintln!("{l}"))
        .map_err(|e| e.to_string())?;
    Ok(vec![("PATHRIG_CACHE", cache.display().to_string())])
}

/// scsi_debug disks (`sdX`, devnum), waiting for `count` to appear.
fn scsi_debug_disks(count: usize) -> Result<Vec<(String, DevNum)>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut found = Vec::new();
        for entry in fs::read_dir("/sys/block")
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let model = fs::read_to_string(entry.path().join("device/model")).unwrap_or_default();
            if !name.starts_with("sd") || !model.trim().starts_with("scsi_debug") {
                continue;
            }
            let dev = fs::read_to_string(entry.path().join("dev")).map_err(|e| e.to_string())?;
            let dev = DevNum::parse(dev.trim()).ok_or(format!("bad dev {dev:?}"))?;
            found.push((name, dev));
        }
        found.sort();
        if found.len() >= count {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "scsi_debug gave {} disks, not {count}",
                found.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The conf as `kind = "multipathd"` writes it: pathrig's writer, polling every second,
/// failback immediate, no_path_retry 2, and one passthrough keyword.
fn conf(wwid: &str) -> String {
    use path_manager::lang::write::{write_multipathd_conf, MapIds};
    use path_manager::settings::{Failback, ManagerSettings, NoPathRetry, Setting};
    let s = ManagerSettings {
        polling_interval: Setting::builtin(Duration::from_secs(1)),
        max_polling_interval: Setting::builtin(Duration::from_secs(1)),
        failback: Setting::builtin(Failback::Immediate),
        no_path_retry: Setting::builtin(NoPathRetry::Retries(2)),
        ..ManagerSettings::default()
    };
    let written = write_multipathd_conf(
        &[("mpd".to_string(), s)],
        &[MapIds {
            wwid: wwid.to_string(),
            alias: MAP.to_string(),
            path_selector: Some("round-robin 0".to_string()),
        }],
        // scsi_debug claims ALUA: multipathd would pick tur over the conf's directio.
        &[("detect_checker".to_string(), "no".to_string())],
    );
    written.text
}

/// multipathd's lines as the probe reads them, and how far it has looked.
struct Watch<'s> {
    stack: &'s Stack,
    seen: Vec<rig::multipathd::Captured>,
    cursor: usize,
}

impl Watch<'_> {
    /// Looks only at lines that come after this.
    fn mark(&mut self) {
        self.seen.extend(self.stack.take_lines());
        self.cursor = self.seen.len();
    }

    /// Waits for the next line (after the last match or mark) that satisfies `wanted`; returns
    /// its time.
    fn wait(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&LogEvent) -> bool,
    ) -> Result<Duration, String> {
        let deadline = Instant::now() + limit;
        loop {
            self.seen.extend(self.stack.take_lines());
            while self.cursor < self.seen.len() {
                let c = &self.seen[self.cursor];
                self.cursor += 1;
                if c.source == Source::Multipathd && wanted(&parse_line(&c.text).event) {
                    return Ok(c.time());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no such multipathd line within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn daemons_running() -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm.contains("multipath") || comm.contains("udev") {
            out.push(format!("{} {comm}", entry.file_name().to_string_lossy()));
        }
    }
    out
}

fn set_state(disk: &str, state: &str) -> Result<(), String> {
    let path = PathBuf::from(format!("/sys/block/{disk}/device/state"));
    // The kernel wants the newline (scsi_sysfs compares "name\n").
    fs::write(&path, format!("{state}\n"))
        .map_err(|e| format!("write {state} to {}: {e}", path.display()))
}

pub fn multipathd_offline_online(env: &GuestEnv) -> Result<serde_json::Value, String> {
    let verbosity: u8 = std::env::var("PATHRIG_MPD_VERBOSITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    env.modules
        .load(&[
            "overlay",
            "dm-multipath",
            "dm-round-robin",
            "dm-service-time",
            "dm-queue-length",
            "sd_mod",
        ])
        .map_err(|e| e.to_string())?;
    env.modules
        .load_with_params("scsi_debug", "add_host=2 vpd_use_hostno=0 dev_size_mb=8")
        .map_err(|e| e.to_string())?;
    let tools = multipath_tools::find_cached(&kernel::cache_dir())
        .ok_or("no multipath-tools in the cache (the host side prepares it)")?;
    let disks = scsi_debug_disks(2)?;
    let dm = Dm::open().map_err(|e| e.to_string())?;
    let origin = Instant::now();
    let mut stack = Stack::start(&tools, origin).map_err(|e| e.to_string())?;
    let udevd_up = origin.elapsed();
    let result = (|| -> Result<serde_json::Value, String> {
        let devs: Vec<DevNum> = disks.iter().map(|(_, d)| *d).collect();
        let serials = stack
            .settle_paths(&devs, Duration::from_secs(20))
            .map_err(|e| e.to_string())?;
        let settled = origin.elapsed();
        if serials.iter().any(|s| s != &serials[0]) {
            return Err(format!(
                "the two scsi_debug paths report different WWIDs: {serials:?}"
            ));
        }
        let conf_text = conf(&serials[0]);
        let launched = origin.elapsed();
        stack
            .start_multipathd(&DaemonSpec {
                multipathd: None,
                verbosity,
                conf: conf_text.clone(),
            })
            .map_err(|e| e.to_string())?;
        let map_devs = stack
            .wait_for_maps(&dm, &[MAP.to_string()], Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let map_ready = origin.elapsed();
        // Both paths checked and up, as multipathd sees them.
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready_paths = loop {
            let (paths, _) = client::show(Duration::from_secs(5)).map_err(|e| e.to_string())?;
            let ready = paths
                .iter()
                .filter(|p| p.map == MAP && p.checker_state == "ready" && p.dm_state == "active")
                .count();
            if ready == 2 {
                break origin.elapsed();
            }
            if Instant::now() >= deadline {
                return Err(format!("paths not both ready within 20 s: {paths:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (victim, victim_dev) = disks[0].clone();
        let victim_ref = PathRef::DevNum {
            major: victim_dev.major,
            minor: victim_dev.minor,
        };
        let mut watch = Watch {
            stack: &stack,
            seen: Vec::new(),
            cursor: 0,
        };
        watch.mark();
        let offline_at = origin.elapsed();
        set_state(&victim, "offline")?;
        let victim_name = PathRef::Name(victim.clone());
        // Either the checker fails the path, or IO in flight (udev probing the offline disk)
        // failed it in the kernel first and multipathd marks it failed from the map's event.
        let failed_at = watch.wait(Duration::from_secs(15), |e| {
            matches!(e, LogEvent::CheckerFailedPath { path, map } if *path == victim_ref && map == MAP)
                || matches!(e, LogEvent::MarkedFailed { path } if *path == victim_name)
        })?;
        let (paths_while_offline, _) =
            client::show(Duration::from_secs(5)).map_err(|e| e.to_string())?;
        watch.mark();
        let online_at = origin.elapsed();
        set_state(&victim, "running")?;
        let reinstated_at = watch.wait(
            Duration::from_secs(15),
            |e| matches!(e, LogEvent::Reinstated { path } if *path == victim_ref),
        )?;
        // Both paths down: no_path_retry 2 queues for two checker rounds, then fails IO.
        watch.mark();
        let both_down_at = origin.elapsed();
        for (disk, _) in &disks {
            set_state(disk, "offline")?;
        }
        let recovery_at = watch.wait(
            Duration::from_secs(15),
            |e| matches!(e, LogEvent::EnteringRecovery { map, .. } if map == MAP),
        )?;
        let queueing_off_at = watch.wait(
            Duration::from_secs(15),
            |e| matches!(e, LogEvent::QueueingDisabled { map } if map == MAP),
        )?;
        for (disk, _) in &disks {
            set_state(disk, "running")?;
        }
        let restored_at = origin.elapsed();
        let mut reinstated = 0;
        let last_reinstated_at = loop {
            let at = watch.wait(Duration::from_secs(15), |e| {
                matches!(e, LogEvent::Reinstated { .. })
            })?;
            reinstated += 1;
            if reinstated == 2 {
                break at;
            }
        };
        // multipathd's view of the dm state follows the kernel's a moment later.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (paths, maps) = loop {
            let (paths, maps) = client::show(Duration::from_secs(5)).map_err(|e| e.to_string())?;
            let active = paths.iter().filter(|p| p.dm_state == "active").count();
            if active == 2 || Instant::now() >= deadline {
                break (paths, maps);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let kernel = dm.multipath_status(MAP).map_err(|e| e.to_string())?;
        Ok(serde_json::json!({
            "disks": disks.iter().map(|(n, d)| format!("{n} {d}")).collect::<Vec<_>>(),
            "wwid": serials[0],
            "conf": conf_text,
            "map_dev": map_devs[0].to_string(),
            "victim": victim_dev.to_string(),
            "victim_name": victim,
            "secs": {
                "udevd_up": udevd_up.as_secs_f64(),
                "settled": settled.as_secs_f64(),
                "launch_to_map": (map_ready - launched).as_secs_f64(),
                "launch_to_paths_ready": (ready_paths - launched).as_secs_f64(),
                "offline_to_failed": (failed_at - offline_at).as_secs_f64(),
                "online_to_reinstated": (reinstated_at - online_at).as_secs_f64(),
                "both_down_to_recovery": (recovery_at - both_down_at).as_secs_f64(),
                "both_down_to_queueing_disabled": (queueing_off_at - both_down_at).as_secs_f64(),
                "restored_to_both_reinstated": (last_reinstated_at - restored_at).as_secs_f64(),
            },
            "paths_while_offline": paths_while_offline,
            "final_paths": paths,
            "final_maps": maps,
            "kernel_status_at_end": kernel.line.render(),
        }))
    })();
    let lines = stack.all_lines();
    let report = stack.stop(Some(&dm));
    drop(stack);
    let raw: String = lines
        .iter()
        .map(|c| format!("{:9.3} {:?} {}\n", c.at.as_secs_f64(), c.source, c.text))
        .collect();
    let _ = fs::write(env.run_dir.join("multipathd.log"), raw);
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter(|c| c.source == Source::Multipathd)
        .map(|c| (c, parse_line(&c.text)))
        .filter(|(_, l)| l.event != LogEvent::Other)
        .map(|(c, l)| serde_json::json!({ "at": c.time().as_secs_f64(), "read_at": c.at.as_secs_f64(), "event": l.event, "raw": c.text }))
        .collect();
    let left_maps: Vec<String> = dm
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|d| d.name)
        .collect();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let left_mounts: Vec<&str> = mounts
        .lines()
        .filter(|l| l.starts_with("pathrig-"))
        .collect();
    let mut value = result?;
    value["events"] = serde_json::json!(events);
    value["stop"] = serde_json::json!(report);
    value["left_processes"] = serde_json::json!(daemons_running());
    value["left_maps"] = serde_json::json!(left_maps);
    value["left_mounts"] = serde_json::json!(left_mounts);
    value["usr_overlay_gone"] = serde_json::json!(!Path::new("/usr/sbin/multipathd").exists());
    Ok(value)
}

pub fn check_multipathd_offline_online(v: &serde_json::Value) -> Result<(), String> {
    let events = v["events"].as_array().ok_or("no events")?;
    let victim = v["victim"].as_str().unwrap_or_default();
    let victim_name = v["victim_name"].as_str().unwrap_or_default();
    let is_victim = |ev: &serde_json::Value| {
        let by_number = ev["path"]
            .as_object()
            .map(|p| format!("{}:{}", p["major"], p["minor"]))
            .unwrap_or_default();
        by_number == victim || ev["path"] == victim_name
    };
    // The first failure of the victim: the checker's, or the kernel's that multipathd marks.
    let failed = events
        .iter()
        .find(|e| {
            let ev = &e["event"];
            (ev["kind"] == "checker_failed_path" || ev["kind"] == "marked_failed") && is_victim(ev)
        })
        .and_then(|e| e["at"].as_f64())
        .ok_or(format!(
            "no checker_failed_path or marked_failed for {victim}: {v}"
        ))?;
    let reinstated = events
        .iter()
        .find(|e| {
            e["event"]["kind"] == "reinstated"
                && is_victim(&e["event"])
                && e["at"].as_f64() > Some(failed)
        })
        .and_then(|e| e["at"].as_f64())
        .ok_or(format!(
            "no reinstated for {victim} after its failure at {failed}: {v}"
        ))?;
    let has = |kind: &str| events.iter().any(|e| e["event"]["kind"] == kind);
    // (A group switch shows only when the kernel had left the first group: not always here,
    // with no IO on the map.)
    for kind in [
        "entering_recovery",
        "queueing_disabled",
        "remaining_active_paths",
    ] {
        if !has(kind) {
            return Err(format!("no {kind} event: {v}"));
        }
    }
    eprintln!("multipathd: victim failed at {failed:.3} s, reinstated at {reinstated:.3} s");
    let offline_view = v["paths_while_offline"]
        .as_array()
        .ok_or("no paths_while_offline")?;
    let victim_row = offline_view
        .iter()
        .find(|p| p["dev_t"] == victim)
        .ok_or(format!("victim not in show paths: {offline_view:?}"))?;
    if victim_row["dm_state"] != "failed" {
        return Err(format!("multipathd shows the offline path as {victim_row}"));
    }
    let final_paths = v["final_paths"].as_array().ok_or("no final_paths")?;
    if final_paths
        .iter()
        .filter(|p| p["dm_state"] == "active")
        .count()
        != 2
    {
        return Err(format!("not both paths active at the end: {final_paths:?}"));
    }
    if v["final_maps"][0]["name"] != MAP {
        return Err(format!("show maps: {}", v["final_maps"]));
    }
    for key in ["left_processes", "left_maps", "left_mounts"] {
        if v[key].as_array().is_none_or(|a| !a.is_empty()) {
            return Err(format!("{key} after stop: {}", v[key]));
        }
    }
    if v["usr_overlay_gone"] != true {
        return Err("the /usr overlay is still there".into());
    }
    eprintln!("multipathd timings: {}", v["secs"]);
    Ok(())
}
