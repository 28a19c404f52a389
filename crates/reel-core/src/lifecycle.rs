//! The room lifecycle, sans-IO: the first publisher starts a session, the last one leaving
//! ends it after `empty_timeout` (a rejoin within it continues the same session), and
//! `max_duration` ends it regardless. Time is an input, so tests drive it by hand.

use crate::{EndReason, PublicationId, RoomId, SessionId};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub empty_timeout: Duration,
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            empty_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the caller must do as a consequence of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// End this session (persist, emit events). Its publications are already gone, or
    /// listed in `EndPublication` actions emitted just before.
    EndSession {
        room: RoomId,
        session: SessionId,
        reason: EndReason,
    },
    /// Disconnect a publisher because its session ended under it.
    EndPublication {
        publication: PublicationId,
        reason: EndReason,
    },
}

/// What a session is the session *of*: a room's meeting, which every WHIP publisher of the
/// room joins, or one SIP call recorded in a room (SIPREC), which is a session of its own
/// however many calls the room has at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Venue {
    pub room: RoomId,
    /// The SIP Call-ID of a recorded call.
    pub call: Option<String>,
}

impl Venue {
    pub fn meeting(room: RoomId) -> Self {
        Venue { room, call: None }
    }

    pub fn call(room: RoomId, call_id: impl Into<String>) -> Self {
        Venue {
            room,
            call: Some(call_id.into()),
        }
    }
}

#[derive(Debug)]
struct ActiveSession {
    session: SessionId,
    started: Instant,
    limits: Limits,
    publishers: BTreeSet<PublicationId>,
    empty_since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Lifecycle {
    venues: HashMap<Venue, ActiveSession>,
}

/// The session a joining publisher belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub session: SessionId,
    /// True when this join started the session.
    pub started: bool,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resume a session found live in the database at start-up is not done: sessions
    /// that were live when the server died end as `interrupted` (see startup recovery).
    pub fn join(
        &mut self,
        now: Instant,
        venue: &Venue,
        publication: PublicationId,
        limits: Limits,
    ) -> Joined {
        if let Some(active) = self.venues.get_mut(venue) {
            active.publishers.insert(publication);
            active.empty_since = None;
            return Joined {
                session: active.session.clone(),
                started: false,
            };
        }
        let session = SessionId::generate();
        let mut publishers = BTreeSet::new();
        publishers.insert(publication);
        self.venues.insert(
            venue.clone(),
            ActiveSession {
                session: session.clone(),
                started: now,
                limits,
                publishers,
                empty_since: None,
            },
        );
        Joined {
            session,
            started: true,
        }
    }

    /// A publisher is gone (DELETE, ICE timeout, failure). Unknown publications are ignored,
    /// so a late duplicate notification is harmless.
    pub fn leave(&mut self, now: Instant, venue: &Venue, publication: &PublicationId) {
        if let Some(active) = self.venues.get_mut(venue) {
            if active.publishers.remove(publication) && active.publishers.is_empty() {
                active.empty_since = Some(now);
            }
        }
    }

    pub fn active_session(&self, venue: &Venue) -> Option<&SessionId> {
        self.venues.get(venue).map(|a| &a.session)
    }

