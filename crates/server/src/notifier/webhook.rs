//! Webhook pushes: a JSON POST signed with HMAC-SHA-256, so the receiver
//! can tell it came from this server and was not altered.

use super::{PushError, PushTarget, Pusher};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex HMAC of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Chinwag-Signature";

/// The signature of a body under a secret.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts notifications to webhook URLs.
pub struct WebhookPusher {
    pub http: reqwest::Client,
    /// Used when a registration brings no secret of its own.
    pub default_secret: Vec<u8>,
}

#[async_trait]
impl Pusher for WebhookPusher {
    async fn push(&self, target: &PushTarget, payload: &[u8]) -> Result<(), PushError> {
        let PushTarget::Webhook { url, secret } = target else {
            return Err(PushError::Gone("not a webhook target".into()));
        };
        let key = secret.as_deref().map_or(self.default_secret.as_slice(), str::as_bytes);
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, sign(key, payload))
            .body(payload.to_vec());
        super::send(request).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
