//! Composite benchmark (issue: composite recordings), Reel beside ffmpeg on the same inputs:
//! 4 participants, 640x360 30 fps VP8 + Opus, → 1280x720 30 fps H.264 + AAC grid.
//!
//! reel-composebench --reel target/release/reel --seconds 60 --work DIR
//!
//! 1. ffmpeg makes four distinct 640x360 VP8 videos and four Opus tones; they are written
//!    into capture journals exactly as ingest would (90 kHz / 48 kHz RTP times, arrival times).
//! 2. Reel renders the grid (`reel render`, a child process: its wall time and peak RSS).
//! 3. ffmpeg does the same job: xstack 2x2 + amix + libx264 veryfast at the same bitrate.
//! 4. Both are compared by SSIM with the same uncompressed reference (xstack of the inputs).
//! 5. The 4-party audio mix to mp3, timed as a multiple of real time (median of five runs),
//!    beside ffmpeg's amix + libmp3lame on the same Opus.
//!
//! Prints one JSON line.

use reel_core::{Codec, MediaKind};
use reel_media::journal::{flags, JournalHeader, JournalWriter, Record};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let mut a = std::env::args();
    while let Some(x) = a.next() {
        if x == name {
            return a.next();
        }
    }
    None
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn header(kind: MediaKind, codec: Codec, clock_rate: u32, who: usize) -> JournalHeader {
    JournalHeader {
        track_id: format!("trk_{who}_{}", codec.name()),
        publication_id: format!("pub_{who}"),
        session_id: "ses_bench".into(),
        room_id: "room_bench".into(),
        participant: format!("p{who}"),
        kind,
        codec,
        clock_rate,
        mid: "0".into(),
        rid: None,
        created_unix_us: 0,
    }
}

/// Journals of one participant, as ingest writes them, starting at `t0` (Unix µs).
fn journals(dir: &Path, who: usize, ivf: &Path, ogg: &Path, t0: i64) -> (PathBuf, PathBuf) {
    let video = reel_media::ivf::parse(&std::fs::read(ivf).unwrap()).unwrap();
    let vpath = dir.join(format!("p{who}-video.rjnl"));
    let mut w = JournalWriter::create(
        std::fs::File::create(&vpath).unwrap(),
        &header(MediaKind::Video, Codec::Vp8, 90_000, who),
    )
    .unwrap();
    for f in &video.frames {
        let us = f.pts as i64 * 1_000_000 * video.timebase_num as i64 / video.timebase_den as i64;
        let key = reel_media::codec::is_keyframe(Codec::Vp8, &f.data);
        w.append(&Record::Frame {
            rtp_time: (us * 90 / 1000) as u64 + 1_000_000,
            arrival_unix_us: t0 + us,
            flags: if key { flags::KEYFRAME } else { 0 },
            data: f.data.clone(),
        })
        .unwrap();
    }
    let apath = dir.join(format!("p{who}-audio.rjnl"));
    let mut w = JournalWriter::create(
        std::fs::File::create(&apath).unwrap(),
        &header(MediaKind::Audio, Codec::Opus, 48_000, who),
    )
    .unwrap();
    for (i, p) in reel_media::ogg::opus_packets(&std::fs::read(ogg).unwrap())
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let us = i as i64 * 20_000;
        w.append(&Record::Frame {
            rtp_time: (us * 48 / 1000) as u64 + 5_000_000,
            arrival_unix_us: t0 + us,
            flags: flags::KEYFRAME,
            data: p,
        })
        .unwrap();
    }
    (vpath, apath)
}

/// Runs `cmd`, polling its resident memory; (wall seconds, peak RSS MiB).
fn run_measured(mut cmd: Command) -> (f64, f64) {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut peak_kib = 0u64;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{cmd:?} failed: {status}");
            break;
        }
        let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        peak_kib = peak_kib.max(rss);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (started.elapsed().as_secs_f64(), peak_kib as f64 / 1024.0)
}

fn ssim(file: &Path, reference: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(file)
        .arg("-i")
        .arg(reference)
        .args(["-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    text.rsplit("All:")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no SSIM in: {text}"))
}

