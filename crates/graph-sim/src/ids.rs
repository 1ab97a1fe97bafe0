//! Identifiers and clocks shaped like Meta's, so that consumers which store or
//! parse them meet realistic lengths and alphabets in tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;

/// A message id in the shape Meta uses: "wamid." + base64 of a small binary
/// record that starts with the 12-byte phone field (hence always "HBgM") and
/// carries 80 random bits, so ids are unique without any shared counter.
pub(crate) fn wamid(wa_id: &str) -> String {
    let digits: Vec<u8> = wa_id.bytes().filter(u8::is_ascii_digit).collect();
    let mut phone = [b'0'; 12];
    let take = digits.len().min(12);
    phone[12 - take..].copy_from_slice(&digits[digits.len() - take..]);

    let mut raw = Vec::with_capacity(42);
    raw.extend_from_slice(&[0x1c, 0x18, 0x0c]);
    raw.extend_from_slice(&phone);
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x12, 0x18, 0x14]);
    let mut rng = rand::rng();
    for _ in 0..20 {
        raw.push(b"0123456789ABCDEF"[rng.random_range(0..16)]);
    }
    raw.push(0x00);
    format!("wamid.{}", STANDARD.encode(raw))
}

/// Media ids are 15-16 digit numbers on the real API.
pub(crate) fn media_id() -> String {
    rand::rng()
        .random_range(1_000_000_000_000_000u64..10_000_000_000_000_000)
        .to_string()
}

pub(crate) fn fbtrace_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let mut s = String::from("A");
    for _ in 0..22 {
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

pub(crate) fn hex_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

pub(crate) fn unix_now() -> Duration {
    // A clock before 1970 is a broken host, not a case worth an error path.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Webhook timestamps are unix seconds carried as JSON strings.
pub(crate) fn timestamp_string() -> String {
    unix_now().as_secs().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamid_looks_like_meta() {
        let a = wamid("5511987654321");
        let b = wamid("5511987654321");
        assert!(a.starts_with("wamid.HBgM"), "{a}");
        assert_ne!(a, b);
        let raw = STANDARD.decode(&a["wamid.".len()..]).unwrap();
        assert_eq!(&raw[3..15], b"511987654321");
        assert!(wamid("123").starts_with("wamid.HBgM"));
    }

    #[test]
    fn media_ids_are_numeric() {
        let id = media_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
    }
}
