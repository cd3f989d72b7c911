//! Guest probes of the array's ALUA port groups (`rig::scsi::alua`): one LUN, two paths on two
//! HBAs in two port groups (group 1 active/optimized, group 2 standby), spoken to through
//! SG_IO as an initiator's `sg_rtpg`/`sg_inq` would, and through the block device as sd does.
//! (1) states in REPORT TARGET PORT GROUPS, INQUIRY's TPGS, VPD 0x83 in sysfs, 04/0B on the
//! standby path; (2) explicit changes (the rig's API and SET TARGET PORT GROUPS) give each
//! affected path one UNIT ATTENTION 2A/06; (3) on_io trespass after N reads, in-flight IO on
//! the old owner answered 04/0B.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use rig::checker::tur::{self, DataPhase, ScsiReply};
use rig::guest::init::GuestEnv;
use rig::scsi::{
    self, AbortPolicy, AluaSpec, AluaState, ArraySpec, PortGroupSpec, ScsiAction, ScsiOp, ScsiRule,
    Trespass,
};
use serde_json::{json, Value};

use super::scsi_array::{hba, lio_leftovers, lun, path, read_hex, setup, Aligned};

const SG_TIMEOUT: Duration = Duration::from_secs(20);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One LUN with groups 1 (active/optimized) and 2 (standby); path `opt` in 1, `stby` in 2.
fn two_group_array(tag: &str, trespass: Trespass) -> Result<scsi::Array, String> {
    let dir = std::path::PathBuf::from("/run/pathrig-scsi-probe");
    let mut l = lun(&dir, "a", "naa.60014050000000000000000000000a1a")?;
    l.alua = Some(AluaSpec {
        groups: vec![
            PortGroupSpec {
                id: 1,
                state: AluaState::ActiveOptimized,
            },
            PortGroupSpec {
                id: 2,
                state: AluaState::Standby,
            },
        ],
        trespass,
    });
    let mut opt = path("opt", 0, 0, None);
    opt.port_group = Some(1);
    let mut stby = path("stby", 0, 1, None);
    stby.port_group = Some(2);
    let spec = ArraySpec {
        luns: vec![l],
        hbas: vec![hba("h0"), hba("h1")],
        paths: vec![opt, stby],
        seed: 7,
    };
    scsi::Array::build(&spec, tag).map_err(err)
}

fn open(array: &scsi::Array, i: usize) -> Result<File, String> {
    let node = &array.path(i).dev_node;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|e| format!("open {}: {e}", node.display()))
}

/// `good`, `K/AS/AQ` of the sense, or the raw bytes when neither.
fn verdict(r: &ScsiReply) -> String {
    match r.sense {
        Some(s) if r.status == tur::status::CHECK_CONDITION => {
            format!("{:x}/{:02x}/{:02x}", s.key, s.asc, s.ascq)
        }
        _ if r.status == 0 && r.host_status == 0 && !r.not_ok => "good".into(),
        _ => format!(
            "status {:#x} host {:#x} driver {:#x}",
            r.status, r.host_status, r.driver_status
        ),
    }
}

fn tur(f: &File) -> Result<String, String> {
    tur::send_tur(f, SG_TIMEOUT)
        .map(|r| verdict(&r))
        .map_err(err)
}

fn read10(f: &File, lba: u32) -> Result<String, String> {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x28;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[8] = 1;
    let mut buf = vec![0u8; 512];
    tur::send_cdb(f, &cdb, DataPhase::In(&mut buf), SG_TIMEOUT)
        .map(|(r, _)| verdict(&r))
        .map_err(err)
}

fn inquiry_tpgs(f: &File) -> Result<u8, String> {
    let cdb = [0x12, 0, 0, 0, 96, 0];
    let mut buf = vec![0u8; 96];
    let (r, n) = tur::send_cdb(f, &cdb, DataPhase::In(&mut buf), SG_TIMEOUT).map_err(err)?;
    if verdict(&r) != "good" || n < 6 {
        return Err(format!("INQUIRY: {} ({n} bytes)", verdict(&r)));
    }
    Ok((buf[5] >> 4) & 3)
}

