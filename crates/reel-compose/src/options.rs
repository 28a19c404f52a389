//! What a user asks of a composite (`recordingOptions.compositeOptions`), validated field by
//! field, and turned into the renderer's `Output`; and an audio mix's `Output`.

use crate::layout::Layout;
use crate::render::{Channels, Output, VideoSettings};
use reel_core::media::{AudioChannels, AudioFormat, VideoFormat};
use reel_core::options::AudioOptions;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeOptions {
    /// `{"type": "grid"}` (default), `active_speaker` (`thumbnails`), `presentation`, or
    /// `custom` (`regions`).
    #[serde(default = "grid")]
    pub layout: Layout,
    /// 640x360, 1280x720 (default) or 1920x1080.
    #[serde(default = "hd")]
    pub size: String,
    /// 15 or 30 (default).
    #[serde(default = "thirty")]
    pub fps: i32,
    /// Video bitrate, 100 to 20000 kbit/s (default 2500).
    #[serde(default = "bitrate")]
    pub bitrate_kbps: u32,
    /// Participant names on their tiles (default true).
    #[serde(default = "yes")]
    pub labels: bool,
    /// `#RRGGBB` (default black).
    #[serde(default = "black")]
    pub background: String,
    /// A visible "REC" badge for the whole recording (default true).
    #[serde(default = "yes")]
    pub recording_indicator: bool,
}

fn grid() -> Layout {
    Layout::Grid
}
fn hd() -> String {
    "1280x720".into()
}
fn thirty() -> i32 {
    30
}
fn bitrate() -> u32 {
    2500
}
fn yes() -> bool {
    true
}
fn black() -> String {
    "#000000".into()
}

impl Default for CompositeOptions {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl CompositeOptions {
    pub fn dimensions(&self) -> Result<(i32, i32), String> {
        match self.size.as_str() {
            "640x360" => Ok((640, 360)),
            "1280x720" => Ok((1280, 720)),
            "1920x1080" => Ok((1920, 1080)),
            other => Err(format!(
                "size: {other:?} is not one of 640x360, 1280x720, 1920x1080"
            )),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let (w, h) = self.dimensions()?;
        if ![15, 30].contains(&self.fps) {
            return Err("fps: 15 or 30".into());
        }
        if !(100..=20_000).contains(&self.bitrate_kbps) {
            return Err("bitrate_kbps: 100 to 20000".into());
        }
        parse_colour(&self.background)?;
        self.layout
            .validate(w, h)
            .map_err(|e| format!("layout: {e}"))
    }

    /// The renderer's settings; `layouts` are the layout changes (output ms, layout) after 0.
    pub fn video(
        &self,
        format: VideoFormat,
        layouts: Vec<(i64, Layout)>,
    ) -> Result<VideoSettings, String> {
        let (width, height) = self.dimensions()?;
        let mut all = vec![(0, self.layout.clone())];
        all.extend(layouts);
        Ok(VideoSettings {
            format,
            width,
            height,
            fps: self.fps,
            bitrate_kbps: self.bitrate_kbps,
            layouts: all,
            labels: self.labels,
            background: parse_colour(&self.background)?,
            rec_badge: self.recording_indicator,
        })
    }
}

/// The renderer's output for an audio mix; `first` is the identity of whoever joined first
/// (the default left side).
pub fn audio_output(options: &AudioOptions, format: AudioFormat, first: &str) -> Output {
    let channels = match options.channels.unwrap_or_default() {
        AudioChannels::Dual => Channels::Dual {
            left: options
                .left_participant
                .clone()
                .unwrap_or_else(|| first.to_string()),
        },
        AudioChannels::Mono => Channels::Mono,
    };
    Output::Audio {
        format,
        channels,
        bitrate_kbps: options.bitrate_kbps,
    }
}

fn parse_colour(s: &str) -> Result<u32, String> {
    s.strip_prefix('#')
        .filter(|h| h.len() == 6)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("background: {s:?} is not #RRGGBB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let d = CompositeOptions::default();
        assert_eq!(
            (d.dimensions().unwrap(), d.fps, d.layout.clone()),
            ((1280, 720), 30, Layout::Grid)
        );
        d.validate().unwrap();
        for bad in [
            serde_json::json!({"size": "800x600"}),
            serde_json::json!({"fps": 25}),
            serde_json::json!({"background": "red"}),
            serde_json::json!({"bitrate_kbps": 5}),
            serde_json::json!({"layout": {"type": "custom", "regions": []}}),
        ] {
            let o: CompositeOptions = serde_json::from_value(bad.clone()).unwrap();
            assert!(o.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<CompositeOptions>(
            serde_json::json!({"layout": {"type": "mosaic"}})
        )
        .is_err());
        let a = AudioOptions {
            channels: Some(AudioChannels::Dual),
            left_participant: None,
            bitrate_kbps: None,
        };
        assert_eq!(
            audio_output(&a, AudioFormat::Mp3, "agent"),
            Output::Audio {
                format: AudioFormat::Mp3,
                channels: Channels::Dual {
                    left: "agent".into()
                },
                bitrate_kbps: None,
            }
        );
    }
}
