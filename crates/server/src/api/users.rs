//! Accounts and sessions: signup, login, logout, profiles.

use super::{ApiJson, ApiPath, ApiQuery, Auth, ClientIp};
use crate::auth;
use crate::error::ApiError;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chinwag_bus::Event;
use chinwag_proto::api::{LoginRequest, LoginResponse, ProfilePatch, SignupRequest, UserResponse, UsernameQuery};
use chinwag_proto::{validate, DeviceId, User, UserId, WireError};
use chinwag_store::{NewDevice, NewUser};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

pub async fn signup(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<impl IntoResponse> {
    app.api.check_signup(ip).await?;
    let username = validate::username(&body.username)?;
    validate::password(&body.password, &username)?;
    let display_name = validate::display_name(body.display_name.as_deref().unwrap_or(&username))?;
    let password_hash = auth::hash_password(body.password).await?;
    let user = app
        .store
        .create_user(NewUser { username, display_name, password_hash, created_at: chinwag_proto::now_ms() })
        .await?;
    Ok((StatusCode::CREATED, Json(UserResponse { user })))
}

pub async fn login(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse> {
    app.api.check_login(ip, &body.username).await?;
    if let Some(name) = &body.device_name {
        validate::device_name(name)?;
    }
    let bad_login = || ApiError(WireError::new(chinwag_proto::ErrorCode::Unauthorized, "wrong username or password"));
    let found = match validate::username(&body.username) {
        Ok(name) => app.store.credentials(&name).await?,
        Err(_) => None,
    };
    let Some(credentials) = found else {
        // Spend the same time as a real check, so timing does not reveal
        // which usernames exist.
        auth::hash_password(body.password).await?;
        return Err(bad_login());
    };
    if !auth::verify_password(body.password, credentials.password_hash).await {
        return Err(bad_login());
    }
    app.api.login_succeeded(ip, &body.username);
    // Told only to whoever knows the password.
    if credentials.disabled {
        return Err(ApiError(WireError::new(chinwag_proto::ErrorCode::Forbidden, "this account is disabled")));
    }
    let token = auth::new_token();
    let device_id = app
        .store
        .create_device(NewDevice {
            user_id: credentials.user.id,
            name: body.device_name,
            token_hash: auth::token_hash(&token),
            created_at: chinwag_proto::now_ms(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(LoginResponse { token, device_id, user: credentials.user })))
}

/// Revokes the token at once and closes its sockets.
pub async fn logout(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<StatusCode> {
    revoke(&app, session.user_id, session.device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn revoke(app: &App, user: UserId, device: DeviceId) -> Result<()> {
    app.store.revoke_device(device).await?;
    app.bus.publish(&[user], Event::DeviceRevoked { device_id: device });
    Ok(())
}

async fn user_or_404(app: &App, id: UserId) -> Result<User> {
    app.store.user(id).await?.ok_or_else(|| ApiError(WireError::not_found("user")))
}

pub async fn me(State(app): State<Arc<App>>, Auth(session): Auth) -> Result<Json<UserResponse>> {
    let user = user_or_404(&app, session.user_id).await?;
    Ok(Json(UserResponse { user }))
}

pub async fn update_me(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> Result<Json<UserResponse>> {
    let display_name = validate::display_name(&body.display_name)?;
    let user = app.store.update_display_name(session.user_id, &display_name).await?;
    Ok(Json(UserResponse { user }))
}

pub async fn by_id(
    State(app): State<Arc<App>>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<UserResponse>> {
    let user = user_or_404(&app, UserId(id)).await?;
    Ok(Json(UserResponse { user }))
}

pub async fn find_by_username(
    State(app): State<Arc<App>>,
    Auth(_): Auth,
    ApiQuery(query): ApiQuery<UsernameQuery>,
) -> Result<Json<UserResponse>> {
    let name =
        query.username.ok_or_else(|| ApiError(WireError::bad_request("query parameter `username` is required")))?;
    let user = app.store.user_by_username(&name).await?.ok_or_else(|| ApiError(WireError::not_found("user")))?;
    Ok(Json(UserResponse { user }))
}
