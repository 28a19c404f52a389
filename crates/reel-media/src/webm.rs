//! A streaming WebM muxer: frames in, a seekable, playable file out, in memory bounded by
//! one cluster. The segment size, duration and seek index are patched in when the file is
//! finished; until then the file already plays (unknown-size segment), which is what a
//! player opening a recording still being written expects.

use crate::{ebml, MediaError, Result};
use reel_core::Codec;
use std::io::{Seek, SeekFrom, Write};

const SEGMENT: u32 = 0x18538067;
const SEEK_HEAD: u32 = 0x114D9B74;
const INFO: u32 = 0x1549A966;
const TRACKS: u32 = 0x1654AE6B;
const CLUSTER: u32 = 0x1F43B675;
const CUES: u32 = 0x1C53BB6B;
/// Space reserved at the segment start for the seek head written at the end.
const SEEK_HEAD_SPACE: usize = 96;
/// Start a new cluster at least this often, so seeking stays cheap in audio-only files.
const MAX_CLUSTER_MS: i64 = 5_000;

#[derive(Debug, Clone)]
pub enum TrackSpec {
    Video {
        codec: Codec,
        width: u16,
        height: u16,
        /// The decoder configuration, needed before the first frame where the container
        /// keeps it in the track header (Matroska's CodecPrivate: H.264's `avcC`).
        config: Option<Vec<u8>>,
    },
    Audio {
        codec: Codec,
        sample_rate: u32,
        channels: u8,
    },
}

impl TrackSpec {
    /// Audio stored as decoded 16-bit PCM.
    pub fn is_pcm(&self) -> bool {
        matches!(
            self,
            TrackSpec::Audio {
                codec: Codec::Pcmu | Codec::Pcma | Codec::G722,
                ..
            }
        )
    }
}

struct Block {
    track: u8,
    ts_ms: i64,
    keyframe: bool,
    data: Vec<u8>,
}

pub struct WebmWriter<W: Write + Seek> {
    out: W,
    segment_size_at: u64,
    segment_data_start: u64,
    duration_at: u64,
    info_pos: u64,
    tracks_pos: u64,
    has_video: bool,
    cue_track: u64,
    /// Per track (0-based): its codec.
    codecs: Vec<Codec>,
    cluster: Vec<Block>,
    cluster_start_ms: i64,
    cues: Vec<(i64, u64)>,
    last_ts_ms: i64,
    /// Last timestamp written per track (0-based), to keep each track strictly increasing.
    track_last_ms: Vec<Option<i64>>,
}

fn codec_id(codec: Codec) -> Result<&'static str> {
    Ok(match codec {
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
        Codec::Av1 => "V_AV1",
        Codec::Opus => "A_OPUS",
        // The remux hands SIP's codecs over decoded (see `pcm`).
        Codec::Pcmu | Codec::Pcma | Codec::G722 => "A_PCM/INT/LIT",
        // Frames as length-prefixed NAL units, described by the `avcC` in CodecPrivate.
        Codec::H264 => "V_MPEG4/ISO/AVC",
    })
}

