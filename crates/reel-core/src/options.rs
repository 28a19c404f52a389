//! `recordingOptions`, as the seed APIs name them: where outputs go (`destinationUrl`),
//! the write-only `credentials` for it, `format`, `notificationEvents`, and
//! `transcriptionOptions`. Validated field by field so a client learns exactly what is wrong.

use crate::media::{AudioChannels, AudioFormat, MediaPolicy, OutputFormat};
use crate::recording::RecordingMode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordingOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_url: Option<String>,
    /// Write-only: accepted and sealed at rest; what is stored or returned is `public()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub credentials: Option<String>,
    /// mp3, wav, ogg or m4a for `mode: audio`; mp4 or webm for `mode: composite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub format: Option<OutputFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_events: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription_options: Option<TranscriptionOptions>,
    /// `mode: composite`: layout, size, fps, bitrate, labels, background, indicator
    /// (checked by the composite renderer's options).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub composite_options: Option<serde_json::Value>,
    /// `mode: audio`: `channels` and `left_participant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_options: Option<AudioOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioOptions {
    /// `mono` (default) or `dual`: `left_participant` in the left channel, everyone else right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<AudioChannels>,
    /// The identity put on the left in `dual` (default: the first to join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_participant: Option<String>,
    /// An mp3's bit rate in kbit/s, 8 to 320. Default: one that fits speech at the call's
    /// own sample rate (16 per channel at 8 kHz, 32 at 16 kHz, 48 at 48 kHz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TranscriptionOptions {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A field that failed validation: `field` is its path, e.g. `recordingOptions.credentials`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Which store a destination URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    S3,
    Azure,
    Gcs,
    File,
}

fn bucket_ok(name: &str, min: usize, max: usize, extra: &[char]) -> bool {
    (min..=max).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub fn parse_destination(url: &str) -> Result<Destination, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected s3://, azure://, gs:// or file://")?;
    if url.len() > 1024 || rest.split('/').any(|seg| seg == "..") {
        return Err("too long, or contains ..".into());
    }
    let mut parts = rest.split('/');
    let first = parts.next().unwrap_or("");
    // Never echo it: what stands before an @ is most likely a key and its secret.
    if first.contains('@') {
        return Err(
            "credentials do not go in the URL: put them in recordingOptions.credentials".into(),
        );
    }
    match scheme {
        "s3" if bucket_ok(first, 3, 63, &['.']) => Ok(Destination::S3),
        "s3" => Err(format!("{first:?} is not a valid S3 bucket name")),
        "gs" if bucket_ok(first, 3, 63, &['.', '_']) => Ok(Destination::Gcs),
        "gs" => Err(format!("{first:?} is not a valid GCS bucket name")),
        "azure" => {
            let container = parts.next().unwrap_or("");
            if !(3..=24).contains(&first.len())
                || !first
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return Err(format!(
                    "{first:?} is not a valid Azure storage account name"
                ));
            }
            if !bucket_ok(container, 3, 63, &[]) {
                return Err(format!("{container:?} is not a valid Azure container name"));
            }
            Ok(Destination::Azure)
        }
        "file" if rest.starts_with('/') => Ok(Destination::File),
        "file" => Err("file:// needs an absolute path (file:///…)".into()),
        other => Err(format!("unsupported scheme {other:?}")),
    }
}

