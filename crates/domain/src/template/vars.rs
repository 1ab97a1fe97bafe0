//! Finding `{{...}}` placeholders in template text.

use super::model::{ParameterFormat, TemplateDefinition};
use std::ops::Range;

/// One `{{...}}` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    /// What is between the braces, verbatim.
    pub raw: String,
    /// Byte range of the whole `{{...}}`.
    pub span: Range<usize>,
}

/// What a placeholder's content is, judged on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `{{1}}`, `{{12}}` (no leading zero).
    Positional(u32),
    /// `{{first_name}}`: lowercase letter, then lowercase letters, digits, `_`.
    Named,
    /// Anything else: `{{ 1 }}`, `{{Nome}}`, `{{}}`, `{{01}}`.
    Invalid,
}

impl Placeholder {
    pub fn kind(&self) -> Kind {
        kind_of(&self.raw)
    }
}

pub(crate) fn kind_of(raw: &str) -> Kind {
    let bytes = raw.as_bytes();
    if bytes.is_empty() {
        return Kind::Invalid;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        if bytes[0] == b'0' {
            return Kind::Invalid;
        }
        return raw.parse().map(Kind::Positional).unwrap_or(Kind::Invalid);
    }
    if bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return Kind::Named;
    }
    Kind::Invalid
}

/// Every `{{...}}` of `text`, left to right. An opener without a closer is not a
/// placeholder (Meta shows it as typed).
pub(crate) fn scan(text: &str) -> Vec<Placeholder> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(mut open) = text[from..].find("{{").map(|i| from + i) {
        // `{{{1}}`: the innermost pair opens the placeholder, the extra brace is text.
        while text.as_bytes().get(open + 2) == Some(&b'{') {
            open += 1;
        }
        let inner_start = open + 2;
        let Some(close) = text[inner_start..].find("}}").map(|i| inner_start + i) else {
            break;
        };
        let inner = &text[inner_start..close];
        if let Some(nested) = inner.rfind("{{") {
            from = inner_start + nested;
            continue;
        }
        out.push(Placeholder {
            raw: inner.to_string(),
            span: open..close + 2,
        });
        from = close + 2;
    }
    out
}

/// The distinct variable names of `text`, as a send must supply them: positional
/// ones sorted by number, named ones in order of first appearance. Invalid
/// placeholders are not variables.
pub(crate) fn variables(text: &str) -> Vec<String> {
    let found = scan(text);
    let mut numbers: Vec<u32> = found
        .iter()
        .filter_map(|p| match p.kind() {
            Kind::Positional(n) => Some(n),
            _ => None,
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut out: Vec<String> = numbers.into_iter().map(|n| n.to_string()).collect();
    for p in &found {
        if p.kind() == Kind::Named && !out.contains(&p.raw) {
            out.push(p.raw.clone());
        }
    }
    out
}

/// Replaces each valid placeholder with `lookup(name)`; `None` keeps it as typed.
pub(crate) fn substitute(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for p in scan(text) {
        if p.kind() == Kind::Invalid {
            continue;
        }
        if let Some(value) = lookup(&p.raw) {
            out.push_str(&text[last..p.span.start]);
            out.push_str(&value);
            last = p.span.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Whether variables of `def` are written by name.
pub(crate) fn is_named(def: &TemplateDefinition) -> bool {
    def.parameter_format == ParameterFormat::Named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_positional_named_and_invalid() {
        let found = scan("Oi {{1}}, {{nome}} e {{ 2 }} {{Nome}} {{}} {{01}} {{3");
        let kinds: Vec<Kind> = found.iter().map(Placeholder::kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Positional(1),
                Kind::Named,
                Kind::Invalid,
                Kind::Invalid,
                Kind::Invalid,
                Kind::Invalid
            ]
        );
    }

    #[test]
    fn triple_brace_takes_the_inner_pair() {
        let found = scan("a {{{1}} b");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].raw, "1");
        assert_eq!(found[0].span, 3..8);
    }

    #[test]
    fn variables_are_distinct_and_ordered() {
        assert_eq!(variables("{{2}} {{1}} {{2}}"), vec!["1", "2"]);
        assert_eq!(variables("{{b}} {{a}} {{b}}"), vec!["b", "a"]);
    }

    #[test]
    fn substitute_keeps_unknown_as_typed() {
        let out = substitute("Oi {{1}}, pedido {{2}}", |n| {
            (n == "1").then(|| "Ana".into())
        });
        assert_eq!(out, "Oi Ana, pedido {{2}}");
    }
}
