//! Alerts replayed deterministically through the engine: each detector,
//! the lifecycle (open → acknowledged → closed), what old records may not
//! do, and snapshots.

use std::sync::Arc;

use drover_engine::AlertConfig;
use drover_engine::systems::alerts::{AlertAction, AlertOp, AlertState, AlertSummary, Severity};
use drover_engine::systems::geofences::{FenceSpec, Shape};
use drover_engine::systems::offline::OfflineRules;
use drover_engine::systems::overspeed::OverspeedRules;
use drover_engine::{Delta, Engine, EngineConfig, Executor, Input};
use drover_protocols::model::{DeviceId, DeviceMessage, Fix, Record, RecordKind, attr};

const T0: i64 = 1_764_000_000_000;
const DEVICE: &str = "356307042441013";

fn engine_with(executor: Executor, alerts: AlertConfig) -> Engine {
    Engine::new(EngineConfig {
        executor,
        alerts,
        ..EngineConfig::default()
    })
}

fn engine() -> Engine {
    engine_with(
        Executor::SingleThreaded,
        AlertConfig {
            overspeed: OverspeedRules {
                limit_kmh: 90.0,
                min_duration_ms: 15_000,
            },
            ..AlertConfig::default()
        },
    )
}

fn fix(time_ms: i64, speed_kmh: f64) -> Record {
    Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat: 54.68,
            lon: 25.28,
            speed_kmh,
            course_deg: 0.0,
            altitude_m: None,
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    }
}

fn input(record: Record) -> Input {
    Input::Record(Arc::new(DeviceMessage {
        device: DeviceId::new(DEVICE),
        protocol: "teltonika",
        record,
    }))
}

/// One tick at `now` over `records`: the alert changes it produced.
fn tick(engine: &mut Engine, now: i64, records: Vec<Record>) -> Vec<AlertSummary> {
    let mut inputs: Vec<Input> = records.into_iter().map(input).collect();
    let mut deltas = Vec::new();
    engine.tick(now, &mut inputs, &mut deltas);
    deltas
        .into_iter()
        .filter_map(|delta| match delta {
            Delta::Alert(alert) => Some(*alert),
            _ => None,
        })
        .collect()
}

/// Each record in its own tick, the clock on the device's time.
fn feed(engine: &mut Engine, records: Vec<Record>) -> Vec<AlertSummary> {
    records
        .into_iter()
        .flat_map(|record| {
            let now = record.time_ms;
            tick(engine, now, vec![record])
        })
        .collect()
}

fn with_alarm(mut record: Record, alarm: &str) -> Record {
    record.attributes.set(attr::ALARM, alarm);
    record
}

fn kinds(alerts: &[AlertSummary]) -> Vec<(&str, AlertState)> {
    alerts.iter().map(|a| (&*a.kind, a.state)).collect()
}

#[test]
fn overspeed_opens_only_after_the_minimum_duration_and_closes_below_the_limit() {
    let mut e = engine();
    // Ten seconds over the limit: too short.
    let short = feed(
        &mut e,
        vec![
            fix(T0, 100.0),
            fix(T0 + 10_000, 105.0),
            fix(T0 + 20_000, 80.0),
        ],
    );
    assert!(short.is_empty(), "{short:?}");
    // Twenty seconds over it: an alert opened at the first fast fix.
    let long = feed(
        &mut e,
        vec![
            fix(T0 + 30_000, 100.0),
            fix(T0 + 40_000, 120.0),
            fix(T0 + 50_000, 110.0),
            fix(T0 + 60_000, 50.0),
        ],
    );
    assert_eq!(
        kinds(&long),
        [
            ("overspeed", AlertState::Open),
            ("overspeed", AlertState::Closed)
        ]
    );
    let (opened, closed) = (&long[0], &long[1]);
    assert_eq!(opened.opened_ms, T0 + 30_000);
    assert_eq!(opened.id, format!("{DEVICE}-overspeed-{}", T0 + 30_000));
    assert_eq!(opened.severity, Severity::Warning);
    assert_eq!(opened.details["limit_kmh"], 90.0);
    assert_eq!(closed.id, opened.id);
    assert_eq!(closed.closed_ms, Some(T0 + 60_000));
}

