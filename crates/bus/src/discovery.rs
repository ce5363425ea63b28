//! The discovery seam: gateways announce their address and load with a
//! time-to-live; the API hands clients the least-loaded live one. A cluster
//! backend keeps the same entries in a shared key-value store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One gateway as clients should see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayInfo {
    /// Unique per gateway process.
    pub id: String,
    /// Where clients open the WebSocket; `None` means "the host the client
    /// reached the API on" (a single node behind any name).
    pub ws_url: Option<String>,
    /// Authenticated connections it holds.
    pub load: u64,
}

/// The registry of live gateways.
pub trait Discovery: Send + Sync + 'static {
    /// (Re-)announces a gateway; it stays live for the registry's TTL.
    fn announce(&self, info: GatewayInfo);
    /// Live gateways, least loaded first.
    fn live(&self) -> Vec<GatewayInfo>;
}

/// The in-process registry.
pub struct LocalDiscovery {
    ttl: Duration,
    entries: Mutex<HashMap<String, (GatewayInfo, Instant)>>,
}

impl LocalDiscovery {
    pub fn new(ttl: Duration) -> Self {
        LocalDiscovery { ttl, entries: Mutex::new(HashMap::new()) }
    }
}

impl Discovery for LocalDiscovery {
    fn announce(&self, info: GatewayInfo) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(info.id.clone(), (info, Instant::now()));
    }

    fn live(&self) -> Vec<GatewayInfo> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (_, seen)| seen.elapsed() < self.ttl);
        let mut live: Vec<GatewayInfo> = entries.values().map(|(info, _)| info.clone()).collect();
        live.sort_by(|a, b| a.load.cmp(&b.load).then_with(|| a.id.cmp(&b.id)));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a plain test thread, no runtime to block")]
    fn least_loaded_first_and_expired_entries_vanish() {
        let d = LocalDiscovery::new(Duration::from_millis(50));
        d.announce(GatewayInfo { id: "a".into(), ws_url: Some("ws://a".into()), load: 9 });
        d.announce(GatewayInfo { id: "b".into(), ws_url: Some("ws://b".into()), load: 2 });
        let ids: Vec<String> = d.live().into_iter().map(|g| g.id).collect();
        assert_eq!(ids, vec!["b", "a"]);
        std::thread::sleep(Duration::from_millis(60));
        d.announce(GatewayInfo { id: "a".into(), ws_url: None, load: 10 });
        assert_eq!(d.live().len(), 1);
    }
}
