//! Emit: turn what changed this tick into [`Delta`]s in the [`Outbox`].

use bevy_ecs::prelude::*;

use crate::clock::Clock;
use crate::components::{
    CustomAttributes, Device, Ignition, Kinematics, LastFix, LastSeen, Obd, Power, Presence,
};
use crate::io::{Delta, DeviceState};
use crate::systems::Touched;

/// Deltas produced by the last tick; the shell takes them after each tick.
#[derive(Resource, Debug, Default)]
pub struct Outbox(pub Vec<Delta>);

/// What Emit produces besides presence changes.
#[derive(Resource, Debug, Clone, Copy)]
pub struct EmitOptions {
    /// Emit a full [`DeviceState`] for each device whose state changed.
    pub state: bool,
}

pub(crate) type DeviceView<'a> = (
    &'a Device,
    Ref<'a, LastFix>,
    Ref<'a, Kinematics>,
    Ref<'a, Ignition>,
    Ref<'a, Power>,
    Ref<'a, Obd>,
    Ref<'a, Presence>,
    &'a LastSeen,
    Ref<'a, CustomAttributes>,
);

pub fn emit_changes(
    clock: Res<Clock>,
    options: Res<EmitOptions>,
    mut touched: ResMut<Touched>,
    mut outbox: ResMut<Outbox>,
    devices: Query<DeviceView>,
) {
    let mut entities = std::mem::take(&mut touched.0);
    entities.sort_unstable();
    entities.dedup();
    for &entity in &entities {
        let Ok(view) = devices.get(entity) else {
            continue;
        };
        if view.6.is_changed() {
            outbox.0.push(Delta::Presence {
                device: view.0.id.clone(),
                online: view.6.online,
                time_ms: clock.now_ms,
            });
        }
        if options.state && state_changed(&view) {
            outbox.0.push(Delta::State(Box::new(snapshot(&view))));
        }
    }
    entities.clear();
    touched.0 = entities; // keep the allocation for the next tick
}

fn state_changed(view: &DeviceView<'_>) -> bool {
    view.1.is_changed()
        || view.2.is_changed()
        || view.3.is_changed()
        || view.4.is_changed()
        || view.5.is_changed()
        || view.6.is_changed()
        || view.8.is_changed()
}

/// The whole live state of a device.
pub fn snapshot(view: &DeviceView<'_>) -> DeviceState {
    let (device, last_fix, kinematics, ignition, power, obd, presence, seen, attributes) = view;
    DeviceState {
        device: device.id.clone(),
        protocol: device.protocol,
        last_fix: (last_fix.time_ms != 0).then_some(**last_fix),
        kinematics: **kinematics,
        ignition: ignition.0,
        power: **power,
        obd: **obd,
        presence: **presence,
        last_seen_ms: seen.0,
        attributes: (**attributes).clone(),
    }
}
