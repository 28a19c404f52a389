//! The SRC's SDP offer and the recorder's answer (RFC 7866 §8.1.1, RFC 3264).
//!
//! A SIPREC offer has one m-line per recorded stream (typically the two directions of the
//! call, four with video), each `sendonly` from the SRC and tied to the metadata by
//! `a=label`. The answer accepts each line it records with a port of Reel's and `recvonly`,
//! one codec (plus telephone-event, which is accepted and dropped), and rejects the rest
//! with port 0 (RFC 3264 §6), as media policy `audio` does to video lines.

use crate::SiprecError;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// Whether the SRC sends media on the line: `inactive` (and `recvonly`) are holds, which
    /// pause the recording.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Audio,
    Video,
    Other,
}

/// A codec Reel records, as negotiated on one m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub payload_type: u8,
    /// Encoding name, upper case (`PCMU`, `PCMA`, `G722`, `OPUS`, `H264`, `VP8`).
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u8,
    /// The `a=fmtp` parameters, kept for the answer.
    pub fmtp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    pub media: MediaType,
    /// As written (`audio`, `video`, `application`, …).
    pub media_name: String,
    pub port: u16,
    pub proto: String,
    pub payload_types: Vec<String>,
    pub formats: Vec<Format>,
    pub label: Option<String>,
    pub direction: Direction,
    pub connection: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub connection: Option<IpAddr>,
    pub media: Vec<MediaLine>,
}

fn bad(what: impl std::fmt::Display) -> SiprecError {
    SiprecError::Sdp(what.to_string())
}

/// The codecs Reel can record, in the order it prefers them: wideband before narrowband.
const RECORDABLE: &[&str] = &["OPUS", "G722", "PCMA", "PCMU", "H264", "VP8"];

fn static_format(pt: u8) -> Option<(&'static str, u32, u8)> {
    match pt {
        0 => Some(("PCMU", 8000, 1)),
        8 => Some(("PCMA", 8000, 1)),
        // RFC 3551 §4.5.2: G.722's RTP clock is 8000 although it samples at 16 kHz.
        9 => Some(("G722", 8000, 1)),
        _ => None,
    }
}

fn connection(v: &str) -> Result<IpAddr, SiprecError> {
    let mut f = v.split_whitespace();
    match (f.next(), f.next(), f.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(addr)) => addr
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad(format!("bad c= address {addr:?}"))),
        _ => Err(bad(format!("bad c= line {v:?}"))),
    }
}

impl Offer {
    pub fn parse(sdp: &str) -> Result<Offer, SiprecError> {
        let mut offer = Offer {
            connection: None,
            media: Vec::new(),
        };
        let mut session_direction = Direction::SendRecv;
        for line in sdp.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line
                .split_once('=')
                .filter(|(k, _)| k.len() == 1)
                .ok_or_else(|| bad(format!("bad line {line:?}")))?;
            let current = offer.media.last_mut();
            match (kind, current) {
                ("c", None) => offer.connection = Some(connection(value)?),
                ("c", Some(m)) => m.connection = Some(connection(value)?),
                ("m", _) => {
                    let mut f = value.split_whitespace();
                    let (Some(name), Some(port), Some(proto)) = (f.next(), f.next(), f.next())
                    else {
                        return Err(bad(format!("bad m= line {value:?}")));
                    };
                    let port: u16 = port
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|_| bad(format!("bad port in {value:?}")))?;
                    let payload_types: Vec<String> = f.map(str::to_string).collect();
                    if payload_types.is_empty() {
                        return Err(bad(format!("m= line without formats {value:?}")));
                    }
                    let formats = payload_types
                        .iter()
                        .filter_map(|p| p.parse::<u8>().ok())
                        .filter_map(|pt| {
                            let (enc, rate, ch) = static_format(pt)?;
                            Some(Format {
                                payload_type: pt,
                                encoding: enc.into(),
                                clock_rate: rate,
                                channels: ch,
                                fmtp: None,
                            })
                        })
                        .collect();
                    offer.media.push(MediaLine {
                        media: match name {
                            "audio" => MediaType::Audio,
                            "video" => MediaType::Video,
                            _ => MediaType::Other,
                        },
                        media_name: name.into(),
                        port,
                        proto: proto.into(),
                        payload_types,
                        formats,
                        label: None,
                        direction: session_direction,
                        connection: None,
                    });
                }
                ("a", current) => {
                    let (attr, arg) = value.split_once(':').unwrap_or((value, ""));
                    let direction = match attr {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    match (current, direction) {
                        (None, Some(d)) => session_direction = d,
                        (Some(m), Some(d)) => m.direction = d,
                        (Some(m), None) => m.attribute(attr, arg)?,
                        (None, None) => {}
                    }
                }
                _ => {}
            }
        }
        if offer.media.is_empty() {
            return Err(bad("no m= line"));
        }
        Ok(offer)
    }

    /// The labels of the m-lines (for checking the metadata against).
    pub fn labels(&self) -> Vec<&str> {
        self.media
            .iter()
            .filter_map(|m| m.label.as_deref())
            .collect()
    }
}

