//! The real things pathrig builds and drives: backing files, loop devices, dm legs and
//! dm-multipath maps (ioctls through the `devicemapper` crate), the io_uring workload, the kernel
//! module loader for guests, the guest launcher (fetch a kernel, boot it, collect what it produced)
//! and cleanup of leftovers.
//!
//! Everything this crate creates is named by [`naming`], so that cleanup can find it and never
//! touches anything else.

pub mod backing;
pub mod blockstat;
pub mod checker;
pub mod cleanup;
pub mod dm;
pub mod fuse;
pub mod guest;
pub mod kmod;
pub mod multipathd;
pub mod naming;
pub mod ownership;
pub mod scsi;
pub mod scsi_watch;
pub mod workload;

use std::path::PathBuf;

/// Failures of the rig: a device that could not be built, a guest that could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error("device-mapper: {what}: {detail}")]
    Dm { what: String, detail: String },
    /// A target message the kernel refused.
    #[error("device-mapper: send {message:?} to {device}: {detail}")]
    Message {
        device: String,
        message: String,
        detail: String,
    },
    /// A map's status line that is not a multipath status pathrig can read.
    #[error("device-mapper: status of {device}: {detail}")]
    Status { device: String, detail: String },
    #[error("loop device: {what}: {source}")]
    Loop {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel module {module}: {detail}")]
    Module { module: String, detail: String },
    #[error("guest: {0}")]
    Guest(String),
}

impl RigError {
    pub fn io(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RigError {
        let what = what.into();
        let path = path.into();
        move |source| RigError::Io { what, path, source }
    }
}
