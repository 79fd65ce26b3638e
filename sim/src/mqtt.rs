//! The MQTT side of the latency measurement: subscribes to the server's
//! position topics and tells the [`Ledger`] what arrived when.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::SimError;
use crate::latency::Ledger;

/// How long the broker gets to accept the connection and the subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before rumqttc's next reconnection attempt after a lost connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// A running subscription; [`MqttWatch::stop`] ends it.
pub struct MqttWatch {
    client: AsyncClient,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Connects, subscribes to `{prefix}/devices/+/position` and waits for the
/// broker's SubAck, so that no position sent afterwards can be missed.
pub async fn watch(url: &str, prefix: &str, ledger: Arc<Ledger>) -> Result<MqttWatch, SimError> {
    let broker = parse_url(url)?;
    let id = format!("drover-sim-{}-{}", std::process::id(), unique_suffix());
    let mut options = MqttOptions::new(id, broker.host, broker.port);
    if let Some((user, password)) = broker.login {
        options.set_credentials(user, password);
    }
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 64);
    let topic = format!("{prefix}/devices/+/position");
    client
        .subscribe(topic.as_str(), QoS::AtLeastOnce)
        .await
        .map_err(|e| SimError::Mqtt(format!("subscribing to {topic}: {e}")))?;
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, wait_for_suback(&mut events))
        .await
        .map_err(|_| {
            SimError::Mqtt(format!(
                "no SubAck from {} within {SUBSCRIBE_TIMEOUT:?}",
                redact(url)
            ))
        })??;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(receive(events, ledger, stopped));
    Ok(MqttWatch { client, stop, task })
}

impl MqttWatch {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            tracing::warn!("MQTT receiver did not stop in time");
        }
    }
}

async fn wait_for_suback(events: &mut EventLoop) -> Result<(), SimError> {
    loop {
        let event = events
            .poll()
            .await
            .map_err(|e| SimError::Mqtt(e.to_string()))?;
        if let Event::Incoming(Packet::SubAck(ack)) = event {
            if ack
                .return_codes
                .iter()
                .any(|c| matches!(c, SubscribeReasonCode::Failure))
            {
                return Err(SimError::Mqtt("the broker refused the subscription".into()));
            }
            return Ok(());
        }
    }
}

/// Polls the event loop (nothing moves otherwise) until told to stop.
async fn receive(mut events: EventLoop, ledger: Arc<Ledger>, mut stopped: watch::Receiver<bool>) {
    loop {
        let event = tokio::select! {
            _ = stopped.changed() => return,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                on_position(&ledger, &p.payload, Instant::now())
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
                }
            }
        }
    }
}

/// The two fields of the server's position payload that identify it.
#[derive(Deserialize)]
struct Position<'a> {
    #[serde(borrow)]
    device: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

fn on_position(ledger: &Ledger, payload: &[u8], at: Instant) {
    match parse_position(payload) {
        Some((imei, time_ms)) => ledger.seen(imei, time_ms, at),
        None => ledger.received_other(),
    }
}

/// (IMEI, time in ms) of a position payload; `None` for anything else.
pub fn parse_position(payload: &[u8]) -> Option<(u64, i64)> {
    let p: Position = serde_json::from_slice(payload).ok()?;
    let imei = p.device.parse().ok()?;
    let time = OffsetDateTime::parse(&p.time, &Rfc3339).ok()?;
    let time_ms = i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some((imei, time_ms))
}

/// A broker address from `--mqtt`, with the login it carries, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// `user:password` from the URL: Drover's embedded broker requires one
    /// (the node account or an API key as the password).
    pub login: Option<(String, String)>,
}

/// `mqtt://[user:password@]HOST[:PORT]`.
pub fn parse_url(url: &str) -> Result<BrokerUrl, SimError> {
    let bad = || {
        SimError::Config(format!(
            "--mqtt {:?} is not mqtt://[USER:PASSWORD@]HOST[:PORT]",
            redact(url)
        ))
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.contains("://") || rest.is_empty() {
        return Err(bad());
    }
    let (login, rest) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').ok_or_else(bad)?;
            (Some((user.to_owned(), password.to_owned())), host)
        }
        None => (None, rest),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, port.parse().map_err(|_| bad())?),
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok(BrokerUrl {
        host: host.to_owned(),
        port,
        login,
    })
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:…@{host}")
        }
        None => url.to_owned(),
    }
}

/// Distinguishes two simulators started by one process (tests).
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let at = |host: &str, port| BrokerUrl {
            host: host.into(),
            port,
            login: None,
        };
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").ok(),
            Some(at("127.0.0.1", 1883))
        );
        assert_eq!(
            parse_url("tcp://broker:1884/").ok(),
            Some(at("broker", 1884))
        );
        assert_eq!(parse_url("localhost").ok(), Some(at("localhost", 1883)));
        assert_eq!(parse_url("mqtt://[::1]:1883").ok(), Some(at("::1", 1883)));
        assert_eq!(
            parse_url("mqtt://bench:p@ss:w0rd@127.0.0.1:1883").ok(),
            Some(BrokerUrl {
                login: Some(("bench".into(), "p@ss:w0rd".into())),
                ..at("127.0.0.1", 1883)
            })
        );
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("mqtt://host:port").is_err());
        assert!(parse_url("mqtt://nopassword@host").is_err());
        let error = parse_url("mqtt://u:secret@host:port")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn position_payloads_give_device_and_time() {
        let payload = br#"{"device":"350000000000007","time":"2026-11-26T05:00:00.123Z",
            "lat":52.5,"lon":13.4,"speed_kmh":0.0,"course_deg":0.0,"altitude_m":null,
            "satellites":null,"valid":true,"attributes":{}}"#;
        assert_eq!(
            parse_position(payload),
            Some((350_000_000_000_007, 1_795_669_200_123))
        );
        assert_eq!(parse_position(b"online"), None);
        assert_eq!(
            parse_position(br#"{"device":"x","time":"2026-11-26T05:00:00Z"}"#),
            None
        );
    }
}
