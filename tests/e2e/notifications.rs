//! Notifications with the real binary: rules made through the API send an
//! SOS alert to a local webhook receiver (signed, retried after a 500), to
//! a local SMTP sink as an email, and over MQTT (read by `mosquitto_sub`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_protocols::model::{Record, RecordKind, attr, now_ms};
use serde_json::{Value, json};

use crate::support::{self, Subscriber, admin_token, assert_error, http, login_as};
use crate::trips::{IMEI, Tracker};

/// One HTTP request as the receiver got it.
#[derive(Debug, Clone)]
struct Request {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback that answers 500 to the first request
/// and 200 to the others, one request per connection.
fn webhook_receiver() -> (u16, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    (port, serve_webhooks(listener, 1))
}

/// Receives webhooks on `listener`, answering 500 to the first `failures`
/// requests and 200 to the others.
fn serve_webhooks(listener: TcpListener, failures: usize) -> Arc<Mutex<Vec<Request>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let Some(request) = read_request(&stream) else {
                continue;
            };
            let mut seen = seen.lock().expect("the requests");
            seen.push(request);
            let status = if seen.len() <= failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    got
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { headers, body })
}

/// An SMTP sink on loopback: accepts every message and keeps its data.
fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let mail = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&mail);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(message) = smtp_session(stream) {
                kept.lock().expect("the mail").push(message);
            }
        }
    });
    (port, mail)
}

fn smtp_session(stream: TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink ESMTP\r\n").ok()?;
    let (mut line, mut message) = (String::new(), None);
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return message;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250 sink\r\n"
        } else if command.starts_with("DATA") {
            writer.write_all(b"354 go on\r\n").ok()?;
            let mut data = String::new();
            loop {
                line.clear();
                reader.read_line(&mut line).ok()?;
                if line.trim_end() == "." {
                    break;
                }
                data.push_str(&line);
            }
            message = Some(data);
            b"250 kept\r\n"
        } else if command.starts_with("QUIT") {
            let _ = writer.write_all(b"221 bye\r\n");
            return message;
        } else {
            b"250 ok\r\n"
        };
        writer.write_all(reply).ok()?;
    }
}

fn sos(time_ms: i64) -> Record {
    let mut record = support::position(time_ms, 54.68, 0.0, 0.0);
    record.kind = RecordKind::Alarm;
    record.attributes.set(attr::ALARM, "sos");
    record
}

