//! One track's journal file, kept writable across a full disk: a write the disk refuses
//! stalls the journal instead of ending it. While stalled, records are refused (the caller
//! counts what it loses); [`JournalFile::resume`] tries again and, once the disk takes the
//! bytes, the journal goes on from its last whole record. What the file holds is always a
//! journal: whole records, cut back to the last one that fully reached it.
//!
//! Where the bytes are when a write fails: every record the writer accepted whole is counted
//! (`bytes_written`); some of them may still sit in the `BufWriter`'s buffer, and the failed
//! record may have reached the file in part (a record larger than the buffer is written
//! straight through). So the file is cut back to `accepted - buffered` and the buffered bytes
//! are written again after it.

use reel_media::journal::{JournalHeader, JournalWriter, Record};
use reel_media::MediaError;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

const BUFFER: usize = 64 << 10;

type Writer = JournalWriter<BufWriter<File>>;

enum State {
    Writing(Writer),
    /// The disk refused a write. `file` is None when even creating the file failed.
    Stalled {
        file: Option<File>,
        /// The file's valid length before `pending`.
        keep: u64,
        /// Whole records (or the header) not yet on disk, to write at `keep`.
        pending: Vec<u8>,
    },
}

pub(crate) struct JournalFile {
    path: PathBuf,
    state: State,
}

/// Why a record was not written.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The frame is larger than a journal takes: dropped alone, the journal goes on.
    TooLarge(MediaError),
    /// The disk refused it (or an earlier record): the journal is stalled until it resumes.
    Stalled(String),
}

fn header_bytes(header: &JournalHeader) -> Vec<u8> {
    JournalWriter::create(Vec::new(), header)
        .expect("a Vec takes every write")
        .into_inner()
}

impl JournalFile {
    /// Creates the journal with its header, synced. A disk that refuses it leaves the
    /// journal stalled (not failed): it is created when the disk takes it.
    pub(crate) fn create(path: PathBuf, header: &JournalHeader) -> (JournalFile, Option<String>) {
        let mut journal = JournalFile {
            path,
            state: State::Stalled {
                file: None,
                keep: 0,
                pending: header_bytes(header),
            },
        };
        let error = journal.resume().err();
        (journal, error)
    }

    #[cfg(test)]
    fn is_stalled(&self) -> bool {
        matches!(self.state, State::Stalled { .. })
    }

    pub(crate) fn append(&mut self, record: &Record) -> Result<(), Refused> {
        let State::Writing(writer) = &mut self.state else {
            return Err(Refused::Stalled("the journal is stalled".into()));
        };
        match writer.append(record) {
            Ok(()) => Ok(()),
            Err(e @ MediaError::FrameTooLarge(_)) => Err(Refused::TooLarge(e)),
            Err(e) => {
                self.stall();
                Err(Refused::Stalled(e.to_string()))
            }
        }
    }

