//! The picture stays right when the network does not: a loss in the middle of a group of
//! pictures freezes the last good frame until the next keyframe (never a frame decoded from
//! missing references), and a resolution change mid-stream keeps the picture's aspect inside
//! its tile. Journals are written here as ingest writes them, with the loss in them.

use reel_compose::layout::{Layout, SourceKind};
use reel_compose::render::{
    render, Job, Output, Participant, Timeline, VideoFormat, VideoSettings,
};
use reel_core::{Codec, MediaKind};
use reel_media::journal::{flags, JournalHeader, JournalWriter, Record};
use reel_testkit::judge::{decode, frame_rgb, near, pixel};
use std::path::{Path, PathBuf};
use std::process::Command;

const T0: i64 = 1_700_000_000_000_000;

/// A solid colour whose hue turns 120° a second (every frame differs from the last), VP8,
/// a keyframe every second.
fn turning_colour(dir: &Path, size: &str, seconds: u32) -> PathBuf {
    let out = dir.join(format!("turning-{size}.ivf"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "color=c=red:s={size}:r=30,hue=h=t*120,format=yuv420p"
        ))
        .args(["-t", &seconds.to_string(), "-c:v", "libvpx", "-g", "30"])
        .args(["-b:v", "500k", "-deadline", "realtime", "-cpu-used", "8"])
        .arg(&out)
        .status()
        .expect("ffmpeg is required (apt-get install ffmpeg)");
    assert!(status.success());
    out
}

/// The journal header of a publication's VP8 track.
fn vp8_header(publication: &str, participant: &str) -> JournalHeader {
    JournalHeader {
        track_id: format!("trk_{publication}"),
        publication_id: publication.into(),
        session_id: "ses_picture".into(),
        room_id: "room_picture".into(),
        participant: participant.into(),
        kind: MediaKind::Video,
        codec: Codec::Vp8,
        clock_rate: 90_000,
        mid: "0".into(),
        rid: None,
        created_unix_us: 0,
    }
}

/// The colour at the centre of frame `n` (at 30 fps) of a source file.
fn source_colour(ivf: &Path, n: u32, w: usize, h: usize) -> (u8, u8, u8) {
    pixel(
        &frame_rgb(ivf, n as f64 / 30.0 - 0.005, w, h),
        w,
        w / 2,
        h / 2,
    )
}

