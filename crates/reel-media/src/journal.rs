//! The capture journal: one append-only file per received track, the source of truth
//! every output is derived from. Layout (all integers little-endian; docs/formats.md):
//!
//! ```text
//! file   = magic "REELJNL1" · version u16 · header_len u32 · header (JSON) · crc32(header) u32
//!          · record*
//! record = body_len u32 · body (type u8 · payload) · crc32(body) u32
//! ```
//!
//! A record is either whole and checksummed or it is the torn tail of a crash: readers
//! stop at the first record that is short or fails its CRC, and recovery truncates the file
//! there. Records are only ever appended, so a crash can lose only what was not yet synced.

use crate::{MediaError, Result};
use reel_core::{Codec, MediaKind};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"REELJNL1";
pub const VERSION: u16 = 1;
/// The largest frame a journal takes. A 4K intra frame at broadcast quality is about 2 MiB;
/// anything near this is a broken or hostile sender, and `append` refuses it rather than
/// write a record no reader would take.
pub const MAX_FRAME: usize = 8 << 20;
/// Readers take records up to this length whole. Writers never exceed it (`MAX_FRAME` plus a
/// frame's 18 bytes of fields); a longer length is either a corrupt length field or a
/// record an older writer let through, which readers skip when its CRC holds.
pub const MAX_RECORD: usize = 16 << 20;
const MAX_HEADER: usize = 64 << 10;

/// Who and what this track is. JSON, so that `reel journal inspect` and future versions can
/// read it without a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub track_id: String,
    pub publication_id: String,
    pub session_id: String,
    pub room_id: String,
    pub participant: String,
    pub kind: MediaKind,
    pub codec: Codec,
    pub clock_rate: u32,
    /// The SDP media id, for debugging.
    pub mid: String,
    /// The simulcast layer (RTP stream id), when the publisher sends several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    pub created_unix_us: i64,
}

pub mod flags {
    pub const KEYFRAME: u8 = 0x01;
    /// Packets were lost right before this frame: a decoder needs a keyframe to go on cleanly.
    pub const DISCONTINUITY: u8 = 0x02;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// One encoded frame (a whole depacketized access unit).
    Frame {
        /// Extended (unwrapped) RTP timestamp.
        rtp_time: u64,
        /// Unix time the first packet of the frame arrived, in microseconds.
        arrival_unix_us: i64,
        flags: u8,
        data: Vec<u8>,
    },
    /// An RTCP sender report: the sender's wall clock for one RTP timestamp. This is what
    /// lines audio up with video (RFC 3550 §6.4.1).
    SenderReport {
        rtp_time: u32,
        ntp_unix_us: i64,
    },
    /// Capture paused (nothing follows until `Resume`).
    Pause {
        at_unix_us: i64,
    },
    Resume {
        at_unix_us: i64,
    },
    /// The track ended cleanly. A journal without it was interrupted.
    End {
        at_unix_us: i64,
    },
}

const T_FRAME: u8 = 1;
const T_SR: u8 = 2;
const T_PAUSE: u8 = 3;
const T_RESUME: u8 = 4;
const T_END: u8 = 5;

