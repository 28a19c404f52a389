//! The API contract: `/v1/openapi.json` is an OpenAPI 3.1 document generated from the code,
//! and schemathesis (PyPI) throws generated requests at every operation of a live server:
//! no response may be a 5xx, and every response must match the document.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn schemathesis() -> PathBuf {
    match std::env::var("REEL_TEST_PYTHON") {
        Ok(python) => PathBuf::from(python).with_file_name("schemathesis"),
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set REEL_TEST_PYTHON (scripts/deps)"
            );
            PathBuf::from("schemathesis")
        }
    }
}

#[test]
fn the_document_describes_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let r =
        reel_testkit::http::request("GET", &server.url("/v1/openapi.json"), None, None).unwrap();
    assert_eq!(r.status, 200, "served without an API key");
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/rooms",
        "/v1/recordings/{id}/pause",
        "/v1/assets/{id}/presigned-url",
        "/v1/webhooks/{id}/deliveries",
        "/v1/applications/{id}/keys",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let options = &doc["components"]["schemas"]["RecordingOptions"]["properties"];
    assert_eq!(
        options["credentials"]["writeOnly"], true,
        "credentials are write-only"
    );
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = Command::new(schemathesis())
        .args(["run", &server.url("/v1/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_KEY}")])
        .args([
            "-c",
            "not_a_server_error,response_schema_conformance",
            "-n",
            "30",
            "--seed",
            "1",
        ])
        .output()
        .expect("schemathesis is required (scripts/deps installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!server.log_text().contains("panicked"));
}
