//! An ICE-lite recorder keeps a pair alive while authenticated media arrives on it.
//!
//! str0m (ICE-lite) drops a pair 15 s after the last STUN Binding request on it. Browsers
//! send one every few seconds; libnice (GStreamer's `webrtcbin`) sends none once connected,
//! only a Binding Indication every 25 s, so its publications were cut off after exactly
//! 15 s while about 140 packets/s of SRTP kept arriving. RFC 7675 makes consent the
//! sender's business, and SRTP that decrypts is proof enough that the peer is there. So
//! while media flows and the peer sends no request of its own, the ingest hands str0m a
//! Binding request in the peer's name, built with the credentials both sides agreed on
//! (USERNAME, MESSAGE-INTEGRITY with our password, FINGERPRINT: exactly what str0m checks),
//! and drops str0m's answer to it.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const PRIORITY: u16 = 0x0024;
const ICE_CONTROLLING: u16 = 0x802A;
const FINGERPRINT: u16 = 0x8028;

/// The ICE credentials of one connection, from its offer and answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub local_ufrag: String,
    pub local_pwd: String,
    pub remote_ufrag: String,
}

impl IceCredentials {
    /// From the offer (the peer's ufrag) and our answer (our ufrag and password).
    pub fn from_sdp(offer: &str, answer: &str) -> Option<IceCredentials> {
        let attr = |sdp: &str, name: &str| {
            sdp.lines()
                .find_map(|l| l.trim_end().strip_prefix(name))
                .map(str::to_string)
        };
        Some(IceCredentials {
            local_ufrag: attr(answer, "a=ice-ufrag:")?,
            local_pwd: attr(answer, "a=ice-pwd:")?,
            remote_ufrag: attr(offer, "a=ice-ufrag:")?,
        })
    }
}

fn stun_type(data: &[u8]) -> Option<u16> {
    let cookie = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?);
    (data.len() >= 20 && cookie == MAGIC_COOKIE).then(|| u16::from_be_bytes([data[0], data[1]]))
}

/// A STUN Binding request (the peer's own connectivity check or keepalive).
pub fn is_binding_request(data: &[u8]) -> bool {
    stun_type(data) == Some(BINDING_REQUEST)
}

/// The transaction of a Binding success response.
pub fn success_transaction(data: &[u8]) -> Option<[u8; 12]> {
    (stun_type(data)? == BINDING_SUCCESS).then(|| data[8..20].try_into().ok())?
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Sets the header's length to the attributes so far plus `more` bytes still to come.
fn set_length(msg: &mut [u8], more: usize) {
    let body_len = msg.len() - 20 + more;
    msg[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
}

/// A Binding request as the peer (the controlling agent) would send it to us.
pub fn binding_request(creds: &IceCredentials, transaction: [u8; 12]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(128);
    msg.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg.extend_from_slice(&transaction);
    let username = format!("{}:{}", creds.local_ufrag, creds.remote_ufrag);
    attribute(&mut msg, USERNAME, username.as_bytes());
    attribute(&mut msg, PRIORITY, &0x6e7f_1effu32.to_be_bytes());
    attribute(&mut msg, ICE_CONTROLLING, &transaction[..8]);
    // MESSAGE-INTEGRITY covers the message with its length already counting itself.
    set_length(&mut msg, 24);
    let mut mac = Hmac::<Sha1>::new_from_slice(creds.local_pwd.as_bytes()).expect("any key");
    mac.update(&msg);
    attribute(&mut msg, MESSAGE_INTEGRITY, &mac.finalize().into_bytes());
    set_length(&mut msg, 8);
    let crc = crc32fast::hash(&msg) ^ 0x5354_554e;
    attribute(&mut msg, FINGERPRINT, &crc.to_be_bytes());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_one_and_credentials_come_from_the_sdp() {
        let offer = "v=0\r\na=ice-ufrag:peer\r\na=ice-pwd:peerpassword0123456789\r\n";
        let answer = "v=0\r\na=ice-ufrag:reel\r\na=ice-pwd:reelpassword0123456789\r\n";
        let creds = IceCredentials::from_sdp(offer, answer).unwrap();
        assert_eq!(creds.local_ufrag, "reel");
        assert_eq!(creds.remote_ufrag, "peer");
        let msg = binding_request(&creds, [7; 12]);
        assert!(is_binding_request(&msg));
        assert_eq!(msg.len() % 4, 0);
        assert_eq!(
            u16::from_be_bytes([msg[2], msg[3]]) as usize,
            msg.len() - 20
        );
        assert_eq!(success_transaction(&msg), None);
        let mut success = msg.clone();
        success[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        assert_eq!(success_transaction(&success), Some([7; 12]));
        assert!(!is_binding_request(&[0x80, 0x60, 0, 1]));
    }
}
