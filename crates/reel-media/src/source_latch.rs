//! Which datagrams a recorded RTP line takes: those of its one source.

use crate::rtp;
use std::net::{IpAddr, SocketAddr};

/// What a recorded line does with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// RTP of a negotiated payload type from the line's source.
    Media,
    /// RTCP from the source's host.
    Rtcp,
    Drop,
}

/// Each recorded line takes media from one source: the first that sends RTP of a
/// negotiated payload type, from the SDP's connection address when the offer gives one.
/// Packets from any other address (an injected second sender) and datagrams that are not
/// negotiated RTP (junk) are counted and dropped, so they are never recorded into a party's
/// file and never keep a silent call from its media timeout.
pub struct SourceLatch {
    expected_ip: Option<IpAddr>,
    source: Option<SocketAddr>,
    payload_types: Vec<u8>,
    /// Datagrams dropped so far.
    pub dropped: u64,
}

impl SourceLatch {
    /// `connection`: the SDP's address for the line; `ignored`: other negotiated payload
    /// types (telephone-event) that are the source's too but not recorded.
    pub fn new(connection: Option<IpAddr>, payload_type: u8, ignored: &[u8]) -> Self {
        let mut payload_types = vec![payload_type, 13];
        payload_types.extend_from_slice(ignored);
        SourceLatch {
            // 0.0.0.0 is RFC 2543's hold, not an address.
            expected_ip: connection.filter(|ip| !ip.is_unspecified()),
            source: None,
            payload_types,
            dropped: 0,
        }
    }

    pub fn admit(&mut self, from: SocketAddr, data: &[u8]) -> Admit {
        let verdict = self.verdict(from, data);
        if verdict == Admit::Drop {
            self.dropped += 1;
        }
        verdict
    }

    fn verdict(&mut self, from: SocketAddr, data: &[u8]) -> Admit {
        if rtp::is_rtcp(data) {
            // RTCP comes from the sender's host, often from the next port up.
            return match self.source {
                Some(s) if s.ip() == from.ip() => Admit::Rtcp,
                _ => Admit::Drop,
            };
        }
        match self.source {
            Some(s) if s != from => return Admit::Drop,
            None if self.expected_ip.is_some_and(|ip| ip != from.ip()) => return Admit::Drop,
            _ => {}
        }
        let negotiated =
            rtp::parse(data).is_ok_and(|p| self.payload_types.contains(&p.payload_type));
        if !negotiated {
            return Admit::Drop;
        }
        self.source = Some(from);
        Admit::Media
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 0, 0, 0, 7, 0xff]);
        p
    }

    #[test]
    fn a_line_latches_to_its_first_source_and_drops_the_rest() {
        let src: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let intruder: SocketAddr = "127.0.0.1:4444".parse().unwrap();
        let elsewhere: SocketAddr = "10.9.9.9:4000".parse().unwrap();
        let mut latch = SourceLatch::new(Some("127.0.0.1".parse().unwrap()), 0, &[101]);
        // Junk, and RTP of a payload type not offered, latch nothing.
        assert_eq!(latch.admit(intruder, b"x"), Admit::Drop);
        assert_eq!(latch.admit(intruder, &rtp(8, 1)), Admit::Drop);
        // Not from the SDP's address.
        assert_eq!(latch.admit(elsewhere, &rtp(0, 1)), Admit::Drop);
        assert_eq!(latch.admit(src, &rtp(0, 1)), Admit::Media);
        assert_eq!(latch.admit(src, &rtp(101, 2)), Admit::Media);
        assert_eq!(latch.admit(intruder, &rtp(0, 3)), Admit::Drop);
        assert_eq!(latch.admit(src, b"\x00junk"), Admit::Drop);
        let sr = [
            0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            latch.admit("127.0.0.1:4001".parse().unwrap(), &sr),
            Admit::Rtcp
        );
        assert_eq!(latch.admit(elsewhere, &sr), Admit::Drop);
        assert_eq!(latch.dropped, 6);
        // With no address in the SDP (or 0.0.0.0), the first valid sender is the source.
        let mut open = SourceLatch::new(Some("0.0.0.0".parse().unwrap()), 0, &[]);
        assert_eq!(open.admit(elsewhere, &rtp(0, 1)), Admit::Media);
        assert_eq!(open.admit(src, &rtp(0, 2)), Admit::Drop);
    }
}
