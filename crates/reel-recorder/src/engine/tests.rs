//! The recorder's decisions on a manual clock: no database, no files, no ffmpeg.

use super::*;
use reel_core::{Codec, MediaKind};

const T0_MS: i64 = 1_700_000_000_000;

struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn at(&self, ms: i64) -> Now {
        Now {
            at: self.0 + Duration::from_millis(ms as u64),
            unix_ms: T0_MS + ms,
        }
    }
}

fn facts(auto: bool, empty_timeout_ms: i64, policy: Value, defaults: Value) -> RoomFacts {
    RoomFacts {
        room: Room {
            id: "room_1".into(),
            application_id: "app_1".into(),
            name: "desk".into(),
            empty_timeout_ms,
            max_duration_ms: 3_600_000,
            auto_stream_recording: auto,
            default_recording_options: defaults.clone(),
            default_credentials_sealed: None,
            policy,
            created_at: 0,
        },
        defaults: RecordingOptions {
            json: defaults,
            sealed_credentials: None,
        },
    }
}

fn plain_room() -> RoomFacts {
    facts(true, 0, json!({}), json!({}))
}

fn drain(e: &mut Engine) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        match e.poll_output() {
            Output::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

fn next_timeout(e: &mut Engine) -> Instant {
    match e.poll_output() {
        Output::Timeout(at) => at,
        o => panic!("{o:?}"),
    }
}

fn changes(outs: &[Output]) -> Vec<&Change> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist(c) => Some(c),
            _ => None,
        })
        .flatten()
        .collect()
}

fn events(outs: &[Output]) -> Vec<EventKind> {
    changes(outs)
        .into_iter()
        .filter_map(|c| match c {
            Change::Event { kind, .. } => Some(*kind),
            _ => None,
        })
        .filter(|k| *k != EventKind::StatusUpdate)
        .collect()
}

