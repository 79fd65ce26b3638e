//! The record log: one JSON line per position sent, so that an end-to-end
//! test can check that every acked position reached MQTT with the
//! coordinates that were sent.
//!
//! Each tracker keeps its own buffer during the run (no shared lock on the
//! hot path); the lines are written once, at the end.

use std::path::Path;

use serde::Serialize;

use crate::SimError;

/// One position as sent: fix time and coordinates exactly as in the record
/// handed to the encoder (GT06 carries coordinates to 1/1,800,000 degree,
/// so compare with a tolerance of about 10⁻⁶ degree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedPosition {
    pub time_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub acked: bool,
}

/// Everything one virtual device sent.
#[derive(Debug, Clone)]
pub struct DeviceLog {
    pub imei: u64,
    pub protocol: &'static str,
    pub positions: Vec<LoggedPosition>,
}

impl DeviceLog {
    pub fn new(imei: u64, protocol: &'static str) -> Self {
        DeviceLog {
            imei,
            protocol,
            positions: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Line {
    /// The IMEI, as text (device ids are text everywhere else).
    #[serde(serialize_with = "as_text")]
    device: u64,
    protocol: &'static str,
    time_ms: i64,
    lat: f64,
    lon: f64,
    acked: bool,
}

/// Writes `{"device","protocol","time_ms","lat","lon","acked"}` lines, device by device.
pub fn write(path: &Path, logs: &[DeviceLog]) -> Result<(), SimError> {
    let lines = logs.iter().flat_map(|log| {
        log.positions.iter().map(move |p| Line {
            device: log.imei,
            protocol: log.protocol,
            time_ms: p.time_ms,
            lat: p.lat,
            lon: p.lon,
            acked: p.acked,
        })
    });
    crate::write_json_lines(path, lines)
}

fn as_text<S: serde::Serializer>(imei: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(imei)
}
