//! WebRTC publishers no one here wrote, beside the browsers: GStreamer's `webrtcbin`
//! (Debian's 1.22: libnice ICE, OpenSSL DTLS with an RSA-2048 certificate), the stack of
//! `whipsink`, hardware encoders and MCUs. Driven by `tests/peers/gst_whip.py` against
//! `reel serve` with no setting, in a network namespace of the test's own (`common::netns`).
//! Needs Debian's python3-gst-1.0, gir1.2-gst-plugins-bad-1.0 and gstreamer1.0-nice
//! (scripts/deps installs them); it fails, never skips, when they are missing.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Publishes with webrtcbin for `seconds`; the peer's report.
fn gstreamer_publish(server: &Server, kind: &str, bundle: &str, seconds: u32) -> (Value, String) {
    let room = server.room(1);
    let (token, whip) = server.token(&room, "gstreamer", "camera");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/gst_whip.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .args([&whip, &token, &seconds.to_string(), kind, bundle])
        .output()
        .expect("Debian's python3 with python3-gst-1.0 (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the GStreamer publisher failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (report, token)
}

/// libnice sends no STUN Binding request once connected (only an indication every 25 s):
/// Reel used to drop the pair 15 s in while media kept coming. 60 s published, 60 s
/// recorded, every second of it decodable; RSA DTLS accepted.
#[test]
fn a_gstreamer_publisher_is_recorded_whole_for_a_minute() {
    if !netns::inside("a_gstreamer_publisher_is_recorded_whole_for_a_minute") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let (report, token) = gstreamer_publish(&server, "camera", "max-bundle", 60);
    assert_eq!(report["deleteStatus"], 200, "{report}");
    let session = report["sessionId"].as_str().unwrap();
    let assets = server.wait_assets(session, 1, Duration::from_secs(60));
    let file = server.download(&assets[0], dir.path());
    let probe = ffprobe(&file);
    assert_eq!(probe.codecs, ["vp8", "opus"]);
    // Counted from webrtcbin's "connected", which it reports about a second after its media
    // starts to flow: the recording may hold that second more, never less.
    let published = report["publishedFor"].as_f64().unwrap();
    assert!(
        probe.duration >= published - 0.5 && probe.duration <= published + 1.5,
        "recorded {} s of {published} s",
        probe.duration
    );
    let (errors, frames) = decode(&file);
    assert!(errors.is_empty(), "{errors}");
    // 30 fps sent; a few may be lost on the way, not a quarter of a minute.
    assert!(
        frames as f64 >= published * 27.0,
        "{frames} frames in {published} s"
    );
    assert!(!server.log_text().contains("disconnected"));
    assert!(!server.log_text().contains(&token));
}

/// An audio-only offer of one m= line without a BUNDLE group (webrtcbin with
/// bundle-policy=none) was refused 400 ("Session attribute a=group missing"): recorded.
#[test]
fn an_audio_only_gstreamer_offer_without_bundle_is_recorded() {
    if !netns::inside("an_audio_only_gstreamer_offer_without_bundle_is_recorded") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_as_installed(dir.path());
    let (report, _) = gstreamer_publish(&server, "audio", "none", 4);
    assert_eq!(report["offerHadBundle"], false, "{report}");
    let session = report["sessionId"].as_str().unwrap();
    let assets = server.wait_assets(session, 1, Duration::from_secs(30));
    assert_eq!(assets[0]["asset_type"], "audio");
    let file = server.download(&assets[0], dir.path());
    let probe = ffprobe(&file);
    assert_eq!(probe.codecs, ["opus"]);
    // Counted from webrtcbin's "connected", which it reports about a second after its media
    // starts to flow: the recording may hold that second more, never less.
    let published = report["publishedFor"].as_f64().unwrap();
    assert!(
        probe.duration >= published - 0.5 && probe.duration <= published + 1.5,
        "recorded {} s of {published} s",
        probe.duration
    );
    let samples = &reel_testkit::judge::pcm(&file, 1)[0];
    let middle = &samples[48_000..48_000 * 3];
    assert!(
        reel_testkit::judge::tone(middle, 440.0) > 0.05,
        "no 440 Hz tone"
    );
}
