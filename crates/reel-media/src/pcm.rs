//! SIP's audio codecs as 16-bit little-endian PCM. The per-participant file stores them
//! decoded (Matroska `A_PCM/INT/LIT`), because no container a browser or a WebM/MP4 player
//! reads has a G.711 or G.722 mapping, while PCM plays everywhere.

use crate::{g711, g722};
use reel_core::Codec;

/// One stream's decoder; G.722 carries state from frame to frame, so frames go in order.
#[derive(Debug, Clone)]
pub enum PcmDecoder {
    Ulaw,
    Alaw,
    G722(Box<g722::Decoder>),
}

impl PcmDecoder {
    /// The decoder for a codec stored as PCM; None for codecs stored as they are.
    pub fn for_codec(codec: Codec) -> Option<Self> {
        match codec {
            Codec::Pcmu => Some(PcmDecoder::Ulaw),
            Codec::Pcma => Some(PcmDecoder::Alaw),
            Codec::G722 => Some(PcmDecoder::G722(Box::default())),
            _ => None,
        }
    }

    /// Samples per second of the decoded audio (G.722's is not its RTP clock of 8000).
    pub fn sample_rate(&self) -> u32 {
        match self {
            PcmDecoder::G722(_) => 16_000,
            _ => 8_000,
        }
    }

    /// One frame as 16-bit little-endian PCM.
    pub fn decode(&mut self, frame: &[u8]) -> Vec<u8> {
        let samples: Vec<i16> = match self {
            PcmDecoder::Ulaw => frame.iter().map(|b| g711::ulaw_to_linear(*b)).collect(),
            PcmDecoder::Alaw => frame.iter().map(|b| g711::alaw_to_linear(*b)).collect(),
            PcmDecoder::G722(d) => {
                let mut out = Vec::new();
                d.decode_into(frame, &mut out);
                out
            }
        };
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_gives_its_samples_as_little_endian_pcm() {
        let mut ulaw = PcmDecoder::for_codec(Codec::Pcmu).unwrap();
        assert_eq!(ulaw.decode(&[0xff, 0x80]), vec![0, 0, 0x7c, 0x7d]);
        assert_eq!(ulaw.sample_rate(), 8_000);
        let mut g722 = PcmDecoder::for_codec(Codec::G722).unwrap();
        assert_eq!(g722.decode(&[0xff; 80]).len(), 320, "two samples a byte");
        assert_eq!(g722.sample_rate(), 16_000);
        assert!(PcmDecoder::for_codec(Codec::Opus).is_none());
    }
}
