//! The recorder's decisions, sans-IO, in the shape of str0m's `Rtc`: the driver feeds every
//! input with [`Engine::handle`] and then drains [`Engine::poll_output`] until it returns
//! [`Output::Timeout`]. The engine holds the room lifecycle and every recording, decides the
//! state changes (each through `RecordingState::apply`), and says what must happen: which
//! changes and events to write in one transaction, what capture and media to switch, which
//! jobs to start, what to answer. It never reads a clock, a file or the database, so its
//! tests run on a manual clock in milliseconds (`engine/tests.rs`).
//!
//! The driver (`Brain` in `lib.rs`) resolves what an input needs from the database before
//! handing it in (a room's default options, the stored recording a command names), executes
//! the outputs in order, and reports jobs' results back as inputs.

use crate::recordings::RecordingOptions;
use crate::uploads::UploadOutcome;
use crate::{PublicationContext, RecorderError};
use reel_core::lifecycle::{Action, Lifecycle, Limits, Venue};
use reel_core::media::{AudioFormat, PublicationState, SessionState};
use reel_core::options::RoomPolicy;
use reel_core::recording::{Command, FailureCode, Fault, RecordingMode, RecordingState};
use reel_core::{
    EndReason, EventKind, PublicationId, PublicationKind, RecordingId, RoomId, SessionId,
};
use reel_db::{Change, Pause, Publication, Recording, Room, Session, Track};
use reel_media::remux::Window;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// When an input happens: the monotonic instant for timers, the wall clock for what is stored.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: i64,
}

/// Names a request waiting for its answer; the driver maps it to whoever asked.
pub type ReplyTo = u64;

/// What a decision needs to know about a room, resolved by the driver.
#[derive(Debug, Clone)]
pub struct RoomFacts {
    pub room: Room,
    /// The options of recordings that bring none: the room's defaults, else its application's.
    pub defaults: RecordingOptions,
}

#[derive(Debug)]
pub enum Input {
    /// A publisher (a WHIP offer admitted, or a party of a confirmed call) joins its venue.
    Join {
        publication: PublicationId,
        room: RoomFacts,
        participant: String,
        kind: PublicationKind,
        call: Option<String>,
        reply: ReplyTo,
    },
    /// A joined publication whose media will never come (its offer was refused, or its rows
    /// could not be written).
    JoinFailed {
        publication: PublicationId,
    },
    TrackOpened(Track),
    /// A track lost media while its journal's disk refused writes (Unix ms); `resumed` when
    /// the journal writes again (its decoder then needs a keyframe).
    MediaLost {
        publication: PublicationId,
        track: String,
        from_ms: i64,
        to_ms: i64,
        resumed: bool,
    },
    /// The capture thread closed every journal of the publication.
    PublicationClosed {
        publication: PublicationId,
        reason: EndReason,
    },
    StartRecording {
        room: RoomFacts,
        mode: RecordingMode,
        options: RecordingOptions,
        reply: ReplyTo,
    },
    /// Pause, resume, stop or retry an upload. `stored` is the row as the database has it;
    /// the engine's own copy wins while it holds one.
    Control {
        stored: Box<Recording>,
        command: Command,
        /// Whether one of its assets' uploads failed (for `RetryUpload`).
        failed_uploads: bool,
        reply: ReplyTo,
    },
    /// A recorded call went on hold (`inactive` / `recvonly`) or came back.
    CallHeld {
        session: SessionId,
        held: bool,
    },
    /// `recording.audio.started` and the like: sent with the call's recording if one is
    /// capturing, else with the session's ids.
    CallEvent {
        session: SessionId,
        application: String,
        room: RoomId,
        kind: EventKind,
        extra: Value,
    },
    CallMetadata {
        session: SessionId,
        version: i64,
        xml: String,
    },
    Rename {
        publication: PublicationId,
        participant: String,
    },
    JobDone {
        recording: String,
        result: JobResult,
    },
    UploadsDone {
        recording: String,
        outcome: UploadOutcome,
    },
    /// A composite or mix of an ended session, from its journals, as a new recording.
    Render {
        session: Session,
        mode: RecordingMode,
        options: RecordingOptions,
        /// Every pause of the session's recordings: nothing was captured then.
        pauses: Vec<Pause>,
        reply: ReplyTo,
    },
    /// Start-up, after recovery ended the sessions a crash or restart left live: recordings
    /// waiting for their room, those left uploading, and those left unfinished, whose
    /// journals now become their outputs as at any stop.
    Resume {
        starting: Vec<Recording>,
        uploading: Vec<Recording>,
        unfinished: Vec<Unfinished>,
        /// Transcripts that were going to their destination (recording, what their event
        /// says beyond the destinations).
        transcript_uploads: Vec<(String, Value)>,
    },
    /// A retention pass is due: assets older than their period (else `default_days`) at
    /// `now_ms`, the server's clock (a test may run it ahead). Skipped while one runs.
    RetentionDue {
        default_days: u32,
        now_ms: i64,
    },
    /// The retention pass ended (its deletions and failures are in the audit log).
    RetentionDone,
    /// Close every publication; `Output::Drained` follows once they are all closed.
    Shutdown,
    /// After `Drained` and the jobs: end every session still live.
    EndAll,
}

