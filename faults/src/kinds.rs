//! Fault kinds: what can be done to a leg, and their parameters.
//!
//! Everything about a kind lives in this file. To add one: add a variant to
//! [`FaultKind`], an arm to [`FaultKind::name`], and one [`KindDef`] entry in
//! [`KINDS`] listing its parameters and decoding/validating them. Unknown
//! kinds, missing parameters and parameters given to the wrong kind are
//! reported from that table, so nothing else needs to change.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Serialize;

use crate::diag::Report;
use crate::reader::{one_of, Got, Sp, Table};
use crate::units::format_duration;

/// What a fault does to its leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kind = "fail"`: the leg becomes a dm-error target.
    Fail,
    /// `kind = "delay"`, `ms = 200`: every IO on the leg is delayed (dm-delay).
    Delay { ms: u32 },
    /// `kind = "flakey"`, `up = "1s"`, `down = "1s"`: the leg alternates
    /// between working and failing (dm-flakey; whole seconds).
    Flakey { up: Duration, down: Duration },
    /// `kind = "restore"`: back to the healthy table.
    Restore,
    /// `kind = "kernel_fail"`: the kernel fails the path (a `fail_path` message to the map, as
    /// after a trespass by another node) while the leg itself keeps working. Instantaneous.
    KernelFail,
}

impl FaultKind {
    /// The `kind` string of this fault in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Fail => "fail",
            FaultKind::Delay { .. } => "delay",
            FaultKind::Flakey { .. } => "flakey",
            FaultKind::Restore => "restore",
            FaultKind::KernelFail => "kernel_fail",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Delay { ms } => write!(f, "delay {ms}ms"),
            FaultKind::Flakey { up, down } => write!(
                f,
                "flakey up {} down {}",
                format_duration(*up),
                format_duration(*down)
            ),
            other => f.write_str(other.name()),
        }
    }
}

/// A kind-specific key in a `[[fault]]` table.
pub(crate) struct Param {
    pub key: &'static str,
    /// Shown when the parameter is missing: "ms = 200".
    pub example: &'static str,
}

/// Everything the parser knows about one fault kind.
pub(crate) struct KindDef {
    pub name: &'static str,
    pub params: &'static [Param],
    /// Whether `for` makes sense (an instantaneous action has no window).
    pub allows_window: bool,
    /// Reads and validates the parameters; `None` if any was wrong (reported).
    pub decode: fn(&mut Params<'_, '_, '_, '_>) -> Option<FaultKind>,
}

pub(crate) const KINDS: &[KindDef] = &[
    KindDef {
        name: "fail",
        params: &[],
        allows_window: true,
        decode: |_| Some(FaultKind::Fail),
    },
    KindDef {
        name: "delay",
        params: &[Param {
            key: "ms",
            example: "ms = 200",
        }],
        allows_window: true,
        decode: |p| {
            let ms = p.int("ms", 1..=60_000)?;
            Some(FaultKind::Delay { ms: ms as u32 })
        },
    },
    KindDef {
        name: "flakey",
        params: &[
            Param {
                key: "up",
                example: "up = \"1s\"",
            },
            Param {
                key: "down",
                example: "down = \"1s\"",
            },
        ],
        allows_window: true,
        decode: |p| {
            let up = p.whole_seconds("up");
            let down = p.whole_seconds("down");
            Some(FaultKind::Flakey {
                up: up?,
                down: down?,
            })
        },
    },
    KindDef {
        name: "restore",
        params: &[],
        allows_window: false,
        decode: |_| Some(FaultKind::Restore),
    },
    KindDef {
        name: "kernel_fail",
        params: &[],
        allows_window: false,
        decode: |_| Some(FaultKind::KernelFail),
    },
];

/// Keys every `[[fault]]` has, whatever its kind.
pub(crate) const COMMON_KEYS: &[&str] = &["at", "for", "leg", "kind"];

/// Every key allowed in a `[[fault]]` table: the common ones and every kind's parameters.
pub(crate) fn fault_keys() -> Vec<&'static str> {
    let mut keys = COMMON_KEYS.to_vec();
    for p in KINDS.iter().flat_map(|k| k.params) {
        if !keys.contains(&p.key) {
            keys.push(p.key);
        }
    }
    keys
}

/// The kinds that take parameter `key`.
fn kinds_taking(key: &str) -> Vec<&'static str> {
    KINDS
        .iter()
        .filter(|k| k.params.iter().any(|p| p.key == key))
        .map(|k| k.name)
        .collect()
}

/// Access to a fault's parameters for one kind's decoder.
pub(crate) struct Params<'r, 't, 'a, 'i> {
    report: &'r mut Report<'t>,
    table: &'r Table<'a, 'i>,
    kind: &'static KindDef,
}

