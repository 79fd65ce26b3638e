//! The API against its own OpenAPI document: schemathesis (installed by
//! `cargo xtask test`, found through `SCHEMATHESIS`) generates requests
//! from `/api/openapi.json` and checks that none gets a 5xx and that every
//! answer matches the schema the document declares.

use std::process::Command;

use crate::support::{self, admin_token, drover_serve, http_get};

/// Fixed, so a failure reproduces.
const SEED: &str = "20261202";
const EXAMPLES_PER_OPERATION: &str = "25";

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        support::require("st");
        "st".to_owned()
    })
}

#[test]
fn the_api_answers_generated_requests_without_5xx_and_as_documented() {
    let st = schemathesis();
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, ports) = drover_serve(dir.path(), &[]);
    let (status, doc) = http_get(ports.http, "/api/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/devices"].is_object(), "{doc}");
    let token = admin_token(ports.http);
    let output = Command::new(&st)
        .args([
            "run",
            &format!("http://127.0.0.1:{}/api/openapi.json", ports.http),
        ])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", SEED])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        // The login route's throttle answers 429 by design once fuzzed.
        .args(["--exclude-path", "/api/v1/auth/login"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .unwrap_or_else(|e| panic!("running {st}: {e}"));
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    eprintln!("{report}");
}
