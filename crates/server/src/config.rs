//! The validated settings of a running server, each declared once (in
//! `settings!` below) with its type, default, environment variable and
//! doc. From that one declaration come the `ServerConfig` the roles read,
//! its defaults, the flags and environment variables (`ServerFlags`), the
//! keys of the config file, and the table in the README (`SETTINGS`,
//! checked by a test). Units are in field names.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which roles this process runs (`--roles api,gateway,presence,notifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

    fn names(&self) -> Vec<&'static str> {
        let all =
            [(self.api, "api"), (self.gateway, "gateway"), (self.presence, "presence"), (self.notifier, "notifier")];
        all.into_iter().filter(|(on, _)| *on).map(|(_, name)| name).collect()
    }
}

impl std::str::FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Roles::parse(s.split(','))
    }
}

impl TryFrom<String> for Roles {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Roles> for String {
    fn from(roles: Roles) -> String {
        roles.names().join(",")
    }
}

impl DefaultText for Roles {
    fn default_text(&self) -> String {
        if *self == Roles::default() {
            "all".into()
        } else {
            self.names().join(",")
        }
    }
    fn env_text(&self) -> String {
        self.names().join(",")
    }
}

/// What the README's settings table says about one setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The config file key; the flag is `--` and the name with dashes.
    pub name: &'static str,
    pub env: &'static str,
    /// The first line of its doc comment.
    pub doc: &'static str,
}

/// A setting's value as the README shows it (`default_text`) and as an
/// environment variable sets it (`env_text`).
pub trait DefaultText {
    fn default_text(&self) -> String;
    fn env_text(&self) -> String {
        self.default_text()
    }
}

