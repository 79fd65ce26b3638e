//! The InfluxDB connector against a real, private `influxd` (Debian's 1.6).

use std::sync::Arc;

use drover_influxdb::{InfluxClient, InfluxConfig, InfluxError};
use drover_protocols::model::{
    Attributes, DeviceId, DeviceMessage, Fix, Record, RecordKind, Value, attr,
};
use drover_testkit::Influxd;

const T0: i64 = 1_700_000_000_000;

fn server() -> Influxd {
    Influxd::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A client of database `drover` on `influxd`, created.
fn client(influxd: &Influxd, tweak: impl FnOnce(&mut InfluxConfig)) -> InfluxClient {
    influxd.create_database("drover").unwrap();
    let mut config = InfluxConfig {
        url: influxd.url(),
        ..InfluxConfig::default()
    };
    tweak(&mut config);
    InfluxClient::new(config).unwrap()
}

fn fix(i: i64) -> Fix {
    Fix {
        lat: 48.0 + i as f64 / 1000.0,
        lon: 2.0 - i as f64 / 1000.0,
        speed_kmh: 30.5 + i as f64,
        course_deg: (i * 10 % 360) as f64,
        altitude_m: Some(100.25),
        satellites: Some(7),
        valid: i % 5 != 0,
    }
}

/// Record `i` of `device`, one second after the previous, with an OBD reading.
fn position(device: &str, i: i64) -> Arc<DeviceMessage> {
    let mut attributes = Attributes::new();
    attributes.set(attr::IGNITION, true);
    attributes.set(attr::POWER, 12.5);
    attributes.set(attr::RPM, 1000 + i);
    Arc::new(DeviceMessage {
        device: DeviceId::new(device),
        protocol: "teltonika",
        record: Record {
            time_ms: T0 + i * 1000,
            kind: RecordKind::Position,
            fix: Some(fix(i)),
            archived: i % 2 == 1,
            attributes,
        },
    })
}

fn fleet(devices: usize, per_device: i64) -> Vec<Arc<DeviceMessage>> {
    (0..per_device)
        .flat_map(|i| (0..devices).map(move |d| position(&format!("35000000000{d:04}"), i)))
        .collect()
}

fn count(influxd: &Influxd, measurement: &str, field: &str) -> u64 {
    influxd.count("drover", measurement, field).unwrap()
}

#[tokio::test]
async fn positions_are_stored_and_read_back_exactly() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    let messages = fleet(3, 10);

    let report = client.write(&messages).await.unwrap();
    assert_eq!(report.messages, 30);
    assert_eq!(report.lines, 60, "a position line and an obd line each");
    assert_eq!(report.stored(), 60);
    assert_eq!(
        (report.dropped, report.rejected, report.unencodable),
        (0, 0, 0)
    );
    assert_eq!(count(&influxd, "position", "lat"), 30);
    assert_eq!(count(&influxd, "obd", "rpm"), 30);

    let read = client
        .positions("350000000000001", T0, T0 + 60_000, 100, None)
        .await
        .unwrap();
    assert_eq!(read.len(), 10);
    for (i, record) in (0..).zip(&read) {
        let sent = &position("350000000000001", i).record;
        assert_eq!(record.time_ms, sent.time_ms);
        assert_eq!(record.kind, RecordKind::Position);
        assert_eq!(record.archived, sent.archived);
        assert_eq!(record.fix, sent.fix);
        assert_eq!(
            record.attributes.get(attr::IGNITION),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            record.attributes.get(attr::POWER),
            Some(&Value::Float(12.5))
        );
        assert_eq!(record.attributes.get(attr::RPM), None, "OBD lives in `obd`");
    }
}

#[tokio::test]
async fn replaying_a_batch_overwrites_instead_of_duplicating() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    let messages = fleet(5, 4);
    let first = client.write(&messages).await.unwrap();
    let again = client.write(&messages).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(count(&influxd, "position", "lat"), 20);
    assert_eq!(count(&influxd, "obd", "rpm"), 20);
}

#[tokio::test]
async fn a_partial_write_keeps_the_good_points_and_is_not_resent() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    // `rpm` becomes an integer field of the shard.
    client.write(&[position("d", 0)]).await.unwrap();

    let mut batch: Vec<_> = (1..=4).map(|i| position("d", i)).collect();
    let mut conflicting = (*position("d", 5)).clone();
    conflicting.record.attributes.set(attr::RPM, 1500.5);
    batch.push(Arc::new(conflicting));

    let report = client
        .write(&batch)
        .await
        .expect("a partial write is not an error");
    assert_eq!(report.requests, 1, "sent once, not retried");
    assert_eq!(report.lines, 10);
    assert_eq!(report.dropped, 1);
    assert_eq!(report.stored(), 9);
    assert_eq!(
        count(&influxd, "position", "lat"),
        6,
        "every position stored"
    );
    assert_eq!(count(&influxd, "obd", "rpm"), 5, "all but the float rpm");
}

#[tokio::test]
async fn device_ids_with_special_characters_round_trip_and_cannot_inject() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    let odd = "a b,c=d\"'\\x";
    let injection = "x' OR '1'='1";
    let trailing_backslash = "ends\\";
    let batch = [
        position(odd, 0),
        position(injection, 1),
        position(trailing_backslash, 2),
    ];

    let report = client.write(&batch).await.unwrap();
    assert_eq!(
        report.unencodable, 1,
        "a trailing backslash cannot be a tag value"
    );
    assert_eq!(report.stored(), 4);

    let read = client
        .positions(odd, T0, T0 + 10_000, 10, None)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].fix, Some(fix(0)));
    let read = client
        .positions(injection, T0, T0 + 10_000, 10, None)
        .await
        .unwrap();
    assert_eq!(read.len(), 1, "only the device named so, not every device");
    assert_eq!(read[0].time_ms, T0 + 1000);
    let tags = influxd
        .query(
            "drover",
            "SHOW TAG VALUES FROM \"position\" WITH KEY = \"device\"",
        )
        .unwrap();
    let values = &tags["results"][0]["series"][0]["values"];
    assert_eq!(values[0][1], odd, "{tags}");
    assert_eq!(values[1][1], injection, "{tags}");
}

