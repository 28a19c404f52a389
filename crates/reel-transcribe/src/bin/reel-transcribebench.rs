//! Transcription benchmark (scripts/bench-transcribe): a two-party call of `--seconds`
//! (300 by default) in which the parties take turns saying digits (flite's slt and rms
//! voices), each party on a track of their own as Reel has them. Reel's job (48 kHz WAV →
//! 16 kHz, voice-activity detection, PocketSphinx) runs over both tracks beside Debian's
//! `pocketsphinx_continuous` (same library and model, its own VAD) over the same audio at
//! 16 kHz. Prints JSON: CPU seconds, multiple of real time per core (call length / CPU
//! seconds; both recognizers use one core), and the digit word error rate of each.

use reel_transcribe::pocketsphinx::PocketSphinx;
use reel_transcribe::transcript::word_error_rate;
use reel_transcribe::{audio, transcribe_speaker, Engine, RATE};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// CPU seconds of this process and of its waited-for children, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0; // USER_HZ, 100 on Linux
    ((f[11] + f[12]) / tick, (f[13] + f[14]) / tick)
}

fn run(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("running a tool");
    assert!(out.status.success(), "{command:?}: {out:?}");
    out.stdout
}

/// flite's `voice` saying `words`, as 16 kHz samples.
fn say(work: &Path, voice: &str, words: &str) -> Vec<i16> {
    let raw = work.join("utterance.wav");
    run(Command::new("flite")
        .args(["-voice", voice, "-t", words, "-o"])
        .arg(&raw));
    let wav = work.join("utterance16k.wav");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&raw)
        .args(["-ar", "16000", "-ac", "1", "-y"])
        .arg(&wav));
    audio::read_wav(&std::fs::read(&wav).unwrap()).unwrap().1
}

struct Track {
    wav48: PathBuf,
    wav16: PathBuf,
    said: Vec<&'static str>,
    speech_s: f64,
}

/// The two parties' tracks: turns of 3 to 8 digits, a second apart, a little noise under all.
fn make_call(work: &Path, seconds: f64) -> [Track; 2] {
    let total = (seconds * RATE as f64) as usize;
    let mut pcm = [vec![0i16; total], vec![0i16; total]];
    let mut said: [Vec<&'static str>; 2] = [Vec::new(), Vec::new()];
    let mut speech = [0usize; 2];
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut at = RATE as usize / 2;
    let mut party = 0;
    loop {
        let words: Vec<&'static str> = (0..3 + next() % 6).map(|_| DIGITS[next() % 10]).collect();
        let voice = ["slt", "rms"][party];
        let utterance = say(work, voice, &words.join(" "));
        if at + utterance.len() >= total {
            break;
        }
        pcm[party][at..at + utterance.len()].copy_from_slice(&utterance);
        said[party].extend(&words);
        speech[party] += utterance.len();
        at += utterance.len() + RATE as usize;
        party = 1 - party;
    }
    let mut tracks = Vec::new();
    for (party, (samples, said)) in pcm.iter_mut().zip(said).enumerate() {
        for s in samples.iter_mut() {
            *s = s.saturating_add((next() % 41) as i16 - 20);
        }
        let wav16 = work.join(format!("party{party}-16k.wav"));
        std::fs::write(&wav16, audio::write_wav(RATE, samples)).unwrap();
        let wav48 = work.join(format!("party{party}-48k.wav"));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&wav16)
            .args(["-ar", "48000", "-y"])
            .arg(&wav48));
        tracks.push(Track {
            wav48,
            wav16,
            said,
            speech_s: speech[party] as f64 / RATE as f64,
        });
    }
    tracks.try_into().ok().expect("two tracks")
}

fn digits_heard(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.split('(').next().unwrap_or(w))
        .filter(|w| DIGITS.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let mut seconds = 300.0;
    let mut work = std::env::temp_dir().join("reel-transcribebench");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--work" => work = args.next().map(PathBuf::from).expect("--work DIR"),
            other => panic!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&work).unwrap();
    let tracks = make_call(&work, seconds);

    // Reel: what `reel transcribe` does with each rendered track.
    let mut engine = PocketSphinx::load(None).expect("pocketsphinx-en-us");
    engine.set_locale("en-US").unwrap();
    let (own0, _) = cpu_seconds();
    let wall = Instant::now();
    let mut reel_wer = Vec::new();
    for t in &tracks {
        let (rate, pcm) = audio::read_wav(&std::fs::read(&t.wav48).unwrap()).unwrap();
        let pcm = audio::to_16k(rate, &pcm).unwrap();
        let segments = transcribe_speaker(&mut engine, &pcm).unwrap();
        let heard: Vec<String> = segments.iter().map(|s| s.text.clone()).collect();
        reel_wer.push(word_error_rate(
            &t.said.join(" "),
            &digits_heard(&heard.join(" ")),
        ));
    }
    let reel_wall = wall.elapsed().as_secs_f64();
    let (own1, children0) = cpu_seconds();
    let reel_cpu = own1 - own0;

    // Baseline: Debian's pocketsphinx_continuous on the same tracks at 16 kHz.
    let wall = Instant::now();
    let mut base_wer = Vec::new();
    for t in &tracks {
        let out = run(Command::new("pocketsphinx_continuous")
            .arg("-infile")
            .arg(&t.wav16)
            .args(["-logfn", "/dev/null"]));
        base_wer.push(word_error_rate(
            &t.said.join(" "),
            &digits_heard(&String::from_utf8_lossy(&out)),
        ));
    }
    let base_wall = wall.elapsed().as_secs_f64();
    let (_, children1) = cpu_seconds();
    let base_cpu = children1 - children0;

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let result = serde_json::json!({
        "seconds": seconds,
        "speech_seconds": tracks.iter().map(|t| t.speech_s).sum::<f64>(),
        "words": tracks.iter().map(|t| t.said.len()).sum::<usize>(),
        "reel_cpu_s": reel_cpu,
        "reel_wall_s": reel_wall,
        "reel_x_realtime_per_core": seconds / reel_cpu.max(0.01),
        "reel_wer": mean(&reel_wer),
        "baseline_cpu_s": base_cpu,
        "baseline_wall_s": base_wall,
        "baseline_x_realtime_per_core": seconds / base_cpu.max(0.01),
        "baseline_wer": mean(&base_wer),
    });
    println!("{result}");
}
