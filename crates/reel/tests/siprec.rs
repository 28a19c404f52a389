//! SIPREC end to end: sipp (Debian's sip-tester) plays the SRC with the project's own
//! scenarios (`tests/sipp/`), gst-launch sends each party's RTP (one tone per party), and
//! the outputs are judged by ffprobe and by the tones in them. sipp and gst-launch are
//! required test tools: these tests fail, never skip, without them.

mod common;

use common::{events, ffprobe, serial, Server};
use reel_testkit::judge;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A script sipp runs (`[media] ip port1 port2 …`) that sends one RTP stream per argument
/// port, and the audio payload type its scenario offers (`-key audio_pt`).
struct MediaScript {
    path: PathBuf,
    audio_pt: u8,
}

/// Each stream a tone of its own frequency (G.711 µ-law or G.722), or VP8 video, for
/// `seconds`.
fn media_script(dir: &Path, streams: &[Media], seconds: u32) -> MediaScript {
    // The answer's ports are kept in ports.txt, one call per line.
    let mut script = format!(
        "#!/bin/sh\nip=$1\nshift\necho \"$@\" >> {}/ports.txt\n",
        dir.display()
    );
    for (i, s) in streams.iter().enumerate() {
        let pipeline = match s {
            Media::Tone(freq) | Media::ToneWithIntruder(freq, _) | Media::ToneThenJunk(freq) => {
                format!(
                    "audiotestsrc freq={freq} is-live=true num-buffers={} samplesperbuffer=160 \
                 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay",
                    seconds * 50
                )
            }
            Media::WidebandTone(freq) => format!(
                "audiotestsrc freq={freq} is-live=true num-buffers={} samplesperbuffer=320 \
                 ! audio/x-raw,rate=16000,channels=1 ! avenc_g722 ! rtpg722pay",
                seconds * 50
            ),
            Media::Speech(wav) => format!(
                "filesrc location={} ! wavparse ! audioconvert ! audioresample \
                 ! audio/x-raw,rate=16000,channels=1 ! avenc_g722 \
                 ! rtpg722pay min-ptime=20000000 max-ptime=20000000",
                wav.display()
            ),
            Media::Vp8(pattern) => format!(
                "videotestsrc pattern={pattern} is-live=true num-buffers={} \
                 ! video/x-raw,width=320,height=240,framerate=25/1 \
                 ! vp8enc deadline=1 keyframe-max-dist=25 ! rtpvp8pay pt=100",
                seconds * 25
            ),
        };
        // Port 0: the recorder declined the line; nothing is sent to it.
        script.push_str(&format!(
            "p=$1; shift; [ \"$p\" != 0 ] && gst-launch-1.0 -q {pipeline} ! udpsink host=$ip port=$p >/dev/null 2>&1 &\n# stream {i}\n"
        ));
        match s {
            // A second sender (its own port and SSRC) 1 s in, to the same line.
            Media::ToneWithIntruder(_, intruder) => script.push_str(&format!(
                "(sleep 1; gst-launch-1.0 -q audiotestsrc freq={intruder} is-live=true num-buffers=100 \
                 samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 ! mulawenc \
                 ! rtppcmupay ssrc=305419896 ! udpsink host=$ip port=$p >/dev/null 2>&1) &\n"
            )),
            // One byte of junk a second, for 15 s, once the tone has stopped.
            Media::ToneThenJunk(_) => script.push_str(&format!(
                "python3 -c 'import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntime.sleep({})\nfor _ in range(15):\n  s.sendto(b\"x\",(sys.argv[1],int(sys.argv[2])));time.sleep(1)' $ip $p >/dev/null 2>&1 &\n",
                seconds as f64 + 0.3
            )),
            _ => {}
        }
    }
    let path = dir.join(format!("media-{}.sh", streams.len()));
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    let wideband = streams
        .iter()
        .any(|s| matches!(s, Media::WidebandTone(_) | Media::Speech(_)));
    MediaScript {
        path,
        // RFC 3551's static payload types: 0 is PCMU, 9 is G.722.
        audio_pt: if wideband { 9 } else { 0 },
    }
}

