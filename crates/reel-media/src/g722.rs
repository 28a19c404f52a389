//! G.722 (ITU-T G.722, 64 kbit/s mode) to 16 kHz 16-bit linear PCM. Wideband SIP calls
//! carry it; like G.711 the per-participant file stores it decoded (see `pcm`).
//!
//! G.722 is sub-band ADPCM: each byte holds a 6-bit code for the 0–4 kHz band and a 2-bit
//! code for the 4–8 kHz band, each decoded by an adaptive quantizer and a pole-zero
//! predictor, and the two bands are recombined by a 24-tap QMF into two output samples.
//! The decoder is stateful: one per stream, fed its frames in order. The block names in
//! the comments are the Recommendation's.

/// INVQBL: the low band's 6-bit inverse quantizer (mode 1, 64 kbit/s).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// INVQAL: the low band's 4-bit inverse quantizer, which drives its predictor.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// INVQAH: the high band's 2-bit inverse quantizer.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// LOGSCL: the low band's log scale-factor multipliers, indexed through RL42.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// LOGSCH: the high band's, indexed through RH2.
const WH: [i32; 3] = [0, -214, 798];
const RH2: [usize; 4] = [2, 1, 2, 1];
/// SCALEL/SCALEH: the log-to-linear table (one octave in 32 steps).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// The receive QMF's coefficients (the filter is symmetric; 12 of its 24 taps).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn sat16(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Sign of a 16-bit two's-complement value as the Recommendation tests it: 0 or -1.
fn sign(x: i32) -> i32 {
    x >> 15
}

/// One band's adaptive predictor (two poles, six zeros) and scale factor.
#[derive(Debug, Clone, Default)]
struct Band {
    /// Signal estimate for the next sample.
    s: i32,
    /// Zero section's part of it.
    sz: i32,
    /// Reconstructed signal, newest first.
    r: [i32; 3],
    /// Pole coefficients (index 0 unused).
    a: [i32; 3],
    /// Partially reconstructed signal (zero section plus difference), newest first.
    p: [i32; 3],
    /// Quantized differences, newest first.
    d: [i32; 7],
    /// Zero coefficients (index 0 unused).
    b: [i32; 7],
    /// Log scale factor.
    nb: i32,
    /// Linear scale factor.
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            det,
            ..Band::default()
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: adapt the scale factor to the code just seen.
    fn adapt_scale(&mut self, w: i32, limit: i32, shift: i32) {
        self.nb = ((self.nb * 127) >> 7) + w;
        self.nb = self.nb.clamp(0, limit);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let exponent = shift - (self.nb >> 11);
        let linear = if exponent < 0 {
            mantissa << -exponent
        } else {
            mantissa >> exponent
        };
        self.det = linear << 2;
    }

    /// Block 4: update the predictor with quantized difference `dq` and form the next
    /// signal estimate.
    fn predict(&mut self, dq: i32) {
        // RECONS, PARREC
        self.d[0] = dq;
        self.r[0] = sat16(self.s + dq);
        self.p[0] = sat16(self.sz + dq);

        // UPPOL2: second pole.
        let sg = [sign(self.p[0]), sign(self.p[1]), sign(self.p[2])];
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if sg[0] == sg[1] { -wd1 } else { wd1 }.min(32767);
        let mut a2 = (wd2 >> 7) + if sg[0] == sg[2] { 128 } else { -128 };
        a2 += (self.a[2] * 32512) >> 15;
        let a2 = a2.clamp(-12288, 12288);

        // UPPOL1: first pole, kept inside the stability triangle.
        let step = if sg[0] == sg[1] { 192 } else { -192 };
        let a1 = sat16(step + ((self.a[1] * 32640) >> 15));
        let bound = sat16(15360 - a2);
        let a1 = a1.clamp(-bound, bound);

        // UPZERO: the six zeros, by sign agreement of the differences.
        let gain = if dq == 0 { 0 } else { 128 };
        let sg0 = sign(dq);
        let mut b = [0; 7];
        for (i, b) in b.iter_mut().enumerate().skip(1) {
            let w = if sign(self.d[i]) == sg0 { gain } else { -gain };
            *b = sat16(w + ((self.b[i] * 32640) >> 15));
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.b = b;
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
        }
        self.a = [0, a1, a2];

        // FILTEP, FILTEZ, PREDIC
        let pole = |a: i32, r: i32| (a * sat16(r + r)) >> 15;
        let sp = sat16(pole(self.a[1], self.r[1]) + pole(self.a[2], self.r[2]));
        let sz = (1..7).fold(0, |acc, i| {
            acc + ((self.b[i] * sat16(self.d[i] + self.d[i])) >> 15)
        });
        self.sz = sat16(sz);
        self.s = sat16(sp + self.sz);
    }
}

/// A G.722 decoder for one stream.
#[derive(Debug, Clone)]
pub struct Decoder {
    low: Band,
    high: Band,
    /// The QMF's input history: alternating sum and difference of the bands.
    qmf: [i32; 24],
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            low: Band::new(32),
            high: Band::new(8),
            qmf: [0; 24],
        }
    }
}

impl Decoder {
    /// Decodes one frame: every byte gives two 16 kHz samples, appended to `out`.
    pub fn decode_into(&mut self, frame: &[u8], out: &mut Vec<i16>) {
        out.reserve(frame.len() * 2);
        for &code in frame {
            let low = (code & 0x3f) as usize;
            let high = (code >> 6) as usize;

            // Low band: the output uses all six bits, the predictor only the top four.
            let rlow = (self.low.s + ((self.low.det * QM6[low]) >> 15)).clamp(-16384, 16383);
            let dlow = (self.low.det * QM4[low >> 2]) >> 15;
            self.low.adapt_scale(WL[RL42[low >> 2]], 18432, 8);
            self.low.predict(dlow);

            let dhigh = (self.high.det * QM2[high]) >> 15;
            let rhigh = (self.high.s + dhigh).clamp(-16384, 16383);
            self.high.adapt_scale(WH[RH2[high]], 22528, 10);
            self.high.predict(dhigh);

            // Receive QMF: two output samples per band pair.
            self.qmf.copy_within(2.., 0);
            self.qmf[22] = rlow + rhigh;
            self.qmf[23] = rlow - rhigh;
            let (mut even, mut odd) = (0, 0);
            for (i, c) in QMF.iter().enumerate() {
                even += self.qmf[2 * i] * c;
                odd += self.qmf[2 * i + 1] * QMF[11 - i];
            }
            out.push(sat16(odd >> 11) as i16);
            out.push(sat16(even >> 11) as i16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_decodes_to_near_silence_and_every_byte_gives_two_samples() {
        // 0xff is the smallest step of both bands.
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.decode_into(&[0xff; 160], &mut out);
        assert_eq!(out.len(), 320);
        assert!(out.iter().all(|s| s.abs() < 64), "{:?}", &out[..16]);
    }

    #[test]
    fn any_bytes_decode_without_overflow() {
        // The predictor is bounded whatever arrives: garbage must never panic.
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d.decode_into(&x.to_le_bytes(), &mut out);
        }
        assert_eq!(out.len(), 160_000);
    }
}
