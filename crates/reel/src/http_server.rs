//! The HTTP listener of the API and WHIP, with the bounds `axum::serve` leaves out (it once
//! held 19,500 "slowloris" connections for 75 s and stopped answering `/healthz` at the
//! open-file limit):
//! - a request's head must arrive within `header_timeout`, and a kept-alive connection
//!   waiting for its next request is closed after as long (hyper runs that one timer for both);
//! - at most `max_connections` connections, fewer if the open-file limit needs it, so file
//!   descriptors stay for media, SIP, journals and the database ([`FD_RESERVE`]);
//! - at most `max_per_address` from one client address, so one host cannot take them all.
//!
//! A connection past a limit is closed as soon as it is accepted: that frees its descriptor
//! at once, where leaving it in the backlog would keep the client waiting for nothing.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// File descriptors kept out of the HTTP budget: RTP sockets, SIP connections, journal
/// files, database connections, storage uploads.
pub const FD_RESERVE: u64 = 1024;
/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
}

impl HttpLimits {
    /// `max_connections`, lowered to fit the process's open-file limit (raised to its hard
    /// limit first) minus [`FD_RESERVE`].
    pub fn fitted(self) -> HttpLimits {
        let files = raise_open_file_limit();
        let budget = files.saturating_sub(FD_RESERVE).max(64) as usize;
        if budget < self.max_connections {
            tracing::warn!(
                open_files = files,
                http_max_connections = budget,
                "the open-file limit is low: HTTP connections capped to keep descriptors for media"
            );
        }
        HttpLimits {
            max_connections: self.max_connections.min(budget),
            ..self
        }
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Connections per client address; a connection's share is given back when it closes.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct AddressShare {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressShare> {
        let mut counts = table.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressShare {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut counts = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` until `shutdown` resolves, then lets requests in flight finish (up to
/// [`DRAIN`]). Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE) or the like: let some close first.
                    tracing::warn!(error = %e, "http accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = slots.clone().try_acquire_owned().ok();
        let share = PerAddress::take(&per_address, peer.ip(), limits.max_per_address);
        let (Some(slot), Some(share)) = (slot, share) else {
            refused += 1;
            // Once, then every 1,000th: a flood must not become a flood of log lines.
            if refused % 1000 == 1 {
                tracing::warn!(%peer, refused, max = limits.max_connections,
                    max_per_address = limits.max_per_address,
                    "http: at a connection limit: closing new connections");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Closed by the client, a timeout, or a protocol error: nothing to report.
            let _ = connection.await;
            drop((slot, share));
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http: requests still in flight after the drain: closing them");
    }
}
