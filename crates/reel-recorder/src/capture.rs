//! The capture threads: each owns the open journal files of the publications routed to it,
//! appends records in arrival order and makes them durable at least every
//! [`SYNC_INTERVAL`]. They are plain threads because their work is blocking file I/O, which
//! must never stall the media loop or the async runtime.
//!
//! A recorder must absorb bursts and disk stalls, not drop media at the first one: the
//! queues are bounded by **memory** (a budget sized as seconds of media for the configured
//! number of publishers), not by a count of records. With a count of 8192 (about 0.7 s at
//! 150 publishers) the ingest benchmark lost 5–39 % of video frames to fsync pauses; a
//! 10 s budget rides out a 2 s stall with nothing lost. Past the budget a frame is dropped,
//! counted, alarmed and the track's next frame marked a discontinuity. Publications are
//! spread over several threads (by publication, so one publication's records stay in order
//! and its close is one thread's), so one slow fsync does not hold every journal.

use crate::journal_file::{JournalFile, Refused};
use reel_core::{EndReason, PublicationId, TrackId};
use reel_media::journal::{JournalHeader, Record};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;

/// A crash loses at most this much of what reached the capture thread.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// What a record costs the budget beyond its payload (the command, the channel's slot).
const RECORD_OVERHEAD: u64 = 96;

/// How capture absorbs load.
#[derive(Debug, Clone, Copy)]
pub struct CaptureConfig {
    /// Bytes of media that may wait for the disk, across all threads.
    pub budget_bytes: u64,
    /// Capture threads; publications are spread over them.
    pub threads: usize,
}

impl CaptureConfig {
    /// `seconds` of media for `publishers` at 2 Mbit/s each (a 1.5 Mbit/s video with audio
    /// and headroom) and `calls` of two G.711 streams (50 records/s of 160 bytes each), on
    /// one thread per core and at least two. A cap, not a reservation: memory is used only
    /// while the disk lags.
    pub fn for_load(seconds: u64, publishers: usize, calls: usize) -> CaptureConfig {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let call_bytes_per_sec = 2 * 50 * (160 + RECORD_OVERHEAD);
        CaptureConfig {
            budget_bytes: seconds.saturating_mul(
                (publishers as u64)
                    .saturating_mul(250_000)
                    .saturating_add((calls as u64).saturating_mul(call_bytes_per_sec)),
            ),
            threads,
        }
    }
}

pub enum CaptureCommand {
    Open {
        publication: PublicationId,
        track: TrackId,
        path: PathBuf,
        header: Box<JournalHeader>,
    },
    Append {
        publication: PublicationId,
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

/// What every capture thread must do (a pause, a shutdown); the last one to have done it
/// tells the waiter.
enum Broadcast {
    SetCapture {
        session: String,
        on: bool,
        at_unix_us: i64,
        flushed: Arc<Countdown>,
    },
    Shutdown,
}

/// What one capture thread is asked.
enum ThreadCommand {
    One(CaptureCommand),
    All(Broadcast),
}

/// Tells `done` when the last of `left` threads has counted down.
struct Countdown {
    left: AtomicU64,
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Countdown {
    fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(done) = self.done.lock().expect("countdown").take() {
                let _ = done.send(());
            }
        }
    }
}

/// What the capture thread tells the recorder.
#[derive(Debug)]
pub enum CaptureNotice {
    /// All journals of the publication are closed and synced.
    PublicationClosed {
        publication: PublicationId,
        reason: EndReason,
    },
    /// The disk refused a journal's write (full, read-only): its records are dropped until
    /// it takes them again, tried every [`RESUME_INTERVAL`].
    JournalStalled {
        publication: PublicationId,
        track: TrackId,
        error: String,
    },
    /// What a stalled journal lost: from its first dropped record to when it resumed
    /// (`resumed`), or to when its track closed still stalled.
    MediaLost {
        publication: PublicationId,
        track: TrackId,
        from_unix_us: i64,
        to_unix_us: i64,
        resumed: bool,
    },
}

/// How often a stalled journal tries the disk again.
const RESUME_INTERVAL: Duration = Duration::from_secs(1);

struct OpenJournal {
    publication: PublicationId,
    session: String,
    file: JournalFile,
    dirty: bool,
    /// Since when the journal is stalled (its records dropped).
    stalled_since: Option<i64>,
    /// When the file last held everything written to it: a journal closed still stalled
    /// loses what it had buffered since.
    last_synced: i64,
    /// Whether the journal file's last pause record is a Pause: a stall may have dropped
    /// the capture switch, which is written again when the journal resumes.
    file_paused: bool,
    /// Since when capture is off for this journal's session.
    pause_at: Option<i64>,
    /// Capture is off for this journal's session: frames are dropped.
    paused: bool,
    /// A frame was dropped (too large): the next one written is marked a discontinuity.
    gap: bool,
    dropped_frames: u64,
}

#[derive(Clone)]
pub struct CaptureHandle {
    threads: Vec<mpsc::Sender<ThreadCommand>>,
    queued: Arc<Queued>,
    lost: Arc<Lost>,
}

/// Bytes of media waiting for the disk, and the most that may.
struct Queued {
    bytes: AtomicU64,
    budget: u64,
    /// The most that ever waited (a figure for the operator and the benchmark).
    peak: AtomicU64,
}

/// Tracks that lost records to a full budget: their next frame is marked a discontinuity.
#[derive(Default)]
struct Lost {
    any: AtomicBool,
    tracks: Mutex<HashSet<TrackId>>,
    records: AtomicU64,
}

fn cost(record: &Record) -> u64 {
    RECORD_OVERHEAD
        + match record {
            Record::Frame { data, .. } => data.len() as u64,
            _ => 0,
        }
}

/// The thread a publication's records go to: always the same one.
fn thread_of(publication: &PublicationId, threads: usize) -> usize {
    let hash = publication
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % threads as u64) as usize
}

