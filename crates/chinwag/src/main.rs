//! The `chinwag` binary: wires the backends to the roles and runs them.

mod admin;
mod cluster;
mod settings;

use anyhow::{Context, Result};
use chinwag_bus::nats::{LocalNats, NatsCluster, NatsOptions};
use chinwag_bus::{LocalBus, LocalDiscovery, LocalPresence, LocalRateLimiter};
use chinwag_server::metrics::{CommitMetrics, Metrics};
use chinwag_server::notifier::{self, webpush::VapidKeys};
use chinwag_server::{tls, App, Backends, Listening};
use chinwag_store::postgres::{LocalPostgres, PgConfig, PgStore};
use chinwag_store::sqlite::{SqliteConfig, SqliteStore};
use clap::{Parser, Subcommand};
use settings::Settings;
use std::path::PathBuf;
use std::sync::Arc;

/// A chat server: 1-on-1 and group chat, presence, history kept forever.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start; boxing would only obscure the flags")]
enum Command {
    /// Run the server (every role, embedded store).
    Serve {
        /// A TOML file with the same keys as the flags.
        #[arg(long, env = "CHINWAG_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Operator commands for a running server (users, disable, backup).
    Admin(admin::AdminArgs),
    /// Measure speed, memory per connection and correctness.
    Bench {
        #[command(flatten)]
        args: chinwag_bench::BenchArgs,
        /// Run the server under test on a private PostgreSQL (started in a
        /// temp directory, fsync on) instead of the embedded store.
        #[arg(long, conflicts_with = "url")]
        private_postgres: bool,
        /// Also run `direct` and `group` through a cluster (an api node, two
        /// gateways, a presence node) on a private PostgreSQL and three
        /// NATS servers. The single node then runs on that PostgreSQL too.
        #[arg(long, conflicts_with = "url")]
        cluster: bool,
    },
    /// Start a whole cluster on this machine to try cluster mode (PostgreSQL, 3 NATS servers, SeaweedFS, 2 api nodes, 3 gateways, presence, notifier).
    Cluster(cluster::ClusterArgs),
    /// Print the README's table of settings (made from their declarations).
    #[command(hide = true)]
    SettingsTable,
    /// (internal) Hold idle connections for `bench`.
    #[command(hide = true)]
    BenchWorker(chinwag_bench::WorkerArgs),
}

fn main() -> Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        // A log that cannot be written (its pipe or journal stream died)
        // is dropped: reporting that on the same dead stderr would panic
        // the task that logged, and SIGTERM would then stop nothing.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    raise_fd_limit();
    return_large_buffers_to_the_os();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Bench { mut args, private_postgres, cluster } => {
            let exe = std::env::current_exe().context("locating the chinwag binary")?;
            // Kept alive for the whole run, stopped on drop.
            let postgres = if private_postgres || cluster {
                let postgres = LocalPostgres::start(true).context("starting a private PostgreSQL")?;
                let url = postgres.create_database("bench").context("creating the bench database")?;
                args.server_arg.extend(["--store".to_owned(), url]);
                Some(postgres)
            } else {
                None
            };
            let _nats = match (&postgres, cluster) {
                (Some(postgres), true) => {
                    let nats = LocalNats::start(3).context("starting NATS")?;
                    let store_url = postgres.create_database("bench_cluster").context("creating a database")?;
                    args.cluster = Some(chinwag_bench::ClusterBackends { store_url, bus_urls: nats.urls() });
                    Some(nats)
                }
                _ => None,
            };
            runtime.block_on(chinwag_bench::run(args, &exe)).map(|_| ())
        }
        Command::BenchWorker(args) => runtime.block_on(chinwag_bench::worker(args)),
        Command::Admin(args) => runtime.block_on(admin::run(args)),
        Command::Cluster(args) => runtime.block_on(cluster::run(args)),
        Command::SettingsTable => {
            print!("{}", settings::settings_table());
            Ok(())
        }
        Command::Serve { config, settings } => {
            let settings = match config {
                Some(path) => settings.or_file(&path)?,
                None => settings,
            };
            runtime.block_on(serve(settings))
        }
    }
}

/// glibc raises its mmap threshold after the first large free, after which
/// multi-megabyte buffers (argon2 takes 19 MiB per hash) are carved from
/// per-thread arenas and never given back. A fixed threshold keeps them
/// mmapped, so they return to the OS when freed.
#[allow(unsafe_code, reason = "mallopt has no safe wrapper; it only sets an allocator tunable")]
fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Everything the server writes (database, keys, backups, the admin
/// socket) is its owner's alone, whatever umask it was started with:
/// the data directory holds every message and password hash.
fn keep_files_private() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Many sockets need many descriptors: lift the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, "could not raise the open file limit");
            }
        }
    }
}

