//! What a simulation run does: [`SimArgs`] for the command line (flattened
//! into `drover sim`), [`SimConfig`] for library users and the report.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use drover_protocols::teltonika::device::Codec;
use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::route::{City, LatLon};

/// Largest IMEI: 15 digits.
const MAX_IMEI: u64 = 999_999_999_999_999;
/// Rates outside these make periods that time arithmetic cannot hold.
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1_000_000.0;
/// Longest duration of any kind: keeps `Instant + duration` from overflowing.
const MAX_TIME: Duration = Duration::from_secs(366 * 24 * 3600);
/// Most local source addresses: a /22 of loopback is already 4M ports.
const MAX_SOURCE_ADDRS: usize = 1024;

/// Command-line options of `drover sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Host of the Drover server to load.
    #[arg(long, default_value = "127.0.0.1")]
    pub target: String,
    /// GT06 port of the server.
    #[arg(long, default_value_t = 5023)]
    pub gt06_port: u16,
    /// Teltonika port of the server.
    #[arg(long, default_value_t = 5027)]
    pub teltonika_port: u16,
    /// Number of virtual devices.
    #[arg(long, default_value_t = 100)]
    pub devices: u32,
    /// Messages per second per device (GT06 locations, Teltonika AVL packets).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Fraction of the devices that speak Teltonika; the others speak GT06.
    #[arg(long, default_value_t = 0.5)]
    pub teltonika_share: f64,
    /// Records per Teltonika AVL packet (1–255), sampled at equal intervals of the period.
    #[arg(long, default_value_t = 1)]
    pub records_per_packet: u8,
    /// Teltonika codec of the AVL packets.
    #[arg(long, value_enum, default_value_t = CodecChoice::C8e)]
    pub codec: CodecChoice,
    /// GT06 devices send a heartbeat after this many locations; its ack proves them delivered.
    #[arg(long, default_value_t = 10)]
    pub gt06_heartbeat_every: u32,
    /// Length of the run in seconds, ramp included.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Connect the devices spread evenly over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub ramp: f64,
    /// Seed of the vehicles' routes and the send jitter; the same seed replays the same tracks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Centre of the city the fleet drives in, as LAT,LON.
    #[arg(long, default_value = "52.52,13.40", value_parser = parse_lat_lon)]
    pub centre: LatLon,
    /// Radius of the city in km: devices start inside it and turn back at its edge.
    #[arg(long, default_value_t = 12.0)]
    pub radius_km: f64,
    /// MQTT broker whose position topics give the device→MQTT latency.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt: String,
    /// Do not subscribe to MQTT (ack latency only).
    #[arg(long)]
    pub no_mqtt: bool,
    /// Topic prefix the server publishes under.
    #[arg(long, default_value = "drover")]
    pub topic_prefix: String,
    /// Seconds to wait after the run for acked positions still missing on MQTT.
    #[arg(long, default_value_t = 3.0)]
    pub mqtt_grace: f64,
    /// Send each device's next packet as soon as the previous one is acked, ignoring --rate.
    #[arg(long)]
    pub closed_loop: bool,
    /// Seconds without an ack (with packets outstanding) before a connection counts as stalled.
    #[arg(long, default_value_t = 10.0)]
    pub ack_timeout: f64,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write one JSON line per position sent (device, protocol, time, coordinates, acked).
    #[arg(long, value_name = "FILE.jsonl")]
    pub record_log: Option<PathBuf>,
    /// IMEI of device 0; device i gets base + i, as 15 digits.
    #[arg(long, default_value_t = SimConfig::DEFAULT_IMEI_BASE)]
    pub imei_base: u64,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Local addresses to connect from, round-robin over the devices, e.g.
    /// `127.0.0.2-127.0.0.9` or `127.0.0.2,127.0.0.3`: each source address
    /// has its own ephemeral ports, so more than ~28k connections fit.
    #[arg(long, value_name = "ADDRS", value_parser = parse_source_addrs)]
    pub source_addrs: Option<SourceAddrs>,
}

