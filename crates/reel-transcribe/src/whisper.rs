//! The whisper.cpp engine (cargo feature `whisper`), through `whisper-rs`, with a model file
//! the user supplies (ggml, as whisper.cpp's `models/download-ggml-model.sh` fetches).
//! Multilingual models take any language whisper knows; `.en` models only English.

use crate::{language_of, Engine, Result, Segment, TranscribeError, RATE};
use std::path::Path;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

pub struct Whisper {
    context: WhisperContext,
    threads: u32,
    language: String,
}

fn engine_err(e: impl std::fmt::Display) -> TranscribeError {
    TranscribeError::Engine(format!("whisper: {e}"))
}

impl Whisper {
    /// Loads the model; `threads` 0 means one per core.
    pub fn load(model: &Path, threads: u32) -> Result<Self> {
        if !model.is_file() {
            return Err(TranscribeError::Refused(format!(
                "the whisper model file is missing: {}",
                model.display()
            )));
        }
        // whisper.cpp prints its progress on stderr; the job's last line must stay the reason.
        whisper_rs::install_logging_hooks();
        let context = WhisperContext::new_with_params(model, WhisperContextParameters::default())
            .map_err(|e| {
            TranscribeError::Refused(format!(
                "{} is not a whisper.cpp model: {e}",
                model.display()
            ))
        })?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
        } else {
            threads
        };
        Ok(Whisper {
            context,
            threads,
            language: "en".into(),
        })
    }
}

impl Engine for Whisper {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn set_locale(&mut self, locale: &str) -> Result<()> {
        let unsupported = || TranscribeError::UnsupportedLocale {
            engine: "whisper",
            locale: locale.to_string(),
        };
        let language = language_of(locale).ok_or_else(unsupported)?;
        let known = whisper_rs::get_lang_id(&language).is_some();
        if !known || (!self.context.is_multilingual() && language != "en") {
            return Err(unsupported());
        }
        self.language = language;
        Ok(())
    }

    fn transcribe(&mut self, pcm: &[i16]) -> Result<Vec<Segment>> {
        let samples: Vec<f32> = pcm.iter().map(|s| *s as f32 / 32768.0).collect();
        let mut state = self.context.create_state().map_err(engine_err)?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_language(Some(&self.language));
        params.set_n_threads(self.threads as i32);
        // Each stretch stands alone: text from another speaker's stretch is no context.
        params.set_no_context(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        state.full(params, &samples).map_err(engine_err)?;
        let length = pcm.len() as f64 / RATE as f64;
        let mut out = Vec::new();
        for segment in state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map_err(engine_err)?
                .trim()
                .to_string();
            if text.is_empty() {
                continue;
            }
            // Centiseconds.
            let start_s = (segment.start_timestamp() as f64 / 100.0).clamp(0.0, length);
            let end_s = (segment.end_timestamp() as f64 / 100.0).clamp(start_s, length);
            out.push(Segment {
                start_s,
                end_s,
                text,
            });
        }
        Ok(out)
    }
}
