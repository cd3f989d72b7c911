//! Removal of leftovers: dm devices, loop devices and work directories that carry pathrig's
//! prefixes (see [`crate::naming`]) and nothing else.
//!
//! Used by `pathrig cleanup` and at the end of every run, after an error too.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backing;
use crate::dm::Dm;
use crate::naming;

/// What a cleanup pass removed and what it could not.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    pub removed_dm: Vec<String>,
    pub unmounted: Vec<String>,
    pub detached_loops: Vec<String>,
    pub removed_dirs: Vec<PathBuf>,
    pub failures: Vec<String>,
}

impl CleanupReport {
    pub fn is_empty(&self) -> bool {
        self.removed_dm.is_empty()
            && self.detached_loops.is_empty()
            && self.removed_dirs.is_empty()
            && self.failures.is_empty()
    }
}

/// What of pathrig's still exists on this machine (dm devices and loop devices), without
/// touching anything. Empty after every clean run: the runner checks this after its teardown.
pub fn find_leftovers() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(dm) = Dm::open() {
        match dm.list() {
            Ok(list) => found.extend(
                list.into_iter()
                    .filter(|d| naming::is_ours(&d.name, d.uuid.as_deref()))
                    .map(|d| format!("dm device {}", d.name)),
            ),
            Err(err) => found.push(format!("cannot list dm devices: {err}")),
        }
    }
    found.extend(
        backing::our_loops()
            .into_iter()
            .map(|(dev, file)| format!("loop device {} ({file})", dev.display())),
    );
    found.extend(our_mounts().into_iter().map(|m| format!("mount {m}")));
    found
}

/// FUSE file servers' mount points inside a pathrig work directory. Only FUSE mounts count: a
/// guest's run directory is a hostfs mount whose path may well contain `pathrig-`, and it is not
/// a leftover.
pub fn our_mounts() -> Vec<String> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    our_fuse_mounts(&mounts)
}

fn our_fuse_mounts(mounts: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mountpoint, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            Some((mountpoint, fstype))
        })
        // /proc/self/mounts escapes spaces as \040; our names never contain any.
        .filter(|(mountpoint, fstype)| {
            (*fstype == "fuse" || fstype.starts_with("fuse.")) && naming::is_our_file(mountpoint)
        })
        .map(|(mountpoint, _)| mountpoint.to_string())
        .collect()
}

/// Removes every pathrig dm device (stacked ones first), every loop device backed by a file in a
/// pathrig work directory, every mount inside such a directory (FUSE file servers), and every
/// `pathrig-*` directory directly under `work_root`.
pub fn remove_leftovers(work_root: &Path) -> CleanupReport {
    let mut report = CleanupReport::default();
    match Dm::open() {
        Ok(dm) => remove_our_dm_devices(&dm, &mut report),
        // No device-mapper at all: nothing of ours can exist there.
        Err(_) if !Path::new("/dev/mapper/control").exists() => {}
        Err(err) => report.failures.push(err.to_string()),
    }
    // Loop devices over FUSE files go first, then the mounts (lazily: a server that died leaves
    // a mount nothing can answer for).
    let loops = backing::our_loops();
    for (device, backing) in loops {
        match backing::detach_loop(&device) {
            Ok(()) => report
                .detached_loops
                .push(format!("{} ({backing})", device.display())),
            Err(err) => report.failures.push(err.to_string()),
        }
    }
    for mountpoint in our_mounts() {
        match nix::mount::umount2(mountpoint.as_str(), nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => report.unmounted.push(mountpoint),
            Err(errno) => report
                .failures
                .push(format!("unmount {mountpoint}: {errno}")),
        }
    }
    for (device, backing) in backing::our_loops() {
        match backing::detach_loop(&device) {
            Ok(()) => report
                .detached_loops
                .push(format!("{} ({backing})", device.display())),
            Err(err) => report.failures.push(err.to_string()),
        }
    }
    if let Ok(entries) = fs::read_dir(work_root) {
        for entry in entries.flatten() {
            let is_ours = entry
                .file_name()
                .to_string_lossy()
                .starts_with(naming::NAME_PREFIX);
            if is_ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
                match fs::remove_dir_all(entry.path()) {
                    Ok(()) => report.removed_dirs.push(entry.path()),
                    Err(err) => report
                        .failures
                        .push(format!("remove {}: {err}", entry.path().display())),
                }
            }
        }
    }
    report
}

fn remove_our_dm_devices(dm: &Dm, report: &mut CleanupReport) {
    // Devices stacked on others are open (held) by nothing but their users; remove in passes,
    // unopened ones first, so multipath maps go before the legs they hold.
    let mut last_count = usize::MAX;
    loop {
        let ours: Vec<_> = match dm.list() {
            Ok(list) => list
                .into_iter()
                .filter(|d| naming::is_ours(&d.name, d.uuid.as_deref()))
                .collect(),
            Err(err) => {
                report.failures.push(err.to_string());
                return;
            }
        };
        if ours.is_empty() {
            return;
        }
        if ours.len() == last_count {
            for device in ours {
                report.failures.push(format!(
                    "dm device {} is still in use (open count {}); close its users and run `pathrig cleanup` again",
                    device.name, device.open_count
                ));
            }
            return;
        }
        last_count = ours.len();
        let (free, held): (Vec<_>, Vec<_>) = ours.into_iter().partition(|d| d.open_count == 0);
        let _ = held;
        for device in free {
            // Queued IO keeps a map busy: let it fail before removal.
            let _ = dm.send(&device.name, crate::dm::MultipathMessage::FailIfNoPath);
            match dm.remove(&device.name) {
                Ok(()) => report.removed_dm.push(device.name),
                Err(err) => report.failures.push(err.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fuse_mounts_in_pathrig_directories_are_ours() {
        let mounts = "none /tmp/pathrig-vmtest-12-healthy hostfs rw 0 0\n\
                      pathrig /run/pathrig-x-1/fuse-mpatha fuse.pathrig rw 0 0\n\
                      other /mnt/data fuse.sshfs rw 0 0\n\
                      tmpfs /run tmpfs rw 0 0\n";
        assert_eq!(
            our_fuse_mounts(mounts),
            vec!["/run/pathrig-x-1/fuse-mpatha".to_string()]
        );
    }
}