/// REPORT TARGET PORT GROUPS (extended header), decoded: the groups with their states,
/// status codes and relative ports.
fn rtpg(f: &File) -> Result<Value, String> {
    let mut cdb = [0u8; 12];
    cdb[0] = 0xa3;
    cdb[1] = 0x20 | 0x0a;
    cdb[6..10].copy_from_slice(&1024u32.to_be_bytes());
    let mut buf = vec![0u8; 1024];
    let (r, n) = tur::send_cdb(f, &cdb, DataPhase::In(&mut buf), SG_TIMEOUT).map_err(err)?;
    if verdict(&r) != "good" {
        return Err(format!("RTPG: {}", verdict(&r)));
    }
    let data = &buf[..n];
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize + 4;
    let mut at = if data[4] & 0x70 == 0x10 { 8 } else { 4 };
    let mut groups = Vec::new();
    while at + 8 <= len.min(data.len()) {
        let d = &data[at..];
        let count = usize::from(d[7]);
        let ports: Vec<u16> = (0..count)
            .map(|i| u16::from_be_bytes([d[8 + 4 * i + 2], d[8 + 4 * i + 3]]))
            .collect();
        groups.push(json!({
            "group": u16::from_be_bytes([d[2], d[3]]),
            "state": d[0] & 0x0f,
            "supported": d[1],
            "status_code": d[5],
            "ports": ports,
        }));
        at += 8 + 4 * count;
    }
    Ok(json!({ "extended": data[4] & 0x70 == 0x10, "length": len, "groups": groups }))
}

/// SET TARGET PORT GROUPS with one descriptor.
fn stpg(f: &File, group: u16, state: u8) -> Result<String, String> {
    let g = group.to_be_bytes();
    let list = [0, 0, 0, 0, state, 0, g[0], g[1]];
    let mut cdb = [0u8; 12];
    cdb[0] = 0xa4;
    cdb[1] = 0x0a;
    cdb[6..10].copy_from_slice(&(list.len() as u32).to_be_bytes());
    tur::send_cdb(f, &cdb, DataPhase::Out(&list), SG_TIMEOUT)
        .map(|(r, _)| verdict(&r))
        .map_err(err)
}

/// VPD 0x83 designators of the target port as the initiator's sysfs has them: (type, value).
fn port_designators(vpd: &[u8]) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= vpd.len() {
        let len = usize::from(vpd[at + 3]);
        let assoc = (vpd[at + 1] >> 4) & 3;
        let kind = vpd[at + 1] & 0x0f;
        if assoc == 1 && len == 4 && at + 8 <= vpd.len() {
            let v = &vpd[at + 4..at + 8];
            out.push((kind, u32::from_be_bytes([v[0], v[1], v[2], v[3]])));
        }
        at += 4 + len;
    }
    out
}

fn alua_report(array: &scsi::Array) -> Result<Value, String> {
    let c = array.control();
    let log = c.alua_log(0).map_err(err)?;
    Ok(json!({
        "counts": c.alua_counts(0).map_err(err)?,
        "events": serde_json::to_value(&log).map_err(err)?,
    }))
}

