//! An MP4 (ISO BMFF) muxer for H.264 + Opus, the container browsers and players expect for
//! H.264. Samples stream into one `mdat`; the sample tables are kept in memory (about 20
//! bytes a frame, ~50 MiB for a 24 h camera track) and `moov` is written at the end.
//! Tracks that start later than the file get an edit list, so A/V offsets survive.

use crate::codec::Dimensions;
use crate::webm::TrackSpec;
use crate::{h264, MediaError, Result};
use reel_core::Codec;
use std::io::{Seek, SeekFrom, Write};

const MOVIE_TIMESCALE: u64 = 1000;

struct Sample {
    offset: u64,
    size: u32,
    ticks: u64,
    sync: bool,
}

struct Track {
    spec: TrackSpec,
    timescale: u64,
    samples: Vec<Sample>,
    /// Where the track starts in the file's timeline, in µs.
    start_us: Option<i64>,
    avcc: Option<Vec<u8>>,
}

pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    mdat_start: u64,
    pos: u64,
    tracks: Vec<Track>,
}

fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
}

fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) {
    let mut b = vec![version];
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    boxed(out, kind, &b);
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn matrix(b: &mut Vec<u8>) {
    for v in MATRIX {
        b.extend_from_slice(&v.to_be_bytes());
    }
}

impl<W: Write + Seek> Mp4Writer<W> {
    pub fn new(mut out: W, specs: &[TrackSpec]) -> Result<Self> {
        let mut head = Vec::new();
        let mut ftyp = b"isom".to_vec();
        ftyp.extend_from_slice(&0x200u32.to_be_bytes());
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            ftyp.extend_from_slice(brand);
        }
        boxed(&mut head, b"ftyp", &ftyp);
        let base = out.stream_position()?;
        let mdat_start = base + head.len() as u64;
        // 64-bit size form, patched at the end: size 1, "mdat", largesize.
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&0u64.to_be_bytes());
        out.write_all(&head)?;
        let tracks = specs
            .iter()
            .map(|spec| {
                let timescale = match spec {
                    TrackSpec::Video { .. } => 90_000,
                    TrackSpec::Audio { sample_rate, .. } => *sample_rate as u64,
                };
                let (TrackSpec::Video { codec, .. } | TrackSpec::Audio { codec, .. }) = spec;
                if !matches!(codec, Codec::H264 | Codec::Opus) {
                    return Err(MediaError::Remux(format!(
                        "{codec} does not go into MP4 here"
                    )));
                }
                Ok(Track {
                    spec: spec.clone(),
                    timescale,
                    samples: Vec::new(),
                    start_us: None,
                    avcc: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Mp4Writer {
            out,
            mdat_start,
            pos: base + head.len() as u64,
            tracks,
        })
    }

    /// `track` is 1-based; `ts_us` on the file's timeline, non-decreasing per track.
    pub fn write_frame(
        &mut self,
        track: u8,
        ts_us: i64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<()> {
        let t = self
            .tracks
            .get_mut(track as usize - 1)
            .ok_or_else(|| MediaError::Remux(format!("no track {track}")))?;
        let payload = match t.spec {
            TrackSpec::Video {
                codec: Codec::H264, ..
            } => {
                if t.avcc.is_none() {
                    if let Some((sps, pps)) = h264::parameter_sets(data) {
                        t.avcc = h264::avcc(&sps, &pps);
                    }
                }
                h264::to_length_prefixed(data)
            }
            _ => data.to_vec(),
        };
        let start = *t.start_us.get_or_insert(ts_us);
        let ticks = ((ts_us - start).max(0) as i128 * t.timescale as i128 / 1_000_000) as u64;
        // Strictly increasing: a zero-length sample would be a frame no player shows.
        let ticks = t.samples.last().map_or(ticks, |s| ticks.max(s.ticks + 1));
        t.samples.push(Sample {
            offset: self.pos,
            size: payload.len() as u32,
            ticks,
            sync: keyframe,
        });
        self.out.write_all(&payload)?;
        self.pos += payload.len() as u64;
        Ok(())
    }

    pub fn finish(mut self, duration_us: i64) -> Result<W> {
        let end = self.pos;
        self.out.seek(SeekFrom::Start(self.mdat_start + 8))?;
        self.out.write_all(&(end - self.mdat_start).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        let duration_ms = (duration_us.max(0) as u64) / 1000;
        let mut moov_body = Vec::new();
        let mut mvhd = Vec::new();
        mvhd.extend_from_slice(&[0; 8]);
        mvhd.extend_from_slice(&(MOVIE_TIMESCALE as u32).to_be_bytes());
        mvhd.extend_from_slice(&(duration_ms as u32).to_be_bytes());
        mvhd.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
        mvhd.extend_from_slice(&[0; 10]);
        matrix(&mut mvhd);
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend_from_slice(&(self.tracks.len() as u32 + 1).to_be_bytes());
        full(&mut moov_body, b"mvhd", 0, 0, &mvhd);
        for (i, t) in self.tracks.iter().enumerate() {
            if t.samples.is_empty() {
                continue;
            }
            trak(&mut moov_body, i as u32 + 1, t, duration_us)?;
        }
        let mut moov = Vec::new();
        boxed(&mut moov, b"moov", &moov_body);
        self.out.write_all(&moov)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn trak(out: &mut Vec<u8>, id: u32, t: &Track, file_duration_us: i64) -> Result<()> {
    let start_us = t.start_us.unwrap_or(0).max(0);
    // Sample durations: differences, the last one the mean of the others.
    let n = t.samples.len();
    let span = t.samples[n - 1].ticks - t.samples[0].ticks;
    let mean = if n > 1 {
        (span / (n as u64 - 1)).max(1)
    } else {
        t.timescale / 30
    };
    let deltas: Vec<u32> = (0..n)
        .map(|i| {
            if i + 1 < n {
                (t.samples[i + 1].ticks - t.samples[i].ticks) as u32
            } else {
                mean as u32
            }
        })
        .collect();
    let media_ticks: u64 = deltas.iter().map(|d| *d as u64).sum();
    let media_ms = media_ticks * MOVIE_TIMESCALE / t.timescale;
    let track_ms = ((file_duration_us - start_us).max(0) as u64 / 1000).max(media_ms);
    let (is_video, dims) = match &t.spec {
        TrackSpec::Video { width, height, .. } => (
            true,
            Dimensions {
                width: *width,
                height: *height,
            },
        ),
        TrackSpec::Audio { .. } => (
            false,
            Dimensions {
                width: 0,
                height: 0,
            },
        ),
    };

    let mut trak_body = Vec::new();
    let mut tkhd = Vec::new();
    tkhd.extend_from_slice(&[0; 8]);
    tkhd.extend_from_slice(&id.to_be_bytes());
    tkhd.extend_from_slice(&[0; 4]);
    tkhd.extend_from_slice(&(track_ms as u32).to_be_bytes());
    tkhd.extend_from_slice(&[0; 8]);
    tkhd.extend_from_slice(&[0; 4]); // layer, alternate group
    tkhd.extend_from_slice(&(if is_video { 0u16 } else { 0x0100 }).to_be_bytes());
    tkhd.extend_from_slice(&[0; 2]);
    matrix(&mut tkhd);
    tkhd.extend_from_slice(&((dims.width as u32) << 16).to_be_bytes());
    tkhd.extend_from_slice(&((dims.height as u32) << 16).to_be_bytes());
    full(&mut trak_body, b"tkhd", 0, 3, &tkhd);

    // A track that starts after the file does gets an empty edit first (ISO 14496-12 §8.6.6).
    let mut elst = Vec::new();
    let start_ms = start_us as u64 / 1000;
    let entries: Vec<(u32, i32)> = if start_ms > 0 {
        vec![(start_ms as u32, -1), (media_ms as u32, 0)]
    } else {
        vec![(media_ms as u32, 0)]
    };
    elst.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (dur, media_time) in entries {
        elst.extend_from_slice(&dur.to_be_bytes());
        elst.extend_from_slice(&media_time.to_be_bytes());
        elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    }
    let mut edts = Vec::new();
    full(&mut edts, b"elst", 0, 0, &elst);
    boxed(&mut trak_body, b"edts", &edts);

    let mut mdia = Vec::new();
    let mut mdhd = Vec::new();
    mdhd.extend_from_slice(&[0; 8]);
    mdhd.extend_from_slice(&(t.timescale as u32).to_be_bytes());
    mdhd.extend_from_slice(&(media_ticks as u32).to_be_bytes());
    mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
    mdhd.extend_from_slice(&[0; 2]);
    full(&mut mdia, b"mdhd", 0, 0, &mdhd);
    let mut hdlr = vec![0; 4];
    hdlr.extend_from_slice(if is_video { b"vide" } else { b"soun" });
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(if is_video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    full(&mut mdia, b"hdlr", 0, 0, &hdlr);

    let mut minf = Vec::new();
    if is_video {
        full(&mut minf, b"vmhd", 0, 1, &[0; 8]);
    } else {
        full(&mut minf, b"smhd", 0, 0, &[0; 4]);
    }
    let mut dref = 1u32.to_be_bytes().to_vec();
    full(&mut dref, b"url ", 0, 1, &[]);
    let mut dinf = Vec::new();
    full(&mut dinf, b"dref", 0, 0, &dref);
    let mut dinf_box = Vec::new();
    boxed(&mut dinf_box, b"dinf", &dinf);
    minf.extend_from_slice(&dinf_box);

    let mut stbl = Vec::new();
    let mut stsd = 1u32.to_be_bytes().to_vec();
    match &t.spec {
        TrackSpec::Video { width, height, .. } => {
            let avcc = t
                .avcc
                .as_ref()
                .ok_or_else(|| MediaError::Remux("H.264 without SPS/PPS".into()))?;
            let mut e = vec![0; 6];
            e.extend_from_slice(&1u16.to_be_bytes());
            e.extend_from_slice(&[0; 16]);
            e.extend_from_slice(&width.to_be_bytes());
            e.extend_from_slice(&height.to_be_bytes());
            e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
            e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
            e.extend_from_slice(&[0; 4]);
            e.extend_from_slice(&1u16.to_be_bytes());
            e.extend_from_slice(&[0; 32]);
            e.extend_from_slice(&0x0018u16.to_be_bytes());
            e.extend_from_slice(&(-1i16).to_be_bytes());
            boxed(&mut e, b"avcC", avcc);
            boxed(&mut stsd, b"avc1", &e);
        }
        TrackSpec::Audio {
            sample_rate,
            channels,
            ..
        } => {
            let mut e = vec![0; 6];
            e.extend_from_slice(&1u16.to_be_bytes());
            e.extend_from_slice(&[0; 8]);
            e.extend_from_slice(&(*channels as u16).to_be_bytes());
            e.extend_from_slice(&16u16.to_be_bytes());
            e.extend_from_slice(&[0; 4]);
            e.extend_from_slice(&(sample_rate << 16).to_be_bytes());
            // dOps (Opus in ISOBMFF §4.3.2): pre-skip 0 as in the WebM OpusHead.
            let mut dops = vec![0, *channels];
            dops.extend_from_slice(&0u16.to_be_bytes());
            dops.extend_from_slice(&sample_rate.to_be_bytes());
            dops.extend_from_slice(&0i16.to_be_bytes());
            dops.push(0);
            boxed(&mut e, b"dOps", &dops);
            boxed(&mut stsd, b"Opus", &e);
        }
    }
    full(&mut stbl, b"stsd", 0, 0, &stsd);

    let mut runs: Vec<(u32, u32)> = Vec::new();
    for d in &deltas {
        match runs.last_mut() {
            Some((count, delta)) if delta == d => *count += 1,
            _ => runs.push((1, *d)),
        }
    }
    let mut stts = (runs.len() as u32).to_be_bytes().to_vec();
    for (count, delta) in runs {
        stts.extend_from_slice(&count.to_be_bytes());
        stts.extend_from_slice(&delta.to_be_bytes());
    }
    full(&mut stbl, b"stts", 0, 0, &stts);
    if is_video {
        let sync: Vec<u32> = t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let mut stss = (sync.len() as u32).to_be_bytes().to_vec();
        for s in sync {
            stss.extend_from_slice(&s.to_be_bytes());
        }
        full(&mut stbl, b"stss", 0, 0, &stss);
    }
    let mut stsc = 1u32.to_be_bytes().to_vec();
    for v in [1u32, 1, 1] {
        stsc.extend_from_slice(&v.to_be_bytes());
    }
    full(&mut stbl, b"stsc", 0, 0, &stsc);
    let mut stsz = 0u32.to_be_bytes().to_vec();
    stsz.extend_from_slice(&(n as u32).to_be_bytes());
    for s in &t.samples {
        stsz.extend_from_slice(&s.size.to_be_bytes());
    }
    full(&mut stbl, b"stsz", 0, 0, &stsz);
    let mut co64 = (n as u32).to_be_bytes().to_vec();
    for s in &t.samples {
        co64.extend_from_slice(&s.offset.to_be_bytes());
    }
    full(&mut stbl, b"co64", 0, 0, &co64);
    let mut stbl_box = Vec::new();
    boxed(&mut stbl_box, b"stbl", &stbl);
    minf.extend_from_slice(&stbl_box);
    boxed(&mut mdia, b"minf", &minf);
    boxed(&mut trak_body, b"mdia", &mdia);
    boxed(out, b"trak", &trak_body);
    Ok(())
}