impl RecordingOptions {
    /// Checks every field against the recording `mode`.
    pub fn validate(&self, mode: RecordingMode) -> Result<Option<Destination>, FieldError> {
        let destination = match &self.destination_url {
            Some(url) => Some(
                parse_destination(url).map_err(|m| err("recordingOptions.destinationUrl", m))?,
            ),
            None => None,
        };
        if let Some(creds) = &self.credentials {
            const F: &str = "recordingOptions.credentials";
            if creds.len() > 16 * 1024 {
                return Err(err(F, "too long"));
            }
            match destination {
                Some(Destination::S3)
                    if creds.split(':').count() == 3 && creds.split(':').all(|p| !p.is_empty()) => {
                }
                Some(Destination::S3) => {
                    return Err(err(F, "S3 credentials are KEY:SECRET:REGION"))
                }
                Some(Destination::Azure) => {
                    use base64::Engine;
                    if base64::engine::general_purpose::STANDARD
                        .decode(creds.trim())
                        .map_or(true, |k| k.is_empty())
                    {
                        return Err(err(
                            F,
                            "Azure credentials are the storage account key (base64)",
                        ));
                    }
                }
                Some(Destination::Gcs) if creds.trim_start().starts_with('{') => {
                    let v: serde_json::Value = serde_json::from_str(creds)
                        .map_err(|_| err(F, "the service-account key is not JSON"))?;
                    if v["type"] != "service_account" {
                        return Err(err(F, "the JSON key is not a service-account key"));
                    }
                }
                Some(Destination::Gcs)
                    if creds.split(':').count() == 2 && creds.split(':').all(|p| !p.is_empty()) => {
                }
                Some(Destination::Gcs) => return Err(err(
                    F,
                    "GCS credentials are ACCESS_KEY:SECRET (HMAC) or a service-account JSON key",
                )),
                Some(Destination::File) | None => {
                    return Err(err(
                        F,
                        "credentials go with an s3://, azure:// or gs:// destinationUrl",
                    ))
                }
            }
        }
        if let Some(format) = self.format {
            const F: &str = "recordingOptions.format";
            match (mode, format) {
                (RecordingMode::Audio, OutputFormat::Audio(_)) => {}
                (RecordingMode::Audio, _) => return Err(err(F, "one of mp3, wav, ogg, m4a")),
                (RecordingMode::Composite, OutputFormat::Video(_)) => {}
                (RecordingMode::Composite, _) => return Err(err(F, "one of mp4, webm")),
                (RecordingMode::Stream, _) => return Err(err(F, "stream recordings keep each codec's own container; format applies to composite and audio")),
            }
        }
        if self.composite_options.is_some() && mode != RecordingMode::Composite {
            return Err(err(
                "recordingOptions.compositeOptions",
                "goes with mode composite",
            ));
        }
        if self.audio_options.is_some() && mode != RecordingMode::Audio {
            return Err(err("recordingOptions.audioOptions", "goes with mode audio"));
        }
        if let Some(kbps) = self.audio_options.as_ref().and_then(|a| a.bitrate_kbps) {
            if !(8..=320).contains(&kbps) {
                return Err(err(
                    "recordingOptions.audioOptions.bitrate_kbps",
                    "8 to 320 (kbit/s)",
                ));
            }
        }
        if let Some(t) = &self.transcription_options {
            if let Some(locale) = &t.locale {
                let mut parts = locale.split('-');
                let lang = parts.next().unwrap_or("");
                let ok = (2..=3).contains(&lang.len())
                    && lang.chars().all(|c| c.is_ascii_lowercase())
                    && parts.all(|p| {
                        (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric())
                    });
                if !ok {
                    return Err(err(
                        "recordingOptions.transcriptionOptions.locale",
                        "a BCP 47 tag such as en-US",
                    ));
                }
            }
        }
        Ok(destination)
    }

    /// These options without the credentials: the only form that is stored or returned.
    pub fn public(&self) -> RecordingOptions {
        RecordingOptions {
            credentials: None,
            ..self.clone()
        }
    }

    /// Whether this recording's events go out as webhooks (default: yes).
    pub fn notifies(&self) -> bool {
        self.notification_events.unwrap_or(true)
    }
}

/// A room's recording policy beyond automatic stream recording: what its sessions should
/// produce when they end. Validated and stored here; each setting takes effect with the part
/// of Reel that produces it (composites, audio mixes, retention, transcripts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomPolicy {
    /// Render one composite movie per session.
    #[serde(default)]
    pub auto_composite: bool,
    /// Audio mixes to make per session: mp3, wav, ogg, m4a.
    #[serde(default)]
    pub audio_mix_formats: Vec<AudioFormat>,
    /// `mono` (default) or `dual` for those mixes: the first to join (a call's caller) on
    /// the left, everyone else on the right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_mix_channels: Option<AudioChannels>,
    /// SIPREC calls to this room record `audio` or `audio_video` (default: the server's
    /// `siprec.media_policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_media: Option<MediaPolicy>,
    /// Days assets stay on Reel's own storage; none means the server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription: Option<TranscriptionOptions>,
    /// Keep Reel's own copy of assets uploaded to a `destinationUrl` (default: removed once
    /// the upload is verified).
    #[serde(default)]
    pub keep_local_copy: bool,
    /// Nothing of this room is deleted by retention while set.
    #[serde(default)]
    pub legal_hold: bool,
}

impl RoomPolicy {
    pub fn validate(&self) -> Result<(), FieldError> {
        let distinct: std::collections::HashSet<_> = self.audio_mix_formats.iter().collect();
        if distinct.len() != self.audio_mix_formats.len() {
            return Err(err("policy.audio_mix_formats", "a format is listed twice"));
        }
        if self.retention_days.is_some_and(|d| d == 0 || d > 3650) {
            return Err(err("policy.retention_days", "between 1 and 3650"));
        }
        if let Some(t) = &self.transcription {
            let probe = RecordingOptions {
                transcription_options: Some(t.clone()),
                ..Default::default()
            };
            probe
                .validate(RecordingMode::Stream)
                .map_err(|e| err("policy.transcription.locale", e.message))?;
        }
        Ok(())
    }
}

/// Sealing secrets at rest: ChaCha20-Poly1305 with a server key, a fresh random nonce each
/// time; the stored form is base64(nonce ‖ ciphertext ‖ tag).
pub mod seal {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