/// Local addresses connections are made from (see `--source-addrs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceAddrs(pub Vec<IpAddr>);

/// Teltonika codec, as named on the command line and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum CodecChoice {
    #[value(name = "8")]
    #[serde(rename = "8")]
    C8,
    #[value(name = "8e")]
    #[serde(rename = "8e")]
    C8e,
    #[value(name = "16")]
    #[serde(rename = "16")]
    C16,
}

impl From<CodecChoice> for Codec {
    fn from(c: CodecChoice) -> Codec {
        match c {
            CodecChoice::C8 => Codec::Codec8,
            CodecChoice::C8e => Codec::Codec8E,
            CodecChoice::C16 => Codec::Codec16,
        }
    }
}

/// Everything a run needs, independent of clap. Serialised into the report so
/// that a result says how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub target: String,
    pub gt06_port: u16,
    pub teltonika_port: u16,
    pub devices: u32,
    /// Messages per second per device.
    pub rate: f64,
    pub teltonika_share: f64,
    pub records_per_packet: u8,
    pub codec: CodecChoice,
    pub gt06_heartbeat_every: u32,
    #[serde(with = "secs")]
    pub duration: Duration,
    #[serde(with = "secs")]
    pub ramp: Duration,
    pub seed: u64,
    pub city: City,
    /// Broker URL (`mqtt://[user:password@]host:port`); `None` measures ack
    /// latency only.
    pub mqtt: Option<String>,
    pub topic_prefix: String,
    #[serde(with = "secs")]
    pub mqtt_grace: Duration,
    pub closed_loop: bool,
    #[serde(with = "secs")]
    pub ack_timeout: Duration,
    pub report: Option<PathBuf>,
    pub record_log: Option<PathBuf>,
    pub imei_base: u64,
    pub progress: bool,
    /// Local addresses to connect from, round-robin; empty lets the system choose.
    #[serde(default)]
    pub source_addrs: Vec<IpAddr>,
}

impl SimConfig {
    /// High enough that base + i keeps 15 digits for any fleet size, in a
    /// range real trackers do not use.
    pub const DEFAULT_IMEI_BASE: u64 = 350_000_000_000_000;

