//! Device-mapper: typed tables ([`target`]), the multipath status parser ([`mpath_status`]) and the
//! operations pathrig performs on dm devices through the `devicemapper` crate's ioctls.
//!
//! Table swaps follow lvm2's test helpers: load the new table into the inactive slot, suspend,
//! resume (which makes the inactive table live).

pub mod mirror;
pub mod mpath_status;
pub mod target;

use std::os::fd::{AsFd, BorrowedFd};

use devicemapper::{DevId, DmFlags, DmName, DmOptions, DmUuid, DM};

use crate::naming;
use crate::RigError;
pub use target::{DevNum, Table, Target};

/// A handle on the dm control device.
pub struct Dm {
    dm: DM,
}

/// One line of `dmsetup status` or `dmsetup table` output, as the kernel printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

impl StatusLine {
    pub fn params(&self) -> &str {
        &self.params
    }

    /// `start length type params`, the way dmsetup prints it.
    pub fn render(&self) -> String {
        format!(
            "{} {} {} {}",
            self.start, self.length, self.target_type, self.params
        )
        .trim_end()
        .to_string()
    }
}

/// What `list` reports about one dm device.
#[derive(Debug, Clone)]
pub struct DmDeviceInfo {
    pub name: String,
    pub uuid: Option<String>,
    pub dev: DevNum,
    pub event_nr: u32,
    pub open_count: i32,
}

fn dm_err(what: impl Into<String>) -> impl FnOnce(devicemapper::DmError) -> RigError {
    let what = what.into();
    move |err| RigError::Dm {
        what,
        detail: err.to_string(),
    }
}

fn name(name: &str) -> Result<&DmName, RigError> {
    DmName::new(name).map_err(dm_err(format!("dm name {name:?}")))
}

fn to_devnum(dev: devicemapper::Device) -> DevNum {
    DevNum::new(dev.major, dev.minor)
}

impl Dm {
    /// Opens `/dev/mapper/control`.
    pub fn open() -> Result<Dm, RigError> {
        let dm = DM::new().map_err(|err| RigError::Dm {
            what: "open /dev/mapper/control (is device-mapper available? in a guest, dm-mod must be loaded)".into(),
            detail: err.to_string(),
        })?;
        Ok(Dm { dm })
    }

