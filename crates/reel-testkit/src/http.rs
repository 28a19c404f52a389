//! A blocking HTTP client for tests: every status comes back as data, never as an error.

use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are answers to check, not to follow.
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `method` on `url` with optional bearer token and body (content type, bytes).
pub fn request(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Result<Response, String> {
    request_with(method, url, bearer, &[], body)
}

/// Like `request`, with extra headers.
pub fn request_with(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<Response, String> {
    let agent = agent();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if let Some(token) = bearer {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    let result = match body {
        Some((content_type, bytes)) => {
            let req = builder
                .header("Content-Type", content_type)
                .body(bytes.to_vec())
                .map_err(|e| e.to_string())?;
            agent.run(req)
        }
        None => {
            let req = builder.body(()).map_err(|e| e.to_string())?;
            agent.run(req)
        }
    };
    let mut resp = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn json(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> Result<Response, String> {
    request(
        method,
        url,
        bearer,
        Some(("application/json", body.to_string().as_bytes())),
    )
}
