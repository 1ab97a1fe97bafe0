//! The `X-Hub-Signature-256` header Meta puts on every webhook POST.
//!
//! The MAC covers the raw body bytes: verify before parsing, and never over a
//! re-serialized body (Meta escapes non-ASCII as `\uXXXX`, re-encoding would differ).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

fn keyed(app_secret: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long keys are hashed, short ones
    // padded), so the only error `new_from_slice` can report never happens here.
    HmacSha256::new_from_slice(app_secret).expect("HMAC accepts keys of any length")
}

/// `"sha256=<lowercase hex of HMAC-SHA256(app_secret, body)>"`, the header value Meta
/// would send for `body`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = keyed(app_secret);
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Parses the `X-Hub-Signature-256` header value and compares it with the expected MAC
/// in constant time. Any malformed header is simply a mismatch.
pub fn verify(app_secret: &[u8], body: &[u8], header_value: &str) -> bool {
    let Some(hex_mac) = header_value.trim().strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(claimed) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = keyed(app_secret);
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret-123";
    // Real webhook bodies escape emojis, which is why we sign raw bytes.
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"text":{"body":"Ol\u00e1 \ud83d\ude2e"}}]}}]}]}"#;

    #[test]
    fn roundtrip() {
        let header = sign(SECRET, BODY);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert_eq!(header, header.to_lowercase());
        assert!(verify(SECRET, BODY, &header));
    }

    #[test]
    fn matches_rfc4231_vectors() {
        // Test case 2 (short key) and test case 6 (key longer than the block size).
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn empty_secret_and_body_still_sign() {
        let header = sign(b"", b"");
        assert!(verify(b"", b"", &header));
    }

    #[test]
    fn wrong_secret_fails() {
        let header = sign(SECRET, BODY);
        assert!(!verify(b"another-secret", BODY, &header));
    }

    #[test]
    fn tampered_body_fails() {
        let header = sign(SECRET, BODY);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert!(!verify(SECRET, &tampered, &header));
        assert!(!verify(SECRET, &BODY[..BODY.len() - 1], &header));
    }

    #[test]
    fn uppercase_hex_and_surrounding_whitespace_are_accepted() {
        let header = sign(SECRET, BODY);
        let upper = format!("sha256={}", header["sha256=".len()..].to_uppercase());
        assert!(verify(SECRET, BODY, &upper));
        assert!(verify(SECRET, BODY, &format!(" {header}\t")));
    }

    #[test]
    fn malformed_headers_fail() {
        let header = sign(SECRET, BODY);
        let hex_part = &header["sha256=".len()..];
        for bad in [
            "",
            "sha256=",
            hex_part,
            &format!("sha1={hex_part}"),
            &format!("SHA256={hex_part}"),
            &format!("sha256={}", &hex_part[..63]),
            &format!("sha256={}", &hex_part[..62]),
            &format!("sha256={}zz", &hex_part[..62]),
            &format!("sha256={hex_part}00"),
            "sha256=not-hex-at-all",
        ] {
            assert!(!verify(SECRET, BODY, bad), "{bad:?} must not verify");
        }
    }
}
