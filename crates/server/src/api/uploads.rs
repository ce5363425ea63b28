//! Uploads and the files they become: `POST /v1/uploads`, `GET
//! /v1/media/{id}` and its thumbnail (the work is in `crate::media`).

use super::{extract_bearer, ApiPath, ApiQuery, Auth};
use crate::error::ApiError;
use crate::media::Variant;
use crate::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chinwag_proto::api::{MediaParams, UploadParams, UploadResponse};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

/// Stores the body as a file of the caller (201 `{upload}`).
pub async fn create(
    State(app): State<Arc<App>>,
    Auth(session): Auth,
    ApiQuery(params): ApiQuery<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse> {
    let upload = app.media.upload(session.user_id, &params.filename, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(UploadResponse { upload })))
}

pub async fn original(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<MediaParams>,
    headers: HeaderMap,
) -> Result<Response> {
    serve(&app, &id, Variant::Original, params, &headers).await
}

pub async fn thumbnail(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<MediaParams>,
    headers: HeaderMap,
) -> Result<Response> {
    serve(&app, &id, Variant::Thumbnail, params, &headers).await
}

/// A signed URL, or a bearer token of someone who may see the file; an
/// unknown or refused token counts as none (404, like any stranger).
async fn serve(app: &App, id: &str, variant: Variant, params: MediaParams, headers: &HeaderMap) -> Result<Response> {
    let viewer = match extract_bearer(headers) {
        Some(token) => app.chat.authenticate(token).await.ok().map(|s| s.user_id),
        None => None,
    };
    let signature = params.expires.zip(params.sig.as_deref());
    Ok(app.media.serve(id, variant, signature, viewer, headers).await?)
}
