//! Rules for the BUTTONS component.

use super::Problem;
use super::model::*;
use super::validate::{
    BUTTON_TEXT_MAX, BUTTON_URL_MAX, BUTTONS_MAX, COPY_CODE_MAX, URL_BUTTONS_MAX, otp_type_ok,
};
use super::vars::{self, Kind};
use std::collections::BTreeSet;

pub(super) fn check(def: &TemplateDefinition, component: &Buttons, out: &mut Vec<Problem>) {
    let buttons = &component.buttons;
    let mut push = |field: String, code: &'static str, pt: String, en: String| {
        out.push(Problem::new(field, code, pt, en));
    };
    let all = "components.buttons".to_string();
    if buttons.is_empty() {
        push(
            all.clone(),
            "buttons_empty",
            "Adicione ao menos um botão ou remova o bloco de botões.".into(),
            "Add at least one button or remove the buttons component.".into(),
        );
        return;
    }
    if buttons.len() > BUTTONS_MAX {
        push(
            all.clone(),
            "buttons_too_many",
            format!("No máximo {BUTTONS_MAX} botões por template."),
            format!("At most {BUTTONS_MAX} buttons per template."),
        );
    }
    let count = |kind: &str| buttons.iter().filter(|b| b.kind() == kind).count();
    if count("URL") > URL_BUTTONS_MAX {
        push(
            all.clone(),
            "url_buttons_too_many",
            format!("No máximo {URL_BUTTONS_MAX} botões de link."),
            format!("At most {URL_BUTTONS_MAX} URL buttons."),
        );
    }
    if count("PHONE_NUMBER") > 1 {
        push(
            all.clone(),
            "phone_buttons_too_many",
            "No máximo 1 botão de ligação.".into(),
            "At most 1 phone number button.".into(),
        );
    }
    if count("COPY_CODE") > 1 {
        push(
            all.clone(),
            "copy_code_buttons_too_many",
            "No máximo 1 botão de copiar código.".into(),
            "At most 1 copy code button.".into(),
        );
    }
    let switches = buttons
        .windows(2)
        .filter(|w| matches!(w[0], Button::QuickReply(_)) != matches!(w[1], Button::QuickReply(_)))
        .count();
    if switches > 1 {
        push(
            all.clone(),
            "quick_replies_not_grouped",
            "Agrupe as respostas rápidas: todas antes ou todas depois dos outros botões.".into(),
            "Group quick replies together, before or after the other buttons.".into(),
        );
    }

    let auth = def.category == Category::Authentication;
    let mut labels = BTreeSet::new();
    for (i, button) in buttons.iter().enumerate() {
        let at = |what: &str| format!("components.buttons[{i}].{what}");
        match button {
            Button::Otp(b) => {
                if !auth {
                    push(
                        at("type"),
                        "otp_button_not_allowed",
                        "Botões OTP só existem em templates de autenticação.".into(),
                        "OTP buttons are only for authentication templates.".into(),
                    );
                }
                if !otp_type_ok(&b.otp_type) {
                    push(
                        at("otp_type"),
                        "otp_type_invalid",
                        format!(
                            "Tipo de OTP «{}» inválido: use COPY_CODE, ONE_TAP ou ZERO_TAP.",
                            b.otp_type
                        ),
                        format!(
                            "Invalid OTP type \"{}\": use COPY_CODE, ONE_TAP or ZERO_TAP.",
                            b.otp_type
                        ),
                    );
                }
            }
            Button::Other(_) => {}
            _ if auth && button.is_otp() => {}
            _ if auth => push(
                at("type"),
                "auth_button_not_allowed",
                "Templates de autenticação só aceitam o botão OTP.".into(),
                "Authentication templates only accept the OTP button.".into(),
            ),
            _ => {}
        }

        let needs_label = matches!(
            button,
            Button::QuickReply(_) | Button::Url(_) | Button::PhoneNumber(_)
        );
        if let Some(text) = button.text().or(needs_label.then_some("")) {
            if needs_label && text.trim().is_empty() {
                push(
                    at("text"),
                    "button_text_required",
                    "Informe o texto do botão.".into(),
                    "The button text is required.".into(),
                );
            } else if text.chars().count() > BUTTON_TEXT_MAX {
                push(
                    at("text"),
                    "button_text_too_long",
                    format!("O texto do botão pode ter no máximo {BUTTON_TEXT_MAX} caracteres."),
                    format!("The button text may have at most {BUTTON_TEXT_MAX} characters."),
                );
            }
            let key = text.trim().to_lowercase();
            if !key.is_empty() && !labels.insert(key) {
                push(
                    at("text"),
                    "button_text_duplicate",
                    format!("Já existe um botão «{}».", text.trim()),
                    format!("There is already a button \"{}\".", text.trim()),
                );
            }
        }

        match button {
            // Meta's own URL form of an OTP button; not the business's link.
            Button::Url(_) if auth && button.is_otp() => {}
            Button::Url(b) => url_button(i, b, &mut push),
            Button::PhoneNumber(b) if !is_e164(&b.phone_number) => push(
                at("phone_number"),
                "button_phone_invalid",
                "Telefone inválido: use o formato internacional com código do país (ex.: +5511987654321)."
                    .into(),
                "Invalid phone number: use international format with country code (e.g. +5511987654321)."
                    .into(),
            ),
            Button::CopyCode(b) => match b.example_code() {
                None => push(
                    at("example"),
                    "button_copy_code_example_required",
                    "Informe um código de exemplo para o botão de copiar código.".into(),
                    "The copy code button needs a sample code.".into(),
                ),
                Some(code) if code.trim().is_empty() => push(
                    at("example"),
                    "button_copy_code_example_required",
                    "Informe um código de exemplo para o botão de copiar código.".into(),
                    "The copy code button needs a sample code.".into(),
                ),
                Some(code) if code.chars().count() > COPY_CODE_MAX => push(
                    at("example"),
                    "button_copy_code_example_too_long",
                    format!("O código pode ter no máximo {COPY_CODE_MAX} caracteres."),
                    format!("The code may have at most {COPY_CODE_MAX} characters."),
                ),
                Some(_) => {}
            },
            _ => {}
        }
    }
}

