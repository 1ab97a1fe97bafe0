//! What a send must supply ([`parameters`]) and whether given values satisfy it
//! ([`check_values`]), plus the two ways integrations pass values (a flat map of
//! variables, or Meta's own `components` array).

use super::model::*;
use super::render::{hydrated_body, hydrated_header, hydrated_url};
use super::{MediaValue, Parameters, Problem, Values, vars};
use serde_json::Value;
use std::collections::BTreeMap;

/// Variable name of a COPY_CODE button's value in [`Parameters::buttons`].
pub const COUPON_CODE: &str = "coupon_code";

/// Meta's limit on a hydrated text header (132005 beyond it).
const HEADER_HYDRATED_MAX: usize = 60;
/// Meta's limit on a hydrated body.
const BODY_HYDRATED_MAX: usize = 1024;
const URL_HYDRATED_MAX: usize = 2000;
const CODE_MAX: usize = 15;
/// Meta refuses body parameters with more than this many consecutive spaces.
const MAX_CONSECUTIVE_SPACES: usize = 4;

/// The variables and media a send of `def` must supply.
///
/// AUTHENTICATION templates need body variable "1" (the code); their OTP button
/// (also in the URL form Meta reads back) reuses it, so it is not listed in `buttons`. COPY_CODE buttons are listed as
/// (index, [`COUPON_CODE`]). Quick replies take an optional payload and are not listed.
pub fn parameters(def: &TemplateDefinition) -> Parameters {
    let mut p = Parameters::default();
    if let Some(h) = def.header() {
        p.header_media = h.format.media_kind();
        if h.format == HeaderFormat::Text {
            p.header = vars::variables(h.text.as_deref().unwrap_or(""));
        }
    }
    let body_text = def.body().and_then(|b| b.text.as_deref()).unwrap_or("");
    p.body = vars::variables(body_text);
    if def.category == Category::Authentication && p.body.is_empty() {
        p.body.push("1".into());
    }
    for (i, b) in def.buttons().iter().enumerate() {
        match b {
            Button::Url(_) if b.is_otp() => {}
            Button::Url(u) => {
                if let Some(name) = vars::variables(&u.url).into_iter().next() {
                    p.buttons.push((i, name));
                }
            }
            Button::CopyCode(_) => p.buttons.push((i, COUPON_CODE.into())),
            _ => {}
        }
    }
    p
}

fn braces(name: &str) -> String {
    format!("{{{{{name}}}}}")
}

/// Problems of `values` for a send of `def`: missing, extra, empty, too long, and
/// Meta's forbidden whitespace (newline, tab, more than four spaces in a row).
pub fn check_values(def: &TemplateDefinition, values: &Values) -> Vec<Problem> {
    let wanted = parameters(def);
    let mut out = Vec::new();
    text_values(
        "header",
        "do cabeçalho",
        "header",
        &wanted.header,
        &values.header,
        &mut out,
    );
    text_values(
        "body",
        "do corpo",
        "body",
        &wanted.body,
        &values.body,
        &mut out,
    );
    media(&wanted, values, &mut out);

    let complete_header = wanted.header.iter().all(|n| values.header.contains_key(n));
    if complete_header
        && let Some(h) = hydrated_header(def, values)
        && h.chars().count() > HEADER_HYDRATED_MAX
    {
        out.push(Problem::new(
            "values.header",
            "value_too_long",
            format!("Com esses valores o cabeçalho passa de {HEADER_HYDRATED_MAX} caracteres."),
            format!("With these values the header exceeds {HEADER_HYDRATED_MAX} characters."),
        ));
    }
    if hydrated_body(def, values).chars().count() > BODY_HYDRATED_MAX {
        out.push(Problem::new(
            "values.body",
            "value_too_long",
            format!("Com esses valores a mensagem passa de {BODY_HYDRATED_MAX} caracteres."),
            format!("With these values the message exceeds {BODY_HYDRATED_MAX} characters."),
        ));
    }

    let buttons = def.buttons();
    for (i, name) in &wanted.buttons {
        let field = format!("values.buttons.{i}");
        let Some(v) = values.buttons.get(i) else {
            out.push(Problem::new(
                field,
                "value_missing",
                format!("Falta o valor do botão {} ({}).", i + 1, braces(name)),
                format!("Missing the value of button {} ({}).", i + 1, braces(name)),
            ));
            continue;
        };
        if v.trim().is_empty() {
            out.push(empty(&field, &format!("do botão {}", i + 1)));
            continue;
        }
        if v.chars().any(char::is_whitespace) && name != COUPON_CODE {
            out.push(Problem::new(
                field.clone(),
                "value_invalid_whitespace",
                "O complemento do link não pode ter espaços.".to_string(),
                "The URL suffix cannot contain spaces.".to_string(),
            ));
        }
        let too_long = if name == COUPON_CODE {
            v.chars().count() > CODE_MAX
        } else {
            hydrated_url(&buttons[*i], Some(v))
                .is_some_and(|u| u.chars().count() > URL_HYDRATED_MAX)
        };
        if too_long {
            out.push(Problem::new(
                field,
                "value_too_long",
                format!("O valor do botão {} é longo demais.", i + 1),
                format!("The value of button {} is too long.", i + 1),
            ));
        }
    }
    for (i, v) in &values.buttons {
        let listed = wanted.buttons.iter().any(|(j, _)| j == i);
        let optional = matches!(
            buttons.get(*i),
            Some(Button::QuickReply(_) | Button::Otp(_))
        ) || buttons.get(*i).is_some_and(Button::is_otp);
        if !listed && !optional {
            out.push(unexpected(
                &format!("values.buttons.{i}"),
                &format!("botão {}", i + 1),
            ));
        } else if optional && v.chars().any(|c| c == '\n') {
            out.push(bad_whitespace(&format!("values.buttons.{i}")));
        }
    }
    out
}

