//! The multipath.conf keywords pathrig implements: their names, where they
//! may be set, and how a value is read, the same for a `[manager]` TOML key
//! and a line of multipath.conf text.
//!
//! A few keywords are **pathrig extensions** (the `marginal_sample_*`,
//! `marginal_io_timeout`, `marginal_detector` and `marginal_sprt_*` knobs of
//! the marginal-path detector, see [`crate::settings::MarginalSampling`]):
//! multipathd does not know them, but pathrig takes them at the same levels
//! as `marginal_path_*`, in TOML and in multipath.conf text alike.
//!
//! Also knows the multipath.conf keywords pathrig does *not* implement, so
//! that a real keyword gets "pathrig does not implement it" (with advice
//! where pathrig has its own way) instead of "unknown keyword".

use std::fmt;
use std::time::Duration;

use crate::settings::{
    Failback, GroupingPolicy, MarginalDetector, MarginalPathgroups, NoPathRetry, Origin,
    PathChecker, Ppm,
};
use pathrig_diag::reader::one_of;
use pathrig_diag::units::{self, format_duration};

/// One keyword set somewhere, with its value read.
#[derive(Debug, Clone)]
pub struct SetAt {
    pub kw: Kw,
    pub val: Val,
    /// The keyword itself.
    pub pos: usize,
    pub origin: Origin,
}

/// One keyword pathrig implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kw {
    PathChecker,
    PollingInterval,
    MaxPollingInterval,
    CheckerTimeout,
    PathGroupingPolicy,
    Failback,
    NoPathRetry,
    SanPathErrThreshold,
    SanPathErrForgetRate,
    SanPathErrRecoveryTime,
    MarginalPathDoubleFailedTime,
    MarginalPathErrSampleTime,
    MarginalPathErrRateThreshold,
    MarginalPathErrRecheckGapTime,
    MarginalPathgroups,
    // pathrig extensions
    MarginalSampleBurst,
    MarginalSampleGap,
    MarginalIoTimeout,
    MarginalDetector,
    MarginalSprtGoodPermille,
    MarginalSprtBadPermille,
    MarginalSprtAlpha,
    MarginalSprtBeta,
}

/// Where a keyword may be set (multipath-tools' rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One value for the whole daemon: `defaults` / `[manager]` only.
    Global,
    /// `defaults` and `overrides`, not per map.
    NotPerMap,
    /// Every level, down to a `multipath` entry / `[manager.map.<name>]`.
    Any,
}

/// How a keyword's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Checker,
    /// A duration of at least this long.
    Duration(Duration),
    Policy,
    Failback,
    NoPathRetry,
    /// A count from 1.
    Count,
    Permille,
    Pathgroups,
    /// A count from 1 up to this.
    CountTo(u32),
    Detector,
    /// A rate in permille with up to three decimals; `zero` says whether 0 is allowed. Below
    /// 1000.
    RatePermille {
        zero: bool,
    },
    /// A probability strictly between 0 and 0.5, up to six decimals.
    Probability,
}

pub struct KwDef {
    pub kw: Kw,
    pub name: &'static str,
    pub scope: Scope,
    form: Form,
}

const fn def(kw: Kw, name: &'static str, scope: Scope, form: Form) -> KwDef {
    KwDef {
        kw,
        name,
        scope,
        form,
    }
}

const MS100: Duration = Duration::from_millis(100);
const MS10: Duration = Duration::from_millis(10);
const MS1: Duration = Duration::from_millis(1);
/// At most this many sample reads per burst.
pub const MAX_BURST: u32 = 4096;

