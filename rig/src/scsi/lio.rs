//! LIO objects in configfs for pathrig's array, all through system calls (a shell in UML costs
//! 0.3 s a command): TCMU backstores under `core/user_<PATHRIG_USER_HBA>/`, tcm_loop WWNs with
//! one TPG per path, and the proof of which objects are pathrig's for cleanup.
//!
//! Ownership: a backstore is pathrig's when its name starts with [`crate::naming::NAME_PREFIX`]
//! and it lives under a `core/user_*` HBA. A tcm_loop WWN is pathrig's when its name starts
//! with [`WWN_PREFIX`] **and** every LUN in it links to a pathrig backstore (a WWN with no LUN
//! left counts, as a half-removed one of ours). Nothing else is ever touched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::naming::NAME_PREFIX;
use crate::RigError;

pub const CONFIGFS: &str = "/sys/kernel/config";
pub const TARGET: &str = "/sys/kernel/config/target";
pub const LOOPBACK: &str = "/sys/kernel/config/target/loopback";
/// The TCMU HBA pathrig's backstores go under (`core/user_7270`): a number of our own, so
/// that removing the HBA directory when it is empty touches nobody else's.
pub const PATHRIG_USER_HBA: u32 = 7270;
/// The TCMU handler name in `dev_config` (`pathrig/<backstore>`).
pub const HANDLER_NAME: &str = "pathrig";
/// Start of every target-port WWN pathrig makes (`naa.5072…`: 0x50 0x72 = "Pr").
pub const WWN_PREFIX: &str = "naa.5072";
/// Start of every initiator-port WWN pathrig gives a nexus.
pub const INITIATOR_PREFIX: &str = "naa.5073";

pub fn user_hba_dir() -> PathBuf {
    Path::new(TARGET).join(format!("core/user_{PATHRIG_USER_HBA}"))
}

/// Writes `value` to a configfs or sysfs attribute.
pub fn write_attr(path: &Path, value: &str) -> Result<(), RigError> {
    fs::write(path, value).map_err(RigError::io(format!("write {value:?} to"), path))
}

pub fn read_attr(path: &Path) -> Result<String, RigError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(RigError::io("read", path))
}

pub fn mkdir(path: &Path) -> Result<(), RigError> {
    fs::create_dir(path).map_err(RigError::io("mkdir", path))
}

pub fn rmdir(path: &Path) -> Result<(), RigError> {
    fs::remove_dir(path).map_err(RigError::io("rmdir", path))
}

