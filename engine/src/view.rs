//! The read model: the live fleet as the tick thread last published it.
//!
//! Readers (the API, the WebSocket hub) must never wait for the tick thread,
//! and the tick thread must never wait for them. So after each tick that
//! changed something the tick thread publishes a new immutable [`Fleet`]
//! through an [`ArcSwap`]; a reader takes the current one with
//! [`LiveView::load`] — a few atomic operations — and keeps it as long as
//! it likes, unaffected by later ticks.
//!
//! The map is an `imbl::OrdMap`, a persistent B-tree: publishing a tick's
//! changes copies only the paths to the changed devices and shares the rest
//! with the previous version, so a tick costs O(changed · log n) whatever
//! the fleet size, and old versions live only while a reader holds them.

use std::ops::Bound;
use std::sync::Arc;

use arc_swap::ArcSwap;
use drover_protocols::model::DeviceId;
use imbl::OrdMap;

use crate::io::DeviceState;

/// The live fleet as of one tick: immutable, ordered by device id.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    devices: OrdMap<DeviceId, Arc<DeviceState>>,
    version: u64,
}

impl Fleet {
    /// One device's live state; `None` for a device the engine does not hold.
    pub fn get(&self, id: &DeviceId) -> Option<&Arc<DeviceState>> {
        self.devices.get(id)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Every device, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<DeviceState>> {
        self.devices.values()
    }

    /// The devices whose id sorts after `cursor` (all of them for `None`),
    /// ordered by id: one page after another without skipping or repeating
    /// a device, even when devices come and go between pages.
    pub fn after(&self, cursor: Option<&DeviceId>) -> impl Iterator<Item = &Arc<DeviceState>> {
        let from = cursor.map_or(Bound::Unbounded, |id| Bound::Excluded(id.clone()));
        self.devices
            .range((from, Bound::Unbounded))
            .map(|(_, state)| state)
    }

    /// How many times the view changed before this version: a reader that
    /// sees the same version twice saw the same fleet.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// The published fleet. Cheap to clone; every clone sees the same fleet.
#[derive(Clone, Default)]
pub struct LiveView {
    current: Arc<ArcSwap<Fleet>>,
}

impl LiveView {
    /// The fleet as of the last published tick.
    pub fn load(&self) -> Arc<Fleet> {
        self.current.load_full()
    }

    /// Starts the next version from the current one. Only the tick thread
    /// publishes, so nothing is published between this and
    /// [`Edit::publish`].
    pub(crate) fn edit(&self) -> Edit<'_> {
        Edit {
            view: self,
            devices: self.current.load().devices.clone(),
            changed: false,
        }
    }
}

/// Changes to the view, published together.
pub(crate) struct Edit<'a> {
    view: &'a LiveView,
    devices: OrdMap<DeviceId, Arc<DeviceState>>,
    changed: bool,
}

impl Edit<'_> {
    pub(crate) fn upsert(&mut self, state: DeviceState) {
        self.devices.insert(state.device.clone(), Arc::new(state));
        self.changed = true;
    }

    pub(crate) fn remove(&mut self, device: &DeviceId) {
        self.changed |= self.devices.remove(device).is_some();
    }

    /// Makes the changes visible to readers at once; without changes the
    /// current version stays.
    pub(crate) fn publish(self) {
        if !self.changed {
            return;
        }
        let version = self.view.current.load().version + 1;
        self.view.current.store(Arc::new(Fleet {
            devices: self.devices,
            version,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{CustomAttributes, Kinematics, Obd, Power, Presence};

    fn state(device: &str, last_seen_ms: i64) -> DeviceState {
        DeviceState {
            device: DeviceId::new(device),
            protocol: "gt06",
            last_fix: None,
            kinematics: Kinematics::default(),
            ignition: None,
            power: Power::default(),
            obd: Obd::default(),
            presence: Presence::default(),
            last_seen_ms,
            attributes: CustomAttributes::default(),
            usage: Default::default(),
            odometer_m: 0.0,
            trip: None,
            stop: None,
        }
    }

    fn publish(view: &LiveView, states: &[(&str, i64)]) {
        let mut edit = view.edit();
        for (device, seen) in states {
            edit.upsert(state(device, *seen));
        }
        edit.publish();
    }

    fn ids(fleet: &Fleet, cursor: Option<&str>) -> Vec<String> {
        let cursor = cursor.map(DeviceId::new);
        fleet
            .after(cursor.as_ref())
            .map(|s| s.device.to_string())
            .collect()
    }

    #[test]
    fn a_published_edit_is_what_readers_load_next() {
        let view = LiveView::default();
        assert!(view.load().is_empty());
        publish(&view, &[("b", 1), ("a", 1), ("c", 1)]);
        let fleet = view.load();
        assert_eq!(fleet.len(), 3);
        assert_eq!(fleet.version(), 1);
        assert_eq!(ids(&fleet, None), ["a", "b", "c"]);
        assert_eq!(ids(&fleet, Some("a")), ["b", "c"]);
        assert_eq!(ids(&fleet, Some("bb")), ["c"]);
        assert_eq!(ids(&fleet, Some("c")), Vec::<String>::new());
        publish(&view, &[("b", 2)]);
        let fleet = view.load();
        assert_eq!(
            fleet.get(&DeviceId::new("b")).map(|s| s.last_seen_ms),
            Some(2)
        );
        assert_eq!(
            fleet.get(&DeviceId::new("a")).map(|s| s.last_seen_ms),
            Some(1)
        );
        assert_eq!(fleet.version(), 2);
    }

    #[test]
    fn a_reader_holding_an_old_fleet_does_not_see_later_ticks() {
        let view = LiveView::default();
        publish(&view, &[("a", 1), ("b", 1)]);
        let old = view.load();
        publish(&view, &[("a", 2), ("c", 2)]);
        let mut edit = view.edit();
        edit.remove(&DeviceId::new("b"));
        edit.publish();

        assert_eq!(ids(&old, None), ["a", "b"]);
        assert_eq!(
            old.get(&DeviceId::new("a")).map(|s| s.last_seen_ms),
            Some(1)
        );
        assert_eq!(ids(&view.load(), None), ["a", "c"]);
    }

    #[test]
    fn an_edit_without_changes_keeps_the_version() {
        let view = LiveView::default();
        publish(&view, &[("a", 1)]);
        let mut edit = view.edit();
        edit.remove(&DeviceId::new("never-seen"));
        edit.publish();
        view.edit().publish();
        assert_eq!(view.load().version(), 1);
    }
}
