//! The UDP datagram: no handshake, so every datagram names its device.
//!
//! ```text
//! length u16 | packet id u16 | 0x01 | AVL packet id u8 | IMEI length u16 | IMEI
//! | codec data (codec id … second record count, no CRC)
//! ```
//!
//! The ack echoes the packet id and AVL packet id:
//! `0x0005 | packet id | 0x01 | AVL packet id | records accepted u8`.

use super::{Config, Teltonika, device_id};
use crate::model::DeviceId;
use crate::wire::reader::Reader;
use crate::{DecodeError, Decoded};

/// What a datagram says before its codec data.
struct Header<'a> {
    packet_id: u16,
    avl_packet_id: u8,
    imei: &'a [u8],
    data: &'a [u8],
}

fn header(datagram: &[u8]) -> Result<Header<'_>, DecodeError> {
    let mut r = Reader::new(datagram);
    let len = usize::from(r.u16("datagram length")?);
    if len != r.remaining() {
        return Err(if len > r.remaining() {
            DecodeError::Truncated { what: "datagram" }
        } else {
            DecodeError::Invalid {
                what: "datagram length",
            }
        });
    }
    let packet_id = r.u16("packet id")?;
    r.u8("packet type")?;
    let avl_packet_id = r.u8("avl packet id")?;
    let imei_len = usize::from(r.u16("imei length")?);
    let imei = r.take(imei_len, "imei")?;
    Ok(Header {
        packet_id,
        avl_packet_id,
        imei,
        data: r.rest(),
    })
}

/// Decodes one datagram: the device it names goes to `out.identified`.
pub fn decode_datagram(
    teltonika: &Teltonika,
    datagram: &[u8],
    out: &mut Decoded,
) -> Result<(), DecodeError> {
    let device = decode(&teltonika.config, datagram, out)?;
    out.identified = Some(device);
    Ok(())
}

/// Appends the records and the ack; returns the device for the caller to
/// record as it sees fit.
pub(super) fn decode(
    config: &Config,
    datagram: &[u8],
    out: &mut Decoded,
) -> Result<DeviceId, DecodeError> {
    let h = header(datagram)?;
    let device = device_id(h.imei)?;
    if let Some(count) = config.decode_data(h.data, &mut out.records)? {
        out.reply.extend_from_slice(&5u16.to_be_bytes());
        out.reply.extend_from_slice(&h.packet_id.to_be_bytes());
        out.reply.extend_from_slice(&[0x01, h.avl_packet_id, count]);
    }
    Ok(device)
}

/// The length a datagram declares, for [`crate::Session::check`].
pub(crate) fn declared_len(buf: &[u8]) -> Option<usize> {
    Reader::new(buf)
        .u16("datagram length")
        .ok()
        .map(|n| usize::from(n) + 2)
}
