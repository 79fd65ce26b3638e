//! The login: read CONNECT, check who it is, and hand the broker a CONNECT
//! that carries the gateway's own login instead of the client's.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Login};
use rumqttc::mqttbytes::{self, PacketType, Protocol, check};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Access, Close, Gateway, READ_CHUNK};

/// Prepended to the client id of API-key clients on the internal broker, so
/// that none of them can take over (and so disconnect) a session of the
/// node's own connections, which log in with the node account.
const API_KEY_CLIENT_MARK: char = '~';

impl Gateway {
    /// Returns the connection to the internal broker, the client's access,
    /// and whatever the client sent after its CONNECT.
    pub(super) async fn log_in(
        &self,
        client: &mut TcpStream,
    ) -> Result<(TcpStream, Access, BytesMut), Close> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let connect = read_connect(client, &mut buf, self.limits.max_packet_bytes).await?;
        let access = self.authenticate(&connect).await?;
        if let (Access::ApiKey(rights), Some(will)) = (access, &connect.last_will) {
            // The broker publishes a will on the client's behalf: it is a
            // publication like any other.
            if !self.acl.may_publish(rights, &will.topic, will.retain) {
                return Err(Close::ForbiddenWill(will.topic.clone()));
            }
        }
        let connect = self.internal_connect(connect, access)?;
        let mut broker = TcpStream::connect(self.internal)
            .await
            .map_err(Close::BrokerUnavailable)?;
        let _ = broker.set_nodelay(true);
        broker
            .write_all(&connect)
            .await
            .map_err(Close::BrokerUnavailable)?;
        Ok((broker, access, buf))
    }

    async fn authenticate(&self, connect: &Connect) -> Result<Access, Close> {
        let login = connect.login.as_ref().ok_or(Close::NoLogin)?;
        if self.account.matches(&login.username, &login.password) {
            return Ok(Access::Node);
        }
        match self.api_keys.check(&login.username, &login.password).await {
            Some(rights) => Ok(Access::ApiKey(rights)),
            None => Err(Close::BadLogin),
        }
    }

    /// The client's CONNECT as the internal broker must see it.
    fn internal_connect(&self, mut connect: Connect, access: Access) -> Result<BytesMut, Close> {
        connect.login = Some(Login::new(
            self.internal_login.username.as_str(),
            self.internal_login.password(),
        ));
        // An empty id asks the broker to make one up: nothing to take over.
        if access != Access::Node && !connect.client_id.is_empty() {
            connect.client_id.insert(0, API_KEY_CLIENT_MARK);
        }
        let mut out = BytesMut::with_capacity(connect.size());
        connect.write(&mut out).map_err(Close::Malformed)?;
        Ok(out)
    }
}

/// Reads until the first packet is whole; it must be an MQTT 3.1.1 CONNECT.
async fn read_connect(
    client: &mut TcpStream,
    buf: &mut BytesMut,
    max_packet_bytes: usize,
) -> Result<Connect, Close> {
    let header = loop {
        match check(buf.iter(), max_packet_bytes) {
            Ok(header) => break header,
            Err(mqttbytes::Error::InsufficientBytes(more)) => {
                buf.reserve(more.max(READ_CHUNK));
                if client.read_buf(buf).await.map_err(Close::Io)? == 0 {
                    return Err(Close::Gone);
                }
            }
            Err(error) => return Err(Close::from_codec(error)),
        }
    };
    if !matches!(header.packet_type(), Ok(PacketType::Connect)) {
        return Err(Close::NotConnect);
    }
    let frame = buf.split_to(header.frame_length()).freeze();
    if protocol_level(&frame).is_some_and(|level| level != 4) {
        return Err(Close::Protocol);
    }
    match Connect::read(header, frame) {
        Ok(connect) if connect.protocol == Protocol::V4 => Ok(connect),
        Ok(_)
        | Err(mqttbytes::Error::InvalidProtocol | mqttbytes::Error::InvalidProtocolLevel(_)) => {
            Err(Close::Protocol)
        }
        Err(error) => Err(Close::from_codec(error)),
    }
}

/// The protocol level of a CONNECT frame whose protocol name is `MQTT`
/// (3.1.1 and 5). Read before decoding because the codec knows 3.1.1 only
/// and would misread an MQTT 5 CONNECT as malformed, when its client
/// deserves the "unacceptable protocol version" answer.
fn protocol_level(frame: &[u8]) -> Option<u8> {
    let length_bytes = frame.get(1..)?.iter().position(|b| b & 0x80 == 0)? + 1;
    match frame.get(1 + length_bytes..)? {
        [0, 4, b'M', b'Q', b'T', b'T', level, ..] => Some(*level),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_levels_are_read_from_connect_frames() {
        let v311 = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        assert_eq!(protocol_level(&v311), Some(4));
        let v5 = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0];
        assert_eq!(protocol_level(&v5), Some(5));
        let v31 = [
            0x10, 14, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
        ];
        assert_eq!(protocol_level(&v31), None);
        assert_eq!(protocol_level(&[0x10]), None);
        assert_eq!(protocol_level(&[0x10, 0x80, 0x80]), None);
    }
}
