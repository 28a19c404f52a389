//! Ogg pages → Opus packets (RFC 3533, RFC 7845), for test publishers.

use crate::{MediaError, Result};

/// The audio packets of the first logical stream, without the OpusHead/OpusTags headers.
pub fn opus_packets(b: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = |why: &str| MediaError::malformed("Ogg file", why);
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    let mut serial = None;
    while at < b.len() {
        let page = b
            .get(at..at + 27)
            .ok_or_else(|| bad("truncated page header"))?;
        if &page[0..4] != b"OggS" {
            return Err(bad("lost page sync"));
        }
        let page_serial = u32::from_le_bytes(page[14..18].try_into().expect("4 bytes"));
        let nsegs = page[26] as usize;
        let table = b
            .get(at + 27..at + 27 + nsegs)
            .ok_or_else(|| bad("truncated segment table"))?;
        let mut data_at = at + 27 + nsegs;
        let mine = *serial.get_or_insert(page_serial) == page_serial;
        for &lace in table {
            let seg = b
                .get(data_at..data_at + lace as usize)
                .ok_or_else(|| bad("truncated page"))?;
            data_at += lace as usize;
            if !mine {
                continue;
            }
            current.extend_from_slice(seg);
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data_at;
    }
    if packets.len() < 2 || !packets[0].starts_with(b"OpusHead") {
        return Err(bad("not an Ogg Opus stream"));
    }
    Ok(packets.split_off(2))
}