/// Every keyword pathrig implements, in the order they are documented.
pub const KEYWORDS: &[KwDef] = &[
    def(
        Kw::PathChecker,
        "path_checker",
        Scope::NotPerMap,
        Form::Checker,
    ),
    def(
        Kw::PollingInterval,
        "polling_interval",
        Scope::Global,
        Form::Duration(MS100),
    ),
    def(
        Kw::MaxPollingInterval,
        "max_polling_interval",
        Scope::Global,
        Form::Duration(MS100),
    ),
    def(
        Kw::CheckerTimeout,
        "checker_timeout",
        Scope::Global,
        Form::Duration(Duration::from_secs(1)),
    ),
    def(
        Kw::PathGroupingPolicy,
        "path_grouping_policy",
        Scope::Any,
        Form::Policy,
    ),
    def(Kw::Failback, "failback", Scope::Any, Form::Failback),
    def(
        Kw::NoPathRetry,
        "no_path_retry",
        Scope::Any,
        Form::NoPathRetry,
    ),
    def(
        Kw::SanPathErrThreshold,
        "san_path_err_threshold",
        Scope::Any,
        Form::Count,
    ),
    def(
        Kw::SanPathErrForgetRate,
        "san_path_err_forget_rate",
        Scope::Any,
        Form::Count,
    ),
    def(
        Kw::SanPathErrRecoveryTime,
        "san_path_err_recovery_time",
        Scope::Any,
        Form::Duration(MS100),
    ),
    def(
        Kw::MarginalPathDoubleFailedTime,
        "marginal_path_double_failed_time",
        Scope::Any,
        Form::Duration(MS100),
    ),
    def(
        Kw::MarginalPathErrSampleTime,
        "marginal_path_err_sample_time",
        Scope::Any,
        Form::Duration(MS100),
    ),
    def(
        Kw::MarginalPathErrRateThreshold,
        "marginal_path_err_rate_threshold",
        Scope::Any,
        Form::Permille,
    ),
    def(
        Kw::MarginalPathErrRecheckGapTime,
        "marginal_path_err_recheck_gap_time",
        Scope::Any,
        Form::Duration(MS100),
    ),
    def(
        Kw::MarginalPathgroups,
        "marginal_pathgroups",
        Scope::Global,
        Form::Pathgroups,
    ),
    // pathrig extensions, at the levels of marginal_path_*
    def(
        Kw::MarginalSampleBurst,
        "marginal_sample_burst",
        Scope::Any,
        Form::CountTo(MAX_BURST),
    ),
    def(
        Kw::MarginalSampleGap,
        "marginal_sample_gap",
        Scope::Any,
        Form::Duration(MS1),
    ),
    def(
        Kw::MarginalIoTimeout,
        "marginal_io_timeout",
        Scope::Any,
        Form::Duration(MS10),
    ),
    def(
        Kw::MarginalDetector,
        "marginal_detector",
        Scope::Any,
        Form::Detector,
    ),
    def(
        Kw::MarginalSprtGoodPermille,
        "marginal_sprt_good_permille",
        Scope::Any,
        Form::RatePermille { zero: true },
    ),
    def(
        Kw::MarginalSprtBadPermille,
        "marginal_sprt_bad_permille",
        Scope::Any,
        Form::RatePermille { zero: false },
    ),
    def(
        Kw::MarginalSprtAlpha,
        "marginal_sprt_alpha",
        Scope::Any,
        Form::Probability,
    ),
    def(
        Kw::MarginalSprtBeta,
        "marginal_sprt_beta",
        Scope::Any,
        Form::Probability,
    ),
];

/// multipath.conf's other name for `path_checker`.
const CHECKER_SYNONYM: &str = "checker";

/// The flap-damping group: all three or none.
pub const SAN_PATH_ERR: [Kw; 3] = [
    Kw::SanPathErrThreshold,
    Kw::SanPathErrForgetRate,
    Kw::SanPathErrRecoveryTime,
];

/// The marginal-path group: all four or none.
pub const MARGINAL_PATH: [Kw; 4] = [
    Kw::MarginalPathDoubleFailedTime,
    Kw::MarginalPathErrSampleTime,
    Kw::MarginalPathErrRateThreshold,
    Kw::MarginalPathErrRecheckGapTime,
];

impl Kw {
    pub fn def(self) -> &'static KwDef {
        KEYWORDS
            .iter()
            .find(|d| d.kw == self)
            .expect("every keyword has a definition")
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }
}

impl fmt::Display for Kw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keyword named `name` (`checker` is `path_checker`).
pub fn lookup(name: &str) -> Option<&'static KwDef> {
    let name = if name == CHECKER_SYNONYM {
        "path_checker"
    } else {
        name
    };
    KEYWORDS.iter().find(|d| d.name == name)
}