/// A recording a restart interrupted, with the publications of its session (id, joined at).
/// Its `stopped_at` is when its session ended.
#[derive(Debug)]
pub struct Unfinished {
    pub recording: Recording,
    pub publications: Vec<(PublicationId, i64)>,
}

/// What an output job made of a recording: its asset, or why not and whose fault that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Made {
        asset: String,
    },
    Failed {
        code: String,
        reason: String,
        fault: Fault,
    },
}

#[derive(Debug)]
pub enum Reply {
    Joined(PublicationContext),
    Recording(Box<Recording>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOrder {
    Close(EndReason),
    /// Capture (re)started: ask the publisher for a keyframe.
    RequestKeyframes,
}

/// A job the driver runs off the engine; its result comes back as `JobDone` or `UploadsDone`.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSpec {
    /// One publication's part of a stream recording (its asset, made from its journals).
    StreamAsset {
        recording: String,
        publication: String,
        window: Window,
        /// Wait until this session's journals are flushed (the capture stopped just now).
        after_flush_of: Option<SessionId>,
    },
    /// The composite or audio mix of a `composite` / `audio` recording.
    Render {
        recording: String,
        after_flush_of: Option<SessionId>,
    },
    /// Uploads every asset of the recording to its destination, naming the objects first
    /// unless a previous attempt did.
    Upload {
        recording: String,
        name_objects: bool,
    },
    /// The transcript of an available recording that asked for one.
    Transcribe { recording: String },
    /// The upload and event of a transcript a restart interrupted.
    FinishTranscriptUpload { recording: String, event: Value },
    /// One retention pass (`Input::RetentionDue`); reports `Input::RetentionDone`.
    Retention { default_days: u32, now_ms: i64 },
}

#[derive(Debug)]
pub enum Output {
    /// Write these changes and events in one transaction, before anything that follows.
    Persist(Vec<Change>),
    /// Capture on or off for every track of the session, present and future.
    SetCapture {
        session: SessionId,
        on: bool,
        at_unix_us: i64,
    },
    Media {
        publication: PublicationId,
        /// The publication is a party of a recorded call (the SIPREC loop owns its media).
        call: bool,
        order: MediaOrder,
    },
    Job(JobSpec),
    Reply {
        to: ReplyTo,
        result: Result<Reply, RecorderError>,
    },
    /// Shutting down, and every publication is closed.
    Drained,
    /// Nothing more to do before this instant, unless an input comes.
    Timeout(Instant),
}

/// A live session: what its later decisions need.
#[derive(Debug)]
struct LiveSession {
    room: Room,
    defaults: RecordingOptions,
    row: Session,
    /// Its publications and when each joined.
    publications: Vec<(PublicationId, i64)>,
    /// A track opened: there is media to render.
    captured: bool,
    /// Pauses of its recordings that stopped.
    pauses: Vec<Pause>,
}

/// A stopped recording's output jobs: how many are running, what they made, why others
/// made nothing.
#[derive(Debug, Default)]
struct Pending {
    in_flight: usize,
    assets: Vec<String>,
    failures: Vec<(String, String)>,
}

pub struct Engine {
    data_dir: PathBuf,
    lifecycle: Lifecycle,
    sessions: HashMap<SessionId, LiveSession>,
    contexts: HashMap<PublicationId, PublicationContext>,
    /// The capturing (recording or paused) recording of each live session.
    active: HashMap<SessionId, Recording>,
    /// Recordings requested for rooms with no meeting yet.
    starting: HashMap<RoomId, Recording>,
    /// Stopped recordings whose outputs are being made.
    finishing: HashMap<String, Recording>,
    uploading: HashMap<String, Recording>,
    pending: HashMap<String, Pending>,
    /// (recording, publication) pairs already given a job.
    scheduled: HashSet<(String, String)>,
    out: VecDeque<Output>,
    now: Option<Now>,
    /// A retention pass is under way: two at once would delete the same assets twice.
    sweeping: bool,
    shutting_down: bool,
    drained: bool,
}

fn payload(rec: &Recording, extra: Value) -> Value {
    let mut v = json!({
        "recording_id": rec.id,
        "session_id": rec.session_id,
        "room_id": rec.room_id,
        "mode": rec.mode,
        "state": rec.state,
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
        base.extend(more);
    }
    v
}

/// The row and its events, for a recording just made or moved on.
fn saved(rec: &Recording, event: Option<EventKind>, extra: Value) -> Vec<Change> {
    let mut changes = vec![
        Change::SaveRecording(rec.clone()),
        Change::recording_event(rec, EventKind::StatusUpdate, payload(rec, extra.clone())),
    ];
    if let Some(kind) = event {
        changes.push(Change::recording_event(rec, kind, payload(rec, extra)));
    }
    changes
}

fn has_destination(rec: &Recording) -> bool {
    rec.options["destinationUrl"].is_string()
}

impl Engine {
    pub fn new(data_dir: PathBuf) -> Engine {
        Engine {
            data_dir,
            lifecycle: Lifecycle::new(),
            sessions: HashMap::new(),
            contexts: HashMap::new(),
            active: HashMap::new(),
            starting: HashMap::new(),
            finishing: HashMap::new(),
            uploading: HashMap::new(),
            pending: HashMap::new(),
            scheduled: HashSet::new(),
            out: VecDeque::new(),
            now: None,
            sweeping: false,
            shutting_down: false,
            drained: false,
        }
    }

    /// Publications joined and not yet closed.
    pub fn live_publications(&self) -> usize {
        self.contexts.len()
    }

    pub fn handle(&mut self, now: Now, input: Input) {
        self.now = Some(now);
        match input {
            Input::Join {
                publication,
                room,
                participant,
                kind,
                call,
                reply,
            } => {
                let ctx = self.join(now, publication, room, participant, kind, call);
                self.reply(reply, Ok(Reply::Joined(ctx)));
            }
            Input::JoinFailed { publication } => {
                let Some(ctx) = self.contexts.remove(&publication) else {
                    return;
                };
                self.lifecycle.leave(now.at, &ctx.venue(), &publication);
                self.persist(vec![
                    Change::EndPublication {
                        id: publication.to_string(),
                        reason: EndReason::Disconnected,
                        at: now.unix_ms,
                    },
                    Change::PublicationOutcome {
                        id: publication.to_string(),
                        state: PublicationState::Failed,
                        failure: Some("offer rejected".into()),
                    },
                ]);
                self.check_drained();
            }
            Input::TrackOpened(track) => {
                if let Some(s) = self
                    .sessions
                    .get_mut(&SessionId::from_trusted(track.session_id.clone()))
                {
                    s.captured = true;
                }
                self.persist(vec![Change::InsertTrack(track)]);
            }
            Input::MediaLost {
                publication,
                track,
                from_ms,
                to_ms,
                resumed,
            } => {
                self.persist(vec![Change::TrackGap {
                    track,
                    from_ms,
                    to_ms,
                }]);
                if resumed {
                    if let Some(ctx) = self.contexts.get(&publication) {
                        self.out.push_back(Output::Media {
                            call: ctx.call.is_some(),
                            publication,
                            order: MediaOrder::RequestKeyframes,
                        });
                    }
                }
            }
            Input::PublicationClosed {
                publication,
                reason,
            } => self.publication_closed(now, publication, reason),
            Input::StartRecording {
                room,
                mode,
                options,
                reply,
            } => {
                let result = self.start_recording(now, room, mode, options);
                self.reply_recording(reply, result);
            }
            Input::Control {
                stored,
                command,
                failed_uploads,
                reply,
            } => {
                let result = self.control(now, *stored, command, failed_uploads);
                self.reply_recording(reply, result);
            }
            Input::CallHeld { session, held } => {
                let Some(rec) = self.active.get(&session).cloned() else {
                    return;
                };
                let command = if held {
                    Command::Pause
                } else {
                    Command::Resume
                };
                // Already paused (or resumed) through the API: nothing to do.
                let _ = self.control(now, rec, command, false);
            }
            Input::CallEvent {
                session,
                application,
                room,
                kind,
                extra,
            } => {
                let (mut payload, notify) = match self.active.get(&session) {
                    Some(rec) => (payload(rec, json!({})), rec.notifies()),
                    None => (json!({"session_id": session, "room_id": room}), true),
                };
                if let (Value::Object(base), Value::Object(more)) = (&mut payload, extra) {
                    base.extend(more);
                }
                self.persist(vec![Change::event(application, kind, payload, notify)]);
            }
            Input::CallMetadata {
                session,
                version,
                xml,
            } => self.persist(vec![Change::CallMetadata {
                session: session.to_string(),
                version,
                xml,
            }]),
            Input::Rename {
                publication,
                participant,
            } => {
                if let Some(ctx) = self.contexts.get_mut(&publication) {
                    ctx.participant = participant.clone();
                }
                self.persist(vec![Change::RenamePublication {
                    id: publication.to_string(),
                    participant,
                }]);
            }
            Input::JobDone { recording, result } => {
                if let Some(p) = self.pending.get_mut(&recording) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                    match result {
                        JobResult::Made { asset } => p.assets.push(asset),
                        JobResult::Failed {
                            code,
                            reason,
                            fault,
                        } => {
                            tracing::warn!(%recording, %code, ?fault, %reason, "output failed");
                            p.failures.push((code, reason))
                        }
                    }
                }
                self.maybe_finish(&recording);
            }
            Input::UploadsDone { recording, outcome } => self.uploads_done(&recording, outcome),
            Input::Render {
                session,
                mode,
                options,
                pauses,
                reply,
            } => {
                let result = self.render_session(&session, mode, options, pauses, None);
                self.reply_recording(reply, result);
            }
            Input::Resume {
                starting,
                uploading,
                unfinished,
                transcript_uploads,
            } => {
                for (recording, event) in transcript_uploads {
                    self.job(JobSpec::FinishTranscriptUpload { recording, event });
                }
                for u in unfinished {
                    self.finish_interrupted(u);
                }
                for rec in starting {
                    self.starting
                        .insert(RoomId::from_trusted(rec.room_id.clone()), rec);
                }
                for rec in uploading {
                    self.job(JobSpec::Upload {
                        recording: rec.id.clone(),
                        name_objects: false,
                    });
                    self.uploading.insert(rec.id.clone(), rec);
                }
            }
            Input::RetentionDue {
                default_days,
                now_ms,
            } => {
                if !self.sweeping && !self.shutting_down {
                    self.sweeping = true;
                    self.job(JobSpec::Retention {
                        default_days,
                        now_ms,
                    });
                }
            }
            Input::RetentionDone => self.sweeping = false,
            Input::Shutdown => {
                self.shutting_down = true;
                let close: Vec<_> = self
                    .contexts
                    .values()
                    .map(|c| (c.publication.clone(), c.call.is_some()))
                    .collect();
                for (publication, call) in close {
                    self.out.push_back(Output::Media {
                        publication,
                        call,
                        order: MediaOrder::Close(EndReason::Shutdown),
                    });
                }
                self.check_drained();
            }
            Input::EndAll => {
                let ended: Vec<Change> = self
                    .lifecycle
                    .drain()
                    .into_iter()
                    .map(|(_, session)| Change::EndSession {
                        id: session.to_string(),
                        reason: EndReason::Shutdown,
                        at: now.unix_ms,
                    })
                    .collect();
                self.persist(ended);
            }
        }
    }

    /// Timers: a session's `empty_timeout` or `max_duration` ran out.
    pub fn handle_timeout(&mut self, now: Now) {
        self.now = Some(now);
        for action in self.lifecycle.handle_timeout(now.at) {
            match action {
                Action::EndPublication {
                    publication,
                    reason,
                } => {
                    let call = self
                        .contexts
                        .get(&publication)
                        .is_some_and(|c| c.call.is_some());
                    self.out.push_back(Output::Media {
                        publication,
                        call,
                        order: MediaOrder::Close(reason),
                    });
                }
                Action::EndSession {
                    session, reason, ..
                } => self.end_session(now, session, reason),
            }
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let far = self.now.map(|n| n.at).unwrap_or_else(Instant::now) + Duration::from_secs(3600);
        Output::Timeout(self.lifecycle.poll_timeout().unwrap_or(far))
    }

    fn persist(&mut self, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.out.push_back(Output::Persist(changes));
        }
    }

    fn job(&mut self, spec: JobSpec) {
        self.out.push_back(Output::Job(spec));
    }

    fn reply(&mut self, to: ReplyTo, result: Result<Reply, RecorderError>) {
        self.out.push_back(Output::Reply { to, result });
    }

    fn reply_recording(&mut self, to: ReplyTo, result: Result<Recording, RecorderError>) {
        self.reply(to, result.map(|r| Reply::Recording(Box::new(r))));
    }

    fn set_capture(&mut self, now: Now, session: &SessionId, on: bool) {
        self.out.push_back(Output::SetCapture {
            session: session.clone(),
            on,
            at_unix_us: now.unix_ms * 1000,
        });
    }

    fn request_keyframes(&mut self, session: &SessionId) {
        let asks: Vec<_> = self
            .contexts
            .values()
            .filter(|c| &c.session == session)
            .map(|c| (c.publication.clone(), c.call.is_some()))
            .collect();
        for (publication, call) in asks {
            self.out.push_back(Output::Media {
                publication,
                call,
                order: MediaOrder::RequestKeyframes,
            });
        }
    }

    fn check_drained(&mut self) {
        if self.shutting_down && !self.drained && self.contexts.is_empty() {
            self.drained = true;
            self.out.push_back(Output::Drained);
        }
    }

    fn join(
        &mut self,
        now: Now,
        publication: PublicationId,
        facts: RoomFacts,
        participant: String,
        kind: PublicationKind,
        call: Option<String>,
    ) -> PublicationContext {
        let room_id = RoomId::from_trusted(facts.room.id.clone());
        let venue = Venue {
            room: room_id.clone(),
            call: call.clone(),
        };
        let limits = Limits {
            // A call's parties leave together when it ends; nobody rejoins a SIP call.
            empty_timeout: match call {
                Some(_) => Duration::ZERO,
                None => Duration::from_millis(facts.room.empty_timeout_ms.max(0) as u64),
            },
            max_duration: Duration::from_millis(facts.room.max_duration_ms.max(0) as u64),
        };
        let joined = self
            .lifecycle
            .join(now.at, &venue, publication.clone(), limits);
        let mut changes = Vec::new();
        let mut capture_off = false;
        if joined.started {
            let row = Session {
                id: joined.session.to_string(),
                application_id: facts.room.application_id.clone(),
                room_id: facts.room.id.clone(),
                state: SessionState::Live,
                started_at: now.unix_ms,
                ended_at: None,
                end_reason: None,
                call_id: call.clone(),
            };
            changes.push(Change::InsertSession(row.clone()));
            tracing::info!(session = %joined.session, room = %room_id, "session started");
            self.sessions.insert(
                joined.session.clone(),
                LiveSession {
                    room: facts.room.clone(),
                    defaults: facts.defaults.clone(),
                    row,
                    publications: Vec::new(),
                    captured: false,
                    pauses: Vec::new(),
                },
            );
            match self.session_started(now, &facts, &joined.session, &venue) {
                Some(started) => changes.extend(started),
                None => capture_off = true,
            }
        }
        changes.push(Change::InsertPublication(Publication {
            id: publication.to_string(),
            session_id: joined.session.to_string(),
            room_id: facts.room.id.clone(),
            participant: participant.clone(),
            kind,
            state: PublicationState::Live,
            started_at: now.unix_ms,
            ended_at: None,
            end_reason: None,
            failure: None,
        }));
        if let Some(s) = self.sessions.get_mut(&joined.session) {
            s.publications.push((publication.clone(), now.unix_ms));
        }
        self.persist(changes);
        if capture_off {
            // Ordered before any track of this session opens: its offer is not answered yet.
            self.set_capture(now, &joined.session, false);
        }
        let ctx = PublicationContext {
            journal_dir: self
                .data_dir
                .join("journals")
                .join(joined.session.as_str())
                .join(publication.as_str()),
            publication: publication.clone(),
            session: joined.session,
            room: room_id,
            participant,
            kind,
            call,
        };
        self.contexts.insert(publication, ctx.clone());
        ctx
    }

    fn new_recording(
        now: Now,
        room: (&str, &str),
        mode: RecordingMode,
        session: Option<&SessionId>,
        state: RecordingState,
        options: RecordingOptions,
    ) -> Recording {
        Recording {
            id: RecordingId::generate().to_string(),
            application_id: room.0.to_string(),
            room_id: room.1.to_string(),
            session_id: session.map(|s| s.to_string()),
            mode,
            state,
            failure: None,
            failure_code: None,
            pauses: Vec::new(),
            created_at: now.unix_ms,
            started_at: session.map(|_| now.unix_ms),
            stopped_at: None,
            updated_at: now.unix_ms,
            options: options.json,
            credentials_set: options.sealed_credentials.is_some(),
            credentials_sealed: options.sealed_credentials,
            legal_hold: false,
        }
    }

    /// A session just started: attach the recording waiting for the room's meeting, or start
    /// one by policy (its rows and events to write), or None: capture stays off. A SIP call
    /// forked into the room is a session of its own and never takes the meeting's waiting
    /// recording.
    fn session_started(
        &mut self,
        now: Now,
        facts: &RoomFacts,
        session: &SessionId,
        venue: &Venue,
    ) -> Option<Vec<Change>> {
        let waiting = match venue.call {
            None => self.starting.remove(&venue.room),
            Some(_) => None,
        };
        let rec = match waiting {
            Some(mut rec) => {
                rec.session_id = Some(session.to_string());
                rec.started_at = Some(now.unix_ms);
                rec.state = rec
                    .state
                    .apply(Command::SessionStarted)
                    .unwrap_or(RecordingState::Recording);
                rec
            }
            None if facts.room.auto_stream_recording => Self::new_recording(
                now,
                (&facts.room.application_id, &facts.room.id),
                RecordingMode::Stream,
                Some(session),
                RecordingState::Recording,
                facts.defaults.clone(),
            ),
            None => return None,
        };
        let changes = saved(&rec, Some(EventKind::RecordingStarted), json!({}));
        tracing::info!(recording = %rec.id, state = %rec.state, "recording");
        self.active.insert(session.clone(), rec);
        Some(changes)
    }

    fn publication_closed(&mut self, now: Now, publication: PublicationId, reason: EndReason) {
        let Some(ctx) = self.contexts.remove(&publication) else {
            return;
        };
        self.lifecycle.leave(now.at, &ctx.venue(), &publication);
        self.persist(vec![Change::EndPublication {
            id: publication.to_string(),
            reason,
            at: now.unix_ms,
        }]);
        tracing::info!(%publication, reason = reason.as_str(), "publication ended");
        // Its output for the recording capturing now; a stopped recording already made (or
        // is making) its own.
        if let Some(rec) = self
            .active
            .get(&ctx.session)
            .filter(|r| r.mode == RecordingMode::Stream)
        {
            let window = Window {
                from_unix_us: rec.started_at.map(|t| t * 1000),
                to_unix_us: None,
            };
            let id = rec.id.clone();
            self.schedule(&id, publication.as_str(), window, None);
        }
        self.check_drained();
    }

    fn end_session(&mut self, now: Now, session: SessionId, reason: EndReason) {
        let recorded = self.active.remove(&session);
        let recorded_any = recorded.is_some();
        if let Some(rec) = recorded {
            let _ = self.stop(now, rec, "session ended");
        }
        self.persist(vec![Change::EndSession {
            id: session.to_string(),
            reason,
            at: now.unix_ms,
        }]);
        tracing::info!(%session, reason = reason.as_str(), "session ended");
        if let Some(mut state) = self.sessions.remove(&session) {
            state.row.state = SessionState::Ended;
            state.row.ended_at = Some(now.unix_ms);
            state.row.end_reason = Some(reason);
            if recorded_any {
                self.policy_outputs(&session, state);
            }
        }
    }

    /// `POST /v1/recordings`: now if the room's meeting is live, else when it starts.
    fn start_recording(
        &mut self,
        now: Now,
        facts: RoomFacts,
        mode: RecordingMode,
        options: RecordingOptions,
    ) -> Result<Recording, RecorderError> {
        let room_id = RoomId::from_trusted(facts.room.id.clone());
        let session = self
            .lifecycle
            .active_session(&Venue::meeting(room_id.clone()))
            .cloned();
        let running = self
            .starting
            .get(&room_id)
            .or_else(|| session.as_ref().and_then(|s| self.active.get(s)));
        if let Some(rec) = running {
            return Err(RecorderError::Conflict(format!(
                "the room is already being recorded by {} ({}, {}): stop it \
                 (POST /v1/recordings/{}/stop) or control it (pause, resume) instead",
                rec.id, rec.mode, rec.state, rec.id
            )));
        }
        let app_room = (facts.room.application_id.as_str(), facts.room.id.as_str());
        match session {
            Some(session) => {
                let rec = Self::new_recording(
                    now,
                    app_room,
                    mode,
                    Some(&session),
                    RecordingState::Recording,
                    options,
                );
                self.persist(saved(&rec, Some(EventKind::RecordingStarted), json!({})));
                self.set_capture(now, &session, true);
                self.request_keyframes(&session);
                self.active.insert(session, rec.clone());
                Ok(rec)
            }
            None => {
                let rec = Self::new_recording(
                    now,
                    app_room,
                    mode,
                    None,
                    RecordingState::Starting,
                    options,
                );
                self.persist(saved(&rec, None, json!({})));
                self.starting.insert(room_id, rec.clone());
                Ok(rec)
            }
        }
    }

    /// The engine's own copy of a recording it holds, else the stored one.
    fn held(&self, stored: Recording) -> Recording {
        let id = stored.id.as_str();
        let mine = stored
            .session_id
            .as_ref()
            .and_then(|s| self.active.get(&SessionId::from_trusted(s.clone())))
            .or_else(|| {
                self.starting
                    .get(&RoomId::from_trusted(stored.room_id.clone()))
            })
            .filter(|r| r.id == id)
            .or_else(|| self.finishing.get(id))
            .or_else(|| self.uploading.get(id));
        mine.cloned().unwrap_or(stored)
    }

    /// Moves `rec` on by `command` (refused when the state machine does not allow it) and
    /// returns the row and its events to write.
    fn transition(
        rec: &mut Recording,
        command: Command,
        event: Option<EventKind>,
        extra: Value,
    ) -> Result<Vec<Change>, RecorderError> {
        let Some(next) = rec.state.apply(command) else {
            return Err(RecorderError::InvalidState(
                format!("cannot {command:?} a recording that is {}", rec.state).to_lowercase(),
            ));
        };
        rec.state = next;
        tracing::info!(recording = %rec.id, state = %rec.state, "recording");
        Ok(saved(rec, event, extra))
    }

    fn control(
        &mut self,
        now: Now,
        stored: Recording,
        command: Command,
        failed_uploads: bool,
    ) -> Result<Recording, RecorderError> {
        let mut rec = self.held(stored);
        if rec.state.apply(command).is_none() {
            return Err(RecorderError::InvalidState(
                format!("cannot {command:?} a recording that is {}", rec.state).to_lowercase(),
            ));
        }
        match command {
            Command::Pause | Command::Resume => {
                let session = SessionId::from_trusted(
                    rec.session_id
                        .clone()
                        .ok_or_else(|| RecorderError::Internal("no session".into()))?,
                );
                let pause = command == Command::Pause;
                if pause {
                    rec.pauses.push(Pause {
                        paused_at: now.unix_ms,
                        resumed_at: None,
                    });
                } else if let Some(last) = rec.pauses.last_mut() {
                    last.resumed_at = Some(now.unix_ms);
                }
                let event = if pause {
                    EventKind::RecordingPaused
                } else {
                    EventKind::RecordingResumed
                };
                let changes = Self::transition(&mut rec, command, Some(event), json!({}))?;
                self.set_capture(now, &session, !pause);
                if !pause {
                    self.request_keyframes(&session);
                }
                self.persist(changes);
                self.active.insert(session, rec.clone());
                Ok(rec)
            }
            Command::Stop => self.stop(now, rec, "stopped"),
            Command::RetryUpload => {
                if !failed_uploads {
                    return Err(RecorderError::InvalidState(
                        "the recording has no failed upload to retry".into(),
                    ));
                }
                rec.failure = None;
                rec.failure_code = None;
                let changes = Self::transition(&mut rec, command, None, json!({"retry": true}))?;
                self.persist(changes);
                self.job(JobSpec::Upload {
                    recording: rec.id.clone(),
                    name_objects: false,
                });
                self.uploading.insert(rec.id.clone(), rec.clone());
                Ok(rec)
            }
            _ => Err(RecorderError::InvalidState("not a command".into())),
        }
    }

    /// Ends a recording as `failed` by `command`, with the code and reason in the recording
    /// and in its event.
    fn fail(
        &mut self,
        rec: &mut Recording,
        command: Command,
        code: &str,
        why: &str,
    ) -> Result<(), RecorderError> {
        rec.failure = Some(why.to_string());
        rec.failure_code = Some(code.to_string());
        let changes = Self::transition(
            rec,
            command,
            Some(EventKind::RecordingFailed),
            json!({"reason": why, "code": code}),
        )?;
        self.persist(changes);
        Ok(())
    }

    /// Ends capture for the recording and starts its outputs.
    fn stop(
        &mut self,
        now: Now,
        mut rec: Recording,
        why: &str,
    ) -> Result<Recording, RecorderError> {
        if rec.state == RecordingState::Starting {
            self.starting
                .remove(&RoomId::from_trusted(rec.room_id.clone()));
            self.fail(
                &mut rec,
                Command::Stop,
                FailureCode::NothingRecorded.as_str(),
                "stopped before any participant joined: nothing was recorded",
            )?;
            return Ok(rec);
        }
        let Some(session) = rec.session_id.clone().map(SessionId::from_trusted) else {
            return Err(RecorderError::Internal(
                "active recording without a session".into(),
            ));
        };
        rec.stopped_at = Some(now.unix_ms);
        let mut changes = Self::transition(
            &mut rec,
            Command::Stop,
            Some(EventKind::RecordingFinished),
            json!({"reason": why}),
        )?;
        changes.extend(Self::transition(
            &mut rec,
            Command::OutputsStarted,
            None,
            json!({}),
        )?);
        self.active.remove(&session);
        // Capture off now; the outputs read the journals once the capture thread flushed them.
        self.set_capture(now, &session, false);
        self.persist(changes);
        let window = Window {
            from_unix_us: rec.started_at.map(|t| t * 1000),
            to_unix_us: rec.stopped_at.map(|t| t * 1000),
        };
        let mut publications = Vec::new();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.pauses.extend(rec.pauses.iter().cloned());
            publications = s.publications.clone();
        }
        match rec.mode {
            RecordingMode::Stream => {
                for (p, joined) in publications {
                    if joined <= rec.stopped_at.unwrap_or(i64::MAX) {
                        self.schedule(&rec.id, p.as_str(), window, Some(session.clone()));
                    }
                }
            }
            RecordingMode::Composite | RecordingMode::Audio => {
                self.schedule_render(&rec.id, Some(session.clone()))
            }
        }
        self.finishing.insert(rec.id.clone(), rec.clone());
        self.maybe_finish(&rec.id);
        Ok(rec)
    }

