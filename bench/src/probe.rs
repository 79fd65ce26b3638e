//! A Teltonika tracker of the harness's own whose positions carry the wall
//! clock of their sending, in ms: the reference for the live stream's lag.
//! The simulated fleet cannot be one: its vehicles' clocks start with the
//! run and step one period per message, whatever the ramp and the send
//! jitter did to the real send times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_protocols::model::{Fix, Record, RecordKind, now_ms};
use drover_protocols::teltonika::device::{Codec, avl_packet, login, parse_ack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Ten positions a second: enough samples per stream client in a minute.
pub const EVERY: Duration = Duration::from_millis(100);
/// Longest wait for the login answer or an ack.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Teltonika's login answer that admits the device.
const ADMITTED: u8 = 0x01;

/// Logs `imei` in at the Teltonika listener `addr`, then sends a position
/// every [`EVERY`] from `start_after` for `length`, each after the previous
/// one's ack. Returns how many were acked.
pub async fn run(
    addr: SocketAddr,
    imei: String,
    start_after: Duration,
    length: Duration,
) -> anyhow::Result<u64> {
    let mut socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("the probe tracker connecting to {addr}"))?;
    socket.set_nodelay(true)?;
    socket.write_all(&login(&imei)).await?;
    let mut answer = [0u8; 1];
    timeout(ANSWER_TIMEOUT, socket.read_exact(&mut answer))
        .await
        .context("the probe tracker's login was not answered")??;
    anyhow::ensure!(
        answer[0] == ADMITTED,
        "the server refused the probe tracker {imei}"
    );
    tokio::time::sleep(start_after).await;
    let deadline = Instant::now() + length;
    let mut ticker = tokio::time::interval(EVERY);
    let mut acked = 0;
    while Instant::now() < deadline {
        ticker.tick().await;
        socket
            .write_all(&avl_packet(Codec::Codec8E, &[position(now_ms())]))
            .await?;
        let mut ack = [0u8; 4];
        timeout(ANSWER_TIMEOUT, socket.read_exact(&mut ack))
            .await
            .context("the probe tracker's position was not acked")??;
        anyhow::ensure!(
            parse_ack(&ack) == Some(1),
            "the server refused a probe position"
        );
        acked += 1;
    }
    Ok(acked)
}

/// A parked vehicle's fix at `time_ms`: only the time matters here.
fn position(time_ms: i64) -> Record {
    Record {
        time_ms,
        kind: RecordKind::Position,
        fix: Some(Fix {
            lat: 48.8584,
            lon: 2.2945,
            speed_kmh: 0.0,
            course_deg: 0.0,
            altitude_m: None,
            satellites: Some(9),
            valid: true,
        }),
        ..Record::default()
    }
}
