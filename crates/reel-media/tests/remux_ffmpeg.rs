//! Real encoder output (ffmpeg's libvpx, libx264 and libopus) through journal and remux,
//! judged by ffprobe and a full decode. ffmpeg is a required test tool: these tests fail,
//! never skip, without it.

use reel_core::{Codec, MediaKind};
use reel_media::journal::{flags, JournalHeader, JournalReader, JournalWriter, Record};
use reel_media::remux::{self, RemuxReport};
use reel_media::{codec, h264, ivf, ogg};
use std::fs::File;
use std::path::Path;
use std::process::Command;

const T0: i64 = 1_700_000_000_000_000;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is ffmpeg installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ffmpeg_lavfi(source: &str, codec_args: &[&str], out: &Path) {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", source, "-t", "3"])
        .args(codec_args)
        .arg("-y")
        .arg(out));
}

fn header(kind: MediaKind, codec: Codec, clock_rate: u32) -> JournalHeader {
    JournalHeader {
        track_id: format!("trk_{}", codec.name()),
        publication_id: "pub_t".into(),
        session_id: "ses_t".into(),
        room_id: "room_t".into(),
        participant: "tester".into(),
        kind,
        codec,
        clock_rate,
        mid: "0".into(),
        rid: None,
        created_unix_us: 0,
    }
}

/// 30 fps video whose first frame is 200 ms after the sender report's instant.
fn video_journal(codec: Codec, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w =
        JournalWriter::create(Vec::new(), &header(MediaKind::Video, codec, 90_000)).unwrap();
    w.append(&Record::SenderReport {
        rtp_time: 1000,
        ntp_unix_us: T0,
    })
    .unwrap();
    for (i, f) in frames.iter().enumerate() {
        let key = if codec::is_keyframe(codec, f) {
            flags::KEYFRAME
        } else {
            0
        };
        let rtp_time = 1000 + 18_000 + i as u64 * 3000;
        let arrival_unix_us = T0 + 200_000 + i as i64 * 33_333;
        w.append(&Record::Frame {
            rtp_time,
            arrival_unix_us,
            flags: key,
            data: f.clone(),
        })
        .unwrap();
    }
    w.into_inner()
}

/// 20 ms Opus packets starting at the sender report's instant.
fn opus_journal(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut w =
        JournalWriter::create(Vec::new(), &header(MediaKind::Audio, Codec::Opus, 48_000)).unwrap();
    w.append(&Record::SenderReport {
        rtp_time: 500,
        ntp_unix_us: T0,
    })
    .unwrap();
    for (i, p) in packets.iter().enumerate() {
        let (rtp_time, arrival_unix_us) = (500 + i as u64 * 960, T0 + i as i64 * 20_000);
        w.append(&Record::Frame {
            rtp_time,
            arrival_unix_us,
            flags: flags::KEYFRAME,
            data: p.clone(),
        })
        .unwrap();
    }
    w.into_inner()
}

fn remux_pair(video: &[u8], audio: &[u8], out: &Path) -> RemuxReport {
    let tracks = vec![
        (
            remux::analyze(video).unwrap(),
            JournalReader::open(video).unwrap(),
        ),
        (
            remux::analyze(audio).unwrap(),
            JournalReader::open(audio).unwrap(),
        ),
    ];
    remux::remux(tracks, File::create(out).unwrap()).unwrap().1
}

/// (codecs, duration) as ffprobe sees them, after a full decode without errors.
fn judge(path: &Path) -> (Vec<String>, f64) {
    let probe = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(path));
    let v: serde_json::Value = serde_json::from_str(&probe).unwrap();
    let codecs = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_string())
        .collect();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    let (complaints, _) = reel_testkit::judge::decode(path);
    assert!(complaints.is_empty(), "decoding: {complaints}");
    (codecs, duration)
}

fn first_video_pts(path: &Path) -> f64 {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    out.trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe said {out:?}"))
}

