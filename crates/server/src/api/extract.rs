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
        Json::<T>::from_request(req, state).await.map(|Json(v)| ApiJson(v)).map_err(|e| {
            if crate::error::caused_by::<crate::http::BodyTimeout>(&e) {
                ApiError(WireError::new(
                    chinwag_proto::ErrorCode::RequestTimeout,
                    "the request body did not arrive in time",
                ))
            } else {
                ApiError(WireError::bad_request(e.body_text()))
            }
        })
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

/// The caller's device, from `Authorization: Bearer <token>`; counts
/// against the caller's request rate.
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
        let session = app.chat.authenticate(token).await?;
        app.chat.check_request(session.user_id)?;
        Ok(Auth(session))
    }
}

/// The client's address for per-address limits: the peer's, or, when the
/// peer is a trusted reverse proxy (`trusted_proxies`), the nearest
/// untrusted address in its `X-Forwarded-For`. Entries to the left of
/// that one were written by the client itself and are never believed.
/// An IPv6 client is keyed by its /64 (`slots::address_key`).
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<Arc<App>> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(WireError::internal)?;
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let client = client_ip(peer, forwarded, |ip| app.config.is_trusted_proxy(ip));
        Ok(ClientIp(crate::slots::address_key(client)))
    }
}

/// Walks `X-Forwarded-For` from the right while the hop is trusted.
fn client_ip<'a>(
    peer: std::net::IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: impl Fn(std::net::IpAddr) -> bool,
) -> std::net::IpAddr {
    let mut client = peer;
    if !trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded.flat_map(|header| header.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted(ip) {
                    break;
                }
            }
            // A malformed entry: stop at the last address we could trust.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = |a: IpAddr| a == ip("10.0.0.1") || a == ip("10.0.0.2");
        // Not from a proxy: the header is the client's own words.
        assert_eq!(client_ip(ip("198.51.100.7"), ["203.0.113.9"].into_iter(), trusted), ip("198.51.100.7"));
        // Through two proxies; the leftmost entry was forged by the client.
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["6.6.6.6, 203.0.113.9", "10.0.0.2"].into_iter(), trusted),
            ip("203.0.113.9")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.1"), std::iter::empty(), trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), ["not an address"].into_iter(), trusted), ip("10.0.0.1"));
    }
}