/// Probe 1: states as the initiator reads them, and 04/0B on the standby path.
pub fn groups(env: &GuestEnv) -> Result<Value, String> {
    setup(env)?;
    let array = two_group_array("alua1", Trespass::None)?;
    let (opt, stby) = (open(&array, 0)?, open(&array, 1)?);
    let mut vpd = Vec::new();
    for p in array.paths() {
        let raw = std::fs::read(p.sysfs_dir.join("vpd_pg83")).map_err(err)?;
        vpd.push(json!({
            "path": p.name,
            "designators": port_designators(&raw),
            "hex": read_hex(&p.sysfs_dir.join("vpd_pg83")),
        }));
    }
    // Through the block device, as a file system or dm would: O_DIRECT reads.
    let mut buf = Aligned::new(4096);
    let block_read = |i: usize, buf: &mut Aligned| -> String {
        match scsi::open_direct(array.path(i)) {
            Err(e) => format!("open: {e}"),
            Ok(f) => match f.read_at(buf.bytes(), 0) {
                Ok(n) => format!("ok {n}"),
                Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
            },
        }
    };
    let started = Instant::now();
    let stby_block = block_read(1, &mut buf);
    let stby_block_ms = started.elapsed().as_millis() as u64;
    let value = json!({
        "tpgs": [inquiry_tpgs(&opt)?, inquiry_tpgs(&stby)?],
        "rtpg_via_opt": rtpg(&opt)?,
        "rtpg_via_stby": rtpg(&stby)?,
        "tur": [tur(&opt)?, tur(&stby)?],
        "read": [read10(&opt, 1)?, read10(&stby, 1)?],
        "block_read": [block_read(0, &mut buf), stby_block],
        "stby_block_read_ms": stby_block_ms,
        "stby_device_state": scsi::device_state(array.path(1)).map_err(err)?,
        "vpd": vpd,
        "alua": alua_report(&array)?,
    });
    drop((opt, stby));
    array.teardown().map_err(err)?;
    let mut value = value;
    value["leftovers"] = json!(lio_leftovers());
    Ok(value)
}

pub fn check_groups(v: &Value) -> Result<(), String> {
    let want = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v}"))
        }
    };
    want(v["tpgs"] == json!([1, 1]), "TPGS is implicit on both paths")?;
    for via in ["rtpg_via_opt", "rtpg_via_stby"] {
        let g = &v[via]["groups"];
        want(v[via]["extended"] == true, "extended header")?;
        want(
            g[0]["group"] == 1 && g[0]["state"] == 0 && g[0]["ports"] == json!([1]),
            "group 1 active/optimized with port 1",
        )?;
        want(
            g[1]["group"] == 2 && g[1]["state"] == 2 && g[1]["ports"] == json!([2]),
            "group 2 standby with port 2",
        )?;
    }
    want(v["tur"] == json!(["good", "2/04/0b"]), "TUR: good, standby")?;
    want(
        v["read"] == json!(["good", "2/04/0b"]),
        "READ: good, standby",
    )?;
    want(
        v["block_read"][0] == "ok 4096" && v["block_read"][1] == "errno 5",
        "sd: the optimized path reads, the standby one fails with EIO",
    )?;
    for (i, (port, group)) in [(1, 1), (2, 2)].into_iter().enumerate() {
        let d = &v["vpd"][i]["designators"];
        want(
            d == &json!([[4, port], [5, group]]),
            "vpd_pg83 carries the relative port (type 4) and port group (type 5)",
        )?;
    }
    want(
        v["alua"]["counts"]["refused"].as_u64() >= Some(2),
        "refusals counted",
    )?;
    want(v["leftovers"] == json!([]), "nothing left after teardown")
}

/// Probe 2: explicit changes: the rig's API, then SET TARGET PORT GROUPS from an initiator.
pub fn explicit(env: &GuestEnv) -> Result<Value, String> {
    setup(env)?;
    let array = two_group_array("alua2", Trespass::Explicit)?;
    let (opt, stby) = (open(&array, 0)?, open(&array, 1)?);
    let c = array.control();
    let before = [tur(&opt)?, tur(&stby)?];
    c.move_ownership(0, 2).map_err(err)?;
    // Each path: the unit attention once, then the new behaviour.
    let after_move = [
        [tur(&opt)?, tur(&opt)?, read10(&opt, 0)?],
        [tur(&stby)?, tur(&stby)?, read10(&stby, 0)?],
    ];
    // The initiator on path `opt` (now standby) asks for group 1 back.
    let stpg_answer = stpg(&opt, 1, 0)?;
    let after_stpg = [[tur(&opt)?, read10(&opt, 0)?], [tur(&stby)?, tur(&stby)?]];
    let report = rtpg(&stby)?;
    // A raw state change of group 2 reaches only its port.
    c.set_port_group_state(0, 2, AluaState::Unavailable)
        .map_err(err)?;
    let after_unavailable = json!([[tur(&opt)?], [tur(&stby)?, tur(&stby)?]]);
    let bad_stpg = stpg(&opt, 9, 0)?;
    let state_of_2 = c.port_group_state(0, 2).map_err(err)?;
    // multipathd's tur checker after a trespass: it retries the unit attention and gives
    // the new state in one check.
    c.move_ownership(0, 2).map_err(err)?;
    let checker = [
        tur::run_tur(&opt, SG_TIMEOUT),
        tur::run_tur(&stby, SG_TIMEOUT),
    ];
    let value = json!({
        "checker_after_trespass": serde_json::to_value(&checker).map_err(err)?,
        "tpgs": inquiry_tpgs(&opt)?,
        "before": before,
        "after_move": after_move,
        "stpg": stpg_answer,
        "after_stpg": after_stpg,
        "rtpg_after_stpg": report,
        "after_unavailable": after_unavailable,
        "stpg_unknown_group": bad_stpg,
        "state_of_2": state_of_2,
        "alua": alua_report(&array)?,
    });
    drop((opt, stby));
    array.teardown().map_err(err)?;
    Ok(value)
}

