//! Journals → one playable file, without transcoding: WebM for VP8/VP9 (and audio only),
//! MP4 for H.264, the containers browsers play those codecs in.
//!
//! Timing is the heart of it. Each frame carries its RTP timestamp and its arrival time;
//! each track may carry RTCP sender reports. Lip sync needs audio and video on one clock:
//! - when every track has a sender report, frames are placed on the *sender's* wall clock
//!   (the report maps RTP time to NTP time, and one sender has one clock);
//! - otherwise on the receiver's clock: a track's RTP clock is anchored where
//!   `arrival − rtp/clock_rate` is smallest, i.e. at the frame that met the least network and
//!   reassembly delay, which jitter cannot push earlier.
//!
//! Video starts at its first keyframe and, after packet loss, resumes at the next keyframe:
//! the picture freezes rather than showing a corrupted frame.

use crate::codec::{self, Dimensions};
use crate::h264;
use crate::journal::{flags, JournalHeader, JournalReader, Record};
use crate::mp4::Mp4Writer;
use crate::pcm::PcmDecoder;
use crate::webm::{TrackSpec, WebmWriter};
use crate::{MediaError, Result};
use reel_core::{Codec, MediaKind};
use serde::Serialize;
use std::io::{Read, Seek, Write};

/// A linear map from a track's extended RTP time to microseconds on some wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub rtp: u64,
    pub unix_us: i64,
}

impl Anchor {
    pub fn to_us(self, rtp: u64, clock_rate: u32) -> i64 {
        let delta = rtp as i128 - self.rtp as i128;
        self.unix_us + (delta * 1_000_000 / clock_rate.max(1) as i128) as i64
    }
}

/// What the first pass learns about one journal.
#[derive(Debug, Clone)]
pub struct TrackPlan {
    pub header: JournalHeader,
    pub frames: u64,
    /// Receiver-clock anchor (least-delay frame).
    pub arrival_anchor: Option<Anchor>,
    /// Sender-clock anchor from the first sender report.
    pub sender_anchor: Option<Anchor>,
    pub first_keyframe_dims: Option<Dimensions>,
    /// H.264's `avcC`, from the first keyframe carrying SPS and PPS.
    pub h264_config: Option<Vec<u8>>,
    pub first_rtp: Option<u64>,
    pub last_rtp: Option<u64>,
}

pub fn analyze<R: Read>(input: R) -> Result<TrackPlan> {
    let mut reader = JournalReader::open(input)?;
    let header = reader.header().clone();
    let clock = header.clock_rate.max(1) as i128;
    let mut plan = TrackPlan {
        header: header.clone(),
        frames: 0,
        arrival_anchor: None,
        sender_anchor: None,
        first_keyframe_dims: None,
        h264_config: None,
        first_rtp: None,
        last_rtp: None,
    };
    let mut best_offset: Option<i64> = None;
    let mut pending_sr: Option<(u32, i64)> = None;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Frame {
                rtp_time,
                arrival_unix_us,
                flags,
                data,
            } => {
                plan.frames += 1;
                plan.first_rtp.get_or_insert(rtp_time);
                plan.last_rtp = Some(rtp_time);
                let offset = arrival_unix_us - (rtp_time as i128 * 1_000_000 / clock) as i64;
                if best_offset.is_none_or(|b| offset < b) {
                    best_offset = Some(offset);
                    plan.arrival_anchor = Some(Anchor {
                        rtp: rtp_time,
                        unix_us: arrival_unix_us,
                    });
                }
                if plan.first_keyframe_dims.is_none() && flags & flags::KEYFRAME != 0 {
                    plan.first_keyframe_dims = codec::keyframe_dimensions(header.codec, &data);
                }
                if header.codec == Codec::H264 && plan.h264_config.is_none() {
                    plan.h264_config =
                        h264::parameter_sets(&data).and_then(|(sps, pps)| h264::avcc(&sps, &pps));
                }
                if let Some((sr_rtp, ntp)) = pending_sr.take() {
                    if plan.sender_anchor.is_none() {
                        // Extend the report's 32-bit timestamp with this frame's high bits.
                        let diff = (rtp_time as u32).wrapping_sub(sr_rtp) as i32 as i64;
                        let sr_ext = (rtp_time as i64 - diff).max(0) as u64;
                        plan.sender_anchor = Some(Anchor {
                            rtp: sr_ext,
                            unix_us: ntp,
                        });
                    }
                }
            }
            Record::SenderReport {
                rtp_time,
                ntp_unix_us,
            } => {
                pending_sr.get_or_insert((rtp_time, ntp_unix_us));
            }
            _ => {}
        }
    }
    Ok(plan)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemuxReport {
    /// Wall-clock (receiver) time of the first sample in the file.
    pub start_unix_us: i64,
    pub duration_ms: f64,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Video frames left out because they could not be decoded cleanly.
    pub skipped_frames: u64,
    pub width: Option<u16>,
    pub height: Option<u16>,
    /// Which clock lined the tracks up: "sender_report" or "arrival".
    pub sync: &'static str,
    /// "webm" or "mp4": also the file extension.
    pub container: &'static str,
    /// Pauses cut out of the output.
    pub pauses: Vec<PauseMarker>,
}

