//! `GET /publish`: a page that publishes the browser's camera and microphone over WHIP,
//! for trying Reel without writing a client. The token is typed in, or given after `#` in
//! the address, which the browser never sends: it reaches no log.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/publish.html");

pub async fn page() -> Response {
    let mut resp = PAGE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Its own script and style only; media and WHIP requests may go to any Reel address.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src *; media-src blob: mediastream:; base-uri 'none'; form-action 'none'",
        ),
    );
    resp
}
