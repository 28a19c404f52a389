//! WHIP (RFC 9725): `POST /whip/{room}` with an SDP offer creates a publication and returns
//! the answer; `DELETE` on the returned resource ends it. Trickle ICE and ICE restarts are
//! not supported: Reel is ICE-lite with a single host candidate, so the offer's candidates
//! (gathered before the POST by WHIP clients) are enough, and `PATCH` answers 405.
//! Every response carries CORS headers so a page on any origin can publish; authorization
//! is the bearer publish token, never a cookie.

use crate::extract::bearer;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reel_core::{PublicationId, PublicationKind};
use reel_db::{now_ms, PublishToken};
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{room_id}", post(publish).options(preflight))
        .route(
            "/{room_id}/{publication_id}",
            axum::routing::delete(unpublish)
                .patch(patch)
                .options(preflight),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            reel_whip::MAX_OFFER_BYTES,
        ))
        .layer(middleware::from_fn(cors))
}

/// Any origin may publish: authorization is the bearer publish token, never a cookie.
const CORS: &[(header::HeaderName, &str)] = &[
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "POST, DELETE, PATCH, OPTIONS",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Authorization, Content-Type, If-Match",
    ),
    (
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "Location, ETag, Link, Accept-Patch, X-Reel-Session-Id",
    ),
    (header::ACCESS_CONTROL_MAX_AGE, "600"),
];

async fn cors(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    for (name, value) in CORS {
        resp.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    resp
}

async fn preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/sdp"));
    resp
}

/// Checks the publish token against the room. 401: no or unknown token; 403: expired, or a
/// token for another room.
async fn authorize(
    s: &AppState,
    headers: &HeaderMap,
    room_id: &str,
) -> Result<PublishToken, ApiError> {
    let secret = bearer(headers)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <publish token>"))?;
    let token =
        s.db.find_publish_token(secret)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid publish token"))?;
    if token.expires_at <= now_ms() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_expired",
            "the publish token has expired",
        ));
    }
    if token.room_id != room_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_room",
            "the publish token is for another room",
        ));
    }
    Ok(token)
}

async fn publish(
    State(s): State<AppState>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Per client address, before anything reads the database.
    if let Some(ConnectInfo(client)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        if let Err(retry_after) = s.take_whip_offer(client.ip()) {
            return Err(ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many WHIP offers from this address",
                )
            });
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/sdp")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/sdp",
        ));
    }
    let token = authorize(&s, &headers, &room_id).await?;
    let offer = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_sdp", "the offer is not UTF-8 text"))?;
    // Cheap checks first, so a bad offer never creates a session.
    reel_whip::check_offer(offer)?;
    let room = match s.db.get_room(None, &room_id).await {
        Err(e) if e.is_unavailable() => return Err(ApiError::unavailable(e)),
        other => other.map_err(|_| ApiError::not_found("room"))?,
    };
    let kind: PublicationKind = token.kind.parse().map_err(ApiError::internal)?;
    let (ctx, answer) = s
        .recorder
        .publish(room, token.participant, kind, offer.to_string())
        .await?;
    s.live_resources.remember(
        ctx.publication.as_str(),
        &room_id,
        bearer(&headers).unwrap_or_default(),
    );
    let location = format!("/whip/{}/{}", room_id, ctx.publication);
    let mut resp = (StatusCode::CREATED, answer).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(ApiError::internal)?,
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", ctx.publication)).map_err(ApiError::internal)?,
    );
    h.insert(
        "x-reel-session-id",
        HeaderValue::from_str(ctx.session.as_str()).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

async fn unpublish(
    State(s): State<AppState>,
    Path((room_id, publication_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = PublicationId::parse(&publication_id)
        .ok_or_else(|| ApiError::not_found("WHIP resource"))?;
    let checked = async {
        let token = authorize(&s, &headers, &room_id).await?;
        let publication = match s.db.get_publication(id.as_str()).await {
            Err(e) if e.is_unavailable() => return Err(ApiError::unavailable(e)),
            other => other.map_err(|_| ApiError::not_found("WHIP resource"))?,
        };
        if publication.room_id != room_id || publication.participant != token.participant {
            return Err(ApiError::not_found("WHIP resource"));
        }
        Ok(())
    };
    match checked.await {
        Ok(()) => {}
        // The database cannot say; this process can, for the resources it created.
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            let bearer = bearer(&headers).unwrap_or_default();
            if !s.live_resources.allows(id.as_str(), &room_id, bearer) {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    s.live_resources.forget(id.as_str());
    s.recorder.unpublish(id);
    Ok(StatusCode::OK.into_response())
}

async fn patch() -> Response {
    let mut resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle_not_supported",
        "Reel does not support trickle ICE or ICE restarts: send all candidates in the offer",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    resp
}
