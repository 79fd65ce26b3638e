//! drover-mqtt
