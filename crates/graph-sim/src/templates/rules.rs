//! Meta's rules for a template's content, applied on create and edit after the schema check.
//! Meta reports one problem per answer, so these stop at the first.
//!
//! Subcodes are Meta's where it has a known one: 2388040 (a text over its character limit),
//! 2388047 (header format), 2388073 (footer format), 2388293 (too many variables for the length),
//! 2388299 (a variable at the start or end of the body). Other refusals carry code 100 with
//! `error_user_title`/`error_user_msg` and no subcode rather than an invented one.
//!
//! "Too many variables for the length" is the simulator's reading of a rule Meta does not
//! publish: the body's fixed text must have at least `2n + 1` words for `n` variables.

use serde_json::{Map, Value, json};

use super::{Placeholder, distinct, placeholders};
use crate::GraphSim;
use crate::errors::GraphError;

pub(crate) const SUB_TOO_LONG: i64 = 2388040;
pub(crate) const SUB_HEADER_FORMAT: i64 = 2388047;
pub(crate) const SUB_FOOTER_FORMAT: i64 = 2388073;
pub(crate) const SUB_RATIO: i64 = 2388293;
pub(crate) const SUB_LEADING_TRAILING: i64 = 2388299;
pub(crate) const SUB_LIMIT: i64 = 2388019;
pub(crate) const SUB_EXISTS: i64 = 2388024;
pub(crate) const SUB_BEING_DELETED: i64 = 2388023;
/// "Uploaded media handle is invalid".
pub(crate) const SUB_BAD_HANDLE: i64 = 2494102;

const HEADER_MAX: usize = 60;
const BODY_MAX: usize = 1024;
const FOOTER_MAX: usize = 60;
const BUTTON_TEXT_MAX: usize = 25;
const URL_MAX: usize = 2000;
const MAX_BUTTONS: usize = 10;

type Check<T = ()> = Result<T, GraphError>;

fn rule(subcode: Option<i64>, title: &str, msg: impl AsRef<str>) -> GraphError {
    GraphError::template_rule(subcode, title, msg.as_ref())
}

fn too_long(what: &str, max: usize) -> GraphError {
    rule(
        Some(SUB_TOO_LONG),
        "Message template character limit exceeded",
        format!("{what} can have at most {max} characters."),
    )
}

/// Valid names: lowercase letters, digits and underscores, at most 512.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Languages Meta offers for templates.
pub(crate) const LANGUAGES: &[&str] = &[
    "af", "sq", "ar", "ar_EG", "ar_AE", "ar_LB", "ar_MA", "ar_QA", "az", "be_BY", "bn", "bn_IN",
    "bg", "ca", "zh_CN", "zh_HK", "zh_TW", "hr", "cs", "da", "prs_AF", "nl", "nl_BE", "en",
    "en_GB", "en_US", "en_AE", "en_AU", "en_CA", "en_GH", "en_IE", "en_IN", "en_JM", "en_MY",
    "en_NZ", "en_QA", "en_SG", "en_UG", "en_ZA", "et", "fil", "fi", "fr", "fr_BE", "fr_CA",
    "fr_CH", "fr_CI", "fr_MA", "ka", "de", "de_AT", "de_CH", "el", "gu", "ha", "he", "hi", "hu",
    "id", "ga", "it", "ja", "kn", "kk", "rw_RW", "ko", "ky_KG", "lo", "lv", "lt", "mk", "ms", "ml",
    "mr", "nb", "ps_AF", "fa", "pl", "pt_BR", "pt_PT", "pa", "ro", "ru", "sr", "si_LK", "sk", "sl",
    "es", "es_AR", "es_CL", "es_CO", "es_CR", "es_DO", "es_EC", "es_HN", "es_MX", "es_PA", "es_PE",
    "es_ES", "es_UY", "sw", "sv", "ta", "te", "th", "tr", "uk", "ur", "uz", "vi", "zu",
];

