//! The HTTP face of Reel: the `/v1` REST API (API-key auth), the WHIP endpoint (publish-token
//! auth, RFC 9725) and `/healthz`. Handlers validate, call the recorder or the database, and
//! map every failure through [`ApiError`]; no business rule lives here.

mod apps;
mod error;
mod extract;
mod files;
pub mod openapi;
mod recordings;
mod v1;
mod webhooks;
mod whip;

pub use error::ApiError;

use axum::routing::get;
use axum::Router;
use reel_db::Db;
use reel_recorder::Recorder;
use std::sync::Arc;
use std::time::Duration;

pub struct ApiConfig {
    /// Base URL clients reach this server at, used in `whip_url`.
    pub public_url: String,
    pub default_empty_timeout: Duration,
    pub default_max_duration: Duration,
    /// Accept webhook URLs on private and loopback addresses (tests, closed networks).
    pub webhooks_allow_private_targets: bool,
    /// Key for signed download links.
    pub url_signing_key: Vec<u8>,
    /// Key sealing secrets at rest (destination credentials).
    pub secrets_key: [u8; 32],
}

pub struct Inner {
    pub db: Db,
    pub recorder: Recorder,
    pub config: ApiConfig,
}

pub type AppState = Arc<Inner>;

/// Largest JSON body `/v1` accepts; real requests are a few hundred bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router(db: Db, recorder: Recorder, config: ApiConfig) -> Router {
    let state = Arc::new(Inner {
        db,
        recorder,
        config,
    });
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .nest(
            "/v1",
            v1::routes()
                .merge(apps::routes())
                .merge(webhooks::routes())
                .merge(recordings::routes())
                .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .nest("/whip", whip::routes())
        .route("/download/{id}", get(files::signed_download))
        .route("/v1/openapi.json", get(openapi::document))
        .with_state(state)
}
