//! The `tur` path checker's SCSI side: one TEST UNIT READY through the `SG_IO` ioctl on a path's
//! device node, and the pure mapping of its reply (SCSI status, host/driver status, sense data)
//! to a path state — multipath-tools' `libmultipath/checkers/tur.c` decides the same way.
//!
//! [`classify`] is sans-IO and unit-tested branch by branch; [`run_tur`] is the blocking IO that
//! [`super::CheckerRing`] runs on a worker thread per check.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `SG_IO` (`<scsi/sg.h>`).
const SG_IO: libc::c_ulong = 0x2285;
/// No data phase (`SG_DXFER_NONE`).
const SG_DXFER_NONE: libc::c_int = -1;
/// `info & SG_INFO_OK_MASK` is set when the command did not end cleanly (status, host or driver
/// byte non-zero).
const SG_INFO_OK_MASK: u32 = 0x1;
/// Attempts of one check: the first and four retries on UNIT ATTENTION or a transient host
/// status, like tur.c's `retry_tur = 5`.
pub const TUR_ATTEMPTS: u32 = 5;
/// Space for descriptor or fixed sense data.
const SENSE_LEN: usize = 32;

/// `struct sg_io_hdr` (`<scsi/sg.h>`, interface 'S'), laid out as on 64-bit Linux.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut libc::c_void,
    cmdp: *const u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: libc::c_int,
    duration: u32,
    info: u32,
}

/// Host bytes (`DID_*`, `<scsi/scsi_status.h>`) tur.c treats as final rather than retried.
pub mod host {
    pub const DID_OK: u16 = 0x00;
    pub const DID_NO_CONNECT: u16 = 0x01;
    pub const DID_TIME_OUT: u16 = 0x03;
    pub const DID_BAD_TARGET: u16 = 0x04;
    pub const DID_ABORT: u16 = 0x05;
    pub const DID_ERROR: u16 = 0x07;
    pub const DID_TRANSPORT_FAILFAST: u16 = 0x0f;
}

/// SCSI status byte values used here.
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
}

/// Sense key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const NOT_READY: u8 = 0x2;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
}

impl std::fmt::Display for Sense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:02x}/{:02x}",
            sense_key_name(self.key),
            self.asc,
            self.ascq
        )
    }
}

/// The SPC name of a sense key.
pub fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xa => "COPY ABORTED",
        0xb => "ABORTED COMMAND",
        0xd => "VOLUME OVERFLOW",
        0xe => "MISCOMPARE",
        _ => "RESERVED",
    }
}

/// Reads key/ASC/ASCQ from sense data the target wrote (`len` bytes): descriptor format
/// (response code 0x72/0x73) needs 4 bytes, fixed format (0x70/0x71) 14. Anything else is no
/// sense, as tur.c reads it.
pub fn parse_sense(data: &[u8]) -> Option<Sense> {
    if data.len() < 4 {
        return None;
    }
    match data[0] & 0x7f {
        0x72 | 0x73 => Some(Sense {
            key: data[1] & 0x0f,
            asc: data[2],
            ascq: data[3],
        }),
        0x70 | 0x71 if data.len() >= 14 => Some(Sense {
            key: data[2] & 0x0f,
            asc: data[12],
            ascq: data[13],
        }),
        _ => None,
    }
}

/// What the kernel returned for one TEST UNIT READY.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScsiReply {
    /// The SCSI status byte (0 GOOD, 2 CHECK CONDITION, 0x18 RESERVATION CONFLICT, ...).
    pub status: u8,
    /// The host byte (`DID_*`).
    pub host_status: u16,
    /// The driver byte (`DRIVER_*`; 0x08 DRIVER_SENSE, 0x06 DRIVER_TIMEOUT).
    pub driver_status: u16,
    /// `SG_INFO_OK_MASK` was set: the command did not end cleanly.
    pub not_ok: bool,
    pub sense: Option<Sense>,
    /// The kernel's own measure of the command, milliseconds.
    pub duration_ms: u32,
}

impl ScsiReply {
    /// A clean GOOD reply.
    pub fn good() -> ScsiReply {
        ScsiReply {
            status: status::GOOD,
            host_status: host::DID_OK,
            driver_status: 0,
            not_ok: false,
            sense: None,
            duration_ms: 0,
        }
    }

    /// CHECK CONDITION with this sense.
    pub fn check_condition(key: u8, asc: u8, ascq: u8) -> ScsiReply {
        ScsiReply {
            status: status::CHECK_CONDITION,
            host_status: host::DID_OK,
            driver_status: 0x08,
            not_ok: true,
            sense: Some(Sense { key, asc, ascq }),
            duration_ms: 0,
        }
    }

