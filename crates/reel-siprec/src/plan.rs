//! What to record of a call, decided from its offer, its metadata and the room's policy,
//! sans-IO: which lines, which party sends each, the parties' names; and, on a re-offer, the
//! answer, whether the call is on hold and who was renamed. The recording server's loop only
//! binds the ports and starts the streams a plan asks for.

use crate::metadata::Metadata;
use crate::sdp::{Format, LineAnswer, MediaType, Offer};

pub use reel_core::media::MediaPolicy;

/// A party of the call: a publication of its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedParty {
    /// The metadata's participant id, when the metadata names the sender.
    pub metadata_id: Option<String>,
    pub name: String,
}

/// One recorded line: what it carries and which party sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLine {
    pub format: Format,
    /// Index into [`CallPlan::parties`].
    pub party: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// In the order of their first recorded line: the caller, whose stream comes first,
    /// joins first (the left channel of a dual-channel file).
    pub parties: Vec<PlannedParty>,
    /// Per m-line of the offer; None where the line is not recorded.
    pub lines: Vec<Option<PlannedLine>>,
}

/// A call Reel will not record, with the SIP status that says why (the SRC's fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

/// The rooms to try for a call, in order: the Request-URI's user part when it is a room
/// id, then the server's default room.
pub fn room_candidates<'a>(user: Option<&'a str>, default_room: &'a str) -> Vec<&'a str> {
    let mut out: Vec<&str> = user
        .filter(|u| u.starts_with("room_"))
        .into_iter()
        .collect();
    if !default_room.is_empty() {
        out.push(default_room);
    }
    out
}

/// The most RTP ports a new call's answer can hold: its recordable lines (whatever the room's
/// policy), at most `max_lines`.
pub fn ports_needed(offer: &Offer, max_lines: usize) -> usize {
    offer
        .media
        .iter()
        .filter(|m| m.port != 0 && m.recordable().is_some())
        .count()
        .min(max_lines)
}

/// Plans a new call: the lines to record under `policy` (the first `max_lines` of them; the
/// others are declined) and the parties sending them.
pub fn plan_call(
    offer: &Offer,
    metadata: Option<&Metadata>,
    policy: MediaPolicy,
    max_lines: usize,
) -> Result<CallPlan, Refusal> {
    let mut recorded = 0;
    let formats: Vec<Option<&Format>> = offer
        .media
        .iter()
        .map(|m| {
            let wanted = m.port != 0
                && match m.media {
                    MediaType::Audio => true,
                    MediaType::Video => policy == MediaPolicy::AudioVideo,
                    MediaType::Other => false,
                };
            let format = m.recordable().filter(|_| wanted && recorded < max_lines);
            recorded += usize::from(format.is_some());
            format
        })
        .collect();
    if formats.iter().all(Option::is_none) {
        return Err(Refusal {
            status: 488,
            reason:
                "Not Acceptable Here: no recordable media (PCMU, PCMA, G722, OPUS over RTP/AVP)"
                    .into(),
        });
    }
    // A line's party is the metadata's sender of it, or a party of its own for a line the
    // metadata does not attribute.
    let mut keys: Vec<(Option<String>, Option<String>)> = Vec::new();
    let mut lines = Vec::with_capacity(offer.media.len());
    for (m, format) in offer.media.iter().zip(formats) {
        let Some(format) = format else {
            lines.push(None);
            continue;
        };
        let sender = m
            .label
            .as_deref()
            .and_then(|l| metadata?.sender_of_label(l));
        let known = sender.and_then(|p| keys.iter().position(|(id, _)| id.as_ref() == Some(&p.id)));
        let party = known.unwrap_or_else(|| {
            keys.push(
                sender
                    .map(|p| (Some(p.id.clone()), p.name.clone()))
                    .unwrap_or((None, None)),
            );
            keys.len() - 1
        });
        lines.push(Some(PlannedLine {
            format: format.clone(),
            party,
        }));
    }
    let parties = keys
        .into_iter()
        .enumerate()
        .map(|(n, (metadata_id, name))| PlannedParty {
            metadata_id,
            name: party_name(name.as_deref(), n + 1),
        })
        .collect();
    Ok(CallPlan { parties, lines })
}

