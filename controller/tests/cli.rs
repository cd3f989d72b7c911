//! The command line without a guest: bad input is exit 2 with file:line:column and creates
//! nothing; `check` validates the suite's scenarios; `cleanup` finds nothing on a clean machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pathrig(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathrig"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pathrig")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pathrig-clitest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const BAD: &str = r#"name = "bad"

[[map]]
name = "mpatha"

[[leg]]
name = "a"

[[fault]]
at = "3x"
leg = "b"
kind = "fail"

[workload]
duration = "10s"
"#;

#[test]
fn bad_input_names_file_line_and_column_and_creates_nothing() {
    let dir = scratch("bad");
    std::fs::write(dir.join("bad.toml"), BAD).unwrap();
    for args in [
        &["check", "bad.toml"][..],
        &["run", "bad.toml"][..],
        &["run", "bad.toml", "--out", "out"][..],
    ] {
        let out = pathrig(args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("bad.toml:10:6: error:"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("bad.toml:11:7: error:"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("help:"), "{stderr}");
    }
    let mut left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["bad.toml"], "a run with bad input created files");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_bad_input() {
    let dir = scratch("missing");
    let out = pathrig(&["check", "nope.toml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_suite_scenarios_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = pathrig(&args, &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with(")") && l.contains(": ok ("))
            .count(),
        files.len()
    );
}

#[test]
fn guest_none_is_never_the_default() {
    // Without --guest none, pathrig never touches this machine's devices: `run --help` says so.
    let dir = scratch("help");
    let out = pathrig(&["run", "--help"], &dir);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: uml]"), "{help}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_readme_scenario_reference_is_a_valid_scenario() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("## Scenario reference")
        .nth(1)
        .expect("README has a scenario reference");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a toml block");
    let dir = scratch("readme");
    std::fs::write(dir.join("reference.toml"), block).unwrap();
    let out = pathrig(&["check", "reference.toml"], &dir);
    assert!(
        out.status.success(),
        "the README's example does not validate:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO, a device and a file that is not UTF-8 are refused at once, with a place.
#[test]
fn check_reads_only_regular_utf8_files() {
    let dir = scratch("special");
    let fifo = dir.join("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, b"name = \"x\"\n\n  # caf\xe9\n").unwrap();
    let started = std::time::Instant::now();
    let out = pathrig(
        &[
            "check",
            fifo.to_str().unwrap(),
            "/dev/zero",
            bad.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fifo.toml:0:0: error: cannot read scenario file: it is a FIFO"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/dev/zero:0:0: error: cannot read scenario file: it is a device"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.toml:3:8: error: the file is not valid UTF-8 (byte offset 19)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run directory a live run owns (its marker's lock held) is refused, and nothing in it is
/// touched; once the owner is gone it is taken.
#[test]
fn a_live_run_directory_is_refused() {
    let dir = scratch("busy");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("report.txt"), "the live run's report").unwrap();
    let (claim, _) = rig::ownership::Claim::take(&run_dir, rig::ownership::Kind::Run).unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-tests/scenarios/healthy.toml");
    let out = pathrig(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by a live pathrig run (pid "),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("report.txt")).unwrap(),
        "the live run's report"
    );
    drop(claim);
    std::fs::remove_dir_all(&dir).unwrap();
}
