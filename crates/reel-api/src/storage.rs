//! Storage endpoints: retrying a failed upload (optionally with fixed credentials), legal
//! holds, and the deletion audit log.

use crate::dto::Recording;
use crate::extract::{Auth, Json};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use reel_core::options::{seal, RecordingOptions};
use reel_core::recording::Command;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets/{id}/retry-upload", post(retry_upload))
        .route("/recordings/{id}/legal-hold", post(legal_hold))
        .route("/deletions", get(list_deletions))
}

/// Refuses a `destinationUrl` this server will not write to (a `file://` path outside
/// `storage.file_root`) when it is given, not when the upload would fail.
pub(crate) fn check_destination(
    s: &AppState,
    options: &RecordingOptions,
    field: &str,
) -> Result<(), ApiError> {
    let Some(url) = &options.destination_url else {
        return Ok(());
    };
    reel_blob::Destination::parse(url)
        .and_then(|d| d.check_allowed(&s.config.uploads.settings))
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{field}.destinationUrl: {e}"),
            )
        })
}

/// Validates default `recordingOptions` (a room's or an application's) and returns them
/// without credentials, with the credentials sealed.
pub(crate) fn validate_and_seal(
    s: &AppState,
    options: RecordingOptions,
    field: &str,
) -> Result<(serde_json::Value, Option<String>), ApiError> {
    options
        .validate(reel_core::recording::RecordingMode::Stream)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!(
                    "{field}.{}: {}",
                    e.field.trim_start_matches("recordingOptions."),
                    e.message
                ),
            )
        })?;
    check_destination(s, &options, field)?;
    let sealed = options
        .credentials
        .as_deref()
        .map(|c| seal::seal(&s.config.secrets_key, c));
    Ok((
        serde_json::to_value(options.public()).expect("options serialize"),
        sealed,
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryUpload {
    /// Replaces the recording's credentials (write-only, sealed at rest).
    credentials: Option<String>,
}

/// Tries a failed upload again: the recording goes back to `uploading`, and on success to
/// `available` with `recording_available`.
#[utoipa::path(post, path = "/v1/assets/{id}/retry-upload", params(("id" = String, Path, description = "asset id")), request_body(content = RetryUpload, description = "optional"), responses((status = 202, body = crate::dto::Recording), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn retry_upload(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<Recording>), ApiError> {
    // The body is optional: none retries with the credentials the recording has.
    let body: RetryUpload = if body.iter().all(u8::is_ascii_whitespace) {
        RetryUpload::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let asset =
        s.db.get_asset(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?;
    let rec_id = asset.recording_id.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "the asset belongs to no recording with a destination",
        )
    })?;
    let rec = s.db.get_recording(&key.application_id, &rec_id).await?;
    if asset.upload_state != reel_core::UploadState::Failed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "the asset's upload is {}, not failed",
                asset.upload_state.as_str()
            ),
        ));
    }
    if let Some(creds) = body.credentials {
        let probe = RecordingOptions {
            destination_url: rec.options["destinationUrl"].as_str().map(str::to_string),
            credentials: Some(creds.clone()),
            ..Default::default()
        };
        probe
            .validate(reel_core::recording::RecordingMode::Stream)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    e.message.replace("recordingOptions.", ""),
                )
            })?;
        s.db.set_recording_credentials(&rec.id, &seal::seal(&s.config.secrets_key, &creds))
            .await?;
    }
    let rec = s
        .recorder
        .control(&key.application_id, &rec.id, Command::RetryUpload)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(rec.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LegalHold {
    enabled: bool,
}

/// Sets or lifts a legal hold: while set, retention deletes nothing of the recording.
#[utoipa::path(post, path = "/v1/recordings/{id}/legal-hold", params(("id" = String, Path, description = "recording id")), request_body = LegalHold, responses((status = 200, body = crate::dto::Recording), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn legal_hold(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<LegalHold>,
) -> Result<axum::Json<Recording>, ApiError> {
    s.db.set_legal_hold(&key.application_id, &id, body.enabled)
        .await
        .map_err(|_| ApiError::not_found("recording"))?;
    tracing::info!(recording = %id, hold = body.enabled, "legal hold");
    Ok(axum::Json(
        s.db.get_recording(&key.application_id, &id).await?.into(),
    ))
}

/// The deletion audit log, newest first: every asset deleted by retention or by the API,
/// and every deletion that failed (tried again at the next sweep).
#[utoipa::path(get, path = "/v1/deletions", responses((status = 200, body = crate::openapi::DeletionList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_deletions(
    State(s): State<AppState>,
    Auth(key): Auth,
) -> Result<axum::Json<crate::openapi::DeletionList>, ApiError> {
    Ok(axum::Json(crate::openapi::DeletionList::of(
        s.db.list_deletions(&key.application_id).await?,
    )))
}
