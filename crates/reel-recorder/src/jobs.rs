//! Runs the engine's jobs off the brain: each reads and writes what it needs itself (its
//! asset and event in one transaction) and reports back on the brain's queue.

use crate::engine::{Input, JobResult, JobSpec};
use crate::{
    assets, composites, retention, transcripts, uploads, Msg, Outcome, RecorderError, Result,
};
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

/// Runs `spec` once the brain's changes enqueued before it are in the database (the job
/// reads them), again with backoff while the database is unavailable: every job is
/// idempotent, and one refused for now is not a failed recording.
pub(crate) async fn run(
    cx: JobContext,
    spec: JobSpec,
    flushed: Option<Flushed>,
    (needs, mut written): (u64, tokio::sync::watch::Receiver<u64>),
) {
    let _ = written.wait_for(|w| *w >= needs).await;
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        match run_once(&cx, &spec, flushed.clone()).await {
            Attempt::Report(report) => {
                let _ = cx.report.send(Msg::Input(*report));
                return;
            }
            Attempt::Done => return,
            Attempt::Unavailable(e) => {
                tracing::warn!(error = %e, ?backoff, "job: the database or the disk cannot take it now; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}

enum Attempt {
    Report(Box<Input>),
    Done,
    Unavailable(String),
}

/// The database was unavailable, or the disk refused a write: the job is tried again
/// rather than reported failed.
fn unavailable<T>(r: &Result<T>) -> Option<String> {
    match r {
        Err(RecorderError::Db(e)) if e.is_unavailable() => Some(e.to_string()),
        Err(e) if e.is_no_space() => Some(e.to_string()),
        _ => None,
    }
}

async fn run_once(cx: &JobContext, spec: &JobSpec, flushed: Option<Flushed>) -> Attempt {
    let spec = spec.clone();
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
            if let Some(e) = unavailable(&r) {
                return Attempt::Unavailable(e);
            }
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
            if let Some(e) = unavailable(&r) {
                return Attempt::Unavailable(e);
            }
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
            let r = upload(cx, &recording, name_objects).await;
            if let Some(e) = unavailable(&r) {
                return Attempt::Unavailable(e);
            }
            let outcome = match r {
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
            let r = transcripts::process(&cx.db, &cx.data_dir, &cx.render, &cx.uploads, &recording)
                .await;
            if let Some(e) = unavailable(&r) {
                return Attempt::Unavailable(e);
            }
            if let Err(e) = r {
                tracing::error!(%recording, error = %e, "transcription job");
            }
            return Attempt::Done;
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
            let r = finished.await;
            if let Some(e) = unavailable(&r) {
                return Attempt::Unavailable(e);
            }
            if let Err(e) = r {
                tracing::error!(%recording, error = %e, "transcript upload");
            }
            return Attempt::Done;
        }
    };
    Attempt::Report(Box::new(report))
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
