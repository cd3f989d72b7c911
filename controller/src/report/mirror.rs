//! The report of a mirror map: its legs' health over time, resync figures, redundancy time
//! lost and the monitor's actions with their reasons. report.json carries every figure;
//! report.txt shows only what is behaviour (health sequence, actions, final state), with
//! times left to the JSON.

use mirror_monitor::{Action, Health, MirrorSettings};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorMapReport {
    pub name: String,
    pub dm_name: String,
    pub device: String,
    pub region_size_bytes: u64,
    pub settings: MirrorSettings,
    pub legs: Vec<MirrorLegReport>,
    /// Regions in sync / total at the end.
    pub final_in_sync: u64,
    pub total_regions: u64,
    pub final_table: String,
    pub final_status: String,
    /// Regions copied by resyncs during the run (in_sync increases summed).
    pub resynced_regions: u64,
    /// Time any leg was out of the table, not alive, or the mirror not in sync, from clock
    /// zero to the end of the run.
    pub redundancy_lost_ms: f64,
    /// Whether every leg was in the table, alive and in sync at the end.
    pub redundant_at_end: bool,
    pub actions: Vec<MirrorActionReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorLegReport {
    pub leg: String,
    pub device: String,
    /// Health over time: from `t_ms` on, the character (`None`: not in the table).
    pub health: Vec<HealthSpan>,
    pub final_health: Option<Health>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthSpan {
    pub t_ms: f64,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorActionReport {
    pub t_ms: f64,
    pub leg: Option<String>,
    pub action: Action,
    pub words: String,
    /// report.txt's wording (no measured times).
    #[serde(skip)]
    pub stable_words: String,
    pub failed: Option<String>,
}

/// report.txt's mirror section (no times).
pub fn text(maps: &[MirrorMapReport]) -> String {
    let mut out = String::new();
    for m in maps {
        out.push_str(&format!(
            "mirror {} ({}, region {} KiB)\n",
            m.name,
            m.dm_name,
            m.region_size_bytes / 1024
        ));
        for leg in &m.legs {
            let seq: Vec<String> = leg
                .health
                .iter()
                .map(|h| {
                    h.health
                        .map_or("-".to_string(), |h| h.as_char().to_string())
                })
                .collect();
            out.push_str(&format!("  leg {}: health {}\n", leg.leg, seq.join(" ")));
        }
        let decisive: Vec<&MirrorActionReport> = m
            .actions
            .iter()
            .filter(|a| {
                !matches!(
                    a.action,
                    Action::ProbeLeg { .. } | Action::ScanSlice { .. } | Action::Note { .. }
                )
            })
            .collect();
        for a in decisive {
            out.push_str(&format!(
                "  action: {}{}\n",
                a.stable_words,
                a.failed
                    .as_ref()
                    .map(|f| format!(" (failed: {f})"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "  at the end: {} leg(s) in the table, {}\n",
            m.legs.iter().filter(|l| l.final_health.is_some()).count(),
            if m.redundant_at_end {
                "redundant"
            } else {
                "not redundant"
            }
        ));
    }
    out
}