    /// A recording a restart interrupted: capture ended with the session, its outputs are
    /// made from what the journals hold.
    fn finish_interrupted(&mut self, u: Unfinished) {
        let Unfinished {
            recording: mut rec,
            publications,
        } = u;
        let mut changes = Vec::new();
        if rec.state.is_capturing() {
            changes.extend(
                Self::transition(
                    &mut rec,
                    Command::Stop,
                    Some(EventKind::RecordingFinished),
                    json!({"reason": "interrupted"}),
                )
                .unwrap_or_default(),
            );
        }
        if rec.state == RecordingState::Stopping {
            changes.extend(
                Self::transition(&mut rec, Command::OutputsStarted, None, json!({}))
                    .unwrap_or_default(),
            );
        }
        if rec.state != RecordingState::Processing {
            return;
        }
        self.persist(changes);
        let window = Window {
            from_unix_us: rec.started_at.map(|t| t * 1000),
            to_unix_us: None,
        };
        match rec.mode {
            RecordingMode::Stream => {
                for (p, _) in publications {
                    self.schedule(&rec.id, p.as_str(), window, None);
                }
            }
            RecordingMode::Composite | RecordingMode::Audio => self.schedule_render(&rec.id, None),
        }
        self.finishing.insert(rec.id.clone(), rec.clone());
        self.maybe_finish(&rec.id);
    }

