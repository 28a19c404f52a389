//! Recordings: a capture window over a room's session, with its state and pauses.

use crate::repo::named_column;
use crate::{now_ms, Change, Db, DbError, Result};
use reel_core::recording::{RecordingMode, RecordingState};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub paused_at: i64,
    pub resumed_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Recording {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub session_id: Option<String>,
    /// `stream`, `composite` or `audio`.
    pub mode: RecordingMode,
    /// starting → recording ⇄ paused → stopping → processing → [uploading →] available | failed
    pub state: RecordingState,
    /// Why it failed, in words.
    pub failure: Option<String>,
    /// Why it failed, as a stable code: `nothing_recorded`, `no_media`, `output_failed`,
    /// `internal_error`, or the destination's code (`destination_forbidden`, …).
    pub failure_code: Option<String>,
    pub pauses: Vec<Pause>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub updated_at: i64,
    /// `recordingOptions` without credentials.
    pub options: serde_json::Value,
    /// Credentials sealed with the server key; never serialized.
    pub credentials_sealed: Option<String>,
    /// Whether credentials were given (they are never returned).
    pub credentials_set: bool,
    /// Kept past every retention period while set.
    pub legal_hold: bool,
}

impl Recording {
    /// Whether this recording's events go out as webhooks (`notificationEvents`, default true).
    pub fn notifies(&self) -> bool {
        self.options["notificationEvents"].as_bool().unwrap_or(true)
    }

    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }
}

pub(crate) fn recording(r: &AnyRow) -> Result<Recording> {
    let pauses: String = r.try_get("pauses")?;
    Ok(Recording {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        room_id: r.try_get("room_id")?,
        session_id: r.try_get("session_id")?,
        mode: named_column(r, "mode")?,
        state: named_column(r, "state")?,
        failure: r.try_get("failure")?,
        failure_code: r.try_get("failure_code")?,
        pauses: serde_json::from_str(&pauses).map_err(|e| DbError::Corrupt(e.to_string()))?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        stopped_at: r.try_get("stopped_at")?,
        updated_at: r.try_get("updated_at")?,
        options: serde_json::from_str(&r.try_get::<String, _>("options")?)
            .map_err(|e| DbError::Corrupt(e.to_string()))?,
        credentials_set: r
            .try_get::<Option<String>, _>("credentials_sealed")?
            .is_some(),
        credentials_sealed: r.try_get("credentials_sealed")?,
        legal_hold: r.try_get::<i64, _>("legal_hold")? != 0,
    })
}

impl Db {
    pub async fn recording_by_id(&self, id: &str) -> Result<Recording> {
        let row = sqlx::query("SELECT * FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        recording(&row)
    }

    pub async fn get_recording(&self, app: &str, id: &str) -> Result<Recording> {
        let rec = self.recording_by_id(id).await?;
        if rec.application_id != app {
            return Err(DbError::NotFound);
        }
        Ok(rec)
    }

    pub async fn list_recordings(
        &self,
        app: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
        state: Option<RecordingState>,
    ) -> Result<Vec<Recording>> {
        sqlx::query(
            "SELECT * FROM recordings WHERE application_id = $1 AND ($2 IS NULL OR room_id = $2) AND ($3 IS NULL OR session_id = $3) AND ($4 IS NULL OR state = $4) ORDER BY created_at, id",
        )
        .bind(app)
        .bind(room_id)
        .bind(session_id)
        .bind(state.map(RecordingState::as_str))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(recording)
        .collect()
    }

    /// Recordings not yet finished: what start-up recovery must complete.
    pub async fn unfinished_recordings(&self) -> Result<Vec<Recording>> {
        sqlx::query("SELECT * FROM recordings WHERE state IN ('starting', 'recording', 'paused', 'stopping', 'processing') ORDER BY created_at")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(recording)
            .collect()
    }
}

impl Db {
    /// Saves a recording and records its events in the same transaction: the outbox never
    /// holds an event for a change that did not happen, nor misses one that did.
    pub async fn save_recording_with_events(
        &self,
        rec: &Recording,
        events: &[(reel_core::EventKind, serde_json::Value)],
    ) -> Result<()> {
        let mut changes = vec![Change::SaveRecording(rec.clone())];
        changes.extend(
            events
                .iter()
                .map(|(kind, payload)| Change::recording_event(rec, *kind, payload.clone())),
        );
        self.commit(&changes).await
    }

    pub async fn recordings_in_state(&self, state: &str) -> Result<Vec<Recording>> {
        sqlx::query("SELECT * FROM recordings WHERE state = $1 ORDER BY created_at")
            .bind(state)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::recordings::recording)
            .collect()
    }

    /// Replaces a recording's `recordingOptions` (layout changes of a live composite).
    pub async fn set_recording_options(&self, id: &str, options: &serde_json::Value) -> Result<()> {
        sqlx::query("UPDATE recordings SET options = $1 WHERE id = $2")
            .bind(options.to_string())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces a recording's sealed credentials (a retried upload with fixed ones).
    pub async fn set_recording_credentials(&self, id: &str, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE recordings SET credentials_sealed = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_legal_hold(&self, app: &str, id: &str, hold: bool) -> Result<()> {
        let done = sqlx::query("UPDATE recordings SET legal_hold = $1, updated_at = $2 WHERE id = $3 AND application_id = $4")
            .bind(i64::from(hold))
            .bind(now_ms())
            .bind(id)
            .bind(app)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
    }
}
