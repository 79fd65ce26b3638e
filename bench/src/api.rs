//! Readers of the HTTP API while the fleet reports (the `api` scenario):
//! keep-alive HTTP/1.1 clients, each alternating the two reads an
//! operator's screen makes — a page of the device list and one device's
//! last day of positions — as fast as they are answered or at a set pace,
//! timing each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::report::{HttpReport, RouteReport};

/// The bound for both reads' p99 on the 2-core machine.
pub const TARGET_P99: Duration = Duration::from_millis(50);
/// A request unanswered this long counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest latency recorded; longer ones are recorded as this.
const HIGHEST_US: u64 = 60_000_000;

/// The reads each client alternates, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    DeviceList,
    Positions,
}

impl Read {
    const ALL: [Read; 2] = [Read::DeviceList, Read::Positions];

    fn route(self) -> &'static str {
        match self {
            Read::DeviceList => "GET /api/v1/devices?limit=100",
            Read::Positions => "GET /api/v1/devices/{id}/positions",
        }
    }

    /// The URL, with the API's default range (the last day) and page size.
    fn url(self, base: &str, device: &str) -> String {
        match self {
            Read::DeviceList => format!("{base}/api/v1/devices?limit=100"),
            Read::Positions => format!("{base}/api/v1/devices/{device}/positions"),
        }
    }
}

/// What the readers do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `http://host:port`.
    pub base: String,
    pub token: String,
    pub clients: u32,
    /// Devices whose positions are read: client `i` reads `devices[i % len]`.
    pub devices: Vec<String>,
    /// The fleet's ramp: the readers start once every device is connected.
    pub start_after: Duration,
    /// How long they read.
    pub length: Duration,
    /// Each client's time between two requests; `None`: the next as soon
    /// as the previous one is answered (closed loop).
    pub every: Option<Duration>,
}

/// Logs in as `admin` and returns the bearer token.
pub async fn login(base: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({ "username": "admin", "password": password });
    let response = client()?
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .context("POST /api/v1/auth/login")?;
    let status = response.status();
    let body = response.bytes().await.context("reading the login answer")?;
    anyhow::ensure!(
        status.is_success(),
        "login as admin refused ({status}): {}",
        String::from_utf8_lossy(&body)
    );
    let answer: Value = serde_json::from_slice(&body).context("login answer is not JSON")?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .context("login answer has no token")
}

/// Runs the readers of `plan` to the end of its window.
pub async fn read(plan: Plan) -> anyhow::Result<HttpReport> {
    anyhow::ensure!(!plan.devices.is_empty(), "no device to read positions of");
    tokio::time::sleep(plan.start_after).await;
    let started = Instant::now();
    let deadline = started + plan.length;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..plan.clients {
        let urls = Read::ALL.map(|read| {
            let device = &plan.devices[i as usize % plan.devices.len()];
            (read, read.url(&plan.base, device))
        });
        // Paced clients spread their requests over the interval, not in step.
        let pace = plan.every.map(|every| Pace {
            first: started + every.mul_f64(f64::from(i) / f64::from(plan.clients)),
            every,
        });
        let (http, token) = (client()?, plan.token.clone());
        tasks.spawn(async move { reader(http, urls, token, pace, deadline).await });
    }
    let mut total = Tally::new()?;
    while let Some(tally) = tasks.join_next().await {
        total.add(tally.context("an API reader panicked")??)?;
    }
    let window_s = started.elapsed().as_secs_f64();
    let rate = plan.every.map_or(0.0, |every| 1.0 / every.as_secs_f64());
    Ok(total.report(plan.clients, rate, window_s))
}

/// One keep-alive connection: a client with a pool of one.
fn client() -> anyhow::Result<reqwest::Client> {
    // No proxy: the server is on loopback, whatever HTTP_PROXY says.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        .build()
        .context("building an HTTP client")
}

/// When a paced client's requests are due.
#[derive(Debug, Clone, Copy)]
struct Pace {
    first: Instant,
    every: Duration,
}

impl Pace {
    fn due(&self, n: usize) -> Instant {
        self.first + self.every.mul_f64(n as f64)
    }
}

/// One client's loop: the next read as soon as the previous one is
/// answered, or when it is due. A paced request is timed from when it was
/// due, so that a slow answer that delays the next ones counts against
/// them too, rather than vanishing from the figures (coordinated omission).
async fn reader(
    http: reqwest::Client,
    urls: [(Read, String); 2],
    token: String,
    pace: Option<Pace>,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    for (n, (read, url)) in urls.iter().cycle().enumerate() {
        let due = pace.map_or_else(Instant::now, |p| p.due(n));
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let outcome = get(&http, url, &token).await;
        tally.record(*read, due.elapsed(), outcome);
    }
    Ok(tally)
}