/// Three seconds of a VP8 test pattern, frame by frame.
fn vp8_frames(dir: &Path, bitrate: &str) -> Vec<Vec<u8>> {
    let path = dir.join("v.ivf");
    ffmpeg_lavfi(
        "testsrc=size=320x240:rate=30",
        &["-c:v", "libvpx", "-g", "30", "-b:v", bitrate],
        &path,
    );
    ivf::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .frames
        .into_iter()
        .map(|f| f.data)
        .collect()
}

fn opus_packets(dir: &Path) -> Vec<Vec<u8>> {
    let path = dir.join("a.ogg");
    ffmpeg_lavfi(
        "sine=frequency=440:sample_rate=48000",
        &["-c:a", "libopus", "-frame_duration", "20"],
        &path,
    );
    ogg::opus_packets(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn vp8_and_opus_go_into_webm_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let video = vp8_frames(d, "500k");
    let out = d.join("out.webm");
    let report = remux_pair(
        &video_journal(Codec::Vp8, &video),
        &opus_journal(&opus_packets(d)),
        &out,
    );
    assert_eq!(
        (report.sync, report.container, report.video_frames),
        ("sender_report", "webm", 90)
    );
    assert_eq!((report.width, report.height), (Some(320), Some(240)));
    let (codecs, duration) = judge(&out);
    assert_eq!(codecs, ["vp8", "opus"]);
    assert!((duration - 3.2).abs() < 0.1, "duration {duration}");
    assert!((first_video_pts(&out) - 0.2).abs() < 0.002);
}

/// Splits an Annex B stream written with access unit delimiters into access units.
fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    for nal in h264::nal_units(stream) {
        if h264::nal_type(nal) == h264::NAL_AUD || units.is_empty() {
            units.push(Vec::new());
        }
        let au = units.last_mut().unwrap();
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(nal);
    }
    units.retain(|u| h264::nal_units(u).any(|n| matches!(h264::nal_type(n), 1 | 5)));
    units
}

/// 3 s of 320x240 30 fps baseline H.264 from libx264, as access units.
fn x264_access_units(dir: &Path) -> Vec<Vec<u8>> {
    let args = [
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-g",
        "30",
        "-x264-params",
        "aud=1",
        "-f",
        "h264",
    ];
    ffmpeg_lavfi("testsrc2=size=320x240:rate=30", &args, &dir.join("v.h264"));
    access_units(&std::fs::read(dir.join("v.h264")).unwrap())
}

#[test]
fn h264_goes_into_mp4_with_its_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let units = x264_access_units(d);
    assert_eq!(units.len(), 90);
    let out = d.join("out.mp4");
    let report = remux_pair(
        &video_journal(Codec::H264, &units),
        &opus_journal(&opus_packets(d)),
        &out,
    );
    assert_eq!((report.container, report.video_frames), ("mp4", 90));
    assert_eq!((report.width, report.height), (Some(320), Some(240)));
    let (codecs, duration) = judge(&out);
    assert_eq!(codecs, ["h264", "opus"]);
    assert!((duration - 3.2).abs() < 0.1, "duration {duration}");
    // The edit list keeps video 200 ms after audio.
    assert!((first_video_pts(&out) - 0.2).abs() < 0.002);
}

/// Senders can stamp two frames with one capture time (seen from Chromium); the file must
/// still have strictly increasing timestamps per track, or players reject it.
#[test]
fn frames_sharing_a_timestamp_still_give_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frames = vp8_frames(d, "300k");
    let mut w =
        JournalWriter::create(Vec::new(), &header(MediaKind::Video, Codec::Vp8, 90_000)).unwrap();
    for (i, f) in frames.iter().enumerate() {
        // Frames 10 and 11 carry the same RTP time.
        let tick = if i == 11 { 10 } else { i as u64 };
        let key = if codec::is_keyframe(Codec::Vp8, f) {
            flags::KEYFRAME
        } else {
            0
        };
        w.append(&Record::Frame {
            rtp_time: tick * 3000,
            arrival_unix_us: T0 + i as i64 * 33_333,
            flags: key,
            data: f.clone(),
        })
        .unwrap();
    }
    let j = w.into_inner();
    let out = d.join("dup.webm");
    let tracks = vec![(
        remux::analyze(&j[..]).unwrap(),
        JournalReader::open(&j[..]).unwrap(),
    )];
    remux::remux(tracks, File::create(&out).unwrap()).unwrap();
    let (codecs, _) = judge(&out);
    assert_eq!(codecs, ["vp8"]);
    let pts = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
        ])
        .arg(&out));
    let pts: Vec<i64> = pts
        .lines()
        .map(|l| l.trim().trim_end_matches(',').parse().unwrap())
        .collect();
    assert_eq!(pts.len(), frames.len());
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "timestamps not strictly increasing: {pts:?}"
    );
}

