//! The behaviour report of a run as a typed model: what was built, each path's end state, the
//! typed event log, each workload's figures (one workload per map that runs one), the
//! expectations and the verdict. Renderers turn it
//! into `report.json` ([`json`]: everything, exact) and `report.txt` ([`text`]: for people and
//! snapshots, deterministic for a given scenario — order of state changes, counts that are
//! behaviour, verdicts, and latencies and stalls only as coarse buckets).

pub mod bounded;
pub mod causes;
pub mod critical;
pub mod figures;
pub mod html;
pub mod json;
pub mod mirror;
pub mod scsi;
pub mod text;

pub use bounded::ErrorsOmitted;
pub use figures::{Figures, PathIo};

use std::fmt;
use std::time::Duration;

use faults::{Metric, PathStateExpect, Scenario};
use path_manager::settings::{
    Failback, GroupingPolicy, ManagerKind, ManagerSettings, MarginalPathgroups, NoPathRetry,
    Origin, PathChecker,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::events::Event;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: ScenarioInfo,
    pub guest: GuestInfo,
    pub manager: ManagerInfo,
    pub maps: Vec<MapReport>,
    /// Mirror maps (`kind = "mirror"`), which `maps` does not list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<mirror::MirrorMapReport>,
    /// The SCSI layer under SCSI legs (host adapters, error handling, paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scsi: Option<scsi::ScsiReport>,
    /// Every workload, in the scenario's order (report.json: `workload`, the first, and
    /// `workloads`, all of them).
    #[serde(flatten)]
    pub workloads: Workloads,
    /// The run's events; IO errors and mismatches beyond the first
    /// [`bounded::KEPT_PER_KIND`] of each per workload are counted in that workload's
    /// `errors_omitted` instead.
    pub events: Vec<Event>,
    /// Per path of every map: IOs the block layer completed per 100 ms (`/sys/dev/block/.../stat`).
    pub path_io: Vec<PathIo>,
    /// Every `[[critical]]` writer, in the scenario's order (absent when there is none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<critical::CriticalSummary>,
    /// The QA figures computed from the events and series (report.txt's "figures" section).
    #[serde(default)]
    pub figures: Figures,
    /// Why paths failed and errors came ([`causes`]).
    #[serde(default)]
    pub causes: Vec<causes::Cause>,
    pub expectations: Vec<ExpectationResult>,
    pub verdict: Verdict,
    pub timing: Timing,
    /// Set only when the fault timeline lagged (the run then exits 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_lag: Option<TimelineLag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestInfo {
    /// `uml`, `qemu` or `none`.
    pub kind: String,
    pub kernel_release: String,
    /// Guest kernel start to pathrig's init starting (guests only).
    pub boot_to_init_ms: Option<f64>,
    /// Guest kernel start to the scenario's clock zero: modules loaded, devices built.
    pub boot_to_ready_ms: Option<f64>,
    /// Set only when the scratch file system holding the backing files was full at the end of
    /// the workload: writes to the backing files then failed for want of space, not because of
    /// a path (report.txt says so in a line of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_full: Option<ScratchFull>,
}

/// The backing files' file system ran out of space.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScratchFull {
    /// Its mount point (the guest's tmpfs, or the host's temporary directory with `--guest none`).
    pub path: String,
    pub size_bytes: u64,
    pub available_bytes: u64,
}

impl ScratchFull {
    /// Less free space than this counts as full: a backing-file write of one workload block
    /// (up to 1 MiB) may not fit any more.
    pub const BELOW: u64 = 1 << 20;

