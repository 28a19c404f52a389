//! The operator CLI against a running server: same API, same errors, real files.

mod common;

use common::*;
use reel_testkit::media::pattern_and_tone;
use reel_testkit::{publish, PublishOptions};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

fn reel(server: &Server, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reel"));
    cmd.args(args)
        .env("REEL_SERVER", format!("http://{}", server.http))
        .env_remove("REEL_API_KEY");
    if let Some(key) = key {
        cmd.env("REEL_API_KEY", key);
    }
    cmd.output().unwrap()
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_cli_drives_a_recording_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = Some(ADMIN_KEY);
    let room = ok_json(reel(
        &server,
        key,
        &[
            "rooms",
            "create",
            "--name",
            "desk",
            "--empty-timeout-seconds",
            "1",
        ],
    ));
    let room_id = room["id"].as_str().unwrap();
    let token = ok_json(reel(
        &server,
        key,
        &["rooms", "token", room_id, "--participant", "rita"],
    ));
    assert_eq!(
        ok_json(reel(&server, key, &["rooms", "list"]))["data"][0]["name"],
        "desk"
    );

    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(
        token["whip_url"].as_str().unwrap(),
        token["token"].as_str().unwrap(),
    );
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(2);
    let report = publish(&opts).unwrap();
    server.wait_assets(&report.session_id, 1, Duration::from_secs(20));

    let sessions = ok_json(reel(
        &server,
        key,
        &["sessions", "list", "--room-id", room_id],
    ));
    assert_eq!(sessions["data"][0]["id"], report.session_id.as_str());
    let assets = ok_json(reel(
        &server,
        key,
        &[
            "assets",
            "list",
            "--session-id",
            &report.session_id,
            "--asset-type",
            "regular",
        ],
    ));
    let asset = assets["data"][0]["id"].as_str().unwrap();
    let file = dir.path().join("rita.webm");
    let out = reel(
        &server,
        key,
        &["assets", "download", asset, "-o", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ffprobe(&file).codecs, ["vp8", "opus"]);
    let link = ok_json(reel(
        &server,
        key,
        &["assets", "link", asset, "--expires-in", "60"],
    ));
    assert!(link["url"].as_str().unwrap().contains("/download/"));

    // Recordings from the terminal: once the session has ended, a new one waits for the next.
    server.wait_session_ended(&report.session_id, Duration::from_secs(10));
    let rec = ok_json(reel(&server, key, &["recordings", "start", room_id]));
    assert_eq!(rec["state"], "starting");
    let id = rec["id"].as_str().unwrap();
    let listed = ok_json(reel(
        &server,
        key,
        &[
            "recordings",
            "list",
            "--room-id",
            room_id,
            "--state",
            "starting",
        ],
    ));
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let refused = reel(&server, key, &["recordings", "pause", id]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_state (409)"));
    assert_eq!(
        ok_json(reel(&server, key, &["recordings", "stop", id]))["state"],
        "failed"
    );
    assert_eq!(
        ok_json(reel(&server, key, &["recordings", "get", id]))["state"],
        "failed"
    );

    // Errors come back as the API's code, with a failing exit status.
    let refused = reel(
        &server,
        key,
        &["webhooks", "create", "http://127.0.0.1:9/hook"],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_field"));
    let wrong = reel(&server, Some("reel_wrong"), &["rooms", "list"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unauthorized (401)"));
    let none = reel(&server, None, &["rooms", "list"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("REEL_API_KEY"));
    assert!(!reel(&server, key, &["rooms", "get", "room_nope"])
        .status
        .success());
}

/// `reel journal inspect --records … | head -n 2`: the pipe closes early; the listing ends
/// quietly with success instead of a panic on the broken pipe.
#[test]
fn journal_inspect_into_a_closed_pipe_ends_quietly() {
    use reel_media::journal::{JournalHeader, JournalWriter, Record};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.rjnl");
    let header = JournalHeader {
        track_id: "trk_x".into(),
        publication_id: "pub_x".into(),
        session_id: "ses_x".into(),
        room_id: "room_x".into(),
        participant: "x".into(),
        kind: reel_core::MediaKind::Audio,
        codec: reel_core::Codec::Opus,
        clock_rate: 48_000,
        mid: "0".into(),
        rid: None,
        created_unix_us: 1,
    };
    let mut w = JournalWriter::create(Vec::new(), &header).unwrap();
    // Far more than a pipe buffer of lines, so the writer meets the closed pipe.
    for i in 0..200_000u64 {
        w.append(&Record::Frame {
            rtp_time: i * 960,
            arrival_unix_us: i as i64 * 20_000,
            flags: 1,
            data: vec![0; 3],
        })
        .unwrap();
    }
    std::fs::write(&path, w.into_inner()).unwrap();
    // The reader takes a few bytes and closes the pipe, as `head` does.
    let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["journal", "inspect", "--records"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut first = [0u8; 16];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
    }
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The admin key is never lost: a first start that fails (its HTTP port is taken) makes no
/// key, and the next start prints one that works.
#[test]
fn a_failed_first_start_makes_no_admin_key_and_the_next_start_prints_one() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let serve = |http: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reel"));
        cmd.args([
            "serve",
            "--http",
            http,
            "--media-port",
            "0",
            "--sip-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("REEL_ADMIN_KEY")
        .env("REEL_SIPREC_RTP_PORT_MIN", "0")
        .env("REEL_SIPREC_RTP_PORT_MAX", "0");
        cmd
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let failed = serve(&taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(!stdout.contains("admin API key"), "{stdout}");
    drop(taken);

    let mut child = serve("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let key = first
        .split_once("store it now): ")
        .map(|(_, k)| k.trim().to_string())
        .unwrap_or_else(|| panic!("no admin key printed: {first}"));
    let listening = lines.next().unwrap().unwrap();
    let http = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap()
        .to_string();
    let r =
        reel_testkit::http::request("GET", &format!("http://{http}/v1/rooms"), Some(&key), None)
            .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The README's request examples, run as written against a live server: its `curl` lines
/// (and `reel journal inspect`) with the placeholders (`room_…`, `ses_…`, `ast_…`, …) filled
/// with what the earlier ones returned, each answer checked against the `# →` line after it.
#[test]
fn the_readme_request_examples_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    // The shell blocks of "Using it": commands (continued lines joined) and expected answers.
    let section = readme.split("## Using it").nth(1).unwrap();
    let section = section.split("\n### ").next().unwrap();
    let mut steps: Vec<(String, Option<String>)> = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(expected) = line.strip_prefix("# → ") {
            steps.last_mut().expect("an answer follows a command").1 = Some(expected.to_string());
            continue;
        }
        let code = line.split("   #").next().unwrap().trim_end();
        if code.starts_with("KEY=") || code.is_empty() {
            continue;
        }
        pending.push_str(code.trim_end_matches('\\'));
        if !code.ends_with('\\') {
            steps.push((std::mem::take(&mut pending), None));
        }
    }
    assert!(steps.len() >= 7, "{steps:#?}");

    let port = server.http.rsplit(':').next().unwrap().to_string();
    let mut fill: Vec<(String, String)> = vec![
        ("localhost:8080".into(), server.http.clone()),
        ("127.0.0.1:8080".into(), server.http.clone()),
        ("$KEY".into(), ADMIN_KEY.into()),
        (
            "data/journals".into(),
            server.data_dir.join("data/journals").display().to_string(),
        ),
    ];
    let apply = |text: &str, fill: &[(String, String)]| {
        fill.iter()
            .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
    };
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_reel"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut published = false;
    for (command, expected) in steps {
        // The examples after the token need a recorded publication: publish with it first.
        if command.contains("ses_…") && !published {
            let token = fill.iter().find(|(k, _)| k == "pt_…").unwrap().1.clone();
            let whip = fill
                .iter()
                .find(|(k, _)| k == "whip_url")
                .unwrap()
                .1
                .clone();
            let report = publish(&camera(&whip, &token, 2)).unwrap();
            let asset = server
                .wait_assets(&report.session_id, 1, Duration::from_secs(20))
                .remove(0);
            let session = server.get(&format!("/v1/sessions/{}", report.session_id));
            let track = &session["participants"][0]["tracks"][0];
            fill.push(("ses_…".into(), report.session_id.clone()));
            fill.push(("ast_…".into(), asset["id"].as_str().unwrap().into()));
            fill.push((
                "pub_…".into(),
                session["participants"][0]["id"].as_str().unwrap().into(),
            ));
            fill.push(("trk_…".into(), track["id"].as_str().unwrap().into()));
            published = true;
        }
        let run = apply(&command, &fill);
        assert!(!run.contains('…'), "a placeholder nothing filled: {run}");
        let out = Command::new("sh")
            .args(["-c", &run])
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{run}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if run.starts_with("curl") && !run.contains(" -o ") {
            let got: Value =
                serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{run}: {e}: {stdout}"));
            assert!(got.get("code").is_none(), "{run}: an error: {got}");
            if let Some(expected) = expected {
                // `"key":value` pairs of the answer line: present, and equal (or, ending in
                // `…`, starting the same).
                let expected = apply(&expected, &fill).replace(":8080", &format!(":{port}"));
                for pair in expected.trim_matches(|c| c == '{' || c == '}').split(", ") {
                    let Some((k, v)) = pair.split_once(':') else {
                        continue;
                    };
                    let k = k.trim().trim_matches('"');
                    let v = v.trim().trim_matches('"');
                    let actual = match &got[k] {
                        Value::String(s) => s.clone(),
                        Value::Null => panic!("{run}: no {k} in {got}"),
                        other => other.to_string(),
                    };
                    match v.strip_suffix('…') {
                        Some(prefix) => assert!(
                            actual.starts_with(prefix),
                            "{run}: {k} = {actual}, documented {v}"
                        ),
                        None => assert_eq!(actual, v, "{run}: {k}"),
                    }
                    // What this answer names fills the later examples' placeholders.
                    if v.ends_with('…') {
                        fill.insert(0, (v.to_string(), actual.clone()));
                    }
                }
                if let Some(url) = got["whip_url"].as_str() {
                    fill.push(("whip_url".into(), url.into()));
                }
            }
        }
        if let Some(file) = run
            .split(" -o ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            let probe = ffprobe(&dir.path().join(file));
            assert!(probe.duration > 1.5, "{file}: {probe:?}");
        }
    }
    assert!(published);
}
