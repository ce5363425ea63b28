//! `chinwag bench`: measures speed, memory and correctness of a chinwag
//! server (one it starts on a temp data dir, or one already running) with
//! real connections made by the client SDK.
//!
//! Scenarios: `idle` (memory per authenticated idle connection, from the
//! server's own RSS), `direct` (pairs chatting: max throughput against the
//! bare relay of the same run, then latency at a fixed open-loop rate),
//! `group` (groups of up to 100: deliveries per second), `reconnect`
//! (connection churn while messages flow), `media` (upload throughput,
//! and what an attachment adds to a message). Every scenario reports lost,
//! duplicated, out-of-order and gap counts, which must be zero.
//!
//! Given a store and bus for a cluster (`BenchArgs::cluster`), `direct` and
//! `group` run again through a cluster of two gateways with the clients
//! spread over both, reported beside the single node's figures.

mod cluster;
mod fsync;
mod load;
mod relay;
mod report;
mod scenarios;
mod server;
mod stats;

pub use cluster::ClusterBackends;

use anyhow::{bail, Context, Result};
use chinwag_client::Api;
use indicatif::{ProgressBar, ProgressStyle};
use load::{LoadOutcome, Pace};
use report::{Report, ScenarioReport};
use scenarios::BenchUser;
use server::ServerUnderTest;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Options of `chinwag bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A running server's base URL (default: start one on a temp data dir).
    #[arg(long)]
    pub url: Option<String>,
    /// The running server's pid, for memory figures with `--url`.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Data directory for the server this tool starts (default: a temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated: idle, direct, group, reconnect, media.
    #[arg(long, default_value = "idle,direct,group,reconnect,media", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Seconds of load per measured run.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Pairs of users in `direct`.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Open-loop messages per second in `direct`.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Unacknowledged sends per sender in the max-throughput runs.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Members per group in `group`.
    #[arg(long, default_value_t = 100)]
    pub group_size: usize,
    #[arg(long, default_value_t = 2)]
    pub groups: usize,
    /// Open-loop messages per second into all groups together.
    #[arg(long, default_value_t = 2_000.0)]
    pub group_rate: f64,
    /// Authenticated idle connections in `idle`.
    #[arg(long, default_value_t = 15_000)]
    pub connections: usize,
    /// Connections one process holds; more are spread over worker processes.
    #[arg(long, default_value_t = 15_000)]
    pub per_process: usize,
    /// Users the idle connections log in as (connections share their tokens).
    #[arg(long, default_value_t = 100)]
    pub idle_users: usize,
    /// Reconnecting members in `reconnect`.
    #[arg(long, default_value_t = 50)]
    pub churners: usize,
    /// Files uploaded in `media`.
    #[arg(long, default_value_t = 32)]
    pub media_files: usize,
    /// Bytes per file in `media`.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub media_file_bytes: usize,
    /// Messages with an attachment in `media` (and as many without).
    #[arg(long, default_value_t = 500)]
    pub media_messages: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Tiny sizes and short runs: checks correctness, not speed.
    #[arg(long)]
    pub smoke: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write an SVG chart of the latency distributions here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Skip the bare-relay comparison.
    #[arg(long)]
    pub no_relay: bool,
    /// Extra arguments for the server this tool starts.
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Engines for a cluster (set by the binary's `--cluster`): `direct`
    /// and `group` also run through a cluster of two gateways on them.
    #[arg(skip)]
    pub cluster: Option<ClusterBackends>,
}

impl BenchArgs {
    fn shrink_for_smoke(&mut self) {
        if self.smoke {
            self.duration_s = self.duration_s.min(2.0);
            self.pairs = self.pairs.min(4);
            self.rate = self.rate.min(200.0);
            self.window = self.window.min(4);
            self.group_size = self.group_size.min(10);
            self.groups = self.groups.min(1);
            self.group_rate = self.group_rate.min(50.0);
            self.connections = self.connections.min(100);
            self.idle_users = self.idle_users.min(10);
            self.churners = self.churners.min(4);
            self.media_files = self.media_files.min(4);
            self.media_file_bytes = self.media_file_bytes.min(64 * 1024);
            self.media_messages = self.media_messages.min(20);
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

/// Runs the benchmark; `exe` is the `chinwag` binary (to start the server
/// and worker processes). Fails when a correctness count is not zero.
pub async fn run(mut args: BenchArgs, exe: &Path) -> Result<Report> {
    args.shrink_for_smoke();
    let server = match &args.url {
        Some(url) => ServerUnderTest::external(url, args.server_pid),
        None => ServerUnderTest::start(exe, args.data_dir.clone(), &args.server_arg)?,
    };
    let base = server.base_url.clone();
    let api = Api::new(&base);
    let duration = Duration::from_secs_f64(args.duration_s);
    let mut report = Report { machine: machine_summary(), server: base.clone(), ..Report::default() };
    if let Some(dir) = &server.data_dir {
        report.fsync_per_s = fsync::fsyncs_per_second(dir, Duration::from_secs(1)).ok();
    }

    let pool_size = [
        if args.wants("direct") { args.pairs * 2 } else { 0 },
        if args.wants("group") { args.groups * args.group_size } else { 0 },
        if args.wants("reconnect") { args.churners + 1 } else { 0 },
        if args.wants("idle") { args.idle_users } else { 0 },
        if args.wants("media") { 2 } else { 0 },
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let spinner = progress("creating users", pool_size as u64);
    let users = scenarios::make_users(&api, &format!("b{run_id}"), pool_size).await?;
    spinner.finish_and_clear();

    if args.wants("idle") {
        report.scenarios.push(idle(&args, &base, &users, &server, exe).await?);
    }
    let single = Deployment { api: api.clone(), gateways: vec![base.clone()], label: "", cluster: None };
    if args.wants("direct") {
        report.scenarios.extend(direct(&args, &single, &users, duration, !args.no_relay).await?);
    }
    if args.wants("group") {
        report.scenarios.push(group(&args, &single, &users, duration).await?);
    }
    if args.wants("reconnect") {
        let bar = progress("reconnect", duration.as_millis() as u64);
        let churn = scenarios::reconnect(&api, &base, &users[..args.churners + 1], 50.0, duration, &bar).await?;
        bar.finish_and_clear();
        report.scenarios.push(ScenarioReport {
            name: "reconnect".into(),
            params: format!(
                "{} members reconnecting every 50-200 ms while 50 msgs/s flow, {} s",
                args.churners, args.duration_s
            ),
            messages_per_s: Some(churn.messages as f64 / churn.elapsed.as_secs_f64()),
            deliveries_per_s: None,
            send_ack: None,
            send_deliver: None,
            correctness: churn.correctness,
            notes: serde_json::json!({
                "reconnects_per_s": (churn.reconnects as f64 / churn.elapsed.as_secs_f64()).round(),
                "connect_to_ready": churn.ready.summary(),
            }),
            curves: vec![("connect→ready".into(), churn.ready)],
        });
    }
    if args.wants("media") {
        report.scenarios.push(media(&args, &api, &base, &users, &server).await?);
    }
    if let Some(backends) = &args.cluster {
        report.scenarios.extend(through_a_cluster(&args, exe, backends, pool_size, duration).await?);
    }
    if let Some(path) = &args.chart {
        report.chart(path).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.table());
    }
    if !report.is_clean() {
        bail!("correctness counts are not all zero");
    }
    Ok(report)
}

fn progress(what: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {percent:>3}%") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn machine_summary() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()))
        .map_or(String::from("?"), |kib| format!("{} GiB", kib / 1024 / 1024));
    format!("{cores} cores, {mem} RAM; bench and server share it")
}

fn load_report(name: &str, params: String, o: &LoadOutcome) -> ScenarioReport {
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    ScenarioReport {
        name: name.into(),
        params,
        messages_per_s: Some(o.acked as f64 / secs),
        deliveries_per_s: Some(o.deliveries as f64 / secs),
        send_ack: Some(o.ack.summary()),
        send_deliver: Some(o.deliver.summary()),
        correctness: o.correctness.clone(),
        notes: serde_json::json!({ "sent": o.sent, "acked": o.acked, "failed": o.failed }),
        curves: vec![("send→ack".into(), o.ack.clone()), ("send→deliver".into(), o.deliver.clone())],
    }
}

/// Upload throughput, and a message's ack with an attachment beside one
/// without.
async fn media(
    args: &BenchArgs,
    api: &Api,
    base: &str,
    users: &[BenchUser],
    server: &ServerUnderTest,
) -> Result<ScenarioReport> {
    // The server's memory, sampled while files stream in.
    let pid = server.pid();
    let before = pid.and_then(server::rss_of);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(pid.and_then(server::rss_of).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        }
    });
    let bar = progress("media", args.media_files as u64);
    let outcome =
        scenarios::media(api, base, users, args.media_files, args.media_file_bytes, args.media_messages, &bar).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampling.await.ok();
    let o = outcome?;
    bar.finish_and_clear();
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    Ok(ScenarioReport {
        name: "media".into(),
        params: format!(
            "{} uploads of {} bytes, 4 at a time; then {} messages with one attachment and {} without, one at a time",
            args.media_files, args.media_file_bytes, args.media_messages, args.media_messages
        ),
        messages_per_s: None,
        deliveries_per_s: None,
        send_ack: Some(o.with_file.summary()),
        send_deliver: None,
        correctness: o.correctness,
        notes: serde_json::json!({
            "uploads_per_s": (o.uploads as f64 / secs * 10.0).round() / 10.0,
            "upload_mib_per_s": (o.bytes as f64 / secs / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            "upload": o.upload.summary(),
            "ack_with_attachment": o.with_file.summary(),
            "ack_without": o.plain.summary(),
            // How far the server's peak memory rose (meaningful when this
            // scenario runs alone: earlier ones may have set the peak).
            "server_rss_growth_bytes_peak": before.zip(peak).map(|(b, p)| p.saturating_sub(b)),
        }),
        curves: vec![
            ("upload".into(), o.upload),
            ("send→ack with a file".into(), o.with_file),
            ("send→ack plain".into(), o.plain),
        ],
    })
}

/// Where load goes: the API (users, channels) and the gateways the
/// clients spread over (the one server of a single node).
struct Deployment<'a> {
    api: Api,
    gateways: Vec<String>,
    /// Before each scenario's name: "" on the single node.
    label: &'static str,
    /// The cluster, whose gateways count what crosses the bus.
    cluster: Option<&'a cluster::BenchCluster>,
}

impl Deployment<'_> {
    /// Events sent between gateways so far (0 on a single node).
    async fn routed_events(&self) -> Result<u64> {
        match self.cluster {
            Some(cluster) => cluster.routed_events().await,
            None => Ok(0),
        }
    }

    /// Runs `load` and reports it as `name`; on a cluster, with the bus
    /// crossings per acknowledged message.
    async fn measure(
        &self,
        name: &str,
        params: String,
        load: impl std::future::Future<Output = Result<LoadOutcome>>,
    ) -> Result<(ScenarioReport, LoadOutcome)> {
        let before = self.routed_events().await?;
        let outcome = load.await?;
        let params = match self.gateways.len() {
            1 => params,
            n => format!("{params}, clients spread over {n} gateways"),
        };
        let mut report = load_report(&format!("{}{name}", self.label), params, &outcome);
        if self.cluster.is_some() {
            let routed = self.routed_events().await? - before;
            let per_message = (routed as f64 / outcome.acked.max(1) as f64 * 100.0).round() / 100.0;
            report.notes["routed_events_per_message"] = serde_json::json!(per_message);
        }
        Ok((report, outcome))
    }
}

/// `direct` and `group` through a cluster of two gateways, on users of
/// its own; each message's crossings between gateways are counted.
async fn through_a_cluster(
    args: &BenchArgs,
    exe: &Path,
    backends: &ClusterBackends,
    pool_size: usize,
    duration: Duration,
) -> Result<Vec<ScenarioReport>> {
    if !args.wants("direct") && !args.wants("group") {
        return Ok(Vec::new());
    }
    let cluster = cluster::BenchCluster::start(exe, backends, 2).await?;
    let api = Api::new(&cluster.api.base_url);
    let spinner = progress("cluster users", pool_size as u64);
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let users = scenarios::make_users(&api, &format!("c{run_id}"), pool_size).await?;
    spinner.finish_and_clear();
    let deployment = Deployment { api, gateways: cluster.gateway_urls(), label: "cluster ", cluster: Some(&cluster) };
    let mut reports = Vec::new();
    if args.wants("direct") {
        reports.extend(direct(args, &deployment, &users, duration, false).await?);
    }
    if args.wants("group") {
        reports.push(group(args, &deployment, &users, duration).await?);
    }
    Ok(reports)
}

/// Groups of up to 100, every member sending.
async fn group(
    args: &BenchArgs,
    to: &Deployment<'_>,
    users: &[BenchUser],
    duration: Duration,
) -> Result<ScenarioReport> {
    let bar = progress("group", duration.as_millis() as u64);
    let run = scenarios::RunShape {
        pace: Pace::Open { rate_per_s: args.group_rate },
        payload_bytes: args.payload_bytes,
        duration,
    };
    let members = &users[..args.groups * args.group_size];
    let params = format!(
        "{} groups of {} members, all sending, {} msgs/s open loop, {} s",
        args.groups, args.group_size, args.group_rate, args.duration_s
    );
    let load = scenarios::group(&to.api, &to.gateways, members, args.group_size, run, &bar);
    let (report, _) = to.measure("group", params, load).await?;
    bar.finish_and_clear();
    Ok(report)
}

async fn direct(
    args: &BenchArgs,
    to: &Deployment<'_>,
    users: &[BenchUser],
    duration: Duration,
    with_relay: bool,
) -> Result<Vec<ScenarioReport>> {
    let pairs = &users[..args.pairs * 2];
    let shape = |pace| scenarios::RunShape { pace, payload_bytes: args.payload_bytes, duration };
    let closed = shape(Pace::Closed { window: args.window });
    let mut reports = Vec::new();
    let mut relay_rate = None;
    if with_relay {
        let relay_url = relay::start().await?;
        let bar = progress("relay", duration.as_millis() as u64);
        let o = scenarios::direct_relay(&relay_url, args.pairs, closed, &bar).await?;
        bar.finish_and_clear();
        relay_rate = Some(o.acked as f64 / o.elapsed.as_secs_f64());
        let params = format!(
            "bare relay (no auth, no store), {} pairs, window {}, {} s",
            args.pairs, args.window, args.duration_s
        );
        reports.push(load_report("direct-relay", params, &o));
    }
    let bar = progress("direct max", duration.as_millis() as u64);
    let params =
        format!("{} pairs, window {} per sender, durable store, {} s", args.pairs, args.window, args.duration_s);
    let load = scenarios::direct(&to.api, &to.gateways, pairs, closed, &bar);
    let (mut max_report, max) = to.measure("direct-max", params, load).await?;
    bar.finish_and_clear();
    let rate = max.acked as f64 / max.elapsed.as_secs_f64();
    if let Some(relay) = relay_rate {
        max_report.notes["fraction_of_relay"] = serde_json::json!((rate / relay * 1000.0).round() / 1000.0);
    }
    reports.push(max_report);
    // Fresh channels for the latency run, so ids start over.
    let bar = progress("direct rate", duration.as_millis() as u64);
    let params = format!("{} pairs, {} msgs/s open loop, {} s", args.pairs, args.rate, args.duration_s);
    let load = scenarios::direct(&to.api, &to.gateways, pairs, shape(Pace::Open { rate_per_s: args.rate }), &bar);
    reports.push(to.measure("direct-rate", params, load).await?.0);
    bar.finish_and_clear();
    Ok(reports)
}

async fn idle(
    args: &BenchArgs,
    base: &str,
    users: &[BenchUser],
    server: &ServerUnderTest,
    exe: &Path,
) -> Result<ScenarioReport> {
    let tokens: Vec<String> = users[..args.idle_users.max(1)].iter().map(|u| u.token.clone()).collect();
    let token_for = |i: usize| tokens[i % tokens.len()].clone();
    let own = args.connections.min(args.per_process);
    let before = server.rss_bytes();
    let bar = progress("idle", args.connections as u64);
    // Worker processes take what one process cannot hold.
    let mut workers = Vec::new();
    let mut first = own;
    while first < args.connections {
        let count = (args.connections - first).min(args.per_process);
        let worker_tokens: Vec<String> = (first..first + count).map(&token_for).collect();
        let mut child = Command::new(exe)
            .args(["bench-worker", "--url", base, "--first-index", &first.to_string()])
            .env("CHINWAG_BENCH_TOKENS", worker_tokens.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a bench worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        workers.push((child, BufReader::new(stdout)));
        first += count;
    }
    let own_tokens: Vec<String> = (0..own).map(&token_for).collect();
    let (mut outcome, clients) = scenarios::idle(base, &own_tokens, 0, None).await?;
    for (_, out) in &mut workers {
        let mut line = String::new();
        out.read_line(&mut line)?;
        let held: usize =
            line.trim().strip_prefix("connected ").and_then(|n| n.parse().ok()).context("worker failed")?;
        outcome.connections += held;
    }
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_bytes();
    outcome.server_rss_before_bytes = before;
    outcome.server_rss_after_bytes = after;
    outcome.bytes_per_connection = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / outcome.connections.max(1) as f64),
        _ => None,
    };
    for client in clients {
        client.close().await;
    }
    for (mut child, _) in workers {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let mut correctness = stats::Correctness::default();
    if outcome.connections != args.connections {
        correctness.lost = (args.connections - outcome.connections) as u64;
    }
    Ok(ScenarioReport {
        name: "idle".into(),
        params: format!(
            "{} authenticated idle connections ({} users, {} per process)",
            args.connections, args.idle_users, args.per_process
        ),
        correctness,
        notes: serde_json::to_value(&outcome)?,
        ..ScenarioReport::default()
    })
}

/// Options of the hidden `chinwag bench-worker` (tokens come in
/// `CHINWAG_BENCH_TOKENS`, comma-separated).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub url: String,
    /// Index of this worker's first connection (chooses source addresses).
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
}

/// Holds idle connections for the main bench process until its stdin closes.
pub async fn worker(args: WorkerArgs) -> Result<()> {
    let tokens: Vec<String> =
        std::env::var("CHINWAG_BENCH_TOKENS").context("CHINWAG_BENCH_TOKENS")?.split(',').map(str::to_owned).collect();
    let (outcome, clients) = scenarios::idle(&args.url, &tokens, args.first_index, None).await?;
    println!("connected {}", outcome.connections);
    std::io::stdout().flush()?;
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    for client in clients {
        client.close().await;
    }
    Ok(())
}
