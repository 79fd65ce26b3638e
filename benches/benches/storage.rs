//! Embedded history engines compared on Drover's workload (docs/storage.md).
//!
//! 1M position records from 10,000 devices, one record per device every
//! 14.4 minutes for one day, arrive in time order and are written in batches
//! of 5,000 per durable (fsynced) commit, as the history sink will write them.
//! Each engine (fjall, redb, bundled SQLite in WAL mode) stores them under three
//! key layouts; then two queries are timed: one day of one device, and the
//! latest record of every device. The engines are used as ordered key-value
//! stores so the layouts, not the schemas, are what differ.
//!
//! Not a Criterion bench: one load of 1M records per engine and layout is the
//! measurement. `cargo bench -p drover-benches --bench storage` runs in about
//! two minutes on 2 cores; `-- fjall` or `-- bucketed` filters the runs.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_benches::{START_MS, device_id, fleet_records};
use drover_protocols::model::{Record, Value};

const DEVICES: u64 = 10_000;
const PER_DEVICE: usize = 100;
const BATCH: usize = 5_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// One report per device every 14.4 min: 100 reports span exactly one day.
const INTERVAL_MS: i64 = DAY_MS / PER_DEVICE as i64;
/// Queries stop at this many or after `QUERY_BUDGET`, whichever comes first.
const MAX_QUERIES: usize = 200;
const QUERY_BUDGET: Duration = Duration::from_secs(3);

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rows = workload();
    let value_bytes: usize = rows.iter().map(|r| r.value.len()).sum();
    println!(
        "{} records from {DEVICES} devices, {:.0} value bytes on average, batches of {BATCH}",
        rows.len(),
        value_bytes as f64 / rows.len() as f64
    );
    println!(
        "| engine | layout | write rec/s | disk MB | day of one device (median) | latest of 10k devices |"
    );
    println!("|---|---|---|---|---|---|");
    for engine in ["fjall", "redb", "sqlite"] {
        for layout in [Layout::DeviceFirst, Layout::TimeFirst, Layout::Bucketed] {
            let name = format!("{engine}/{}", layout.name());
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let dir = tempfile::tempdir().expect("temporary directory");
            let result = match engine {
                "fjall" => run(Fjall::open(dir.path()), layout, &rows, dir.path()),
                "redb" => run(Redb::open(dir.path()), layout, &rows, dir.path()),
                _ => run(Sqlite::open(dir.path()), layout, &rows, dir.path()),
            };
            println!(
                "| {engine} | {} | {:.0}k | {:.0} | {} | {} |",
                layout.name(),
                result.write_per_s / 1000.0,
                result.disk_bytes as f64 / 1e6,
                human(result.day_query),
                human(result.latest_all),
            );
        }
    }
}

/// One stored record as the benchmark sees it.
struct Row {
    device: Vec<u8>,
    time_ms: i64,
    value: Vec<u8>,
}

/// The records in arrival order (by time, devices interleaved).
fn workload() -> Vec<Row> {
    // The simulator steps every 10 s; the timestamps are then spread over the day.
    let records = fleet_records(DEVICES, PER_DEVICE, Duration::from_secs(10));
    let mut rows = Vec::with_capacity(records.len());
    for round in 0..PER_DEVICE {
        for device in 0..DEVICES {
            let record = &records[device as usize * PER_DEVICE + round];
            rows.push(Row {
                device: device_id(device).as_str().as_bytes().to_vec(),
                time_ms: START_MS + round as i64 * INTERVAL_MS + device as i64 * 86,
                value: value_bytes(record),
            });
        }
    }
    rows
}

/// A stand-in for the record codec: the fix and the attribute values,
/// 60–120 bytes as a compact binary encoding of a tracker record is.
fn value_bytes(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&record.time_ms.to_le_bytes());
    if let Some(fix) = record.fix {
        for x in [fix.lat, fix.lon] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in [fix.speed_kmh, fix.course_deg] {
            out.extend_from_slice(&(x as f32).to_le_bytes());
        }
    }
    for (_, value) in record.attributes.iter() {
        match value {
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Int(i) => out.extend_from_slice(&(*i as i32).to_le_bytes()),
            Value::Float(f) => out.extend_from_slice(&(*f as f32).to_le_bytes()),
            Value::Text(t) => out.extend_from_slice(t.as_bytes()),
        }
    }
    out.resize(out.len().clamp(60, 120), 0);
    out
}

