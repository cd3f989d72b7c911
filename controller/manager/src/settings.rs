//! Settings of the embedded path manager: the multipath.conf keywords pathrig implements, their
//! built-in defaults, and for every effective value where it came from (so the report can list
//! each setting with its origin).
//!
//! The values are resolved per map, the first level that sets a keyword winning: a
//! `multipaths { multipath { ... } }` entry (or `[manager.map.<name>]`), then `overrides`, then
//! `defaults` (or the `[manager]` TOML keys, which stand at the level of `defaults`), then
//! built-in. As in multipath-tools, `polling_interval`, `max_polling_interval`,
//! `checker_timeout` and `marginal_pathgroups` are global (defaults level only) and
//! `path_checker` cannot be set per map. A map's WWID is [`wwid_of`] its name, `pathrig-<name>`:
//! a `multipath` entry is for the map whose name is its `alias` or whose WWID is its `wwid`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// pathrig's built-in default (multipath-tools' default where it has one).
    Builtin,
    /// A key of the scenario's `[manager]` table (line in the scenario file).
    Scenario { line: usize },
    /// A `[manager.map.<name>]` key of the scenario (line in the scenario file).
    ScenarioMap { line: usize },
    /// multipath.conf `defaults` section (file as given, line there).
    ConfDefaults { file: String, line: usize },
    /// multipath.conf `overrides` section.
    ConfOverrides { file: String, line: usize },
    /// multipath.conf `multipaths { multipath { ... } }` entry matching the map.
    ConfMultipath { file: String, line: usize },
    /// Derived from another setting (e.g. max_polling_interval from polling_interval).
    Derived { from: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => write!(f, "built-in"),
            Origin::Scenario { line } => write!(f, "[manager], line {line}"),
            Origin::ScenarioMap { line } => write!(f, "[manager.map], line {line}"),
            Origin::ConfDefaults { file, line } => write!(f, "{file}:{line} (defaults)"),
            Origin::ConfOverrides { file, line } => write!(f, "{file}:{line} (overrides)"),
            Origin::ConfMultipath { file, line } => write!(f, "{file}:{line} (multipaths)"),
            Origin::Derived { from } => write!(f, "derived from {from}"),
        }
    }
}

/// One effective setting with its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn builtin(value: T) -> Self {
        Setting {
            value,
            origin: Origin::Builtin,
        }
    }
}

/// `path_checker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathChecker {
    /// An O_DIRECT read of one block at offset 0, bounded by `checker_timeout`.
    Directio,
    /// A SCSI TEST UNIT READY through SG_IO, bounded by `checker_timeout`: up, down, or ghost
    /// (NOT READY, target port in standby), as multipath-tools' `tur` checker.
    Tur,
    /// No checking: paths are always considered up by the checker.
    None,
}

/// `path_grouping_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupingPolicy {
    /// One path per group; groups ordered by path priority (highest first), then file order.
    Failover,
    /// All paths in one group.
    Multibus,
    /// One group per distinct path priority, highest first.
    GroupByPrio,
}

impl GroupingPolicy {
    /// The path groups of a map whose legs have these (leg, prio) pairs, in
    /// file order: groups in priority order, each a list of legs (names, ids: whatever the
    /// caller names them by).
    ///
    /// - failover: one group per leg, highest prio first, equal prios in file order;
    /// - multibus: one group with every leg, in file order;
    /// - group_by_prio: one group per distinct prio, highest first, legs in file order.
    pub fn groups<L: Clone>(self, legs: impl IntoIterator<Item = (L, u32)>) -> Vec<Vec<L>> {
        let legs: Vec<(L, u32)> = legs.into_iter().collect();
        match self {
            GroupingPolicy::Multibus => {
                vec![legs.iter().map(|(name, _)| name.clone()).collect()]
            }
            GroupingPolicy::Failover => {
                let mut by_prio = legs;
                // stable: equal prios keep file order
                by_prio.sort_by_key(|&(_, prio)| std::cmp::Reverse(prio));
                by_prio.into_iter().map(|(name, _)| vec![name]).collect()
            }
            GroupingPolicy::GroupByPrio => {
                let mut prios: Vec<u32> = legs.iter().map(|&(_, p)| p).collect();
                prios.sort_unstable_by(|a, b| b.cmp(a));
                prios.dedup();
                prios
                    .into_iter()
                    .map(|p| {
                        legs.iter()
                            .filter(|&&(_, prio)| prio == p)
                            .map(|(name, _)| name.clone())
                            .collect()
                    })
                    .collect()
            }
        }
    }
}

