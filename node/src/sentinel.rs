//! The node's sentinels: it watches its own parts and raises `system_…`
//! alerts (on the node's own alert entity, `drover`) with the lifecycle,
//! outputs and notifications of any alert, so an operator hears of trouble
//! before data is late. Every `every_secs`:
//!
//! * `system_journal_failed` (critical): the journal refuses records until
//!   it is reopened.
//! * `system_journal_backlog` (warning): the journal holds more than
//!   `journal_backlog_pct` of `journal.max_backlog_mb`; past all of it,
//!   devices are refused.
//! * `system_sink_behind` (warning, subject the consumer): a journal
//!   consumer (history, InfluxDB, MQTT, the engine) has not yet taken
//!   records committed `sink_lag_secs` ago.
//! * `system_sink_failing` (critical, subject the consumer): its writes
//!   fail — InfluxDB or the broker unreachable, a disk refusing writes.
//! * `system_disk_low` (critical): less than `disk_free_pct` of the data
//!   directory's filesystem is free.
//! * `system_broker_unreachable` (critical): the node's MQTT connection is
//!   down (the broker stopped, refused it or cannot be reached); live data
//!   and alerts are not published until it is back.
//! * `system_tick_lag` (warning): an engine tick since the last look took
//!   longer than `tick_lag_ms`: live state, trips and alerts are late.
//!
//! Each is raised when it begins and cleared (closing its alert) when it
//! ends; only changes reach the engine.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use drover_engine::runtime::SystemBoard;
use drover_engine::systems::alerts::{Details, Severity, SystemCondition};
use drover_protocols::model::now_ms;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::http::Parts;

/// `[analytics.sentinel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentinelSection {
    /// How often the node looks at itself; 0 turns the sentinels off.
    pub every_secs: u64,
    /// A journal consumer behind this long raises `system_sink_behind`.
    pub sink_lag_secs: u64,
    /// Less free space than this on the data directory's filesystem, in
    /// percent, raises `system_disk_low`.
    pub disk_free_pct: f64,
    /// A journal holding more than this share of `journal.max_backlog_mb`,
    /// in percent, raises `system_journal_backlog`.
    pub journal_backlog_pct: f64,
    /// An engine tick longer than this raises `system_tick_lag`; 0: never.
    pub tick_lag_ms: u64,
}

impl Default for SentinelSection {
    fn default() -> Self {
        SentinelSection {
            every_secs: 5,
            sink_lag_secs: 60,
            disk_free_pct: 5.0,
            journal_backlog_pct: 80.0,
            tick_lag_ms: 1_000,
        }
    }
}

/// What the sentinels look at.
pub struct Sentinel {
    pub parts: Arc<Parts>,
    pub board: SystemBoard,
    pub rules: SentinelSection,
    pub data_dir: PathBuf,
    /// `journal.max_backlog_mb` in bytes.
    pub max_backlog_bytes: u64,
}

/// One condition as seen now.
struct Seen {
    kind: &'static str,
    subject: Option<String>,
    severity: Severity,
    active: bool,
    details: Details,
}

