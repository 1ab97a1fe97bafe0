//! Meta's template creation rules, checked before submitting so every problem
//! shows next to its field in pt-BR instead of one cryptic rejection at a time.
//!
//! Rules and their codes (the field path is in each [`Problem`]):
//!
//! | code | rule (Meta error when known) |
//! |---|---|
//! | `name_required`, `name_invalid`, `name_too_long` | lowercase letters, digits and `_`, ≤ 512 |
//! | `language_unsupported` | one of [`super::LANGUAGES`] |
//! | `component_duplicate` | at most one HEADER, BODY, FOOTER and BUTTONS |
//! | `body_required`, `body_too_long` | BODY text required (except AUTHENTICATION), ≤ 1024 (2388040) |
//! | `header_text_required`, `header_too_long`, `header_too_many_variables` | TEXT header ≤ 60, ≤ 1 variable |
//! | `header_example_required` | media header needs an `example.header_handle` (2388047) |
//! | `footer_text_required`, `footer_too_long`, `footer_variables` | ≤ 60, no variables (2388073) |
//! | `variable_invalid`, `variable_name_invalid` | `{{1}}` or `{{snake_case}}` |
//! | `variable_format_mismatch`, `variables_mixed` | variables match `parameter_format`, never mixed |
//! | `variables_not_sequential` | positional numbers are exactly 1..n |
//! | `variables_adjacent` | two variables separated by nothing or only spaces |
//! | `variable_at_start`, `variable_at_end` | body neither starts nor ends with a variable (2388299) |
//! | `too_many_variables` | fewer than 2n + 1 fixed words for n variables ([`words_needed`], 2388293) |
//! | `example_required`, `example_count_mismatch`, `example_empty`, `example_format_mismatch` | examples for every variable |
//! | `buttons_empty`, `buttons_too_many`, `url_buttons_too_many`, `phone_buttons_too_many`, `copy_code_buttons_too_many` | ≤ 10 buttons, ≤ 2 URL, ≤ 1 phone, ≤ 1 copy code |
//! | `quick_replies_not_grouped` | quick replies are not interleaved with other buttons |
//! | `button_text_required`, `button_text_too_long`, `button_text_duplicate` | label ≤ 25, unique |
//! | `button_url_invalid`, `button_url_too_long`, `button_url_variable_position`, `button_url_example_required` | http(s) URL ≤ 2000, one variable only at the end, with an example |
//! | `button_phone_invalid` | E.164 |
//! | `button_copy_code_example_required`, `button_copy_code_example_too_long` | sample code ≤ 15 |
//! | `auth_otp_button_required`, `auth_header_not_allowed`, `auth_button_not_allowed`, `otp_button_not_allowed`, `otp_type_invalid` | AUTHENTICATION: one OTP button, no header; OTP only there |

use super::Problem;
use super::languages::is_supported_language;
use super::model::*;
use super::vars::{self, Kind, Placeholder};
use std::collections::BTreeSet;

pub const NAME_MAX: usize = 512;
pub const BODY_MAX: usize = 1024;
pub const HEADER_TEXT_MAX: usize = 60;
pub const FOOTER_MAX: usize = 60;
pub const BUTTONS_MAX: usize = 10;
pub const URL_BUTTONS_MAX: usize = 2;
pub const BUTTON_TEXT_MAX: usize = 25;
pub const BUTTON_URL_MAX: usize = 2000;
pub const COPY_CODE_MAX: usize = 15;

/// Meta's 2388293 ("too many variables for the message length") has no published
/// formula. Atende asks for at least this many words of fixed text per variable
/// occurrence in the body, plus one (the rule graph-sim applies, so what passes here
/// passes there): "Olá {{1}}, seu pedido {{2}} saiu hoje" has 5 words for 2
/// variables: accepted; "Olá {{1}}, seu pedido {{2}} saiu" has 4: refused.
pub const WORDS_PER_VARIABLE: usize = 2;

/// Fixed words the body needs for `variables` variable occurrences.
pub fn words_needed(variables: usize) -> usize {
    WORDS_PER_VARIABLE * variables + 1
}

const OTP_TYPES: [&str; 3] = ["COPY_CODE", "ONE_TAP", "ZERO_TAP"];

