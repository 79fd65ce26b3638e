//! The server under load: a `drover serve` (or the null server) started from
//! this very binary on free loopback ports with a temporary data directory,
//! or one given by `--target`; its CPU and memory from /proc and its
//! `/health`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

/// How long a spawned server gets to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a spawned server gets to stop after SIGINT before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts on fresh ports after a port was taken by someone else.
const PORT_ATTEMPTS: u32 = 3;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ports {
    pub host: String,
    pub gt06: u16,
    pub teltonika: u16,
    /// `/health`; `None` for the null server or a target without it.
    pub http: Option<u16>,
    /// The MQTT broker the server publishes to; `None`: not watched.
    pub mqtt: Option<u16>,
}

impl Ports {
    /// Four distinct ports free now (each held until all are found).
    fn free() -> anyhow::Result<Ports> {
        let held = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let port = |i: usize| -> anyhow::Result<u16> { Ok(held[i].local_addr()?.port()) };
        Ok(Ports {
            host: "127.0.0.1".to_owned(),
            gt06: port(0)?,
            teltonika: port(1)?,
            http: Some(port(2)?),
            mqtt: Some(port(3)?),
        })
    }

    /// `HOST:GT06,TELTONIKA[,HTTP[,MQTT]]`, e.g. `127.0.0.1:5023,5027,8080,1883`.
    pub fn parse(s: &str) -> anyhow::Result<Ports> {
        let (host, ports) = s
            .rsplit_once(':')
            .context("--target: expected HOST:GT06,TELTONIKA[,HTTP[,MQTT]]")?;
        let ports: Vec<u16> = ports
            .split(',')
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .context("--target: ports must be numbers")?;
        let [gt06, teltonika, rest @ ..] = ports.as_slice() else {
            bail!("--target: give at least the GT06 and Teltonika ports");
        };
        Ok(Ports {
            host: host.trim_matches(['[', ']']).to_owned(),
            gt06: *gt06,
            teltonika: *teltonika,
            http: rest.first().copied(),
            mqtt: rest.get(1).copied(),
        })
    }
}

/// A server process this harness started; stopped (SIGINT, then SIGKILL)
/// and its data removed when dropped.
pub struct Spawned {
    child: Child,
    pub pid: u32,
    pub ports: Ports,
    data_dir: Option<PathBuf>,
}

/// A data directory under `work` for run `id` that no other harness uses.
pub fn fresh_data_dir(work: &Path, id: &str) -> PathBuf {
    work.join(format!("data-{id}-{}", std::process::id()))
}

impl Spawned {
    /// `drover serve` with its data in `data_dir` (see [`fresh_data_dir`]),
    /// removed when it stops.
    pub async fn serve(
        data_dir: PathBuf,
        log: &Path,
        settings: &[String],
    ) -> anyhow::Result<Spawned> {
        let exe = std::env::current_exe().context("finding this binary")?;
        Self::start_on_free_ports(log, Some(data_dir.clone()), |ports| {
            let http = ports.http.unwrap_or_default();
            let mqtt = ports.mqtt.unwrap_or_default();
            let mut command = Command::new(&exe);
            command.arg("serve");
            let mut set = |kv: String| {
                command.args(["--set", &kv]);
            };
            set(format!("data_dir={}", data_dir.display()));
            set(format!("devices.gt06.listen=127.0.0.1:{}", ports.gt06));
            set(format!(
                "devices.teltonika.listen=127.0.0.1:{}",
                ports.teltonika
            ));
            set(format!("http.listen=127.0.0.1:{http}"));
            set(format!("mqtt.embedded_listen=127.0.0.1:{mqtt}"));
            set(format!("mqtt.password={}", crate::MQTT_PASSWORD));
            set(format!("auth.admin_password={}", crate::ADMIN_PASSWORD));
            // The simulated fleet comes from a few loopback addresses.
            set("devices.max_connections_per_ip=0".to_owned());
            // Its IMEIs are made up, and registering them is no part of a benchmark.
            set("devices.register_unknown=true".to_owned());
            for s in settings {
                set(s.clone());
            }
            command
        })
        .await
    }

