//! What a user asks of a composite or an audio mix (`recordingOptions.compositeOptions` /
//! `audioOptions`), validated field by field, and turned into the renderer's `Output`.

use crate::layout::Layout;
use crate::render::{AudioFormat, Channels, Output, VideoFormat, VideoSettings};
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioOptions {
    /// `mono` (default) or `dual`: `left_participant` in the left channel, everyone else right.
    #[serde(default)]
    pub channels: Option<String>,
    /// The identity put on the left in `dual` (default: the first to join).
    #[serde(default)]
    pub left_participant: Option<String>,
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
        format: &str,
        layouts: Vec<(i64, Layout)>,
    ) -> Result<VideoSettings, String> {
        let (width, height) = self.dimensions()?;
        let mut all = vec![(0, self.layout.clone())];
        all.extend(layouts);
        Ok(VideoSettings {
            format: if format == "webm" {
                VideoFormat::Webm
            } else {
                VideoFormat::Mp4
            },
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

impl AudioOptions {
    pub fn validate(&self) -> Result<(), String> {
        match self.channels.as_deref() {
            None | Some("mono") | Some("dual") => Ok(()),
            Some(other) => Err(format!("channels: {other:?} is not mono or dual")),
        }
    }

    /// `first` is the identity of whoever joined first (the default left side).
    pub fn output(&self, format: &str, first: &str) -> Output {
        let format = match format {
            "wav" => AudioFormat::Wav,
            "ogg" => AudioFormat::Ogg,
            "m4a" => AudioFormat::M4a,
            _ => AudioFormat::Mp3,
        };
        let channels = match self.channels.as_deref() {
            Some("dual") => Channels::Dual {
                left: self
                    .left_participant
                    .clone()
                    .unwrap_or_else(|| first.to_string()),
            },
            _ => Channels::Mono,
        };
        Output::Audio { format, channels }
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
            channels: Some("dual".into()),
            left_participant: None,
        };
        assert_eq!(
            a.output("mp3", "agent"),
            Output::Audio {
                format: AudioFormat::Mp3,
                channels: Channels::Dual {
                    left: "agent".into()
                }
            }
        );
    }
}