/// What a create or edit submits, after the schema check.
pub(crate) struct Submitted<'a> {
    pub category: &'a str,
    pub parameter_format: &'a str,
    pub components: &'a Value,
}

/// Checks the content and returns the components as Meta stores them (types upper case).
pub(crate) fn check(sim: &GraphSim, s: &Submitted<'_>) -> Check<Value> {
    let Some(list) = s.components.as_array().filter(|l| !l.is_empty()) else {
        return Err(GraphError::param_required("components"));
    };
    let auth = s.category == "AUTHENTICATION";
    let named = s.parameter_format == "NAMED";
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let Some(obj) = c.as_object() else {
            return Err(GraphError::invalid_param(
                "Each component must be an object",
            ));
        };
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::param_required("components[].type"))?
            .to_ascii_uppercase();
        const KINDS: &[&str] = &[
            "HEADER",
            "BODY",
            "FOOTER",
            "BUTTONS",
            "CAROUSEL",
            "LIMITED_TIME_OFFER",
        ];
        if !KINDS.contains(&kind.as_str()) {
            return Err(GraphError::invalid_param(&format!(
                "Param components[].type must be one of {{{}}} - got \"{kind}\"",
                KINDS.join(", ")
            )));
        }
        if seen.contains(&kind) {
            return Err(rule(
                None,
                "Duplicate component",
                format!("A template can have only one {kind} component."),
            ));
        }
        seen.push(kind.clone());
        let mut norm = obj.clone();
        norm.insert("type".into(), json!(kind));
        match kind.as_str() {
            "HEADER" => header(sim, &mut norm, named)?,
            "BODY" => body(&norm, named, auth)?,
            "FOOTER" => footer(&norm, auth)?,
            "BUTTONS" => buttons(&mut norm, auth)?,
            _ => {}
        }
        out.push(Value::Object(norm));
    }
    if !seen.iter().any(|k| k == "BODY") {
        return Err(rule(
            None,
            "Body is required",
            "A template needs a BODY component.",
        ));
    }
    if auth && !has_otp(&out) {
        return Err(rule(
            None,
            "Authentication template needs an OTP button",
            "AUTHENTICATION templates need a BUTTONS component with one OTP button.",
        ));
    }
    Ok(Value::Array(out))
}

fn has_otp(components: &[Value]) -> bool {
    components.iter().any(|c| {
        c.get("buttons").and_then(Value::as_array).is_some_and(|b| {
            b.iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("OTP"))
        })
    })
}

fn text_of(c: &Map<String, Value>) -> Option<&str> {
    c.get("text").and_then(Value::as_str)
}

/// Variables of a text checked against the parameter format; returns the distinct names.
fn variables(text: &str, named: bool, whereabouts: &str) -> Check<Vec<String>> {
    let list = placeholders(text)
        .map_err(|m| rule(None, "Invalid variable", format!("{whereabouts}: {m}.")))?;
    for p in &list {
        let numeric = p.name.bytes().all(|b| b.is_ascii_digit());
        if named == numeric {
            let want = if named {
                "named variables such as {{first_name}}"
            } else {
                "numbered variables such as {{1}}"
            };
            return Err(rule(
                None,
                "Variable doesn't match the parameter format",
                format!(
                    "{whereabouts}: {{{{{}}}}} — this template uses {want}.",
                    p.name
                ),
            ));
        }
    }
    let names: Vec<String> = distinct(&list).into_iter().map(str::to_owned).collect();
    if !named {
        // Positional variables are numbered 1..n without gaps.
        for n in &names {
            let Ok(k) = n.parse::<usize>() else { continue };
            if k == 0 || k > names.len() {
                return Err(rule(
                    None,
                    "Variables must be sequential",
                    format!(
                        "{whereabouts}: variables must be numbered {{{{1}}}} to {{{{{}}}}} without gaps.",
                        names.len()
                    ),
                ));
            }
        }
    }
    adjacent(text, &list, whereabouts)?;
    Ok(names)
}

