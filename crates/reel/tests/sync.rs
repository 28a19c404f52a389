//! A/V sync measured, not assumed: a source with a white flash and a 1 kHz beep at the same
//! instants is published over WHIP; in the recorded `regular` asset, each flash's first
//! bright frame and its beep's onset must be within 40 ms.

mod common;

use common::*;
use reel_testkit::media::flash_and_beep;
use reel_testkit::{publish, PublishOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// (time, value) per video frame (mean luma) or per 5 ms of audio (RMS dBFS).
fn series(filter: &str, tag: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i", filter, "-show_entries"])
        .arg(format!("frame=pts_time:frame_tags={tag}"))
        .args(["-of", "csv=p=0"])
        .output()
        .expect("ffprobe is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let t = it.next()?.parse().ok()?;
            let v = it.next()?.trim();
            let v = if v == "-inf" { -200.0 } else { v.parse().ok()? };
            Some((t, v))
        })
        .collect()
}

/// Times where the value rises through `threshold`.
fn onsets(s: &[(f64, f64)], threshold: f64) -> Vec<f64> {
    s.windows(2)
        .filter(|w| w[0].1 < threshold && w[1].1 >= threshold)
        .map(|w| w[1].0)
        .collect()
}

pub fn av_offsets(file: &Path) -> Vec<f64> {
    let f = file.to_str().unwrap();
    let video = series(&format!("movie={f},signalstats"), "lavfi.signalstats.YAVG");
    let audio = series(
        &format!("amovie={f},asetnsamples=n=240,astats=metadata=1:reset=1"),
        "lavfi.astats.Overall.RMS_level",
    );
    let flashes = onsets(&video, 128.0);
    let beeps = onsets(&audio, -30.0);
    assert!(flashes.len() >= 2, "flashes seen: {flashes:?}");
    flashes
        .iter()
        .map(|v| {
            let nearest = beeps
                .iter()
                .min_by(|a, b| (*a - v).abs().total_cmp(&(*b - v).abs()))
                .expect("beeps seen");
            nearest - v
        })
        .collect()
}

#[test]
fn flash_and_beep_stay_within_40_ms() {
    let dir = tempfile::tempdir().unwrap();
    let media = flash_and_beep(dir.path(), 6, 1.0, 2.0).unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "sync", "camera");
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(6);
    let report = publish(&opts).unwrap();
    let assets = server.wait_assets(&report.session_id, 1, Duration::from_secs(20));
    assert_eq!(assets[0]["details"]["sync"], "sender_report");
    let file = server.download(&assets[0], dir.path());
    let offsets = av_offsets(&file);
    eprintln!("A/V offsets (audio − video), seconds: {offsets:?}");
    assert!(offsets.len() >= 2);
    for o in &offsets {
        assert!(
            o.abs() <= 0.040,
            "flash/beep offset {o} s exceeds 40 ms: {offsets:?}"
        );
    }
}
