//! The webhook outbox: endpoints, one delivery per (event, endpoint), and every attempt.
//! Events are written by whoever changes state; `fan_out_events` turns each new event into
//! deliveries for the endpoints subscribed at that moment, once.

use crate::{now_ms, Db, DbError, Result};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub application_id: String,
    pub url: String,
    /// Signing secret: returned once at creation, never in reads.
    pub secret: String,
    /// Event types delivered; empty means every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookEndpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// A delivery due now, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub attempts: i64,
    /// Attempts made before the current retry schedule began (a manual redelivery starts
    /// one of its own, at its first step).
    pub schedule_from: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub event_created_at: i64,
    pub endpoint: WebhookEndpoint,
}

#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    /// `pending` → `delivered` | `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// The outcome of one attempt, and what happens next.
pub struct AttemptOutcome<'a> {
    pub at: i64,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    /// `pending` (with `next_attempt_at`), `delivered` or `failed`.
    pub state: &'a str,
    pub next_attempt_at: i64,
}

fn endpoint(r: &AnyRow) -> Result<WebhookEndpoint> {
    let types: String = r.try_get("event_types")?;
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        event_types: serde_json::from_str(&types).map_err(|e| DbError::Corrupt(e.to_string()))?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn types_json(types: &[String]) -> String {
    serde_json::to_string(types).expect("strings serialize")
}

impl Db {
    pub async fn insert_endpoint(&self, e: &WebhookEndpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, application_id, url, secret, event_types, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(&e.application_id)
        .bind(&e.url)
        .bind(&e.secret)
        .bind(types_json(&e.event_types))
        .bind(i64::from(e.enabled))
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_endpoint(&self, app: &str, id: &str) -> Result<WebhookEndpoint> {
        let row =
            sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1 AND application_id = $2")
                .bind(id)
                .bind(app)
                .fetch_optional(self.pool())
                .await?
                .ok_or(DbError::NotFound)?;
        endpoint(&row)
    }

    pub async fn list_endpoints(&self, app: &str) -> Result<Vec<WebhookEndpoint>> {
        sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE application_id = $1 ORDER BY created_at, id",
        )
        .bind(app)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(endpoint)
        .collect()
    }

    /// Saves url, types and enabled; re-enabling clears the reason it was disabled.
    pub async fn update_endpoint(&self, e: &WebhookEndpoint) -> Result<()> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, event_types = $2, enabled = $3, disabled_reason = $4, updated_at = $5 WHERE id = $6 AND application_id = $7",
        )
        .bind(&e.url)
        .bind(types_json(&e.event_types))
        .bind(i64::from(e.enabled))
        .bind(if e.enabled { None } else { e.disabled_reason.clone() })
        .bind(now_ms())
        .bind(&e.id)
        .bind(&e.application_id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
    }

    pub async fn delete_endpoint(&self, app: &str, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND application_id = $2")
                .bind(id)
                .bind(app)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        sqlx::query("UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint deleted' WHERE endpoint_id = $1 AND state = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The receiver answered 410 Gone: stop sending to it.
    pub async fn disable_endpoint(&self, id: &str, reason: &str) -> Result<()> {
        sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Turns up to `limit` new events into deliveries for the endpoints subscribed now, each
    /// event exactly once (in one transaction). Returns how many events it handled.
    pub async fn fan_out_events(&self, limit: i64, now: i64) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let events = sqlx::query("SELECT id, application_id, event_type, notify FROM events WHERE fanned_out = 0 ORDER BY created_at, id LIMIT $1")
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        for ev in &events {
            let (id, app, ty): (String, String, String) = (
                ev.try_get("id")?,
                ev.try_get("application_id")?,
                ev.try_get("event_type")?,
            );
            // Kept for the record but not delivered (`notificationEvents: false`).
            let silent = ev.try_get::<i64, _>("notify")? == 0;
            let endpoints = sqlx::query(
                "SELECT * FROM webhook_endpoints WHERE application_id = $1 AND enabled = 1 AND $2 = 0",
            )
            .bind(&app)
            .bind(i64::from(silent))
            .fetch_all(&mut *tx)
            .await?;
            for ep in endpoints.iter().map(endpoint) {
                let ep = ep?;
                if !ep.wants(&ty) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, application_id, state, attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
                )
                .bind(format!("whd_{}", reel_core::random_token(16)))
                .bind(&id)
                .bind(&ep.id)
                .bind(&app)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE events SET fanned_out = 1 WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// The deliveries due at `now`: the first `per_endpoint` of each endpoint (those in
    /// flight among them), `limit` in all, so one endpoint's backlog never hides another's.
    pub async fn due_deliveries(
        &self,
        now: i64,
        per_endpoint: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        let rows = sqlx::query(
            "SELECT d.id AS delivery_id, d.attempts, d.schedule_from, e.id AS event_id, e.event_type, e.payload, e.created_at AS event_created_at, d.endpoint_id \
             FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS place \
                   FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1) d \
             JOIN events e ON e.id = d.event_id \
             WHERE d.place <= $2 ORDER BY d.next_attempt_at, d.id LIMIT $3",
        )
        .bind(now)
        .bind(per_endpoint)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let endpoint_id: String = r.try_get("endpoint_id")?;
            let ep = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
                .bind(&endpoint_id)
                .fetch_optional(self.pool())
                .await?;
            let Some(ep) = ep else { continue };
            let payload: String = r.try_get("payload")?;
            out.push(DueDelivery {
                id: r.try_get("delivery_id")?,
                attempts: r.try_get("attempts")?,
                schedule_from: r.try_get("schedule_from")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                payload: serde_json::from_str(&payload)
                    .map_err(|e| DbError::Corrupt(e.to_string()))?,
                event_created_at: r.try_get("event_created_at")?,
                endpoint: endpoint(&ep)?,
            });
        }
        Ok(out)
    }

    /// Logs an attempt and moves the delivery on, in one transaction.
    pub async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: i64,
        o: &AttemptOutcome<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO webhook_attempts (id, delivery_id, attempt, at, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(format!("wha_{}", reel_core::random_token(16)))
            .bind(delivery_id)
            .bind(attempt)
            .bind(o.at)
            .bind(o.status)
            .bind(o.error)
            .bind(o.duration_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, last_status = $4, last_error = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(o.state)
        .bind(attempt)
        .bind(o.next_attempt_at)
        .bind(o.status)
        .bind(o.error)
        .bind(o.at)
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The delivery log of one endpoint, newest first, with every attempt.
    pub async fn list_deliveries(&self, app: &str, endpoint_id: &str) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT d.*, e.event_type FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.application_id = $1 AND d.endpoint_id = $2 ORDER BY d.created_at DESC, d.id DESC LIMIT 500",
        )
        .bind(app)
        .bind(endpoint_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let attempts = sqlx::query(
                "SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(&id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|a| {
                Ok(DeliveryAttempt {
                    attempt: a.try_get("attempt")?,
                    at: a.try_get("at")?,
                    status: a.try_get("status")?,
                    error: a.try_get("error")?,
                    duration_ms: a.try_get("duration_ms")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            out.push(Delivery {
                id,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                endpoint_id: r.try_get("endpoint_id")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                attempt_log: attempts,
            });
        }
        Ok(out)
    }

    /// Manual redelivery: the delivery is due again now, whatever its state, and if that
    /// attempt fails it is retried on a fresh schedule (5 s, 5 min, …), not the old one's.
    pub async fn redeliver(
        &self,
        app: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1, schedule_from = attempts WHERE id = $2 AND endpoint_id = $3 AND application_id = $4",
        )
        .bind(now)
        .bind(delivery_id)
        .bind(endpoint_id)
        .bind(app)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Pause, Recording};

    /// The brain saving recordings while the webhook worker fans out events, on one SQLite
    /// file: each is a transaction that reads and then writes. Neither may fail for the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_write_transactions_do_not_fail_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("reel-db-busy-{}", reel_core::random_token(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..150 {
                    let rec = Recording {
                        id: format!("rec_{w}_{i}"),
                        application_id: "app".into(),
                        room_id: "room".into(),
                        session_id: None,
                        mode: reel_core::recording::RecordingMode::Stream,
                        state: reel_core::recording::RecordingState::Starting,
                        failure: None,
                        failure_code: None,
                        pauses: Vec::<Pause>::new(),
                        created_at: 0,
                        started_at: None,
                        stopped_at: None,
                        updated_at: 0,
                        options: serde_json::json!({}),
                        credentials_sealed: None,
                        credentials_set: false,
                        legal_hold: false,
                    };
                    let event = (
                        reel_core::EventKind::StatusUpdate,
                        serde_json::json!({"i": i}),
                    );
                    db.save_recording_with_events(&rec, std::slice::from_ref(&event))
                        .await
                        .unwrap();
                    db.save_recording_with_events(&rec, &[event]).await.unwrap();
                    db.fan_out_events(10, i).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
