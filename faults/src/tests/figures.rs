//! `[expect]` figures: keyed and run-wide forms, fractional values, and their errors.

use super::*;
use crate::figures::{Figure, FigureTarget};

const BASE: &str = "name = \"t\"\n[[map]]\nname = \"m\"\n[[leg]]\nname = \"a\"\n[[leg]]\nname = \"b\"\n[workload]\nduration = \"1s\"\n[expect]\n";

#[test]
fn figures_decode_keyed_and_run_wide() {
    let s = ok(&format!(
        "{BASE}detection_ms.a = \"< 2000\"\ngroup_switches = 2\nno_path_ms.m = \"== 0\"\n\
         first_error_ms = \"> 4000\"\nio_share.b = \"> 0.9\"\napp_errors = 0\n"
    ));
    let f = &s.expect.figures;
    assert_eq!(f.len(), 5);
    assert_eq!(f[0].figure, Figure::DetectionMs);
    assert_eq!(f[0].key, Some(FigureTarget::Leg(s.leg_id("a").unwrap())));
    assert_eq!(f[0].key_name(&s), Some("a"));
    assert_eq!((f[0].cmp, f[0].value), (Cmp::Lt, 2000.0));
    assert_eq!((f[1].figure, f[1].key), (Figure::GroupSwitches, None));
    assert_eq!((f[1].cmp, f[1].value), (Cmp::Eq, 2.0));
    assert_eq!(f[2].key, Some(FigureTarget::Map(s.map_id("m").unwrap())));
    assert_eq!(f[4].key_name(&s), Some("b"));
    assert_eq!((f[4].cmp, f[4].value), (Cmp::Gt, 0.9));
    assert_eq!(f[4].display(&s).to_string(), "io_share.b > 0.9");
    // The flat metrics are untouched.
    assert_eq!(s.expect.checks.len(), 1);
}

#[test]
fn figure_errors_point_at_the_key_or_value() {
    let d = errors(&format!("{BASE}detection_ms.c = \"< 2000\"\n"));
    let e = at(&d, 11, 14, "names leg \"c\", which does not exist");
    assert!(help(e).contains("a, b"), "{e}");

    let d = errors(&format!("{BASE}group_switches.mpathz = 1\n"));
    at(&d, 11, 16, "names map \"mpathz\"");

    let d = errors(&format!("{BASE}detection_ms = \"< 2000\"\n"));
    at(&d, 11, 1, "`detection_ms` is a figure per leg");

    let d = errors(&format!("{BASE}first_error_ms.a = 1\n"));
    at(&d, 11, 1, "takes no leg or map");

    let d = errors(&format!("{BASE}io_share.a = \"about half\"\n"));
    at(&d, 11, 14, "bad comparison for `io_share.a`");

    let d = errors(&format!("{BASE}no_path_ms = \"< 0\"\n"));
    at(&d, 11, 14, "can never hold");

    let d = errors(&format!("{BASE}group_switch = 1\n"));
    let e = at(&d, 11, 1, "unknown metric `group_switch`");
    assert!(help(e).contains("group_switches"), "{e}");
}

#[test]
fn io_share_takes_windows_and_failback_ms_a_map() {
    let s = ok(&format!(
        "{BASE}io_share.b.\"3s..5s\" = \"> 0.9\"\nio_share.a.\"1.5s..\" = 0\nfailback_ms.m = \"< 500\"\n"
    ));
    let f = &s.expect.figures;
    assert_eq!(f.len(), 3);
    let w = f[0].window.unwrap();
    assert_eq!((w.from_ms, w.to_ms), (3000, Some(5000)));
    assert_eq!(f[0].display(&s).to_string(), "io_share.b in 3s..5s > 0.9");
    assert_eq!(f[1].window.unwrap().to_ms, None);
    assert_eq!((f[2].figure, f[2].window), (Figure::FailbackMs, None));
    assert_eq!(f[2].key, Some(FigureTarget::Map(s.map_id("m").unwrap())));
}

#[test]
fn bad_windows_point_at_the_window() {
    let d = errors(&format!("{BASE}io_share.b.\"5s..3s\" = \"> 0.9\"\n"));
    at(&d, 11, 12, "ends before it begins");
    let d = errors(&format!("{BASE}io_share.b.\"3s\" = \"> 0.9\"\n"));
    let e = at(&d, 11, 12, "is not a window");
    assert!(help(e).contains("FROM..TO"), "{e}");
    let d = errors(&format!("{BASE}io_share.b.\"3x..5s\" = 1\n"));
    at(&d, 11, 12, "invalid duration");
    let d = errors(&format!("{BASE}detection_ms.a.\"1s..2s\" = 1\n"));
    at(&d, 11, 14, "takes no window");
}
