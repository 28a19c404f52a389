//! The whisper.cpp engine (feature `whisper`; the test command builds with it).
//!
//! No trained whisper model can be installed from the registries this project's CI reaches
//! (they are on model hubs). What runs everywhere: whisper.cpp's loader refusing what is not
//! a model, and whisper.cpp running a stretch through a small model written here whose
//! weights make it say one thing (so the engine's parameters, segments and timestamps are
//! exercised on the real library). Recognition itself is tested where a model is configured:
//! `REEL_WHISPER_MODEL=/path/ggml-base.en.bin cargo test -p reel-transcribe --features
//! whisper --test whisper -- --ignored`.
#![cfg(feature = "whisper")]

use reel_transcribe::transcript::word_error_rate;
use reel_transcribe::whisper::Whisper;
use reel_transcribe::{audio, transcribe_speaker, Engine, EngineConfig, TranscribeError};

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

/// The dimensions of the test models: small, so inference is quick. `n_vocab` 51864 is an
/// English-only model, 51865 a multilingual one (that is how whisper.cpp tells them apart).
const STATE: i32 = 64;
const AUDIO_CTX: i32 = 1500;
const TEXT_CTX: i32 = 448;
const MELS: i32 = 80;

/// A whisper.cpp model file (ggml, f16 weights) whose weights make it say one thing whatever it
/// hears: all weights are zero but the decoder's final layer-norm bias, which points at one
/// token's embedding, so that token ('a') wins every step. The words mean nothing; what it
/// proves is that whisper.cpp runs a stretch through its encoder and decoder in this build,
/// and that what comes back reaches the transcript on the stretch's clock.
fn model(path: &std::path::Path, n_vocab: i32) {
    let mut out = Vec::new();
    let int = |out: &mut Vec<u8>, v: i32| out.extend_from_slice(&v.to_le_bytes());
    int(&mut out, 0x6767_6d6c); // "ggml"
                                // vocab, audio ctx/state/heads/layers, text ctx/state/heads/layers, mels, ftype (f16)
    for v in [
        n_vocab, AUDIO_CTX, STATE, 1, 1, TEXT_CTX, STATE, 1, 1, MELS, 1,
    ] {
        int(&mut out, v);
    }
    int(&mut out, MELS); // mel filters: 80 × 201, zero
    int(&mut out, 201);
    out.extend(std::iter::repeat_n(0u8, 80 * 201 * 4));
    // The printable ASCII characters and the space (which blank suppression looks up); the
    // rest of the vocabulary is whisper.cpp's placeholders.
    let words: Vec<u8> = (b'!'..=b'~').chain([b' ']).collect();
    int(&mut out, words.len() as i32);
    for w in &words {
        int(&mut out, 1);
        out.push(*w);
    }
    let said = words.iter().position(|w| *w == b'a').unwrap();
    let s = STATE;
    let mut tensors: Vec<(String, Vec<i32>)> = vec![
        ("encoder.positional_embedding".into(), vec![s, AUDIO_CTX]),
        ("encoder.conv1.weight".into(), vec![3, MELS, s]),
        ("encoder.conv1.bias".into(), vec![1, s]),
        ("encoder.conv2.weight".into(), vec![3, s, s]),
        ("encoder.conv2.bias".into(), vec![1, s]),
        ("encoder.ln_post.weight".into(), vec![s]),
        ("encoder.ln_post.bias".into(), vec![s]),
        ("decoder.positional_embedding".into(), vec![s, TEXT_CTX]),
        ("decoder.token_embedding.weight".into(), vec![s, n_vocab]),
        ("decoder.ln.weight".into(), vec![s]),
        ("decoder.ln.bias".into(), vec![s]),
    ];
    let block = |prefix: &str, attn: &str| -> Vec<(String, Vec<i32>)> {
        let mut t = vec![
            (format!("{prefix}.{attn}_ln.weight"), vec![s]),
            (format!("{prefix}.{attn}_ln.bias"), vec![s]),
            (format!("{prefix}.{attn}.query.weight"), vec![s, s]),
            (format!("{prefix}.{attn}.query.bias"), vec![s]),
            (format!("{prefix}.{attn}.key.weight"), vec![s, s]),
            (format!("{prefix}.{attn}.value.weight"), vec![s, s]),
            (format!("{prefix}.{attn}.value.bias"), vec![s]),
            (format!("{prefix}.{attn}.out.weight"), vec![s, s]),
            (format!("{prefix}.{attn}.out.bias"), vec![s]),
        ];
        if attn == "attn" {
            t.extend([
                (format!("{prefix}.mlp_ln.weight"), vec![s]),
                (format!("{prefix}.mlp_ln.bias"), vec![s]),
                (format!("{prefix}.mlp.0.weight"), vec![s, 4 * s]),
                (format!("{prefix}.mlp.0.bias"), vec![4 * s]),
                (format!("{prefix}.mlp.2.weight"), vec![4 * s, s]),
                (format!("{prefix}.mlp.2.bias"), vec![s]),
            ]);
        }
        t
    };
    tensors.extend(block("encoder.blocks.0", "attn"));
    tensors.extend(block("decoder.blocks.0", "attn"));
    tensors.extend(block("decoder.blocks.0", "cross_attn"));
    for (name, dims) in tensors {
        // Matrices and convolution kernels are f16 (as the model's ftype says); biases,
        // norms and positional embeddings f32.
        let f16 = name.ends_with(".weight") && dims.len() >= 2;
        int(&mut out, dims.len() as i32);
        int(&mut out, name.len() as i32);
        int(&mut out, f16 as i32);
        dims.iter().for_each(|d| int(&mut out, *d));
        out.extend_from_slice(name.as_bytes());
        let n = dims.iter().product::<i32>() as usize;
        let start = out.len();
        out.extend(std::iter::repeat_n(0u8, n * if f16 { 2 } else { 4 }));
        match name.as_str() {
            "decoder.ln.bias" => out[start..start + 4].copy_from_slice(&1f32.to_le_bytes()),
            "decoder.token_embedding.weight" => {
                let at = start + 2 * said * s as usize;
                out[at..at + 2].copy_from_slice(&0x4900u16.to_le_bytes()); // 10.0 in f16
            }
            _ => {}
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn whisper_cpp_runs_a_stretch_through_the_engine_and_knows_its_models_languages() {
    let dir = tempfile::tempdir().unwrap();
    let english = dir.path().join("english.bin");
    model(&english, 51864);
    let mut engine = Whisper::load(&english, 2).expect("whisper.cpp loads the model");
    engine.set_locale("en-AU").unwrap();
    let err = engine.set_locale("de-DE").unwrap_err();
    assert!(
        matches!(err, TranscribeError::UnsupportedLocale { .. }),
        "{err}"
    );
    // A stretch 2 s long starting 1 s into the speaker's track.
    let mut pcm = vec![0i16; 16_000];
    pcm.extend((0..32_000).map(|i| (4000.0 * (i as f64 * 0.15).sin()) as i16));
    pcm.extend(vec![0i16; 16_000]);
    let segments = transcribe_speaker(&mut engine, &pcm).expect("whisper.cpp ran");
    assert!(!segments.is_empty(), "whisper said nothing");
    for s in &segments {
        assert!(s.text.contains('a'), "{segments:?}");
        assert!(
            0.5 <= s.start_s && s.start_s < s.end_s && s.end_s <= 3.5,
            "{segments:?}"
        );
    }

    let multilingual = dir.path().join("multilingual.bin");
    model(&multilingual, 51865);
    let mut engine = Whisper::load(&multilingual, 1).unwrap();
    engine.set_locale("de-DE").unwrap();
    engine.set_locale("pt-BR").unwrap();
    assert!(
        engine.set_locale("tlh").is_err(),
        "Klingon is not one of whisper's"
    );
}

#[test]
#[ignore = "needs a whisper.cpp model: REEL_WHISPER_MODEL=/path/to/ggml-*.bin"]
fn digits_spoken_by_flite_are_heard_by_whisper_with_their_timing() {
    let model = std::env::var("REEL_WHISPER_MODEL")
        .expect("REEL_WHISPER_MODEL must name a whisper.cpp model file");
    let dir = tempfile::tempdir().unwrap();
    let said = "four seven one nine two eight";
    let wav = reel_testkit::media::spoken(dir.path(), "slt", said, 1.5, None);
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
