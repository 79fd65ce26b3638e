//! Detect: trips and stops, from every fix a device reports, in the
//! device's own time.
//!
//! A trip opens at the first fix in motion, starting where the vehicle
//! stood just before, and closes at the start of a stop that lasted
//! [`TripRules::min_stop_ms`] (or of a gap between fixes as long, or,
//! by the engine's clock, of a silence as long):
//! the same records give the same trips whether they arrive live, buffered
//! by the device, or replayed from the journal. While the vehicle stands,
//! GNSS jitter moves the fix by metres; those moves add no distance.
//!
//! An open trip is an entity with a [`Trip`]; its device points at it
//! through [`Trips`]. Openings and closings go out as [`TripChanged`]
//! messages, and a trip leaves the world once it is closed.

use bevy_ecs::prelude::*;
use drover_protocols::model::DeviceId;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::components::{Device, LastFix, Reports};
use crate::systems::ingest::{DeviceIndex, Facts, TickRecords};
use crate::systems::motion::{MAX_PLAUSIBLE_KMH, haversine_m};

/// When a vehicle counts as driving and how long a stop ends a trip.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct TripRules {
    /// A stop (or a silence) this long closes the trip, at its start.
    pub min_stop_ms: i64,
    /// Fixes at this speed or above are motion; slower ones are standing.
    pub moving_kmh: f64,
}

impl Default for TripRules {
    fn default() -> Self {
        TripRules {
            min_stop_ms: 300_000,
            moving_kmh: crate::systems::motion::MOVING_KMH,
        }
    }
}

/// A time and a place, by the device's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub time_ms: i64,
    pub lat: f64,
    pub lon: f64,
}

/// One drive, as outputs (storage, MQTT, the API) see it. Open while `end`
/// is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripSummary {
    pub device: DeviceId,
    pub start: Place,
    pub end: Option<Place>,
    /// The newest fix taken into the trip.
    pub last: Place,
    /// Along the fixes, in metres; standing jitter and implausible jumps
    /// left out.
    pub distance_m: f64,
    pub max_speed_kmh: f64,
    /// Time in motion, for the average speed.
    pub moving_ms: i64,
    /// Time standing with the ignition on.
    pub idle_ms: i64,
    /// Fuel level when the trip started and (so far) ended, in percent,
    /// when the device reports one.
    pub fuel_start_pct: Option<f64>,
    pub fuel_end_pct: Option<f64>,
}

impl TripSummary {
    /// Stable across restarts and replays: the device and the start time.
    pub fn id(&self) -> String {
        format!("{}-{}", self.device, self.start.time_ms)
    }

    pub fn open(&self) -> bool {
        self.end.is_none()
    }

    /// Until the end, or until the newest fix while open.
    pub fn duration_ms(&self) -> i64 {
        self.end.unwrap_or(self.last).time_ms - self.start.time_ms
    }

    /// Distance over time in motion, in km/h (0 before any motion).
    pub fn avg_speed_kmh(&self) -> f64 {
        if self.moving_ms > 0 {
            self.distance_m / 1000.0 / (self.moving_ms as f64 / 3_600_000.0)
        } else {
            0.0
        }
    }

    /// Fuel level at the start minus at the end, in percent points.
    pub fn fuel_used_pct(&self) -> Option<f64> {
        self.fuel_start_pct
            .zip(self.fuel_end_pct)
            .map(|(start, end)| start - end)
    }
}

/// An open trip: its summary and the state that decides how it goes on.
/// Its serde form is what snapshots keep of it.
#[derive(Component, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    #[serde(flatten)]
    pub summary: TripSummary,
    /// Whether the newest fix was in motion.
    last_moving: bool,
    /// Where the current stop began, with the idle time up to then: if it
    /// lasts, the trip ends there and the stop's idling is not the trip's.
    stop: Option<(Place, i64)>,
}

impl Trip {
    /// A trip that starts at `from`, where the device stood (or at the
    /// first fix, when there is none), and has reached `to`.
    fn new(device: DeviceId, from: Option<Place>, to: &Sample) -> Trip {
        let start = from.unwrap_or(to.at);
        let mut trip = Trip {
            summary: TripSummary {
                device,
                start,
                end: None,
                last: start,
                distance_m: 0.0,
                max_speed_kmh: 0.0,
                moving_ms: 0,
                idle_ms: 0,
                fuel_start_pct: to.fuel_pct,
                fuel_end_pct: to.fuel_pct,
            },
            last_moving: true,
            stop: None,
        };
        if from.is_some() {
            extend(&mut trip, to, true);
        }
        trip
    }

