//! The capture thread: owns every open journal file, appends records in arrival order and
//! makes them durable at least every [`SYNC_INTERVAL`]. It is a plain thread because its
//! work is blocking file I/O, which must never stall the media loop or the async runtime.

use reel_core::{EndReason, PublicationId, TrackId};
use reel_media::journal::{JournalHeader, JournalWriter, Record};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;

/// A crash loses at most this much of what reached the capture thread.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// Commands waiting for the capture thread, at most. About 250 ms of media for 400
/// publishers: a disk that stalls longer costs frames (dropped, and the next one of the track
/// marked a discontinuity), never unbounded memory or a stalled media loop.
pub const QUEUE_CAPACITY: usize = 8192;

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
    tx: mpsc::SyncSender<CaptureCommand>,
    lost: Arc<Lost>,
}

/// Tracks that lost records to a full queue: their next frame is marked a discontinuity.
#[derive(Default)]
struct Lost {
    any: AtomicBool,
    tracks: Mutex<HashSet<TrackId>>,
    records: AtomicU64,
}

impl CaptureHandle {
    /// Media (`Append`) never waits: when the queue is full the record is dropped, counted,
    /// and the track's next frame carries the discontinuity flag, so the remux resumes at a
    /// keyframe. Control commands (open, finish, pause) are never dropped: they wait for a
    /// free place, which the capture thread makes within one write.
    pub fn send(&self, cmd: CaptureCommand) {
        // The thread only exits on Shutdown; a send after that is dropped on purpose.
        match cmd {
            CaptureCommand::Append { track, mut record } => {
                if self.lost.any.load(Ordering::Relaxed) {
                    if let Record::Frame { flags: f, .. } = &mut record {
                        let mut tracks = self.lost.tracks.lock().expect("lost tracks");
                        if tracks.remove(&track) {
                            *f |= reel_media::journal::flags::DISCONTINUITY;
                        }
                        self.lost.any.store(!tracks.is_empty(), Ordering::Relaxed);
                    }
                }
                match self.tx.try_send(CaptureCommand::Append { track, record }) {
                    Ok(()) | Err(mpsc::TrySendError::Disconnected(_)) => {}
                    Err(mpsc::TrySendError::Full(CaptureCommand::Append { track, .. })) => {
                        let n = self.lost.records.fetch_add(1, Ordering::Relaxed) + 1;
                        let mut tracks = self.lost.tracks.lock().expect("lost tracks");
                        if tracks.insert(track.clone()) {
                            tracing::warn!(%track, dropped_in_all = n, "capture queue full: media dropped");
                        }
                        self.lost.any.store(true, Ordering::Relaxed);
                    }
                    Err(mpsc::TrySendError::Full(_)) => unreachable!("only Append is tried"),
                }
            }
            other => {
                let _ = self.tx.send(other);
            }
        }
    }

    /// Records dropped so far because the queue was full.
    pub fn dropped_records(&self) -> u64 {
        self.lost.records.load(Ordering::Relaxed)
    }
}

fn queue(capacity: usize) -> (CaptureHandle, mpsc::Receiver<CaptureCommand>) {
    let (tx, rx) = mpsc::sync_channel(capacity);
    let handle = CaptureHandle {
        tx,
        lost: Default::default(),
    };
    (handle, rx)
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
    let (handle, rx) = queue(QUEUE_CAPACITY);
    let thread = std::thread::Builder::new()
        .name("reel-capture".into())
        .spawn(move || run(rx, notices))
        .expect("spawn capture thread");
    (handle, thread)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64) -> Record {
        Record::Frame {
            rtp_time: i,
            arrival_unix_us: i as i64,
            flags: 0,
            data: vec![1, 2, 3],
        }
    }

    /// A capture thread that stalls (a disk that does not answer) never blocks the media
    /// loop nor grows the queue: what does not fit is dropped and counted, and the track's
    /// next frame is marked a discontinuity. Control commands still get through.
    #[test]
    fn a_stalled_capture_thread_costs_frames_not_memory_or_the_media_loop() {
        let (handle, rx) = queue(4);
        let track = TrackId::generate();
        let other = TrackId::generate();
        let started = Instant::now();
        for i in 0..1000 {
            handle.send(CaptureCommand::Append {
                track: track.clone(),
                record: frame(i),
            });
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "the sender waited"
        );
        assert_eq!(handle.dropped_records(), 996);
        let queued: Vec<_> = rx.try_iter().collect();
        assert_eq!(queued.len(), 4);
        // The queue drained: another track is untouched, this one's next frame is a gap.
        handle.send(CaptureCommand::Append {
            track: other.clone(),
            record: frame(1),
        });
        handle.send(CaptureCommand::Append {
            track: track.clone(),
            record: frame(1000),
        });
        handle.send(CaptureCommand::Append {
            track: track.clone(),
            record: frame(1001),
        });
        let flags_of = |c: CaptureCommand| match c {
            CaptureCommand::Append {
                record: Record::Frame { flags, .. },
                ..
            } => flags,
            _ => panic!("not a frame"),
        };
        let got: Vec<u8> = rx.try_iter().map(flags_of).collect();
        let gap = reel_media::journal::flags::DISCONTINUITY;
        assert_eq!(got, vec![0, gap, 0]);
        // A control command waits for a place instead of being dropped.
        for i in 0..4 {
            handle.send(CaptureCommand::Append {
                track: other.clone(),
                record: frame(i),
            });
        }
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            rx.try_iter().count() + rx.recv_timeout(Duration::from_secs(1)).map_or(0, |_| 1)
        });
        handle.send(CaptureCommand::Shutdown);
        assert_eq!(drain.join().unwrap(), 5);
    }
}
