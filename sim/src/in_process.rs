//! Engine-only load: the fleet's records handed straight to a callback on
//! the calling thread, with no sockets, protocols or MQTT in the way.
//!
//! Devices take turns in a fixed order, so a device's messages stay evenly
//! spaced: at `rate` messages per second per device, message `m` of the
//! fleet goes to device `m % devices` and is due `m / (devices × rate)`
//! seconds into the run. A message is one record for GT06 devices and
//! `records_per_packet` for Teltonika ones, as on the wire.

use std::fmt;
use std::time::{Duration, Instant};

use drover_protocols::model::{DeviceId, DeviceMessage};
use serde::Serialize;

use crate::SimError;
use crate::config::SimConfig;
use crate::link::Protocol;
use crate::vehicle::Vehicle;

/// Most messages handed over at once.
const BATCH: usize = 1024;
/// Shortest sleep when nothing is due: batches gather a few ms of traffic
/// instead of one message per wake-up.
const MIN_SLEEP: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InProcessReport {
    pub devices: u32,
    pub duration_s: f64,
    /// Messages produced (GT06 locations, Teltonika packets' worth of records).
    pub messages: u64,
    pub records: u64,
    pub batches: u64,
    pub records_per_s: f64,
    /// The sink asked to stop before the duration was over.
    pub stopped_by_sink: bool,
}

impl fmt::Display for InProcessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drover sim (in process): {} devices, {} records in {} batches over {:.1} s: {:.0} records/s{}",
            self.devices,
            self.records,
            self.batches,
            self.duration_s,
            self.records_per_s,
            if self.stopped_by_sink {
                " (stopped by the sink)"
            } else {
                ""
            }
        )
    }
}

/// One simulated device without a connection.
struct Virtual {
    device: DeviceId,
    protocol: &'static str,
    vehicle: Vehicle,
    interval: Duration,
    records_per_message: u8,
}

/// Advances the fleet for `config.duration`, handing batches of records to
/// `sink` at `config.rate` messages per second per device (as fast as the
/// sink takes them with `closed_loop`). `sink` may block to apply
/// backpressure and returns `false` to stop early. Runs on the calling
/// thread; network options of `config` are ignored.
pub fn run_in_process<F>(config: &SimConfig, mut sink: F) -> Result<InProcessReport, SimError>
where
    F: FnMut(Vec<DeviceMessage>) -> bool,
{
    config.validate()?;
    let mut fleet = fleet(config);
    let n = fleet.len().max(1) as u64;
    let period = config.period();
    let start = Instant::now();
    let end = start + config.duration;
    let (mut next, mut records, mut batches, mut stopped) = (0u64, 0u64, 0u64, false);
    let mut batch = Vec::with_capacity(BATCH);
    while Instant::now() < end {
        let due = if config.closed_loop {
            next + BATCH as u64
        } else {
            due_count(start.elapsed(), period, n)
        };
        while next < due && batch.len() < BATCH {
            let index = (next % n) as usize;
            if let Some(device) = fleet.get_mut(index) {
                produce(device, &mut batch);
            }
            next += 1;
        }
        if batch.is_empty() {
            pause(start + period.mul_f64(next as f64 / n as f64), end);
            continue;
        }
        records += batch.len() as u64;
        batches += 1;
        if !sink(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))) {
            stopped = true;
            break;
        }
    }
    let duration_s = start.elapsed().as_secs_f64();
    Ok(InProcessReport {
        devices: config.devices,
        duration_s,
        messages: next,
        records,
        batches,
        records_per_s: if duration_s > 0.0 {
            records as f64 / duration_s
        } else {
            0.0
        },
        stopped_by_sink: stopped,
    })
}

/// Sleeps until `next_at`, at least [`MIN_SLEEP`], never past `end`.
fn pause(next_at: Instant, end: Instant) {
    let now = Instant::now();
    let wait = next_at.saturating_duration_since(now).max(MIN_SLEEP);
    std::thread::sleep(wait.min(end.saturating_duration_since(now)));
}

fn fleet(config: &SimConfig) -> Vec<Virtual> {
    let start_ms = crate::runner::whole_seconds_now_ms();
    (0..config.devices)
        .map(|index| {
            let protocol = Protocol::of_device(config, index);
            let teltonika = protocol == Protocol::Teltonika;
            Virtual {
                device: DeviceId::new(&config.imei(index).to_string()),
                protocol: protocol.name(),
                vehicle: Vehicle::new(config.seed, index.into(), &config.city, start_ms),
                interval: config.record_interval(teltonika),
                records_per_message: if teltonika {
                    config.records_per_packet.max(1)
                } else {
                    1
                },
            }
        })
        .collect()
}

/// How many of the fleet's messages are due `elapsed` into the run.
fn due_count(elapsed: Duration, period: Duration, devices: u64) -> u64 {
    let periods = elapsed.as_secs_f64() / period.as_secs_f64().max(1e-9);
    (periods * devices as f64) as u64 + 1
}

fn produce(device: &mut Virtual, batch: &mut Vec<DeviceMessage>) {
    for _ in 0..device.records_per_message {
        device.vehicle.step(device.interval);
        batch.push(DeviceMessage {
            device: device.device.clone(),
            protocol: device.protocol,
            record: device.vehicle.record(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(devices: u32, rate: f64, ms: u64) -> SimConfig {
        SimConfig {
            devices,
            rate,
            records_per_packet: 2,
            duration: Duration::from_millis(ms),
            mqtt: None,
            ..SimConfig::default()
        }
    }

    #[test]
    fn paced_runs_deliver_the_rate_with_rising_times_per_device() {
        let config = config(10, 20.0, 500);
        let mut last: HashMap<DeviceId, i64> = HashMap::new();
        let mut ordered = true;
        let report = run_in_process(&config, |batch| {
            for m in batch {
                let previous = last.insert(m.device.clone(), m.record.time_ms);
                ordered &= previous.is_none_or(|t| t < m.record.time_ms);
            }
            true
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(ordered, "a device's records went back in time");
        assert_eq!(last.len(), 10);
        // 10 devices × 20 msg/s × 0.5 s = 100 messages (±1 period of slack).
        assert!((90..=112).contains(&report.messages), "{report}");
        // Half the devices are Teltonika with 2 records per message.
        assert!(
            report.records > report.messages && report.records <= 2 * report.messages,
            "{report}"
        );
        assert!(!report.stopped_by_sink);
    }

    #[test]
    fn closed_loop_runs_as_fast_as_the_sink_and_stops_when_told() {
        let config = SimConfig {
            closed_loop: true,
            ..config(100, 1.0, 5_000)
        };
        let mut seen = 0;
        let report = run_in_process(&config, |batch| {
            seen += batch.len();
            seen < 5_000
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.stopped_by_sink);
        assert!(report.duration_s < 4.0, "{report}");
        assert_eq!(report.records as usize, seen);
    }
}
