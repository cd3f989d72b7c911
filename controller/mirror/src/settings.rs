//! The `[mirror]` settings: one [`MirrorSettings`] per map (the section's defaults with the
//! map's overrides applied, see [`MirrorSection`]), their defaults and their validation.
//!
//! The defaults are dmeventd's behaviour: any failed leg is removed at once, nothing is
//! scanned. Decoding from TOML is not done here; [`SettingError::key`] is the dotted key below
//! `[mirror]` (or `[mirror.map.<name>]`) so that a decoder can point at its line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to do when a leg's write failed (`D`), or its flush (`F`), or it failed in an
/// unknown way (`U`): the mirror is out of sync on that leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadPolicy {
    /// Remove the leg at once (dmeventd). Key: `on_dead = "remove"`.
    Remove,
    /// Wait up to `window` for the leg to come back (probing it every `probe_interval`); if
    /// it does, reload the map with it and let it resync ([`crate::Action::RestoreLeg`]).
    /// The wait ends early, with a removal, once `max_out_of_sync_percent` of the regions
    /// are out of sync. Keys: `on_dead = "wait"`, `dead_window`, `dead_max_out_of_sync_percent`,
    /// `dead_then`, `dead_probe_interval`.
    Wait {
        window: Duration,
        max_out_of_sync_percent: Option<u8>,
        then: AfterWindow,
        probe_interval: Duration,
    },
}

/// What to do with a dead leg whose window ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterWindow {
    /// Remove it.
    Remove,
    /// Keep it in the table, degraded, still probing it (restored when it is back).
    Keep,
}

/// What to do when a resynchronisation failed (`S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncFailurePolicy {
    /// Remove the leg (dmeventd). Key: `on_sync_failure = "remove"`.
    Remove,
    /// Restart the resync (suspend/resume) up to `max_attempts` times, `backoff` apart; an
    /// attempt that makes no progress within `backoff` is followed by the next, and when
    /// they are used up the monitor gives up (leaves the map as it is and says so). Keys:
    /// `on_sync_failure = "retry"`, `sync_retry_attempts`, `sync_retry_backoff`.
    Retry {
        max_attempts: u32,
        backoff: Duration,
    },
}

/// What to do when a read failed (`R`). The kernel served the read from another leg; the
/// data on the failed leg's blocks may be unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFailurePolicy {
    /// Remove the leg (dmeventd). Key: `on_read_failure = "remove"`.
    Remove,
    /// Rewrite the failed blocks from a good leg (found by scanning the leg when the driver
    /// cannot name them). Key: `on_read_failure = "relocate"`.
    Relocate,
    /// Note it and do nothing. Key: `on_read_failure = "ignore"`.
    Ignore,
}

/// What a scan does with blocks that read fine on every leg but differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferPolicy {
    /// Report them only. Key: `scan_on_differ = "report"`.
    Report,
    /// Copy them from the primary (first healthy) leg. Key: `scan_on_differ = "repair"`.
    Repair,
}

/// The proactive scan: every `interval`, `slice_regions` regions of every healthy leg are
/// read and compared with the primary leg, cycling over the whole mirror.
/// Keys: `scan = true`, `scan_slice_regions`, `scan_interval`, `scan_on_differ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSettings {
    pub slice_regions: u64,
    pub interval: Duration,
    pub on_differ: DifferPolicy,
}

impl Default for ScanSettings {
    /// 16 regions per second, differences reported.
    fn default() -> Self {
        ScanSettings {
            slice_regions: 16,
            interval: Duration::from_secs(1),
            on_differ: DifferPolicy::Report,
        }
    }
}

/// The mirror policy of one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSettings {
    /// Default [`DeadPolicy::Remove`].
    pub on_dead: DeadPolicy,
    /// Default [`SyncFailurePolicy::Remove`].
    pub on_sync_failure: SyncFailurePolicy,
    /// Default [`ReadFailurePolicy::Remove`].
    pub on_read_failure: ReadFailurePolicy,
    /// Default `None` (no scan).
    pub scan: Option<ScanSettings>,
}

