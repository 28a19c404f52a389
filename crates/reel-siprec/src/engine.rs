//! The recording server's SIP engine, sans-IO: datagrams in (`handle_datagram`), datagrams
//! and call events out (`poll_output`), timers by `poll_timeout` / `handle_timeout`. The
//! application decides what to record (`accept` / `reject`); the engine does the protocol:
//!
//! - INVITE server transactions (RFC 3261 §17.2.1): 100 Trying at once; the final response
//!   re-sent to every retransmitted INVITE; over UDP re-sent on timer G (T1 doubling to T2)
//!   until the ACK, and given up after timer H (64·T1), which ends the call.
//! - Non-INVITE server transactions (§17.2.2): the response is kept for timer J (64·T1) and
//!   re-sent to retransmissions.
//! - Dialogs: a To tag of ours per call; re-INVITE and UPDATE re-offer (hold, resume, new
//!   metadata); BYE ends; CANCEL of a pending INVITE answers 487.
//! - What a recording server refuses: an INVITE without SIPREC (421 with `Require:
//!   siprec`), unknown `Require` options (420), malformed requests (400 with the reason),
//!   and new calls at capacity (503 with Retry-After, so the SRC fails over). Capacity counts
//!   confirmed calls; INVITEs not yet ACKed have caps of their own, per source and in all:
//!   past them a new INVITE gets 503 with Retry-After. An answered call is never given up
//!   for a newer one (its ACK may be queued behind the burst that filled the cap; giving it
//!   up lost answered calls in a burst of 300): only timer H ends it. A flood of INVITEs
//!   that are never ACKed fills its own source's cap, not the others'.
//! - Sources outside `allowed_sources` get no answer at all.
//!   Session timers (RFC 4028) are tolerated: `timer` is supported and refreshes are
//!   ordinary re-INVITEs/UPDATEs.

use crate::message::{self, Message, Request};
use crate::metadata::Metadata;
use crate::multipart::siprec_body;
use crate::plan;
use crate::sdp::{self, LineAnswer, Offer};
use crate::sources::AllowedSources;
use crate::SiprecError;
use ezk_sip_types::Method;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE";
/// Refused INVITEs kept for their ACK at once (`make_room_for_refused`).
const MAX_KEPT_REFUSALS: usize = 64;
const SUPPORTED: &str = "siprec, timer, replaces";

#[derive(Debug, Clone)]
pub struct Config {
    /// The address put in SDP answers and Contact, unless the datagram that began a call
    /// says which of the host's addresses its SRC reached (`handle_datagram_at`).
    pub address: IpAddr,
    pub port: u16,
    /// Calls recorded at once (confirmed by their ACK); beyond, new INVITEs get 503.
    pub max_calls: usize,
    /// Calls offered and not yet confirmed by their ACK, in all and from one source IP address;
    /// a new INVITE beyond either gets 503 with Retry-After. Unconfirmed calls end at timer
    /// H (32 s), so a flood of INVITEs that are never ACKed holds places that long, and only
    /// its own source's.
    pub max_unconfirmed: usize,
    pub max_unconfirmed_per_source: usize,
    /// RTP ports the unconfirmed calls from one source IP address may hold in all: a few
    /// INVITEs of many lines fill a port range as surely as many INVITEs of one.
    pub max_unconfirmed_ports_per_source: usize,
    /// Lines recorded per call; an offer's lines beyond it are declined (port 0).
    pub max_lines_per_call: usize,
    /// Who may send SIP at all; datagrams from elsewhere are dropped unanswered.
    pub allowed_sources: AllowedSources,
}

