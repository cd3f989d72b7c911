//! Units written in scenario files: durations ("250ms", "1.5s", "2m", "1h")
//! and byte sizes ("64MiB", "4KiB", "512").
//!
//! Pure string parsing and formatting. Errors carry a message and a help
//! line; the caller attaches the position. Every duration is at most
//! [`MAX_DURATION`], so sums of a few of them never overflow; [`shown`] is how
//! a user's text is quoted back in a message.

use std::time::Duration;

/// The longest duration a scenario may write anywhere (one year: 8760 h).
/// Larger values are errors, never truncated, and keep every sum of a few
/// durations (`at + every × times`) far inside `Duration`'s range.
pub const MAX_DURATION: Duration = Duration::from_secs(8760 * 3600);

/// How many characters of a user's text a message quotes back.
pub const SHOWN_CHARS: usize = 64;

/// A user's text as a message shows it: control characters escaped (`\n`,
/// `\r`, `\t`, `\x1b`, ...), quotes and backslashes escaped, and cut after
/// [`SHOWN_CHARS`] characters with "…".
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// The longest message or help line a diagnostic carries, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;

/// A message as it is shown: no control character reaches the terminal raw
/// (a user's text quoted in a message may hold newlines or escape
/// sequences), and no message is longer than [`MAX_MESSAGE_CHARS`].
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_CHARS));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A bare integer number of seconds as a duration, within [`MAX_DURATION`].
pub fn seconds(n: u64) -> Result<Duration, UnitError> {
    if n > MAX_DURATION.as_secs() {
        return Err(too_long_error(&n.to_string()));
    }
    Ok(Duration::from_secs(n))
}

fn too_long_error(written: &str) -> UnitError {
    unit_error(
        format!(
            "duration {} is longer than the limit of {}",
            shown(written),
            format_duration(MAX_DURATION)
        ),
        format!(
            "a duration is at most {} ({} seconds); write e.g. \"10s\" or \"2h\"",
            format_duration(MAX_DURATION),
            MAX_DURATION.as_secs()
        ),
    )
}

/// Help text naming every accepted duration form.
pub const DURATION_HELP: &str =
    "write a duration as a string like \"250ms\", \"3s\", \"1.5s\", \"2m\" or \"1h\" (a bare integer means seconds)";

/// Help text naming every accepted size form.
pub const SIZE_HELP: &str =
    "write a size like \"64MiB\", \"4KiB\", \"1GiB\" or \"512\" (K/M/G mean KiB/MiB/GiB; a bare integer means bytes)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub message: String,
    pub help: String,
}

fn unit_error(message: String, help: impl Into<String>) -> UnitError {
    UnitError {
        message,
        help: help.into(),
    }
}