/// `failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failback {
    /// Switch to the best group as soon as it has a usable path.
    Immediate,
    /// Never switch back by itself.
    Manual,
    /// Switch back this long after the best group became usable again; cancelled when a path of
    /// the map fails meanwhile. (`failback N` in multipath.conf, N seconds.)
    Deferred(Duration),
    /// Fail back only when a path comes back in the best group and every other path of that group
    /// was down according to the checker (for nodes sharing active/passive storage).
    Followover,
}

/// `no_path_retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoPathRetry {
    /// Fail IO at once when no path is left (`fail_if_no_path`).
    Fail,
    /// Queue IO until a path returns, forever.
    Queue,
    /// Queue for N × polling_interval after the last path failed, then fail.
    /// (`no_path_retry 0` in multipath.conf means [`NoPathRetry::Fail`].)
    Retries(u32),
}

impl NoPathRetry {
    /// Whether the map's table has `queue_if_no_path`: it queues for `queue`
    /// and for N retries (the manager turns queueing off when they run out).
    pub fn queue_if_no_path(self) -> bool {
        !matches!(self, NoPathRetry::Fail)
    }
}

/// `san_path_err_*`: flap damping. All three set = on; none set = off; anything else is an error,
/// and so is setting it together with [`MarginalPath`] for one map. The setting's origin is the
/// most specific of its keywords' origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanPathErr {
    /// Failures (counted with forgetting) above which a path is held back.
    pub threshold: u32,
    /// Every this many healthy checks one counted failure is forgotten.
    pub forget_rate: u32,
    /// How long a held-back path stays out before it may be reinstated.
    pub recovery_time: Duration,
}

/// `marginal_path_*` (IO-error accounting for intermittently failing paths). All four set = on;
/// none = off; anything else is an error. Origin as for [`SanPathErr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginalPath {
    /// Two kernel failures of a path within this time trigger sampling.
    pub double_failed_time: Duration,
    /// How long a sample runs. multipath-tools raises a value below 120 s to 120 s; pathrig
    /// does not (so short tests can sample briefly).
    pub err_sample_time: Duration,
    /// Error rate above which the path is marginal, in permille (0..=1000).
    pub err_rate_threshold: u32,
    /// After a bad verdict, wait this long before sampling again.
    pub err_recheck_gap_time: Duration,
}

/// `marginal_detector` (pathrig extension): how a marginal-path sample reaches its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarginalDetector {
    /// multipath-tools' rule: sample for the whole `marginal_path_err_sample_time`, then compare
    /// the error rate with `marginal_path_err_rate_threshold`.
    Window,
    /// Wald's sequential probability ratio test between an acceptable and a marginal error rate:
    /// stops as soon as the evidence is strong enough either way (falling back to the window
    /// rule at the end of the sample time), so clear cases are decided in a few bursts.
    Sequential,
}

/// A rate or a probability in parts per million, kept exact (so settings compare with `==`):
/// `Ppm(2_500)` is 2.5 ‰, `Ppm(10_000)` is 0.01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ppm(pub u32);

impl Ppm {
    /// A whole number of permille.
    pub const fn permille(n: u32) -> Ppm {
        Ppm(n * 1000)
    }

    /// As a fraction of one (0.0025 for 2.5 ‰).
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 1e6
    }

    /// As permille, written without trailing zeros: "2.5", "10", "0.125".
    pub fn permille_text(self) -> String {
        decimal(self.0, 1000)
    }

    /// As a fraction of one, written without trailing zeros: "0.01", "0.005".
    pub fn fraction_text(self) -> String {
        decimal(self.0, 1_000_000)
    }
}

