//! The Teltonika decoder against every vector in `tests/vectors/teltonika*`
//! (see the README there), and against malformed input.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use drover_protocols::model::{DeviceId, KMH_PER_KNOT, Record, RecordKind, Value, attr};
use drover_protocols::teltonika::avl::{AvlData, AvlRecord, Width};
use drover_protocols::teltonika::{Teltonika, TeltonikaSession, command, udp};
use drover_protocols::{Check, DecodeError, DecodeOptions, Decoded, Protocol, Session};
use serde_json::Value as Json;
use support::{Row, Tally, XorShift, load};

const STRICT: DecodeOptions = DecodeOptions {
    accept_bad_checksum: false,
};
const ACCEPTING: DecodeOptions = DecodeOptions {
    accept_bad_checksum: true,
};

/// The device the docs and derived rows are decoded for (their packets carry
/// no IMEI; the docs' own login is checked separately).
const IMEI: &str = "356307042441013";

/// What one row's checks found wrong; empty means the row agrees.
#[derive(Default)]
struct Verdict(Vec<String>);

impl Verdict {
    fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.0.push(why());
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        self.check(got == want, || {
            format!("{what}: got {got:?}, want {want:?}")
        });
    }

    fn into_tally(self, tally: &mut Tally, row: impl FnOnce() -> String) {
        let Verdict(problems) = self;
        tally.check(problems.is_empty(), || {
            format!("{}: {}", row(), problems.join("; "))
        });
    }
}

fn json_hex(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("four bytes"))
}

fn crc16(data: &[u8]) -> u32 {
    u32::from(crc::Crc::<u16>::new(&crc::CRC_16_ARC).checksum(data))
}

/// A JSON value as the attribute value it stands for.
fn same_value(want: &Json, got: Option<&Value>) -> bool {
    match (want, got) {
        (Json::String(s), Some(Value::Text(t))) => s == t,
        (Json::Bool(b), Some(v)) => v.as_bool() == Some(*b),
        (Json::Number(n), Some(v)) => match (n.as_f64(), v.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            _ => false,
        },
        _ => false,
    }
}

fn check_attributes(v: &mut Verdict, want: &Json, records: &[Record]) {
    let Some(want) = want.as_object() else { return };
    let first = records.first().map(|r| &r.attributes);
    for (key, value) in want {
        let got = first.and_then(|a| a.get(key));
        v.check(same_value(value, got), || {
            format!("attribute {key}: got {got:?}, want {value}")
        });
    }
}

/// The README's sanity bounds, for every record that carries a fix.
fn check_sanity(v: &mut Verdict, records: &[Record]) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for (i, r) in records.iter().enumerate() {
        if let Some(level) = r
            .attributes
            .get(attr::BATTERY_LEVEL)
            .and_then(Value::as_f64)
        {
            v.check((0.0..=100.0).contains(&level), || {
                format!("record {i}: battery level {level}")
            });
        }
        let Some(fix) = r.fix else { continue };
        let time_ok = r.time_ms > 915_148_800_000 && r.time_ms < now_ms + 25 * 3_600_000;
        v.check(time_ok, || {
            format!("record {i}: time {} out of bounds", r.time_ms)
        });
        v.check(fix.lat.abs() <= 90.0 && fix.lon.abs() <= 180.0, || {
            format!("record {i}: {fix:?}")
        });
        let alt_ok = fix
            .altitude_m
            .is_none_or(|a| (-12262.0..=18000.0).contains(&a));
        v.check(alt_ok, || {
            format!("record {i}: altitude {:?}", fix.altitude_m)
        });
        let knots = fix.speed_kmh / KMH_PER_KNOT;
        v.check((0.0..=869.0).contains(&knots), || {
            format!("record {i}: speed {knots} kn")
        });
        v.check((0.0..=360.0).contains(&fix.course_deg), || {
            format!("record {i}: course {}", fix.course_deg)
        });
    }
}

// ---------------------------------------------------------------------------
// teltonika.jsonl: Traccar's test cases.

/// The protocol a row's decoder settings describe.
fn protocol_for(row: &Row, options: DecodeOptions) -> Teltonika {
    let decoder = &row.json["decoder"];
    let connectionless = decoder["ctor_args"][0].as_bool().unwrap_or(false);
    let mut teltonika = Teltonika::new(options).with_connectionless(connectionless);
    if let Some(model) = decoder["setters"]["setModelOverride"][0].as_str() {
        teltonika = teltonika.with_model(model);
    }
    if let Some(extended) = decoder["setters"]["setExtended"][0].as_bool() {
        teltonika = teltonika.with_extended(extended);
    }
    teltonika
}

