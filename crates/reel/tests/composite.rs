//! Composite recordings and audio mixes, judged as a viewer would: participants publish
//! distinct solid colours and tones through WHIP; the rendered file's frames, decoded at
//! known times, show each colour where the layout puts it, and its audio holds each tone
//! (in its own channel for `dual`).

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::judge::{decode, frame_rgb, marked_content, near, pcm, pixel, tone};
use reel_testkit::media::{colour_and_tone, marked_window};
use reel_testkit::{publish, PublishOptions, PublishReport};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// One test at a time: timing measurements (A/V offsets, switch times) must not depend on a parallel test.

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
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"layout": {"type": "grid"}, "labels": false, "recording_indicator": false}}),
    );
    // Tiles follow the order of arrival: alice first.
    let a = publisher(&server, &room, "alice", camera("red", 440), 8);
    std::thread::sleep(Duration::from_millis(700));
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
    let _one = serial();
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
    let _one = serial();
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

fn journals_of(server: &Server, session: &str, publication: &str) -> Vec<std::path::PathBuf> {
    let dir = server
        .data_dir
        .join("data/journals")
        .join(session)
        .join(publication);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Unix ms of the first video frame in a publication's journals, on the receiver's clock.
fn first_video_frame_ms(server: &Server, session: &str, publication: &str) -> i64 {
    use reel_media::journal::JournalReader;
    use reel_media::remux::{analyze, ArrivalFrames};
    for path in journals_of(server, session, publication) {
        let open = || std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let plan = analyze(open()).unwrap();
        if plan.header.kind != reel_core::MediaKind::Video {
            continue;
        }
        let mut frames = ArrivalFrames::new(plan, JournalReader::open(open()).unwrap()).unwrap();
        return frames.next().unwrap().unwrap().unix_us / 1000;
    }
    panic!("no video journal for {publication}");
}

/// The first output time (s) in [from, to) where `pred` holds for the frame, by 1/30 s.
fn first_frame_where(
    file: &std::path::Path,
    from: f64,
    to: f64,
    pred: impl Fn(&[u8]) -> bool,
) -> Option<f64> {
    let mut t = from;
    while t < to {
        if pred(&frame_rgb(file, t, 1280, 720)) {
            return Some(t);
        }
        t += 1.0 / 30.0;
    }
    None
}

/// One meeting, rendered again from the same journals with other layouts: `active_speaker`
/// puts the louder participant full frame; a `custom` layout puts each where its region says.
#[test]
fn rerendered_layouts_active_speaker_and_custom() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let a = publisher(
        &server,
        &room,
        "alice",
        Look {
            kind: "camera",
            colour: "red",
            freq: 440,
            volume_db: -6,
        },
        7,
    );
    let b = publisher(
        &server,
        &room,
        "bob",
        Look {
            kind: "camera",
            colour: "blue",
            freq: 880,
            volume_db: -30,
        },
        7,
    );
    let session = a.join().unwrap().session_id;
    b.join().unwrap();
    server.wait_assets(&session, 2, Duration::from_secs(30));
    server.wait_session_ended(&session, Duration::from_secs(20));
    let render = |options: Value| {
        let r = http::json(
            "POST",
            &server.url(&format!("/v1/sessions/{session}/composites")),
            Some(ADMIN_KEY),
            &json!({"mode": "composite", "recordingOptions": {"compositeOptions": options}}),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        let rec = r.json()["id"].as_str().unwrap().to_string();
        let done = wait_recording(&server, &rec, Duration::from_secs(120));
        assert_eq!(
            done["state"],
            "available",
            "{done:#}\n{}",
            server.log_text()
        );
        asset_of(&server, &rec, dir.path()).1
    };
    let speaker = render(
        json!({"layout": {"type": "active_speaker"}, "labels": false, "recording_indicator": false}),
    );
    let frame = frame_rgb(&speaker, 4.0, 1280, 720);
    // 4:3 in 16:9, full height: a 960x720 picture from x = 160.
    for (x, y) in [(640, 360), (200, 100), (1080, 600)] {
        let p = pixel(&frame, 1280, x, y);
        assert!(near(p, RED, 60), "active speaker at ({x},{y}): {p:?}");
    }
    let custom = render(json!({"layout": {"type": "custom", "regions": [
        {"x": 0, "y": 0, "width": 640, "height": 720, "participants": ["bob"]},
        {"x": 640, "y": 0, "width": 640, "height": 720, "participants": ["alice"]}
    ]}, "labels": false, "recording_indicator": false}));
    let frame = frame_rgb(&custom, 4.0, 1280, 720);
    assert!(
        near(pixel(&frame, 1280, 320, 360), BLUE, 60),
        "bob's region"
    );
    assert!(
        near(pixel(&frame, 1280, 960, 360), RED, 60),
        "alice's region"
    );
    // The re-render is an asset of its own beside the stream assets.
    let all = server.get(&format!("/v1/assets?session_id={session}"))["data"].clone();
    assert_eq!(all.as_array().unwrap().len(), 4);
}

/// `presentation`: the screen share takes the main area within ±100 ms of its first frame,
/// cameras in the side strip.
#[test]
fn presentation_switches_to_the_screen_share_when_it_starts() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"layout": {"type": "presentation"}, "labels": false, "recording_indicator": false}}),
    );
    let a = publisher(&server, &room, "alice", camera("red", 440), 8);
    std::thread::sleep(Duration::from_secs(3));
    let s = publisher(
        &server,
        &room,
        "alice-screen",
        Look {
            kind: "screen",
            colour: "lime",
            freq: 660,
            volume_db: -60,
        },
        4,
    );
    let camera_session = a.join().unwrap().session_id;
    let shared = s.join().unwrap();
    let session = shared.session_id.clone();
    assert_eq!(session, camera_session, "both in one session");
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}\n{}", server.log_text());
    let (_, file) = asset_of(&server, &rec, dir.path());
    let screen = shared.resource_url.rsplit('/').next().unwrap().to_string();
    let expected = (first_video_frame_ms(&server, &session, &screen)
        - r["started_at"].as_i64().unwrap()) as f64
        / 1000.0;
    let green = |f: &[u8]| near(pixel(f, 1280, 500, 360), (0, 255, 0), 80);
    let switched = first_frame_where(&file, expected - 0.5, expected + 0.5, green)
        .unwrap_or_else(|| panic!("no switch near {expected:.3} s"));
    assert!(
        (switched - expected).abs() <= 0.1,
        "switched at {switched:.3} s, screen started at {expected:.3} s"
    );
    // Before: alice alone, full canvas. During: the camera in the right strip, centred
    // beside the screen (one camera: a quarter of the height, in the middle).
    let before = frame_rgb(&file, expected - 0.5, 1280, 720);
    assert!(near(pixel(&before, 1280, 640, 360), RED, 60));
    let during = frame_rgb(&file, switched + 0.5, 1280, 720);
    assert!(
        green(&during),
        "the screen share still shows half a second in"
    );
    assert!(
        near(pixel(&during, 1280, 1150, 360), RED, 60),
        "camera strip {:?}",
        pixel(&during, 1280, 1150, 360)
    );
    assert!(
        !near(pixel(&during, 1280, 1150, 80), RED, 60),
        "the strip hangs from the top"
    );
}

