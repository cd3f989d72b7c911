//! The real multipathd's cache: Debian's `multipath-tools`, `udev` and `liburcu8` packages,
//! fetched with `apt-get download` and unpacked with `dpkg-deb -x` beside the guest kernel (see
//! [`super::kernel::cache_dir`]), then cut down to the file set multipathd needs in a guest and
//! laid out as a `/usr` tree, so that the guest can lay it over the host's `/usr` with overlayfs
//! (every compiled-in path — `/sbin/multipath`, `/lib/multipath`, the udev rules — then works).
//! Nothing is installed on the host.

use std::fs;
use std::path::{Path, PathBuf};

use super::kernel::{run_in, which};
use crate::RigError;

/// The packages fetched, in the order their versions are recorded.
pub const PACKAGES: &[&str] = &["multipath-tools", "udev", "liburcu8"];

/// An unpacked multipath-tools file set, ready to be laid over the guest's `/usr`.
#[derive(Debug, Clone)]
pub struct MultipathTools {
    /// The tree laid over `/usr` (it holds `sbin/multipathd`, `lib/libmultipath.so.0`, ...).
    pub usr_tree: PathBuf,
    /// (package, Debian version) for each of [`PACKAGES`].
    pub versions: Vec<(String, String)>,
}

impl MultipathTools {
    /// The packaged `multipathd`, as the guest sees it once the tree is laid over `/usr`.
    pub const GUEST_MULTIPATHD: &'static str = "/usr/sbin/multipathd";
    /// The packaged `udevadm` (also udevd, run under the name `systemd-udevd`), in the guest.
    pub const GUEST_UDEVADM: &'static str = "/usr/bin/udevadm";

