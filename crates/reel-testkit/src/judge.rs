//! Judging outputs as a player would: every frame of every stream decoded.

use std::path::Path;
use std::process::Command;

/// Decodes every frame of every stream; returns what the decoder complained about (empty
/// when clean) and the number of video frames. ffprobe decodes without remuxing, so only
/// real decoding problems are reported, not timing conventions of an output format.
pub fn decode(path: &Path) -> (String, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "frame=media_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is required (apt-get install ffmpeg)");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() == "video")
        .count() as u64;
    let mut complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && complaints.is_empty() {
        complaints = format!("ffprobe exited with {}", out.status);
    }
    (complaints, frames)
}