enum Media {
    Tone(u32),
    /// A tone, and another sender's tone injected into the same line.
    ToneWithIntruder(u32, u32),
    /// A tone, then junk datagrams to the line after it stops.
    ToneThenJunk(u32),
    WidebandTone(u32),
    /// A WAV file, sent in real time as G.722.
    Speech(PathBuf),
    Vp8(&'static str),
}

/// `calls` calls of a scenario against the server (all at once), each lasting `call_ms`
/// after its media started.
fn sipp_command(
    server: &Server,
    dir: &Path,
    name: &str,
    room: &str,
    media: &MediaScript,
    call_ms: u64,
    calls: u32,
) -> Command {
    let mut command = Command::new("sipp");
    command
        .arg(&server.sip)
        .arg("-sf")
        .arg(scenario(name))
        .args(["-s", room, "-key", "media"])
        .arg(&media.path)
        .args(["-key", "audio_pt", &media.audio_pt.to_string()])
        .args(["-m", &calls.to_string(), "-l", &calls.to_string()])
        .args(["-r", &calls.to_string(), "-rp", "1000"])
        .args(["-d", &call_ms.to_string()])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args([
            "-i",
            "127.0.0.1",
            "-timeout",
            "90s",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir);
    command
}

/// Runs a sipp command; panics with sipp's own account if a call failed.
fn run_sipp(server: &Server, dir: &Path, mut command: Command) {
    let out = command
        .output()
        .expect("sipp is required (apt-get install sip-tester)");
    if !out.status.success() {
        let errors: String = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        panic!(
            "sipp failed ({}):\n{}\n{errors}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n"),
            server.log_text()
        );
    }
}

fn sipp(
    server: &Server,
    dir: &Path,
    name: &str,
    room: &str,
    media: &MediaScript,
    call_ms: u64,
    calls: u32,
) {
    let command = sipp_command(server, dir, name, room, media, call_ms, calls);
    run_sipp(server, dir, command);
}

/// The room's call sessions (those with a Call-ID), waited for until `n` have ended.
fn ended_calls(server: &Server, room: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sessions: Vec<Value> = server.get(&format!("/v1/sessions?room_id={room}"))["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["call_id"].is_string() && s["state"] == "ended")
            .cloned()
            .collect();
        if sessions.len() >= n {
            return sessions;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} calls ended\n{}",
            sessions.len(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One two-party call of `scenario` (440 Hz from the caller, 1 kHz from the agent, for
/// `seconds`), waited for until it ended and its three outputs exist.
fn tone_call(
    server: &Server,
    dir: &Path,
    room: &str,
    scenario: &str,
    seconds: u32,
    call_ms: u64,
) -> (Value, Vec<Value>) {
    let media = media_script(dir, &[Media::Tone(440), Media::Tone(1000)], seconds);
    sipp(server, dir, scenario, room, &media, call_ms, 1);
    let session = ended_calls(server, room, 1).remove(0);
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    (session, assets)
}

fn of_type<'a>(assets: &'a [Value], t: &str) -> Vec<&'a Value> {
    assets.iter().filter(|a| a["asset_type"] == t).collect()
}

/// Amplitude of `freq` in `samples` (48 kHz) between `from` and `to` seconds.
fn tone_between(samples: &[f32], freq: f64, from: f64, to: f64) -> f64 {
    let (a, b) = ((from * 48_000.0) as usize, (to * 48_000.0) as usize);
    judge::tone(&samples[a.min(samples.len())..b.min(samples.len())], freq)
}

fn call_length_s(session: &Value) -> f64 {
    (session["ended_at"].as_i64().unwrap() - session["started_at"].as_i64().unwrap()) as f64
        / 1000.0
}

#[test]
fn a_two_party_call_gives_an_mp3_with_both_tones_and_a_dual_channel_file() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let (session, assets) = tone_call(&server, dir.path(), &room, "call.xml", 4, 4500);
    let id = session["id"].as_str().unwrap();
    // A call's session ends with the call; its parties are SIP parties, not cameras.
    assert_eq!(session["end_reason"], "call_ended", "{session:#}");
    let detail = server.get(&format!("/v1/sessions/{id}"));
    for party in detail["participants"].as_array().unwrap() {
        assert_eq!(party["kind"], "sip", "{detail:#}");
    }
    // Per-participant audio, named from the metadata, caller first.
    let mut parties: Vec<(String, &Value)> = of_type(&assets, "audio")
        .into_iter()
        .map(|a| (a["participant"].as_str().unwrap().to_string(), a))
        .collect();
    parties.sort_by_key(|(_, a)| a["publication_id"].as_str().unwrap().to_string());
    let mut names: Vec<&str> = parties.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Agent Bob", "Alice Caller"]);
    for (name, asset) in &parties {
        let file = server.download(asset, dir.path());
        let probe = ffprobe(&file);
        assert!((probe.duration - 4.0).abs() < 0.1, "{name}: {probe:?}");
        let samples = &judge::pcm(&file, 1)[0];
        let (mine, other) = if name == "Alice Caller" {
            (440.0, 1000.0)
        } else {
            (1000.0, 440.0)
        };
        assert!(tone_between(samples, mine, 0.5, 3.5) > 0.3, "{name}");
        assert!(tone_between(samples, other, 0.5, 3.5) < 0.01, "{name}");
        assert_eq!(
            asset["details"]["audio_frames"], 200,
            "{name}: every packet"
        );
    }

    // The call recording: an mp3 as long as the call, both parties in it.
    let mix = of_type(&assets, "audio_mix");
    assert_eq!(mix.len(), 1, "{assets:#?}");
    assert_eq!(mix[0]["format"], "mp3");
    let file = server.download(mix[0], dir.path());
    let call = call_length_s(&session);
    let probe = ffprobe(&file);
    // The asset says the file's duration, as a player reads it.
    let said = mix[0]["duration_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!(
        (said - probe.duration).abs() <= 0.025,
        "duration_ms says {said} s, the mp3 is {} s",
        probe.duration
    );
    // An mp3 carries up to a frame (24 ms) plus the encoder's padding beyond its audio.
    assert!(
        (probe.duration - call).abs() <= 0.3,
        "mp3 {} s, call {call} s",
        probe.duration
    );
    let samples = &judge::pcm(&file, 1)[0];
    for freq in [440.0, 1000.0] {
        assert!(tone_between(samples, freq, 0.5, 3.5) > 0.15, "{freq} Hz");
    }
    // At the call's own rate and a bit rate for speech: 8 kHz G.711 is not made a 48 kHz,
    // 128 kbit/s file (58 MB an hour); this one is about 7 MB an hour.
    let stream = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=sample_rate,bit_rate",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let stream = String::from_utf8_lossy(&stream.stdout).trim().to_string();
    let (rate, bits) = stream.split_once(',').unwrap();
    assert_eq!(rate, "8000", "{stream}");
    assert!(bits.parse::<u64>().unwrap() <= 32_000, "{stream}");

    // Dual channel: the caller (first to join) on the left, the agent on the right.
    let r = reel_testkit::http::json(
        "POST",
        &server.url(&format!("/v1/sessions/{id}/composites")),
        Some(common::ADMIN_KEY),
        &json!({"mode": "audio", "recordingOptions": {"format": "wav", "audioOptions": {"channels": "dual"}}}),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let dual = server.wait_assets(id, 4, Duration::from_secs(60));
    let wav = dual
        .iter()
        .find(|a| a["format"] == "wav")
        .expect("the dual file");
    let file = server.download(wav, dir.path());
    let channels = judge::pcm(&file, 2);
    let (left, right) = (&channels[0], &channels[1]);
    assert!(tone_between(left, 440.0, 0.5, 3.5) > 0.3);
    assert!(tone_between(left, 1000.0, 0.5, 3.5) < 0.01);
    assert!(tone_between(right, 1000.0, 0.5, 3.5) > 0.3);
    assert!(tone_between(right, 440.0, 0.5, 3.5) < 0.01);

    // The SIPREC indications, with the call's id; no phone number in any API read.
    let call_id = session["call_id"].as_str().unwrap();
    let evs = events(&server);
    for t in ["recording.audio.started", "recording.audio.stopped"] {
        let e = evs
            .iter()
            .find(|(ty, _)| ty == t)
            .unwrap_or_else(|| panic!("no {t}"));
        assert_eq!(e.1["callid"], call_id, "{t}");
        assert_eq!(e.1["session_id"], id, "{t}");
    }
    assert!(!evs.iter().any(|(t, _)| t.starts_with("recording.video")));
    for path in [
        format!("/v1/sessions/{id}"),
        format!("/v1/assets?session_id={id}"),
        "/v1/events".to_string(),
    ] {
        let text = server.get(&path).to_string();
        assert!(
            !text.contains("15550100"),
            "{path} shows the caller's number"
        );
    }
    assert!(
        !server.log_text().contains("15550100"),
        "the log shows the caller's number"
    );
}

/// A wideband call: each party's file is 16 kHz PCM decoded by Reel's G.722 decoder, with
/// the agent's 6 kHz tone that no narrowband codec can carry.
#[test]
fn a_g722_call_keeps_each_partys_wideband_audio() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let streams = [Media::WidebandTone(440), Media::WidebandTone(6000)];
    let media = media_script(dir.path(), &streams, 3);
    sipp(&server, dir.path(), "call.xml", &room, &media, 3500, 1);
    let session = ended_calls(&server, &room, 1).remove(0);
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    for asset in of_type(&assets, "audio") {
        let name = asset["participant"].as_str().unwrap();
        assert_eq!(
            asset["details"]["audio_frames"], 150,
            "{name}: every packet"
        );
        let file = server.download(asset, dir.path());
        let probe = ffprobe(&file);
        assert!((probe.duration - 3.0).abs() < 0.1, "{name}: {probe:?}");
        let rate = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=sample_rate,codec_name",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&rate.stdout).trim(),
            "pcm_s16le,16000"
        );
        let samples = &judge::pcm(&file, 1)[0];
        let (mine, other) = if name == "Alice Caller" {
            (440.0, 6000.0)
        } else {
            (6000.0, 440.0)
        };
        assert!(tone_between(samples, mine, 0.5, 2.5) > 0.3, "{name}");
        assert!(tone_between(samples, other, 0.5, 2.5) < 0.01, "{name}");
    }
    let mix = of_type(&assets, "audio_mix");
    let samples = &judge::pcm(&server.download(mix[0], dir.path()), 1)[0];
    for freq in [440.0, 6000.0] {
        assert!(
            tone_between(samples, freq, 0.5, 2.5) > 0.15,
            "{freq} Hz in the mp3"
        );
    }
}

#[test]
fn a_hold_pauses_the_recording_and_a_metadata_update_renames_the_caller() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    // The tones never stop: what is sent during the hold must not be recorded.
    let (session, assets) = tone_call(&server, dir.path(), &room, "hold.xml", 8, 0);
    let recording = server.get(&format!(
        "/v1/recordings/{}",
        of_type(&assets, "audio")[0]["recording_id"]
            .as_str()
            .unwrap()
    ));
    let pauses = recording["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{recording:#}");
    let held = (pauses[0]["resumed_at"].as_i64().unwrap()
        - pauses[0]["paused_at"].as_i64().unwrap()) as f64
        / 1000.0;
    assert!((held - 2.0).abs() < 0.5, "held {held} s");
    let recorded = call_length_s(&session) - held;