impl Default for MirrorSettings {
    /// dmeventd's behaviour: remove on any failure, no scan.
    fn default() -> Self {
        MirrorSettings {
            on_dead: DeadPolicy::Remove,
            on_sync_failure: SyncFailurePolicy::Remove,
            on_read_failure: ReadFailurePolicy::Remove,
            scan: None,
        }
    }
}

impl DeadPolicy {
    /// `wait` with the documented defaults: a 30 s window, no out-of-sync limit, then
    /// remove, probing every second.
    pub fn wait_default() -> DeadPolicy {
        DeadPolicy::Wait {
            window: Duration::from_secs(30),
            max_out_of_sync_percent: None,
            then: AfterWindow::Remove,
            probe_interval: Duration::from_secs(1),
        }
    }
}

impl SyncFailurePolicy {
    /// `retry` with the documented defaults: 3 attempts, 5 s apart.
    pub fn retry_default() -> SyncFailurePolicy {
        SyncFailurePolicy::Retry {
            max_attempts: 3,
            backoff: Duration::from_secs(5),
        }
    }
}

/// Bounds the validation enforces.
pub mod limits {
    use std::time::Duration;

    pub const DEAD_WINDOW: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(3600));
    pub const PROBE_INTERVAL_MIN: Duration = Duration::from_millis(10);
    pub const OUT_OF_SYNC_PERCENT: (u8, u8) = (1, 100);
    pub const SYNC_RETRY_ATTEMPTS: (u32, u32) = (1, 20);
    pub const SYNC_RETRY_BACKOFF: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(600));
    pub const SCAN_SLICE_REGIONS: (u64, u64) = (1, 1 << 20);
    pub const SCAN_INTERVAL: (Duration, Duration) =
        (Duration::from_millis(10), Duration::from_secs(3600));
}

/// One invalid setting: which key, what it was, what is allowed and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingError {
    /// The dotted key below the section, e.g. `dead_window`.
    pub key: &'static str,
    /// The value as given.
    pub value: String,
    /// The allowed range or values.
    pub allowed: String,
    /// What to change.
    pub fix: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: allowed {}; {}",
            self.key, self.value, self.allowed, self.fix
        )
    }
}

fn dur(d: Duration) -> String {
    crate::reason::secs(d)
}

fn check_duration(
    errors: &mut Vec<SettingError>,
    key: &'static str,
    value: Duration,
    (min, max): (Duration, Duration),
    fix: &str,
) {
    if value < min || value > max {
        errors.push(SettingError {
            key,
            value: dur(value),
            allowed: format!("{} to {}", dur(min), dur(max)),
            fix: fix.to_string(),
        });
    }
}

fn check_range<T: PartialOrd + fmt::Display + Copy>(
    errors: &mut Vec<SettingError>,
    key: &'static str,
    value: T,
    (min, max): (T, T),
    fix: &str,
) {
    if value < min || value > max {
        errors.push(SettingError {
            key,
            value: value.to_string(),
            allowed: format!("{min} to {max}"),
            fix: fix.to_string(),
        });
    }
}

