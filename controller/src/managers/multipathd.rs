//! The real multipathd as a path manager (`[manager] kind = "multipathd"`): it runs in the
//! guest (started by the runner's build, which lets it build the maps, see
//! `runner::multipathd`), and this side turns what it logs into the run's events. Its decisions
//! that mean what the embedded manager's actions mean become [`EventKind::Manager`] with the
//! same [`Action`] (checker failed path → `FailPath`, reinstated → `ReinstatePath`, switch to
//! path group → `SwitchGroup`, Disable queueing → `FailIfNoPath`, queue_if_no_path enabled →
//! `QueueIfNoPath`, recovery mode entered / left → `Note`), each with
//! [`Reason::Multipathd`] holding its line; everything else it says that is not noise becomes
//! [`EventKind::Multipathd`]. At the end its `show paths` / `show maps` are recorded too.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use path_manager::{Action, MapView, PathRef as CorePath, Reason};
use rig::dm::mpath_status::MultipathStatus;
use rig::dm::{DevNum, Dm};
use rig::multipathd::log::{parse_line, LogEvent, PathRef};
use rig::multipathd::{client, Captured, Feed, Source};

use super::PathManager;
use crate::driver::BuiltMapInfo;
use crate::events::{EventKind, EventLog, MultipathdSaid};

/// One path of a map as multipathd names it.
struct Path {
    leg: String,
    dev: DevNum,
    /// The kernel name (`sdb`).
    kernel_name: String,
}

struct Map {
    name: String,
    dm_name: String,
    paths: Vec<Path>,
}

/// The real multipathd, seen through its log.
pub struct Multipathd {
    feed: Feed,
    maps: Vec<Map>,
    /// Set by the first call that brings the log; `finish` records into it.
    log: Option<EventLog>,
    /// The last checker state recorded per path (`map/leg`): only changes are recorded.
    checker_states: HashMap<String, String>,
}

impl Multipathd {
    pub fn new(feed: Feed, maps: &[BuiltMapInfo<'_>]) -> Multipathd {
        let maps = maps
            .iter()
            .map(|m| Map {
                name: m.name.to_string(),
                dm_name: m.dm_name.to_string(),
                paths: m
                    .legs
                    .iter()
                    .map(|(_, leg, dev, node)| Path {
                        leg: leg.to_string(),
                        dev: *dev,
                        kernel_name: kernel_name(*dev, node),
                    })
                    .collect(),
            })
            .collect();
        Multipathd {
            feed,
            maps,
            log: None,
            checker_states: HashMap::new(),
        }
    }

    fn map_index(&self, dm_name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.dm_name == dm_name)
    }

    /// (map, path) of a path as a line names it.
    fn path_index(&self, path: &PathRef) -> Option<(usize, usize)> {
        self.maps.iter().enumerate().find_map(|(m, map)| {
            map.paths
                .iter()
                .position(|p| match path {
                    PathRef::DevNum { major, minor } => p.dev == DevNum::new(*major, *minor),
                    PathRef::Name(n) => &p.kernel_name == n,
                })
                .map(|i| (m, i))
        })
    }

    fn drain(&mut self, log: &EventLog) {
        for line in self.feed.take_lines() {
            if line.source == Source::Multipathd {
                self.record(&line, log);
            }
        }
    }

