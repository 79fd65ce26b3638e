//! The node's journal sinks: adapters from [`drover_store::sink::Sink`] to
//! each destination's own client.

use std::sync::Arc;
use std::time::Duration;

use drover_mqtt::Publisher;
use drover_protocols::model::DeviceMessage;
use drover_store::history::History;
use drover_store::influxdb::{Backoff, InfluxClient};
use drover_store::sink::{Sink, SinkError};
use tokio_util::sync::CancellationToken;

/// How long the broker may take to acknowledge a batch before it is sent again.
const MQTT_CONFIRM: Duration = Duration::from_secs(10);

/// Publishes every record on its MQTT topic, moving on only once the broker
/// acknowledged the batch.
pub struct MqttSink {
    pub publisher: Publisher,
}

impl Sink for MqttSink {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    async fn write(&mut self, messages: &[Arc<DeviceMessage>]) -> Result<(), SinkError> {
        self.publisher
            .publish_confirmed(messages, MQTT_CONFIRM)
            .await
            .map_err(|error| SinkError(error.to_string()))
    }
}

/// Stores every record in the embedded history store; a batch is one synced
/// commit there, done on a blocking thread.
pub struct HistorySink {
    pub history: Arc<History>,
}

impl Sink for HistorySink {
    fn name(&self) -> &'static str {
        "history"
    }

    async fn write(&mut self, messages: &[Arc<DeviceMessage>]) -> Result<(), SinkError> {
        let history = Arc::clone(&self.history);
        let batch = messages.to_vec();
        tokio::task::spawn_blocking(move || history.write(&batch))
            .await
            .map_err(|panic| SinkError(format!("history write panicked: {panic}")))?
            .map_err(|error| SinkError(error.to_string()))
    }
}

/// Writes every record to InfluxDB. Transient failures are retried inside
/// (resuming at the chunk that failed); lines InfluxDB refuses (a partial
/// write) are logged by the client and skipped, never sent again.
pub struct InfluxSink {
    pub client: InfluxClient,
    pub shutdown: CancellationToken,
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    async fn write(&mut self, messages: &[Arc<DeviceMessage>]) -> Result<(), SinkError> {
        self.client
            .write_with_retry(messages, &self.shutdown, Backoff::default())
            .await
            .map(|_| ())
            .map_err(|error| SinkError(error.to_string()))
    }
}
