//! Behaviour of one engine tick, driven through the public API.

use std::sync::Arc;

use drover_engine::bevy_ecs::prelude::*;
use drover_engine::components::CustomAttributes;
use drover_engine::{Delta, Engine, EngineConfig, Executor, Input, TickSet};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record, RecordKind, attr};

const T0: i64 = 1_764_000_000_000;

fn record(device: &str, time_ms: i64, lat: f64, lon: f64, speed: f64) -> Input {
    let mut record = Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat,
            lon,
            speed_kmh: speed,
            course_deg: 90.0,
            altitude_m: Some(30.0),
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    };
    record.attributes.set(attr::IGNITION, speed > 0.0);
    record.attributes.set(attr::RPM, 800.0 + speed * 30.0);
    record.attributes.set("io999", 7i64);
    Input::Record(Arc::new(DeviceMessage {
        device: DeviceId::new(device),
        protocol: "teltonika",
        record,
    }))
}

fn engine(executor: Executor) -> Engine {
    Engine::new(EngineConfig {
        executor,
        ..EngineConfig::default()
    })
}

fn tick(engine: &mut Engine, now: i64, inputs: Vec<Input>) -> Vec<Delta> {
    let mut inputs = inputs;
    let mut deltas = Vec::new();
    engine.tick(now, &mut inputs, &mut deltas);
    deltas
}

fn fleet_batch(devices: usize, records_each: usize) -> Vec<Input> {
    let mut batch = Vec::new();
    for r in 0..records_each {
        for d in 0..devices {
            let lat = 52.5 + d as f64 * 0.001 + r as f64 * 0.0001;
            batch.push(record(
                &format!("35000000000{d:04}"),
                T0 + r as i64 * 1000,
                lat,
                13.4,
                40.0,
            ));
        }
    }
    batch
}

#[test]
fn same_inputs_give_the_same_world_on_both_executors() {
    let mut single = engine(Executor::SingleThreaded);
    let mut multi = engine(Executor::MultiThreaded);
    let mut again = engine(Executor::SingleThreaded);
    for e in [&mut single, &mut multi, &mut again] {
        tick(e, T0, fleet_batch(50, 3));
        tick(e, T0 + 10, fleet_batch(20, 2));
    }
    let a = single.snapshot();
    assert_eq!(a.len(), 50);
    assert_eq!(a, multi.snapshot());
    assert_eq!(a, again.snapshot());
}

#[test]
fn a_record_updates_live_state_and_emits_once() {
    let mut e = engine(Executor::SingleThreaded);
    let deltas = tick(&mut e, T0, vec![record("1", T0, 52.5, 13.4, 50.0)]);
    let state = e.device(&DeviceId::new("1")).expect("device exists");
    assert_eq!(state.last_fix.map(|f| f.fix.lat), Some(52.5));
    assert_eq!(state.ignition, Some(true));
    assert_eq!(state.obd.rpm, Some(2300.0));
    assert!(state.kinematics.moving);
    assert!(state.presence.online);
    assert_eq!(
        state.attributes.0.get("io999").and_then(|v| v.as_f64()),
        Some(7.0)
    );
    // Moving at 50 km/h, it also starts a trip.
    assert!(
        matches!(
            &deltas[..],
            [Delta::Trip(trip), Delta::Presence { online: true, .. }, Delta::State(_)] if trip.open()
        ),
        "{deltas:?}"
    );

    // The same report again changes only when the device was last heard from.
    let deltas = tick(&mut e, T0 + 10, vec![record("1", T0, 52.5, 13.4, 50.0)]);
    let [Delta::State(again)] = &deltas[..] else {
        panic!("one state delta expected: {deltas:?}");
    };
    assert_eq!(again.last_seen_ms, T0 + 10);
    assert_eq!(again.last_fix, state.last_fix);
    // Within the same clock millisecond it changes nothing: nothing is emitted.
    let deltas = tick(&mut e, T0 + 10, vec![record("1", T0, 52.5, 13.4, 50.0)]);
    assert!(deltas.is_empty(), "{deltas:?}");
}

