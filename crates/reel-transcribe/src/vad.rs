//! Voice-activity detection by frame energy: where a participant speaks, so that silence
//! (most of any participant's track in a conversation) never reaches the engine.

/// Frame length for the energy measure.
const FRAME_MS: usize = 20;
/// Pauses shorter than this stay inside one stretch (between words, between digits).
const BRIDGE_MS: usize = 400;
/// Shorter bursts are clicks, not speech.
const MIN_SPEECH_MS: usize = 150;
/// Kept either side, so soft word onsets and endings are not clipped.
const PAD_MS: usize = 200;
/// Longer stretches are split: recognizers work per utterance.
const MAX_STRETCH_MS: usize = 30_000;

/// Energy of a frame in dB over one LSB².
fn level_db(frame: &[i16]) -> f64 {
    let power = frame.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / frame.len().max(1) as f64;
    10.0 * (power + 1.0).log10()
}

/// Sample ranges `[from, to)` holding speech. The threshold is 10 dB over the noise floor
/// (the quietest tenth of frames), kept between 30 dB (digital near-silence) and 50 dB (so
/// that a track that is speech throughout still counts as speech).
pub fn speech(pcm: &[i16], rate: u32) -> Vec<(usize, usize)> {
    let frame = rate as usize * FRAME_MS / 1000;
    if frame == 0 || pcm.len() < frame {
        return Vec::new();
    }
    let levels: Vec<f64> = pcm.chunks_exact(frame).map(level_db).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = sorted[sorted.len() / 10];
    let threshold = (floor + 10.0).clamp(30.0, 50.0);

    let ms = |frames: usize| frames * FRAME_MS;
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        if *level < threshold {
            continue;
        }
        match stretches.last_mut() {
            Some((_, end)) if ms(i - *end) <= BRIDGE_MS => *end = i + 1,
            _ => stretches.push((i, i + 1)),
        }
    }
    let pad = PAD_MS / FRAME_MS;
    let max = MAX_STRETCH_MS / FRAME_MS;
    let mut out = Vec::new();
    for (a, b) in stretches {
        if ms(b - a) < MIN_SPEECH_MS {
            continue;
        }
        let (a, b) = (a.saturating_sub(pad), (b + pad).min(levels.len()));
        let mut start = a;
        while start < b {
            let end = (start + max).min(b);
            out.push((start * frame, end * frame));
            start = end;
        }
    }
    // Padding can make neighbours touch; one stretch then.
    out.dedup_by(|next, prev| {
        if next.0 <= prev.1 && next.1 - prev.0 <= max * frame {
            prev.1 = next.1;
            true
        } else {
            false
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise at about 25 dB, with 8 kHz-sampled "speech" (a 300 Hz tone at about 70 dB)
    /// in the given seconds.
    fn track(seconds: f64, speech_at: &[(f64, f64)]) -> Vec<i16> {
        let mut x = 1u32;
        (0..(seconds * 8000.0) as usize)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = ((x >> 16) % 41) as f64 - 20.0;
                let t = i as f64 / 8000.0;
                let voice = if speech_at.iter().any(|(a, b)| t >= *a && t < *b) {
                    4000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                } else {
                    0.0
                };
                (noise + voice) as i16
            })
            .collect()
    }

    fn seconds(ranges: &[(usize, usize)]) -> Vec<(f64, f64)> {
        ranges
            .iter()
            .map(|(a, b)| (*a as f64 / 8000.0, *b as f64 / 8000.0))
            .collect()
    }

    #[test]
    fn finds_each_stretch_of_speech_padded_and_bridges_short_pauses() {
        let pcm = track(10.0, &[(1.0, 2.0), (2.3, 3.0), (6.0, 7.5), (9.0, 9.05)]);
        let found = seconds(&speech(&pcm, 8000));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            (found[0].0 - 0.8).abs() < 0.03 && (found[0].1 - 3.2).abs() < 0.03,
            "{found:?}"
        );
        assert!(
            (found[1].0 - 5.8).abs() < 0.03 && (found[1].1 - 7.7).abs() < 0.03,
            "{found:?}"
        );
    }

    #[test]
    fn silence_has_no_speech_and_speech_throughout_is_all_speech() {
        assert!(speech(&vec![0; 80_000], 8000).is_empty());
        assert!(speech(&track(5.0, &[]), 8000).is_empty());
        let all = seconds(&speech(&track(5.0, &[(0.0, 5.0)]), 8000));
        assert_eq!(all, vec![(0.0, 5.0)]);
        assert!(speech(&[1, 2, 3], 8000).is_empty());
    }

    #[test]
    fn long_speech_is_split_into_utterances() {
        let found = speech(&track(70.0, &[(0.0, 70.0)]), 8000);
        assert_eq!(found.len(), 3, "{:?}", seconds(&found));
        assert!(found.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