    let mut names: Vec<&str> = of_type(&assets, "audio")
        .iter()
        .map(|a| a["participant"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Agent Bob", "Alice Liddell"]);
    for asset in of_type(&assets, "audio") {
        let file = server.download(asset, dir.path());
        let d = ffprobe(&file).duration;
        // From the first packet (just after the answer) to the BYE, less the hold.
        assert!(
            (d - recorded).abs() < 0.3,
            "party file {d} s, recorded {recorded} s"
        );
        assert_eq!(asset["details"]["pauses"].as_array().unwrap().len(), 1);
    }
    let mix = of_type(&assets, "audio_mix");
    let file = server.download(mix[0], dir.path());
    let d = ffprobe(&file).duration;
    assert!(
        (d - recorded).abs() <= 0.3,
        "mp3 {d} s, recorded {recorded} s"
    );
    let samples = &judge::pcm(&file, 1)[0];
    for freq in [440.0, 1000.0] {
        assert!(
            tone_between(samples, freq, 0.5, 1.5) > 0.15,
            "{freq} Hz before"
        );
        assert!(
            tone_between(samples, freq, d - 1.5, d - 0.7) > 0.15,
            "{freq} Hz after"
        );
    }
    let types: Vec<String> = events(&server).into_iter().map(|(t, _)| t).collect();
    assert!(types.iter().any(|t| t == "recording.paused"), "{types:?}");
    assert!(types.iter().any(|t| t == "recording.resumed"), "{types:?}");
}

/// A recording requested while the room is idle waits for the room's meeting: a SIP call
/// forked into the same room meanwhile is recorded on its own and does not take it.
#[test]
fn a_recording_waiting_for_the_meeting_is_not_taken_by_a_call_in_the_room() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let pending = server.post("/v1/recordings", json!({"room_id": room, "mode": "stream"}));
    assert_eq!(pending["state"], "starting", "{pending:#}");
    let pending_id = pending["id"].as_str().unwrap();
    let (session, assets) = tone_call(&server, dir.path(), &room, "call.xml", 3, 3500);
    for asset in &assets {
        assert_ne!(
            asset["recording_id"], pending_id,
            "the call took the meeting's recording"
        );
    }
    let still = server.get(&format!("/v1/recordings/{pending_id}"));
    assert_eq!(still["state"], "starting", "{still:#}");
    assert!(still["session_id"].is_null(), "{still:#}");
    // The call's own recording covers it.
    let call_recordings = server.get(&format!(
        "/v1/recordings?session_id={}",
        session["id"].as_str().unwrap()
    ));
    assert!(
        call_recordings["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != pending_id),
        "{call_recordings:#}"
    );
}

#[test]
fn twenty_simultaneous_calls_are_all_recorded_without_a_missing_packet() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 3);
    sipp(&server, dir.path(), "call.xml", &room, &media, 3500, 20);

