//! Who may do what: every route without credentials, with a role that may
//! not, and with one that may; bad input on the routes that take it; login
//! throttling; expired, tampered and unsigned tokens; API keys over REST and
//! as MQTT passwords; the embedded broker's refusal of anonymous clients.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    self, ADMIN_PASSWORD, admin_token, assert_error, drover_serve, http, login_as,
};

/// (method, path, body, the least role that may) for every authenticated
/// route; `{dev}` is a registered device, `{grp}` a group, `{user}` a user
/// the test made, `{key}` an API key's id.
const ROUTES: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/api/v1/auth/me", None, "viewer"),
    ("GET", "/api/v1/devices", None, "viewer"),
    ("GET", "/api/v1/devices/unknown", None, "viewer"),
    ("GET", "/api/v1/devices/{dev}", None, "viewer"),
    ("GET", "/api/v1/devices/{dev}/positions", None, "viewer"),
    ("GET", "/api/v1/devices/{dev}/trips", None, "viewer"),
    ("GET", "/api/v1/alerts", None, "viewer"),
    ("GET", "/api/v1/notifications", None, "operator"),
    (
        "POST",
        "/api/v1/notifications",
        Some(r#"{"name":"bus","channel":{"type":"mqtt"}}"#),
        "admin",
    ),
    ("GET", "/api/v1/groups", None, "viewer"),
    ("GET", "/api/v1/groups/{grp}", None, "viewer"),
    ("GET", "/api/v1/geofences", None, "viewer"),
    ("GET", "/api/v1/geofences/{geo}", None, "viewer"),
    (
        "POST",
        "/api/v1/geofences",
        Some(
            r#"{"name":"depot","geometry":{"type":"Point","coordinates":[13.4,52.5]},"radius_m":300}"#,
        ),
        "operator",
    ),
    (
        "PATCH",
        "/api/v1/geofences/{geo}",
        Some(r#"{"speed_limit_kmh":30}"#),
        "operator",
    ),
    (
        "POST",
        "/api/v1/devices",
        Some(r#"{"id":"359000000000777"}"#),
        "operator",
    ),
    (
        "PATCH",
        "/api/v1/devices/{dev}",
        Some(r#"{"name":"van 7"}"#),
        "operator",
    ),
    (
        "POST",
        "/api/v1/groups",
        Some(r#"{"id":"north","name":"North"}"#),
        "operator",
    ),
    (
        "PATCH",
        "/api/v1/groups/{grp}",
        Some(r#"{"name":"South"}"#),
        "operator",
    ),
    ("GET", "/api/v1/users", None, "admin"),
    (
        "POST",
        "/api/v1/users",
        Some(r#"{"username":"carol","password":"carol's password","role":"viewer"}"#),
        "admin",
    ),
    ("GET", "/api/v1/users/{user}", None, "admin"),
    (
        "PATCH",
        "/api/v1/users/{user}",
        Some(r#"{"role":"viewer"}"#),
        "admin",
    ),
    ("GET", "/api/v1/keys", None, "admin"),
    (
        "POST",
        "/api/v1/keys",
        Some(r#"{"name":"erp","role":"viewer"}"#),
        "admin",
    ),
    ("DELETE", "/api/v1/keys/{key}", None, "admin"),
    ("DELETE", "/api/v1/users/{user}", None, "admin"),
    ("DELETE", "/api/v1/devices/{dev}", None, "operator"),
    ("DELETE", "/api/v1/groups/{grp}", None, "operator"),
    ("DELETE", "/api/v1/geofences/{geo}", None, "operator"),
];

fn rank(role: &str) -> u8 {
    match role {
        "admin" => 0,
        "operator" => 1,
        _ => 2,
    }
}

/// Makes the things the routes name, fresh, as the admin.
fn fixtures(port: u16, admin: &str, round: usize) -> [(String, String); 5] {
    let ok = |answer: (u16, Value), what: &str| {
        assert!(matches!(answer.0, 200 | 201), "{what}: {}", answer.1);
        answer.1
    };
    let grp = format!("g{round}");
    ok(
        http(
            port,
            "POST",
            "/api/v1/groups",
            Some(admin),
            Some(&json!({"id": grp, "name": "G"})),
        ),
        "group",
    );
    let dev = format!("35900000000{round:04}");
    ok(
        http(
            port,
            "POST",
            "/api/v1/devices",
            Some(admin),
            Some(&json!({"id": dev})),
        ),
        "device",
    );
    let user = format!("temp{round}");
    let body = json!({"username": user, "password": "a long password", "role": "operator"});
    ok(
        http(port, "POST", "/api/v1/users", Some(admin), Some(&body)),
        "user",
    );
    let key = ok(
        http(
            port,
            "POST",
            "/api/v1/keys",
            Some(admin),
            Some(&json!({"name": "k", "role": "viewer"})),
        ),
        "key",
    );
    let geofence = json!({
        "name": "yard",
        "geometry": {"type": "Polygon", "coordinates": [[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.0]]]},
    });
    let geo = ok(
        http(
            port,
            "POST",
            "/api/v1/geofences",
            Some(admin),
            Some(&geofence),
        ),
        "geofence",
    );
    [
        (
            "{geo}".to_owned(),
            geo["id"].as_str().expect("a geofence id").to_owned(),
        ),
        ("{dev}".to_owned(), dev),
        ("{grp}".to_owned(), grp),
        ("{user}".to_owned(), user),
        (
            "{key}".to_owned(),
            key["id"].as_str().expect("a key id").to_owned(),
        ),
    ]
}

fn fill(path: &str, names: &[(String, String)]) -> String {
    names
        .iter()
        .fold(path.to_owned(), |p, (k, v)| p.replace(k, v))
}

#[test]
fn every_route_needs_credentials_and_the_right_role() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &[]);
    let port = ports.http;
    let admin = admin_token(port);
    let mut tokens = vec![("admin", admin.clone())];
    for role in ["operator", "viewer"] {
        let body = json!({"username": role, "password": format!("{role} password"), "role": role});
        let (status, json) = http(port, "POST", "/api/v1/users", Some(&admin), Some(&body));
        assert_eq!(status, 201, "{json}");
        tokens.push((role, login_as(port, role, &format!("{role} password"))));
    }
    let key_body = json!({"name": "integration", "role": "viewer"});
    let (status, key) = http(port, "POST", "/api/v1/keys", Some(&admin), Some(&key_body));
    assert_eq!(status, 201, "{key}");
    let api_key = key["key"].as_str().expect("the key, shown once").to_owned();
    let (status, listed) = http(port, "GET", "/api/v1/keys", Some(&admin), None);
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&api_key),
        "a key is shown once only"
    );
    tokens.push(("viewer", api_key));

    for (round, (method, path, body, least)) in ROUTES.iter().enumerate() {
        let names = fixtures(port, &admin, round);
        let path = fill(path, &names);
        let body: Option<Value> = body.map(|b| serde_json::from_str(b).expect("JSON"));
        let what = format!("{method} {path}");
        let anonymous = http(port, method, &path, None, body.as_ref());
        assert_error(&anonymous, 401, "unauthorized", &what);
        // The least privileged caller first: a refused one changes nothing.
        for (role, token) in tokens.iter().rev() {
            let answer = http(port, method, &path, Some(token), body.as_ref());
            if rank(role) > rank(least) {
                assert_error(&answer, 403, "forbidden", &format!("{what} as {role}"));
            } else {
                assert!(
                    (200..300).contains(&answer.0),
                    "{what} as {role}: {} {}",
                    answer.0,
                    answer.1
                );
                break;
            }
        }
    }
    for open in ["/health", "/api/openapi.json"] {
        let (status, _) = http(port, "GET", open, None, None);
        assert_eq!(status, 200, "{open} needs no login");
    }
}

#[test]
fn bad_input_gets_the_json_error_with_the_right_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &[]);
    let port = ports.http;
    let admin = admin_token(port);
    let raw = |method: &str, path: &str, body: &str, content_type: &str| {
        let response = support::client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("http://127.0.0.1:{port}{path}"),
            )
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .expect("a response");
        let status = response.status().as_u16();
        let json: Value =
            serde_json::from_str(&response.text().expect("a body")).unwrap_or(Value::Null);
        (status, json)
    };
    let json_type = "application/json";
    assert_error(
        &raw("POST", "/api/v1/devices", "{\"id\": ", json_type),
        400,
        "bad_request",
        "truncated JSON",
    );
    assert_error(
        &raw("POST", "/api/v1/devices", "{\"id\": 5}", json_type),
        422,
        "unprocessable",
        "a number id",
    );
    assert_error(
        &raw(
            "POST",
            "/api/v1/devices",
            "{\"id\":\"1\",\"colour\":\"red\"}",
            json_type,
        ),
        422,
        "unprocessable",
        "unknown field",
    );
    assert_error(
        &raw("POST", "/api/v1/devices", "{\"id\":\"1\"}", "text/plain"),
        415,
        "unsupported_media_type",
        "not JSON",
    );
    let huge = format!("{{\"id\":\"1\",\"notes\":\"{}\"}}", "x".repeat(200_000));
    assert_error(
        &raw("POST", "/api/v1/devices", &huge, json_type),
        413,
        "payload_too_large",
        "a huge body",
    );

    let post = |path: &str, body: Value| http(port, "POST", path, Some(&admin), Some(&body));
    assert_error(
        &post("/api/v1/devices", json!({"id": "bad id with spaces"})),
        422,
        "unprocessable",
        "bad id",
    );
    assert_error(
        &post("/api/v1/devices", json!({"id": "35", "group": "nowhere"})),
        422,
        "unprocessable",
        "no such group",
    );
    assert_eq!(
        post("/api/v1/devices", json!({"id": "359000000000001"})).0,
        201
    );
    assert_error(
        &post("/api/v1/devices", json!({"id": "359000000000001"})),
        409,
        "conflict",
        "registered twice",
    );
    assert_error(
        &post(
            "/api/v1/users",
            json!({"username": "dave", "password": "short", "role": "viewer"}),
        ),
        422,
        "unprocessable",
        "short password",
    );
    assert_error(
        &post(
            "/api/v1/users",
            json!({"username": "dave", "password": "long enough", "role": "king"}),
        ),
        422,
        "unprocessable",
        "no such role",
    );
    assert_eq!(
        post("/api/v1/groups", json!({"id": "g", "name": "G"})).0,
        201
    );
    let patch = json!({"group": "g"});
    assert_eq!(
        http(
            port,
            "PATCH",
            "/api/v1/devices/359000000000001",
            Some(&admin),
            Some(&patch)
        )
        .0,
        200
    );
    assert_error(
        &http(port, "DELETE", "/api/v1/groups/g", Some(&admin), None),
        409,
        "conflict",
        "a group in use",
    );
    assert_error(
        &http(port, "DELETE", "/api/v1/users/admin", Some(&admin), None),
        409,
        "conflict",
        "the last admin",
    );

    let get = |path: &str| http(port, "GET", path, Some(&admin), None);
    assert_error(
        &get("/api/v1/devices/359999999999999"),
        404,
        "not_found",
        "unknown device",
    );
    assert_error(
        &get("/api/v1/groups/nope"),
        404,
        "not_found",
        "unknown group",
    );
    assert_error(
        &get("/api/v1/nothing-here"),
        404,
        "not_found",
        "unknown route",
    );
    assert_error(
        &get("/api/v1/devices?limit=0"),
        400,
        "bad_request",
        "limit 0",
    );
    assert_error(
        &get("/api/v1/devices?status=sleeping"),
        400,
        "bad_request",
        "bad status",
    );
    assert_error(
        &get("/api/v1/devices?sort=name"),
        400,
        "bad_request",
        "unknown parameter",
    );
    let positions = "/api/v1/devices/359000000000001/positions";
    assert_error(
        &get(&format!("{positions}?from=yesterday")),
        400,
        "bad_request",
        "bad time",
    );
    assert_error(
        &get(&format!(
            "{positions}?from=2026-12-02T10:00:00Z&to=2026-12-02T09:00:00Z"
        )),
        400,
        "bad_request",
        "reversed range",
    );
    assert_error(
        &get(&format!("{positions}?cursor=%00garbage")),
        400,
        "bad_request",
        "bad cursor",
    );
    assert_error(
        &http(port, "PUT", "/api/v1/devices", Some(&admin), None),
        405,
        "method_not_allowed",
        "PUT",
    );
}