impl Params<'_, '_, '_, '_> {
    fn missing(&mut self, key: &str) {
        let example = self
            .kind
            .params
            .iter()
            .find(|p| p.key == key)
            .map_or(key, |p| p.example);
        self.report.error(
            self.table.pos,
            format!("kind = \"{}\" needs `{key}`", self.kind.name),
            format!("add e.g. `{example}` to this [[fault]]"),
        );
    }

    /// A required integer parameter within `range`.
    pub(crate) fn int(&mut self, key: &str, range: RangeInclusive<u64>) -> Option<u64> {
        match self.table.int(self.report, key, range) {
            Got::Ok(v) => Some(v.val),
            Got::Invalid => None,
            Got::Absent => {
                self.missing(key);
                None
            }
        }
    }

    /// A required duration of at least one second, in whole seconds.
    pub(crate) fn whole_seconds(&mut self, key: &str) -> Option<Duration> {
        match self.table.duration(self.report, key) {
            Got::Ok(Sp { val, pos }) => {
                if val.subsec_nanos() != 0 || val < Duration::from_secs(1) {
                    self.report.error(
                        pos,
                        format!(
                            "`{key}` = {} is not a whole number of seconds (at least 1s)",
                            format_duration(val)
                        ),
                        format!(
                            "dm-{} takes whole seconds: write e.g. `{key} = \"1s\"`",
                            self.kind.name
                        ),
                    );
                    return None;
                }
                Some(val)
            }
            Got::Invalid => None,
            Got::Absent => {
                self.missing(key);
                None
            }
        }
    }
}

/// Reads `kind` and the kind's parameters from a `[[fault]]` table.
///
/// Reports an unknown kind, parameters that belong to other kinds, missing
/// or invalid parameters, and `for` on a kind that takes no window.
pub(crate) fn decode_kind(r: &mut Report, table: &Table) -> Option<Sp<FaultKind>> {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let kind = table
        .string(r, "kind")
        .required(r, table, "kind", "kind = \"fail\"")?;
    let Some(def) = KINDS.iter().find(|k| k.name == kind.val) else {
        r.error(
            kind.pos,
            format!("unknown fault kind \"{}\"", kind.val),
            one_of(&kind.val, &names),
        );
        return None;
    };
    let mut ok = true;
    for (key, _) in table.entries() {
        if COMMON_KEYS.contains(&key.val) || def.params.iter().any(|p| p.key == key.val) {
            continue;
        }
        let takers = kinds_taking(key.val);
        if takers.is_empty() {
            continue; // an unknown key, reported by the caller
        }
        ok = false;
        let takers: Vec<String> = takers.iter().map(|k| format!("\"{k}\"")).collect();
        r.error(
            key.pos,
            format!("`{}` does not apply to kind = \"{}\"", key.val, def.name),
            format!(
                "`{}` is a parameter of kind = {} only",
                key.val,
                takers.join(" or ")
            ),
        );
    }
    if !def.allows_window {
        if let Some(pos) = table.key_pos("for") {
            ok = false;
            r.error(
                pos,
                format!("`for` does not apply to kind = \"{}\"", def.name),
                "it happens at an instant: remove `for`",
            );
        }
    }
    let decoded = (def.decode)(&mut Params {
        report: r,
        table,
        kind: def,
    });
    match decoded {
        Some(k) if ok => Some(Sp::new(k, kind.pos)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_definition_with_the_same_name() {
        let samples = [
            FaultKind::Fail,
            FaultKind::Delay { ms: 1 },
            FaultKind::Flakey {
                up: Duration::from_secs(1),
                down: Duration::from_secs(1),
            },
            FaultKind::Restore,
            FaultKind::KernelFail,
        ];
        assert_eq!(samples.len(), KINDS.len());
        for s in samples {
            assert!(KINDS.iter().any(|k| k.name == s.name()), "{}", s.name());
        }
    }

    #[test]
    fn fault_keys_are_common_then_params_once() {
        assert_eq!(
            fault_keys(),
            ["at", "for", "leg", "kind", "ms", "up", "down"]
        );
        assert_eq!(kinds_taking("ms"), ["delay"]);
        assert!(kinds_taking("at").is_empty());
    }

    #[test]
    fn display_is_short_and_readable() {
        assert_eq!(FaultKind::Delay { ms: 200 }.to_string(), "delay 200ms");
        let f = FaultKind::Flakey {
            up: Duration::from_secs(2),
            down: Duration::from_secs(1),
        };
        assert_eq!(f.to_string(), "flakey up 2s down 1s");
        assert_eq!(FaultKind::Restore.to_string(), "restore");
    }
}
