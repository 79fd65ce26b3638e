//! The process's connections: which one holds which device, so that commands
//! can be routed to it, and how many each address holds open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use drover_protocols::model::DeviceId;

use crate::addresses::Addresses;

/// One identified connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Unique per accepted socket, so a stale session cannot unregister its successor.
    pub id: u64,
    pub peer: SocketAddr,
    pub protocol: &'static str,
    /// What the session is to do besides serving the device: write an
    /// encoded command, or close. A flume channel because every connection
    /// holds one: tokio's preallocates a block of 32 slots and pads its state
    /// to cache lines, ~1.3 KiB per idle connection against ~0.2 KiB.
    pub outgoing: flume::Sender<ToDevice>,
}

/// An order to a device's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToDevice {
    /// Bytes to write (an encoded command).
    Bytes(Vec<u8>),
    /// Close the connection: the device was disabled or unregistered.
    Close(&'static str),
}

/// Device → its current connection. A device that reconnects replaces its
/// old entry; the old session's unregister is then a no-op.
///
/// One registry serves every listener of a process, which is what makes
/// `max_connections_per_ip` count across protocols.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<DeviceId, Connection>>>,
    pub(crate) addresses: Addresses,
}

impl Registry {
    pub fn register(&self, device: DeviceId, connection: Connection) {
        self.lock().insert(device, connection);
    }

    pub fn unregister(&self, device: &DeviceId, connection_id: u64) {
        let mut map = self.lock();
        if map.get(device).is_some_and(|c| c.id == connection_id) {
            map.remove(device);
        }
    }

    /// Tells the session holding `device` to close its connection, giving
    /// `reason`; `false` when no session holds it (or its queue is full: a
    /// session that far behind is closed by its own timeouts).
    pub fn disconnect(&self, device: &DeviceId, reason: &'static str) -> bool {
        self.get(device)
            .is_some_and(|c| c.outgoing.try_send(ToDevice::Close(reason)).is_ok())
    }

    pub fn get(&self, device: &DeviceId) -> Option<Connection> {
        self.lock().get(device).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Connection>> {
        // The map stays consistent even if a holder panicked: every operation is
        // a single insert or remove.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
