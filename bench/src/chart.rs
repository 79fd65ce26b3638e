//! A hand-written SVG of one run: positions acked per second and ack
//! latency p99 per second, Drover's line solid and the null server's dashed.

use std::fmt::Write as _;

use super::report::{RunReport, TimelinePoint};

const WIDTH: f64 = 720.0;
const PANEL_HEIGHT: f64 = 200.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const GAP: f64 = 60.0;

/// The SVG document for `run`.
pub fn svg(run: &RunReport) -> String {
    let null: &[TimelinePoint] = run.ceiling.as_ref().map_or(&[], |c| &c.timeline);
    let t_max = run
        .timeline
        .iter()
        .chain(null)
        .map(|p| p.t_s)
        .fold(1.0_f64, f64::max);
    let height = MARGIN_TOP + 2.0 * PANEL_HEIGHT + GAP + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN_LEFT}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        escape(&format!("{}: {}", run.id, run.description))
    );
    let panels: [Panel; 2] = [
        ("positions acked / s", |p| p.positions_per_s),
        ("ack latency p99 (ms)", |p| p.ack_p99_us as f64 / 1000.0),
    ];
    for (i, (title, value)) in panels.iter().enumerate() {
        let top = MARGIN_TOP + i as f64 * (PANEL_HEIGHT + GAP);
        let lines = [
            (run.timeline.as_slice(), "#1f77b4", ""),
            (null, "#888888", "5,4"),
        ];
        let v_max = lines
            .iter()
            .flat_map(|(points, _, _)| points.iter().map(value))
            .fold(0.0_f64, f64::max);
        panel(&mut out, top, title, t_max, nice_max(v_max), &lines, *value);
    }
    let legend_y = height - 12.0;
    let _ = writeln!(
        out,
        r##"<line x1="{MARGIN_LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#1f77b4" stroke-width="2"/><text x="{tx}" y="{ty}">drover serve</text>"##,
        y = legend_y - 4.0,
        x2 = MARGIN_LEFT + 24.0,
        tx = MARGIN_LEFT + 30.0,
        ty = legend_y
    );
    if !null.is_empty() {
        let _ = writeln!(
            out,
            r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888888" stroke-width="2" stroke-dasharray="5,4"/><text x="{tx}" y="{ty}">null server (the machine's ceiling)</text>"##,
            x1 = MARGIN_LEFT + 130.0,
            y = legend_y - 4.0,
            x2 = MARGIN_LEFT + 154.0,
            tx = MARGIN_LEFT + 160.0,
            ty = legend_y
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A panel's title and the value it plots.
type Panel = (&'static str, fn(&TimelinePoint) -> f64);

type Line<'a> = (&'a [TimelinePoint], &'a str, &'a str);

fn panel(
    out: &mut String,
    top: f64,
    title: &str,
    t_max: f64,
    v_max: f64,
    lines: &[Line<'_>],
    value: fn(&TimelinePoint) -> f64,
) {
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let x = |t: f64| MARGIN_LEFT + t / t_max * plot_w;
    let y = |v: f64| top + PANEL_HEIGHT - (v / v_max).clamp(0.0, 1.0) * PANEL_HEIGHT;
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN_LEFT}" y="{}" font-weight="bold">{}</text>"#,
        top - 6.0,
        escape(title)
    );
    // Grid and labels: 4 horizontal divisions, time ticks every fifth of the run.
    for k in 0..=4 {
        let v = v_max * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{MARGIN_LEFT}" y1="{yy:.1}" x2="{x2:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
            yy = y(v),
            x2 = MARGIN_LEFT + plot_w,
            tx = MARGIN_LEFT - 6.0,
            ty = y(v) + 4.0,
            label = short(v)
        );
    }
    for k in 0..=5 {
        let t = t_max * f64::from(k) / 5.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0} s</text>"#,
            x(t),
            top + PANEL_HEIGHT + 14.0,
            t
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{MARGIN_LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#999999"/>"##
    );
    for (points, colour, dash) in lines {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.t_s), y(value(p))))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            path.join(" ")
        );
    }
}

/// A round axis maximum at or above `v` (1, 2 or 5 × a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * power)
}

fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1200.0), 2000.0);
        assert_eq!(nice_max(48_000.0), 50_000.0);
    }
}
