//! What a scenario measured: the JSON report (schema in docs/benchmarks.md,
//! "Running the scenarios") and the summary people read.

use std::fmt::{self, Write as _};

use drover_engine::runtime::TickPercentiles;
use drover_sim::report::{Latency, Sample};
use serde::Serialize;

use super::scenario::Run;
use super::server::ProcSample;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    /// When the scenario started, RFC 3339 UTC.
    pub date: String,
    pub drover_version: &'static str,
    pub machine: Machine,
    pub runs: Vec<RunReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    /// The harness's open-file limit after raising it.
    pub nofile_limit: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub id: String,
    pub description: String,
    pub load: Run,
    /// `spawned` (this harness started `drover serve`), `target` (`--target`)
    /// or `in_process` (engine only).
    pub server: &'static str,
    pub duration_s: f64,
    pub throughput: Throughput,
    pub latency_us: Latencies,
    /// The server's CPU over the run and the catch-up of its sinks; `None`
    /// when the server's process is not known (`--target`).
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub connections: Connections,
    pub engine: Option<Engine>,
    pub journal: Option<Journal>,
    pub sinks: Vec<SinkReport>,
    pub integrity: Option<Integrity>,
    /// The null server with the same load; `None` when not run.
    pub ceiling: Option<Ceiling>,
    /// Positions/s as a fraction of the null server's, with the same client.
    pub fraction_of_ceiling: Option<f64>,
    /// The simulator's failures by kind.
    pub errors: std::collections::BTreeMap<String, u64>,
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// Positions acked per second over the whole run (ramp included).
    pub positions_per_s: f64,
    /// Median of the per-second rates after the ramp: what the server sustains.
    pub positions_per_s_sustained: f64,
    /// Records the server committed per second (GT06 heartbeats add status
    /// records; equals positions/s for Teltonika). In process: records taken.
    pub records_per_s: f64,
    /// Packets (GT06 frames, Teltonika AVL packets) sent per second.
    pub messages_per_s: f64,
    pub positions_acked: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latencies {
    /// From writing a packet to reading its ack.
    pub ack: Option<Latency>,
    /// From writing a packet to its position arriving on MQTT.
    pub device_to_mqtt: Option<Latency>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub seconds: f64,
    pub seconds_per_1k_positions: f64,
    /// Average cores busy: seconds of CPU per second of run.
    pub cores_busy: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// RSS before the load (the empty server).
    pub rss_baseline_bytes: u64,
    /// Peak RSS during the run (VmHWM).
    pub rss_peak_bytes: u64,
    pub rss_end_bytes: u64,
    /// (peak − baseline) ÷ most connections at once; `None` without connections.
    pub rss_per_connection_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Connections {
    pub established: u64,
    pub failed: u64,
    pub peak_connected: u64,
    /// The server's own count of connected devices at the peak sample.
    pub server_peak_connected: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Engine {
    pub ticks: u64,
    pub inputs: u64,
    pub devices: u64,
    pub tick_us_mean: u64,
    pub tick_us: TickPercentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Journal {
    /// Group-commit window: appenders gather this long before one write + fsync.
    pub commit_ms: Option<u64>,
    /// Every commit is fsynced before its acks are written.
    pub fsync_before_ack: bool,
    pub commits: u64,
    pub fsyncs: u64,
    pub fsync_max_us: u64,
    /// Records the journal committed (and so acked) during the run.
    pub acked_records: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkReport {
    pub name: String,
    /// Records written during the run (replays count again).
    pub written: u64,
    pub backlog_max: u64,
    pub backlog_end: u64,
    pub failures: u64,
}

/// Whether the pipeline lost anything: every acked record stored and published.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrity {
    /// Positions the simulator saw acked.
    pub sim_positions_acked: u64,
    /// Records the server's journal committed during the run (≥ the above).
    pub server_acked_records: u64,
    /// Every sink reached the journal's end after the run.
    pub sinks_caught_up: bool,
    /// Fewest records any sink wrote during the run (≥ the journal's count).
    pub sinks_written_min: u64,
    /// Acked positions never seen on MQTT; `None` when MQTT is not watched.
    pub mqtt_missing: Option<u64>,
    pub mqtt_matched: Option<u64>,
    /// All of the above hold.
    pub lost_nothing: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ceiling {
    pub positions_per_s: f64,
    pub positions_per_s_sustained: f64,
    pub ack_latency_us: Latency,
    pub cpu_seconds: Option<f64>,
    pub cpu_seconds_per_1k_positions: Option<f64>,
    pub rss_peak_bytes: Option<u64>,
    pub timeline: Vec<TimelinePoint>,
}

/// One second of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub positions_per_s: f64,
    pub ack_p99_us: u64,
    pub mqtt_p99_us: Option<u64>,
    pub connected: u64,
    /// The server's RSS and CPU share at about that time, when sampled.
    pub server_rss_bytes: Option<u64>,
    pub server_cores_busy: Option<f64>,
}

impl TimelinePoint {
    pub fn from_sample(s: &Sample) -> TimelinePoint {
        TimelinePoint {
            t_s: s.t_s,
            positions_per_s: s.records_acked_per_s,
            ack_p99_us: s.ack_latency_us.p99,
            mqtt_p99_us: s.mqtt_latency_us.as_ref().map(|l| l.p99),
            connected: s.connected,
            server_rss_bytes: None,
            server_cores_busy: None,
        }
    }
}

/// Attaches server samples (taken about every second) to the nearest point.
pub fn attach_server(timeline: &mut [TimelinePoint], samples: &[(f64, ProcSample)]) {
    for pair in samples.windows(2) {
        let [(t0, a), (t1, b)] = pair else { continue };
        let nearest = timeline
            .iter_mut()
            .min_by(|x, y| (x.t_s - t1).abs().total_cmp(&(y.t_s - t1).abs()));
        if let Some(point) = nearest {
            point.server_rss_bytes = Some(b.rss_bytes);
            if t1 > t0 {
                point.server_cores_busy = Some((b.cpu_s - a.cpu_s).max(0.0) / (t1 - t0));
            }
        }
    }
}

/// Median of the per-second positions after the ramp (the last, partial
/// second and the drain left out); the whole-run rate when there are none.
pub fn sustained(timeline: &[Sample], ramp_s: f64, duration_s: f64, fallback: f64) -> f64 {
    let mut rates: Vec<f64> = timeline
        .iter()
        .filter(|s| s.t_s > ramp_s + 1.0 && s.t_s <= duration_s)
        .map(|s| s.records_acked_per_s)
        .collect();
    if rates.is_empty() {
        return fallback;
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.machine;
        writeln!(
            f,
            "drover bench {} — {} — {} cores, {} memory",
            self.scenario,
            self.date,
            m.cores,
            m.memory_bytes.map_or("unknown".to_owned(), mb)
        )?;
        for run in &self.runs {
            write!(f, "{run}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[{}] {}", self.id, self.description)?;
        let t = &self.throughput;
        writeln!(
            f,
            "  throughput   {:.0} positions/s sustained ({:.0} over the run), {:.0} records/s, {:.0} messages/s",
            t.positions_per_s_sustained, t.positions_per_s, t.records_per_s, t.messages_per_s
        )?;
        if let (Some(c), Some(x)) = (&self.ceiling, self.fraction_of_ceiling) {
            writeln!(
                f,
                "  ceiling      null server {:.0} positions/s sustained: Drover at {:.0}% of it{}",
                c.positions_per_s_sustained,
                x * 100.0,
                c.cpu_seconds_per_1k_positions
                    .map(|s| format!("; null server CPU {:.1} ms per 1k positions", s * 1000.0))
                    .unwrap_or_default()
            )?;
        }
        let l = &self.latency_us;
        if let Some(ack) = &l.ack {
            writeln!(f, "  ack          {ack}")?;
        }
        match &l.device_to_mqtt {
            Some(mqtt) => writeln!(f, "  device→MQTT  {mqtt}")?,
            None if self.server != "in_process" => writeln!(f, "  device→MQTT  not watched")?,
            None => {}
        }
        if let Some(c) = &self.cpu {
            writeln!(
                f,
                "  server CPU   {:.1} s ({:.2} cores), {:.1} ms per 1k positions",
                c.seconds,
                c.cores_busy,
                c.seconds_per_1k_positions * 1000.0
            )?;
        }
        if let Some(m) = &self.memory {
            let mut line = format!(
                "  memory       RSS {} before, {} peak, {} at the end",
                mb(m.rss_baseline_bytes),
                mb(m.rss_peak_bytes),
                mb(m.rss_end_bytes)
            );
            if let Some(per) = m.rss_per_connection_bytes {
                let _ = write!(line, "; {:.1} KiB per connection", per as f64 / 1024.0);
            }
            writeln!(f, "{line}")?;
        }
        let k = &self.connections;
        if self.server != "in_process" {
            writeln!(
                f,
                "  connections  {} established, {} failed, {} at once{}",
                k.established,
                k.failed,
                k.peak_connected,
                k.server_peak_connected
                    .map(|n| format!(" ({n} by the server's count)"))
                    .unwrap_or_default()
            )?;
        }
        if let Some(e) = &self.engine {
            writeln!(
                f,
                "  engine       {} ticks, {} inputs, {} devices; tick mean {} µs, p50 {} p95 {} p99 {} max {} µs",
                e.ticks,
                e.inputs,
                e.devices,
                e.tick_us_mean,
                e.tick_us.p50,
                e.tick_us.p95,
                e.tick_us.p99,
                e.tick_us.max
            )?;
        }
        if let Some(j) = &self.journal {
            writeln!(
                f,
                "  journal      commit every {} ms, fsync before ack; {} commits, {} fsyncs (max {:.1} ms)",
                j.commit_ms.map_or("?".to_owned(), |ms| ms.to_string()),
                j.commits,
                j.fsyncs,
                j.fsync_max_us as f64 / 1000.0
            )?;
        }
        for s in &self.sinks {
            writeln!(
                f,
                "  sink {:<8} {} written, backlog max {} end {}, {} failures",
                s.name, s.written, s.backlog_max, s.backlog_end, s.failures
            )?;
        }
        if let Some(i) = &self.integrity {
            writeln!(
                f,
                "  integrity    {}: {} positions acked, {} records committed, sinks {}, MQTT {}",
                if i.lost_nothing {
                    "nothing lost"
                } else {
                    "LOSS OR LAG"
                },
                i.sim_positions_acked,
                i.server_acked_records,
                if i.sinks_caught_up {
                    "caught up"
                } else {
                    "behind"
                },
                match i.mqtt_missing {
                    Some(0) => "complete".to_owned(),
                    Some(n) => format!("{n} missing"),
                    None => "not watched".to_owned(),
                }
            )?;
        }
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "  errors       {}", errors.join(", "))?;
        }
        Ok(())
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
