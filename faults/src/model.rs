//! The validated scenario model handed to the controller.
//!
//! Everything here is plain data that has already passed validation: names
//! resolve, ranges hold, defaults are filled in. Also owns the derived views
//! (the fault [`Scenario::timeline`], look-ups by id and by name) and the semantics of an
//! expectation ([`Check::holds`]). Maps, legs and faults refer to each other by the typed ids
//! of [`crate::ids`]; names are kept for display. The whole tree (de)serialises: it is the plan
//! the guest receives.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{FaultId, LegId, MapId};
pub use crate::kinds::{
    block_list, BioDir, ByteRange, CorruptBioByte, Errno, FaultKind, IoOp, LatencyDist, Layer,
    Probability, ERRNOS,
};
use crate::manager::ManagerSpec;
use crate::scsi::{HbaSpec, LegScsi};

/// A complete, validated fault-injection scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `[a-z0-9][a-z0-9-]{0,31}`.
    pub name: String,
    pub description: Option<String>,
    /// Seed for the workload's random choices; default 1.
    pub seed: u64,
    pub guest: GuestSpec,
    /// At least one.
    pub maps: Vec<MapSpec>,
    /// At least one per map.
    pub legs: Vec<LegSpec>,
    /// The host adapters of SCSI legs (`[[hba]]`), in file order; empty without SCSI legs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hbas: Vec<HbaSpec>,
    /// In file order; may be empty.
    pub faults: Vec<FaultSpec>,
    /// At least one, in file order, at most one per map (`[workload]`, or one `[[workload]]`
    /// per map). They all start at clock zero and run for the same
    /// [`duration`](WorkloadSpec::duration).
    pub workloads: Vec<WorkloadSpec>,
    pub expect: Expectations,
    /// The path manager and every map's settings (`[manager]`; by default
    /// the embedded manager with built-in settings).
    pub manager: ManagerSpec,
    /// The mirror monitor's settings (`[mirror]`; defaults when absent).
    pub mirror: mirror_monitor::MirrorSection,
    /// Time-critical IO writers (`[[critical]]`), in file order; may be empty.
    #[serde(default)]
    pub critical: Vec<crate::critical::CriticalSpec>,
}

/// The VM the scenario runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSpec {
    /// 128..=4096, default 512.
    pub memory_mib: u32,
    /// Whole-run limit; default workload duration + 60 s; longer than the workloads.
    pub timeout: Duration,
    /// `scratch_mib`: the scratch tmpfs's size in MiB when it is to be smaller than the maps'
    /// backing files (16..=4096, below what the maps need): a backing store that runs out of
    /// space, so writes past it fail with ENOSPC. `None`: room for every backing file.
    #[serde(default)]
    pub scratch_mib: Option<u32>,
}

/// Room on the guest's scratch tmpfs besides the backing files (mount points, small files).
pub const SCRATCH_SLACK: u64 = 8 << 20;

/// The size of the guest's scratch tmpfs for these maps: every backing file at its full size,
/// plus [`SCRATCH_SLACK`].
pub(crate) fn scratch_bytes(maps: &[MapSpec]) -> u64 {
    maps.iter().map(|m| m.size_bytes * m.copies()).sum::<u64>() + SCRATCH_SLACK
}

/// One dm-multipath map (one multipath device) built from legs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSpec {
    /// Same charset as the scenario name, at most 16 characters.
    pub name: String,
    /// Multiple of 4096, 1 MiB ..= 1 GiB; default 64 MiB.
    pub size_bytes: u64,
    pub selector: Selector,
    /// With the embedded path manager: from `no_path_retry` (false for
    /// "fail", true for "queue" or N retries). Otherwise as written, default false.
    pub queue_if_no_path: bool,
    /// Path groups in priority order, as legs. Every leg of the map is
    /// in exactly one group. With the embedded path manager: made by
    /// `path_grouping_policy` from the legs' `prio`; otherwise as written,
    /// default one group with every leg.
    pub groups: Vec<Vec<LegId>>,
    /// Multipath (default) or mirror.
    pub kind: crate::mirror::MapKind,
}

