//! Error codes shared by HTTP answers and WebSocket `error` frames, so both
//! transports report the same failure the same way.

use serde::{Deserialize, Serialize};

/// Every error code the server sends. The snake_case name is the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidUsername,
    WeakPassword,
    TextEmpty,
    TextTooLong,
    GroupTooLarge,
    Unauthorized,
    Forbidden,
    NotAMember,
    NotFound,
    UsernameTaken,
    RateLimited,
    FrameTooLarge,
    /// An upload above the size limit or the uploader's quota.
    TooLarge,
    /// An upload whose bytes do not match the declared image type.
    UnsupportedMedia,
    /// A request's body did not arrive within its deadline.
    RequestTimeout,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidUsername
            | ErrorCode::WeakPassword
            | ErrorCode::TextEmpty
            | ErrorCode::TextTooLong
            | ErrorCode::GroupTooLarge => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::NotAMember => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::UsernameTaken => 409,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::FrameTooLarge | ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMedia => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The wire name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::TextEmpty => "text_empty",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::GroupTooLarge => "group_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMedia => "unsupported_media",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A protocol-level failure: a code, a human message, and for `rate_limited`
/// how long to wait. Converted to HTTP or WebSocket form at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into(), retry_after_ms: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing, unknown or revoked token")
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal server error")
    }

    pub fn rate_limited(retry_after_ms: u64) -> Self {
        WireError {
            code: ErrorCode::RateLimited,
            message: "too many requests, slow down".into(),
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// The object inside an HTTP error answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message.clone(), retry_after_ms: self.retry_after_ms }
    }
}

/// `{"code", "message", "retry_after_ms"?}`: the inner object of an HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}