impl CaptureHandle {
    /// Media (`Append`) never waits: past the memory budget the record is dropped,
    /// counted, and the track's next frame carries the discontinuity flag, so the remux
    /// resumes at a keyframe. Control commands (open, finish, pause) are never dropped.
    pub fn send(&self, cmd: CaptureCommand) {
        // The threads only exit on Shutdown; a send after that is dropped on purpose.
        match cmd {
            CaptureCommand::Append {
                publication,
                track,
                mut record,
            } => {
                if self.lost.any.load(Ordering::Relaxed) {
                    if let Record::Frame { flags: f, .. } = &mut record {
                        let mut tracks = self.lost.tracks.lock().expect("lost tracks");
                        if tracks.remove(&track) {
                            *f |= reel_media::journal::flags::DISCONTINUITY;
                        }
                        self.lost.any.store(!tracks.is_empty(), Ordering::Relaxed);
                    }
                }
                let size = cost(&record);
                let before = self.queued.bytes.fetch_add(size, Ordering::AcqRel);
                if before + size > self.queued.budget {
                    self.queued.bytes.fetch_sub(size, Ordering::AcqRel);
                    let n = self.lost.records.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut tracks = self.lost.tracks.lock().expect("lost tracks");
                    if tracks.insert(track.clone()) {
                        tracing::error!(%track, dropped_in_all = n, budget_bytes = self.queued.budget,
                            "capture memory budget full (the disk is too slow): media dropped");
                    }
                    self.lost.any.store(true, Ordering::Relaxed);
                    return;
                }
                self.queued.peak.fetch_max(before + size, Ordering::Relaxed);
                let to = thread_of(&publication, self.threads.len());
                let sent = self.threads[to].send(ThreadCommand::One(CaptureCommand::Append {
                    publication,
                    track,
                    record,
                }));
                if sent.is_err() {
                    // That thread is gone: what it will never write must not hold the budget.
                    self.queued.bytes.fetch_sub(size, Ordering::AcqRel);
                }
            }
            CaptureCommand::Open {
                ref publication, ..
            }
            | CaptureCommand::Finish {
                ref publication, ..
            } => {
                let to = thread_of(publication, self.threads.len());
                let _ = self.threads[to].send(ThreadCommand::One(cmd));
            }
            CaptureCommand::SetCapture {
                session,
                on,
                at_unix_us,
                flushed,
            } => {
                let flushed = Arc::new(Countdown {
                    left: AtomicU64::new(self.threads.len() as u64),
                    done: Mutex::new(flushed),
                });
                for thread in &self.threads {
                    let _ = thread.send(ThreadCommand::All(Broadcast::SetCapture {
                        session: session.clone(),
                        on,
                        at_unix_us,
                        flushed: flushed.clone(),
                    }));
                }
            }
            CaptureCommand::Shutdown => {
                for thread in &self.threads {
                    let _ = thread.send(ThreadCommand::All(Broadcast::Shutdown));
                }
            }
        }
    }

