//! Durable changes as values. The recorder decides what changes (a session starts, an asset
//! is made, a recording moves on) and hands the database a batch of [`Change`]s, written in
//! one transaction with the events that announce them: the outbox never holds an event for a
//! change that did not happen, nor misses one that did, whatever crashes in between.

use crate::{now_ms, Asset, Db, Publication, Recording, Result, Session, Track};
use reel_core::{EndReason, EventKind, PublicationState};

#[derive(Debug, Clone)]
pub enum Change {
    InsertSession(Session),
    /// Ends a live session (an ended one is left as it is).
    EndSession {
        id: String,
        reason: EndReason,
        at: i64,
    },
    InsertPublication(Publication),
    /// Ends a live publication (an ended one is left as it is).
    EndPublication {
        id: String,
        reason: EndReason,
        at: i64,
    },
    /// `processed` or `failed`: the durable marker that its output job is done.
    PublicationOutcome {
        id: String,
        state: PublicationState,
        failure: Option<String>,
    },
    RenamePublication {
        id: String,
        participant: String,
    },
    InsertTrack(Track),
    /// Media the track lost (Unix ms): its journal's disk refused writes then.
    TrackGap {
        track: String,
        from_ms: i64,
        to_ms: i64,
    },
    InsertAsset(Asset),
    /// Where an asset goes: its object key and URL at the recording's destination; its
    /// upload is `pending` from now on.
    AssetDestination {
        id: String,
        key: String,
        url: String,
    },
    /// A transcript is going to its recording's destination; `payload` is its
    /// `transcription_available` event's, without the destinations. Removed with that event
    /// (or `transcription.failed`), so it outlives a crash in between.
    TranscriptUploadPending {
        recording: String,
        payload: serde_json::Value,
    },
    TranscriptUploadDone {
        recording: String,
    },
    /// Inserts the recording, or updates its state, failure, pauses and times.
    SaveRecording(Recording),
    /// One version of a recorded call's RFC 7865 metadata.
    CallMetadata {
        session: String,
        version: i64,
        xml: String,
    },
    /// An event in the outbox; with `notify` false it is kept but not delivered. Its id is
    /// made with the change (`Change::event`), so a batch written again after an unknown
    /// outcome (a connection lost during COMMIT) cannot put it in the outbox twice.
    Event {
        id: String,
        application: String,
        kind: EventKind,
        payload: serde_json::Value,
        notify: bool,
    },
}

impl Change {
    pub fn event(
        application: impl Into<String>,
        kind: EventKind,
        payload: serde_json::Value,
        notify: bool,
    ) -> Change {
        Change::Event {
            id: reel_core::EventId::generate().to_string(),
            application: application.into(),
            kind,
            payload,
            notify,
        }
    }

    /// An event about `rec`, delivered as its `notificationEvents` say.
    pub fn recording_event(rec: &Recording, kind: EventKind, payload: serde_json::Value) -> Change {
        Change::event(rec.application_id.clone(), kind, payload, rec.notifies())
    }
}

