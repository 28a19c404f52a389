//! The recorder: turns publishers joining and leaving into sessions, journals and assets.
//!
//! One task (the "brain") owns the room lifecycle and every decision that must be ordered:
//! joins, leaves, track openings, the end of capture, session timeouts. Media flows beside
//! it, never through it: the media loop hands frames straight to the capture thread, and
//! the capture thread reports back to the brain when a publication's journals are closed,
//! on the brain's own queue, so "track opened" is always handled before "publication closed".
//!
//! ```text
//! HTTP (WHIP) ──join──▶ brain ──offer──▶ media loop (reel_whip::Ingest) ──frames──▶ capture thread
//!                        ▲   ▲                │ track opened                            │
//!                        │   └────────────────┘                                         │
//!                        └────────────────────── publication closed ◀───────────────────┘
//!                        │
//!                        └──▶ asset jobs (remux) ──▶ assets + events in the database
//! ```

pub mod assets;
pub mod capture;
pub mod composites;
pub mod recordings;
pub mod recovery;
pub mod retention;
pub mod transcripts;
pub mod uploads;

use capture::{CaptureCommand, CaptureHandle, CaptureNotice};
use reel_core::lifecycle::{Action, Lifecycle, Limits, Venue};
use reel_core::recording::RecordingMode;
use reel_core::{EndReason, PublicationId, PublicationKind, RoomId, SessionId};
use reel_db::{now_ms, Db, Publication, Recording, Room, Session, Track};
use reel_whip::WhipError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error(transparent)]
    Whip(#[from] WhipError),
    #[error(transparent)]
    Db(#[from] reel_db::DbError),
    #[error(transparent)]
    Media(#[from] reel_media::MediaError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the recorder is shutting down")]
    ShuttingDown,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

/// What an output job (a stream asset, a composite, a mix) made: its asset, or why it
/// could not, with a stable code. Either way its event is already in the outbox.
#[derive(Debug)]
pub enum Outcome {
    Made(Box<reel_db::Asset>),
    Failed {
        code: reel_core::recording::FailureCode,
        reason: String,
    },
}

/// Everything the media loop needs to know about a publication it is asked to accept.
#[derive(Debug, Clone)]
pub struct PublicationContext {
    pub publication: PublicationId,
    pub session: SessionId,
    pub room: RoomId,
    pub participant: String,
    pub kind: PublicationKind,
    pub journal_dir: PathBuf,
    /// The SIP Call-ID when the publication is a party of a recorded call; its media then
    /// comes from the SIPREC loop, not from the WebRTC media loop.
    pub call: Option<String>,
}

impl PublicationContext {
    fn venue(&self) -> Venue {
        Venue {
            room: self.room.clone(),
            call: self.call.clone(),
        }
    }
}

/// Commands for a loop that owns publications' media: the WebRTC media loop, or the SIPREC
/// loop for the parties of recorded calls.
pub enum MediaCommand {
    /// Admit a WHIP offer and answer it; nothing is recorded before its `Attach`.
    Offer {
        publication: PublicationId,
        offerer: reel_whip::Offerer,
        sdp: String,
        reply: oneshot::Sender<Result<String, WhipError>>,
    },
    /// The admitted publication joined its session: its media is captured from now on.
    Attach { ctx: PublicationContext },
    Close {
        publication: PublicationId,
        reason: EndReason,
    },
    /// Capture (re)started: ask the publisher for a keyframe.
    RequestKeyframes { publication: PublicationId },
}

enum Msg {
    Join {
        publication: PublicationId,
        room: Room,
        participant: String,
        kind: PublicationKind,
        call: Option<String>,
        reply: oneshot::Sender<Result<PublicationContext>>,
    },
    /// A recorded call went on hold (`a=inactive` / `sendonly`) or came back.
    CallHeld {
        session: SessionId,
        held: bool,
    },
    /// `recording.audio.started` and the like, with the call's id.
    CallEvent {
        session: SessionId,
        event: reel_core::EventKind,
        extra: serde_json::Value,
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
    JoinFailed {
        ctx: PublicationContext,
    },
    TrackOpened(Track),
    Capture(CaptureNotice),
    StartRecording {
        room: Room,
        mode: RecordingMode,
        options: recordings::RecordingOptions,
        reply: oneshot::Sender<Result<Recording>>,
    },
    Control {
        app: String,
        id: String,
        command: reel_core::recording::Command,
        reply: oneshot::Sender<Result<Recording>>,
    },
    JobDone {
        recording: String,
        /// None when the job made its output; else (code, reason).
        failure: Option<(String, String)>,
    },
    UploadsDone {
        recording: String,
        outcome: uploads::UploadOutcome,
    },
    /// Start-up: recordings a restart left `uploading`.
    ResumeUploads(Vec<String>),
    /// A composite or audio mix of an ended session, from its journals.
    Render {
        session: reel_db::Session,
        mode: RecordingMode,
        options: recordings::RecordingOptions,
        reply: oneshot::Sender<Result<Recording>>,
    },
    AdoptStarting(Recording),
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    media: mpsc::UnboundedSender<MediaCommand>,
    capture: CaptureHandle,
    render: composites::RenderContext,
}

pub struct RecorderParts {
    pub recorder: Recorder,
    /// For the media loop.
    pub media_commands: mpsc::UnboundedReceiver<MediaCommand>,
    /// For the SIPREC loop.
    pub call_commands: mpsc::UnboundedReceiver<MediaCommand>,
    pub capture_thread: std::thread::JoinHandle<()>,
}

impl Recorder {
    /// Starts the brain and the capture thread. Call after `recovery::recover`.
    pub fn start(
        db: Db,
        data_dir: PathBuf,
        uploads: uploads::UploadContext,
        render: composites::RenderContext,
    ) -> RecorderParts {
        let (tx, rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
        let (capture, capture_thread) = capture::spawn(notice_tx);
        // Capture notices join the brain's queue, behind whatever was sent before them.
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(n) = notice_rx.recv().await {
                if forward.send(Msg::Capture(n)).is_err() {
                    break;
                }
            }
        });
        let brain = Brain {
            db,
            data_dir,
            lifecycle: Lifecycle::new(),
            media: media_tx.clone(),
            calls: calls_tx,
            jobs: JoinSet::new(),
            contexts: Default::default(),
            tx: tx.clone(),
            capture: capture.clone(),
            active: Default::default(),
            starting: Default::default(),
            finishing: Default::default(),
            pending: Default::default(),
            scheduled: Default::default(),
            uploads,
            render: render.clone(),
        };
        tokio::spawn(brain.run(rx));
        RecorderParts {
            recorder: Recorder {
                tx,
                media: media_tx,
                capture,
                render,
            },
            media_commands: media_rx,
            call_commands: calls_rx,
            capture_thread,
        }
    }

    pub fn capture(&self) -> &CaptureHandle {
        &self.capture
    }

    /// A WHIP publisher arrives: the media loop admits its offer first (capacity, offers
    /// still connecting per token and per room) and only then does it join its room's
    /// session, so a refused offer leaves nothing in the database or the outbox.
    pub async fn publish(
        &self,
        room: Room,
        participant: String,
        kind: PublicationKind,
        sdp: String,
    ) -> Result<(PublicationContext, String)> {
        let publication = PublicationId::generate();
        let offerer = reel_whip::Offerer {
            token: format!("{}/{participant}", room.id),
            room: room.id.clone(),
        };
        let (reply, rx) = oneshot::channel();
        self.media
            .send(MediaCommand::Offer {
                publication: publication.clone(),
                offerer,
                sdp,
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        let answer = rx.await.map_err(|_| RecorderError::ShuttingDown)??;
        let (reply, rx) = oneshot::channel();
        let joined = match self.tx.send(Msg::Join {
            publication: publication.clone(),
            room,
            participant,
            kind,
            call: None,
            reply,
        }) {
            Ok(()) => rx.await.unwrap_or(Err(RecorderError::ShuttingDown)),
            Err(_) => Err(RecorderError::ShuttingDown),
        };
        match joined {
            Ok(ctx) => {
                let _ = self.media.send(MediaCommand::Attach { ctx: ctx.clone() });
                Ok((ctx, answer))
            }
            Err(e) => {
                let _ = self.media.send(MediaCommand::Close {
                    publication,
                    reason: EndReason::Disconnected,
                });
                Err(e)
            }
        }
    }

    /// A party of a recorded SIP call: joins the call's own session in `room` (the first
    /// party starts it, the last one leaving ends it at once). Its media is the SIPREC
    /// loop's to capture; `media_refused` undoes the join if the call cannot be answered.
    pub async fn join_call(
        &self,
        room: Room,
        call_id: &str,
        participant: String,
    ) -> Result<PublicationContext> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Join {
                publication: PublicationId::generate(),
                room,
                participant,
                kind: PublicationKind::Camera,
                call: Some(call_id.to_string()),
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        rx.await.map_err(|_| RecorderError::ShuttingDown)?
    }

    /// A joined publication whose media will never come (its offer was refused).
    pub fn media_refused(&self, ctx: PublicationContext) {
        let _ = self.tx.send(Msg::JoinFailed { ctx });
    }

    /// A recorded call went on hold, or came back: pauses or resumes its recording.
    pub fn call_held(&self, session: &SessionId, held: bool) {
        let _ = self.tx.send(Msg::CallHeld {
            session: session.clone(),
            held,
        });
    }

    /// An event about a recorded call (`recording.audio.started` …), sent with the call's
    /// recording, if one is capturing, and `extra` (which carries `callid`).
    pub fn call_event(
        &self,
        session: &SessionId,
        event: reel_core::EventKind,
        extra: serde_json::Value,
    ) {
        let _ = self.tx.send(Msg::CallEvent {
            session: session.clone(),
            event,
            extra,
        });
    }

    /// Keeps a version of a call's recording metadata.
    pub fn call_metadata(&self, session: &SessionId, version: i64, xml: String) {
        let _ = self.tx.send(Msg::CallMetadata {
            session: session.clone(),
            version,
            xml,
        });
    }

    /// A participant's name changed (a metadata update names them anew).
    pub fn rename(&self, publication: &PublicationId, participant: String) {
        let _ = self.tx.send(Msg::Rename {
            publication: publication.clone(),
            participant,
        });
    }

    /// The publisher asked to stop (WHIP DELETE).
    pub fn unpublish(&self, publication: PublicationId) {
        let _ = self.media.send(MediaCommand::Close {
            publication,
            reason: EndReason::Left,
        });
    }

    /// From the media loop: a track produced its first frame and its journal is opening.
    pub fn track_opened(&self, track: Track) {
        let _ = self.tx.send(Msg::TrackOpened(track));
    }

    /// After recovery: finish recordings the last run left unfinished, and take back the
    /// ones still waiting for their room.
    pub async fn resume_pending(&self, db: &Db, data_dir: &Path) -> Result<usize> {
        let starting = recordings::finish_interrupted(db, data_dir, &self.render).await?;
        let n = starting.len();
        for rec in starting {
            let _ = self.tx.send(Msg::AdoptStarting(rec));
        }
        let uploading = db.recordings_in_state("uploading").await?;
        let _ = self.tx.send(Msg::ResumeUploads(
            uploading.into_iter().map(|r| r.id).collect(),
        ));
        Ok(n)
    }

    /// Starts a recording of the room: now if it is live, else when its session starts.
    pub async fn start_recording(
        &self,
        room: Room,
        mode: RecordingMode,
        options: recordings::RecordingOptions,
    ) -> Result<Recording> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::StartRecording {
                room,
                mode,
                options,
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        rx.await.map_err(|_| RecorderError::ShuttingDown)?
    }

    /// A composite (`mode: composite`) or audio mix (`mode: audio`) of an ended session, as a
    /// new recording of it: re-render with another layout or format from the same journals.
    pub async fn render_session(
        &self,
        session: reel_db::Session,
        mode: RecordingMode,
        options: recordings::RecordingOptions,
    ) -> Result<Recording> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Render {
                session,
                mode,
                options,
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        rx.await.map_err(|_| RecorderError::ShuttingDown)?
    }

    /// Pause, resume or stop a recording of application `app`.
    pub async fn control(
        &self,
        app: &str,
        id: &str,
        command: reel_core::recording::Command,
    ) -> Result<Recording> {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Control {
            app: app.to_string(),
            id: id.to_string(),
            command,
            reply,
        };
        self.tx.send(msg).map_err(|_| RecorderError::ShuttingDown)?;
        rx.await.map_err(|_| RecorderError::ShuttingDown)?
    }

    /// Ends every live publication and session, waits for journals to close and for
    /// asset jobs to finish (up to `deadline`).
    pub async fn shutdown(&self, deadline: Duration) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown { reply }).is_ok() {
            let _ = tokio::time::timeout(deadline, rx).await;
        }
        self.capture.send(CaptureCommand::Shutdown);
    }
}

struct Brain {
    db: Db,
    data_dir: PathBuf,
    lifecycle: Lifecycle,
    media: mpsc::UnboundedSender<MediaCommand>,
    calls: mpsc::UnboundedSender<MediaCommand>,
    jobs: JoinSet<()>,
    contexts: std::collections::HashMap<PublicationId, PublicationContext>,
    /// The brain's own queue, for jobs to report back on.
    tx: mpsc::UnboundedSender<Msg>,
    capture: CaptureHandle,
    /// The capturing (recording or paused) recording of each live session.
    active: std::collections::HashMap<SessionId, Recording>,
    /// Recordings requested for rooms with no session yet.
    starting: std::collections::HashMap<RoomId, Recording>,
    /// Stopped recordings whose outputs are being made.
    finishing: std::collections::HashMap<String, Recording>,
    /// Per recording: output jobs in flight, and the failures of those done.
    pending: std::collections::HashMap<String, recordings::Pending>,
    /// (recording, publication) pairs already given a job.
    scheduled: std::collections::HashSet<(String, String)>,
    uploads: uploads::UploadContext,
    render: composites::RenderContext,
}

impl Brain {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let wake = self
                .lifecycle
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    if let Msg::Shutdown { reply } = msg {
                        self.begin_shutdown();
                        shutdown = Some(reply);
                    } else if let Err(e) = self.handle(msg).await {
                        tracing::error!(error = %e, "recorder");
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    for action in self.lifecycle.handle_timeout(Instant::now()) {
                        if let Err(e) = self.act(action).await {
                            tracing::error!(error = %e, "recorder");
                        }
                    }
                }
                Some(_) = self.jobs.join_next(), if !self.jobs.is_empty() => {}
            }
            if shutdown.is_some() && self.contexts.is_empty() {
                while self.jobs.join_next().await.is_some() {}
                for (_, session) in self.lifecycle.drain() {
                    let _ = self
                        .db
                        .end_session(session.as_str(), EndReason::Shutdown.as_str(), now_ms())
                        .await;
                }
                let _ = shutdown.take().expect("checked").send(());
                return;
            }
        }
    }

    /// The loop that owns a publication's media.
    fn media_of(&self, publication: &PublicationId) -> &mpsc::UnboundedSender<MediaCommand> {
        match self.contexts.get(publication) {
            Some(ctx) if ctx.call.is_some() => &self.calls,
            _ => &self.media,
        }
    }

    fn begin_shutdown(&mut self) {
        for publication in self.contexts.keys() {
            let _ = self.media_of(publication).send(MediaCommand::Close {
                publication: publication.clone(),
                reason: EndReason::Shutdown,
            });
        }
    }

    async fn act(&mut self, action: Action) -> Result<()> {
        match action {
            Action::EndPublication {
                publication,
                reason,
            } => {
                let _ = self.media_of(&publication).send(MediaCommand::Close {
                    publication,
                    reason,
                });
            }
            Action::EndSession {
                session, reason, ..
            } => {
                let recorded = self.active.remove(&session);
                let recorded_any = recorded.is_some();
                if let Some(rec) = recorded {
                    self.stop(rec, "session ended").await?;
                }
                self.db
                    .end_session(session.as_str(), reason.as_str(), now_ms())
                    .await?;
                tracing::info!(%session, reason = reason.as_str(), "session ended");
                if recorded_any {
                    self.policy_outputs(session.as_str()).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Join {
                publication,
                room,
                participant,
                kind,
                call,
                reply,
            } => {
                let result = self.join(publication, room, participant, kind, call).await;
                let _ = reply.send(result);
            }
            Msg::CallHeld { session, held } => {
                let Some(rec) = self.active.get(&session) else {
                    return Ok(());
                };
                let (app, id) = (rec.application_id.clone(), rec.id.clone());
                let command = if held {
                    reel_core::recording::Command::Pause
                } else {
                    reel_core::recording::Command::Resume
                };
                // Already paused (or resumed) through the API: nothing to do.
                if let Err(e) = self.control(&app, &id, command).await {
                    tracing::debug!(%session, error = %e, "hold");
                }
            }
            Msg::CallEvent {
                session,
                event,
                extra,
            } => self.call_event(&session, event, extra).await?,
            Msg::CallMetadata {
                session,
                version,
                xml,
            } => {
                self.db
                    .insert_call_metadata(session.as_str(), version, &xml)
                    .await?
            }
            Msg::Rename {
                publication,
                participant,
            } => {
                if let Some(ctx) = self.contexts.get_mut(&publication) {
                    ctx.participant = participant.clone();
                }
                self.db
                    .rename_publication(publication.as_str(), &participant)
                    .await?
            }
            Msg::JoinFailed { ctx } => {
                self.contexts.remove(&ctx.publication);
                self.lifecycle
                    .leave(Instant::now(), &ctx.venue(), &ctx.publication);
                self.db
                    .end_publication(
                        ctx.publication.as_str(),
                        EndReason::Disconnected.as_str(),
                        now_ms(),
                    )
                    .await?;
                self.db
                    .set_publication_outcome(
                        ctx.publication.as_str(),
                        "failed",
                        Some("offer rejected"),
                    )
                    .await?;
            }
            Msg::TrackOpened(track) => self.db.insert_track(&track).await?,
            Msg::Capture(CaptureNotice::PublicationClosed {
                publication,
                reason,
            }) => {
                let Some(ctx) = self.contexts.remove(&publication) else {
                    return Ok(());
                };
                self.lifecycle
                    .leave(Instant::now(), &ctx.venue(), &publication);
                self.db
                    .end_publication(publication.as_str(), reason.as_str(), now_ms())
                    .await?;
                tracing::info!(%publication, reason = reason.as_str(), "publication ended");
                // Its output for the recording that is capturing now; a stopped recording
                // already made (or is making) its own.
                if let Some(rec) = self
                    .active
                    .get(&ctx.session)
                    .filter(|r| r.mode == RecordingMode::Stream)
                {
                    let from = rec.started_at.map(|t| t * 1000);
                    let window = reel_media::remux::Window {
                        from_unix_us: from,
                        to_unix_us: None,
                    };
                    let id = rec.id.clone();
                    self.schedule(&id, publication.as_str(), window, None);
                }
            }
            Msg::Capture(CaptureNotice::JournalFailed {
                publication,
                track,
                error,
            }) => {
                tracing::error!(%publication, %track, %error, "journal write failed; track stops recording");
            }
            Msg::StartRecording {
                room,
                mode,
                options,
                reply,
            } => {
                let _ = reply.send(self.start_recording(room, mode, options).await);
            }
            Msg::Control {
                app,
                id,
                command,
                reply,
            } => {
                let _ = reply.send(self.control(&app, &id, command).await);
            }
            Msg::JobDone { recording, failure } => self.job_done(&recording, failure).await?,
            Msg::UploadsDone { recording, outcome } => {
                self.uploads_done(&recording, outcome).await?
            }
            Msg::Render {
                session,
                mode,
                options,
                reply,
            } => {
                let _ = reply.send(self.render_session(&session, mode, options, None).await);
            }
            Msg::ResumeUploads(ids) => {
                for id in ids {
                    self.spawn_uploads(&id);
                }
            }
            Msg::AdoptStarting(rec) => self.adopt_starting(rec),
            Msg::Shutdown { .. } => unreachable!("handled in run"),
        }
        Ok(())
    }

    async fn join(
        &mut self,
        publication: PublicationId,
        room: Room,
        participant: String,
        kind: PublicationKind,
        call: Option<String>,
    ) -> Result<PublicationContext> {
        let room_id = RoomId::from_trusted(room.id.clone());
        let venue = Venue {
            room: room_id.clone(),
            call: call.clone(),
        };
        let limits = Limits {
            // A call's parties leave together when it ends; nobody rejoins a SIP call.
            empty_timeout: match call {
                Some(_) => Duration::ZERO,
                None => Duration::from_millis(room.empty_timeout_ms.max(0) as u64),
            },
            max_duration: Duration::from_millis(room.max_duration_ms.max(0) as u64),
        };
        let joined = self
            .lifecycle
            .join(Instant::now(), &venue, publication.clone(), limits);
        let now = now_ms();
        if joined.started {
            let session = Session {
                id: joined.session.to_string(),
                application_id: room.application_id.clone(),
                room_id: room.id.clone(),
                state: "live".into(),
                started_at: now,
                ended_at: None,
                end_reason: None,
                call_id: call.clone(),
            };
            if let Err(e) = self.db.insert_session(&session).await {
                self.lifecycle.leave(Instant::now(), &venue, &publication);
                return Err(e.into());
            }
            tracing::info!(session = %joined.session, room = %room_id, "session started");
            if let Err(e) = self.session_started(&room, &joined.session, &venue).await {
                tracing::error!(error = %e, "starting the session's recording");
            }
        }
        let row = Publication {
            id: publication.to_string(),
            session_id: joined.session.to_string(),
            room_id: room.id.clone(),
            participant: participant.clone(),
            kind: kind.as_str().into(),
            state: "live".into(),
            started_at: now,
            ended_at: None,
            end_reason: None,
            failure: None,
        };
        if let Err(e) = self.db.insert_publication(&row).await {
            self.lifecycle.leave(Instant::now(), &venue, &publication);
            return Err(e.into());
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
        Ok(ctx)
    }
}
