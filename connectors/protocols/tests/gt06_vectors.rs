//! GT06 against the captures of `tests/vectors/gt06.jsonl` (see its README),
//! plus round trips of the device frame builders and a robustness sweep.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use drover_protocols::gt06::{Gt06, Gt06Session, device};
use drover_protocols::model::{DeviceId, Fix, KMH_PER_KNOT, Record, RecordKind, Value, attr};
use drover_protocols::{Check, DecodeError, DecodeOptions, Decoded, Protocol, Session};
use serde_json::Value as Json;
use support::{Row, Tally, XorShift};

/// Rows allowed to disagree with Traccar's expectations, as (kind, seq, why).
/// Every other row must agree in both checksum modes.
const KNOWN_DISAGREEMENTS: &[(&str, u64, &str)] = &[];

const FILE: &str = "gt06.jsonl";

fn options(accept_bad_checksum: bool) -> DecodeOptions {
    DecodeOptions {
        accept_bad_checksum,
    }
}

/// A session as Traccar's test harness has one: any device id, the row's
/// model override.
fn session_for(row: &Row, accept_bad_checksum: bool) -> Gt06Session {
    let mut gt06 = Gt06::new(options(accept_bad_checksum));
    if let Some(model) = row.json["decoder"]["setters"]["setModelOverride"][0].as_str() {
        gt06 = gt06.with_model(model);
    }
    Gt06Session::identified(&gt06, DeviceId::new("123456789012345"))
}

/// Message rows grouped by source and ordered by `seq`, frame rows apart.
fn grouped(rows: &[Row]) -> (Vec<Vec<&Row>>, Vec<&Row>) {
    let mut sources: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    let mut frames = Vec::new();
    for row in rows {
        match row.json["kind"].as_str() {
            Some("frame") => frames.push(row),
            _ => sources.entry(row.source()).or_default().push(row),
        }
    }
    let mut groups: Vec<Vec<&Row>> = sources.into_values().collect();
    for group in &mut groups {
        group.sort_by_key(|r| r.seq());
    }
    (groups, frames)
}

fn label(row: &Row) -> String {
    let kind = row.json["kind"].as_str().unwrap_or("message");
    let payload = row.json["payload"].as_str().unwrap_or("");
    format!(
        "{kind} seq {} (line {}, {}…)",
        row.seq(),
        row.line,
        &payload[..payload.len().min(24)]
    )
}

fn key(row: &Row) -> (String, u64) {
    (
        row.json["kind"].as_str().unwrap_or("message").to_owned(),
        row.seq(),
    )
}

/// Runs every row in one checksum mode and tallies agreement.
fn run(rows: &[Row], accept_bad_checksum: bool) -> (Tally, Vec<(String, u64)>) {
    let (groups, frames) = grouped(rows);
    let mut tally = Tally::default();
    let mut failed = Vec::new();
    for group in groups {
        let mut session = session_for(group[0], accept_bad_checksum);
        for row in group {
            let verdict = check_message(row, &mut session, accept_bad_checksum);
            if verdict.is_err() {
                failed.push(key(row));
            }
            tally.check(verdict.is_ok(), || {
                format!("{}: {}", label(row), verdict.unwrap_err())
            });
        }
    }
    for row in frames {
        let verdict = check_frame(row);
        if verdict.is_err() {
            failed.push(key(row));
        }
        tally.check(verdict.is_ok(), || {
            format!("{}: {}", label(row), verdict.unwrap_err())
        });
    }
    (tally, failed)
}

fn check_frame(row: &Row) -> Result<(), String> {
    let stream = row.payload();
    let expected = hex::decode(row.expect()["frame"].as_str().ok_or("no frame")?)
        .map_err(|e| e.to_string())?;
    let session = Gt06::new(DecodeOptions::default()).session();
    let mut at = 0;
    loop {
        match session.check(&stream[at..]) {
            Check::Garbage(n) => at += n,
            Check::Frame(n) if stream[at..at + n] == expected[..] => return Ok(()),
            other => return Err(format!("splitter said {other:?} at {at}")),
        }
    }
}

