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

/// Camera publishers of `secs` each, on threads.
fn publishers(
    server: &Server,
    room: &str,
    names: &[&str],
    secs: u64,
) -> Vec<std::thread::JoinHandle<reel_testkit::PublishReport>> {
    names
        .iter()
        .map(|name| {
            let (token, whip) = server.token(room, name, "camera");
            std::thread::spawn(move || publish(&camera(&whip, &token, secs)).expect("publish"))
        })
        .collect()
}

/// Each asset plays as long as its publisher sent (within 1.5 s).
fn assert_recorded_as_sent(
    server: &Server,
    assets: &[serde_json::Value],
    reports: &[reel_testkit::PublishReport],
) {
    let out = tempfile::tempdir().unwrap();
    for (asset, report) in assets.iter().zip(reports) {
        let probe = ffprobe(&server.download(asset, out.path()));
        let sent = report.sent_for.as_secs_f64();
        assert!(
            (probe.duration - sent).abs() < 1.5,
            "{} s recorded of {sent} s sent: {asset:#}",
            probe.duration
        );
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
    let publishers = publishers(&server, &room, &["ana", "ben"], 10);
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
    let released = Instant::now();

    let assets = server.wait_assets(&session, 2, Duration::from_secs(60));
    eprintln!(
        "SQLite lock held {:.1} s: both assets registered {:.1} s after its release",
        released.duration_since(locked_at).as_secs_f64(),
        released.elapsed().as_secs_f64()
    );
    assert_recorded_as_sent(&server, &assets, &reports);
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
    let publishers = publishers(&server, &room, &["ana", "ben"], 10);
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
    let restarted = Instant::now();

    let assets = server.wait_assets(&session, 2, Duration::from_secs(90));
    eprintln!(
        "PostgreSQL stopped {:.1} s: both assets registered {:.1} s after its restart",
        restarted.duration_since(stopped_at).as_secs_f64(),
        restarted.elapsed().as_secs_f64()
    );
    assert_recorded_as_sent(&server, &assets, &reports);
    assert_nothing_live(&server, &session);
    assert_events_once(&server);
    assert_new_publisher_recorded(&server);
}

/// A tmpfs of the test's own, mounted on `path` (root only: CI runs as root) and unmounted
/// when dropped: a disk the test can fill.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mb: u64) -> Tmpfs {
        assert!(
            is_root(),
            "this test mounts a tmpfs: run it as root (CI does)"
        );
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Tmpfs(path.to_path_buf())
    }

    /// Writes a file until the disk refuses more; returns it (removing it frees the space).
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0x5a; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let mut small = vec![0x5a; 4096];
        while !small.is_empty() {
            if f.write_all(&small).is_err() {
                small.truncate(small.len() / 2);
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every API answer a client would make during the fault: never a 500.
fn api_answers(server: &Server, session: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (method, path, body) in [
        ("GET", "/v1/rooms".to_string(), None),
        ("GET", format!("/v1/sessions/{session}"), None),
        ("GET", format!("/v1/assets?session_id={session}"), None),
        (
            "POST",
            "/v1/rooms".to_string(),
            Some(("application/json", &b"{}"[..])),
        ),
        ("GET", "/healthz".to_string(), None),
    ] {
        let r = http::request(method, &server.url(&path), Some(ADMIN_KEY), body).unwrap();
        assert!(
            r.status < 500 || r.status == 503,
            "{method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        statuses.push(r.status);
    }
    statuses
}

#[test]
fn a_full_disk_for_30s_during_a_meeting_truncates_marks_and_resumes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), 96);
    let server = Server::start_with(dir.path(), &[("REEL_MIN_FREE_DISK_MB", "8")]);
    let room = server.room(1);
    let publishers = publishers(&server, &room, &["ana", "ben", "cy"], 45);
    std::thread::sleep(Duration::from_secs(8));
    let session = server.get(&format!("/v1/sessions?room_id={room}"))["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (token, whip) = server.token(&room, "dee", "camera");
    let filler = disk.fill();
    let full_at = Instant::now();
    // A newcomer is refused while the disk is full, with a reason and a time to retry.
    let refused = publish(&camera(&whip, &token, 2)).unwrap_err();
    assert!(
        refused.contains("503") && refused.contains("insufficient_storage"),
        "{refused}"
    );
    let mut healthz_down = false;
    while full_at.elapsed() < Duration::from_secs(30) {
        let statuses = api_answers(&server, &session);
        healthz_down |= *statuses.last().unwrap() == 503;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(healthz_down, "/healthz never said the disk was full");
    std::fs::remove_file(&filler).unwrap();
    let freed_at = Instant::now();

    // After the space returns: a newcomer recorded whole.
    std::thread::sleep(Duration::from_secs(2));
    let late = std::thread::spawn(move || publish(&camera(&whip, &token, 10)).expect("publish"));
    let mut reports: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    reports.push(late.join().unwrap());
    assert_eq!(
        http::request("GET", &server.url("/healthz"), None, None)
            .unwrap()
            .status,
        200
    );

    let assets = server.wait_assets(&session, 4, Duration::from_secs(90));
    let out = tempfile::tempdir().unwrap();
    let gap_s = freed_at.duration_since(full_at).as_secs_f64();
    for asset in &assets {
        let who = asset["participant"].as_str().unwrap();
        let file = server.download(asset, out.path());
        let probe = ffprobe(&file);
        // Every frame decodes: the gap is a gap, not corruption.
        let (errors, _) = decode(&file);
        assert!(errors.is_empty(), "{who}: {errors}");
        let details = &asset["details"];
        eprintln!(
            "{who}: {:.1} s recorded, truncated {}, missing {}",
            probe.duration, details["truncated"], details["missing"]
        );
        if who == "dee" {
            assert!(details["truncated"].is_null(), "{asset:#}");
            assert!((probe.duration - 10.0).abs() < 1.5, "{probe:?}");
            continue;
        }
        // The media before and after the fault is there; the fault's 30 s are marked.
        assert!(probe.duration > 40.0, "{who}: {probe:?}");
        assert_eq!(details["truncated"], true, "{asset:#}");
        assert_eq!(details["truncation_code"], "disk_full");
        let missing: f64 = details["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["to_ms"].as_i64().unwrap() - m["from_ms"].as_i64().unwrap()) as f64)
            .sum::<f64>()
            / 1000.0;
        assert!(
            (gap_s - 1.0..=gap_s + 2.5).contains(&missing),
            "{who}: {missing} s marked missing of a {gap_s:.1} s fault"
        );
        let from = details["missing"][0]["from_ms"].as_i64().unwrap() as f64 / 1000.0;
        assert!(
            (6.0..=11.0).contains(&from),
            "{who}: the gap starts at {from} s"
        );
    }
    // Their events say so too.
    let truncated = events(&server)
        .into_iter()
        .filter(|(t, p)| t == "stream.recording.success" && p["truncated"] == true)
        .count();
    assert_eq!(truncated, 3);
    assert_nothing_live(&server, &session);
}

#[test]
fn a_lost_database_is_noticed_while_running_and_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "ana", "camera");
    let report = publish(&camera(&whip, &token, 2)).unwrap();
    server.wait_assets(&report.session_id, 1, Duration::from_secs(30));

    // Unlinked under the running server: /healthz says so.
    let data = dir.path().join("data");
    for f in ["reel.db", "reel.db-wal", "reel.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let r = http::request("GET", &server.url("/healthz"), None, None).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["database"]["ok"], false, "{body:#}");
    assert!(
        body["database"]["error"]
            .as_str()
            .unwrap()
            .contains("removed or replaced"),
        "{body:#}"
    );
    server.stop();

    // A restart on the empty database it would create, beside the journals: refused.
    let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--sip-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("REEL_MEDIA_BIND", "127.0.0.1")
        .env("REEL_SIPREC_BIND", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reel started on an empty database beside earlier journals");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(!status.success());
    assert!(said.contains("database was lost or replaced"), "{said}");
}
