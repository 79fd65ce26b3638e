//! The command line: parses arguments and configuration and runs a node
//! (`drover-node`), the simulator (`drover-sim`) or the load benchmarks
//! (`drover-bench`); no domain logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use drover_sim::{SimArgs, SimConfig};
use tracing_subscriber::EnvFilter;

use drover_bench as bench;
use drover_engine::Plugin;
use drover_node::node::{run_until_stopped, shutdown_signal};
use drover_node::{Config, Node, rlimit};

/// Drover: a fleet telematics server. GPS trackers and OBD dongles connect
/// over TCP; their data is decoded, kept live in an ECS world and published
/// on MQTT.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Drive virtual trackers against a server over TCP and report what it did.
    Sim(Box<SimCommand>),
    /// Run the server with embedded defaults and a simulated fleet in one process.
    Demo(DemoArgs),
    /// Run named load scenarios end to end and write reports (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// Replay a stopped node's journal (or a scenario file) through a fresh
    /// engine, printing every trip, stop and alert change as a JSON line
    /// (the same every time).
    Replay(ReplayArgs),
    /// Frame and ack tracker traffic without decoding or storing it: the
    /// machine's ceiling, started by `drover bench`.
    #[command(hide = true)]
    NullServer(NullServerArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The journal directory of a stopped node (default: `data_dir/journal`).
    #[arg(long, conflicts_with = "scenario")]
    journal: Option<PathBuf>,
    /// A catalog directory whose geofences and speed limits apply (default: none).
    #[arg(long, conflicts_with = "scenario")]
    catalog: Option<PathBuf>,
    /// A scenario file (`drover sim --scenario`): its records, with its geofences.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Clock to run on after the last record, in seconds, so that silences
    /// end trips and make devices offline.
    #[arg(long, default_value_t = 0)]
    flush_secs: u64,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args)]
struct NullServerArgs {
    #[arg(long, default_value = "127.0.0.1:25023")]
    gt06: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:25027")]
    teltonika: SocketAddr,
    /// Seconds after which it stops by itself.
    #[arg(long, default_value_t = 600)]
    lifetime: u64,
}

#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override one setting, e.g. `--set devices.gt06.listen=127.0.0.1:6023`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Args)]
struct SimCommand {
    #[command(flatten)]
    args: SimArgs,
    /// Skip the network: feed the simulated records straight into an engine in
    /// this process (engine-only load; network options are ignored).
    #[arg(long)]
    in_process: bool,
    /// Write a scenario file instead of driving a fleet: each of `--devices`
    /// vehicles drives, speeds through a geofence, has its fuel siphoned
    /// during a stop and drives again (for `drover replay --scenario`).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// When the scenario's day starts (RFC 3339).
    #[arg(long, default_value = "2026-01-05T08:00:00Z", requires = "scenario")]
    scenario_start: String,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Messages per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// How long the simulated fleet drives, in seconds.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
}

/// Runs the command line with `plugins` in the engine of every node it starts.
pub(crate) fn main(plugins: Plugins) -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("drover-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args, plugins).await,
            Command::Sim(command) => sim(*command).await,
            Command::Demo(args) => demo(args, plugins).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Replay(args) => replay(args),
            Command::NullServer(args) => null_server(args).await,
        }
    })
}

/// rumqttd logs every client disconnect as an error; its real failures (a
/// taken port) are caught and reported by `drover-mqtt` before it starts.
const DEFAULT_LOG: &str = "info,rumqttd=off,rumqttc=warn,fjall=warn,lsm_tree=warn";

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The plugins of an [`crate::App`].
pub(crate) type Plugins = Vec<Box<dyn Plugin>>;

async fn start(config: &Config, plugins: Plugins) -> anyhow::Result<Node> {
    Node::start_with(config, |engine| {
        for plugin in &plugins {
            engine.add_plugin(plugin.as_ref());
        }
    })
    .await
}

async fn serve(args: ConfigArgs, plugins: Plugins) -> anyhow::Result<()> {
    // Every tracker connection is a descriptor: the default soft limit is
    // far below a fleet.
    rlimit::raise_and_log();
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let node = start(&config, plugins).await?;
    run_until_stopped(node).await
}

async fn sim(command: SimCommand) -> anyhow::Result<()> {
    if let Some(path) = &command.scenario {
        return write_scenario(path, &command.scenario_start, command.args.devices);
    }
    let sim = SimConfig::try_from(command.args)?;
    if command.in_process {
        let config = Config::load(command.config.config.as_deref(), &command.config.overrides)?;
        let report =
            tokio::task::spawn_blocking(move || bench::engine::engine_load(&config, &sim, 0))
                .await??;
        println!("{report}");
        return Ok(());
    }
    rlimit::raise_and_log();
    let report = drover_sim::run(sim).await?;
    println!("{report}");
    Ok(())
}

/// IMEIs of scenario vehicles start here.
const SCENARIO_FIRST_IMEI: u64 = 356_307_042_440_001;

