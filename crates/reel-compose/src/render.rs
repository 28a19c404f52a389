//! The renderer, on GStreamer: journals → appsrc (one per track, fed by its own thread) →
//! decode → `compositor` (tiles placed over time by controllers at each scene's exact time)
//! and `audiomixer` → encode → mux → file.
//!
//! Timing: every frame is put on the receiver's clock (`ArrivalFrames`), then on the output
//! timeline (recording start = 0, paused intervals cut), so all participants line up and
//! audio stays with video. Video after a gap waits for a keyframe: a lost frame freezes the
//! last good picture rather than showing a corrupt one.
//!
//! This runs in a child process (`reel render`), so a crash inside GStreamer fails one job and
//! nothing else.

use crate::layout::{self, Layout, Rect, Scene, Source, SourceKind};
use crate::look::Look;
use crate::ComposeError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_controller as gst_controller;
use gstreamer_controller::prelude::*;
pub use reel_core::media::{AudioFormat, VideoFormat};
use reel_core::{Codec, MediaKind};
use reel_media::journal::JournalReader;
use reel_media::remux::{self, ArrivalFrames};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One publication of the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Participant {
    /// The publication id: names its tile.
    pub id: String,
    /// Identity (speaker choice, dual-channel side).
    pub participant: String,
    /// Label on its tile.
    pub name: String,
    /// Camera or screen (what was published); audio-only is found from the journals.
    pub kind: SourceKind,
    pub video: Option<PathBuf>,
    pub audio: Option<PathBuf>,
}

/// The output timeline on the receiver's clock: from `from` to `to` (Unix µs), paused
/// intervals cut.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    pub from_unix_us: i64,
    pub to_unix_us: i64,
    pub pauses: Vec<(i64, i64)>,
}

impl Timeline {
    /// Where `unix_us` lands in the output, or None (outside, or paused).
    pub fn out_us(&self, unix_us: i64) -> Option<i64> {
        if unix_us < self.from_unix_us || unix_us > self.to_unix_us {
            return None;
        }
        let mut cut = 0;
        for &(a, b) in &self.pauses {
            if unix_us >= a && unix_us < b {
                return None;
            }
            if unix_us >= b {
                cut += b - a;
            }
        }
        Some(unix_us - self.from_unix_us - cut)
    }

