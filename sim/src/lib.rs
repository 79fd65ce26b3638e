//! drover-sim
pub mod powertrain;
pub mod route;
pub mod vehicle;
