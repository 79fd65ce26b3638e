//! No acknowledged record is ever lost: the server killed with SIGKILL under
//! load, a torn journal tail, a corrupted journal, a full disk.
//!
//! Every test compares what the simulator saw acknowledged (its record log)
//! with what the history API and a real `mosquitto_sub` return afterwards.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Ports, Sim, Subscriber};

/// Settings that make the node publish to the test's Mosquitto, which outlives
/// the node's restarts (so does the subscriber reading it).
pub fn external_broker(mqtt_port: u16) -> Vec<String> {
    vec![
        format!("mqtt.url=mqtt://127.0.0.1:{mqtt_port}"),
        "mqtt.embedded_listen=".to_owned(),
    ]
}

/// Teltonika only (acked per packet, by record count), several records per packet.
pub fn teltonika_load(devices: u32, seconds: u32) -> Vec<String> {
    [
        "--no-mqtt",
        "--teltonika-share",
        "1",
        "--records-per-packet",
        "4",
        "--rate",
        "4",
        "--ramp",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        "--devices".to_owned(),
        devices.to_string(),
        "--duration".to_owned(),
        seconds.to_string(),
    ])
    .collect()
}

/// Every stored position time of `device`, through the API, following cursors.
pub fn stored_times(http: u16, device: &str) -> Vec<i64> {
    let mut times = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/api/v1/devices/{device}/positions?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000{cursor}"
        );
        let (status, page) = support::http_get(http, &path);
        if status == 404 {
            return times;
        }
        assert_eq!(status, 200, "{path}: {page}");
        for p in page["positions"].as_array().expect("positions") {
            times.push(time_ms(&p["time"]));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return times,
        }
    }
}

pub fn time_ms(value: &Value) -> i64 {
    let text = value.as_str().expect("an RFC 3339 time");
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms fit")
}

/// The acked records that `stored(device)` does not return, at most a few.
fn missing(
    acked: &HashMap<String, Vec<i64>>,
    mut stored: impl FnMut(&str) -> Vec<i64>,
) -> Vec<(String, usize)> {
    let mut missing = Vec::new();
    for (device, times) in acked {
        let have: BTreeSet<i64> = stored(device).into_iter().collect();
        let lost = times.iter().filter(|t| !have.contains(t)).count();
        if lost > 0 {
            missing.push((device.clone(), lost));
        }
    }
    missing
}

/// Waits until every acked record is in the history, or fails naming what is not.
pub fn assert_all_stored(http: u16, acked: &HashMap<String, Vec<i64>>) {
    let complete = support::eventually(Duration::from_secs(30), || {
        missing(acked, |d| stored_times(http, d)).is_empty()
    });
    assert!(
        complete,
        "acked records missing from history (device, count): {:?}",
        missing(acked, |d| stored_times(http, d))
    );
}

/// Waits until every acked record was published on MQTT.
pub fn assert_all_published(subscriber: &Subscriber, acked: &HashMap<String, Vec<i64>>) {
    let published = || {
        let mut by_device: HashMap<String, Vec<i64>> = HashMap::new();
        for (device, time) in support::positions_by_key(&subscriber.messages()).into_keys() {
            by_device.entry(device).or_default().push(time);
        }
        by_device
    };
    let complete = support::eventually(Duration::from_secs(30), || {
        let seen = published();
        missing(acked, |d| seen.get(d).cloned().unwrap_or_default()).is_empty()
    });
    let seen = published();
    assert!(
        complete,
        "acked records never published on MQTT (device, count): {:?}",
        missing(acked, |d| seen.get(d).cloned().unwrap_or_default())
    );
}

/// After a restart, every device's live state is back: its last fix is the
/// newest position in the history (which holds everything journaled) and
/// not older than anything the device saw acked.
pub fn assert_live_state_rebuilt(http: u16, acked: &HashMap<String, Vec<i64>>) {
    support::wait_for_engine(http);
    for (device, times) in acked {
        let (status, state) = support::http_get(http, &format!("/api/v1/devices/{device}"));
        assert_eq!(status, 200, "{device}: {state}");
        assert_eq!(state["source"], "live", "{device}: {state}");
        let live = state["state"]["last_fix"]["time_ms"]
            .as_i64()
            .expect("a live fix");
        let newest = stored_times(http, device)
            .into_iter()
            .max()
            .expect("stored positions");
        assert_eq!(
            live, newest,
            "{device}: the live fix is the newest stored one"
        );
        assert!(
            live >= *times.last().expect("acked"),
            "{device}: live state went back"
        );
    }
}

fn count(acked: &HashMap<String, Vec<i64>>) -> usize {
    acked.values().map(Vec::len).sum()
}

/// Loads a server on `ports` with Teltonika traffic, kills it with SIGKILL
/// mid-run and starts it again on the same data; returns the restarted server
/// and the records the simulator saw acked, by device.
pub fn sigkill_mid_run(
    dir: &Path,
    ports: Ports,
    settings: &[String],
) -> (support::Process, HashMap<String, Vec<i64>>) {
    let server = support::drover_serve_on(dir, ports, settings);
    let sim = Sim::start(dir, &ports, &teltonika_load(40, 12));
    std::thread::sleep(Duration::from_secs(5));
    server.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let server = support::drover_serve_on(dir, ports, settings);
    let (report, records) = sim.finish();

    let acked = support::acked_by_device(&records);
    assert!(
        count(&acked) >= 40 * 4 * 5,
        "too few acked records: {report}"
    );
    assert!(
        report["connections"]["reconnects"].as_u64() > Some(0),
        "the devices should have reconnected: {report}"
    );
    (server, acked)
}

