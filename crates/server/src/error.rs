//! The one place where failures become HTTP answers. Store faults are logged
//! once here and reach clients only as `internal`, never with their details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chinwag_proto::{ErrorCode, WireError};
use chinwag_store::StoreError;

/// A failed request: the wire error a client sees.
#[derive(Debug)]
pub struct ApiError(pub WireError);

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(store_error(e))
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError(code.into())
    }
}

/// Maps a store failure to what a client may learn of it.
pub fn store_error(e: StoreError) -> WireError {
    match e {
        StoreError::NotFound | StoreError::NotAMember => WireError::not_found("channel or user"),
        StoreError::MessageNotFound => WireError::not_found("message"),
        StoreError::NotAllowed => WireError::new(ErrorCode::Forbidden, "only its sender may change a message"),
        StoreError::TextEmpty => WireError::new(ErrorCode::TextEmpty, "a message without attachments needs text"),
        StoreError::UsernameTaken => WireError::new(ErrorCode::UsernameTaken, "username is taken"),
        StoreError::GroupTooLarge => WireError::new(ErrorCode::GroupTooLarge, "a group has at most 100 members"),
        StoreError::Blocked => WireError::new(ErrorCode::Forbidden, "one of you has blocked the other"),
        StoreError::QuotaExceeded => {
            WireError::new(ErrorCode::TooLarge, "your uploads would exceed your storage quota")
        }
        StoreError::Closed => WireError {
            retry_after_ms: Some(1_000),
            ..WireError::new(ErrorCode::Unavailable, "server is shutting down")
        },
        StoreError::Unavailable(why) => {
            tracing::warn!(%why, "store unavailable");
            WireError {
                retry_after_ms: Some(1_000),
                ..WireError::new(ErrorCode::Unavailable, "storage is briefly unavailable, retry later")
            }
        }
        StoreError::Unsupported(what) => WireError::bad_request(format!("this store does not support {what}")),
        StoreError::Backend(source) => {
            tracing::error!(error = %source, "store failure");
            WireError::internal()
        }
    }
}

/// Like [`store_error`], for calls whose only `NotFound` is a user that
/// does not exist (a member or contact to add).
pub fn user_store_error(e: StoreError) -> WireError {
    match e {
        StoreError::NotFound => WireError::not_found("user"),
        e => store_error(e),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.body() });
        let mut response = (status, Json(body)).into_response();
        if let Some(ms) = self.0.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(value) = secs.to_string().parse() {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Whether `error`, one of its sources, or an `io::Error` among them
/// wraps an `E` (framework errors wrap ours a few layers deep).
pub fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if e.is::<E>() || wrapped.is_some_and(|inner| inner.is::<E>()) {
            return true;
        }
        next = e.source();
    }
    false
}
