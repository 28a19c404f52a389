//! Sessions (a room's meeting or one recorded call), their publications and tracks.

use crate::repo::{named_column, optional_named_column};
use crate::{Change, Db, DbError, Result};
use reel_core::{Codec, EndReason, MediaKind, PublicationKind, PublicationState, SessionState};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub state: SessionState,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    /// The SIP Call-ID of a recorded call (SIPREC); none for a meeting.
    pub call_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Publication {
    pub id: String,
    pub session_id: String,
    pub room_id: String,
    pub participant: String,
    pub kind: PublicationKind,
    /// `live` → `ended` → `processed` | `failed`.
    pub state: PublicationState,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Track {
    pub id: String,
    pub publication_id: String,
    pub session_id: String,
    pub mid: String,
    pub rid: Option<String>,
    #[sqlx(try_from = "String")]
    pub media_kind: MediaKind,
    #[sqlx(try_from = "String")]
    pub codec: Codec,
    pub clock_rate: i64,
    pub journal_path: String,
    pub started_at: i64,
}

fn session(r: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        room_id: r.try_get("room_id")?,
        state: named_column(r, "state")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: optional_named_column(r, "end_reason")?,
        call_id: r.try_get("call_id")?,
    })
}

fn publication(r: &AnyRow) -> Result<Publication> {
    Ok(Publication {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        room_id: r.try_get("room_id")?,
        participant: r.try_get("participant")?,
        kind: named_column(r, "kind")?,
        state: named_column(r, "state")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: optional_named_column(r, "end_reason")?,
        failure: r.try_get("failure")?,
    })
}

impl Db {
    pub async fn insert_session(&self, s: &Session) -> Result<()> {
        self.commit_one(Change::InsertSession(s.clone())).await
    }

    /// Keeps one version of a recorded call's RFC 7865 metadata (never served by the API:
    /// it holds the parties' addresses).
    pub async fn insert_call_metadata(&self, session: &str, version: i64, xml: &str) -> Result<()> {
        self.commit_one(Change::CallMetadata {
            session: session.into(),
            version,
            xml: xml.into(),
        })
        .await
    }

    /// Every metadata version of a call, oldest first.
    pub async fn call_metadata(&self, session: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT xml FROM call_metadata WHERE session_id = $1 ORDER BY version")
                .bind(session)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| r.try_get("xml").map_err(Into::into))
            .collect()
    }

    /// A participant's display name changed (SIPREC metadata update).
    pub async fn rename_publication(&self, id: &str, participant: &str) -> Result<()> {
        self.commit_one(Change::RenamePublication {
            id: id.into(),
            participant: participant.into(),
        })
        .await
    }

    pub async fn end_session(&self, id: &str, reason: EndReason, at: i64) -> Result<()> {
        self.commit_one(Change::EndSession {
            id: id.into(),
            reason,
            at,
        })
        .await
    }

    pub async fn get_session(&self, app: &str, id: &str) -> Result<Session> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1 AND application_id = $2")
            .bind(id)
            .bind(app)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        session(&row)
    }

    /// A session by id in any application (internal use, never from an API key).
    pub async fn session_by_id(&self, id: &str) -> Result<Session> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        session(&row)
    }

    pub async fn list_sessions(&self, app: &str, room_id: Option<&str>) -> Result<Vec<Session>> {
        let rows = match room_id {
            Some(room) => sqlx::query("SELECT * FROM sessions WHERE application_id = $1 AND room_id = $2 ORDER BY started_at, id")
                .bind(app)
                .bind(room)
                .fetch_all(self.pool())
                .await?,
            None => sqlx::query("SELECT * FROM sessions WHERE application_id = $1 ORDER BY started_at, id")
                .bind(app)
                .fetch_all(self.pool())
                .await?,
        };
        rows.iter().map(session).collect()
    }

    /// Sessions still marked live: at start-up these were interrupted by a crash.
    /// Whether the database has ever held a session (a lost or replaced database has not).
    pub async fn has_sessions(&self) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM sessions LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    pub async fn live_sessions(&self) -> Result<Vec<Session>> {
        sqlx::query("SELECT * FROM sessions WHERE state = 'live'")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(session)
            .collect()
    }

    // ---- publications and tracks ----

    pub async fn insert_publication(&self, p: &Publication) -> Result<()> {
        self.commit_one(Change::InsertPublication(p.clone())).await
    }

    pub async fn end_publication(&self, id: &str, reason: EndReason, at: i64) -> Result<()> {
        self.commit_one(Change::EndPublication {
            id: id.into(),
            reason,
            at,
        })
        .await
    }

    pub async fn set_publication_outcome(
        &self,
        id: &str,
        state: PublicationState,
        failure: Option<&str>,
    ) -> Result<()> {
        self.commit_one(Change::PublicationOutcome {
            id: id.into(),
            state,
            failure: failure.map(Into::into),
        })
        .await
    }

    pub async fn publications_in_state(&self, state: PublicationState) -> Result<Vec<Publication>> {
        sqlx::query("SELECT * FROM publications WHERE state = $1 ORDER BY started_at, id")
            .bind(state.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(publication)
            .collect()
    }

    pub async fn get_publication(&self, id: &str) -> Result<Publication> {
        let row = sqlx::query("SELECT * FROM publications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        publication(&row)
    }

    pub async fn list_publications(&self, session_id: &str) -> Result<Vec<Publication>> {
        sqlx::query("SELECT * FROM publications WHERE session_id = $1 ORDER BY started_at, id")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(publication)
            .collect()
    }

    pub async fn insert_track(&self, t: &Track) -> Result<()> {
        self.commit_one(Change::InsertTrack(t.clone())).await
    }

    pub async fn list_tracks(&self, publication_id: &str) -> Result<Vec<Track>> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM tracks WHERE publication_id = $1 ORDER BY started_at, id",
            )
            .bind(publication_id)
            .fetch_all(self.pool())
            .await?,
        )
    }

    /// Media the publication's tracks lost to a disk that refused writes, as (from, to)
    /// Unix ms, earliest first.
    pub async fn publication_gaps(&self, publication_id: &str) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT g.from_ms, g.to_ms FROM track_gaps g JOIN tracks t ON t.id = g.track_id \
             WHERE t.publication_id = $1 ORDER BY g.from_ms",
        )
        .bind(publication_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn list_session_tracks(&self, session_id: &str) -> Result<Vec<Track>> {
        Ok(
            sqlx::query_as("SELECT * FROM tracks WHERE session_id = $1 ORDER BY started_at, id")
                .bind(session_id)
                .fetch_all(self.pool())
                .await?,
        )
    }
}
