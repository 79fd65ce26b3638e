//! The named scenarios as data: what load each run puts on the server.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Serialize;

/// Scenario names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// 1,000 devices at 1 msg/s, half GT06, half Teltonika.
    #[value(name = "steady-1k")]
    Steady1k,
    /// 10,000 devices at 1 msg/s, half GT06, half Teltonika.
    #[value(name = "steady-10k")]
    Steady10k,
    /// Closed loop, Teltonika, 1 and 8 records per packet.
    Max,
    /// 100,000 mostly idle connections from 127.0.0.2–127.0.0.9.
    #[value(name = "connections-100k")]
    Connections100k,
    /// 1M devices injected into the engine in process, no sockets.
    #[value(name = "engine-1m")]
    Engine1m,
    /// 10,000 devices at 1 msg/s for 60 s, without and then with 50 HTTP
    /// clients reading the device list and a day of positions and 100
    /// clients of the live stream.
    Api,
    /// Every scenario above, in that order.
    All,
}

impl Name {
    /// `all` expanded, duplicates removed, in the order given.
    pub fn expand(names: &[Name]) -> Vec<Name> {
        let every = [
            Name::Steady1k,
            Name::Steady10k,
            Name::Max,
            Name::Connections100k,
            Name::Engine1m,
            Name::Api,
        ];
        let mut out: Vec<Name> = Vec::new();
        for name in names {
            let items: &[Name] = if *name == Name::All {
                &every
            } else {
                std::slice::from_ref(name)
            };
            for item in items {
                if !out.contains(item) {
                    out.push(*item);
                }
            }
        }
        out
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Steady1k => "steady-1k",
            Name::Steady10k => "steady-10k",
            Name::Max => "max",
            Name::Connections100k => "connections-100k",
            Name::Engine1m => "engine-1m",
            Name::Api => "api",
            Name::All => "all",
        }
    }
}

/// Where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Over TCP to `drover serve` (and to the null server for the ceiling).
    Network,
    /// Straight into an engine in this process.
    Engine,
}

/// One run of a scenario: the simulator's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Short name, used in file names: `steady-1k`, `max-8`.
    pub id: String,
    pub mode: Mode,
    pub devices: u32,
    /// Messages per second per device; ignored in closed loop.
    pub rate: f64,
    /// Each device sends its next packet once the previous one is acked.
    pub closed_loop: bool,
    /// Fraction of the devices speaking Teltonika; the rest speak GT06.
    pub teltonika_share: f64,
    pub records_per_packet: u8,
    /// GT06 devices send a heartbeat (which the server acks) after this many locations.
    pub gt06_heartbeat_every: u32,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    #[serde(serialize_with = "secs")]
    pub ramp: Duration,
    /// Local addresses the connections are spread over.
    pub source_addrs: Vec<IpAddr>,
    /// Whether the run also measures the null server's ceiling.
    pub with_null: bool,
    /// Devices (the fleet's first) whose past day of positions is written
    /// into the history store before the server starts, for the API to read.
    pub history_devices: u32,
    /// Clients of the API during the run; `None`: no API load.
    pub api: Option<ApiLoad>,
}

/// Clients of the API alongside the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ApiLoad {
    /// Concurrent keep-alive HTTP clients.
    pub clients: u32,
    /// Requests per second of each HTTP client; 0: closed loop, each
    /// sending its next request as soon as the previous one is answered.
    pub client_rate: f64,
    /// Clients of the live stream (`GET /api/v1/stream`).
    pub ws_clients: u32,
    /// Devices each stream client subscribes to (the fleet's first, and the
    /// lag probe); 0: no subscription, the whole fleet.
    pub ws_devices: u32,
}

