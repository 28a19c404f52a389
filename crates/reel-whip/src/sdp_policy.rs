//! What Reel accepts in a WHIP offer, checked before str0m sees it so that the publisher
//! gets a precise reason: 400 for text that is not SDP, 422 for SDP Reel cannot record.

use crate::WhipError;

/// Codecs recorded without transcoding (rtpmap encoding names, lower case).
pub const SUPPORTED_CODECS: &[&str] = &["opus", "vp8", "vp9", "h264"];

/// Largest offer accepted; real offers with simulcast stay well under 16 KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Simulcast layers (`a=rid`) per media section: browsers send three; more is a broken or
/// hostile sender (each layer costs a journal).
pub const MAX_RIDS_PER_SECTION: usize = 8;
/// RFC 8839: ice-ufrag and ice-pwd are at most 256 characters.
const MAX_ICE_CREDENTIAL: usize = 256;

/// One audio or video section of an offer, as far as recording it goes.
#[derive(Default)]
struct Section {
    port_zero: bool,
    bundle_only: bool,
    /// `a=sendonly` / `recvonly` / `inactive` / `sendrecv`, else the session's.
    direction: Option<String>,
    supported_codec: bool,
    rids: usize,
}

impl Section {
    /// Whether the publisher sends media Reel can record in it: not disabled (port 0
    /// without `bundle-only`), sending (`sendonly` or `sendrecv`), in a codec Reel keeps.
    fn recordable(&self, session_direction: Option<&str>) -> bool {
        let direction = self.direction.as_deref().or(session_direction);
        let sends = matches!(direction, None | Some("sendonly") | Some("sendrecv"));
        (!self.port_zero || self.bundle_only) && sends && self.supported_codec
    }
}

pub fn check_offer(sdp: &str) -> Result<(), WhipError> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(WhipError::BadSdp(format!(
            "offer larger than {MAX_OFFER_BYTES} bytes"
        )));
    }
    let mut lines = sdp.lines().map(str::trim_end).filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(WhipError::BadSdp("an SDP offer starts with v=0".into()));
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut session_direction: Option<String> = None;
    // Inside an audio/video section (false: session level, or another kind of section).
    let mut in_media = false;
    let mut at_session_level = true;
    for line in lines {
        let Some((kind, value)) = line.split_once('=') else {
            return Err(WhipError::BadSdp(format!("line without '=': {:.40}", line)));
        };
        if kind.len() != 1 {
            return Err(WhipError::BadSdp(format!("bad line type: {:.40}", line)));
        }
        if kind == "m" {
            at_session_level = false;
            in_media = value.starts_with("audio ") || value.starts_with("video ");
            if in_media {
                sections.push(Section {
                    port_zero: value.split_whitespace().nth(1) == Some("0"),
                    ..Section::default()
                });
            }
            continue;
        }
        if kind != "a" {
            continue;
        }
        let (name, rest) = value.split_once(':').unwrap_or((value, ""));
        if matches!(name, "ice-ufrag" | "ice-pwd") && rest.len() > MAX_ICE_CREDENTIAL {
            return Err(WhipError::BadSdp(format!(
                "a={name} longer than {MAX_ICE_CREDENTIAL} characters (RFC 8839)"
            )));
        }
        let direction = matches!(name, "sendonly" | "recvonly" | "inactive" | "sendrecv");
        if at_session_level {
            if direction {
                session_direction = Some(name.to_string());
            }
            continue;
        }
        let Some(section) = sections.last_mut().filter(|_| in_media) else {
            continue;
        };
        match name {
            _ if direction => section.direction = Some(name.to_string()),
            "bundle-only" => section.bundle_only = true,
            "rid" => {
                section.rids += 1;
                if section.rids > MAX_RIDS_PER_SECTION {
                    return Err(WhipError::BadSdp(format!(
                        "more than {MAX_RIDS_PER_SECTION} simulcast layers (a=rid) in one section"
                    )));
                }
            }
            "rtpmap" => {
                let encoding = rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|e| e.split('/').next());
                if encoding
                    .is_some_and(|n| SUPPORTED_CODECS.contains(&n.to_ascii_lowercase().as_str()))
                {
                    section.supported_codec = true;
                }
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(WhipError::NothingToReceive);
    }
    if !sections.iter().any(|s| s.supported_codec) {
        return Err(WhipError::NoSupportedCodec);
    }
    if !sections
        .iter()
        .any(|s| s.recordable(session_direction.as_deref()))
    {
        return Err(WhipError::NothingToReceive);
    }
    Ok(())
}

