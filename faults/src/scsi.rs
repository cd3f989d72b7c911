//! SCSI legs in the scenario language: `[[hba]]` tables, a leg's `backend = "scsi"` with its
//! `hba` and SCSI knobs (`timeout`, `eh_timeout`, `queue_depth`), the host's `eh_deadline`, and
//! the values the SCSI fault kinds take (sense data, status codes, what the array does with task
//! management).
//!
//! A SCSI leg is an `sdX` served by pathrig's own array (a TCMU backstore per path, exported
//! through tcm_loop). An `[[hba]]` is one initiator host adapter — one SCSI host in the guest —
//! and the legs naming it share it: the SCSI error handler stops all IO on a host while it
//! works, so which legs share one is part of the scenario. Knobs written on the `[[hba]]` are
//! the defaults of its legs; a leg's own knob wins. A knob left out keeps the kernel's value,
//! which the report reads back.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diag::Report;
use crate::ids::HbaId;
use crate::reader::{Got, Sp, Table};
use crate::units::format_duration;

/// The longest command timeout, error-handler timeout and `eh_deadline` pathrig sets: one hour.
pub const MAX_SCSI_SECONDS: u64 = 3600;
/// The deepest queue a SCSI leg may ask for (tcm_loop's hosts queue at most 1024 commands).
pub const MAX_QUEUE_DEPTH: u64 = 1024;

/// One `[[hba]]`: an initiator host adapter (a SCSI host in the guest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbaSpec {
    /// Same charset as leg names, at most 16 characters.
    pub name: String,
    /// The host's `eh_deadline`; `None` leaves the kernel's value.
    pub eh_deadline: Option<EhDeadline>,
    /// The defaults of the host's legs (each leg's [`LegScsi::knobs`] already has them filled in).
    pub knobs: ScsiKnobs,
}

/// `eh_deadline`: how long the SCSI error handler may work on a host before it skips to a host
/// reset (`"off"`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EhDeadline {
    Off,
    /// Whole seconds, 0..=[`MAX_SCSI_SECONDS`].
    Seconds(u32),
}

impl fmt::Display for EhDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EhDeadline::Off => f.write_str("off"),
            EhDeadline::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

/// A SCSI device's knobs, each `None` to keep the kernel's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScsiKnobs {
    /// The command timeout (`device/timeout`), whole seconds 1..=3600.
    pub timeout_s: Option<u32>,
    /// How long the error handler waits for each of its own commands (`device/eh_timeout`),
    /// whole seconds 1..=3600.
    pub eh_timeout_s: Option<u32>,
    /// `device/queue_depth`, 1..=1024.
    pub queue_depth: Option<u32>,
}

impl ScsiKnobs {
    /// `self`, with every knob it leaves out taken from `defaults`.
    pub fn or(self, defaults: ScsiKnobs) -> ScsiKnobs {
        ScsiKnobs {
            timeout_s: self.timeout_s.or(defaults.timeout_s),
            eh_timeout_s: self.eh_timeout_s.or(defaults.eh_timeout_s),
            queue_depth: self.queue_depth.or(defaults.queue_depth),
        }
    }
}

/// What a SCSI leg has besides what every leg has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegScsi {
    /// The host adapter the leg's path goes through.
    pub hba: HbaId,
    /// The leg's own knobs, with its HBA's defaults filled in.
    pub knobs: ScsiKnobs,
}

/// Sense data a `check_condition` fault answers with (fixed format): sense key, additional sense
/// code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sense {
    /// 0..=15.
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    /// The sense key's name as SPC spells it.
    pub fn key_name(self) -> &'static str {
        match self.key {
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
            0xA => "COPY ABORTED",
            0xB => "ABORTED COMMAND",
            0xD => "VOLUME OVERFLOW",
            0xE => "MISCOMPARE",
            _ => "RESERVED",
        }
    }
}

