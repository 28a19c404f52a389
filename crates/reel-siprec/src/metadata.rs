//! Recording metadata (RFC 7865, `application/rs-metadata+xml`): who is in the recorded
//! call, which streams exist (tied to SDP m-lines by `<label>` ↔ `a=label`) and who sends
//! which stream.
//!
//! Elements are matched by local name whatever their namespace: the IETF namespace
//! (`urn:ietf:params:xml:ns:recording:1`), the BroadWorks one seen in the wild, and none at
//! all. The ids may be in the RFC's attributes (`participant_id`, `stream_id`,
//! `session_id`) or the pre-RFC drafts' `id`; send/recv may be in a
//! `participantstreamassoc` or, as drafts had it, inside the `participant`.

use crate::SiprecError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `complete` (replaces what was known) or `partial` (updates it).
    pub partial: bool,
    pub sessions: Vec<CallSession>,
    pub participants: Vec<Participant>,
    pub streams: Vec<Stream>,
    /// The document of the last version received, as received: kept with the recording.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSession {
    pub id: String,
    /// The recorded call's own SIP session id(s), as the SRC gave them.
    pub sip_session_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    /// Address of record (`sip:alice@example.com`, `tel:+1555…`).
    pub aor: Option<String>,
    pub name: Option<String>,
    /// Stream ids this participant sends.
    pub send: Vec<String>,
    pub recv: Vec<String>,
}