    /// Sessions that must end now.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.venues.retain(|venue, active| {
            let reason = if now.duration_since(active.started) >= active.limits.max_duration {
                Some(EndReason::MaxDuration)
            } else {
                active
                    .empty_since
                    .filter(|since| now.duration_since(*since) >= active.limits.empty_timeout)
                    // A call's session ends with the call, not because a room went quiet.
                    .map(|_| match venue.call {
                        Some(_) => EndReason::CallEnded,
                        None => EndReason::Empty,
                    })
            };
            let Some(reason) = reason else { return true };
            for publication in std::mem::take(&mut active.publishers) {
                actions.push(Action::EndPublication {
                    publication,
                    reason,
                });
            }
            actions.push(Action::EndSession {
                room: venue.room.clone(),
                session: active.session.clone(),
                reason,
            });
            false
        });
        actions
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.venues
            .values()
            .flat_map(|a| {
                let max = a.started + a.limits.max_duration;
                let empty = a.empty_since.map(|s| s + a.limits.empty_timeout);
                std::iter::once(max).chain(empty)
            })
            .min()
    }

    /// Every live session, for a graceful shutdown.
    pub fn drain(&mut self) -> Vec<(RoomId, SessionId)> {
        self.venues
            .drain()
            .map(|(venue, a)| (venue.room, a.session))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            empty_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(3600),
        }
    }

    #[test]
    fn first_join_starts_and_second_joins_same_session() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new();
        let room = Venue::meeting(RoomId::generate());
        let a = lc.join(t0, &room, PublicationId::generate(), limits());
        let b = lc.join(t0, &room, PublicationId::generate(), limits());
        assert!(a.started && !b.started);
        assert_eq!(a.session, b.session);
    }

    #[test]
    fn rejoin_within_empty_timeout_continues_session() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new();
        let room = Venue::meeting(RoomId::generate());
        let p1 = PublicationId::generate();
        let first = lc.join(t0, &room, p1.clone(), limits());
        lc.leave(t0 + Duration::from_secs(1), &room, &p1);
        assert!(lc.handle_timeout(t0 + Duration::from_secs(20)).is_empty());
        let again = lc.join(
            t0 + Duration::from_secs(25),
            &room,
            PublicationId::generate(),
            limits(),
        );
        assert_eq!(first.session, again.session);
        assert!(!again.started);
        // Long after the first leave, the session still lives: the rejoin reset the timer.
        assert!(lc.handle_timeout(t0 + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn empty_room_ends_after_timeout_and_next_join_starts_new_session() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new();
        let room = Venue::meeting(RoomId::generate());
        let p1 = PublicationId::generate();
        let first = lc.join(t0, &room, p1.clone(), limits());
        lc.leave(t0 + Duration::from_secs(5), &room, &p1);
        assert_eq!(lc.poll_timeout(), Some(t0 + Duration::from_secs(35)));
        let actions = lc.handle_timeout(t0 + Duration::from_secs(35));
        assert_eq!(
            actions,
            vec![Action::EndSession {
                room: room.room.clone(),
                session: first.session.clone(),
                reason: EndReason::Empty
            }]
        );
        let next = lc.join(
            t0 + Duration::from_secs(40),
            &room,
            PublicationId::generate(),
            limits(),
        );
        assert!(next.started);
        assert_ne!(next.session, first.session);
    }

    #[test]
    fn max_duration_ends_session_and_its_publishers() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new();
        let room = Venue::meeting(RoomId::generate());
        let p1 = PublicationId::generate();
        lc.join(t0, &room, p1.clone(), limits());
        let actions = lc.handle_timeout(t0 + Duration::from_secs(3600));
        assert_eq!(actions.len(), 2);
        assert_eq!(
            actions[0],
            Action::EndPublication {
                publication: p1,
                reason: EndReason::MaxDuration
            }
        );
        assert!(lc.active_session(&room).is_none());
    }

    #[test]
    fn each_call_in_a_room_is_a_session_of_its_own() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new();
        let room = RoomId::generate();
        let (a, b) = (
            Venue::call(room.clone(), "a@x"),
            Venue::call(room.clone(), "b@x"),
        );
        let first = lc.join(t0, &a, PublicationId::generate(), limits());
        let second = lc.join(t0, &b, PublicationId::generate(), limits());
        let meeting = lc.join(
            t0,
            &Venue::meeting(room),
            PublicationId::generate(),
            limits(),
        );
        assert!(first.started && second.started && meeting.started);
        assert_ne!(first.session, second.session);
        assert_ne!(first.session, meeting.session);
        // A call's session ends with the call (its parties gone), not "empty".
        let party = lc.venues[&a].publishers.iter().next().unwrap().clone();
        lc.leave(t0, &a, &party);
        let actions = lc.handle_timeout(t0 + limits().empty_timeout);
        assert!(actions.iter().any(|x| matches!(
            x,
            Action::EndSession {
                reason: EndReason::CallEnded,
                ..
            }
        )));
    }
}
