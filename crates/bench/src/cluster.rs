//! A cluster to measure: an api node, gateways and a presence node, each a
//! `chinwag serve` process on a store and bus the caller started (the
//! binary names those backends; this crate only passes their URLs on).

use crate::server::ServerUnderTest;
use anyhow::{Context, Result};
use chinwag_client::Api;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shared engines a cluster's nodes run on.
#[derive(Debug, Clone)]
pub struct ClusterBackends {
    /// `--store` of every node (a PostgreSQL URL).
    pub store_url: String,
    /// `--bus` of every node (the NATS servers' URLs, comma-separated).
    pub bus_urls: String,
}

/// The running nodes; each is killed on drop.
pub struct BenchCluster {
    pub api: ServerUnderTest,
    pub gateways: Vec<ServerUnderTest>,
    _presence: ServerUnderTest,
}

impl BenchCluster {
    /// Starts the nodes and waits until discovery lists every gateway.
    pub async fn start(exe: &Path, backends: &ClusterBackends, gateways: usize) -> Result<BenchCluster> {
        let node = |name: String, roles: &str| {
            let args =
                ["--store", &backends.store_url, "--bus", &backends.bus_urls, "--node-name", &name, "--roles", roles]
                    .map(str::to_owned);
            ServerUnderTest::start(exe, None, &args).with_context(|| format!("starting {name}"))
        };
        // The first node migrates the database.
        let api = node("bench-api".into(), "api")?;
        let gateways = (0..gateways).map(|g| node(format!("bench-gw-{g}"), "gateway")).collect::<Result<Vec<_>>>()?;
        let presence = node("bench-presence".into(), "presence")?;
        let cluster = BenchCluster { api, gateways, _presence: presence };
        let discovery = Api::new(&cluster.api.base_url);
        let deadline = Instant::now() + Duration::from_secs(30);
        while discovery.discover().await.map_or(0, |listed| listed.len()) < cluster.gateways.len() {
            anyhow::ensure!(Instant::now() < deadline, "discovery does not list every gateway");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(cluster)
    }

    /// The gateways' base URLs, for clients to spread over.
    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.base_url.clone()).collect()
    }

    /// Events the gateways have sent over the bus to other gateways so far.
    pub async fn routed_events(&self) -> Result<u64> {
        let mut total = 0;
        for gateway in &self.gateways {
            let text = reqwest::get(format!("{}/metrics", gateway.base_url)).await?.text().await?;
            let value = text.lines().find_map(|l| l.strip_prefix("chinwag_bus_routed_events ")?.parse::<u64>().ok());
            total += value.context("no chinwag_bus_routed_events in a gateway's metrics")?;
        }
        Ok(total)
    }
}
