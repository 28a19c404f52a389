//! Where finished assets go: a customer's S3 (or S3-compatible), Azure Blob or GCS bucket,
//! or a directory on this server, all through `object_store`.
//!
//! - [`Destination`] parses a `destinationUrl` and names the objects in it (the seed's
//!   `{yyyyMMddHHmmss}_{applicationKey}_{callId}.{format}` when no file name is given).
//! - [`Store::upload_file`] streams a local file up (multipart, 8 MiB parts by default, a few
//!   in flight), hashing it as it reads, then **verifies** the object: its size always, and
//!   its content either through the S3 ETag rule (MD5, or MD5 of part MD5s + `-N`) or, where
//!   the store's ETag proves nothing (Azure, files), by reading it back and comparing SHA-256.
//! - Every error gets a stable code and tells whether trying again can help; credentials are
//!   scrubbed from every message (S3 error bodies echo the access key id).

use futures_util::stream::{FuturesUnordered, StreamExt};
use md5::{Digest as _, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("destination_invalid: {0}")]
    Invalid(String),
    /// The store answered or could not be reached. `code` is stable, for APIs and events.
    #[error("{code}: {message}")]
    Destination {
        code: &'static str,
        message: String,
        transient: bool,
    },
    #[error("local_file_error: {0}")]
    Local(#[from] std::io::Error),
}

impl BlobError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "destination_invalid",
            Self::Destination { code, .. } => code,
            Self::Local(_) => "local_file_error",
        }
    }

    /// Whether the same request may succeed later (network, 5xx, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Destination {
                transient: true,
                ..
            }
        )
    }
}

pub type Result<T> = std::result::Result<T, BlobError>;

/// Server-wide settings: where S3-compatible, GCS and Azure endpoints are, and how patient
/// each request is. Defaults reach the public clouds over HTTPS.
#[derive(Debug, Clone)]
pub struct Settings {
    /// An S3-compatible endpoint (R2, Spaces, MinIO, SeaweedFS); None is AWS.
    pub s3_endpoint: Option<String>,
    /// Bucket in the host name (AWS style) rather than in the path.
    pub s3_virtual_hosted: bool,
    /// GCS's S3-interoperable XML API, used with HMAC keys.
    pub gcs_endpoint: String,
    /// Blob endpoint with `{account}` in it; None is `https://{account}.blob.core.windows.net`.
    pub azure_endpoint: Option<String>,
    /// Plain HTTP endpoints (emulators, closed networks).
    pub allow_http: bool,
    /// `file://` destinations must lie under this directory; None refuses them.
    pub file_root: Option<PathBuf>,
    pub request_timeout: Duration,
    /// Retries of one request inside `object_store` before the upload as a whole is retried.
    pub request_retries: usize,
    /// Multipart part size; S3 needs at least 5 MiB for all parts but the last.
    pub part_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            s3_endpoint: None,
            s3_virtual_hosted: true,
            gcs_endpoint: "https://storage.googleapis.com".into(),
            azure_endpoint: None,
            allow_http: false,
            file_root: None,
            request_timeout: Duration::from_secs(60),
            request_retries: 3,
            part_size: 8 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Azure,
    Gcs,
    File,
}

/// A parsed `destinationUrl`: a container (bucket, or account + container, or a directory),
/// a folder inside it, and maybe a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub kind: Kind,
    /// Bucket (S3, GCS), container (Azure), or "" (file).
    pub bucket: String,
    /// Azure storage account.
    pub account: String,
    /// Folder inside the bucket, without leading or trailing '/'; for file:// the absolute
    /// directory without its leading '/'.
    pub folder: String,
    pub file_name: Option<String>,
}

/// What the default object name is made of.
pub struct NameParts<'a> {
    pub started_at_ms: i64,
    /// The application's key (Reel's application id).
    pub application_key: &'a str,
    /// The call: the session id (or a SIP Call-ID for SIPREC).
    pub call_id: &'a str,
    pub asset_id: &'a str,
    pub format: &'a str,
    /// The recording has several assets: each name gets `_{asset_id}` so none collide.
    pub several: bool,
}