impl Participant {
    /// What a person reading the recording would call them: the display name, else the
    /// user part of the AoR, else the metadata id.
    pub fn label(&self) -> String {
        if let Some(n) = self.name.as_ref().filter(|n| !n.trim().is_empty()) {
            return n.trim().to_string();
        }
        if let Some(aor) = &self.aor {
            let user = aor
                .trim_start_matches("sips:")
                .trim_start_matches("sip:")
                .trim_start_matches("tel:");
            let user = user.split('@').next().unwrap_or(user);
            if !user.is_empty() {
                return user.to_string();
            }
        }
        self.id.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub id: String,
    /// The SDP `a=label` of the m-line carrying it.
    pub label: Option<String>,
    pub session_id: Option<String>,
}

fn bad(what: impl std::fmt::Display) -> SiprecError {
    SiprecError::Metadata(what.to_string())
}

/// The largest metadata document accepted (real ones are a few KiB).
const MAX_XML: usize = 256 * 1024;

impl Metadata {
    pub fn parse(xml: &str) -> Result<Metadata, SiprecError> {
        if xml.len() > MAX_XML {
            return Err(bad("document too large"));
        }
        // No DTDs: entity expansion has no place in a metadata document.
        let doc = roxmltree::Document::parse_with_options(
            xml,
            roxmltree::ParsingOptions {
                allow_dtd: false,
                nodes_limit: 20_000,
                ..Default::default()
            },
        )
        .map_err(bad)?;
        let root = doc.root_element();
        if root.tag_name().name() != "recording" {
            return Err(bad(format!(
                "the root element is <{}>, not <recording>",
                root.tag_name().name()
            )));
        }
        let mut m = Metadata {
            source: xml.to_string(),
            ..Metadata::default()
        };
        let id = |n: roxmltree::Node, rfc: &str| -> Option<String> {
            n.attribute(rfc)
                .or_else(|| n.attribute("id"))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let text_of = |n: roxmltree::Node, child: &str| -> Vec<String> {
            n.children()
                .filter(|c| c.is_element() && c.tag_name().name() == child)
                .filter_map(|c| c.text())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        };
        for n in root.children().filter(|n| n.is_element()) {
            match n.tag_name().name() {
                "datamode" => m.partial = n.text().map(str::trim) == Some("partial"),
                "session" => m.sessions.push(CallSession {
                    id: id(n, "session_id").ok_or_else(|| bad("a session without an id"))?,
                    sip_session_ids: text_of(n, "sipSessionID"),
                }),
                "participant" => {
                    let pid = id(n, "participant_id")
                        .ok_or_else(|| bad("a participant without an id"))?;
                    // RFC: <nameID aor="…"><name>…</name></nameID>; drafts: <aor>…</aor><name>…</name>.
                    let name_id = n
                        .children()
                        .find(|c| c.is_element() && c.tag_name().name() == "nameID");
                    let aor = name_id
                        .and_then(|x| x.attribute("aor"))
                        .map(str::to_string)
                        .or_else(|| text_of(n, "aor").into_iter().next());
                    let name = name_id
                        .and_then(|x| text_of(x, "name").into_iter().next())
                        .or_else(|| text_of(n, "name").into_iter().next());
                    m.participants.push(Participant {
                        id: pid,
                        aor,
                        name,
                        send: text_of(n, "send"),
                        recv: text_of(n, "recv"),
                    });
                }
                "stream" => m.streams.push(Stream {
                    id: id(n, "stream_id").ok_or_else(|| bad("a stream without an id"))?,
                    label: text_of(n, "label").into_iter().next(),
                    session_id: n
                        .attribute("session_id")
                        .or_else(|| n.attribute("session"))
                        .map(str::to_string),
                }),
                "participantstreamassoc" => {
                    let pid = id(n, "participant_id")
                        .ok_or_else(|| bad("a participantstreamassoc without a participant"))?;
                    let (send, recv) = (text_of(n, "send"), text_of(n, "recv"));
                    match m.participants.iter_mut().find(|p| p.id == pid) {
                        Some(p) => {
                            p.send.extend(send);
                            p.recv.extend(recv);
                        }
                        // Allowed in a partial update: the participant is known from before.
                        None => m.participants.push(Participant {
                            id: pid,
                            aor: None,
                            name: None,
                            send,
                            recv,
                        }),
                    }
                }
                _ => {} // group, associations, extensions: not needed to record
            }
        }
        if !m.partial {
            m.check()?;
        }
        Ok(m)
    }

    /// Every stream a participant sends or receives is described.
    fn check(&self) -> Result<(), SiprecError> {
        for p in &self.participants {
            for s in p.send.iter().chain(&p.recv) {
                if !self.streams.iter().any(|x| &x.id == s) {
                    return Err(bad(format!(
                        "participant {} refers to unknown stream {s}",
                        p.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// This document after `update` (RFC 7865 §6: a complete one replaces, a partial one
    /// changes what it names).
    pub fn updated(&self, update: Metadata) -> Result<Metadata, SiprecError> {
        if !update.partial {
            return Ok(update);
        }
        let mut m = self.clone();
        for s in update.sessions {
            m.sessions.retain(|x| x.id != s.id);
            m.sessions.push(s);
        }
        for s in update.streams {
            m.streams.retain(|x| x.id != s.id);
            m.streams.push(s);
        }
        for p in update.participants {
            match m.participants.iter_mut().find(|x| x.id == p.id) {
                Some(old) => {
                    old.aor = p.aor.or(old.aor.take());
                    old.name = p.name.or(old.name.take());
                    if !p.send.is_empty() {
                        old.send = p.send;
                    }
                    if !p.recv.is_empty() {
                        old.recv = p.recv;
                    }
                }
                None => m.participants.push(p),
            }
        }
        m.partial = false;
        m.source = update.source;
        m.check()?;
        Ok(m)
    }

    /// Who sends the stream on the m-line labelled `label`.
    pub fn sender_of_label(&self, label: &str) -> Option<&Participant> {
        let stream = self
            .streams
            .iter()
            .find(|s| s.label.as_deref() == Some(label))?;
        self.participants
            .iter()
            .find(|p| p.send.iter().any(|s| s == &stream.id))
    }

    /// Labels the metadata gives streams that are not among the SDP's: the metadata names
    /// streams that do not exist.
    pub fn unknown_labels<'a>(&'a self, sdp_labels: &[&str]) -> Vec<&'a str> {
        self.streams
            .iter()
            .filter_map(|s| s.label.as_deref())
            .filter(|l| !sdp_labels.contains(l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7865 §9's style: two participants, two audio streams.
    pub const RFC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>
  </session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:bob@biloxi.example.com"><name xml:lang="it">Bob</name></nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:alice@atlanta.example.com"/>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>96</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>97</label></stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
</recording>"#;

    #[test]
    fn maps_labels_to_named_senders() {
        let m = Metadata::parse(RFC).unwrap();
        assert_eq!(m.participants.len(), 2);
        assert_eq!(m.sender_of_label("97").unwrap().label(), "Bob");
        // No display name: the AoR's user.
        assert_eq!(m.sender_of_label("96").unwrap().label(), "alice");
        assert!(m.unknown_labels(&["96", "97"]).is_empty());
        assert_eq!(m.unknown_labels(&["96"]), vec!["97"]);
        assert_eq!(m.sessions[0].sip_session_ids.len(), 1);
    }

    #[test]
    fn tolerates_other_namespaces_and_the_drafts_shape() {
        let broadworks = RFC.replace(
            "urn:ietf:params:xml:ns:recording:1",
            "http://schema.broadsoft.com/siprec/metadata",
        );
        let (mut a, b) = (
            Metadata::parse(&broadworks).unwrap(),
            Metadata::parse(RFC).unwrap(),
        );
        assert_eq!(a.source, broadworks);
        a.source = b.source.clone();
        assert_eq!(a, b);
        let draft = r#"<recording xmlns="urn:ietf:params:xml:ns:recording">
  <participant id="p1"><aor>sip:agent@cc.example</aor><name>Agent Smith</name><send>s1</send></participant>
  <stream id="s1"><label>1</label></stream></recording>"#;
        let m = Metadata::parse(draft).unwrap();
        assert_eq!(m.sender_of_label("1").unwrap().label(), "Agent Smith");
    }

    #[test]
    fn a_partial_update_renames_a_participant() {
        let m = Metadata::parse(RFC).unwrap();
        let update = Metadata::parse(
            r#"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><nameID aor="sip:alice@atlanta.example.com"><name>Alice Liddell</name></nameID></participant>
</recording>"#,
        )
        .unwrap();
        let m = m.updated(update).unwrap();
        assert_eq!(m.sender_of_label("96").unwrap().label(), "Alice Liddell");
        assert_eq!(m.sender_of_label("97").unwrap().label(), "Bob");
    }

    #[test]
    fn bad_documents_are_errors() {
        for xml in [
            "",
            "<recording>",
            "<html/>",
            "<recording><participant/></recording>",
            // A send of a stream that is not described.
            r#"<recording><participant participant_id="p"><send>nope</send></participant></recording>"#,
            r#"<!DOCTYPE r [<!ENTITY a "aaaa">]><recording>&a;</recording>"#,
        ] {
            assert!(Metadata::parse(xml).is_err(), "{xml}");
        }
    }

    #[test]
    fn mutated_documents_never_panic() {
        let base = RFC.as_bytes();
        for m in crate::mutations(base, b"<>/\"=", 5_000) {
            if let Ok(s) = std::str::from_utf8(&m) {
                let _ = Metadata::parse(s);
            }
        }
    }
}
