//! The queue's lifecycle on a real fjall directory, times passed in.

use std::time::Duration;

use drover_commands::{
    CommandError, CommandId, CommandQueue, CommandRecord, CommandRequest, Delivery, QueueConfig,
    Status,
};
use drover_protocols::command::{Command, CommandKind};
use drover_protocols::model::DeviceId;
use tempfile::TempDir;

const T0: i64 = 1_764_133_200_000;
const SECOND: i64 = 1000;
/// The answer timeout the tests configure.
const TIMEOUT: i64 = 60 * SECOND;

fn config() -> QueueConfig {
    QueueConfig {
        answer_timeout: Duration::from_secs(60),
        max_open_per_device: 4,
    }
}

fn open(dir: &TempDir) -> CommandQueue {
    CommandQueue::open(dir.path(), config()).expect("the queue opens")
}

fn device(n: u32) -> DeviceId {
    DeviceId::new(&format!("35000000000000{n}"))
}

fn request(kind: CommandKind) -> CommandRequest {
    CommandRequest::new(Command::new(kind).expect("a valid command"))
}

fn stop() -> CommandRequest {
    request(CommandKind::EngineStop)
}

fn submit(queue: &CommandQueue, device: &DeviceId, request: CommandRequest, at: i64) -> CommandId {
    queue.submit(device, request, at).expect("submitted").id
}

fn status(queue: &CommandQueue, id: CommandId) -> Status {
    record(queue, id).status
}

fn record(queue: &CommandQueue, id: CommandId) -> CommandRecord {
    queue.get(id).expect("readable").expect("stored")
}

/// Sends every due command of `device`, as a node with it online would.
fn deliver(queue: &CommandQueue, device: &DeviceId, at: i64) -> Vec<CommandRecord> {
    queue
        .deliver(device, at, |_| Delivery::Sent)
        .expect("delivered")
}

#[test]
fn a_command_is_queued_sent_and_answered() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let id = submit(&queue, &truck, stop(), T0);
    let queued = record(&queue, id);
    assert_eq!(queued.status, Status::Queued);
    assert_eq!(queued.expires_ms, T0 + 86_400 * SECOND);
    assert_eq!((queued.attempts, queued.attempts_made), (3, 0));

    let sent = deliver(&queue, &truck, T0 + SECOND);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].status, sent[0].sent_ms),
        (Status::Sent, Some(T0 + SECOND))
    );
    assert!(queue.due(&truck, T0 + SECOND).unwrap().is_empty());

    let answered = queue
        .answered(&truck, "Cut off the fuel supply: Success!", T0 + 2 * SECOND)
        .unwrap()
        .expect("the sent command is answered");
    assert_eq!(answered.id, id);
    let stored = record(&queue, id);
    assert_eq!(stored.status, Status::Answered);
    assert_eq!(
        stored.result.as_deref(),
        Some("Cut off the fuel supply: Success!")
    );
    assert_eq!(stored.answered_ms, Some(T0 + 2 * SECOND));
    // Nothing else waits for an answer.
    assert_eq!(
        queue.answered(&truck, "again", T0 + 3 * SECOND).unwrap(),
        None
    );
}

#[test]
fn an_offline_device_gets_its_commands_in_order_when_it_connects() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let first = submit(&queue, &truck, stop(), T0);
    let second = submit(&queue, &truck, request(CommandKind::Reboot), T0);
    let offline = queue.deliver(&truck, T0, |_| Delivery::Offline).unwrap();
    assert!(offline.is_empty());
    assert_eq!(status(&queue, first), Status::Queued);

    let mut order = Vec::new();
    queue
        .deliver(&truck, T0 + 600 * SECOND, |r| {
            order.push(r.id);
            Delivery::Sent
        })
        .unwrap();
    assert_eq!(order, [first, second]);
    // Answers complete them oldest first.
    let a = queue.answered(&truck, "one", T0 + 601 * SECOND).unwrap();
    let b = queue.answered(&truck, "two", T0 + 602 * SECOND).unwrap();
    assert_eq!(a.map(|r| r.id), Some(first));
    assert_eq!(b.map(|r| r.id), Some(second));
}

