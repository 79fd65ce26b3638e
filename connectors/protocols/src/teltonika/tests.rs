//! Session behaviour: identification, acks, and refusing what is wrong
//! without touching the output.

// invariant: test code (cfg(test) only): the unwraps below never see device input.

use super::*;
use crate::model::{RecordKind, Value, attr};

const IMEI: &str = "356307042441013";
const CODEC8: &str = "000000000000002808010000016b40d9ad80010000000000000000000000000000000103021503010101425e100000010000f22a";

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

fn identified() -> TeltonikaSession {
    Teltonika::new(DecodeOptions::default()).session_for(DeviceId::new(IMEI))
}

/// A data field in a valid envelope.
fn packet(data: &[u8]) -> Vec<u8> {
    frame::envelope(data)
}

fn data_of(frame: &[u8]) -> Vec<u8> {
    frame[8..frame.len() - 4].to_vec()
}

/// Decodes into an output that already holds something, and checks that an
/// error leaves it exactly as it was.
fn decode(session: &mut TeltonikaSession, frame: &[u8]) -> Result<Decoded, DecodeError> {
    let before = Decoded {
        records: vec![Record::default()],
        reply: vec![9],
        identified: None,
    };
    let mut out = before.clone();
    match session.decode(frame, &mut out) {
        Ok(()) => {
            out.records.remove(0);
            out.reply.remove(0);
            Ok(out)
        }
        Err(e) => {
            assert_eq!(out, before, "output touched on {e:?}");
            Err(e)
        }
    }
}

#[test]
fn login_identifies_and_is_accepted() {
    let mut session = Teltonika::new(DecodeOptions::default()).session();
    let out = decode(&mut session, &device::login(IMEI)).unwrap();
    assert_eq!(out.reply, [LOGIN_ACCEPTED]);
    assert_eq!(out.identified, Some(DeviceId::new(IMEI)));
    assert_eq!(session.device(), Some(&DeviceId::new(IMEI)));
    let out = decode(&mut session, &bytes(CODEC8)).unwrap();
    assert_eq!(out.reply, [0, 0, 0, 1]);
    assert_eq!(out.records.len(), 1);
}

#[test]
fn a_refused_login_is_answered_0x00_and_udp_has_no_answer() {
    let teltonika = Teltonika::new(DecodeOptions::default());
    assert_eq!(teltonika.session().refusal(), Some(&[LOGIN_REFUSED][..]));
    let udp = teltonika.with_connectionless(true);
    assert_eq!(udp.session().refusal(), None);
}

#[test]
fn an_invalid_imei_is_refused() {
    let mut session = Teltonika::new(DecodeOptions::default()).session();
    for imei in ["35630704244101A", "1234", "35630704244101300"] {
        let result = decode(&mut session, &device::login(imei));
        assert_eq!(result, Err(DecodeError::Invalid { what: "imei" }), "{imei}");
    }
    assert_eq!(session.device(), None);
}

#[test]
fn data_before_the_imei_is_refused() {
    let mut session = Teltonika::new(DecodeOptions::default()).session();
    assert_eq!(
        decode(&mut session, &bytes(CODEC8)),
        Err(DecodeError::NotIdentified)
    );
}

#[test]
fn a_ping_is_accepted_silently() {
    let out = decode(&mut identified(), &[frame::PING]).unwrap();
    assert_eq!(out, Decoded::default());
}

#[test]
fn record_counts_must_agree() {
    let mut data = data_of(&bytes(CODEC8));
    *data.last_mut().unwrap() = 2;
    let result = decode(&mut identified(), &packet(&data));
    assert_eq!(
        result,
        Err(DecodeError::Invalid {
            what: "record count"
        })
    );
}