/// One muxer or the other, behind one `write_frame`.
enum Sink<W: Write + Seek> {
    Webm(WebmWriter<W>),
    Mp4(Mp4Writer<W>),
}

impl<W: Write + Seek> Sink<W> {
    fn write_frame(&mut self, track: u8, ts_us: i64, keyframe: bool, data: &[u8]) -> Result<()> {
        match self {
            Sink::Webm(w) => w.write_frame(track, ts_us / 1000, keyframe, data),
            Sink::Mp4(w) => w.write_frame(track, ts_us, keyframe, data),
        }
    }
    fn finish(self, duration_ms: f64) -> Result<W> {
        match self {
            Sink::Webm(w) => w.finish(duration_ms),
            Sink::Mp4(w) => w.finish((duration_ms * 1000.0) as i64),
        }
    }
}

struct Input<R: Read> {
    reader: JournalReader<R>,
    plan: TrackPlan,
    anchor: Anchor,
    track_number: u8,
    next: Option<(i64, u8, Vec<u8>)>,
    waiting_for_keyframe: bool,
    last_ts: Option<i64>,
    intervals: (u64, i64),
    window: Window,
    /// Paused time seen so far, cut out of every later frame's timestamp.
    cut_us: i64,
    paused_at: Option<i64>,
    pauses: Vec<PauseMarker>,
    /// When the publication ended (its End record): a pause still open then ended there.
    ended_at: Option<i64>,
    /// A pause or the window's start broke the decoding chain.
    resumed: bool,
    /// SIP audio is written decoded.
    pcm: Option<PcmDecoder>,
}

/// Which part of a journal belongs to the output, by arrival (Unix µs): a recording's
/// start and stop. Frames outside are left out like paused ones.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub from_unix_us: Option<i64>,
    pub to_unix_us: Option<i64>,
}

impl Window {
    fn contains(&self, t: i64) -> bool {
        self.from_unix_us.is_none_or(|f| t >= f) && self.to_unix_us.is_none_or(|e| t <= e)
    }
}

/// A pause in the capture: absent from the output, listed in its metadata.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PauseMarker {
    pub paused_at_unix_ms: i64,
    pub resumed_at_unix_ms: Option<i64>,
    /// Where in the output the two sides of the pause meet, in ms.
    pub at_ms: i64,
}

