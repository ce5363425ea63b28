//! Which addresses push requests may reach. Push URLs come from users, so
//! without a guard any user could make the server send requests into its
//! own network (SSRF): a webhook at `http://127.0.0.1:...`, the cloud
//! metadata service at `169.254.169.254`, a host on the private LAN.
//!
//! By default only public addresses are allowed, checked three times: when
//! a target is registered (with a DNS lookup, for a clear error), when a
//! name is resolved for a request (so a name that later resolves to a
//! private address, DNS rebinding, is still refused), and for URLs with an
//! address literal, which skip resolution. Redirects are not followed.
//! `push_private_targets` lifts the guard for deployments whose push
//! receivers live on a private network (and for tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is on the public internet: not loopback, private, link
/// local, shared (CGNAT), multicast, broadcast, unspecified, reserved or
/// documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b); // 100.64.0.0/10
    let benchmarking = a == 198 && (b == 18 || b == 19); // 198.18.0.0/15
    let reserved = a >= 240; // 240.0.0.0/4 and broadcast
    let this_network = a == 0; // 0.0.0.0/8
    let protocol_assignments = a == 192 && b == 0 && ip.octets()[2] == 0; // 192.0.0.0/24
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || benchmarking
        || reserved
        || this_network
        || protocol_assignments)
}

/// Public IPv6, leaving out every form that embeds or tunnels to an IPv4
/// address (the mapped form `::ffff:a.b.c.d` is checked as IPv4 by the
/// caller): through them a name or literal could still reach a private
/// IPv4 host.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s[0];
    let unique_local = (first & 0xfe00) == 0xfc00; // fc00::/7
    let link_local = (first & 0xffc0) == 0xfe80; // fe80::/10
    let documentation = first == 0x2001 && s[1] == 0x0db8; // 2001:db8::/32
    let ipv4_compatible = s[..6] == [0; 6]; // ::a.b.c.d (deprecated), also :: and ::1
    let siit = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0; // ::ffff:0:a.b.c.d
    let nat64 = first == 0x0064 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1); // 64:ff9b::/96, 64:ff9b:1::/48
    let six_to_four = first == 0x2002; // 2002::/16 embeds a.b.c.d
    let teredo = first == 0x2001 && s[1] == 0; // 2001::/32 tunnels to IPv4
    let discard = first == 0x0100 && s[1..4] == [0; 3]; // 100::/64
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || documentation
        || ipv4_compatible
        || siit
        || nat64
        || six_to_four
        || teredo
        || discard)
}

/// The address of a URL whose host is an address literal.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The guard of one server.
#[derive(Debug, Clone, Copy)]
pub struct AddressPolicy {
    /// Allow private and local addresses too (`push_private_targets`).
    pub allow_private: bool,
}

impl AddressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }

    /// Checks a URL's host: an address literal directly, a name by
    /// resolving it (every address it resolves to must be allowed).
    pub async fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match (literal_ip(url), url.host_str()) {
            (Some(ip), _) => vec![ip],
            (None, Some(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .map(|a| a.ip())
                .collect(),
            (None, None) => return Err("the URL has no host".into()),
        };
        match addresses.iter().find(|ip| !self.allows(**ip)) {
            Some(ip) => Err(format!("{ip} is a private or local address")),
            None if addresses.is_empty() => Err("the host has no address".into()),
            None => Ok(()),
        }
    }
}

/// The DNS resolver of the push HTTP client: the system's, minus the
/// addresses the policy refuses.
pub struct GuardedResolver(pub AddressPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{name} resolves to no address push requests may reach").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client for push requests under `policy`.
pub fn push_client(policy: AddressPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
            // Forms that embed or tunnel to IPv4.
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::ffff:0:7f00:1",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private} counted as public");
        }
        for public in ["1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public} counted as private");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_literal_and_by_name() {
        let guarded = AddressPolicy { allow_private: false };
        for url in
            ["http://127.0.0.1:9/x", "http://[::1]/x", "http://169.254.169.254/latest", "http://localhost:8080/x"]
        {
            assert!(guarded.check_url(&url.parse().unwrap()).await.is_err(), "{url} allowed");
        }
        assert!(guarded.check_url(&"http://93.184.216.34/x".parse().unwrap()).await.is_ok());
        let open = AddressPolicy { allow_private: true };
        assert!(open.check_url(&"http://127.0.0.1:9/x".parse().unwrap()).await.is_ok());
    }
}