macro_rules! number_text {
    ($($t:ty),*) => {$(
        impl DefaultText for $t {
            fn default_text(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number_text!(u32, u64, usize, bool);

impl DefaultText for String {
    fn default_text(&self) -> String {
        format!("`{self}`")
    }
    fn env_text(&self) -> String {
        self.clone()
    }
}

impl<T: DefaultText> DefaultText for Option<T> {
    fn default_text(&self) -> String {
        self.as_ref().map_or_else(|| "none".into(), DefaultText::default_text)
    }
    fn env_text(&self) -> String {
        self.as_ref().map(DefaultText::env_text).unwrap_or_default()
    }
}

impl<T: DefaultText> DefaultText for Vec<T> {
    fn default_text(&self) -> String {
        if self.is_empty() {
            "none".into()
        } else {
            self.iter().map(DefaultText::default_text).collect::<Vec<_>>().join(", ")
        }
    }
    fn env_text(&self) -> String {
        self.iter().map(DefaultText::env_text).collect::<Vec<_>>().join(",")
    }
}

/// Numbers must be positive unless a setting says otherwise.
trait AsNumber {
    fn as_number(&self) -> Option<u64> {
        None
    }
}
impl AsNumber for u32 {
    fn as_number(&self) -> Option<u64> {
        Some((*self).into())
    }
}
impl AsNumber for u64 {
    fn as_number(&self) -> Option<u64> {
        Some(*self)
    }
}
impl AsNumber for usize {
    fn as_number(&self) -> Option<u64> {
        Some(*self as u64)
    }
}
impl AsNumber for bool {}
impl AsNumber for String {}
impl<T> AsNumber for Option<T> {}
impl<T> AsNumber for Vec<T> {}
impl AsNumber for Roles {}

/// Declares every setting once: `name: Type = default, env "VAR"`, then
/// optionally `[zero_ok]` (0 is allowed) and `arg(...)` (more clap
/// attributes), with its doc comment above.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident : $ty:ty = $default:expr, env $env:literal $([$zero:ident])? $(arg($($arg:tt)*))? ;
    )*) => {
        /// Everything the roles need to know about their limits and timers.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ServerConfig {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
            /// The public listener speaks TLS, so discovery's default URL is
            /// wss:// (set by the binary from its TLS files).
            #[serde(skip)]
            pub tls: bool,
            /// `/metrics` is served on a listener of its own
            /// (`metrics_listen`), not on the public one.
            #[serde(skip)]
            pub metrics_separate: bool,
        }

        impl Default for ServerConfig {
            fn default() -> Self {
                ServerConfig { $( $name: $default, )* tls: false, metrics_separate: false }
            }
        }

        /// The settings as flags and environment variables; `None`: not
        /// given there (the config file or the default decides).
        #[derive(Debug, Default, Clone, clap::Args, Serialize)]
        pub struct ServerFlags {
            $(
                $(#[doc = $doc])+
                #[arg(long, env = $env $(, $($arg)*)?)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        /// Every setting of `ServerConfig`, in declaration order.
        pub const SETTINGS: &[SettingInfo] = &[
            $( SettingInfo { name: stringify!($name), env: $env, doc: first_line(&[$($doc),+]) }, )*
        ];

        impl ServerConfig {
            /// A setting's default as the README shows it.
            pub fn default_text(name: &str) -> Option<String> {
                let d = ServerConfig::default();
                match name {
                    $( stringify!($name) => Some(d.$name.default_text()), )*
                    _ => None,
                }
            }

            /// The environment variables that make a server run with these
            /// settings (those that differ from the defaults), for starting
            /// one from tests and the benchmark.
            pub fn env_vars(&self) -> Vec<(&'static str, String)> {
                let d = ServerConfig::default();
                let mut vars = Vec::new();
                $( if self.$name != d.$name { vars.push(($env, self.$name.env_text())); } )*
                vars
            }

            /// Numeric settings that must not be 0.
            fn positive_numbers(&self) -> Vec<(&'static str, u64)> {
                let mut numbers = Vec::new();
                $(
                    let may_be_zero = false $(|| stringify!($zero) == "zero_ok")?;
                    if let (false, Some(n)) = (may_be_zero, self.$name.as_number()) {
                        numbers.push((stringify!($name), n));
                    }
                )*
                numbers
            }
        }
    };
}

const fn first_line(doc: &[&'static str]) -> &'static str {
    doc[0]
}

settings! {
    /// How often clients should send `ping` (told to them in `ready`).
    heartbeat_interval_ms: u64 = 5_000, env "CHINWAG_HEARTBEAT_INTERVAL_MS";
    /// A connection silent this long is considered dead and closed.
    heartbeat_timeout_ms: u64 = 30_000, env "CHINWAG_HEARTBEAT_TIMEOUT_MS";
    /// How long a new socket may take to send its `auth` frame.
    auth_timeout_ms: u64 = 10_000, env "CHINWAG_AUTH_TIMEOUT_MS";
    /// Events a connection may have queued before it counts as too slow.
    outbound_queue_frames: usize = 4096, env "CHINWAG_OUTBOUND_QUEUE_FRAMES";
    /// How long one write to a socket (or of an HTTP answer) may take before it is closed.
    write_timeout_ms: u64 = 10_000, env "CHINWAG_WRITE_TIMEOUT_MS";
    /// Sustained sends per second per user.
    send_rate_per_s: u32 = 20, env "CHINWAG_SEND_RATE_PER_S";
    /// Sends per user allowed in a burst above the sustained rate.
    send_burst: u32 = 40, env "CHINWAG_SEND_BURST";
    /// Other requests per second per user: authenticated HTTP calls and `read`/`sync` frames.
    ///
    /// Each costs the store work.
    request_rate_per_s: u32 = 50, env "CHINWAG_REQUEST_RATE_PER_S";
    /// Such requests per user allowed in a burst (a reconnect syncs every channel that fell behind).
    request_burst: u32 = 300, env "CHINWAG_REQUEST_BURST";
    /// Typing notifications per second per user (a burst of the same size).
    typing_rate_per_s: u32 = 5, env "CHINWAG_TYPING_RATE_PER_S";
    /// How long a reordered live message may wait for the ones before it before the gap is read from the store.
    gap_fill_delay_ms: u64 = 200, env "CHINWAG_GAP_FILL_DELAY_MS" [zero_ok];
    /// How long a user with no socket left still counts as online (a quick reconnect announces nothing).
    presence_offline_grace_ms: u64 = 3_000, env "CHINWAG_PRESENCE_OFFLINE_GRACE_MS" [zero_ok];
    /// The WebSocket URL discovery hands out for this gateway (default: `ws://<the request's Host>/v1/ws`).
    public_ws_url: Option<String> = None, env "CHINWAG_PUBLIC_WS_URL";
    /// Messages to one device and channel within this time make one notification.
    push_coalesce_ms: u64 = 1_000, env "CHINWAG_PUSH_COALESCE_MS" [zero_ok];
    /// First retry delay of a failed push; doubles per attempt (10 tries).
    push_retry_base_ms: u64 = 1_000, env "CHINWAG_PUSH_RETRY_BASE_MS";
    /// Characters of message text in a notification.
    push_preview_chars: usize = 100, env "CHINWAG_PUSH_PREVIEW_CHARS" [zero_ok];
    /// How long one push request may take; a host that fails 3 times in a row is left alone for a while.
    push_timeout_ms: u64 = 5_000, env "CHINWAG_PUSH_TIMEOUT_MS";
    /// Let push targets be on private and local addresses (receivers on your own network).
    ///
    /// Off, only public addresses are reached, so users cannot aim the
    /// server at internal hosts.
    push_private_targets: bool = false, env "CHINWAG_PUSH_PRIVATE_TARGETS";
    /// VAPID `sub` claim: how push services can reach the operator.
    vapid_subject: String = "mailto:admin@localhost".into(), env "CHINWAG_VAPID_SUBJECT";
    /// Open WebSockets above which new ones get 503 with a retry hint (keep it under the fd limit).
    max_connections: usize = 18_000, env "CHINWAG_MAX_CONNECTIONS";
    /// Open WebSockets one client address may hold.
    max_connections_per_ip: usize = 2_000, env "CHINWAG_MAX_CONNECTIONS_PER_IP";
    /// Authenticated WebSockets one user may hold.
    max_connections_per_user: usize = 50, env "CHINWAG_MAX_CONNECTIONS_PER_USER";
    /// WebSockets one client address may hold before they have authenticated.
    max_unauthenticated_connections_per_ip: usize = 64, env "CHINWAG_MAX_UNAUTHENTICATED_CONNECTIONS_PER_IP";
    /// Connections in the HTTP stage (requests, keep-alive, WebSockets not yet upgraded); beyond it new ones are closed at once.
    max_http_connections: usize = 1_024, env "CHINWAG_MAX_HTTP_CONNECTIONS";
    /// One client address's share of the HTTP stage (an IPv6 client counts by its /64; trusted proxies have none).
    max_http_connections_per_ip: usize = 64, env "CHINWAG_MAX_HTTP_CONNECTIONS_PER_IP";
    /// Time to send a request's headers; also how long an idle keep-alive connection stays open.
    http_header_timeout_ms: u64 = 10_000, env "CHINWAG_HTTP_HEADER_TIMEOUT_MS";
    /// Time a request body may take beyond what its size needs at `http_body_min_bytes_per_s` (else 408).
    http_body_timeout_ms: u64 = 10_000, env "CHINWAG_HTTP_BODY_TIMEOUT_MS";
    /// The slowest average rate a request body may arrive at.
    http_body_min_bytes_per_s: u64 = 16 * 1024, env "CHINWAG_HTTP_BODY_MIN_BYTES_PER_S";
    /// Channels (direct and groups) one user may be in; nobody can add them to more.
    max_channels_per_user: usize = 1_000, env "CHINWAG_MAX_CHANNELS_PER_USER";
    /// Login attempts per account from one client address per minute (a guesser's budget).
    login_rate_per_account_per_ip_per_min: u32 = 10, env "CHINWAG_LOGIN_RATE_PER_ACCOUNT_PER_IP_PER_MIN";
    /// Login attempts per account from all addresses together per minute; addresses it logged in from before are not held to it.
    ///
    /// So others' failures never lock the owner out.
    login_rate_per_account_per_min: u32 = 100, env "CHINWAG_LOGIN_RATE_PER_ACCOUNT_PER_MIN";
    /// Login attempts per client address per minute (also the burst).
    login_rate_per_ip_per_min: u32 = 60, env "CHINWAG_LOGIN_RATE_PER_IP_PER_MIN";
    /// Signups per client address per minute (also the burst).
    signup_rate_per_ip_per_min: u32 = 20, env "CHINWAG_SIGNUP_RATE_PER_IP_PER_MIN";
    /// Browser origins besides the server's own that may open WebSockets (comma-separated, `*` for any).
    allowed_origins: Vec<String> = Vec::new(), env "CHINWAG_ALLOWED_ORIGINS" arg(value_delimiter = ',');
    /// Addresses or networks (CIDR) of your reverse proxies, whose `X-Forwarded-For` names the client.
    ///
    /// From anyone else the header is ignored.
    trusted_proxies: Vec<ProxyNet> = Vec::new(), env "CHINWAG_TRUSTED_PROXIES" arg(value_delimiter = ',');
    /// Roles this process runs: `api` (HTTP API, web client), `gateway` (WebSockets), `presence`, `notifier` (pushes).
    roles: Roles = Roles::default(), env "CHINWAG_ROLES";
    /// The largest upload, in bytes (larger ones get 413 `too_large`).
    upload_max_bytes: u64 = 25 * 1024 * 1024, env "CHINWAG_UPLOAD_MAX_BYTES";
    /// Bytes of uploads one user may keep (sent or not).
    upload_quota_bytes: u64 = 1024 * 1024 * 1024, env "CHINWAG_UPLOAD_QUOTA_BYTES";
    /// Seconds an upload that was never sent is kept before it is removed.
    unattached_upload_ttl_s: u64 = 86_400, env "CHINWAG_UNATTACHED_UPLOAD_TTL_S";
    /// Seconds a signed media URL in a message stays valid (at least an hour).
    media_url_ttl_s: u64 = 7_200, env "CHINWAG_MEDIA_URL_TTL_S";
    /// Answer media requests with a redirect to the object store's own signed URL, when it can sign (S3).
    ///
    /// The store (or a CDN in front of it) then serves the bytes, not chinwag.
    media_redirect: bool = false, env "CHINWAG_MEDIA_REDIRECT";
    /// Pixels (width × height) an uploaded image may have; larger ones are refused before decoding.
    image_max_pixels: u64 = 50_000_000, env "CHINWAG_IMAGE_MAX_PIXELS";
    /// The server's public base URL (`https://chat.example.com`), for absolute media URLs in messages.
    ///
    /// Set it behind a reverse proxy. Unset: a single node listening on a
    /// specific address with no `trusted_proxies` uses
    /// `http://<that address>`; otherwise URLs are relative to the API.
    public_url: Option<String> = None, env "CHINWAG_PUBLIC_URL";
}

/// A trusted proxy: an address (a network of one) or a CIDR network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyNet(pub ipnet::IpNet);

impl std::str::FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(ProxyNet)
            .map_err(|_| format!("trusted_proxies: {s:?} is not an address or network"))
    }
}

impl TryFrom<String> for ProxyNet {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProxyNet> for String {
    fn from(net: ProxyNet) -> String {
        net.0.to_string()
    }
}

impl DefaultText for ProxyNet {
    fn default_text(&self) -> String {
        self.0.to_string()
    }
}
impl AsNumber for ProxyNet {}

impl ServerConfig {
    /// Settings for tests, which sign up and log in many users from one
    /// address and open many sockets from it: the per-address and
    /// per-account limits are lifted (each has tests of its own, which set
    /// it with a flag). Limits on what a user sends stay as they are.
    pub fn for_test() -> ServerConfig {
        let many = 100_000;
        ServerConfig {
            signup_rate_per_ip_per_min: many,
            login_rate_per_ip_per_min: many,
            login_rate_per_account_per_min: many,
            login_rate_per_account_per_ip_per_min: many,
            request_rate_per_s: many,
            request_burst: many,
            max_http_connections_per_ip: many as usize,
            max_unauthenticated_connections_per_ip: many as usize,
            ..ServerConfig::default()
        }
    }

    /// Rejects settings the server cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in self.positive_numbers() {
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
        self.trusted_proxies.iter().any(|net| net.0.contains(&ip))
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