/// SIGKILL under load: every acked record reached the history and MQTT.
#[test]
fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (_mosquitto, mqtt_port) = support::mosquitto(dir);
    let subscriber = Subscriber::start(dir, mqtt_port, &["drover/devices/+/position"]);
    let ports = Ports::free();
    let (server, acked) = sigkill_mid_run(dir, ports, &external_broker(mqtt_port));
    assert_all_stored(ports.http, &acked);
    assert_all_published(&subscriber, &acked);
    assert_live_state_rebuilt(ports.http, &acked);
    assert!(server.interrupt().success());
}

pub fn journal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("data/journal"))
        .expect("journal directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments
}

/// A short run whose every acked record is confirmed stored; then SIGKILL.
fn run_and_kill(dir: &Path, ports: Ports, seconds: u32) -> HashMap<String, Vec<i64>> {
    let server = support::drover_serve_on(dir, ports, &[]);
    let (_, records) = Sim::start(dir, &ports, &teltonika_load(10, seconds)).finish();
    let acked = support::acked_by_device(&records);
    assert!(count(&acked) > 0);
    assert_all_stored(ports.http, &acked);
    server.kill9();
    acked
}

#[test]
fn a_torn_tail_is_cut_and_a_corrupt_record_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let ports = Ports::free();
    let first = run_and_kill(dir, ports, 3);

    // A write cut short: the last record loses its last bytes.
    let last = journal_segments(dir).pop().expect("a segment");
    let len = std::fs::metadata(&last).expect("segment").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    file.set_len(len - 3).expect("truncate");
    drop(file);

    let server = support::drover_serve_on(dir, ports, &[]);
    let (status, health) = support::http_get(ports.http, "/health");
    assert_eq!(status, 200);
    assert_eq!(health["journal"]["poisoned"], false, "{health}");
    assert_all_stored(ports.http, &first);
    let log = std::fs::read_to_string(dir.join("drover.log")).expect("log");
    assert!(log.contains("torn"), "the cut is logged: {log}");
    // It keeps acknowledging and storing.
    let (_, records) = Sim::start(dir, &ports, &teltonika_load(10, 3)).finish();
    let second = support::acked_by_device(&records);
    assert!(count(&second) > 0);
    assert_all_stored(ports.http, &second);
    server.kill9();

    // A flipped byte inside an older record is corruption, not a torn write.
    let first_segment = journal_segments(dir).remove(0);
    let mut bytes = std::fs::read(&first_segment).expect("segment");
    bytes[12] ^= 0x5a;
    std::fs::write(&first_segment, bytes).expect("write segment");
    let status = support::Process::spawn(
        "drover serve (corrupt journal)",
        &mut support::serve_command(dir, Ports::free(), &[]),
    )
    .wait_exit(Duration::from_secs(30));
    assert!(
        !status.success(),
        "the server must refuse a corrupt journal"
    );
    let log = std::fs::read_to_string(dir.join("drover.log")).expect("log");
    let name = first_segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    assert!(
        log.contains("corrupt") && log.contains(name),
        "the refusal names the damaged segment: {log}"
    );
}

/// A small tmpfs mounted over a directory for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = as_root("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN) or password-less sudo"
        );
        // Under sudo the mount belongs to root: let the test user write to it.
        let _ = as_root("chmod").arg("1777").arg(at).status();
        Tmpfs(at.to_owned())
    }

    /// Writes zeroes until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let ballast = self.0.join("ballast");
        let mut file = std::fs::File::create(&ballast).expect("ballast");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let one = [0u8; 1];
        while file.write_all(&one).is_ok() {}
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = as_root("umount").arg("-l").arg(&self.0).status();
    }
}

/// `program`, through `sudo -n` unless the tests already run as root.
fn as_root(program: &str) -> std::process::Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        std::process::Command::new(program)
    } else {
        let mut sudo = std::process::Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

fn health_counter(http: u16, field: &str) -> u64 {
    let (_, health) = support::http_get(http, "/health");
    health["journal"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {health}"))
}

#[test]
fn a_full_disk_stops_acks_and_service_resumes_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let tmpfs = Tmpfs::mount(&dir.join("data/journal"), "4m");
    let ports = Ports::free();
    let server = support::drover_serve_on(dir, ports, &["journal.segment_mb=1".to_owned()]);
    let sim = Sim::start(dir, &ports, &teltonika_load(10, 25));
    std::thread::sleep(Duration::from_secs(4));
    assert!(health_counter(ports.http, "acked_records") > 0);

    let ballast = tmpfs.fill();
    assert!(
        support::eventually(Duration::from_secs(10), || {
            health_counter(ports.http, "refused_batches") > 0
        }),
        "a full disk must refuse records"
    );
    std::thread::sleep(Duration::from_millis(500));
    let acked_while_full = health_counter(ports.http, "acked_records");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        health_counter(ports.http, "acked_records"),
        acked_while_full,
        "nothing may be acknowledged while the journal cannot write"
    );

    std::fs::remove_file(&ballast).expect("remove ballast");
    assert!(
        support::eventually(Duration::from_secs(15), || {
            health_counter(ports.http, "acked_records") > acked_while_full
        }),
        "acks resume once space is back"
    );
    let (_, records) = sim.finish();
    let acked = support::acked_by_device(&records);
    assert_all_stored(ports.http, &acked);
    let (_, health) = support::http_get(ports.http, "/health");
    assert_eq!(health["journal"]["poisoned"], false, "{health}");
    assert!(server.interrupt().success());
}
