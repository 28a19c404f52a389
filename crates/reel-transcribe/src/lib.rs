//! Transcription with speaker labels: every participant's audio is transcribed on its own
//! (silence skipped by voice-activity detection), and the lines are merged by time with the
//! participant's name as the speaker label.
//!
//! - [`audio`]: WAV in, 16 kHz mono out (what speech models take).
//! - [`vad`]: where someone speaks, by frame energy against the noise floor (sans-IO).
//! - [`transcript`]: the seed's JSON and WebVTT, merged from every speaker (sans-IO).
//! - [`Engine`]: one speech recognizer behind a trait; [`pocketsphinx`] is the default.

pub mod audio;
pub mod pocketsphinx;
pub mod transcript;
pub mod vad;

/// Sample rate every engine is fed.
pub const RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The engine has no model for the locale; retrying will not help.
    #[error("the {engine} engine cannot transcribe locale {locale}")]
    UnsupportedLocale {
        engine: &'static str,
        locale: String,
    },
    #[error("audio: {0}")]
    Audio(String),
    #[error("engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, TranscribeError>;

/// What an engine heard in one stretch of speech, in seconds from the stretch's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// A speech recognizer. It gets one stretch of speech (16 kHz mono) at a time.
pub trait Engine {
    fn name(&self) -> &'static str;
    /// Fails with `UnsupportedLocale` when it has no model for `locale` (BCP 47).
    fn check_locale(&self, locale: &str) -> Result<()>;
    fn transcribe(&mut self, pcm: &[i16]) -> Result<Vec<Segment>>;
}

/// One speaker's audio (16 kHz mono on the recording's timeline) as segments on that
/// timeline: only the stretches where the speaker is heard go to the engine.
pub fn transcribe_speaker(engine: &mut dyn Engine, pcm: &[i16]) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    for (from, to) in vad::speech(pcm, RATE) {
        let offset = from as f64 / RATE as f64;
        for s in engine.transcribe(&pcm[from..to])? {
            out.push(Segment {
                start_s: s.start_s + offset,
                end_s: s.end_s + offset,
                text: s.text,
            });
        }
    }
    Ok(out)
}
