//! How closed trips are kept on each history backend: JSON of the engine's
//! [`TripSummary`] in the embedded store, points of the `trip` measurement
//! in InfluxDB (docs/influxdb.md), and back.

use drover_engine::systems::trips::{Place, TripSummary};
use drover_influxdb::Row;
use drover_influxdb::line::Point;
use drover_protocols::model::{DeviceId, Value};

/// The InfluxDB measurement of closed trips.
pub const MEASUREMENT: &str = "trip";

/// The embedded store's encoding: self-describing, so fields can be added.
pub fn encode(trip: &TripSummary) -> Vec<u8> {
    // Plain numbers and strings: serializing into memory cannot fail.
    serde_json::to_vec(trip).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<TripSummary, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The fields of a closed trip's point, whose time is its start.
pub fn fields(trip: &TripSummary) -> Vec<(&'static str, Value)> {
    let end = trip.end.unwrap_or(trip.last);
    let mut fields = vec![
        ("start_lat", Value::Float(trip.start.lat)),
        ("start_lon", Value::Float(trip.start.lon)),
        ("end_ms", Value::Int(end.time_ms)),
        ("end_lat", Value::Float(end.lat)),
        ("end_lon", Value::Float(end.lon)),
        ("distance_m", Value::Float(trip.distance_m)),
        ("max_speed_kmh", Value::Float(trip.max_speed_kmh)),
        ("moving_ms", Value::Int(trip.moving_ms)),
        ("idle_ms", Value::Int(trip.idle_ms)),
    ];
    if let Some(fuel) = trip.fuel_start_pct {
        fields.push(("fuel_start_pct", Value::Float(fuel)));
    }
    if let Some(fuel) = trip.fuel_end_pct {
        fields.push(("fuel_end_pct", Value::Float(fuel)));
    }
    fields
}

/// The point of a closed trip.
pub fn point<'a>(trip: &'a TripSummary, fields: &'a [(&'static str, Value)]) -> Point<'a> {
    Point {
        measurement: MEASUREMENT,
        device: trip.device.as_str(),
        tags: &[],
        time_ms: trip.start.time_ms,
        fields,
    }
}

/// A closed trip read back from its point; `None` when a field it needs is
/// missing.
pub fn from_row(row: &Row) -> Option<TripSummary> {
    let place = |time_ms, lat: &str, lon: &str| {
        Some(Place {
            time_ms,
            lat: row.f64(lat)?,
            lon: row.f64(lon)?,
        })
    };
    let end = place(row.i64("end_ms")?, "end_lat", "end_lon")?;
    Some(TripSummary {
        device: DeviceId::new(row.str("device")?),
        start: place(row.time_ms, "start_lat", "start_lon")?,
        end: Some(end),
        last: end,
        distance_m: row.f64("distance_m")?,
        max_speed_kmh: row.f64("max_speed_kmh")?,
        moving_ms: row.i64("moving_ms")?,
        idle_ms: row.i64("idle_ms")?,
        fuel_start_pct: row.f64("fuel_start_pct"),
        fuel_end_pct: row.f64("fuel_end_pct"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> TripSummary {
        let place = |time_ms, lat| Place {
            time_ms,
            lat,
            lon: 2.5,
        };
        TripSummary {
            device: DeviceId::new("356307042441013"),
            start: place(1_000, 48.0),
            end: Some(place(61_000, 48.1)),
            last: place(90_000, 48.1),
            distance_m: 11_120.5,
            max_speed_kmh: 87.0,
            moving_ms: 55_000,
            idle_ms: 5_000,
            fuel_start_pct: Some(80.0),
            fuel_end_pct: None,
        }
    }

    #[test]
    fn the_store_encoding_round_trips() {
        let trip = closed();
        assert_eq!(decode(&encode(&trip)).unwrap(), trip);
        assert!(decode(b"{").is_err());
    }

    #[test]
    fn a_point_read_back_is_the_closed_trip() {
        let trip = closed();
        let fields = fields(&trip);
        let point = point(&trip, &fields);
        let mut line = String::new();
        drover_influxdb::line::encode_point(&point, &mut line).unwrap();
        assert!(
            line.starts_with("trip,device=356307042441013 start_lat=48,"),
            "{line}"
        );
        assert!(line.ends_with(" 1000\n"), "{line}");
        let row = row_of(&trip);
        let back = from_row(&row).unwrap();
        assert_eq!(
            back,
            TripSummary {
                last: trip.end.unwrap(),
                ..trip
            }
        );
    }

    /// The row InfluxDB answers for the trip's point.
    fn row_of(trip: &TripSummary) -> Row {
        let mut columns = vec!["time".to_owned(), "device".to_owned()];
        let mut values = vec![trip.start.time_ms.into(), trip.device.as_str().into()];
        for (name, value) in fields(trip) {
            columns.push(name.to_owned());
            values.push(match value {
                Value::Float(f) => f.into(),
                Value::Int(i) => i.into(),
                Value::Bool(b) => b.into(),
                Value::Text(t) => t.into(),
            });
        }
        Row::from_columns(&columns, &values).unwrap()
    }
}
