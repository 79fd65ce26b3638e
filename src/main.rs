//! `drover`: the command line. Parses arguments and configuration, wires the
//! crates together (see `node.rs`) and runs them; no domain logic lives here.

mod config;
mod http;
mod node;
mod pipeline;
mod sinks;
mod storage;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use drover_sim::{SimArgs, SimConfig};
use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::node::Node;

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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("drover-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Sim(command) => sim(*command).await,
            Command::Demo(args) => demo(args).await,
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

async fn serve(args: ConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let node = Node::start(&config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await
}

async fn sim(command: SimCommand) -> anyhow::Result<()> {
    let sim = SimConfig::try_from(command.args)?;
    if command.in_process {
        let config = Config::load(command.config.config.as_deref(), &command.config.overrides)?;
        let report = tokio::task::spawn_blocking(move || engine_load(&config, &sim)).await??;
        println!("{report}");
        return Ok(());
    }
    let report = drover_sim::run(sim).await?;
    println!("{report}");
    Ok(())
}

/// Feeds simulated records into an engine without sockets, blocking on its
/// bounded inbox, and reports the rate and the engine's tick times.
fn engine_load(config: &Config, sim: &SimConfig) -> anyhow::Result<String> {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    let engine = node::start_engine(config)?;
    let inbox = engine.inbox.clone();
    let deltas = engine.deltas.clone();
    // Deltas must be drained or the engine stops ticking.
    let drain = std::thread::spawn(move || while deltas.recv().is_ok() {});
    let report = drover_sim::run_in_process(sim, |batch| {
        batch.into_iter().all(|m| {
            inbox
                .send(drover_engine::Input::Record(Arc::new(m)))
                .is_ok()
        })
    })?;
    drop(inbox);
    drop(engine.inbox);
    drop(engine.deltas);
    let _ = engine.thread.join();
    let _ = drain.join();
    let s = &engine.stats;
    let ticks = s.ticks.load(Relaxed).max(1);
    Ok(format!(
        "{report}\n  engine: {} ticks, {} inputs, {} devices, tick mean {} µs, max {} µs",
        ticks,
        s.inputs.load(Relaxed),
        s.devices.load(Relaxed),
        s.tick_ns_total.load(Relaxed) / ticks / 1000,
        s.tick_ns_max.load(Relaxed) / 1000,
    ))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.config.as_deref(), &args.config.overrides)?;
    let node = Node::start(&config).await?;
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
    tokio::select! {
        report = drover_sim::run(sim) => {
            println!("{}", report?);
            println!("The simulated fleet has parked; the server keeps running. Press Ctrl-C to stop.");
            shutdown_signal().await;
        }
        () = shutdown_signal() => {}
    }
    tracing::info!("shutting down");
    node.shutdown().await
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
    println!(
        "  MQTT       {broker}: mosquitto_sub -h 127.0.0.1 -p {} -t '{prefix}/#' -v",
        broker.rsplit(':').next().unwrap_or("1883")
    );
    if let Some(http) = &node.http {
        println!("  devices    http://{}/api/v1/devices", http.addr);
        println!("  health     http://{}/health", http.addr);
    }
    println!("Press Ctrl-C to stop.");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
