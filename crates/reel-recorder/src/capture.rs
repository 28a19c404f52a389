//! The capture thread: owns every open journal file, appends records in arrival order and
//! makes them durable at least every [`SYNC_INTERVAL`]. It is a plain thread because its
//! work is blocking file I/O, which must never stall the media loop or the async runtime.

use reel_core::{EndReason, PublicationId, TrackId};
use reel_media::journal::{JournalHeader, JournalWriter, Record};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;

/// A crash loses at most this much of what reached the capture thread.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

pub enum CaptureCommand {
    Open {
        publication: PublicationId,
        track: TrackId,
        path: PathBuf,
        header: Box<JournalHeader>,
    },
    Append {
        track: TrackId,
        record: Record,
    },
    /// Close every journal of the publication, then report `PublicationClosed`.
    Finish {
        publication: PublicationId,
        reason: EndReason,
    },
    /// Pause (`on: false`) or resume capture for every track of a session, present and
    /// future. While off, frames are dropped and each journal carries a Pause record; the
    /// remux cuts the interval out of every output.
    SetCapture {
        session: String,
        on: bool,
        at_unix_us: i64,
        /// Told once the session's journals are flushed and synced, so that a reader
        /// started afterwards sees everything captured up to this instant.
        flushed: Option<tokio::sync::oneshot::Sender<()>>,
    },
    Shutdown,
}

/// What the capture thread tells the recorder.
#[derive(Debug)]
pub enum CaptureNotice {
    /// All journals of the publication are closed and synced.
    PublicationClosed {
        publication: PublicationId,
        reason: EndReason,
    },
    /// A journal could not be written (disk full, permissions): the track stops recording.
    JournalFailed {
        publication: PublicationId,
        track: TrackId,
        error: String,
    },
}

struct OpenJournal {
    publication: PublicationId,
    session: String,
    writer: JournalWriter<BufWriter<File>>,
    dirty: bool,
    failed: bool,
    /// Capture is off for this journal's session: frames are dropped.
    paused: bool,
    /// A frame was dropped (too large): the next one written is marked a discontinuity.
    gap: bool,
    dropped_frames: u64,
}

#[derive(Clone)]
pub struct CaptureHandle {
    tx: mpsc::Sender<CaptureCommand>,
}

impl CaptureHandle {
    pub fn send(&self, cmd: CaptureCommand) {
        // The thread only exits on Shutdown; a send after that is dropped on purpose.
        let _ = self.tx.send(cmd);
    }
}

fn unix_us_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub fn spawn(
    notices: UnboundedSender<CaptureNotice>,
) -> (CaptureHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("reel-capture".into())
        .spawn(move || run(rx, notices))
        .expect("spawn capture thread");
    (CaptureHandle { tx }, thread)
}

