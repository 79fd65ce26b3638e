//! Keeps the engine's geofences in step with the catalog's: the API edits
//! the catalog; this hands the engine the whole set again whenever it
//! changed (it is looked at every second).

use std::sync::Arc;
use std::time::Duration;

use drover_catalog::{Area, Catalog, Geofence};
use drover_engine::runtime::GeofenceBoard;
use drover_engine::systems::geofences::{FenceSpec, Shape};
use tokio_util::sync::CancellationToken;

/// How often the catalog is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Hands the catalog's geofences to `board` now and after every change,
/// until `shutdown`.
pub async fn follow(catalog: Arc<Catalog>, board: GeofenceBoard, shutdown: CancellationToken) {
    let mut seen = None;
    loop {
        let version = catalog.geofences.version();
        if seen != Some(version) {
            seen = Some(version);
            let specs: Vec<FenceSpec> = catalog.geofences.list().iter().map(spec).collect();
            tracing::debug!(geofences = specs.len(), "geofences handed to the engine");
            board.replace(specs);
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
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
