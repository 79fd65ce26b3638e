//! The live fleet as the stream tells it: every device's state, and the
//! alerts not yet closed.
//!
//! It lives outside the reactive graph (a `StoredValue`): with 10,000
//! devices reporting every second, a signal per change would re-render the
//! page 10,000 times a second. Changes bump [`Fleet::version`]; the map
//! redraws on the next animation frame when it moved, and [`Live::version`]
//! (a signal) follows it a few times a second for the list and panels.

use std::borrow::Cow;
use std::collections::HashMap;

use leptos::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::{Alert, Device, Fix, LastFix, LiveState, Trip};
use crate::map::projection::{World, project};

/// The engine's rule (`engine::systems::motion::MOVING_KMH`).
const MOVING_KMH: f64 = 5.0;
/// Closed alerts kept for the live list.
const CLOSED_KEPT: usize = 200;

/// What a marker's colour says, in the order the map's legend lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Moving,
    Parked,
    Offline,
    Alarm,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Moving,
        Status::Parked,
        Status::Offline,
        Status::Alarm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Moving => "moving",
            Status::Parked => "parked",
            Status::Offline => "offline",
            Status::Alarm => "alarm",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Marker colours, readable on both the tiles and the plain background.
    pub fn colour(self) -> &'static str {
        match self {
            Status::Moving => "#1a9850",
            Status::Parked => "#2166ac",
            Status::Offline => "#7f7f7f",
            Status::Alarm => "#d73027",
        }
    }
}

/// One device as the dashboard holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    pub device: Device,
    /// Critical alerts open and not yet acknowledged: the device shows as
    /// an alarm.
    pub alarms: u32,
    /// Where its marker goes, projected once per fix rather than once per
    /// frame.
    pub point: Option<World>,
    /// The newest position's attributes as the stream sent them, read into
    /// `device` only when someone looks ([`Vehicle::resolved`]).
    attributes: Option<Box<str>>,
}

impl Vehicle {
    fn new(device: Device) -> Self {
        let point = device
            .state
            .as_ref()
            .and_then(|s| s.last_fix.as_ref())
            .map(|f| project(f.fix.lat, f.fix.lon));
        Vehicle {
            device,
            alarms: 0,
            point,
            attributes: None,
        }
    }

    /// The vehicle with its newest attributes read.
    pub fn resolved(&self) -> Vehicle {
        let mut vehicle = self.clone();
        if let Some(text) = vehicle.attributes.take()
            && let Ok(attributes) = serde_json::from_str::<Map<String, Value>>(&text)
            && let Some(state) = vehicle.device.state.as_mut()
        {
            apply_attributes(state, attributes);
        }
        vehicle
    }

    pub fn fix(&self) -> Option<&Fix> {
        self.state()
            .and_then(|s| s.last_fix.as_ref())
            .map(|f| &f.fix)
    }

    pub fn state(&self) -> Option<&LiveState> {
        self.device.state.as_ref()
    }

    pub fn online(&self) -> bool {
        self.device.status == "online"
    }

    pub fn status(&self) -> Status {
        if self.alarms > 0 {
            Status::Alarm
        } else if !self.online() {
            Status::Offline
        } else if self.state().is_some_and(|s| s.kinematics.moving) {
            Status::Moving
        } else {
            Status::Parked
        }
    }

    pub fn label(&self) -> &str {
        self.device.name.as_deref().unwrap_or(&self.device.id)
    }

    /// When the device last reported a fix, ms since the epoch.
    pub fn fix_time_ms(&self) -> Option<f64> {
        self.state()
            .and_then(|s| s.last_fix.as_ref())
            .map(|f| f.time_ms)
    }

