//! Relays the run's status lines (console lines starting with [`super::STATUS_PREFIX`], which
//! the run in the guest prints once a second) from the console log to the host's stderr while
//! the guest runs: on a terminal as an `indicatif` progress bar (the run's seconds, with the rest
//! of the line as its message), otherwise as a plain line every [`PLAIN_EVERY`]th status line, so
//! logs stay short. The console log keeps every line. [`Steps`] shows the steps of a long
//! preparation (the guest kernel's fetch) the same way: a spinner on a terminal, lines otherwise.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    /// The bar on the terminal, once the first status line came.
    bar: Option<ProgressBar>,
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
            bar: None,
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
        if self.terminal {
            let bar = self
                .bar
                .get_or_insert_with(|| run_bar(ProgressDrawTarget::stderr()));
            show_on_bar(bar, line);
        } else if seen % PLAIN_EVERY == 0 {
            let _ = writeln!(std::io::stderr().lock(), "pathrig: {line}");
        }
    }

    /// Ends the bar, leaving its last state on screen, so what is printed next starts on a line
    /// of its own.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
            // The bar leaves the cursor on its own line.
            eprintln!();
        }
    }
}

/// The bar of a run: seconds of the run's length, the rest of the status line as its message.
fn run_bar(target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template("pathrig: [{bar:12}] {pos}/{len} s {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Splits a status line (without its prefix) into the seconds elapsed, the run's length and
/// the rest: `"3/10 s; m 812 IO/s"` is `(3, 10, "m 812 IO/s")`.
fn parse_status(line: &str) -> Option<(u64, u64, &str)> {
    let (clock, rest) = line.split_once(" s").unwrap_or((line, ""));
    let (now, total) = clock.split_once('/')?;
    let rest = rest.trim_start_matches(';').trim();
    Some((now.trim().parse().ok()?, total.trim().parse().ok()?, rest))
}

fn show_on_bar(bar: &ProgressBar, line: &str) {
    match parse_status(line) {
        Some((now, total, rest)) => {
            bar.set_length(total);
            bar.set_position(now.min(total));
            bar.set_message(rest.to_string());
        }
        None => bar.set_message(line.to_string()),
    }
}

/// The steps of a long preparation: each step's line as a spinner's message on a terminal (the
/// spinner turns while a step runs), a plain `pathrig: …` line otherwise.
pub struct Steps {
    terminal: bool,
    /// Started at the first step (nothing to show when everything is cached).
    spinner: Option<ProgressBar>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps {
            terminal: std::io::stderr().is_terminal(),
            spinner: None,
        }
    }

    /// Shows the step now running (the line stays on screen above the spinner).
    pub fn step(&mut self, line: &str) {
        if !self.terminal {
            eprintln!("pathrig: {line}");
            return;
        }
        let spinner = self.spinner.get_or_insert_with(|| {
            let s = ProgressBar::new_spinner();
            s.set_style(
                ProgressStyle::with_template("pathrig: {spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        spinner.println(format!("pathrig: {line}"));
        spinner.set_message(line.to_string());
    }
}

impl Default for Steps {
    fn default() -> Steps {
        Steps::new()
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
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

    #[test]
    fn a_status_line_becomes_the_bars_position_length_and_message() {
        assert_eq!(
            parse_status("3/10 s; m 812 IO/s"),
            Some((3, 10, "m 812 IO/s"))
        );
        assert_eq!(parse_status("0/4 s"), Some((0, 4, "")));
        assert_eq!(parse_status("starting"), None);
        let bar = run_bar(ProgressDrawTarget::hidden());
        show_on_bar(&bar, "7/5 s; m 3 IO/s, errors 2");
        // A run that overruns its length stays at the end of the bar.
        assert_eq!((bar.position(), bar.length()), (5, Some(5)));
        assert_eq!(bar.message(), "m 3 IO/s, errors 2");
        show_on_bar(&bar, "no clock here");
        assert_eq!(bar.message(), "no clock here");
    }
}
