//! WebRTC ingest, sans-IO: every WHIP publisher's `str0m::Rtc` behind one UDP port.
//!
//! [`Ingest`] is fed offers, datagrams and the time, and drained with [`Ingest::poll_output`]
//! for datagrams to send, events (tracks, frames, sender reports, departures) and the next
//! timeout. It owns no socket and reads no clock, so tests run it on a manual clock and the
//! server drives it from one task.
//!
//! Datagrams are routed by source address once ICE has paired a publisher with it; the
//! first STUN binding from a new address is routed by its ICE username (`Rtc::accepts`).
//!
//! A publisher is a bulkhead: input that makes its `Rtc` fail, or even panic, ends that
//! publisher (`EndReason::Disconnected`) and no other.

mod keepalive;
mod sdp_policy;

pub use sdp_policy::{check_offer, MAX_OFFER_BYTES, SUPPORTED_CODECS};

use reel_core::{Codec, EndReason, MediaKind, PublicationId, TrackId};
use reel_media::codec;
use reel_media::journal::flags;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig, RtcError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WhipError {
    #[error("malformed SDP offer: {0}")]
    BadSdp(String),
    #[error("the offer has no codec Reel records (supported: opus, vp8, vp9, h264)")]
    NoSupportedCodec,
    #[error("the offer sends no audio or video")]
    NothingToReceive,
    #[error("at capacity ({0} publishers)")]
    AtCapacity(usize),
    /// Offers not yet connected, per publish token or per room: a flood of offers that
    /// never connect cannot take the places of other rooms' publishers.
    #[error("{limit} offers of this {scope} are still connecting: connect those (or wait {retry_secs} s)")]
    TooManyPending {
        scope: &'static str,
        limit: usize,
        retry_secs: u64,
    },
    #[error("publication already exists")]
    Duplicate,
    #[error("webrtc engine: {0}")]
    Engine(String),
}

impl WhipError {
    /// True when the publisher sent something wrong (4xx), false when it is ours or load.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::BadSdp(_) | Self::NoSupportedCodec | Self::NothingToReceive
        )
    }
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The addresses put in ICE host candidates (each address peers can reach + the media
    /// port), in order of preference.
    pub candidate_addrs: Vec<SocketAddr>,
    pub max_publishers: usize,
    /// A publisher that has not connected (ICE + DTLS) by then is dropped.
    pub connect_timeout: Duration,
    /// A publisher that has not sent a single datagram (its first STUN binding request) by
    /// then is dropped: a real WHIP client sends one within a round trip of the answer.
    pub first_contact_timeout: Duration,
    /// Offers not yet connected at once, per publish token and per room.
    pub max_pending_per_token: usize,
    pub max_pending_per_room: usize,
    /// A video track that sent no keyframe for this long is asked for one (PLI).
    pub keyframe_interval: Duration,
}

/// Who made an offer, for the per-token and per-room limits on offers still connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offerer {
    /// The publish token's identity (its room and participant; never the secret).
    pub token: String,
    pub room: String,
}

#[derive(Debug, Clone)]
pub enum IngestEvent {
    Connected {
        publication: PublicationId,
    },
    /// A track's first frame arrived. With simulcast, each layer (rid) is its own track:
    /// all layers are journaled and the remux records the highest.
    TrackOpened {
        publication: PublicationId,
        track: TrackId,
        mid: String,
        rid: Option<String>,
        kind: MediaKind,
        codec: Codec,
        clock_rate: u32,
    },
    Frame {
        publication: PublicationId,
        track: TrackId,
        rtp_time: u64,
        arrival: Instant,
        flags: u8,
        data: Arc<[u8]>,
    },
    SenderReport {
        publication: PublicationId,
        track: TrackId,
        rtp_time: u32,
        ntp_unix_us: i64,
    },
    /// The publisher is gone; no further event names it.
    Closed {
        publication: PublicationId,
        reason: EndReason,
        /// Why Reel gave up on it (ICE or DTLS failed, it went silent), for the log; none
        /// when it left or was closed.
        cause: Option<String>,
    },
}

