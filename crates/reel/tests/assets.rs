//! Assets after recording: expiring signed links that work without an API key and refuse
//! tampering and expiry, byte ranges for seeking, and deletion.

mod common;

use common::*;
use reel_testkit::http;
use reel_testkit::media::pattern_and_tone;
use reel_testkit::{publish, PublishOptions};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn signed_links_ranges_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "olga", "camera");
    let media = pattern_and_tone(&media_dir(), 10, "320x240", "400k").unwrap();
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(2);
    let report = publish(&opts).unwrap();
    let asset = server.wait_assets(&report.session_id, 1, Duration::from_secs(20))[0].clone();
    let id = asset["id"].as_str().unwrap();

    let link = server.get(&format!("/v1/assets/{id}/presigned-url?expires_in=60"));
    let url = link["url"].as_str().unwrap();
    assert!(link["expires_at"].as_i64().unwrap() > 0);
    // A plain HTTP client, no API key: identical bytes.
    let got = http::request("GET", url, None, None).unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(sha256_hex(&got.body), asset["sha256"].as_str().unwrap());

    // Tampering and expiry.
    let tampered_sig = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let tampered_expiry = url.replace("expires=", "expires=9");
    let other_asset = url.replace(id, "ast_someoneelse");
    for bad in [
        tampered_sig.as_str(),
        tampered_expiry.as_str(),
        other_asset.as_str(),
    ] {
        let r = http::request("GET", bad, None, None).unwrap();
        assert_eq!(r.status, 403, "{bad}");
        assert_eq!(r.json()["code"], "invalid_signature");
    }
    let short = server.get(&format!("/v1/assets/{id}/presigned-url?expires_in=1"));
    std::thread::sleep(Duration::from_millis(2100));
    let r = http::request("GET", short["url"].as_str().unwrap(), None, None).unwrap();
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("link_expired"))
    );
    for bad in ["0", "604801", "soon"] {
        let r = http::request(
            "GET",
            &server.url(&format!("/v1/assets/{id}/presigned-url?expires_in={bad}")),
            Some(ADMIN_KEY),
            None,
        )
        .unwrap();
        assert_eq!(r.status, 400, "expires_in={bad}");
    }

    // Byte ranges, as a seeking player asks.
    let whole = got.body;
    let ranged =
        |spec: &str| http::request_with("GET", url, None, &[("range", spec)], None).unwrap();
    let part = ranged("bytes=100-199");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &whole[100..200]);
    let content_range = format!("bytes 100-199/{}", whole.len());
    assert_eq!(part.header("content-range"), Some(content_range.as_str()));
    let tail = ranged("bytes=-50");
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &whole[whole.len() - 50..])
    );
    assert_eq!(ranged(&format!("bytes={}-", whole.len() + 10)).status, 416);

    // Delete: the row and the file go; the link stops working.
    let file_path = dir
        .path()
        .join("data/assets")
        .join(&report.session_id)
        .join(format!("{id}.webm"));
    assert!(file_path.exists());
    assert_eq!(
        http::request(
            "DELETE",
            &server.url(&format!("/v1/assets/{id}")),
            Some(ADMIN_KEY),
            None
        )
        .unwrap()
        .status,
        204
    );
    assert!(!file_path.exists());
    assert_eq!(
        http::request(
            "GET",
            &server.url(&format!("/v1/assets/{id}")),
            Some(ADMIN_KEY),
            None
        )
        .unwrap()
        .status,
        404
    );
    assert_eq!(http::request("GET", url, None, None).unwrap().status, 404);

    let key = std::fs::metadata(dir.path().join("data/url-signing.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}
