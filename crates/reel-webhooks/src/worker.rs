//! The delivery worker: turns new events into deliveries, sends the ones that are due, logs
//! every attempt and schedules the next. At least once: a delivery is marked delivered only
//! after a 2xx, so a crash between sending and recording means it is sent again (with the
//! same `webhook-id`, which receivers use to drop duplicates).

use crate::{schedule, sign, target};
use reel_db::{AttemptOutcome, Db, DueDelivery};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Time for the worker. Production uses the system clock; tests shift it from a file so a
/// three-day retry schedule runs in seconds, across restarts.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        reel_db::now_ms()
    }
}

/// System time plus the number of milliseconds written in a file (absent file: 0).
pub struct OffsetFileClock(pub PathBuf);

impl Clock for OffsetFileClock {
    fn now_ms(&self) -> i64 {
        let offset = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        reel_db::now_ms() + offset
    }
}

#[derive(Clone)]
pub struct WorkerConfig {
    pub allow_private_targets: bool,
    pub timeout: Duration,
    /// How often to look for work when nothing wakes the worker.
    pub poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            allow_private_targets: false,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// What the receiver made of one attempt.
enum Sent {
    Status(u16),
    Failed(String),
}

fn send(d: &DueDelivery, cfg: &WorkerConfig, now_ms: i64) -> Sent {
    let addrs = match target::check(&d.endpoint.url, cfg.allow_private_targets) {
        Ok(addrs) => addrs,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    let Some(key) = sign::secret_key(&d.endpoint.secret) else {
        return Sent::Failed("endpoint secret is not a whsec_ secret".into());
    };
    let body = serde_json::json!({
        "type": d.event_type,
        "timestamp": d.event_created_at,
        "data": d.payload,
    })
    .to_string();
    let timestamp = now_ms / 1000;
    // Connects to the addresses just checked, not to a second lookup of the name.
    let agent = target::pinned_agent(addrs, cfg.timeout);
    let result = agent
        .post(&d.endpoint.url)
        .header("content-type", "application/json")
        .header("user-agent", "Reel-Webhooks/0.1")
        .header("webhook-id", &d.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            sign::signature(&key, &d.event_id, timestamp, &body),
        )
        .send(body.as_bytes());
    match result {
        Ok(resp) => Sent::Status(resp.status().as_u16()),
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// An endpoint URL fit for a log: no userinfo, no query or fragment (where tokens live).
pub fn loggable_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Attempts in flight at once to one endpoint, and in all. A receiver that never answers
/// holds its own endpoint's places for the timeout, never another endpoint's.
const PER_ENDPOINT: usize = 4;
const IN_FLIGHT: usize = 64;

type Attempted = (DueDelivery, Sent, Duration);

/// The attempts in flight, each recorded as it ends (not when a batch does).
#[derive(Default)]
struct Dispatcher {
    jobs: tokio::task::JoinSet<Attempted>,
    /// Each task's delivery and endpoint, so a place is freed however the task ends.
    tasks: HashMap<tokio::task::Id, (String, String)>,
    in_flight: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
}

impl Dispatcher {
    /// Fans out new events and starts the due deliveries that have a place.
    async fn dispatch(
        &mut self,
        db: &Db,
        clock: &dyn Clock,
        cfg: &WorkerConfig,
    ) -> reel_db::Result<()> {
        let now = clock.now_ms();
        while db.fan_out_events(100, now).await? == 100 {}
        let room = IN_FLIGHT.saturating_sub(self.in_flight.len());
        if room == 0 {
            return Ok(());
        }
        let due = db
            .due_deliveries(
                now,
                PER_ENDPOINT as i64,
                (room + self.in_flight.len()) as i64,
            )
            .await?;
        for d in due {
            let busy = self.per_endpoint.get(&d.endpoint.id).copied().unwrap_or(0);
            if self.in_flight.contains(&d.id)
                || busy >= PER_ENDPOINT
                || self.in_flight.len() >= IN_FLIGHT
            {
                continue;
            }
            self.in_flight.insert(d.id.clone());
            *self.per_endpoint.entry(d.endpoint.id.clone()).or_default() += 1;
            let ids = (d.id.clone(), d.endpoint.id.clone());
            let cfg = cfg.clone();
            let task = self.jobs.spawn_blocking(move || {
                let started = Instant::now();
                let sent = send(&d, &cfg, now);
                (d, sent, started.elapsed())
            });
            self.tasks.insert(task.id(), ids);
        }
        Ok(())
    }

    fn is_busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    fn free(&mut self, task: tokio::task::Id) {
        let Some((delivery, endpoint)) = self.tasks.remove(&task) else {
            return;
        };
        self.in_flight.remove(&delivery);
        if let Some(n) = self.per_endpoint.get_mut(&endpoint) {
            *n -= 1;
            if *n == 0 {
                self.per_endpoint.remove(&endpoint);
            }
        }
    }

    /// The next attempt to end (None when none is in flight). A send that panicked frees
    /// its place; its delivery stays pending and is tried again.
    async fn next(&mut self) -> Option<Attempted> {
        loop {
            match self.jobs.join_next_with_id().await? {
                Ok((task, done)) => {
                    self.free(task);
                    return Some(done);
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhook send failed");
                    self.free(e.id());
                }
            }
        }
    }
}

/// One pass: fan out new events, send what is due and record every attempt. Returns how
/// many attempts it made.
pub async fn tick(db: &Db, clock: &dyn Clock, cfg: &WorkerConfig) -> reel_db::Result<usize> {
    let mut dispatcher = Dispatcher::default();
    dispatcher.dispatch(db, clock, cfg).await?;
    let mut attempts = 0;
    while let Some(done) = dispatcher.next().await {
        record(db, clock, done).await?;
        attempts += 1;
    }
    Ok(attempts)
}

/// Logs one attempt and schedules what follows it.
async fn record(db: &Db, clock: &dyn Clock, (d, sent, took): Attempted) -> reel_db::Result<()> {
    let attempt = d.attempts + 1;
    let at = clock.now_ms();
    let (status, error, state, next) = match sent {
        Sent::Status(s) if (200..300).contains(&s) => (Some(s as i64), None, "delivered", at),
        Sent::Status(410) => {
            db.disable_endpoint(&d.endpoint.id, "receiver answered 410 Gone")
                .await?;
            (
                Some(410),
                Some("410 Gone: endpoint disabled".to_string()),
                "failed",
                at,
            )
        }
        other => {
            let (status, error) = match other {
                Sent::Status(s) => (Some(s as i64), format!("HTTP {s}")),
                Sent::Failed(e) => (None, e),
            };
            match schedule::next_attempt_at(
                at,
                (attempt - d.schedule_from) as u32,
                rand::random::<f64>() * 2.0 - 1.0,
            ) {
                Some(next) => (status, Some(error), "pending", next),
                None => (
                    status,
                    Some(format!("{error}; retries exhausted")),
                    "failed",
                    at,
                ),
            }
        }
    };
    let outcome = AttemptOutcome {
        at,
        status,
        error: error.as_deref(),
        duration_ms: took.as_millis() as i64,
        state,
        next_attempt_at: next,
    };
    db.record_attempt(&d.id, attempt, &outcome).await?;
    if state == "delivered" {
        tracing::info!(delivery = %d.id, event = %d.event_type, attempt, status, "webhook delivered");
    } else {
        // What an operator needs to act: where it went, what came back, what happens next.
        let next = match state {
            "pending" => format!("in {} s", ((next - at).max(0) as u64).div_ceil(1000)),
            _ => "none: the delivery failed for good".into(),
        };
        tracing::warn!(
            delivery = %d.id,
            event = %d.event_type,
            endpoint = %loggable_url(&d.endpoint.url),
            attempt,
            status,
            error = error.as_deref().unwrap_or(""),
            next_attempt = %next,
            "webhook delivery failed"
        );
    }
    Ok(())
}

/// Runs until `stop` is notified: attempts run side by side, each recorded as it ends.
pub async fn run(db: Db, clock: Arc<dyn Clock>, cfg: WorkerConfig, stop: Arc<Notify>) {
    let mut dispatcher = Dispatcher::default();
    loop {
        if let Err(e) = dispatcher.dispatch(&db, clock.as_ref(), &cfg).await {
            tracing::warn!(error = %e, "webhook worker");
        }
        let busy = dispatcher.is_busy();
        tokio::select! {
            _ = stop.notified() => return,
            Some(done) = dispatcher.next(), if busy => {
                if let Err(e) = record(&db, clock.as_ref(), done).await {
                    tracing::warn!(error = %e, "webhook worker");
                }
            }
            _ = tokio::time::sleep(cfg.poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_url;

    #[test]
    fn a_logged_endpoint_keeps_no_credentials_or_query() {
        assert_eq!(
            loggable_url("https://user:pw@hooks.example.com:8443/in/reel?token=abc#x"),
            "https://hooks.example.com:8443/in/reel"
        );
        assert_eq!(loggable_url("http://example.com"), "http://example.com");
        assert_eq!(
            loggable_url("https://a@b@example.com/p"),
            "https://example.com/p"
        );
    }
}
