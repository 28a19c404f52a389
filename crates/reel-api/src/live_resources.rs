//! The WHIP resources this process created, so a publisher can still leave (`DELETE`) while
//! the database is unavailable: leaving is the one request a recorder must always take, as
//! it ends the capture and starts the participant's asset. Only the token's digest is kept,
//! never the token; the map is bounded (the oldest entries are forgotten first).

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const CAPACITY: usize = 65_536;

struct Resource {
    room: String,
    participant_token: [u8; 32],
}

#[derive(Default)]
pub struct LiveResources {
    inner: Mutex<(HashMap<String, Resource>, VecDeque<String>)>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl LiveResources {
    pub fn remember(&self, publication: &str, room: &str, token_secret: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        while map.len() >= CAPACITY {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        map.insert(
            publication.to_string(),
            Resource {
                room: room.to_string(),
                participant_token: digest(token_secret),
            },
        );
        order.push_back(publication.to_string());
        // Ids forgotten on leave stay in `order` until they are dropped here.
        if order.len() > 2 * CAPACITY {
            order.retain(|id| map.contains_key(id));
        }
    }

    /// Whether `token_secret` published `publication` in `room` (as far as this process knows).
    pub fn allows(&self, publication: &str, room: &str, token_secret: &str) -> bool {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .0
            .get(publication)
            .is_some_and(|r| r.room == room && r.participant_token == digest(token_secret))
    }

    pub fn forget(&self, publication: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(publication);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_publishing_token_in_its_room() {
        let live = LiveResources::default();
        live.remember("pub_a", "room_1", "secret");
        assert!(live.allows("pub_a", "room_1", "secret"));
        assert!(!live.allows("pub_a", "room_1", "other"));
        assert!(!live.allows("pub_a", "room_2", "secret"));
        assert!(!live.allows("pub_b", "room_1", "secret"));
        live.forget("pub_a");
        assert!(!live.allows("pub_a", "room_1", "secret"));
    }
}
