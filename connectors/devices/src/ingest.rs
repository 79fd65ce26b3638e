//! The device servers' one way out: where decoded records and connection
//! events go.

use std::future::Future;
use std::net::SocketAddr;

use drover_protocols::model::{DeviceId, DeviceMessage};

/// The rest of the pipeline has shut down; the session should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ingest pipeline is closed")]
pub struct IngestClosed;

/// Whether a device that identified itself may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Serve,
    Refuse(Refusal),
}

/// Why a device is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not registered")]
    Unknown,
    #[error("disabled")]
    Disabled,
}

/// Receives what the sessions produce.
///
/// `admit` is asked each time a connection names a device (its login),
/// before anything of that device is acked or submitted. `submit` resolves
/// once the records are safely accepted — only then does the session send
/// the device its ack. Implementations apply backpressure by not resolving
/// while their queues are full; they never drop.
pub trait Ingest: Clone + Send + Sync + 'static {
    /// Synchronous: it sits between decoding a login and writing its reply,
    /// and answers from memory.
    fn admit(&self, device: &DeviceId, protocol: &'static str, peer: SocketAddr) -> Admit;

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
