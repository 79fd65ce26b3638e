//! What a scenario measured: the JSON report (schema in docs/benchmarks.md,
//! "Running the scenarios") and the summary people read.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use drover_engine::runtime::TickPercentiles;
use drover_sim::report::{Latency, Sample};
use hdrhistogram::Histogram;
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
    /// What the API load did to ingest (the `api` scenario); `None` without
    /// both a run with API load and one without.
    pub api_effect: Option<ApiEffect>,
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
    /// This process's CPU over the simulator's run: the simulated fleet and
    /// the API's clients, on the same cores as the server. `None` in process.
    pub harness_cpu: Option<Cpu>,
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
    pub errors: BTreeMap<String, u64>,
    pub timeline: Vec<TimelinePoint>,
    /// Past positions written before the server started; `None`: none.
    pub history_seed: Option<HistorySeed>,
    /// What the API's clients saw; `None` without API load.
    pub api: Option<ApiReport>,
}

/// A day of past positions written into the history store before the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistorySeed {
    /// The fleet's first devices, whose positions the API clients read.
    pub devices: u32,
    pub positions_per_device: u64,
    /// How long writing them took.
    pub seconds: f64,
}

/// What the API's clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiReport {
    /// The HTTP readers; `None` when there were none.
    pub http: Option<HttpReport>,
    /// The live stream's clients; `None` when there were none.
    pub stream: Option<StreamReport>,
}

/// What the HTTP readers saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpReport {
    pub clients: u32,
    /// Requests per second of each client; 0: closed loop.
    pub client_rate: f64,
    /// How long they read, from the end of the fleet's ramp to the end of its run.
    pub window_s: f64,
    pub routes: Vec<RouteReport>,
}

/// One route's requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteReport {
    pub route: &'static str,
    /// Requests sent, answered or not.
    pub requests: u64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Successful answers per second of the window.
    pub ok_per_s: f64,
    /// From sending the request to the last byte of a 2xx answer.
    pub latency_us: Percentiles,
    pub target_p99_us: u64,
    /// p99 within the target, with answers and without errors.
    pub target_met: bool,
    pub body_bytes_mean: u64,
    /// Failures by HTTP status (`503`) or kind (`timeout`, `connect`, `transport`).
    pub errors: BTreeMap<String, u64>,
}

impl RouteReport {
    /// The report of `ok` answers timed in `latency_us`, `body_bytes` in all,
    /// and `errors`, over `window_s`, against a p99 target.
    pub fn new(
        route: &'static str,
        latency_us: &Histogram<u64>,
        body_bytes: u64,
        errors: BTreeMap<String, u64>,
        window_s: f64,
        target_p99_us: u64,
    ) -> RouteReport {
        let ok = latency_us.len();
        let latency = Percentiles::from(latency_us);
        RouteReport {
            route,
            requests: ok + errors.values().sum::<u64>(),
            ok,
            ok_per_s: if window_s > 0.0 {
                ok as f64 / window_s
            } else {
                0.0
            },
            target_met: ok > 0 && errors.is_empty() && latency.p99 <= target_p99_us,
            latency_us: latency,
            target_p99_us,
            body_bytes_mean: body_bytes.checked_div(ok).unwrap_or(0),
            errors,
        }
    }
}