#[test]
fn a_record_count_beyond_the_records_is_truncated() {
    let mut data = data_of(&bytes(CODEC8));
    data[1] = 2;
    *data.last_mut().unwrap() = 2;
    let result = decode(&mut identified(), &packet(&data));
    assert!(
        matches!(result, Err(DecodeError::Truncated { .. })),
        "{result:?}"
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let data = [data_of(&bytes(CODEC8)), vec![0]].concat();
    let result = decode(&mut identified(), &packet(&data));
    assert_eq!(
        result,
        Err(DecodeError::Invalid {
            what: "data length"
        })
    );
}

#[test]
fn unknown_codecs_are_unsupported() {
    let mut data = data_of(&bytes(CODEC8));
    data[0] = 0x99;
    assert_eq!(
        decode(&mut identified(), &packet(&data)),
        Err(DecodeError::Unsupported(0x99))
    );
    assert_eq!(
        decode(&mut identified(), &packet(&[])),
        Err(DecodeError::Truncated { what: "codec" })
    );
}

#[test]
fn camera_transfers_are_unsupported() {
    let photo = bytes("00000000000000090c010d00000001000100000cd8");
    assert_eq!(
        decode(&mut identified(), &photo),
        Err(DecodeError::Unsupported(0x0d))
    );
}

#[test]
fn bad_checksums_are_refused_unless_accepted() {
    let mut frame = bytes(CODEC8);
    *frame.last_mut().unwrap() ^= 0xff;
    let result = decode(&mut identified(), &frame);
    assert!(
        matches!(result, Err(DecodeError::BadChecksum { .. })),
        "{result:?}"
    );
    let lenient = DecodeOptions {
        accept_bad_checksum: true,
    };
    let mut session = Teltonika::new(lenient).session_for(DeviceId::new(IMEI));
    assert_eq!(decode(&mut session, &frame).unwrap().records.len(), 1);
}

#[test]
fn panic_priority_raises_sos() {
    let mut data = data_of(&bytes(CODEC8));
    data[10] = 2;
    let out = decode(&mut identified(), &packet(&data)).unwrap();
    let attributes = &out.records[0].attributes;
    assert_eq!(attributes.get(avl::PRIORITY), Some(&Value::Int(2)));
    assert_eq!(attributes.get(attr::ALARM), Some(&Value::from("sos")));
}

#[test]
fn a_zero_position_is_an_invalid_fix() {
    let out = decode(&mut identified(), &bytes(CODEC8)).unwrap();
    let record = &out.records[0];
    assert_eq!(record.kind, RecordKind::Position);
    assert_eq!(record.time_ms, 1_560_161_136_000);
    assert!(!record.fix.unwrap().valid);
    assert_eq!(
        record.attributes.get(attr::POWER),
        Some(&Value::Float(24.08))
    );
    assert_eq!(record.attributes.get("in1"), Some(&Value::Bool(true)));
    assert_eq!(record.attributes.get(attr::RSSI), Some(&Value::Int(3)));
}

#[test]
fn connectionless_sessions_take_datagrams() {
    let teltonika = Teltonika::new(DecodeOptions::default()).with_connectionless(true);
    let datagram = bytes(
        "003dcafe0105000f33353230393330383634303336353508010000016b4f815b30010000000000000000000000000000000103021503010101425dbc000001",
    );
    let mut session = teltonika.session();
    assert_eq!(session.check(&datagram), Check::Frame(datagram.len()));
    assert_eq!(
        session.check(&datagram[..10]),
        Check::Incomplete(Some(datagram.len()))
    );
    let out = decode(&mut session, &datagram).unwrap();
    assert_eq!(out.reply, bytes("0005cafe010501"));
    assert_eq!(out.identified, Some(DeviceId::new("352093086403655")));
    assert_eq!(out.records.len(), 1);
    let again = decode(&mut session, &datagram).unwrap();
    assert_eq!(again.identified, None, "the same device is identified once");
    let truncated = &datagram[..datagram.len() - 1];
    assert_eq!(
        decode(&mut session, truncated),
        Err(DecodeError::Truncated { what: "datagram" })
    );
}
