//! Bytes on disk per record: the embedded history store, a real InfluxDB and
//! the journal, on the same records.
//!
//! ```sh
//! cargo run --release -p drover-benches --example storage_bytes                 # 1,000 devices, 2 hours, half Teltonika
//! cargo run --release -p drover-benches --example storage_bytes -- 1000 2 1.0   # DEVICES HOURS TELTONIKA_SHARE
//! ```
//!
//! `DEVICES` simulated vehicles report every 10 s for `HOURS` hours; a
//! `TELTONIKA_SHARE` of them are Teltonika trackers (codec 8E, 13 IO
//! elements), the rest GT06 (0x22 locations). Each record is encoded by the
//! simulator's device side and decoded by Drover's decoders, so the stores
//! get exactly what the server gets. Rounds are written in time order, one
//! batch per round, to:
//! - the history store (`History::write`, as the history sink writes), then
//!   [`History::compact`]: the size once it has settled;
//! - a journal, each record in the stored form the pipeline appends;
//! - a private `influxd` when Debian's `influxdb` is installed (the InfluxDB
//!   sink's lines, 5,000 per request), left to snapshot its cache and compact
//!   (cold durations of 1 s) until its WAL is empty and its shards hold still.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_benches::{SEED, START_MS, device_id, disk_bytes};
use drover_history::{History, HistoryConfig};
use drover_influxdb::{InfluxClient, InfluxConfig};
use drover_journal::{Journal, JournalConfig, record};
use drover_protocols::gt06::{self, Gt06, Gt06Session};
use drover_protocols::model::{DeviceId, DeviceMessage};
use drover_protocols::teltonika::{self, Teltonika, TeltonikaSession, device::Codec};
use drover_protocols::{Check, DecodeOptions, Decoded, Session};
use drover_sim::route::City;
use drover_sim::vehicle::Vehicle;
use drover_testkit::Influxd;

const INTERVAL: Duration = Duration::from_secs(10);
const INFLUX_BATCH: usize = 5_000;
/// How long InfluxDB gets to settle after the last write.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// InfluxDB settles when its shards' size holds still this long.
const SETTLED_FOR: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let devices: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let hours: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2.0);
    let share: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0.5);
    let rounds = (hours * 3_600.0 / INTERVAL.as_secs_f64()).round() as usize;
    let teltonika = (devices as f64 * share).round() as u64;

    let history_dir = tempfile::tempdir()?;
    let journal_dir = tempfile::tempdir()?;
    let history = History::open(history_dir.path(), HistoryConfig::default())?;
    let (journal, _) = Journal::open(journal_dir.path(), JournalConfig::default())?;
    let influx = Influx::start()?;
    let mut fleet = Fleet::new(devices, teltonika);

    let started = Instant::now();
    let (mut records, mut encoded) = (0u64, 0u64);
    for _ in 0..rounds {
        let batch = fleet.round()?;
        let stored: Vec<Vec<u8>> = batch
            .iter()
            .map(|m| record::encode(m))
            .collect::<Result<_, _>>()?;
        encoded += stored.iter().map(|r| r.len() as u64).sum::<u64>();
        records += batch.len() as u64;
        history.write(&batch)?;
        journal.append(stored)?;
        if let Some(influx) = &influx {
            influx.write(&batch)?;
        }
    }
    println!(
        "{records} records ({devices} devices, {teltonika} Teltonika, every {} s for {hours} h) \
         written in {:.1} s; stored form {:.1} B per record",
        INTERVAL.as_secs(),
        started.elapsed().as_secs_f64(),
        encoded as f64 / records as f64
    );
    let per = |bytes: u64| bytes as f64 / records as f64;

    drop(journal);
    let journal_bytes = disk_bytes(journal_dir.path());
    println!(
        "journal: {journal_bytes} B, {:.1} B per record",
        per(journal_bytes)
    );

    history.compact()?;
    drop(history);
    // fjall's own write-ahead journal sits beside the keyspaces: bounded by
    // its configuration, not by the records kept.
    let tables = disk_bytes(&history_dir.path().join("keyspaces"));
    let total = disk_bytes(history_dir.path());
    println!(
        "history (embedded): {:.1} B per record in its tables after compaction ({tables} B); \
         {} B more in fjall's write-ahead journal",
        per(tables),
        total - tables
    );

    match influx {
        Some(influx) => {
            let (data, wal) = influx.settle()?;
            println!(
                "influxdb: {:.1} B per record settled (shards {data} B, WAL {wal} B)",
                per(data + wal)
            );
        }
        None => println!("influxdb: not measured (influxd is not installed)"),
    }
    Ok(())
}

