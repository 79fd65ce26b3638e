//! Line charts of a device's history: one SVG path per chart, scaled to the
//! values, with the range's first and last times and the value extremes as
//! labels.

use leptos::prelude::*;

use crate::api::Position;
use crate::format;

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 90.0;

/// One series: its title, unit, and how to read it from a position.
pub struct Series {
    pub title: &'static str,
    pub unit: &'static str,
    pub read: fn(&Position) -> Option<f64>,
}

pub const SERIES: [Series; 4] = [
    Series {
        title: "Speed",
        unit: "km/h",
        read: |p| Some(p.speed_kmh),
    },
    Series {
        title: "Fuel level",
        unit: "%",
        read: |p| number(p, "fuelLevel"),
    },
    Series {
        title: "RPM",
        unit: "rpm",
        read: |p| number(p, "rpm"),
    },
    Series {
        title: "Coolant temperature",
        unit: "°C",
        read: |p| number(p, "coolantTemp"),
    },
];

fn number(position: &Position, name: &str) -> Option<f64> {
    position
        .attributes
        .get(name)
        .and_then(serde_json::Value::as_f64)
}

/// The chart of one series over `positions` (ascending time).
pub fn chart(series: &Series, positions: &[Position]) -> impl IntoView + use<> {
    let points: Vec<(f64, f64)> = positions
        .iter()
        .filter_map(|p| Some((js_sys::Date::parse(&p.time), (series.read)(p)?)))
        .collect();
    let title = series.title;
    let testid = format!("chart-{}", series.title.to_lowercase().replace(' ', "-"));
    if points.len() < 2 {
        return view! {
            <figure class="chart" data-testid=testid data-points="0">
                <figcaption>{title}</figcaption>
                <p class="empty">"No data in this range"</p>
            </figure>
        }
        .into_any();
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let (lo, hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let span_t = (t1 - t0).max(1.0);
    let span_v = (hi - lo).max(1e-9);
    let mut path = String::with_capacity(points.len() * 16);
    for (i, &(t, v)) in points.iter().enumerate() {
        let x = (t - t0) / span_t * WIDTH;
        let y = HEIGHT - (v - lo) / span_v * (HEIGHT - 4.0) - 2.0;
        path.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
    }
    let count = points.len().to_string();
    let unit = series.unit;
    view! {
        <figure class="chart" data-testid=testid data-points=count>
            <figcaption>{title}" "<span class="range">{format!("{lo:.0}–{hi:.0} {unit}")}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img"
                aria-label=format!("{title} from {lo:.0} to {hi:.0} {unit}")>
                <path d=path fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke"></path>
            </svg>
            <div class="axis"><span>{format::time_ms(t0)}</span><span>{format::time_ms(t1)}</span></div>
        </figure>
    }
    .into_any()
}
