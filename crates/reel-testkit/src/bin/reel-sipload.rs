//! SIPREC load generator: N concurrent two-party G.711 calls (two PCMU streams of 50
//! packets/s each, paced in real time from one thread) into one running Reel, hung up after
//! `--seconds`; then every journal of the run is read back from the server's data
//! directory and checked for missing packets. Reports the server's CPU per call.
//!
//! reel-sipload --sip 127.0.0.1:5060 --room ROOM_ID --pid SERVER_PID --data-dir DIR \
//!              --calls 300 --seconds 20
//! Prints one JSON line with the measurements.

use reel_media::journal;
use reel_testkit::proc::{cpu_seconds, rss_kib};
use serde_json::json;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Args {
    sip: SocketAddr,
    room: String,
    pid: u32,
    data_dir: PathBuf,
    calls: usize,
    seconds: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let (mut sip, mut room, mut pid, mut data_dir) = (None, None, None, None);
    let (mut calls, mut seconds) = (100usize, 20u64);
    while let Some(flag) = a.next() {
        let mut v = || a.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sip" => sip = Some(v()?.parse().map_err(|_| "bad --sip")?),
            "--room" => room = Some(v()?),
            "--pid" => pid = Some(v()?.parse().map_err(|_| "bad --pid")?),
            "--data-dir" => data_dir = Some(PathBuf::from(v()?)),
            "--calls" => calls = v()?.parse().map_err(|_| "bad --calls")?,
            "--seconds" => seconds = v()?.parse().map_err(|_| "bad --seconds")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        sip: sip.ok_or("--sip is required")?,
        room: room.ok_or("--room is required")?,
        pid: pid.ok_or("--pid is required")?,
        data_dir: data_dir.ok_or("--data-dir is required")?,
        calls,
        seconds,
    })
}

struct Call {
    id: String,
    /// Its place in the run (names its tags and branches).
    n: usize,
    to_tag: Option<String>,
    ports: Vec<u16>,
}

fn invite(a: &Args, local: SocketAddr, call: &str, n: usize) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=load {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\nm=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n",
        ip = local.ip()
    );
    let meta = format!(
        "<?xml version=\"1.0\"?><recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode>\
<participant participant_id=\"a\"><nameID aor=\"sip:a{n}@load.example\"><name>Caller {n}</name></nameID></participant>\
<participant participant_id=\"b\"><nameID aor=\"sip:b{n}@load.example\"><name>Agent {n}</name></nameID></participant>\
<stream stream_id=\"s1\"><label>1</label></stream><stream stream_id=\"s2\"><label>2</label></stream>\
<participantstreamassoc participant_id=\"a\"><send>s1</send></participantstreamassoc>\
<participantstreamassoc participant_id=\"b\"><send>s2</send></participantstreamassoc></recording>"
    );
    let body = format!(
        "--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{meta}\r\n--b--\r\n"
    );
    format!(
        "INVITE sip:{room}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-i{n}\r\nMax-Forwards: 70\r\n\
From: <sip:load@{local}>;tag=l{n}\r\nTo: <sip:{room}@{sip}>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:load@{local}>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=b\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len(),
        room = a.room,
        sip = a.sip,
    )
    .into_bytes()
}

