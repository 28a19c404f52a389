//! The recording state machine, sans-IO:
//! `starting → recording ⇄ paused → stopping → processing → [uploading →] available | failed`,
//! and `failed → uploading` again when a failed upload is retried.
//! The recorder asks it whether a command is legal before doing anything, so an illegal
//! transition (resume a stopped recording) is refused without side effects.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a recording makes: one file per participant stream, one composited movie, or one
/// audio mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    Stream,
    Composite,
    Audio,
}

impl RecordingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Composite => "composite",
            Self::Audio => "audio",
        }
    }

    /// One output rendered from every participant (a composite or a mix), not one per stream.
    pub fn is_rendered(self) -> bool {
        self != Self::Stream
    }
}

impl FromStr for RecordingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stream" => Ok(Self::Stream),
            "composite" => Ok(Self::Composite),
            "audio" => Ok(Self::Audio),
            other => Err(format!(
                "unknown recording mode {other:?} (stream, composite, audio)"
            )),
        }
    }
}

impl fmt::Display for RecordingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Waiting for the room's session to start.
    Starting,
    Recording,
    Paused,
    /// Capture ended; outputs not started.
    Stopping,
    /// Outputs being made.
    Processing,
    /// Outputs made, going to the recording's `destinationUrl`; available once verified there.
    Uploading,
    Available,
    Failed,
}

/// Why a recording (or one of its outputs) failed, as a stable code for programs; the
/// recording's `failure` says the same in words. Upload failures carry the destination's
/// own code (`destination_forbidden`, …) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// Stopped before any participant joined.
    NothingRecorded,
    /// Participants joined, but no media reached Reel (none sent, or none before they left).
    NoMedia,
    /// Media was captured but the output could not be made from it (remux or render).
    OutputFailed,
    /// A fault of Reel's own (its database, its disk).
    InternalError,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NothingRecorded => "nothing_recorded",
            Self::NoMedia => "no_media",
            Self::OutputFailed => "output_failed",
            Self::InternalError => "internal_error",
        }
    }
}

/// Whose fault a failure is, which says what to do about it: retry later (transient), tell
/// the customer to fix their destination or their input, or fix Reel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Reel's own: a bug, its disk, its database.
    Ours,
    /// The caller's: nothing was sent, or it was stopped before anyone joined.
    Client,
    /// The customer's destination refused (credentials, permissions, no bucket).
    Destination,
    /// Worth trying again: the destination could not be reached.
    Transient,
}

impl FailureCode {
    pub fn fault(self) -> Fault {
        match self {
            Self::NothingRecorded | Self::NoMedia => Fault::Client,
            Self::OutputFailed | Self::InternalError => Fault::Ours,
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
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Recording => "recording",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Processing => "processing",
            Self::Uploading => "uploading",
            Self::Available => "available",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => Self::Starting,
            "recording" => Self::Recording,
            "paused" => Self::Paused,
            "stopping" => Self::Stopping,
            "processing" => Self::Processing,
            "uploading" => Self::Uploading,
            "available" => Self::Available,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

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

impl FromStr for RecordingState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unknown recording state {s:?}"))
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command as C;
    use RecordingState as S;

    #[test]
    fn every_failure_code_names_whose_fault_it_is() {
        for code in [
            FailureCode::NothingRecorded,
            FailureCode::NoMedia,
            FailureCode::OutputFailed,
            FailureCode::InternalError,
        ] {
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
        for st in [
            S::Starting,
            S::Recording,
            S::Paused,
            S::Stopping,
            S::Processing,
            S::Uploading,
            S::Available,
            S::Failed,
        ] {
            assert_eq!(S::parse(st.as_str()), Some(st));
        }
    }
}
