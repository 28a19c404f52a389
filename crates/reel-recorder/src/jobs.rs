//! Runs the engine's jobs off the brain: each reads and writes what it needs itself (its
//! asset and event in one transaction) and reports back on the brain's queue.

use crate::engine::{Input, JobResult, JobSpec};
use crate::{assets, composites, retention, transcripts, uploads, Msg, Outcome, Result};
use reel_core::recording::FailureCode;
use reel_db::Db;
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// Turns true when a session's journals are flushed: jobs started at a stop wait for it
/// before reading them (the brain does not).
pub(crate) type Flushed = tokio::sync::watch::Receiver<bool>;

/// What every job may need.
#[derive(Clone)]
pub(crate) struct JobContext {
    pub db: Db,
    pub data_dir: PathBuf,
    pub render: composites::RenderContext,
    pub uploads: uploads::UploadContext,
    pub report: UnboundedSender<Msg>,
}

fn result_of(result: Result<Outcome>) -> JobResult {
    match result {
        Ok(Outcome::Made(asset)) => JobResult::Made { asset: asset.id },
        Ok(Outcome::Failed { code, reason }) => JobResult::Failed {
            code: code.as_str().into(),
            reason,
            fault: code.fault(),
        },
        Err(e) => JobResult::Failed {
            code: FailureCode::InternalError.as_str().into(),
            reason: e.to_string(),
            fault: FailureCode::InternalError.fault(),
        },
    }
}

async fn after(flushed: Option<Flushed>) {
    if let Some(mut flushed) = flushed {
        // Err: the capture thread is gone, and nothing more will reach the journals.
        let _ = flushed.wait_for(|done| *done).await;
    }
}

pub(crate) async fn run(cx: JobContext, spec: JobSpec, flushed: Option<Flushed>) {
    let report = match spec {
        JobSpec::StreamAsset {
            recording,
            publication,
            window,
            ..
        } => {
            after(flushed).await;
            let r =
                assets::process_publication(&cx.db, &cx.data_dir, &publication, &recording, window)
                    .await;
            if let Err(e) = &r {
                tracing::error!(%publication, error = %e, "asset job");
            }
            Input::JobDone {
                recording,
                result: result_of(r),
            }
        }
        JobSpec::Render { recording, .. } => {
            after(flushed).await;
            let r =
                composites::process_recording(&cx.db, &cx.data_dir, &cx.render, &recording).await;
            if let Err(e) = &r {
                tracing::error!(%recording, error = %e, "composite job");
            }
            Input::JobDone {
                recording,
                result: result_of(r),
            }
        }
        JobSpec::Upload {
            recording,
            name_objects,
        } => {
            let outcome = match upload(&cx, &recording, name_objects).await {
                Ok(o) => o,
                Err(e) => uploads::UploadOutcome::Failed {
                    asset_id: None,
                    code: FailureCode::InternalError.as_str().into(),
                    message: e.to_string(),
                },
            };
            Input::UploadsDone { recording, outcome }
        }
        JobSpec::Transcribe { recording } => {
            // Returns at once for a recording that wants no transcript.
            if let Err(e) =
                transcripts::process(&cx.db, &cx.data_dir, &cx.render, &cx.uploads, &recording)
                    .await
            {
                tracing::error!(%recording, error = %e, "transcription job");
            }
            return;
        }
        JobSpec::Retention {
            default_days,
            now_ms,
        } => {
            match retention::sweep(&cx.db, &cx.uploads, default_days, now_ms).await {
                Ok(r) if r.failed > 0 => {
                    tracing::warn!(
                        deleted = r.deleted,
                        failed = r.failed,
                        held = r.held,
                        "retention: some deletions failed (audited; tried again next pass)"
                    )
                }
                Ok(r) => tracing::debug!(deleted = r.deleted, held = r.held, "retention"),
                Err(e) => tracing::error!(error = %e, "retention sweep"),
            }
            Input::RetentionDone
        }
        JobSpec::FinishTranscriptUpload { recording, event } => {
            let finished = async {
                let rec = cx.db.recording_by_id(&recording).await?;
                transcripts::finish_upload(&cx.db, &cx.uploads, &rec, event).await
            };
            if let Err(e) = finished.await {
                tracing::error!(%recording, error = %e, "transcript upload");
            }
            return;
        }
    };
    let _ = cx.report.send(Msg::Input(report));
}

async fn upload(
    cx: &JobContext,
    recording: &str,
    name_objects: bool,
) -> Result<uploads::UploadOutcome> {
    if name_objects {
        let rec = cx.db.recording_by_id(recording).await?;
        let assets = cx.db.assets_of_recording(recording).await?;
        uploads::prepare(&cx.db, &rec, &assets).await?;
    }
    uploads::upload_recording(&cx.db, &cx.uploads, recording).await
}
