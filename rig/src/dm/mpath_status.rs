//! The multipath target's status line (`dmsetup status` form) as typed values: its `FromStr`
//! is the one parser of map status in pathrig, its `Display` prints it back the kernel's way.
//! [`super::Dm::multipath_status`] reads and parses it.
//!
//! Format (kernel `multipath_status`, STATUSTYPE_INFO):
//! `2 <queue_io> <pg_init_count> <#hw_handler_args=0> <#groups> <current group>` then per group
//! `<A|E|D> <#selector status args> [args] <#paths> <#per-path info args>` and per path
//! `<maj:min> <A|F> <fail_count> [per-path info args]`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::target::{DevNum, TableParseError, Words};

/// What the kernel says about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KernelPathState {
    Active,
    Failed,
}

impl KernelPathState {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelPathState::Active => "active",
            KernelPathState::Failed => "failed",
        }
    }
}

/// What the kernel says about one priority group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GroupState {
    /// The group IO goes to now.
    Active,
    /// Usable, not in use.
    Enabled,
    /// Bypassed (disabled) until no other group is usable.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStatus {
    pub dev: DevNum,
    pub state: KernelPathState,
    pub fail_count: u32,
    /// What the group's path selector says about the path (service-time: in-flight size and
    /// relative throughput; round-robin: nothing).
    pub selector_info: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub state: GroupState,
    /// What the group's path selector says about the group.
    pub selector_status: Vec<String>,
    pub paths: Vec<PathStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultipathStatus {
    /// IO is being queued while a path group initialises.
    pub queue_io: bool,
    pub pg_init_count: u32,
    /// What the hardware handler says (nothing without one).
    pub hw_handler_status: Vec<String>,
    /// 1-based number of the group in use (or to be used next); 0 when there is none.
    pub current_group: u32,
    pub groups: Vec<GroupStatus>,
}

impl MultipathStatus {
    /// Every path in table order.
    pub fn paths(&self) -> impl Iterator<Item = &PathStatus> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }

    pub fn path(&self, dev: DevNum) -> Option<&PathStatus> {
        self.paths().find(|p| p.dev == dev)
    }

    pub fn active_paths(&self) -> usize {
        self.paths()
            .filter(|p| p.state == KernelPathState::Active)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse multipath status {line:?}: {what}")]
pub struct StatusParseError {
    pub line: String,
    pub what: String,
}

impl From<TableParseError> for StatusParseError {
    fn from(e: TableParseError) -> StatusParseError {
        StatusParseError {
            line: e.line,
            what: e.what,
        }
    }
}

impl GroupState {
    fn letter(self) -> &'static str {
        match self {
            GroupState::Active => "A",
            GroupState::Enabled => "E",
            GroupState::Disabled => "D",
        }
    }
}

impl KernelPathState {
    fn letter(self) -> &'static str {
        match self {
            KernelPathState::Active => "A",
            KernelPathState::Failed => "F",
        }
    }
}

impl fmt::Display for MultipathStatus {
    /// The parameters part of the status line (what follows `start length multipath`), as the
    /// kernel prints it less its trailing space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = vec![
            "2".into(),
            u32::from(self.queue_io).to_string(),
            self.pg_init_count.to_string(),
            self.hw_handler_status.len().to_string(),
        ];
        words.extend(self.hw_handler_status.iter().cloned());
        words.push(self.groups.len().to_string());
        words.push(self.current_group.to_string());
        for group in &self.groups {
            words.push(group.state.letter().into());
            words.push(group.selector_status.len().to_string());
            words.extend(group.selector_status.iter().cloned());
            words.push(group.paths.len().to_string());
            let info = group.paths.first().map_or(0, |p| p.selector_info.len());
            words.push(info.to_string());
            for path in &group.paths {
                words.push(path.dev.to_string());
                words.push(path.state.letter().into());
                words.push(path.fail_count.to_string());
                words.extend(path.selector_info.iter().cloned());
            }
        }
        f.write_str(&words.join(" "))
    }
}

impl FromStr for MultipathStatus {
    type Err = StatusParseError;

