//! The whisper.cpp engine (feature `whisper`; the test command builds with it).
//!
//! No whisper model can be installed from the registries this project's CI reaches (they
//! are on model hubs), so what runs everywhere is whisper.cpp's own loader refusing what is
//! not a model; the recognition test runs where a model is configured:
//! `REEL_WHISPER_MODEL=/path/ggml-base.en.bin cargo test -p reel-transcribe --features
//! whisper --test whisper -- --ignored`.
#![cfg(feature = "whisper")]

use reel_transcribe::transcript::word_error_rate;
use reel_transcribe::whisper::Whisper;
use reel_transcribe::{audio, transcribe_speaker, Engine, EngineConfig, TranscribeError};
use std::process::Command;

#[test]
fn what_is_not_a_model_is_refused_by_whisper_cpp_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_model = dir.path().join("model.bin");
    std::fs::write(&not_a_model, b"GGML? no: just bytes").unwrap();
    let err = Whisper::load(&not_a_model, 1).err().expect("refused");
    assert!(matches!(err, TranscribeError::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("is not a whisper.cpp model"),
        "{err}"
    );
    let missing = EngineConfig::Whisper {
        model: dir.path().join("missing.bin"),
        threads: 1,
    };
    let err = missing.load("en-US").err().expect("refused");
    assert!(err.to_string().contains("model file is missing"), "{err}");
}

#[test]
#[ignore = "needs a whisper.cpp model: REEL_WHISPER_MODEL=/path/to/ggml-*.bin"]
fn digits_spoken_by_flite_are_heard_by_whisper_with_their_timing() {
    let model = std::env::var("REEL_WHISPER_MODEL")
        .expect("REEL_WHISPER_MODEL must name a whisper.cpp model file");
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.wav");
    let said = "four seven one nine two eight";
    let out = Command::new("flite")
        .args(["-voice", "slt", "-t", said, "-o"])
        .arg(&raw)
        .output()
        .expect("flite is required");
    assert!(out.status.success());
    let wav = dir.path().join("16k.wav");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&raw)
        .args(["-af", "adelay=1500", "-ar", "16000", "-ac", "1", "-y"])
        .arg(&wav)
        .output()
        .expect("ffmpeg is required");
    assert!(out.status.success());
    let (_, pcm) = audio::read_wav(&std::fs::read(&wav).unwrap()).unwrap();
    let mut engine = Whisper::load(model.as_ref(), 0).unwrap();
    engine.set_locale("en-US").unwrap();
    assert!(engine.set_locale("xx-XX").is_err());
    let segments = transcribe_speaker(&mut engine, &pcm).unwrap();
    // Whisper writes digits as numerals: "4719 28" or "4, 7, 1, 9, 2, 8".
    let heard: String = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = heard
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| {
            [
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            ][d as usize]
        })
        .collect();
    let wer = word_error_rate(said, &words.join(" "));
    assert!(wer <= 0.2, "heard {heard:?}: WER {wer}");
    assert!((segments[0].start_s - 1.5).abs() < 0.5, "{segments:?}");
}