#[test]
fn a_silent_device_goes_offline_by_the_engine_clock_and_comes_back() {
    let mut e = engine_with(
        Executor::SingleThreaded,
        AlertConfig {
            offline: OfflineRules { after_ms: 300_000 },
            ..AlertConfig::default()
        },
    );
    assert!(tick(&mut e, T0, vec![fix(T0, 0.0)]).is_empty());
    assert!(tick(&mut e, T0 + 299_000, vec![]).is_empty());
    let offline = tick(&mut e, T0 + 301_000, vec![]);
    assert_eq!(kinds(&offline), [("offline", AlertState::Open)]);
    assert_eq!(
        offline[0].opened_ms,
        T0 + 300_000,
        "when the silence reached the limit"
    );
    assert!(tick(&mut e, T0 + 400_000, vec![]).is_empty(), "raised once");
    let back = tick(&mut e, T0 + 500_000, vec![fix(T0 + 500_000, 0.0)]);
    assert_eq!(kinds(&back), [("offline", AlertState::Closed)]);
    assert_eq!(back[0].closed_ms, Some(T0 + 500_000));
}

#[test]
fn fuel_dropping_while_parked_raises_fuel_drop_and_a_refuel_does_not() {
    let mut e = engine();
    let level = |time_ms, speed, pct: f64| {
        let mut record = fix(time_ms, speed);
        record.attributes.set(attr::FUEL_LEVEL, pct);
        record
    };
    let minute = 60_000;
    let alerts = feed(
        &mut e,
        vec![
            // Driving burns fuel: no alert.
            level(T0, 60.0, 80.0),
            level(T0 + minute, 60.0, 70.0),
            // Parked: a refuel, sensor noise, then a theft.
            level(T0 + 2 * minute, 0.0, 69.0),
            level(T0 + 3 * minute, 0.0, 95.0),
            level(T0 + 4 * minute, 0.0, 93.5),
            level(T0 + 5 * minute, 0.0, 71.0),
            level(T0 + 6 * minute, 0.0, 70.5),
        ],
    );
    assert_eq!(kinds(&alerts), [("fuel_drop", AlertState::Open)]);
    assert_eq!(alerts[0].opened_ms, T0 + 5 * minute);
    assert_eq!(alerts[0].details["from_pct"], 95.0);
    assert_eq!(alerts[0].details["to_pct"], 71.0);
    assert_eq!(alerts[0].severity, Severity::Critical);
}

#[test]
fn a_resent_buffer_of_old_records_raises_no_live_alert() {
    let mut e = engine();
    let now = T0 + 3_600_000;
    let mut archived = with_alarm(fix(now - 1_000, 0.0), "sos");
    archived.archived = true;
    // An hour old, not flagged: older than the live window.
    let old: Vec<Record> = (0..5)
        .map(|i| with_alarm(fix(T0 + i * 10_000, 130.0), "sos"))
        .collect();
    let mut records = vec![archived];
    records.extend(old);
    assert!(tick(&mut e, now, records).is_empty());
    // A live SOS still raises one.
    let live = tick(
        &mut e,
        now + 1_000,
        vec![with_alarm(fix(now + 500, 0.0), "sos")],
    );
    assert_eq!(kinds(&live), [("sos", AlertState::Open)]);
    assert_eq!(live[0].severity, Severity::Critical);
}

#[test]
fn a_new_dtc_raises_one_alert_per_code() {
    let mut e = engine();
    let codes = |time_ms, codes: &str| {
        let mut record = fix(time_ms, 0.0);
        record.attributes.set(attr::DTCS, codes);
        record
    };
    let alerts = feed(
        &mut e,
        vec![
            codes(T0, "P0300"),
            codes(T0 + 10_000, "P0300"),
            codes(T0 + 20_000, "P0300,P0171"),
            codes(T0 + 30_000, "P0171,P0300"),
        ],
    );
    let subjects: Vec<_> = alerts.iter().map(|a| a.subject.as_deref()).collect();
    assert_eq!(subjects, [Some("P0300"), Some("P0171")]);
    assert!(
        alerts
            .iter()
            .all(|a| a.kind == "dtc" && a.state == AlertState::Open)
    );
}