#[derive(Clone, Copy)]
enum Layout {
    /// `(device, time)`: a device's history is one range; writes scatter over 10k places.
    DeviceFirst,
    /// `(time, device)`: writes append; a device's day is a scan of everyone's day.
    TimeFirst,
    /// `(hour, device, time)`: writes stay in the current hour; a device's day is 24 ranges.
    Bucketed,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::DeviceFirst => "device-first",
            Layout::TimeFirst => "time-first",
            Layout::Bucketed => "bucketed (1 h)",
        }
    }

    /// The key: the layout's fields, then a kind byte and a 4-byte content hash
    /// as the real store adds to keep same-millisecond records apart.
    fn key(self, row: &Row) -> Vec<u8> {
        let mut key = Vec::with_capacity(32);
        let time = time_bytes(row.time_ms);
        match self {
            Layout::DeviceFirst => {
                key.extend_from_slice(&row.device);
                key.push(0);
                key.extend_from_slice(&time);
            }
            Layout::TimeFirst => {
                key.extend_from_slice(&time);
                key.extend_from_slice(&row.device);
                key.push(0);
            }
            Layout::Bucketed => {
                key.extend_from_slice(&bucket_bytes(row.time_ms));
                key.extend_from_slice(&row.device);
                key.push(0);
                key.extend_from_slice(&time);
            }
        }
        key.push(0);
        key.extend_from_slice(&fnv(&row.value).to_be_bytes());
        key
    }

    /// Key ranges `[lo, hi)` holding `device`'s records in `[from, to)`, and
    /// whether their keys also hold other devices' records (filtered out).
    fn day_ranges(self, device: &[u8], from: i64, to: i64) -> (Vec<(Vec<u8>, Vec<u8>)>, bool) {
        let with_device = |prefix: &[u8], t: i64| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(device);
            k.push(0);
            k.extend_from_slice(&time_bytes(t));
            k
        };
        match self {
            Layout::DeviceFirst => (vec![(with_device(&[], from), with_device(&[], to))], false),
            Layout::TimeFirst => (
                vec![(time_bytes(from).to_vec(), time_bytes(to).to_vec())],
                true,
            ),
            Layout::Bucketed => {
                let ranges = (from.div_euclid(HOUR_MS)..=(to - 1).div_euclid(HOUR_MS))
                    .map(|hour| {
                        let bucket = bucket_bytes(hour * HOUR_MS);
                        (
                            with_device(&bucket, from.max(hour * HOUR_MS)),
                            with_device(&bucket, to.min((hour + 1) * HOUR_MS)),
                        )
                    })
                    .collect();
                (ranges, false)
            }
        }
    }

    /// The device part of a key.
    fn device_of(self, key: &[u8]) -> &[u8] {
        let rest = match self {
            Layout::DeviceFirst => key,
            Layout::TimeFirst => &key[8..],
            Layout::Bucketed => &key[4..],
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }
}

fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn bucket_bytes(ms: i64) -> [u8; 4] {
    (ms.div_euclid(HOUR_MS) as u32).to_be_bytes()
}

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// What each engine offers the benchmark: an ordered map of byte strings.
trait Engine {
    /// Stores the pairs in one transaction that is durable when this returns.
    fn commit(&mut self, pairs: &[(Vec<u8>, &[u8])]);
    /// Visits `[lo, hi)` in key order; returns the number of pairs seen.
    fn scan(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> usize;
    /// Visits `[lo, hi)` backwards until `visit` returns false.
    fn scan_rev(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool);
}

struct Outcome {
    write_per_s: f64,
    disk_bytes: u64,
    day_query: Duration,
    latest_all: Duration,
}

fn run(mut engine: impl Engine, layout: Layout, rows: &[Row], dir: &Path) -> Outcome {
    let started = Instant::now();
    for batch in rows.chunks(BATCH) {
        let pairs: Vec<(Vec<u8>, &[u8])> = batch
            .iter()
            .map(|row| (layout.key(row), row.value.as_slice()))
            .collect();
        engine.commit(&pairs);
    }
    let write_per_s = rows.len() as f64 / started.elapsed().as_secs_f64();
    let day_query = day_query(&engine, layout);
    let latest_all = latest_all(&engine, layout);
    drop(engine);
    Outcome {
        write_per_s,
        disk_bytes: disk_bytes(dir),
        day_query,
        latest_all,
    }
}

/// Median time to read one device's whole day (100 records) among 10k devices.
fn day_query(engine: &impl Engine, layout: Layout) -> Duration {
    let mut times = Vec::new();
    let budget = Instant::now();
    let mut device = 17u64;
    while times.len() < MAX_QUERIES && (times.len() < 3 || budget.elapsed() < QUERY_BUDGET) {
        device = (device * 7_919 + 13) % DEVICES;
        let id = device_id(device);
        let id = id.as_str().as_bytes();
        let started = Instant::now();
        let (ranges, shared) = layout.day_ranges(id, START_MS, START_MS + DAY_MS);
        let mut found = 0usize;
        let mut bytes = 0usize;
        for (lo, hi) in &ranges {
            engine.scan(lo, hi, &mut |key, value| {
                if !shared || layout.device_of(key) == id {
                    found += 1;
                    bytes += value.len();
                }
            });
        }
        times.push(started.elapsed());
        assert_eq!(found, PER_DEVICE, "{} lost records", layout.name());
        std::hint::black_box(bytes);
    }
    times.sort();
    times[times.len() / 2]
}

/// Time to find the newest key of every device straight from the layout.
fn latest_all(engine: &impl Engine, layout: Layout) -> Duration {
    let started = Instant::now();
    let mut seen = HashSet::with_capacity(DEVICES as usize);
    match layout {
        Layout::DeviceFirst => {
            for device in 0..DEVICES {
                let id = device_id(device);
                let mut lo = id.as_str().as_bytes().to_vec();
                lo.push(0);
                let mut hi = lo.clone();
                hi.push(0xff);
                engine.scan_rev(&lo, &hi, &mut |key| {
                    seen.insert(layout.device_of(key).to_vec());
                    false
                });
            }
        }
        Layout::TimeFirst | Layout::Bucketed => {
            engine.scan_rev(&[], &[0xff; 9], &mut |key| {
                seen.insert(layout.device_of(key).to_vec());
                seen.len() < DEVICES as usize
            });
        }
    }
    assert_eq!(seen.len(), DEVICES as usize);
    started.elapsed()
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1_000.0)
    }
}

