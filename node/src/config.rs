//! The one configuration of a Drover node.
//!
//! Sources, later ones winning: built-in defaults (which run on a laptop), the
//! TOML file given by `--config`, environment variables `DROVER_<SECTION>__<KEY>`
//! (e.g. `DROVER_DEVICES__GT06__LISTEN=127.0.0.1:6023`), and `--set key=value`
//! flags. Every key is documented with its default in docs/configuration.md.

use std::path::{Path, PathBuf};

use anyhow::Context;
use drover_devices::DevicesConfig;
use drover_engine::Executor;
use drover_influxdb::InfluxConfig;
use drover_mqtt::MqttConfig;
use figment::Figment;
use figment::Provider;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its files.
    pub data_dir: PathBuf,
    pub engine: EngineSection,
    pub devices: DevicesConfig,
    pub mqtt: MqttConfig,
    pub http: HttpSection,
    pub auth: AuthSection,
    pub journal: JournalSection,
    pub storage: StorageSection,
    pub commands: CommandsSection,
    pub analytics: AnalyticsSection,
    pub notifications: drover_notify::NotifyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("drover-data"),
            engine: EngineSection::default(),
            devices: DevicesConfig::default(),
            mqtt: MqttConfig::default(),
            http: HttpSection::default(),
            auth: AuthSection::default(),
            journal: JournalSection::default(),
            storage: StorageSection::default(),
            commands: CommandsSection::default(),
            analytics: AnalyticsSection::default(),
            notifications: drover_notify::NotifyConfig::default(),
        }
    }
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Longest time between two ticks, in ms (a tick also starts as soon as input waits).
    pub tick_ms: u64,
    /// Shortest time between the starts of two ticks, in ms: inputs arriving
    /// meanwhile are applied together, so a busy server wakes the engine
    /// once per tick rather than once per record. 0 ticks per arrival.
    pub min_tick_ms: u64,
    /// `single_threaded` or `multi_threaded` system execution.
    pub executor: Executor,
    /// Threads of the compute pool used by the multi-threaded executor; 0 = cores − 1.
    pub threads: usize,
    /// Batches of committed records queued for the engine before its
    /// journal consumer waits (and then reads the journal instead). Never
    /// delays a device's ack.
    pub inbox_capacity: usize,
    /// Most records applied in one tick.
    pub batch_max: usize,
    /// A device without a connection goes offline this long after its last report.
    pub presence_timeout_secs: u64,
    /// How often the live world is snapshotted under `data_dir/engine`, in
    /// seconds; a restart replays the journal from the last snapshot. 0
    /// turns snapshots off (a restart replays what the journal holds).
    pub snapshot_secs: u64,
    /// A device silent this many days leaves the live world (its history
    /// stays); 0 keeps every device.
    pub forget_after_days: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            tick_ms: 10,
            min_tick_ms: 1,
            executor: Executor::SingleThreaded,
            threads: 0,
            inbox_capacity: 16,
            batch_max: 100_000,
            presence_timeout_secs: 600,
            snapshot_secs: 60,
            forget_after_days: 30,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Address of the HTTP API; empty disables it.
    pub listen: String,
    /// Largest request body in bytes; more is answered 413.
    pub max_body_bytes: usize,
    /// A request not answered within this many seconds is answered 408.
    pub request_timeout_secs: u64,
    /// Requests handled at once; more wait their turn.
    pub max_concurrent_requests: usize,
    /// Origins (`https://fleet.example.com`) whose pages may call the API
    /// from a browser (CORS) and open the live stream. Empty: none — the
    /// dashboard served by the node itself needs none.
    pub cors_origins: Vec<String>,
    /// Threads that answer requests; 0: one per core (their priority, not
    /// their number, keeps them from delaying ingest).
    pub worker_threads: usize,
    /// Nice value of those threads (0–19; 0 runs them like ingest): higher
    /// lets device sessions, the journal and the sinks go first when the
    /// CPU is short.
    pub nice: i32,
    /// The live stream pings each client this often, in seconds, and closes
    /// one that answers nothing for two of them; 0: no pings.
    pub stream_ping_secs: u64,
    /// Serve the dashboard at `/`.
    pub dashboard: bool,
    /// The dashboard map's tiles: a URL template with `{z}`, `{x}`, `{y}`
    /// (and `{s}` for a, b, c subdomains). Empty: no tiles, the map is a
    /// plain background with a graticule (offline installs).
    pub tile_url: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        let limits = drover_api::Limits::default();
        HttpSection {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: limits.max_body_bytes,
            request_timeout_secs: limits.request_timeout.as_secs(),
            max_concurrent_requests: limits.max_concurrent,
            cors_origins: limits.cors_origins,
            worker_threads: 0,
            nice: 10,
            stream_ping_secs: limits.stream_ping.map_or(0, |ping| ping.as_secs()),
            dashboard: true,
            tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png".to_owned(),
        }
    }
}

