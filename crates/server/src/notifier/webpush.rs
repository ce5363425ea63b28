//! Web Push: payload encryption (RFC 8291, `aes128gcm` of RFC 8188) and
//! VAPID (RFC 8292) with the server's P-256 key, kept in the data dir.

use super::{PushError, PushTarget, Pusher};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;
use std::path::Path;

/// Record size written in the header; one record carries the whole payload.
const RECORD_SIZE: u32 = 4096;

/// Decoded subscription keys of a browser (`keys.p256dh`, `keys.auth`).
pub struct UaKeys {
    pub public: PublicKey,
    pub auth: [u8; 16],
}

/// Checks and decodes `p256dh` (a 65-byte uncompressed P-256 point) and
/// `auth` (16 bytes), both base64url.
pub fn parse_keys(p256dh: &str, auth: &str) -> Result<UaKeys, String> {
    let point = B64.decode(p256dh.trim_end_matches('=')).map_err(|_| "keys.p256dh is not base64url")?;
    if point.len() != 65 {
        return Err("keys.p256dh must be a 65-byte uncompressed point".into());
    }
    let public = PublicKey::from_sec1_bytes(&point).map_err(|_| "keys.p256dh is not a P-256 point")?;
    let auth: [u8; 16] = B64
        .decode(auth.trim_end_matches('='))
        .ok()
        .and_then(|a| a.try_into().ok())
        .ok_or("keys.auth must be 16 bytes of base64url")?;
    Ok(UaKeys { public, auth })
}

/// Encrypts `plaintext` for a browser (RFC 8291 §3.4) with the given salt
/// and ephemeral key: the body of the push request.
pub fn encrypt_with(plaintext: &[u8], ua: &UaKeys, salt: &[u8; 16], ephemeral: &SecretKey) -> Vec<u8> {
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let ua_public = ua.public.to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), ua.public.as_affine());
    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32)
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&ua.auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    // CEK and nonce from the salt (RFC 8188 §2.2, 2.3).
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).expect("16 bytes is a valid length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).expect("12 bytes is a valid length");
    // One record: the plaintext and the 0x02 delimiter of a last record.
    let mut record = plaintext.to_vec();
    record.push(2);
    let ciphertext = Aes128Gcm::new(&cek.into())
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .expect("AES-GCM encryption of a bounded record cannot fail");
    let mut body = Vec::with_capacity(86 + ciphertext.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&ciphertext);
    body
}

/// Encrypts with a fresh salt and ephemeral key (the normal case).
pub fn encrypt(plaintext: &[u8], ua: &UaKeys) -> Vec<u8> {
    let salt: [u8; 16] = rand::random();
    let ephemeral = SecretKey::random(&mut rand::rngs::OsRng);
    encrypt_with(plaintext, ua, &salt, &ephemeral)
}

/// The server's VAPID identity.
pub struct VapidKeys {
    signing: SigningKey,
    /// Uncompressed public point, base64url: what browsers subscribe with.
    pub public_b64: String,
    /// `sub` claim: how a push service can reach the operator.
    pub subject: String,
}

impl VapidKeys {
    /// Loads `vapid.key` from the data dir, creating it on first start.
    pub fn load_or_create(dir: &Path, subject: &str) -> std::io::Result<VapidKeys> {
        let path = dir.join("vapid.key");
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => B64
                .decode(text.trim())
                .ok()
                .and_then(|bytes| SecretKey::from_slice(&bytes).ok())
                .ok_or_else(|| std::io::Error::other(format!("{} is not a VAPID key", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let secret = SecretKey::random(&mut rand::rngs::OsRng);
                write_private(&path, &B64.encode(secret.to_bytes()))?;
                secret
            }
            Err(e) => return Err(e),
        };
        Ok(Self::from_secret(secret, subject))
    }

    /// The keys from a private key in the text form of `vapid.key` (as the
    /// store shares it between nodes).
    pub fn from_text(text: &str, subject: &str) -> std::io::Result<VapidKeys> {
        let secret = B64
            .decode(text.trim())
            .ok()
            .and_then(|bytes| SecretKey::from_slice(&bytes).ok())
            .ok_or_else(|| std::io::Error::other("not a VAPID key"))?;
        Ok(Self::from_secret(secret, subject))
    }

    pub fn from_secret(secret: SecretKey, subject: &str) -> VapidKeys {
        let public_b64 = B64.encode(secret.public_key().to_encoded_point(false).as_bytes());
        VapidKeys { signing: SigningKey::from(secret), public_b64, subject: subject.to_owned() }
    }

    /// `Authorization: vapid t=<ES256 JWT>, k=<public key>` for an endpoint.
    pub fn authorization(&self, endpoint: &reqwest::Url) -> String {
        let audience = endpoint.origin().ascii_serialization();
        let expires = chinwag_proto::now_ms() / 1000 + 12 * 3600;
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": self.subject });
        let signed = format!("{header}.{}", B64.encode(claims.to_string()));
        let signature: Signature = self.signing.sign(signed.as_bytes());
        format!("vapid t={signed}.{}, k={}", B64.encode(signature.to_bytes()), self.public_b64)
    }
}

/// Writes a secret file readable by its owner only.
pub(super) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

/// Sends Web Push messages (RFC 8030) with VAPID.
pub struct WebPushPusher {
    pub http: reqwest::Client,
    pub vapid: std::sync::Arc<VapidKeys>,
}

#[async_trait]
impl Pusher for WebPushPusher {
    async fn push(&self, target: &PushTarget, payload: &[u8]) -> Result<(), PushError> {
        let PushTarget::Webpush { endpoint, keys } = target else {
            return Err(PushError::Gone("not a Web Push target".into()));
        };
        let url = reqwest::Url::parse(endpoint).map_err(|e| PushError::Gone(e.to_string()))?;
        let ua = parse_keys(&keys.p256dh, &keys.auth).map_err(PushError::Gone)?;
        let request = self
            .http
            .post(url.clone())
            .header("Authorization", self.vapid.authorization(&url))
            .header("TTL", "86400")
            .header("Urgency", "normal")
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .body(encrypt(payload, &ua));
        super::send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// RFC 8291 Appendix A: fixed keys and salt give exactly this body.
    #[test]
    fn reproduces_the_rfc_8291_example() {
        let ua = parse_keys(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let ephemeral = SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        let body = encrypt_with(b"When I grow up, I want to be a watermelon", &ua, &salt, &ephemeral);
        assert_eq!(
            B64.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(parse_keys("AAAA", "BTBZMqHH6r4Tts7J_aSIgg").is_err());
        assert!(parse_keys(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "short"
        )
        .is_err());
    }

    #[test]
    fn vapid_keys_persist() {
        let dir = tempdir();
        let first = VapidKeys::load_or_create(&dir, "mailto:ops@example.com").unwrap();
        let again = VapidKeys::load_or_create(&dir, "mailto:ops@example.com").unwrap();
        assert_eq!(first.public_b64, again.public_b64);
        let auth = first.authorization(&reqwest::Url::parse("https://push.example.com/abc").unwrap());
        assert!(auth.starts_with("vapid t=") && auth.ends_with(&format!("k={}", first.public_b64)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("chinwag-vapid-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