#[test]
fn archived_and_older_records_do_not_move_live_state_back() {
    let mut e = engine(Executor::SingleThreaded);
    tick(&mut e, T0, vec![record("1", T0 + 60_000, 52.6, 13.4, 30.0)]);
    let mut old = record("1", T0, 52.0, 13.0, 0.0);
    tick(&mut e, T0 + 10, vec![old.clone()]);
    if let Input::Record(m) = &mut old {
        let m = Arc::make_mut(m);
        m.record.time_ms = T0 + 120_000;
        m.record.archived = true;
    }
    tick(&mut e, T0 + 20, vec![old]);
    let state = e.device(&DeviceId::new("1")).expect("device exists");
    assert_eq!(
        state.last_fix.map(|f| (f.time_ms, f.fix.lat)),
        Some((T0 + 60_000, 52.6))
    );
    assert_eq!(state.ignition, Some(true));
}

#[test]
fn distance_accumulates_along_valid_fixes() {
    let mut e = engine(Executor::SingleThreaded);
    let inputs = (0..11)
        .map(|i| record("1", T0 + i * 10_000, 52.5 + i as f64 * 0.001, 13.4, 40.0))
        .collect();
    tick(&mut e, T0, inputs);
    let state = e.device(&DeviceId::new("1")).expect("device exists");
    // 10 steps of 0.001° latitude ≈ 1,112 m.
    assert!(
        (state.kinematics.distance_m - 1112.0).abs() < 5.0,
        "{}",
        state.kinematics.distance_m
    );
}

#[test]
fn presence_follows_connections_and_times_out_without_one() {
    let mut e = engine(Executor::SingleThreaded);
    let id = DeviceId::new("1");
    let connect = Input::Connected {
        device: id.clone(),
        protocol: "gt06",
    };
    let deltas = tick(&mut e, T0, vec![connect]);
    assert!(matches!(&deltas[0], Delta::Presence { online: true, .. }));
    let deltas = tick(
        &mut e,
        T0 + 10,
        vec![Input::Disconnected { device: id.clone() }],
    );
    assert!(matches!(&deltas[0], Delta::Presence { online: false, .. }));

    // A report without a connection (e.g. over UDP) makes it online until the
    // presence timeout passes.
    tick(&mut e, T0 + 20, vec![record("1", T0, 52.5, 13.4, 0.0)]);
    assert!(e.device(&id).is_some_and(|s| s.presence.online));
    let deltas = tick(&mut e, T0 + 20 + 600_001, vec![]);
    assert!(
        matches!(&deltas[..], [Delta::Presence { online: false, .. }, ..]),
        "{deltas:?}"
    );
}

#[test]
fn each_device_sees_its_inputs_in_arrival_order_within_a_tick() {
    // Ingest visits inputs by entity, not by arrival; a device's own inputs
    // must still apply in the order they came, whatever the others do.
    let mut e = engine(Executor::SingleThreaded);
    let (a, b) = (DeviceId::new("a"), DeviceId::new("b"));
    tick(&mut e, T0, vec![record("b", T0, 1.0, 1.0, 0.0)]);
    let connect = |device: &DeviceId| Input::Connected {
        device: device.clone(),
        protocol: "gt06",
    };
    let disconnect = |device: &DeviceId| Input::Disconnected {
        device: device.clone(),
    };
    tick(
        &mut e,
        T0 + 10,
        vec![
            connect(&a),
            record("b", T0 + 2_000, 2.0, 2.0, 10.0),
            record("a", T0 + 1_000, 52.0, 13.0, 10.0),
            connect(&b),
            record("a", T0 + 2_000, 52.1, 13.1, 20.0),
            disconnect(&a),
            record("b", T0 + 3_000, 3.0, 3.0, 30.0),
            disconnect(&b),
            connect(&b),
            Input::Disconnected {
                device: DeviceId::new("never-seen"),
            },
        ],
    );
    let a = e.device(&a).expect("a was spawned by its connection");
    assert_eq!(a.last_fix.map(|f| f.time_ms), Some(T0 + 2_000));
    assert_eq!(a.kinematics.speed_kmh, 20.0);
    assert!(!a.presence.online, "{:?}", a.presence);
    let b = e.device(&b).expect("b reported before");
    assert_eq!(b.last_fix.map(|f| f.fix.lat), Some(3.0));
    assert_eq!((b.presence.online, b.presence.connections), (true, 1));
    assert_eq!(e.device_count(), 2);
}

