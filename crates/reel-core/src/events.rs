//! Every event type Reel emits, named once. The outbox stores [`EventKind::as_str`], webhook
//! endpoints subscribe to the same names, and `ALL` is what an endpoint may subscribe to, so
//! the list of emitted events and the list of subscribable ones cannot drift apart.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// Every recording state change, with the new `state`.
    #[serde(rename = "recording.statusUpdate")]
    StatusUpdate,
    #[serde(rename = "recording.started")]
    RecordingStarted,
    #[serde(rename = "recording.paused")]
    RecordingPaused,
    #[serde(rename = "recording.resumed")]
    RecordingResumed,
    /// Capture ended (stopped, the session ended, or interrupted by a restart).
    #[serde(rename = "recording_finished")]
    RecordingFinished,
    #[serde(rename = "recording_available")]
    RecordingAvailable,
    #[serde(rename = "recording.failed")]
    RecordingFailed,
    /// A recording's output was deleted (retention or the API).
    #[serde(rename = "recording.deleted")]
    RecordingDeleted,
    /// A recorded call's audio (or video) lines started or stopped sending.
    #[serde(rename = "recording.audio.started")]
    CallAudioStarted,
    #[serde(rename = "recording.audio.stopped")]
    CallAudioStopped,
    #[serde(rename = "recording.video.started")]
    CallVideoStarted,
    #[serde(rename = "recording.video.stopped")]
    CallVideoStopped,
    #[serde(rename = "stream.recording.success")]
    StreamSuccess,
    #[serde(rename = "stream.recording.failure")]
    StreamFailure,
    #[serde(rename = "composite.recording.success")]
    CompositeSuccess,
    #[serde(rename = "composite.recording.failure")]
    CompositeFailure,
    #[serde(rename = "transcription_available")]
    TranscriptionAvailable,
    #[serde(rename = "transcription.failed")]
    TranscriptionFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        Self::StatusUpdate,
        Self::RecordingStarted,
        Self::RecordingPaused,
        Self::RecordingResumed,
        Self::RecordingFinished,
        Self::RecordingAvailable,
        Self::RecordingFailed,
        Self::RecordingDeleted,
        Self::CallAudioStarted,
        Self::CallAudioStopped,
        Self::CallVideoStarted,
        Self::CallVideoStopped,
        Self::StreamSuccess,
        Self::StreamFailure,
        Self::CompositeSuccess,
        Self::CompositeFailure,
        Self::TranscriptionAvailable,
        Self::TranscriptionFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusUpdate => "recording.statusUpdate",
            Self::RecordingStarted => "recording.started",
            Self::RecordingPaused => "recording.paused",
            Self::RecordingResumed => "recording.resumed",
            Self::RecordingFinished => "recording_finished",
            Self::RecordingAvailable => "recording_available",
            Self::RecordingFailed => "recording.failed",
            Self::RecordingDeleted => "recording.deleted",
            Self::CallAudioStarted => "recording.audio.started",
            Self::CallAudioStopped => "recording.audio.stopped",
            Self::CallVideoStarted => "recording.video.started",
            Self::CallVideoStopped => "recording.video.stopped",
            Self::StreamSuccess => "stream.recording.success",
            Self::StreamFailure => "stream.recording.failure",
            Self::CompositeSuccess => "composite.recording.success",
            Self::CompositeFailure => "composite.recording.failure",
            Self::TranscriptionAvailable => "transcription_available",
            Self::TranscriptionFailed => "transcription.failed",
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(seen.insert(kind.as_str()), "{kind:?} named twice");
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        assert!("recording.exploded".parse::<EventKind>().is_err());
    }
}
