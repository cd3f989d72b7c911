//! report.html in a real browser, and `pathrig report`, from a recorded report.json (the
//! failback-followover scenario, run once in a guest: three paths, trespasses, real failures,
//! manager actions). Needs Debian's `chromium` (scripts/setup installs it); without it the test
//! fails with the install command, unless `PATHRIG_SKIP_BROWSER=1` opts out.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/failback-followover.report.json"
);
const FIXTURE_TXT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/failback-followover.report.txt"
);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pathrig-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser, or `None` when the caller opted out with `PATHRIG_SKIP_BROWSER=1`.
fn chromium() -> Option<PathBuf> {
    if std::env::var_os("PATHRIG_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("PATHRIG_SKIP_BROWSER=1: the browser test is skipped");
        return None;
    }
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    panic!(
        "the report.html test needs Chromium: install it with `sudo apt-get install -y chromium` \
         (or run scripts/setup), or opt out with PATHRIG_SKIP_BROWSER=1"
    );
}

/// What the browser made of a page: the DOM after its scripts ran, and every console message.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

fn load(browser: &Path, page: &Path) -> Loaded {
    // One profile per page: tests run in parallel and Chromium locks its profile.
    let profile = page.with_file_name("profile");
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{stderr}",
        output.status
    );
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

/// The page loaded cleanly: no console message, the page's own script ran to its end and saw
/// no error.
fn assert_clean(loaded: &Loaded) {
    assert!(
        loaded.console.is_empty(),
        "console messages:\n{}",
        loaded.console.join("\n")
    );
    assert!(
        loaded.dom.contains("data-ready=\"1\""),
        "the page's script did not finish"
    );
    assert!(!loaded.dom.contains("data-errors="), "script errors");
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn report_html_loads_in_chromium_with_lanes_faults_and_actions() {
    let Some(browser) = chromium() else {
        return;
    };
    let report = controller::commands::read_report(Path::new(FIXTURE)).unwrap();
    let dir = scratch("page");
    let page = dir.join("report.html");
    std::fs::write(&page, controller::report::html::render(&report)).unwrap();
    let loaded = load(&browser, &page);
    assert_clean(&loaded);
    let dom = &loaded.dom;
    // A lane per path, which the page's script counted too.
    for leg in ["a1", "a2", "b"] {
        assert!(
            dom.contains(&format!("<g class=\"lane\" data-leg=\"{leg}\">")),
            "no lane for {leg}"
        );
    }
    assert!(dom.contains("data-lanes=\"3\""));
    // The fault windows: a1 trespass, fail, (restore ends it); a2 trespass, fail with a window.
    assert_eq!(count(dom, "class=\"fault\" data-leg=\"a1\""), 2);
    assert_eq!(count(dom, "class=\"fault\" data-leg=\"a2\""), 2);
    assert_eq!(count(dom, "class=\"fault\" data-leg=\"b\""), 0);
    // Every manager action, with its reason on hover.
    let actions = report
        .events
        .iter()
        .filter(|e| matches!(e.kind, controller::events::EventKind::Manager { .. }))
        .count();
    assert!(actions >= 6, "{actions} actions in the fixture");
    assert_eq!(count(dom, "<g class=\"action\""), actions);
    assert!(dom.contains(
        "switch_group 1: failback followover: path a1 came back and every other path of group 1"
    ));
    // The kernel's states: a1 and a2 were failed twice each.
    assert_eq!(count(dom, "class=\"kernel failed\""), 4);
    // Per-path IO and the workload's series.
    assert_eq!(count(dom, "data-series=\"io\""), 4);
    assert!(dom.contains("data-series=\"p99\"") && dom.contains("data-series=\"errors\""));
    assert!(dom.contains("id=\"verdict\">verdict: pass<"));
    // Self-contained: nothing to fetch.
    let html = std::fs::read_to_string(&page).unwrap();
    for remote in ["http://", "https://", "src=\"", "<link"] {
        assert!(
            !html
                .replace("http://www.w3.org/2000/svg", "")
                .contains(remote),
            "{remote}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checks above can fail: a page whose script breaks is caught.
#[test]
fn a_broken_page_is_caught() {
    let Some(browser) = chromium() else {
        return;
    };
    let report = controller::commands::read_report(Path::new(FIXTURE)).unwrap();
    let html = controller::report::html::render(&report).replace(
        "body.dataset.ready = '1';",
        "undefinedFunction(); body.dataset.ready = '1';",
    );
    let dir = scratch("broken");
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let loaded = load(&browser, &page);
    assert!(
        loaded
            .console
            .iter()
            .any(|l| l.contains("undefinedFunction is not defined")),
        "{:?}",
        loaded.console
    );
    assert!(!loaded.dom.contains("data-ready=\"1\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pathrig report RUN_DIR` renders report.txt (as the run wrote it) and report.html again from
/// report.json, and the report model reads report.json back without loss.
#[test]
fn pathrig_report_re_renders_from_report_json() {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let report = controller::commands::read_report(Path::new(FIXTURE)).unwrap();
    let again = controller::report::json::render(&report).unwrap();
    if again != text {
        let out = std::env::temp_dir().join("pathrig-html-roundtrip.json");
        std::fs::write(&out, &again).unwrap();
        panic!(
            "report.json read back and written again differs: see {}",
            out.display()
        );
    }

    let dir = scratch("rerender");
    std::fs::copy(FIXTURE, dir.join("report.json")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_pathrig"))
        .arg("report")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("report.txt")).unwrap(),
        std::fs::read_to_string(FIXTURE_TXT).unwrap()
    );
    assert!(std::fs::read_to_string(dir.join("report.html"))
        .unwrap()
        .starts_with("<!DOCTYPE html>"));

    // Not a report: a clear error with the position, exit 2.
    std::fs::write(dir.join("report.json"), "{\"scenario\": 3}").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pathrig"))
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("report.json:1:") && stderr.contains("not a pathrig report.json"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