impl MirrorSettings {
    /// Every rule the settings break (empty: valid).
    pub fn validate(&self) -> Vec<SettingError> {
        let mut errors = Vec::new();
        if let DeadPolicy::Wait {
            window,
            max_out_of_sync_percent,
            probe_interval,
            ..
        } = self.on_dead
        {
            check_duration(
                &mut errors,
                "dead_window",
                window,
                limits::DEAD_WINDOW,
                "give the time a dead leg may take to come back, e.g. \"30s\"",
            );
            if let Some(percent) = max_out_of_sync_percent {
                check_range(
                    &mut errors,
                    "dead_max_out_of_sync_percent",
                    percent,
                    limits::OUT_OF_SYNC_PERCENT,
                    "give a share of regions in percent, or leave the key out for no limit",
                );
            }
            check_duration(
                &mut errors,
                "dead_probe_interval",
                probe_interval,
                (
                    limits::PROBE_INTERVAL_MIN,
                    window.max(limits::PROBE_INTERVAL_MIN),
                ),
                "probe at least once within dead_window",
            );
        }
        if let SyncFailurePolicy::Retry {
            max_attempts,
            backoff,
        } = self.on_sync_failure
        {
            check_range(
                &mut errors,
                "sync_retry_attempts",
                max_attempts,
                limits::SYNC_RETRY_ATTEMPTS,
                "give how many times to restart a failed resync",
            );
            check_duration(
                &mut errors,
                "sync_retry_backoff",
                backoff,
                limits::SYNC_RETRY_BACKOFF,
                "give the time a restarted resync has to make progress, e.g. \"5s\"",
            );
        }
        if let Some(scan) = self.scan {
            check_range(
                &mut errors,
                "scan_slice_regions",
                scan.slice_regions,
                limits::SCAN_SLICE_REGIONS,
                "give how many regions of each leg to read per scan interval",
            );
            check_duration(
                &mut errors,
                "scan_interval",
                scan.interval,
                limits::SCAN_INTERVAL,
                "give the time between two scan slices, e.g. \"1s\"",
            );
        }
        errors
    }
}

/// Per-map overrides: each `Some` replaces the section's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorOverrides {
    pub on_dead: Option<DeadPolicy>,
    pub on_sync_failure: Option<SyncFailurePolicy>,
    pub on_read_failure: Option<ReadFailurePolicy>,
    /// `Some(None)` turns the scan off for the map.
    pub scan: Option<Option<ScanSettings>>,
}

/// The whole `[mirror]` section: defaults and per-map overrides (by map name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSection {
    pub defaults: MirrorSettings,
    pub maps: BTreeMap<String, MirrorOverrides>,
}

/// A [`SettingError`] of a section: `map` is `None` for the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionError {
    pub map: Option<String>,
    pub error: SettingError,
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.map {
            None => write!(f, "[mirror] {}", self.error),
            Some(map) => write!(f, "[mirror.map.{map}] {}", self.error),
        }
    }
}

impl MirrorSection {
    /// The settings of map `name`: the defaults with its overrides.
    pub fn settings_for(&self, name: &str) -> MirrorSettings {
        let mut s = self.defaults;
        if let Some(o) = self.maps.get(name) {
            if let Some(v) = o.on_dead {
                s.on_dead = v;
            }
            if let Some(v) = o.on_sync_failure {
                s.on_sync_failure = v;
            }
            if let Some(v) = o.on_read_failure {
                s.on_read_failure = v;
            }
            if let Some(v) = o.scan {
                s.scan = v;
            }
        }
        s
    }

