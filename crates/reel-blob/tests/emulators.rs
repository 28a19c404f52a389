//! `reel-blob` against real object stores started here: SeaweedFS's S3 gateway and Azurite.
//! Small and multipart (> 20 MiB) uploads are verified, fetched back through the presigned
//! URL with a plain HTTP client, and compared byte for byte; bad credentials and missing
//! buckets give their codes with no secret in the message.

use reel_blob::{Destination, Settings, Store};
use reel_testkit::emulators::{self, Azurite, SeaweedS3};
use std::time::Duration;

fn data(len: usize, seed: u32) -> Vec<u8> {
    // Incompressible enough and different per test: a small LCG.
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn fetch(url: &str) -> Vec<u8> {
    let mut r = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.body_mut()
        .with_config()
        .limit(100 << 20)
        .read_to_vec()
        .unwrap()
}

async fn round_trip(store: &Store, dir: &std::path::Path, key: &str, len: usize) -> &'static str {
    let bytes = data(len, len as u32);
    let local = dir.join(format!("{len}.bin"));
    std::fs::write(&local, &bytes).unwrap();
    let up = store.upload_file(key, &local).await.unwrap();
    assert_eq!(up.size, len as u64);
    let url = store
        .presign(key, Duration::from_secs(600))
        .await
        .unwrap()
        .expect("a provider URL");
    let got = tokio::task::spawn_blocking(move || fetch(&url))
        .await
        .unwrap();
    assert!(got == bytes, "{key}: {} bytes back, differ", got.len());
    up.verified_by
}

fn settings() -> Settings {
    Settings {
        allow_http: true,
        request_timeout: Duration::from_secs(10),
        part_size: 5 << 20,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_verify_presign_and_refuse_bad_credentials() {
    let s3 = tokio::task::spawn_blocking(|| SeaweedS3::start(&["rec"]))
        .await
        .unwrap();
    let s = Settings {
        s3_endpoint: Some(s3.endpoint.clone()),
        s3_virtual_hosted: false,
        ..settings()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = Destination::parse("s3://rec/calls/").unwrap();
    let creds = format!(
        "{}:{}:{}",
        emulators::S3_ACCESS_KEY,
        emulators::S3_SECRET_KEY,
        emulators::S3_REGION
    );
    let store = Store::open(&dest, Some(&creds), &s).unwrap();
    let small = round_trip(&store, tmp.path(), "calls/small.webm", 300_000).await;
    let large = round_trip(&store, tmp.path(), "calls/large.webm", 21 << 20).await;
    println!("S3 verified by: small {small}, multipart {large}");
    store.delete("calls/small.webm").await.unwrap();

    // gs:// with HMAC keys speaks GCS's S3-interoperable XML API: the same protocol, so the
    // S3 server stands in for storage.googleapis.com here.
    let gcs = Settings {
        gcs_endpoint: s3.endpoint.clone(),
        ..s.clone()
    };
    let gs_dest = Destination::parse("gs://rec/interop/").unwrap();
    let hmac = format!("{}:{}", emulators::S3_ACCESS_KEY, emulators::S3_SECRET_KEY);
    let gs = Store::open(&gs_dest, Some(&hmac), &gcs).unwrap();
    let via = round_trip(&gs, tmp.path(), "interop/gs.webm", 1_000_000).await;
    println!("gs:// (HMAC) verified by {via}");

    let wrong = format!(
        "{}:not-the-secret:{}",
        emulators::S3_ACCESS_KEY,
        emulators::S3_REGION
    );
    let bad = Store::open(&dest, Some(&wrong), &s).unwrap();
    std::fs::write(tmp.path().join("x"), b"x").unwrap();
    let e = bad
        .upload_file("calls/x.webm", &tmp.path().join("x"))
        .await
        .unwrap_err();
    println!("wrong secret: {e}");
    assert_eq!(e.code(), "destination_forbidden", "{e}");
    assert!(!e.is_transient());
    assert!(!e.to_string().contains("not-the-secret"));

    let nobucket = Store::open(
        &Destination::parse("s3://no-such-bucket/").unwrap(),
        Some(&creds),
        &s,
    )
    .unwrap();
    let e = nobucket
        .upload_file("x.webm", &tmp.path().join("x"))
        .await
        .unwrap_err();
    println!("no bucket: {e}");
    assert_eq!(e.code(), "destination_bucket_not_found", "{e}");
    assert!(!e.to_string().contains(emulators::S3_SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_uploads_verify_presign_and_refuse_a_wrong_key() {
    let az = tokio::task::spawn_blocking(Azurite::start).await.unwrap();
    az.create_container("rec");
    let s = Settings {
        azure_endpoint: Some(az.endpoint_template.clone()),
        ..settings()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = Destination::parse(&format!(
        "azure://{}/rec/meetings/",
        emulators::AZURE_ACCOUNT
    ))
    .unwrap();
    let store = Store::open(&dest, Some(emulators::AZURE_KEY), &s).unwrap();
    let small = round_trip(&store, tmp.path(), "meetings/small.webm", 300_000).await;
    let large = round_trip(&store, tmp.path(), "meetings/large.webm", 21 << 20).await;
    assert_eq!((small, large), ("read_back", "read_back"));

    use base64::Engine;
    let wrong_key = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let bad = Store::open(&dest, Some(&wrong_key), &s).unwrap();
    std::fs::write(tmp.path().join("x"), b"x").unwrap();
    let e = bad
        .upload_file("meetings/x.webm", &tmp.path().join("x"))
        .await
        .unwrap_err();
    println!("wrong key: {e}");
    assert_eq!(e.code(), "destination_forbidden", "{e}");
    assert!(!e.to_string().contains(&wrong_key));
}
