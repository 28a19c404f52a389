//! Settings: embedded defaults, then a config file, then `REEL_*` environment variables,
//! then command-line flags. Validated once at start; a typo fails loudly.

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub media_port: u16,
    pub media_bind: IpAddr,
    pub public_ip: crate::addresses::PublicIp,
    pub public_url: String,
    pub database_url: Secret,
    pub empty_timeout_secs: u64,
    pub max_duration_secs: u64,
    pub max_publishers: usize,
    pub whip_first_contact_timeout_secs: u64,
    pub whip_max_pending_per_token: usize,
    pub whip_max_pending_per_room: usize,
    pub whip_offers_per_second_per_address: f64,
    pub whip_offer_burst_per_address: u32,
    pub http_max_connections: usize,
    pub http_max_connections_per_address: usize,
    pub http_header_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub keyframe_interval_secs: u64,
    pub capture_buffer_secs: u64,
    pub min_free_disk_mb: u64,
    pub api_rate_limit_per_second: u64,
    pub api_rate_limit_burst: u64,
    pub test_clock_file: String,
    pub master_key: Secret,
    pub siprec: SiprecSettings,
    pub webhooks: WebhookSettings,
    pub storage: StorageSettings,
    pub retention: RetentionSettings,
    pub transcription: TranscriptionSettings,
    pub log: LogSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub access_log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub s3_endpoint: String,
    pub s3_virtual_hosted: bool,
    pub gcs_endpoint: String,
    pub azure_endpoint: String,
    pub allow_http: bool,
    pub file_root: String,
    pub request_timeout_secs: u64,
    pub request_retries: usize,
    pub part_size_mib: usize,
    pub upload_retry_window_secs: u64,
    pub keep_local_copy: bool,
}