/// A level of the settings hierarchy (most general first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// multipath.conf `defaults`, and the `[manager]` keys.
    Defaults,
    /// multipath.conf `overrides`.
    Overrides,
    /// A `multipath` entry, and `[manager.map.<name>]`.
    Map,
}

impl Scope {
    pub fn allows(self, level: Level) -> bool {
        match self {
            Scope::Global => level == Level::Defaults,
            Scope::NotPerMap => level != Level::Map,
            Scope::Any => true,
        }
    }
}

/// Names of the keywords that may be set at `level`.
pub fn names_at(level: Level) -> Vec<&'static str> {
    KEYWORDS
        .iter()
        .filter(|d| d.scope.allows(level))
        .map(|d| d.name)
        .collect()
}

impl KwDef {
    /// The error for setting this keyword at `level`, written in `place`
    /// ("`overrides`", "[manager.map.mpatha]"), if it may not be set there.
    pub fn scope_error(&self, level: Level, place: &str) -> Option<Bad> {
        if self.scope.allows(level) {
            return None;
        }
        let name = self.name;
        Some(match self.scope {
            Scope::Global => Bad {
                message: format!("`{name}` cannot be set in {place}"),
                help: format!(
                    "`{name}` is one setting for every map: multipath.conf takes it only in `defaults`; set it there or in [manager]"
                ),
            },
            _ => Bad {
                message: format!("`{name}` cannot be set per map, in {place}"),
                help: format!(
                    "multipath.conf takes `{name}` only in `defaults` and `overrides`; set it there or in [manager]"
                ),
            },
        })
    }
}

/// multipath.conf keywords (any section) pathrig does not implement, with
/// advice where pathrig has its own way of saying the same.
const UNIMPLEMENTED: &[(&str, Option<&str>)] = &[
    (
        "path_selector",
        Some("pathrig sets the path selector with `selector` in [[map]]"),
    ),
    (
        "prio",
        Some("pathrig gives each leg a fixed priority with `prio` in [[leg]]"),
    ),
    (
        "prio_args",
        Some("pathrig gives each leg a fixed priority with `prio` in [[leg]]"),
    ),
    (
        "detect_prio",
        Some("pathrig gives each leg a fixed priority with `prio` in [[leg]]"),
    ),
    ("features", Some("queueing follows from `no_path_retry`")),
    (
        "queue_without_daemon",
        Some("queueing follows from `no_path_retry`"),
    ),
    (
        "user_friendly_names",
        Some("a map's name is its [[map]] name"),
    ),
    ("alias_prefix", Some("a map's name is its [[map]] name")),
    (
        "hardware_handler",
        Some("pathrig's legs have no hardware handler"),
    ),
    (
        "retain_attached_hw_handler",
        Some("pathrig's legs have no hardware handler"),
    ),
    ("uid_attribute", Some("a map's WWID is pathrig-<map name>")),
    ("uid_attrs", Some("a map's WWID is pathrig-<map name>")),
    ("getuid_callout", Some("a map's WWID is pathrig-<map name>")),
    ("verbosity", None),
    ("reassign_maps", None),
    ("multipath_dir", None),
    ("rr_min_io", None),
    ("rr_min_io_rq", None),
    ("rr_weight", None),
    ("max_fds", None),
    ("allow_usb_devices", None),
    ("pg_timeout", None),
    ("flush_on_last_del", None),
    ("mode", None),
    ("uid", None),
    ("gid", None),
    ("fast_io_fail_tmo", None),
    ("dev_loss_tmo", None),
    ("eh_deadline", None),
    ("max_retries", None),
    ("bindings_file", None),
    ("wwids_file", None),
    ("prkeys_file", None),
    ("log_checker_err", None),
    ("reservation_key", None),
    ("all_tg_pt", None),
    ("detect_checker", None),
    ("detect_pgpolicy", None),
    ("detect_pgpolicy_use_tpg", None),
    ("force_sync", None),
    ("strict_timing", None),
    ("deferred_remove", None),
    ("partition_delimiter", None),
    ("config_dir", None),
    ("delay_watch_checks", None),
    ("delay_wait_checks", None),
    ("find_multipaths", None),
    ("find_multipaths_timeout", None),
    ("uxsock_timeout", None),
    ("retrigger_tries", None),
    ("retrigger_delay", None),
    ("missing_uev_wait_timeout", None),
    ("skip_kpartx", None),
    ("purge_disconnected", None),
    ("disable_changed_wwids", None),
    ("remove_retries", None),
    ("max_sectors_kb", None),
    ("ghost_delay", None),
    ("auto_resize", None),
    ("enable_foreign", None),
    ("recheck_wwid", None),
    ("vpd_vendor", None),
    ("product_blacklist", None),
    ("vendor", None),
    ("product", None),
    ("revision", None),
];