/// What the engine asks of, or tells, the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new SIPREC session offered: answer with [`Engine::accept`] or [`Engine::reject`].
    Offered {
        call_id: String,
        /// The Request-URI's user part: which room the call goes to.
        user: Option<String>,
        offer: Offer,
        metadata: Option<Metadata>,
    },
    /// A re-INVITE or UPDATE in an established call (hold/resume, new streams or metadata,
    /// or a session-timer refresh); answer with `accept`/`reject` too.
    Reoffered {
        call_id: String,
        offer: Offer,
        /// The metadata after this update (the previous one if none was sent).
        metadata: Option<Metadata>,
    },
    /// The SRC ACKed the 200 OK of a new call: it is real (not a half-open INVITE), and the
    /// application may now make its rows and record it.
    Confirmed { call_id: String },
    /// The call is over (BYE, CANCEL, no ACK); the application stops recording it.
    Ended { call_id: String, reason: String },
    /// A datagram that is not a SIP message this engine can answer (dropped).
    Malformed { from: SocketAddr, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send { to: SocketAddr, data: Vec<u8> },
    Event(Event),
}

/// An INVITE awaiting the application's answer, or answered and awaiting its ACK.
struct InviteTx {
    request: Request,
    from: SocketAddr,
    response: Option<Vec<u8>>,
    /// Timer G: the next retransmission of the final response, and its interval.
    resend_at: Option<(Instant, Duration)>,
    /// Timer H: give up waiting for the ACK.
    give_up_at: Option<Instant>,
    succeeded: bool,
}

struct Call {
    to_tag: String,
    /// The INVITE (initial or re-INVITE) in progress, if any.
    invite: Option<InviteTx>,
    /// A pending UPDATE (answered by `accept` like a re-INVITE).
    update: Option<(Request, SocketAddr)>,
    established: bool,
    metadata: Option<Metadata>,
    sdp_version: u64,
    session_id: u64,
    /// Refused before it began: kept only to absorb the ACK of the error response.
    refused: bool,
    /// The INVITE that began the call and where it came from: the dialog a BYE of ours needs.
    origin: Option<(Request, SocketAddr)>,
    /// When its INVITE came: the oldest unconfirmed call is the first pushed out.
    offered_at: Instant,
    /// The address of ours its SRC reached: what the SDP answer, Contact and Via name.
    local: IpAddr,
    /// Where its INVITE came from: what the per-source cap counts.
    source: SocketAddr,
    /// RTP ports its answer holds (one per recorded line, at most `max_lines_per_call`).
    ports: usize,
}

/// A BYE of ours (non-INVITE client transaction, RFC 3261 §17.1.2): re-sent on timer E
/// until a response, given up on timer F.
struct Bye {
    to: SocketAddr,
    branch: String,
    data: Vec<u8>,
    resend_at: (Instant, Duration),
    give_up_at: Instant,
}

