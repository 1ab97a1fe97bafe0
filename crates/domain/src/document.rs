//! Brazilian taxpayer ids (CPF for people, CNPJ for companies) as typed in the
//! protocol form field "Código" or in a bot conversation.
//!
//! CNPJ covers both the numeric format and the alphanumeric one introduced by
//! IN RFB 2.229/2024 (new registrations from July 2026): the first 12 characters
//! may be `[A-Z0-9]`, the two check digits stay numeric, and every character is
//! worth its ASCII code minus 48 in the mod-11 sums, so numeric CNPJs are a
//! subset with unchanged check digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const CPF_LEN: usize = 11;
const CNPJ_LEN: usize = 14;
const CNPJ_DV1_WEIGHTS: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_DV2_WEIGHTS: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Cpf,
    /// Numeric and alphanumeric CNPJ alike.
    Cnpj,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Cpf => "cpf",
            DocumentKind::Cnpj => "cnpj",
        }
    }

    /// Label shown to people ("CPF"/"CNPJ").
    pub fn label(self) -> &'static str {
        match self {
            DocumentKind::Cpf => "CPF",
            DocumentKind::Cnpj => "CNPJ",
        }
    }
}

/// A CPF or CNPJ whose check digits have been verified.
///
/// `Debug` prints the masked form on purpose: documents are personal data (LGPD)
/// and `{:?}` is what ends up in logs and panic messages.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Document {
    kind: DocumentKind,
    normalized: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("empty document")]
    Empty,
    #[error("a CPF has 11 digits and a CNPJ 14 characters, found {found}")]
    InvalidLength { found: usize },
    #[error("invalid characters in document")]
    InvalidCharacters,
    #[error("all characters are equal")]
    RepeatedDigits,
    #[error("check digits do not match")]
    WrongCheckDigits,
}

impl DocumentError {
    /// Message for the customer or the agent.
    pub fn message_pt_br(&self) -> &'static str {
        match self {
            DocumentError::Empty => "Informe o CPF ou o CNPJ.",
            DocumentError::InvalidLength { .. } => {
                "CPF ou CNPJ inválido: o CPF tem 11 dígitos e o CNPJ tem 14 caracteres."
            }
            DocumentError::InvalidCharacters => {
                "CPF ou CNPJ inválido: use apenas números (o CNPJ também pode ter letras, exceto nos 2 últimos dígitos)."
            }
            DocumentError::RepeatedDigits => "CPF ou CNPJ inválido: todos os dígitos são iguais.",
            DocumentError::WrongCheckDigits => {
                "CPF ou CNPJ inválido: dígitos verificadores não conferem."
            }
        }
    }
}