    /// One output job per (recording, publication).
    fn schedule(
        &mut self,
        recording: &str,
        publication: &str,
        window: Window,
        after_flush_of: Option<SessionId>,
    ) {
        if !self
            .scheduled
            .insert((recording.to_string(), publication.to_string()))
        {
            return;
        }
        self.pending
            .entry(recording.to_string())
            .or_default()
            .in_flight += 1;
        self.job(JobSpec::StreamAsset {
            recording: recording.to_string(),
            publication: publication.to_string(),
            window,
            after_flush_of,
        });
    }

    fn schedule_render(&mut self, recording: &str, after_flush_of: Option<SessionId>) {
        self.pending
            .entry(recording.to_string())
            .or_default()
            .in_flight += 1;
        self.job(JobSpec::Render {
            recording: recording.to_string(),
            after_flush_of,
        });
    }

    /// A new recording of an ended session, in `processing`, whose output is one composite
    /// or audio mix over the whole session, leaving out the intervals nothing was captured.
    fn render_session(
        &mut self,
        session: &Session,
        mode: RecordingMode,
        options: RecordingOptions,
        mut pauses: Vec<Pause>,
        after_flush_of: Option<SessionId>,
    ) -> Result<Recording, RecorderError> {
        let Some(ended) = session.ended_at else {
            return Err(RecorderError::InvalidState(
                "the session is still live: composites are made from ended sessions".into(),
            ));
        };
        let now = self.now.expect("handle sets the time");
        let sid = SessionId::from_trusted(session.id.clone());
        let mut rec = Self::new_recording(
            now,
            (&session.application_id, &session.room_id),
            mode,
            Some(&sid),
            RecordingState::Processing,
            options,
        );
        rec.started_at = Some(session.started_at);
        rec.stopped_at = Some(ended);
        pauses.sort_by_key(|p| (p.paused_at, p.resumed_at));
        pauses.dedup_by_key(|p| (p.paused_at, p.resumed_at));
        rec.pauses = pauses;
        self.persist(saved(
            &rec,
            Some(EventKind::RecordingStarted),
            json!({"rerender": true}),
        ));
        self.finishing.insert(rec.id.clone(), rec.clone());
        self.schedule_render(&rec.id, after_flush_of);
        Ok(rec)
    }