    /// Flushes and fsyncs; a disk that refuses stalls the journal.
    pub(crate) fn sync(&mut self) -> Result<(), String> {
        let State::Writing(writer) = &mut self.state else {
            return Err("the journal is stalled".into());
        };
        let w = writer.get_mut();
        match w.flush().and_then(|_| w.get_ref().sync_data()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stall();
                Err(e.to_string())
            }
        }
    }

    fn stall(&mut self) {
        let placeholder = State::Stalled {
            file: None,
            keep: 0,
            pending: Vec::new(),
        };
        let State::Writing(writer) = std::mem::replace(&mut self.state, placeholder) else {
            return;
        };
        let accepted = writer.bytes_written();
        let (file, buffered) = writer.into_inner().into_parts();
        // A writer panic leaves no buffer to trust: resume from what the file holds whole.
        let pending = buffered.unwrap_or_default();
        let keep = accepted.saturating_sub(pending.len() as u64);
        self.state = State::Stalled {
            file: Some(file),
            keep,
            pending,
        };
    }

    /// Tries to go on writing: cuts the file back to its last whole record, writes what was
    /// pending and syncs. Ok once the journal is writing again.
    pub(crate) fn resume(&mut self) -> Result<(), String> {
        let State::Stalled {
            file,
            keep,
            pending,
        } = &mut self.state
        else {
            return Ok(());
        };
        let attempt = (|| -> std::io::Result<File> {
            let mut f = match file.take() {
                Some(f) => f,
                None => {
                    if let Some(dir) = self.path.parent() {
                        fs::create_dir_all(dir)?;
                    }
                    File::create(&self.path)?
                }
            };
            let written = (|| {
                let len = f.metadata()?.len();
                if len != *keep {
                    if len > *keep {
                        f.set_len(*keep)?;
                    }
                    // Shorter than expected only if the file was cut behind our back: carry
                    // on from where it ends (readers stop at a torn record anyway).
                    f.seek(SeekFrom::End(0))?;
                }
                f.write_all(pending)?;
                f.sync_data()
            })();
            match written {
                Ok(()) => Ok(f),
                Err(e) => {
                    *file = Some(f);
                    Err(e)
                }
            }
        })();
        match attempt {
            Ok(f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(*keep);
                self.state = State::Writing(JournalWriter::append_to(
                    BufWriter::with_capacity(BUFFER, f),
                    len,
                ));
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_media::journal::JournalReader;
    use std::io::BufReader;

    fn header() -> JournalHeader {
        JournalHeader {
            track_id: "trk_1".into(),
            publication_id: "pub_1".into(),
            session_id: "ses_1".into(),
            room_id: "room_1".into(),
            participant: "p".into(),
            kind: reel_core::MediaKind::Audio,
            codec: reel_core::Codec::Opus,
            clock_rate: 48_000,
            mid: "0".into(),
            rid: None,
            created_unix_us: 0,
        }
    }

    fn frame(i: u64, len: usize) -> Record {
        Record::Frame {
            rtp_time: i * 960,
            arrival_unix_us: i as i64 * 20_000,
            flags: 0,
            data: vec![i as u8; len],
        }
    }

    fn frames_in(path: &std::path::Path) -> Vec<u64> {
        let mut r = JournalReader::open(BufReader::new(File::open(path).unwrap())).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            if let Record::Frame { rtp_time, data, .. } = rec {
                assert!(data.iter().all(|b| *b == (rtp_time / 960) as u8));
                out.push(rtp_time / 960);
            }
        }
        assert!(!r.damaged_tail(), "the journal ends on a whole record");
        out
    }

    /// The stall is made by hand here (a real full disk is the integration test's, on a
    /// tmpfs it fills): records buffered, junk past the last whole record.
    #[test]
    fn a_refused_write_stalls_and_resume_goes_on_from_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/t.journal");
        let (mut j, error) = JournalFile::create(path.clone(), &header());
        assert!(error.is_none());
        for i in 0..10 {
            j.append(&frame(i, 100_000)).unwrap();
        }
        j.sync().unwrap();
        // Stall it by hand as a refused write would, with records still buffered.
        j.append(&frame(10, 1_000)).unwrap();
        j.append(&frame(11, 1_000)).unwrap();
        j.stall();
        assert!(j.is_stalled());
        assert!(matches!(j.append(&frame(12, 10)), Err(Refused::Stalled(_))));
        // Junk past the last whole record, as a partial direct write leaves.
        {
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&[0xAB; 5000]).unwrap();
        }
        j.resume().unwrap();
        j.append(&frame(13, 100)).unwrap();
        j.sync().unwrap();
        assert_eq!(frames_in(&path), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]);
    }

    #[test]
    fn a_journal_the_disk_could_not_create_is_created_when_it_can() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the journal's directory should be: creating it fails.
        let blocker = dir.path().join("j");
        fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("t.journal");
        let (mut j, error) = JournalFile::create(path.clone(), &header());
        assert!(error.is_some() && j.is_stalled());
        assert!(j.resume().is_err());
        fs::remove_file(&blocker).unwrap();
        j.resume().unwrap();
        j.append(&frame(1, 10)).unwrap();
        j.sync().unwrap();
        assert_eq!(frames_in(&path), [1]);
    }
}