#[test]
fn a_command_the_protocol_refuses_fails_with_the_reason() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let interval = submit(
        &queue,
        &truck,
        request(CommandKind::SetInterval { secs: 30 }),
        T0,
    );
    let stop = submit(&queue, &truck, stop(), T0);
    queue
        .deliver(&truck, T0, |r| match r.command.kind() {
            CommandKind::SetInterval { .. } => Delivery::Refused("no interval command".into()),
            _ => Delivery::Sent,
        })
        .unwrap();
    let failed = record(&queue, interval);
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_deref(), Some("no interval command"));
    assert_eq!(status(&queue, stop), Status::Sent);
}

#[test]
fn an_unanswered_command_is_sent_again_then_fails() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let mut stop = stop();
    stop.attempts = 2;
    let id = submit(&queue, &truck, stop, T0);
    deliver(&queue, &truck, T0);
    assert!(queue.expire(T0 + TIMEOUT - 1).unwrap().is_empty());

    let requeued = queue.expire(T0 + TIMEOUT).unwrap();
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        (requeued[0].status, requeued[0].attempts_left()),
        (Status::Queued, 1)
    );

    let t1 = T0 + 2 * TIMEOUT;
    assert_eq!(deliver(&queue, &truck, t1).len(), 1);
    let failed = queue.expire(t1 + TIMEOUT).unwrap();
    assert_eq!(failed[0].status, Status::Failed);
    assert_eq!(
        failed[0].error.as_deref(),
        Some("no answer after 2 attempts")
    );
    assert!(queue.due(&truck, t1 + TIMEOUT).unwrap().is_empty());
    assert_eq!(
        queue.answered(&truck, "late", t1 + TIMEOUT + 1).unwrap(),
        None
    );
    assert_eq!(record(&queue, id).status, Status::Failed);
}

#[test]
fn a_late_answer_completes_a_command_queued_again() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let id = submit(&queue, &truck, stop(), T0);
    deliver(&queue, &truck, T0);
    queue.expire(T0 + TIMEOUT).unwrap();
    assert_eq!(status(&queue, id), Status::Queued);
    let late = queue.answered(&truck, "OK", T0 + TIMEOUT + 1).unwrap();
    assert_eq!(late.map(|r| (r.id, r.status)), Some((id, Status::Answered)));
}

#[test]
fn commands_expire_after_their_ttl_queued_or_sent() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let (parked, online) = (device(1), device(2));
    let mut short = stop();
    short.ttl_secs = 30;
    let never_sent = submit(&queue, &parked, short.clone(), T0);
    let sent = submit(&queue, &online, short, T0);
    deliver(&queue, &online, T0);

    assert!(queue.expire(T0 + 30 * SECOND - 1).unwrap().is_empty());
    // Due no longer once past the ttl, even before expire runs.
    assert!(queue.due(&parked, T0 + 30 * SECOND).unwrap().is_empty());
    let expired = queue.expire(T0 + 30 * SECOND).unwrap();
    assert_eq!(expired.len(), 2);
    for id in [never_sent, sent] {
        let stored = record(&queue, id);
        assert_eq!(stored.status, Status::Expired);
        assert_eq!(
            stored.error.as_deref(),
            Some("not answered within its ttl of 30 s")
        );
    }
    assert!(deliver(&queue, &parked, T0 + 31 * SECOND).is_empty());
    assert!(queue.expire(T0 + 31 * SECOND).unwrap().is_empty());
}

