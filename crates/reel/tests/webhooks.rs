//! Webhooks end to end: a real HTTP receiver on loopback, events from real recordings,
//! signatures checked with the Standard Webhooks reference library (PyPI), and a receiver
//! outage of six simulated hours across a server restart on a manual clock.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::media::pattern_and_tone;
use reel_testkit::{publish, PublishOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
    /// Unix milliseconds when the request was read.
    at_ms: i64,
}

/// A webhook receiver answering `status` to every request and keeping what it got.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/reel", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (status.clone(), got.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut headers = HashMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or(0);
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let answered = s.load(Ordering::SeqCst);
                g.lock().unwrap().push(Received {
                    headers,
                    body: String::from_utf8_lossy(&body).into(),
                    answered,
                    at_ms: unix_ms(),
                });
                let _ = write!(
                    conn,
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, status, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record_one(server: &Server, seconds: u64) -> String {
    let room = server.room(1);
    let (token, whip) = server.token(&room, "wanda", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(seconds);
    let report = publish(&opts).unwrap();
    server.wait_assets(&report.session_id, 1, Duration::from_secs(20));
    report.session_id
}

fn python() -> String {
    match std::env::var("REEL_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set REEL_TEST_PYTHON (scripts/deps)"
            );
            "python3".into()
        }
    }
}

/// Verifies with the reference implementation; panics with its message when it refuses.
fn reference_verify(secret: &str, r: &Received) {
    let script = "import sys, json\nfrom standardwebhooks.webhooks import Webhook\nsecret, body, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\nWebhook(secret).verify(body, headers)\nprint('verified')";
    let headers = json!({
        "webhook-id": r.headers["webhook-id"],
        "webhook-timestamp": r.headers["webhook-timestamp"],
        "webhook-signature": r.headers["webhook-signature"],
    });
    let out = std::process::Command::new(python())
        .args(["-c", script, secret, &r.body, &headers.to_string()])
        .output()
        .expect("python with standardwebhooks (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "reference verifier refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_endpoint(server: &Server, url: &str, types: Value) -> (String, String) {
    let e = server.post("/v1/webhooks", json!({"url": url, "event_types": types}));
    assert!(e["secret"].as_str().unwrap().starts_with("whsec_"));
    (
        e["id"].as_str().unwrap().into(),
        e["secret"].as_str().unwrap().into(),
    )
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn events_arrive_signed_and_verify_with_the_reference_library() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("REEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")],
    );
    let receiver = Receiver::start(200);
    let (endpoint, secret) =
        create_endpoint(&server, &receiver.url, json!(["stream.recording.success"]));
    let ignored = Receiver::start(200);
    create_endpoint(&server, &ignored.url, json!(["transcription_available"]));
    let session = record_one(&server, 1);

    wait_for("the webhook", Duration::from_secs(15), || {
        !receiver.received().is_empty()
    });
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    reference_verify(&secret, r);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "stream.recording.success");
    assert_eq!(body["data"]["session_id"], session.as_str());
    let events = server.get("/v1/events")["data"].clone();
    let ids: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&r.headers["webhook-id"].as_str()));
    // The outbox reads as the webhook delivers: the same type, timestamp and data.
    let listed = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == r.headers["webhook-id"].as_str())
        .unwrap();
    for field in ["type", "timestamp", "data"] {
        assert_eq!(listed[field], body[field], "{field}");
    }
    // A tampered body does not verify.
    let mut forged = r.clone();
    forged.body = forged.body.replace("success", "failure");
    assert!(std::panic::catch_unwind(|| reference_verify(&secret, &forged)).is_err());
    assert!(ignored.received().is_empty(), "the type filter holds");

    let log = server.get(&format!("/v1/webhooks/{endpoint}/deliveries"));
    assert_eq!(log["data"][0]["state"], "delivered");
    assert_eq!(log["data"][0]["attempt_log"][0]["status"], 200);
    // Secrets never come back in reads.
    assert!(!server
        .get(&format!("/v1/webhooks/{endpoint}"))
        .to_string()
        .contains(&secret));
    assert!(!server.get("/v1/webhooks").to_string().contains("whsec_"));

    // Manual redelivery sends the same event again, with the same webhook-id.
    let delivery = log["data"][0]["id"].as_str().unwrap();
    let r2 = http::request(
        "POST",
        &server.url(&format!(
            "/v1/webhooks/{endpoint}/deliveries/{delivery}/redeliver"
        )),
        Some(ADMIN_KEY),
        None,
    )
    .unwrap();
    assert_eq!(r2.status, 202);
    wait_for("the redelivery", Duration::from_secs(10), || {
        receiver.received().len() == 2
    });
    assert_eq!(
        receiver.received()[1].headers["webhook-id"],
        r.headers["webhook-id"]
    );

    // 410 Gone disables the endpoint.
    receiver.status.store(410, Ordering::SeqCst);
    let r3 = http::request(
        "POST",
        &server.url(&format!(
            "/v1/webhooks/{endpoint}/deliveries/{delivery}/redeliver"
        )),
        Some(ADMIN_KEY),
        None,
    )
    .unwrap();
    assert_eq!(r3.status, 202);
    wait_for(
        "the endpoint to be disabled",
        Duration::from_secs(10),
        || server.get(&format!("/v1/webhooks/{endpoint}"))["enabled"] == false,
    );
}