#[test]
fn loss_freezes_the_last_good_frame_and_a_resolution_change_keeps_the_aspect() {
    let dir = tempfile::tempdir().unwrap();
    let first = turning_colour(dir.path(), "320x240", 6); // 4:3, 0 s .. 6 s
    let second = turning_colour(dir.path(), "640x360", 3); // 16:9, 6 s .. 9 s
    let journal = dir.path().join("video.rjnl");
    let mut w = JournalWriter::create(
        std::fs::File::create(&journal).unwrap(),
        &vp8_header("pub_a", "alice"),
    )
    .unwrap();
    // Frames 75..=84 (2.5 s .. 2.8 s) are lost; 85 arrives flagged, in the middle of the
    // group of pictures that starts at the keyframe 60 and ends before the keyframe 90.
    let (lost, after_loss) = (75..=84u64, 85u64);
    let mut n = 0u64;
    for (ivf, from_us) in [(&first, 0i64), (&second, 6_000_000)] {
        let file = reel_media::ivf::parse(&std::fs::read(ivf).unwrap()).unwrap();
        for f in &file.frames {
            let us = from_us
                + f.pts as i64 * 1_000_000 * file.timebase_num as i64 / file.timebase_den as i64;
            if !lost.contains(&n) {
                let mut fl = 0;
                if reel_media::codec::is_keyframe(Codec::Vp8, &f.data) {
                    fl |= flags::KEYFRAME;
                }
                if n == after_loss {
                    fl |= flags::DISCONTINUITY;
                }
                w.append(&Record::Frame {
                    rtp_time: (us * 90 / 1000) as u64 + 1_000_000,
                    arrival_unix_us: T0 + us,
                    flags: fl,
                    data: f.data.clone(),
                })
                .unwrap();
            }
            n += 1;
        }
    }
    drop(w);

    let out = dir.path().join("out.mp4");
    let job = Job {
        participants: vec![Participant {
            id: "pub_a".into(),
            participant: "alice".into(),
            name: "alice".into(),
            kind: SourceKind::Camera,
            video: Some(journal),
            audio: None,
        }],
        timeline: Timeline {
            from_unix_us: T0,
            to_unix_us: T0 + 9_000_000,
            pauses: vec![],
        },
        output: Output::Video(VideoSettings {
            format: VideoFormat::Mp4,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 4000,
            layouts: vec![(0, Layout::Grid)],
            labels: false,
            background: 0,
            rec_badge: false,
        }),
        path: out.clone(),
    };
    render(&job).unwrap();
    let (complaints, frames) = decode(&out);
    assert!(complaints.is_empty(), "{complaints}");
    assert!((265..=275).contains(&frames), "{frames} frames");

    // One 4:3 camera alone: a 960x720 tile at x = 160. Its centre shows the source's colour.
    let centre = |t: f64| pixel(&frame_rgb(&out, t, 1280, 720), 1280, 640, 360);
    let last_good = source_colour(&first, 74, 320, 240);
    let lost_colour = source_colour(&first, 87, 320, 240);
    assert!(
        !near(last_good, lost_colour, 40),
        "the test needs distinct colours: {last_good:?} {lost_colour:?}"
    );
    // Before the loss: in step with the source.
    let before = centre(2.0);
    assert!(
        near(before, source_colour(&first, 60, 320, 240), 30),
        "{before:?}"
    );
    // From the loss to the next keyframe (3.0 s): frozen on frame 74.
    for t in [2.6, 2.75, 2.95] {
        let c = centre(t);
        assert!(
            near(c, last_good, 30),
            "at {t} s {c:?}, last good {last_good:?}"
        );
    }
    // From the keyframe on: in step again.
    let after = centre(3.5);
    assert!(
        near(after, source_colour(&first, 105, 320, 240), 30),
        "{after:?}"
    );

    // Until 6 s the 4:3 picture fills the tile's height; then the 16:9 one is letterboxed
    // inside the same tile (960x540 at y = 90), not stretched.
    let f = frame_rgb(&out, 5.0, 1280, 720);
    assert!(!near(pixel(&f, 1280, 640, 40), (0, 0, 0), 30));
    let f = frame_rgb(&out, 7.5, 1280, 720);
    let inside = source_colour(&second, 45, 640, 360);
    for (y, want) in [
        (40, (0, 0, 0)),
        (120, inside),
        (360, inside),
        (600, inside),
        (680, (0, 0, 0)),
    ] {
        let c = pixel(&f, 1280, 640, y);
        assert!(near(c, want, 30), "y {y}: {c:?}, want {want:?}");
    }
}