/// The simulated vehicles and the tracker sessions that decode their reports.
struct Fleet {
    devices: Vec<Tracker>,
    decoded: Decoded,
}

struct Tracker {
    id: DeviceId,
    vehicle: Vehicle,
    session: Speaks,
    serial: u16,
}

enum Speaks {
    Teltonika(TeltonikaSession),
    Gt06(Gt06Session),
}

impl Fleet {
    fn new(devices: u64, teltonika: u64) -> Fleet {
        let city = City::default();
        let options = DecodeOptions::default();
        let (fmb, gt) = (Teltonika::new(options), Gt06::new(options));
        let devices = (0..devices)
            .map(|index| {
                let id = device_id(index);
                let session = if index < teltonika {
                    Speaks::Teltonika(fmb.session_for(id.clone()))
                } else {
                    Speaks::Gt06(Gt06Session::identified(&gt, id.clone()))
                };
                Tracker {
                    id,
                    vehicle: Vehicle::new(SEED, index, &city, START_MS),
                    session,
                    serial: 0,
                }
            })
            .collect();
        Fleet {
            devices,
            decoded: Decoded::default(),
        }
    }

    /// Every device's next report, as the server decodes it.
    fn round(&mut self) -> anyhow::Result<Vec<Arc<DeviceMessage>>> {
        let mut batch = Vec::with_capacity(self.devices.len());
        for tracker in &mut self.devices {
            tracker.vehicle.step(INTERVAL);
            tracker.serial = tracker.serial.wrapping_add(1);
            let sent = tracker.vehicle.record();
            let (protocol, frame, session): (_, _, &mut dyn Session) = match &mut tracker.session {
                Speaks::Teltonika(s) => (
                    teltonika::NAME,
                    teltonika::device::avl_packet(Codec::Codec8E, &[sent]),
                    s,
                ),
                Speaks::Gt06(s) => (gt06::NAME, gt06::device::location(&sent, tracker.serial), s),
            };
            let Check::Frame(len) = session.check(&frame) else {
                anyhow::bail!("the simulator's {protocol} frame is not whole");
            };
            self.decoded.clear();
            session.decode(&frame[..len], &mut self.decoded)?;
            batch.extend(self.decoded.records.drain(..).map(|record| {
                Arc::new(DeviceMessage {
                    device: tracker.id.clone(),
                    protocol,
                    record,
                })
            }));
        }
        Ok(batch)
    }
}

/// A private InfluxDB and the sink's client writing to it.
struct Influx {
    server: Influxd,
    client: InfluxClient,
    runtime: tokio::runtime::Runtime,
}

impl Influx {
    /// `None` when Debian's `influxdb` is not installed.
    fn start() -> anyhow::Result<Option<Influx>> {
        let settling = "  cache-snapshot-write-cold-duration = \"1s\"\n  \
                        compact-full-write-cold-duration = \"1s\"";
        let server = match Influxd::start_with(settling) {
            Ok(server) => server,
            Err(drover_testkit::InfluxdError::Missing) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        server.create_database("drover")?;
        let client = InfluxClient::new(InfluxConfig {
            url: server.url(),
            database: "drover".to_owned(),
            batch_lines: INFLUX_BATCH,
            ..InfluxConfig::default()
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Some(Influx {
            server,
            client,
            runtime,
        }))
    }

    fn write(&self, batch: &[Arc<DeviceMessage>]) -> anyhow::Result<()> {
        for chunk in batch.chunks(INFLUX_BATCH) {
            let report = self.runtime.block_on(self.client.write(chunk))?;
            anyhow::ensure!(
                report.stored() == report.lines && report.unencodable == 0,
                "InfluxDB did not store every line: {report:?}"
            );
        }
        Ok(())
    }

    /// Waits until the WAL is written out and the shards stop changing;
    /// returns their sizes.
    fn settle(self) -> anyhow::Result<(u64, u64)> {
        let (data_dir, wal_dir) = (
            self.server.dir().join("data"),
            self.server.dir().join("wal"),
        );
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let (mut last, mut still_since) = (u64::MAX, Instant::now());
        loop {
            let (data, wal) = (disk_bytes(&data_dir), disk_bytes(&wal_dir));
            if data != last {
                (last, still_since) = (data, Instant::now());
            } else if wal == 0 && still_since.elapsed() >= SETTLED_FOR {
                return Ok((data, wal));
            }
            if Instant::now() > deadline {
                println!("influxdb: still settling after {SETTLE_TIMEOUT:?}");
                return Ok((data, wal));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