fn text_values(
    part: &str,
    part_pt: &str,
    part_en: &str,
    wanted: &[String],
    given: &BTreeMap<String, String>,
    out: &mut Vec<Problem>,
) {
    for name in wanted {
        let field = format!("values.{part}.{name}");
        match given.get(name) {
            None => out.push(Problem::new(
                field,
                "value_missing",
                format!("Falta o valor da variável {} {part_pt}.", braces(name)),
                format!("Missing the value of {part_en} variable {}.", braces(name)),
            )),
            Some(v) if v.trim().is_empty() => out.push(empty(
                &field,
                &format!("da variável {} {part_pt}", braces(name)),
            )),
            Some(v) if has_forbidden_whitespace(v) => out.push(bad_whitespace(&field)),
            Some(_) => {}
        }
    }
    for name in given.keys() {
        if !wanted.contains(name) {
            out.push(unexpected(
                &format!("values.{part}.{name}"),
                &format!("variável {} {part_pt}", braces(name)),
            ));
        }
    }
}

fn media(wanted: &Parameters, values: &Values, out: &mut Vec<Problem>) {
    let field = "values.header_media";
    match (wanted.header_media, &values.header_media) {
        (None, None) => {}
        (None, Some(_)) => out.push(unexpected(field, "mídia no cabeçalho")),
        (Some(kind), None) => out.push(Problem::new(
            field,
            "media_missing",
            format!("O cabeçalho precisa de {}.", kind_pt(kind)),
            format!("The header needs a {}.", kind.as_str()),
        )),
        (Some(kind), Some(value)) => {
            let is_location = matches!(value, MediaValue::Location(_));
            if is_location != (kind == MediaKind::Location) {
                out.push(Problem::new(
                    field,
                    "media_kind_mismatch",
                    format!("O cabeçalho deste template é {}.", kind_pt(kind)),
                    format!("This template's header is a {}.", kind.as_str()),
                ));
                return;
            }
            match value {
                MediaValue::Link(link) => {
                    let ok = (link.starts_with("https://") || link.starts_with("http://"))
                        && !link.contains(char::is_whitespace)
                        && link.len() > "https://".len();
                    if !ok {
                        out.push(Problem::new(
                            field,
                            "media_link_invalid",
                            "Link da mídia inválido: use um endereço https://.".to_string(),
                            "Invalid media link: use an https:// address.".to_string(),
                        ));
                    }
                }
                MediaValue::Id(id) if id.trim().is_empty() => {
                    out.push(empty(field, "da mídia do cabeçalho"))
                }
                MediaValue::Location(l) => {
                    let ok = (-90.0..=90.0).contains(&l.latitude)
                        && (-180.0..=180.0).contains(&l.longitude);
                    if !ok {
                        out.push(Problem::new(
                            field,
                            "media_location_invalid",
                            "Latitude ou longitude fora do intervalo.".to_string(),
                            "Latitude or longitude out of range.".to_string(),
                        ));
                    }
                }
                MediaValue::Id(_) => {}
            }
        }
    }
}

fn kind_pt(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "uma imagem",
        MediaKind::Video => "um vídeo",
        MediaKind::Document => "um documento",
        MediaKind::Location => "uma localização",
    }
}

fn has_forbidden_whitespace(v: &str) -> bool {
    v.contains(['\n', '\r', '\t']) || v.contains(&" ".repeat(MAX_CONSECUTIVE_SPACES + 1))
}

fn empty(field: &str, what_pt: &str) -> Problem {
    Problem::new(
        field,
        "value_empty",
        format!("O valor {what_pt} está em branco."),
        "The value is blank.",
    )
}

