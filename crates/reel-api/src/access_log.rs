//! One INFO line per HTTP request (`log.access_log`): method, path without its query
//! (signed links and tokens live there), status, milliseconds, and the prefix of the API
//! key that made it (filled in by the `Auth` extractor; never the key).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the `Auth` extractor leaves the caller's key prefix for the access log.
#[derive(Clone, Default)]
pub struct KeySlot(Arc<Mutex<Option<String>>>);

impl KeySlot {
    pub fn fill(&self, prefix: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(prefix.to_string());
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

pub async fn log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let slot = KeySlot::default();
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    let key = slot.take();
    tracing::info!(
        target: "reel::access",
        %method,
        path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        key = key.as_deref().unwrap_or("-"),
        "http"
    );
    resp
}
