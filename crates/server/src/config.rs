//! The validated settings of a running server. Units are in field names.

use std::time::Duration;

/// Which roles this process runs (`--roles api,gateway,presence,notifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// HTTP API and the web client: accounts, channels, history, search,
    /// push registration, discovery.
    pub api: bool,
    /// WebSockets: auth, send/ack, delivery, typing, read markers.
    pub gateway: bool,
    /// Announces who comes online and goes offline; keeps `last_active_at`.
    pub presence: bool,
    /// Delivers queued push notifications.
    pub notifier: bool,
}

impl Default for Roles {
    /// Every role: one process is a whole chat server.
    fn default() -> Self {
        Roles { api: true, gateway: true, presence: true, notifier: true }
    }
}

impl Roles {
    /// Parses `api,gateway,presence,notifier` (any subset, any order).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Roles, String> {
        let mut roles = Roles { api: false, gateway: false, presence: false, notifier: false };
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "api" => roles.api = true,
                "gateway" => roles.gateway = true,
                "presence" => roles.presence = true,
                "notifier" => roles.notifier = true,
                other => return Err(format!("roles: unknown role {other:?} (api, gateway, presence, notifier)")),
            }
        }
        if roles == (Roles { api: false, gateway: false, presence: false, notifier: false }) {
            return Err("roles: name at least one of api, gateway, presence, notifier".into());
        }
        Ok(roles)
    }
}

/// Everything the roles need to know about their limits and timers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How often clients should send `ping` (told to them in `ready`).
    pub heartbeat_interval_ms: u64,
    /// A connection silent this long is considered dead and closed.
    pub heartbeat_timeout_ms: u64,
    /// How long a new socket may take to send its `auth` frame.
    pub auth_timeout_ms: u64,
    /// Events a connection may have queued before it counts as too slow.
    pub outbound_queue_frames: usize,
    /// How long one write to a socket may take before it is closed.
    pub write_timeout_ms: u64,
    /// Sustained sends per second per user.
    pub send_rate_per_s: u32,
    /// Sends per user allowed in a burst above the sustained rate.
    pub send_burst: u32,
    /// Other requests per second per user: authenticated HTTP calls and
    /// `read`/`sync` frames (each costs the store work).
    pub request_rate_per_s: u32,
    /// Such requests per user allowed in a burst (a reconnect syncs every
    /// channel that fell behind at once).
    pub request_burst: u32,
    /// Typing notifications per second per user (a burst of the same size).
    pub typing_rate_per_s: u32,
    /// How long a reordered live message may wait for the ones before it
    /// before the gap is filled from the store.
    pub gap_fill_delay_ms: u64,
    /// How long a user with no connection still counts as online, so that
    /// a quick reconnect announces nothing.
    pub presence_offline_grace_ms: u64,
    /// The WebSocket URL discovery hands out for this gateway; when unset,
    /// `ws://<the Host the client used>/v1/ws` (`wss://` with TLS).
    pub public_ws_url: Option<String>,
    /// How long a push waits for more messages to merge with (a burst to
    /// one device and channel becomes one notification).
    pub push_coalesce_ms: u64,
    /// First retry delay of a failed push; doubles per attempt.
    pub push_retry_base_ms: u64,
    /// Characters of message text in a notification.
    pub push_preview_chars: usize,
    /// How long one push request may take before it counts as failed
    /// (and towards its host's breaker).
    pub push_timeout_ms: u64,
    /// Let push targets be on private and local addresses (receivers on
    /// the operator's own network); off, only public addresses are
    /// reached, so users cannot aim the server at internal hosts.
    pub push_private_targets: bool,
    /// VAPID `sub` claim: how push services can reach the operator.
    pub vapid_subject: String,
    /// Open WebSockets above which new ones are refused with 503 (kept
    /// under the process's file descriptor limit).
    pub max_connections: usize,
    /// Open WebSockets one client address may hold.
    pub max_connections_per_ip: usize,
    /// Authenticated WebSockets one user may hold.
    pub max_connections_per_user: usize,
    /// Connections in the HTTP stage (requests, keep-alive, WebSockets not
    /// yet upgraded); beyond it new ones are closed at once.
    pub max_http_connections: usize,
    /// Connections in the HTTP stage one client address may hold (an IPv6
    /// client counts by its /64; trusted proxies have no share).
    pub max_http_connections_per_ip: usize,
    /// WebSockets one client address may hold open before they have
    /// authenticated.
    pub max_unauthenticated_connections_per_ip: usize,
    /// Time a client has to send a request's headers; also how long an
    /// idle keep-alive connection stays open.
    pub http_header_timeout_ms: u64,
    /// Time a request body may take beyond what its size needs at
    /// `http_body_min_bytes_per_s`.
    pub http_body_timeout_ms: u64,
    /// The slowest average rate a request body may arrive at.
    pub http_body_min_bytes_per_s: u64,
    /// Channels (direct and groups) one user may be in; others cannot add
    /// them to more.
    pub max_channels_per_user: usize,
    /// Login attempts per account from one client address per minute
    /// (also the burst): the budget a guesser has.
    pub login_rate_per_account_per_ip_per_min: u32,
    /// Login attempts per account from all addresses together per minute
    /// (also the burst). Addresses the account logged in from before are
    /// not held to it, so others' failures never lock the owner out.
    pub login_rate_per_account_per_min: u32,
    /// Login attempts per client address per minute (also the burst).
    pub login_rate_per_ip_per_min: u32,
    /// Signups per client address per minute (also the burst).
    pub signup_rate_per_ip_per_min: u32,
    /// Browser origins (e.g. `https://app.example.com`) besides the server's
    /// own that may open WebSockets; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client for the
    /// per-address limits; from anyone else the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The public listener speaks TLS, so discovery's default URL is wss://.
    pub tls: bool,
    /// `/metrics` is served on a listener of its own (`metrics_listen`),
    /// not on the public one.
    pub metrics_separate: bool,
    /// The roles this process runs.
    pub roles: Roles,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat_interval_ms: 5_000,
            heartbeat_timeout_ms: 30_000,
            auth_timeout_ms: 10_000,
            outbound_queue_frames: 4096,
            write_timeout_ms: 10_000,
            send_rate_per_s: 20,
            send_burst: 40,
            typing_rate_per_s: 5,
            request_rate_per_s: 50,
            request_burst: 300,
            gap_fill_delay_ms: 200,
            presence_offline_grace_ms: 3_000,
            public_ws_url: None,
            push_coalesce_ms: 1_000,
            push_retry_base_ms: 1_000,
            push_preview_chars: 100,
            push_timeout_ms: 5_000,
            push_private_targets: false,
            vapid_subject: "mailto:admin@localhost".into(),
            max_connections: 18_000,
            max_connections_per_ip: 2_000,
            max_connections_per_user: 50,
            max_http_connections: 1_024,
            max_http_connections_per_ip: 64,
            max_unauthenticated_connections_per_ip: 64,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 10_000,
            http_body_min_bytes_per_s: 16 * 1024,
            max_channels_per_user: 1_000,
            login_rate_per_account_per_ip_per_min: 10,
            login_rate_per_account_per_min: 100,
            login_rate_per_ip_per_min: 60,
            signup_rate_per_ip_per_min: 20,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            tls: false,
            metrics_separate: false,
            roles: Roles::default(),
        }
    }
}