impl MapSpec {
    /// How many backing files of the map's size it takes: one per leg for a mirror.
    pub fn copies(&self) -> u64 {
        match self.kind {
            crate::mirror::MapKind::Multipath => 1,
            crate::mirror::MapKind::Mirror(m) => u64::from(m.legs),
        }
    }

    pub fn is_mirror(&self) -> bool {
        matches!(self.kind, crate::mirror::MapKind::Mirror(_))
    }
}

/// dm-multipath path selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Selector {
    #[default]
    RoundRobin,
    QueueLength,
    ServiceTime,
}

impl Selector {
    /// The name used in scenario files and in the dm table ("round-robin").
    pub fn name(self) -> &'static str {
        match self {
            Selector::RoundRobin => "round-robin",
            Selector::QueueLength => "queue-length",
            Selector::ServiceTime => "service-time",
        }
    }
}

/// One path (leg) of a map: a block device the rig can break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegSpec {
    pub name: String,
    /// The map this leg belongs to.
    pub map: MapId,
    /// Path priority, 0..=1000, default 1; higher is preferred
    /// (orders the groups of `failover` and `group_by_prio`).
    pub prio: u32,
    /// What the leg's loop device is backed by; default [`Backend::Loop`].
    pub backend: Backend,
    /// Whether the leg has a dm device of its own between its loop device and
    /// the map (default true). dm fault kinds need it; without it the map's
    /// path is the loop device itself. Always false for a SCSI leg (its path is the `sdX`).
    pub dm_layer: bool,
    /// For `backend = "scsi"`: its host adapter and device knobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scsi: Option<LegScsi>,
}

/// `[[leg]] backend`: where a leg's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A loop device over the map's backing file (tmpfs).
    #[default]
    Loop,
    /// A loop device over a file served by pathrig's FUSE fault server,
    /// which FUSE fault kinds act on.
    Fuse,
    /// An `sdX` served by pathrig's SCSI array (a TCMU backstore over the map's backing file,
    /// exported through tcm_loop), which SCSI fault kinds act on.
    Scsi,
}

impl Backend {
    /// The name in scenario files ("loop", "fuse").
    pub fn name(self) -> &'static str {
        match self {
            Backend::Loop => "loop",
            Backend::Fuse => "fuse",
            Backend::Scsi => "scsi",
        }
    }
}

/// One `[[fault]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// When the fault is applied, from workload start.
    pub at: Duration,
    /// TOML key `for`: if set, the leg is restored at `at + duration`.
    /// Without it the fault lasts until the next fault on the same leg.
    pub duration: Option<Duration>,
    /// `every` and `times`: the window repeats (only with `for`).
    pub repeat: Option<Repeat>,
    pub leg: LegId,
    pub kind: FaultKind,
    /// 1-based line of this fault's table in the scenario file.
    pub line: usize,
}

/// A fault window that repeats: `times` windows, starting `every` apart
/// (`every` is longer than the window, so they never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    pub every: Duration,
    /// At least 1.
    pub times: u32,
}

impl FaultSpec {
    /// How many times the fault is applied: `times`, or 1.
    pub fn times(&self) -> u32 {
        self.repeat.map_or(1, |r| r.times)
    }

    /// When the fault's window number `repetition` (0-based) starts.
    pub fn start_of(&self, repetition: u32) -> Duration {
        self.at + self.repeat.map_or(Duration::ZERO, |r| r.every * repetition)
    }
}

/// The IO the guest runs against one map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub map: MapId,
    /// 1 s ..= 1 h; the same for every workload of a scenario.
    pub duration: Duration,
    /// 0..=100, default 70.
    pub read_percent: u8,
    /// Power of two, 512 ..= 1 MiB, divides the map size; default 4096.
    pub block_size: u32,
    /// 1..=256, default 8.
    pub queue_depth: u32,
    /// Rate limit; `None` means as fast as possible.
    pub rate_iops: Option<u32>,
    pub pattern: Pattern,
    /// Check data read back against what was written; default true.
    pub verify: bool,
    /// No completion for this long with IO outstanding counts as a stall;
    /// at least 100 ms, default 1 s.
    pub stall_threshold: Duration,
    /// Who issues the IO; default pathrig's own engine.
    pub engine: WorkloadEngine,
}