    /// Checks what clap's types cannot: ranges, and that IMEIs stay 15 digits.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Config(what.to_owned()));
        if self.devices == 0 {
            return bad("--devices must be at least 1");
        }
        if !self.closed_loop && !(MIN_RATE..=MAX_RATE).contains(&self.rate) {
            return bad("--rate must be between 0.001 and 1000000 messages per second");
        }
        if !(0.0..=1.0).contains(&self.teltonika_share) {
            return bad("--teltonika-share must be between 0 and 1");
        }
        if self.records_per_packet == 0 {
            return bad("--records-per-packet must be between 1 and 255");
        }
        if self.gt06_heartbeat_every == 0 {
            return bad("--gt06-heartbeat-every must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if self.imei_base < 100_000_000_000_000
            || self.imei_base.saturating_add(u64::from(self.devices)) > MAX_IMEI + 1
        {
            return bad("--imei-base + --devices must stay a 15-digit IMEI");
        }
        if self.ack_timeout.is_zero() {
            return bad("--ack-timeout must be positive");
        }
        let times = [self.duration, self.ramp, self.ack_timeout, self.mqtt_grace];
        if times.iter().any(|t| *t > MAX_TIME) {
            return bad("durations must be under a year");
        }
        Ok(())
    }

    /// The local address device `index` connects from, if any is configured.
    pub fn source_addr(&self, index: u32) -> Option<IpAddr> {
        let n = self.source_addrs.len();
        (n > 0).then(|| self.source_addrs[index as usize % n])
    }

    /// The IMEI of device `index`.
    pub fn imei(&self, index: u32) -> u64 {
        self.imei_base + u64::from(index)
    }

    /// Whether device `index` speaks Teltonika. The Teltonika devices are
    /// spread evenly through the fleet so that both protocols ramp up together.
    pub fn is_teltonika(&self, index: u32) -> bool {
        let share = self.teltonika_share;
        let i = f64::from(index);
        ((i + 1.0) * share).floor() > (i * share).floor()
    }

    /// Time between two messages of one device.
    pub fn period(&self) -> Duration {
        if self.closed_loop {
            // As fast as acks allow; vehicles still advance one second per message.
            return Duration::from_secs(1);
        }
        Duration::from_secs_f64(1.0 / self.rate)
    }

    /// How far a device's vehicle (and clock) moves between two of its records.
    ///
    /// GT06 timestamps are whole seconds, and positions are matched on MQTT by
    /// (device, time), so GT06 records are at least a second apart: above 1
    /// message/s the vehicles' clocks run ahead of the wall clock.
    pub fn record_interval(&self, teltonika: bool) -> Duration {
        let period = self.period();
        if teltonika {
            // Whole milliseconds, as Teltonika timestamps are.
            let step_ms = period.as_secs_f64() * 1000.0 / f64::from(self.records_per_packet);
            return Duration::from_millis(step_ms.round().max(1.0) as u64);
        }
        Duration::from_secs(period.as_secs_f64().round().max(1.0) as u64)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            target: "127.0.0.1".into(),
            gt06_port: 5023,
            teltonika_port: 5027,
            devices: 100,
            rate: 1.0,
            teltonika_share: 0.5,
            records_per_packet: 1,
            codec: CodecChoice::C8e,
            gt06_heartbeat_every: 10,
            duration: Duration::from_secs(60),
            ramp: Duration::from_secs(5),
            seed: 1,
            city: City::default(),
            mqtt: Some("mqtt://127.0.0.1:1883".into()),
            topic_prefix: "drover".into(),
            mqtt_grace: Duration::from_secs(3),
            closed_loop: false,
            ack_timeout: Duration::from_secs(10),
            report: None,
            record_log: None,
            imei_base: SimConfig::DEFAULT_IMEI_BASE,
            progress: true,
            source_addrs: Vec::new(),
        }
    }
}

impl TryFrom<SimArgs> for SimConfig {
    type Error = SimError;

    fn try_from(a: SimArgs) -> Result<Self, SimError> {
        let secs = |what: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| SimError::Config(format!("--{what} must be a number of seconds")))
        };
        let config = SimConfig {
            target: a.target,
            gt06_port: a.gt06_port,
            teltonika_port: a.teltonika_port,
            devices: a.devices,
            rate: a.rate,
            teltonika_share: a.teltonika_share,
            records_per_packet: a.records_per_packet,
            codec: a.codec,
            gt06_heartbeat_every: a.gt06_heartbeat_every,
            duration: secs("duration", a.duration)?,
            ramp: secs("ramp", a.ramp)?,
            seed: a.seed,
            city: City {
                centre: a.centre,
                radius_m: a.radius_km * 1000.0,
            },
            mqtt: (!a.no_mqtt).then_some(a.mqtt),
            topic_prefix: a.topic_prefix,
            mqtt_grace: secs("mqtt-grace", a.mqtt_grace)?,
            closed_loop: a.closed_loop,
            ack_timeout: secs("ack-timeout", a.ack_timeout)?,
            report: a.report,
            record_log: a.record_log,
            imei_base: a.imei_base,
            progress: !a.quiet,
            source_addrs: a.source_addrs.map(|s| s.0).unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }
}

fn parse_lat_lon(s: &str) -> Result<LatLon, String> {
    let (lat, lon) = s.split_once(',').ok_or("expected LAT,LON")?;
    let lat: f64 = lat.trim().parse().map_err(|_| "latitude is not a number")?;
    let lon: f64 = lon
        .trim()
        .parse()
        .map_err(|_| "longitude is not a number")?;
    if !(-85.0..=85.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err("LAT must be within ±85 and LON within ±180".into());
    }
    Ok(LatLon { lat, lon })
}

