//! Sans-IO: `/dev/kmsg` records parsed, and the SCSI / sd / block lines among them classified
//! into [`ScsiEventKind`]s with their subject.
//!
//! The 6.1 guest kernel is built without `CONFIG_SCSI_LOGGING` (so `SCSI_LOG_ERROR_RECOVERY`
//! lines — "abort scheduled", "cmd abort success", "Sending BDR" — do not exist there) and
//! without `CONFIG_SCSI_CONSTANTS` (results and sense print as hex). What it prints on its own:
//! the error handler's "Device offlined - not ready after error recovery"
//! (scsi_error.c), "timing out command, waited Ns" and "rejecting I/O to offline device"
//! (scsi_lib.c), a failed command's "FAILED Result: hostbyte=0x03 ..." or "UNKNOWN(0x2003)
//! Result: hostbyte=0x03 ..." (scsi_print_result), "Power-on or device reset occurred" (a unit attention), the block layer's
//! "I/O error, dev sda, sector N", the unit attentions scsi_lib names ("Asymmetric access
//! state changed"), and the low-level driver's own notes of the aborts and resets
//! the error handler asks of it (scsi_debug prints them with its noise options).

use std::collections::HashMap;

use super::{Hctl, ResetLevel, ScsiEventKind, Subject};

/// One `/dev/kmsg` record: `pri,seq,ts_usec,flags[,...];text` and ` KEY=value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Facility × 8 + level.
    pub prio: u32,
    pub seq: u64,
    /// CLOCK_MONOTONIC at the time the kernel logged it, microseconds.
    pub ts_usec: u64,
    pub text: String,
    /// The record's dictionary (`SUBSYSTEM=scsi`, `DEVICE=+scsi:0:0:0:0`).
    pub dict: Vec<(String, String)>,
}