#[test]
fn the_queue_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let truck = device(1);
    let (sent, queued) = {
        let queue = open(&dir);
        let sent = submit(&queue, &truck, stop(), T0);
        deliver(&queue, &truck, T0);
        let queued = submit(&queue, &truck, request(CommandKind::Reboot), T0 + SECOND);
        (sent, queued)
    };
    let queue = open(&dir);
    assert_eq!(status(&queue, sent), Status::Sent);
    let due = queue.due(&truck, T0 + 2 * SECOND).unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), [queued]);
    // Ids keep increasing, even with a clock set back across the restart.
    let after = submit(&queue, &truck, stop(), T0 - 3_600 * SECOND);
    assert!(after > queued);
    let answered = queue.answered(&truck, "OK", T0 + 3 * SECOND).unwrap();
    assert_eq!(answered.map(|r| r.id), Some(sent));
    drop(queue);
    let queue = open(&dir);
    assert_eq!(status(&queue, sent), Status::Answered);
    let listed: Vec<CommandId> = queue
        .list(&truck, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [after, queued, sent]);
}

#[test]
fn lists_are_per_device_newest_first_and_limited() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    // Ids of one device must not leak into another whose id extends it.
    let (short, long) = (DeviceId::new("35"), DeviceId::new("350"));
    let ids: Vec<CommandId> = (0..3)
        .map(|i| submit(&queue, &short, stop(), T0 + i))
        .collect();
    submit(&queue, &long, stop(), T0);
    let listed: Vec<CommandId> = queue
        .list(&short, 2)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    assert_eq!(queue.list(&long, 10).unwrap().len(), 1);
    assert!(queue.list(&device(9), 10).unwrap().is_empty());
    assert!(queue.list(&DeviceId::new(""), 10).unwrap().is_empty());
}

#[test]
fn open_devices_names_each_device_with_open_commands_once() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let (short, long, done) = (DeviceId::new("35"), DeviceId::new("350"), device(3));
    submit(&queue, &short, stop(), T0);
    submit(&queue, &short, stop(), T0 + 1);
    submit(&queue, &long, stop(), T0);
    submit(&queue, &done, stop(), T0);
    deliver(&queue, &done, T0 + SECOND);
    queue.answered(&done, "ok", T0 + 2 * SECOND).unwrap();
    assert_eq!(queue.open_devices().unwrap(), [short, long]);
}

#[test]
fn bad_submissions_are_refused() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let mut zero = stop();
    zero.attempts = 0;
    assert!(matches!(
        queue.submit(&truck, zero, T0),
        Err(CommandError::Invalid(_))
    ));
    let nameless = queue.submit(&DeviceId::new(""), stop(), T0);
    assert!(matches!(nameless, Err(CommandError::Invalid(_))));
    for _ in 0..4 {
        submit(&queue, &truck, stop(), T0);
    }
    let full = queue.submit(&truck, stop(), T0);
    assert!(matches!(full, Err(CommandError::TooMany { open: 4, .. })));
    // Another device is not held back.
    submit(&queue, &device(2), stop(), T0);
}

#[test]
fn mark_sent_takes_only_queued_commands() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let truck = device(1);
    let id = submit(&queue, &truck, stop(), T0);
    let sent = queue.mark_sent(id, T0 + 1).unwrap();
    assert_eq!((sent.status, sent.attempts_made), (Status::Sent, 1));
    assert!(matches!(
        queue.mark_sent(id, T0 + 2),
        Err(CommandError::NotQueued {
            status: Status::Sent,
            ..
        })
    ));
    let unknown: CommandId = "01JZZZZZZZZZZZZZZZZZZZZZZZ".parse().unwrap();
    assert!(matches!(
        queue.mark_sent(unknown, T0),
        Err(CommandError::NotFound(_))
    ));
    assert_eq!(queue.get(unknown).unwrap(), None);
}

#[test]
fn records_serialize_for_the_api() {
    let dir = TempDir::new().unwrap();
    let queue = open(&dir);
    let id = submit(
        &queue,
        &device(1),
        request(CommandKind::SetInterval { secs: 30 }),
        T0,
    );
    let json = serde_json::to_value(record(&queue, id)).unwrap();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["status"], "queued");
    assert_eq!(
        json["command"],
        serde_json::json!({"type": "set_interval", "secs": 30})
    );
    assert_eq!(json["device"], "350000000000001");
}
