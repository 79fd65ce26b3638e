//! Settings of the device servers (`[devices]` in the configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[devices]`: limits shared by all protocols, and one listener per protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Largest frame accepted; a device announcing or sending more is disconnected.
    pub max_frame_bytes: usize,
    /// A connection silent for this long is closed (devices heartbeat every few minutes).
    pub idle_timeout_secs: u64,
    /// A connection that has not said which device it is this long after
    /// being accepted is closed: a tracker logs in first thing, port
    /// scanners and half-open sockets never do. 0 disables the limit.
    pub identify_timeout_secs: u64,
    /// Open connections per protocol listener; more are refused at accept.
    pub max_connections: usize,
    /// Open connections from one IP address, across all listeners; more are
    /// refused at accept. High, because trackers on mobile networks share
    /// carrier NAT addresses. 0 = unlimited.
    pub max_connections_per_ip: u32,
    /// Consecutive undecodable frames after which a connection is closed.
    pub max_consecutive_errors: u32,
    /// Serve trackers missing from the device registry too (they are not
    /// registered by it). Off, as in Traccar: anyone can claim an IMEI, so
    /// an unregistered one is refused and listed for an operator to
    /// register. A disabled device is refused either way.
    pub register_unknown: bool,
    pub gt06: ListenerConfig,
    pub teltonika: ListenerConfig,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            max_frame_bytes: 16 * 1024,
            idle_timeout_secs: 600,
            identify_timeout_secs: 30,
            max_connections: 200_000,
            max_connections_per_ip: 1_000,
            max_consecutive_errors: 16,
            register_unknown: false,
            gt06: ListenerConfig::on("0.0.0.0:5023"),
            teltonika: ListenerConfig::on("0.0.0.0:5027"),
        }
    }
}

impl DevicesConfig {
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            identify_timeout: Duration::from_secs(self.identify_timeout_secs),
            max_connections_per_ip: self.max_connections_per_ip,
            max_consecutive_errors: self.max_consecutive_errors,
        }
    }
}

/// `[devices.<protocol>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to listen on; empty disables the protocol.
    pub listen: String,
    /// Decode frames whose checksum is wrong instead of rejecting them.
    pub accept_bad_checksum: bool,
}

impl ListenerConfig {
    fn on(listen: &str) -> Self {
        ListenerConfig {
            listen: listen.to_owned(),
            accept_bad_checksum: false,
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig::on("")
    }
}

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_frame_bytes: usize,
    pub idle_timeout: Duration,
    /// Zero disables it.
    pub identify_timeout: Duration,
    /// Zero: unlimited.
    pub max_connections_per_ip: u32,
    pub max_consecutive_errors: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        DevicesConfig::default().session_limits()
    }
}