/// Mounts configfs if it is not, and checks LIO is there (target_core_mod loaded).
pub fn ensure_configfs() -> Result<(), RigError> {
    if !Path::new(TARGET).is_dir() {
        let _ = nix::mount::mount(
            Some("configfs"),
            CONFIGFS,
            Some("configfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    if !Path::new(TARGET).is_dir() {
        return Err(RigError::Guest(format!(
            "{TARGET} is missing: load the SCSI modules first (rig::scsi::SCSI_MODULES)"
        )));
    }
    if !Path::new(LOOPBACK).is_dir() {
        // The fabric directory appears on first mkdir once tcm_loop is loaded.
        fs::create_dir(LOOPBACK)
            .or_else(|e| {
                if Path::new(LOOPBACK).is_dir() {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(RigError::io("mkdir (is tcm_loop loaded?)", LOOPBACK))?;
    }
    Ok(())
}

/// A configfs-safe piece of a name: letters, digits, `-`, `_`, `.`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 12 hex digits of a hash of `parts`, for WWNs.
pub fn wwn_suffix(parts: &[&str]) -> String {
    let h = parts.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, p| {
        p.bytes().chain(std::iter::once(0)).fold(h, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    });
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// The uio device whose name is `tcm-user/<hba>/<backstore>/<dev_config>`.
pub fn find_uio(backstore: &str) -> Option<(String, u64)> {
    let want = format!("tcm-user/{PATHRIG_USER_HBA}/{backstore}/{HANDLER_NAME}/{backstore}");
    for entry in fs::read_dir("/sys/class/uio").ok()?.flatten() {
        let dir = entry.path();
        if read_attr(&dir.join("name")).ok().as_deref() == Some(want.as_str()) {
            let size = read_attr(&dir.join("maps/map0/size")).ok()?;
            let size = u64::from_str_radix(size.trim_start_matches("0x"), 16).ok()?;
            return Some((entry.file_name().to_string_lossy().to_string(), size));
        }
    }
    None
}

/// Whether uio device `name` (`uioN`) is one of pathrig's backstores.
pub fn uio_is_ours(uio_name: &str) -> bool {
    let prefix = format!("tcm-user/{PATHRIG_USER_HBA}/{NAME_PREFIX}");
    read_attr(&Path::new("/sys/class/uio").join(uio_name).join("name"))
        .is_ok_and(|n| n.starts_with(&prefix))
}

fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Pathrig's backstores: `core/user_*/pathrig-*`.
pub fn our_backstores() -> Vec<PathBuf> {
    list_dirs(&Path::new(TARGET).join("core"))
        .into_iter()
        .filter(|h| name_of(h).starts_with("user_"))
        .flat_map(|h| list_dirs(&h))
        .filter(|b| name_of(b).starts_with(NAME_PREFIX))
        .collect()
}

/// The LUN directories of a WWN: `tpgt_*/lun/lun_*`.
fn wwn_luns(wwn: &Path) -> Vec<PathBuf> {
    list_dirs(wwn)
        .into_iter()
        .filter(|t| name_of(t).starts_with("tpgt_"))
        .flat_map(|t| list_dirs(&t.join("lun")))
        .collect()
}

/// The backstore directories a LUN directory links to.
fn lun_links(lun: &Path) -> Vec<(PathBuf, PathBuf)> {
    fs::read_dir(lun)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            let target = if target.is_absolute() {
                target
            } else {
                lun.join(target)
            };
            Some((e.path(), target))
        })
        .collect()
}

/// Whether a backstore path (as a link target) is one of ours.
fn is_our_backstore(target: &Path) -> bool {
    let parent = target.parent().map(name_of).unwrap_or_default();
    parent.starts_with("user_") && name_of(target).starts_with(NAME_PREFIX)
}

/// Pathrig's tcm_loop WWNs (see the module comment for the proof).
pub fn our_wwns() -> Vec<PathBuf> {
    list_dirs(Path::new(LOOPBACK))
        .into_iter()
        .filter(|w| name_of(w).starts_with(WWN_PREFIX))
        .filter(|w| {
            wwn_luns(w).iter().all(|lun| {
                lun_links(lun)
                    .iter()
                    .all(|(_, target)| is_our_backstore(target))
            })
        })
        .collect()
}

/// Removes one of our WWNs with everything in it, in the order LIO needs: LUN links, LUN
/// directories, nexus, TPGs, the WWN. Returns what failed.
pub fn remove_wwn(wwn: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    for lun in wwn_luns(wwn) {
        for (link, _) in lun_links(&lun) {
            if let Err(e) = fs::remove_file(&link) {
                failures.push(format!("unlink {}: {e}", link.display()));
            }
        }
        if let Err(e) = rmdir(&lun) {
            failures.push(e.to_string());
        }
    }
    for tpg in list_dirs(wwn)
        .into_iter()
        .filter(|t| name_of(t).starts_with("tpgt_"))
    {
        let nexus = tpg.join("nexus");
        if read_attr(&nexus).is_ok_and(|n| !n.is_empty() && n != "NULL") {
            if let Err(e) = write_attr(&nexus, "NULL") {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = rmdir(&tpg) {
            failures.push(e.to_string());
        }
    }
    if let Err(e) = rmdir(wwn) {
        failures.push(e.to_string());
    }
    failures
}

/// Removes one of our backstores, and our TCMU HBA directory once it is empty.
pub fn remove_backstore(backstore: &Path) -> Result<(), RigError> {
    rmdir(backstore)?;
    remove_user_hba_if_empty();
    Ok(())
}

pub fn remove_user_hba_if_empty() {
    let hba = user_hba_dir();
    if hba.is_dir() && list_dirs(&hba).is_empty() {
        let _ = fs::remove_dir(&hba);
    }
}

/// Every pathrig LIO object that exists, described, for `cleanup::find_leftovers`.
pub fn leftovers() -> Vec<String> {
    if !Path::new(TARGET).is_dir() {
        return Vec::new();
    }
    let mut found: Vec<String> = our_wwns()
        .iter()
        .map(|w| format!("tcm_loop WWN {}", w.display()))
        .collect();
    found.extend(
        our_backstores()
            .iter()
            .map(|b| format!("TCMU backstore {}", b.display())),
    );
    found
}

/// Removes every pathrig LIO object: WWNs first, then backstores. Returns (removed, failures).
pub fn remove_leftovers() -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    if !Path::new(TARGET).is_dir() {
        return (removed, failures);
    }
    for wwn in our_wwns() {
        let f = remove_wwn(&wwn);
        if f.is_empty() {
            removed.push(format!("tcm_loop WWN {}", wwn.display()));
        }
        failures.extend(f);
    }
    for b in our_backstores() {
        match rmdir(&b) {
            Ok(()) => removed.push(format!("TCMU backstore {}", b.display())),
            Err(e) => failures.push(e.to_string()),
        }
    }
    remove_user_hba_if_empty();
    (removed, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_configfs_safe_and_wwns_have_16_digits() {
        assert_eq!(sanitize("a b/c"), "a_b_c");
        let w = format!("{WWN_PREFIX}{}", wwn_suffix(&["run1", "hba0"]));
        assert_eq!(w.len(), 4 + 16);
        assert_ne!(wwn_suffix(&["run1", "hba0"]), wwn_suffix(&["run1", "hba1"]));
        assert_ne!(wwn_suffix(&["run1", "a"]), wwn_suffix(&["run1a", ""]));
    }

    #[test]
    fn only_prefixed_backstores_under_user_hbas_are_ours() {
        assert!(is_our_backstore(Path::new(
            "/sys/kernel/config/target/core/user_7270/pathrig-x-p0"
        )));
        assert!(!is_our_backstore(Path::new(
            "/sys/kernel/config/target/core/fileio_0/pathrig-x"
        )));
        assert!(!is_our_backstore(Path::new(
            "/sys/kernel/config/target/core/user_0/other"
        )));
    }
}