    /// The control fd, readable when a dm event happened since the last [`Dm::arm_events`].
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.dm.file().as_fd()
    }

    /// Re-arms event notification on the control fd (call before reading the new state).
    pub fn arm_events(&self) -> Result<(), RigError> {
        self.dm
            .arm_poll()
            .map(|_| ())
            .map_err(dm_err("arm dm event poll"))
    }

    /// Creates device `dm_name` with `table` and makes it live. On failure nothing is left.
    pub fn create(&self, dm_name: &str, table: &Table) -> Result<DevNum, RigError> {
        let uuid = naming::uuid_for(dm_name);
        let dm_uuid = DmUuid::new(&uuid).map_err(dm_err(format!("dm uuid {uuid:?}")))?;
        let info = self
            .dm
            .device_create(name(dm_name)?, Some(dm_uuid), DmOptions::default())
            .map_err(dm_err(format!("create dm device {dm_name} (a leftover of an earlier run? `pathrig cleanup` removes those)")))?;
        let id = DevId::Name(name(dm_name)?);
        let loaded = self
            .dm
            .table_load(&id, &table.to_ioctl_lines(), DmOptions::default())
            .map_err(dm_err(format!(
                "load table of {dm_name}: {}",
                table.render()
            )))
            .and_then(|_| {
                self.dm
                    .device_suspend(&id, DmOptions::default())
                    .map_err(dm_err(format!("activate {dm_name}")))
            });
        if let Err(err) = loaded {
            let _ = self.dm.device_remove(&id, DmOptions::default());
            return Err(err);
        }
        Ok(to_devnum(info.device()))
    }

    /// Swaps the live table of `dm_name` for `table`: load, suspend, resume.
    pub fn swap_table(&self, dm_name: &str, table: &Table) -> Result<(), RigError> {
        self.load_suspend_resume(dm_name, table, DmFlags::DM_SUSPEND)
    }

    /// Reloads the table of a multipath map while IO may be queued on it: like
    /// [`Dm::swap_table`], but the suspend does not flush, so queued IO stays queued across the
    /// reload instead of blocking the suspend (what multipathd does on every map reload).
    pub fn reload_map(&self, dm_name: &str, table: &Table) -> Result<(), RigError> {
        self.load_suspend_resume(dm_name, table, DmFlags::DM_SUSPEND | DmFlags::DM_NOFLUSH)
    }

    fn load_suspend_resume(
        &self,
        dm_name: &str,
        table: &Table,
        suspend: DmFlags,
    ) -> Result<(), RigError> {
        let id = DevId::Name(name(dm_name)?);
        self.dm
            .table_load(&id, &table.to_ioctl_lines(), DmOptions::default())
            .map_err(dm_err(format!(
                "load table of {dm_name}: {}",
                table.render()
            )))?;
        self.dm
            .device_suspend(&id, DmOptions::default().set_flags(suspend))
            .map_err(dm_err(format!("suspend {dm_name} ({suspend:?})")))?;
        self.dm
            .device_suspend(&id, DmOptions::default())
            .map_err(dm_err(format!("resume {dm_name}")))?;
        Ok(())
    }

    /// Removes `dm_name`.
    pub fn remove(&self, dm_name: &str) -> Result<(), RigError> {
        let id = DevId::Name(name(dm_name)?);
        self.dm
            .device_remove(&id, DmOptions::default())
            .map(|_| ())
            .map_err(dm_err(format!("remove {dm_name}")))
    }

    /// The status line(s) of `dm_name` as the kernel printed them, with the device's event number.
    pub fn status(&self, dm_name: &str) -> Result<(u32, Vec<StatusLine>), RigError> {
        self.table_or_status(dm_name, DmOptions::default())
    }

    /// The live table line(s) of `dm_name` in `dmsetup table` form, exactly as the kernel printed them.
    pub fn table(&self, dm_name: &str) -> Result<Vec<String>, RigError> {
        let (_, lines) = self.table_or_status(
            dm_name,
            DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
        )?;
        Ok(lines.iter().map(StatusLine::render).collect())
    }

    fn table_or_status(
        &self,
        dm_name: &str,
        options: DmOptions,
    ) -> Result<(u32, Vec<StatusLine>), RigError> {
        let id = DevId::Name(name(dm_name)?);
        let what = if options.flags().contains(DmFlags::DM_STATUS_TABLE) {
            "table"
        } else {
            "status"
        };
        let (info, lines) = self
            .dm
            .table_status(&id, options)
            .map_err(dm_err(format!("read {what} of {dm_name}")))?;
        let lines = lines
            .into_iter()
            .map(|(start, length, target_type, params)| StatusLine {
                start,
                length,
                target_type,
                params,
            })
            .collect();
        Ok((info.event_nr(), lines))
    }

    /// Sends a target message (e.g. `fail_path 254:0`) to `dm_name`.
    pub fn message(&self, dm_name: &str, message: &str) -> Result<(), RigError> {
        let id = DevId::Name(name(dm_name)?);
        self.dm
            .target_msg(&id, None, message)
            .map(|_| ())
            .map_err(dm_err(format!("send {message:?} to {dm_name}")))
    }

    /// Every dm device the kernel has (ours and others').
    pub fn list(&self) -> Result<Vec<DmDeviceInfo>, RigError> {
        let devices = self.dm.list_devices().map_err(dm_err("list dm devices"))?;
        let mut out = Vec::with_capacity(devices.len());
        for (dm_name, dev, event_nr) in devices {
            let name_str = dm_name.to_string();
            let info = self
                .dm
                .device_info(&DevId::Name(&dm_name))
                .map_err(dm_err(format!("query {name_str}")))?;
            out.push(DmDeviceInfo {
                name: name_str,
                uuid: info.uuid().map(|u| u.to_string()),
                dev: to_devnum(dev),
                event_nr: event_nr.unwrap_or(info.event_nr()),
                open_count: info.open_count(),
            });
        }
        Ok(out)
    }
}
