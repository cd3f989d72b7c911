//! The one ordered event log of a run, with typed events.
//!
//! Every part of a run (fault timeline, kernel watcher, workload, rig, path manager) records an
//! [`EventKind`] — what happened, to which map or leg, and why, as data — into one [`EventLog`]
//! with times from one monotonic clock: milliseconds since the scenario's clock zero (the
//! workload start; setup happens before it, at negative times). Sentences are only made when a
//! report is rendered ([`wording`]); nothing is reworded or parsed back.

pub mod mirror;
mod wording;

pub use wording::describe_fault;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faults::FaultKind;
use serde::{Deserialize, Serialize, Serializer};

use path_manager::Action;

/// Who caused or observed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Fault,
    Kernel,
    Manager,
    Workload,
    Rig,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Fault => "fault",
            Source::Kernel => "kernel",
            Source::Manager => "manager",
            Source::Workload => "workload",
            Source::Rig => "rig",
        }
    }
}

/// One event of a run: when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Milliseconds since the scenario's clock zero, with microsecond precision.
    pub t_ms: f64,
    pub kind: EventKind,
}

impl Event {
    pub fn source(&self) -> Source {
        self.kind.source()
    }

    /// Whether the event belongs in report.txt's timeline. Setup and teardown steps, checker
    /// results and workload events (timed by another thread, so their order against the
    /// kernel's is timing noise) stay in the JSON only.
    pub fn in_timeline(&self) -> bool {
        self.kind.in_timeline()
    }

    /// The event in words, with every measured value.
    pub fn what(&self) -> String {
        self.kind.what()
    }

    /// report.txt's wording: like [`Event::what`] without measured values (how long a path was
    /// down), which are timing noise.
    pub fn timeline_text(&self) -> String {
        self.kind.timeline_text()
    }
}

/// report.json's form of an event: the time, the source, the sentence (and report.txt's
/// sentence where it differs), and the kind with its typed fields.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            t_ms: f64,
            source: Source,
            what: String,
            in_timeline: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            timeline_text: Option<String>,
            #[serde(flatten)]
            kind: &'a EventKind,
        }
        let what = self.what();
        let text = self.timeline_text();
        Json {
            t_ms: self.t_ms,
            source: self.source(),
            timeline_text: (text != what).then_some(text),
            what,
            in_timeline: self.in_timeline(),
            kind: &self.kind,
        }
        .serialize(serializer)
    }
}

/// Back from report.json (`pathrig report`): the kind from its typed fields; a manager action's
/// words, which only report.json's `what` and `timeline_text` carry, from those.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Json {
            t_ms: f64,
            what: String,
            #[serde(default)]
            timeline_text: Option<String>,
            #[serde(flatten)]
            kind: EventKind,
        }
        let json = Json::deserialize(deserializer)?;
        let mut kind = json.kind;
        if let EventKind::Manager {
            words,
            stable_words,
            ..
        } = &mut kind
        {
            *stable_words = json.timeline_text.unwrap_or_else(|| json.what.clone());
            *words = json.what;
        }
        Ok(Event {
            t_ms: json.t_ms,
            kind,
        })
    }
}

/// A repeating fault's window: `n` of `of` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub n: u32,
    pub of: u32,
}

/// What a fault step did to a leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum FaultChange {
    /// A fault kind took effect (a table swap, a message, or a FUSE rule); `restore` and
    /// `kernel_fail` are kinds too.
    Applied {
        fault: FaultKind,
        window: Option<Window>,
    },
    /// A dust leg's bad blocks changed by messages, without a table swap.
    DustChanged {
        bad_blocks: Vec<u64>,
        block_size: u32,
    },
    /// The end of a dm fault's window: the healthy table is back.
    WindowEnded {
        #[serde(serialize_with = "serialize_ms", deserialize_with = "deserialize_ms")]
        length: Duration,
        window: Option<Window>,
    },
    /// The end of a FUSE fault's window: its rule left the leg's rules.
    FuseWindowEnded { window: Option<Window> },
    /// A `restore` on a leg without a dm layer: its FUSE faults are gone.
    FuseRestored,
    /// The end of a SCSI fault's window: its rule left the path's rules in the array (or the
    /// port is back online).
    ScsiWindowEnded { window: Option<Window> },
    /// A `restore` on a SCSI leg: the array's rules for its path are gone, its port is online.
    ScsiRestored,
}

/// Why the rig let queued or held IO go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushCause {
    Interrupted,
    WorkloadEnded,
}

/// A device the rig took down at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removed {
    Map,
    Leg,
    Loop,
    FuseMount,
    /// pathrig's SCSI array: its configfs objects (LIO backstores, tcm_loop ports) and handlers.
    ScsiArray,
}