fn saved_recordings(outs: &[Output]) -> Vec<&Recording> {
    changes(outs)
        .into_iter()
        .filter_map(|c| match c {
            Change::SaveRecording(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn jobs(outs: &[Output]) -> Vec<&JobSpec> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Job(j) => Some(j),
            _ => None,
        })
        .collect()
}

fn captures(outs: &[Output]) -> Vec<bool> {
    outs.iter()
        .filter_map(|o| match o {
            Output::SetCapture { on, .. } => Some(*on),
            _ => None,
        })
        .collect()
}

fn keyframe_asks(outs: &[Output]) -> usize {
    outs.iter()
        .filter(|o| {
            matches!(
                o,
                Output::Media {
                    order: MediaOrder::RequestKeyframes,
                    ..
                }
            )
        })
        .count()
}

fn reply_of(outs: Vec<Output>) -> Result<Reply, RecorderError> {
    outs.into_iter()
        .find_map(|o| match o {
            Output::Reply { result, .. } => Some(result),
            _ => None,
        })
        .expect("a reply")
}

fn recording_reply(outs: Vec<Output>) -> Recording {
    match reply_of(outs) {
        Ok(Reply::Recording(r)) => *r,
        other => panic!("{other:?}"),
    }
}

fn join(
    e: &mut Engine,
    now: Now,
    room: RoomFacts,
    who: &str,
    call: Option<&str>,
) -> (PublicationContext, Vec<Output>) {
    e.handle(
        now,
        Input::Join {
            publication: PublicationId::generate(),
            room,
            participant: who.into(),
            kind: PublicationKind::Camera,
            call: call.map(str::to_string),
            reply: 1,
        },
    );
    let outs = drain(e);
    let ctx = outs
        .iter()
        .find_map(|o| match o {
            Output::Reply {
                result: Ok(Reply::Joined(ctx)),
                ..
            } => Some(ctx.clone()),
            _ => None,
        })
        .expect("joined");
    (ctx, outs)
}

fn control(e: &mut Engine, now: Now, rec: &Recording, command: Command) -> Vec<Output> {
    e.handle(
        now,
        Input::Control {
            stored: Box::new(rec.clone()),
            command,
            failed_uploads: command == Command::RetryUpload,
            reply: 2,
        },
    );
    drain(e)
}

fn made(e: &mut Engine, now: Now, recording: &str, asset: &str) -> Vec<Output> {
    e.handle(
        now,
        Input::JobDone {
            recording: recording.into(),
            result: JobResult::Made {
                asset: asset.into(),
            },
        },
    );
    drain(e)
}

#[test]
fn two_join_a_pause_a_third_joins_paused_resume_and_stop() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let (alice, outs) = join(&mut e, clock.at(0), plain_room(), "alice", None);
    // The session, its recording and the publication in one transaction.
    assert!(
        matches!(&outs[0], Output::Persist(c) if c.len() == 5),
        "{outs:?}"
    );
    assert_eq!(events(&outs), [EventKind::RecordingStarted]);
    let rec = saved_recordings(&outs)[0].clone();
    assert_eq!(
        (rec.state, rec.mode, rec.started_at),
        (
            RecordingState::Recording,
            RecordingMode::Stream,
            Some(T0_MS)
        )
    );
    assert!(alice
        .journal_dir
        .starts_with(format!("/data/journals/{}", alice.session)));
    let (bob, outs) = join(&mut e, clock.at(1000), plain_room(), "bob", None);
    assert_eq!(bob.session, alice.session);
    assert!(saved_recordings(&outs).is_empty() && captures(&outs).is_empty());

    let outs = control(&mut e, clock.at(2000), &rec, Command::Pause);
    assert_eq!(captures(&outs), [false]);
    assert_eq!(events(&outs), [EventKind::RecordingPaused]);
    let paused = recording_reply(outs);
    assert_eq!(paused.state, RecordingState::Paused);
    // Joining mid-pause changes no capture: its tracks open paused since the same instant.
    let (carol, outs) = join(&mut e, clock.at(3000), plain_room(), "carol", None);
    assert!(captures(&outs).is_empty() && events(&outs).is_empty());
    // Pausing twice is refused, with nothing done.
    let outs = control(&mut e, clock.at(3500), &rec, Command::Pause);
    assert!(captures(&outs).is_empty() && changes(&outs).is_empty());
    assert!(matches!(reply_of(outs), Err(RecorderError::InvalidState(m)) if m.contains("paused")));

    let outs = control(&mut e, clock.at(4000), &rec, Command::Resume);
    assert_eq!(captures(&outs), [true]);
    assert_eq!(keyframe_asks(&outs), 3, "every publisher, carol too");
    assert_eq!(events(&outs), [EventKind::RecordingResumed]);

    let outs = control(&mut e, clock.at(6000), &rec, Command::Stop);
    assert_eq!(captures(&outs), [false]);
    assert_eq!(events(&outs), [EventKind::RecordingFinished]);
    let states: Vec<_> = saved_recordings(&outs).iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [RecordingState::Stopping, RecordingState::Processing]
    );
    let stopped = saved_recordings(&outs)[1].clone();
    assert_eq!(
        stopped.pauses,
        [Pause {
            paused_at: T0_MS + 2000,
            resumed_at: Some(T0_MS + 4000)
        }]
    );
    let specs = jobs(&outs);
    assert_eq!(specs.len(), 3);
    for (spec, ctx) in specs.iter().zip([&alice, &bob, &carol]) {
        assert_eq!(
            **spec,
            JobSpec::StreamAsset {
                recording: rec.id.clone(),
                publication: ctx.publication.to_string(),
                window: Window {
                    from_unix_us: Some(T0_MS * 1000),
                    to_unix_us: Some((T0_MS + 6000) * 1000)
                },
                after_flush_of: Some(alice.session.clone()),
            }
        );
    }
    assert!(made(&mut e, clock.at(7000), &rec.id, "ast_a").is_empty());
    assert!(made(&mut e, clock.at(7000), &rec.id, "ast_b").is_empty());
    let outs = made(&mut e, clock.at(7100), &rec.id, "ast_c");
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
    let Change::Event { payload, .. } = changes(&outs)[2] else {
        panic!("{outs:?}")
    };
    assert_eq!(payload["asset_ids"], json!(["ast_a", "ast_b", "ast_c"]));
    assert_eq!(
        jobs(&outs),
        [&JobSpec::Transcribe {
            recording: rec.id.clone()
        }]
    );
}