    fn record(&mut self, captured: &Captured, log: &EventLog) {
        let line = parse_line(&captured.text);
        // The stack counts from the build's start, the log from the workload's.
        let t_ms = log
            .clock()
            .since_origin(self.feed.origin() + captured.time());
        let said = line.message.clone();
        let map_of = |name: &str| self.map_index(name);
        // A decision the embedded manager makes too: the same action.
        let action = match &line.event {
            LogEvent::CheckerFailedPath { path, .. } => {
                self.path_index(path).map(|(map, path)| Action::FailPath {
                    path: CorePath { map, path },
                    reason: Reason::Multipathd { said: said.clone() },
                })
            }
            LogEvent::Reinstated { path } => {
                self.path_index(path)
                    .map(|(map, path)| Action::ReinstatePath {
                        path: CorePath { map, path },
                        reason: Reason::Multipathd { said: said.clone() },
                    })
            }
            LogEvent::SwitchGroup { map, group } => map_of(map).map(|map| Action::SwitchGroup {
                map,
                group: group.saturating_sub(1) as usize,
                reason: Reason::Multipathd { said: said.clone() },
            }),
            LogEvent::QueueingDisabled { map } => map_of(map).map(|map| Action::FailIfNoPath {
                map,
                reason: Reason::Multipathd { said: said.clone() },
            }),
            LogEvent::QueueingEnabled { map } => map_of(map).map(|map| Action::QueueIfNoPath {
                map,
                reason: Reason::Multipathd { said: said.clone() },
            }),
            LogEvent::EnteringRecovery { map, .. } | LogEvent::RecoveredToNormal { map } => {
                map_of(map).map(|map| Action::Note {
                    map,
                    path: None,
                    reason: Reason::Multipathd { said: said.clone() },
                })
            }
            _ => None,
        };
        if let Some(action) = action {
            let map = &self.maps[action.map()];
            let leg = match &action {
                Action::FailPath { path, .. } | Action::ReinstatePath { path, .. } => {
                    Some(map.paths[path.path].leg.clone())
                }
                _ => None,
            };
            let verb = match &action {
                Action::FailPath { .. } => "fail_path",
                Action::ReinstatePath { .. } => "reinstate_path",
                Action::SwitchGroup { .. } => "switch_group",
                Action::FailIfNoPath { .. } => "fail_if_no_path",
                Action::QueueIfNoPath { .. } => "queue_if_no_path",
                _ => "note",
            };
            let words = match &leg {
                Some(leg) => format!("{}: {verb} {leg} (multipathd: {said})", map.name),
                None => format!("{}: {verb} (multipathd: {said})", map.name),
            };
            log.record_at(
                t_ms,
                EventKind::Manager {
                    map: map.name.clone(),
                    leg,
                    action,
                    stable_words: words.clone(),
                    words,
                    failed: None,
                },
            );
            return;
        }
        // The rest that is not noise, under the map and leg it is about where it names one.
        let (map, path) = match &line.event {
            LogEvent::Other => return,
            LogEvent::Checker { map, path, .. } | LogEvent::PathOffline { map, path } => {
                (map_of(map), self.path_index(path))
            }
            LogEvent::RemainingActivePaths { map, .. } | LogEvent::LoadTable { map, .. } => {
                (map_of(map), None)
            }
            LogEvent::CheckerState { path, .. }
            | LogEvent::CheckerNotCalled { path, .. }
            | LogEvent::MarkedFailed { path }
            | LogEvent::ReinstateFailed { path }
            | LogEvent::Marginal { path, .. }
            | LogEvent::ReinstateDelayed { path }
            | LogEvent::IoErrStat { path, .. }
            | LogEvent::UnusablePath { path, .. } => (None, self.path_index(path)),
            // Decisions about a map pathrig did not build: still worth keeping.
            _ => (None, None),
        };
        let map = map.or(path.map(|(m, _)| m));
        // Checker results every polling interval: only a path's changes.
        let state = match &line.event {
            LogEvent::CheckerState { state, .. } if state != "pending" => Some(state.clone()),
            LogEvent::CheckerState { .. } => return,
            LogEvent::Checker { up: Some(up), .. } => Some(if *up { "up" } else { "down" }.into()),
            LogEvent::CheckerNotCalled { state, .. } => Some(state.clone()),
            _ => None,
        };
        let leg = path.map(|(m, p)| self.maps[m].paths[p].leg.clone());
        if let Some(state) = state {
            let key = format!("{map:?}/{leg:?}");
            if self.checker_states.get(&key) == Some(&state) {
                return;
            }
            self.checker_states.insert(key, state);
        }
        log.record_at(
            t_ms,
            EventKind::Multipathd {
                map: map.map(|m| self.maps[m].name.clone()),
                leg,
                said: MultipathdSaid::Log {
                    event: line.event,
                    line: said,
                },
            },
        );
    }
}

