//! Engine pair test: a str0m client publishing to `Ingest`, wired together in memory with a
//! manual clock. No sockets, no sleeping: ten seconds of media run in milliseconds.

use reel_core::{EndReason, MediaKind, PublicationId};
use reel_whip::{Ingest, IngestConfig, IngestEvent, IngestOutput, Offerer, WhipError};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind as Kind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const SERVER: &str = "127.0.0.1:5000";
const CLIENT: &str = "127.0.0.1:6000";

/// The server side: an ingest on SERVER with these limits, 5 s to a first datagram.
fn ingest(
    max_publishers: usize,
    connect_secs: u64,
    pending_per_token: usize,
    pending_per_room: usize,
) -> Ingest {
    Ingest::new(IngestConfig {
        candidate_addrs: vec![SERVER.parse().unwrap()],
        max_publishers,
        connect_timeout: Duration::from_secs(connect_secs),
        first_contact_timeout: Duration::from_secs(5),
        max_pending_per_token: pending_per_token,
        max_pending_per_room: pending_per_room,
        keyframe_interval: Duration::from_secs(4),
    })
}

fn offerer() -> Offerer {
    Offerer {
        token: "room_a/ann".into(),
        room: "room_a".into(),
    }
}

struct Pair {
    now: Instant,
    client: Rtc,
    ingest: Ingest,
    events: Vec<IngestEvent>,
    connected: bool,
    /// Keyframe requests (PLI/FIR) the client received.
    keyframe_requests: usize,
    /// The client's STUN Binding requests are lost from now on (a peer like libnice that
    /// sends none once connected).
    silent_ice: bool,
}

impl Pair {
    fn new(t0: Instant) -> (Pair, PublicationId, Mid, Mid) {
        Self::with_offer(t0, |offer| offer)
    }

    /// With the client's offer changed by `edit` on its way to the server.
    fn with_offer(t0: Instant, edit: impl Fn(String) -> String) -> (Pair, PublicationId, Mid, Mid) {
        let client_addr: SocketAddr = CLIENT.parse().unwrap();
        let mut ingest = ingest(4, 10, 2, 16);
        let mut client = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(t0);
        client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
        let mut api = client.sdp_api();
        let audio = api.add_media(Kind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(Kind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let publication = PublicationId::generate();
        let answer = ingest
            .accept_offer(
                t0,
                publication.clone(),
                &offerer(),
                &edit(offer.to_sdp_string()),
            )
            .unwrap();
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
        client.sdp_api().accept_answer(pending, answer).unwrap();
        (
            Pair {
                now: t0,
                client,
                ingest,
                events: Vec::new(),
                connected: false,
                keyframe_requests: 0,
                silent_ice: false,
            },
            publication,
            audio,
            video,
        )
    }

    /// Steps until the client is connected (within 5 s).
    fn connect(&mut self) {
        let t0 = self.now;
        while !self.connected {
            self.step(self.now + Duration::from_millis(10));
            assert!(self.now - t0 < Duration::from_secs(5), "no connection");
        }
    }

    /// Moves datagrams both ways until both sides only have timeouts, then advances the
    /// clock to the earliest of them (or `until`).
    fn step(&mut self, until: Instant) {
        let (server, client_addr): (SocketAddr, SocketAddr) =
            (SERVER.parse().unwrap(), CLIENT.parse().unwrap());
        loop {
            let mut moved = false;
            let client_timeout = loop {
                match self.client.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        moved = true;
                        let binding_request = t.contents.starts_with(&[0, 1]);
                        if !(self.silent_ice && binding_request) {
                            self.ingest
                                .handle_receive(self.now, client_addr, server, &t.contents);
                        }
                    }
                    Output::Event(Event::Connected) => self.connected = true,
                    Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                    Output::Event(_) => {}
                }
            };
            let ingest_timeout = loop {
                match self.ingest.poll_output() {
                    IngestOutput::Timeout(t) => break t,
                    IngestOutput::Transmit {
                        destination,
                        contents,
                        ..
                    } => {
                        moved = true;
                        assert_eq!(destination, client_addr);
                        let input = Input::Receive(
                            self.now,
                            Receive {
                                proto: Protocol::Udp,
                                source: server,
                                destination,
                                contents: contents.as_slice().try_into().unwrap(),
                            },
                        );
                        self.client.handle_input(input).unwrap();
                    }
                    IngestOutput::Event(e) => self.events.push(e),
                }
            };
            if !moved {
                self.now = client_timeout.min(ingest_timeout).min(until).max(self.now);
                self.client.handle_input(Input::Timeout(self.now)).unwrap();
                self.ingest.handle_timeout(self.now);
                return;
            }
        }
    }
}

