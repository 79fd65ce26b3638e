//! Moving bytes between a logged-in client and the internal broker.
//!
//! Both directions run in the connection's one task, so a slow client only
//! ever holds up itself (the broker keeps each client's backlog, bounded).
//! Packets pass as whole frames, unchanged, in one write per read; the only
//! decoding is of what the ACL must see (PUBLISH and SUBSCRIBE from an
//! API-key client) and of the SUBACKs of SUBSCRIBEs it filtered.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Publish, SubAck, Subscribe, SubscribeReasonCode};
use rumqttc::mqttbytes::{self, FixedHeader, PacketType, check};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tracing::info;

use super::{Close, Gateway, READ_CHUNK};
use crate::credentials::Rights;

/// SUBSCRIBEs with refused filters that may await their SUBACK at once;
/// a client that sends more without reading the answers is closed.
const MAX_AWAITING: usize = 64;
/// Verdicts on the way from the client side to the broker side.
const VERDICTS: usize = 8;

/// The node account: trusted, so its bytes are copied without a look.
pub(super) async fn splice(
    client: &mut TcpStream,
    mut broker: TcpStream,
    early: BytesMut,
) -> Result<(), Close> {
    broker.write_all(&early).await.map_err(Close::Io)?;
    drop(early);
    let (mut client_read, mut client_write) = client.split();
    let (mut broker_read, mut broker_write) = broker.split();
    // Whichever side ends first ends both: a half-open connection would
    // otherwise hold its task and the broker's session.
    let copied = tokio::select! {
        copied = tokio::io::copy(&mut client_read, &mut broker_write) => copied,
        copied = tokio::io::copy(&mut broker_read, &mut client_write) => copied,
    };
    copied.map(drop).map_err(Close::Io)
}

/// What the client side decided about a SUBSCRIBE with refused filters, for
/// the broker side, which answers it.
#[derive(Debug)]
struct Filtered {
    pkid: u16,
    /// Per filter of the client's SUBSCRIBE, in order.
    allowed: Vec<bool>,
    /// Whether a SUBSCRIBE with the allowed filters went to the broker (no
    /// filter allowed: the gateway answers alone).
    forwarded: bool,
}

/// An API-key client: the ACL applies to what it sends.
pub(super) async fn filtered(
    gateway: &Gateway,
    rights: Rights,
    peer: SocketAddr,
    client: &mut TcpStream,
    mut broker: TcpStream,
    early: BytesMut,
) -> Result<(), Close> {
    let (client_read, client_write) = client.split();
    let (broker_read, broker_write) = broker.split();
    let (verdicts, verdicts_received) = flume::bounded(VERDICTS);
    let mut upstream = Upstream {
        gateway,
        rights,
        peer,
        to: BufWriter::new(broker_write),
        verdicts,
    };
    let max = gateway.limits.max_packet_bytes;
    tokio::select! {
        ended = upstream.run(client_read, early) => ended,
        ended = downstream(broker_read, client_write, verdicts_received, max) => ended,
    }
}

/// A whole packet at the start of `buf`; `None` until one is buffered.
fn frame(buf: &[u8], max_packet_bytes: usize) -> Result<Option<FixedHeader>, Close> {
    match check(buf.iter(), max_packet_bytes) {
        Ok(header) => Ok(Some(header)),
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(error) => Err(Close::from_codec(error)),
    }
}

/// Client → broker, through the ACL.
struct Upstream<'a> {
    gateway: &'a Gateway,
    rights: Rights,
    peer: SocketAddr,
    to: BufWriter<WriteHalf<'a>>,
    verdicts: flume::Sender<Filtered>,
}

impl Upstream<'_> {
    async fn run(&mut self, mut from: ReadHalf<'_>, mut buf: BytesMut) -> Result<(), Close> {
        let max = self.gateway.limits.max_packet_bytes;
        loop {
            while let Some(header) = frame(&buf, max)? {
                self.forward(header, &mut buf).await?;
            }
            self.to.flush().await.map_err(Close::Io)?;
            buf.reserve(READ_CHUNK);
            if from.read_buf(&mut buf).await.map_err(Close::Io)? == 0 {
                return Ok(());
            }
        }
    }

    /// Forwards the packet at the start of `buf` (and removes it), or
    /// refuses it.
    async fn forward(&mut self, header: FixedHeader, buf: &mut BytesMut) -> Result<(), Close> {
        let len = header.frame_length();
        match header.packet_type().map_err(Close::Malformed)? {
            PacketType::Publish => {
                let frame = buf.split_to(len).freeze();
                let publish = Publish::read(header, frame.clone()).map_err(Close::Malformed)?;
                // MQTT 3.1.1 has no way to refuse one PUBLISH (PUBACK carries
                // no error code): closing the connection is the answer.
                let acl = &self.gateway.acl;
                if !acl.may_publish(self.rights, &publish.topic, publish.retain) {
                    return Err(Close::ForbiddenPublish(publish.topic));
                }
                self.write(&frame).await
            }
            PacketType::Subscribe => {
                let frame = buf.split_to(len).freeze();
                let subscribe = Subscribe::read(header, frame.clone()).map_err(Close::Malformed)?;
                self.subscribe(subscribe, &frame).await
            }
            PacketType::Connect => Err(Close::SecondConnect),
            _ => {
                self.write(&buf[..len]).await?;
                buf.advance(len);
                Ok(())
            }
        }
    }

    /// Forwards the allowed filters; the refused ones get a failure code in
    /// the SUBACK, and the connection stays open (MQTT 3.1.1, 3.9.3).
    async fn subscribe(&mut self, subscribe: Subscribe, frame: &Bytes) -> Result<(), Close> {
        let acl = &self.gateway.acl;
        let allowed: Vec<bool> = subscribe
            .filters
            .iter()
            .map(|f| acl.may_subscribe(&f.path))
            .collect();
        if allowed.iter().all(|a| *a) {
            return self.write(frame).await;
        }
        let refused = allowed.iter().filter(|a| !**a).count();
        self.gateway
            .stats
            .refused_filters
            .fetch_add(refused as u64, std::sync::atomic::Ordering::Relaxed);
        info!(peer = %self.peer, refused, "MQTT subscriptions outside the topic prefix refused");
        let pkid = subscribe.pkid;
        let mut kept = Subscribe::new_many(
            subscribe
                .filters
                .into_iter()
                .zip(&allowed)
                .filter_map(|(filter, allowed)| allowed.then_some(filter)),
        );
        kept.pkid = pkid;
        let forwarded = !kept.filters.is_empty();
        // Sent before the SUBSCRIBE goes out, so the broker side knows of it
        // before the SUBACK it rewrites can arrive.
        self.verdicts
            .send_async(Filtered {
                pkid,
                allowed,
                forwarded,
            })
            .await
            .map_err(|_| Close::Gone)?;
        if !forwarded {
            return Ok(());
        }
        let mut out = BytesMut::with_capacity(kept.size());
        kept.write(&mut out).map_err(Close::Malformed)?;
        self.write(&out).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Close> {
        self.to.write_all(bytes).await.map_err(Close::Io)
    }
}