impl fmt::Display for Sense {
    /// "03/11/00 (MEDIUM ERROR)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02X}/{:02X}/{:02X} ({})",
            self.key,
            self.asc,
            self.ascq,
            self.key_name()
        )
    }
}

/// Parses `"03/11/00"` (hexadecimal key/ASC/ASCQ).
pub(crate) fn parse_sense(text: &str) -> Result<Sense, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let [key, asc, ascq] = parts.as_slice() else {
        return Err("write sense data as key/ASC/ASCQ in hexadecimal, e.g. \"03/11/00\" (medium error, unrecovered read error)".into());
    };
    let byte = |what: &str, s: &str, max: u8| -> Result<u8, String> {
        let valid = !s.is_empty() && s.len() <= 2 && s.chars().all(|c| c.is_ascii_hexdigit());
        match u8::from_str_radix(s, 16) {
            Ok(v) if valid && v <= max => Ok(v),
            _ => Err(format!(
                "the {what} \"{s}\" is not a hexadecimal number from 00 to {max:02X}; e.g. \"03/11/00\""
            )),
        }
    };
    Ok(Sense {
        key: byte("sense key", key, 0xF)?,
        asc: byte("additional sense code", asc, 0xFF)?,
        ascq: byte("additional sense code qualifier", ascq, 0xFF)?,
    })
}

/// A SCSI status other than GOOD and CHECK CONDITION that a `scsi_status` fault answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScsiStatusCode {
    Busy,
    TaskSetFull,
    ReservationConflict,
}

impl ScsiStatusCode {
    pub const ALL: [(&'static str, ScsiStatusCode); 3] = [
        ("busy", ScsiStatusCode::Busy),
        ("task_set_full", ScsiStatusCode::TaskSetFull),
        ("reservation_conflict", ScsiStatusCode::ReservationConflict),
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScsiStatusCode::Busy => "busy",
            ScsiStatusCode::TaskSetFull => "task_set_full",
            ScsiStatusCode::ReservationConflict => "reservation_conflict",
        }
    }

    /// The status byte (SAM).
    pub fn byte(self) -> u8 {
        match self {
            ScsiStatusCode::Busy => 0x08,
            ScsiStatusCode::TaskSetFull => 0x28,
            ScsiStatusCode::ReservationConflict => 0x18,
        }
    }
}

/// What the array does with task management (ABORT TASK, LUN RESET) for a command a
/// `no_response` fault holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortPolicy {
    /// It answers: the held command is aborted, and the error handler stops there.
    #[default]
    Honour,
    /// It never answers, so the error handler escalates (device, target, host reset).
    Ignore,
}

impl AbortPolicy {
    pub fn name(self) -> &'static str {
        match self {
            AbortPolicy::Honour => "honour",
            AbortPolicy::Ignore => "ignore",
        }
    }
}

/// The draft of one `[[hba]]`.
pub(crate) struct DraftHba {
    pub pos: usize,
    pub name: Option<Sp<String>>,
    pub eh_deadline: Option<EhDeadline>,
    pub knobs: ScsiKnobs,
}

