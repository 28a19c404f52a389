//! Plain RTP (RFC 3550) as a SIP call's media arrives: packets parsed without trusting them,
//! put back in order, tied to one continuous timeline across SSRC changes, and turned into
//! the frames a journal stores. Sans-IO: the caller passes arrival times in.
//!
//! - **Reordering.** Packets wait in a small buffer until the next expected sequence number
//!   arrives, at most [`REORDER_WINDOW`] packets or [`REORDER_DELAY`]; then the gap is
//!   given up as lost and the next frame is marked as a discontinuity.
//! - **SSRC changes** (a transfer, a media server taking over): the new source's timestamps
//!   are moved onto the old timeline at the point in time the switch happened, so a file
//!   keeps playing instead of jumping.
//! - **Comfort noise** (payload type 13 or the negotiated CN) and DTMF (telephone-event) are
//!   not media to record: they are dropped, and the gap plays as silence.
//! - **Video** is depacketized into frames: H.264 (RFC 6184: single NAL units, STAP-A,
//!   FU-A) to Annex B access units, VP8 (RFC 7741) to frames. A frame with a hole in it is
//!   dropped and the next one marked as a discontinuity, so the picture waits for a keyframe.

use crate::{MediaError, Result};
use reel_core::Codec;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Packets held while waiting for a missing one.
pub const REORDER_WINDOW: usize = 16;
/// How long a missing packet is waited for.
pub const REORDER_DELAY: Duration = Duration::from_millis(80);

/// A parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// RTCP shares the port when `rtcp-mux` is used: payload types 200–206 in the second byte.
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (200..=206).contains(&data[1])
}

pub fn parse(data: &[u8]) -> Result<Packet<'_>> {
    let bad = |why: &str| MediaError::malformed("RTP packet", why);
    if data.len() < 12 {
        return Err(bad("shorter than an RTP header"));
    }
    if data[0] >> 6 != 2 {
        return Err(bad("not RTP version 2"));
    }
    let csrcs = (data[0] & 0x0f) as usize;
    let mut start = 12 + 4 * csrcs;
    if data[0] & 0x10 != 0 {
        let ext = data
            .get(start + 2..start + 4)
            .ok_or_else(|| bad("truncated header extension"))?;
        start += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        let pad = *data.last().expect("length checked") as usize;
        end = end
            .checked_sub(pad)
            .filter(|e| pad > 0 && *e >= start)
            .ok_or_else(|| bad("bad padding"))?;
    }
    if start > end {
        return Err(bad("header longer than the packet"));
    }
    Ok(Packet {
        payload_type: data[1] & 0x7f,
        marker: data[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        payload: &data[start..end],
    })
}

/// An RTCP sender report in a (compound) packet: (SSRC, NTP time as Unix µs, RTP time).
pub fn sender_report(data: &[u8]) -> Option<(u32, i64, u32)> {
    if data.len() < 28 || data[0] >> 6 != 2 || data[1] != 200 {
        return None;
    }
    let ssrc = u32::from_be_bytes(data[4..8].try_into().ok()?);
    let secs = u32::from_be_bytes(data[8..12].try_into().ok()?) as i64;
    let frac = u32::from_be_bytes(data[12..16].try_into().ok()?) as i64;
    let rtp = u32::from_be_bytes(data[16..20].try_into().ok()?);
    const NTP_TO_UNIX: i64 = 2_208_988_800;
    let unix_us = (secs - NTP_TO_UNIX) * 1_000_000 + ((frac * 1_000_000) >> 32);
    Some((ssrc, unix_us, rtp))
}

/// A frame for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// On the stream's continuous (extended, SSRC-change-proof) timeline.
    pub rtp_time: u64,
    pub arrival: Instant,
    /// Something before this frame was lost or the source changed.
    pub discontinuity: bool,
    pub data: Vec<u8>,
}

/// What one m-line receives: which payload types are media, and of which codec.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub codec: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Payload types dropped without complaint (telephone-event, CN).
    pub ignored: Vec<u8>,
}

struct Held {
    arrival: Instant,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
}

/// Counters for one stream, for logs and the load benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub lost: u64,
    pub late: u64,
    pub ignored: u64,
    pub malformed: u64,
    pub ssrc_changes: u64,
    /// Access units dropped for being over `journal::MAX_FRAME`.
    pub oversized: u64,
}