impl HttpSection {
    /// The HTTP runtime's worker threads.
    pub fn threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }

    pub fn dashboard(&self) -> drover_api::Dashboard {
        drover_api::Dashboard {
            enabled: self.dashboard,
            tile_url: self.tile_url.trim().to_owned(),
        }
    }

    pub fn limits(&self) -> drover_api::Limits {
        drover_api::Limits {
            max_body_bytes: self.max_body_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs.max(1)),
            max_concurrent: self.max_concurrent_requests.max(1),
            cors_origins: self.cors_origins.clone(),
            stream_ping: (self.stream_ping_secs > 0)
                .then(|| std::time::Duration::from_secs(self.stream_ping_secs)),
        }
    }
}

/// `[auth]`: users, tokens and the first administrator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// Lifetime of a login token, in seconds (12 h).
    pub token_ttl_secs: u64,
    /// Password of user `admin`, created at first start when there are no
    /// users. Unset: one is generated and printed once on standard output.
    pub admin_password: Option<String>,
    /// Whether `/metrics` answers without a token (Prometheus scrapers
    /// usually have none; the node listens on loopback by default).
    pub public_metrics: bool,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            token_ttl_secs: 12 * 3600,
            admin_password: None,
            public_metrics: true,
        }
    }
}

/// Written by hand so that printing a configuration never shows the password.
impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "…"))
            .field("public_metrics", &self.public_metrics)
            .finish()
    }
}

/// `[journal]`: the durable log every record enters before its ack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSection {
    /// How long appenders gather before one write and fsync (group commit), in ms.
    pub commit_ms: u64,
    /// Segment file size in MiB: the unit in which taken records are deleted.
    pub segment_mb: u64,
    /// Journal size (MB) at which new records are refused — devices keep them
    /// and retry — because a sink has fallen that far behind.
    pub max_backlog_mb: u64,
    /// Records waiting for the group commit (MB) before device sessions wait
    /// for room: bounds the memory of a burst.
    pub max_queued_mb: u64,
    /// Committed records (MB, as journaled; decoded they take a few times
    /// that) waiting in memory for each journal consumer (sinks, engine);
    /// past it a consumer reads the journal instead.
    pub feed_mb: u64,
    /// The newest committed segments (MB) kept for the integrator feed
    /// (`GET /api/v1/feed`) even when every sink has taken them: how far
    /// back an integrator that fell behind can still resume.
    pub feed_keep_mb: u64,
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            commit_ms: 2,
            segment_mb: 64,
            max_backlog_mb: 4096,
            max_queued_mb: 64,
            feed_mb: 16,
            feed_keep_mb: 256,
        }
    }
}

impl JournalSection {
    pub fn feed_bytes(&self) -> usize {
        usize::try_from(self.feed_mb.max(1).saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    pub fn feed_keep_bytes(&self) -> u64 {
        self.feed_keep_mb.saturating_mul(1_000_000)
    }

    pub fn max_queued_bytes(&self) -> usize {
        usize::try_from(self.max_queued_mb.max(1).saturating_mul(1_000_000)).unwrap_or(usize::MAX)
    }

    pub fn journal_config(&self) -> drover_journal::JournalConfig {
        drover_journal::JournalConfig {
            commit_ms: self.commit_ms,
            segment_bytes: self.segment_mb.max(1) * 1024 * 1024,
            ..Default::default()
        }
    }
}

/// `[storage]`: where history lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `embedded` (a local store under `data_dir`) or `influxdb`.
    pub backend: Backend,
    /// Days the embedded store keeps every record (0 keeps everything);
    /// older days are rolled up (`[storage.rollup]`). InfluxDB keeps data
    /// by its retention policy.
    pub retention_days: u32,
    /// Memory for the embedded store's block cache, in MiB.
    pub cache_mb: u64,
    /// Records a day of the embedded store holds in memory before writing
    /// them out, in MiB (today's and, around midnight, yesterday's: about
    /// twice this in use).
    pub memtable_mb: u64,
    /// Disk for the embedded store's own write-ahead journal, in MiB (at
    /// least 64).
    pub journal_mb: u64,
    /// `[storage.rollup]`: what the embedded store keeps past `retention_days`.
    pub rollup: RollupSection,
    /// `[storage.influxdb]`, used when `backend = "influxdb"`.
    pub influxdb: InfluxConfig,
}

/// `[storage.rollup]`: downsampled history past `storage.retention_days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupSection {
    /// One position per device per this many seconds is kept, with every
    /// position where ignition or motion changed or an alarm came, and
    /// every event; 0 deletes days past retention instead.
    pub interval_secs: u64,
    /// Days (from now) rolled-up history is kept; 0 keeps it for ever.
    pub retention_days: u32,
}

