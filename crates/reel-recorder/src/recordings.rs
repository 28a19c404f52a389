//! Recordings in the brain: a recording is a capture window over a room's session.
//!
//! - Capture is on only while the session's recording is `recording`. A session that starts
//!   without one (room policy `auto_stream_recording` off, no recording requested) captures
//!   nothing: the capture thread drops its frames from the first one.
//! - Pause and resume switch capture off and on; the journals carry Pause/Resume records and
//!   every output cuts the interval. On resume (and on a start mid-session) the publishers are
//!   asked for keyframes so the picture continues cleanly.
//! - Outputs are per (recording, publication): made when the publication ends during the
//!   recording, or at stop for publications still live (their journals are flushed first).
//!   The recording is `available` when all of them are done.
//! - Every state change is saved together with its events (`recording.statusUpdate` and the
//!   specific one) in one transaction.

use crate::capture::CaptureCommand;
use crate::{
    assets, composites, transcripts, uploads, Brain, MediaCommand, Msg, Outcome, RecorderError,
    Result,
};
use reel_core::lifecycle::Venue;
use reel_core::recording::FailureCode;
use reel_core::recording::{Command, RecordingMode, RecordingState};
use reel_core::{EventKind, RecordingId, RoomId, SessionId};
use reel_db::{now_ms, Pause, Recording, Room};
use reel_media::remux::Window;
use serde_json::{json, Value};

/// What a recording is asked to do, already validated: `recordingOptions` without the
/// credentials, and the credentials sealed with the server key.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    pub json: Value,
    pub sealed_credentials: Option<String>,
}

impl RecordingOptions {
    /// What a recording without options of its own gets: the room's defaults, else its
    /// application's.
    pub async fn defaults_for(db: &reel_db::Db, room: &Room) -> Result<RecordingOptions> {
        if room
            .default_recording_options
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            return Ok(RecordingOptions {
                json: room.default_recording_options.clone(),
                sealed_credentials: room.default_credentials_sealed.clone(),
            });
        }
        let (json, sealed_credentials) = db.application_defaults(&room.application_id).await?;
        Ok(RecordingOptions {
            json,
            sealed_credentials,
        })
    }
}

impl Default for RecordingOptions {
    fn default() -> Self {
        RecordingOptions {
            json: json!({}),
            sealed_credentials: None,
        }
    }
}

/// A stopped recording's output jobs: how many are still running, and why those that made
/// nothing failed (code, reason).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    in_flight: usize,
    failures: Vec<(String, String)>,
}

/// Turns true when a session's journals are flushed: output jobs started at a stop wait for
/// it before reading them (the brain does not).
pub(crate) type Flushed = tokio::sync::watch::Receiver<bool>;

async fn after(flushed: Option<Flushed>) {
    if let Some(mut flushed) = flushed {
        // Err: the capture thread is gone, and nothing more will reach the journals.
        let _ = flushed.wait_for(|done| *done).await;
    }
}