fn in_dialog(a: &Args, local: SocketAddr, method: &str, cseq: u32, c: &Call, n: usize) -> Vec<u8> {
    format!(
        "{method} sip:{room}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{method}{n}\r\nMax-Forwards: 70\r\n\
From: <sip:load@{local}>;tag=l{n}\r\nTo: <sip:{room}@{sip}>;tag={tag}\r\nCall-ID: {id}\r\nCSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n",
        room = a.room,
        sip = a.sip,
        tag = c.to_tag.as_deref().unwrap_or(""),
        id = c.id,
    )
    .into_bytes()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// Reads SIP responses until every call has a final response to `method` (retransmissions
/// counted once); returns how many calls got a 200. Every 200 to an INVITE, retransmissions
/// too, is handed to `ack` the moment it arrives, as a UAC acknowledges it (RFC 3261 §13.2.2.4).
fn collect(
    sock: &UdpSocket,
    calls: &mut HashMap<String, Call>,
    until: Instant,
    method: &str,
    ack: &mut dyn FnMut(&Call),
) -> usize {
    let mut buf = vec![0u8; 65_536];
    let mut finals = std::collections::HashSet::new();
    let mut ok = 0;
    while Instant::now() < until {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = msg.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
        if !msg.starts_with("SIP/2.0") || code < 200 {
            continue;
        }
        let Some(cseq) = header(&msg, "CSeq") else {
            continue;
        };
        if !cseq.ends_with(method) {
            continue;
        }
        let Some(call) = header(&msg, "Call-ID").and_then(|id| calls.get_mut(id)) else {
            continue;
        };
        if method == "INVITE" && code == 200 {
            call.to_tag = header(&msg, "To")
                .and_then(|t| t.split(";tag=").nth(1))
                .map(|t| t.split(';').next().unwrap_or(t).to_string());
            ack(call);
        }
        if !finals.insert(call.id.clone()) {
            continue;
        }
        ok += usize::from(code == 200);
        if method == "INVITE" {
            if code != 200 {
                eprintln!(
                    "sipload: {} refused: {}",
                    call.id,
                    msg.lines().next().unwrap_or("")
                );
                continue;
            }
            call.ports = msg
                .lines()
                .filter_map(|l| l.strip_prefix("m=audio "))
                .filter_map(|l| l.split(' ').next()?.parse().ok())
                .collect();
        }
        if finals.len() == calls.len() {
            break;
        }
    }
    ok
}

/// Every journal under the data directory: (frames, ended cleanly).
fn journals(dir: &Path) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("journals")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rjnl") {
                let s = std::fs::File::open(&p)
                    .ok()
                    .and_then(|f| journal::summarize(std::io::BufReader::new(f)).ok());
                out.push(s.map_or((0, false), |s| (s.frames, s.ended_cleanly)));
            }
        }
    }
    out
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("reel-sipload: {e}");
            std::process::exit(2);
        }
    };
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut calls: HashMap<String, Call> = HashMap::new();
    let mut order = Vec::new();
    for n in 0..args.calls {
        let id = format!("load-{n}-{}@load.example", std::process::id());
        sock.send_to(&invite(&args, local, &id, n), args.sip)
            .expect("send");
        order.push(id.clone());
        calls.insert(
            id.clone(),
            Call {
                id,
                n,
                to_tag: None,
                ports: Vec::new(),
            },
        );
        // An SBC starts calls over time, not all in one millisecond.
        if n % 20 == 19 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let answered = collect(
        &sock,
        &mut calls,
        Instant::now() + Duration::from_secs(60),
        "INVITE",
        &mut |c| {
            let _ = sock.send_to(&in_dialog(&args, local, "ACK", 1, c, c.n), args.sip);
        },
    );
    let targets: Vec<SocketAddr> = order
        .iter()
        .flat_map(|id| calls[id].ports.iter())
        .map(|p| SocketAddr::new(args.sip.ip(), *p))
        .collect();

    // One µ-law 400 Hz tone period fits 20 samples; a packet is 160 samples.
    let payload: Vec<u8> = (0..160)
        .map(|i| {
            let x = (i as f64 * std::f64::consts::TAU / 20.0).sin();
            if x >= 0.0 {
                0xa0
            } else {
                0x20
            }
        })
        .collect();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packets = args.seconds * 50;
    let cpu0 = cpu_seconds(args.pid);
    let start = Instant::now();
    let mut late_ms = 0u128;
    let mut packet = vec![0u8; 12 + 160];
    packet[0] = 0x80;
    packet[12..].copy_from_slice(&payload);
    for k in 0..packets {
        let due = start + Duration::from_millis(20 * k);
        match due.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => late_ms = late_ms.max(due.elapsed().as_millis()),
        }
        let seq = k as u16;
        let ts = (k * 160) as u32;
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&ts.to_be_bytes());
        for (i, t) in targets.iter().enumerate() {
            packet[8..12].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            let _ = rtp.send_to(&packet, t);
        }
    }
    let media_s = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(args.pid) - cpu0;
    let rss = rss_kib(args.pid);
    // Let the last packets in before hanging up.
    std::thread::sleep(Duration::from_millis(300));
    for (n, id) in order.iter().enumerate() {
        let c = &calls[id];
        if c.to_tag.is_some() {
            sock.send_to(&in_dialog(&args, local, "BYE", 2, c, n), args.sip)
                .unwrap();
        }
    }
    let byes = collect(
        &sock,
        &mut calls,
        Instant::now() + Duration::from_secs(30),
        "BYE",
        &mut |_| {},
    );

    // Every stream's journal, once the server has closed them all.
    let expected = 2 * answered;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut js = journals(&args.data_dir);
    while (js.len() < expected || js.iter().any(|j| !j.1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        js = journals(&args.data_dir);
    }
    let complete = js.iter().filter(|(frames, _)| *frames == packets).count();
    let frames: u64 = js.iter().map(|j| j.0).sum();
    // Journals are not told apart by call here: each incomplete stream spoils at most one.
    let calls_complete = answered.saturating_sub(expected.saturating_sub(complete));
    println!(
        "{}",
        json!({
            "calls": args.calls,
            "answered": answered,
            "hung_up": byes,
            "streams": targets.len(),
            "packets_per_stream": packets,
            "packets_sent": packets * targets.len() as u64,
            "packets_journaled": frames,
            "streams_complete": complete,
            "calls_without_missing_packets": calls_complete,
            "sender_late_ms_max": late_ms,
            "media_seconds": media_s,
            "server_cpu_seconds": cpu,
            "cpu_ms_per_call_second": if answered > 0 { cpu * 1000.0 / (answered as f64 * media_s) } else { 0.0 },
            "cores_used": cpu / media_s,
            "server_rss_kib": rss,
        })
    );
}
