//! Upload benchmark (issue: storage destinations): time from the end of a participant's
//! track to `recording_available`, for tracks recorded to an S3 bucket (SeaweedFS, started
//! here) side by side with the same tracks recorded to Reel's own disk as the baseline.
//!
//! reel-uploadbench --reel target/release/reel --video v.ivf --audio a.ogg \
//!                  --pairs 4 --seconds 600
//! Every pair (one S3 room, one local room) publishes together; pairs end 20 s apart so
//! their outputs do not all compete for the two cores at once. When a publisher leaves, the
//! application stops the recording (as it would at the end of a call) and the clock runs
//! until `recording_available` is in the outbox. Prints one JSON line.

use reel_testkit::emulators::{self, SeaweedS3};
use reel_testkit::{http, publish, Leave, PublishOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let mut a = std::env::args();
    while let Some(x) = a.next() {
        if x == name {
            return a.next();
        }
    }
    None
}

fn main() {
    let reel = PathBuf::from(arg("--reel").expect("--reel BIN"));
    let video = PathBuf::from(arg("--video").expect("--video"));
    let audio = PathBuf::from(arg("--audio").expect("--audio"));
    let pairs: usize = arg("--pairs").map_or(4, |v| v.parse().expect("--pairs"));
    let seconds: u64 = arg("--seconds").map_or(600, |v| v.parse().expect("--seconds"));

    let s3 = SeaweedS3::start(&["bench"]);
    let data = tempfile::tempdir().unwrap();
    let key = "bench_upload_admin_key_0123456789";
    let mut server = Command::new(&reel)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--data-dir",
        ])
        .arg(data.path())
        .env("REEL_ADMIN_KEY", key)
        .env("REEL_LOG", "warn")
        .env("REEL_STORAGE_S3_ENDPOINT", &s3.endpoint)
        .env("REEL_STORAGE_S3_VIRTUAL_HOSTED", "false")
        .env("REEL_STORAGE_ALLOW_HTTP", "true")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start reel");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http_addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .expect("listening line")
        .to_string();
    let api = move |path: &str| format!("http://{http_addr}{path}");
    let call = |method: &str, path: &str, body: &Value| {
        http::json(method, &api(path), Some(key), body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
    };
    let creds = format!(
        "{}:{}:{}",
        emulators::S3_ACCESS_KEY,
        emulators::S3_SECRET_KEY,
        emulators::S3_REGION
    );

    let mut jobs = Vec::new();
    for pair in 0..pairs {
        for to_s3 in [true, false] {
            let mut room =
                json!({"name": format!("bench {pair} {to_s3}"), "empty_timeout_seconds": 60});
            if to_s3 {
                room["default_recording_options"] =
                    json!({"destinationUrl": "s3://bench/tracks/", "credentials": creds});
            }
            let room = call("POST", "/v1/rooms", &room);
            let room_id = room["id"].as_str().unwrap().to_string();
            let t = call(
                "POST",
                &format!("/v1/rooms/{room_id}/tokens"),
                &json!({"participant": "p"}),
            );
            let mut o = PublishOptions::new(
                t["whip_url"].as_str().unwrap(),
                t["token"].as_str().unwrap(),
            );
            o.video = Some(video.clone());
            o.audio = Some(audio.clone());
            o.duration = Duration::from_secs(seconds + 20 * pair as u64);
            o.leave = Leave::Delete;
            let api = api.clone();
            jobs.push(std::thread::spawn(move || {
                let report = publish(&o).expect("publish");
                let ended = Instant::now();
                let recs = http::request(
                    "GET",
                    &api(&format!("/v1/recordings?room_id={room_id}")),
                    Some(key),
                    None,
                )
                .unwrap()
                .json();
                let rec_id = recs["data"][0]["id"].as_str().unwrap().to_string();
                let r = http::request(
                    "POST",
                    &api(&format!("/v1/recordings/{rec_id}/stop")),
                    Some(key),
                    None,
                )
                .unwrap();
                assert_eq!(r.status, 200, "stop: {}", r.text());
                let deadline = Instant::now() + Duration::from_secs(600);
                loop {
                    let rec = http::request(
                        "GET",
                        &api(&format!("/v1/recordings/{rec_id}")),
                        Some(key),
                        None,
                    )
                    .unwrap()
                    .json();
                    match rec["state"].as_str() {
                        Some("available") => break,
                        Some("failed") => panic!("recording failed: {rec}"),
                        _ => {}
                    }
                    assert!(Instant::now() < deadline, "never available: {rec}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                let latency = ended.elapsed().as_secs_f64();
                let assets = http::request(
                    "GET",
                    &api(&format!("/v1/assets?session_id={}", report.session_id)),
                    Some(key),
                    None,
                )
                .unwrap()
                .json();
                let size = assets["data"][0]["size_bytes"].as_i64().unwrap_or(0);
                (to_s3, latency, size)
            }));
        }
    }
    let results: Vec<(bool, f64, i64)> = jobs
        .into_iter()
        .map(|j| j.join().expect("publisher"))
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    let pick = |s3: bool| {
        let mut v: Vec<f64> = results.iter().filter(|r| r.0 == s3).map(|r| r.1).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let p95 = |v: &[f64]| v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1];
    let (remote, local) = (pick(true), pick(false));
    let mib: Vec<f64> = results
        .iter()
        .filter(|r| r.0)
        .map(|r| r.2 as f64 / (1 << 20) as f64)
        .collect();
    println!(
        "{}",
        json!({
            "pairs": pairs,
            "track_seconds": seconds,
            "s3_seconds_to_available": remote,
            "local_seconds_to_available": local,
            "s3_p95": p95(&remote),
            "local_p95": p95(&local),
            "s3_asset_mib": mib,
        })
    );
}
