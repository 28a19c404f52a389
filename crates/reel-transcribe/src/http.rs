//! The HTTP engine: a speech server with OpenAI's `POST /v1/audio/transcriptions` (OpenAI
//! itself, or servers that copy its API: faster-whisper-server/speaches, LocalAI, vLLM, …).
//! Each stretch of speech goes as a 16 kHz WAV in a multipart form, asking for
//! `verbose_json`, whose `segments` carry the timestamps; a server that answers only
//! `text` gets that text as one segment spanning the stretch.
//!
//! Errors are sorted for the job's retry policy: no answer, a timeout, 408, 429 and 5xx may
//! pass and are retried; any other 4xx (a bad key, a language the server refuses) will not,
//! and fails the job at once with what the server said.

use crate::{audio, language_of, Engine, Result, Segment, TranscribeError, RATE};
use serde::Deserialize;
use std::time::Duration;

/// The environment variable the API key reaches the transcribing process in, so that it is
/// never written into a job file.
pub const API_KEY_ENV: &str = "REEL_TRANSCRIPTION_HTTP_API_KEY";

pub struct HttpEngine {
    url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    language: Option<String>,
}

/// What a server answers: `verbose_json`, or plain `json` (text only).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    text: String,
    #[serde(default)]
    segments: Option<Vec<AnswerSegment>>,
}

#[derive(Deserialize)]
struct AnswerSegment {
    start: f64,
    end: f64,
    text: String,
}

impl HttpEngine {
    /// `url` is the endpoint itself (`https://api.openai.com/v1/audio/transcriptions`);
    /// `model` the name the server knows its model by (`whisper-1`).
    pub fn new(url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(TranscribeError::Refused(format!(
                "the HTTP engine's url must be http:// or https://, not {url:?}"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(HttpEngine {
            url: url.to_string(),
            model: model.to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            agent,
            language: None,
        })
    }

    fn form(&self, wav: &[u8]) -> (String, Vec<u8>) {
        let boundary = format!("reel-{:032x}", rand::random::<u128>());
        let mut body = Vec::with_capacity(wav.len() + 1024);
        let mut field = |name: &str, value: &str| {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        field("model", &self.model);
        field("response_format", "verbose_json");
        field("timestamp_granularities[]", "segment");
        if let Some(language) = &self.language {
            field("language", language);
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(wav);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

/// The server's own words of an error, short: OpenAI's `{"error": {"message": …}}`, else
/// the start of the body.
fn said(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| match &v["error"] {
            serde_json::Value::String(s) => Some(s.clone()),
            e => e["message"].as_str().map(str::to_string),
        })
        .unwrap_or_else(|| body.trim().to_string());
    message.chars().take(300).collect()
}

impl Engine for HttpEngine {
    fn name(&self) -> &'static str {
        "http"
    }

    /// The server decides which languages it knows; it is asked in the language of the
    /// locale, and a refusal fails the job without retries.
    fn set_locale(&mut self, locale: &str) -> Result<()> {
        self.language =
            Some(
                language_of(locale).ok_or_else(|| TranscribeError::UnsupportedLocale {
                    engine: self.name(),
                    locale: locale.to_string(),
                })?,
            );
        Ok(())
    }

    fn transcribe(&mut self, pcm: &[i16]) -> Result<Vec<Segment>> {
        let (content_type, body) = self.form(&audio::write_wav(RATE, pcm));
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", &content_type)
            .header("user-agent", "Reel-Transcribe/0.1");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", &format!("Bearer {key}"));
        }
        // ureq's errors name the URL, never headers, so the key cannot leak through them.
        let mut response = request
            .send(&body[..])
            .map_err(|e| TranscribeError::Engine(format!("speech server: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| TranscribeError::Engine(format!("speech server's answer: {e}")))?;
        match status {
            200..=299 => {}
            408 | 429 | 500..=599 => {
                return Err(TranscribeError::Engine(format!(
                    "speech server answered {status}: {}",
                    said(&text)
                )))
            }
            _ => {
                return Err(TranscribeError::Refused(format!(
                    "speech server answered {status}: {}",
                    said(&text)
                )))
            }
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            TranscribeError::Engine(format!("speech server's answer is not JSON: {e}"))
        })?;
        let length = pcm.len() as f64 / RATE as f64;
        let segments = match answer.segments {
            Some(segments) => segments
                .into_iter()
                .map(|s| Segment {
                    // Servers pad the last segment past the audio; keep it on the stretch.
                    start_s: s.start.clamp(0.0, length),
                    end_s: s.end.clamp(s.start.clamp(0.0, length), length),
                    text: s.text.trim().to_string(),
                })
                .filter(|s| !s.text.is_empty())
                .collect(),
            None if !answer.text.trim().is_empty() => vec![Segment {
                start_s: 0.0,
                end_s: length,
                text: answer.text.trim().to_string(),
            }],
            None => Vec::new(),
        };
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_carries_the_fields_and_the_audio_between_boundaries() {
        let mut engine = HttpEngine::new(
            "http://127.0.0.1:9/x",
            "whisper-1",
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        engine.set_locale("de-DE").unwrap();
        let (content_type, body) = engine.form(b"RIFFwav");
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        for part in [
            "name=\"model\"\r\n\r\nwhisper-1\r\n",
            "name=\"response_format\"\r\n\r\nverbose_json\r\n",
            "name=\"language\"\r\n\r\nde\r\n",
            "filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFFwav\r\n",
        ] {
            assert!(text.contains(part), "{part:?} in {text:?}");
        }
    }

    #[test]
    fn errors_are_short_and_in_the_servers_words() {
        assert_eq!(
            said(
                r#"{"error":{"message":"Unsupported language: xx","type":"invalid_request_error"}}"#
            ),
            "Unsupported language: xx"
        );
        assert_eq!(said(r#"{"error":"bad"}"#), "bad");
        assert_eq!(said(&"x".repeat(1000)).len(), 300);
        assert!(HttpEngine::new("ftp://x", "m", None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn no_server_is_a_failure_that_may_pass() {
        // Port 9 (discard) on loopback: nothing listens there.
        let mut engine = HttpEngine::new(
            "http://127.0.0.1:9/v1/audio/transcriptions",
            "m",
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        let err = engine.transcribe(&[0; 1600]).unwrap_err();
        assert!(matches!(err, TranscribeError::Engine(_)), "{err}");
    }
}
