//! Backing files and loop devices: the bottom of every leg.
//!
//! All legs of one map share one backing file, each through its own loop device, so that the legs
//! are several paths to one LUN.

use std::fs;
use std::path::{Path, PathBuf};

use loopdev::{LoopControl, LoopDevice};

use crate::dm::DevNum;
use crate::naming;
use crate::RigError;

/// A loop device pathrig attached.
#[derive(Debug, Clone)]
pub struct Loop {
    pub path: PathBuf,
    pub dev: DevNum,
}

/// Creates a zero-filled (sparse) backing file of `size` bytes at `path`.
pub fn create_backing_file(path: &Path, size: u64) -> Result<(), RigError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(RigError::io("create backing file", path))?;
    file.set_len(size)
        .map_err(RigError::io("size backing file", path))?;
    Ok(())
}

/// Attaches `file` to the next free loop device.
pub fn attach_loop(file: &Path) -> Result<Loop, RigError> {
    let loop_err = |what: &str| {
        let what = format!("{what} for {}", file.display());
        move |source| RigError::Loop { what, source }
    };
    let control = LoopControl::open().map_err(loop_err(
        "open /dev/loop-control (is the loop driver loaded?)",
    ))?;
    let device = control
        .next_free()
        .map_err(loop_err("find a free loop device"))?;
    device.with().attach(file).map_err(loop_err("attach"))?;
    let path = device.path().unwrap_or_default();
    let dev = DevNum::new(
        device.major().map_err(loop_err("read major number"))?,
        device.minor().map_err(loop_err("read minor number"))?,
    );
    Ok(Loop { path, dev })
}

/// Detaches the loop device at `path`.
pub fn detach_loop(path: &Path) -> Result<(), RigError> {
    let device = LoopDevice::open(path).map_err(|source| RigError::Loop {
        what: format!("open {}", path.display()),
        source,
    })?;
    device.detach().map_err(|source| RigError::Loop {
        what: format!("detach {}", path.display()),
        source,
    })
}

/// Loop devices whose backing file lives in a pathrig work directory: `(device path, backing file)`.
pub fn our_loops() -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim().trim_end_matches(" (deleted)").to_string();
        if naming::is_our_file(&backing) {
            found.push((PathBuf::from("/dev").join(&name), backing));
        }
    }
    found.sort();
    found
}
