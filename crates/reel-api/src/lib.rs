//! The HTTP face of Reel: the `/v1` REST API (API-key auth), the WHIP endpoint (publish-token
//! auth, RFC 9725) and `/healthz`. Handlers validate, call the recorder or the database, and
//! map every failure through [`ApiError`]; no business rule lives here.

mod access_log;
mod apps;
pub mod dto;
mod error;
mod extract;
mod files;
mod live_resources;
pub mod openapi;
mod publish_page;
mod recordings;
mod storage;
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
    /// Opening customer stores: presigned links, retried uploads, deletions.
    pub uploads: reel_recorder::uploads::UploadContext,
    pub rate_limit: RateLimit,
    /// WHIP offers per client address.
    pub whip_rate_limit: RateLimit,
    /// One INFO line per request (`log.access_log`).
    pub access_log: bool,
}

pub struct Inner {
    pub db: Db,
    pub recorder: Recorder,
    pub config: ApiConfig,
    /// Per API key: tokens left and when they were counted.
    pub buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
    /// This process's WHIP resources, for leaving while the database is unavailable.
    pub live_resources: live_resources::LiveResources,
}

/// Requests per key: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Inner {
    /// Takes one request from the key's bucket; on refusal, the seconds until one is free.
    pub fn take_token(&self, key_id: &str) -> Result<(), u32> {
        self.take_from(key_id, self.config.rate_limit)
    }

    /// Takes one WHIP offer from the client address's bucket.
    pub fn take_whip_offer(&self, client: std::net::IpAddr) -> Result<(), u32> {
        self.take_from(&format!("whip {client}"), self.config.whip_rate_limit)
    }

    fn take_from(&self, key_id: &str, limit: RateLimit) -> Result<(), u32> {
        let RateLimit { per_second, burst } = limit;
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(key_id.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second.max(0.001)).ceil().max(1.0) as u32)
        }
    }
}

pub type AppState = Arc<Inner>;

/// 200 when Reel can record: its database answers (and, on SQLite, is still the file it
/// opened) and free space is above the floor new publishers need; else 503, saying which.
async fn healthz(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let database = s.db.check().await;
    let disk = s.recorder.disk();
    let ok = database.is_ok() && !disk.is_low();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        // The detail goes to the log: /healthz answers anyone.
        "database": match &database {
            Ok(()) => serde_json::json!({"ok": true}),
            Err(e) => {
                tracing::error!(error = %e, "healthz: the database is not usable");
                serde_json::json!({"ok": false, "error": if e.contains("removed or replaced") {
                    "the database file was removed or replaced"
                } else {
                    "the database does not answer"
                }})
            }
        },
        "disk": {
            "ok": !disk.is_low(),
            "free_bytes": disk.free_bytes,
            "min_free_bytes": disk.min_free_bytes,
        },
    });
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Largest JSON body `/v1` accepts; real requests are a few hundred bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Unknown paths and methods get the JSON error body every other error has.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no such endpoint: {method} {} (see /v1/openapi.json)",
            uri.path()
        ),
    )
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {} (see /v1/openapi.json)",
            uri.path()
        ),
    )
}

pub fn router(db: Db, recorder: Recorder, config: ApiConfig) -> Router {
    let access_log = config.access_log;
    let state = Arc::new(Inner {
        db,
        recorder,
        config,
        buckets: Default::default(),
        live_resources: Default::default(),
    });
    let router = Router::new()
        .route("/healthz", get(healthz))
        .nest(
            "/v1",
            v1::routes()
                .merge(apps::routes())
                .merge(webhooks::routes())
                .merge(recordings::routes())
                .merge(storage::routes())
                .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .nest("/whip", whip::routes())
        .route("/download/{id}", get(files::signed_download))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/publish", get(publish_page::page))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method);
    let router = if access_log {
        router.layer(axum::middleware::from_fn(access_log::log))
    } else {
        router
    };
    router.with_state(state)
}
