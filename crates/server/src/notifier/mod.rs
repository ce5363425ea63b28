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

use crate::metrics::Metrics;
use crate::ServerConfig;
use async_trait::async_trait;
use chinwag_bus::Presence;
use chinwag_proto::{Message, WireError};
use chinwag_store::{PushItem, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the enqueuer waits at shutdown for sends still finishing.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

pub use chinwag_proto::api::{PushTarget, WebPushKeys};

/// Gives a webhook without a key one of its own.
pub fn with_own_secret(mut target: PushTarget) -> PushTarget {
    if let PushTarget::Webhook { secret: secret @ None, .. } = &mut target {
        *secret = Some(webhook::new_secret());
    }
    target
}

/// Checks a registration's form before it is stored; the parsed URL.
pub fn validate_target(target: &PushTarget) -> Result<reqwest::Url, WireError> {
    match target {
        PushTarget::Webhook { secret, .. } => {
            if secret.as_ref().is_some_and(|s| s.is_empty() || s.len() > 256) {
                return Err(WireError::bad_request("secret must be 1-256 characters"));
            }
        }
        PushTarget::Webpush { keys, .. } => {
            webpush::parse_keys(&keys.p256dh, &keys.auth).map_err(WireError::bad_request)?;
        }
    }
    let url = target.url();
    let parsed = reqwest::Url::parse(url).map_err(|_| WireError::bad_request("not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || url.len() > 2048 {
        return Err(WireError::bad_request("push URLs must be http(s) and at most 2048 characters"));
    }
    Ok(parsed)
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

/// The push providers and which addresses they may reach; made by the
/// binary (which keeps the keys in the data directory).
pub struct Providers {
    /// Which addresses push requests may reach.
    pub addresses: addresses::AddressPolicy,
    pub webhook: webhook::WebhookPusher,
    pub webpush: webpush::WebPushPusher,
}

impl Providers {
    /// `legacy_webhook_secret` signs only webhooks registered before each
    /// got a key of its own.
    pub fn new(
        vapid: Arc<webpush::VapidKeys>,
        legacy_webhook_secret: Vec<u8>,
        addresses: addresses::AddressPolicy,
    ) -> Providers {
        let http = addresses::push_client(addresses);
        Providers {
            addresses,
            webhook: webhook::WebhookPusher { http: http.clone(), legacy_secret: legacy_webhook_secret },
            webpush: webpush::WebPushPusher { http, vapid },
        }
    }

    fn pusher(&self, target: &PushTarget) -> &dyn Pusher {
        match target {
            PushTarget::Webhook { .. } => &self.webhook,
            PushTarget::Webpush { .. } => &self.webpush,
        }
    }
}

/// Where the message path hands stored messages to the notifier: a
/// bounded queue, never awaited on the message path.
#[derive(Clone)]
pub struct Handoff(mpsc::Sender<Message>);

impl Handoff {
    /// Queues a message that may need pushes, without waiting.
    pub fn hand_over(&self, message: Message) {
        if let Err(mpsc::error::TrySendError::Full(message)) = self.0.try_send(message) {
            // Overloaded: wait for room on a task of its own, not here.
            let queue = self.0.clone();
            tokio::spawn(async move { queue.send(message).await });
        }
    }
}

/// The notifier service: the enqueuer (queue to outbox) wherever messages
/// are stored, the deliverer (outbox to providers) where the notifier role
/// runs.
pub struct Notifier {
    pub providers: Providers,
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    metrics: Arc<Metrics>,
    config: Arc<ServerConfig>,
    handoff: Handoff,
    queued: std::sync::Mutex<Option<mpsc::Receiver<Message>>>,
    deliveries: delivery::Deliveries,
}

impl Notifier {
    pub fn new(
        providers: Providers,
        store: Arc<dyn Store>,
        presence: Arc<dyn Presence>,
        metrics: Arc<Metrics>,
        config: Arc<ServerConfig>,
    ) -> Notifier {
        let (queue, rx) = mpsc::channel(10_000);
        Notifier {
            providers,
            store,
            presence,
            metrics,
            config,
            handoff: Handoff(queue),
            queued: std::sync::Mutex::new(Some(rx)),
            deliveries: delivery::Deliveries::default(),
        }
    }

    /// The queue the message path hands messages to.
    pub fn handoff(&self) -> Handoff {
        self.handoff.clone()
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

impl Notifier {
    /// Runs the enqueuer, and the deliverer when `deliver`, until
    /// `shutdown`; then stores what is still queued.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken, deliver: bool) {
        let queued = self.queued.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut queued) = queued else { return };
        let enqueuer = {
            let notifier = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        message = queued.recv() => message,
                        _ = shutdown.cancelled() => break,
                    };
                    let Some(message) = message else { return };
                    notifier.queue_notification_or_log(&message).await;
                }
                // Shutting down: messages whose sends are still finishing
                // get a moment to arrive, then everything queued is stored
                // in the outbox, so no push is lost to a clean stop.
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                queued.close();
                while let Some(message) = queued.recv().await {
                    notifier.queue_notification_or_log(&message).await;
                }
            })
        };
        let mut tick = tokio::time::interval(self.config.push_poll());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // Queuing happens wherever messages are stored; delivering
                // only where the notifier role runs.
                _ = tick.tick(), if deliver => self.deliver_due().await,
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE * 20, enqueuer).await.is_err() {
            tracing::warn!("push notifications still being queued at shutdown");
        }
        self.deliveries.finish().await;
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
            .filter(|r| !self.presence.is_online(r.user_id))
            .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let sender_name = self.store.user(message.sender_id).await?.map(|u| u.display_name).unwrap_or_default();
        let preview = preview(message, self.config.push_preview_chars);
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

/// What a notification shows of a message: its text, and what it carries
/// ("📷 Photo", "📎 report.pdf"), within `chars` characters of text.
fn preview(message: &Message, chars: usize) -> String {
    let files = message.attachments.iter().map(|file| {
        if file.width.is_some() {
            "📷 Photo".to_owned()
        } else {
            format!("📎 {}", file.name)
        }
    });
    let text: String = message.text.chars().take(chars).collect();
    let parts: Vec<String> = files.chain((!text.is_empty()).then_some(text)).collect();
    parts.join(" ")
}
