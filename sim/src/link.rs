//! The protocol side of one virtual tracker's connection, without I/O: which
//! frames to send, how to read the server's replies, and which positions an
//! ack proves delivered.
//!
//! - Teltonika: each AVL packet is answered with the number of records
//!   accepted; that acks the packet's positions.
//! - GT06: servers do not ack locations, only logins and heartbeats. Since a
//!   server handles a connection's frames in order, the ack of a heartbeat
//!   proves every location sent before it on that connection was accepted,
//!   so a heartbeat follows every `gt06_heartbeat_every` locations.
//!
//! Among the replies may be commands (GT06 0x80, Teltonika codec 12). The
//! link answers them as the real devices do ([`Link::obey`]): GT06 with a
//! 0x15 text, Teltonika with a codec 12 response, and an engine stop cuts
//! the vehicle's fuel until an engine resume.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use drover_protocols::command::{Command, CommandKind};
use drover_protocols::gt06::{self, Gt06, Gt06Session};
use drover_protocols::model::Record;
use drover_protocols::teltonika::device::Codec;
use drover_protocols::teltonika::{self, LOGIN_ACCEPTED, Teltonika, TeltonikaSession};
use drover_protocols::{Check, DecodeOptions, Protocol as _, Session as _};

use crate::config::SimConfig;
use crate::vehicle::Vehicle;

/// Packets awaiting an ack before a tracker stops sending: real devices wait
/// for each ack; a load generator may pipeline, within reason.
pub const MAX_IN_FLIGHT: usize = 256;

const GT06_LOGIN: u8 = 0x01;
const GT06_HEARTBEAT: u8 = 0x13;
const GT06_COMMAND: u8 = 0x80;
/// How a Teltonika command frame starts; an ack never does, since every
/// packet a tracker sends holds at least one record.
const TELTONIKA_PREAMBLE: [u8; 4] = [0; 4];
/// A `log` value for positions that are not being logged.
pub const NOT_LOGGED: u32 = u32::MAX;

/// The device protocols the simulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Gt06,
    Teltonika,
}

impl Protocol {
    /// The name the server uses for it, in logs and the record log.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Gt06 => "gt06",
            Protocol::Teltonika => "teltonika",
        }
    }

    pub fn of_device(config: &SimConfig, index: u32) -> Protocol {
        if config.is_teltonika(index) {
            Protocol::Teltonika
        } else {
            Protocol::Gt06
        }
    }
}

/// A position put into a packet: what the record log and the ledger need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staged {
    pub time_ms: i64,
    pub lat: f64,
    pub lon: f64,
}

/// A position written and not acked yet; `log` indexes the record log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub time_ms: i64,
    pub log: u32,
}

/// A packet that the server will ack.
#[derive(Debug, Clone, Copy)]
struct Packet {
    sent: Instant,
    /// GT06 heartbeat serial (unused for Teltonika).
    serial: u16,
    /// Positions this ack will prove delivered.
    positions: u32,
}

/// Frames built and not yet fully written.
#[derive(Debug, Default)]
pub struct Outbox {
    pub bytes: Vec<u8>,
    pub written: usize,
    pub messages: u64,
    pub positions: Vec<Staged>,
    packets: Vec<Packet>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn unwritten(&self) -> &[u8] {
        self.bytes.get(self.written..).unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.written = 0;
        self.messages = 0;
        self.positions.clear();
        self.packets.clear();
    }
}

/// A command from the server, as the device read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub command: Command,
    /// GT06's server flag, echoed in the answer (0 for Teltonika).
    pub server_flag: u32,
}

/// What the replies read so far said.
#[derive(Debug, Default)]
pub struct Replies {
    /// The login's answer, when it came.
    pub login: Option<bool>,
    /// Latency of each ack.
    pub acks: Vec<Duration>,
    /// Positions those acks proved delivered, oldest first.
    pub acked: Vec<Sent>,
    /// Commands to obey and answer, in the order they came.
    pub commands: Vec<Received>,
    /// Byte runs that were not a reply this tracker understands.
    pub garbage: u64,
}