#[test]
fn an_alert_is_acknowledged_then_closed_and_repeats_while_open_are_one() {
    let mut e = engine();
    let opened = feed(
        &mut e,
        vec![
            with_alarm(fix(T0, 0.0), "sos"),
            with_alarm(fix(T0 + 1_000, 0.0), "sos,vibration"),
        ],
    );
    assert_eq!(
        kinds(&opened),
        [("sos", AlertState::Open), ("vibration", AlertState::Open)]
    );
    let sos = opened[0].id.clone();

    let act = |e: &mut Engine, ticket, id: &str, op, at| {
        e.act_on_alert(AlertAction {
            ticket,
            id: id.to_owned(),
            op,
            time_ms: at,
        });
        let changed = tick(e, at, vec![]);
        let outcomes = e.take_alert_outcomes();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].ticket, ticket);
        (changed, outcomes[0].alert.clone())
    };
    let (changed, now) = act(&mut e, 1, &sos, AlertOp::Acknowledge, T0 + 5_000);
    let now = now.expect("open");
    assert_eq!(
        (now.state, now.acknowledged_ms),
        (AlertState::Acknowledged, Some(T0 + 5_000))
    );
    assert_eq!(changed, std::slice::from_ref(&now));
    let (changed, again) = act(&mut e, 2, &sos, AlertOp::Acknowledge, T0 + 6_000);
    assert!(changed.is_empty(), "acknowledging twice changes nothing");
    assert_eq!(again, Some(now));
    let (changed, closed) = act(&mut e, 3, &sos, AlertOp::Close, T0 + 7_000);
    let closed = closed.expect("was open");
    assert_eq!(
        (closed.state, closed.closed_ms),
        (AlertState::Closed, Some(T0 + 7_000))
    );
    assert_eq!(closed.acknowledged_ms, Some(T0 + 5_000));
    assert_eq!(changed, [closed]);
    let (_, gone) = act(&mut e, 4, &sos, AlertOp::Close, T0 + 8_000);
    assert_eq!(gone, None, "closed alerts take no action");
    let (_, unknown) = act(&mut e, 5, "nope", AlertOp::Acknowledge, T0 + 8_000);
    assert_eq!(unknown, None);

    // Closed, an SOS raises a new alert.
    let again = feed(&mut e, vec![with_alarm(fix(T0 + 9_000, 0.0), "sos")]);
    assert_eq!(kinds(&again), [("sos", AlertState::Open)]);
    assert_ne!(again[0].id, sos);
}

#[test]
fn a_condition_closed_by_an_operator_stays_quiet_until_it_ends() {
    let mut e = engine();
    let opened = feed(
        &mut e,
        (0..3).map(|i| fix(T0 + i * 10_000, 120.0)).collect(),
    );
    assert_eq!(kinds(&opened), [("overspeed", AlertState::Open)]);
    e.act_on_alert(AlertAction {
        ticket: 1,
        id: opened[0].id.clone(),
        op: AlertOp::Close,
        time_ms: T0 + 25_000,
    });
    assert_eq!(
        kinds(&tick(&mut e, T0 + 25_000, vec![])),
        [("overspeed", AlertState::Closed)]
    );
    let still = feed(
        &mut e,
        (3..8).map(|i| fix(T0 + i * 10_000, 120.0)).collect(),
    );
    assert!(still.is_empty(), "silenced while it lasts: {still:?}");
    let next = feed(
        &mut e,
        vec![
            fix(T0 + 80_000, 60.0),
            fix(T0 + 90_000, 120.0),
            fix(T0 + 100_000, 120.0),
            fix(T0 + 110_000, 120.0),
        ],
    );
    assert_eq!(kinds(&next), [("overspeed", AlertState::Open)]);
}

#[test]
fn hard_braking_between_close_fixes_raises_harsh_braking() {
    let mut e = engine();
    let alerts = feed(
        &mut e,
        vec![
            fix(T0, 60.0),
            fix(T0 + 1_000, 58.0),
            // 58 → 30 km/h in a second: 7.8 m/s².
            fix(T0 + 2_000, 30.0),
            // The same drop over 30 s is ordinary braking.
            fix(T0 + 32_000, 2.0),
        ],
    );
    assert_eq!(kinds(&alerts), [("harsh_braking", AlertState::Open)]);
    assert_eq!(alerts[0].opened_ms, T0 + 2_000);
}

