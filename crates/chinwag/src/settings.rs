//! Settings from flags, `CHINWAG_*` environment variables and a TOML config
//! file, in that order of precedence, then defaults. Every key has the same
//! name in all three places (`--heartbeat-timeout-ms`,
//! `CHINWAG_HEARTBEAT_TIMEOUT_MS`, `heartbeat_timeout_ms = ...`).
//!
//! The server's settings are declared once, in `chinwag_server::config`;
//! this module adds only what the binary itself needs (where to listen,
//! the data directory, TLS files) and layers flags over the file.

use anyhow::{Context, Result};
use chinwag_server::config::{ServerFlags, SettingInfo, SETTINGS};
use chinwag_server::ServerConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of `chinwag serve`; `None` means "not given here".
#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
pub struct Settings {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "CHINWAG_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Where the embedded store lives.
    #[arg(long, env = "CHINWAG_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Where data is kept: a `postgres://user@host:port/db` URL, or (unset) the embedded store in `--data-dir`.
    #[arg(long, env = "CHINWAG_STORE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Where uploaded files live: `s3://BUCKET?endpoint=URL&region=R` (credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`), or (unset) files under `--data-dir`/media.
    #[arg(long, env = "CHINWAG_MEDIA_STORE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_store: Option<String>,
    /// Join a cluster: comma-separated NATS URLs (`nats://h1:4222,nats://h2:4222`); unset: one process, in-process bus.
    #[arg(long, env = "CHINWAG_BUS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// This node's name in a cluster (letters, digits, `-`, `_`); default: a random one.
    #[arg(long, env = "CHINWAG_NODE_NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Serve `/metrics` only on this address (for example `127.0.0.1:9090`), not on `--listen`.
    #[arg(long, env = "CHINWAG_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS and WSS on `--listen` (needs `--tls-key`).
    #[arg(long, env = "CHINWAG_TLS_CERT", requires = "tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "CHINWAG_TLS_KEY", requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// The server's own settings (limits, timers, roles).
    #[command(flatten)]
    #[serde(skip)]
    pub server: ServerFlags,
    /// The server's settings as the config file gave them, checked when
    /// the whole is turned into a `ServerConfig`.
    #[arg(skip)]
    #[serde(skip)]
    file: toml::Table,
}

/// The binary's own settings, for the README's table (the server's are in
/// `chinwag_server::config::SETTINGS`).
pub const BINARY_SETTINGS: &[SettingInfo] = &[
    SettingInfo { name: "listen", env: "CHINWAG_LISTEN", doc: " Address to listen on (port 0: any free port)." },
    SettingInfo { name: "data_dir", env: "CHINWAG_DATA_DIR", doc: " Where the embedded store lives." },
    SettingInfo {
        name: "store",
        env: "CHINWAG_STORE",
        doc:
            " Where data is kept: a `postgres://user@host:port/db` URL, or (unset) the embedded store in `--data-dir`.",
    },
    SettingInfo {
        name: "media_store",
        env: "CHINWAG_MEDIA_STORE",
        doc: " Where uploaded files live: `s3://BUCKET?endpoint=URL&region=R` (credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`), or (unset) files under `--data-dir`/media.",
    },
    SettingInfo {
        name: "bus",
        env: "CHINWAG_BUS",
        doc: " Join a cluster: comma-separated NATS URLs (`nats://h1:4222,nats://h2:4222`); unset: one process, in-process bus.",
    },
    SettingInfo {
        name: "node_name",
        env: "CHINWAG_NODE_NAME",
        doc: " This node's name in a cluster (letters, digits, `-`, `_`); default: a random one.",
    },
    SettingInfo {
        name: "metrics_listen",
        env: "CHINWAG_METRICS_LISTEN",
        doc: " Serve `/metrics` only on this address (for example `127.0.0.1:9090`), not on `--listen`.",
    },
    SettingInfo {
        name: "tls_cert",
        env: "CHINWAG_TLS_CERT",
        doc: " PEM certificate chain: serve HTTPS and WSS on `--listen` (needs `--tls-key`).",
    },
    SettingInfo { name: "tls_key", env: "CHINWAG_TLS_KEY", doc: " PEM private key of `--tls-cert`." },
];

