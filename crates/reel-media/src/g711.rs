//! G.711 (ITU-T G.711) µ-law and A-law to 16-bit linear PCM. SIP calls carry it; the
//! per-participant file stores it decoded (see `pcm`).

/// µ-law: the byte is stored inverted; 3 exponent bits, 4 mantissa bits, bias 0x84.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A-law: even bits inverted (xor 0x55); a set sign bit means positive.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_matches_the_standard_table() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xf0), 120);
    }

    #[test]
    fn alaw_matches_the_standard_table() {
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn decoding_is_monotonic_in_each_half() {
        // µ-law codes 0x80..=0xff run from the largest positive value down to zero.
        let pos: Vec<i16> = (0x80..=0xffu8).map(ulaw_to_linear).collect();
        assert!(pos.windows(2).all(|w| w[0] > w[1]));
    }
}
