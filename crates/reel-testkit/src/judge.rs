//! Judging outputs as a player would: every frame of every stream decoded.

use std::path::Path;
use std::process::Command;

/// Decodes every frame of every stream; returns what the decoder complained about (empty
/// when clean) and the number of video frames. ffprobe decodes without remuxing, so only
/// real decoding problems are reported, not timing conventions of an output format.
pub fn decode(path: &Path) -> (String, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "frame=media_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is required (apt-get install ffmpeg)");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() == "video")
        .count() as u64;
    let mut complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && complaints.is_empty() {
        complaints = format!("ffprobe exited with {}", out.status);
    }
    (complaints, frames)
}

/// The picture at `t` seconds as packed RGB (width × height × 3), decoded by ffmpeg.
pub fn frame_rgb(path: &Path, t: f64, width: usize, height: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg is required");
    assert_eq!(
        out.stdout.len(),
        width * height * 3,
        "frame at {t} s of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The colour at (x, y) of a packed RGB frame.
pub fn pixel(frame: &[u8], width: usize, x: usize, y: usize) -> (u8, u8, u8) {
    let i = (y * width + x) * 3;
    (frame[i], frame[i + 1], frame[i + 2])
}

/// Whether two colours are alike within `tolerance` per channel (encoders shift colours).
pub fn near(a: (u8, u8, u8), b: (u8, u8, u8), tolerance: i32) -> bool {
    (a.0 as i32 - b.0 as i32).abs() <= tolerance
        && (a.1 as i32 - b.1 as i32).abs() <= tolerance
        && (a.2 as i32 - b.2 as i32).abs() <= tolerance
}

/// The audio as 48 kHz float samples, one Vec per channel.
pub fn pcm(path: &Path, channels: usize) -> Vec<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vn",
            "-ac",
            &channels.to_string(),
            "-ar",
            "48000",
            "-f",
            "f32le",
            "-",
        ])
        .output()
        .expect("ffmpeg is required");
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect()
}

/// Amplitude of `freq` Hz in 48 kHz `samples` (Goertzel), about the sine's peak amplitude.
pub fn tone(samples: &[f32], freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

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

/// Flash/beep pairs (see `media::flash_and_beep`): for each flash's first bright frame, the
/// offset of the nearest beep onset (audio − video, seconds).
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

/// What a marked stretch (`media::marked_window`) leaves in a file: the highest mean luma of
/// any video frame and the loudest 100 ms of 1 kHz (dB), from ffmpeg.
pub fn marked_content(file: &Path) -> (f64, f64) {
    let f = file.to_str().unwrap();
    let luma = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("movie={f},signalstats"),
            "-show_entries",
            "frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .output()
        .unwrap();
    let max_luma = String::from_utf8_lossy(&luma.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(0.0, f64::max);
    // Energy near 1 kHz: band-pass, then the loudest 100 ms.
    let tone = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("amovie={f},bandpass=f=1000:width_type=q:w=8,bandpass=f=1000:width_type=q:w=8,asetnsamples=n=4800,astats=metadata=1:reset=1"),
            "-show_entries",
            "frame_tags=lavfi.astats.Overall.RMS_level",
            "-of",
            "csv=p=0",
        ])
        .output()
        .unwrap();
    let max_tone = String::from_utf8_lossy(&tone.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(-200.0, f64::max);
    (max_luma, max_tone)
}
