//! Media vocabulary: what a track carries and what a recording produces.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
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

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a publisher publishes, as named in its publish token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationKind {
    /// Camera and microphone.
    Camera,
    /// Screen share, with its audio if any.
    Screen,
}

impl PublicationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicationKind::Camera => "camera",
            PublicationKind::Screen => "screen",
        }
    }
}

impl FromStr for PublicationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "camera" => Ok(Self::Camera),
            "screen" => Ok(Self::Screen),
            other => Err(format!("unknown publication kind {other:?}")),
        }
    }
}

/// What an asset is: the stream asset types of the seed APIs, composites, mixes, transcripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetType {
    /// Camera video and microphone audio of one participant.
    #[default]
    Regular,
    /// A screen share, with its audio if any.
    Screen,
    /// Microphone only: the participant published no video.
    Audio,
    /// One movie of the whole session, laid out (`mode: composite`).
    Composite,
    /// Every participant's audio in one file (`mode: audio`).
    AudioMix,
    /// What was said, by whom (`-transcript.json` and `.vtt`).
    Transcript,
}

impl AssetType {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetType::Regular => "regular",
            AssetType::Screen => "screen",
            AssetType::Audio => "audio",
            AssetType::Composite => "composite",
            AssetType::AudioMix => "audio_mix",
            AssetType::Transcript => "transcript",
        }
    }

    /// The asset a publication yields, from what it published and what it carried.
    pub fn for_publication(kind: PublicationKind, has_video: bool) -> AssetType {
        match (kind, has_video) {
            (PublicationKind::Screen, _) => AssetType::Screen,
            (PublicationKind::Camera, true) => AssetType::Regular,
            (PublicationKind::Camera, false) => AssetType::Audio,
        }
    }
}

impl FromStr for AssetType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "regular" => Ok(Self::Regular),
            "screen" => Ok(Self::Screen),
            "audio" => Ok(Self::Audio),
            "composite" => Ok(Self::Composite),
            "audio_mix" => Ok(Self::AudioMix),
            "transcript" => Ok(Self::Transcript),
            other => Err(format!("unknown asset type {other:?}")),
        }
    }
}

impl fmt::Display for AssetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an asset's upload to its recording's destination is:
/// `none` (it stays on Reel's storage) → `pending` → `uploaded` | `failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    #[default]
    None,
    Pending,
    Uploaded,
    Failed,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Uploaded => "uploaded",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for UploadState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "pending" => Ok(Self::Pending),
            "uploaded" => Ok(Self::Uploaded),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown upload state {other:?}")),
        }
    }
}

/// Why a session or a publication ended. Stored as text; part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The publisher sent DELETE on its WHIP resource.
    Left,
    /// ICE or DTLS stopped answering.
    Disconnected,
    /// Nobody published for `empty_timeout`.
    Empty,
    /// `max_duration` was reached.
    MaxDuration,
    /// The server stopped (crash or kill) while it was recording.
    Interrupted,
    /// The server shut down gracefully.
    Shutdown,
    /// A recorded SIP call sent no RTP for `rtp_timeout_secs`.
    MediaTimeout,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::Disconnected => "disconnected",
            EndReason::Empty => "empty",
            EndReason::MaxDuration => "max_duration",
            EndReason::Interrupted => "interrupted",
            EndReason::Shutdown => "shutdown",
            EndReason::MediaTimeout => "media_timeout",
        }
    }
}
