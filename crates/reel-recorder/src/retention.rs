//! Retention: assets older than their retention period are deleted, with their journals,
//! each deletion written to the audit log (`GET /v1/deletions`) and announced with
//! `recording.deleted`.
//!
//! The period is the room policy's `retention_days`, else the application's, else — only
//! for assets on Reel's own storage — the server default (7 days). Assets uploaded to a
//! customer's bucket are deleted there only when a room or application asks. A legal hold on
//! the recording or the room keeps everything. A deletion that fails is audited as `failed`
//! and tried again at the next sweep.

use crate::uploads::{open_store, room_policy, UploadContext};
use crate::Result;
use reel_core::{DeletionId, UploadState};
use reel_db::{now_ms, Asset, Db, Deletion};
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: usize,
    pub failed: usize,
    pub held: usize,
}

/// One pass over every asset at time `now` (ms since the epoch; a test clock may run ahead).
pub async fn sweep(
    db: &Db,
    ctx: &UploadContext,
    default_days: u32,
    now: i64,
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut app_days: HashMap<String, Option<i64>> = HashMap::new();
    let mut policies = HashMap::new();
    for asset in db.all_assets().await? {
        let policy = match policies.get(&asset.room_id) {
            Some(p) => p,
            None => {
                let p = room_policy(db, &asset.room_id).await;
                policies.entry(asset.room_id.clone()).or_insert(p)
            }
        };
        let app = match app_days.get(&asset.application_id) {
            Some(d) => *d,
            None => {
                let d = db.application_retention_days(&asset.application_id).await?;
                app_days.insert(asset.application_id.clone(), d);
                d
            }
        };
        let explicit = policy.retention_days.map(i64::from).or(app);
        let on_own_storage = asset.upload_state != UploadState::Uploaded;
        let Some(days) = explicit.or(on_own_storage.then_some(i64::from(default_days))) else {
            continue;
        };
        if asset.created_at + days * DAY_MS > now {
            continue;
        }
        let rec = match &asset.recording_id {
            Some(id) => db.recording_by_id(id).await.ok(),
            None => None,
        };
        if policy.legal_hold || rec.as_ref().is_some_and(|r| r.legal_hold) {
            report.held += 1;
            continue;
        }
        if delete_asset(db, ctx, &asset, "retention").await? {
            report.deleted += 1;
        } else {
            report.failed += 1;
        }
    }
    if report != SweepReport::default() {
        tracing::info!(?report, "retention sweep");
    }
    Ok(report)
}

/// Deletes an asset everywhere it is (customer object, local file, and the publication's
/// journals once no other asset needs them), audits it, and emits `recording.deleted`.
/// Ok(false): something could not be deleted; audited as failed, the asset row kept.
pub async fn delete_asset(
    db: &Db,
    ctx: &UploadContext,
    asset: &Asset,
    reason: &str,
) -> Result<bool> {
    let rec = match &asset.recording_id {
        Some(id) => db.recording_by_id(id).await.ok(),
        None => None,
    };
    let mut error = None;
    let mut location = asset.path.clone();
    if let (Some(key), Some(url), Some(rec)) = (&asset.object_key, &asset.destination_url, &rec) {
        if asset.upload_state == UploadState::Uploaded {
            location = url.clone();
            let deleted = match open_store(ctx, rec) {
                Ok((_, store)) => store.delete(key).await,
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                error = Some(e.to_string());
            }
        }
    }
    if error.is_none() && asset.local_copy {
        if let Err(e) = remove(&asset.path).await {
            error = Some(format!("local file: {e}"));
        }
    }
    if error.is_none() {
        if let Some(publication) = &asset.publication_id {
            if !db
                .publication_has_other_assets(publication, &asset.id)
                .await?
            {
                for track in db.list_tracks(publication).await? {
                    if let Err(e) = remove(&track.journal_path).await {
                        error = Some(format!("journal: {e}"));
                    }
                    // Its directory too, once empty (a failure here only leaves a directory).
                    if let Some(dir) = std::path::Path::new(&track.journal_path).parent() {
                        let _ = tokio::fs::remove_dir(dir).await;
                    }
                }
            }
        }
    }
    let deletion = Deletion {
        id: DeletionId::generate().to_string(),
        application_id: asset.application_id.clone(),
        asset_id: asset.id.clone(),
        recording_id: asset.recording_id.clone(),
        room_id: asset.room_id.clone(),
        location: location.clone(),
        reason: reason.to_string(),
        outcome: if error.is_none() { "deleted" } else { "failed" }.into(),
        error: error.clone(),
        created_at: now_ms(),
    };
    let payload = serde_json::json!({
        "asset_id": asset.id,
        "recording_id": asset.recording_id,
        "room_id": asset.room_id,
        "session_id": asset.session_id,
        "location": location,
        "reason": reason,
    });
    let notify = rec.as_ref().is_none_or(|r| r.notifies());
    match &error {
        None => {
            db.record_deletion(&deletion, Some((&payload, notify)))
                .await?
        }
        Some(e) => {
            tracing::warn!(asset = %asset.id, error = %e, "deletion failed; will retry");
            db.record_deletion(&deletion, None).await?
        }
    }
    Ok(error.is_none())
}

async fn remove(path: &str) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