#[test]
fn an_alert_reaches_a_webhook_an_inbox_and_an_mqtt_topic() {
    let (hook_port, hooks) = webhook_receiver();
    let (smtp_port, mail) = smtp_sink();
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = vec![
        "notifications.smtp.host=127.0.0.1".to_owned(),
        format!("notifications.smtp.port={smtp_port}"),
        "notifications.first_retry_ms=200".to_owned(),
    ];
    let (_node, ports) = support::drover_serve(dir.path(), &settings);
    let admin = admin_token(ports.http);
    let create = |body: Value| {
        http(
            ports.http,
            "POST",
            "/api/v1/notifications",
            Some(&admin),
            Some(&body),
        )
    };

    let webhook = json!({"name": "dispatch", "kinds": ["sos"],
        "channel": {"type": "webhook", "url": format!("http://127.0.0.1:{hook_port}/hook"), "secret": "s3cret"}});
    let (status, hook_rule) = create(webhook);
    assert_eq!(status, 201, "{hook_rule}");
    assert_eq!(hook_rule["signed"], true);
    assert!(
        !hook_rule.to_string().contains("s3cret"),
        "the secret is never shown"
    );
    let (status, mail_rule) = create(json!({"name": "ops mail", "devices": [IMEI],
        "channel": {"type": "email", "to": ["ops@example.com"]}}));
    assert_eq!(status, 201, "{mail_rule}");
    let (status, mqtt_rule) =
        create(json!({"name": "bus", "states": ["open", "closed"], "channel": {"type": "mqtt"}}));
    assert_eq!(status, 201, "{mqtt_rule}");
    let mqtt_id = mqtt_rule["id"].as_str().expect("an id").to_owned();

    // Bad rules, and who may make them.
    for (bad, why) in [
        (
            json!({"name": "x", "channel": {"type": "webhook", "url": "ftp://example.com"}}),
            "scheme",
        ),
        (
            json!({"name": "x", "channel": {"type": "webhook", "url": "https://exa mple.com"}}),
            "https://",
        ),
        (
            json!({"name": "x", "states": ["shut"], "channel": {"type": "mqtt"}}),
            "state",
        ),
        (
            json!({"name": "x", "kinds": ["Not Snake"], "channel": {"type": "mqtt"}}),
            "kind",
        ),
        (
            json!({"name": "x", "groups": ["nowhere"], "channel": {"type": "mqtt"}}),
            "group",
        ),
        (
            json!({"name": "x", "channel": {"type": "email", "to": ["not an address"]}}),
            "address",
        ),
    ] {
        assert_error(&create(bad), 422, "unprocessable", why);
    }
    let operator = json!({"username": "olga", "password": "olga's password", "role": "operator"});
    assert_eq!(
        http(
            ports.http,
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(&operator)
        )
        .0,
        201
    );
    let olga = login_as(ports.http, "olga", "olga's password");
    let refused = http(
        ports.http,
        "POST",
        "/api/v1/notifications",
        Some(&olga),
        Some(&json!({"name": "x", "channel": {"type": "mqtt"}})),
    );
    assert_error(&refused, 403, "forbidden", "an operator creates a rule");
    let (status, listed) = http(
        ports.http,
        "GET",
        "/api/v1/notifications",
        Some(&olga),
        None,
    );
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["notifications"].as_array().map(Vec::len), Some(3));

    let subscriber = Subscriber::start(dir.path(), ports.mqtt, &["drover/notifications/+"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    tracker.send_records(&[sos(now_ms() - 1_000)]);

    assert!(
        support::eventually(Duration::from_secs(20), || hooks
            .lock()
            .expect("hooks")
            .len()
            >= 2),
        "the webhook is tried again after its 500: {:?}",
        hooks.lock().expect("hooks")
    );
    let delivered = hooks.lock().expect("hooks")[1].clone();
    let alert: Value = serde_json::from_slice(&delivered.body).expect("JSON");
    assert_eq!(
        (alert["kind"].as_str(), alert["state"].as_str()),
        (Some("sos"), Some("open"))
    );
    assert_eq!(
        delivered.header("x-drover-signature"),
        Some(drover_notify::signature("s3cret", &delivered.body).as_str()),
        "signed with the rule's secret"
    );
    assert_eq!(delivered.header("x-drover-event"), Some("alert"));

    assert!(
        support::eventually(Duration::from_secs(20), || !mail
            .lock()
            .expect("mail")
            .is_empty()),
        "no email reached the sink"
    );
    let message = mail.lock().expect("mail")[0].clone();
    assert!(message.contains("To: ops@example.com"), "{message}");
    assert!(
        message.contains("Subject: [Drover] critical: sos on"),
        "{message}"
    );
    assert!(message.contains(IMEI), "{message}");

    let topic = format!("drover/notifications/{mqtt_id}");
    assert!(
        support::eventually(Duration::from_secs(10), || {
            subscriber
                .messages()
                .iter()
                .any(|(t, a)| *t == topic && a["kind"] == "sos")
        }),
        "nothing on {topic}: {:?}",
        subscriber.messages()
    );
    let (_, health) = support::http_get(ports.http, "/health");
    let counts = &health["notifications"];
    assert!(counts["delivered"].as_u64() >= Some(2), "{health}");
    assert!(counts["retried"].as_u64() >= Some(1), "{health}");

    let id = mqtt_rule["id"].as_str().expect("an id");
    let path = format!("/api/v1/notifications/{id}");
    assert_eq!(http(ports.http, "DELETE", &path, Some(&admin), None).0, 204);
    assert_error(
        &http(ports.http, "GET", &path, Some(&admin), None),
        404,
        "not_found",
        "deleted",
    );
}

/// Writes a test CA and a certificate for 127.0.0.1 signed by it into
/// `dir` with the openssl command; returns the CA's PEM file.
fn certificates(dir: &std::path::Path) -> std::path::PathBuf {
    support::require("openssl");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Drover test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ]);
    dir.join("ca.pem")
}

