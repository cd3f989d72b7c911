//! Talking to a running multipathd over its socket (what `multipathd COMMAND` does, without
//! starting a process): the abstract unix socket `@/org/kernel/linux/storage/multipathd`, each
//! message a native-endian `size_t` length followed by that many bytes (the command with its
//! NUL). And the answers of `show paths raw format` / `show maps raw format` with the formats
//! below, read into [`PathRow`] and [`MapRow`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::Serialize;

use crate::RigError;

const SOCKET: &str = "/org/kernel/linux/storage/multipathd";

/// Sends `command` and returns multipathd's answer.
pub fn command(command: &str, timeout: Duration) -> Result<String, RigError> {
    use std::os::linux::net::SocketAddrExt;
    let fail = |what: &str, e: std::io::Error| {
        RigError::Guest(format!("multipathd socket: {what} ({command:?}): {e}"))
    };
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(SOCKET)
        .map_err(|e| fail("address", e))?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(|e| fail("connect", e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| fail("set timeout", e))?;
    let mut message = command.as_bytes().to_vec();
    message.push(0);
    stream
        .write_all(&message.len().to_ne_bytes())
        .and_then(|_| stream.write_all(&message))
        .map_err(|e| fail("send", e))?;
    let mut len = [0u8; std::mem::size_of::<usize>()];
    stream
        .read_exact(&mut len)
        .map_err(|e| fail("read the answer's length", e))?;
    let len = usize::from_ne_bytes(len);
    if len > 64 << 20 {
        return Err(RigError::Guest(format!(
            "multipathd socket: an answer of {len} bytes to {command:?} is not believable"
        )));
    }
    let mut answer = vec![0u8; len];
    stream
        .read_exact(&mut answer)
        .map_err(|e| fail("read the answer", e))?;
    while answer.last() == Some(&0) {
        answer.pop();
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The `show paths` format [`parse_paths`] reads: device, dev_t, multipath (alias), WWID, dm
/// state, device state, checker state, checker, failures, marginal state.
pub const PATHS_FORMAT: &str = "%d|%D|%m|%w|%t|%o|%T|%c|%0|%M";
/// The `show maps` format [`parse_maps`] reads: name, WWID, dm device, paths, dm state,
/// queueing, failures, path faults, switch groups, map loads.
pub const MAPS_FORMAT: &str = "%n|%w|%d|%N|%t|%Q|%x|%0|%1|%2";

/// One row of `show paths`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PathRow {
    pub dev: String,
    pub dev_t: String,
    /// The map it is in (`[orphan]` when none).
    pub map: String,
    pub wwid: String,
    /// The kernel's view: `active`, `failed`, `undef`.
    pub dm_state: String,
    /// The SCSI device's state: `running`, `offline`, ...
    pub dev_state: String,
    /// The checker's: `ready`, `faulty`, `shaky`, `ghost`, `i/o pending`, ...
    pub checker_state: String,
    pub checker: String,
    pub failures: u64,
    pub marginal: String,
}

/// One row of `show maps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MapRow {
    pub name: String,
    pub wwid: String,
    /// `dm-N`.
    pub sysfs: String,
    pub paths: u32,
    /// `active` or `suspend`.
    pub dm_state: String,
    /// `-`, `on`, `off`, or the retries left (`3 chk`).
    pub queueing: String,
    pub failures: u64,
    pub path_faults: u64,
    pub switch_groups: u64,
    pub map_loads: u64,
}

fn fields(line: &str, n: usize) -> Option<Vec<String>> {
    let f: Vec<String> = line.split('|').map(|s| s.trim().to_string()).collect();
    (f.len() == n).then_some(f)
}

fn number(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// Reads the answer to `show paths raw format PATHS_FORMAT`.
pub fn parse_paths(answer: &str) -> Result<Vec<PathRow>, String> {
    let mut rows = Vec::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let f = fields(line, 10).ok_or_else(|| format!("not a show paths row: {line:?}"))?;
        rows.push(PathRow {
            dev: f[0].clone(),
            dev_t: f[1].clone(),
            map: f[2].clone(),
            wwid: f[3].clone(),
            dm_state: f[4].clone(),
            dev_state: f[5].clone(),
            checker_state: f[6].clone(),
            checker: f[7].clone(),
            failures: number(&f[8]),
            marginal: f[9].clone(),
        });
    }
    Ok(rows)
}

/// Reads the answer to `show maps raw format MAPS_FORMAT`.
pub fn parse_maps(answer: &str) -> Result<Vec<MapRow>, String> {
    let mut rows = Vec::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let f = fields(line, 10).ok_or_else(|| format!("not a show maps row: {line:?}"))?;
        rows.push(MapRow {
            name: f[0].clone(),
            wwid: f[1].clone(),
            sysfs: f[2].clone(),
            paths: number(&f[3]) as u32,
            dm_state: f[4].clone(),
            queueing: f[5].clone(),
            failures: number(&f[6]),
            path_faults: number(&f[7]),
            switch_groups: number(&f[8]),
            map_loads: number(&f[9]),
        });
    }
    Ok(rows)
}

