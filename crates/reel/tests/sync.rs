//! A/V sync measured, not assumed: a source with a white flash and a 1 kHz beep at the same
//! instants is published over WHIP; in the recorded `regular` asset, each flash's first
//! bright frame and its beep's onset must be within 40 ms.

mod common;

use common::*;
use reel_testkit::judge::av_offsets;
use reel_testkit::media::flash_and_beep;
use reel_testkit::{publish, PublishOptions};
use std::time::Duration;

#[test]
fn flash_and_beep_stay_within_40_ms() {
    let dir = tempfile::tempdir().unwrap();
    let media = flash_and_beep(dir.path(), 6, 1.0, 2.0).unwrap();
    let server = Server::start(dir.path());
    let room = server.room(1);
    let (token, whip) = server.token(&room, "sync", "camera");
    let mut opts = PublishOptions::new(&whip, &token);
    opts.video = Some(media.video);
    opts.audio = Some(media.audio);
    opts.duration = Duration::from_secs(6);
    let report = publish(&opts).unwrap();
    let assets = server.wait_assets(&report.session_id, 1, Duration::from_secs(20));
    assert_eq!(assets[0]["details"]["sync"], "sender_report");
    let file = server.download(&assets[0], dir.path());
    let offsets = av_offsets(&file);
    eprintln!("A/V offsets (audio − video), seconds: {offsets:?}");
    assert!(offsets.len() >= 2);
    for o in &offsets {
        assert!(
            o.abs() <= 0.040,
            "flash/beep offset {o} s exceeds 40 ms: {offsets:?}"
        );
    }
}