fn adjacent(text: &str, list: &[Placeholder], whereabouts: &str) -> Check {
    for pair in list.windows(2) {
        if text[pair[0].end..pair[1].start].trim().is_empty() {
            return Err(rule(
                None,
                "Adjacent variables",
                format!("{whereabouts}: variables can't be next to each other."),
            ));
        }
    }
    Ok(())
}

fn missing_examples(whereabouts: &str) -> GraphError {
    rule(
        None,
        "Missing sample values",
        format!("{whereabouts}: every variable needs a sample value in `example`."),
    )
}

/// `example.<positional>` = list of strings, or `example.<named>` = [{param_name, example}].
fn examples(
    c: &Map<String, Value>,
    names: &[String],
    named: bool,
    positional_key: &str,
    nested: bool,
    whereabouts: &str,
) -> Check {
    if names.is_empty() {
        return Ok(());
    }
    let example = c.get("example");
    if named {
        let key = format!("{positional_key}_named_params");
        let given: Vec<&str> = example
            .and_then(|e| e.get(&key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| {
                p.get("example")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty())
            })
            .filter_map(|p| p.get("param_name").and_then(Value::as_str))
            .collect();
        if names.iter().all(|n| given.contains(&n.as_str())) && given.len() == names.len() {
            return Ok(());
        }
        return Err(missing_examples(whereabouts));
    }
    let values = example.and_then(|e| e.get(positional_key));
    let row = if nested {
        values.and_then(|v| v.get(0))
    } else {
        values
    };
    let ok = row.and_then(Value::as_array).is_some_and(|r| {
        r.len() == names.len()
            && r.iter()
                .all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
    });
    if ok {
        Ok(())
    } else {
        Err(missing_examples(whereabouts))
    }
}

fn header(sim: &GraphSim, c: &mut Map<String, Value>, named: bool) -> Check {
    let format = c
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::param_required("components[HEADER].format"))?
        .to_ascii_uppercase();
    c.insert("format".into(), json!(format));
    let header_format =
        |msg: String| rule(Some(SUB_HEADER_FORMAT), "Header format is incorrect", msg);
    match format.as_str() {
        "TEXT" => {
            let text = text_of(c)
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| GraphError::param_required("components[HEADER].text"))?;
            if text.chars().count() > HEADER_MAX {
                return Err(too_long("Header text", HEADER_MAX));
            }
            if text.contains('\n') {
                return Err(header_format("Header text can't contain new lines.".into()));
            }
            let names = variables(text, named, "Header")?;
            if names.len() > 1 {
                return Err(header_format(
                    "Header text can have at most one variable.".into(),
                ));
            }
            examples(c, &names, named, "header_text", false, "Header")
        }
        "IMAGE" | "VIDEO" | "DOCUMENT" => {
            if c.contains_key("text") {
                return Err(header_format(format!("A {format} header has no text.")));
            }
            let handle = c
                .get("example")
                .and_then(|e| e.get("header_handle"))
                .and_then(|h| h.get(0))
                .and_then(Value::as_str)
                .ok_or_else(|| missing_examples("Header"))?;
            let Some(media) = crate::uploads::resolve_handle(sim, handle) else {
                return Err(rule(
                    Some(SUB_BAD_HANDLE),
                    "Uploaded media handle is invalid",
                    "The header_handle is not a handle of the Resumable Upload API.",
                ));
            };
            let fits = match format.as_str() {
                "IMAGE" => matches!(
                    media.mime_type.as_str(),
                    "image/jpeg" | "image/jpg" | "image/png"
                ),
                "VIDEO" => media.mime_type == "video/mp4",
                _ => media.mime_type == "application/pdf",
            };
            if !fits {
                return Err(header_format(format!(
                    "A {format} header can't use a {} file.",
                    media.mime_type
                )));
            }
            Ok(())
        }
        "LOCATION" => {
            if c.contains_key("text") {
                return Err(header_format("A LOCATION header has no text.".into()));
            }
            Ok(())
        }
        other => Err(GraphError::invalid_param(&format!(
            "Param components[HEADER].format must be one of {{TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION}} - got \"{other}\""
        ))),
    }
}