impl Record {
    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Record::Frame {
                rtp_time,
                arrival_unix_us,
                flags,
                data,
            } => {
                out.push(T_FRAME);
                out.extend_from_slice(&rtp_time.to_le_bytes());
                out.extend_from_slice(&arrival_unix_us.to_le_bytes());
                out.push(*flags);
                out.extend_from_slice(data);
            }
            Record::SenderReport {
                rtp_time,
                ntp_unix_us,
            } => {
                out.push(T_SR);
                out.extend_from_slice(&rtp_time.to_le_bytes());
                out.extend_from_slice(&ntp_unix_us.to_le_bytes());
            }
            Record::Pause { at_unix_us } => {
                out.push(T_PAUSE);
                out.extend_from_slice(&at_unix_us.to_le_bytes());
            }
            Record::Resume { at_unix_us } => {
                out.push(T_RESUME);
                out.extend_from_slice(&at_unix_us.to_le_bytes());
            }
            Record::End { at_unix_us } => {
                out.push(T_END);
                out.extend_from_slice(&at_unix_us.to_le_bytes());
            }
        }
    }

    fn decode_body(body: &[u8]) -> Result<Record> {
        let bad = |why: &str| MediaError::malformed("journal record", why);
        let (&kind, p) = body.split_first().ok_or_else(|| bad("empty"))?;
        let u64_at = |at: usize| -> Result<u64> {
            p.get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| bad("short"))
        };
        Ok(match kind {
            T_FRAME => {
                if p.len() < 17 {
                    return Err(bad("short frame"));
                }
                Record::Frame {
                    rtp_time: u64_at(0)?,
                    arrival_unix_us: u64_at(8)? as i64,
                    flags: p[16],
                    data: p[17..].to_vec(),
                }
            }
            T_SR => {
                let rtp = p.get(0..4).ok_or_else(|| bad("short sender report"))?;
                Record::SenderReport {
                    rtp_time: u32::from_le_bytes(rtp.try_into().expect("4 bytes")),
                    ntp_unix_us: u64_at(4)? as i64,
                }
            }
            T_PAUSE => Record::Pause {
                at_unix_us: u64_at(0)? as i64,
            },
            T_RESUME => Record::Resume {
                at_unix_us: u64_at(0)? as i64,
            },
            T_END => Record::End {
                at_unix_us: u64_at(0)? as i64,
            },
            other => return Err(bad(&format!("unknown record type {other}"))),
        })
    }
}

/// Appends records to any `Write`. Durability (flush + fsync) is the caller's, because only
/// the caller knows its clock and its file.
pub struct JournalWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
    bytes_written: u64,
}

impl<W: Write> JournalWriter<W> {
    pub fn create(mut out: W, header: &JournalHeader) -> Result<Self> {
        let json = serde_json::to_vec(header).expect("header serializes");
        let mut head = Vec::with_capacity(json.len() + 18);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        head.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        out.write_all(&head)?;
        Ok(JournalWriter {
            out,
            scratch: Vec::new(),
            bytes_written: head.len() as u64,
        })
    }

    /// Continue a journal that `scan` found valid up to its end (after recovery).
    pub fn append_to(out: W, valid_len: u64) -> Self {
        JournalWriter {
            out,
            scratch: Vec::new(),
            bytes_written: valid_len,
        }
    }