/// The kernel name of a block device: its node's name, else sysfs's.
fn kernel_name(dev: DevNum, node: &std::path::Path) -> String {
    std::fs::read_link(format!("/sys/dev/block/{}:{}", dev.major, dev.minor))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .or_else(|| node.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default()
}

impl PathManager for Multipathd {
    fn rig_reinstates(&self) -> bool {
        false
    }

    fn kernel_status(&mut self, _: usize, _: &MultipathStatus, _: &Dm, log: &EventLog) {
        // multipathd watches the maps itself; this is only the first chance to keep the log.
        if self.log.is_none() {
            self.log = Some(log.clone());
        }
        self.drain(log);
    }

    fn poll(&mut self, _: &Dm, log: &EventLog) {
        if self.log.is_none() {
            self.log = Some(log.clone());
        }
        self.drain(log);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        None
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.feed.wake_fd().as_raw_fd())
    }

    fn finish(mut self: Box<Self>, limit: Duration) -> Option<Vec<MapView>> {
        let log = self.log.clone()?;
        self.drain(&log);
        match client::show(limit.max(Duration::from_secs(1))) {
            Ok((paths, maps)) => log.record(EventKind::Multipathd {
                map: None,
                leg: None,
                said: MultipathdSaid::FinalState { paths, maps },
            }),
            Err(err) => eprintln!("pathrig: multipathd's final state: {err}"),
        }
        // pathrig's own view of the maps is the embedded manager's; the final state above is
        // multipathd's.
        None
    }
}

#[cfg(test)]
mod tests {
    //! multipathd's lines (captured from 0.9.4 in the guest) through the manager, into events.

    use super::*;
    use crate::driver::MapTable;
    use crate::events::Clock;
    use rig::dm::multipath::Selector;
    use rig::dm::Sectors;

    fn line(at_ms: u64, text: &str) -> Captured {
        Captured {
            source: Source::Multipathd,
            at: Duration::from_millis(at_ms + 5),
            logged: Some(Duration::from_millis(at_ms)),
            text: text.to_string(),
        }
    }

    fn run(lines: &[Captured]) -> Vec<crate::events::Event> {
        let log = EventLog::new(Clock {
            origin: Instant::now(),
        });
        let (tx, feed) = Feed::by_hand(log.clock().origin).unwrap();
        let scenario = faults::parse(
            std::path::Path::new("t.toml"),
            "name = \"t\"\nworkload = { map = \"m\", duration = \"1s\" }\n\
             [[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\nmap = \"m\"\n\
             [[leg]]\nname = \"b\"\nmap = \"m\"\n",
        )
        .unwrap();
        let (map_id, _) = scenario.map_ids().next().unwrap();
        let legs: Vec<_> = scenario.legs_of(map_id).map(|(id, _)| id).collect();
        let groups = vec![vec![legs[0]], vec![legs[1]]];
        let infos = [BuiltMapInfo {
            id: map_id,
            name: "m",
            dm_name: "pathrig-m",
            // Not on the host: the names come from the nodes.
            legs: vec![
                (legs[0], "a", DevNum::new(65, 4000), "/dev/sdzza".into()),
                (legs[1], "b", DevNum::new(65, 4016), "/dev/sdzzb".into()),
            ],
            groups: &groups,
            table: MapTable {
                sectors: Sectors(16384),
                selector: Selector::RoundRobin,
                queue_if_no_path: false,
                bio_based: false,
            },
        }];
        let mut manager = Multipathd::new(feed, &infos);
        for l in lines {
            tx.send(l.clone());
        }
        manager.drain(&log);
        log.sorted()
    }