    /// Records dropped so far because the budget was full.
    pub fn dropped_records(&self) -> u64 {
        self.lost.records.load(Ordering::Relaxed)
    }

    /// The most media that ever waited for the disk at once, in bytes.
    pub fn peak_queued_bytes(&self) -> u64 {
        self.queued.peak.load(Ordering::Relaxed)
    }
}

fn queues(config: CaptureConfig) -> (CaptureHandle, Vec<mpsc::Receiver<ThreadCommand>>) {
    let (threads, receivers) = (0..config.threads.max(1)).map(|_| mpsc::channel()).unzip();
    let handle = CaptureHandle {
        threads,
        queued: Arc::new(Queued {
            bytes: AtomicU64::new(0),
            budget: config.budget_bytes,
            peak: AtomicU64::new(0),
        }),
        lost: Default::default(),
    };
    (handle, receivers)
}

fn unix_us_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Starts the capture threads; the returned handle joins them all (after `Shutdown`).
pub fn spawn(
    config: CaptureConfig,
    notices: UnboundedSender<CaptureNotice>,
) -> (CaptureHandle, std::thread::JoinHandle<()>) {
    let (handle, receivers) = queues(config);
    let threads: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let (notices, queued) = (notices.clone(), handle.queued.clone());
            std::thread::Builder::new()
                .name(format!("reel-capture-{i}"))
                .spawn(move || run(rx, notices, &queued))
                .expect("spawn capture thread")
        })
        .collect();
    let all = std::thread::Builder::new()
        .name("reel-capture".into())
        .spawn(move || threads.into_iter().for_each(|t| drop(t.join())))
        .expect("spawn capture joiner");
    (handle, all)
}

fn run(
    rx: mpsc::Receiver<ThreadCommand>,
    notices: UnboundedSender<CaptureNotice>,
    queued: &Queued,
) {
    let mut journals: HashMap<TrackId, OpenJournal> = HashMap::new();
    // Sessions whose capture is off, with when it went off.
    let mut off: HashMap<String, i64> = HashMap::new();
    let mut next_sync = Instant::now() + SYNC_INTERVAL;
    let mut next_resume = Instant::now() + RESUME_INTERVAL;
    loop {
        let wait = next_sync.saturating_duration_since(Instant::now());
        let command = match rx.recv_timeout(wait) {
            Ok(ThreadCommand::One(command)) => Some(command),
            Ok(ThreadCommand::All(Broadcast::SetCapture {
                session,
                on,
                at_unix_us,
                flushed,
            })) => {
                set_capture(&mut journals, &mut off, session, on, at_unix_us, &notices);
                flushed.count_down();
                None
            }
            Ok(ThreadCommand::All(Broadcast::Shutdown))
            | Err(mpsc::RecvTimeoutError::Disconnected) => {
                for (track, j) in journals.iter_mut() {
                    j.try_resume(track, &notices);
                    if !j.closed_stalled(track, &notices) {
                        j.sync(track, &notices);
                    }
                }
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        };
        match command {
            Some(CaptureCommand::Open {
                publication,
                track,
                path,
                header,
            }) => {
                // The header is on disk before the first frame: a journal cut off before its
                // first sync is a journal with no frames, not an empty file.
                let (file, refused) = JournalFile::create(path, &header);
                let session = header.session_id.clone();
                let mut journal = OpenJournal {
                    publication,
                    session,
                    file,
                    dirty: true,
                    stalled_since: None,
                    last_synced: unix_us_now(),
                    file_paused: false,
                    pause_at: None,
                    paused: false,
                    gap: false,
                    dropped_frames: 0,
                };
                if let Some(error) = refused {
                    journal.stalled(&track, error, &notices);
                }
                // A track that opens during a pause starts paused, since the same instant
                // as the others, so every track gets the same cut.
                if let Some(&since) = off.get(&journal.session) {
                    journal.paused = true;
                    journal.pause_at = Some(since);
                    journal.write(&track, &Record::Pause { at_unix_us: since }, &notices);
                }
                journals.insert(track, journal);
            }
            Some(CaptureCommand::Append { track, record, .. }) => {
                queued.bytes.fetch_sub(cost(&record), Ordering::AcqRel);
                if let Some(j) = journals.get_mut(&track) {
                    if j.paused && matches!(record, Record::Frame { .. }) {
                        continue;
                    }
                    let mut record = record;
                    if let Record::Frame { flags: f, .. } = &mut record {
                        if j.gap && j.stalled_since.is_none() {
                            j.gap = false;
                            *f |= reel_media::journal::flags::DISCONTINUITY;
                        }
                    }
                    j.write(&track, &record, &notices);
                }
            }
            Some(CaptureCommand::Finish {
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
                    // A last try, so that a journal whose disk came back ends whole.
                    j.try_resume(&track, &notices);
                    if j.closed_stalled(&track, &notices) {
                        continue;
                    }
                    j.write(
                        &track,
                        &Record::End {
                            at_unix_us: unix_us_now(),
                        },
                        &notices,
                    );
                    j.sync(&track, &notices);
                }
                let _ = notices.send(CaptureNotice::PublicationClosed {
                    publication,
                    reason,
                });
            }
            // The handle sends these to every thread as broadcasts (above).
            Some(CaptureCommand::SetCapture { .. } | CaptureCommand::Shutdown) | None => {}
        }
        if Instant::now() >= next_sync {
            for (track, j) in journals.iter_mut().filter(|(_, j)| j.dirty) {
                j.sync(track, &notices);
            }
            if Instant::now() >= next_resume {
                for (track, j) in journals.iter_mut() {
                    j.try_resume(track, &notices);
                }
                next_resume = Instant::now() + RESUME_INTERVAL;
            }
            next_sync = Instant::now() + SYNC_INTERVAL;
        }
    }
}

/// Pause or resume capture for a session's journals on this thread, then sync them.
fn set_capture(
    journals: &mut HashMap<TrackId, OpenJournal>,
    off: &mut HashMap<String, i64>,
    session: String,
    on: bool,
    at_unix_us: i64,
    notices: &UnboundedSender<CaptureNotice>,
) {
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
        for (track, j) in journals.iter_mut().filter(|(_, j)| j.session == session) {
            j.write(track, &record, notices);
            j.paused = !on;
            j.pause_at = (!on).then_some(at_unix_us);
        }
    }
    for (track, j) in journals.iter_mut().filter(|(_, j)| j.session == session) {
        j.sync(track, notices);
        // A stop flushes the journals for the assets made from them now: what a stalled
        // one lost so far is reported now (and counted again from here), not at its resume.
        if let Some(from) = j.stalled_since {
            let now = unix_us_now();
            let _ = notices.send(CaptureNotice::MediaLost {
                publication: j.publication.clone(),
                track: track.clone(),
                from_unix_us: from,
                to_unix_us: now,
                resumed: false,
            });
            j.stalled_since = Some(now);
        }
    }
}

