//! The notifier role: push notifications for members with no connected
//! device, off the message path.
//!
//! A stored message is handed over through a bounded queue; the enqueuer
//! writes one durable outbox entry per recipient device, merging a burst to
//! the same device and channel into one (`push_coalesce_ms`). The deliverer
//! sends due entries through the target's provider, retries failures with
//! exponential backoff and jitter, and unregisters targets that answer 404
//! or 410. Entries survive restarts; a slow or dead endpoint delays only
//! other notifications, never messages.

pub mod addresses;
mod delivery;
pub mod webhook;
pub mod webpush;

use crate::App;
use async_trait::async_trait;
use chinwag_proto::{Message, WireError};
use chinwag_store::PushItem;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long the enqueuer waits at shutdown for sends still finishing.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Where a device wants its notifications (`PUT /v1/devices/current/push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PushTarget {
    /// POST a signed JSON payload to `url`.
    Webhook {
        url: String,
        /// HMAC key for this target; the server makes one when a
        /// registration brings none (the owner reads it back with
        /// `GET /v1/devices/current/push`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// A browser's push subscription.
    Webpush { endpoint: String, keys: WebPushKeys },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    pub p256dh: String,
    pub auth: String,
}

impl PushTarget {
    /// Where requests for this target go.
    pub fn url(&self) -> &str {
        match self {
            PushTarget::Webhook { url, .. } => url,
            PushTarget::Webpush { endpoint, .. } => endpoint,
        }
    }

    /// Gives a webhook without a key one of its own.
    pub fn with_own_secret(mut self) -> PushTarget {
        if let PushTarget::Webhook { secret: secret @ None, .. } = &mut self {
            *secret = Some(webhook::new_secret());
        }
        self
    }

    /// Checks a registration's form before it is stored; the parsed URL.
    pub fn validate(&self) -> Result<reqwest::Url, WireError> {
        match self {
            PushTarget::Webhook { secret, .. } => {
                if secret.as_ref().is_some_and(|s| s.is_empty() || s.len() > 256) {
                    return Err(WireError::bad_request("secret must be 1-256 characters"));
                }
            }
            PushTarget::Webpush { keys, .. } => {
                webpush::parse_keys(&keys.p256dh, &keys.auth).map_err(WireError::bad_request)?;
            }
        }
        let url = self.url();
        let parsed = reqwest::Url::parse(url).map_err(|_| WireError::bad_request("not a valid URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || url.len() > 2048 {
            return Err(WireError::bad_request("push URLs must be http(s) and at most 2048 characters"));
        }
        Ok(parsed)
    }
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The target no longer exists (404/410): unregister it.
    #[error("target gone: {0}")]
    Gone(String),
    /// Worth trying again later.
    #[error("push failed: {0}")]
    Retry(String),
}

/// Sends a provider's request and maps the answer: 2xx is done, 404/410
/// means the target is gone, anything else is retried. (The deliverer
/// bounds the time; see `delivery`.)
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<(), PushError> {
    let response = request.send().await.map_err(|e| PushError::Retry(e.to_string()))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(()),
        404 | 410 => Err(PushError::Gone(status.to_string())),
        _ => Err(PushError::Retry(status.to_string())),
    }
}

/// A push provider.
#[async_trait]
pub trait Pusher: Send + Sync {
    /// Delivers `payload` (the notification's JSON) to `target`.
    async fn push(&self, target: &PushTarget, payload: &[u8]) -> Result<(), PushError>;
}

/// What a notification says (the JSON a webhook receives and a service
/// worker decrypts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub recipient_id: chinwag_proto::UserId,
    pub channel_id: chinwag_proto::ChannelId,
    pub sender_id: chinwag_proto::UserId,
    pub sender_name: String,
    pub message_id: chinwag_proto::MessageId,
    /// The start of the text, cut to `push_preview_chars` characters.
    pub preview: String,
    /// Messages this notification stands for (a burst is one notification).
    #[serde(default)]
    pub count: u32,
}

/// The providers, the queue from the message path, and the deliveries
/// under way.
pub struct Notifier {
    /// Which addresses push requests may reach.
    pub addresses: addresses::AddressPolicy,
    pub webhook: webhook::WebhookPusher,
    pub webpush: webpush::WebPushPusher,
    queue: mpsc::Sender<Message>,
    queued: std::sync::Mutex<Option<mpsc::Receiver<Message>>>,
    deliveries: delivery::Deliveries,
}

impl Notifier {
    /// `legacy_webhook_secret` signs only webhooks registered before each
    /// got a key of its own.
    pub fn new(
        vapid: Arc<webpush::VapidKeys>,
        legacy_webhook_secret: Vec<u8>,
        addresses: addresses::AddressPolicy,
    ) -> Notifier {
        let http = addresses::push_client(addresses);
        let (queue, rx) = mpsc::channel(10_000);
        Notifier {
            addresses,
            webhook: webhook::WebhookPusher { http: http.clone(), legacy_secret: legacy_webhook_secret },
            webpush: webpush::WebPushPusher { http, vapid },
            queue,
            queued: std::sync::Mutex::new(Some(rx)),
            deliveries: delivery::Deliveries::default(),
        }
    }

    fn pusher(&self, target: &PushTarget) -> &dyn Pusher {
        match target {
            PushTarget::Webhook { .. } => &self.webhook,
            PushTarget::Webpush { .. } => &self.webpush,
        }
    }
}

/// Loads the server's webhook signing secret from the data dir, creating it
/// on first start.
pub fn load_or_create_secret(dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join("webhook.secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let secret = hex::encode(rand::random::<[u8; 32]>());
            webpush::write_private(&path, &secret)?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e),
    }
}

impl App {
    /// Hands a stored message to the notifier without waiting for it,
    /// unless every other member is online (then nobody gets a push, and
    /// the common case costs no store read).
    pub(crate) fn message_for_push(&self, message: &Message, members: &[chinwag_proto::UserId]) {
        if members.iter().all(|&m| m == message.sender_id || self.is_online(m)) {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(message)) = self.notifier.queue.try_send(message.clone()) {
            // Overloaded: wait for room on a task of its own, not here.
            let queue = self.notifier.queue.clone();
            tokio::spawn(async move { queue.send(message).await });
        }
    }

    /// Runs the notifier until shutdown.
    pub(crate) async fn run_notifier(self: Arc<Self>) {
        let queued = self.notifier.queued.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut queued) = queued else { return };
        let enqueuer = {
            let app = self.clone();
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        message = queued.recv() => message,
                        _ = app.shutdown.cancelled() => break,
                    };
                    let Some(message) = message else { return };
                    app.queue_notification_or_log(&message).await;
                }
                // Shutting down: messages whose sends are still finishing
                // get a moment to arrive, then everything queued is stored
                // in the outbox, so no push is lost to a clean stop.
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                queued.close();
                while let Some(message) = queued.recv().await {
                    app.queue_notification_or_log(&message).await;
                }
            })
        };
        let mut tick = tokio::time::interval(self.config.push_poll());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                // Queuing happens wherever messages are stored; delivering
                // only where the notifier role runs.
                _ = tick.tick(), if self.config.roles.notifier => self.deliver_due().await,
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE * 20, enqueuer).await.is_err() {
            tracing::warn!("push notifications still being queued at shutdown");
        }
        self.notifier.deliveries.finish().await;
    }

    async fn queue_notification_or_log(&self, message: &Message) {
        if let Err(e) = self.queue_notifications(message).await {
            tracing::warn!(error = %e, "could not queue push notifications");
        }
    }

    /// One outbox entry per device of each member with no connected device.
    async fn queue_notifications(&self, message: &Message) -> Result<(), chinwag_store::StoreError> {
        let recipients: Vec<_> = self
            .store
            .push_recipients(message.channel_id, message.sender_id)
            .await?
            .into_iter()
            .filter(|r| !self.is_online(r.user_id))
            .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let sender_name = self.store.user(message.sender_id).await?.map(|u| u.display_name).unwrap_or_default();
        let preview: String = message.text.chars().take(self.config.push_preview_chars).collect();
        let items = recipients
            .into_iter()
            .map(|r| {
                let note = Notification {
                    recipient_id: r.user_id,
                    channel_id: message.channel_id,
                    sender_id: message.sender_id,
                    sender_name: sender_name.clone(),
                    message_id: message.message_id,
                    preview: preview.clone(),
                    count: 1,
                };
                let payload = serde_json::to_string(&note).unwrap_or_default();
                PushItem { device_id: r.device_id, channel_id: message.channel_id, payload }
            })
            .collect();
        let due = chinwag_proto::now_ms() + self.config.push_coalesce_ms as i64;
        self.store.queue_pushes(items, due).await
    }
}