    #[test]
    fn decisions_become_the_embedded_managers_actions() {
        let events = run(&[
            line(
                1000,
                "4.473801 | checker failed path 65:4000 in map pathrig-m",
            ),
            line(2000, "5.476844 | 65:4000: reinstated"),
            line(2100, "5.487801 | pathrig-m: switch to path group #1"),
            line(3000, "8.492871 | pathrig-m: Disable queueing"),
            line(
                3100,
                "6.489929 | pathrig-m: Entering recovery mode: max_retries=2",
            ),
        ]);
        let actions: Vec<(&Action, Option<&str>, f64)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Manager { action, leg, .. } => Some((action, leg.as_deref(), e.t_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(actions.len(), 5, "{events:#?}");
        assert!(matches!(
            actions[0],
            (Action::FailPath { path: CorePath { map: 0, path: 0 }, reason: Reason::Multipathd { said } }, Some("a"), t)
                if said == "checker failed path 65:4000 in map pathrig-m" && t == 1000.0
        ));
        assert!(matches!(
            actions[1],
            (Action::ReinstatePath { path: CorePath { map: 0, path: 0 }, .. }, Some("a"), t) if t == 2000.0
        ));
        // multipathd counts groups from 1, the actions from 0.
        assert!(matches!(
            actions[2],
            (
                Action::SwitchGroup {
                    map: 0,
                    group: 0,
                    ..
                },
                None,
                _
            )
        ));
        assert!(matches!(
            actions[3],
            (Action::FailIfNoPath { map: 0, .. }, None, _)
        ));
        assert!(matches!(
            actions[4],
            (
                Action::Note {
                    map: 0,
                    path: None,
                    ..
                },
                None,
                _
            )
        ));
    }

    #[test]
    fn the_rest_is_kept_as_multipathd_events_and_checker_noise_only_on_change() {
        let events = run(&[
            line(100, "3.394945 | sdzzb: tur state = pending"),
            line(200, "3.420353 | sdzzb: tur state = up"),
            line(1200, "4.420353 | sdzzb: tur state = up"),
            line(1300, "4.471617 | sdzza: state down, checker not called"),
            line(1301, "4.473654 | pathrig-m: sdzza - path offline"),
            line(1302, "4.474491 | pathrig-m: remaining active paths: 1"),
            line(1400, "2.766533 | sdzza: mark as failed"),
            line(
                1500,
                "1.593794 | loading /lib/multipath/libchecktur.so checker",
            ),
        ]);
        let said: Vec<(Option<&str>, Option<&str>, &MultipathdSaid)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Multipathd { map, leg, said } => {
                    Some((map.as_deref(), leg.as_deref(), said))
                }
                _ => None,
            })
            .collect();
        // pending and the repeated `up` are dropped, the loading line is no event.
        assert_eq!(said.len(), 5, "{events:#?}");
        let kinds: Vec<&LogEvent> = said
            .iter()
            .map(|(_, _, s)| match s {
                MultipathdSaid::Log { event, .. } => event,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(kinds[0], LogEvent::CheckerState { state, .. } if state == "up"));
        assert_eq!(said[0].0, Some("m"));
        assert_eq!(said[0].1, Some("b"));
        assert!(matches!(kinds[1], LogEvent::CheckerNotCalled { .. }));
        assert_eq!(said[1].1, Some("a"));
        assert!(matches!(kinds[2], LogEvent::PathOffline { .. }));
        assert!(matches!(
            kinds[3],
            LogEvent::RemainingActivePaths { active: 1, .. }
        ));
        assert!(matches!(kinds[4], LogEvent::MarkedFailed { .. }));
        // The timeline shows the offline path and the kernel's failure, not the checker results.
        let shown: Vec<bool> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Multipathd { .. }))
            .map(|e| e.kind.in_timeline())
            .collect();
        assert_eq!(shown, [false, false, true, true, true]);
    }
}
