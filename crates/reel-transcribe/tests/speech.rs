//! PocketSphinx on synthetic speech: flite (CMU's synthesizer) says digits, Debian's US
//! English model hears them. flite, ffmpeg and the model are required test tools: these
//! tests fail, never skip, without them.
//!
//! Why flite and not espeak-ng: espeak-ng's formant voices are not heard by PocketSphinx's
//! en-us model ("four seven one nine two eight" came back as "full on like", a word error
//! rate of 100 %, through Reel and through Debian's own `pocketsphinx_continuous` alike),
//! while flite's voices are heard word for word.

use reel_testkit::emulators::SpeechServer;
use reel_transcribe::http::HttpEngine;
use reel_transcribe::pocketsphinx::PocketSphinx;
use reel_transcribe::transcript::word_error_rate;
use reel_transcribe::{audio, transcribe_speaker, Engine, TranscribeError};
use std::path::Path;
use std::time::Duration;

/// `words` spoken by flite's `voice` after `lead_s` seconds of silence, as 16 kHz mono.
fn spoken(dir: &Path, voice: &str, words: &str, lead_s: f64) -> Vec<i16> {
    let wav = reel_testkit::media::spoken(dir, voice, words, lead_s, None);
    let (rate, pcm) = audio::read_wav(&std::fs::read(&wav).unwrap()).unwrap();
    assert_eq!(rate, 16_000);
    pcm
}

#[test]
fn digits_spoken_by_flite_are_heard_with_their_timing() {
    let dir = tempfile::tempdir().unwrap();
    let said = "four seven one nine two eight";
    let pcm = spoken(dir.path(), "slt", said, 1.5);
    let mut engine = PocketSphinx::load(None).expect("pocketsphinx-en-us is required");
    engine.set_locale("en-US").unwrap();
    let segments = transcribe_speaker(&mut engine, &pcm).unwrap();
    let heard: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let heard = heard.join(" ");
    let wer = word_error_rate(said, &heard);
    assert!(wer <= 0.2, "heard {heard:?} for {said:?}: WER {wer}");
    assert!((segments[0].start_s - 1.5).abs() < 0.5, "{segments:?}");
}

#[test]
fn a_locale_without_a_model_is_refused_clearly() {
    let mut engine = PocketSphinx::load(None).expect("pocketsphinx-en-us is required");
    let err = engine.set_locale("de-DE").unwrap_err();
    assert!(matches!(err, TranscribeError::UnsupportedLocale { .. }));
    assert_eq!(
        err.to_string(),
        "the pocketsphinx engine cannot transcribe locale de-DE"
    );
    assert!(PocketSphinx::load(Some(Path::new("/nonexistent"))).is_err());
}

fn http_engine(server: &SpeechServer, key: Option<&str>) -> HttpEngine {
    HttpEngine::new(
        &server.url,
        "whisper-1",
        key.map(str::to_string),
        Duration::from_secs(30),
    )
    .unwrap()
}

#[test]
fn an_openai_compatible_server_hears_the_digits_with_their_timing() {
    let server = SpeechServer::start(Some("test-key-123"), 0);
    let dir = tempfile::tempdir().unwrap();
    let said = "two eight three six five";
    let pcm = spoken(dir.path(), "rms", said, 2.0);
    let mut engine = http_engine(&server, Some("test-key-123"));
    engine.set_locale("en-GB").unwrap();
    let segments = transcribe_speaker(&mut engine, &pcm).unwrap();
    let heard: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let heard = heard.join(" ");
    let wer = word_error_rate(said, &heard);
    assert!(wer <= 0.2, "heard {heard:?} for {said:?}: WER {wer}");
    // The server's segment times are within the stretch sent; the stretch's offset is added.
    assert!((segments[0].start_s - 2.0).abs() < 0.5, "{segments:?}");
    assert!(
        segments[0].end_s > segments[0].start_s + 1.0,
        "{segments:?}"
    );
}

#[test]
fn what_the_server_refuses_is_not_retried_and_what_may_pass_is() {
    let server = SpeechServer::start(Some("right-key"), 1);
    let dir = tempfile::tempdir().unwrap();
    let pcm = spoken(dir.path(), "slt", "nine", 0.2);
    // Overloaded (503): a failure that may pass, so the job is retried.
    let err = http_engine(&server, Some("right-key"))
        .transcribe(&pcm)
        .unwrap_err();
    assert!(matches!(err, TranscribeError::Engine(_)), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    // A wrong key (401): retrying would not help. The key is not in the message.
    let err = http_engine(&server, Some("wrong-key"))
        .transcribe(&pcm)
        .unwrap_err();
    assert!(matches!(err, TranscribeError::Refused(_)), "{err}");
    assert!(err.to_string().contains("Incorrect API key"), "{err}");
    assert!(!err.to_string().contains("wrong-key"), "{err}");
    // A language the server does not know (400), in the server's words.
    let mut engine = http_engine(&server, Some("right-key"));
    engine.set_locale("de-DE").unwrap();
    let err = engine.transcribe(&pcm).unwrap_err();
    assert!(matches!(err, TranscribeError::Refused(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "speech server answered 400: Unsupported language: de"
    );
}