/// A host adapter's `eh_deadline` as the run found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostDeadline {
    /// The scenario leaves it alone.
    KernelDefault,
    /// Set; `actual` is what the kernel reads back (`off` or seconds).
    Set { wanted: String, actual: String },
    /// The host refused it (a tcm_loop host has no host-reset handler, so the kernel refuses
    /// any `eh_deadline` on it).
    Unsupported { wanted: String, detail: String },
}

/// The workload's IO direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoDirection {
    Read,
    Write,
}

/// What a checker said about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckerVerdict {
    Up,
    Down {
        errno: String,
    },
    TimedOut,
    /// A `tur` check: its state (up, ghost, pending, down), a short text of it and the SCSI
    /// reply behind it (none when the SG_IO ioctl itself failed).
    Scsi {
        state: String,
        detail: String,
        attempts: u32,
        reply: Option<rig::checker::tur::ScsiReply>,
    },
}

/// What the real multipathd said, in [`EventKind::Multipathd`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum MultipathdSaid {
    /// One line of its log, read into a typed value; `line` is the line as written (without
    /// the time stamp).
    Log {
        event: rig::multipathd::LogEvent,
        line: String,
    },
    /// `show paths` and `show maps` at the end of the run.
    FinalState {
        paths: Vec<rig::multipathd::client::PathRow>,
        maps: Vec<rig::multipathd::client::MapRow>,
    },
}

impl MultipathdSaid {
    /// Whether report.txt's timeline shows it: decisions and state changes, not every checker
    /// result or table line.
    fn in_timeline(&self) -> bool {
        use rig::multipathd::LogEvent as L;
        match self {
            MultipathdSaid::Log { event, .. } => matches!(
                event,
                L::PathOffline { .. }
                    | L::MarkedFailed { .. }
                    | L::ReinstateFailed { .. }
                    | L::RemainingActivePaths { .. }
                    | L::Marginal { .. }
                    | L::ReinstateDelayed { .. }
                    | L::UnusablePath { .. }
                    | L::IoErrStat { .. }
            ),
            MultipathdSaid::FinalState { .. } => false,
        }
    }
}

/// What happened. Each variant names its subject (map, leg or device) and carries its details
/// as data; its source and whether report.txt's timeline shows it follow from the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    // The rig building and taking down devices (report.json only).
    BackingFile {
        map: String,
        file: String,
        bytes: u64,
    },
    FuseServer {
        map: String,
        mountpoint: String,
        legs: Vec<String>,
    },
    LoopAttached {
        leg: String,
        loop_device: String,
        dev: String,
        /// Direct-IO mode (FUSE legs): IOs reach the backing file concurrently.
        direct_io: bool,
    },
    NoDmLayer {
        leg: String,
        dev: String,
    },
    LegDevice {
        leg: String,
        dm_name: String,
        dev: String,
        over: String,
    },
    MapDevice {
        map: String,
        dm_name: String,
        dev: String,
        table: String,
    },
    TableLive {
        dm_name: String,
        table: String,
    },
    MessageSent {
        dm_name: String,
        message: String,
    },
    FuseRulesCleared {
        leg: String,
    },
    Removed {
        object: Removed,
        name: String,
    },
    // The rig acting on the maps (in the timeline).
    /// Without a path manager the rig reinstates a restored leg's path.
    RigReinstated {
        map: String,
        leg: String,
    },
    HangReleased {
        leg: String,
        cause: FlushCause,
    },
    /// The SCSI array answered the commands a `no_response` rule held.
    HeldCommandsReleased {
        leg: String,
        cause: FlushCause,
    },
    /// A host adapter of the array, as the guest's kernel numbers it (report.json only).
    ScsiHost {
        hba: String,
        /// `hostN`.
        host: u32,
        eh_deadline: HostDeadline,
    },
    /// What the SCSI layer did (the error handler's steps, host and device states, timeouts),
    /// from the kernel's log and sysfs; `leg` for an event of a path's device.
    Scsi {
        hba: String,
        leg: Option<String>,
        scsi: rig::scsi_watch::ScsiEventKind,
        /// The kernel's line, for a log event.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<String>,
    },
    /// What pathrig's SCSI array did on a path (held, aborted, answered late, failed a
    /// command; task management received), report.json only; the array keeps the last 512 per
    /// path.
    ArrayAction {
        leg: String,
        /// The command's opcode (0 for task management).
        opcode: u8,
        cmd_id: u16,
        action: rig::scsi::EventKind,
    },
    /// A SCSI leg's path with its device knobs as the kernel reads them back (report.json only).
    ScsiPath {
        leg: String,
        hba: String,
        node: String,
        dev: String,
        /// `H:C:T:L`.
        hctl: String,
        timeout_s: u32,
        eh_timeout_s: u32,
        queue_depth: u32,
    },
    QueueFlushed {
        map: String,
        cause: FlushCause,
    },
    /// A fault step on a leg.
    Fault {
        leg: String,
        #[serde(flatten)]
        change: FaultChange,
    },
    // The kernel's view, from the map's status after each dm event.
    PathFailed {
        map: String,
        leg: String,
    },
    PathReinstated {
        map: String,
        leg: String,
    },
    /// The fail count grew between two status reads while the path stayed active.
    PathFailedAndReinstated {
        map: String,
        leg: String,
    },
    /// The kernel's current group changed (report.json only: the kernel switches when it maps
    /// the next IO, so when the change is seen is timing).
    GroupSwitched {
        map: String,
        /// 1-based, as the table counts.
        group: u32,
    },
    NoUsablePath {
        map: String,
    },
    UsablePathBack {
        map: String,
    },
    // The path manager.
    /// A checker's answer (report.json only).
    CheckerResult {
        dm_name: String,
        node: String,
        #[serde(flatten)]
        verdict: CheckerVerdict,
        latency_ms: f64,
    },
    /// An action of the path manager with its reason. The manager words its own actions (it
    /// knows its paths' names): `words` with measured values, `stable_words` without.
    Manager {
        map: String,
        /// The path the action is about, if it is about one.
        leg: Option<String>,
        action: Action,
        /// (`what` and `timeline_text` in report.json already.)
        #[serde(skip)]
        words: String,
        #[serde(skip)]
        stable_words: String,
        /// The dm message or reload that carried the action out failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
    /// The real multipathd (`[manager] kind = "multipathd"`): what it said that has no
    /// [`EventKind::Manager`] action of the same meaning (checker results, offline paths,
    /// paths the kernel failed, remaining paths, marginal paths, io_err_stat, map tables), and
    /// its final view of paths and maps.
    Multipathd {
        #[serde(skip_serializing_if = "Option::is_none")]
        map: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        leg: Option<String>,
        said: MultipathdSaid,
    },
    // The workloads (report.json only); `map` is the map whose workload saw it.
    IoError {
        map: String,
        op: IoDirection,
        errno: String,
        block: u64,
    },
    Mismatch {
        map: String,
        block: u64,
        detail: String,
    },
    StallBegan {
        map: String,
        in_flight: u32,
    },
    StallEnded {
        map: String,
        length_ms: f64,
    },
    /// A mirror map's health, resync or monitor action ([`mirror::MirrorEvent`]).
    Mirror(mirror::MirrorEvent),
}

