//! Composite recordings and audio mixes, judged as a viewer would: participants publish
//! distinct solid colours and tones through WHIP; the rendered file's frames, decoded at
//! known times, show each colour where the layout puts it, and its audio holds each tone
//! (in its own channel for `dual`).

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::judge::{frame_rgb, near, pcm, pixel, tone};
use reel_testkit::media::colour_and_tone;
use reel_testkit::{publish, PublishOptions, PublishReport};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RED: (u8, u8, u8) = (255, 0, 0);
const BLUE: (u8, u8, u8) = (0, 0, 255);

fn wait_recording(server: &Server, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = server.get(&format!("/v1/recordings/{id}"));
        if r["state"] == "available" || r["state"] == "failed" {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "recording {id}: {r:#}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Who publishes what: a solid colour and a tone at a level.
struct Look {
    kind: &'static str,
    colour: &'static str,
    freq: u32,
    volume_db: i32,
}

fn camera(colour: &'static str, freq: u32) -> Look {
    Look {
        kind: "camera",
        colour,
        freq,
        volume_db: -6,
    }
}

/// Publishes `look` for `seconds` as `who`, on a thread.
fn publisher(
    server: &Server,
    room: &str,
    who: &str,
    look: Look,
    seconds: u64,
) -> std::thread::JoinHandle<PublishReport> {
    let (token, whip) = server.token(room, who, look.kind);
    let media = colour_and_tone(&media_dir(), 20, look.colour, look.freq, look.volume_db).unwrap();
    let mut o = PublishOptions::new(&whip, &token);
    o.video = Some(media.video);
    o.audio = Some(media.audio);
    o.duration = Duration::from_secs(seconds);
    std::thread::spawn(move || publish(&o).unwrap())
}

/// A room whose recording is started on command with `mode` and `options`; returns
/// (room, recording id).
fn room_with_recording(server: &Server, mode: &str, options: Value) -> (String, String) {
    let room = server.post(
        "/v1/rooms",
        json!({"name": mode, "empty_timeout_seconds": 1, "auto_stream_recording": false}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = server.post(
        "/v1/recordings",
        json!({"room_id": room, "mode": mode, "recordingOptions": options}),
    );
    (room, rec["id"].as_str().unwrap().to_string())
}

fn asset_of(server: &Server, rec: &str, dir: &std::path::Path) -> (Value, std::path::PathBuf) {
    let assets = server.get(&format!("/v1/assets?recording_id={rec}"))["data"].clone();
    assert_eq!(assets.as_array().unwrap().len(), 1, "{assets:#}");
    let asset = assets[0].clone();
    let file = server.download(&asset, dir);
    (asset, file)
}

#[test]
fn grid_composite_shows_each_participant_in_its_tile_and_mixes_both_tones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"layout": {"type": "grid"}, "labels": false, "recording_indicator": false}}),
    );
    let a = publisher(&server, &room, "alice", camera("red", 440), 8);
    let b = publisher(&server, &room, "bob", camera("blue", 880), 8);
    a.join().unwrap();
    b.join().unwrap();
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}\n{}", server.log_text());
    let (asset, file) = asset_of(&server, &rec, dir.path());
    assert_eq!(asset["asset_type"], "composite");
    assert_eq!(asset["format"], "mp4");
    let probe = ffprobe(&file);
    let mut codecs = probe.codecs.clone();
    codecs.sort();
    assert_eq!(
        codecs,
        vec!["aac".to_string(), "h264".to_string()],
        "{file:?}"
    );
    assert_eq!((probe.width, probe.height), (Some(1280), Some(720)));
    let (complaints, _) = decode(&file);
    assert!(complaints.is_empty(), "{complaints}");
    // Both publishing by 4 s: alice (joined first) left, bob right.
    let frame = frame_rgb(&file, 4.0, 1280, 720);
    let left = pixel(&frame, 1280, 320, 360);
    let right = pixel(&frame, 1280, 960, 360);
    assert!(near(left, RED, 60), "left tile {left:?}");
    assert!(near(right, BLUE, 60), "right tile {right:?}");
    // Two 640x720 cells with 4:3 pictures, aspect kept: 640x480 at y = 120, background above.
    let bar = pixel(&frame, 1280, 320, 60);
    assert!(near(bar, (0, 0, 0), 30), "letterbox bar {bar:?}");
    assert!(near(pixel(&frame, 1280, 320, 130), RED, 60));
    // The mix holds both tones, in the middle of the call.
    let audio = &pcm(&file, 1)[0];
    let mid = &audio[48_000 * 3..48_000 * 5];
    let (t440, t880, t660) = (tone(mid, 440.0), tone(mid, 880.0), tone(mid, 660.0));
    // ffmpeg's sine is 1/8 full scale; -6 dB and a 1/2 mix gain leave about 0.03 each.
    assert!(t440 > 0.02 && t880 > 0.02, "440 {t440:.3}, 880 {t880:.3}");
    assert!(t660 < t440 / 10.0, "660 {t660:.3}");
    // Never clipped.
    let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak < 0.99, "peak {peak}");
}