impl StorageSettings {
    pub fn blob_settings(&self) -> reel_blob::Settings {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        reel_blob::Settings {
            s3_endpoint: opt(&self.s3_endpoint),
            s3_virtual_hosted: self.s3_virtual_hosted,
            gcs_endpoint: self.gcs_endpoint.clone(),
            azure_endpoint: opt(&self.azure_endpoint),
            allow_http: self.allow_http,
            file_root: opt(&self.file_root).map(PathBuf::from),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs.max(1)),
            request_retries: self.request_retries,
            part_size: self.part_size_mib.max(5) << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiprecSettings {
    pub port: u16,
    pub bind: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub media_policy: String,
    pub default_room: String,
    pub max_calls: usize,
    pub rtp_timeout_secs: u64,
    pub max_unconfirmed_calls: usize,
    pub max_unconfirmed_calls_per_source: usize,
    pub max_unconfirmed_ports_per_source: usize,
    pub max_lines_per_call: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout_secs: u64,
    pub allowed_sources: String,
}

impl SiprecSettings {
    pub fn allowed_sources(&self) -> reel_siprec::sources::AllowedSources {
        reel_siprec::sources::AllowedSources::parse(&self.allowed_sources)
            .expect("checked when the settings were read")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub default_days: u32,
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionSettings {
    pub engine: String,
    pub pocketsphinx_model: String,
    pub whisper_model: String,
    pub whisper_threads: u32,
    pub http_url: String,
    pub http_model: String,
    pub http_api_key: Secret,
    pub http_timeout_secs: u64,
}

impl TranscriptionSettings {
    pub fn transcription(&self) -> Result<reel_recorder::composites::Transcription, String> {
        use reel_transcribe::EngineConfig;
        let engine = match self.engine.as_str() {
            "pocketsphinx" => EngineConfig::Pocketsphinx {
                model: (!self.pocketsphinx_model.is_empty())
                    .then(|| PathBuf::from(&self.pocketsphinx_model)),
            },
            "whisper" if self.whisper_model.is_empty() => {
                return Err(
                    "transcription.whisper_model: the engine whisper needs a model file".into(),
                )
            }
            "whisper" => EngineConfig::Whisper {
                model: PathBuf::from(&self.whisper_model),
                threads: self.whisper_threads,
            },
            "http" if self.http_url.is_empty() => {
                return Err(
                    "transcription.http_url: the engine http needs the endpoint's URL".into(),
                )
            }
            "http" => EngineConfig::Http {
                url: self.http_url.clone(),
                model: self.http_model.clone(),
                timeout_secs: self.http_timeout_secs.max(1),
            },
            other => {
                return Err(format!(
                    "transcription.engine: pocketsphinx, whisper or http, not {other:?}"
                ))
            }
        };
        let key = self.http_api_key.expose();
        Ok(reel_recorder::composites::Transcription {
            engine,
            http_api_key: (!key.is_empty()).then(|| key.to_string()),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub allow_private_targets: bool,
}

/// A value that must never reach a log: Debug and Display print a placeholder.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

/// Overrides from the command line, as `key = value` pairs in the defaults' vocabulary.
pub type Overrides = Vec<(&'static str, String)>;

pub fn load(config_file: Option<&Path>, overrides: Overrides) -> Result<Settings, String> {
    let mut table: toml::Table = DEFAULTS
        .parse()
        .map_err(|e| format!("embedded defaults: {e}"))?;
    if let Some(path) = config_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: toml::Table = text
            .parse()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        merge(&mut table, file, &path.display().to_string())?;
    }
    // REEL_<KEY>, and REEL_<TABLE>_<KEY> for keys inside a table ([webhooks] → REEL_WEBHOOKS_…).
    let keys: Vec<(String, Option<String>)> = table
        .iter()
        .flat_map(|(k, v)| match v {
            toml::Value::Table(t) => t
                .keys()
                .map(|sub| (k.clone(), Some(sub.clone())))
                .collect::<Vec<_>>(),
            _ => vec![(k.clone(), None)],
        })
        .collect();
    for (key, sub) in keys {
        let name = match &sub {
            Some(sub) => format!(
                "REEL_{}_{}",
                key.to_ascii_uppercase(),
                sub.to_ascii_uppercase()
            ),
            None => format!("REEL_{}", key.to_ascii_uppercase()),
        };
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        match (sub, table.get_mut(&key)) {
            (Some(sub), Some(toml::Value::Table(t))) => set(t, &sub, value)?,
            _ => set(&mut table, &key, value)?,
        }
    }
    for (key, value) in overrides {
        match key.split_once('.') {
            Some((sub, key)) => match table.get_mut(sub) {
                Some(toml::Value::Table(t)) => set(t, key, value)?,
                _ => return Err(format!("unknown setting {sub:?}")),
            },
            None => set(&mut table, key, value)?,
        }
    }
    let settings: Settings = toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("settings: {e}"))?;
    let sip = &settings.siprec;
    if !["audio", "audio_video"].contains(&sip.media_policy.as_str()) {
        return Err("siprec.media_policy: audio or audio_video".into());
    }
    if sip.rtp_port_min > sip.rtp_port_max || (sip.rtp_port_min == 0) != (sip.rtp_port_max == 0) {
        return Err("siprec: rtp_port_min ≤ rtp_port_max, or both 0".into());
    }
    if sip.rtp_timeout_secs == 0
        || sip.max_calls == 0
        || sip.max_unconfirmed_calls == 0
        || sip.max_unconfirmed_calls_per_source == 0
        || sip.max_unconfirmed_ports_per_source == 0
        || sip.max_lines_per_call == 0
        || sip.max_tcp_connections == 0
        || sip.tcp_idle_timeout_secs == 0
    {
        return Err(
            "siprec: rtp_timeout_secs, max_calls, max_unconfirmed_calls(_per_source), \
                    max_unconfirmed_ports_per_source, max_lines_per_call, max_tcp_connections and tcp_idle_timeout_secs must be at least 1"
                .into(),
        );
    }
    reel_siprec::sources::AllowedSources::parse(&sip.allowed_sources)
        .map_err(|e| format!("siprec.allowed_sources: {e}"))?;
    if settings.retention.default_days == 0 || settings.retention.sweep_interval_secs == 0 {
        return Err("retention: default_days and sweep_interval_secs must be at least 1".into());
    }
    settings.transcription.transcription()?;
    if settings.public_ip == crate::addresses::PublicIp::Auto
        && settings.media_bind.is_ipv6()
        && settings.media_bind.is_unspecified()
    {
        return Err("media_bind = \"::\" needs public_ip: the address peers reach".into());
    }
    if settings.max_publishers == 0 {
        return Err("max_publishers must be at least 1".into());
    }
    if settings.capture_buffer_secs == 0 {
        return Err(
            "capture_buffer_secs must be at least 1: capture would drop every frame".into(),
        );
    }
    if settings.whip_first_contact_timeout_secs == 0
        || settings.whip_max_pending_per_token == 0
        || settings.whip_max_pending_per_room == 0
        || settings.whip_offers_per_second_per_address <= 0.0
        || settings.whip_offer_burst_per_address == 0
    {
        return Err(
            "whip_first_contact_timeout_secs, whip_max_pending_per_token, \
                    whip_max_pending_per_room, whip_offers_per_second_per_address and \
                    whip_offer_burst_per_address must be above 0"
                .into(),
        );
    }
    if settings.http_max_connections == 0
        || settings.http_max_connections_per_address == 0
        || settings.http_header_timeout_secs == 0
    {
        return Err(
            "http_max_connections, http_max_connections_per_address and \
                    http_header_timeout_secs must be at least 1"
                .into(),
        );
    }
    Ok(settings)
}

/// Lays a config file over the defaults; keys the defaults do not have are errors.
fn merge(base: &mut toml::Table, file: toml::Table, origin: &str) -> Result<(), String> {
    for (k, v) in file {
        match (base.get_mut(&k), v) {
            (None, _) => return Err(format!("{origin}: unknown setting {k:?}")),
            (Some(toml::Value::Table(inner)), toml::Value::Table(v)) => merge(inner, v, origin)?,
            (Some(slot), v) => *slot = v,
        }
    }
    Ok(())
}

/// Sets a key from text, keeping the type the defaults give it.
fn set(table: &mut toml::Table, key: &str, value: String) -> Result<(), String> {
    let typed = match table.get(key) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: expected a whole number, got {value:?}"))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: expected a number, got {value:?}"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match value.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("{key}: expected true or false, got {value:?}")),
        }),
        _ => toml::Value::String(value),
    };
    table.insert(key.to_string(), typed);
    Ok(())
}

/// The embedded defaults as a configuration file to edit: every setting shown with its
/// default, commented out (the Debian package's /etc/reel/reel.toml).
pub fn commented_defaults() -> String {
    let mut out = String::from(
        "# Reel's settings. Each one is shown with its default, commented out: uncomment and\n\
         # change what you need. Every key can also be set as REEL_<KEY> (REEL_<TABLE>_<KEY>\n\
         # for keys inside a [table]). The unit passes --data-dir /var/lib/reel.\n\n",
    );
    let body = DEFAULTS
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .skip_while(|l| l.trim().is_empty());
    for line in body {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
            out.push_str(line);
        } else {
            out.push_str("# ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// packaging/reel.toml is the defaults, commented (`reel config-example`);
    /// `REEL_UPDATE_PACKAGING=1 cargo test -p reel packaged` rewrites it after defaults.toml
    /// changed.
    #[test]
    fn the_packaged_config_is_the_commented_defaults_and_changes_nothing() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../packaging/reel.toml");
        let want = commented_defaults();
        if std::env::var_os("REEL_UPDATE_PACKAGING").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "packaging/reel.toml is not the commented defaults: \
             REEL_UPDATE_PACKAGING=1 cargo test -p reel packaged"
        );
        // As a config file it sets nothing: the settings are the defaults.
        let file = std::env::temp_dir().join(format!("reel-packaged-{}.toml", std::process::id()));
        std::fs::write(&file, &want).unwrap();
        let packaged = load(Some(&file), vec![]).unwrap();
        std::fs::remove_file(&file).ok();
        assert_eq!(
            format!("{packaged:?}"),
            format!("{:?}", load(None, vec![]).unwrap())
        );
    }

    /// Every key can be given as text (REEL_<KEY>, flags), whatever its type in the defaults:
    /// each key is set to its own default written as text, and the settings must not change.
    #[test]
    fn every_key_of_every_type_can_be_set_from_text() {
        let defaults: toml::Table = DEFAULTS.parse().unwrap();
        let mut pairs: Overrides = vec![];
        for (key, value) in &defaults {
            let mut add = |name: String, v: &toml::Value| {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => panic!("{name}: a {} in the defaults", other.type_str()),
                };
                pairs.push((Box::leak(name.into_boxed_str()), text));
            };
            match value {
                toml::Value::Table(t) => t.iter().for_each(|(k, v)| add(format!("{key}.{k}"), v)),
                v => add(key.clone(), v),
            }
        }
        assert!(pairs
            .iter()
            .any(|(k, _)| *k == "whip_offers_per_second_per_address"));
        let from_text = load(None, pairs).unwrap();
        assert_eq!(
            format!("{from_text:?}"),
            format!("{:?}", load(None, vec![]).unwrap())
        );
        // A float accepts a whole number and a decimal one; anything else names the key.
        for text in ["1000", "1000.0", " 2.5 "] {
            load(
                None,
                vec![("whip_offers_per_second_per_address", text.into())],
            )
            .unwrap();
        }
        let err = load(
            None,
            vec![("whip_offers_per_second_per_address", "fast".into())],
        );
        assert!(err
            .unwrap_err()
            .contains("whip_offers_per_second_per_address"));
    }

    #[test]
    fn transcription_engines_are_checked_and_the_key_stays_hidden() {
        let engine = |pairs: &[(&'static str, &str)]| {
            load(
                None,
                pairs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            )
        };
        let s = engine(&[]).unwrap();
        assert_eq!(
            s.transcription.transcription().unwrap().engine,
            reel_transcribe::EngineConfig::Pocketsphinx { model: None }
        );
        for (pairs, error) in [
            (
                vec![("transcription.engine", "vosk")],
                "pocketsphinx, whisper or http",
            ),
            (vec![("transcription.engine", "http")], "http_url"),
            (vec![("transcription.engine", "whisper")], "whisper_model"),
        ] {
            let err = engine(&pairs).unwrap_err();
            assert!(err.contains(error), "{err}");
        }
        let s = engine(&[
            ("transcription.engine", "http"),
            (
                "transcription.http_url",
                "https://speech.example/v1/audio/transcriptions",
            ),
            ("transcription.http_api_key", "sk-secret"),
        ])
        .unwrap();
        let t = s.transcription.transcription().unwrap();
        assert_eq!(t.http_api_key.as_deref(), Some("sk-secret"));
        assert!(!format!("{s:?} {t:?}").contains("sk-secret"));
    }

    #[test]
    fn defaults_load_and_flags_win() {
        let s = load(
            None,
            vec![("media_port", "0".into()), ("http", "127.0.0.1:0".into())],
        )
        .unwrap();
        assert_eq!(s.media_port, 0);
        assert_eq!(s.empty_timeout_secs, 30);
        assert!(load(None, vec![("media_port", "many".into())]).is_err());
    }

    #[test]
    fn tables_merge_from_files() {
        let dir = std::env::temp_dir().join(format!("reel-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("reel.toml");
        std::fs::write(
            &file,
            "media_port = 9\n[webhooks]\nallow_private_targets = true\n",
        )
        .unwrap();
        let s = load(Some(&file), vec![]).unwrap();
        assert!(s.webhooks.allow_private_targets);
        assert_eq!(s.media_port, 9);
        std::fs::write(&file, "[webhooks]\nnope = 1\n").unwrap();
        assert!(load(Some(&file), vec![]).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("postgres://u:hunter2@h/db".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
