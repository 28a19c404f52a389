//! Recordings on command: start before anyone joins, pause and resume around a marked
//! stretch of media that must be nowhere in the output, stop, and the state machine's
//! refusals.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::judge::marked_content;
use reel_testkit::media::{marked_window, pattern_and_tone};
use reel_testkit::{publish, PublishOptions};
use serde_json::{json, Value};
use std::time::Duration;

fn post(server: &Server, path: &str, body: Value) -> http::Response {
    http::json("POST", &server.url(path), Some(ADMIN_KEY), &body).unwrap()
}

fn wait_recording(server: &Server, id: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = server.get(&format!("/v1/recordings/{id}"));
        if r["state"] == state {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recording {id} never {state}: {r:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_ten_second_pause_is_absent_from_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "sam", "camera");
    // Marked from 11.5 s to 18.5 s of the media; the pause covers 10 s to 20 s.
    let media = marked_window(&media_dir(), 30, 11.5, 18.5).unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(30);
    let publisher = std::thread::spawn(move || publish(&opts).unwrap());

    let active = server.url(&format!("/v1/rooms/{room}/active-recording"));
    let recording = loop {
        let r = http::request("GET", &active, Some(ADMIN_KEY), None).unwrap();
        if r.status == 200 && r.json()["state"] == "recording" {
            break r.json()["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(10_300));
    let paused = post(
        &server,
        &format!("/v1/recordings/{recording}/pause"),
        json!({}),
    );
    assert_eq!(
        (paused.status, paused.json()["state"].as_str()),
        (200, Some("paused"))
    );
    let again = post(
        &server,
        &format!("/v1/recordings/{recording}/pause"),
        json!({}),
    );
    assert_eq!(
        (again.status, again.json()["code"].as_str()),
        (409, Some("invalid_state"))
    );
    std::thread::sleep(Duration::from_secs(10));
    let resumed = post(
        &server,
        &format!("/v1/recordings/{recording}/resume"),
        json!({}),
    );
    assert_eq!(resumed.json()["state"], "recording");
    let report = publisher.join().unwrap();

    let done = wait_recording(&server, &recording, "available");
    assert_eq!(done["pauses"].as_array().unwrap().len(), 1);
    let assets = server.get(&format!("/v1/assets?recording_id={recording}"))["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(assets.len(), 1);
    let file = server.download(&assets[0], dir.path());
    let probe = ffprobe(&file);
    let expected = report.sent_for.as_secs_f64() - 10.0;
    assert!(
        (probe.duration - expected).abs() <= 0.6,
        "{} s recorded, {expected} s expected",
        probe.duration
    );
    let markers = assets[0]["details"]["pauses"].as_array().unwrap().clone();
    assert_eq!(markers.len(), 1, "{markers:?}");
    let at = markers[0]["at_ms"].as_i64().unwrap();
    assert!((9_500..=11_000).contains(&at), "pause marker at {at} ms");
    let (errors, _) = decode(&file);
    assert!(errors.is_empty(), "{errors}");

    // Nothing published during the pause is in the recording.
    let (max_luma, max_tone) = marked_content(&file);
    assert!(
        max_luma < 120.0,
        "a marked (white) frame is in the recording: luma {max_luma}"
    );
    assert!(
        max_tone < -35.0,
        "the marked 1 kHz tone is in the recording: {max_tone} dB"
    );

    let types: Vec<String> = events(&server)
        .into_iter()
        .filter(|(_, p)| p["recording_id"] == recording.as_str())
        .map(|(t, _)| t)
        .collect();
    for t in [
        "recording.started",
        "recording.paused",
        "recording.resumed",
        "recording_finished",
        "recording_available",
        "recording.statusUpdate",
    ] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
}

#[test]
fn recordings_on_command_and_the_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.post(
        "/v1/rooms",
        json!({"empty_timeout_seconds": 1, "auto_stream_recording": false}),
    );
    let room = room["id"].as_str().unwrap().to_string();
    let (token, whip) = server.token(&room, "tia", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(2);

    // No recording: the session is captured nowhere.
    let unrecorded = publish(&opts).unwrap();
    server.wait_session_ended(&unrecorded.session_id, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.get(&format!("/v1/assets?session_id={}", unrecorded.session_id))["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        http::request(
            "GET",
            &server.url(&format!("/v1/rooms/{room}/active-recording")),
            Some(ADMIN_KEY),
            None
        )
        .unwrap()
        .status,
        404
    );

    // Requested before anyone joins: it starts with the session.
    let bad_mode = post(
        &server,
        "/v1/recordings",
        json!({"room_id": room, "mode": "mosaic"}),
    );
    assert_eq!(
        (bad_mode.status, bad_mode.json()["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let rec = post(
        &server,
        "/v1/recordings",
        json!({"room_id": room, "mode": "stream"}),
    );
    assert_eq!(rec.status, 201, "{}", rec.text());
    let rec = rec.json();
    assert_eq!(rec["state"], "starting");
    let id = rec["id"].as_str().unwrap().to_string();
    let twice = post(&server, "/v1/recordings", json!({"room_id": room}));
    assert_eq!(
        (twice.status, twice.json()["code"].as_str()),
        (409, Some("recording_in_progress"))
    );
    // It names the recording in the way and what to do about it.
    let message = twice.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&id) && message.contains(&format!("/v1/recordings/{id}/stop")),
        "{message}"
    );
    let report = publish(&opts).unwrap();
    let done = wait_recording(&server, &id, "available");
    assert_eq!(done["session_id"], report.session_id.as_str());
    let assets = server.get(&format!("/v1/assets?recording_id={id}"))["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(assets.len(), 1);
    let probe = ffprobe(&server.download(&assets[0], dir.path()));
    assert!(
        (probe.duration - report.sent_for.as_secs_f64()).abs() <= 0.3,
        "{probe:?}"
    );

    // Illegal moves are refused and change nothing.
    let resume = post(&server, &format!("/v1/recordings/{id}/resume"), json!({}));
    assert_eq!(
        (resume.status, resume.json()["code"].as_str()),
        (409, Some("invalid_state"))
    );
    assert_eq!(
        server.get(&format!("/v1/recordings/{id}"))["state"],
        "available"
    );
    assert_eq!(
        post(&server, "/v1/recordings/rec_nope/stop", json!({})).status,
        404
    );

    // Stopped before anyone joined: failed, with the reason.
    let early = post(&server, "/v1/recordings", json!({"room_id": room})).json();
    let stopped = post(
        &server,
        &format!("/v1/recordings/{}/stop", early["id"].as_str().unwrap()),
        json!({}),
    );
    assert_eq!(stopped.json()["state"], "failed");
    assert!(stopped.json()["failure"]
        .as_str()
        .unwrap()
        .contains("nothing was recorded"));
    assert_eq!(stopped.json()["failure_code"], "nothing_recorded");
    let listed = server.get(&format!("/v1/recordings?room_id={room}&state=failed"));
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[test]
fn recording_options_are_validated_and_credentials_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY";
    let options = json!({
        "destinationUrl": "s3://reel-test-bucket/calls/",
        "credentials": format!("AKIAIOSFODNN7EXAMPLE:{SECRET}:eu-west-1"),
        "notificationEvents": true,
        "transcriptionOptions": {"enabled": true, "locale": "en-US"},
    });
    let rec = post(
        &server,
        "/v1/recordings",
        json!({"room_id": room, "recordingOptions": options}),
    );
    assert_eq!(rec.status, 201, "{}", rec.text());
    let rec = rec.json();
    assert_eq!(
        rec["recordingOptions"]["destinationUrl"],
        "s3://reel-test-bucket/calls/"
    );
    assert_eq!(
        rec["recordingOptions"]["transcriptionOptions"]["locale"],
        "en-US"
    );
    assert_eq!(rec["credentials_set"], true);
    let id = rec["id"].as_str().unwrap();
    for read in [
        rec.to_string(),
        server.get(&format!("/v1/recordings/{id}")).to_string(),
        server.get("/v1/recordings").to_string(),
        server.get("/v1/events").to_string(),
    ] {
        assert!(
            !read.contains(SECRET) && !read.contains("AKIAIOSFODNN7EXAMPLE"),
            "credentials leaked: {read}"
        );
    }
    post(&server, &format!("/v1/recordings/{id}/stop"), json!({}));

    for (options, field) in [
        (
            json!({"destinationUrl": "s3://Bad_Bucket"}),
            "recordingOptions.destinationUrl",
        ),
        (
            json!({"destinationUrl": "s3://good-bucket", "credentials": "no-colons"}),
            "recordingOptions.credentials",
        ),
        (
            json!({"credentials": "a:b:c"}),
            "recordingOptions.credentials",
        ),
        (json!({"format": "mp3"}), "recordingOptions.format"),
        (json!({"notificationEvents": "yes"}), "notificationEvents"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let r = post(
            &server,
            "/v1/recordings",
            json!({"room_id": room, "recordingOptions": options}),
        );
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (422, Some("invalid_field")),
            "{options}"
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains(field),
            "{options}: {}",
            r.text()
        );
    }

    // Not in the logs, and not in the database file in plaintext.
    assert!(!server.log_text().contains(SECRET));
    let db = std::fs::read(dir.path().join("data/reel.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("data/reel.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "credentials stored in plaintext"
        );
    }
}

#[test]
fn a_rooms_default_options_apply_to_its_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    const SECRET: &str = "roomdefaultsecretvalue";
    let defaults = json!({"destinationUrl": "gs://reel-test-bucket/room/", "credentials": format!("GOOGKEY:{SECRET}"), "notificationEvents": false});
    let bad = post(
        &server,
        "/v1/rooms",
        json!({"default_recording_options": {"destinationUrl": "gs://ok-bucket", "credentials": "x"}}),
    );
    assert_eq!(bad.status, 422);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .contains("default_recording_options.credentials"),
        "{}",
        bad.text()
    );
    let room = post(
        &server,
        "/v1/rooms",
        json!({"empty_timeout_seconds": 1, "default_recording_options": defaults}),
    );
    assert_eq!(room.status, 201, "{}", room.text());
    let room = room.json();
    assert!(!room.to_string().contains(SECRET));
    assert_eq!(
        room["default_recording_options"]["destinationUrl"],
        "gs://reel-test-bucket/room/"
    );
    let room_id = room["id"].as_str().unwrap();
    // The room sent back as it reads (its credentials are write-only, so not in it) keeps
    // them: the recording below still has credentials.
    let path = format!("/v1/rooms/{room_id}");
    let read = server.get(&path);
    let back = http::json("PATCH", &server.url(&path), Some(ADMIN_KEY), &read).unwrap();
    assert_eq!(back.status, 200, "{}", back.text());

    let (token, whip) = server.token(room_id, "uma", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(1);
    publish(&opts).unwrap();
    let recs = server.get(&format!("/v1/recordings?room_id={room_id}"));
    let rec = &recs["data"][0];
    assert_eq!(
        rec["recordingOptions"]["destinationUrl"],
        "gs://reel-test-bucket/room/"
    );
    assert_eq!(rec["recordingOptions"]["notificationEvents"], false);
    assert_eq!(rec["credentials_set"], true);
    assert!(!recs.to_string().contains(SECRET));
    assert!(!server.log_text().contains(SECRET));
}

/// A participant who joins but never sends media (an offer answered, no ICE ever): the
/// recording fails saying so, with a stable code, in the recording and in its event.
#[test]
fn a_recording_with_no_media_fails_with_a_code_and_a_reason() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_WHIP_FIRST_CONTACT_TIMEOUT_SECS", "1")]);
    let room = server.room(0);
    let (token, whip) = server.token(&room, "ghost", "camera");
    let offer = reel_testkit::audio_offer();
    let answered = http::request(
        "POST",
        &whip,
        Some(&token),
        Some(("application/sdp", offer.as_bytes())),
    )
    .unwrap();
    assert_eq!(answered.status, 201, "{}", answered.text());
    let session = server.get(&format!("/v1/sessions?room_id={room}"))["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_session_ended(&session, Duration::from_secs(20));
    let listed = server.get(&format!("/v1/recordings?session_id={session}"));
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    let r = wait_recording(&server, &id, "failed");
    assert_eq!(r["failure_code"], "no_media", "{r:#}");
    let failure = r["failure"].as_str().unwrap();
    assert!(failure.contains("no media was captured"), "{failure}");
    let event = events(&server)
        .into_iter()
        .find(|(t, p)| t == "recording.failed" && p["recording_id"] == id.as_str())
        .map(|(_, p)| p)
        .expect("recording.failed");
    assert_eq!(event["code"], "no_media", "{event:#}");
    assert_eq!(event["reason"], failure);
}
