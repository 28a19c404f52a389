//! Domain vocabulary shared by every Reel crate: identifiers, media kinds, asset types,
//! the room lifecycle state machine. No I/O lives here, so everything is testable with a
//! manual clock.

#[macro_use]
mod names;

pub mod events;
pub mod ids;
pub mod lifecycle;
pub mod media;
pub mod options;
pub mod recording;

pub use events::EventKind;
pub use ids::*;
pub use media::*;
