//! The Debian package (`cargo deb -p reel`, packaging/): built from this build's binary,
//! its contents and its unit's hardening checked (`systemd-analyze security --offline`),
//! then installed with apt and run the way its unit runs it, as the `reel` user with the
//! packaged settings and /var/lib/reel, recording one publisher. systemd is not PID 1 on the
//! CI machine, so the unit's ExecStart is run by hand, under `setpriv`, as its User=.
//!
//! Installing changes the machine (a package, a system user): it is done in CI
//! (`CI=true`) or with `REEL_TEST_INSTALL_PACKAGE=1`; elsewhere the test builds and checks
//! the package and says that it did not install it.

mod common;

use common::{camera, Server, ADMIN_KEY};
use reel_testkit::publish;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The .deb of the binary this test run built (no second build: `--no-build`).
fn build_package(dir: &Path) -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_reel"));
    let target_dir = binary.parent().unwrap().parent().unwrap();
    let deb = dir.join("reel.deb");
    let out = Command::new("cargo")
        .args([
            "deb",
            "-p",
            "reel",
            "--no-build",
            "--profile",
            "dev",
            "--no-strip",
            "--fast",
            "-o",
        ])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace())
        .output()
        .expect("cargo is on PATH");
    assert!(
        out.status.success(),
        "cargo deb failed (scripts/deps installs cargo-deb):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// The Debian package that ships `file` on this machine (`dpkg -S`; plugins are listed under
/// /usr/lib though GStreamer reports the merged /lib path).
fn package_of(file: &str) -> Option<String> {
    let usr = file
        .strip_prefix("/lib/")
        .map(|rest| format!("/usr/lib/{rest}"));
    [Some(file.to_string()), usr]
        .into_iter()
        .flatten()
        .find_map(|f| {
            let out = Command::new("dpkg").args(["-S", &f]).output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next()?;
            Some(first.split(':').next()?.trim().to_string())
        })
}

/// What the server loads at run time and no linker sees: every GStreamer element the
/// renderer and the transcriber make (read from their source, so the list cannot go stale)
/// and the default speech model. Each must come from a package the .deb depends on, or a
/// machine with only its Depends renders no composite labels or no transcript.
fn runtime_needs_are_in_depends(deb: &Path) {
    let depends_text = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Depends"));
    let depends: Vec<String> = depends_text
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next().map(str::to_string))
        .collect();
    let mut elements = std::collections::BTreeSet::new();
    for dir in ["crates/reel-compose/src", "crates/reel-transcribe/src"] {
        for file in std::fs::read_dir(workspace().join(dir)).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
            for part in text.split("make(\"").skip(1) {
                if let Some((name, _)) = part.split_once("\")") {
                    elements.insert(name.to_string());
                }
            }
        }
    }
    assert!(
        elements.contains("textoverlay") && elements.len() > 20,
        "{elements:?}"
    );
    let mut files: Vec<(String, String)> = vec![];
    for element in &elements {
        let out = run(Command::new("gst-inspect-1.0").arg(element));
        let file = out
            .lines()
            .find_map(|l| l.strip_prefix("  Filename"))
            .map(|f| f.trim().to_string())
            .unwrap_or_else(|| panic!("{element}: no plugin file in gst-inspect-1.0"));
        files.push((element.clone(), file));
    }
    files.push((
        "the PocketSphinx model".into(),
        "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin".into(),
    ));
    let missing: Vec<String> = files
        .iter()
        .filter_map(|(what, file)| {
            let package =
                package_of(file).unwrap_or_else(|| panic!("{what}: {file} has no package"));
            (!depends.contains(&package)).then(|| format!("{what} ({package})"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the .deb's Depends ({depends_text}) lack what the server loads at run time: {missing:?}"
    );
}

#[test]
fn the_debian_package_installs_and_records_as_its_unit_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for file in [
        "./usr/bin/reel",
        "./etc/reel/reel.toml",
        "./lib/systemd/system/reel.service",
    ] {
        assert!(contents.contains(file), "{file} missing:\n{contents}");
    }
    runtime_needs_are_in_depends(&deb);
    let control = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(
        control.contains("conffiles") && control.contains("postinst"),
        "{control}"
    );

    // The unit's hardening, as systemd scores it (0 = locked down, 10 = exposed).
    let unit = workspace().join("packaging/reel.service");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is required (apt-get install systemd)");
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for reel.service: ").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{report}"));
    eprintln!("reel.service exposure level {exposure} (systemd-analyze security)");
    assert!(exposure <= 2.0, "the unit is exposed: {exposure}\n{report}");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "User=reel",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=reel",
    ] {
        assert!(
            unit_text.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    let exec = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .to_string();

    let install = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var_os("REEL_TEST_INSTALL_PACKAGE").is_some();
    if !install {
        eprintln!(
            "package built and checked, not installed: set REEL_TEST_INSTALL_PACKAGE=1 (CI does)"
        );
        return;
    }
    assert_eq!(
        run(Command::new("id").arg("-u")).trim(),
        "0",
        "installing the package needs root"
    );
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--reinstall",
        ])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    run(Command::new("getent").args(["passwd", "reel"]));
    let uid: u32 = run(Command::new("id").args(["-u", "reel"]))
        .trim()
        .parse()
        .unwrap();
    let config = std::fs::metadata("/etc/reel/reel.toml").unwrap();
    assert_eq!(
        config.mode() & 0o777,
        0o640,
        "settings readable by root and reel only"
    );
    assert_eq!(std::fs::metadata("/var/lib/reel").unwrap().uid(), uid);

    // ExecStart as the unit runs it, on ports of its own for the test.
    let log = dir.path().join("reel-package.log");
    let mut argv = exec.split_whitespace();
    // setpriv execs the server itself (runuser forks and waits): the child killed at the
    // end is the server, which no longer outlives the suite.
    let mut child = Command::new("setpriv")
        .args(["--reuid=reel", "--regid=reel", "--init-groups", "--"])
        .arg(argv.next().unwrap())
        .args(argv)
        // On the machine's own network the test stays on loopback.
        .env("REEL_MEDIA_BIND", "127.0.0.1")
        .env("REEL_SIPREC_BIND", "127.0.0.1")
        .env("REEL_HTTP", "127.0.0.1:0")
        .env("REEL_MEDIA_PORT", "0")
        .env("REEL_SIPREC_PORT", "0")
        .env("REEL_SIPREC_RTP_PORT_MIN", "0")
        .env("REEL_SIPREC_RTP_PORT_MAX", "0")
        .env("REEL_ADMIN_KEY", ADMIN_KEY)
        .current_dir("/var/lib/reel")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap_or_else(|| {
            panic!(
                "the packaged reel did not start: {line}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .to_string();
    let server = Server {
        child: Some(child),
        http,
        media: String::new(),
        sip: String::new(),
        data_dir: PathBuf::from("/var/lib/reel"),
        log,
    };
    let room = server.room(1);
    let (token, whip) = server.token(&room, "packaged", "camera");
    let report = publish(&camera(&whip, &token, 2)).unwrap();
    let asset = server
        .wait_assets(&report.session_id, 1, Duration::from_secs(30))
        .remove(0);
    let path = asset["path"].as_str().map(PathBuf::from);
    let file = server.download(&asset, dir.path());
    let probe = common::ffprobe(&file);
    assert_eq!(probe.codecs, ["vp8", "opus"]);
    assert!((probe.duration - 2.0).abs() < 0.5, "{probe:?}");
    // What it wrote is the reel user's, under /var/lib/reel.
    let journals = std::fs::read_dir("/var/lib/reel/journals").unwrap().count();
    assert!(journals > 0);
    assert_eq!(
        std::fs::metadata("/var/lib/reel/journals").unwrap().uid(),
        uid
    );
    if let Some(path) = path {
        assert!(path.starts_with("/var/lib/reel"), "{}", path.display());
    }
    drop(server);
    // The package goes; the recordings stay (they are the customer's).
    run(Command::new("dpkg").args(["-r", "reel"]));
    assert!(Path::new("/var/lib/reel/journals").exists());
}
