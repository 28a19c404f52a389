//! Start-up recovery after a crash or `kill -9`: every journal is cut back to its last
//! intact record, sessions and publications that were live end as `interrupted`, and the
//! ended publications get their assets like any other.

use crate::Result;
use reel_core::{EndReason, PublicationState};
use reel_db::{now_ms, Db};
use reel_media::journal;
use std::fs::{File, OpenOptions};
use std::io::BufReader;

#[derive(Debug, Default)]
pub struct Recovered {
    pub sessions: usize,
    pub publications: usize,
    pub journals_truncated: usize,
}

pub async fn recover(db: &Db) -> Result<Recovered> {
    let mut out = Recovered::default();
    let live = db.publications_in_state(PublicationState::Live).await?;
    for publication in &live {
        let mut ended_at = publication.started_at;
        for track in db.list_tracks(&publication.id).await? {
            let path = track.journal_path.clone();
            let summary =
                tokio::task::spawn_blocking(move || -> Result<Option<journal::JournalSummary>> {
                    let Ok(file) = File::open(&path) else {
                        return Ok(None);
                    };
                    let summary = match journal::summarize(BufReader::new(file)) {
                        Ok(s) => s,
                        // A journal whose header never reached the disk holds nothing.
                        Err(_) => return Ok(None),
                    };
                    if summary.damaged_tail {
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(summary.valid_len)?;
                    }
                    Ok(Some(summary))
                })
                .await
                .map_err(|e| crate::RecorderError::Internal(e.to_string()))??;
            if let Some(s) = summary {
                out.journals_truncated += usize::from(s.damaged_tail);
                if let Some(last) = s.last_arrival_unix_us {
                    ended_at = ended_at.max(last / 1000);
                }
            }
        }
        db.end_publication(&publication.id, EndReason::Interrupted, ended_at)
            .await?;
        out.publications += 1;
    }
    for session in db.live_sessions().await? {
        db.end_session(&session.id, EndReason::Interrupted, now_ms())
            .await?;
        out.sessions += 1;
    }
    Ok(out)
}
