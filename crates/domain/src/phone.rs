//! Phone numbers as WhatsApp wants them: E.164 digits without "+" (`5511987654321`),
//! with Brazil's rules: valid DDD area codes (ANATEL), the mobile ninth digit,
//! the trunk prefix 0 and carrier selection codes (CSP).
//!
//! Accepted input, after dropping spaces, dots, dashes, slashes and parentheses:
//! - `+55` followed by DDD and number, or `55` + DDD + number (12–13 digits);
//! - DDD + number (10–11 digits): `11987654321`, `(11) 8765-4321`;
//! - trunk `0` + DDD + number (`011 98765-4321`), or `0` + CSP + DDD + number
//!   (`0 21 11 98765-4321`, carrier 21);
//! - `+` (or `00`) and another country code: kept when it has 8–15 digits.
//!
//! The subscriber number decides the kind: 9 digits must start with 9 (mobile);
//! 8 digits starting with 6–9 are an old mobile and get the ninth digit; 8 digits
//! starting with 2–5 are a landline and are kept as they are.

use thiserror::Error;

/// Why a number cannot be normalized (messages in pt-BR).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneError {
    #[error("Número vazio.")]
    Empty,
    #[error("Número com caracteres inválidos: «{0}».")]
    InvalidCharacters(String),
    #[error("Número curto demais: informe DDD e número (ex.: 11 98765-4321).")]
    TooShort,
    #[error("Número longo demais.")]
    TooLong,
    #[error("DDD inválido: {0}.")]
    InvalidDdd(String),
    #[error(
        "Número local inválido: celulares têm 9 dígitos começando com 9, fixos têm 8 dígitos começando com 2 a 5."
    )]
    InvalidSubscriber,
    #[error("Código de país inválido.")]
    InvalidCountryCode,
}

impl PhoneError {
    /// Stable machine code, for API answers and CSV reports.
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty => "phone_empty",
            PhoneError::InvalidCharacters(_) => "phone_invalid_characters",
            PhoneError::TooShort => "phone_too_short",
            PhoneError::TooLong => "phone_too_long",
            PhoneError::InvalidDdd(_) => "phone_invalid_ddd",
            PhoneError::InvalidSubscriber => "phone_invalid_subscriber",
            PhoneError::InvalidCountryCode => "phone_invalid_country_code",
        }
    }
}

/// Brazil's area codes (DDD) in use, per ANATEL's numbering plan.
pub const DDDS: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, // SP
    21, 22, 24, // RJ
    27, 28, // ES
    31, 32, 33, 34, 35, 37, 38, // MG
    41, 42, 43, 44, 45, 46, // PR
    47, 48, 49, // SC
    51, 53, 54, 55, // RS
    61, // DF
    62, 64, // GO
    63, // TO
    65, 66, // MT
    67, // MS
    68, // AC
    69, // RO
    71, 73, 74, 75, 77, // BA
    79, // SE
    81, 87, // PE
    82, // AL
    83, // PB
    84, // RN
    85, 88, // CE
    86, 89, // PI
    91, 93, 94, // PA
    92, 97, // AM
    95, // RR
    96, // AP
    98, 99, // MA
];

/// Whether `ddd` is an area code in use.
pub fn is_valid_ddd(ddd: u8) -> bool {
    DDDS.contains(&ddd)
}

/// Normalizes a Brazilian (or "+"-prefixed international) number to E.164 digits.
pub fn normalize_br(raw: &str) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            other => return Err(PhoneError::InvalidCharacters(other.to_string())),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    if plus {
        return match digits.strip_prefix("55") {
            Some(national) => brazilian(national),
            None => international(&digits),
        };
    }
    if let Some(after) = digits.strip_prefix("00") {
        // International access prefix as dialled from Brazil without a carrier.
        return match after.strip_prefix("55") {
            Some(national) if matches!(national.len(), 10 | 11) => brazilian(national),
            _ => international(after),
        };
    }
    if let Some(after) = digits.strip_prefix('0') {
        return match after.len() {
            10 | 11 => brazilian(after),
            // 0 + carrier (2 digits) + DDD + number.
            12 | 13 => brazilian(&after[2..]),
            n if n < 10 => Err(PhoneError::TooShort),
            _ => Err(PhoneError::TooLong),
        };
    }
    match digits.len() {
        n if n < 10 => Err(PhoneError::TooShort),
        10 | 11 => brazilian(&digits),
        12 | 13 if digits.starts_with("55") => brazilian(&digits[2..]),
        12 | 13 => Err(PhoneError::InvalidCountryCode),
        _ => Err(PhoneError::TooLong),
    }
}

