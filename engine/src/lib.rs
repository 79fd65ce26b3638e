//! # drover-engine
//!
//! The live state of the whole fleet, in a `bevy_ecs` World. Devices are
//! entities; plain ECS systems update them once per tick, in ordered sets:
//!
//! ```text
//! Ingest → Derive → Detect → Analyze → Emit
//! ```
//!
//! - **Ingest** ([`systems::ingest`]) applies the tick's [`Input`]s (records,
//!   connects, disconnects) to Device entities found through an IMEI → Entity
//!   index. Archived and out-of-order records never move live state backwards.
//! - **Derive** ([`systems::motion`]) computes motion and distance.
//! - **Detect** ([`systems::presence`]) handles conditions over time.
//! - **Analyze** is where users add their own systems ([`Engine::add_systems`]).
//! - **Emit** ([`systems::emit`]) turns what changed into [`Delta`]s.
//!
//! [`Engine`] is the sans-IO core: `tick(now, inputs) → deltas`, deterministic
//! for the same inputs and clock, with [`Engine::capture`] and
//! [`Engine::restore`] for [`Snapshot`]s. [`runtime`] runs it on its own
//! thread as a consumer of the committed journal: records arrive in batches
//! with their journal positions, connection changes through the
//! [`connections`] board, and nothing it produces waits for a consumer
//! ([`outputs`]). After each tick it publishes the fleet's live state as an
//! immutable read model ([`view`]) that readers load without asking it.
//!
//! **Invariant:** no I/O, no async, no wall clock inside systems. Time comes
//! from the [`Clock`] resource, which the shell sets before each tick.

pub mod clock;
pub mod components;
pub mod connections;
mod desk;
mod io;
pub mod outputs;
pub mod runtime;
pub mod snapshot;
pub mod systems;
mod tick;
pub mod view;

pub use clock::{Clock, every};
pub use desk::{AlertDesk, Answer, DeskError};
pub use io::{Delta, DeviceState, Input};
pub use snapshot::Snapshot;
pub use tick::{
    AlertConfig, Engine, EngineConfig, Executor, Plugin, RestoreError, Tick, TickSet,
    default_threads, init_compute_pool,
};
pub use view::{Fleet, LiveView};

/// Re-exported so that user systems name the same `bevy_ecs` as the engine.
pub use bevy_ecs;