    /// `multipath-tools 0.9.4-3+deb12u2, udev 252.39-1~deb12u2, ...`.
    pub fn describe(&self) -> String {
        self.versions
            .iter()
            .map(|(p, v)| format!("{p} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What of the unpacked packages goes into the tree: (path in the packages, path under `/usr`).
/// Debian bookworm puts multipath-tools and udev under `/sbin` and `/lib`, which a merged-`/usr`
/// host resolves to `/usr/sbin` and `/usr/lib`.
const FILES: &[(&str, &str)] = &[
    ("sbin/multipathd", "sbin/multipathd"),
    ("sbin/multipath", "sbin/multipath"),
    ("lib/libmultipath.so.0", "lib/libmultipath.so.0"),
    ("lib/libmpathutil.so.0", "lib/libmpathutil.so.0"),
    ("lib/libmpathcmd.so.0", "lib/libmpathcmd.so.0"),
    ("lib/libmpathpersist.so.0", "lib/libmpathpersist.so.0"),
    ("bin/udevadm", "bin/udevadm"),
    ("lib/udev/scsi_id", "lib/udev/scsi_id"),
    (
        "lib/udev/rules.d/60-persistent-storage.rules",
        "lib/udev/rules.d/60-persistent-storage.rules",
    ),
    (
        "lib/udev/rules.d/60-multipath.rules",
        "lib/udev/rules.d/60-multipath.rules",
    ),
    (
        "lib/udev/rules.d/56-dm-mpath.rules",
        "lib/udev/rules.d/56-dm-mpath.rules",
    ),
];

/// Whole directories taken: multipathd's checker and prioritizer plugins.
const DIRS: &[(&str, &str)] = &[("lib/multipath", "lib/multipath")];

/// The executables and libraries whose shared libraries must all resolve.
const ELF_FILES: &[&str] = &[
    "sbin/multipathd",
    "sbin/multipath",
    "bin/udevadm",
    "lib/udev/scsi_id",
    "lib/multipath/libchecktur.so",
    "lib/multipath/libcheckdirectio.so",
    "lib/multipath/libprioalua.so",
    "lib/multipath/libprioconst.so",
];

fn cache_root(cache: &Path) -> PathBuf {
    cache.join("multipath-tools")
}

/// Finds an already prepared tree in `cache` (the newest if there are several).
pub fn find_cached(cache: &Path) -> Option<MultipathTools> {
    let mut candidates: Vec<PathBuf> = fs::read_dir(cache_root(cache))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("ready").exists())
        .collect();
    candidates.sort();
    let root = candidates.pop()?;
    let ready = fs::read_to_string(root.join("ready")).ok()?;
    let versions = ready
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect();
    Some(MultipathTools {
        usr_tree: root.join("usr"),
        versions,
    })
}

/// Returns the cached tree, fetching and preparing it first if the cache has none. `progress`
/// gets one line per step.
pub fn prepare_multipath_tools(
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<MultipathTools, RigError> {
    if let Some(tools) = find_cached(cache) {
        return Ok(tools);
    }
    if which("apt-get").is_none() || which("dpkg-deb").is_none() {
        return Err(RigError::Guest(format!(
            "the real multipathd comes from Debian's {} packages, fetched with apt-get and dpkg-deb, \
             which this machine does not have. Fix: run on a Debian host, or point [manager] \
             multipathd at your own build",
            PACKAGES.join(", ")
        )));
    }
    let staging = cache_root(cache).join(format!(".download-{}", std::process::id()));
    fs::create_dir_all(&staging).map_err(RigError::io("create cache directory", &staging))?;
    let result = download_and_prepare(cache, &staging, progress);
    let _ = fs::remove_dir_all(&staging);
    result?;
    find_cached(cache).ok_or_else(|| {
        RigError::Guest(format!(
            "multipath-tools was prepared in {} but the cache entry is unreadable",
            cache_root(cache).display()
        ))
    })
}

fn download_and_prepare(
    cache: &Path,
    staging: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RigError> {
    progress(&format!(
        "fetching multipathd: apt-get download {} (into {})",
        PACKAGES.join(" "),
        cache.display()
    ));
    let mut attempt = run_in(staging, "apt-get", &[&["download"][..], PACKAGES].concat())?;
    if !attempt.0 {
        progress("apt-get download failed; running apt-get update and trying again");
        let update = run_in(staging, "apt-get", &["update"])?;
        if !update.0 {
            return Err(RigError::Guest(format!(
                "apt-get update failed, so multipath-tools cannot be fetched. Fix: check that this \
                 machine reaches its Debian package mirror.\n{}",
                update.1
            )));
        }
        attempt = run_in(staging, "apt-get", &[&["download"][..], PACKAGES].concat())?;
        if !attempt.0 {
            return Err(RigError::Guest(format!(
                "apt-get download {} failed.\n{}",
                PACKAGES.join(" "),
                attempt.1
            )));
        }
    }
    let unpacked = staging.join("unpacked");
    let mut versions = Vec::new();
    for package in PACKAGES {
        let deb = fs::read_dir(staging)
            .map_err(RigError::io("read", staging))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&format!("{package}_")) && name.ends_with(".deb")
            })
            .ok_or_else(|| {
                RigError::Guest(format!(
                    "apt-get download left no {package}_*.deb in {}",
                    staging.display()
                ))
            })?;
        // multipath-tools_0.9.4-3+deb12u2_amd64.deb → 0.9.4-3+deb12u2
        let name = deb
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let version = name.split('_').nth(1).unwrap_or("unknown").to_string();
        let (ok, output) = run_in(
            staging,
            "dpkg-deb",
            &["-x", &deb.to_string_lossy(), &unpacked.to_string_lossy()],
        )?;
        if !ok {
            return Err(RigError::Guest(format!(
                "dpkg-deb -x {name} failed:\n{output}"
            )));
        }
        versions.push((package.to_string(), version));
    }
    let entry = staging.join("entry");
    let usr = entry.join("usr");
    lay_out_usr_tree(&unpacked, &usr)?;
    check_libraries(&usr)?;
    let ready: String = versions.iter().map(|(p, v)| format!("{p} {v}\n")).collect();
    fs::write(entry.join("ready"), ready).map_err(RigError::io("write", entry.join("ready")))?;
    let target = cache_root(cache).join(&versions[0].1);
    if target.exists() {
        fs::remove_dir_all(&target)
            .map_err(RigError::io("replace incomplete cache entry", &target))?;
    }
    fs::rename(&entry, &target).map_err(RigError::io("move multipath-tools into", &target))?;
    progress(&format!("multipathd ready: {}", target.display()));
    Ok(())
}

/// Copies the file set from the unpacked packages into `usr`.
fn lay_out_usr_tree(unpacked: &Path, usr: &Path) -> Result<(), RigError> {
    let copy = |from: &Path, to: &Path| -> Result<(), RigError> {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(RigError::io("create", parent))?;
        }
        fs::copy(from, to).map_err(RigError::io("copy into the multipath-tools tree", from))?;
        Ok(())
    };
    for (from, to) in FILES {
        copy(&unpacked.join(from), &usr.join(to))?;
    }
    for (from, to) in DIRS {
        let dir = unpacked.join(from);
        for entry in fs::read_dir(&dir)
            .map_err(RigError::io("read", &dir))?
            .flatten()
        {
            copy(&entry.path(), &usr.join(to).join(entry.file_name()))?;
        }
    }
    // liburcu lives in the multiarch directory (usr/lib/x86_64-linux-gnu on amd64).
    let lib = unpacked.join("usr/lib");
    let urcu = fs::read_dir(&lib)
        .map_err(RigError::io("read", &lib))?
        .flatten()
        .map(|e| e.path().join("liburcu.so.8"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            RigError::Guest(format!(
                "liburcu8 holds no liburcu.so.8 under {}",
                lib.display()
            ))
        })?;
    let arch_dir = urcu.parent().and_then(Path::file_name).unwrap_or_default();
    copy(&urcu, &usr.join("lib").join(arch_dir).join("liburcu.so.8"))?;
    // udevd is udevadm run under this name.
    let udevd = usr.join("lib/systemd/systemd-udevd");
    fs::create_dir_all(udevd.parent().unwrap_or(usr)).map_err(RigError::io("create", &udevd))?;
    std::os::unix::fs::symlink("/usr/bin/udevadm", &udevd).map_err(RigError::io("link", &udevd))?;
    Ok(())
}

/// Fails with the list of shared libraries neither the tree nor the host has.
fn check_libraries(usr: &Path) -> Result<(), RigError> {
    let Some(ldd) = which("ldd") else {
        return Ok(()); // nothing to check with; the guest will say what is missing
    };
    let mut search = vec![usr.join("lib")];
    if let Ok(entries) = fs::read_dir(usr.join("lib")) {
        search.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("liburcu.so.8").exists()),
        );
    }
    let library_path = search
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut missing = Vec::new();
    for file in ELF_FILES {
        let output = std::process::Command::new(&ldd)
            .arg(usr.join(file))
            .env("LD_LIBRARY_PATH", &library_path)
            .output()
            .map_err(RigError::io("run ldd on", usr.join(file)))?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if line.contains("not found") {
                missing.push(format!("{file}: {}", line.trim()));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RigError::Guest(format!(
            "multipath-tools needs shared libraries this host does not have (nothing is installed \
             on the host; the guest sees the host's libraries):\n{}",
            missing.join("\n")
        )))
    }
}