    /// Looks at the file system holding `dir`: `Some` when it is full.
    pub fn check(dir: &std::path::Path) -> Option<ScratchFull> {
        let stat = nix::sys::statvfs::statvfs(dir).ok()?;
        let block = stat.fragment_size() as u64;
        let size_bytes = stat.blocks() as u64 * block;
        let available_bytes = stat.blocks_available() as u64 * block;
        (size_bytes > 0 && available_bytes < Self::BELOW).then(|| ScratchFull {
            path: dir.display().to_string(),
            size_bytes,
            available_bytes,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagerInfo {
    pub kind: ManagerKind,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapReport {
    pub name: String,
    pub dm_name: String,
    pub device: String,
    pub selector: String,
    pub queue_if_no_path: bool,
    pub groups: Vec<Vec<String>>,
    /// The live table as the kernel printed it (`dmsetup table` form).
    pub table: String,
    /// The status at the end of the run as the kernel printed it (`dmsetup status` form).
    pub final_status: String,
    pub paths: Vec<PathReport>,
    /// The group the kernel uses (or will use next) at the end, 1-based; none if no group is.
    pub final_group: Option<usize>,
    /// Absent without a path manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<ManagerMapReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathReport {
    pub leg: String,
    /// The leg's dm device, `major:minor`, as it appears in the table.
    pub device: String,
    /// 1-based path group.
    pub group: usize,
    pub final_state: FinalPathState,
    pub fail_count: u32,
    /// What the FUSE file server injected on this leg (`backend = "fuse"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse_faults: Option<rig::fuse::FaultCounts>,
    /// The path manager's own (checker's) view at the end; absent without a manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checker: Option<CheckerView>,
}

/// The kernel's view of a path at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalPathState {
    Active,
    Failed,
    /// The path was not in the map's status (the map was gone or unreadable).
    Unknown,
}

impl FinalPathState {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalPathState::Active => "active",
            FinalPathState::Failed => "failed",
            FinalPathState::Unknown => "unknown",
        }
    }
}

/// The path manager's own (checker's) view of a path at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerView {
    Unchecked,
    Up,
    /// Down, with what the checker saw (an errno name, "timed out").
    Down {
        detail: String,
    },
    /// Up, but held back by flap damping.
    HeldBack,
    /// Held by the marginal-path detector (failed twice within
    /// `marginal_path_double_failed_time`) until a check finds it up and its sample starts.
    ToBeSampled,
    /// Being sampled by the marginal-path detector.
    Sampled,
    Marginal,
}

impl fmt::Display for CheckerView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckerView::Unchecked => f.write_str("unchecked"),
            CheckerView::Up => f.write_str("up"),
            CheckerView::Down { detail } => write!(f, "down ({detail})"),
            CheckerView::HeldBack => f.write_str("up, held back"),
            CheckerView::ToBeSampled => f.write_str("held, to be sampled (marginal_path)"),
            CheckerView::Sampled => f.write_str("sampled (marginal_path)"),
            CheckerView::Marginal => f.write_str("marginal"),
        }
    }
}

/// report.json keeps the words report.txt shows (`"down (EIO)"`).
impl Serialize for CheckerView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read back from the words [`CheckerView`]'s `Display` writes.
impl<'de> Deserialize<'de> for CheckerView {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "unchecked" => CheckerView::Unchecked,
            "up" => CheckerView::Up,
            "up, held back" => CheckerView::HeldBack,
            "held, to be sampled (marginal_path)" => CheckerView::ToBeSampled,
            "sampled (marginal_path)" => CheckerView::Sampled,
            "marginal" => CheckerView::Marginal,
            other => match other
                .strip_prefix("down (")
                .and_then(|rest| rest.strip_suffix(')'))
            {
                Some(detail) => CheckerView::Down {
                    detail: detail.to_string(),
                },
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown checker view {other:?}"
                    )))
                }
            },
        })
    }
}

/// The path manager's side of a map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagerMapReport {
    /// Every effective setting and where it came from.
    pub settings: Vec<SettingReport>,
    /// 1-based; the group the manager considers best at the end.
    pub best_group: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingReport {
    pub keyword: String,
    pub value: String,
    pub origin: String,
}