/// The defaults of the binary's own settings, as the README shows them.
fn binary_default(name: &str) -> &'static str {
    match name {
        "listen" => "`127.0.0.1:8080`",
        "data_dir" => "`./chinwag-data`",
        "store" => "embedded (SQLite)",
        "media_store" => "files in the data dir",
        "bus" => "in-process",
        "node_name" => "random",
        _ => "none",
    }
}

/// The README's settings table, made from the declarations (a test keeps
/// README.md equal to it).
pub fn settings_table() -> String {
    let mut table = String::from("| flag | env | default | what |\n|---|---|---|---|\n");
    let rows = BINARY_SETTINGS.iter().map(|s| (s, binary_default(s.name).to_string()));
    let server = SETTINGS.iter().map(|s| (s, ServerConfig::default_text(s.name).unwrap_or_default()));
    for (setting, default) in rows.chain(server) {
        let flag = setting.name.replace('_', "-");
        table.push_str(&format!("| `--{flag}` | `{}` | {default} | {} |\n", setting.env, setting.doc.trim()));
    }
    table
}

impl Settings {
    /// Fills what `self` (flags and environment) lacks from a config file.
    pub fn or_file(self, path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        let mut file: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
        // The binary's own keys come out; the rest is the server's.
        let own: Settings = {
            let keys = BINARY_SETTINGS.iter().map(|s| s.name);
            let mine: toml::Table = keys.filter_map(|k| file.remove(k).map(|v| (k.to_owned(), v))).collect();
            mine.try_into().with_context(|| format!("parsing config file {}", path.display()))?
        };
        Ok(Settings {
            listen: self.listen.or(own.listen),
            data_dir: self.data_dir.or(own.data_dir),
            store: self.store.or(own.store),
            media_store: self.media_store.or(own.media_store),
            bus: self.bus.or(own.bus),
            node_name: self.node_name.or(own.node_name),
            metrics_listen: self.metrics_listen.or(own.metrics_listen),
            tls_cert: self.tls_cert.or(own.tls_cert),
            tls_key: self.tls_key.or(own.tls_key),
            server: self.server,
            file,
        })
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// The certificate and key, when TLS is on (both given, or neither).
    pub fn tls(&self) -> Result<Option<(&Path, &Path)>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./chinwag-data"))
    }

    /// The server's settings: flags and environment over the file, then
    /// defaults; validated. Unknown keys in the file are an error.
    pub fn server_config(&self) -> Result<ServerConfig> {
        let mut merged = self.file.clone();
        let flags = toml::Table::try_from(&self.server).context("reading the flags")?;
        merged.extend(flags);
        let mut config: ServerConfig =
            merged.try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        config.tls = self.tls_cert.is_some();
        config.metrics_separate = self.metrics_listen.is_some();
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(flags: Settings, text: &str) -> Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chinwag.toml");
        std::fs::write(&path, text).unwrap();
        flags.or_file(&path)
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let flags =
            Settings { server: ServerFlags { send_burst: Some(9), ..Default::default() }, ..Settings::default() };
        let merged = with_file(flags, "listen = \"127.0.0.1:9000\"\nsend_burst = 7\nsend_rate_per_s = 3\n").unwrap();
        assert_eq!(merged.listen().port(), 9000);
        let config = merged.server_config().unwrap();
        assert_eq!((config.send_burst, config.send_rate_per_s, config.typing_rate_per_s), (9, 3, 5));
        assert!(with_file(Settings::default(), "bogus = 1").unwrap().server_config().is_err());
        assert!(
            with_file(Settings::default(), "roles = \"api,notifier\"").unwrap().server_config().unwrap().roles.notifier
        );
        let bad = Settings {
            server: ServerFlags { heartbeat_timeout_ms: Some(1), ..Default::default() },
            ..Settings::default()
        };
        assert!(bad.server_config().is_err());
    }

    #[test]
    fn the_readme_table_is_made_from_the_declarations() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let table = settings_table();
        assert!(readme.contains(&table), "README.md's settings table is out of date; it should read:\n\n{table}");
    }
}