fn write_scenario(path: &std::path::Path, start: &str, vehicles: u32) -> anyhow::Result<()> {
    let start = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--scenario-start {start:?} is not an RFC 3339 time"))?;
    let start_ms = i64::try_from(start.unix_timestamp_nanos() / 1_000_000)
        .context("--scenario-start is out of range")?;
    let scenario = drover_sim::scenario::build(vehicles, SCENARIO_FIRST_IMEI, start_ms);
    drover_sim::scenario::write(path, &scenario)?;
    eprintln!(
        "wrote {} records of {vehicles} vehicles and {} geofences to {}",
        scenario.records.len(),
        scenario.geofences.len(),
        path.display()
    );
    Ok(())
}

fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.config.as_deref(), &args.config.overrides)?;
    let flush_ms = i64::try_from(args.flush_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let replayed = if let Some(path) = &args.scenario {
        let scenario = drover_sim::scenario::read(path)
            .with_context(|| format!("reading the scenario {}", path.display()))?;
        let fences = bench::engine::fence_specs(&scenario.geofences);
        drover_node::replay::replay_records(scenario.records, fences, &config, flush_ms, &mut out)?
    } else {
        let journal = args
            .journal
            .unwrap_or_else(|| config.data_dir.join("journal"));
        drover_node::replay::replay(
            &journal,
            &config,
            args.catalog.as_deref(),
            flush_ms,
            &mut out,
        )?
    };
    std::io::Write::flush(&mut out)?;
    eprintln!(
        "replayed {} records: {} trip, stop and alert changes",
        replayed.records, replayed.lines
    );
    Ok(())
}

async fn null_server(args: NullServerArgs) -> anyhow::Result<()> {
    rlimit::raise_and_log();
    let server = drover_sim::NullServer::start(args.gt06, args.teltonika)
        .await
        .context("starting the null server")?;
    tokio::select! {
        () = shutdown_signal() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(args.lifetime)) => {
            tracing::warn!("null server: lifetime over, stopping");
        }
    }
    let counts = server.stop().await;
    println!("{}", serde_json::to_string(&counts)?);
    Ok(())
}

async fn demo(args: DemoArgs, plugins: Plugins) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.config.as_deref(), &args.config.overrides)?;
    // The whole simulated fleet connects from 127.0.0.1, with IMEIs
    // nobody registered.
    config.devices.max_connections_per_ip = 0;
    config.devices.register_unknown = true;
    let node = start(&config, plugins).await?;
    let port = |p: &str| node.addr(p).map(|a| a.port()).unwrap_or_default();
    let sim = SimConfig {
        target: "127.0.0.1".to_owned(),
        gt06_port: port("gt06"),
        teltonika_port: port("teltonika"),
        devices: args.devices,
        rate: args.rate,
        duration: std::time::Duration::from_secs_f64(args.duration.max(0.0)),
        mqtt: None,
        progress: false,
        ..SimConfig::default()
    };
    print_where_to_look(&config, &node, args.devices);
    tokio::spawn(async move {
        match drover_sim::run(sim).await {
            Ok(report) => {
                println!("{report}");
                println!(
                    "The simulated fleet has parked; the server keeps running. Press Ctrl-C to stop."
                );
            }
            Err(error) => tracing::error!(%error, "the simulated fleet stopped"),
        }
    });
    run_until_stopped(node).await
}

fn print_where_to_look(config: &Config, node: &Node, devices: u32) {
    let prefix = &config.mqtt.topic_prefix;
    let broker = if config.mqtt.url.is_empty() {
        config.mqtt.embedded_listen.clone()
    } else {
        config.mqtt.url.clone()
    };
    println!("Drover demo: {devices} simulated trackers are driving.");
    for l in &node.listeners {
        println!("  {:<10} trackers connect to {}", l.protocol, l.addr);
    }
    let user = config.mqtt.username.as_deref().unwrap_or("drover");
    let password = match config.mqtt.password.as_deref() {
        Some(p) if !p.is_empty() => "'<mqtt.password>'".to_owned(),
        _ => format!(
            "\"$(cat {})\"",
            drover_mqtt::credentials::password_file(&config.data_dir).display()
        ),
    };
    println!(
        "  MQTT       {broker}: mosquitto_sub -h 127.0.0.1 -p {} -u {user} -P {password} -t '{prefix}/#' -v",
        broker.rsplit(':').next().unwrap_or("1883")
    );
    if let Some(http) = &node.http {
        if config.http.dashboard {
            println!(
                "  dashboard  http://{}/ (user admin){}",
                http.addr,
                if drover_web_embed::is_built() {
                    ""
                } else {
                    " — not built into this binary: run `cargo xtask demo`"
                }
            );
        }
        println!("  API docs   http://{}/api/docs", http.addr);
        println!(
            "  log in     curl -s http://{}/api/v1/auth/login -H 'content-type: application/json' \\\n             -d '{{\"username\":\"admin\",\"password\":\"…\"}}'  (the password printed on first start, or auth.admin_password)",
            http.addr
        );
        println!(
            "  devices    http://{}/api/v1/devices (Authorization: Bearer <token>)",
            http.addr
        );
        println!("  health     http://{}/health", http.addr);
    }
    println!("Press Ctrl-C to stop.");
}
