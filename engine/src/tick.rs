//! The engine core: a World, the Tick schedule and one call to advance it.
//!
//! No threads and no channels here: [`Engine::tick`] takes the inputs and the
//! clock and returns the deltas, which is what tests and benches drive
//! directly. [`crate::runtime`] wraps it in a thread for the server.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{MultiThreadedExecutor, ScheduleLabel, SingleThreadedExecutor};
use bevy_ecs::system::ScheduleSystem;
use bevy_tasks::{ComputeTaskPool, TaskPoolBuilder};

use crate::clock::{Clock, every};
use crate::io::{Delta, DeviceState, Input};
use crate::snapshot::{self, FORMAT, Snapshot};
use crate::systems::alerts::{
    self, AlertAction, AlertOutcome, AlertRules, AlertSummary, SystemCondition,
};
use crate::systems::emit::{self, EmitOptions, Outbox};
use crate::systems::fuel::{self, FuelRules};
use crate::systems::geofences::{self, FenceSpec, Geofences};
use crate::systems::harsh::{self, HarshRules};
use crate::systems::ingest::{self, DeviceIndex, Incoming};
use crate::systems::offline::{self, OfflineRules};
use crate::systems::overspeed::{self, OverspeedRules};
use crate::systems::presence::{self, PresenceTimeout};
use crate::systems::retention::{self, ForgetAfter};
use crate::systems::trips::{self, Trip, TripChanged, TripRules, TripSummary};
use crate::systems::usage::{self, UsageRules};
use crate::systems::{alarms, derived, motion};
use crate::systems::{jobs, stops};

/// The schedule run once per tick.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tick;

/// The ordered stages of a tick. Systems inside one set run in parallel where
/// their data allows.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickSet {
    /// Apply inputs to Device entities.
    Ingest,
    /// Values computed from the raw state: motion, distance.
    Derive,
    /// Conditions over time: presence timeouts, trips, alerts.
    Detect,
    /// User-written analytics: the extension point.
    Analyze,
    /// Changes out to the [`Outbox`].
    Emit,
}

/// How the Tick schedule executes its systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    /// Systems one after another on the tick thread. Cheapest for few, cheap systems.
    #[default]
    SingleThreaded,
    /// Independent systems in parallel on the compute task pool.
    MultiThreaded,
}

/// Settings of the engine core.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub executor: Executor,
    /// A device without a connection goes offline this long after its last report.
    pub presence_timeout_ms: i64,
    /// Emit full device state deltas, not only presence. The runtime builds
    /// its [`crate::LiveView`] from them, so a running engine needs this;
    /// off, the core alone can be measured.
    pub emit_state: bool,
    /// How often the presence sweep (a pass over every device) runs.
    pub sweep_every_ms: i64,
    /// A device silent this long leaves the live world (its history stays);
    /// 0 keeps every device.
    pub forget_after_ms: i64,
    /// What makes a trip.
    pub trips: TripRules,
    /// How engine hours are counted.
    pub usage: UsageRules,
    /// What raises alerts.
    pub alerts: AlertConfig,
}

/// The rules of the built-in alert detectors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlertConfig {
    pub rules: AlertRules,
    pub overspeed: OverspeedRules,
    pub offline: OfflineRules,
    pub fuel: FuelRules,
    pub harsh: HarshRules,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            executor: Executor::default(),
            presence_timeout_ms: 600_000,
            emit_state: true,
            sweep_every_ms: 1_000,
            forget_after_ms: 30 * 24 * 3_600_000,
            trips: TripRules::default(),
            usage: UsageRules::default(),
            alerts: AlertConfig::default(),
        }
    }
}

/// Sizes the process-wide compute pool that multi-threaded schedules and
/// `par_iter` use. The first call wins; later calls return the existing pool.
pub fn init_compute_pool(threads: usize) -> &'static ComputeTaskPool {
    ComputeTaskPool::get_or_init(|| {
        TaskPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name("drover-compute".to_owned())
            .build()
    })
}

/// Analytics of your own, added to the engine as one: its systems (in
/// [`TickSet::Analyze`], usually) and the resources they read. Its
/// systems see every record ([`crate::systems::ingest::TickRecords`]),
/// devices' components, trips, and raise alerts and derive attributes like
/// the built-in ones (`Deferred<RaiseAlerts>`, `Deferred<SetAttributes>`).
pub trait Plugin: Send + Sync {
    fn build(&self, engine: &mut Engine);
}

/// The live fleet state and the systems that update it.
pub struct Engine {
    world: World,
    schedule: Schedule,
    /// The journal sequence number of the first record not yet applied.
    position: u64,
}