    /// Closes the trip where its stop began (or at its last fix, after a
    /// silence).
    fn close(&mut self) {
        let (end, idle_ms) = self
            .stop
            .take()
            .unwrap_or((self.summary.last, self.summary.idle_ms));
        self.summary.end = Some(end);
        self.summary.idle_ms = idle_ms;
    }

    /// Whether a fix at `time_ms` comes after the end of the trip: a stop
    /// or a gap between fixes as long as a stop.
    fn ended_by(&self, time_ms: i64, rules: &TripRules) -> bool {
        let since = self
            .stop
            .map_or(self.summary.last.time_ms, |(place, _)| place.time_ms);
        time_ms - since >= rules.min_stop_ms
    }
}

/// On a trip entity: the device entity it belongs to.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripOf(pub Entity);

/// A device's trip state: its open trip, if any, and its newest fix.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default)]
pub struct Trips {
    pub open: Option<Entity>,
    /// The newest fix taken into trips: where the next trip starts, and the
    /// time before which fixes (resent after newer ones) are too late to
    /// place in a trip.
    pub(crate) last: Option<Place>,
    /// Engine time the device's newest records arrived (were taken by a
    /// tick, replays included): a trip closes by silence only when nothing
    /// arrived for a whole stop, so a buffer sent in many packets, or a
    /// journal replayed after a restart, keeps it open. `None` after a
    /// restore, until a first sweep starts counting.
    pub(crate) heard_ms: Option<i64>,
}

/// A trip opened or closed.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum TripChanged {
    Opened(TripSummary),
    Closed(TripSummary),
}

/// One valid fix as trips see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Place,
    speed_kmh: f64,
    ignition: Option<bool>,
    fuel_pct: Option<f64>,
}

/// Folds each device's fixes of the tick into its trip, oldest first.
pub fn detect_trips(
    mut commands: Commands,
    rules: Res<TripRules>,
    records: TickRecords,
    mut devices: Query<(Entity, &Device, &Reports, &mut Trips), Changed<Reports>>,
    mut open: Query<&mut Trip>,
    mut changed: MessageWriter<TripChanged>,
    mut samples: Local<Vec<Sample>>,
) {
    for (entity, device, reports, mut trips) in &mut devices {
        samples.clear();
        // In device time: a device that sends its buffer and its live fix
        // together may send them in any order.
        records.each_in_time_order(reports, |facts| samples.extend(sample(facts)));
        // Bookkeeping, not shown: only a trip opening or closing changes
        // what Emit publishes of the device.
        trips.bypass_change_detection().heard_ms = Some(records.clock().now_ms);
        if samples.is_empty() {
            continue;
        }
        let mut current = Current {
            stored: trips.open.and_then(|trip| open.get_mut(trip).ok()),
            stored_ended: false,
            fresh: None,
        };
        let mut last = trips.last;
        for sample in &samples {
            if last.is_some_and(|last| sample.at.time_ms <= last.time_ms) {
                continue;
            }
            advance(&mut current, last, &device.id, sample, &rules, &mut changed);
            last = Some(sample.at);
        }
        let (ended, fresh) = (current.stored_ended, current.fresh);
        trips.bypass_change_detection().last = last;
        if ended && let Some(trip) = trips.open.take() {
            commands.entity(trip).despawn();
        }
        if let Some(trip) = fresh {
            trips.open = Some(commands.spawn((trip, TripOf(entity))).id());
        }
    }
}

/// The trip a device's fixes of one tick go into: the stored one, changed
/// in place, until it ends; then one opened during the tick, spawned after.
struct Current<'a> {
    stored: Option<Mut<'a, Trip>>,
    stored_ended: bool,
    fresh: Option<Trip>,
}

impl Current<'_> {
    fn trip(&mut self) -> Option<&mut Trip> {
        if self.fresh.is_some() {
            self.fresh.as_mut()
        } else if self.stored_ended {
            None
        } else {
            self.stored.as_deref_mut()
        }
    }

    fn end(&mut self) {
        if self.fresh.take().is_none() {
            self.stored_ended = true;
        }
    }
}

