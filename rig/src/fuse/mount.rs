//! Mounting and unmounting with the mount syscalls: no libfuse, no `fusermount` (pathrig runs as
//! root, in the guest and in the host tests).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// Opens `/dev/fuse` and mounts a FUSE file system served through it at `mountpoint`.
pub(crate) fn mount(mountpoint: &Path) -> io::Result<OwnedFd> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("open /dev/fuse (is the fuse module loaded?): {e}"),
            )
        })?;
    let options = format!(
        "fd={},rootmode=40755,user_id={},group_id={},allow_other",
        dev.as_raw_fd(),
        nix::unistd::geteuid(),
        nix::unistd::getegid(),
    );
    nix::mount::mount(
        Some("pathrig"),
        mountpoint,
        Some("fuse.pathrig"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!("mount FUSE at {}: {errno}", mountpoint.display()),
        )
    })?;
    Ok(dev.into())
}

/// Unmounts `mountpoint`. When it is busy (a file on it is open, a loop device is attached to
/// one), the FUSE connection is aborted (`MNT_FORCE`: whatever is still in flight or comes later
/// fails with `ENOTCONN`) and the mount is detached lazily; the result is then an error of kind
/// `ResourceBusy` saying so. Unmounting what is not mounted is not an error.
pub(crate) fn unmount(mountpoint: &Path) -> io::Result<()> {
    match nix::mount::umount2(mountpoint, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => {
            // Aborts the connection (fuse_umount_begin); the unmount itself still fails.
            let _ = nix::mount::umount2(mountpoint, MntFlags::MNT_FORCE);
            match nix::mount::umount2(mountpoint, MntFlags::MNT_DETACH) {
                Ok(()) | Err(Errno::EINVAL) => Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "{} was busy (a file on it still open?): connection aborted, \
                         detached lazily",
                        mountpoint.display()
                    ),
                )),
                Err(errno) => Err(io::Error::new(
                    io::Error::from(errno).kind(),
                    format!("unmount {} lazily: {errno}", mountpoint.display()),
                )),
            }
        }
        Err(errno) => Err(io::Error::new(
            io::Error::from(errno).kind(),
            format!("unmount {}: {errno}", mountpoint.display()),
        )),
    }
}

/// Whether `mountpoint` (canonical) is a mount point in `/proc/self/mounts`.
pub(crate) fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let wanted = mountpoint.to_string_lossy();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .any(|m| unescape(m) == wanted)
}

/// Undoes the octal escapes (`\040` for a space, …) of `/proc/self/mounts`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mounts_fields_are_unescaped() {
        assert_eq!(super::unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(super::unescape(r"/tmp/plain"), "/tmp/plain");
        assert_eq!(super::unescape(r"/x\\"), r"/x\\");
    }
}
