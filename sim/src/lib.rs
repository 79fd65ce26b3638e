//! drover-sim