    fn apply_position(&mut self, position: PositionMessage<'_>) {
        let state = self.device.state.get_or_insert_with(LiveState::default);
        let time_ms = time_ms(&position.time);
        if state.last_fix.as_ref().is_some_and(|f| f.time_ms > time_ms) {
            // A device's buffered records arrive after newer ones: the map
            // keeps the newest place.
            return;
        }
        state.last_fix = Some(LastFix {
            time_ms,
            fix: Fix {
                lat: position.lat,
                lon: position.lon,
                speed_kmh: position.speed_kmh,
                course_deg: position.course_deg,
                altitude_m: position.altitude_m,
                satellites: position.satellites,
                valid: position.valid,
            },
        });
        state.kinematics.speed_kmh = position.speed_kmh;
        state.kinematics.course_deg = position.course_deg;
        state.kinematics.moving = position.speed_kmh >= MOVING_KMH;
        // Attributes of a position never looked at are overwritten by the
        // next one's: fold the older ones in first.
        if let Some(older) = self.attributes.take()
            && let Ok(attributes) = serde_json::from_str::<Map<String, Value>>(&older)
        {
            apply_attributes(state, attributes);
        }
        self.attributes = position.attributes.map(|raw| raw.get().into());
        self.point = Some(project(position.lat, position.lon));
        if self.device.status != "online" {
            self.device.status = "online".to_owned();
        }
        self.device.last_seen = Some(position.time.into_owned());
    }
}

/// An RFC 3339 time in ms since the epoch: the API's own form
/// (`2026-12-03T16:13:44.123Z`) without a call into JavaScript, anything
/// else by the browser.
pub fn time_ms(text: &str) -> f64 {
    utc_ms(text).unwrap_or_else(|| js_sys::Date::parse(text))
}

fn utc_ms(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.len() < 20 || b.last() != Some(&b'Z') || separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0_i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let millis = match b.len() {
        20 => 0,
        24 if b[19] == b'.' => number(20, 23)?,
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) as f64 * 1000.0 + millis as f64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The named values a position carries into the state's typed fields, the
/// rest into its attributes.
fn apply_attributes(state: &mut LiveState, attributes: Map<String, Value>) {
    for (name, value) in attributes {
        let number = value.as_f64();
        match name.as_str() {
            "ignition" => state.ignition = value.as_bool(),
            "rpm" => state.obd.rpm = number,
            "coolantTemp" => state.obd.coolant_temp_c = number,
            "engineLoad" => state.obd.engine_load_pct = number,
            "fuelLevel" => state.obd.fuel_level_pct = number,
            "throttle" => state.obd.throttle_pct = number,
            "obdSpeed" => state.obd.obd_speed_kmh = number,
            "faultCount" => state.obd.fault_count = number,
            "power" => state.power.external_v = number,
            "battery" => state.power.battery_v = number,
            "batteryLevel" => state.power.battery_level_pct = number,
            _ => {
                state.attributes.insert(name, value);
            }
        }
    }
}

/// A message of `GET /api/v1/stream` other than a position.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    Snapshot {
        devices: Vec<Device>,
    },
    Status {
        device: String,
        online: bool,
    },
    Trip(Trip),
    Alert(Alert),
    Error {
        message: String,
    },
    /// Types this dashboard does not show (`stop`, later additions).
    #[serde(other)]
    Other,
}

/// Only a message's type, read without allocating.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

/// A `batch` message (`?batch_ms=`): the messages of a period, each
/// exactly as it would have come alone.
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    messages: Vec<&'a RawValue>,
}

/// A `position` message, borrowed from the frame: the hot path (10,000
/// devices send 10,000 of these a second), so nothing is allocated but
/// what the fleet keeps.
#[derive(Debug, Deserialize)]
pub struct PositionMessage<'a> {
    #[serde(borrow)]
    pub device: Cow<'a, str>,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub speed_kmh: f64,
    #[serde(default)]
    pub course_deg: f64,
    #[serde(default)]
    pub altitude_m: Option<f64>,
    #[serde(default)]
    pub satellites: Option<u32>,
    #[serde(default)]
    pub valid: bool,
    #[serde(borrow, default)]
    pub attributes: Option<&'a RawValue>,
}

#[derive(Default)]
pub struct Fleet {
    vehicles: Vec<Vehicle>,
    index: HashMap<String, usize>,
    /// Alerts not closed, and the latest closed ones, by id.
    alerts: HashMap<String, Alert>,
    /// Bumped by every change.
    pub version: u64,
    /// Whether a snapshot has arrived since the stream (re)connected.
    pub synced: bool,
}

