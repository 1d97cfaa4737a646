//! The console's usage charts, drawn by the hub as SVG (no script, no chart library): a
//! module's calls per period as stacked bars (answered, 4xx, 5xx), and its latency (p50, p95)
//! as lines. Each chart names itself for screen readers; the numbers are in the table beside.

use std::fmt::Write as _;

use crate::usage::{Period, Point, Report};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// Colours of the console's badges: answered, client errors, errors; p50, p95.
const OK: &str = "#2e7d32";
const CLIENT: &str = "#b8860b";
const ERROR: &str = "#c0392b";
const P50: &str = "#1a4f8b";
const P95: &str = "#8e1c14";

/// Calls per period, stacked: answered (2xx, 3xx), 4xx, 5xx.
pub fn calls(report: &Report) -> String {
    let top = nice(
        report
            .series
            .iter()
            .map(|p| p.stats.calls as f64)
            .fold(0.0, f64::max),
    );
    let mut svg = open(
        &format!(
            "Calls per {} of {}: answered in green, client errors (4xx) in amber, errors (5xx) in red",
            report.by.as_str(),
            report.module
        ),
        top,
        |v| format!("{v}"),
    );
    let slot = plot_width() / report.series.len().max(1) as f64;
    for (i, point) in report.series.iter().enumerate() {
        let s = &point.stats;
        let answered = s.calls.saturating_sub(s.client_errors + s.errors);
        let x = LEFT + slot * i as f64 + slot * 0.1;
        let mut base = 0.0;
        for (count, colour) in [(answered, OK), (s.client_errors, CLIENT), (s.errors, ERROR)] {
            if count == 0 {
                continue;
            }
            let (y0, y1) = (y(base, top), y(base + count as f64, top));
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {count}</title></rect>"#,
                slot * 0.8,
                y0 - y1,
                label(report.by, point),
            );
            base += count as f64;
        }
    }
    close(svg, report)
}

/// Latency per period: p50 and p95, in milliseconds; periods without calls leave a gap.
pub fn latency(report: &Report) -> String {
    let top = nice(
        report
            .series
            .iter()
            .filter_map(|p| p.stats.p95_seconds)
            .fold(0.0, f64::max)
            * 1000.0,
    );
    let mut svg = open(
        &format!(
            "Latency per {} of {} in milliseconds: the median (p50) in blue, p95 in red",
            report.by.as_str(),
            report.module
        ),
        top,
        |v| format!("{v} ms"),
    );
    let slot = plot_width() / report.series.len().max(1) as f64;
    for (pick, colour, name) in [
        (p50 as fn(&Point) -> Option<f64>, P50, "p50"),
        (p95, P95, "p95"),
    ] {
        let mut line = String::new();
        for (i, point) in report.series.iter().enumerate() {
            let x = LEFT + slot * (i as f64 + 0.5);
            match pick(point) {
                Some(seconds) => {
                    let ms = seconds * 1000.0;
                    let _ = write!(line, "{x:.1},{:.1} ", y(ms, top));
                    let _ = write!(
                        svg,
                        r#"<circle cx="{x:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} {name}: {ms:.1} ms</title></circle>"#,
                        y(ms, top),
                        label(report.by, point),
                    );
                }
                None => {
                    polyline(&mut svg, &line, colour);
                    line.clear();
                }
            }
        }
        polyline(&mut svg, &line, colour);
    }
    close(svg, report)
}

fn p50(point: &Point) -> Option<f64> {
    point.stats.p50_seconds
}

fn p95(point: &Point) -> Option<f64> {
    point.stats.p95_seconds
}

fn polyline(svg: &mut String, points: &str, colour: &str) {
    if points.split(' ').filter(|p| !p.is_empty()).count() > 1 {
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.trim_end()
        );
    }
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// The y of `value` on a scale from 0 to `top`.
fn y(value: f64, top: f64) -> f64 {
    TOP + plot_height() * (1.0 - value / top)
}

