//! Typed, position-aware reading of a parsed TOML tree.
//!
//! Wraps toml's spanned document ([`toml::de::DeTable`]) so the decoder can
//! ask for "the duration at key `at`" and get the value with its byte offset,
//! while every type, unit and range mistake is reported into a [`Report`]
//! instead of aborting. Also owns unknown-key detection and "did you mean".

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::Report;
use crate::units::{self, DURATION_HELP, SIZE_HELP};

pub type Value<'i> = Spanned<DeValue<'i>>;

/// A value and the byte offset where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub val: T,
    pub pos: usize,
}

impl<T> Sp<T> {
    pub fn new(val: T, pos: usize) -> Self {
        Sp { val, pos }
    }
}

/// Outcome of reading one key.
pub enum Got<T> {
    /// The key is not there.
    Absent,
    /// The key is there but wrong; already reported.
    Invalid,
    Ok(Sp<T>),
}

impl<T> Got<T> {
    pub fn ok(self) -> Option<Sp<T>> {
        match self {
            Got::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// The value; a missing key is reported at the table header.
    pub fn required(
        self,
        r: &mut Report,
        table: &Table,
        key: &str,
        example: &str,
    ) -> Option<Sp<T>> {
        match self {
            Got::Absent => {
                r.error(
                    table.pos,
                    format!("{} is missing required key `{key}`", table.name),
                    format!("add e.g. `{example}`"),
                );
                None
            }
            Got::Invalid => None,
            Got::Ok(v) => Some(v),
        }
    }

    /// The value, or `default` when the key is absent or invalid (an invalid
    /// value has been reported, so the default never reaches a scenario).
    pub fn or(self, default: T) -> T {
        self.ok().map_or(default, |v| v.val)
    }
}

/// One TOML table and how to name it in messages ("[[map]]", "[workload]").
pub struct Table<'a, 'i> {
    pub name: &'static str,
    pub pos: usize,
    table: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(name: &'static str, pos: usize, table: &'a DeTable<'i>) -> Self {
        Table { name, pos, table }
    }

    /// Keys with their offsets, in file order.
    pub fn entries(&self) -> Vec<(Sp<&'a str>, &'a Value<'i>)> {
        let mut v: Vec<_> = self
            .table
            .iter()
            .map(|(k, v)| (Sp::new(k.get_ref().as_ref(), k.span().start), v))
            .collect();
        v.sort_by_key(|(k, _)| k.pos);
        v
    }

    pub fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// Offset of `key` itself (not its value).
    pub fn key_pos(&self, key: &str) -> Option<usize> {
        self.table.get_key_value(key).map(|(k, _)| k.span().start)
    }

    /// Reports every key not in `valid`. `hint` may add advice for a key
    /// (e.g. a top-level key written below a table header).
    pub fn reject_unknown(
        &self,
        r: &mut Report,
        valid: &[&str],
        hint: impl Fn(&str) -> Option<String>,
    ) {
        for (key, _) in self.entries() {
            if valid.contains(&key.val) {
                continue;
            }
            let mut help = String::new();
            if let Some(h) = hint(key.val) {
                help.push_str(&h);
                help.push_str("; ");
            } else if let Some(s) = suggest(key.val, valid.iter().copied()) {
                help.push_str(&format!("did you mean `{s}`? "));
            }
            help.push_str(&format!(
                "valid keys in {} are: {}",
                self.name,
                valid.join(", ")
            ));
            r.error(
                key.pos,
                format!("unknown key `{}` in {}", units::shown(key.val), self.name),
                help,
            );
        }
    }

    pub fn string(&self, r: &mut Report, key: &str) -> Got<String> {
        match self.get(key) {
            None => Got::Absent,
            Some(v) => as_string(r, v, key).map_or(Got::Invalid, Got::Ok),
        }
    }

    pub fn boolean(&self, r: &mut Report, key: &str) -> Got<bool> {
        let Some(v) = self.get(key) else {
            return Got::Absent;
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Got::Ok(Sp::new(*b, v.span().start)),
            other => {
                type_error(
                    r,
                    v,
                    key,
                    "a boolean",
                    format!("write `{key} = true` or `{key} = false`"),
                    other,
                );
                Got::Invalid
            }
        }
    }

    /// An integer within `range`.
    pub fn int(&self, r: &mut Report, key: &str, range: RangeInclusive<u64>) -> Got<u64> {
        let Some(v) = self.get(key) else {
            return Got::Absent;
        };
        as_int(r, v, key, range).map_or(Got::Invalid, Got::Ok)
    }

    /// A duration string, or an integer number of seconds.
    pub fn duration(&self, r: &mut Report, key: &str) -> Got<Duration> {
        let Some(v) = self.get(key) else {
            return Got::Absent;
        };
        let pos = v.span().start;
        match v.get_ref() {
            DeValue::String(s) => match units::parse_duration(s) {
                Ok(d) => Got::Ok(Sp::new(d, pos)),
                Err(e) => {
                    r.error(pos, format!("`{key}`: {}", e.message), e.help);
                    Got::Invalid
                }
            },
            DeValue::Integer(_) => {
                let max = units::MAX_DURATION.as_secs();
                match as_int(r, v, key, 0..=max) {
                    Some(secs) => match units::seconds(secs.val) {
                        Ok(d) => Got::Ok(Sp::new(d, pos)),
                        Err(e) => {
                            r.error(pos, format!("`{key}`: {}", e.message), e.help);
                            Got::Invalid
                        }
                    },
                    None => Got::Invalid,
                }
            }
            DeValue::Float(f) => {
                r.error(
                    pos,
                    format!(
                        "`{key}` must be a duration string, found the float {}",
                        units::shown(f.as_str())
                    ),
                    units::float_duration_help(key, f.as_str()),
                );
                Got::Invalid
            }
            other => {
                type_error(r, v, key, "a duration", DURATION_HELP, other);
                Got::Invalid
            }
        }
    }

    /// A size string, or an integer number of bytes.
    pub fn size(&self, r: &mut Report, key: &str) -> Got<u64> {
        let Some(v) = self.get(key) else {
            return Got::Absent;
        };
        let pos = v.span().start;
        match v.get_ref() {
            DeValue::String(s) => match units::parse_size(s) {
                Ok(n) => Got::Ok(Sp::new(n, pos)),
                Err(e) => {
                    r.error(pos, format!("`{key}`: {}", e.message), e.help);
                    Got::Invalid
                }
            },
            DeValue::Integer(_) => as_int(r, v, key, 0..=u64::MAX).map_or(Got::Invalid, Got::Ok),
            other => {
                type_error(r, v, key, "a size", SIZE_HELP, other);
                Got::Invalid
            }
        }
    }

    /// A string that must be one of `choices` (name, value).
    pub fn choice<T: Copy>(&self, r: &mut Report, key: &str, choices: &[(&str, T)]) -> Got<T> {
        let Some(s) = self.string(r, key).ok() else {
            return if self.get(key).is_some() {
                Got::Invalid
            } else {
                Got::Absent
            };
        };
        match choices.iter().find(|(name, _)| *name == s.val) {
            Some((_, v)) => Got::Ok(Sp::new(*v, s.pos)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                r.error(
                    s.pos,
                    format!("unknown {key} \"{}\"", units::shown(&s.val)),
                    one_of(&s.val, &names),
                );
                Got::Invalid
            }
        }
    }

    /// A sub-table (`[guest]` or `guest = { ... }`).
    pub fn table(&self, r: &mut Report, key: &str, name: &'static str) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(name, v.span().start, t)),
            DeValue::Array(_) => {
                r.error(
                    v.span().start,
                    format!("`{key}` must be a single table, not an array"),
                    format!("write the header as {name}, with single brackets"),
                );
                None
            }
            other => {
                type_error(r, v, key, "a table", format!("write a {name} table"), other);
                None
            }
        }
    }

    /// An array of tables (`[[map]]`); each bad element is reported.
    pub fn array_of_tables(
        &self,
        r: &mut Report,
        key: &str,
        name: &'static str,
    ) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(t) => Some(Table::new(name, item.span().start, t)),
                    other => {
                        type_error(
                            r,
                            item,
                            key,
                            "a table",
                            format!("write each entry as a {name} table"),
                            other,
                        );
                        None
                    }
                })
                .collect(),
            DeValue::Table(_) => {
                r.error(
                    v.span().start,
                    format!("`{key}` must be an array of tables"),
                    format!("write the header as {name}, with double brackets"),
                );
                Vec::new()
            }
            other => {
                type_error(
                    r,
                    v,
                    key,
                    "an array of tables",
                    format!("write {name} tables"),
                    other,
                );
                Vec::new()
            }
        }
    }
}