impl<R: Read> Input<R> {
    /// Next frame as (µs on the chosen clock less paused time, flags, data).
    fn advance(&mut self) -> Result<()> {
        self.next = None;
        while let Some(record) = self.reader.next_record()? {
            match record {
                Record::Frame {
                    rtp_time,
                    flags,
                    data,
                    arrival_unix_us,
                } => {
                    if self.paused_at.is_some() || !self.window.contains(arrival_unix_us) {
                        continue;
                    }
                    let us = self.anchor.to_us(rtp_time, self.plan.header.clock_rate) - self.cut_us;
                    let mut flags = flags;
                    if std::mem::take(&mut self.resumed) {
                        flags |= flags::DISCONTINUITY;
                    }
                    self.next = Some((us, flags, data));
                    return Ok(());
                }
                Record::Pause { at_unix_us } => {
                    self.paused_at.get_or_insert(at_unix_us);
                }
                Record::Resume { at_unix_us } => {
                    if let Some(paused) = self.paused_at.take() {
                        let gap = (at_unix_us - paused).max(0);
                        self.cut_us += gap;
                        self.resumed = true;
                        self.pauses.push(PauseMarker {
                            paused_at_unix_ms: paused / 1000,
                            resumed_at_unix_ms: Some(at_unix_us / 1000),
                            at_ms: self.last_ts.unwrap_or(0) / 1000,
                        });
                    }
                }
                Record::End { at_unix_us } => self.ended_at = Some(at_unix_us),
                _ => {}
            }
        }
        if let Some(paused) = self.paused_at.take() {
            // Stopped while paused: the pause ends at the stop (the recording's window, or
            // the publication's end), not never.
            let stopped = self
                .window
                .to_unix_us
                .or(self.ended_at)
                .map(|t| t.max(paused));
            let at_ms = self.last_ts.unwrap_or(0) / 1000;
            self.pauses.push(PauseMarker {
                paused_at_unix_ms: paused / 1000,
                resumed_at_unix_ms: stopped.map(|t| t / 1000),
                at_ms,
            });
        }
        Ok(())
    }
}

/// Orders video tracks: decodable first, then by picture area, then by frame count.
fn video_rank(plan: &TrackPlan) -> (bool, u32, u64) {
    let area = plan
        .first_keyframe_dims
        .map(|d| d.width as u32 * d.height as u32);
    (area.is_some(), area.unwrap_or(0), plan.frames)
}

/// Muxes one video track (optional) and one audio track (optional) into one file.
/// `tracks` pairs each first-pass plan with a fresh reader of the same journal.
pub fn remux<R: Read, W: Write + Seek>(
    tracks: Vec<(TrackPlan, JournalReader<R>)>,
    out: W,
) -> Result<(W, RemuxReport)> {
    remux_window(tracks, Window::default(), out)
}

