//! Alerts: what needs an operator's attention, as entities with a
//! lifecycle — open → acknowledged → closed.
//!
//! Detectors (built-in or a user's) never touch alert entities: they
//! raise and clear through [`RaiseAlerts`], a deferred buffer, so they
//! run in parallel with each other; `settle_alerts` applies what they
//! raised at the end of the tick, together with the operators' actions.
//!
//! * One open alert per device, kind and subject (a geofence, a DTC code):
//!   raising it again while it is open changes nothing.
//! * A *condition* (overspeed, offline) is cleared by its detector when it
//!   ends, which closes its alert. An operator who closes it while the
//!   condition lasts silences it until it ends and comes back.
//! * An *event* (an SOS, harsh braking, a new DTC) stays open until an
//!   operator closes it.
//! * A *notice* (a geofence left) is opened and closed at once: stored,
//!   published and notified, with nothing to handle.
//!
//! An alert's id is its device, kind, subject and opening time, so the same
//! records replayed give the same alerts, stored once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::system::{SystemBuffer, SystemMeta, SystemParam};
use bevy_ecs::world::DeferredWorld;
use drover_protocols::model::DeviceId;
use serde::{Deserialize, Serialize};

use crate::components::Device;

/// Free-form facts about an alert (the speed, the geofence, the code).
pub type Details = serde_json::Map<String, serde_json::Value>;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Acknowledged,
    Closed,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Closed => "closed",
        }
    }
}

/// One alert, as outputs (storage, MQTT, the API) see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSummary {
    pub id: String,
    pub device: DeviceId,
    /// snake_case: `overspeed`, `offline`, `sos`, `fuel_drop`, …
    pub kind: Cow<'static, str>,
    /// What the alert is about within its kind (a geofence id, a DTC code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub severity: Severity,
    pub state: AlertState,
    pub opened_ms: i64,
    pub acknowledged_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// Shared: an alert's summary is copied into its entity, its messages
    /// and every output, and details are the bulk of it.
    pub details: Arc<Details>,
}

impl AlertSummary {
    /// This alert, closed at `time_ms` (not before it opened).
    pub fn closed_at(&self, time_ms: i64) -> AlertSummary {
        AlertSummary {
            state: AlertState::Closed,
            closed_ms: Some(time_ms.max(self.opened_ms)),
            ..self.clone()
        }
    }
}

/// An alert not closed yet: the entity's component.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Alert(pub AlertSummary);

/// What identifies an open alert of a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub kind: Cow<'static, str>,
    pub subject: Option<String>,
}

/// A device's open alerts, and the conditions an operator silenced.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct DeviceAlerts {
    open: Vec<(AlertKey, Entity)>,
    silenced: Vec<AlertKey>,
}

impl DeviceAlerts {
    /// Whether an alert of `kind` (any subject) is open or silenced: a
    /// detector of a condition need not raise it again.
    pub fn holds(&self, kind: &str) -> bool {
        self.open.iter().any(|(k, _)| k.kind == kind)
            || self.silenced.iter().any(|k| k.kind == kind)
    }

    /// The open alerts' entities.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        self.open.iter().map(|(_, e)| *e)
    }

    fn open(&self, key: &AlertKey) -> Option<Entity> {
        self.open.iter().find(|(k, _)| k == key).map(|(_, e)| *e)
    }

    fn forget(&mut self, entity: Entity) {
        self.open.retain(|(_, e)| *e != entity);
    }
}

/// When a record may raise an alert: archived records (from a device's
/// memory) and records older than the live window fix history and trips
/// but raise nothing, so a resent buffer does not wake anyone up.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct AlertRules {
    pub live_window_ms: i64,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            live_window_ms: 600_000,
        }
    }
}

impl AlertRules {
    /// Whether the record `facts` describe may raise an alert at `now_ms`.
    pub fn is_live(&self, facts: &crate::systems::ingest::Facts, now_ms: i64) -> bool {
        !facts.archived && now_ms - facts.time_ms <= self.live_window_ms
    }
}