fn serialize_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn deserialize_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(d)?;
    Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
}

impl EventKind {
    pub fn source(&self) -> Source {
        use EventKind::*;
        match self {
            BackingFile { .. }
            | FuseServer { .. }
            | LoopAttached { .. }
            | NoDmLayer { .. }
            | LegDevice { .. }
            | MapDevice { .. }
            | TableLive { .. }
            | MessageSent { .. }
            | FuseRulesCleared { .. }
            | Removed { .. }
            | RigReinstated { .. }
            | HangReleased { .. }
            | HeldCommandsReleased { .. }
            | ScsiHost { .. }
            | ScsiPath { .. }
            | QueueFlushed { .. } => Source::Rig,
            Scsi { .. } => Source::Kernel,
            ArrayAction { .. } => Source::Fault,
            Mirror(m) if m.is_kernel() => Source::Kernel,
            Mirror(_) => Source::Manager,
            Fault { .. } => Source::Fault,
            PathFailed { .. }
            | PathReinstated { .. }
            | PathFailedAndReinstated { .. }
            | GroupSwitched { .. }
            | NoUsablePath { .. }
            | UsablePathBack { .. } => Source::Kernel,
            CheckerResult { .. } | Manager { .. } | Multipathd { .. } => Source::Manager,
            IoError { .. } | Mismatch { .. } | StallBegan { .. } | StallEnded { .. } => {
                Source::Workload
            }
        }
    }

    pub fn in_timeline(&self) -> bool {
        use EventKind::*;
        match self {
            Mirror(m) => m.in_timeline(),
            Multipathd { said, .. } => said.in_timeline(),
            RigReinstated { .. }
            | HangReleased { .. }
            | HeldCommandsReleased { .. }
            | QueueFlushed { .. }
            | Fault { .. }
            | PathFailed { .. }
            | PathReinstated { .. }
            | PathFailedAndReinstated { .. }
            | NoUsablePath { .. }
            | UsablePathBack { .. }
            | Manager { .. } => true,
            // The error handler's course (host and device states, offlining) is behaviour;
            // single commands' timeouts and counters are timing.
            Scsi { scsi, .. } => matches!(
                scsi,
                rig::scsi_watch::ScsiEventKind::HostState { .. }
                    | rig::scsi_watch::ScsiEventKind::DeviceState { .. }
                    | rig::scsi_watch::ScsiEventKind::DeviceOfflined
            ),
            BackingFile { .. }
            | FuseServer { .. }
            | LoopAttached { .. }
            | NoDmLayer { .. }
            | LegDevice { .. }
            | MapDevice { .. }
            | TableLive { .. }
            | MessageSent { .. }
            | FuseRulesCleared { .. }
            | Removed { .. }
            | ScsiHost { .. }
            | ScsiPath { .. }
            | ArrayAction { .. }
            | GroupSwitched { .. }
            | CheckerResult { .. }
            | IoError { .. }
            | Mismatch { .. }
            | StallBegan { .. }
            | StallEnded { .. } => false,
        }
    }
}

