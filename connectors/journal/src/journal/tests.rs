use std::sync::Arc;

use super::storage::{FaultyStorage, FsyncFailure, Storage};
use super::*;

fn small() -> JournalConfig {
    JournalConfig {
        segment_bytes: 256,
        commit_ms: 0,
        ..JournalConfig::default()
    }
}

fn record(i: u64) -> Vec<u8> {
    format!("record-{i:05}").into_bytes()
}

fn read_all(journal: &Journal, from: u64) -> Vec<(u64, Vec<u8>)> {
    journal
        .read_from(from)
        .collect::<Result<Vec<_>, _>>()
        .expect("read journal")
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn open_mem(storage: &FaultyStorage, config: JournalConfig) -> (Journal, Recovery) {
    Journal::open_with_storage(Arc::new(storage.clone()) as Arc<dyn Storage>, config)
        .expect("open journal")
}

#[test]
fn round_trip_across_segment_rolls_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (journal, recovery) = Journal::open(dir.path(), small()).expect("open");
        assert_eq!(recovery.records, 0);
        assert_eq!(recovery.last_seq, None);
        for i in 0..50 {
            let range = journal.append(vec![record(i)]).expect("append");
            assert_eq!(range, i..i + 1);
        }
        let range = journal
            .append((50..60).map(record).collect())
            .expect("append batch");
        assert_eq!(range, 50..60);
        let all = read_all(&journal, 0);
        assert_eq!(all.len(), 60);
        for (i, (seq, payload)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(payload, &record(i as u64));
        }
        // Reading from the middle of a later segment.
        let tail = read_all(&journal, 37);
        assert_eq!(tail.first().map(|r| r.0), Some(37));
        assert_eq!(tail.len(), 23);
        let m = journal.metrics();
        assert_eq!(m.records, 60);
        assert_eq!(m.commits, 51);
        assert!(m.bytes > 60 * 12);
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 3, "segments should roll: {files:?}");
    assert_eq!(files[0], "00000000000000000000.seg");
    for name in &files {
        let len = std::fs::metadata(dir.path().join(name))
            .expect("meta")
            .len();
        assert!(len <= 256, "{name} is {len} bytes");
    }
    let (journal, recovery) = Journal::open(dir.path(), small()).expect("reopen");
    assert_eq!(recovery.records, 60);
    assert_eq!(recovery.last_seq, Some(59));
    assert_eq!(recovery.next_seq, 60);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(journal.append(vec![record(60)]).expect("append"), 60..61);
    let all = read_all(&journal, 0);
    assert_eq!(all.len(), 61);
    assert_eq!(all[60], (60, record(60)));
}

#[test]
fn group_commit_batches_concurrent_appenders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = JournalConfig {
        commit_ms: 5,
        ..JournalConfig::default()
    };
    let (journal, _) = Journal::open(dir.path(), config).expect("open");
    let journal = Arc::new(journal);
    let threads = 8;
    let per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..per_thread {
                    let range = journal
                        .append(vec![format!("t{t}-{i}").into_bytes()])
                        .expect("append");
                    seqs.push(range.start);
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    seqs.sort_unstable();
    let appends = (threads * per_thread) as u64;
    assert_eq!(seqs, (0..appends).collect::<Vec<_>>());
    let m = journal.metrics();
    assert_eq!(m.records, appends);
    assert!(
        m.commits < appends / 2,
        "{} commits for {appends} appends",
        m.commits
    );
    assert_eq!(read_all(&journal, 0).len() as u64, appends);
}

#[test]
fn async_ticket_resolves() {
    let storage = FaultyStorage::new();
    let (journal, _) = open_mem(&storage, small());
    let tickets: Vec<Ticket> = (0..5)
        .map(|i| journal.append_async(vec![record(i)]))
        .collect();
    for (i, ticket) in tickets.into_iter().enumerate() {
        let i = i as u64;
        assert_eq!(ticket.wait().expect("commit"), i..i + 1);
    }
    // The async wait, driven by flume's executor-agnostic future.
    let ticket = journal.append_async(vec![record(5)]);
    let range = block_on(ticket.wait_async()).expect("commit");
    assert_eq!(range, 5..6);
    assert!(matches!(
        journal.append(vec![Vec::new()]),
        Err(JournalError::RecordSize { len: 0, .. })
    ));
}