/// Who issues the workload's IO. fio is a yardstick for the engine's speed: it verifies
/// nothing and detects no stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadEngine {
    #[default]
    Pathrig,
    /// fio with its default submission and completion.
    Fio,
    /// fio submitting and reaping half the queue at a time.
    FioBatched,
}

/// Offset pattern of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    #[default]
    Random,
    Sequential,
}

/// The `[expect]` table: what must hold at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Expectations {
    /// In file order.
    pub checks: Vec<Check>,
    /// The QA figures' checks (`detection_ms.a = "< 2000"`), in file order.
    pub figures: Vec<crate::figures::FigureCheck>,
    /// `[expect.final_path_state]`, in file order: leg and its state.
    pub final_path_state: Vec<(LegId, PathStateExpect)>,
    /// The `critical_*` checks, in file order.
    #[serde(default)]
    pub critical: Vec<crate::critical::CriticalCheck>,
}

/// One expectation: `metric[.map] cmp value`, e.g. `max_latency_ms < 500` or
/// `max_latency_ms.m2 < 500`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub metric: Metric,
    /// The map whose workload (or, for `kernel_path_failures`, whose paths) the check is
    /// about; `None`: the first workload (and, for `kernel_path_failures`, every map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapId>,
    pub cmp: Cmp,
    pub value: u64,
}

impl Check {
    /// Whether the measured value satisfies this check.
    pub fn holds(&self, actual: u64) -> bool {
        self.cmp.holds(actual, self.value)
    }

    /// The check as written, with the map's name: `max_latency_ms.m2 < 500`.
    pub fn display<'a>(&'a self, scenario: &'a Scenario) -> impl fmt::Display + 'a {
        DisplayCheck {
            check: self,
            map: self.map.map(|m| scenario.map(m).name.as_str()),
        }
    }
}

/// Without a map; a keyed check shows its map's name only through [`Check::display`].
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.cmp, self.value)
    }
}

struct DisplayCheck<'a> {
    check: &'a Check,
    map: Option<&'a str>,
}

impl fmt::Display for DisplayCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.check;
        match self.map {
            Some(map) => write!(f, "{}.{map} {} {}", c.metric, c.cmp, c.value),
            None => write!(f, "{} {} {}", c.metric, c.cmp, c.value),
        }
    }
}

/// A comparison operator of a [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Cmp {
    pub const ALL: [Cmp; 6] = [Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge];

    /// `actual <op> expected`.
    pub fn holds(&self, actual: u64, expected: u64) -> bool {
        match self {
            Cmp::Eq => actual == expected,
            Cmp::Ne => actual != expected,
            Cmp::Lt => actual < expected,
            Cmp::Le => actual <= expected,
            Cmp::Gt => actual > expected,
            Cmp::Ge => actual >= expected,
        }
    }

    /// "==", "!=", "<", "<=", ">", ">=".
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Something measured during a run that an expectation can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    AppErrors,
    ReadErrors,
    WriteErrors,
    Mismatches,
    Reads,
    Writes,
    VerifiedBlocks,
    MaxLatencyMs,
    P50LatencyMs,
    P99LatencyMs,
    Stalls,
    MaxStallMs,
    /// The longest time with IO outstanding and no completion, whether or not it reached the
    /// stall threshold.
    LongestStallMs,
    KernelPathFailures,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::AppErrors,
        Metric::ReadErrors,
        Metric::WriteErrors,
        Metric::Mismatches,
        Metric::Reads,
        Metric::Writes,
        Metric::VerifiedBlocks,
        Metric::MaxLatencyMs,
        Metric::P50LatencyMs,
        Metric::P99LatencyMs,
        Metric::Stalls,
        Metric::MaxStallMs,
        Metric::LongestStallMs,
        Metric::KernelPathFailures,
    ];

    /// The key used in `[expect]` ("app_errors").
    pub fn name(self) -> &'static str {
        match self {
            Metric::AppErrors => "app_errors",
            Metric::ReadErrors => "read_errors",
            Metric::WriteErrors => "write_errors",
            Metric::Mismatches => "mismatches",
            Metric::Reads => "reads",
            Metric::Writes => "writes",
            Metric::VerifiedBlocks => "verified_blocks",
            Metric::MaxLatencyMs => "max_latency_ms",
            Metric::P50LatencyMs => "p50_latency_ms",
            Metric::P99LatencyMs => "p99_latency_ms",
            Metric::Stalls => "stalls",
            Metric::MaxStallMs => "max_stall_ms",
            Metric::LongestStallMs => "longest_stall_ms",
            Metric::KernelPathFailures => "kernel_path_failures",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Expected state of a leg's path at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathStateExpect {
    Active,
    Failed,
}

