//! The integrator feed, read straight from the journal: committed records in
//! order from any position it still keeps. `journal.feed_keep_mb` keeps a
//! window of recent segments for it even when every sink has taken them
//! (`storage.rs`, retirement).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use drover_api::feed::{FeedError, FeedPage, FeedRecord, FeedSource};
use drover_api::history::BoxFuture;
use drover_journal::{Bookmark, Journal, JournalError, JournalHandle, record};
use tracing::warn;

/// Where the pages handed out last ended, about one per integrator
/// following the feed.
const BOOKMARKS: usize = 64;

/// The feed over the node's journal.
pub struct JournalFeed {
    journal: Arc<JournalHandle>,
    bookmarks: Arc<Bookmarks>,
}

impl JournalFeed {
    pub fn new(journal: Arc<JournalHandle>) -> Self {
        JournalFeed {
            journal,
            bookmarks: Arc::default(),
        }
    }
}

/// Where recent pages ended in the journal's files, so that the next page
/// starts there rather than scanning its segment (up to `segment_mb`) from
/// the start. In memory: after a restart, the first page scans.
#[derive(Default)]
struct Bookmarks(Mutex<VecDeque<Bookmark>>);

impl Bookmarks {
    fn find(&self, seq: u64) -> Option<Bookmark> {
        let marks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        marks.iter().find(|mark| mark.seq() == seq).copied()
    }

    fn keep(&self, mark: Bookmark) {
        let mut marks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        marks.retain(|kept| kept.seq() != mark.seq());
        if marks.len() == BOOKMARKS {
            marks.pop_front();
        }
        marks.push_back(mark);
    }
}

impl FeedSource for JournalFeed {
    fn read(&self, after: Option<u64>, limit: usize) -> BoxFuture<'_, Result<FeedPage, FeedError>> {
        let journal = self.journal.current();
        let bookmarks = Arc::clone(&self.bookmarks);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read_page(&journal, &bookmarks, after, limit))
                .await
                .map_err(|panic| {
                    FeedError::Unavailable(format!("the journal read failed: {panic}"))
                })?
        })
    }
}

/// Up to `limit` records from `after` on, or from the oldest kept record.
fn read_page(
    journal: &Journal,
    bookmarks: &Bookmarks,
    after: Option<u64>,
    limit: usize,
) -> Result<FeedPage, FeedError> {
    let Some(from) = after else {
        // The oldest segment may be retired while it is read: then the
        // feed starts at the new oldest one.
        return match read_from(journal, bookmarks, journal.first_seq(), limit) {
            Err(FeedError::Gone { first }) => read_from(journal, bookmarks, first, limit),
            read => read,
        };
    };
    read_from(journal, bookmarks, from, limit)
}

fn read_from(
    journal: &Journal,
    bookmarks: &Bookmarks,
    from: u64,
    limit: usize,
) -> Result<FeedPage, FeedError> {
    let first = journal.first_seq();
    if from < first {
        return Err(FeedError::Gone { first });
    }
    let mut page = FeedPage {
        records: Vec::new(),
        next: from,
    };
    let mut reader = match bookmarks.find(from) {
        Some(mark) => journal.read_from_bookmark(mark),
        None => journal.read_from(from),
    };
    for item in reader.by_ref().take(limit) {
        let (seq, bytes) = match item {
            Ok(read) => read,
            Err(error) => return cut_short(journal, page, from, &error),
        };
        page.next = seq + 1;
        match record::decode(&bytes) {
            Ok(message) => page.records.push(FeedRecord { seq, message }),
            // The sinks skip it too: holding the feed back would stop every
            // integrator for good.
            Err(error) => {
                warn!(seq, %error, "feed: skipping a journal record that does not decode")
            }
        }
    }
    if let Some(mark) = reader.bookmark() {
        bookmarks.keep(mark);
    }
    Ok(page)
}

/// A read that failed part-way returns what it read; one that failed at the
/// start is gone when its segment was retired meanwhile.
fn cut_short(
    journal: &Journal,
    page: FeedPage,
    from: u64,
    error: &JournalError,
) -> Result<FeedPage, FeedError> {
    if page.next > from {
        return Ok(page);
    }
    let first = journal.first_seq();
    if from < first {
        return Err(FeedError::Gone { first });
    }
    warn!(from, %error, "feed: cannot read the journal");
    Err(FeedError::Unavailable(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_journal::JournalConfig;
    use drover_protocols::model::{DeviceId, DeviceMessage, Record};

    fn message(i: i64) -> Vec<u8> {
        let message = DeviceMessage {
            device: DeviceId::new("356307042441013"),
            protocol: "teltonika",
            record: Record {
                time_ms: 1_764_000_000_000 + i,
                ..Record::default()
            },
        };
        record::encode(&message).expect("encodes")
    }

    /// A journal of `count` records in segments of a few records each.
    fn journal(dir: &std::path::Path, count: i64) -> Journal {
        let config = JournalConfig {
            segment_bytes: 256,
            commit_ms: 0,
            ..JournalConfig::default()
        };
        let (journal, _) = Journal::open(dir, config).expect("open");
        for i in 0..count {
            journal.append(vec![message(i)]).expect("append");
        }
        journal
    }

    fn seqs(page: &FeedPage) -> Vec<u64> {
        page.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn pages_cover_the_journal_once_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = journal(dir.path(), 30);
        let bookmarks = Bookmarks::default();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = read_page(&journal, &bookmarks, after, 7).expect("a page");
            if page.records.is_empty() {
                assert_eq!(page.next, 30, "the end: the same cursor again");
                break;
            }
            seen.extend(seqs(&page));
            let time = page.records[0].message.record.time_ms;
            assert_eq!(time, 1_764_000_000_000 + page.records[0].seq as i64);
            after = Some(page.next);
        }
        assert_eq!(seen, (0..30).collect::<Vec<_>>());
        // Following the tail: the page after the end starts where it ended.
        assert!(bookmarks.find(30).is_some(), "a bookmark at the end");
        journal.append(vec![message(30)]).expect("append");
        let page = read_page(&journal, &bookmarks, Some(30), 7).expect("a page");
        assert_eq!(seqs(&page), [30]);
        assert!(bookmarks.find(31).is_some());
        let beyond = read_page(&journal, &bookmarks, Some(99), 7).expect("a page");
        assert!(beyond.records.is_empty());
        assert_eq!(beyond.next, 99);
    }

    #[test]
    fn a_retired_position_is_gone_and_no_cursor_starts_at_the_oldest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = journal(dir.path(), 30);
        let bookmarks = Bookmarks::default();
        journal.set_cursor("sink", 30).expect("cursor");
        assert!(journal.retire().expect("retire") > 0);
        let first = journal.first_seq();
        assert_eq!(
            read_page(&journal, &bookmarks, Some(0), 5).err(),
            Some(FeedError::Gone { first })
        );
        let page = read_page(&journal, &bookmarks, None, 5).expect("a page");
        assert_eq!(page.records.first().map(|r| r.seq), Some(first));
        assert_eq!(
            seqs(&read_page(&journal, &bookmarks, Some(first), 1).expect("a page")),
            [first]
        );
    }
}