    /// The room policy's automatic outputs of a session that was recorded: a composite
    /// (`auto_composite`), audio mixes (`audio_mix_formats`), and a call's mp3.
    fn policy_outputs(&mut self, session: &SessionId, state: LiveSession) {
        // Nothing was captured (a call that never sent RTP, a publisher gone before its first
        // packet): a render that can only fail is not run.
        if !state.captured {
            tracing::info!(%session, "no media captured: no composite or mix");
            return;
        }
        let policy: RoomPolicy =
            serde_json::from_value(state.room.policy.clone()).unwrap_or_default();
        let mut wanted: Vec<(RecordingMode, Option<AudioFormat>)> = Vec::new();
        if policy.auto_composite {
            wanted.push((RecordingMode::Composite, None));
        }
        for &f in &policy.audio_mix_formats {
            wanted.push((RecordingMode::Audio, Some(f)));
        }
        // A recorded call always gets its call recording: mp3 unless the room says.
        if state.row.call_id.is_some() && policy.audio_mix_formats.is_empty() {
            wanted.push((RecordingMode::Audio, Some(AudioFormat::default())));
        }
        for (mode, format) in wanted {
            // The room's destination and notification setting; the format of this output.
            let mut json = json!({});
            for key in ["destinationUrl", "notificationEvents"] {
                if let Some(v) = state.defaults.json.get(key) {
                    json[key] = v.clone();
                }
            }
            if let Some(f) = format {
                json["format"] = f.as_str().into();
            }
            if let (Some(_), Some(channels)) = (format, &policy.audio_mix_channels) {
                // The first party to join is on the left: for a call, the caller.
                json["audioOptions"] = json!({ "channels": channels });
            }
            let options = RecordingOptions {
                json,
                sealed_credentials: state.defaults.sealed_credentials.clone(),
            };
            let _ = self.render_session(
                &state.row,
                mode,
                options,
                state.pauses.clone(),
                Some(session.clone()),
            );
        }
    }