#[derive(Debug)]
pub enum IngestOutput {
    Transmit {
        /// The local candidate it leaves from: a host with several addresses must answer
        /// from the one the publisher paired with.
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    Event(IngestEvent),
    Timeout(Instant),
}

struct Track {
    id: TrackId,
    kind: MediaKind,
    codec: Codec,
    last_sr_ntp: Option<SystemTime>,
    last_keyframe_request: Option<Instant>,
    /// When its last keyframe arrived (none yet: the recording cannot start decoding).
    last_keyframe: Option<Instant>,
}

/// What the ICE-lite keepalive knows of one publisher (`keepalive`).
#[derive(Default)]
struct Consent {
    credentials: Option<keepalive::IceCredentials>,
    /// The pair media arrives on: (the peer's address, ours).
    pair: Option<(SocketAddr, SocketAddr)>,
    last_request: Option<Instant>,
    last_media: Option<Instant>,
    /// Requests made in the peer's name: str0m's answers to them are not sent.
    made: VecDeque<[u8; 12]>,
    count: u64,
}

/// While media arrives (within this), a pair whose peer sent no Binding request for
/// `CONSENT_REFRESH` gets one in its name; str0m drops a pair after 15 s without.
const MEDIA_RECENT: Duration = Duration::from_secs(3);
const CONSENT_REFRESH: Duration = Duration::from_secs(5);

impl Consent {
    /// A Binding request to hand str0m now, if media flows and the peer has gone quiet.
    fn due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let media = self
            .last_media
            .is_some_and(|t| now.duration_since(t) < MEDIA_RECENT);
        let quiet = self
            .last_request
            .is_none_or(|t| now.duration_since(t) >= CONSENT_REFRESH);
        let (remote, local) = self.pair?;
        if !(media && quiet) {
            return None;
        }
        let creds = self.credentials.as_ref()?;
        self.count += 1;
        let mut transaction = [0u8; 12];
        transaction[..4].copy_from_slice(b"reel");
        transaction[4..].copy_from_slice(&self.count.to_be_bytes());
        self.made.push_back(transaction);
        if self.made.len() > 4 {
            self.made.pop_front();
        }
        self.last_request = Some(now);
        Some((
            remote,
            local,
            keepalive::binding_request(creds, transaction),
        ))
    }

    /// str0m's answer to a request made in the peer's name: not for the wire.
    fn is_answer_to_ours(&self, contents: &[u8]) -> bool {
        keepalive::success_transaction(contents).is_some_and(|t| self.made.contains(&t))
    }
}

/// How far a publisher got: what a failure is called depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Answered; ICE has not completed.
    Offered,
    /// ICE completed; DTLS has not.
    IceConnected,
    /// DTLS and SRTP are up: media can flow.
    Connected,
}

struct Publisher {
    rtc: Rtc,
    tracks: HashMap<(Mid, Option<Rid>), Track>,
    next_timeout: Instant,
    stage: Stage,
    /// Ask for a keyframe when none came for this long (zero: only at the start and after
    /// loss).
    keyframe_interval: Duration,
    closing: Option<EndReason>,
    /// Why it is closing, when Reel gave up on it (for the log and the operator).
    cause: Option<String>,
    /// Keeping the pair alive while media flows (`keepalive`).
    consent: Consent,
    connect_deadline: Option<Instant>,
    /// Until the publisher's first datagram.
    first_contact_deadline: Option<Instant>,
    offerer: Offerer,
}

pub struct Ingest {
    config: IngestConfig,
    publishers: HashMap<PublicationId, Publisher>,
    by_source: HashMap<SocketAddr, PublicationId>,
    queue: VecDeque<IngestOutput>,
}

/// Ask for a keyframe at most this often per track: a PLI storm helps nobody.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

