//! Emit: turn what changed this tick into [`Delta`]s in the [`Outbox`].

use bevy_ecs::change_detection::{DetectChanges, Tick};
use bevy_ecs::prelude::*;
use bevy_ecs::query::QueryData;
use bevy_ecs::system::SystemChangeTick;
use bevy_ecs::system::SystemParam;

use crate::clock::Clock;
use crate::components::{
    CustomAttributes, Device, Ignition, Kinematics, LastFix, LastSeen, Obd, Power, Presence,
    Reports,
};
use crate::io::{Delta, DeviceState};
use crate::systems::alerts::AlertChanged;
use crate::systems::derived::AttributesDerived;
use crate::systems::stops::{Stop, StopChanged, StopSummary, Stops};
use crate::systems::trips::{Trip, TripChanged, TripOf, TripSummary, Trips};
use crate::systems::usage::Usage;

/// Deltas produced by the last tick; the shell takes them after each tick.
#[derive(Resource, Debug, Default)]
pub struct Outbox(pub Vec<Delta>);

/// What Emit produces besides presence changes.
#[derive(Resource, Debug, Clone, Copy)]
pub struct EmitOptions {
    /// Emit a full [`DeviceState`] for each device whose state changed.
    pub state: bool,
}

/// Everything the API and live views show of a device.
#[derive(QueryData)]
pub struct DeviceView {
    pub device: &'static Device,
    pub last_fix: Ref<'static, LastFix>,
    pub kinematics: Ref<'static, Kinematics>,
    pub ignition: Ref<'static, Ignition>,
    pub power: Ref<'static, Power>,
    pub obd: Ref<'static, Obd>,
    pub presence: Ref<'static, Presence>,
    pub seen: Ref<'static, LastSeen>,
    pub attributes: Ref<'static, CustomAttributes>,
    pub usage: Ref<'static, Usage>,
    pub trips: Option<Ref<'static, Trips>>,
    pub stops: Option<Ref<'static, Stops>>,
}

/// What Detect derived this tick, drained into deltas.
#[derive(SystemParam)]
pub struct Derived<'w> {
    trips: ResMut<'w, Messages<TripChanged>>,
    stops: ResMut<'w, Messages<StopChanged>>,
    alerts: ResMut<'w, Messages<AlertChanged>>,
    attributes: ResMut<'w, Messages<AttributesDerived>>,
}

/// The world tick of the last snapshot restore, until Emit has run after
/// it: a restored world is no change to announce (the runtime loads its
/// read model from the engine), so what only the restore changed is not
/// emitted.
#[derive(Resource, Debug, Default)]
pub struct RestoredAt(pub Option<Tick>);

/// Devices something shown of may have changed since the last tick, found
/// by Bevy's change detection, so no system needs to tell Emit: those that
/// sent records (what Ingest and Derive change follows from them), changed
/// connections, got derived attributes or opened or closed a trip or stop.
/// Few columns, as the scan passes over the whole fleet every tick.
type ChangedDevice = (
    With<Device>,
    Or<(
        Changed<Reports>,
        Changed<Presence>,
        Changed<CustomAttributes>,
        Changed<Trips>,
        Changed<Stops>,
    )>,
);

