//! Media vocabulary: what a track carries and what a recording produces.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

named_enum! {
    pub enum MediaKind as "media kind" {
        Audio = "audio",
        Video = "video",
    }
}

/// Codecs Reel records. The journal stores the codec by its name, so the set can grow
/// without changing the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Opus,
    Vp8,
    Vp9,
    H264,
    Av1,
    /// G.711 µ-law (SIP calls), 8 kHz.
    Pcmu,
    /// G.711 A-law (SIP calls), 8 kHz.
    Pcma,
    /// G.722 (SIP calls): 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
}

impl Codec {
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus | Codec::Pcmu | Codec::Pcma | Codec::G722 => MediaKind::Audio,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1 => MediaKind::Video,
        }
    }

    /// The rate an audio codec's decoded samples come at (G.722's is not its RTP clock).
    pub fn sample_rate(self) -> Option<u32> {
        match self {
            Codec::Opus => Some(48_000),
            Codec::Pcmu | Codec::Pcma => Some(8_000),
            Codec::G722 => Some(16_000),
            Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1 => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::Av1 => "av1",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::G722 => "g722",
        }
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "opus" => Codec::Opus,
            "vp8" => Codec::Vp8,
            "vp9" => Codec::Vp9,
            "h264" => Codec::H264,
            "av1" => Codec::Av1,
            "pcmu" => Codec::Pcmu,
            "pcma" => Codec::Pcma,
            "g722" => Codec::G722,
            other => return Err(format!("unknown codec {other:?}")),
        })
    }
}

impl TryFrom<String> for Codec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

named_enum! {
    /// What a publisher publishes: as named in its publish token, or a SIP call's party.
    pub enum PublicationKind as "publication kind" {
        /// Camera and microphone.
        Camera = "camera",
        /// Screen share, with its audio if any.
        Screen = "screen",
        /// A party of a recorded SIP call: its audio (and video under `audio_video`).
        Sip = "sip",
    }
}

named_enum! {
    /// What an asset is: the stream asset types of the seed APIs, composites, mixes,
    /// transcripts.
    #[derive(Default)]
    pub enum AssetType as "asset type" {
        /// Camera video and microphone audio of one participant.
        #[default]
        Regular = "regular",
        /// A screen share, with its audio if any.
        Screen = "screen",
        /// Microphone only: the participant published no video.
        Audio = "audio",
        /// One movie of the whole session, laid out (`mode: composite`).
        Composite = "composite",
        /// Every participant's audio in one file (`mode: audio`).
        AudioMix = "audio_mix",
        /// What was said, by whom (`-transcript.json` and `.vtt`).
        Transcript = "transcript",
    }
}

impl AssetType {
    /// The asset a publication yields, from what it published and what it carried.
    pub fn for_publication(kind: PublicationKind, has_video: bool) -> AssetType {
        match (kind, has_video) {
            (PublicationKind::Screen, _) => AssetType::Screen,
            (PublicationKind::Camera | PublicationKind::Sip, true) => AssetType::Regular,
            (PublicationKind::Camera | PublicationKind::Sip, false) => AssetType::Audio,
        }
    }
}

named_enum! {
    /// Where an asset's upload to its recording's destination is:
    /// `none` (it stays on Reel's storage) → `pending` → `uploaded` | `failed`.
    #[derive(Default)]
    pub enum UploadState as "upload state" {
        #[default]
        None = "none",
        Pending = "pending",
        Uploaded = "uploaded",
        Failed = "failed",
    }
}

named_enum! {
    /// Where a session is: `live` until its room empties, ends or the server stops.
    pub enum SessionState as "session state" {
        Live = "live",
        Ended = "ended",
    }
}

named_enum! {
    /// Where a publication is: `live` → `ended` → `processed` (its stream asset is made) |
    /// `failed`; `processed` and `failed` are the durable marker that its output job is done.
    pub enum PublicationState as "publication state" {
        Live = "live",
        Ended = "ended",
        Processed = "processed",
        Failed = "failed",
    }
}

named_enum! {
    /// Why a session or a publication ended. Stored as text; part of the API.
    pub enum EndReason as "end reason" {
        /// The publisher sent DELETE on its WHIP resource.
        Left = "left",
        /// ICE or DTLS stopped answering after the publisher had connected.
        Disconnected = "disconnected",
        /// The publisher never completed ICE: no check of its reached Reel, or none was
        /// answered, before `whip_first_contact_timeout_secs` / `connect_timeout_secs`.
        IceFailed = "ice_failed",
        /// ICE completed but the DTLS handshake failed or never finished.
        DtlsFailed = "dtls_failed",
        /// Nobody published for `empty_timeout`.
        Empty = "empty",
        /// `max_duration` was reached.
        MaxDuration = "max_duration",
        /// The server stopped (crash or kill) while it was recording.
        Interrupted = "interrupted",
        /// The server shut down gracefully.
        Shutdown = "shutdown",
        /// A recorded SIP call sent no RTP for `rtp_timeout_secs`.
        MediaTimeout = "media_timeout",
        /// A recorded SIP call ended (its session: the parties' publications say how).
        CallEnded = "call_ended",
    }
}

named_enum! {
    /// The file an audio recording or mix is (`recordingOptions.format` with `mode: audio`,
    /// the room policy's `audio_mix_formats`).
    #[derive(Default)]
    pub enum AudioFormat as "audio format" {
        /// What a call recording is unless the room says otherwise.
        #[default]
        Mp3 = "mp3",
        Wav = "wav",
        /// Opus in Ogg.
        Ogg = "ogg",
        /// AAC in MP4.
        M4a = "m4a",
    }
}

named_enum! {
    /// The file a composite movie is (`recordingOptions.format` with `mode: composite`).
    #[derive(Default)]
    pub enum VideoFormat as "video format" {
        /// H.264 and AAC.
        #[default]
        Mp4 = "mp4",
        /// VP8 and Opus.
        Webm = "webm",
    }
}

named_enum! {
    /// How many channels an audio mix has.
    #[derive(Default)]
    pub enum AudioChannels as "channel layout" {
        /// Everyone in one channel.
        #[default]
        Mono = "mono",
        /// One party (a call's caller, or `left_participant`) left, everyone else right.
        Dual = "dual",
    }
}

named_enum! {
    /// What a room records of its SIPREC calls (`sip_media` in the room policy, or the
    /// server's `siprec.media_policy`).
    #[derive(Default)]
    pub enum MediaPolicy as "SIP media policy" {
        /// Audio lines only; video lines are declined (port 0).
        #[default]
        Audio = "audio",
        AudioVideo = "audio_video",
    }
}

/// `recordingOptions.format`: an audio file for `mode: audio`, a movie for `mode: composite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OutputFormat {
    Audio(AudioFormat),
    Video(VideoFormat),
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Audio(f) => f.as_str(),
            OutputFormat::Video(f) => f.as_str(),
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(OutputFormat::Audio)
            .or_else(|_| s.parse().map(OutputFormat::Video))
            .map_err(|_| {
                format!(
                    "unknown format {s:?} (audio: {}; composite: {})",
                    AudioFormat::ALL.map(|f| f.as_str()).join(", "),
                    VideoFormat::ALL.map(|f| f.as_str()).join(", ")
                )
            })
    }
}

impl TryFrom<String> for OutputFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<OutputFormat> for String {
    fn from(f: OutputFormat) -> String {
        f.as_str().into()
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
