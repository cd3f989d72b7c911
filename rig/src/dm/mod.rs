//! Device-mapper, all of it in one place: sizes in [`Sectors`], typed tables ([`target`], and
//! [`multipath`] for the map's), typed target messages ([`message`]), the multipath status
//! ([`mpath_status`]) and the operations pathrig performs on dm devices through the
//! `devicemapper` crate's ioctls: create, swap tables, send messages ([`Dm::send`]), read the
//! map status ([`Dm::multipath_status`]), remove.
//!
//! Table swaps follow lvm2's test helpers: load the new table into the inactive slot, suspend,
//! resume (which makes the inactive table live).

pub mod message;
pub mod mirror;
pub mod mpath_status;
pub mod multipath;
pub mod sectors;
pub mod target;

use std::os::fd::{AsFd, BorrowedFd};

use devicemapper::{DevId, DmFlags, DmName, DmOptions, DmUuid, DM};

use crate::naming;
use crate::RigError;
pub use message::{DustMessage, Message, MultipathMessage};
pub use mpath_status::MultipathStatus;
pub use multipath::MultipathTable;
pub use sectors::{Sectors, SECTOR_BYTES};
pub use target::{DevNum, Table, Target};

/// A handle on the dm control device.
pub struct Dm {
    dm: DM,
}

/// One line of `dmsetup status` or `dmsetup table` output, as the kernel printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub start: Sectors,
    pub length: Sectors,
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

/// A map's status: the line as the kernel printed it, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapStatus {
    pub line: StatusLine,
    pub status: MultipathStatus,
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

    /// The status line(s) of `dm_name` as the kernel printed them, with the device's event number
    /// (read through [`Dm::multipath_status`], the one status reader).
    fn status(&self, dm_name: &str) -> Result<(u32, Vec<StatusLine>), RigError> {
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
                start: Sectors(start),
                length: Sectors(length),
                target_type,
                params,
            })
            .collect();
        Ok((info.event_nr(), lines))
    }

    /// The status of multipath map `dm_name`, read and parsed.
    pub fn multipath_status(&self, dm_name: &str) -> Result<MapStatus, RigError> {
        let (line, status) = self.single_status::<MultipathStatus>(dm_name, "multipath")?;
        Ok(MapStatus { line, status })
    }

    /// The status of mirror map `dm_name`, read and parsed (with the line as printed).
    pub fn mirror_status(
        &self,
        dm_name: &str,
    ) -> Result<(StatusLine, mirror::MirrorStatus), RigError> {
        self.single_status(dm_name, "mirror")
    }

    /// The one status reader: the single status line of a one-target map of type `target`,
    /// with its parameters parsed as `S`.
    fn single_status<S>(&self, dm_name: &str, target: &str) -> Result<(StatusLine, S), RigError>
    where
        S: std::str::FromStr,
        S::Err: std::fmt::Display,
    {
        let (_, lines) = self.status(dm_name)?;
        let bad = |detail: String| RigError::Status {
            device: dm_name.to_string(),
            detail,
        };
        let line = match <[StatusLine; 1]>::try_from(lines) {
            Ok([line]) => line,
            Err(lines) => {
                return Err(bad(format!(
                    "a map has one status line, the kernel printed {}",
                    lines.len()
                )))
            }
        };
        if line.target_type != target {
            return Err(bad(format!(
                "the target is {:?}, not {target}",
                line.target_type
            )));
        }
        let status = line.params.parse::<S>().map_err(|e| bad(e.to_string()))?;
        Ok((line, status))
    }

    /// Suspends (without flushing) and resumes `dm_name` without a table change (a mirror
    /// restarts its resync; writes it holds after a leg failure are requeued, not failed).
    pub fn suspend_resume(&self, dm_name: &str) -> Result<(), RigError> {
        let id = DevId::Name(name(dm_name)?);
        self.dm
            .device_suspend(
                &id,
                DmOptions::default().set_flags(DmFlags::DM_SUSPEND | DmFlags::DM_NOFLUSH),
            )
            .map_err(dm_err(format!("suspend {dm_name}")))?;
        self.dm
            .device_suspend(&id, DmOptions::default())
            .map_err(dm_err(format!("resume {dm_name}")))?;
        Ok(())
    }

    /// Sends a target message (e.g. `fail_path 254:0`) to `dm_name`.
    pub fn send(&self, dm_name: &str, message: impl Into<Message>) -> Result<(), RigError> {
        let message = message.into().to_string();
        let id = DevId::Name(name(dm_name)?);
        self.dm
            .target_msg(&id, None, &message)
            .map(|_| ())
            .map_err(|err| RigError::Message {
                device: dm_name.to_string(),
                message,
                detail: err.to_string(),
            })
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

#[cfg(test)]
mod kernel_lines {
    //! Round trips over every line of `testdata/kernel-6.1.txt`.

    use super::*;

    const FIXTURE: &str = include_str!("testdata/kernel-6.1.txt");

    fn lines(label: &str) -> Vec<&'static str> {
        let prefix = format!("{label}: ");
        FIXTURE
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    #[test]
    fn the_fixture_has_every_kind_of_line() {
        assert!(lines("table").len() >= 5);
        assert!(lines("status").len() >= 10);
        assert!(lines("loaded").len() >= 10);
        let known = ["table: ", "status: ", "loaded: ", "#"];
        for line in FIXTURE.lines() {
            assert!(known.iter().any(|k| line.starts_with(k)), "{line:?}");
        }
    }

    #[test]
    fn kernel_tables_and_loaded_tables_print_back_as_they_were() {
        for text in lines("table")
            .into_iter()
            .map(String::from)
            .chain(lines("loaded").into_iter().map(|l| l.replace(" | ", "\n")))
        {
            let table: Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(table.to_string(), text);
            assert_eq!(table.to_string().parse::<Table>(), Ok(table.clone()));
        }
    }

    #[test]
    fn kernel_multipath_tables_carry_what_the_kernel_adds() {
        for text in lines("table") {
            let table: Table = text.parse().unwrap();
            let Target::Multipath(mp) = &table.0[0].target else {
                panic!("{text}: not a multipath table");
            };
            // The kernel reports retain_attached_hw_handler on every map it has made.
            assert!(mp
                .features
                .contains(&multipath::Feature::RetainAttachedHwHandler));
        }
    }

    #[test]
    fn kernel_status_lines_print_back_as_they_were() {
        for text in lines("status") {
            let mut words = text.splitn(4, ' ');
            let (start, length, kind, params) = (
                words.next().unwrap(),
                words.next().unwrap(),
                words.next().unwrap(),
                words.next().unwrap(),
            );
            assert_eq!(kind, "multipath");
            // What the kernel hands over has a trailing space.
            let status: MultipathStatus = format!("{params} ").parse().unwrap();
            assert_eq!(status.to_string(), params);
            assert_eq!(
                status.to_string().parse::<MultipathStatus>(),
                Ok(status.clone())
            );
            let line = StatusLine {
                start: start.parse().unwrap(),
                length: length.parse().unwrap(),
                target_type: kind.into(),
                params: format!("{status} "),
            };
            assert_eq!(line.render(), text);
        }
    }
}
