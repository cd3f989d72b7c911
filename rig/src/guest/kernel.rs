//! The guest kernel cache: Debian's `user-mode-linux` package, fetched with `apt-get download`
//! and unpacked with `dpkg-deb -x` into `$PATHRIG_CACHE` (else `$XDG_CACHE_HOME/pathrig`, else
//! `~/.cache/pathrig`). Nothing is installed on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::RigError;

/// An unpacked user-mode Linux kernel with its modules.
#[derive(Debug, Clone)]
pub struct UmlKernel {
    /// The `linux.uml` executable.
    pub binary: PathBuf,
    /// `.../usr/lib/uml/modules/<release>`.
    pub modules: PathBuf,
    /// The kernel release, e.g. `6.1.176`.
    pub release: String,
    /// The Debian package version it came from.
    pub package_version: String,
}

/// Where guest kernels are cached.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PATHRIG_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("pathrig");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/pathrig")
}

const PACKAGE: &str = "user-mode-linux";

/// Finds an already unpacked kernel in `cache` (the newest one if there are several).
pub fn find_cached(cache: &Path) -> Option<UmlKernel> {
    let uml_dir = cache.join("uml");
    let mut candidates: Vec<PathBuf> = fs::read_dir(&uml_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("ready").exists())
        .collect();
    candidates.sort();
    let root = candidates.pop()?;
    let package_version = root.file_name()?.to_string_lossy().to_string();
    let binary = root.join("usr/bin/linux.uml");
    let modules_root = root.join("usr/lib/uml/modules");
    let release = fs::read_dir(&modules_root)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .max()?;
    Some(UmlKernel {
        binary,
        modules: modules_root.join(&release),
        release,
        package_version,
    })
}

/// Returns the cached kernel, fetching it first if the cache has none. `progress` gets one line
/// per step.
pub fn prepare_uml(cache: &Path, progress: &mut dyn FnMut(&str)) -> Result<UmlKernel, RigError> {
    if let Some(kernel) = find_cached(cache) {
        return Ok(kernel);
    }
    fetch_uml(cache, progress)?;
    find_cached(cache).ok_or_else(|| {
        RigError::Guest(format!(
            "the {PACKAGE} package was unpacked into {} but holds no usr/bin/linux.uml with modules",
            cache.join("uml").display()
        ))
    })
}

fn fetch_uml(cache: &Path, progress: &mut dyn FnMut(&str)) -> Result<(), RigError> {
    if which("apt-get").is_none() || which("dpkg-deb").is_none() {
        return Err(RigError::Guest(format!(
            "the guest kernel comes from Debian's {PACKAGE} package, fetched with apt-get and dpkg-deb, \
             which this machine does not have. Fix: run on a Debian or Ubuntu host, or unpack the package \
             by hand into {}/uml/<version>/ and create an empty file named `ready` there",
            cache.display()
        )));
    }
    let staging = cache
        .join("uml")
        .join(format!(".download-{}", std::process::id()));
    fs::create_dir_all(&staging).map_err(RigError::io("create cache directory", &staging))?;
    let result = download_and_unpack(cache, &staging, progress);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn download_and_unpack(
    cache: &Path,
    staging: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RigError> {
    progress(&format!(
        "fetching the guest kernel: apt-get download {PACKAGE} (into {})",
        cache.display()
    ));
    let mut attempt = run_in(staging, "apt-get", &["download", PACKAGE])?;
    if !attempt.0 {
        progress("apt-get download found nothing; running apt-get update and trying again");
        let update = run_in(staging, "apt-get", &["update"])?;
        if !update.0 {
            return Err(RigError::Guest(format!(
                "apt-get update failed, so the guest kernel cannot be fetched. Fix: check that this machine \
                 reaches its Debian package mirror (and runs as root, or has a writable apt cache).\n{}",
                update.1
            )));
        }
        attempt = run_in(staging, "apt-get", &["download", PACKAGE])?;
        if !attempt.0 {
            return Err(RigError::Guest(format!(
                "apt-get download {PACKAGE} failed. Fix: make sure the package is available \
                 (`apt-cache policy {PACKAGE}`; on Ubuntu enable the universe component).\n{}",
                attempt.1
            )));
        }
    }
    let deb = fs::read_dir(staging)
        .map_err(RigError::io("read", staging))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| {
            RigError::Guest(format!(
                "apt-get download left no .deb in {}",
                staging.display()
            ))
        })?;
    // user-mode-linux_6.1um4+b13_amd64.deb → 6.1um4+b13
    let file_name = deb
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let version = file_name.split('_').nth(1).unwrap_or("unknown").to_string();
    progress(&format!("unpacking {file_name}"));
    let unpack_dir = staging.join("root");
    let (ok, output) = run_in(
        staging,
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), &unpack_dir.to_string_lossy()],
    )?;
    if !ok {
        return Err(RigError::Guest(format!(
            "dpkg-deb -x {file_name} failed:\n{output}"
        )));
    }
    fs::write(unpack_dir.join("ready"), format!("{PACKAGE} {version}\n"))
        .map_err(RigError::io("write", unpack_dir.join("ready")))?;
    let target = cache.join("uml").join(&version);
    if target.exists() {
        fs::remove_dir_all(&target)
            .map_err(RigError::io("replace incomplete cache entry", &target))?;
    }
    fs::rename(&unpack_dir, &target).map_err(RigError::io("move unpacked kernel into", &target))?;
    progress(&format!("guest kernel ready: {}", target.display()));
    Ok(())
}

/// Runs `program args` in `dir`; returns whether it succeeded and its combined output.
pub(crate) fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<(bool, String), RigError> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(RigError::io(format!("run {program}"), dir))?;
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
