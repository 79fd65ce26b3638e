//! Teltonika: arbitrary bytes through every kind of session.
//!
//! TCP sessions strict and accept-bad-checksum, each fresh (waiting for the
//! IMEI handshake) and already identified; UDP (connectionless) sessions,
//! strict and lenient; plus one TCP session with the extended IO section
//! and a model picked by the input's length.

#![no_main]

use drover_fuzz::churn;
use drover_protocols::model::DeviceId;
use drover_protocols::teltonika::Teltonika;
use drover_protocols::{DecodeOptions, Protocol};
use libfuzzer_sys::fuzz_target;

/// Model families whose IO ids mean different things (see `teltonika/io.rs`).
const MODELS: [&str; 6] = ["FMB130", "FMB003", "FM6300", "TAT100", "MTB100", "GH3000"];

fuzz_target!(|data: &[u8]| {
    for accept_bad_checksum in [false, true] {
        let tcp = Teltonika::new(DecodeOptions {
            accept_bad_checksum,
        });
        churn(tcp.session(), data);
        churn(tcp.session_for(DeviceId::new("356307042441013")), data);
        churn(tcp.with_connectionless(true).session(), data);
    }
    let model = MODELS[data.len() % MODELS.len()];
    let tcp = Teltonika::new(DecodeOptions::default())
        .with_model(model)
        .with_extended(true);
    churn(tcp.session_for(DeviceId::new("356307042441013")), data);
});