impl Document {
    /// Accepts masked (`529.982.247-25`, `12.ABC.345/01DE-35`) or bare input,
    /// with surrounding or inner spaces, and lower-case CNPJ letters.
    pub fn parse(input: &str) -> Result<Document, DocumentError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DocumentError::Empty);
        }
        let mut chars = String::with_capacity(CNPJ_LEN);
        for c in trimmed.chars() {
            if is_mask_char(c) || c.is_whitespace() {
                continue;
            }
            if !c.is_ascii_alphanumeric() {
                return Err(DocumentError::InvalidCharacters);
            }
            // Bounded so a huge paste cannot make us allocate without limit.
            if chars.len() > CNPJ_LEN {
                return Err(DocumentError::InvalidLength {
                    found: trimmed.chars().filter(char::is_ascii_alphanumeric).count(),
                });
            }
            chars.push(c.to_ascii_uppercase());
        }
        let kind = match chars.len() {
            CPF_LEN => DocumentKind::Cpf,
            CNPJ_LEN => DocumentKind::Cnpj,
            0 => return Err(DocumentError::Empty),
            found => return Err(DocumentError::InvalidLength { found }),
        };
        let bytes = chars.as_bytes();
        let shape_ok = match kind {
            DocumentKind::Cpf => bytes.iter().all(u8::is_ascii_digit),
            DocumentKind::Cnpj => bytes[12..].iter().all(u8::is_ascii_digit),
        };
        if !shape_ok {
            return Err(DocumentError::InvalidCharacters);
        }
        // All-equal CPFs pass the checksum, so the explicit rejection is required.
        if bytes.iter().all(|&b| b == bytes[0]) {
            return Err(DocumentError::RepeatedDigits);
        }
        let expected = match kind {
            DocumentKind::Cpf => cpf_check_digits(&bytes[..9]),
            DocumentKind::Cnpj => cnpj_check_digits(&bytes[..12]),
        };
        if bytes[bytes.len() - 2..] != expected {
            return Err(DocumentError::WrongCheckDigits);
        }
        Ok(Document {
            kind,
            normalized: chars,
        })
    }

    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// 11 digits (CPF) or 14 upper-case characters (CNPJ), no mask.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// `000.000.000-00` or `XX.XXX.XXX/XXXX-DD`.
    pub fn formatted(&self) -> String {
        apply_mask(self.kind, &self.normalized)
    }

    /// Only the two check digits survive, e.g. `***.***.***-25`: enough for an
    /// operator to tell two documents apart in logs without exposing the person.
    pub fn masked(&self) -> String {
        masked_shape(self.kind, &self.normalized[self.normalized.len() - 2..])
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({}, {})", self.kind.label(), self.masked())
    }
}

impl FromStr for Document {
    type Err = DocumentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Document::parse(s)
    }
}

impl TryFrom<String> for Document {
    type Error = DocumentError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Document::parse(&value)
    }
}

impl From<Document> for String {
    fn from(value: Document) -> Self {
        value.normalized
    }
}

fn is_mask_char(c: char) -> bool {
    matches!(c, '.' | '-' | '/')
}

/// Value of a character in the mod-11 sums: ASCII code minus 48, which keeps
/// digits at 0..=9 and puts letters at 17..=42 (IN RFB 2.229/2024).
fn char_value(b: u8) -> u32 {
    u32::from(b) - 48
}

fn check_digit<'a>(chars: impl Iterator<Item = &'a u8>, weights: impl Iterator<Item = u32>) -> u8 {
    let sum: u32 = chars.zip(weights).map(|(&c, w)| char_value(c) * w).sum();
    let r = sum % 11;
    // `r` is below 11, so `11 - r` is at most 9 after excluding 0 and 1.
    let dv = if r < 2 { 0 } else { 11 - r };
    b'0' + dv as u8
}

fn cpf_check_digits(base9: &[u8]) -> [u8; 2] {
    let d1 = check_digit(base9.iter(), (2..=10).rev());
    let d2 = check_digit(base9.iter().chain(std::iter::once(&d1)), (2..=11).rev());
    [d1, d2]
}

fn cnpj_check_digits(base12: &[u8]) -> [u8; 2] {
    let d1 = check_digit(base12.iter(), CNPJ_DV1_WEIGHTS.into_iter());
    let d2 = check_digit(
        base12.iter().chain(std::iter::once(&d1)),
        CNPJ_DV2_WEIGHTS.into_iter(),
    );
    [d1, d2]
}

/// Completes a 9-digit CPF base with its check digits (unmasked, 11 digits).
/// Does not refuse all-equal bases: the result is well-formed but `parse`
/// will still reject it.
pub fn cpf_with_check_digits(base9: &str) -> Option<String> {
    let bytes = base9.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let dv = cpf_check_digits(bytes);
    let mut out = base9.to_owned();
    out.push(char::from(dv[0]));
    out.push(char::from(dv[1]));
    Some(out)
}

/// Completes a 12-character CNPJ base (`[A-Za-z0-9]`, upper-cased) with its
/// check digits (unmasked, 14 characters).
pub fn cnpj_with_check_digits(base12: &str) -> Option<String> {
    if base12.len() != 12 || !base12.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut out = base12.to_ascii_uppercase();
    let dv = cnpj_check_digits(out.as_bytes());
    out.push(char::from(dv[0]));
    out.push(char::from(dv[1]));
    Some(out)
}

