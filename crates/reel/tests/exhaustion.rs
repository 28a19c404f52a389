//! Exhaustion attacks on the HTTP side, played on loopback against the real binary: a
//! slowloris of thousands of connections, and a flood of WHIP offers from one token. Each
//! asserts the bound that holds and that the service goes on for everyone else.

mod common;

use common::{serial, Server};
use reel_testkit::http;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The test process opens thousands of sockets: its soft open-file limit up to the hard one
/// (the server it starts inherits it).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    assert!(
        limit.rlim_cur >= 8192,
        "the open-file limit ({}) is too low for this test",
        limit.rlim_cur
    );
}

fn open_fds(server: &Server) -> usize {
    let pid = server.child.as_ref().unwrap().id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A connection from `source` (any 127.0.0.0/8 address is this host) that has sent the first
/// line of a request and will never finish its head.
fn slow_client(server: &SocketAddr, source: [u8; 4]) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&(*server).into()).ok()?;
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: reel\r\n")
        .ok()?;
    stream.set_nonblocking(true).unwrap();
    Some(stream)
}

/// Closed by the server: a read gives end-of-file or a reset (not "would block").
fn closed_by_server(mut stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn healthz_answers_within(server: &Server, limit: Duration) -> bool {
    let started = Instant::now();
    http::request("GET", &server.url("/healthz"), None, None).is_ok_and(|r| r.status == 200)
        && started.elapsed() < limit
}

#[test]
fn a_slowloris_of_thousands_leaves_healthz_answering_and_is_reclaimed() {
    let _one = serial();
    raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("REEL_HTTP_HEADER_TIMEOUT_SECS", "3")]);
    let addr: SocketAddr = server.http.parse().unwrap();
    let fds_before = open_fds(&server);
    // 3,000 slow connections from twelve addresses (250 each, under the per-address cap of
    // 256), then 300 from a thirteenth: 256 of those held, the rest closed at once.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = Vec::new();
    for n in 0..3000u32 {
        let source = [127, 0, 1, 1 + (n % 12) as u8];
        slow.push(slow_client(&addr, source).expect("a slow connection"));
    }
    let greedy: Vec<TcpStream> = (0..300)
        .filter_map(|_| slow_client(&addr, [127, 0, 2, 1]))
        .collect();
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let greedy_closed = greedy.iter().filter(|s| closed_by_server(s)).count();
    assert!(
        (40..=50).contains(&greedy_closed),
        "{greedy_closed} of 300 from one address closed at once (cap 256)"
    );
    let fds_during = open_fds(&server);
    // /healthz from another address answers while the attack holds its connections, and
    // trickling more header lines does not keep a connection past the head's deadline.
    for _ in 0..4 {
        assert!(
            healthz_answers_within(&server, Duration::from_secs(1)),
            "/healthz did not answer within 1 s during the slowloris"
        );
        for s in slow.iter_mut() {
            let _ = s.write_all(b"X-Slow: 1\r\n");
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    // The head's deadline (3 s) reclaims every one of them.
    let deadline = started + opened_in + Duration::from_secs(6);
    let mut open = slow.len() + greedy.len();
    while open > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        open = slow
            .iter()
            .chain(greedy.iter())
            .filter(|s| !closed_by_server(s))
            .count();
    }
    let fds_after = open_fds(&server);
    eprintln!(
        "slowloris: 3,300 connections opened in {opened_in:?}; server fds {fds_before} → \
         {fds_during} → {fds_after}; {open} still open after {:?}",
        started.elapsed()
    );
    assert_eq!(open, 0, "slow connections outlived the header timeout");
    assert!(
        fds_during <= fds_before + 3000 + 256 + 16,
        "{fds_during} fds"
    );
    assert!(
        fds_after <= fds_before + 16,
        "{fds_after} fds after, {fds_before} before"
    );
    assert!(healthz_answers_within(&server, Duration::from_secs(1)));
}

/// One POST of a WHIP offer from `source`, on a connection of its own: the status and body.
fn post_offer(
    http_addr: &SocketAddr,
    source: [u8; 4],
    path: &str,
    token: &str,
    offer: &str,
) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&(*http_addr).into()).unwrap();
    let mut stream: TcpStream = socket.into();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: reel\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{offer}",
        offer.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