pub fn check_explicit(v: &Value) -> Result<(), String> {
    let want = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v}"))
        }
    };
    want(v["tpgs"] == 3, "TPGS implicit and explicit")?;
    want(
        v["before"] == json!(["good", "2/04/0b"]),
        "start: opt up, stby standby",
    )?;
    want(
        v["after_move"]
            == json!([
                ["6/2a/06", "2/04/0b", "2/04/0b"],
                ["6/2a/06", "good", "good"]
            ]),
        "after the move: one unit attention each, then the new states",
    )?;
    want(v["stpg"] == "good", "STPG accepted")?;
    want(
        v["after_stpg"] == json!([["good", "good"], ["6/2a/06", "2/04/0b"]]),
        "after STPG: no unit attention for the asker, one for the other path",
    )?;
    let g = &v["rtpg_after_stpg"]["groups"];
    want(
        g[0]["state"] == 0 && g[0]["status_code"] == 1 && g[1]["state"] == 2,
        "RTPG: group 1 optimized, altered by STPG; group 2 standby",
    )?;
    want(
        v["after_unavailable"] == json!([["good"], ["6/2a/06", "2/04/0c"]]),
        "unavailable: only group 2's port is told, then 04/0C",
    )?;
    want(
        v["stpg_unknown_group"] == "5/26/00",
        "STPG of an unknown group",
    )?;
    want(v["state_of_2"] == "unavailable", "state read back")?;
    let checker = &v["checker_after_trespass"];
    want(
        checker[0]["verdict"] == "ghost"
            && checker[0]["attempts"] == 2
            && checker[1]["verdict"] == "up"
            && checker[1]["attempts"] == 2,
        "tur checker: the unit attention retried, then ghost on the old owner, up on the new",
    )?;
    want(v["alua"]["counts"]["trespasses"] == 3, "three trespasses")?;
    let causes: Vec<&str> = v["alua"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "trespass")
        .filter_map(|e| e["cause"].as_str())
        .collect();
    want(
        causes == ["control", "stpg on port 1", "control"],
        "trespass events with their causes",
    )
}

