//! Storage destinations end to end, against real stores started here (SeaweedFS's S3
//! gateway, Azurite): uploads verified before `recording_available`, downloads through the
//! provider's presigned URL, the store killed in the middle of a multipart upload, wrong
//! credentials then `retry-upload`, retention on a manual clock with legal holds, and no
//! credential in any log.

mod common;
use common::serial;

use common::*;
use reel_testkit::emulators::{self, Azurite, SeaweedS3, TripProxy};
use reel_testkit::http;
use reel_testkit::media::{noise_vp8, pattern_and_tone};
use reel_testkit::{publish, PublishOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

// One test at a time: the stores bind fixed helper ports.

fn wait_recording(server: &Server, id: &str, states: &[&str], timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = server.get(&format!("/v1/recordings/{id}"));
        if states.iter().any(|s| r["state"] == *s) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "recording {id} never {states:?}: {r:#}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Publishes camera + mic for `seconds` into the room; returns the session id.
fn publish_into(
    server: &Server,
    room: &str,
    who: &str,
    video: std::path::PathBuf,
    seconds: u64,
) -> String {
    let (token, whip) = server.token(room, who, "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "300k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(seconds);
    publish(&opts).unwrap().session_id
}

fn small_video() -> std::path::PathBuf {
    pattern_and_tone(&media_dir(), 10, "320x240", "300k")
        .unwrap()
        .video
}

fn recording_of_room(server: &Server, room: &str) -> Value {
    let list = server.get(&format!("/v1/recordings?room_id={room}"));
    list["data"][0].clone()
}

/// `KEY:SECRET:REGION` of the test S3 server's identity.
fn s3_credentials() -> String {
    format!(
        "{}:{}:{}",
        emulators::S3_ACCESS_KEY,
        emulators::S3_SECRET_KEY,
        emulators::S3_REGION
    )
}

fn fetch(url: &str) -> Vec<u8> {
    let r = http::request("GET", url, None, None).unwrap();
    assert_eq!(r.status, 200, "GET {url}");
    r.body
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn assert_no_secrets(server: &Server, secrets: &[&str]) {
    let log = server.log_text();
    for s in secrets {
        assert!(!log.contains(s), "a credential is in the server log");
    }
    for path in [
        "/v1/recordings",
        "/v1/assets",
        "/v1/events",
        "/v1/deletions",
    ] {
        let body = server.get(path).to_string();
        for s in secrets {
            assert!(!body.contains(s), "a credential is in {path}");
        }
    }
}

/// A > 20 MiB stream recording to S3 in 5 MiB parts. The store is killed after 8 MiB went up
/// and started again 3 s later: the upload starts over, completes, verifies, and only then
/// is `recording_available` sent, with the object's URL. The presigned URL returns the exact
/// bytes of the asset (its SHA-256), Reel's local copy is gone, and `download` redirects.
#[test]
fn s3_multipart_upload_survives_the_store_dying_mid_upload() {
    let _one = serial();
    let mut s3 = SeaweedS3::start(&["recordings"]);
    let s3_port: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = TripProxy::start(s3_port, 8 << 20);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_STORAGE_S3_ENDPOINT", &endpoint),
            ("REEL_STORAGE_S3_VIRTUAL_HOSTED", "false"),
            ("REEL_STORAGE_ALLOW_HTTP", "true"),
            ("REEL_STORAGE_PART_SIZE_MIB", "5"),
            ("REEL_STORAGE_REQUEST_TIMEOUT_SECS", "5"),
            ("REEL_STORAGE_REQUEST_RETRIES", "1"),
        ],
    );
    let creds = s3_credentials();
    // The destination as a room default, with a folder and no file name.
    let room = server.post(
        "/v1/rooms",
        json!({"name": "s3", "empty_timeout_seconds": 1, "default_recording_options": {
            "destinationUrl": "s3://recordings/calls/", "credentials": creds}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let noise = noise_vp8(&media_dir(), 20, "640x360", "10M").unwrap();
    let session = publish_into(&server, &room, "alice", noise, 20);
    let rec_id = recording_of_room(&server, &room)["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Kill the store the moment 8 MiB of the upload went through, bring it back 3 s later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.tripped() {
        assert!(Instant::now() < deadline, "the upload never reached 8 MiB");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.get(&format!("/v1/recordings/{rec_id}"))["state"],
        "uploading"
    );
    s3.kill();
    proxy.release();
    std::thread::sleep(Duration::from_secs(3));
    s3.restart();

    let rec = wait_recording(
        &server,
        &rec_id,
        &["available", "failed"],
        Duration::from_secs(90),
    );
    assert_eq!(rec["state"], "available", "{rec:#}\n{}", server.log_text());
    let assets = server.get(&format!("/v1/assets?session_id={session}"))["data"].clone();
    let asset = &assets[0];
    assert!(
        asset["size_bytes"].as_i64().unwrap() > 20 << 20,
        "asset of {} bytes: not multipart enough",
        asset["size_bytes"]
    );
    assert!(
        asset["upload_attempts"].as_i64().unwrap() >= 2,
        "the kill did not interrupt the upload: {asset:#}"
    );
    assert_eq!(asset["upload_state"], "uploaded");
    assert_eq!(asset["local_copy"], false);
    let url = asset["destination_url"].as_str().unwrap();
    let name = url.strip_prefix("s3://recordings/calls/").expect(url);
    let seed = regex_like_seed(name, asset);
    assert!(
        seed,
        "{name} does not follow {{yyyyMMddHHmmss}}_{{app}}_{{callId}}.webm"
    );

    // recording_available came after the upload, with the destination.
    let events = events(&server);
    let available: Vec<&Value> = events
        .iter()
        .filter(|(t, p)| t == "recording_available" && p["recording_id"] == rec_id.as_str())
        .map(|(_, p)| p)
        .collect();
    assert_eq!(available.len(), 1);
    assert_eq!(available[0]["destinations"][0]["destination_url"], url);

    // The presigned URL, fetched with a plain HTTP client, gives the asset's exact bytes.
    let link = server.get(&format!(
        "/v1/assets/{}/presigned-url",
        asset["id"].as_str().unwrap()
    ));
    assert_eq!(link["served_by"], "destination");
    let bytes = fetch(link["url"].as_str().unwrap());
    assert_eq!(bytes.len() as i64, asset["size_bytes"].as_i64().unwrap());
    assert_eq!(sha256_hex(&bytes), asset["sha256"].as_str().unwrap());
    let tmp = dir.path().join("fetched.webm");
    std::fs::write(&tmp, &bytes).unwrap();
    let probe = ffprobe(&tmp);
    assert!(
        (probe.duration - 20.0).abs() < 1.0,
        "duration {}",
        probe.duration
    );
    // Reel's own download of an uploaded asset redirects to the store.
    let r = http::request(
        "GET",
        &server.url(&format!(
            "/v1/assets/{}/download",
            asset["id"].as_str().unwrap()
        )),
        Some(ADMIN_KEY),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 302);
    assert_no_secrets(&server, &[emulators::S3_SECRET_KEY]);
}

/// `{yyyyMMddHHmmss}_{applicationKey}_{callId}.{format}` with the asset's own values.
fn regex_like_seed(name: &str, asset: &Value) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let parts: Vec<&str> = stem.splitn(2, '_').collect();
    parts.len() == 2
        && parts[0].len() == 14
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && parts[1]
            == format!(
                "{}_{}",
                asset["application_id"].as_str().unwrap(),
                asset["session_id"].as_str().unwrap()
            )
        && ext == asset["format"].as_str().unwrap()
}

/// Wrong Azure account key: `recording.failed` with `destination_forbidden`, Reel's copy kept
/// and still downloadable; `retry-upload` with the right key makes it available in Azurite,
/// where the SAS URL returns the same bytes. No key reaches the logs or the API.
#[test]
fn azure_wrong_key_fails_clearly_then_retry_upload_succeeds() {
    let _one = serial();
    let az = Azurite::start();
    az.create_container("meetings");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_STORAGE_AZURE_ENDPOINT", &az.endpoint_template),
            ("REEL_STORAGE_ALLOW_HTTP", "true"),
        ],
    );
    use base64::Engine;
    let wrong_key = base64::engine::general_purpose::STANDARD.encode([42u8; 64]);
    let room = server.post(
        "/v1/rooms",
        json!({"name": "az", "empty_timeout_seconds": 1, "auto_stream_recording": false}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A file:// destination outside storage.file_root (unset here) is refused up front.
    let r = http::json(
        "POST",
        &server.url("/v1/recordings"),
        Some(ADMIN_KEY),
        &json!({"room_id": room, "recordingOptions": {"destinationUrl": "file:///etc/"}}),
    )
    .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("storage.file_root"), "{}", r.text());
    let rec = server.post(
        "/v1/recordings",
        json!({"room_id": room, "recordingOptions": {
            "destinationUrl": format!("azure://{}/meetings/", emulators::AZURE_ACCOUNT),
            "credentials": wrong_key}}),
    );
    let rec_id = rec["id"].as_str().unwrap().to_string();
    let session = publish_into(&server, &room, "bob", small_video(), 4);
    let failed = wait_recording(
        &server,
        &rec_id,
        &["failed", "available"],
        Duration::from_secs(60),
    );
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let events = events(&server);
    let fail_event = events
        .iter()
        .find(|(t, p)| t == "recording.failed" && p["recording_id"] == rec_id.as_str())
        .map(|(_, p)| p.clone())
        .expect("recording.failed");
    assert_eq!(
        fail_event["code"], "destination_forbidden",
        "{fail_event:#}"
    );
    assert_eq!(
        failed["failure_code"], "destination_forbidden",
        "{failed:#}"
    );
    assert!(!events
        .iter()
        .any(|(t, p)| t == "recording_available" && p["recording_id"] == rec_id.as_str()));
    let asset = server.get(&format!("/v1/assets?session_id={session}"))["data"][0].clone();
    let asset_id = asset["id"].as_str().unwrap().to_string();
    assert_eq!(asset["upload_state"], "failed");
    assert_eq!(asset["local_copy"], true);
    assert!(asset["upload_error"]
        .as_str()
        .unwrap()
        .starts_with("destination_forbidden"));
    // The local copy is intact and served by Reel.
    let local = server.download(&asset, dir.path());
    assert_eq!(
        sha256_hex(&std::fs::read(&local).unwrap()),
        asset["sha256"].as_str().unwrap()
    );

    // Retry with the right key.
    let r = http::json(
        "POST",
        &server.url(&format!("/v1/assets/{asset_id}/retry-upload")),
        Some(ADMIN_KEY),
        &json!({"credentials": emulators::AZURE_KEY}),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let rec = wait_recording(
        &server,
        &rec_id,
        &["available", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(rec["state"], "available", "{rec:#}");
    let asset = server.get(&format!("/v1/assets/{asset_id}"));
    assert_eq!(asset["upload_state"], "uploaded");
    let url = asset["destination_url"].as_str().unwrap();
    let name = url
        .strip_prefix(&format!("azure://{}/meetings/", emulators::AZURE_ACCOUNT))
        .expect(url);
    assert!(regex_like_seed(name, &asset), "{name}");
    let link = server.get(&format!(
        "/v1/assets/{asset_id}/presigned-url?expires_in=600"
    ));
    assert_eq!(link["served_by"], "destination");
    let bytes = fetch(link["url"].as_str().unwrap());
    assert_eq!(sha256_hex(&bytes), asset["sha256"].as_str().unwrap());
    // A second retry has nothing to do.
    let again = http::json(
        "POST",
        &server.url(&format!("/v1/assets/{asset_id}/retry-upload")),
        Some(ADMIN_KEY),
        &json!({}),
    )
    .unwrap();
    assert_eq!(again.status, 409);
    assert_no_secrets(&server, &[emulators::AZURE_KEY, &wrong_key]);
}

/// Retention on a manual clock: at +8 days exactly the 7-day assets go (audit log,
/// `recording.deleted`, file and journals gone); a 30-day room, a recording on legal hold and
/// a room on legal hold keep theirs; at +31 days the 30-day room's asset goes; a lifted hold
/// lets the next sweep delete. A legal hold also refuses `DELETE /v1/assets/{id}`.
#[test]
fn retention_deletes_exactly_the_expired_assets_and_respects_legal_holds() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock-offset-ms");
    std::fs::write(&clock, "0").unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_TEST_CLOCK_FILE", clock.to_str().unwrap()),
            ("REEL_RETENTION_SWEEP_INTERVAL_SECS", "1"),
        ],
    );
    let mk = |body: Value| {
        server.post("/v1/rooms", body)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let default_room = mk(json!({"name": "default", "empty_timeout_seconds": 1}));
    let held_rec_room = mk(json!({"name": "held recording", "empty_timeout_seconds": 1}));
    let month_room = mk(
        json!({"name": "30 days", "empty_timeout_seconds": 1, "policy": {"retention_days": 30}}),
    );
    let held_room = mk(
        json!({"name": "held room", "empty_timeout_seconds": 1, "policy": {"legal_hold": true}}),
    );
    let rooms = [&default_room, &held_rec_room, &month_room, &held_room];
    let sessions: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = rooms
            .iter()
            .map(|room| {
                let server = &server;
                s.spawn(move || publish_into(server, room, "p", small_video(), 3))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let assets: Vec<Value> = sessions
        .iter()
        .map(|s| server.wait_assets(s, 1, Duration::from_secs(30))[0].clone())
        .collect();
    for room in rooms {
        let rec = recording_of_room(&server, room);
        wait_recording(
            &server,
            rec["id"].as_str().unwrap(),
            &["available"],
            Duration::from_secs(30),
        );
    }
    let held_rec = recording_of_room(&server, &held_rec_room)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http::json(
        "POST",
        &server.url(&format!("/v1/recordings/{held_rec}/legal-hold")),
        Some(ADMIN_KEY),
        &json!({"enabled": true}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["legal_hold"], true);
    let r = http::request(
        "DELETE",
        &server.url(&format!("/v1/assets/{}", assets[1]["id"].as_str().unwrap())),
        Some(ADMIN_KEY),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());

    let file_of = |a: &Value| {
        server
            .data_dir
            .join("data/assets")
            .join(a["session_id"].as_str().unwrap())
            .join(format!(
                "{}.{}",
                a["id"].as_str().unwrap(),
                a["format"].as_str().unwrap()
            ))
    };
    for a in &assets {
        assert!(file_of(a).exists());
    }
    // Journals live in data/journals/{session}/{publication}/.
    let journals_of = |session: &str| -> Vec<std::path::PathBuf> {
        let root = server.data_dir.join("data/journals").join(session);
        let mut out = Vec::new();
        for publication in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(publication.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(f.path());
            }
        }
        out
    };
    let default_journals = journals_of(&sessions[0]);
    assert!(!default_journals.is_empty());

    let day = 86_400_000i64;
    let alive = |server: &Server| -> Vec<String> {
        server.get("/v1/assets")["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let id = |i: usize| assets[i]["id"].as_str().unwrap().to_string();
    let wait_alive = |want: Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut now = alive(&server);
            now.sort();
            let mut want = want.clone();
            want.sort();
            if now == want {
                return;
            }
            assert!(Instant::now() < deadline, "alive {now:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // +6 days: nothing is due.
    std::fs::write(&clock, (6 * day).to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alive(&server).len(), 4);
    // +8 days: the default room's asset only.
    std::fs::write(&clock, (8 * day).to_string()).unwrap();
    wait_alive(vec![id(1), id(2), id(3)]);
    assert!(!file_of(&assets[0]).exists());
    for j in &default_journals {
        assert!(!j.exists(), "journal {} kept", j.display());
    }
    assert!(
        !journals_of(&sessions[1]).is_empty(),
        "a held recording's journals went"
    );
    assert!(
        file_of(&assets[1]).exists()
            && file_of(&assets[2]).exists()
            && file_of(&assets[3]).exists()
    );
    let audit = server.get("/v1/deletions")["data"].clone();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit:#}");
    assert_eq!(audit[0]["asset_id"], id(0).as_str());
    assert_eq!(audit[0]["outcome"], "deleted");
    assert_eq!(audit[0]["reason"], "retention");
    let deleted: Vec<Value> = events(&server)
        .into_iter()
        .filter(|(t, _)| t == "recording.deleted")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["asset_id"], id(0).as_str());

    // +31 days: the 30-day room's too; the holds keep theirs.
    std::fs::write(&clock, (31 * day).to_string()).unwrap();
    wait_alive(vec![id(1), id(3)]);
    // Lifting the recording's hold lets the next sweep delete it.
    let r = http::json(
        "POST",
        &server.url(&format!("/v1/recordings/{held_rec}/legal-hold")),
        Some(ADMIN_KEY),
        &json!({"enabled": false}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    wait_alive(vec![id(3)]);
    assert_eq!(
        server.get("/v1/deletions")["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// Durability around the store: it is down when the upload starts, Reel is killed (-9)
/// while retrying, the store comes back, and the restarted Reel resumes the upload to
/// `available`. Destination and retention (1 day) are the application's defaults. Then
/// retention meets the store down again: the deletion
/// is audited as failed and the asset kept; with the store back the next sweep deletes the
/// object, and its presigned URL stops working.
#[test]
fn uploads_resume_after_a_restart_and_failed_deletions_are_retried() {
    let _one = serial();
    let mut s3 = SeaweedS3::start(&["durable"]);
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock-offset-ms");
    std::fs::write(&clock, "0").unwrap();
    let endpoint = s3.endpoint.clone();
    let env = [
        ("REEL_STORAGE_S3_ENDPOINT", endpoint.as_str()),
        ("REEL_STORAGE_S3_VIRTUAL_HOSTED", "false"),
        ("REEL_STORAGE_ALLOW_HTTP", "true"),
        ("REEL_STORAGE_REQUEST_TIMEOUT_SECS", "3"),
        ("REEL_STORAGE_REQUEST_RETRIES", "0"),
        ("REEL_TEST_CLOCK_FILE", clock.to_str().unwrap()),
        ("REEL_RETENTION_SWEEP_INTERVAL_SECS", "1"),
    ];
    let mut server = Server::start_with(dir.path(), &env);
    let creds = s3_credentials();
    // Destination and retention as the application's defaults (the room has none).
    let room = server.post(
        "/v1/rooms",
        json!({"name": "durable", "empty_timeout_seconds": 1}),
    );
    let app = room["application_id"].as_str().unwrap().to_string();
    let room = room["id"].as_str().unwrap().to_string();
    let r = http::json(
        "PATCH",
        &server.url(&format!("/v1/applications/{app}")),
        Some(ADMIN_KEY),
        &json!({"retention_days": 1, "default_recording_options":
                {"destinationUrl": "s3://durable/", "credentials": creds}}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["retention_days"], 1);
    assert!(!r.text().contains(emulators::S3_SECRET_KEY));
    let session = publish_into(&server, &room, "carol", small_video(), 3);
    s3.kill();
    let rec_id = recording_of_room(&server, &room)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_recording(&server, &rec_id, &["uploading"], Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = server.get(&format!("/v1/assets?session_id={session}"))["data"][0].clone();
        if a["upload_attempts"].as_i64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no retry seen: {a:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill9();
    s3.restart();
    let server = Server::start_with(dir.path(), &env);
    let rec = wait_recording(
        &server,
        &rec_id,
        &["available", "failed"],
        Duration::from_secs(60),
    );
    assert_eq!(rec["state"], "available", "{rec:#}\n{}", server.log_text());
    let asset = server.get(&format!("/v1/assets?session_id={session}"))["data"][0].clone();
    let asset_id = asset["id"].as_str().unwrap().to_string();
    let link = server.get(&format!("/v1/assets/{asset_id}/presigned-url"));
    let url = link["url"].as_str().unwrap().to_string();
    assert_eq!(sha256_hex(&fetch(&url)), asset["sha256"].as_str().unwrap());

    // Retention with the store down: audited as failed, the asset kept.
    s3.kill();
    std::fs::write(&clock, (2 * 86_400_000i64).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let log = server.get("/v1/deletions")["data"].clone();
        if let Some(first) = log.as_array().unwrap().first() {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no deletion attempt");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(failed["outcome"], "failed", "{failed:#}");
    assert_eq!(failed["asset_id"], asset_id.as_str());
    assert!(
        failed["error"].as_str().unwrap().contains("destination_"),
        "{failed:#}"
    );
    assert_eq!(
        server.get(&format!("/v1/assets/{asset_id}"))["id"],
        asset_id.as_str()
    );
    s3.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http::request(
            "GET",
            &server.url(&format!("/v1/assets/{asset_id}")),
            Some(ADMIN_KEY),
            None,
        )
        .unwrap();
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never deleted:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = server.get("/v1/deletions")["data"].clone();
    assert_eq!(log[0]["outcome"], "deleted", "{log:#}");
    assert_eq!(log[0]["location"], asset["destination_url"]);
    let gone = http::request("GET", &url, None, None).unwrap();
    assert_eq!(gone.status, 404, "the object is still in the bucket");
    assert_no_secrets(&server, &[emulators::S3_SECRET_KEY]);
}