/// Parses one record as `read(2)` on `/dev/kmsg` returns it (unescaping `\xNN`).
pub fn parse_record(raw: &[u8]) -> Option<KmsgRecord> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n');
    let first = lines.next()?;
    let (header, message) = first.split_once(';')?;
    let mut fields = header.split(',');
    let prio = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let ts_usec = fields.next()?.parse().ok()?;
    let dict = lines
        .filter_map(|l| l.strip_prefix(' '))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect();
    Some(KmsgRecord {
        prio,
        seq,
        ts_usec,
        text: unescape(message),
        dict,
    })
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 4);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `H:C:T:L`.
pub fn parse_hctl(s: &str) -> Option<Hctl> {
    let mut it = s.split(':');
    let hctl = Hctl {
        host: it.next()?.parse().ok()?,
        channel: it.next()?.parse().ok()?,
        target: it.next()?.parse().ok()?,
        lun: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(hctl)
}

/// The subject a line names: "sd 0:0:0:0: ...", "scsi 0:0:0:0: ...", "scsi host0: ...", or a
/// block device ("dev sda,", "[sda]") known in `blocks`; else the record's `DEVICE=+scsi:H:C:T:L`.
fn subject_of(record: &KmsgRecord, blocks: &HashMap<String, Hctl>) -> Option<(Subject, usize)> {
    let text = &record.text;
    if let Some(rest) = text.strip_prefix("scsi host") {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(host) = digits.parse() {
            let after = "scsi host".len() + digits.len();
            let skip = if text[after..].starts_with(": ") {
                2
            } else {
                0
            };
            return Some((Subject::Host(host), after + skip));
        }
    }
    if let Some((driver, rest)) = text.split_once(' ') {
        if !driver.contains(':') {
            if let Some((addr, _)) = rest.split_once(": ") {
                if let Some(hctl) = parse_hctl(addr) {
                    return Some((Subject::Device(hctl), driver.len() + 1 + addr.len() + 2));
                }
            }
        }
    }
    for (name, hctl) in blocks {
        if text.contains(&format!("dev {name},")) || text.contains(&format!("dev {name} ")) {
            return Some((Subject::Device(*hctl), 0));
        }
    }
    let device = record
        .dict
        .iter()
        .find(|(k, _)| k == "DEVICE")
        .and_then(|(_, v)| v.strip_prefix("+scsi:"))
        .and_then(parse_hctl)?;
    Some((Subject::Device(device), 0))
}

/// Classifies one record; `None` for lines that are not about SCSI error handling or IO
/// errors of a SCSI device (the attach messages, everything else in the log).
pub fn classify(
    record: &KmsgRecord,
    blocks: &HashMap<String, Hctl>,
) -> Option<(Subject, ScsiEventKind)> {
    let (subject, start) = subject_of(record, blocks)?;
    let body = record.text[start..].trim();
    // "[sda] tag#12 " prefixes of sd's command lines.
    let body = strip_disk_and_tag(body);
    let kind = if body.starts_with("Device offlined") {
        ScsiEventKind::DeviceOfflined
    } else if body.starts_with("timing out command") {
        ScsiEventKind::CommandTimeout
    } else if body.starts_with("rejecting I/O to offline device") {
        ScsiEventKind::IoRejected
    } else if body.contains("Result: hostbyte=") {
        // "FAILED Result: ..." or, for a command the error handler finished, "UNKNOWN(0x2003)
        // Result: ..." (scsi_print_result names the disposition).
        let host_byte = field_hex(body, "hostbyte=");
        if host_byte == Some(0x03) {
            ScsiEventKind::CommandTimeout
        } else {
            ScsiEventKind::CommandFailed { host_byte }
        }
    } else if body.starts_with("Power-on or device reset occurred") {
        ScsiEventKind::ResetReported
    } else if UNIT_ATTENTIONS.iter().any(|m| body.starts_with(m)) {
        ScsiEventKind::UnitAttention {
            message: body.to_string(),
        }
    } else if let Some(kind) = eh_logging(body) {
        kind
    } else if let Some(kind) = lld_note(body) {
        kind
    } else if body.contains("I/O error, dev ") {
        ScsiEventKind::IoError {
            sector: field_dec(body, "sector "),
        }
    } else {
        return None;
    };
    Some((subject, kind))
}

/// The unit attentions scsi_lib.c's `scsi_report_sense` names (besides power-on/reset).
const UNIT_ATTENTIONS: &[&str] = &[
    "Inquiry data has changed",
    "LUN assignments on this target have changed",
    "Capacity data has changed",
    "Mode parameters changed",
    "Asymmetric access state changed",
    "Operating parameters on this target have changed",
    "Warning! Received an indication that the LUN reached a thin provisioning soft threshold",
];

fn strip_disk_and_tag(mut body: &str) -> &str {
    if body.starts_with('[') {
        if let Some(end) = body.find("] ") {
            body = &body[end + 2..];
        }
    }
    if let Some(rest) = body.strip_prefix("tag#") {
        if let Some(space) = rest.find(' ') {
            body = &rest[space + 1..];
        }
    }
    body
}

/// The error handler's own lines on a kernel built with `CONFIG_SCSI_LOGGING` and
/// `logging_level` raised (scsi_error.c's format strings; the 6.1 guest kernel has none of them).
fn eh_logging(body: &str) -> Option<ScsiEventKind> {
    // "scsi_eh_0: Sending BDR sdev: 0x..." and the like start with the EH thread's name.
    let body = match body.split_once(": ") {
        Some((thread, rest)) if thread.starts_with("scsi_eh_") => rest,
        _ => body,
    };
    let kind = if body.starts_with("abort scheduled") {
        ScsiEventKind::AbortIssued
    } else if body.starts_with("cmd abort success") {
        ScsiEventKind::AbortSucceeded
    } else if body.starts_with("cmd abort failed") {
        ScsiEventKind::AbortFailed
    } else if body.starts_with("Sending BDR") {
        ScsiEventKind::Reset {
            level: ResetLevel::Device,
        }
    } else if body.starts_with("Sending target reset") {
        ScsiEventKind::Reset {
            level: ResetLevel::Target,
        }
    } else if body.starts_with("Sending BRST") {
        ScsiEventKind::Reset {
            level: ResetLevel::Bus,
        }
    } else if body.starts_with("Sending SRST") {
        ScsiEventKind::Reset {
            level: ResetLevel::Host,
        }
    } else {
        return None;
    };
    Some(kind)
}

/// What a low-level driver says it was asked to do (scsi_debug's `scsi_debug_abort: command
/// found`, `scsi_debug_device_reset`, ... printed with its noise options).
fn lld_note(body: &str) -> Option<ScsiEventKind> {
    let word = body.split([':', ' ']).next()?;
    let level = if word.ends_with("_device_reset") {
        ResetLevel::Device
    } else if word.ends_with("_target_reset") {
        ResetLevel::Target
    } else if word.ends_with("_bus_reset") {
        ResetLevel::Bus
    } else if word.ends_with("_host_reset") {
        ResetLevel::Host
    } else if word.ends_with("_abort") {
        return Some(ScsiEventKind::AbortIssued);
    } else {
        return None;
    };
    Some(ScsiEventKind::Reset { level })
}

fn field_hex(text: &str, key: &str) -> Option<u8> {
    let at = text.find(key)? + key.len();
    let value = text[at..].split_whitespace().next()?;
    u8::from_str_radix(value.trim_start_matches("0x"), 16).ok()
}

fn field_dec(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDA: Hctl = Hctl {
        host: 0,
        channel: 0,
        target: 0,
        lun: 0,
    };

    fn blocks() -> HashMap<String, Hctl> {
        HashMap::from([("sda".to_string(), SDA)])
    }

    fn line(text: &str) -> Option<(Subject, ScsiEventKind)> {
        let raw = format!("6,812,4520311,-;{text}\n SUBSYSTEM=scsi\n DEVICE=+scsi:0:0:0:0\n");
        classify(&parse_record(raw.as_bytes()).unwrap(), &blocks())
    }

    #[test]
    fn records_parse_with_their_dictionary() {
        let r = parse_record(b"4,1093,98765432,-;sd 0:0:0:0: [sda] tag#3 FAILED\\x0a\n SUBSYSTEM=scsi\n DEVICE=+scsi:0:0:0:0\n").unwrap();
        assert_eq!((r.prio, r.seq, r.ts_usec), (4, 1093, 98765432));
        assert_eq!(r.text, "sd 0:0:0:0: [sda] tag#3 FAILED\n");
        assert_eq!(
            r.dict,
            [
                ("SUBSYSTEM".to_string(), "scsi".to_string()),
                ("DEVICE".to_string(), "+scsi:0:0:0:0".to_string())
            ]
        );
        assert_eq!(parse_record(b"garbage"), None);
        assert_eq!(parse_record(b"6,x,1,-;text"), None);
    }

    #[test]
    fn the_error_handlers_own_lines() {
        let dev = Subject::Device(SDA);
        assert_eq!(
            line("sd 0:0:0:0: Device offlined - not ready after error recovery"),
            Some((dev, ScsiEventKind::DeviceOfflined))
        );
        assert_eq!(
            line("sd 0:0:0:0: timing out command, waited 7s"),
            Some((dev, ScsiEventKind::CommandTimeout))
        );
        assert_eq!(
            line("sd 0:0:0:0: rejecting I/O to offline device"),
            Some((dev, ScsiEventKind::IoRejected))
        );
        assert_eq!(
            line("sd 0:0:0:0: Power-on or device reset occurred"),
            Some((dev, ScsiEventKind::ResetReported))
        );
        // Seen in the guest: after an ALUA change on a LIO LUN, and a scsi_debug resize.
        for text in [
            "Asymmetric access state changed",
            "Capacity data has changed",
        ] {
            assert_eq!(
                line(&format!("sd 0:0:0:0: {text}")),
                Some((
                    dev,
                    ScsiEventKind::UnitAttention {
                        message: text.into()
                    }
                ))
            );
        }
    }

    #[test]
    fn failed_results_and_io_errors() {
        let dev = Subject::Device(SDA);
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#0 FAILED Result: hostbyte=0x03 driverbyte=DRIVER_OK cmd_age=4s"),
            Some((dev, ScsiEventKind::CommandTimeout))
        );
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#1 FAILED Result: hostbyte=0x01 driverbyte=DRIVER_OK cmd_age=0s"),
            Some((dev, ScsiEventKind::CommandFailed { host_byte: Some(1) }))
        );
        // Seen in the guest after the error handler offlined the disk.
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#146 UNKNOWN(0x2003) Result: hostbyte=0x03 driverbyte=DRIVER_OK cmd_age=46s"),
            Some((dev, ScsiEventKind::CommandTimeout))
        );
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#146 CDB: opcode=0x28 28 00 00 00 00 00 00 00 08 00"),
            None
        );
        assert_eq!(
            line("I/O error, dev sda, sector 16 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"),
            Some((dev, ScsiEventKind::IoError { sector: Some(16) }))
        );
    }

    #[test]
    fn the_drivers_notes_of_aborts_and_resets() {
        let dev = Subject::Device(SDA);
        assert_eq!(
            line("sd 0:0:0:0: scsi_debug_abort: command found"),
            Some((dev, ScsiEventKind::AbortIssued))
        );
        for (word, level) in [
            ("scsi_debug_device_reset", ResetLevel::Device),
            ("scsi_debug_target_reset", ResetLevel::Target),
            ("scsi_debug_bus_reset", ResetLevel::Bus),
            ("scsi_debug_host_reset", ResetLevel::Host),
        ] {
            assert_eq!(
                line(&format!("sd 0:0:0:0: {word}")),
                Some((dev, ScsiEventKind::Reset { level })),
                "{word}"
            );
        }
    }

    #[test]
    fn the_scsi_logging_lines_of_a_kernel_that_has_them() {
        let dev = Subject::Device(SDA);
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#7 abort scheduled"),
            Some((dev, ScsiEventKind::AbortIssued))
        );
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#7 cmd abort success"),
            Some((dev, ScsiEventKind::AbortSucceeded))
        );
        assert_eq!(
            line("sd 0:0:0:0: [sda] tag#7 cmd abort failed"),
            Some((dev, ScsiEventKind::AbortFailed))
        );
        let r = parse_record(
            b"6,30,100,-;scsi host0: scsi_eh_0: Sending BDR sdev: 0x00000000deadbeef\n",
        )
        .unwrap();
        assert_eq!(
            classify(&r, &blocks()),
            Some((
                Subject::Host(0),
                ScsiEventKind::Reset {
                    level: ResetLevel::Device
                }
            ))
        );
    }

    #[test]
    fn host_lines_and_unrelated_lines() {
        let raw = "6,20,100,-;scsi host3: scsi_debug_host_reset\n";
        let r = parse_record(raw.as_bytes()).unwrap();
        assert_eq!(
            classify(&r, &blocks()),
            Some((
                Subject::Host(3),
                ScsiEventKind::Reset {
                    level: ResetLevel::Host
                }
            ))
        );
        assert_eq!(line("sd 0:0:0:0: [sda] Attached SCSI disk"), None);
        let r =
            parse_record(b"6,21,100,-;loop0: detected capacity change from 0 to 2048\n").unwrap();
        assert_eq!(classify(&r, &blocks()), None);
        // An IO error of a device not watched has no subject.
        let r = parse_record(b"3,22,100,-;I/O error, dev sdq, sector 0 op 0x0:(READ)\n").unwrap();
        assert_eq!(classify(&r, &blocks()), None);
    }

    #[test]
    fn hctl_needs_four_numbers() {
        assert_eq!(parse_hctl("1:0:2:3").map(|h| h.lun), Some(3));
        assert_eq!(parse_hctl("1:0:2"), None);
        assert_eq!(parse_hctl("1:0:2:3:4"), None);
        assert_eq!(parse_hctl("a:0:2:3"), None);
    }
}
