//! The report of the SCSI layer under SCSI legs: each host adapter with its `eh_deadline` and
//! its error-handling episodes (from the host leaving `running` until it is back or a device of
//! it is offlined: while one lasts, the host dispatches no IO to any of its devices), and each
//! path with its knobs as the kernel took them, its device state at the end and what the array
//! did on it. report.json carries every figure; report.txt shows what is behaviour (episode
//! counts and how they ended, final states), with lengths in coarse buckets.

use serde::Serialize;

use crate::events::HostDeadline;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ScsiReport {
    pub hosts: Vec<HostReport>,
    pub paths: Vec<ScsiPathReport>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HostReport {
    pub hba: String,
    /// `hostN`.
    pub host: u32,
    pub eh_deadline: HostDeadline,
    pub episodes: Vec<EhEpisodeReport>,
    /// The episodes' lengths summed (an open one counts to the end of the run).
    pub eh_total_ms: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EhEpisodeReport {
    pub start_ms: f64,
    /// `None`: not over when the run ended.
    pub end_ms: Option<f64>,
    pub length_ms: Option<f64>,
    /// The state the host entered (`recovery`, ...).
    pub entered: String,
    pub ended_by: EpisodeEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum EpisodeEnd {
    /// The host went back to `running`.
    Running,
    /// The error handler gave up and offlined this path's device.
    DeviceOfflined { leg: String },
    /// Still in error handling when the run ended.
    Open,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ScsiPathReport {
    pub leg: String,
    pub hba: String,
    pub node: String,
    pub hctl: String,
    pub timeout_s: u32,
    pub eh_timeout_s: u32,
    pub queue_depth: u32,
    /// The device's `state` at the end (`running`, `offline`, ...).
    pub final_state: String,
    /// Commands the kernel timed out on the path (`iotmo_cnt` over the run).
    pub command_timeouts: u64,
    /// What the array did on the path.
    pub array: rig::scsi::PathCounts,
}

/// report.txt's SCSI section.
pub fn text(scsi: &ScsiReport) -> String {
    let mut out = String::from("SCSI (host adapters and paths; times in report.json)\n");
    for h in &scsi.hosts {
        let deadline = match &h.eh_deadline {
            HostDeadline::KernelDefault => "eh_deadline as the kernel has it".to_string(),
            HostDeadline::Set { actual, .. } => format!("eh_deadline {actual}"),
            HostDeadline::Unsupported { wanted, .. } => {
                format!("eh_deadline {wanted} refused by the host (tcm_loop has no host reset)")
            }
        };
        out.push_str(&format!("  hba {}: {deadline}\n", h.hba));
        if h.episodes.is_empty() {
            out.push_str("    error handling: none\n");
        }
        for (i, e) in h.episodes.iter().enumerate() {
            let end = match &e.ended_by {
                EpisodeEnd::Running => "the host was running again".to_string(),
                EpisodeEnd::DeviceOfflined { leg } => format!("path {leg}'s device was offlined"),
                EpisodeEnd::Open => "still going at the end of the run".to_string(),
            };
            // Its length is timing (report.json); how it ended is behaviour.
            out.push_str(&format!(
                "    error handling {}: host in {}, no IO dispatched on it; ended when {end}\n",
                i + 1,
                e.entered
            ));
        }
    }
    for p in &scsi.paths {
        out.push_str(&format!(
            "  path {} (via {}): timeout {} s, eh_timeout {} s; device {} at the end; command timeouts: {}\n",
            p.leg,
            p.hba,
            p.timeout_s,
            p.eh_timeout_s,
            p.final_state,
            if p.command_timeouts == 0 { "none" } else { "some" },
        ));
    }
    out
}