fn apply_mask(kind: DocumentKind, normalized: &str) -> String {
    let s = normalized;
    match kind {
        DocumentKind::Cpf => format!("{}.{}.{}-{}", &s[0..3], &s[3..6], &s[6..9], &s[9..11]),
        DocumentKind::Cnpj => format!(
            "{}.{}.{}/{}-{}",
            &s[0..2],
            &s[2..5],
            &s[5..8],
            &s[8..12],
            &s[12..14]
        ),
    }
}

fn masked_shape(kind: DocumentKind, last2: &str) -> String {
    match kind {
        DocumentKind::Cpf => format!("***.***.***-{last2}"),
        DocumentKind::Cnpj => format!("**.***.***/****-{last2}"),
    }
}

/// How one character of a document template may look.
#[derive(Clone, Copy)]
enum Class {
    Digit,
    AlphaNum,
}

impl Class {
    fn accepts(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::AlphaNum => b.is_ascii_alphanumeric(),
        }
    }
}

/// Groups of a mask: (length, class, separator expected after the group).
type Template = [(usize, Class, Option<u8>)];

const CPF_TEMPLATE: &Template = &[
    (3, Class::Digit, Some(b'.')),
    (3, Class::Digit, Some(b'.')),
    (3, Class::Digit, Some(b'-')),
    (2, Class::Digit, None),
];

const CNPJ_TEMPLATE: &Template = &[
    (2, Class::AlphaNum, Some(b'.')),
    (3, Class::AlphaNum, Some(b'.')),
    (3, Class::AlphaNum, Some(b'/')),
    (4, Class::AlphaNum, Some(b'-')),
    (2, Class::Digit, None),
];

struct Candidate {
    end: usize,
    content: String,
    punctuated: bool,
}

/// Matches `template` at `start`, each separator being optional, since people
/// type documents fully masked, partially masked or bare.
fn match_template(bytes: &[u8], start: usize, template: &Template) -> Option<Candidate> {
    let mut i = start;
    let mut content = String::with_capacity(CNPJ_LEN);
    let mut punctuated = false;
    for &(len, class, sep) in template {
        let group = bytes.get(i..i + len)?;
        if !group.iter().all(|&b| class.accepts(b)) {
            return None;
        }
        content.extend(group.iter().map(|&b| char::from(b.to_ascii_uppercase())));
        i += len;
        if let Some(sep) = sep
            && bytes.get(i) == Some(&sep)
        {
            punctuated = true;
            i += 1;
        }
    }
    Some(Candidate {
        end: i,
        content,
        punctuated,
    })
}

