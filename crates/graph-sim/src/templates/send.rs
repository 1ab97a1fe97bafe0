//! Template sends: with enforcement on, the checks Meta makes (132001 unknown or not approved in
//! that language, 132015 paused, 132016 disabled, 132000 parameter count per component, 132012
//! parameter format, 132018 parameter text, 132005 hydrated text too long); and, whenever the
//! template is known, the text the customer sees.

use serde::Serialize;
use serde_json::Value;

use super::{Template, distinct, fill, placeholders};
use crate::GraphSim;
use crate::errors::GraphError;

/// A template message as the customer's phone shows it, variables filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedTemplate {
    pub name: String,
    pub language: String,
    pub category: String,
    /// A text header, filled.
    pub header: Option<String>,
    /// IMAGE, VIDEO, DOCUMENT or LOCATION for a media header.
    pub header_media: Option<String>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<RenderedButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedButton {
    /// QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE...
    pub kind: String,
    pub text: String,
    /// URL buttons: the URL with its suffix filled.
    pub url: Option<String>,
    /// Quick replies: the payload the send set (else Meta echoes the button text).
    pub payload: Option<String>,
}

impl RenderedTemplate {
    /// Header, body and footer as one text, one blank line apart.
    pub fn text(&self) -> String {
        [
            self.header.as_deref(),
            Some(self.body.as_str()),
            self.footer.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n\n")
    }
}

pub(crate) struct SendInfo {
    pub rendered: Option<RenderedTemplate>,
    pub category: Option<String>,
}

/// The send's `components`, grouped.
#[derive(Default)]
struct Given<'a> {
    header: Option<&'a [Value]>,
    body: Option<&'a [Value]>,
    buttons: Vec<(usize, String, &'a [Value])>,
}

fn index_of(v: Option<&Value>) -> Option<usize> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn given(template: &Value) -> Given<'_> {
    let mut g = Given::default();
    for c in template
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let params = c
            .get("parameters")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        match c.get("type").and_then(Value::as_str) {
            Some("header") => g.header = Some(params),
            Some("body") => g.body = Some(params),
            Some("button") => {
                if let Some(i) = index_of(c.get("index")) {
                    let sub = c
                        .get("sub_type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    g.buttons.push((i, sub, params));
                }
            }
            _ => {}
        }
    }
    g
}

fn kind(p: &Value) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or("")
}

/// What a parameter shows as text.
fn shown(p: &Value) -> Option<String> {
    match kind(p) {
        "text" => match p.get("text")? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        },
        "currency" => p
            .pointer("/currency/fallback_value")?
            .as_str()
            .map(str::to_owned),
        "date_time" => p
            .pointer("/date_time/fallback_value")?
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// Values by variable name: positional parameters fill {{1}}, {{2}}... in order; named ones
/// by `parameter_name`.
fn values(params: &[Value], named: bool) -> Vec<(String, String)> {
    params
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let name = if named {
                p.get("parameter_name")?.as_str()?.to_owned()
            } else {
                (i + 1).to_string()
            };
            Some((name, shown(p)?))
        })
        .collect()
}

fn lookup(vals: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |n: &str| vals.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
}

fn text_of<'a>(t: &'a Template, kind: &str) -> Option<&'a str> {
    t.component(kind)?.get("text")?.as_str()
}