    /// Appends one record, or refuses it whole (`FrameTooLarge`) with nothing written.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        if let Record::Frame { data, .. } = record {
            if data.len() > MAX_FRAME {
                return Err(MediaError::FrameTooLarge(data.len()));
            }
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&[0; 4]);
        record.encode_body(&mut self.scratch);
        let body_len = self.scratch.len() - 4;
        self.scratch[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        let crc = crc32fast::hash(&self.scratch[4..]);
        self.scratch.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.scratch)?;
        self.bytes_written += self.scratch.len() as u64;
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a journal record by record. Stops cleanly at a torn or corrupt tail and says
/// where the valid part ends, so a crashed journal is still readable up to its last good
/// record.
pub struct JournalReader<R: Read> {
    input: R,
    header: JournalHeader,
    offset: u64,
    damaged_tail: bool,
    done: bool,
    /// A valid record too long to hold was skipped: the next frame follows a gap.
    skipped: bool,
    skipped_records: u64,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> JournalReader<R> {
    pub fn open(mut input: R) -> Result<Self> {
        let mut fixed = [0u8; 14];
        if !read_full(&mut input, &mut fixed)? || &fixed[..8] != MAGIC {
            return Err(MediaError::NotAJournal);
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != VERSION {
            return Err(MediaError::UnsupportedVersion(version));
        }
        let len = u32::from_le_bytes(fixed[10..14].try_into().expect("4 bytes")) as usize;
        if len > MAX_HEADER {
            return Err(MediaError::CorruptHeader(format!("header length {len}")));
        }
        let mut json = vec![0u8; len + 4];
        if !read_full(&mut input, &mut json)? {
            return Err(MediaError::CorruptHeader("truncated".into()));
        }
        let crc = u32::from_le_bytes(json[len..].try_into().expect("4 bytes"));
        json.truncate(len);
        if crc32fast::hash(&json) != crc {
            return Err(MediaError::CorruptHeader("checksum mismatch".into()));
        }
        let header: JournalHeader =
            serde_json::from_slice(&json).map_err(|e| MediaError::CorruptHeader(e.to_string()))?;
        Ok(JournalReader {
            input,
            header,
            offset: 14 + len as u64 + 4,
            damaged_tail: false,
            done: false,
            skipped: false,
            skipped_records: 0,
        })
    }

    pub fn header(&self) -> &JournalHeader {
        &self.header
    }

    /// The next intact record, or `None` at the end of the valid part.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        let mut got = 0;
        // Distinguish a clean end (no byte at all) from a torn length field.
        while got < 4 {
            match self.input.read(&mut len[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got < 4 {
            self.done = true;
            self.damaged_tail = got > 0;
            return Ok(None);
        }
        let body_len = u32::from_le_bytes(len) as usize;
        if body_len == 0 {
            return Ok(self.stop_damaged());
        }
        if body_len > MAX_RECORD {
            // Too long to hold, but it may be whole (an older writer took any length):
            // check its CRC in pieces. A valid one is skipped, never taken for a torn tail,
            // so recovery does not truncate the records after it.
            return match self.skip_record(body_len)? {
                true => {
                    self.offset += 4 + body_len as u64 + 4;
                    self.skipped = true;
                    self.skipped_records += 1;
                    self.next_record()
                }
                false => Ok(self.stop_damaged()),
            };
        }
        let mut body = vec![0u8; body_len + 4];
        if !read_full(&mut self.input, &mut body)? {
            return Ok(self.stop_damaged());
        }
        let crc = u32::from_le_bytes(body[body_len..].try_into().expect("4 bytes"));
        body.truncate(body_len);
        if crc32fast::hash(&body) != crc {
            return Ok(self.stop_damaged());
        }
        match Record::decode_body(&body) {
            Ok(mut record) => {
                self.offset += 4 + body_len as u64 + 4;
                if let Record::Frame { flags: f, .. } = &mut record {
                    if std::mem::take(&mut self.skipped) {
                        *f |= flags::DISCONTINUITY;
                    }
                }
                Ok(Some(record))
            }
            Err(_) => Ok(self.stop_damaged()),
        }
    }

    /// Reads past a record of `body_len` bytes and its CRC in bounded pieces; true when it
    /// was whole and its CRC matched.
    fn skip_record(&mut self, body_len: usize) -> Result<bool> {
        let mut crc = crc32fast::Hasher::new();
        let mut chunk = vec![0u8; 64 << 10];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if !read_full(&mut self.input, &mut chunk[..n])? {
                return Ok(false);
            }
            crc.update(&chunk[..n]);
            left -= n;
        }
        let mut stored = [0u8; 4];
        if !read_full(&mut self.input, &mut stored)? {
            return Ok(false);
        }
        Ok(crc.finalize() == u32::from_le_bytes(stored))
    }

    /// Valid records skipped for their size (see [`MAX_RECORD`]).
    pub fn skipped_records(&self) -> u64 {
        self.skipped_records
    }

    fn stop_damaged(&mut self) -> Option<Record> {
        self.done = true;
        self.damaged_tail = true;
        None
    }

    /// Byte length of the valid prefix read so far.
    pub fn valid_len(&self) -> u64 {
        self.offset
    }

    /// True once the reader stopped at a torn or corrupt record rather than a clean end.
    pub fn damaged_tail(&self) -> bool {
        self.damaged_tail
    }
}

/// What a whole journal holds, for inspection and recovery.
#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    pub header: JournalHeader,
    pub frames: u64,
    pub keyframes: u64,
    pub frame_bytes: u64,
    pub sender_reports: u64,
    pub pauses: u64,
    pub first_arrival_unix_us: Option<i64>,
    pub last_arrival_unix_us: Option<i64>,
    pub first_rtp_time: Option<u64>,
    pub last_rtp_time: Option<u64>,
    pub ended_cleanly: bool,
    pub valid_len: u64,
    pub damaged_tail: bool,
}

pub fn summarize<R: Read>(input: R) -> Result<JournalSummary> {
    let mut reader = JournalReader::open(input)?;
    let mut s = JournalSummary {
        header: reader.header().clone(),
        frames: 0,
        keyframes: 0,
        frame_bytes: 0,
        sender_reports: 0,
        pauses: 0,
        first_arrival_unix_us: None,
        last_arrival_unix_us: None,
        first_rtp_time: None,
        last_rtp_time: None,
        ended_cleanly: false,
        valid_len: 0,
        damaged_tail: false,
    };
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Frame {
                rtp_time,
                arrival_unix_us,
                flags,
                data,
            } => {
                s.frames += 1;
                s.keyframes += u64::from(flags & flags::KEYFRAME != 0);
                s.frame_bytes += data.len() as u64;
                s.first_arrival_unix_us.get_or_insert(arrival_unix_us);
                s.last_arrival_unix_us = Some(arrival_unix_us);
                s.first_rtp_time.get_or_insert(rtp_time);
                s.last_rtp_time = Some(rtp_time);
            }
            Record::SenderReport { .. } => s.sender_reports += 1,
            Record::Pause { .. } => s.pauses += 1,
            Record::Resume { .. } => {}
            Record::End { .. } => s.ended_cleanly = true,
        }
    }
    s.valid_len = reader.valid_len();
    s.damaged_tail = reader.damaged_tail();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn header() -> JournalHeader {
        JournalHeader {
            track_id: "trk_a".into(),
            publication_id: "pub_a".into(),
            session_id: "ses_a".into(),
            room_id: "room_a".into(),
            participant: "alice".into(),
            kind: MediaKind::Audio,
            codec: Codec::Opus,
            clock_rate: 48_000,
            mid: "0".into(),
            rid: None,
            created_unix_us: 1,
        }
    }