    /// Parses the parameters part of a multipath status line.
    fn from_str(params: &str) -> Result<MultipathStatus, StatusParseError> {
        let mut w = Words::new("multipath status", params);
        let feature_count = w.number::<u32>("the feature count")?;
        if feature_count != 2 {
            return Err(w
                .fail(format!("expected 2 status features, found {feature_count}"))
                .into());
        }
        let queue_io = w.number::<u32>("queue_io")? != 0;
        let pg_init_count = w.number("pg_init_count")?;
        let handler_args = w.number("the hardware handler argument count")?;
        let hw_handler_status = w.words(handler_args, "hardware handler arguments")?;
        let group_count = w.number::<usize>("the group count")?;
        let current_group = w.number("the current group")?;
        let mut groups = Vec::with_capacity(group_count);
        for _ in 0..group_count {
            let state = match w.word("a group state")? {
                "A" => GroupState::Active,
                "E" => GroupState::Enabled,
                "D" => GroupState::Disabled,
                other => return Err(w.fail(format!("unknown group state {other:?}")).into()),
            };
            let selector_args = w.number("the selector status argument count")?;
            let selector_status = w.words(selector_args, "selector status arguments")?;
            let path_count = w.number::<usize>("the path count")?;
            let path_info_args = w.number("the per-path argument count")?;
            let mut paths = Vec::with_capacity(path_count);
            for _ in 0..path_count {
                let dev = w.dev("a path device")?;
                let state = match w.word("a path state")? {
                    "A" => KernelPathState::Active,
                    "F" => KernelPathState::Failed,
                    other => return Err(w.fail(format!("unknown path state {other:?}")).into()),
                };
                let fail_count = w.number("a fail count")?;
                let selector_info = w.words(path_info_args, "per-path selector arguments")?;
                paths.push(PathStatus {
                    dev,
                    state,
                    fail_count,
                    selector_info,
                });
            }
            groups.push(GroupStatus {
                state,
                selector_status,
                paths,
            });
        }
        w.end()?;
        Ok(MultipathStatus {
            queue_io,
            pg_init_count,
            hw_handler_status,
            current_group,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_round_robin_with_a_failed_path() {
        let status = "2 0 0 0 1 1 A 0 2 0 254:0 A 0 254:1 F 3 "
            .parse::<MultipathStatus>()
            .unwrap();
        assert_eq!(status.current_group, 1);
        assert_eq!(status.groups.len(), 1);
        assert_eq!(status.groups[0].state, GroupState::Active);
        let b = status.path(DevNum::new(254, 1)).unwrap();
        assert_eq!((b.state, b.fail_count), (KernelPathState::Failed, 3));
        assert_eq!(status.active_paths(), 1);
    }

    #[test]
    fn service_time_groups_carry_per_path_arguments() {
        // service-time prints two info words per path (in-flight size, relative throughput).
        let status =
            "2 1 0 0 2 2 E 0 1 2 7:0 A 0 0 1 A 0 1 2 7:1 A 1 4096 1".parse::<MultipathStatus>();
        let status = status.unwrap();
        assert_eq!(
            status.to_string(),
            "2 1 0 0 2 2 E 0 1 2 7:0 A 0 0 1 A 0 1 2 7:1 A 1 4096 1"
        );
        assert!(status.queue_io);
        assert_eq!(status.groups[0].state, GroupState::Enabled);
        assert_eq!(status.groups[1].paths[0].fail_count, 1);
        assert_eq!(status.paths().count(), 2);
    }

    #[test]
    fn truncated_and_malformed_lines_are_errors() {
        assert!("2 0 0 0 1 1 A 0 2 0 254:0 A 0"
            .parse::<MultipathStatus>()
            .is_err());
        assert!("2 0 0 0 1 1 X 0 1 0 254:0 A 0"
            .parse::<MultipathStatus>()
            .is_err());
        assert!("2 0 0 0 1 1 A 0 1 0 sda A 0"
            .parse::<MultipathStatus>()
            .is_err());
        assert!("3 0 0 0 0 0".parse::<MultipathStatus>().is_err());
        assert!("2 0 0 0 1 1 A 0 1 0 254:0 A 0 extra"
            .parse::<MultipathStatus>()
            .is_err());
    }
}
