//! The records connection against the embedded broker: records are published
//! without waiting, and `confirm` tells when the broker has them all.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use drover_mqtt::MqttConfig;
use drover_mqtt::credentials::Credentials;
use drover_mqtt::publisher::{self, Handed, Role};
use drover_protocols::model::{DeviceId, DeviceMessage, Record};
use tokio_util::sync::CancellationToken;

use support::{TestBroker, free_port};

fn messages(n: i64) -> Vec<Arc<DeviceMessage>> {
    (0..n)
        .map(|i| {
            Arc::new(DeviceMessage {
                device: DeviceId::new("356307042441013"),
                protocol: "teltonika",
                record: Record {
                    time_ms: 1_764_000_000_000 + i,
                    ..Record::default()
                },
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_returns_once_the_broker_acknowledged_every_record() {
    let broker = TestBroker::start("records-confirm").await;
    let shutdown = CancellationToken::new();
    let (publisher, task) = publisher::connect(
        &broker.config,
        &broker.account,
        Role::Records,
        shutdown.clone(),
    )
    .unwrap();

    let mut handed = Handed::default();
    let batch = messages(100);
    for _ in 0..5 {
        publisher
            .publish_records(&batch, &mut handed)
            .await
            .unwrap();
    }
    publisher
        .confirm(&mut handed, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(publisher.stats.acked.load(Ordering::Relaxed) >= 500);
    assert_eq!(
        handed,
        Handed::default(),
        "confirm empties what it confirmed"
    );
    // Nothing handed over: nothing to wait for.
    publisher
        .confirm(&mut handed, Duration::from_millis(1))
        .await
        .unwrap();
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_no_broker_acknowledged_are_not_confirmed() {
    // Nothing listens there: the records are queued, never acknowledged.
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{}", free_port()),
        embedded_listen: String::new(),
        ..MqttConfig::default()
    };
    let account = Credentials::new("drover", "unused");
    let shutdown = CancellationToken::new();
    let (publisher, task) =
        publisher::connect(&config, &account, Role::Records, shutdown.clone()).unwrap();
    let mut handed = Handed::default();
    publisher
        .publish_records(&messages(3), &mut handed)
        .await
        .unwrap();
    let result = publisher
        .confirm(&mut handed, Duration::from_millis(500))
        .await;
    assert!(
        matches!(result, Err(drover_mqtt::MqttError::Unconfirmed(3))),
        "{result:?}"
    );
    shutdown.cancel();
    task.await.unwrap();
}