/// Open alerts by id, for operators' actions.
#[derive(Resource, Debug, Default)]
pub struct AlertIndex(HashMap<String, Entity>);

impl AlertIndex {
    pub(crate) fn remove(&mut self, id: &str) {
        self.0.remove(id);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One raise or clear from a detector.
#[derive(Debug, Clone, PartialEq)]
enum Signal {
    Raise {
        device: Entity,
        key: AlertKey,
        severity: Severity,
        time_ms: i64,
        details: Details,
    },
    Clear {
        device: Entity,
        key: AlertKey,
        time_ms: i64,
    },
    Notice {
        device: Entity,
        key: AlertKey,
        severity: Severity,
        time_ms: i64,
        details: Details,
    },
}

impl Signal {
    /// The order signals are applied in: by device, then device time, then
    /// alert kind and subject — never the order systems ran in, which the
    /// executor does not fix.
    fn order(&self) -> (Entity, i64, &str, Option<&str>) {
        let (device, key, time_ms) = match self {
            Signal::Raise {
                device,
                key,
                time_ms,
                ..
            }
            | Signal::Clear {
                device,
                key,
                time_ms,
            }
            | Signal::Notice {
                device,
                key,
                time_ms,
                ..
            } => (*device, key, *time_ms),
        };
        (device, time_ms, &key.kind, key.subject.as_deref())
    }
}

/// Raises and clears alerts from any system, applied at the end of the
/// tick. Take it as `Deferred<RaiseAlerts>`: systems that do can run in
/// parallel.
#[derive(Debug, Default)]
pub struct RaiseAlerts(Vec<Signal>);

impl RaiseAlerts {
    /// Opens an alert of `kind` on `device` at `time_ms`, unless one is
    /// open (or silenced) already.
    pub fn raise(
        &mut self,
        device: Entity,
        kind: impl Into<Cow<'static, str>>,
        subject: Option<String>,
        severity: Severity,
        time_ms: i64,
        details: Details,
    ) {
        self.0.push(Signal::Raise {
            device,
            key: AlertKey {
                kind: kind.into(),
                subject,
            },
            severity,
            time_ms,
            details,
        });
    }

    /// Records that something happened that needs no handling (a geofence
    /// left): an alert opened and closed at `time_ms`, stored, published
    /// and notified like any other, never open.
    pub fn notice(
        &mut self,
        device: Entity,
        kind: impl Into<Cow<'static, str>>,
        subject: Option<String>,
        severity: Severity,
        time_ms: i64,
        details: Details,
    ) {
        self.0.push(Signal::Notice {
            device,
            key: AlertKey {
                kind: kind.into(),
                subject,
            },
            severity,
            time_ms,
            details,
        });
    }

    /// The condition behind an alert of `kind` ended at `time_ms`: its open
    /// alert closes and a silenced one may be raised again.
    pub fn clear(
        &mut self,
        device: Entity,
        kind: impl Into<Cow<'static, str>>,
        subject: Option<String>,
        time_ms: i64,
    ) {
        self.0.push(Signal::Clear {
            device,
            key: AlertKey {
                kind: kind.into(),
                subject,
            },
            time_ms,
        });
    }
}

/// Signals gathered from every system's buffer, for `settle_alerts`.
#[derive(Resource, Debug, Default)]
pub(crate) struct Signals(Vec<Signal>);

impl SystemBuffer for RaiseAlerts {
    fn apply(&mut self, _meta: &SystemMeta, world: &mut World) {
        world.resource_mut::<Signals>().0.append(&mut self.0);
    }

    fn queue(&mut self, _meta: &SystemMeta, mut world: DeferredWorld) {
        world.resource_mut::<Signals>().0.append(&mut self.0);
    }
}

/// What an operator does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOp {
    Acknowledge,
    Close,
}

/// An operator's action, applied at the end of the next tick; `ticket`
/// pairs it with its [`AlertOutcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertAction {
    pub ticket: u64,
    pub id: String,
    pub op: AlertOp,
    pub time_ms: i64,
}