/// A re-offer of a call being recorded: its answer (each recorded line keeps its port and
/// format; anything new or changed is declined), and whether the call is now on hold
/// (every recorded line stopped sending: `inactive`, `recvonly`).
pub fn reanswer(offer: &Offer, recorded: &[Option<(u16, &Format)>]) -> (Vec<LineAnswer>, bool) {
    let answers: Vec<LineAnswer> = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| match recorded.get(i).copied().flatten() {
            Some((port, format)) if m.port != 0 && m.recordable() == Some(format) => {
                LineAnswer::Record {
                    port,
                    format: format.clone(),
                }
            }
            _ => LineAnswer::Reject,
        })
        .collect();
    let kept: Vec<_> = offer
        .media
        .iter()
        .zip(&answers)
        .filter(|(_, a)| matches!(a, LineAnswer::Record { .. }))
        .collect();
    let held = !kept.is_empty() && kept.iter().all(|(m, _)| !m.direction.sends());
    (answers, held)
}

/// Parties a metadata update names anew: (index, new name) for each whose name changed.
pub fn renames(parties: &[PlannedParty], metadata: &Metadata) -> Vec<(usize, String)> {
    parties
        .iter()
        .enumerate()
        .filter_map(|(n, party)| {
            let id = party.metadata_id.as_ref()?;
            let p = metadata.participants.iter().find(|p| &p.id == id)?;
            let name = party_name(p.name.as_deref(), n + 1);
            (name != party.name).then_some((n, name))
        })
        .collect()
}

