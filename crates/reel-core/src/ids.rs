//! Prefixed random identifiers (`room_…`, `ses_…`): a glance at a log line tells what an
//! id names, and a room id can never be passed where a session id is expected.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// 16 random characters from a 32-letter alphabet: 80 bits, enough to be unguessable.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, random_token(16)))
            }

            /// Accepts only well-formed ids, so that a path segment can never smuggle
            /// `../` into a file name built from an id.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                let ok = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| Self(s.to_string()))
            }

            /// For ids read back from our own database.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(ApplicationId, "app");
id_type!(RoomId, "room");
id_type!(SessionId, "ses");
id_type!(PublicationId, "pub");
id_type!(TrackId, "trk");
id_type!(AssetId, "ast");
id_type!(EventId, "evt");
id_type!(RecordingId, "rec");
id_type!(DeletionId, "del");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = RoomId::generate();
        assert_eq!(RoomId::parse(id.as_str()), Some(id.clone()));
        assert!(RoomId::parse("room_../etc").is_none());
        assert!(RoomId::parse("ses_abc").is_none());
        assert!(RoomId::parse("room_").is_none());
        assert!(SessionId::parse(id.as_str()).is_none());
    }
}
