//! Serving asset files: with an API key (`/v1/assets/{id}/download`) or through an expiring
//! signed link that needs no key (`/download/{id}?expires=…&sig=…`), the link an application
//! hands to a browser. Both answer byte ranges, so players can seek.
//!
//! A link's signature is HMAC-SHA256 over `"{asset_id}:{expires}"` with the server's URL key
//! (kept in the data directory, mode 0600). Changing the id or the expiry breaks it; after
//! `expires` it answers 403.

use crate::extract::Query;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use reel_db::Asset;
use serde::Deserialize;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Longest link lifetime: 7 days.
pub const MAX_EXPIRES_IN: u64 = 7 * 24 * 3600;
pub const DEFAULT_EXPIRES_IN: u64 = 3600;

fn mac(key: &[u8], asset_id: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{asset_id}:{expires}").as_bytes());
    mac
}

pub fn sign(key: &[u8], asset_id: &str, expires: i64) -> String {
    hex::encode(mac(key, asset_id, expires).finalize().into_bytes())
}

fn verify(key: &[u8], asset_id: &str, expires: i64, sig: &str) -> bool {
    let Ok(bytes) = hex::decode(sig) else {
        return false;
    };
    // verify_slice compares in constant time.
    mac(key, asset_id, expires).verify_slice(&bytes).is_ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    expires: i64,
    sig: String,
}

/// `GET /download/{asset_id}?expires=&sig=`: no API key, the signature is the permission.
pub async fn signed_download(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !verify(&s.config.url_signing_key, &id, q.expires, &q.sig) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the link's signature does not match",
        ));
    }
    if q.expires <= reel_db::now_ms() / 1000 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "link_expired",
            "the link has expired",
        ));
    }
    let asset =
        s.db.asset_by_id(&id)
            .await
            .map_err(|_| ApiError::not_found("asset"))?;
    serve(&s, &asset, &headers).await
}

fn content_type(format: &str) -> &'static str {
    match format {
        "webm" => "video/webm",
        "mp4" => "video/mp4",
        "mka" => "audio/x-matroska",
        "mkv" => "video/x-matroska",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "m4a" => "audio/mp4",
        "json" => "application/json",
        "vtt" => "text/vtt; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range within `len`, or None for the whole.
fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Ok(None); // several ranges: answer with the whole file, as RFC 9110 allows
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    // A position past u64 is still a number: as an end or a suffix length it means "to the
    // end" (RFC 9110 §14.1.2 clamps ends to the length), as a start it is past the end.
    let number = |s: &str| -> Result<u64, ()> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        Ok(s.parse().unwrap_or(u64::MAX))
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n = number(n)?;
            (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
        }
        (a, "") => (number(a)?, len.checked_sub(1).ok_or(())?),
        (a, b) => (number(a)?, number(b)?.min(len.saturating_sub(1))),
    };
    if start > end || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// A link to the asset: the store's presigned URL once it is in a customer's bucket, else a
/// signed link to this server.
pub async fn link(
    s: &AppState,
    asset: &Asset,
    expires_in: u64,
) -> Result<crate::openapi::Link, ApiError> {
    let expires = reel_db::now_ms() / 1000 + expires_in as i64;
    let remote = reel_recorder::uploads::presign(
        &s.db,
        &s.config.uploads,
        asset,
        std::time::Duration::from_secs(expires_in),
    )
    .await
    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.code(), e.to_string()))?;
    if let Some(url) = remote {
        return Ok(crate::openapi::Link {
            url,
            expires_at: expires * 1000,
            served_by: "destination".into(),
        });
    }
    let sig = sign(&s.config.url_signing_key, &asset.id, expires);
    Ok(crate::openapi::Link {
        url: format!(
            "{}/download/{}?expires={expires}&sig={sig}",
            s.config.public_url.trim_end_matches('/'),
            asset.id
        ),
        expires_at: expires * 1000,
        served_by: "reel".into(),
    })
}

/// The file, or for an asset only in a customer's bucket a redirect to its presigned URL.
pub async fn serve(s: &AppState, asset: &Asset, headers: &HeaderMap) -> Result<Response, ApiError> {
    if !asset.local_copy && asset.upload_state == reel_core::UploadState::Uploaded {
        let link = link(s, asset, DEFAULT_EXPIRES_IN).await?;
        return Ok((StatusCode::FOUND, [(header::LOCATION, link.url)]).into_response());
    }
    let mut file = tokio::fs::File::open(&asset.path).await.map_err(|_| {
        ApiError::new(
            StatusCode::GONE,
            "asset_gone",
            "the asset's file is no longer on this server",
        )
    })?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let disposition = format!("attachment; filename=\"{}.{}\"", asset.id, asset.format);
    let common = [
        (
            header::CONTENT_TYPE,
            content_type(&asset.format).to_string(),
        ),
        (header::CONTENT_DISPOSITION, disposition),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    match parse_range(headers, len) {
        Ok(None) => {
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            Ok((common, [(header::CONTENT_LENGTH, len.to_string())], body).into_response())
        }
        Ok(Some((start, end))) => {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(ApiError::internal)?;
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(
                file.take(end - start + 1),
            ));
            let range = [
                (header::CONTENT_LENGTH, (end - start + 1).to_string()),
                (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
            ];
            Ok((StatusCode::PARTIAL_CONTENT, common, range, body).into_response())
        }
        Err(()) => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                "the requested range is not in the file",
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                format!("bytes */{len}").parse().expect("valid header"),
            );
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, v.parse().unwrap());
        parse_range(&h, len)
    }

    #[test]
    fn ranges_past_u64_are_clamped_not_refused() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(
            range("bytes=10-99999999999999999999999", 1000),
            Ok(Some((10, 999)))
        );
        assert_eq!(
            range("bytes=-99999999999999999999999", 1000),
            Ok(Some((0, 999)))
        );
        assert_eq!(range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(range("bytes=99999999999999999999999-", 1000), Err(()));
        assert_eq!(range("bytes=1000-1001", 1000), Err(()));
        assert_eq!(range("bytes=+5-9", 1000), Err(()));
        assert_eq!(range("bytes=a-9", 1000), Err(()));
    }
}