/// A layout change asked for during the meeting shows from that moment in the output.
#[test]
fn a_layout_change_during_the_meeting_takes_effect_at_that_moment() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"labels": false, "recording_indicator": false}}),
    );
    let a = publisher(&server, &room, "alice", camera("red", 440), 8);
    std::thread::sleep(Duration::from_millis(700));
    let b = publisher(&server, &room, "bob", camera("blue", 880), 8);
    std::thread::sleep(Duration::from_secs(4));
    let r = http::json(
        "POST",
        &server.url(&format!("/v1/recordings/{rec}/layout")),
        Some(ADMIN_KEY),
        &json!({"layout": {"type": "custom", "regions": [{"x": 0, "y": 0, "width": 1280, "height": 720, "participants": ["bob"]}]}}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    a.join().unwrap();
    b.join().unwrap();
    let done = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(done["state"], "available", "{done:#}");
    let at = done["recordingOptions"]["layoutChanges"][0]["at"]
        .as_i64()
        .unwrap();
    let expected = (at - done["started_at"].as_i64().unwrap()) as f64 / 1000.0;
    let (_, file) = asset_of(&server, &rec, dir.path());
    let bob_full = |f: &[u8]| {
        near(pixel(f, 1280, 200, 360), BLUE, 60) && near(pixel(f, 1280, 1000, 360), BLUE, 60)
    };
    let switched = first_frame_where(&file, expected - 0.5, expected + 0.5, bob_full)
        .unwrap_or_else(|| panic!("no change near {expected:.3} s"));
    assert!(
        (switched - expected).abs() <= 0.1,
        "changed at {switched:.3}, asked at {expected:.3}"
    );
    let before = frame_rgb(&file, expected - 0.5, 1280, 720);
    assert!(
        near(pixel(&before, 1280, 320, 360), RED, 60),
        "grid before the change"
    );
}

/// A renderer that crashes (on purpose: SIGABRT) fails its job with the reason after its
/// retries; ingest goes on: the room's stream recording and a new publisher are recorded.
#[test]
fn a_crashing_renderer_fails_its_job_alone() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_TEST_RENDER_CRASH", "1")]);
    let (room, rec) = room_with_recording(&server, "audio", json!({}));
    publisher(&server, &room, "alice", camera("red", 440), 3)
        .join()
        .unwrap();
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "failed");
    // The recording says why, with a code.
    assert_eq!(r["failure_code"], "output_failed", "{r:#}");
    assert!(r["failure"].as_str().unwrap().contains("signal 6"), "{r:#}");
    let events = events(&server);
    let failure = events
        .iter()
        .find(|(t, p)| t == "composite.recording.failure" && p["recording_id"] == rec.as_str())
        .map(|(_, p)| p.clone())
        .expect("composite.recording.failure");
    assert!(
        failure["reason"].as_str().unwrap().contains("signal 6"),
        "{failure:#}"
    );
    assert_eq!(
        server.log_text().matches("render attempt failed").count(),
        2,
        "one retry"
    );
    // Ingest is untouched: a stream recording in another room, made after the crash.
    let other = server.room(1);
    let report = publisher(&server, &other, "bob", camera("blue", 880), 3)
        .join()
        .unwrap();
    let assets = server.wait_assets(&report.session_id, 1, Duration::from_secs(30));
    assert_eq!(assets[0]["asset_type"], "regular");
}

