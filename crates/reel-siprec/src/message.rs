//! SIP messages (RFC 3261 §7) in and out.
//!
//! Parsing leans on `ezk-sip-types` for the grammar; this module adds what a recording
//! server checks before it trusts a request (the five headers every transaction needs,
//! Content-Length against the bytes that came) and builds responses by copying Via, From,
//! Call-ID and CSeq verbatim, as §8.2.6.2 says.

use crate::SiprecError;
use bytes::Bytes;
use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Headers, Method, Name};

/// The largest message accepted (SIPREC INVITEs with metadata are a few KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What identifies a transaction and a dialog, checked present and well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    /// The top Via's branch (RFC 3261 magic cookie or not, it is the transaction key).
    pub branch: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The Request-URI as sent.
    pub uri: String,
    /// Its user part (`sip:sales@host` → `sales`): picks the room.
    pub uri_user: Option<String>,
    pub ids: Ids,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub ids: Ids,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

fn bad(what: impl std::fmt::Display) -> SiprecError {
    SiprecError::Sip(what.to_string())
}

/// The end of the head (after the blank line), or None when it has not all arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The length of the first whole message in a stream (TCP), None while it is incomplete.
/// Content-Length is mandatory on streams (RFC 3261 §18.3).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, SiprecError> {
    // Keep-alive CRLFs between messages (RFC 5626 §4.4.1) are skipped by the caller.
    let Some(head) = head_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Err(bad("header section too large"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..head]).map_err(|_| bad("head is not UTF-8"))?;
    let length = text
        .split("\r\n")
        .skip(1)
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("content-length") || name == "l").then(|| value.trim())
        })
        .ok_or_else(|| bad("Content-Length is required over TCP"))?
        .parse::<usize>()
        .map_err(|_| bad("Content-Length is not a number"))?;
    if head + length > MAX_MESSAGE {
        return Err(bad("message too large"));
    }
    Ok((buf.len() >= head + length).then_some(head + length))
}

/// One whole message: a UDP datagram, or a frame cut by [`frame_len`].
pub fn parse(buf: &[u8]) -> Result<Message, SiprecError> {
    if buf.len() > MAX_MESSAGE {
        return Err(bad("message too large"));
    }
    let head = head_end(buf).ok_or(SiprecError::Incomplete)?;
    let src = Bytes::copy_from_slice(&buf[..head]);
    let text = std::str::from_utf8(&src).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = PullParser::new(text.as_bytes(), 0);
    let first = lines
        .next()
        .ok_or_else(|| bad("empty message"))?
        .map_err(|_| SiprecError::Incomplete)?;
    let first = line_str(text, first)?;
    let (_, start) = MessageLine::parse(&src)(first).map_err(|_| bad("bad start line"))?;
    let mut headers = Headers::new();
    for line in lines {
        let line = line_str(text, line.map_err(|_| SiprecError::Incomplete)?)?;
        let (_, Line { name, value }) =
            Line::parse(&src, line).map_err(|_| bad(format!("bad header line {line:?}")))?;
        headers.insert(name, value);
    }

    // The body: Content-Length bytes (a datagram may carry padding after it).
    let rest = &buf[head..];
    let body = match headers.get_raw(&Name::CONTENT_LENGTH).next() {
        Some(v) => {
            let n: usize = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            if n > rest.len() {
                return Err(bad(format!(
                    "Content-Length {n} but {} body bytes",
                    rest.len()
                )));
            }
            &rest[..n]
        }
        None => rest,
    };
    let body = Bytes::copy_from_slice(body);
    let ids = ids(&headers)?;
    Ok(match start {
        MessageLine::Request(line) => {
            if line.method != ids.cseq_method && line.method != Method::ACK {
                return Err(bad("CSeq method differs from the request's"));
            }
            let uri = first
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let uri_user = match &line.uri.user_part {
                SipUriUserPart::User(u) => Some(u.to_string()),
                SipUriUserPart::UserPw(u) => Some(u.user.to_string()),
                SipUriUserPart::Empty => None,
            };
            Message::Request(Request {
                method: line.method,
                uri,
                uri_user,
                ids,
                headers,
                body,
            })
        }
        MessageLine::Response(line) => Message::Response(Response {
            code: line.code.into_u16(),
            ids,
            headers,
            body,
        }),
    })
}