/// Every problem of `def` against Meta's creation rules (not only the first).
pub fn validate(def: &TemplateDefinition) -> Vec<Problem> {
    let mut v = Validator {
        def,
        out: Vec::new(),
    };
    v.name();
    v.language();
    v.components();
    v.out
}

struct Validator<'a> {
    def: &'a TemplateDefinition,
    out: Vec<Problem>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

impl Validator<'_> {
    fn push(&mut self, field: impl Into<String>, code: &'static str, pt: String, en: String) {
        self.out.push(Problem::new(field, code, pt, en));
    }

    fn is_auth(&self) -> bool {
        self.def.category == Category::Authentication
    }

    fn name(&mut self) {
        let name = &self.def.name;
        if name.is_empty() {
            self.push(
                "name",
                "name_required",
                "Informe o nome do template.".into(),
                "The template name is required.".into(),
            );
            return;
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            self.push(
                "name",
                "name_invalid",
                "O nome aceita apenas letras minúsculas sem acento, números e _ (ex.: lembrete_pagamento)."
                    .into(),
                "The name may only contain lowercase letters, digits and underscores.".into(),
            );
        }
        if chars(name) > NAME_MAX {
            self.push(
                "name",
                "name_too_long",
                format!("O nome pode ter no máximo {NAME_MAX} caracteres."),
                format!("The name may have at most {NAME_MAX} characters."),
            );
        }
    }

    fn language(&mut self) {
        if !is_supported_language(&self.def.language) {
            let lang = &self.def.language;
            self.push(
                "language",
                "language_unsupported",
                format!("Idioma «{lang}» não é aceito pela Meta (ex.: pt_BR, en_US, es)."),
                format!("Language \"{lang}\" is not supported by Meta (e.g. pt_BR, en_US, es)."),
            );
        }
    }

    fn components(&mut self) {
        let mut seen = BTreeSet::new();
        for c in &self.def.components {
            let kind = match c {
                Component::Header(_) => "header",
                Component::Body(_) => "body",
                Component::Footer(_) => "footer",
                Component::Buttons(_) => "buttons",
                Component::Other(_) => continue,
            };
            if !seen.insert(kind) {
                self.push(
                    format!("components.{kind}"),
                    "component_duplicate",
                    format!(
                        "O template tem mais de um componente {}.",
                        kind.to_uppercase()
                    ),
                    format!(
                        "The template has more than one {} component.",
                        kind.to_uppercase()
                    ),
                );
            }
        }
        let mut all_vars: Vec<Placeholder> = Vec::new();
        if let Some(h) = self.def.header() {
            all_vars.extend(self.header(h));
        }
        match self.def.body() {
            Some(b) => all_vars.extend(self.body(b)),
            None if !self.is_auth() => self.push(
                "components.body.text",
                "body_required",
                "O corpo da mensagem é obrigatório.".into(),
                "The body is required.".into(),
            ),
            None => {}
        }
        if let Some(f) = self.def.footer() {
            self.footer(f);
        }
        self.format_consistency(&all_vars);
        self.buttons();
        if self.is_auth() {
            self.authentication();
        }
    }

    fn header(&mut self, h: &Header) -> Vec<Placeholder> {
        if self.is_auth() {
            self.push(
                "components.header",
                "auth_header_not_allowed",
                "Templates de autenticação não podem ter cabeçalho.".into(),
                "Authentication templates cannot have a header.".into(),
            );
        }
        match &h.format {
            HeaderFormat::Text => {}
            HeaderFormat::Location | HeaderFormat::Other(_) => return Vec::new(),
            HeaderFormat::Image | HeaderFormat::Video | HeaderFormat::Document => {
                let has_handle = h
                    .example
                    .as_ref()
                    .and_then(|e| e.header_handle.as_ref())
                    .is_some_and(|v| v.iter().any(|s| !s.trim().is_empty()));
                if !has_handle {
                    self.push(
                        "components.header.example",
                        "header_example_required",
                        "Envie um arquivo de exemplo para o cabeçalho de mídia.".into(),
                        "A media header needs a sample file (example.header_handle).".into(),
                    );
                }
                return Vec::new();
            }
        }
        let text = h.text.as_deref().unwrap_or("");
        let field = "components.header.text";
        if text.trim().is_empty() {
            self.push(
                field,
                "header_text_required",
                "Informe o texto do cabeçalho.".into(),
                "The header text is required.".into(),
            );
            return Vec::new();
        }
        if chars(text) > HEADER_TEXT_MAX {
            self.push(
                field,
                "header_too_long",
                format!("O cabeçalho pode ter no máximo {HEADER_TEXT_MAX} caracteres."),
                format!("The header may have at most {HEADER_TEXT_MAX} characters."),
            );
        }
        let found = vars::scan(text);
        if found.len() > 1 {
            self.push(
                field,
                "header_too_many_variables",
                "O cabeçalho aceita no máximo uma variável.".into(),
                "The header accepts at most one variable.".into(),
            );
        }
        self.placeholders(field, &found);
        self.header_examples(h, &found);
        found
    }

    fn header_examples(&mut self, h: &Header, found: &[Placeholder]) {
        let names = distinct_valid(found);
        if names.is_empty() {
            return;
        }
        let field = "components.header.example";
        let ex = h.example.as_ref();
        let positional = ex.and_then(|e| e.header_text.as_ref());
        let named = ex.and_then(|e| e.header_text_named_params.as_ref());
        self.examples(field, &names, positional.map(Vec::as_slice), named);
    }

    fn body(&mut self, b: &Body) -> Vec<Placeholder> {
        let field = "components.body.text";
        let text = b.text.as_deref().unwrap_or("");
        if text.trim().is_empty() {
            if !self.is_auth() {
                self.push(
                    field,
                    "body_required",
                    "O corpo da mensagem é obrigatório.".into(),
                    "The body is required.".into(),
                );
            }
            return Vec::new();
        }
        if chars(text) > BODY_MAX {
            self.push(
                field,
                "body_too_long",
                format!("O corpo pode ter no máximo {BODY_MAX} caracteres."),
                format!("The body may have at most {BODY_MAX} characters."),
            );
        }
        let found = vars::scan(text);
        self.placeholders(field, &found);
        if self.is_auth() {
            // Meta writes authentication bodies itself; their placement rules do not apply.
            return found;
        }
        self.placement(field, text, &found);
        let names = distinct_valid(&found);
        if !names.is_empty() {
            let ex = b.example.as_ref();
            let positional = ex
                .and_then(|e| e.body_text.as_ref())
                .map(|rows| rows.first().map(Vec::as_slice).unwrap_or(&[]));
            let named = ex.and_then(|e| e.body_text_named_params.as_ref());
            self.examples("components.body.example", &names, positional, named);
        }
        found
    }

    /// Syntax of each placeholder and agreement with the declared format.
    fn placeholders(&mut self, field: &str, found: &[Placeholder]) {
        let named_format = vars::is_named(self.def);
        let mut mismatch = false;
        for p in found {
            match p.kind() {
                Kind::Invalid => {
                    let raw = &p.raw;
                    if raw.chars().any(|c| c.is_alphabetic()) && !raw.contains(char::is_whitespace)
                    {
                        self.push(
                            field,
                            "variable_name_invalid",
                            format!(
                                "Variável «{{{{{raw}}}}}»: nomes usam letras minúsculas, números e _ (ex.: {{{{primeiro_nome}}}})."
                            ),
                            format!(
                                "Variable \"{{{{{raw}}}}}\": names use lowercase letters, digits and _ (e.g. {{{{first_name}}}})."
                            ),
                        );
                    } else {
                        self.push(
                            field,
                            "variable_invalid",
                            format!("Variável «{{{{{raw}}}}}» inválida: use {{{{1}}}}, {{{{2}}}}... sem espaços."),
                            format!("Invalid variable \"{{{{{raw}}}}}\": use {{{{1}}}}, {{{{2}}}}... without spaces."),
                        );
                    }
                }
                Kind::Positional(_) if named_format => mismatch = true,
                Kind::Named if !named_format => mismatch = true,
                _ => {}
            }
        }
        if mismatch {
            let (pt, en) = if named_format {
                (
                    "O template usa variáveis nomeadas ({{primeiro_nome}}); não misture com {{1}}.",
                    "The template uses named variables ({{first_name}}); do not use {{1}}.",
                )
            } else {
                (
                    "O template usa variáveis numeradas ({{1}}, {{2}}...); para nomes, escolha o formato nomeado.",
                    "The template uses positional variables ({{1}}, {{2}}...); choose the NAMED format for names.",
                )
            };
            self.push(field, "variable_format_mismatch", pt.into(), en.into());
        }
    }

    /// Sequence, adjacency, start/end and density of body variables.
    fn placement(&mut self, field: &str, text: &str, found: &[Placeholder]) {
        if found.is_empty() {
            return;
        }
        for pair in found.windows(2) {
            let between = &text[pair[0].span.end..pair[1].span.start];
            if between.trim().is_empty() {
                self.push(
                    field,
                    "variables_adjacent",
                    format!(
                        "As variáveis {{{{{}}}}} e {{{{{}}}}} estão juntas; coloque texto entre elas.",
                        pair[0].raw, pair[1].raw
                    ),
                    format!(
                        "Variables {{{{{}}}}} and {{{{{}}}}} are adjacent; put text between them.",
                        pair[0].raw, pair[1].raw
                    ),
                );
                break;
            }
        }
        if text[..found[0].span.start].trim().is_empty() {
            self.push(
                field,
                "variable_at_start",
                "O corpo não pode começar com uma variável.".into(),
                "The body cannot start with a variable.".into(),
            );
        }
        if let Some(last) = found.last()
            && text[last.span.end..].trim().is_empty()
        {
            self.push(
                field,
                "variable_at_end",
                "O corpo não pode terminar com uma variável; acrescente texto (ou pontuação) depois dela."
                    .into(),
                "The body cannot end with a variable; add text after it.".into(),
            );
        }
        let mut fixed = String::with_capacity(text.len());
        let mut last = 0;
        for p in found {
            fixed.push_str(&text[last..p.span.start]);
            fixed.push(' ');
            last = p.span.end;
        }
        fixed.push_str(&text[last..]);
        let words = fixed
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .count();
        if words < words_needed(found.len()) {
            self.push(
                field,
                "too_many_variables",
                format!(
                    "Variáveis demais para o tamanho do texto: {} variáveis pedem ao menos {} palavras fixas (há {words}).",
                    found.len(),
                    words_needed(found.len())
                ),
                format!(
                    "Too many variables for the text length: {} variables need at least {} fixed words ({words} found).",
                    found.len(),
                    words_needed(found.len())
                ),
            );
        }
    }

    /// Positional numbers across header and body are each 1..n; kinds never mixed.
    fn format_consistency(&mut self, all: &[Placeholder]) {
        let named = all.iter().any(|p| p.kind() == Kind::Named);
        let positional = all.iter().any(|p| matches!(p.kind(), Kind::Positional(_)));
        if named && positional {
            self.push(
                "components",
                "variables_mixed",
                "Não misture variáveis numeradas ({{1}}) e nomeadas ({{nome}}) no mesmo template."
                    .into(),
                "Do not mix positional ({{1}}) and named ({{name}}) variables.".into(),
            );
        }
        let header = self
            .def
            .header()
            .and_then(|h| h.text.as_deref())
            .filter(|_| {
                self.def
                    .header()
                    .is_some_and(|h| h.format == HeaderFormat::Text)
            });
        let body = self.def.body().and_then(|b| b.text.as_deref());
        for (field, text) in [
            ("components.header.text", header),
            ("components.body.text", body),
        ] {
            let Some(text) = text else { continue };
            let mut numbers: Vec<u32> = vars::scan(text)
                .iter()
                .filter_map(|p| match p.kind() {
                    Kind::Positional(n) => Some(n),
                    _ => None,
                })
                .collect();
            numbers.sort_unstable();
            numbers.dedup();
            let sequential = numbers.iter().zip(1u32..).all(|(n, want)| *n == want);
            if !sequential {
                let list: Vec<String> = numbers.iter().map(|n| format!("{{{{{n}}}}}")).collect();
                self.push(
                    field,
                    "variables_not_sequential",
                    format!(
                        "As variáveis devem ser {{{{1}}}}, {{{{2}}}}... em sequência, sem saltos (encontradas: {}).",
                        list.join(", ")
                    ),
                    format!(
                        "Variables must be {{{{1}}}}, {{{{2}}}}... in sequence without gaps (found: {}).",
                        list.join(", ")
                    ),
                );
            }
        }
    }

    /// Examples present, one per distinct variable, none blank, in the declared form.
    fn examples(
        &mut self,
        field: &str,
        names: &[String],
        positional: Option<&[String]>,
        named: Option<&Vec<NamedExample>>,
    ) {
        let named_format = vars::is_named(self.def);
        let wrong_form = if named_format {
            positional.is_some() && named.is_none()
        } else {
            named.is_some() && positional.is_none()
        };
        if wrong_form {
            let (pt, en) = if named_format {
                (
                    "Com variáveis nomeadas, os exemplos vão por nome (named_params).",
                    "Named variables take examples by name (named_params).",
                )
            } else {
                (
                    "Com variáveis numeradas, os exemplos vão em ordem, não por nome.",
                    "Positional variables take examples in order, not by name.",
                )
            };
            self.push(field, "example_format_mismatch", pt.into(), en.into());
            return;
        }
        let given: Vec<(String, String)> = if named_format {
            named
                .map(|v| {
                    v.iter()
                        .map(|e| (e.param_name.clone(), e.example.clone()))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            positional
                .map(|v| {
                    v.iter()
                        .enumerate()
                        .map(|(i, e)| ((i + 1).to_string(), e.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        if given.is_empty() {
            self.push(
                field,
                "example_required",
                "Informe um exemplo para cada variável (a Meta exige para aprovar).".into(),
                "Provide an example for every variable (Meta requires it).".into(),
            );
            return;
        }
        let given_names: BTreeSet<&str> = given.iter().map(|(n, _)| n.as_str()).collect();
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        if given.len() != names.len() || given_names != wanted {
            self.push(
                field,
                "example_count_mismatch",
                format!(
                    "O número de exemplos ({}) não confere com o de variáveis ({}).",
                    given.len(),
                    names.len()
                ),
                format!(
                    "The number of examples ({}) does not match the variables ({}).",
                    given.len(),
                    names.len()
                ),
            );
        }
        if given.iter().any(|(_, e)| e.trim().is_empty()) {
            self.push(
                field,
                "example_empty",
                "Há exemplo em branco; preencha todos.".into(),
                "An example is blank; fill them all.".into(),
            );
        }
    }

    fn footer(&mut self, f: &Footer) {
        let field = "components.footer.text";
        let Some(text) = f.text.as_deref() else {
            if !self.is_auth() {
                self.push(
                    field,
                    "footer_text_required",
                    "Informe o texto do rodapé ou remova-o.".into(),
                    "The footer needs text (or remove it).".into(),
                );
            }
            return;
        };
        if text.trim().is_empty() {
            self.push(
                field,
                "footer_text_required",
                "Informe o texto do rodapé ou remova-o.".into(),
                "The footer needs text (or remove it).".into(),
            );
        }
        if chars(text) > FOOTER_MAX {
            self.push(
                field,
                "footer_too_long",
                format!("O rodapé pode ter no máximo {FOOTER_MAX} caracteres."),
                format!("The footer may have at most {FOOTER_MAX} characters."),
            );
        }
        if !vars::scan(text).is_empty() {
            self.push(
                field,
                "footer_variables",
                "O rodapé não aceita variáveis.".into(),
                "The footer cannot contain variables.".into(),
            );
        }
    }

    fn buttons(&mut self) {
        let Some(component) = self.def.components.iter().find_map(|c| match c {
            Component::Buttons(b) => Some(b),
            _ => None,
        }) else {
            return;
        };
        super::buttons::check(self.def, component, &mut self.out);
    }

    fn authentication(&mut self) {
        let otp = self.def.buttons().iter().filter(|b| b.is_otp()).count();
        if otp == 0 {
            self.push(
                "components.buttons",
                "auth_otp_button_required",
                "Templates de autenticação precisam de um botão OTP (copiar código ou preenchimento automático)."
                    .into(),
                "Authentication templates need an OTP button (copy code or autofill).".into(),
            );
        }
    }
}

pub(super) fn distinct_valid(found: &[Placeholder]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in found {
        if p.kind() != Kind::Invalid && !out.contains(&p.raw) {
            out.push(p.raw.clone());
        }
    }
    out
}

pub(super) fn otp_type_ok(t: &str) -> bool {
    OTP_TYPES.contains(&t)
}
