//! A private `influxd` (InfluxDB 1.x) for one test.
//!
//! Never the system instance on 8086: each harness writes its own config in a
//! temporary directory (data, WAL and meta inside it) and binds HTTP and the
//! RPC service to free loopback ports. [`Influxd::stop`] and
//! [`Influxd::restart`] keep directories and ports, so a test can simulate an
//! outage and find the data again afterwards.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

/// Where Debian's `influxdb` package installs the server.
const INFLUXD: &str = "/usr/bin/influxd";
/// How long a start may take before the harness gives up (the first start
/// creates the meta store; a busy 2-core machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for a clean exit after SIGTERM before killing.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of each of the harness's own HTTP requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum InfluxdError {
    #[error(
        "influxd not found at {INFLUXD} or on PATH: install Debian's influxdb package \
         (cargo xtask test does it)"
    )]
    Missing,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("influxd did not answer /ping within {timeout:?}; end of its log:\n{log_tail}")]
    NotReady { timeout: Duration, log_tail: String },
    #[error("influxd exited during start ({status}); end of its log:\n{log_tail}")]
    Exited { status: String, log_tail: String },
    #[error("influxd answered HTTP {status} to {request}: {body}")]
    Http {
        request: String,
        status: u16,
        body: String,
    },
    #[error("influxd's answer to {query:?} was not what the harness expected: {detail}")]
    Answer { query: String, detail: String },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> InfluxdError {
    move |source| InfluxdError::Io { what, source }
}

/// A running (or stopped, between [`stop`](Self::stop) and
/// [`restart`](Self::restart)) private InfluxDB server. Killed on drop.
pub struct Influxd {
    /// Holds config, data, WAL, meta and the server's log; deleted on drop.
    dir: tempfile::TempDir,
    program: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl Influxd {
    /// Starts a fresh server and waits until `/ping` answers 204.
    pub fn start() -> Result<Influxd, InfluxdError> {
        Influxd::start_with("")
    }

    /// Like [`start`](Self::start), with `data` appended to the config's
    /// `[data]` section, e.g. `cache-snapshot-write-cold-duration = "1s"`.
    pub fn start_with(data: &str) -> Result<Influxd, InfluxdError> {
        let program = find_influxd()?;
        let dir = tempfile::Builder::new()
            .prefix("drover-influxd-")
            .tempdir()
            .map_err(io("creating the influxd directory"))?;
        let http_port = free_port()?;
        let rpc_port = free_port()?;
        std::fs::write(
            dir.path().join("influxdb.conf"),
            config(dir.path(), http_port, rpc_port, data),
        )
        .map_err(io("writing influxdb.conf"))?;
        let mut influxd = Influxd {
            dir,
            program,
            http_port,
            child: None,
        };
        influxd.spawn()?;
        Ok(influxd)
    }

    /// `http://127.0.0.1:PORT`, the base URL of the v1 HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Where the server keeps its shards (`data`) and write-ahead log (`wal`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running (it is, except between `stop`
    /// and `restart`).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `CREATE DATABASE "name"` (a no-op when it exists).
    pub fn create_database(&self, name: &str) -> Result<(), InfluxdError> {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\\\""));
        self.send(
            "POST",
            &format!("/query?q={}", http::encode_component(&statement)),
        )?;
        Ok(())
    }

    /// Runs InfluxQL `q` against database `db` (times in ms) and returns the
    /// whole JSON answer (`{"results":[...]}`).
    pub fn query(&self, db: &str, q: &str) -> Result<serde_json::Value, InfluxdError> {
        let path = format!(
            "/query?db={}&epoch=ms&q={}",
            http::encode_component(db),
            http::encode_component(q)
        );
        let body = self.send("GET", &path)?;
        serde_json::from_str(&body).map_err(|e| InfluxdError::Answer {
            query: q.to_owned(),
            detail: e.to_string(),
        })
    }

    /// `SELECT COUNT("field") FROM "measurement"` in `db`: how many points of
    /// `measurement` have `field` (0 when the measurement does not exist).
    pub fn count(&self, db: &str, measurement: &str, field: &str) -> Result<u64, InfluxdError> {
        let q = format!("SELECT COUNT(\"{field}\") FROM \"{measurement}\"");
        let answer = self.query(db, &q)?;
        let result = &answer["results"][0];
        if let Some(error) = result["error"].as_str() {
            return Err(InfluxdError::Answer {
                query: q,
                detail: error.to_owned(),
            });
        }
        // No series at all means no point matched.
        let Some(series) = result["series"].get(0) else {
            return Ok(0);
        };
        series["values"][0][1]
            .as_u64()
            .ok_or_else(|| InfluxdError::Answer {
                query: q,
                detail: format!("no count in {series}"),
            })
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits for it.
    /// Data, directories and ports are kept for [`restart`](Self::restart).
    pub fn stop(&mut self) -> Result<(), InfluxdError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if child
                .try_wait()
                .map_err(io("waiting for influxd"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().map_err(io("waiting for influxd"))?;
        Ok(())
    }

    /// Starts the server again on the same directories and ports, after
    /// [`stop`](Self::stop) (or stops it first).
    pub fn restart(&mut self) -> Result<(), InfluxdError> {
        self.stop()?;
        self.spawn()
    }

    /// The server's log so far (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    fn spawn(&mut self) -> Result<(), InfluxdError> {
        // Appending keeps the log of an earlier run for diagnosis after a restart.
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening influxd.log"))?;
        let log_err = log.try_clone().map_err(io("opening influxd.log"))?;
        let child = Command::new(&self.program)
            .arg("run")
            .arg("-config")
            .arg(self.dir.path().join("influxdb.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io("starting influxd"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), InfluxdError> {
        let started = Instant::now();
        loop {
            if let Ok(r) = http::request(self.http_port, "GET", "/ping", REQUEST_TIMEOUT)
                && r.status == 204
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(InfluxdError::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(InfluxdError::NotReady {
                    timeout: START_TIMEOUT,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn send(&self, method: &str, path: &str) -> Result<String, InfluxdError> {
        let response = http::request(self.http_port, method, path, REQUEST_TIMEOUT)
            .map_err(io("sending a request to influxd"))?;
        if !(200..300).contains(&response.status) {
            return Err(InfluxdError::Http {
                request: format!("{method} {path}"),
                status: response.status,
                body: response.body,
            });
        }
        Ok(response.body)
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn find_influxd() -> Result<PathBuf, InfluxdError> {
    if Path::new(INFLUXD).is_file() {
        return Ok(PathBuf::from(INFLUXD));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("influxd"))
        .find(|candidate| candidate.is_file())
        .ok_or(InfluxdError::Missing)
}

/// A loopback port nobody listens on right now. Another process may take it
/// before influxd binds it; on a test machine that is rare enough.
fn free_port() -> Result<u16, InfluxdError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("finding a free port"))
}

/// The whole configuration: everything the server writes stays under `dir`,
/// it listens on loopback only, and the services a test does not use (usage
/// reporting, the `_internal` monitor database, continuous queries, IFQL)
/// are off. Graphite, collectd, OpenTSDB and UDP are off by default.
fn config(dir: &Path, http_port: u16, rpc_port: u16, data: &str) -> String {
    let dir = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
{data}

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false

[ifql]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"#
    )
}
