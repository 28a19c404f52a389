//! Composite recordings: one movie of the whole meeting (or one audio file of the call) made
//! from every participant's journal.
//!
//! - [`layout`]: the layouts as geometry over time (sans-IO): scenes of tiles.
//! - [`speaker`]: who is speaking, from audio levels, with hysteresis (sans-IO).
//! - [`render`]: the GStreamer pipeline that draws the scenes and mixes the audio.

pub mod layout;
pub mod look;
pub mod options;
pub mod opus;
pub mod render;
pub mod speaker;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("input: {0}")]
    Input(String),
    #[error("pipeline: {0}")]
    Pipeline(String),
    #[error(transparent)]
    Media(#[from] reel_media::MediaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
