//! Typed device-mapper targets and tables.
//!
//! Every table pathrig loads is built from these values and rendered to the kernel's text form in
//! exactly one place ([`Target::params`]), so no format strings for dm tables live anywhere else.

use std::fmt;

use serde::Serialize;

/// A block device number as the kernel prints it in tables and status lines (`major:minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub fn new(major: u32, minor: u32) -> Self {
        DevNum { major, minor }
    }

    /// Parses `"253:4"`.
    pub fn parse(text: &str) -> Option<DevNum> {
        let (major, minor) = text.split_once(':')?;
        Some(DevNum::new(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Path selector of a multipath priority group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Selector {
    RoundRobin,
    QueueLength,
    ServiceTime,
}

impl Selector {
    /// The kernel's name of the selector (and of its module, with a `dm-` prefix).
    pub fn kernel_name(self) -> &'static str {
        match self {
            Selector::RoundRobin => "round-robin",
            Selector::QueueLength => "queue-length",
            Selector::ServiceTime => "service-time",
        }
    }

    /// Per-path table arguments the selector expects after each path device.
    fn path_args(self) -> &'static [&'static str] {
        match self {
            // repeat_count
            Selector::RoundRobin => &["1"],
            // repeat_count
            Selector::QueueLength => &["1"],
            // repeat_count relative_throughput
            Selector::ServiceTime => &["1", "1"],
        }
    }
}

/// One priority group of a multipath table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathGroup {
    pub selector: Selector,
    pub paths: Vec<DevNum>,
}

/// The constructor arguments of a `multipath` target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Multipath {
    pub queue_if_no_path: bool,
    /// `queue_mode bio`: needed when the paths are bio-based dm devices (linear, flakey, delay).
    pub bio_based: bool,
    pub groups: Vec<PathGroup>,
}

/// Optional behaviours of dm-flakey during its down interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FlakeyFeature {
    /// Silently drop writes (they complete successfully) instead of failing all IO.
    DropWrites,
    /// Fail writes with an error, let reads through.
    ErrorWrites,
}

/// A device-mapper target with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Linear {
        dev: DevNum,
        offset: u64,
    },
    /// Every IO fails with EIO.
    Error,
    /// Delays reads and writes by `ms` milliseconds each.
    Delay {
        dev: DevNum,
        offset: u64,
        ms: u32,
    },
    /// Passes IO for `up_s` seconds, then misbehaves for `down_s` seconds, repeating.
    Flakey {
        dev: DevNum,
        offset: u64,
        up_s: u32,
        down_s: u32,
        features: Vec<FlakeyFeature>,
    },
    Multipath(Multipath),
}

impl Target {
    /// The kernel's target type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::Linear { .. } => "linear",
            Target::Error => "error",
            Target::Delay { .. } => "delay",
            Target::Flakey { .. } => "flakey",
            Target::Multipath(_) => "multipath",
        }
    }

    /// The target's constructor parameters, as the kernel expects them in a table line.
    pub fn params(&self) -> String {
        match self {
            Target::Linear { dev, offset } => format!("{dev} {offset}"),
            Target::Error => String::new(),
            Target::Delay { dev, offset, ms } => format!("{dev} {offset} {ms}"),
            Target::Flakey {
                dev,
                offset,
                up_s,
                down_s,
                features,
            } => {
                let mut words = vec![
                    dev.to_string(),
                    offset.to_string(),
                    up_s.to_string(),
                    down_s.to_string(),
                ];
                if !features.is_empty() {
                    words.push(features.len().to_string());
                    words.extend(features.iter().map(|f| match f {
                        FlakeyFeature::DropWrites => "drop_writes".to_string(),
                        FlakeyFeature::ErrorWrites => "error_writes".to_string(),
                    }));
                }
                words.join(" ")
            }
            Target::Multipath(mp) => mp.params(),
        }
    }

    /// The device numbers this target stacks on.
    pub fn dependencies(&self) -> Vec<DevNum> {
        match self {
            Target::Linear { dev, .. } | Target::Delay { dev, .. } | Target::Flakey { dev, .. } => {
                vec![*dev]
            }
            Target::Error => vec![],
            Target::Multipath(mp) => mp
                .groups
                .iter()
                .flat_map(|g| g.paths.iter().copied())
                .collect(),
        }
    }
}