    let sessions = ended_calls(&server, &room, 20);
    let mut call_ids: Vec<&str> = sessions
        .iter()
        .map(|s| s["call_id"].as_str().unwrap())
        .collect();
    call_ids.sort();
    call_ids.dedup();
    assert_eq!(call_ids.len(), 20);
    for session in &sessions {
        let id = session["id"].as_str().unwrap();
        let assets = server.wait_assets(id, 3, Duration::from_secs(120));
        let parties = of_type(&assets, "audio");
        assert_eq!(parties.len(), 2, "{id}: {assets:#?}");
        for p in parties {
            assert_eq!(p["details"]["audio_frames"], 150, "{id}: {p:#}");
        }
        let file = server.download(of_type(&assets, "audio_mix")[0], dir.path());
        let samples = &judge::pcm(&file, 1)[0];
        for freq in [440.0, 1000.0] {
            assert!(
                tone_between(samples, freq, 0.5, 2.5) > 0.15,
                "{id}: {freq} Hz"
            );
        }
    }
}

/// The answer ports each call's media script was given.
fn answered_ports(dir: &Path) -> Vec<Vec<u16>> {
    std::fs::read_to_string(dir.join("ports.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(|p| p.parse().unwrap()).collect())
        .collect()
}

#[test]
fn video_lines_are_declined_under_policy_audio_and_recorded_under_audio_video() {
    let _one = serial();
    let server_dir = tempfile::tempdir().unwrap();
    let server = Server::start(server_dir.path());
    let streams = [
        Media::Tone(440),
        Media::Vp8("red"),
        Media::Tone(1000),
        Media::Vp8("blue"),
    ];
    for policy in ["audio", "audio_video"] {
        let dir = tempfile::tempdir().unwrap();
        let room = server.post(
            "/v1/rooms",
            json!({"name": policy, "empty_timeout_seconds": 5, "policy": {"sip_media": policy}}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        let media = media_script(dir.path(), &streams, 4);
        sipp(&server, dir.path(), "video.xml", &room, &media, 4500, 1);
        let ports = answered_ports(dir.path());
        let session = ended_calls(&server, &room, 1).remove(0);
        let id = session["id"].as_str().unwrap();
        let assets = server.wait_assets(id, 3, Duration::from_secs(60));
        let types: Vec<String> = events(&server)
            .into_iter()
            .filter(|(_, p)| p["session_id"] == id)
            .map(|(t, _)| t)
            .collect();
        if policy == "audio" {
            // Port 0 on both video lines (RFC 3264 §6), audio only in every output.
            assert_eq!(ports.len(), 1);
            assert!(ports[0][0] != 0 && ports[0][2] != 0, "{ports:?}");
            assert_eq!((ports[0][1], ports[0][3]), (0, 0), "{ports:?}");
            assert_eq!(of_type(&assets, "audio").len(), 2, "{assets:#?}");
            assert!(of_type(&assets, "regular").is_empty());
            assert!(
                !types.iter().any(|t| t.starts_with("recording.video")),
                "{types:?}"
            );
            continue;
        }
        assert!(ports[0].iter().all(|p| *p != 0), "{ports:?}");
        let regular = of_type(&assets, "regular");
        assert_eq!(regular.len(), 2, "{assets:#?}");
        for asset in regular {
            let file = server.download(asset, dir.path());
            let probe = ffprobe(&file);
            assert_eq!(probe.codecs, ["vp8", "pcm_s16le"], "{probe:?}");
            assert!((probe.duration - 4.0).abs() < 0.3, "{probe:?}");
            let (complaints, frames) = judge::decode(&file);
            assert!(complaints.is_empty(), "{complaints}");
            assert!(frames >= 90, "{frames} frames");
            let frame = judge::frame_rgb(&file, 2.0, 320, 240);
            let centre = judge::pixel(&frame, 320, 160, 120);
            let (colour, tone) = if asset["participant"] == "Alice Caller" {
                ((255, 0, 0), 440.0)
            } else {
                ((0, 0, 255), 1000.0)
            };
            assert!(
                judge::near(centre, colour, 40),
                "{}: {centre:?}",
                asset["participant"]
            );
            let samples = &judge::pcm(&file, 1)[0];
            assert!(tone_between(samples, tone, 0.5, 3.5) > 0.3);
        }
        for t in [
            "recording.video.started",
            "recording.video.stopped",
            "recording.audio.started",
        ] {
            assert!(types.iter().any(|x| x == t), "no {t}: {types:?}");
        }
    }
}

#[test]
fn a_call_whose_media_stops_is_hung_up_by_the_recorder_with_a_reason() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_SIPREC_RTP_TIMEOUT_SECS", "2")]);
    let room = server.room(5);
    // The scenario waits for Reel's BYE and answers it; it fails if none comes.
    let started = std::time::Instant::now();
    let (session, assets) = tone_call(&server, dir.path(), &room, "timeout.xml", 2, 0);
    let waited = started.elapsed().as_secs_f64();
    assert!(waited > 3.5 && waited < 60.0, "BYE after {waited} s");
    let bye_after = (session["ended_at"].as_i64().unwrap()
        - session["started_at"].as_i64().unwrap()) as f64
        / 1000.0;
    assert!(
        bye_after > 3.5 && bye_after < 8.0,
        "BYE {bye_after} s into the call"
    );
    for a in of_type(&assets, "audio") {
        assert!(
            (a["duration_ms"].as_f64().unwrap() - 2000.0).abs() < 100.0,
            "{a:#}"
        );
    }
    let stopped = audio_stopped(&server);
    assert_eq!(stopped["reason"], "media_timeout");
    assert_eq!(stopped["callid"], session["call_id"]);
}

/// The payload of the call's `recording.audio.stopped` event.
fn audio_stopped(server: &Server) -> Value {
    events(server)
        .into_iter()
        .find(|(t, _)| t == "recording.audio.stopped")
        .expect("recording.audio.stopped")
        .1
}

/// An attacker who learns a line's port sends a second RTP stream (another source port,
/// another SSRC, another tone) into it: the party's file holds the party's packets only.
#[test]
fn a_second_rtp_source_injected_into_a_line_is_not_recorded() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let media = media_script(
        dir.path(),
        &[Media::ToneWithIntruder(440, 3000), Media::Tone(1000)],
        4,
    );
    sipp(&server, dir.path(), "call.xml", &room, &media, 4500, 1);
    let session = ended_calls(&server, &room, 1).remove(0);
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    for a in of_type(&assets, "audio") {
        let name = a["participant"].as_str().unwrap();
        assert_eq!(
            a["details"]["audio_frames"], 200,
            "{name}: its own packets only"
        );
        let samples = &judge::pcm(&server.download(a, dir.path()), 1)[0];
        assert!(
            tone_between(samples, 3000.0, 0.5, 3.5) < 0.01,
            "{name}: the intruder's tone is in the file"
        );
    }
    let samples = &judge::pcm(
        &server.download(of_type(&assets, "audio_mix")[0], dir.path()),
        1,
    )[0];
    assert!(tone_between(samples, 440.0, 0.5, 3.5) > 0.15);
    assert!(
        tone_between(samples, 3000.0, 0.5, 3.5) < 0.01,
        "the intruder is in the mix"
    );
}

/// Junk datagrams sent to a call's lines after its media stopped do not keep the call up:
/// Reel hangs up after `rtp_timeout_secs` of no real media, as if the junk were not there.
#[test]
fn junk_datagrams_do_not_delay_the_media_timeout() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_SIPREC_RTP_TIMEOUT_SECS", "2")]);
    let room = server.room(5);
    let media = media_script(
        dir.path(),
        &[Media::ToneThenJunk(440), Media::ToneThenJunk(1000)],
        2,
    );
    sipp(&server, dir.path(), "timeout.xml", &room, &media, 0, 1);
    let session = ended_calls(&server, &room, 1).remove(0);
    let bye_after = call_length_s(&session);
    // 2 s of tone, then the 2 s timeout (checked once a second); the junk goes on for 15 s.
    assert!(
        bye_after > 3.5 && bye_after < 8.0,
        "BYE {bye_after} s into the call"
    );
    assert_eq!(audio_stopped(&server)["reason"], "media_timeout");
}

#[test]
fn a_call_over_tcp_is_recorded() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 2);
    let mut command = sipp_command(&server, dir.path(), "call.xml", &room, &media, 2500, 1);
    command.args(["-t", "t1"]);
    run_sipp(&server, dir.path(), command);
    let session = ended_calls(&server, &room, 1).remove(0);
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    assert_eq!(of_type(&assets, "audio").len(), 2);
}

