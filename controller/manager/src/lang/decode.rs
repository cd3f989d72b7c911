//! First pass over the `[manager]` table: its keys, the multipath.conf text
//! it brings in (inline `conf`, or `conf_file`, read through the caller's
//! file reader), and `[manager.map.<name>]`, into a draft of settings at
//! their levels. Which map a per-map table or `multipath` entry is for, and
//! what each map ends up with, is worked out in [`super::resolve`].

use std::path::Path;

use toml::de::DeValue;

use super::keywords::{self, Level, Raw, SetAt};
use super::multipath_conf;
use crate::settings::{ManagerKind, MultipathdSpec, Origin};
use pathrig_diag::reader::{as_string, describe, suggest, type_error, Sp, Table, Value};
use pathrig_diag::Report;

/// Reads a file named in the scenario (`conf_file`); `None` for a parse that reads nothing (the scenario language's `faults::parse`).
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// The keys of `[manager]` that are not multipath.conf keywords.
const OWN_KEYS: &[&str] = &["kind", "conf", "conf_file", "map"];

/// The keys of `[manager]` for `kind = "multipathd"` only.
const MULTIPATHD_KEYS: &[&str] = &["multipathd", "passthrough"];

/// What pathrig writes into multipathd's conf itself; a passthrough may not set them.
const WRITTEN_BY_PATHRIG: &[&str] = &[
    "alias",
    "wwid",
    "blacklist",
    "blacklist_exceptions",
    "multipaths",
];

/// What a per-map group of settings is for.
#[derive(Debug)]
pub enum Target {
    /// `[manager.map.<name>]`.
    Map(Sp<String>),
    /// A multipath.conf `multipath` entry.
    Entry {
        wwid: Option<Sp<String>>,
        alias: Option<Sp<String>>,
    },
}

#[derive(Debug)]
pub struct MapSets {
    pub pos: usize,
    pub target: Target,
    pub sets: Vec<SetAt>,
}

/// The `[manager]` table, decoded.
#[derive(Debug)]
pub struct DraftManager {
    pub kind: ManagerKind,
    /// `[manager]` keys, then the conf's `defaults`.
    pub defaults: Vec<SetAt>,
    /// The conf's `overrides`.
    pub overrides: Vec<SetAt>,
    /// `[manager.map.<name>]` tables, then the conf's `multipath` entries.
    pub maps: Vec<MapSets>,
    /// `kind = "multipathd"`: which one, and the passthrough keywords.
    pub multipathd: Option<MultipathdSpec>,
}

impl Default for DraftManager {
    fn default() -> Self {
        DraftManager {
            kind: ManagerKind::Embedded,
            defaults: Vec::new(),
            overrides: Vec::new(),
            maps: Vec::new(),
            multipathd: None,
        }
    }
}

/// Every key of `[manager]`.
pub fn manager_keys() -> Vec<&'static str> {
    let mut keys = OWN_KEYS.to_vec();
    keys.extend(keywords::KEYWORDS.iter().map(|d| d.name));
    keys.extend(MULTIPATHD_KEYS);
    keys
}

/// A TOML value as a keyword reads it.
fn raw<'v>(v: &'v Value) -> Raw<'v> {
    match v.get_ref() {
        DeValue::Integer(i) => {
            Raw::Int(i128::from_str_radix(i.as_str(), i.radix()).unwrap_or(i128::MAX))
        }
        DeValue::String(s) => Raw::Str(s),
        DeValue::Float(f) => Raw::Float(f.as_str()),
        other => Raw::Other(describe(other)),
    }
}

/// Reports a key that is not a keyword of this table.
fn unknown_key(r: &mut Report, key: &Sp<&str>, table: &str, valid: &[&str], hint: Option<&str>) {
    let list = format!("valid keys in {table} are: {}", valid.join(", "));
    if let Some((message, advice)) = keywords::unimplemented(key.val) {
        let help = match advice {
            Some(a) => format!("{a}; {list}"),
            None => list,
        };
        r.error(key.pos, message, help);
        return;
    }
    let mut help = String::new();
    if let Some(h) = hint {
        help.push_str(h);
        help.push_str("; ");
    } else if let Some(s) = suggest(key.val, valid.iter().copied()) {
        help.push_str(&format!("did you mean `{s}`? "));
    }
    help.push_str(&list);
    r.error(
        key.pos,
        format!("unknown key `{}` in {table}", key.val),
        help,
    );
}

/// Reads keyword `key` of a TOML table at `level`.
fn setting(
    r: &mut Report,
    key: &Sp<&str>,
    value: &Value,
    level: Level,
    place: &str,
    origin: Origin,
) -> Option<SetAt> {
    let def = keywords::lookup(key.val)?;
    if let Some(bad) = def.scope_error(level, place) {
        r.error(key.pos, bad.message, bad.help);
        return None;
    }
    match def.read(raw(value)) {
        Ok(val) => Some(SetAt {
            kw: def.kw,
            val,
            pos: key.pos,
            origin,
        }),
        Err(bad) => {
            r.error(value.span().start, bad.message, bad.help);
            None
        }
    }
}