    /// The null server (`drover null-server`), ending by itself after `lifetime`.
    pub async fn null(log: &Path, lifetime: Duration) -> anyhow::Result<Spawned> {
        let exe = std::env::current_exe().context("finding this binary")?;
        Self::start_on_free_ports(log, None, |ports| {
            ports.http = None;
            ports.mqtt = None;
            let mut command = Command::new(&exe);
            command
                .arg("null-server")
                .args(["--gt06", &format!("127.0.0.1:{}", ports.gt06)])
                .args(["--teltonika", &format!("127.0.0.1:{}", ports.teltonika)])
                .args(["--lifetime", &lifetime.as_secs().to_string()]);
            command
        })
        .await
    }

    /// Starts the command `command` makes for free ports (which it may
    /// narrow). A free port can be taken by another process between being
    /// found and being bound: a server that exits because of that is
    /// started again on other ports.
    async fn start_on_free_ports(
        log: &Path,
        data_dir: Option<PathBuf>,
        mut command: impl FnMut(&mut Ports) -> Command,
    ) -> anyhow::Result<Spawned> {
        let mut attempt = 1;
        loop {
            let mut ports = Ports::free()?;
            let started = Self::start(command(&mut ports), ports, data_dir.clone(), log).await;
            let taken =
                || std::fs::read_to_string(log).is_ok_and(|l| l.contains("Address already in use"));
            match started {
                Err(error) if attempt < PORT_ATTEMPTS && taken() => {
                    tracing::warn!(%error, attempt, "a port was taken; starting the server on others");
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    async fn start(
        mut command: Command,
        ports: Ports,
        data_dir: Option<PathBuf>,
        log: &Path,
    ) -> anyhow::Result<Spawned> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = command.spawn().context("starting the server")?;
        let mut spawned = Spawned {
            pid: child.id(),
            child,
            ports,
            data_dir,
        };
        let started = Instant::now();
        let mut wanted = vec![spawned.ports.gt06, spawned.ports.teltonika];
        wanted.extend(spawned.ports.http);
        for port in wanted {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                if let Ok(Some(status)) = spawned.child.try_wait() {
                    bail!(
                        "the server exited ({status}) before listening: see {}",
                        log.display()
                    );
                }
                if started.elapsed() > START_TIMEOUT {
                    bail!(
                        "the server did not listen on {port} within {START_TIMEOUT:?}: see {}",
                        log.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(spawned)
    }

    /// SIGINT, and SIGKILL if it has not exited in time. Whether it exited cleanly.
    pub async fn stop(mut self) -> bool {
        let clean = self.interrupt().await;
        self.remove_data();
        clean
    }

    async fn interrupt(&mut self) -> bool {
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: kill(2) with our own child's pid; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            pid = self.pid,
            "the server did not stop on SIGINT: killing it"
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    fn remove_data(&mut self) {
        if let Some(dir) = self.data_dir.take()
            && let Err(error) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(%error, dir = %dir.display(), "could not remove the server's data");
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.remove_data();
    }
}

/// CPU and memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// User + system CPU since the process started, seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// Peak RSS (VmHWM).
    pub hwm_bytes: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` off Linux or
/// once the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); here 1-based after the name is 3.
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let cpu_ticks = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf reads a constant of the system.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_s = if per_s > 0 { per_s as f64 } else { 100.0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(ProcSample {
        cpu_s: cpu_ticks as f64 / per_s,
        rss_bytes: kib("VmRSS:")? * 1024,
        hwm_bytes: kib("VmHWM:")? * 1024,
    })
}

/// Resets a process's peak RSS (VmHWM) so that a run measures its own peak
/// (Linux ≥ 4.0; best effort).
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// `GET /health` of the server at `host:port`.
pub async fn health(host: &str, port: u16) -> anyhow::Result<Value> {
    // No proxy: the server is on loopback, whatever HTTP_PROXY says.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("building an HTTP client")?;
    let body = client
        .get(format!("http://{host}:{port}/health"))
        .send()
        .await
        .context("GET /health")?
        .bytes()
        .await
        .context("reading /health")?;
    serde_json::from_slice(&body).context("/health: body is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_ports() {
        let p = Ports::parse("10.0.0.1:5023,5027,8080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.gt06, p.teltonika, p.http, p.mqtt),
            (5023, 5027, Some(8080), None)
        );
        assert!(Ports::parse("10.0.0.1:5023").is_err());
        assert!(Ports::parse("10.0.0.1").is_err());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id());
        assert!(s.is_some_and(|s| s.rss_bytes > 0 && s.hwm_bytes >= s.rss_bytes));
    }
}
