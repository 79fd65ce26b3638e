//! The embedded broker's logins and ACL, from real clients (mosquitto_sub,
//! mosquitto_pub, rumqttc and raw bytes) over loopback.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use drover_mqtt::commands;
use drover_mqtt::publisher::{self, Handed, Publisher, Role};
use rumqttc::mqttbytes::v4::{Connect, Subscribe};
use rumqttc::{
    ConnectReturnCode, ConnectionError, LastWill, Packet, QoS, SubscribeFilter, SubscribeReasonCode,
};
use tokio_util::sync::CancellationToken;

use support::{
    API_KEY, IMEI, LIMIT, PREFIX, TestBroker, VIEWER_KEY, client, connack, mosquitto_pub,
    mosquitto_sub, next, positions,
};

fn position_topic() -> String {
    format!("{PREFIX}/devices/{IMEI}/position")
}

/// Publishes `n` positions through the node's records connection and waits
/// until the broker has them.
async fn publish_positions(publisher: &Publisher, n: i64) {
    let mut handed = Handed::default();
    publisher
        .publish_records(&positions(n), &mut handed)
        .await
        .unwrap();
    publisher.confirm(&mut handed, LIMIT).await.unwrap();
}

fn records_publisher(broker: &TestBroker, shutdown: &CancellationToken) -> Publisher {
    let (publisher, _task) = publisher::connect(
        &broker.config,
        &broker.account,
        Role::Records,
        shutdown.clone(),
    )
    .unwrap();
    publisher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_credentials_is_refused_as_not_authorized() {
    let broker = TestBroker::start("anonymous").await;
    let (_client, mut events) = client(broker.port(), "anonymous", None);
    let refused = connack(&mut events).await;
    assert!(
        matches!(
            refused,
            Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized
            ))
        ),
        "{refused:?}"
    );
    let mut sub = mosquitto_sub(broker.port(), None, &format!("{PREFIX}/#"));
    sub.wait_for("not authorised");
    assert!(!sub.exit_status().success());
    assert_eq!(broker.stat(|s| &s.refused_logins), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused() {
    let broker = TestBroker::start("wrong-password").await;
    let (_client, mut events) = client(broker.port(), "guess", Some(("drover", "node-secreT")));
    let refused = connack(&mut events).await;
    assert!(
        matches!(
            refused,
            Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword
            ))
        ),
        "{refused:?}"
    );
    let mut sub = mosquitto_sub(broker.port(), Some(("alice", "dk_wrong")), "drover/#");
    sub.wait_for("bad user name or password");
    assert!(!sub.exit_status().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_with_the_node_account_receives_positions() {
    let broker = TestBroker::start("node-subscriber").await;
    let shutdown = CancellationToken::new();
    let publisher = records_publisher(&broker, &shutdown);
    let login = (broker.account.username.as_str(), broker.account.password());
    let mut sub = mosquitto_sub(
        broker.port(),
        Some(login),
        &format!("{PREFIX}/devices/+/position"),
    );
    sub.wait_for("Subscribed");
    publish_positions(&publisher, 3).await;
    for _ in 0..3 {
        let line = sub.wait_for(&format!("{} {{", position_topic()));
        assert!(line.contains(&format!("\"device\":\"{IMEI}\"")), "{line}");
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_accepted_as_a_password_and_its_subscriber_receives_positions() {
    let broker = TestBroker::start("api-key-subscriber").await;
    let shutdown = CancellationToken::new();
    let publisher = records_publisher(&broker, &shutdown);
    let mut sub = mosquitto_sub(
        broker.port(),
        Some(("alice", API_KEY)),
        &format!("{PREFIX}/#"),
    );
    sub.wait_for("Subscribed (mid: 1): 1");
    publish_positions(&publisher, 2).await;
    sub.wait_for(&position_topic());
    sub.wait_for(&position_topic());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_outside_the_prefix_get_a_failure_code_and_the_rest_still_works() {
    let broker = TestBroker::start("acl-subscribe").await;
    let shutdown = CancellationToken::new();
    let publisher = records_publisher(&broker, &shutdown);
    let (client, mut events) = client(broker.port(), "curious", Some(("alice", API_KEY)));
    connack(&mut events).await.unwrap();

    let filters = ["#", "drover/devices/+/position", "other/#", "+/devices/#"];
    let filters = filters.map(|f| SubscribeFilter::new(f.to_owned(), QoS::AtLeastOnce));
    client.subscribe_many(filters).await.unwrap();
    let codes = next(&mut events, |p| match p {
        Packet::SubAck(ack) => Some(ack.return_codes),
        _ => None,
    })
    .await
    .unwrap();
    use SubscribeReasonCode::{Failure, Success};
    assert_eq!(
        codes,
        [Failure, Success(QoS::AtLeastOnce), Failure, Failure]
    );

    client.subscribe("#", QoS::AtMostOnce).await.unwrap();
    let codes = next(&mut events, |p| match p {
        Packet::SubAck(ack) => Some(ack.return_codes),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(codes, [Failure], "answered by the gateway alone");

    publish_positions(&publisher, 1).await;
    let topic = next(&mut events, |p| match p {
        Packet::Publish(publish) => Some(publish.topic),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(topic, position_topic());
    assert_eq!(broker.stat(|s| &s.refused_filters), 4);

    let mut sub = mosquitto_sub(broker.port(), Some(("alice", API_KEY)), "other/#");
    sub.wait_for("Subscribed (mid: 1): 128");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_outside_command_topics_closes_the_connection() {
    let broker = TestBroker::start("acl-publish").await;
    let (forger, mut events) = client(broker.port(), "forger", Some(("alice", API_KEY)));
    connack(&mut events).await.unwrap();
    forger
        .publish(position_topic(), QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    let closed = next(&mut events, |_| None::<()>).await;
    assert!(closed.is_err(), "the connection must close");

    let mut pub_ = mosquitto_pub(
        broker.port(),
        Some(("alice", API_KEY)),
        &format!("{PREFIX}/server/status"),
        "offline",
    );
    assert!(!pub_.exit_status().success());

    // Retained, a command would run again at every resubscription.
    let (retainer, mut events) = client(broker.port(), "retainer", Some(("alice", API_KEY)));
    connack(&mut events).await.unwrap();
    let command = format!("{PREFIX}/devices/{IMEI}/command");
    retainer
        .publish(command, QoS::AtLeastOnce, true, "{}")
        .await
        .unwrap();
    assert!(next(&mut events, |_| None::<()>).await.is_err());
    assert_eq!(broker.stat(|s| &s.forbidden_publishes), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_key_reads_but_may_not_send_commands() {
    let broker = TestBroker::start("viewer").await;
    let mut sub = mosquitto_sub(broker.port(), Some(("viewer", VIEWER_KEY)), "drover/#");
    sub.wait_for("Subscribed (mid: 1): 1");
    let (viewer, mut events) = client(broker.port(), "viewer", Some(("viewer", VIEWER_KEY)));
    connack(&mut events).await.unwrap();
    let command = format!("{PREFIX}/devices/{IMEI}/command");
    viewer
        .publish(command, QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    assert!(next(&mut events, |_| None::<()>).await.is_err());
    assert_eq!(broker.stat(|s| &s.forbidden_publishes), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_will_outside_command_topics_is_refused() {
    let broker = TestBroker::start("acl-will").await;
    let mut options = rumqttc::MqttOptions::new("willing", "127.0.0.1", broker.port());
    options
        .set_credentials("alice", API_KEY)
        .set_last_will(LastWill::new(
            position_topic(),
            "{}",
            QoS::AtMostOnce,
            false,
        ));
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 8);
    let refused = connack(&mut events).await;
    assert!(
        matches!(
            refused,
            Err(ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized
            ))
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_from_an_api_key_client_reaches_the_command_stream_and_its_result_comes_back() {
    let broker = TestBroker::start("commands").await;
    let shutdown = CancellationToken::new();
    let (commands, _task) =
        commands::subscribe(&broker.config, &broker.account, shutdown.clone()).unwrap();
    let (main, _task) = publisher::connect(
        &broker.config,
        &broker.account,
        Role::Main,
        shutdown.clone(),
    )
    .unwrap();
    support::wait_until(|| commands.stats.subscriptions.load(Ordering::Acquire) > 0).await;

    let result_topic = format!("{PREFIX}/devices/{IMEI}/command/result");
    let mut results = mosquitto_sub(broker.port(), Some(("alice", API_KEY)), &result_topic);
    results.wait_for("Subscribed (mid: 1): 1");
    let json = r#"{"type":"engine_stop"}"#;
    let command_topic = format!("{PREFIX}/devices/{IMEI}/command");
    let mut sent = mosquitto_pub(
        broker.port(),
        Some(("alice", API_KEY)),
        &command_topic,
        json,
    );
    assert!(sent.exit_status().success());

    let received = tokio::time::timeout(LIMIT, commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.device, IMEI);
    assert_eq!(received.payload, json.as_bytes());

    main.command_result(IMEI, br#"{"status":"sent"}"#.to_vec())
        .await
        .unwrap();
    results.wait_for(&format!(r#"{result_topic} {{"status":"sent"}}"#));
    shutdown.cancel();
}

/// Reads until the gateway closes the connection; returns what it sent.
fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => answer,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => answer,
        Err(e) => panic!("the gateway did not close the connection: {e}"),
    }
}

fn raw(port: u16, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_closed_one_by_one_while_a_subscriber_keeps_receiving() {
    let broker = TestBroker::start("bad-clients").await;
    let shutdown = CancellationToken::new();
    let publisher = records_publisher(&broker, &shutdown);
    let (subscriber, mut events) = client(broker.port(), "steady", Some(("alice", API_KEY)));
    connack(&mut events).await.unwrap();
    subscriber
        .subscribe(format!("{PREFIX}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut events, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await
    .unwrap();

    let port = broker.port();
    let closed = tokio::task::spawn_blocking(move || {
        [
            // A reserved packet type where CONNECT must be.
            read_until_closed(raw(port, &[0xF0, 0x00])),
            // A remaining length in five bytes (four at most).
            read_until_closed(raw(port, &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])),
            // A CONNECT announcing 200 MB.
            read_until_closed(raw(port, &[0x10, 0xFF, 0xFF, 0xFF, 0x5F])),
            // A CONNECT that never comes.
            read_until_closed(raw(port, &[])),
            // Half a CONNECT, then silence.
            read_until_closed(raw(port, &[0x10, 0x20, 0x00, 0x04, b'M'])),
        ]
    })
    .await
    .unwrap();
    for answer in closed {
        assert_eq!(answer, b"", "closed without a CONNACK");
    }
    assert_eq!(broker.stat(|s| &s.malformed), 2);
    assert_eq!(broker.stat(|s| &s.oversized), 1);
    assert_eq!(broker.stat(|s| &s.connect_timeouts), 2);

    publish_positions(&publisher, 1).await;
    let topic = next(&mut events, |p| match p {
        Packet::Publish(publish) => Some(publish.topic),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(topic, position_topic());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_5_client_is_told_its_protocol_version_is_unacceptable() {
    let broker = TestBroker::start("mqtt5").await;
    // CONNECT, MQTT 5, clean start, keep-alive 60, no properties, client "v5".
    let connect = [
        0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 2, b'v', b'5',
    ];
    let port = broker.port();
    let answer = tokio::task::spawn_blocking(move || read_until_closed(raw(port, &connect)))
        .await
        .unwrap();
    assert_eq!(answer, [0x20, 2, 0, 1]);
    assert_eq!(broker.stat(|s| &s.refused_protocol), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_holds_back_nobody_else() {
    let broker = TestBroker::start("slow-subscriber").await;
    let shutdown = CancellationToken::new();
    let publisher = records_publisher(&broker, &shutdown);

    // Logs in, subscribes, and never reads a byte.
    let mut login = BytesMut::new();
    let mut connect = Connect::new("stuck");
    connect.set_login("alice", API_KEY);
    connect.write(&mut login).unwrap();
    let mut subscribe = Subscribe::new(format!("{PREFIX}/#"), QoS::AtLeastOnce);
    subscribe.pkid = 1;
    subscribe.write(&mut login).unwrap();
    // A small receive window, so that the stuck client is soon full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(broker.broker.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stuck, &login)
        .await
        .unwrap();

    let (subscriber, mut events) = client(broker.port(), "reader", Some(("alice", API_KEY)));
    connack(&mut events).await.unwrap();
    subscriber
        .subscribe(format!("{PREFIX}/#"), QoS::AtMostOnce)
        .await
        .unwrap();
    next(&mut events, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await
    .unwrap();

    // Far more than the stuck client's socket buffers hold.
    const BATCHES: i64 = 40;
    const PER_BATCH: i64 = 500;
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < BATCHES * PER_BATCH {
            next(&mut events, |p| {
                matches!(p, Packet::Publish(_)).then_some(())
            })
            .await
            .unwrap();
            received += 1;
        }
        received
    });
    for _ in 0..BATCHES {
        publish_positions(&publisher, PER_BATCH).await;
    }
    let received = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(received, BATCHES * PER_BATCH);
    shutdown.cancel();
}