/// The attack that once took all 400 publisher places in under a second (and wrote a
/// publication row and a failure webhook for each refused offer): one token's offers that
/// never connect. Two are admitted (`whip_max_pending_per_token`), the rest get 429 and
/// write nothing, and a publisher in another room still publishes.
#[test]
fn a_one_token_offer_flood_writes_nothing_and_leaves_another_room_publishing() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("REEL_MAX_PUBLISHERS", "20"),
            ("REEL_WHIP_OFFER_BURST_PER_ADDRESS", "40"),
            ("REEL_WHIP_FIRST_CONTACT_TIMEOUT_SECS", "2"),
        ],
    );
    let addr: SocketAddr = server.http.parse().unwrap();
    let flooded = server.room(30);
    let (token, whip) = server.token(&flooded, "mallory", "camera");
    let path = whip.split_once(&server.http).unwrap().1.to_string();
    let offer = reel_testkit::audio_offer();
    let mut statuses: std::collections::BTreeMap<(u16, String), usize> = Default::default();
    for _ in 0..100 {
        let (status, body) = post_offer(&addr, [127, 0, 3, 1], &path, &token, &offer);
        let code = ["too_many_pending", "rate_limited", "at_capacity"]
            .into_iter()
            .find(|c| body.contains(c))
            .unwrap_or("")
            .to_string();
        *statuses.entry((status, code)).or_default() += 1;
    }
    eprintln!("one-token flood of 100 offers: {statuses:?}");
    assert_eq!(
        statuses.get(&(201, String::new())),
        Some(&2),
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .get(&(429, "too_many_pending".into()))
            .copied()
            .unwrap_or(0)
            + statuses
                .get(&(429, "rate_limited".into()))
                .copied()
                .unwrap_or(0),
        98,
        "{statuses:?}"
    );
    // Only the two admitted offers wrote anything.
    let sessions = server.get(&format!("/v1/sessions?room_id={flooded}"))["data"].clone();
    let participants: usize = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            server.get(&format!("/v1/sessions/{}", s["id"].as_str().unwrap()))["participants"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(participants, 2);
    // Another room's publisher, during the flood's aftermath, publishes and is recorded.
    let other = server.room(1);
    let (token, whip) = server.token(&other, "alice", "camera");
    let report =
        reel_testkit::publish(&common::camera(&whip, &token, 2)).expect("the other room publishes");
    let assets = server.wait_assets(&report.session_id, 1, Duration::from_secs(20));
    assert_eq!(assets.len(), 1);
    // The two offers that never sent a STUN request went at the 2 s first-contact deadline:
    // two failures, no more (the refused ones left no publication to fail).
    let failures = common::events(&server)
        .into_iter()
        .filter(|(t, p)| t == "stream.recording.failure" && p["room_id"] == flooded.as_str())
        .count();
    assert!(failures <= 2, "{failures} failures for the flooded room");
    // Reel gave up on them: they failed ICE (not "left"), and the log says why, once each.
    let ended: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            server.get(&format!("/v1/sessions/{}", s["id"].as_str().unwrap()))["participants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["end_reason"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ended, ["ice_failed", "ice_failed"]);
    let log = server.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("publisher gone") && l.contains("ice_failed"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines
        .iter()
        .all(|l| l.contains("no ICE check reached Reel within 2 s of the answer")));
}

/// A class or a clinic behind one NAT: 100 participants of one room, each with its own
/// token, offer within seconds from one address. The default limits admit every one (the
/// flood limits above are per token, per address rate and per room, sized for this).
#[test]
fn a_hundred_participants_of_one_room_behind_one_address_all_get_in_on_the_defaults() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[]);
    let addr: SocketAddr = server.http.parse().unwrap();
    let room = server.room(30);
    let tokens: Vec<(String, String)> = (0..100)
        .map(|i| server.token(&room, &format!("student-{i}"), "camera"))
        .collect();
    let offer = reel_testkit::audio_offer();
    let started = std::time::Instant::now();
    let refused: Vec<(u16, String)> = tokens
        .iter()
        .map(|(token, whip)| {
            let path = whip.split_once(&server.http).unwrap().1;
            post_offer(&addr, [127, 0, 3, 2], path, token, &offer)
        })
        .filter(|(status, _)| *status != 201)
        .collect();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "100 offers took {took:?}");
    assert!(
        refused.is_empty(),
        "{} of 100 refused: {:?}",
        refused.len(),
        refused.first()
    );
}
