//! Where the device servers' records go: the engine (live state) and the
//! MQTT record publisher, both behind bounded queues.

use std::sync::Arc;

use drover_devices::{Ingest, IngestClosed};
use drover_engine::Input;
use drover_protocols::model::{DeviceId, DeviceMessage};

/// Fans each record out to the engine and the record publisher. A record is
/// accepted — and the device acked — once both queues took it; a full queue
/// makes the session wait, which stops it reading its socket.
#[derive(Clone)]
pub struct Pipeline {
    pub engine: flume::Sender<Input>,
    pub records: flume::Sender<Arc<DeviceMessage>>,
}

impl Ingest for Pipeline {
    async fn submit(&self, records: Vec<DeviceMessage>) -> Result<(), IngestClosed> {
        for record in records {
            let record = Arc::new(record);
            self.records
                .send_async(record.clone())
                .await
                .map_err(|_| IngestClosed)?;
            self.engine
                .send_async(Input::Record(record))
                .await
                .map_err(|_| IngestClosed)?;
        }
        Ok(())
    }

    async fn connected(
        &self,
        device: DeviceId,
        protocol: &'static str,
    ) -> Result<(), IngestClosed> {
        self.engine
            .send_async(Input::Connected { device, protocol })
            .await
            .map_err(|_| IngestClosed)
    }

    async fn disconnected(&self, device: DeviceId) -> Result<(), IngestClosed> {
        self.engine
            .send_async(Input::Disconnected { device })
            .await
            .map_err(|_| IngestClosed)
    }
}