#[derive(Resource, Default)]
struct Seen(usize);

#[test]
fn user_systems_in_analyze_see_the_tick_and_write_attributes() {
    let mut e = engine(Executor::MultiThreaded);
    e.world_mut().insert_resource(Seen::default());
    e.add_systems(
        TickSet::Analyze,
        |mut seen: ResMut<Seen>, mut q: Query<&mut CustomAttributes>| {
            for mut attrs in &mut q {
                seen.0 += 1;
                attrs.0.set("analyzed", true);
            }
        },
    );
    tick(&mut e, T0, fleet_batch(3, 1));
    assert_eq!(e.world().resource::<Seen>().0, 3);
    let s = e
        .device(&DeviceId::new("350000000000001"))
        .expect("device exists");
    assert!(s.attributes.0.get("analyzed").is_some());
}

#[test]
fn a_restored_snapshot_gives_back_the_same_live_state_offline() {
    let mut e = engine(Executor::SingleThreaded);
    let connect = Input::Connected {
        device: DeviceId::new("1"),
        protocol: "teltonika",
    };
    let track = (0..5).map(|i| record("1", T0 + i * 10_000, 52.5 + i as f64 * 0.001, 13.4, 40.0));
    tick(&mut e, T0, std::iter::once(connect).chain(track).collect());
    tick(&mut e, T0 + 10, fleet_batch(20, 2));
    e.set_position(1234);

    let bytes = e.capture(T0 + 20).encode();
    let snapshot = drover_engine::Snapshot::decode(&bytes).expect("a snapshot decodes");
    let mut restored = engine(Executor::SingleThreaded);
    restored
        .restore(snapshot)
        .expect("an empty engine restores");
    assert_eq!(restored.position(), 1234);
    let (before, after) = (e.snapshot(), restored.snapshot());
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.device, b.protocol), (&a.device, a.protocol));
        assert_eq!(b.last_fix, a.last_fix);
        assert_eq!(b.kinematics, a.kinematics);
        assert_eq!((b.ignition, b.power, b.obd), (a.ignition, a.power, a.obd));
        assert_eq!(b.attributes, a.attributes);
        assert_eq!(b.last_seen_ms, a.last_seen_ms);
        assert_eq!((a.presence.online, a.presence.connections), (false, 0));
    }

    // The odometer goes on from where it was, not from zero.
    let distance = after[0].kinematics.distance_m;
    tick(
        &mut restored,
        T0 + 30,
        vec![record("1", T0 + 50_000, 52.505, 13.4, 40.0)],
    );
    let moved = restored.device(&DeviceId::new("1")).expect("restored");
    assert!(
        (moved.kinematics.distance_m - distance - 111.2).abs() < 1.0,
        "{distance} → {}",
        moved.kinematics.distance_m
    );
    assert_eq!(
        restored.restore(e.capture(T0)),
        Err(drover_engine::RestoreError::NotEmpty(21))
    );
}

#[test]
fn a_snapshot_of_a_newer_format_is_refused() {
    let mut snapshot = engine(Executor::SingleThreaded).capture(T0);
    snapshot.format = drover_engine::snapshot::FORMAT + 1;
    let error = drover_engine::Snapshot::decode(&snapshot.encode()).unwrap_err();
    assert!(error.to_string().contains("newer"), "{error}");
    assert!(drover_engine::Snapshot::decode(b"{\"format\":1").is_err());
}

#[test]
fn devices_silent_past_forget_after_leave_the_live_world() {
    let mut e = Engine::new(EngineConfig {
        forget_after_ms: 3_600_000,
        ..EngineConfig::default()
    });
    tick(&mut e, T0, vec![record("old", T0, 1.0, 1.0, 0.0)]);
    tick(
        &mut e,
        T0 + 3_000_000,
        vec![record("recent", T0, 1.0, 1.0, 0.0)],
    );
    // The sweep runs hourly; "old" was last seen more than an hour before it.
    let deltas = tick(&mut e, T0 + 3_600_000 + 1, vec![]);
    let old = DeviceId::new("old");
    let about_old: Vec<&Delta> = deltas.iter().filter(|d| d.device() == Some(&old)).collect();
    assert_eq!(
        about_old,
        [&Delta::Removed {
            device: old.clone()
        }],
        "the read model learns of it, and no state of it follows"
    );
    assert!(e.device(&DeviceId::new("old")).is_none());
    assert!(e.device(&DeviceId::new("recent")).is_some());
    assert_eq!(e.device_count(), 1);
    // A forgotten device that reports again comes back.
    tick(
        &mut e,
        T0 + 3_700_000,
        vec![record("old", T0 + 3_700_000, 2.0, 2.0, 0.0)],
    );
    assert_eq!(e.device_count(), 2);
}

