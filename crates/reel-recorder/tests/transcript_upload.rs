//! A transcript going to a destination is written with a marker that its event is owed. A
//! restart after the rows were written but before the upload and the event (the window in
//! which `transcription_available` used to be lost for good) finds the marker at start-up,
//! and finishing it uploads the files and sends the event once.

mod common;

use reel_core::recording::{RecordingMode, RecordingState};
use reel_core::{AssetType, EventKind, UploadState};
use reel_db::{Asset, Change, Db, Recording};
use reel_recorder::uploads::UploadContext;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_transcript_upload_cut_by_a_restart_is_finished_with_its_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("bucket");
    std::fs::create_dir_all(&store).unwrap();
    let db = common::db_with_room(dir.path()).await;
    let destination = format!("file://{}/calls", store.display());
    let rec = Recording {
        id: "rec_1".into(),
        application_id: "app_a".into(),
        room_id: "room_1".into(),
        session_id: None,
        mode: RecordingMode::Stream,
        state: RecordingState::Available,
        failure: None,
        failure_code: None,
        pauses: vec![],
        created_at: 1_700_000_000_000,
        started_at: Some(1_700_000_000_000),
        stopped_at: Some(1_700_000_060_000),
        updated_at: 1_700_000_060_000,
        options: json!({"destinationUrl": destination}),
        credentials_sealed: None,
        credentials_set: false,
        legal_hold: false,
    };
    db.commit(&[Change::SaveRecording(rec.clone())])
        .await
        .unwrap();

    // What the transcript job writes in its first transaction, and nothing after: the
    // process died before the upload.
    let dest = reel_blob::Destination::parse(&destination).unwrap();
    let mut changes = Vec::new();
    let mut keys = Vec::new();
    for (id, format, text) in [
        ("ast_json", "json", "{\"lines\": []}"),
        ("ast_vtt", "vtt", "WEBVTT\n"),
    ] {
        let path = dir.path().join(format!("rec_1-transcript.{format}"));
        std::fs::write(&path, text).unwrap();
        changes.push(Change::InsertAsset(Asset {
            id: id.into(),
            application_id: "app_a".into(),
            room_id: "room_1".into(),
            session_id: "ses_1".into(),
            recording_id: Some("rec_1".into()),
            asset_type: AssetType::Transcript,
            format: format.into(),
            path: path.to_string_lossy().into_owned(),
            size_bytes: text.len() as i64,
            sha256: reel_blob::sha256_file(&path).await.unwrap(),
            details: json!({}),
            ..Asset::on_local_disk()
        }));
        // Named as the transcript job names it.
        let key = dest.transcript_key(
            &reel_blob::NameParts {
                started_at_ms: 1_700_000_000_000,
                application_key: "app_a",
                call_id: "ses_1",
                asset_id: id,
                format,
                several: false,
            },
            format,
        );
        keys.push(key.clone());
        changes.push(Change::AssetDestination {
            id: id.into(),
            url: dest.url_of(&key),
            key,
        });
    }
    changes.push(Change::TranscriptUploadPending {
        recording: "rec_1".into(),
        payload: json!({"asset_ids": ["ast_json", "ast_vtt"], "lines": 0, "locale": "en-US"}),
    });
    db.commit(&changes).await.unwrap();
    drop(db);

    // Start-up: the marker is found, and finishing it does what the job did not.
    let db = Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("reel.db").display()
    ))
    .await
    .unwrap();
    let pending = db.pending_transcript_uploads().await.unwrap();
    assert_eq!(pending.len(), 1, "the marker outlives the restart");
    let uploads = UploadContext {
        settings: reel_blob::Settings {
            file_root: Some(store.clone()),
            ..Default::default()
        },
        secrets_key: [0; 32],
        keep_local_copy: true,
        retry_window: Duration::from_secs(1),
    };
    for (recording, event) in pending {
        let rec = db.recording_by_id(&recording).await.unwrap();
        reel_recorder::transcripts::finish_upload(&db, &uploads, &rec, event)
            .await
            .unwrap();
    }

    assert!(db.pending_transcript_uploads().await.unwrap().is_empty());
    let events: Vec<_> = db
        .list_events("app_a")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, t, _, _)| t == EventKind::TranscriptionAvailable.as_str())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let payload = &events[0].2;
    assert_eq!(payload["recording_id"], "rec_1");
    assert_eq!(
        payload["destinations"].as_array().unwrap().len(),
        2,
        "{payload}"
    );
    for a in db.assets_of_recording("rec_1").await.unwrap() {
        assert_eq!(a.upload_state, UploadState::Uploaded, "{}", a.id);
    }
    // A file:// destination's keys are paths from the root.
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new("/").join(&keys[1])).unwrap(),
        "WEBVTT\n"
    );
}
