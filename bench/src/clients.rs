//! The API's clients during a run of the `api` scenario, started together
//! before the fleet and joined after it into one [`ApiReport`]: the HTTP
//! readers (`api.rs`), the probe tracker (`probe.rs`) and the live
//! stream's clients (`stream.rs`). All of them wait out the fleet's ramp,
//! so that they meet the whole fleet, and stop at the end of its run.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use drover_sim::SimConfig;
use tokio::task::JoinHandle;

use crate::report::{ApiReport, HttpReport, StreamReport};
use crate::scenario::{ApiLoad, Run};
use crate::server::Ports;
use crate::{api, probe, stream};

type Task<T> = JoinHandle<anyhow::Result<T>>;

/// The running clients.
pub struct Clients {
    http: Option<Task<HttpReport>>,
    /// The probe tracker and the stream's clients.
    stream: Option<(Task<u64>, Task<StreamReport>)>,
}

impl Clients {
    /// Logs in as `admin` with `password` and starts `load` against the
    /// server at `ports`, driven by `fleet` as `run` says.
    pub async fn start(
        run: &Run,
        load: ApiLoad,
        fleet: &SimConfig,
        ports: &Ports,
        password: &str,
    ) -> anyhow::Result<Clients> {
        let http = ports
            .http
            .context("the API's clients need the server's HTTP port")?;
        let authority = format!("{}:{http}", ports.host);
        let token = api::login(&format!("http://{authority}"), password).await?;
        let (start_after, length) = (run.ramp, run.duration.saturating_sub(run.ramp));
        let readers = (load.clients > 0).then(|| {
            tokio::spawn(api::read(api::Plan {
                base: format!("http://{authority}"),
                token: token.clone(),
                clients: load.clients,
                // The devices with a day of history, or the fleet's first.
                devices: ids(fleet, run.history_devices.max(1)),
                start_after,
                length,
                every: (load.client_rate > 0.0)
                    .then(|| Duration::try_from_secs_f64(1.0 / load.client_rate).ok())
                    .flatten(),
            }))
        });
        let stream = match load.ws_clients {
            0 => None,
            clients => {
                // The device after the fleet: not one the simulator drives.
                let probe = fleet.imei(fleet.devices).to_string();
                let teltonika = SocketAddr::new(ports.host.parse()?, ports.teltonika);
                let subscribe = (load.ws_devices > 0).then(|| {
                    let mut devices = ids(fleet, load.ws_devices.min(fleet.devices));
                    devices.push(probe.clone());
                    devices
                });
                let watch = tokio::spawn(stream::watch(stream::Plan {
                    base: format!("ws://{authority}"),
                    token,
                    clients,
                    subscribe,
                    probe: probe.clone(),
                    start_after,
                    length,
                }));
                let probe = tokio::spawn(probe::run(teltonika, probe, start_after, length));
                Some((probe, watch))
            }
        };
        Ok(Clients {
            http: readers,
            stream,
        })
    }

    /// Waits for every client to end and reports what they saw.
    pub async fn join(self) -> anyhow::Result<ApiReport> {
        let http = match self.http {
            Some(task) => Some(task.await.context("the HTTP readers panicked")??),
            None => None,
        };
        let stream = match self.stream {
            Some((probe, watch)) => {
                let mut report = watch.await.context("the stream's clients panicked")??;
                report.probe_sent = probe.await.context("the probe tracker panicked")??;
                Some(report)
            }
            None => None,
        };
        Ok(ApiReport { http, stream })
    }
}

/// The ids of the fleet's first `n` devices.
fn ids(fleet: &SimConfig, n: u32) -> Vec<String> {
    (0..n).map(|i| fleet.imei(i).to_string()).collect()
}
