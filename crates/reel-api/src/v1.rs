//! `/v1`: rooms, publish tokens, sessions and assets.

use crate::dto;
use crate::extract::{Auth, Json, Query};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use reel_core::{random_token, AssetType, PublicationKind, RoomId};
use reel_db::{now_ms, PublishToken, Room};
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rooms", post(create_room).get(list_rooms))
        .route(
            "/rooms/{room_id}",
            get(get_room).patch(update_room).delete(delete_room),
        )
        .route("/rooms/{room_id}/tokens", post(create_token))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", get(get_session))
        .route("/assets", get(list_assets))
        .route("/assets/{id}", get(get_asset).delete(delete_asset))
        .route("/assets/{id}/presigned-url", get(presigned_url))
        .route("/assets/{id}/download", get(download_asset))
        .route("/events", get(list_events))
}

const MAX_DURATION_LIMIT_SECS: u64 = 7 * 24 * 3600;

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateRoom {
    name: Option<String>,
    empty_timeout_seconds: Option<u64>,
    max_duration_seconds: Option<u64>,
    /// The same limits in milliseconds, as a room reads (either spelling; both must agree).
    empty_timeout_ms: Option<u64>,
    max_duration_ms: Option<u64>,
    auto_stream_recording: Option<bool>,
    default_recording_options: Option<reel_core::options::RecordingOptions>,
    policy: Option<reel_core::options::RoomPolicy>,
}

#[utoipa::path(post, path = "/v1/rooms", request_body = CreateRoom, responses((status = 201, body = crate::dto::Room), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn create_room(
    State(s): State<AppState>,
    Auth(key): Auth,
    Json(body): Json<CreateRoom>,
) -> Result<Response, ApiError> {
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", m);
    let name = body.name.unwrap_or_default();
    if name.len() > 200 {
        return Err(invalid("name: at most 200 bytes"));
    }
    let empty = limit_ms(
        "empty_timeout",
        body.empty_timeout_seconds,
        body.empty_timeout_ms,
    )?
    .unwrap_or(s.config.default_empty_timeout.as_millis() as u64);
    let max = limit_ms(
        "max_duration",
        body.max_duration_seconds,
        body.max_duration_ms,
    )?
    .unwrap_or(s.config.default_max_duration.as_millis() as u64);
    if empty > 24 * 3600 * 1000 {
        return Err(invalid("empty_timeout_seconds: at most 86400"));
    }
    if !(1000..=MAX_DURATION_LIMIT_SECS * 1000).contains(&max) {
        return Err(invalid("max_duration_seconds: between 1 and 604800"));
    }
    let room = Room {
        id: RoomId::generate().to_string(),
        application_id: key.application_id,
        name,
        empty_timeout_ms: empty as i64,
        max_duration_ms: max as i64,
        auto_stream_recording: body.auto_stream_recording.unwrap_or(true),
        default_recording_options: serde_json::json!({}),
        default_credentials_sealed: None,
        policy: serde_json::json!({}),
        created_at: now_ms(),
    };
    let mut room = room;
    if let Some(options) = body.default_recording_options {
        apply_default_options(&s, &mut room, options)?;
    }
    if let Some(policy) = body.policy {
        apply_policy(&mut room, policy)?;
    }
    s.db.insert_room(&room).await?;
    Ok((StatusCode::CREATED, axum::Json(dto::Room::from(room))).into_response())
}

#[utoipa::path(get, path = "/v1/rooms", responses((status = 200, body = crate::openapi::RoomList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_rooms(
    State(s): State<AppState>,
    Auth(key): Auth,
) -> Result<axum::Json<crate::openapi::RoomList>, ApiError> {
    let rooms = s.db.list_rooms(&key.application_id).await?;
    Ok(axum::Json(crate::openapi::RoomList::of(rooms)))
}

