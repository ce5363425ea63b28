//! The HTTP half of the SDK: accounts, channels and lookups.

use crate::ClientError;
use chinwag_proto::{Channel, DeviceId, ErrorBody, User, UserId, WireError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// A logged-in device.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginSession {
    pub token: String,
    pub device_id: DeviceId,
    pub user: User,
}

/// HTTP calls to one server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

impl Api {
    pub fn new(base_url: &str) -> Self {
        Api { http: reqwest::Client::new(), base: base_url.trim_end_matches('/').to_owned() }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()));
        }
        match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(ErrorEnvelope { error }) => Err(ClientError::Server(WireError {
                code: error.code,
                message: error.message,
                retry_after_ms: error.retry_after_ms,
            })),
            Err(_) => Err(ClientError::Protocol(format!("HTTP {status}"))),
        }
    }

    pub async fn signup(&self, username: &str, password: &str) -> Result<User, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            user: User,
        }
        let body = json!({"username": username, "password": password});
        let answer: Answer = self.call(reqwest::Method::POST, "/v1/users", None, Some(body)).await?;
        Ok(answer.user)
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginSession, ClientError> {
        let body = json!({"username": username, "password": password});
        self.call(reqwest::Method::POST, "/v1/sessions", None, Some(body)).await
    }

    pub async fn user_by_name(&self, token: &str, username: &str) -> Result<User, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            user: User,
        }
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("username", username).finish();
        let path = format!("/v1/users?{query}");
        let answer: Answer = self.call(reqwest::Method::GET, &path, Some(token), None).await?;
        Ok(answer.user)
    }

    /// The direct channel with `other` (created if needed).
    pub async fn direct(&self, token: &str, other: UserId) -> Result<Channel, ClientError> {
        self.channel_call("/v1/channels/direct", token, json!({"user_id": other})).await
    }

    pub async fn group(&self, token: &str, name: &str, members: &[UserId]) -> Result<Channel, ClientError> {
        self.channel_call("/v1/channels", token, json!({"name": name, "member_ids": members})).await
    }

    async fn channel_call(&self, path: &str, token: &str, body: Value) -> Result<Channel, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            channel: Channel,
        }
        let answer: Answer = self.call(reqwest::Method::POST, path, Some(token), Some(body)).await?;
        Ok(answer.channel)
    }

    /// The WebSocket URL of the least-loaded gateway.
    pub async fn discover(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Server {
            ws_url: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            servers: Vec<Server>,
        }
        let answer: Answer = self.call(reqwest::Method::GET, "/v1/discovery", None, None).await?;
        answer
            .servers
            .into_iter()
            .next()
            .map(|s| s.ws_url)
            .ok_or_else(|| ClientError::Protocol("discovery listed no server".into()))
    }

    /// The plain WebSocket URL of this API's own host.
    pub fn ws_url(&self) -> String {
        let base = self.base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        format!("{base}/v1/ws")
    }
}
