//! `drover bench`: named load scenarios run end to end — a `drover serve`
//! started from this binary (or `--target`), the simulator in this process
//! as the load, the null server for the machine's ceiling — written as a
//! JSON report, a text summary and an SVG chart per run.
//!
//! - `scenario.rs`: the scenarios as data;
//! - `server.rs`: starting and stopping servers, /proc and `/health`;
//! - `engine.rs`: engine-only load in process (`engine-1m`);
//! - `history.rs`: a day of past positions written before a server starts,
//!   and `clients.rs`: the API's clients under fleet load (`api`) — HTTP
//!   readers (`api.rs`), the live stream's clients (`stream.rs`) and the
//!   tracker whose positions time the stream (`probe.rs`);
//! - `report.rs`: the report and its summary; `chart.rs`: the SVG.

pub mod api;
pub mod chart;
pub mod clients;
pub mod engine;
pub mod history;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod server;
pub mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_sim::SimConfig;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use self::clients::Clients;
use self::report::{
    Ceiling, Connections, Cpu, Engine, HistorySeed, Integrity, Journal, Latencies, Machine, Memory,
    RunReport, ScenarioReport, SinkReport, Throughput, TimelinePoint,
};
use self::scenario::{Mode, Name, Overrides, Run};
use self::server::{Ports, ProcSample, Spawned};
use drover_node::config::Config;

/// Longest wait, after the load, for the sinks to reach the journal's end.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the server is sampled during a run.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The null server ends by itself this long after the run should have.
const NULL_SLACK: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Scenarios to run; `all` runs every one.
    #[arg(required = true, value_enum)]
    pub scenarios: Vec<Name>,
    /// Length of each run in seconds (shrinks the scenarios, e.g. for smoke tests).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Devices of each run (shrinks the scenarios, e.g. for smoke tests).
    #[arg(long)]
    pub devices: Option<u32>,
    /// Messages per second per device of each run that is not closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// HTTP clients reading the API in the `api` scenario's loaded run (default 50).
    #[arg(long)]
    pub clients: Option<u32>,
    /// Requests per second of each HTTP client of the `api` scenario
    /// (default 0: closed loop, the next request once the previous is answered).
    #[arg(long)]
    pub client_rate: Option<f64>,
    /// Clients of the live stream in the `api` scenario's loaded run (default 100).
    #[arg(long)]
    pub ws_clients: Option<u32>,
    /// Devices each live stream client subscribes to with its handshake
    /// (default 0: the whole fleet).
    #[arg(long)]
    pub ws_devices: Option<u32>,
    /// Load a server that is already running instead of starting one:
    /// HOST:GT06,TELTONIKA[,HTTP[,MQTT]]. Without the HTTP port there is
    /// no `/health` data; without MQTT no device→MQTT latency.
    #[arg(long, value_name = "HOST:PORTS")]
    pub target: Option<String>,
    /// Directory for the reports, charts and server logs.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Do not measure the null server's ceiling.
    #[arg(long)]
    pub no_null: bool,
    /// A setting for the spawned server (and the in-process engine), as
    /// `drover serve --set`: e.g. `--set journal.commit_ms=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Runs every scenario asked for, one after the other, and writes their reports.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let nofile_limit = drover_node::rlimit::raise_and_log();
    let names = Name::expand(&args.scenarios);
    let overrides = overrides(&args, &names)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let target = args.target.as_deref().map(Ports::parse).transpose()?;
    let machine = drover_sim::report::Machine::this();
    for name in names {
        let date = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut runs = Vec::new();
        for run in scenario::runs(name, overrides) {
            tracing::info!(run = %run.id, "{}", run.describe());
            let report = match run.mode {
                Mode::Network => network_run(&run, target.as_ref(), &args).await?,
                Mode::Engine => engine_run(&run, &args.settings).await?,
            };
            write(
                &args.out.join(format!("{}.svg", run.id)),
                &chart::svg(&report),
            )?;
            runs.push(report);
        }
        let report = ScenarioReport {
            api_effect: report::api_effect(&runs),
            scenario: name.as_str(),
            date,
            drover_version: env!("CARGO_PKG_VERSION"),
            machine: Machine {
                cores: machine.cores,
                memory_bytes: machine.memory_bytes,
                nofile_limit,
            },
            runs,
        };
        let json = serde_json::to_string_pretty(&report)? + "\n";
        let summary = report.to_string();
        write(&args.out.join(format!("{}.json", name.as_str())), &json)?;
        write(&args.out.join(format!("{}.txt", name.as_str())), &summary)?;
        println!("{summary}");
    }
    println!(
        "Reports, charts and server logs are in {}",
        args.out.display()
    );
    Ok(())
}

