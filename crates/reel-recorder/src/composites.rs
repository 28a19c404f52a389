//! Composite and audio-mix outputs: one file from every participant of a recording.
//!
//! The job is described as JSON (`reel_compose::render::Job`) and rendered by a child process
//! (`reel render JOB.json`), so a crash inside GStreamer fails that job, is retried, and
//! never touches ingest. Its asset gets the same checks and events as a stream asset.

use crate::{Outcome, RecorderError, Result};
use reel_compose::layout::{Layout, SourceKind};
use reel_compose::options::{audio_output, CompositeOptions};
use reel_compose::render::{Job, Participant, Rendered, Timeline};
use reel_core::media::{AudioFormat, MediaKind, OutputFormat, PublicationKind, VideoFormat};
use reel_core::options::AudioOptions;
use reel_core::recording::{FailureCode, RecordingMode};
use reel_core::{AssetId, AssetType, EventKind};
use reel_db::{now_ms, Asset, Change, Db, Recording};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How composites are rendered: by which program (this binary), how often tried.
#[derive(Clone, Debug)]
pub struct RenderContext {
    pub program: PathBuf,
    pub attempts: u32,
    pub transcription: Transcription,
}

/// How transcripts are made: the engine, and its API key (which reaches the child through
/// its environment, never through the job file).
#[derive(Clone, Default)]
pub struct Transcription {
    pub engine: reel_transcribe::EngineConfig,
    pub http_api_key: Option<String>,
}

impl std::fmt::Debug for Transcription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcription")
            .field("engine", &self.engine)
            .field(
                "http_api_key",
                &self.http_api_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The publications a recording covers as render inputs (in order of joining), and its
/// output timeline (paused intervals cut).
pub(crate) async fn inputs(db: &Db, rec: &Recording) -> Result<(Vec<Participant>, Timeline)> {
    let session = rec
        .session_id
        .clone()
        .ok_or_else(|| RecorderError::Internal("the recording has no session".into()))?;
    let from_ms = rec.started_at.unwrap_or(0);
    let to_ms = rec.stopped_at.unwrap_or_else(now_ms);
    let mut pubs = db.list_publications(&session).await?;
    pubs.retain(|p| p.started_at <= to_ms && p.ended_at.is_none_or(|e| e >= from_ms));
    pubs.sort_by_key(|p| p.started_at);
    let mut participants = Vec::new();
    for p in &pubs {
        let tracks = db.list_tracks(&p.id).await?;
        let audio = tracks.iter().find(|t| t.media_kind == MediaKind::Audio);
        // Simulcast: the largest layer (by its first keyframe's picture).
        let mut video: Option<(u64, &str)> = None;
        for t in tracks.iter().filter(|t| t.media_kind == MediaKind::Video) {
            let area = std::fs::File::open(&t.journal_path)
                .ok()
                .and_then(|f| reel_media::remux::analyze(std::io::BufReader::new(f)).ok())
                .and_then(|plan| plan.first_keyframe_dims)
                .map_or(0, |d| d.width as u64 * d.height as u64);
            if video.is_none_or(|(best, _)| area > best) {
                video = Some((area, &t.journal_path));
            }
        }
        participants.push(Participant {
            id: p.id.clone(),
            participant: p.participant.clone(),
            name: p.participant.clone(),
            kind: if p.kind == PublicationKind::Screen {
                SourceKind::Screen
            } else {
                SourceKind::Camera
            },
            video: video.map(|(_, path)| PathBuf::from(path)),
            audio: audio.map(|t| PathBuf::from(&t.journal_path)),
        });
    }
    let timeline = Timeline {
        from_unix_us: from_ms * 1000,
        to_unix_us: to_ms * 1000,
        pauses: rec
            .pauses
            .iter()
            .map(|p| (p.paused_at * 1000, p.resumed_at.unwrap_or(to_ms) * 1000))
            .collect(),
    };
    Ok((participants, timeline))
}

/// The render job of a `composite` or `audio` recording, from the database.
pub async fn job_for(
    db: &Db,
    data_dir: &Path,
    rec: &Recording,
    asset_id: &str,
) -> Result<(Job, String)> {
    let session = rec.session_id.clone().unwrap_or_default();
    let (participants, timeline) = inputs(db, rec).await?;
    // The options were validated when the recording was asked for; stored, they also hold
    // what Reel added (`layoutChanges`).
    fn stored<T: serde::de::DeserializeOwned + Default>(rec: &Recording, key: &str) -> Result<T> {
        match rec.options.get(key) {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                RecorderError::Internal(format!("stored recordingOptions.{key}: {e}"))
            }),
            None => Ok(T::default()),
        }
    }
    let format: Option<OutputFormat> = stored(rec, "format")?;
    let (output, format) = if rec.mode == RecordingMode::Audio {
        let first = participants
            .first()
            .map(|p| p.participant.as_str())
            .unwrap_or("");
        let format = match format {
            Some(OutputFormat::Audio(f)) => f,
            _ => AudioFormat::default(),
        };
        let options: AudioOptions = stored(rec, "audioOptions")?;
        (audio_output(&options, format, first), format.as_str())
    } else {
        let format = match format {
            Some(OutputFormat::Video(f)) => f,
            _ => VideoFormat::default(),
        };
        let opts: CompositeOptions = stored(rec, "compositeOptions")?;
        // Layout changes asked for during the meeting, placed on the output timeline.
        let mut changes: Vec<(i64, Layout)> = Vec::new();
        for c in rec.options["layoutChanges"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(at), Ok(layout)) = (
                c["at"].as_i64(),
                serde_json::from_value(c["layout"].clone()),
            ) else {
                continue;
            };
            let out = timeline.out_us(at * 1000).unwrap_or_else(|| {
                // Asked during a pause: it shows from the resume on.
                timeline
                    .pauses
                    .iter()
                    .find(|(a, b)| at * 1000 >= *a && at * 1000 < *b)
                    .and_then(|(_, b)| timeline.out_us(*b))
                    .unwrap_or(0)
            });
            changes.push((out / 1000, layout));
        }
        let video = opts
            .video(format, changes)
            .map_err(RecorderError::Internal)?;
        (reel_compose::render::Output::Video(video), format.as_str())
    };
    let path = crate::assets::asset_path(data_dir, &session, asset_id, format);
    Ok((
        Job {
            participants,
            timeline,
            output,
            path,
        },
        format.to_string(),
    ))
}