/// `remux` restricted to `window`, for one recording among several in a session.
pub fn remux_window<R: Read, W: Write + Seek>(
    tracks: Vec<(TrackPlan, JournalReader<R>)>,
    window: Window,
    out: W,
) -> Result<(W, RemuxReport)> {
    let mut video: Option<(TrackPlan, JournalReader<R>)> = None;
    let mut audio = None;
    for (plan, reader) in tracks {
        if plan.frames == 0 {
            continue;
        }
        match plan.header.kind {
            // Simulcast layers are separate video tracks: keep the largest picture.
            MediaKind::Video => {
                if video
                    .as_ref()
                    .is_none_or(|(best, _)| video_rank(&plan) > video_rank(best))
                {
                    video = Some((plan, reader));
                }
            }
            MediaKind::Audio => {
                if audio.is_none() {
                    audio = Some((plan, reader));
                }
            }
        }
    }
    if video.is_none() && audio.is_none() {
        return Err(MediaError::Remux("no media was captured".into()));
    }
    if let Some((plan, _)) = &video {
        if plan.first_keyframe_dims.is_none() {
            // Without a keyframe nothing can be decoded; keep the audio rather than fail.
            video = None;
            if audio.is_none() {
                return Err(MediaError::Remux("video never had a keyframe".into()));
            }
        }
    }
    let all: Vec<&TrackPlan> = video.iter().chain(audio.iter()).map(|(p, _)| p).collect();
    let use_sender = all.iter().all(|p| p.sender_anchor.is_some());
    let mut specs = Vec::new();
    let mut inputs: Vec<Input<R>> = Vec::new();
    for (plan, reader) in video.into_iter().chain(audio) {
        let anchor = if use_sender {
            plan.sender_anchor
        } else {
            plan.arrival_anchor
        }
        .expect("tracks with frames have an anchor");
        specs.push(match plan.header.kind {
            MediaKind::Video => {
                let d = plan.first_keyframe_dims.expect("checked above");
                TrackSpec::Video {
                    codec: plan.header.codec,
                    width: d.width,
                    height: d.height,
                    config: plan.h264_config.clone(),
                }
            }
            MediaKind::Audio => TrackSpec::Audio {
                codec: plan.header.codec,
                sample_rate: PcmDecoder::for_codec(plan.header.codec)
                    .map_or(plan.header.clock_rate, |d| d.sample_rate()),
                // WebRTC's Opus is always declared stereo; SIP's codecs are mono.
                channels: if plan.header.codec == Codec::Opus {
                    2
                } else {
                    1
                },
            },
        });
        let mut input = Input {
            pcm: PcmDecoder::for_codec(plan.header.codec),
            reader,
            track_number: specs.len() as u8,
            waiting_for_keyframe: plan.header.kind == MediaKind::Video,
            plan,
            anchor,
            next: None,
            last_ts: None,
            intervals: (0, 0),
            window,
            cut_us: 0,
            paused_at: None,
            pauses: Vec::new(),
            ended_at: None,
            resumed: false,
        };
        input.advance()?;
        inputs.push(input);
    }
    let origin_us = inputs
        .iter()
        .filter_map(|i| i.next.as_ref().map(|n| n.0))
        .min()
        .unwrap_or(0);
    let start_unix_us = inputs
        .iter()
        .filter_map(|i| {
            let first = i.plan.first_rtp?;
            let arrival = i.plan.arrival_anchor?;
            Some(arrival.to_us(first, i.plan.header.clock_rate))
        })
        .min()
        .unwrap_or(0);

    let is_h264 = specs.iter().any(|s| {
        matches!(
            s,
            TrackSpec::Video {
                codec: reel_core::Codec::H264,
                ..
            }
        )
    });
    let pcm = specs.iter().any(TrackSpec::is_pcm);
    // MP4 for H.264 (browsers play it), unless the audio is PCM, which browsers do not
    // play from MP4: then Matroska.
    let mp4 = is_h264 && !pcm;
    let mut writer = if mp4 {
        Sink::Mp4(Mp4Writer::new(out, &specs)?)
    } else {
        Sink::Webm(WebmWriter::new(out, &specs)?)
    };
    let has_video = specs.iter().any(|s| matches!(s, TrackSpec::Video { .. }));
    let container = match (mp4, pcm, has_video) {
        (true, _, _) => "mp4",
        (false, true, true) => "mkv",
        (false, true, false) => "mka",
        (false, false, _) => "webm",
    };
    let mut report = RemuxReport {
        start_unix_us,
        duration_ms: 0.0,
        video_frames: 0,
        audio_frames: 0,
        skipped_frames: 0,
        width: None,
        height: None,
        sync: if use_sender {
            "sender_report"
        } else {
            "arrival"
        },
        container,
        pauses: Vec::new(),
    };
    let mut end_ms: f64 = 0.0;
    // k-way merge: always the input whose next frame is earliest.
    while let Some(idx) = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| input.next.as_ref().map(|n| (n.0, i)))
        .min()
        .map(|(_, i)| i)
    {
        let input = &mut inputs[idx];
        let (us, flags, data) = input.next.take().expect("chosen input has a frame");
        let kind = input.plan.header.kind;
        let keyframe = match kind {
            MediaKind::Audio => true,
            MediaKind::Video => codec::is_keyframe(input.plan.header.codec, &data),
        };
        if kind == MediaKind::Video {
            if flags & flags::DISCONTINUITY != 0 && !keyframe {
                input.waiting_for_keyframe = true;
            }
            if keyframe {
                input.waiting_for_keyframe = false;
                if let Some(d) = codec::keyframe_dimensions(input.plan.header.codec, &data) {
                    report.width.get_or_insert(d.width);
                    report.height.get_or_insert(d.height);
                }
            }
        }
        let ts_us = us - origin_us;
        let codec = input.plan.header.codec;
        if input.waiting_for_keyframe {
            report.skipped_frames += 1;
        } else {
            let pcm = input
                .pcm
                .as_mut()
                .map(|d| (d.decode(&data), d.sample_rate()));
            let data = pcm.as_ref().map_or(&data[..], |(pcm, _)| &pcm[..]);
            writer.write_frame(input.track_number, ts_us, keyframe, data)?;
            match kind {
                MediaKind::Video => report.video_frames += 1,
                MediaKind::Audio => report.audio_frames += 1,
            }
            // Estimate how long this frame lasts from the track's mean frame interval.
            if let Some(last) = input.last_ts {
                input.intervals.0 += 1;
                input.intervals.1 += us - last;
            }
            input.last_ts = Some(us);
            let frame_us = match (kind, input.intervals) {
                (MediaKind::Audio, _) if codec == Codec::Opus => codec::opus_packet_samples(data)
                    .map(|s| s as i64 * 1_000_000 / 48_000)
                    .unwrap_or(20_000),
                (MediaKind::Audio, _) => match pcm {
                    Some((_, rate)) => data.len() as i64 / 2 * 1_000_000 / rate as i64,
                    None => 20_000,
                },
                (MediaKind::Video, (n, total)) if n > 0 => total / n as i64,
                (MediaKind::Video, _) => 33_333,
            };
            end_ms = end_ms.max((us - origin_us + frame_us) as f64 / 1000.0);
        }
        input.advance()?;
    }
    report.duration_ms = end_ms;
    // Every track saw the same pauses; the one that saw most has them all.
    let origin_ms = origin_us / 1000;
    if let Some(input) = inputs.iter_mut().max_by_key(|i| i.pauses.len()) {
        report.pauses = std::mem::take(&mut input.pauses)
            .into_iter()
            .map(|p| PauseMarker {
                at_ms: (p.at_ms - origin_ms).max(0),
                ..p
            })
            .collect();
    }
    let out = writer.finish(end_ms)?;
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{JournalWriter, Record};
    use reel_core::Codec;
    use std::io::Cursor;

    fn vp8(key: bool) -> Vec<u8> {
        if key {
            vec![
                0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3,
            ]
        } else {
            vec![0x11, 0x02, 0x00, 4, 5, 6]
        }
    }

    fn opus_header() -> JournalHeader {
        JournalHeader {
            track_id: "trk_a".into(),
            publication_id: "pub".into(),
            session_id: "ses".into(),
            room_id: "room".into(),
            participant: "p".into(),
            kind: MediaKind::Audio,
            codec: Codec::Opus,
            clock_rate: 48_000,
            mid: "0".into(),
            rid: None,
            created_unix_us: 0,
        }
    }

    /// 20 ms Opus frames from 0 to 4 s, with capture paused from 0.5 s to 3.5 s.
    fn paused_journal() -> Vec<u8> {
        let mut w = JournalWriter::create(Vec::new(), &opus_header()).unwrap();
        for i in 0..200u64 {
            let t = i as i64 * 20_000;
            if t == 500_000 {
                w.append(&Record::Pause { at_unix_us: t }).unwrap();
            }
            if t == 3_500_000 {
                w.append(&Record::Resume { at_unix_us: t }).unwrap();
            }
            if (500_000..3_500_000).contains(&t) {
                continue; // the capture thread drops frames while paused
            }
            let frame = Record::Frame {
                rtp_time: i * 960,
                arrival_unix_us: t,
                flags: flags::KEYFRAME,
                data: vec![0xfc, 1, 2],
            };
            w.append(&frame).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn paused_time_is_cut_out_and_listed() {
        let j = paused_journal();
        let tracks = vec![(
            analyze(&j[..]).unwrap(),
            JournalReader::open(&j[..]).unwrap(),
        )];
        let (_, report) = remux(tracks, Cursor::new(Vec::new())).unwrap();
        assert_eq!(report.audio_frames, 50);
        assert!(
            (report.duration_ms - 1000.0).abs() < 1.0,
            "{}",
            report.duration_ms
        );
        assert_eq!(
            report.pauses,
            vec![PauseMarker {
                paused_at_unix_ms: 500,
                resumed_at_unix_ms: Some(3500),
                at_ms: 480
            }]
        );
    }

    /// Stopped during a pause: the pause ends at the stop, in the window's case and in the
    /// publication's (its End record).
    #[test]
    fn a_stop_during_a_pause_ends_the_pause_at_the_stop() {
        let mut w = JournalWriter::create(Vec::new(), &opus_header()).unwrap();
        for i in 0..25u64 {
            w.append(&Record::Frame {
                rtp_time: i * 960,
                arrival_unix_us: i as i64 * 20_000,
                flags: flags::KEYFRAME,
                data: vec![0xfc, 1, 2],
            })
            .unwrap();
        }
        w.append(&Record::Pause {
            at_unix_us: 500_000,
        })
        .unwrap();
        w.append(&Record::End {
            at_unix_us: 2_000_000,
        })
        .unwrap();
        let j = w.into_inner();
        let run = |window: Window| {
            let tracks = vec![(
                analyze(&j[..]).unwrap(),
                JournalReader::open(&j[..]).unwrap(),
            )];
            remux_window(tracks, window, Cursor::new(Vec::new()))
                .unwrap()
                .1
                .pauses
        };
        let ended = run(Window {
            from_unix_us: None,
            to_unix_us: None,
        });
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].paused_at_unix_ms, ended[0].resumed_at_unix_ms),
            (500, Some(2000))
        );
        let stopped = run(Window {
            from_unix_us: None,
            to_unix_us: Some(1_200_000),
        });
        assert_eq!(stopped[0].resumed_at_unix_ms, Some(1200));
    }

    #[test]
    fn a_window_keeps_only_its_part() {
        let j = paused_journal();
        let tracks = vec![(
            analyze(&j[..]).unwrap(),
            JournalReader::open(&j[..]).unwrap(),
        )];
        let window = Window {
            from_unix_us: Some(3_500_000),
            to_unix_us: None,
        };
        let (_, report) = remux_window(tracks, window, Cursor::new(Vec::new())).unwrap();
        assert_eq!(report.audio_frames, 25);
        assert!(
            (report.duration_ms - 500.0).abs() < 1.0,
            "{}",
            report.duration_ms
        );
    }

    #[test]
    fn loss_freezes_until_the_next_keyframe_and_first_frames_wait_for_one() {
        let header = JournalHeader {
            track_id: "trk_v".into(),
            publication_id: "pub".into(),
            session_id: "ses".into(),
            room_id: "room".into(),
            participant: "p".into(),
            kind: MediaKind::Video,
            codec: Codec::Vp8,
            clock_rate: 90_000,
            mid: "0".into(),
            rid: None,
            created_unix_us: 0,
        };
        let mut w = JournalWriter::create(Vec::new(), &header).unwrap();
        // 2 delta frames before any keyframe, key at 2, loss before frame 5, key again at 8.
        for i in 0..12u64 {
            let key = i == 2 || i == 8;
            let mut f = if key { flags::KEYFRAME } else { 0 };
            if i == 5 {
                f |= flags::DISCONTINUITY;
            }
            let frame = Record::Frame {
                rtp_time: i * 3000,
                arrival_unix_us: i as i64 * 33_333,
                flags: f,
                data: vp8(key),
            };
            w.append(&frame).unwrap();
        }
        let j = w.into_inner();
        let tracks = vec![(
            analyze(&j[..]).unwrap(),
            JournalReader::open(&j[..]).unwrap(),
        )];
        let (_, report) = remux(tracks, Cursor::new(Vec::new())).unwrap();
        // Skipped: 0, 1 (before the first keyframe) and 5, 6, 7 (after the loss).
        assert_eq!(report.skipped_frames, 5);
        assert_eq!(report.video_frames, 7);
        assert_eq!((report.width, report.height), (Some(320), Some(240)));
    }
}