fn decimal(n: u32, unit: u32) -> String {
    let whole = n / unit;
    let frac = n % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// pathrig's own settings for the marginal-path detector (`marginal_path_*`): how the sample IO
/// is sent and how a sample decides. These are **pathrig extensions**, not multipath.conf
/// keywords (multipathd sends 32 concurrent reads at 10 Hz and only knows the window rule); they
/// are accepted wherever the `marginal_path_*` keywords are (`[manager]`, `[manager.map.X]`, and
/// a conf's `defaults`, `overrides` and `multipath` entries) and matter only for maps where
/// `marginal_path_*` is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginalSampling {
    /// `marginal_sample_burst`: sample reads sent together (default 32, multipathd's number of
    /// concurrent sample reads). Bursts of continuous reads look like real IO, which a path
    /// whose errors depend on load or queue depth needs to show them.
    pub sample_burst: Setting<u32>,
    /// `marginal_sample_gap`: idle time between the end of one burst (its last answer) and the
    /// next (default 100 ms: multipathd's 10 Hz sample loop; about 300 reads/s on a fast path).
    pub sample_gap: Setting<Duration>,
    /// `marginal_io_timeout`: each sample read is bounded by this; a read without an answer in
    /// time counts once as an error. Default 1 s, where multipathd's is 60 s (`IOTIMEOUT_SEC`,
    /// with the sample time raised to at least twice that): an intended difference, because
    /// pathrig's samples last seconds so that tests stay short, and a read's timeout has to fit
    /// in the sample. Must be shorter than `marginal_path_err_sample_time`.
    pub io_timeout: Setting<Duration>,
    /// `marginal_detector`: `window` (default) or `sequential`.
    pub detector: Setting<MarginalDetector>,
    /// `marginal_sprt_good_permille`: the acceptable error rate of the sequential test, in
    /// permille (decimals allowed). `None` only while `marginal_path_*` is off and it is not
    /// set; otherwise derived as a quarter of `marginal_path_err_rate_threshold` (see
    /// [`MarginalSampling::derived_good`]).
    pub sprt_good_permille: Setting<Option<Ppm>>,
    /// `marginal_sprt_bad_permille`: the marginal error rate of the sequential test. Derived as
    /// twice the threshold, at most halfway from it to 1000 ‰ (see
    /// [`MarginalSampling::derived_bad`]).
    pub sprt_bad_permille: Setting<Option<Ppm>>,
    /// `marginal_sprt_alpha`: the sequential test's false-alarm probability (declaring a path
    /// that errs at the acceptable rate marginal), 0 < alpha < 0.5; default 0.01.
    pub sprt_alpha: Setting<Ppm>,
    /// `marginal_sprt_beta`: its miss probability (declaring a path that errs at the marginal
    /// rate good), 0 < beta < 0.5; default 0.01.
    pub sprt_beta: Setting<Ppm>,
}

impl MarginalSampling {
    /// The acceptable rate derived from a threshold in permille: a quarter of it. A path well
    /// below the threshold is then accepted quickly, while the test still has room (a factor of
    /// eight between the two rates) to tell it from a marginal one.
    pub fn derived_good(threshold_permille: u32) -> Ppm {
        Ppm(threshold_permille * 250)
    }

    /// The marginal rate derived from a threshold in permille: twice the threshold, but at most
    /// halfway from the threshold to 1000 ‰ (so that a high threshold does not put the marginal
    /// rate at 100 %, where a single good read would prove a path good), and above the
    /// acceptable rate. 1000 ‰ for a threshold of 1000 ‰ (no path is marginal then; the
    /// sequential detector refuses that setting).
    pub fn derived_bad(threshold_permille: u32) -> Ppm {
        let t = threshold_permille * 1000;
        let halfway = (t + 1_000_000) / 2;
        Ppm((2 * t).min(halfway).max(t + 1).min(1_000_000))
    }

    /// The (acceptable, marginal) rates in effect for `threshold_permille`.
    pub fn sprt_rates(&self, threshold_permille: u32) -> (Ppm, Ppm) {
        (
            self.sprt_good_permille
                .value
                .unwrap_or_else(|| Self::derived_good(threshold_permille)),
            self.sprt_bad_permille
                .value
                .unwrap_or_else(|| Self::derived_bad(threshold_permille)),
        )
    }
}

