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
pub mod disk;
pub mod engine;
mod jobs;
mod journal_file;
pub mod orphans;
pub mod recordings;
pub mod recovery;
pub mod retention;
pub mod transcripts;
pub mod uploads;
mod write_behind;

use capture::{CaptureCommand, CaptureHandle, CaptureNotice};
use engine::{Engine, Input, JobSpec, MediaOrder, Now, Output, Reply, ReplyTo, RoomFacts};
use reel_core::lifecycle::Venue;
use reel_core::recording::RecordingMode;
use reel_core::{EndReason, EventKind, PublicationId, PublicationKind, RoomId, SessionId};
use reel_db::{now_ms, Db, Recording, Room, Track};
use reel_whip::WhipError;
use std::collections::HashMap;
use std::path::PathBuf;
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
    /// The disk refused a write (full, over quota, read-only): what needed it is tried
    /// again later.
    #[error("the disk refused the write: {0}")]
    NoSpace(String),
    /// Free space is below the floor: nothing new is admitted (what records goes on).
    #[error(
        "the recorder's disk is full: {free_mb} MB free, {min_mb} MB needed to admit a publisher"
    )]
    DiskFull { free_mb: u64, min_mb: u64 },
}

pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

impl RecorderError {
    /// A write the disk refused for want of space or for being read-only: worth trying
    /// again once an operator frees space, unlike a broken input.
    pub fn is_no_space(&self) -> bool {
        let io = match self {
            RecorderError::Io(e) | RecorderError::Media(reel_media::MediaError::Io(e)) => e,
            RecorderError::NoSpace(_) => return true,
            _ => return false,
        };
        matches!(
            io.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EROFS)
        )
    }
}

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
    pub(crate) fn venue(&self) -> Venue {
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

/// What the brain is told. Most messages are engine inputs as they are; the others need the
/// database read, or a reply waited for, before they become one.
enum Msg {
    Input(Input),
    Join {
        publication: PublicationId,
        room: Room,
        participant: String,
        kind: PublicationKind,
        call: Option<String>,
        reply: oneshot::Sender<Result<PublicationContext>>,
    },
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
    /// A composite or audio mix of an ended session, from its journals.
    Render {
        session: reel_db::Session,
        mode: RecordingMode,
        options: recordings::RecordingOptions,
        reply: oneshot::Sender<Result<Recording>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    media: mpsc::UnboundedSender<MediaCommand>,
    capture: CaptureHandle,
    disk: disk::DiskSpace,
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
        capture: capture::CaptureConfig,
        min_free_disk_bytes: u64,
    ) -> RecorderParts {
        let disk = disk::DiskSpace::new(&data_dir, min_free_disk_bytes);
        let (tx, rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
        let (capture, capture_thread) = capture::spawn(capture, notice_tx);
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
            engine: Engine::new(data_dir.clone()),
            writes: write_behind::WriteBehind::new(db.clone()),
            db: db.clone(),
            media: media_tx.clone(),
            calls: calls_tx,
            capture: capture.clone(),
            jobs: JoinSet::new(),
            job_context: jobs::JobContext {
                db,
                data_dir,
                render,
                uploads,
                report: tx.clone(),
            },
            waiting: HashMap::new(),
            next_reply: 0,
            flushes: HashMap::new(),
            shutdown: None,
            drained: false,
        };
        tokio::spawn(brain.run(rx));
        RecorderParts {
            recorder: Recorder {
                tx,
                media: media_tx,
                capture,
                disk,
            },
            media_commands: media_rx,
            call_commands: calls_rx,
            capture_thread,
        }
    }

    pub fn capture(&self) -> &CaptureHandle {
        &self.capture
    }

    /// Free space where the recorder writes, against its floor.
    pub fn disk(&self) -> disk::DiskReport {
        self.disk.report()
    }

    /// Refuses a new publisher or call while free space is below the floor.
    pub fn admit_by_disk(&self) -> Result<()> {
        let report = self.disk();
        if report.is_low() {
            return Err(RecorderError::DiskFull {
                free_mb: report.free_bytes >> 20,
                min_mb: report.min_free_bytes >> 20,
            });
        }
        Ok(())
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
        self.admit_by_disk()?;
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
                kind: PublicationKind::Sip,
                call: Some(call_id.to_string()),
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        rx.await.map_err(|_| RecorderError::ShuttingDown)?
    }

    /// A joined publication whose media will never come (its offer was refused).
    pub fn media_refused(&self, ctx: PublicationContext) {
        let _ = self.tx.send(Msg::Input(Input::JoinFailed {
            publication: ctx.publication,
        }));
    }

    /// A recorded call went on hold, or came back: pauses or resumes its recording.
    pub fn call_held(&self, session: &SessionId, held: bool) {
        let _ = self.tx.send(Msg::Input(Input::CallHeld {
            session: session.clone(),
            held,
        }));
    }

    /// A retention pass is due at `now_ms` (ignored while one is under way).
    pub fn retention_due(&self, default_days: u32, now_ms: i64) {
        let _ = self.tx.send(Msg::Input(Input::RetentionDue {
            default_days,
            now_ms,
        }));
    }

    /// An event about a recorded call (`recording.audio.started` …) of `application`'s
    /// room, sent with the call's recording, if one is capturing, and `extra` (which carries
    /// `callid`).
    pub fn call_event(
        &self,
        session: &SessionId,
        application: &str,
        room: &RoomId,
        event: EventKind,
        extra: serde_json::Value,
    ) {
        let _ = self.tx.send(Msg::Input(Input::CallEvent {
            session: session.clone(),
            application: application.to_string(),
            room: room.clone(),
            kind: event,
            extra,
        }));
    }

    /// Keeps a version of a call's recording metadata.
    pub fn call_metadata(&self, session: &SessionId, version: i64, xml: String) {
        let _ = self.tx.send(Msg::Input(Input::CallMetadata {
            session: session.clone(),
            version,
            xml,
        }));
    }

    /// A participant's name changed (a metadata update names them anew).
    pub fn rename(&self, publication: &PublicationId, participant: String) {
        let _ = self.tx.send(Msg::Input(Input::Rename {
            publication: publication.clone(),
            participant,
        }));
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
        let _ = self.tx.send(Msg::Input(Input::TrackOpened(track)));
    }

    /// After recovery: hands the brain the recordings the last run left unfinished (their
    /// outputs are made as at any stop), those still waiting for their room and those still
    /// uploading. Returns how many were unfinished.
    pub async fn resume_pending(&self, db: &Db) -> Result<usize> {
        let mut starting = Vec::new();
        let mut unfinished = Vec::new();
        for mut rec in db.unfinished_recordings().await? {
            if rec.state == reel_core::recording::RecordingState::Starting {
                starting.push(rec);
                continue;
            }
            let Some(session) = rec.session_id.clone() else {
                continue;
            };
            let ended_at = db
                .session_by_id(&session)
                .await
                .ok()
                .and_then(|s| s.ended_at)
                .unwrap_or_else(now_ms);
            rec.stopped_at.get_or_insert(ended_at);
            let publications = db
                .list_publications(&session)
                .await?
                .into_iter()
                .map(|p| (PublicationId::from_trusted(p.id), p.started_at))
                .collect();
            unfinished.push(engine::Unfinished {
                recording: rec,
                publications,
            });
        }
        let uploading = db.recordings_in_state("uploading").await?;
        let n = unfinished.len();
        let transcript_uploads = db.pending_transcript_uploads().await?;
        let _ = self.tx.send(Msg::Input(Input::Resume {
            starting,
            uploading,
            unfinished,
            transcript_uploads,
        }));
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

/// Who waits for an engine's reply.
enum Waiting {
    Joined(oneshot::Sender<Result<PublicationContext>>),
    Recording(oneshot::Sender<Result<Recording>>),
}

/// The engine's driver: turns messages into inputs (reading from the database what an input
/// needs), and executes the engine's outputs in order.
struct Brain {
    engine: Engine,
    db: Db,
    media: mpsc::UnboundedSender<MediaCommand>,
    calls: mpsc::UnboundedSender<MediaCommand>,
    capture: CaptureHandle,
    jobs: JoinSet<()>,
    job_context: jobs::JobContext,
    waiting: HashMap<ReplyTo, Waiting>,
    next_reply: ReplyTo,
    /// The latest capture switch of each session: turns true once its journals are synced.
    flushes: HashMap<SessionId, jobs::Flushed>,
    shutdown: Option<oneshot::Sender<()>>,
    drained: bool,
    writes: write_behind::WriteBehind,
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix_ms: now_ms(),
    }
}

impl Brain {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let wake = self.execute().await;
            if self.drained {
                // Jobs may wait for kept batches: keep writing them while the jobs end.
                loop {
                    let retry_at = self.writes.retry_at();
                    tokio::select! {
                        joined = self.jobs.join_next() => if joined.is_none() { break },
                        _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => self.writes.retry(),
                        _ = self.writes.retried() => {}
                    }
                }
                self.engine.handle(now(), Input::EndAll);
                self.execute().await;
                self.writes.finish().await;
                if let Some(reply) = self.shutdown.take() {
                    let _ = reply.send(());
                }
                return;
            }
            let retry_at = self.writes.retry_at();
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    self.input(msg).await;
                }
                _ = tokio::time::sleep_until(wake.into()) => self.engine.handle_timeout(now()),
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => self.writes.retry(),
                _ = self.writes.retried() => {}
                Some(_) = self.jobs.join_next(), if !self.jobs.is_empty() => {}
            }
        }
    }

    fn wait(&mut self, waiting: Waiting) -> ReplyTo {
        self.next_reply += 1;
        self.waiting.insert(self.next_reply, waiting);
        self.next_reply
    }

    /// One message, as the engine's input; what the input needs from the database is read
    /// here, so the engine never waits on it.
    async fn input(&mut self, msg: Msg) {
        let input = match msg {
            Msg::Join {
                publication,
                room,
                participant,
                kind,
                call,
                reply,
            } => match recordings::RecordingOptions::defaults_for(&self.db, &room).await {
                Ok(defaults) => Input::Join {
                    publication,
                    room: RoomFacts { room, defaults },
                    participant,
                    kind,
                    call,
                    reply: self.wait(Waiting::Joined(reply)),
                },
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            },
            Msg::Input(input) => input,
            Msg::Capture(CaptureNotice::PublicationClosed {
                publication,
                reason,
            }) => Input::PublicationClosed {
                publication,
                reason,
            },
            Msg::Capture(CaptureNotice::JournalStalled {
                publication,
                track,
                error,
            }) => {
                tracing::error!(%publication, %track, %error, "journal write refused (disk full?): the track's media is dropped until the disk takes it again");
                return;
            }
            Msg::Capture(CaptureNotice::MediaLost {
                publication,
                track,
                from_unix_us,
                to_unix_us,
                resumed,
            }) => {
                let lost_ms = (to_unix_us - from_unix_us) / 1000;
                if resumed {
                    tracing::warn!(%publication, %track, lost_ms, "journal writes again; the gap is marked on the asset");
                } else {
                    tracing::error!(%publication, %track, lost_ms, "track closed with its journal still refused; the gap is marked on the asset");
                }
                Input::MediaLost {
                    publication,
                    track: track.to_string(),
                    from_ms: from_unix_us / 1000,
                    to_ms: to_unix_us / 1000,
                    resumed,
                }
            }
            Msg::StartRecording {
                room,
                mode,
                options,
                reply,
            } => Input::StartRecording {
                room: RoomFacts {
                    room,
                    defaults: options.clone(),
                },
                mode,
                options,
                reply: self.wait(Waiting::Recording(reply)),
            },
            Msg::Control {
                app,
                id,
                command,
                reply,
            } => {
                let Ok(stored) = self.db.get_recording(&app, &id).await else {
                    let _ = reply.send(Err(RecorderError::NotFound));
                    return;
                };
                let failed_uploads = command == reel_core::recording::Command::RetryUpload
                    && match self.db.assets_of_recording(&id).await {
                        Ok(assets) => assets
                            .iter()
                            .any(|a| a.upload_state == reel_core::UploadState::Failed),
                        Err(e) => {
                            let _ = reply.send(Err(e.into()));
                            return;
                        }
                    };
                Input::Control {
                    stored: Box::new(stored),
                    command,
                    failed_uploads,
                    reply: self.wait(Waiting::Recording(reply)),
                }
            }
            Msg::Render {
                session,
                mode,
                options,
                reply,
            } => {
                // Nothing was captured while the session's recordings were paused (a hold,
                // or the API): the whole-session output leaves those intervals out.
                let pauses = match self
                    .db
                    .list_recordings(&session.application_id, None, Some(&session.id), None)
                    .await
                {
                    Ok(recs) => recs.into_iter().flat_map(|r| r.pauses).collect(),
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                };
                Input::Render {
                    session,
                    mode,
                    options,
                    pauses,
                    reply: self.wait(Waiting::Recording(reply)),
                }
            }
            Msg::Shutdown { reply } => {
                self.shutdown = Some(reply);
                Input::Shutdown
            }
        };
        self.engine.handle(now(), input);
    }

    /// Executes the engine's outputs in order until it has none; returns when to wake it.
    /// A write that is refused turns the replies that follow it into errors (and undoes a
    /// join). A write kept for later (the database unavailable for now) does not: it will
    /// be written, in order, before anything written after it.
    async fn execute(&mut self) -> Instant {
        // Every reply after a refused batch becomes an error. A kept one is not refused: the
        // engine's decision stands and its writes follow, in order, when the database takes
        // them.
        let mut refused: Option<String> = None;
        loop {
            match self.engine.poll_output() {
                Output::Timeout(at) => return at,
                Output::Persist(changes) => match self.writes.persist(changes).await {
                    write_behind::Persisted::Written | write_behind::Persisted::Held => {}
                    write_behind::Persisted::Refused(e) => {
                        refused = Some(format!("the database refused the change: {e}"));
                    }
                },
                Output::SetCapture {
                    session,
                    on,
                    at_unix_us,
                } => {
                    let (done, flushed) = oneshot::channel();
                    self.capture.send(CaptureCommand::SetCapture {
                        session: session.to_string(),
                        on,
                        at_unix_us,
                        flushed: Some(done),
                    });
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    tokio::spawn(async move {
                        let _ = flushed.await;
                        let _ = tx.send(true);
                    });
                    self.flushes.insert(session, rx);
                }
                Output::Media {
                    publication,
                    call,
                    order,
                } => {
                    let command = match order {
                        MediaOrder::Close(reason) => MediaCommand::Close {
                            publication,
                            reason,
                        },
                        MediaOrder::RequestKeyframes => {
                            MediaCommand::RequestKeyframes { publication }
                        }
                    };
                    let _ = if call { &self.calls } else { &self.media }.send(command);
                }
                Output::Job(spec) => {
                    let flushed = match &spec {
                        JobSpec::StreamAsset {
                            after_flush_of: Some(s),
                            ..
                        }
                        | JobSpec::Render {
                            after_flush_of: Some(s),
                            ..
                        } => self.flushes.get(s).cloned(),
                        _ => None,
                    };
                    let written = self.writes.written_up_to();
                    self.jobs
                        .spawn(jobs::run(self.job_context.clone(), spec, flushed, written));
                }
                Output::Reply { to, result } => {
                    let result = match (&refused, result) {
                        (Some(e), Ok(reply)) => {
                            if let Reply::Joined(ctx) = &reply {
                                self.engine.handle(
                                    now(),
                                    Input::JoinFailed {
                                        publication: ctx.publication.clone(),
                                    },
                                );
                            }
                            Err(RecorderError::Internal(e.clone()))
                        }
                        (_, result) => result,
                    };
                    match (self.waiting.remove(&to), result) {
                        (Some(Waiting::Joined(tx)), Ok(Reply::Joined(ctx))) => {
                            let _ = tx.send(Ok(ctx));
                        }
                        (Some(Waiting::Recording(tx)), Ok(Reply::Recording(rec))) => {
                            let _ = tx.send(Ok(*rec));
                        }
                        (Some(Waiting::Joined(tx)), Err(e)) => {
                            let _ = tx.send(Err(e));
                        }
                        (Some(Waiting::Recording(tx)), Err(e)) => {
                            let _ = tx.send(Err(e));
                        }
                        _ => tracing::error!("recorder: a reply nobody waits for"),
                    }
                }
                Output::Drained => self.drained = true,
            }
        }
    }
}
