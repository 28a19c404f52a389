//! Stream assets: a finished publication's journals remuxed (never transcoded) into one
//! playable file, checksummed, and recorded with the event that tells the application.

use crate::{Outcome, RecorderError, Result};
use reel_core::recording::FailureCode;
use reel_core::{AssetId, AssetType, EndReason, EventKind, PublicationState};
use reel_db::{now_ms, Asset, Change, Db, Publication};
use reel_media::journal::JournalReader;
use reel_media::remux::{self, Window};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

pub fn asset_path(data_dir: &Path, session_id: &str, asset_id: &str, format: &str) -> PathBuf {
    data_dir
        .join("assets")
        .join(session_id)
        .join(format!("{asset_id}.{format}"))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = BufReader::new(File::open(path)?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Whether the journal holds at least one frame (read up to the first one only). A missing
/// or empty file holds none; an unreadable header is an error.
fn has_frames(path: &Path) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) if m.len() > 0 => {}
        _ => return Ok(false),
    }
    let mut reader = JournalReader::open(BufReader::new(File::open(path)?))?;
    while let Ok(Some(record)) = reader.next_record() {
        if matches!(record, reel_media::journal::Record::Frame { .. }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The media lost within [start, end) (Unix ms): the tracks' gaps, merged and clipped.
fn missing_intervals(mut gaps: Vec<(i64, i64)>, start: i64, end: i64) -> Vec<(i64, i64)> {
    gaps.sort();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (from, to) in gaps {
        let (from, to) = (from.max(start), to.min(end));
        if from >= to {
            continue;
        }
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

/// Wall-clock time against the file's: the file starts at `start` and leaves out its
/// pauses.
struct FileTimeline {
    start_ms: i64,
    duration_ms: i64,
    /// (paused at, resumed at), Unix ms.
    pauses: Vec<(i64, i64)>,
}

impl FileTimeline {
    fn of(report: &remux::RemuxReport) -> FileTimeline {
        let start_ms = report.start_unix_us / 1000;
        FileTimeline {
            start_ms,
            duration_ms: report.duration_ms as i64,
            pauses: report
                .pauses
                .iter()
                .map(|p| {
                    let resumed = p.resumed_at_unix_ms.unwrap_or(p.paused_at_unix_ms);
                    (p.paused_at_unix_ms.max(start_ms), resumed.max(start_ms))
                })
                .collect(),
        }
    }

    /// Paused time cut from the file before `t`.
    fn cut_before(&self, t: i64) -> i64 {
        self.pauses
            .iter()
            .map(|&(from, to)| (t.min(to) - from).max(0))
            .sum()
    }

    /// The wall-clock end of the file: its duration plus what was cut.
    fn end_unix_ms(&self) -> i64 {
        self.start_ms
            + self.duration_ms
            + self
                .pauses
                .iter()
                .map(|&(f, t)| (t - f).max(0))
                .sum::<i64>()
    }

    /// As the asset and its event say it: ms into the file, and the wall clock's Unix ms.
    fn json(&self, missing: &[(i64, i64)]) -> serde_json::Value {
        missing
            .iter()
            .map(|&(from, to)| {
                serde_json::json!({
                    "from_ms": from - self.start_ms - self.cut_before(from),
                    "to_ms": to - self.start_ms - self.cut_before(to),
                    "from_unix_ms": from,
                    "to_unix_ms": to,
                })
            })
            .collect()
    }
}

struct Made {
    asset_type: AssetType,
    report: remux::RemuxReport,
    path: PathBuf,
    size: u64,
    sha256: String,
}

/// Blocking: reads the journals twice (timing, then frames) and writes the file.
fn make(
    data_dir: &Path,
    publication: &Publication,
    journals: &[PathBuf],
    asset_id: &AssetId,
    window: Window,
) -> Result<Made> {
    let kind = publication.kind;
    let mut tracks = Vec::new();
    for path in journals {
        let plan = remux::analyze(BufReader::new(File::open(path)?))?;
        let reader = JournalReader::open(BufReader::new(File::open(path)?))?;
        tracks.push((plan, reader));
    }
    let has_video = tracks.iter().any(|(p, _)| {
        p.header.kind == reel_core::MediaKind::Video && p.first_keyframe_dims.is_some()
    });
    let asset_type = AssetType::for_publication(kind, has_video);
    // Write beside, then rename: a listed asset is always a complete file. The container
    // (hence the extension) is known once the remux has seen the codecs.
    let partial = asset_path(data_dir, &publication.session_id, asset_id.as_str(), "part");
    let written = (|| -> Result<_> {
        fs::create_dir_all(partial.parent().expect("asset path has a parent"))?;
        let (out, report) =
            remux::remux_window(tracks, window, BufWriter::new(File::create(&partial)?))?;
        let file = out
            .into_inner()
            .map_err(|e| RecorderError::Io(e.into_error()))?;
        file.sync_all()?;
        let path = asset_path(
            data_dir,
            &publication.session_id,
            asset_id.as_str(),
            report.container,
        );
        fs::rename(&partial, &path)?;
        Ok((report, path))
    })();
    let (report, path) = match written {
        Ok(x) => x,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    let size = fs::metadata(&path)?.len();
    let sha256 = sha256_file(&path)?;
    Ok(Made {
        asset_type,
        report,
        path,
        size,
        sha256,
    })
}

/// Produces the asset of one ended publication and marks it processed (or failed).
/// Idempotent: a publication that already has its asset is only marked processed.
/// Produces the asset one recording made of one publication (its part within `window`).
/// Idempotent: an existing asset for the pair is returned as is.
pub async fn process_publication(
    db: &Db,
    data_dir: &Path,
    publication_id: &str,
    recording_id: &str,
    window: Window,
) -> Result<Outcome> {
    let publication = db.get_publication(publication_id).await?;
    let session = db.session_by_id(&publication.session_id).await?;
    if let Some(existing) = db
        .assets_of_publication(publication_id, recording_id)
        .await?
        .into_iter()
        .next()
    {
        db.set_publication_outcome(publication_id, PublicationState::Processed, None)
            .await?;
        return Ok(Outcome::Made(Box::new(existing)));
    }
    let tracks = db.list_tracks(publication_id).await?;
    // A track whose journal holds no frame (never got its first bytes, or only its header:
    // the publisher or the server was gone within moments) holds nothing: it is left out
    // rather than read as a bad journal, and a publication of only such tracks sent no media.
    let paths: Vec<PathBuf> = tracks
        .iter()
        .map(|t| PathBuf::from(&t.journal_path))
        .collect();
    let journals = tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            // One that cannot be read stays: making the asset says why (Reel's fault).
            .filter(|p| !matches!(has_frames(p), Ok(false)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| RecorderError::Internal(e.to_string()))?;
    let gaps = db.publication_gaps(publication_id).await?;
    let asset_id = AssetId::generate();
    let made = if journals.is_empty() && !gaps.is_empty() {
        // The participant sent; Reel's disk kept none of it.
        Err((
            FailureCode::DiskFull,
            "no media was kept: Reel's disk refused writes (full or read-only) while the \
             participant published"
                .to_string(),
        ))
    } else if journals.is_empty() {
        // Whose fault it was: a publisher Reel could not connect did not choose to send nothing.
        let why = match publication.end_reason {
            Some(EndReason::IceFailed) => {
                "the publisher never connected: ICE failed (no check of its reached Reel, or \
                 none was answered: are the ICE candidates in Reel's answer reachable from it?)"
            }
            Some(EndReason::DtlsFailed) => {
                "the publisher never connected: ICE completed but the DTLS handshake failed"
            }
            _ => "the participant sent none before leaving",
        };
        Err((
            FailureCode::NoMedia,
            format!("no media was captured: {why}"),
        ))
    } else {
        let dir = data_dir.to_path_buf();
        let p = publication.clone();
        let id = asset_id.clone();
        match tokio::task::spawn_blocking(move || make(&dir, &p, &journals, &id, window))
            .await
            .map_err(|e| RecorderError::Internal(e.to_string()))?
        {
            // The journals are intact; the disk could not take the file now: tried again.
            Err(e) if e.is_no_space() => return Err(RecorderError::NoSpace(e.to_string())),
            made => made.map_err(|e| (FailureCode::OutputFailed, e.to_string())),
        }
    };
    let base = serde_json::json!({
        "session_id": publication.session_id,
        "room_id": publication.room_id,
        "publication_id": publication.id,
        "recording_id": recording_id,
                "participant": publication.participant,
    });
    // The recording's `notificationEvents` decides whether these go out as webhooks.
    let notify = db
        .recording_by_id(recording_id)
        .await
        .map(|r| r.notifies())
        .unwrap_or(true);
    match made {
        Ok(m) => {
            let start_ms = m.report.start_unix_us / 1000;
            let timeline = FileTimeline::of(&m.report);
            let missing = missing_intervals(gaps, start_ms, timeline.end_unix_ms());
            let mut details = serde_json::to_value(&m.report).expect("report serializes");
            if !missing.is_empty() {
                tracing::warn!(
                    publication = publication_id,
                    ?missing,
                    "stream asset truncated: its disk refused writes"
                );
                details["truncated"] = true.into();
                details["truncation_code"] = FailureCode::DiskFull.as_str().into();
                details["missing"] = timeline.json(&missing);
            }
            let asset = Asset {
                id: asset_id.to_string(),
                application_id: session.application_id.clone(),
                room_id: publication.room_id.clone(),
                session_id: publication.session_id.clone(),
                publication_id: Some(publication.id.clone()),
                recording_id: Some(recording_id.to_string()),
                participant: Some(publication.participant.clone()),
                asset_type: m.asset_type,
                format: m.report.container.into(),
                path: m.path.to_string_lossy().into_owned(),
                start_at: start_ms,
                end_at: start_ms + m.report.duration_ms as i64,
                duration_ms: m.report.duration_ms.round() as i64,
                size_bytes: m.size as i64,
                sha256: m.sha256,
                details,
                created_at: now_ms(),
                ..Asset::on_local_disk()
            };
            let mut payload = base;
            payload["asset_id"] = asset.id.clone().into();
            payload["asset_type"] = asset.asset_type.as_str().into();
            payload["duration_ms"] = asset.duration_ms.into();
            if !missing.is_empty() {
                payload["truncated"] = true.into();
                payload["code"] = FailureCode::DiskFull.as_str().into();
                payload["missing"] = timeline.json(&missing);
            }
            // The asset, the job's marker and the event in one transaction: a crash leaves
            // either all three or none, and then recovery runs the job again.
            let committed = db
                .commit(&[
                    Change::InsertAsset(asset.clone()),
                    Change::PublicationOutcome {
                        id: publication_id.into(),
                        state: PublicationState::Processed,
                        failure: None,
                    },
                    Change::event(
                        session.application_id.clone(),
                        EventKind::StreamSuccess,
                        payload,
                        notify,
                    ),
                ])
                .await;
            if let Err(e) = committed {
                // No row names the file: the job's next run makes it again.
                let _ = fs::remove_file(&m.path);
                return Err(e.into());
            }
            // Reported done: on disk, with everything committed before it.
            if let Err(e) = db.make_durable().await {
                tracing::warn!(error = %e, "checkpoint after an asset");
            }
            tracing::info!(publication = publication_id, asset = %asset.id, kind = %asset.asset_type, "stream asset ready");
            Ok(Outcome::Made(Box::new(asset)))
        }
        Err((code, reason)) => {
            tracing::warn!(publication = publication_id, %reason, "stream asset failed");
            let mut payload = base;
            payload["reason"] = reason.clone().into();
            payload["code"] = code.as_str().into();
            db.commit(&[
                Change::PublicationOutcome {
                    id: publication_id.into(),
                    state: PublicationState::Failed,
                    failure: Some(reason.clone()),
                },
                Change::event(
                    session.application_id.clone(),
                    EventKind::StreamFailure,
                    payload,
                    notify,
                ),
            ])
            .await?;
            Ok(Outcome::Failed { code, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::missing_intervals;

    #[test]
    fn gaps_of_several_tracks_merge_and_clip_to_the_asset() {
        let gaps = vec![(50, 120), (100, 150), (10, 20), (400, 500), (200, 210)];
        assert_eq!(
            missing_intervals(gaps, 15, 450),
            [(15, 20), (50, 150), (200, 210), (400, 450)]
        );
        assert!(missing_intervals(vec![(0, 10)], 10, 20).is_empty());
    }
}
