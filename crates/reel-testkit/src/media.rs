//! Test media made with ffmpeg: the real encoders a browser would use (libvpx, libopus).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Tests run in parallel threads; one encoding at a time, and files appear atomically.
static ENCODING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Encodes with ffmpeg to `out` unless it already exists (written beside, then renamed).
fn encode(out: &Path, args: &[&str]) -> Result<(), String> {
    let _guard = ENCODING.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return Ok(());
    }
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let partial = out.with_extension(format!("part.{ext}"));
    let mut all: Vec<&str> = args.to_vec();
    all.push(partial.to_str().expect("utf-8 path"));
    ffmpeg(&all)?;
    std::fs::rename(&partial, out).map_err(|e| e.to_string())
}

fn ffmpeg(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ffmpeg (install it: apt-get install ffmpeg): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

pub struct TestMedia {
    pub video: PathBuf,
    pub audio: PathBuf,
}

/// A moving test pattern (VP8, keyframe every second) and a 440 Hz tone (Opus, 20 ms).
pub fn pattern_and_tone(
    dir: &Path,
    seconds: u32,
    size: &str,
    bitrate: &str,
) -> Result<TestMedia, String> {
    let video = dir.join(format!("pattern-{size}-{bitrate}.ivf"));
    let audio = dir.join("tone.ogg");
    let t = seconds.to_string();
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            bitrate,
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    )?;
    encode(
        &audio,
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &t,
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            "-frame_duration",
            "20",
        ],
    )?;
    Ok(TestMedia { video, audio })
}

/// A solid colour (VP8) and a sine tone at `freq` Hz and `volume_db` (Opus): a participant
/// whose tile and voice can be recognised in a composite.
pub fn colour_and_tone(
    dir: &Path,
    seconds: u32,
    colour: &str,
    freq: u32,
    volume_db: i32,
) -> Result<TestMedia, String> {
    let video = dir.join(format!("colour-{colour}-{seconds}s.ivf"));
    let audio = dir.join(format!("tone-{freq}-{volume_db}dB-{seconds}s.ogg"));
    let t = seconds.to_string();
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("color=c={colour}:size=320x240:rate=30"),
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            "300k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    )?;
    encode(
        &audio,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={freq}:sample_rate=48000"),
            "-t",
            &t,
            "-af",
            &format!("volume={volume_db}dB"),
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            "-frame_duration",
            "20",
        ],
    )?;
    Ok(TestMedia { video, audio })
}

/// Random noise in VP8 at `bitrate`: incompressible, so the recording is as large as asked
/// (`seconds` × `bitrate`), for uploads that need many multipart parts.
pub fn noise_vp8(dir: &Path, seconds: u32, size: &str, bitrate: &str) -> Result<PathBuf, String> {
    let video = dir.join(format!("noise-{size}-{bitrate}-{seconds}s.ivf"));
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("nullsrc=size={size}:rate=30,geq=random(1)*255:128:128"),
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            bitrate,
            "-minrate",
            bitrate,
            "-maxrate",
            bitrate,
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    )?;
    Ok(video)
}

/// The same moving pattern in VP9 (profile 0), for the VP9 path.
pub fn pattern_vp9(dir: &Path, seconds: u32, size: &str) -> Result<PathBuf, String> {
    let video = dir.join(format!("pattern-vp9-{size}.ivf"));
    let t = seconds.to_string();
    let src = format!("testsrc2=size={size}:rate=30");
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-t",
            &t,
            "-c:v",
            "libvpx-vp9",
            "-g",
            "30",
            "-b:v",
            "400k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
        ],
    )?;
    Ok(video)
}

/// The moving pattern in H.264 (constrained baseline, as WebRTC sends it), Annex B with
/// access unit delimiters so a publisher can split it into frames.
pub fn pattern_h264(dir: &Path, seconds: u32, size: &str) -> Result<PathBuf, String> {
    let video = dir.join(format!("pattern-{size}.h264"));
    let t = seconds.to_string();
    let src = format!("testsrc2=size={size}:rate=30");
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-t",
            &t,
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-b:v",
            "500k",
            "-x264-params",
            "aud=1",
            "-f",
            "h264",
        ],
    )?;
    Ok(video)
}

