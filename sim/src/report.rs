//! What a run measured: a serialisable [`Report`] for tools and a
//! [`Display`](fmt::Display) summary for people.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::SimError;
use crate::config::SimConfig;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: SimConfig,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// From the first connection to the end of the drain (the MQTT grace excluded).
    pub duration_s: f64,
    pub machine: Machine,
    pub devices: Devices,
    pub connections: Connections,
    /// GT06 locations and heartbeats, Teltonika AVL packets (logins excluded).
    pub messages_sent: u64,
    /// Positions sent (one per GT06 location, K per Teltonika packet).
    pub records_sent: u64,
    /// GT06 heartbeat acks and Teltonika record-count acks.
    pub acks_received: u64,
    /// Of those, the acks read during the drain (after the run's end): not
    /// in `ack_latency_us`, since every GT06 tracker sends its closing
    /// heartbeat at the same instant.
    pub acks_drained: u64,
    /// Positions the server acknowledged (see the crate docs for GT06).
    pub records_acked: u64,
    pub rates: Rates,
    /// From writing a packet to reading its ack, µs.
    pub ack_latency_us: Latency,
    /// From writing the login to reading its ack, µs.
    pub login_latency_us: Latency,
    /// `None` when MQTT was not watched.
    pub mqtt: Option<MqttReport>,
    /// Failures by kind (`connect_refused`, `ack_timeout`, `reset`, …).
    pub errors: BTreeMap<String, u64>,
    /// One sample per second of the run (the last one shorter), for charts.
    pub timeline: Vec<Sample>,
}

/// What happened in one interval of the run (normally a second).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// End of the interval, seconds since the start of the run.
    pub t_s: f64,
    /// Records acked during the interval, per second.
    pub records_acked_per_s: f64,
    /// Records acked since the start of the run.
    pub records_acked_total: u64,
    /// Ack latency of the acks read during the interval, µs.
    pub ack_latency_us: Latency,
    /// Device→MQTT latency of the positions seen during the interval, µs;
    /// `None` when MQTT is not watched.
    pub mqtt_latency_us: Option<Latency>,
    /// Devices logged in at the end of the interval.
    pub connected: u64,
}

/// The machine the simulator ran on, to read the numbers against.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: Option<u64>,
}

impl Machine {
    pub fn this() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: total_memory(),
        }
    }
}

/// `MemTotal` from /proc/meminfo; `None` off Linux.
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Devices {
    pub gt06: u32,
    pub teltonika: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Connections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    /// Attempts after a device's first (after a failure or a lost connection).
    pub reconnects: u64,
    /// Most devices logged in at the same time.
    pub peak_connected: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Rates {
    pub messages_per_s: f64,
    pub records_per_s: f64,
    pub acked_records_per_s: f64,
}

/// Percentiles of a latency histogram, µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    pub count: u64,
}

impl From<&Histogram<u64>> for Latency {
    fn from(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            count: h.len(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MqttReport {
    /// Position messages received on the subscription.
    pub received: u64,
    /// Those that matched a position this run sent (first sighting only).
    pub matched: u64,
    /// Acked positions never seen on MQTT by the end of the grace period.
    pub missing: u64,
    /// From writing the packet to receiving the position on MQTT, µs.
    pub latency_us: Latency,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> Result<(), SimError> {
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(File::create(path)?);
            serde_json::to_writer_pretty(&mut out, self)?;
            out.write_all(b"\n")?;
            out.flush()
        };
        write().map_err(|source| SimError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "drover sim: {} devices ({} GT06, {} Teltonika) against {} for {:.1} s, {}",
            c.devices,
            self.devices.gt06,
            self.devices.teltonika,
            c.target,
            self.duration_s,
            if c.closed_loop {
                "closed loop".to_owned()
            } else {
                format!("{} msg/s each", c.rate)
            },
        )?;
        let k = &self.connections;
        writeln!(
            f,
            "  connections  {} attempted, {} established, {} failed, {} reconnects, {} at most at once",
            k.attempted, k.established, k.failed, k.reconnects, k.peak_connected
        )?;
        writeln!(
            f,
            "  sent         {} messages ({:.0}/s), {} records ({:.0}/s)",
            self.messages_sent,
            self.rates.messages_per_s,
            self.records_sent,
            self.rates.records_per_s
        )?;
        writeln!(
            f,
            "  acked        {} acks, {} records ({:.0}/s)",
            self.acks_received, self.records_acked, self.rates.acked_records_per_s
        )?;
        writeln!(
            f,
            "  ack latency  {} (the {} acks of the drain untimed)",
            self.ack_latency_us, self.acks_drained
        )?;
        writeln!(f, "  login        {}", self.login_latency_us)?;
        match &self.mqtt {
            Some(m) => writeln!(
                f,
                "  mqtt         {} received, {} matched, {} acked but missing; latency {}",
                m.received, m.matched, m.missing, m.latency_us
            )?,
            None => writeln!(f, "  mqtt         not watched")?,
        }
        if self.errors.is_empty() {
            return writeln!(f, "  errors       none");
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "  errors       {}", errors.join(", "))
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("no samples");
        }
        write!(
            f,
            "p50 {} p95 {} p99 {} max {} ({} samples)",
            Millis(self.p50),
            Millis(self.p95),
            Millis(self.p99),
            Millis(self.max),
            self.count
        )
    }
}

/// Microseconds shown as milliseconds, the scale people think in here.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} ms", self.0 as f64 / 1000.0)
    }
}
