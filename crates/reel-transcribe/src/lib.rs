//! Transcription with speaker labels: every participant's audio is transcribed on its own
//! (silence skipped by voice-activity detection), and the lines are merged by time with the
//! participant's name as the speaker label.
//!
//! - [`audio`]: WAV in, 16 kHz mono out (what speech models take).
//! - [`vad`]: where someone speaks, by frame energy against the noise floor (sans-IO).
//! - [`transcript`]: the seed's JSON and WebVTT, merged from every speaker (sans-IO).
//! - [`Engine`]: one speech recognizer behind a trait, chosen by [`EngineConfig`]:
//!   [`pocketsphinx`] (offline, the default), `whisper` (whisper.cpp, cargo feature
//!   `whisper`), [`http`] (an OpenAI-compatible speech server).

pub mod audio;
pub mod http;
pub mod pocketsphinx;
pub mod transcript;
pub mod vad;
#[cfg(feature = "whisper")]
pub mod whisper;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
    /// The engine or its server refused the work for a reason retrying will not change (a
    /// bad API key, an engine this build does not have).
    #[error("{0}")]
    Refused(String),
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
    /// Sets the language of what follows; fails with `UnsupportedLocale` when the engine
    /// cannot do `locale` (BCP 47).
    fn set_locale(&mut self, locale: &str) -> Result<()>;
    fn transcribe(&mut self, pcm: &[i16]) -> Result<Vec<Segment>>;
}

/// The language subtag of a BCP 47 locale ("en-US" → "en"): what whisper and speech
/// servers take.
pub(crate) fn language_of(locale: &str) -> Option<String> {
    let lang = locale.split(['-', '_']).next()?;
    ((2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| lang.to_ascii_lowercase())
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

/// Which engine transcribes, and how to reach its model: the server's `[transcription]`
/// settings, handed to the transcribing process in its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "engine", rename_all = "lowercase")]
pub enum EngineConfig {
    /// A model directory laid out as Debian's `pocketsphinx-en-us`; Debian's when None.
    Pocketsphinx { model: Option<PathBuf> },
    /// A whisper.cpp (ggml) model file.
    Whisper { model: PathBuf, threads: u32 },
    /// An OpenAI-compatible `/v1/audio/transcriptions` endpoint. The API key is not here:
    /// it comes from the environment (`http::API_KEY_ENV`).
    Http {
        url: String,
        model: String,
        timeout_secs: u64,
    },
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::Pocketsphinx { model: None }
    }
}

impl EngineConfig {
    /// Loads the engine (the model, or the HTTP client) ready for `locale`.
    pub fn load(&self, locale: &str) -> Result<Box<dyn Engine>> {
        let mut engine: Box<dyn Engine> =
            match self {
                EngineConfig::Pocketsphinx { model } => {
                    Box::new(pocketsphinx::PocketSphinx::load(model.as_deref())?)
                }
                #[cfg(feature = "whisper")]
                EngineConfig::Whisper { model, threads } => {
                    Box::new(whisper::Whisper::load(model, *threads)?)
                }
                #[cfg(not(feature = "whisper"))]
                EngineConfig::Whisper { .. } => return Err(TranscribeError::Refused(
                    "this build of Reel has no whisper engine (build it with --features whisper)"
                        .into(),
                )),
                EngineConfig::Http {
                    url,
                    model,
                    timeout_secs,
                } => Box::new(http::HttpEngine::new(
                    url,
                    model,
                    std::env::var(http::API_KEY_ENV).ok(),
                    Duration::from_secs(*timeout_secs),
                )?),
            };
        engine.set_locale(locale)?;
        Ok(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_become_language_subtags() {
        assert_eq!(language_of("en-US").as_deref(), Some("en"));
        assert_eq!(language_of("pt_BR").as_deref(), Some("pt"));
        assert_eq!(language_of("yue").as_deref(), Some("yue"));
        assert_eq!(language_of(""), None);
        assert_eq!(language_of("english"), None);
        assert_eq!(language_of("e1-US"), None);
    }

    #[test]
    fn an_engine_this_build_lacks_is_refused_without_retries() {
        let config = EngineConfig::Whisper {
            model: "/nonexistent.bin".into(),
            threads: 1,
        };
        let err = config.load("en-US").err().expect("refused");
        assert!(matches!(err, TranscribeError::Refused(_)), "{err}");
    }
}