/// Closes the open trips of devices from which nothing arrived for a
/// whole stop by the engine's clock: the trip ends at its stop, or at its
/// last fix.
pub fn close_silent_trips(
    mut commands: Commands,
    rules: Res<TripRules>,
    clock: Res<Clock>,
    mut trips: Query<(Entity, &mut Trip, &TripOf)>,
    mut devices: Query<&mut Trips>,
    mut changed: MessageWriter<TripChanged>,
) {
    for (entity, mut trip, owner) in &mut trips {
        let Ok(mut device) = devices.get_mut(owner.0) else {
            continue;
        };
        let Some(heard_ms) = device.heard_ms else {
            device.bypass_change_detection().heard_ms = Some(clock.now_ms);
            continue;
        };
        if clock.now_ms - heard_ms < rules.min_stop_ms {
            continue;
        }
        trip.close();
        changed.write(TripChanged::Closed(trip.summary.clone()));
        commands.entity(entity).despawn();
        // Its live state no longer shows a trip under way (a change Emit sees).
        if device.open == Some(entity) {
            device.open = None;
        }
    }
}

/// Takes one fix into `current`, opening and closing trips as it goes;
/// `last` is the device's previous fix.
fn advance(
    current: &mut Current<'_>,
    last: Option<Place>,
    device: &DeviceId,
    sample: &Sample,
    rules: &TripRules,
    changed: &mut MessageWriter<TripChanged>,
) {
    if let Some(trip) = current.trip()
        && trip.ended_by(sample.at.time_ms, rules)
    {
        trip.close();
        changed.write(TripChanged::Closed(trip.summary.clone()));
        current.end();
    }
    let moving = sample.speed_kmh >= rules.moving_kmh && sample.ignition != Some(false);
    match current.trip() {
        None if moving => {
            // From where the device last stood, unless that was so long
            // ago that the way between is unknown.
            let from = last.filter(|l| sample.at.time_ms - l.time_ms < rules.min_stop_ms);
            let trip = Trip::new(device.clone(), from, sample);
            changed.write(TripChanged::Opened(trip.summary.clone()));
            current.fresh = Some(trip);
        }
        None => {}
        Some(trip) => extend(trip, sample, moving),
    }
}

fn extend(trip: &mut Trip, sample: &Sample, moving: bool) {
    let elapsed = sample.at.time_ms - trip.summary.last.time_ms;
    if moving || trip.last_moving {
        let metres = haversine_m(
            trip.summary.last.lat,
            trip.summary.last.lon,
            sample.at.lat,
            sample.at.lon,
        );
        let hours = elapsed as f64 / 3_600_000.0;
        if metres / 1000.0 <= MAX_PLAUSIBLE_KMH * hours {
            trip.summary.distance_m += metres;
        }
    }
    if moving {
        trip.summary.moving_ms += elapsed;
        trip.summary.max_speed_kmh = trip.summary.max_speed_kmh.max(sample.speed_kmh);
        trip.stop = None;
    } else {
        if trip.stop.is_none() {
            trip.stop = Some((sample.at, trip.summary.idle_ms));
        }
        if sample.ignition == Some(true) {
            trip.summary.idle_ms += elapsed;
        }
    }
    if sample.fuel_pct.is_some() {
        trip.summary.fuel_end_pct = sample.fuel_pct;
    }
    trip.summary.last = sample.at;
    trip.last_moving = moving;
}

fn sample(facts: &Facts) -> Option<Sample> {
    let fix = facts.valid_fix()?;
    Some(Sample {
        at: Place {
            time_ms: facts.time_ms,
            lat: fix.lat,
            lon: fix.lon,
        },
        speed_kmh: fix.speed_kmh,
        ignition: facts.ignition,
        fuel_pct: facts.fuel_pct,
    })
}

/// The open trips, for a snapshot, sorted by device.
pub(crate) fn capture(world: &mut World) -> Vec<Trip> {
    let mut query = world.query::<&Trip>();
    let mut open: Vec<Trip> = query.iter(world).cloned().collect();
    open.sort_by(|a, b| a.summary.device.cmp(&b.summary.device));
    open
}

/// Puts a snapshot's open trips back on their devices (restored first).
/// Each device continues from its newest fix, so records the snapshot
/// already holds do not count twice.
pub(crate) fn restore(world: &mut World, open: Vec<Trip>) {
    let mut devices = world.query::<(&LastFix, &mut Trips)>();
    for (fix, mut trips) in devices.iter_mut(world) {
        trips.last = (fix.time_ms != 0).then_some(Place {
            time_ms: fix.time_ms,
            lat: fix.fix.lat,
            lon: fix.fix.lon,
        });
    }
    for trip in open {
        let Some(device) = world.resource::<DeviceIndex>().get(&trip.summary.device) else {
            continue;
        };
        let last = trip.summary.last;
        let entity = world.spawn((trip, TripOf(device))).id();
        if let Some(mut trips) = world.get_mut::<Trips>(device) {
            trips.open = Some(entity);
            if trips
                .last
                .is_none_or(|newest| newest.time_ms < last.time_ms)
            {
                trips.last = Some(last);
            }
        }
    }
}
