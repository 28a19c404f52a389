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
pub mod recovery;

use capture::{CaptureCommand, CaptureHandle, CaptureNotice};
use reel_core::lifecycle::{Action, Lifecycle, Limits};
use reel_core::{EndReason, PublicationId, PublicationKind, RoomId, SessionId};
use reel_db::{now_ms, Db, Publication, Room, Session, Track};
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
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

/// Everything the media loop needs to know about a publication it is asked to accept.
#[derive(Debug, Clone)]
pub struct PublicationContext {
    pub publication: PublicationId,
    pub session: SessionId,
    pub room: RoomId,
    pub participant: String,
    pub kind: PublicationKind,
    pub journal_dir: PathBuf,
}

/// Commands for the media loop, which owns the UDP socket and the WebRTC engine.
pub enum MediaCommand {
    Offer {
        ctx: PublicationContext,
        sdp: String,
        reply: oneshot::Sender<Result<String, WhipError>>,
    },
    Close {
        publication: PublicationId,
        reason: EndReason,
    },
}

enum Msg {
    Join {
        room: Room,
        participant: String,
        kind: PublicationKind,
        reply: oneshot::Sender<Result<PublicationContext>>,
    },
    JoinFailed {
        ctx: PublicationContext,
    },
    TrackOpened(Track),
    Capture(CaptureNotice),
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    media: mpsc::UnboundedSender<MediaCommand>,
    capture: CaptureHandle,
}

pub struct RecorderParts {
    pub recorder: Recorder,
    /// For the media loop.
    pub media_commands: mpsc::UnboundedReceiver<MediaCommand>,
    pub capture_thread: std::thread::JoinHandle<()>,
}

impl Recorder {
    /// Starts the brain and the capture thread. Call after `recovery::recover`.
    pub fn start(db: Db, data_dir: PathBuf) -> RecorderParts {
        let (tx, rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
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
            jobs: JoinSet::new(),
            contexts: Default::default(),
        };
        tokio::spawn(brain.run(rx));
        RecorderParts {
            recorder: Recorder {
                tx,
                media: media_tx,
                capture,
            },
            media_commands: media_rx,
            capture_thread,
        }
    }

    pub fn capture(&self) -> &CaptureHandle {
        &self.capture
    }

    /// A WHIP publisher arrives: join its room's session and get the SDP answer.
    pub async fn publish(
        &self,
        room: Room,
        participant: String,
        kind: PublicationKind,
        sdp: String,
    ) -> Result<(PublicationContext, String)> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Join {
                room,
                participant,
                kind,
                reply,
            })
            .map_err(|_| RecorderError::ShuttingDown)?;
        let ctx = rx.await.map_err(|_| RecorderError::ShuttingDown)??;
        let (reply, rx) = oneshot::channel();
        let offer = MediaCommand::Offer {
            ctx: ctx.clone(),
            sdp,
            reply,
        };
        self.media
            .send(offer)
            .map_err(|_| RecorderError::ShuttingDown)?;
        match rx.await.map_err(|_| RecorderError::ShuttingDown)? {
            Ok(answer) => Ok((ctx, answer)),
            Err(e) => {
                let _ = self.tx.send(Msg::JoinFailed { ctx });
                Err(e.into())
            }
        }
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

    /// Produce assets for publications that ended without them (after recovery).
    pub async fn resume_pending(&self, db: &Db, data_dir: &Path) -> Result<usize> {
        let pending = db.publications_in_state("ended").await?;
        let n = pending.len();
        for p in pending {
            assets::process_publication(db, data_dir, &p.id).await?;
        }
        Ok(n)
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
    jobs: JoinSet<()>,
    contexts: std::collections::HashMap<PublicationId, PublicationContext>,
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

    fn begin_shutdown(&mut self) {
        for publication in self.contexts.keys() {
            let _ = self.media.send(MediaCommand::Close {
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
                let _ = self.media.send(MediaCommand::Close {
                    publication,
                    reason,
                });
            }
            Action::EndSession {
                session, reason, ..
            } => {
                self.db
                    .end_session(session.as_str(), reason.as_str(), now_ms())
                    .await?;
                tracing::info!(%session, reason = reason.as_str(), "session ended");
            }
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Join {
                room,
                participant,
                kind,
                reply,
            } => {
                let result = self.join(room, participant, kind).await;
                let _ = reply.send(result);
            }
            Msg::JoinFailed { ctx } => {
                self.contexts.remove(&ctx.publication);
                self.lifecycle
                    .leave(Instant::now(), &ctx.room, &ctx.publication);
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
                    .leave(Instant::now(), &ctx.room, &publication);
                self.db
                    .end_publication(publication.as_str(), reason.as_str(), now_ms())
                    .await?;
                tracing::info!(%publication, reason = reason.as_str(), "publication ended");
                let (db, dir) = (self.db.clone(), self.data_dir.clone());
                self.jobs.spawn(async move {
                    if let Err(e) =
                        assets::process_publication(&db, &dir, publication.as_str()).await
                    {
                        tracing::error!(%publication, error = %e, "asset job");
                    }
                });
            }
            Msg::Capture(CaptureNotice::JournalFailed {
                publication,
                track,
                error,
            }) => {
                tracing::error!(%publication, %track, %error, "journal write failed; track stops recording");
            }
            Msg::Shutdown { .. } => unreachable!("handled in run"),
        }
        Ok(())
    }

    async fn join(
        &mut self,
        room: Room,
        participant: String,
        kind: PublicationKind,
    ) -> Result<PublicationContext> {
        let room_id = RoomId::from_trusted(room.id.clone());
        let publication = PublicationId::generate();
        let limits = Limits {
            empty_timeout: Duration::from_millis(room.empty_timeout_ms.max(0) as u64),
            max_duration: Duration::from_millis(room.max_duration_ms.max(0) as u64),
        };
        let joined = self
            .lifecycle
            .join(Instant::now(), &room_id, publication.clone(), limits);
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
            };
            if let Err(e) = self.db.insert_session(&session).await {
                self.lifecycle.leave(Instant::now(), &room_id, &publication);
                return Err(e.into());
            }
            tracing::info!(session = %joined.session, room = %room_id, "session started");
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
            self.lifecycle.leave(Instant::now(), &room_id, &publication);
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
        };
        self.contexts.insert(publication, ctx.clone());
        Ok(ctx)
    }
}