/// A round number at or above `max` (at least 1), for the top of a scale.
fn nice(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * magnitude)
}

/// The chart's frame: title, the scale's lines and their labels.
fn open(title: &str, top: f64, unit: impl Fn(f64) -> String) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}" font-family="sans-serif" font-size="11"><title>{title}</title>"#
    );
    for step in [0.0, 0.5, 1.0] {
        let value = top * step;
        let at = y(value, top);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{at:.1}" y2="{at:.1}" stroke="#c9ced6"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#4a5360">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            at + 4.0,
            unit((value * 100.0).round() / 100.0),
        );
    }
    svg
}

/// Labels under a few periods, then the end of the SVG.
fn close(mut svg: String, report: &Report) -> String {
    let n = report.series.len().max(1);
    let slot = plot_width() / n as f64;
    let every = n.div_ceil(8).max(1);
    for (i, point) in report.series.iter().enumerate().step_by(every) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#4a5360">{}</text>"##,
            LEFT + slot * (i as f64 + 0.5),
            HEIGHT - 8.0,
            label(report.by, point),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A period's short name: `09:00` (hours, UTC) or `12-02` (days).
fn label(by: Period, point: &Point) -> String {
    match by {
        Period::Hour => point.start.format("%H:00").to_string(),
        Period::Day => point.start.format("%m-%d").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Stats;

    fn report(calls: &[(u64, u64, u64)]) -> Report {
        let start: chrono::DateTime<chrono::Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        Report {
            module: "hello".to_owned(),
            from: start,
            to: start + chrono::TimeDelta::hours(calls.len() as i64),
            by: Period::Hour,
            total: Stats::default(),
            series: calls
                .iter()
                .enumerate()
                .map(|(i, (calls, client_errors, errors))| Point {
                    start: start + chrono::TimeDelta::hours(i as i64),
                    stats: Stats {
                        calls: *calls,
                        client_errors: *client_errors,
                        errors: *errors,
                        p50_seconds: (*calls > 0).then_some(0.004),
                        p95_seconds: (*calls > 0).then_some(0.02),
                        ..Stats::default()
                    },
                })
                .collect(),
            routes: Vec::new(),
        }
    }

    #[test]
    fn bars_stack_answered_client_errors_and_errors_to_the_calls_of_each_period() {
        let svg = calls(&report(&[(10, 2, 1), (0, 0, 0), (20, 0, 0)]));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The scale's top is 20; the plot is 144 px high: 7 answered of the first hour are
        // 50.4 px from y 154 up, then 2 in amber, 1 in red; the third hour's 20 fill it.
        assert!(
            svg.contains(
                r##"y="103.6" width="174.9" height="50.4" fill="#2e7d32"><title>00:00: 7</title>"##
            ),
            "{svg}"
        );
        assert!(
            svg.contains(r##"fill="#b8860b"><title>00:00: 2</title>"##),
            "{svg}"
        );
        assert!(
            svg.contains(r##"fill="#c0392b"><title>00:00: 1</title>"##),
            "{svg}"
        );
        assert!(
            svg.contains(
                r##"y="10.0" width="174.9" height="144.0" fill="#2e7d32"><title>02:00: 20</title>"##
            ),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect").count(), 4);
    }

    #[test]
    fn latency_lines_break_where_a_period_had_no_calls() {
        let svg = latency(&report(&[(1, 0, 0), (1, 0, 0), (0, 0, 0), (1, 0, 0)]));
        // Two points, a gap, one point: one line each for p50 and p95 (a lone point is a dot).
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
        assert!(svg.contains("p95: 20.0 ms"), "{svg}");
    }

    #[test]
    fn scales_end_on_round_numbers() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(13.0), 20.0);
        assert_eq!(nice(240.0), 250.0);
        assert_eq!(nice(251.0), 500.0);
    }
}