    fn frame(i: u64) -> Record {
        Record::Frame {
            rtp_time: i * 960,
            arrival_unix_us: (i * 20_000) as i64,
            flags: flags::KEYFRAME,
            data: vec![i as u8; 50],
        }
    }

    fn journal(n: u64) -> Vec<u8> {
        let mut w = JournalWriter::create(Vec::new(), &header()).unwrap();
        for i in 0..n {
            w.append(&frame(i)).unwrap();
        }
        w.append(&Record::SenderReport {
            rtp_time: 5,
            ntp_unix_us: 7,
        })
        .unwrap();
        w.append(&Record::End { at_unix_us: 9 }).unwrap();
        w.into_inner()
    }

    #[test]
    fn round_trip() {
        let bytes = journal(10);
        let mut r = JournalReader::open(&bytes[..]).unwrap();
        assert_eq!(r.header(), &header());
        for i in 0..10 {
            assert_eq!(r.next_record().unwrap(), Some(frame(i)));
        }
        assert_eq!(
            r.next_record().unwrap(),
            Some(Record::SenderReport {
                rtp_time: 5,
                ntp_unix_us: 7
            })
        );
        assert_eq!(
            r.next_record().unwrap(),
            Some(Record::End { at_unix_us: 9 })
        );
        assert_eq!(r.next_record().unwrap(), None);
        assert!(!r.damaged_tail());
        assert_eq!(r.valid_len(), bytes.len() as u64);
    }

    /// Writes a record the way a writer before the size cap did: any length.
    fn raw_record(out: &mut Vec<u8>, record: &Record) {
        let mut body = Vec::new();
        record.encode_body(&mut body);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    }

