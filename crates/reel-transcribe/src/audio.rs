//! WAV in (what the renderer writes), 16 kHz mono out (what speech models take).

use crate::{Result, TranscribeError, RATE};

fn bad(what: impl Into<String>) -> TranscribeError {
    TranscribeError::Audio(what.into())
}

/// 16-bit PCM WAV → (sample rate, mono samples); several channels are averaged.
pub fn read_wav(bytes: &[u8]) -> Result<(u32, Vec<i16>)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a WAV file"));
    }
    let mut pos = 12;
    let mut format: Option<(u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size =
            u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let f = bytes
                .get(body..body + 16)
                .ok_or_else(|| bad("short fmt chunk"))?;
            let tag = u16::from_le_bytes([f[0], f[1]]);
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let bits = u16::from_le_bytes([f[14], f[15]]);
            if tag != 1 || bits != 16 || channels == 0 {
                return Err(bad(format!(
                    "only 16-bit PCM is read (format {tag}, {bits} bits, {channels} channels)"
                )));
            }
            format = Some((channels, rate, bits));
        } else if id == b"data" {
            let (channels, rate, _) = format.ok_or_else(|| bad("data before fmt"))?;
            // A writer that never went back to patch the size leaves 0 or too much: take
            // what is there.
            let end = if size == 0 {
                bytes.len()
            } else {
                (body + size).min(bytes.len())
            };
            let samples: Vec<i16> = bytes[body..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            let mono = samples
                .chunks_exact(channels as usize)
                .map(|frame| {
                    (frame.iter().map(|s| *s as i32).sum::<i32>() / channels as i32) as i16
                })
                .collect();
            return Ok((rate, mono));
        }
        pos = body + size + (size & 1);
    }
    Err(bad("no data chunk"))
}

/// Mono 16-bit PCM as a WAV file (what speech servers take).
pub fn write_wav(rate: u32, pcm: &[i16]) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[1, 0, 1, 0]);
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&[2, 0, 16, 0]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    pcm.iter()
        .for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    out
}

/// Resamples to 16 kHz from a whole multiple of it (the renderer's 48 kHz), low-pass
/// filtered first so nothing above 8 kHz folds back into speech.
pub fn to_16k(rate: u32, pcm: &[i16]) -> Result<Vec<i16>> {
    if rate == RATE {
        return Ok(pcm.to_vec());
    }
    if rate == 0 || !rate.is_multiple_of(RATE) {
        return Err(bad(format!("cannot resample {rate} Hz to {RATE} Hz")));
    }
    let factor = (rate / RATE) as usize;
    let taps = lowpass(0.45 / factor as f64, 16 * factor + 1);
    let half = taps.len() / 2;
    let out = (0..pcm.len() / factor)
        .map(|i| {
            let centre = i * factor;
            let acc: f64 = taps
                .iter()
                .enumerate()
                .filter_map(|(k, t)| {
                    let j = (centre + k).checked_sub(half)?;
                    pcm.get(j).map(|s| *s as f64 * t)
                })
                .sum();
            acc.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16
        })
        .collect();
    Ok(out)
}

/// A windowed-sinc (Hamming) low-pass with cutoff `fc` (cycles per sample), unity gain.
fn lowpass(fc: f64, n: usize) -> Vec<f64> {
    let m = (n - 1) as f64;
    let mut taps: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - m / 2.0;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            sinc * (0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / m).cos())
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= sum);
    taps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, seconds: f64) -> Vec<i16> {
        (0..(rate as f64 * seconds) as usize)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn speech_band_passes_and_what_would_fold_back_is_removed() {
        let kept = to_16k(48_000, &tone(1000.0, 48_000, 1.0)).unwrap();
        assert_eq!(kept.len(), 16_000);
        assert!((rms(&kept[100..]) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.02);
        // 12 kHz would alias to 4 kHz without the filter.
        let removed = to_16k(48_000, &tone(12_000.0, 48_000, 1.0)).unwrap();
        assert!(rms(&removed[100..]) < 20.0, "{}", rms(&removed[100..]));
        assert!(to_16k(44_100, &[0; 10]).is_err());
    }

    #[test]
    fn reads_a_stereo_wav_as_mono_and_refuses_what_is_not_one() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 2, 0]);
        wav.extend_from_slice(&48_000u32.to_le_bytes());
        wav.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
        wav.extend_from_slice(&[4, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&0u32.to_le_bytes());
        for (l, r) in [(100i16, 300i16), (-50, -150)] {
            wav.extend_from_slice(&l.to_le_bytes());
            wav.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(read_wav(&wav).unwrap(), (48_000, vec![200, -100]));
        let written = write_wav(16_000, &[1, -2, i16::MAX, i16::MIN]);
        assert_eq!(written.len(), 44 + 8);
        assert_eq!(
            read_wav(&written).unwrap(),
            (16_000, vec![1, -2, i16::MAX, i16::MIN])
        );
        assert!(read_wav(b"RIFF....WAVX").is_err());
        assert!(read_wav(&wav[..30]).is_err());
    }
}