/// One recorded m-line's receiver.
pub struct StreamReceiver {
    config: StreamConfig,
    ssrc: Option<u32>,
    /// Extended sequence number expected next.
    next_seq: Option<u64>,
    held: BTreeMap<u64, Held>,
    /// Timestamp extension: last raw timestamp and its extended value.
    last_ts: Option<(u32, u64)>,
    /// Added to the extended timestamps of the current source (SSRC changes).
    offset: i64,
    /// Last frame's time and arrival, to place a new source on the timeline.
    last_frame: Option<(u64, Instant)>,
    gap: bool,
    /// Dropping the rest of an oversized access unit, up to its marker.
    oversized: bool,
    depacketizer: Depacketizer,
    out: std::collections::VecDeque<Frame>,
    pub stats: Stats,
}

impl StreamReceiver {
    pub fn new(config: StreamConfig) -> Self {
        let depacketizer = match config.codec {
            Codec::H264 => Depacketizer::H264(Vec::new()),
            Codec::Vp8 => Depacketizer::Vp8(Vec::new()),
            _ => Depacketizer::Audio,
        };
        StreamReceiver {
            config,
            ssrc: None,
            next_seq: None,
            held: BTreeMap::new(),
            last_ts: None,
            offset: 0,
            last_frame: None,
            gap: false,
            oversized: false,
            depacketizer,
            out: Default::default(),
            stats: Stats::default(),
        }
    }

    /// One datagram from the stream's port (RTP; RTCP is the caller's).
    pub fn handle_packet(&mut self, now: Instant, data: &[u8]) {
        let packet = match parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if packet.payload_type == 13 || self.config.ignored.contains(&packet.payload_type) {
            self.stats.ignored += 1;
            return;
        }
        if packet.payload_type != self.config.payload_type {
            self.stats.malformed += 1;
            return;
        }
        self.stats.packets += 1;
        if self.ssrc != Some(packet.ssrc) {
            if self.ssrc.is_some() {
                // Everything of the old source goes out first.
                self.release_all();
                self.stats.ssrc_changes += 1;
                self.gap = true;
                self.oversized = false;
                self.depacketizer.reset();
            }
            self.ssrc = Some(packet.ssrc);
            self.next_seq = None;
            self.last_ts = None;
            // Put the new source's first packet where the elapsed time says it belongs.
            self.offset = match self.last_frame {
                Some((rtp, at)) => {
                    let elapsed = now.saturating_duration_since(at).as_micros() as i64;
                    let ahead = (elapsed * self.config.clock_rate as i64 / 1_000_000).max(1);
                    // The new source's timestamps extend from 2^32 like the first's did.
                    rtp as i64 + ahead - ((1i64 << 32) + packet.timestamp as i64)
                }
                None => 0,
            };
        }
        let seq = self.extend_seq(packet.sequence);
        let Some(next) = self.next_seq else {
            self.next_seq = Some(seq);
            self.hold(seq, now, &packet);
            self.release(now);
            return;
        };
        if seq < next || self.held.contains_key(&seq) {
            self.stats.late += 1; // too late (already given up) or a duplicate
            return;
        }
        self.hold(seq, now, &packet);
        self.release(now);
    }