    pub fn seal(key: &[u8; 32], plaintext: &str) -> String {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
                .expect("encryption of a string cannot fail"),
        );
        STANDARD.encode(out)
    }

    /// None when the text was not sealed with this key, or was altered.
    pub fn open(key: &[u8; 32], sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let plain = cipher
            .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: serde_json::Value) -> RecordingOptions {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn destinations_and_credentials() {
        let ok = opts(
            serde_json::json!({"destinationUrl": "s3://my-bucket/calls/", "credentials": "AKIA:secret:eu-west-1"}),
        );
        assert_eq!(
            ok.validate(RecordingMode::Stream),
            Ok(Some(Destination::S3))
        );
        assert!(
            !serde_json::to_string(&ok.public())
                .unwrap()
                .contains("secret"),
            "the public form has no credentials"
        );
        let cases = [
            (
                serde_json::json!({"destinationUrl": "s3://A_B"}),
                "recordingOptions.destinationUrl",
            ),
            (
                serde_json::json!({"destinationUrl": "s3://AKIAEXAMPLE:s3cr3tv4lue@bucket/x"}),
                "recordingOptions.destinationUrl",
            ),
            (
                serde_json::json!({"destinationUrl": "ftp://x/y"}),
                "recordingOptions.destinationUrl",
            ),
            (
                serde_json::json!({"destinationUrl": "file://relative"}),
                "recordingOptions.destinationUrl",
            ),
            (
                serde_json::json!({"destinationUrl": "file:///a/../b"}),
                "recordingOptions.destinationUrl",
            ),
            (
                serde_json::json!({"destinationUrl": "s3://bucket", "credentials": "only:two"}),
                "recordingOptions.credentials",
            ),
            (
                serde_json::json!({"credentials": "a:b:c"}),
                "recordingOptions.credentials",
            ),
            (
                serde_json::json!({"destinationUrl": "azure://acct/container", "credentials": "%%%"}),
                "recordingOptions.credentials",
            ),
            (
                serde_json::json!({"format": "mp3"}),
                "recordingOptions.format",
            ),
            (
                serde_json::json!({"transcriptionOptions": {"enabled": true, "locale": "english"}}),
                "recordingOptions.transcriptionOptions.locale",
            ),
        ];
        for (json, field) in cases {
            let e = opts(json.clone())
                .validate(RecordingMode::Stream)
                .unwrap_err();
            assert_eq!(e.field, field, "{json}");
            // A secret written where it does not belong is never echoed back.
            assert!(!e.message.contains("s3cr3t"), "{}", e.message);
        }
        assert!(opts(
            serde_json::json!({"destinationUrl": "gs://b-1/x", "credentials": "GOOG:secret"})
        )
        .validate(RecordingMode::Stream)
        .is_ok());
        assert!(opts(
            serde_json::json!({"destinationUrl": "azure://acct1/recs/x", "credentials": "c2VjcmV0"})
        )
        .validate(RecordingMode::Stream)
        .is_ok());
        assert!(opts(
            serde_json::json!({"transcriptionOptions": {"enabled": true, "locale": "en-US"}})
        )
        .validate(RecordingMode::Stream)
        .is_ok());
        assert!(
            serde_json::from_value::<RecordingOptions>(serde_json::json!({"colour": 1})).is_err()
        );
    }

    #[test]
    fn room_policy() {
        let ok: RoomPolicy = serde_json::from_value(serde_json::json!({"auto_composite": true, "audio_mix_formats": ["mp3", "wav"], "retention_days": 30})).unwrap();
        assert!(ok.validate().is_ok());
        for (bad, field) in [
            (
                serde_json::json!({"audio_mix_formats": ["mp3", "mp3"]}),
                "policy.audio_mix_formats",
            ),
            (
                serde_json::json!({"retention_days": 0}),
                "policy.retention_days",
            ),
            (
                serde_json::json!({"transcription": {"enabled": true, "locale": "x"}}),
                "policy.transcription.locale",
            ),
        ] {
            let p: RoomPolicy = serde_json::from_value(bad.clone()).unwrap();
            assert_eq!(p.validate().unwrap_err().field, field, "{bad}");
        }
        // Parsing is validation: a name Reel does not know is not a policy at all.
        for bad in [
            serde_json::json!({"audio_mix_formats": ["flac"]}),
            serde_json::json!({"audio_mix_channels": "quad"}),
            serde_json::json!({"sip_media": "video"}),
        ] {
            assert!(
                serde_json::from_value::<RoomPolicy>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sealing_round_trips_and_detects_tampering() {
        let key = [7u8; 32];
        let sealed = seal::seal(&key, "AKIA:secret:eu-west-1");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            seal::open(&key, &sealed).as_deref(),
            Some("AKIA:secret:eu-west-1")
        );
        assert_ne!(
            seal::seal(&key, "x"),
            seal::seal(&key, "x"),
            "fresh nonce each time"
        );
        assert_eq!(seal::open(&[8u8; 32], &sealed), None);
        let mut bytes = sealed.into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(seal::open(&key, &String::from_utf8(bytes).unwrap()), None);
    }
}
