//! `reel`: wires config, sockets, the recorder and the API together. No business logic.

mod addresses;
mod cli;
mod config;
mod http_server;
mod media;
mod sip_tcp;
mod siprec;

use clap::{Parser, Subcommand};
use reel_core::random_token;
use reel_db::Db;
use reel_recorder::{recovery, Recorder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "reel",
    version,
    about = "Reel: a recording service for WebRTC and SIP calls"
)]
struct Cli {
    /// Where the API commands (rooms, recordings, …) go; accepted before or after the group.
    #[command(flatten)]
    target: cli::Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded defaults: SQLite and ./data).
    Serve(ServeArgs),
    /// Render one composite or audio-mix job (run by the server in a child process, so a
    /// crash in the media pipeline fails that job only).
    #[command(hide = true)]
    Render { job: std::path::PathBuf },
    /// Transcribe one recording (run by the server in a child process, as renders are).
    #[command(hide = true)]
    Transcribe { job: std::path::PathBuf },
    /// Print every setting with its default, commented out: a configuration file to start
    /// from (`reel config-example > reel.toml`; the Debian package's /etc/reel/reel.toml).
    ConfigExample,
    /// Work with capture journals.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Rooms and publish tokens, through the API of a running server.
    Rooms {
        #[command(subcommand)]
        command: cli::Rooms,
    },
    /// Recordings: start, pause, resume, stop, get, list.
    Recordings {
        #[command(subcommand)]
        command: cli::Recordings,
    },
    /// Sessions (who published, when, and why it ended).
    Sessions {
        #[command(subcommand)]
        command: cli::Sessions,
    },
    /// Recorded files: list, download, signed links.
    Assets {
        #[command(subcommand)]
        command: cli::Assets,
    },
    /// Webhook endpoints and their delivery logs.
    Webhooks {
        #[command(subcommand)]
        command: cli::Webhooks,
    },
}

#[derive(Parser)]
struct ServeArgs {
    /// Config file (TOML, keys as in the embedded defaults).
    #[arg(long, env = "REEL_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long)]
    http: Option<String>,
    /// The UDP port shared by all WebRTC sessions (0: any free port).
    #[arg(long)]
    media_port: Option<u16>,
    /// The SIPREC port, UDP and TCP (0: any free port).
    #[arg(long)]
    sip_port: Option<u16>,
    /// The address put in ICE candidates and SDP answers (default: the host's own).
    #[arg(long)]
    public_ip: Option<String>,
    /// postgres://… or sqlite://… (default: SQLite in the data directory).
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Print what a journal holds.
    Inspect {
        file: PathBuf,
        /// Also print one line per record.
        #[arg(long)]
        records: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::ConfigExample => {
            print!("{}", config::commented_defaults());
            ExitCode::SUCCESS
        }
        Command::Render { job } => render(&job),
        Command::Transcribe { job } => transcribe(&job),
        Command::Journal {
            command: JournalCommand::Inspect { file, records },
        } => inspect(&file, records),
        Command::Rooms { command } => cli::rooms(cli.target, command),
        Command::Sessions { command } => cli::sessions(cli.target, command),
        Command::Recordings { command } => cli::recordings(cli.target, command),
        Command::Assets { command } => cli::assets(cli.target, command),
        Command::Webhooks { command } => cli::webhooks(cli.target, command),
    }
}

fn inspect(path: &std::path::Path, records: bool) -> ExitCode {
    use reel_media::journal::{self, JournalReader, Record};
    use std::io::Write;
    let open = || std::fs::File::open(path).map(std::io::BufReader::new);
    let summary = match open()
        .map_err(reel_media::MediaError::from)
        .and_then(journal::summarize)
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    // Written with errors checked, not println!: `reel journal inspect … | head` closes the
    // pipe early, which ends the listing quietly instead of a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut print = || -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
        writeln!(out, "{json}")?;
        if records {
            let mut reader =
                JournalReader::open(open()?).map_err(|e| std::io::Error::other(e.to_string()))?;
            while let Ok(Some(r)) = reader.next_record() {
                match r {
                    Record::Frame {
                        rtp_time,
                        arrival_unix_us,
                        flags,
                        data,
                    } => writeln!(
                        out,
                        "frame rtp={rtp_time} arrival_us={arrival_unix_us} flags={flags:#04x} bytes={}",
                        data.len()
                    )?,
                    other => writeln!(out, "{other:?}")?,
                }
            }
        }
        out.flush()
    };
    match print() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// A job file the server wrote for a child process.
fn read_job<T: serde::de::DeserializeOwned>(
    what: &str,
    job: &std::path::Path,
) -> Result<T, ExitCode> {
    std::fs::read(job)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| {
            eprintln!("{what}: {}: {e}", job.display());
            ExitCode::from(2)
        })
}

