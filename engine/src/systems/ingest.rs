//! Ingest: apply the tick's inputs to Device entities.
//!
//! Two steps: spawning entities for devices seen for the first time needs the
//! whole World (exclusive and rare); applying inputs to existing entities is an
//! ordinary system with a cached query.

use bevy_ecs::prelude::*;
use drover_protocols::model::attr::Known;
use drover_protocols::model::{DeviceId, DeviceMessage, Entry, Fix, Record, Value};
use std::collections::HashMap;

use bevy_ecs::query::QueryData;
use bevy_ecs::system::SystemParam;

use crate::clock::Clock;
use crate::components::{
    CustomAttributes, Device, Ignition, Kinematics, LastFix, LastSeen, Obd, Power, Presence,
    Reports, Trail,
};
use crate::io::Input;
use crate::systems::alarms::KnownDtcs;
use crate::systems::alerts::DeviceAlerts;
use crate::systems::fuel::FuelWatch;
use crate::systems::geofences::Inside;
use crate::systems::harsh::LastSpeed;
use crate::systems::overspeed::Speeding;
use crate::systems::presence::PresenceTimeout;
use crate::systems::stops::Stops;
use crate::systems::trips::Trips;
use crate::systems::usage::Usage;

/// The inputs of the current tick, in arrival order. Filled by the shell.
#[derive(Resource, Debug, Default)]
pub struct Incoming(pub Vec<Input>);

/// Where [`apply_inputs`] sends this tick's inputs, built by [`spawn_devices`]
/// (which looks every device up anyway, so each input costs one index lookup).
///
/// Visiting by entity rather than by arrival walks the component columns
/// forwards instead of jumping across a fleet-sized table per input: over a
/// large fleet that is the difference between a cache and TLB miss per
/// component and a stream the hardware prefetches. A device's inputs keep
/// their arrival order (the position breaks ties).
#[derive(Resource, Debug, Default)]
pub struct IngestOrder {
    /// The entity of each input of [`Incoming`], by position (`None`: a
    /// disconnect of a device never seen).
    entities: Vec<Option<Entity>>,
    /// `(entity index << 32) | position`, sorted: the visiting order.
    order: Vec<u64>,
}

/// Device identity → entity. foldhash is several times faster than SipHash on
/// short keys like IMEIs, and randomly seeded per process, so ids crafted by a
/// device cannot force collisions.
#[derive(Resource, Debug, Default)]
pub struct DeviceIndex(pub HashMap<DeviceId, Entity, foldhash::fast::RandomState>);

impl DeviceIndex {
    pub fn get(&self, device: &DeviceId) -> Option<Entity> {
        self.0.get(device).copied()
    }
}

/// Spawns an entity for every device this tick names for the first time, and
/// puts the tick's inputs in [`IngestOrder`].
pub fn spawn_devices(world: &mut World) {
    world.resource_scope(|world, incoming: Mut<Incoming>| {
        world.resource_scope(|world, mut order: Mut<IngestOrder>| {
            world.resource_scope(|world, mut index: Mut<DeviceIndex>| {
                let order = &mut *order;
                order.entities.clear();
                order.order.clear();
                for (at, input) in incoming.0.iter().enumerate() {
                    let entity = resolve(world, &mut index, input);
                    if let Some(entity) = entity {
                        order
                            .order
                            .push((u64::from(entity.index_u32()) << 32) | at as u64);
                    }
                    order.entities.push(entity);
                }
                order.order.sort_unstable();
            });
        });
    });
}

/// The entity `input` is about, spawned if it is new (`None` for a disconnect
/// of a device never seen).
fn resolve(world: &mut World, index: &mut DeviceIndex, input: &Input) -> Option<Entity> {
    let (device, protocol) = match input {
        Input::Connected { device, protocol } => (device, *protocol),
        Input::Record(m) | Input::Replayed(m) => (&m.device, m.protocol),
        Input::Disconnected { device } => return index.get(device),
    };
    if let Some(entity) = index.get(device) {
        return Some(entity);
    }
    let entity = world
        .spawn(device_bundle(Device {
            id: device.clone(),
            protocol,
        }))
        .id();
    index.0.insert(device.clone(), entity);
    Some(entity)
}