impl Default for RollupSection {
    fn default() -> Self {
        RollupSection {
            interval_secs: 60,
            retention_days: 730,
        }
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            backend: Backend::Embedded,
            retention_days: 90,
            cache_mb: 64,
            memtable_mb: 64,
            journal_mb: 512,
            rollup: RollupSection::default(),
            influxdb: InfluxConfig::default(),
        }
    }
}

/// `[commands]`: commands queued for devices (`data_dir/commands`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsSection {
    /// How long a sent command waits for the device's answer before it is
    /// sent again (or fails, its attempts spent), in seconds.
    pub answer_timeout_secs: u64,
    /// Open (queued or sent) commands one device may have; more are refused.
    pub max_open_per_device: usize,
}

impl Default for CommandsSection {
    fn default() -> Self {
        let queue = drover_commands::QueueConfig::default();
        CommandsSection {
            answer_timeout_secs: queue.answer_timeout.as_secs(),
            max_open_per_device: queue.max_open_per_device,
        }
    }
}

/// `[analytics]`: what the engine's analytics systems detect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsSection {
    pub trips: TripsSection,
    pub usage: UsageSection,
    pub alerts: AlertsSection,
    pub overspeed: OverspeedSection,
    pub offline: OfflineSection,
    pub fuel: FuelSection,
    pub harsh: HarshSection,
    pub sentinel: crate::sentinel::SentinelSection,
    pub summaries: SummariesSection,
}

/// `[analytics.summaries]`: daily summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummariesSection {
    /// Where days begin and end: an IANA time zone (`Europe/Vilnius`,
    /// daylight saving followed), `UTC`, or a fixed offset (`+02:00`).
    pub timezone: String,
    /// When yesterday's summaries are published, local time (`HH:MM`).
    pub at: String,
    /// Publish every device's summary of the day before at `at`.
    pub publish: bool,
}

impl Default for SummariesSection {
    fn default() -> Self {
        SummariesSection {
            timezone: "UTC".to_owned(),
            at: "00:05".to_owned(),
            publish: true,
        }
    }
}

impl SummariesSection {
    pub fn zone(&self) -> anyhow::Result<drover_api::Zone> {
        let name = self.timezone.trim();
        let zone = match fixed_offset(name) {
            Some(offset) => jiff::tz::TimeZone::fixed(offset),
            None => jiff::tz::TimeZone::get(name).map_err(|_| {
                anyhow::anyhow!(
                    "analytics.summaries.timezone must be an IANA time zone such as \
                     Europe/Vilnius, UTC, or an offset such as +02:00, not {name:?}"
                )
            })?,
        };
        Ok(drover_api::Zone {
            name: name.to_owned(),
            zone,
        })
    }

    pub fn time(&self) -> anyhow::Result<jiff::civil::Time> {
        self.at.parse().map_err(|_| {
            anyhow::anyhow!(
                "analytics.summaries.at must be a time of day such as 00:05, not {:?}",
                self.at
            )
        })
    }
}