/// A solid colour for `seconds` (VP8, 30 fps), journaled as ingest writes it.
fn solid_journal(dir: &Path, id: &str, colour: &str, size: &str, seconds: u32) -> PathBuf {
    let ivf = dir.join(format!("{id}.ivf"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("color=c={colour}:s={size}:r=30,format=yuv420p"))
        .args(["-t", &seconds.to_string(), "-c:v", "libvpx", "-g", "30"])
        .args(["-b:v", "300k", "-deadline", "realtime", "-cpu-used", "8"])
        .arg(&ivf)
        .status()
        .expect("ffmpeg is required (apt-get install ffmpeg)");
    assert!(status.success());
    let journal = dir.join(format!("{id}.rjnl"));
    let mut w = JournalWriter::create(
        std::fs::File::create(&journal).unwrap(),
        &vp8_header(id, id),
    )
    .unwrap();
    let file = reel_media::ivf::parse(&std::fs::read(&ivf).unwrap()).unwrap();
    for f in &file.frames {
        let us = f.pts as i64 * 1_000_000 * file.timebase_num as i64 / file.timebase_den as i64;
        let fl = if reel_media::codec::is_keyframe(Codec::Vp8, &f.data) {
            flags::KEYFRAME
        } else {
            0
        };
        w.append(&Record::Frame {
            rtp_time: (us * 90 / 1000) as u64 + 1_000_000,
            arrival_unix_us: T0 + us,
            flags: fl,
            data: f.data.clone(),
        })
        .unwrap();
    }
    journal
}

/// Rows (first, last) of the white text pixels inside `area` (x0, y0, x1, y1), if any.
fn text_rows(
    frame: &[u8],
    width: usize,
    area: (usize, usize, usize, usize),
) -> Option<(usize, usize)> {
    let (x0, y0, x1, y1) = area;
    let rows: Vec<usize> = (y0..y1)
        .filter(|&y| {
            (x0..x1).any(|x| {
                let (r, g, b) = pixel(frame, width, x, y);
                r.min(g).min(b) > 200
            })
        })
        .collect();
    Some((*rows.first()?, *rows.last()?))
}

/// The movie's look, judged on decoded frames at the smallest and the largest output: the
/// REC badge in a band of its own (no tile under it), names at least 2.5 % of the picture
/// tall and the same size on the speaker and on a thumbnail, a label raised above the
/// thumbnail strip rather than under it, and the strip flush with the bottom.
#[test]
fn badge_and_labels_read_at_every_size_and_cover_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let blue = solid_journal(dir.path(), "pub_jill", "0x0000ff", "640x360", 3);
    let green = solid_journal(dir.path(), "pub_jo", "0x00a000", "640x360", 3);
    let participant = |id: &str, name: &str, video: &PathBuf| Participant {
        id: id.into(),
        participant: id.into(),
        name: name.into(),
        kind: SourceKind::Camera,
        video: Some(video.clone()),
        audio: None,
    };
    for (w, h) in [(640usize, 360usize), (1920, 1080)] {
        let out = dir.path().join(format!("look-{h}.mp4"));
        let job = Job {
            participants: vec![
                participant("pub_jill", "Jill Hardy", &blue),
                participant("pub_jo", "Jo Lindy", &green),
            ],
            timeline: Timeline {
                from_unix_us: T0,
                to_unix_us: T0 + 3_000_000,
                pauses: vec![],
            },
            output: Output::Video(VideoSettings {
                format: VideoFormat::Mp4,
                width: w as i32,
                height: h as i32,
                fps: 30,
                bitrate_kbps: 4000,
                layouts: vec![(0, Layout::ActiveSpeaker { thumbnails: true })],
                labels: true,
                background: 0,
                rec_badge: true,
            }),
            path: out.clone(),
        };
        render(&job).unwrap();
        if std::env::var_os("LOOK_KEEP").is_some() {
            std::fs::copy(&out, format!("/tmp/look-{h}.mp4")).unwrap();
        }
        let look = reel_compose::look::Look::for_height(h as i32);
        let band = look.badge_band() as usize;
        let f = frame_rgb(&out, 1.5, w, h);
        // The badge: white text inside the band; nothing but background in the band beside it.
        let badge = text_rows(&f, w, (0, 0, w / 4, band)).expect("a REC badge");
        assert!(
            badge.1 < band,
            "{h}p: the badge reaches row {} of a {band}-row band",
            badge.1
        );
        for x in [w / 2, w * 3 / 4] {
            assert!(
                near(pixel(&f, w, x, band / 2), (0, 0, 0), 24),
                "{h}p: content under the badge at x {x}"
            );
        }
        // The speaker (Jill, blue) fills the canvas below the band; Jo's thumbnail is
        // flush with the bottom (16:9, a sixth of the canvas tall, centred).
        let canvas_h = h - band;
        let (th, tw) = (canvas_h / 6, canvas_h / 6 * 16 / 9);
        let tx = (w - tw) / 2;
        assert!(
            near(pixel(&f, w, w / 2, band + 4), (0, 0, 255), 40),
            "{h}p: the speaker's top"
        );
        assert!(
            near(pixel(&f, w, tx + tw - 6, h - 2), (0, 160, 0), 40),
            "{h}p: a band under the strip"
        );
        // Jo's name, in the thumbnail: tall enough to read.
        let jo = text_rows(&f, w, (tx, h - th, tx + tw, h)).expect("Jo's label in the thumbnail");
        let tall = (jo.1 - jo.0 + 1) as f64 / h as f64;
        assert!(
            tall >= 0.025,
            "{h}p: a name {:.1} % of the height",
            tall * 100.0
        );
        // Jill's name: above the strip (not under the thumbnail), the same size as Jo's.
        let jill =
            text_rows(&f, w, (0, band, w / 4, h - th)).expect("Jill's label above the strip");
        assert!(jill.1 < h - th, "{h}p: the speaker's label under the strip");
        assert!(
            ((jill.1 - jill.0) as i64 - (jo.1 - jo.0) as i64).abs() <= 1,
            "{h}p: two label sizes: {jill:?} {jo:?}"
        );
        eprintln!(
            "{h}p: band {band} rows, badge rows {badge:?}, name {:.1} % tall",
            tall * 100.0
        );
    }
}
