//! Malformed input is an error, never a panic: thousands of deterministic mutations of valid
//! inputs (bit flips, truncations, splices, random bytes) through every parser in this crate
//! and through the whole remux. A panic anywhere fails the test with the input's seed.

use reel_core::{Codec, MediaKind};
use reel_media::journal::{self, flags, JournalHeader, JournalReader, JournalWriter, Record};
use reel_media::{codec, h264, ivf, ogg, remux};
use std::io::Cursor;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            3 => {
                let at = rng.below(v.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, junk);
            }
            _ if v.len() > 8 => {
                // Copy a run over another place: lengths and offsets that point elsewhere.
                let (a, b) = (rng.below(v.len() - 4), rng.below(v.len() - 4));
                let run: Vec<u8> = v[a..a + 4].to_vec();
                v[b..b + 4].copy_from_slice(&run);
            }
            _ => {}
        }
    }
    v
}

fn header(kind: MediaKind, codec: Codec) -> JournalHeader {
    JournalHeader {
        track_id: "trk_x".into(),
        publication_id: "pub_x".into(),
        session_id: "ses_x".into(),
        room_id: "room_x".into(),
        participant: "x".into(),
        kind,
        codec,
        clock_rate: if kind == MediaKind::Audio {
            48_000
        } else {
            90_000
        },
        mid: "0".into(),
        rid: None,
        created_unix_us: 0,
    }
}

fn vp8_key() -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    f.extend([7u8; 40]);
    f
}

fn sample_journals() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (kind, codec) in [
        (MediaKind::Video, Codec::Vp8),
        (MediaKind::Audio, Codec::Opus),
        (MediaKind::Video, Codec::H264),
    ] {
        let mut w = JournalWriter::create(Vec::new(), &header(kind, codec)).unwrap();
        w.append(&Record::SenderReport {
            rtp_time: 10,
            ntp_unix_us: 5,
        })
        .unwrap();
        for i in 0..20u64 {
            let data = match codec {
                Codec::Vp8 if i % 10 == 0 => vp8_key(),
                Codec::Vp8 => vec![0x11, 0, 0, 1, 2, 3],
                Codec::H264 => vec![
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0, 0, 1, 0x68,
                    0xcb, 0, 0, 1, 0x65, 0x88,
                ],
                _ => vec![0xfc, 1, 2, 3],
            };
            let f = if i % 10 == 0 { flags::KEYFRAME } else { 0 };
            w.append(&Record::Frame {
                rtp_time: 10 + i * 3000,
                arrival_unix_us: i as i64 * 33_000,
                flags: f,
                data,
            })
            .unwrap();
        }
        w.append(&Record::Pause { at_unix_us: 1 }).unwrap();
        w.append(&Record::End { at_unix_us: 2 }).unwrap();
        out.push(w.into_inner());
    }
    out
}

#[test]
fn mutated_journals_never_panic_the_reader_or_the_remux() {
    let journals = sample_journals();
    let mut rng = Rng(0x5eed);
    for round in 0..3000 {
        let a = mutate(&mut rng, &journals[round % 3]);
        let b = mutate(&mut rng, &journals[(round + 1) % 3]);
        let _ = journal::summarize(&a[..]);
        // The whole remux, as recovery would run it on a damaged disk.
        let plans = [&a, &b].map(|j| remux::analyze(&j[..]).ok());
        if let [Some(pa), Some(pb)] = plans {
            let tracks = vec![
                (pa, JournalReader::open(&a[..]).unwrap()),
                (pb, JournalReader::open(&b[..]).unwrap()),
            ];
            let _ = remux::remux(tracks, Cursor::new(Vec::new()));
        }
    }
}

#[test]
fn mutated_container_and_codec_headers_never_panic() {
    let mut ivf_file =
        b"DKIF\0\0\x20\0VP80\x40\x01\xf0\0\x1e\0\0\0\x01\0\0\0\x02\0\0\0\0\0\0\0".to_vec();
    for pts in 0..3u64 {
        let f = vp8_key();
        ivf_file.extend((f.len() as u32).to_le_bytes());
        ivf_file.extend(pts.to_le_bytes());
        ivf_file.extend(f);
    }
    assert_eq!(ivf::parse(&ivf_file).unwrap().frames.len(), 3);
    let mut ogg_file = Vec::new();
    for (i, packet) in [
        b"OpusHead\x01\x02\0\0\x80\xbb\0\0\0\0\0".to_vec(),
        b"OpusTags".to_vec(),
        vec![0xfc; 30],
    ]
    .iter()
    .enumerate()
    {
        ogg_file.extend(b"OggS\0");
        ogg_file.push(if i == 0 { 2 } else { 0 });
        ogg_file.extend([0u8; 8]);
        ogg_file.extend(1u32.to_le_bytes());
        ogg_file.extend((i as u32).to_le_bytes());
        ogg_file.extend([0u8; 4]);
        ogg_file.push(1);
        ogg_file.push(packet.len() as u8);
        ogg_file.extend(packet);
    }
    assert_eq!(ogg::opus_packets(&ogg_file).unwrap().len(), 1);
    let sps = [
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    let vp9_key = [0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0, 0x0b, 0x38, 0x00];
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let _ = ivf::parse(&mutate(&mut rng, &ivf_file));
        let _ = ogg::opus_packets(&mutate(&mut rng, &ogg_file));
        let _ = h264::sps_dimensions(&mutate(&mut rng, &sps));
        let au = mutate(
            &mut rng,
            &[&[0u8, 0, 0, 1][..], &sps, &[0, 0, 1, 0x65, 0x88]].concat(),
        );
        let _ = h264::to_length_prefixed(&au);
        for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus, Codec::Av1] {
            let _ = codec::keyframe_dimensions(c, &mutate(&mut rng, &vp9_key));
            let _ = codec::keyframe_dimensions(c, &au);
            let _ = codec::is_keyframe(c, &mutate(&mut rng, &vp8_key()));
        }
        let _ = codec::opus_packet_samples(&mutate(&mut rng, &[0xfb, 0x03]));
    }
}