/// Room policy: with `auto_composite` and `audio_mix_formats`, a recorded session also gets
/// a composite and a wav mix when it ends.
#[test]
fn room_policy_makes_a_composite_and_an_audio_mix_when_the_session_ends() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.post(
        "/v1/rooms",
        json!({"name": "policy", "empty_timeout_seconds": 1, "policy": {"auto_composite": true, "audio_mix_formats": ["wav"]}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let session = publisher(&server, &room, "alice", camera("red", 440), 4)
        .join()
        .unwrap()
        .session_id;
    let deadline = Instant::now() + Duration::from_secs(120);
    let by_type = loop {
        let assets = server.get(&format!("/v1/assets?session_id={session}"))["data"].clone();
        let mut types: Vec<String> = assets
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["asset_type"].as_str().unwrap(),
                    a["format"].as_str().unwrap()
                )
            })
            .collect();
        types.sort();
        if types.len() >= 3 {
            break types;
        }
        assert!(
            Instant::now() < deadline,
            "{types:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        by_type,
        vec!["audio_mix/wav", "composite/mp4", "regular/webm"]
    );
}

/// A/V sync in the composite: a flash and a beep published together stay within 40 ms.
#[test]
fn composite_keeps_flash_and_beep_within_40_ms() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"labels": false, "recording_indicator": false}}),
    );
    let media = reel_testkit::media::flash_and_beep(dir.path(), 6, 1.0, 2.0).unwrap();
    let (token, whip) = server.token(&room, "sync", "camera");
    let mut o = PublishOptions::new(&whip, &token);
    o.video = Some(media.video);
    o.audio = Some(media.audio);
    o.duration = Duration::from_secs(6);
    publish(&o).unwrap();
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}");
    let (_, file) = asset_of(&server, &rec, dir.path());
    let offsets = reel_testkit::judge::av_offsets(&file);
    eprintln!("composite A/V offsets (audio − video), seconds: {offsets:?}");
    assert!(offsets.len() >= 2);
    for o in &offsets {
        assert!(o.abs() <= 0.040, "offset {o} s: {offsets:?}");
    }
}