#[test]
fn the_session_ends_under_a_live_recording_and_the_policy_renders_it() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let room = facts(true, 5000, json!({"auto_composite": true}), json!({}));
    let (alice, outs) = join(&mut e, clock.at(0), room, "alice", None);
    let rec = saved_recordings(&outs)[0].clone();
    e.handle(
        clock.at(100),
        Input::TrackOpened(Track {
            id: "trk_1".into(),
            publication_id: alice.publication.to_string(),
            session_id: alice.session.to_string(),
            mid: "0".into(),
            rid: None,
            media_kind: MediaKind::Video,
            codec: Codec::Vp8,
            clock_rate: 90_000,
            journal_path: "/data/j".into(),
            started_at: T0_MS + 100,
        }),
    );
    drain(&mut e);
    e.handle(
        clock.at(3000),
        Input::PublicationClosed {
            publication: alice.publication.clone(),
            reason: EndReason::Left,
        },
    );
    let outs = drain(&mut e);
    // Its output right away, for the recording still capturing.
    assert!(matches!(
        jobs(&outs)[..],
        [JobSpec::StreamAsset {
            window: Window {
                to_unix_us: None,
                ..
            },
            after_flush_of: None,
            ..
        }]
    ));
    assert_eq!(next_timeout(&mut e), clock.at(8000).at);
    e.handle_timeout(clock.at(8000));
    let outs = drain(&mut e);
    assert_eq!(
        events(&outs),
        [EventKind::RecordingFinished, EventKind::RecordingStarted]
    );
    assert!(changes(&outs).iter().any(|c| matches!(
        c,
        Change::EndSession {
            reason: EndReason::Empty,
            ..
        }
    )));
    // The composite waits for the journals' flush; the stream asset is not asked twice.
    let specs = jobs(&outs);
    assert_eq!(specs.len(), 1, "{specs:?}");
    let JobSpec::Render {
        recording: composite,
        after_flush_of,
    } = specs[0]
    else {
        panic!("{specs:?}")
    };
    assert_eq!(after_flush_of.as_ref(), Some(&alice.session));
    let render = saved_recordings(&outs)
        .into_iter()
        .find(|r| &r.id == composite)
        .unwrap();
    assert_eq!(
        (render.mode, render.started_at, render.stopped_at),
        (RecordingMode::Composite, Some(T0_MS), Some(T0_MS + 8000))
    );
    let outs = made(&mut e, clock.at(8100), &rec.id, "ast_a");
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
    let outs = made(&mut e, clock.at(9000), composite, "ast_composite");
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
}

#[test]
fn a_failed_upload_fails_the_recording_with_its_code_and_a_retry_makes_it_available() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let room = facts(
        true,
        0,
        json!({}),
        json!({"destinationUrl": "s3://bucket/p"}),
    );
    let (_, outs) = join(&mut e, clock.at(0), room, "alice", None);
    let rec = saved_recordings(&outs)[0].clone();
    let outs = control(&mut e, clock.at(1000), &rec, Command::Stop);
    assert_eq!(jobs(&outs).len(), 1);
    let outs = made(&mut e, clock.at(1100), &rec.id, "ast_a");
    assert_eq!(saved_recordings(&outs)[0].state, RecordingState::Uploading);
    assert_eq!(
        jobs(&outs),
        [&JobSpec::Upload {
            recording: rec.id.clone(),
            name_objects: true
        }]
    );
    e.handle(
        clock.at(2000),
        Input::UploadsDone {
            recording: rec.id.clone(),
            outcome: UploadOutcome::Failed {
                asset_id: Some("ast_a".into()),
                code: "destination_forbidden".into(),
                message: "destination_forbidden: 403".into(),
            },
        },
    );
    let outs = drain(&mut e);
    assert_eq!(events(&outs), [EventKind::RecordingFailed]);
    let failed = saved_recordings(&outs)[0].clone();
    assert_eq!(failed.state, RecordingState::Failed);
    assert_eq!(
        failed.failure_code.as_deref(),
        Some("destination_forbidden")
    );
    // Nothing failed to upload: nothing to retry.
    e.handle(
        clock.at(2500),
        Input::Control {
            stored: Box::new(failed.clone()),
            command: Command::RetryUpload,
            failed_uploads: false,
            reply: 3,
        },
    );
    assert!(matches!(
        reply_of(drain(&mut e)),
        Err(RecorderError::InvalidState(_))
    ));
    let outs = control(&mut e, clock.at(3000), &failed, Command::RetryUpload);
    let retried = saved_recordings(&outs)[0].clone();
    assert_eq!(
        (retried.state, retried.failure_code),
        (RecordingState::Uploading, None)
    );
    assert_eq!(
        jobs(&outs),
        [&JobSpec::Upload {
            recording: rec.id.clone(),
            name_objects: false
        }]
    );
    e.handle(
        clock.at(4000),
        Input::UploadsDone {
            recording: rec.id.clone(),
            outcome: UploadOutcome::Done(vec![("ast_a".into(), "s3://bucket/p/a.webm".into())]),
        },
    );
    let outs = drain(&mut e);
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
    let Change::Event { payload, .. } = changes(&outs)[2] else {
        panic!("{outs:?}")
    };
    assert_eq!(
        payload["destinations"][0]["destination_url"],
        "s3://bucket/p/a.webm"
    );
}

