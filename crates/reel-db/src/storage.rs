//! Uploads, retention and the deletion audit log.

use crate::{deletion, now_ms, Asset, Db, DbError, Deletion, Recording, Result};

impl Db {
    /// A room, soft-deleted or not (retention still applies to a deleted room's assets).
    pub async fn room_by_id_any(&self, id: &str) -> Result<crate::Room> {
        let row = sqlx::query("SELECT * FROM rooms WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        crate::repo::room(&row)
    }

    /// Names the object an asset will become and queues its upload.
    pub async fn set_asset_destination(&self, id: &str, key: &str, url: &str) -> Result<()> {
        sqlx::query("UPDATE assets SET object_key = $1, destination_url = $2, upload_state = 'pending', upload_error = NULL WHERE id = $3")
            .bind(key)
            .bind(url)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
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
            .map(crate::repo::asset)
            .collect()
    }

    /// Every asset, oldest first, for the retention sweep.
    pub async fn all_assets(&self) -> Result<Vec<Asset>> {
        sqlx::query("SELECT * FROM assets ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::repo::asset)
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

    pub async fn application_retention_days(&self, app: &str) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT retention_days FROM applications WHERE id = $1")
                .bind(app)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// The application's default `recordingOptions` and sealed credentials.
    pub async fn application_defaults(
        &self,
        app: &str,
    ) -> Result<(serde_json::Value, Option<String>)> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT default_recording_options, default_credentials_sealed FROM applications WHERE id = $1",
        )
        .bind(app)
        .fetch_optional(self.pool())
        .await?;
        let (json, sealed) = row.ok_or(DbError::NotFound)?;
        Ok((
            serde_json::from_str(&json).map_err(|e| DbError::Corrupt(e.to_string()))?,
            sealed,
        ))
    }

    pub async fn set_application_defaults(
        &self,
        app: &str,
        options: &serde_json::Value,
        sealed_credentials: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE applications SET default_recording_options = $1, default_credentials_sealed = $2 WHERE id = $3")
            .bind(options.to_string())
            .bind(sealed_credentials)
            .bind(app)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_application_retention_days(&self, app: &str, days: Option<i64>) -> Result<()> {
        let done = sqlx::query("UPDATE applications SET retention_days = $1 WHERE id = $2")
            .bind(days)
            .bind(app)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
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
            crate::repo::insert_event_on(
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
        sqlx::query("SELECT * FROM deletions WHERE application_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1000")
            .bind(app)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(deletion)
            .collect()
    }
}