/// A clock zero shared by every recorder.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub origin: Instant,
}

impl Clock {
    pub fn since_origin(&self, at: Instant) -> f64 {
        if at >= self.origin {
            at.duration_since(self.origin).as_secs_f64() * 1000.0
        } else {
            -(self.origin.duration_since(at).as_secs_f64() * 1000.0)
        }
    }

    pub fn now_ms(&self) -> f64 {
        self.since_origin(Instant::now())
    }
}

/// Thread-safe, append-only log; [`EventLog::sorted`] gives the final order.
#[derive(Clone)]
pub struct EventLog {
    clock: Clock,
    events: Arc<Mutex<Vec<Event>>>,
}

/// The log of the run in progress, for a guest watchdog that must report without the runner.
static CURRENT: Mutex<Option<EventLog>> = Mutex::new(None);

impl EventLog {
    /// Makes this the log of the run in progress (see [`EventLog::current`]).
    pub fn publish(&self) {
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clone());
    }

    /// The log last published, if any.
    pub fn current() -> Option<EventLog> {
        CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn new(clock: Clock) -> EventLog {
        EventLog {
            clock,
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Records an event that happens now.
    pub fn record(&self, kind: EventKind) {
        self.record_at(self.clock.now_ms(), kind);
    }

    /// Records an event at a time taken earlier (milliseconds since the clock zero).
    pub fn record_at(&self, t_ms: f64, kind: EventKind) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Event { t_ms, kind });
    }

    /// How many events so far are of a kind `which` accepts (without copying the log).
    pub fn count(&self, which: impl Fn(&EventKind) -> bool) -> usize {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| which(&e.kind))
            .count()
    }

    /// All events by time; events with equal times keep the order they were recorded in.
    pub fn sorted(&self) -> Vec<Event> {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_failed(leg: &str) -> EventKind {
        EventKind::PathFailed {
            map: "m".into(),
            leg: leg.into(),
        }
    }

    #[test]
    fn events_come_out_in_time_order_and_stable() {
        let log = EventLog::new(Clock {
            origin: Instant::now(),
        });
        log.record_at(5.0, kernel_failed("second"));
        log.record_at(-3.0, kernel_failed("setup"));
        log.record_at(5.0, kernel_failed("third"));
        log.record_at(1.0, kernel_failed("first"));
        let order: Vec<_> = log
            .sorted()
            .into_iter()
            .map(|e| match e.kind {
                EventKind::PathFailed { leg, .. } => leg,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, ["setup", "first", "second", "third"]);
    }

    #[test]
    fn times_before_the_origin_are_negative() {
        let origin = Instant::now() + Duration::from_millis(50);
        let clock = Clock { origin };
        assert!(clock.now_ms() < 0.0);
        assert!((clock.since_origin(origin + Duration::from_millis(20)) - 20.0).abs() < 0.01);
    }

    #[test]
    fn json_keeps_the_old_keys_and_adds_the_typed_kind() {
        let event = Event {
            t_ms: 12.5,
            kind: kernel_failed("a"),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["t_ms"], 12.5);
        assert_eq!(json["source"], "kernel");
        assert_eq!(json["what"], "m: path a failed");
        assert_eq!(json["in_timeline"], true);
        assert!(json.get("timeline_text").is_none());
        assert_eq!(json["kind"], "path_failed");
        assert_eq!(json["map"], "m");
        assert_eq!(json["leg"], "a");
    }

    #[test]
    fn source_and_timeline_follow_from_the_kind() {
        let detail = EventKind::GroupSwitched {
            map: "m".into(),
            group: 2,
        };
        assert_eq!(detail.source(), Source::Kernel);
        assert!(!detail.in_timeline());
        let stall = EventKind::StallBegan {
            map: "m".into(),
            in_flight: 3,
        };
        assert_eq!(stall.source(), Source::Workload);
        assert!(!stall.in_timeline());
        let released = EventKind::HangReleased {
            leg: "f".into(),
            cause: FlushCause::WorkloadEnded,
        };
        assert_eq!(released.source(), Source::Rig);
        assert!(released.in_timeline());
    }
}
