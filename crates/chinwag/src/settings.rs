//! Settings from flags, `CHINWAG_*` environment variables and a TOML config
//! file, in that order of precedence, then defaults. Every key has the same
//! name in all three places (`--heartbeat-timeout-ms`,
//! `CHINWAG_HEARTBEAT_TIMEOUT_MS`, `heartbeat_timeout_ms = ...`).

use anyhow::{Context, Result};
use chinwag_server::ServerConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of `chinwag serve`; `None` means "not given here".
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "CHINWAG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store.
    #[arg(long, env = "CHINWAG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// How often clients should ping, told to them in `ready`.
    #[arg(long, env = "CHINWAG_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// A connection silent this long is closed.
    #[arg(long, env = "CHINWAG_HEARTBEAT_TIMEOUT_MS")]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Time a new socket has to authenticate.
    #[arg(long, env = "CHINWAG_AUTH_TIMEOUT_MS")]
    pub auth_timeout_ms: Option<u64>,
    /// Events queued per connection before it counts as too slow.
    #[arg(long, env = "CHINWAG_OUTBOUND_QUEUE_FRAMES")]
    pub outbound_queue_frames: Option<usize>,
    /// Time one socket write may take.
    #[arg(long, env = "CHINWAG_WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: Option<u64>,
    /// Sustained sends per second per user.
    #[arg(long, env = "CHINWAG_SEND_RATE_PER_S")]
    pub send_rate_per_s: Option<u32>,
    /// Extra sends per user allowed in a burst.
    #[arg(long, env = "CHINWAG_SEND_BURST")]
    pub send_burst: Option<u32>,
    /// Typing notifications per second per user.
    #[arg(long, env = "CHINWAG_TYPING_RATE_PER_S")]
    pub typing_rate_per_s: Option<u32>,
    /// Other requests (HTTP calls, read/sync frames) per second per user.
    #[arg(long, env = "CHINWAG_REQUEST_RATE_PER_S")]
    pub request_rate_per_s: Option<u32>,
    /// Such requests per user allowed in a burst.
    #[arg(long, env = "CHINWAG_REQUEST_BURST")]
    pub request_burst: Option<u32>,
    /// How long a reordered live message waits before the gap is fetched.
    #[arg(long, env = "CHINWAG_GAP_FILL_DELAY_MS")]
    pub gap_fill_delay_ms: Option<u64>,
    /// How long a user without connections still counts as online.
    #[arg(long, env = "CHINWAG_PRESENCE_OFFLINE_GRACE_MS")]
    pub presence_offline_grace_ms: Option<u64>,
    /// The WebSocket URL discovery advertises (default: from the Host header).
    #[arg(long, env = "CHINWAG_PUBLIC_WS_URL")]
    pub public_ws_url: Option<String>,
    /// How long a push waits to merge a burst into one notification.
    #[arg(long, env = "CHINWAG_PUSH_COALESCE_MS")]
    pub push_coalesce_ms: Option<u64>,
    /// First retry delay of a failed push (doubles per attempt).
    #[arg(long, env = "CHINWAG_PUSH_RETRY_BASE_MS")]
    pub push_retry_base_ms: Option<u64>,
    /// Characters of message text in a notification.
    #[arg(long, env = "CHINWAG_PUSH_PREVIEW_CHARS")]
    pub push_preview_chars: Option<usize>,
    /// Time one push request may take.
    #[arg(long, env = "CHINWAG_PUSH_TIMEOUT_MS")]
    pub push_timeout_ms: Option<u64>,
    /// Allow push targets on private and local addresses (true/false).
    #[arg(long, env = "CHINWAG_PUSH_PRIVATE_TARGETS")]
    pub push_private_targets: Option<bool>,
    /// VAPID subject (mailto: or https: URL of the operator).
    #[arg(long, env = "CHINWAG_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,
    /// Open WebSockets above which new ones get 503.
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open WebSockets per client address.
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Authenticated WebSockets per user.
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<usize>,
    /// Connections in the HTTP stage before new ones are closed at once.
    #[arg(long, env = "CHINWAG_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<usize>,
    /// Connections in the HTTP stage per client address.
    #[arg(long, env = "CHINWAG_MAX_HTTP_CONNECTIONS_PER_IP")]
    pub max_http_connections_per_ip: Option<usize>,
    /// WebSockets per client address not yet authenticated.
    #[arg(long, env = "CHINWAG_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP")]
    pub max_unauthenticated_connections_per_ip: Option<usize>,
    /// Time to send a request's headers (and idle keep-alive time).
    #[arg(long, env = "CHINWAG_HTTP_HEADER_TIMEOUT_MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Time a request body may take beyond what its size needs.
    #[arg(long, env = "CHINWAG_HTTP_BODY_TIMEOUT_MS")]
    pub http_body_timeout_ms: Option<u64>,
    /// Slowest average rate a request body may arrive at.
    #[arg(long, env = "CHINWAG_HTTP_BODY_MIN_BYTES_PER_S")]
    pub http_body_min_bytes_per_s: Option<u64>,
    /// Channels one user may be in.
    #[arg(long, env = "CHINWAG_MAX_CHANNELS_PER_USER")]
    pub max_channels_per_user: Option<usize>,
    /// Login attempts per account from one client address per minute.
    #[arg(long, env = "CHINWAG_LOGIN_RATE_PER_ACCOUNT_PER_IP_PER_MIN")]
    pub login_rate_per_account_per_ip_per_min: Option<u32>,
    /// Login attempts per account from all addresses per minute.
    #[arg(long, env = "CHINWAG_LOGIN_RATE_PER_ACCOUNT_PER_MIN")]
    pub login_rate_per_account_per_min: Option<u32>,
    /// Login attempts per client address per minute.
    #[arg(long, env = "CHINWAG_LOGIN_RATE_PER_IP_PER_MIN")]
    pub login_rate_per_ip_per_min: Option<u32>,
    /// Signups per client address per minute.
    #[arg(long, env = "CHINWAG_SIGNUP_RATE_PER_IP_PER_MIN")]
    pub signup_rate_per_ip_per_min: Option<u32>,
    /// Comma-separated browser origins (besides the server's own) allowed
    /// to open WebSockets; `*` for any.
    #[arg(long, env = "CHINWAG_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Comma-separated addresses or networks (CIDR) of reverse proxies whose
    /// X-Forwarded-For is believed for per-address limits.
    #[arg(long, env = "CHINWAG_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Roles this process runs: any of api, gateway, presence, notifier
    /// (comma-separated; all by default).
    #[arg(long, env = "CHINWAG_ROLES", value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// A separate address for `/metrics` (then not served on --listen).
    #[arg(long, env = "CHINWAG_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key).
    #[arg(long, env = "CHINWAG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHINWAG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