/// For a real multipath.conf keyword pathrig does not implement: the error
/// message and its advice (if pathrig has its own way), else `None`.
pub fn unimplemented(name: &str) -> Option<(String, Option<&'static str>)> {
    UNIMPLEMENTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, hint)| {
            (
                format!("keyword `{n}` is a multipath.conf keyword pathrig does not implement"),
                *hint,
            )
        })
}

/// A value as written, before its keyword reads it.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// A whole number (a TOML integer, or all digits in multipath.conf).
    Int(i128),
    Str(&'a str),
    /// A TOML float, as written ("0.01").
    Float(&'a str),
    /// Some other TOML type: "a boolean", "an array", ...
    Other(&'static str),
}

impl<'a> Raw<'a> {
    /// A multipath.conf value: all digits is a number, anything else a string.
    pub fn from_conf(s: &'a str) -> Raw<'a> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            Raw::Int(s.parse().unwrap_or(i128::MAX))
        } else {
            Raw::Str(s)
        }
    }

    /// What kind of value it is, for "found ..." in messages.
    fn found(self) -> &'static str {
        match self {
            Raw::Int(_) => "a number",
            Raw::Str(_) => "a string",
            Raw::Float(_) => "a float",
            Raw::Other(t) => t,
        }
    }
}

/// A keyword's value, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Checker(PathChecker),
    Duration(Duration),
    Policy(GroupingPolicy),
    Failback(Failback),
    NoPathRetry(NoPathRetry),
    Count(u32),
    Pathgroups(MarginalPathgroups),
    Detector(MarginalDetector),
    /// A rate or a probability.
    Ppm(Ppm),
}

/// Why a value is wrong, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub message: String,
    pub help: String,
}

impl KwDef {
    /// What the keyword takes, for messages.
    pub fn expects(&self) -> String {
        match self.form {
            Form::Checker => "\"directio\", \"tur\" or \"none\"".into(),
            Form::Duration(min) => format!(
                "a number of seconds or a duration string like \"500ms\", at least {}",
                format_duration(min)
            ),
            Form::Policy => "\"failover\", \"multibus\" or \"group_by_prio\"".into(),
            Form::Failback => {
                "\"immediate\", \"manual\", \"followover\" or a number of seconds to wait".into()
            }
            Form::NoPathRetry => "\"fail\", \"queue\" or a number of retries".into(),
            Form::Count => "a whole number from 1".into(),
            Form::Permille => "a whole number of permille from 0 to 1000".into(),
            Form::Pathgroups => "\"off\" or \"on\"".into(),
            Form::CountTo(max) => format!("a whole number from 1 to {max}"),
            Form::Detector => "\"window\" or \"sequential\"".into(),
            Form::RatePermille { zero: true } => {
                "a number of permille from 0 to below 1000, like 2.5".into()
            }
            Form::RatePermille { zero: false } => {
                "a number of permille above 0 and below 1000, like 20".into()
            }
            Form::Probability => "a probability above 0 and below 0.5, like 0.01".into(),
        }
    }

    fn bad(&self, message: String, help: impl Into<String>) -> Bad {
        Bad {
            message,
            help: help.into(),
        }
    }

