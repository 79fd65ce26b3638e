//! The built-in systems, one module per concern, in the order of the Tick sets.

pub mod alarms;
pub mod alerts;
pub mod derived;
pub mod emit;
pub mod fuel;
pub mod geofences;
pub mod harsh;
pub mod ingest;
pub mod jobs;
pub mod motion;
pub mod offline;
pub mod overspeed;
pub mod presence;
pub mod retention;
pub mod stops;
pub mod trips;
pub mod usage;
