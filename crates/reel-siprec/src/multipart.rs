//! The body of a SIPREC INVITE (RFC 7866 §8.1): `multipart/mixed` with the SDP offer and the
//! recording metadata, in either order. RFC 2046 §5.1.1 delimiters; LF-only line ends and a
//! missing close delimiter are tolerated, because SRCs in the wild send both.

use crate::SiprecError;

/// The two things a SIPREC body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiprecBody {
    pub sdp: String,
    /// `application/rs-metadata+xml` (or the older `application/rs-metadata`), when sent.
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Media type, lower case, without parameters (`text/plain` when the part has none).
    pub content_type: String,
    pub body: Vec<u8>,
}

fn bad(what: impl std::fmt::Display) -> SiprecError {
    SiprecError::Multipart(what.to_string())
}

/// A parameter of a header value (`multipart/mixed;boundary="x"` → `x`).
pub fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a multipart body.
pub fn split(body: &[u8], boundary: &str) -> Result<Vec<Part>, SiprecError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(bad("the boundary must be 1 to 70 characters"));
    }
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    // Delimiters start a line: at the very start, or after LF.
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&body[i..], d) {
        let at = i + p;
        if at == 0 || body[at - 1] == b'\n' {
            starts.push(at);
        }
        i = at + d.len();
    }
    if starts.is_empty() {
        return Err(bad(format!("no delimiter for boundary {boundary:?}")));
    }
    let mut parts = Vec::new();
    for (k, &at) in starts.iter().enumerate() {
        let after = at + d.len();
        if body[after..].starts_with(b"--") {
            break; // the close delimiter
        }
        // The rest of the delimiter line (transport padding), then the part.
        let line_end = match find(&body[after..], b"\n") {
            Some(p) => after + p + 1,
            None => return Err(bad("a delimiter line does not end")),
        };
        let end = match starts.get(k + 1) {
            // The CRLF before the next delimiter belongs to it.
            Some(&next) => strip_line_end(&body[..next]).len(),
            None => body.len(),
        };
        if end < line_end {
            return Err(bad("an empty part"));
        }
        parts.push(part(&body[line_end..end])?);
    }
    if parts.is_empty() {
        return Err(bad("no parts"));
    }
    Ok(parts)
}

fn strip_line_end(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn part(raw: &[u8]) -> Result<Part, SiprecError> {
    // Headers, a blank line, the body. A part with no headers starts with the blank line.
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else if raw.starts_with(b"\n") {
        (&raw[..0], &raw[1..])
    } else if let Some(p) = find(raw, b"\r\n\r\n") {
        (&raw[..p], &raw[p + 4..])
    } else if let Some(p) = find(raw, b"\n\n") {
        (&raw[..p], &raw[p + 2..])
    } else {
        return Err(bad("a part without a blank line after its headers"));
    };
    let head = std::str::from_utf8(head).map_err(|_| bad("part headers are not UTF-8"))?;
    let mut content_type = "text/plain".to_string();
    for line in head.lines() {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad part header {line:?}")))?;
        if name.trim().eq_ignore_ascii_case("content-type") {
            content_type = value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
        }
    }
    Ok(Part {
        content_type,
        body: body.to_vec(),
    })
}

/// The SDP and metadata of an INVITE's body, from its Content-Type header value.
pub fn siprec_body(content_type: &str, body: &[u8]) -> Result<SiprecBody, SiprecError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = |b: &[u8], what: &str| {
        String::from_utf8(b.to_vec()).map_err(|_| bad(format!("the {what} is not UTF-8")))
    };
    match media.as_str() {
        "application/sdp" => Ok(SiprecBody {
            sdp: text(body, "SDP")?,
            metadata: None,
        }),
        "multipart/mixed" => {
            let boundary = parameter(content_type, "boundary")
                .ok_or_else(|| bad("multipart/mixed without a boundary"))?;
            let parts = split(body, &boundary)?;
            let sdp = parts
                .iter()
                .find(|p| p.content_type == "application/sdp")
                .ok_or_else(|| bad("no application/sdp part"))?;
            let metadata = parts.iter().find(|p| {
                p.content_type == "application/rs-metadata+xml"
                    || p.content_type == "application/rs-metadata"
            });
            Ok(SiprecBody {
                sdp: text(&sdp.body, "SDP")?,
                metadata: metadata.map(|m| text(&m.body, "metadata")).transpose()?,
            })
        }
        other => Err(bad(format!("unsupported Content-Type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--foobar\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
\r\n\
--foobar\r\n\
Content-Type: application/rs-metadata+xml\r\n\
Content-Disposition: recording-session\r\n\
\r\n\
<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>\r\n\
--foobar--\r\n";

    #[test]
    fn finds_sdp_and_metadata_in_either_order() {
        let b = siprec_body("multipart/mixed;boundary=foobar", BODY.as_bytes()).unwrap();
        assert_eq!(b.sdp, "v=0\r\nm=audio 6000 RTP/AVP 0\r\n");
        assert_eq!(
            b.metadata.as_deref(),
            Some("<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>")
        );
        // Swapped, quoted boundary, LF line ends, the older metadata type, no close delimiter.
        let swapped = "--b\nContent-Type: application/rs-metadata\n\n<recording/>\n--b\nContent-Type: application/SDP\n\nv=0\n";
        let b = siprec_body("multipart/mixed; boundary=\"b\"", swapped.as_bytes()).unwrap();
        assert_eq!(
            (b.sdp.as_str(), b.metadata.as_deref()),
            ("v=0\n", Some("<recording/>"))
        );
        let plain = siprec_body("application/sdp", b"v=0\r\n").unwrap();
        assert_eq!(plain.metadata, None);
    }

    #[test]
    fn broken_bodies_are_errors() {
        for (ct, body) in [
            ("multipart/mixed", BODY),                // no boundary
            ("multipart/mixed;boundary=other", BODY), // wrong boundary
            (
                "multipart/mixed;boundary=foobar",
                "--foobar\r\nContent-Type: application/sdp",
            ),
            (
                "multipart/mixed;boundary=foobar",
                "--foobar\r\nContent-Type: text/plain\r\n\r\nx\r\n--foobar--",
            ),
            ("text/html", "<p>"),
        ] {
            assert!(siprec_body(ct, body.as_bytes()).is_err(), "{ct} {body:?}");
        }
    }

    #[test]
    fn mutated_bodies_never_panic() {
        let base = BODY.as_bytes();
        for cut in 0..base.len() {
            let _ = siprec_body("multipart/mixed;boundary=foobar", &base[..cut]);
        }
        for m in crate::mutations(base, b"-\r\n:", 20_000) {
            let _ = siprec_body("multipart/mixed;boundary=foobar", &m);
        }
    }
}
