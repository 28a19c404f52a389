//! Shared harness: the real `reel` binary on ephemeral ports in a temp dir, driven over
//! HTTP like any client, and outputs judged with ffprobe like a person would.
#![allow(dead_code)]

pub mod netns;

use reel_testkit::http;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "reel_test_admin_key_0123456789";

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One test of a binary at a time, for tests that measure timing or load the machine (a
/// composite render, twenty calls): what they judge must not depend on a parallel test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Server {
    pub child: Option<Child>,
    pub http: String,
    pub media: String,
    /// The SIPREC address (UDP and TCP).
    pub sip: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// With extra `REEL_*` settings in the environment.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(url) = postgres_database(data_dir) {
            env.push(("REEL_DATABASE_URL".into(), url));
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_reel"));
        command
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--media-port",
                "0",
                "--sip-port",
                "0",
                "--data-dir",
            ])
            .arg(data_dir.join("data"))
            .env("REEL_LOG", "info,str0m=warn")
            // Tests run side by side: RTP ports from the OS, not from a shared range.
            .env("REEL_SIPREC_RTP_PORT_MIN", "0")
            .env("REEL_SIPREC_RTP_PORT_MAX", "0")
            // On the machine's own network, tests stay on loopback: bound there, media and
            // SIP answers name 127.0.0.1 only. The default (every address of the host) is
            // tested in a network namespace of the test's own (`netns`).
            .env("REEL_MEDIA_BIND", "127.0.0.1")
            .env("REEL_SIPREC_BIND", "127.0.0.1")
            .envs(env);
        Self::launch(command, data_dir)
    }

    /// `reel serve` exactly as a new user runs it: no flag, no setting, in the directory it
    /// keeps its data in (`./data`), on the default ports. Only the admin key is given, so
    /// the harness knows it. For tests in a network namespace of their own (`netns`).
    pub fn start_as_installed(dir: &Path) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_reel"));
        command.arg("serve").current_dir(dir);
        Self::launch(command, dir)
    }

    fn launch(mut command: Command, data_dir: &Path) -> Server {
        let log = data_dir.join(format!(
            "server-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = command
            .env("REEL_ADMIN_KEY", ADMIN_KEY)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start reel");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let (http, media, sip) = parse_listening(&line).unwrap_or_else(|| {
            panic!(
                "reel did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let server = Server {
            child: Some(child),
            http,
            media,
            sip,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if http::request("GET", &self.url("/healthz"), None, None)
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("reel never became healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn get(&self, path: &str) -> Value {
        let r = http::request("GET", &self.url(path), Some(ADMIN_KEY), None).unwrap();
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let r = http::json("POST", &self.url(path), Some(ADMIN_KEY), &body).unwrap();
        assert_eq!(r.status, 201, "POST {path}: {}", r.text());
        r.json()
    }

    pub fn room(&self, empty_timeout_seconds: u64) -> String {
        let room = self.post(
            "/v1/rooms",
            json!({"name": "test", "empty_timeout_seconds": empty_timeout_seconds}),
        );
        room["id"].as_str().unwrap().to_string()
    }

    /// (token, whip_url)
    pub fn token(&self, room: &str, participant: &str, kind: &str) -> (String, String) {
        let t = self.post(
            &format!("/v1/rooms/{room}/tokens"),
            json!({"participant": participant, "kind": kind}),
        );
        (
            t["token"].as_str().unwrap().into(),
            t["whip_url"].as_str().unwrap().into(),
        )
    }

    /// Waits until the session has `n` assets and no publication is still being processed.
    pub fn wait_assets(&self, session: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let assets = self.get(&format!("/v1/assets?session_id={session}"))["data"]
                .as_array()
                .unwrap()
                .clone();
            if assets.len() >= n {
                return assets;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {n} assets in {session}, have {}: {:#}\nsession: {:#}\nlog:\n{}",
                    assets.len(),
                    json!(assets),
                    self.get(&format!("/v1/sessions/{session}")),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_session_ended(&self, session: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.get(&format!("/v1/sessions/{session}"));
            if s["state"] == "ended" {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "session {session} did not end: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn download(&self, asset: &Value, to: &Path) -> PathBuf {
        let id = asset["id"].as_str().unwrap();
        let r = http::request(
            "GET",
            &self.url(&format!("/v1/assets/{id}/download")),
            Some(ADMIN_KEY),
            None,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let format = asset["format"].as_str().unwrap();
        let expected = match format {
            "mp3" => "audio/mpeg",
            "wav" => "audio/wav",
            "ogg" => "audio/ogg",
            "m4a" => "audio/mp4",
            video => return_video(video),
        };
        assert_eq!(r.header("content-type"), Some(expected));
        assert_eq!(r.body.len() as i64, asset["size_bytes"].as_i64().unwrap());
        let path = to.join(format!("{id}.{}", asset["format"].as_str().unwrap()));
        std::fs::write(&path, &r.body).unwrap();
        path
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's resident memory in MiB (from /proc).
    pub fn rss_mib(&self) -> f64 {
        let pid = self.child.as_ref().expect("server running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib / 1024.0
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// With `REEL_TEST_DB=postgres`, every test server gets a database of its own on the
/// cluster at `REEL_TEST_POSTGRES_URL` (scripts/test starts one). The name follows the data
/// directory, so a restarted server finds its database again.
fn postgres_database(data_dir: &Path) -> Option<String> {
    if std::env::var("REEL_TEST_DB").as_deref() != Ok("postgres") {
        return None;
    }
    let admin = std::env::var("REEL_TEST_POSTGRES_URL")
        .expect("REEL_TEST_DB=postgres needs REEL_TEST_POSTGRES_URL (scripts/pg)");
    let mut hash = 0xcbf29ce484222325u64;
    for b in data_dir.to_string_lossy().bytes() {
        hash = (hash ^ b as u64).wrapping_mul(0x100000001b3);
    }
    let name = format!("reel_it_{hash:016x}");
    let exists = Command::new("psql")
        .args([
            admin.as_str(),
            "-tAc",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ])
        .output()
        .expect("psql is required for REEL_TEST_DB=postgres");
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        let out = Command::new("psql")
            .args([admin.as_str(), "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
}

fn parse_listening(line: &str) -> Option<(String, String, String)> {
    // A socket bound to every address (0.0.0.0, the default) is reached on loopback here.
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .map(|addr| addr.replace("0.0.0.0:", "127.0.0.1:"))
    };
    Some((field("http=")?, field("media=")?, field("sip=")?))
}

/// A camera + microphone publisher (test pattern and tone, 320x240) for `secs`.
pub fn camera(whip: &str, token: &str, secs: u64) -> reel_testkit::PublishOptions {
    let m = reel_testkit::media::pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut o = reel_testkit::PublishOptions::new(whip, token);
    o.video = Some(m.video);
    o.audio = Some(m.audio);
    o.duration = Duration::from_secs(secs);
    o
}

pub fn media_dir() -> PathBuf {
    // Shared across tests of one run: encoding the inputs once saves CPU.
    let dir = std::env::temp_dir().join(format!("reel-test-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Debug)]
pub struct Probe {
    pub codecs: Vec<String>,
    pub duration: f64,
    pub width: Option<u64>,
    pub height: Option<u64>,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is required (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    Probe {
        codecs: streams
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap().to_string())
            .collect(),
        duration: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        width: streams.iter().find_map(|s| s["width"].as_u64()),
        height: streams.iter().find_map(|s| s["height"].as_u64()),
    }
}

// Not every test binary decodes outputs.
#[allow(unused_imports)]
pub use reel_testkit::judge::decode;

/// The event outbox as the API shows it: (type, payload) oldest first.
pub fn events(server: &Server) -> Vec<(String, Value)> {
    server.get("/v1/events")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect()
}

fn return_video(format: &str) -> &'static str {
    match format {
        "webm" => "video/webm",
        "mp4" => "video/mp4",
        "mka" => "audio/x-matroska",
        "mkv" => "video/x-matroska",
        "json" => "application/json",
        "vtt" => "text/vtt; charset=utf-8",
        other => panic!("unexpected asset format {other}"),
    }
}

/// Fails unless `path` is valid WebVTT by the W3C validator's parser (`tests/browser`).
pub fn validate_webvtt(path: &Path) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/validate-webvtt.mjs");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(path)
        .output()
        .expect("node is required (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "invalid WebVTT: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}
