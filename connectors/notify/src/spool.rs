//! The delivery spool: each queued delivery is a file until it is done
//! (delivered, or given up), so a restart — a crash included — delivers
//! what was still waiting or being retried. At least once: a delivery
//! whose success was not yet noted is sent again.
//!
//! One small JSON file per delivery (alerts are rare next to positions),
//! written and synced before the delivery is queued; its name orders
//! deliveries as they were queued.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use drover_catalog::Channel;
use serde::{Deserialize, Serialize};

use crate::rules::Notice;

/// A delivery as kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Spooled {
    pub rule: String,
    pub channel: Channel,
    pub notice: Notice,
}

/// Where the spool lives.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    next: AtomicU64,
}

impl Spool {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let newest = entries(dir)?
            .iter()
            .filter_map(|path| sequence(path))
            .max()
            .unwrap_or(0);
        Ok(Spool {
            dir: dir.to_owned(),
            next: AtomicU64::new(newest + 1),
        })
    }

    /// Writes `delivery` durably; its file is the handle to remove it by.
    pub fn keep(&self, delivery: &Spooled) -> std::io::Result<PathBuf> {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{sequence:020}.json"));
        let partial = path.with_extension("partial");
        let json = serde_json::to_vec(delivery).map_err(std::io::Error::other)?;
        let mut file = fs::File::create(&partial)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&partial, &path)?;
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }

    /// Forgets a delivery that is done.
    pub fn done(&self, path: &Path) {
        if let Err(error) = fs::remove_file(path) {
            tracing::warn!(%error, path = %path.display(), "a finished notification stays in the spool");
        }
    }

    /// The deliveries left by an earlier run, oldest first; unreadable
    /// files are logged and set aside (renamed `.bad`).
    pub fn left(&self) -> std::io::Result<Vec<(PathBuf, Spooled)>> {
        let mut left = Vec::new();
        for path in entries(&self.dir)? {
            let read = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Spooled>(&bytes).map_err(|e| e.to_string())
                });
            match read {
                Ok(delivery) => left.push((path, delivery)),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "unreadable notification set aside");
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        Ok(left)
    }
}

/// The spool's delivery files, in queued order.
fn entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

fn sequence(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str) -> Spooled {
        Spooled {
            rule: "nr_1".to_owned(),
            channel: Channel::Webhook {
                url: "http://127.0.0.1:9/hook".to_owned(),
                secret: None,
            },
            notice: Notice {
                id: id.to_owned(),
                device: "d".to_owned(),
                group: None,
                kind: "sos".to_owned(),
                severity: "critical".to_owned(),
                state: "open".to_owned(),
                json: b"{}".to_vec(),
                title: "SOS".to_owned(),
                text: "SOS".to_owned(),
            },
        }
    }

    #[test]
    fn what_is_not_done_is_left_for_the_next_run_in_order() {
        // invariant: test code; the temporary directory is the test's own.
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let first = spool.keep(&delivery("a")).unwrap();
        spool.keep(&delivery("b")).unwrap();
        spool.keep(&delivery("c")).unwrap();
        spool.done(&first);
        fs::write(dir.path().join("00000000000000000000.json"), b"not json").unwrap();

        let reopened = Spool::open(dir.path()).unwrap();
        let left: Vec<String> = reopened
            .left()
            .unwrap()
            .into_iter()
            .map(|(_, d)| d.notice.id)
            .collect();
        assert_eq!(left, ["b", "c"]);
        assert!(dir.path().join("00000000000000000000.bad").exists());
        // New deliveries sort after what was left.
        let next = reopened.keep(&delivery("d")).unwrap();
        assert!(next > dir.path().join("00000000000000000003.json"));
    }
}