/// The test method a row comes from: its source without the line number.
fn test_case(row: &Row) -> &str {
    row.source().split(" (line").next().unwrap_or("")
}

/// Rows of each test method in `seq` order, methods in file order.
fn test_cases(rows: &[Row]) -> Vec<Vec<&Row>> {
    let mut cases: Vec<Vec<&Row>> = Vec::new();
    for row in rows {
        match cases.iter_mut().find(|c| test_case(c[0]) == test_case(row)) {
            Some(case) => case.push(row),
            None => cases.push(vec![row]),
        }
    }
    for case in &mut cases {
        case.sort_by_key(|r| r.seq());
    }
    cases
}

fn traccar_row_name(row: &Row) -> String {
    let source = row.source().rsplit('#').next().unwrap_or("");
    format!("line {} ({source}, seq {})", row.line, row.seq())
}

/// The record count an acked codec's frame carries, if it is one.
fn acked_count(row: &Row, payload: &[u8]) -> Option<u32> {
    let acked = matches!(row.json["codec"].as_str(), Some("07" | "08" | "8e" | "10"));
    (acked && row.json["transport"] == "tcp").then(|| payload.get(9).map_or(0, |&n| u32::from(n)))
}

fn check_traccar_message(
    v: &mut Verdict,
    row: &Row,
    result: &Result<(), DecodeError>,
    out: &Decoded,
    options: DecodeOptions,
) {
    let payload = row.payload();
    let expect = row.expect();
    if !row.crc_valid() && !options.accept_bad_checksum {
        let length_ok = payload.len() >= 12 && be32(&payload[4..8]) as usize + 12 == payload.len();
        let refused = match result {
            Err(DecodeError::BadChecksum { .. }) => true,
            Err(
                DecodeError::Invalid {
                    what: "data length",
                }
                | DecodeError::Truncated { what: "data" },
            ) => !length_ok,
            _ => false,
        };
        return v.check(refused, || format!("bad checksum not refused: {result:?}"));
    }
    let returns = expect["returns"].as_str().unwrap_or("");
    if returns == "null" {
        let nothing = match result {
            Ok(()) => out.records.is_empty(),
            // Camera transfers: Traccar asks for the photo, Drover declines.
            Err(DecodeError::Unsupported(0x0d)) => true,
            Err(_) => false,
        };
        return v.check(nothing, || {
            format!("expected no record, got {result:?} {:?}", out.records)
        });
    }
    v.check(result.is_ok(), || format!("decode failed: {result:?}"));
    v.check(!out.records.is_empty(), || "no record".into());
    let location_checked = expect["location_checked"].as_bool().unwrap_or(true);
    if expect["position"] == true && location_checked {
        let all_fixed = out.records.iter().all(|r| r.fix.is_some());
        v.check(all_fixed, || "a record without a fix".into());
    }
    check_attributes(v, &expect["attributes"], &out.records);
    check_sanity(v, &out.records);
    if let Some(count) = acked_count(row, &payload) {
        v.eq("reply", out.reply.clone(), count.to_be_bytes().to_vec());
    }
}

fn check_frame_row(v: &mut Verdict, row: &Row, session: &TeltonikaSession) {
    let payload = row.payload();
    let want = json_hex(&row.expect()["frame"]);
    match session.check(&payload) {
        Check::Frame(n) => v.eq("frame", payload.get(..n).map(<[u8]>::to_vec), Some(want)),
        other => v.check(false, || format!("check gave {other:?}")),
    }
}

fn replay_traccar(options: DecodeOptions, tally: &mut Tally) {
    let rows = load("teltonika.jsonl");
    for case in test_cases(&rows) {
        let mut device: Option<DeviceId> = None;
        for row in case {
            let teltonika = protocol_for(row, options);
            let mut session = match &device {
                Some(d) => teltonika.session_for(d.clone()),
                None => teltonika.session(),
            };
            let mut v = Verdict::default();
            if row.json["kind"] == "frame" {
                check_frame_row(&mut v, row, &session);
            } else {
                let mut out = Decoded::default();
                let result = session.decode(&row.payload(), &mut out);
                check_traccar_message(&mut v, row, &result, &out, options);
                device = session.device().cloned();
            }
            v.into_tally(tally, || traccar_row_name(row));
        }
    }
}