fn safe_segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Destination {
    pub fn parse(url: &str) -> Result<Destination> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            BlobError::Invalid("expected s3://, azure://, gs:// or file://".into())
        })?;
        let kind = match scheme {
            "s3" => Kind::S3,
            "azure" => Kind::Azure,
            "gs" => Kind::Gcs,
            "file" => Kind::File,
            other => return Err(BlobError::Invalid(format!("unsupported scheme {other:?}"))),
        };
        if rest.split('/').any(|s| s == "..") {
            return Err(BlobError::Invalid("a path must not contain ..".into()));
        }
        let mut segments: Vec<&str> = rest.split('/').collect();
        let (account, bucket) = match kind {
            Kind::S3 | Kind::Gcs => (String::new(), segments.remove(0).to_string()),
            Kind::Azure => {
                if segments.len() < 2 {
                    return Err(BlobError::Invalid(
                        "azure://account/container/[path]".into(),
                    ));
                }
                let account = segments.remove(0).to_string();
                (account, segments.remove(0).to_string())
            }
            Kind::File => {
                if segments.first() != Some(&"") {
                    return Err(BlobError::Invalid(
                        "file:// needs an absolute path (file:///…)".into(),
                    ));
                }
                segments.remove(0);
                (String::new(), String::new())
            }
        };
        if kind != Kind::File && bucket.is_empty() {
            return Err(BlobError::Invalid("no bucket or container".into()));
        }
        // A last segment with a dot names a file; a trailing '/' or none names a folder.
        let file_name = match segments.last() {
            Some(last) if last.contains('.') => Some(last.to_string()),
            _ => None,
        };
        if file_name.is_some() {
            segments.pop();
        }
        let folder = segments
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        Ok(Destination {
            kind,
            bucket,
            account,
            folder,
            file_name,
        })
    }

    /// The object key of one asset. With no file name in the URL:
    /// `{yyyyMMddHHmmss UTC}_{applicationKey}_{callId}.{format}`, or with `_{assetId}` before
    /// the extension when the recording has several assets; a given file name is used as is
    /// for a single asset and gets the same `_{assetId}` suffix for several.
    /// The key of a recording's transcript: the recording's own name (as one asset) with
    /// `-transcript.{ext}` in place of its extension, so it sits beside the recording.
    pub fn transcript_key(&self, n: &NameParts, ext: &str) -> String {
        let key = self.object_key(&NameParts {
            several: false,
            ..*n
        });
        let (folder, name) = match key.rsplit_once('/') {
            Some((folder, name)) => (format!("{folder}/"), name),
            None => (String::new(), key.as_str()),
        };
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        format!("{folder}{stem}-transcript.{ext}")
    }

    pub fn object_key(&self, n: &NameParts) -> String {
        let suffix = if n.several {
            format!("_{}", safe_segment(n.asset_id))
        } else {
            String::new()
        };
        let name = match &self.file_name {
            Some(f) if suffix.is_empty() => f.clone(),
            Some(f) => match f.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}{suffix}.{ext}"),
                None => format!("{f}{suffix}"),
            },
            None => {
                let ts = chrono::DateTime::from_timestamp_millis(n.started_at_ms)
                    .unwrap_or_default()
                    .format("%Y%m%d%H%M%S");
                format!(
                    "{ts}_{}_{}{suffix}.{}",
                    safe_segment(n.application_key),
                    safe_segment(n.call_id),
                    n.format
                )
            }
        };
        if self.folder.is_empty() {
            name
        } else {
            format!("{}/{name}", self.folder)
        }
    }

    /// Whether this server lets recordings go here: `file://` only under `file_root`.
    pub fn check_allowed(&self, s: &Settings) -> Result<()> {
        if self.kind != Kind::File {
            return Ok(());
        }
        let root = s.file_root.as_ref().ok_or_else(|| {
            BlobError::Invalid(
                "file:// destinations are disabled on this server (storage.file_root)".into(),
            )
        })?;
        if !Path::new("/").join(&self.folder).starts_with(root) {
            return Err(BlobError::Invalid(format!(
                "file:// destinations must be under {}",
                root.display()
            )));
        }
        Ok(())
    }

    /// The URL of an object in this destination, in the same scheme as `destinationUrl`.
    pub fn url_of(&self, key: &str) -> String {
        match self.kind {
            Kind::S3 => format!("s3://{}/{key}", self.bucket),
            Kind::Gcs => format!("gs://{}/{key}", self.bucket),
            Kind::Azure => format!("azure://{}/{}/{key}", self.account, self.bucket),
            Kind::File => format!("file:///{key}"),
        }
    }
}