    #[test]
    fn an_oversized_frame_is_refused_whole_and_the_journal_goes_on() {
        let mut w = JournalWriter::create(Vec::new(), &header()).unwrap();
        w.append(&frame(0)).unwrap();
        let before = w.bytes_written();
        let huge = Record::Frame {
            rtp_time: 960,
            arrival_unix_us: 20_000,
            flags: 0,
            data: vec![0; MAX_FRAME + 1],
        };
        assert!(matches!(
            w.append(&huge),
            Err(MediaError::FrameTooLarge(n)) if n == MAX_FRAME + 1
        ));
        assert_eq!(w.bytes_written(), before, "nothing of it was written");
        w.append(&frame(2)).unwrap();
        // The largest frame allowed is a record every reader takes whole.
        let largest = Record::Frame {
            rtp_time: 3 * 960,
            arrival_unix_us: 60_000,
            flags: 0,
            data: vec![7; MAX_FRAME],
        };
        w.append(&largest).unwrap();
        let bytes = w.into_inner();
        let s = summarize(&bytes[..]).unwrap();
        assert_eq!(s.frames, 3);
        assert!(!s.damaged_tail);
    }

    /// A journal written before the cap with a 20 MB frame in the middle: the frame is
    /// skipped, the frames after it are read (the first with a discontinuity), and the
    /// valid length is the whole file, so recovery truncates nothing.
    #[test]
    fn a_valid_record_over_the_read_limit_is_skipped_not_taken_for_a_torn_tail() {
        let mut bytes = JournalWriter::create(Vec::new(), &header())
            .unwrap()
            .into_inner();
        raw_record(&mut bytes, &frame(0));
        raw_record(
            &mut bytes,
            &Record::Frame {
                rtp_time: 960,
                arrival_unix_us: 20_000,
                flags: flags::KEYFRAME,
                data: vec![0x55; 20 << 20],
            },
        );
        for i in 2..5 {
            raw_record(&mut bytes, &frame(i));
        }
        let mut r = JournalReader::open(&bytes[..]).unwrap();
        assert_eq!(r.next_record().unwrap(), Some(frame(0)));
        let Some(Record::Frame {
            rtp_time, flags: f, ..
        }) = r.next_record().unwrap()
        else {
            panic!("the frames after the skipped one are read");
        };
        assert_eq!(rtp_time, 2 * 960);
        assert_ne!(f & flags::DISCONTINUITY, 0);
        assert_eq!(r.next_record().unwrap(), Some(frame(3)));
        assert_eq!(r.next_record().unwrap(), Some(frame(4)));
        assert_eq!(r.next_record().unwrap(), None);
        assert!(!r.damaged_tail());
        assert_eq!(r.skipped_records(), 1);
        assert_eq!(r.valid_len(), bytes.len() as u64);
        // Cut inside the big record, it is a torn tail after frame 0.
        let cut = summarize(&bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(cut.frames, 1);
        assert!(cut.damaged_tail);
        // A corrupt CRC on it is damage too.
        let mut bad = bytes.clone();
        let at = 18 + 400 + (20 << 20) / 2;
        let at = at.min(bad.len() - 100);
        bad[at] ^= 0xff;
        assert_eq!(summarize(&bad[..]).unwrap().frames, 1);
    }

    #[test]
    fn every_truncation_reads_a_valid_prefix() {
        let bytes = journal(5);
        let header_len = JournalReader::open(&bytes[..]).unwrap().valid_len() as usize;
        for cut in header_len..bytes.len() {
            let s = summarize(&bytes[..cut]).unwrap();
            assert!(s.valid_len as usize <= cut);
            // Re-reading just the valid prefix is clean.
            let again = summarize(&bytes[..s.valid_len as usize]).unwrap();
            assert!(!again.damaged_tail);
            assert_eq!(again.frames, s.frames);
        }
    }

    #[test]
    fn corruption_stops_at_last_good_record() {
        let mut bytes = journal(5);
        let len = bytes.len();
        bytes[len - 20] ^= 0xff; // inside the sender report
        let s = summarize(&bytes[..]).unwrap();
        assert_eq!(s.frames, 5);
        assert!(s.damaged_tail);
        assert!(!s.ended_cleanly);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            summarize(&b"hello"[..]),
            Err(MediaError::NotAJournal)
        ));
        let mut bytes = journal(1);
        bytes[20] ^= 0x55;
        assert!(summarize(&bytes[..]).is_err());
        // Random bytes after a valid header.
        let mut bytes = journal(0);
        bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        let _ = summarize(&bytes[..]).unwrap();
    }
}
