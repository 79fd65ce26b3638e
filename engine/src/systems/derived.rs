//! Attributes that systems derive (a user's `idle_s`, a score), applied at
//! the end of the tick like alerts: written into the device's
//! [`CustomAttributes`] (so the API shows them) and sent out as a record of
//! their own, which the node stores and publishes like a device's.
//!
//! Systems take `Deferred<SetAttributes>`, a system buffer, so they run in
//! parallel with each other and with the detectors.

use std::borrow::Cow;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::system::{SystemBuffer, SystemMeta};
use bevy_ecs::world::DeferredWorld;
use drover_protocols::model::{Attributes, DeviceMessage, Record, RecordKind, Value};

use crate::components::{CustomAttributes, Device};

/// The protocol name of derived records.
pub const PROTOCOL: &str = "analytics";

/// One attribute a system set.
#[derive(Debug, Clone, PartialEq)]
struct Write {
    device: Entity,
    time_ms: i64,
    name: Cow<'static, str>,
    value: Value,
}

/// Sets derived attributes from any system. Take it as
/// `Deferred<SetAttributes>`.
#[derive(Debug, Default)]
pub struct SetAttributes(Vec<Write>);

impl SetAttributes {
    /// Sets `name` to `value` on `device`, as of `time_ms` (device time).
    /// Attributes a tick sets on a device for one time make one record.
    pub fn set(
        &mut self,
        device: Entity,
        time_ms: i64,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Value>,
    ) {
        self.0.push(Write {
            device,
            time_ms,
            name: name.into(),
            value: value.into(),
        });
    }
}

/// Writes gathered from every system's buffer.
#[derive(Resource, Debug, Default)]
pub(crate) struct Writes(Vec<Write>);

impl SystemBuffer for SetAttributes {
    fn apply(&mut self, _meta: &SystemMeta, world: &mut World) {
        world.resource_mut::<Writes>().0.append(&mut self.0);
    }

    fn queue(&mut self, _meta: &SystemMeta, mut world: DeferredWorld) {
        world.resource_mut::<Writes>().0.append(&mut self.0);
    }
}

/// Derived attributes as a record, for the node's outputs.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct AttributesDerived(pub Arc<DeviceMessage>);

/// Applies the tick's writes: onto the devices, and out as records (one
/// per device and time, in the order systems wrote them).
pub(crate) fn settle_attributes(world: &mut World) {
    let mut writes = std::mem::take(&mut world.resource_mut::<Writes>().0);
    // Not the order systems ran in, which the executor does not fix; stable,
    // so one system's writes of one name keep their order.
    writes.sort_by(|a, b| (a.device, a.time_ms, &a.name).cmp(&(b.device, b.time_ms, &b.name)));
    let mut writes = writes.into_iter().peekable();
    while let Some(first) = writes.next() {
        let (device, time_ms) = (first.device, first.time_ms);
        let mut attributes = Attributes::new();
        attributes.set(first.name, first.value);
        while let Some(next) = writes.next_if(|w| (w.device, w.time_ms) == (device, time_ms)) {
            attributes.set(next.name, next.value);
        }
        derive(world, device, time_ms, attributes);
    }
}

fn derive(world: &mut World, device: Entity, time_ms: i64, attributes: Attributes) {
    let Some(id) = world.get::<Device>(device).map(|d| d.id.clone()) else {
        return;
    };
    if let Some(mut custom) = world.get_mut::<CustomAttributes>(device) {
        for entry in attributes.entries() {
            if custom.0.get_like(entry) != Some(entry.value()) {
                custom.0.set_entry(entry);
            }
        }
    }
    let message = DeviceMessage {
        device: id,
        protocol: PROTOCOL,
        record: Record {
            time_ms,
            kind: RecordKind::Event,
            attributes,
            ..Record::default()
        },
    };
    world.write_message(AttributesDerived(Arc::new(message)));
}