/// A minimal executor: the future is woken by flume from the committer thread.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn torn_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (journal, _) = Journal::open(dir.path(), small()).expect("open");
        for i in 0..40 {
            journal.append(vec![record(i)]).expect("append");
        }
    }
    let files = segment_files(dir.path());
    let last = dir.path().join(files.last().expect("a segment"));
    let len = std::fs::metadata(&last).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open segment");
    file.set_len(len - 3).expect("cut");
    drop(file);

    let (journal, recovery) = Journal::open(dir.path(), small()).expect("recover");
    assert_eq!(recovery.records, 39);
    assert_eq!(recovery.last_seq, Some(38));
    assert_eq!(recovery.truncated_bytes, record(39).len() as u64 + 8 - 3);
    let all = read_all(&journal, 0);
    assert_eq!(all.len(), 39);
    assert!(all.iter().all(|(seq, payload)| payload == &record(*seq)));
    // Appending continues right after the last intact record.
    assert_eq!(journal.append(vec![record(39)]).expect("append"), 39..40);
    drop(journal);
    let (_, recovery) = Journal::open(dir.path(), small()).expect("reopen");
    assert_eq!(recovery.records, 40);
    assert_eq!(recovery.truncated_bytes, 0);
}

#[test]
fn checksum_failure_at_the_tail_is_a_torn_write() {
    let storage = FaultyStorage::new();
    {
        let (journal, _) = open_mem(&storage, JournalConfig::default());
        journal
            .append((0..3).map(record).collect())
            .expect("append");
    }
    let name = segment::file_name(0);
    storage.modify(&name, |data| {
        let last = data.len() - 1;
        data[last] ^= 0xff;
    });
    let (journal, recovery) = open_mem(&storage, JournalConfig::default());
    assert_eq!(recovery.records, 2);
    assert!(recovery.truncated_bytes > 0);
    assert_eq!(read_all(&journal, 0).len(), 2);
}

