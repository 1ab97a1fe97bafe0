//! Password hashing (Argon2id) and random tokens. Hashing is CPU-heavy, so async callers run it on
//! the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Argon2 takes ~19 MiB and a core for tens of milliseconds per call: a burst of logins must
/// queue here rather than run hundreds at once (memory) on the blocking pool.
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

pub async fn hash_password_async(password: String) -> anyhow::Result<String> {
    let _slot = ARGON2_SLOTS.acquire().await?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

pub async fn verify_password_async(password: String, hash: String) -> bool {
    let Ok(_slot) = ARGON2_SLOTS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Checks `password` against a real user's hash, or against a fixed dummy hash when there is no
/// such (active) user, so that both answers take the time of one Argon2 verification and the
/// timing does not tell which e-mails exist.
pub async fn verify_or_dummy(password: String, hash: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let real = hash.is_some();
    let hash = match hash {
        Some(h) => h,
        None => tokio::task::spawn_blocking(|| {
            DUMMY
                .get_or_init(|| hash_password(&random_token()).unwrap_or_default())
                .clone()
        })
        .await
        .unwrap_or_default(),
    };
    verify_password_async(password, hash).await && real
}

/// A URL-safe random token with 256 bits of entropy.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Tokens are stored as their SHA-256: they are already high-entropy, so a slow hash adds nothing.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(random_token(), random_token());
    }
}