/// How often the sweep for forgotten devices runs: an hour, as forgetting
/// takes weeks.
const FORGET_SWEEP_MS: i64 = 3_600_000;

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("a snapshot can only be restored into an empty engine ({0} devices present)")]
    NotEmpty(usize),
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let mut world = World::new();
        world.insert_resource(Clock::default());
        world.insert_resource(Incoming::default());
        world.insert_resource(ingest::IngestOrder::default());
        world.init_resource::<ingest::TickFacts>();
        world.insert_resource(DeviceIndex::default());
        world.insert_resource(Outbox::default());
        world.init_resource::<emit::RestoredAt>();
        world.insert_resource(EmitOptions {
            state: config.emit_state,
        });
        world.insert_resource(PresenceTimeout {
            after_ms: config.presence_timeout_ms,
        });
        world.insert_resource(ForgetAfter {
            after_ms: config.forget_after_ms,
        });
        world.insert_resource(config.trips);
        world.insert_resource(config.usage);
        world.insert_resource(config.alerts.rules);
        world.insert_resource(config.alerts.overspeed);
        world.insert_resource(config.alerts.offline);
        world.insert_resource(config.alerts.fuel);
        world.insert_resource(config.alerts.harsh);
        world.init_resource::<Geofences>();
        world.init_resource::<jobs::Timetable>();
        world.init_resource::<overspeed::DeviceLimits>();
        world.init_resource::<alerts::AlertIndex>();
        alerts::spawn_system(&mut world);
        world.init_resource::<alerts::AlertActions>();
        world.init_resource::<alerts::Signals>();
        // Emit drains these every tick, so no message update system is needed.
        world.init_resource::<Messages<TripChanged>>();
        world.init_resource::<Messages<stops::StopChanged>>();
        world.init_resource::<Messages<alerts::AlertChanged>>();
        world.init_resource::<derived::Writes>();
        world.init_resource::<Messages<derived::AttributesDerived>>();

        let mut schedule = Schedule::new(Tick);
        match config.executor {
            Executor::SingleThreaded => {
                schedule.set_executor(SingleThreadedExecutor::new());
            }
            Executor::MultiThreaded => {
                // par_iter and the executor panic without a pool; size it from the
                // machine unless the runtime already did.
                init_compute_pool(default_threads());
                schedule.set_executor(MultiThreadedExecutor::new());
            }
        }
        schedule.configure_sets(
            (
                TickSet::Ingest,
                TickSet::Derive,
                TickSet::Detect,
                TickSet::Analyze,
                TickSet::Emit,
            )
                .chain(),
        );
        schedule.add_systems(
            (ingest::spawn_devices, ingest::apply_inputs)
                .chain()
                .in_set(TickSet::Ingest),
        );
        schedule.add_systems((motion::update_motion, usage::update_usage).in_set(TickSet::Derive));
        schedule.add_systems(
            presence::expire_presence
                .run_if(every(config.sweep_every_ms))
                .in_set(TickSet::Detect),
        );
        schedule.add_systems(
            (
                trips::detect_trips,
                trips::close_silent_trips.run_if(every(config.sweep_every_ms)),
                stops::track_stops,
            )
                .chain()
                .in_set(TickSet::Detect),
        );
        schedule.add_systems(
            (
                alarms::detect_alarms,
                alarms::detect_dtcs,
                overspeed::detect_overspeed,
                offline::clear_offline,
                offline::detect_offline.run_if(every(config.sweep_every_ms)),
                fuel::detect_fuel_drop,
                harsh::detect_harsh,
                geofences::detect_geofences,
            )
                .in_set(TickSet::Detect),
        );
        schedule.add_systems(jobs::fire_jobs.in_set(TickSet::Detect));
        if config.forget_after_ms > 0 {
            schedule.add_systems(
                retention::forget_silent_devices
                    .run_if(every(FORGET_SWEEP_MS))
                    .in_set(TickSet::Detect),
            );
        }
        // What detectors and user systems raised, settled before it goes out.
        schedule.add_systems(
            (
                alerts::settle_alerts,
                derived::settle_attributes,
                emit::emit_changes,
            )
                .chain()
                .in_set(TickSet::Emit),
        );
        Engine {
            world,
            schedule,
            position: 0,
        }
    }

    /// Adds a plugin's systems and resources.
    pub fn add_plugin(&mut self, plugin: &dyn Plugin) -> &mut Self {
        plugin.build(self);
        self
    }

    /// Adds (or replaces) a resource systems read, e.g. a plugin's settings.
    pub fn insert_resource<R: Resource>(&mut self, resource: R) -> &mut Self {
        self.world.insert_resource(resource);
        self
    }

    /// Adds systems to a set, typically [`TickSet::Analyze`]: the extension point.
    pub fn add_systems<M>(
        &mut self,
        set: TickSet,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M>,
    ) -> &mut Self {
        self.schedule.add_systems(systems.in_set(set));
        self
    }

    /// Runs one tick at clock time `now_ms` over `inputs` (in arrival order) and
    /// appends the resulting deltas to `deltas`.
    pub fn tick(&mut self, now_ms: i64, inputs: &mut Vec<Input>, deltas: &mut Vec<Delta>) {
        let mut clock = self.world.resource_mut::<Clock>();
        clock.now_ms = now_ms;
        clock.tick += 1;
        std::mem::swap(&mut self.world.resource_mut::<Incoming>().0, inputs);
        self.schedule.run(&mut self.world);
        // Hand the (now empty) input buffer back so its capacity is reused.
        std::mem::swap(&mut self.world.resource_mut::<Incoming>().0, inputs);
        inputs.clear();
        deltas.append(&mut self.world.resource_mut::<Outbox>().0);
    }

    /// Queues an operator's action on an alert for the next tick; its
    /// outcome is in [`Engine::take_alert_outcomes`] after that tick.
    pub fn act_on_alert(&mut self, action: AlertAction) {
        self.world
            .resource_mut::<alerts::AlertActions>()
            .pending
            .push(action);
    }

    /// What the last ticks did with the actions queued before them.
    pub fn take_alert_outcomes(&mut self) -> Vec<AlertOutcome> {
        std::mem::take(&mut self.world.resource_mut::<alerts::AlertActions>().outcomes)
    }

    /// A condition of the node itself, for the next tick: raises (or
    /// clears) its `system_…` alert on the node's own entity.
    pub fn system_condition(&mut self, condition: SystemCondition) {
        alerts::system_condition(&mut self.world, condition);
    }

    /// Replaces the fleet's geofences (from the next tick on).
    pub fn set_geofences(&mut self, specs: Vec<FenceSpec>) {
        self.world.insert_resource(Geofences::new(specs));
    }

    /// Adds a job due once a day: from the next tick on it goes out as
    /// [`Delta::JobDue`] at its time. Add jobs before restoring a snapshot,
    /// so the days they last fired are taken back.
    pub fn add_daily_job(&mut self, job: jobs::DailyJob) {
        self.world.resource_mut::<jobs::Timetable>().0.push(job);
    }

    /// Replaces the devices' own speed limits (from the next tick on): a
    /// device's limit takes the fleet's place for it.
    pub fn set_speed_limits(&mut self, limits: Vec<(drover_protocols::model::DeviceId, f64)>) {
        self.world
            .insert_resource(overspeed::DeviceLimits(limits.into_iter().collect()));
    }

    /// The alerts not closed yet, sorted by id.
    pub fn open_alerts(&mut self) -> Vec<AlertSummary> {
        let mut query = self.world.query::<&alerts::Alert>();
        let mut open: Vec<AlertSummary> = query.iter(&self.world).map(|a| a.0.clone()).collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        open
    }

    /// The journal sequence number of the first record not yet applied.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves the journal position, e.g. to where a restored snapshot ends.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// The live world as a [`Snapshot`] at the current position. Call
    /// between ticks.
    pub fn capture(&mut self, now_ms: i64) -> Snapshot {
        Snapshot {
            format: FORMAT,
            position: self.position,
            taken_ms: now_ms,
            devices: snapshot::capture_devices(&mut self.world),
            sections: snapshot::capture_sections(&mut self.world),
        }
    }

    /// Rebuilds the world of an engine that holds no device yet from
    /// `snapshot`, and moves the position to the snapshot's. Devices come
    /// back offline: their connections ended with the process that took it.
    pub fn restore(&mut self, snapshot: Snapshot) -> Result<(), RestoreError> {
        let present = self.device_count();
        if present > 0 {
            return Err(RestoreError::NotEmpty(present));
        }
        snapshot::restore_devices(&mut self.world, snapshot.devices);
        snapshot::restore_sections(&mut self.world, &snapshot.sections);
        let restored_at = self.world.change_tick();
        self.world.resource_mut::<emit::RestoredAt>().0 = Some(restored_at);
        self.position = snapshot.position;
        Ok(())
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    pub fn device_count(&self) -> usize {
        self.world.resource::<DeviceIndex>().0.len()
    }

    /// The live state of one device.
    pub fn device(&mut self, id: &drover_protocols::model::DeviceId) -> Option<DeviceState> {
        let entity = self.world.resource::<DeviceIndex>().get(id)?;
        let mut query = self.world.query::<emit::DeviceView>();
        let view = query.get(&self.world, entity).ok()?;
        Some(emit::snapshot(
            &view,
            self.open_trip(&view),
            self.open_stop(&view),
        ))
    }

    fn open_trip(&self, view: &emit::DeviceViewItem<'_, '_>) -> Option<&TripSummary> {
        let entity = view.trips.as_ref()?.open?;
        Some(&self.world.get::<Trip>(entity)?.summary)
    }

    fn open_stop(&self, view: &emit::DeviceViewItem<'_, '_>) -> Option<&stops::StopSummary> {
        let entity = view.stops.as_ref()?.open?;
        Some(&self.world.get::<stops::Stop>(entity)?.0)
    }

    /// The live state of every device, sorted by device id.
    pub fn snapshot(&mut self) -> Vec<DeviceState> {
        let mut query = self.world.query::<emit::DeviceView>();
        let mut all: Vec<DeviceState> = query
            .iter(&self.world)
            .map(|v| emit::snapshot(&v, self.open_trip(&v), self.open_stop(&v)))
            .collect();
        all.sort_by(|a, b| a.device.cmp(&b.device));
        all
    }
}

/// Leaves one core to the I/O runtime on small machines.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1).max(1))
        .unwrap_or(1)
}