    pub fn duration_us(&self) -> i64 {
        let paused: i64 = self
            .pauses
            .iter()
            .map(|&(a, b)| (b.min(self.to_unix_us) - a.max(self.from_unix_us)).max(0))
            .sum();
        (self.to_unix_us - self.from_unix_us - paused).max(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    Mono,
    /// `left` (an identity) in the left channel, everyone else in the right.
    Dual {
        left: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSettings {
    pub format: VideoFormat,
    pub width: i32,
    pub height: i32,
    pub fps: i32,
    pub bitrate_kbps: u32,
    /// From each time (output ms) on, that layout; the first applies from 0.
    pub layouts: Vec<(i64, Layout)>,
    pub labels: bool,
    /// 0xRRGGBB
    pub background: u32,
    pub rec_badge: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Audio {
        format: AudioFormat,
        channels: Channels,
        /// An mp3's bit rate; none: one fitting speech at the mix's sample rate.
        #[serde(default)]
        bitrate_kbps: Option<u32>,
    },
    Video(VideoSettings),
}

/// What a render job is: everything the child process needs, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub participants: Vec<Participant>,
    pub timeline: Timeline,
    pub output: Output,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rendered {
    pub duration_ms: i64,
    pub scenes: usize,
    pub speaker_changes: usize,
}

fn gst_err(e: impl std::fmt::Display) -> ComposeError {
    ComposeError::Pipeline(e.to_string())
}

fn make(factory: &str) -> Result<gst::Element, ComposeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| ComposeError::Pipeline(format!("GStreamer element {factory} is missing")))
}

/// A track's journal: its codec and kind, and its first and last frame on the output timeline.
struct TrackInfo {
    path: PathBuf,
    /// The journal's first pass, made once: the feeder reads the journal with it.
    plan: remux::TrackPlan,
    /// On the receiver's clock, in sync with the publication's other track.
    anchor: Option<remux::Anchor>,
    codec: Codec,
    kind: MediaKind,
    from_ms: i64,
    to_ms: i64,
    dims: Option<(u32, u32)>,
    /// Channels an Opus track is decoded to (the renderer decodes Opus itself: `opus`).
    channels: usize,
}

fn track_info(path: &Path, timeline: &Timeline) -> Result<Option<TrackInfo>, ComposeError> {
    let plan = remux::analyze(BufReader::new(File::open(path)?))?;
    let (Some(anchor), Some(first), Some(last)) =
        (plan.arrival_anchor, plan.first_rtp, plan.last_rtp)
    else {
        return Ok(None);
    };
    let clock = plan.header.clock_rate.max(1) as i64;
    let unix = |rtp: u64| anchor.unix_us + (rtp as i64 - anchor.rtp as i64) * 1_000_000 / clock;
    let clamp = |u: i64| u.clamp(timeline.from_unix_us, timeline.to_unix_us);
    let (Some(from), Some(to)) = (
        timeline.out_us(clamp(unix(first))),
        timeline.out_us(clamp(unix(last))),
    ) else {
        return Ok(None);
    };
    Ok(Some(TrackInfo {
        path: path.to_path_buf(),
        anchor: plan.arrival_anchor,
        codec: plan.header.codec,
        kind: plan.header.kind,
        from_ms: from / 1000,
        to_ms: to / 1000,
        dims: plan
            .first_keyframe_dims
            .map(|d| (d.width as u32, d.height as u32)),
        plan,
        channels: 1,
    }))
}

fn caps_for(codec: Codec, channels: usize) -> gst::Caps {
    match codec {
        Codec::Vp8 => gst::Caps::builder("video/x-vp8").build(),
        Codec::Vp9 => gst::Caps::builder("video/x-vp9").build(),
        Codec::H264 => gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
        Codec::Pcmu => gst::Caps::builder("audio/x-mulaw")
            .field("rate", 8000i32)
            .field("channels", 1i32)
            .build(),
        Codec::Pcma => gst::Caps::builder("audio/x-alaw")
            .field("rate", 8000i32)
            .field("channels", 1i32)
            .build(),
        Codec::G722 => gst::Caps::builder("audio/G722")
            .field("rate", 16000i32)
            .field("channels", 1i32)
            .build(),
        Codec::Av1 => gst::Caps::builder("video/x-av1").build(),
        // Decoded by the feeder (`opus`): float samples, interleaved.
        Codec::Opus => gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", crate::opus::RATE)
            .field("channels", channels as i32)
            .build(),
    }
}

/// An mp3 bit rate that keeps speech clear at `rate` Hz: 16 kbit/s a channel for
/// telephone audio, 32 for wideband (below that LAME's low-pass cuts wideband speech's
/// 7 kHz), 48 for fullband.
fn speech_kbps(rate: u32, stereo: bool) -> u32 {
    let per_channel = match rate {
        0..=8_000 => 16,
        8_001..=16_000 => 32,
        _ => 48,
    };
    per_channel * if stereo { 2 } else { 1 }
}

fn decoder(codec: Codec) -> Result<Vec<gst::Element>, ComposeError> {
    Ok(match codec {
        // FFmpeg's own decoders (gstreamer1.0-libav) are faster than libvpx's; libvpx serves
        // where they are missing.
        Codec::Vp8 => vec![make("avdec_vp8").or_else(|_| make("vp8dec"))?],
        Codec::Vp9 => vec![make("avdec_vp9").or_else(|_| make("vp9dec"))?],
        Codec::H264 => vec![make("h264parse")?, make("avdec_h264")?],
        Codec::Pcmu => vec![make("mulawdec")?],
        Codec::Pcma => vec![make("alawdec")?],
        Codec::G722 => vec![make("avdec_g722")?],
        Codec::Av1 => vec![make("av1dec")?],
        // The feeder decodes Opus itself (`opus`, which says why).
        Codec::Opus => vec![],
    })
}

/// An appsrc fed from a journal by its own thread.
fn appsrc(info: &TrackInfo) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&caps_for(info.codec, info.channels))
        .format(gst::Format::Time)
        .is_live(false)
        .block(true)
        .max_bytes(4 << 20)
        .build()
}