impl ApiLoad {
    /// The issue's load: 50 readers, the stream fanned out to 100 clients.
    const ISSUE: ApiLoad = ApiLoad {
        clients: 50,
        client_rate: 0.0,
        ws_clients: 100,
        ws_devices: 0,
    };
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Run {
    fn network(id: &str, devices: u32, duration_s: u64, ramp_s: u64) -> Run {
        Run {
            id: id.to_owned(),
            mode: Mode::Network,
            devices,
            rate: 1.0,
            closed_loop: false,
            teltonika_share: 0.5,
            records_per_packet: 1,
            gt06_heartbeat_every: 10,
            duration: Duration::from_secs(duration_s),
            ramp: Duration::from_secs(ramp_s),
            source_addrs: Vec::new(),
            with_null: true,
            history_devices: 0,
            api: None,
        }
    }

    /// One line saying what the run does.
    pub fn describe(&self) -> String {
        let load = if self.closed_loop {
            "closed loop".to_owned()
        } else {
            format!("{} msg/s each", self.rate)
        };
        let mix = match self.teltonika_share {
            s if s >= 1.0 => "Teltonika".to_owned(),
            s if s <= 0.0 => "GT06".to_owned(),
            s => format!("{:.0}% Teltonika, the rest GT06", s * 100.0),
        };
        let place = match (self.mode, self.api) {
            (Mode::Network, None) => "over TCP".to_owned(),
            (Mode::Network, Some(api)) => format!(
                "over TCP, {} HTTP clients reading the API ({}), {} clients of the live stream",
                api.clients,
                if api.client_rate > 0.0 {
                    format!("{} requests/s each", api.client_rate)
                } else {
                    "closed loop".to_owned()
                },
                api.ws_clients
            ),
            (Mode::Engine, _) => "into the engine in process".to_owned(),
        };
        format!(
            "{} devices, {load}, {mix}, {} record(s) per Teltonika packet, {:.0} s ({:.0} s ramp), {place}",
            self.devices,
            self.records_per_packet,
            self.duration.as_secs_f64(),
            self.ramp.as_secs_f64(),
        )
    }
}

/// Sizes from the command line that shrink a scenario (smoke tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub devices: Option<u32>,
    pub duration: Option<Duration>,
    /// Messages per second per device, for runs that are not closed loop.
    pub rate: Option<f64>,
    /// HTTP clients of the runs that use the API.
    pub clients: Option<u32>,
    /// Requests per second of each of those clients; 0: closed loop.
    pub client_rate: Option<f64>,
    /// Live stream clients of the runs that use the API.
    pub ws_clients: Option<u32>,
    /// Devices each live stream client subscribes to.
    pub ws_devices: Option<u32>,
    pub no_null: bool,
}

/// The runs of scenario `name` at the issue's sizes, then `overrides`.
pub fn runs(name: Name, overrides: Overrides) -> Vec<Run> {
    let mut runs = match name {
        Name::Steady1k => vec![Run::network("steady-1k", 1_000, 30, 5)],
        Name::Steady10k => vec![Run::network("steady-10k", 10_000, 30, 10)],
        Name::Max => [1u8, 8]
            .iter()
            .map(|&records| Run {
                closed_loop: true,
                teltonika_share: 1.0,
                records_per_packet: records,
                ..Run::network(&format!("max-{records}"), 1_000, 20, 2)
            })
            .collect(),
        Name::Connections100k => vec![Run {
            // One position per device every 50 s, acked by the heartbeat
            // after it: mostly idle, yet every connection proves alive.
            rate: 0.02,
            gt06_heartbeat_every: 1,
            source_addrs: (2..=9)
                .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .collect(),
            // The ceiling is about throughput; this run is about memory.
            with_null: false,
            ..Run::network("connections-100k", 100_000, 90, 60)
        }],
        Name::Engine1m => vec![Run {
            mode: Mode::Engine,
            closed_loop: true,
            with_null: false,
            ..Run::network("engine-1m", 1_000_000, 20, 0)
        }],
        Name::Api => api_runs(),
        Name::All => Vec::new(),
    };
    for run in &mut runs {
        if let Some(devices) = overrides.devices {
            run.devices = devices.max(1);
            run.history_devices = run.history_devices.min(run.devices);
        }
        if let Some(duration) = overrides.duration {
            run.duration = duration;
            // Keep the ramp a part of the run, not all of it.
            run.ramp = run.ramp.min(duration / 3);
        }
        if let Some(rate) = overrides.rate.filter(|_| !run.closed_loop) {
            run.rate = rate;
        }
        if let Some(api) = run.api.as_mut() {
            api.clients = overrides.clients.unwrap_or(api.clients);
            api.client_rate = overrides.client_rate.unwrap_or(api.client_rate);
            api.ws_clients = overrides.ws_clients.unwrap_or(api.ws_clients);
            api.ws_devices = overrides.ws_devices.unwrap_or(api.ws_devices);
        }
        if overrides.no_null {
            run.with_null = false;
        }
    }
    runs
}