/// The SCSI keys of a `[[leg]]` as written.
#[derive(Default)]
pub(crate) struct DraftLegScsi {
    pub hba: Option<Sp<String>>,
    pub knobs: ScsiKnobs,
    /// Positions of the knob keys written (refused on a leg that is not SCSI).
    pub knob_keys: Vec<(&'static str, usize)>,
}

pub(crate) const HBA_KEYS: &[&str] = &[
    "name",
    "eh_deadline",
    "timeout",
    "eh_timeout",
    "queue_depth",
];

/// A whole number of seconds, 1..=3600, for a device knob.
fn knob_seconds(r: &mut Report, t: &Table, key: &'static str, min: u64) -> Option<u32> {
    match t.duration(r, key) {
        Got::Ok(Sp { val, pos }) => {
            let whole = val.subsec_nanos() == 0;
            if !whole || val.as_secs() < min || val.as_secs() > MAX_SCSI_SECONDS {
                r.error(
                    pos,
                    format!(
                        "`{key}` = {} is not a whole number of seconds from {min}s to {}",
                        format_duration(val),
                        format_duration(Duration::from_secs(MAX_SCSI_SECONDS))
                    ),
                    format!(
                        "the kernel keeps `{key}` in whole seconds: write e.g. `{key} = \"30s\"`"
                    ),
                );
                None
            } else {
                Some(val.as_secs() as u32)
            }
        }
        _ => None,
    }
}

fn decode_knobs(r: &mut Report, t: &Table) -> (ScsiKnobs, Vec<(&'static str, usize)>) {
    let knobs = ScsiKnobs {
        timeout_s: knob_seconds(r, t, "timeout", 1),
        eh_timeout_s: knob_seconds(r, t, "eh_timeout", 1),
        queue_depth: t
            .int(r, "queue_depth", 1..=MAX_QUEUE_DEPTH)
            .ok()
            .map(|v| v.val as u32),
    };
    let written = ["timeout", "eh_timeout", "queue_depth"]
        .into_iter()
        .filter_map(|k| t.key_pos(k).map(|p| (k, p)))
        .collect();
    (knobs, written)
}

pub(crate) fn decode_hba(r: &mut Report, t: &Table) -> DraftHba {
    t.reject_unknown(r, HBA_KEYS, |_| None);
    let name = t
        .string(r, "name")
        .required(r, t, "name", "name = \"hba0\"");
    let eh_deadline = match t.get("eh_deadline") {
        None => None,
        Some(_) => match t.string(r, "eh_deadline") {
            Got::Ok(s) if s.val == "off" => Some(EhDeadline::Off),
            Got::Ok(s) => match crate::units::parse_duration(&s.val) {
                Ok(d) if d.subsec_nanos() == 0 && d.as_secs() <= MAX_SCSI_SECONDS => {
                    Some(EhDeadline::Seconds(d.as_secs() as u32))
                }
                _ => {
                    r.error(
                        s.pos,
                        format!(
                            "`eh_deadline` = \"{}\" is neither \"off\" nor whole seconds up to 1h",
                            crate::units::shown(&s.val)
                        ),
                        "write `eh_deadline = \"off\"` (no limit) or whole seconds, e.g. `eh_deadline = \"5s\"`",
                    );
                    None
                }
            },
            _ => None,
        },
    };
    let (knobs, _) = decode_knobs(r, t);
    DraftHba {
        pos: t.pos,
        name,
        eh_deadline,
        knobs,
    }
}

pub(crate) fn decode_leg_scsi(r: &mut Report, t: &Table) -> DraftLegScsi {
    let hba = t.string(r, "hba").ok();
    let (knobs, knob_keys) = decode_knobs(r, t);
    DraftLegScsi {
        hba,
        knobs,
        knob_keys,
    }
}

/// The checks between `[[hba]]` tables and SCSI legs. `legs` is, per leg in file order: its
/// name, whether its backend is SCSI, its table's position and its SCSI keys. Returns the HBAs
/// and, per leg, its SCSI part (`None` for other backends or on an error, which is reported).
pub(crate) fn resolve(
    r: &mut Report,
    hbas: &[DraftHba],
    legs: &[(Option<&str>, bool, usize, &DraftLegScsi)],
) -> (Vec<HbaSpec>, Vec<Option<LegScsi>>) {
    let mut specs: Vec<HbaSpec> = Vec::new();
    let mut first_line: Vec<(String, usize)> = Vec::new();
    for h in hbas {
        let Some(name) = &h.name else { continue };
        crate::decode::check_object_name(r, name, "hba name");
        if let Some((_, line)) = first_line.iter().find(|(n, _)| *n == name.val) {
            r.error(
                name.pos,
                format!("duplicate hba name \"{}\"", crate::units::shown(&name.val)),
                format!(
                    "the first [[hba]] named \"{}\" is on line {line}; hba names must be unique",
                    name.val
                ),
            );
            continue;
        }
        first_line.push((name.val.clone(), r.line_of(h.pos)));
        specs.push(HbaSpec {
            name: name.val.clone(),
            eh_deadline: h.eh_deadline,
            knobs: h.knobs,
        });
    }
    let names: Vec<&str> = specs.iter().map(|h| h.name.as_str()).collect();
    let mut used = vec![false; specs.len()];
    let mut out = Vec::new();
    for (leg, is_scsi, pos, scsi) in legs {
        let leg = leg.unwrap_or("this leg");
        if !is_scsi {
            if let Some(hba) = &scsi.hba {
                r.error(
                    hba.pos,
                    format!("leg \"{leg}\" names an hba, but its backend is not \"scsi\""),
                    "only SCSI legs go through a host adapter: add `backend = \"scsi\"`, or remove `hba`",
                );
            }
            for (key, pos) in &scsi.knob_keys {
                r.error(
                    *pos,
                    format!(
                        "`{key}` is a SCSI device setting, and leg \"{leg}\" is not a SCSI leg"
                    ),
                    "add `backend = \"scsi\"` to the leg, or remove the key",
                );
            }
            out.push(None);
            continue;
        }
        let example = names.first().copied().unwrap_or("hba0");
        let Some(hba) = &scsi.hba else {
            r.error(
                *pos,
                format!("SCSI leg \"{leg}\" does not say which host adapter it goes through"),
                if names.is_empty() {
                    "add `hba = \"hba0\"` to the leg and a table `[[hba]]` with `name = \"hba0\"`"
                        .to_string()
                } else {
                    format!("add `hba = \"{example}\"` (hbas are: {})", quoted(&names))
                },
            );
            out.push(None);
            continue;
        };
        match names.iter().position(|n| *n == hba.val) {
            Some(i) => {
                used[i] = true;
                out.push(Some(LegScsi {
                    hba: HbaId::new(i),
                    knobs: scsi.knobs.or(specs[i].knobs),
                }));
            }
            None => {
                r.error(
                    hba.pos,
                    format!(
                        "leg \"{leg}\" names hba \"{}\", which does not exist",
                        crate::units::shown(&hba.val)
                    ),
                    if names.is_empty() {
                        format!("add a table `[[hba]]` with `name = \"{}\"`", hba.val)
                    } else {
                        format!("hbas are: {}", quoted(&names))
                    },
                );
                out.push(None);
            }
        }
    }
    for (i, h) in hbas.iter().filter(|h| h.name.is_some()).enumerate() {
        if used.get(i) == Some(&false) {
            r.error(
                h.pos,
                format!("hba \"{}\" is not used by any leg", specs[i].name),
                format!(
                    "give a SCSI leg `hba = \"{}\"`, or remove this [[hba]]",
                    specs[i].name
                ),
            );
        }
    }
    (specs, out)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_data_parses_as_three_hexadecimal_bytes() {
        assert_eq!(
            parse_sense("03/11/00"),
            Ok(Sense {
                key: 3,
                asc: 0x11,
                ascq: 0
            })
        );
        assert_eq!(
            parse_sense("6/29/0").map(|s| s.key_name()),
            Ok("UNIT ATTENTION")
        );
        for bad in [
            "03/11",
            "10/00/00",
            "03/1G/00",
            "03/111/00",
            "",
            "03//00",
            "+3/00/00",
        ] {
            assert!(parse_sense(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_legs_own_knob_wins_over_its_hbas() {
        let hba = ScsiKnobs {
            timeout_s: Some(30),
            eh_timeout_s: Some(10),
            queue_depth: None,
        };
        let leg = ScsiKnobs {
            timeout_s: Some(5),
            ..ScsiKnobs::default()
        };
        assert_eq!(
            leg.or(hba),
            ScsiKnobs {
                timeout_s: Some(5),
                eh_timeout_s: Some(10),
                queue_depth: None
            }
        );
    }
}
