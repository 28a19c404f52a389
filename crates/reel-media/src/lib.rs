//! Media formats, free of sockets and clocks: the capture journal (write, read, recover),
//! codec bitstream headers, streaming WebM and MP4 muxers, the remux from journals to playable
//! files, and small readers for IVF and Ogg files that test publishers send from.
//!
//! Everything here works on `Read`/`Write` values handed in by the caller, so the same code
//! serves the server, the `reel journal inspect` command, tests and fuzzers.

pub mod codec;
pub mod ebml;
pub mod g711;
pub mod g722;
pub mod h264;
pub mod ivf;
pub mod journal;
pub mod mp3;
pub mod mp4;
pub mod ogg;
pub mod pcm;
pub mod remux;
pub mod rtp;
pub mod source_latch;
pub mod webm;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a Reel journal (bad magic)")]
    NotAJournal,
    #[error("unsupported journal version {0}")]
    UnsupportedVersion(u16),
    #[error("corrupt journal header: {0}")]
    CorruptHeader(String),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    #[error("cannot remux: {0}")]
    Remux(String),
    /// A frame bigger than any journal may hold: the sender's fault (or an attack). The
    /// frame is dropped and the track goes on; nothing was written.
    #[error("frame of {0} bytes is over the {max} byte limit", max = journal::MAX_FRAME)]
    FrameTooLarge(usize),
}

impl MediaError {
    pub fn malformed(what: &'static str, why: impl Into<String>) -> Self {
        MediaError::Malformed {
            what,
            why: why.into(),
        }
    }
}

pub type Result<T, E = MediaError> = std::result::Result<T, E>;
