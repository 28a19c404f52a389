//! IVF (the VP8/VP9 elementary stream file `ffmpeg -f ivf` writes): what test publishers
//! send from.

use crate::{MediaError, Result};

#[derive(Debug, Clone)]
pub struct IvfFrame {
    /// Presentation time in the file's time base.
    pub pts: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Ivf {
    pub fourcc: [u8; 4],
    pub width: u16,
    pub height: u16,
    pub timebase_num: u32,
    pub timebase_den: u32,
    pub frames: Vec<IvfFrame>,
}

pub fn parse(b: &[u8]) -> Result<Ivf> {
    let bad = |why: &str| MediaError::malformed("IVF file", why);
    if b.len() < 32 || &b[0..4] != b"DKIF" {
        return Err(bad("no DKIF signature"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let header_len = u16_at(6) as usize;
    let mut ivf = Ivf {
        fourcc: b[8..12].try_into().expect("4 bytes"),
        width: u16_at(12),
        height: u16_at(14),
        timebase_den: u32_at(16),
        timebase_num: u32_at(20),
        frames: Vec::new(),
    };
    if ivf.timebase_den == 0 || ivf.timebase_num == 0 {
        return Err(bad("zero time base"));
    }
    let mut at = header_len.max(32);
    while at + 12 <= b.len() {
        let size = u32_at(at) as usize;
        let pts = u64::from_le_bytes(b[at + 4..at + 12].try_into().expect("8 bytes"));
        let data = b
            .get(at + 12..at + 12 + size)
            .ok_or_else(|| bad("truncated frame"))?;
        ivf.frames.push(IvfFrame {
            pts,
            data: data.to_vec(),
        });
        at += 12 + size;
    }
    Ok(ivf)
}
