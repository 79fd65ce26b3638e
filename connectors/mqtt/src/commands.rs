//! Commands for devices arriving over MQTT on `{prefix}/devices/{id}/command`
//! (their results go out with [`crate::Publisher::command_result`]).
//!
//! A connection of its own, client id `<client_id>-commands`, logged in like
//! the publisher: waiting for the node to take a command must hold back
//! nothing else, so only this event loop waits when the channel is full (and
//! the broker keeps what follows). It subscribes again after every ConnAck,
//! since a broker that restarted has forgotten the subscription, and keeps a
//! session (clean session off) so that a short outage loses no command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, SubscribeReasonCode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::credentials::Credentials;
use crate::publisher::{MAX_BACKOFF, options, qos};
use crate::{MqttConfig, MqttError, payload};

/// Commands received and not yet taken by the node.
pub const QUEUE: usize = 256;
/// Requests (the subscription) queued inside the client.
const REQUEST_QUEUE: usize = 16;

/// A command as received: the device named by the topic (as it appears in
/// topics: `/`, `+` and `#` in ids are `_` there) and the payload, which
/// the node parses (the same JSON as the REST API's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedCommand {
    pub device: String,
    pub payload: Vec<u8>,
}

/// Counters of the commands connection.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Subscriptions the broker confirmed (one per connection).
    pub subscriptions: AtomicU64,
    pub received: AtomicU64,
    /// Retained messages on a command topic, never run.
    pub ignored: AtomicU64,
    pub connection_errors: AtomicU64,
}

/// The receiving end; cheap to clone (clones share one queue).
#[derive(Clone)]
pub struct Commands {
    received: flume::Receiver<ReceivedCommand>,
    pub stats: Arc<CommandStats>,
}

impl Commands {
    /// The next command, in arrival order; `None` once the connection's
    /// task has stopped.
    pub async fn recv(&self) -> Option<ReceivedCommand> {
        self.received.recv_async().await.ok()
    }
}

/// Connects to the configured broker and subscribes to
/// `{prefix}/devices/+/command`. The returned task drives the connection
/// until `shutdown`.
pub fn subscribe(
    config: &MqttConfig,
    account: &Credentials,
    shutdown: CancellationToken,
) -> Result<(Commands, JoinHandle<()>), MqttError> {
    let client_id = format!("{}-commands", config.client_id);
    let (mut options, url) = options(config, account, client_id)?;
    options.set_clean_session(false);
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let (sender, received) = flume::bounded(QUEUE);
    let commands = Commands {
        received,
        stats: Arc::default(),
    };
    let intake = Intake {
        client,
        prefix: config.topic_prefix.clone(),
        qos: qos(config.qos),
        sender,
        stats: Arc::clone(&commands.stats),
        url,
    };
    let task = tokio::spawn(intake.drive(eventloop, shutdown));
    Ok((commands, task))
}

/// The event loop's side.
struct Intake {
    client: AsyncClient,
    prefix: String,
    qos: rumqttc::QoS,
    sender: flume::Sender<ReceivedCommand>,
    stats: Arc<CommandStats>,
    /// Without its password, for logs.
    url: String,
}

impl Intake {
    async fn drive(self, mut eventloop: EventLoop, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    self.on_connected();
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => self.on_subscribed(&ack.return_codes),
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Some(command) = self.command(publish) else {
                        continue;
                    };
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        sent = self.sender.send_async(command) => if sent.is_err() {
                            debug!("MQTT command dropped: nobody takes commands any more");
                        },
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    self.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(url = %self.url, %error, retry_in = ?backoff, "MQTT commands connection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        debug!("MQTT commands event loop stopped");
    }

    fn on_connected(&self) {
        info!(url = %self.url, "MQTT commands connection up");
        let filter = format!("{}/devices/+/command", self.prefix);
        // try_subscribe: this is the event loop, which must not wait on its
        // own request queue; after a ConnAck that queue is empty.
        if let Err(error) = self.client.try_subscribe(filter, self.qos) {
            warn!(%error, "could not subscribe to MQTT commands");
        }
    }

    fn on_subscribed(&self, codes: &[SubscribeReasonCode]) {
        if codes.contains(&SubscribeReasonCode::Failure) {
            warn!(url = %self.url, "the broker refused the MQTT commands subscription");
        } else {
            self.stats.subscriptions.fetch_add(1, Ordering::Release);
        }
    }

    fn command(&self, publish: Publish) -> Option<ReceivedCommand> {
        // A retained command would run again at every subscription.
        let device =
            payload::command_device(&self.prefix, &publish.topic).filter(|_| !publish.retain);
        let Some(device) = device else {
            self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            warn!(topic = ?publish.topic, retain = publish.retain, "MQTT command ignored");
            return None;
        };
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        Some(ReceivedCommand {
            device: device.to_owned(),
            payload: publish.payload.to_vec(),
        })
    }
}