fn check_message(
    row: &Row,
    session: &mut Gt06Session,
    accept_bad_checksum: bool,
) -> Result<(), String> {
    let mut out = Decoded::default();
    let result = session.decode(&row.payload(), &mut out);
    if !row.crc_valid() && !accept_bad_checksum {
        return match result {
            Err(DecodeError::BadChecksum { .. }) if out == Decoded::default() => Ok(()),
            other => Err(format!("strict session gave {other:?}, not a bad checksum")),
        };
    }
    for record in &out.records {
        sanity(record, false)?;
    }
    let expect = row.expect();
    if expect["returns"].as_str() == Some("null") {
        return match out.records.first() {
            None => Ok(()),
            Some(r) => Err(format!("expected no record, got {r:?}")),
        };
    }
    result.map_err(|e| format!("decode failed: {e}"))?;
    let first = out.records.first().ok_or("expected a record, got none")?;
    check_expectations(expect, first)?;
    if expect["position"].as_bool() == Some(true) {
        for record in &out.records {
            sanity(record, true)?;
        }
    }
    Ok(())
}

fn check_expectations(expect: &Json, record: &Record) -> Result<(), String> {
    if expect["check"].as_str() == Some("verifyAttributes") && !has_attributes(record) {
        return Err("expected attributes, got none".into());
    }
    if let Some(expected) = expect["attributes"].as_object() {
        for (name, value) in expected {
            check_attribute(record, name, value)?;
        }
    }
    check_fix_fields(expect, record)
}

/// Traccar keeps satellites and the archive flag among the attributes; the
/// model has fields for them.
fn has_attributes(record: &Record) -> bool {
    !record.attributes.is_empty()
        || record.archived
        || record.fix.is_some_and(|f| f.satellites.is_some())
}

