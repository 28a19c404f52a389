//! Transcripts: after a recording with `transcriptionOptions.enabled` is available, each
//! participant's audio is transcribed on its own and the lines merged, labelled with the
//! participant's name. The work runs in a child process (`reel transcribe JOB.json`), as
//! renders do, so a crashing recognizer fails that job alone. The transcript's two assets
//! (`-transcript.json`, `-transcript.vtt`) go where the recording went, and
//! `transcription_available` names them; any failure is `transcription.failed`, and the
//! recording itself is left as it is.

use crate::composites::{self, RenderContext, EXIT_NO_RETRY};
use crate::{uploads, Result};
use reel_blob::{Destination, NameParts};
use reel_compose::render::{AudioFormat, Channels, Job, Output};
use reel_core::options::TranscriptionOptions;
use reel_core::{AssetId, EventKind};
use reel_db::{now_ms, Asset, Change, Db, Recording};
use reel_transcribe::transcript::Transcript;
use reel_transcribe::{EngineConfig, TranscribeError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Everything the child needs: per speaker, the render job of their audio alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscriptJob {
    pub locale: String,
    pub speakers: Vec<Speaker>,
    pub json_path: PathBuf,
    pub vtt_path: PathBuf,
    pub engine: EngineConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Speaker {
    pub label: String,
    pub audio: Job,
}

/// What the child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcribed {
    pub lines: usize,
    pub engine: String,
}

/// The locale of a recording that wants a transcript: by its own `transcriptionOptions`,
/// else by its room's `policy.transcription` (for the session's own recording, not for the
/// composites and audio mixes made from it, which would repeat the transcript).
pub async fn wanted(db: &Db, rec: &Recording) -> Option<String> {
    let own = &rec.options["transcriptionOptions"];
    let options: TranscriptionOptions = if own.is_object() {
        serde_json::from_value(own.clone()).ok()?
    } else if !rec.mode.is_rendered() {
        uploads::room_policy(db, &rec.room_id).await.transcription?
    } else {
        return None;
    };
    options
        .enabled
        .then(|| options.locale.unwrap_or_else(|| "en-US".into()))
}

/// The child's work: render each speaker's audio (16 kHz after resampling), find where
/// they speak, recognize it, merge, write both files. An unsupported locale is checked
/// before any rendering.
pub fn run_job(job: &TranscriptJob) -> std::result::Result<Transcribed, TranscribeError> {
    let mut engine = job.engine.load(&job.locale)?;
    let mut speakers = Vec::new();
    for s in &job.speakers {
        reel_compose::render::render(&s.audio)
            .map_err(|e| TranscribeError::Audio(format!("{}: {e}", s.label)))?;
        let bytes = std::fs::read(&s.audio.path)?;
        let _ = std::fs::remove_file(&s.audio.path);
        let (rate, pcm) = reel_transcribe::audio::read_wav(&bytes)?;
        let pcm = reel_transcribe::audio::to_16k(rate, &pcm)?;
        let segments = reel_transcribe::transcribe_speaker(engine.as_mut(), &pcm)?;
        speakers.push((s.label.clone(), segments));
    }
    let transcript = Transcript::merge(speakers);
    std::fs::write(
        &job.json_path,
        serde_json::to_vec_pretty(&transcript).expect("serializes"),
    )?;
    std::fs::write(&job.vtt_path, transcript.webvtt())?;
    Ok(Transcribed {
        lines: transcript.lines.len(),
        engine: engine.name().into(),
    })
}

/// The exit status `reel transcribe` gives an error: no retry for a locale without a model
/// or a refusal that would only be repeated.
pub fn exit_code(e: &TranscribeError) -> u8 {
    match e {
        TranscribeError::UnsupportedLocale { .. } | TranscribeError::Refused(_) => {
            EXIT_NO_RETRY as u8
        }
        _ => 1,
    }
}

fn event_payload(rec: &Recording, extra: Value) -> Value {
    let mut payload = json!({
        "recording_id": rec.id,
        "session_id": rec.session_id,
        "room_id": rec.room_id,
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut payload, extra) {
        base.extend(more);
    }
    payload
}

async fn event(db: &Db, rec: &Recording, kind: EventKind, extra: Value) -> Result<()> {
    db.commit_one(Change::recording_event(
        rec,
        kind,
        event_payload(rec, extra),
    ))
    .await?;
    Ok(())
}

/// Makes, stores and announces the transcript of an available recording.
pub async fn process(
    db: &Db,
    data_dir: &Path,
    ctx: &RenderContext,
    uploads_ctx: &uploads::UploadContext,
    recording_id: &str,
) -> Result<()> {
    let rec = db.recording_by_id(recording_id).await?;
    let Some(locale) = wanted(db, &rec).await else {
        return Ok(());
    };
    let session = rec.session_id.clone().unwrap_or_default();
    let (participants, timeline) = composites::inputs(db, &rec).await?;
    let dir = data_dir.join("assets").join(&session);
    let speakers: Vec<Speaker> = participants
        .into_iter()
        .filter(|p| p.audio.is_some())
        .map(|p| Speaker {
            label: p.name.clone(),
            audio: Job {
                path: dir.join(format!("{}-{}.speaker.wav", rec.id, p.id)),
                participants: vec![reel_compose::render::Participant { video: None, ..p }],
                timeline: timeline.clone(),
                output: Output::Audio {
                    format: AudioFormat::Wav,
                    channels: Channels::Mono,
                    bitrate_kbps: None,
                },
            },
        })
        .collect();
    let (json_id, vtt_id) = (AssetId::generate(), AssetId::generate());
    let job = TranscriptJob {
        locale,
        json_path: dir.join(format!("{}-transcript.json", rec.id)),
        vtt_path: dir.join(format!("{}-transcript.vtt", rec.id)),
        speakers,
        engine: ctx.transcription.engine.clone(),
    };
    // Rendering every speaker and recognizing them: allow each speaker a render's time.
    let limit =
        reel_compose::render::time_limit(&timeline) * (job.speakers.len().max(1) as u32 + 1);
    let outputs = [job.json_path.as_path(), job.vtt_path.as_path()];
    let transcribed =
        match composites::run_child(ctx, "transcribe", &job.json_path, &job, limit, &outputs).await
        {
            Ok(out) => serde_json::from_slice::<Transcribed>(&out)
                .map_err(|e| format!("transcriber output: {e}")),
            Err(reason) => Err(reason),
        };
    let transcribed = match transcribed {
        Ok(t) => t,
        Err(reason) => {
            tracing::warn!(recording = %rec.id, %reason, "transcription failed");
            return event(
                db,
                &rec,
                EventKind::TranscriptionFailed,
                json!({ "reason": reason }),
            )
            .await;
        }
    };

    let mut assets = Vec::new();
    for (id, path, format) in [
        (&json_id, &job.json_path, "json"),
        (&vtt_id, &job.vtt_path, "vtt"),
    ] {
        let asset = Asset {
            id: id.to_string(),
            application_id: rec.application_id.clone(),
            room_id: rec.room_id.clone(),
            session_id: session.clone(),
            publication_id: None,
            recording_id: Some(rec.id.clone()),
            participant: None,
            asset_type: reel_core::AssetType::Transcript,
            format: format.into(),
            path: path.to_string_lossy().into_owned(),
            start_at: rec.started_at.unwrap_or(0),
            end_at: rec.stopped_at.unwrap_or(0),
            duration_ms: timeline.duration_us() / 1000,
            size_bytes: std::fs::metadata(path)?.len() as i64,
            sha256: reel_blob::sha256_file(path).await?,
            details: json!({"lines": transcribed.lines, "engine": transcribed.engine, "locale": job.locale}),
            created_at: now_ms(),
            ..Asset::on_local_disk()
        };
        assets.push(asset);
    }
    let ids: Vec<&str> = assets.iter().map(|a| a.id.as_str()).collect();
    let extra = json!({"asset_ids": ids, "lines": transcribed.lines, "locale": job.locale});
    let Some(dest) = rec.options["destinationUrl"]
        .as_str()
        .and_then(|u| Destination::parse(u).ok())
    else {
        // Kept by Reel: the assets and their event in one transaction.
        tracing::info!(recording = %rec.id, lines = transcribed.lines, "transcript ready");
        let mut changes: Vec<Change> = assets.iter().cloned().map(Change::InsertAsset).collect();
        changes.push(Change::recording_event(
            &rec,
            EventKind::TranscriptionAvailable,
            event_payload(&rec, extra),
        ));
        db.commit(&changes).await?;
        return Ok(());
    };
    // Going to the destination: the rows, where each goes and the marker that the event is
    // still owed, in one transaction; a restart before the event finishes the upload.
    let mut changes: Vec<Change> = assets.iter().cloned().map(Change::InsertAsset).collect();
    for a in &assets {
        let key = dest.transcript_key(
            &NameParts {
                started_at_ms: rec.started_at.unwrap_or(a.start_at),
                application_key: &rec.application_id,
                call_id: &a.session_id,
                asset_id: &a.id,
                format: &a.format,
                several: false,
            },
            &a.format,
        );
        changes.push(Change::AssetDestination {
            id: a.id.clone(),
            url: dest.url_of(&key),
            key,
        });
    }
    changes.push(Change::TranscriptUploadPending {
        recording: rec.id.clone(),
        payload: extra.clone(),
    });
    db.commit(&changes).await?;
    finish_upload(db, uploads_ctx, &rec, extra).await
}

/// Uploads a transcript's assets, then sends its event and drops its marker in one
/// transaction. `extra` is what the event says beyond the recording (`asset_ids`, …).
pub async fn finish_upload(
    db: &Db,
    uploads_ctx: &uploads::UploadContext,
    rec: &Recording,
    mut extra: Value,
) -> Result<()> {
    let ids: Vec<String> = serde_json::from_value(extra["asset_ids"].clone()).unwrap_or_default();
    let (kind, extra) = match uploads::upload_recording(db, uploads_ctx, &rec.id).await? {
        uploads::UploadOutcome::Done(done) => {
            extra["destinations"] = done
                .iter()
                .filter(|(a, _)| ids.contains(a))
                .map(|(a, url)| json!({"asset_id": a, "destination_url": url}))
                .collect();
            tracing::info!(recording = %rec.id, "transcript ready");
            (EventKind::TranscriptionAvailable, extra)
        }
        uploads::UploadOutcome::Failed {
            code,
            message,
            asset_id,
        } => (
            EventKind::TranscriptionFailed,
            json!({"reason": message, "code": code, "asset_id": asset_id, "local_copy_kept": true}),
        ),
    };
    db.commit(&[
        Change::recording_event(rec, kind, event_payload(rec, extra)),
        Change::TranscriptUploadDone {
            recording: rec.id.clone(),
        },
    ])
    .await?;
    Ok(())
}
