//! The node's journal sinks: adapters from [`drover_journal::sink::Sink`] to
//! each destination's own client.

use std::sync::Arc;
use std::time::Duration;

use drover_history::History;
use drover_influxdb::{InfluxClient, InfluxError};
use drover_journal::sink::{Sink, SinkError};
use drover_mqtt::Publisher;
use drover_mqtt::publisher::Handed;
use drover_protocols::model::DeviceMessage;

/// How long the broker may take to acknowledge what was published since the
/// last cursor save before it is all published again.
const MQTT_CONFIRM: Duration = Duration::from_secs(10);

/// Publishes every record on its MQTT topic without waiting for each batch's
/// acknowledgements (which would cost a broker round trip per batch in
/// latency and throughput); the cursor moves once the broker acknowledged
/// everything before it.
pub struct MqttSink {
    publisher: Publisher,
    /// Published since the last confirmation.
    handed: Handed,
}

impl MqttSink {
    pub fn new(publisher: Publisher) -> Self {
        MqttSink {
            publisher,
            handed: Handed::default(),
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    async fn write(
        &mut self,
        _first: u64,
        messages: &[Arc<DeviceMessage>],
    ) -> Result<(), SinkError> {
        self.publisher
            .publish_records(messages, &mut self.handed)
            .await
            .map_err(|error| SinkError(error.to_string()))
    }

    async fn confirm(&mut self, position: u64) -> Result<u64, SinkError> {
        self.publisher
            .confirm(&mut self.handed, MQTT_CONFIRM)
            .await
            .map_err(|error| SinkError(error.to_string()))?;
        Ok(position)
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

    async fn write(
        &mut self,
        _first: u64,
        messages: &[Arc<DeviceMessage>],
    ) -> Result<(), SinkError> {
        let history = Arc::clone(&self.history);
        let batch = messages.to_vec();
        tokio::task::spawn_blocking(move || history.write(&batch))
            .await
            .map_err(|panic| SinkError(format!("history write panicked: {panic}")))?
            .map_err(|error| SinkError(error.to_string()))
    }
}

/// Writes every record to InfluxDB, one attempt per batch: the sink runner
/// retries failures with backoff and counts them. Lines InfluxDB refuses (a
/// partial write) are logged by the client and skipped, never sent again.
pub struct InfluxSink {
    pub client: InfluxClient,
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    async fn write(
        &mut self,
        _first: u64,
        messages: &[Arc<DeviceMessage>],
    ) -> Result<(), SinkError> {
        match self.client.write(messages).await {
            Ok(_) => Ok(()),
            Err(error) => {
                if matches!(error, InfluxError::DatabaseNotFound { .. }) {
                    // Dropped, or never created: create it before the retry.
                    let _ = self.client.ensure_database().await;
                }
                if !error.is_transient() {
                    // Retries go on (the runner's), but only an operator helps.
                    tracing::error!(%error, "InfluxDB refuses the records; they wait in the journal until this is fixed");
                }
                Err(SinkError(error.to_string()))
            }
        }
    }
}
