//! Removal of leftovers: dm devices, loop devices, LIO objects of the SCSI array and work
//! directories that carry pathrig's prefixes (see [`crate::naming`], [`crate::scsi::lio`]) and
//! nothing else.
//!
//! Used by `pathrig cleanup`. A directory is removed only when it proves to be a dead run's
//! scratch directory (a valid marker whose lock can be taken, see [`crate::ownership`]); a
//! directory that merely has pathrig's name, a live run's directory, and run directories (which
//! hold reports) are never removed. While a live run owns a scratch directory, the dm devices,
//! loop devices and mounts it may be using are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backing;
use crate::dm::Dm;
use crate::naming;
use crate::ownership::{self, Kind, State, Status};

/// What a cleanup pass removed and what it could not.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    pub removed_dm: Vec<String>,
    /// pathrig's tcm_loop WWNs and TCMU backstores (see `scsi::lio` for how they are proven
    /// ours).
    pub removed_lio: Vec<String>,
    pub unmounted: Vec<String>,
    pub detached_loops: Vec<String>,
    pub removed_dirs: Vec<PathBuf>,
    /// Directories left alone and why (not pathrig's, or in use by a live run).
    pub left_alone: Vec<String>,
    /// Run directories whose owner died while its marker said running (killed, e.g. by
    /// SIGKILL): their marker now says `killed`; the caller writes error.txt into them.
    #[serde(skip)]
    pub killed_runs: Vec<(PathBuf, ownership::Marker)>,
    pub failures: Vec<String>,
}