/// Sends one SIP request over UDP and returns the first final response (or None).
fn ask(server: &Server, request: &str) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let request = request.replace("LOCAL", &sock.local_addr().unwrap().to_string());
    sock.send_to(request.as_bytes(), &server.sip).unwrap();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Some(text);
        }
    }
    None
}

fn sip_request(method: &str, call: &str, extra: &str, content_type: &str, body: &str) -> String {
    format!(
        "{method} sip:rec@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-{call}\r\n\
From: <sip:src@127.0.0.1>;tag=t{call}\r\nTo: <sip:rec@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: 1 {method}\r\n\
Contact: <sip:src@LOCAL>\r\nMax-Forwards: 70\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bad_sip_gets_a_clear_refusal_and_harms_no_call() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(5);
    // A call in progress the whole time.
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 4);
    let mut command = sipp_command(&server, dir.path(), "call.xml", &room, &media, 4500, 1);
    let call = std::thread::spawn(move || command.output().expect("sipp"));
    std::thread::sleep(Duration::from_millis(1500));
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n";
    let siprec = "Require: siprec\r\n";
    let multipart = |meta: &str| {
        format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{meta}\r\n--b--\r\n")
    };
    let cases: Vec<(String, u16, &str)> = vec![
        // A plain INVITE: this is a recording server.
        (sip_request("INVITE", "plain", "", "application/sdp", sdp), 421, ""),
        (
            sip_request("INVITE", "boundary", siprec, "multipart/mixed;boundary=nope", &multipart("<recording/>")),
            400,
            "",
        ),
        (
            sip_request("INVITE", "xml", siprec, "multipart/mixed;boundary=b", &multipart("<recording><participant")),
            400,
            "metadata",
        ),
        (
            sip_request(
                "INVITE",
                "unknown",
                siprec,
                "multipart/mixed;boundary=b",
                &multipart("<recording xmlns='urn:ietf:params:xml:ns:recording:1'><stream stream_id='s9'><label>9</label></stream></recording>"),
            ),
            400,
            "9",
        ),
        (
            sip_request(
                "INVITE",
                "nomedia",
                siprec,
                "application/sdp",
                "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=sendonly\r\n",
            ),
            400,
            "recordable",
        ),
    ];
    for (request, code, reason) in cases {
        let answer = ask(&server, &request).unwrap_or_else(|| panic!("no answer to {request}"));
        let status = answer.lines().next().unwrap();
        assert!(status.starts_with(&format!("SIP/2.0 {code} ")), "{status}");
        assert!(status.contains(reason), "{status}");
        if code == 421 {
            assert!(answer.contains("Require: siprec"), "{answer}");
        }
    }
    // Garbage gets no answer and no crash; OPTIONS still says what Reel does.
    assert!(ask(&server, "\u{0}\u{1}garbage\r\n\r\n").is_none());
    let options = ask(
        &server,
        &sip_request("OPTIONS", "opt", "", "application/sdp", ""),
    )
    .unwrap();
    assert!(options.starts_with("SIP/2.0 200"), "{options}");
    assert!(
        options.contains("INVITE") && options.contains("siprec"),
        "{options}"
    );

    let out = call.join().unwrap();
    assert!(out.status.success(), "the call in progress failed");
    let session = ended_calls(&server, &room, 1).remove(0);
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    for a in of_type(&assets, "audio") {
        assert_eq!(a["details"]["audio_frames"], 200, "{a:#}");
    }
}

/// flite's `voice` saying `words` after `lead_s` s of silence, `seconds` long in all (16 kHz
/// WAV); and when, within it, the speech really starts (flite leads with a little silence).
fn speech_wav(dir: &Path, voice: &str, words: &str, lead_s: f64, seconds: u32) -> (PathBuf, f64) {
    let wav = reel_testkit::media::spoken(dir, voice, words, lead_s, Some(seconds));
    let samples = &judge::pcm(&wav, 1)[0];
    let onset = samples.iter().position(|x| x.abs() > 0.02).unwrap() as f64 / 48_000.0;
    (wav, onset)
}

