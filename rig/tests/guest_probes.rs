//! Tests that run rig code inside a throw-away guest (see `rig::guest::probe`). This binary is
//! both the test runner on the host and, booted as a guest's init, the probe. Set
//! `PATHRIG_SKIP_VM=1` to skip them; `PATHRIG_PROBE_ONLY=NAME` runs one.

use std::time::Duration;

use rig::guest::init::GuestEnv;
use rig::guest::probe::{self, ProbeFn};

#[path = "probes/multipathd.rs"]
mod multipathd;
#[path = "probes/scsi_debug.rs"]
mod scsi_debug;
#[path = "probes/scsi_watch.rs"]
mod scsi_watch;
#[path = "probes/tur.rs"]
mod tur;
#[path = "probes/tur_alua.rs"]
mod tur_alua;

/// Every probe: (name, what runs in the guest, what the host then checks).
type HostCheck = fn(&serde_json::Value) -> Result<(), String>;
const PROBES: &[(&str, ProbeFn, HostCheck)] = &[
    ("guest-basics", guest_basics, check_guest_basics),
    ("tur-checker", tur::tur_checker, tur::check_tur_checker),
    ("tur-alua", tur_alua::tur_alua, tur_alua::check_tur_alua),
    (
        "scsi-watch",
        scsi_watch::scsi_watch,
        scsi_watch::check_scsi_watch,
    ),
    (
        "scsi-array-basics",
        scsi_array::basics,
        scsi_array::check_basics,
    ),
    (
        "scsi-array-check-condition",
        scsi_array::check_condition,
        scsi_array::check_check_condition,
    ),
    (
        "scsi-array-freeze",
        scsi_array::freeze,
        scsi_array::check_freeze,
    ),
    (
        "scsi-array-port-offline",
        scsi_array::port_offline,
        scsi_array::check_port_offline,
    ),
    (
        "scsi-array-throughput",
        scsi_array::throughput,
        scsi_array::check_throughput,
    ),
    (
        "scsi-array-cleanup",
        scsi_array::cleanup,
        scsi_array::check_cleanup,
    ),
    (
        "multipathd-offline-online",
        multipathd::multipathd_offline_online,
        multipathd::check_multipathd_offline_online,
    ),
    (
        "scsi-array-alua-groups",
        scsi_alua::groups,
        scsi_alua::check_groups,
    ),
    (
        "scsi-array-alua-explicit",
        scsi_alua::explicit,
        scsi_alua::check_explicit,
    ),
    (
        "scsi-array-alua-trespass",
        scsi_alua::trespass,
        scsi_alua::check_trespass,
    ),
    (
        "scsi-array-alua-dm",
        scsi_alua::dm_without_handler,
        scsi_alua::check_dm_without_handler,
    ),
];

#[path = "probes/scsi_alua.rs"]
mod scsi_alua;

#[path = "probes/scsi_array.rs"]
mod scsi_array;

/// What the host prepares before a probe's guest boots: environment for the guest.
fn host_prepare(name: &str) -> Result<Vec<(&'static str, String)>, String> {
    let mut env = Vec::new();
    if name.starts_with("multipathd") {
        env.extend(multipathd::prepare()?);
    }
    // Pass-through knobs for probe runs by hand.
    for key in ["PATHRIG_MPD_VERBOSITY"] {
        if let Ok(v) = std::env::var(key) {
            env.push((key, v));
        }
    }
    Ok(env)
}

/// The harness itself: the guest loads a module and reports its kernel release.
fn guest_basics(env: &GuestEnv) -> Result<serde_json::Value, String> {
    let loaded = env.modules.load(&["dm-mod"]).map_err(|e| e.to_string())?;
    let modules = std::fs::read_to_string("/proc/modules").map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "release": env.kernel_release,
        "loaded": loaded,
        "dm_mod_listed": modules.lines().any(|l| l.starts_with("dm_mod ")),
    }))
}

fn check_guest_basics(value: &serde_json::Value) -> Result<(), String> {
    if value["dm_mod_listed"] != true {
        return Err(format!(
            "dm_mod is not in the guest's /proc/modules: {value}"
        ));
    }
    if !value["release"]
        .as_str()
        .unwrap_or_default()
        .contains("6.1")
    {
        return Err(format!("unexpected guest kernel: {value}"));
    }
    Ok(())
}

fn main() {
    let guest_side: Vec<(&str, ProbeFn)> = PROBES.iter().map(|(n, f, _)| (*n, *f)).collect();
    probe::serve(&guest_side);
    if std::env::var_os("PATHRIG_SKIP_VM").is_some() {
        println!("guest probes skipped (PATHRIG_SKIP_VM is set)");
        return;
    }
    // `cargo test` passes libtest's arguments; a bare word filters probes by name.
    let filter: Option<String> = std::env::var("PATHRIG_PROBE_ONLY")
        .ok()
        .or_else(|| std::env::args().skip(1).find(|a| !a.starts_with('-')));
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, _, check) in PROBES {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let outcome = host_prepare(name)
            .and_then(|env| {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                probe::run(name, 512, Duration::from_secs(300), &env)
            })
            .and_then(|v| check(&v));
        match outcome {
            Ok(()) => {
                println!("probe {name} ... ok");
                passed += 1;
            }
            Err(err) => {
                println!("probe {name} ... FAILED\n  {err}");
                failed.push(*name);
            }
        }
    }
    println!(
        "test result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
