//! The one place errors become HTTP: `{"code": "...", "message": "..."}` with a stable code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use reel_recorder::RecorderError;
use reel_whip::WhipError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// The database cannot answer now; the client should try again shortly.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "answered 503: the database is unavailable");
        ApiError {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; try again shortly",
            )
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"code": self.code, "message": self.message}));
        let mut resp = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<reel_db::DbError> for ApiError {
    fn from(e: reel_db::DbError) -> Self {
        match e {
            reel_db::DbError::NotFound => ApiError::not_found("resource"),
            other if other.is_unavailable() => ApiError::unavailable(other),
            other => ApiError::internal(other),
        }
    }
}

impl From<WhipError> for ApiError {
    fn from(e: WhipError) -> Self {
        let msg = e.to_string();
        match e {
            WhipError::BadSdp(_) => ApiError::bad_request("invalid_sdp", msg),
            WhipError::NoSupportedCodec => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_codec", msg)
            }
            WhipError::NothingToReceive => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_media", msg)
            }
            WhipError::AtCapacity(_) => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "at_capacity", msg)
            },
            WhipError::TooManyPending { retry_secs, .. } => ApiError {
                retry_after: Some(retry_secs as u32),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_pending", msg)
            },
            WhipError::Duplicate => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            WhipError::Engine(_) => ApiError::internal(msg),
        }
    }
}

impl From<RecorderError> for ApiError {
    fn from(e: RecorderError) -> Self {
        match e {
            RecorderError::Whip(w) => w.into(),
            RecorderError::Db(d) => d.into(),
            RecorderError::NotFound => ApiError::not_found("recording"),
            RecorderError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "recording_in_progress", m)
            }
            RecorderError::InvalidState(m) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", m)
            }
            RecorderError::ShuttingDown => ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "the server is shutting down",
                )
            },
            e @ (RecorderError::DiskFull { .. } | RecorderError::NoSpace(_)) => ApiError {
                retry_after: Some(30),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "insufficient_storage",
                    e.to_string(),
                )
            },
            other => ApiError::internal(other),
        }
    }
}
