//! Device→MQTT latency against a broker the fake servers publish to.

use std::time::Duration;

use drover_sim::SimConfig;

use crate::fake_server::{Acks, Publisher, start};
use crate::runner::run_ok;

fn watched(config: SimConfig, broker: u16) -> SimConfig {
    SimConfig {
        mqtt: Some(format!("mqtt://127.0.0.1:{broker}")),
        mqtt_grace: Duration::from_millis(800),
        ..config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_position_is_matched_on_mqtt() {
    let broker = crate::broker::start();
    let s = start(Acks::Normal, Some(Publisher::connect(broker, None))).await;
    let r = run_ok(watched(s.config.clone(), broker)).await;
    let mqtt = r.mqtt.clone().unwrap_or_default();
    assert_eq!(r.records_acked, s.positions(), "{r}");
    assert_eq!(mqtt.matched, r.records_sent, "{r}");
    assert_eq!(mqtt.received, mqtt.matched, "{r}");
    assert_eq!(mqtt.missing, 0, "{r}");
    assert_eq!(mqtt.latency_us.count, mqtt.matched);
    assert!(mqtt.latency_us.p50 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_the_server_never_published_are_missing() {
    let broker = crate::broker::start();
    let s = start(Acks::Normal, Some(Publisher::connect(broker, Some(7)))).await;
    let r = run_ok(watched(s.config.clone(), broker)).await;
    let mqtt = r.mqtt.clone().unwrap_or_default();
    assert!(s.unpublished() > 0);
    assert_eq!(mqtt.missing, s.unpublished(), "{r}");
    assert_eq!(mqtt.matched + mqtt.missing, r.records_acked, "{r}");
}
