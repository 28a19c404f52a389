//! Opus decoding for the renderer, by libopus's single-stream API (a handful of C functions
//! bound by hand). Not GStreamer's opusdec: it goes through libopus's multistream API, whose
//! every call asks the CPU for its features (CPUID), and under virtualization each CPUID is
//! a trap to the hypervisor (4.7 µs measured here): a minute of speech decoded in 0.19 s of
//! CPU that way, in 0.06 s this way. Not avdec_opus either: loading libavcodec and
//! registering its elements costs about 80 ms per render, which a short call's mix feels.

use crate::ComposeError;
use std::ffi::{c_int, c_void};

#[link(name = "opus")]
extern "C" {
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut c_void;
    fn opus_decode_float(
        st: *mut c_void,
        data: *const u8,
        len: i32,
        pcm: *mut f32,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_decoder_destroy(st: *mut c_void);
}

/// The longest Opus frame: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5760;
pub const RATE: i32 = 48_000;

/// One stream's decoder: 48 kHz float, `channels` interleaved (a mono stream is copied to
/// both channels of a stereo decoder, a stereo stream mixed down for a mono one).
pub struct OpusDecoder {
    state: *mut c_void,
    channels: usize,
    pcm: Vec<f32>,
}

// The decoder state is plain memory owned by this value; it moves to the feeding thread.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    pub fn new(channels: usize) -> Result<Self, ComposeError> {
        assert!(
            channels == 1 || channels == 2,
            "Opus decodes to mono or stereo"
        );
        let mut error = 0;
        // SAFETY: arguments are valid; a null return is checked.
        let state = unsafe { opus_decoder_create(RATE, channels as c_int, &mut error) };
        if state.is_null() {
            return Err(ComposeError::Pipeline(format!(
                "libopus could not make a decoder (error {error})"
            )));
        }
        Ok(OpusDecoder {
            state,
            channels,
            pcm: vec![0.0; MAX_FRAME * channels],
        })
    }

    /// One packet's samples (interleaved), or None for a packet libopus refuses: a corrupt
    /// packet is skipped as if lost, and the mix has silence there.
    pub fn decode(&mut self, packet: &[u8]) -> Option<&[f32]> {
        if packet.is_empty() || packet.len() > i32::MAX as usize {
            return None;
        }
        // SAFETY: `pcm` holds MAX_FRAME samples per channel, which is what is passed.
        let n = unsafe {
            opus_decode_float(
                self.state,
                packet.as_ptr(),
                packet.len() as i32,
                self.pcm.as_mut_ptr(),
                MAX_FRAME as c_int,
                0,
            )
        };
        (n > 0).then(|| &self.pcm[..n as usize * self.channels])
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: made by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.state) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_garbage() {
        let mut d = OpusDecoder::new(1).unwrap();
        // TOC 0xF8: CELT fullband 20 ms, mono, one frame; an empty frame decodes to silence.
        let silence = d.decode(&[0xF8]).expect("a 20 ms frame").to_vec();
        assert_eq!(silence.len(), 960);
        assert!(silence.iter().all(|s| s.abs() < 1e-3));
        // Code 3 with a frame count of 0 is invalid.
        assert!(d.decode(&[0x03, 0x00]).is_none());
        assert!(d.decode(&[]).is_none());
        let mut stereo = OpusDecoder::new(2).unwrap();
        assert_eq!(stereo.decode(&[0xF8]).unwrap().len(), 1920);
    }
}
