//! How values read on screen: times in UTC to the second, coordinates to
//! six decimals (about 0.1 m), absent values as a dash.

/// ms since the epoch as `2026-12-03 16:13:44`.
pub fn time_ms(ms: f64) -> String {
    let iso: String = js_sys::Date::new(&ms.into()).to_iso_string().into();
    iso.get(..19).unwrap_or(&iso).replacen('T', " ", 1)
}

/// An RFC 3339 time from the API, as [`time_ms`] shows it.
pub fn time(rfc3339: &str) -> String {
    time_ms(js_sys::Date::parse(rfc3339))
}

pub fn coordinate(degrees: f64) -> String {
    format!("{degrees:.6}")
}

pub fn number(value: Option<f64>, decimals: usize, unit: &str) -> String {
    match value {
        Some(v) if unit.is_empty() => format!("{v:.decimals$}"),
        Some(v) => format!("{v:.decimals$} {unit}"),
        None => "–".to_owned(),
    }
}

pub fn flag(value: Option<bool>, yes: &str, no: &str) -> String {
    match value {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => "–".to_owned(),
    }
}

/// Seconds as `1 h 05 min`, `12 min` or `40 s`.
pub fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

pub fn distance(metres: f64) -> String {
    if metres < 1000.0 {
        format!("{metres:.0} m")
    } else {
        format!("{:.1} km", metres / 1000.0)
    }
}

/// An attribute's value without JSON's quotes around strings.
pub fn value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An instant as the API takes it: RFC 3339 in UTC.
pub fn rfc3339(ms: f64) -> String {
    js_sys::Date::new(&ms.into()).to_iso_string().into()
}