#[test]
fn private_targets_and_bad_endpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url("/v1/webhooks");
    for (body, code) in [
        (json!({"url": "http://127.0.0.1:9/x"}), "invalid_field"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "invalid_field",
        ),
        (json!({"url": "ftp://example.com/"}), "invalid_field"),
        // Reserved (documentation) and IPv4-in-IPv6 forms of inward addresses.
        (json!({"url": "https://198.51.100.7/"}), "invalid_field"),
        (json!({"url": "http://[::127.0.0.1]:9/x"}), "invalid_field"),
        (
            json!({"url": "http://[64:ff9b::a9fe:a9fe]/x"}),
            "invalid_field",
        ),
        (
            json!({"url": "https://93.184.216.34/", "event_types": ["nope"]}),
            "invalid_field",
        ),
        (
            json!({"url": "https://93.184.216.34/", "colour": "red"}),
            "invalid_field",
        ),
    ] {
        let r = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert_eq!(r.json()["code"], code);
    }
    // Each refusal says why.
    let why = |body: serde_json::Value| {
        let r = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
        r.json()["message"].as_str().unwrap().to_string()
    };
    let refused = why(json!({"url": "http://127.0.0.1:9/x"}));
    assert!(
        refused.contains("loopback") && refused.contains("webhooks.allow_private_targets"),
        "{refused}"
    );
    assert!(
        why(json!({"url": "https://93.184.216.34/", "event_types": ["nope"]}))
            .contains("unknown event type")
    );
    assert!(why(json!({"url": "https://93.184.216.34/", "colour": "red"})).contains("colour"));
    // A valid public endpoint is accepted (disabled: this test sends nothing anywhere).
    let body = json!({"url": "https://93.184.216.34/hook", "enabled": false});
    let ok = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
    assert_eq!(ok.status, 201, "{}", ok.text());
    // Every event type Reel emits can be subscribed to: the allowed list is the emitters'.
    for kind in reel_core::EventKind::ALL {
        let body = json!({"url": "https://93.184.216.34/hook", "enabled": false,
                          "event_types": [kind.as_str()]});
        let r = http::json("POST", &url, Some(ADMIN_KEY), &body).unwrap();
        assert_eq!(r.status, 201, "{kind}: {}", r.text());
        assert_eq!(r.json()["event_types"], json!([kind.as_str()]));
    }
}