impl OpenJournal {
    /// Appends a record, or drops it while the journal is stalled (a refusal stalls it).
    fn write(
        &mut self,
        track: &TrackId,
        record: &Record,
        notices: &UnboundedSender<CaptureNotice>,
    ) {
        if self.stalled_since.is_some() {
            return;
        }
        match self.file.append(record) {
            Ok(()) => {
                self.dirty = true;
                match record {
                    Record::Pause { .. } => self.file_paused = true,
                    Record::Resume { .. } => self.file_paused = false,
                    _ => {}
                }
            }
            // The sender's oversized frame is dropped and marked as a gap; the track goes
            // on (the remux waits for the next keyframe).
            Err(Refused::TooLarge(e)) => {
                self.gap = true;
                self.dropped_frames += 1;
                if self.dropped_frames == 1 {
                    tracing::warn!(%track, error = %e, "frame dropped");
                }
            }
            Err(Refused::Stalled(error)) => self.stalled(track, error, notices),
        }
    }

    fn sync(&mut self, track: &TrackId, notices: &UnboundedSender<CaptureNotice>) {
        if self.stalled_since.is_some() {
            return;
        }
        match self.file.sync() {
            Ok(()) => self.last_synced = unix_us_now(),
            Err(error) => self.stalled(track, error, notices),
        }
        self.dirty = false;
    }

    /// At close: a journal still stalled reports what it lost, from its last sync (what it
    /// had buffered is lost too). True if it was stalled.
    fn closed_stalled(
        &mut self,
        track: &TrackId,
        notices: &UnboundedSender<CaptureNotice>,
    ) -> bool {
        let Some(from) = self.stalled_since.take() else {
            return false;
        };
        let _ = notices.send(CaptureNotice::MediaLost {
            publication: self.publication.clone(),
            track: track.clone(),
            from_unix_us: from.min(self.last_synced),
            to_unix_us: unix_us_now(),
            resumed: false,
        });
        true
    }

