//! Ingest load generator: N concurrent WHIP publishers (real VP8 + Opus, paced in real time)
//! into one running Reel, then checks every recording for missing frames and reports the
//! server's CPU time per participant-second and resident memory per track.
//!
//! reel-loadgen --server http://127.0.0.1:8080 --api-key KEY --pid SERVER_PID \
//!              --video v.ivf --audio a.ogg --participants 100 --seconds 20
//! Prints one JSON line with the measurements.

use reel_testkit::proc::{cpu_seconds, rss_kib};
use reel_testkit::{http, publish, Leave, PublishOptions};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    server: String,
    api_key: String,
    pid: u32,
    video: PathBuf,
    audio: PathBuf,
    participants: usize,
    seconds: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let (mut server, mut api_key, mut pid, mut video, mut audio) = (None, None, None, None, None);
    let (mut participants, mut seconds) = (10usize, 20u64);
    while let Some(flag) = a.next() {
        let mut v = || a.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => server = Some(v()?),
            "--api-key" => api_key = Some(v()?),
            "--pid" => pid = Some(v()?.parse().map_err(|_| "bad --pid")?),
            "--video" => video = Some(PathBuf::from(v()?)),
            "--audio" => audio = Some(PathBuf::from(v()?)),
            "--participants" => participants = v()?.parse().map_err(|_| "bad --participants")?,
            "--seconds" => seconds = v()?.parse().map_err(|_| "bad --seconds")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        server: server.ok_or("--server is required")?,
        api_key: api_key.ok_or("--api-key is required")?,
        pid: pid.ok_or("--pid is required")?,
        video: video.ok_or("--video is required")?,
        audio: audio.ok_or("--audio is required")?,
        participants,
        seconds,
    })
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("reel-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let api = |path: &str| format!("{}{}", args.server.trim_end_matches('/'), path);
    let room = http::json(
        "POST",
        &api("/v1/rooms"),
        Some(&args.api_key),
        &json!({"name": "load", "empty_timeout_seconds": 1}),
    )
    .expect("create room")
    .json();
    let room_id = room["id"].as_str().expect("room id").to_string();
    let mut jobs = Vec::new();
    let rss_before = rss_kib(args.pid);
    let cpu_before = cpu_seconds(args.pid);
    let started = Instant::now();
    for i in 0..args.participants {
        let t = http::json(
            "POST",
            &api(&format!("/v1/rooms/{room_id}/tokens")),
            Some(&args.api_key),
            &json!({"participant": format!("p{i}")}),
        )
        .expect("token")
        .json();
        let mut o = PublishOptions::new(
            t["whip_url"].as_str().unwrap(),
            t["token"].as_str().unwrap(),
        );
        o.video = Some(args.video.clone());
        o.audio = Some(args.audio.clone());
        o.duration = Duration::from_secs(args.seconds);
        o.leave = Leave::Delete;
        jobs.push(std::thread::spawn(move || publish(&o)));
        // Stagger joins like a real meeting; all are publishing together for most of the run.
        std::thread::sleep(Duration::from_millis(20));
    }
    // Peak resident memory while everyone publishes.
    let mut rss_peak = rss_before;
    while jobs.iter().any(|j| !j.is_finished()) {
        rss_peak = rss_peak.max(rss_kib(args.pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    let reports: Vec<_> = jobs
        .into_iter()
        .map(|j| j.join().expect("publisher thread"))
        .collect();
    let publishing_cpu = cpu_seconds(args.pid) - cpu_before;
    let failures: Vec<String> = reports
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    let ok: Vec<_> = reports.into_iter().filter_map(Result::ok).collect();
    let participant_seconds: f64 = ok.iter().map(|r| r.sent_for.as_secs_f64()).sum();

    // Every recording: frames recorded vs frames sent.
    let session = ok.first().map(|r| r.session_id.clone()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120 + args.participants as u64);
    let assets = loop {
        let list = http::request(
            "GET",
            &api(&format!("/v1/assets?session_id={session}")),
            Some(&args.api_key),
            None,
        )
        .expect("assets")
        .json();
        let assets = list["data"].as_array().cloned().unwrap_or_default();
        if assets.len() >= ok.len() || Instant::now() > deadline {
            break assets;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let sent_video: u64 = ok.iter().map(|r| r.video_frames).sum();
    let sent_audio: u64 = ok.iter().map(|r| r.audio_frames).sum();
    let rec_video: u64 = assets
        .iter()
        .map(|a| a["details"]["video_frames"].as_u64().unwrap_or(0))
        .sum();
    let rec_audio: u64 = assets
        .iter()
        .map(|a| a["details"]["audio_frames"].as_u64().unwrap_or(0))
        .sum();
    let complete = assets
        .iter()
        .filter(|a| {
            let sent = ok
                .iter()
                .find(|r| assets_match(r, a))
                .map(|r| r.video_frames);
            sent.is_some_and(|s| a["details"]["video_frames"].as_u64() == Some(s))
        })
        .count();
    let tracks = 2 * ok.len() as u64;
    println!(
        "{}",
        json!({
            "participants": args.participants,
            "connected": ok.len(),
            "failures": failures,
            "assets": assets.len(),
            "recordings_without_missing_frames": complete,
            "video_frames_sent": sent_video,
            "video_frames_recorded": rec_video,
            "audio_frames_sent": sent_audio,
            "audio_frames_recorded": rec_audio,
            "server_cpu_seconds": publishing_cpu,
            "cpu_ms_per_participant_second": if participant_seconds > 0.0 { publishing_cpu * 1000.0 / participant_seconds } else { 0.0 },
            "rss_before_kib": rss_before,
            "rss_peak_kib": rss_peak,
            "rss_kib_per_track": rss_peak.saturating_sub(rss_before).checked_div(tracks).unwrap_or(0),
            "wall_seconds": started.elapsed().as_secs_f64(),
        })
    );
}

/// An asset belongs to a publisher when its publication id is in the publisher's resource URL.
fn assets_match(report: &reel_testkit::PublishReport, asset: &serde_json::Value) -> bool {
    asset["publication_id"]
        .as_str()
        .is_some_and(|p| report.resource_url.ends_with(p))
}