/// Decodes `[manager]`; an absent table is the embedded manager with nothing set.
pub fn decode_manager(r: &mut Report, top: &Table, read: Option<ReadFile>) -> DraftManager {
    let Some(t) = top.table(r, "manager", "[manager]") else {
        return DraftManager::default();
    };
    let kind = t
        .choice(
            r,
            "kind",
            &[
                ("embedded", ManagerKind::Embedded),
                ("none", ManagerKind::None),
                ("multipathd", ManagerKind::Multipathd),
            ],
        )
        .or(ManagerKind::Embedded);
    let mut out = DraftManager {
        kind,
        ..DraftManager::default()
    };
    let valid = manager_keys();
    for (key, value) in t.entries() {
        let known = OWN_KEYS.contains(&key.val)
            || MULTIPATHD_KEYS.contains(&key.val)
            || keywords::lookup(key.val).is_some();
        if !known {
            unknown_key(r, &key, "[manager]", &valid, None);
            continue;
        }
        if key.val == "kind" {
            continue;
        }
        if MULTIPATHD_KEYS.contains(&key.val) && kind != ManagerKind::Multipathd {
            r.error(
                key.pos,
                format!("`{}` is for [manager] kind = \"multipathd\" only", key.val),
                "set kind = \"multipathd\" to run the real multipathd, or remove the key",
            );
            continue;
        }
        if kind == ManagerKind::None {
            r.error(
                key.pos,
                format!("`{}` is set, but [manager] kind = \"none\": no path manager runs, so this setting would do nothing", key.val),
                format!("remove `{}`, or remove `kind = \"none\"` to use the embedded path manager", key.val),
            );
            continue;
        }
        if OWN_KEYS.contains(&key.val) || MULTIPATHD_KEYS.contains(&key.val) {
            continue; // below
        }
        let origin = Origin::Scenario {
            line: r.line_of(key.pos),
        };
        if let Some(set) = setting(r, &key, value, Level::Defaults, "[manager]", origin) {
            out.defaults.push(set);
        }
    }
    if kind == ManagerKind::None {
        return out;
    }

    if let Some(map) = t.table(r, "map", "[manager.map]") {
        decode_map_tables(r, &map, &mut out);
    }
    if kind == ManagerKind::Multipathd {
        out.multipathd = Some(decode_multipathd(r, &t));
    }

    let conf = match (t.get("conf"), t.get("conf_file")) {
        (Some(_), Some(_)) => {
            let pos = t.key_pos("conf_file").unwrap_or(t.pos);
            r.error(
                pos,
                "[manager] has both `conf` and `conf_file`",
                "`conf` is multipath.conf text in the scenario, `conf_file` names a multipath.conf file; keep one",
            );
            None
        }
        (Some(v), None) => as_string(r, v, "conf").map(|text| {
            let start = inline_start(r.main_text(), v.span().start);
            let first = r.locate(start);
            let file = r.main_file().to_path_buf();
            let base = r.add_source(&file, text.val.clone(), first);
            multipath_conf::parse(r, &text.val, base)
        }),
        (None, Some(v)) => as_string(r, v, "conf_file").and_then(|name| conf_file(r, &name, read)),
        (None, None) => None,
    };
    if let Some(conf) = conf {
        out.defaults.extend(conf.defaults);
        out.overrides.extend(conf.overrides);
        out.maps.extend(conf.entries.into_iter().map(|e| MapSets {
            pos: e.pos,
            target: Target::Entry {
                wwid: e.wwid,
                alias: e.alias,
            },
            sets: e.sets,
        }));
    }
    out
}

