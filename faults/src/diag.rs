//! Diagnostics: what the user sees when a scenario is wrong.
//!
//! Owns [`Diagnostic`] / [`Diagnostics`] (the public error types) and the
//! crate-internal [`Report`] that collects errors while a file is decoded and
//! turns byte offsets into 1-based line and column numbers.

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

/// Collects errors for one source text; positions are byte offsets into it.
pub(crate) struct Report<'t> {
    file: PathBuf,
    text: &'t str,
    line_starts: Vec<usize>,
    diags: Vec<Diagnostic>,
}

impl<'t> Report<'t> {
    pub(crate) fn new(file: &Path, text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Report {
            file: file.to_path_buf(),
            text,
            line_starts,
            diags: Vec::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; the column counts characters.
    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.locate(offset).0
    }

    /// An error at `offset` with a help line saying what would be valid.
    pub(crate) fn error(
        &mut self,
        offset: usize,
        message: impl Into<String>,
        help: impl fmt::Display,
    ) {
        self.push(offset, message.into(), Some(help.to_string()));
    }

    /// An error without help (used for TOML syntax errors, whose message says it all).
    pub(crate) fn error_bare(&mut self, offset: usize, message: impl Into<String>) {
        self.push(offset, message.into(), None);
    }

    fn push(&mut self, offset: usize, message: String, help: Option<String>) {
        let (line, column) = self.locate(offset);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message,
            help,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// All collected diagnostics in file order (stable for equal positions).
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.line, d.column));
        Diagnostics(self.diags)
    }
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
