//! Assets (the files a recording made), deletions, and the event outbox.

use crate::repo::{corrupt, named_column, now_ms};
use crate::{Change, Db, DbError, Result};
use reel_core::{AssetType, UploadState};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Default)]
pub struct Asset {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub session_id: String,
    pub publication_id: Option<String>,
    pub recording_id: Option<String>,
    pub participant: Option<String>,
    /// `regular`, `screen`, `audio`, `composite`, `audio_mix` or `transcript`.
    pub asset_type: AssetType,
    pub format: String,
    pub path: String,
    pub start_at: i64,
    pub end_at: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
    pub details: serde_json::Value,
    pub created_at: i64,
    /// Where the asset was uploaded (`recordingOptions.destinationUrl`), as an object URL.
    pub destination_url: Option<String>,
    /// The object's key inside the destination.
    pub object_key: Option<String>,
    /// none (Reel's own storage) → pending → uploaded | failed
    pub upload_state: UploadState,
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
            upload_state: UploadState::None,
            local_copy: true,
            ..Asset::default()
        }
    }
}

/// One deletion, as the audit log keeps it: what was deleted, where, why, and how it went.
#[derive(Debug, Clone, sqlx::FromRow)]
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
        asset_type: named_column(r, "asset_type")?,
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
        upload_state: named_column(r, "upload_state")?,
        upload_error: r.try_get("upload_error")?,
        upload_attempts: r.try_get("upload_attempts")?,
        uploaded_at: r.try_get("uploaded_at")?,
        local_copy: r.try_get::<i64, _>("local_copy")? != 0,
    })
}

impl Db {
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
        self.commit_one(Change::event(app, event_type, payload.clone(), notify))
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

    /// Names the object an asset will become and queues its upload.
    pub async fn set_asset_destination(&self, id: &str, key: &str, url: &str) -> Result<()> {
        self.commit_one(Change::AssetDestination {
            id: id.into(),
            key: key.into(),
            url: url.into(),
        })
        .await
    }

    /// Transcripts whose upload was under way when the server stopped: (recording, the
    /// payload of the event still to send).
    pub async fn pending_transcript_uploads(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT recording_id, payload FROM transcript_uploads ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(recording, payload)| {
                Ok((
                    recording,
                    serde_json::from_str(&payload).map_err(crate::repo::corrupt)?,
                ))
            })
            .collect()
    }

    pub async fn count_upload_attempt(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE assets SET upload_attempts = upload_attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// `Ok(())`: uploaded and verified; `Err(reason)`: failed, the local copy kept.
    pub async fn set_upload_outcome(
        &self,
        id: &str,
        outcome: std::result::Result<(), &str>,
    ) -> Result<()> {
        match outcome {
            Ok(()) => sqlx::query("UPDATE assets SET upload_state = 'uploaded', upload_error = NULL, uploaded_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(id),
            Err(reason) => sqlx::query("UPDATE assets SET upload_state = 'failed', upload_error = $1 WHERE id = $2")
                .bind(reason)
                .bind(id),
        }
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn set_local_copy(&self, id: &str, present: bool) -> Result<()> {
        sqlx::query("UPDATE assets SET local_copy = $1 WHERE id = $2")
            .bind(i64::from(present))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn assets_of_recording(&self, recording_id: &str) -> Result<Vec<Asset>> {
        sqlx::query("SELECT * FROM assets WHERE recording_id = $1 ORDER BY created_at, id")
            .bind(recording_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::assets::asset)
            .collect()
    }

    /// The file of every asset row: what the start-up sweep keeps.
    pub async fn asset_paths(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT path FROM assets")
            .fetch_all(self.pool())
            .await?)
    }

    /// Every asset, oldest first, for the retention sweep.
    pub async fn all_assets(&self) -> Result<Vec<Asset>> {
        sqlx::query("SELECT * FROM assets ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::assets::asset)
            .collect()
    }

    /// Whether any asset other than `except` was made from the publication.
    pub async fn publication_has_other_assets(
        &self,
        publication: &str,
        except: &str,
    ) -> Result<bool> {
        let row =
            sqlx::query("SELECT id FROM assets WHERE publication_id = $1 AND id <> $2 LIMIT 1")
                .bind(publication)
                .bind(except)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }

    /// Audits a deletion; when it succeeded, also removes the asset row and records
    /// `recording.deleted`, all in one transaction.
    pub async fn record_deletion(
        &self,
        d: &Deletion,
        event: Option<(&serde_json::Value, bool)>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO deletions (id, application_id, asset_id, recording_id, room_id, location, reason, outcome, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&d.id)
            .bind(&d.application_id)
            .bind(&d.asset_id)
            .bind(&d.recording_id)
            .bind(&d.room_id)
            .bind(&d.location)
            .bind(&d.reason)
            .bind(&d.outcome)
            .bind(&d.error)
            .bind(d.created_at)
            .execute(&mut *tx)
            .await?;
        if d.outcome == "deleted" {
            sqlx::query("DELETE FROM assets WHERE id = $1")
                .bind(&d.asset_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((payload, notify)) = event {
            crate::assets::insert_event_on(
                &mut tx,
                reel_core::EventId::generate().as_str(),
                &d.application_id,
                reel_core::EventKind::RecordingDeleted,
                payload,
                notify,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The deletion audit log of one application, newest first.
    pub async fn list_deletions(&self, app: &str) -> Result<Vec<Deletion>> {
        Ok(sqlx::query_as("SELECT * FROM deletions WHERE application_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1000")
            .bind(app)
            .fetch_all(self.pool())
            .await?)
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
