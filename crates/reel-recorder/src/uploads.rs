//! Uploads of a recording's assets to its `destinationUrl`, and everything else that opens a
//! customer's store (presigned links, deletions).
//!
//! A recording with a destination goes `processing → uploading → available`: every asset is
//! named (the seed's rule), streamed up, verified, and only then is `recording_available`
//! sent, with the object URLs. Transient errors (store down, timeouts, 5xx) are retried with
//! backoff for `retry_window`; a destination error (403, no bucket, bad credentials) fails the
//! recording with the error's code at once. The local copy is removed only after a verified
//! upload, and never when the room's policy (or the server) keeps it. The job is re-run at
//! start-up for recordings a restart left `uploading`.

use crate::Result;
use reel_blob::{Destination, NameParts, Store};
use reel_core::options::{seal, RoomPolicy};
use reel_core::UploadState;
use reel_db::{Asset, Db, Recording};
use std::time::{Duration, Instant};

/// What the server says about uploads (config `[storage]`).
#[derive(Clone)]
pub struct UploadContext {
    pub settings: reel_blob::Settings,
    pub secrets_key: [u8; 32],
    /// Keep local copies of uploaded assets, whatever rooms say.
    pub keep_local_copy: bool,
    /// How long transient errors are retried before the upload fails.
    pub retry_window: Duration,
}

/// How an upload job ended.
#[derive(Debug)]
pub enum UploadOutcome {
    /// Every asset is in the destination: (asset id, object URL).
    Done(Vec<(String, String)>),
    Failed {
        asset_id: Option<String>,
        code: String,
        message: String,
    },
}

fn destination_of(rec: &Recording) -> Option<&str> {
    rec.options["destinationUrl"].as_str()
}

/// Opens the recording's destination with its (decrypted) credentials.
pub fn open_store(ctx: &UploadContext, rec: &Recording) -> reel_blob::Result<(Destination, Store)> {
    let url = destination_of(rec).ok_or_else(|| {
        reel_blob::BlobError::Invalid("the recording has no destinationUrl".into())
    })?;
    let dest = Destination::parse(url)?;
    let creds = match &rec.credentials_sealed {
        Some(sealed) => Some(seal::open(&ctx.secrets_key, sealed).ok_or_else(|| {
            reel_blob::BlobError::Invalid(
                "the stored credentials cannot be opened with this server's key".into(),
            )
        })?),
        None => None,
    };
    let store = Store::open(&dest, creds.as_deref(), &ctx.settings)?;
    Ok((dest, store))
}

pub(crate) async fn room_policy(db: &Db, room_id: &str) -> RoomPolicy {
    db.room_by_id_any(room_id)
        .await
        .ok()
        .and_then(|r| serde_json::from_value(r.policy).ok())
        .unwrap_or_default()
}

/// Names every asset of `rec` in its destination and queues the uploads. False when the
/// recording has no destination (its assets stay on Reel's own storage).
pub async fn prepare(db: &Db, rec: &Recording, assets: &[Asset]) -> Result<bool> {
    let Some(url) = destination_of(rec) else {
        return Ok(false);
    };
    // Validated when given; if it still cannot be parsed, the upload job fails the recording
    // with `destination_invalid` rather than leaving it in `processing`.
    let Ok(dest) = Destination::parse(url) else {
        return Ok(true);
    };
    for a in assets {
        let key = dest.object_key(&NameParts {
            started_at_ms: rec.started_at.unwrap_or(a.start_at),
            application_key: &rec.application_id,
            call_id: &a.session_id,
            asset_id: &a.id,
            format: &a.format,
            several: assets.len() > 1,
        });
        db.set_asset_destination(&a.id, &key, &dest.url_of(&key))
            .await?;
    }
    Ok(true)
}

