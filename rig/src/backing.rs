//! Backing files and loop devices: the bottom of every leg.
//!
//! All legs of one map share one backing file, each through its own loop device, so that the legs
//! are several paths to one LUN.
//!
//! A loop device over a file on tmpfs runs buffered (tmpfs has no direct IO on the 6.1 guest
//! kernel). One over a FUSE file runs in direct-IO mode ([`attach_loop_direct`]): a buffered loop
//! device hands its backing file one request at a time, so a FUSE leg would serve one IO at a
//! time however many are queued; in direct-IO mode it submits each request as async IO and keeps
//! as many in flight as the queue holds.

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
    /// Whether the kernel runs it in direct-IO mode (`/sys/block/loopN/loop/dio`).
    pub direct_io: bool,
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

/// Attaches `file` to the next free loop device (buffered).
pub fn attach_loop(file: &Path) -> Result<Loop, RigError> {
    attach(file, false)
}

/// Attaches `file` to the next free loop device and switches it to direct-IO mode
/// (`LOOP_SET_DIRECT_IO`): every request goes to the file as async direct IO, many in flight at
/// once. The file system must support direct IO (a FUSE file does; the kernel then checks the
/// file was opened for it). Fails, leaving nothing attached, when the kernel refuses or the
/// device does not report direct IO afterwards.
pub fn attach_loop_direct(file: &Path) -> Result<Loop, RigError> {
    attach(file, true)
}

fn attach(file: &Path, direct_io: bool) -> Result<Loop, RigError> {
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
    let numbers = device
        .major()
        .and_then(|major| Ok((major, device.minor()?)));
    let checked = numbers.and_then(|numbers| {
        if direct_io {
            device.set_direct_io(true)?;
            let dio = reports_direct_io(&path);
            if dio != Some(true) {
                return Err(std::io::Error::other(format!(
                    "the kernel accepted LOOP_SET_DIRECT_IO but reports dio = {dio:?}"
                )));
            }
        }
        Ok(numbers)
    });
    match checked {
        Ok((major, minor)) => Ok(Loop {
            path,
            dev: DevNum::new(major, minor),
            direct_io,
        }),
        Err(source) => {
            let _ = device.detach();
            Err(loop_err(if direct_io {
                "attach in direct-IO mode"
            } else {
                "read the device numbers"
            })(source))
        }
    }
}

/// What `/sys/block/<name>/loop/dio` says of the loop device at `device` (`None`: unreadable).
fn reports_direct_io(device: &Path) -> Option<bool> {
    let name = device.file_name()?.to_str()?;
    let text = fs::read_to_string(format!("/sys/block/{name}/loop/dio")).ok()?;
    Some(text.trim() == "1")
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
