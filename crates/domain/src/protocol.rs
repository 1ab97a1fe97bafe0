//! SAC protocol numbers: `prefix + YYYYMMDD + zero-padded daily sequence`.
//!
//! Decreto 11.034/2022 (art. 12) does not mandate a format; date + sequence is
//! what consumers and Procons are used to, and keeping the day in the number
//! lets the counter be one row per tenant per day. The sequence itself comes
//! from the database (atomic increment); this module only names the day and
//! formats the result.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

pub const DEFAULT_TIME_ZONE: &str = "America/Sao_Paulo";
pub const DEFAULT_SEQUENCE_DIGITS: u8 = 6;
/// Keeps protocols short enough to be read over the phone.
pub const MAX_PREFIX_LEN: usize = 20;
/// An i64 sequence never needs more than 19 digits; 18 keeps a margin and
/// makes an accidental `sequence_digits: 255` an error instead of a wall of zeros.
pub const MAX_SEQUENCE_DIGITS: u8 = 18;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolConfig {
    /// May be empty; `[A-Z0-9-]` only (e.g. an ANS operator registration).
    pub prefix: String,
    /// IANA zone whose calendar day the protocol carries.
    pub time_zone: String,
    /// Minimum width of the daily sequence; larger sequences use their
    /// natural width so numbers are never truncated (and never collide).
    pub sequence_digits: u8,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            prefix: String::new(),
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            sequence_digits: DEFAULT_SEQUENCE_DIGITS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("protocol prefix {0:?} must use only A-Z, 0-9 and '-' (at most 20 characters)")]
    InvalidPrefix(String),
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    #[error("sequence_digits must be between 1 and 18, got {0}")]
    InvalidSequenceDigits(u8),
    #[error("timestamp {0} ms is out of range")]
    TimestampOutOfRange(i64),
}

pub fn validate_config(cfg: &ProtocolConfig) -> Result<(), ProtocolError> {
    let prefix_ok = cfg.prefix.len() <= MAX_PREFIX_LEN
        && cfg
            .prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if !prefix_ok {
        return Err(ProtocolError::InvalidPrefix(cfg.prefix.clone()));
    }
    if !(1..=MAX_SEQUENCE_DIGITS).contains(&cfg.sequence_digits) {
        return Err(ProtocolError::InvalidSequenceDigits(cfg.sequence_digits));
    }
    time_zone(cfg)?;
    Ok(())
}

fn time_zone(cfg: &ProtocolConfig) -> Result<TimeZone, ProtocolError> {
    TimeZone::get(&cfg.time_zone).map_err(|_| ProtocolError::UnknownTimeZone(cfg.time_zone.clone()))
}

/// The day key the counter is kept under: "YYYYMMDD" in the configured zone
/// for an instant given as unix milliseconds.
pub fn day_key(cfg: &ProtocolConfig, unix_ms: i64) -> Result<String, ProtocolError> {
    let tz = time_zone(cfg)?;
    let ts = Timestamp::from_millisecond(unix_ms)
        .map_err(|_| ProtocolError::TimestampOutOfRange(unix_ms))?;
    let date = ts.to_zoned(tz).date();
    Ok(format!(
        "{:04}{:02}{:02}",
        date.year(),
        date.month(),
        date.day()
    ))
}

/// prefix + day_key + zero-padded sequence. `sequence` is 1-based; a value
/// wider than `sequence_digits` keeps all its digits.
///
/// A non-positive sequence is a caller bug (the counter starts at 1); it is
/// still formatted with its sign rather than altered, so it cannot collide
/// with a legitimate number.
pub fn format_protocol(cfg: &ProtocolConfig, day_key: &str, sequence: i64) -> String {
    debug_assert!(sequence >= 1, "protocol sequences are 1-based");
    let width = usize::from(cfg.sequence_digits);
    format!("{}{day_key}{sequence:0width$}", cfg.prefix)
}