/// DDD + subscriber number (10 or 11 digits) → `55` + DDD + 9-digit mobile or 8-digit landline.
fn brazilian(national: &str) -> Result<String, PhoneError> {
    match national.len() {
        n if n < 10 => return Err(PhoneError::TooShort),
        10 | 11 => {}
        _ => return Err(PhoneError::TooLong),
    }
    let (ddd, subscriber) = national.split_at(2);
    let ddd_n: u8 = ddd
        .parse()
        .map_err(|_| PhoneError::InvalidDdd(ddd.into()))?;
    if !is_valid_ddd(ddd_n) {
        return Err(PhoneError::InvalidDdd(ddd.into()));
    }
    let first = subscriber.as_bytes()[0];
    let subscriber = match (subscriber.len(), first) {
        (9, b'9') => subscriber.to_string(),
        (8, b'6'..=b'9') => format!("9{subscriber}"),
        (8, b'2'..=b'5') => subscriber.to_string(),
        _ => return Err(PhoneError::InvalidSubscriber),
    };
    Ok(format!("55{ddd}{subscriber}"))
}

fn international(digits: &str) -> Result<String, PhoneError> {
    if digits.starts_with('0') {
        return Err(PhoneError::InvalidCountryCode);
    }
    match digits.len() {
        n if n < 8 => Err(PhoneError::TooShort),
        8..=15 => Ok(digits.to_string()),
        _ => Err(PhoneError::TooLong),
    }
}

