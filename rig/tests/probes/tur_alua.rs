//! Probe `tur-alua`: the `tur` checker against a LIO LUN (fileio backstore behind a tcm_loop
//! port) whose ALUA port group is set optimized, standby and unavailable through configfs —
//! the ghost verdict (NOT READY 04/0B) from a real target, which scsi_debug cannot give.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rig::checker::tur;
use rig::guest::init::GuestEnv;
use serde_json::json;

use super::scsi_debug::{read, write};

const CONFIGFS: &str = "/sys/kernel/config";
const BACKSTORE: &str = "/sys/kernel/config/target/core/fileio_0/pathrig-tur-alua";
const WWN: &str = "/sys/kernel/config/target/loopback/naa.50014050000a1aa0";
const BACKING: &str = "/run/pathrig-tur-alua";

/// Everything made, undone in reverse on every exit path.
#[derive(Default)]
struct Made {
    steps: Vec<Undo>,
}

enum Undo {
    Dir(PathBuf),
    Link(PathBuf),
    Nexus(PathBuf),
    File(PathBuf),
}

impl Drop for Made {
    fn drop(&mut self) {
        for step in self.steps.drain(..).rev() {
            let _ = match step {
                Undo::Dir(p) => fs::remove_dir(p),
                Undo::Link(p) => fs::remove_file(p),
                Undo::Nexus(p) => fs::write(p, "NULL"),
                Undo::File(p) => fs::remove_file(p),
            };
        }
    }
}

fn mkdir(made: &mut Made, path: &str) -> Result<(), String> {
    fs::create_dir(path).map_err(|e| format!("mkdir {path}: {e}"))?;
    made.steps.push(Undo::Dir(path.into()));
    Ok(())
}

fn lio_disk() -> Option<(String, PathBuf)> {
    for entry in fs::read_dir("/sys/class/scsi_device").ok()?.flatten() {
        let dev = entry.path().join("device");
        if read(&dev.join("vendor").to_string_lossy()) != "LIO-ORG" {
            continue;
        }
        let block = fs::read_dir(dev.join("block")).ok()?.flatten().next()?;
        let node = PathBuf::from("/dev").join(block.file_name());
        return Some((entry.file_name().to_string_lossy().to_string(), node));
    }
    None
}

pub fn tur_alua(env: &GuestEnv) -> Result<serde_json::Value, String> {
    env.modules
        .load(&["sd_mod", "target_core_mod", "target_core_file", "tcm_loop"])
        .map_err(|e| e.to_string())?;
    if !Path::new(&format!("{CONFIGFS}/target")).exists() {
        nix::mount::mount(
            Some("configfs"),
            CONFIGFS,
            Some("configfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount configfs: {e}"))?;
    }
    let mut made = Made::default();
    rig::backing::create_backing_file(Path::new(BACKING), 8 << 20).map_err(|e| e.to_string())?;
    made.steps.push(Undo::File(BACKING.into()));
    let _ = fs::create_dir(format!("{CONFIGFS}/target/core/fileio_0"));
    mkdir(&mut made, BACKSTORE)?;
    write(
        format!("{BACKSTORE}/control"),
        &format!("fd_dev_name={BACKING},fd_dev_size={}", 8 << 20),
    )?;
    write(format!("{BACKSTORE}/enable"), "1")?;
    // The fabric's directory appears when first made.
    let fabric = format!("{CONFIGFS}/target/loopback");
    if !Path::new(&fabric).exists() {
        mkdir(&mut made, &fabric)?;
    }
    mkdir(&mut made, WWN)?;
    let tpgt = format!("{WWN}/tpgt_1");
    mkdir(&mut made, &tpgt)?;
    // The nexus first (a LUN linked without one is scanned and lost), undone after the LUN:
    // undo runs in reverse.
    let nexus = format!("{tpgt}/nexus");
    write(&nexus, "naa.50014050000a1aa1")?;
    made.steps.push(Undo::Nexus(nexus.into()));
    let lun = format!("{tpgt}/lun/lun_0");
    mkdir(&mut made, &lun)?;
    let link = format!("{lun}/pathrig-tur-alua");
    std::os::unix::fs::symlink(BACKSTORE, &link).map_err(|e| format!("link the LUN: {e}"))?;
    made.steps.push(Undo::Link(link.into()));

    let end = Instant::now() + Duration::from_secs(10);
    let (hctl, node) = loop {
        if let Some(found) = lio_disk().filter(|(_, n)| n.exists()) {
            break found;
        }
        if Instant::now() > end {
            return Err("no LIO disk appeared within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let group = format!("{BACKSTORE}/alua/default_tg_pt_gp");
    let access_type = read(&format!("{group}/alua_access_type"));
    let file = fs::File::open(&node).map_err(|e| format!("open {}: {e}", node.display()))?;
    let mut states = serde_json::Map::new();
    for (name, state) in [
        ("optimized", "0"),
        ("standby", "2"),
        ("unavailable", "3"),
        ("transitioning", "15"),
        ("optimized_again", "0"),
    ] {
        let set = write(format!("{group}/alua_access_state"), state);
        let outcome = tur::run_tur(&file, Duration::from_secs(2));
        states.insert(
            name.into(),
            json!({
                "set": set.err(),
                "verdict": outcome.verdict,
                "attempts": outcome.attempts,
                "detail": outcome.detail(),
                "reply": outcome.reply,
            }),
        );
    }
    drop(file);
    drop(made);
    Ok(json!({
        "disk": hctl, "node": node, "alua_access_type": access_type,
        "states": states,
        "left_behind": Path::new(WWN).exists() || Path::new(BACKSTORE).exists(),
    }))
}

pub fn check_tur_alua(v: &serde_json::Value) -> Result<(), String> {
    let s = &v["states"];
    let want = |what: &str, cond: bool| {
        if cond {
            Ok(())
        } else {
            Err(format!("{what}: {v:#}"))
        }
    };
    want("optimized is up", s["optimized"]["verdict"] == "up")?;
    want(
        "standby is ghost (NOT READY 04/0B)",
        s["standby"]["verdict"] == "ghost"
            && s["standby"]["reply"]["Ok"]["sense"] == json!({"key": 2, "asc": 4, "ascq": 11}),
    )?;
    want(
        "unavailable is down (NOT READY 04/0C)",
        s["unavailable"]["verdict"] == "down"
            && s["unavailable"]["reply"]["Ok"]["sense"] == json!({"key": 2, "asc": 4, "ascq": 12}),
    )?;
    want(
        "optimized again is up",
        s["optimized_again"]["verdict"] == "up",
    )?;
    want("nothing is left in configfs", v["left_behind"] == false)?;
    Ok(())
}
