//! Webhook pushes: a JSON POST signed with HMAC-SHA-256 under the
//! target's own key, so the receiver can tell it came from this server,
//! for this target, and was not altered. The MAC covers a timestamp sent
//! beside it, so a receiver that refuses old timestamps (five minutes is
//! the usual window) cannot be fed a recorded request again.

use super::{PushError, PushTarget, Pusher};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex HMAC of "<timestamp>.<raw body>">`.
pub const SIGNATURE_HEADER: &str = "X-Chinwag-Signature";
/// Header carrying the time of sending, in ms since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Chinwag-Timestamp";

/// The signature of a body sent at `timestamp_ms` under a secret.
pub fn sign(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh per-target key, for registrations that bring none.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Posts notifications to webhook URLs.
pub struct WebhookPusher {
    pub http: reqwest::Client,
    /// Signs targets registered before every target had a key of its own.
    pub legacy_secret: Vec<u8>,
}

#[async_trait]
impl Pusher for WebhookPusher {
    async fn push(&self, target: &PushTarget, payload: &[u8]) -> Result<(), PushError> {
        let PushTarget::Webhook { url, secret } = target else {
            return Err(PushError::Gone("not a webhook target".into()));
        };
        let key = secret.as_deref().map_or(self.legacy_secret.as_slice(), str::as_bytes);
        let now = chinwag_proto::now_ms();
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, sign(key, now, payload))
            .body(payload.to_vec());
        super::send(request).await
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};

    #[test]
    fn signature_covers_the_timestamp_and_the_body() {
        // RFC 4231 test case 2, with the data split as "<timestamp>.<body>".
        assert_eq!(super::sign(b"Jefe", 1234, b"what do ya want for nothing?"), {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"1234.what do ya want for nothing?");
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        });
        assert_ne!(super::sign(b"Jefe", 1234, b"x"), super::sign(b"Jefe", 1235, b"x"));
    }
}