/// What an action did: the alert as it is now, or `None` when no open
/// alert has that id (unknown, or closed already).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOutcome {
    pub ticket: u64,
    pub alert: Option<AlertSummary>,
}

/// Actions waiting for the tick, and what the last tick did with them.
#[derive(Resource, Debug, Default)]
pub struct AlertActions {
    pub(crate) pending: Vec<AlertAction>,
    pub(crate) outcomes: Vec<AlertOutcome>,
}

/// An alert opened, changed state or closed.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct AlertChanged(pub AlertSummary);

/// The id of the alert `key` of `device` opened at `time_ms`.
fn alert_id(device: &DeviceId, key: &AlertKey, time_ms: i64) -> String {
    match &key.subject {
        Some(subject) => format!("{device}-{}-{subject}-{time_ms}", key.kind),
        None => format!("{device}-{}-{time_ms}", key.kind),
    }
}

/// Applies the tick's signals (in [`Signal::order`]), then the operators'
/// actions.
pub(crate) fn settle_alerts(world: &mut World) {
    let mut signals = std::mem::take(&mut world.resource_mut::<Signals>().0);
    // Stable: one system's signals for one key keep their order.
    signals.sort_by(|a, b| a.order().cmp(&b.order()));
    for signal in signals {
        match signal {
            Signal::Raise {
                device,
                key,
                severity,
                time_ms,
                details,
            } => raise(world, device, key, severity, time_ms, details),
            Signal::Clear {
                device,
                key,
                time_ms,
            } => clear(world, device, &key, time_ms),
            Signal::Notice {
                device,
                key,
                severity,
                time_ms,
                details,
            } => notice(world, device, key, severity, time_ms, details),
        }
    }
    let actions = std::mem::take(&mut world.resource_mut::<AlertActions>().pending);
    for action in actions {
        let alert = act(world, &action);
        world
            .resource_mut::<AlertActions>()
            .outcomes
            .push(AlertOutcome {
                ticket: action.ticket,
                alert,
            });
    }
}

fn notice(
    world: &mut World,
    device: Entity,
    key: AlertKey,
    severity: Severity,
    time_ms: i64,
    details: Details,
) {
    let Some(id) = world.get::<Device>(device).map(|d| d.id.clone()) else {
        return;
    };
    let summary = opened(id, key, severity, time_ms, details);
    let closed = summary.closed_at(time_ms);
    world.write_message(AlertChanged(summary));
    world.write_message(AlertChanged(closed));
}

/// A new open alert.
fn opened(
    device: DeviceId,
    key: AlertKey,
    severity: Severity,
    time_ms: i64,
    details: Details,
) -> AlertSummary {
    AlertSummary {
        id: alert_id(&device, &key, time_ms),
        device,
        kind: key.kind,
        subject: key.subject,
        severity,
        state: AlertState::Open,
        opened_ms: time_ms,
        acknowledged_ms: None,
        closed_ms: None,
        details: Arc::new(details),
    }
}

fn raise(
    world: &mut World,
    device: Entity,
    key: AlertKey,
    severity: Severity,
    time_ms: i64,
    details: Details,
) {
    let Some(id) = world.get::<Device>(device).map(|d| d.id.clone()) else {
        return;
    };
    let Some(alerts) = world.get::<DeviceAlerts>(device) else {
        return;
    };
    if alerts.open(&key).is_some() || alerts.silenced.contains(&key) {
        return;
    }
    let summary = opened(id, key.clone(), severity, time_ms, details);
    spawn(world, device, key, summary.clone());
    world.write_message(AlertChanged(summary));
}

