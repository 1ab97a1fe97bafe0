//! The message as the customer sees it ([`render`]) and Meta's send-side
//! `components` array ([`send_components`]).

use super::model::*;
use super::values::parameters;
use super::{MediaValue, Rendered, RenderedButton, Values, vars};
use serde_json::{Value, json};

/// Shown for an authentication code when no value is given (authentication
/// templates have no examples).
pub const SAMPLE_CODE: &str = "123456";

/// The message as the customer will see it.
///
/// A variable without a value shows the template's example for it, so the same
/// call renders the editor's preview; a variable with neither stays as typed
/// (`{{1}}`). Values are inserted verbatim and never re-scanned. AUTHENTICATION
/// templates created without text get Meta's fixed text in the template's
/// language (pt, es or en).
pub fn render(def: &TemplateDefinition, values: &Values) -> Rendered {
    let mut out = Rendered::default();
    if let Some(h) = def.header() {
        out.header_media = h.format.media_kind();
        if h.format == HeaderFormat::Text {
            let text = h.text.as_deref().unwrap_or("");
            out.header = Some(vars::substitute(text, |n| {
                values
                    .header
                    .get(n)
                    .cloned()
                    .or_else(|| header_example(def, h, n))
            }));
        }
    }
    out.body = body_text(def, values, true);
    out.footer = footer_text(def);
    for (i, b) in def.buttons().iter().enumerate() {
        let value = values.buttons.get(&i);
        let rendered = match b {
            Button::QuickReply(q) => button(b, &q.text),
            Button::Url(u) if b.is_otp() => button(b, &u.text),
            Button::Url(u) => {
                let mut r = button(b, &u.text);
                r.url = hydrated_url(b, value).or_else(|| {
                    u.example
                        .as_ref()
                        .and_then(|e| e.first().cloned())
                        .or_else(|| Some(u.url.clone()))
                });
                r
            }
            Button::PhoneNumber(p) => {
                let mut r = button(b, &p.text);
                r.phone_number = Some(p.phone_number.clone());
                r
            }
            Button::CopyCode(c) => button(b, c.text.as_deref().unwrap_or(copy_label(def))),
            Button::Otp(o) => {
                let autofill = o.extra.get("autofill_text").and_then(Value::as_str);
                let label = match o.otp_type.as_str() {
                    "ONE_TAP" | "ZERO_TAP" => autofill.or(o.text.as_deref()),
                    _ => o.text.as_deref(),
                };
                button(b, label.unwrap_or(copy_label(def)))
            }
            Button::Other(_) => button(b, b.text().unwrap_or("")),
        };
        out.buttons.push(rendered);
    }
    out
}

fn button(b: &Button, text: &str) -> RenderedButton {
    RenderedButton {
        kind: b.kind().to_string(),
        text: text.to_string(),
        url: None,
        phone_number: None,
    }
}

fn lang_prefix(def: &TemplateDefinition) -> &str {
    def.language.split('_').next().unwrap_or("")
}

fn copy_label(def: &TemplateDefinition) -> &'static str {
    match lang_prefix(def) {
        "pt" => "Copiar código",
        "es" => "Copiar código",
        _ => "Copy code",
    }
}

fn header_example(def: &TemplateDefinition, h: &Header, name: &str) -> Option<String> {
    let ex = h.example.as_ref()?;
    if vars::is_named(def) {
        ex.header_text_named_params
            .as_ref()?
            .iter()
            .find(|e| e.param_name == name)
            .map(|e| e.example.clone())
    } else {
        let n: usize = name.parse().ok()?;
        ex.header_text.as_ref()?.get(n.checked_sub(1)?).cloned()
    }
}

fn body_example(def: &TemplateDefinition, name: &str) -> Option<String> {
    let ex = def.body()?.example.as_ref()?;
    if vars::is_named(def) {
        ex.body_text_named_params
            .as_ref()?
            .iter()
            .find(|e| e.param_name == name)
            .map(|e| e.example.clone())
    } else {
        let n: usize = name.parse().ok()?;
        ex.body_text
            .as_ref()?
            .first()?
            .get(n.checked_sub(1)?)
            .cloned()
    }
}