/// `A-B` (an IPv4 range, both ends included) or single addresses, comma-separated.
fn parse_source_addrs(s: &str) -> Result<SourceAddrs, String> {
    let mut addrs = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((from, to)) => {
                let ip = |v: &str| {
                    v.trim()
                        .parse::<Ipv4Addr>()
                        .map_err(|_| format!("{v:?} is not an IPv4 address"))
                };
                let (from, to) = (u32::from(ip(from)?), u32::from(ip(to)?));
                if to < from || (to - from) as usize >= MAX_SOURCE_ADDRS {
                    return Err(format!(
                        "{item}: expected a rising range of at most {MAX_SOURCE_ADDRS} addresses"
                    ));
                }
                addrs.extend((from..=to).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
            }
            None => addrs.push(
                item.parse::<IpAddr>()
                    .map_err(|_| format!("{item:?} is not an IP address"))?,
            ),
        }
        if addrs.len() > MAX_SOURCE_ADDRS {
            return Err(format!("at most {MAX_SOURCE_ADDRS} source addresses"));
        }
    }
    if addrs.is_empty() {
        return Err("no source address given".into());
    }
    Ok(SourceAddrs(addrs))
}

/// Durations as seconds (a float) in JSON, as people write them.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        SimConfig::try_from(cli.sim).map_err(|e| e.to_string())
    }

    #[test]
    fn command_line_defaults_are_the_library_defaults() {
        assert_eq!(parse(&[]), Ok(SimConfig::default()));
    }

    #[test]
    fn options_reach_the_config() {
        let c = parse(&[
            "--devices=7",
            "--codec=16",
            "--no-mqtt",
            "--centre=48.85,2.35",
            "--duration=2.5",
            "--quiet",
        ])
        .unwrap_or_default();
        assert_eq!(c.devices, 7);
        assert_eq!(c.codec, CodecChoice::C16);
        assert_eq!(c.mqtt, None);
        assert_eq!(
            c.city.centre,
            LatLon {
                lat: 48.85,
                lon: 2.35
            }
        );
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert!(!c.progress);
    }

    #[test]
    fn source_addresses_are_ranges_or_lists() {
        let c = parse(&["--source-addrs=127.0.0.2-127.0.0.4,127.0.1.1"]).unwrap_or_default();
        let expected: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        assert_eq!(c.source_addrs, expected);
        assert_eq!(c.source_addr(5), expected.get(1).copied());
        assert!(parse(&["--source-addrs=127.0.0.9-127.0.0.2"]).is_err());
        assert!(parse(&["--source-addrs=127.0.0.0-127.255.0.0"]).is_err());
        assert!(parse(&["--source-addrs=localhost"]).is_err());
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse(&["--devices=0"]).is_err());
        assert!(parse(&["--teltonika-share=1.5"]).is_err());
        assert!(parse(&["--rate=0"]).is_err());
        assert!(parse(&["--imei-base=999999999999999", "--devices=2"]).is_err());
        assert!(parse(&["--centre=north"]).is_err());
        assert!(parse(&["--duration=-1"]).is_err());
    }

    #[test]
    fn teltonika_share_splits_the_fleet_evenly() {
        let c = SimConfig {
            teltonika_share: 0.25,
            ..SimConfig::default()
        };
        let teltonika: Vec<u32> = (0..8).filter(|&i| c.is_teltonika(i)).collect();
        assert_eq!(teltonika, vec![3, 7]);
        let all = SimConfig {
            teltonika_share: 1.0,
            ..SimConfig::default()
        };
        assert!((0..100).all(|i| all.is_teltonika(i)));
        let none = SimConfig {
            teltonika_share: 0.0,
            ..SimConfig::default()
        };
        assert!((0..100).all(|i| !none.is_teltonika(i)));
    }

    #[test]
    fn gt06_records_are_whole_seconds_apart() {
        let c = SimConfig {
            rate: 4.0,
            records_per_packet: 5,
            ..SimConfig::default()
        };
        assert_eq!(c.record_interval(false), Duration::from_secs(1));
        assert_eq!(c.record_interval(true), Duration::from_millis(50));
        let slow = SimConfig {
            rate: 0.4,
            ..SimConfig::default()
        };
        assert_eq!(slow.record_interval(false), Duration::from_secs(3));
    }
}