/// `[manager] multipathd` (checked to be an executable file) and `[manager.passthrough]`.
fn decode_multipathd(r: &mut Report, t: &Table) -> MultipathdSpec {
    let mut spec = MultipathdSpec::default();
    if let Some(v) = t.get("multipathd") {
        if let Some(path) = as_string(r, v, "multipathd") {
            match check_executable(Path::new(&path.val)) {
                Ok(()) => spec.binary = Some(path.val.into()),
                Err(why) => r.error(
                    v.span().start,
                    format!("[manager] multipathd = {:?}: {why}", path.val),
                    "name your own multipathd executable (as the guest sees the host's files), or remove \
                     the key to use the packaged multipath-tools pathrig fetches",
                ),
            }
        }
    }
    let Some(table) = t.table(r, "passthrough", "[manager.passthrough]") else {
        return spec;
    };
    for (key, value) in table.entries() {
        let bad_name = key.val.is_empty()
            || !key
                .val
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if bad_name {
            r.error(
                key.pos,
                format!("`{}` is not a multipath.conf keyword", key.val),
                "passthrough keys are multipathd keywords: lower case letters, digits and `_`",
            );
            continue;
        }
        if keywords::lookup(key.val).is_some() {
            r.error(
                key.pos,
                format!("`{}` is a keyword pathrig reads: set it in [manager], not in [manager.passthrough]", key.val),
                "pathrig writes the keywords it knows into multipathd's conf itself, with their effective value",
            );
            continue;
        }
        if WRITTEN_BY_PATHRIG.contains(&key.val) {
            r.error(
                key.pos,
                format!("pathrig writes `{}` into multipathd's conf itself", key.val),
                "each [[map]] becomes a multipaths entry with its paths' WWID and the map's dm name as alias, \
                 and everything else is blacklisted",
            );
            continue;
        }
        let text = match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            DeValue::Boolean(b) => Some(if *b { "yes" } else { "no" }.to_string()),
            _ => None,
        };
        match text {
            Some(text) if !text.is_empty() && !text.contains(['\n', '{', '}', '#', '"']) => {
                spec.passthrough.push((key.val.to_string(), text));
            }
            _ => r.error(
                value.span().start,
                format!("passthrough `{}`: the value must be a string, number or boolean without newlines, braces, quotes or `#`", key.val),
                "write it as multipath.conf has it, e.g. find_multipaths = \"greedy\" or detect_prio = \"no\"",
            ),
        }
    }
    spec
}

/// Whether `path` is a file this user may execute.
fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable (no x permission)".into());
    }
    Ok(())
}

/// `[manager.map.<name>]` tables.
fn decode_map_tables(r: &mut Report, map: &Table, out: &mut DraftManager) {
    let valid = keywords::names_at(Level::Map);
    for (name, value) in map.entries() {
        let DeValue::Table(table) = value.get_ref() else {
            type_error(
                r,
                value,
                name.val,
                "a table",
                format!(
                    "write a [manager.map.{}] table with keywords under it",
                    name.val
                ),
                value.get_ref(),
            );
            continue;
        };
        let table = Table::new("[manager.map]", value.span().start, table);
        let place = format!("[manager.map.{}]", name.val);
        let mut sets = Vec::new();
        for (key, v) in table.entries() {
            if keywords::lookup(key.val).is_none() {
                let hint = ["wwid", "alias"].contains(&key.val).then_some(
                    "the table's name is the map's name; `wwid` and `alias` belong in the conf's multipath entries",
                );
                unknown_key(r, &key, &place, &valid, hint);
                continue;
            }
            let origin = Origin::ScenarioMap {
                line: r.line_of(key.pos),
            };
            if let Some(set) = setting(r, &key, v, Level::Map, &place, origin) {
                sets.push(set);
            }
        }
        out.maps.push(MapSets {
            pos: name.pos,
            target: Target::Map(Sp::new(name.val.to_string(), name.pos)),
            sets,
        });
    }
}

/// Reads and parses `conf_file`, relative to the scenario file's directory.
fn conf_file(
    r: &mut Report,
    name: &Sp<String>,
    read: Option<ReadFile>,
) -> Option<multipath_conf::Conf> {
    let Some(read) = read else {
        r.error(
            name.pos,
            "`conf_file` needs a file read, and faults::parse reads no files",
            "load the scenario with faults::load (or faults::parse_with), or put the multipath.conf text in `conf`",
        );
        return None;
    };
    let dir = r.main_file().parent().unwrap_or(Path::new(""));
    let path = dir.join(&name.val);
    match read(&path) {
        Ok(text) => {
            let base = r.add_source(&path, text.clone(), (1, 1));
            Some(multipath_conf::parse(r, &text, base))
        }
        Err(e) => {
            r.error(
                name.pos,
                format!("cannot read conf_file {}: {e}", path.display()),
                "`conf_file` is relative to the scenario file's directory",
            );
            None
        }
    }
}

/// Offset of the first character of a TOML string's content, given the
/// offset of its opening quote: a newline right after `"""` or `'''` is not
/// part of the content.
fn inline_start(text: &str, quote: usize) -> usize {
    let rest = &text[quote..];
    if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
        let after = &rest[3..];
        let newline = if after.starts_with("\r\n") {
            2
        } else {
            usize::from(after.starts_with('\n'))
        };
        quote + 3 + newline
    } else {
        quote + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_content_starts_after_the_quotes_and_a_first_newline() {
        let t = "conf = \"\"\"\nx\"\"\"";
        assert_eq!(inline_start(t, 7), 11);
        let t = "conf = '''x'''";
        assert_eq!(inline_start(t, 7), 10);
        let t = "conf = '''\r\nx'''";
        assert_eq!(inline_start(t, 7), 12);
        let t = "conf = \"x\"";
        assert_eq!(inline_start(t, 7), 8);
    }
}
