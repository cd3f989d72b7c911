//! The multipath target's table (`dmsetup table` form) as a typed value: features, hardware
//! handler, the group to start with, and priority groups with their path selector and paths.
//! [`MultipathTable`]'s `Display` is the only place its text is made, its `FromStr` reads what
//! the kernel prints back (kernel 6.1 `multipath_status`, STATUSTYPE_TABLE).
//!
//! Format: `<#feature words> [features] <#handler words> [handler name and args] <#groups>
//! <first group>` then per group `<selector> <#selector args> [args] <#paths> <#path args>` and
//! per path `<maj:min> [path args]`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::target::{DevNum, TableParseError, Words};

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

    fn from_kernel_name(name: &str) -> Option<Selector> {
        [
            Selector::RoundRobin,
            Selector::QueueLength,
            Selector::ServiceTime,
        ]
        .into_iter()
        .find(|s| s.kernel_name() == name)
    }

    /// Per-path table arguments pathrig gives each path in a group with this selector.
    pub fn default_path_args(self) -> Vec<u32> {
        match self {
            // repeat_count
            Selector::RoundRobin | Selector::QueueLength => vec![1],
            // repeat_count relative_throughput
            Selector::ServiceTime => vec![1, 1],
        }
    }
}

/// How the map queues IO: `queue_mode` (request-based unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QueueMode {
    /// `bio`: needed when the paths are bio-based dm devices (linear, flakey, delay).
    Bio,
    Rq,
    Mq,
}

impl QueueMode {
    fn word(self) -> &'static str {
        match self {
            QueueMode::Bio => "bio",
            QueueMode::Rq => "rq",
            QueueMode::Mq => "mq",
        }
    }
}

/// One multipath feature (with its argument, if it takes one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Feature {
    QueueIfNoPath,
    /// Keep a SCSI device handler that is attached already (the kernel reports it always).
    RetainAttachedHwHandler,
    QueueMode(QueueMode),
    PgInitRetries(u32),
    PgInitDelayMsecs(u32),
}

impl Feature {
    fn push_words(&self, words: &mut Vec<String>) {
        match self {
            Feature::QueueIfNoPath => words.push("queue_if_no_path".into()),
            Feature::RetainAttachedHwHandler => words.push("retain_attached_hw_handler".into()),
            Feature::QueueMode(mode) => words.extend(["queue_mode".into(), mode.word().into()]),
            Feature::PgInitRetries(n) => words.extend(["pg_init_retries".into(), n.to_string()]),
            Feature::PgInitDelayMsecs(n) => {
                words.extend(["pg_init_delay_msecs".into(), n.to_string()])
            }
        }
    }
}

/// A hardware handler (`alua`, `emc`, …) with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HwHandler {
    pub name: String,
    pub args: Vec<String>,
}

/// One path of a group: its device and the selector's per-path arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultipathPath {
    pub dev: DevNum,
    pub args: Vec<u32>,
}

/// One priority group. All its paths have the same number of arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathGroup {
    pub selector: Selector,
    pub selector_args: Vec<String>,
    pub paths: Vec<MultipathPath>,
}

impl PathGroup {
    /// A group of `devs` under `selector`, each path with the selector's default arguments.
    pub fn new(selector: Selector, devs: impl IntoIterator<Item = DevNum>) -> PathGroup {
        PathGroup {
            selector,
            selector_args: Vec::new(),
            paths: devs
                .into_iter()
                .map(|dev| MultipathPath {
                    dev,
                    args: selector.default_path_args(),
                })
                .collect(),
        }
    }
}

/// The constructor arguments of a `multipath` target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultipathTable {
    pub features: Vec<Feature>,
    pub hw_handler: Option<HwHandler>,
    /// 1-based number of the group to use first (the kernel prints the next group here).
    pub first_group: u32,
    pub groups: Vec<PathGroup>,
}

