//! Tenant isolation: a key of application A gets 404 for everything of application B, on
//! every endpoint, and lists show only its own rows. Runs on SQLite and PostgreSQL.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::media::pattern_and_tone;
use reel_testkit::{publish, PublishOptions};
use serde_json::{json, Value};
use std::time::Duration;

fn call(
    server: &Server,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> http::Response {
    let url = server.url(path);
    match body {
        Some(b) => http::json(method, &url, Some(key), &b).unwrap(),
        None => http::request(method, &url, Some(key), None).unwrap(),
    }
}

/// Creates an application and one key of it, with the admin key.
fn application(server: &Server, name: &str) -> (String, String, String) {
    let app = server.post("/v1/applications", json!({"name": name}));
    let app_id = app["id"].as_str().unwrap().to_string();
    let key = server.post(&format!("/v1/applications/{app_id}/keys"), json!({}));
    assert!(key["prefix"].as_str().unwrap().len() < key["key"].as_str().unwrap().len());
    (
        app_id,
        key["key"].as_str().unwrap().to_string(),
        key["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_key_of_one_application_sees_nothing_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (app_a, key_a, key_a_id) = application(&server, "clinic-a");
    let (app_b, key_b, _) = application(&server, "clinic-b");

    // Application A records a participant.
    let room = call(
        &server,
        &key_a,
        "POST",
        "/v1/rooms",
        Some(json!({"empty_timeout_seconds": 1})),
    )
    .json();
    let room_id = room["id"].as_str().unwrap().to_string();
    assert_eq!(room["application_id"], app_a.as_str());
    let token = call(
        &server,
        &key_a,
        "POST",
        &format!("/v1/rooms/{room_id}/tokens"),
        Some(json!({"participant": "pat"})),
    )
    .json();
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(
        token["whip_url"].as_str().unwrap(),
        token["token"].as_str().unwrap(),
    );
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(2);
    let report = publish(&opts).unwrap();
    let session = report.session_id.clone();
    let asset = loop {
        let list = call(
            &server,
            &key_a,
            "GET",
            &format!("/v1/assets?session_id={session}"),
            None,
        )
        .json();
        if let Some(a) = list["data"].as_array().unwrap().first() {
            break a["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    let recording = call(
        &server,
        &key_a,
        "GET",
        &format!("/v1/recordings?room_id={room_id}"),
        None,
    )
    .json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hook = call(
        &server,
        &key_a,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": "https://93.184.216.34/a", "enabled": false})),
    )
    .json();
    let hook = hook["id"].as_str().unwrap().to_string();

    // Every endpoint that names one of A's resources: A sees it, B gets 404.
    let named: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/recordings/{recording}"), None),
        ("GET", format!("/v1/webhooks/{hook}"), None),
        (
            "PATCH",
            format!("/v1/webhooks/{hook}"),
            Some(json!({"enabled": false})),
        ),
        ("GET", format!("/v1/webhooks/{hook}/deliveries"), None),
        ("GET", format!("/v1/assets/{asset}/presigned-url"), None),
        ("GET", format!("/v1/rooms/{room_id}"), None),
        (
            "POST",
            format!("/v1/rooms/{room_id}/tokens"),
            Some(json!({"participant": "x"})),
        ),
        ("GET", format!("/v1/sessions/{session}"), None),
        ("GET", format!("/v1/assets/{asset}"), None),
        ("GET", format!("/v1/assets/{asset}/download"), None),
        ("GET", format!("/v1/applications/{app_a}"), None),
        ("GET", format!("/v1/applications/{app_a}/keys"), None),
        (
            "POST",
            format!("/v1/applications/{app_a}/keys"),
            Some(json!({})),
        ),
        (
            "PATCH",
            format!("/v1/applications/{app_a}"),
            Some(json!({"retention_days": 30})),
        ),
        (
            "POST",
            format!("/v1/recordings/{recording}/legal-hold"),
            Some(json!({"enabled": false})),
        ),
    ];
    for (method, path, body) in &named {
        let own = call(&server, &key_a, method, path, body.clone());
        assert!(
            own.status == 200 || own.status == 201,
            "A {method} {path}: {}",
            own.status
        );
        let other = call(&server, &key_b, method, path, body.clone());
        assert_eq!(other.status, 404, "B {method} {path}: {}", other.text());
        assert_eq!(other.json()["code"], "not_found");
    }
    let before = call(
        &server,
        &key_a,
        "GET",
        &format!("/v1/recordings/{recording}"),
        None,
    )
    .json()["state"]
        .clone();
    // Commands on A's things from B: 404 too, and nothing happens.
    for (method, path, body) in [
        ("POST", format!("/v1/recordings/{recording}/pause"), None),
        ("POST", format!("/v1/recordings/{recording}/stop"), None),
        (
            "POST",
            "/v1/recordings".to_string(),
            Some(json!({"room_id": room_id})),
        ),
        ("GET", format!("/v1/rooms/{room_id}/active-recording"), None),
        (
            "PATCH",
            format!("/v1/rooms/{room_id}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("/v1/rooms/{room_id}"), None),
        ("DELETE", format!("/v1/assets/{asset}"), None),
        ("DELETE", format!("/v1/webhooks/{hook}"), None),
        (
            "POST",
            format!("/v1/assets/{asset}/retry-upload"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/recordings/{recording}/legal-hold"),
            Some(json!({"enabled": true})),
        ),
    ] {
        let other = call(&server, &key_b, method, &path, body);
        assert_eq!(other.status, 404, "B {method} {path}: {}", other.text());
    }
    let after = call(
        &server,
        &key_a,
        "GET",
        &format!("/v1/recordings/{recording}"),
        None,
    )
    .json()["state"]
        .clone();
    assert_eq!(before, after, "B's commands changed A's recording");
    let held = call(
        &server,
        &key_a,
        "GET",
        &format!("/v1/recordings/{recording}"),
        None,
    )
    .json();
    assert_eq!(held["legal_hold"], false, "B put A's recording on hold");
    let revoke_a = format!("/v1/applications/{app_a}/keys/{key_a_id}");
    assert_eq!(call(&server, &key_b, "DELETE", &revoke_a, None).status, 404);

    // Lists: B sees none of A's rows; A sees them.
    for path in [
        "/v1/rooms",
        "/v1/sessions",
        "/v1/assets",
        "/v1/events",
        "/v1/applications",
        "/v1/recordings",
        "/v1/webhooks",
    ] {
        let b = call(&server, &key_b, "GET", path, None).json();
        let text = b.to_string();
        assert!(
            !text.contains(&room_id) && !text.contains(&session) && !text.contains(&app_a),
            "B {path}: {text}"
        );
        let a = call(&server, &key_a, "GET", path, None).json();
        assert!(!a["data"].as_array().unwrap().is_empty(), "A {path}");
    }
    assert_eq!(
        call(&server, &key_b, "GET", "/v1/applications", None).json()["data"][0]["id"],
        app_b.as_str()
    );
    let filtered = call(
        &server,
        &key_b,
        "GET",
        &format!("/v1/sessions?room_id={room_id}"),
        None,
    )
    .json();
    assert!(filtered["data"].as_array().unwrap().is_empty());

    // The deletion audit log: A's deletions are A's alone.
    let a_asset = format!("/v1/assets/{asset}");
    assert_eq!(call(&server, &key_a, "DELETE", &a_asset, None).status, 204);
    let a_log = call(&server, &key_a, "GET", "/v1/deletions", None).json();
    assert_eq!(a_log["data"][0]["asset_id"], asset.as_str());
    assert!(
        call(&server, &key_b, "GET", "/v1/deletions", None).json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // WHIP: A's publish token works only for A's room.
    let b_room = call(&server, &key_b, "POST", "/v1/rooms", Some(json!({}))).json();
    let b_whip = server.url(&format!("/whip/{}", b_room["id"].as_str().unwrap()));
    let r = http::request(
        "POST",
        &b_whip,
        Some(token["token"].as_str().unwrap()),
        Some(("application/sdp", b"v=0")),
    )
    .unwrap();
    assert_eq!(r.status, 403);

    // Only admins create applications; a revoked key stops working at once.
    assert_eq!(
        call(
            &server,
            &key_a,
            "POST",
            "/v1/applications",
            Some(json!({"name": "x"}))
        )
        .status,
        403
    );
    assert_eq!(call(&server, &key_a, "DELETE", &revoke_a, None).status, 204);
    assert_eq!(call(&server, &key_a, "GET", "/v1/rooms", None).status, 401);
    // Key listings show prefixes, never secrets or hashes.
    let keys = server
        .get(&format!("/v1/applications/{app_a}/keys"))
        .to_string();
    assert!(!keys.contains(&key_a) && !keys.contains("hash"), "{keys}");
}

/// A key is made from an empty body or `{}` only: anything else is refused with the reason,
/// and makes no key.
#[test]
fn a_key_request_with_a_body_it_does_not_understand_makes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (app, _, _) = application(&server, "keys");
    let url = server.url(&format!("/v1/applications/{app}/keys"));
    let keys = || {
        server.get(&format!("/v1/applications/{app}/keys"))["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = keys();
    // 10 MB: refused before it is read (a 413, or the connection closed under the writer).
    let huge = vec![b' '; 10 << 20];
    let r = http::request(
        "POST",
        &url,
        Some(ADMIN_KEY),
        Some(("application/json", &huge)),
    );
    assert!(
        r.as_ref().map_or(true, |r| r.status == 413),
        "{:?}",
        r.map(|r| r.status)
    );
    let large = vec![b' '; 100 << 10];
    for (body, status, code) in [
        (&large[..], 413, "payload_too_large"),
        (&[0xff, 0xfe, b'{'][..], 400, "invalid_json"),
        (&br#"{"role": "admin"}"#[..], 422, "invalid_field"),
        (&b"[]"[..], 422, "invalid_field"),
    ] {
        let r = http::request(
            "POST",
            &url,
            Some(ADMIN_KEY),
            Some(("application/json", body)),
        )
        .unwrap();
        assert_eq!(
            (r.status, r.json()["code"].as_str().map(String::from)),
            (status, Some(code.to_string())),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(keys(), before, "a refused request made a key");
    for body in [None, Some(("application/json", &b"{}"[..]))] {
        let r = http::request("POST", &url, Some(ADMIN_KEY), body).unwrap();
        assert_eq!(r.status, 201);
    }
    assert_eq!(keys(), before + 2);
}