/// "a string", "an integer", ... for messages.
pub fn describe(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub fn type_error(
    r: &mut Report,
    v: &Value,
    key: &str,
    expected: &str,
    help: impl std::fmt::Display,
    found: &DeValue,
) {
    r.error(
        v.span().start,
        format!("`{key}` must be {expected}, found {}", describe(found)),
        help,
    );
}

pub fn as_string(r: &mut Report, v: &Value, key: &str) -> Option<Sp<String>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Sp::new(s.to_string(), v.span().start)),
        other => {
            type_error(
                r,
                v,
                key,
                "a string",
                "put the value in double quotes",
                other,
            );
            None
        }
    }
}

/// An integer within `range`; a quoted number gets a "remove the quotes" hint.
pub fn as_int(r: &mut Report, v: &Value, key: &str, range: RangeInclusive<u64>) -> Option<Sp<u64>> {
    let pos = v.span().start;
    let valid = format!(
        "`{key}` takes a whole number from {} to {}",
        range.start(),
        range.end()
    );
    match v.get_ref() {
        DeValue::Integer(i) => {
            let n = i128::from_str_radix(i.as_str(), i.radix()).ok();
            match n
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| range.contains(n))
            {
                Some(n) => Some(Sp::new(n, pos)),
                None => {
                    r.error(
                        pos,
                        format!("`{key}` is out of range: {}", units::shown(&i.to_string())),
                        valid,
                    );
                    None
                }
            }
        }
        DeValue::String(s) if s.trim().parse::<u64>().is_ok() => {
            // Suggest the unquoted number only when it would be valid.
            let help = match s.trim().parse::<u64>() {
                Ok(n) if range.contains(&n) => format!("remove the quotes: `{key} = {n}`"),
                _ => format!("write an integer without quotes; {valid}"),
            };
            r.error(
                pos,
                format!("`{key}` must be an integer, found a string"),
                help,
            );
            None
        }
        other => {
            type_error(r, v, key, "an integer", valid, other);
            None
        }
    }
}

/// Help text "valid: a, b, c" with a "did you mean" when one is close.
pub fn one_of(got: &str, names: &[&str]) -> String {
    match suggest(got, names.iter().copied()) {
        Some(s) => format!(
            "did you mean \"{s}\"? valid values are: {}",
            names.join(", ")
        ),
        None => format!("valid values are: {}", names.join(", ")),
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let len = word.chars().count();
    let limit = (len / 3).max(1);
    // The distance is at least the difference in length: a long word (a
    // mutated file's multi-megabyte key) is compared with nothing.
    candidates
        .into_iter()
        .filter(|c| len.abs_diff(c.chars().count()) <= limit && len <= 4 * units::SHOWN_CHARS)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters where an insertion, deletion,
/// substitution or swap of two neighbours costs 1 ("optimal string alignment").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("flaky", "flakey"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("sise", ["name", "size", "groups"]), Some("size"));
        assert_eq!(
            suggest("flaky", ["fail", "delay", "flakey", "restore"]),
            Some("flakey")
        );
        assert_eq!(suggest("zzzzzz", ["name", "size"]), None);
    }
}