#[test]
fn flipped_byte_in_an_older_record_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (journal, _) = Journal::open(dir.path(), small()).expect("open");
        for i in 0..40 {
            journal.append(vec![record(i)]).expect("append");
        }
    }
    let files = segment_files(dir.path());
    // An older segment, second record's payload.
    let target = files[1].clone();
    let path = dir.path().join(&target);
    let mut data = std::fs::read(&path).expect("read");
    let offset = 8 + record(0).len() + 8 + 2;
    data[offset] ^= 0x01;
    std::fs::write(&path, &data).expect("write");

    let error = Journal::open(dir.path(), small()).expect_err("must refuse");
    match &error {
        JournalError::Corrupt {
            segment, offset, ..
        } => {
            assert_eq!(segment, &target);
            assert_eq!(*offset, (8 + record(0).len()) as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&target) && message.contains("corrupt"),
        "{message}"
    );

    // Same damage in the last segment, but not in its last record: also refused.
    let last = files.last().expect("a segment").clone();
    let path = dir.path().join(&last);
    let mut data = std::fs::read(&path).expect("read");
    data[8 + 2] ^= 0x01;
    std::fs::write(&path, &data).expect("write");
    std::fs::write(dir.path().join(&target), {
        let mut d = std::fs::read(dir.path().join(&target)).expect("read");
        d[offset] ^= 0x01; // repair the first damage
        d
    })
    .expect("write");
    match Journal::open(dir.path(), small()) {
        Err(JournalError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(segment, last);
            assert_eq!(offset, 0);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn missing_middle_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (journal, _) = Journal::open(dir.path(), small()).expect("open");
        for i in 0..40 {
            journal.append(vec![record(i)]).expect("append");
        }
    }
    let files = segment_files(dir.path());
    std::fs::remove_file(dir.path().join(&files[1])).expect("remove");
    assert!(matches!(
        Journal::open(dir.path(), small()),
        Err(JournalError::Corrupt { segment, .. }) if segment == files[2]
    ));
}

#[test]
fn fsync_eio_poisons_then_reopen_keeps_acknowledged_records() {
    let storage = FaultyStorage::new();
    let (journal, _) = open_mem(&storage, small());
    for i in 0..20 {
        journal.append(vec![record(i)]).expect("append");
    }
    storage.set_fail_fsync(true);
    assert!(matches!(
        journal.append(vec![record(20)]),
        Err(JournalError::Poisoned { .. })
    ));
    assert!(journal.is_poisoned());
    // The disk "recovers", but the journal never trusts it again.
    storage.set_fail_fsync(false);
    for i in 21..25 {
        assert!(matches!(
            journal.append(vec![record(i)]),
            Err(JournalError::Poisoned { .. })
        ));
    }
    assert_eq!(journal.next_seq(), 20);
    assert_eq!(read_all(&journal, 0).len(), 20);
    drop(journal);

    let (journal, recovery) = open_mem(&storage, small());
    // Record 20 was written but not synced; it may or may not be there.
    assert!(recovery.records >= 20);
    let all = read_all(&journal, 0);
    for i in 0..20 {
        assert_eq!(all[i as usize], (i, record(i)));
    }
    let next = journal
        .append(vec![record(99)])
        .expect("append after reopen");
    assert_eq!(next.start, recovery.next_seq);
}

#[test]
fn power_loss_keeps_every_acknowledged_record() {
    for keep_unsynced in [0, 5, 1000] {
        let storage = FaultyStorage::new();
        let (journal, _) = open_mem(&storage, small());
        let mut acked = Vec::new();
        for i in 0..30 {
            let range = journal.append(vec![record(i)]).expect("append");
            acked.push(range.start);
        }
        storage.set_fail_fsync(true);
        for i in 30..33 {
            assert!(journal.append(vec![record(i)]).is_err());
        }
        drop(journal);
        storage.set_fail_fsync(false);
        storage.power_loss(keep_unsynced);

        let (journal, recovery) = open_mem(&storage, small());
        let all = read_all(&journal, 0);
        for &seq in &acked {
            assert_eq!(
                all[seq as usize],
                (seq, record(seq)),
                "keep {keep_unsynced}"
            );
        }
        assert_eq!(recovery.records, all.len() as u64);
        // Whatever survived beyond the acked records is intact, never garbage.
        assert!(all.iter().all(|(seq, payload)| payload == &record(*seq)));
        if keep_unsynced == 0 {
            assert_eq!(all.len(), 30);
        }
        if keep_unsynced == 5 {
            assert_eq!(recovery.truncated_bytes, 5);
        }
    }
}

#[test]
fn cursors_persist_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (journal, _) = Journal::open(dir.path(), small()).expect("open");
        journal
            .append((0..10).map(record).collect())
            .expect("append");
        assert_eq!(journal.cursor("history"), None);
        journal.set_cursor("history", 4).expect("cursor");
        journal.set_cursor("mqtt", 10).expect("cursor");
        journal.set_cursor("history", 7).expect("cursor");
        assert!(matches!(
            journal.set_cursor("../evil", 1),
            Err(JournalError::CursorName(_))
        ));
        assert!(matches!(
            journal.set_cursor("ahead", 11),
            Err(JournalError::OutOfRange { .. })
        ));
    }
    let (journal, _) = Journal::open(dir.path(), small()).expect("reopen");
    assert_eq!(journal.cursor("history"), Some(7));
    assert_eq!(journal.cursor("mqtt"), Some(10));
    assert_eq!(journal.cursor("ahead"), None);
    assert!(std::fs::read_dir(dir.path()).expect("dir").all(|e| {
        !e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    }));
}

