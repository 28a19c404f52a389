//! Every event type Reel emits, named once. The outbox stores [`EventKind::as_str`], webhook
//! endpoints subscribe to the same names, and `ALL` is what an endpoint may subscribe to, so
//! the list of emitted events and the list of subscribable ones cannot drift apart.

named_enum! {
    pub enum EventKind as "event type" {
        /// Every recording state change, with the new `state`.
        StatusUpdate = "recording.statusUpdate",
        RecordingStarted = "recording.started",
        RecordingPaused = "recording.paused",
        RecordingResumed = "recording.resumed",
        /// Capture ended (stopped, the session ended, or interrupted by a restart).
        RecordingFinished = "recording_finished",
        RecordingAvailable = "recording_available",
        RecordingFailed = "recording.failed",
        /// A recording's output was deleted (retention or the API).
        RecordingDeleted = "recording.deleted",
        /// A recorded call's audio (or video) lines started or stopped sending.
        CallAudioStarted = "recording.audio.started",
        CallAudioStopped = "recording.audio.stopped",
        CallVideoStarted = "recording.video.started",
        CallVideoStopped = "recording.video.stopped",
        StreamSuccess = "stream.recording.success",
        StreamFailure = "stream.recording.failure",
        CompositeSuccess = "composite.recording.success",
        CompositeFailure = "composite.recording.failure",
        TranscriptionAvailable = "transcription_available",
        TranscriptionFailed = "transcription.failed",
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
