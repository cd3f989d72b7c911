//! Shared by the SCSI probes: a scsi_debug disk in the guest and the driver's sysfs knobs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rig::guest::init::GuestEnv;

/// The driver's knobs (`opts`, `every_nth`, `statistics`, ...).
pub const KNOBS: &str = "/sys/bus/pseudo/drivers/scsi_debug";

/// One scsi_debug disk: its SCSI address and block device.
pub struct DebugDisk {
    pub host: u32,
    /// "H:C:T:L".
    pub hctl: String,
    /// e.g. "sda".
    pub block: String,
}

impl DebugDisk {
    pub fn node(&self) -> PathBuf {
        PathBuf::from(format!("/dev/{}", self.block))
    }

    /// A file of the device's sysfs directory (`state`, `timeout`, `eh_timeout`, `iotmo_cnt`).
    pub fn attr(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/sys/class/scsi_device/{}/device/{name}",
            self.hctl
        ))
    }

    pub fn host_state(&self) -> String {
        read(&format!("/sys/class/scsi_host/host{}/state", self.host))
    }
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
}

pub fn write(path: impl AsRef<std::path::Path>, value: &str) -> Result<(), String> {
    let path = path.as_ref();
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

/// Loads sd_mod and scsi_debug and waits (5 s at most) for the disk's block device.
pub fn load(env: &GuestEnv) -> Result<DebugDisk, String> {
    env.modules
        .load(&["sd_mod", "scsi_debug"])
        .map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(disk) = find() {
            if disk.node().exists() {
                return Ok(disk);
            }
        }
        if Instant::now() > end {
            return Err("no scsi_debug disk appeared within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn find() -> Option<DebugDisk> {
    for entry in std::fs::read_dir("/sys/class/scsi_device").ok()?.flatten() {
        let hctl = entry.file_name().to_string_lossy().to_string();
        let dev = entry.path().join("device");
        if read(&dev.join("model").to_string_lossy()) != "scsi_debug" {
            continue;
        }
        let block = std::fs::read_dir(dev.join("block"))
            .ok()?
            .flatten()
            .next()?
            .file_name()
            .to_string_lossy()
            .to_string();
        let host = hctl.split(':').next()?.parse().ok()?;
        return Some(DebugDisk { host, hctl, block });
    }
    None
}

/// Makes scsi_debug ignore every command (they time out) or answer all again.
pub fn ignore_commands(on: bool) -> Result<(), String> {
    if on {
        write(format!("{KNOBS}/statistics"), "1")?;
        write(format!("{KNOBS}/every_nth"), "1")?;
        write(format!("{KNOBS}/opts"), "4")
    } else {
        write(format!("{KNOBS}/opts"), "0")?;
        write(format!("{KNOBS}/every_nth"), "0")
    }
}