/// Runs a Python server `script` on a free port with the certificate of
/// [`certificates`] and `out` as its arguments, once it listens.
fn tls_server(
    what: &'static str,
    script: &str,
    dir: &std::path::Path,
    out: &std::path::Path,
) -> (support::Process, u16) {
    support::require("python3");
    let port = support::free_port();
    let process = support::Process::spawn(
        what,
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .arg(out)
            .stdout(std::process::Stdio::null()),
    );
    support::wait_for_port(port, what);
    (process, port)
}

/// An HTTPS receiver (Python's http.server over ssl) that answers 200 and
/// appends `{"signature", "body"}` lines to `out`.
fn https_receiver(dir: &std::path::Path, out: &std::path::Path) -> (support::Process, u16) {
    let script = r#"
import http.server, json, ssl, sys
port, cert, key, out = sys.argv[1:5]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(out, "a") as f:
            f.write(json.dumps({"signature": self.headers.get("X-Drover-Signature"),
                                "body": body.decode()}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(port)), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
    tls_server("https receiver", script, dir, out)
}

/// Starts a node with `settings`, makes `rule`, raises an SOS and returns
/// the first line the receiver wrote to `received`.
fn first_delivery(
    dir: &std::path::Path,
    settings: &[String],
    rule: &Value,
    received: &std::path::Path,
) -> Value {
    let (_node, ports) = support::drover_serve(dir, settings);
    let admin = admin_token(ports.http);
    let (status, created) = http(
        ports.http,
        "POST",
        "/api/v1/notifications",
        Some(&admin),
        Some(rule),
    );
    assert_eq!(status, 201, "{created}");
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    tracker.send_records(&[sos(now_ms())]);
    let lines = || std::fs::read_to_string(received).unwrap_or_default();
    assert!(
        support::eventually(Duration::from_secs(15), || !lines().is_empty()),
        "nothing reached the receiver"
    );
    serde_json::from_str(lines().lines().next().expect("a line")).expect("JSON")
}

#[test]
fn an_https_webhook_is_delivered_to_a_receiver_signed_by_a_configured_ca() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = certificates(dir.path());
    let received = dir.path().join("received.jsonl");
    let (_receiver, hook_port) = https_receiver(dir.path(), &received);
    let settings = vec![format!("notifications.ca_file={}", ca.display())];
    let rule = json!({"name": "secure", "kinds": ["sos"],
        "channel": {"type": "webhook", "url": format!("https://127.0.0.1:{hook_port}/hook"), "secret": "s3cret"}});
    let first = first_delivery(dir.path(), &settings, &rule, &received);
    let body = first["body"].as_str().expect("the body");
    let alert: Value = serde_json::from_str(body).expect("the alert's JSON");
    assert_eq!(
        (alert["kind"].as_str(), alert["device"].as_str()),
        (Some("sos"), Some(IMEI))
    );
    assert_eq!(
        first["signature"].as_str(),
        Some(drover_notify::signature("s3cret", body.as_bytes()).as_str()),
        "signed as over plain HTTP"
    );
}