#[test]
fn traccar_vectors() {
    for (options, label) in [(STRICT, "strict"), (ACCEPTING, "accepting bad checksums")] {
        let mut tally = Tally::default();
        replay_traccar(options, &mut tally);
        tally.report(&format!("teltonika.jsonl ({label})"));
        assert!(
            tally.disagree.is_empty(),
            "teltonika.jsonl ({label}) disagrees"
        );
    }
}

// ---------------------------------------------------------------------------
// AVL records decoded field by field (docs and derived rows).

fn width_key(width: Width) -> &'static str {
    match width {
        Width::W1 => "1",
        Width::W2 => "2",
        Width::W4 => "4",
        Width::W8 => "8",
        Width::W16 => "16",
        Width::Var => "x",
    }
}

fn check_io(v: &mut Verdict, i: usize, want: &Json, raw: &AvlRecord<'_>) {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut values: BTreeMap<String, Json> = BTreeMap::new();
    raw.for_each_io(|e| {
        *counts.entry(width_key(e.width)).or_default() += 1;
        let value = match e.width {
            Width::W16 | Width::Var => Json::from(hex::encode(e.bytes)),
            _ => Json::from(e.value()),
        };
        values.insert(e.id.to_string(), value);
    });
    let total: u64 = counts.values().sum();
    v.eq(
        &format!("record {i} io_total"),
        u64::from(raw.io_total),
        want["io_total"].as_u64().unwrap_or(0),
    );
    v.eq(
        &format!("record {i} io elements"),
        total,
        want["io_total"].as_u64().unwrap_or(0),
    );
    for (width, n) in want["io_counts_by_width"].as_object().into_iter().flatten() {
        let got = counts.get(width.as_str()).copied().unwrap_or(0);
        v.eq(
            &format!("record {i} io count of width {width}"),
            got,
            n.as_u64().unwrap_or(0),
        );
    }
    let want_values: BTreeMap<String, Json> = want["io"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.eq(&format!("record {i} io values"), values, want_values);
}

/// Checks the raw record and what the decoder made of it against one
/// expected record.
fn check_record(v: &mut Verdict, i: usize, want: &Json, raw: &AvlRecord<'_>, got: Option<&Record>) {
    let Some(got) = got else {
        return v.check(false, || format!("record {i} missing"));
    };
    let num = |key: &str| want[key].as_i64().unwrap_or(i64::MIN);
    let attr_int = |key: &str| {
        got.attributes
            .get(key)
            .and_then(Value::as_f64)
            .map(|x| x as i64)
    };
    v.eq(
        &format!("record {i} time"),
        (raw.time_ms, got.time_ms),
        (num("timestamp_ms"), num("timestamp_ms")),
    );
    v.eq(
        &format!("record {i} priority"),
        (i64::from(raw.priority), attr_int("priority")),
        (num("priority"), Some(num("priority"))),
    );
    let gps = raw.gps;
    v.eq(
        &format!("record {i} raw position"),
        (i64::from(gps.latitude), i64::from(gps.longitude)),
        (num("latitude_raw"), num("longitude_raw")),
    );
    v.eq(
        &format!("record {i} raw altitude, angle, satellites, speed"),
        (
            i64::from(gps.altitude),
            i64::from(gps.angle),
            i64::from(gps.satellites),
            i64::from(gps.speed),
        ),
        (
            num("altitude_m"),
            num("angle_deg"),
            num("satellites"),
            num("speed_kmh"),
        ),
    );
    v.eq(
        &format!("record {i} event"),
        (i64::from(raw.event_id), attr_int(attr::EVENT)),
        (num("event_io_id"), Some(num("event_io_id"))),
    );
    v.eq(
        &format!("record {i} generation type"),
        raw.generation_type.map(i64::from),
        want["generation_type"].as_i64(),
    );
    check_io(v, i, want, raw);
    check_fix(v, i, want, raw, got);
}

/// The model's fix agrees with the raw GPS element.
fn check_fix(v: &mut Verdict, i: usize, want: &Json, raw: &AvlRecord<'_>, got: &Record) {
    let Some(fix) = got.fix else {
        return v.check(false, || format!("record {i}: no fix"));
    };
    let f = |key: &str| want[key].as_f64().unwrap_or(f64::NAN);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    v.check(
        close(fix.lat, f("latitude")) && close(fix.lon, f("longitude")),
        || format!("record {i}: fix at {}, {}", fix.lat, fix.lon),
    );
    // IO 24 is the device's own speed reading and takes precedence, as in Traccar.
    let mut io24 = None;
    raw.for_each_io(|e| {
        if e.id == 24 && e.width != Width::Var {
            io24 = Some(e.value() as f64)
        }
    });
    v.eq(
        &format!("record {i} fix speed"),
        fix.speed_kmh,
        io24.unwrap_or(f("speed_kmh")),
    );
    v.eq(
        &format!("record {i} fix course, altitude, satellites"),
        (fix.course_deg, fix.altitude_m, fix.satellites),
        (
            f("angle_deg"),
            Some(f("altitude_m")),
            Some(want["satellites"].as_u64().unwrap_or(0) as u8),
        ),
    );
    let valid =
        want["satellites"] != 0 && (want["latitude_raw"] != 0 || want["longitude_raw"] != 0);
    v.eq(&format!("record {i} fix valid"), fix.valid, valid);
    v.eq(&format!("record {i} kind"), got.kind, RecordKind::Position);
}

/// Checks a whole AVL data field (codec id … second count) and its records.
fn check_avl(v: &mut Verdict, expect: &Json, data: &[u8], out: &Decoded) {
    let avl = match AvlData::parse(data, false) {
        Ok(avl) => avl,
        Err(e) => return v.check(false, || format!("parse: {e}")),
    };
    v.eq(
        "codec",
        i64::from(avl.codec),
        expect["codec_id"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "number_of_data_1",
        i64::from(avl.count),
        expect["number_of_data_1"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "number_of_data_2",
        data.last().map(|&n| i64::from(n)),
        expect["number_of_data_2"].as_i64(),
    );
    let want = expect["records"].as_array().cloned().unwrap_or_default();
    v.eq("records", out.records.len(), want.len());
    for (i, (raw, want)) in avl.records().zip(&want).enumerate() {
        check_record(v, i, want, &raw, out.records.get(i));
    }
    check_sanity(v, &out.records);
    v.eq(
        "server ack",
        hex::encode(&out.reply),
        expect["server_ack_hex"].as_str().unwrap_or("").to_owned(),
    );
}

/// The TCP envelope: preamble, declared length, CRC.
fn check_envelope(v: &mut Verdict, expect: &Json, payload: &[u8]) {
    if payload.len() < 12 {
        return v.check(false, || "shorter than an envelope".into());
    }
    let (data, crc) = payload[8..].split_at(payload.len() - 12);
    v.eq(
        "preamble",
        i64::from(be32(&payload[..4])),
        expect["preamble"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "data_field_length",
        i64::from(be32(&payload[4..8])),
        expect["data_field_length"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "data length matches",
        data.len() as i64,
        expect["data_field_length"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "crc16 field",
        i64::from(be32(crc)),
        expect["crc16"].as_i64().unwrap_or(-1),
    );
    v.eq(
        "crc_ok",
        crc16(data) == be32(crc),
        expect["crc_ok"].as_bool().unwrap_or(true),
    );
}

fn decode_on(teltonika: &Teltonika, payload: &[u8]) -> (Result<(), DecodeError>, Decoded) {
    let mut session = teltonika.session_for(DeviceId::new(IMEI));
    let mut out = Decoded::default();
    let result = session.decode(payload, &mut out);
    (result, out)
}

/// A TCP AVL packet row of the docs or derived files.
fn check_tcp_avl_row(v: &mut Verdict, expect: &Json, payload: &[u8]) {
    check_envelope(v, expect, payload);
    let (result, out) = decode_on(&Teltonika::new(STRICT), payload);
    v.check(result.is_ok(), || format!("decode: {result:?}"));
    check_avl(
        v,
        expect,
        payload
            .get(8..payload.len().saturating_sub(4))
            .unwrap_or(&[]),
        &out,
    );
}

// ---------------------------------------------------------------------------
// teltonika_docs.jsonl: Teltonika's documentation examples.

fn check_docs_login(v: &mut Verdict, expect: &Json, payload: &[u8]) {
    let mut session = Teltonika::new(STRICT).session();
    let mut out = Decoded::default();
    let result = session.decode(payload, &mut out);
    v.check(result.is_ok(), || format!("decode: {result:?}"));
    v.eq(
        "imei_length",
        payload.len() as u64 - 2,
        expect["imei_length"].as_u64().unwrap_or(0),
    );
    let imei = expect["imei"].as_str().unwrap_or("");
    v.eq("identified", out.identified, Some(DeviceId::new(imei)));
    v.eq("reply", out.reply, json_hex(&expect["server_reply_hex"]));
}

fn check_docs_udp(v: &mut Verdict, expect: &Json, payload: &[u8]) {
    let mut out = Decoded::default();
    let result = udp::decode_datagram(&Teltonika::new(STRICT), payload, &mut out);
    v.check(result.is_ok(), || format!("decode: {result:?}"));
    let imei = expect["imei"].as_str().unwrap_or("");
    v.eq(
        "identified",
        out.identified.clone(),
        Some(DeviceId::new(imei)),
    );
    let field = |at: usize| {
        payload
            .get(at..at + 2)
            .map_or(0, |b| u64::from(u16::from_be_bytes([b[0], b[1]])))
    };
    v.eq(
        "packet_length",
        field(0),
        expect["packet_length"].as_u64().unwrap_or(0),
    );
    v.eq(
        "packet_id",
        field(2),
        expect["packet_id"].as_u64().unwrap_or(0),
    );
    v.eq(
        "not_usable_byte",
        payload.get(4).map(|&b| u64::from(b)),
        expect["not_usable_byte"].as_u64(),
    );
    v.eq(
        "avl_packet_id",
        payload.get(5).map(|&b| u64::from(b)),
        expect["avl_packet_id"].as_u64(),
    );
    v.eq(
        "imei_length",
        field(6),
        expect["imei_length"].as_u64().unwrap_or(0),
    );
    check_avl(
        v,
        expect,
        payload.get(8 + imei.len()..).unwrap_or(&[]),
        &out,
    );
}

/// Codec 12 and 14 frames: commands and their responses.
fn check_docs_text(v: &mut Verdict, expect: &Json, payload: &[u8]) {
    check_envelope(v, expect, payload);
    let (result, out) = decode_on(&Teltonika::new(STRICT), payload);
    v.check(result.is_ok(), || format!("decode: {result:?}"));
    v.eq(
        "codec",
        payload.get(8).map(|&c| i64::from(c)),
        expect["codec_id"].as_i64(),
    );
    v.eq(
        "number_of_data",
        (
            payload.get(9).copied(),
            payload.get(payload.len() - 5).copied(),
        ),
        (
            Some(expect["number_of_data_1"].as_u64().unwrap_or(0) as u8),
            Some(expect["number_of_data_2"].as_u64().unwrap_or(0) as u8),
        ),
    );
    v.eq(
        "size",
        payload.get(11..15).map(|b| u64::from(be32(b))),
        expect["size"].as_u64(),
    );
    v.eq("records", out.records.len(), 1);
    let Some(record) = out.records.first() else {
        return;
    };
    v.eq("kind", record.kind, RecordKind::CommandResult);
    v.check(
        same_value(&expect["text"], record.attributes.get(attr::RESULT)),
        || format!("result {:?}", record.attributes.get(attr::RESULT)),
    );
    v.check(
        same_value(&expect["type"], record.attributes.get("type")),
        || format!("type {:?}", record.attributes.get("type")),
    );
    v.eq("reply", out.reply.len(), 0);
    if expect["type"] == 5 {
        let text = expect["text"].as_str().unwrap_or("");
        v.eq(
            "command encoder",
            hex::encode(command::encode(text)),
            hex::encode(payload),
        );
    }
}

#[test]
fn teltonika_documentation_examples() {
    let mut tally = Tally::default();
    for row in load("teltonika_docs.jsonl") {
        let (payload, expect) = (row.payload(), row.expect());
        let mut v = Verdict::default();
        match (row.json["transport"].as_str(), expect["codec_hex"].as_str()) {
            (_, None) => check_docs_login(&mut v, expect, &payload),
            (Some("udp"), _) => check_docs_udp(&mut v, expect, &payload),
            (_, Some("0c" | "0d" | "0e")) => check_docs_text(&mut v, expect, &payload),
            _ => check_tcp_avl_row(&mut v, expect, &payload),
        }
        v.into_tally(&mut tally, || {
            format!("{} ({})", row.json["id"].as_str().unwrap_or("?"), row.line)
        });
    }
    tally.report("teltonika_docs.jsonl");
    assert!(tally.disagree.is_empty(), "teltonika_docs.jsonl disagrees");
}

// ---------------------------------------------------------------------------
// teltonika_derived.jsonl: Traccar's packets decoded by another decoder.

#[test]
fn independently_decoded_packets() {
    let mut tally = Tally::default();
    for row in load("teltonika_derived.jsonl") {
        let (payload, expect) = (row.payload(), row.expect());
        let mut v = Verdict::default();
        check_tcp_avl_row(&mut v, expect, &payload);
        let (_, out) = decode_on(&Teltonika::new(STRICT), &payload);
        check_attributes(
            &mut v,
            &row.json["traccar_expect"]["attributes"],
            &out.records,
        );
        v.into_tally(&mut tally, || format!("line {}", row.line));
    }
    tally.report("teltonika_derived.jsonl");
    assert!(
        tally.disagree.is_empty(),
        "teltonika_derived.jsonl disagrees"
    );
}

// ---------------------------------------------------------------------------
// Malformed input: nothing may panic, frames stay within the buffer, and
// errors leave the output untouched.

fn sessions() -> Vec<TeltonikaSession> {
    let identified = |options| Teltonika::new(options).session_for(DeviceId::new(IMEI));
    vec![
        identified(STRICT),
        identified(ACCEPTING),
        Teltonika::new(ACCEPTING)
            .with_extended(true)
            .session_for(DeviceId::new(IMEI)),
        Teltonika::new(STRICT).session(),
        Teltonika::new(ACCEPTING)
            .with_connectionless(true)
            .session(),
    ]
}

fn decode_checked(session: &mut TeltonikaSession, frame: &[u8]) {
    let before = Decoded {
        records: vec![Record::default()],
        reply: vec![7],
        identified: None,
    };
    let mut out = before.clone();
    if session.decode(frame, &mut out).is_err() {
        assert_eq!(
            out,
            before,
            "output touched by a failed decode of {}",
            hex::encode(frame)
        );
    }
}

/// Splits a buffer as the I/O layer would, decoding every frame; also
/// decodes the whole buffer as one frame, as the message rows do.
fn exercise(session: &mut TeltonikaSession, buf: &[u8]) {
    decode_checked(session, buf);
    let mut rest = buf;
    loop {
        match session.check(rest) {
            Check::Frame(n) => {
                assert!(
                    n > 0 && n <= rest.len(),
                    "frame of {n} in {} bytes",
                    rest.len()
                );
                decode_checked(session, &rest[..n]);
                rest = &rest[n..];
            }
            Check::Garbage(n) => {
                assert!(
                    n > 0 && n <= rest.len(),
                    "garbage of {n} in {} bytes",
                    rest.len()
                );
                rest = &rest[n..];
            }
            Check::Incomplete(Some(n)) => {
                assert!(
                    n > rest.len(),
                    "incomplete at {n} with {} bytes",
                    rest.len()
                );
                break;
            }
            Check::Incomplete(None) => break,
        }
    }
}

fn all_payloads() -> Vec<Vec<u8>> {
    let files = [
        "teltonika.jsonl",
        "teltonika_docs.jsonl",
        "teltonika_derived.jsonl",
    ];
    let mut payloads: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| load(f))
        .map(|r| r.payload())
        .collect();
    payloads.extend(
        load("teltonika_commands.jsonl")
            .iter()
            .map(|r| json_hex(&r.json["expected_output"])),
    );
    payloads
}

#[test]
fn truncated_and_corrupted_vectors_never_panic() {
    let mut sessions = sessions();
    for payload in all_payloads() {
        for session in &mut sessions {
            for len in 0..=payload.len() {
                exercise(session, &payload[..len]);
            }
            let mut flipped = payload.clone();
            for i in 0..flipped.len() {
                flipped[i] ^= 0xff;
                exercise(session, &flipped);
                flipped[i] ^= 0xff;
            }
        }
    }
}

/// Random bytes, alone and behind each kind of valid header so that the
/// decoders below the envelope see them too.
#[test]
fn random_buffers_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut sessions = sessions();
    for i in 0..4000 {
        let len = (rng.next() % 300) as usize;
        let body = rng.bytes(len);
        let codec = [0x07, 0x08, 0x8e, 0x10, 0x0c, 0x0d, 0x0e][i % 7];
        let mut data = vec![codec, (rng.next() % 4) as u8];
        data.extend_from_slice(&body);
        let framed = [
            &[0, 0, 0, 0][..],
            &(data.len() as u32).to_be_bytes(),
            &data,
            &crc16(&data).to_be_bytes(),
        ]
        .concat();
        let datagram = [
            &((data.len() + 21) as u16).to_be_bytes()[..],
            &[0xca, 0xfe, 1, 1, 0, 15],
            IMEI.as_bytes(),
            &data,
        ]
        .concat();
        for session in &mut sessions {
            for buf in [&body, &framed, &datagram] {
                exercise(session, buf);
            }
        }
    }
}
