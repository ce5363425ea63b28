//! The HTTP half of the SDK: accounts, channels and lookups.

use crate::ClientError;
use chinwag_proto::api::{
    AddReaction, CreateGroup, CreateGroupRequest, DeleteMessage, Discovery, EditMessage, EditMessageRequest, Endpoint,
    FindUser, History, HistoryParams, HistoryResponse, Login, LoginRequest, LoginResponse, Method, NoContent,
    OpenDirect, OpenDirectRequest, RemoveReaction, Signup, SignupRequest, UsernameQuery,
};
use chinwag_proto::{Channel, ChannelId, ErrorBody, Message, MessageId, User, UserId, WireError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A logged-in device.
pub type LoginSession = LoginResponse;

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

    /// Calls endpoint `E` at `path` (its route with parameters filled in).
    async fn call<E: Endpoint>(
        &self,
        path: &str,
        token: Option<&str>,
        request: &E::Request,
    ) -> Result<E::Response, ClientError>
    where
        E::Request: Serialize,
        E::Response: DeserializeOwned,
    {
        let route = E::ROUTE;
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut request_builder = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request_builder = request_builder.bearer_auth(token);
        }
        request_builder = match route.method {
            Method::Get => request_builder.query(request),
            _ => request_builder.json(request),
        };
        answer(request_builder.send().await?).await
    }

    /// Stores a file for sending as an attachment (`send_files`).
    pub async fn upload(
        &self,
        token: &str,
        filename: &str,
        content_type: &str,
        bytes: impl Into<reqwest::Body>,
    ) -> Result<chinwag_proto::Upload, ClientError> {
        let response = self
            .http
            .post(format!("{}{}", self.base, chinwag_proto::api::CreateUpload::ROUTE.path))
            .query(&[("filename", filename)])
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await?;
        Ok(answer::<chinwag_proto::api::UploadResponse>(response).await?.upload)
    }

    /// The bytes behind an attachment's `url` (absolute, or relative to
    /// this API).
    pub async fn fetch_media(&self, url: &str) -> Result<bytes::Bytes, ClientError> {
        let url = if url.starts_with('/') { format!("{}{url}", self.base) } else { url.to_owned() };
        let response = self.http.get(url).send().await?;
        if !response.status().is_success() {
            return Err(ClientError::Protocol(format!("HTTP {}", response.status())));
        }
        Ok(response.bytes().await?)
    }
    pub async fn signup(&self, username: &str, password: &str) -> Result<User, ClientError> {
        let request =
            SignupRequest { username: username.to_owned(), password: password.to_owned(), display_name: None };
        Ok(self.call::<Signup>(Signup::ROUTE.path, None, &request).await?.user)
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginSession, ClientError> {
        let request = LoginRequest { username: username.to_owned(), password: password.to_owned(), device_name: None };
        self.call::<Login>(Login::ROUTE.path, None, &request).await
    }

    pub async fn user_by_name(&self, token: &str, username: &str) -> Result<User, ClientError> {
        let query = UsernameQuery { username: Some(username.to_owned()) };
        Ok(self.call::<FindUser>(FindUser::ROUTE.path, Some(token), &query).await?.user)
    }

    /// The direct channel with `other` (created if needed).
    pub async fn direct(&self, token: &str, other: UserId) -> Result<Channel, ClientError> {
        let request = OpenDirectRequest { user_id: other };
        Ok(self.call::<OpenDirect>(OpenDirect::ROUTE.path, Some(token), &request).await?.channel)
    }

    pub async fn group(&self, token: &str, name: &str, members: &[UserId]) -> Result<Channel, ClientError> {
        let request = CreateGroupRequest { name: name.to_owned(), member_ids: members.to_vec() };
        Ok(self.call::<CreateGroup>(CreateGroup::ROUTE.path, Some(token), &request).await?.channel)
    }

    /// Changes a message's text (its sender only).
    pub async fn edit_message(
        &self,
        token: &str,
        channel: ChannelId,
        message: MessageId,
        text: &str,
    ) -> Result<Message, ClientError> {
        let path = message_path(channel, message);
        let request = EditMessageRequest { text: text.to_owned() };
        Ok(self.call::<EditMessage>(&path, Some(token), &request).await?.message)
    }

    /// Deletes a message for everyone (its sender, or the group's creator).
    pub async fn delete_message(&self, token: &str, channel: ChannelId, message: MessageId) -> Result<(), ClientError> {
        self.call::<DeleteMessage>(&message_path(channel, message), Some(token), &NoContent {}).await.map(|_| ())
    }

    /// Adds (`add`) or removes this user's reaction; repeating it is harmless.
    pub async fn react(
        &self,
        token: &str,
        channel: ChannelId,
        message: MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<(), ClientError> {
        let path = format!(
            "{}/reactions/{}",
            message_path(channel, message),
            percent_encoding::utf8_percent_encode(emoji, percent_encoding::NON_ALPHANUMERIC)
        );
        if add {
            self.call::<AddReaction>(&path, Some(token), &NoContent {}).await.map(|_| ())
        } else {
            self.call::<RemoveReaction>(&path, Some(token), &NoContent {}).await.map(|_| ())
        }
    }

    /// A page of history (`params` says which part).
    pub async fn history(
        &self,
        token: &str,
        channel: ChannelId,
        params: &HistoryParams,
    ) -> Result<HistoryResponse, ClientError> {
        self.call::<History>(&format!("/v1/channels/{channel}/messages"), Some(token), params).await
    }

    /// The WebSocket URLs of the live gateways, least loaded first.
    pub async fn discover(&self) -> Result<Vec<String>, ClientError> {
        let answer = self.call::<Discovery>(Discovery::ROUTE.path, None, &NoContent {}).await?;
        if answer.servers.is_empty() {
            return Err(ClientError::Protocol("discovery listed no server".into()));
        }
        Ok(answer.servers.into_iter().map(|s| s.ws_url).collect())
    }

    /// The plain WebSocket URL of this API's own host.
    pub fn ws_url(&self) -> String {
        let base = self.base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        format!("{base}/v1/ws")
    }
}

fn message_path(channel: ChannelId, message: MessageId) -> String {
    format!("/v1/channels/{channel}/messages/{message}")
}

/// A success body as `T`, or the server's error.
async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status();
    let bytes = response.bytes().await?;
    if status.is_success() {
        // A 204 carries no body: read it as an empty object.
        let body: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        return serde_json::from_slice(body).map_err(|e| ClientError::Protocol(e.to_string()));
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
