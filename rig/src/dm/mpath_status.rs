//! Parsing of the multipath target's status line (`dmsetup status` form) into typed values.
//!
//! Format (kernel `multipath_status`, STATUSTYPE_INFO):
//! `2 <queue_io> <pg_init_count> <#hw_handler_args=0> <#groups> <current group>` then per group
//! `<A|E|D> <#selector status args> [args] <#paths> <#per-path info args>` and per path
//! `<maj:min> <A|F> <fail_count> [per-path info args]`.

use serde::Serialize;

use super::target::DevNum;

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub state: GroupState,
    pub paths: Vec<PathStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultipathStatus {
    /// IO is being queued while a path group initialises.
    pub queue_io: bool,
    pub pg_init_count: u32,
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

struct Words<'a> {
    line: &'a str,
    iter: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Words<'a> {
    fn fail(&self, what: impl Into<String>) -> StatusParseError {
        StatusParseError {
            line: self.line.to_string(),
            what: what.into(),
        }
    }

    fn word(&mut self, what: &str) -> Result<&'a str, StatusParseError> {
        self.iter
            .next()
            .ok_or_else(|| self.fail(format!("line ends before {what}")))
    }

    fn number(&mut self, what: &str) -> Result<u32, StatusParseError> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.fail(format!("{what} is {word:?}, not a number")))
    }

    fn skip(&mut self, count: u32, what: &str) -> Result<(), StatusParseError> {
        for _ in 0..count {
            self.word(what)?;
        }
        Ok(())
    }
}

/// Parses the parameters part of a multipath status line (what follows `start length multipath`).
pub fn parse_multipath_status(params: &str) -> Result<MultipathStatus, StatusParseError> {
    let mut words = Words {
        line: params,
        iter: params.split_ascii_whitespace(),
    };
    let feature_count = words.number("the feature count")?;
    if feature_count != 2 {
        return Err(words.fail(format!("expected 2 status features, found {feature_count}")));
    }
    let queue_io = words.number("queue_io")? != 0;
    let pg_init_count = words.number("pg_init_count")?;
    let handler_args = words.number("the hardware handler argument count")?;
    words.skip(handler_args, "hardware handler arguments")?;
    let group_count = words.number("the group count")?;
    let current_group = words.number("the current group")?;
    let mut groups = Vec::with_capacity(group_count as usize);
    for _ in 0..group_count {
        let state = match words.word("a group state")? {
            "A" => GroupState::Active,
            "E" => GroupState::Enabled,
            "D" => GroupState::Disabled,
            other => return Err(words.fail(format!("unknown group state {other:?}"))),
        };
        let selector_args = words.number("the selector status argument count")?;
        words.skip(selector_args, "selector status arguments")?;
        let path_count = words.number("the path count")?;
        let path_info_args = words.number("the per-path argument count")?;
        let mut paths = Vec::with_capacity(path_count as usize);
        for _ in 0..path_count {
            let dev_word = words.word("a path device")?;
            let dev = DevNum::parse(dev_word).ok_or_else(|| {
                words.fail(format!("path device {dev_word:?} is not major:minor"))
            })?;
            let state = match words.word("a path state")? {
                "A" => KernelPathState::Active,
                "F" => KernelPathState::Failed,
                other => return Err(words.fail(format!("unknown path state {other:?}"))),
            };
            let fail_count = words.number("a fail count")?;
            words.skip(path_info_args, "per-path selector arguments")?;
            paths.push(PathStatus {
                dev,
                state,
                fail_count,
            });
        }
        groups.push(GroupStatus { state, paths });
    }
    if let Some(extra) = words.iter.next() {
        return Err(words.fail(format!("unexpected trailing word {extra:?}")));
    }
    Ok(MultipathStatus {
        queue_io,
        pg_init_count,
        current_group,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_round_robin_with_a_failed_path() {
        let status = parse_multipath_status("2 0 0 0 1 1 A 0 2 0 254:0 A 0 254:1 F 3 ").unwrap();
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
            parse_multipath_status("2 1 0 0 2 2 E 0 1 2 7:0 A 0 0 1 A 0 1 2 7:1 A 1 4096 1")
                .unwrap();
        assert!(status.queue_io);
        assert_eq!(status.groups[0].state, GroupState::Enabled);
        assert_eq!(status.groups[1].paths[0].fail_count, 1);
        assert_eq!(status.paths().count(), 2);
    }

    #[test]
    fn truncated_and_malformed_lines_are_errors() {
        assert!(parse_multipath_status("2 0 0 0 1 1 A 0 2 0 254:0 A 0").is_err());
        assert!(parse_multipath_status("2 0 0 0 1 1 X 0 1 0 254:0 A 0").is_err());
        assert!(parse_multipath_status("2 0 0 0 1 1 A 0 1 0 sda A 0").is_err());
        assert!(parse_multipath_status("3 0 0 0 0 0").is_err());
        assert!(parse_multipath_status("2 0 0 0 1 1 A 0 1 0 254:0 A 0 extra").is_err());
    }
}