    fn wrong_type(&self, found: &str) -> Bad {
        self.bad(
            format!("`{}` must be {}, found {found}", self.name, self.expects()),
            format!("`{}` takes {}", self.name, self.expects()),
        )
    }

    fn out_of_range(&self, n: i128) -> Bad {
        self.bad(
            format!("`{}` is out of range: {n}", self.name),
            format!("`{}` takes {}", self.name, self.expects()),
        )
    }

    fn unknown_word(&self, s: &str, names: &[&str], note: &str) -> Bad {
        self.bad(
            format!("unknown {} \"{s}\"", self.name),
            format!("{}{note}", one_of(s, names)),
        )
    }

    /// Reads a value for this keyword.
    pub fn read(&self, raw: Raw) -> Result<Val, Bad> {
        match self.form {
            Form::Checker => match raw {
                Raw::Str("directio") => Ok(Val::Checker(PathChecker::Directio)),
                Raw::Str("tur") => Ok(Val::Checker(PathChecker::Tur)),
                Raw::Str("none") => Ok(Val::Checker(PathChecker::None)),
                Raw::Str(s) => Err(self.unknown_word(
                    s,
                    &["directio", "tur", "none"],
                    " (only these checkers are implemented; tur needs SCSI legs)",
                )),
                Raw::Int(_) => Err(self.wrong_type("a number")),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Duration(min) => {
                let d = self.duration(raw)?;
                if d < min {
                    return Err(self.bad(
                        format!("`{}` = {} is too short", self.name, format_duration(d)),
                        format!("use at least {}", format_duration(min)),
                    ));
                }
                Ok(Val::Duration(d))
            }
            Form::Policy => match raw {
                Raw::Str("failover") => Ok(Val::Policy(GroupingPolicy::Failover)),
                Raw::Str("multibus") => Ok(Val::Policy(GroupingPolicy::Multibus)),
                Raw::Str("group_by_prio") => Ok(Val::Policy(GroupingPolicy::GroupByPrio)),
                Raw::Str(s) => {
                    let note = if s.starts_with("group_by_") {
                        " (the other multipath.conf policies group by storage properties pathrig's legs do not have)"
                    } else {
                        ""
                    };
                    Err(self.unknown_word(s, &["failover", "multibus", "group_by_prio"], note))
                }
                Raw::Int(_) => Err(self.wrong_type("a number")),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Failback => match raw {
                Raw::Str("immediate") => Ok(Val::Failback(Failback::Immediate)),
                Raw::Str("manual") => Ok(Val::Failback(Failback::Manual)),
                Raw::Str("followover") => Ok(Val::Failback(Failback::Followover)),
                Raw::Int(0) => Err(self.bad(
                    "`failback` = 0 is not a delay".into(),
                    "write \"immediate\" to fail back at once, or a number of seconds from 1 to wait",
                )),
                Raw::Str(s) if !s.starts_with(|c: char| c.is_ascii_digit()) => Err(
                    self.unknown_word(s, &["immediate", "manual", "followover"], " or a number of seconds"),
                ),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
                _ => {
                    let d = self.duration(raw)?;
                    if d.is_zero() {
                        return Err(self.bad(
                            "`failback` = 0s is not a delay".into(),
                            "write \"immediate\" to fail back at once, or a number of seconds from 1 to wait",
                        ));
                    }
                    Ok(Val::Failback(Failback::Deferred(d)))
                }
            },
            Form::NoPathRetry => match raw {
                Raw::Str("fail") | Raw::Int(0) => Ok(Val::NoPathRetry(NoPathRetry::Fail)),
                Raw::Str("queue") => Ok(Val::NoPathRetry(NoPathRetry::Queue)),
                Raw::Int(n) => u32::try_from(n)
                    .map(|n| Val::NoPathRetry(NoPathRetry::Retries(n)))
                    .map_err(|_| self.out_of_range(n)),
                Raw::Str(s) => Err(self.unknown_word(
                    s,
                    &["fail", "queue"],
                    " or a whole number of retries (without quotes)",
                )),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Count => match raw {
                Raw::Int(n) => u32::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .map(Val::Count)
                    .ok_or_else(|| self.out_of_range(n)),
                Raw::Str(s) => Err(self.bad(
                    format!("`{}` must be {}, found \"{s}\"", self.name, self.expects()),
                    "pathrig has no \"no\" here: to turn the mechanism off, leave all its keywords out",
                )),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Permille => match raw {
                Raw::Int(n) if (0..=1000).contains(&n) => Ok(Val::Count(n as u32)),
                Raw::Int(n) => Err(self.out_of_range(n)),
                Raw::Str(s) => Err(self.bad(
                    format!("`{}` must be {}, found \"{s}\"", self.name, self.expects()),
                    format!("`{}` takes {}", self.name, self.expects()),
                )),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Pathgroups => match raw {
                Raw::Str("off") => Ok(Val::Pathgroups(MarginalPathgroups::Off)),
                Raw::Str("on") => Ok(Val::Pathgroups(MarginalPathgroups::On)),
                Raw::Str(s) => {
                    let note = if s == "fpin" {
                        " (\"fpin\" needs Fibre Channel notifications, which pathrig's legs do not send)"
                    } else {
                        ""
                    };
                    Err(self.unknown_word(s, &["off", "on"], note))
                }
                Raw::Int(_) => Err(self.wrong_type("a number")),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::CountTo(max) => match raw {
                Raw::Int(n) => u32::try_from(n)
                    .ok()
                    .filter(|&n| (1..=max).contains(&n))
                    .map(Val::Count)
                    .ok_or_else(|| self.out_of_range(n)),
                Raw::Str(s) => Err(self.bad(
                    format!("`{}` must be {}, found \"{s}\"", self.name, self.expects()),
                    format!("`{}` takes {}", self.name, self.expects()),
                )),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::Detector => match raw {
                Raw::Str("window") => Ok(Val::Detector(MarginalDetector::Window)),
                Raw::Str("sequential") => Ok(Val::Detector(MarginalDetector::Sequential)),
                Raw::Str(s) => Err(self.unknown_word(
                    s,
                    &["window", "sequential"],
                    " (window: the error rate over the whole sample time; sequential: a sequential probability ratio test that stops early)",
                )),
                Raw::Int(_) => Err(self.wrong_type("a number")),
                Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
            },
            Form::RatePermille { zero } => {
                let ppm = self.decimal(raw, 3)?;
                let low = if zero { 0 } else { 1 };
                if !(low..1_000_000).contains(&ppm) {
                    return Err(self.bad(
                        format!(
                            "`{}` is out of range: {} permille",
                            self.name,
                            written(raw)
                        ),
                        format!("`{}` takes {}", self.name, self.expects()),
                    ));
                }
                Ok(Val::Ppm(Ppm(ppm as u32)))
            }
            Form::Probability => {
                let ppm = self.decimal(raw, 6)?;
                if !(1..500_000).contains(&ppm) {
                    return Err(self.bad(
                        format!("`{}` is out of range: {}", self.name, written(raw)),
                        format!(
                            "`{}` takes {}: 0 would need endless evidence, 0.5 or more is a coin toss",
                            self.name,
                            self.expects()
                        ),
                    ));
                }
                Ok(Val::Ppm(Ppm(ppm as u32)))
            }
        }
    }

    /// A decimal number with at most `decimals` digits after the point, scaled to an integer
    /// in units of 10^-decimals (so permille with 3 decimals and a probability with 6 both come
    /// out in parts per million).
    fn decimal(&self, raw: Raw, decimals: u32) -> Result<u64, Bad> {
        let text = match raw {
            Raw::Int(n) => {
                return u64::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_mul(10u64.pow(decimals)))
                    .ok_or_else(|| self.out_of_range(n));
            }
            Raw::Str(s) | Raw::Float(s) => s.trim(),
            Raw::Other(t) => return Err(self.wrong_type(t)),
        };
        let bad = |why: &str| {
            self.bad(
                format!("`{}`: invalid number \"{text}\": {why}", self.name),
                format!(
                    "`{}` takes {}, written as a decimal number",
                    self.name,
                    self.expects()
                ),
            )
        };
        if text.starts_with('-') {
            return Err(bad("it is negative"));
        }
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return Err(bad("write digits with at most one decimal point"));
        }
        if frac.len() > decimals as usize {
            return Err(bad(&format!("at most {decimals} decimals")));
        }
        let scale = 10u64.pow(decimals);
        let whole: u64 = whole
            .parse()
            .ok()
            .filter(|&w: &u64| w < 1_000_000)
            .ok_or_else(|| bad("too large"))?;
        let frac_scaled = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().unwrap_or(0) * 10u64.pow(decimals - frac.len() as u32)
        };
        Ok(whole * scale + frac_scaled)
    }

    /// A number of seconds, or a duration string.
    fn duration(&self, raw: Raw) -> Result<Duration, Bad> {
        match raw {
            Raw::Int(n) => u64::try_from(n)
                .ok()
                .and_then(|n| units::seconds(n).ok())
                .ok_or_else(|| self.out_of_range(n)),
            Raw::Str(s) => units::parse_duration(s)
                .map_err(|e| self.bad(format!("`{}`: {}", self.name, e.message), e.help)),
            Raw::Other(_) | Raw::Float(_) => Err(self.wrong_type(raw.found())),
        }
    }
}

/// A value as it was written, for messages.
fn written(raw: Raw) -> String {
    match raw {
        Raw::Int(n) => n.to_string(),
        Raw::Str(s) | Raw::Float(s) => s.trim().to_string(),
        Raw::Other(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, raw: Raw) -> Result<Val, Bad> {
        lookup(name).unwrap().read(raw)
    }

    #[test]
    fn every_keyword_is_defined_once_and_found_by_name() {
        for d in KEYWORDS {
            assert_eq!(lookup(d.name).unwrap().kw, d.kw);
            assert_eq!(d.kw.name(), d.name);
            assert!(unimplemented(d.name).is_none(), "{}", d.name);
        }
        assert_eq!(lookup("checker").unwrap().kw, Kw::PathChecker);
        assert!(lookup("rr_weight").is_none());
        let (msg, hint) = unimplemented("rr_weight").unwrap();
        assert_eq!(
            msg,
            "keyword `rr_weight` is a multipath.conf keyword pathrig does not implement"
        );
        assert_eq!(hint, None);
        assert!(unimplemented("prio")
            .unwrap()
            .1
            .unwrap()
            .contains("[[leg]]"));
    }

    #[test]
    fn values_in_every_form() {
        let secs = Duration::from_secs;
        assert_eq!(
            read("polling_interval", Raw::Int(2)),
            Ok(Val::Duration(secs(2)))
        );
        assert_eq!(
            read("polling_interval", Raw::Str("500ms")),
            Ok(Val::Duration(Duration::from_millis(500)))
        );
        assert_eq!(
            read("failback", Raw::Int(10)),
            Ok(Val::Failback(Failback::Deferred(secs(10))))
        );
        assert_eq!(
            read("failback", Raw::Str("2.5s")),
            Ok(Val::Failback(Failback::Deferred(Duration::from_millis(
                2500
            ))))
        );
        assert_eq!(
            read("failback", Raw::Str("followover")),
            Ok(Val::Failback(Failback::Followover))
        );
        assert_eq!(
            read("no_path_retry", Raw::Int(0)),
            Ok(Val::NoPathRetry(NoPathRetry::Fail))
        );
        assert_eq!(
            read("no_path_retry", Raw::Int(12)),
            Ok(Val::NoPathRetry(NoPathRetry::Retries(12)))
        );
        assert_eq!(
            read("marginal_path_err_rate_threshold", Raw::Int(0)),
            Ok(Val::Count(0))
        );
        assert_eq!(
            read("marginal_pathgroups", Raw::Str("on")),
            Ok(Val::Pathgroups(MarginalPathgroups::On))
        );
        assert_eq!(
            read("path_grouping_policy", Raw::Str("group_by_prio")),
            Ok(Val::Policy(GroupingPolicy::GroupByPrio))
        );
    }

    #[test]
    fn bad_values_say_what_is_valid() {
        let e = read("polling_interval", Raw::Str("50ms")).unwrap_err();
        assert_eq!(e.message, "`polling_interval` = 50ms is too short");
        assert_eq!(e.help, "use at least 100ms");
        let e = read("checker_timeout", Raw::Int(0)).unwrap_err();
        assert_eq!(e.help, "use at least 1s");
        assert_eq!(
            read("path_checker", Raw::Str("tur")),
            Ok(Val::Checker(PathChecker::Tur))
        );
        let e = read("path_checker", Raw::Str("emc_clariion")).unwrap_err();
        assert_eq!(e.message, "unknown path_checker \"emc_clariion\"");
        assert!(
            e.help.starts_with("valid values are: directio, tur, none"),
            "{}",
            e.help
        );
        let e = read("failback", Raw::Str("immediatly")).unwrap_err();
        assert!(
            e.help.starts_with("did you mean \"immediate\"?"),
            "{}",
            e.help
        );
        assert!(read("failback", Raw::Int(0)).is_err());
        assert!(read("failback", Raw::Str("0s")).is_err());
        let e = read("marginal_path_err_rate_threshold", Raw::Int(1001)).unwrap_err();
        assert_eq!(
            e.message,
            "`marginal_path_err_rate_threshold` is out of range: 1001"
        );
        let e = read("san_path_err_threshold", Raw::Str("no")).unwrap_err();
        assert!(e.help.contains("leave all its keywords out"), "{}", e.help);
        assert!(read("san_path_err_threshold", Raw::Int(0)).is_err());
        let e = read("no_path_retry", Raw::Other("a boolean")).unwrap_err();
        assert_eq!(
            e.message,
            "`no_path_retry` must be \"fail\", \"queue\" or a number of retries, found a boolean"
        );
        assert!(read("no_path_retry", Raw::Int(-1)).is_err());
        assert!(read("marginal_pathgroups", Raw::Str("fpin"))
            .unwrap_err()
            .help
            .contains("Fibre Channel"));
    }

    #[test]
    fn marginal_extension_values() {
        let ppm = |n| Ok(Val::Ppm(Ppm(n)));
        assert_eq!(read("marginal_sprt_alpha", Raw::Float("0.01")), ppm(10_000));
        assert_eq!(read("marginal_sprt_alpha", Raw::Str("0.000001")), ppm(1));
        assert!(read("marginal_sprt_beta", Raw::Str(" .5")).is_err());
        assert_eq!(
            read("marginal_sprt_good_permille", Raw::Float("2.5")),
            ppm(2_500)
        );
        assert_eq!(read("marginal_sprt_good_permille", Raw::Int(0)), ppm(0));
        assert_eq!(
            read("marginal_sprt_bad_permille", Raw::Str("999.999")),
            ppm(999_999)
        );
        assert!(read("marginal_sprt_bad_permille", Raw::Int(1000)).is_err());
        assert!(read("marginal_sprt_alpha", Raw::Int(0)).is_err());
        assert!(read("marginal_sprt_alpha", Raw::Str("-0.1")).is_err());
        assert!(read("marginal_sprt_alpha", Raw::Str("0.0000001")).is_err());
        assert_eq!(
            read("marginal_sample_burst", Raw::Int(4096)),
            Ok(Val::Count(4096))
        );
        assert_eq!(
            read("marginal_detector", Raw::Str("sequential")),
            Ok(Val::Detector(MarginalDetector::Sequential))
        );
        assert_eq!(
            read("marginal_sample_gap", Raw::Str("1ms")),
            Ok(Val::Duration(Duration::from_millis(1)))
        );
        // a float is a type error where decimals are not read
        let e = read("polling_interval", Raw::Float("1.5")).unwrap_err();
        assert!(e.message.ends_with("found a float"), "{}", e.message);
    }

    #[test]
    fn conf_values_are_numbers_when_all_digits() {
        assert!(matches!(Raw::from_conf("12"), Raw::Int(12)));
        assert!(matches!(Raw::from_conf("12s"), Raw::Str("12s")));
        assert!(matches!(Raw::from_conf(""), Raw::Str("")));
        assert!(matches!(Raw::from_conf("-1"), Raw::Str("-1")));
    }
}
