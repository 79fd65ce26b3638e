//! # drover
//!
//! Drover as a library: the `drover` command line with analytics of your
//! own in its engine. A plugin adds systems that run every tick beside the
//! built-in ones, with typed access to devices, their records, trips and
//! alerts; what they raise and derive is stored, published and served like
//! the rest (docs/extending.md):
//!
//! ```no_run
//! use drover::prelude::*;
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn build(&self, engine: &mut Engine) {
//!         engine.add_systems(TickSet::Analyze, say_hello);
//!     }
//! }
//!
//! fn say_hello(devices: Query<&Device, Added<Device>>) {
//!     for device in &devices {
//!         tracing::info!(imei = %device.id, "a new device");
//!     }
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     drover::App::new().add_plugin(Hello).run()
//! }
//! ```
//!
//! The binary is `App::new().run()`: every command (`serve`, `demo`, …)
//! and setting work the same with plugins added.

mod cli;

/// What analytics systems use, in one import.
pub mod prelude {
    pub use drover_engine::bevy_ecs;
    pub use drover_engine::bevy_ecs::prelude::*;
    pub use drover_engine::components::{
        CustomAttributes, Device, Ignition, Kinematics, LastFix, LastSeen, Obd, Power, Presence,
        Reports,
    };
    pub use drover_engine::systems::alerts::{
        AlertSummary, Details, DeviceAlerts, RaiseAlerts, Severity,
    };
    pub use drover_engine::systems::derived::SetAttributes;
    pub use drover_engine::systems::ingest::{Facts, TickRecords};
    pub use drover_engine::systems::trips::{Trip, TripSummary, Trips};
    pub use drover_engine::{Clock, Engine, Plugin, TickSet};
    pub use drover_protocols::model::{DeviceMessage, Fix, Record, RecordKind, Value, attr};
}

use drover_engine::Plugin;

/// The `drover` command line, with plugins.
#[derive(Default)]
pub struct App {
    plugins: cli::Plugins,
}

impl App {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `plugin` to the engine of the node the command starts.
    pub fn add_plugin(mut self, plugin: impl Plugin + 'static) -> Self {
        self.plugins.push(Box::new(plugin));
        self
    }

    /// Parses the command line and runs the command until it ends (a server
    /// until SIGINT or SIGTERM).
    pub fn run(self) -> anyhow::Result<()> {
        cli::main(self.plugins)
    }
}
