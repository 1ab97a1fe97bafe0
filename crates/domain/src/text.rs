//! Text helpers for matching what customers type and for filling message
//! templates.

use std::collections::BTreeMap;

/// Lower-cases, strips Portuguese (and other Latin) accents, trims and
/// collapses inner whitespace, so "  Reclamação   e CANCELAMENTO " and
/// "reclamacao e cancelamento" compare equal.
///
/// Both precomposed letters (`ã`) and decomposed ones (`a` + U+0303, which
/// some phone keyboards send) are folded.
pub fn fold_for_match(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if is_combining_mark(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        match strip_accent(c) {
            Some(plain) => out.push_str(plain),
            None => out.push(c),
        }
    }
    out
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}')
}

fn strip_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'é' | 'è' | 'ê' | 'ë' | 'ē' => "e",
        'í' | 'ì' | 'î' | 'ï' | 'ī' => "i",
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ō' => "o",
        'ú' | 'ù' | 'û' | 'ü' | 'ū' => "u",
        'ç' => "c",
        'ñ' => "n",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'ª' => "a",
        'º' => "o",
        _ => return None,
    })
}

/// Splits folded text into alphanumeric words, dropping punctuation and emoji.
pub(crate) fn words(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Replaces `{{name}}` (spaces allowed inside the braces) with `vars[name]`;
/// unknown variables become the empty string.
///
/// Also supports sections so greetings read well when a variable is missing:
/// `{{#nome}}, {{nome}}{{/nome}}` renders its body only when `nome` is
/// non-blank, `{{^nome}}...{{/nome}}` only when it is blank. Values are
/// inserted verbatim and never re-scanned, so a customer named `{{protocolo}}`
/// cannot pull other variables into a message. An unterminated `{{` is kept
/// as typed.
pub fn render_template(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    render_into(template, vars, &mut out);
    out
}

fn render_into(template: &str, vars: &BTreeMap<String, String>, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            out.push_str(&rest[open..]);
            return;
        };
        let tag = after_open[..close].trim();
        let after_tag = &after_open[close + 2..];
        if let Some(section) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^')) {
            let name = section.trim();
            let inverted = tag.starts_with('^');
            match find_section_end(after_tag, name) {
                Some((body, after_section)) => {
                    let present = vars.get(name).is_some_and(|v| !v.trim().is_empty());
                    if present != inverted {
                        render_into(body, vars, out);
                    }
                    rest = after_section;
                }
                None => {
                    // No matching close: drop the stray opener, keep the text.
                    rest = after_tag;
                }
            }
            continue;
        }
        if tag.starts_with('/') {
            // Stray closer without an opener.
            rest = after_tag;
            continue;
        }
        if let Some(value) = vars.get(tag) {
            out.push_str(value);
        }
        rest = after_tag;
    }
    out.push_str(rest);
}

/// Finds the `{{/name}}` closing a section, skipping nested sections of the
/// same name; returns the body and the text after the closer.
fn find_section_end<'a>(s: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let mut depth = 0usize;
    let mut pos = 0;
    while let Some(open) = s[pos..].find("{{") {
        let start = pos + open;
        let inner_start = start + 2;
        let close = s[inner_start..].find("}}")? + inner_start;
        let tag = s[inner_start..close].trim();
        let end = close + 2;
        if let Some(n) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^'))
            && n.trim() == name
        {
            depth += 1;
        } else if let Some(n) = tag.strip_prefix('/')
            && n.trim() == name
        {
            if depth == 0 {
                return Some((&s[..start], &s[end..]));
            }
            depth -= 1;
        }
        pos = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn folds_portuguese() {
        assert_eq!(
            fold_for_match("  Reclamação   e\tCANCELAMENTO \n"),
            "reclamacao e cancelamento"
        );
        assert_eq!(fold_for_match("ÁÉÍÓÚ ÂÊÔ ÃÕ À Ç Ü"), "aeiou aeo ao a c u");
        assert_eq!(fold_for_match("Informações"), "informacoes");
        // Decomposed: a + combining tilde, c + combining cedilla.
        assert_eq!(
            fold_for_match("Informa\u{0063}\u{0327}o\u{0303}es"),
            "informacoes"
        );
        assert_eq!(fold_for_match(""), "");
        assert_eq!(fold_for_match("   "), "");
        assert_eq!(fold_for_match("2."), "2.");
        assert_eq!(fold_for_match("Olá 👋"), "ola 👋");
        assert_eq!(fold_for_match("1º andar"), "1o andar");
    }

    #[test]
    fn words_split_on_punctuation() {
        assert_eq!(
            words("quero falar com atendente!!"),
            vec!["quero", "falar", "com", "atendente"]
        );
        assert_eq!(
            words("reclamacao/cancelamento"),
            vec!["reclamacao", "cancelamento"]
        );
        assert!(words("?!").is_empty());
    }

    #[test]
    fn renders_variables() {
        let v = vars(&[
            ("nome", "Ana"),
            ("protocolo", "20261125000001"),
            ("contact.code", "x"),
        ]);
        assert_eq!(
            render_template("Olá, {{nome}}! Protocolo {{ protocolo }}.", &v),
            "Olá, Ana! Protocolo 20261125000001."
        );
        assert_eq!(
            render_template("{{contact.code}}{{desconhecida}}|", &v),
            "x|"
        );
        assert_eq!(render_template("sem variáveis", &v), "sem variáveis");
        assert_eq!(render_template("{{nome", &v), "{{nome");
        assert_eq!(render_template("{{}}", &v), "");
        assert_eq!(render_template("a {{/nome}} b", &v), "a  b");
        assert_eq!(render_template("}} {{nome}} {", &v), "}} Ana {");
    }

    #[test]
    fn values_are_not_rescanned() {
        let v = vars(&[("nome", "{{protocolo}}"), ("protocolo", "123")]);
        assert_eq!(render_template("Oi {{nome}}", &v), "Oi {{protocolo}}");
    }

    #[test]
    fn sections() {
        let t = "Olá{{#nome}}, {{nome}}{{/nome}}!{{^nome}} Como podemos chamar você?{{/nome}}";
        assert_eq!(render_template(t, &vars(&[("nome", "Ana")])), "Olá, Ana!");
        assert_eq!(
            render_template(t, &vars(&[])),
            "Olá! Como podemos chamar você?"
        );
        assert_eq!(
            render_template(t, &vars(&[("nome", "  ")])),
            "Olá! Como podemos chamar você?"
        );
        let nested = "{{#a}}[{{#a}}in{{/a}}]{{/a}}";
        assert_eq!(render_template(nested, &vars(&[("a", "1")])), "[in]");
        assert_eq!(
            render_template("{{#a}}sem fim", &vars(&[("a", "1")])),
            "sem fim"
        );
    }

    proptest! {
        #[test]
        fn fold_is_idempotent_and_trimmed(s in ".{0,40}") {
            let f = fold_for_match(&s);
            prop_assert_eq!(fold_for_match(&f), f.clone());
            prop_assert_eq!(f.trim(), f.as_str());
            prop_assert!(!f.contains("  "));
        }

        #[test]
        fn render_without_braces_is_identity(s in "[^{}]{0,60}") {
            prop_assert_eq!(render_template(&s, &BTreeMap::new()), s);
        }

        #[test]
        fn render_never_panics(s in "[a-z{}#^/ ]{0,40}") {
            let _ = render_template(&s, &vars(&[("a", "1"), ("b", "")]));
        }
    }
}