fn vp8_frame(key: bool, n: u32) -> Vec<u8> {
    let mut f = if key {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    f.extend((0..1500).map(|i| (i as u32 ^ n) as u8));
    f
}

/// A publisher that sends a keyframe only when asked (as browsers and hardware encoders do
/// on a long GOP) is asked every `keyframe_interval` (4 s here): its recording has a
/// keyframe at least every 4.5 s, so it can be seeked and cut anywhere.
#[test]
fn a_publisher_is_asked_for_a_keyframe_every_interval() {
    let t0 = Instant::now();
    let (mut pair, _publication, _audio, video) = Pair::new(t0);
    pair.connect();
    let start = pair.now;
    let mut sent = 0u64;
    let mut answered = 0;
    while pair.now - start < Duration::from_secs(20) {
        let elapsed = pair.now - start;
        while Duration::from_micros(33_333 * sent) <= elapsed {
            // A keyframe first, then only in answer to a request.
            let key = sent == 0 || pair.keyframe_requests > answered;
            answered = pair.keyframe_requests;
            let w = pair.client.writer(video).unwrap();
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            let at = start + Duration::from_micros(33_333 * sent);
            let rtp = MediaTime::new(sent * 3000, Frequency::NINETY_KHZ);
            w.write(pt, at, rtp, vp8_frame(key, sent as u32)).unwrap();
            sent += 1;
        }
        pair.step(start + Duration::from_millis(5 * (elapsed.as_millis() as u64 / 5 + 1)));
    }
    let keyframes: Vec<Duration> = pair
        .events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Frame { flags, arrival, .. }
                if flags & reel_media::journal::flags::KEYFRAME != 0 =>
            {
                Some(arrival.saturating_duration_since(start))
            }
            _ => None,
        })
        .collect();
    let longest = keyframes
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(
            keyframes
                .last()
                .map(|l| Duration::from_secs(20).saturating_sub(*l)),
        )
        .max()
        .unwrap();
    assert!(
        (4..=7).contains(&keyframes.len()) && longest <= Duration::from_millis(4500),
        "keyframes at {keyframes:?} ({} requests)",
        pair.keyframe_requests
    );
}