/// The size options of `args`, checked against the scenarios `names`.
fn overrides(args: &BenchArgs, names: &[Name]) -> anyhow::Result<Overrides> {
    let duration = args
        .duration
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("--duration must be a positive number of seconds")?;
    anyhow::ensure!(
        duration.is_none_or(|d| !d.is_zero()),
        "--duration must be positive"
    );
    anyhow::ensure!(
        args.rate.is_none_or(|r| r.is_finite() && r > 0.0),
        "--rate must be a positive number of messages per second"
    );
    let api = names.contains(&Name::Api);
    anyhow::ensure!(
        api || ([args.clients, args.ws_clients, args.ws_devices]
            .iter()
            .all(Option::is_none)
            && args.client_rate.is_none()),
        "--clients, --client-rate, --ws-clients and --ws-devices set the api scenario's \
         clients: name it"
    );
    anyhow::ensure!(
        args.client_rate
            .is_none_or(|r| r == 0.0 || (0.001..=1_000_000.0).contains(&r)),
        "--client-rate must be 0 (closed loop) or 0.001 to 1000000 requests per second"
    );
    anyhow::ensure!(
        !(args.clients == Some(0) && args.ws_clients == Some(0)),
        "the api scenario's loaded run needs a client (its baseline is the run without)"
    );
    anyhow::ensure!(
        !(api && args.target.is_some()),
        "the api scenario starts its own server (it writes history before the start and \
         logs in as admin): run it without --target"
    );
    Ok(Overrides {
        devices: args.devices,
        duration,
        rate: args.rate,
        clients: args.clients,
        client_rate: args.client_rate,
        ws_clients: args.ws_clients,
        ws_devices: args.ws_devices,
        no_null: args.no_null,
    })
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn sim_config(run: &Run, ports: &Ports, mqtt: bool) -> SimConfig {
    SimConfig {
        target: ports.host.clone(),
        gt06_port: ports.gt06,
        teltonika_port: ports.teltonika,
        mqtt: ports
            .mqtt
            .filter(|_| mqtt)
            .map(|port| format!("mqtt://drover:{MQTT_PASSWORD}@{}:{port}", ports.host)),
        ..fleet(run)
    }
}

/// The simulated fleet of `run`, without a server to drive.
fn fleet(run: &Run) -> SimConfig {
    SimConfig {
        devices: run.devices,
        rate: run.rate,
        teltonika_share: run.teltonika_share,
        records_per_packet: run.records_per_packet,
        gt06_heartbeat_every: run.gt06_heartbeat_every,
        duration: run.duration,
        ramp: run.ramp,
        closed_loop: run.closed_loop,
        mqtt: None,
        source_addrs: run.source_addrs.clone(),
        progress: false,
        // A saturating run leaves the MQTT sink behind, to catch up from the
        // journal afterwards: wait for it (the wait ends once nothing is
        // missing), so that only records that never come count as lost.
        mqtt_grace: MQTT_GRACE,
        ..SimConfig::default()
    }
}

/// Longest wait, after the load, for acked positions still to arrive on MQTT.
/// The node account's password on a benchmarked node (a loopback-only
/// throwaway): the simulator logs in with it to measure device→MQTT latency.
pub const MQTT_PASSWORD: &str = "drover-bench";
/// User `admin`'s password on a benchmarked node, for the API's clients.
pub const ADMIN_PASSWORD: &str = "drover-bench-admin";

const MQTT_GRACE: Duration = Duration::from_secs(120);

/// One run over TCP against Drover, then (unless disabled) the same load
/// against the null server.
async fn network_run(
    run: &Run,
    target: Option<&Ports>,
    args: &BenchArgs,
) -> anyhow::Result<RunReport> {
    let (spawned, history_seed) = match target {
        Some(_) => (None, None),
        None => {
            let (spawned, seed) = serve(run, args).await?;
            (Some(spawned), seed)
        }
    };
    let ports = match (&spawned, target) {
        (Some(s), _) => s.ports.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => anyhow::bail!("no server to load"),
    };
    let pid = spawned.as_ref().map(|s| s.pid);
    let health_before = match ports.http {
        Some(port) => Some(server::health(&ports.host, port).await?),
        None => None,
    };
    if let Some(pid) = pid {
        server::reset_peak_rss(pid);
    }
    let before = pid.and_then(server::sample);
    let started = Instant::now();
    let sampler = Sampler::start(pid, &ports);
    let clients = match run.api {
        Some(load) => Some(Clients::start(run, load, &fleet(run), &ports, ADMIN_PASSWORD).await?),
        None => None,
    };
    let harness_before = server::sample(std::process::id());
    let sim = drover_sim::run(sim_config(run, &ports, true)).await?;
    let harness_after = server::sample(std::process::id());
    let api = match clients {
        Some(clients) => Some(clients.join().await?),
        None => None,
    };
    let caught_up = match ports.http {
        Some(port) => wait_caught_up(&ports.host, port).await,
        None => false,
    };
    let samples = sampler.stop().await;
    let after = pid.and_then(server::sample);
    let elapsed = started.elapsed().as_secs_f64();
    let health_after = match ports.http {
        Some(port) => Some(server::health(&ports.host, port).await?),
        None => None,
    };
    if let Some(spawned) = spawned
        && !spawned.stop().await
    {
        tracing::warn!(run = %run.id, "drover serve did not exit cleanly");
    }

    let positions = sim.records_acked;
    let mut timeline: Vec<TimelinePoint> = sim
        .timeline
        .iter()
        .map(TimelinePoint::from_sample)
        .collect();
    report::attach_server(&mut timeline, &samples.proc);
    let fallback = sim.rates.acked_records_per_s;
    let sustained = report::sustained(
        &sim.timeline,
        run.ramp.as_secs_f64(),
        run.duration.as_secs_f64(),
        fallback,
    );
    let server_side = ServerSide::read(health_before.as_ref(), health_after.as_ref(), &samples);
    let mut report = RunReport {
        id: run.id.clone(),
        description: run.describe(),
        load: run.clone(),
        server: if target.is_some() {
            "target"
        } else {
            "spawned"
        },
        duration_s: sim.duration_s,
        throughput: Throughput {
            positions_per_s: sim.rates.acked_records_per_s,
            positions_per_s_sustained: sustained,
            records_per_s: server_side.journal.as_ref().map_or(fallback, |j| {
                j.acked_records as f64 / sim.duration_s.max(1e-9)
            }),
            messages_per_s: sim.rates.messages_per_s,
            positions_acked: positions,
        },
        latency_us: Latencies {
            ack: Some(sim.ack_latency_us.clone()),
            device_to_mqtt: sim.mqtt.as_ref().map(|m| m.latency_us.clone()),
        },
        cpu: cpu(before, after, elapsed, positions),
        harness_cpu: cpu(harness_before, harness_after, sim.duration_s, positions),
        memory: memory(before, after, &samples.proc, sim.connections.peak_connected),
        connections: Connections {
            established: sim.connections.established,
            failed: sim.connections.failed,
            peak_connected: sim.connections.peak_connected,
            server_peak_connected: samples.server_peak_connected,
        },
        engine: server_side.engine,
        integrity: server_side.journal.as_ref().map(|j| {
            let written_min = server_side
                .sinks
                .iter()
                .map(|s| s.written)
                .min()
                .unwrap_or(0);
            let mqtt_missing = sim.mqtt.as_ref().map(|m| m.missing);
            Integrity {
                sim_positions_acked: positions,
                server_acked_records: j.acked_records,
                sinks_caught_up: caught_up,
                sinks_written_min: written_min,
                mqtt_missing,
                mqtt_matched: sim.mqtt.as_ref().map(|m| m.matched),
                lost_nothing: j.acked_records >= positions
                    && caught_up
                    && written_min >= j.acked_records
                    && mqtt_missing.is_none_or(|m| m == 0),
            }
        }),
        journal: server_side.journal,
        sinks: server_side.sinks,
        ceiling: None,
        fraction_of_ceiling: None,
        errors: sim.errors.clone(),
        timeline,
        history_seed,
        api,
    };
    if run.with_null {
        let ceiling = null_run(run, &args.out).await?;
        if ceiling.positions_per_s_sustained > 0.0 {
            report.fraction_of_ceiling = Some(
                report.throughput.positions_per_s_sustained / ceiling.positions_per_s_sustained,
            );
        }
        report.ceiling = Some(ceiling);
    }
    Ok(report)
}

/// `drover serve` in a fresh data directory, with the run's past history
/// written into it first.
async fn serve(run: &Run, args: &BenchArgs) -> anyhow::Result<(Spawned, Option<HistorySeed>)> {
    let data_dir = server::fresh_data_dir(&args.out, &run.id);
    let started = serve_in(&data_dir, run, args).await;
    if started.is_err() {
        // No server runs in it: remove the history written for one.
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    started
}

async fn serve_in(
    data_dir: &Path,
    run: &Run,
    args: &BenchArgs,
) -> anyhow::Result<(Spawned, Option<HistorySeed>)> {
    let seed = match run.history_devices {
        0 => None,
        devices => {
            let (dir, fleet) = (data_dir.to_owned(), fleet(run));
            let now_ms = drover_protocols::model::now_ms();
            let write = move || history::write_day(&dir, &fleet, devices, now_ms);
            Some(tokio::task::spawn_blocking(write).await??)
        }
    };
    let log = args.out.join(format!("{}-serve.log", run.id));
    let spawned = Spawned::serve(data_dir.to_owned(), &log, &args.settings).await?;
    Ok((spawned, seed))
}

/// The same load against the null server: the machine's ceiling.
async fn null_run(run: &Run, out: &Path) -> anyhow::Result<Ceiling> {
    let log = out.join(format!("{}-null.log", run.id));
    let null = Spawned::null(&log, run.duration + NULL_SLACK).await?;
    let pid = null.pid;
    let before = server::sample(pid);
    let started = Instant::now();
    let sim = drover_sim::run(sim_config(run, &null.ports, false)).await?;
    let after = server::sample(pid);
    let elapsed = started.elapsed().as_secs_f64();
    null.stop().await;
    let positions = sim.records_acked;
    let cpu = cpu(before, after, elapsed, positions);
    Ok(Ceiling {
        positions_per_s: sim.rates.acked_records_per_s,
        positions_per_s_sustained: report::sustained(
            &sim.timeline,
            run.ramp.as_secs_f64(),
            run.duration.as_secs_f64(),
            sim.rates.acked_records_per_s,
        ),
        ack_latency_us: sim.ack_latency_us.clone(),
        cpu_seconds: cpu.as_ref().map(|c| c.seconds),
        cpu_seconds_per_1k_positions: cpu.as_ref().map(|c| c.seconds_per_1k_positions),
        rss_peak_bytes: after.map(|s| s.hwm_bytes),
        timeline: sim
            .timeline
            .iter()
            .map(TimelinePoint::from_sample)
            .collect(),
    })
}

/// Geofences over the simulated city in `engine-1m`.
const ENGINE_GEOFENCES: usize = 10_000;

/// The engine alone, in this process: no sockets, journal or sinks; every
/// analytics system on (a fleet speed limit, [`ENGINE_GEOFENCES`]
/// geofences), unless `settings` say otherwise.
async fn engine_run(run: &Run, settings: &[String]) -> anyhow::Result<RunReport> {
    let mut all = vec!["analytics.overspeed.limit_kmh=50".to_owned()];
    all.extend_from_slice(settings);
    let config = Config::load(None, &all)?;
    let sim = SimConfig {
        devices: run.devices,
        rate: run.rate,
        closed_loop: run.closed_loop,
        teltonika_share: run.teltonika_share,
        records_per_packet: run.records_per_packet,
        duration: run.duration,
        mqtt: None,
        progress: false,
        ..SimConfig::default()
    };
    let pid = std::process::id();
    server::reset_peak_rss(pid);
    let before = server::sample(pid);
    let started = Instant::now();
    let load =
        tokio::task::spawn_blocking(move || engine::engine_load(&config, &sim, ENGINE_GEOFENCES))
            .await??;
    let elapsed = started.elapsed().as_secs_f64();
    let after = server::sample(pid);
    let records = load.sim.records;
    let per_s = load.sim.records_per_s;
    Ok(RunReport {
        id: run.id.clone(),
        description: run.describe(),
        load: run.clone(),
        server: "in_process",
        duration_s: load.sim.duration_s,
        throughput: Throughput {
            positions_per_s: per_s,
            positions_per_s_sustained: per_s,
            records_per_s: per_s,
            messages_per_s: load.sim.messages as f64 / load.sim.duration_s.max(1e-9),
            positions_acked: records,
        },
        latency_us: Latencies::default(),
        // The simulator shares the process: its CPU is in these figures.
        cpu: cpu(before, after, elapsed, records),
        harness_cpu: None,
        memory: memory(before, after, &[], 0),
        connections: Connections::default(),
        engine: Some(Engine {
            ticks: load.ticks,
            inputs: load.inputs,
            devices: load.devices,
            tick_us_mean: load.tick_us_mean,
            tick_us: load.tick_us,
        }),
        journal: None,
        sinks: Vec::new(),
        integrity: None,
        ceiling: None,
        fraction_of_ceiling: None,
        errors: BTreeMap::new(),
        timeline: Vec::new(),
        history_seed: None,
        api: None,
    })
}

fn cpu(
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    elapsed_s: f64,
    positions: u64,
) -> Option<Cpu> {
    let (before, after) = (before?, after?);
    let seconds = (after.cpu_s - before.cpu_s).max(0.0);
    Some(Cpu {
        seconds,
        seconds_per_1k_positions: if positions > 0 {
            seconds / (positions as f64 / 1000.0)
        } else {
            0.0
        },
        cores_busy: if elapsed_s > 0.0 {
            seconds / elapsed_s
        } else {
            0.0
        },
    })
}

fn memory(
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    samples: &[(f64, ProcSample)],
    peak_connected: u64,
) -> Option<Memory> {
    let (before, after) = (before?, after?);
    let peak = samples
        .iter()
        .map(|(_, s)| s.hwm_bytes)
        .chain([after.hwm_bytes, after.rss_bytes])
        .max()
        .unwrap_or(after.hwm_bytes);
    Some(Memory {
        rss_baseline_bytes: before.rss_bytes,
        rss_peak_bytes: peak,
        rss_end_bytes: after.rss_bytes,
        rss_per_connection_bytes: (peak_connected > 0)
            .then(|| peak.saturating_sub(before.rss_bytes) / peak_connected),
    })
}

/// What `/health` said, as differences over the run.
struct ServerSide {
    engine: Option<Engine>,
    journal: Option<Journal>,
    sinks: Vec<SinkReport>,
}

impl ServerSide {
    fn read(before: Option<&Value>, after: Option<&Value>, samples: &Samples) -> ServerSide {
        let (Some(before), Some(after)) = (before, after) else {
            return ServerSide {
                engine: None,
                journal: None,
                sinks: Vec::new(),
            };
        };
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let delta = |path: &[&str]| {
            let at = |v: &Value| path.iter().fold(v.clone(), |v, key| v[*key].clone());
            n(&at(after)).saturating_sub(n(&at(before)))
        };
        let e = &after["engine"];
        let engine = Some(Engine {
            ticks: delta(&["engine", "ticks"]),
            inputs: delta(&["engine", "inputs"]),
            devices: n(&after["devices"]["known"]),
            tick_us_mean: n(&e["tick_us_mean"]),
            tick_us: serde_json::from_value(e["tick_us"].clone()).unwrap_or_default(),
        });
        let j = &after["journal"];
        let journal = Some(Journal {
            commit_ms: j["commit_ms"].as_u64(),
            fsync_before_ack: true,
            commits: delta(&["journal", "commits"]),
            fsyncs: delta(&["journal", "fsyncs"]),
            fsync_max_us: n(&j["fsync_max_us"]),
            acked_records: delta(&["journal", "acked_records"]),
        });
        let sink_list = |v: &Value| v["sinks"].as_array().cloned().unwrap_or_default();
        let earlier = sink_list(before);
        let sinks = sink_list(after)
            .iter()
            .map(|s| {
                let name = s["name"].as_str().unwrap_or_default().to_owned();
                let was = earlier.iter().find(|e| e["name"] == s["name"]);
                let diff = |key: &str| n(&s[key]).saturating_sub(was.map_or(0, |w| n(&w[key])));
                SinkReport {
                    written: diff("written"),
                    backlog_max: samples
                        .backlog_max
                        .get(&name)
                        .copied()
                        .unwrap_or(0)
                        .max(n(&s["backlog"])),
                    backlog_end: n(&s["backlog"]),
                    failures: diff("failures"),
                    name,
                }
            })
            .collect();
        ServerSide {
            engine,
            journal,
            sinks,
        }
    }
}

/// Waits until every sink of the server reached the journal's end.
async fn wait_caught_up(host: &str, port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < CATCH_UP_TIMEOUT {
        if let Ok(health) = server::health(host, port).await {
            let sinks = health["sinks"].as_array().cloned().unwrap_or_default();
            if sinks.iter().all(|s| s["backlog"].as_u64() == Some(0)) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// What the sampler collected while the load ran.
#[derive(Debug, Default)]
struct Samples {
    /// Seconds since the start, and the server process then.
    proc: Vec<(f64, ProcSample)>,
    backlog_max: BTreeMap<String, u64>,
    server_peak_connected: Option<u64>,
}

/// Samples the server's process and `/health` every second during a run.
struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Samples>,
}

impl Sampler {
    fn start(pid: Option<u32>, ports: &Ports) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (host, http) = (ports.host.clone(), ports.http);
        let task = tokio::spawn(async move {
            let mut samples = Samples::default();
            let start = Instant::now();
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = &mut stopped => return samples,
                }
                if let Some(s) = pid.and_then(server::sample) {
                    samples.proc.push((start.elapsed().as_secs_f64(), s));
                }
                let Some(port) = http else { continue };
                let Ok(health) = server::health(&host, port).await else {
                    continue;
                };
                for sink in health["sinks"].as_array().into_iter().flatten() {
                    let name = sink["name"].as_str().unwrap_or_default().to_owned();
                    let backlog = sink["backlog"].as_u64().unwrap_or(0);
                    let max = samples.backlog_max.entry(name).or_default();
                    *max = (*max).max(backlog);
                }
                if let Some(connected) = health["devices"]["connected"].as_u64() {
                    let peak = samples.server_peak_connected.get_or_insert(0);
                    *peak = (*peak).max(connected);
                }
            }
        });
        Sampler { stop, task }
    }

    async fn stop(self) -> Samples {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn check(line: &str) -> anyhow::Result<Overrides> {
        let cli = Cli::try_parse_from(format!("bench {line}").split_whitespace())?;
        overrides(&cli.bench, &Name::expand(&cli.bench.scenarios))
    }

    #[test]
    fn the_api_scenario_takes_clients_and_a_rate() {
        let o = check("api --devices 5000 --rate 2 --duration 60 --clients 20")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (o.devices, o.rate, o.clients),
            (Some(5000), Some(2.0), Some(20))
        );
        assert_eq!(o.duration, Some(Duration::from_secs(60)));
        assert!(check("all --clients 3").is_ok(), "all includes api");
        let stream_only = check("api --clients 0 --ws-clients 10 --ws-devices 100")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                stream_only.clients,
                stream_only.ws_clients,
                stream_only.ws_devices
            ),
            (Some(0), Some(10), Some(100))
        );
    }

    #[test]
    fn options_that_cannot_apply_are_refused() {
        for line in [
            "steady-1k --clients 5",
            "steady-1k --ws-clients 5",
            "max --ws-devices 5",
            "steady-10k --client-rate 1",
            "api --client-rate -1",
            "api --client-rate 0.0000001",
            "api --clients 0 --ws-clients 0",
            "api --rate 0",
            "api --rate -1",
            "api --duration 0",
            "api --target 127.0.0.1:1,2,3",
            "all --target 127.0.0.1:1,2,3",
        ] {
            assert!(check(line).is_err(), "{line} was accepted");
        }
        assert!(check("steady-1k --target 127.0.0.1:1,2,3 --rate 0.5").is_ok());
    }
}