/// `+HH:MM` or `-HH:MM` as an offset.
fn fixed_offset(text: &str) -> Option<jiff::tz::Offset> {
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 25 || minutes > 59 || text.len() != 6 {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

impl AnalyticsSection {
    /// The rules of the engine's alert detectors.
    pub fn alert_config(&self) -> drover_engine::AlertConfig {
        use drover_engine::systems::{alerts, fuel, harsh, offline, overspeed};
        drover_engine::AlertConfig {
            rules: alerts::AlertRules {
                live_window_ms: secs_ms(self.alerts.live_window_secs),
            },
            overspeed: overspeed::OverspeedRules {
                limit_kmh: self.overspeed.limit_kmh,
                min_duration_ms: secs_ms(self.overspeed.min_duration_secs),
            },
            offline: offline::OfflineRules {
                after_ms: secs_ms(self.offline.after_secs),
            },
            fuel: fuel::FuelRules {
                drop_pct: self.fuel.drop_pct,
            },
            harsh: harsh::HarshRules {
                braking_ms2: self.harsh.braking_ms2,
                acceleration_ms2: self.harsh.acceleration_ms2,
                max_gap_ms: secs_ms(self.harsh.max_gap_secs),
            },
        }
    }
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn ms_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or_default()
}

/// `[analytics.usage]`: engine hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageSection {
    /// A gap between records longer than this adds no engine hours, even
    /// with the ignition on at both ends (the tracker slept).
    pub max_gap_secs: u64,
}

impl Default for UsageSection {
    fn default() -> Self {
        UsageSection {
            max_gap_secs: ms_secs(drover_engine::systems::usage::UsageRules::default().max_gap_ms),
        }
    }
}

impl UsageSection {
    pub fn rules(&self) -> drover_engine::systems::usage::UsageRules {
        drover_engine::systems::usage::UsageRules {
            max_gap_ms: secs_ms(self.max_gap_secs),
        }
    }
}

/// `[analytics.alerts]`: what every alert detector shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// Records older than this (by the node's clock) and archived records
    /// raise no alert: a resent buffer fixes history, it does not page anyone.
    pub live_window_secs: u64,
}

impl Default for AlertsSection {
    fn default() -> Self {
        let rules = drover_engine::systems::alerts::AlertRules::default();
        AlertsSection {
            live_window_secs: ms_secs(rules.live_window_ms),
        }
    }
}

/// `[analytics.overspeed]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverspeedSection {
    /// The fleet-wide limit in km/h; 0 (the default) turns overspeed alerts off.
    pub limit_kmh: f64,
    /// How long the limit must be exceeded, by the device's clock.
    pub min_duration_secs: u64,
}

impl Default for OverspeedSection {
    fn default() -> Self {
        let rules = drover_engine::systems::overspeed::OverspeedRules::default();
        OverspeedSection {
            limit_kmh: rules.limit_kmh,
            min_duration_secs: ms_secs(rules.min_duration_ms),
        }
    }
}

/// `[analytics.offline]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineSection {
    /// A device silent this long gets an `offline` alert; 0 turns them off.
    pub after_secs: u64,
}

impl Default for OfflineSection {
    fn default() -> Self {
        let rules = drover_engine::systems::offline::OfflineRules::default();
        OfflineSection {
            after_secs: ms_secs(rules.after_ms),
        }
    }
}

/// `[analytics.fuel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FuelSection {
    /// A parked vehicle losing this many percent points raises `fuel_drop`;
    /// 0 turns it off.
    pub drop_pct: f64,
}

impl Default for FuelSection {
    fn default() -> Self {
        FuelSection {
            drop_pct: drover_engine::systems::fuel::FuelRules::default().drop_pct,
        }
    }
}

/// `[analytics.harsh]`: braking and acceleration from the speed of fixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarshSection {
    /// Deceleration in m/s² that is harsh braking; 0 turns it off.
    pub braking_ms2: f64,
    /// Acceleration in m/s² that is harsh; 0 turns it off.
    pub acceleration_ms2: f64,
    /// Fixes further apart than this are not compared.
    pub max_gap_secs: u64,
}

impl Default for HarshSection {
    fn default() -> Self {
        let rules = drover_engine::systems::harsh::HarshRules::default();
        HarshSection {
            braking_ms2: rules.braking_ms2,
            acceleration_ms2: rules.acceleration_ms2,
            max_gap_secs: ms_secs(rules.max_gap_ms),
        }
    }
}

/// `[analytics.trips]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TripsSection {
    /// A stop (or a silence) this long ends a trip, in seconds.
    pub min_stop_secs: u64,
    /// Fixes at this speed or above count as driving, in km/h.
    pub moving_kmh: f64,
}

impl Default for TripsSection {
    fn default() -> Self {
        let rules = drover_engine::systems::trips::TripRules::default();
        TripsSection {
            min_stop_secs: u64::try_from(rules.min_stop_ms / 1000).unwrap_or_default(),
            moving_kmh: rules.moving_kmh,
        }
    }
}

impl TripsSection {
    pub fn rules(&self) -> drover_engine::systems::trips::TripRules {
        drover_engine::systems::trips::TripRules {
            min_stop_ms: i64::try_from(self.min_stop_secs.max(1).saturating_mul(1000))
                .unwrap_or(i64::MAX),
            moving_kmh: self.moving_kmh,
        }
    }
}