/// One frame on the receiver's clock, for outputs that put several publishers on one
/// timeline (composites): every publisher's frames are comparable there, whatever their
/// senders' clocks say.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedFrame {
    /// Unix µs of the frame's capture as the receiver saw it (least-delay anchored).
    pub unix_us: i64,
    pub keyframe: bool,
    /// Frames were lost or cut before this one: video must wait for a keyframe.
    pub discontinuity: bool,
    pub data: Vec<u8>,
}

/// The frames of one journal, in order, on the receiver's clock.
pub struct ArrivalFrames<R: Read> {
    reader: JournalReader<R>,
    plan: TrackPlan,
    anchor: Anchor,
    resumed: bool,
}

impl<R: Read> ArrivalFrames<R> {
    /// None when the journal holds no frame.
    pub fn new(plan: TrackPlan, reader: JournalReader<R>) -> Option<ArrivalFrames<R>> {
        let anchor = plan.arrival_anchor?;
        Some(Self::with_anchor(plan, reader, anchor))
    }

    /// With a given anchor on the receiver's clock (see [`receiver_anchors`]).
    pub fn with_anchor(
        plan: TrackPlan,
        reader: JournalReader<R>,
        anchor: Anchor,
    ) -> ArrivalFrames<R> {
        ArrivalFrames {
            reader,
            plan,
            anchor,
            resumed: false,
        }
    }