    /// No status from the target: the host byte says why.
    pub fn host_error(host_status: u16) -> ScsiReply {
        ScsiReply {
            status: status::GOOD,
            host_status,
            driver_status: 0,
            not_ok: true,
            sense: None,
            duration_ms: 0,
        }
    }
}

/// The path state a TUR shows (multipathd's names in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurVerdict {
    /// PATH_UP: GOOD, or RESERVATION CONFLICT (the unit is there, another initiator holds it).
    Up,
    /// PATH_GHOST: NOT READY 04/0B, target port in standby: usable, but not for IO now.
    Ghost,
    /// PATH_PENDING: NOT READY 04/0A, asymmetric access state transition: no new state yet.
    Transitioning,
    /// PATH_DISCONNECTED (counted as down): ILLEGAL REQUEST 25/00, the LUN is unmapped.
    Disconnected,
    /// PATH_DOWN: any other failure.
    Down,
    /// PATH_WILD: the node takes no SG_IO (ENOTTY): not a SCSI device.
    Unsupported,
}

/// What to do after one TUR's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurStep {
    Done(TurVerdict),
    /// UNIT ATTENTION or a transient host status: send the TUR again (if attempts are left;
    /// otherwise the reply is judged as it is).
    Retry,
}

/// The pure decision for one TUR reply, `attempts_left` counting this one (tur.c's order: a
/// reservation conflict is up; a clean reply is up; a host status other than OK, NO_CONNECT,
/// BAD_TARGET, ABORT, TRANSPORT_FAILFAST is retried; UNIT ATTENTION is retried; NOT READY
/// 04/0B is ghost, 04/0A transitioning; ILLEGAL REQUEST 25/00 disconnected; the rest is down).
pub fn classify(reply: &ScsiReply, attempts_left: u32) -> TurStep {
    let retry_left = attempts_left > 1;
    if reply.status & 0x7e == status::RESERVATION_CONFLICT {
        return TurStep::Done(TurVerdict::Up);
    }
    if !reply.not_ok {
        return TurStep::Done(TurVerdict::Up);
    }
    let final_host = matches!(
        reply.host_status,
        host::DID_OK
            | host::DID_NO_CONNECT
            | host::DID_BAD_TARGET
            | host::DID_ABORT
            | host::DID_TRANSPORT_FAILFAST
    );
    if !final_host && retry_left {
        return TurStep::Retry;
    }
    let Some(sense) = reply.sense else {
        return TurStep::Done(TurVerdict::Down);
    };
    match (sense.key, sense.asc, sense.ascq) {
        (Sense::UNIT_ATTENTION, ..) if retry_left => TurStep::Retry,
        (Sense::NOT_READY, 0x04, 0x0b) => TurStep::Done(TurVerdict::Ghost),
        (Sense::NOT_READY, 0x04, 0x0a) => TurStep::Done(TurVerdict::Transitioning),
        (Sense::ILLEGAL_REQUEST, 0x25, 0x00) => TurStep::Done(TurVerdict::Disconnected),
        _ => TurStep::Done(TurVerdict::Down),
    }
}

/// What one `tur` check found, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TurOutcome {
    pub verdict: TurVerdict,
    /// The last reply, or the errno of a failed `SG_IO` ioctl.
    pub reply: Result<ScsiReply, i32>,
    /// TURs sent (1 + retries).
    pub attempts: u32,
}

impl TurOutcome {
    /// What the verdict rests on, when more than a clean GOOD: "NOT READY 04/02",
    /// "host status 0x03", "SCSI status 0x08", "ENOTTY".
    pub fn cause(&self) -> Option<String> {
        match &self.reply {
            Err(errno) => Some(format!("{:?}", nix::errno::Errno::from_raw(*errno))),
            Ok(r) if r.sense.is_some() => r.sense.map(|s| s.to_string()),
            Ok(r) if r.host_status != host::DID_OK => {
                Some(format!("host status 0x{:02x}", r.host_status))
            }
            Ok(r) if r.status != status::GOOD => Some(format!("SCSI status 0x{:02x}", r.status)),
            Ok(_) => None,
        }
    }

    /// A short human text: "up", "down: NOT READY 04/02", "down: host 0x03", "down: EIO".
    pub fn detail(&self) -> String {
        let verdict = match self.verdict {
            TurVerdict::Up => "up",
            TurVerdict::Ghost => "ghost",
            TurVerdict::Transitioning => "transitioning",
            TurVerdict::Disconnected => "disconnected",
            TurVerdict::Down => "down",
            TurVerdict::Unsupported => "no SG_IO",
        };
        match self.cause() {
            Some(cause) => format!("{verdict}: {cause}"),
            None => verdict.to_string(),
        }
    }
}

/// One TEST UNIT READY through `SG_IO` on `file`, bounded in the kernel by `timeout`.
pub fn send_tur(file: &File, timeout: Duration) -> io::Result<ScsiReply> {
    send_no_data(file, &[0u8; 6], timeout)
}

