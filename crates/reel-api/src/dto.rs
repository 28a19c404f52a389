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

/// A row's field in its wire form: the same value, or (for lists of value objects) each
/// element converted.
trait IntoWire<T> {
    fn into_wire(self) -> T;
}

impl<T> IntoWire<T> for T {
    fn into_wire(self) -> T {
        self
    }
}

impl IntoWire<Vec<Pause>> for Vec<reel_db::Pause> {
    fn into_wire(self) -> Vec<Pause> {
        self.into_iter().map(Into::into).collect()
    }
}

impl IntoWire<Vec<DeliveryAttempt>> for Vec<reel_db::DeliveryAttempt> {
    fn into_wire(self) -> Vec<DeliveryAttempt> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `From` a row for its wire type: the fields named, each taken as it is (`IntoWire`). A
/// field of the wire type missing from the list does not compile; a row field left out is
/// not sent.
macro_rules! from_row {
    ($row:path => $name:ident { $($field:ident),+ $(,)? }) => {
        impl From<$row> for $name {
            fn from(row: $row) -> Self {
                $name {
                    $( $field: IntoWire::into_wire(row.$field), )+
                }
            }
        }
    };
}

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

from_row!(reel_db::Application => Application {
    id, name, created_at, retention_days, default_recording_options
});

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

from_row!(reel_db::ApiKey => ApiKey { id, application_id, prefix, role, created_at, revoked_at });

#[derive(Serialize, ToSchema)]
pub struct Room {
    pub id: String,
    pub application_id: String,
    pub name: String,
    /// As a room is created and changed: whole seconds.
    pub empty_timeout_seconds: i64,
    pub max_duration_seconds: i64,
    /// The same limits in milliseconds (their first spelling, kept for clients reading it).
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
    fn from(row: reel_db::Room) -> Self {
        Room {
            empty_timeout_seconds: row.empty_timeout_ms / 1000,
            max_duration_seconds: row.max_duration_ms / 1000,
            id: row.id,
            application_id: row.application_id,
            name: row.name,
            empty_timeout_ms: row.empty_timeout_ms,
            max_duration_ms: row.max_duration_ms,
            auto_stream_recording: row.auto_stream_recording,
            default_recording_options: row.default_recording_options,
            policy: row.policy,
            created_at: row.created_at,
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

from_row!(reel_db::Session => Session {
    id, application_id, room_id, state, started_at, ended_at, end_reason, call_id
});

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

from_row!(reel_db::Publication => Publication {
    id, session_id, room_id, participant, kind, state, started_at, ended_at, end_reason, failure
});

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

from_row!(reel_db::Track => Track {
    id, publication_id, session_id, mid, rid, media_kind, codec, clock_rate, started_at
});

#[derive(Serialize, ToSchema)]
pub struct Pause {
    pub paused_at: i64,
    pub resumed_at: Option<i64>,
}

from_row!(reel_db::Pause => Pause { paused_at, resumed_at });

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

from_row!(reel_db::Recording => Recording {
    id, application_id, room_id, session_id, mode, state, failure, failure_code, pauses,
    created_at, started_at, stopped_at, updated_at, options, credentials_set, legal_hold
});

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

from_row!(reel_db::Asset => Asset {
    id, application_id, room_id, session_id, publication_id, recording_id, participant,
    asset_type, format, start_at, end_at, duration_ms, size_bytes, sha256, details, created_at,
    destination_url, upload_state, upload_error, upload_attempts, uploaded_at, local_copy
});

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

from_row!(reel_db::Deletion => Deletion {
    id, application_id, asset_id, recording_id, room_id, location, reason, outcome, error,
    created_at
});

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

from_row!(reel_db::WebhookEndpoint => WebhookEndpoint {
    id, application_id, url, event_types, enabled, disabled_reason, created_at, updated_at
});

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

from_row!(reel_db::DeliveryAttempt => DeliveryAttempt { attempt, at, status, error, duration_ms });

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

from_row!(reel_db::Delivery => Delivery {
    id, event_id, event_type, endpoint_id, state, attempts, next_attempt_at, last_status,
    last_error, created_at, attempt_log
});
