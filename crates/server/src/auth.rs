//! Passwords and tokens. Passwords are argon2id hashes; tokens are 256-bit
//! random values of which only the SHA-256 is stored (a high-entropy token
//! needs no slow hash, and a stolen database reveals no usable token).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chinwag_proto::WireError;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Password hashes computed at once: one per core. Each takes ~19 MiB and
/// a core for tens of milliseconds, so more at once only queues in the
/// kernel and multiplies memory (and a signup flood would exhaust both).
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Hashes a password off the async runtime (argon2 is deliberately slow).
pub async fn hash_password(password: String) -> Result<String, WireError> {
    let _slot = hashing_slots().acquire().await.map_err(|_| WireError::internal())?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|_| WireError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        WireError::internal()
    })
}

/// Checks a password against a stored hash, off the async runtime.
pub async fn verify_password(password: String, hash: String) -> bool {
    let Ok(_slot) = hashing_slots().acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A fresh token for a device: 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_and_tokens_differ() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), hash.clone()).await);
        assert!(!verify_password("wrong horse".into(), hash).await);
        assert!(!verify_password("x".into(), "garbage".into()).await);
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 32);
    }
}