#[test]
fn a_call_on_hold_pauses_its_recording_and_coming_back_resumes_it() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let (caller, outs) = join(&mut e, clock.at(0), plain_room(), "caller", Some("call-1"));
    let (agent, _) = join(&mut e, clock.at(0), plain_room(), "agent", Some("call-1"));
    assert_eq!(caller.session, agent.session);
    assert_eq!(saved_recordings(&outs).len(), 1);
    let hold = |e: &mut Engine, ms, held| {
        e.handle(
            clock.at(ms),
            Input::CallHeld {
                session: caller.session.clone(),
                held,
            },
        );
        drain(e)
    };
    let outs = hold(&mut e, 1000, true);
    assert_eq!(captures(&outs), [false]);
    assert_eq!(events(&outs), [EventKind::RecordingPaused]);
    // A second hold (a re-INVITE repeating itself) does nothing.
    assert!(hold(&mut e, 1500, true).is_empty());
    let outs = hold(&mut e, 3000, false);
    assert_eq!(captures(&outs), [true]);
    assert_eq!(keyframe_asks(&outs), 2);
    assert_eq!(events(&outs), [EventKind::RecordingResumed]);
    // Media of a call is the SIPREC loop's: every order goes to it.
    assert!(outs
        .iter()
        .all(|o| !matches!(o, Output::Media { call: false, .. })));
    // The BYE: both parties leave, the session ends at once, the call gets its mp3.
    e.handle(
        clock.at(5000),
        Input::TrackOpened(Track {
            id: "trk_1".into(),
            publication_id: caller.publication.to_string(),
            session_id: caller.session.to_string(),
            mid: "1".into(),
            rid: None,
            media_kind: MediaKind::Audio,
            codec: Codec::Pcmu,
            clock_rate: 8000,
            journal_path: "/data/j".into(),
            started_at: T0_MS,
        }),
    );
    for ctx in [&caller, &agent] {
        e.handle(
            clock.at(6000),
            Input::PublicationClosed {
                publication: ctx.publication.clone(),
                reason: EndReason::Left,
            },
        );
    }
    drain(&mut e);
    e.handle_timeout(clock.at(6000));
    let outs = drain(&mut e);
    let mix = saved_recordings(&outs)
        .into_iter()
        .find(|r| r.mode == RecordingMode::Audio)
        .expect("the call's mp3");
    assert_eq!(mix.options["format"], "mp3");
    assert_eq!(
        mix.pauses,
        [Pause {
            paused_at: T0_MS + 1000,
            resumed_at: Some(T0_MS + 3000)
        }],
        "the mix leaves the hold out"
    );
}

