use std::sync::Arc;

use super::storage::{FaultyStorage, Storage};
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
            Box::new(move |seqs: Range<u64>, _: &Attachment| {
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
