//! Diagnostics: what the user sees when a scenario is wrong.
//!
//! Owns [`Diagnostic`] / [`Diagnostics`] (the public error types) and the
//! [`Report`] (used by both languages) that collects errors while a file is decoded and
//! turns byte offsets into 1-based line and column numbers.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a scenario file, located at `file:line:column`.
///
/// `line` and `column` are 1-based; the column counts characters, not bytes.
/// Both are 0 when the problem concerns the file as a whole (e.g. it could
/// not be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: error: {message}{}", .file.display(), help_line(.help))]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
}

fn help_line(help: &Option<String>) -> String {
    match help {
        Some(h) => format!("\n  help: {h}"),
        None => String::new(),
    }
}

/// Every problem found in one scenario file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Diagnostics {
    /// A single diagnostic about the file as a whole (line 0, column 0).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostics(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
            help: None,
        }])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects errors for a scenario file and the texts it brings in (an inline
/// or separate multipath.conf); positions are byte offsets.
///
/// The scenario text owns offsets `0..=len`. Every further text added with
/// [`Report::add_source`] gets its own range of offsets after that, so a
/// position is still one `usize` wherever it points, and [`Report::locate`]
/// finds the text, line and column for it.
pub struct Report<'t> {
    sources: Vec<Source<'t>>,
    diags: Vec<Diagnostic>,
}

/// One text positions can point into.
struct Source<'t> {
    file: PathBuf,
    /// First offset of this text.
    start: usize,
    text: Cow<'t, str>,
    line_starts: Vec<usize>,
    /// Line and column (1-based) of the text's first character in `file`:
    /// (1, 1) for a file of its own, elsewhere for a string embedded in the
    /// scenario file.
    first: (usize, usize),
}

impl Source<'_> {
    fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

impl<'t> Report<'t> {
    pub fn new(file: &Path, text: &'t str) -> Self {
        Report {
            sources: vec![Source {
                file: file.to_path_buf(),
                start: 0,
                line_starts: line_starts(text),
                text: Cow::Borrowed(text),
                first: (1, 1),
            }],
            diags: Vec::new(),
        }
    }

    /// Adds a text whose positions are reported in `file`, its first
    /// character at line and column `first`; returns the offset that stands
    /// for that first character (add it to offsets into `text`).
    pub fn add_source(&mut self, file: &Path, text: String, first: (usize, usize)) -> usize {
        // One past the previous end, so an end-of-text offset stays in its text.
        let start = self.sources.last().map_or(0, |s| s.end() + 1);
        self.sources.push(Source {
            file: file.to_path_buf(),
            start,
            line_starts: line_starts(&text),
            text: Cow::Owned(text),
            first,
        });
        start
    }

    /// The scenario file.
    pub fn main_file(&self) -> &Path {
        &self.sources[0].file
    }

    /// The scenario text.
    pub fn main_text(&self) -> &str {
        &self.sources[0].text
    }