#[utoipa::path(get, path = "/v1/rooms/{id}", params(("id" = String, Path, description = "room id")), responses((status = 200, body = crate::dto::Room), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn get_room(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<dto::Room>, ApiError> {
    Ok(axum::Json(
        s.db.get_room(Some(&key.application_id), &id)
            .await
            .map_err(|_| ApiError::not_found("room"))?
            .into(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UpdateRoom {
    name: Option<String>,
    empty_timeout_seconds: Option<u64>,
    max_duration_seconds: Option<u64>,
    /// The same limits in milliseconds, as a room reads (either spelling; both must agree).
    empty_timeout_ms: Option<u64>,
    max_duration_ms: Option<u64>,
    /// A room as it reads may be sent back: what cannot change is accepted and ignored
    /// (`id` must be this room's).
    id: Option<String>,
    application_id: Option<String>,
    created_at: Option<i64>,
    auto_stream_recording: Option<bool>,
    default_recording_options: Option<reel_core::options::RecordingOptions>,
    policy: Option<reel_core::options::RoomPolicy>,
}

/// A limit given in seconds, in milliseconds, or both (then they must agree): milliseconds.
fn limit_ms(name: &str, seconds: Option<u64>, ms: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (seconds, ms) {
        (Some(s), Some(ms)) if ms / 1000 != s => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{name}_seconds and {name}_ms disagree: give one"),
        )),
        (_, Some(ms)) => Ok(Some(ms)),
        (Some(s), None) => Ok(Some(s.saturating_mul(1000))),
        (None, None) => Ok(None),
    }
}

fn apply_policy(room: &mut Room, policy: reel_core::options::RoomPolicy) -> Result<(), ApiError> {
    policy.validate().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{}: {}", e.field, e.message),
        )
    })?;
    room.policy = serde_json::to_value(policy).expect("policy serializes");
    Ok(())
}

/// Validates a room's default `recordingOptions` and keeps them with credentials sealed.
fn apply_default_options(
    s: &AppState,
    room: &mut Room,
    options: reel_core::options::RecordingOptions,
) -> Result<(), ApiError> {
    let (json, sealed) =
        crate::storage::validate_and_seal(s, options, "default_recording_options")?;
    room.default_recording_options = json;
    room.default_credentials_sealed = sealed;
    Ok(())
}

/// Changes apply to sessions that start afterwards; a live session keeps its limits.
#[utoipa::path(patch, path = "/v1/rooms/{id}", params(("id" = String, Path, description = "room id")), request_body = UpdateRoom, responses((status = 200, body = crate::dto::Room), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn update_room(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateRoom>,
) -> Result<axum::Json<dto::Room>, ApiError> {
    let mut room =
        s.db.get_room(Some(&key.application_id), &id)
            .await
            .map_err(|_| ApiError::not_found("room"))?;
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", m);
    if let Some(name) = body.name {
        if name.len() > 200 {
            return Err(invalid("name: at most 200 bytes"));
        }
        room.name = name;
    }
    if body.id.as_ref().is_some_and(|given| *given != room.id) {
        return Err(invalid("id: is this room's and cannot change"));
    }
    let _read_only = (body.application_id, body.created_at);
    if let Some(ms) = limit_ms(
        "empty_timeout",
        body.empty_timeout_seconds,
        body.empty_timeout_ms,
    )? {
        if ms > 24 * 3600 * 1000 {
            return Err(invalid("empty_timeout_seconds: at most 86400"));
        }
        room.empty_timeout_ms = ms as i64;
    }
    if let Some(ms) = limit_ms(
        "max_duration",
        body.max_duration_seconds,
        body.max_duration_ms,
    )? {
        if !(1000..=MAX_DURATION_LIMIT_SECS * 1000).contains(&ms) {
            return Err(invalid("max_duration_seconds: between 1 and 604800"));
        }
        room.max_duration_ms = ms as i64;
    }
    if let Some(on) = body.auto_stream_recording {
        room.auto_stream_recording = on;
    }
    if let Some(options) = body.default_recording_options {
        // A room sent back as it reads carries its options without their write-only
        // credentials: options that did not change keep the credentials they have.
        let unchanged = options.credentials.is_none()
            && serde_json::to_value(options.public()).ok().as_ref()
                == Some(&room.default_recording_options);
        if !unchanged {
            apply_default_options(&s, &mut room, options)?;
        }
    }
    if let Some(policy) = body.policy {
        apply_policy(&mut room, policy)?;
    }
    s.db.update_room(&room).await?;
    Ok(axum::Json(room.into()))
}