/// Probe 3: on_io: reads on the standby path move ownership after 4; a read held on the old
/// owner meanwhile is answered 04/0B; TURs never trespass.
pub fn trespass(env: &GuestEnv) -> Result<Value, String> {
    setup(env)?;
    let array = two_group_array(
        "alua3",
        Trespass::OnIo {
            after_commands: 4,
            after: Duration::from_secs(600),
        },
    )?;
    let (opt, stby) = (open(&array, 0)?, open(&array, 1)?);
    let c = array.control();
    // The kernel's own scan of the new disks (sd reads the partition table) is IO too: on the
    // standby path it may already have moved ownership, back and forth while both disks are
    // scanned. Wait until the scan is over (no refusal or trespass for a second), record what
    // it did, then put group 1 back and let each path take its unit attention.
    let quiet_by = Instant::now() + Duration::from_secs(15);
    let mut last = c.alua_counts(0).map_err(err)?;
    let mut quiet_since = Instant::now();
    while Instant::now() < quiet_by && quiet_since.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
        let now = c.alua_counts(0).map_err(err)?;
        if (now.refused, now.trespasses) != (last.refused, last.trespasses) {
            quiet_since = Instant::now();
            last = now;
        }
    }
    let build_events = c.alua_log(0).map_err(err)?;
    let build_state_of_1 = c.port_group_state(0, 1).map_err(err)?;
    let build_refused = c.alua_counts(0).map_err(err)?.refused;
    // The scan may have left group 1 the owner already (a move to the owner changes nothing
    // and tells nobody): go through group 2, so each path has exactly one unit attention
    // pending whichever way the scan ended.
    c.move_ownership(0, 2).map_err(err)?;
    c.move_ownership(0, 1).map_err(err)?;
    let reset = [tur(&opt)?, tur(&opt)?, tur(&stby)?];
    let base = c.alua_counts(0).map_err(err)?.trespasses;
    let turs_on_standby: Vec<String> = (0..6).map(|_| tur(&stby)).collect::<Result<_, _>>()?;
    let trespasses_after_turs = c.alua_counts(0).map_err(err)?.trespasses - base;
    // A read on the owner, held by the array while ownership moves.
    c.set_rules(
        0,
        vec![ScsiRule::new(ScsiAction::NoResponse {
            abort: AbortPolicy::Honour,
        })
        .ops(&[ScsiOp::Read])],
    );
    let opt_clone = opt.try_clone().map_err(err)?;
    let in_flight = std::thread::spawn(move || read10(&opt_clone, 2));
    let held_by = Instant::now() + Duration::from_secs(5);
    while c.counts(0).held == 0 && Instant::now() < held_by {
        std::thread::sleep(Duration::from_millis(5));
    }
    let held = c.counts(0).held;
    let mut reads_on_standby = Vec::new();
    for _ in 0..5 {
        reads_on_standby.push(read10(&stby, 3)?);
    }
    let trespasses_after_reads = c.alua_counts(0).map_err(err)?.trespasses - base;
    c.clear(0);
    let in_flight = in_flight
        .join()
        .map_err(|_| "in-flight reader panicked".to_string())??;
    let old_owner_after = [read10(&opt, 0)?, read10(&opt, 0)?];
    let value = json!({
        "build": {
            "events": serde_json::to_value(&build_events).map_err(err)?,
            "state_of_1": build_state_of_1,
            "refused": build_refused,
        },
        "reset": reset,
        "trespass_base": base,
        "turs_on_standby": turs_on_standby,
        "trespasses_after_turs": trespasses_after_turs,
        "held": held,
        "reads_on_standby": reads_on_standby,
        "trespasses_after_reads": trespasses_after_reads,
        "in_flight_on_old_owner": in_flight,
        "old_owner_after": old_owner_after,
        "rtpg": rtpg(&opt)?,
        "alua": alua_report(&array)?,
    });
    drop((opt, stby));
    array.teardown().map_err(err)?;
    Ok(value)
}

pub fn check_trespass(v: &Value) -> Result<(), String> {
    let want = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v}"))
        }
    };
    want(
        v["turs_on_standby"]
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t == "2/04/0b")),
        "TUR on standby: 04/0B",
    )?;
    want(v["trespasses_after_turs"] == 0, "TURs do not trespass")?;
    want(v["held"] == 1, "the owner's read was held")?;
    want(
        v["reads_on_standby"] == json!(["2/04/0b", "2/04/0b", "2/04/0b", "good", "good"]),
        "the 4th read on the standby port moves ownership and is served",
    )?;
    want(v["trespasses_after_reads"] == 1, "one trespass")?;
    want(
        v["in_flight_on_old_owner"] == "2/04/0b",
        "the read in flight on the old owner gets the standby sense",
    )?;
    want(
        v["old_owner_after"] == json!(["6/2a/06", "2/04/0b"]),
        "the old owner: a unit attention, then standby",
    )?;
    let g = &v["rtpg"]["groups"];
    want(
        g[0]["state"] == 2 && g[1]["state"] == 0 && g[1]["status_code"] == 2,
        "RTPG: group 2 owns, implicitly",
    )?;
    want(
        v["alua"]["counts"]["trespasses"].as_u64() == v["trespass_base"].as_u64().map(|b| b + 1),
        "trespasses = 1 since the reset",
    )?;
    want(
        v["reset"] == json!(["6/2a/06", "good", "6/2a/06"]),
        "after the reset: each path told once, group 1 owns again",
    )?;
    let events = v["alua"]["events"].as_array().cloned().unwrap_or_default();
    want(
        events
            .iter()
            .any(|e| e["kind"] == "trespass" && e["cause"] == "io on port 2" && e["to"] == 2),
        "the trespass event names the port whose IO caused it",
    )
}

