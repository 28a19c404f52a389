//! Start-up sweep of `assets/`: files that no asset row names are what a crash left between
//! writing an output and committing its row (a render's output and its `.job.json`, a
//! remux's `.part`, a mix finished just before the kill). Job and part files are removed;
//! anything else holds media and is moved to `quarantine/` (same relative path), never
//! deleted, so an operator can still look at it.

use crate::Result;
use reel_db::Db;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    pub quarantined: usize,
}

/// Scratch files a job writes beside its output: nothing in them is media to keep (a
/// transcript's per-speaker wav is made again from the journals).
fn is_scratch(name: &str) -> bool {
    name.ends_with(".job.json") || name.ends_with(".part") || name.ends_with(".speaker.wav")
}

/// A file by its session directory and name: rows keep the path as the data directory was
/// spelled then (relative or absolute), which need not be how it is spelled now.
type Named = HashSet<(OsString, OsString)>;

fn key(path: &Path) -> Option<(OsString, OsString)> {
    let name = path.file_name()?;
    let session = path.parent()?.file_name()?;
    Some((session.to_os_string(), name.to_os_string()))
}

pub async fn sweep(db: &Db, data_dir: &Path) -> Result<Swept> {
    let named: Named = db
        .asset_paths()
        .await?
        .iter()
        .filter_map(|p| key(Path::new(p)))
        .collect();
    let data_dir = data_dir.to_path_buf();
    let swept = tokio::task::spawn_blocking(move || sweep_files(&data_dir, &named))
        .await
        .map_err(|e| crate::RecorderError::Internal(e.to_string()))??;
    if swept != Swept::default() {
        tracing::warn!(
            removed = swept.removed,
            quarantined = swept.quarantined,
            "start-up: files in assets/ that no asset names (left by a crash): scratch files removed, media moved to quarantine/"
        );
    }
    Ok(swept)
}

fn sweep_files(data_dir: &Path, named: &Named) -> std::io::Result<Swept> {
    let mut out = Swept::default();
    let assets = data_dir.join("assets");
    let Ok(sessions) = std::fs::read_dir(&assets) else {
        return Ok(out);
    };
    for session in sessions {
        let session = session?;
        if !session.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(session.path())? {
            let file = file?;
            let path = file.path();
            if !file.file_type()?.is_file() || key(&path).is_some_and(|k| named.contains(&k)) {
                continue;
            }
            let name = file.file_name().to_string_lossy().into_owned();
            // One file that cannot be moved is left where it is, said, and skipped: the
            // server still starts.
            let moved = if is_scratch(&name) {
                std::fs::remove_file(&path).map(|()| out.removed += 1)
            } else {
                let to = data_dir
                    .join("quarantine")
                    .join(session.file_name())
                    .join(&name);
                std::fs::create_dir_all(to.parent().expect("has a parent"))
                    .and_then(|()| std::fs::rename(&path, &to))
                    .map(|()| out.quarantined += 1)
            };
            if let Err(e) = moved {
                tracing::warn!(file = %path.display(), error = %e, "start-up sweep: left in place");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_removed_unnamed_media_quarantined_named_kept() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("assets/ses_1");
        std::fs::create_dir_all(&session).unwrap();
        for name in [
            "ast_kept.mp4",
            "ast_lost.mp4",
            "ast_lost.job.json",
            "ast_x.webm.part",
        ] {
            std::fs::write(session.join(name), b"x").unwrap();
        }
        // Named as another spelling of the data directory would name it.
        let named: Named = [key(Path::new("./elsewhere/assets/ses_1/ast_kept.mp4")).unwrap()]
            .into_iter()
            .collect();
        let swept = sweep_files(dir.path(), &named).unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                quarantined: 1
            }
        );
        let left: Vec<_> = std::fs::read_dir(&session)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["ast_kept.mp4"]);
        assert!(dir.path().join("quarantine/ses_1/ast_lost.mp4").exists());
        // A second sweep finds nothing.
        assert_eq!(sweep_files(dir.path(), &named).unwrap(), Swept::default());
    }
}
