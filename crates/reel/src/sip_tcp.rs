//! SIP over TCP (RFC 3261 §18): each connection's messages are framed by Content-Length and
//! handed to the SIPREC loop as if they were datagrams from the peer; what the engine sends
//! to that peer goes back on the connection.
//!
//! Nothing a peer does here grows without bound:
//! - at most `max_connections` at once; one more is closed as soon as it is accepted;
//! - each connection queues at most [`WRITE_QUEUE`] messages for writing: a peer whose queue
//!   is full is not reading its responses and is closed (it cannot make the server hold its
//!   replies, which is how a no-read OPTIONS loop once took 4 GB);
//! - a connection does not read while it has a response to write (a write the peer does not
//!   take within [`WRITE_TIMEOUT`] closes it), and it waits for the loop to take each message
//!   (a bounded channel), so a fast sender is slowed to the loop's pace, never buffered;
//! - a connection that carries no call and has sent nothing for `idle_timeout` is closed;
//! - a connection from outside `siprec.allowed_sources` is closed as it is accepted.

use reel_siprec::sources::AllowedSources;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Responses a connection may have waiting; one more and the peer is taken for a non-reader.
/// Above what one [`READ_CHUNK`] of the smallest requests (~150 bytes) can ask for, so a
/// peer that pipelines and reads is never mistaken for one that does not read.
pub const WRITE_QUEUE: usize = 128;
pub const READ_CHUNK: usize = 8192;
/// How long one write may wait for the peer to take it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages from all connections on their way to the loop.
pub const INBOX: usize = 256;

#[derive(Debug, Clone)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub allowed_sources: AllowedSources,
}

/// What the connections tell the SIPREC loop.
pub enum TcpEvent {
    Connected {
        peer: SocketAddr,
        connection: Connection,
    },
    Message {
        peer: SocketAddr,
        data: Vec<u8>,
    },
    Closed {
        peer: SocketAddr,
    },
}

/// The loop's handle on one connection; dropping it closes the connection.
pub struct Connection {
    writer: mpsc::Sender<Vec<u8>>,
    _close: oneshot::Sender<()>,
    last_heard: Instant,
}

/// Why a send to a TCP peer did not happen.
#[derive(Debug)]
pub enum SendOutcome {
    Queued,
    /// Not a TCP peer: send it by UDP.
    NotTcp(Vec<u8>),
    /// The peer does not read: its connection is closed.
    Closed,
}

/// The loop's side: the open connections, by peer address.
#[derive(Default)]
pub struct Connections {
    open: HashMap<SocketAddr, Connection>,
}

impl Connections {
    pub fn handle(&mut self, now: Instant, event: TcpEvent) -> Option<(SocketAddr, Vec<u8>)> {
        match event {
            TcpEvent::Connected {
                peer,
                mut connection,
            } => {
                connection.last_heard = now;
                self.open.insert(peer, connection);
                None
            }
            TcpEvent::Message { peer, data } => {
                if let Some(c) = self.open.get_mut(&peer) {
                    c.last_heard = now;
                }
                Some((peer, data))
            }
            TcpEvent::Closed { peer } => {
                self.open.remove(&peer);
                None
            }
        }
    }

    pub fn send(&mut self, to: SocketAddr, data: Vec<u8>) -> SendOutcome {
        let Some(c) = self.open.get(&to) else {
            return SendOutcome::NotTcp(data);
        };
        match c.writer.try_send(data) {
            Ok(()) => SendOutcome::Queued,
            Err(_) => {
                tracing::warn!(peer = %to, "SIP over TCP: peer does not read its responses: closing");
                self.open.remove(&to);
                SendOutcome::Closed
            }
        }
    }

    /// Closes connections silent for `idle_timeout` that carry no call; how many it closed.
    pub fn close_idle(
        &mut self,
        now: Instant,
        idle_timeout: Duration,
        carries_call: impl Fn(SocketAddr) -> bool,
    ) -> usize {
        let before = self.open.len();
        self.open.retain(|peer, c| {
            now.duration_since(c.last_heard) < idle_timeout || carries_call(*peer)
        });
        before - self.open.len()
    }
}

/// Accepts connections for ever, each served by a task of its own.
pub async fn accept(listener: TcpListener, events: mpsc::Sender<TcpEvent>, limits: TcpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused: u64 = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !limits.allowed_sources.allows(peer.ip()) {
            continue; // closed unanswered, as their datagrams go unanswered
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused += 1;
            // Once, then every 1,000th: a flood must not become a flood of log lines.
            if refused % 1000 == 1 {
                tracing::warn!(%peer, max = limits.max_connections, refused,
                    "SIP over TCP: at the connection limit (siprec.max_tcp_connections): closing new connections");
            }
            drop(stream);
            continue;
        };
        let (writer, outgoing) = mpsc::channel(WRITE_QUEUE);
        let (close, closed) = oneshot::channel();
        let connection = Connection {
            writer,
            _close: close,
            last_heard: Instant::now(),
        };
        if events
            .send(TcpEvent::Connected { peer, connection })
            .await
            .is_err()
        {
            return;
        }
        tokio::spawn(serve(
            stream,
            peer,
            outgoing,
            closed,
            events.clone(),
            permit,
        ));
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    mut closed: oneshot::Receiver<()>,
    events: mpsc::Sender<TcpEvent>,
    _slot: OwnedSemaphorePermit,
) {
    let (mut read, mut write) = stream.into_split();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    'serve: loop {
        tokio::select! {
            // Writing first: no reading while a response waits.
            biased;
            _ = &mut closed => break,
            data = outgoing.recv() => {
                let Some(data) = data else { break };
                match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&data)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::warn!(%peer, "SIP over TCP: peer does not read its responses: closing");
                        break;
                    }
                }
            }
            n = read.read(&mut chunk) => {
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    // Keep-alive CRLFs between messages (RFC 5626 §4.4.1).
                    let skip = buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
                    buf.drain(..skip);
                    match reel_siprec::message::frame_len(&buf) {
                        Ok(Some(len)) => {
                            let data: Vec<u8> = buf.drain(..len).collect();
                            if events.send(TcpEvent::Message { peer, data }).await.is_err() {
                                break 'serve;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "unframeable SIP over TCP: closing");
                            break 'serve;
                        }
                    }
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { peer }).await;
}