pub struct Engine {
    config: Config,
    calls: HashMap<String, Call>,
    /// Non-INVITE responses kept for retransmissions: (branch, method) → (response, until).
    answered: HashMap<(String, String), (Vec<u8>, Instant)>,
    out: std::collections::VecDeque<Output>,
    byes: Vec<Bye>,
    /// Datagrams dropped because their source is not in `allowed_sources`.
    refused_sources: u64,
    /// The local address of the datagram being handled.
    arrived_at: IpAddr,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        Engine {
            arrived_at: config.address,
            config,
            calls: HashMap::new(),
            answered: HashMap::new(),
            out: Default::default(),
            byes: Vec::new(),
            refused_sources: 0,
        }
    }

    /// Calls being recorded or being set up (refused ones not counted).
    pub fn calls(&self) -> usize {
        self.calls.values().filter(|c| !c.refused).count()
    }

    /// Datagrams dropped so far because their source is not allowed.
    pub fn refused_sources(&self) -> u64 {
        self.refused_sources
    }

    /// Whether a call (set up or being set up) came from `peer`: its connection must stay.
    pub fn carries_call(&self, peer: SocketAddr) -> bool {
        self.calls.values().filter(|c| !c.refused).any(|c| {
            c.origin.as_ref().is_some_and(|(_, from)| *from == peer)
                || c.invite.as_ref().is_some_and(|i| i.from == peer)
        })
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.out.push_back(Output::Send { to, data });
    }

    /// One datagram from `from`. Malformed input gets a 400 when it can be answered at all
    /// (it has what a response needs) and is otherwise dropped; it never affects other calls.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram_at(now, from, self.config.address, data)
    }

    /// A datagram (or a message off a TCP stream) that reached our address `local`: a call
    /// it begins is answered with that address, the one its SRC can reach.
    pub fn handle_datagram_at(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: IpAddr,
        data: &[u8],
    ) {
        self.arrived_at = local;
        if !self.config.allowed_sources.allows(from.ip()) {
            self.refused_sources += 1;
            return;
        }
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        match message::parse(data) {
            Ok(Message::Request(r)) => self.handle_request(now, from, r),
            // The only requests Reel sends are BYEs: any final response ends the transaction.
            Ok(Message::Response(r)) => {
                if r.code >= 200 {
                    self.byes.retain(|b| b.branch != r.ids.branch);
                }
            }
            // Without its ids a message cannot be answered: the application logs it once.
            Err(e) => self.event(Event::Malformed {
                from,
                reason: e.to_string(),
            }),
        }
    }

    fn handle_request(&mut self, now: Instant, from: SocketAddr, r: Request) {
        let key = (r.ids.branch.clone(), r.method.to_string());
        if r.method != Method::ACK {
            if let Some((resp, _)) = self.answered.get(&key) {
                let resp = resp.clone();
                return self.send(from, resp);
            }
        }
        match r.method.to_string().as_str() {
            "INVITE" => self.invite(now, from, r),
            "ACK" => {
                if let Some(call) = self.calls.get_mut(&r.ids.call_id) {
                    if let Some(tx) = call.invite.take_if(|tx| tx.response.is_some()) {
                        if tx.succeeded {
                            let first = !call.established;
                            call.established = true;
                            if first {
                                let call_id = r.ids.call_id.clone();
                                self.event(Event::Confirmed { call_id });
                            }
                        } else if !call.established {
                            self.calls.remove(&r.ids.call_id);
                        }
                    }
                }
            }
            "BYE" => {
                if self.calls.remove(&r.ids.call_id).is_some() {
                    self.answer_once(now, from, &r, 200, "OK", &[]);
                    self.event(Event::Ended {
                        call_id: r.ids.call_id.clone(),
                        reason: "bye".into(),
                    });
                } else {
                    self.answer_once(now, from, &r, 481, "Call/Transaction Does Not Exist", &[]);
                }
            }
            "CANCEL" => self.cancel(now, from, r),
            "OPTIONS" => {
                let extra = [
                    ("Allow", ALLOW.to_string()),
                    (
                        "Accept",
                        "application/sdp, multipart/mixed, application/rs-metadata+xml".into(),
                    ),
                    ("Supported", SUPPORTED.to_string()),
                ];
                self.answer_once(now, from, &r, 200, "OK", &extra);
            }
            "UPDATE" => self.update(now, from, r),
            _ => {
                let extra = [("Allow", ALLOW.to_string())];
                self.answer_once(now, from, &r, 405, "Method Not Allowed", &extra);
            }
        }
    }

    /// A non-INVITE response, kept for timer J.
    fn answer_once(
        &mut self,
        now: Instant,
        to: SocketAddr,
        r: &Request,
        code: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let tag = self.calls.get(&r.ids.call_id).map(|c| c.to_tag.clone());
        let tag = tag.unwrap_or_else(|| self.tag());
        let resp = r.respond(code, reason, Some(&tag), extra, None);
        self.answered.insert(
            (r.ids.branch.clone(), r.method.to_string()),
            (resp.clone(), now + 64 * T1),
        );
        self.send(to, resp);
    }

    /// A tag or branch suffix: random (RFC 3261 §19.3 wants them globally unique, and a
    /// counter would repeat itself after every restart, matching an old dialog's tags).
    fn tag(&mut self) -> String {
        format!("reel{:016x}", rand::random::<u64>())
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn invite(&mut self, now: Instant, from: SocketAddr, r: Request) {
        // A retransmission of the INVITE in progress: the last response again.
        if let Some(call) = self.calls.get(&r.ids.call_id) {
            if let Some(tx) = &call.invite {
                if tx.request.ids.branch == r.ids.branch {
                    let resp = tx
                        .response
                        .clone()
                        .unwrap_or_else(|| r.respond(100, "Trying", None, &[], None));
                    return self.send(from, resp);
                }
                // A new INVITE while one is pending (RFC 3261 §14.2).
                let resp = r.respond(491, "Request Pending", Some(&call.to_tag), &[], None);
                return self.send(from, resp);
            }
        }
        let in_dialog = r.ids.to_tag.is_some();
        if in_dialog && !self.calls.contains_key(&r.ids.call_id) {
            let resp = r.respond(481, "Call/Transaction Does Not Exist", None, &[], None);
            return self.send(from, resp);
        }
        if !in_dialog {
            let unsupported: Vec<String> = r
                .header("Require")
                .iter()
                .flat_map(|v| v.split(',').map(|o| o.trim().to_string()))
                .filter(|o| {
                    !o.is_empty() && !SUPPORTED.split(", ").any(|s| s.eq_ignore_ascii_case(o))
                })
                .collect();
            if !unsupported.is_empty() {
                let extra = [("Unsupported", unsupported.join(", "))];
                return self.final_for_new(now, from, r, 420, "Bad Extension", &extra);
            }
            let siprec = r.lists("Require", "siprec")
                || r.header("Contact").iter().any(|c| c.contains("+sip.src"));
            if !siprec {
                let extra = [("Require", "siprec".to_string())];
                return self.final_for_new(
                    now,
                    from,
                    r,
                    421,
                    "Extension Required: not a SIPREC session",
                    &extra,
                );
            }
            // Confirmed calls only: unconfirmed ones have a cap of their own.
            let confirmed = self.calls.values().filter(|c| c.established).count();
            if confirmed >= self.config.max_calls {
                let extra = [("Retry-After", "5".to_string())];
                return self.refuse_statelessly(from, r, "at capacity", &extra);
            }
        }
        let parsed = self.offer_of(&r, r.ids.call_id.as_str());
        let (offer, metadata) = match parsed {
            Ok(x) => x,
            Err(e) => {
                let (code, reason) = (400u16, e.to_string());
                if in_dialog {
                    let tag = self.calls[&r.ids.call_id].to_tag.clone();
                    let resp = r.respond(code, &reason, Some(&tag), &[], None);
                    self.pending(now, from, r, resp, false);
                    return;
                }
                return self.final_for_new(now, from, r, code, &reason, &[]);
            }
        };
        // A new call holds an RTP port per recorded line from its answer to its ACK: the
        // unconfirmed budget counts calls and, per source, their ports.
        let ports = plan::ports_needed(&offer, self.config.max_lines_per_call);
        if !in_dialog {
            let waiting = self.calls.values().filter(|c| !c.established && !c.refused);
            let (all, mine, mine_ports) = waiting.fold((0, 0, 0), |(all, mine, p), c| {
                let here = c.source.ip() == from.ip();
                (
                    all + 1,
                    mine + usize::from(here),
                    p + if here { c.ports } else { 0 },
                )
            });
            if all >= self.config.max_unconfirmed
                || mine >= self.config.max_unconfirmed_per_source
                || mine_ports + ports > self.config.max_unconfirmed_ports_per_source
            {
                let extra = [("Retry-After", "1".to_string())];
                return self.refuse_statelessly(
                    from,
                    r,
                    "too many calls waiting for their ACK",
                    &extra,
                );
            }
        }
        let trying = r.respond(100, "Trying", None, &[], None);
        self.send(from, trying);
        let call_id = r.ids.call_id.clone();
        let user = r.uri_user.clone();
        let tx = InviteTx {
            request: r,
            from,
            response: None,
            resend_at: None,
            give_up_at: None,
            succeeded: false,
        };
        if in_dialog {
            let call = self.calls.get_mut(&call_id).expect("checked above");
            call.invite = Some(tx);
            call.metadata = metadata.clone();
            self.event(Event::Reoffered {
                call_id,
                offer,
                metadata,
            });
        } else {
            let to_tag = self.tag();
            let session_id = rand::random::<u32>() as u64;
            let origin = Some((tx.request.clone(), from));
            self.calls.insert(
                call_id.clone(),
                Call {
                    origin,
                    to_tag,
                    invite: Some(tx),
                    update: None,
                    established: false,
                    metadata: metadata.clone(),
                    sdp_version: 0,
                    session_id,
                    refused: false,
                    offered_at: now,
                    local: self.arrived_at,
                    source: from,
                    ports,
                },
            );
            self.event(Event::Offered {
                call_id,
                user,
                offer,
                metadata,
            });
        }
    }

    /// A 503 under load, sent once and not kept: an INVITE server transaction would re-send
    /// it on timer G until the ACK, which a flood never sends (about five copies of each
    /// refusal in ten seconds: a reflector). A real SRC that misses it re-sends its INVITE
    /// and is answered again; its ACK, matching no call, is dropped.
    fn refuse_statelessly(
        &mut self,
        from: SocketAddr,
        r: Request,
        why: &str,
        extra: &[(&str, String)],
    ) {
        let tag = self.tag();
        let reason = format!("Service Unavailable: {why}");
        let resp = r.respond(503, &reason, Some(&tag), extra, None);
        self.send(from, resp);
    }

    /// Refused INVITEs are kept only to absorb the ACK of their error response (re-sent on
    /// timer G until then); at `MAX_KEPT_REFUSALS` of them the oldest is forgotten (its ACK,
    /// if it ever comes, is then ignored), so a flood of refused INVITEs can neither grow the
    /// table nor have many refusals re-sent at once.
    fn make_room_for_refused(&mut self) {
        let refused = || self.calls.iter().filter(|(_, c)| c.refused);
        if refused().count() < MAX_KEPT_REFUSALS {
            return;
        }
        if let Some(oldest) = refused()
            .min_by_key(|(_, c)| c.offered_at)
            .map(|(id, _)| id.clone())
        {
            self.calls.remove(&oldest);
        }
    }

    /// The SDP and metadata of a request, metadata merged with what the call had.
    fn offer_of(
        &self,
        r: &Request,
        call_id: &str,
    ) -> Result<(Offer, Option<Metadata>), SiprecError> {
        let content_type = r
            .header("Content-Type")
            .into_iter()
            .next()
            .ok_or_else(|| SiprecError::Sdp("no body".into()))?;
        let body = siprec_body(&content_type, &r.body)?;
        let offer = Offer::parse(&body.sdp)?;
        let before = self.calls.get(call_id).and_then(|c| c.metadata.clone());
        let metadata = match (body.metadata, before) {
            (Some(xml), Some(before)) => Some(before.updated(Metadata::parse(&xml)?)?),
            (Some(xml), None) => Some(Metadata::parse(&xml)?),
            (None, before) => before,
        };
        if let Some(m) = &metadata {
            let unknown = m.unknown_labels(&offer.labels());
            if !unknown.is_empty() {
                return Err(SiprecError::Metadata(format!(
                    "metadata names streams not in the SDP: {}",
                    unknown.join(", ")
                )));
            }
        }
        if offer.media.iter().all(|m| m.recordable().is_none()) {
            return Err(SiprecError::Sdp("no recordable media".into()));
        }
        Ok((offer, metadata))
    }

    /// A final error response to a new INVITE: sent, then kept until its ACK (or timer H).
    fn final_for_new(
        &mut self,
        now: Instant,
        from: SocketAddr,
        r: Request,
        code: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        self.make_room_for_refused();
        let tag = self.tag();
        let resp = r.respond(code, reason, Some(&tag), extra, None);
        let call_id = r.ids.call_id.clone();
        self.calls.insert(
            call_id,
            Call {
                to_tag: tag,
                invite: None,
                update: None,
                established: false,
                metadata: None,
                sdp_version: 0,
                session_id: 0,
                refused: true,
                origin: None,
                offered_at: now,
                local: self.arrived_at,
                source: from,
                ports: 0,
            },
        );
        self.pending(now, from, r, resp, false);
    }

    /// Sends the final response of the call's INVITE transaction and arms timers G and H.
    fn pending(&mut self, now: Instant, from: SocketAddr, r: Request, resp: Vec<u8>, ok: bool) {
        let call = self.calls.get_mut(&r.ids.call_id).expect("call exists");
        call.invite = Some(InviteTx {
            request: r,
            from,
            response: Some(resp.clone()),
            resend_at: Some((now + T1, T1)),
            give_up_at: Some(now + 64 * T1),
            succeeded: ok,
        });
        self.send(from, resp);
    }

    fn cancel(&mut self, now: Instant, from: SocketAddr, r: Request) {
        let pending = self
            .calls
            .get(&r.ids.call_id)
            .and_then(|c| c.invite.as_ref())
            .filter(|tx| tx.response.is_none() && tx.request.ids.branch == r.ids.branch)
            .map(|tx| (tx.request.clone(), tx.from));
        match pending {
            Some((invite, invite_from)) => {
                self.answer_once(now, from, &r, 200, "OK", &[]);
                let tag = self.calls[&r.ids.call_id].to_tag.clone();
                let resp = invite.respond(487, "Request Terminated", Some(&tag), &[], None);
                self.pending(now, invite_from, invite, resp, false);
                self.event(Event::Ended {
                    call_id: r.ids.call_id.clone(),
                    reason: "cancelled".into(),
                });
            }
            None => self.answer_once(now, from, &r, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    fn update(&mut self, now: Instant, from: SocketAddr, r: Request) {
        if !self.calls.contains_key(&r.ids.call_id) {
            return self.answer_once(now, from, &r, 481, "Call/Transaction Does Not Exist", &[]);
        }
        if r.body.is_empty() {
            // A session-timer refresh without an offer.
            return self.answer_once(now, from, &r, 200, "OK", &[]);
        }
        match self.offer_of(&r, &r.ids.call_id) {
            Ok((offer, metadata)) => {
                let call_id = r.ids.call_id.clone();
                let call = self.calls.get_mut(&call_id).expect("checked");
                call.metadata = metadata.clone();
                call.update = Some((r, from));
                self.event(Event::Reoffered {
                    call_id,
                    offer,
                    metadata,
                });
            }
            Err(e) => self.answer_once(now, from, &r, 400, &e.to_string(), &[]),
        }
    }

    /// Answers the call's pending offer (new call, re-INVITE or UPDATE) with `lines`.
    pub fn accept(&mut self, now: Instant, call_id: &str, offer: &Offer, lines: &[LineAnswer]) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.sdp_version += 1;
        let sdp = sdp::answer(offer, lines, call.local, call.session_id, call.sdp_version);
        let contact = format!(
            "<sip:reel@{}>",
            SocketAddr::new(call.local, self.config.port)
        );
        let extra = [
            ("Contact", contact),
            ("Allow", ALLOW.to_string()),
            ("Supported", SUPPORTED.to_string()),
        ];
        let tag = call.to_tag.clone();
        if let Some((r, from)) = call.update.take() {
            let resp = r.respond(
                200,
                "OK",
                Some(&tag),
                &extra,
                Some(("application/sdp", sdp.as_bytes())),
            );
            self.answered.insert(
                (r.ids.branch.clone(), "UPDATE".into()),
                (resp.clone(), now + 64 * T1),
            );
            return self.send(from, resp);
        }
        let Some(tx) = call.invite.take().filter(|tx| tx.response.is_none()) else {
            return;
        };
        let resp = tx.request.respond(
            200,
            "OK",
            Some(&tag),
            &extra,
            Some(("application/sdp", sdp.as_bytes())),
        );
        self.pending(now, tx.from, tx.request, resp, true);
    }

    /// Refuses the call's pending offer (new call: the call is gone; in a call: it goes on).
    /// A 503 says when to try again (`Retry-After`), so the SRC retries or fails over.
    pub fn reject(&mut self, now: Instant, call_id: &str, code: u16, reason: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let tag = call.to_tag.clone();
        let retry = [("Retry-After", "5".to_string())];
        let extra: &[(&str, String)] = if code == 503 { &retry } else { &[] };
        if let Some((r, from)) = call.update.take() {
            return self.answer_once(now, from, &r, code, reason, extra);
        }
        let Some(tx) = call.invite.take().filter(|tx| tx.response.is_none()) else {
            return;
        };
        // Refused before it began: its ports were never bound (the unconfirmed budget).
        if !call.established {
            call.ports = 0;
        }
        let resp = tx.request.respond(code, reason, Some(&tag), extra, None);
        self.pending(now, tx.from, tx.request, resp, false);
    }

    /// Ends a call from this side (its media timed out, the server shuts down): a BYE in
    /// its dialog, re-sent until answered. No `Ended` event follows: the caller knows.
    pub fn hang_up(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        let Some((invite, peer)) = call.origin.filter(|_| !call.refused) else {
            return;
        };
        let first = |name: &str| invite.header(name).into_iter().next().unwrap_or_default();
        let (their_from, our_to) = (first("From"), first("To"));
        // The remote target is the INVITE's Contact (RFC 3261 §12.1.2).
        let contact = first("Contact");
        let target = match (contact.find('<'), contact.find('>')) {
            (Some(a), Some(b)) if a < b => contact[a + 1..b].to_string(),
            _ => contact
                .split(';')
                .next()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .unwrap_or(&invite.uri)
                .to_string(),
        };
        let branch = format!("z9hG4bK-reel-{}", self.tag());
        let cseq = 1 + invite.ids.cseq;
        let data = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: {our_to};tag={}\r\nTo: {their_from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            call.local, self.config.port, call.to_tag
        )
        .into_bytes();
        self.send(peer, data.clone());
        self.byes.push(Bye {
            to: peer,
            branch,
            data,
            resend_at: (now + T1, T1),
            give_up_at: now + 64 * T1,
        });
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.calls.values().filter_map(|c| c.invite.as_ref());
        tx.flat_map(|t| [t.resend_at.map(|r| r.0), t.give_up_at])
            .flatten()
            .chain(self.answered.values().map(|a| a.1))
            .chain(self.byes.iter().map(|b| b.resend_at.0.min(b.give_up_at)))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.answered.retain(|_, (_, until)| *until > now);
        self.byes.retain(|b| b.give_up_at > now);
        let mut again = Vec::new();
        for b in self.byes.iter_mut().filter(|b| b.resend_at.0 <= now) {
            let every = (b.resend_at.1 * 2).min(T2);
            b.resend_at = (now + every, every);
            again.push((b.to, b.data.clone()));
        }
        for (to, data) in again {
            self.send(to, data);
        }
        let mut resend = Vec::new();
        let mut gone = Vec::new();
        for (id, call) in self.calls.iter_mut() {
            let Some(tx) = call.invite.as_mut() else {
                continue;
            };
            if tx.give_up_at.is_some_and(|t| t <= now) {
                gone.push((id.clone(), tx.succeeded || call.established));
                continue;
            }
            if let (Some((at, every)), Some(resp)) = (tx.resend_at, &tx.response) {
                if at <= now {
                    let every = (every * 2).min(T2);
                    tx.resend_at = Some((now + every, every));
                    resend.push((tx.from, resp.clone()));
                }
            }
        }
        for (to, data) in resend {
            self.send(to, data);
        }
        for (id, was_call) in gone {
            let call = self.calls.get_mut(&id).expect("listed");
            call.invite = None;
            if !call.established {
                self.calls.remove(&id);
                if was_call {
                    self.event(Event::Ended {
                        call_id: id,
                        reason: "no ACK for the 200 OK".into(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