/// What the live stream's clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub clients: u32,
    /// Devices each subscribed to; `None`: the whole fleet.
    pub subscribed_devices: Option<u32>,
    /// Clients that got their first snapshot.
    pub connected: u32,
    /// How long they listened, from the end of the fleet's ramp.
    pub window_s: f64,
    /// From opening the connection to reading the first snapshot.
    pub snapshot_us: Percentiles,
    pub snapshot_bytes_max: u64,
    /// Position messages, over all clients.
    pub positions: u64,
    /// Position messages per client per second: the mean, and the
    /// slowest client's.
    pub positions_per_client_per_s: f64,
    pub positions_per_client_per_s_min: f64,
    pub statuses: u64,
    /// Trips opened or closed, over all clients.
    pub trips: u64,
    /// The probe's positions acked by the server, and how many of them the
    /// clients got in all (at most sent × connected).
    pub probe_sent: u64,
    pub probe_received: u64,
    /// From the probe stamping a position to a client reading it.
    pub lag_us: Percentiles,
    /// Connections that ended before the window: by close code (`1008`:
    /// let go by the server for reading too slowly) or kind (`connect`,
    /// `transport`, `ended`); error messages from the server as `error_message`.
    pub ended: BTreeMap<String, u64>,
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl From<&Histogram<u64>> for Percentiles {
    fn from(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The `api` scenario's question: did reading the API slow ingest down?
#[derive(Debug, Clone, Serialize)]
pub struct ApiEffect {
    /// The run without API load and the run with it.
    pub baseline: String,
    pub loaded: String,
    pub ack_p99_us: Compared,
    /// `None` when MQTT was not watched in both.
    pub device_to_mqtt_p99_us: Option<Compared>,
}

/// One figure without and with the API load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Compared {
    pub without: u64,
    pub with: u64,
    /// `with ÷ without`; `None` when `without` is 0.
    pub ratio: Option<f64>,
}

impl Compared {
    pub fn new(without: u64, with: u64) -> Compared {
        Compared {
            without,
            with,
            ratio: (without > 0).then(|| with as f64 / without as f64),
        }
    }
}

/// The first run with API load against the first over TCP without it.
pub fn api_effect(runs: &[RunReport]) -> Option<ApiEffect> {
    let baseline = runs
        .iter()
        .find(|r| r.api.is_none() && r.latency_us.ack.is_some())?;
    let loaded = runs.iter().find(|r| r.api.is_some())?;
    ApiEffect::between(
        (&baseline.id, &baseline.latency_us),
        (&loaded.id, &loaded.latency_us),
    )
}

impl ApiEffect {
    /// `None` when either run has no ack latency.
    fn between(baseline: (&str, &Latencies), loaded: (&str, &Latencies)) -> Option<ApiEffect> {
        let p99 = |l: &Option<Latency>| l.as_ref().map(|l| l.p99);
        let (b, l) = (baseline.1, loaded.1);
        Some(ApiEffect {
            baseline: baseline.0.to_owned(),
            loaded: loaded.0.to_owned(),
            ack_p99_us: Compared::new(p99(&b.ack)?, p99(&l.ack)?),
            device_to_mqtt_p99_us: p99(&b.device_to_mqtt)
                .zip(p99(&l.device_to_mqtt))
                .map(|(without, with)| Compared::new(without, with)),
        })
    }
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
        if let Some(effect) = &self.api_effect {
            write!(f, "{effect}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nAPI load's effect on ingest ([{}] → [{}])",
            self.baseline, self.loaded
        )?;
        writeln!(f, "  ack p99          {}", self.ack_p99_us)?;
        match &self.device_to_mqtt_p99_us {
            Some(mqtt) => writeln!(f, "  device→MQTT p99  {mqtt}"),
            None => writeln!(f, "  device→MQTT p99  not watched"),
        }
    }
}

impl fmt::Display for Compared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", ms(self.without), ms(self.with))?;
        match self.ratio {
            Some(r) => write!(f, " (×{r:.2})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ApiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(http) = &self.http {
            write!(f, "{http}")?;
        }
        if let Some(stream) = &self.stream {
            write!(f, "{stream}")?;
        }
        Ok(())
    }
}

