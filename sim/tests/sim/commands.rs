//! Trackers answer the server's commands as real devices do, and an engine
//! stop stops the vehicle.

use drover_protocols::command::{Command, CommandKind};

use crate::fake_server::{get, start_commanding};
use crate::runner::run_ok;

fn command(kind: CommandKind) -> Command {
    Command::new(kind).unwrap_or_else(|e| panic!("{e}"))
}

/// Four trackers of each protocol in the fake servers' run.
const PER_PROTOCOL: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_stop_is_answered_and_stops_the_vehicle() {
    let s = start_commanding(&[command(CommandKind::EngineStop)]).await;
    let r = run_ok(s.config.clone()).await;
    assert_eq!(r.errors.len(), 0, "{:?}", r.errors);
    assert_eq!(r.messages_sent, s.sent_frames());
    assert_eq!(
        s.gt06.answers(),
        vec!["Cut off the fuel supply: Success!"; PER_PROTOCOL]
    );
    assert_eq!(
        s.teltonika.answers(),
        vec!["DOUT1:1 Timeout:INFINITY"; PER_PROTOCOL]
    );
    for seen in [&s.gt06, &s.teltonika] {
        assert!(get(&seen.positions_after_answer) > 0);
        assert_eq!(get(&seen.running_after_answer), 0, "moved after the stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_is_answered_in_order() {
    let commands = [
        command(CommandKind::EngineStop),
        command(CommandKind::EngineResume),
        command(CommandKind::Reboot),
        command(CommandKind::Custom {
            text: "WHERE#".into(),
        }),
    ];
    let s = start_commanding(&commands).await;
    let r = run_ok(s.config.clone()).await;
    assert_eq!(r.errors.len(), 0, "{:?}", r.errors);
    let gt06 = [
        "Cut off the fuel supply: Success!",
        "Restore fuel supply: Success!",
        "RESET OK!",
        "Command error!",
    ];
    let teltonika = [
        "DOUT1:1 Timeout:INFINITY",
        "DOUT1:0 Timeout:INFINITY",
        "Reset",
        "Unknown command",
    ];
    for (seen, expected) in [(&s.gt06, gt06), (&s.teltonika, teltonika)] {
        let by_device = seen.answers_by_device();
        assert_eq!(by_device.len(), PER_PROTOCOL, "{by_device:?}");
        for answers in by_device.values() {
            assert_eq!(answers, &expected);
        }
    }
}