struct Fjall {
    db: fjall::Database,
    records: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let records = db
            .keyspace("records", fjall::KeyspaceCreateOptions::default)
            .expect("fjall keyspace");
        Fjall { db, records }
    }
}

impl Engine for Fjall {
    fn commit(&mut self, pairs: &[(Vec<u8>, &[u8])]) {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        for (key, value) in pairs {
            batch.insert(&self.records, key.as_slice(), *value);
        }
        batch.commit().expect("fjall commit");
    }

    fn scan(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> usize {
        let mut n = 0;
        for guard in self.records.range(lo..hi) {
            let (key, value) = guard.into_inner().expect("fjall read");
            visit(&key, &value);
            n += 1;
        }
        n
    }

    fn scan_rev(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) {
        for guard in self.records.range(lo..hi).rev() {
            let key = guard.key().expect("fjall read");
            if !visit(&key) {
                break;
            }
        }
    }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("records");

struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(dir: &Path) -> Self {
        let db = redb::Database::create(dir.join("history.redb")).expect("open redb");
        Redb { db }
    }
}

impl Engine for Redb {
    fn commit(&mut self, pairs: &[(Vec<u8>, &[u8])]) {
        let tx = self.db.begin_write().expect("redb write");
        {
            let mut table = tx.open_table(REDB_TABLE).expect("redb table");
            for (key, value) in pairs {
                table.insert(key.as_slice(), *value).expect("redb insert");
            }
        }
        tx.commit().expect("redb commit");
    }

    fn scan(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> usize {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("redb read");
        let table = tx.open_table(REDB_TABLE).expect("redb table");
        let mut n = 0;
        for pair in table.range(lo..hi).expect("redb range") {
            let (key, value) = pair.expect("redb read");
            visit(key.value(), value.value());
            n += 1;
        }
        n
    }

    fn scan_rev(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("redb read");
        let table = tx.open_table(REDB_TABLE).expect("redb table");
        for pair in table.range(lo..hi).expect("redb range").rev() {
            let (key, _) = pair.expect("redb read");
            if !visit(key.value()) {
                break;
            }
        }
    }
}

struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn open(dir: &Path) -> Self {
        let conn = rusqlite::Connection::open(dir.join("history.sqlite")).expect("open sqlite");
        // WAL with synchronous=FULL fsyncs the WAL at every commit: durable per batch.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;
             CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .expect("sqlite schema");
        Sqlite { conn }
    }
}

impl Engine for Sqlite {
    fn commit(&mut self, pairs: &[(Vec<u8>, &[u8])]) {
        let tx = self.conn.transaction().expect("sqlite begin");
        {
            let mut insert = tx
                .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                .expect("sqlite prepare");
            for (key, value) in pairs {
                insert
                    .execute((key.as_slice(), *value))
                    .expect("sqlite insert");
            }
        }
        tx.commit().expect("sqlite commit");
    }

    fn scan(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> usize {
        let mut query = self
            .conn
            .prepare_cached("SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k")
            .expect("sqlite prepare");
        let mut rows = query.query((lo, hi)).expect("sqlite query");
        let mut n = 0;
        while let Some(row) = rows.next().expect("sqlite row") {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).expect("key");
            let value = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).expect("value");
            visit(key, value);
            n += 1;
        }
        n
    }

    fn scan_rev(&self, lo: &[u8], hi: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) {
        let mut query = self
            .conn
            .prepare_cached("SELECT k FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k DESC")
            .expect("sqlite prepare");
        let mut rows = query.query((lo, hi)).expect("sqlite query");
        while let Some(row) = rows.next().expect("sqlite row") {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).expect("key");
            if !visit(key) {
                break;
            }
        }
    }
}