/// An uploaded and verified object.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub size: u64,
    pub sha256: String,
    /// How the content was verified: `etag` or `read_back`.
    pub verified_by: &'static str,
}

enum Backend {
    S3(object_store::aws::AmazonS3),
    Azure(object_store::azure::MicrosoftAzure),
    Gcs(object_store::gcp::GoogleCloudStorage),
    File(LocalFileSystem),
}

/// An opened destination, with the credentials it was opened with (for scrubbing).
pub struct Store {
    backend: Backend,
    secrets: Vec<String>,
    part_size: usize,
}

fn client_options(s: &Settings) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(s.allow_http)
        .with_timeout(s.request_timeout)
        .with_connect_timeout(Duration::from_secs(5))
}

fn retry_config(s: &Settings) -> RetryConfig {
    RetryConfig {
        max_retries: s.request_retries,
        retry_timeout: s.request_timeout * 2,
        ..Default::default()
    }
}

fn split_creds<'a>(creds: &'a str, n: usize, what: &str) -> Result<Vec<&'a str>> {
    let parts: Vec<&str> = creds.trim().splitn(n, ':').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        return Err(BlobError::Invalid(format!("credentials must be {what}")));
    }
    Ok(parts)
}

impl Store {
    /// Opens `dest` with the decrypted `credentials` (`KEY:SECRET:REGION` for S3, the account
    /// key for Azure, `ACCESS_KEY:SECRET` or a service-account JSON for GCS). No request is
    /// made until the first operation.
    pub fn open(dest: &Destination, credentials: Option<&str>, s: &Settings) -> Result<Store> {
        // Builder errors may quote what they could not parse: scrub every credential part.
        let parts: Vec<&str> = credentials
            .map(|c| {
                c.split(':')
                    .chain([c.trim()])
                    .filter(|p| p.len() >= 4)
                    .collect()
            })
            .unwrap_or_default();
        let invalid = |e: object_store::Error| {
            let mut text = e.to_string();
            for p in &parts {
                text = text.replace(p, "[redacted]");
            }
            BlobError::Invalid(text)
        };
        let mut secrets = Vec::new();
        let backend = match dest.kind {
            Kind::S3 | Kind::Gcs
                if credentials.is_some_and(|c| !c.trim_start().starts_with('{')) =>
            {
                let creds = credentials.unwrap_or_default();
                let (key, secret, region) = if dest.kind == Kind::S3 {
                    let p = split_creds(creds, 3, "KEY:SECRET:REGION")?;
                    (p[0], p[1], p[2])
                } else {
                    let p = split_creds(creds, 2, "ACCESS_KEY:SECRET")?;
                    (p[0], p[1], "auto")
                };
                secrets.extend([key.to_string(), secret.to_string()]);
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&dest.bucket)
                    .with_region(region)
                    .with_access_key_id(key)
                    .with_secret_access_key(secret)
                    .with_client_options(client_options(s))
                    .with_retry(retry_config(s));
                let endpoint = match dest.kind {
                    Kind::Gcs => Some(s.gcs_endpoint.clone()),
                    _ => s.s3_endpoint.clone(),
                };
                if let Some(ep) = endpoint {
                    b = b.with_endpoint(ep).with_virtual_hosted_style_request(
                        s.s3_virtual_hosted && dest.kind == Kind::S3 && s.s3_endpoint.is_none(),
                    );
                }
                Backend::S3(b.build().map_err(invalid)?)
            }
            Kind::S3 => {
                // No credentials: the server's own (environment, instance role).
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&dest.bucket)
                    .with_client_options(client_options(s))
                    .with_retry(retry_config(s));
                if let Some(ep) = &s.s3_endpoint {
                    b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
                }
                Backend::S3(b.build().map_err(invalid)?)
            }
            Kind::Gcs => {
                let mut b = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(&dest.bucket)
                    .with_client_options(client_options(s))
                    .with_retry(retry_config(s));
                if let Some(json) = credentials {
                    secrets.push(json.to_string());
                    b = b.with_service_account_key(json);
                }
                Backend::Gcs(b.build().map_err(invalid)?)
            }
            Kind::Azure => {
                let key = credentials
                    .ok_or_else(|| BlobError::Invalid("Azure needs the account key".into()))?
                    .trim();
                secrets.push(key.to_string());
                let mut b = MicrosoftAzureBuilder::new()
                    .with_account(&dest.account)
                    .with_container_name(&dest.bucket)
                    .with_access_key(key)
                    .with_client_options(client_options(s))
                    .with_retry(retry_config(s));
                if let Some(ep) = &s.azure_endpoint {
                    b = b.with_endpoint(ep.replace("{account}", &dest.account));
                }
                Backend::Azure(b.build().map_err(invalid)?)
            }
            Kind::File => {
                dest.check_allowed(s)?;
                std::fs::create_dir_all(Path::new("/").join(&dest.folder))?;
                Backend::File(LocalFileSystem::new_with_prefix("/").map_err(invalid)?)
            }
        };
        Ok(Store {
            backend,
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            part_size: s.part_size.max(5 << 20),
        })
    }

    fn store(&self) -> &dyn ObjectStore {
        match &self.backend {
            Backend::S3(s) => s,
            Backend::Azure(s) => s,
            Backend::Gcs(s) => s,
            Backend::File(s) => s,
        }
    }

    fn signer(&self) -> Option<&dyn Signer> {
        match &self.backend {
            Backend::S3(s) => Some(s),
            Backend::Azure(s) => Some(s),
            Backend::Gcs(s) => Some(s),
            Backend::File(_) => None,
        }
    }

    /// Removes every credential from a message before it can reach a log, a table or a client.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[redacted]");
        }
        out
    }

    fn classify(&self, e: object_store::Error) -> BlobError {
        use object_store::Error as E;
        let message = self.scrub(&error_chain(&e));
        let (code, transient) = match &e {
            E::PermissionDenied { .. } => ("destination_forbidden", false),
            E::Unauthenticated { .. } => ("destination_unauthorized", false),
            E::NotFound { .. }
                if message.contains("NoSuchBucket") || message.contains("ContainerNotFound") =>
            {
                ("destination_bucket_not_found", false)
            }
            E::NotFound { .. } => ("destination_not_found", false),
            E::InvalidPath { .. } | E::NotSupported { .. } => ("destination_invalid", false),
            _ => match http_status(&message) {
                Some(400..=499) => ("destination_rejected", false),
                _ => ("destination_unreachable", true),
            },
        };
        BlobError::Destination {
            code,
            message,
            transient,
        }
    }

    fn path(&self, key: &str) -> Result<ObjPath> {
        ObjPath::parse(key).map_err(|e| BlobError::Invalid(e.to_string()))
    }

    /// Streams `local` to `key` and verifies what landed. Partial multipart uploads are
    /// aborted on failure, so no half object is left behind.
    pub async fn upload_file(&self, key: &str, local: &Path) -> Result<Uploaded> {
        let path = self.path(key)?;
        let mut file = tokio::fs::File::open(local).await?;
        let len = file.metadata().await?.len();
        let mut sha = Sha256::new();
        let (etag, expected_etag) = if len <= self.part_size as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await?;
            sha2::Digest::update(&mut sha, &buf);
            let md5 = hex::encode(Md5::digest(&buf));
            let put = self
                .store()
                .put(&path, PutPayload::from(buf))
                .await
                .map_err(|e| self.classify(e))?;
            (put.e_tag, md5)
        } else {
            let mut upload = self
                .store()
                .put_multipart(&path)
                .await
                .map_err(|e| self.classify(e))?;
            let mut part_md5s = Vec::new();
            let mut in_flight = FuturesUnordered::new();
            let sent: Result<()> = async {
                loop {
                    let mut part = Vec::with_capacity(self.part_size);
                    (&mut file)
                        .take(self.part_size as u64)
                        .read_to_end(&mut part)
                        .await?;
                    if part.is_empty() {
                        break;
                    }
                    sha2::Digest::update(&mut sha, &part);
                    part_md5s.extend_from_slice(&Md5::digest(&part));
                    in_flight.push(upload.put_part(PutPayload::from(part)));
                    // Bounded memory: at most three parts in the air.
                    while in_flight.len() >= 3 {
                        if let Some(r) = in_flight.next().await {
                            r.map_err(|e| self.classify(e))?;
                        }
                    }
                }
                while let Some(r) = in_flight.next().await {
                    r.map_err(|e| self.classify(e))?;
                }
                Ok(())
            }
            .await;
            drop(in_flight);
            if let Err(e) = sent {
                let _ = upload.abort().await;
                return Err(e);
            }
            let parts = part_md5s.len() / 16;
            let put = match upload.complete().await {
                Ok(p) => p,
                Err(e) => {
                    let _ = upload.abort().await;
                    return Err(self.classify(e));
                }
            };
            (
                put.e_tag,
                format!("{}-{parts}", hex::encode(Md5::digest(&part_md5s))),
            )
        };
        let sha256 = hex::encode(sha2::Digest::finalize(sha));
        let verified_by = self
            .verify(&path, len, &sha256, etag.as_deref(), &expected_etag)
            .await?;
        Ok(Uploaded {
            size: len,
            sha256,
            verified_by,
        })
    }

    /// Size from a HEAD; content from the ETag where the store's ETag is the S3 MD5 rule,
    /// else by reading the object back.
    async fn verify(
        &self,
        path: &ObjPath,
        len: u64,
        sha256: &str,
        etag: Option<&str>,
        expected_etag: &str,
    ) -> Result<&'static str> {
        let meta = self
            .store()
            .head(path)
            .await
            .map_err(|e| self.classify(e))?;
        let mismatch = |what: String| BlobError::Destination {
            code: "destination_verification_failed",
            message: what,
            transient: true,
        };
        if meta.size != len {
            return Err(mismatch(format!(
                "the stored object has {} bytes, the asset {len}",
                meta.size
            )));
        }
        let etag_proves = matches!(self.backend, Backend::S3(_))
            && etag.is_some_and(|t| t.trim_matches('"').eq_ignore_ascii_case(expected_etag));
        if etag_proves {
            return Ok("etag");
        }
        let mut stream = self
            .store()
            .get(path)
            .await
            .map_err(|e| self.classify(e))?
            .into_stream();
        let mut h = Sha256::new();
        while let Some(chunk) = stream.next().await {
            sha2::Digest::update(&mut h, chunk.map_err(|e| self.classify(e))?);
        }
        let got = hex::encode(sha2::Digest::finalize(h));
        if got != sha256 {
            return Err(mismatch(format!(
                "the stored object's SHA-256 is {got}, the asset's {sha256}"
            )));
        }
        Ok("read_back")
    }

    /// The provider's presigned GET URL; None for `file://` (served by Reel itself).
    pub async fn presign(&self, key: &str, expires_in: Duration) -> Result<Option<String>> {
        let Some(signer) = self.signer() else {
            return Ok(None);
        };
        let path = self.path(key)?;
        let url = signer
            .signed_url(http::Method::GET, &path, expires_in)
            .await
            .map_err(|e| self.classify(e))?;
        Ok(Some(url.to_string()))
    }

    /// Deletes the object; an object already gone counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The HTTP status named in an `object_store` error text ("…status code: 400 Bad Request…").
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