impl Fleet {
    pub fn vehicles(&self) -> &[Vehicle] {
        &self.vehicles
    }

    pub fn get(&self, id: &str) -> Option<&Vehicle> {
        self.index.get(id).map(|&i| &self.vehicles[i])
    }

    pub fn len(&self) -> usize {
        self.vehicles.len()
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Alerts open and not yet acknowledged.
    pub fn open_alerts(&self) -> usize {
        self.alerts.values().filter(|a| a.state == "open").count()
    }

    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .vehicles
            .iter()
            .filter_map(|v| v.device.group.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Applies one message of the stream, as its text.
    pub fn apply_text(&mut self, text: &str) -> Result<(), serde_json::Error> {
        match serde_json::from_str::<Kind<'_>>(text)?.kind.as_ref() {
            "position" => {
                let position: PositionMessage<'_> = serde_json::from_str(text)?;
                let device = position.device.clone();
                self.vehicle_mut(&device).apply_position(position);
                self.version += 1;
            }
            "batch" => {
                let batch: Batch<'_> = serde_json::from_str(text)?;
                for message in batch.messages {
                    self.apply_text(message.get())?;
                }
            }
            _ => self.apply(serde_json::from_str(text)?),
        }
        Ok(())
    }

    /// The device as `GET /api/v1/devices/{id}` answered: its full state
    /// (summary snapshots carry only what the map and the list show), but
    /// the stream's fix where that is newer than the answer's.
    pub fn refresh(&mut self, device: Device) {
        let vehicle = self.vehicle_mut(&device.id);
        let held = vehicle.fix_time_ms();
        let mut fresh = Vehicle::new(device);
        if held > fresh.fix_time_ms() {
            if let (Some(state), Some(older)) = (fresh.device.state.as_mut(), vehicle.state()) {
                state.last_fix = older.last_fix.clone();
                state.kinematics = older.kinematics.clone();
            }
            fresh.point = vehicle.point;
            fresh.attributes = vehicle.attributes.take();
        }
        fresh.alarms = vehicle.alarms;
        *vehicle = fresh;
        self.version += 1;
    }

    pub fn apply(&mut self, message: StreamMessage) {
        match message {
            StreamMessage::Snapshot { devices } => self.replace(devices),
            StreamMessage::Status { device, online } => {
                self.vehicle_mut(&device).device.status =
                    if online { "online" } else { "offline" }.to_owned();
            }
            StreamMessage::Trip(trip) => {
                let vehicle = self.vehicle_mut(&trip.device);
                if let Some(state) = vehicle.device.state.as_mut() {
                    state.trip = trip.open.then_some(trip);
                }
            }
            StreamMessage::Alert(alert) => self.put_alert(alert),
            StreamMessage::Error { message } => {
                leptos::logging::warn!("stream: the server says: {message}");
                return;
            }
            StreamMessage::Other => return,
        }
        self.version += 1;
    }

    /// A fresh snapshot: the whole fleet as the server holds it now, so
    /// whatever a dropped connection missed is made good.
    fn replace(&mut self, devices: Vec<Device>) {
        let alarms: HashMap<String, u32> = self
            .vehicles
            .drain(..)
            .map(|v| (v.device.id, v.alarms))
            .collect();
        self.index.clear();
        for device in devices {
            let mut vehicle = Vehicle::new(device);
            vehicle.alarms = alarms.get(&vehicle.device.id).copied().unwrap_or(0);
            self.index
                .insert(vehicle.device.id.clone(), self.vehicles.len());
            self.vehicles.push(vehicle);
        }
        self.synced = true;
    }

    /// Alerts read from the API (on login and after a reconnect).
    pub fn set_alerts(&mut self, alerts: Vec<Alert>) {
        self.alerts.clear();
        for vehicle in &mut self.vehicles {
            vehicle.alarms = 0;
        }
        for alert in alerts {
            self.put_alert(alert);
        }
        self.version += 1;
    }

    pub fn put_alert(&mut self, alert: Alert) {
        // Critical alerts (an SOS, a power cut, an accident) colour the
        // marker until acknowledged; warnings such as harsh braking stay
        // open until closed and would soon colour half a fleet.
        let raises = |a: &Alert| a.state == "open" && a.severity == "critical";
        let before = self.alerts.get(&alert.id).is_some_and(raises);
        let after = raises(&alert);
        if before != after && alert.device != "drover" {
            let vehicle = self.vehicle_mut(&alert.device);
            if after {
                vehicle.alarms += 1;
            } else {
                vehicle.alarms = vehicle.alarms.saturating_sub(1);
            }
        }
        self.alerts.insert(alert.id.clone(), alert);
        self.forget_closed();
        self.version += 1;
    }

    fn forget_closed(&mut self) {
        let closed = self.alerts.values().filter(|a| a.is_closed()).count();
        if closed <= CLOSED_KEPT {
            return;
        }
        let mut closed: Vec<(String, String)> = self
            .alerts
            .values()
            .filter(|a| a.is_closed())
            .map(|a| (a.opened_at.clone(), a.id.clone()))
            .collect();
        closed.sort();
        for (_, id) in closed.iter().take(closed.len() - CLOSED_KEPT) {
            self.alerts.remove(id);
        }
    }

    /// The device, added when the stream speaks of one the snapshot did
    /// not have (it started reporting since).
    fn vehicle_mut(&mut self, id: &str) -> &mut Vehicle {
        let index = match self.index.get(id) {
            Some(&index) => index,
            None => {
                let index = self.vehicles.len();
                self.vehicles.push(Vehicle::new(Device {
                    id: id.to_owned(),
                    name: None,
                    group: None,
                    registered: false,
                    disabled: false,
                    status: "online".to_owned(),
                    last_seen: None,
                    speed_limit_kmh: None,
                    state: None,
                }));
                self.index.insert(id.to_owned(), index);
                index
            }
        };
        &mut self.vehicles[index]
    }
}

/// The live fleet and what the views share about it, by context.
#[derive(Clone, Copy)]
pub struct Live {
    pub fleet: StoredValue<Fleet>,
    /// Follows [`Fleet::version`] a few times a second.
    pub version: RwSignal<u64>,
    /// The device open in the panel.
    pub selected: RwSignal<Option<String>>,
    /// Whether the map keeps the selected device in its centre.
    pub follow: RwSignal<bool>,
    /// Asks the map to show the whole fleet.
    pub fit: RwSignal<u64>,
}

impl Live {
    pub fn new() -> Self {
        Live {
            fleet: StoredValue::new(Fleet::default()),
            version: RwSignal::new(0),
            selected: RwSignal::new(None),
            follow: RwSignal::new(false),
            fit: RwSignal::new(0),
        }
    }

