//! The default engine: CMU PocketSphinx (Debian's `libpocketsphinx3` with the
//! `pocketsphinx-en-us` model), offline, no configuration. Bound by hand: a dozen functions
//! of its C API, so no bindgen and no libclang in the build.

use crate::{Engine, Result, Segment, TranscribeError};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// Where Debian's `pocketsphinx-en-us` puts the model.
pub const DEBIAN_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";
/// PocketSphinx's feature frames: 100 a second.
const FRAMES_PER_SECOND: f64 = 100.0;

#[allow(non_camel_case_types)]
type ps_decoder_t = c_void;
#[allow(non_camel_case_types)]
type ps_seg_t = c_void;
#[allow(non_camel_case_types)]
type cmd_ln_t = c_void;

extern "C" {
    fn ps_args() -> *const c_void;
    fn cmd_ln_parse_r(
        inout: *mut cmd_ln_t,
        defn: *const c_void,
        argc: i32,
        argv: *mut *mut c_char,
        strict: c_int,
    ) -> *mut cmd_ln_t;
    fn cmd_ln_free_r(config: *mut cmd_ln_t) -> c_int;
    fn ps_init(config: *mut cmd_ln_t) -> *mut ps_decoder_t;
    fn ps_free(ps: *mut ps_decoder_t) -> c_int;
    fn ps_start_utt(ps: *mut ps_decoder_t) -> c_int;
    fn ps_process_raw(
        ps: *mut ps_decoder_t,
        data: *const i16,
        n_samples: usize,
        no_search: c_int,
        full_utt: c_int,
    ) -> c_int;
    fn ps_end_utt(ps: *mut ps_decoder_t) -> c_int;
    fn ps_seg_iter(ps: *mut ps_decoder_t) -> *mut ps_seg_t;
    fn ps_seg_next(seg: *mut ps_seg_t) -> *mut ps_seg_t;
    fn ps_seg_word(seg: *mut ps_seg_t) -> *const c_char;
    fn ps_seg_frames(seg: *mut ps_seg_t, sf: *mut c_int, ef: *mut c_int);
    fn ps_seg_free(seg: *mut ps_seg_t);
}

/// A loaded US English model; one decoder, used from one thread.
pub struct PocketSphinx {
    decoder: *mut ps_decoder_t,
    config: *mut cmd_ln_t,
}

fn engine_err(what: impl Into<String>) -> TranscribeError {
    TranscribeError::Engine(what.into())
}

impl PocketSphinx {
    /// Loads the model in `dir` (`en-us/` acoustic model, `en-us.lm.bin`,
    /// `cmudict-en-us.dict`), Debian's by default.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let dir = dir.map_or_else(|| PathBuf::from(DEBIAN_MODEL), Path::to_path_buf);
        let files = [
            ("-hmm", dir.join("en-us")),
            ("-lm", dir.join("en-us.lm.bin")),
            ("-dict", dir.join("cmudict-en-us.dict")),
        ];
        for (_, f) in &files {
            if !f.exists() {
                return Err(engine_err(format!(
                    "the PocketSphinx model is missing: {} (apt-get install pocketsphinx-en-us)",
                    f.display()
                )));
            }
        }
        let mut args: Vec<CString> = Vec::new();
        for (flag, path) in &files {
            args.push(CString::new(*flag).expect("no NUL"));
            args.push(
                CString::new(path.to_string_lossy().as_bytes())
                    .map_err(|_| engine_err("model path has a NUL"))?,
            );
        }
        // Its log goes nowhere: the recognizer is chatty, and our own log says what matters.
        args.push(CString::new("-logfn").expect("no NUL"));
        args.push(CString::new("/dev/null").expect("no NUL"));
        let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        // SAFETY: argv points into `args`, alive for the call; the library copies what it keeps.
        let config = unsafe {
            cmd_ln_parse_r(
                std::ptr::null_mut(),
                ps_args(),
                argv.len() as i32,
                argv.as_mut_ptr(),
                1,
            )
        };
        if config.is_null() {
            return Err(engine_err("PocketSphinx refused its configuration"));
        }
        // SAFETY: `config` is a valid configuration; ps_init takes its own reference.
        let decoder = unsafe { ps_init(config) };
        if decoder.is_null() {
            // SAFETY: ours to free.
            unsafe { cmd_ln_free_r(config) };
            return Err(engine_err(format!(
                "PocketSphinx cannot load the model in {}",
                dir.display()
            )));
        }
        Ok(PocketSphinx { decoder, config })
    }

    /// The words of the utterance just decoded, with their frames; fillers and silences
    /// (`<s>`, `<sil>`, `[NOISE]`) left out, alternates (`two(2)`) named plainly.
    fn words(&self) -> Vec<(String, i32, i32)> {
        let mut out = Vec::new();
        // SAFETY: the iterator belongs to the decoder, which outlives this loop; a segment
        // iterator is freed by ps_seg_next returning null, or by ps_seg_free when left early.
        unsafe {
            let mut seg = ps_seg_iter(self.decoder);
            while !seg.is_null() {
                let word = ps_seg_word(seg);
                if !word.is_null() {
                    let word = CStr::from_ptr(word).to_string_lossy();
                    if !word.starts_with('<') && !word.starts_with('[') {
                        let plain = word.split('(').next().unwrap_or("").to_string();
                        let (mut sf, mut ef) = (0, 0);
                        ps_seg_frames(seg, &mut sf, &mut ef);
                        if !plain.is_empty() {
                            out.push((plain, sf, ef));
                        }
                    }
                }
                seg = ps_seg_next(seg);
            }
            if !seg.is_null() {
                ps_seg_free(seg);
            }
        }
        out
    }
}

impl Drop for PocketSphinx {
    fn drop(&mut self) {
        // SAFETY: both were made in `load` and are freed once.
        unsafe {
            ps_free(self.decoder);
            cmd_ln_free_r(self.config);
        }
    }
}

impl Engine for PocketSphinx {
    fn name(&self) -> &'static str {
        "pocketsphinx"
    }

    /// The model is US English; other English locales are recognized with it.
    fn set_locale(&mut self, locale: &str) -> Result<()> {
        let language = locale.split(['-', '_']).next().unwrap_or("");
        if language.eq_ignore_ascii_case("en") {
            Ok(())
        } else {
            Err(TranscribeError::UnsupportedLocale {
                engine: self.name(),
                locale: locale.to_string(),
            })
        }
    }

    /// One utterance in, one segment out (or none when nothing was recognized).
    fn transcribe(&mut self, pcm: &[i16]) -> Result<Vec<Segment>> {
        // SAFETY: the decoder is valid; `pcm` is read during the call only.
        let words = unsafe {
            if ps_start_utt(self.decoder) < 0 {
                return Err(engine_err("cannot start an utterance"));
            }
            if ps_process_raw(self.decoder, pcm.as_ptr(), pcm.len(), 0, 1) < 0 {
                ps_end_utt(self.decoder);
                return Err(engine_err("cannot decode the audio"));
            }
            if ps_end_utt(self.decoder) < 0 {
                return Err(engine_err("cannot end the utterance"));
            }
            self.words()
        };
        let (Some(first), Some(last)) = (words.first(), words.last()) else {
            return Ok(Vec::new());
        };
        Ok(vec![Segment {
            start_s: first.1 as f64 / FRAMES_PER_SECOND,
            end_s: (last.2 + 1) as f64 / FRAMES_PER_SECOND,
            text: words
                .iter()
                .map(|w| w.0.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }])
    }
}
