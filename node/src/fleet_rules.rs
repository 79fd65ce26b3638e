//! Keeps the engine's fleet settings — geofences and the devices' own
//! speed limits — in step with the catalog's: the API edits the catalog;
//! this hands the engine the whole set again whenever it changed (it is
//! looked at every second).

use std::sync::Arc;
use std::time::Duration;

use drover_catalog::{Area, Catalog, Geofence};
use drover_engine::Engine;
use drover_engine::runtime::{GeofenceBoard, SpeedLimitBoard};
use drover_engine::systems::geofences::{FenceSpec, Shape};
use drover_protocols::model::DeviceId;
use tokio_util::sync::CancellationToken;

/// How often the catalog is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Where the settings go.
pub struct Boards {
    pub geofences: GeofenceBoard,
    pub speed_limits: SpeedLimitBoard,
}

/// Hands the catalog's settings to `boards` now and after every change,
/// until `shutdown`.
pub async fn follow(catalog: Arc<Catalog>, boards: Boards, shutdown: CancellationToken) {
    let (mut geofences_seen, mut devices_seen) = (None, None);
    loop {
        let version = catalog.geofences.version();
        if geofences_seen != Some(version) {
            geofences_seen = Some(version);
            let specs = geofences(&catalog);
            tracing::debug!(geofences = specs.len(), "geofences handed to the engine");
            boards.geofences.replace(specs);
        }
        let version = catalog.devices.version();
        if devices_seen != Some(version) {
            devices_seen = Some(version);
            let limits = speed_limits(&catalog);
            tracing::debug!(
                devices = limits.len(),
                "device speed limits handed to the engine"
            );
            boards.speed_limits.replace(limits);
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Sets the catalog's settings on an engine that is not running (replay).
pub fn apply(catalog: &Catalog, engine: &mut Engine) {
    engine.set_geofences(geofences(catalog));
    engine.set_speed_limits(speed_limits(catalog));
}

fn geofences(catalog: &Catalog) -> Vec<FenceSpec> {
    catalog.geofences.list().iter().map(spec).collect()
}

fn speed_limits(catalog: &Catalog) -> Vec<(DeviceId, f64)> {
    catalog
        .devices
        .list()
        .iter()
        .filter_map(|d| Some((DeviceId::new(&d.id), d.speed_limit_kmh?)))
        .collect()
}

/// The engine's form of a catalog geofence.
pub fn spec(geofence: &Geofence) -> FenceSpec {
    let shape = match &geofence.area {
        Area::Circle { lon, lat, radius_m } => Shape::Circle {
            lat: *lat,
            lon: *lon,
            radius_m: *radius_m,
        },
        Area::Polygon { rings } => Shape::Polygon {
            rings: rings.clone(),
        },
    };
    FenceSpec {
        id: geofence.id.clone(),
        name: geofence.name.clone(),
        shape,
        speed_limit_kmh: geofence.speed_limit_kmh,
    }
}