impl Db {
    /// Writes every change of the batch, or none of them.
    pub async fn commit(&self, changes: &[Change]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for change in changes {
            apply(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One change on its own.
    pub async fn commit_one(&self, change: Change) -> Result<()> {
        self.commit(std::slice::from_ref(&change)).await
    }
}

async fn apply(conn: &mut sqlx::AnyConnection, change: &Change) -> Result<()> {
    match change {
        Change::InsertSession(s) => {
            sqlx::query(
                "INSERT INTO sessions (id, application_id, room_id, state, started_at, call_id) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id)
            .bind(&s.application_id)
            .bind(&s.room_id)
            .bind(s.state.as_str())
            .bind(s.started_at)
            .bind(&s.call_id)
            .execute(conn)
            .await?;
        }
        Change::EndSession { id, reason, at } => {
            sqlx::query("UPDATE sessions SET state = 'ended', ended_at = $1, end_reason = $2 WHERE id = $3 AND state = 'live'")
                .bind(at)
                .bind(reason.as_str())
                .bind(id)
                .execute(conn)
                .await?;
        }
        Change::InsertPublication(p) => {
            sqlx::query(
                "INSERT INTO publications (id, session_id, room_id, participant, kind, state, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&p.id)
            .bind(&p.session_id)
            .bind(&p.room_id)
            .bind(&p.participant)
            .bind(p.kind.as_str())
            .bind(p.state.as_str())
            .bind(p.started_at)
            .execute(conn)
            .await?;
        }
        Change::EndPublication { id, reason, at } => {
            sqlx::query("UPDATE publications SET state = 'ended', ended_at = $1, end_reason = $2 WHERE id = $3 AND state = 'live'")
                .bind(at)
                .bind(reason.as_str())
                .bind(id)
                .execute(conn)
                .await?;
        }
        Change::PublicationOutcome { id, state, failure } => {
            sqlx::query("UPDATE publications SET state = $1, failure = $2 WHERE id = $3")
                .bind(state.as_str())
                .bind(failure)
                .bind(id)
                .execute(conn)
                .await?;
        }
        Change::RenamePublication { id, participant } => {
            sqlx::query("UPDATE publications SET participant = $1 WHERE id = $2")
                .bind(participant)
                .bind(id)
                .execute(conn)
                .await?;
        }
        Change::TrackGap {
            track,
            from_ms,
            to_ms,
        } => {
            sqlx::query("INSERT INTO track_gaps (track_id, from_ms, to_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(track)
                .bind(from_ms)
                .bind(to_ms)
                .execute(conn)
                .await?;
        }
        Change::InsertTrack(t) => {
            sqlx::query(
                "INSERT INTO tracks (id, publication_id, session_id, mid, rid, media_kind, codec, clock_rate, journal_path, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&t.id)
            .bind(&t.publication_id)
            .bind(&t.session_id)
            .bind(&t.mid)
            .bind(&t.rid)
            .bind(t.media_kind.as_str())
            .bind(t.codec.name())
            .bind(t.clock_rate)
            .bind(&t.journal_path)
            .bind(t.started_at)
            .execute(conn)
            .await?;
        }
        Change::InsertAsset(a) => {
            sqlx::query(
                "INSERT INTO assets (id, application_id, room_id, session_id, publication_id, recording_id, participant, asset_type, format, path, start_at, end_at, duration_ms, size_bytes, sha256, details, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&a.id)
            .bind(&a.application_id)
            .bind(&a.room_id)
            .bind(&a.session_id)
            .bind(&a.publication_id)
            .bind(&a.recording_id)
            .bind(&a.participant)
            .bind(a.asset_type.as_str())
            .bind(&a.format)
            .bind(&a.path)
            .bind(a.start_at)
            .bind(a.end_at)
            .bind(a.duration_ms)
            .bind(a.size_bytes)
            .bind(&a.sha256)
            .bind(a.details.to_string())
            .bind(a.created_at)
            .execute(conn)
            .await?;
        }
        Change::SaveRecording(rec) => save_recording(conn, rec).await?,
        Change::AssetDestination { id, key, url } => {
            sqlx::query("UPDATE assets SET object_key = $1, destination_url = $2, upload_state = 'pending', upload_error = NULL WHERE id = $3")
                .bind(key)
                .bind(url)
                .bind(id)
                .execute(conn)
                .await?;
        }
        Change::TranscriptUploadPending { recording, payload } => {
            sqlx::query(
                "INSERT INTO transcript_uploads (recording_id, payload, created_at) VALUES ($1, $2, $3)",
            )
            .bind(recording)
            .bind(payload.to_string())
            .bind(now_ms())
            .execute(conn)
            .await?;
        }
        Change::TranscriptUploadDone { recording } => {
            sqlx::query("DELETE FROM transcript_uploads WHERE recording_id = $1")
                .bind(recording)
                .execute(conn)
                .await?;
        }
        Change::CallMetadata {
            session,
            version,
            xml,
        } => {
            sqlx::query(
                "INSERT INTO call_metadata (session_id, version, received_at, xml) VALUES ($1, $2, $3, $4)",
            )
            .bind(session)
            .bind(version)
            .bind(now_ms())
            .bind(xml)
            .execute(conn)
            .await?;
        }
        Change::Event {
            id,
            application,
            kind,
            payload,
            notify,
        } => {
            crate::assets::insert_event_on(conn, id, application, *kind, payload, *notify).await?;
        }
    }
    Ok(())
}

async fn save_recording(conn: &mut sqlx::AnyConnection, rec: &Recording) -> Result<()> {
    let exists = sqlx::query("SELECT id FROM recordings WHERE id = $1")
        .bind(&rec.id)
        .fetch_optional(&mut *conn)
        .await?;
    let pauses = serde_json::to_string(&rec.pauses).expect("pauses serialize");
    if exists.is_some() {
        sqlx::query(
            "UPDATE recordings SET session_id = $1, state = $2, failure = $3, pauses = $4, started_at = $5, stopped_at = $6, updated_at = $7, failure_code = $9 WHERE id = $8",
        )
        .bind(&rec.session_id)
        .bind(rec.state.as_str())
        .bind(&rec.failure)
        .bind(pauses)
        .bind(rec.started_at)
        .bind(rec.stopped_at)
        .bind(now_ms())
        .bind(&rec.id)
        .bind(&rec.failure_code)
        .execute(conn)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO recordings (id, application_id, room_id, session_id, mode, state, failure, pauses, created_at, started_at, stopped_at, updated_at, options, credentials_sealed, failure_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&rec.id)
        .bind(&rec.application_id)
        .bind(&rec.room_id)
        .bind(&rec.session_id)
        .bind(rec.mode.as_str())
        .bind(rec.state.as_str())
        .bind(&rec.failure)
        .bind(pauses)
        .bind(rec.created_at)
        .bind(rec.started_at)
        .bind(rec.stopped_at)
        .bind(now_ms())
        .bind(rec.options.to_string())
        .bind(&rec.credentials_sealed)
        .bind(&rec.failure_code)
        .execute(conn)
        .await?;
    }
    Ok(())
}
