//! The commands connection against an external broker (Mosquitto), which a
//! test can restart: commands keep arriving across reconnections, and
//! retained ones are never run.

mod support;

use std::sync::atomic::Ordering;

use drover_mqtt::MqttConfig;
use drover_mqtt::commands::{self, Commands, ReceivedCommand};
use drover_mqtt::credentials::Credentials;
use tokio_util::sync::CancellationToken;

use support::{IMEI, LIMIT, PREFIX, Tool, free_port, mosquitto, mosquitto_pub, wait_until};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("drover-mqtt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn subscribe(port: u16, shutdown: &CancellationToken) -> Commands {
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}"),
        embedded_listen: String::new(),
        topic_prefix: PREFIX.to_owned(),
        client_id: format!("commands-test-{port}"),
        ..MqttConfig::default()
    };
    // An external broker without a login: the account is not sent.
    let account = Credentials::new("drover", "unused");
    let (commands, _task) = commands::subscribe(&config, &account, shutdown.clone()).unwrap();
    commands
}

async fn subscribed(commands: &Commands, times: u64) {
    wait_until(|| commands.stats.subscriptions.load(Ordering::Acquire) >= times).await;
}

fn send(port: u16, json: &str) {
    let topic = format!("{PREFIX}/devices/{IMEI}/command");
    let mut sent = mosquitto_pub(port, None, &topic, json);
    assert!(sent.exit_status().success());
}

async fn received(commands: &Commands) -> ReceivedCommand {
    tokio::time::timeout(LIMIT, commands.recv())
        .await
        .expect("a command")
        .expect("the connection is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_keep_arriving_after_the_broker_restarts() {
    let dir = temp_dir("commands-restart");
    let port = free_port();
    let broker = mosquitto(&dir, port);
    let shutdown = CancellationToken::new();
    let commands = subscribe(port, &shutdown);
    subscribed(&commands, 1).await;
    send(port, r#"{"type":"engine_stop"}"#);
    assert_eq!(
        received(&commands).await.payload,
        br#"{"type":"engine_stop"}"#
    );

    // Without persistence, the restarted broker has forgotten the session
    // and its subscription: only subscribing again brings commands back.
    drop(broker);
    let _broker: Tool = mosquitto(&dir, port);
    subscribed(&commands, 2).await;
    send(port, r#"{"type":"engine_resume"}"#);
    let command = received(&commands).await;
    assert_eq!(command.device, IMEI);
    assert_eq!(command.payload, br#"{"type":"engine_resume"}"#);
    shutdown.cancel();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_command_is_never_run() {
    let dir = temp_dir("commands-retained");
    let port = free_port();
    let _broker = mosquitto(&dir, port);
    let topic = format!("{PREFIX}/devices/{IMEI}/command");
    let mut retained = Tool::spawn(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-r",
            "-t",
            &topic,
            "-m",
            "{\"type\":\"old\"}",
        ],
    );
    assert!(retained.exit_status().success());

    let shutdown = CancellationToken::new();
    let commands = subscribe(port, &shutdown);
    subscribed(&commands, 1).await;
    send(port, r#"{"type":"new"}"#);
    assert_eq!(received(&commands).await.payload, br#"{"type":"new"}"#);
    assert_eq!(commands.stats.ignored.load(Ordering::Relaxed), 1);
    shutdown.cancel();
    std::fs::remove_dir_all(&dir).unwrap();
}
