//! Connection changes from the device servers, handed to the engine without
//! waiting.
//!
//! Records reach the engine through the journal; connections do not need to:
//! they are not history and die with the process. A session that identified
//! a device or lost its connection notes it here and goes on at once — it
//! never waits for the engine — and each tick takes what accumulated. Changes
//! are kept per device (counts of opened and closed connections), so the
//! board is bounded by the devices that changed since the last tick, however
//! many flaps happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use drover_protocols::model::DeviceId;

use crate::io::Input;

/// Opened and closed connections of one device since the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    protocol: Option<&'static str>,
    opened: u32,
    closed: u32,
}

/// The shared board. Cheap to clone; every clone is the same board.
#[derive(Clone, Default)]
pub struct Connections {
    changes: Arc<Mutex<HashMap<DeviceId, Change>>>,
}

impl Connections {
    /// A connection identified itself as `device`.
    pub fn opened(&self, device: DeviceId, protocol: &'static str) {
        let mut changes = self.lock();
        let change = changes.entry(device).or_insert(Change {
            protocol: None,
            opened: 0,
            closed: 0,
        });
        change.protocol = Some(protocol);
        change.opened = change.opened.saturating_add(1);
    }

    /// A connection of `device` closed.
    pub fn closed(&self, device: DeviceId) {
        let mut changes = self.lock();
        let change = changes.entry(device).or_insert(Change {
            protocol: None,
            opened: 0,
            closed: 0,
        });
        change.closed = change.closed.saturating_add(1);
    }

    /// Appends the accumulated changes to `inputs` as connects before
    /// disconnects (a device that reconnected keeps a connection throughout),
    /// and empties the board.
    pub fn drain_into(&self, inputs: &mut Vec<Input>) {
        let changes = std::mem::take(&mut *self.lock());
        for (device, change) in changes {
            if let Some(protocol) = change.protocol {
                for _ in 0..change.opened {
                    inputs.push(Input::Connected {
                        device: device.clone(),
                        protocol,
                    });
                }
            }
            for _ in 0..change.closed {
                inputs.push(Input::Disconnected {
                    device: device.clone(),
                });
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, Change>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_accumulate_per_device_connects_first() {
        let board = Connections::default();
        let a = DeviceId::new("a");
        board.closed(a.clone());
        board.opened(a.clone(), "gt06");
        board.opened(DeviceId::new("b"), "teltonika");
        let mut inputs = Vec::new();
        board.drain_into(&mut inputs);
        let of_a: Vec<&Input> = inputs
            .iter()
            .filter(|i| matches!(i, Input::Connected { device, .. } | Input::Disconnected { device } if *device == a))
            .collect();
        assert!(matches!(
            of_a[..],
            [Input::Connected { .. }, Input::Disconnected { .. }]
        ));
        assert_eq!(inputs.len(), 3);
        inputs.clear();
        board.drain_into(&mut inputs);
        assert!(inputs.is_empty(), "the board is empty after a drain");
    }
}