/// Every output format from one meeting, re-rendered: WebM (VP8 + Opus) with labels and the
/// REC badge, and the audio mix as ogg (Opus), m4a (AAC) and wav; each decodes cleanly and
/// lasts as long as the session.
#[test]
fn every_format_renders_and_decodes() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let a = publisher(&server, &room, "alice", camera("red", 440), 4);
    let session = a.join().unwrap().session_id;
    server.wait_assets(&session, 1, Duration::from_secs(30));
    let detail = server.wait_session_ended(&session, Duration::from_secs(20));
    let length = (detail["ended_at"].as_i64().unwrap() - detail["started_at"].as_i64().unwrap())
        as f64
        / 1000.0;
    for (mode, options, codecs) in [
        (
            "composite",
            json!({"format": "webm", "compositeOptions": {"size": "640x360", "fps": 15}}),
            vec!["opus", "vp8"],
        ),
        ("audio", json!({"format": "ogg"}), vec!["opus"]),
        ("audio", json!({"format": "mp3"}), vec!["mp3"]),
        ("audio", json!({"format": "m4a"}), vec!["aac"]),
        ("audio", json!({"format": "wav"}), vec!["pcm_s16le"]),
    ] {
        let r = http::json(
            "POST",
            &server.url(&format!("/v1/sessions/{session}/composites")),
            Some(ADMIN_KEY),
            &json!({"mode": mode, "recordingOptions": options}),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        let rec = r.json()["id"].as_str().unwrap().to_string();
        let done = wait_recording(&server, &rec, Duration::from_secs(120));
        assert_eq!(done["state"], "available", "{options}: {done:#}");
        let (asset, file) = asset_of(&server, &rec, dir.path());
        let probe = ffprobe(&file);
        let mut got = probe.codecs.clone();
        got.sort();
        assert_eq!(got, codecs, "{options}");
        // The asset says the file's duration, as a player reads it.
        let said = asset["duration_ms"].as_i64().unwrap() as f64 / 1000.0;
        assert!(
            (said - probe.duration).abs() <= 0.025,
            "{options}: duration_ms says {said} s, the file is {} s",
            probe.duration
        );
        assert!(
            (probe.duration - length).abs() < 0.3,
            "{options}: {} s vs {length} s",
            probe.duration
        );
        let (complaints, _) = decode(&file);
        assert!(complaints.is_empty(), "{options}: {complaints}");
        let audio = &pcm(&file, 1)[0];
        assert!(
            tone(&audio[48_000..48_000 * 3], 440.0) > 0.02,
            "{options}: the tone"
        );
    }
}