/// What a job's result means for its recording: None when it made its output.
fn job_failure(result: Result<Outcome>) -> Option<(String, String)> {
    match result {
        Ok(Outcome::Made(_)) => None,
        Ok(Outcome::Failed { code, reason }) => Some((code.as_str().into(), reason)),
        Err(e) => Some((FailureCode::InternalError.as_str().into(), e.to_string())),
    }
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

impl Brain {
    /// Ends a recording as `failed`, with the code and reason in the recording and in its
    /// event.
    async fn fail(&mut self, rec: &mut Recording, code: &str, why: &str) -> Result<()> {
        rec.failure = Some(why.to_string());
        rec.failure_code = Some(code.to_string());
        self.transition(
            rec,
            RecordingState::Failed,
            Some(EventKind::RecordingFailed),
            json!({"reason": why, "code": code}),
        )
        .await
    }

    /// Moves `rec` to `state`, saving it with `recording.statusUpdate` and `event` if any.
    pub(crate) async fn transition(
        &mut self,
        rec: &mut Recording,
        state: RecordingState,
        event: Option<EventKind>,
        extra: Value,
    ) -> Result<()> {
        rec.state = state;
        let mut events = vec![(EventKind::StatusUpdate, payload(rec, extra.clone()))];
        if let Some(e) = event {
            events.push((e, payload(rec, extra)));
        }
        self.db.save_recording_with_events(rec, &events).await?;
        tracing::info!(recording = %rec.id, state = %rec.state, "recording");
        Ok(())
    }

    /// Capture on or off for the session's tracks, in the capture thread's queue order:
    /// frames queued before this are kept, those after it follow the new setting. Returns
    /// at once (the brain never waits on a disk); the receiver turns true once the session's
    /// journals are flushed and synced.
    fn set_capture(&self, session: &str, on: bool) -> Flushed {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.capture.send(CaptureCommand::SetCapture {
            session: session.to_string(),
            on,
            at_unix_us: now_ms() * 1000,
            flushed: Some(done),
        });
        let (tx, flushed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = rx.await;
            let _ = tx.send(true);
        });
        flushed
    }

    fn request_keyframes(&self, session: &str) {
        for ctx in self
            .contexts
            .values()
            .filter(|c| c.session.as_str() == session)
        {
            let _ = self
                .media_of(&ctx.publication)
                .send(MediaCommand::RequestKeyframes {
                    publication: ctx.publication.clone(),
                });
        }
    }

    fn new_recording(
        room: &Room,
        mode: RecordingMode,
        session: Option<&SessionId>,
        state: RecordingState,
        options: RecordingOptions,
    ) -> Recording {
        let now = now_ms();
        Recording {
            id: RecordingId::generate().to_string(),
            application_id: room.application_id.clone(),
            room_id: room.id.clone(),
            session_id: session.map(|s| s.to_string()),
            mode,
            state,
            failure: None,
            failure_code: None,
            pauses: Vec::new(),
            created_at: now,
            started_at: session.map(|_| now),
            stopped_at: None,
            updated_at: now,
            options: options.json,
            credentials_set: options.sealed_credentials.is_some(),
            credentials_sealed: options.sealed_credentials,
            legal_hold: false,
        }
    }

    /// A session just started: attach the waiting recording, start one by policy, or keep
    /// capture off. A recording requested while the room was idle waits for the room's
    /// meeting: a SIP call forked into the same room is a session of its own and never
    /// takes it.
    pub(crate) async fn session_started(
        &mut self,
        room: &Room,
        session: &SessionId,
        venue: &Venue,
    ) -> Result<()> {
        let room_id = RoomId::from_trusted(room.id.clone());
        let waiting = match venue.call {
            None => self.starting.remove(&room_id),
            Some(_) => None,
        };
        let mut rec = match waiting {
            Some(mut waiting) => {
                waiting.session_id = Some(session.to_string());
                waiting.started_at = Some(now_ms());
                waiting
            }
            None if room.auto_stream_recording => {
                let defaults = RecordingOptions::defaults_for(&self.db, room).await?;
                Self::new_recording(
                    room,
                    RecordingMode::Stream,
                    Some(session),
                    RecordingState::Recording,
                    defaults,
                )
            }
            None => {
                // Ordered before any track of this session opens: the offer has not been sent yet.
                drop(self.set_capture(session.as_str(), false));
                return Ok(());
            }
        };
        self.transition(
            &mut rec,
            RecordingState::Recording,
            Some(EventKind::RecordingStarted),
            json!({}),
        )
        .await?;
        self.active.insert(session.clone(), rec);
        Ok(())
    }

    /// `POST /v1/recordings`: now if the room is live, else when its session starts.
    pub(crate) async fn start_recording(
        &mut self,
        room: Room,
        mode: RecordingMode,
        options: RecordingOptions,
    ) -> Result<Recording> {
        let room_id = RoomId::from_trusted(room.id.clone());
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
        match session {
            Some(session) => {
                let mut rec = Self::new_recording(
                    &room,
                    mode,
                    Some(&session),
                    RecordingState::Recording,
                    options,
                );
                drop(self.set_capture(session.as_str(), true));
                self.request_keyframes(session.as_str());
                self.transition(
                    &mut rec,
                    RecordingState::Recording,
                    Some(EventKind::RecordingStarted),
                    json!({}),
                )
                .await?;
                self.active.insert(session, rec.clone());
                Ok(rec)
            }
            None => {
                let mut rec =
                    Self::new_recording(&room, mode, None, RecordingState::Starting, options);
                self.transition(&mut rec, RecordingState::Starting, None, json!({}))
                    .await?;
                self.starting.insert(room_id, rec.clone());
                Ok(rec)
            }
        }
    }

    /// A recording loaded at start-up that was waiting for its room.
    pub(crate) fn adopt_starting(&mut self, rec: Recording) {
        self.starting
            .insert(RoomId::from_trusted(rec.room_id.clone()), rec);
    }

    /// Pause, resume or stop by the API.
    pub(crate) async fn control(
        &mut self,
        app: &str,
        id: &str,
        command: Command,
    ) -> Result<Recording> {
        let rec = self
            .db
            .get_recording(app, id)
            .await
            .map_err(|_| RecorderError::NotFound)?;
        let Some(next) = rec.state.apply(command) else {
            return Err(RecorderError::InvalidState(
                format!("cannot {command:?} a recording that is {}", rec.state).to_lowercase(),
            ));
        };
        // Work on the brain's copy, which is the authoritative one while active.
        let mut rec = match rec.session_id.as_deref() {
            Some(s) => self
                .active
                .get(&SessionId::from_trusted(s.to_string()))
                .cloned()
                .unwrap_or(rec),
            None => self
                .starting
                .get(&RoomId::from_trusted(rec.room_id.clone()))
                .cloned()
                .unwrap_or(rec),
        };
        match command {
            Command::Pause => {
                let session = rec.session_id.clone().expect("recording has a session");
                drop(self.set_capture(&session, false));
                rec.pauses.push(Pause {
                    paused_at: now_ms(),
                    resumed_at: None,
                });
                self.transition(&mut rec, next, Some(EventKind::RecordingPaused), json!({}))
                    .await?;
                self.active
                    .insert(SessionId::from_trusted(session), rec.clone());
            }
            Command::Resume => {
                let session = rec.session_id.clone().expect("recording has a session");
                drop(self.set_capture(&session, true));
                self.request_keyframes(&session);
                if let Some(last) = rec.pauses.last_mut() {
                    last.resumed_at = Some(now_ms());
                }
                self.transition(&mut rec, next, Some(EventKind::RecordingResumed), json!({}))
                    .await?;
                self.active
                    .insert(SessionId::from_trusted(session), rec.clone());
            }
            Command::Stop => return self.stop(rec, "stopped").await,
            Command::RetryUpload => {
                let assets = self.db.assets_of_recording(&rec.id).await?;
                if !assets.iter().any(|a| a.upload_state == "failed") {
                    return Err(RecorderError::InvalidState(
                        "the recording has no failed upload to retry".into(),
                    ));
                }
                rec.failure = None;
                rec.failure_code = None;
                self.transition(&mut rec, next, None, json!({"retry": true}))
                    .await?;
                self.spawn_uploads(&rec.id);
            }
            _ => return Err(RecorderError::InvalidState("not a command".into())),
        }
        Ok(rec)
    }

    /// Ends capture for the recording and makes its outputs.
    pub(crate) async fn stop(&mut self, mut rec: Recording, why: &str) -> Result<Recording> {
        if rec.state == RecordingState::Starting {
            self.starting
                .remove(&RoomId::from_trusted(rec.room_id.clone()));
            self.fail(
                &mut rec,
                FailureCode::NothingRecorded.as_str(),
                "stopped before any participant joined: nothing was recorded",
            )
            .await?;
            return Ok(rec);
        }
        let Some(session) = rec.session_id.clone() else {
            return Err(RecorderError::Internal(
                "active recording without a session".into(),
            ));
        };
        self.active
            .remove(&SessionId::from_trusted(session.clone()));
        // Capture off now; the outputs read the journals once they are flushed.
        let flushed = self.set_capture(&session, false);
        rec.stopped_at = Some(now_ms());
        self.transition(
            &mut rec,
            RecordingState::Stopping,
            Some(EventKind::RecordingFinished),
            json!({"reason": why}),
        )
        .await?;
        self.transition(&mut rec, RecordingState::Processing, None, json!({}))
            .await?;
        let window = Window {
            from_unix_us: rec.started_at.map(|t| t * 1000),
            to_unix_us: rec.stopped_at.map(|t| t * 1000),
        };
        if rec.mode == RecordingMode::Stream {
            for p in self.db.list_publications(&session).await? {
                if p.started_at <= rec.stopped_at.unwrap_or(i64::MAX) {
                    self.schedule(&rec.id, &p.id, window, Some(flushed.clone()));
                }
            }
        } else {
            self.schedule_composite(&rec.id, Some(flushed));
        }
        self.finishing.insert(rec.id.clone(), rec.clone());
        self.maybe_finish(&rec.id).await?;
        Ok(rec)
    }

    /// One output job per (recording, publication).
    pub(crate) fn schedule(
        &mut self,
        recording: &str,
        publication: &str,
        window: Window,
        flushed: Option<Flushed>,
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
        let (db, dir, tx) = (self.db.clone(), self.data_dir.clone(), self.tx.clone());
        let (recording, publication) = (recording.to_string(), publication.to_string());
        self.jobs.spawn(async move {
            after(flushed).await;
            let result =
                assets::process_publication(&db, &dir, &publication, &recording, window).await;
            if let Err(e) = &result {
                tracing::error!(%publication, error = %e, "asset job");
            }
            let failure = job_failure(result);
            let _ = tx.send(Msg::JobDone { recording, failure });
        });
    }

    /// A new recording of an ended session, in `processing`, whose output is one composite
    /// or audio mix over the whole session.
    pub(crate) async fn render_session(
        &mut self,
        session: &reel_db::Session,
        mode: RecordingMode,
        options: RecordingOptions,
        flushed: Option<Flushed>,
    ) -> Result<Recording> {
        let Some(ended) = session.ended_at else {
            return Err(RecorderError::InvalidState(
                "the session is still live: composites are made from ended sessions".into(),
            ));
        };
        let room = self.db.room_by_id_any(&session.room_id).await?;
        let sid = SessionId::from_trusted(session.id.clone());
        let mut rec =
            Self::new_recording(&room, mode, Some(&sid), RecordingState::Processing, options);
        rec.started_at = Some(session.started_at);
        rec.stopped_at = Some(ended);
        // Nothing was captured while the session's recording was paused (a hold, or the
        // API): the whole-session output leaves those intervals out, as that recording's
        // own outputs do, instead of playing them as silence.
        let mut pauses: Vec<_> = self
            .db
            .list_recordings(&session.application_id, None, Some(&session.id), None)
            .await?
            .into_iter()
            .flat_map(|r| r.pauses)
            .collect();
        pauses.sort_by_key(|p| (p.paused_at, p.resumed_at));
        pauses.dedup_by_key(|p| (p.paused_at, p.resumed_at));
        rec.pauses = pauses;
        self.transition(
            &mut rec,
            RecordingState::Processing,
            Some(EventKind::RecordingStarted),
            json!({"rerender": true}),
        )
        .await?;
        self.finishing.insert(rec.id.clone(), rec.clone());
        self.schedule_composite(&rec.id, flushed);
        Ok(rec)
    }

    /// The room policy's automatic outputs of a session that was recorded: a composite
    /// (`auto_composite`) and audio mixes (`audio_mix_formats`).
    pub(crate) async fn policy_outputs(&mut self, session_id: &str) -> Result<()> {
        // The session's journals may still be closing: the renders wait for their flush.
        let flushed = self.set_capture(session_id, false);
        let session = self.db.session_by_id(session_id).await?;
        // Nothing was captured (a call that never sent RTP, a publisher gone before its first
        // packet): there is nothing to render, and a render that can only fail is not run.
        if self.db.list_session_tracks(session_id).await?.is_empty() {
            tracing::info!(
                session = session_id,
                "no media captured: no composite or mix"
            );
            return Ok(());
        }
        let policy = uploads::room_policy(&self.db, &session.room_id).await;
        let mut wanted: Vec<(RecordingMode, Option<&str>)> = Vec::new();
        if policy.auto_composite {
            wanted.push((RecordingMode::Composite, None));
        }
        for f in &policy.audio_mix_formats {
            wanted.push((RecordingMode::Audio, Some(f.as_str())));
        }
        // A recorded call always gets its call recording: mp3 unless the room says.
        if session.call_id.is_some() && policy.audio_mix_formats.is_empty() {
            wanted.push((RecordingMode::Audio, Some("mp3")));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let room = self.db.room_by_id_any(&session.room_id).await?;
        let defaults = RecordingOptions::defaults_for(&self.db, &room).await?;
        for (mode, format) in wanted {
            // The room's destination and credentials; the format of this output.
            let mut json = json!({});
            for key in ["destinationUrl", "notificationEvents"] {
                if let Some(v) = defaults.json.get(key) {
                    json[key] = v.clone();
                }
            }
            if let Some(f) = format {
                json["format"] = f.into();
            }
            if let (Some(_), Some(channels)) = (format, &policy.audio_mix_channels) {
                // The first party to join is on the left: for a call, the caller.
                json["audioOptions"] = json!({ "channels": channels });
            }
            let options = RecordingOptions {
                json,
                sealed_credentials: defaults.sealed_credentials.clone(),
            };
            self.render_session(&session, mode, options, Some(flushed.clone()))
                .await?;
        }
        Ok(())
    }

    /// An event about a recorded call, in the call's application's outbox.
    pub(crate) async fn call_event(
        &mut self,
        session: &SessionId,
        event: EventKind,
        extra: Value,
    ) -> Result<()> {
        let row = self.db.session_by_id(session.as_str()).await?;
        let (mut payload, notify) = match self.active.get(session) {
            Some(rec) => (payload(rec, json!({})), rec.notifies()),
            None => (json!({"session_id": row.id, "room_id": row.room_id}), true),
        };
        if let (Value::Object(base), Value::Object(more)) = (&mut payload, extra) {
            base.extend(more);
        }
        self.db
            .insert_event(&row.application_id, event, &payload, notify)
            .await?;
        Ok(())
    }

    /// One composite (or audio mix) job for a `composite` / `audio` recording.
    pub(crate) fn schedule_composite(&mut self, recording: &str, flushed: Option<Flushed>) {
        self.pending
            .entry(recording.to_string())
            .or_default()
            .in_flight += 1;
        let (db, dir, tx, ctx) = (
            self.db.clone(),
            self.data_dir.clone(),
            self.tx.clone(),
            self.render.clone(),
        );
        let recording = recording.to_string();
        self.jobs.spawn(async move {
            after(flushed).await;
            let result = composites::process_recording(&db, &dir, &ctx, &recording).await;
            if let Err(e) = &result {
                tracing::error!(%recording, error = %e, "composite job");
            }
            let failure = job_failure(result);
            let _ = tx.send(Msg::JobDone { recording, failure });
        });
    }

    pub(crate) async fn job_done(
        &mut self,
        recording: &str,
        failure: Option<(String, String)>,
    ) -> Result<()> {
        if let Some(p) = self.pending.get_mut(recording) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.failures.extend(failure);
        }
        self.maybe_finish(recording).await
    }

    /// A stopped recording whose outputs are all done becomes available (or failed when
    /// none of them could be made).
    async fn maybe_finish(&mut self, recording: &str) -> Result<()> {
        if self.pending.get(recording).is_some_and(|p| p.in_flight > 0) {
            return Ok(());
        }
        let Some(mut rec) = self.finishing.remove(recording) else {
            return Ok(());
        };
        let failures = self.pending.remove(recording).unwrap_or_default().failures;
        self.scheduled.retain(|(r, _)| r != recording);
        let assets = self
            .db
            .list_assets(&rec.application_id, None, None, Some(&rec.id))
            .await?;
        if assets.is_empty() && !failures.is_empty() {
            // The code of the first failure that is not "no media" (that one only if every
            // output had nothing to work from), and every distinct reason.
            let code = failures
                .iter()
                .map(|(c, _)| c.as_str())
                .find(|c| *c != FailureCode::NoMedia.as_str())
                .unwrap_or(FailureCode::NoMedia.as_str())
                .to_string();
            let mut reasons: Vec<&str> = failures.iter().map(|(_, r)| r.as_str()).collect();
            reasons.dedup();
            let why = format!("no output could be made: {}", reasons.join("; "));
            self.fail(&mut rec, &code, &why).await?;
        } else if uploads::prepare(&self.db, &rec, &assets).await? {
            self.transition(&mut rec, RecordingState::Uploading, None, json!({}))
                .await?;
            self.spawn_uploads(&rec.id);
        } else {
            let ids: Vec<&str> = assets.iter().map(|a| a.id.as_str()).collect();
            self.transition(
                &mut rec,
                RecordingState::Available,
                Some(EventKind::RecordingAvailable),
                json!({"asset_ids": ids}),
            )
            .await?;
            self.spawn_transcript(&rec);
        }
        Ok(())
    }

    /// The transcript of a recording that asked for one, once the recording is available.
    fn spawn_transcript(&mut self, rec: &Recording) {
        let (db, dir, ctx, up) = (
            self.db.clone(),
            self.data_dir.clone(),
            self.render.clone(),
            self.uploads.clone(),
        );
        let recording = rec.id.clone();
        self.jobs.spawn(async move {
            // `process` returns at once for a recording that wants no transcript.
            if let Err(e) = transcripts::process(&db, &dir, &ctx, &up, &recording).await {
                tracing::error!(%recording, error = %e, "transcription job");
            }
        });
    }
}

