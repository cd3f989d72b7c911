//! report.json: the whole report model, exact, for tools and for questions report.txt leaves open.

use super::Report;

/// report.json's text (pretty-printed, ending in a newline).
pub fn render(report: &Report) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}