#[test]
fn a_pending_recording_waits_for_the_meeting_not_a_call_in_the_same_room() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let start = |e: &mut Engine, ms| {
        e.handle(
            clock.at(ms),
            Input::StartRecording {
                room: plain_room(),
                mode: RecordingMode::Stream,
                options: RecordingOptions::default(),
                reply: 4,
            },
        );
        drain(e)
    };
    let pending = recording_reply(start(&mut e, 0));
    assert_eq!(pending.state, RecordingState::Starting);
    let (call, outs) = join(
        &mut e,
        clock.at(1000),
        plain_room(),
        "caller",
        Some("call-9"),
    );
    let call_rec = saved_recordings(&outs)[0].clone();
    assert_ne!(call_rec.id, pending.id, "the call has its own recording");
    assert_eq!(call_rec.session_id.as_deref(), Some(call.session.as_str()));
    // Still waiting: a second request is refused and names it.
    let refused = reply_of(start(&mut e, 1500));
    assert!(matches!(refused, Err(RecorderError::Conflict(m)) if m.contains(&pending.id)));
    let (meeting, outs) = join(&mut e, clock.at(2000), plain_room(), "alice", None);
    let attached = saved_recordings(&outs)[0].clone();
    assert_eq!(attached.id, pending.id);
    assert_eq!(
        (attached.state, attached.session_id.as_deref()),
        (RecordingState::Recording, Some(meeting.session.as_str()))
    );
    assert_ne!(meeting.session, call.session);
}

#[test]
fn a_room_without_auto_recording_captures_nothing_until_asked() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let room = facts(false, 0, json!({}), json!({}));
    let (alice, outs) = join(&mut e, clock.at(0), room.clone(), "alice", None);
    assert!(saved_recordings(&outs).is_empty());
    // Capture off is ordered after the session's rows and before the answer goes out.
    let order: Vec<&str> = outs
        .iter()
        .map(|o| match o {
            Output::Persist(_) => "persist",
            Output::SetCapture { on: false, .. } => "capture off",
            Output::Reply { .. } => "reply",
            _ => "other",
        })
        .collect();
    assert_eq!(order, ["persist", "capture off", "reply"]);
    e.handle(
        clock.at(1000),
        Input::StartRecording {
            room,
            mode: RecordingMode::Stream,
            options: RecordingOptions::default(),
            reply: 5,
        },
    );
    let outs = drain(&mut e);
    assert_eq!(captures(&outs), [true]);
    assert_eq!(keyframe_asks(&outs), 1);
    let rec = recording_reply(outs);
    assert_eq!(rec.session_id.as_deref(), Some(alice.session.as_str()));
    assert_eq!(rec.started_at, Some(T0_MS + 1000));
}

#[test]
fn a_stop_before_anyone_joined_fails_with_nothing_recorded() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    e.handle(
        clock.at(0),
        Input::StartRecording {
            room: plain_room(),
            mode: RecordingMode::Composite,
            options: RecordingOptions::default(),
            reply: 6,
        },
    );
    let pending = recording_reply(drain(&mut e));
    let outs = control(&mut e, clock.at(10), &pending, Command::Stop);
    assert_eq!(events(&outs), [EventKind::RecordingFailed]);
    let failed = recording_reply(outs);
    assert_eq!(failed.failure_code.as_deref(), Some("nothing_recorded"));
    // The room is free again: the next meeting starts its own (auto) recording.
    let (_, outs) = join(&mut e, clock.at(20), plain_room(), "alice", None);
    assert_ne!(saved_recordings(&outs)[0].id, pending.id);
}

#[test]
fn outputs_that_all_fail_fail_the_recording_with_the_first_real_reason() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let (_, outs) = join(&mut e, clock.at(0), plain_room(), "alice", None);
    join(&mut e, clock.at(0), plain_room(), "bob", None);
    let rec = saved_recordings(&outs)[0].clone();
    control(&mut e, clock.at(1000), &rec, Command::Stop);
    for (code, reason) in [
        ("no_media", "no media was captured"),
        ("output_failed", "bad journal"),
    ] {
        e.handle(
            clock.at(1100),
            Input::JobDone {
                recording: rec.id.clone(),
                result: JobResult::Failed {
                    code: code.into(),
                    reason: reason.into(),
                    fault: reel_core::recording::fault_of(code),
                },
            },
        );
    }
    let outs = drain(&mut e);
    let failed = saved_recordings(&outs)[0].clone();
    assert_eq!(failed.failure_code.as_deref(), Some("output_failed"));
    assert_eq!(
        failed.failure.as_deref(),
        Some("no output could be made: no media was captured; bad journal")
    );
}