async fn serve(settings: Settings) -> Result<()> {
    let mut config = settings.server_config()?;
    let data_dir = settings.data_dir();
    let node = settings.node_name.clone().unwrap_or_else(|| format!("node-{:08x}", rand::random::<u32>()));
    if !chinwag_bus::nats::valid_node_name(&node) {
        anyhow::bail!("node_name: use letters, digits, '-' and '_' (at most 64)");
    }
    if settings.bus.is_some() && settings.store.is_none() {
        anyhow::bail!("bus: the nodes of a cluster share one store: give --store postgres://...");
    }
    keep_files_private();
    let tls = match settings.tls()? {
        Some((cert, key)) => Some(tls::server_config(cert, key).context("loading the TLS certificate")?),
        None => None,
    };
    let admin_listener = bind_admin_socket(&data_dir).await?;
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn chinwag_store::Store> = match &settings.store {
        Some(url) => Arc::new(connect_postgres(&PgConfig::new(url), &metrics).await?),
        None => Arc::new(
            SqliteStore::open_observed(
                &SqliteConfig::in_dir(&data_dir),
                Some(Box::new(CommitMetrics(metrics.clone()))),
            )
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
        ),
    };
    let tcp = tokio::net::TcpListener::bind(settings.listen())
        .await
        .with_context(|| format!("listening on {}", settings.listen()))?;
    let listener = match tls {
        Some(tls) => Listening::Tls(tls::TlsListener::new(tcp, tls)?),
        None => Listening::Plain(tcp),
    };
    let addr = listener.local_addr()?;
    let metrics_listener = match settings.metrics_listen {
        Some(at) => {
            let metrics =
                tokio::net::TcpListener::bind(at).await.with_context(|| format!("listening on {at} for metrics"))?;
            Some(metrics)
        }
        None => None,
    };
    let scheme = if config.tls { "https" } else { "http" };
    if settings.bus.is_some() && config.roles.gateway && config.public_ws_url.is_none() {
        // Discovery hands this URL to clients: a specific address is one.
        anyhow::ensure!(
            !addr.ip().is_unspecified(),
            "public_ws_url: a gateway in a cluster listening on {addr} needs --public-ws-url (what clients connect to)"
        );
        let ws = if config.tls { "wss" } else { "ws" };
        config.public_ws_url = Some(format!("{ws}://{addr}/v1/ws"));
    }
    let (vapid, webhook_secret) = shared_push_secrets(&*store, &data_dir, &config.vapid_subject).await?;
    let objects: Arc<dyn chinwag_media::ObjectStore> = match &settings.media_store {
        Some(url) => Arc::new(chinwag_media::s3::connect(url, None).context("media_store")?),
        None => {
            if settings.bus.is_some() {
                tracing::warn!("media files are kept per node: give every node one --media-store s3://... ");
            }
            Arc::new(chinwag_media::fs::open(&data_dir.join("media")).context("opening the media directory")?)
        }
    };
    let media_key = store
        .shared_secret("media_url_key", &hex::encode(rand::random::<[u8; 32]>()))
        .await
        .context("reading the media signing key")?;
    let media_key = hex::decode(media_key).context("the stored media signing key")?;
    // Media URLs in messages are absolute where the address clients use
    // is known: a single node on a specific address, not behind a proxy.
    let reachable_as_listening = config.trusted_proxies.is_empty() && !addr.ip().is_unspecified();
    if config.public_url.is_none() && settings.bus.is_none() && reachable_as_listening {
        config.public_url = Some(format!("{scheme}://{addr}"));
    }
    let local_limits: Arc<dyn chinwag_bus::RateLimiter> = Arc::new(LocalRateLimiter::default());
    let cluster = match &settings.bus {
        Some(urls) => {
            let options = NatsOptions {
                node: node.clone(),
                lease_ttl: chinwag_server::DISCOVERY_TTL,
                offline_grace: config.presence_offline_grace(),
                lead_presence: config.roles.presence,
            };
            Some(NatsCluster::connect(urls, options).await.context("joining the cluster over NATS")?)
        }
        None => None,
    };
    // The seams a cluster shares go through NATS; one process keeps them.
    let (bus, discovery, presence, account_limits): SharedSeams = match &cluster {
        Some(cluster) => (
            Arc::new(cluster.bus()),
            Arc::new(cluster.discovery()),
            Arc::new(cluster.presence()),
            Arc::new(cluster.rate_limiter(local_limits)),
        ),
        None => (
            Arc::new(LocalBus::new()),
            Arc::new(LocalDiscovery::new(chinwag_server::DISCOVERY_TTL)),
            Arc::new(LocalPresence::new(config.presence_offline_grace())),
            local_limits,
        ),
    };
    let push = notifier::Providers::new(
        Arc::new(vapid),
        webhook_secret,
        notifier::addresses::AddressPolicy { allow_private: config.push_private_targets },
    );
    let backends = Backends {
        store,
        bus,
        discovery,
        presence,
        account_limits,
        metrics,
        push,
        node: node.clone(),
        objects,
        media_key,
    };
    let app = App::new(backends, config);
    tokio::spawn(stop_on_signal(app.clone()));
    let admin = tokio::spawn(chinwag_server::admin::serve(admin_listener, app.clone()));
    // Scripts and tests read this line to learn the address (a closed
    // stdout is no reason to stop serving).
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "chinwag listening on {scheme}://{addr}").and_then(|()| out.flush());
    }
    if let Some(metrics) = metrics_listener {
        let at = metrics.local_addr()?;
        tracing::info!(%at, "serving /metrics on its own listener");
        tokio::spawn(chinwag_server::serve_metrics(metrics, app.clone()));
    }
    tracing::info!(%addr, %node, data_dir = %data_dir.display(), "serving");
    chinwag_server::serve(listener, app.clone()).await;
    let _ = admin.await;
    let _ = std::fs::remove_file(data_dir.join(admin::SOCKET_NAME));
    if let Some(cluster) = &cluster {
        // This node's users are offline now, not a lease later.
        cluster.close(std::time::Duration::from_secs(3)).await;
    }
    app.store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The seams the nodes of a cluster share: bus, discovery, presence and
