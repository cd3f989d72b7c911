//! multipath.conf text: its syntax, and the sections and keywords pathrig reads.
//!
//! The syntax is multipath-tools': one statement a line; `name {` opens a
//! section (the brace on the same line), `}` on a line of its own closes it;
//! `keyword value` sets a keyword, the value optionally in double quotes
//! (`""` inside quotes is one `"`); `#` and `!` start a comment anywhere
//! outside quotes.
//!
//! pathrig reads `defaults { }`, `overrides { }` and
//! `multipaths { multipath { wwid .. alias .. <keywords> } }`. `blacklist`,
//! `blacklist_exceptions` and `devices` select storage by vendor/product,
//! which pathrig's legs do not have, so they are errors, as is every keyword
//! pathrig does not implement: nothing in a conf that parses here is
//! silently ignored. Where a keyword takes seconds, pathrig also accepts a
//! duration such as `500ms` (multipathd does not).
//!
//! Positions are offsets the [`Report`] knows (see [`Report::add_source`]),
//! so every error lands on the right line of the conf file, or of the
//! scenario file for an inline `conf` string.

use super::keywords::SetAt;
use super::keywords::{self, Level, Raw};
use crate::settings::Origin;
use pathrig_diag::reader::{suggest, Sp};
use pathrig_diag::Report;

/// What a multipath.conf text sets, in file order.
#[derive(Debug, Default)]
pub struct Conf {
    pub defaults: Vec<SetAt>,
    pub overrides: Vec<SetAt>,
    pub entries: Vec<ConfEntry>,
}

/// One `multipath { }` entry of `multipaths`.
#[derive(Debug)]
pub struct ConfEntry {
    /// The `multipath` word opening the entry.
    pub pos: usize,
    pub wwid: Option<Sp<String>>,
    pub alias: Option<Sp<String>>,
    pub sets: Vec<SetAt>,
}

const SECTIONS: &[&str] = &["defaults", "overrides", "multipaths"];
const UNSUPPORTED_SECTIONS: &[&str] = &["blacklist", "blacklist_exceptions", "devices"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    tok: Tok,
    /// Offset in the conf text.
    pos: usize,
}

/// An error found while splitting a line: (offset, message, help).
type LineError = (usize, &'static str, &'static str);