fn line_str<'a>(text: &'a str, line: &[u8]) -> Result<&'a str, SiprecError> {
    // The pull parser hands out sub-slices of `text`: find where this one starts.
    let start = line.as_ptr() as usize - text.as_ptr() as usize;
    text.get(start..start + line.len())
        .ok_or_else(|| bad("line is not UTF-8"))
}

fn ids(headers: &Headers) -> Result<Ids, SiprecError> {
    let call_id = headers
        .get_named::<CallID>()
        .map_err(|e| bad(format!("Call-ID: {e}")))?;
    let cseq = headers
        .get_named::<CSeq>()
        .map_err(|e| bad(format!("CSeq: {e}")))?;
    let vias = headers
        .get_named::<Vec<Via>>()
        .map_err(|e| bad(format!("Via: {e}")))?;
    let branch = vias
        .first()
        .and_then(|v| v.params.get_val("branch"))
        .ok_or_else(|| bad("Via without branch"))?
        .to_string();
    let from = headers
        .get::<FromTo>(Name::FROM)
        .map_err(|e| bad(format!("From: {e}")))?;
    let to = headers
        .get::<FromTo>(Name::TO)
        .map_err(|e| bad(format!("To: {e}")))?;
    if call_id.0.trim().is_empty() {
        return Err(bad("empty Call-ID"));
    }
    Ok(Ids {
        call_id: call_id.0.to_string(),
        cseq: cseq.cseq,
        cseq_method: cseq.method,
        branch,
        from_tag: from.tag.map(|t| t.to_string()),
        to_tag: to.tag.map(|t| t.to_string()),
    })
}

impl Request {
    /// A header's raw values, in order (names are matched in long and compact form).
    pub fn header(&self, name: &str) -> Vec<String> {
        let name = Name::from(name.to_string());
        self.headers.get_raw(&name).map(|v| v.to_string()).collect()
    }

    /// Whether a comma-separated header (Require, Supported) lists `option`.
    pub fn lists(&self, header: &str, option: &str) -> bool {
        self.header(header)
            .iter()
            .any(|v| v.split(',').any(|o| o.trim().eq_ignore_ascii_case(option)))
    }

    /// The Content-Type's media type, lower case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        let v = self.header("Content-Type").into_iter().next()?;
        Some(v.split(';').next()?.trim().to_ascii_lowercase())
    }

    /// A response to this request (RFC 3261 §8.2.6): Via, From, Call-ID and CSeq copied; To
    /// copied with `to_tag` added when it has none (every response but 100 needs one).
    pub fn respond(
        &self,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let mut head = format!("SIP/2.0 {code} {}\r\n", reason_phrase(reason));
        for via in self.headers.get_raw(&Name::VIA) {
            head.push_str(&format!("Via: {via}\r\n"));
        }
        for from in self.headers.get_raw(&Name::FROM) {
            head.push_str(&format!("From: {from}\r\n"));
        }
        for to in self.headers.get_raw(&Name::TO) {
            match to_tag {
                Some(tag) if code > 100 && self.ids.to_tag.is_none() => {
                    head.push_str(&format!("To: {to};tag={tag}\r\n"))
                }
                _ => head.push_str(&format!("To: {to}\r\n")),
            }
        }
        head.push_str(&format!("Call-ID: {}\r\n", self.ids.call_id));
        for cseq in self.headers.get_raw(&Name::CSEQ) {
            head.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut out = match body {
            Some((content_type, body)) => {
                head.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ));
                let mut out = head.into_bytes();
                out.extend_from_slice(body);
                out
            }
            None => {
                head.push_str("Content-Length: 0\r\n\r\n");
                head.into_bytes()
            }
        };
        out.shrink_to_fit();
        out
    }
}