/// An offer of one media section without a BUNDLE group (GStreamer's `webrtcbin` with
/// `bundle-policy=none`, many audio-only clients) needs no BUNDLE, but str0m refuses an
/// offer without one ("Session attribute a=group missing"). Such an offer is given the
/// group of its one section (and a mid, if it has none) before str0m sees it; the answer
/// then drops the group again ([`unbundle_answer`]), as RFC 8843 wants of an answer to an
/// offer without one. `None`: the offer is used as it is.
pub fn bundle_single_section(sdp: &str) -> Option<String> {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.lines().map(str::trim_end).collect();
    let sections = lines.iter().filter(|l| l.starts_with("m=")).count();
    if sections != 1 || lines.iter().any(|l| l.starts_with("a=group:BUNDLE")) {
        return None;
    }
    let first_media = lines.iter().position(|l| l.starts_with("m="))?;
    let mid = lines[first_media..]
        .iter()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(str::to_string);
    let mut out: Vec<String> = vec![];
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
        if i == first_media {
            out.push(format!("a=group:BUNDLE {}", mid.as_deref().unwrap_or("0")));
        }
        out.push(line.to_string());
        if i == first_media && mid.is_none() {
            out.push("a=mid:0".into());
        }
    }
    Some(out.join(eol) + eol)
}

/// The answer to an offer `bundle_single_section` rewrote, without the BUNDLE group, and
/// without the mid when the offer had none (`original`: the offer as the client sent it).
pub fn unbundle_answer(answer: &str, original: &str) -> String {
    let offer_had_mid = original.lines().any(|l| l.starts_with("a=mid:"));
    answer
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=group:BUNDLE"))
        .filter(|l| offer_had_mid || !l.starts_with("a=mid:"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_section_without_bundle_is_given_its_group() {
        let offer = "v=0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio0\r\na=rtpmap:111 opus/48000/2\r\n";
        let bundled = bundle_single_section(offer).unwrap();
        assert_eq!(
            bundled,
            "v=0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE audio0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio0\r\na=rtpmap:111 opus/48000/2\r\n"
        );
        assert_eq!(bundle_single_section(&bundled), None);
        let two = format!("{offer}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\n");
        assert_eq!(bundle_single_section(&two), None);
        let no_mid = "v=0\r\ns=-\r\nm=audio 9 RTP/SAVPF 0\r\n";
        assert!(bundle_single_section(no_mid)
            .unwrap()
            .contains("a=group:BUNDLE 0\r\nm=audio 9 RTP/SAVPF 0\r\na=mid:0\r\n"));
        assert_eq!(
            unbundle_answer(
                "v=0\r\na=group:BUNDLE audio0\r\nm=audio 9 X 111\r\na=mid:audio0\r\n",
                offer
            ),
            "v=0\r\nm=audio 9 X 111\r\na=mid:audio0\r\n"
        );
        assert_eq!(
            unbundle_answer(
                "v=0\r\na=group:BUNDLE 0\r\nm=audio 9 X 0\r\na=mid:0\r\n",
                no_mid
            ),
            "v=0\r\nm=audio 9 X 0\r\n"
        );
    }

    #[test]
    fn verdicts() {
        assert!(matches!(check_offer("hello"), Err(WhipError::BadSdp(_))));
        assert!(matches!(
            check_offer("v=0\r\nnonsense\r\n"),
            Err(WhipError::BadSdp(_))
        ));
        assert!(matches!(
            check_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"),
            Err(WhipError::NothingToReceive)
        ));
        let av1_only = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 45\r\na=rtpmap:45 AV1/90000\r\n";
        assert!(matches!(
            check_offer(av1_only),
            Err(WhipError::NoSupportedCodec)
        ));
        let h264 = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(check_offer(h264).is_ok());
        let vp8 = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(check_offer(vp8).is_ok());
    }

    /// Offers that would be answered 201 and then record nothing, or cost without bound.
    #[test]
    fn offers_that_cannot_be_recorded_are_refused() {
        let section = |port: u16, extra: &str| {
            format!("m=video {port} UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n{extra}")
        };
        let offer = |body: String| format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n{body}");
        let nothing = |sdp: String| matches!(check_offer(&sdp), Err(WhipError::NothingToReceive));
        assert!(nothing(offer(section(9, "a=recvonly\r\n"))));
        assert!(nothing(offer(section(9, "a=inactive\r\n"))));
        assert!(nothing(offer(format!("a=recvonly\r\n{}", section(9, "")))));
        assert!(nothing(offer(section(0, ""))));
        // Bundled sections of port 0 are not disabled (JSEP max-bundle).
        assert!(check_offer(&offer(format!(
            "{}{}",
            section(9, "a=recvonly\r\n"),
            section(0, "a=bundle-only\r\na=sendonly\r\n")
        )))
        .is_ok());
        let rids: String = (0..100).map(|i| format!("a=rid:r{i} send\r\n")).collect();
        assert!(matches!(
            check_offer(&offer(section(9, &rids))),
            Err(WhipError::BadSdp(m)) if m.contains("simulcast")
        ));
        let three: String = (0..3).map(|i| format!("a=rid:r{i} send\r\n")).collect();
        assert!(check_offer(&offer(section(9, &three))).is_ok());
        let ufrag = format!("a=ice-ufrag:{}\r\n", "u".repeat(60_000));
        assert!(matches!(
            check_offer(&offer(section(9, &ufrag))),
            Err(WhipError::BadSdp(m)) if m.contains("ice-ufrag")
        ));
    }
}