fn transcribe(job: &std::path::Path) -> ExitCode {
    let job: reel_recorder::transcripts::TranscriptJob = match read_job("transcribe", job) {
        Ok(j) => j,
        Err(code) => return code,
    };
    match reel_recorder::transcripts::run_job(&job) {
        Ok(done) => {
            println!("{}", serde_json::to_string(&done).expect("serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("transcription: {e}");
            ExitCode::from(reel_recorder::transcripts::exit_code(&e))
        }
    }
}

fn render(job: &std::path::Path) -> ExitCode {
    // Tests break the renderer on purpose to show that a crashed job fails alone.
    if std::env::var("REEL_TEST_RENDER_CRASH").is_ok_and(|v| v == "1") {
        eprintln!("render: crashing on purpose (REEL_TEST_RENDER_CRASH)");
        std::process::abort();
    }
    let job: reel_compose::render::Job = match read_job("render", job) {
        Ok(j) => j,
        Err(code) => return code,
    };
    match reel_compose::render::render(&job) {
        Ok(rendered) => {
            println!("{}", serde_json::to_string(&rendered).expect("serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("render: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut overrides = config::Overrides::new();
    if let Some(v) = args.data_dir {
        overrides.push(("data_dir", v.to_string_lossy().into_owned()));
    }
    if let Some(v) = args.http {
        overrides.push(("http", v));
    }
    if let Some(v) = args.media_port {
        overrides.push(("media_port", v.to_string()));
    }
    if let Some(v) = args.sip_port {
        overrides.push(("siprec.port", v.to_string()));
    }
    if let Some(v) = args.public_ip {
        overrides.push(("public_ip", v));
    }
    if let Some(v) = args.database_url {
        overrides.push(("database_url", v));
    }
    let settings = match config::load(args.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reel: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: text, coloured only for a terminal (never into files and log
/// shippers), or JSON lines.
fn init_logging(log: &config::LogSettings) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG")
        .unwrap_or_else(|_| "info,str0m=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

async fn bootstrap_admin_key(db: &Db) -> Result<(), String> {
    const APP: &str = "app_default";
    db.ensure_application(APP, "default")
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(key) = std::env::var("REEL_ADMIN_KEY") {
        if db
            .find_api_key(&key)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            db.insert_api_key(&format!("key_{}", random_token(12)), APP, &key, "admin")
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if db
        .count_api_keys("admin")
        .await
        .map_err(|e| e.to_string())?
        == 0
    {
        let key = format!("reel_admin_{}", random_token(32));
        db.insert_api_key(&format!("key_{}", random_token(12)), APP, &key, "admin")
            .await
            .map_err(|e| e.to_string())?;
        // Printed once, on stdout only; the database keeps just its hash.
        println!("admin API key (shown once, store it now): {key}");
    }
    Ok(())
}

/// The key sealing credentials at rest: configured (`master_key`), or the data directory's.
fn master_key(s: &config::Settings, data_dir: &std::path::Path) -> Result<[u8; 32], String> {
    use base64::Engine;
    let bytes = match s.master_key.expose() {
        "" => load_or_create_key(&data_dir.join("secrets.key"))?,
        b64 => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "master_key: not base64".to_string())?,
    };
    bytes
        .try_into()
        .map_err(|_| "master_key: expected 32 bytes".to_string())
}

/// A database that never held a session beside journals that did is a lost or replaced
/// one (an unlinked `reel.db` is recreated empty): starting on it would hide every earlier
/// recording and let retention and the sweep of `assets/` act as if they never were.
async fn refuse_a_lost_database(db: &Db, data_dir: &std::path::Path) -> Result<(), String> {
    let journals = data_dir.join("journals");
    let recorded = std::fs::read_dir(&journals)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if recorded
        && !db
            .has_sessions()
            .await
            .map_err(|e| format!("database: {e}"))?
    {
        return Err(format!(
            "the database holds no session, but {} holds journals of earlier sessions: the \
             database was lost or replaced. Restore it (or point database_url at it); to start \
             afresh on purpose, move {} away first",
            journals.display(),
            journals.display()
        ));
    }
    Ok(())
}

async fn run(s: config::Settings) -> Result<(), String> {
    std::fs::create_dir_all(&s.data_dir).map_err(|e| format!("{}: {e}", s.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&s.data_dir).map_err(|e| e.to_string())?;
    let url = match s.database_url.expose() {
        "" => format!("sqlite://{}", data_dir.join("reel.db").display()),
        other => other.to_string(),
    };
    let db = Db::connect(&url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    refuse_a_lost_database(&db, &data_dir).await?;

    let recovered = recovery::recover(&db)
        .await
        .map_err(|e| format!("recovery: {e}"))?;
    if recovered.publications + recovered.sessions > 0 {
        tracing::warn!(
            sessions = recovered.sessions,
            publications = recovered.publications,
            truncated_journals = recovered.journals_truncated,
            "recovered recordings interrupted by a crash"
        );
    }
    // Before any job runs: a job started now could be mistaken for a crash's leftovers.
    reel_recorder::orphans::sweep(&db, &data_dir)
        .await
        .map_err(|e| format!("start-up sweep of assets/: {e}"))?;
    let secrets_key = master_key(&s, &data_dir)?;
    let uploads = reel_recorder::uploads::UploadContext {
        settings: s.storage.blob_settings(),
        secrets_key,
        keep_local_copy: s.storage.keep_local_copy,
        retry_window: Duration::from_secs(s.storage.upload_retry_window_secs),
    };
    let render = reel_recorder::composites::RenderContext {
        program: std::env::current_exe().map_err(|e| format!("own executable: {e}"))?,
        attempts: 2,
        transcription: s.transcription.transcription()?,
    };
    let capture = reel_recorder::capture::CaptureConfig::for_load(
        s.capture_buffer_secs,
        s.max_publishers,
        s.siprec.max_calls,
    );
    tracing::info!(
        budget_mib = capture.budget_bytes >> 20,
        threads = capture.threads,
        "capture: media that may wait for the disk"
    );
    let parts = Recorder::start(
        db.clone(),
        data_dir.clone(),
        uploads.clone(),
        render,
        capture,
        s.min_free_disk_mb << 20,
    );
    let recorder = parts.recorder.clone();
    {
        let (recorder, db) = (recorder.clone(), db.clone());
        tokio::spawn(async move {
            if let Err(e) = recorder.resume_pending(&db).await {
                tracing::error!(error = %e, "producing assets of recovered recordings");
            }
        });
    }

    let socket = bind_media_socket(std::net::SocketAddr::new(s.media_bind, s.media_port))
        .map_err(|e| format!("media port {}: {e}", s.media_port))?;
    let media_bound = socket.local_addr().map_err(|e| e.to_string())?;
    let media_addresses =
        addresses::MediaAddresses::new(s.public_ip, s.media_bind, media_bound.port());
    if media_addresses.per_datagram {
        addresses::want_destinations(&socket).map_err(|e| format!("media socket: {e}"))?;
    }
    let media = media::MediaLoop {
        socket,
        addresses: media_addresses.clone(),
        ingest: reel_whip::IngestConfig {
            candidate_addrs: media_addresses.candidates.clone(),
            max_publishers: s.max_publishers,
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            first_contact_timeout: Duration::from_secs(s.whip_first_contact_timeout_secs),
            max_pending_per_token: s.whip_max_pending_per_token,
            max_pending_per_room: s.whip_max_pending_per_room,
            keyframe_interval: Duration::from_secs(s.keyframe_interval_secs),
        },
        commands: parts.media_commands,
        recorder: recorder.clone(),
    };
    let _media_thread = media.spawn();

    let (sip_udp, sip_tcp) = bind_sip(std::net::SocketAddr::new(s.siprec.bind, s.siprec.port))?;
    let sip_bound = sip_udp.local_addr().map_err(|e| e.to_string())?;
    let sip = siprec::SiprecLoop {
        udp: sip_udp,
        tcp: sip_tcp,
        answer_address: addresses::AnswerAddress::new(s.public_ip, s.siprec.bind),
        settings: s.siprec,
        commands: parts.call_commands,
        recorder: recorder.clone(),
        db: db.clone(),
    };
    let _sip_thread = sip.spawn();

    let webhook_stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let clock: std::sync::Arc<dyn reel_webhooks::worker::Clock> = if s.test_clock_file.is_empty() {
        std::sync::Arc::new(reel_webhooks::worker::SystemClock)
    } else {
        std::sync::Arc::new(reel_webhooks::worker::OffsetFileClock(
            s.test_clock_file.clone().into(),
        ))
    };
    let worker_config = reel_webhooks::worker::WorkerConfig {
        allow_private_targets: s.webhooks.allow_private_targets,
        ..Default::default()
    };
    {
        // Retention passes, on the same clock as webhook retries (a test may run it ahead).
        let (recorder, clock) = (recorder.clone(), clock.clone());
        let (days, every) = (
            s.retention.default_days,
            Duration::from_secs(s.retention.sweep_interval_secs),
        );
        tokio::spawn(async move {
            loop {
                recorder.retention_due(days, clock.now_ms());
                tokio::time::sleep(every).await;
            }
        });
    }
    let webhook_worker = tokio::spawn(reel_webhooks::worker::run(
        db.clone(),
        clock,
        worker_config,
        webhook_stop.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(s.http)
        .await
        .map_err(|e| format!("http {}: {e}", s.http))?;
    let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Only once every port is bound: a start that fails (a port in use) must not make an
    // admin key the operator never sees again.
    bootstrap_admin_key(&db).await?;
    let public_url = if s.public_url.is_empty() {
        format!("http://{http_addr}")
    } else {
        s.public_url.clone()
    };
    let app = reel_api::router(
        db,
        recorder.clone(),
        reel_api::ApiConfig {
            public_url,
            default_empty_timeout: Duration::from_secs(s.empty_timeout_secs),
            default_max_duration: Duration::from_secs(s.max_duration_secs),
            webhooks_allow_private_targets: s.webhooks.allow_private_targets,
            rate_limit: reel_api::RateLimit {
                per_second: s.api_rate_limit_per_second as f64,
                burst: s.api_rate_limit_burst as f64,
            },
            access_log: s.log.access_log,
            whip_rate_limit: reel_api::RateLimit {
                per_second: s.whip_offers_per_second_per_address,
                burst: s.whip_offer_burst_per_address as f64,
            },
            url_signing_key: load_or_create_key(&data_dir.join("url-signing.key"))?,
            secrets_key,
            uploads,
        },
    );
    // One machine-readable line for scripts and tests that start reel on port 0.
    // What is bound, truly (SIP on UDP and TCP), and what WebRTC publishers are told.
    let candidates = media_addresses.list();
    println!(
        "reel listening http={http_addr} media={media_bound} sip={sip_bound} candidates={candidates}"
    );
    tracing::info!(http = %http_addr, media = %media_bound, sip = %sip_bound, %candidates, data_dir = %data_dir.display(), "reel serving");
    let limits = http_server::HttpLimits {
        max_connections: s.http_max_connections,
        max_per_address: s.http_max_connections_per_address,
        header_timeout: Duration::from_secs(s.http_header_timeout_secs),
    }
    .fitted();
    http_server::serve(listener, app, limits, shutdown_signal()).await;
    tracing::info!("shutting down: ending publications and finishing assets");
    recorder.shutdown(Duration::from_secs(20)).await;
    // Deliver what the shutdown itself produced, then stop.
    webhook_stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(10), webhook_worker).await;
    let _ = parts.capture_thread.join();
    Ok(())
}

/// A 32-byte server key kept in the data directory, readable by the owner only. Made on
/// first start; every node of a cluster must share it for links to work everywhere.
fn load_or_create_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(key) = std::fs::read(path) {
        if key.len() == 32 {
            return Ok(key);
        }
        return Err(format!("{}: expected 32 bytes", path.display()));
    }
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(&key)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key.to_vec())
}

/// SIP's UDP socket and TCP listener on one port. For port 0 the OS picks the UDP port,
/// which may be taken for TCP: then another is tried.
fn bind_sip(
    addr: std::net::SocketAddr,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), String> {
    let mut last = String::new();
    for _ in 0..if addr.port() == 0 { 20 } else { 1 } {
        let udp = std::net::UdpSocket::bind(addr).map_err(|e| format!("siprec udp {addr}: {e}"))?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        match std::net::TcpListener::bind(std::net::SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = format!("siprec tcp port {port}: {e}"),
        }
    }
    Err(last)
}

/// The one UDP socket every publisher sends to. Its receive buffer is what absorbs bursts
/// (a hundred publishers' keyframes at once) while the media loop is busy: the kernel
/// default (~208 KiB) overflowed at 100 publishers in the benchmark, so ask for 8 MiB (the
/// kernel caps it at `net.core.rmem_max`; raise that on a real server).
fn bind_media_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    const BUFFER: usize = 8 << 20;
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.bind(&addr.into())?;
    let got = socket.recv_buffer_size().unwrap_or(0);
    if got < BUFFER {
        tracing::warn!(
            bytes = got,
            "media socket receive buffer is small; raise net.core.rmem_max for many publishers"
        );
    }
    Ok(socket.into())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command a user can see says what it does in `--help`.
    #[test]
    fn every_visible_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = vec![];
        walk(&Cli::command(), "reel", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    /// `--server` and `--api-key` go before the group, after it, or after the command.
    #[test]
    fn the_server_flag_is_accepted_anywhere() {
        for argv in [
            &["reel", "--server", "http://h:1", "rooms", "list"][..],
            &["reel", "rooms", "--server", "http://h:1", "list"],
            &["reel", "rooms", "list", "--server", "http://h:1"],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(cli.target.server, "http://h:1", "{argv:?}");
        }
    }
}
