//! Runs a fleet of virtual trackers against a server and assembles the
//! [`Report`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::config::SimConfig;
use crate::latency::Ledger;
use crate::link::Protocol;
use crate::progress::Progress;
use crate::record_log::{self, DeviceLog};
use crate::report::{Devices, Machine, Rates, Report, Sample};
use crate::stats::{Stats, get};
use crate::{SimError, mqtt, tracker};

/// How often the end of the MQTT grace period checks for stragglers.
const GRACE_POLL: Duration = Duration::from_millis(50);
/// Interval of the report's timeline.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What every tracker task of a run shares.
#[derive(Debug)]
pub struct Fleet {
    pub config: SimConfig,
    pub stats: Stats,
    /// Present when MQTT is watched.
    pub ledger: Option<Arc<Ledger>>,
    pub start: Instant,
    /// When trackers stop sending and drain.
    pub deadline: Instant,
    /// The vehicles' clocks at the start, whole seconds (GT06 times are).
    pub start_ms: i64,
}

impl Fleet {
    /// When device `index` connects: the fleet is spread evenly over the
    /// ramp (a ramp longer than the run leaves the last devices out).
    pub fn ramp_slot(&self, index: u32) -> Instant {
        let share = f64::from(index) / f64::from(self.config.devices.max(1));
        (self.start + self.config.ramp.mul_f64(share)).min(self.deadline)
    }
}

/// Runs the simulation described by `config` to its end and reports.
///
/// Connects the MQTT subscription first (when configured) so that no
/// position can be published before it listens; a broker that cannot be
/// reached is an error, a server that cannot be reached is a result.
pub async fn run(config: SimConfig) -> Result<Report, SimError> {
    config.validate()?;
    let ledger = config.mqtt.as_ref().map(|_| Arc::new(Ledger::default()));
    let watch = match (&config.mqtt, &ledger) {
        (Some(url), Some(ledger)) => {
            Some(mqtt::watch(url, &config.topic_prefix, ledger.clone()).await?)
        }
        _ => None,
    };
    let started_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let start = Instant::now();
    let fleet = Arc::new(Fleet {
        deadline: start + config.duration,
        start_ms: whole_seconds_now_ms(),
        config,
        stats: Stats::default(),
        ledger,
        start,
    });
    let progress = Progress::start(fleet.clone());
    let (stop_sampling, stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample(fleet.clone(), stopped));
    let logs = run_trackers(&fleet).await;
    let duration_s = start.elapsed().as_secs_f64();
    progress.finish().await;
    if let (Some(watch), Some(ledger)) = (watch, &fleet.ledger) {
        wait_for_stragglers(ledger, fleet.config.mqtt_grace).await;
        watch.stop().await;
    }
    let _ = stop_sampling.send(());
    let timeline = sampler.await.unwrap_or_default();
    let report = assemble(&fleet, started_at, duration_s, timeline);
    if let Some(path) = &fleet.config.record_log {
        record_log::write(path, &logs)?;
    }
    if let Some(path) = &fleet.config.report {
        report.write_json(path)?;
    }
    Ok(report)
}

/// One task per device; returns their logs (empty unless logging).
async fn run_trackers(fleet: &Arc<Fleet>) -> Vec<DeviceLog> {
    let mut tasks = JoinSet::new();
    for index in 0..fleet.config.devices {
        tasks.spawn(tracker::run(fleet.clone(), index));
    }
    let logging = fleet.config.record_log.is_some();
    let mut logs = Vec::with_capacity(if logging {
        fleet.config.devices as usize
    } else {
        0
    });
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(log) if logging => logs.push(log),
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "a tracker task failed");
                fleet.stats.error("task_failed");
            }
        }
    }
    logs.sort_by_key(|log| log.imei);
    logs
}

/// Samples the fleet's counters every [`SAMPLE_EVERY`] until told to stop,
/// then once more for the last partial interval.
async fn sample(fleet: Arc<Fleet>, mut stop: tokio::sync::oneshot::Receiver<()>) -> Vec<Sample> {
    let mut timeline = Vec::new();
    let mut ticker = tokio::time::interval_at((fleet.start + SAMPLE_EVERY).into(), SAMPLE_EVERY);
    // A late tick (busy machine) measures a longer interval rather than bursting.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_at, mut last_acked) = (fleet.start, 0);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut stop => true,
        };
        let now = Instant::now();
        let acked = get(&fleet.stats.records_acked);
        let secs = now.saturating_duration_since(last_at).as_secs_f64();
        timeline.push(Sample {
            t_s: now.saturating_duration_since(fleet.start).as_secs_f64(),
            records_acked_per_s: if secs > 0.0 {
                acked.saturating_sub(last_acked) as f64 / secs
            } else {
                0.0
            },
            records_acked_total: acked,
            ack_latency_us: fleet.stats.take_interval_ack_latency(),
            mqtt_latency_us: fleet.ledger.as_ref().map(|l| l.take_interval_latency()),
            connected: get(&fleet.stats.connected),
        });
        (last_at, last_acked) = (now, acked);
        if last {
            return timeline;
        }
    }
}

/// Waits until every acked position was seen on MQTT, or the grace ends.
async fn wait_for_stragglers(ledger: &Ledger, grace: Duration) {
    let end = Instant::now() + grace;
    while ledger.missing() > 0 && Instant::now() < end {
        tokio::time::sleep(GRACE_POLL).await;
    }
}

fn assemble(fleet: &Fleet, started_at: String, duration_s: f64, timeline: Vec<Sample>) -> Report {
    let s = &fleet.stats;
    let config = &fleet.config;
    let teltonika = (0..config.devices)
        .filter(|&i| Protocol::of_device(config, i) == Protocol::Teltonika)
        .count();
    let teltonika = u32::try_from(teltonika).unwrap_or(u32::MAX);
    let per_s = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    Report {
        config: config.clone(),
        started_at,
        duration_s,
        machine: Machine::this(),
        devices: Devices {
            gt06: config.devices - teltonika,
            teltonika,
        },
        connections: s.connections(),
        messages_sent: get(&s.messages_sent),
        records_sent: get(&s.records_sent),
        acks_received: get(&s.acks_received),
        acks_drained: get(&s.acks_drained),
        records_acked: get(&s.records_acked),
        rates: Rates {
            messages_per_s: per_s(get(&s.messages_sent)),
            records_per_s: per_s(get(&s.records_sent)),
            acked_records_per_s: per_s(get(&s.records_acked)),
        },
        ack_latency_us: s.ack_latency_summary(),
        login_latency_us: s.login_latency_summary(),
        mqtt: fleet.ledger.as_ref().map(|l| l.report()),
        errors: s.errors(),
        timeline,
    }
}

/// Now, rounded down to a whole second, ms since the epoch: virtual clocks
/// start there so that their records' times are round.
pub(crate) fn whole_seconds_now_ms() -> i64 {
    drover_protocols::model::now_ms() / 1000 * 1000
}