fn main() {
    let reel = PathBuf::from(arg("--reel").expect("--reel BIN"));
    let seconds: u32 = arg("--seconds").map_or(60, |v| v.parse().expect("--seconds"));
    let work = PathBuf::from(arg("--work").expect("--work DIR"));
    std::fs::create_dir_all(&work).unwrap();
    let t = seconds.to_string();
    let bitrate_kbps = 2500;

    // Inputs: four distinct moving pictures and four tones.
    let mut ivfs = Vec::new();
    let mut oggs = Vec::new();
    // Moving content in all four (static pictures would flatter any encoder).
    for (i, (pattern, freq)) in [
        ("testsrc2", 330),
        ("mandelbrot", 440),
        ("life", 550),
        ("cellauto", 660),
    ]
    .into_iter()
    .enumerate()
    {
        let ivf = work.join(format!("in{i}.ivf"));
        let ogg = work.join(format!("in{i}.ogg"));
        let src = format!("{pattern}=size=640x360:rate=30");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-t",
            &t,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libvpx",
            "-g",
            "60",
            "-b:v",
            "1000k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            ivf.to_str().unwrap(),
        ]);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={freq}:sample_rate=48000"),
            "-t",
            &t,
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            ogg.to_str().unwrap(),
        ]);
        ivfs.push(ivf);
        oggs.push(ogg);
    }
    let t0 = 1_700_000_000_000_000i64;
    let mut participants = Vec::new();
    for i in 0..4 {
        let (v, a) = journals(&work, i, &ivfs[i], &oggs[i], t0 + i as i64 * 10);
        participants.push(serde_json::json!({
            "id": format!("pub_{i}"), "participant": format!("p{i}"), "name": format!("p{i}"),
            "kind": "camera", "video": v, "audio": a,
        }));
    }
    let timeline = serde_json::json!({"from_unix_us": t0, "to_unix_us": t0 + seconds as i64 * 1_000_000, "pauses": []});
    let reel_out = work.join("reel.mp4");
    let job = serde_json::json!({
        "participants": participants,
        "timeline": timeline,
        "output": {"video": {"format": "mp4", "width": 1280, "height": 720, "fps": 30, "bitrate_kbps": bitrate_kbps,
            "layouts": [[0, {"type": "grid"}]], "labels": false, "background": 0, "rec_badge": false}},
        "path": reel_out,
    });
    let job_file = work.join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();

    let mut cmd = Command::new(&reel);
    cmd.arg("render")
        .arg(&job_file)
        .stdout(std::process::Stdio::null());
    let (reel_secs, reel_mib) = run_measured(cmd);

    let grid = "[0:v][1:v][2:v][3:v]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0";
    let inputs: Vec<String> = ivfs
        .iter()
        .chain(oggs.iter())
        .flat_map(|p| ["-i".to_string(), p.display().to_string()])
        .collect();
    let ff_out = work.join("ffmpeg.mp4");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"])
        .args(&inputs)
        .args([
            "-filter_complex",
            &format!("{grid}[v];[4:a][5:a][6:a][7:a]amix=inputs=4[a]"),
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            &format!("{bitrate_kbps}k"),
            "-g",
            "60",
            "-c:a",
            "aac",
            "-r",
            "30",
        ])
        .arg(&ff_out);
    let (ff_secs, ff_mib) = run_measured(cmd);

    // The uncompressed reference: the same grid, losslessly.
    let reference = work.join("reference.mkv");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"])
        .args(&inputs[..8])
        .args([
            "-filter_complex",
            &format!("{grid}[v]"),
            "-map",
            "[v]",
            "-c:v",
            "ffv1",
            "-r",
            "30",
        ])
        .arg(&reference);
    run_measured(cmd);
    let (reel_ssim, ff_ssim) = (ssim(&reel_out, &reference), ssim(&ff_out, &reference));

    // The audio-only mix of the same four, to mp3.
    let mut audio_job = job.clone();
    audio_job["output"] = serde_json::json!({"audio": {"format": "mp3", "channels": "mono"}});
    audio_job["path"] = serde_json::json!(work.join("mix.mp3"));
    let audio_file = work.join("audio-job.json");
    std::fs::write(&audio_file, audio_job.to_string()).unwrap();
    // Runs of well under a second vary by a fifth here: the median of five, each beside
    // ffmpeg mixing the same Opus to mp3 (amix + libmp3lame at the same 128 kbit/s).
    let median = |mut runs: Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let (mut reel_runs, mut ff_runs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let mut cmd = Command::new(&reel);
        cmd.arg("render")
            .arg(&audio_file)
            .stdout(std::process::Stdio::null());
        reel_runs.push(run_measured(cmd).0);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y"]);
        for i in 0..4 {
            cmd.arg("-i").arg(work.join(format!("in{i}.ogg")));
        }
        cmd.args(["-filter_complex", "amix=inputs=4", "-ac", "1"])
            .args(["-c:a", "libmp3lame", "-b:a", "128k"])
            .arg(work.join("ffmpeg-mix.mp3"));
        ff_runs.push(run_measured(cmd).0);
    }
    let (mix_secs, ff_mix_secs) = (median(reel_runs), median(ff_runs));

    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "reel_wall_s": reel_secs, "reel_peak_mib": reel_mib, "reel_ssim": reel_ssim,
            "ffmpeg_wall_s": ff_secs, "ffmpeg_peak_mib": ff_mib, "ffmpeg_ssim": ff_ssim,
            "time_ratio": reel_secs / ff_secs,
            "mp3_mix_wall_s": mix_secs, "mp3_mix_x_realtime": seconds as f64 / mix_secs,
            "ffmpeg_mp3_mix_wall_s": ff_mix_secs,
            "ffmpeg_mp3_mix_x_realtime": seconds as f64 / ff_mix_secs,
        })
    );
}