    /// Reads the fleet, subscribing the caller to its changes.
    pub fn with<R>(&self, read: impl FnOnce(&Fleet) -> R) -> R {
        self.version.track();
        self.fleet.with_value(read)
    }

    pub fn update(&self, change: impl FnOnce(&mut Fleet)) {
        self.fleet.update_value(change);
    }

    /// Publishes the fleet's version to the views when it moved.
    pub fn publish(&self) {
        let version = self.fleet.with_value(|f| f.version);
        if self.version.get_untracked() != version {
            self.version.set(version);
        }
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn device(id: &str, status: &str) -> Device {
        serde_json::from_value(serde_json::json!({"id": id, "status": status}))
            .unwrap_or_else(|e| panic!("invariant: a literal device: {e}"))
    }

    fn alert(id: &str, device: &str, state: &str, severity: &str) -> Alert {
        serde_json::from_value(serde_json::json!({
            "id": id, "device": device, "kind": "sos", "severity": severity,
            "state": state, "opened_at": "2026-12-03T10:00:00.000Z"
        }))
        .unwrap_or_else(|e| panic!("invariant: a literal alert: {e}"))
    }

    #[wasm_bindgen_test]
    fn status_follows_alerts_presence_and_motion() {
        let mut fleet = Fleet::default();
        fleet.apply(StreamMessage::Snapshot {
            devices: vec![device("a", "online"), device("b", "offline")],
        });
        assert_eq!(fleet.get("a").map(Vehicle::status), Some(Status::Parked));
        assert_eq!(fleet.get("b").map(Vehicle::status), Some(Status::Offline));

        fleet.put_alert(alert("x", "a", "open", "critical"));
        assert_eq!(fleet.get("a").map(Vehicle::status), Some(Status::Alarm));
        assert_eq!(fleet.open_alerts(), 1);
        // Acknowledged: no longer calls for attention, still listed.
        fleet.put_alert(alert("x", "a", "acknowledged", "critical"));
        assert_eq!(fleet.get("a").map(Vehicle::status), Some(Status::Parked));
        assert_eq!(fleet.open_alerts(), 0);
        assert_eq!(fleet.alerts().count(), 1);
    }

    #[wasm_bindgen_test]
    fn a_resync_keeps_alarms_and_adds_unknown_devices() {
        let mut fleet = Fleet::default();
        fleet.apply(StreamMessage::Snapshot {
            devices: vec![device("a", "online")],
        });
        fleet.put_alert(alert("x", "a", "open", "critical"));
        fleet.put_alert(alert("y", "a", "open", "warning"));
        fleet.apply(StreamMessage::Status {
            device: "c".to_owned(),
            online: true,
        });
        assert_eq!(fleet.len(), 2);
        fleet.apply(StreamMessage::Snapshot {
            devices: vec![device("a", "online"), device("c", "online")],
        });
        assert_eq!(fleet.get("a").map(|v| v.alarms), Some(1));
        assert_eq!(fleet.len(), 2);
    }

    fn position(fleet: &mut Fleet, time: &str, lat: f64, speed_kmh: f64) {
        let text = serde_json::json!({
            "type": "position", "device": "a", "time": time, "lat": lat, "lon": 13.4,
            "speed_kmh": speed_kmh, "course_deg": 90.0,
            "attributes": {"ignition": true, "rpm": 1800, "fuelLevel": 40, "door": "open"}
        })
        .to_string();
        fleet
            .apply_text(&text)
            .unwrap_or_else(|e| panic!("invariant: a literal position: {e}"));
    }

    #[wasm_bindgen_test]
    fn positions_move_the_device_and_late_ones_do_not_go_back() {
        let mut fleet = Fleet::default();
        fleet.apply(StreamMessage::Snapshot {
            devices: vec![device("a", "offline")],
        });
        position(&mut fleet, "2026-12-03T10:00:05.000Z", 52.5, 40.0);
        let vehicle = fleet
            .get("a")
            .map(Vehicle::resolved)
            .unwrap_or_else(|| panic!("invariant: known"));
        assert_eq!(vehicle.fix().map(|f| f.lat), Some(52.5));
        assert_eq!(vehicle.status(), Status::Moving);
        let state = vehicle.state().cloned().unwrap_or_default();
        assert_eq!(state.ignition, Some(true));
        assert_eq!(state.obd.rpm, Some(1800.0));
        assert_eq!(state.obd.fuel_level_pct, Some(40.0));
        assert_eq!(
            state.attributes.get("door"),
            Some(&serde_json::json!("open"))
        );

        // A buffered record from before: history, not where the vehicle is.
        let version = fleet.version;
        position(&mut fleet, "2026-12-03T10:00:01.000Z", 52.4, 0.0);
        assert_eq!(
            fleet.get("a").and_then(Vehicle::fix).map(|f| f.lat),
            Some(52.5)
        );
        assert!(fleet.version > version);

        position(&mut fleet, "2026-12-03T10:00:09.000Z", 52.6, 2.0);
        assert_eq!(fleet.get("a").map(Vehicle::status), Some(Status::Parked));
    }

    #[wasm_bindgen_test]
    fn a_batch_applies_each_of_its_messages_in_order() {
        let mut fleet = Fleet::default();
        let batch = serde_json::json!({"type": "batch", "messages": [
            {"type": "position", "device": "a", "time": "2026-12-03T10:00:01.000Z",
             "lat": 52.4, "lon": 13.4, "speed_kmh": 30.0, "course_deg": 0.0},
            {"type": "position", "device": "a", "time": "2026-12-03T10:00:02.000Z",
             "lat": 52.5, "lon": 13.4, "speed_kmh": 30.0, "course_deg": 0.0},
            {"type": "status", "device": "b", "online": false},
            {"type": "stop", "id": "ignored"}
        ]});
        assert!(fleet.apply_text(&batch.to_string()).is_ok());
        assert_eq!(fleet.len(), 2);
        assert_eq!(
            fleet.get("a").and_then(Vehicle::fix).map(|f| f.lat),
            Some(52.5)
        );
        assert_eq!(fleet.get("b").map(Vehicle::status), Some(Status::Offline));
        assert!(
            fleet
                .apply_text(r#"{"type":"batch","messages":[{"type":"position"}]}"#)
                .is_err()
        );
    }

    #[wasm_bindgen_test]
    fn a_refresh_fills_the_state_but_keeps_a_newer_streamed_fix() {
        let mut fleet = Fleet::default();
        fleet.put_alert(alert("x", "a", "open", "critical"));
        position(&mut fleet, "2026-12-03T10:00:09.000Z", 52.6, 40.0);
        let answered = |time_ms: f64, lat: f64| -> Device {
            serde_json::from_value(serde_json::json!({
                "id": "a", "status": "online",
                "state": {"protocol": "teltonika",
                    "last_fix": {"time_ms": time_ms, "fix": {"lat": lat, "lon": 13.4,
                        "speed_kmh": 0.0, "course_deg": 0.0}},
                    "usage": {"ignition": true, "engine_ms": 7_200_000.0},
                    "odometer_m": 1234.0}
            }))
            .unwrap_or_else(|e| panic!("invariant: a literal device: {e}"))
        };
        // An answer older than the stream's newest fix.
        fleet.refresh(answered(time_ms("2026-12-03T10:00:05.000Z"), 52.5));
        let vehicle = fleet.get("a").map(Vehicle::resolved);
        let vehicle = vehicle.unwrap_or_else(|| panic!("invariant: known"));
        assert_eq!(vehicle.fix().map(|f| f.lat), Some(52.6));
        assert_eq!(vehicle.status(), Status::Alarm, "alarms are kept");
        let state = vehicle.state().cloned().unwrap_or_default();
        assert_eq!(state.odometer_m, Some(1234.0));
        assert_eq!(state.obd.rpm, Some(1800.0), "the streamed attributes too");
        // A newer answer wins.
        fleet.refresh(answered(time_ms("2026-12-03T10:00:10.000Z"), 52.7));
        assert_eq!(
            fleet.get("a").and_then(Vehicle::fix).map(|f| f.lat),
            Some(52.7)
        );
    }

    #[wasm_bindgen_test]
    fn unknown_stream_messages_are_ignored_and_bad_ones_refused() {
        let mut fleet = Fleet::default();
        assert!(fleet.apply_text(r#"{"type":"stop","id":"x"}"#).is_ok());
        assert_eq!((fleet.len(), fleet.version), (0, 0));
        assert!(
            fleet
                .apply_text(r#"{"type":"position","device":"a"}"#)
                .is_err()
        );
        assert!(fleet.apply_text("not json").is_err());
        assert_eq!((fleet.len(), fleet.version), (0, 0));
    }

    #[wasm_bindgen_test]
    fn api_times_are_read_without_javascript_and_agree_with_it() {
        for text in [
            "2026-12-03T16:13:44.123Z",
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T23:59:59Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            assert_eq!(utc_ms(text), Some(js_sys::Date::parse(text)), "{text}");
        }
        assert_eq!(utc_ms("2026-12-03T16:13:44+01:00"), None);
        assert_eq!(
            time_ms("2026-12-03T17:13:44+01:00"),
            js_sys::Date::parse("2026-12-03T16:13:44Z")
        );
    }

    #[wasm_bindgen_test]
    fn closed_alerts_are_bounded() {
        let mut fleet = Fleet::default();
        for i in 0..CLOSED_KEPT + 10 {
            fleet.put_alert(alert(&format!("x{i:04}"), "a", "closed", "info"));
        }
        assert_eq!(fleet.alerts().count(), CLOSED_KEPT);
    }
}
