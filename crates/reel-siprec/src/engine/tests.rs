//! Pair tests: an SRC played by hand against the engine, on a manual clock.

use super::*;

const SRC: &str = "127.0.0.1:5070";

fn engine(max_calls: usize) -> Engine {
    Engine::new(Config {
        address: "127.0.0.1".parse().unwrap(),
        port: 5060,
        max_calls,
        max_unconfirmed: 16,
        max_unconfirmed_per_source: 4,
        max_unconfirmed_ports_per_source: 2000,
        max_lines_per_call: 16,
        allowed_sources: Default::default(),
    })
}

const SDP: &str = "v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\nm=audio 6002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n";

fn metadata(caller: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode>\
<participant participant_id=\"a\"><nameID aor=\"sip:caller@example.com\"><name>{caller}</name></nameID></participant>\
<participant participant_id=\"b\"><nameID aor=\"sip:agent@example.com\"/></participant>\
<stream stream_id=\"s1\"><label>1</label></stream><stream stream_id=\"s2\"><label>2</label></stream>\
<participantstreamassoc participant_id=\"a\"><send>s1</send></participantstreamassoc>\
<participantstreamassoc participant_id=\"b\"><send>s2</send></participantstreamassoc></recording>"
    )
}

fn invite(
    call: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    sdp: &str,
    meta: &str,
    siprec: bool,
) -> Vec<u8> {
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{meta}\r\n--b1--\r\n"
    );
    let to = match to_tag {
        Some(t) => format!("<sip:sales@127.0.0.1>;tag={t}"),
        None => "<sip:sales@127.0.0.1>".into(),
    };
    let require = if siprec {
        "Require: siprec\r\nContact: <sip:src@127.0.0.1:5070>;+sip.src\r\n"
    } else {
        "Contact: <sip:src@127.0.0.1:5070>\r\n"
    };
    format!(
        "INVITE sip:sales@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
From: <sip:src@127.0.0.1>;tag=src1\r\nTo: {to}\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\n{require}\
Content-Type: multipart/mixed;boundary=b1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn request(method: &str, call: &str, branch: &str, cseq: u32, to_tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:reel@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
From: <sip:src@127.0.0.1>;tag=src1\r\nTo: <sip:sales@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call}\r\n\
CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Everything the engine has to say: (responses as text, events).
fn drain(e: &mut Engine) -> (Vec<String>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = e.poll_output() {
        match o {
            Output::Send { to, data } => {
                assert_eq!(to, SRC.parse().unwrap());
                sent.push(String::from_utf8(data).unwrap());
            }
            Output::Event(ev) => events.push(ev),
        }
    }
    (sent, events)
}

fn status(resp: &str) -> u16 {
    resp[8..11].parse().unwrap()
}

fn to_tag(resp: &str) -> String {
    resp.lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .unwrap()
        .trim()
        .to_string()
}

/// Offers a call and accepts every audio line; returns the 200 OK.
fn established(e: &mut Engine, now: Instant, call: &str) -> String {
    e.handle_datagram(
        now,
        SRC.parse().unwrap(),
        &invite(call, "z9hG4bK-i1", 1, None, SDP, &metadata("Carol"), true),
    );
    let (sent, events) = drain(e);
    assert_eq!(
        sent.iter().map(|s| status(s)).collect::<Vec<_>>(),
        vec![100]
    );
    // (After any call this INVITE pushed out.)
    let Some(Event::Offered {
        offer,
        metadata,
        user,
        ..
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!(user.as_deref(), Some("sales"));
    assert_eq!(
        metadata
            .as_ref()
            .unwrap()
            .sender_of_label("1")
            .unwrap()
            .label(),
        "Carol"
    );
    let lines: Vec<LineAnswer> = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| LineAnswer::Record {
            port: 30_000 + 2 * i as u16,
            format: m.recordable().unwrap().clone(),
        })
        .collect();
    let offer = offer.clone();
    e.accept(now, call, &offer, &lines);
    let (sent, _) = drain(e);
    assert_eq!(status(&sent[0]), 200);
    let ok = sent[0].clone();
    e.handle_datagram(
        now,
        SRC.parse().unwrap(),
        &request("ACK", call, "z9hG4bK-a1", 1, &to_tag(&ok)),
    );
    // The ACK confirms the call, once.
    let (_, events) = drain(e);
    assert_eq!(
        events,
        vec![Event::Confirmed {
            call_id: call.into()
        }]
    );
    ok
}

#[test]
fn a_siprec_call_is_answered_recvonly_and_ended_by_bye() {
    let mut e = engine(10);
    let t0 = Instant::now();
    let ok = established(&mut e, t0, "call-1");
    assert!(ok.contains("Content-Type: application/sdp"), "{ok}");
    assert!(
        ok.contains("m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=recvonly"),
        "{ok}"
    );
    assert!(ok.contains("Contact: <sip:reel@127.0.0.1:5060>"), "{ok}");
    // ACKed: no retransmission of the 200.
    e.handle_timeout(t0 + Duration::from_secs(5));
    assert!(drain(&mut e).0.is_empty());
    e.handle_datagram(
        t0,
        SRC.parse().unwrap(),
        &request("BYE", "call-1", "z9hG4bK-b1", 2, &to_tag(&ok)),
    );
    let (sent, events) = drain(&mut e);
    assert_eq!(status(&sent[0]), 200);
    assert_eq!(
        events,
        vec![Event::Ended {
            call_id: "call-1".into(),
            reason: "bye".into()
        }]
    );
    // The BYE retransmitted: the same 200 again, no second event.
    e.handle_datagram(
        t0,
        SRC.parse().unwrap(),
        &request("BYE", "call-1", "z9hG4bK-b1", 2, &to_tag(&ok)),
    );
    let (sent, events) = drain(&mut e);
    assert_eq!((sent.len(), events.len()), (1, 0));
    assert_eq!(e.calls(), 0);
}

#[test]
fn the_200_is_resent_until_the_ack_then_the_call_ends_without_one() {
    let mut e = engine(10);
    let t0 = Instant::now();
    e.handle_datagram(
        t0,
        SRC.parse().unwrap(),
        &invite("c2", "z9hG4bK-x", 1, None, SDP, &metadata("A"), true),
    );
    let (_, events) = drain(&mut e);
    let Event::Offered { offer, .. } = &events[0] else {
        panic!()
    };
    let offer = offer.clone();
    e.accept(t0, "c2", &offer, &[LineAnswer::Reject, LineAnswer::Reject]);
    drain(&mut e);
    // Timer G: T1, 2·T1, 4·T1, then every T2.
    let mut resent = Vec::new();
    let mut now = t0;
    while let Some(at) = e.poll_timeout() {
        if at > t0 + 64 * T1 {
            break;
        }
        now = at;
        e.handle_timeout(now);
        let (sent, events) = drain(&mut e);
        if !sent.is_empty() {
            assert_eq!(status(&sent[0]), 200);
            resent.push(now - t0);
        }
        if !events.is_empty() {
            assert!(
                matches!(&events[0], Event::Ended { reason, .. } if reason.contains("ACK")),
                "{events:?}"
            );
            break;
        }
    }
    assert_eq!(
        &resent[..4],
        &[T1, 3 * T1, 7 * T1, 7 * T1 + T2],
        "{resent:?}"
    );
    assert_eq!(now - t0, 64 * T1);
    assert_eq!(e.calls(), 0);
}

#[test]
fn what_a_recording_server_refuses() {
    let mut e = engine(1);
    let t0 = Instant::now();
    let src = SRC.parse().unwrap();
    // A plain call is not a recording session.
    e.handle_datagram(
        t0,
        src,
        &invite("plain", "z9hG4bK-p", 1, None, SDP, &metadata("A"), false),
    );
    let (sent, events) = drain(&mut e);
    assert_eq!(status(&sent[0]), 421);
    assert!(sent[0].contains("Require: siprec"), "{}", sent[0]);
    assert!(events.is_empty());
    // A broken multipart body: 400 with the reason.
    let mut broken = invite("broken", "z9hG4bK-q", 1, None, SDP, &metadata("A"), true);
    let text = String::from_utf8(broken.clone())
        .unwrap()
        .replace("boundary=b1", "boundary=zz");
    broken = text.into_bytes();
    e.handle_datagram(t0, src, &broken);
    let (sent, _) = drain(&mut e);
    assert_eq!(status(&sent[0]), 400);
    assert!(sent[0].contains("multipart"), "{}", sent[0]);
    // Metadata naming a stream the SDP does not have.
    let meta = metadata("A").replace("<label>2</label>", "<label>9</label>");
    e.handle_datagram(
        t0,
        src,
        &invite("unknown", "z9hG4bK-u", 1, None, SDP, &meta, true),
    );
    let (sent, _) = drain(&mut e);
    assert_eq!(status(&sent[0]), 400);
    assert!(sent[0].contains("not in the SDP"), "{}", sent[0]);
    // Not SIP at all: an event to log, nothing sent.
    e.handle_datagram(t0, src, b"\x80\x00garbage");
    let (sent, events) = drain(&mut e);
    assert!(sent.is_empty());
    assert!(matches!(events[0], Event::Malformed { .. }));
    // The rejected ones are ACKed away (or time out), then capacity is for real calls.
    e.handle_timeout(t0 + 64 * T1);
    drain(&mut e);
    established(&mut e, t0 + 64 * T1, "first");
    e.handle_datagram(
        t0 + 64 * T1,
        src,
        &invite("second", "z9hG4bK-s", 1, None, SDP, &metadata("B"), true),
    );
    let (sent, _) = drain(&mut e);
    assert_eq!(status(&sent[0]), 503);
    assert!(sent[0].contains("Retry-After: 5"));
    // OPTIONS: what is allowed and supported.
    e.handle_datagram(t0, src, &request("OPTIONS", "opt", "z9hG4bK-o", 1, "x"));
    let (sent, _) = drain(&mut e);
    assert_eq!(status(&sent[0]), 200);
    assert!(sent[0].contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"));
    assert!(sent[0].contains("Supported: siprec"));
}

#[test]
fn a_reinvite_holds_then_resumes_and_renames_a_participant() {
    let mut e = engine(10);
    let t0 = Instant::now();
    let src = SRC.parse().unwrap();
    let ok = established(&mut e, t0, "c3");
    let tag = to_tag(&ok);
    let held = SDP.replace("a=sendonly", "a=inactive");
    let renamed = metadata("Carol Danvers");
    e.handle_datagram(
        t0,
        src,
        &invite("c3", "z9hG4bK-r1", 2, Some(&tag), &held, &renamed, true),
    );
    let (sent, events) = drain(&mut e);
    assert_eq!(status(&sent[0]), 100);
    let Event::Reoffered {
        offer, metadata, ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert!(offer.media.iter().all(|m| !m.direction.sends()));
    assert_eq!(
        metadata
            .as_ref()
            .unwrap()
            .sender_of_label("1")
            .unwrap()
            .label(),
        "Carol Danvers"
    );
    let offer = offer.clone();
    let lines: Vec<_> = offer
        .media
        .iter()
        .map(|m| LineAnswer::Record {
            port: 30_000,
            format: m.recordable().unwrap().clone(),
        })
        .collect();
    e.accept(t0, "c3", &offer, &lines);
    let (sent, _) = drain(&mut e);
    assert_eq!(to_tag(&sent[0]), tag, "the dialog keeps its tag");
    assert!(sent[0].contains("a=inactive"), "{}", sent[0]);
    assert!(
        sent[0].contains("o=reel ") && sent[0].contains(" 2 IN IP4"),
        "the SDP version moves on"
    );
    e.handle_datagram(t0, src, &request("ACK", "c3", "z9hG4bK-a2", 2, &tag));
    // A session-timer refresh by UPDATE without a body.
    e.handle_datagram(t0, src, &request("UPDATE", "c3", "z9hG4bK-u1", 3, &tag));
    let (sent, events) = drain(&mut e);
    assert_eq!((status(&sent[0]), events.len()), (200, 0));
    assert_eq!(e.calls(), 1);
}

#[test]
fn cancel_before_the_answer_ends_the_call() {
    let mut e = engine(10);
    let t0 = Instant::now();
    let src = SRC.parse().unwrap();
    e.handle_datagram(
        t0,
        src,
        &invite("c4", "z9hG4bK-c", 1, None, SDP, &metadata("A"), true),
    );
    drain(&mut e);
    let cancel = String::from_utf8(request("CANCEL", "c4", "z9hG4bK-c", 1, "x"))
        .unwrap()
        .replace(";tag=x", "");
    e.handle_datagram(t0, src, cancel.as_bytes());
    let (sent, events) = drain(&mut e);
    let codes: Vec<u16> = sent.iter().map(|s| status(s)).collect();
    assert_eq!(codes, vec![200, 487]);
    assert!(matches!(&events[0], Event::Ended { reason, .. } if reason == "cancelled"));
}

/// Mutated INVITEs, re-INVITEs and BYEs: never a panic, and the established call beside
/// them still ends cleanly.
#[test]
fn mutated_requests_never_panic_or_touch_other_calls() {
    let mut e = engine(1000);
    let t0 = Instant::now();
    let src = SRC.parse().unwrap();
    let ok = established(&mut e, t0, "keep");
    let base = invite("m", "z9hG4bK-m", 1, None, SDP, &metadata("A"), true);
    for (i, m) in crate::mutations(&base, b"<=:\r-;", 5_000).enumerate() {
        e.handle_datagram(t0, src, &m);
        while let Some(o) = e.poll_output() {
            if let Output::Event(Event::Offered { call_id, .. }) = o {
                e.reject(t0, &call_id, 488, "test");
            }
        }
        if i % 500 == 0 {
            e.handle_timeout(t0 + 64 * T1);
        }
    }
    e.handle_datagram(
        t0,
        src,
        &request("BYE", "keep", "z9hG4bK-bye", 2, &to_tag(&ok)),
    );
    let (sent, events) = drain(&mut e);
    assert_eq!(status(&sent[0]), 200);
    assert!(matches!(&events[0], Event::Ended { call_id, .. } if call_id == "keep"));
}

#[test]
fn hanging_up_sends_a_bye_in_the_dialog_until_it_is_answered() {
    let mut e = engine(10);
    let t0 = Instant::now();
    let ok = established(&mut e, t0, "hang@x");
    let tag = to_tag(&ok);
    e.hang_up(t0, "hang@x");
    assert_eq!(e.calls(), 0);
    let (sent, events) = drain(&mut e);
    assert!(events.is_empty());
    let bye = &sent[0];
    assert!(
        bye.starts_with("BYE sip:src@127.0.0.1:5070 SIP/2.0\r\n"),
        "{bye}"
    );
    assert!(
        bye.contains(&format!("From: <sip:sales@127.0.0.1>;tag={tag}\r\n")),
        "{bye}"
    );
    assert!(
        bye.contains("To: <sip:src@127.0.0.1>;tag=src1\r\n"),
        "{bye}"
    );
    assert!(bye.contains("Call-ID: hang@x\r\n") && bye.contains("CSeq: 2 BYE\r\n"));
    // Timer E: again after T1, then 2·T1.
    e.handle_timeout(t0 + T1);
    assert_eq!(drain(&mut e).0, vec![bye.clone()]);
    e.handle_timeout(t0 + T1 + T1);
    assert!(drain(&mut e).0.is_empty());
    e.handle_timeout(t0 + 3 * T1);
    assert_eq!(drain(&mut e).0.len(), 1);
    // The 200 ends the transaction: nothing more is sent.
    let branch = bye
        .lines()
        .find(|l| l.starts_with("Via:"))
        .and_then(|l| l.split("branch=").nth(1))
        .and_then(|b| b.split(';').next())
        .unwrap()
        .to_string();
    let answer = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:sales@127.0.0.1>;tag={tag}\r\n\
To: <sip:src@127.0.0.1>;tag=src1\r\nCall-ID: hang@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    e.handle_datagram(t0 + 3 * T1, SRC.parse().unwrap(), answer.as_bytes());
    assert_eq!(e.poll_timeout(), None);
    e.handle_timeout(t0 + 64 * T1);
    assert!(drain(&mut e).0.is_empty());
}

/// Everything the engine has to say, to whomever: (destination, text) and events.
fn drain_any(e: &mut Engine) -> (Vec<(SocketAddr, String)>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = e.poll_output() {
        match o {
            Output::Send { to, data } => sent.push((to, String::from_utf8(data).unwrap())),
            Output::Event(ev) => events.push(ev),
        }
    }
    (sent, events)
}

/// INVITEs that are never ACKed hold at most `max_unconfirmed_per_source` places of their
/// own source: past it that source gets 503 with Retry-After, nothing already answered is
/// given up, and a real call from another source is answered. Only timer H ends the
/// unACKed ones.
#[test]
fn unacked_invites_cannot_hold_the_places_of_real_calls() {
    let mut e = engine(6);
    let flood: SocketAddr = "127.0.0.9:5070".parse().unwrap();
    let t0 = Instant::now();
    let ok = established(&mut e, t0, "real-1");
    drain(&mut e);
    let mut refused = 0;
    for n in 0..20u32 {
        let now = t0 + Duration::from_millis(n as u64);
        let call = format!("bogus-{n}");
        let branch = format!("z9hG4bK-f{n}");
        let data = invite(&call, &branch, 1, None, SDP, &metadata("X"), true);
        e.handle_datagram(now, flood, &data);
        let (sent, events) = drain_any(&mut e);
        assert!(sent.iter().all(|(to, _)| *to == flood));
        assert!(
            !events.iter().any(|ev| matches!(ev, Event::Ended { .. })),
            "nothing answered is given up: {events:?}"
        );
        if let Some(Event::Offered { offer, .. }) = events.last() {
            let offer = offer.clone();
            let lines = [LineAnswer::Reject, LineAnswer::Reject];
            e.accept(now, &call, &offer, &lines);
            drain_any(&mut e);
        } else {
            assert_eq!(status(&sent[0].1), 503, "INVITE {n}: {sent:?}");
            assert!(sent[0].1.contains("Retry-After: 1"));
            refused += 1;
        }
    }
    assert_eq!(refused, 16, "the flood's source holds 4 places");
    // The refusals are sent once, not kept: only the four answered calls re-send their 200.
    e.handle_timeout(t0 + Duration::from_millis(600));
    let (sent, _) = drain_any(&mut e);
    assert!(
        sent.len() == 4 && sent.iter().all(|(_, m)| status(m) == 200),
        "{sent:?}"
    );
    // A real call from the SRC is still answered and confirmed; the first one stands.
    let t1 = t0 + Duration::from_secs(1);
    established(&mut e, t1, "real-2");
    assert!(e.calls.contains_key("real-1") && e.calls.contains_key("real-2"));
    e.handle_datagram(
        t1,
        SRC.parse().unwrap(),
        &request("BYE", "real-1", "z9hG4bK-b9", 2, &to_tag(&ok)),
    );
    let (sent, _) = drain(&mut e);
    assert_eq!(status(&sent[0]), 200);
    // Timer H ends the four that were never ACKed, and nothing else.
    e.handle_timeout(t0 + 65 * T1);
    let (_, events) = drain_any(&mut e);
    let ended: Vec<_> = events
        .iter()
        .filter(|ev| matches!(ev, Event::Ended { .. }))
        .collect();
    assert_eq!(ended.len(), 4, "{events:?}");
    assert!(e.calls.contains_key("real-2"));
}

/// A burst of answered calls whose ACKs arrive only after the whole burst (as they do when
/// an SRC's ACKs queue behind its own INVITEs): every one is confirmed, none given up.
#[test]
fn a_burst_of_answered_calls_waits_for_its_acks() {
    let mut e = Engine::new(Config {
        address: "127.0.0.1".parse().unwrap(),
        port: 5060,
        max_calls: 1000,
        max_unconfirmed: 2000,
        max_unconfirmed_per_source: 1000,
        max_unconfirmed_ports_per_source: 2000,
        max_lines_per_call: 16,
        allowed_sources: Default::default(),
    });
    let t0 = Instant::now();
    let mut tags = vec![];
    for n in 0..300u32 {
        let call = format!("burst-{n}");
        let data = invite(
            &call,
            &format!("z9hG4bK-{n}"),
            1,
            None,
            SDP,
            &metadata("B"),
            true,
        );
        e.handle_datagram(t0, SRC.parse().unwrap(), &data);
        let (_, events) = drain(&mut e);
        let Some(Event::Offered { offer, .. }) = events.last() else {
            panic!("INVITE {n} not offered: {events:?}")
        };
        let offer = offer.clone();
        e.accept(t0, &call, &offer, &[LineAnswer::Reject, LineAnswer::Reject]);
        let (sent, _) = drain(&mut e);
        tags.push((call, to_tag(sent.last().unwrap())));
    }
    for (n, (call, tag)) in tags.iter().enumerate() {
        let now = t0 + Duration::from_millis(500);
        e.handle_datagram(
            now,
            SRC.parse().unwrap(),
            &request("ACK", call, &format!("z9hG4bK-a{n}"), 1, tag),
        );
    }
    let (_, events) = drain(&mut e);
    assert!(!events.iter().any(|ev| matches!(ev, Event::Ended { .. })));
    assert_eq!(e.calls(), 300);
    assert_eq!(e.calls.values().filter(|c| c.established).count(), 300);
}

#[test]
fn sources_outside_the_allow_list_get_no_answer() {
    let mut e = Engine::new(Config {
        address: "127.0.0.1".parse().unwrap(),
        port: 5060,
        max_calls: 10,
        max_unconfirmed: 4,
        max_unconfirmed_per_source: 4,
        max_unconfirmed_ports_per_source: 2000,
        max_lines_per_call: 16,
        allowed_sources: AllowedSources::parse("10.0.0.0/8").unwrap(),
    });
    let t0 = Instant::now();
    e.handle_datagram(
        t0,
        SRC.parse().unwrap(),
        &invite("c1", "z9hG4bK-1", 1, None, SDP, &metadata("A"), true),
    );
    assert!(e.poll_output().is_none());
    assert_eq!(e.refused_sources(), 1);
    e.handle_datagram(
        t0,
        "10.1.2.3:5060".parse().unwrap(),
        &request("OPTIONS", "o1", "z9hG4bK-2", 1, "x"),
    );
    assert!(matches!(e.poll_output(), Some(Output::Send { .. })));
}

fn branch_of(msg: &str) -> String {
    msg.lines()
        .find(|l| l.starts_with("Via:"))
        .and_then(|l| l.split("branch=").nth(1))
        .and_then(|b| b.split(';').next())
        .unwrap()
        .trim()
        .to_string()
}

/// Tags and branches are globally unique (RFC 3261 §19.3): an engine started afresh (a
/// restarted process) never repeats the tags or BYE branches of the one before it.
#[test]
fn tags_and_branches_differ_across_restarts() {
    let t0 = Instant::now();
    let mut seen_tags = std::collections::HashSet::new();
    let mut seen_branches = std::collections::HashSet::new();
    for _restart in 0..3 {
        let mut e = engine(4);
        let ok = established(&mut e, t0, "same-call@x");
        let tag = to_tag(&ok);
        assert!(tag.len() >= 16, "{tag}: too short to be unique");
        assert!(seen_tags.insert(tag.clone()), "tag {tag} repeated");
        e.hang_up(t0, "same-call@x");
        let (sent, _) = drain(&mut e);
        let branch = branch_of(&sent[0]);
        assert!(branch.starts_with("z9hG4bK"), "{branch}");
        assert!(
            seen_branches.insert(branch.clone()),
            "branch {branch} repeated"
        );
    }
}

/// Unconfirmed calls from one source are counted in the RTP ports their answers hold: a
/// call of many lines weighs its lines (at most `max_lines_per_call`), not one.
#[test]
fn unconfirmed_calls_are_counted_in_ports_per_source() {
    let mut e = Engine::new(Config {
        address: "127.0.0.1".parse().unwrap(),
        port: 5060,
        max_calls: 10,
        max_unconfirmed: 100,
        max_unconfirmed_per_source: 100,
        max_unconfirmed_ports_per_source: 20,
        max_lines_per_call: 16,
        allowed_sources: Default::default(),
    });
    let mut wide =
        String::from("v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n");
    for n in 0..500 {
        wide += &format!(
            "m=audio {} RTP/AVP 0\r\na=label:{}\r\na=sendonly\r\n",
            6000 + 2 * n,
            n + 1
        );
    }
    let t0 = Instant::now();
    let src = SRC.parse().unwrap();
    e.handle_datagram(
        t0,
        src,
        &invite("w1", "z9hG4bK-w1", 1, None, &wide, &metadata("A"), true),
    );
    let (_, events) = drain(&mut e);
    assert!(matches!(events[..], [Event::Offered { .. }]), "{events:?}");
    // 16 ports held; another 16 would pass 20.
    e.handle_datagram(
        t0,
        src,
        &invite("w2", "z9hG4bK-w2", 1, None, &wide, &metadata("A"), true),
    );
    let (sent, events) = drain(&mut e);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(status(sent.last().unwrap()), 503);
    // A two-line call still fits (16 + 2 ≤ 20).
    e.handle_datagram(
        t0,
        src,
        &invite("c1", "z9hG4bK-c1", 1, None, SDP, &metadata("A"), true),
    );
    let (_, events) = drain(&mut e);
    assert!(matches!(events[..], [Event::Offered { .. }]), "{events:?}");
}
