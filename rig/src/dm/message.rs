//! Target messages: what pathrig tells a live dm target without reloading its table. Every
//! message is a typed value rendered in exactly one place (its `Display`), and parsed back by
//! its `FromStr`; [`super::Dm::send`] is the one way to send one.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::target::DevNum;

/// A message to a multipath target (kernel 6.1 `multipath_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MultipathMessage {
    /// Fail the path to this device (as after an IO error).
    FailPath(DevNum),
    /// Make a failed path usable again.
    ReinstatePath(DevNum),
    /// Use this priority group (1-based, as the table counts them) from now on.
    SwitchGroup(u32),
    /// Queue IO while no path is usable.
    QueueIfNoPath,
    /// Fail IO at once when no path is usable (and the IO queued now).
    FailIfNoPath,
}

impl fmt::Display for MultipathMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipathMessage::FailPath(dev) => write!(f, "fail_path {dev}"),
            MultipathMessage::ReinstatePath(dev) => write!(f, "reinstate_path {dev}"),
            MultipathMessage::SwitchGroup(n) => write!(f, "switch_group {n}"),
            MultipathMessage::QueueIfNoPath => f.write_str("queue_if_no_path"),
            MultipathMessage::FailIfNoPath => f.write_str("fail_if_no_path"),
        }
    }
}

/// A message to a dm-dust target (kernel 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DustMessage {
    /// Add block N to the bad block list (an error if it is there already).
    AddBadBlock(u64),
    /// Remove block N from the list (an error if it is not there).
    RemoveBadBlock(u64),
    /// Empty the list.
    ClearBadBlocks,
    /// Start failing reads of bad blocks (a new dust target passes everything: "bypass").
    Enable,
    /// Stop failing reads of bad blocks.
    Disable,
    /// Toggle quiet mode (no kernel log line per bad-block hit).
    ToggleQuiet,
}

impl fmt::Display for DustMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DustMessage::AddBadBlock(n) => write!(f, "addbadblock {n}"),
            DustMessage::RemoveBadBlock(n) => write!(f, "removebadblock {n}"),
            DustMessage::ClearBadBlocks => f.write_str("clearbadblocks"),
            DustMessage::Enable => f.write_str("enable"),
            DustMessage::Disable => f.write_str("disable"),
            DustMessage::ToggleQuiet => f.write_str("quiet"),
        }
    }
}

/// Any message pathrig sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Message {
    Multipath(MultipathMessage),
    Dust(DustMessage),
}

impl From<MultipathMessage> for Message {
    fn from(m: MultipathMessage) -> Message {
        Message::Multipath(m)
    }
}

impl From<DustMessage> for Message {
    fn from(m: DustMessage) -> Message {
        Message::Dust(m)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Multipath(m) => m.fmt(f),
            Message::Dust(m) => m.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dm message pathrig knows: {0:?}")]
pub struct MessageParseError(pub String);

impl FromStr for Message {
    type Err = MessageParseError;
    fn from_str(s: &str) -> Result<Message, MessageParseError> {
        let fail = || MessageParseError(s.to_string());
        let words: Vec<&str> = s.split_ascii_whitespace().collect();
        let dev = |w: &str| DevNum::parse(w).ok_or_else(fail);
        let number = |w: &str| w.parse::<u64>().map_err(|_| fail());
        use DustMessage as D;
        use MultipathMessage as M;
        Ok(match words.as_slice() {
            ["fail_path", d] => M::FailPath(dev(d)?).into(),
            ["reinstate_path", d] => M::ReinstatePath(dev(d)?).into(),
            ["switch_group", n] => {
                M::SwitchGroup(u32::try_from(number(n)?).map_err(|_| fail())?).into()
            }
            ["queue_if_no_path"] => M::QueueIfNoPath.into(),
            ["fail_if_no_path"] => M::FailIfNoPath.into(),
            ["addbadblock", n] => D::AddBadBlock(number(n)?).into(),
            ["removebadblock", n] => D::RemoveBadBlock(number(n)?).into(),
            ["clearbadblocks"] => D::ClearBadBlocks.into(),
            ["enable"] => D::Enable.into(),
            ["disable"] => D::Disable.into(),
            ["quiet"] => D::ToggleQuiet.into(),
            _ => return Err(fail()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_render_like_dmsetup_message_and_parse_back() {
        let dev = DevNum::new(254, 1);
        let all: Vec<(Message, &str)> = vec![
            (MultipathMessage::FailPath(dev).into(), "fail_path 254:1"),
            (
                MultipathMessage::ReinstatePath(dev).into(),
                "reinstate_path 254:1",
            ),
            (MultipathMessage::SwitchGroup(2).into(), "switch_group 2"),
            (MultipathMessage::QueueIfNoPath.into(), "queue_if_no_path"),
            (MultipathMessage::FailIfNoPath.into(), "fail_if_no_path"),
            (DustMessage::AddBadBlock(10).into(), "addbadblock 10"),
            (DustMessage::RemoveBadBlock(11).into(), "removebadblock 11"),
            (DustMessage::ClearBadBlocks.into(), "clearbadblocks"),
            (DustMessage::Enable.into(), "enable"),
            (DustMessage::Disable.into(), "disable"),
            (DustMessage::ToggleQuiet.into(), "quiet"),
        ];
        for (message, text) in all {
            assert_eq!(message.to_string(), text);
            assert_eq!(text.parse::<Message>(), Ok(message));
        }
        assert!("fail_path sda".parse::<Message>().is_err());
        assert!("reinstate_path".parse::<Message>().is_err());
        assert!("flush".parse::<Message>().is_err());
    }
}
