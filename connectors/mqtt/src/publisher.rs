//! Publishes records and device status to a broker (embedded or external).
//!
//! rumqttc's event loop must be polled continuously or nothing moves, so it
//! runs in its own task; it reconnects by itself with a backoff. `publish`
//! waits when the client's request queue is full, which pushes back on the
//! record queue rather than dropping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use drover_protocols::model::DeviceMessage;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{MqttConfig, redact_url};
use crate::credentials::Credentials;
use crate::{MqttError, payload};

/// Requests queued inside the client before `publish` waits.
const REQUEST_QUEUE: usize = 10_000;
const KEEP_ALIVE: Duration = Duration::from_secs(30);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Largest packet sent or received: the embedded broker's limit.
const MAX_PACKET_BYTES: usize = crate::broker::MAX_PAYLOAD_BYTES;

/// Counters of the publisher.
#[derive(Debug, Default)]
pub struct PublisherStats {
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub connects: AtomicU64,
    pub connection_errors: AtomicU64,
    /// Whether the connection is up (acknowledged by the broker, no error
    /// since).
    pub connected: AtomicBool,
}

/// QoS 1 publications handed to the broker and not acknowledged yet, counted
/// from the event loop's own view: a PUBLISH it sent, a PUBACK it received.
/// Lost with the connection (the broker keeps no session for us), so a lost
/// connection resets it and fails whoever was waiting.
#[derive(Debug, Default)]
struct InFlight {
    sent: AtomicU64,
    unacked: AtomicU64,
    changed: Notify,
}

/// Records a [`Role::Records`] connection handed to its client and the
/// broker has not confirmed yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handed {
    /// Connection failures counted when the first of them was handed over.
    errors: u64,
    /// PUBLISH packets the event loop had sent by then.
    sent: u64,
    count: u64,
}

/// Which connection a [`Publisher`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Status and live state; owns the server's last will.
    Main,
    /// Journal records only, published with [`Publisher::publish_records`]
    /// and confirmed with [`Publisher::confirm`]; client id `<client_id>-records`.
    Records,
}

/// A handle to publish with; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    prefix: Arc<str>,
    qos: QoS,
    /// Set by `disconnect`, so the event loop ends quietly instead of retrying.
    closing: Arc<std::sync::atomic::AtomicBool>,
    in_flight: Arc<InFlight>,
    pub stats: Arc<PublisherStats>,
}

