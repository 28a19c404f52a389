//! Recordings on command: start, pause, resume, stop, read and list, and the room's active
//! recording. The recorder decides; this only validates and maps.

use crate::dto::Recording;
use crate::extract::{Auth, Json, Query};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use reel_core::options::{seal, RecordingOptions};
use reel_core::recording::{Command, RecordingMode, RecordingState};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/recordings", post(start).get(list))
        .route("/recordings/{id}", get(read))
        .route("/recordings/{id}/pause", post(pause))
        .route("/recordings/{id}/resume", post(resume))
        .route("/recordings/{id}/stop", post(stop))
        .route("/rooms/{id}/active-recording", get(active))
        .route("/recordings/{id}/layout", post(change_layout))
        .route("/sessions/{id}/composites", post(rerender))
}

/// A recording's `mode` and `recordingOptions`, field by field.
fn check_mode_and_options(
    s: &AppState,
    mode: &str,
    options: Option<&RecordingOptions>,
) -> Result<RecordingMode, ApiError> {
    let mode: RecordingMode = mode.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("mode: {mode:?} is not one of stream, composite, audio"),
        )
    })?;
    if let Some(options) = options {
        options.validate(mode).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{}: {}", e.field, e.message),
            )
        })?;
        crate::storage::check_destination(s, options, "recordingOptions")?;
        check_output_options(options)?;
    }
    Ok(mode)
}

/// Options as the recorder keeps them: public JSON, credentials sealed.
fn sealed(s: &AppState, options: RecordingOptions) -> reel_recorder::recordings::RecordingOptions {
    reel_recorder::recordings::RecordingOptions {
        json: serde_json::to_value(options.public()).expect("options serialize"),
        // Write-only: sealed here, never returned or logged.
        sealed_credentials: options
            .credentials
            .as_deref()
            .map(|c| seal::seal(&s.config.secrets_key, c)),
    }
}

/// `compositeOptions`, checked by the renderer's own option type.
fn check_output_options(options: &RecordingOptions) -> Result<(), ApiError> {
    let invalid = |field: &str, m: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("recordingOptions.{field}: {m}"),
        )
    };
    if let Some(v) = &options.composite_options {
        let o: reel_compose::options::CompositeOptions = serde_json::from_value(v.clone())
            .map_err(|e| invalid("compositeOptions", e.to_string()))?;
        o.validate().map_err(|m| invalid("compositeOptions", m))?;
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Start {
    room_id: String,
    mode: Option<String>,
    #[serde(rename = "recordingOptions")]
    recording_options: Option<RecordingOptions>,
}

#[utoipa::path(post, path = "/v1/recordings", request_body = Start, responses((status = 201, body = crate::dto::Recording), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn start(
    State(s): State<AppState>,
    Auth(key): Auth,
    Json(body): Json<Start>,
) -> Result<Response, ApiError> {
    let mode = body.mode.as_deref().unwrap_or("stream");
    let mode = check_mode_and_options(&s, mode, body.recording_options.as_ref())?;
    let given = body.recording_options;
    let room =
        s.db.get_room(Some(&key.application_id), &body.room_id)
            .await
            .map_err(|_| ApiError::not_found("room"))?;
    let options = match given {
        Some(options) => sealed(&s, options),
        // None given: the room's defaults.
        None => reel_recorder::recordings::RecordingOptions::defaults_for(&s.db, &room).await?,
    };
    let rec = s.recorder.start_recording(room, mode, options).await?;
    Ok((StatusCode::CREATED, axum::Json(Recording::from(rec))).into_response())
}

