//! Applications (tenants) and their API keys.

use crate::repo::{hash_secret, json_column, key_prefix, now_ms};
use crate::{Db, DbError, Result};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Days this application's assets are kept (rooms may say otherwise); none: the default.
    pub retention_days: Option<i64>,
    /// `recordingOptions` for recordings whose room has none (credentials removed).
    pub default_recording_options: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub application_id: String,
    pub prefix: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Db {
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
        Ok(sqlx::query_as(
            "SELECT * FROM api_keys WHERE application_id = $1 ORDER BY created_at, id",
        )
        .bind(app)
        .fetch_all(self.pool())
        .await?)
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
        Ok(
            sqlx::query_as("SELECT * FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
                .bind(hash_secret(secret))
                .fetch_optional(self.pool())
                .await?,
        )
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
}