/// The forms WhatsApp may use for the same Brazilian mobile: Meta's `wa_id` for
/// accounts registered before the ninth digit sometimes lacks it
/// (`551187654321`). Give a normalized number; get it plus its twin, if any.
pub fn br_variants(e164: &str) -> Vec<String> {
    let mut out = vec![e164.to_string()];
    let is_digits = e164.bytes().all(|b| b.is_ascii_digit());
    if !is_digits || !e164.starts_with("55") {
        return out;
    }
    match e164.len() {
        13 if e164.as_bytes()[4] == b'9' && matches!(e164.as_bytes()[5], b'6'..=b'9') => {
            out.push(format!("{}{}", &e164[..4], &e164[5..]));
        }
        12 if matches!(e164.as_bytes()[4], b'6'..=b'9') => {
            out.push(format!("{}9{}", &e164[..4], &e164[4..]));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_usual_ways_of_writing_a_number() {
        for raw in [
            "+55 (11) 98765-4321",
            "+5511987654321",
            "5511987654321",
            "11987654321",
            "(11) 98765-4321",
            "011 98765-4321",
            "0 21 11 98765-4321",
            "0055 11 98765 4321",
            "11.98765.4321",
            "  11 98765 4321  ",
        ] {
            assert_eq!(normalize_br(raw).as_deref(), Ok("5511987654321"), "{raw}");
        }
    }

    #[test]
    fn adds_the_ninth_digit_to_old_mobiles_only() {
        assert_eq!(normalize_br("11 8765-4321").unwrap(), "5511987654321");
        assert_eq!(normalize_br("+55 21 7765-4321").unwrap(), "5521977654321");
        assert_eq!(normalize_br("61 6123-4567").unwrap(), "5561961234567");
        // Landlines keep 8 digits.
        assert_eq!(normalize_br("(11) 3333-4444").unwrap(), "551133334444");
        assert_eq!(normalize_br("0 15 21 2345-6789").unwrap(), "552123456789");
        assert_eq!(normalize_br("48 5123-4567").unwrap(), "554851234567");
    }

    #[test]
    fn refuses_bad_numbers_with_reasons() {
        assert_eq!(normalize_br(""), Err(PhoneError::Empty));
        assert_eq!(normalize_br("  -  "), Err(PhoneError::Empty));
        assert_eq!(
            normalize_br("11 9876x4321"),
            Err(PhoneError::InvalidCharacters("x".into()))
        );
        assert_eq!(normalize_br("98765-4321"), Err(PhoneError::TooShort));
        assert_eq!(
            normalize_br("20 98765-4321"),
            Err(PhoneError::InvalidDdd("20".into()))
        );
        assert_eq!(
            normalize_br("+55 23 98765-4321"),
            Err(PhoneError::InvalidDdd("23".into()))
        );
        assert_eq!(
            normalize_br("11 88765-4321"),
            Err(PhoneError::InvalidSubscriber)
        );
        assert_eq!(
            normalize_br("11 1765-4321"),
            Err(PhoneError::InvalidSubscriber)
        );
        assert_eq!(
            normalize_br("11 0765-4321"),
            Err(PhoneError::InvalidSubscriber)
        );
        assert_eq!(normalize_br("+55 11 987654"), Err(PhoneError::TooShort));
        assert_eq!(normalize_br("+55 11 98765-43210"), Err(PhoneError::TooLong));
        assert_eq!(
            normalize_br("441234567890"),
            Err(PhoneError::InvalidCountryCode)
        );
        assert_eq!(normalize_br("1234567890123456"), Err(PhoneError::TooLong));
        assert!(
            PhoneError::InvalidDdd("20".into())
                .to_string()
                .contains("DDD inválido")
        );
    }

    #[test]
    fn other_countries_need_a_plus() {
        assert_eq!(normalize_br("+1 (631) 555-2222").unwrap(), "16315552222");
        assert_eq!(normalize_br("+44 20 7946 0958").unwrap(), "442079460958");
        assert_eq!(normalize_br("00 351 912 345 678").unwrap(), "351912345678");
        assert_eq!(normalize_br("+1234567"), Err(PhoneError::TooShort));
        assert_eq!(normalize_br("+1234567890123456"), Err(PhoneError::TooLong));
        assert_eq!(
            normalize_br("+0123456789"),
            Err(PhoneError::InvalidCountryCode)
        );
        // Without "+", an American number reads as DDD 16 with a bad subscriber.
        assert_eq!(
            normalize_br("16315552222"),
            Err(PhoneError::InvalidSubscriber)
        );
    }

    #[test]
    fn the_ddd_list_matches_anatel() {
        for bad in [
            10, 20, 23, 25, 26, 29, 30, 36, 39, 40, 50, 52, 56, 57, 58, 59, 60, 70, 72, 76, 78, 80,
            90,
        ] {
            assert!(!is_valid_ddd(bad), "{bad}");
        }
        for good in [
            11, 19, 21, 22, 24, 27, 28, 38, 46, 49, 51, 55, 61, 69, 71, 79, 81, 89, 91, 99,
        ] {
            assert!(is_valid_ddd(good), "{good}");
        }
        assert_eq!(DDDS.len(), 67);
    }

    #[test]
    fn variants_pair_the_ninth_digit() {
        assert_eq!(
            br_variants("5511987654321"),
            vec!["5511987654321", "551187654321"]
        );
        assert_eq!(
            br_variants("551187654321"),
            vec!["551187654321", "5511987654321"]
        );
        assert_eq!(br_variants("551133334444"), vec!["551133334444"]);
        assert_eq!(br_variants("16315552222"), vec!["16315552222"]);
    }

    fn ddd() -> impl Strategy<Value = u8> {
        proptest::sample::select(DDDS.to_vec())
    }

    proptest! {
        #[test]
        fn never_panics(raw in "\\PC{0,30}") {
            let _ = normalize_br(&raw);
        }

        #[test]
        fn output_is_digits_and_idempotent(raw in "[+0-9 ()\\-]{0,20}") {
            if let Ok(n) = normalize_br(&raw) {
                prop_assert!(n.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((8..=15).contains(&n.len()));
                prop_assert_eq!(normalize_br(&format!("+{n}")), Ok(n.clone()));
            }
        }

        #[test]
        fn every_formatting_of_a_mobile_agrees(d in ddd(), rest in 0u32..100_000_000) {
            let number = format!("9{rest:08}");
            let want = format!("55{d}{number}");
            let spaced = format!("({d}) {}-{}", &number[..5], &number[5..]);
            let plus = format!("+55 {d} {number}");
            let trunk = format!("0{d}{number}");
            let carrier = format!("0 41 {d} {number}");
            for raw in [spaced, plus, trunk, carrier] {
                prop_assert_eq!(normalize_br(&raw), Ok(want.clone()));
            }
            if matches!(number.as_bytes()[1], b'6'..=b'9') {
                prop_assert_eq!(normalize_br(&format!("{d}{}", &number[1..])), Ok(want));
            }
        }

        #[test]
        fn landlines_keep_eight_digits(d in ddd(), first in 2u8..=5, rest in 0u32..10_000_000) {
            let local = format!("{first}{rest:07}");
            prop_assert_eq!(normalize_br(&format!("{d} {local}")), Ok(format!("55{d}{local}")));
        }
    }
}
