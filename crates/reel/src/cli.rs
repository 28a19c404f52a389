//! The operator CLI: the same API an application uses, from a terminal. Every command talks
//! to a running server (`--server`, default http://127.0.0.1:8080) with `REEL_API_KEY`, prints
//! the JSON answer, and exits non-zero with the API's error code when the call fails.

use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Target {
    /// The Reel server, for the API commands.
    #[arg(
        long,
        env = "REEL_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API key (prefer the environment: command lines are visible to other users).
    #[arg(long, env = "REEL_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
}

#[derive(Subcommand)]
pub enum Rooms {
    /// Create a room.
    Create {
        /// A name of the application's (not unique).
        #[arg(long)]
        name: Option<String>,
        /// How long an empty room keeps its session open for a rejoin (default 30).
        #[arg(long)]
        empty_timeout_seconds: Option<u64>,
        /// A session ends after this long whatever happens (default 86400).
        #[arg(long)]
        max_duration_seconds: Option<u64>,
    },
    /// List rooms.
    List,
    /// One room.
    Get { id: String },
    /// Delete a room (its recordings stay).
    Delete { id: String },
    /// A publish token and WHIP URL for a participant.
    Token {
        room: String,
        #[arg(long)]
        participant: String,
        #[arg(long, default_value = "camera")]
        kind: String,
    },
}