/// Broker → client: whole packets, unchanged but for the SUBACKs of
/// filtered SUBSCRIBEs.
async fn downstream(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    verdicts: flume::Receiver<Filtered>,
    max_packet_bytes: usize,
) -> Result<(), Close> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut awaiting: Vec<Filtered> = Vec::new();
    loop {
        buf.reserve(READ_CHUNK);
        tokio::select! {
            // Verdicts first: one is always queued before the SUBACK it
            // concerns can be read (both sides run in this one task).
            biased;
            verdict = verdicts.recv_async() => {
                let Ok(verdict) = verdict else { return Ok(()) };
                if verdict.forwarded {
                    if awaiting.len() >= MAX_AWAITING {
                        return Err(Close::TooManySubscribes);
                    }
                    awaiting.push(verdict);
                } else {
                    to.write_all(&suback(&verdict, &[])?).await.map_err(Close::Io)?;
                }
            }
            read = from.read_buf(&mut buf) => {
                if read.map_err(Close::Io)? == 0 {
                    return Ok(());
                }
                pass(&mut buf, &mut awaiting, &mut to, max_packet_bytes).await?;
            }
        }
    }
}

/// Writes the whole packets at the start of `buf` to the client in one
/// write (more only around a rewritten SUBACK) and keeps a partial one.
async fn pass(
    buf: &mut BytesMut,
    awaiting: &mut Vec<Filtered>,
    to: &mut WriteHalf<'_>,
    max_packet_bytes: usize,
) -> Result<(), Close> {
    let (mut start, mut end) = (0, 0);
    while let Some(header) = frame(&buf[end..], max_packet_bytes)? {
        let len = header.frame_length();
        if !awaiting.is_empty() && matches!(header.packet_type(), Ok(PacketType::SubAck)) {
            let packet = Bytes::copy_from_slice(&buf[end..end + len]);
            let ack = SubAck::read(header, packet).map_err(Close::Malformed)?;
            if let Some(i) = awaiting.iter().position(|f| f.pkid == ack.pkid) {
                let filtered = awaiting.swap_remove(i);
                to.write_all(&buf[start..end]).await.map_err(Close::Io)?;
                let merged = suback(&filtered, &ack.return_codes)?;
                to.write_all(&merged).await.map_err(Close::Io)?;
                start = end + len;
            }
        }
        end += len;
    }
    to.write_all(&buf[start..end]).await.map_err(Close::Io)?;
    buf.advance(end);
    Ok(())
}

/// The client's SUBACK: the broker's codes for the filters it saw, in
/// order, and failures for the refused ones.
fn suback(filtered: &Filtered, broker_codes: &[SubscribeReasonCode]) -> Result<BytesMut, Close> {
    let mut from_broker = broker_codes.iter().copied();
    let codes = filtered
        .allowed
        .iter()
        .map(|allowed| match allowed {
            true => from_broker.next().unwrap_or(SubscribeReasonCode::Failure),
            false => SubscribeReasonCode::Failure,
        })
        .collect();
    let ack = SubAck::new(filtered.pkid, codes);
    let mut out = BytesMut::with_capacity(ack.size());
    ack.write(&mut out).map_err(Close::Malformed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rumqttc::QoS;

    use super::*;

    #[test]
    fn a_filtered_suback_keeps_the_clients_order() {
        let filtered = Filtered {
            pkid: 7,
            allowed: vec![false, true, false, true],
            forwarded: true,
        };
        let broker = [
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Success(QoS::AtMostOnce),
        ];
        let bytes = suback(&filtered, &broker).unwrap();
        assert_eq!(&bytes[..], &[0x90, 6, 0, 7, 0x80, 1, 0x80, 0]);
    }
}