#[test]
fn publisher_connects_and_every_frame_reaches_the_journal_feed() {
    let t0 = Instant::now();
    let (mut pair, publication, audio, video) = Pair::new(t0);
    pair.connect();
    // Ten virtual seconds: audio every 20 ms, video every 33 ms, keyframe every second.
    let start = pair.now;
    let (mut audio_sent, mut video_sent) = (0u64, 0u64);
    while pair.now - start < Duration::from_secs(10) {
        let elapsed = pair.now - start;
        while Duration::from_millis(20 * audio_sent) <= elapsed {
            let w = pair.client.writer(audio).unwrap();
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .unwrap()
                .pt();
            w.write(
                pt,
                start + Duration::from_millis(20 * audio_sent),
                MediaTime::new(audio_sent * 960, Frequency::FORTY_EIGHT_KHZ),
                vec![0xfc; 80],
            )
            .unwrap();
            audio_sent += 1;
        }
        while Duration::from_micros(33_333 * video_sent) <= elapsed {
            let w = pair.client.writer(video).unwrap();
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            let at = start + Duration::from_micros(33_333 * video_sent);
            w.write(
                pt,
                at,
                MediaTime::new(video_sent * 3000, Frequency::NINETY_KHZ),
                vp8_frame(video_sent % 30 == 0, video_sent as u32),
            )
            .unwrap();
            video_sent += 1;
        }
        pair.step(start + Duration::from_millis(5 * (elapsed.as_millis() as u64 / 5 + 1)));
    }
    for _ in 0..50 {
        pair.step(pair.now + Duration::from_millis(10));
    }
    let opened: Vec<_> = pair
        .events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::TrackOpened { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert!(opened.contains(&MediaKind::Audio) && opened.contains(&MediaKind::Video));
    let frames = |k: MediaKind| {
        let ids: Vec<_> = pair
            .events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::TrackOpened { kind, track, .. } if *kind == k => Some(track.clone()),
                _ => None,
            })
            .collect();
        pair.events
            .iter()
            .filter(|e| matches!(e, IngestEvent::Frame { track, .. } if ids.contains(track)))
            .count() as u64
    };
    assert!(
        frames(MediaKind::Audio) >= audio_sent - 2,
        "audio {} of {audio_sent}",
        frames(MediaKind::Audio)
    );
    assert!(
        frames(MediaKind::Video) >= video_sent - 2,
        "video {} of {video_sent}",
        frames(MediaKind::Video)
    );
    assert!(
        pair.events
            .iter()
            .any(|e| matches!(e, IngestEvent::SenderReport { .. })),
        "sender reports are journaled"
    );
    assert!(pair
        .events
        .iter()
        .any(|e| matches!(e, IngestEvent::Frame { flags, .. } if flags & 1 == 1)));

    // Garbage from another address claims nothing and changes nothing.
    let stranger: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    for first in [0u8, 1, 22, 0x80, 0x90, 0xff] {
        let datagram: Vec<u8> = std::iter::once(first)
            .chain((0..200).map(|i| i as u8))
            .collect();
        assert!(!pair.ingest.handle_receive(
            pair.now,
            stranger,
            SERVER.parse().unwrap(),
            &datagram
        ));
    }
    assert_eq!(pair.ingest.publisher_count(), 1);

    assert!(pair.ingest.close(pair.now, &publication, EndReason::Left));
    pair.step(pair.now + Duration::from_millis(10));
    let closed: Vec<_> = pair
        .events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Closed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![EndReason::Left]);
    assert_eq!(pair.ingest.publisher_count(), 0);
}

/// An audio-only offer of one m= line without a BUNDLE group (what webrtcbin with
/// bundle-policy=none and many audio clients send) is answered without one, connects, and
/// its audio arrives.
#[test]
fn an_audio_offer_without_a_bundle_group_is_recorded() {
    let t0 = Instant::now();
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let mut ingest = ingest(4, 10, 2, 16);
    let mut client = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .build(t0);
    client.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
    let mut api = client.sdp_api();
    let audio = api.add_media(Kind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let unbundled: String = offer
        .to_sdp_string()
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=group:BUNDLE"))
        .collect();
    let answer = ingest
        .accept_offer(t0, PublicationId::generate(), &offerer(), &unbundled)
        .expect("a single-section offer needs no BUNDLE group");
    assert!(!answer.contains("a=group:BUNDLE"), "{answer}");
    // str0m as the client insists on a group in any answer (real clients that offer none
    // expect none): it gets one back here, the server side is what is tested.
    let mid = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap()
        .trim()
        .to_string();
    let answer = answer.replacen("m=audio", &format!("a=group:BUNDLE {mid}\r\nm=audio"), 1);
    let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
    client.sdp_api().accept_answer(pending, answer).unwrap();
    let mut pair = Pair {
        now: t0,
        client,
        ingest,
        events: Vec::new(),
        connected: false,
        keyframe_requests: 0,
        silent_ice: false,
    };
    pair.connect();
    let start = pair.now;
    for n in 0..100u64 {
        let at = start + Duration::from_millis(20 * n);
        pair.step(at);
        let w = pair.client.writer(audio).unwrap();
        let pt = w.payload_params().next().unwrap().pt();
        let rtp = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
        w.write(pt, at, rtp, vec![0xfc; 80]).unwrap();
    }
    for _ in 0..20 {
        pair.step(pair.now + Duration::from_millis(10));
    }
    let frames = pair
        .events
        .iter()
        .filter(|e| matches!(e, IngestEvent::Frame { .. }))
        .count();
    assert!(frames >= 98, "{frames} of 100 audio frames");
}

/// A peer that sends no STUN Binding request once connected (libnice: only an indication
/// every 25 s) keeps its pair while its media arrives: 40 s of audio recorded whole, where
/// str0m alone dropped the pair 15 s after the last request.
#[test]
fn media_keeps_a_pair_alive_when_the_peer_sends_no_binding_requests() {
    let t0 = Instant::now();
    let (mut pair, _publication, audio, _video) = Pair::new(t0);
    pair.connect();
    pair.silent_ice = true;
    let start = pair.now;
    let packets = 40 * 50u64;
    for n in 0..packets {
        let at = start + Duration::from_millis(20 * n);
        pair.step(at);
        let w = pair.client.writer(audio).unwrap();
        let pt = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .unwrap()
            .pt();
        let rtp = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
        w.write(pt, at, rtp, vec![0xfc; 80]).unwrap();
    }
    for _ in 0..20 {
        pair.step(pair.now + Duration::from_millis(10));
    }
    assert!(closings(&pair).is_empty(), "{:?}", closings(&pair));
    let frames = pair
        .events
        .iter()
        .filter(|e| matches!(e, IngestEvent::Frame { .. }))
        .count() as u64;
    assert!(frames >= packets - 2, "{frames} of {packets} frames");
}

/// The Closed events the pair saw: reason and cause.
fn closings(pair: &Pair) -> Vec<(EndReason, Option<String>)> {
    pair.events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Closed { reason, cause, .. } => Some((*reason, cause.clone())),
            _ => None,
        })
        .collect()
}