/// A reason phrase is one line of text: whatever a reason says, it cannot break the message.
fn reason_phrase(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const OPTIONS: &str = "OPTIONS sip:srs@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-proxy\r\n\
From: sipp <sip:sipp@127.0.0.1:5070>;tag=abc\r\n\
To: <sip:srs@127.0.0.1:5060>\r\n\
Call-ID: 1-23@127.0.0.1\r\n\
CSeq: 7 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parses_a_request_and_answers_with_the_headers_copied() {
        let Message::Request(r) = parse(OPTIONS.as_bytes()).unwrap() else {
            panic!("a request")
        };
        assert_eq!(r.method, Method::OPTIONS);
        assert_eq!(r.uri_user.as_deref(), Some("srs"));
        assert_eq!(r.ids.call_id, "1-23@127.0.0.1");
        assert_eq!((r.ids.cseq, r.ids.branch.as_str()), (7, "z9hG4bK-1-0"));
        assert_eq!(r.ids.from_tag.as_deref(), Some("abc"));
        assert_eq!(r.ids.to_tag, None);
        let out = r.respond(200, "OK", Some("srs1"), &[("Allow", "INVITE".into())], None);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(
            text.contains("To: <sip:srs@127.0.0.1:5060>;tag=srs1\r\n"),
            "{text}"
        );
        // Both Vias, in order (the compact one too).
        let first = text.find("branch=z9hG4bK-1-0").unwrap();
        let second = text.find("branch=z9hG4bK-proxy").unwrap();
        assert!(first < second);
        let Message::Response(resp) = parse(&out).unwrap() else {
            panic!("a response")
        };
        assert_eq!(resp.code, 200);
        assert_eq!(resp.ids.to_tag.as_deref(), Some("srs1"));
    }

    #[test]
    fn frames_a_stream_by_content_length() {
        let body = "v=0\r\n";
        let msg = OPTIONS.replace(
            "Content-Length: 0",
            &format!("Content-Length: {}", body.len()),
        ) + body;
        let mut stream = msg.clone().into_bytes();
        assert_eq!(frame_len(&stream[..20]).unwrap(), None);
        assert_eq!(frame_len(&stream[..msg.len() - 1]).unwrap(), None);
        stream.extend_from_slice(b"INVITE");
        assert_eq!(frame_len(&stream).unwrap(), Some(msg.len()));
        let Message::Request(r) = parse(&stream[..msg.len()]).unwrap() else {
            panic!()
        };
        assert_eq!(&r.body[..], body.as_bytes());
    }

    #[test]
    fn refuses_what_a_transaction_cannot_be_built_on() {
        for (what, text) in [
            (
                "no Call-ID",
                OPTIONS.replace("Call-ID: 1-23@127.0.0.1\r\n", ""),
            ),
            ("no branch", OPTIONS.replace(";branch=z9hG4bK-1-0", "")),
            (
                "CSeq",
                OPTIONS.replace("CSeq: 7 OPTIONS", "CSeq: seven OPTIONS"),
            ),
            (
                "method",
                OPTIONS.replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"),
            ),
            (
                "length",
                OPTIONS.replace("Content-Length: 0", "Content-Length: 99"),
            ),
            (
                "start",
                OPTIONS.replace("SIP/2.0\r\nVia", "HTTP/1.1\r\nVia"),
            ),
            ("head", OPTIONS.replace("\r\n\r\n", "\r\n")),
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn reason_phrases_cannot_inject_headers() {
        let Message::Request(r) = parse(OPTIONS.as_bytes()).unwrap() else {
            panic!()
        };
        let out = r.respond(400, "bad\r\nX-Evil: 1", None, &[], None);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("\r\nX-Evil"), "{text}");
    }

    /// Every truncation and many byte flips of a valid message: errors, never panics.
    #[test]
    fn mutated_messages_never_panic() {
        let base = OPTIONS.as_bytes();
        for cut in 0..base.len() {
            let _ = parse(&base[..cut]);
            let _ = frame_len(&base[..cut]);
        }
        for m in crate::mutations(base, b":;\r\n ", 20_000) {
            let _ = parse(&m);
            let _ = frame_len(&m);
        }
    }
}