/// GET `url`: the body's length, or what went wrong as an error key.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<usize, String> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| failure(&e))?;
    let status = response.status();
    // The whole body, so that the time covers the answer, not its headers.
    let body = response.bytes().await.map_err(|e| failure(&e))?;
    if status.is_success() {
        Ok(body.len())
    } else {
        Err(status.as_u16().to_string())
    }
}

fn failure(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    kind.to_owned()
}

/// What one or more clients saw, per read.
struct Tally {
    routes: [RouteTally; 2],
}

struct RouteTally {
    /// Latency of 2xx answers, µs.
    latency_us: Histogram<u64>,
    body_bytes: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        let route = || -> anyhow::Result<RouteTally> {
            Ok(RouteTally {
                latency_us: Histogram::new_with_bounds(1, HIGHEST_US, 3)?,
                body_bytes: 0,
                errors: BTreeMap::new(),
            })
        };
        Ok(Tally {
            routes: [route()?, route()?],
        })
    }

    fn route(&mut self, read: Read) -> &mut RouteTally {
        &mut self.routes[read as usize]
    }

    fn record(&mut self, read: Read, took: Duration, outcome: Result<usize, String>) {
        let route = self.route(read);
        match outcome {
            Ok(bytes) => {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                route.latency_us.saturating_record(us.clamp(1, HIGHEST_US));
                route.body_bytes += bytes as u64;
            }
            Err(kind) => *route.errors.entry(kind).or_default() += 1,
        }
    }

    fn add(&mut self, other: Tally) -> anyhow::Result<()> {
        for (mine, theirs) in self.routes.iter_mut().zip(other.routes) {
            mine.latency_us.add(&theirs.latency_us)?;
            mine.body_bytes += theirs.body_bytes;
            for (kind, n) in theirs.errors {
                *mine.errors.entry(kind).or_default() += n;
            }
        }
        Ok(())
    }

    fn report(self, clients: u32, client_rate: f64, window_s: f64) -> HttpReport {
        let target_us = u64::try_from(TARGET_P99.as_micros()).unwrap_or(u64::MAX);
        let routes = Read::ALL
            .iter()
            .zip(self.routes)
            .map(|(read, t)| {
                RouteReport::new(
                    read.route(),
                    &t.latency_us,
                    t.body_bytes,
                    t.errors,
                    window_s,
                    target_us,
                )
            })
            .collect();
        HttpReport {
            clients,
            client_rate,
            window_s,
            routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_use_the_default_range_and_page() {
        let base = "http://127.0.0.1:8080";
        assert_eq!(
            Read::DeviceList.url(base, "350000000000000"),
            "http://127.0.0.1:8080/api/v1/devices?limit=100"
        );
        assert_eq!(
            Read::Positions.url(base, "350000000000000"),
            "http://127.0.0.1:8080/api/v1/devices/350000000000000/positions"
        );
    }

    #[test]
    fn paced_requests_are_due_on_a_fixed_grid() {
        let first = Instant::now();
        let pace = Pace {
            first,
            every: Duration::from_millis(250),
        };
        assert_eq!(pace.due(0), first);
        assert_eq!(pace.due(4), first + Duration::from_secs(1));
    }

    #[test]
    fn tallies_of_several_clients_add_up_per_route() {
        let ms = Duration::from_millis;
        let mut a = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        a.record(Read::DeviceList, ms(2), Ok(100));
        a.record(Read::Positions, ms(30), Ok(5_000));
        a.record(Read::Positions, ms(1), Err("503".to_owned()));
        let mut b = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        b.record(Read::DeviceList, ms(4), Ok(300));
        b.record(Read::DeviceList, ms(10_000), Err("timeout".to_owned()));
        b.record(Read::Positions, ms(2), Err("503".to_owned()));
        a.add(b).unwrap_or_else(|e| panic!("{e}"));
        let report = a.report(2, 0.0, 1.0);
        let [list, positions] = report.routes.as_slice() else {
            panic!("two routes: {report:?}")
        };
        assert_eq!(list.route, Read::DeviceList.route());
        assert_eq!((list.requests, list.ok, list.body_bytes_mean), (3, 2, 200));
        assert_eq!(list.errors, BTreeMap::from([("timeout".to_owned(), 1)]));
        assert_eq!((positions.requests, positions.ok), (3, 1));
        assert_eq!(positions.errors, BTreeMap::from([("503".to_owned(), 2)]));
        assert!(
            positions.latency_us.p50.abs_diff(30_000) <= 30,
            "{positions:?}"
        );
    }
}