/// `show paths` and `show maps` at once, for the final states.
pub fn show(timeout: Duration) -> Result<(Vec<PathRow>, Vec<MapRow>), RigError> {
    let paths = command(
        &format!("show paths raw format \"{PATHS_FORMAT}\""),
        timeout,
    )?;
    let maps = command(&format!("show maps raw format \"{MAPS_FORMAT}\""), timeout)?;
    let paths = parse_paths(&paths).map_err(RigError::Guest)?;
    let maps = parse_maps(&maps).map_err(RigError::Guest)?;
    Ok((paths, maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_paths_rows() {
        // As multipathd 0.9.4 answered with PATHS_FORMAT, sda offline.
        let answer = "sda|8:0|pathrig-mpd|333333330000007d0|failed|offline|faulty|tur|1|normal\n\
                      sdb|8:16|pathrig-mpd|333333330000007d0|active|running|ready|tur|0|normal\n";
        let rows = parse_paths(answer).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].dev_t, "8:0");
        assert_eq!(rows[0].dm_state, "failed");
        assert_eq!(rows[0].dev_state, "offline");
        assert_eq!(rows[0].checker_state, "faulty");
        assert_eq!(rows[0].failures, 1);
        assert_eq!(rows[1].checker_state, "ready");
    }

    #[test]
    fn show_maps_rows() {
        let answer = "pathrig-mpd|333333330000007d0|dm-0|2|active|-|0|1|1|1\n";
        let rows = parse_maps(answer).unwrap();
        assert_eq!(rows[0].name, "pathrig-mpd");
        assert_eq!(rows[0].sysfs, "dm-0");
        assert_eq!(rows[0].paths, 2);
        assert_eq!(rows[0].path_faults, 1);
        assert_eq!(rows[0].switch_groups, 1);
    }

    #[test]
    fn a_row_of_another_format_is_an_error() {
        assert!(parse_paths("sda 8:0 active").is_err());
        assert!(parse_maps("pathrig-mpd|x").is_err());
    }
}

#[cfg(test)]
mod kernel_lines {
    //! What the kernel says about the maps multipathd builds, as pathrig's dm readers read it.

    #[test]
    fn a_map_multipathd_built_reads_like_any_other() {
        // The status and table of multipathd's map over two scsi_debug paths (UML 6.1, ALUA
        // autodetected, no scsi_dh in the kernel), after one path failed and came back.
        let status: crate::dm::mpath_status::MultipathStatus =
            "2 0 1 0 2 1 E 0 1 2 8:0 A 1 0 1 E 0 1 2 8:16 A 0 0 1"
                .parse()
                .unwrap();
        assert_eq!(status.groups.len(), 2);
        let table: crate::dm::MultipathTable =
            "1 queue_if_no_path 1 alua 2 1 service-time 0 1 1 8:0 1 service-time 0 1 1 8:16 1"
                .parse()
                .unwrap();
        assert!(table.queue_if_no_path());
        assert_eq!(table.groups.len(), 2);
        assert_eq!(
            table.hw_handler.as_ref().map(|h| h.name.as_str()),
            Some("alua")
        );
    }
}
