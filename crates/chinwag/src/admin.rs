//! `chinwag admin`: operator commands, sent to a running server over the
//! admin socket in its data directory (see `chinwag_server::admin`).

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The admin socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Data directory of the running server.
    #[arg(long, env = "CHINWAG_DATA_DIR", default_value = "./chinwag-data")]
    data_dir: PathBuf,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// List accounts, ascending by id.
    Users {
        /// Start after this user id.
        #[arg(long)]
        after: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Refuse the account's logins, revoke all its tokens, close its sockets.
    Disable { username: String },
    /// Let a disabled account log in again.
    Enable { username: String },
    /// Copy the embedded store to a new file while the server runs.
    Backup { path: PathBuf },
}

pub async fn run(args: AdminArgs) -> Result<()> {
    let socket = args.data_dir.join(SOCKET_NAME);
    let (method, path, body) = match &args.command {
        AdminCommand::Users { after, limit } => {
            let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
            ("GET", format!("/admin/users?limit={limit}{after}"), None)
        }
        AdminCommand::Disable { username } => ("POST", format!("/admin/users/{username}/disable"), None),
        AdminCommand::Enable { username } => ("POST", format!("/admin/users/{username}/enable"), None),
        AdminCommand::Backup { path } => {
            let path = std::path::absolute(path).context("resolving the backup path")?;
            ("POST", "/admin/backup".to_string(), Some(serde_json::json!({ "path": path })))
        }
    };
    let answer = request(&socket, method, &path, body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    match args.command {
        AdminCommand::Users { .. } => print_users(&answer),
        AdminCommand::Disable { .. } => {
            let user = &answer["user"];
            println!(
                "{} (id {}) is disabled; {} tokens revoked, their sockets are being closed",
                user["username"].as_str().unwrap_or("?"),
                user["id"],
                answer["revoked_tokens"]
            );
        }
        AdminCommand::Enable { .. } => {
            let user = &answer["user"];
            println!(
                "{} (id {}) is enabled; it may log in again",
                user["username"].as_str().unwrap_or("?"),
                user["id"]
            );
        }
        AdminCommand::Backup { .. } => {
            println!(
                "backup written to {} ({} bytes in {} ms)",
                answer["path"].as_str().unwrap_or("?"),
                answer["bytes"],
                answer["millis"]
            );
        }
    }
    Ok(())
}

fn print_users(answer: &Value) {
    println!("{:>8}  {:<32} {:<10} {:>7} {:>7}  last active", "id", "username", "status", "devices", "sockets");
    for user in answer["users"].as_array().into_iter().flatten() {
        let status = if user["disabled_at"].is_null() { "active" } else { "disabled" };
        let last = user["last_active_at"].as_i64().map_or_else(|| "never".to_string(), |ms| format!("{ms} (unix ms)"));
        // `Value`'s Display ignores widths: format plain strings.
        let field = |key: &str| user[key].to_string();
        println!(
            "{:>8}  {:<32} {:<10} {:>7} {:>7}  {last}",
            field("id"),
            user["username"].as_str().unwrap_or("?"),
            status,
            field("devices"),
            field("sockets")
        );
    }
    if let Some(next) = answer["next_after"].as_i64() {
        println!("(more: --after {next})");
    }
}

/// One HTTP/1.1 request over the Unix socket; a non-2xx answer becomes the
/// server's error message.
async fn request(socket: &Path, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {} (is the server running on this data dir?)", socket.display()))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("talking to the admin socket")?;
    tokio::spawn(connection);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await.context("sending the admin request")?;
    let status = response.status();
    let bytes = response.into_body().collect().await.context("reading the admin answer")?.to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).context("the admin answer is not JSON")?;
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("{message} ({status})");
    }
    Ok(answer)
}
