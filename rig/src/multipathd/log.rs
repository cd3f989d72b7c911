//! multipathd's log lines (as `multipathd -d -v3`/`-v4` writes them, multipath-tools 0.9.4) read
//! into typed decisions: checker results, failed and reinstated paths, path group switches, the
//! count of remaining active paths, no_path_retry's recovery mode and its end, marginal paths and
//! io_err_stat's verdicts. Pure: a line in, a [`LogLine`] out, the raw text always kept; a line
//! it does not know is [`LogEvent::Other`].

use serde::Serialize;

/// One line of multipathd's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogLine {
    /// The `Mon DD HH:MM:SS` stamp multipathd put in front, if any.
    pub stamp: Option<String>,
    /// The line without the stamp.
    pub message: String,
    pub event: LogEvent,
}

/// What a line says. Paths are named the way multipathd named them in that line: a kernel name
/// (`sdb`) or a device number (`8:16`), see [`PathRef`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogEvent {
    /// `MAP: sdb - tur checker reports path is up` (and `... is down`, or another checker
    /// message: `up` is then `None`).
    Checker {
        map: String,
        path: PathRef,
        checker: String,
        up: Option<bool>,
        message: String,
    },
    /// `sdb: tur state = up` (`-v3`): a checker's result, or `pending` while it runs.
    CheckerState {
        path: PathRef,
        checker: String,
        state: String,
    },
    /// `sdb: state down, checker not called` (the SCSI device is offline or blocked).
    CheckerNotCalled { path: PathRef, state: String },
    /// `MAP: sdb - path offline`: the SCSI device is offline, the checker was not asked.
    PathOffline { map: String, path: PathRef },
    /// `checker failed path 8:16 in map MAP`: multipathd failed the path in the kernel.
    CheckerFailedPath { map: String, path: PathRef },
    /// `8:16: reinstated`.
    Reinstated { path: PathRef },
    /// `8:16: reinstate failed`.
    ReinstateFailed { path: PathRef },
    /// `MAP: switch to path group #2` (1-based, as multipathd counts).
    SwitchGroup { map: String, group: u32 },
    /// `MAP: remaining active paths: 1`.
    RemainingActivePaths { map: String, active: u32 },
    /// `MAP: Entering recovery mode: max_retries=3` (no_path_retry counting down).
    EnteringRecovery { map: String, max_retries: u32 },
    /// `MAP: Recovered to normal mode`.
    RecoveredToNormal { map: String },
    /// `MAP: queue_if_no_path enabled`.
    QueueingEnabled { map: String },
    /// `MAP: Disable queueing` (no_path_retry ran out).
    QueueingDisabled { map: String },
    /// `sdb: mark as failed` (set aside by san_path_err or io_err_stat).
    MarkedFailed { path: PathRef },
    /// `sdb: path is now marginal` / `sdb: path is no longer marginal`.
    Marginal { path: PathRef, marginal: bool },
    /// `sdb : hit error threshold. Delaying path reinstatement` (san_path_err).
    ReinstateDelayed { path: PathRef },
    /// `io error statistic: ...`: io_err_stat's sampling of a marginal path.
    IoErrStat {
        path: PathRef,
        verdict: IoErrVerdict,
    },
    /// `sdb: unusable path (STATE) - checker failed`.
    UnusablePath { path: PathRef, state: String },
    /// `MAP: addmap [TABLE]` (created) or `MAP: load table [TABLE]` (reloaded).
    LoadTable {
        map: String,
        table: String,
        created: bool,
    },
    /// Anything else.
    Other,
}

/// What io_err_stat decided about a path it sampled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum IoErrVerdict {
    /// `enqueue path sdb to check`.
    Enqueued,
    /// `IO error rate (12.5/1000)`, in thousandths, as printed.
    ErrorRate { per_mille: String },
    /// `(9/10) good to enable reinstating`.
    GoodToReinstate,
    /// `keep failing the dm path sdb`.
    KeepFailing,
    /// `disable reinstating of sdb`.
    DisableReinstating,
    /// Another io_err_stat line.
    Other { text: String },
}

/// A path as a log line names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PathRef {
    /// `major:minor`.
    DevNum { major: u32, minor: u32 },
    /// A kernel name: `sdb`.
    Name(String),
}