/// Waits for the first event of type `kind`.
fn wait_event(server: &Server, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Some((_, e)) = events(server).into_iter().find(|(t, _)| t == kind) {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Two parties say digits at known times; the transcript names each by the metadata, in
/// order, on time (±0.5 s), with a digit word error rate ≤ 20 %, as JSON and valid WebVTT
/// in the recording's bucket, announced with its destination.
#[test]
fn a_call_is_transcribed_line_by_line_with_each_partys_name() {
    let _one = serial();
    let s3 = reel_testkit::emulators::SeaweedS3::start(&["calls"]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_STORAGE_S3_ENDPOINT", &s3.endpoint),
            ("REEL_STORAGE_S3_VIRTUAL_HOSTED", "false"),
            ("REEL_STORAGE_ALLOW_HTTP", "true"),
        ],
    );
    let creds = format!(
        "{}:{}:{}",
        reel_testkit::emulators::S3_ACCESS_KEY,
        reel_testkit::emulators::S3_SECRET_KEY,
        reel_testkit::emulators::S3_REGION
    );
    let room = server.post(
        "/v1/rooms",
        json!({"name": "support", "empty_timeout_seconds": 5,
               "policy": {"transcription": {"enabled": true, "locale": "en-US"}},
               "default_recording_options": {"destinationUrl": "s3://calls/support/", "credentials": creds}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let said = [
        ("Alice Caller", "four seven one nine"),
        ("Agent Bob", "two eight three six"),
        ("Alice Caller", "five zero"),
    ];
    let (alice, alice_at) = speech_wav(dir.path(), "slt", said[0].1, 0.5, 9);
    let (bob, bob_at) = speech_wav(dir.path(), "rms", said[1].1, 4.0, 9);
    // Alice's second line: her track again, from a second file mixed in at 7 s.
    let (alice2, alice2_at) = speech_wav(dir.path(), "kal16", said[2].1, 7.0, 9);
    let both = dir.path().join("alice-both.wav");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&alice)
        .arg("-i")
        .arg(&alice2)
        .args([
            "-filter_complex",
            "amix=inputs=2:normalize=0",
            "-ar",
            "16000",
            "-ac",
            "1",
            "-y",
        ])
        .arg(&both)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let media = media_script(dir.path(), &[Media::Speech(both), Media::Speech(bob)], 9);
    sipp(&server, dir.path(), "call.xml", &room, &media, 9500, 1);
    let session = ended_calls(&server, &room, 1).remove(0);

    let available = wait_event(&server, "transcription_available");
    let destinations = available["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 2, "{available:#}");
    let urls: Vec<&str> = destinations
        .iter()
        .map(|d| d["destination_url"].as_str().unwrap())
        .collect();
    let recording = server.get(&format!(
        "/v1/recordings/{}",
        available["recording_id"].as_str().unwrap()
    ));
    let started_at = recording["started_at"].as_i64().unwrap();
    let stem = format!(
        "s3://calls/support/{}_{}_{}",
        utc_stamp(started_at),
        recording["application_id"].as_str().unwrap(),
        session["id"].as_str().unwrap()
    );
    assert!(
        urls.contains(&format!("{stem}-transcript.json").as_str()),
        "{urls:?}"
    );
    assert!(
        urls.contains(&format!("{stem}-transcript.vtt").as_str()),
        "{urls:?}"
    );

    // The media began a little after the recording: the lines are on the recording's clock.
    let assets = server.get(&format!(
        "/v1/assets?session_id={}",
        session["id"].as_str().unwrap()
    ));
    let assets = assets["data"].as_array().unwrap();
    let party_start = of_type(assets, "audio")
        .iter()
        .map(|a| a["start_at"].as_i64().unwrap())
        .min()
        .unwrap();
    let media_at = (party_start - started_at) as f64 / 1000.0;
    let json_asset = assets
        .iter()
        .find(|a| a["asset_type"] == "transcript" && a["format"] == "json")
        .expect("the transcript asset");
    let transcript: Value = serde_json::from_slice(
        &std::fs::read(fetch_asset(&server, json_asset, dir.path())).unwrap(),
    )
    .unwrap();
    let lines = transcript["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{transcript:#}");
    for (line, ((who, words), at)) in lines
        .iter()
        .zip(said.iter().zip([alice_at, bob_at, alice2_at]))
    {
        assert_eq!(line["speakerLabel"], *who, "{transcript:#}");
        let timestamp = line["timestamp"].as_f64().unwrap();
        assert!(
            (timestamp - (media_at + at)).abs() <= 0.5,
            "{who} spoke at {} s, the line says {timestamp} s",
            media_at + at
        );
        let heard = line["text"].as_str().unwrap();
        let wer = reel_transcribe::transcript::word_error_rate(words, heard);
        assert!(wer <= 0.2, "{who} said {words:?}, heard {heard:?}");
    }

    let vtt_asset = assets
        .iter()
        .find(|a| a["asset_type"] == "transcript" && a["format"] == "vtt")
        .expect("the WebVTT asset");
    let vtt = fetch_asset(&server, vtt_asset, dir.path());
    common::validate_webvtt(&vtt);
    let text = std::fs::read_to_string(&vtt).unwrap();
    assert!(text.contains("<v Agent Bob>"), "{text}");
}

/// Transcripts through an OpenAI-compatible speech server (the `http` engine): the first
/// request meets an overloaded server (503) and the job is retried to a transcript; a
/// call in a locale the server refuses ends in `transcription.failed` with the server's
/// words, not retried, and its recording stays available. The API key never reaches the log.
#[test]
fn a_speech_server_transcribes_after_an_overload_and_a_refused_locale_fails_alone() {
    let _one = serial();
    let key = "sk-test-0123456789abcdef";
    let speech = reel_testkit::emulators::SpeechServer::start(Some(key), 1);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_TRANSCRIPTION_ENGINE", "http"),
            ("REEL_TRANSCRIPTION_HTTP_URL", &speech.url),
            ("REEL_TRANSCRIPTION_HTTP_API_KEY", key),
        ],
    );
    let room = |name: &str, locale: &str| {
        server.post(
            "/v1/rooms",
            json!({"name": name, "empty_timeout_seconds": 5,
                   "policy": {"transcription": {"enabled": true, "locale": locale}}}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let call = |room: &str, name: &str| {
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (alice, _) = speech_wav(&dir, "slt", "four seven one nine", 0.5, 6);
        let (bob, _) = speech_wav(&dir, "rms", "two eight three six", 3.0, 6);
        let media = media_script(&dir, &[Media::Speech(alice), Media::Speech(bob)], 6);
        sipp(&server, &dir, "call.xml", room, &media, 6500, 1);
        ended_calls(&server, room, 1).remove(0)
    };

    let english = room("english", "en-US");
    let session = call(&english, "english");
    let available = wait_event(&server, "transcription_available");
    assert_eq!(available["lines"], 2, "{available:#}");
    let assets = server.get(&format!(
        "/v1/assets?session_id={}",
        session["id"].as_str().unwrap()
    ));
    let json_asset = assets["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset_type"] == "transcript" && a["format"] == "json")
        .expect("the transcript asset")
        .clone();
    let transcript: Value = serde_json::from_slice(
        &std::fs::read(fetch_asset(&server, &json_asset, dir.path())).unwrap(),
    )
    .unwrap();
    let lines = transcript["lines"].as_array().unwrap();
    for (line, (who, words)) in lines.iter().zip([
        ("Alice Caller", "four seven one nine"),
        ("Agent Bob", "two eight three six"),
    ]) {
        assert_eq!(line["speakerLabel"], who, "{transcript:#}");
        let heard = line["text"].as_str().unwrap();
        let wer = reel_transcribe::transcript::word_error_rate(words, heard);
        assert!(wer <= 0.2, "{who} said {words:?}, heard {heard:?}");
    }
    let log = server.log_text();
    let retried: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transcribe attempt failed"))
        .collect();
    assert!(
        retried.len() == 1 && retried[0].contains("503"),
        "one retry, after the overload: {retried:#?}"
    );

    let german = room("german", "de-DE");
    let session = call(&german, "german");
    let failed = wait_event(&server, "transcription.failed");
    assert_eq!(
        failed["reason"], "transcription: speech server answered 400: Unsupported language: de",
        "{failed:#}"
    );
    let recording = server.get(&format!(
        "/v1/recordings/{}",
        failed["recording_id"].as_str().unwrap()
    ));
    assert_eq!(recording["state"], "available", "{recording:#}");
    let assets = server.wait_assets(session["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    assert_eq!(of_type(&assets, "audio").len(), 2, "{assets:#?}");
    let log = server.log_text();
    let retried = log
        .lines()
        .filter(|l| l.contains("transcribe attempt failed"))
        .count();
    assert_eq!(retried, 1, "the refusal was not retried:\n{log}");
    assert!(!log.contains(key), "the API key is in the log");
}

/// An object name's time stamp: UTC `%Y%m%d%H%M%S` of `ms`.
fn utc_stamp(ms: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{}", ms / 1000), "+%Y%m%d%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An asset's bytes: through Reel's download, which redirects to the bucket once uploaded.
fn fetch_asset(server: &Server, asset: &Value, dir: &Path) -> PathBuf {
    let id = asset["id"].as_str().unwrap();
    let link = server.get(&format!("/v1/assets/{id}/presigned-url"));
    let url = link["url"].as_str().unwrap();
    let r = reel_testkit::http::request("GET", url, None, None).unwrap();
    assert_eq!(r.status, 200, "{url}");
    let path = dir.join(format!("{id}.{}", asset["format"].as_str().unwrap()));
    std::fs::write(&path, &r.body).unwrap();
    path
}

fn options_over_tcp(local: std::net::SocketAddr, n: u64) -> String {
    format!(
        "OPTIONS sip:rec@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-o{n}\r\n\
From: <sip:src@127.0.0.1>;tag=o\r\nTo: <sip:rec@127.0.0.1>\r\nCall-ID: opt-{n}\r\nCSeq: {n} OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A TCP connection to the SIP port that answers OPTIONS with 200 (within 3 s).
fn tcp_options_answered(server: &Server) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(&server.sip) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = s.local_addr().unwrap();
    if s.write_all(options_over_tcp(local, 1).as_bytes()).is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"SIP/2.0 200"))
}

/// The attack that once took the server from 25 MB to 4.1 GB in 25 s: OPTIONS in a loop on
/// one TCP connection whose receive buffer is tiny and never read.
#[test]
fn a_sip_peer_that_never_reads_its_replies_is_closed_and_costs_no_memory() {
    use std::io::Write;
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let baseline = server.rss_mib();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = server.sip.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = stream.local_addr().unwrap();
    let started = std::time::Instant::now();
    let (mut sent, mut peak) = (0u64, baseline);
    let closed_after = loop {
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(30),
            "the server still takes OPTIONS from a peer that reads nothing after {elapsed:?} \
             ({sent} sent, {peak:.0} MiB)"
        );
        match stream.write_all(options_over_tcp(local, sent).as_bytes()) {
            Ok(()) => sent += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break elapsed,
        }
        if sent % 256 == 0 {
            peak = peak.max(server.rss_mib());
        }
    };
    peak = peak.max(server.rss_mib());
    eprintln!(
        "no-read flood: {sent} OPTIONS, closed after {closed_after:?}, RSS {baseline:.0} MiB → peak {peak:.0} MiB"
    );
    assert!(
        peak - baseline < 32.0,
        "the flood grew the server from {baseline:.0} to {peak:.0} MiB"
    );
    // The server serves the next peer, over TCP and over UDP.
    assert!(tcp_options_answered(&server), "TCP after the flood");
    let options = ask(
        &server,
        &sip_request("OPTIONS", "after", "", "application/sdp", ""),
    );
    assert!(options.is_some_and(|o| o.starts_with("SIP/2.0 200")));
    assert!(server.rss_mib() - baseline < 32.0);
}

/// Connections beyond `siprec.max_tcp_connections` are closed at once; silent ones that
/// carry no call go after `siprec.tcp_idle_timeout_secs`, and one that carries a call stays.
#[test]
fn sip_tcp_connections_are_capped_and_idle_ones_closed_but_a_call_keeps_its_own() {
    use std::io::Read;
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_SIPREC_MAX_TCP_CONNECTIONS", "8"),
            ("REEL_SIPREC_TCP_IDLE_TIMEOUT_SECS", "1"),
        ],
    );
    let room = server.room(5);
    // A call over TCP silent (in SIP) for 3 s, past the idle timeout: its BYE must arrive.
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 3);
    let mut command = sipp_command(&server, dir.path(), "call.xml", &room, &media, 3500, 1);
    command.args(["-t", "t1"]);
    let call = std::thread::spawn(move || command.output().expect("sipp"));
    std::thread::sleep(Duration::from_millis(700));
    let idle: Vec<std::net::TcpStream> = (0..7)
        .map(|_| std::net::TcpStream::connect(&server.sip).unwrap())
        .collect();
    // The ninth: accepted, then closed at once.
    let mut extra = std::net::TcpStream::connect(&server.sip).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)) && !tcp_options_answered(&server),
        "a connection past the cap was served"
    );
    // The idle seven go within the timeout and the loop's one-second tick.
    let started = std::time::Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        assert!(
            matches!(s.read(&mut buf), Ok(0)),
            "an idle connection stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        tcp_options_answered(&server),
        "a new connection after the idle ones went"
    );
    let out = call.join().unwrap();
    assert!(
        out.status.success(),
        "the call over TCP lost its connection:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// 300 SIPREC INVITEs from one source that never ACKs (at most
/// `max_unconfirmed_calls_per_source` of them held, the rest refused 503) leave a real call
/// from another source answered and recorded, get back less than twice the
/// bytes they sent, and leave no session, publication or event behind (a call's rows wait
/// for its ACK).
#[test]
fn half_open_invites_leave_a_real_call_answered() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_SIPREC_MAX_CALLS", "4"),
            ("REEL_SIPREC_MAX_UNCONFIRMED_CALLS_PER_SOURCE", "8"),
        ],
    );
    let room = server.room(3);
    // The flood's own address: the real SRC (sipp) sends from 127.0.0.1.
    let flood = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let local = flood.local_addr().unwrap().to_string();
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n";
    let body = format!(
        "--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>\r\n--b--\r\n"
    );
    // Everything the flood's source gets back, until the real call is over.
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let replies = flood.try_clone().unwrap();
    replies
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let listener = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = replies.recv(&mut buf) {
                counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let mut sent_bytes = 0usize;
    for n in 0..300 {
        let invite = sip_request(
            "INVITE",
            &format!("halfopen-{n}"),
            "Require: siprec\r\n",
            "multipart/mixed;boundary=b",
            &body,
        )
        .replace("sip:rec@127.0.0.1", &format!("sip:{room}@127.0.0.1"))
        .replace("LOCAL", &local);
        sent_bytes += flood.send_to(invite.as_bytes(), &server.sip).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = std::time::Instant::now();
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 2);
    sipp(&server, dir.path(), "call.xml", &room, &media, 2500, 1);
    let answered_in = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    listener.join().unwrap();
    let received = received.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "half-open flood: real call done {answered_in:?} after; {sent_bytes} bytes sent, \
         {received} bytes back ({:.2}×)",
        received as f64 / sent_bytes as f64
    );
    // Each INVITE gets its 100 Trying and 200 OK about once (they were 4× when every
    // unACKed call kept re-sending its 200 for 32 s).
    assert!(
        received < 2 * sent_bytes,
        "the flood's source got {received} bytes back for {sent_bytes}"
    );
    // The half-open calls left no trace: no session, no publication, no event.
    let sessions = ended_calls(&server, &room, 1);
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let real = sessions;
    assert!(!real[0]["call_id"].as_str().unwrap().starts_with("halfopen"));
    let all = server.get(&format!("/v1/sessions?room_id={room}"))["data"].clone();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all:#}");
    let real_id = real[0]["id"].as_str().unwrap();
    let traces: Vec<_> = events(&server)
        .into_iter()
        .filter(|(_, p)| p["session_id"].as_str().is_some_and(|s| s != real_id))
        .collect();
    assert!(traces.is_empty(), "{traces:?}");
    let assets = server.wait_assets(real[0]["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    assert_eq!(of_type(&assets, "audio").len(), 2);
    // The half-open calls had no media: no mix was even tried for them.
    let failures: Vec<_> = events(&server)
        .into_iter()
        .filter(|(t, _)| t == "composite.recording.failure")
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

/// Sockets the server process holds open (UDP and TCP), from /proc.
fn open_sockets(server: &Server) -> usize {
    let pid = server.child.as_ref().expect("server running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn invites_of_500_lines_hold_at_most_the_line_cap_and_a_real_call_is_recorded() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(3);
    let before = open_sockets(&server);
    let flood = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    flood
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let local = flood.local_addr().unwrap().to_string();
    let mut sdp =
        String::from("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n");
    for n in 0..500 {
        sdp += &format!("m=audio {} RTP/AVP 0\r\na=sendonly\r\n", 4000 + 2 * n);
    }
    let body = format!(
        "--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>\r\n--b--\r\n"
    );
    for n in 0..4 {
        let invite = sip_request(
            "INVITE",
            &format!("wide-{n}"),
            "Require: siprec\r\n",
            "multipart/mixed;boundary=b",
            &body,
        )
        .replace("sip:rec@127.0.0.1", &format!("sip:{room}@127.0.0.1"))
        .replace("LOCAL", &local);
        flood.send_to(invite.as_bytes(), &server.sip).unwrap();
    }
    // The 200 OKs (never ACKed): each records the first 16 lines and declines the rest.
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while answers.len() < 4 && std::time::Instant::now() < deadline {
        if let Ok(n) = flood.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 200") {
                answers.push(text);
            }
        }
    }
    assert_eq!(answers.len(), 4, "every INVITE answered");
    for answer in &answers {
        let lines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(lines.len(), 500, "one answer line per offered line");
        let recorded = lines
            .iter()
            .filter(|l| !l.starts_with("m=audio 0 "))
            .count();
        assert_eq!(recorded, 16, "{:?}", &lines[..20]);
    }
    let held = open_sockets(&server) - before;
    eprintln!("4 INVITEs of 500 lines: {held} sockets held before their ACK");
    assert!(
        held <= 4 * 16,
        "{held} sockets for 4 calls of at most 16 lines"
    );

    // A real SRC's call, from another address, meanwhile: answered and recorded.
    let media = media_script(dir.path(), &[Media::Tone(440), Media::Tone(1000)], 2);
    sipp(&server, dir.path(), "call.xml", &room, &media, 2500, 1);
    let sessions = ended_calls(&server, &room, 1);
    let real = sessions
        .iter()
        .find(|s| !s["call_id"].as_str().unwrap().starts_with("wide-"))
        .expect("the real call");
    let assets = server.wait_assets(real["id"].as_str().unwrap(), 3, Duration::from_secs(60));
    assert_eq!(of_type(&assets, "audio").len(), 2);
}