impl MediaLine {
    fn attribute(&mut self, attr: &str, arg: &str) -> Result<(), SiprecError> {
        match attr {
            "label" => self.label = Some(arg.trim().to_string()),
            "rtpmap" => {
                let (pt, rest) = arg
                    .split_once(' ')
                    .ok_or_else(|| bad(format!("bad rtpmap {arg:?}")))?;
                let pt: u8 = pt.parse().map_err(|_| bad(format!("bad rtpmap {arg:?}")))?;
                let mut f = rest.trim().split('/');
                let enc = f.next().unwrap_or_default().to_ascii_uppercase();
                let rate: u32 = f
                    .next()
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| bad(format!("bad rtpmap clock {arg:?}")))?;
                let channels: u8 = f.next().and_then(|c| c.parse().ok()).unwrap_or(1);
                self.formats.retain(|x| x.payload_type != pt);
                self.formats.push(Format {
                    payload_type: pt,
                    encoding: enc,
                    clock_rate: rate,
                    channels,
                    fmtp: None,
                });
            }
            "fmtp" => {
                if let Some((pt, params)) = arg.split_once(' ') {
                    if let Some(f) = self
                        .formats
                        .iter_mut()
                        .find(|f| pt.parse() == Ok(f.payload_type))
                    {
                        f.fmtp = Some(params.trim().to_string());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The codec Reel records on this line: the offer's formats in Reel's order of
    /// preference, the media type's own kind only. None when nothing is recordable.
    pub fn recordable(&self) -> Option<&Format> {
        let kind_ok = |f: &&Format| match self.media {
            MediaType::Audio => matches!(f.encoding.as_str(), "OPUS" | "G722" | "PCMA" | "PCMU"),
            MediaType::Video => matches!(f.encoding.as_str(), "H264" | "VP8"),
            MediaType::Other => false,
        };
        if !matches!(self.proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
            return None; // SRTP (RTP/SAVP) needs keys this recorder does not negotiate yet
        }
        RECORDABLE.iter().find_map(|enc| {
            self.formats.iter().filter(kind_ok).find(|f| {
                f.encoding == *enc && self.payload_types.contains(&f.payload_type.to_string())
            })
        })
    }

    /// The line's telephone-event format (accepted alongside the audio, then dropped).
    pub fn telephone_event(&self) -> Option<&Format> {
        self.formats
            .iter()
            .find(|f| f.encoding == "TELEPHONE-EVENT")
    }
}

/// What the recorder does with one m-line of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAnswer {
    /// Record it: receive on `port` with this codec.
    Record { port: u16, format: Format },
    /// Port 0: not recorded (policy, or nothing recordable).
    Reject,
}

/// The answer: the same m-lines in the same order (RFC 3264 §6), `recvonly` on recorded
/// ones (`inactive` where the SRC holds), port 0 on the rest.
pub fn answer(
    offer: &Offer,
    lines: &[LineAnswer],
    address: IpAddr,
    session_id: u64,
    version: u64,
) -> String {
    let ip = if address.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = format!(
        "v=0\r\no=reel {session_id} {version} IN {ip} {address}\r\ns=Reel recording\r\nc=IN {ip} {address}\r\nt=0 0\r\n"
    );
    for (m, a) in offer.media.iter().zip(lines) {
        match a {
            LineAnswer::Reject => {
                let first = m.payload_types.first().map(String::as_str).unwrap_or("0");
                s.push_str(&format!("m={} 0 {} {first}\r\n", m.media_name, m.proto));
            }
            LineAnswer::Record { port, format } => {
                let te = m.telephone_event();
                let mut pts = format.payload_type.to_string();
                if let Some(te) = te {
                    pts.push_str(&format!(" {}", te.payload_type));
                }
                s.push_str(&format!("m={} {port} {} {pts}\r\n", m.media_name, m.proto));
                for f in std::iter::once(format).chain(te) {
                    let enc = match f.encoding.as_str() {
                        "OPUS" => "opus".to_string(),
                        "TELEPHONE-EVENT" => "telephone-event".to_string(),
                        e => e.to_string(),
                    };
                    if f.channels > 1 {
                        s.push_str(&format!(
                            "a=rtpmap:{} {enc}/{}/{}\r\n",
                            f.payload_type, f.clock_rate, f.channels
                        ));
                    } else {
                        s.push_str(&format!(
                            "a=rtpmap:{} {enc}/{}\r\n",
                            f.payload_type, f.clock_rate
                        ));
                    }
                    if let Some(p) = &f.fmtp {
                        s.push_str(&format!("a=fmtp:{} {p}\r\n", f.payload_type));
                    }
                }
                if let Some(l) = &m.label {
                    s.push_str(&format!("a=label:{l}\r\n"));
                }
                let dir = if m.direction.sends() {
                    "recvonly"
                } else {
                    "inactive"
                };
                s.push_str(&format!("a={dir}\r\n"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An audio+video call forked by an SBC: four m-lines, each party's audio and video.
    pub const FOUR_LINES: &str = "v=0\r\n\
o=SRC 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=label:1\r\n\
a=sendonly\r\n\
m=audio 6002 RTP/AVP 9 0\r\n\
a=label:2\r\n\
a=sendonly\r\n\
m=video 6004 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n\
a=label:3\r\n\
a=sendonly\r\n\
m=video 6006 RTP/AVP 97\r\n\
a=rtpmap:97 VP8/90000\r\n\
a=label:4\r\n\
a=inactive\r\n";

    #[test]
    fn reads_four_lines_and_answers_audio_only() {
        let o = Offer::parse(FOUR_LINES).unwrap();
        assert_eq!(o.labels(), vec!["1", "2", "3", "4"]);
        assert_eq!(o.connection, Some("127.0.0.1".parse().unwrap()));
        let picks: Vec<_> = o
            .media
            .iter()
            .map(|m| m.recordable().map(|f| f.encoding.as_str()))
            .collect();
        // G.722 preferred over G.711, PCMA over PCMU; video codecs on video lines.
        assert_eq!(
            picks,
            vec![Some("PCMA"), Some("G722"), Some("H264"), Some("VP8")]
        );
        assert!(!o.media[3].direction.sends());
        let lines: Vec<LineAnswer> = o
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| match m.media {
                MediaType::Audio => LineAnswer::Record {
                    port: 20_000 + 2 * i as u16,
                    format: m.recordable().unwrap().clone(),
                },
                _ => LineAnswer::Reject,
            })
            .collect();
        let a = answer(&o, &lines, "127.0.0.1".parse().unwrap(), 7, 1);
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=label:1\r\na=recvonly\r\n"), "{a}");
        assert!(
            a.contains(
                "m=audio 20002 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\na=label:2\r\na=recvonly\r\n"
            ),
            "{a}"
        );
        assert!(
            a.contains("m=video 0 RTP/AVP 96\r\nm=video 0 RTP/AVP 97\r\n"),
            "{a}"
        );
        // The answer is itself valid SDP with the same number of lines.
        assert_eq!(Offer::parse(&a).unwrap().media.len(), 4);
    }

    #[test]
    fn unusable_offers_are_errors_or_unrecordable() {
        for sdp in [
            "",
            "v=0\r\n",
            "v=0\r\nm=audio\r\n",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n",
            "garbage",
        ] {
            assert!(Offer::parse(sdp).is_err(), "{sdp:?}");
        }
        let o =
            Offer::parse("v=0\r\nm=audio 5000 RTP/AVP 18\r\nm=audio 5002 RTP/SAVP 0\r\n").unwrap();
        assert!(o.media.iter().all(|m| m.recordable().is_none()));
    }

    #[test]
    fn mutated_offers_never_panic() {
        let base = FOUR_LINES.as_bytes();
        for m in crate::mutations(base, b"=: /\n", 20_000) {
            if let Ok(s) = std::str::from_utf8(&m) {
                if let Ok(o) = Offer::parse(s) {
                    for m in &o.media {
                        let _ = m.recordable();
                    }
                    let _ = answer(&o, &[], "127.0.0.1".parse().unwrap(), 1, 1);
                }
            }
        }
    }
}