impl PathRef {
    fn parse(s: &str) -> PathRef {
        if let Some((a, b)) = s.split_once(':') {
            if let (Ok(major), Ok(minor)) = (a.parse(), b.parse()) {
                return PathRef::DevNum { major, minor };
            }
        }
        PathRef::Name(s.to_string())
    }
}

impl std::fmt::Display for PathRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathRef::DevNum { major, minor } => write!(f, "{major}:{minor}"),
            PathRef::Name(n) => f.write_str(n),
        }
    }
}

/// Splits off the stamp multipathd writes in front of each line: `7.083487 | ` (its monotonic
/// clock, what `-d` writes) or `Dec 02 16:30:00 | ` (wall time).
fn split_stamp(raw: &str) -> (Option<String>, &str) {
    if let Some((stamp, rest)) = raw.split_once(" | ") {
        let monotonic = stamp
            .split_once('.')
            .is_some_and(|(s, us)| is_digits(s) && is_digits(us));
        let parts: Vec<&str> = stamp.split_whitespace().collect();
        let wall = parts.len() == 3
            && parts[0].len() == 3
            && is_digits(parts[1])
            && parts[2].split(':').count() == 3;
        if monotonic || wall {
            return (Some(stamp.to_string()), rest);
        }
    }
    (None, raw)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl LogLine {
    /// The stamp as a time on the monotonic clock (`CLOCK_MONOTONIC`, what `-d` writes).
    pub fn monotonic(&self) -> Option<std::time::Duration> {
        let (secs, micros) = self.stamp.as_deref()?.split_once('.')?;
        if !is_digits(secs) || !is_digits(micros) || micros.len() != 6 {
            return None;
        }
        Some(std::time::Duration::new(
            secs.parse().ok()?,
            micros.parse::<u32>().ok()? * 1000,
        ))
    }
}

/// Reads one line of multipathd's output.
pub fn parse_line(raw: &str) -> LogLine {
    let raw = raw.trim_end_matches(['\r', '\n']);
    let (stamp, message) = split_stamp(raw);
    LogLine {
        stamp,
        message: message.to_string(),
        event: parse_message(message),
    }
}

fn parse_message(m: &str) -> LogEvent {
    if let Some(rest) = m.strip_prefix("checker failed path ") {
        if let Some((path, map)) = rest.split_once(" in map ") {
            return LogEvent::CheckerFailedPath {
                map: map.trim().to_string(),
                path: PathRef::parse(path.trim()),
            };
        }
    }
    if let Some(rest) = m.strip_prefix("io error statistic: ") {
        return io_err_stat(rest);
    }
    // Everything else is `SUBJECT: what`; a subject that is a device number (`8:16`) carries
    // its own colon, and a few lines put a space before the separating one.
    let Some((subject, what)) = split_subject(m) else {
        return LogEvent::Other;
    };
    if let PathRef::DevNum { .. } = PathRef::parse(subject) {
        let path = PathRef::parse(subject);
        if let Some(state) = what
            .split_once(" checker finished, state ")
            .map(|(_, state)| state)
        {
            let checker = what
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            return LogEvent::CheckerState {
                path,
                checker,
                state: state.to_string(),
            };
        }
        return match what {
            "reinstated" => LogEvent::Reinstated { path },
            "reinstate failed" => LogEvent::ReinstateFailed { path },
            _ => LogEvent::Other,
        };
    }
    let map = || subject.to_string();
    let path = || PathRef::parse(subject);
    if let Some((dev, tail)) = what.split_once(" - ") {
        if tail == "path offline" {
            return LogEvent::PathOffline {
                map: map(),
                path: PathRef::parse(dev),
            };
        }
        if let Some((checker, message)) = tail.split_once(" checker") {
            if !checker.contains(' ') {
                let message = message.trim().to_string();
                let up = match message.as_str() {
                    "reports path is up" => Some(true),
                    "reports path is down" => Some(false),
                    _ => None,
                };
                return LogEvent::Checker {
                    map: map(),
                    path: PathRef::parse(dev),
                    checker: checker.to_string(),
                    up,
                    message,
                };
            }
        }
        if tail == "checker failed" {
            if let Some(state) = dev
                .strip_prefix("unusable path (")
                .and_then(|s| s.strip_suffix(')'))
            {
                return LogEvent::UnusablePath {
                    path: path(),
                    state: state.to_string(),
                };
            }
        }
    }
    if let Some((checker, state)) = what.split_once(" state = ") {
        if !checker.contains(' ') {
            return LogEvent::CheckerState {
                path: path(),
                checker: checker.to_string(),
                state: state.to_string(),
            };
        }
    }
    if let Some(state) = what
        .strip_prefix("state ")
        .and_then(|s| s.strip_suffix(", checker not called"))
    {
        return LogEvent::CheckerNotCalled {
            path: path(),
            state: state.to_string(),
        };
    }
    if let Some(n) = what.strip_prefix("switch to path group #") {
        if let Ok(group) = n.trim().parse() {
            return LogEvent::SwitchGroup { map: map(), group };
        }
    }
    if let Some(n) = what.strip_prefix("remaining active paths:") {
        if let Ok(active) = n.trim().parse() {
            return LogEvent::RemainingActivePaths { map: map(), active };
        }
    }
    if let Some(n) = what.strip_prefix("Entering recovery mode: max_retries=") {
        if let Ok(max_retries) = n.trim().parse() {
            return LogEvent::EnteringRecovery {
                map: map(),
                max_retries,
            };
        }
    }
    for (prefix, created) in [("addmap ", true), ("load table ", false)] {
        if let Some(table) = what.strip_prefix(prefix) {
            let table = table.trim_start_matches('[').trim_end_matches(']');
            return LogEvent::LoadTable {
                map: map(),
                table: table.to_string(),
                created,
            };
        }
    }
    match what {
        "Recovered to normal mode" => LogEvent::RecoveredToNormal { map: map() },
        "queue_if_no_path enabled" => LogEvent::QueueingEnabled { map: map() },
        "Disable queueing" => LogEvent::QueueingDisabled { map: map() },
        "mark as failed" => LogEvent::MarkedFailed { path: path() },
        "path is now marginal" => LogEvent::Marginal {
            path: path(),
            marginal: true,
        },
        "path is no longer marginal" => LogEvent::Marginal {
            path: path(),
            marginal: false,
        },
        "hit error threshold. Delaying path reinstatement" => {
            LogEvent::ReinstateDelayed { path: path() }
        }
        _ => LogEvent::Other,
    }
}

/// `SUBJECT: what` or `SUBJECT : what`, where a subject `MAJOR:MINOR` keeps its colon.
fn split_subject(m: &str) -> Option<(&str, &str)> {
    let word_end = m.find([' ', ':']).unwrap_or(m.len());
    let mut end = word_end;
    // `8:16: ...` / `8:16 : ...`
    if m[word_end..].starts_with(':') && is_digits(&m[..word_end]) {
        let minor_len = m[word_end + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if minor_len > 0 {
            end = word_end + 1 + minor_len;
        }
    }
    let subject = &m[..end];
    let rest = m[end..].trim_start();
    let what = rest.strip_prefix(':')?.trim();
    if subject.is_empty() {
        return None;
    }
    Some((subject, what))
}

/// `io error statistic: SUBJECT: what` (the subject is the path, or for a few lines the map).
fn io_err_stat(rest: &str) -> LogEvent {
    let Some((subject, what)) = rest.split_once(':') else {
        return LogEvent::Other;
    };
    let what = what.trim();
    let mut path = PathRef::parse(subject.trim());
    let verdict = if let Some(dev) = what
        .strip_prefix("enqueue path ")
        .and_then(|s| s.strip_suffix(" to check"))
    {
        path = PathRef::parse(dev);
        IoErrVerdict::Enqueued
    } else if let Some(rate) = what
        .strip_prefix("IO error rate (")
        .and_then(|s| s.strip_suffix("/1000)"))
    {
        IoErrVerdict::ErrorRate {
            per_mille: rate.to_string(),
        }
    } else if what.ends_with("good to enable reinstating") {
        IoErrVerdict::GoodToReinstate
    } else if let Some(dev) = what.strip_prefix("keep failing the dm path ") {
        path = PathRef::parse(dev);
        IoErrVerdict::KeepFailing
    } else if let Some(dev) = what.strip_prefix("disable reinstating of ") {
        path = PathRef::parse(dev);
        IoErrVerdict::DisableReinstating
    } else {
        IoErrVerdict::Other {
            text: what.to_string(),
        }
    };
    LogEvent::IoErrStat { path, verdict }
}

#[cfg(test)]
mod tests;