/// Replaces every CPF/CNPJ-looking substring (masked or not) in free text with
/// its masked form; used before logging user text.
///
/// Punctuated shapes (`123.456.789-00`) are masked even with wrong check digits,
/// since a typo'd document is still personal data. Bare runs of 11/14
/// characters are masked only when their check digits match, because bare
/// 11-digit runs are usually phone numbers (DDD + number) and ids; the mod-11
/// check lets through about one in a hundred of those.
pub fn mask_documents_in(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some((end, masked)) = document_at(bytes, i) {
            out.push_str(&text[copied..i]);
            out.push_str(&masked);
            copied = end;
            i = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn document_at(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    if !bytes[i].is_ascii_alphanumeric() {
        return None;
    }
    let prev = i.checked_sub(1).map(|p| bytes[p]);
    for (template, kind) in [
        (CNPJ_TEMPLATE, DocumentKind::Cnpj),
        (CPF_TEMPLATE, DocumentKind::Cpf),
    ] {
        let Some(c) = match_template(bytes, i, template) else {
            continue;
        };
        let next = bytes.get(c.end).copied();
        // An all-digit document only needs to be apart from other digits
        // ("CPF52998224725" is still a CPF); one with letters must be apart
        // from any alphanumeric, or words would be misread as CNPJs.
        let glued: fn(u8) -> bool = if c.content.bytes().all(|b| b.is_ascii_digit()) {
            |b| b.is_ascii_digit()
        } else {
            |b| b.is_ascii_alphanumeric()
        };
        if prev.is_some_and(glued) || next.is_some_and(glued) {
            continue;
        }
        if c.punctuated || Document::parse(&c.content).is_ok() {
            return Some((c.end, masked_shape(kind, &c.content[c.content.len() - 2..])));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID_CPF: &[&str] = &[
        "529.982.247-25",
        "111.444.777-35",
        "123.456.789-09",
        "935.411.347-80",
    ];
    const VALID_CNPJ: &[&str] = &[
        "11.222.333/0001-81",
        "11.444.777/0001-61",
        "44.038.188/0001-32",
        "42.318.949/0001-84",
        "14.572.457/0001-85",
        "00.000.000/0001-91",
        "12.ABC.345/01DE-35",
        "AB.CDE.FGH/IJKL-80",
        "A1.B2C.3D4/0001-93",
        "12.ABC.345/0001-88",
    ];

    #[test]
    fn valid_examples_from_the_rules_document() {
        for s in VALID_CPF {
            let d = Document::parse(s).unwrap();
            assert_eq!(d.kind(), DocumentKind::Cpf);
            assert_eq!(d.formatted(), *s);
        }
        for s in VALID_CNPJ {
            let d = Document::parse(s).unwrap();
            assert_eq!(d.kind(), DocumentKind::Cnpj);
            assert_eq!(d.formatted(), *s);
        }
    }

    #[test]
    fn accepts_unmasked_spaced_and_lowercase() {
        assert_eq!(
            Document::parse("  52998224725 ").unwrap().normalized(),
            "52998224725"
        );
        assert_eq!(
            Document::parse("12abc34501de35").unwrap().normalized(),
            "12ABC34501DE35"
        );
        assert_eq!(
            Document::parse("12.abc.345/01de-35").unwrap().formatted(),
            "12.ABC.345/01DE-35"
        );
        assert_eq!(
            Document::parse("529 982 247 25").unwrap().normalized(),
            "52998224725"
        );
        assert_eq!(
            Document::parse("11222333000181").unwrap().formatted(),
            "11.222.333/0001-81"
        );
        assert_eq!(
            "ab.cde.fgh/ijkl-80"
                .parse::<Document>()
                .unwrap()
                .normalized(),
            "ABCDEFGHIJKL80"
        );
    }

    #[test]
    fn invalid_examples_from_the_rules_document() {
        use DocumentError::*;
        let cases: &[(&str, DocumentError)] = &[
            ("529.982.247-24", WrongCheckDigits),
            ("123.456.789-00", WrongCheckDigits),
            ("111.111.111-11", RepeatedDigits),
            ("000.000.000-00", RepeatedDigits),
            ("12ABC34501DE36", WrongCheckDigits),
            ("00000000000000", RepeatedDigits),
            ("11111111111111", RepeatedDigits),
            ("", Empty),
            ("   ", Empty),
            ("..-/", Empty),
            ("1234567890", InvalidLength { found: 10 }),
            ("123456789012", InvalidLength { found: 12 }),
            ("123456789012345", InvalidLength { found: 15 }),
            ("5299822472A", InvalidCharacters),
            ("12ABC34501DE3A", InvalidCharacters),
            ("529_982_247_25", InvalidCharacters),
            ("529.982.247-2５", InvalidCharacters),
            ("ÁB.CDE.FGH/IJKL-80", InvalidCharacters),
        ];
        for (input, err) in cases {
            assert_eq!(Document::parse(input), Err(*err), "input {input:?}");
        }
    }

    #[test]
    fn very_long_input_is_rejected_by_length() {
        let long = "1".repeat(10_000);
        assert_eq!(
            Document::parse(&long),
            Err(DocumentError::InvalidLength { found: 10_000 })
        );
    }

    #[test]
    fn pt_br_messages_are_distinct_and_mention_documents() {
        use DocumentError::*;
        let all = [
            Empty,
            InvalidLength { found: 3 },
            InvalidCharacters,
            RepeatedDigits,
            WrongCheckDigits,
        ];
        let msgs: std::collections::BTreeSet<_> = all.iter().map(|e| e.message_pt_br()).collect();
        assert_eq!(msgs.len(), all.len());
        assert!(msgs.iter().all(|m| m.contains("CPF")));
        assert_eq!(
            WrongCheckDigits.message_pt_br(),
            "CPF ou CNPJ inválido: dígitos verificadores não conferem."
        );
    }

    #[test]
    fn masked_keeps_only_the_check_digits() {
        assert_eq!(
            Document::parse("529.982.247-25").unwrap().masked(),
            "***.***.***-25"
        );
        assert_eq!(
            Document::parse("111.444.777-35").unwrap().masked(),
            "***.***.***-35"
        );
        assert_eq!(
            Document::parse("12ABC34501DE35").unwrap().masked(),
            "**.***.***/****-35"
        );
        let d = Document::parse("529.982.247-25").unwrap();
        assert_eq!(format!("{d:?}"), "Document(CPF, ***.***.***-25)");
    }

    #[test]
    fn check_digit_helpers() {
        assert_eq!(
            cpf_with_check_digits("529982247").as_deref(),
            Some("52998224725")
        );
        assert_eq!(cpf_with_check_digits("52998224"), None);
        assert_eq!(cpf_with_check_digits("52998224a"), None);
        assert_eq!(
            cnpj_with_check_digits("12abc34501de").as_deref(),
            Some("12ABC34501DE35")
        );
        assert_eq!(
            cnpj_with_check_digits("112223330001").as_deref(),
            Some("11222333000181")
        );
        assert_eq!(cnpj_with_check_digits("12ABC34501D"), None);
        assert_eq!(cnpj_with_check_digits("12ABC34501Dé"), None);
    }

    #[test]
    fn serde_uses_the_normalized_form_and_validates() {
        let d = Document::parse("12.ABC.345/01DE-35").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"12ABC34501DE35\"");
        let back: Document = serde_json::from_str("\"529.982.247-25\"").unwrap();
        assert_eq!(back.normalized(), "52998224725");
        assert!(serde_json::from_str::<Document>("\"529.982.247-24\"").is_err());
        assert_eq!(
            serde_json::to_string(&DocumentKind::Cnpj).unwrap(),
            "\"cnpj\""
        );
    }

    /// The mod-11 scheme cannot catch every single substitution: letters whose
    /// values differ by 11 weigh the same, and remainders 0 and 1 both give
    /// check digit 0. These pairs are all valid; that is the RFB algorithm,
    /// not a bug here.
    #[test]
    fn known_blind_spots_of_mod_11() {
        for (a, b) in [
            ("99763860601", "89763860601"),
            ("23411524185600", "23416524185600"),
            ("KEA0JUILNN2T51", "KEA0JUILNN2I51"),
        ] {
            assert!(Document::parse(a).is_ok(), "{a}");
            assert!(Document::parse(b).is_ok(), "{b}");
        }
    }

    #[test]
    fn mask_documents_in_free_text() {
        let text = "Meu CPF é 529.982.247-25, o CNPJ 12.abc.345/01DE-35 e o telefone 11987654321.";
        assert_eq!(
            mask_documents_in(text),
            "Meu CPF é ***.***.***-25, o CNPJ **.***.***/****-35 e o telefone 11987654321."
        );
        assert_eq!(mask_documents_in("cpf:52998224725"), "cpf:***.***.***-25");
        assert_eq!(mask_documents_in("CPF52998224725!"), "CPF***.***.***-25!");
        assert_eq!(mask_documents_in("11222333000181"), "**.***.***/****-81");
        // Typo'd but clearly a document: still masked.
        assert_eq!(mask_documents_in("(529.982.247-24)"), "(***.***.***-24)");
        // Longer digit runs (protocols, wamids) are left alone.
        assert_eq!(
            mask_documents_in("protocolo 20261125000123529982247"),
            "protocolo 20261125000123529982247"
        );
        // Words that happen to have the right length are not CNPJs.
        assert_eq!(mask_documents_in("abcdefghijkl80x"), "abcdefghijkl80x");
        assert_eq!(mask_documents_in(""), "");
        assert_eq!(
            mask_documents_in("açaí 529982247-25 ok"),
            "açaí ***.***.***-25 ok"
        );
    }

    fn digit() -> impl Strategy<Value = u8> {
        (0u8..10).prop_map(|d| b'0' + d)
    }

    fn alnum() -> impl Strategy<Value = u8> {
        prop::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_vec())
    }

    fn valid_cpf() -> impl Strategy<Value = String> {
        prop::collection::vec(digit(), 9).prop_filter_map("repeated", |b| {
            let base = String::from_utf8(b).ok()?;
            let full = cpf_with_check_digits(&base)?;
            Document::parse(&full)
                .ok()
                .map(|d| d.normalized().to_owned())
        })
    }

    fn valid_cnpj(alpha: bool) -> impl Strategy<Value = String> {
        let ch = if alpha {
            alnum().boxed()
        } else {
            digit().boxed()
        };
        prop::collection::vec(ch, 12).prop_filter_map("repeated", |b| {
            let base = String::from_utf8(b).ok()?;
            let full = cnpj_with_check_digits(&base)?;
            Document::parse(&full)
                .ok()
                .map(|d| d.normalized().to_owned())
        })
    }

    fn any_valid() -> impl Strategy<Value = String> {
        prop_oneof![valid_cpf(), valid_cnpj(false), valid_cnpj(true)]
    }

    fn raw_remainder_dv1(normalized: &[u8]) -> u32 {
        let (chars, weights): (&[u8], Vec<u32>) = if normalized.len() == CPF_LEN {
            (&normalized[..9], (2..=10).rev().collect())
        } else {
            (&normalized[..12], CNPJ_DV1_WEIGHTS.to_vec())
        };
        chars
            .iter()
            .zip(weights)
            .map(|(&c, w)| char_value(c) * w)
            .sum::<u32>()
            % 11
    }

    proptest! {
        #[test]
        fn generated_documents_parse_and_round_trip(doc in any_valid()) {
            let d = Document::parse(&doc).unwrap();
            prop_assert_eq!(d.normalized(), doc.as_str());
            let again = Document::parse(&d.formatted()).unwrap();
            prop_assert_eq!(&again, &d);
            prop_assert_eq!(Document::parse(&doc.to_lowercase()).unwrap(), d.clone());
            prop_assert_eq!(Document::parse(&format!("  {}\t", d.formatted())).unwrap(), d.clone());
            let masked = d.masked();
            prop_assert!(masked.ends_with(&doc[doc.len() - 2..]));
            prop_assert_eq!(masked.len(), d.formatted().len());
        }

        /// Every single-character change is rejected except the two blind spots
        /// inherent to mod 11 (see `known_blind_spots_of_mod_11`): a value change
        /// that is a multiple of 11, or a change that only moves the first
        /// remainder between 0 and 1 (both map to check digit 0) and happens to
        /// keep the second one too. Changes to the check digits themselves are
        /// always caught.
        #[test]
        fn single_character_changes_are_rejected(doc in any_valid(), pos in 0usize..14, pick in 0usize..36) {
            let bytes = doc.as_bytes();
            let pos = pos % bytes.len();
            let alphabet: &[u8] = if bytes.len() == CNPJ_LEN && pos < 12 {
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            } else {
                b"0123456789"
            };
            // An offset from the original's index never picks the original.
            let original = alphabet.iter().position(|&c| c == bytes[pos]).unwrap();
            let replacement = alphabet[(original + 1 + pick % (alphabet.len() - 1)) % alphabet.len()];
            let mut mutated = bytes.to_vec();
            mutated[pos] = replacement;
            let mutated_str = String::from_utf8(mutated.clone()).unwrap();
            if Document::parse(&mutated_str).is_ok() {
                let check_digit_pos = pos >= bytes.len() - 2;
                prop_assert!(!check_digit_pos, "check digit change accepted: {} -> {}", doc, mutated_str);
                let delta = char_value(bytes[pos]).abs_diff(char_value(replacement));
                let collapsed = raw_remainder_dv1(bytes) < 2 && raw_remainder_dv1(&mutated) < 2;
                prop_assert!(delta.is_multiple_of(11) || collapsed, "{} -> {}", doc, mutated_str);
            }
        }

        #[test]
        fn numeric_single_digit_changes_to_check_digits_always_rejected(doc in any_valid(), which in 0usize..2, offset in 1u8..10) {
            let mut m = doc.clone().into_bytes();
            let pos = m.len() - 2 + which;
            m[pos] = b'0' + (m[pos] - b'0' + offset) % 10;
            prop_assert_eq!(
                Document::parse(&String::from_utf8(m).unwrap()),
                Err(DocumentError::WrongCheckDigits)
            );
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Document::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_document_like_strings(s in "[0-9A-Za-z./ -]{0,20}") {
            if let Ok(d) = Document::parse(&s) {
                prop_assert!(d.normalized().len() == 11 || d.normalized().len() == 14);
            }
        }

        #[test]
        fn mask_never_leaks_a_valid_document(
            doc in any_valid(),
            formatted in any::<bool>(),
            lower in any::<bool>(),
            prefix in "[a-zA-Zà-ú ,.:;!?()\n]{0,12}",
            suffix in "[a-zA-Zà-ú ,.:;!?()\n]{0,12}",
            sep_before in prop::sample::select(vec![" ", "\n", ": ", "(", " \"", ""]),
            sep_after in prop::sample::select(vec![" ", ".", ",", ")", "!", "\n", ""]),
        ) {
            let d = Document::parse(&doc).unwrap();
            let mut shown = if formatted { d.formatted() } else { doc.clone() };
            if lower { shown = shown.to_lowercase(); }
            // Letter-bearing CNPJs need a non-alphanumeric neighbour to be told
            // apart from words; digits-only documents do not.
            let has_letters = doc.bytes().any(|b| b.is_ascii_alphabetic());
            let (before, after) = if has_letters {
                (format!("{prefix} "), format!(" {suffix}"))
            } else {
                (format!("{prefix}{sep_before}"), format!("{sep_after}{suffix}"))
            };
            let text = format!("{before}{shown}{after}");
            let out = mask_documents_in(&text);
            prop_assert!(!out.to_uppercase().contains(&doc), "{:?} -> {:?}", text, out);
            prop_assert!(!out.to_uppercase().contains(&d.formatted()), "{:?} -> {:?}", text, out);
            // Glued to the prefix, a digits-only document may be swallowed by
            // a longer CNPJ-shaped match (e.g. "Aa.a00000000191"): still
            // masked, just with the other shape.
            if has_letters || !sep_before.is_empty() || prefix.is_empty() {
                prop_assert!(out.contains(&d.masked()), "{:?} -> {:?}", text, out);
            }
        }

        #[test]
        fn mask_never_panics_and_keeps_text_without_documents(s in "[^0-9]{0,60}") {
            prop_assert_eq!(mask_documents_in(&s), s);
        }

        #[test]
        fn mask_never_panics(s in ".{0,80}") {
            let _ = mask_documents_in(&s);
        }
    }
}