#[test]
fn a_six_hour_receiver_outage_across_a_restart_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock-offset-ms");
    let clock_str = clock.to_string_lossy().into_owned();
    let env = [
        ("REEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
        ("REEL_TEST_CLOCK_FILE", clock_str.as_str()),
    ];
    let set_clock = |secs: i64| std::fs::write(&clock, (secs * 1000).to_string()).unwrap();
    let mut server = Server::start_with(dir.path(), &env);
    let receiver = Receiver::start(503);
    // One type only, so the set of events to deliver is known: one per publication.
    let (endpoint, secret) =
        create_endpoint(&server, &receiver.url, json!(["stream.recording.success"]));
    record_one(&server, 1);
    record_one(&server, 1);
    let events: Vec<String> = server.get("/v1/events")["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "stream.recording.success")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");

    let attempts_of_all = |server: &Server| -> Vec<i64> {
        let log = server.get(&format!("/v1/webhooks/{endpoint}/deliveries"));
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["attempts"].as_i64().unwrap())
            .collect()
    };
    // The receiver refuses; the clock jumps through the first retries: 5 s, 5 min, 30 min, 2 h.
    for (at, attempts) in [(0, 1), (10, 2), (6 * 60, 3), (40 * 60, 4), (3 * 3600, 5)] {
        set_clock(at);
        wait_for(
            &format!("attempt {attempts} at +{at}s"),
            Duration::from_secs(15),
            || {
                let a = attempts_of_all(&server);
                a.len() == events.len() && a.iter().all(|n| *n >= attempts)
            },
        );
    }
    // Restart in the middle of the outage.
    server.stop();
    set_clock(6 * 3600);
    let server = Server::start_with(dir.path(), &env);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        attempts_of_all(&server).iter().all(|n| *n == 5),
        "nothing was due before 7 h"
    );
    // The receiver is back after six hours; the next retry (5 h ± 10 % after the last) delivers.
    receiver.status.store(200, Ordering::SeqCst);
    set_clock(9 * 3600);
    wait_for("every delivery", Duration::from_secs(15), || {
        let log = server.get(&format!("/v1/webhooks/{endpoint}/deliveries"));
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered")
    });
    let got = receiver.received();
    for id in &events {
        let ok = got
            .iter()
            .any(|r| &r.headers["webhook-id"] == id && r.answered == 200);
        assert!(ok, "event {id} was never delivered");
    }
    assert!(got.iter().filter(|r| r.answered == 503).count() >= 5 * events.len());
    // Signed like any other (the reference library would refuse it only for its timestamp,
    // nine simulated hours ahead, which is its replay protection working).
    let r = got.iter().find(|r| r.answered == 200).unwrap();
    let key = reel_webhooks::sign::secret_key(&secret).unwrap();
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    assert_eq!(
        r.headers["webhook-signature"],
        reel_webhooks::sign::signature(&key, &r.headers["webhook-id"], ts, &r.body)
    );
}

#[test]
fn notification_events_false_keeps_events_out_of_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("REEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")],
    );
    let receiver = Receiver::start(200);
    create_endpoint(&server, &receiver.url, json!([]));
    let room = server.post(
        "/v1/rooms",
        json!({"empty_timeout_seconds": 1, "auto_stream_recording": false}),
    );
    let room = room["id"].as_str().unwrap().to_string();
    let body = json!({"room_id": room, "recordingOptions": {"notificationEvents": false}});
    let rec = http::json(
        "POST",
        &server.url("/v1/recordings"),
        Some(ADMIN_KEY),
        &body,
    )
    .unwrap()
    .json();
    let id = rec["id"].as_str().unwrap().to_string();
    let (token, whip) = server.token(&room, "quiet", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(1);
    publish(&opts).unwrap();
    wait_for("the recording", Duration::from_secs(20), || {
        server.get(&format!("/v1/recordings/{id}"))["state"] == "available"
    });
    std::thread::sleep(Duration::from_millis(1500));
    // In the outbox, for the record; never sent.
    let kept = server.get("/v1/events")["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["payload"]["recording_id"] == id.as_str())
        .count();
    assert!(kept >= 4, "{kept} events kept");
    let sent: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.body.contains(&id))
        .collect();
    assert!(
        sent.is_empty(),
        "{} events of a silent recording were delivered",
        sent.len()
    );
}