#[derive(Subcommand)]
pub enum Assets {
    /// List recorded files, by session or type.
    List {
        #[arg(long)]
        session_id: Option<String>,
        #[arg(long)]
        asset_type: Option<String>,
    },
    /// Download an asset's file.
    Download {
        id: String,
        /// Where to write it (default: <id>.<format> here).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// An expiring link that needs no API key.
    Link {
        id: String,
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
    },
}

#[derive(Subcommand)]
pub enum Webhooks {
    /// Subscribe an endpoint; its signing secret is printed once.
    Create {
        url: String,
        /// Repeat for several; none means every event type.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
    },
    /// List endpoints.
    List,
    /// Remove an endpoint.
    Delete { id: String },
    /// The delivery log of an endpoint.
    Deliveries { id: String },
    /// Send a delivery again, on a fresh retry schedule.
    Redeliver { id: String, delivery: String },
}

#[derive(Subcommand)]
pub enum Recordings {
    /// Record a room: now if it is live, else from its next session.
    Start {
        room: String,
        #[arg(long, default_value = "stream")]
        mode: String,
    },
    /// Pause: nothing is stored until resumed.
    Pause { id: String },
    /// Resume a paused recording.
    Resume { id: String },
    /// Stop: its files are made and `recording_available` follows.
    Stop { id: String },
    /// One recording, with its state and failure if any.
    Get { id: String },
    /// List recordings, by room, session or state.
    List {
        #[arg(long)]
        room_id: Option<String>,
        #[arg(long)]
        session_id: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum Sessions {
    /// List sessions, by room.
    List {
        #[arg(long)]
        room_id: Option<String>,
    },
    /// One session with its participants.
    Get { id: String },
}

struct Client {
    base: String,
    key: String,
    agent: ureq::Agent,
}

/// Failure of a command, already explained to the user.
pub struct Failed;

impl Client {
    fn new(t: Target) -> Result<Client, Failed> {
        let Some(key) = t.api_key else {
            eprintln!("reel: set REEL_API_KEY (or --api-key)");
            return Err(Failed);
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Client {
            base: t.server.trim_end_matches('/').to_string(),
            key,
            agent,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Vec<u8>, Failed> {
        let url = format!("{}{path}", self.base);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.key));
        let result = match body {
            Some(b) => builder
                .header("Content-Type", "application/json")
                .body(b.to_string().into_bytes())
                .map_err(|e| e.to_string())
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
            None => builder
                .body(())
                .map_err(|e| e.to_string())
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
        };
        let mut resp = result.map_err(|e| {
            eprintln!("reel: {method} {url}: {e}");
            Failed
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| {
                eprintln!("reel: reading the answer: {e}");
                Failed
            })?;
        if status >= 400 {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            eprintln!(
                "reel: {} ({status}): {}",
                v["code"].as_str().unwrap_or("error"),
                v["message"].as_str().unwrap_or("")
            );
            return Err(Failed);
        }
        Ok(bytes)
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> Result<(), Failed> {
        let bytes = self.call(method, path, body)?;
        if bytes.is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| Failed)?;
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        Ok(())
    }
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                format!(
                    "{k}={}",
                    v.replace(
                        |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
                        ""
                    )
                )
            })
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn finish(r: Result<(), Failed>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed) => ExitCode::FAILURE,
    }
}

pub fn rooms(t: Target, cmd: Rooms) -> ExitCode {
    finish((|| {
        let c = Client::new(t)?;
        match cmd {
            Rooms::Create { name, empty_timeout_seconds, max_duration_seconds } => c.json(
                "POST",
                "/v1/rooms",
                Some(json!({"name": name, "empty_timeout_seconds": empty_timeout_seconds, "max_duration_seconds": max_duration_seconds})),
            ),
            Rooms::List => c.json("GET", "/v1/rooms", None),
            Rooms::Get { id } => c.json("GET", &format!("/v1/rooms/{id}"), None),
            Rooms::Delete { id } => c.json("DELETE", &format!("/v1/rooms/{id}"), None),
            Rooms::Token { room, participant, kind } => {
                c.json("POST", &format!("/v1/rooms/{room}/tokens"), Some(json!({"participant": participant, "kind": kind})))
            }
        }
    })())
}

pub fn recordings(t: Target, cmd: Recordings) -> ExitCode {
    finish((|| {
        let c = Client::new(t)?;
        match cmd {
            Recordings::Start { room, mode } => c.json(
                "POST",
                "/v1/recordings",
                Some(json!({"room_id": room, "mode": mode})),
            ),
            Recordings::Pause { id } => c.json("POST", &format!("/v1/recordings/{id}/pause"), None),
            Recordings::Resume { id } => {
                c.json("POST", &format!("/v1/recordings/{id}/resume"), None)
            }
            Recordings::Stop { id } => c.json("POST", &format!("/v1/recordings/{id}/stop"), None),
            Recordings::Get { id } => c.json("GET", &format!("/v1/recordings/{id}"), None),
            Recordings::List {
                room_id,
                session_id,
                state,
            } => {
                let q = query(&[
                    ("room_id", &room_id),
                    ("session_id", &session_id),
                    ("state", &state),
                ]);
                c.json("GET", &format!("/v1/recordings{q}"), None)
            }
        }
    })())
}

pub fn sessions(t: Target, cmd: Sessions) -> ExitCode {
    finish((|| {
        let c = Client::new(t)?;
        match cmd {
            Sessions::List { room_id } => c.json(
                "GET",
                &format!("/v1/sessions{}", query(&[("room_id", &room_id)])),
                None,
            ),
            Sessions::Get { id } => c.json("GET", &format!("/v1/sessions/{id}"), None),
        }
    })())
}

pub fn assets(t: Target, cmd: Assets) -> ExitCode {
    finish((|| {
        let c = Client::new(t)?;
        match cmd {
            Assets::List {
                session_id,
                asset_type,
            } => {
                let q = query(&[("session_id", &session_id), ("asset_type", &asset_type)]);
                c.json("GET", &format!("/v1/assets{q}"), None)
            }
            Assets::Link { id, expires_in } => c.json(
                "GET",
                &format!("/v1/assets/{id}/presigned-url?expires_in={expires_in}"),
                None,
            ),
            Assets::Download { id, output } => {
                let meta: Value =
                    serde_json::from_slice(&c.call("GET", &format!("/v1/assets/{id}"), None)?)
                        .map_err(|_| Failed)?;
                let path = output.unwrap_or_else(|| {
                    PathBuf::from(format!("{id}.{}", meta["format"].as_str().unwrap_or("bin")))
                });
                let bytes = c.call("GET", &format!("/v1/assets/{id}/download"), None)?;
                let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes));
                written.map_err(|e| {
                    eprintln!("reel: {}: {e}", path.display());
                    Failed
                })?;
                println!("{} ({} bytes)", path.display(), bytes.len());
                Ok(())
            }
        }
    })())
}

pub fn webhooks(t: Target, cmd: Webhooks) -> ExitCode {
    finish((|| {
        let c = Client::new(t)?;
        match cmd {
            Webhooks::Create { url, event_types } => c.json(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": url, "event_types": event_types})),
            ),
            Webhooks::List => c.json("GET", "/v1/webhooks", None),
            Webhooks::Delete { id } => c.json("DELETE", &format!("/v1/webhooks/{id}"), None),
            Webhooks::Deliveries { id } => {
                c.json("GET", &format!("/v1/webhooks/{id}/deliveries"), None)
            }
            Webhooks::Redeliver { id, delivery } => c.json(
                "POST",
                &format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
                None,
            ),
        }
    })())
}