/// A publisher whose DTLS certificate is not the one its offer announced (what a broken or
/// hostile client, or one whose certificate Reel cannot accept, looks like): ICE completes,
/// DTLS fails, and the end says so (`dtls_failed`, with str0m's reason), not "left".
#[test]
fn a_publisher_that_fails_dtls_ends_dtls_failed_with_its_cause() {
    let t0 = Instant::now();
    let (mut pair, _publication, _, _) = Pair::with_offer(t0, |offer| {
        let line = offer
            .lines()
            .find(|l| l.starts_with("a=fingerprint:sha-256 "))
            .expect("a fingerprint")
            .to_string();
        let forged = format!("a=fingerprint:sha-256 {}", ["AB"; 32].join(":"));
        offer.replace(&line, &forged)
    });
    while pair.now - t0 < Duration::from_secs(3) && closings(&pair).is_empty() {
        let next = pair.now + Duration::from_millis(50);
        pair.step(next);
    }
    // The client may think itself connected: it is the server that checks the certificate.
    let closed = closings(&pair);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].0, EndReason::DtlsFailed, "{closed:?}");
    let cause = closed[0].1.clone().expect("a cause");
    assert!(!cause.is_empty());
    eprintln!("dtls failure cause: {cause}");
    assert_eq!(pair.ingest.publisher_count(), 0);
}

#[test]
fn a_publisher_that_never_connects_is_dropped_after_the_connect_timeout() {
    let t0 = Instant::now();
    let (mut pair, _publication, _, _) = Pair::new(t0);
    // Never deliver the client's packets: only advance the server's clock.
    let mut now = t0;
    while now - t0 < Duration::from_secs(11) {
        now += Duration::from_millis(500);
        pair.ingest.handle_timeout(now);
    }
    let mut closed = None;
    loop {
        match pair.ingest.poll_output() {
            IngestOutput::Event(IngestEvent::Closed { reason, cause, .. }) => {
                closed = Some((reason, cause))
            }
            IngestOutput::Timeout(_) => break,
            _ => {}
        }
    }
    // Reel gave up on it: ICE failed, and the cause names what was missing.
    let (reason, cause) = closed.expect("closed");
    assert_eq!(reason, EndReason::IceFailed);
    assert_eq!(
        cause.as_deref(),
        Some("no ICE check reached Reel within 5 s of the answer")
    );
    assert_eq!(pair.ingest.publisher_count(), 0);
}