#[test]
fn retire_keeping_leaves_the_newest_bytes_for_readers_without_a_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, _) = Journal::open(dir.path(), small()).expect("open");
    for i in 0..60 {
        journal.append(vec![record(i)]).expect("append");
    }
    journal.set_cursor("sink", 60).expect("cursor");
    let sizes: Vec<u64> = segment_files(dir.path())
        .iter()
        .map(|n| std::fs::metadata(dir.path().join(n)).expect("size").len())
        .collect();
    assert!(sizes.len() >= 4, "{sizes:?}");
    // A window just over the last two segments: the third newest stays too.
    let last_two: u64 = sizes[sizes.len() - 2..].iter().sum();
    let retired = journal.retire_keeping(last_two + 1).expect("retire");
    assert_eq!(retired, sizes.len() - 3);
    assert_eq!(segment_files(dir.path()).len(), 3);
    // More than the journal holds: nothing goes.
    assert_eq!(journal.retire_keeping(u64::MAX).expect("retire"), 0);
    // Exactly the newest segment's bytes: only it stays.
    let last = *sizes.last().expect("a segment");
    assert_eq!(journal.retire_keeping(last).expect("retire"), 2);
    assert_eq!(
        read_all(&journal, journal.first_seq()).len() as u64,
        60 - journal.first_seq()
    );
}

#[test]
fn a_bookmark_resumes_where_its_reader_stopped_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, _) = Journal::open(dir.path(), small()).expect("open");
    for i in 0..60 {
        journal.append(vec![record(i)]).expect("append");
    }
    assert!(
        journal.read_from(0).bookmark().is_none(),
        "nothing read yet"
    );
    // Pages of 7 from bookmarks give what one reader gives.
    let mut paged = Vec::new();
    let mut mark: Option<Bookmark> = None;
    while paged.len() < 60 {
        let mut reader = match mark {
            Some(mark) => journal.read_from_bookmark(mark),
            None => journal.read_from(0),
        };
        let page: Vec<_> = reader
            .by_ref()
            .take(7)
            .collect::<Result<_, _>>()
            .expect("read");
        paged.extend(page);
        mark = reader.bookmark();
        if let Some(mark) = mark {
            assert_eq!(mark.seq(), paged.len() as u64);
        }
    }
    assert_eq!(paged, read_all(&journal, 0));
    // A bookmark at the end reads what is appended after it.
    let mut reader = journal.read_from(55);
    assert_eq!(reader.by_ref().count(), 5);
    let end = reader.bookmark().expect("a bookmark at the end");
    journal.append(vec![record(60)]).expect("append");
    let next: Vec<_> = journal
        .read_from_bookmark(end)
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(next, vec![(60, record(60))]);
    // A bookmark into a retired segment reads as read_from does.
    let stale = {
        let mut reader = journal.read_from(1);
        reader.next();
        reader.bookmark().expect("a bookmark")
    };
    journal.set_cursor("sink", 61).expect("cursor");
    journal.retire().expect("retire");
    assert!(matches!(
        journal.read_from_bookmark(stale).next(),
        Some(Err(JournalError::OutOfRange { .. }))
    ));
}