/// What an operator reads: a failed delivery is a WARN naming the endpoint (without its
/// query), the status and when the next attempt is; every HTTP request gets an access line
/// (method, path without its query, status, time, key prefix); a log file gets no colour.
#[test]
fn the_log_says_what_failed_and_what_was_asked_without_secrets_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("REEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")],
    );
    let receiver = Receiver::start(500);
    let url = format!("{}?token=hook-s3cr3t", receiver.url);
    create_endpoint(&server, &url, json!(["stream.recording.success"]));
    record_one(&server, 1);
    wait_for(
        "a failed delivery in the log",
        Duration::from_secs(20),
        || server.log_text().contains("webhook delivery failed"),
    );
    let log = server.log_text();
    let failed = log
        .lines()
        .find(|l| l.contains("webhook delivery failed"))
        .unwrap();
    assert!(failed.contains("WARN"), "{failed}");
    assert!(
        failed.contains(&format!("endpoint={}", receiver.url)),
        "{failed}"
    );
    assert!(failed.contains("status=500"), "{failed}");
    assert!(failed.contains("next_attempt=in "), "{failed}");
    assert!(
        !log.contains("hook-s3cr3t"),
        "the endpoint's query reached the log"
    );

    let r = http::request("GET", &server.url("/healthz?token=q-s3cr3t"), None, None).unwrap();
    assert_eq!(r.status, 200);
    server.get("/v1/rooms");
    let log = server.log_text();
    let access: Vec<&str> = log.lines().filter(|l| l.contains("reel::access")).collect();
    assert!(
        access.iter().any(|l| l.contains("method=GET")
            && l.contains("path=\"/healthz\"")
            && l.contains("status=200")
            && l.contains("key=\"-\"")),
        "{access:#?}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("path=\"/v1/rooms\"") && l.contains("key=\"(chosen key)\"")),
        "{access:#?}"
    );
    assert!(access.iter().all(|l| l.contains(" ms=")), "{access:#?}");
    assert!(
        !log.contains("q-s3cr3t"),
        "a query string reached the access log"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
}

/// `log.format = "json"`: every line an object a log shipper can read.
#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_LOG_FORMAT", "json")]);
    server.get("/v1/rooms");
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["path"] == "/v1/rooms" && l["level"] == "INFO"),
        "{log}"
    );
}

/// A receiver that accepts connections and never answers: each attempt to it lasts the
/// whole delivery timeout (10 s).
fn hanging_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/never", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    url
}

#[test]
fn a_hanging_receiver_does_not_delay_another_endpoints_webhooks() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("REEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")],
    );
    let healthy = Receiver::start(200);
    create_endpoint(&server, &healthy.url, json!([]));
    create_endpoint(&server, &hanging_receiver(), json!([]));
    // Four recordings at once: a few dozen events, each for both endpoints.
    let sessions: Vec<_> = (0..4)
        .map(|_| {
            let room = server.room(1);
            let (token, whip) = server.token(&room, "wanda", "camera");
            std::thread::spawn(move || publish(&camera(&whip, &token, 2)).unwrap().session_id)
        })
        .collect();
    for s in sessions {
        let session = s.join().unwrap();
        server.wait_assets(&session, 1, Duration::from_secs(30));
    }
    // The events that follow an asset (recording_available, …) come within a second or two.
    std::thread::sleep(Duration::from_secs(3));
    let events = server.get("/v1/events")["data"].as_array().unwrap().len();
    wait_for(
        "every event at the healthy receiver",
        Duration::from_secs(30),
        || healthy.received().len() >= events,
    );
    let mut latencies: Vec<i64> = healthy
        .received()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            r.at_ms - body["timestamp"].as_i64().unwrap()
        })
        .collect();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();
    eprintln!(
        "healthy endpoint beside a hanging one: {} deliveries, p50 {p50} ms, max {max} ms",
        latencies.len()
    );
    // The hanging receiver holds each attempt for 10 s; the healthy one waits for none.
    assert!(max < 3_000, "latencies {latencies:?}");
}