#[test]
fn open_alerts_survive_a_snapshot_and_repeats_stay_one() {
    let mut e = engine();
    let opened = feed(&mut e, vec![with_alarm(fix(T0, 0.0), "powerCut")]);
    assert_eq!(kinds(&opened), [("power_cut", AlertState::Open)]);
    let snapshot = e.capture(T0 + 1_000);

    let mut restored = engine();
    restored.restore(snapshot).expect("restored");
    assert_eq!(restored.open_alerts(), opened);
    let repeat = feed(
        &mut restored,
        vec![with_alarm(fix(T0 + 2_000, 0.0), "powerCut")],
    );
    assert!(repeat.is_empty(), "{repeat:?}");
    restored.act_on_alert(AlertAction {
        ticket: 1,
        id: opened[0].id.clone(),
        op: AlertOp::Close,
        time_ms: T0 + 3_000,
    });
    assert_eq!(
        kinds(&tick(&mut restored, T0 + 3_000, vec![])),
        [("power_cut", AlertState::Closed)]
    );
}

#[test]
fn a_condition_restored_from_a_snapshot_still_closes_when_it_ends() {
    let mut e = engine();
    let opened = feed(
        &mut e,
        (0..3).map(|i| fix(T0 + i * 10_000, 120.0)).collect(),
    );
    assert_eq!(kinds(&opened), [("overspeed", AlertState::Open)]);
    let mut restored = engine();
    restored.restore(e.capture(T0 + 25_000)).expect("restored");
    let closed = feed(&mut restored, vec![fix(T0 + 30_000, 50.0)]);
    assert_eq!(kinds(&closed), [("overspeed", AlertState::Closed)]);
    assert_eq!(closed[0].id, opened[0].id);
}

fn depot() -> FenceSpec {
    FenceSpec {
        id: "depot".to_owned(),
        name: "Depot".to_owned(),
        shape: Shape::Circle {
            lat: 54.70,
            lon: 25.28,
            radius_m: 1_000.0,
        },
        speed_limit_kmh: Some(30.0),
    }
}

fn at(time_ms: i64, lat: f64, speed_kmh: f64) -> Record {
    let mut record = fix(time_ms, speed_kmh);
    if let Some(fix) = record.fix.as_mut() {
        fix.lat = lat;
    }
    record
}

#[test]
fn entering_opens_an_alert_for_the_stay_and_leaving_closes_it_with_an_exit_notice() {
    let mut e = engine();
    e.set_geofences(vec![depot()]);
    // Driving north through the depot at 20 km/h (under its limit).
    let alerts = feed(
        &mut e,
        (0..18)
            .map(|i| at(T0 + i * 10_000, 54.68 + i as f64 * 0.002, 20.0))
            .collect(),
    );
    let seen: Vec<_> = alerts
        .iter()
        .map(|a| (&*a.kind, a.subject.as_deref(), a.state))
        .collect();
    assert_eq!(
        seen,
        [
            ("geofence_enter", Some("depot"), AlertState::Open),
            ("geofence_enter", Some("depot"), AlertState::Closed),
            ("geofence_exit", Some("depot"), AlertState::Open),
            ("geofence_exit", Some("depot"), AlertState::Closed),
        ]
    );
    assert_eq!(alerts[0].details["name"], "Depot");
    // The edge is at 54.70 ± 0.009°: in at 54.692, out at 54.710.
    assert_eq!(alerts[0].opened_ms, T0 + 60_000);
    assert_eq!(alerts[1].closed_ms, Some(T0 + 150_000));
    assert_eq!(
        (alerts[2].opened_ms, alerts[3].closed_ms),
        (T0 + 150_000, Some(T0 + 150_000))
    );
    assert!(e.open_alerts().is_empty(), "nothing left to handle");
}

#[test]
fn a_geofence_speed_limit_applies_inside_it() {
    let mut e = engine();
    e.set_geofences(vec![depot()]);
    // 50 km/h is under the fleet's 90 but over the depot's 30.
    let inside = feed(
        &mut e,
        (0..3).map(|i| at(T0 + i * 10_000, 54.70, 50.0)).collect(),
    );
    let overspeed: Vec<_> = inside.iter().filter(|a| a.kind == "overspeed").collect();
    assert_eq!(overspeed.len(), 1, "{inside:?}");
    assert_eq!(overspeed[0].details["limit_kmh"], 30.0);
    assert_eq!(overspeed[0].details["geofence"], "depot");
    // Out of the depot, 50 km/h is within the fleet's limit: it closes.
    let out = feed(&mut e, vec![at(T0 + 40_000, 54.80, 50.0)]);
    let kinds: Vec<_> = out.iter().map(|a| (&*a.kind, a.state)).collect();
    assert!(
        kinds.contains(&("overspeed", AlertState::Closed)),
        "{kinds:?}"
    );
}

