//! Webhook endpoints of the caller's application: create (the signing secret is in that
//! response only), read, update, delete, the delivery log, and manual redelivery.

use crate::dto;
use crate::extract::{Auth, Json};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use reel_core::random_token;
use reel_db::{now_ms, WebhookEndpoint};
use reel_webhooks::{sign, target};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route("/webhooks/{id}", get(read).patch(update).delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
}

/// The target check resolves the host: a blocking lookup, so off the async workers.
async fn check_url(s: &AppState, url: &str) -> Result<(), ApiError> {
    let (url, allow) = (url.to_string(), s.config.webhooks_allow_private_targets);
    tokio::task::spawn_blocking(move || target::check(&url, allow))
        .await
        .map_err(ApiError::internal)?
        .map(|_| ())
        .map_err(|e| invalid(format!("url: {e}")))
}

fn check_types(types: &[String]) -> Result<(), ApiError> {
    // Every type Reel emits may be subscribed to: the list is the one the emitters use.
    for t in types {
        t.parse::<reel_core::EventKind>().map_err(|e| {
            invalid(format!(
                "event_types: {e}; known types: {}",
                reel_core::EventKind::ALL.map(|k| k.as_str()).join(", ")
            ))
        })?;
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Create {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    enabled: Option<bool>,
}

#[utoipa::path(post, path = "/v1/webhooks", request_body = Create, responses((status = 201, body = crate::openapi::CreatedWebhook), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Auth(key): Auth,
    Json(body): Json<Create>,
) -> Result<Response, ApiError> {
    // Cheap checks first; resolving the URL's host is last.
    check_types(&body.event_types)?;
    check_url(&s, &body.url).await?;
    let now = now_ms();
    let endpoint = WebhookEndpoint {
        id: format!("whe_{}", random_token(16)),
        application_id: key.application_id,
        url: body.url,
        secret: sign::new_secret(),
        event_types: body.event_types,
        enabled: body.enabled.unwrap_or(true),
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    s.db.insert_endpoint(&endpoint).await?;
    let secret = endpoint.secret.clone();
    let body = crate::openapi::CreatedWebhook {
        endpoint: endpoint.into(),
        secret,
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks", responses((status = 200, body = crate::openapi::WebhookList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(key): Auth,
) -> Result<axum::Json<crate::openapi::WebhookList>, ApiError> {
    Ok(axum::Json(crate::openapi::WebhookList::of(
        s.db.list_endpoints(&key.application_id).await?,
    )))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", params(("id" = String, Path, description = "webhook id")), responses((status = 200, body = crate::dto::WebhookEndpoint), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn read(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<dto::WebhookEndpoint>, ApiError> {
    Ok(axum::Json(
        s.db.get_endpoint(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("webhook"))?
            .into(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Update {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", params(("id" = String, Path, description = "webhook id")), request_body = Update, responses((status = 200, body = crate::dto::WebhookEndpoint), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
    Json(body): Json<Update>,
) -> Result<axum::Json<dto::WebhookEndpoint>, ApiError> {
    let mut endpoint =
        s.db.get_endpoint(&key.application_id, &id)
            .await
            .map_err(|_| ApiError::not_found("webhook"))?;
    if let Some(url) = body.url {
        check_url(&s, &url).await?;
        endpoint.url = url;
    }
    if let Some(types) = body.event_types {
        check_types(&types)?;
        endpoint.event_types = types;
    }
    if let Some(enabled) = body.enabled {
        endpoint.enabled = enabled;
    }
    s.db.update_endpoint(&endpoint).await?;
    Ok(axum::Json(
        s.db.get_endpoint(&key.application_id, &id).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", params(("id" = String, Path, description = "webhook id")), responses((status = 204), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn remove(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.db.delete_endpoint(&key.application_id, &id)
        .await
        .map_err(|_| ApiError::not_found("webhook"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", params(("id" = String, Path, description = "webhook id")), responses((status = 200, body = crate::openapi::DeliveryList), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn deliveries(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<crate::openapi::DeliveryList>, ApiError> {
    s.db.get_endpoint(&key.application_id, &id)
        .await
        .map_err(|_| ApiError::not_found("webhook"))?;
    Ok(axum::Json(crate::openapi::DeliveryList::of(
        s.db.list_deliveries(&key.application_id, &id).await?,
    )))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", params(("id" = String, Path, description = "webhook id"), ("delivery_id" = String, Path, description = "delivery id")), responses((status = 202), (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub(crate) async fn redeliver(
    State(s): State<AppState>,
    Auth(key): Auth,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.db.redeliver(&key.application_id, &id, &delivery_id, now_ms())
        .await
        .map_err(|_| ApiError::not_found("delivery"))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
