//! What every repository shares: time, secret hashing, row decoding helpers; and the
//! round-trip tests of the repositories. API-facing reads take the application id, so a key
//! of one application can never see another's rows.

use crate::{DbError, Result};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// API keys and publish tokens are stored as SHA-256: a leaked database leaks no secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What lists show of a key so people can tell keys apart. Keys Reel generates start with
/// `reel_` and 35+ random characters after the 12 shown; a key an operator chose
/// (`REEL_ADMIN_KEY`) may be short or guessable, so none of it is kept.
pub fn key_prefix(secret: &str) -> String {
    let generated = secret.starts_with("reel_")
        && secret.len() >= 40
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if generated {
        secret.chars().take(12).collect()
    } else {
        "(chosen key)".into()
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

/// A text column holding one of a domain type's names (a state, a mode): parsing is
/// validation, and a name Reel does not know is a corrupt row.
pub(crate) fn named_column<T: std::str::FromStr<Err = String>>(
    r: &AnyRow,
    name: &str,
) -> Result<T> {
    r.try_get::<String, _>(name)?
        .parse()
        .map_err(DbError::Corrupt)
}

/// A nullable [`named_column`].
pub(crate) fn optional_named_column<T: std::str::FromStr<Err = String>>(
    r: &AnyRow,
    name: &str,
) -> Result<Option<T>> {
    r.try_get::<Option<String>, _>(name)?
        .map(|v| v.parse().map_err(DbError::Corrupt))
        .transpose()
}

pub(crate) fn json_column(r: &AnyRow, name: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&r.try_get::<String, _>(name)?).map_err(corrupt)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Application, Asset, Db, Publication, Room, Session, Track};
    use reel_core::{Codec, EndReason, MediaKind, PublicationKind, PublicationState, SessionState};

    /// PostgreSQL for tests: `REEL_TEST_POSTGRES_URL` (scripts/test starts a cluster). In CI
    /// its absence is a failure; elsewhere the PostgreSQL half says loudly that it did not run.
    pub(crate) async fn postgres() -> Option<Db> {
        let Ok(admin) = std::env::var("REEL_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide REEL_TEST_POSTGRES_URL"
            );
            eprintln!("NOT RUN on PostgreSQL: set REEL_TEST_POSTGRES_URL (scripts/test does)");
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("reel_unit_{}", reel_core::random_token(10));
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        // The name is ours: a fixed prefix and an alphanumeric token.
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
        sqlx::query(create).execute(&pool).await.unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(Db::connect(&url).await.unwrap())
    }

    pub(crate) async fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("reel-db-test-{}", reel_core::random_token(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db", dir.display());
        // A second connect re-runs migrations harmlessly.
        Db::connect(&url).await.unwrap();
        Db::connect(&url).await.unwrap()
    }

    async fn round_trip_and_optional_filters(db: Db) {
        db.ensure_application("app_a", "a").await.unwrap();
        db.ensure_application("app_a", "a").await.unwrap();
        db.insert_api_key("key_1", "app_a", "reel_secret_value", "admin")
            .await
            .unwrap();
        let key = db.find_api_key("reel_secret_value").await.unwrap().unwrap();
        // Not of Reel's making (too short): none of it is kept.
        assert_eq!(key.prefix, "(chosen key)");
        let generated = format!("reel_admin_{}", "x".repeat(32));
        assert_eq!(key_prefix(&generated), "reel_admin_x");
        assert_eq!(key_prefix("hunter2hunter2hunter2"), "(chosen key)");
        assert!(db.find_api_key("wrong").await.unwrap().is_none());
        assert_eq!(db.count_api_keys("admin").await.unwrap(), 1);
        db.insert_application(&Application {
            id: "app_b".into(),
            name: "b".into(),
            created_at: 1,
            retention_days: None,
            default_recording_options: serde_json::json!({}),
        })
        .await
        .unwrap();
        db.insert_api_key("key_2", "app_b", "reel_other_secret", "app")
            .await
            .unwrap();
        assert_eq!(db.list_applications().await.unwrap().len(), 2);
        assert_eq!(db.get_application("app_b").await.unwrap().name, "b");
        assert_eq!(db.list_api_keys("app_b").await.unwrap().len(), 1);
        assert!(matches!(
            db.revoke_api_key("app_a", "key_2").await,
            Err(DbError::NotFound)
        ));
        db.revoke_api_key("app_b", "key_2").await.unwrap();
        assert!(db
            .find_api_key("reel_other_secret")
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            db.revoke_api_key("app_b", "key_2").await,
            Err(DbError::NotFound)
        ));
        let room = Room {
            id: "room_x".into(),
            application_id: "app_a".into(),
            name: "x".into(),
            empty_timeout_ms: 1,
            max_duration_ms: 2,
            auto_stream_recording: true,
            default_recording_options: serde_json::json!({}),
            default_credentials_sealed: None,
            policy: serde_json::json!({}),
            created_at: 3,
        };
        db.insert_room(&room).await.unwrap();
        assert!(matches!(
            db.get_room(Some("app_b"), "room_x").await,
            Err(DbError::NotFound)
        ));
        assert_eq!(
            db.get_room(Some("app_a"), "room_x").await.unwrap().name,
            "x"
        );
        let session = Session {
            id: "ses_1".into(),
            application_id: "app_a".into(),
            room_id: "room_x".into(),
            state: SessionState::Live,
            started_at: 5,
            ended_at: None,
            end_reason: None,
            call_id: None,
        };
        db.insert_session(&session).await.unwrap();
        assert_eq!(
            db.list_sessions("app_a", Some("room_x"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(db.list_sessions("app_a", None).await.unwrap().len(), 1);
        assert_eq!(db.live_sessions().await.unwrap().len(), 1);
        db.end_session("ses_1", EndReason::Empty, 9).await.unwrap();
        assert_eq!(
            db.session_by_id("ses_1").await.unwrap().end_reason,
            Some(EndReason::Empty)
        );
        let publication = Publication {
            id: "pub_1".into(),
            session_id: "ses_1".into(),
            room_id: "room_x".into(),
            participant: "alice".into(),
            kind: PublicationKind::Camera,
            state: PublicationState::Live,
            started_at: 6,
            ended_at: None,
            end_reason: None,
            failure: None,
        };
        db.insert_publication(&publication).await.unwrap();
        db.insert_track(&Track {
            id: "trk_1".into(),
            publication_id: "pub_1".into(),
            session_id: "ses_1".into(),
            mid: "0".into(),
            rid: Some("h".into()),
            media_kind: MediaKind::Video,
            codec: Codec::Vp8,
            clock_rate: 90_000,
            journal_path: "/j".into(),
            started_at: 7,
        })
        .await
        .unwrap();
        assert_eq!(
            db.list_tracks("pub_1").await.unwrap()[0].rid.as_deref(),
            Some("h")
        );
        db.end_publication("pub_1", EndReason::Left, 8)
            .await
            .unwrap();
        assert_eq!(
            db.publications_in_state(PublicationState::Ended)
                .await
                .unwrap()
                .len(),
            1
        );
        db.set_publication_outcome("pub_1", PublicationState::Failed, Some("why"))
            .await
            .unwrap();
        assert_eq!(
            db.get_publication("pub_1")
                .await
                .unwrap()
                .failure
                .as_deref(),
            Some("why")
        );
        let a = Asset {
            id: "ast_1".into(),
            application_id: "app_a".into(),
            room_id: "room_x".into(),
            session_id: "ses_1".into(),
            publication_id: Some("pub_1".into()),
            recording_id: Some("rec_1".into()),
            participant: Some("alice".into()),
            asset_type: reel_core::AssetType::Regular,
            format: "webm".into(),
            path: "/x".into(),
            start_at: 0,
            end_at: 1,
            duration_ms: 1,
            size_bytes: 1,
            sha256: "00".into(),
            details: serde_json::json!({"sync": "arrival"}),
            created_at: 0,
            ..Asset::on_local_disk()
        };
        db.insert_asset(&a).await.unwrap();
        assert_eq!(
            db.list_assets("app_a", None, None, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            db.list_assets("app_a", Some("ses_1"), Some("regular"), Some("rec_1"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            db.list_assets("app_a", Some("ses_1"), Some("screen"), None)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            db.list_assets("app_b", None, None, None)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            db.get_asset("app_a", "ast_1").await.unwrap().details["sync"],
            "arrival"
        );
        assert!(matches!(
            db.get_asset("app_b", "ast_1").await,
            Err(DbError::NotFound)
        ));
        db.insert_event(
            "app_a",
            reel_core::EventKind::StreamSuccess,
            &serde_json::json!({"a": 1}),
            true,
        )
        .await
        .unwrap();
        assert_eq!(db.list_events("app_a").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn repositories_on_sqlite() {
        round_trip_and_optional_filters(sqlite().await).await;
    }

    #[tokio::test]
    async fn repositories_on_postgres() {
        if let Some(db) = postgres().await {
            assert!(!db.is_sqlite());
            round_trip_and_optional_filters(db).await;
        }
    }
}
