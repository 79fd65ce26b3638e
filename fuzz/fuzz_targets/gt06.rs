//! GT06: arbitrary bytes through every kind of session.
//!
//! Strict and accept-bad-checksum sessions, each fresh (waiting for a login)
//! and already identified; plus one with a model override picked by the
//! input's length, since some models change the frame layouts.

#![no_main]

use drover_fuzz::churn;
use drover_protocols::gt06::{Gt06, Gt06Session};
use drover_protocols::model::DeviceId;
use drover_protocols::{DecodeOptions, Protocol};
use libfuzzer_sys::fuzz_target;

/// Models whose layouts differ (see `gt06/variant.rs`), and the default one.
const MODELS: [&str; 8] = [
    "GT06N", "VL103", "XT40", "LW4G-4B", "SEEWORLD", "QH302R", "R11", "G18",
];

fuzz_target!(|data: &[u8]| {
    for accept_bad_checksum in [false, true] {
        let gt06 = Gt06::new(DecodeOptions {
            accept_bad_checksum,
        });
        churn(gt06.session(), data);
        churn(
            Gt06Session::identified(&gt06, DeviceId::new("864717003664467")),
            data,
        );
    }
    let model = MODELS[data.len() % MODELS.len()];
    let gt06 = Gt06::new(DecodeOptions::default()).with_model(model);
    churn(
        Gt06Session::identified(&gt06, DeviceId::new("864717003664467")),
        data,
    );
});