/// The same fleet twice, the same history written before each: without API
/// load (the baseline), then with it. The ceiling is no question here.
fn api_runs() -> Vec<Run> {
    let fleet = |id: &str, api| Run {
        with_null: false,
        history_devices: API_HISTORY_DEVICES,
        api,
        ..Run::network(id, 10_000, 60, 10)
    };
    vec![
        fleet("api-baseline", None),
        fleet("api-load", Some(ApiLoad::ISSUE)),
    ]
}

/// Devices with a day of history in the `api` scenario: the position
/// readers spread over them, so that reads do not all hit one device's keys.
const API_HISTORY_DEVICES: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_expands_once_in_order() {
        let names = Name::expand(&[Name::Max, Name::All]);
        assert_eq!(
            names,
            vec![
                Name::Max,
                Name::Steady1k,
                Name::Steady10k,
                Name::Connections100k,
                Name::Engine1m,
                Name::Api
            ]
        );
    }

    #[test]
    fn the_api_load_is_the_only_difference_from_its_baseline() {
        let runs = runs(Name::Api, Overrides::default());
        let [baseline, loaded] = runs.as_slice() else {
            panic!("two runs: {runs:?}")
        };
        assert_eq!(baseline.api, None);
        assert_eq!(loaded.api, Some(ApiLoad::ISSUE));
        let same = Run {
            id: loaded.id.clone(),
            api: loaded.api,
            ..baseline.clone()
        };
        assert_eq!(&same, loaded);
        assert!(baseline.history_devices > 0 && !baseline.with_null);
    }

    #[test]
    fn clients_change_api_runs_and_rates_change_paced_runs_only() {
        let overrides = Overrides {
            rate: Some(2.0),
            clients: Some(7),
            ws_devices: Some(3),
            ..Overrides::default()
        };
        let api = runs(Name::Api, overrides);
        let expected = ApiLoad {
            clients: 7,
            ws_devices: 3,
            ..ApiLoad::ISSUE
        };
        assert_eq!(api[1].api, Some(expected));
        assert!(api.iter().all(|r| r.rate == 2.0));
        let steady = runs(Name::Steady1k, overrides);
        assert_eq!((steady[0].api, steady[0].rate), (None, 2.0));
        let max = runs(Name::Max, overrides);
        assert!(max.iter().all(|r| r.closed_loop && r.rate == 1.0));
    }

    #[test]
    fn overrides_shrink_and_keep_the_ramp_inside_the_run() {
        let overrides = Overrides {
            devices: Some(20),
            duration: Some(Duration::from_secs(3)),
            no_null: true,
            ..Overrides::default()
        };
        let runs = runs(Name::Max, overrides);
        assert_eq!(runs.len(), 2);
        assert!(
            runs.iter()
                .all(|r| r.devices == 20 && r.ramp == Duration::from_secs(1))
        );
        assert!(runs.iter().all(|r| !r.with_null));
        assert_eq!(runs[1].records_per_packet, 8);
    }
}