/// SHA-256 of a local file, hex.
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut h, &buf[..n]);
    }
    Ok(hex::encode(sha2::Digest::finalize(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(several: bool) -> NameParts<'static> {
        NameParts {
            started_at_ms: 1_763_712_000_000, // 2025-11-21 08:00:00 UTC
            application_key: "app_1",
            call_id: "ses_9",
            asset_id: "ast_7",
            format: "webm",
            several,
        }
    }

    #[test]
    fn default_names_follow_the_seed_rule() {
        let d = Destination::parse("s3://bucket/calls/").unwrap();
        assert_eq!(d.folder, "calls");
        assert_eq!(
            d.object_key(&parts(false)),
            "calls/20251121080000_app_1_ses_9.webm"
        );
        assert_eq!(
            d.object_key(&parts(true)),
            "calls/20251121080000_app_1_ses_9_ast_7.webm"
        );
        let bare = Destination::parse("gs://bucket").unwrap();
        assert_eq!(
            bare.object_key(&parts(false)),
            "20251121080000_app_1_ses_9.webm"
        );
        assert_eq!(bare.url_of("x.webm"), "gs://bucket/x.webm");
    }

    #[test]
    fn a_transcript_sits_beside_its_recording() {
        let d = Destination::parse("s3://bucket/calls/").unwrap();
        assert_eq!(
            d.transcript_key(&parts(true), "vtt"),
            "calls/20251121080000_app_1_ses_9-transcript.vtt"
        );
        let named = Destination::parse("azure://acct/cont/a/b/meeting.webm").unwrap();
        assert_eq!(
            named.transcript_key(&parts(false), "json"),
            "a/b/meeting-transcript.json"
        );
    }

    #[test]
    fn given_file_names_are_kept_or_suffixed() {
        let d = Destination::parse("azure://acct/cont/a/b/meeting.webm").unwrap();
        assert_eq!((d.account.as_str(), d.bucket.as_str()), ("acct", "cont"));
        assert_eq!(d.object_key(&parts(false)), "a/b/meeting.webm");
        assert_eq!(d.object_key(&parts(true)), "a/b/meeting_ast_7.webm");
        assert_eq!(
            d.url_of("a/b/meeting.webm"),
            "azure://acct/cont/a/b/meeting.webm"
        );
        let f = Destination::parse("file:///srv/rec/").unwrap();
        assert_eq!(f.folder, "srv/rec");
        assert_eq!(f.url_of("srv/rec/x.webm"), "file:///srv/rec/x.webm");
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "s3:/x",
            "ftp://x/y",
            "s3://b/../etc",
            "azure://acct",
            "file://rel/x",
            "s3:///x",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scrubbing_and_status_parsing() {
        let s = Settings::default();
        let d = Destination::parse("s3://bucket/x/").unwrap();
        let st = Store::open(&d, Some("AKIAEXAMPLE:verysecret:us-east-1"), &s).unwrap();
        assert_eq!(
            st.scrub("<AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId> verysecret"),
            "<AWSAccessKeyId>[redacted]</AWSAccessKeyId> [redacted]"
        );
        assert_eq!(
            http_status("Server returned non-2xx status code: 400 Bad Request: x"),
            Some(400)
        );
        assert_eq!(http_status("connection refused"), None);
    }

    #[tokio::test]
    async fn file_destinations_upload_verify_and_stay_under_their_root() {
        let root = tempfile::tempdir().unwrap();
        let s = Settings {
            file_root: Some(root.path().to_path_buf()),
            part_size: 5 << 20,
            ..Default::default()
        };
        let local = root.path().join("in.bin");
        let data: Vec<u8> = (0..(11u32 << 20) / 4)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        std::fs::write(&local, &data).unwrap();
        let url = format!("file://{}/out/", root.path().display());
        let d = Destination::parse(&url).unwrap();
        let st = Store::open(&d, None, &s).unwrap();
        let key = d.object_key(&parts(false));
        let up = st.upload_file(&key, &local).await.unwrap();
        assert_eq!(up.size, data.len() as u64);
        assert_eq!(up.verified_by, "read_back");
        assert_eq!(std::fs::read(format!("/{key}")).unwrap(), data);
        st.delete(&key).await.unwrap();
        st.delete(&key).await.unwrap();
        let outside = Destination::parse("file:///etc/").unwrap();
        assert_eq!(
            Store::open(&outside, None, &s).err().map(|e| e.code()),
            Some("destination_invalid")
        );
    }
}
