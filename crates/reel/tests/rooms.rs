//! Rooms through the API: update, delete (refused while live), and request-size limits.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::media::pattern_and_tone;
use reel_testkit::{publish, PublishOptions};
use serde_json::json;
use std::time::Duration;

#[test]
fn rooms_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let path = format!("/v1/rooms/{room}");
    let url = server.url(&path);

    // The recording policy, validated and kept.
    let policy = json!({"auto_composite": true, "audio_mix_formats": ["mp3"], "retention_days": 30, "transcription": {"enabled": true, "locale": "de-DE"}});
    let with_policy =
        http::json("PATCH", &url, Some(ADMIN_KEY), &json!({"policy": policy})).unwrap();
    assert_eq!(with_policy.status, 200, "{}", with_policy.text());
    // Kept in full: the settings not given read back as their defaults.
    let mut kept = policy.clone();
    kept["keep_local_copy"] = json!(false);
    kept["legal_hold"] = json!(false);
    assert_eq!(server.get(&path)["policy"], kept);
    let bad = http::json(
        "PATCH",
        &url,
        Some(ADMIN_KEY),
        &json!({"policy": {"audio_mix_formats": ["flac"]}}),
    )
    .unwrap();
    assert_eq!(bad.status, 422);
    assert!(bad.json()["message"]
        .as_str()
        .unwrap()
        .contains("policy.audio_mix_formats"));
    let patched = http::json(
        "PATCH",
        &url,
        Some(ADMIN_KEY),
        &json!({"name": "ward 7", "max_duration_seconds": 600}),
    )
    .unwrap();
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(server.get(&path)["name"], "ward 7");
    assert_eq!(server.get(&path)["max_duration_ms"], 600_000);
    for bad in [
        json!({"max_duration_seconds": 0}),
        json!({"empty_timeout_seconds": 999_999}),
        json!({"nickname": "x"}),
    ] {
        assert_eq!(
            http::json("PATCH", &url, Some(ADMIN_KEY), &bad)
                .unwrap()
                .status,
            422,
            "{bad}"
        );
    }

    // Live: deletion waits.
    let (token, whip) = server.token(&room, "pia", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(3);
    let publisher = std::thread::spawn(move || publish(&opts).unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    let r = http::request("DELETE", &url, Some(ADMIN_KEY), None).unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("room_in_use"))
    );
    let report = publisher.join().unwrap();
    server.wait_session_ended(&report.session_id, Duration::from_secs(10));

    assert_eq!(
        http::request("DELETE", &url, Some(ADMIN_KEY), None)
            .unwrap()
            .status,
        204
    );
    assert_eq!(
        http::request("GET", &url, Some(ADMIN_KEY), None)
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        http::request("DELETE", &url, Some(ADMIN_KEY), None)
            .unwrap()
            .status,
        404
    );
    // Its tokens no longer publish; its recordings are still there.
    let r = http::request(
        "POST",
        &whip,
        Some(&token),
        Some(("application/sdp", b"v=0")),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        server.get(&format!("/v1/assets?session_id={}", report.session_id))["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn out_of_range_numbers_are_refused_not_overflowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url("/v1/rooms");
    for body in [
        json!({"empty_timeout_seconds": u64::MAX}),
        json!({"max_duration_seconds": u64::MAX}),
        json!({"max_duration_seconds": -1}),
        json!({"empty_timeout_seconds": 1.5}),
    ] {
        let r = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (422, Some("invalid_field")),
            "{body}"
        );
    }
    let room = server.room(1);
    let tokens = server.url(&format!("/v1/rooms/{room}/tokens"));
    let r = http::json(
        "POST",
        &tokens,
        Some(ADMIN_KEY),
        &json!({"participant": "x", "expires_in_seconds": u64::MAX}),
    )
    .unwrap();
    assert_eq!(r.status, 422);
    assert!(!server.log_text().contains("panicked"));
}