pub(crate) fn render(t: &Template, send: &Value) -> RenderedTemplate {
    let g = given(send);
    let named = t.parameter_format == "NAMED";
    let header_vals = values(g.header.unwrap_or_default(), named);
    let body_vals = values(g.body.unwrap_or_default(), named);
    let header_format = t
        .component("HEADER")
        .and_then(|h| h.get("format"))
        .and_then(Value::as_str)
        .unwrap_or("TEXT")
        .to_ascii_uppercase();
    let header = text_of(t, "HEADER")
        .filter(|_| header_format == "TEXT")
        .map(|h| fill(h, lookup(&header_vals)));
    let header_media =
        (t.component("HEADER").is_some() && header_format != "TEXT").then_some(header_format);
    let body = match text_of(t, "BODY") {
        Some(b) => fill(b, lookup(&body_vals)),
        None => String::new(),
    };
    let buttons = t
        .component("BUTTONS")
        .and_then(|b| b.get("buttons"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, b)| {
            let param = g
                .buttons
                .iter()
                .find(|(idx, _, _)| *idx == i)
                .and_then(|(_, _, p)| p.first());
            let kind = b
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let url = b.get("url").and_then(Value::as_str).map(|u| {
                let suffix = param.and_then(shown);
                fill(u, |_| suffix.clone())
            });
            let payload = param
                .filter(|p| self::kind(p) == "payload")
                .and_then(|p| p.get("payload"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            RenderedButton {
                text: b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                kind,
                url,
                payload,
            }
        })
        .collect();
    RenderedTemplate {
        name: t.name.clone(),
        language: t.language.clone(),
        category: t.category.clone(),
        header,
        header_media,
        body,
        footer: text_of(t, "FOOTER").map(str::to_owned),
        buttons,
    }
}

fn err(code: i64, details: String) -> GraphError {
    let status = if code == 132001 { 404 } else { 400 };
    GraphError::template(status, code, &details)
}

fn count_mismatch(what: &str, given: usize, expected: usize) -> GraphError {
    err(
        132000,
        format!(
            "{what}: number of localizable_params ({given}) does not match the expected number of params ({expected})"
        ),
    )
}

/// Looks the template up and, with enforcement on, applies Meta's checks.
pub(crate) fn check_send(
    sim: &GraphSim,
    waba: &str,
    template: &Value,
) -> Result<SendInfo, GraphError> {
    let name = template.get("name").and_then(Value::as_str).unwrap_or("");
    let language = template
        .pointer("/language/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (found, enforce) = {
        let st = sim.shared.lock();
        let found = st
            .templates
            .iter()
            .find(|t| t.waba_id == waba && t.name == name && t.language == language)
            .cloned();
        (found, st.enforce_templates)
    };
    let info = |t: &Template| SendInfo {
        rendered: Some(render(t, template)),
        category: Some(t.category.clone()),
    };
    if !enforce {
        return Ok(found.as_ref().map_or(
            SendInfo {
                rendered: None,
                category: None,
            },
            info,
        ));
    }
    let Some(t) = found else {
        return Err(err(
            132001,
            format!("template name ({name}) does not exist in {language}"),
        ));
    };
    match t.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => return Err(err(132015, format!("Template {name} is paused"))),
        "DISABLED" => return Err(err(132016, format!("Template {name} is disabled"))),
        other => {
            return Err(err(
                132001,
                format!("template name ({name}) is {other}, not approved, in {language}"),
            ));
        }
    }
    check_parameters(&t, &given(template))?;
    let rendered = render(&t, template);
    if rendered.body.chars().count() > 1024
        || rendered
            .header
            .as_ref()
            .is_some_and(|h| h.chars().count() > 60)
    {
        return Err(err(
            132005,
            "Translated text too long: the body with its parameters has more than 1024 characters (header: 60)".into(),
        ));
    }
    Ok(info(&t))
}

fn check_format(params: &[Value], named: bool, what: &str) -> Result<(), GraphError> {
    for p in params.iter().filter(|p| kind(p) == "text") {
        let has_name = p.get("parameter_name").is_some();
        if named && !has_name {
            return Err(err(
                132012,
                format!(
                    "{what}: the template uses NAMED parameters; every parameter needs parameter_name"
                ),
            ));
        }
        if !named && has_name {
            return Err(err(
                132012,
                format!(
                    "{what}: the template uses POSITIONAL parameters; parameter_name is not expected"
                ),
            ));
        }
    }
    Ok(())
}

/// Meta refuses parameter texts with new lines, tabs or more than four spaces in a row.
fn check_text(params: &[Value], what: &str) -> Result<(), GraphError> {
    for p in params {
        if let Some(Value::String(s)) = p.get("text")
            && (s.contains('\n') || s.contains('\t') || s.contains("     "))
        {
            return Err(err(
                132018,
                format!(
                    "{what}: Param text cannot have new-line/tab characters or more than 4 consecutive spaces"
                ),
            ));
        }
    }
    Ok(())
}

fn check_variables(
    text: &str,
    params: &[Value],
    named: bool,
    what: &str,
) -> Result<(), GraphError> {
    let list = placeholders(text).unwrap_or_default();
    let names = distinct(&list);
    check_format(params, named, what)?;
    if params.len() != names.len() {
        return Err(count_mismatch(what, params.len(), names.len()));
    }
    if named {
        for p in params {
            let n = p
                .get("parameter_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !names.contains(&n) {
                return Err(err(
                    132000,
                    format!("{what}: parameter_name \"{n}\" is not a variable of the template"),
                ));
            }
        }
    }
    for p in params {
        if !matches!(kind(p), "text" | "currency" | "date_time") {
            return Err(err(
                132012,
                format!(
                    "{what}: a parameter of type {} is not allowed here",
                    kind(p)
                ),
            ));
        }
    }
    check_text(params, what)
}

fn check_parameters(t: &Template, g: &Given<'_>) -> Result<(), GraphError> {
    let named = t.parameter_format == "NAMED";
    let header = t.component("HEADER");
    let format = header
        .and_then(|h| h.get("format"))
        .and_then(Value::as_str)
        .unwrap_or("TEXT")
        .to_ascii_lowercase();
    let given_header = g.header.unwrap_or_default();
    match (header, format.as_str()) {
        (None, _) => {
            if !given_header.is_empty() {
                return Err(count_mismatch("header", given_header.len(), 0));
            }
        }
        (Some(h), "text") => {
            let text = h.get("text").and_then(Value::as_str).unwrap_or("");
            check_variables(text, given_header, named, "header")?;
        }
        (Some(_), media) => {
            let ok = matches!(given_header, [p] if kind(p) == media && p.get(media).is_some());
            if !ok {
                let got = given_header.first().map_or("nothing", |p| kind(p));
                return Err(err(
                    132012,
                    format!(
                        "header: Format mismatch, expected {}, received {got}",
                        media.to_ascii_uppercase()
                    ),
                ));
            }
        }
    }
    let body = text_of(t, "BODY").unwrap_or("");
    check_variables(body, g.body.unwrap_or_default(), named, "body")?;

    let buttons: &[Value] = t
        .component("BUTTONS")
        .and_then(|b| b.get("buttons"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, sub, _) in &g.buttons {
        let Some(b) = buttons.get(*i) else {
            return Err(err(
                132012,
                format!("button at index {i}: the template has no such button"),
            ));
        };
        let kind_of = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if kind_of != *sub {
            return Err(err(
                132012,
                format!("button at index {i}: the template's button is {kind_of}, not {sub}"),
            ));
        }
    }
    for (i, b) in buttons.iter().enumerate() {
        let kind_of = b.get("type").and_then(Value::as_str).unwrap_or("");
        let sent = g
            .buttons
            .iter()
            .find(|(idx, _, _)| *idx == i)
            .map(|(_, _, p)| *p);
        let expected = match kind_of {
            "URL" => usize::from(
                b.get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.contains("{{")),
            ),
            "COPY_CODE" => 1,
            _ => continue,
        };
        let n = sent.map_or(0, <[Value]>::len);
        if n != expected && (expected > 0 || sent.is_some()) {
            return Err(count_mismatch(&format!("button at index {i}"), n, expected));
        }
        if let Some(p) = sent {
            check_text(p, &format!("button at index {i}"))?;
        }
    }
    Ok(())
}