/// Closed events due by `until`, advancing the clock in 100 ms steps.
fn closed_by(
    ingest: &mut Ingest,
    from: Instant,
    until: Duration,
) -> Vec<(PublicationId, Duration)> {
    let mut closed = Vec::new();
    let mut now = from;
    while now - from < until {
        now += Duration::from_millis(100);
        ingest.handle_timeout(now);
        loop {
            match ingest.poll_output() {
                IngestOutput::Event(IngestEvent::Closed { publication, .. }) => {
                    closed.push((publication, now - from))
                }
                IngestOutput::Timeout(_) => break,
                _ => {}
            }
        }
    }
    closed
}

fn an_offer(t0: Instant) -> String {
    let mut client = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .build(t0);
    client.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
    let mut api = client.sdp_api();
    api.add_media(Kind::Audio, Direction::SendOnly, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

/// One token's offers that never connect: two at a time, then 429-class refusals, while
/// another room's publisher is still admitted; a room has its own cap across tokens.
#[test]
fn offers_still_connecting_are_limited_per_token_and_per_room() {
    let t0 = Instant::now();
    let mut ingest = ingest(100, 30, 2, 3);
    let offer = an_offer(t0);
    let mut refused = 0;
    for _ in 0..50 {
        match ingest.accept_offer(t0, PublicationId::generate(), &offerer(), &offer) {
            Ok(_) => {}
            Err(WhipError::TooManyPending {
                scope: "publish token",
                limit: 2,
                ..
            }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ingest.publisher_count(), refused), (2, 48));
    let other_room = Offerer {
        token: "room_b/bo".into(),
        room: "room_b".into(),
    };
    ingest
        .accept_offer(t0, PublicationId::generate(), &other_room, &offer)
        .unwrap();
    let same_room = Offerer {
        token: "room_a/cy".into(),
        room: "room_a".into(),
    };
    ingest
        .accept_offer(t0, PublicationId::generate(), &same_room, &offer)
        .unwrap();
    let fourth = Offerer {
        token: "room_a/di".into(),
        room: "room_a".into(),
    };
    let err = ingest
        .accept_offer(t0, PublicationId::generate(), &fourth, &offer)
        .unwrap_err();
    assert!(
        matches!(err, WhipError::TooManyPending { scope: "room", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("room"), "{err}");
}

/// An offer whose publisher never sends a datagram goes after `first_contact_timeout` (5 s),
/// not the 30 s a connecting publisher gets; its place is free again.
#[test]
fn an_offer_never_followed_by_a_stun_request_goes_at_the_first_contact_timeout() {
    let t0 = Instant::now();
    let mut ingest = ingest(100, 30, 2, 16);
    let offer = an_offer(t0);
    let first = PublicationId::generate();
    ingest
        .accept_offer(t0, first.clone(), &offerer(), &offer)
        .unwrap();
    let closed = closed_by(&mut ingest, t0, Duration::from_secs(7));
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0, first);
    assert!(closed[0].1 >= Duration::from_secs(5) && closed[0].1 <= Duration::from_millis(5200));
    assert_eq!(ingest.publisher_count(), 0);
}

#[test]
fn mutated_offers_get_an_error_or_an_answer_never_a_panic() {
    let t0 = Instant::now();
    let mut client = RtcConfig::new().build(t0);
    let mut api = client.sdp_api();
    api.add_media(Kind::Audio, Direction::SendOnly, None, None, None);
    api.add_media(Kind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    let offer = offer.to_sdp_string();
    let lines: Vec<&str> = offer.lines().collect();
    let mut ingest = ingest(10_000, 10, 10_000, 10_000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        for _ in 0..1 + next() % 3 {
            let i = next() % l.len();
            match next() % 4 {
                0 => {
                    l.remove(i);
                }
                1 => {
                    let j = next() % l.len();
                    l.swap(i, j);
                }
                2 => {
                    let cut = l[i].floor_char_boundary(next() % (l[i].len() + 1));
                    l[i].truncate(cut);
                }
                _ => {
                    let dup = l[next() % l.len()].clone();
                    l.insert(i, dup);
                }
            }
        }
        match ingest.accept_offer(t0, PublicationId::generate(), &offerer(), &l.join("\r\n")) {
            Ok(_) => accepted += 1,
            Err(_) => rejected += 1,
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "accepted {accepted}, rejected {rejected}"
    );
}