impl PathStateExpect {
    pub fn name(self) -> &'static str {
        match self {
            PathStateExpect::Active => "active",
            PathStateExpect::Failed => "failed",
        }
    }
}

/// One thing the controller does to a leg at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: Duration,
    pub leg: LegId,
    pub action: StepAction,
    /// The fault this step comes from.
    pub fault: FaultId,
    /// Which window of a repeating fault (`every` / `times`) this step belongs
    /// to, from 0; always 0 for a fault that does not repeat.
    pub repetition: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// Load the fault's table for the leg.
    Apply(FaultKind),
    /// Automatic end of a fault's `for` window: back to the healthy table.
    Restore,
}

impl Scenario {
    /// The size the guest's scratch tmpfs gets: room for every map's backing file written in
    /// full, and a little more. Validation made sure the guest's memory holds it.
    pub fn scratch_bytes(&self) -> u64 {
        match self.guest.scratch_mib {
            Some(mib) => u64::from(mib) * (1 << 20),
            None => scratch_bytes(&self.maps),
        }
    }

    /// Every fault as timed steps: an `Apply` at `at` and, for a fault with
    /// `for`, a `Restore` at `at + for`; a fault with `every` and `times` gives
    /// that pair `times` times, `every` apart. Sorted by time; at the same
    /// instant a `Restore` comes before an `Apply`, otherwise file order is kept.
    pub fn timeline(&self) -> Vec<Step> {
        let mut steps = Vec::with_capacity(self.faults.len() * 2);
        for (fault_index, fault) in self.faults.iter().enumerate() {
            let id = FaultId::new(fault_index);
            for repetition in 0..fault.times() {
                let start = fault.start_of(repetition);
                steps.push(Step {
                    at: start,
                    leg: fault.leg,
                    action: StepAction::Apply(fault.kind.clone()),
                    fault: id,
                    repetition,
                });
                if let Some(window) = fault.duration {
                    steps.push(Step {
                        at: start + window,
                        leg: fault.leg,
                        action: StepAction::Restore,
                        fault: id,
                        repetition,
                    });
                }
            }
        }
        steps.sort_by_key(|s| {
            let rank = match s.action {
                StepAction::Restore => 0,
                StepAction::Apply(_) => 1,
            };
            (s.at, rank, s.fault, s.repetition)
        });
        steps
    }

    /// How long the workloads run (all of them for the same time).
    pub fn run_length(&self) -> Duration {
        self.workloads[0].duration
    }

    /// The workload on `map`, if it has one.
    pub fn workload_of(&self, map: MapId) -> Option<&WorkloadSpec> {
        self.workloads.iter().find(|w| w.map == map)
    }

    /// The map `id` names.
    pub fn map(&self, id: MapId) -> &MapSpec {
        &self.maps[id.index()]
    }

    /// The leg `id` names.
    pub fn leg(&self, id: LegId) -> &LegSpec {
        &self.legs[id.index()]
    }

    /// The fault `id` names.
    pub fn fault(&self, id: FaultId) -> &FaultSpec {
        &self.faults[id.index()]
    }

    /// The path manager's settings for `map` (`None` with `[manager] kind = "none"`).
    pub fn settings(&self, map: MapId) -> Option<&crate::manager::ManagerSettings> {
        // In map order, one per map, when a path manager runs.
        self.manager.maps.get(map.index()).map(|(_, s)| s)
    }

