//! What the recorder's database tests start from: a SQLite file with application `app_a`
//! and its room `room_1`.

use reel_db::Db;
use std::path::Path;

pub async fn db_with_room(dir: &Path) -> Db {
    let db = Db::connect(&format!("sqlite://{}", dir.join("reel.db").display()))
        .await
        .unwrap();
    db.ensure_application("app_a", "a").await.unwrap();
    db.insert_room(&reel_db::Room {
        id: "room_1".into(),
        application_id: "app_a".into(),
        name: "desk".into(),
        empty_timeout_ms: 0,
        max_duration_ms: 3_600_000,
        auto_stream_recording: true,
        default_recording_options: serde_json::json!({}),
        default_credentials_sealed: None,
        policy: serde_json::json!({}),
        created_at: 0,
    })
    .await
    .unwrap();
    db
}