#[test]
fn retire_deletes_only_fully_consumed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, _) = Journal::open(dir.path(), small()).expect("open");
    for i in 0..60 {
        journal.append(vec![record(i)]).expect("append");
    }
    let before = segment_files(dir.path());
    let bases: Vec<u64> = before
        .iter()
        .map(|n| segment::parse_name(n).expect("segment name"))
        .collect();
    assert!(bases.len() >= 4, "{before:?}");

    // No cursor: nothing may go.
    assert_eq!(journal.retire().expect("retire"), 0);

    // The slowest sink is in the middle of segment 2: segments 0 and 1 go.
    journal.set_cursor("fast", 60).expect("cursor");
    journal.set_cursor("slow", bases[2] + 1).expect("cursor");
    assert_eq!(journal.retire().expect("retire"), 2);
    assert_eq!(segment_files(dir.path()), before[2..].to_vec());
    assert_eq!(journal.first_seq(), bases[2]);
    let rest = read_all(&journal, bases[2]);
    assert_eq!(rest.len() as u64, 60 - bases[2]);
    assert!(matches!(
        journal.read_from(0).next(),
        Some(Err(JournalError::OutOfRange { .. }))
    ));

    // Exactly at a segment boundary: the segment before it is fully consumed.
    journal.set_cursor("slow", bases[3]).expect("cursor");
    assert_eq!(journal.retire().expect("retire"), 1);
    // Everything consumed: the active segment stays.
    journal.set_cursor("slow", 60).expect("cursor");
    journal.retire().expect("retire");
    assert_eq!(segment_files(dir.path()).len(), 1);
    drop(journal);

    let (journal, recovery) = Journal::open(dir.path(), small()).expect("reopen");
    assert_eq!(recovery.next_seq, 60);
    assert_eq!(recovery.first_seq, *bases.last().expect("base"));
    assert_eq!(journal.append(vec![record(60)]).expect("append"), 60..61);
}

#[test]
fn zero_filled_tail_is_a_torn_write() {
    // A crash after the file grew but before its data arrived leaves zeroes.
    let storage = FaultyStorage::new();
    {
        let (journal, _) = open_mem(&storage, JournalConfig::default());
        journal
            .append((0..3).map(record).collect())
            .expect("append");
    }
    storage.modify(&segment::file_name(0), |data| data.extend([0u8; 40]));
    let (journal, recovery) = open_mem(&storage, JournalConfig::default());
    assert_eq!(recovery.records, 3);
    assert_eq!(recovery.truncated_bytes, 40);
    assert_eq!(journal.append(vec![record(3)]).expect("append"), 3..4);
}

#[test]
fn drop_commits_queued_appends() {
    let storage = FaultyStorage::new();
    let tickets: Vec<Ticket> = {
        let (journal, _) = open_mem(
            &storage,
            JournalConfig {
                commit_ms: 50,
                ..JournalConfig::default()
            },
        );
        (0..4)
            .map(|i| journal.append_async(vec![record(i)]))
            .collect()
    };
    for ticket in tickets {
        ticket
            .wait()
            .expect("committed before the committer stopped");
    }
    storage.power_loss(0);
    let (_, recovery) = open_mem(&storage, JournalConfig::default());
    assert_eq!(recovery.records, 4);
}

#[test]
fn power_loss_during_a_batch_that_rolls_segments() {
    let storage = FaultyStorage::new();
    let (journal, _) = open_mem(&storage, small());
    journal
        .append((0..5).map(record).collect())
        .expect("append");
    // Fail the fsync of a batch spanning several segments.
    storage.set_fail_fsync(true);
    assert!(matches!(
        journal.append((5..60).map(record).collect()),
        Err(JournalError::Poisoned { .. })
    ));
    drop(journal);
    storage.set_fail_fsync(false);
    storage.power_loss(7);
    let (journal, recovery) = open_mem(&storage, small());
    let all = read_all(&journal, 0);
    assert!(recovery.records >= 5);
    assert_eq!(all.len() as u64, recovery.records);
    assert!(all.iter().all(|(seq, payload)| payload == &record(*seq)));
    let next = journal.append(vec![record(1000)]).expect("append");
    assert_eq!(next.start, recovery.next_seq);
}

