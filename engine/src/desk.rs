//! The alert desk: operators' actions on alerts (acknowledge, close), from
//! the API to the tick thread, each answered once the tick that applied it
//! has routed its outputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::systems::alerts::{AlertAction, AlertOp, AlertSummary};

/// Actions waiting at most; more are refused as busy.
const CAPACITY: usize = 1024;

/// What the tick thread answers to an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The alert as it is after the action; `None` when no open alert has
    /// that id (unknown, or closed already).
    pub alert: Option<AlertSummary>,
    /// How many outputs the analytics queue had received once the action's
    /// change was queued: once its consumer handled that many, the change
    /// is stored.
    pub analytics_through: u64,
}

/// Why an action got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    #[error("too many alert actions are waiting for the engine")]
    Busy,
    #[error("the engine has stopped")]
    Stopped,
}

type Request = (AlertAction, flume::Sender<Answer>);

/// The API's end. Cheap to clone.
#[derive(Clone)]
pub struct AlertDesk {
    requests: flume::Sender<Request>,
    tickets: Arc<AtomicU64>,
}

/// The tick thread's end.
pub(crate) struct DeskInbox {
    requests: flume::Receiver<Request>,
}

pub(crate) fn desk() -> (AlertDesk, DeskInbox) {
    let (requests, inbox) = flume::bounded(CAPACITY);
    (
        AlertDesk {
            requests,
            tickets: Arc::default(),
        },
        DeskInbox { requests: inbox },
    )
}

impl AlertDesk {
    /// Applies `op` to the alert `id` at `time_ms` in the next tick and
    /// answers after it.
    pub async fn act(&self, id: &str, op: AlertOp, time_ms: i64) -> Result<Answer, DeskError> {
        let (reply, answer) = flume::bounded(1);
        let action = AlertAction {
            ticket: self.tickets.fetch_add(1, Ordering::Relaxed),
            id: id.to_owned(),
            op,
            time_ms,
        };
        self.requests
            .try_send((action, reply))
            .map_err(|error| match error {
                flume::TrySendError::Full(_) => DeskError::Busy,
                flume::TrySendError::Disconnected(_) => DeskError::Stopped,
            })?;
        answer.recv_async().await.map_err(|_| DeskError::Stopped)
    }
}

impl DeskInbox {
    /// The actions waiting, each with where its answer goes.
    pub(crate) fn take(&self) -> Vec<Request> {
        self.requests.try_iter().collect()
    }
}
