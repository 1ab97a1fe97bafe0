//! Encryption at rest for channel credentials (access tokens, app secrets, verify tokens):
//! XChaCha20-Poly1305 with a random nonce per value, under one installation key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or write the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a stored secret could not be decrypted (was the secret key changed?)")]
    Decrypt,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub fn from_base64(key: &str) -> Result<SecretBox, SecretError> {
        let bytes = B64.decode(key.trim()).map_err(|_| SecretError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey);
        }
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// The key given in configuration, else the one in `<data_dir>/secret.key`, created on first run
    /// with owner-only permissions.
    pub fn load_or_create(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<SecretBox, SecretError> {
        if let Some(key) = configured {
            return SecretBox::from_base64(key);
        }
        let path = data_dir.join("secret.key");
        let io_err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(key) => SecretBox::from_base64(&key),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io_err)?;
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let encoded = B64.encode(key);
                write_private(&path, &encoded).map_err(io_err)?;
                SecretBox::from_base64(&encoded)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let raw = B64.decode(stored).map_err(|_| SecretError::Decrypt)?;
        if raw.len() < 24 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_plaintext() {
        let dir = std::env::temp_dir().join(format!("atende-secret-{}", std::process::id()));
        let sb = SecretBox::load_or_create(None, &dir).unwrap();
        let sealed = sb.encrypt("EAAG-token");
        assert!(!sealed.contains("EAAG"));
        assert_ne!(sealed, sb.encrypt("EAAG-token"), "nonces differ");
        assert_eq!(sb.decrypt(&sealed).unwrap(), "EAAG-token");
        // the key file is reused on the next start
        let again = SecretBox::load_or_create(None, &dir).unwrap();
        assert_eq!(again.decrypt(&sealed).unwrap(), "EAAG-token");
        let other = SecretBox::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert!(other.decrypt(&sealed).is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
