//! Real browsers publish on the user's own path: Debian's headless Chromium and Firefox ESR,
//! with fake camera and microphone and no WebRTC flag a user would not have, to `reel serve`
//! started with no configuration at all. Each test runs in a network namespace of its own
//! (`common::netns`) whose host has one real interface address beside loopback, as a user's
//! machine does: browsers refuse loopback candidates, so the server must offer that address
//! by itself. Needs node with playwright-core and puppeteer-core in tests/browser, chromium
//! and firefox-esr (scripts/test installs them); it fails, never skips, when they are missing.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn chromium_publish(whip: &str, token: &str, kind: &str, seconds: u32) -> Value {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/test (or npm ci in tests/browser)"
    );
    let out = Command::new("node")
        .arg(dir.join("publish.mjs"))
        .args([whip, token, kind, &seconds.to_string()])
        .output()
        .expect("node is required (apt-get install nodejs)");
    assert!(
        out.status.success(),
        "chromium publisher failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn chromium_camera_and_screen_share_are_recorded() {
    if !netns::inside("chromium_camera_and_screen_share_are_recorded") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let room = server.room(2);
    let (cam_token, whip) = server.token(&room, "dr-who", "camera");
    let (screen_token, _) = server.token(&room, "dr-who", "screen");

    let camera = std::thread::spawn({
        let whip = whip.clone();
        move || chromium_publish(&whip, &cam_token, "camera", 6)
    });
    std::thread::sleep(Duration::from_secs(2));
    let screen = chromium_publish(&whip, &screen_token, "screen", 3);
    let camera = camera.join().unwrap();
    assert_eq!(camera["deleteStatus"], 200);
    assert_eq!(
        camera["sessionId"], screen["sessionId"],
        "both publishers in one session"
    );
    let session = camera["sessionId"].as_str().unwrap();

    server.wait_assets(session, 2, Duration::from_secs(30));
    for (asset_type, result, codecs) in [
        ("regular", &camera, vec!["vp8", "opus"]),
        ("screen", &screen, vec!["vp8"]),
    ] {
        let listed = server.get(&format!(
            "/v1/assets?session_id={session}&asset_type={asset_type}"
        ));
        let assets = listed["data"].as_array().unwrap();
        assert_eq!(assets.len(), 1, "{asset_type}: {listed:#}");
        let file = server.download(&assets[0], dir.path());
        let probe = ffprobe(&file);
        assert_eq!(probe.codecs, codecs, "{asset_type}");
        let published = result["publishedFor"].as_f64().unwrap();
        assert!(
            (probe.duration - published).abs() <= 0.3,
            "{asset_type}: recorded {} s, published {published} s",
            probe.duration
        );
        let (errors, frames) = decode(&file);
        assert!(errors.is_empty(), "{asset_type}: {errors}");
        assert!(
            frames as f64 >= published * 10.0,
            "{asset_type}: only {frames} frames"
        );
    }
}

/// Reel's own `/publish` page in `browser`, on the README's path: the WHIP URL and token
/// after `#`, Start, a live preview (its pixels), Stop. Returns what the page reported.
fn publish_page(browser: &str, server: &Server, whip: &str, token: &str) -> Value {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/puppeteer-core").exists(),
        "puppeteer-core is not installed: run scripts/test (or npm ci in tests/browser)"
    );
    let out = Command::new("node")
        .arg(dir.join("publish-page.mjs"))
        .args([browser, &server.url(""), whip, token, "4"])
        .output()
        .expect("node is required (apt-get install nodejs)");
    assert!(
        out.status.success(),
        "the /publish page failed in {browser}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The recording of a /publish page run is there, plays, and lasts what was published; the
/// token never reached the server's log (it rode after `#`).
fn check_page_recording(server: &Server, dir: &std::path::Path, result: &Value, token: &str) {
    let session = result["sessionId"].as_str().unwrap();
    let assets = server.wait_assets(session, 1, Duration::from_secs(30));
    let file = server.download(&assets[0], dir);
    let probe = ffprobe(&file);
    assert_eq!(probe.codecs, ["vp8", "opus"]);
    let published = result["publishedFor"].as_f64().unwrap();
    assert!(
        (probe.duration - published).abs() <= 0.6,
        "recorded {} s, published {published} s",
        probe.duration
    );
    let (errors, frames) = decode(&file);
    assert!(errors.is_empty(), "{errors}");
    assert!(frames as f64 >= published * 10.0, "only {frames} frames");
    assert!(!server.log_text().contains(token));
}

/// The README's browser step exactly: `reel serve` with no configuration, Chromium with no
/// loopback flag, Reel's own `/publish` page.
#[test]
fn the_publish_page_records_a_chromium_camera() {
    if !netns::inside("the_publish_page_records_a_chromium_camera") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "visitor", "camera");
    let result = publish_page("chromium", &server, &whip, &token);
    let preview = &result["preview"];
    assert_eq!(
        (preview["width"].as_u64(), preview["height"].as_u64()),
        (Some(640), Some(480)),
        "{result}"
    );
    // Chromium's fake camera: a coloured moving picture, neither black nor flat.
    assert!(
        preview["mean"].as_f64().unwrap() > 20.0 && preview["std"].as_f64().unwrap() > 5.0,
        "{result}"
    );
    check_page_recording(&server, dir.path(), &result, &token);
}

/// The same path in Firefox ESR, whose WebRTC stack (its own ICE, NSS DTLS) is not
/// Chromium's.
#[test]
fn the_publish_page_records_a_firefox_camera() {
    if !netns::inside("the_publish_page_records_a_firefox_camera") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "visitor", "camera");
    let result = publish_page("firefox", &server, &whip, &token);
    // Firefox's fake camera is a picture that changes colour: not black.
    assert!(
        result["preview"]["mean"].as_f64().unwrap() > 20.0,
        "{result}"
    );
    check_page_recording(&server, dir.path(), &result, &token);
}

/// Keyframe times (seconds) of the first video stream, as ffprobe reads them.
fn keyframe_times(file: &std::path::Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// A minute from Chromium (which sends a keyframe only when asked) can be cut and seeked
/// anywhere: Reel asks for one every 4 s, and `ffmpeg -ss` at any offset yields a frame.
#[test]
fn a_minute_of_chromium_has_keyframes_every_few_seconds_and_seeks_anywhere() {
    if !netns::inside("a_minute_of_chromium_has_keyframes_every_few_seconds_and_seeks_anywhere") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "long", "camera");
    let result = chromium_publish(&whip, &token, "camera", 60);
    let session = result["sessionId"].as_str().unwrap();
    let assets = server.wait_assets(session, 1, Duration::from_secs(60));
    let file = server.download(&assets[0], dir.path());
    let duration = ffprobe(&file).duration;
    assert!(duration > 55.0, "{duration} s");
    let keys = keyframe_times(&file);
    let gaps = keys
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(keys.last().map(|l| duration - l));
    let longest = gaps.fold(0.0f64, f64::max);
    assert!(
        keys.len() >= 12 && longest <= 5.0,
        "keyframes at {keys:?} (longest gap {longest:.2} s)"
    );
    for at in [7.5, 21.0, 33.3, 48.0, 57.0] {
        let frame = dir.path().join(format!("at-{at}.png"));
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &at.to_string(), "-i"])
            .arg(&file)
            .args(["-frames:v", "1", "-y"])
            .arg(&frame)
            .output()
            .unwrap();
        let size = std::fs::metadata(&frame).map(|m| m.len()).unwrap_or(0);
        assert!(
            out.status.success() && size > 1000,
            "ffmpeg -ss {at}: no frame: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