    /// Gives up on missing packets that have been waited for long enough.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release(now);
    }

    /// When `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.values().next().map(|h| h.arrival + REORDER_DELAY)
    }

    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    /// End of stream: everything held goes out.
    pub fn flush(&mut self) {
        self.release_all();
    }

    fn extend_seq(&self, seq: u16) -> u64 {
        let Some(reference) = self.next_seq else {
            return (1u64 << 16) + seq as u64;
        };
        // The candidate in the reference's cycle, or the next or previous one, closest wins.
        let cycle = reference & !0xffff;
        [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)]
            .into_iter()
            .map(|c| c.wrapping_add(seq as u64))
            .min_by_key(|c| c.abs_diff(reference))
            .expect("three candidates")
    }

    fn hold(&mut self, seq: u64, now: Instant, p: &Packet) {
        self.held.insert(
            seq,
            Held {
                arrival: now,
                timestamp: p.timestamp,
                marker: p.marker,
                payload: p.payload.to_vec(),
            },
        );
    }

    fn release(&mut self, now: Instant) {
        loop {
            let Some(next) = self.next_seq else { return };
            if let Some(h) = self.held.remove(&next) {
                self.next_seq = Some(next + 1);
                self.emit(h);
                continue;
            }
            // The next one is missing: wait, unless the window is full or it is too late.
            let Some((&first, oldest)) = self.held.iter().next() else {
                return;
            };
            if self.held.len() < REORDER_WINDOW && now < oldest.arrival + REORDER_DELAY {
                return;
            }
            self.stats.lost += first - next;
            self.gap = true;
            self.depacketizer.reset();
            self.next_seq = Some(first);
        }
    }

    fn release_all(&mut self) {
        while let Some((&first, _)) = self.held.iter().next() {
            let next = self.next_seq.unwrap_or(first);
            if first != next {
                self.stats.lost += first.saturating_sub(next);
                self.gap = true;
                self.oversized = false;
                self.depacketizer.reset();
            }
            let h = self.held.remove(&first).expect("present");
            self.next_seq = Some(first + 1);
            self.emit(h);
        }
    }

    fn extend_ts(&mut self, ts: u32) -> u64 {
        let ext = match self.last_ts {
            None => (1u64 << 32) + ts as u64,
            Some((last, last_ext)) => {
                let delta = ts.wrapping_sub(last) as i32 as i64;
                (last_ext as i64 + delta).max(0) as u64
            }
        };
        self.last_ts = Some((ts, ext));
        ext
    }

    fn emit(&mut self, h: Held) {
        let ext = self.extend_ts(h.timestamp);
        let rtp_time = (ext as i64 + self.offset).max(0) as u64;
        // An access unit past the journal's frame limit is dropped as it grows (memory stays
        // bounded), the rest of it up to its marker too; the next frame follows a gap, so the
        // remux waits for a keyframe.
        if self.oversized {
            self.oversized = !h.marker;
            return;
        }
        if self.depacketizer.assembling() + h.payload.len() > crate::journal::MAX_FRAME {
            self.depacketizer.reset();
            self.stats.oversized += 1;
            self.gap = true;
            self.oversized = !h.marker;
            return;
        }
        let Some(data) = self.depacketizer.push(&h.payload, h.marker, &mut self.gap) else {
            return;
        };
        self.last_frame = Some((rtp_time, h.arrival));
        self.out.push_back(Frame {
            rtp_time,
            arrival: h.arrival,
            discontinuity: std::mem::take(&mut self.gap),
            data,
        });
    }
}

enum Depacketizer {
    /// One packet, one frame.
    Audio,
    /// The access unit being assembled (Annex B), and whether an FU-A is open.
    H264(Vec<u8>),
    Vp8(Vec<u8>),
}

const ANNEX_B: [u8; 4] = [0, 0, 0, 1];

impl Depacketizer {
    fn reset(&mut self) {
        match self {
            Depacketizer::Audio => {}
            Depacketizer::H264(b) | Depacketizer::Vp8(b) => b.clear(),
        }
    }

    /// The access unit under assembly, for the size cap.
    fn assembling(&self) -> usize {
        match self {
            Depacketizer::Audio => 0,
            Depacketizer::H264(b) | Depacketizer::Vp8(b) => b.len(),
        }
    }

    /// A payload in order; a complete frame when this packet ends one (marker bit). A frame
    /// with a hole (`gap` set while assembling) is dropped: `gap` stays set for the next.
    fn push(&mut self, payload: &[u8], marker: bool, gap: &mut bool) -> Option<Vec<u8>> {
        match self {
            Depacketizer::Audio => (!payload.is_empty()).then(|| payload.to_vec()),
            Depacketizer::H264(au) => {
                if !h264_payload(payload, au) {
                    *gap = true;
                    au.clear();
                    return None;
                }
                (marker && !au.is_empty()).then(|| std::mem::take(au))
            }
            Depacketizer::Vp8(frame) => {
                let Some((start, body)) = vp8_payload(payload) else {
                    *gap = true;
                    frame.clear();
                    return None;
                };
                if start {
                    frame.clear();
                } else if frame.is_empty() {
                    // The frame's start was lost.
                    *gap = true;
                    return None;
                }
                frame.extend_from_slice(body);
                (marker && !frame.is_empty()).then(|| std::mem::take(frame))
            }
        }
    }
}

/// RFC 6184 §5.6–5.8. False when the payload cannot be used.
fn h264_payload(p: &[u8], au: &mut Vec<u8>) -> bool {
    let Some(&header) = p.first() else {
        return false;
    };
    match header & 0x1f {
        1..=23 => {
            au.extend_from_slice(&ANNEX_B);
            au.extend_from_slice(p);
            true
        }
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut rest = &p[1..];
            while rest.len() >= 2 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if !nal.is_empty() {
                    au.extend_from_slice(&ANNEX_B);
                    au.extend_from_slice(nal);
                }
                rest = &rest[2 + size..];
            }
            true
        }
        28 => {
            // FU-A: the start bit opens a NAL unit with the reconstructed header.
            let Some(&fu) = p.get(1) else {
                return false;
            };
            let start = fu & 0x80 != 0;
            if start {
                au.extend_from_slice(&ANNEX_B);
                au.push((header & 0xe0) | (fu & 0x1f));
            } else if au.is_empty() {
                return false; // the start of this NAL unit was lost
            }
            au.extend_from_slice(&p[2..]);
            true
        }
        _ => false,
    }
}