impl MultipathTable {
    /// The table pathrig loads for a map: `queue_if_no_path` if asked, `queue_mode bio` over
    /// bio-based legs, no hardware handler, group 1 first, one `selector` group per device list.
    pub fn new(
        queue_if_no_path: bool,
        bio_based: bool,
        selector: Selector,
        groups: impl IntoIterator<Item = Vec<DevNum>>,
    ) -> MultipathTable {
        let mut features = Vec::new();
        if queue_if_no_path {
            features.push(Feature::QueueIfNoPath);
        }
        if bio_based {
            features.push(Feature::QueueMode(QueueMode::Bio));
        }
        MultipathTable {
            features,
            hw_handler: None,
            first_group: 1,
            groups: groups
                .into_iter()
                .map(|devs| PathGroup::new(selector, devs))
                .collect(),
        }
    }

    /// Every path device in table order.
    pub fn devices(&self) -> impl Iterator<Item = DevNum> + '_ {
        self.groups
            .iter()
            .flat_map(|g| g.paths.iter().map(|p| p.dev))
    }

    pub fn queue_if_no_path(&self) -> bool {
        self.features.contains(&Feature::QueueIfNoPath)
    }
}

impl fmt::Display for MultipathTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut feature_words = Vec::new();
        for feature in &self.features {
            feature.push_words(&mut feature_words);
        }
        let mut words = vec![feature_words.len().to_string()];
        words.extend(feature_words);
        match &self.hw_handler {
            None => words.push("0".into()),
            Some(h) => {
                words.push((1 + h.args.len()).to_string());
                words.push(h.name.clone());
                words.extend(h.args.iter().cloned());
            }
        }
        words.push(self.groups.len().to_string());
        words.push(self.first_group.to_string());
        for group in &self.groups {
            words.push(group.selector.kernel_name().into());
            words.push(group.selector_args.len().to_string());
            words.extend(group.selector_args.iter().cloned());
            words.push(group.paths.len().to_string());
            let arg_count = group.paths.first().map_or(0, |p| p.args.len());
            words.push(arg_count.to_string());
            for path in &group.paths {
                words.push(path.dev.to_string());
                words.extend(path.args.iter().map(u32::to_string));
            }
        }
        f.write_str(&words.join(" "))
    }
}

impl FromStr for MultipathTable {
    type Err = TableParseError;

