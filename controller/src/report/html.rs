//! report.html: the run for people, as one self-contained page (inline CSS, SVG and a few lines
//! of JS; nothing fetched). Per map a timeline with a lane per path — the kernel's state, the
//! checker's, the fault windows on its leg, the manager's actions with their reasons on hover —
//! then each path's IO per 100 ms and share, and per workload throughput, errors and p99
//! latency per 100 ms. The DOM stays bounded whatever the run did: series are one polyline
//! each, state changes are merged into segments, and markers and rows are capped
//! ([`MAX_MARKS`]); IO errors appear only as the series' counts (report.json keeps the first
//! ones in detail).

use std::fmt::Write as _;

use super::{Report, Verdict, WorkloadSummary};
use crate::events::{CheckerVerdict, Event, EventKind, FaultChange};

/// At most this many markers (actions, faults) per map, and rows in the event table.
pub const MAX_MARKS: usize = 2000;

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 60.0;
const LANE: f64 = 34.0;
const CHART: f64 = 80.0;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
.verdict.pass { color: #1a7f37; font-weight: bold; }
.verdict.fail { color: #cf222e; font-weight: bold; }
svg { display: block; margin: 0.4em 0 1em; background: #fafafa; border: 1px solid #ddd; }
svg text { font-size: 11px; fill: #444; }
.kernel.active { fill: #4caf50; } .kernel.failed { fill: #e53935; }
.checker.up { fill: #a5d6a7; } .checker.down { fill: #ef9a9a; } .checker.timed-out { fill: #ffcc80; }
.fault { fill: #ff9800; fill-opacity: 0.28; stroke: #e65100; stroke-width: 1; }
.action line { stroke: #3949ab; stroke-width: 2; } .action circle { fill: #3949ab; }
.action.failed-action line { stroke: #b71c1c; }
.nopath { fill: #9e9e9e; fill-opacity: 0.35; }
.series { fill: none; stroke-width: 1.3; }
.series.reads, .series.io { stroke: #1e88e5; } .series.writes { stroke: #8e24aa; }
.series.errors { stroke: #e53935; } .series.p99 { stroke: #f57c00; }
.axis line { stroke: #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
.bar { display: inline-block; height: 10px; background: #1e88e5; }
#cursor { position: fixed; right: 1em; top: 1em; background: #fff; border: 1px solid #aaa;
  padding: 2px 6px; font-size: 12px; display: none; }
.note { color: #666; font-size: 12px; }
"#;

/// Runs last; `window.onerror` counts any script error into `data-errors`, which a test reads.
const SCRIPT: &str = r#"
(function () {
  var body = document.body;
  window.addEventListener('error', function () {
    body.dataset.errors = String(Number(body.dataset.errors || 0) + 1);
  });
  var cursor = document.getElementById('cursor');
  document.querySelectorAll('svg[data-end-ms]').forEach(function (svg) {
    var end = Number(svg.dataset.endMs), left = Number(svg.dataset.left), width = Number(svg.dataset.width);
    svg.addEventListener('mousemove', function (ev) {
      var box = svg.getBoundingClientRect();
      var x = (ev.clientX - box.left) * (svg.viewBox.baseVal.width / box.width);
      if (x < left) { cursor.style.display = 'none'; return; }
      cursor.textContent = ((x - left) / width * end / 1000).toFixed(2) + ' s';
      cursor.style.display = 'block';
    });
    svg.addEventListener('mouseleave', function () { cursor.style.display = 'none'; });
  });
  body.dataset.lanes = String(document.querySelectorAll('g.lane').length);
  body.dataset.ready = '1';
})();
"#;

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The time axis of every chart: run clock 0 to `end_ms` over `WIDTH - LABEL` pixels.
#[derive(Clone, Copy)]
struct Axis {
    end_ms: f64,
}

impl Axis {
    fn x(self, t_ms: f64) -> f64 {
        LABEL + (t_ms.clamp(0.0, self.end_ms) / self.end_ms) * (WIDTH - LABEL)
    }

    fn svg_open(self, out: &mut String, class: &str, height: f64) {
        let _ = write!(
            out,
            "<svg class=\"{class}\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" \
             height=\"{height}\" data-end-ms=\"{:.0}\" data-left=\"{LABEL}\" data-width=\"{}\">",
            self.end_ms,
            WIDTH - LABEL
        );
        // A tick per second (per 5 or 10 s on long runs).
        let secs = self.end_ms / 1000.0;
        let step = if secs > 60.0 {
            10.0
        } else if secs > 20.0 {
            5.0
        } else {
            1.0
        };
        out.push_str("<g class=\"axis\">");
        let mut s = 0.0;
        while s * 1000.0 <= self.end_ms {
            let x = self.x(s * 1000.0);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{height}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{s}s</text>",
                x + 2.0,
                height - 2.0
            );
            s += step;
        }
        out.push_str("</g>");
    }
}

/// Renders report.html.
pub fn render(report: &Report) -> String {
    let end_ms = report
        .events
        .iter()
        .filter(|e| e.in_timeline())
        .map(|e| e.t_ms)
        .fold(report.timing.run_ms, f64::max)
        .max(100.0);
    let axis = Axis { end_ms };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>pathrig report: {}</title><style>{STYLE}</style></head>\n<body data-ready=\"0\">\n",
        esc(&report.scenario.name)
    );
    let _ = writeln!(
        out,
        "<h1>pathrig report: {}</h1>",
        esc(&report.scenario.name)
    );
    if let Some(d) = &report.scenario.description {
        let _ = writeln!(out, "<p>{}</p>", esc(d));
    }
    let (class, word) = match report.verdict {
        Verdict::Pass => ("pass", "pass"),
        Verdict::Fail => ("fail", "fail"),
    };
    let _ = writeln!(
        out,
        "<p class=\"verdict {class}\" id=\"verdict\">verdict: {word}</p>\
         <p class=\"note\">seed {}, guest {} ({}), run {:.0} ms. Hover a mark for what it was \
         and why; exact values are in report.json.</p><div id=\"cursor\"></div>",
        report.scenario.seed,
        esc(&report.guest.kind),
        esc(&report.guest.kernel_release),
        report.timing.run_ms
    );
    for map in &report.maps {
        map_section(&mut out, report, map, axis);
    }
    for w in report.workloads.iter() {
        workload_section(&mut out, w, axis);
    }
    causes_section(&mut out, report);
    expectations_section(&mut out, report);
    events_table(&mut out, report);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

/// A state over time as segments: `(from_ms, to_ms, state)`, from changes in time order.
fn segments<S: Clone + PartialEq>(
    initial: Option<S>,
    changes: impl IntoIterator<Item = (f64, S)>,
    end_ms: f64,
) -> Vec<(f64, f64, S)> {
    let mut out = Vec::new();
    let mut current: Option<(f64, S)> = initial.map(|s| (0.0, s));
    for (t, s) in changes {
        let t = t.max(0.0);
        match &current {
            Some((_, cur)) if *cur == s => continue,
            Some((since, cur)) => out.push((*since, t, cur.clone())),
            None => {}
        }
        current = Some((t, s));
    }
    if let Some((since, cur)) = current {
        out.push((since, end_ms, cur));
    }
    out
}

/// The window a fault step opened on its leg: `(from, to, words)`; `to` is the end of its
/// window, the next step on the leg, or the run's end.
fn fault_windows<'e>(events: &'e [Event], leg: &str, end_ms: f64) -> Vec<(f64, f64, String)> {
    let steps: Vec<&'e Event> = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Fault { leg: l, .. } if l == leg))
        .collect();
    let mut out = Vec::new();
    for (i, e) in steps.iter().enumerate() {
        let EventKind::Fault { change, .. } = &e.kind else {
            continue;
        };
        let opens = match change {
            FaultChange::Applied { fault, .. } => *fault != faults::FaultKind::Restore,
            FaultChange::DustChanged { bad_blocks, .. } => !bad_blocks.is_empty(),
            _ => false,
        };
        if !opens {
            continue;
        }
        // A trespass is an instant, not a window.
        let instant = matches!(
            change,
            FaultChange::Applied {
                fault: faults::FaultKind::KernelFail,
                ..
            }
        );
        let to = if instant {
            e.t_ms
        } else {
            steps.get(i + 1).map_or(end_ms, |n| n.t_ms)
        };
        out.push((e.t_ms, to, e.what()));
    }
    out
}

fn map_section(out: &mut String, report: &Report, map: &super::MapReport, axis: Axis) {
    let _ = writeln!(
        out,
        "<section class=\"map\" data-map=\"{0}\"><h2>map {0}</h2>\
         <p class=\"note\">{1}; groups: {2}. Each lane: the kernel's state (upper bar), the \
         checker's (lower bar), fault windows (orange), manager actions (blue marks); grey: no \
         usable path.</p>",
        esc(&map.name),
        esc(&map.selector),
        esc(&map
            .groups
            .iter()
            .map(|g| g.join(" "))
            .collect::<Vec<_>>()
            .join(" | "))
    );
    let events: Vec<&Event> = report.events.iter().collect();
    let height = LANE * (map.paths.len() as f64 + 1.0) + 16.0;
    axis.svg_open(out, "timeline", height);
    // Times with no usable path, across every lane.
    let mut lost_at = None;
    for e in &events {
        match &e.kind {
            EventKind::NoUsablePath { map: m } if *m == map.name => {
                lost_at.get_or_insert(e.t_ms);
            }
            EventKind::UsablePathBack { map: m } if *m == map.name => {
                if let Some(at) = lost_at.take() {
                    nopath_rect(out, axis, at, e.t_ms, height);
                }
            }
            _ => {}
        }
    }
    if let Some(at) = lost_at {
        nopath_rect(out, axis, at, axis.end_ms, height);
    }
    let mut marks = 0usize;
    for (i, path) in map.paths.iter().enumerate() {
        let y = LANE * i as f64 + 4.0;
        let _ = write!(
            out,
            "<g class=\"lane\" data-leg=\"{0}\"><text x=\"4\" y=\"{1:.1}\">{0}</text>",
            esc(&path.leg),
            y + 16.0
        );
        let kernel = segments(
            Some("active"),
            events.iter().filter_map(|e| match &e.kind {
                EventKind::PathFailed { map: m, leg } if *m == map.name && *leg == path.leg => {
                    Some((e.t_ms, "failed"))
                }
                EventKind::PathReinstated { map: m, leg } if *m == map.name && *leg == path.leg => {
                    Some((e.t_ms, "active"))
                }
                _ => None,
            }),
            axis.end_ms,
        );
        for (from, to, state) in kernel {
            bar(out, axis, "kernel", state, from, to, y, 12.0, "kernel");
        }
        let node = path
            .device
            .split_once(':')
            .map(|(_, minor)| format!("/dev/dm-{minor}"));
        let checker = segments(
            None,
            events.iter().filter_map(|e| match &e.kind {
                EventKind::CheckerResult {
                    dm_name,
                    node: n,
                    verdict,
                    ..
                } if *dm_name == map.dm_name && Some(n) == node.as_ref() => Some((
                    e.t_ms,
                    match verdict {
                        CheckerVerdict::Up => "up",
                        CheckerVerdict::Down { .. } => "down",
                        CheckerVerdict::TimedOut => "timed-out",
                        CheckerVerdict::Scsi { state, .. } => match state.as_str() {
                            "up" | "ghost" => "up",
                            _ => "down",
                        },
                    },
                )),
                _ => None,
            }),
            axis.end_ms,
        );
        for (from, to, state) in checker {
            bar(
                out,
                axis,
                "checker",
                state,
                from,
                to,
                y + 13.0,
                7.0,
                "checker",
            );
        }
        for (from, to, what) in fault_windows(&report.events, &path.leg, axis.end_ms) {
            if marks >= MAX_MARKS {
                break;
            }
            marks += 1;
            let x = axis.x(from);
            let _ = write!(
                out,
                "<rect class=\"fault\" data-leg=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"24\"><title>{}</title></rect>",
                esc(&path.leg),
                y - 2.0,
                (axis.x(to) - x).max(1.5),
                esc(&format!("{:.0} ms: {what}", from))
            );
        }
        out.push_str("</g>");
    }
    // Manager and rig actions: on their path's lane, or on the map's row below the lanes.
    let map_row = LANE * map.paths.len() as f64 + 4.0;
    let _ = write!(out, "<text x=\"4\" y=\"{:.1}\">map</text>", map_row + 16.0);
    for e in &events {
        let (leg, class) = match &e.kind {
            EventKind::Manager {
                map: m,
                leg,
                failed,
                ..
            } if *m == map.name => (
                leg.as_deref(),
                if failed.is_some() {
                    "action failed-action"
                } else {
                    "action"
                },
            ),
            EventKind::RigReinstated { map: m, leg } if *m == map.name => {
                (Some(leg.as_str()), "action rig")
            }
            EventKind::QueueFlushed { map: m, .. } if *m == map.name => (None, "action rig"),
            _ => continue,
        };
        if marks >= MAX_MARKS {
            break;
        }
        marks += 1;
        let y = leg
            .and_then(|l| map.paths.iter().position(|p| p.leg == l))
            .map_or(map_row, |i| LANE * i as f64 + 4.0);
        let x = axis.x(e.t_ms);
        let _ = write!(
            out,
            "<g class=\"{class}\" data-leg=\"{}\"><title>{}</title><line x1=\"{x:.1}\" \
             y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\"/></g>",
            esc(leg.unwrap_or("")),
            esc(&format!("{:.0} ms: {}", e.t_ms, e.what())),
            y - 2.0,
            y + 22.0,
            y - 2.0
        );
    }
    out.push_str("</svg>");
    path_io_section(out, report, map, axis);
    out.push_str("</section>\n");
}

fn nopath_rect(out: &mut String, axis: Axis, from: f64, to: f64, height: f64) {
    let x = axis.x(from);
    let _ = write!(
        out,
        "<rect class=\"nopath\" x=\"{x:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height:.1}\">\
         <title>no usable path from {from:.0} ms to {to:.0} ms</title></rect>",
        (axis.x(to) - x).max(1.0)
    );
}

#[allow(clippy::too_many_arguments)]
fn bar(
    out: &mut String,
    axis: Axis,
    class: &str,
    state: &str,
    from: f64,
    to: f64,
    y: f64,
    h: f64,
    who: &str,
) {
    let x = axis.x(from);
    let _ = write!(
        out,
        "<rect class=\"{class} {state}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" \
         height=\"{h}\"><title>{who}: {state} from {from:.0} ms to {to:.0} ms</title></rect>",
        (axis.x(to) - x).max(0.5)
    );
}

/// A polyline of `(t_ms, value)` scaled to `max` over a chart of `CHART` pixels.
fn polyline(out: &mut String, axis: Axis, class: &str, points: &[(f64, f64)], max: f64, y0: f64) {
    if points.is_empty() {
        return;
    }
    let max = if max > 0.0 { max } else { 1.0 };
    let mut d = String::new();
    for (t, v) in points {
        let _ = write!(
            d,
            "{:.1},{:.1} ",
            axis.x(*t),
            y0 + CHART - (v / max) * (CHART - 6.0)
        );
    }
    let _ = write!(
        out,
        "<polyline class=\"series {class}\" data-series=\"{class}\" points=\"{}\"/>",
        d.trim_end()
    );
}

fn path_io_section(out: &mut String, report: &Report, map: &super::MapReport, axis: Axis) {
    let series: Vec<&super::PathIo> = report
        .path_io
        .iter()
        .filter(|p| p.map == map.name)
        .collect();
    if series.is_empty() {
        return;
    }
    let total: u64 = series.iter().map(|p| p.total()).sum();
    out.push_str("<h3>IO per path</h3><table class=\"io-share\"><tr><th>path</th><th>IOs</th><th>share of the map's IO</th></tr>");
    for p in &series {
        let share = if total > 0 {
            p.total() as f64 / total as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<tr data-leg=\"{}\"><td>{}</td><td>{}</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span> {:.1}%</td></tr>",
            esc(&p.leg),
            esc(&p.leg),
            p.total(),
            share * 200.0,
            share * 100.0
        );
    }
    out.push_str("</table>");
    let max = series
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| (s.reads + s.writes) as f64))
        .fold(0.0, f64::max);
    let height = (CHART + 14.0) * series.len() as f64;
    axis.svg_open(out, "path-io", height);
    for (i, p) in series.iter().enumerate() {
        let y0 = (CHART + 14.0) * i as f64;
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y0 + 14.0,
            esc(&p.leg)
        );
        let points: Vec<(f64, f64)> = p
            .samples
            .iter()
            .map(|s| (s.t_ms as f64, (s.reads + s.writes) as f64))
            .collect();
        polyline(out, axis, "io", &points, max, y0);
    }
    out.push_str("</svg>");
}

/// One chart of a workload: its class, its title and its `(t_ms, value)` points.
type Chart<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn workload_section(out: &mut String, w: &WorkloadSummary, axis: Axis) {
    let _ = writeln!(
        out,
        "<section class=\"workload\" data-map=\"{0}\"><h2>workload on {0}</h2>\
         <p>{1} IO, {2}% reads, {3} B blocks, queue depth {4}: {5} reads, {6} writes, {7} \
         application errors, {8} mismatches; latency p50 {9} µs, p99 {10} µs, max {11} µs.</p>",
        esc(&w.map),
        esc(&w.pattern),
        w.read_percent,
        w.block_size,
        w.queue_depth,
        w.reads,
        w.writes,
        w.app_errors,
        w.mismatches,
        w.latency_us.p50,
        w.latency_us.p99,
        w.latency_us.max
    );
    let charts: [Chart; 3] = [
        (
            "io",
            "IOs completed per 100 ms",
            w.series
                .iter()
                .map(|p| (p.t_ms as f64, (p.reads + p.writes) as f64))
                .collect(),
        ),
        (
            "errors",
            "IO errors per 100 ms",
            w.series
                .iter()
                .map(|p| {
                    (
                        p.t_ms as f64,
                        p.errors.iter().map(|(_, n)| *n as f64).sum::<f64>(),
                    )
                })
                .collect(),
        ),
        (
            "p99",
            "p99 latency per 100 ms (µs)",
            w.series
                .iter()
                .map(|p| (p.t_ms as f64, p.p99_us as f64))
                .collect(),
        ),
    ];
    for (class, title, points) in charts {
        let max = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        let _ = write!(
            out,
            "<h3>{title} <span class=\"note\">(max {max:.0})</span></h3>"
        );
        axis.svg_open(out, &format!("chart {class}"), CHART + 14.0);
        polyline(out, axis, class, &points, max, 0.0);
        out.push_str("</svg>");
    }
    if !w.mismatch_details.is_empty() {
        let _ = write!(
            out,
            "<h3>mismatched blocks: {} distinct, {} mismatches</h3><table class=\"mismatches\">\
             <tr><th>block ({} B)</th><th>byte offset</th><th>times</th><th>first at</th><th>diagnosis</th></tr>",
            w.mismatch_details.len(),
            w.mismatches,
            w.block_size
        );
        for m in w.mismatch_details.iter().take(MAX_MARKS) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0} ms</td><td>{}</td></tr>",
                m.block,
                m.byte_offset,
                m.count,
                m.t_ms,
                esc(&m.detail)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>\n");
}

fn causes_section(out: &mut String, report: &Report) {
    if report.causes.is_empty() {
        return;
    }
    out.push_str("<section class=\"causes\"><h2>causes</h2><ul>");
    for c in &report.causes {
        let _ = write!(
            out,
            "<li class=\"cause\">{}</li>",
            esc(&super::text::cause_words(c, true))
        );
    }
    out.push_str("</ul></section>\n");
}

fn expectations_section(out: &mut String, report: &Report) {
    out.push_str("<section class=\"expectations\"><h2>expectations</h2><table>");
    if report.expectations.is_empty() {
        out.push_str("<tr><td>(none stated)</td></tr>");
    }
    for e in &report.expectations {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>actual {}</td></tr>",
            if e.held { "held" } else { "failed" },
            if e.held { "held" } else { "FAILED" },
            esc(&e.what),
            esc(&e.actual)
        );
    }
    out.push_str("</table></section>\n");
}

fn events_table(out: &mut String, report: &Report) {
    out.push_str(
        "<section class=\"events\"><h2>timeline</h2><table><tr><th>ms</th><th>source</th><th>what</th></tr>",
    );
    let timeline: Vec<&Event> = report.events.iter().filter(|e| e.in_timeline()).collect();
    for e in timeline.iter().take(MAX_MARKS) {
        let _ = write!(
            out,
            "<tr class=\"event {}\"><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            e.source().as_str(),
            e.t_ms,
            e.source().as_str(),
            esc(&e.what())
        );
    }
    if timeline.len() > MAX_MARKS {
        let _ = write!(
            out,
            "<tr><td colspan=\"3\">… {} more in report.json</td></tr>",
            timeline.len() - MAX_MARKS
        );
    }
    out.push_str("</table></section>\n");
}
