//! Applications (tenants) and their API keys. Admin keys create applications and manage
//! any application's keys; an application's own keys manage that application's keys. A key
//! never learns that another application exists: those ids answer 404 like unknown ones.

use crate::dto;
use crate::extract::{Auth, Json, OptionalJson};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use reel_core::{random_token, ApplicationId};
use reel_db::{now_ms, ApiKey, Application};
use serde::Deserialize;

pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_APP: &str = "app";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/applications",
            post(create_application).get(list_applications),
        )
        .route(
            "/applications/{id}",
            get(get_application).patch(update_application),
        )
        .route("/applications/{id}/keys", post(create_key).get(list_keys))
        .route("/applications/{id}/keys/{key_id}", delete(revoke_key))
}

fn is_admin(key: &ApiKey) -> bool {
    key.role == ROLE_ADMIN
}

/// The application `id`, if this key may see it.
async fn visible_application(
    s: &AppState,
    key: &ApiKey,
    id: &str,
) -> Result<Application, ApiError> {
    if !is_admin(key) && key.application_id != id {
        return Err(ApiError::not_found("application"));
    }
    s.db.get_application(id)
        .await
        .map_err(|_| ApiError::not_found("application"))
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateApplication {
    name: String,
}

#[utoipa::path(post, path = "/v1/applications", request_body = CreateApplication, responses((status = 201, body = crate::dto::Application), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn create_application(
    State(s): State<AppState>,
    Auth(key): Auth,
    Json(body): Json<CreateApplication>,
) -> Result<Response, ApiError> {
    if !is_admin(&key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only admin keys create applications",
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "name: 1 to 200 bytes",
        ));
    }
    let app = Application {
        id: ApplicationId::generate().to_string(),
        name: name.to_string(),
        created_at: now_ms(),
        retention_days: None,
        default_recording_options: serde_json::json!({}),
    };
    s.db.insert_application(&app).await?;
    Ok((StatusCode::CREATED, axum::Json(dto::Application::from(app))).into_response())
}

#[utoipa::path(get, path = "/v1/applications", responses((status = 200, body = crate::openapi::ApplicationList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_applications(
    State(s): State<AppState>,
    Auth(key): Auth,
) -> Result<axum::Json<crate::openapi::ApplicationList>, ApiError> {
    let apps = if is_admin(&key) {
        s.db.list_applications().await?
    } else {
        vec![s.db.get_application(&key.application_id).await?]
    };
    Ok(axum::Json(crate::openapi::ApplicationList::of(apps)))
}

#[utoipa::path(get, path = "/v1/applications/{id}", params(("id" = String, Path, description = "application id")), responses((status = 200, body = crate::dto::Application), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn get_application(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<dto::Application>, ApiError> {
    Ok(axum::Json(visible_application(&s, &key, &id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateApplication {
    /// Days assets are kept, 1 to 3650; null: the server default (own storage only); absent:
    /// unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    retention_days: Option<Option<i64>>,
    /// `recordingOptions` for recordings of rooms that have none of their own.
    default_recording_options: Option<reel_core::options::RecordingOptions>,
}

/// A field that is present (even as null) becomes `Some`; absent stays `None` (default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Sets the application's retention. Admin keys, or the application's own keys.
#[utoipa::path(patch, path = "/v1/applications/{id}", params(("id" = String, Path, description = "application id")), request_body = UpdateApplication, responses((status = 200, body = crate::dto::Application), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn update_application(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateApplication>,
) -> Result<axum::Json<dto::Application>, ApiError> {
    visible_application(&s, &key, &id).await?;
    if let Some(days) = body.retention_days {
        if days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "retention_days: between 1 and 3650",
            ));
        }
        s.db.set_application_retention_days(&id, days).await?;
    }
    if let Some(options) = body.default_recording_options {
        let (json, sealed) =
            crate::storage::validate_and_seal(&s, options, "default_recording_options")?;
        s.db.set_application_defaults(&id, &json, sealed.as_deref())
            .await?;
    }
    Ok(axum::Json(visible_application(&s, &key, &id).await?.into()))
}

/// Creates an application key. The secret is in this response only; Reel keeps its hash.
/// A new key takes no settings: the body is empty or `{}`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct NewKey(serde_json::Map<String, serde_json::Value>);

#[utoipa::path(post, path = "/v1/applications/{id}/keys", params(("id" = String, Path, description = "application id")), responses((status = 201, body = crate::openapi::CreatedKey), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn create_key(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    OptionalJson(NewKey(settings)): OptionalJson<NewKey>,
) -> Result<Response, ApiError> {
    if let Some(field) = settings.keys().next() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: unknown field: a new key takes no settings (send no body, or {{}})"),
        ));
    }
    let app = visible_application(&s, &key, &id).await?;
    let secret = format!("reel_{}", random_token(40));
    let key_id = format!("key_{}", random_token(16));
    s.db.insert_api_key(&key_id, &app.id, &secret, ROLE_APP)
        .await?;
    let created =
        s.db.list_api_keys(&app.id)
            .await?
            .into_iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| ApiError::internal("key vanished"))?;
    let body = crate::openapi::CreatedKey {
        api_key: created.into(),
        key: secret,
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/applications/{id}/keys", params(("id" = String, Path, description = "application id")), responses((status = 200, body = crate::openapi::KeyList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list_keys(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<crate::openapi::KeyList>, ApiError> {
    let app = visible_application(&s, &key, &id).await?;
    Ok(axum::Json(crate::openapi::KeyList::of(
        s.db.list_api_keys(&app.id).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/applications/{id}/keys/{key_id}", params(("id" = String, Path, description = "application id"), ("key_id" = String, Path, description = "key id")), responses((status = 204), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn revoke_key(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = visible_application(&s, &key, &id).await?;
    s.db.revoke_api_key(&app.id, &key_id)
        .await
        .map_err(|_| ApiError::not_found("key"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
