//! The publisher: offer → WHIP POST → answer, ICE and DTLS as the controlling agent, then
//! frames paced in real time from the files, looping them for long runs.

use crate::http;
use reel_media::{codec, ivf, ogg};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// WHIP DELETE on the resource.
    Delete,
    /// Just stop sending, as a crashed browser would.
    Vanish,
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub whip_url: String,
    pub token: String,
    pub video: Option<PathBuf>,
    /// Simulcast instead of `video`: (rid, IVF file) per layer.
    pub simulcast: Vec<(String, PathBuf)>,
    pub audio: Option<PathBuf>,
    pub duration: Duration,
    /// Probability of dropping each outgoing datagram once connected.
    pub loss: f64,
    /// Probability of holding a datagram back behind the next one.
    pub reorder: f64,
    pub leave: Leave,
    pub seed: u64,
}

impl PublishOptions {
    pub fn new(whip_url: &str, token: &str) -> Self {
        PublishOptions {
            whip_url: whip_url.into(),
            token: token.into(),
            video: None,
            simulcast: Vec::new(),
            audio: None,
            duration: Duration::from_secs(3),
            loss: 0.0,
            reorder: 0.0,
            leave: Leave::Delete,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublishReport {
    pub resource_url: String,
    pub session_id: String,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub datagrams_dropped: u64,
    /// How long media was sent, from the first frame to the last.
    pub sent_for: Duration,
}

struct Rng(u64);
impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

struct Source {
    mid: Mid,
    /// (send offset from start, rtp time, data)
    frames: Vec<(Duration, u64, Vec<u8>)>,
    /// Length of one pass over the file: time and RTP ticks.
    period: (Duration, u64),
    next: usize,
    sent: u64,
}

impl Source {
    /// Frames as (send offset, RTP time, data); one pass lasts `ticks` RTP ticks at `rate`.
    fn new(mid: Mid, frames: Vec<(Duration, u64, Vec<u8>)>, ticks: u64, rate: u64) -> Source {
        let period = (Duration::from_micros(ticks * 1_000_000 / rate), ticks);
        Source {
            mid,
            frames,
            period,
            next: 0,
            sent: 0,
        }
    }

    fn due(&self, elapsed: Duration) -> Option<(u64, &[u8], Duration)> {
        let lap = (self.next / self.frames.len()) as u32;
        let (offset, rtp, data) = &self.frames[self.next % self.frames.len()];
        let at = *offset + self.period.0 * lap;
        (at <= elapsed).then(|| (rtp + self.period.1 * lap as u64, data.as_slice(), at))
    }
    fn next_at(&self) -> Duration {
        let lap = (self.next / self.frames.len()) as u32;
        self.frames[self.next % self.frames.len()].0 + self.period.0 * lap
    }
}

/// An Annex B H.264 file written with access unit delimiters (x264 `aud=1`), 30 fps.
fn h264_source(mid: Mid, path: &PathBuf) -> Result<Source, String> {
    use reel_media::h264;
    let stream = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut units: Vec<Vec<u8>> = Vec::new();
    for nal in h264::nal_units(&stream) {
        if h264::nal_type(nal) == h264::NAL_AUD || units.is_empty() {
            units.push(Vec::new());
        }
        let au = units.last_mut().expect("pushed above");
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(nal);
    }
    units.retain(|u| h264::nal_units(u).any(|n| matches!(h264::nal_type(n), 1 | 5)));
    if units.is_empty() {
        return Err("no H.264 access units".into());
    }
    let frames: Vec<_> = units
        .into_iter()
        .enumerate()
        .map(|(i, au)| {
            (
                Duration::from_micros(i as u64 * 33_333),
                i as u64 * 3000,
                au,
            )
        })
        .collect();
    let ticks = frames.len() as u64 * 3000;
    Ok(Source::new(mid, frames, ticks, 90_000))
}

fn video_source(mid: Mid, path: &PathBuf) -> Result<Source, String> {
    if path.extension().is_some_and(|e| e == "h264") {
        return h264_source(mid, path);
    }
    let file = ivf::parse(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)
        .map_err(|e| e.to_string())?;
    if file.frames.is_empty() {
        return Err("empty IVF".into());
    }
    let (num, den) = (file.timebase_num as u64, file.timebase_den as u64);
    let frames: Vec<_> = file
        .frames
        .iter()
        .map(|f| {
            (
                Duration::from_micros(f.pts * num * 1_000_000 / den),
                f.pts * num * 90_000 / den,
                f.data.clone(),
            )
        })
        .collect();
    let step = frames.get(1).map(|f| f.1 - frames[0].1).unwrap_or(3000);
    let ticks = frames.last().expect("non-empty").1 + step;
    Ok(Source::new(mid, frames, ticks, 90_000))
}

fn audio_source(mid: Mid, path: &PathBuf) -> Result<Source, String> {
    let packets =
        ogg::opus_packets(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)
            .map_err(|e| e.to_string())?;
    let mut rtp = 0u64;
    let mut frames = Vec::new();
    for p in packets {
        frames.push((
            Duration::from_micros(rtp * 1_000_000 / 48_000),
            rtp,
            p.clone(),
        ));
        rtp += codec::opus_packet_samples(&p).unwrap_or(960) as u64;
    }
    if frames.is_empty() {
        return Err("empty Ogg".into());
    }
    Ok(Source::new(mid, frames, rtp, 48_000))
}

fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    // Location is an absolute path: keep scheme://host:port of the WHIP URL.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    format!("{}{}", &base[..host_end], location)
}

/// A valid WHIP offer (one Opus send-only line) from a client that will never connect:
/// what a flood of offers sends.
pub fn audio_offer() -> String {
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    let local: SocketAddr = "127.0.0.1:9".parse().expect("address");
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    api.apply().expect("an offer").0.to_sdp_string()
}

pub fn publish(opts: &PublishOptions) -> Result<PublishReport, String> {
    // The video codec follows the IVF file: VP80 or VP90.
    let first_video = opts
        .simulcast
        .first()
        .map(|(_, p)| p)
        .or(opts.video.as_ref());
    let video_codec = match first_video {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            match bytes.get(8..12) {
                _ if p.extension().is_some_and(|e| e == "h264") => Codec::H264,
                Some(b"VP90") => Codec::Vp9,
                _ => Codec::Vp8,
            }
        }
        None => Codec::Vp8,
    };
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(video_codec == Codec::Vp8)
        .enable_vp9(video_codec == Codec::Vp9)
        .enable_h264(video_codec == Codec::H264)
        .build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut api = rtc.sdp_api();
    let audio_mid = opts.audio.as_ref().map(|_| {
        api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("reel".into()),
            None,
            None,
        )
    });
    let video_mid = if !opts.simulcast.is_empty() {
        let mut layers = Simulcast::new();
        for (rid, _) in &opts.simulcast {
            layers.add_send_layer(SimulcastLayer::new(rid));
        }
        let stream = Some("reel".into());
        Some(api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            stream,
            None,
            Some(layers),
        ))
    } else {
        let stream = Some("reel".into());
        (opts.video.as_ref())
            .map(|_| api.add_media(MediaKind::Video, Direction::SendOnly, stream, None, None))
    };
    let (offer, pending) = api.apply().ok_or("nothing to publish")?;

    let resp = http::request(
        "POST",
        &opts.whip_url,
        Some(&opts.token),
        Some(("application/sdp", offer.to_sdp_string().as_bytes())),
    )?;
    if resp.status != 201 {
        return Err(format!(
            "WHIP POST answered {}: {}",
            resp.status,
            resp.text()
        ));
    }
    let location = resp.header("location").ok_or("no Location header")?;
    let resource_url = resolve(&opts.whip_url, location);
    let session_id = resp.header("x-reel-session-id").unwrap_or("").to_string();
    let answer = SdpAnswer::from_sdp_string(&resp.text()).map_err(|e| format!("answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| format!("answer: {e}"))?;

    let mut sources: Vec<(Codec, Option<Rid>, Source)> = Vec::new();
    if let Some(mid) = video_mid {
        for (rid, path) in &opts.simulcast {
            sources.push((
                video_codec,
                Some(Rid::from(rid.as_str())),
                video_source(mid, path)?,
            ));
        }
        if let (true, Some(path)) = (opts.simulcast.is_empty(), &opts.video) {
            sources.push((video_codec, None, video_source(mid, path)?));
        }
    }
    if let (Some(mid), Some(path)) = (audio_mid, &opts.audio) {
        sources.push((Codec::Opus, None, audio_source(mid, path)?));
    }

    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut held: Option<(Vec<u8>, SocketAddr)> = None;
    let mut dropped = 0u64;
    let mut connected_at: Option<Instant> = None;
    let began = Instant::now();
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        if connected_at.is_none() && now.duration_since(began) > Duration::from_secs(15) {
            return Err("ICE/DTLS did not connect within 15 s".into());
        }
        if let Some(start) = connected_at {
            let elapsed = now.duration_since(start);
            if elapsed >= opts.duration {
                break;
            }
            for (codec, rid, source) in sources.iter_mut() {
                while let Some((rtp, data, at)) = source.due(elapsed) {
                    let data = data.to_vec();
                    let mut writer = rtc.writer(source.mid).ok_or("no writer for mid")?;
                    if let Some(rid) = rid {
                        writer = writer.rid(*rid);
                    }
                    let pt = writer
                        .payload_params()
                        .find(|p| p.spec().codec == *codec)
                        .map(|p| p.pt())
                        .ok_or("codec not negotiated")?;
                    let freq = if *codec == Codec::Opus {
                        Frequency::FORTY_EIGHT_KHZ
                    } else {
                        Frequency::NINETY_KHZ
                    };
                    writer
                        .write(pt, start + at, MediaTime::new(rtp, freq), data)
                        .map_err(|e| e.to_string())?;
                    source.next += 1;
                    source.sent += 1;
                }
            }
        }
        let timeout = loop {
            match rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let lossy = connected_at.is_some();
                    if lossy && rng.chance(opts.loss) {
                        dropped += 1;
                        continue;
                    }
                    if lossy && held.is_none() && rng.chance(opts.reorder) {
                        held = Some((t.contents.to_vec(), t.destination));
                        continue;
                    }
                    let _ = socket.send_to(&t.contents, t.destination);
                    if let Some((data, dest)) = held.take() {
                        let _ = socket.send_to(&data, dest);
                    }
                }
                Output::Event(Event::Connected) => connected_at = Some(Instant::now()),
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    return Err("ICE disconnected".into());
                }
                Output::Event(_) => {}
            }
        };
        let mut wake = timeout;
        if let Some(start) = connected_at {
            for (_, _, s) in &sources {
                wake = wake.min(start + s.next_at());
            }
            wake = wake.min(start + opts.duration);
        }
        let wait = wake
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: local,
                            contents,
                        },
                    );
                    rtc.handle_input(input).map_err(|e| e.to_string())?;
                }
            }
            Err(_) => rtc
                .handle_input(Input::Timeout(Instant::now()))
                .map_err(|e| e.to_string())?,
        }
    }
    let sent_for = connected_at.map(|s| s.elapsed()).unwrap_or_default();
    // Let the last packets and a final sender report go out.
    let flush_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < flush_until {
        match rtc.poll_output().map_err(|e| e.to_string())? {
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
            }
            Output::Timeout(_) => {
                std::thread::sleep(Duration::from_millis(10));
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| e.to_string())?;
            }
            Output::Event(_) => {}
        }
    }
    if opts.leave == Leave::Delete {
        let resp = http::request("DELETE", &resource_url, Some(&opts.token), None)?;
        if resp.status != 200 {
            return Err(format!(
                "WHIP DELETE answered {}: {}",
                resp.status,
                resp.text()
            ));
        }
    }
    // Simulcast layers each carry every frame: count one layer's worth.
    let count = |c: Codec| {
        let sent = sources
            .iter()
            .filter(|(k, _, _)| *k == c)
            .map(|(_, _, s)| s.sent);
        sent.max().unwrap_or(0)
    };
    Ok(PublishReport {
        resource_url,
        session_id,
        video_frames: count(video_codec),
        audio_frames: count(Codec::Opus),
        datagrams_dropped: dropped,
        sent_for,
    })
}