impl CleanupReport {
    pub fn is_empty(&self) -> bool {
        self.removed_dm.is_empty()
            && self.removed_lio.is_empty()
            && self.detached_loops.is_empty()
            && self.removed_dirs.is_empty()
            && self.killed_runs.is_empty()
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
    found.extend(crate::scsi::lio::leftovers());
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
/// dead run's scratch directory directly under `work_root`; notes the killed runs among the run
/// directories directly under `work_root` and `run_roots`. What a live run may be using is left
/// alone (see the module comment).
pub fn remove_leftovers(work_root: &Path, run_roots: &[&Path]) -> CleanupReport {
    let mut report = CleanupReport::default();
    let dirs = survey(work_root, run_roots, &mut report);
    let live: Vec<&PathBuf> = dirs.live_scratch.iter().collect();
    let in_live_dir = |file: &str| live.iter().any(|d| Path::new(file).starts_with(d));
    if live.is_empty() {
        match Dm::open() {
            Ok(dm) => remove_our_dm_devices(&dm, &mut report),
            // No device-mapper at all: nothing of ours can exist there.
            Err(_) if !Path::new("/dev/mapper/control").exists() => {}
            Err(err) => report.failures.push(err.to_string()),
        }
        // The SCSI array's LIO objects (after the dm maps that may sit on their disks).
        let (removed, failures) = crate::scsi::lio::remove_leftovers();
        report.removed_lio.extend(removed);
        report.failures.extend(failures);
    } else {
        report.left_alone.push(format!(
            "pathrig dm devices: a live run owns {} (remove them when it has ended)",
            dirs.live_scratch
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Loop devices over FUSE files go first, then the mounts (lazily: a server that died leaves
    // a mount nothing can answer for).
    for pass in 0..2 {
        if pass == 1 {
            for mountpoint in our_mounts() {
                if in_live_dir(&mountpoint) {
                    continue;
                }
                match nix::mount::umount2(mountpoint.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                    Ok(()) => report.unmounted.push(mountpoint),
                    Err(errno) => report
                        .failures
                        .push(format!("unmount {mountpoint}: {errno}")),
                }
            }
        }
        for (device, backing) in backing::our_loops() {
            if in_live_dir(&backing) {
                continue;
            }
            match backing::detach_loop(&device) {
                Ok(()) => report
                    .detached_loops
                    .push(format!("{} ({backing})", device.display())),
                Err(err) => report.failures.push(err.to_string()),
            }
        }
    }
    remove_dead_scratch(dirs.dead_scratch, &mut report);
    report
}

fn remove_dead_scratch(dirs: Vec<(PathBuf, ownership::DeadLock)>, report: &mut CleanupReport) {
    for (dir, _lock) in dirs {
        // The lock is held while the directory goes, so no run can claim it meanwhile.
        match fs::remove_dir_all(&dir) {
            Ok(()) => report.removed_dirs.push(dir),
            Err(err) => report
                .failures
                .push(format!("remove {}: {err}", dir.display())),
        }
    }
}

/// The marked directories found by [`survey`].
struct Survey {
    live_scratch: Vec<PathBuf>,
    dead_scratch: Vec<(PathBuf, ownership::DeadLock)>,
}

/// Sorts the `pathrig-*` directories under `work_root` and every directory under `run_roots`
/// by what their markers prove; records killed runs and what is left alone in `report`.
fn survey(work_root: &Path, run_roots: &[&Path], report: &mut CleanupReport) -> Survey {
    let mut found = Survey {
        live_scratch: Vec::new(),
        dead_scratch: Vec::new(),
    };
    let mut candidates: Vec<(PathBuf, bool)> = Vec::new();
    let mut list = |root: &Path, named_only: bool| {
        let Ok(entries) = fs::read_dir(root) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            // Not following symlinks: a link named pathrig-x is nobody's directory.
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| {
                !named_only
                    || e.file_name()
                        .to_string_lossy()
                        .starts_with(naming::NAME_PREFIX)
            })
            .map(|e| e.path())
            .collect();
        dirs.sort();
        candidates.extend(dirs.into_iter().map(|d| (d, named_only)));
    };
    list(work_root, true);
    for root in run_roots {
        list(root, false);
    }
    for (dir, in_work_root) in candidates {
        match ownership::inspect(&dir) {
            Status::NotOurs => {
                if in_work_root {
                    report.left_alone.push(format!(
                        "{}: not pathrig's (no valid {} marker)",
                        dir.display(),
                        ownership::MARKER
                    ));
                }
            }
            Status::Live(owner) => {
                let who = owner.as_ref().map_or_else(String::new, |m| m.describe());
                report
                    .left_alone
                    .push(format!("{}: in use by a live run ({who})", dir.display()));
                if owner.is_some_and(|m| m.kind == Kind::Scratch) {
                    found.live_scratch.push(dir);
                }
            }
            Status::Dead(marker, lock) if marker.kind == Kind::Scratch => {
                found.dead_scratch.push((dir, lock));
            }
            Status::Dead(marker, mut lock) => {
                if marker.state == State::Running {
                    match lock.record(&marker, State::Killed) {
                        Ok(()) => report.killed_runs.push((dir, marker)),
                        Err(err) => report
                            .failures
                            .push(format!("mark {} as killed: {err}", dir.display())),
                    }
                }
            }
        }
    }
    found
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
    use crate::ownership::Claim;

    /// A user's own `pathrig-x`, a live run's scratch directory (its lock held) and a live run
    /// directory stay; a dead run's scratch directory goes; a killed run's directory stays and
    /// is marked killed.
    #[test]
    fn only_dead_scratch_directories_are_removed() {
        let root = std::env::temp_dir().join(format!("rig-cleanup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let runs = root.join("runs");
        fs::create_dir_all(&runs).unwrap();
        let user = root.join("pathrig-x");
        fs::create_dir(&user).unwrap();
        fs::write(user.join("notes.txt"), "mine").unwrap();
        let live = root.join("pathrig-live-1");
        fs::create_dir(&live).unwrap();
        let (live_claim, _) = Claim::take(&live, Kind::Scratch).unwrap();
        let dead = root.join("pathrig-dead-2");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("m.img"), "x").unwrap();
        drop(Claim::take(&dead, Kind::Scratch).unwrap());
        let live_run = root.join("pathrig-vmtest-1-healthy");
        fs::create_dir(&live_run).unwrap();
        let (run_claim, _) = Claim::take(&live_run, Kind::Run).unwrap();
        let killed = runs.join("healthy");
        fs::create_dir(&killed).unwrap();
        drop(Claim::take(&killed, Kind::Run).unwrap());

        let mut report = CleanupReport::default();
        let found = survey(&root, &[&runs], &mut report);
        assert_eq!(found.live_scratch, vec![live.clone()]);
        let dead_dirs: Vec<_> = found.dead_scratch.iter().map(|(d, _)| d.clone()).collect();
        assert_eq!(dead_dirs, vec![dead.clone()]);
        drop(found);
        assert_eq!(report.killed_runs.len(), 1);
        assert_eq!(report.killed_runs[0].0, killed);
        assert!(report
            .left_alone
            .iter()
            .any(|l| l.contains("pathrig-x: not pathrig's")));

        // Removal (the devices part of `remove_leftovers` is left out here: it would act on
        // this machine's own pathrig devices): only the dead scratch directory goes.
        let sweep = |report: &mut CleanupReport| {
            let found = survey(&root, &[&runs], report);
            remove_dead_scratch(found.dead_scratch, report);
        };
        let mut report = CleanupReport::default();
        sweep(&mut report);
        assert_eq!(report.removed_dirs, vec![dead.clone()], "{report:?}");
        assert!(!dead.exists());
        assert!(user.join("notes.txt").exists());
        assert!(live.join(ownership::MARKER).exists());
        assert!(live_run.exists() && killed.exists());
        // Already marked killed: not reported twice.
        assert!(report.killed_runs.is_empty());
        match ownership::inspect(&killed) {
            Status::Dead(m, _) => assert_eq!(m.state, State::Killed),
            other => panic!("{other:?}"),
        }
        // Once its owner is gone, the live run's scratch directory goes too; run directories
        // and the user's directory never do.
        drop((live_claim, run_claim));
        let mut report = CleanupReport::default();
        sweep(&mut report);
        assert_eq!(report.removed_dirs, vec![live.clone()]);
        assert!(user.exists() && live_run.exists());
        fs::remove_dir_all(&root).unwrap();
    }

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