/// the account limits.
type SharedSeams = (
    Arc<dyn chinwag_bus::Bus>,
    Arc<dyn chinwag_bus::Discovery>,
    Arc<dyn chinwag_bus::Presence>,
    Arc<dyn chinwag_bus::RateLimiter>,
);

/// The push keys every node must share: this node's files (made on first
/// start) offer them, and the store keeps the first node's, so pushes from
/// any node of a cluster verify with one public key.
async fn shared_push_secrets(
    store: &dyn chinwag_store::Store,
    data_dir: &std::path::Path,
    subject: &str,
) -> Result<(VapidKeys, Vec<u8>)> {
    VapidKeys::load_or_create(data_dir, subject).context("loading the VAPID key")?;
    let local_vapid = std::fs::read_to_string(data_dir.join("vapid.key")).context("reading the VAPID key")?;
    let local_webhook = notifier::load_or_create_secret(data_dir).context("loading the webhook secret")?;
    let local_webhook = String::from_utf8(local_webhook).context("reading the webhook secret")?;
    let vapid = store.shared_secret("vapid.key", local_vapid.trim()).await.context("sharing the VAPID key")?;
    let webhook = store.shared_secret("webhook.secret", &local_webhook).await.context("sharing the webhook secret")?;
    Ok((VapidKeys::from_text(&vapid, subject).context("the shared VAPID key")?, webhook.into_bytes()))
}

/// Connects to PostgreSQL, waiting up to 30 s for a server that is not up
/// yet (nodes and database often start together).
async fn connect_postgres(config: &PgConfig, metrics: &Arc<Metrics>) -> Result<PgStore> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match PgStore::connect(config, Some(Box::new(CommitMetrics(metrics.clone())))).await {
            Ok(store) => return Ok(store),
            Err(chinwag_store::StoreError::Unavailable(why)) if std::time::Instant::now() < deadline => {
                tracing::warn!(%why, "waiting for PostgreSQL");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("connecting to PostgreSQL"),
        }
    }
}

/// The operator's socket in the data directory, readable by its owner
/// only. A socket file that answers belongs to a server already running on
/// this data directory (two would corrupt nothing, SQLite locks, but would
/// split the users between them): refuse to start. One that does not
/// answer is left over from a crash and replaced.
async fn bind_admin_socket(data_dir: &std::path::Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(admin::SOCKET_NAME);
    if tokio::net::UnixStream::connect(&path).await.is_ok() {
        anyhow::bail!("another chinwag is serving {} already", data_dir.display());
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the stale {}", path.display()));
        }
        _ => {}
    }
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", data_dir.display()))?;
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("binding the admin socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// SIGTERM or Ctrl-C starts a clean shutdown.
async fn stop_on_signal(app: Arc<App>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Stop first: nothing that happens while telling it may keep us up.
    app.shutdown.cancel();
    tracing::info!("shutting down");
}