#[test]
fn tokens_expire_and_tampered_or_unsigned_ones_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &["auth.token_ttl_secs=1".to_owned()]);
    let port = ports.http;
    let token = login_as(port, "admin", ADMIN_PASSWORD);
    assert_eq!(
        http(port, "GET", "/api/v1/auth/me", Some(&token), None).0,
        200
    );

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT");
    let mut tampered = parts.clone();
    let other = login_as(port, "admin", ADMIN_PASSWORD);
    let other_parts: Vec<&str> = other.split('.').collect();
    tampered[2] = other_parts[2];
    if tampered[1] != other_parts[1] {
        let forged = tampered.join(".");
        assert_error(
            &http(port, "GET", "/api/v1/auth/me", Some(&forged), None),
            401,
            "unauthorized",
            "signature of another token",
        );
    }
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    assert_error(
        &http(port, "GET", "/api/v1/auth/me", Some(&unsigned), None),
        401,
        "unauthorized",
        "alg none",
    );
    assert_error(
        &http(
            port,
            "GET",
            "/api/v1/auth/me",
            Some("drv_0011223344556677_00"),
            None,
        ),
        401,
        "unauthorized",
        "a made-up key",
    );

    // One second of life and the five seconds of clock skew allowed.
    std::thread::sleep(Duration::from_secs(8));
    let expired = http(port, "GET", "/api/v1/auth/me", Some(&token), None);
    assert_error(&expired, 401, "unauthorized", "expired");
    assert!(
        expired.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{}",
        expired.1
    );
}