#[test]
fn each_key_is_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // One token a second: the four quick requests below finish well within it, even on a
    // loaded machine.
    let limits = [
        ("REEL_API_RATE_LIMIT_PER_SECOND", "1"),
        ("REEL_API_RATE_LIMIT_BURST", "3"),
    ];
    let server = Server::start_with(dir.path(), &limits);
    let other = server.post("/v1/applications", json!({"name": "other"}));
    let other_key = server.post(
        &format!("/v1/applications/{}/keys", other["id"].as_str().unwrap()),
        json!({}),
    );
    let other_key = other_key["key"].as_str().unwrap().to_string();
    let url = server.url("/v1/rooms");
    // The admin key spent two requests above; the third goes through, the fourth does not.
    assert_eq!(
        http::request("GET", &url, Some(ADMIN_KEY), None)
            .unwrap()
            .status,
        200
    );
    let limited = http::request("GET", &url, Some(ADMIN_KEY), None).unwrap();
    assert_eq!(
        (limited.status, limited.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(limited.header("retry-after"), Some("1"));
    // Another key has its own budget; the first recovers with time.
    assert_eq!(
        http::request("GET", &url, Some(&other_key), None)
            .unwrap()
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        http::request("GET", &url, Some(ADMIN_KEY), None)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn oversized_bodies_get_413_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let big = json!({"name": "x".repeat(100_000)});
    let r = http::json("POST", &server.url("/v1/rooms"), Some(ADMIN_KEY), &big).unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let sdp = vec![b'a'; 70_000];
    let room = server.room(1);
    let (token, whip) = server.token(&room, "q", "camera");
    let r = http::request("POST", &whip, Some(&token), Some(("application/sdp", &sdp))).unwrap();
    assert_eq!(r.status, 413);
}

/// Errors a person understands: serde's and axum's words become sentences naming the
/// field; unknown paths and methods get the JSON error body too.
#[test]
fn malformed_requests_get_reels_own_messages_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url("/v1/rooms");
    let cases = [
        (
            json!({"empty_timeout_seconds": "x"}),
            "empty_timeout_seconds: must be a whole number, 0 or more, not a string",
        ),
        (
            json!({"empty_timeout_seconds": true}),
            "empty_timeout_seconds: must be a whole number, 0 or more, not true or false",
        ),
    ];
    for (body, message) in cases {
        let r = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
        let got = r.json();
        assert_eq!(
            (r.status, got["code"].as_str()),
            (422, Some("invalid_field")),
            "{got}"
        );
        assert_eq!(got["message"], message);
    }
    let text = http::request(
        "POST",
        &url,
        Some(ADMIN_KEY),
        Some(("application/json", b"{\"name\": ")),
    )
    .unwrap();
    assert_eq!(text.status, 400);
    let message = text.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("the body is not valid JSON"),
        "{message}"
    );
    assert!(!message.contains("Failed to"), "{message}");
    let missing = http::request(
        "GET",
        &server.url("/v1/nothing-here"),
        Some(ADMIN_KEY),
        None,
    )
    .unwrap();
    assert_eq!(
        (missing.status, missing.json()["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(missing.json()["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing-here"));
    let method = http::request("DELETE", &server.url("/healthz"), None, None).unwrap();
    assert_eq!(
        (method.status, method.json()["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

/// A room reads its limits as it is written (seconds) and as it first read (milliseconds);
/// either spelling is accepted, and a room as read can be sent back unchanged.
#[test]
fn a_room_read_can_be_sent_back_and_either_spelling_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let created = server.post(
        "/v1/rooms",
        json!({"name": "clinic", "empty_timeout_ms": 45_000}),
    );
    assert_eq!(created["empty_timeout_seconds"], 45);
    assert_eq!(created["empty_timeout_ms"], 45_000);
    let path = format!("/v1/rooms/{}", created["id"].as_str().unwrap());
    let url = server.url(&path);
    let read = server.get(&path);
    let back = http::json("PATCH", &url, Some(ADMIN_KEY), &read).unwrap();
    assert_eq!(
        back.status,
        200,
        "a room as read, sent back: {}",
        back.text()
    );
    // Unchanged (an empty policy sent back now reads with its defaults spelled out).
    let (mut after, mut before) = (back.json(), read.clone());
    after["policy"].take();
    before["policy"].take();
    assert_eq!(after, before);
    let changed = http::json(
        "PATCH",
        &url,
        Some(ADMIN_KEY),
        &json!({"max_duration_ms": 120_000}),
    )
    .unwrap();
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(changed.json()["max_duration_seconds"], 120);
    for bad in [
        json!({"empty_timeout_seconds": 10, "empty_timeout_ms": 20_000}),
        json!({"id": "room_someone_else"}),
    ] {
        let r = http::json("PATCH", &url, Some(ADMIN_KEY), &bad).unwrap();
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
    }
}