/// Probe 4: what dm-multipath does with a standby port when no hardware handler reads the
/// states: a map with the standby path in group 1 and the optimized one in group 2; reads
/// through the map fail the standby path (an I/O error to dm) and are served by group 2.
pub fn dm_without_handler(env: &GuestEnv) -> Result<Value, String> {
    use rig::dm::{multipath::Selector, Dm, MultipathTable, Sectors, Table, Target};
    setup(env)?;
    env.modules
        .load(&["dm-mod", "dm-multipath", "dm-round-robin"])
        .map_err(err)?;
    let array = two_group_array("alua4", Trespass::None)?;
    let dm = Dm::open().map_err(err)?;
    let name = rig::naming::map_name("alua-probe");
    let table = Table::single(
        Sectors::from_bytes(16 << 20),
        Target::Multipath(MultipathTable::new(
            false,
            false,
            Selector::RoundRobin,
            [vec![array.path(1).devnum], vec![array.path(0).devnum]],
        )),
    );
    let dev = dm.create(&name, &table).map_err(err)?;
    let result = (|| -> Result<Value, String> {
        let node = format!("/dev/mapper/{name}");
        let node = if std::path::Path::new(&node).exists() {
            node
        } else {
            format!("/dev/dm-{}", dev.minor)
        };
        use std::os::unix::fs::OpenOptionsExt;
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&node)
            .map_err(|e| format!("open {node}: {e}"))?;
        let mut buf = Aligned::new(4096);
        let mut reads = Vec::new();
        let started = Instant::now();
        for i in 0..8u64 {
            reads.push(match f.read_at(buf.bytes(), i * 4096) {
                Ok(n) => format!("ok {n}"),
                Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
            });
        }
        let status = dm.multipath_status(&name).map_err(err)?;
        let paths: Vec<Value> = status
            .status
            .groups
            .iter()
            .flat_map(|g| g.paths.iter())
            .map(|p| json!({"dev": p.dev.to_string(), "state": p.state.as_str(), "fail_count": p.fail_count}))
            .collect();
        Ok(json!({
            "reads": reads,
            "reads_ms": started.elapsed().as_millis() as u64,
            "status_line": status.line.render(),
            "paths": paths,
            "stby_dev": array.path(1).devnum.to_string(),
            "opt_dev": array.path(0).devnum.to_string(),
            "alua": alua_report(&array)?,
        }))
    })();
    let removed = dm.remove(&name).map_err(err);
    array.teardown().map_err(err)?;
    removed?;
    let mut value = result?;
    value["leftovers"] = json!(lio_leftovers());
    Ok(value)
}

pub fn check_dm_without_handler(v: &Value) -> Result<(), String> {
    let want = |cond: bool, what: &str| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v}"))
        }
    };
    want(
        v["reads"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x == "ok 4096")),
        "every read through the map succeeds",
    )?;
    let state_of = |dev: &Value| {
        v["paths"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| &p["dev"] == dev))
            .map(|p| p["state"].clone())
    };
    want(
        state_of(&v["stby_dev"]) == Some(json!("failed")),
        "dm failed the standby path",
    )?;
    want(
        state_of(&v["opt_dev"]) == Some(json!("active")),
        "the optimized path stays active",
    )?;
    want(v["leftovers"] == json!([]), "nothing left")
}
