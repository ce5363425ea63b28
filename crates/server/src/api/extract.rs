//! Extractors that turn every rejection into the protocol's error shape
//! (axum's own rejections are plain text).

use crate::error::ApiError;
use crate::App;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use chinwag_proto::WireError;
use chinwag_store::Session;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A JSON body; malformed or mistyped → `bad_request`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<App>) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(|e| ApiError(WireError::bad_request(e.body_text())))
    }
}

/// Path parameters; an id that is not a number → `bad_request`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<App>> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<App>) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError(WireError::bad_request(e.body_text())))
    }
}

/// Query parameters; mistyped → `bad_request`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<App>> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<App>) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError(WireError::bad_request(e.body_text())))
    }
}

/// The caller's device, from `Authorization: Bearer <token>`.
pub struct Auth(pub Session);

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn extract_bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let token = extract_bearer(&parts.headers).ok_or_else(WireError::unauthorized)?;
        Ok(Auth(app.authenticate(token).await?))
    }
}
