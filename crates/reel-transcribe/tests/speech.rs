//! PocketSphinx on synthetic speech: flite (CMU's synthesizer) says digits, Debian's US
//! English model hears them. flite, ffmpeg and the model are required test tools: these
//! tests fail, never skip, without them.
//!
//! Why flite and not espeak-ng: espeak-ng's formant voices are not heard by PocketSphinx's
//! en-us model ("four seven one nine two eight" came back as "full on like", a word error
//! rate of 100 %, through Reel and through Debian's own `pocketsphinx_continuous` alike),
//! while flite's voices are heard word for word.

use reel_transcribe::pocketsphinx::PocketSphinx;
use reel_transcribe::transcript::word_error_rate;
use reel_transcribe::{audio, transcribe_speaker, Engine, TranscribeError};
use std::path::Path;
use std::process::Command;

/// `words` spoken by flite's `voice` after `lead_s` seconds of silence, as 16 kHz mono.
fn spoken(dir: &Path, voice: &str, words: &str, lead_s: f64) -> Vec<i16> {
    let raw = dir.join("raw.wav");
    let out = Command::new("flite")
        .args(["-voice", voice, "-t", words, "-o"])
        .arg(&raw)
        .output()
        .expect("flite is required (apt-get install flite)");
    assert!(out.status.success(), "{out:?}");
    let wav = dir.join("16k.wav");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&raw)
        .args(["-af", &format!("adelay={}", (lead_s * 1000.0) as u32)])
        .args(["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", "-y"])
        .arg(&wav)
        .output()
        .expect("ffmpeg is required");
    assert!(out.status.success(), "{out:?}");
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
    engine.check_locale("en-US").unwrap();
    let segments = transcribe_speaker(&mut engine, &pcm).unwrap();
    let heard: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let heard = heard.join(" ");
    let wer = word_error_rate(said, &heard);
    assert!(wer <= 0.2, "heard {heard:?} for {said:?}: WER {wer}");
    assert!((segments[0].start_s - 1.5).abs() < 0.5, "{segments:?}");
}

#[test]
fn a_locale_without_a_model_is_refused_clearly() {
    let engine = PocketSphinx::load(None).expect("pocketsphinx-en-us is required");
    let err = engine.check_locale("de-DE").unwrap_err();
    assert!(matches!(err, TranscribeError::UnsupportedLocale { .. }));
    assert_eq!(
        err.to_string(),
        "the pocketsphinx engine cannot transcribe locale de-DE"
    );
    assert!(PocketSphinx::load(Some(Path::new("/nonexistent"))).is_err());
}