/// Convenience: `format_protocol(cfg, &day_key(cfg, unix_ms)?, sequence)`.
pub fn protocol_for(
    cfg: &ProtocolConfig,
    unix_ms: i64,
    sequence: i64,
) -> Result<String, ProtocolError> {
    Ok(format_protocol(cfg, &day_key(cfg, unix_ms)?, sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(iso: &str) -> i64 {
        iso.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn defaults() {
        let cfg = ProtocolConfig::default();
        assert_eq!(cfg.prefix, "");
        assert_eq!(cfg.time_zone, "America/Sao_Paulo");
        assert_eq!(cfg.sequence_digits, 6);
        assert_eq!(validate_config(&cfg), Ok(()));
    }

    #[test]
    fn early_utc_morning_is_still_the_previous_day_in_sao_paulo() {
        let cfg = ProtocolConfig::default();
        assert_eq!(
            day_key(&cfg, ms("2026-11-26T02:30:00Z")).unwrap(),
            "20261125"
        );
        assert_eq!(
            day_key(&cfg, ms("2026-11-26T02:59:59.999Z")).unwrap(),
            "20261125"
        );
        // São Paulo has had no DST since 2019, so midnight is 03:00 UTC.
        assert_eq!(
            day_key(&cfg, ms("2026-11-26T03:00:00Z")).unwrap(),
            "20261126"
        );
        let utc = ProtocolConfig {
            time_zone: "UTC".into(),
            ..ProtocolConfig::default()
        };
        assert_eq!(
            day_key(&utc, ms("2026-11-26T02:30:00Z")).unwrap(),
            "20261126"
        );
    }

    #[test]
    fn other_zones_and_year_boundaries() {
        let manaus = ProtocolConfig {
            time_zone: "America/Manaus".into(),
            ..ProtocolConfig::default()
        };
        assert_eq!(
            day_key(&manaus, ms("2027-01-01T03:30:00Z")).unwrap(),
            "20261231"
        );
        assert_eq!(day_key(&ProtocolConfig::default(), 0).unwrap(), "19691231");
    }

    #[test]
    fn formatting() {
        let cfg = ProtocolConfig::default();
        assert_eq!(format_protocol(&cfg, "20261125", 1), "20261125000001");
        assert_eq!(format_protocol(&cfg, "20261125", 123), "20261125000123");
        let ans = ProtocolConfig {
            prefix: "123456".into(),
            ..ProtocolConfig::default()
        };
        let p = format_protocol(&ans, "20261125", 42);
        assert_eq!(p, "12345620261125000042");
        assert_eq!(p.len(), 20);
        let dashed = ProtocolConfig {
            prefix: "SAC-".into(),
            sequence_digits: 8,
            ..ProtocolConfig::default()
        };
        assert_eq!(
            format_protocol(&dashed, "20261125", 7),
            "SAC-2026112500000007"
        );
        assert_eq!(
            protocol_for(&ProtocolConfig::default(), ms("2026-11-26T02:30:00Z"), 9).unwrap(),
            "20261125000009"
        );
    }

    #[test]
    fn overflow_uses_natural_width() {
        let cfg = ProtocolConfig::default();
        assert_eq!(format_protocol(&cfg, "20261125", 999_999), "20261125999999");
        assert_eq!(
            format_protocol(&cfg, "20261125", 1_000_000),
            "202611251000000"
        );
        assert_eq!(
            format_protocol(&cfg, "20261125", i64::MAX),
            format!("20261125{}", i64::MAX)
        );
    }

    #[test]
    fn bad_configs() {
        let bad_tz = ProtocolConfig {
            time_zone: "America/Sao_Paolo".into(),
            ..ProtocolConfig::default()
        };
        assert_eq!(
            validate_config(&bad_tz),
            Err(ProtocolError::UnknownTimeZone("America/Sao_Paolo".into()))
        );
        assert_eq!(
            day_key(&bad_tz, 0),
            Err(ProtocolError::UnknownTimeZone("America/Sao_Paolo".into()))
        );
        for prefix in ["sac", "SAC_", "SAC ", "Ç", "ABCDEFGHIJKLMNOPQRSTU"] {
            let cfg = ProtocolConfig {
                prefix: prefix.into(),
                ..ProtocolConfig::default()
            };
            assert_eq!(
                validate_config(&cfg),
                Err(ProtocolError::InvalidPrefix(prefix.into()))
            );
        }
        for digits in [0, 19, 255] {
            let cfg = ProtocolConfig {
                sequence_digits: digits,
                ..ProtocolConfig::default()
            };
            assert_eq!(
                validate_config(&cfg),
                Err(ProtocolError::InvalidSequenceDigits(digits))
            );
        }
        assert_eq!(
            day_key(&ProtocolConfig::default(), i64::MAX),
            Err(ProtocolError::TimestampOutOfRange(i64::MAX))
        );
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let cfg: ProtocolConfig = serde_json::from_str(r#"{"prefix":"X1"}"#).unwrap();
        assert_eq!(cfg.prefix, "X1");
        assert_eq!(cfg.time_zone, DEFAULT_TIME_ZONE);
        assert_eq!(cfg.sequence_digits, 6);
    }

    proptest::proptest! {
        #[test]
        fn day_key_is_eight_digits_and_protocols_are_unique_within_a_day(
            t in -2_000_000_000_000i64..4_000_000_000_000i64,
            a in 1i64..10_000_000,
            b in 1i64..10_000_000,
        ) {
            let cfg = ProtocolConfig::default();
            let key = day_key(&cfg, t).unwrap();
            proptest::prop_assert_eq!(key.len(), 8);
            proptest::prop_assert!(key.bytes().all(|c| c.is_ascii_digit()));
            let pa = format_protocol(&cfg, &key, a);
            let pb = format_protocol(&cfg, &key, b);
            proptest::prop_assert_eq!(pa == pb, a == b);
        }
    }
}