pub(crate) fn device_bundle(device: Device) -> impl Bundle {
    (
        device,
        LastFix::default(),
        Kinematics::default(),
        Ignition::default(),
        Power::default(),
        Obd::default(),
        Presence::default(),
        LastSeen::default(),
        CustomAttributes::default(),
        Trail::default(),
        Reports::default(),
        Trips::default(),
        Usage::default(),
        Stops::default(),
        (
            DeviceAlerts::default(),
            KnownDtcs::default(),
            Speeding::default(),
            FuelWatch::default(),
            LastSpeed::default(),
            Inside::default(),
        ),
    )
}

/// What detectors read of a record, side by side for the tick's records so
/// they read it without chasing the record: its time, fix and flags, and
/// what Ingest's one pass over its attributes found (so no detector
/// matches attribute names again).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Facts {
    /// Device time, ms.
    pub time_ms: i64,
    pub archived: bool,
    pub fix: Option<Fix>,
    pub ignition: Option<bool>,
    pub fuel_pct: Option<f64>,
    /// It carries alarms (`attr::ALARM`).
    pub alarm: bool,
    /// It carries OBD trouble codes (`attr::DTCS`).
    pub dtcs: bool,
    /// The device's own count of engine hours, in ms (`attr::HOURS`).
    pub engine_hours_ms: Option<i64>,
    /// The device's odometer or the OBD bus's, in metres.
    pub odometer_m: Option<f64>,
    /// Facts of a record (not of a connection change).
    record: bool,
}

impl Facts {
    /// A record's time, fix and flags; its attributes are noted after.
    fn start(record: &Record) -> Facts {
        Facts {
            time_ms: record.time_ms,
            archived: record.archived,
            fix: record.fix,
            record: true,
            ..Facts::default()
        }
    }

    /// A pass of its own, for records Ingest does not apply.
    fn of(record: &Record) -> Facts {
        let mut facts = Facts::start(record);
        for entry in record.attributes.entries() {
            if let Some(known) = entry.known() {
                facts.note(known, entry.value());
            }
        }
        facts
    }

    /// The fix, if valid.
    pub fn valid_fix(&self) -> Option<Fix> {
        self.fix.filter(|f| f.valid)
    }

    fn note(&mut self, known: Known, value: &Value) {
        match known {
            Known::Ignition => self.ignition = value.as_bool(),
            Known::FuelLevel => self.fuel_pct = value.as_f64(),
            Known::Alarm => self.alarm = true,
            Known::Dtcs => self.dtcs = true,
            Known::Hours => self.engine_hours_ms = value.as_f64().map(|ms| ms as i64),
            Known::Odometer | Known::ObdOdometer => {
                self.odometer_m = value.as_f64().or(self.odometer_m);
            }
            _ => {}
        }
    }
}

/// The [`Facts`] of the tick's records, by visit (as [`IngestOrder`]).
#[derive(Resource, Debug, Default)]
pub struct TickFacts(Vec<Facts>);

/// What Ingest writes on a device.
#[derive(QueryData)]
#[query_data(mutable)]
pub struct Target {
    device: &'static mut Device,
    last_fix: &'static mut LastFix,
    ignition: &'static mut Ignition,
    power: &'static mut Power,
    obd: &'static mut Obd,
    presence: &'static mut Presence,
    seen: &'static mut LastSeen,
    custom: &'static mut CustomAttributes,
    trail: &'static mut Trail,
    reports: &'static mut Reports,
}

/// The position in [`Incoming`] of a visiting-order key of [`IngestOrder`].
fn input_at(key: u64) -> usize {
    (key & u64::from(u32::MAX)) as usize
}

