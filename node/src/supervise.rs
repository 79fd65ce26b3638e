//! Fail fast: a core task that panics or stops on its own ends the node.
//!
//! The engine thread, the journal's committer, the sinks and the jobs that
//! keep the journal tidy are the node's core. When one of them dies the
//! node is broken in ways that are hard to see — records journaled and then
//! never published, a journal that is never retired, `/health` still `ok` —
//! so the node reports a [`Failure`] and the process exits non-zero. A
//! supervisor (systemd's `Restart=always`, see `deploy/drover.service`)
//! starts it again, and the journal's recovery and the engine's snapshot make
//! the restart lose nothing: devices resend whatever was not acked.
//!
//! Device sessions and HTTP requests are not core: a panic there ends only
//! that connection (tokio catches it) and is logged.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

/// Which core part failed, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component} failed: {reason}")]
pub struct Failure {
    pub component: &'static str,
    pub reason: String,
}

/// Where core parts report that they failed. Cheap to clone.
#[derive(Clone)]
pub struct Fatal {
    tx: Arc<watch::Sender<Option<Failure>>>,
    /// Set once the node stops on purpose: tasks ending then are no failure.
    stopping: CancellationToken,
    /// The first failure, kept for whoever asks late.
    first: Arc<Mutex<Option<Failure>>>,
}

impl Default for Fatal {
    fn default() -> Self {
        Fatal {
            tx: Arc::new(watch::channel(None).0),
            stopping: CancellationToken::new(),
            first: Arc::default(),
        }
    }
}

impl Fatal {
    /// Reports that `component` failed. The first report wins.
    pub fn report(&self, component: &'static str, reason: String) {
        if self.stopping.is_cancelled() {
            return;
        }
        let failure = Failure { component, reason };
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            error!(component, reason = %failure.reason,
                "a core part of the node failed; stopping so that it restarts clean");
            *first = Some(failure.clone());
            self.tx.send_replace(Some(failure));
        }
    }

    /// From now on tasks that end are stopping, not failing.
    pub fn stopping(&self) {
        self.stopping.cancel();
    }

    /// Resolves with the first failure.
    pub async fn failed(&self) -> Failure {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(failure) = rx.borrow_and_update().clone() {
                return failure;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `task` on `tracker` as a core task: a panic, or an end before
    /// the node stops, is a failure of `component`.
    pub fn spawn<F>(&self, tracker: &TaskTracker, component: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fatal = self.clone();
        let inner = tokio::spawn(task);
        tracker.spawn(async move {
            match inner.await {
                Ok(()) => fatal.report(component, "it stopped unexpectedly".to_owned()),
                Err(error) => fatal.report(component, panic_reason(error)),
            }
        });
    }

    /// Watches a task already running: its end before the node stops is a
    /// failure of `component`. Returns the handle that stops it.
    pub fn watch_task(
        &self,
        component: &'static str,
        task: tokio::task::JoinHandle<()>,
    ) -> tokio::task::AbortHandle {
        let fatal = self.clone();
        let abort = task.abort_handle();
        tokio::spawn(async move {
            match task.await {
                Ok(()) => fatal.report(component, "it stopped unexpectedly".to_owned()),
                Err(error) => fatal.report(component, panic_reason(error)),
            }
        });
        abort
    }

    /// Watches a core thread: its end before the node stops is a failure.
    pub fn watch_thread<T: Send + 'static>(
        &self,
        component: &'static str,
        thread: std::thread::JoinHandle<T>,
    ) -> tokio::task::JoinHandle<Option<T>> {
        let fatal = self.clone();
        tokio::task::spawn_blocking(move || match thread.join() {
            Ok(value) => {
                fatal.report(component, "it stopped unexpectedly".to_owned());
                Some(value)
            }
            Err(panic) => {
                fatal.report(component, format!("it panicked: {}", panic_text(&*panic)));
                None
            }
        })
    }
}

fn panic_reason(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(panic) => format!("it panicked: {}", panic_text(&*panic)),
        Err(_) => "it was cancelled".to_owned(),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_core_task_is_a_failure_and_the_first_one_wins() {
        let fatal = Fatal::default();
        let tracker = TaskTracker::new();
        fatal.spawn(&tracker, "sink history", async { panic!("disk on fire") });
        let failure = fatal.failed().await;
        assert_eq!(failure.component, "sink history");
        assert!(failure.reason.contains("disk on fire"), "{failure}");
        fatal.report("engine", "later".to_owned());
        assert_eq!(fatal.failed().await.component, "sink history");
    }

    #[tokio::test]
    async fn tasks_ending_while_the_node_stops_are_no_failure() {
        let fatal = Fatal::default();
        let tracker = TaskTracker::new();
        fatal.stopping();
        fatal.spawn(&tracker, "retire", async {});
        tracker.close();
        tracker.wait().await;
        let failed = tokio::time::timeout(std::time::Duration::from_millis(50), fatal.failed());
        assert!(failed.await.is_err(), "no failure reported");
    }

    #[tokio::test]
    async fn a_thread_that_panics_is_a_failure() {
        let fatal = Fatal::default();
        let thread = std::thread::spawn(|| panic!("tick went wrong"));
        let joined = fatal.watch_thread("engine", thread).await.unwrap();
        assert!(joined.is_none());
        let failure = fatal.failed().await;
        assert_eq!(failure.component, "engine");
        assert!(failure.reason.contains("tick went wrong"));
    }
}
