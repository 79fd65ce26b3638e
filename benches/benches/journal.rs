//! Group commit of the journal (`drover_journal`) on the real disk.
//!
//! N appenders (async tasks on a 2-worker tokio runtime, as the device
//! sessions are) each loop: `append_async` one append of 1 or 8 encoded
//! simulator records (≈ one Teltonika packet of 1 or 8 records), then
//! `Ticket::wait_async` until it is fsynced, then the next. For every
//! `commit_ms` (0, 2, 5), appender count (1, 16, 256) and append size, a fresh
//! journal runs 0.5 s of warm-up and 2.5 s measured, and the table gives
//! records/s, appends/s, fsyncs/s (journal metrics), records per fsync and
//! the commit latency seen by the appender (enqueue → woken) p50/p99/max.
//!
//! The journal lives in a temporary directory beside the bench executable
//! (the target directory, on the repository's disk, not tmpfs) unless
//! `DROVER_BENCH_DIR` names another; the file system type is printed.
//! Not a Criterion bench: a run is a throughput measurement under
//! concurrency, and its latency distribution is the point.
//! `cargo bench -p drover-benches --bench journal` takes about 1 minute;
//! arguments filter: `-- 256` runs only 256 appenders, `-- commit_ms=0` only
//! that setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drover_benches::{START_MS, device_id, fleet_records};
use drover_journal::{Journal, JournalConfig, MetricsSnapshot};
use drover_protocols::model::DeviceMessage;
use hdrhistogram::Histogram;

const COMMIT_MS: [u64; 3] = [0, 2, 5];
const APPENDERS: [usize; 3] = [1, 16, 256];
const PER_APPEND: [usize; 2] = [1, 8];
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_millis(2_500);

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let records = Arc::new(encoded_records());
    let mean = records.iter().map(Vec::len).sum::<usize>() as f64 / records.len() as f64;
    let base = bench_dir();
    println!(
        "journal in {} ({}), records of {mean:.0} bytes on average (simulator positions with OBD attributes)",
        base.display(),
        fs_type(&base)
    );
    println!(
        "{:>9} {:>9} {:>7} | {:>10} {:>9} {:>8} {:>11} | {:>8} {:>8} {:>8}",
        "commit_ms",
        "appenders",
        "records",
        "records/s",
        "appends/s",
        "fsyncs/s",
        "recs/fsync",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for commit_ms in COMMIT_MS {
        for appenders in APPENDERS {
            for per_append in PER_APPEND {
                let label =
                    format!("commit_ms={commit_ms} appenders={appenders} records={per_append}");
                if !filters.is_empty()
                    && !filters
                        .iter()
                        .any(|f| label.contains(f.as_str()) || *f == appenders.to_string())
                {
                    continue;
                }
                let dir = tempfile::Builder::new()
                    .prefix("journal-bench")
                    .tempdir_in(&base)
                    .expect("temporary directory");
                let config = JournalConfig {
                    commit_ms,
                    ..JournalConfig::default()
                };
                let (journal, _) = Journal::open(dir.path(), config).expect("open journal");
                let result =
                    runtime.block_on(run(Arc::new(journal), &records, appenders, per_append));
                result.print(commit_ms, appenders, per_append);
            }
        }
    }
}

struct Outcome {
    appends: u64,
    metrics: MetricsSnapshot,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn print(&self, commit_ms: u64, appenders: usize, per_append: usize) {
        let secs = self.elapsed.as_secs_f64();
        let ms = |us: u64| us as f64 / 1_000.0;
        println!(
            "{:>9} {:>9} {:>7} | {:>10.0} {:>9.0} {:>8.0} {:>11.1} | {:>8.2} {:>8.2} {:>8.2}",
            commit_ms,
            appenders,
            per_append,
            self.metrics.records as f64 / secs,
            self.appends as f64 / secs,
            self.metrics.fsyncs as f64 / secs,
            self.metrics.records as f64 / self.metrics.fsyncs.max(1) as f64,
            ms(self.latency.value_at_quantile(0.5)),
            ms(self.latency.value_at_quantile(0.99)),
            ms(self.latency.max()),
        );
    }
}

async fn run(
    journal: Arc<Journal>,
    records: &Arc<Vec<Vec<u8>>>,
    appenders: usize,
    per_append: usize,
) -> Outcome {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(appenders);
    for a in 0..appenders {
        let journal = Arc::clone(&journal);
        let measuring = Arc::clone(&measuring);
        let stop = Arc::clone(&stop);
        let records = Arc::clone(records);
        tasks.push(tokio::spawn(async move {
            let mut latency =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut appends = 0u64;
            // Each appender starts at its own place in the records.
            let mut next = a * 8;
            while !stop.load(Ordering::Relaxed) {
                // A fresh Vec per append, as the pipeline encodes each packet anew.
                let batch: Vec<Vec<u8>> = (0..per_append)
                    .map(|i| records[(next + i) % records.len()].clone())
                    .collect();
                next += per_append;
                let counted = measuring.load(Ordering::Relaxed);
                let started = Instant::now();
                journal
                    .append_async(batch)
                    .wait_async()
                    .await
                    .expect("append");
                if counted && !stop.load(Ordering::Relaxed) {
                    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    latency.saturating_record(us.max(1));
                    appends += 1;
                }
            }
            (appends, latency)
        }));
    }
    tokio::time::sleep(WARM_UP).await;
    let before = journal.metrics();
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(MEASURE).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let after = journal.metrics();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut appends = 0;
    for task in tasks {
        let (n, h) = task.await.expect("appender");
        appends += n;
        latency.add(h).expect("merge histograms");
    }
    Outcome {
        appends,
        metrics: MetricsSnapshot {
            records: after.records - before.records,
            bytes: after.bytes - before.bytes,
            commits: after.commits - before.commits,
            fsyncs: after.fsyncs - before.fsyncs,
            fsync_max_us: after.fsync_max_us,
        },
        elapsed,
        latency,
    }
}

/// The simulator's records (positions with the OBD dongle's attributes),
/// encoded as the pipeline encodes them for the journal.
fn encoded_records() -> Vec<Vec<u8>> {
    let records = fleet_records(64, 16, Duration::from_secs(10));
    records
        .into_iter()
        .enumerate()
        .map(|(i, mut record)| {
            record.time_ms = START_MS + i as i64 * 1_000;
            let message = DeviceMessage {
                device: device_id(i as u64 % 64),
                protocol: drover_protocols::teltonika::NAME,
                record,
            };
            drover_journal::record::encode(&message).expect("encode")
        })
        .collect()
}

/// Where the temporary journals go: `DROVER_BENCH_DIR`, or beside the bench
/// executable (in the target directory).
fn bench_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DROVER_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
}

/// The file system type of the mount holding `path` (from /proc/mounts).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then(|| (point.len(), format!("{kind} on {point}")))
        })
        .max()
        .map_or_else(|| "unknown file system".to_owned(), |(_, kind)| kind)
}
