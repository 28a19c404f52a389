//! An asset and the event announcing it are written together: when the outbox write fails
//! (as a crash would interrupt it), no asset row is left behind, and running the job again,
//! as start-up recovery does for an `ended` publication, writes both, once.

mod common;

use reel_core::{
    Codec, EndReason, EventKind, MediaKind, PublicationKind, PublicationState, SessionState,
};
use reel_db::{Change, Db, Publication, Session, Track};
use reel_media::journal::{flags, JournalHeader, JournalWriter, Record};
use reel_media::remux::Window;

async fn outbox(db: &Db, kind: EventKind) -> usize {
    db.list_events("app_a")
        .await
        .unwrap()
        .iter()
        .filter(|(_, t, _, _)| t == kind.as_str())
        .count()
}

#[tokio::test]
async fn no_asset_without_its_event_and_recovery_makes_both() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_with_room(dir.path()).await;
    let journal = dir.path().join("trk_1.journal");
    let header = JournalHeader {
        track_id: "trk_1".into(),
        publication_id: "pub_1".into(),
        session_id: "ses_1".into(),
        room_id: "room_1".into(),
        participant: "alice".into(),
        kind: MediaKind::Audio,
        codec: Codec::Opus,
        clock_rate: 48_000,
        mid: "0".into(),
        rid: None,
        created_unix_us: 1_700_000_000_000_000,
    };
    let mut w = JournalWriter::create(std::fs::File::create(&journal).unwrap(), &header).unwrap();
    for i in 0..100u64 {
        w.append(&Record::Frame {
            rtp_time: i * 960,
            arrival_unix_us: 1_700_000_000_000_000 + i as i64 * 20_000,
            flags: flags::KEYFRAME,
            data: vec![0xfc, 0xff, 0xfe],
        })
        .unwrap();
    }
    w.append(&Record::End {
        at_unix_us: 1_700_000_002_000_000,
    })
    .unwrap();
    drop(w);
    db.commit(&[
        Change::InsertSession(Session {
            id: "ses_1".into(),
            application_id: "app_a".into(),
            room_id: "room_1".into(),
            state: SessionState::Ended,
            started_at: 1_700_000_000_000,
            ended_at: Some(1_700_000_002_000),
            end_reason: Some(EndReason::Left),
            call_id: None,
        }),
        Change::InsertPublication(Publication {
            id: "pub_1".into(),
            session_id: "ses_1".into(),
            room_id: "room_1".into(),
            participant: "alice".into(),
            kind: PublicationKind::Camera,
            state: PublicationState::Ended,
            started_at: 1_700_000_000_000,
            ended_at: None,
            end_reason: None,
            failure: None,
        }),
        Change::InsertTrack(Track {
            id: "trk_1".into(),
            publication_id: "pub_1".into(),
            session_id: "ses_1".into(),
            mid: "0".into(),
            rid: None,
            media_kind: MediaKind::Audio,
            codec: Codec::Opus,
            clock_rate: 48_000,
            journal_path: journal.to_string_lossy().into_owned(),
            started_at: 1_700_000_000_000,
        }),
    ])
    .await
    .unwrap();
    let window = Window {
        from_unix_us: None,
        to_unix_us: None,
    };

    // The outbox refuses writes, as if the process died right after the asset row.
    sqlx_exec(
        &db,
        "CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'outbox down'); END",
    )
    .await;
    let failed =
        reel_recorder::assets::process_publication(&db, dir.path(), "pub_1", "rec_1", window).await;
    assert!(
        matches!(&failed, Err(e) if e.to_string().contains("outbox down")),
        "{failed:?}"
    );
    assert!(
        db.all_assets().await.unwrap().is_empty(),
        "an asset without its event"
    );
    assert_eq!(
        db.get_publication("pub_1").await.unwrap().state,
        PublicationState::Ended
    );

    // Recovery runs the job again: the asset and its event, each once.
    sqlx_exec(&db, "DROP TRIGGER no_events").await;
    let asset =
        reel_recorder::assets::process_publication(&db, dir.path(), "pub_1", "rec_1", window)
            .await
            .unwrap();
    let publication = db.get_publication("pub_1").await.unwrap();
    let reel_recorder::Outcome::Made(asset) = asset else {
        panic!("no asset: {:?}", publication.failure)
    };
    assert_eq!(db.all_assets().await.unwrap().len(), 1);
    assert_eq!(outbox(&db, EventKind::StreamSuccess).await, 1);
    assert_eq!(
        db.get_publication("pub_1").await.unwrap().state,
        PublicationState::Processed
    );
    assert!(asset.duration_ms >= 1900, "{} ms", asset.duration_ms);
    // And once more (a second restart): nothing new.
    reel_recorder::assets::process_publication(&db, dir.path(), "pub_1", "rec_1", window)
        .await
        .unwrap();
    assert_eq!(outbox(&db, EventKind::StreamSuccess).await, 1);
}

async fn sqlx_exec(db: &Db, sql: &'static str) {
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

/// A journal with its header and no frame (the publisher left before its first frame) is
/// a publication that sent no media: the client's `no_media`, not Reel's `output_failed`.
#[tokio::test]
async fn a_header_only_journal_is_no_media_not_an_output_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_with_room(dir.path()).await;
    let journal = dir.path().join("trk_h.journal");
    let header = JournalHeader {
        track_id: "trk_h".into(),
        publication_id: "pub_h".into(),
        session_id: "ses_h".into(),
        room_id: "room_1".into(),
        participant: "hal".into(),
        kind: MediaKind::Video,
        codec: Codec::Vp8,
        clock_rate: 90_000,
        mid: "0".into(),
        rid: None,
        created_unix_us: 1_700_000_000_000_000,
    };
    drop(JournalWriter::create(std::fs::File::create(&journal).unwrap(), &header).unwrap());
    db.commit(&[
        Change::InsertSession(Session {
            id: "ses_h".into(),
            application_id: "app_a".into(),
            room_id: "room_1".into(),
            state: SessionState::Ended,
            started_at: 1_700_000_000_000,
            ended_at: Some(1_700_000_002_000),
            end_reason: Some(EndReason::Left),
            call_id: None,
        }),
        Change::InsertPublication(Publication {
            id: "pub_h".into(),
            session_id: "ses_h".into(),
            room_id: "room_1".into(),
            participant: "hal".into(),
            kind: PublicationKind::Camera,
            state: PublicationState::Ended,
            started_at: 1_700_000_000_000,
            ended_at: None,
            end_reason: None,
            failure: None,
        }),
        Change::InsertTrack(Track {
            id: "trk_h".into(),
            publication_id: "pub_h".into(),
            session_id: "ses_h".into(),
            mid: "0".into(),
            rid: None,
            media_kind: MediaKind::Video,
            codec: Codec::Vp8,
            clock_rate: 90_000,
            journal_path: journal.to_string_lossy().into_owned(),
            started_at: 1_700_000_000_000,
        }),
    ])
    .await
    .unwrap();
    let window = Window {
        from_unix_us: None,
        to_unix_us: None,
    };
    let outcome =
        reel_recorder::assets::process_publication(&db, dir.path(), "pub_h", "rec_h", window)
            .await
            .unwrap();
    let reel_recorder::Outcome::Failed { code, reason } = outcome else {
        panic!("an asset from a journal without frames");
    };
    assert_eq!(code, reel_core::recording::FailureCode::NoMedia, "{reason}");
}