/// An SMTP sink (Python) that offers STARTTLS with the certificate in `dir`
/// and appends `{"tls", "message"}` lines to `out` for each message.
fn starttls_sink(dir: &std::path::Path, out: &std::path::Path) -> (support::Process, u16) {
    let script = r#"
import json, socket, ssl, sys, threading
port, cert, key, out = sys.argv[1:5]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
def serve(conn):
    state = {"conn": conn, "tls": False}
    reader = conn.makefile("rb")
    def say(text):
        state["conn"].sendall(text.encode() + b"\r\n")
    say("220 sink ESMTP")
    data = None
    while True:
        line = reader.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        verb = text.upper()
        if data is not None:
            if text == ".":
                with open(out, "a") as f:
                    f.write(json.dumps({"tls": state["tls"], "message": "\n".join(data)}) + "\n")
                data = None
                say("250 OK")
            else:
                data.append(text)
        elif verb.startswith("EHLO"):
            say("250-sink")
            say("250 HELP" if state["tls"] else "250 STARTTLS")
        elif verb == "STARTTLS" and not state["tls"]:
            say("220 ready")
            state["conn"] = context.wrap_socket(state["conn"], server_side=True)
            state["tls"] = True
            reader = state["conn"].makefile("rb")
        elif verb == "DATA":
            say("354 go on")
            data = []
        elif verb == "QUIT":
            say("221 bye")
            state["conn"].close()
            return
        else:
            say("250 OK")
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(port)))
server.listen()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
    tls_server("STARTTLS sink", script, dir, out)
}

#[test]
fn an_email_goes_over_starttls_to_a_relay_signed_by_a_configured_ca() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = certificates(dir.path());
    let received = dir.path().join("mail.jsonl");
    let (_sink, smtp_port) = starttls_sink(dir.path(), &received);
    let settings = vec![
        format!("notifications.ca_file={}", ca.display()),
        "notifications.smtp.host=127.0.0.1".to_owned(),
        format!("notifications.smtp.port={smtp_port}"),
        "notifications.smtp.tls=starttls".to_owned(),
    ];
    let rule = json!({"name": "ops mail", "kinds": ["sos"],
        "channel": {"type": "email", "to": ["ops@example.com"]}});
    let mail = first_delivery(dir.path(), &settings, &rule, &received);
    assert_eq!(mail["tls"], true, "sent after STARTTLS: {mail}");
    let message = mail["message"].as_str().expect("the message");
    assert!(
        message.contains("sos") && message.contains(IMEI),
        "{message}"
    );
}

#[test]
fn a_webhook_still_waiting_when_the_node_is_killed_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // The receiver is not up yet: deliveries fail and wait a minute to retry.
    let hook_port = support::free_port();
    let settings = vec![
        "notifications.attempts=20".to_owned(),
        "notifications.first_retry_ms=60000".to_owned(),
    ];
    let ports = support::Ports::free();
    let node = support::drover_serve_on(dir.path(), ports, &settings);
    let admin = admin_token(ports.http);
    let rule = json!({"name": "dispatch", "kinds": ["sos"],
        "channel": {"type": "webhook", "url": format!("http://127.0.0.1:{hook_port}/hook")}});
    let (status, created) = http(
        ports.http,
        "POST",
        "/api/v1/notifications",
        Some(&admin),
        Some(&rule),
    );
    assert_eq!(status, 201, "{created}");
    let mut tracker = Tracker::connect(ports.teltonika, now_ms());
    tracker.send_records(&[sos(now_ms())]);
    let retried =
        || support::http_get(ports.http, "/health").1["notifications"]["retried"].as_u64();
    assert!(
        support::eventually(Duration::from_secs(15), || retried() == Some(1)),
        "the first delivery failed and waits to retry: {:?}",
        retried()
    );
    drop(tracker);
    node.kill9();

    let listener = TcpListener::bind(("127.0.0.1", hook_port)).expect("the receiver's port");
    let hooks = serve_webhooks(listener, 0);
    let _node = support::drover_serve_on(dir.path(), ports, &settings);
    assert!(
        support::eventually(Duration::from_secs(20), || !hooks
            .lock()
            .expect("the requests")
            .is_empty()),
        "the spooled delivery was not sent after the restart"
    );
    let delivered = hooks.lock().expect("the requests")[0].clone();
    let alert: Value = serde_json::from_slice(&delivered.body).expect("the alert's JSON");
    assert_eq!(
        (alert["kind"].as_str(), alert["device"].as_str()),
        (Some("sos"), Some(IMEI))
    );
}
