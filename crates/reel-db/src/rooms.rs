//! Rooms, their recording policy, and publish tokens.

use crate::repo::{corrupt, hash_secret, now_ms};
use crate::{Db, DbError, Result};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct Room {
    pub id: String,
    pub application_id: String,
    pub name: String,
    pub empty_timeout_ms: i64,
    pub max_duration_ms: i64,
    /// Start a `stream` recording whenever a session starts.
    pub auto_stream_recording: bool,
    /// `recordingOptions` for recordings that do not bring their own (credentials removed).
    pub default_recording_options: serde_json::Value,
    pub default_credentials_sealed: Option<String>,
    /// Composite, audio mix, retention and transcription settings (`RoomPolicy`).
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

impl Db {
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

    /// A room, soft-deleted or not (retention still applies to a deleted room's assets).
    pub async fn room_by_id_any(&self, id: &str) -> Result<crate::Room> {
        let row = sqlx::query("SELECT * FROM rooms WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        crate::rooms::room(&row)
    }
}
