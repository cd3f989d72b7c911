//! Tests of SCSI legs: `backend = "scsi"`, `[[hba]]`, the device and host knobs, and the SCSI
//! fault kinds with what they refuse.

use super::*;
use crate::scsi::{AbortPolicy, EhDeadline, ScsiKnobs, ScsiStatusCode, Sense};

/// Map "m" with SCSI legs "a" (via hba0) and "b" (no hba yet), 19 lines; [`with`] gives "b"
/// hba1 on line 20, and tests append from line 21.
const SCSI: &str = r#"name = "t"
workload = { duration = "10s" }
[[map]]
name = "m"
[[hba]]
name = "hba0"
timeout = "30s"
eh_timeout = "10s"
[[hba]]
name = "hba1"
eh_deadline = "off"
[[leg]]
name = "a"
backend = "scsi"
hba = "hba0"
timeout = "5s"
[[leg]]
name = "b"
backend = "scsi"
"#;

fn with(extra: &str) -> String {
    format!("{SCSI}hba = \"hba1\"\n{extra}")
}

#[test]
fn scsi_legs_get_their_hba_and_knobs_with_the_hbas_defaults() {
    let s = ok(&with(""));
    assert_eq!(s.hbas.len(), 2);
    assert_eq!(s.hbas[0].name, "hba0");
    assert_eq!(s.hbas[0].eh_deadline, None);
    assert_eq!(s.hbas[1].eh_deadline, Some(EhDeadline::Off));
    let a = s.legs[0].scsi.expect("a SCSI leg");
    assert_eq!(a.hba.index(), 0);
    assert_eq!(
        a.knobs,
        ScsiKnobs {
            timeout_s: Some(5),
            eh_timeout_s: Some(10),
            queue_depth: None
        },
        "the leg's timeout wins, the hba's eh_timeout fills in"
    );
    let b = s.legs[1].scsi.expect("a SCSI leg");
    assert_eq!(b.hba.index(), 1);
    assert_eq!(b.knobs, ScsiKnobs::default());
    assert!(!s.legs[0].dm_layer, "a SCSI leg's path is its sd device");
    assert_eq!(s.legs[0].backend, Backend::Scsi);
}

#[test]
fn scsi_fault_kinds_decode_with_their_defaults() {
    let s = ok(&with(
        r#"[[fault]]
at = "1s"
for = "5s"
leg = "a"
kind = "no_response"
abort = "ignore"
[[fault]]
at = "2s"
leg = "b"
kind = "check_condition"
sense = "03/11/00"
op = "read"
probability = 0.02
offset = "1MiB"
length = "4KiB"
[[fault]]
at = "2s"
for = "1s"
leg = "a"
kind = "scsi_status"
status = "task_set_full"
[[fault]]
at = "3s"
for = "1s"
leg = "a"
kind = "scsi_latency"
ms = 40
[[fault]]
at = "8s"
for = "1s"
leg = "b"
kind = "port_offline"
"#,
    ));
    assert_eq!(
        s.faults[0].kind,
        FaultKind::NoResponse {
            abort: AbortPolicy::Ignore,
            probability: Probability::ALWAYS,
            op: IoOp::Any,
            range: None
        }
    );
    assert_eq!(
        s.faults[1].kind,
        FaultKind::CheckCondition {
            sense: Sense {
                key: 3,
                asc: 0x11,
                ascq: 0
            },
            probability: Probability::new(0.02).unwrap(),
            op: IoOp::Read,
            range: Some(ByteRange {
                offset: 1 << 20,
                length: 4096
            })
        }
    );
    assert!(matches!(
        s.faults[2].kind,
        FaultKind::ScsiStatus {
            status: ScsiStatusCode::TaskSetFull,
            ..
        }
    ));
    assert_eq!(
        s.faults[3].kind,
        FaultKind::ScsiLatency {
            latency: LatencyDist::Fixed { ms: 40 },
            op: IoOp::Any
        }
    );
    assert_eq!(s.faults[4].kind, FaultKind::PortOffline);
    // no_response's abort defaults to honour; SCSI faults on one leg compose (they overlap).
    assert_eq!(s.faults[0].kind.layer(), Layer::Scsi);
    let s = ok(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"no_response\"\n",
    ));
    assert!(matches!(
        s.faults[0].kind,
        FaultKind::NoResponse {
            abort: AbortPolicy::Honour,
            ..
        }
    ));
}

#[test]
fn a_scsi_leg_without_an_hba_is_refused_with_the_fix() {
    let d = errors(SCSI);
    let e = at(&d, 17, 1, "SCSI leg \"b\" does not say which host adapter");
    assert_eq!(
        help(e),
        "add `hba = \"hba0\"` (hbas are: \"hba0\", \"hba1\")"
    );
}