    fn source(&self, offset: usize) -> &Source<'t> {
        let i = self.sources.partition_point(|s| s.start <= offset);
        &self.sources[i.saturating_sub(1)]
    }

    /// The file an offset is reported in.
    pub fn file_of(&self, offset: usize) -> &Path {
        &self.source(offset).file
    }

    /// 1-based (line, column) of a byte offset; the column counts characters.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let src = self.source(offset);
        let text: &str = &src.text;
        let mut local = (offset - src.start).min(text.len());
        while !text.is_char_boundary(local) {
            local -= 1;
        }
        let line = src.line_starts.partition_point(|&s| s <= local);
        let start = src.line_starts[line - 1];
        let column = text[start..local].chars().count() + 1;
        if line == 1 {
            (src.first.0, src.first.1 + column - 1)
        } else {
            (src.first.0 + line - 1, column)
        }
    }

    pub fn line_of(&self, offset: usize) -> usize {
        self.locate(offset).0
    }

    /// Where an offset is, for a message: "line 12" in the scenario file,
    /// "conf/multipath.conf line 3" in another file.
    pub fn describe(&self, offset: usize) -> String {
        let line = self.line_of(offset);
        let file = self.file_of(offset);
        if file == self.main_file() {
            format!("line {line}")
        } else {
            format!("{} line {line}", file.display())
        }
    }

    /// An error at `offset` with a help line saying what would be valid.
    pub fn error(&mut self, offset: usize, message: impl Into<String>, help: impl fmt::Display) {
        self.push(offset, message.into(), Some(help.to_string()));
    }

    /// An error without help (used for TOML syntax errors, whose message says it all).
    pub fn error_bare(&mut self, offset: usize, message: impl Into<String>) {
        self.push(offset, message.into(), None);
    }

    fn push(&mut self, offset: usize, message: String, help: Option<String>) {
        let (line, column) = self.locate(offset);
        let file = self.file_of(offset).to_path_buf();
        self.diags.push(Diagnostic {
            file,
            line,
            column,
            message: crate::units::tidy(&message),
            help: help.as_deref().map(crate::units::tidy),
        });
    }

    pub fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// All collected diagnostics in order: the scenario file's by position,
    /// then other files' by name and position (stable for equal positions).
    pub fn finish(mut self) -> Diagnostics {
        let main = self.sources.swap_remove(0).file;
        self.diags.sort_by(|a, b| {
            (a.file != main, &a.file, a.line, a.column).cmp(&(
                b.file != main,
                &b.file,
                b.line,
                b.column,
            ))
        });
        Diagnostics(self.diags)
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters_from_one() {
        let text = "ab\ncé d\n\nx";
        let r = Report::new(Path::new("f.toml"), text);
        assert_eq!(r.locate(0), (1, 1));
        assert_eq!(r.locate(1), (1, 2));
        assert_eq!(r.locate(2), (1, 3)); // the newline itself
        assert_eq!(r.locate(3), (2, 1));
        // 'é' is two bytes; the space after it is character 3
        assert_eq!(r.locate(6), (2, 3));
        assert_eq!(r.locate(5), (2, 2)); // inside 'é' clamps to its start
        assert_eq!(r.locate(9), (3, 1));
        assert_eq!(r.locate(10), (4, 1));
        assert_eq!(r.locate(999), (4, 2));
    }

    #[test]
    fn display_has_position_message_and_help() {
        let d = Diagnostic {
            file: PathBuf::from("s/x.toml"),
            line: 5,
            column: 6,
            message: "bad thing".into(),
            help: Some("do good".into()),
        };
        assert_eq!(
            d.to_string(),
            "s/x.toml:5:6: error: bad thing\n  help: do good"
        );
        let plain = Diagnostic {
            help: None,
            ..d.clone()
        };
        assert_eq!(plain.to_string(), "s/x.toml:5:6: error: bad thing");
        let all = Diagnostics(vec![d, plain]);
        assert_eq!(
            all.to_string(),
            "s/x.toml:5:6: error: bad thing\n  help: do good\ns/x.toml:5:6: error: bad thing"
        );
    }

    #[test]
    fn added_sources_have_their_own_file_and_first_position() {
        let mut r = Report::new(Path::new("s.toml"), "ab\nconf = \"\"\"\nx\n");
        // an inline text whose first character is at line 3, column 1 of s.toml
        let inline = r.add_source(Path::new("s.toml"), "defaults {\n  y\n".into(), (3, 1));
        // an embedded string starting mid-line
        let mid = r.add_source(Path::new("s.toml"), "p q\nr".into(), (7, 9));
        let other = r.add_source(Path::new("dir/mp.conf"), "a\nbc".into(), (1, 1));
        assert!(inline > 14 && mid > inline && other > mid);
        assert_eq!(r.locate(3), (2, 1));
        assert_eq!(r.locate(inline), (3, 1));
        assert_eq!(r.locate(inline + 13), (4, 3));
        assert_eq!(r.locate(mid + 2), (7, 11));
        assert_eq!(r.locate(mid + 4), (8, 1));
        assert_eq!(r.locate(other + 3), (2, 2));
        assert_eq!(r.locate(other + 99), (2, 3));
        assert_eq!(r.file_of(other), Path::new("dir/mp.conf"));
        assert_eq!(r.file_of(mid), Path::new("s.toml"));
        assert_eq!(r.describe(inline + 13), "line 4");
        assert_eq!(r.describe(other + 3), "dir/mp.conf line 2");
        r.error(other + 2, "in conf", "h");
        r.error(inline + 13, "inline", "h");
        r.error(0, "first", "h");
        let d = r.finish().0;
        let got: Vec<_> = d
            .iter()
            .map(|d| {
                (
                    d.file.to_str().unwrap(),
                    d.line,
                    d.column,
                    d.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("s.toml", 1, 1, "first"),
                ("s.toml", 4, 3, "inline"),
                ("dir/mp.conf", 2, 1, "in conf")
            ]
        );
    }

    #[test]
    fn finish_sorts_by_position() {
        let text = "a\nb\nc\n";
        let mut r = Report::new(Path::new("f"), text);
        r.error(4, "third", "h");
        r.error(0, "first", "h");
        r.error(2, "second", "h");
        let msgs: Vec<_> = r.finish().0.into_iter().map(|d| d.message).collect();
        assert_eq!(msgs, ["first", "second", "third"]);
    }
}