/// Video and audio that are marked between `from` and `to` seconds (white picture, 1 kHz
/// tone) and unmarked elsewhere (dark picture, 440 Hz): published across a pause, the
/// marked part must be nowhere in the recording.
pub fn marked_window(dir: &Path, seconds: u32, from: f64, to: f64) -> Result<TestMedia, String> {
    let video = dir.join(format!("marked-{from}-{to}.ivf"));
    let audio = dir.join(format!("marked-{from}-{to}.ogg"));
    let t = seconds.to_string();
    let inside = |v: &str| format!("between({v},{from},{to})");
    let picture = format!(
        "color=c=black:size=320x240:rate=30,geq=lum='if({},235,40)':cb=128:cr=128",
        inside("T")
    );
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &picture,
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            "300k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    )?;
    let sound = format!(
        "aevalsrc='0.5*sin(2*PI*if({},1000,440)*t)':s=48000",
        inside("t")
    );
    encode(
        &audio,
        &[
            "-f",
            "lavfi",
            "-i",
            &sound,
            "-t",
            &t,
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
        ],
    )?;
    Ok(TestMedia { video, audio })
}

/// Black video with a white flash and silence with a 1 kHz beep, at the same instants
/// (every `period` seconds, from `first` on): what an A/V sync measurement looks for.
pub fn flash_and_beep(
    dir: &Path,
    seconds: u32,
    first: f64,
    period: f64,
) -> Result<TestMedia, String> {
    let video = dir.join("flash.ivf");
    let audio = dir.join("beep.ogg");
    let t = seconds.to_string();
    // A 100 ms flash/beep starting at first + k·period.
    // geq calls time T, aevalsrc calls it t.
    let on = |t: &str| format!("lt(mod({t}-{first}+{period},{period}),0.1)*gte({t},{first})");
    encode(
        &video,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!(
                "color=c=black:size=320x240:rate=30,geq=lum='if({},235,16)':cb=128:cr=128",
                on("T")
            ),
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-g",
            "30",
            "-b:v",
            "300k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
    )?;
    encode(
        &audio,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("aevalsrc='if({},0.8*sin(2*PI*1000*t),0)':s=48000", on("t")),
            "-t",
            &t,
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
        ],
    )?;
    Ok(TestMedia { video, audio })
}

/// flite's `voice` (slt, rms, kal16, awb) saying `words` after `lead_s` seconds of silence,
/// as 16 kHz mono 16-bit WAV in `dir`; padded or cut to `seconds` when given. flite, not
/// espeak-ng: PocketSphinx's en-us model hears flite's voices word for word and espeak-ng's
/// not at all (measured; see ARCHITECTURE § Transcripts).
pub fn spoken(dir: &Path, voice: &str, words: &str, lead_s: f64, seconds: Option<u32>) -> PathBuf {
    let raw = dir.join(format!("{voice}-raw.wav"));
    let out = Command::new("flite")
        .args(["-voice", voice, "-t", words, "-o"])
        .arg(&raw)
        .output()
        .expect("flite is required (apt-get install flite)");
    assert!(out.status.success(), "{out:?}");
    let mut filter = format!("adelay={}", (lead_s * 1000.0) as u32);
    if let Some(seconds) = seconds {
        filter += &format!(",apad,atrim=0:{seconds}");
    }
    let wav = dir.join(format!("{voice}.wav"));
    let (raw, wav_str) = (raw.to_str().unwrap(), wav.to_str().unwrap());
    ffmpeg(&[
        "-i",
        raw,
        "-af",
        &filter,
        "-ar",
        "16000",
        "-ac",
        "1",
        "-c:a",
        "pcm_s16le",
        wav_str,
    ])
    .unwrap();
    wav
}