/// Puts an open alert into the world: its entity, its device's list, the index.
fn spawn(world: &mut World, device: Entity, key: AlertKey, summary: AlertSummary) -> Entity {
    let id = summary.id.clone();
    let entity = world.spawn((Alert(summary), AlertOf(device))).id();
    if let Some(mut alerts) = world.get_mut::<DeviceAlerts>(device) {
        alerts.open.push((key, entity));
    }
    world.resource_mut::<AlertIndex>().0.insert(id, entity);
    entity
}

fn clear(world: &mut World, device: Entity, key: &AlertKey, time_ms: i64) {
    let Some(mut alerts) = world.get_mut::<DeviceAlerts>(device) else {
        return;
    };
    alerts.silenced.retain(|k| k != key);
    if let Some(entity) = alerts.open(key) {
        close(world, entity, time_ms);
    }
}

/// Closes the open alert `entity` at `time_ms` and takes it out of the world.
fn close(world: &mut World, entity: Entity, time_ms: i64) -> Option<AlertSummary> {
    let summary = world.get::<Alert>(entity)?.0.closed_at(time_ms);
    if let Some(owner) = world.get::<AlertOf>(entity).map(|o| o.0)
        && let Some(mut alerts) = world.get_mut::<DeviceAlerts>(owner)
    {
        alerts.forget(entity);
    }
    world.resource_mut::<AlertIndex>().0.remove(&summary.id);
    world.despawn(entity);
    world.write_message(AlertChanged(summary.clone()));
    Some(summary)
}

fn act(world: &mut World, action: &AlertAction) -> Option<AlertSummary> {
    let entity = *world.resource::<AlertIndex>().0.get(&action.id)?;
    match action.op {
        AlertOp::Acknowledge => {
            let mut alert = world.get_mut::<Alert>(entity)?;
            if alert.0.state == AlertState::Open {
                alert.0.state = AlertState::Acknowledged;
                alert.0.acknowledged_ms = Some(action.time_ms);
                let summary = alert.0.clone();
                world.write_message(AlertChanged(summary.clone()));
                return Some(summary);
            }
            Some(alert.0.clone())
        }
        AlertOp::Close => {
            let key = {
                let alert = &world.get::<Alert>(entity)?.0;
                AlertKey {
                    kind: alert.kind.clone(),
                    subject: alert.subject.clone(),
                }
            };
            let owner = world.get::<AlertOf>(entity).map(|o| o.0);
            let closed = close(world, entity, action.time_ms);
            // Conditions stay silenced until they end; events are not
            // cleared, so silencing them would be forever.
            if let Some(owner) = owner
                && is_condition(&key.kind)
                && let Some(mut alerts) = world.get_mut::<DeviceAlerts>(owner)
            {
                alerts.silenced.push(key);
            }
            closed
        }
    }
}

/// On an alert entity: the device entity it belongs to.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertOf(pub Entity);

/// Closes every open alert of devices that leave the world.
#[derive(SystemParam)]
pub struct CloseAlerts<'w, 's> {
    alerts: Query<'w, 's, &'static Alert>,
    index: ResMut<'w, AlertIndex>,
    changed: MessageWriter<'w, AlertChanged>,
}

impl CloseAlerts<'_, '_> {
    /// Closes `open`'s alerts at `time_ms` and despawns them.
    pub fn close_all(&mut self, commands: &mut Commands, open: &DeviceAlerts, time_ms: i64) {
        for entity in open.entities() {
            if let Ok(alert) = self.alerts.get(entity) {
                self.index.remove(&alert.0.id);
                self.changed.write(AlertChanged(alert.0.closed_at(time_ms)));
            }
            commands.entity(entity).despawn();
        }
    }
}

/// The device id of the node's own alerts (`system_…`, from its
/// sentinels): an entity with [`Device`] and [`DeviceAlerts`] only, so it
/// is in no device list, view or sweep.
pub const SYSTEM_DEVICE: &str = "drover";

/// The entity that holds the node's own alerts.
#[derive(Resource, Debug, Clone, Copy)]
pub struct SystemEntity(pub Entity);