    /// Every map with its id, in declaration order.
    pub fn map_ids(&self) -> impl Iterator<Item = (MapId, &MapSpec)> + '_ {
        self.maps
            .iter()
            .enumerate()
            .map(|(i, m)| (MapId::new(i), m))
    }

    /// Every leg with its id, in declaration order.
    pub fn leg_ids(&self) -> impl Iterator<Item = (LegId, &LegSpec)> + '_ {
        self.legs
            .iter()
            .enumerate()
            .map(|(i, l)| (LegId::new(i), l))
    }

    /// The legs of `map` with their ids, in declaration order.
    pub fn legs_of(&self, map: MapId) -> impl Iterator<Item = (LegId, &LegSpec)> + '_ {
        self.leg_ids().filter(move |(_, l)| l.map == map)
    }

    /// The map called `name`, if any (for input from outside the plan, e.g. a command line).
    pub fn map_id(&self, name: &str) -> Option<MapId> {
        self.map_ids()
            .find(|(_, m)| m.name == name)
            .map(|(id, _)| id)
    }

    /// The leg called `name`, if any (for input from outside the plan).
    pub fn leg_id(&self, name: &str) -> Option<LegId> {
        self.leg_ids()
            .find(|(_, l)| l.name == name)
            .map(|(id, _)| id)
    }

    /// The groups of `map` as leg names (for display).
    pub fn group_names(&self, map: MapId) -> Vec<Vec<&str>> {
        let groups = &self.map(map).groups;
        let name = |&l: &LegId| self.leg(l).name.as_str();
        groups
            .iter()
            .map(|g| g.iter().map(name).collect())
            .collect()
    }

    /// Whether every id in the plan indexes one of its maps, legs or faults (a plan read back
    /// from a file is checked with this before use).
    pub fn ids_in_range(&self) -> bool {
        let leg = |l: &LegId| l.index() < self.legs.len();
        self.legs.iter().all(|l| l.map.index() < self.maps.len())
            && self.maps.iter().all(|m| m.groups.iter().flatten().all(leg))
            && self.faults.iter().all(|f| leg(&f.leg))
            && !self.workloads.is_empty()
            && self
                .workloads
                .iter()
                .all(|w| w.map.index() < self.maps.len())
            && self
                .expect
                .checks
                .iter()
                .all(|c| c.map.is_none_or(|m| m.index() < self.maps.len()))
            && self.expect.final_path_state.iter().all(|(l, _)| leg(l))
            && self
                .critical
                .iter()
                .all(|c| c.map.index() < self.maps.len())
            && self.expect.critical.iter().all(|c| match c.key {
                Some(crate::critical::CriticalTarget::Writer(w)) => w < self.critical.len(),
                Some(crate::critical::CriticalTarget::Map(m)) => m.index() < self.maps.len(),
                None => true,
            })
            && self.expect.figures.iter().all(|c| match c.key {
                Some(crate::figures::FigureTarget::Leg(l)) => leg(&l),
                Some(crate::figures::FigureTarget::Map(m)) => m.index() < self.maps.len(),
                None => true,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_holds_for_each_operator() {
        let cases = [
            (Cmp::Eq, [(5, 5, true), (4, 5, false), (6, 5, false)]),
            (Cmp::Ne, [(5, 5, false), (4, 5, true), (6, 5, true)]),
            (Cmp::Lt, [(5, 5, false), (4, 5, true), (6, 5, false)]),
            (Cmp::Le, [(5, 5, true), (4, 5, true), (6, 5, false)]),
            (Cmp::Gt, [(5, 5, false), (4, 5, false), (6, 5, true)]),
            (Cmp::Ge, [(5, 5, true), (4, 5, false), (6, 5, true)]),
        ];
        for (cmp, rows) in cases {
            for (actual, expected, want) in rows {
                let check = Check {
                    metric: Metric::Reads,
                    map: None,
                    cmp,
                    value: expected,
                };
                assert_eq!(check.holds(actual), want, "{actual} {cmp} {expected}");
                assert_eq!(cmp.holds(actual, expected), want);
            }
        }
    }

    #[test]
    fn check_displays_like_the_toml() {
        let c = Check {
            metric: Metric::MaxLatencyMs,
            map: None,
            cmp: Cmp::Lt,
            value: 500,
        };
        assert_eq!(c.to_string(), "max_latency_ms < 500");
        let c = Check {
            metric: Metric::AppErrors,
            map: None,
            cmp: Cmp::Eq,
            value: 0,
        };
        assert_eq!(c.to_string(), "app_errors == 0");
    }

    #[test]
    fn metric_names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(Metric::from_name("latency"), None);
    }
}