#[test]
fn an_unknown_or_unused_hba_and_duplicate_names_are_refused() {
    let d = errors(&format!("{SCSI}hba = \"hba7\"\n"));
    let e = at(&d, 20, 7, "names hba \"hba7\", which does not exist");
    assert_eq!(help(e), "hbas are: \"hba0\", \"hba1\"");
    // hba1 is then used by no leg.
    at(&d, 9, 1, "hba \"hba1\" is not used by any leg");
    let d = errors(&with("[[hba]]\nname = \"hba0\"\n"));
    let e = at(&d, 22, 8, "duplicate hba name \"hba0\"");
    assert!(help(e).contains("line 5"), "{e}");
    let d = errors(&with("[[hba]]\nname = \"HBA 2\"\n"));
    at(&d, 22, 8, "invalid hba name");
}

#[test]
fn knobs_are_range_checked_and_refused_off_scsi_legs() {
    for (line, needle) in [
        (
            "timeout = \"0s\"",
            "`timeout` = 0s is not a whole number of seconds from 1s",
        ),
        (
            "timeout = \"1500ms\"",
            "`timeout` = 1.5s is not a whole number of seconds",
        ),
        (
            "eh_timeout = \"2h\"",
            "`eh_timeout` = 2h is not a whole number of seconds",
        ),
    ] {
        let d = errors(&with(&format!("{line}\n")));
        let e = at(&d, 21, line.find('=').unwrap() + 3, needle);
        assert!(help(e).contains("whole seconds"), "{e}");
    }
    let d = errors(&with("queue_depth = 2000\n"));
    at(&d, 21, 15, "2000");
    let d = errors(&SCSI.replace(
        "name = \"hba1\"\neh_deadline = \"off\"",
        "name = \"hba1\"\neh_deadline = \"soon\"",
    ));
    let e = at(
        &d,
        11,
        15,
        "`eh_deadline` = \"soon\" is neither \"off\" nor whole seconds",
    );
    assert!(help(e).contains("eh_deadline = \"5s\""));
    // A loop leg with SCSI keys.
    let d = errors(
        "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\ntimeout = \"5s\"\n\
         [workload]\nduration = \"10s\"\n",
    );
    let e = at(
        &d,
        6,
        1,
        "`timeout` is a SCSI device setting, and leg \"a\" is not a SCSI leg",
    );
    assert_eq!(
        help(e),
        "add `backend = \"scsi\"` to the leg, or remove the key"
    );
}

#[test]
fn scsi_kinds_need_a_scsi_leg_and_scsi_legs_take_no_dm_kinds() {
    let d = errors(&mini(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"port_offline\"\n",
    ));
    let e = at(
        &d,
        13,
        8,
        "a port_offline fault on leg \"a\", whose backend is \"loop\"",
    );
    assert!(help(e).contains("set `backend = \"scsi\"`"), "{e}");
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"fail\"\n",
    ));
    at(
        &d,
        24,
        8,
        "a fail fault on leg \"a\", which has no dm layer",
    );
    let d = errors(&with("dm_layer = true\n"));
    let e = at(&d, 21, 12, "SCSI leg \"b\" cannot have a dm layer");
    assert!(help(e).contains("its sd device"), "{e}");
}

#[test]
fn sense_data_and_status_are_checked_with_the_fix() {
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"check_condition\"\nsense = \"3/11\"\n",
    ));
    let e = at(&d, 25, 9, "`sense` = \"3/11\" is not sense data");
    assert!(help(e).contains("\"03/11/00\""), "{e}");
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"check_condition\"\n",
    ));
    at(&d, 21, 1, "kind = \"check_condition\" needs `sense`");
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"scsi_status\"\nstatus = \"tired\"\n",
    ));
    at(&d, 25, 10, "tired");
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nleg = \"a\"\nkind = \"no_response\"\nabort = \"maybe\"\n",
    ));
    at(&d, 25, 9, "maybe");
}

#[test]
fn scsi_faults_on_one_leg_may_overlap_but_not_start_with_a_restore() {
    ok(&with(
        "[[fault]]\nat = \"1s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"scsi_latency\"\nms = 10\n\
         [[fault]]\nat = \"2s\"\nfor = \"1s\"\nleg = \"a\"\nkind = \"check_condition\"\nsense = \"03/11/00\"\n\
         [[fault]]\nat = \"7s\"\nleg = \"a\"\nkind = \"restore\"\n",
    ));
    let d = errors(&with(
        "[[fault]]\nat = \"1s\"\nfor = \"5s\"\nleg = \"a\"\nkind = \"no_response\"\n\
         [[fault]]\nat = \"3s\"\nleg = \"a\"\nkind = \"restore\"\n",
    ));
    at(&d, 27, 6, "overlaps the fault on line 21");
}

#[test]
fn a_scsi_leg_of_a_mirror_map_is_refused() {
    let text = r#"name = "t"
workload = { duration = "10s" }
[[map]]
name = "m"
kind = "mirror"
[[hba]]
name = "h"
[[leg]]
name = "a"
backend = "scsi"
hba = "h"
[[leg]]
name = "b"
"#;
    let d = errors(text);
    at(&d, 8, 1, "leg \"a\" of mirror map \"m\" is a SCSI leg");
}