impl Replies {
    pub fn clear(&mut self) {
        self.login = None;
        self.acks.clear();
        self.acked.clear();
        self.commands.clear();
        self.garbage = 0;
    }
}

/// One connection's protocol state.
pub struct Link {
    protocol: Protocol,
    imei: String,
    codec: Codec,
    records_per_packet: u8,
    heartbeat_every: u32,
    /// Splits GT06 replies, which are framed like device frames.
    gt06: Gt06Session,
    /// Splits Teltonika commands, which are framed like AVL packets.
    teltonika: TeltonikaSession,
    serial: u16,
    since_heartbeat: u32,
    logged_in: bool,
    in_flight: VecDeque<Packet>,
    unacked: VecDeque<Sent>,
    records: Vec<Record>,
}

impl Link {
    pub fn new(protocol: Protocol, imei: &str, config: &SimConfig) -> Link {
        Link {
            protocol,
            imei: imei.to_owned(),
            codec: config.codec.into(),
            records_per_packet: config.records_per_packet.max(1),
            heartbeat_every: config.gt06_heartbeat_every.max(1),
            gt06: Gt06::new(DecodeOptions::default()).session(),
            teltonika: Teltonika::new(DecodeOptions::default()).session(),
            serial: 0,
            since_heartbeat: 0,
            logged_in: false,
            in_flight: VecDeque::new(),
            unacked: VecDeque::new(),
            records: Vec::new(),
        }
    }

    pub fn login(&mut self) -> Vec<u8> {
        match self.protocol {
            Protocol::Gt06 => {
                let serial = self.next_serial();
                gt06::device::login(&self.imei, serial)
            }
            Protocol::Teltonika => teltonika::device::login(&self.imei),
        }
    }