/// One command without a data phase (TEST UNIT READY, START STOP UNIT, ...) through `SG_IO`
/// on `file`, bounded in the kernel by `timeout`. `cdb` is 6 to 16 bytes.
pub fn send_no_data(file: &File, cdb: &[u8], timeout: Duration) -> io::Result<ScsiReply> {
    send_cdb(file, cdb, DataPhase::None, timeout).map(|(reply, _)| reply)
}

/// The data phase of a command sent with [`send_cdb`].
pub enum DataPhase<'a> {
    None,
    /// Device to host (INQUIRY, REPORT TARGET PORT GROUPS, READ, ...) into this buffer.
    In(&'a mut [u8]),
    /// Host to device (SET TARGET PORT GROUPS' parameter list, WRITE, ...) from this buffer.
    Out(&'a [u8]),
}

/// `SG_DXFER_TO_DEV` / `SG_DXFER_FROM_DEV`.
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;

/// One command through `SG_IO` on `file`, bounded in the kernel by `timeout`; returns the
/// reply and how many bytes of a data-in phase the device transferred. `cdb` is 6 to 16 bytes.
pub fn send_cdb(
    file: &File,
    cdb: &[u8],
    data: DataPhase<'_>,
    timeout: Duration,
) -> io::Result<(ScsiReply, usize)> {
    if !(6..=16).contains(&cdb.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a CDB is 6 to 16 bytes, not {}", cdb.len()),
        ));
    }
    let (direction, ptr, len) = match data {
        DataPhase::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0usize),
        DataPhase::In(buf) => (
            SG_DXFER_FROM_DEV,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        ),
        DataPhase::Out(buf) => (
            SG_DXFER_TO_DEV,
            buf.as_ptr() as *mut libc::c_void,
            buf.len(),
        ),
    };
    let dxfer_len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "data buffer over 4 GiB"))?;
    let mut sense = [0u8; SENSE_LEN];
    // The kernel wants milliseconds; 0 would mean its default (far longer): at least 1 ms.
    let timeout_ms = timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
    let mut hdr = SgIoHdr {
        interface_id: b'S' as libc::c_int,
        dxfer_direction: direction,
        cmd_len: cdb.len() as u8,
        mx_sb_len: SENSE_LEN as u8,
        iovec_count: 0,
        dxfer_len,
        dxferp: ptr,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: hdr points at a CDB, a sense buffer and a data buffer (of dxfer_len bytes, or
    // none) that all live across the (blocking) call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), SG_IO as _, &mut hdr as *mut SgIoHdr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let written = (hdr.sb_len_wr as usize).min(SENSE_LEN);
    let transferred = len.saturating_sub(hdr.resid.max(0) as usize);
    Ok((
        ScsiReply {
            status: hdr.status,
            host_status: hdr.host_status,
            driver_status: hdr.driver_status,
            not_ok: hdr.info & SG_INFO_OK_MASK != 0,
            sense: parse_sense(&sense[..written]),
            duration_ms: hdr.duration,
        },
        transferred,
    ))
}

/// A whole check: TURs until [`classify`] is done or [`TUR_ATTEMPTS`] are used up.
pub fn run_tur(file: &File, timeout: Duration) -> TurOutcome {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reply = match send_tur(file, timeout) {
            Ok(reply) => reply,
            Err(err) => {
                let errno = err.raw_os_error().unwrap_or(libc::EIO);
                let verdict = if errno == libc::ENOTTY {
                    TurVerdict::Unsupported
                } else {
                    TurVerdict::Down
                };
                return TurOutcome {
                    verdict,
                    reply: Err(errno),
                    attempts,
                };
            }
        };
        match classify(&reply, TUR_ATTEMPTS + 1 - attempts) {
            TurStep::Done(verdict) => {
                return TurOutcome {
                    verdict,
                    reply: Ok(reply),
                    attempts,
                }
            }
            TurStep::Retry => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(reply: ScsiReply) -> TurVerdict {
        match classify(&reply, TUR_ATTEMPTS) {
            TurStep::Done(v) => v,
            TurStep::Retry => panic!("retried: {reply:?}"),
        }
    }

    #[test]
    fn good_is_up() {
        assert_eq!(done(ScsiReply::good()), TurVerdict::Up);
    }

    #[test]
    fn reservation_conflict_is_up() {
        let reply = ScsiReply {
            status: status::RESERVATION_CONFLICT,
            not_ok: true,
            ..ScsiReply::good()
        };
        assert_eq!(done(reply), TurVerdict::Up);
    }

    #[test]
    fn standby_is_ghost_and_transition_is_pending() {
        assert_eq!(
            done(ScsiReply::check_condition(2, 0x04, 0x0b)),
            TurVerdict::Ghost
        );
        assert_eq!(
            done(ScsiReply::check_condition(2, 0x04, 0x0a)),
            TurVerdict::Transitioning
        );
    }

    #[test]
    fn other_not_ready_is_down() {
        // 04/02: initializing command required (a stopped unit); 04/01: becoming ready.
        assert_eq!(
            done(ScsiReply::check_condition(2, 0x04, 0x02)),
            TurVerdict::Down
        );
        assert_eq!(
            done(ScsiReply::check_condition(2, 0x04, 0x01)),
            TurVerdict::Down
        );
    }

    #[test]
    fn unmapped_lun_is_disconnected_other_illegal_request_down() {
        assert_eq!(
            done(ScsiReply::check_condition(5, 0x25, 0x00)),
            TurVerdict::Disconnected
        );
        assert_eq!(
            done(ScsiReply::check_condition(5, 0x20, 0x00)),
            TurVerdict::Down
        );
    }

    #[test]
    fn unit_attention_is_retried_until_the_last_attempt() {
        let ua = ScsiReply::check_condition(6, 0x29, 0x00);
        for left in 2..=TUR_ATTEMPTS {
            assert_eq!(classify(&ua, left), TurStep::Retry);
        }
        assert_eq!(classify(&ua, 1), TurStep::Done(TurVerdict::Down));
    }

    #[test]
    fn transient_host_status_is_retried_final_ones_are_not() {
        let timed_out = ScsiReply::host_error(host::DID_TIME_OUT);
        assert_eq!(classify(&timed_out, 2), TurStep::Retry);
        assert_eq!(classify(&timed_out, 1), TurStep::Done(TurVerdict::Down));
        assert_eq!(
            classify(&ScsiReply::host_error(host::DID_ERROR), 3),
            TurStep::Retry
        );
        for final_host in [
            host::DID_NO_CONNECT,
            host::DID_BAD_TARGET,
            host::DID_ABORT,
            host::DID_TRANSPORT_FAILFAST,
        ] {
            assert_eq!(
                classify(&ScsiReply::host_error(final_host), TUR_ATTEMPTS),
                TurStep::Done(TurVerdict::Down),
                "host 0x{final_host:02x}"
            );
        }
    }

    #[test]
    fn a_retried_host_status_with_standby_sense_on_the_last_attempt_is_ghost() {
        // After the retries run out, the sense still decides (tur.c falls through to it).
        let reply = ScsiReply {
            host_status: host::DID_ERROR,
            ..ScsiReply::check_condition(2, 0x04, 0x0b)
        };
        assert_eq!(classify(&reply, 1), TurStep::Done(TurVerdict::Ghost));
    }

    #[test]
    fn a_failed_status_without_sense_is_down() {
        let reply = ScsiReply {
            status: status::CHECK_CONDITION,
            not_ok: true,
            ..ScsiReply::good()
        };
        assert_eq!(done(reply), TurVerdict::Down);
    }

    #[test]
    fn sense_formats() {
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x02;
        fixed[12] = 0x04;
        fixed[13] = 0x0b;
        assert_eq!(
            parse_sense(&fixed),
            Some(Sense {
                key: 2,
                asc: 4,
                ascq: 0x0b
            })
        );
        // Fixed format needs the ASC/ASCQ bytes.
        assert_eq!(parse_sense(&fixed[..13]), None);
        let descriptor = [0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0];
        assert_eq!(
            parse_sense(&descriptor),
            Some(Sense {
                key: 6,
                asc: 0x29,
                ascq: 0
            })
        );
        assert_eq!(parse_sense(&[0x72, 6, 0x29]), None);
        assert_eq!(
            parse_sense(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn details_name_the_sense_or_the_host_status() {
        let outcome = TurOutcome {
            verdict: TurVerdict::Down,
            reply: Ok(ScsiReply::check_condition(2, 4, 2)),
            attempts: 1,
        };
        assert_eq!(outcome.detail(), "down: NOT READY 04/02");
        let outcome = TurOutcome {
            verdict: TurVerdict::Down,
            reply: Ok(ScsiReply::host_error(host::DID_TIME_OUT)),
            attempts: 5,
        };
        assert_eq!(outcome.detail(), "down: host status 0x03");
        let outcome = TurOutcome {
            verdict: TurVerdict::Unsupported,
            reply: Err(libc::ENOTTY),
            attempts: 1,
        };
        assert_eq!(outcome.detail(), "no SG_IO: ENOTTY");
    }

    #[test]
    fn sg_io_on_a_regular_file_is_unsupported() {
        let path = std::env::temp_dir().join(format!("pathrig-tur-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        let outcome = run_tur(&file, Duration::from_secs(1));
        assert_eq!(outcome.verdict, TurVerdict::Unsupported);
        assert_eq!(outcome.attempts, 1);
        std::fs::remove_file(&path).unwrap();
    }
}
