//! drover-devices