#[tokio::test]
async fn an_unknown_database_is_a_configuration_error() {
    let influxd = server();
    let client = client(&influxd, |c| {
        c.database = "missing".into();
        c.create_database = false;
    });
    let error = client.write(&fleet(1, 1)).await.unwrap_err();
    assert!(matches!(&error, InfluxError::DatabaseNotFound { database } if database == "missing"));
    assert!(!error.is_transient());
    assert!(error.to_string().contains("CREATE DATABASE"), "{error}");
    let error = client.positions("d", 0, T0, 1, None).await.unwrap_err();
    assert!(
        matches!(error, InfluxError::DatabaseNotFound { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn ensure_database_creates_it_and_ping_answers() {
    let influxd = server();
    let client = InfluxClient::new(InfluxConfig {
        url: influxd.url(),
        database: "fresh db".into(),
        ..InfluxConfig::default()
    })
    .unwrap();
    client.ping().await.unwrap();
    client.ensure_database().await.unwrap();
    client.ensure_database().await.expect("idempotent");
    assert_eq!(client.write(&fleet(2, 2)).await.unwrap().stored(), 8);
    assert_eq!(influxd.count("fresh db", "position", "lat").unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outage_is_transient_and_the_same_batch_succeeds_once_it_returns() {
    let mut influxd = server();
    let client = client(&influxd, |c| c.timeout_ms = 2000);
    influxd.stop().unwrap();

    let error = client.write(&fleet(1, 1)).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(matches!(
        client.ping().await,
        Err(InfluxError::Unavailable { .. })
    ));

    influxd.restart().unwrap();
    let report = client
        .write(&fleet(10, 10))
        .await
        .expect("stored once the server is back");
    assert_eq!(report.stored(), 200);
    assert_eq!(count(&influxd, "position", "lat"), 100);
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let client = InfluxClient::new(InfluxConfig {
        url: format!("http://127.0.0.1:{}", closed_port()),
        ..InfluxConfig::default()
    })
    .unwrap();
    let error = client.write(&fleet(1, 1)).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        client.ensure_database().await.is_err(),
        "unreachable is reported"
    );
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn gzip_stores_the_same_points() {
    let influxd = server();
    let client = client(&influxd, |c| c.gzip = true);
    let report = client.write(&fleet(4, 5)).await.unwrap();
    assert_eq!(report.stored(), 40);
    assert_eq!(count(&influxd, "position", "lat"), 20);
    let read = client
        .positions("350000000000003", T0, T0 + 60_000, 10, None)
        .await
        .unwrap();
    assert_eq!(
        read.iter().map(|r| r.fix).collect::<Vec<_>>(),
        (0..5).map(|i| Some(fix(i))).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn more_messages_than_batch_lines_are_sent_in_several_requests() {
    let influxd = server();
    let client = client(&influxd, |c| c.batch_lines = 100);
    let messages = fleet(105, 5); // 525 messages, 1,050 lines
    let report = client.write(&messages).await.unwrap();
    assert_eq!(report.messages, 525);
    assert_eq!(report.requests, 11, "100 lines a request, the last 50");
    assert_eq!(report.stored(), 1050);
    assert_eq!(count(&influxd, "position", "lat"), 525);
    assert_eq!(count(&influxd, "obd", "rpm"), 525);
}

#[tokio::test]
async fn the_reader_honours_range_limit_and_paging() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    let device = "350000000000000";
    client.write(&fleet(2, 50)).await.unwrap();

    // [T0 + 10 s, T0 + 20 s): the start is included, the end is not.
    let range = client
        .positions(device, T0 + 10_000, T0 + 20_000, 100, None)
        .await
        .unwrap();
    let times: Vec<i64> = range.iter().map(|r| r.time_ms).collect();
    assert_eq!(times, (10..20).map(|i| T0 + i * 1000).collect::<Vec<_>>());

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .positions(device, T0, T0 + 3_600_000, 20, after)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.time_ms);
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20, 10]);
    let all: Vec<i64> = pages.concat().iter().map(|r| r.time_ms).collect();
    assert_eq!(all, (0..50).map(|i| T0 + i * 1000).collect::<Vec<_>>());

    assert!(
        client
            .positions(device, T0, T0 + 1, 0, None)
            .await
            .unwrap()
            .is_empty()
    );
    let latest = client.latest_position(device).await.unwrap().unwrap();
    assert_eq!(latest.time_ms, T0 + 49_000);
    assert_eq!(latest.fix, Some(fix(49)));
    assert_eq!(client.latest_position("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn the_latest_position_of_every_device_in_one_query() {
    let influxd = server();
    let client = client(&influxd, |_| {});
    assert!(client.latest_positions().await.unwrap().is_empty());
    client.write(&fleet(3, 10)).await.unwrap();
    let mut latest = client.latest_positions().await.unwrap();
    latest.sort_by(|a, b| a.0.cmp(&b.0));
    let devices: Vec<&str> = latest.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        devices,
        ["350000000000000", "350000000000001", "350000000000002"]
    );
    for (_, record) in &latest {
        assert_eq!(record.time_ms, T0 + 9_000);
        assert_eq!(record.fix, Some(fix(9)));
    }
}
