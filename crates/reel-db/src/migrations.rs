//! Forward-only schema migrations, applied at start in order, each once.

use crate::{Db, Result};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    name TEXT NOT NULL,
    empty_timeout_ms BIGINT NOT NULL,
    max_duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE publish_tokens (
    hash TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX sessions_room ON sessions(room_id, started_at);
CREATE TABLE publications (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    room_id TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    failure TEXT
);
CREATE INDEX publications_session ON publications(session_id);
CREATE INDEX publications_state ON publications(state);
CREATE TABLE tracks (
    id TEXT PRIMARY KEY,
    publication_id TEXT NOT NULL REFERENCES publications(id),
    session_id TEXT NOT NULL,
    mid TEXT NOT NULL,
    media_kind TEXT NOT NULL,
    codec TEXT NOT NULL,
    clock_rate BIGINT NOT NULL,
    journal_path TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX tracks_publication ON tracks(publication_id);
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    publication_id TEXT,
    participant TEXT,
    asset_type TEXT NOT NULL,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX assets_session ON assets(session_id, asset_type);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_app ON events(application_id, created_at);
"#,
    ),
    (2, "ALTER TABLE tracks ADD COLUMN rid TEXT"),
    (
        3,
        r#"
ALTER TABLE events ADD COLUMN fanned_out BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_fan_out ON events(fanned_out, created_at);
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    event_types TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    disabled_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints(application_id);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    application_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at);
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);
"#,
    ),
    (4, "ALTER TABLE rooms ADD COLUMN deleted_at BIGINT"),
    (
        5,
        r#"
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    failure TEXT,
    pauses TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    stopped_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX recordings_room ON recordings(room_id, created_at);
CREATE INDEX recordings_session ON recordings(session_id);
CREATE INDEX recordings_state ON recordings(state);
ALTER TABLE assets ADD COLUMN recording_id TEXT;
CREATE INDEX assets_recording ON assets(recording_id);
ALTER TABLE rooms ADD COLUMN auto_stream_recording BIGINT NOT NULL DEFAULT 1
"#,
    ),
    (
        6,
        r#"
ALTER TABLE recordings ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE recordings ADD COLUMN credentials_sealed TEXT;
ALTER TABLE events ADD COLUMN notify BIGINT NOT NULL DEFAULT 1
"#,
    ),
    (
        7,
        r#"
ALTER TABLE rooms ADD COLUMN default_recording_options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rooms ADD COLUMN default_credentials_sealed TEXT
"#,
    ),
    (
        8,
        "ALTER TABLE rooms ADD COLUMN policy TEXT NOT NULL DEFAULT '{}'",
    ),
    (
        9,
        r#"
ALTER TABLE assets ADD COLUMN object_key TEXT;
ALTER TABLE assets ADD COLUMN destination_url TEXT;
ALTER TABLE assets ADD COLUMN upload_state TEXT NOT NULL DEFAULT 'none';
ALTER TABLE assets ADD COLUMN upload_error TEXT;
ALTER TABLE assets ADD COLUMN upload_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN uploaded_at BIGINT;
ALTER TABLE assets ADD COLUMN local_copy BIGINT NOT NULL DEFAULT 1;
ALTER TABLE recordings ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN retention_days BIGINT;
CREATE TABLE deletions (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    recording_id TEXT,
    room_id TEXT NOT NULL,
    location TEXT NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX deletions_app ON deletions(application_id, created_at)
"#,
    ),
    (
        10,
        r#"
ALTER TABLE applications ADD COLUMN default_recording_options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE applications ADD COLUMN default_credentials_sealed TEXT
"#,
    ),
    (
        11,
        r#"
ALTER TABLE sessions ADD COLUMN call_id TEXT;
CREATE TABLE call_metadata (
    session_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (session_id, version)
)
"#,
    ),
    (
        12,
        // The attempt count when the delivery's current retry schedule began: 0, or the
        // count at its last manual redelivery (which starts a schedule of its own).
        "ALTER TABLE webhook_deliveries ADD COLUMN schedule_from BIGINT NOT NULL DEFAULT 0",
    ),
    (
        13,
        // A failed recording's stable code beside `failure`, its reason in words.
        "ALTER TABLE recordings ADD COLUMN failure_code TEXT",
    ),
    (
        14,
        // A transcript going to a destination: written with its asset rows, removed with its
        // event, so a restart in between finishes the upload and sends the event.
        "CREATE TABLE transcript_uploads (recording_id TEXT PRIMARY KEY REFERENCES recordings(id), payload TEXT NOT NULL, created_at BIGINT NOT NULL)",
    ),
    (
        15,
        // Media a track lost while its journal's disk refused writes (full, read-only):
        // the stream asset says it is truncated and where.
        "CREATE TABLE track_gaps (track_id TEXT NOT NULL REFERENCES tracks(id), from_ms BIGINT NOT NULL, to_ms BIGINT NOT NULL, PRIMARY KEY (track_id, from_ms))",
    ),
];

pub async fn run(db: &Db) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(db.pool())
    .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = db.begin_write().await?;
        let done: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