#[test]
fn a_handle_recovers_a_poisoned_journal_once_the_disk_is_back() {
    let storage = FaultyStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let announced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let observer = {
        let announced = Arc::clone(&announced);
        Box::new(move || -> Observer {
            let announced = Arc::clone(&announced);
            Box::new(move |seqs: Range<u64>, _: &Attachment, _bytes: u64| {
                announced.fetch_add(seqs.end - seqs.start, Ordering::Relaxed);
            })
        }) as ObserverFactory
    };
    let (handle, _) = JournalHandle::open(shared, small(), Some(observer)).unwrap();
    let attach = || -> Attachment { Arc::new(()) };
    for i in 0..10 {
        handle
            .current()
            .append_attached(vec![record(i)], attach())
            .wait()
            .unwrap();
    }
    assert_eq!(handle.recover().unwrap(), None, "nothing to recover yet");

    storage.set_fail_fsync(true);
    let failed = handle
        .current()
        .append_attached(vec![record(10)], attach())
        .wait();
    assert!(matches!(failed, Err(JournalError::Poisoned { .. })));
    storage.set_fail_fsync(false);

    let recovery = handle.recover().unwrap().expect("reopened");
    assert!(recovery.records >= 10);
    let seqs = handle
        .current()
        .append_attached(vec![record(11)], attach())
        .wait()
        .expect("acknowledged again after recovery");
    let all = read_all(&handle.current(), 0);
    for i in 0..10 {
        assert_eq!(all[i as usize], (i, record(i)));
    }
    assert_eq!(all.last(), Some(&(seqs.start, record(11))));
    // The observer was installed again on the recovered journal.
    assert_eq!(announced.load(Ordering::Relaxed), 11);
}

#[test]
fn a_cursor_past_a_cut_tail_is_brought_back() {
    let storage = FaultyStorage::new();
    let (journal, _) = open_mem(&storage, small());
    for i in 0..3 {
        journal.append(vec![record(i)]).unwrap();
    }
    journal.set_cursor("history", 3).unwrap();
    drop(journal);
    // The last record is torn after the sink took it.
    storage.modify(&segment::file_name(0), |data| {
        let len = data.len();
        data.truncate(len - 2);
    });
    let (journal, recovery) = open_mem(&storage, small());
    assert_eq!(recovery.next_seq, 2);
    assert_eq!(journal.cursor("history"), Some(2));
    let next = journal.append(vec![record(9)]).unwrap();
    assert_eq!(next, 2..3, "the sink at 2 will read the new record");
    drop(journal);
    let (journal, _) = open_mem(&storage, small());
    assert_eq!(
        journal.cursor("history"),
        Some(2),
        "the move back is durable"
    );
}

fn handle_on(storage: &FaultyStorage) -> JournalHandle {
    let storage = Arc::new(storage.clone()) as Arc<dyn Storage>;
    JournalHandle::open(storage, small(), None)
        .expect("open journal")
        .0
}

fn named(prefix: &str, range: Range<u64>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("{prefix}-{i:03}").into_bytes())
        .collect()
}

/// Appends `batches` batches of three records, `acked-N` (17 framed bytes
/// each), and notes each record once its batch is acknowledged.
fn append_acked(handle: &JournalHandle, batches: u64, acked: &mut Vec<(u64, String)>) {
    for _ in 0..batches {
        let first = acked.len() as u64;
        let batch = named("acked", first..first + 3);
        let seqs = handle
            .current()
            .append(batch.clone())
            .expect("acknowledged");
        let names = batch
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        acked.extend(seqs.zip(names));
    }
}

/// Cuts the power (letting `keep_unsynced` unsynced bytes through), and
/// checks that the journal opens and holds exactly the acknowledged records,
/// numbered from 0 without a gap.
fn assert_only_acked_survive_power_loss(
    storage: &FaultyStorage,
    keep_unsynced: usize,
    acked: &[(u64, String)],
    case: &str,
) {
    storage.set_fail_fsync(false);
    storage.power_loss(keep_unsynced);
    let shared = Arc::new(storage.clone()) as Arc<dyn Storage>;
    let (journal, _) = Journal::open_with_storage(shared, small())
        .unwrap_or_else(|error| panic!("{case}: the journal must open: {error}"));
    let contiguous: Vec<(u64, String)> = (0..).zip(acked.iter().map(|r| r.1.clone())).collect();
    assert_eq!(acked, contiguous, "{case}: acknowledged sequence numbers");
    let all: Vec<(u64, String)> = read_all(&journal, 0)
        .into_iter()
        .map(|(seq, payload)| (seq, String::from_utf8_lossy(&payload).into_owned()))
        .collect();
    assert_eq!(all, acked, "{case}");
}

