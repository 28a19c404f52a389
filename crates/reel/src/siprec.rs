//! The SIPREC loop: the SIP sockets (UDP, and TCP connections) driving
//! `reel_siprec::engine::Engine`, and one receiving task per recorded RTP stream. It turns
//! what the engine decides into the recorder's vocabulary: each call is a session in a room,
//! each party (from the recording metadata) a publication, each recorded m-line a track.
//!
//! ```text
//! SIP (UDP/TCP) ⇄ Engine ──Offered──▶ decide (room, parties, RTP ports; nothing written)
//!                    ▲ │                       │
//!                    │ └──── accept / reject ◀─┘
//!                    └────── Confirmed (ACK) ──▶ join the recorder (session, publications)
//!                                                 └─▶ start the streams
//! RTP port per stream ──▶ StreamReceiver (reorder, SSRC, CN) ──frames──▶ capture thread
//! ```
//!
//! Like the WebRTC media loop it runs on its own thread with its own runtime. Frames go from
//! the stream tasks straight to the capture thread; a call's end first stops its stream
//! tasks and only then finishes its publications, so every frame is in the journal before
//! the journal closes.

use crate::config::SiprecSettings;
use crate::media::{open_track, OpenedTrack, WallClock};
use crate::sip_tcp::{self, Connections, SendOutcome, TcpLimits};
use reel_core::options::RoomPolicy;
use reel_core::{Codec, EndReason, EventKind, MediaKind, RoomId, SessionId, TrackId};
use reel_db::{Db, Room};
use reel_media::journal::{flags, Record};
use reel_media::rtp::{self, StreamConfig, StreamReceiver};
use reel_media::source_latch::{Admit, SourceLatch};
use reel_recorder::capture::CaptureCommand;
use reel_recorder::{MediaCommand, PublicationContext, Recorder, RecorderError};
use reel_siprec::engine::{Config as EngineConfig, Engine, Event, Output};
use reel_siprec::metadata::Metadata;
use reel_siprec::plan::{self, MediaPolicy, PlannedParty};
use reel_siprec::sdp::{Format, LineAnswer, Offer};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

pub struct SiprecLoop {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
    pub settings: SiprecSettings,
    /// The address put in SDP answers and Contact.
    pub answer_address: crate::addresses::AnswerAddress,
    pub commands: UnboundedReceiver<MediaCommand>,
    pub recorder: Recorder,
    pub db: Db,
}

/// A party of a call: a publication of the session.
struct Party {
    ctx: PublicationContext,
    planned: PlannedParty,
}

/// A recorded m-line's receiving task.
struct Stream {
    port: u16,
    format: Format,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// Milliseconds since the loop started of the last packet.
    last_packet_ms: Arc<AtomicI64>,
}

struct Call {
    session: SessionId,
    /// The application whose room records the call (its events go to its outbox).
    application: String,
    room: RoomId,
    parties: Vec<Party>,
    /// By m-line index; None where the line is not recorded.
    streams: Vec<Option<Stream>>,
    held: bool,
    started: HashSet<MediaKind>,
    metadata_version: i64,
    metadata_source: String,
}

/// What a decision task prepared for a new call: everything its 200 OK needs, and nothing
/// in the database yet (that waits for the ACK: a half-open INVITE leaves no trace).
struct Prepared {
    room: Room,
    /// The parties to join once the call is confirmed.
    parties: Vec<PlannedParty>,
    /// Per m-line: the bound socket, what to record and which party sends it, or nothing.
    /// Packets that come before the parties have joined wait in the socket's buffer.
    lines: Vec<Option<(UdpSocket, Format, usize)>>,
    metadata_source: String,
}

enum Internal {
    Decided {
        call_id: String,
        offer: Offer,
        result: Result<Prepared, (u16, String)>,
    },
    /// A confirmed call's parties joined its session (or could not).
    Joined {
        call_id: String,
        offer: Offer,
        prepared: Prepared,
        parties: Result<Vec<Party>, String>,
    },
    MediaStarted {
        call_id: String,
        kind: MediaKind,
    },
}

