//! Repositories: one function per question the service asks. API-facing reads take the
//! application id, so a key of one application can never see another's rows.

use crate::{Change, Db, DbError, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// API keys and publish tokens are stored as SHA-256: a leaked database leaks no secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What lists show of a key so people can tell keys apart. Keys Reel generates start with
/// `reel_` and 35+ random characters after the 12 shown; a key an operator chose
/// (`REEL_ADMIN_KEY`) may be short or guessable, so none of it is kept.
pub fn key_prefix(secret: &str) -> String {
    let generated = secret.starts_with("reel_")
        && secret.len() >= 40
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if generated {
        secret.chars().take(12).collect()
    } else {
        "(chosen key)".into()
    }
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Days this application's assets are kept (rooms may say otherwise); none: the default.
    pub retention_days: Option<i64>,
    /// `recordingOptions` for recordings whose room has none (credentials removed).
    #[schema(value_type = Object)]
    pub default_recording_options: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub application_id: String,
    pub prefix: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Room {
    pub id: String,
    pub application_id: String,
    pub name: String,
    pub empty_timeout_ms: i64,
    pub max_duration_ms: i64,
    /// Start a `stream` recording whenever a session starts.
    pub auto_stream_recording: bool,
    /// `recordingOptions` for recordings that do not bring their own (credentials removed).
    #[schema(value_type = Object)]
    pub default_recording_options: serde_json::Value,
    #[serde(skip)]
    pub default_credentials_sealed: Option<String>,
    /// Composite, audio mix, retention and transcription settings (`RoomPolicy`).
    #[schema(value_type = Object)]
    pub policy: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct PublishToken {
    pub room_id: String,
    pub participant: String,
    pub kind: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub state: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    /// The SIP Call-ID of a recorded call (SIPREC); none for a meeting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Publication {
    pub id: String,
    pub session_id: String,
    pub room_id: String,
    pub participant: String,
    pub kind: String,
    /// `live` → `ended` → `processed` | `failed`.
    pub state: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Track {
    pub id: String,
    pub publication_id: String,
    pub session_id: String,
    pub mid: String,
    pub rid: Option<String>,
    pub media_kind: String,
    pub codec: String,
    pub clock_rate: i64,
    #[serde(skip)]
    pub journal_path: String,
    pub started_at: i64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Asset {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub session_id: String,
    pub publication_id: Option<String>,
    pub recording_id: Option<String>,
    pub participant: Option<String>,
    pub asset_type: String,
    pub format: String,
    #[serde(skip)]
    pub path: String,
    pub start_at: i64,
    pub end_at: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: i64,
    /// Where the asset was uploaded (`recordingOptions.destinationUrl`), as an object URL.
    pub destination_url: Option<String>,
    /// The object's key inside the destination.
    #[serde(skip)]
    pub object_key: Option<String>,
    /// none (Reel's own storage) → pending → uploaded | failed
    pub upload_state: String,
    /// `code: message` of the last failed upload, credentials removed.
    pub upload_error: Option<String>,
    pub upload_attempts: i64,
    pub uploaded_at: Option<i64>,
    /// Whether Reel still holds the file (removed after a verified upload unless kept).
    pub local_copy: bool,
}

impl Asset {
    /// The fields of an asset just made on Reel's own storage: not uploaded (anywhere yet),
    /// held locally. A new asset is written `Asset { id, …, ..Asset::on_local_disk() }`.
    pub fn on_local_disk() -> Asset {
        Asset {
            upload_state: "none".into(),
            local_copy: true,
            ..Asset::default()
        }
    }
}

/// One deletion, as the audit log keeps it: what was deleted, where, why, and how it went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deletion {
    pub id: String,
    pub application_id: String,
    pub asset_id: String,
    pub recording_id: Option<String>,
    pub room_id: String,
    /// The file or object URL.
    pub location: String,
    /// `retention` (the sweeper) or `api` (DELETE /v1/assets/{id}).
    pub reason: String,
    /// `deleted`, or `failed` (tried again at the next sweep).
    pub outcome: String,
    pub error: Option<String>,
    pub created_at: i64,
}

pub(crate) fn deletion(r: &AnyRow) -> Result<Deletion> {
    Ok(Deletion {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        asset_id: r.try_get("asset_id")?,
        recording_id: r.try_get("recording_id")?,
        room_id: r.try_get("room_id")?,
        location: r.try_get("location")?,
        reason: r.try_get("reason")?,
        outcome: r.try_get("outcome")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
    })
}

fn api_key(r: &AnyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        prefix: r.try_get("prefix")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

pub(crate) fn room(r: &AnyRow) -> Result<Room> {
    Ok(Room {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        name: r.try_get("name")?,
        empty_timeout_ms: r.try_get("empty_timeout_ms")?,
        max_duration_ms: r.try_get("max_duration_ms")?,
        auto_stream_recording: r.try_get::<i64, _>("auto_stream_recording")? != 0,
        default_recording_options: serde_json::from_str(
            &r.try_get::<String, _>("default_recording_options")?,
        )
        .map_err(corrupt)?,
        default_credentials_sealed: r.try_get("default_credentials_sealed")?,
        policy: serde_json::from_str(&r.try_get::<String, _>("policy")?).map_err(corrupt)?,
        created_at: r.try_get("created_at")?,
    })
}

fn session(r: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        room_id: r.try_get("room_id")?,
        state: r.try_get("state")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
        call_id: r.try_get("call_id")?,
    })
}

fn publication(r: &AnyRow) -> Result<Publication> {
    Ok(Publication {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        room_id: r.try_get("room_id")?,
        participant: r.try_get("participant")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
        failure: r.try_get("failure")?,
    })
}

fn track(r: &AnyRow) -> Result<Track> {
    Ok(Track {
        id: r.try_get("id")?,
        publication_id: r.try_get("publication_id")?,
        session_id: r.try_get("session_id")?,
        mid: r.try_get("mid")?,
        rid: r.try_get("rid")?,
        media_kind: r.try_get("media_kind")?,
        codec: r.try_get("codec")?,
        clock_rate: r.try_get("clock_rate")?,
        journal_path: r.try_get("journal_path")?,
        started_at: r.try_get("started_at")?,
    })
}

pub(crate) fn asset(r: &AnyRow) -> Result<Asset> {
    let details: String = r.try_get("details")?;
    Ok(Asset {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        room_id: r.try_get("room_id")?,
        session_id: r.try_get("session_id")?,
        publication_id: r.try_get("publication_id")?,
        recording_id: r.try_get("recording_id")?,
        participant: r.try_get("participant")?,
        asset_type: r.try_get("asset_type")?,
        format: r.try_get("format")?,
        path: r.try_get("path")?,
        start_at: r.try_get("start_at")?,
        end_at: r.try_get("end_at")?,
        duration_ms: r.try_get("duration_ms")?,
        size_bytes: r.try_get("size_bytes")?,
        sha256: r.try_get("sha256")?,
        details: serde_json::from_str(&details).map_err(corrupt)?,
        created_at: r.try_get("created_at")?,
        destination_url: r.try_get("destination_url")?,
        object_key: r.try_get("object_key")?,
        upload_state: r.try_get("upload_state")?,
        upload_error: r.try_get("upload_error")?,
        upload_attempts: r.try_get("upload_attempts")?,
        uploaded_at: r.try_get("uploaded_at")?,
        local_copy: r.try_get::<i64, _>("local_copy")? != 0,
    })
}

impl Db {
    // ---- applications and keys ----

    pub async fn ensure_application(&self, id: &str, name: &str) -> Result<()> {
        let exists = sqlx::query("SELECT id FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(now_ms())
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    pub async fn insert_application(&self, app: &Application) -> Result<()> {
        sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&app.id)
            .bind(&app.name)
            .bind(app.created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn get_application(&self, id: &str) -> Result<Application> {
        let row = sqlx::query("SELECT * FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        Ok(Application {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            retention_days: row.try_get("retention_days")?,
            default_recording_options: json_column(&row, "default_recording_options")?,
        })
    }

    pub async fn list_applications(&self) -> Result<Vec<Application>> {
        let rows = sqlx::query("SELECT * FROM applications ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Application {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    retention_days: r.try_get("retention_days")?,
                    default_recording_options: json_column(r, "default_recording_options")?,
                })
            })
            .collect()
    }

    /// Keys of one application, newest last; secrets are never stored, only prefix and hash.
    pub async fn list_api_keys(&self, app: &str) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE application_id = $1 ORDER BY created_at, id")
            .bind(app)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(api_key)
            .collect()
    }

    /// Revokes a live key of `app`; NotFound when there is none (or it is another app's).
    pub async fn revoke_api_key(&self, app: &str, key_id: &str) -> Result<()> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND application_id = $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .bind(app)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
    }

    pub async fn insert_api_key(
        &self,
        id: &str,
        application_id: &str,
        secret: &str,
        role: &str,
    ) -> Result<()> {
        let prefix = key_prefix(secret);
        sqlx::query(
            "INSERT INTO api_keys (id, application_id, hash, prefix, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(application_id)
        .bind(hash_secret(secret))
        .bind(prefix)
        .bind(role)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn count_api_keys(&self, role: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE role = $1 AND revoked_at IS NULL",
        )
        .bind(role)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The live key with this secret, if any.
    pub async fn find_api_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash_secret(secret))
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(api_key)
            .transpose()
    }

    // ---- rooms and publish tokens ----

    pub async fn insert_room(&self, room: &Room) -> Result<()> {
        sqlx::query(
            "INSERT INTO rooms (id, application_id, name, empty_timeout_ms, max_duration_ms, auto_stream_recording, created_at, default_recording_options, default_credentials_sealed, policy) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&room.id)
        .bind(&room.application_id)
        .bind(&room.name)
        .bind(room.empty_timeout_ms)
        .bind(room.max_duration_ms)
                .bind(i64::from(room.auto_stream_recording))
        .bind(room.created_at)
                .bind(room.default_recording_options.to_string())
        .bind(&room.default_credentials_sealed)
        .bind(room.policy.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A room by id, within an application (or any application when `app` is None).
    pub async fn get_room(&self, app: Option<&str>, id: &str) -> Result<Room> {
        let row = sqlx::query("SELECT * FROM rooms WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        let room = room(&row)?;
        match app {
            Some(app) if app != room.application_id => Err(DbError::NotFound),
            _ => Ok(room),
        }
    }

    pub async fn update_room(&self, room: &Room) -> Result<()> {
        sqlx::query(
            "UPDATE rooms SET name = $1, empty_timeout_ms = $2, max_duration_ms = $3, auto_stream_recording = $4, default_recording_options = $7, default_credentials_sealed = $8, policy = $9 WHERE id = $5 AND application_id = $6",
        )
        .bind(&room.name)
        .bind(room.empty_timeout_ms)
        .bind(room.max_duration_ms)
        .bind(i64::from(room.auto_stream_recording))
                .bind(&room.id)
        .bind(&room.application_id)
                .bind(room.default_recording_options.to_string())
        .bind(&room.default_credentials_sealed)
        .bind(room.policy.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the room: it disappears from the API and its publish tokens stop working.
    /// The row stays (marked deleted) because sessions and assets keep referring to it.
    pub async fn delete_room(&self, app: &str, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE rooms SET deleted_at = $1 WHERE id = $2 AND application_id = $3 AND deleted_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .bind(app)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        sqlx::query("DELETE FROM publish_tokens WHERE room_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_rooms(&self, app: &str) -> Result<Vec<Room>> {
        sqlx::query("SELECT * FROM rooms WHERE application_id = $1 AND deleted_at IS NULL ORDER BY created_at, id")
            .bind(app)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(room)
            .collect()
    }

    pub async fn insert_publish_token(&self, secret: &str, token: &PublishToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO publish_tokens (hash, room_id, participant, kind, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash_secret(secret))
        .bind(&token.room_id)
        .bind(&token.participant)
        .bind(&token.kind)
        .bind(token.expires_at)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn find_publish_token(&self, secret: &str) -> Result<Option<PublishToken>> {
        let row = sqlx::query("SELECT * FROM publish_tokens WHERE hash = $1")
            .bind(hash_secret(secret))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(PublishToken {
                room_id: r.try_get("room_id")?,
                participant: r.try_get("participant")?,
                kind: r.try_get("kind")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    // ---- sessions ----

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

    pub async fn end_session(&self, id: &str, reason: &str, at: i64) -> Result<()> {
        self.commit_one(Change::EndSession {
            id: id.into(),
            reason: reason.into(),
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

    pub async fn end_publication(&self, id: &str, reason: &str, at: i64) -> Result<()> {
        self.commit_one(Change::EndPublication {
            id: id.into(),
            reason: reason.into(),
            at,
        })
        .await
    }

    pub async fn set_publication_outcome(
        &self,
        id: &str,
        state: &str,
        failure: Option<&str>,
    ) -> Result<()> {
        self.commit_one(Change::PublicationOutcome {
            id: id.into(),
            state: state.into(),
            failure: failure.map(Into::into),
        })
        .await
    }

    pub async fn publications_in_state(&self, state: &str) -> Result<Vec<Publication>> {
        sqlx::query("SELECT * FROM publications WHERE state = $1 ORDER BY started_at, id")
            .bind(state)
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
        sqlx::query("SELECT * FROM tracks WHERE publication_id = $1 ORDER BY started_at, id")
            .bind(publication_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(track)
            .collect()
    }

    pub async fn list_session_tracks(&self, session_id: &str) -> Result<Vec<Track>> {
        sqlx::query("SELECT * FROM tracks WHERE session_id = $1 ORDER BY started_at, id")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(track)
            .collect()
    }

    // ---- assets and events ----

    pub async fn insert_asset(&self, a: &Asset) -> Result<()> {
        self.commit_one(Change::InsertAsset(a.clone())).await
    }

    pub async fn get_asset(&self, app: &str, id: &str) -> Result<Asset> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = $1 AND application_id = $2")
            .bind(id)
            .bind(app)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        asset(&row)
    }

    pub async fn list_assets(
        &self,
        app: &str,
        session_id: Option<&str>,
        asset_type: Option<&str>,
        recording_id: Option<&str>,
    ) -> Result<Vec<Asset>> {
        // Optional filters as `(param IS NULL OR col = param)` keep one portable statement.
        sqlx::query(
            "SELECT * FROM assets WHERE application_id = $1 AND ($2 IS NULL OR session_id = $2) AND ($3 IS NULL OR asset_type = $3) AND ($4 IS NULL OR recording_id = $4) ORDER BY created_at, id",
        )
        .bind(app)
        .bind(session_id)
        .bind(asset_type)
        .bind(recording_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(asset)
        .collect()
    }

    /// An asset in any application: for signed links, whose signature is the permission.
    pub async fn asset_by_id(&self, id: &str) -> Result<Asset> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        asset(&row)
    }

    /// The asset a recording made of a publication, if any (one per pair).
    pub async fn assets_of_publication(
        &self,
        publication_id: &str,
        recording_id: &str,
    ) -> Result<Vec<Asset>> {
        sqlx::query("SELECT * FROM assets WHERE publication_id = $1 AND recording_id = $2")
            .bind(publication_id)
            .bind(recording_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(asset)
            .collect()
    }

    /// Records an event in the outbox; with `notify` false it is kept but not delivered.
    pub async fn insert_event(
        &self,
        app: &str,
        event_type: reel_core::EventKind,
        payload: &serde_json::Value,
        notify: bool,
    ) -> Result<()> {
        self.commit_one(Change::Event {
            application: app.into(),
            kind: event_type,
            payload: payload.clone(),
            notify,
        })
        .await
    }

    /// The outbox of one application, oldest first: (id, type, payload, created_at).
    pub async fn list_events(
        &self,
        app: &str,
    ) -> Result<Vec<(String, String, serde_json::Value, i64)>> {
        let rows = sqlx::query("SELECT id, event_type, payload, created_at FROM events WHERE application_id = $1 ORDER BY created_at, id")
            .bind(app)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let p: String = r.try_get("payload")?;
                Ok((
                    r.try_get("id")?,
                    r.try_get("event_type")?,
                    serde_json::from_str(&p).map_err(corrupt)?,
                    r.try_get("created_at")?,
                ))
            })
            .collect()
    }
}

/// Appends an event to the outbox on `conn`: inside a caller's transaction, so the event is
/// written if and only if the change it describes is.
pub(crate) async fn insert_event_on(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    app: &str,
    event_type: reel_core::EventKind,
    payload: &serde_json::Value,
    notify: bool,
) -> Result<()> {
    sqlx::query("INSERT INTO events (id, application_id, event_type, payload, created_at, notify) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(app)
        .bind(event_type.as_str())
        .bind(payload.to_string())
        .bind(now_ms())
        .bind(i64::from(notify))
        .execute(conn)
        .await?;
    Ok(())
}

fn json_column(r: &AnyRow, name: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&r.try_get::<String, _>(name)?).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL for tests: `REEL_TEST_POSTGRES_URL` (scripts/test starts a cluster). In CI
    /// its absence is a failure; elsewhere the PostgreSQL half says loudly that it did not run.
    pub(crate) async fn postgres() -> Option<Db> {
        let Ok(admin) = std::env::var("REEL_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide REEL_TEST_POSTGRES_URL"
            );
            eprintln!("NOT RUN on PostgreSQL: set REEL_TEST_POSTGRES_URL (scripts/test does)");
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("reel_unit_{}", reel_core::random_token(10));
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        // The name is ours: a fixed prefix and an alphanumeric token.
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
        sqlx::query(create).execute(&pool).await.unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(Db::connect(&url).await.unwrap())
    }

    async fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("reel-db-test-{}", reel_core::random_token(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db", dir.display());
        // A second connect re-runs migrations harmlessly.
        Db::connect(&url).await.unwrap();
        Db::connect(&url).await.unwrap()
    }

    async fn round_trip_and_optional_filters(db: Db) {
        db.ensure_application("app_a", "a").await.unwrap();
        db.ensure_application("app_a", "a").await.unwrap();
        db.insert_api_key("key_1", "app_a", "reel_secret_value", "admin")
            .await
            .unwrap();
        let key = db.find_api_key("reel_secret_value").await.unwrap().unwrap();
        // Not of Reel's making (too short): none of it is kept.
        assert_eq!(key.prefix, "(chosen key)");
        let generated = format!("reel_admin_{}", "x".repeat(32));
        assert_eq!(key_prefix(&generated), "reel_admin_x");
        assert_eq!(key_prefix("hunter2hunter2hunter2"), "(chosen key)");
        assert!(db.find_api_key("wrong").await.unwrap().is_none());
        assert_eq!(db.count_api_keys("admin").await.unwrap(), 1);
        db.insert_application(&Application {
            id: "app_b".into(),
            name: "b".into(),
            created_at: 1,
            retention_days: None,
            default_recording_options: serde_json::json!({}),
        })
        .await
        .unwrap();
        db.insert_api_key("key_2", "app_b", "reel_other_secret", "app")
            .await
            .unwrap();
        assert_eq!(db.list_applications().await.unwrap().len(), 2);
        assert_eq!(db.get_application("app_b").await.unwrap().name, "b");
        assert_eq!(db.list_api_keys("app_b").await.unwrap().len(), 1);
        assert!(matches!(
            db.revoke_api_key("app_a", "key_2").await,
            Err(DbError::NotFound)
        ));
        db.revoke_api_key("app_b", "key_2").await.unwrap();
        assert!(db
            .find_api_key("reel_other_secret")
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            db.revoke_api_key("app_b", "key_2").await,
            Err(DbError::NotFound)
        ));
        let room = Room {
            id: "room_x".into(),
            application_id: "app_a".into(),
            name: "x".into(),
            empty_timeout_ms: 1,
            max_duration_ms: 2,
            auto_stream_recording: true,
            default_recording_options: serde_json::json!({}),
            default_credentials_sealed: None,
            policy: serde_json::json!({}),
            created_at: 3,
        };
        db.insert_room(&room).await.unwrap();
        assert!(matches!(
            db.get_room(Some("app_b"), "room_x").await,
            Err(DbError::NotFound)
        ));
        assert_eq!(
            db.get_room(Some("app_a"), "room_x").await.unwrap().name,
            "x"
        );
        let session = Session {
            id: "ses_1".into(),
            application_id: "app_a".into(),
            room_id: "room_x".into(),
            state: "live".into(),
            started_at: 5,
            ended_at: None,
            end_reason: None,
            call_id: None,
        };
        db.insert_session(&session).await.unwrap();
        assert_eq!(
            db.list_sessions("app_a", Some("room_x"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(db.list_sessions("app_a", None).await.unwrap().len(), 1);
        assert_eq!(db.live_sessions().await.unwrap().len(), 1);
        db.end_session("ses_1", "empty", 9).await.unwrap();
        assert_eq!(
            db.session_by_id("ses_1")
                .await
                .unwrap()
                .end_reason
                .as_deref(),
            Some("empty")
        );
        let publication = Publication {
            id: "pub_1".into(),
            session_id: "ses_1".into(),
            room_id: "room_x".into(),
            participant: "alice".into(),
            kind: "camera".into(),
            state: "live".into(),
            started_at: 6,
            ended_at: None,
            end_reason: None,
            failure: None,
        };
        db.insert_publication(&publication).await.unwrap();
        db.insert_track(&Track {
            id: "trk_1".into(),
            publication_id: "pub_1".into(),
            session_id: "ses_1".into(),
            mid: "0".into(),
            rid: Some("h".into()),
            media_kind: "video".into(),
            codec: "vp8".into(),
            clock_rate: 90_000,
            journal_path: "/j".into(),
            started_at: 7,
        })
        .await
        .unwrap();
        assert_eq!(
            db.list_tracks("pub_1").await.unwrap()[0].rid.as_deref(),
            Some("h")
        );
        db.end_publication("pub_1", "left", 8).await.unwrap();
        assert_eq!(db.publications_in_state("ended").await.unwrap().len(), 1);
        db.set_publication_outcome("pub_1", "failed", Some("why"))
            .await
            .unwrap();
        assert_eq!(
            db.get_publication("pub_1")
                .await
                .unwrap()
                .failure
                .as_deref(),
            Some("why")
        );
        let a = Asset {
            id: "ast_1".into(),
            application_id: "app_a".into(),
            room_id: "room_x".into(),
            session_id: "ses_1".into(),
            publication_id: Some("pub_1".into()),
            recording_id: Some("rec_1".into()),
            participant: Some("alice".into()),
            asset_type: "regular".into(),
            format: "webm".into(),
            path: "/x".into(),
            start_at: 0,
            end_at: 1,
            duration_ms: 1,
            size_bytes: 1,
            sha256: "00".into(),
            details: serde_json::json!({"sync": "arrival"}),
            created_at: 0,
            ..Asset::on_local_disk()
        };
        db.insert_asset(&a).await.unwrap();
        assert_eq!(
            db.list_assets("app_a", None, None, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            db.list_assets("app_a", Some("ses_1"), Some("regular"), Some("rec_1"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            db.list_assets("app_a", Some("ses_1"), Some("screen"), None)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            db.list_assets("app_b", None, None, None)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            db.get_asset("app_a", "ast_1").await.unwrap().details["sync"],
            "arrival"
        );
        assert!(matches!(
            db.get_asset("app_b", "ast_1").await,
            Err(DbError::NotFound)
        ));
        db.insert_event(
            "app_a",
            reel_core::EventKind::StreamSuccess,
            &serde_json::json!({"a": 1}),
            true,
        )
        .await
        .unwrap();
        assert_eq!(db.list_events("app_a").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn repositories_on_sqlite() {
        round_trip_and_optional_filters(sqlite().await).await;
    }

    #[tokio::test]
    async fn repositories_on_postgres() {
        if let Some(db) = postgres().await {
            assert!(!db.is_sqlite());
            round_trip_and_optional_filters(db).await;
        }
    }
}