/// Feeds a journal into `src` on the output timeline, from its own thread. The compositor
/// shows, for each output frame, the picture that starts within it: pictures land on the
/// nearest output frame without any shift here.
fn feed(src: gst_app::AppSrc, info: &TrackInfo, timeline: Timeline) -> std::thread::JoinHandle<()> {
    let (path, plan, anchor, video) = (
        info.path.clone(),
        info.plan.clone(),
        info.anchor,
        info.kind == MediaKind::Video,
    );
    let channels = info.channels;
    let opus = info.codec == Codec::Opus;
    std::thread::spawn(move || {
        let run = || -> Result<(), ComposeError> {
            let mut decoder = if opus {
                Some(crate::opus::OpusDecoder::new(channels)?)
            } else {
                None
            };
            let reader = JournalReader::open(BufReader::new(File::open(&path)?))?;
            let Some(anchor) = anchor.or(plan.arrival_anchor) else {
                return Ok(());
            };
            let frames = ArrivalFrames::with_anchor(plan, reader, anchor);
            let mut need_keyframe = video;
            let mut last_pts: Option<i64> = None;
            // Decoded audio not yet pushed: its start and its samples.
            let mut decoded: Option<(i64, Vec<f32>)> = None;
            for frame in frames {
                let frame = frame?;
                let Some(out) = timeline.out_us(frame.unix_us) else {
                    need_keyframe |= video;
                    continue;
                };
                if video && (frame.discontinuity || need_keyframe) && !frame.keyframe {
                    need_keyframe = true;
                    continue;
                }
                need_keyframe = false;
                // Strictly increasing timestamps, whatever the network did.
                let out = match last_pts {
                    Some(p) if out <= p => p + 1,
                    _ => out,
                };
                last_pts = Some(out);
                if let Some(d) = decoder.as_mut() {
                    let Some(pcm) = d.decode(&frame.data) else {
                        continue; // corrupt: as if lost
                    };
                    // Packets that follow on without a gap (RTP-timed ones do) go out as one
                    // buffer of up to 200 ms: every buffer costs thread wake-ups downstream.
                    let joins = decoded.as_ref().is_some_and(|(start, pcm)| {
                        let length = pcm_us(pcm.len() / channels);
                        (out - (start + length)).abs() <= 1_000 && length < 200_000
                    });
                    if !joins {
                        if let Some(run) = decoded.take() {
                            if !push_pcm(&src, run, channels) {
                                return Ok(());
                            }
                        }
                        decoded = Some((out, Vec::with_capacity(9_600 * channels)));
                    }
                    decoded.as_mut().expect("a run").1.extend_from_slice(pcm);
                    continue;
                }
                let mut buffer = gst::Buffer::from_mut_slice(frame.data);
                {
                    let b = buffer.get_mut().expect("fresh buffer");
                    b.set_pts(gst::ClockTime::from_useconds(out as u64));
                    if video && !frame.keyframe {
                        b.set_flags(gst::BufferFlags::DELTA_UNIT);
                    }
                }
                if src.push_buffer(buffer).is_err() {
                    return Ok(()); // the pipeline stopped (error or shutdown)
                }
            }
            if let Some(run) = decoded.take() {
                push_pcm(&src, run, channels);
            }
            Ok(())
        };
        if let Err(e) = run() {
            eprintln!("render: feeding {}: {e}", path.display());
        }
        let _ = src.end_of_stream();
    })
}

/// Microseconds of `samples` at the decoders' 48 kHz.
fn pcm_us(samples: usize) -> i64 {
    samples as i64 * 1_000_000 / crate::opus::RATE as i64
}

/// Pushes decoded float samples starting at `pts` (µs); false once the pipeline stopped.
fn push_pcm(src: &gst_app::AppSrc, (pts, pcm): (i64, Vec<f32>), channels: usize) -> bool {
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    {
        let b = buffer.get_mut().expect("fresh buffer");
        b.set_pts(gst::ClockTime::from_useconds(pts as u64));
        b.set_duration(gst::ClockTime::from_useconds(
            pcm_us(pcm.len() / channels) as u64
        ));
    }
    src.push_buffer(buffer).is_ok()
}

/// Audio levels (dBFS) per participant, every 100 ms of output, for the active speaker.
fn speaker_levels(
    audio: &[(usize, TrackInfo)],
    timeline: &Timeline,
    steps: usize,
) -> Result<Vec<Vec<f32>>, ComposeError> {
    let mut levels = vec![vec![-120.0f32; audio.len()]; steps];
    for (col, (_, info)) in audio.iter().enumerate() {
        let pipeline = gst::Pipeline::new();
        let src = appsrc(info);
        let conv = make("audioconvert")?;
        let level = make("level")?;
        level.set_property("interval", 100_000_000u64);
        level.set_property("post-messages", true);
        let sink = make("fakesink")?;
        sink.set_property("sync", false);
        let mut chain = vec![src.clone().upcast::<gst::Element>()];
        chain.extend(decoder(info.codec)?);
        chain.extend([conv, level, sink]);
        pipeline.add_many(&chain).map_err(gst_err)?;
        gst::Element::link_many(&chain).map_err(gst_err)?;
        let feeder = feed(src, info, timeline.clone());
        pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
        let bus = pipeline.bus().expect("pipelines have a bus");
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    let Some(s) = e.structure() else { continue };
                    if s.name() != "level" {
                        continue;
                    }
                    let ts = s
                        .get::<gst::ClockTime>("running-time")
                        .map(|t| t.mseconds())
                        .unwrap_or(0);
                    let rms = s
                        .get::<glib_list::ValueArray>("rms")
                        .ok()
                        .and_then(|a| {
                            a.iter()
                                .filter_map(|v| v.get::<f64>().ok())
                                .reduce(f64::max)
                        })
                        .unwrap_or(-120.0);
                    let step = (ts / 100) as usize;
                    if step > 0 && step <= steps {
                        levels[step - 1][col] = rms as f32;
                    }
                }
                gst::MessageView::Eos(..) => break,
                gst::MessageView::Error(e) => {
                    let _ = pipeline.set_state(gst::State::Null);
                    return Err(ComposeError::Pipeline(e.error().to_string()));
                }
                _ => {}
            }
        }
        let _ = pipeline.set_state(gst::State::Null);
        let _ = feeder.join();
    }
    Ok(levels)
}

