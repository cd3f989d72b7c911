//! Relays the run's status lines (console lines starting with [`super::STATUS_PREFIX`], which
//! the run in the guest prints once a second) from the console log to the host's stderr while
//! the guest runs: on a terminal as one line rewritten in place, otherwise as a plain line every
//! [`PLAIN_EVERY`]th status line, so logs stay short. The console log keeps every line.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Without a terminal, one status line in this many is printed.
pub const PLAIN_EVERY: u32 = 5;

/// How often the console log is looked at.
const POLL: Duration = Duration::from_millis(200);

pub struct Relay {
    console: PathBuf,
    offset: u64,
    /// The end of the log that is not a whole line yet.
    partial: Vec<u8>,
    terminal: bool,
    /// A live line is on the terminal (to be ended before anything else is printed).
    live: bool,
    seen: u32,
    polled: Option<Instant>,
}

impl Relay {
    pub fn new(console: PathBuf) -> Relay {
        Relay {
            console,
            offset: 0,
            partial: Vec::new(),
            terminal: std::io::stderr().is_terminal(),
            live: false,
            seen: 0,
            polled: None,
        }
    }

    /// Reads what the console gained and shows its status lines; cheap to call often.
    pub fn poll(&mut self) {
        if self.polled.is_some_and(|at| at.elapsed() < POLL) {
            return;
        }
        self.polled = Some(Instant::now());
        let Ok(mut file) = std::fs::File::open(&self.console) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(n) = file.read_to_end(&mut fresh) else {
            return;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        let last = String::from_utf8_lossy(&whole)
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').strip_prefix(super::STATUS_PREFIX))
            .map(|l| {
                self.seen += 1;
                (self.seen, l.to_string())
            })
            .last();
        if let Some((seen, line)) = last {
            self.show(seen, &line);
        }
    }

    fn show(&mut self, seen: u32, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            // Carriage return, erase the line, the new status.
            let _ = write!(err, "\r\x1b[2Kpathrig: {line}");
            let _ = err.flush();
            self.live = true;
        } else if seen % PLAIN_EVERY == 0 {
            let _ = writeln!(err, "pathrig: {line}");
        }
    }

    /// Ends a live line, so what is printed next starts on a line of its own.
    pub fn finish(&mut self) {
        if self.live {
            let _ = writeln!(std::io::stderr());
            self.live = false;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_found_across_partial_reads() {
        let dir = std::env::temp_dir().join(format!("pathrig-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("console.log");
        std::fs::write(&log, "boot\npathrig-status: 1/5 s; m 10 IO/s\npathrig-sta").unwrap();
        let mut relay = Relay::new(log.clone());
        relay.terminal = false;
        relay.poll();
        assert_eq!(relay.seen, 1);
        assert_eq!(relay.partial, b"pathrig-sta");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"tus: 2/5 s; m 20 IO/s\nother\n").unwrap();
        relay.polled = None;
        relay.poll();
        assert_eq!(relay.seen, 2);
        assert!(relay.partial.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
