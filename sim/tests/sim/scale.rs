//! A larger paced run, for a look at the simulator's own overhead:
//! `cargo test -p drover-sim --test sim -- --ignored --nocapture scale`.

use std::time::Duration;

use drover_sim::SimConfig;

use crate::fake_server::{Acks, start};
use crate::runner::run_ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "seconds of load; run by hand"]
async fn scale_two_thousand_devices() {
    let s = start(Acks::Normal, None).await;
    let config = SimConfig {
        devices: 2_000,
        rate: 1.0,
        records_per_packet: 1,
        gt06_heartbeat_every: 10,
        duration: Duration::from_secs(10),
        ramp: Duration::from_secs(2),
        ..s.config.clone()
    };
    let r = run_ok(config).await;
    println!("{r}");
    assert_eq!(r.errors.len(), 0, "{:?}", r.errors);
    assert_eq!(r.messages_sent, s.sent_frames());
    assert_eq!(r.records_acked, r.records_sent);
}