fn words(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count()
}

fn body(c: &Map<String, Value>, named: bool, auth: bool) -> Check {
    if auth {
        if c.contains_key("text") {
            return Err(rule(
                None,
                "Authentication body is fixed",
                "AUTHENTICATION templates can't have body text; Meta writes it.",
            ));
        }
        return Ok(());
    }
    let text = text_of(c)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| GraphError::param_required("components[BODY].text"))?;
    if text.chars().count() > BODY_MAX {
        return Err(too_long("Body text", BODY_MAX));
    }
    let names = variables(text, named, "Body")?;
    let list = placeholders(text).unwrap_or_default();
    if let (Some(first), Some(last)) = (list.first(), list.last()) {
        let trimmed_start = text.len() - text.trim_start().len();
        let trimmed_end = text.trim_end().len();
        if first.start == trimmed_start || last.end == trimmed_end {
            return Err(rule(
                Some(SUB_LEADING_TRAILING),
                "Variables can't be at the start or end of the template",
                "Variables can't be at the start or end of the template body.",
            ));
        }
        let fixed = super::fill(text, |_| Some(" ".to_owned()));
        if words(&fixed) < 2 * list.len() + 1 {
            return Err(rule(
                Some(SUB_RATIO),
                "Too many variables for the message length",
                "This template has too many variables for its length. Use fewer variables or more text.",
            ));
        }
    }
    examples(c, &names, named, "body_text", true, "Body")
}

fn footer(c: &Map<String, Value>, auth: bool) -> Check {
    if auth {
        if let Some(m) = c.get("code_expiration_minutes")
            && !m.as_u64().is_some_and(|m| (1..=90).contains(&m))
        {
            return Err(GraphError::invalid_param(
                "Param code_expiration_minutes must be between 1 and 90",
            ));
        }
        return Ok(());
    }
    let text = text_of(c)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| GraphError::param_required("components[FOOTER].text"))?;
    if text.chars().count() > FOOTER_MAX {
        return Err(too_long("Footer text", FOOTER_MAX));
    }
    if text.contains("{{") {
        return Err(rule(
            Some(SUB_FOOTER_FORMAT),
            "Footer format is incorrect",
            "Footer text can't contain variables.",
        ));
    }
    Ok(())
}

fn button_text(b: &Map<String, Value>, i: usize) -> Check {
    let text = b
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| GraphError::param_required(&format!("buttons[{i}].text")))?;
    if text.chars().count() > BUTTON_TEXT_MAX {
        return Err(too_long("Button text", BUTTON_TEXT_MAX));
    }
    if text.contains("{{") {
        return Err(rule(
            None,
            "Invalid button",
            format!("buttons[{i}]: button text can't contain variables."),
        ));
    }
    Ok(())
}

fn url_button(b: &Map<String, Value>, i: usize) -> Check {
    let url = b
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::param_required(&format!("buttons[{i}].url")))?;
    if url.chars().count() > URL_MAX {
        return Err(too_long("Button URL", URL_MAX));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(rule(
            None,
            "Invalid button",
            format!("buttons[{i}]: the URL must start with http:// or https://."),
        ));
    }
    let vars = placeholders(url)
        .map_err(|m| rule(None, "Invalid variable", format!("buttons[{i}]: {m}.")))?;
    match vars.as_slice() {
        [] => Ok(()),
        [v] if v.name == "1" && v.end == url.len() => {
            let ok = b
                .get("example")
                .and_then(|e| e.get(0))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty());
            if ok {
                Ok(())
            } else {
                Err(missing_examples(&format!("buttons[{i}]")))
            }
        }
        _ => Err(rule(
            None,
            "Invalid button",
            format!("buttons[{i}]: a URL can have one variable, {{{{1}}}}, at its end."),
        )),
    }
}