async fn control(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    command: Command,
) -> Result<axum::Json<Recording>, ApiError> {
    Ok(axum::Json(
        s.recorder
            .control(&key.application_id, &id, command)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/v1/recordings/{id}/pause", params(("id" = String, Path, description = "recording id")), responses((status = 200, body = crate::dto::Recording), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)))]
pub(crate) async fn pause(
    s: State<AppState>,
    a: Auth,
    p: Path<String>,
) -> Result<axum::Json<Recording>, ApiError> {
    control(s, a, p, Command::Pause).await
}

#[utoipa::path(post, path = "/v1/recordings/{id}/resume", params(("id" = String, Path, description = "recording id")), responses((status = 200, body = crate::dto::Recording), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)))]
pub(crate) async fn resume(
    s: State<AppState>,
    a: Auth,
    p: Path<String>,
) -> Result<axum::Json<Recording>, ApiError> {
    control(s, a, p, Command::Resume).await
}

#[utoipa::path(post, path = "/v1/recordings/{id}/stop", params(("id" = String, Path, description = "recording id")), responses((status = 200, body = crate::dto::Recording), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)))]
pub(crate) async fn stop(
    s: State<AppState>,
    a: Auth,
    p: Path<String>,
) -> Result<axum::Json<Recording>, ApiError> {
    control(s, a, p, Command::Stop).await
}

#[utoipa::path(get, path = "/v1/recordings/{id}", params(("id" = String, Path, description = "recording id")), responses((status = 200, body = crate::dto::Recording), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Recording>, ApiError> {
    Ok(axum::Json(
        s.db.get_recording(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("recording"))?
            .into(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    room_id: Option<String>,
    session_id: Option<String>,
    state: Option<RecordingState>,
}

#[utoipa::path(get, path = "/v1/recordings", params(ListQuery), responses((status = 200, body = crate::openapi::RecordingList), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(key): Auth,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<crate::openapi::RecordingList>, ApiError> {
    let list =
        s.db.list_recordings(
            &key.application_id,
            q.room_id.as_deref(),
            q.session_id.as_deref(),
            q.state,
        )
        .await?;
    Ok(axum::Json(crate::openapi::RecordingList::of(list)))
}

#[utoipa::path(get, path = "/v1/rooms/{id}/active-recording", params(("id" = String, Path, description = "room id")), responses((status = 200, body = crate::dto::Recording), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn active(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Recording>, ApiError> {
    s.db.get_room(Some(&key.application_id), &id)
        .await
        .map_err(|_| ApiError::not_found("room"))?;
    let list =
        s.db.list_recordings(&key.application_id, Some(&id), None, None)
            .await?;
    let active = list.into_iter().rev().find(|r| r.is_active());
    active
        .map(|r| axum::Json(r.into()))
        .ok_or_else(|| ApiError::not_found("active recording"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rerender {
    /// `composite` (default) or `audio`.
    mode: Option<String>,
    #[serde(rename = "recordingOptions")]
    recording_options: Option<RecordingOptions>,
}

/// A new composite or audio mix of an ended session from the same journals (another layout,
/// size or format): a new recording, `processing` until its asset is made.
#[utoipa::path(post, path = "/v1/sessions/{id}/composites", params(("id" = String, Path, description = "session id")), request_body = Rerender, responses((status = 202, body = crate::dto::Recording), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn rerender(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<Rerender>,
) -> Result<(StatusCode, axum::Json<Recording>), ApiError> {
    let mode = body.mode.as_deref().unwrap_or("composite");
    if mode == "stream" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "mode: composite or audio (stream assets exist already)",
        ));
    }
    let mode = check_mode_and_options(&s, mode, body.recording_options.as_ref())?;
    let session =
        s.db.get_session(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("session"))?;
    let options = match body.recording_options {
        Some(o) => sealed(&s, o),
        None => {
            let room = s.db.room_by_id_any(&session.room_id).await?;
            reel_recorder::recordings::RecordingOptions::defaults_for(&s.db, &room).await?
        }
    };
    let rec = s.recorder.render_session(session, mode, options).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(rec.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LayoutChange {
    #[schema(value_type = Object)]
    layout: reel_compose::layout::Layout,
}

/// Changes a live composite's layout from now on in the output.
#[utoipa::path(post, path = "/v1/recordings/{id}/layout", params(("id" = String, Path, description = "recording id")), request_body = LayoutChange, responses((status = 200, body = crate::dto::Recording), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn change_layout(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<LayoutChange>,
) -> Result<axum::Json<Recording>, ApiError> {
    let rec =
        s.db.get_recording(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("recording"))?;
    if rec.mode != RecordingMode::Composite || !rec.is_active() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_state",
            "layouts change on composite recordings that are still capturing",
        ));
    }
    let opts: reel_compose::options::CompositeOptions = rec
        .options
        .get("compositeOptions")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let (w, h) = opts.dimensions().map_err(ApiError::internal)?;
    body.layout.validate(w, h).map_err(|m| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("layout: {m}"),
        )
    })?;
    let mut options = rec.options.clone();
    let change = serde_json::json!({"at": reel_db::now_ms(), "layout": body.layout});
    match options["layoutChanges"].as_array_mut() {
        Some(list) => list.push(change),
        None => options["layoutChanges"] = serde_json::json!([change]),
    }
    s.db.set_recording_options(&rec.id, &options).await?;
    Ok(axum::Json(
        s.db.get_recording(&key.application_id, &id).await?.into(),
    ))
}