/// Splits "12.5 ms" into ("12.5", "ms"): the leading digits and dots, and the
/// rest with surrounding spaces removed.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// Parses "250ms", "3s", "1.5s", "2m", "1h". A fraction is allowed with any
/// unit as long as the result is a whole number of nanoseconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    let bad = |what: &str| {
        unit_error(
            format!("invalid duration \"{}\": {what}", shown(text)),
            DURATION_HELP,
        )
    };
    if s.starts_with('-') {
        return Err(bad("durations cannot be negative"));
    }
    let (number, unit) = split_number(s);
    if number.is_empty() {
        return Err(bad("it does not start with a number"));
    }
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(bad("malformed number"));
    }
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => {
            // Suggest only what would be valid.
            let valid = |unit: &str| parse_duration(&format!("{number}{unit}")).is_ok();
            let as_seconds =
                frac.is_empty() && number.parse().ok().is_some_and(|n| seconds(n).is_ok());
            let help = match (valid("s"), valid("ms")) {
                (true, true) if as_seconds => format!("add a unit, e.g. \"{number}s\" or \"{number}ms\", or write the integer {number} without quotes to mean seconds"),
                (true, true) => format!("add a unit, e.g. \"{number}s\" or \"{number}ms\""),
                (false, true) => format!("add a unit, e.g. \"{number}ms\"; {DURATION_HELP}"),
                _ => DURATION_HELP.to_string(),
            };
            return Err(unit_error(
                format!("invalid duration \"{}\": it has no unit", shown(text)),
                help,
            ));
        }
        other => return Err(bad(&format!("unknown unit \"{}\"", shown(other)))),
    };
    let too_long = || too_long_error(s);
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
    if !frac.is_empty() {
        if frac.len() > 18 {
            return Err(bad("finer than a nanosecond"));
        }
        let scale = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().map_err(|_| bad("malformed number"))?;
        let part = f * unit_nanos;
        if part % scale != 0 {
            return Err(bad("finer than a nanosecond"));
        }
        nanos += part / scale;
    }
    if nanos > MAX_DURATION.as_nanos() {
        return Err(too_long());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A float written where a duration belongs: the help suggests the same
/// number as a duration string only when that string is valid.
pub fn float_duration_help(key: &str, float: &str) -> String {
    let candidate = format!("{}s", float.trim());
    match parse_duration(&candidate) {
        Ok(_) => format!("write `{key} = \"{candidate}\"`; {DURATION_HELP}"),
        Err(_) => DURATION_HELP.to_string(),
    }
}

/// Formats a duration the way a user would write it: "250ms", "12s", "1.5s",
/// "2m", "1h". Used in messages.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;
    if nanos == 0 {
        return "0s".into();
    }
    if nanos % (3600 * S) == 0 {
        return format!("{}h", nanos / (3600 * S));
    }
    if nanos % (60 * S) == 0 {
        return format!("{}m", nanos / (60 * S));
    }
    if nanos % S == 0 {
        return format!("{}s", nanos / S);
    }
    if nanos >= S && nanos % MS == 0 {
        let ms = nanos / MS;
        let frac = format!("{:03}", ms % 1000);
        return format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'));
    }
    if nanos % MS == 0 {
        return format!("{}ms", nanos / MS);
    }
    if nanos % 1_000 == 0 {
        return format!("{}us", nanos / 1_000);
    }
    format!("{nanos}ns")
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Parses "64MiB", "4KiB", "1GiB", "64M", "512", "512B". Units are binary;
/// decimal units ("MB") are rejected rather than guessed.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let s = text.trim();
    let bad = |what: &str| {
        unit_error(
            format!("invalid size \"{}\": {what}", shown(text)),
            SIZE_HELP,
        )
    };
    if s.starts_with('-') {
        return Err(bad("sizes cannot be negative"));
    }
    let (number, unit) = split_number(s);
    if number.is_empty() {
        return Err(bad("it does not start with a number"));
    }
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "kb" | "mb" | "gb" => {
            let binary = format!("{}iB", &unit[..1].to_ascii_uppercase());
            return Err(unit_error(
                format!(
                    "invalid size \"{}\": decimal unit \"{unit}\" is not accepted",
                    shown(text)
                ),
                format!(
                    "use {binary} (binary units: 1 {binary} = {} bytes)",
                    match binary.as_str() {
                        "KiB" => KIB,
                        "MiB" => MIB,
                        _ => GIB,
                    }
                ),
            ));
        }
        _ => return Err(bad(&format!("unknown unit \"{}\"", shown(unit)))),
    };
    if number.contains('.') {
        return Err(unit_error(
            format!("invalid size \"{}\": sizes are whole numbers", shown(text)),
            "use a smaller unit, e.g. \"1536KiB\" instead of \"1.5MiB\"",
        ));
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| bad("too large"))
}

