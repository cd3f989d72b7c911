//! Robustness of the scenario reader against arbitrary and mutated input.
//!
//! Every real scenario in `vm-tests/scenarios/` is mutated (bytes replaced, inserted, deleted,
//! numbers swapped for extreme ones, control characters and deep nesting spliced in) and fed to
//! the parser, along with wholly random text. Whatever comes in, parsing must not panic, must
//! answer within a bounded time, and must give either a scenario or errors located at line ≥ 1,
//! column ≥ 1 whose messages hold no raw control character and stay short.
//!
//! The budget is small by default (CI); `just fuzz` raises it with `PROPTEST_CASES`.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// The slowest one case may be, even on a loaded machine (a 1 MiB input takes well under a
/// second in a release build; a debug build is several times slower).
const CASE_LIMIT: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(10)
} else {
    Duration::from_secs(2)
};
/// The longest message or help line a diagnostic may carry (characters, escapes included).
const MESSAGE_LIMIT: usize = 1200;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(texts.len() >= 10, "the scenario corpus is missing");
    texts
}

/// Text a mutation may splice in: extreme numbers, floats that are no durations, control
/// characters, deep nesting, long keys.
const SPLICES: &[&str] = &[
    "4611686018427387904",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "0",
    "-1",
    "nan",
    "inf",
    "-0.0",
    "3e9",
    "1.5",
    "\"8761h\"",
    "\"99999999999999999999h\"",
    "\"0.0000000001s\"",
    "\"1.2.3\"",
    "\"\u{1b}[31m\"",
    "\"a\\nb\\r\\u001b\"",
    "\n[[fault]]\n",
    "\n[manager]\n",
    "\n[guest]\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{a={a={a={a={a={a={a={a={a={a={a={a={a=1}}}}}}}}}}}}}",
    "\u{0}",
    "\r",
    "'''",
    "\"\"\"",
    "é",
    "\u{202e}",
];

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Splice(usize, usize),
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 0..SPLICES.len()).prop_map(|(i, s)| Mutation::Splice(i, s)),
        (any::<usize>(), 1usize..20, 2usize..2000).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *m {
        Mutation::Replace(i, b) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[i % n] = b;
        }
        Mutation::Replace(..) => {}
        Mutation::Insert(i, b) => {
            let p = at(i, bytes.len());
            bytes.insert(p, b);
        }
        Mutation::Delete(i, n) => {
            let p = at(i, bytes.len());
            let end = (p + n).min(bytes.len());
            bytes.drain(p..end);
        }
        Mutation::Splice(i, s) => {
            // Replace the number or word at a place, or insert, with an extreme value.
            let p = at(i, bytes.len());
            let end = bytes[p..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric() && *b != b'.')
                .map_or(bytes.len(), |k| p + k);
            bytes.splice(p..end, SPLICES[s].bytes());
        }
        Mutation::Repeat(i, n, k) => {
            // A stretch repeated many times: long keys, long strings, deep nesting.
            let p = at(i, bytes.len());
            let end = (p + n).min(bytes.len());
            let piece = bytes[p..end].to_vec();
            let mut grown = Vec::with_capacity(piece.len() * k);
            for _ in 0..k {
                grown.extend_from_slice(&piece);
            }
            bytes.splice(p..end, grown);
        }
    }
}

fn check_one(text: &str) -> Result<(), String> {
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| faults::parse(Path::new("fuzz.toml"), text));
    let took = started.elapsed();
    let Ok(result) = result else {
        return Err("the parser panicked".into());
    };
    if took > CASE_LIMIT {
        return Err(format!("parsing took {took:?}"));
    }
    if let Err(diags) = result {
        if diags.is_empty() {
            return Err("an error without a diagnostic".into());
        }
        for d in &diags {
            if d.line < 1 || d.column < 1 {
                return Err(format!("not located: {d}"));
            }
            for part in std::iter::once(&d.message).chain(d.help.as_ref()) {
                if part.chars().any(char::is_control) {
                    return Err(format!("raw control character in {part:?}"));
                }
                if part.chars().count() > MESSAGE_LIMIT {
                    return Err(format!("message of {} characters", part.chars().count()));
                }
            }
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides this (`just fuzz`).
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_scenarios_parse_or_give_located_errors(
        which in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[which % corpus.len()].clone().into_bytes();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(why) = check_one(&text) {
            prop_assert!(false, "{why}\n--- input ({} bytes) ---\n{}", text.len(),
                text.chars().take(2000).collect::<String>());
        }
    }

    #[test]
    fn arbitrary_text_parses_or_gives_located_errors(text in "(?s).{0,400}") {
        prop_assert_eq!(check_one(&text), Ok(()));
    }

    #[test]
    fn toml_shaped_text_parses_or_gives_located_errors(
        text in "([a-z_\\[\\]{}=\\.\" 0-9\n#',-]|nan|inf|ms|h|s|MiB|fault|map|leg|at|for|every|times){0,200}"
    ) {
        prop_assert_eq!(check_one(&text), Ok(()));
    }
}

/// The cases the issue's 40,000 mutations found, each once.
#[test]
fn known_bad_inputs_get_located_errors() {
    let base = "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[workload]\nduration = \"10s\"\n";
    let fault = |extra: &str| {
        format!("{base}[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"flakey\"\nup = \"1s\"\ndown = \"1s\"\n{extra}")
    };
    let cases = [
        format!("{base}[manager]\npolling_interval = 4611686018427387904\n"),
        format!("{base}[[fault]]\nat = 18446744073709551615\nleg = \"a\"\nkind = \"fail\"\n"),
        format!("{base}[[fault]]\nat = \"1s\"\nfor = 18446744073709551615\nleg = \"a\"\nkind = \"fail\"\n"),
        format!("{base}[[fault]]\nat = \"1s\"\nfor = \"1s\"\nevery = 18446744073709551615\ntimes = 2\nleg = \"a\"\nkind = \"fail\"\n"),
        format!("{base}[[fault]]\nat = 4611686018427387904\nleg = \"a\"\nkind = \"fail\"\n"),
        fault("").replace("down = \"1s\"", "down = 4294967296"),
        fault("").replace("up = \"1s\"", "up = \"99999999h\""),
        format!("{base}[[fault]]\nat = nan\nleg = \"a\"\nkind = \"fail\"\n"),
        format!("{base}{} = 1\n", "k".repeat(500_000)),
        format!("[{}]\n", vec!["a"; 100_000].join(".")),
        format!("name = \"{}\"\n", "x\\n\\u001b".repeat(100_000)),
    ];
    for (i, text) in cases.iter().enumerate() {
        if let Err(why) = check_one(text) {
            panic!("case {i}: {why}");
        }
        assert!(
            faults::parse(Path::new("f.toml"), text).is_err(),
            "case {i} was accepted"
        );
    }
}