/// A SIP party's G.711: 3 s of 20 ms µ-law frames of a 700 Hz tone from ffmpeg, arriving
/// from the sender report's instant on; `dropped` frames are left out (silence
/// suppression: comfort noise is not journaled).
fn ulaw_journal(dir: &Path, dropped: std::ops::Range<usize>) -> Vec<u8> {
    let raw = dir.join("tone.ulaw");
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=700:duration=3",
        ])
        .args(["-ar", "8000", "-ac", "1", "-f", "mulaw", "-y"])
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();
    let mut w =
        JournalWriter::create(Vec::new(), &header(MediaKind::Audio, Codec::Pcmu, 8000)).unwrap();
    for (i, chunk) in bytes.chunks(160).enumerate() {
        if dropped.contains(&i) {
            continue;
        }
        w.append(&Record::Frame {
            rtp_time: 4242 + i as u64 * 160,
            arrival_unix_us: T0 + i as i64 * 20_000,
            flags: flags::KEYFRAME,
            data: chunk.to_vec(),
        })
        .unwrap();
    }
    w.into_inner()
}

/// The second between 1 s and 2 s is silence-suppressed.
#[test]
fn g711_goes_into_matroska_as_pcm_keeping_its_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let journal = ulaw_journal(dir.path(), 50..100);
    let out = dir.path().join("call.mka");
    let tracks = vec![(
        remux::analyze(&journal[..]).unwrap(),
        JournalReader::open(&journal[..]).unwrap(),
    )];
    let (_, report) = remux::remux(tracks, File::create(&out).unwrap()).unwrap();
    assert_eq!(report.container, "mka");
    assert_eq!(report.audio_frames, 100);
    let (codecs, duration) = judge(&out);
    assert_eq!(codecs, ["pcm_s16le"]);
    assert!((duration - 3.0).abs() < 0.05, "duration {duration}");
    // The frame after the gap sits at 2 s, not at 1 s.
    let pts = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&out));
    let pts: Vec<f64> = pts.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(pts.iter().any(|t| (t - 2.0).abs() < 0.001), "{pts:?}");
    assert!(!pts.iter().any(|t| *t > 1.0 && *t < 1.99), "{pts:?}");
    let samples = &reel_testkit::judge::pcm(&out, 1)[0];
    let amplitude = reel_testkit::judge::tone(&samples[..48_000], 700.0);
    assert!(amplitude > 0.08, "700 Hz at {amplitude}");
    assert!(reel_testkit::judge::tone(&samples[..48_000], 1000.0) < 0.01);
}

/// A SIP video party: H.264 with G.711 goes into Matroska (PCM does not play from MP4 in
/// browsers), the video in sync by arrival.
#[test]
fn h264_with_g711_goes_into_matroska() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let units = x264_access_units(d);
    let out = d.join("out.mkv");
    let report = remux_pair(
        &video_journal(Codec::H264, &units),
        &ulaw_journal(d, 0..0),
        &out,
    );
    assert_eq!((report.container, report.video_frames), ("mkv", 90));
    assert_eq!((report.audio_frames, report.sync), (150, "arrival"));
    let (codecs, duration) = judge(&out);
    assert_eq!(codecs, ["h264", "pcm_s16le"]);
    assert!((duration - 3.2).abs() < 0.1, "duration {duration}");
    assert!((first_video_pts(&out) - 0.2).abs() < 0.002);
}