/// Applies every input of the tick (each device's in arrival order), then
/// empties [`Incoming`].
pub fn apply_inputs(
    incoming: Res<Incoming>,
    order: Res<IngestOrder>,
    clock: Res<Clock>,
    presence: Res<PresenceTimeout>,
    mut facts: ResMut<TickFacts>,
    mut devices: Query<Target>,
) {
    facts.0.clear();
    facts.0.resize(order.order.len(), Facts::default());
    for (visit, &key) in order.order.iter().enumerate() {
        let at = input_at(key);
        let (Some(input), Some(Some(entity))) = (incoming.0.get(at), order.entities.get(at)) else {
            continue;
        };
        let Ok(mut target) = devices.get_mut(*entity) else {
            continue;
        };
        if matches!(input, Input::Record(_) | Input::Replayed(_)) {
            report(&mut target.reports, visit, &clock);
        }
        if let (Some(record_facts), Some(slot)) = (
            apply(input, target, &clock, &presence),
            facts.0.get_mut(visit),
        ) {
            *slot = record_facts;
        }
    }
    // The inputs stay until the tick ends: Detect reads the records.
}

/// Applies one input; a record's [`Facts`] come back.
fn apply(
    input: &Input,
    mut target: TargetItem<'_, '_>,
    clock: &Clock,
    presence: &PresenceTimeout,
) -> Option<Facts> {
    let now_ms = clock.now_ms;
    match input {
        Input::Connected { protocol, .. } => {
            let p = *target.presence;
            target.presence.set_if_neq(Presence {
                online: true,
                connections: p.connections.saturating_add(1),
            });
            if target.device.protocol != *protocol {
                target.device.protocol = protocol;
            }
            target.seen.set_if_neq(LastSeen(now_ms));
            None
        }
        Input::Disconnected { .. } => {
            let connections = target.presence.connections.saturating_sub(1);
            target.presence.set_if_neq(Presence {
                online: connections > 0,
                connections,
            });
            None
        }
        Input::Record(message) => {
            target.seen.set_if_neq(LastSeen(now_ms));
            if !target.presence.online {
                target.presence.online = true;
            }
            Some(apply_record(&message.record, target, clock))
        }
        Input::Replayed(message) => {
            let record = &message.record;
            // Capped at now against devices whose clock runs ahead.
            let seen = record.time_ms.min(now_ms);
            if seen > target.seen.0 {
                target.seen.set_if_neq(LastSeen(seen));
            }
            if !target.presence.online && seen >= now_ms.saturating_sub(presence.after_ms) {
                target.presence.online = true;
            }
            Some(apply_record(record, target, clock))
        }
    }
}

/// Extends the device's span of this tick's records to the input at
/// `visit` (a device's inputs are visited one after another).
fn report(reports: &mut Mut<Reports>, visit: usize, clock: &Clock) {
    let visit = u32::try_from(visit).unwrap_or(u32::MAX);
    if reports.tick != clock.tick {
        reports.tick = clock.tick;
        reports.first = visit;
    }
    reports.end = visit.saturating_add(1);
}

/// The records of the tick, for systems that follow each device through
/// every record it sent (a device's [`Reports`] says which).
#[derive(SystemParam)]
pub struct TickRecords<'w> {
    incoming: Res<'w, Incoming>,
    order: Res<'w, IngestOrder>,
    clock: Res<'w, Clock>,
    facts: Res<'w, TickFacts>,
}

