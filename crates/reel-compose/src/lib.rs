//! Composite recordings: one movie of the whole meeting (or one audio file of the call) made
//! from every participant's journal.
//!
//! - [`layout`]: the layouts as geometry over time (sans-IO): scenes of tiles.
//! - [`speaker`]: who is speaking, from audio levels, with hysteresis (sans-IO).

pub mod layout;
pub mod speaker;