impl Brain {
    /// One upload job per recording; it reports back with `Msg::UploadsDone`.
    pub(crate) fn spawn_uploads(&mut self, recording: &str) {
        let (db, ctx, tx) = (self.db.clone(), self.uploads.clone(), self.tx.clone());
        let recording = recording.to_string();
        self.jobs.spawn(async move {
            let outcome = match uploads::upload_recording(&db, &ctx, &recording).await {
                Ok(o) => o,
                Err(e) => uploads::UploadOutcome::Failed {
                    asset_id: None,
                    code: "internal_error".into(),
                    message: e.to_string(),
                },
            };
            let _ = tx.send(Msg::UploadsDone { recording, outcome });
        });
    }

    /// Every asset verified in the destination: `recording_available` with the object URLs.
    /// Otherwise `recording.failed` with the destination's error code; local copies stay.
    pub(crate) async fn uploads_done(
        &mut self,
        recording: &str,
        outcome: uploads::UploadOutcome,
    ) -> Result<()> {
        let mut rec = self.db.recording_by_id(recording).await?;
        if rec.state != RecordingState::Uploading {
            return Ok(());
        }
        match outcome {
            uploads::UploadOutcome::Done(done) => {
                let ids: Vec<&str> = done.iter().map(|(a, _)| a.as_str()).collect();
                let destinations: Vec<Value> = done
                    .iter()
                    .map(|(a, url)| json!({"asset_id": a, "destination_url": url}))
                    .collect();
                self.transition(
                    &mut rec,
                    RecordingState::Available,
                    Some(EventKind::RecordingAvailable),
                    json!({"asset_ids": ids, "destinations": destinations}),
                )
                .await?;
                self.spawn_transcript(&rec);
                Ok(())
            }
            uploads::UploadOutcome::Failed {
                asset_id,
                code,
                message,
            } => {
                rec.failure = Some(message.clone());
                rec.failure_code = Some(code.clone());
                self.transition(
                    &mut rec,
                    RecordingState::Failed,
                    Some(EventKind::RecordingFailed),
                    json!({"reason": message, "code": code, "asset_id": asset_id, "local_copy_kept": true}),
                )
                .await
            }
        }
    }
}

