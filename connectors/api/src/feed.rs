//! What the API needs to serve the integrator feed: committed records in
//! journal order, from any position the journal still keeps. The node reads
//! them from its journal; the API knows only this trait.

use drover_protocols::model::DeviceMessage;

use crate::history::BoxFuture;

/// A committed record and its place in the journal.
#[derive(Debug, Clone)]
pub struct FeedRecord {
    /// Its journal sequence number: one per record, never reused.
    pub seq: u64,
    pub message: DeviceMessage,
}

/// Records in journal order, and where the page after them starts.
#[derive(Debug, Clone, Default)]
pub struct FeedPage {
    pub records: Vec<FeedRecord>,
    /// The position after the last record read (the requested one when
    /// there was nothing to read).
    pub next: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The position was retired: the journal now starts at `first`.
    #[error("the journal no longer keeps records before {first}")]
    Gone { first: u64 },
    #[error("the journal cannot be read: {0}")]
    Unavailable(String),
}

/// The committed records of the node.
pub trait FeedSource: Send + Sync + 'static {
    /// Up to `limit` records from position `after` on (`None`: from the
    /// oldest record kept). A position past the end gives an empty page
    /// whose `next` is that position.
    fn read(&self, after: Option<u64>, limit: usize) -> BoxFuture<'_, Result<FeedPage, FeedError>>;
}
