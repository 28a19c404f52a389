//! The SIPREC side of Reel (RFC 7866): a session recording server that SBCs, PBXs and
//! contact-centre media servers fork calls to. Everything here is sans-IO: bytes in, bytes
//! and decisions out; the binary owns the sockets and the clock.
//!
//! - [`message`]: SIP messages, parsed with `ezk-sip-types` (the grammar: start lines,
//!   folded headers, URIs, Via/CSeq/From/To), and the responses a UAS sends.
//! - [`multipart`]: the `multipart/mixed` body of a SIPREC INVITE (SDP + rs-metadata).
//! - [`metadata`]: the recording metadata (RFC 7865): session, participants, streams and
//!   who sends which stream.
//! - [`engine`]: the UAS: transactions, dialogs, what is refused (below).
//! - [`sources`]: the SRCs allowed to reach the recorder (`siprec.allowed_sources`).
//! - [`sdp`]: the SRC's offer (one m-line per recorded stream, `a=label`) and the
//!   recorder's `recvonly` answer.
//!
//! Why the transaction layer is Reel's own: a recording server is a UAS only. It needs the
//! INVITE server transaction (RFC 3261 §17.2.1: 100 Trying, the final response kept and
//! re-sent on every retransmitted INVITE, the 2xx re-sent on timer G until the ACK, §13.3.1.4)
//! and the non-INVITE server transaction (§17.2.2), plus one client transaction for the BYE it
//! sends when media times out. The maintained Rust SIP stacks bring their transaction layer
//! bound to a tokio runtime and their own sockets, which would break the sans-IO rule the
//! rest of Reel follows (tests drive a manual clock through retransmission timers).

pub mod engine;
pub mod message;
pub mod metadata;
pub mod multipart;
pub mod plan;
pub mod sdp;
pub mod sources;

/// Deterministic mutation testing (cargo-fuzz needs nightly, which is not available here):
/// `count` copies of `base`, each with 3 bytes replaced by one of `syntax` (the characters
/// the grammar under test turns on) or a random byte.
#[cfg(test)]
pub(crate) fn mutations<'a>(
    base: &'a [u8],
    syntax: &'static [u8],
    count: usize,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ base.len() as u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..count).map(move |_| {
        let mut m = base.to_vec();
        for _ in 0..3 {
            let (at, pick, byte) = (next() as usize, next() as usize, next() as u8);
            let i = at % m.len();
            m[i] = syntax
                .get(pick % (syntax.len() + 1))
                .copied()
                .unwrap_or(byte);
        }
        m
    })
}

/// What was wrong with what a client sent. Every variant is the client's fault and maps to a
/// 4xx with the text as the reason phrase; none is ever a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiprecError {
    #[error("malformed SIP: {0}")]
    Sip(String),
    #[error("incomplete SIP message")]
    Incomplete,
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    #[error("invalid recording metadata: {0}")]
    Metadata(String),
    #[error("invalid SDP: {0}")]
    Sdp(String),
}