macro_rules! merge_fields {
    ($high:expr, $low:expr, $($field:ident),*) => {
        Settings { $($field: $high.$field.or($low.$field)),* }
    };
}

impl Settings {
    /// Fills what `self` lacks from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        merge_fields!(
            self,
            lower,
            listen,
            data_dir,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            auth_timeout_ms,
            outbound_queue_frames,
            write_timeout_ms,
            send_rate_per_s,
            send_burst,
            typing_rate_per_s,
            request_rate_per_s,
            request_burst,
            gap_fill_delay_ms,
            presence_offline_grace_ms,
            public_ws_url,
            push_coalesce_ms,
            push_retry_base_ms,
            push_preview_chars,
            push_timeout_ms,
            push_private_targets,
            vapid_subject,
            max_connections,
            max_connections_per_ip,
            max_connections_per_user,
            max_http_connections,
            max_http_connections_per_ip,
            max_unauthenticated_connections_per_ip,
            http_header_timeout_ms,
            http_body_timeout_ms,
            http_body_min_bytes_per_s,
            max_channels_per_user,
            login_rate_per_account_per_ip_per_min,
            login_rate_per_account_per_min,
            login_rate_per_ip_per_min,
            signup_rate_per_ip_per_min,
            allowed_origins,
            trusted_proxies,
            roles,
            metrics_listen,
            tls_cert,
            tls_key
        )
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
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

    /// `trusted_proxies` as networks; a bare address is a network of one.
    fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>> {
        let entries = self.trusted_proxies.iter().flatten().map(|s| s.trim()).filter(|s| !s.is_empty());
        entries
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| format!("trusted_proxies: {entry:?} is not an address or network"))
            })
            .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./chinwag-data"))
    }

    /// The server's settings, defaults filled in, validated.
    pub fn server_config(&self) -> Result<ServerConfig> {
        let d = ServerConfig::default();
        let config = ServerConfig {
            heartbeat_interval_ms: self.heartbeat_interval_ms.unwrap_or(d.heartbeat_interval_ms),
            heartbeat_timeout_ms: self.heartbeat_timeout_ms.unwrap_or(d.heartbeat_timeout_ms),
            auth_timeout_ms: self.auth_timeout_ms.unwrap_or(d.auth_timeout_ms),
            outbound_queue_frames: self.outbound_queue_frames.unwrap_or(d.outbound_queue_frames),
            write_timeout_ms: self.write_timeout_ms.unwrap_or(d.write_timeout_ms),
            send_rate_per_s: self.send_rate_per_s.unwrap_or(d.send_rate_per_s),
            send_burst: self.send_burst.unwrap_or(d.send_burst),
            typing_rate_per_s: self.typing_rate_per_s.unwrap_or(d.typing_rate_per_s),
            request_rate_per_s: self.request_rate_per_s.unwrap_or(d.request_rate_per_s),
            request_burst: self.request_burst.unwrap_or(d.request_burst),
            gap_fill_delay_ms: self.gap_fill_delay_ms.unwrap_or(d.gap_fill_delay_ms),
            presence_offline_grace_ms: self.presence_offline_grace_ms.unwrap_or(d.presence_offline_grace_ms),
            public_ws_url: self.public_ws_url.clone().or(d.public_ws_url),
            push_coalesce_ms: self.push_coalesce_ms.unwrap_or(d.push_coalesce_ms),
            push_retry_base_ms: self.push_retry_base_ms.unwrap_or(d.push_retry_base_ms),
            push_preview_chars: self.push_preview_chars.unwrap_or(d.push_preview_chars),
            push_timeout_ms: self.push_timeout_ms.unwrap_or(d.push_timeout_ms),
            push_private_targets: self.push_private_targets.unwrap_or(d.push_private_targets),
            vapid_subject: self.vapid_subject.clone().unwrap_or(d.vapid_subject),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.unwrap_or(d.max_connections_per_ip),
            max_connections_per_user: self.max_connections_per_user.unwrap_or(d.max_connections_per_user),
            max_http_connections: self.max_http_connections.unwrap_or(d.max_http_connections),
            max_http_connections_per_ip: self.max_http_connections_per_ip.unwrap_or(d.max_http_connections_per_ip),
            max_unauthenticated_connections_per_ip: self
                .max_unauthenticated_connections_per_ip
                .unwrap_or(d.max_unauthenticated_connections_per_ip),
            http_header_timeout_ms: self.http_header_timeout_ms.unwrap_or(d.http_header_timeout_ms),
            http_body_timeout_ms: self.http_body_timeout_ms.unwrap_or(d.http_body_timeout_ms),
            http_body_min_bytes_per_s: self.http_body_min_bytes_per_s.unwrap_or(d.http_body_min_bytes_per_s),
            max_channels_per_user: self.max_channels_per_user.unwrap_or(d.max_channels_per_user),
            login_rate_per_account_per_ip_per_min: self
                .login_rate_per_account_per_ip_per_min
                .unwrap_or(d.login_rate_per_account_per_ip_per_min),
            login_rate_per_account_per_min: self
                .login_rate_per_account_per_min
                .unwrap_or(d.login_rate_per_account_per_min),
            login_rate_per_ip_per_min: self.login_rate_per_ip_per_min.unwrap_or(d.login_rate_per_ip_per_min),
            signup_rate_per_ip_per_min: self.signup_rate_per_ip_per_min.unwrap_or(d.signup_rate_per_ip_per_min),
            allowed_origins: self.allowed_origins.clone().unwrap_or(d.allowed_origins),
            trusted_proxies: self.trusted_proxies()?,
            tls: self.tls_cert.is_some(),
            metrics_separate: self.metrics_listen.is_some(),
            roles: match &self.roles {
                Some(names) => {
                    chinwag_server::Roles::parse(names.iter().map(String::as_str)).map_err(anyhow::Error::msg)?
                }
                None => d.roles,
            },
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file: Settings = toml::from_str("listen = \"127.0.0.1:9000\"\nsend_burst = 7\n").unwrap();
        let flags = Settings { send_burst: Some(9), ..Settings::default() };
        let merged = flags.or(file);
        assert_eq!(merged.listen().port(), 9000);
        assert_eq!(merged.server_config().unwrap().send_burst, 9);
        assert_eq!(merged.server_config().unwrap().send_rate_per_s, 20);
        assert!(toml::from_str::<Settings>("bogus = 1").is_err());
        let bad = Settings { heartbeat_timeout_ms: Some(1), ..Settings::default() };
        assert!(bad.server_config().is_err());
    }
}