#[test]
fn a_replayed_record_is_seen_at_its_own_time_and_online_only_if_recent() {
    let mut e = engine(Executor::SingleThreaded);
    let Input::Record(old) = record("1", T0 - 3_600_000, 1.0, 1.0, 0.0) else {
        unreachable!("record() builds records")
    };
    tick(&mut e, T0, vec![Input::Replayed(old)]);
    let state = e.device(&DeviceId::new("1")).expect("spawned");
    assert_eq!(state.last_seen_ms, T0 - 3_600_000);
    assert!(!state.presence.online, "an hour-old record is not presence");
    let Input::Record(recent) = record("1", T0 - 1_000, 1.0, 1.0, 0.0) else {
        unreachable!("record() builds records")
    };
    tick(&mut e, T0 + 10, vec![Input::Replayed(recent)]);
    assert!(
        e.device(&DeviceId::new("1"))
            .is_some_and(|s| s.presence.online)
    );
}

#[test]
fn a_daily_job_fires_by_the_engine_clock_and_a_restart_fires_a_missed_day_once() {
    let daily = || {
        drover_engine::systems::jobs::DailyJob::new(
            "daily_summary",
            jiff::civil::Time::constant(0, 5, 0, 0),
            jiff::tz::TimeZone::UTC,
        )
    };
    let due = |deltas: Vec<Delta>| -> Vec<String> {
        deltas
            .into_iter()
            .filter_map(|d| match d {
                Delta::JobDue(job) => Some(job.date),
                _ => None,
            })
            .collect()
    };
    const DAY: i64 = 86_400_000;
    // T0 is 2025-11-24T16:00Z.
    let mut e = engine(Executor::SingleThreaded);
    e.add_daily_job(daily());
    assert!(due(tick(&mut e, T0, vec![])).is_empty());
    let midnight = T0 + 8 * 3_600_000;
    assert!(due(tick(&mut e, midnight + 4 * 60_000, vec![])).is_empty());
    assert_eq!(
        due(tick(&mut e, midnight + 5 * 60_000, vec![])),
        ["2025-11-25"]
    );
    assert!(due(tick(&mut e, midnight + 3_600_000, vec![])).is_empty());

    // Down over the next midnight: the restarted engine fires it at once.
    let snapshot = e.capture(midnight + 3_600_000);
    let mut restarted = engine(Executor::SingleThreaded);
    restarted.add_daily_job(daily());
    restarted.restore(snapshot).expect("restore");
    let later = midnight + DAY + 7_200_000;
    assert_eq!(due(tick(&mut restarted, later, vec![])), ["2025-11-26"]);
    assert!(due(tick(&mut restarted, later + 1_000, vec![])).is_empty());
}

#[test]
fn a_restore_announces_nothing_but_later_changes_are_emitted() {
    let mut e = engine(Executor::SingleThreaded);
    tick(
        &mut e,
        T0,
        vec![
            record("a", T0, 52.52, 13.40, 30.0),
            record("b", T0, 52.53, 13.41, 0.0),
        ],
    );
    let mut restored = engine(Executor::SingleThreaded);
    restored.restore(e.capture(T0)).expect("restore");
    assert_eq!(
        tick(&mut restored, T0 + 1_000, vec![]),
        vec![],
        "the restored world is no news"
    );
    let deltas = tick(
        &mut restored,
        T0 + 2_000,
        vec![record("a", T0 + 2_000, 52.521, 13.40, 30.0)],
    );
    let about: Vec<&str> = deltas
        .iter()
        .filter_map(|d| d.device().map(|id| id.as_str()))
        .collect();
    assert!(
        !about.is_empty() && about.iter().all(|id| *id == "a"),
        "{deltas:?}"
    );
}