impl ServerConfig {
    /// Rejects settings the server cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("heartbeat_timeout_ms", self.heartbeat_timeout_ms),
            ("auth_timeout_ms", self.auth_timeout_ms),
            ("outbound_queue_frames", self.outbound_queue_frames as u64),
            ("write_timeout_ms", self.write_timeout_ms),
            ("send_rate_per_s", self.send_rate_per_s.into()),
            ("send_burst", self.send_burst.into()),
            ("typing_rate_per_s", self.typing_rate_per_s.into()),
            ("request_rate_per_s", self.request_rate_per_s.into()),
            ("request_burst", self.request_burst.into()),
            ("push_retry_base_ms", self.push_retry_base_ms),
            ("push_timeout_ms", self.push_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_http_connections", self.max_http_connections as u64),
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("max_http_connections_per_ip", self.max_http_connections_per_ip as u64),
            ("max_unauthenticated_connections_per_ip", self.max_unauthenticated_connections_per_ip as u64),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("http_body_min_bytes_per_s", self.http_body_min_bytes_per_s),
            ("max_channels_per_user", self.max_channels_per_user as u64),
            ("login_rate_per_account_per_ip_per_min", self.login_rate_per_account_per_ip_per_min.into()),
            ("max_connections_per_user", self.max_connections_per_user as u64),
            ("login_rate_per_account_per_min", self.login_rate_per_account_per_min.into()),
            ("login_rate_per_ip_per_min", self.login_rate_per_ip_per_min.into()),
            ("signup_rate_per_ip_per_min", self.signup_rate_per_ip_per_min.into()),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return Err("heartbeat_timeout_ms must exceed heartbeat_interval_ms".into());
        }
        Ok(())
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    pub fn gap_fill_delay(&self) -> Duration {
        Duration::from_millis(self.gap_fill_delay_ms)
    }

    /// How often the notifier looks for due notifications.
    pub fn push_poll(&self) -> Duration {
        Duration::from_millis((self.push_coalesce_ms / 4).clamp(50, 500))
    }

    pub fn presence_offline_grace(&self) -> Duration {
        Duration::from_millis(self.presence_offline_grace_ms)
    }
}

impl ServerConfig {
    /// Whether a browser page from `origin` may open a WebSocket to a server
    /// reached as `host`: its own origin always, others only when listed.
    /// (A cross-site page could otherwise ride on a user's session.)
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let own = host.is_some_and(|host| {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        });
        own || self.allowed_origins.iter().any(|o| o == "*" || o.trim_end_matches('/') == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!(
            Roles::parse(["api", " gateway"]).unwrap(),
            Roles { api: true, gateway: true, presence: false, notifier: false }
        );
        assert!(Roles::parse(["api", "chef"]).is_err());
        assert!(Roles::parse([""]).is_err());
    }

    #[test]
    fn origins() {
        let mut c = ServerConfig::default();
        assert!(c.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(c.origin_allowed("https://chat.example.com", Some("chat.example.com")));
        assert!(!c.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!c.origin_allowed("http://127.0.0.1:8080.evil.example", Some("127.0.0.1:8080")));
        assert!(!c.origin_allowed("null", None));
        c.allowed_origins = vec!["https://app.example.com/".into()];
        assert!(c.origin_allowed("https://app.example.com", Some("api.example.com")));
        c.allowed_origins = vec!["*".into()];
        assert!(c.origin_allowed("http://anything", None));
    }
}