fn unexpected(field: &str, what_pt: &str) -> Problem {
    Problem::new(
        field,
        "value_unexpected",
        format!("O template não tem {what_pt}."),
        "The template has no such variable.",
    )
}

fn bad_whitespace(field: &str) -> Problem {
    Problem::new(
        field,
        "value_invalid_whitespace",
        "Valores de variáveis não podem ter quebra de linha, tabulação nem mais de 4 espaços seguidos.",
        "Variable values cannot contain newlines, tabs or more than 4 consecutive spaces.",
    )
}

impl Values {
    /// Values with only body variables.
    pub fn body(vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Values {
        Values {
            body: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Values::default()
        }
    }

    /// Expands the simple form `{"1":"Ana","pedido":"123","buttons.0":"abc"}`: a name
    /// fills that variable wherever the template uses it (header and body);
    /// `buttons.N` fills button N. Names the template does not use are kept in the
    /// body so [`check_values`] reports them.
    pub fn from_variables(def: &TemplateDefinition, flat: &BTreeMap<String, String>) -> Values {
        let wanted = parameters(def);
        let mut out = Values::default();
        for (k, v) in flat {
            if let Some(i) = k
                .strip_prefix("buttons.")
                .or_else(|| k.strip_prefix("button."))
                .and_then(|i| i.parse::<usize>().ok())
            {
                out.buttons.insert(i, v.clone());
                continue;
            }
            let in_header = wanted.header.contains(k);
            let in_body = wanted.body.contains(k);
            if in_header {
                out.header.insert(k.clone(), v.clone());
            }
            if in_body || !in_header {
                out.body.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Reads Meta's send-side `components` array back into values (currency and
    /// date_time parameters become their `fallback_value`).
    pub fn from_components(
        def: &TemplateDefinition,
        components: &Value,
    ) -> Result<Values, Problem> {
        let bad = |why: &str| {
            Problem::new(
                "components",
                "components_invalid",
                format!("Componentes inválidos: {why}."),
                format!("Invalid components: {why}."),
            )
        };
        let Some(list) = components.as_array() else {
            return Err(bad("esperada uma lista"));
        };
        let named = vars::is_named(def);
        let mut out = Values::default();
        for c in list {
            let kind = c.get("type").and_then(Value::as_str).unwrap_or("");
            let params = c
                .get("parameters")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match kind.to_ascii_lowercase().as_str() {
                "header" | "body" => {
                    let is_header = kind.eq_ignore_ascii_case("header");
                    for (i, p) in params.iter().enumerate() {
                        let ptype = p.get("type").and_then(Value::as_str).unwrap_or("");
                        if is_header && let Some(m) = media_value(ptype, p) {
                            out.header_media = Some(m);
                            continue;
                        }
                        let text = match ptype {
                            "text" => p.get("text").and_then(Value::as_str),
                            "currency" | "date_time" => p
                                .get(ptype)
                                .and_then(|x| x.get("fallback_value"))
                                .and_then(Value::as_str),
                            _ => None,
                        }
                        .ok_or_else(|| bad(&format!("parâmetro {i} de {kind} sem texto")))?;
                        let name = if named {
                            p.get("parameter_name")
                                .and_then(Value::as_str)
                                .ok_or_else(|| {
                                    bad(&format!("parâmetro {i} de {kind} sem parameter_name"))
                                })?
                                .to_string()
                        } else {
                            (i + 1).to_string()
                        };
                        let target = if is_header {
                            &mut out.header
                        } else {
                            &mut out.body
                        };
                        target.insert(name, text.to_string());
                    }
                }
                "button" => {
                    let index = match c.get("index") {
                        Some(Value::String(s)) => s.parse::<usize>().ok(),
                        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                        _ => None,
                    }
                    .ok_or_else(|| bad("botão sem index"))?;
                    if let Some(p) = params.first() {
                        let v = ["text", "payload", "coupon_code"]
                            .iter()
                            .find_map(|k| p.get(*k).and_then(Value::as_str))
                            .ok_or_else(|| bad(&format!("botão {index} sem valor")))?;
                        out.buttons.insert(index, v.to_string());
                    }
                }
                _ => return Err(bad(&format!("tipo «{kind}» desconhecido"))),
            }
        }
        Ok(out)
    }
}

fn media_value(ptype: &str, p: &Value) -> Option<MediaValue> {
    match ptype {
        "image" | "video" | "document" => {
            let m = p.get(ptype)?;
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                return Some(MediaValue::Id(id.to_string()));
            }
            m.get("link")
                .and_then(Value::as_str)
                .map(|l| MediaValue::Link(l.to_string()))
        }
        "location" => serde_json::from_value(p.get("location")?.clone())
            .ok()
            .map(MediaValue::Location),
        _ => None,
    }
}
