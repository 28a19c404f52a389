//! Test peers of Reel's own: a WHIP publisher on str0m (full ICE, as a browser would be)
//! that sends real encoded media from IVF (VP8) and Ogg (Opus) files at real-time pace,
//! optionally dropping and reordering its outgoing datagrams, plus a small HTTP client for
//! the API. Used by the integration tests and by the `reel-publish` load generator.

pub mod emulators;
pub mod http;
pub mod judge;
pub mod media;
pub mod proc;
mod publisher;

pub use publisher::{audio_offer, publish, Leave, PublishOptions, PublishReport};