impl Default for MarginalSampling {
    fn default() -> Self {
        MarginalSampling {
            sample_burst: Setting::builtin(32),
            sample_gap: Setting::builtin(Duration::from_millis(100)),
            io_timeout: Setting::builtin(Duration::from_secs(1)),
            detector: Setting::builtin(MarginalDetector::Window),
            sprt_good_permille: Setting::builtin(None),
            sprt_bad_permille: Setting::builtin(None),
            sprt_alpha: Setting::builtin(Ppm(10_000)),
            sprt_beta: Setting::builtin(Ppm(10_000)),
        }
    }
}

/// `marginal_pathgroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarginalPathgroups {
    /// Marginal paths stay failed.
    Off,
    /// Marginal paths are reinstated into a path group used last.
    On,
}

/// The effective path-manager settings of one map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerSettings {
    pub path_checker: Setting<PathChecker>,
    pub polling_interval: Setting<Duration>,
    pub max_polling_interval: Setting<Duration>,
    pub checker_timeout: Setting<Duration>,
    pub path_grouping_policy: Setting<GroupingPolicy>,
    pub failback: Setting<Failback>,
    pub no_path_retry: Setting<NoPathRetry>,
    pub san_path_err: Setting<Option<SanPathErr>>,
    pub marginal_path: Setting<Option<MarginalPath>>,
    pub marginal_pathgroups: Setting<MarginalPathgroups>,
    /// pathrig's extensions for the marginal-path detector.
    pub marginal_sampling: MarginalSampling,
}

impl Default for ManagerSettings {
    /// Built-in defaults (multipath-tools' where it has one).
    fn default() -> Self {
        ManagerSettings {
            path_checker: Setting::builtin(PathChecker::Directio),
            polling_interval: Setting::builtin(Duration::from_secs(5)),
            max_polling_interval: Setting {
                value: Duration::from_secs(20),
                origin: Origin::Derived {
                    from: "polling_interval (4 ×)".into(),
                },
            },
            checker_timeout: Setting::builtin(Duration::from_secs(30)),
            path_grouping_policy: Setting::builtin(GroupingPolicy::Failover),
            failback: Setting::builtin(Failback::Manual),
            no_path_retry: Setting::builtin(NoPathRetry::Fail),
            san_path_err: Setting::builtin(None),
            marginal_path: Setting::builtin(None),
            marginal_pathgroups: Setting::builtin(MarginalPathgroups::Off),
            marginal_sampling: MarginalSampling::default(),
        }
    }
}

/// The WWID pathrig gives map `name`: `pathrig-<name>`. A multipath.conf
/// `multipath` entry whose `wwid` is this (or whose `alias` is `name`) is
/// for that map.
pub fn wwid_of(name: &str) -> String {
    format!("pathrig-{name}")
}

/// `[manager] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerKind {
    /// pathrig's embedded path manager manages every map (the default).
    Embedded,
    /// No path manager: the bare kernel's behaviour (the rig reinstates restored legs' paths).
    None,
    /// The real multipathd (multipath-tools) runs in the guest and builds the maps itself.
    Multipathd,
}

impl ManagerKind {
    /// Whether the path manager builds the maps itself (from the legs), so the runner must not.
    pub fn builds_maps(self) -> bool {
        self == ManagerKind::Multipathd
    }
}

/// `[manager] kind = "multipathd"`: which multipathd, and what pathrig writes into its
/// multipath.conf without modelling it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipathdSpec {
    /// `[manager] multipathd`: the user's own multipathd (as the guest sees it); `None`: the
    /// packaged one pathrig fetches.
    pub binary: Option<std::path::PathBuf>,
    /// `[manager.passthrough]`: multipathd keywords pathrig does not model, written verbatim
    /// into the conf's `defaults` section (keyword, value), in file order.
    pub passthrough: Vec<(String, String)>,
}

/// The scenario's path-manager section, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerSpec {
    pub kind: ManagerKind,
    /// `kind = "multipathd"` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipathd: Option<MultipathdSpec>,
    /// Effective settings for every map, in map order (empty when `kind` is `None`).
    pub maps: Vec<(String, ManagerSettings)>,
}

impl ManagerSpec {
    pub fn settings(&self, map: &str) -> Option<&ManagerSettings> {
        self.maps
            .iter()
            .find(|(name, _)| name == map)
            .map(|(_, s)| s)
    }
}