    pub fn plan(&self) -> &TrackPlan {
        &self.plan
    }
}

impl<R: Read> Iterator for ArrivalFrames<R> {
    type Item = Result<TimedFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next_record() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(Record::Frame {
                    rtp_time,
                    flags: f,
                    data,
                    ..
                })) => {
                    let codec = self.plan.header.codec;
                    return Some(Ok(TimedFrame {
                        unix_us: self.anchor.to_us(rtp_time, self.plan.header.clock_rate),
                        keyframe: self.plan.header.kind == MediaKind::Audio
                            || codec::is_keyframe(codec, &data),
                        discontinuity: std::mem::take(&mut self.resumed)
                            || f & flags::DISCONTINUITY != 0,
                        data,
                    }));
                }
                Ok(Some(Record::Resume { .. })) => self.resumed = true,
                Ok(Some(_)) => {}
            }
        }
    }
}

/// Receiver-clock anchors for the tracks of one publication that keep their A/V sync: when
/// every track has a sender report, each track is put on the sender's clock (as the remux
/// does) and the sender's clock on the receiver's by one offset for all of them, the least
/// delay seen on any track. Otherwise each track's own least-delay arrival anchor.
pub fn receiver_anchors(plans: &[&TrackPlan]) -> Vec<Option<Anchor>> {
    let offsets: Option<Vec<i64>> = plans
        .iter()
        .map(|p| {
            let (arrival, sender) = (p.arrival_anchor?, p.sender_anchor?);
            Some(arrival.unix_us - sender.to_us(arrival.rtp, p.header.clock_rate))
        })
        .collect();
    match offsets.and_then(|o| o.into_iter().min()) {
        Some(offset) => plans
            .iter()
            .map(|p| {
                p.sender_anchor.map(|s| Anchor {
                    rtp: s.rtp,
                    unix_us: s.unix_us + offset,
                })
            })
            .collect(),
        None => plans.iter().map(|p| p.arrival_anchor).collect(),
    }
}