    fn stalled(
        &mut self,
        track: &TrackId,
        error: String,
        notices: &UnboundedSender<CaptureNotice>,
    ) {
        self.stalled_since = Some(unix_us_now());
        let _ = notices.send(CaptureNotice::JournalStalled {
            publication: self.publication.clone(),
            track: track.clone(),
            error,
        });
    }

    /// A stalled journal tries the disk again; resumed, its next frame is marked a
    /// discontinuity and what it lost is reported.
    fn try_resume(&mut self, track: &TrackId, notices: &UnboundedSender<CaptureNotice>) {
        let Some(from) = self.stalled_since else {
            return;
        };
        if self.file.resume().is_err() {
            return;
        }
        self.stalled_since = None;
        self.gap = true;
        self.last_synced = unix_us_now();
        // The capture switches the stall dropped: the journal says the session's state.
        if self.paused && !self.file_paused {
            let at_unix_us = self.pause_at.unwrap_or_else(unix_us_now);
            self.write(track, &Record::Pause { at_unix_us }, notices);
        } else if !self.paused && self.file_paused {
            let at_unix_us = unix_us_now();
            self.write(track, &Record::Resume { at_unix_us }, notices);
        }
        let _ = notices.send(CaptureNotice::MediaLost {
            publication: self.publication.clone(),
            track: track.clone(),
            from_unix_us: from,
            to_unix_us: unix_us_now(),
            resumed: true,
        });
    }
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

    fn append(publication: &PublicationId, track: &TrackId, record: Record) -> CaptureCommand {
        CaptureCommand::Append {
            publication: publication.clone(),
            track: track.clone(),
            record,
        }
    }

    /// A capture thread that stalls beyond the memory budget never blocks the media loop
    /// nor grows past the budget: what does not fit is dropped and counted, and the track's
    /// next frame is marked a discontinuity. Control commands still get through.
    #[test]
    fn past_its_memory_budget_a_stalled_capture_costs_frames_not_memory_or_the_media_loop() {
        let budget = 4 * cost(&frame(0));
        let (handle, mut receivers) = queues(CaptureConfig {
            budget_bytes: budget,
            threads: 1,
        });
        let rx = receivers.remove(0);
        let publication = PublicationId::generate();
        let (track, other) = (TrackId::generate(), TrackId::generate());
        let started = Instant::now();
        for i in 0..1000 {
            handle.send(append(&publication, &track, frame(i)));
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "the sender waited"
        );
        assert_eq!(handle.dropped_records(), 996);
        assert_eq!(handle.peak_queued_bytes(), budget);
        let flags_of = |c: ThreadCommand| match c {
            ThreadCommand::One(CaptureCommand::Append {
                record: Record::Frame { flags, .. },
                ..
            }) => flags,
            _ => panic!("not a frame"),
        };
        let queued: Vec<_> = rx.try_iter().collect();
        assert_eq!(queued.len(), 4);
        // The thread drained them: the budget is free again.
        handle.queued.bytes.store(0, Ordering::Relaxed);
        handle.send(append(&publication, &other, frame(1)));
        handle.send(append(&publication, &track, frame(1000)));
        handle.send(append(&publication, &track, frame(1001)));
        let got: Vec<u8> = rx.try_iter().map(flags_of).collect();
        let gap = reel_media::journal::flags::DISCONTINUITY;
        assert_eq!(got, vec![0, gap, 0]);
        // A control command is never dropped, budget or not.
        for i in 0..10 {
            handle.send(append(&publication, &other, frame(i)));
        }
        handle.send(CaptureCommand::Shutdown);
        let all: Vec<_> = rx.try_iter().collect();
        assert!(matches!(
            all.last(),
            Some(ThreadCommand::All(Broadcast::Shutdown))
        ));
    }

    fn header(publication: &PublicationId, track: &TrackId) -> Box<JournalHeader> {
        Box::new(JournalHeader {
            track_id: track.to_string(),
            publication_id: publication.to_string(),
            session_id: "ses_stall".into(),
            room_id: "room_stall".into(),
            participant: "p".into(),
            kind: reel_core::MediaKind::Video,
            codec: reel_core::Codec::Vp8,
            clock_rate: 90_000,
            mid: "0".into(),
            rid: None,
            created_unix_us: 0,
        })
    }