    /// Whether another message may be built now.
    pub fn can_send(&self, closed_loop: bool) -> bool {
        if closed_loop {
            return self.in_flight.is_empty();
        }
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// When the oldest unacked packet was written.
    pub fn oldest_in_flight(&self) -> Option<Instant> {
        self.in_flight.front().map(|p| p.sent)
    }

    pub fn all_acked(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Builds the next message, advancing the vehicle by `interval` per record.
    /// In closed loop a GT06 tracker sends a whole heartbeat's worth at once,
    /// since only the heartbeat will be answered.
    pub fn build(
        &mut self,
        vehicle: &mut Vehicle,
        interval: Duration,
        closed_loop: bool,
        now: Instant,
        out: &mut Outbox,
    ) {
        match self.protocol {
            Protocol::Teltonika => self.build_avl(vehicle, interval, now, out),
            Protocol::Gt06 => {
                let count = if closed_loop { self.heartbeat_every } else { 1 };
                for _ in 0..count {
                    self.build_location(vehicle, interval, now, out);
                }
            }
        }
    }

    /// What to send before closing: a GT06 heartbeat to have the last
    /// locations acked (Teltonika packets are acked one by one).
    pub fn build_final(&mut self, now: Instant, out: &mut Outbox) {
        if self.protocol == Protocol::Gt06 {
            self.build_heartbeat(now, out);
        }
    }

    fn build_avl(
        &mut self,
        vehicle: &mut Vehicle,
        interval: Duration,
        now: Instant,
        out: &mut Outbox,
    ) {
        self.records.clear();
        for _ in 0..self.records_per_packet {
            vehicle.step(interval);
            let record = vehicle.record();
            out.positions.push(staged(&record));
            self.records.push(record);
        }
        out.bytes
            .extend_from_slice(&teltonika::device::avl_packet(self.codec, &self.records));
        out.messages += 1;
        let positions = u32::from(self.records_per_packet);
        out.packets.push(Packet {
            sent: now,
            serial: 0,
            positions,
        });
    }

    fn build_location(
        &mut self,
        vehicle: &mut Vehicle,
        interval: Duration,
        now: Instant,
        out: &mut Outbox,
    ) {
        vehicle.step(interval);
        let record = vehicle.record();
        let serial = self.next_serial();
        out.bytes
            .extend_from_slice(&gt06::device::location(&record, serial));
        out.positions.push(staged(&record));
        out.messages += 1;
        self.since_heartbeat += 1;
        if self.since_heartbeat >= self.heartbeat_every {
            self.build_heartbeat(now, out);
        }
    }

    fn build_heartbeat(&mut self, now: Instant, out: &mut Outbox) {
        let serial = self.next_serial();
        out.bytes
            .extend_from_slice(&gt06::device::heartbeat(serial));
        out.messages += 1;
        out.packets.push(Packet {
            sent: now,
            serial,
            positions: self.since_heartbeat,
        });
        self.since_heartbeat = 0;
    }

    fn next_serial(&mut self) -> u16 {
        self.serial = self.serial.wrapping_add(1);
        self.serial
    }

    /// The outbox was fully written: its packets now await acks. `first_log`
    /// is the record-log index of its first position, or [`NOT_LOGGED`].
    pub fn commit(&mut self, out: &Outbox, first_log: u32) {
        self.in_flight.extend(out.packets.iter().copied());
        for (i, p) in out.positions.iter().enumerate() {
            let log = if first_log == NOT_LOGGED {
                NOT_LOGGED
            } else {
                first_log + i as u32
            };
            self.unacked.push_back(Sent {
                time_ms: p.time_ms,
                log,
            });
        }
    }

    /// Reads the replies at the start of `buf` into `replies`; returns how
    /// many bytes were used (the rest is an incomplete reply).
    pub fn read_replies(&mut self, buf: &[u8], now: Instant, replies: &mut Replies) -> usize {
        match self.protocol {
            Protocol::Teltonika => self.read_teltonika(buf, now, replies),
            Protocol::Gt06 => self.read_gt06(buf, now, replies),
        }
    }

    fn read_teltonika(&mut self, buf: &[u8], now: Instant, replies: &mut Replies) -> usize {
        let mut used = 0;
        if !self.logged_in {
            let Some(&answer) = buf.first() else { return 0 };
            let accepted = answer == LOGIN_ACCEPTED;
            self.logged_in = accepted;
            replies.login = Some(accepted);
            used = 1;
        }
        while let Some(reply) = buf.get(used..used + 4) {
            if reply == TELTONIKA_PREAMBLE {
                match self.read_teltonika_command(&buf[used..], replies) {
                    Some(n) => used += n,
                    None => break,
                }
                continue;
            }
            used += 4;
            match (
                teltonika::device::parse_ack(reply),
                self.in_flight.pop_front(),
            ) {
                (Some(count), Some(packet)) => self.ack_packet(packet, count, now, replies),
                _ => replies.garbage += 1,
            }
        }
        used
    }

    /// Reads the codec 12 command at the start of `buf`; returns its length,
    /// or `None` while it is incomplete.
    fn read_teltonika_command(&mut self, buf: &[u8], replies: &mut Replies) -> Option<usize> {
        match self.teltonika.check(buf) {
            Check::Frame(n) => {
                let frame = buf.get(..n).unwrap_or_default();
                match teltonika::device::parse_command(frame) {
                    Some(command) => replies.commands.push(Received {
                        command,
                        server_flag: 0,
                    }),
                    None => replies.garbage += 1,
                }
                Some(n)
            }
            Check::Garbage(n) => {
                replies.garbage += 1;
                Some(n.max(1))
            }
            Check::Incomplete(_) => None,
        }
    }

    fn read_gt06(&mut self, buf: &[u8], now: Instant, replies: &mut Replies) -> usize {
        let mut used = 0;
        while let Some(rest) = buf.get(used..).filter(|r| !r.is_empty()) {
            match self.gt06.check(rest) {
                Check::Frame(n) => {
                    self.on_gt06_reply(rest.get(..n).unwrap_or_default(), now, replies);
                    used += n;
                }
                Check::Garbage(n) => {
                    replies.garbage += 1;
                    used += n.max(1);
                }
                Check::Incomplete(_) => break,
            }
        }
        used
    }

    fn on_gt06_reply(&mut self, frame: &[u8], now: Instant, replies: &mut Replies) {
        match gt06::device::parse_reply(frame) {
            Some((GT06_LOGIN, _)) if !self.logged_in => {
                self.logged_in = true;
                replies.login = Some(true);
            }
            Some((GT06_HEARTBEAT, serial)) => self.ack_heartbeat(serial, now, replies),
            Some((GT06_COMMAND, _)) => match gt06::device::parse_command(frame) {
                Some(received) => replies.commands.push(Received {
                    command: received.command,
                    server_flag: received.server_flag,
                }),
                None => replies.garbage += 1,
            },
            Some(_) => {}
            None => replies.garbage += 1,
        }
    }

    /// Obeys a command as the real device would: an engine stop cuts the
    /// vehicle's fuel, a resume restores it; and queues the answer.
    pub fn obey(&mut self, received: &Received, vehicle: &mut Vehicle, out: &mut Outbox) {
        match received.command.kind() {
            CommandKind::EngineStop => vehicle.cut_engine(),
            CommandKind::EngineResume => vehicle.restore_engine(),
            _ => {}
        }
        let text = answer_text(self.protocol, &received.command);
        let answer = match self.protocol {
            Protocol::Gt06 => {
                let serial = self.next_serial();
                gt06::device::command_answer(&text, received.server_flag, serial)
            }
            Protocol::Teltonika => teltonika::device::command_response(&text),
        };
        out.bytes.extend_from_slice(&answer);
        out.messages += 1;
    }

    /// A heartbeat's ack also acks any earlier heartbeat whose own ack was
    /// lost: the server took the frames in order.
    fn ack_heartbeat(&mut self, serial: u16, now: Instant, replies: &mut Replies) {
        let Some(at) = self.in_flight.iter().position(|p| p.serial == serial) else {
            replies.garbage += 1;
            return;
        };
        for packet in self.in_flight.drain(..=at).collect::<Vec<_>>() {
            self.ack_positions(packet.positions, packet.positions, replies);
            if packet.serial == serial {
                replies
                    .acks
                    .push(now.saturating_duration_since(packet.sent));
            }
        }
    }

    fn ack_packet(&mut self, packet: Packet, count: u32, now: Instant, replies: &mut Replies) {
        replies
            .acks
            .push(now.saturating_duration_since(packet.sent));
        self.ack_positions(packet.positions, count.min(packet.positions), replies);
    }

    /// Takes the packet's `positions` off the unacked queue, the first
    /// `accepted` of them as acked (a server may accept only part of a packet).
    fn ack_positions(&mut self, positions: u32, accepted: u32, replies: &mut Replies) {
        for i in 0..positions {
            let Some(sent) = self.unacked.pop_front() else {
                return;
            };
            if i < accepted {
                replies.acked.push(sent);
            }
        }
    }
}

/// What the real devices answer: Concox's texts for GT06 (an unknown
/// command gets "Command error!"), Teltonika's digital output report for
/// `setdigout`. Teltonika devices restart on `cpureset` without a word;
/// the simulator answers instead and stays connected, so the command ends.
fn answer_text(protocol: Protocol, command: &Command) -> String {
    let text = match (protocol, command.kind()) {
        (Protocol::Gt06, CommandKind::EngineStop) => "Cut off the fuel supply: Success!",
        (Protocol::Gt06, CommandKind::EngineResume) => "Restore fuel supply: Success!",
        (Protocol::Gt06, CommandKind::Reboot) => "RESET OK!",
        (Protocol::Gt06, CommandKind::SetInterval { secs }) => {
            return format!("TIMER set ok. Now data upload period is {secs} seconds.");
        }
        (Protocol::Gt06, CommandKind::Custom { .. }) => "Command error!",
        (Protocol::Teltonika, CommandKind::EngineStop) => "DOUT1:1 Timeout:INFINITY",
        (Protocol::Teltonika, CommandKind::EngineResume) => "DOUT1:0 Timeout:INFINITY",
        (Protocol::Teltonika, CommandKind::Reboot) => "Reset",
        (Protocol::Teltonika, _) => "Unknown command",
    };
    text.to_owned()
}

fn staged(record: &Record) -> Staged {
    let fix = record.fix.unwrap_or_default();
    Staged {
        time_ms: record.time_ms,
        lat: fix.lat,
        lon: fix.lon,
    }
}

#[cfg(test)]
mod tests {
    use drover_protocols::model::RecordKind;
    use drover_protocols::{Decoded, Protocol as _, Session};

    use super::*;
    use crate::route::City;

    fn config() -> SimConfig {
        SimConfig {
            records_per_packet: 3,
            gt06_heartbeat_every: 2,
            ..SimConfig::default()
        }
    }

    /// Feeds `bytes` to a real server-side session and returns its replies.
    fn serve(session: &mut impl Session, bytes: &[u8]) -> (Vec<u8>, usize) {
        let (mut at, mut reply, mut records) = (0, Vec::new(), 0);
        let mut out = Decoded::default();
        while let Check::Frame(n) = session.check(&bytes[at..]) {
            out.clear();
            let decoded = session.decode(&bytes[at..at + n], &mut out);
            assert!(decoded.is_ok(), "{decoded:?}");
            reply.extend_from_slice(&out.reply);
            // GT06 heartbeats decode to status records; count positions only.
            records += out
                .records
                .iter()
                .filter(|r| r.kind == RecordKind::Position)
                .count();
            at += n;
        }
        assert_eq!(at, bytes.len(), "unframed bytes left");
        (reply, records)
    }

    fn exchange(protocol: Protocol, server: &mut impl Session) -> (Replies, usize) {
        let config = config();
        let mut link = Link::new(protocol, "350000000000001", &config);
        let mut vehicle = Vehicle::new(1, 1, &City::default(), 1_764_133_200_000);
        let now = Instant::now();
        let mut replies = Replies::default();
        let (login_reply, _) = serve(server, &link.login());
        link.read_replies(&login_reply, now, &mut replies);
        assert_eq!(replies.login, Some(true));
        let mut out = Outbox::default();
        for _ in 0..3 {
            link.build(&mut vehicle, Duration::from_secs(1), false, now, &mut out);
        }
        link.build_final(now, &mut out);
        link.commit(&out, 0);
        let (reply, records) = serve(server, &out.bytes);
        replies.clear();
        let used = link.read_replies(&reply, now, &mut replies);
        assert_eq!(used, reply.len());
        assert!(link.all_acked());
        (replies, records)
    }

    #[test]
    fn teltonika_acks_cover_every_record_of_their_packets() {
        let mut server = teltonika::Teltonika::new(DecodeOptions::default()).session();
        let (replies, records) = exchange(Protocol::Teltonika, &mut server);
        assert_eq!(records, 9);
        assert_eq!(replies.acks.len(), 3);
        let logged: Vec<u32> = replies.acked.iter().map(|s| s.log).collect();
        assert_eq!(logged, (0..9).collect::<Vec<_>>());
        assert_eq!(replies.garbage, 0);
    }

    #[test]
    fn gt06_heartbeat_acks_cover_the_locations_before_them() {
        let mut server = Gt06::new(DecodeOptions::default()).session();
        let (replies, records) = exchange(Protocol::Gt06, &mut server);
        // 3 locations, a heartbeat after the 2nd and a final one.
        assert_eq!(records, 3);
        assert_eq!(replies.acks.len(), 2);
        assert_eq!(replies.acked.len(), 3);
        assert_eq!(replies.garbage, 0);
    }

    /// The first record a real server session decodes from `bytes`.
    fn server_reads(protocol: Protocol, bytes: &[u8]) -> Record {
        let device = drover_protocols::model::DeviceId::new("350000000000001");
        let mut out = Decoded::default();
        let decoded = match protocol {
            Protocol::Gt06 => {
                Gt06Session::identified(&Gt06::default(), device).decode(bytes, &mut out)
            }
            Protocol::Teltonika => Teltonika::new(DecodeOptions::default())
                .session_for(device)
                .decode(bytes, &mut out),
        };
        assert!(decoded.is_ok(), "{decoded:?}");
        out.records.remove(0)
    }

    fn encoded(protocol: Protocol, command: &Command) -> Vec<u8> {
        let bytes = match protocol {
            Protocol::Gt06 => Gt06::default().encode_command(command),
            Protocol::Teltonika => Teltonika::new(DecodeOptions::default()).encode_command(command),
        };
        bytes.unwrap()
    }

    #[test]
    fn commands_among_replies_are_obeyed_and_answered() {
        let cases = [
            (Protocol::Gt06, "Cut off the fuel supply: Success!"),
            (Protocol::Teltonika, "DOUT1:1 Timeout:INFINITY"),
        ];
        for (protocol, answer) in cases {
            let mut link = Link::new(protocol, "350000000000001", &config());
            link.logged_in = true;
            let stop = Command::new(CommandKind::EngineStop).unwrap();
            let bytes = encoded(protocol, &stop);
            let mut replies = Replies::default();
            let now = Instant::now();
            // Half a frame waits for the rest.
            assert_eq!(link.read_replies(&bytes[..10], now, &mut replies), 0);
            assert_eq!(link.read_replies(&bytes, now, &mut replies), bytes.len());
            assert_eq!(replies.garbage, 0);
            let [received] = replies.commands.as_slice() else {
                panic!("{protocol:?}: {:?}", replies.commands);
            };
            assert_eq!(received.command, stop);

            let mut vehicle = Vehicle::new(1, 1, &City::default(), 1_764_133_200_000);
            let mut out = Outbox::default();
            link.obey(received, &mut vehicle, &mut out);
            let record = server_reads(protocol, &out.bytes);
            assert_eq!(record.kind, RecordKind::CommandResult);
            assert_eq!(drover_protocols::command::answer(&record), Some(answer));
            vehicle.step(Duration::from_secs(10));
            assert_eq!((vehicle.speed_kmh(), vehicle.ignition()), (0.0, false));
        }
    }

    #[test]
    fn teltonika_acks_after_a_command_are_still_read() {
        let mut link = Link::new(Protocol::Teltonika, "350000000000001", &config());
        let mut vehicle = Vehicle::new(1, 1, &City::default(), 1_764_133_200_000);
        let now = Instant::now();
        let mut out = Outbox::default();
        link.logged_in = true;
        link.build(&mut vehicle, Duration::from_secs(1), false, now, &mut out);
        link.commit(&out, NOT_LOGGED);
        let reboot = Command::new(CommandKind::Reboot).unwrap();
        let bytes = [
            encoded(Protocol::Teltonika, &reboot),
            3u32.to_be_bytes().to_vec(),
        ]
        .concat();
        let mut replies = Replies::default();
        assert_eq!(link.read_replies(&bytes, now, &mut replies), bytes.len());
        assert_eq!(replies.commands.len(), 1);
        assert_eq!(replies.acked.len(), 3);
        assert!(link.all_acked());
    }

    #[test]
    fn a_later_heartbeat_ack_also_acks_an_earlier_one() {
        let mut link = Link::new(Protocol::Gt06, "350000000000001", &config());
        let mut vehicle = Vehicle::new(1, 1, &City::default(), 1_764_133_200_000);
        let now = Instant::now();
        let mut out = Outbox::default();
        for _ in 0..4 {
            link.build(&mut vehicle, Duration::from_secs(1), false, now, &mut out);
        }
        link.commit(&out, NOT_LOGGED);
        // Serials: locations 1, 2, heartbeat 3, locations 4, 5, heartbeat 6.
        let mut replies = Replies::default();
        link.logged_in = true;
        link.read_replies(&gt06::device::heartbeat(6), now, &mut replies);
        assert_eq!(replies.acked.len(), 4);
        assert_eq!(replies.acks.len(), 1);
        assert!(link.all_acked());
    }
}