fn codec_of(format: &Format) -> Option<Codec> {
    Some(match format.encoding.as_str() {
        "PCMU" => Codec::Pcmu,
        "PCMA" => Codec::Pcma,
        "G722" => Codec::G722,
        "OPUS" => Codec::Opus,
        "H264" => Codec::H264,
        "VP8" => Codec::Vp8,
        _ => return None,
    })
}

impl SiprecLoop {
    pub fn spawn(self) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("reel-siprec".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("siprec runtime");
                rt.block_on(self.run());
            })
            .expect("spawn siprec thread")
    }

    async fn run(mut self) {
        self.udp.set_nonblocking(true).expect("nonblocking socket");
        self.tcp.set_nonblocking(true).expect("nonblocking socket");
        let udp =
            UdpSocket::from_std(self.udp.try_clone().expect("clone socket")).expect("tokio socket");
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut engine = Engine::new(EngineConfig {
            address: self.answer_address.fallback(),
            port,
            max_calls: self.settings.max_calls,
            max_unconfirmed: self.settings.max_unconfirmed_calls,
            max_unconfirmed_per_source: self.settings.max_unconfirmed_calls_per_source,
            max_unconfirmed_ports_per_source: self.settings.max_unconfirmed_ports_per_source,
            max_lines_per_call: self.settings.max_lines_per_call,
            allowed_sources: self.settings.allowed_sources(),
        });
        let (tx, mut internal) = unbounded_channel();
        let listener = TcpListener::from_std(self.tcp.try_clone().expect("clone listener"))
            .expect("tokio listener");
        let idle_timeout = Duration::from_secs(self.settings.tcp_idle_timeout_secs);
        let tcp_limits = TcpLimits {
            max_connections: self.settings.max_tcp_connections,
            allowed_sources: self.settings.allowed_sources(),
        };
        let (tcp_events, mut tcp_inbox) = tokio::sync::mpsc::channel(sip_tcp::INBOX);
        tokio::spawn(sip_tcp::accept(listener, tcp_events, tcp_limits));
        let state = State {
            started: Instant::now(),
            clock: Arc::new(WallClock::new()),
            calls: HashMap::new(),
            pending: HashMap::new(),
            answered: HashMap::new(),
            tcp: Connections::default(),
            tx,
            noise: Noise::default(),
        };
        let mut state = state;
        let mut buf = vec![0u8; 65_536];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            while let Some(out) = engine.poll_output() {
                match out {
                    Output::Send { to, data } => {
                        if let SendOutcome::NotTcp(data) = state.tcp.send(to, data) {
                            let _ = udp.try_send_to(&data, to);
                        }
                    }
                    Output::Event(e) => self.handle_event(&mut engine, &mut state, e),
                }
            }
            let timeout = engine
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None => return,
                    Some(MediaCommand::Close { publication, reason }) => {
                        let call = state
                            .calls
                            .iter()
                            .find(|(_, c)| c.parties.iter().any(|p| p.ctx.publication == publication))
                            .map(|(id, _)| id.clone());
                        if let Some(call_id) = call {
                            engine.hang_up(Instant::now(), &call_id);
                            self.end_call(&mut state, &call_id, reason);
                        }
                    }
                    // Plain RTP has no keyframe request Reel sends yet (RTCP FIR/PLI).
                    Some(MediaCommand::RequestKeyframes { .. }) => {}
                    // WebRTC offers go to the media loop, never here.
                    Some(MediaCommand::Offer { .. } | MediaCommand::Attach { .. }) => {}
                },
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let local = self.answer_address.for_message(from.ip(), &buf[..n]);
                        engine.handle_datagram_at(Instant::now(), from, local, &buf[..n]);
                    }
                    Err(e) => tracing::debug!(error = %e, "sip socket receive"),
                },
                Some(msg) = internal.recv() => self.handle_internal(&mut engine, &mut state, msg),
                Some(event) = tcp_inbox.recv() => {
                    let now = Instant::now();
                    if let Some((peer, data)) = state.tcp.handle(now, event) {
                        let local = self.answer_address.for_message(peer.ip(), &data);
                        engine.handle_datagram_at(now, peer, local, &data);
                    }
                }
                _ = tokio::time::sleep_until(timeout.into()) => engine.handle_timeout(Instant::now()),
                _ = tick.tick() => {
                    state.tcp.close_idle(Instant::now(), idle_timeout, |peer| engine.carries_call(peer));
                    state.noise.report(engine.refused_sources());
                    for call_id in state.timed_out(self.settings.rtp_timeout_secs) {
                        tracing::warn!(call = %call_id, "no RTP: hanging up");
                        engine.hang_up(Instant::now(), &call_id);
                        self.end_call(&mut state, &call_id, EndReason::MediaTimeout);
                    }
                }
            }
        }
    }

    fn decide(&self) -> Decide {
        Decide {
            db: self.db.clone(),
            recorder: self.recorder.clone(),
            settings: DecideSettings {
                default_room: self.settings.default_room.clone(),
                max_lines_per_call: self.settings.max_lines_per_call,
                // Checked when the configuration was read.
                media_policy: self.settings.media_policy.parse().unwrap_or_default(),
                rtp_ports: (self.settings.rtp_port_min, self.settings.rtp_port_max),
                bind: self.settings.bind,
            },
        }
    }

    fn handle_event(&self, engine: &mut Engine, state: &mut State, event: Event) {
        match event {
            Event::Offered {
                call_id,
                user,
                offer,
                metadata,
            } => {
                state.pending.insert(call_id.clone(), false);
                let decide = self.decide();
                let tx = state.tx.clone();
                tokio::spawn(async move {
                    let result = decide.run(&call_id, user, &offer, metadata).await;
                    let _ = tx.send(Internal::Decided {
                        call_id,
                        offer,
                        result,
                    });
                });
            }
            Event::Confirmed { call_id } => {
                let Some((offer, prepared)) = state.answered.remove(&call_id) else {
                    return;
                };
                state.pending.insert(call_id.clone(), false);
                let decide = self.decide();
                let tx = state.tx.clone();
                tokio::spawn(async move {
                    let parties = decide.join(&call_id, &prepared).await;
                    let _ = tx.send(Internal::Joined {
                        call_id,
                        offer,
                        prepared,
                        parties,
                    });
                });
            }
            Event::Reoffered {
                call_id,
                offer,
                metadata,
            } => self.reoffered(engine, state, &call_id, &offer, metadata),
            Event::Ended { call_id, reason } => {
                tracing::info!(call = %call_id, %reason, "call ended");
                if let Some(cancelled) = state.pending.get_mut(&call_id) {
                    *cancelled = true;
                }
                // Answered, never confirmed: nothing was written; its ports are let go.
                state.answered.remove(&call_id);
                self.end_call(state, &call_id, EndReason::Left);
            }
            Event::Malformed { from, reason } => state.noise.malformed(from, &reason),
        }
    }

    fn handle_internal(&self, engine: &mut Engine, state: &mut State, msg: Internal) {
        match msg {
            Internal::Decided {
                call_id,
                offer,
                result,
            } => {
                let cancelled = state.pending.remove(&call_id).unwrap_or(true);
                match result {
                    Ok(_) if cancelled => {}
                    Ok(prepared) => {
                        let answers = line_answers(&prepared);
                        engine.accept(Instant::now(), &call_id, &offer, &answers);
                        state.answered.insert(call_id, (offer, prepared));
                    }
                    Err((code, reason)) => {
                        tracing::info!(call = %call_id, code, %reason, "call refused");
                        engine.reject(Instant::now(), &call_id, code, &reason);
                    }
                }
            }
            Internal::Joined {
                call_id,
                offer,
                prepared,
                parties,
            } => {
                let cancelled = state.pending.remove(&call_id).unwrap_or(true);
                match parties {
                    Ok(parties) if cancelled => {
                        for p in parties {
                            self.recorder.media_refused(p.ctx);
                        }
                    }
                    Ok(parties) => self.start_call(state, call_id, &offer, prepared, parties),
                    Err(e) => {
                        tracing::error!(call = %call_id, error = %e, "joining the call's session: hanging up");
                        engine.hang_up(Instant::now(), &call_id);
                    }
                }
            }
            Internal::MediaStarted { call_id, kind } => {
                let Some(call) = state.calls.get_mut(&call_id) else {
                    return;
                };
                if call.started.insert(kind) {
                    let event = match kind {
                        MediaKind::Audio => EventKind::CallAudioStarted,
                        MediaKind::Video => EventKind::CallVideoStarted,
                    };
                    self.recorder.call_event(
                        &call.session,
                        &call.application,
                        &call.room,
                        event,
                        json!({ "callid": call_id }),
                    );
                }
            }
        }
    }

    /// A confirmed call whose parties joined: its streams start reading their sockets.
    fn start_call(
        &self,
        state: &mut State,
        call_id: String,
        offer: &Offer,
        prepared: Prepared,
        parties: Vec<Party>,
    ) {
        let answers = line_answers(&prepared);
        let session = parties[0].ctx.session.clone();
        let mut streams = Vec::new();
        for (i, line) in prepared.lines.into_iter().enumerate() {
            let Some((socket, format, party)) = line else {
                streams.push(None);
                continue;
            };
            let Some(codec) = codec_of(&format) else {
                streams.push(None);
                continue;
            };
            let m = &offer.media[i];
            let ignored: Vec<u8> = m
                .telephone_event()
                .map(|f| f.payload_type)
                .into_iter()
                .collect();
            let latch = SourceLatch::new(
                m.connection.or(offer.connection),
                format.payload_type,
                &ignored,
            );
            let receiver = StreamReceiver::new(StreamConfig {
                codec,
                payload_type: format.payload_type,
                clock_rate: format.clock_rate,
                ignored,
            });
            let (stop, stopped) = oneshot::channel();
            let last_packet_ms = Arc::new(AtomicI64::new(state.now_ms()));
            let task = tokio::spawn(
                StreamTask {
                    call_id: call_id.clone(),
                    ctx: parties[party].ctx.clone(),
                    mid: m.label.clone().unwrap_or_else(|| i.to_string()),
                    codec,
                    clock_rate: format.clock_rate,
                    recorder: self.recorder.clone(),
                    clock: state.clock.clone(),
                    started: state.started,
                    last_packet_ms: last_packet_ms.clone(),
                    tx: state.tx.clone(),
                }
                .run(socket, receiver, latch, stopped),
            );
            streams.push(Some(Stream {
                port: answers_port(&answers[i]),
                format,
                stop,
                task,
                last_packet_ms,
            }));
        }
        self.recorder
            .call_metadata(&session, 1, prepared.metadata_source.clone());
        tracing::info!(call = %call_id, %session, parties = parties.len(), "recording call");
        state.calls.insert(
            call_id,
            Call {
                session,
                application: prepared.room.application_id.clone(),
                room: RoomId::from_trusted(prepared.room.id.clone()),
                parties,
                streams,
                held: false,
                started: HashSet::new(),
                metadata_version: 1,
                metadata_source: prepared.metadata_source,
            },
        );
    }

    /// A re-INVITE or UPDATE: the same ports for the lines being recorded (new lines are
    /// not recorded), holds pause the recording, a metadata update renames parties.
    fn reoffered(
        &self,
        engine: &mut Engine,
        state: &mut State,
        call_id: &str,
        offer: &Offer,
        metadata: Option<Metadata>,
    ) {
        let Some(call) = state.calls.get_mut(call_id) else {
            engine.reject(Instant::now(), call_id, 491, "Request Pending");
            return;
        };
        let recorded: Vec<Option<(u16, &Format)>> = call
            .streams
            .iter()
            .map(|s| s.as_ref().map(|s| (s.port, &s.format)))
            .collect();
        let (answers, held) = plan::reanswer(offer, &recorded);
        engine.accept(Instant::now(), call_id, offer, &answers);
        if held != call.held {
            tracing::info!(call = %call_id, held, "hold");
            call.held = held;
            self.recorder.call_held(&call.session, held);
        }
        let Some(metadata) = metadata.filter(|m| m.source != call.metadata_source) else {
            return;
        };
        call.metadata_version += 1;
        call.metadata_source = metadata.source.clone();
        self.recorder.call_metadata(
            &call.session,
            call.metadata_version,
            metadata.source.clone(),
        );
        let planned: Vec<PlannedParty> = call.parties.iter().map(|p| p.planned.clone()).collect();
        for (n, name) in plan::renames(&planned, &metadata) {
            let party = &mut call.parties[n];
            tracing::info!(call = %call_id, publication = %party.ctx.publication, "participant renamed");
            party.planned.name = name.clone();
            self.recorder.rename(&party.ctx.publication, name);
        }
    }

    /// Stops the call's streams, then ends its publications once every frame is captured.
    fn end_call(&self, state: &mut State, call_id: &str, reason: EndReason) {
        let Some(call) = state.calls.remove(call_id) else {
            return;
        };
        let recorder = self.recorder.clone();
        let call_id = call_id.to_string();
        tokio::spawn(async move {
            for stream in call.streams.into_iter().flatten() {
                let _ = stream.stop.send(());
                let _ = stream.task.await;
            }
            for party in &call.parties {
                recorder.capture().send(CaptureCommand::Finish {
                    publication: party.ctx.publication.clone(),
                    reason,
                });
            }
            for kind in call.started {
                let event = match kind {
                    MediaKind::Audio => EventKind::CallAudioStopped,
                    MediaKind::Video => EventKind::CallVideoStopped,
                };
                recorder.call_event(
                    &call.session,
                    &call.application,
                    &call.room,
                    event,
                    json!({ "callid": call_id, "reason": reason.as_str() }),
                );
            }
        });
    }
}