/// Start-up: finish recordings a crash or restart left behind. Their sessions were ended
/// by recovery; what their journals hold becomes their outputs.
pub async fn finish_interrupted(
    db: &reel_db::Db,
    data_dir: &std::path::Path,
    render: &composites::RenderContext,
) -> Result<Vec<Recording>> {
    let mut starting = Vec::new();
    for mut rec in db.unfinished_recordings().await? {
        if rec.state == RecordingState::Starting {
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
        let was_capturing = rec.state.is_capturing();
        rec.stopped_at.get_or_insert(ended_at);
        rec.state = RecordingState::Processing;
        let events: Vec<(EventKind, Value)> = if was_capturing {
            vec![
                (
                    EventKind::RecordingFinished,
                    payload(&rec, json!({"reason": "interrupted"})),
                ),
                (EventKind::StatusUpdate, payload(&rec, json!({}))),
            ]
        } else {
            vec![]
        };
        db.save_recording_with_events(&rec, &events).await?;
        let window = Window {
            from_unix_us: rec.started_at.map(|t| t * 1000),
            to_unix_us: None,
        };
        if rec.mode == RecordingMode::Stream {
            for p in db.list_publications(&session).await? {
                assets::process_publication(db, data_dir, &p.id, &rec.id, window).await?;
            }
        } else {
            composites::process_recording(db, data_dir, render, &rec.id).await?;
        }
        let assets = db
            .list_assets(&rec.application_id, None, None, Some(&rec.id))
            .await?;
        if !assets.is_empty() && uploads::prepare(db, &rec, &assets).await? {
            // The brain uploads it (Msg::ResumeUploads).
            rec.state = RecordingState::Uploading;
            let p = payload(&rec, json!({}));
            db.save_recording_with_events(&rec, &[(EventKind::StatusUpdate, p)])
                .await?;
            continue;
        }
        let ids: Vec<&str> = assets.iter().map(|a| a.id.as_str()).collect();
        rec.state = RecordingState::Available;
        let p = payload(&rec, json!({"asset_ids": ids}));
        db.save_recording_with_events(
            &rec,
            &[
                (EventKind::StatusUpdate, p.clone()),
                (EventKind::RecordingAvailable, p),
            ],
        )
        .await?;
    }
    Ok(starting)
}