/// Splits one line (without its newline) into tokens; `at` is the line's offset.
fn tokenize(line: &str, at: usize) -> Result<Vec<Token>, LineError> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else { break };
        let start = i;
        let tok = match b {
            b'#' | b'!' => break,
            b'{' => {
                i += 1;
                Tok::Open
            }
            b'}' => {
                i += 1;
                Tok::Close
            }
            b'"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(k) = line[i..].find('"') else {
                        return Err((
                            at + start,
                            "unterminated quoted string",
                            "close the value with `\"` on the same line",
                        ));
                    };
                    s.push_str(&line[i..i + k]);
                    i += k + 1;
                    if bytes.get(i) == Some(&b'"') {
                        s.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                }
                Tok::Quoted(s)
            }
            _ => {
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !b"{}\"#!".contains(&bytes[i])
                {
                    i += 1;
                }
                Tok::Word(line[start..i].to_string())
            }
        };
        out.push(Token {
            tok,
            pos: at + start,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sec {
    Defaults,
    Overrides,
    Multipaths,
    /// Index into `Conf::entries`.
    Multipath(usize),
    /// A section already reported as wrong: its contents are ignored.
    Skip,
}

struct Open {
    sec: Sec,
    name: String,
    pos: usize,
}

struct Parser<'r, 't> {
    r: &'r mut Report<'t>,
    base: usize,
    conf: Conf,
    stack: Vec<Open>,
    /// A section name written without its `{` (reported); a lone `{` on the
    /// next line opens it.
    pending: Option<Open>,
}

/// Parses multipath.conf `text`, whose first byte is at offset `base` of `r`.
pub fn parse(r: &mut Report, text: &str, base: usize) -> Conf {
    let mut p = Parser {
        r,
        base,
        conf: Conf::default(),
        stack: Vec::new(),
        pending: None,
    };
    let mut at = 0;
    for line in text.split('\n') {
        let content = line.strip_suffix('\r').unwrap_or(line);
        match tokenize(content, at) {
            Ok(tokens) if tokens.is_empty() => {}
            Ok(tokens) => p.line(&tokens),
            Err((pos, message, help)) => {
                p.pending = None;
                p.r.error(base + pos, message, help);
            }
        }
        at += line.len() + 1;
    }
    for open in std::mem::take(&mut p.stack) {
        p.r.error(
            base + open.pos,
            format!("section `{}` is never closed", open.name),
            format!(
                "add a line with `}}` where `{}` ends (braces are unbalanced)",
                open.name
            ),
        );
    }
    p.conf
}

impl Parser<'_, '_> {
    fn error(&mut self, pos: usize, message: impl Into<String>, help: impl std::fmt::Display) {
        self.r.error(self.base + pos, message, help);
    }

    fn line(&mut self, tokens: &[Token]) {
        let pending = self.pending.take();
        let first = &tokens[0];
        match &first.tok {
            Tok::Close => {
                self.close(first.pos);
                if let Some(extra) = tokens.get(1) {
                    self.error(
                        extra.pos,
                        "nothing may follow `}` on its line",
                        "put what follows on a line of its own",
                    );
                }
            }
            Tok::Open => {
                let open = match pending {
                    // Its missing brace has been reported.
                    Some(open) => open,
                    None => {
                        self.error(
                            first.pos,
                            "`{` must follow a section name on the same line",
                            "write e.g. `defaults {`",
                        );
                        Open {
                            sec: Sec::Skip,
                            name: "{".into(),
                            pos: first.pos,
                        }
                    }
                };
                self.stack.push(open);
                self.nothing_after_open(&tokens[1..], "{");
            }
            Tok::Quoted(_) => self.error(
                first.pos,
                "a line must start with a keyword, not a quoted string",
                "write `keyword value`, e.g. `polling_interval 2`",
            ),
            Tok::Word(word) => {
                if tokens.get(1).is_some_and(|t| t.tok == Tok::Open) {
                    self.open(word, first.pos);
                    self.nothing_after_open(&tokens[2..], word);
                } else {
                    self.statement(word, first.pos, &tokens[1..]);
                }
            }
        }
    }

    fn close(&mut self, pos: usize) {
        if self.stack.pop().is_none() {
            self.error(
                pos,
                "unmatched `}`",
                "there is no open section to close here (braces are unbalanced)",
            );
        }
    }

    fn nothing_after_open(&mut self, rest: &[Token], name: &str) {
        if let Some(t) = rest.first() {
            let opener = if name == "{" {
                "{".to_string()
            } else {
                format!("{name} {{")
            };
            self.error(
                t.pos,
                format!("nothing may follow `{opener}` on its line"),
                "write each keyword on a line of its own, and the closing `}` on a line of its own",
            );
        }
    }

    fn sec(&self) -> Option<Sec> {
        self.stack.last().map(|o| o.sec)
    }

    /// The section `name {` opens, reporting one that may not be here.
    fn section_for(&mut self, name: &str, pos: usize) -> Sec {
        match self.sec() {
            None => match name {
                "defaults" => Sec::Defaults,
                "overrides" => Sec::Overrides,
                "multipaths" => Sec::Multipaths,
                _ if UNSUPPORTED_SECTIONS.contains(&name) => {
                    self.error(
                        pos,
                        format!("section `{name}` is not supported by pathrig (its legs have no vendor/product)"),
                        "pathrig reads `defaults`, `overrides` and `multipaths`; remove this section",
                    );
                    Sec::Skip
                }
                "multipath" => {
                    self.error(
                        pos,
                        "a `multipath` entry outside `multipaths`",
                        "put `multipath { ... }` entries inside `multipaths { ... }`",
                    );
                    Sec::Skip
                }
                _ => {
                    let guess = suggest(name, SECTIONS.iter().copied())
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    self.error(
                        pos,
                        format!("unknown section `{name}`"),
                        format!("{guess}pathrig reads the sections {}", SECTIONS.join(", ")),
                    );
                    Sec::Skip
                }
            },
            Some(Sec::Skip) => Sec::Skip,
            Some(Sec::Multipaths) if name == "multipath" => {
                self.conf.entries.push(ConfEntry {
                    pos: self.base + pos,
                    wwid: None,
                    alias: None,
                    sets: Vec::new(),
                });
                Sec::Multipath(self.conf.entries.len() - 1)
            }
            Some(Sec::Multipaths) => {
                self.error(
                    pos,
                    format!("unexpected section `{name}` inside `multipaths`"),
                    "`multipaths` holds only `multipath { ... }` entries",
                );
                Sec::Skip
            }
            Some(sec @ (Sec::Defaults | Sec::Overrides | Sec::Multipath(_))) => {
                let parent = section_name(sec);
                self.error(
                    pos,
                    format!("unexpected section `{name}` inside `{parent}`"),
                    format!("`{parent}` holds keywords only; pathrig supports no `{name}` section"),
                );
                Sec::Skip
            }
        }
    }

    fn open(&mut self, name: &str, pos: usize) {
        let sec = self.section_for(name, pos);
        self.stack.push(Open {
            sec,
            name: name.to_string(),
            pos,
        });
    }

    /// A line `word rest..` that opens nothing.
    fn statement(&mut self, word: &str, pos: usize, rest: &[Token]) {
        let opens_here = match self.sec() {
            None => SECTIONS.contains(&word) || UNSUPPORTED_SECTIONS.contains(&word),
            Some(Sec::Multipaths) => word == "multipath",
            _ => false,
        };
        if opens_here && rest.is_empty() {
            self.error(
                pos,
                format!("section `{word}` must open with `{{` on the same line"),
                format!("write `{word} {{`"),
            );
            let sec = self.section_for(word, pos);
            self.pending = Some(Open {
                sec,
                name: word.to_string(),
                pos,
            });
            return;
        }
        match self.sec() {
            None => self.error(
                pos,
                format!("`{word}` is outside any section"),
                "keywords go inside a section, e.g. `defaults {` ... `}`",
            ),
            Some(Sec::Skip) => {}
            Some(Sec::Multipaths) => self.error(
                pos,
                format!("`{word}` directly inside `multipaths`"),
                "`multipaths` holds only `multipath { ... }` entries; put keywords inside one",
            ),
            Some(sec) => self.keyword(sec, word, pos, rest),
        }
    }

    fn keyword(&mut self, sec: Sec, word: &str, pos: usize, rest: &[Token]) {
        let value = match rest.first() {
            None => {
                self.error(
                    pos,
                    format!("`{word}` has no value"),
                    format!("write the keyword and its value on one line: `{word} <value>`"),
                );
                return;
            }
            Some(Token {
                tok: Tok::Word(v) | Tok::Quoted(v),
                pos,
            }) => Sp::new(v.clone(), *pos),
            Some(Token {
                tok: Tok::Close,
                pos,
            }) => {
                let pos = *pos;
                self.error(
                    pos,
                    "`}` must be on a line of its own",
                    format!(
                        "`{word}` has no value; write `{word} <value>`, and `}}` on the next line"
                    ),
                );
                self.close(pos);
                return;
            }
            Some(Token {
                tok: Tok::Open,
                pos,
            }) => {
                self.error(
                    *pos,
                    format!("unexpected `{{` after `{word}`"),
                    format!("`{word}` is not a section here"),
                );
                self.stack.push(Open {
                    sec: Sec::Skip,
                    name: word.to_string(),
                    pos: *pos,
                });
                return;
            }
        };
        if let Some(extra) = rest.get(1) {
            if extra.tok == Tok::Close {
                self.error(
                    extra.pos,
                    "`}` must be on a line of its own",
                    "move `}` to the next line",
                );
                self.close(extra.pos);
            } else {
                self.error(
                    extra.pos,
                    format!("`{word}` takes one value"),
                    "remove what follows the value, or put a value with spaces in double quotes",
                );
            }
            return;
        }
        let (level, place) = match sec {
            Sec::Defaults => (Level::Defaults, "`defaults`"),
            Sec::Overrides => (Level::Overrides, "`overrides`"),
            _ => (Level::Map, "a `multipath` entry"),
        };
        if let Sec::Multipath(i) = sec {
            if word == "wwid" || word == "alias" {
                self.identity(i, word, value);
                return;
            }
        }
        let Some(def) = keywords::lookup(word) else {
            self.unknown(word, pos, level, place);
            return;
        };
        if let Some(bad) = def.scope_error(level, place) {
            self.error(pos, bad.message, bad.help);
            return;
        }
        let val = match def.read(Raw::from_conf(&value.val)) {
            Ok(val) => val,
            Err(bad) => {
                self.error(value.pos, bad.message, bad.help);
                return;
            }
        };
        let at = self.base + pos;
        let (file, line) = (self.r.file_of(at).display().to_string(), self.r.line_of(at));
        let set = |origin| SetAt {
            kw: def.kw,
            val,
            pos: at,
            origin,
        };
        match sec {
            Sec::Defaults => self
                .conf
                .defaults
                .push(set(Origin::ConfDefaults { file, line })),
            Sec::Overrides => self
                .conf
                .overrides
                .push(set(Origin::ConfOverrides { file, line })),
            Sec::Multipath(i) => self.conf.entries[i]
                .sets
                .push(set(Origin::ConfMultipath { file, line })),
            Sec::Multipaths | Sec::Skip => {}
        }
    }

    /// `wwid` or `alias` of entry `i`.
    fn identity(&mut self, i: usize, word: &str, value: Sp<String>) {
        let value = Sp::new(value.val, self.base + value.pos);
        let entry = &mut self.conf.entries[i];
        let slot = if word == "wwid" {
            &mut entry.wwid
        } else {
            &mut entry.alias
        };
        match slot {
            Some(first) => {
                let first = first.pos;
                let line = self.r.describe(first);
                self.r.error(
                    value.pos,
                    format!("`{word}` is given twice in this multipath entry"),
                    format!("the first `{word}` is on {line}; an entry has one"),
                );
            }
            None => *slot = Some(value),
        }
    }

    fn unknown(&mut self, word: &str, pos: usize, level: Level, place: &str) {
        let mut valid = keywords::names_at(level);
        if level == Level::Map {
            valid.splice(0..0, ["wwid", "alias"]);
        }
        let list = format!("pathrig takes in {place}: {}", valid.join(", "));
        if let Some((message, hint)) = keywords::unimplemented(word) {
            let help = match hint {
                Some(h) => format!("{h}; {list}"),
                None => list,
            };
            self.error(pos, message, help);
        } else {
            let guess = suggest(word, valid.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            self.error(
                pos,
                format!("unknown keyword `{word}` in {place}"),
                format!("{guess}{list}"),
            );
        }
    }
}

fn section_name(sec: Sec) -> &'static str {
    match sec {
        Sec::Defaults => "defaults",
        Sec::Overrides => "overrides",
        Sec::Multipaths => "multipaths",
        Sec::Multipath(_) => "multipath",
        Sec::Skip => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Tok> {
        tokenize(line, 0)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn tokens_words_quotes_braces_and_comments() {
        assert_eq!(words("  defaults {"), [w("defaults"), Tok::Open]);
        assert_eq!(words("}"), [Tok::Close]);
        assert_eq!(
            words("failback \"manual\" # why"),
            [w("failback"), Tok::Quoted("manual".into())]
        );
        assert_eq!(words("a b!c"), [w("a"), w("b")]);
        assert_eq!(words("# all comment"), []);
        assert_eq!(words("! all comment"), []);
        assert_eq!(
            words("alias \"a \"\"b\"\"\""),
            [w("alias"), Tok::Quoted("a \"b\"".into())]
        );
        assert_eq!(
            words("x \"#not a comment\""),
            [w("x"), Tok::Quoted("#not a comment".into())]
        );
        assert_eq!(words("x{"), [w("x"), Tok::Open]);
        assert_eq!(words("v \"\""), [w("v"), Tok::Quoted(String::new())]);
        let positions: Vec<usize> = tokenize("ab  \"c\" }", 10)
            .unwrap()
            .into_iter()
            .map(|t| t.pos)
            .collect();
        assert_eq!(positions, [10, 14, 18]);
        assert_eq!(
            tokenize("alias \"open", 5),
            Err((
                11,
                "unterminated quoted string",
                "close the value with `\"` on the same line"
            ))
        );
    }
}