/// RFC 7741 §4.2: (start of a partition-0 frame, the VP8 bytes).
fn vp8_payload(p: &[u8]) -> Option<(bool, &[u8])> {
    let first = *p.first()?;
    let mut i = 1;
    if first & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID / KEYIDX
        }
    }
    let body = p.get(i..)?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    Some((start, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn pcmu() -> StreamReceiver {
        StreamReceiver::new(StreamConfig {
            codec: Codec::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            ignored: vec![101],
        })
    }

    fn video(codec: Codec, payload_type: u8) -> StreamReceiver {
        StreamReceiver::new(StreamConfig {
            codec,
            payload_type,
            clock_rate: 90_000,
            ignored: vec![],
        })
    }

    fn drain(r: &mut StreamReceiver) -> Vec<Frame> {
        std::iter::from_fn(|| r.poll_frame()).collect()
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let t0 = Instant::now();
        let mut r = pcmu();
        for (i, seq) in [10u16, 12, 11, 13].into_iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            r.handle_packet(
                at,
                &packet(0, seq, seq as u32 * 160, 7, false, &[seq as u8]),
            );
        }
        let frames = drain(&mut r);
        let data: Vec<u8> = frames.iter().map(|f| f.data[0]).collect();
        assert_eq!(data, [10, 11, 12, 13]);
        assert!(frames.iter().all(|f| !f.discontinuity));
        assert_eq!(r.stats.lost, 0);
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_delay() {
        let t0 = Instant::now();
        let mut r = pcmu();
        r.handle_packet(t0, &packet(0, 1, 0, 7, false, &[1]));
        r.handle_packet(t0, &packet(0, 3, 320, 7, false, &[3]));
        assert_eq!(drain(&mut r).len(), 1);
        assert_eq!(r.poll_timeout(), Some(t0 + REORDER_DELAY));
        r.handle_timeout(t0 + REORDER_DELAY);
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].discontinuity);
        assert_eq!(frames[0].rtp_time - (1 << 32), 320);
        assert_eq!(r.stats.lost, 1);
        // The lost one arriving now is too late.
        r.handle_packet(t0 + REORDER_DELAY, &packet(0, 2, 160, 7, false, &[2]));
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.stats.late, 1);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let t0 = Instant::now();
        let mut r = pcmu();
        let start_ts = u32::MAX - 159;
        for i in 0..4u16 {
            let seq = 65534u16.wrapping_add(i);
            let ts = start_ts.wrapping_add(i as u32 * 160);
            r.handle_packet(t0, &packet(0, seq, ts, 7, false, &[i as u8]));
        }
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 4);
        assert!(frames
            .windows(2)
            .all(|w| w[1].rtp_time == w[0].rtp_time + 160));
    }

    #[test]
    fn a_new_ssrc_continues_the_timeline_where_time_says() {
        let t0 = Instant::now();
        let mut r = pcmu();
        r.handle_packet(t0, &packet(0, 100, 5000, 1, false, &[1]));
        // The new source starts 1 s later with unrelated numbers.
        r.handle_packet(
            t0 + Duration::from_secs(1),
            &packet(0, 9, 777_777, 2, false, &[2]),
        );
        r.handle_packet(
            t0 + Duration::from_millis(1020),
            &packet(0, 10, 777_937, 2, false, &[3]),
        );
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].rtp_time - frames[0].rtp_time, 8000);
        assert!(frames[1].discontinuity);
        assert_eq!(frames[2].rtp_time - frames[1].rtp_time, 160);
        assert_eq!(r.stats.ssrc_changes, 1);
    }

    #[test]
    fn comfort_noise_and_dtmf_are_not_media() {
        let t0 = Instant::now();
        let mut r = pcmu();
        r.handle_packet(t0, &packet(13, 1, 0, 7, false, &[0x40]));
        r.handle_packet(t0, &packet(101, 2, 0, 7, true, &[1, 2, 3, 4]));
        r.handle_packet(t0, &packet(0, 3, 160, 7, false, &[9]));
        assert_eq!(drain(&mut r).len(), 1);
        assert_eq!(r.stats.ignored, 2);
    }

    #[test]
    fn h264_fu_a_and_stap_a_make_annex_b_access_units() {
        let t0 = Instant::now();
        let mut r = video(Codec::H264, 96);
        // STAP-A with SPS (7) and PPS (8), then an IDR (5) in two FU-A fragments.
        let stap = [0x18, 0, 2, 0x67, 0xaa, 0, 2, 0x68, 0xbb];
        r.handle_packet(t0, &packet(96, 1, 9000, 5, false, &stap));
        r.handle_packet(t0, &packet(96, 2, 9000, 5, false, &[0x7c, 0x85, 1, 2]));
        r.handle_packet(t0, &packet(96, 3, 9000, 5, true, &[0x7c, 0x45, 3]));
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].data,
            [0, 0, 0, 1, 0x67, 0xaa, 0, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 1, 0x65, 1, 2, 3]
        );
        // A frame whose first fragment is lost is dropped; the next is a discontinuity.
        r.handle_packet(t0, &packet(96, 5, 12000, 5, true, &[0x7c, 0x41, 4]));
        r.handle_timeout(t0 + REORDER_DELAY);
        r.handle_packet(t0, &packet(96, 6, 15000, 5, true, &[0x41, 9]));
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].discontinuity);
        assert_eq!(frames[0].data, [0, 0, 0, 1, 0x41, 9]);
    }

    /// A 20 MB access unit (FU-A fragments up to its marker) is dropped as it grows past the
    /// journal's frame limit; the frames after it come through, the first after a gap.
    #[test]
    fn an_access_unit_over_the_frame_limit_is_dropped_and_the_stream_goes_on() {
        let t0 = Instant::now();
        let mut r = video(Codec::H264, 96);
        r.handle_packet(t0, &packet(96, 1, 3000, 5, true, &[0x65, 1]));
        let chunk = vec![0xab; 1200];
        let fragments = (20 << 20) / chunk.len() as u16 as usize;
        let mut seq = 2u16;
        for i in 0..fragments {
            let fu = if i == 0 {
                0x85
            } else if i + 1 == fragments {
                0x45
            } else {
                0x05
            };
            let mut payload = vec![0x7c, fu];
            payload.extend_from_slice(&chunk);
            r.handle_packet(t0, &packet(96, seq, 6000, 5, i + 1 == fragments, &payload));
            seq = seq.wrapping_add(1);
            assert!(r.depacketizer.assembling() <= crate::journal::MAX_FRAME);
        }
        r.handle_packet(t0, &packet(96, seq, 9000, 5, true, &[0x65, 2]));
        r.handle_packet(
            t0,
            &packet(96, seq.wrapping_add(1), 12000, 5, true, &[0x41, 3]),
        );
        let frames = drain(&mut r);
        assert_eq!(
            frames.len(),
            3,
            "the oversized one is gone, the rest are there"
        );
        assert_eq!(frames[0].rtp_time + 6000, frames[1].rtp_time);
        assert!(frames[1].discontinuity);
        assert!(!frames[2].discontinuity);
        assert_eq!(r.stats.oversized, 1);
    }

    #[test]
    fn vp8_frames_are_reassembled() {
        let t0 = Instant::now();
        let mut r = video(Codec::Vp8, 100);
        // X bit with a 15-bit PictureID, start of partition 0; then a continuation.
        r.handle_packet(
            t0,
            &packet(100, 1, 0, 5, false, &[0x90, 0x80, 0x81, 0x02, 10, 11]),
        );
        r.handle_packet(
            t0,
            &packet(100, 2, 0, 5, true, &[0x80, 0x80, 0x81, 0x02, 12]),
        );
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, [10, 11, 12]);
    }

    #[test]
    fn garbage_is_counted_never_a_panic() {
        let t0 = Instant::now();
        let mut r = video(Codec::H264, 96);
        let base = packet(96, 1, 0, 5, true, &[0x7c, 0x85, 1, 2, 3, 4]);
        for len in 0..base.len() {
            r.handle_packet(t0, &base[..len]);
            let _ = sender_report(&base[..len]);
        }
        let mut state = 0x2545_f491u32;
        for _ in 0..20_000 {
            let mut p = base.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let i = state as usize % p.len();
                p[i] = (state >> 8) as u8;
            }
            r.handle_packet(t0, &p);
            let _ = sender_report(&p);
            while r.poll_frame().is_some() {}
        }
        r.flush();
    }

    #[test]
    fn sender_reports_map_ntp_to_unix_time() {
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&7u32.to_be_bytes());
        sr.extend_from_slice(&(2_208_988_800u32 + 10).to_be_bytes());
        sr.extend_from_slice(&(1u32 << 31).to_be_bytes());
        sr.extend_from_slice(&1234u32.to_be_bytes());
        sr.extend_from_slice(&[0; 8]);
        assert!(is_rtcp(&sr));
        assert_eq!(sender_report(&sr), Some((7, 10_500_000, 1234)));
    }
}