#[test]
fn shutdown_closes_every_publication_then_ends_every_session() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let (alice, _) = join(&mut e, clock.at(0), plain_room(), "alice", None);
    e.handle(clock.at(10), Input::Shutdown);
    let outs = drain(&mut e);
    assert!(matches!(
        &outs[..],
        [Output::Media {
            order: MediaOrder::Close(EndReason::Shutdown),
            ..
        }]
    ));
    e.handle(
        clock.at(20),
        Input::PublicationClosed {
            publication: alice.publication,
            reason: EndReason::Shutdown,
        },
    );
    let outs = drain(&mut e);
    assert!(matches!(outs.last(), Some(Output::Drained)), "{outs:?}");
    e.handle(clock.at(30), Input::EndAll);
    let outs = drain(&mut e);
    assert!(matches!(
        changes(&outs)[..],
        [Change::EndSession {
            reason: EndReason::Shutdown,
            ..
        }]
    ));
}

/// A crash: the engine is gone, and a new one is built from what was stored. A recording
/// left capturing, and one left processing (a crash after its stop, before its asset and
/// event were written: they are one transaction, so neither was), get their outputs from
/// the journals, as at any stop; a transcript left uploading is finished.
#[test]
fn after_a_crash_the_rebuilt_engine_makes_the_interrupted_recordings_outputs() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let (alice, outs) = join(&mut e, clock.at(0), plain_room(), "alice", None);
    let capturing = saved_recordings(&outs)[0].clone();
    drop(e);

    let mut processing = capturing.clone();
    processing.id = "rec_processing".into();
    processing.state = RecordingState::Processing;
    let mut left = capturing.clone();
    left.stopped_at = Some(T0_MS + 5000);
    let mut e = Engine::new("/data".into());
    let publications = vec![(alice.publication.clone(), T0_MS)];
    e.handle(
        clock.at(10_000),
        Input::Resume {
            starting: vec![],
            uploading: vec![],
            unfinished: vec![
                Unfinished {
                    recording: left,
                    publications: publications.clone(),
                },
                Unfinished {
                    recording: processing.clone(),
                    publications,
                },
            ],
            // A transcript whose upload the crash cut: its upload and its event are owed.
            transcript_uploads: vec![("rec_transcribed".into(), json!({"asset_ids": ["ast_1"]}))],
        },
    );
    let outs = drain(&mut e);
    assert_eq!(events(&outs), [EventKind::RecordingFinished]);
    let states: Vec<_> = saved_recordings(&outs).iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [RecordingState::Stopping, RecordingState::Processing]
    );
    let specs = jobs(&outs);
    assert_eq!(specs.len(), 3);
    assert!(matches!(
        specs[0],
        JobSpec::FinishTranscriptUpload { recording, event }
            if recording == "rec_transcribed" && event["asset_ids"][0] == "ast_1"
    ));
    for spec in &specs[1..] {
        assert!(matches!(
            spec,
            JobSpec::StreamAsset {
                window: Window {
                    to_unix_us: None,
                    ..
                },
                after_flush_of: None,
                ..
            }
        ));
    }
    let outs = made(&mut e, clock.at(11_000), &capturing.id, "ast_a");
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
    let outs = made(&mut e, clock.at(11_000), &processing.id, "ast_b");
    assert_eq!(events(&outs), [EventKind::RecordingAvailable]);
}

/// Retention passes never overlap (two would delete the same assets twice): a pass due
/// while one runs is skipped, and the next after it ends runs at its own time.
#[test]
fn a_retention_pass_due_while_one_runs_is_skipped() {
    let clock = Clock::new();
    let mut e = Engine::new("/data".into());
    let due = |ms: i64| Input::RetentionDue {
        default_days: 7,
        now_ms: T0_MS + ms,
    };
    e.handle(clock.at(0), due(0));
    let outs = drain(&mut e);
    assert!(matches!(
        jobs(&outs)[..],
        [&JobSpec::Retention {
            default_days: 7,
            ..
        }]
    ));
    e.handle(clock.at(1000), due(1000));
    assert!(jobs(&drain(&mut e)).is_empty(), "one pass at a time");
    e.handle(clock.at(2000), Input::RetentionDone);
    e.handle(clock.at(3000), due(3000));
    let outs = drain(&mut e);
    assert!(matches!(
        jobs(&outs)[..],
        [&JobSpec::Retention { now_ms, .. }] if now_ms == T0_MS + 3000
    ));
}