fn map_codec(c: str0m::format::Codec) -> Option<Codec> {
    use str0m::format::Codec as S;
    match c {
        S::Opus => Some(Codec::Opus),
        S::Vp8 => Some(Codec::Vp8),
        S::Vp9 => Some(Codec::Vp9),
        S::H264 => Some(Codec::H264),
        _ => None,
    }
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Ingest {
    pub fn new(config: IngestConfig) -> Self {
        Ingest {
            config,
            publishers: HashMap::new(),
            by_source: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    pub fn publisher_count(&self) -> usize {
        self.publishers.len()
    }

    pub fn has_publication(&self, publication: &PublicationId) -> bool {
        self.publishers.contains_key(publication)
    }

    /// Accepts a WHIP offer for a new publication and returns the SDP answer. Refused at
    /// capacity, and when the offerer's token or room has too many offers still connecting.
    pub fn accept_offer(
        &mut self,
        now: Instant,
        publication: PublicationId,
        offerer: &Offerer,
        offer_sdp: &str,
    ) -> Result<String, WhipError> {
        if self.publishers.contains_key(&publication) {
            return Err(WhipError::Duplicate);
        }
        if self.publishers.len() >= self.config.max_publishers {
            return Err(WhipError::AtCapacity(self.config.max_publishers));
        }
        let pending = || {
            self.publishers
                .values()
                .filter(|p| p.connect_deadline.is_some())
        };
        let retry_secs = self.config.first_contact_timeout.as_secs().max(1);
        let of_token = pending()
            .filter(|p| p.offerer.token == offerer.token)
            .count();
        if of_token >= self.config.max_pending_per_token {
            return Err(WhipError::TooManyPending {
                scope: "publish token",
                limit: self.config.max_pending_per_token,
                retry_secs,
            });
        }
        let of_room = pending().filter(|p| p.offerer.room == offerer.room).count();
        if of_room >= self.config.max_pending_per_room {
            return Err(WhipError::TooManyPending {
                scope: "room",
                limit: self.config.max_pending_per_room,
                retry_secs,
            });
        }
        check_offer(offer_sdp)?;
        let bundled = sdp_policy::bundle_single_section(offer_sdp);
        let offer = SdpOffer::from_sdp_string(bundled.as_deref().unwrap_or(offer_sdp))
            .map_err(|e| WhipError::BadSdp(e.to_string()))?;
        let candidate_addrs = &self.config.candidate_addrs;
        let built = catch_unwind(AssertUnwindSafe(|| {
            // Recording only needs what we can remux without transcoding.
            let mut rtc = RtcConfig::new()
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .enable_vp9(true)
                .enable_h264(true)
                .set_ice_lite(true)
                .build(now);
            for addr in candidate_addrs {
                let candidate =
                    Candidate::host(*addr, "udp").map_err(|e| WhipError::Engine(e.to_string()))?;
                rtc.add_local_candidate(candidate);
            }
            let answer = rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| WhipError::BadSdp(e.to_string()))?;
            Ok::<_, WhipError>((rtc, answer))
        }));
        let (rtc, answer) = match built {
            Ok(result) => result?,
            Err(_) => return Err(WhipError::BadSdp("offer crashed the WebRTC engine".into())),
        };
        let answer = answer.to_sdp_string();
        let answer_sdp = answer.clone();
        self.publishers.insert(
            publication,
            Publisher {
                rtc,
                tracks: HashMap::new(),
                next_timeout: now,
                stage: Stage::Offered,
                keyframe_interval: self.config.keyframe_interval,
                closing: None,
                cause: None,
                consent: Consent {
                    credentials: keepalive::IceCredentials::from_sdp(
                        bundled.as_deref().unwrap_or(offer_sdp),
                        &answer_sdp,
                    ),
                    ..Default::default()
                },
                connect_deadline: Some(now + self.config.connect_timeout),
                first_contact_deadline: Some(now + self.config.first_contact_timeout),
                offerer: offerer.clone(),
            },
        );
        Ok(match bundled {
            Some(_) => sdp_policy::unbundle_answer(&answer, offer_sdp),
            None => answer,
        })
    }

    /// Ends a publication (WHIP DELETE, or the session ended under it). Its `Closed` event
    /// is queued at once.
    pub fn close(&mut self, now: Instant, publication: &PublicationId, reason: EndReason) -> bool {
        let Some(p) = self.publishers.get_mut(publication) else {
            return false;
        };
        p.closing.get_or_insert(reason);
        p.rtc.disconnect();
        self.drain(publication, now);
        true
    }

    /// Asks every video track of a publication for a keyframe now (capture resumed: the
    /// recording must continue from a decodable picture; browsers send few unasked).
    pub fn request_keyframes(&mut self, now: Instant, publication: &PublicationId) {
        let Some(p) = self.publishers.get_mut(publication) else {
            return;
        };
        for ((mid, rid), track) in p
            .tracks
            .iter_mut()
            .filter(|(_, t)| t.kind == MediaKind::Video)
        {
            track.last_keyframe_request = Some(now);
            if let Some(mut writer) = p.rtc.writer(*mid) {
                let _ = writer.request_keyframe(*rid, KeyframeRequestKind::Pli);
            }
        }
        self.drain(publication, now);
    }

    /// A datagram arrived on the media port. Returns false when no publisher claims it
    /// (garbage, or a late packet of a publisher already gone).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let Some(input) = udp_input(now, source, destination, datagram) else {
            return false;
        };
        let owner = match self.by_source.get(&source) {
            Some(id) if self.publishers.contains_key(id) => Some(id.clone()),
            _ => self
                .publishers
                .iter()
                .find(|(_, p)| p.rtc.accepts(&input))
                .map(|(id, _)| id.clone()),
        };
        let Some(id) = owner else { return false };
        let publisher = self.publishers.get_mut(&id).expect("owner exists");
        if !publisher.rtc.accepts(&input) {
            return false;
        }
        self.by_source.insert(source, id.clone());
        publisher.first_contact_deadline = None;
        if keepalive::is_binding_request(datagram) {
            publisher.consent.last_request = Some(now);
        }
        publisher.consent.pair = Some((source, destination));
        let result = catch_unwind(AssertUnwindSafe(|| publisher.rtc.handle_input(input)));
        if let Some(error) = failure(result) {
            publisher.give_up(error);
        }
        self.drain(&id, now);
        true
    }

    /// Advances time for every publisher whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PublicationId> = self
            .publishers
            .iter()
            .filter(|(_, p)| {
                p.next_timeout <= now
                    || p.connect_deadline.is_some_and(|d| d <= now)
                    || p.first_contact_deadline.is_some_and(|d| d <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let publisher = self.publishers.get_mut(&id).expect("due publisher exists");
            let never_heard = publisher.first_contact_deadline.is_some_and(|d| d <= now);
            let too_slow = publisher.connect_deadline.is_some_and(|d| d <= now);
            if never_heard || too_slow {
                publisher.connect_deadline = None;
                publisher.first_contact_deadline = None;
                let cause = if never_heard {
                    format!(
                        "no ICE check reached Reel within {} s of the answer",
                        self.config.first_contact_timeout.as_secs()
                    )
                } else {
                    let what = match publisher.stage {
                        Stage::Offered => "ICE",
                        _ => "the DTLS handshake",
                    };
                    format!(
                        "{what} did not complete within {} s of the answer",
                        self.config.connect_timeout.as_secs()
                    )
                };
                publisher.give_up(cause);
            }
            let due = publisher.consent.due(now);
            if let Some(input) = due.as_ref().and_then(|(source, destination, request)| {
                udp_input(now, *source, *destination, request)
            }) {
                let result = catch_unwind(AssertUnwindSafe(|| publisher.rtc.handle_input(input)));
                if let Some(error) = failure(result) {
                    publisher.give_up(error);
                }
            }
            let result = catch_unwind(AssertUnwindSafe(|| {
                publisher.rtc.handle_input(Input::Timeout(now))
            }));
            if let Some(error) = failure(result) {
                publisher.give_up(error);
            }
            self.drain(&id, now);
        }
    }

    /// The next output: datagrams and events first, then when to call `handle_timeout`.
    pub fn poll_output(&mut self) -> IngestOutput {
        if let Some(out) = self.queue.pop_front() {
            return out;
        }
        let next = self
            .publishers
            .values()
            .flat_map(|p| {
                std::iter::once(p.next_timeout)
                    .chain(p.connect_deadline)
                    .chain(p.first_contact_deadline)
            })
            .min();
        IngestOutput::Timeout(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1)))
    }

    /// Polls one publisher until it only has a timeout left, queueing what it produced.
    fn drain(&mut self, id: &PublicationId, now: Instant) {
        let Some(publisher) = self.publishers.get_mut(id) else {
            return;
        };
        loop {
            if !publisher.rtc.is_alive() {
                if publisher.closing.is_none() {
                    publisher.give_up("the WebRTC engine closed the connection");
                }
                let reason = publisher.closing.unwrap_or(EndReason::Disconnected);
                let cause = publisher.cause.take();
                self.publishers.remove(id);
                self.by_source.retain(|_, p| p != id);
                self.queue
                    .push_back(IngestOutput::Event(IngestEvent::Closed {
                        publication: id.clone(),
                        reason,
                        cause,
                    }));
                return;
            }
            let output = match catch_unwind(AssertUnwindSafe(|| publisher.rtc.poll_output())) {
                Ok(Ok(output)) => output,
                Ok(Err(e)) => {
                    publisher.give_up(e.to_string());
                    continue;
                }
                Err(_) => {
                    publisher.give_up("the WebRTC engine panicked on it");
                    continue;
                }
            };
            match output {
                Output::Timeout(t) => {
                    publisher.next_timeout = t;
                    return;
                }
                Output::Transmit(t) if publisher.consent.is_answer_to_ours(&t.contents) => {}
                Output::Transmit(t) => self.queue.push_back(IngestOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Output::Event(event) => handle_event(id, publisher, event, now, &mut self.queue),
            }
        }
    }
}