    fn from_str(params: &str) -> Result<MultipathTable, TableParseError> {
        let mut w = Words::new("multipath", params);
        let feature_words = w.number::<usize>("the feature word count")?;
        let mut features = Vec::new();
        let mut left = feature_words;
        while left > 0 {
            let word = w.word("a feature")?;
            let (feature, used) = match word {
                "queue_if_no_path" => (Feature::QueueIfNoPath, 1),
                "retain_attached_hw_handler" => (Feature::RetainAttachedHwHandler, 1),
                "queue_mode" => {
                    let mode = match w.word("the queue mode")? {
                        "bio" => QueueMode::Bio,
                        "rq" => QueueMode::Rq,
                        "mq" => QueueMode::Mq,
                        other => return Err(w.fail(format!("unknown queue mode {other:?}"))),
                    };
                    (Feature::QueueMode(mode), 2)
                }
                "pg_init_retries" => (Feature::PgInitRetries(w.number("pg_init_retries")?), 2),
                "pg_init_delay_msecs" => (
                    Feature::PgInitDelayMsecs(w.number("pg_init_delay_msecs")?),
                    2,
                ),
                other => return Err(w.fail(format!("unknown feature {other:?}"))),
            };
            if used > left {
                return Err(w.fail("a feature's argument is past the feature word count"));
            }
            left -= used;
            features.push(feature);
        }
        let handler_words = w.number::<usize>("the hardware handler word count")?;
        let hw_handler = match handler_words {
            0 => None,
            n => Some(HwHandler {
                name: w.word("the hardware handler")?.to_string(),
                args: w.words(n - 1, "hardware handler arguments")?,
            }),
        };
        let group_count = w.number::<usize>("the group count")?;
        let first_group = w.number("the first group")?;
        let mut groups = Vec::with_capacity(group_count);
        for _ in 0..group_count {
            let name = w.word("a path selector")?;
            let selector = Selector::from_kernel_name(name)
                .ok_or_else(|| w.fail(format!("unknown path selector {name:?}")))?;
            let selector_arg_count = w.number("the selector argument count")?;
            let selector_args = w.words(selector_arg_count, "selector arguments")?;
            let path_count = w.number::<usize>("the path count")?;
            let path_arg_count = w.number::<usize>("the per-path argument count")?;
            let mut paths = Vec::with_capacity(path_count);
            for _ in 0..path_count {
                let dev = w.dev("a path device")?;
                let args = (0..path_arg_count)
                    .map(|_| w.number("a path argument"))
                    .collect::<Result<_, _>>()?;
                paths.push(MultipathPath { dev, args });
            }
            groups.push(PathGroup {
                selector,
                selector_args,
                paths,
            });
        }
        w.end()?;
        Ok(MultipathTable {
            features,
            hw_handler,
            first_group,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_table_over_dm_legs_uses_bio_mode() {
        let table = MultipathTable::new(
            true,
            true,
            Selector::RoundRobin,
            [vec![DevNum::new(254, 0), DevNum::new(254, 1)]],
        );
        let text = "3 queue_if_no_path queue_mode bio 0 1 1 round-robin 0 2 1 254:0 1 254:1 1";
        assert_eq!(table.to_string(), text);
        assert_eq!(text.parse::<MultipathTable>(), Ok(table));
    }

    #[test]
    fn two_groups_with_service_time_and_queue_length() {
        let mp = MultipathTable {
            features: vec![],
            hw_handler: None,
            first_group: 1,
            groups: vec![
                PathGroup::new(Selector::ServiceTime, [DevNum::new(7, 0)]),
                PathGroup::new(Selector::QueueLength, [DevNum::new(7, 1)]),
            ],
        };
        let text = "0 0 2 1 service-time 0 1 2 7:0 1 1 queue-length 0 1 1 7:1 1";
        assert_eq!(mp.to_string(), text);
        assert_eq!(text.parse::<MultipathTable>(), Ok(mp));
    }

    #[test]
    fn every_field_round_trips() {
        let mp = MultipathTable {
            features: vec![
                Feature::QueueIfNoPath,
                Feature::RetainAttachedHwHandler,
                Feature::PgInitRetries(3),
                Feature::PgInitDelayMsecs(2000),
                Feature::QueueMode(QueueMode::Mq),
            ],
            hw_handler: Some(HwHandler {
                name: "alua".into(),
                args: vec!["1".into()],
            }),
            first_group: 2,
            groups: vec![
                PathGroup {
                    selector: Selector::RoundRobin,
                    selector_args: vec!["x".into()],
                    paths: vec![MultipathPath {
                        dev: DevNum::new(8, 0),
                        args: vec![100],
                    }],
                },
                PathGroup::new(
                    Selector::ServiceTime,
                    [DevNum::new(8, 16), DevNum::new(8, 32)],
                ),
            ],
        };
        let text = mp.to_string();
        assert_eq!(
            text,
            "8 queue_if_no_path retain_attached_hw_handler pg_init_retries 3 \
             pg_init_delay_msecs 2000 queue_mode mq 2 alua 1 2 2 round-robin 1 x 1 1 8:0 100 \
             service-time 0 2 2 8:16 1 1 8:32 1 1"
        );
        assert_eq!(text.parse::<MultipathTable>(), Ok(mp));
    }

    #[test]
    fn malformed_tables_are_errors() {
        for bad in [
            "",
            "1 queue_mode bio 0 0 1",
            "1 bogus 0 0 1",
            "0 0 1 1 round-robin 0 1 1 254:0",
            "0 0 1 1 weighted 0 1 1 254:0 1",
            "0 0 1 1 round-robin 0 1 1 254:0 1 extra",
            "0 0 1 1 round-robin 0 1 1 sda 1",
        ] {
            assert!(bad.parse::<MultipathTable>().is_err(), "{bad:?}");
        }
    }
}