/// A display name fit for the API and the files: the metadata's name unless it is a phone
/// number (numbers are personal data and stay out of API reads), else "participant N".
pub fn party_name(name: Option<&str>, n: usize) -> String {
    match name.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s)
            if !s
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c)) =>
        {
            s.chars().filter(|c| !c.is_control()).take(80).collect()
        }
        _ => format!("participant {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n\
m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:3\r\na=sendonly\r\n\
m=audio 6004 RTP/AVP 8\r\na=label:2\r\na=sendonly\r\n\
m=audio 6006 RTP/AVP 0\r\na=label:9\r\na=sendonly\r\n";

    fn metadata(caller: &str) -> Metadata {
        Metadata::parse(&format!(
            "<?xml version=\"1.0\"?><recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode>\
<participant participant_id=\"a\"><nameID aor=\"sip:caller@example.com\"><name>{caller}</name></nameID></participant>\
<participant participant_id=\"b\"><nameID aor=\"sip:agent@example.com\"><name>Agent Bob</name></nameID></participant>\
<stream stream_id=\"s1\"><label>1</label></stream><stream stream_id=\"s2\"><label>2</label></stream>\
<stream stream_id=\"s3\"><label>3</label></stream>\
<participantstreamassoc participant_id=\"a\"><send>s1</send><send>s3</send></participantstreamassoc>\
<participantstreamassoc participant_id=\"b\"><send>s2</send></participantstreamassoc></recording>"
        ))
        .unwrap()
    }

    fn parties_of(plan: &CallPlan) -> Vec<(Option<&str>, &str)> {
        plan.parties
            .iter()
            .map(|p| (p.metadata_id.as_deref(), p.name.as_str()))
            .collect()
    }

    #[test]
    fn lines_go_to_their_senders_in_the_order_of_their_first_line() {
        let offer = Offer::parse(SDP).unwrap();
        let md = metadata("Alice");
        let plan = plan_call(&offer, Some(&md), MediaPolicy::Audio, 16).unwrap();
        // The caller first; a line the metadata does not attribute is a party of its own.
        assert_eq!(
            parties_of(&plan),
            [
                (Some("a"), "Alice"),
                (Some("b"), "Agent Bob"),
                (None, "participant 3")
            ]
        );
        let party_of: Vec<Option<usize>> = plan
            .lines
            .iter()
            .map(|l| l.as_ref().map(|l| l.party))
            .collect();
        // Video declined under the audio policy.
        assert_eq!(party_of, [Some(0), None, Some(1), Some(2)]);
        assert_eq!(plan.lines[2].as_ref().unwrap().format.encoding, "PCMA");
        // Under audio_video the caller's video line is the caller's.
        let plan = plan_call(&offer, Some(&md), MediaPolicy::AudioVideo, 16).unwrap();
        assert_eq!(plan.lines[1].as_ref().unwrap().party, 0);
        assert_eq!(plan.parties.len(), 3);
    }

    #[test]
    fn no_metadata_gives_a_party_per_line_and_no_recordable_line_is_refused() {
        let offer = Offer::parse(SDP).unwrap();
        let plan = plan_call(&offer, None, MediaPolicy::Audio, 16).unwrap();
        assert_eq!(
            parties_of(&plan),
            [
                (None, "participant 1"),
                (None, "participant 2"),
                (None, "participant 3")
            ]
        );
        let video_only =
            "v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n";
        let refused = plan_call(
            &Offer::parse(video_only).unwrap(),
            None,
            MediaPolicy::Audio,
            16,
        );
        assert_eq!(refused.unwrap_err().status, 488);
        assert!(plan_call(
            &Offer::parse(video_only).unwrap(),
            None,
            MediaPolicy::AudioVideo,
            16
        )
        .is_ok());
    }

    #[test]
    fn lines_beyond_the_cap_are_declined() {
        let mut sdp = String::from(
            "v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
        );
        for n in 0..500 {
            sdp += &format!("m=audio {} RTP/AVP 0\r\na=sendonly\r\n", 6000 + 2 * n);
        }
        let offer = Offer::parse(&sdp).unwrap();
        assert_eq!(ports_needed(&offer, 16), 16);
        let plan = plan_call(&offer, None, MediaPolicy::Audio, 16).unwrap();
        assert_eq!(plan.lines.len(), 500, "one answer line per offered line");
        assert_eq!(plan.lines.iter().flatten().count(), 16);
        assert!(plan.lines[..16].iter().all(Option::is_some));
    }

    #[test]
    fn a_reoffer_keeps_the_lines_and_a_stop_in_sending_is_a_hold() {
        let offer = Offer::parse(SDP).unwrap();
        let plan = plan_call(&offer, None, MediaPolicy::Audio, 16).unwrap();
        let recorded: Vec<Option<(u16, &Format)>> = plan
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| l.as_ref().map(|l| (30_000 + i as u16, &l.format)))
            .collect();
        let (answers, held) = reanswer(&offer, &recorded);
        assert!(!held);
        assert_eq!(
            answers[0],
            LineAnswer::Record {
                port: 30_000,
                format: plan.lines[0].as_ref().unwrap().format.clone()
            }
        );
        assert_eq!(answers[1], LineAnswer::Reject);
        let hold = Offer::parse(&SDP.replace("a=sendonly", "a=inactive")).unwrap();
        assert!(reanswer(&hold, &recorded).1);
        // A line whose codec changed is declined, and does not count for the hold.
        let changed = SDP.replacen(
            "RTP/AVP 0\r\na=label:1\r\na=sendonly",
            "RTP/AVP 8\r\na=label:1\r\na=inactive",
            1,
        );
        let (answers, held) = reanswer(&Offer::parse(&changed).unwrap(), &recorded);
        assert_eq!(answers[0], LineAnswer::Reject);
        assert!(!held);
    }

    #[test]
    fn a_metadata_update_renames_only_who_changed_and_never_to_a_number() {
        let offer = Offer::parse(SDP).unwrap();
        let plan = plan_call(&offer, Some(&metadata("Alice")), MediaPolicy::Audio, 16).unwrap();
        assert_eq!(
            renames(&plan.parties, &metadata("Alice Liddell")),
            [(0, "Alice Liddell".to_string())]
        );
        assert_eq!(
            renames(&plan.parties, &metadata("+1 555 0100")),
            [(0, "participant 1".to_string())]
        );
        assert!(renames(&plan.parties, &metadata("Alice")).is_empty());
    }

    #[test]
    fn phone_numbers_never_become_names() {
        assert_eq!(party_name(Some("Alice"), 1), "Alice");
        assert_eq!(party_name(Some("+1 (555) 010-0199"), 2), "participant 2");
        assert_eq!(party_name(Some("  "), 3), "participant 3");
        assert_eq!(party_name(None, 1), "participant 1");
    }

    #[test]
    fn the_request_uri_names_the_room_else_the_default() {
        assert_eq!(
            room_candidates(Some("room_abc"), "room_def"),
            ["room_abc", "room_def"]
        );
        assert_eq!(room_candidates(Some("sales"), "room_def"), ["room_def"]);
        assert!(room_candidates(Some("sales"), "").is_empty());
        assert_eq!("audio_video".parse(), Ok(MediaPolicy::AudioVideo));
        assert!("video".parse::<MediaPolicy>().is_err());
    }
}