fn check_attribute(record: &Record, name: &str, expected: &Json) -> Result<(), String> {
    let actual = record.attributes.get(name);
    let agree = match (expected, actual) {
        (Json::Null, None) => true,
        (Json::Bool(e), Some(Value::Bool(a))) => e == a,
        (Json::String(e), Some(Value::Text(a))) => e == a,
        (Json::Number(e), Some(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() <= 1e-9 * e.abs().max(1.0),
            _ => false,
        },
        _ => false,
    };
    if agree {
        Ok(())
    } else {
        Err(format!(
            "attribute {name}: expected {expected}, got {actual:?}"
        ))
    }
}

fn check_fix_fields(expect: &Json, record: &Record) -> Result<(), String> {
    let fix = record.fix;
    let need = |what: &str| fix.ok_or(format!("expected {what}, got no fix"));
    if let Some(time) = expect["time"].as_str() {
        let expected = parse_utc(time).ok_or("bad time in row")?;
        if record.time_ms != expected {
            return Err(format!("time: expected {time}, got {}", record.time_ms));
        }
    }
    if let Some(valid) = expect["valid"].as_bool()
        && need("valid")?.valid != valid
    {
        return Err("valid differs".into());
    }
    let close = |e: f64, a: f64, tolerance: f64| (e - a).abs() <= tolerance;
    for (field, tolerance, get) in [
        (
            "latitude",
            1e-5,
            (|f: &Fix| Some(f.lat)) as fn(&Fix) -> Option<f64>,
        ),
        ("longitude", 1e-5, |f: &Fix| Some(f.lon)),
        ("altitude", 1e-9, |f: &Fix| f.altitude_m),
        ("speed", 1e-6, |f: &Fix| Some(f.speed_kmh / KMH_PER_KNOT)),
        ("course", 1e-9, |f: &Fix| Some(f.course_deg)),
    ] {
        if let Some(expected) = expect[field].as_f64() {
            let actual = get(&need(field)?);
            if !actual.is_some_and(|a| close(expected, a, tolerance)) {
                return Err(format!("{field}: expected {expected}, got {actual:?}"));
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` to epoch milliseconds.
fn parse_utc(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000)
}

/// The README's bounds. Time and altitude apply to rows Traccar checks as
/// positions (its own attribute-only rows include an altitude of -31703 m).
fn sanity(record: &Record, position: bool) -> Result<(), String> {
    if let Some(level) = record
        .attributes
        .get(attr::BATTERY_LEVEL)
        .and_then(Value::as_f64)
        && !(0.0..=100.0).contains(&level)
    {
        return Err(format!("battery level {level}"));
    }
    let Some(fix) = record.fix else {
        return if position {
            Err("expected a position, got no fix".into())
        } else {
            Ok(())
        };
    };
    let knots = fix.speed_kmh / KMH_PER_KNOT;
    let bounds = fix.lat.abs() <= 90.0
        && fix.lon.abs() <= 180.0
        && (0.0..=869.0).contains(&knots)
        && (0.0..=360.0).contains(&fix.course_deg);
    if !bounds {
        return Err(format!("fix out of bounds: {fix:?}"));
    }
    if position {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let in_time = record.time_ms > 915_148_800_000 && record.time_ms < now_ms + 25 * 3_600_000;
        let altitude = fix.altitude_m.unwrap_or(0.0);
        if !in_time || !(-12_262.0..=18_000.0).contains(&altitude) {
            return Err(format!(
                "position out of bounds: time {} altitude {altitude}",
                record.time_ms
            ));
        }
    }
    Ok(())
}

fn assert_agreement(mode: &str, tally: &Tally, failed: &[(String, u64)]) {
    tally.report(&format!("{FILE} ({mode})"));
    let known: Vec<(String, u64)> = KNOWN_DISAGREEMENTS
        .iter()
        .map(|(k, s, _)| ((*k).to_owned(), *s))
        .collect();
    let unexpected: Vec<_> = failed.iter().filter(|k| !known.contains(k)).collect();
    assert!(
        unexpected.is_empty(),
        "{mode}: unexpected disagreements {unexpected:?}"
    );
}

#[test]
fn vectors_agree_with_a_strict_checksum() {
    let rows = support::load(FILE);
    let (tally, failed) = run(&rows, false);
    assert_agreement("strict checksum", &tally, &failed);
}

#[test]
fn vectors_agree_when_bad_checksums_are_accepted() {
    let rows = support::load(FILE);
    let (tally, failed) = run(&rows, true);
    assert_agreement("accept bad checksum", &tally, &failed);
}

#[test]
fn the_vector_file_is_complete() {
    let rows = support::load(FILE);
    assert_eq!(rows.len(), 196);
    let bad = rows
        .iter()
        .filter(|r| !r.crc_valid() && r.json["kind"] == "message")
        .count();
    assert_eq!(bad, 27, "rows with a wrong checksum");
}

// --- Device frames round-trip through the decoder ------------------------

fn decode_one(frame: &[u8]) -> (Result<(), DecodeError>, Decoded) {
    let mut session = Gt06::new(DecodeOptions::default()).session();
    let mut out = Decoded::default();
    session
        .decode(&device::login("359339075005244", 1), &mut out)
        .unwrap();
    out.clear();
    assert_eq!(session.check(frame), Check::Frame(frame.len()));
    let result = session.decode(frame, &mut out);
    (result, out)
}

#[test]
fn login_identifies_the_device_and_is_acknowledged() {
    let mut session = Gt06::new(DecodeOptions::default()).session();
    let mut out = Decoded::default();
    let login = device::login("359339075005244", 0x0102);
    session.decode(&login, &mut out).unwrap();
    assert_eq!(out.identified, Some(DeviceId::new("359339075005244")));
    assert_eq!(session.device(), Some(&DeviceId::new("359339075005244")));
    assert!(out.records.is_empty());
    assert_eq!(device::parse_reply(&out.reply), Some((0x01, 0x0102)));
}

#[test]
fn data_before_login_is_refused() {
    let mut session = Gt06::new(DecodeOptions::default()).session();
    let mut out = Decoded::default();
    let result = session.decode(&device::heartbeat(5), &mut out);
    assert_eq!(result, Err(DecodeError::NotIdentified));
    assert_eq!(out, Decoded::default());
}

#[test]
fn heartbeat_round_trips_and_is_acknowledged() {
    let (result, out) = decode_one(&device::heartbeat(0x0042));
    result.unwrap();
    let record = &out.records[0];
    assert_eq!(record.kind, RecordKind::Status);
    assert_eq!(
        record.attributes.get(attr::BATTERY_LEVEL),
        Some(&Value::Int(100))
    );
    assert_eq!(
        record.attributes.get(attr::CHARGE),
        Some(&Value::Bool(true))
    );
    assert_eq!(device::parse_reply(&out.reply), Some((0x13, 0x0042)));
}

fn record(time_ms: i64, fix: Option<Fix>, ignition: bool) -> Record {
    let mut record = Record {
        time_ms,
        fix,
        ..Record::default()
    };
    record.attributes.set(attr::IGNITION, ignition);
    record
}

#[test]
fn location_round_trips() {
    let fixes = [
        Fix {
            lat: 54.94535,
            lon: 24.01762,
            speed_kmh: 61.0,
            course_deg: 271.0,
            altitude_m: None,
            satellites: Some(9),
            valid: true,
        },
        Fix {
            lat: -33.86785,
            lon: -151.20732,
            speed_kmh: 0.0,
            course_deg: 0.0,
            altitude_m: None,
            satellites: Some(15),
            valid: true,
        },
        Fix {
            lat: 0.0,
            lon: 179.99999,
            speed_kmh: 255.0,
            course_deg: 359.0,
            altitude_m: None,
            satellites: Some(0),
            valid: false,
        },
    ];
    for (i, fix) in fixes.into_iter().enumerate() {
        let sent = record(
            1_445_350_871_000 + i as i64 * 86_400_000,
            Some(fix),
            i % 2 == 0,
        );
        let (result, out) = decode_one(&device::location(&sent, 7));
        result.unwrap();
        let got = &out.records[0];
        assert_eq!(got.kind, RecordKind::Position);
        assert_eq!(got.time_ms, sent.time_ms);
        let f = got.fix.unwrap();
        assert!(
            (f.lat - fix.lat).abs() < 1e-5 && (f.lon - fix.lon).abs() < 1e-5,
            "{f:?}"
        );
        assert_eq!(
            (f.speed_kmh, f.course_deg, f.satellites, f.valid),
            (fix.speed_kmh, fix.course_deg, fix.satellites, fix.valid)
        );
        assert_eq!(
            got.attributes.get(attr::IGNITION),
            Some(&Value::Bool(i % 2 == 0))
        );
        assert!(!got.archived);
        assert_eq!(device::parse_reply(&out.reply), Some((0x22, 7)));
    }
}

#[test]
fn location_without_a_fix_is_not_positioned_at_zero() {
    let mut sent = record(1_700_000_000_000, None, false);
    sent.archived = true;
    let (result, out) = decode_one(&device::location(&sent, 1));
    result.unwrap();
    let fix = out.records[0].fix.unwrap();
    assert_eq!((fix.lat, fix.lon, fix.valid), (0.0, 0.0, false));
    assert!(out.records[0].archived);
}

#[test]
fn a_bad_checksum_is_refused_unless_accepted() {
    let mut frame = device::location(&record(1_700_000_000_000, None, true), 1);
    let at = frame.len() - 3;
    frame[at] ^= 0x01;
    let (result, out) = decode_one(&frame);
    assert!(matches!(result, Err(DecodeError::BadChecksum { .. })));
    assert!(out.records.is_empty() && out.reply.is_empty());
    let gt06 = Gt06::new(options(true));
    let mut session = Gt06Session::identified(&gt06, DeviceId::new("1"));
    let mut out = Decoded::default();
    session.decode(&frame, &mut out).unwrap();
    assert_eq!(out.records.len(), 1);
}

#[test]
fn unknown_types() {
    let gt06 = Gt06::new(options(true));
    let mut session = Gt06Session::identified(&gt06, DeviceId::new("1"));
    let mut out = Decoded::default();
    let extended = hex::decode("79790005fd0001aaaa0d0a").unwrap();
    assert_eq!(
        session.decode(&extended, &mut out),
        Err(DecodeError::Unsupported(0xfd))
    );
    assert_eq!(out, Decoded::default());
    // 0x7878 types are acknowledged even when not decoded, as devices expect.
    let short = hex::decode("787805fd0001aaaa0d0a").unwrap();
    session.decode(&short, &mut out).unwrap();
    assert!(out.records.is_empty());
    assert_eq!(device::parse_reply(&out.reply), Some((0xfd, 0x0001)));
}

// --- Robustness ------------------------------------------------------------

/// Decodes every frame `check` finds in `buf`, checking `check`'s promises.
fn churn(session: &mut Gt06Session, buf: &[u8]) {
    let mut at = 0;
    let mut out = Decoded::default();
    while at < buf.len() {
        match session.check(&buf[at..]) {
            Check::Frame(n) => {
                assert!(
                    n > 0 && n <= buf.len() - at,
                    "frame of {n} in {}",
                    buf.len() - at
                );
                let _ = session.decode(&buf[at..at + n], &mut out);
                at += n;
            }
            Check::Garbage(n) => {
                assert!(n > 0 && n <= buf.len() - at);
                at += n;
            }
            Check::Incomplete(_) => break,
        }
        out.clear();
    }
    // The decoder must also survive frames the splitter would never produce.
    let _ = session.decode(buf, &mut out);
}

fn robustness_sessions() -> Vec<Gt06Session> {
    let models = [
        "", "VL103", "XT40", "SEEWORLD", "LW4G-4B", "R11", "NT20", "G18", "QH302R",
    ];
    models
        .iter()
        .map(|m| {
            let gt06 = Gt06::new(options(true)).with_model(m);
            Gt06Session::identified(&gt06, DeviceId::new("1"))
        })
        .collect()
}

#[test]
fn no_panic_on_truncated_or_flipped_vectors() {
    let rows = support::load(FILE);
    let mut sessions = robustness_sessions();
    for row in &rows {
        let payload = row.payload();
        for session in &mut sessions {
            for cut in 0..=payload.len() {
                churn(session, &payload[..cut]);
            }
            let mut flipped = payload.clone();
            for i in 0..flipped.len() {
                for bit in [0x01, 0x80, 0xff] {
                    flipped[i] ^= bit;
                    churn(session, &flipped);
                    flipped[i] ^= bit;
                }
            }
        }
    }
}

#[test]
fn no_panic_on_random_buffers() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut sessions = robustness_sessions();
    let starts: [&[u8]; 3] = [&[0x78, 0x78], &[0x79, 0x79], &[]];
    for i in 0..5_000 {
        let len = (rng.next() % 300) as usize;
        let mut buf: Vec<u8> = starts[i % 3].to_vec();
        buf.extend(rng.bytes(len));
        if i % 2 == 0 && buf.len() > 4 {
            // Plausible headers: a length that fits, a type that exists, stop bits.
            let total = buf.len() + 2;
            buf[2] = (total.saturating_sub(5)).min(255) as u8;
            buf.extend_from_slice(&[0x0d, 0x0a]);
        }
        let session = &mut sessions[i % 9];
        churn(session, &buf);
    }
}

/// `cargo test --release -p drover-protocols --test gt06_vectors decode_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn decode_speed() {
    let fix = Fix {
        lat: 54.9,
        lon: 24.0,
        speed_kmh: 61.0,
        course_deg: 90.0,
        altitude_m: None,
        satellites: Some(9),
        valid: true,
    };
    let frame = device::location(&record(1_445_350_871_000, Some(fix), true), 7);
    let mut session =
        Gt06Session::identified(&Gt06::new(DecodeOptions::default()), DeviceId::new("1"));
    let mut out = Decoded::default();
    let rounds: u32 = std::env::var("GT06_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        out.clear();
        let Check::Frame(n) = session.check(std::hint::black_box(&frame)) else {
            panic!()
        };
        session.decode(&frame[..n], &mut out).unwrap();
        std::hint::black_box(&out);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!(
        "check + decode of a 0x22 location: {ns:.0} ns ({:.1} M/s)",
        1e3 / ns
    );
}