/// Deletes a room that is not recording; its sessions and assets stay listed.
#[utoipa::path(delete, path = "/v1/rooms/{id}", params(("id" = String, Path, description = "room id")), responses((status = 204), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)))]
pub(crate) async fn delete_room(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.db.get_room(Some(&key.application_id), &id)
        .await
        .map_err(|_| ApiError::not_found("room"))?;
    let live =
        s.db.list_sessions(&key.application_id, Some(&id))
            .await?
            .into_iter()
            .any(|x| x.state == reel_core::SessionState::Live);
    if live {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "room_in_use",
            "the room has a live session",
        ));
    }
    s.db.delete_room(&key.application_id, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateToken {
    participant: String,
    kind: Option<String>,
    expires_in_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/tokens", params(("room_id" = String, Path, description = "room id")), request_body = CreateToken, responses((status = 201, body = crate::openapi::PublishToken), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn create_token(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(room_id): Path<String>,
    Json(body): Json<CreateToken>,
) -> Result<Response, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", m);
    let room =
        s.db.get_room(Some(&key.application_id), &room_id)
            .await
            .map_err(|_| ApiError::not_found("room"))?;
    let participant = body.participant.trim().to_string();
    if participant.is_empty()
        || participant.len() > 128
        || participant.chars().any(char::is_control)
    {
        return Err(invalid("participant: 1 to 128 printable characters".into()));
    }
    let kind = match body.kind.as_deref().unwrap_or("camera").parse() {
        Ok(kind @ (PublicationKind::Camera | PublicationKind::Screen)) => kind,
        _ => return Err(invalid("kind: camera or screen".into())),
    };
    let ttl = body.expires_in_seconds.unwrap_or(24 * 3600);
    if ttl == 0 || ttl > 30 * 24 * 3600 {
        return Err(invalid("expires_in_seconds: between 1 and 2592000".into()));
    }
    let secret = format!("pt_{}", random_token(32));
    let expires_at = now_ms() + ttl as i64 * 1000;
    let token = PublishToken {
        room_id: room.id.clone(),
        participant: participant.clone(),
        kind: kind.as_str().into(),
        expires_at,
    };
    s.db.insert_publish_token(&secret, &token).await?;
    let whip_url = format!(
        "{}/whip/{}",
        s.config.public_url.trim_end_matches('/'),
        room.id
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "token": secret,
            "whip_url": whip_url,
            "room_id": room.id,
            "participant": participant,
            "kind": kind.as_str(),
            "expires_at": expires_at,
        })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionQuery {
    room_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/sessions", params(SessionQuery), responses((status = 200, body = crate::openapi::SessionList), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_sessions(
    State(s): State<AppState>,
    Auth(key): Auth,
    Query(q): Query<SessionQuery>,
) -> Result<axum::Json<crate::openapi::SessionList>, ApiError> {
    let sessions =
        s.db.list_sessions(&key.application_id, q.room_id.as_deref())
            .await?;
    Ok(axum::Json(crate::openapi::SessionList::of(sessions)))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path, description = "session id")), responses((status = 200, body = crate::openapi::SessionDetail), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn get_session(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<crate::openapi::SessionDetail>, ApiError> {
    let session =
        s.db.get_session(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("session"))?;
    let tracks = s.db.list_session_tracks(&id).await?;
    let participants =
        s.db.list_publications(&id)
            .await?
            .into_iter()
            .map(|publication| {
                let tracks = tracks
                    .iter()
                    .filter(|t| t.publication_id == publication.id)
                    .cloned()
                    .map(Into::into)
                    .collect();
                crate::openapi::Participant {
                    publication: publication.into(),
                    tracks,
                }
            })
            .collect();
    Ok(axum::Json(crate::openapi::SessionDetail {
        session: session.into(),
        participants,
    }))
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AssetQuery {
    session_id: Option<String>,
    asset_type: Option<AssetType>,
    recording_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/assets", params(AssetQuery), responses((status = 200, body = crate::openapi::AssetList), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_assets(
    State(s): State<AppState>,
    Auth(key): Auth,
    Query(q): Query<AssetQuery>,
) -> Result<axum::Json<crate::openapi::AssetList>, ApiError> {
    let assets =
        s.db.list_assets(
            &key.application_id,
            q.session_id.as_deref(),
            q.asset_type.map(AssetType::as_str),
            q.recording_id.as_deref(),
        )
        .await?;
    Ok(axum::Json(crate::openapi::AssetList::of(assets)))
}

#[utoipa::path(get, path = "/v1/assets/{id}", params(("id" = String, Path, description = "asset id")), responses((status = 200, body = crate::dto::Asset), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn get_asset(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<dto::Asset>, ApiError> {
    Ok(axum::Json(
        s.db.get_asset(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?
            .into(),
    ))
}

#[utoipa::path(get, path = "/v1/assets/{id}/download", params(("id" = String, Path, description = "asset id")), responses((status = 200, description = "the file", content_type = "application/octet-stream"), (status = 206, description = "a byte range"), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 410, body = crate::openapi::ErrorBody), (status = 416, body = crate::openapi::ErrorBody)))]
pub(crate) async fn download_asset(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let asset =
        s.db.get_asset(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?;
    crate::files::serve(&s, &asset, &headers).await
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkRequest {
    expires_in: Option<u64>,
}

/// An expiring link to the asset's file that needs no API key.
#[utoipa::path(get, path = "/v1/assets/{id}/presigned-url", params(("id" = String, Path, description = "asset id"), LinkRequest), responses((status = 200, body = crate::openapi::Link), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn presigned_url(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Query(q): Query<LinkRequest>,
) -> Result<axum::Json<crate::openapi::Link>, ApiError> {
    let asset =
        s.db.get_asset(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?;
    let expires_in = q.expires_in.unwrap_or(crate::files::DEFAULT_EXPIRES_IN);
    if expires_in == 0 || expires_in > crate::files::MAX_EXPIRES_IN {
        return Err(ApiError::bad_request(
            "invalid_query",
            "expires_in: between 1 and 604800 seconds",
        ));
    }
    Ok(axum::Json(
        crate::files::link(&s, &asset, expires_in).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/assets/{id}", params(("id" = String, Path, description = "asset id")), responses((status = 204), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn delete_asset(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let asset =
        s.db.get_asset(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?;
    let held = match &asset.recording_id {
        Some(r) => s.db.recording_by_id(r).await.is_ok_and(|r| r.legal_hold),
        None => false,
    } || s
        .db
        .room_by_id_any(&asset.room_id)
        .await
        .is_ok_and(|r| r.policy["legal_hold"] == true);
    if held {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "legal_hold",
            "the asset is under a legal hold",
        ));
    }
    // The same deletion as retention's: customer object, local file, journals, audit log.
    let deleted =
        reel_recorder::retention::delete_asset(&s.db, &s.config.uploads, &asset, "api").await?;
    if !deleted {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "deletion_failed",
            "the asset could not be deleted everywhere; see GET /v1/deletions",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The event outbox, oldest first: what webhooks will deliver.
#[utoipa::path(get, path = "/v1/events", responses((status = 200, body = crate::openapi::EventList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_events(
    State(s): State<AppState>,
    Auth(key): Auth,
) -> Result<axum::Json<crate::openapi::EventList>, ApiError> {
    let events = s.db.list_events(&key.application_id).await?;
    let data = events
        .into_iter()
        .map(
            |(id, event_type, payload, created_at)| crate::openapi::Event {
                id,
                event_type,
                timestamp: created_at,
                data: payload.clone(),
                payload,
                created_at,
            },
        )
        .collect();
    Ok(axum::Json(crate::openapi::EventList { data }))
}