    /// A stopped recording whose outputs are all done becomes available, goes to its
    /// destination, or fails when none of them could be made.
    fn maybe_finish(&mut self, recording: &str) {
        if self.pending.get(recording).is_some_and(|p| p.in_flight > 0) {
            return;
        }
        let Some(mut rec) = self.finishing.remove(recording) else {
            return;
        };
        let done = self.pending.remove(recording).unwrap_or_default();
        self.scheduled.retain(|(r, _)| r != recording);
        if done.assets.is_empty() && !done.failures.is_empty() {
            // The code of the first failure that is not "no media" (that one only if every
            // output had nothing to work from), and every distinct reason.
            let code = done
                .failures
                .iter()
                .map(|(c, _)| c.as_str())
                .find(|c| *c != FailureCode::NoMedia.as_str())
                .unwrap_or(FailureCode::NoMedia.as_str())
                .to_string();
            let mut reasons: Vec<&str> = done.failures.iter().map(|(_, r)| r.as_str()).collect();
            reasons.dedup();
            let why = format!("no output could be made: {}", reasons.join("; "));
            let _ = self.fail(&mut rec, Command::OutputsDone { ok: false }, &code, &why);
        } else if has_destination(&rec) {
            if let Ok(changes) =
                Self::transition(&mut rec, Command::UploadsStarted, None, json!({}))
            {
                self.persist(changes);
                self.job(JobSpec::Upload {
                    recording: rec.id.clone(),
                    name_objects: true,
                });
                self.uploading.insert(rec.id.clone(), rec);
            }
        } else if let Ok(changes) = Self::transition(
            &mut rec,
            Command::OutputsDone { ok: true },
            Some(EventKind::RecordingAvailable),
            json!({"asset_ids": done.assets}),
        ) {
            self.persist(changes);
            self.job(JobSpec::Transcribe { recording: rec.id });
        }
    }