/// A pause is cut from the composite and its mix: the movie is as long as the recording
/// minus the pause, and nothing published during the pause (white frames, a 1 kHz tone) is in it.
#[test]
fn a_pause_is_cut_from_the_composite_and_its_mix() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (room, rec) = room_with_recording(
        &server,
        "composite",
        json!({"compositeOptions": {"layout": {"type": "grid"}, "labels": false, "recording_indicator": false}}),
    );
    // Marked from 5.5 s to 8.5 s of the media; the pause covers about 4.5 s to 10.5 s.
    let media = marked_window(&media_dir(), 16, 5.5, 8.5).unwrap();
    let (token, whip) = server.token(&room, "sam", "camera");
    let mut o = PublishOptions::new(&whip, &token);
    o.video = Some(media.video);
    o.audio = Some(media.audio);
    o.duration = Duration::from_secs(16);
    let p = std::thread::spawn(move || publish(&o).unwrap());
    std::thread::sleep(Duration::from_millis(4_500));
    let command = |verb: &str| {
        let url = server.url(&format!("/v1/recordings/{rec}/{verb}"));
        let r = http::json("POST", &url, Some(ADMIN_KEY), &json!({})).unwrap();
        assert_eq!(r.status, 200, "{verb}: {}", r.text());
        r.json()
    };
    let paused = command("pause");
    assert_eq!(paused["state"], "paused", "{paused:#}");
    std::thread::sleep(Duration::from_secs(6));
    let resumed = command("resume");
    assert_eq!(resumed["state"], "recording", "{resumed:#}");
    p.join().unwrap();
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}\n{}", server.log_text());
    let pauses = r["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{r:#}");
    let paused_ms =
        pauses[0]["resumed_at"].as_i64().unwrap() - pauses[0]["paused_at"].as_i64().unwrap();
    let (_, file) = asset_of(&server, &rec, dir.path());
    let (complaints, _) = decode(&file);
    assert!(complaints.is_empty(), "{complaints}");
    // The recording runs from its start (before anyone joined) to the session's end.
    let recorded_ms = r["stopped_at"].as_i64().unwrap() - r["started_at"].as_i64().unwrap();
    let expected = (recorded_ms - paused_ms) as f64 / 1000.0;
    let probe = ffprobe(&file);
    assert!(
        (probe.duration - expected).abs() <= 0.6,
        "{} s rendered, {expected} s expected ({recorded_ms} ms recorded, {paused_ms} ms paused)",
        probe.duration
    );
    let (max_luma, max_tone) = marked_content(&file);
    assert!(
        max_luma < 120.0,
        "a marked (white) frame is in the composite: luma {max_luma}"
    );
    assert!(
        max_tone < -35.0,
        "the marked 1 kHz tone is in the mix: {max_tone} dB"
    );
}

/// The children of `pid` whose command line has `word`, by pid.
fn children_running(pid: u32, word: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid …: comm may hold spaces, so read after its ')'.
            let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
            let mut fields = after.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            let cmdline =
                std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
            ppid == Some(pid) && state != Some("Z") && cmdline.contains(word)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, a)| a.trim_start())
                .unwrap_or("");
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn kill_9_during_a_render_leaves_no_renderer_and_no_unnamed_file() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let (room, rec) = room_with_recording(&server, "composite", json!({}));
    let report = publisher(&server, &room, "alice", camera("red", 440), 12)
        .join()
        .unwrap();
    let session = report.session_id;
    let server_pid = server.child.as_ref().unwrap().id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let renderer = loop {
        if let Some(&pid) = children_running(server_pid, "render").first() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no render started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Mid-render: let it write some of its output first.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive(renderer),
        "the render ended before the kill; make it longer"
    );
    server.kill9();
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(renderer) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(renderer), "the renderer outlived the server");

    let server = Server::start(dir.path());
    let r = wait_recording(&server, &rec, Duration::from_secs(120));
    assert_eq!(r["state"], "available", "{r:#}");
    let assets = server.get(&format!("/v1/assets?recording_id={rec}"))["data"].clone();
    assert_eq!(assets.as_array().unwrap().len(), 1, "{assets:#}");
    // Every file in assets/ is named by an asset of the session.
    let ids: Vec<String> = server.get(&format!("/v1/assets?session_id={session}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let files: Vec<String> = std::fs::read_dir(dir.path().join("data/assets").join(&session))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for f in &files {
        let stem = f.split('.').next().unwrap();
        assert!(
            ids.iter().any(|id| id == stem),
            "{f} is named by no asset: {ids:?}"
        );
    }
    // What the killed render left (its job file, its partial output) was swept at start-up.
    let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("data/quarantine").join(&session))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    eprintln!("after kill -9 mid-render: assets/ {files:?}; quarantined {quarantined:?}");
    assert!(
        server.log_text().contains("no asset names"),
        "{}",
        server.log_text()
    );
    let (_, file) = asset_of(&server, &rec, dir.path());
    let probe = ffprobe(&file);
    assert!((probe.duration - 12.0).abs() < 1.5, "{probe:?}");
}
