//! The operator's API, served on a Unix socket in the data directory (never
//! on the public listener): whoever may open that file (its owner, mode
//! 0600) is the operator, so there is no admin password to leak or rotate.
//! `chinwag admin` is its client.
//!
//! - `GET /admin/users?after=&limit=`: accounts, ascending by id
//! - `POST /admin/users/{username}/disable`: refuses logins, revokes every
//!   token and closes every socket of the account (`revoked_tokens` says
//!   how many)
//! - `POST /admin/users/{username}/enable`
//! - `POST /admin/backup` `{path}`: a consistent copy of the store, taken
//!   while serving

use crate::api::{ApiJson, ApiPath, ApiQuery};
use crate::error::{user_store_error, ApiError};
use crate::App;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chinwag_bus::Event;
use chinwag_proto::{validate, User, UserId, WireError};
use chinwag_store::Account;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

type Result<T> = std::result::Result<T, ApiError>;

/// The routes of the admin socket.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{username}/disable", post(disable))
        .route("/admin/users/{username}/enable", post(enable))
        .route("/admin/backup", post(backup))
        .fallback(|| async { ApiError(WireError::not_found("admin endpoint")) })
        .with_state(app)
}

/// Serves the admin API on `listener` until the server shuts down.
pub async fn serve(listener: tokio::net::UnixListener, app: Arc<App>) -> std::io::Result<()> {
    let shutdown = app.shutdown.clone();
    axum::serve(listener, router(app)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// An account as `chinwag admin users` lists it.
#[derive(Serialize)]
struct AccountView {
    #[serde(flatten)]
    user: User,
    last_active_at: Option<i64>,
    disabled_at: Option<i64>,
    devices: u32,
    /// Open authenticated sockets on this server.
    sockets: usize,
}

impl AccountView {
    fn new(app: &App, account: Account) -> AccountView {
        AccountView {
            sockets: app.bus.local_registry().connections_of(account.user.id),
            user: account.user,
            last_active_at: account.last_active_at,
            disabled_at: account.disabled_at,
            devices: account.live_devices,
        }
    }
}

#[derive(Deserialize)]
struct Listing {
    after: Option<i64>,
    limit: Option<u32>,
}

const LIST_MAX: u32 = 1_000;

async fn list_users(State(app): State<Arc<App>>, ApiQuery(q): ApiQuery<Listing>) -> Result<Json<serde_json::Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, LIST_MAX);
    let accounts = app.store.accounts(q.after.map(UserId), limit).await?;
    let next_after = (accounts.len() == limit as usize).then(|| accounts.last().map(|a| a.user.id)).flatten();
    let users: Vec<AccountView> = accounts.into_iter().map(|a| AccountView::new(&app, a)).collect();
    Ok(Json(json!({ "users": users, "next_after": next_after })))
}

async fn user_named(app: &App, username: &str) -> Result<User> {
    let name = validate::username(username)?;
    app.store.user_by_username(&name).await?.ok_or_else(|| ApiError(WireError::not_found("user")))
}

async fn disable(State(app): State<Arc<App>>, ApiPath(username): ApiPath<String>) -> Result<Json<serde_json::Value>> {
    let user = user_named(&app, &username).await?;
    let revoked = app.store.set_disabled(user.id, true, chinwag_proto::now_ms()).await.map_err(user_store_error)?;
    // Sockets that authenticated before the write close on these; any that
    // were still starting see the account disabled when they load it.
    for &device_id in &revoked {
        app.bus.publish(&[user.id], Event::DeviceRevoked { device_id });
    }
    tracing::info!(user = user.id.0, devices = revoked.len(), "account disabled");
    let mut reply = account_reply(&app, user.id).await?;
    reply["revoked_tokens"] = json!(revoked.len());
    Ok(Json(reply))
}

async fn enable(State(app): State<Arc<App>>, ApiPath(username): ApiPath<String>) -> Result<Json<serde_json::Value>> {
    let user = user_named(&app, &username).await?;
    app.store.set_disabled(user.id, false, chinwag_proto::now_ms()).await.map_err(user_store_error)?;
    tracing::info!(user = user.id.0, "account enabled");
    Ok(Json(account_reply(&app, user.id).await?))
}

async fn account_reply(app: &App, id: UserId) -> Result<serde_json::Value> {
    let account = app.store.account(id).await?.ok_or_else(|| ApiError(WireError::not_found("user")))?;
    Ok(json!({ "user": AccountView::new(app, account) }))
}

#[derive(Deserialize)]
struct BackupRequest {
    path: PathBuf,
}

async fn backup(State(app): State<Arc<App>>, ApiJson(body): ApiJson<BackupRequest>) -> Result<Json<serde_json::Value>> {
    if !body.path.is_absolute() {
        return Err(ApiError(WireError::bad_request("backup path must be absolute")));
    }
    if body.path.exists() {
        return Err(ApiError(WireError::bad_request(format!("{} already exists", body.path.display()))));
    }
    let started = Instant::now();
    let info = app.store.backup(&body.path).await.map_err(|e| match e {
        // The engine has its own tools (PostgreSQL: pg_dump); say so.
        chinwag_store::StoreError::Unsupported(what) => {
            ApiError(WireError::bad_request(format!("this store does not support {what}")))
        }
        e => {
            tracing::error!(error = %e, path = %body.path.display(), "backup failed");
            ApiError(WireError::new(chinwag_proto::ErrorCode::Internal, format!("backup failed: {e}")))
        }
    })?;
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(path = %body.path.display(), bytes = info.bytes, millis, "backup written");
    Ok(Json(json!({ "path": body.path, "bytes": info.bytes, "millis": millis })))
}
