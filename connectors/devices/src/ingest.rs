//! The device servers' one way out: where decoded records and connection
//! events go.

use std::future::Future;

use drover_protocols::model::{DeviceId, DeviceMessage};

/// The rest of the pipeline has shut down; the session should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ingest pipeline is closed")]
pub struct IngestClosed;

/// Receives what the sessions produce.
///
/// `submit` resolves once the records are safely accepted — only then does
/// the session send the device its ack. Implementations apply backpressure by
/// not resolving while their queues are full; they never drop.
pub trait Ingest: Clone + Send + Sync + 'static {
    fn submit(
        &self,
        records: Vec<DeviceMessage>,
    ) -> impl Future<Output = Result<(), IngestClosed>> + Send;

    fn connected(
        &self,
        device: DeviceId,
        protocol: &'static str,
    ) -> impl Future<Output = Result<(), IngestClosed>> + Send;

    fn disconnected(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<(), IngestClosed>> + Send;
}