impl fmt::Display for StreamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self
            .subscribed_devices
            .map_or("the whole fleet".to_owned(), |n| format!("{n} devices"));
        writeln!(
            f,
            "  stream       {} of {} clients connected for {:.0} s, each watching {scope}",
            self.connected, self.clients, self.window_s
        )?;
        let s = &self.snapshot_us;
        writeln!(
            f,
            "    snapshot   p50 {} p99 {} max {} after connecting, up to {:.0} kB",
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            self.snapshot_bytes_max as f64 / 1e3
        )?;
        writeln!(
            f,
            "    positions  {} in all, {:.0}/s per client (slowest {:.0}/s), {} statuses, {} trips",
            self.positions,
            self.positions_per_client_per_s,
            self.positions_per_client_per_s_min,
            self.statuses,
            self.trips
        )?;
        let l = &self.lag_us;
        writeln!(
            f,
            "    lag        probe → client p50 {} p90 {} p99 {} max {}; {} of {} × {} probe positions read",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            self.probe_received,
            self.probe_sent,
            self.connected
        )?;
        if !self.ended.is_empty() {
            let each: Vec<String> = self.ended.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "    ended      {}", each.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for HttpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = if self.client_rate > 0.0 {
            format!("{} requests/s each", self.client_rate)
        } else {
            "closed loop".to_owned()
        };
        writeln!(
            f,
            "  API          {} HTTP clients ({pace}) for {:.0} s after the ramp",
            self.clients, self.window_s
        )?;
        for r in &self.routes {
            let l = &r.latency_us;
            let errors = if r.errors.is_empty() {
                "no errors".to_owned()
            } else {
                let each: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!("errors {}", each.join(", "))
            };
            writeln!(
                f,
                "    {}\n      {} ok ({:.0}/s, {} bytes each), p50 {} p90 {} p99 {} max {}; target p99 ≤ {}: {}; {errors}",
                r.route,
                r.ok,
                r.ok_per_s,
                r.body_bytes_mean,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max),
                ms(r.target_p99_us),
                if r.target_met { "met" } else { "NOT MET" },
            )?;
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
        if let Some(c) = &self.harness_cpu {
            writeln!(
                f,
                "  harness CPU  {:.1} s ({:.2} cores): the simulator and the API's clients",
                c.seconds, c.cores_busy
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
        if let Some(h) = &self.history_seed {
            writeln!(
                f,
                "  history      {} devices × {} past positions written before the start ({:.1} s)",
                h.devices, h.positions_per_device, h.seconds
            )?;
        }
        if let Some(api) = &self.api {
            write!(f, "{api}")?;
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

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_us: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| panic!("{e}"));
        for v in values_us {
            h.record(v).unwrap_or_else(|e| panic!("{e}"));
        }
        h
    }

    #[test]
    fn percentiles_of_a_hundred_answers() {
        let p = Percentiles::from(&histogram((1..=100).map(|ms| ms * 1000)));
        // Three significant figures: each within 0.1 % of the exact value.
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 1000;
        assert!(near(p.p50, 50_000) && near(p.p90, 90_000), "{p:?}");
        assert!(near(p.p99, 99_000) && near(p.max, 100_000), "{p:?}");
        assert_eq!(Percentiles::from(&histogram([])), Percentiles::default());
    }

    #[test]
    fn a_route_counts_errors_as_requests_but_not_in_its_latency() {
        let errors = BTreeMap::from([("503".to_owned(), 2), ("timeout".to_owned(), 1)]);
        let r = RouteReport::new(
            "GET /x",
            &histogram([10_000, 20_000, 30_000, 40_000]),
            4_000,
            errors,
            2.0,
            50_000,
        );
        assert_eq!((r.requests, r.ok, r.body_bytes_mean), (7, 4, 1_000));
        assert_eq!(r.ok_per_s, 2.0);
        assert!(r.latency_us.p99 <= 50_000);
        assert!(!r.target_met, "errors fail the target");
    }

    #[test]
    fn the_target_needs_answers_and_a_p99_within_it() {
        let route = |values: Vec<u64>| {
            RouteReport::new(
                "GET /x",
                &histogram(values),
                0,
                BTreeMap::new(),
                1.0,
                50_000,
            )
        };
        assert!(route(vec![1_000; 99]).target_met);
        assert!(!route(vec![]).target_met, "no answers, nothing met");
        let mut slow = vec![1_000; 97];
        slow.extend([60_000; 3]);
        assert!(!route(slow).target_met, "3 % over the target");
    }

    #[test]
    fn the_effect_is_the_loaded_run_over_the_baseline() {
        let latency = |p99| Latency {
            p99,
            ..Latency::default()
        };
        let baseline = Latencies {
            ack: Some(latency(16_000)),
            device_to_mqtt: Some(latency(40_000)),
        };
        let loaded = Latencies {
            ack: Some(latency(24_000)),
            device_to_mqtt: None,
        };
        let effect = ApiEffect::between(("a", &baseline), ("b", &loaded))
            .unwrap_or_else(|| panic!("both have acks"));
        assert_eq!(effect.ack_p99_us, Compared::new(16_000, 24_000));
        assert_eq!(effect.ack_p99_us.ratio, Some(1.5));
        assert_eq!(
            effect.device_to_mqtt_p99_us, None,
            "MQTT watched in one only"
        );
        assert_eq!(Compared::new(0, 5).ratio, None);
        assert!(ApiEffect::between(("a", &Latencies::default()), ("b", &loaded)).is_none());
    }
}