#[test]
fn an_fsync_failure_then_recovery_then_power_loss_keeps_every_acked_record() {
    let modes = [
        FsyncFailure::Retried,
        FsyncFailure::Dropped,
        FsyncFailure::Evicted,
    ];
    for (mode, keep_unsynced) in modes.into_iter().flat_map(|m| [(m, 0), (m, 5)]) {
        let case = format!("{mode:?}, {keep_unsynced} unsynced bytes kept");
        let storage = FaultyStorage::new();
        storage.set_fsync_failure(mode);
        let handle = handle_on(&storage);
        let mut acked = Vec::new();
        append_acked(&handle, 4, &mut acked);
        storage.set_fail_fsync(true);
        let failed = handle.current().append(named("failed", 0..3));
        assert!(
            matches!(failed, Err(JournalError::Poisoned { .. })),
            "{case}"
        );
        storage.set_fail_fsync(false);
        let recovery = handle.recover().expect("recover").expect("it was poisoned");
        assert_eq!(
            recovery.next_seq, 12,
            "{case}: back to the last committed batch"
        );
        append_acked(&handle, 4, &mut acked);
        // A batch in flight when the power fails: never acknowledged either.
        storage.set_fail_fsync(true);
        assert!(handle.current().append(named("in-flight", 0..2)).is_err());
        drop(handle);
        assert_only_acked_survive_power_loss(&storage, keep_unsynced, &acked, &case);
    }
}

#[test]
fn a_failed_batch_that_rolled_segments_is_cut_whole() {
    let storage = FaultyStorage::new();
    storage.set_fsync_failure(FsyncFailure::Dropped);
    let handle = handle_on(&storage);
    let mut acked = Vec::new();
    append_acked(&handle, 2, &mut acked);
    // The batch fills segment 0 and a second one, both synced with their
    // directory entries, and fails in a third.
    storage.fail_fsync_after(4);
    let failed = handle.current().append(named("failed", 0..40));
    assert!(matches!(failed, Err(JournalError::Poisoned { .. })));
    let segments = |storage: &FaultyStorage| {
        storage
            .list()
            .expect("list")
            .into_iter()
            .filter(|name| segment::parse_name(name).is_some())
            .count()
    };
    assert_eq!(segments(&storage), 3);
    storage.set_fail_fsync(false);
    let recovery = handle.recover().expect("recover").expect("it was poisoned");
    assert_eq!(
        recovery.next_seq, 6,
        "no record of the failed batch is kept"
    );
    assert_eq!(segments(&storage), 1);
    append_acked(&handle, 10, &mut acked);
    drop(handle);
    assert_only_acked_survive_power_loss(&storage, 0, &acked, "rolled");
}

#[test]
fn a_segment_whose_directory_fsync_failed_is_dropped_on_recovery() {
    let storage = FaultyStorage::new();
    let handle = handle_on(&storage);
    let mut acked = Vec::new();
    // 15 records of 17 bytes fill the 256-byte segment 0: the next batch
    // starts by rolling, and the directory fsync after the roll fails.
    append_acked(&handle, 5, &mut acked);
    storage.fail_fsync_after(1);
    let failed = handle.current().append(named("failed", 0..3));
    assert!(matches!(failed, Err(JournalError::Poisoned { .. })));
    storage.set_fail_fsync(false);
    handle.recover().expect("recover").expect("it was poisoned");
    // Acknowledged only once their segment's entry is durable too.
    append_acked(&handle, 4, &mut acked);
    drop(handle);
    assert_only_acked_survive_power_loss(&storage, 0, &acked, "directory");
}