impl Publisher {
    /// Reel gives up on the publisher: the end reason says how far it got (a publisher that
    /// never connected did not leave, it failed ICE or DTLS), the cause says why.
    fn give_up(&mut self, cause: impl Into<String>) {
        if self.closing.is_none() {
            self.closing = Some(match self.stage {
                Stage::Offered => EndReason::IceFailed,
                Stage::IceConnected => EndReason::DtlsFailed,
                Stage::Connected => EndReason::Disconnected,
            });
            self.cause = Some(cause.into());
        }
        self.rtc.disconnect();
    }
}

/// A datagram as str0m takes it; none when it is not one str0m could take (too large).
fn udp_input(
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    datagram: &[u8],
) -> Option<Input<'_>> {
    let contents = datagram.try_into().ok()?;
    Some(Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents,
        },
    ))
}

/// What a failed call into str0m says: its error, or that it panicked.
fn failure<T>(result: std::thread::Result<Result<T, RtcError>>) -> Option<String> {
    match result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the WebRTC engine panicked on it".into()),
    }
}

fn handle_event(
    id: &PublicationId,
    publisher: &mut Publisher,
    event: Event,
    now: Instant,
    queue: &mut VecDeque<IngestOutput>,
) {
    let mut emit = |e: IngestEvent| queue.push_back(IngestOutput::Event(e));
    match event {
        Event::Connected => {
            publisher.stage = Stage::Connected;
            publisher.connect_deadline = None;
            emit(IngestEvent::Connected {
                publication: id.clone(),
            })
        }
        Event::IceConnectionStateChange(
            IceConnectionState::Connected | IceConnectionState::Completed,
        ) if publisher.stage == Stage::Offered => publisher.stage = Stage::IceConnected,
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            publisher.give_up("ICE disconnected: no check from the publisher for 15 s");
        }
        Event::MediaData(data) => {
            publisher.consent.last_media = Some(now);
            let Some(codec) = map_codec(data.params.spec().codec) else {
                return;
            };
            let mid = data.mid;
            let track = publisher.tracks.entry((mid, data.rid)).or_insert_with(|| {
                let track = Track {
                    id: TrackId::generate(),
                    kind: codec.kind(),
                    codec,
                    last_sr_ntp: None,
                    last_keyframe_request: None,
                    last_keyframe: None,
                };
                emit(IngestEvent::TrackOpened {
                    publication: id.clone(),
                    track: track.id.clone(),
                    mid: mid.to_string(),
                    rid: data.rid.map(|r| r.to_string()),
                    kind: track.kind,
                    codec,
                    clock_rate: data.params.spec().clock_rate.get(),
                });
                track
            });
            if track.codec != codec {
                // A payload type switch to another codec mid-track cannot go into one
                // journal; keep the first codec's frames.
                return;
            }
            if let Some(sr) = &data.last_sender_info {
                if track.last_sr_ntp != Some(sr.ntp_time) {
                    track.last_sr_ntp = Some(sr.ntp_time);
                    emit(IngestEvent::SenderReport {
                        publication: id.clone(),
                        track: track.id.clone(),
                        rtp_time: sr.rtp_time.numer() as u32,
                        ntp_unix_us: unix_us(sr.ntp_time),
                    });
                }
            }
            let keyframe = codec::is_keyframe(codec, &data.data);
            let mut frame_flags = 0;
            if keyframe {
                frame_flags |= flags::KEYFRAME;
            }
            if !data.contiguous {
                frame_flags |= flags::DISCONTINUITY;
            }
            // Ask at the start of every video track (a recording must open on a keyframe),
            // after loss the jitter buffer could not repair, and when none came for the
            // keyframe interval: every output can then be cut and seeked (cues sit on
            // keyframes) without a long run of undecodable frames.
            if keyframe {
                track.last_keyframe = Some(now);
            }
            let first_frame =
                track.last_keyframe_request.is_none() && track.last_keyframe.is_none();
            let stale = track.last_keyframe.is_none_or(|t| {
                !publisher.keyframe_interval.is_zero()
                    && now.duration_since(t) >= publisher.keyframe_interval
            });
            let needs_keyframe = track.kind == MediaKind::Video
                && (first_frame || (!keyframe && (!data.contiguous || stale)));
            emit(IngestEvent::Frame {
                publication: id.clone(),
                track: track.id.clone(),
                rtp_time: data.time.numer(),
                arrival: data.network_time,
                flags: frame_flags,
                data: data.data.clone(),
            });
            let due = track
                .last_keyframe_request
                .is_none_or(|t| now.duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
            if needs_keyframe && due {
                track.last_keyframe_request = Some(now);
                if let Some(mut writer) = publisher.rtc.writer(mid) {
                    let _ = writer.request_keyframe(data.rid, KeyframeRequestKind::Pli);
                }
            }
        }
        _ => {}
    }
}