    /// Every asset verified in the destination: `recording_available` with the object URLs.
    /// Otherwise `recording.failed` with the destination's code; local copies stay.
    fn uploads_done(&mut self, recording: &str, outcome: UploadOutcome) {
        let Some(mut rec) = self.uploading.remove(recording) else {
            return;
        };
        match outcome {
            UploadOutcome::Done(done) => {
                let ids: Vec<&str> = done.iter().map(|(a, _)| a.as_str()).collect();
                let destinations: Vec<Value> = done
                    .iter()
                    .map(|(a, url)| json!({"asset_id": a, "destination_url": url}))
                    .collect();
                if let Ok(changes) = Self::transition(
                    &mut rec,
                    Command::UploadsDone { ok: true },
                    Some(EventKind::RecordingAvailable),
                    json!({"asset_ids": ids, "destinations": destinations}),
                ) {
                    self.persist(changes);
                    self.job(JobSpec::Transcribe { recording: rec.id });
                }
            }
            UploadOutcome::Failed {
                asset_id,
                code,
                message,
            } => {
                let fault = reel_core::recording::fault_of(&code);
                tracing::warn!(recording = %rec.id, %code, ?fault, "upload failed");
                rec.failure = Some(message.clone());
                rec.failure_code = Some(code.clone());
                if let Ok(changes) = Self::transition(
                    &mut rec,
                    Command::UploadsDone { ok: false },
                    Some(EventKind::RecordingFailed),
                    json!({"reason": message, "code": code, "asset_id": asset_id, "local_copy_kept": true}),
                ) {
                    self.persist(changes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