#[test]
fn retiring_the_segment_before_a_fresh_roll_leaves_recovery_a_place_to_cut() {
    let storage = FaultyStorage::new();
    let handle = handle_on(&storage);
    let mut acked = Vec::new();
    // 15 records of 17 bytes fill the 256-byte segment 0: the next batch
    // starts by rolling.
    append_acked(&handle, 5, &mut acked);
    storage.fail_fsync_after(2);
    let failed = handle.current().append(named("failed", 0..3));
    assert!(matches!(failed, Err(JournalError::Poisoned { .. })));
    storage.set_fail_fsync(false);
    // Every record committed was taken: segment 0 goes.
    let journal = handle.current();
    journal.set_cursor("sink", 15).expect("cursor");
    assert_eq!(journal.retire().expect("retire"), 1);
    drop(journal);
    let recovery = handle.recover().expect("recover").expect("it was poisoned");
    assert_eq!((recovery.first_seq, recovery.next_seq), (15, 15));
    append_acked(&handle, 2, &mut acked);
    let all = read_all(&handle.current(), 15);
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], (15, b"acked-015".to_vec()));
}

#[test]
fn a_write_that_fills_the_disk_is_cut_on_recovery() {
    let storage = FaultyStorage::new();
    let handle = handle_on(&storage);
    let mut acked = Vec::new();
    append_acked(&handle, 2, &mut acked);
    // One whole record and part of the next fit.
    storage.set_space_left(Some(30));
    let failed = handle.current().append(named("failed", 0..3));
    assert!(matches!(failed, Err(JournalError::Poisoned { .. })));
    storage.set_space_left(None);
    let recovery = handle.recover().expect("recover").expect("it was poisoned");
    assert_eq!(recovery.truncated_bytes, 30);
    assert_eq!(recovery.next_seq, 6, "the whole record written is cut too");
    append_acked(&handle, 2, &mut acked);
    drop(handle);
    assert_only_acked_survive_power_loss(&storage, 0, &acked, "full disk");
}

#[test]
fn a_recovery_that_fails_half_way_runs_again_later() {
    let storage = FaultyStorage::new();
    let handle = handle_on(&storage);
    let mut acked = Vec::new();
    append_acked(&handle, 2, &mut acked);
    storage.set_fail_fsync(true);
    assert!(handle.current().append(named("failed", 0..20)).is_err());
    assert!(matches!(handle.recover(), Err(JournalError::Io { .. })));
    assert!(handle.current().is_poisoned(), "the failed journal stays");
    storage.set_fail_fsync(false);
    let recovery = handle.recover().expect("recover").expect("it was poisoned");
    assert_eq!(recovery.next_seq, 6);
    append_acked(&handle, 2, &mut acked);
    drop(handle);
    assert_only_acked_survive_power_loss(&storage, 0, &acked, "second try");
}

#[test]
fn big_segments_are_read_and_checked_chunk_by_chunk() {
    let storage = FaultyStorage::new();
    let config = JournalConfig {
        segment_bytes: 2 * 1024 * 1024,
        commit_ms: 0,
        ..JournalConfig::default()
    };
    let payload = |i: u64| vec![i as u8 + 1; 100_000];
    {
        let (journal, _) = open_mem(&storage, config.clone());
        for i in 0..40 {
            journal.append(vec![payload(i)]).expect("append");
        }
        let from_25: Vec<u64> = read_all(&journal, 25).iter().map(|r| r.0).collect();
        assert_eq!(from_25, (25..40).collect::<Vec<_>>());
        for (seq, read) in read_all(&journal, 0) {
            assert_eq!(read, payload(seq), "record {seq}");
        }
    }
    assert!(
        storage.list().expect("list").len() >= 2,
        "the segment rolled"
    );
    // Past the first megabyte of the first segment.
    let offset = 15 * segment::framed_len(100_000);
    storage.modify(&segment::file_name(0), |data| {
        data[offset as usize + segment::HEADER_LEN] ^= 1;
    });
    match Journal::open_with_storage(Arc::new(storage) as Arc<dyn Storage>, config) {
        Err(JournalError::Corrupt {
            segment,
            offset: at,
            ..
        }) => assert_eq!((segment, at), (segment::file_name(0), offset)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