/// Connects to the configured broker, logging in with the URL's
/// `user:password`, else with `account` (on an external broker only when
/// `[mqtt] password` is set). The returned task drives the connection until
/// `shutdown`.
pub fn connect(
    config: &MqttConfig,
    account: &Credentials,
    role: Role,
    shutdown: CancellationToken,
) -> Result<(Publisher, JoinHandle<()>), MqttError> {
    let client_id = match role {
        Role::Main => config.client_id.clone(),
        Role::Records => format!("{}-records", config.client_id),
    };
    let (mut options, url) = options(config, account, client_id)?;
    options.set_inflight(config.max_inflight.max(1));
    if role == Role::Main {
        options.set_last_will(LastWill::new(
            server_topic(&config.topic_prefix),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    }
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let publisher = Publisher {
        client,
        prefix: Arc::from(config.topic_prefix.as_str()),
        qos: qos(config.qos),
        closing: Arc::default(),
        in_flight: Arc::default(),
        stats: Arc::default(),
    };
    let task = tokio::spawn(drive(eventloop, publisher.clone(), role, url, shutdown));
    Ok((publisher, task))
}

/// The options every connection of the node shares, and the broker's URL
/// without its password, for logs.
pub(crate) fn options(
    config: &MqttConfig,
    account: &Credentials,
    client_id: String,
) -> Result<(MqttOptions, String), MqttError> {
    let url = config.publish_url()?;
    let target = BrokerUrl::parse(&url)?;
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    if let Some((user, password)) = login(config, target, account) {
        options.set_credentials(user, password);
    }
    Ok((options, redact_url(&url)))
}

/// What the node's connections log in with: the URL's own user and
/// password; else, on the embedded broker, the node account; else (an
/// external broker) the node account when `[mqtt] password` is set, and
/// nothing otherwise, as before brokers needed a login.
fn login(
    config: &MqttConfig,
    target: BrokerUrl,
    account: &Credentials,
) -> Option<(String, String)> {
    let embedded = config.url.trim().is_empty();
    target.credentials.or_else(|| {
        (embedded || config.configured_password().is_some())
            .then(|| (account.username.clone(), account.password().to_owned()))
    })
}

impl Publisher {
    /// Publishes one record on its position or event topic.
    pub async fn record(&self, message: &DeviceMessage) -> Result<(), MqttError> {
        let (topic, body) = payload::record(&self.prefix, message);
        self.send(topic, body, false).await
    }

    /// Publishes a device's retained online/offline status.
    pub async fn status(&self, device: &str, online: bool) -> Result<(), MqttError> {
        let (topic, body) = payload::status(&self.prefix, device, online);
        self.send(topic, body.to_vec(), true).await
    }

    /// Publishes a trip that opened or closed on `{prefix}/devices/{device}/trip`.
    pub async fn trip(&self, trip: &payload::TripPayload<'_>) -> Result<(), MqttError> {
        let (topic, body) = payload::trip(&self.prefix, trip);
        self.send(topic, body, false).await
    }

    /// Publishes a stop that opened or closed on `{prefix}/devices/{device}/stop`.
    pub async fn stop(&self, stop: &payload::StopPayload<'_>) -> Result<(), MqttError> {
        let (topic, body) = payload::stop(&self.prefix, stop);
        self.send(topic, body, false).await
    }

    /// Publishes a device's daily summary (its JSON, `json`), retained, on
    /// `{prefix}/devices/{device}/summary`.
    pub async fn summary(&self, device: &str, json: Vec<u8>) -> Result<(), MqttError> {
        let topic = payload::summary_topic(&self.prefix, device);
        self.send(topic, json, true).await
    }

    /// Publishes an alert's change on `{prefix}/devices/{device}/alert`.
    pub async fn alert(&self, alert: &payload::AlertPayload<'_>) -> Result<(), MqttError> {
        let (topic, body) = payload::alert(&self.prefix, alert);
        self.send(topic, body, false).await
    }

    /// Publishes an alert (its JSON, `json`) for the notification rule
    /// `rule` on `{prefix}/notifications/{rule}`.
    pub async fn notification(&self, rule: &str, json: Vec<u8>) -> Result<(), MqttError> {
        let topic = payload::notification_topic(&self.prefix, rule);
        self.send(topic, json, false).await
    }

    /// Publishes the result of a command on
    /// `{prefix}/devices/{device}/command/result`; `json` is what the node
    /// composed. Meant for the [`Role::Main`] connection, whose event loop
    /// never waits for the node (the commands connection's does).
    pub async fn command_result(&self, device: &str, json: Vec<u8>) -> Result<(), MqttError> {
        let topic = payload::command_result_topic(&self.prefix, device);
        self.send(topic, json, false).await
    }

    async fn send(&self, topic: String, body: Vec<u8>, retain: bool) -> Result<(), MqttError> {
        self.client
            .publish(topic, self.qos, retain, body)
            .await
            .map_err(|_| MqttError::PublisherClosed)?;
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Hands `messages` to the client for publishing on their topics, and
    /// adds them to `handed`; [`Publisher::confirm`] later tells when the
    /// broker has them all. Returns once they are queued (waits only while
    /// the client's request queue is full), so publishing never stops for a
    /// round trip to the broker.
    pub async fn publish_records(
        &self,
        messages: &[Arc<DeviceMessage>],
        handed: &mut Handed,
    ) -> Result<(), MqttError> {
        if handed.count == 0 {
            *handed = self.mark();
        }
        for message in messages {
            self.record(message).await?;
            handed.count += 1;
        }
        Ok(())
    }

    /// Where a [`Role::Records`] connection stands now: nothing handed yet.
    fn mark(&self) -> Handed {
        Handed {
            errors: self.stats.connection_errors.load(Ordering::Acquire),
            sent: self.in_flight.sent.load(Ordering::Acquire),
            count: 0,
        }
    }

    /// Returns once the broker acknowledged everything in `handed` (QoS 1),
    /// so a journal cursor may move past it, and empties `handed`. Meant for
    /// a [`Role::Records`] connection that nothing else publishes on: the
    /// acknowledgements are counted, not matched. A connection lost since the
    /// records were handed over, or `limit` passing, fails: the caller
    /// publishes them again (at least once).
    pub async fn confirm(&self, handed: &mut Handed, limit: Duration) -> Result<(), MqttError> {
        let target = std::mem::take(handed);
        if target.count == 0 || self.qos == QoS::AtMostOnce {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.in_flight.changed.notified();
            let sent = self.in_flight.sent.load(Ordering::Acquire) - target.sent;
            let unacked = self.in_flight.unacked.load(Ordering::Acquire);
            if self.stats.connection_errors.load(Ordering::Acquire) != target.errors {
                return Err(MqttError::Unconfirmed(target.count));
            }
            if sent >= target.count && unacked == 0 {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(MqttError::Unconfirmed(
                    unacked + target.count.saturating_sub(sent),
                ));
            }
        }
    }

    /// Waits, at most `limit`, until the broker acknowledged everything
    /// published so far (QoS 1); returns at once for QoS 0.
    pub async fn wait_acked(&self, limit: Duration) {
        if self.qos == QoS::AtMostOnce {
            return;
        }
        let started = std::time::Instant::now();
        while self.stats.acked.load(Ordering::Relaxed)
            < self.stats.published.load(Ordering::Relaxed)
            && started.elapsed() < limit
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the connection with a clean DISCONNECT.
    pub async fn disconnect(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect().await;
    }
}

async fn drive(
    mut eventloop: rumqttc::EventLoop,
    publisher: Publisher,
    role: Role,
    url: String,
    shutdown: CancellationToken,
) {
    let in_flight = &publisher.in_flight;
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                publisher.stats.connects.fetch_add(1, Ordering::Relaxed);
                publisher.stats.connected.store(true, Ordering::Release);
                info!(%url, ?role, "connected to MQTT broker");
                if role == Role::Main {
                    announce_online(&publisher);
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                in_flight.unacked.fetch_add(1, Ordering::AcqRel);
                in_flight.sent.fetch_add(1, Ordering::AcqRel);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                publisher.stats.acked.fetch_add(1, Ordering::Relaxed);
                let before =
                    in_flight
                        .unacked
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                            Some(n.saturating_sub(1))
                        });
                // A waiter can only be done once nothing is unacknowledged:
                // waking it on every event would cost two wake-ups a message.
                if before == Ok(1) {
                    in_flight.changed.notify_waiters();
                }
            }
            Ok(_) => {}
            Err(_) if publisher.closing.load(Ordering::Relaxed) => break,
            Err(error) => {
                publisher
                    .stats
                    .connection_errors
                    .fetch_add(1, Ordering::Release);
                publisher.stats.connected.store(false, Ordering::Release);
                in_flight.unacked.store(0, Ordering::Release);
                // rumqttc keeps the event of a publish that failed mid-write
                // and hands it out after the next ConnAck, though the clean
                // session dropped the publish itself: counted, it would stay
                // unacknowledged for ever and no confirmation would pass.
                eventloop.state.events.clear();
                in_flight.changed.notify_waiters();
                warn!(%url, %error, retry_in = ?backoff, "MQTT connection failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    debug!("MQTT event loop stopped");
}

/// Retained `{prefix}/server/status = online`; the last will sets it offline.
fn announce_online(publisher: &Publisher) {
    let topic = server_topic(&publisher.prefix);
    // try_publish: called from the event loop itself, which must not wait on
    // its own request queue.
    match publisher
        .client
        .try_publish(topic, QoS::AtLeastOnce, true, "online")
    {
        Ok(()) => {
            publisher.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => debug!("server status not queued; the request queue is full"),
    }
}

fn server_topic(prefix: &str) -> String {
    format!("{prefix}/server/status")
}

pub(crate) fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// `mqtt://[user:password@]host[:port]` (also `tcp://`).
#[derive(Debug, PartialEq)]
struct BrokerUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl BrokerUrl {
    fn parse(url: &str) -> Result<Self, MqttError> {
        let bad = || MqttError::BadUrl(url.to_owned());
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), password.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (hostport, 1883),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(BrokerUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.credentials),
            ("127.0.0.1", 1884, None)
        );
        let u = BrokerUrl::parse("tcp://bob:s3cret@broker").unwrap();
        assert_eq!(u.port, 1883);
        assert_eq!(u.credentials, Some(("bob".into(), "s3cret".into())));
        assert!(BrokerUrl::parse("http://x").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://h:port").is_err());
    }

    #[test]
    fn logins_follow_the_broker() {
        let account = Credentials::new("drover", "generated");
        let node = Some(("drover".to_owned(), "generated".to_owned()));
        let login_for = |config: &MqttConfig| {
            let target = BrokerUrl::parse(&config.publish_url().unwrap()).unwrap();
            login(config, target, &account)
        };
        assert_eq!(login_for(&MqttConfig::default()), node, "embedded");
        let external = MqttConfig {
            url: "mqtt://broker".to_owned(),
            ..MqttConfig::default()
        };
        assert_eq!(login_for(&external), None, "external, anonymous as before");
        let with_password = MqttConfig {
            password: Some("generated".to_owned()),
            ..external.clone()
        };
        assert_eq!(login_for(&with_password), node);
        let in_url = MqttConfig {
            url: "mqtt://bob:s3cret@broker".to_owned(),
            ..with_password
        };
        assert_eq!(
            login_for(&in_url),
            Some(("bob".to_owned(), "s3cret".to_owned()))
        );
    }
}