mod glib_list {
    pub use gstreamer::glib::ValueArray;
}

/// The AAC encoder starts with 1024 samples of priming, and GStreamer 1.22's mp4mux writes
/// no edit list to skip them: without this, players hear everything 21.3 ms late (measured:
/// the composite's flash/beep offset moves by exactly that much between WebM and MP4).
fn compensate_aac_priming(encoder: &gst::Element) {
    if encoder.factory().is_some_and(|f| f.name() == "avenc_aac") {
        if let Some(pad) = encoder.static_pad("src") {
            pad.set_offset(-(1024 * 1_000_000_000i64 / 48_000));
        }
    }
}

/// A queue of a few buffers: each branch gets its own thread, and decoded pictures do not
/// pile up (a default queue holds a second of raw video per participant).
fn small_queue() -> Result<gst::Element, ComposeError> {
    let q = make("queue")?;
    q.set_property("max-size-buffers", 8u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// `property` of a pad or element set to each value from its time (output ms) on.
fn controlled(
    object: &impl IsA<gst::Object>,
    property: &str,
    values: &[(i64, f64)],
) -> Result<(), ComposeError> {
    let cs = gst_controller::InterpolationControlSource::new();
    cs.set_mode(gst_controller::InterpolationMode::None);
    for &(ms, v) in values {
        cs.set(gst::ClockTime::from_mseconds(ms.max(0) as u64), v);
    }
    let binding = gst_controller::DirectControlBinding::new_absolute(object, property, &cs);
    object.add_control_binding(&binding).map_err(gst_err)?;
    Ok(())
}

fn text_overlay(
    text: &str,
    valign: &str,
    halign: &str,
    font: &str,
) -> Result<gst::Element, ComposeError> {
    let t = make("textoverlay")?;
    t.set_property("text", text);
    t.set_property_from_str("valignment", valign);
    t.set_property_from_str("halignment", halign);
    t.set_property("font-desc", font);
    // The font's size is what it says, at every output size (auto-resize would scale it
    // again, relative to a 640-wide picture).
    t.set_property("auto-resize", false);
    t.set_property("shaded-background", true);
    Ok(t)
}

/// The name of `source`, at its tile's bottom-left in every scene and hidden where it has
/// no tile.
fn label(
    name: &str,
    source: &str,
    scenes: &[Scene],
    look: &Look,
    height: i32,
) -> Result<gst::Element, ComposeError> {
    let t = text_overlay(name, "bottom", "left", &look.font())?;
    t.set_property("xpad", 0i32);
    t.set_property("ypad", 0i32);
    let (mut dx, mut dy, mut silent) = (Vec::new(), Vec::new(), Vec::new());
    for scene in scenes {
        match scene.tiles.iter().position(|t| t.source == source) {
            Some(i) => {
                let (x, bottom) = look.label_anchor(&scene.tiles, i);
                dx.push((scene.from_ms, x as f64));
                dy.push((scene.from_ms, (bottom - height) as f64));
                silent.push((scene.from_ms, 0.0));
            }
            None => silent.push((scene.from_ms, 1.0)),
        }
    }
    if dx.is_empty() {
        t.set_property("silent", true);
        return Ok(t);
    }
    controlled(&t, "deltax", &dx)?;
    controlled(&t, "deltay", &dy)?;
    controlled(&t, "silent", &silent)?;
    Ok(t)
}

/// Renders `job` to `job.path`. Blocking; meant for the `reel render` child process.
pub fn render(job: &Job) -> Result<Rendered, ComposeError> {
    gst::init().map_err(gst_err)?;
    let timeline = &job.timeline;
    let duration_us = timeline.duration_us();
    if duration_us <= 0 {
        return Err(ComposeError::Input("the recording has no duration".into()));
    }
    // Every journal's first pass, side by side (a minute of video is tens of MB to read).
    // An audio-only output reads no video.
    let with_video = matches!(job.output, Output::Video(_));
    let journals: Vec<(usize, &Path, MediaKind)> = job
        .participants
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let video = p.video.as_deref().filter(|_| with_video);
            let video = video.map(|v| (i, v, MediaKind::Video));
            video
                .into_iter()
                .chain(p.audio.as_deref().map(|a| (i, a, MediaKind::Audio)))
        })
        .collect();
    let infos = std::thread::scope(|scope| {
        let passes: Vec<_> = journals
            .iter()
            .map(|(_, path, _)| scope.spawn(|| track_info(path, timeline)))
            .collect();
        passes
            .into_iter()
            .map(|p| p.join().expect("a first pass panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut videos: Vec<(usize, TrackInfo)> = Vec::new();
    let mut audios: Vec<(usize, TrackInfo)> = Vec::new();
    for ((i, _, wanted), info) in journals.into_iter().zip(infos) {
        match info {
            Some(info) if info.kind != wanted => {}
            Some(info) if wanted == MediaKind::Video && info.dims.is_some() => {
                videos.push((i, info))
            }
            Some(info) if wanted == MediaKind::Audio => audios.push((i, info)),
            _ => {}
        }
    }
    // A movie's sound is stereo, and a participant who sends stereo keeps it; audio-only
    // outputs are mono or one voice per side (dual), so each voice is decoded to mono.
    if with_video {
        audios.iter_mut().for_each(|(_, info)| info.channels = 2);
    }
    if videos.is_empty() && audios.is_empty() {
        return Err(ComposeError::Input(
            "no participant has any media in the recording".into(),
        ));
    }
    // Each participant's audio and video in sync with each other (sender reports), all
    // participants on the receiver's clock.
    for i in 0..job.participants.len() {
        let v = videos.iter().position(|(j, _)| *j == i);
        let a = audios.iter().position(|(j, _)| *j == i);
        let mut plans = Vec::new();
        if let Some(v) = v {
            plans.push(&videos[v].1.plan);
        }
        if let Some(a) = a {
            plans.push(&audios[a].1.plan);
        }
        let mut anchors = remux::receiver_anchors(&plans).into_iter();
        if let Some(v) = v {
            videos[v].1.anchor = anchors.next().flatten();
        }
        if let Some(a) = a {
            audios[a].1.anchor = anchors.next().flatten();
        }
    }
    let pipeline = gst::Pipeline::new();
    let mut feeders = Vec::new();
    let mut rendered = Rendered {
        duration_ms: duration_us / 1000,
        scenes: 0,
        speaker_changes: 0,
    };

    // ---- audio mix ----
    let (mono, pan_left) = match &job.output {
        Output::Audio {
            channels: Channels::Dual { left },
            ..
        } => (false, Some(left.clone())),
        Output::Audio { .. } => (true, None),
        Output::Video(_) => (false, None),
    };
    let mixer = make("audiomixer")?;
    // 100 ms blocks: the mix's cost is per block, and nothing here is live.
    mixer.set_property("output-buffer-duration", 100_000_000u64);
    pipeline.add(&mixer).map_err(gst_err)?;
    // 1/N (per side in dual): a sum that cannot clip, however loud everyone is at once.
    let on_left = |i: usize| {
        pan_left
            .as_ref()
            .is_some_and(|l| job.participants[i].participant == *l)
    };
    let left_count = audios.iter().filter(|(i, _)| on_left(*i)).count();
    for (i, info) in &audios {
        let side_count = match &pan_left {
            Some(_) if on_left(*i) => left_count,
            Some(_) => audios.len() - left_count,
            None => audios.len(),
        };
        let gain = 1.0 / side_count.max(1) as f64;
        let src = appsrc(info);
        let mut chain: Vec<gst::Element> = vec![src.clone().upcast()];
        chain.extend(decoder(info.codec)?);
        chain.push(make("audioconvert")?);
        chain.push(make("audioresample")?);
        if let Some(left) = &pan_left {
            let pan = make("audiopanorama")?;
            pan.set_property_from_str("method", "simple");
            let side = if job.participants[*i].participant == *left {
                -1.0f32
            } else {
                1.0
            };
            pan.set_property("panorama", side);
            chain.push(pan);
        }
        let vol = make("volume")?;
        vol.set_property("volume", gain);
        chain.push(vol);
        // 100 ms buffers into the mixer instead of 20 ms packets: each buffer handed to the
        // mixer wakes its thread, and those wake-ups were a third of an audio mix's time.
        let split = make("audiobuffersplit")?;
        split.set_property("output-buffer-duration", gst::Fraction::new(1, 10));
        chain.push(split);
        pipeline.add_many(chain.iter()).map_err(gst_err)?;
        gst::Element::link_many(chain.iter()).map_err(gst_err)?;
        chain.last().expect("chain").link(&mixer).map_err(gst_err)?;
        feeders.push(feed(src, info, timeline.clone()));
    }
    // An mp3 is made at the call's own rate (the highest of its voices: 8 kHz for G.711,
    // 16 kHz for G.722, 48 kHz for Opus): a telephone call resampled to 48 kHz is six times
    // the samples and no better to hear. Other outputs keep 48 kHz.
    let rate = match &job.output {
        Output::Audio {
            format: AudioFormat::Mp3,
            ..
        } => audios
            .iter()
            .filter_map(|(_, info)| info.codec.sample_rate())
            .max()
            .unwrap_or(48_000),
        _ => 48_000,
    };
    {
        // Silence for the whole timeline: the mix lasts as long as the recording, however
        // late the first voice starts or early the last one stops.
        let silence = make("audiotestsrc")?;
        silence.set_property_from_str("wave", "silence");
        silence.set_property("num-buffers", (duration_us / 100_000) as i32 + 1);
        // 100 ms buffers at the mix's rate.
        silence.set_property("samplesperbuffer", (rate / 10) as i32);
        pipeline.add(&silence).map_err(gst_err)?;
        silence.link(&mixer).map_err(gst_err)?;
    }
    let mix_caps = make("capsfilter")?;
    mix_caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", rate as i32)
            .field("channels", if mono { 1i32 } else { 2 })
            .build(),
    );
    let aconv = make("audioconvert")?;
    pipeline.add_many([&mix_caps, &aconv]).map_err(gst_err)?;
    gst::Element::link_many([&mixer, &mix_caps, &aconv]).map_err(gst_err)?;

    let sink = make("filesink")?;
    sink.set_property("location", job.path.to_string_lossy().to_string());
    pipeline.add(&sink).map_err(gst_err)?;

    match &job.output {
        Output::Audio {
            format,
            bitrate_kbps,
            ..
        } => {
            let tail: Vec<gst::Element> = match format {
                AudioFormat::Mp3 => {
                    let enc = make("lamemp3enc")?;
                    enc.set_property_from_str("target", "bitrate");
                    let kbps = bitrate_kbps.unwrap_or_else(|| speech_kbps(rate, !mono));
                    enc.set_property("bitrate", kbps as i32);
                    enc.set_property("cbr", true);
                    // Speech: LAME's fast engine is transparent enough and about twice as fast.
                    enc.set_property_from_str("encoding-engine-quality", "fast");
                    vec![enc]
                }
                AudioFormat::Wav => {
                    // 16-bit PCM, what every player and speech engine reads (the mix
                    // itself is float).
                    let s16 = make("capsfilter")?;
                    s16.set_property(
                        "caps",
                        gst::Caps::builder("audio/x-raw")
                            .field("format", "S16LE")
                            .build(),
                    );
                    vec![s16, make("wavenc")?]
                }
                AudioFormat::Ogg => vec![make("opusenc")?, make("oggmux")?],
                AudioFormat::M4a => {
                    let enc = make("avenc_aac")?;
                    compensate_aac_priming(&enc);
                    vec![enc, make("aacparse")?, make("mp4mux")?]
                }
            };
            // The encoder in a thread of its own, beside the mixer's.
            let queue = make("queue")?;
            pipeline.add(&queue).map_err(gst_err)?;
            pipeline.add_many(tail.iter()).map_err(gst_err)?;
            let mut all = vec![aconv.clone(), queue];
            all.extend(tail);
            all.push(sink.clone());
            gst::Element::link_many(all.iter()).map_err(gst_err)?;
        }
        Output::Video(v) => {
            let (mux, aenc): (gst::Element, Vec<gst::Element>) = match v.format {
                VideoFormat::Mp4 => {
                    let m = make("mp4mux")?;
                    m.set_property("faststart", true);
                    (m, vec![make("avenc_aac")?, make("aacparse")?])
                }
                VideoFormat::Webm => (make("webmmux")?, vec![make("opusenc")?]),
            };
            pipeline.add(&mux).map_err(gst_err)?;
            pipeline.add_many(aenc.iter()).map_err(gst_err)?;
            let mut achain = vec![aconv.clone()];
            achain.extend(aenc);
            gst::Element::link_many(achain.iter()).map_err(gst_err)?;
            compensate_aac_priming(&achain[1]);
            achain
                .last()
                .expect("encoder")
                .link(&mux)
                .map_err(gst_err)?;
            mux.link(&sink).map_err(gst_err)?;
            let scenes = video_branch(
                &pipeline,
                job,
                v,
                &videos,
                &audios,
                &mux,
                &mut feeders,
                &mut rendered,
            )?;
            rendered.scenes = scenes;
        }
    }

    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    // Generous: rendering runs far faster than real time; a stall is an error.
    let limit = gst::ClockTime::from_seconds(120 + (duration_us / 1_000_000) as u64 * 4);
    let mut result = Err(ComposeError::Pipeline("the render timed out".into()));
    for msg in bus.iter_timed(limit) {
        match msg.view() {
            gst::MessageView::Eos(..) => {
                result = Ok(());
                break;
            }
            gst::MessageView::Error(e) => {
                result = Err(ComposeError::Pipeline(format!(
                    "{} ({})",
                    e.error(),
                    e.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default()
                )));
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    for f in feeders {
        let _ = f.join();
    }
    result?;
    // The asset's duration is the file's, as a player reads it: the encoders' last frame
    // and padding make it 30–300 ms longer than the timeline.
    if let Some(ms) = file_duration_ms(&job.path) {
        rendered.duration_ms = ms;
    }
    Ok(rendered)
}

/// The duration a player reads from the file: an mp3's frames counted (GStreamer estimates
/// a stream without a Xing header), anything else prerolled with fake sinks, not played.
fn file_duration_ms(path: &std::path::Path) -> Option<i64> {
    if path.extension().is_some_and(|e| e == "mp3") {
        return reel_media::mp3::duration_us(&std::fs::read(path).ok()?).map(|us| us / 1000);
    }
    let uri = gst::glib::filename_to_uri(path, None).ok()?;
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", uri.as_str())
        .build()
        .ok()?;
    for sink in ["audio-sink", "video-sink"] {
        playbin.set_property(sink, gst::ElementFactory::make("fakesink").build().ok()?);
    }
    playbin.set_state(gst::State::Paused).ok()?;
    let bus = playbin.bus()?;
    let mut duration = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(10)) {
        match msg.view() {
            gst::MessageView::AsyncDone(..) => {
                duration = playbin.query_duration::<gst::ClockTime>();
                break;
            }
            gst::MessageView::Error(_) | gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let _ = playbin.set_state(gst::State::Null);
    duration.map(|d| d.mseconds() as i64)
}

#[allow(clippy::too_many_arguments)]
fn video_branch(
    pipeline: &gst::Pipeline,
    job: &Job,
    v: &VideoSettings,
    videos: &[(usize, TrackInfo)],
    audios: &[(usize, TrackInfo)],
    mux: &gst::Element,
    feeders: &mut Vec<std::thread::JoinHandle<()>>,
    rendered: &mut Rendered,
) -> Result<usize, ComposeError> {
    let duration_us = job.timeline.duration_us();
    let look = Look::for_height(v.height);
    let canvas = look.layout_canvas(v.width, v.height, v.rec_badge);
    // Sources: every video track; participants with audio only get a name tile.
    let mut sources: Vec<Source> = videos
        .iter()
        .map(|(i, info)| {
            let p = &job.participants[*i];
            Source {
                id: p.id.clone(),
                participant: p.participant.clone(),
                kind: p.kind,
                from_ms: info.from_ms,
                to_ms: info.to_ms,
                aspect: info.dims.unwrap_or((16, 9)),
            }
        })
        .collect();
    for (i, info) in audios {
        let p = &job.participants[*i];
        if !videos
            .iter()
            .any(|(j, _)| job.participants[*j].participant == p.participant)
        {
            sources.push(Source {
                id: format!("{}-audio", p.id),
                participant: p.participant.clone(),
                kind: SourceKind::AudioOnly,
                from_ms: info.from_ms,
                to_ms: info.to_ms,
                aspect: (16, 9),
            });
        }
    }
    let needs_speaker = v
        .layouts
        .iter()
        .any(|(_, l)| matches!(l, Layout::ActiveSpeaker { .. }))
        || sources.len() > layout::MAX_GRID_TILES;
    let mut speakers: Vec<(i64, String)> = Vec::new();
    if needs_speaker && !audios.is_empty() {
        let steps = (duration_us / 100_000) as usize + 1;
        let levels = speaker_levels(audios, &job.timeline, steps)?;
        for c in crate::speaker::speaker_changes(&levels, 100, 1500) {
            speakers.push((
                c.at_ms,
                job.participants[audios[c.speaker].0].participant.clone(),
            ));
        }
    }
    rendered.speaker_changes = speakers.len();
    let scenes = layout::scenes(canvas, &sources, &speakers, &v.layouts);

    let comp = make("compositor")?;
    comp.set_property_from_str("background", "black");
    pipeline.add(&comp).map_err(gst_err)?;
    // The background: a solid colour for the whole duration, which also sets the output's length.
    let frames = (duration_us * v.fps as i64 / 1_000_000) as i32 + 1;
    let bg = make("videotestsrc")?;
    bg.set_property_from_str("pattern", "solid-color");
    bg.set_property("foreground-color", 0xff00_0000u32 | v.background);
    bg.set_property("num-buffers", frames);
    let bg_caps = make("capsfilter")?;
    bg_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", v.width)
            .field("height", v.height)
            .field("framerate", gst::Fraction::new(v.fps, 1))
            .build(),
    );
    pipeline.add_many([&bg, &bg_caps]).map_err(gst_err)?;
    gst::Element::link_many([&bg, &bg_caps]).map_err(gst_err)?;
    let bg_pad = comp.request_pad_simple("sink_%u").expect("compositor pads");
    bg_pad.set_property("zorder", 0u32);
    bg_caps
        .static_pad("src")
        .expect("src")
        .link(&bg_pad)
        .map_err(gst_err)?;

    for source in &sources {
        // Its place in every scene: hidden (alpha 0) where it has no tile.
        let mut props: [Vec<(i64, f64)>; 6] = Default::default();
        for scene in &scenes {
            let t = scene.tiles.iter().find(|t| t.source == source.id);
            let (r, z, a) = match t {
                Some(t) => (t.rect, t.z, 1.0),
                None => (Rect::new(0, 0, 16, 16), 0, 0.0),
            };
            for (k, val) in [
                r.x as f64,
                r.y as f64,
                r.width as f64,
                r.height as f64,
                (z + 1) as f64,
                a,
            ]
            .into_iter()
            .enumerate()
            {
                props[k].push((scene.from_ms, val));
            }
        }
        let pad = comp.request_pad_simple("sink_%u").expect("compositor pads");
        // The tile is fitted to the first picture's aspect; a resolution change mid-stream
        // letterboxes inside it rather than stretching.
        pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
        for (k, name) in ["xpos", "ypos", "width", "height", "zorder", "alpha"]
            .iter()
            .enumerate()
        {
            controlled(&pad, name, &props[k])?;
        }
        let mut chain: Vec<gst::Element> = Vec::new();
        if source.kind == SourceKind::AudioOnly {
            let card = make("videotestsrc")?;
            card.set_property_from_str("pattern", "solid-color");
            card.set_property("foreground-color", 0xff40_4040u32);
            card.set_property("num-buffers", frames);
            let caps = make("capsfilter")?;
            caps.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", 640i32)
                    .field("height", 360i32)
                    .field("framerate", gst::Fraction::new(v.fps, 1))
                    .build(),
            );
            chain.extend([card, caps]);
        } else {
            let (i, info) = videos
                .iter()
                .find(|(i, _)| job.participants[*i].id == source.id)
                .expect("video sources come from video tracks");
            let _ = i;
            let src = appsrc(info);
            chain.push(src.clone().upcast());
            chain.extend(decoder(info.codec)?);
            chain.push(make("videoconvert")?);
            feeders.push(feed(src, info, job.timeline.clone()));
        }
        chain.push(small_queue()?);
        pipeline.add_many(chain.iter()).map_err(gst_err)?;
        gst::Element::link_many(chain.iter()).map_err(gst_err)?;
        chain
            .last()
            .expect("chain")
            .static_pad("src")
            .expect("src")
            .link(&pad)
            .map_err(gst_err)?;
    }

    let out_caps = make("capsfilter")?;
    // I420 end to end: what the decoders give and the encoder takes, no conversion between.
    out_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", v.width)
            .field("height", v.height)
            .field("framerate", gst::Fraction::new(v.fps, 1))
            .build(),
    );
    let mut chain = vec![comp.clone(), out_caps];
    if v.rec_badge {
        let badge = text_overlay("● REC", "top", "left", &look.font())?;
        badge.set_property("xpad", look.margin);
        badge.set_property("ypad", look.margin);
        chain.push(badge);
    }
    // Names are drawn on the finished picture, at the output's scale: a name drawn on the
    // source before scaling shrank with its tile (unreadable in a thumbnail).
    for source in &sources {
        // An audio-only card is nothing but its name; a camera's name is optional.
        if !(v.labels || source.kind == SourceKind::AudioOnly) {
            continue;
        }
        let name = job
            .participants
            .iter()
            .find(|p| source.id == p.id || source.id == format!("{}-audio", p.id))
            .map(|p| p.name.as_str())
            .unwrap_or_default();
        if !name.is_empty() {
            chain.push(label(name, &source.id, &scenes, &look, v.height)?);
        }
    }
    chain.push(make("videoconvert")?);
    match v.format {
        VideoFormat::Mp4 => {
            let enc = make("x264enc")?;
            enc.set_property("bitrate", v.bitrate_kbps);
            enc.set_property_from_str("speed-preset", "veryfast");
            // Average bitrate, as `ffmpeg -b:v`: x264enc's default is CBR with a 600 ms VBV,
            // which costs quality; a 10 s buffer leaves the rate control free. (Its "pass1"
            // would write a stats file into the working directory.) And the preset's
            // B-frames: x264enc's own default is none.
            enc.set_property("vbv-buf-capacity", 10_000u32);
            enc.set_property("bframes", 3u32);
            enc.set_property("key-int-max", (v.fps * 2) as u32);
            let profile = make("capsfilter")?;
            profile.set_property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("profile", "high")
                    .build(),
            );
            chain.extend([enc, profile, make("h264parse")?]);
        }
        VideoFormat::Webm => {
            let enc = make("vp8enc")?;
            enc.set_property("target-bitrate", (v.bitrate_kbps * 1000) as i32);
            enc.set_property("deadline", 1i64);
            enc.set_property("cpu-used", 8i32);
            enc.set_property("keyframe-max-dist", v.fps * 2);
            chain.push(enc);
        }
    }
    pipeline.add_many(chain[1..].iter()).map_err(gst_err)?;
    gst::Element::link_many(chain.iter()).map_err(gst_err)?;
    chain.last().expect("encoder").link(mux).map_err(gst_err)?;
    Ok(scenes.len())
}

/// How long a job may run before it is considered stuck (for the parent process).
pub fn time_limit(timeline: &Timeline) -> Duration {
    Duration::from_secs(180 + (timeline.duration_us() / 1_000_000) as u64 * 4)
}