    /// A disk that does not answer for 2 s (here: every capture thread blocked in open(2) on
    /// a FIFO nobody reads yet) while 150 publishers send 1.5 Mbit/s video costs nothing:
    /// the default budget holds the 2 s, and every frame reaches its journal afterwards.
    #[test]
    fn a_two_second_disk_stall_under_150_publishers_loses_no_frame() {
        let dir = tempfile::tempdir().unwrap();
        let config = CaptureConfig::for_load(10, 400, 1000);
        let (notices, mut notice_rx) = tokio::sync::mpsc::unbounded_channel();
        let (handle, joiner) = spawn(config, notices);
        // One stalled publication per capture thread: a FIFO as its journal.
        let mut stalled = vec![];
        let mut n = 0;
        while stalled.len() < config.threads {
            let publication = PublicationId::generate();
            let thread = thread_of(&publication, config.threads);
            if stalled.iter().any(|(t, _, _)| *t == thread) {
                continue;
            }
            let fifo = dir.path().join(format!("stall-{n}.fifo"));
            n += 1;
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(made.success());
            handle.send(CaptureCommand::Open {
                publication: publication.clone(),
                track: TrackId::generate(),
                path: fifo.clone(),
                header: header(&publication, &TrackId::generate()),
            });
            stalled.push((thread, publication, fifo));
        }
        // 150 publishers' journals, opened behind the stall.
        let publishers: Vec<(PublicationId, TrackId)> = (0..150)
            .map(|_| (PublicationId::generate(), TrackId::generate()))
            .collect();
        for (p, t) in &publishers {
            handle.send(CaptureCommand::Open {
                publication: p.clone(),
                track: t.clone(),
                path: dir.path().join(format!("{t}.rjnl")),
                header: header(p, t),
            });
        }
        // 2 s at 30 fps of ~6 KB frames (1.5 Mbit/s), sent as they would arrive.
        let started = Instant::now();
        for i in 0..60u64 {
            for (p, t) in &publishers {
                let record = Record::Frame {
                    rtp_time: i * 3000,
                    arrival_unix_us: i as i64 * 33_333,
                    flags: 0,
                    data: vec![i as u8; 6_250],
                };
                handle.send(append(p, t, record));
            }
            std::thread::sleep(
                Duration::from_micros(33_333 * (i + 1)).saturating_sub(started.elapsed()),
            );
        }
        assert_eq!(
            handle.dropped_records(),
            0,
            "frames dropped during the stall"
        );
        // The disk answers again: every FIFO gets its reader.
        let readers: Vec<_> = stalled
            .iter()
            .map(|(_, _, fifo)| {
                let fifo = fifo.clone();
                std::thread::spawn(move || {
                    std::io::copy(&mut std::fs::File::open(fifo)?, &mut std::io::sink())
                })
            })
            .collect();
        for (p, _) in &publishers {
            handle.send(CaptureCommand::Finish {
                publication: p.clone(),
                reason: EndReason::Left,
            });
        }
        for (_, p, _) in &stalled {
            handle.send(CaptureCommand::Finish {
                publication: p.clone(),
                reason: EndReason::Left,
            });
        }
        handle.send(CaptureCommand::Shutdown);
        joiner.join().unwrap();
        readers.into_iter().for_each(|r| drop(r.join()));
        assert_eq!(handle.dropped_records(), 0);
        eprintln!(
            "2 s stall: peak {} MB waiting (budget {} MB), {} threads",
            handle.peak_queued_bytes() / 1_000_000,
            config.budget_bytes / 1_000_000,
            config.threads
        );
        let mut closed = 0;
        while let Ok(n) = notice_rx.try_recv() {
            match n {
                CaptureNotice::PublicationClosed { .. } => closed += 1,
                // The FIFOs are not files: fsync refuses them. A real journal must not stall.
                CaptureNotice::JournalStalled { track, .. }
                | CaptureNotice::MediaLost { track, .. }
                    if publishers.iter().any(|(_, t)| *t == track) =>
                {
                    panic!("journal {track} stalled")
                }
                _ => {}
            }
        }
        assert_eq!(closed, publishers.len() + stalled.len());
        for (_, t) in &publishers {
            let bytes = std::fs::read(dir.path().join(format!("{t}.rjnl"))).unwrap();
            let summary = reel_media::journal::summarize(&bytes[..]).unwrap();
            assert_eq!(summary.frames, 60, "{t}: {summary:?}");
        }
    }
}
