//! EBML element encoding (RFC 8794), the bits of it a Matroska/WebM muxer needs.

pub fn id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Variable-length size with the shortest encoding.
pub fn size(out: &mut Vec<u8>, n: u64) {
    let mut len = 1;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    size_with_len(out, n, len);
}

/// Size in exactly `len` bytes, so it can be patched in place later.
pub fn size_with_len(out: &mut Vec<u8>, n: u64, len: usize) {
    let marked = n | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// The reserved "unknown size" value for an 8-byte size field.
pub const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

pub fn uint(out: &mut Vec<u8>, element: u32, v: u64) {
    id(out, element);
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

pub fn float(out: &mut Vec<u8>, element: u32, v: f64) {
    id(out, element);
    size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn bytes(out: &mut Vec<u8>, element: u32, v: &[u8]) {
    id(out, element);
    size(out, v.len() as u64);
    out.extend_from_slice(v);
}

pub fn master(out: &mut Vec<u8>, element: u32, body: &[u8]) {
    bytes(out, element, body)
}

/// A Void element filling exactly `total` bytes (total ≥ 9), used to reserve space.
pub fn void(out: &mut Vec<u8>, total: usize) {
    assert!(total >= 9, "void needs room for its id and an 8-byte size");
    id(out, 0xEC);
    size_with_len(out, (total - 9) as u64, 8);
    out.resize(out.len() + total - 9, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let mut v = Vec::new();
        size(&mut v, 5);
        assert_eq!(v, [0x85]);
        v.clear();
        size(&mut v, 127); // 0x7f is reserved in one byte
        assert_eq!(v, [0x40, 0x7f]);
        v.clear();
        size_with_len(&mut v, 1, 8);
        assert_eq!(v, [0x01, 0, 0, 0, 0, 0, 0, 1]);
        v.clear();
        void(&mut v, 20);
        assert_eq!(v.len(), 20);
    }
}
