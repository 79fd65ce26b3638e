//! What the API needs from the node's command service. The node implements
//! it over its durable queue, which delivers to the device's connection;
//! the API only validates, checks the caller and maps errors.

use drover_commands::{CommandError, CommandId, CommandRecord, CommandRequest};
use drover_protocols::model::DeviceId;

use crate::history::BoxFuture;

/// Commands for devices: queued durably, sent when the device is connected.
pub trait CommandStore: Send + Sync + 'static {
    /// Queues `request` for `device` and sends it at once if the device is
    /// connected; the record as it stands then.
    fn submit(
        &self,
        device: DeviceId,
        request: CommandRequest,
    ) -> BoxFuture<'_, Result<CommandRecord, CommandError>>;

    fn get(&self, id: CommandId) -> BoxFuture<'_, Result<Option<CommandRecord>, CommandError>>;

    /// `device`'s latest `limit` commands, newest first.
    fn list(
        &self,
        device: DeviceId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<CommandRecord>, CommandError>>;
}