#[test]
fn failed_logins_are_throttled_per_user_and_per_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &[]);
    let port = ports.http;
    let attempt = |password: &str| {
        let body = json!({"username": "admin", "password": password});
        http(port, "POST", "/api/v1/auth/login", None, Some(&body))
    };
    for _ in 0..5 {
        assert_error(&attempt("guess"), 401, "unauthorized", "a wrong password");
    }
    let throttled = attempt(ADMIN_PASSWORD);
    assert_error(
        &throttled,
        429,
        "too_many_requests",
        "the sixth attempt, right or wrong",
    );
    let other_user = json!({"username": "nobody", "password": "guess"});
    let by_address = http(port, "POST", "/api/v1/auth/login", None, Some(&other_user));
    assert_error(
        &by_address,
        429,
        "too_many_requests",
        "another user from the same address",
    );
}

#[test]
fn the_embedded_broker_refuses_anonymous_clients_and_accepts_api_keys() {
    support::require("mosquitto_sub");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &[]);
    let sub = |login: &[&str]| {
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &ports.mqtt.to_string(),
                "-t",
                "drover/#",
                "-W",
                "2",
            ])
            .args(login)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("mosquitto_sub runs")
    };
    let anonymous = sub(&[]);
    assert!(!anonymous.status.success());
    let said = String::from_utf8_lossy(&anonymous.stderr).to_lowercase();
    assert!(
        said.contains("not authori") || said.contains("refused"),
        "{said}"
    );
    let wrong = sub(&["-u", "drover", "-P", "not the password"]);
    assert!(!wrong.status.success());

    let admin = admin_token(ports.http);
    let (status, key) = http(
        ports.http,
        "POST",
        "/api/v1/keys",
        Some(&admin),
        Some(&json!({"name": "ha", "role": "viewer"})),
    );
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().expect("a key");
    // A good login stays until -W ends it: exit status 27 is that timeout.
    let with_key = sub(&["-u", "home-assistant", "-P", key]);
    let said = String::from_utf8_lossy(&with_key.stderr).to_lowercase();
    assert!(
        !said.contains("not authori") && !said.contains("refused"),
        "{said}"
    );
}