impl Multipath {
    fn params(&self) -> String {
        let mut features = Vec::new();
        if self.queue_if_no_path {
            features.push("queue_if_no_path");
        }
        if self.bio_based {
            features.extend(["queue_mode", "bio"]);
        }
        let mut words: Vec<String> = vec![features.len().to_string()];
        words.extend(features.iter().map(|f| f.to_string()));
        // No hardware handler; start with the first group.
        words.extend([
            "0".to_string(),
            self.groups.len().to_string(),
            "1".to_string(),
        ]);
        for group in &self.groups {
            words.push(group.selector.kernel_name().to_string());
            words.push("0".to_string()); // selector arguments
            let path_args = group.selector.path_args();
            words.push(group.paths.len().to_string());
            words.push(path_args.len().to_string());
            for path in &group.paths {
                words.push(path.to_string());
                words.extend(path_args.iter().map(|a| a.to_string()));
            }
        }
        words.join(" ")
    }
}

/// One line of a dm table: a target covering `length` sectors from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableLine {
    pub start: u64,
    pub length: u64,
    pub target: Target,
}

/// A whole dm table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table(pub Vec<TableLine>);

impl Table {
    /// A table with one target covering `sectors` sectors.
    pub fn single(sectors: u64, target: Target) -> Table {
        Table(vec![TableLine {
            start: 0,
            length: sectors,
            target,
        }])
    }

    /// The form the `devicemapper` crate's `table_load` takes.
    pub fn to_ioctl_lines(&self) -> Vec<(u64, u64, String, String)> {
        self.0
            .iter()
            .map(|line| {
                (
                    line.start,
                    line.length,
                    line.target.type_name().to_string(),
                    line.target.params(),
                )
            })
            .collect()
    }

    /// The table in `dmsetup table` form, one line per target.
    pub fn render(&self) -> String {
        self.to_ioctl_lines()
            .iter()
            .map(|(start, len, kind, params)| {
                if params.is_empty() {
                    format!("{start} {len} {kind}")
                } else {
                    format!("{start} {len} {kind} {params}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipath_table_over_dm_legs_uses_bio_mode() {
        let target = Target::Multipath(Multipath {
            queue_if_no_path: true,
            bio_based: true,
            groups: vec![PathGroup {
                selector: Selector::RoundRobin,
                paths: vec![DevNum::new(254, 0), DevNum::new(254, 1)],
            }],
        });
        assert_eq!(
            Table::single(131072, target).render(),
            "0 131072 multipath 3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 2 1 254:0 1 254:1 1"
        );
    }

    #[test]
    fn multipath_with_two_groups_and_service_time() {
        let mp = Multipath {
            queue_if_no_path: false,
            bio_based: false,
            groups: vec![
                PathGroup {
                    selector: Selector::ServiceTime,
                    paths: vec![DevNum::new(7, 0)],
                },
                PathGroup {
                    selector: Selector::QueueLength,
                    paths: vec![DevNum::new(7, 1)],
                },
            ],
        };
        assert_eq!(
            Target::Multipath(mp).params(),
            "0 0 2 1 service-time 0 1 2 7:0 1 1 queue-length 0 1 1 7:1 1"
        );
    }

    #[test]
    fn leg_targets_render_like_dmsetup() {
        let dev = DevNum::new(7, 2);
        assert_eq!(Target::Linear { dev, offset: 0 }.params(), "7:2 0");
        assert_eq!(Target::Error.params(), "");
        assert_eq!(Table::single(8, Target::Error).render(), "0 8 error");
        assert_eq!(
            Target::Delay {
                dev,
                offset: 0,
                ms: 200
            }
            .params(),
            "7:2 0 200"
        );
        let flakey = Target::Flakey {
            dev,
            offset: 0,
            up_s: 2,
            down_s: 1,
            features: vec![FlakeyFeature::DropWrites],
        };
        assert_eq!(flakey.params(), "7:2 0 2 1 1 drop_writes");
        assert_eq!(flakey.dependencies(), vec![dev]);
    }

    #[test]
    fn devnum_round_trips() {
        assert_eq!(DevNum::parse("253:17"), Some(DevNum::new(253, 17)));
        assert_eq!(DevNum::parse("253"), None);
        assert_eq!(DevNum::new(8, 16).to_string(), "8:16");
    }
}