/// What is dropped unanswered, logged so that a flood of it cannot flood the log: the first
/// few of each second one by one, the rest as a count at the end of the second.
#[derive(Default)]
struct Noise {
    malformed_this_second: u64,
    refused_reported: u64,
}

impl Noise {
    const LOGGED_PER_SECOND: u64 = 5;

    fn malformed(&mut self, from: SocketAddr, reason: &str) {
        self.malformed_this_second += 1;
        if self.malformed_this_second <= Self::LOGGED_PER_SECOND {
            tracing::info!(%from, %reason, "malformed SIP message dropped");
        }
    }

    /// Once a second, with the engine's count of datagrams from sources not allowed.
    fn report(&mut self, refused_sources: u64) {
        let unlogged = self
            .malformed_this_second
            .saturating_sub(Self::LOGGED_PER_SECOND);
        if unlogged > 0 {
            tracing::info!(
                count = unlogged,
                "more malformed SIP messages dropped in the last second"
            );
        }
        self.malformed_this_second = 0;
        if refused_sources > self.refused_reported {
            tracing::warn!(
                count = refused_sources - self.refused_reported,
                "SIP from sources outside siprec.allowed_sources dropped in the last second"
            );
            self.refused_reported = refused_sources;
        }
    }
}

/// The SDP answer's lines: the bound port and format of each recorded line.
fn line_answers(prepared: &Prepared) -> Vec<LineAnswer> {
    prepared
        .lines
        .iter()
        .map(|l| match l {
            Some((socket, format, _)) => LineAnswer::Record {
                port: socket.local_addr().map(|a| a.port()).unwrap_or(0),
                format: format.clone(),
            },
            None => LineAnswer::Reject,
        })
        .collect()
}