/// A condition of the node itself that began (`active`) or ended, as its
/// sentinels saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemCondition {
    /// `system_…`.
    pub kind: &'static str,
    pub subject: Option<String>,
    pub active: bool,
    pub severity: Severity,
    pub time_ms: i64,
    pub details: Details,
}

/// Spawns the entity of the node's own alerts.
pub(crate) fn spawn_system(world: &mut World) {
    let entity = world
        .spawn((
            Device {
                id: DeviceId::new(SYSTEM_DEVICE),
                protocol: "drover",
            },
            DeviceAlerts::default(),
        ))
        .id();
    world.insert_resource(SystemEntity(entity));
}

/// Queues `condition` for the next tick's settling.
pub(crate) fn system_condition(world: &mut World, condition: SystemCondition) {
    let device = world.resource::<SystemEntity>().0;
    let key = AlertKey {
        kind: condition.kind.into(),
        subject: condition.subject,
    };
    let signal = if condition.active {
        Signal::Raise {
            device,
            key,
            severity: condition.severity,
            time_ms: condition.time_ms,
            details: condition.details,
        }
    } else {
        Signal::Clear {
            device,
            key,
            time_ms: condition.time_ms,
        }
    };
    world.resource_mut::<Signals>().0.push(signal);
}

/// The entity of `device` for restoring its alerts: a device's, or the
/// node's own.
fn owner(world: &World, device: &DeviceId) -> Option<Entity> {
    if device.as_str() == SYSTEM_DEVICE {
        return Some(world.resource::<SystemEntity>().0);
    }
    world
        .resource::<crate::systems::ingest::DeviceIndex>()
        .get(device)
}

/// Kinds whose detector clears them when they end.
pub fn is_condition(kind: &str) -> bool {
    CONDITIONS.contains(&kind) || kind.starts_with("system_")
}

/// The built-in kinds that are conditions.
const CONDITIONS: &[&str] = &[kinds::OVERSPEED, kinds::OFFLINE, kinds::GEOFENCE_ENTER];

/// The built-in alert kinds.
pub mod kinds {
    pub const OVERSPEED: &str = "overspeed";
    pub const OFFLINE: &str = "offline";
    pub const GEOFENCE_ENTER: &str = "geofence_enter";
    pub const GEOFENCE_EXIT: &str = "geofence_exit";
    pub const FUEL_DROP: &str = "fuel_drop";
    pub const HARSH_BRAKING: &str = "harsh_braking";
    pub const HARSH_ACCELERATION: &str = "harsh_acceleration";
    pub const DTC: &str = "dtc";
}

/// What snapshots keep of alerts: the open ones and the silenced conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AlertsSection {
    open: Vec<AlertSummary>,
    silenced: Vec<(DeviceId, AlertKey)>,
}

pub(crate) fn capture(world: &mut World) -> AlertsSection {
    let mut section = AlertsSection::default();
    let mut alerts = world.query::<&Alert>();
    section.open = alerts.iter(world).map(|a| a.0.clone()).collect();
    section.open.sort_by(|a, b| a.id.cmp(&b.id));
    let mut devices = world.query::<(&Device, &DeviceAlerts)>();
    for (device, alerts) in devices.iter(world) {
        for key in &alerts.silenced {
            section.silenced.push((device.id.clone(), key.clone()));
        }
    }
    section.silenced.sort_by(|a, b| a.0.cmp(&b.0));
    section
}

/// Puts a snapshot's alerts back on their devices (restored first).
pub(crate) fn restore(world: &mut World, section: AlertsSection) {
    for summary in section.open {
        let Some(device) = owner(world, &summary.device) else {
            continue;
        };
        let key = AlertKey {
            kind: summary.kind.clone(),
            subject: summary.subject.clone(),
        };
        spawn(world, device, key, summary);
    }
    for (id, key) in section.silenced {
        let device = owner(world, &id);
        if let Some(mut alerts) = device.and_then(|d| world.get_mut::<DeviceAlerts>(d)) {
            alerts.silenced.push(key);
        }
    }
}