fn buttons(c: &mut Map<String, Value>, auth: bool) -> Check {
    let Some(list) = c.get_mut("buttons").and_then(Value::as_array_mut) else {
        return Err(GraphError::param_required("components[BUTTONS].buttons"));
    };
    if list.is_empty() || list.len() > MAX_BUTTONS {
        return Err(rule(
            None,
            "Invalid number of buttons",
            format!("A template can have 1 to {MAX_BUTTONS} buttons."),
        ));
    }
    let (mut urls, mut phones, mut copy_codes) = (0, 0, 0);
    let mut kinds: Vec<String> = Vec::new();
    for (i, b) in list.iter_mut().enumerate() {
        let Some(obj) = b.as_object_mut() else {
            return Err(GraphError::invalid_param("Each button must be an object"));
        };
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::param_required(&format!("buttons[{i}].type")))?
            .to_ascii_uppercase();
        obj.insert("type".into(), json!(kind));
        match kind.as_str() {
            "QUICK_REPLY" => button_text(obj, i)?,
            "URL" => {
                urls += 1;
                button_text(obj, i)?;
                url_button(obj, i)?;
            }
            "PHONE_NUMBER" => {
                phones += 1;
                button_text(obj, i)?;
                let ok = obj
                    .get("phone_number")
                    .and_then(Value::as_str)
                    .is_some_and(|p| {
                        let d = crate::digits(p);
                        (8..=20).contains(&d.len())
                    });
                if !ok {
                    return Err(GraphError::param_required(&format!(
                        "buttons[{i}].phone_number"
                    )));
                }
            }
            "COPY_CODE" => {
                copy_codes += 1;
                let ok = obj
                    .get("example")
                    .and_then(Value::as_str)
                    .is_some_and(|e| (1..=15).contains(&e.chars().count()));
                if !ok {
                    return Err(missing_examples(&format!("buttons[{i}]")));
                }
            }
            "OTP" => {
                if !auth {
                    return Err(rule(
                        None,
                        "Invalid button",
                        "OTP buttons are only for AUTHENTICATION templates.",
                    ));
                }
                let otp = obj.get("otp_type").and_then(Value::as_str).unwrap_or("");
                if !["COPY_CODE", "ONE_TAP", "ZERO_TAP"].contains(&otp) {
                    return Err(GraphError::invalid_param(
                        "Param otp_type must be one of {COPY_CODE, ONE_TAP, ZERO_TAP}",
                    ));
                }
            }
            "FLOW" | "CATALOG" | "MPM" | "SPM" | "VOICE_CALL" => {}
            other => {
                return Err(GraphError::invalid_param(&format!(
                    "Param buttons[{i}].type must be one of {{QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, OTP, FLOW, CATALOG, MPM, SPM, VOICE_CALL}} - got \"{other}\""
                )));
            }
        }
        if auth && kind != "OTP" {
            return Err(rule(
                None,
                "Invalid button",
                "AUTHENTICATION templates only take an OTP button.",
            ));
        }
        kinds.push(kind);
    }
    if urls > 2 || phones > 1 || copy_codes > 1 {
        return Err(rule(
            None,
            "Invalid number of buttons",
            "A template can have at most 2 URL buttons, 1 phone number button and 1 copy code button.",
        ));
    }
    // Quick replies sit together, before or after the other buttons, never between them.
    let first = kinds.iter().position(|k| k == "QUICK_REPLY");
    let last = kinds.iter().rposition(|k| k == "QUICK_REPLY");
    if let (Some(f), Some(l)) = (first, last)
        && kinds[f..=l].iter().any(|k| k != "QUICK_REPLY")
    {
        return Err(rule(
            None,
            "Buttons must be grouped",
            "Quick reply buttons must be next to each other.",
        ));
    }
    Ok(())
}
