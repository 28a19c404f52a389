//! Faults are inputs: a database locked or gone for a while, loses nothing that was
//! recorded, answers 503 with `Retry-After` (never 500) meanwhile, reports nothing done that
//! it does not hold, and leaves no connection of its pool unusable afterwards.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::publish;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Another process holding SQLite's write lock (an `sqlite3` shell, a backup) until dropped.
struct WriteLock(Child);

impl WriteLock {
    fn take(db: &Path) -> WriteLock {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys, time\n\
                 c = sqlite3.connect(sys.argv[1], timeout=20, isolation_level=None)\n\
                 c.execute('BEGIN EXCLUSIVE')\n\
                 print('locked', flush=True)\n\
                 time.sleep(3600)",
            ])
            .arg(db)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        WriteLock(child)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The session's publications, none of them still `live`, and its state.
fn assert_nothing_live(server: &Server, session: &str) {
    let s = server.wait_session_ended(session, Duration::from_secs(30));
    for p in s["participants"].as_array().unwrap() {
        assert_ne!(p["state"], "live", "{s:#}");
    }
    let recs = server.get(&format!("/v1/recordings?session_id={session}"))["data"].clone();
    for r in recs.as_array().unwrap() {
        assert_eq!(
            r["state"],
            "available",
            "{r:#}\nlog:\n{}",
            server.log_text()
        );
    }
}

/// Every event once: no (type, payload) pair twice.
fn assert_events_once(server: &Server) {
    let evs = events(server);
    let mut seen = std::collections::HashSet::new();
    for (kind, payload) in &evs {
        assert!(
            seen.insert(format!("{kind} {payload}")),
            "{kind} sent twice: {payload}"
        );
    }
}

/// A new publisher after the fault, recorded whole: the pool has no poisoned connection.
fn assert_new_publisher_recorded(server: &Server) {
    let room = server.room(1);
    let (token, whip) = server.token(&room, "late", "camera");
    let report = publish(&camera(&whip, &token, 3)).expect("a publisher after the fault");
    let asset = server.wait_assets(&report.session_id, 1, Duration::from_secs(30))[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let probe = ffprobe(&server.download(&asset, dir.path()));
    assert!(probe.duration > 2.0, "{probe:?}");
}

#[test]
fn an_sqlite_lock_held_30s_while_two_participants_leave_loses_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let publishers: Vec<_> = ["ana", "ben"]
        .into_iter()
        .map(|name| {
            let (token, whip) = server.token(&room, name, "camera");
            std::thread::spawn(move || publish(&camera(&whip, &token, 10)).expect("publish"))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));

    let lock = WriteLock::take(&dir.path().join("data/reel.db"));
    let locked_at = Instant::now();
    // Both leave, and the session ends, while the lock is held.
    let reports: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let session = reports[0].session_id.clone();
    // The API says "later", not "broken".
    let r = http::request(
        "POST",
        &server.url("/v1/rooms"),
        Some(ADMIN_KEY),
        Some(("application/json", b"{}")),
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "unavailable");
    assert!(r.header("retry-after").is_some());
    std::thread::sleep(Duration::from_secs(30).saturating_sub(locked_at.elapsed()));
    drop(lock);

    let assets = server.wait_assets(&session, 2, Duration::from_secs(60));
    let out = tempfile::tempdir().unwrap();
    for (asset, report) in assets.iter().zip(&reports) {
        let probe = ffprobe(&server.download(asset, out.path()));
        let sent = report.sent_for.as_secs_f64();
        assert!(
            (probe.duration - sent).abs() < 1.5,
            "{} s recorded of {sent} s sent: {asset:#}",
            probe.duration
        );
    }
    assert_nothing_live(&server, &session);
    assert_events_once(&server);
    assert!(
        server
            .log_text()
            .contains("the database took every kept change"),
        "{}",
        server.log_text()
    );
    assert_new_publisher_recorded(&server);
}

/// A PostgreSQL cluster of this test's own, so it can be stopped without touching others.
struct Postgres {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let status = as_postgres(&format!("{}/pg_ctl", self.bin))
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?}");
    }

    fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (scripts/deps installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin").display().to_string())
            .max()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if is_root() {
            let _ = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status();
        }
        let status = as_postgres(&format!("{bin}/initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb");
        let pg = Postgres { bin, dir, port };
        pg.run();
        pg
    }

    fn run(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-w", "-o", &opts, "start"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(&format!("{}/pg_ctl", self.bin))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// PostgreSQL refuses to run as root.
fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

#[test]
fn postgresql_stopped_for_60s_while_two_participants_leave_loses_nothing() {
    let _serial = serial();
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_DATABASE_URL", &pg.url())]);
    let room = server.room(1);
    let publishers: Vec<_> = ["ana", "ben"]
        .into_iter()
        .map(|name| {
            let (token, whip) = server.token(&room, name, "camera");
            std::thread::spawn(move || publish(&camera(&whip, &token, 10)).expect("publish"))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));

    pg.pg_ctl(&["-m", "fast", "-w", "stop"]);
    let stopped_at = Instant::now();
    let reports: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let session = reports[0].session_id.clone();
    let r = http::request("GET", &server.url("/v1/rooms"), Some(ADMIN_KEY), None).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("retry-after").is_some());
    std::thread::sleep(Duration::from_secs(60).saturating_sub(stopped_at.elapsed()));
    pg.run();

    let assets = server.wait_assets(&session, 2, Duration::from_secs(90));
    let out = tempfile::tempdir().unwrap();
    for (asset, report) in assets.iter().zip(&reports) {
        let probe = ffprobe(&server.download(asset, out.path()));
        let sent = report.sent_for.as_secs_f64();
        assert!(
            (probe.duration - sent).abs() < 1.5,
            "{} s recorded of {sent} s sent: {asset:#}",
            probe.duration
        );
    }
    assert_nothing_live(&server, &session);
    assert_events_once(&server);
    assert_new_publisher_recorded(&server);
}