/// The effective settings as multipath.conf keywords with values and origins.
pub fn settings_rows(s: &ManagerSettings) -> Vec<SettingReport> {
    let secs = |d: &Duration| faults::format_duration(*d);
    let row = |keyword: &str, value: String, origin: &Origin| SettingReport {
        keyword: keyword.into(),
        value,
        origin: origin.to_string(),
    };
    let mut rows = vec![
        row(
            "path_checker",
            match s.path_checker.value {
                PathChecker::Directio => "directio".into(),
                PathChecker::Tur => "tur".into(),
                PathChecker::None => "none".into(),
            },
            &s.path_checker.origin,
        ),
        row(
            "polling_interval",
            secs(&s.polling_interval.value),
            &s.polling_interval.origin,
        ),
        row(
            "max_polling_interval",
            secs(&s.max_polling_interval.value),
            &s.max_polling_interval.origin,
        ),
        row(
            "checker_timeout",
            secs(&s.checker_timeout.value),
            &s.checker_timeout.origin,
        ),
        row(
            "path_grouping_policy",
            match s.path_grouping_policy.value {
                GroupingPolicy::Failover => "failover".into(),
                GroupingPolicy::Multibus => "multibus".into(),
                GroupingPolicy::GroupByPrio => "group_by_prio".into(),
            },
            &s.path_grouping_policy.origin,
        ),
        row(
            "failback",
            match s.failback.value {
                Failback::Immediate => "immediate".into(),
                Failback::Manual => "manual".into(),
                Failback::Deferred(d) => secs(&d),
                Failback::Followover => "followover".into(),
            },
            &s.failback.origin,
        ),
        row(
            "no_path_retry",
            match s.no_path_retry.value {
                NoPathRetry::Fail => "fail".into(),
                NoPathRetry::Queue => "queue".into(),
                NoPathRetry::Retries(n) => n.to_string(),
            },
            &s.no_path_retry.origin,
        ),
    ];
    match &s.san_path_err.value {
        Some(d) => rows.extend([
            row(
                "san_path_err_threshold",
                d.threshold.to_string(),
                &s.san_path_err.origin,
            ),
            row(
                "san_path_err_forget_rate",
                d.forget_rate.to_string(),
                &s.san_path_err.origin,
            ),
            row(
                "san_path_err_recovery_time",
                secs(&d.recovery_time),
                &s.san_path_err.origin,
            ),
        ]),
        None => rows.push(row("san_path_err_*", "off".into(), &s.san_path_err.origin)),
    }
    match &s.marginal_path.value {
        Some(m) => rows.extend([
            row(
                "marginal_path_double_failed_time",
                secs(&m.double_failed_time),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_sample_time",
                secs(&m.err_sample_time),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_rate_threshold",
                m.err_rate_threshold.to_string(),
                &s.marginal_path.origin,
            ),
            row(
                "marginal_path_err_recheck_gap_time",
                secs(&m.err_recheck_gap_time),
                &s.marginal_path.origin,
            ),
        ]),
        None => rows.push(row(
            "marginal_path_*",
            "off".into(),
            &s.marginal_path.origin,
        )),
    }
    rows.push(row(
        "marginal_pathgroups",
        match s.marginal_pathgroups.value {
            MarginalPathgroups::Off => "off".into(),
            MarginalPathgroups::On => "on".into(),
        },
        &s.marginal_pathgroups.origin,
    ));
    rows
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyUs {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MismatchReport {
    /// When the block first mismatched.
    pub t_ms: f64,
    /// The workload block (of `block_size` bytes) that mismatched.
    pub block: u64,
    pub block_size: u32,
    /// The block's offset on the map in bytes.
    pub byte_offset: u64,
    /// The same offset in 512-byte sectors (kept for older readers of report.json).
    pub lba: u64,
    /// How many times the block mismatched.
    pub count: u64,
    /// The diagnosis of the first mismatch.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StallReport {
    pub began_ms: f64,
    pub length_ms: f64,
}

/// The run's workloads, at least one, in the scenario's order. report.json has the first as
/// `workload` (as before several workloads could run) and all of them as `workloads`.
#[derive(Debug, Clone)]
pub struct Workloads(pub Vec<WorkloadSummary>);

impl Workloads {
    /// The first workload (the only one of most scenarios): what unkeyed metrics mean.
    pub fn first(&self) -> &WorkloadSummary {
        &self.0[0]
    }

    /// The workload on `map`.
    pub fn of(&self, map: &str) -> Option<&WorkloadSummary> {
        self.0.iter().find(|w| w.map == map)
    }
}

impl std::ops::Deref for Workloads {
    type Target = Vec<WorkloadSummary>;
    fn deref(&self) -> &Vec<WorkloadSummary> {
        &self.0
    }
}

impl std::ops::DerefMut for Workloads {
    fn deref_mut(&mut self) -> &mut Vec<WorkloadSummary> {
        &mut self.0
    }
}

impl Serialize for Workloads {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("workload", &self.0.first())?;
        map.serialize_entry("workloads", &self.0)?;
        map.end()
    }
}

/// Read back from `workloads` (`workload` is its first again), or from `workload` alone.
impl<'de> Deserialize<'de> for Workloads {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Reports from before several workloads could run have only `workload`.
        #[derive(Deserialize)]
        struct Json {
            #[serde(default)]
            workload: Option<WorkloadSummary>,
            #[serde(default)]
            workloads: Vec<WorkloadSummary>,
        }
        let json = Json::deserialize(deserializer)?;
        match (json.workloads.is_empty(), json.workload) {
            (false, _) => Ok(Workloads(json.workloads)),
            (true, Some(only)) => Ok(Workloads(vec![only])),
            (true, None) => Err(serde::de::Error::custom(
                "a report has at least one workload (`workloads`)",
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// The map the workload ran on.
    pub map: String,
    pub device: String,
    /// Who issued the IO: `pathrig`, `fio` or `fio-batched`.
    pub engine: faults::WorkloadEngine,
    pub pattern: String,
    pub read_percent: u8,
    pub block_size: u32,
    pub queue_depth: u32,
    pub duration_ms: u64,
    pub elapsed_ms: f64,
    /// CPU time (user + system) the IO issuer used, where it was measured.
    pub cpu_ms: Option<f64>,
    pub reads: u64,
    pub writes: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub app_errors: u64,
    pub verified_blocks: u64,
    pub mismatches: u64,
    /// One row per distinct block.
    pub mismatch_details: Vec<MismatchReport>,
    /// IO-error and mismatch events left out of `events`, and every IO error by errno.
    pub errors_omitted: ErrorsOmitted,
    pub latency_us: LatencyUs,
    /// Completed IOs per latency bucket (bucket label → count).
    pub latency_buckets: Vec<(String, u64)>,
    pub stalls: Vec<StallReport>,
    pub max_stall_ms: f64,
    /// The longest time with IO outstanding and no completion, stall or not (`None` for fio).
    pub longest_stall_ms: Option<f64>,
    pub first_error_ms: Option<f64>,
    /// Per 100 ms of the run's clock: completions, errors by errno, outstanding IOs, latency.
    pub series: Vec<rig::workload::series::SeriesPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectationResult {
    pub what: String,
    pub held: bool,
    pub actual: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// Building backing files, loops, legs and maps.
    pub setup_ms: f64,
    /// Clock zero to the last workload completion.
    pub run_ms: f64,
    pub teardown_ms: f64,
    /// The latest any fault step began after its planned time (runs with faults only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fault_lag_ms: Option<f64>,
}

/// The fault timeline fell behind: a step began more than [`TimelineLag::TOLERANCE`] after its
/// planned time, or never ran before the workload ended. Such a run tested something other than
/// its scenario, so it fails as a rig failure (exit 3) whatever its expectations say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineLag {
    /// The most late step: its fault's line in the scenario, leg, window (1-based), planned
    /// time, and how late it began (`None`: every step that ran was on time).
    pub worst: Option<LateStep>,
    /// Steps that never ran (the workload ended first).
    pub not_run: usize,
    /// The first step that never ran.
    pub first_not_run: Option<LateStep>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LateStep {
    pub line: usize,
    pub leg: String,
    pub window: u32,
    pub planned_ms: f64,
    /// How late it began (0 for a step that never ran).
    pub late_ms: f64,
}

impl TimelineLag {
    /// The existing suite's worst lag was 432 ms over 372 runs on a 2-core machine at load
    /// average 6–9 (report.json fault times against the planned ones; 16 ms when the machine
    /// was quieter); 1 s is well above that and well below the seconds a starved timeline loses.
    pub const TOLERANCE: std::time::Duration = std::time::Duration::from_millis(1000);

    /// One sentence for report.txt and error.txt.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(w) = &self.worst {
            parts.push(format!(
                "the fault on line {} (leg {}, window {}) began {:.0} ms late (planned at {:.0} ms; \
                 tolerance {} ms)",
                w.line,
                w.leg,
                w.window,
                w.late_ms,
                w.planned_ms,
                Self::TOLERANCE.as_millis()
            ));
        }
        if let Some(f) = &self.first_not_run {
            parts.push(format!(
                "{} step(s) never ran before the workload ended, the first of the fault on line {} \
                 (leg {}, window {}, planned at {:.0} ms)",
                self.not_run, f.line, f.leg, f.window, f.planned_ms
            ));
        }
        format!("the fault timeline lagged: {}", parts.join("; "))
    }
}

/// Coarse latency buckets: wide enough that timing noise does not move a value between them.
pub const LATENCY_BUCKETS_MS: &[(u64, &str)] = &[
    (100, "under 100 ms"),
    (1_000, "100 ms to 1 s"),
    (10_000, "1 s to 10 s"),
    (u64::MAX, "10 s or more"),
];

/// The bucket a duration in milliseconds falls into.
pub fn bucket(ms: f64) -> &'static str {
    LATENCY_BUCKETS_MS
        .iter()
        .find(|(limit, _)| ms < *limit as f64)
        .map(|(_, label)| *label)
        .unwrap_or("10 s or more")
}

impl Report {
    /// The value a `[expect]` metric refers to: of the workload on `map`, or without a map of
    /// the first workload. `kernel_path_failures` counts the path failures of `map`, or of every
    /// map. `None`: `map` has no workload (or, for `kernel_path_failures`, is not a multipath map
    /// of the report).
    pub fn metric(&self, metric: Metric, map: Option<&str>) -> Option<u64> {
        if metric == Metric::KernelPathFailures {
            let maps = self
                .maps
                .iter()
                .filter(|m| map.is_none_or(|name| m.name == name));
            let mut any = false;
            let mut sum = 0u64;
            for m in maps {
                any = true;
                sum += m.paths.iter().map(|p| u64::from(p.fail_count)).sum::<u64>();
            }
            return (any || map.is_none()).then_some(sum);
        }
        let w = match map {
            Some(name) => self.workloads.of(name)?,
            None => self.workloads.first(),
        };
        Some(match metric {
            Metric::AppErrors => w.app_errors,
            Metric::ReadErrors => w.read_errors,
            Metric::WriteErrors => w.write_errors,
            Metric::Mismatches => w.mismatches,
            Metric::Reads => w.reads,
            Metric::Writes => w.writes,
            Metric::VerifiedBlocks => w.verified_blocks,
            Metric::MaxLatencyMs => w.latency_us.max / 1000,
            Metric::P50LatencyMs => w.latency_us.p50 / 1000,
            Metric::P99LatencyMs => w.latency_us.p99 / 1000,
            Metric::Stalls => w.stalls.len() as u64,
            Metric::MaxStallMs => w.max_stall_ms as u64,
            // fio measures no quiet time: nothing to compare.
            Metric::LongestStallMs => w.longest_stall_ms? as u64,
            Metric::KernelPathFailures => unreachable!("handled above"),
        })
    }

    /// Checks the scenario's expectations against this report and sets the verdict.
    pub fn evaluate(&mut self, scenario: &Scenario) {
        self.figures = Figures::compute(self);
        self.causes = causes::find(self);
        let mut results = Vec::new();
        for check in &scenario.expect.checks {
            let map = check.map.map(|m| scenario.map(m).name.as_str());
            let actual = self.metric(check.metric, map);
            results.push(ExpectationResult {
                what: check.display(scenario).to_string(),
                held: actual.is_some_and(|a| check.holds(a)),
                actual: actual.map_or("none".into(), |a| a.to_string()),
            });
        }
        for check in &scenario.expect.figures {
            let actual = match (check.window, check.key_name(scenario)) {
                (Some(window), Some(leg)) => Figures::io_share_within(self, leg, window),
                _ => self.figures.value(check.figure, check.key_name(scenario)),
            };
            results.push(ExpectationResult {
                what: check.display(scenario).to_string(),
                held: check.holds(actual),
                actual: actual.map_or("none".into(), |v| v.to_string()),
            });
        }
        for check in &scenario.expect.critical {
            let actual = critical::check_value(check, scenario, &self.critical);
            results.push(ExpectationResult {
                what: check.display(scenario),
                held: actual.is_some_and(|a| check.cmp.holds(a, check.value)),
                actual: actual.map_or("none".into(), |a| a.to_string()),
            });
        }
        for &(id, expected) in &scenario.expect.final_path_state {
            let leg = &scenario.leg(id).name;
            // A map's paths are reported in the order of its groups.
            let map = scenario.leg(id).map;
            let place = scenario
                .map(map)
                .groups
                .iter()
                .flatten()
                .position(|&l| l == id);
            let actual = place
                .and_then(|i| self.maps.get(map.index())?.paths.get(i))
                .filter(|p| &p.leg == leg)
                .map(|p| p.final_state)
                .unwrap_or(FinalPathState::Unknown);
            let wanted = match expected {
                PathStateExpect::Active => FinalPathState::Active,
                PathStateExpect::Failed => FinalPathState::Failed,
            };
            results.push(ExpectationResult {
                what: format!("final state of path {leg} == {}", wanted.as_str()),
                held: actual == wanted,
                actual: actual.as_str().to_string(),
            });
        }
        self.verdict = if results.iter().all(|r| r.held) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.expectations = results;
    }
}

#[cfg(test)]
mod tests;
