//! Recordings' options as the recorder keeps them (`recordingOptions`, credentials sealed).
//! The decisions about recordings are the engine's (`engine.rs`).

use crate::Result;
use reel_db::Room;
use serde_json::{json, Value};

/// What a recording is asked to do, already validated: `recordingOptions` without the
/// credentials, and the credentials sealed with the server key.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    pub json: Value,
    pub sealed_credentials: Option<String>,
}

impl RecordingOptions {
    /// What a recording without options of its own gets: the room's defaults, else its
    /// application's.
    pub async fn defaults_for(db: &reel_db::Db, room: &Room) -> Result<RecordingOptions> {
        if room
            .default_recording_options
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            return Ok(RecordingOptions {
                json: room.default_recording_options.clone(),
                sealed_credentials: room.default_credentials_sealed.clone(),
            });
        }
        let (json, sealed_credentials) = db.application_defaults(&room.application_id).await?;
        Ok(RecordingOptions {
            json,
            sealed_credentials,
        })
    }
}

impl Default for RecordingOptions {
    fn default() -> Self {
        RecordingOptions {
            json: json!({}),
            sealed_credentials: None,
        }
    }
}
