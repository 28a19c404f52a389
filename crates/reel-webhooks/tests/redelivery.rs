//! The delivery worker on a manual clock against a real receiver that always fails: the
//! retry schedule runs out, and a manual redelivery that fails starts a schedule of its own.

use reel_db::{Db, WebhookEndpoint};
use reel_webhooks::worker::{tick, Clock, WorkerConfig};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Answers every request with 500, on a port of its own.
fn failing_receiver() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 8192];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_manual_redelivery_is_retried_from_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("reel.db").display()
    ))
    .await
    .unwrap();
    db.ensure_application("app_a", "a").await.unwrap();
    let start = 1_700_000_000_000;
    db.insert_endpoint(&WebhookEndpoint {
        id: "whk_1".into(),
        application_id: "app_a".into(),
        url: failing_receiver(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        event_types: vec![],
        enabled: true,
        disabled_reason: None,
        created_at: start,
        updated_at: start,
    })
    .await
    .unwrap();
    db.insert_event(
        "app_a",
        reel_core::EventKind::RecordingStarted,
        &serde_json::json!({"recording_id": "rec_1"}),
        true,
    )
    .await
    .unwrap();
    let clock = ManualClock(AtomicI64::new(start));
    let cfg = WorkerConfig {
        allow_private_targets: true,
        ..WorkerConfig::default()
    };
    let delivery = || async {
        db.list_deliveries("app_a", "whk_1")
            .await
            .unwrap()
            .remove(0)
    };

    // The whole schedule: every attempt fails until the delivery fails for good.
    tick(&db, &clock, &cfg).await.unwrap();
    let mut d = delivery().await;
    while d.state == "pending" {
        clock.0.store(d.next_attempt_at, Ordering::SeqCst);
        assert_eq!(tick(&db, &clock, &cfg).await.unwrap(), 1);
        d = delivery().await;
    }
    assert_eq!(d.state, "failed");
    let exhausted = d.attempts;
    assert!(exhausted >= 10, "{exhausted} attempts");

    // A manual redelivery, an hour later, that fails again: its next attempt is the
    // schedule's first step (5 s ± 10 %), not "retries exhausted" or hours away.
    let now = clock.now_ms() + 3_600_000;
    clock.0.store(now, Ordering::SeqCst);
    db.redeliver("app_a", "whk_1", &d.id, now).await.unwrap();
    assert_eq!(tick(&db, &clock, &cfg).await.unwrap(), 1);
    let d = delivery().await;
    assert_eq!(d.attempts, exhausted + 1, "the log keeps counting attempts");
    assert_eq!(d.state, "pending", "{:?}", d.last_error);
    let wait = d.next_attempt_at - now;
    assert!((4_500..=5_500).contains(&wait), "next attempt in {wait} ms");
}