/// Formats a byte count with the largest binary unit that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_in_every_accepted_form() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("3s"), Ok(ms(3000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration(" 10 s "), Ok(ms(10_000)));
        assert_eq!(parse_duration("0.25m"), Ok(ms(15_000)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_name_the_accepted_forms() {
        for bad in [
            "",
            "s",
            "3x",
            "3 sec",
            "-1s",
            "1..5s",
            "1.s",
            ".5s",
            "3",
            "1e3s",
            "0.0000000001s",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(
                e.message.contains(&format!("\"{bad}\"")),
                "{bad}: {}",
                e.message
            );
            assert!(
                e.help.contains("\"250ms\"") || e.help.contains("add a unit"),
                "{bad}: {}",
                e.help
            );
        }
        let e = parse_duration("3x").unwrap_err();
        assert_eq!(e.message, "invalid duration \"3x\": unknown unit \"x\"");
        assert_eq!(e.help, DURATION_HELP);
        let e = parse_duration("3").unwrap_err();
        assert!(e.help.contains("\"3s\""), "{}", e.help);
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn durations_format_as_written() {
        assert_eq!(format_duration(ms(250)), "250ms");
        assert_eq!(format_duration(ms(12_000)), "12s");
        assert_eq!(format_duration(ms(1500)), "1.5s");
        assert_eq!(format_duration(ms(1250)), "1.25s");
        assert_eq!(format_duration(ms(90_000)), "90s");
        assert_eq!(format_duration(ms(120_000)), "2m");
        assert_eq!(format_duration(ms(3_600_000)), "1h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1500us");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn sizes_in_every_accepted_form() {
        assert_eq!(parse_size("64MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 * MIB));
        assert_eq!(parse_size("2G"), Ok(2 * GIB));
        assert_eq!(parse_size("8 mib"), Ok(8 * MIB));
    }

    #[test]
    fn decimal_and_malformed_sizes_are_rejected() {
        let e = parse_size("64MB").unwrap_err();
        assert!(e.message.contains("decimal"), "{}", e.message);
        assert!(e.help.starts_with("use MiB"), "{}", e.help);
        assert!(parse_size("4kB").unwrap_err().help.starts_with("use KiB"));
        assert!(parse_size("1GB").unwrap_err().help.starts_with("use GiB"));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-4K",
            "4TiB",
            "4 bytes",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("1.5MiB").unwrap_err().help.contains("1536KiB"));
        assert!(parse_size("17179869184G").is_err()); // overflows u64
    }

    #[test]
    fn sizes_format_with_the_largest_exact_unit() {
        assert_eq!(format_size(64 * MIB), "64MiB");
        assert_eq!(format_size(4096), "4KiB");
        assert_eq!(format_size(1536 * KIB), "1536KiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_are_capped_at_a_year_and_never_wrap() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for long in [
            "8761h",
            "525601m",
            "18446744073709551615s",
            "99999999999999999999999h",
        ] {
            let e = parse_duration(long).expect_err(long);
            assert!(
                e.message.contains("longer than the limit of 8760h"),
                "{}",
                e.message
            );
        }
        assert_eq!(seconds(31_536_000), Ok(MAX_DURATION));
        assert!(seconds(31_536_001).is_err());
        assert!(seconds(u64::MAX).is_err());
    }

    #[test]
    fn help_never_suggests_an_invalid_value() {
        assert_eq!(
            float_duration_help("at", "1.5"),
            format!("write `at = \"1.5s\"`; {DURATION_HELP}")
        );
        for f in ["nan", "inf", "-0.0", "3e9", "1E3", "-inf", "+1.5"] {
            assert_eq!(float_duration_help("at", f), DURATION_HELP, "{f}");
        }
        // "1.2.3" has no unit, but "1.2.3s" would not be valid either.
        let e = parse_duration("1.2.3").unwrap_err();
        assert!(!e.help.contains("1.2.3s"), "{}", e.help);
        let e = parse_duration("1.5").unwrap_err();
        assert!(e.help.contains("\"1.5s\"") && !e.help.contains("without quotes"));
        // Too long in seconds, fine in milliseconds; too long in both.
        let e = parse_duration("40000000").unwrap_err();
        assert!(
            e.help.starts_with("add a unit, e.g. \"40000000ms\";"),
            "{}",
            e.help
        );
        let e = parse_duration("99999999999999999").unwrap_err();
        assert_eq!(e.help, DURATION_HELP);
    }

    #[test]
    fn user_text_is_escaped_and_shortened() {
        assert_eq!(
            shown("a\nb\r\t\u{1b}[31m\"\\"),
            "a\\nb\\r\\t\\x1b[31m\\\"\\\\"
        );
        assert_eq!(shown("\u{202e}x\u{85}"), "\\u{202e}x\\u{85}");
        let long = "y".repeat(1000);
        let s = shown(&long);
        assert_eq!(s.chars().count(), SHOWN_CHARS + 1);
        assert!(s.ends_with('…'));
        let t = tidy(&format!("x\n{}", "z".repeat(5000)));
        assert!(t.starts_with("x\\nz") && t.ends_with("z…"));
        assert!(t.chars().count() <= MAX_MESSAGE_CHARS + 8);
    }
}