fn answers_port(a: &LineAnswer) -> u16 {
    match a {
        LineAnswer::Record { port, .. } => *port,
        LineAnswer::Reject => 0,
    }
}

struct State {
    started: Instant,
    clock: Arc<WallClock>,
    calls: HashMap<String, Call>,
    /// Calls being decided or joined, and whether they were cancelled meanwhile.
    pending: HashMap<String, bool>,
    /// Calls answered (200 OK) and waiting for their ACK, with what their start needs.
    answered: HashMap<String, (Offer, Prepared)>,
    tcp: Connections,
    tx: UnboundedSender<Internal>,
    noise: Noise,
}

impl State {
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Calls, not on hold, whose streams have all been silent for `timeout_secs`.
    fn timed_out(&self, timeout_secs: u64) -> Vec<String> {
        let now = self.now_ms();
        let limit = timeout_secs as i64 * 1000;
        self.calls
            .iter()
            .filter(|(_, c)| !c.held)
            .filter(|(_, c)| {
                c.streams
                    .iter()
                    .flatten()
                    .all(|s| now - s.last_packet_ms.load(Ordering::Relaxed) >= limit)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

struct DecideSettings {
    default_room: String,
    max_lines_per_call: usize,
    media_policy: MediaPolicy,
    rtp_ports: (u16, u16),
    bind: IpAddr,
}

/// Decides a new call off the loop: its room, what it records, its parties (joined to the
/// recorder in SDP order, so the caller, whose stream comes first, joins first), its ports.
struct Decide {
    db: Db,
    recorder: Recorder,
    settings: DecideSettings,
}

impl Decide {
    async fn run(
        &self,
        call_id: &str,
        user: Option<String>,
        offer: &Offer,
        metadata: Option<Metadata>,
    ) -> Result<Prepared, (u16, String)> {
        // A call answered now would only lose its media to a full disk: the SRC tries
        // another recorder, or this one later.
        self.recorder
            .admit_by_disk()
            .map_err(|e| (503, format!("Service Unavailable: {e}")))?;
        let room = self.room(user.as_deref()).await?;
        // Validated when it was set; a policy Reel cannot read records what the server says.
        let policy = serde_json::from_value::<RoomPolicy>(room.policy.clone())
            .ok()
            .and_then(|p| p.sip_media)
            .unwrap_or(self.settings.media_policy);
        let planned = plan::plan_call(
            offer,
            metadata.as_ref(),
            policy,
            self.settings.max_lines_per_call,
        )
        .map_err(|r| (r.status, r.reason))?;
        let mut lines = Vec::new();
        for line in planned.lines {
            let Some(line) = line else {
                lines.push(None);
                continue;
            };
            match self.bind_rtp().await {
                Ok(socket) => lines.push(Some((socket, line.format, line.party))),
                Err(e) => {
                    tracing::error!(call = %call_id, error = %e, "no RTP port free");
                    return Err((503, "Service Unavailable: no RTP port free".into()));
                }
            }
        }
        Ok(Prepared {
            room,
            parties: planned.parties,
            lines,
            metadata_source: metadata.map(|m| m.source).unwrap_or_default(),
        })
    }

    /// The confirmed call's parties join its session, in SDP order (the caller, whose
    /// stream comes first, joins first). On a failure the ones already joined are undone.
    /// A party refused because the database is unavailable for now is tried again (the
    /// call is answered: it is recorded from the moment the database takes it).
    async fn join(&self, call_id: &str, prepared: &Prepared) -> Result<Vec<Party>, String> {
        let mut parties: Vec<Party> = Vec::new();
        for planned in &prepared.parties {
            let mut backoff = Duration::from_millis(500);
            let joined = loop {
                match self
                    .recorder
                    .join_call(prepared.room.clone(), call_id, planned.name.clone())
                    .await
                {
                    Err(RecorderError::Db(e))
                        if e.is_unavailable() && backoff < Duration::from_secs(60) =>
                    {
                        tracing::warn!(call = %call_id, error = %e, "joining the call: the database is unavailable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                    other => break other,
                }
            };
            match joined {
                Ok(ctx) => parties.push(Party {
                    ctx,
                    planned: planned.clone(),
                }),
                Err(e) => {
                    for p in parties {
                        self.recorder.media_refused(p.ctx);
                    }
                    return Err(e.to_string());
                }
            }
        }
        Ok(parties)
    }

    /// The room named by the Request-URI's user part (a room id), else the default room.
    async fn room(&self, user: Option<&str>) -> Result<Room, (u16, String)> {
        for id in plan::room_candidates(user, &self.settings.default_room) {
            match self.db.get_room(None, id).await {
                Ok(room) => return Ok(room),
                // Not "no such room": the SRC should try again (or another recorder).
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "call refused: the database is unavailable");
                    return Err((
                        503,
                        "Service Unavailable: the database is unavailable".into(),
                    ));
                }
                Err(_) => {}
            }
        }
        Err((404, "Not Found: no room records this address".into()))
    }

    /// A UDP socket for one stream, from the configured range (from a random place in it,
    /// so concurrent calls rarely race for the same port).
    async fn bind_rtp(&self) -> std::io::Result<UdpSocket> {
        let (lo, hi) = self.settings.rtp_ports;
        if lo == 0 {
            return UdpSocket::bind(SocketAddr::new(self.settings.bind, 0)).await;
        }
        let span = (hi - lo) as u32 + 1;
        let start = rand::random::<u32>() % span;
        for k in 0..span {
            let port = lo + ((start + k) % span) as u16;
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.settings.bind, port)).await {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "every RTP port is in use",
        ))
    }
}

/// One recorded stream: its socket, its receiver, its journal.
struct StreamTask {
    call_id: String,
    ctx: PublicationContext,
    mid: String,
    codec: Codec,
    clock_rate: u32,
    recorder: Recorder,
    clock: Arc<WallClock>,
    started: Instant,
    last_packet_ms: Arc<AtomicI64>,
    tx: UnboundedSender<Internal>,
}

impl StreamTask {
    async fn run(
        self,
        socket: UdpSocket,
        mut receiver: StreamReceiver,
        mut latch: SourceLatch,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut track: Option<TrackId> = None;
        let mut buf = vec![0u8; 2048];
        loop {
            let wake = receiver
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut stop => {
                    receiver.flush();
                    self.drain(&mut receiver, &mut track);
                    if latch.dropped > 0 {
                        tracing::warn!(call = %self.call_id, line = %self.mid, dropped = latch.dropped,
                            "datagrams from other sources or not of the negotiated payload types were dropped");
                    }
                    return;
                }
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    let now = Instant::now();
                    let data = &buf[..n];
                    let admitted = latch.admit(from, data);
                    if admitted == Admit::Drop {
                        continue;
                    }
                    // Only media of the negotiated payload types from the line's source
                    // keeps the call alive: junk or another sender's packets never do.
                    if admitted == Admit::Media {
                        self.last_packet_ms
                            .store(now.duration_since(self.started).as_millis() as i64, Ordering::Relaxed);
                    }
                    if admitted == Admit::Rtcp {
                        if let (Some(t), Some((_, ntp, rtp_time))) = (&track, rtp::sender_report(data)) {
                            self.recorder.capture().send(CaptureCommand::Append {
                                publication: self.ctx.publication.clone(),
                                track: t.clone(),
                                record: Record::SenderReport { rtp_time, ntp_unix_us: ntp },
                            });
                        }
                        continue;
                    }
                    receiver.handle_packet(now, data);
                }
                _ = tokio::time::sleep_until(wake.into()) => receiver.handle_timeout(Instant::now()),
            }
            self.drain(&mut receiver, &mut track);
        }
    }