#[test]
fn a_device_limit_replaces_the_fleet_limit_for_that_device() {
    let mut e = engine();
    e.set_speed_limits(vec![(DeviceId::new(DEVICE), 60.0)]);
    // 70 km/h is under the fleet's 90 but over the truck's own 60.
    let alerts = feed(
        &mut e,
        (0..3).map(|i| at(T0 + i * 10_000, 54.80, 70.0)).collect(),
    );
    let overspeed: Vec<_> = alerts.iter().filter(|a| a.kind == "overspeed").collect();
    assert_eq!(overspeed.len(), 1, "{alerts:?}");
    assert_eq!(overspeed[0].details["limit_kmh"], 60.0);
    // A higher limit of its own lets it go faster than the fleet.
    e.set_speed_limits(vec![(DeviceId::new(DEVICE), 120.0)]);
    let faster = feed(
        &mut e,
        (3..6).map(|i| at(T0 + i * 10_000, 54.80, 100.0)).collect(),
    );
    let kinds: Vec<_> = faster.iter().map(|a| (&*a.kind, a.state)).collect();
    assert_eq!(kinds, vec![("overspeed", AlertState::Closed)]);
}

#[test]
fn a_restart_inside_a_geofence_does_not_enter_it_again() {
    let mut e = engine();
    e.set_geofences(vec![depot()]);
    let entered = feed(&mut e, vec![at(T0, 54.70, 0.0)]);
    assert_eq!(entered.len(), 1);
    let mut restored = engine();
    restored.restore(e.capture(T0 + 1_000)).expect("restored");
    restored.set_geofences(vec![depot()]);
    assert!(feed(&mut restored, vec![at(T0 + 10_000, 54.70, 0.0)]).is_empty());
}

#[test]
fn both_executors_raise_the_same_alerts() {
    let records = |_: ()| -> Vec<Record> {
        let mut records: Vec<Record> = (0..6)
            .map(|i| fix(T0 + i * 10_000, 100.0 + i as f64))
            .collect();
        records.push(with_alarm(fix(T0 + 70_000, 0.0), "sos,lowBattery"));
        records
    };
    let config = AlertConfig {
        overspeed: OverspeedRules {
            limit_kmh: 90.0,
            min_duration_ms: 15_000,
        },
        ..AlertConfig::default()
    };
    let single = feed(
        &mut engine_with(Executor::SingleThreaded, config),
        records(()),
    );
    let multi = feed(
        &mut engine_with(Executor::MultiThreaded, config),
        records(()),
    );
    assert_eq!(
        kinds(&single),
        [
            ("overspeed", AlertState::Open),
            // One tick, one time: by kind.
            ("low_battery", AlertState::Open),
            ("overspeed", AlertState::Closed),
            ("sos", AlertState::Open),
        ]
    );
    assert_eq!(single, multi);
}

#[test]
fn the_node_raises_and_clears_its_own_conditions_across_a_snapshot() {
    use drover_engine::systems::alerts::{Details, SYSTEM_DEVICE, SystemCondition};
    let condition = |active, time_ms| SystemCondition {
        kind: "system_disk_low",
        subject: None,
        active,
        severity: Severity::Critical,
        time_ms,
        details: Details::new(),
    };
    let mut e = engine();
    e.system_condition(condition(true, T0));
    let raised = tick(&mut e, T0, vec![]);
    assert_eq!(kinds(&raised), [("system_disk_low", AlertState::Open)]);
    assert_eq!(raised[0].device.as_str(), SYSTEM_DEVICE);
    assert_eq!(e.device_count(), 0, "the node is not a device");

    let mut restored = engine();
    restored.restore(e.capture(T0 + 1_000)).expect("restored");
    restored.system_condition(condition(true, T0 + 2_000));
    assert!(
        tick(&mut restored, T0 + 2_000, vec![]).is_empty(),
        "still open: raised once"
    );
    restored.system_condition(condition(false, T0 + 3_000));
    let cleared = tick(&mut restored, T0 + 3_000, vec![]);
    assert_eq!(kinds(&cleared), [("system_disk_low", AlertState::Closed)]);
}
