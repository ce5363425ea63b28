//! A whole cluster of real processes on loopback: a private PostgreSQL, a
//! three-server NATS cluster, and `chinwag` nodes with roles (api nodes,
//! gateways, a presence node and a notifier node), each started like an
//! operator would (`--store`, `--bus`, `--node-name`, `--roles`).

use super::{Client, TestServer};
use chinwag_bus::nats::LocalNats;
use chinwag_store::postgres::LocalPostgres;
use serde_json::Value;
use std::time::Duration;

/// The running cluster; every process stops when it drops.
pub struct TestCluster {
    pub api: Vec<TestServer>,
    pub gateways: Vec<TestServer>,
    pub presence: TestServer,
    pub notifier: TestServer,
    pub nats: LocalNats,
    pub postgres: LocalPostgres,
    /// What every node is started with.
    common: Vec<String>,
    /// The environment every node is started with.
    env: Vec<(String, String)>,
    /// What gateways are started with besides: the api nodes' origins,
    /// where pages come from.
    gateway_flags: Vec<String>,
    /// One cluster at a time per test binary (the last field: released
    /// after every process stopped). A dozen processes per cluster on two
    /// cores is what these tests measure failover under, not six times
    /// that.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// Held by the running cluster of this test binary.
static ONE_AT_A_TIME: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Default::default);

/// Waits for this binary's turn to run a cluster.
#[allow(clippy::disallowed_methods, reason = "TestCluster::start is blocking: it waits for processes")]
fn my_turn() -> tokio::sync::OwnedMutexGuard<()> {
    loop {
        if let Ok(turn) = ONE_AT_A_TIME.clone().try_lock_owned() {
            return turn;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `api` lists `n` live gateways.
pub async fn until_gateways(api: &TestServer, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = api.call("GET", "/v1/discovery", None, None).await;
        let servers = body["servers"].as_array().cloned().unwrap_or_default();
        if servers.len() == n {
            return servers;
        }
        assert!(tokio::time::Instant::now() < deadline, "discovery lists {servers:?}, not {n} gateways");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Cluster tests always run on PostgreSQL: the second pass of the suite
/// (`CHINWAG_TEST_STORE=postgres`) would only repeat them.
pub fn repeated_pass() -> bool {
    super::on_postgres()
}

impl TestCluster {
    /// Starts `apis` api nodes and `gateways` gateways (plus one presence
    /// and one notifier node), every node with `extra` flags.
    pub fn start(apis: usize, gateways: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_with_env(apis, gateways, extra, &[])
    }

    /// Like [`TestCluster::start`], every node with `env` set too.
    pub fn start_with_env(apis: usize, gateways: usize, extra: &[&str], env: &[(&str, &str)]) -> TestCluster {
        let turn = my_turn();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let postgres = LocalPostgres::start(false).expect("start PostgreSQL");
        let url = postgres.create_database("cluster").expect("create the database");
        let nats = LocalNats::start(3).expect("start NATS");
        let mut common: Vec<String> = vec!["--store".into(), url, "--bus".into(), nats.urls()];
        common.extend(extra.iter().map(|s| s.to_string()));
        // The first node migrates the database; the others find it done.
        let api: Vec<TestServer> = (0..apis).map(|i| node(&common, &env, &format!("api-{i}"), "api")).collect();
        let origins: Vec<&str> = api.iter().map(|a| a.base.as_str()).collect();
        let gateway_flags = vec!["--allowed-origins".to_string(), origins.join(",")];
        let gateway_args: Vec<String> = common.iter().chain(&gateway_flags).cloned().collect();
        let gateways = (0..gateways).map(|i| node(&gateway_args, &env, &format!("gw-{i}"), "gateway")).collect();
        let presence = node(&common, &env, "presence-0", "presence");
        let notifier = node(&common, &env, "notifier-0", "notifier");
        TestCluster { api, gateways, presence, notifier, nats, postgres, common, env, gateway_flags, _turn: turn }
    }

    /// The first api node: where tests sign up, log in and call the API.
    pub fn api(&self) -> &TestServer {
        &self.api[0]
    }

    /// A socket on gateway `g`, past `ready`.
    pub async fn connect(&self, g: usize, token: &str) -> (Client, Value) {
        self.gateways[g].connect(token).await
    }

    /// Waits until the first api node lists `n` live gateways.
    pub async fn until_gateways(&self, n: usize) -> Vec<Value> {
        until_gateways(self.api(), n).await
    }

    /// Starts one more gateway with the cluster's flags.
    pub fn add_gateway(&mut self, name: &str) {
        let args: Vec<String> = self.common.iter().chain(&self.gateway_flags).cloned().collect();
        self.gateways.push(node(&args, &self.env, name, "gateway"));
    }
}

/// A node started with `args` and `env`, named `name`, running `roles`.
fn node(args: &[String], env: &[(String, String)], name: &str, roles: &str) -> TestServer {
    let mut args = args.to_vec();
    args.extend(["--node-name".into(), name.into(), "--roles".into(), roles.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestServer::start_with_env(&args, &env)
}