    /// Validates the defaults and every map's effective settings. An error of a map is only
    /// reported when the map's override causes it (not again for each map inheriting a bad
    /// default).
    pub fn validate(&self) -> Vec<SectionError> {
        let defaults = self.defaults.validate();
        let mut out: Vec<SectionError> = defaults
            .iter()
            .map(|e| SectionError {
                map: None,
                error: e.clone(),
            })
            .collect();
        for name in self.maps.keys() {
            for error in self.settings_for(name).validate() {
                if !defaults.contains(&error) {
                    out.push(SectionError {
                        map: Some(name.clone()),
                        error,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_dmeventd() {
        let s = MirrorSettings::default();
        assert_eq!(s.on_dead, DeadPolicy::Remove);
        assert_eq!(s.on_sync_failure, SyncFailurePolicy::Remove);
        assert_eq!(s.on_read_failure, ReadFailurePolicy::Remove);
        assert_eq!(s.scan, None);
        assert!(s.validate().is_empty());
    }

    #[test]
    fn documented_policy_defaults_are_valid() {
        let s = MirrorSettings {
            on_dead: DeadPolicy::wait_default(),
            on_sync_failure: SyncFailurePolicy::retry_default(),
            on_read_failure: ReadFailurePolicy::Relocate,
            scan: Some(ScanSettings::default()),
        };
        assert_eq!(s.validate(), vec![]);
    }

    #[test]
    fn out_of_range_values_name_key_range_and_fix() {
        let s = MirrorSettings {
            on_dead: DeadPolicy::Wait {
                window: Duration::ZERO,
                max_out_of_sync_percent: Some(0),
                then: AfterWindow::Remove,
                probe_interval: Duration::from_secs(1),
            },
            on_sync_failure: SyncFailurePolicy::Retry {
                max_attempts: 0,
                backoff: Duration::from_secs(601),
            },
            on_read_failure: ReadFailurePolicy::Ignore,
            scan: Some(ScanSettings {
                slice_regions: 0,
                interval: Duration::from_secs(1),
                on_differ: DifferPolicy::Repair,
            }),
        };
        let errors = s.validate();
        let keys: Vec<&str> = errors.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "dead_window",
                "dead_max_out_of_sync_percent",
                "dead_probe_interval",
                "sync_retry_attempts",
                "sync_retry_backoff",
                "scan_slice_regions"
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "dead_window = 0s: allowed 0.1s to 3600s; give the time a dead leg may take to come back, e.g. \"30s\""
        );
        assert_eq!(errors[1].allowed, "1 to 100");
        assert_eq!(errors[4].value, "601s");
    }

    #[test]
    fn a_probe_interval_longer_than_the_window_is_refused() {
        let s = MirrorSettings {
            on_dead: DeadPolicy::Wait {
                window: Duration::from_secs(5),
                max_out_of_sync_percent: None,
                then: AfterWindow::Keep,
                probe_interval: Duration::from_secs(6),
            },
            ..MirrorSettings::default()
        };
        let errors = s.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "dead_probe_interval");
        assert_eq!(errors[0].allowed, "0.01s to 5s");
    }

    #[test]
    fn overrides_apply_per_map_and_errors_say_where() {
        let mut section = MirrorSection::default();
        section.maps.insert(
            "m1".into(),
            MirrorOverrides {
                on_read_failure: Some(ReadFailurePolicy::Relocate),
                scan: Some(Some(ScanSettings {
                    interval: Duration::ZERO,
                    ..ScanSettings::default()
                })),
                ..MirrorOverrides::default()
            },
        );
        assert_eq!(section.settings_for("m0"), MirrorSettings::default());
        let m1 = section.settings_for("m1");
        assert_eq!(m1.on_read_failure, ReadFailurePolicy::Relocate);
        assert_eq!(m1.on_dead, DeadPolicy::Remove);
        let errors = section.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].map.as_deref(), Some("m1"));
        assert!(errors[0]
            .to_string()
            .starts_with("[mirror.map.m1] scan_interval = 0s: allowed 0.01s to 3600s"));
    }

    #[test]
    fn a_bad_default_is_reported_once_not_per_map() {
        let mut section = MirrorSection {
            defaults: MirrorSettings {
                on_sync_failure: SyncFailurePolicy::Retry {
                    max_attempts: 99,
                    backoff: Duration::from_secs(1),
                },
                ..MirrorSettings::default()
            },
            maps: BTreeMap::new(),
        };
        section.maps.insert("a".into(), MirrorOverrides::default());
        section.maps.insert(
            "b".into(),
            MirrorOverrides {
                on_sync_failure: Some(SyncFailurePolicy::retry_default()),
                ..MirrorOverrides::default()
            },
        );
        let errors = section.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].map, None);
        assert!(section.settings_for("b").validate().is_empty());
    }
}