impl Sentinel {
    /// Looks every `every_secs` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.rules.every_secs == 0 {
            return;
        }
        let every = Duration::from_secs(self.rules.every_secs);
        let mut state = State::default();
        loop {
            let seen = self.look(&mut state);
            for condition in seen {
                let key = (condition.kind, condition.subject.clone());
                let was = state.active.get(&key).copied().unwrap_or(false);
                if was == condition.active {
                    continue;
                }
                state.active.insert(key, condition.active);
                if condition.active {
                    tracing::warn!(kind = condition.kind, subject = ?condition.subject, "system condition began");
                } else {
                    tracing::info!(kind = condition.kind, subject = ?condition.subject, "system condition ended");
                }
                self.board.report(SystemCondition {
                    kind: condition.kind,
                    subject: condition.subject,
                    active: condition.active,
                    severity: condition.severity,
                    time_ms: now_ms(),
                    details: condition.details,
                });
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    fn look(&self, state: &mut State) -> Vec<Seen> {
        let journal = self.parts.journal.current();
        let committed = journal.next_seq();
        let mut seen = vec![Seen {
            kind: "system_journal_failed",
            subject: None,
            severity: Severity::Critical,
            active: journal.is_poisoned(),
            details: Details::new(),
        }];
        let held = journal.disk_bytes();
        let limit = self.max_backlog_bytes as f64 * self.rules.journal_backlog_pct / 100.0;
        let mut details = Details::new();
        details.insert("bytes".to_owned(), held.into());
        details.insert(
            "max_backlog_bytes".to_owned(),
            self.max_backlog_bytes.into(),
        );
        seen.push(Seen {
            kind: "system_journal_backlog",
            subject: None,
            severity: Severity::Warning,
            active: self.max_backlog_bytes > 0 && held as f64 > limit,
            details,
        });
        let lag = Duration::from_secs(self.rules.sink_lag_secs);
        let due = state.committed_ago(committed, lag);
        for (name, stats) in &self.parts.sinks {
            let position = stats.position.load(Relaxed);
            let backlog = committed.saturating_sub(position);
            let failures = stats.failures.load(Relaxed);
            let before = state.failures.insert(name, failures).unwrap_or(failures);
            let mut details = Details::new();
            details.insert("backlog".to_owned(), backlog.into());
            details.insert("failures".to_owned(), failures.into());
            // Behind: it has not yet taken what was committed `lag` ago.
            let behind = due.is_some_and(|due| position < due);
            seen.push(Seen {
                kind: "system_sink_behind",
                subject: Some((*name).to_owned()),
                severity: Severity::Warning,
                active: behind,
                details: details.clone(),
            });
            // Failing: writes failed since the last look and it is not
            // caught up; it stays failing until it catches up.
            let key = ("system_sink_failing", Some((*name).to_owned()));
            let failing_before = state.active.get(&key).copied().unwrap_or(false);
            seen.push(Seen {
                kind: "system_sink_failing",
                subject: Some((*name).to_owned()),
                severity: Severity::Critical,
                active: backlog > 0 && (failures > before || failing_before),
                details,
            });
        }
        seen.push(self.broker(state));
        let longest_ns = self.parts.engine.take_recent_max_ns();
        seen.extend(tick_lag(longest_ns, self.rules.tick_lag_ms));
        if let Some(free_pct) = free_pct(&self.data_dir) {
            let mut details = Details::new();
            details.insert("free_pct".to_owned(), free_pct.into());
            details.insert(
                "path".to_owned(),
                self.data_dir.display().to_string().into(),
            );
            seen.push(Seen {
                kind: "system_disk_low",
                subject: None,
                severity: Severity::Critical,
                active: free_pct < self.rules.disk_free_pct,
                details,
            });
        }
        seen
    }
}

impl Sentinel {
    /// Unreachable when a connection attempt failed and none succeeded
    /// since, at two looks in a row: a node still making its first
    /// connection, or one reconnect that fails once, is not.
    fn broker(&self, state: &mut State) -> Seen {
        let mqtt = &self.parts.mqtt;
        let errors = mqtt.connection_errors.load(Relaxed);
        let down = errors > 0 && !mqtt.connected.load(Relaxed);
        state.broker_down_looks = if down { state.broker_down_looks + 1 } else { 0 };
        let mut details = Details::new();
        details.insert("connection_errors".to_owned(), errors.into());
        Seen {
            kind: "system_broker_unreachable",
            subject: None,
            severity: Severity::Critical,
            active: state.broker_down_looks >= 2,
            details,
        }
    }
}

/// Whether the longest tick since the last look (`longest_ns`) was longer
/// than `lag_ms`; `None` when no tick ran (nothing to judge) or the
/// sentinel is off.
fn tick_lag(longest_ns: u64, lag_ms: u64) -> Option<Seen> {
    if longest_ns == 0 || lag_ms == 0 {
        return None;
    }
    let longest_ms = longest_ns / 1_000_000;
    let mut details = Details::new();
    details.insert("tick_ms_max".to_owned(), longest_ms.into());
    details.insert("tick_lag_ms".to_owned(), lag_ms.into());
    Some(Seen {
        kind: "system_tick_lag",
        subject: None,
        severity: Severity::Warning,
        active: longest_ms > lag_ms,
        details,
    })
}

/// What the sentinels remember between looks.
#[derive(Default)]
struct State {
    /// Conditions as last reported.
    active: HashMap<(&'static str, Option<String>), bool>,
    /// The journal's committed end at each look, oldest first, as far back
    /// as `sink_lag_secs`.
    committed: VecDeque<(Instant, u64)>,
    /// Each consumer's failed writes at the last look.
    failures: HashMap<&'static str, u64>,
    /// Looks in a row that found the broker connection down.
    broker_down_looks: u32,
}

impl State {
    /// Notes `committed` now and returns the committed end of at least
    /// `lag` ago (`None` before the sentinels have looked that long).
    fn committed_ago(&mut self, committed: u64, lag: Duration) -> Option<u64> {
        let now = Instant::now();
        self.committed.push_back((now, committed));
        let mut due = None;
        while let Some(&(at, seq)) = self.committed.front() {
            if now.duration_since(at) < lag {
                break;
            }
            due = Some(seq);
            // Keep the newest old enough one: the next look may need it.
            if self
                .committed
                .get(1)
                .is_some_and(|(next, _)| now.duration_since(*next) >= lag)
            {
                self.committed.pop_front();
            } else {
                break;
            }
        }
        due
    }
}

/// Free space on the filesystem of `path`, in percent of its size (for
/// unprivileged users, as `df` shows it).
fn free_pct(path: &Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 || stat.f_blocks == 0 {
        return None;
    }
    Some(stat.f_bavail as f64 / stat.f_blocks as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_longer_than_the_limit_is_lag() {
        let ms = 1_000_000;
        assert!(tick_lag(0, 1_000).is_none(), "no tick, no judgement");
        assert!(tick_lag(5_000 * ms, 0).is_none(), "off");
        assert!(!tick_lag(900 * ms, 1_000).unwrap().active);
        let lag = tick_lag(1_500 * ms, 1_000).unwrap();
        assert!(lag.active);
        assert_eq!(lag.details["tick_ms_max"], 1_500);
    }

    #[test]
    fn the_committed_end_of_a_lag_ago_is_the_newest_old_enough() {
        let mut state = State::default();
        let lag = Duration::from_millis(30);
        assert_eq!(state.committed_ago(10, lag), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(state.committed_ago(20, lag), Some(10));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(state.committed_ago(30, lag), Some(20));
        assert_eq!(state.committed.len(), 2, "older looks are forgotten");
    }

    #[test]
    fn the_data_directory_has_free_space_to_measure() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_pct(dir.path()).unwrap();
        assert!((0.0..=100.0).contains(&free), "{free}");
        assert_eq!(free_pct(Path::new("/no/such/place")), None);
    }
}