/// RFC 7845 §5.1 identification header. WebRTC Opus has no encoder delay to skip, so
/// pre-skip is 0 and the first sample plays at the frame's timestamp, keeping A/V sync.
fn opus_head(channels: u8, sample_rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Track numbers are 1-based positions in `tracks`.
    pub fn new(mut out: W, tracks: &[TrackSpec]) -> Result<Self> {
        let mut head = Vec::new();
        let mut ebml_header = Vec::new();
        ebml::uint(&mut ebml_header, 0x4286, 1);
        ebml::uint(&mut ebml_header, 0x42F7, 1);
        ebml::uint(&mut ebml_header, 0x42F2, 4);
        ebml::uint(&mut ebml_header, 0x42F3, 8);
        // PCM and H.264 are Matroska, not WebM: the file is then `.mka` / `.mkv`.
        let doc_type: &[u8] = if tracks.iter().any(TrackSpec::is_pcm)
            || tracks.iter().any(|t| {
                matches!(
                    t,
                    TrackSpec::Video {
                        codec: Codec::H264,
                        ..
                    }
                )
            }) {
            b"matroska"
        } else {
            b"webm"
        };
        ebml::bytes(&mut ebml_header, 0x4282, doc_type);
        ebml::uint(&mut ebml_header, 0x4287, 4);
        ebml::uint(&mut ebml_header, 0x4285, 2);
        ebml::master(&mut head, 0x1A45DFA3, &ebml_header);

        let base = out.stream_position()?;
        ebml::id(&mut head, SEGMENT);
        let segment_size_at = base + head.len() as u64;
        head.extend_from_slice(&ebml::UNKNOWN_SIZE_8);
        let segment_data_start = base + head.len() as u64;
        ebml::void(&mut head, SEEK_HEAD_SPACE);

        let info_pos = base + head.len() as u64 - segment_data_start;
        let mut info = Vec::new();
        ebml::uint(&mut info, 0x2AD7B1, 1_000_000); // timestamps in milliseconds
        ebml::bytes(&mut info, 0x4D80, b"reel");
        ebml::bytes(&mut info, 0x5741, b"reel");
        let duration_in_info = info.len();
        ebml::float(&mut info, 0x4489, 0.0);
        ebml::id(&mut head, INFO);
        ebml::size(&mut head, info.len() as u64);
        // Duration's 8 value bytes sit after its 2-byte id and 1-byte size.
        let duration_at = base + (head.len() + duration_in_info + 3) as u64;
        head.extend_from_slice(&info);

        let tracks_pos = base + head.len() as u64 - segment_data_start;
        let mut entries = Vec::new();
        let mut has_video = false;
        let codecs: Vec<Codec> = tracks
            .iter()
            .map(|(TrackSpec::Video { codec, .. } | TrackSpec::Audio { codec, .. })| *codec)
            .collect();
        for (i, spec) in tracks.iter().enumerate() {
            let number = i as u64 + 1;
            let mut t = Vec::new();
            ebml::uint(&mut t, 0xD7, number);
            ebml::uint(&mut t, 0x73C5, number);
            ebml::uint(&mut t, 0x9C, 0);
            match spec {
                TrackSpec::Video {
                    codec,
                    width,
                    height,
                    config,
                } => {
                    has_video = true;
                    ebml::uint(&mut t, 0x83, 1);
                    ebml::bytes(&mut t, 0x86, codec_id(*codec)?.as_bytes());
                    match config {
                        Some(config) => ebml::bytes(&mut t, 0x63A2, config),
                        None if *codec == Codec::H264 => {
                            return Err(MediaError::Remux(
                                "H.264 without SPS and PPS in its first keyframe".into(),
                            ));
                        }
                        None => {}
                    }
                    let mut v = Vec::new();
                    ebml::uint(&mut v, 0xB0, *width as u64);
                    ebml::uint(&mut v, 0xBA, *height as u64);
                    ebml::master(&mut t, 0xE0, &v);
                }
                TrackSpec::Audio {
                    codec,
                    sample_rate,
                    channels,
                } => {
                    ebml::uint(&mut t, 0x83, 2);
                    ebml::bytes(&mut t, 0x86, codec_id(*codec)?.as_bytes());
                    if *codec == Codec::Opus {
                        ebml::bytes(&mut t, 0x63A2, &opus_head(*channels, *sample_rate));
                        ebml::uint(&mut t, 0x56AA, 0);
                        ebml::uint(&mut t, 0x56BB, 80_000_000);
                    }
                    let mut a = Vec::new();
                    ebml::float(&mut a, 0xB5, *sample_rate as f64);
                    ebml::uint(&mut a, 0x9F, *channels as u64);
                    if spec.is_pcm() {
                        ebml::uint(&mut a, 0x6264, 16); // BitDepth
                    }
                    ebml::master(&mut t, 0xE1, &a);
                }
            }
            ebml::master(&mut entries, 0xAE, &t);
        }
        ebml::master(&mut head, TRACKS, &entries);
        out.write_all(&head)?;
        Ok(WebmWriter {
            out,
            segment_size_at,
            segment_data_start,
            duration_at,
            info_pos,
            tracks_pos,
            has_video,
            // Cues name the video track (its keyframes are the seek points), else the first.
            cue_track: codecs
                .iter()
                .position(|c| c.kind() == reel_core::MediaKind::Video)
                .map_or(1, |i| i as u64 + 1),
            codecs,
            cluster: Vec::new(),
            cluster_start_ms: 0,
            cues: Vec::new(),
            last_ts_ms: 0,
            track_last_ms: vec![None; tracks.len()],
        })
    }

    /// Frames must come in non-decreasing time order across tracks; `track` is 1-based.
    pub fn write_frame(
        &mut self,
        track: u8,
        ts_ms: i64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<()> {
        let mut ts_ms = ts_ms.max(self.last_ts_ms);
        // Two frames of one track at the same millisecond (a sender can reuse a capture time)
        // would be an invalid file: players refuse non-increasing timestamps in a track.
        if let Some(Some(last)) = self.track_last_ms.get(track as usize - 1) {
            ts_ms = ts_ms.max(last + 1);
        }
        if let Some(slot) = self.track_last_ms.get_mut(track as usize - 1) {
            *slot = Some(ts_ms);
        }
        self.last_ts_ms = ts_ms;
        // Clusters start at video keyframes so that every cue is a clean seek point.
        let video_keyframe = keyframe && track > 0 && self.is_video(track);
        let cut = !self.cluster.is_empty()
            && ((video_keyframe && self.has_video)
                || ts_ms - self.cluster_start_ms >= MAX_CLUSTER_MS);
        if cut {
            self.flush_cluster()?;
        }
        if self.cluster.is_empty() {
            self.cluster_start_ms = ts_ms;
        }
        let data = match self.codec(track) {
            Some(Codec::H264) => crate::h264::to_length_prefixed(data),
            _ => data.to_vec(),
        };
        self.cluster.push(Block {
            track,
            ts_ms,
            keyframe,
            data,
        });
        Ok(())
    }

    fn is_video(&self, track: u8) -> bool {
        self.codec(track).map(Codec::kind) == Some(reel_core::MediaKind::Video)
    }

    fn codec(&self, track: u8) -> Option<Codec> {
        self.codecs.get((track as usize).checked_sub(1)?).copied()
    }

    fn flush_cluster(&mut self) -> Result<()> {
        if self.cluster.is_empty() {
            return Ok(());
        }
        // A cue is a seek point: a player starts decoding at the cluster it names, so only
        // clusters whose first video frame is a keyframe get one (every cluster when there is
        // no video). A cluster cut for length alone would send a seek to undecodable frames.
        let seekable = !self.has_video
            || self
                .cluster
                .iter()
                .find(|b| self.is_video(b.track))
                .is_some_and(|b| b.keyframe);
        let mut body = Vec::new();
        ebml::uint(&mut body, 0xE7, self.cluster_start_ms as u64);
        for b in self.cluster.drain(..) {
            let rel = (b.ts_ms - self.cluster_start_ms).clamp(0, i16::MAX as i64) as i16;
            let mut block = Vec::with_capacity(b.data.len() + 4);
            ebml::size(&mut block, b.track as u64);
            block.extend_from_slice(&rel.to_be_bytes());
            block.push(if b.keyframe { 0x80 } else { 0 });
            block.extend_from_slice(&b.data);
            ebml::bytes(&mut body, 0xA3, &block);
        }
        let pos = self.out.stream_position()? - self.segment_data_start;
        // The first cluster always gets one: it is where playback from the start begins.
        if seekable || self.cues.is_empty() {
            self.cues.push((self.cluster_start_ms, pos));
        }
        let mut head = Vec::new();
        ebml::id(&mut head, CLUSTER);
        ebml::size(&mut head, body.len() as u64);
        self.out.write_all(&head)?;
        self.out.write_all(&body)?;
        Ok(())
    }

    /// Writes the cues and patches duration, seek head and segment size.
    pub fn finish(mut self, duration_ms: f64) -> Result<W> {
        self.flush_cluster()?;
        let cues_pos = self.out.stream_position()? - self.segment_data_start;
        let mut points = Vec::new();
        for (ts, pos) in &self.cues {
            let mut positions = Vec::new();
            ebml::uint(&mut positions, 0xF7, self.cue_track);
            ebml::uint(&mut positions, 0xF1, *pos);
            let mut point = Vec::new();
            ebml::uint(&mut point, 0xB3, *ts as u64);
            ebml::master(&mut point, 0xB7, &positions);
            ebml::master(&mut points, 0xBB, &point);
        }
        let mut cues = Vec::new();
        ebml::master(&mut cues, CUES, &points);
        self.out.write_all(&cues)?;
        let end = self.out.stream_position()?;

        let mut seeks = Vec::new();
        for (element, pos) in [
            (INFO, self.info_pos),
            (TRACKS, self.tracks_pos),
            (CUES, cues_pos),
        ] {
            let mut seek = Vec::new();
            let mut idb = Vec::new();
            ebml::id(&mut idb, element);
            ebml::bytes(&mut seek, 0x53AB, &idb);
            ebml::uint(&mut seek, 0x53AC, pos);
            ebml::master(&mut seeks, 0x4DBB, &seek);
        }
        let mut seek_head = Vec::new();
        ebml::master(&mut seek_head, SEEK_HEAD, &seeks);
        let pad = SEEK_HEAD_SPACE - seek_head.len();
        ebml::void(&mut seek_head, pad);

        self.out.seek(SeekFrom::Start(self.segment_data_start))?;
        self.out.write_all(&seek_head)?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&duration_ms.to_be_bytes())?;
        let mut size = Vec::new();
        ebml::size_with_len(&mut size, end - self.segment_data_start, 8);
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&size)?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}
