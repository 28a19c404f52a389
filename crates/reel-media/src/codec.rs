//! Just enough of each video bitstream to tell keyframes and picture sizes: the muxer
//! needs the size for the track header, and the remux needs keyframes to start cleanly
//! and to resume after loss without showing corrupted pictures.

use reel_core::Codec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u16,
    pub height: u16,
}

/// Whether a frame can be decoded without any earlier frame.
pub fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::Opus | Codec::Pcmu | Codec::Pcma | Codec::G722 => true,
        Codec::Vp8 => frame.first().is_some_and(|b| b & 0x01 == 0),
        Codec::Vp9 => vp9_keyframe_dimensions(frame).is_some(),
        Codec::H264 => h264_nal_types(frame).any(|t| t == 5),
        Codec::Av1 => false,
    }
}

/// Picture size carried by a keyframe, if this frame is one.
pub fn keyframe_dimensions(codec: Codec, frame: &[u8]) -> Option<Dimensions> {
    match codec {
        Codec::Vp8 => vp8_keyframe_dimensions(frame),
        Codec::Vp9 => vp9_keyframe_dimensions(frame),
        Codec::H264 => crate::h264::nal_units(frame)
            .find(|n| crate::h264::nal_type(n) == crate::h264::NAL_SPS)
            .and_then(crate::h264::sps_dimensions)
            .filter(|_| is_keyframe(Codec::H264, frame)),
        _ => None,
    }
}

/// RFC 6386 §9.1: a 3-byte frame tag, then for keyframes the start code 9d 01 2a and two
/// 14-bit sizes (the top two bits are a scaling hint).
fn vp8_keyframe_dimensions(f: &[u8]) -> Option<Dimensions> {
    if f.len() < 10 || f[0] & 0x01 != 0 || f[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([f[6], f[7]]) & 0x3fff;
    let height = u16::from_le_bytes([f[8], f[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some(Dimensions { width, height })
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | bit as u32;
            self.pos += 1;
        }
        Some(v)
    }
}

/// VP9 uncompressed header (VP9 bitstream spec §6.2) up to the frame size.
fn vp9_keyframe_dimensions(f: &[u8]) -> Option<Dimensions> {
    let mut b = Bits { data: f, pos: 0 };
    if b.read(2)? != 2 {
        return None;
    }
    let profile = b.read(1)? | (b.read(1)? << 1);
    if profile == 3 {
        b.read(1)?;
    }
    if b.read(1)? == 1 {
        return None; // show_existing_frame
    }
    if b.read(1)? != 0 {
        return None; // not a keyframe
    }
    b.read(1)?; // show_frame
    b.read(1)?; // error_resilient_mode
    if b.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        b.read(1)?; // ten_or_twelve_bit
    }
    let color_space = b.read(3)?;
    if color_space != 7 {
        b.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            b.read(3)?;
        }
    } else if profile == 1 || profile == 3 {
        b.read(1)?;
    }
    let width = b.read(16)? + 1;
    let height = b.read(16)? + 1;
    Some(Dimensions {
        width: width as u16,
        height: height as u16,
    })
}

/// NAL unit types of an Annex B access unit.
fn h264_nal_types(f: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < f.len() {
            if f[i] == 0 && f[i + 1] == 0 && f[i + 2] == 1 {
                i += 3;
                return Some(f[i] & 0x1f);
            }
            i += 1;
        }
        None
    })
}

/// Samples (at 48 kHz) in one Opus packet, from its TOC byte (RFC 6716 §3.1).
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame duration in units of 1/400 s (2.5 ms).
    let per_frame_400ths: u32 = match config {
        0..=11 => [4, 8, 16, 24][(config & 3) as usize],
        12..=15 => [4, 8][(config & 1) as usize],
        _ => [1, 2, 4, 8][(config & 3) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as u32,
    };
    Some(per_frame_400ths * frames * 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_header() {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&640u16.to_le_bytes());
        f.extend_from_slice(&360u16.to_le_bytes());
        assert!(is_keyframe(Codec::Vp8, &f));
        assert_eq!(
            keyframe_dimensions(Codec::Vp8, &f),
            Some(Dimensions {
                width: 640,
                height: 360
            })
        );
        f[0] |= 1;
        assert!(!is_keyframe(Codec::Vp8, &f));
        assert_eq!(keyframe_dimensions(Codec::Vp8, &[]), None);
    }

    #[test]
    fn opus_durations() {
        // CELT 20 ms, one frame.
        assert_eq!(opus_packet_samples(&[(31 << 3)]), Some(960));
        // SILK 60 ms.
        assert_eq!(opus_packet_samples(&[(3 << 3)]), Some(2880));
        // Code 3 with 3 frames of 10 ms hybrid.
        assert_eq!(opus_packet_samples(&[(12 << 3) | 3, 3]), Some(1440));
        assert_eq!(opus_packet_samples(&[]), None);
    }

    #[test]
    fn truncated_headers_never_panic() {
        for len in 0..12 {
            let f = vec![0x82u8; len];
            let _ = keyframe_dimensions(Codec::Vp9, &f);
            let _ = is_keyframe(Codec::H264, &f);
        }
    }
}