/// A wideband SIP party: ffmpeg's G.722 encoding of a 5 kHz tone (beyond what G.711 can
/// carry), 20 ms frames on G.722's 8 kHz RTP clock. Reel's decoder must agree with
/// ffmpeg's on every sample, and the file must be 16 kHz PCM holding the tone.
#[test]
fn g722_goes_into_matroska_as_16khz_pcm_agreeing_with_ffmpegs_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("tone.g722");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("sine=frequency=5000:duration=3")
        .args([
            "-ar", "16000", "-ac", "1", "-c:a", "g722", "-f", "g722", "-y",
        ])
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();

    let reference = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "g722", "-i"])
        .arg(&raw)
        .args(["-f", "s16le", "-"])
        .output()
        .unwrap()
        .stdout;
    let reference: Vec<i16> = reference
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut mine = Vec::new();
    reel_media::g722::Decoder::default().decode_into(&bytes, &mut mine);
    assert_eq!(mine.len(), reference.len());
    let worst = mine
        .iter()
        .zip(&reference)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(worst <= 2, "decoders differ by up to {worst}");

    let mut w =
        JournalWriter::create(Vec::new(), &header(MediaKind::Audio, Codec::G722, 8000)).unwrap();
    for (i, chunk) in bytes.chunks(160).enumerate() {
        w.append(&Record::Frame {
            rtp_time: 99 + i as u64 * 160,
            arrival_unix_us: T0 + i as i64 * 20_000,
            flags: flags::KEYFRAME,
            data: chunk.to_vec(),
        })
        .unwrap();
    }
    let journal = w.into_inner();
    let out = dir.path().join("wideband.mka");
    let tracks = vec![(
        remux::analyze(&journal[..]).unwrap(),
        JournalReader::open(&journal[..]).unwrap(),
    )];
    let (_, report) = remux::remux(tracks, File::create(&out).unwrap()).unwrap();
    assert_eq!(report.container, "mka");
    assert_eq!(report.audio_frames, 150);
    assert!((report.duration_ms - 3000.0).abs() < 1.0, "{report:?}");
    let (codecs, duration) = judge(&out);
    assert_eq!(codecs, ["pcm_s16le"]);
    assert!((duration - 3.0).abs() < 0.05, "duration {duration}");
    let rate = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(&out));
    assert_eq!(rate.trim(), "16000");
    let samples = &reel_testkit::judge::pcm(&out, 1)[0];
    let amplitude = reel_testkit::judge::tone(&samples[24_000..120_000], 5000.0);
    // ffmpeg's sine source has amplitude 1/8.
    assert!((amplitude - 0.125).abs() < 0.02, "5 kHz at {amplitude}");
    assert!(reel_testkit::judge::tone(&samples[24_000..120_000], 3000.0) < 0.01);
}

/// A long recording with few keyframes (a browser sends one at the start and on request):
/// clusters are also cut every 5 s for length, and those start with a delta frame. Cues
/// must name only clusters a decoder can start at, so that a seek anywhere yields a frame.
#[test]
fn a_webm_with_sparse_keyframes_can_be_seeked_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("sparse.ivf");
    ffmpeg_lavfi(
        "testsrc=size=320x240:rate=30",
        &[
            "-t",
            "12",
            "-c:v",
            "libvpx",
            "-g",
            "1000",
            "-force_key_frames",
            "0,6",
            "-b:v",
            "300k",
        ],
        &path,
    );
    let video: Vec<Vec<u8>> = ivf::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .frames
        .into_iter()
        .map(|f| f.data)
        .collect();
    let keyframes = video
        .iter()
        .filter(|f| codec::is_keyframe(Codec::Vp8, f))
        .count();
    assert_eq!(
        keyframes, 2,
        "the source must have keyframes at 0 s and 6 s only"
    );
    let out = d.join("sparse.webm");
    remux_pair(
        &video_journal(Codec::Vp8, &video),
        &opus_journal(&opus_packets(d)),
        &out,
    );
    for at in ["1", "5.5", "8", "11.5"] {
        let frame = d.join(format!("at-{at}.png"));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-ss", at, "-i"])
            .arg(&out)
            .args(["-frames:v", "1", "-y"])
            .arg(&frame));
        let size = std::fs::metadata(&frame).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "ffmpeg -ss {at}: no frame ({size} bytes)");
    }
}