/// Exit status of a child that failed for good: trying again cannot help.
pub(crate) const EXIT_NO_RETRY: i32 = 3;

/// Runs the render job in a child process; the reason of the last failure on error.
async fn run_render(ctx: &RenderContext, job: &Job) -> std::result::Result<Rendered, String> {
    let limit = reel_compose::render::time_limit(&job.timeline);
    let out = run_child(ctx, "render", &job.path, job, limit, &[&job.path]).await?;
    serde_json::from_slice(&out).map_err(|e| format!("renderer output: {e}"))
}

/// Runs `reel <command> JOB.json` (the job written beside `beside`) up to `attempts`
/// times, or once when it exits with `EXIT_NO_RETRY`. Its standard output on success; the
/// reason of the last failure (exit status or signal, and the child's last words) on error.
/// `outputs` are removed after a failed attempt.
pub(crate) async fn run_child(
    ctx: &RenderContext,
    command: &str,
    beside: &Path,
    job: &impl serde::Serialize,
    limit: Duration,
    outputs: &[&Path],
) -> std::result::Result<Vec<u8>, String> {
    let dir = beside.parent().expect("asset paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let job_file = beside.with_extension("job.json");
    std::fs::write(&job_file, serde_json::to_vec(job).expect("jobs serialize"))
        .map_err(|e| e.to_string())?;
    let mut reason = String::new();
    for attempt in 1..=ctx.attempts.max(1) {
        let mut child = tokio::process::Command::new(&ctx.program);
        dies_with_this_process(&mut child);
        let child = child
            .arg(command)
            .arg(&job_file)
            .envs(
                ctx.transcription
                    .http_api_key
                    .iter()
                    .map(|k| (reel_transcribe::http::API_KEY_ENV, k)),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                reason = format!("cannot start the renderer: {e}");
                continue;
            }
        };
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {
                let _ = std::fs::remove_file(&job_file);
                return Ok(out.stdout);
            }
            Ok(Ok(out)) => {
                let said = String::from_utf8_lossy(&out.stderr);
                let last = said
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                if out.status.code() == Some(EXIT_NO_RETRY) {
                    reason = last.to_string();
                    break;
                }
                reason = format!("{command} {}: {last}", describe(out.status));
            }
            Ok(Err(e)) => reason = format!("{command}: {e}"),
            Err(_) => reason = format!("{command} timed out after {} s", limit.as_secs()),
        }
        tracing::warn!(attempt, %reason, "{command} attempt failed");
        for path in outputs {
            let _ = std::fs::remove_file(path);
        }
        tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
    }
    let _ = std::fs::remove_file(&job_file);
    Err(reason)
}

