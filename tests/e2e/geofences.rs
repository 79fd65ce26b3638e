//! Geofences through the API: circles and polygons kept across a restart,
//! changed, paged and deleted; shapes that are not areas refused with 422.

use serde_json::{Value, json};

use crate::support::{self, admin_token, assert_error, http};

fn yard() -> Value {
    json!({
        "name": "yard",
        "geometry": {"type": "Polygon", "coordinates": [[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]},
        "speed_limit_kmh": 20,
    })
}

#[test]
fn geofences_are_created_read_changed_and_deleted_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, ports) = support::drover_serve(dir.path(), &[]);
    let port = ports.http;
    let admin = admin_token(port);
    let depot = json!({
        "name": "depot",
        "geometry": {"type": "Point", "coordinates": [13.4, 52.5]},
        "radius_m": 300,
    });
    let (status, circle) = http(
        port,
        "POST",
        "/api/v1/geofences",
        Some(&admin),
        Some(&depot),
    );
    assert_eq!(status, 201, "{circle}");
    assert_eq!(circle["geometry"], depot["geometry"]);
    assert_eq!(circle["radius_m"], 300.0);
    let (status, polygon) = http(
        port,
        "POST",
        "/api/v1/geofences",
        Some(&admin),
        Some(&yard()),
    );
    assert_eq!(status, 201, "{polygon}");
    assert_eq!(polygon["geometry"], yard()["geometry"]);
    assert_eq!(polygon["speed_limit_kmh"], 20.0);
    assert!(polygon.get("radius_m").is_none(), "{polygon}");
    let circle_id = circle["id"].as_str().expect("an id").to_owned();
    let polygon_id = polygon["id"].as_str().expect("an id").to_owned();
    assert_ne!(circle_id, polygon_id);

    let (status, page) = http(port, "GET", "/api/v1/geofences?limit=1", Some(&admin), None);
    assert_eq!(status, 200);
    assert_eq!(page["geofences"].as_array().map(Vec::len), Some(1));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = http(
        port,
        "GET",
        &format!("/api/v1/geofences?limit=1&cursor={cursor}"),
        Some(&admin),
        None,
    );
    assert_eq!(rest["geofences"].as_array().map(Vec::len), Some(1));
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    let path = format!("/api/v1/geofences/{circle_id}");
    let wider = json!({"radius_m": 500, "speed_limit_kmh": null, "name": "depot east"});
    let (status, changed) = http(port, "PATCH", &path, Some(&admin), Some(&wider));
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["radius_m"], 500.0);
    assert_eq!(changed["name"], "depot east");
    assert_eq!(changed["geometry"], depot["geometry"], "the centre stays");

    assert!(node.interrupt().success());
    let (node, ports) = support::drover_serve(dir.path(), &[]);
    let port = ports.http;
    let admin = admin_token(port);
    let (status, kept) = http(port, "GET", &path, Some(&admin), None);
    assert_eq!(status, 200);
    assert_eq!(
        (kept["name"].clone(), kept["radius_m"].clone()),
        (json!("depot east"), json!(500.0))
    );

    let (status, _) = http(port, "DELETE", &path, Some(&admin), None);
    assert_eq!(status, 204);
    let gone = http(port, "GET", &path, Some(&admin), None);
    assert_error(&gone, 404, "not_found", "a deleted geofence");
    let again = http(port, "DELETE", &path, Some(&admin), None);
    assert_error(&again, 404, "not_found", "deleting twice");
    let polygon_path = format!("/api/v1/geofences/{polygon_id}");
    let (status, _) = http(port, "GET", &polygon_path, Some(&admin), None);
    assert_eq!(status, 200, "the other one stays");
    assert!(node.interrupt().success());
}

#[test]
fn shapes_that_are_not_areas_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, ports) = support::drover_serve(dir.path(), &[]);
    let port = ports.http;
    let admin = admin_token(port);
    let point = |coordinates: Value, radius: Value| json!({"name": "p", "geometry": {"type": "Point", "coordinates": coordinates}, "radius_m": radius});
    let mut open_ring = yard();
    open_ring["geometry"]["coordinates"][0]
        .as_array_mut()
        .expect("a ring")
        .pop();
    let mut polygon_with_radius = yard();
    polygon_with_radius["radius_m"] = json!(100);
    let mut too_fast = yard();
    too_fast["speed_limit_kmh"] = json!(900);
    let mut blank = yard();
    blank["name"] = json!("  ");
    for (what, body) in [
        (
            "a point without a radius",
            point(json!([13.4, 52.5]), Value::Null),
        ),
        ("a zero radius", point(json!([13.4, 52.5]), json!(0))),
        (
            "a latitude past the pole",
            point(json!([13.4, 95.0]), json!(10)),
        ),
        ("an open ring", open_ring),
        ("a radius on a polygon", polygon_with_radius),
        ("a speed limit of 900 km/h", too_fast),
        ("a blank name", blank),
    ] {
        let answer = http(port, "POST", "/api/v1/geofences", Some(&admin), Some(&body));
        assert_error(&answer, 422, "unprocessable", what);
    }
    let line = json!({"name": "l", "geometry": {"type": "LineString", "coordinates": [[13.0, 52.0], [13.1, 52.1]]}});
    let answer = http(port, "POST", "/api/v1/geofences", Some(&admin), Some(&line));
    assert!(matches!(answer.0, 400 | 422), "a LineString: {}", answer.1);
    let (status, list) = http(port, "GET", "/api/v1/geofences", Some(&admin), None);
    assert_eq!(status, 200);
    assert_eq!(list["geofences"], json!([]), "nothing refused was stored");
    let bad_limit = http(port, "GET", "/api/v1/geofences?limit=0", Some(&admin), None);
    assert_error(&bad_limit, 400, "bad_request", "limit 0");
    assert!(node.interrupt().success());
}
