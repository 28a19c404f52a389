//! H.264 bitstream pieces for muxing WebRTC video into MP4: Annex B access units (what the
//! RTP depacketizer yields) to length-prefixed samples, SPS parsing for the picture size,
//! and the `avcC` decoder configuration (ISO/IEC 14496-15 §5.3.3).

use crate::codec::Dimensions;

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B byte stream, without their start codes.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &(_, payload)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map(|s| s.0).unwrap_or(data.len());
        // A 4-byte start code's leading zero belongs to no NAL unit.
        while end > payload && data[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > payload {
            units.push(&data[payload..end]);
        }
    }
    units.into_iter()
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map(|b| b & 0x1f).unwrap_or(0)
}

/// Annex B → 4-byte big-endian length prefixes, dropping access unit delimiters.
pub fn to_length_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in nal_units(data).filter(|n| nal_type(n) != NAL_AUD) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// The first SPS and PPS of an access unit.
pub fn parameter_sets(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let sps = nal_units(data).find(|n| nal_type(n) == NAL_SPS)?;
    let pps = nal_units(data).find(|n| nal_type(n) == NAL_PPS)?;
    Some((sps.to_vec(), pps.to_vec()))
}

pub fn avcc(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 {
        return None;
    }
    let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    c.extend_from_slice(sps);
    c.push(1);
    c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    c.extend_from_slice(pps);
    Some(c)
}

struct Rbsp {
    bits: Vec<u8>,
    pos: usize,
}

impl Rbsp {
    /// Removes emulation prevention bytes (00 00 03 → 00 00).
    fn new(nal: &[u8]) -> Rbsp {
        let mut bits = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal.iter().skip(1) {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            bits.push(b);
        }
        Rbsp { bits, pos: 0 }
    }
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.bits.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }
    fn bits(&mut self, n: usize) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Picture size from a sequence parameter set (H.264 §7.3.2.1.1), cropping applied.
pub fn sps_dimensions(sps: &[u8]) -> Option<Dimensions> {
    let mut r = Rbsp::new(sps);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    let mut separate_colour_plane = 0;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            for i in 0..if chroma_format == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? as i64).rem_euclid(256);
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?;
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match (chroma_format, separate_colour_plane) {
            (0, _) | (3, 1) => (1, 2 - frame_mbs_only),
            (1, _) => (2, 2 * (2 - frame_mbs_only)),
            (2, _) => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        // Values come from the wire: 64-bit arithmetic cannot overflow on 32-bit fields.
        crop_x = unit_x as u64 * (l as u64 + rt as u64);
        crop_y = unit_y as u64 * (t as u64 + b as u64);
    }
    let width = (width_mbs as u64 * 16).checked_sub(crop_x)?;
    let height = ((2 - frame_mbs_only) as u64 * height_units as u64 * 16).checked_sub(crop_y)?;
    (width > 0 && height > 0 && width <= 16384 && height <= 16384).then_some(Dimensions {
        width: width as u16,
        height: height as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_annex_b_and_reads_a_real_sps() {
        // x264 baseline 320x240 SPS and a PPS, with 4- and 3-byte start codes.
        let sps = [
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
        ];
        let pps = [0x68, 0xcb, 0x83, 0xcb, 0x20];
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&sps);
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(&pps);
        au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        let units: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(units.len(), 3);
        assert_eq!(nal_type(units[2]), NAL_IDR);
        assert_eq!(
            sps_dimensions(&sps),
            Some(Dimensions {
                width: 320,
                height: 240
            })
        );
        let lp = to_length_prefixed(&au);
        assert_eq!(&lp[0..4], &(sps.len() as u32).to_be_bytes());
        assert!(avcc(&sps, &pps).is_some());
    }

    #[test]
    fn garbage_never_panics() {
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = sps_dimensions(&junk);
            let _ = to_length_prefixed(&junk);
            let _ = parameter_sets(&junk);
        }
    }
}