#[allow(clippy::too_many_arguments)] // a system's parameters are its data access
pub fn emit_changes(
    clock: Res<Clock>,
    options: Res<EmitOptions>,
    mut outbox: ResMut<Outbox>,
    mut derived: Derived,
    changed: Query<Entity, ChangedDevice>,
    moved: Query<&TripOf, Changed<Trip>>,
    devices: Query<DeviceView>,
    open_trips: Query<Ref<Trip>>,
    open_stops: Query<&Stop>,
    mut restored: ResMut<RestoredAt>,
    ticks: SystemChangeTick,
    mut entities: Local<Vec<Entity>>,
) {
    outbox
        .0
        .extend(derived.trips.drain().map(|changed| match changed {
            TripChanged::Opened(trip) | TripChanged::Closed(trip) => Delta::Trip(Box::new(trip)),
        }));
    outbox
        .0
        .extend(derived.stops.drain().map(|changed| match changed {
            StopChanged::Opened(stop) | StopChanged::Closed(stop) => Delta::Stop(Box::new(stop)),
        }));
    outbox.0.extend(
        derived
            .alerts
            .drain()
            .map(|AlertChanged(alert)| Delta::Alert(Box::new(alert))),
    );
    outbox.0.extend(
        derived
            .attributes
            .drain()
            .map(|AttributesDerived(record)| Delta::Derived(record)),
    );
    entities.clear();
    entities.extend(&changed);
    // A trip that moved changes its device's live state.
    entities.extend(moved.iter().map(|owner| owner.0));
    entities.sort_unstable();
    entities.dedup();
    let restored_at = restored.0.take();
    for &entity in entities.iter() {
        let Ok(view) = devices.get(entity) else {
            continue;
        };
        let trip = view
            .trips
            .as_ref()
            .and_then(|trips| trips.open)
            .and_then(|entity| open_trips.get(entity).ok());
        if let Some(at) = restored_at
            && !changed_since(&view, trip.as_ref(), at, ticks.this_run())
        {
            continue;
        }
        if view.presence.is_changed() {
            outbox.0.push(Delta::Presence {
                device: view.device.id.clone(),
                online: view.presence.online,
                time_ms: clock.now_ms,
            });
        }
        let trip_changed = trip.as_ref().is_some_and(|trip| trip.is_changed());
        if options.state && (trip_changed || state_changed(&view)) {
            let trip = trip.as_deref().map(|trip| &trip.summary);
            let stop = view
                .stops
                .as_ref()
                .and_then(|stops| stops.open)
                .and_then(|entity| open_stops.get(entity).ok())
                .map(|stop| &stop.0);
            outbox
                .0
                .push(Delta::State(Box::new(snapshot(&view, trip, stop))));
        }
    }
}

/// Whether anything shown of the device changed after world tick `at`.
fn changed_since(
    view: &DeviceViewItem<'_, '_>,
    trip: Option<&Ref<Trip>>,
    at: Tick,
    now: Tick,
) -> bool {
    let newer = |tick: Tick| tick.is_newer_than(at, now);
    [
        view.seen.last_changed(),
        view.presence.last_changed(),
        view.last_fix.last_changed(),
        view.kinematics.last_changed(),
        view.ignition.last_changed(),
        view.power.last_changed(),
        view.obd.last_changed(),
        view.attributes.last_changed(),
        view.usage.last_changed(),
    ]
    .into_iter()
    .chain(view.trips.as_ref().map(|t| t.last_changed()))
    .chain(view.stops.as_ref().map(|s| s.last_changed()))
    .chain(trip.map(|t| t.last_changed()))
    .any(newer)
}

/// Whether anything shown changed (the open trip aside). [`LastSeen`] counts too: the read model
/// built from these deltas must say when a device that only sends
/// heartbeats was last heard from.
fn state_changed(view: &DeviceViewItem<'_, '_>) -> bool {
    view.seen.is_changed()
        || view.last_fix.is_changed()
        || view.kinematics.is_changed()
        || view.ignition.is_changed()
        || view.power.is_changed()
        || view.obd.is_changed()
        || view.presence.is_changed()
        || view.attributes.is_changed()
        || view.usage.is_changed()
        || view.trips.as_ref().is_some_and(|trips| trips.is_changed())
        || view.stops.as_ref().is_some_and(|stops| stops.is_changed())
}

/// The whole live state of a device, with its open trip or stop.
pub fn snapshot(
    view: &DeviceViewItem<'_, '_>,
    trip: Option<&TripSummary>,
    stop: Option<&StopSummary>,
) -> DeviceState {
    DeviceState {
        device: view.device.id.clone(),
        protocol: view.device.protocol,
        last_fix: (view.last_fix.time_ms != 0).then_some(*view.last_fix),
        kinematics: *view.kinematics,
        ignition: view.ignition.0,
        power: *view.power,
        obd: *view.obd,
        presence: *view.presence,
        last_seen_ms: view.seen.0,
        attributes: (*view.attributes).clone(),
        usage: *view.usage,
        odometer_m: view
            .usage
            .device_odometer_m
            .unwrap_or(view.kinematics.distance_m),
        trip: trip.map(|trip| Box::new(trip.clone())),
        stop: stop.map(|stop| Box::new(stop.clone())),
    }
}
