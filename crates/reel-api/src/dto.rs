//! What `/v1` returns of each resource: the wire form, apart from the database rows, so a
//! column can be added or renamed without the API changing, and what must never leave the
//! server (sealed credentials, signing secrets, file paths, object keys) is not a field here
//! at all instead of a `skip` someone may forget.

use reel_core::recording::{RecordingMode, RecordingState};
use reel_core::{
    AssetType, Codec, EndReason, MediaKind, PublicationKind, PublicationState, SessionState,
    UploadState,
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
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

impl From<reel_db::Application> for Application {
    fn from(a: reel_db::Application) -> Self {
        Application {
            id: a.id,
            name: a.name,
            created_at: a.created_at,
            retention_days: a.retention_days,
            default_recording_options: a.default_recording_options,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub application_id: String,
    /// The key's first characters, to tell keys apart; the key itself is shown once.
    pub prefix: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<reel_db::ApiKey> for ApiKey {
    fn from(k: reel_db::ApiKey) -> Self {
        ApiKey {
            id: k.id,
            application_id: k.application_id,
            prefix: k.prefix,
            role: k.role,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
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
    /// Composite, audio mix, retention and transcription settings (`RoomPolicy`).
    #[schema(value_type = Object)]
    pub policy: serde_json::Value,
    pub created_at: i64,
}

impl From<reel_db::Room> for Room {
    fn from(r: reel_db::Room) -> Self {
        Room {
            id: r.id,
            application_id: r.application_id,
            name: r.name,
            empty_timeout_ms: r.empty_timeout_ms,
            max_duration_ms: r.max_duration_ms,
            auto_stream_recording: r.auto_stream_recording,
            default_recording_options: r.default_recording_options,
            policy: r.policy,
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub state: SessionState,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    /// The SIP Call-ID of a recorded call (SIPREC); none for a meeting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

impl From<reel_db::Session> for Session {
    fn from(s: reel_db::Session) -> Self {
        Session {
            id: s.id,
            application_id: s.application_id,
            room_id: s.room_id,
            state: s.state,
            started_at: s.started_at,
            ended_at: s.ended_at,
            end_reason: s.end_reason,
            call_id: s.call_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
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

impl From<reel_db::Publication> for Publication {
    fn from(p: reel_db::Publication) -> Self {
        Publication {
            id: p.id,
            session_id: p.session_id,
            room_id: p.room_id,
            participant: p.participant,
            kind: p.kind,
            state: p.state,
            started_at: p.started_at,
            ended_at: p.ended_at,
            end_reason: p.end_reason,
            failure: p.failure,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Track {
    pub id: String,
    pub publication_id: String,
    pub session_id: String,
    pub mid: String,
    pub rid: Option<String>,
    pub media_kind: MediaKind,
    #[schema(value_type = String)]
    pub codec: Codec,
    pub clock_rate: i64,
    pub started_at: i64,
}

impl From<reel_db::Track> for Track {
    fn from(t: reel_db::Track) -> Self {
        Track {
            id: t.id,
            publication_id: t.publication_id,
            session_id: t.session_id,
            mid: t.mid,
            rid: t.rid,
            media_kind: t.media_kind,
            codec: t.codec,
            clock_rate: t.clock_rate,
            started_at: t.started_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Pause {
    pub paused_at: i64,
    pub resumed_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Recording {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub session_id: Option<String>,
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
    #[serde(rename = "recordingOptions")]
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// Whether credentials were given (they are never returned).
    pub credentials_set: bool,
    /// Kept past every retention period while set.
    pub legal_hold: bool,
}

impl From<reel_db::Recording> for Recording {
    fn from(r: reel_db::Recording) -> Self {
        Recording {
            id: r.id,
            application_id: r.application_id,
            room_id: r.room_id,
            session_id: r.session_id,
            mode: r.mode,
            state: r.state,
            failure: r.failure,
            failure_code: r.failure_code,
            pauses: r
                .pauses
                .into_iter()
                .map(|p| Pause {
                    paused_at: p.paused_at,
                    resumed_at: p.resumed_at,
                })
                .collect(),
            created_at: r.created_at,
            started_at: r.started_at,
            stopped_at: r.stopped_at,
            updated_at: r.updated_at,
            options: r.options,
            credentials_set: r.credentials_set,
            legal_hold: r.legal_hold,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Asset {
    pub id: String,
    pub application_id: String,
    pub room_id: String,
    pub session_id: String,
    pub publication_id: Option<String>,
    pub recording_id: Option<String>,
    pub participant: Option<String>,
    pub asset_type: AssetType,
    pub format: String,
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
    /// none (Reel's own storage) → pending → uploaded | failed
    pub upload_state: UploadState,
    /// `code: message` of the last failed upload, credentials removed.
    pub upload_error: Option<String>,
    pub upload_attempts: i64,
    pub uploaded_at: Option<i64>,
    /// Whether Reel still holds the file (removed after a verified upload unless kept).
    pub local_copy: bool,
}

impl From<reel_db::Asset> for Asset {
    fn from(a: reel_db::Asset) -> Self {
        Asset {
            id: a.id,
            application_id: a.application_id,
            room_id: a.room_id,
            session_id: a.session_id,
            publication_id: a.publication_id,
            recording_id: a.recording_id,
            participant: a.participant,
            asset_type: a.asset_type,
            format: a.format,
            start_at: a.start_at,
            end_at: a.end_at,
            duration_ms: a.duration_ms,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            details: a.details,
            created_at: a.created_at,
            destination_url: a.destination_url,
            upload_state: a.upload_state,
            upload_error: a.upload_error,
            upload_attempts: a.upload_attempts,
            uploaded_at: a.uploaded_at,
            local_copy: a.local_copy,
        }
    }
}

#[derive(Serialize, ToSchema)]
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

impl From<reel_db::Deletion> for Deletion {
    fn from(d: reel_db::Deletion) -> Self {
        Deletion {
            id: d.id,
            application_id: d.application_id,
            asset_id: d.asset_id,
            recording_id: d.recording_id,
            room_id: d.room_id,
            location: d.location,
            reason: d.reason,
            outcome: d.outcome,
            error: d.error,
            created_at: d.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    pub application_id: String,
    pub url: String,
    /// Event types delivered; empty means every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<reel_db::WebhookEndpoint> for WebhookEndpoint {
    fn from(w: reel_db::WebhookEndpoint) -> Self {
        WebhookEndpoint {
            id: w.id,
            application_id: w.application_id,
            url: w.url,
            event_types: w.event_types,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Serialize, ToSchema)]
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

impl From<reel_db::Delivery> for Delivery {
    fn from(d: reel_db::Delivery) -> Self {
        Delivery {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            attempt_log: d
                .attempt_log
                .into_iter()
                .map(|a| DeliveryAttempt {
                    attempt: a.attempt,
                    at: a.at,
                    status: a.status,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}