/// The child is killed when this process dies, however it dies: after a `kill -9` of the
/// server, a renderer left running would render beside the restarted server's own render of
/// the same recording and leave its output named by no row. (`PR_SET_PDEATHSIG` follows the
/// thread that forked: children are spawned from the runtime's worker threads, which live as
/// long as the process.)
fn dies_with_this_process(command: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server died between the fork and the prctl: nothing would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), _) => format!("exited with {code}"),
        _ => "ended".into(),
    }
}

/// Makes the recording's composite (or audio mix) asset, or says why it could not (its
/// failure event sent).
pub async fn process_recording(
    db: &Db,
    data_dir: &Path,
    ctx: &RenderContext,
    recording_id: &str,
) -> Result<Outcome> {
    let rec = db.recording_by_id(recording_id).await?;
    if let Some(existing) = db
        .assets_of_recording(recording_id)
        .await?
        .into_iter()
        .next()
    {
        return Ok(Outcome::Made(Box::new(existing)));
    }
    let asset_id = AssetId::generate();
    let (job, format) = job_for(db, data_dir, &rec, asset_id.as_str()).await?;
    let asset_type = if rec.mode == RecordingMode::Audio {
        AssetType::AudioMix
    } else {
        AssetType::Composite
    };
    let base = serde_json::json!({
        "recording_id": rec.id,
        "session_id": rec.session_id,
        "room_id": rec.room_id,
        "asset_type": asset_type.as_str(),
    });
    match run_render(ctx, &job).await {
        Ok(rendered) => {
            let size = std::fs::metadata(&job.path)?.len();
            let sha256 = reel_blob::sha256_file(&job.path).await?;
            let asset = Asset {
                id: asset_id.to_string(),
                application_id: rec.application_id.clone(),
                room_id: rec.room_id.clone(),
                session_id: rec.session_id.clone().unwrap_or_default(),
                publication_id: None,
                recording_id: Some(rec.id.clone()),
                participant: None,
                asset_type,
                format,
                path: job.path.to_string_lossy().into_owned(),
                start_at: rec.started_at.unwrap_or(0),
                end_at: rec.stopped_at.unwrap_or(0),
                duration_ms: rendered.duration_ms,
                size_bytes: size as i64,
                sha256,
                details: serde_json::json!({
                    "participants": job.participants.iter().map(|p| &p.participant).collect::<Vec<_>>(),
                    "scenes": rendered.scenes,
                    "speaker_changes": rendered.speaker_changes,
                    "output": job.output,
                }),
                created_at: now_ms(),
                ..Asset::on_local_disk()
            };
            let mut payload = base;
            payload["asset_id"] = asset.id.clone().into();
            payload["duration_ms"] = asset.duration_ms.into();
            // The asset and its event in one transaction: a crash leaves both or neither.
            let committed = db
                .commit(&[
                    Change::InsertAsset(asset.clone()),
                    Change::recording_event(&rec, EventKind::CompositeSuccess, payload),
                ])
                .await;
            if let Err(e) = committed {
                // No row names the file: the job's next run renders it again.
                let _ = std::fs::remove_file(&job.path);
                return Err(e.into());
            }
            // Reported done: on disk, with everything committed before it.
            if let Err(e) = db.make_durable().await {
                tracing::warn!(error = %e, "checkpoint after an asset");
            }
            tracing::info!(recording = %rec.id, asset = %asset.id, "composite ready");
            Ok(Outcome::Made(Box::new(asset)))
        }
        Err(reason) => {
            tracing::warn!(recording = %rec.id, %reason, "composite failed");
            let mut payload = base;
            payload["reason"] = reason.clone().into();
            payload["code"] = FailureCode::OutputFailed.as_str().into();
            db.commit_one(Change::recording_event(
                &rec,
                EventKind::CompositeFailure,
                payload,
            ))
            .await?;
            Ok(Outcome::Failed {
                code: FailureCode::OutputFailed,
                reason,
            })
        }
    }
}