fn run(rx: mpsc::Receiver<CaptureCommand>, notices: UnboundedSender<CaptureNotice>) {
    let mut journals: HashMap<TrackId, OpenJournal> = HashMap::new();
    // Sessions whose capture is off, with when it went off.
    let mut off: HashMap<String, i64> = HashMap::new();
    let mut next_sync = Instant::now() + SYNC_INTERVAL;
    loop {
        let wait = next_sync.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(CaptureCommand::Open {
                publication,
                track,
                path,
                header,
            }) => {
                let opened = path
                    .parent()
                    .map(fs::create_dir_all)
                    .unwrap_or(Ok(()))
                    .and_then(|_| File::create(&path))
                    .map_err(reel_media::MediaError::from)
                    .and_then(|f| {
                        let mut w =
                            JournalWriter::create(BufWriter::with_capacity(64 << 10, f), &header)?;
                        // The header reaches the file at once: a journal cut off before its
                        // first sync is then a journal with no frames, not an empty file.
                        w.get_mut().flush()?;
                        Ok(w)
                    });
                match opened {
                    Ok(mut writer) => {
                        let session = header.session_id.clone();
                        // A track that opens during a pause starts paused, since the same
                        // instant as the others, so every track gets the same cut.
                        let mut failed = false;
                        let paused = off.get(&session).copied();
                        if let Some(since) = paused {
                            failed = writer.append(&Record::Pause { at_unix_us: since }).is_err();
                        }
                        let journal = OpenJournal {
                            publication,
                            session,
                            writer,
                            dirty: true,
                            failed,
                            paused: paused.is_some(),
                            gap: false,
                            dropped_frames: 0,
                        };
                        journals.insert(track, journal);
                    }
                    Err(e) => {
                        let _ = notices.send(CaptureNotice::JournalFailed {
                            publication,
                            track,
                            error: e.to_string(),
                        });
                    }
                }
            }
            Ok(CaptureCommand::Append { track, record }) => {
                if let Some(j) = journals.get_mut(&track) {
                    if j.failed || (j.paused && matches!(record, Record::Frame { .. })) {
                        continue;
                    }
                    let mut record = record;
                    if let Record::Frame { flags: f, .. } = &mut record {
                        if std::mem::take(&mut j.gap) {
                            *f |= reel_media::journal::flags::DISCONTINUITY;
                        }
                    }
                    match j.writer.append(&record) {
                        Ok(()) => {}
                        // The sender's oversized frame is dropped and marked as a gap; the
                        // track goes on (the remux waits for the next keyframe).
                        Err(e @ reel_media::MediaError::FrameTooLarge(_)) => {
                            j.gap = true;
                            j.dropped_frames += 1;
                            if j.dropped_frames == 1 {
                                tracing::warn!(%track, error = %e, "frame dropped");
                            }
                            continue;
                        }
                        Err(e) => {
                            j.failed = true;
                            let _ = notices.send(CaptureNotice::JournalFailed {
                                publication: j.publication.clone(),
                                track: track.clone(),
                                error: e.to_string(),
                            });
                        }
                    }
                    j.dirty = true;
                }
            }
            Ok(CaptureCommand::Finish {
                publication,
                reason,
            }) => {
                let tracks: Vec<TrackId> = journals
                    .iter()
                    .filter(|(_, j)| j.publication == publication)
                    .map(|(t, _)| t.clone())
                    .collect();
                for track in tracks {
                    let mut j = journals.remove(&track).expect("listed above");
                    if !j.failed {
                        let _ = j.writer.append(&Record::End {
                            at_unix_us: unix_us_now(),
                        });
                    }
                    sync(&mut j);
                }
                let _ = notices.send(CaptureNotice::PublicationClosed {
                    publication,
                    reason,
                });
            }
            Ok(CaptureCommand::SetCapture {
                session,
                on,
                at_unix_us,
                flushed,
            }) => {
                let changed = if on {
                    off.remove(&session).is_some()
                } else {
                    // A second "off" keeps the first instant: that is when capture stopped.
                    let entry = off.entry(session.clone());
                    let fresh = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
                    entry.or_insert(at_unix_us);
                    fresh
                };
                if changed {
                    let record = if on {
                        Record::Resume { at_unix_us }
                    } else {
                        Record::Pause { at_unix_us }
                    };
                    for j in journals
                        .values_mut()
                        .filter(|j| j.session == session && !j.failed)
                    {
                        j.failed = j.writer.append(&record).is_err();
                        j.paused = !on;
                        j.dirty = true;
                    }
                }
                for j in journals.values_mut().filter(|j| j.session == session) {
                    sync(j);
                }
                if let Some(done) = flushed {
                    let _ = done.send(());
                }
            }
            Ok(CaptureCommand::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                for j in journals.values_mut() {
                    sync(j);
                }
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next_sync {
            for j in journals.values_mut().filter(|j| j.dirty) {
                sync(j);
            }
            next_sync = Instant::now() + SYNC_INTERVAL;
        }
    }
}

fn sync(j: &mut OpenJournal) {
    let w = j.writer.get_mut();
    let ok = w.flush().is_ok() && w.get_ref().sync_data().is_ok();
    if !ok {
        tracing::warn!("journal sync failed");
    }
    j.dirty = false;
}
