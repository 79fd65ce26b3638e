//! Which trackers the device listeners serve: those in the catalog's device
//! registry, and, with `devices.register_unknown`, unregistered ones too.
//! A disabled device is refused either way.

use std::net::SocketAddr;
use std::sync::Arc;

use drover_catalog::{Admission, Catalog};
use drover_devices::{Admit, Refusal};
use drover_protocols::model::{DeviceId, now_ms};

/// The listeners' answer to "may this device be served?".
#[derive(Clone)]
pub struct Gate {
    pub catalog: Arc<Catalog>,
    /// `devices.register_unknown`.
    pub serve_unknown: bool,
}

impl Gate {
    /// Answered from the catalog's memory. A refused unknown device is
    /// remembered in `catalog.unknown`, so an operator can find and
    /// register it; one served by `serve_unknown` is not, as it shows in the
    /// live state.
    pub fn admit(&self, device: &DeviceId, protocol: &'static str, peer: SocketAddr) -> Admit {
        match self.catalog.admission(device.as_str()) {
            Admission::Registered => Admit::Serve,
            Admission::Disabled => Admit::Refuse(Refusal::Disabled),
            Admission::Unknown if self.serve_unknown => Admit::Serve,
            Admission::Unknown => {
                self.catalog
                    .unknown
                    .refused(device.as_str(), protocol, peer, now_ms());
                Admit::Refuse(Refusal::Unknown)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_catalog::Device;

    use super::*;

    const PEER: &str = "192.0.2.7:40000";

    fn gate(dir: &tempfile::TempDir, serve_unknown: bool) -> Gate {
        Gate {
            catalog: Arc::new(Catalog::open(dir.path()).unwrap()),
            serve_unknown,
        }
    }

    fn register(gate: &Gate, id: &str, disabled: bool) {
        let device = Device {
            id: id.to_owned(),
            disabled,
            ..Device::default()
        };
        gate.catalog.devices.insert(id, device).unwrap();
    }

    fn admit(gate: &Gate, id: &str) -> Admit {
        gate.admit(&DeviceId::new(id), "gt06", PEER.parse().unwrap())
    }

    #[test]
    fn only_registered_devices_are_served_and_unknown_ones_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let gate = gate(&dir, false);
        register(&gate, "111", false);
        register(&gate, "222", true);
        assert_eq!(admit(&gate, "111"), Admit::Serve);
        assert_eq!(admit(&gate, "222"), Admit::Refuse(Refusal::Disabled));
        assert_eq!(admit(&gate, "333"), Admit::Refuse(Refusal::Unknown));
        assert_eq!(admit(&gate, "333"), Admit::Refuse(Refusal::Unknown));
        let unknown = gate.catalog.unknown.list();
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert_eq!((unknown[0].id.as_str(), unknown[0].attempts), ("333", 2));
        assert_eq!(
            (unknown[0].protocol, unknown[0].peer.as_str()),
            ("gt06", PEER)
        );
    }

    #[test]
    fn serving_unknown_devices_still_refuses_disabled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let gate = gate(&dir, true);
        register(&gate, "222", true);
        assert_eq!(admit(&gate, "333"), Admit::Serve);
        assert_eq!(admit(&gate, "222"), Admit::Refuse(Refusal::Disabled));
        assert!(
            gate.catalog.unknown.list().is_empty(),
            "a served device is not listed as refused"
        );
    }
}
