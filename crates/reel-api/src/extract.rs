//! Extractors that turn malformed requests into `ApiError`s with stable codes instead of
//! axum's plain-text rejections.

use crate::{ApiError, AppState};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use reel_db::ApiKey;
use serde::de::DeserializeOwned;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                plain_serde_message(&e.body_text()),
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request bodies are limited to {} bytes",
                    crate::MAX_JSON_BODY
                ),
            )),
            Err(e) => Err(ApiError::bad_request(
                "invalid_json",
                format!(
                    "the body is not valid JSON: {}",
                    plain_serde_message(&e.body_text())
                ),
            )),
        }
    }
}

/// A JSON body that may be left out (an empty body reads as `T::default()`); one that is sent
/// must be JSON of `T` (its fields denied when unknown), within `MAX_JSON_BODY`. For
/// endpoints with nothing to say today: a client's 10 MB or non-UTF-8 body is an error, not
/// ignored, and fields added later are not silently dropped by older servers.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, crate::MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "request bodies are limited to {} bytes",
                        crate::MAX_JSON_BODY
                    ),
                )
            })?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(OptionalJson(v))
    }
}

/// serde's words, as a person reads them: `"field: must be a whole number, not a string"`
/// for axum's "Failed to deserialize the JSON body into the target type: field: invalid
/// type: string \"x\", expected u64 at line 1 column 9".
pub fn plain_serde_message(text: &str) -> String {
    let mut s = text;
    for prefix in [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to parse the request body as JSON: ",
        "Failed to deserialize query string: ",
    ] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    // " at line 1 column 9": where in the body, which the field name already says.
    let s = match s.rfind(" at line ") {
        Some(i) if s[i..].contains(" column ") => &s[..i],
        _ => s,
    };
    let kind = |t: &str| -> String {
        let t = t.trim();
        match t {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
            "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
            "f32" | "f64" => "a number".into(),
            "a boolean" | "bool" => "true or false".into(),
            "a string" => "a string".into(),
            other => other
                .trim_start_matches("a ")
                .to_string()
                .replace("map", "an object")
                .replace("sequence", "an array"),
        }
    };
    let (field, rest) = match s.split_once(": ") {
        Some((f, r)) if !f.contains(' ') => (Some(f), r),
        _ => (None, s),
    };
    let said = if let Some(r) = rest.strip_prefix("invalid type: ") {
        match r.split_once(", expected ") {
            Some((got, want)) => {
                let got = got.split(' ').next().unwrap_or(got);
                format!("must be {}, not {}", kind(want), article(got))
            }
            None => rest.to_string(),
        }
    } else if let Some(r) = rest.strip_prefix("invalid value: ") {
        match r.split_once(", expected ") {
            Some((got, want)) => format!("must be {}, not {got}", kind(want)),
            None => rest.to_string(),
        }
    } else if let Some(r) = rest.strip_prefix("missing field ") {
        return format!("{} is required", r.trim_matches('`'));
    } else if let Some(r) = rest.strip_prefix("unknown field ") {
        let (name, expected) = r.split_once(", expected ").unwrap_or((r, ""));
        let name = name.trim_matches('`');
        let at = field.map(|f| format!("{f}.")).unwrap_or_default();
        return match expected {
            "" => format!("{at}{name} is not a field here"),
            e => format!("{at}{name} is not a field here (expected {e})"),
        };
    } else {
        rest.to_string()
    };
    match field {
        Some(f) => format!("{f}: {said}"),
        None => said,
    }
}

fn article(kind: &str) -> String {
    match kind {
        "integer" => "a number".into(),
        "floating" => "a number".into(),
        "boolean" => "true or false".into(),
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "unit" | "null" => "null".into(),
        "string" => "a string".into(),
        other => other.into(),
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request("invalid_query", plain_serde_message(&e.body_text()))
            })
    }
}

pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The caller's API key. Every `/v1` handler takes one, and scopes its queries to the
/// key's application.
pub struct Auth(pub ApiKey);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api key>"))?;
        let Some(key) = state.db.find_api_key(secret).await? else {
            return Err(ApiError::unauthorized("invalid API key"));
        };
        if let Some(slot) = parts.extensions.get::<crate::access_log::KeySlot>() {
            slot.fill(&key.prefix);
        }
        if let Err(retry_after) = state.take_token(&key.id) {
            return Err(ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests for this API key",
                )
            });
        }
        Ok(Auth(key))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_serde_message as plain;

    #[test]
    fn serde_rejections_read_as_sentences_with_the_field() {
        let cases = [
            (
                "Failed to deserialize the JSON body into the target type: empty_timeout_seconds: invalid type: string \"x\", expected u64 at line 1 column 30",
                "empty_timeout_seconds: must be a whole number, 0 or more, not a string",
            ),
            (
                "Failed to deserialize the JSON body into the target type: missing field `room_id` at line 1 column 2",
                "room_id is required",
            ),
            (
                "Failed to deserialize the JSON body into the target type: policy: unknown field `colour`, expected one of `layout`, `auto_composite` at line 1 column 20",
                "policy.colour is not a field here (expected one of `layout`, `auto_composite`)",
            ),
            (
                "Failed to deserialize the JSON body into the target type: enabled: invalid type: integer `1`, expected a boolean at line 1 column 12",
                "enabled: must be true or false, not a number",
            ),
            (
                "Failed to deserialize query string: limit: invalid digit found in string",
                "limit: invalid digit found in string",
            ),
        ];
        for (axum, ours) in cases {
            assert_eq!(plain(axum), ours);
        }
    }
}