    fn drain(&self, receiver: &mut StreamReceiver, track: &mut Option<TrackId>) {
        while let Some(frame) = receiver.poll_frame() {
            let id = match track {
                Some(id) => id.clone(),
                None => {
                    let id = TrackId::generate();
                    let opened = OpenedTrack {
                        track: id.clone(),
                        codec: self.codec,
                        clock_rate: self.clock_rate,
                        mid: self.mid.clone(),
                        rid: None,
                    };
                    open_track(
                        &self.recorder,
                        &self.ctx,
                        opened,
                        self.clock.unix_us(frame.arrival),
                    );
                    let _ = self.tx.send(Internal::MediaStarted {
                        call_id: self.call_id.clone(),
                        kind: self.codec.kind(),
                    });
                    *track = Some(id.clone());
                    id
                }
            };
            let mut f = 0;
            if reel_media::codec::is_keyframe(self.codec, &frame.data) {
                f |= flags::KEYFRAME;
            }
            if frame.discontinuity {
                f |= flags::DISCONTINUITY;
            }
            self.recorder.capture().send(CaptureCommand::Append {
                publication: self.ctx.publication.clone(),
                track: id,
                record: Record::Frame {
                    rtp_time: frame.rtp_time,
                    arrival_unix_us: self.clock.unix_us(frame.arrival),
                    flags: f,
                    data: frame.data,
                },
            });
        }
    }
}
