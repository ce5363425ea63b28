//! The api role's own state: the limits that protect accounts (login and
//! signup, through the `RateLimiter` seam so a cluster shares them), the
//! addresses each account logged in from, and discovery to hand clients a
//! gateway.

use crate::ratelimit::KnownAddresses;
use crate::ServerConfig;
use chinwag_bus::{Discovery, GatewayInfo, Limit, RateLimiter};
use chinwag_proto::WireError;
use std::net::IpAddr;
use std::sync::Arc;

/// The api service.
pub struct Api {
    account_limits: Arc<dyn RateLimiter>,
    /// Where each account logged in from (exempt from the account ceiling).
    login_addresses: KnownAddresses,
    discovery: Arc<dyn Discovery>,
    config: Arc<ServerConfig>,
}

impl Api {
    pub fn new(account_limits: Arc<dyn RateLimiter>, discovery: Arc<dyn Discovery>, config: Arc<ServerConfig>) -> Api {
        Api { account_limits, login_addresses: KnownAddresses::default(), discovery, config }
    }

    /// Checks one account-protecting limit.
    async fn check_limit(&self, name: &'static str, per_minute: u32, key: &str) -> Result<(), WireError> {
        let limit = Limit { name, per_minute, burst: per_minute };
        self.account_limits
            .check(limit, key)
            .await
            .map_err(|wait| WireError::rate_limited(wait.as_millis().max(1) as u64))
    }

    /// Signups are limited per client address.
    pub async fn check_signup(&self, ip: IpAddr) -> Result<(), WireError> {
        self.check_limit("signup_per_ip", self.config.signup_rate_per_ip_per_min, &ip.to_string()).await
    }

    /// Logins are limited per client address, per account and address
    /// (a guesser's budget), and per account from all addresses together
    /// (many guessers), except from addresses the account logged in from
    /// before: someone else's failures never cost the owner their login.
    pub async fn check_login(&self, ip: IpAddr, username: &str) -> Result<(), WireError> {
        let account = username.to_lowercase();
        let config = &self.config;
        self.check_limit("login_per_ip", config.login_rate_per_ip_per_min, &ip.to_string()).await?;
        let pair = format!("{account} {ip}");
        self.check_limit("login_per_account_ip", config.login_rate_per_account_per_ip_per_min, &pair).await?;
        if !self.login_addresses.contains(&account, ip) {
            self.check_limit("login_per_account", config.login_rate_per_account_per_min, &account).await?;
        }
        Ok(())
    }

    /// A login with the right password from `ip`.
    pub fn login_succeeded(&self, ip: IpAddr, username: &str) {
        self.login_addresses.remember(&username.to_lowercase(), ip);
    }

    /// The gateways clients may be handed, least loaded first.
    pub fn live_gateways(&self) -> Vec<GatewayInfo> {
        self.discovery.live()
    }

    /// Lets the limits forget keys that have been quiet for long.
    pub(crate) fn forget_idle(&self) {
        self.account_limits.forget_idle();
    }
}