impl CommandsSection {
    pub fn queue_config(&self) -> drover_commands::QueueConfig {
        drover_commands::QueueConfig {
            answer_timeout: std::time::Duration::from_secs(self.answer_timeout_secs.max(1)),
            max_open_per_device: self.max_open_per_device.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Embedded,
    Influxdb,
}

impl Config {
    /// Defaults ← file ← environment ← `--set` overrides.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.exists(), "config file {} not found", file.display());
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("DROVER_").split("__"));
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--set {item:?}: expected KEY=VALUE"))?;
            figment = figment.merge(Serialized::global(key.trim(), parse_value(value.trim())));
        }
        figment.extract().context("invalid configuration")
    }
}

/// `--set` values are TOML scalars when they parse as one (`qos=0`,
/// `accept_bad_checksum=true`), strings otherwise (`listen=127.0.0.1:1`,
/// and times and dates such as `at=00:05`, which no setting takes as a
/// TOML date).
fn parse_value(value: &str) -> figment::value::Value {
    let as_toml = format!("v = {value}");
    toml_scalar(&as_toml).unwrap_or_else(|| value.into())
}

fn toml_scalar(doc: &str) -> Option<figment::value::Value> {
    let dict = Toml::string(doc).data().ok()?;
    let value = dict.into_values().next()?.remove("v")?;
    // TOML dates and times come back as maps.
    (!matches!(value, figment::value::Value::Dict(..))).then_some(value)
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn summary_days_follow_a_time_zone_or_a_fixed_offset() {
        let zone = |text: &str| {
            SummariesSection {
                timezone: text.to_owned(),
                ..SummariesSection::default()
            }
            .zone()
        };
        let offset_at = |text: &str| {
            let zone = zone(text).unwrap().zone;
            zone.to_offset(jiff::Timestamp::from_second(1_782_000_000).unwrap())
                .seconds()
        };
        assert_eq!(offset_at("+02:00"), 7200);
        assert_eq!(offset_at("-05:30"), -19_800);
        assert_eq!(offset_at("UTC"), 0);
        // Summer time in June 2026.
        assert_eq!(offset_at("Europe/Vilnius"), 3 * 3600);
        for bad in ["Mars/Olympus", "+2", "+02:60", "02:00"] {
            assert!(zone(bad).is_err(), "{bad}");
        }
        let at = |text: &str| {
            SummariesSection {
                at: text.to_owned(),
                ..SummariesSection::default()
            }
            .time()
        };
        assert_eq!(
            at("00:05").unwrap(),
            jiff::civil::Time::constant(0, 5, 0, 0)
        );
        assert_eq!(
            at("23:59:30").unwrap(),
            jiff::civil::Time::constant(23, 59, 30, 0)
        );
        assert!(at("25:00").is_err());
        // A time given as a flag stays the text it was, not a TOML time.
        let config = Config::load(None, &["analytics.summaries.at=23:59:30".to_owned()]).unwrap();
        assert_eq!(config.analytics.summaries.at, "23:59:30");
    }

    #[test]
    fn defaults_are_traccars_ports_and_the_embedded_broker() {
        let c = Config::default();
        assert_eq!(c.devices.gt06.listen, "0.0.0.0:5023");
        assert_eq!(c.devices.teltonika.listen, "0.0.0.0:5027");
        assert_eq!(c.mqtt.embedded_listen, "127.0.0.1:1883");
        assert_eq!(c.engine.tick_ms, 10);
    }

    #[test]
    fn file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "drover.toml",
                "data_dir = \"/tmp/x\"\n[engine]\ntick_ms = 5\n[mqtt]\nqos = 0\n",
            )?;
            jail.set_env("DROVER_DEVICES__GT06__LISTEN", "127.0.0.1:6023");
            jail.set_env("DROVER_ENGINE__TICK_MS", "7");
            let c = Config::load(
                Some(Path::new("drover.toml")),
                &[
                    "mqtt.topic_prefix=fleet".into(),
                    "devices.teltonika.accept_bad_checksum=true".into(),
                ],
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(c.engine.tick_ms, 7);
            assert_eq!(c.mqtt.qos, 0);
            assert_eq!(c.mqtt.topic_prefix, "fleet");
            assert_eq!(c.devices.gt06.listen, "127.0.0.1:6023");
            assert!(c.devices.teltonika.accept_bad_checksum);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[engine]\ntick_msec = 5\n")?;
            assert!(Config::load(Some(Path::new("a.toml")), &[]).is_err());
            assert!(Config::load(None, &["engine.tick_ms=soon".into()]).is_err());
            assert!(Config::load(None, &["no-equals".into()]).is_err());
            assert!(Config::load(Some(Path::new("missing.toml")), &[]).is_err());
            Ok(())
        });
    }
}