/// Meta's fixed authentication body, for templates created without text.
fn auth_body(def: &TemplateDefinition) -> String {
    let security = def
        .body()
        .and_then(|b| b.extra.get("add_security_recommendation"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (code, tip) = match lang_prefix(def) {
        "pt" => (
            "*{{1}}* é seu código de verificação.",
            " Para sua segurança, não o compartilhe.",
        ),
        "es" => (
            "Tu código de verificación es *{{1}}*.",
            " Por tu seguridad, no lo compartas.",
        ),
        _ => (
            "*{{1}}* is your verification code.",
            " For your security, do not share this code.",
        ),
    };
    if security {
        format!("{code}{tip}")
    } else {
        code.to_string()
    }
}

fn body_text(def: &TemplateDefinition, values: &Values, with_examples: bool) -> String {
    let auth = def.category == Category::Authentication;
    let text = match def.body().and_then(|b| b.text.clone()) {
        Some(t) if !t.trim().is_empty() => t,
        _ if auth => auth_body(def),
        _ => String::new(),
    };
    vars::substitute(&text, |n| {
        values.body.get(n).cloned().or_else(|| {
            if !with_examples {
                return None;
            }
            body_example(def, n).or_else(|| auth.then(|| SAMPLE_CODE.to_string()))
        })
    })
}

fn footer_text(def: &TemplateDefinition) -> Option<String> {
    let f = def.footer()?;
    if let Some(t) = &f.text {
        return Some(t.clone());
    }
    let minutes = f.extra.get("code_expiration_minutes")?.as_u64()?;
    Some(match lang_prefix(def) {
        "pt" => format!("Este código expira em {minutes} minutos."),
        "es" => format!("Este código caduca en {minutes} minutos."),
        _ => format!("This code expires in {minutes} minutes."),
    })
}

/// The body with the given values only (missing variables stay as typed).
pub(super) fn hydrated_body(def: &TemplateDefinition, values: &Values) -> String {
    body_text(def, values, false)
}

/// The text header with the given values only; `None` when there is no text header.
pub(super) fn hydrated_header(def: &TemplateDefinition, values: &Values) -> Option<String> {
    let h = def.header().filter(|h| h.format == HeaderFormat::Text)?;
    let text = h.text.as_deref().unwrap_or("");
    Some(vars::substitute(text, |n| values.header.get(n).cloned()))
}

/// A URL button's final URL with `value` as its suffix; `None` unless it is a
/// dynamic URL button with a value.
pub(super) fn hydrated_url(b: &Button, value: Option<&String>) -> Option<String> {
    let Button::Url(u) = b else { return None };
    let value = value?;
    if vars::variables(&u.url).is_empty() {
        return None;
    }
    Some(vars::substitute(&u.url, |_| Some(value.clone())))
}

fn text_param(named: bool, name: &str, value: &str) -> Value {
    if named {
        json!({"type": "text", "parameter_name": name, "text": value})
    } else {
        json!({"type": "text", "text": value})
    }
}

fn media_param(kind: MediaKind, value: &MediaValue) -> Value {
    let t = kind.as_str();
    match value {
        MediaValue::Link(link) => json!({"type": t, t: {"link": link}}),
        MediaValue::Id(id) => json!({"type": t, t: {"id": id}}),
        MediaValue::Location(l) => json!({"type": "location", "location": l}),
    }
}

/// Meta's send-side `components` array for `POST /{phone-number-id}/messages`
/// (`template.components`), in the shapes of Meta's OpenAPI examples: `header`
/// with a text or image/video/document `{link|id}` (or location) parameter,
/// `body` with `{type:text,text}` parameters (plus `parameter_name` for NAMED
/// templates), and `button` entries with `sub_type` `url` / `copy_code` /
/// `quick_reply` and a string `index`.
///
/// Call [`super::check_values`] first: a missing value is left out here (never
/// replaced by the example), so Meta answers 132000 instead of sending a sample
/// to a customer. A quick reply gets a `payload` only when `values.buttons` has
/// one for its index; an OTP button takes `values.buttons[i]` or else the code in
/// body variable "1".
pub fn send_components(def: &TemplateDefinition, values: &Values) -> Value {
    let wanted = parameters(def);
    let named = vars::is_named(def);
    let mut out = Vec::new();

    let mut header = Vec::new();
    for name in &wanted.header {
        if let Some(v) = values.header.get(name) {
            header.push(text_param(named, name, v));
        }
    }
    if let (Some(kind), Some(value)) = (wanted.header_media, &values.header_media) {
        header.push(media_param(kind, value));
    }
    if !header.is_empty() {
        out.push(json!({"type": "header", "parameters": header}));
    }

    let body: Vec<Value> = wanted
        .body
        .iter()
        .filter_map(|name| values.body.get(name).map(|v| text_param(named, name, v)))
        .collect();
    if !body.is_empty() {
        out.push(json!({"type": "body", "parameters": body}));
    }

    for (i, b) in def.buttons().iter().enumerate() {
        let value = values.buttons.get(&i);
        let index = i.to_string();
        let entry = match b {
            Button::Otp(_) | Button::Url(_) if b.is_otp() => {
                value.or_else(|| values.body.get("1")).map(|v| {
                    json!({"type": "button", "sub_type": "url", "index": index,
                           "parameters": [{"type": "text", "text": v}]})
                })
            }
            Button::Url(_) if wanted.buttons.iter().any(|(j, _)| *j == i) => value.map(|v| {
                json!({"type": "button", "sub_type": "url", "index": index,
                       "parameters": [{"type": "text", "text": v}]})
            }),
            Button::CopyCode(_) => value.map(|v| {
                json!({"type": "button", "sub_type": "copy_code", "index": index,
                       "parameters": [{"type": "coupon_code", "coupon_code": v}]})
            }),
            Button::QuickReply(_) => value.map(|v| {
                json!({"type": "button", "sub_type": "quick_reply", "index": index,
                       "parameters": [{"type": "payload", "payload": v}]})
            }),
            _ => None,
        };
        out.extend(entry);
    }
    Value::Array(out)
}