#[test]
fn dual_channel_mp3_puts_each_party_in_its_own_channel() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "audio",
        json!({"format": "mp3", "audioOptions": {"channels": "dual", "left_participant": "agent"}}),
    );
    let a = publisher(&server, &room, "customer", camera("blue", 880), 6);
    std::thread::sleep(Duration::from_millis(300));
    let b = publisher(&server, &room, "agent", camera("red", 440), 6);
    a.join().unwrap();
    b.join().unwrap();
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}\n{}", server.log_text());
    let (asset, file) = asset_of(&server, &rec, dir.path());
    assert_eq!(asset["asset_type"], "audio_mix");
    let probe = ffprobe(&file);
    assert_eq!(probe.codecs, vec!["mp3".to_string()]);
    let recorded =
        (r["stopped_at"].as_i64().unwrap() - r["started_at"].as_i64().unwrap()) as f64 / 1000.0;
    assert!(
        (probe.duration - recorded).abs() < 0.3,
        "{} vs {recorded}",
        probe.duration
    );
    let ch = pcm(&file, 2);
    let (l, rr) = (
        &ch[0][48_000 * 2..48_000 * 4],
        &ch[1][48_000 * 2..48_000 * 4],
    );
    let (l440, l880, r440, r880) = (
        tone(l, 440.0),
        tone(l, 880.0),
        tone(rr, 440.0),
        tone(rr, 880.0),
    );
    // One voice per side: full level (1/8 full scale at -6 dB = 0.0625).
    assert!(
        l440 > 0.04 && l880 < l440 / 10.0,
        "left: 440 {l440:.3}, 880 {l880:.3}"
    );
    assert!(
        r880 > 0.04 && r440 < r880 / 10.0,
        "right: 440 {r440:.3}, 880 {r880:.3}"
    );
    // Mono mp3 of the same kind of call holds both tones in its one channel: the default.
    let (room, rec) = room_with_recording(&server, "audio", json!({}));
    let a = publisher(&server, &room, "customer", camera("blue", 880), 4);
    let b = publisher(&server, &room, "agent", camera("red", 440), 4);
    a.join().unwrap();
    b.join().unwrap();
    wait_recording(&server, &rec, Duration::from_secs(120));
    let (asset, file) = asset_of(&server, &rec, dir.path());
    assert_eq!(asset["format"], "mp3");
    let mono = &pcm(&file, 1)[0];
    let mid = &mono[48_000..48_000 * 3];
    assert!(tone(mid, 440.0) > 0.02 && tone(mid, 880.0) > 0.02);
}

#[test]
fn composite_options_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    for (mode, options, field) in [
        (
            "composite",
            json!({"compositeOptions": {"size": "800x600"}}),
            "size",
        ),
        (
            "composite",
            json!({"compositeOptions": {"layout": {"type": "mosaic"}}}),
            "compositeOptions",
        ),
        ("composite", json!({"format": "mp3"}), "format"),
        (
            "audio",
            json!({"audioOptions": {"channels": "quad"}}),
            "channels",
        ),
        (
            "stream",
            json!({"compositeOptions": {}}),
            "compositeOptions",
        ),
    ] {
        let r = http::json(
            "POST",
            &server.url("/v1/recordings"),
            Some(ADMIN_KEY),
            &json!({"room_id": room, "mode": mode, "recordingOptions": options}),
        )
        .unwrap();
        assert_eq!(r.status, 422, "{mode} {options}: {}", r.text());
        assert!(r.text().contains(field), "{}", r.text());
    }
}