/// Uploads every asset of the recording not yet uploaded. Errors are outcomes, not `Err`:
/// `Err` is left for the database failing under us.
pub async fn upload_recording(
    db: &Db,
    ctx: &UploadContext,
    recording_id: &str,
) -> Result<UploadOutcome> {
    let rec = db.recording_by_id(recording_id).await?;
    let failed = |asset_id: Option<&str>, e: &reel_blob::BlobError| UploadOutcome::Failed {
        asset_id: asset_id.map(str::to_string),
        code: e.code().to_string(),
        message: e.to_string(),
    };
    let (_, store) = match open_store(ctx, &rec) {
        Ok(s) => s,
        Err(e) => return Ok(failed(None, &e)),
    };
    let keep_local = ctx.keep_local_copy || room_policy(db, &rec.room_id).await.keep_local_copy;
    let mut done = Vec::new();
    for asset in db.assets_of_recording(recording_id).await? {
        let (Some(key), Some(url)) = (asset.object_key.clone(), asset.destination_url.clone())
        else {
            continue;
        };
        if asset.upload_state == UploadState::Uploaded {
            done.push((asset.id, url));
            continue;
        }
        if let Err(e) = upload_one(db, ctx, &store, &asset, &key).await {
            let message: String = e.to_string().chars().take(1000).collect();
            tracing::warn!(asset = %asset.id, error = %message, "upload failed");
            db.set_upload_outcome(&asset.id, Err(&message)).await?;
            return Ok(failed(Some(&asset.id), &e));
        }
        db.set_upload_outcome(&asset.id, Ok(())).await?;
        tracing::info!(asset = %asset.id, %url, "uploaded and verified");
        if !keep_local && asset.local_copy {
            match tokio::fs::remove_file(&asset.path).await {
                Ok(()) => db.set_local_copy(&asset.id, false).await?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    db.set_local_copy(&asset.id, false).await?
                }
                Err(e) => tracing::warn!(asset = %asset.id, error = %e, "local copy not removed"),
            }
        }
        done.push((asset.id, url));
    }
    Ok(UploadOutcome::Done(done))
}

/// One asset, retried with backoff (1 s doubling to 60 s) while errors are transient.
async fn upload_one(
    db: &Db,
    ctx: &UploadContext,
    store: &Store,
    asset: &Asset,
    key: &str,
) -> reel_blob::Result<()> {
    let started = Instant::now();
    let mut backoff = Duration::from_secs(1);
    loop {
        let _ = db.count_upload_attempt(&asset.id).await;
        match store
            .upload_file(key, std::path::Path::new(&asset.path))
            .await
        {
            Ok(up) if up.sha256 != asset.sha256 => {
                // The object matches what was read, but that is not the file Reel made.
                return Err(reel_blob::BlobError::Destination {
                    code: "local_copy_corrupt",
                    message: format!(
                        "the local file's SHA-256 is {}, the asset's {}",
                        up.sha256, asset.sha256
                    ),
                    transient: false,
                });
            }
            Ok(up) => {
                tracing::debug!(asset = %asset.id, verified_by = up.verified_by, "verified");
                return Ok(());
            }
            Err(e) if e.is_transient() && started.elapsed() + backoff < ctx.retry_window => {
                tracing::warn!(asset = %asset.id, error = %e, retry_in = ?backoff, "upload interrupted; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The provider's presigned URL for an uploaded asset; None for assets on Reel's storage.
pub async fn presign(
    db: &Db,
    ctx: &UploadContext,
    asset: &Asset,
    expires_in: Duration,
) -> reel_blob::Result<Option<String>> {
    let (Some(key), Some(rec_id)) = (&asset.object_key, &asset.recording_id) else {
        return Ok(None);
    };
    if asset.upload_state != UploadState::Uploaded {
        return Ok(None);
    }
    let rec = db
        .recording_by_id(rec_id)
        .await
        .map_err(|e| reel_blob::BlobError::Invalid(e.to_string()))?;
    let (_, store) = open_store(ctx, &rec)?;
    store.presign(key, expires_in).await
}