impl TickRecords<'_> {
    /// The clock of the tick the records belong to.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The device's records of this tick with their [`Facts`], in arrival
    /// order (none when it sent none).
    pub fn of<'a>(
        &'a self,
        reports: &Reports,
    ) -> impl Iterator<Item = (&'a DeviceMessage, Facts)> + 'a {
        let span = if reports.tick == self.clock.tick {
            reports.first as usize..reports.end as usize
        } else {
            0..0
        };
        let first = span.start;
        let visits = self.order.order.get(span).unwrap_or_default();
        visits.iter().enumerate().filter_map(move |(i, key)| {
            match self.incoming.0.get(input_at(*key)) {
                Some(Input::Record(message) | Input::Replayed(message)) => {
                    let facts = self.facts.0.get(first + i).copied().unwrap_or_default();
                    Some((&**message, facts))
                }
                _ => None,
            }
        })
    }

    /// Calls `f` with the [`Facts`] of each of the device's records of
    /// this tick in device time order, read side by side without touching
    /// the records. Devices send in order nearly always: only a device that
    /// did not costs a sort.
    pub fn each_in_time_order(&self, reports: &Reports, f: impl FnMut(&Facts)) {
        let span = if reports.tick == self.clock.tick {
            reports.first as usize..reports.end as usize
        } else {
            0..0
        };
        let facts = self.facts.0.get(span).unwrap_or_default();
        let records = || facts.iter().filter(|facts| facts.record);
        if records().map(|facts| facts.time_ms).is_sorted() {
            records().for_each(f);
        } else {
            let mut sorted: Vec<&Facts> = records().collect();
            sorted.sort_by_key(|facts| facts.time_ms);
            sorted.into_iter().for_each(f);
        }
    }
}

fn apply_record(record: &Record, mut target: TargetItem<'_, '_>, clock: &Clock) -> Facts {
    // Archived and out-of-order records belong to history, not to the
    // live state: the newest report wins.
    if record.archived || record.time_ms < target.last_fix.time_ms {
        return Facts::of(record);
    }
    if let Some(fix) = record.fix {
        let fix = LastFix {
            time_ms: record.time_ms,
            fix,
        };
        if target.last_fix.set_if_neq(fix) {
            if target.trail.tick != clock.tick {
                target.trail.tick = clock.tick;
                target.trail.fixes.clear();
            }
            target.trail.fixes.push(fix);
        }
    }
    apply_attributes(
        record,
        target.ignition,
        target.power,
        target.obd,
        target.custom,
    )
}

fn apply_attributes(
    record: &Record,
    mut ignition: Mut<Ignition>,
    mut power: Mut<Power>,
    mut obd: Mut<Obd>,
    mut custom: Mut<CustomAttributes>,
) -> Facts {
    let (mut new_power, mut new_obd) = (*power, *obd);
    let mut facts = Facts::start(record);
    for entry in record.attributes.entries() {
        let Some(known) = entry.known() else {
            set_custom(&mut custom, entry);
            continue;
        };
        let value = entry.value();
        facts.note(known, value);
        let slot = match known {
            Known::Ignition => {
                ignition.set_if_neq(Ignition(value.as_bool()));
                continue;
            }
            Known::Power => &mut new_power.external_v,
            Known::Battery => &mut new_power.battery_v,
            Known::BatteryLevel => &mut new_power.battery_level_pct,
            Known::Rpm => &mut new_obd.rpm,
            Known::CoolantTemp => &mut new_obd.coolant_temp_c,
            Known::EngineLoad => &mut new_obd.engine_load_pct,
            Known::FuelLevel => &mut new_obd.fuel_level_pct,
            Known::Throttle => &mut new_obd.throttle_pct,
            Known::ObdSpeed => &mut new_obd.obd_speed_kmh,
            Known::ObdOdometer => &mut new_obd.odometer_m,
            Known::FaultCount => &mut new_obd.fault_count,
            _ => {
                set_custom(&mut custom, entry);
                continue;
            }
        };
        if let Some(number) = value.as_f64() {
            *slot = Some(number);
        }
    }
    power.set_if_neq(new_power);
    obd.set_if_neq(new_obd);
    facts
}

/// Keeps `entry` among the device's other attributes; found by slot when
/// well known, so most keys are never compared as strings.
fn set_custom(custom: &mut Mut<CustomAttributes>, entry: &Entry) {
    if custom.0.get_like(entry) != Some(entry.value()) {
        custom.0.set_entry(entry);
    }
}
