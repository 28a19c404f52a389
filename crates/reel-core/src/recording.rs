//! The recording state machine, sans-IO:
//! `starting → recording ⇄ paused → stopping → processing → [uploading →] available | failed`,
//! and `failed → uploading` again when a failed upload is retried.
//! The recorder asks it whether a command is legal before doing anything, so an illegal
//! transition (resume a stopped recording) is refused without side effects.

named_enum! {
    /// What a recording makes: one file per participant stream, one composited movie, or one
    /// audio mix.
    pub enum RecordingMode as "recording mode" {
        Stream = "stream",
        Composite = "composite",
        Audio = "audio",
    }
}

impl RecordingMode {
    /// One output rendered from every participant (a composite or a mix), not one per stream.
    pub fn is_rendered(self) -> bool {
        self != Self::Stream
    }
}

named_enum! {
    pub enum RecordingState as "recording state" {
        /// Waiting for the room's session to start.
        Starting = "starting",
        Recording = "recording",
        Paused = "paused",
        /// Capture ended; outputs not started.
        Stopping = "stopping",
        /// Outputs being made.
        Processing = "processing",
        /// Outputs made, going to the recording's `destinationUrl`; available once verified there.
        Uploading = "uploading",
        Available = "available",
        Failed = "failed",
    }
}

named_enum! {
    /// Why a recording (or one of its outputs) failed, as a stable code for programs; the
    /// recording's `failure` says the same in words. Upload failures carry the destination's
    /// own code (`destination_forbidden`, …) instead.
    pub enum FailureCode as "failure code" {
        /// Stopped before any participant joined.
        NothingRecorded = "nothing_recorded",
        /// Participants joined, but no media reached Reel (none sent, or none before they left).
        NoMedia = "no_media",
        /// Media was captured but the output could not be made from it (remux or render).
        OutputFailed = "output_failed",
        /// A fault of Reel's own (its database, its disk).
        InternalError = "internal_error",
        /// Reel's disk refused writes (full, read-only) for a while: the output was made
        /// but misses those intervals (`details.missing`). Said of a truncated asset.
        DiskFull = "disk_full",
    }
}

named_enum! {
    /// Whose fault a failure is, which says what to do about it: retry later (transient), tell
    /// the customer to fix their destination or their input, or fix Reel.
    pub enum Fault as "fault" {
        /// Reel's own: a bug, its disk, its database.
        Ours = "ours",
        /// The caller's: nothing was sent, or it was stopped before anyone joined.
        Client = "client",
        /// The customer's destination refused (credentials, permissions, no bucket).
        Destination = "destination",
        /// Worth trying again: the destination could not be reached.
        Transient = "transient",
    }
}

impl FailureCode {
    pub fn fault(self) -> Fault {
        match self {
            Self::NothingRecorded | Self::NoMedia => Fault::Client,
            Self::OutputFailed | Self::InternalError | Self::DiskFull => Fault::Ours,
        }
    }
}

/// The fault behind any failure code: Reel's own codes and the destinations' (`destination_…`).
pub fn fault_of(code: &str) -> Fault {
    match code {
        "nothing_recorded" | "no_media" => Fault::Client,
        "destination_unreachable" => Fault::Transient,
        c if c.starts_with("destination_") => Fault::Destination,
        _ => Fault::Ours,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The room's session started (or was already live).
    SessionStarted,
    Pause,
    Resume,
    /// By the API, or because the session ended.
    Stop,
    OutputsStarted,
    OutputsDone {
        ok: bool,
    },
    /// Outputs made and a destination is set.
    UploadsStarted,
    UploadsDone {
        ok: bool,
    },
    /// `POST /v1/assets/{id}/retry-upload` on a recording whose upload failed.
    RetryUpload,
}

impl RecordingState {
    /// Capturing: frames reach the journals (`recording`) or are dropped (`paused`).
    pub fn is_capturing(self) -> bool {
        matches!(self, Self::Recording | Self::Paused)
    }

    /// Capturing or waiting to: at most one such recording per room.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Recording | Self::Paused)
    }

    /// The next state, or None when the command is illegal here.
    pub fn apply(self, command: Command) -> Option<RecordingState> {
        use Command as C;
        use RecordingState as S;
        Some(match (self, command) {
            (S::Starting, C::SessionStarted) => S::Recording,
            (S::Recording, C::Pause) => S::Paused,
            (S::Paused, C::Resume) => S::Recording,
            // Stopped before anyone joined: nothing was recorded.
            (S::Starting, C::Stop) => S::Failed,
            (S::Recording | S::Paused, C::Stop) => S::Stopping,
            (S::Stopping, C::OutputsStarted) => S::Processing,
            (S::Processing, C::OutputsDone { ok: true }) => S::Available,
            (S::Processing, C::OutputsDone { ok: false }) => S::Failed,
            (S::Processing, C::UploadsStarted) => S::Uploading,
            (S::Uploading, C::UploadsDone { ok: true }) => S::Available,
            (S::Uploading, C::UploadsDone { ok: false }) => S::Failed,
            (S::Failed, C::RetryUpload) => S::Uploading,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command as C;
    use RecordingState as S;

    #[test]
    fn every_failure_code_names_whose_fault_it_is() {
        for code in FailureCode::ALL {
            assert_eq!(fault_of(code.as_str()), code.fault(), "{code:?}");
        }
        assert_eq!(fault_of("destination_forbidden"), Fault::Destination);
        assert_eq!(fault_of("destination_unreachable"), Fault::Transient);
        assert_eq!(fault_of("local_copy_corrupt"), Fault::Ours);
    }

    #[test]
    fn the_happy_path_and_illegal_moves() {
        let mut s = S::Starting;
        for c in [
            C::SessionStarted,
            C::Pause,
            C::Resume,
            C::Stop,
            C::OutputsStarted,
            C::OutputsDone { ok: true },
        ] {
            s = s.apply(c).unwrap_or_else(|| panic!("{c:?} from {s:?}"));
        }
        assert_eq!(s, S::Available);
        assert_eq!(S::Available.apply(C::Resume), None);
        assert_eq!(S::Stopping.apply(C::Resume), None);
        assert_eq!(S::Recording.apply(C::Resume), None);
        assert_eq!(S::Paused.apply(C::Pause), None);
        assert_eq!(S::Starting.apply(C::Stop), Some(S::Failed));
        let up = S::Processing.apply(C::UploadsStarted).unwrap();
        assert_eq!(up.apply(C::UploadsDone { ok: false }), Some(S::Failed));
        assert_eq!(S::Failed.apply(C::RetryUpload), Some(S::Uploading));
        assert_eq!(S::Available.apply(C::RetryUpload), None);
        for st in S::ALL {
            assert_eq!(st.as_str().parse(), Ok(st));
        }
    }
}