fn url_button(
    i: usize,
    b: &UrlButton,
    push: &mut impl FnMut(String, &'static str, String, String),
) {
    let field = format!("components.buttons[{i}].url");
    let url = b.url.trim();
    if !is_http_url(url) {
        push(
            field.clone(),
            "button_url_invalid",
            "Link inválido: use um endereço completo começando com https:// (ou http://).".into(),
            "Invalid URL: use a full address starting with https:// (or http://).".into(),
        );
    }
    if url.chars().count() > BUTTON_URL_MAX {
        push(
            field.clone(),
            "button_url_too_long",
            format!("O link pode ter no máximo {BUTTON_URL_MAX} caracteres."),
            format!("The URL may have at most {BUTTON_URL_MAX} characters."),
        );
    }
    let found = vars::scan(url);
    let dynamic = !found.is_empty();
    let well_placed = match found.as_slice() {
        [] => true,
        [only] => only.span.end == url.len() && only.kind() != Kind::Invalid,
        _ => false,
    };
    if !well_placed {
        push(
            field,
            "button_url_variable_position",
            "O link aceita uma única variável, no final (ex.: https://loja.com/pedido/{{1}})."
                .into(),
            "The URL accepts a single variable, at the end (e.g. https://shop.com/order/{{1}})."
                .into(),
        );
    }
    let has_example = b
        .example
        .as_ref()
        .is_some_and(|v| v.iter().any(|s| !s.trim().is_empty()));
    if dynamic && !has_example {
        push(
            format!("components.buttons[{i}].example"),
            "button_url_example_required",
            "Informe um link de exemplo completo para o botão com variável.".into(),
            "A URL button with a variable needs a full sample URL.".into(),
        );
    }
}

/// `https://host...` or `http://host...` with a non-empty host and no spaces.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty()
        && host.contains('.')
        && !url.contains(char::is_whitespace)
        && !host.starts_with('{')
}

/// E.164 as Meta accepts it on a button: optional "+", 8–15 digits, no leading 0;
/// spaces, dashes and parentheses tolerated.
pub(super) fn is_e164(raw: &str) -> bool {
    let trimmed = raw.trim();
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
    {
        return false;
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    (8..=15).contains(&digits.len()) && !digits.starts_with('0')
}
