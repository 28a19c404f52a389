//! Free space where the recorder writes (journals, assets, the SQLite database): new
//! publishers and calls are admitted only while it is above a floor, and `/healthz` reports
//! it. Below the floor what is already recording goes on (a journal the disk refuses stalls
//! and resumes; see `journal_file.rs`); a new one would only lose media.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DiskSpace {
    path: PathBuf,
    min_free_bytes: u64,
}

/// What the disk looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskReport {
    pub free_bytes: u64,
    pub min_free_bytes: u64,
}

impl DiskReport {
    pub fn is_low(&self) -> bool {
        self.free_bytes < self.min_free_bytes
    }
}

impl DiskSpace {
    pub fn new(path: &Path, min_free_bytes: u64) -> DiskSpace {
        DiskSpace {
            path: path.to_path_buf(),
            min_free_bytes,
        }
    }

    /// Free bytes for an unprivileged writer (`statvfs`'s `f_bavail`); an error reads as
    /// none free, as nothing could be written there either.
    pub fn report(&self) -> DiskReport {
        DiskReport {
            free_bytes: free_bytes(&self.path).unwrap_or(0),
            min_free_bytes: self.min_free_bytes,
        }
    }
}

fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_reads_low() {
        let dir = tempfile::tempdir().unwrap();
        let report = DiskSpace::new(dir.path(), 0).report();
        assert!(report.free_bytes > 0 && !report.is_low());
        assert!(DiskSpace::new(dir.path(), u64::MAX).report().is_low());
        // A path that is not there has no space to offer.
        assert!(DiskSpace::new(&dir.path().join("gone"), 1)
            .report()
            .is_low());
    }
}
