//! Guest probes of pathrig's SCSI array (`rig::scsi`): build and teardown with shared LUN
//! identity, injected CHECK CONDITION, held commands and the HBA-wide error-handler freeze,
//! port offline, and throughput. Each returns its measurements as JSON; the host-side checks
//! assert the structure, not exact times.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rig::guest::init::GuestEnv;
use rig::scsi::{
    self, AbortPolicy, ArraySpec, HbaSpec, LunSpec, PathSpec, ScsiAction, ScsiOp, ScsiRule,
};
use serde_json::{json, Value};

const LUN_BYTES: u64 = 16 << 20;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A 4 KiB-aligned buffer for O_DIRECT.
pub struct Aligned {
    ptr: *mut u8,
    len: usize,
}
impl Aligned {
    pub fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        Aligned {
            ptr: unsafe { std::alloc::alloc_zeroed(layout) },
            len,
        }
    }
    pub fn bytes(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}
impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).unwrap();
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

pub fn setup(env: &GuestEnv) -> Result<PathBuf, String> {
    env.modules.load(scsi::SCSI_MODULES).map_err(err)?;
    let dir = PathBuf::from("/run/pathrig-scsi-probe");
    fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

pub fn lun(dir: &Path, name: &str, wwid: &str) -> Result<LunSpec, String> {
    let backing = dir.join(format!("{name}.img"));
    let f = fs::File::create(&backing).map_err(err)?;
    f.set_len(LUN_BYTES).map_err(err)?;
    Ok(LunSpec {
        name: name.into(),
        wwid: wwid.into(),
        backing,
        size_bytes: LUN_BYTES,
        alua: None,
    })
}

pub fn path(name: &str, lun: usize, hba: usize, cmd_time_out: Option<u32>) -> PathSpec {
    PathSpec {
        name: name.into(),
        lun,
        hba,
        cmd_time_out,
        port_group: None,
    }
}

pub fn hba(name: &str) -> HbaSpec {
    HbaSpec { name: name.into() }
}

/// What of LIO and uio is left: `core/user_*` dirs, loopback WWNs, uio devices.
pub fn lio_leftovers() -> Vec<String> {
    let list = |dir: &str| -> Vec<String> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let mut out: Vec<String> = list("/sys/kernel/config/target/core")
        .into_iter()
        .filter(|n| n.starts_with("user_"))
        .map(|n| format!("core/{n}"))
        .collect();
    out.extend(
        list("/sys/kernel/config/target/loopback")
            .into_iter()
            .filter(|n| n.starts_with("naa."))
            .map(|n| format!("loopback/{n}")),
    );
    out.extend(
        list("/sys/class/uio")
            .into_iter()
            .map(|n| format!("uio {n}")),
    );
    out
}

pub fn read_hex(path: &Path) -> String {
    fs::read(path)
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// Probe 1: 2 LUNs × 2 HBAs; identity per LUN, hosts per HBA, data through one path and back
/// through the other, nothing left after teardown.
pub fn basics(env: &GuestEnv) -> Result<Value, String> {
    let dir = setup(env)?;
    let spec = ArraySpec {
        luns: vec![
            lun(&dir, "a", "naa.60014050000000000000000000000a01")?,
            lun(&dir, "b", "lun-b")?,
        ],
        hbas: vec![hba("h0"), hba("h1")],
        paths: vec![
            path("a0", 0, 0, None),
            path("a1", 0, 1, None),
            path("b0", 1, 0, None),
            path("b1", 1, 1, None),
        ],
        seed: 1,
    };
    let started = Instant::now();
    let array = scsi::Array::build(&spec, "probe1").map_err(err)?;
    let build_s = started.elapsed().as_secs_f64();
    let mut paths = Vec::new();
    for p in array.paths() {
        paths.push(json!({
            "name": p.name, "disk": p.disk, "hctl": p.hctl(), "devnum": p.devnum.to_string(),
            "host": p.host,
            "wwid": fs::read_to_string(p.sysfs_dir.join("wwid")).unwrap_or_default().trim(),
            "vpd_pg83": read_hex(&p.sysfs_dir.join("vpd_pg83")),
            "vpd_pg80": read_hex(&p.sysfs_dir.join("vpd_pg80")),
            "vendor": fs::read_to_string(p.sysfs_dir.join("vendor")).unwrap_or_default().trim(),
            "size_sectors": fs::read_to_string(format!("/sys/block/{}/size", p.disk)).unwrap_or_default().trim(),
        }));
    }
    // a pattern through a0, back through a1
    let mut buf = Aligned::new(64 << 10);
    for (i, b) in buf.bytes().iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let pattern = buf.bytes().to_vec();
    let w = scsi::open_direct(array.path(0)).map_err(err)?;
    w.write_all_at(buf.bytes(), 1 << 20).map_err(err)?;
    drop(w);
    let mut back = Aligned::new(64 << 10);
    let r = scsi::open_direct(array.path(1)).map_err(err)?;
    r.read_exact_at(back.bytes(), 1 << 20).map_err(err)?;
    drop(r);
    let same_data = back.bytes() == &pattern[..];
    let in_file = fs::read(&spec.luns[0].backing).map_err(err)?;
    let in_backing = in_file[1 << 20..(1 << 20) + (64 << 10)] == pattern[..];
    let counts: Vec<Value> = (0..4).map(|i| json!(array.control().counts(i))).collect();
    let hosts = [array.hba_host(0), array.hba_host(1)];
    let leftovers_during = rig::cleanup::find_leftovers();
    let started = Instant::now();
    array.teardown().map_err(err)?;
    let teardown_s = started.elapsed().as_secs_f64();
    Ok(json!({
        "build_s": build_s, "teardown_s": teardown_s, "paths": paths, "hba_hosts": hosts,
        "same_data": same_data, "in_backing": in_backing, "counts": counts,
        "leftovers_during": leftovers_during,
        "leftovers_after": lio_leftovers(),
        "cleanup_finds_after": rig::cleanup::find_leftovers(),
    }))
}

pub fn check_basics(v: &Value) -> Result<(), String> {
    let p = v["paths"].as_array().ok_or("no paths")?;
    if p.len() != 4 {
        return Err(format!("expected 4 paths: {v}"));
    }
    let f = |i: usize, k: &str| p[i][k].clone();
    if f(0, "wwid") != f(1, "wwid") || f(2, "wwid") != f(3, "wwid") || f(0, "wwid") == f(2, "wwid")
    {
        return Err(format!("wwids do not pair up by LUN: {v}"));
    }
    if f(0, "wwid") != "naa.60014050000000000000000000000a01" {
        return Err(format!("LUN a's wwid is not its NAA: {}", f(0, "wwid")));
    }
    if !f(2, "wwid").as_str().unwrap_or_default().contains("lun-b") {
        return Err(format!(
            "LUN b's wwid does not carry lun-b: {}",
            f(2, "wwid")
        ));
    }
    // vpd 0x83 differs per path only in the relative port designator: the LU part is equal.
    let lu_part = |i: usize| {
        let s = f(i, "vpd_pg83").as_str().unwrap_or_default().to_string();
        s[..s.len().saturating_sub(16)].to_string()
    };
    if lu_part(0) != lu_part(1) || f(0, "vpd_pg83") == f(1, "vpd_pg83") {
        return Err(format!(
            "vpd_pg83 of one LUN's paths: {} / {}",
            f(0, "vpd_pg83"),
            f(1, "vpd_pg83")
        ));
    }
    if f(0, "host") != f(2, "host") || f(1, "host") != f(3, "host") || f(0, "host") == f(1, "host")
    {
        return Err(format!("paths do not share hosts by HBA: {v}"));
    }
    if v["same_data"] != true || v["in_backing"] != true {
        return Err(format!("data did not travel between paths: {v}"));
    }
    if v["leftovers_during"].as_array().is_none_or(|a| a.len() < 6) {
        return Err(format!(
            "cleanup does not see the live array: {}",
            v["leftovers_during"]
        ));
    }
    if v["leftovers_after"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
        || v["cleanup_finds_after"]
            .as_array()
            .is_none_or(|a| !a.is_empty())
    {
        return Err(format!("teardown left things behind: {v}"));
    }
    Ok(())
}

fn one_path_array(dir: &Path, tag: &str, cmd_time_out: Option<u32>) -> Result<scsi::Array, String> {
    let spec = ArraySpec {
        luns: vec![lun(dir, tag, &format!("{tag}-lun"))?],
        hbas: vec![hba("h0")],
        paths: vec![path("p0", 0, 0, cmd_time_out)],
        seed: 7,
    };
    scsi::Array::build(&spec, tag).map_err(err)
}

fn read_4k(file: &fs::File, buf: &mut Aligned, at: u64) -> Result<(), i32> {
    file.read_exact_at(&mut buf.bytes()[..4096], at)
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// Probe 2: CHECK CONDITION 03/11/00 on reads fails an O_DIRECT read; clearing makes reads work.
pub fn check_condition(env: &GuestEnv) -> Result<Value, String> {
    let dir = setup(env)?;
    let array = one_path_array(&dir, "probe2", None)?;
    let control = array.control();
    let file = scsi::open_direct(array.path(0)).map_err(err)?;
    let mut buf = Aligned::new(4096);
    let before = read_4k(&file, &mut buf, 0);
    control.set_rules(
        0,
        vec![ScsiRule::new(ScsiAction::CheckCondition {
            key: 3,
            asc: 0x11,
            ascq: 0,
        })
        .ops(&[ScsiOp::Read])],
    );
    let started = Instant::now();
    let during = read_4k(&file, &mut buf, 8192);
    let fail_s = started.elapsed().as_secs_f64();
    let counts_during = control.counts(0);
    // writes are not selected by the rule
    let write = file.write_all_at(&buf.bytes()[..4096], 4096).is_ok();
    control.clear(0);
    let after = read_4k(&file, &mut buf, 8192);
    let counts = control.counts(0);
    let dmesg_tail: Vec<String> = rig::guest::init::read_kernel_log()
        .lines()
        .filter(|l| l.contains("sd ") || l.contains("I/O error") || l.contains("critical"))
        .map(String::from)
        .rev()
        .take(8)
        .collect();
    drop(file);
    array.teardown().map_err(err)?;
    Ok(json!({
        "before": format!("{before:?}"), "during_errno": during.err(), "fail_s": fail_s,
        "write_ok_during": write, "after": format!("{after:?}"),
        "counts_during": counts_during, "counts": counts, "dmesg": dmesg_tail,
        "leftovers_after": lio_leftovers(),
    }))
}

pub fn check_check_condition(v: &Value) -> Result<(), String> {
    if v["before"] != "Ok(())" || v["after"] != "Ok(())" || v["write_ok_during"] != true {
        return Err(format!("reads before/after or the write failed: {v}"));
    }
    // sd maps a medium error to BLK_STS_MEDIUM; the errno is EIO or ENODATA by kernel version.
    let errno = v["during_errno"].as_i64().unwrap_or(0);
    if errno != i64::from(libc::EIO) && errno != i64::from(libc::ENODATA) {
        return Err(format!(
            "the read under the rule did not fail with EIO/ENODATA: {v}"
        ));
    }
    if v["counts_during"]["injected"].as_u64().unwrap_or(0) < 1 {
        return Err(format!("counts do not show the injected failure: {v}"));
    }
    if v["leftovers_after"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
    {
        return Err(format!("left behind: {v}"));
    }
    Ok(())
}

/// Samples a host's state every 50 ms until `stop`: (seconds since `t0`, state) on change.
fn watch_host(
    host: u32,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(f64, String)>> {
    std::thread::spawn(move || {
        let mut seen: Vec<(f64, String)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let s = scsi::host_state(host).unwrap_or_else(|e| e.to_string());
            if seen.last().is_none_or(|(_, last)| *last != s) {
                seen.push((t0.elapsed().as_secs_f64(), s));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    })
}

/// Reads 4 KiB from a healthy path in a loop until `stop`; returns the completion times.
fn healthy_reader(
    dev: PathBuf,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<f64>, u64)> {
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let mut times = Vec::new();
        let mut errors = 0;
        let Ok(file) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&dev)
        else {
            return (times, u64::MAX);
        };
        let mut buf = Aligned::new(4096);
        while !stop.load(Ordering::Relaxed) {
            if read_4k(&file, &mut buf, 0).is_err() {
                errors += 1;
            }
            times.push(t0.elapsed().as_secs_f64());
            std::thread::sleep(Duration::from_millis(20));
        }
        (times, errors)
    })
}

fn freeze_run(dir: &Path, policy: AbortPolicy, tag: &str) -> Result<Value, String> {
    let spec = ArraySpec {
        luns: vec![
            lun(dir, &format!("{tag}x"), &format!("{tag}-x"))?,
            lun(dir, &format!("{tag}y"), &format!("{tag}-y"))?,
        ],
        hbas: vec![hba("h0")],
        // TCMU's own timeout above the SCSI timeout (5 s), so the error handler runs.
        paths: vec![
            path("stuck", 0, 0, Some(15)),
            path("healthy", 1, 0, Some(15)),
        ],
        seed: 3,
    };
    let array = scsi::Array::build(&spec, tag).map_err(err)?;
    let control = array.control();
    let knobs: Vec<Value> = (0..2)
        .map(|i| {
            scsi::set_device_knobs(array.path(i), Some(5), Some(5), None)
                .map(|k| json!(k))
                .map_err(err)
        })
        .collect::<Result<_, _>>()?;
    let eh_deadline = scsi::set_eh_deadline(array.hba_host(0), Some(10)).map_err(err)?;
    let stuck = array.path(0).clone();
    let file = scsi::open_direct(&stuck).map_err(err)?;
    control.set_rules(
        0,
        vec![ScsiRule::new(ScsiAction::NoResponse { abort: policy })],
    );
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let host_watch = watch_host(array.hba_host(0), t0, stop.clone());
    let reader = healthy_reader(array.path(1).dev_node.clone(), t0, stop.clone());
    let mut buf = Aligned::new(4096);
    let result = read_4k(&file, &mut buf, 0);
    let read_error_s = t0.elapsed().as_secs_f64();
    let state_at_error = scsi::device_state(&stuck).unwrap_or_default();
    // let the host come back, then a little more
    let limit = Instant::now() + Duration::from_secs(120);
    while scsi::host_state(array.hba_host(0)).is_ok_and(|s| s != "running")
        && Instant::now() < limit
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let host_states = host_watch.join().map_err(|_| "host watcher panicked")?;
    let (times, healthy_errors) = reader.join().map_err(|_| "reader panicked")?;
    let mut gaps: Vec<(f64, f64)> = times.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
    gaps.sort_by(|a, b| b.1.total_cmp(&a.1));
    let final_state = scsi::device_state(&stuck).unwrap_or_default();
    let counts = control.counts(0);
    let log: Vec<Value> = control
        .log(0)
        .iter()
        .map(|e| json!({"t": e.at.saturating_duration_since(t0).as_secs_f64(), "cmd": e.cmd_id, "op": e.opcode, "kind": format!("{:?}", e.kind)}))
        .collect();
    control.clear(0);
    drop(file);
    array.teardown().map_err(err)?;
    Ok(json!({
        "policy": format!("{policy:?}"), "knobs": knobs, "eh_deadline": format!("{eh_deadline:?}"),
        "read_errno": result.err(), "read_error_s": read_error_s,
        "state_at_error": state_at_error, "final_state": final_state,
        "host_states": host_states,
        "healthy_reads": times.len(), "healthy_errors": healthy_errors,
        "healthy_max_gap": gaps.first().map(|g| json!({"from_s": g.0, "gap_s": g.1})),
        "counts": counts, "log": log,
    }))
}

/// Probe 3: NoResponse with timeout 5 s / eh_timeout 5 s, abort honoured vs ignored: when the read
/// fails, what the host goes through, how long a healthy LUN on the same host stalls.
pub fn freeze(env: &GuestEnv) -> Result<Value, String> {
    let dir = setup(env)?;
    let honour = freeze_run(&dir, AbortPolicy::Honour, "probe3h")?;
    let ignore = freeze_run(&dir, AbortPolicy::Ignore, "probe3i")?;
    Ok(json!({ "honour": honour, "ignore": ignore, "leftovers_after": lio_leftovers() }))
}

pub fn check_freeze(v: &Value) -> Result<(), String> {
    for run in ["honour", "ignore"] {
        let r = &v[run];
        if r["read_errno"].is_null() {
            return Err(format!("{run}: the held read did not fail: {r}"));
        }
        let states: Vec<&str> = r["host_states"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s[1].as_str()).collect())
            .unwrap_or_default();
        if !states.iter().any(|s| s.contains("recovery")) {
            return Err(format!(
                "{run}: the host never went into recovery: {states:?}"
            ));
        }
        if r["healthy_max_gap"]["gap_s"].as_f64().unwrap_or(0.0) < 3.0 {
            return Err(format!(
                "{run}: the healthy LUN did not freeze: {}",
                r["healthy_max_gap"]
            ));
        }
        if r["final_state"] != "offline" {
            return Err(format!(
                "{run}: the stuck device ends {}, not offline",
                r["final_state"]
            ));
        }
        if r["counts"]["tmr_received"].as_u64().unwrap_or(0) == 0 {
            return Err(format!("{run}: no TMR reached the array: {}", r["counts"]));
        }
    }
    if v["honour"]["counts"]["aborted"].as_u64().unwrap_or(0) == 0 {
        return Err(format!(
            "honour: nothing was aborted: {}",
            v["honour"]["counts"]
        ));
    }
    if v["ignore"]["counts"]["tmr_ignored"].as_u64().unwrap_or(0) == 0 {
        return Err(format!(
            "ignore: no TMR was ignored: {}",
            v["ignore"]["counts"]
        ));
    }
    if v["leftovers_after"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
    {
        return Err(format!("left behind: {}", v["leftovers_after"]));
    }
    Ok(())
}

/// Probe 4: port offline fails IO (how fast, with timeout 2 s), online brings it back.
pub fn port_offline(env: &GuestEnv) -> Result<Value, String> {
    let dir = setup(env)?;
    let array = one_path_array(&dir, "probe4", None)?;
    let control = array.control();
    let knobs = scsi::set_device_knobs(array.path(0), Some(2), Some(2), None).map_err(err)?;
    let file = scsi::open_direct(array.path(0)).map_err(err)?;
    let mut buf = Aligned::new(4096);
    let before = read_4k(&file, &mut buf, 0);
    control.set_port_online(0, false).map_err(err)?;
    let t = Instant::now();
    let offline = read_4k(&file, &mut buf, 4096);
    let offline_fail_s = t.elapsed().as_secs_f64();
    let state_offline = scsi::device_state(array.path(0)).unwrap_or_default();
    control.set_port_online(0, true).map_err(err)?;
    let t = Instant::now();
    let online = read_4k(&file, &mut buf, 4096);
    let online_s = t.elapsed().as_secs_f64();
    let counts = control.counts(0);
    drop(file);
    array.teardown().map_err(err)?;
    Ok(json!({
        "knobs": knobs, "before": format!("{before:?}"), "offline_errno": offline.err(),
        "offline_fail_s": offline_fail_s, "state_while_offline": state_offline,
        "online": format!("{online:?}"), "online_read_s": online_s, "counts": counts,
        "leftovers_after": lio_leftovers(),
    }))
}

pub fn check_port_offline(v: &Value) -> Result<(), String> {
    if v["before"] != "Ok(())" || v["online"] != "Ok(())" {
        return Err(format!("IO did not work before/after: {v}"));
    }
    if v["offline_errno"].is_null() {
        return Err(format!("IO did not fail with the port offline: {v}"));
    }
    if v["leftovers_after"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
    {
        return Err(format!("left behind: {v}"));
    }
    Ok(())
}

/// Probe 5: fio 4 KiB random reads, O_DIRECT, QD 8, through one path.
pub fn throughput(env: &GuestEnv) -> Result<Value, String> {
    let dir = setup(env)?;
    let array = one_path_array(&dir, "probe5", None)?;
    let mut out = json!({});
    for qd in [1u32, 8] {
        let config = rig::workload::WorkloadConfig {
            path: array.path(0).dev_node.clone(),
            size_bytes: LUN_BYTES,
            block_size: 4096,
            queue_depth: qd,
            read_percent: 100,
            duration: Duration::from_secs(5),
            rate_iops: None,
            sequential: false,
            verify: false,
            seed: 1,
            stall_threshold: Duration::from_secs(5),
            engine: rig::workload::EngineKind::Fio(rig::workload::fio::FioMode::Default),
        };
        let report =
            rig::workload::fio::run(&config, rig::workload::fio::FioMode::Default).map_err(err)?;
        out[format!("qd{qd}")] = json!({
            "reads": report.reads, "read_errors": report.read_errors,
            "elapsed_s": report.elapsed.as_secs_f64(),
            "iops": report.reads as f64 / report.elapsed.as_secs_f64().max(1e-9),
            "p50_us": report.latency.p50_us, "p99_us": report.latency.p99_us,
        });
    }
    out["counts"] = json!(array.control().counts(0));
    array.teardown().map_err(err)?;
    Ok(out)
}

pub fn check_throughput(v: &Value) -> Result<(), String> {
    if v["qd8"]["reads"].as_u64().unwrap_or(0) == 0
        || v["qd8"]["read_errors"].as_u64().unwrap_or(1) != 0
    {
        return Err(format!("fio did not read cleanly: {v}"));
    }
    Ok(())
}

/// Probe 6: cleanup after a run that died: an array left behind (its handlers still running) is
/// found and removed; foreign LIO objects — including a WWN with pathrig's prefix whose LUN
/// links to a backstore that is not pathrig's — are left alone.
pub fn cleanup(env: &GuestEnv) -> Result<Value, String> {
    use rig::scsi::lio;
    let dir = setup(env)?;
    let array = one_path_array(&dir, "probe6", None)?;
    let disk = array.path(0).disk.clone();
    // The run "dies": nothing of the array is torn down.
    std::mem::forget(array);
    // Foreign objects: a fileio backstore, a WWN of someone else's, and one with our prefix
    // but a LUN on the foreign backstore.
    let core = Path::new(lio::TARGET).join("core");
    // (a TCMU backstore in another HBA, not named pathrig-: target_core_file is not loaded)
    let foreign_bs = core.join("user_3/foreign");
    fs::create_dir_all(&foreign_bs).map_err(|e| format!("mkdir foreign backstore: {e}"))?;
    lio::write_attr(
        &foreign_bs.join("control"),
        "dev_size=1048576,dev_config=foreign/foreign",
    )
    .map_err(err)?;
    lio::write_attr(&foreign_bs.join("enable"), "1").map_err(err)?;
    let loopback = Path::new(lio::LOOPBACK);
    let foreign_wwn = loopback.join("naa.5001405000000001");
    fs::create_dir_all(foreign_wwn.join("tpgt_1"))
        .map_err(|e| format!("mkdir foreign WWN: {e}"))?;
    let lookalike = loopback.join(format!("{}ffffffffffff", lio::WWN_PREFIX));
    let lookalike_lun = lookalike.join("tpgt_1/lun/lun_0");
    fs::create_dir_all(&lookalike_lun).map_err(|e| format!("mkdir look-alike LUN: {e}"))?;
    std::os::unix::fs::symlink(&foreign_bs, lookalike_lun.join("foreign-port"))
        .map_err(|e| format!("link the look-alike LUN: {e}"))?;
    let found_before = rig::cleanup::find_leftovers();
    let work_root = dir.join("no-work-root");
    let report = rig::cleanup::remove_leftovers(&work_root, &[]);
    let found_after = rig::cleanup::find_leftovers();
    let disk_gone = !Path::new("/sys/block").join(&disk).exists();
    let foreign_left = json!({
        "backstore": foreign_bs.is_dir(),
        "wwn": foreign_wwn.is_dir(),
        "lookalike_wwn": lookalike.is_dir(),
        "lookalike_link": lookalike_lun.join("foreign-port").exists(),
    });
    // Remove the foreign objects by hand (this probe made them).
    let _ = fs::remove_file(lookalike_lun.join("foreign-port"));
    let _ = fs::remove_dir(&lookalike_lun);
    let _ = fs::remove_dir(lookalike.join("tpgt_1"));
    let _ = fs::remove_dir(&lookalike);
    let _ = fs::remove_dir(foreign_wwn.join("tpgt_1"));
    let _ = fs::remove_dir(&foreign_wwn);
    let _ = fs::remove_dir(&foreign_bs);
    let _ = fs::remove_dir(core.join("user_3"));
    Ok(json!({
        "found_before": found_before, "removed_lio": report.removed_lio, "failures": report.failures,
        "found_after": found_after, "disk_gone": disk_gone, "foreign_left": foreign_left,
        "leftovers_at_end": lio_leftovers(),
    }))
}

pub fn check_cleanup(v: &Value) -> Result<(), String> {
    let removed = v["removed_lio"].as_array().map(Vec::len).unwrap_or(0);
    if removed < 2 {
        return Err(format!(
            "cleanup did not remove the dead array's WWN and backstore: {v}"
        ));
    }
    if v["found_after"].as_array().is_none_or(|a| !a.is_empty()) || v["disk_gone"] != true {
        return Err(format!("the dead array survived cleanup: {v}"));
    }
    for (what, left) in v["foreign_left"].as_object().ok_or("no foreign_left")? {
        if left != true {
            return Err(format!("cleanup removed a foreign {what}: {v}"));
        }
    }
    let found: Vec<&str> = v["found_before"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    if found
        .iter()
        .any(|s| s.contains("ffffffffffff") || s.contains("foreign") || s.contains("naa.5001405"))
    {
        return Err(format!("find_leftovers claims a foreign object: {found:?}"));
    }
    if v["leftovers_at_end"]
        .as_array()
        .is_none_or(|a| !a.is_empty())
    {
        return Err(format!("left behind: {v}"));
    }
    Ok(())
}
