//! Validation of `POST /{phone-number-id}/messages` bodies.
//!
//! Strict where Meta is strict and documents the limit (required objects,
//! interactive button and list limits, text lengths), lenient elsewhere:
//! the simulator exists to catch malformed requests from Atende, not to
//! second-guess fields Meta itself would accept.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::digits;
use crate::errors::GraphError;

pub(crate) enum SendRequest {
    MarkRead { message_id: String },
    Message(Outgoing),
}

pub(crate) struct Outgoing {
    pub to: String,
    pub kind: String,
    /// Media ids the message refers to (body and headers), to be resolved
    /// later: unknown ones fail asynchronously, as on the real API.
    pub media_ids: Vec<String>,
    pub biz_opaque: Option<String>,
}

const TYPES: &[&str] = &[
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
];

const MEDIA: &[&str] = &["audio", "document", "image", "sticker", "video"];

type Check = Result<(), GraphError>;

pub(crate) fn parse_send(body: &Value) -> Result<SendRequest, GraphError> {
    let Some(obj) = body.as_object() else {
        return Err(GraphError::invalid_param(
            "Invalid parameter: the request body must be a JSON object",
        ));
    };
    match obj.get("messaging_product") {
        None | Some(Value::Null) => return Err(GraphError::param_required("messaging_product")),
        Some(Value::String(p)) if p.eq_ignore_ascii_case("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid_param(&format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}"
            )));
        }
    }

    if obj.get("status").and_then(Value::as_str) == Some("read") {
        let message_id = non_empty_str(obj, "message_id")
            .ok_or_else(|| GraphError::param_required("message_id"))?;
        return Ok(SendRequest::MarkRead {
            message_id: message_id.to_owned(),
        });
    }

    if let Some(rt) = obj.get("recipient_type")
        && !matches!(rt.as_str(), Some("individual" | "group"))
    {
        return Err(GraphError::invalid_param(&format!(
            "Param recipient_type must be one of {{GROUP, INDIVIDUAL}} - got {rt}"
        )));
    }

    let to = match obj.get("to") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_) | Value::Null) | None => {
            return Err(GraphError::param_required("to"));
        }
        Some(other) => {
            return Err(GraphError::invalid_value(&format!(
                "Invalid parameter 'to': {other}"
            )));
        }
    };
    let well_formed = to
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    let n = digits(&to).len();
    if !well_formed || !(8..=15).contains(&n) {
        return Err(GraphError::invalid_value(&format!(
            "Invalid parameter 'to': '{to}' is not a phone number"
        )));
    }

    // Meta documents `type` as optional with "text" as the default.
    let kind = match obj.get("type") {
        None | Some(Value::Null) => "text",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(GraphError::invalid_value(&format!(
                "Invalid parameter 'type': {other}"
            )));
        }
    };
    if !TYPES.contains(&kind) {
        return Err(GraphError::invalid_value(&format!(
            "Unsupported message type '{kind}'. Supported: {}",
            TYPES.join(", ")
        )));
    }
    let Some(content) = obj.get(kind).filter(|v| !v.is_null()) else {
        return Err(GraphError::required_missing(&format!(
            "Parameter '{kind}' is required for messages of type '{kind}'"
        )));
    };

    let mut media_ids = Vec::new();
    match kind {
        "text" => text(content)?,
        "location" => location(content)?,
        "contacts" => contacts(content)?,
        "reaction" => reaction(content)?,
        "interactive" => interactive(content, &mut media_ids)?,
        "template" => template(content)?,
        k if MEDIA.contains(&k) => media(k, content, &mut media_ids)?,
        _ => {}
    }

    if let Some(ctx) = obj.get("context")
        && ctx.get("message_id").and_then(Value::as_str).is_none()
    {
        return Err(GraphError::required_missing(
            "Parameter 'context.message_id' is required",
        ));
    }
    let biz_opaque = match obj.get("biz_opaque_callback_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 512 => Some(s.clone()),
        Some(_) => {
            return Err(GraphError::invalid_value(
                "biz_opaque_callback_data must be a string of at most 512 characters",
            ));
        }
    };

    Ok(SendRequest::Message(Outgoing {
        to,
        kind: kind.to_owned(),
        media_ids,
        biz_opaque,
    }))
}

fn non_empty_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, GraphError> {
    v.as_object()
        .ok_or_else(|| GraphError::invalid_value(&format!("Parameter '{what}' must be an object")))
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, GraphError> {
    non_empty_str(obj, key)
        .ok_or_else(|| GraphError::required_missing(&format!("Parameter '{path}' is required")))
}

fn max_len(s: &str, max: usize, what: &str) -> Check {
    if s.chars().count() > max {
        return Err(GraphError::invalid_value(&format!(
            "{what} is too long. Max length: {max}"
        )));
    }
    Ok(())
}

fn length_between(s: &str, min: usize, max: usize, what: &str) -> Check {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(GraphError::invalid_value(&format!(
            "{what} length invalid. Min length: {min}, Max length: {max}"
        )));
    }
    Ok(())
}

fn text(content: &Value) -> Check {
    let o = object(content, "text")?;
    let body = required_str(o, "body", "text.body")?;
    max_len(body, 4096, "Message text")
}

fn media(kind: &str, content: &Value, ids: &mut Vec<String>) -> Check {
    let o = object(content, kind)?;
    let id = o.get("id").and_then(Value::as_str);
    let link = o.get("link").and_then(Value::as_str);
    match (id, link) {
        (None, None) => {
            return Err(GraphError::required_missing(&format!(
                "Parameter '{kind}.id' or '{kind}.link' is required"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(GraphError::invalid_value(&format!(
                "Only one of '{kind}.id' and '{kind}.link' may be set"
            )));
        }
        (Some(id), None) => ids.push(id.to_owned()),
        (None, Some(link)) => {
            if !(link.starts_with("https://") || link.starts_with("http://")) {
                return Err(GraphError::invalid_value(&format!(
                    "Parameter '{kind}.link' must be an http(s) URL"
                )));
            }
        }
    }
    if let Some(c) = o.get("caption").and_then(Value::as_str) {
        max_len(c, 1024, "Media caption")?;
    }
    Ok(())
}

fn coordinate(o: &Map<String, Value>, key: &str, limit: f64) -> Check {
    let v = o.get(key).ok_or_else(|| {
        GraphError::required_missing(&format!("Parameter 'location.{key}' is required"))
    })?;
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(x) if x.abs() <= limit => Ok(()),
        _ => Err(GraphError::invalid_value(&format!(
            "Parameter 'location.{key}' must be a number between -{limit} and {limit}"
        ))),
    }
}

fn location(content: &Value) -> Check {
    let o = object(content, "location")?;
    coordinate(o, "latitude", 90.0)?;
    coordinate(o, "longitude", 180.0)
}

fn contacts(content: &Value) -> Check {
    let Some(list) = content.as_array().filter(|l| !l.is_empty()) else {
        return Err(GraphError::required_missing(
            "Parameter 'contacts' must be a non-empty array",
        ));
    };
    for (i, c) in list.iter().enumerate() {
        let formatted = c
            .get("name")
            .and_then(|n| n.get("formatted_name"))
            .and_then(Value::as_str);
        if formatted.is_none_or(str::is_empty) {
            return Err(GraphError::required_missing(&format!(
                "Parameter 'contacts[{i}].name.formatted_name' is required"
            )));
        }
    }
    Ok(())
}

fn reaction(content: &Value) -> Check {
    let o = object(content, "reaction")?;
    required_str(o, "message_id", "reaction.message_id")?;
    // An empty emoji is valid: it removes the reaction.
    if o.get("emoji").and_then(Value::as_str).is_none() {
        return Err(GraphError::required_missing(
            "Parameter 'reaction.emoji' is required",
        ));
    }
    Ok(())
}

fn template(content: &Value) -> Check {
    let o = object(content, "template")?;
    required_str(o, "name", "template.name")?;
    let code = o
        .get("language")
        .and_then(|l| l.get("code"))
        .and_then(Value::as_str);
    if code.is_none_or(str::is_empty) {
        return Err(GraphError::required_missing(
            "Parameter 'template.language.code' is required",
        ));
    }
    if let Some(components) = o.get("components") {
        let Some(list) = components.as_array() else {
            return Err(GraphError::invalid_value(
                "Parameter 'template.components' must be an array",
            ));
        };
        for (i, c) in list.iter().enumerate() {
            if c.get("type").and_then(Value::as_str).is_none() {
                return Err(GraphError::required_missing(&format!(
                    "Parameter 'template.components[{i}].type' is required"
                )));
            }
        }
    }
    Ok(())
}

const INTERACTIVE: &[&str] = &[
    "button",
    "list",
    "cta_url",
    "flow",
    "product",
    "product_list",
    "catalog_message",
    "location_request_message",
    "address_message",
    "call_permission_request",
];

fn interactive(content: &Value, media_ids: &mut Vec<String>) -> Check {
    let o = object(content, "interactive")?;
    let kind = required_str(o, "type", "interactive.type")?;
    if !INTERACTIVE.contains(&kind) {
        return Err(GraphError::invalid_value(&format!(
            "Unsupported interactive type '{kind}'"
        )));
    }
    let Some(action) = o.get("action").and_then(Value::as_object) else {
        return Err(GraphError::required_missing(
            "Parameter 'interactive.action' is required",
        ));
    };
    if let Some(header) = o.get("header") {
        interactive_header(header, media_ids)?;
    }
    if let Some(footer) = o.get("footer") {
        let text = footer.get("text").and_then(Value::as_str).unwrap_or("");
        length_between(text, 1, 60, "Footer text")?;
    }
    let body = o
        .get("body")
        .and_then(|b| b.get("text"))
        .and_then(Value::as_str);
    match kind {
        "button" => {
            let body = body.ok_or_else(|| {
                GraphError::required_missing("Parameter 'interactive.body.text' is required")
            })?;
            length_between(body, 1, 1024, "Body text")?;
            buttons(action)
        }
        "list" => {
            let body = body.ok_or_else(|| {
                GraphError::required_missing("Parameter 'interactive.body.text' is required")
            })?;
            length_between(body, 1, 4096, "Body text")?;
            list(action)
        }
        "cta_url" => {
            let params = action.get("parameters").and_then(Value::as_object);
            let display = params
                .and_then(|p| p.get("display_text"))
                .and_then(Value::as_str);
            let url = params.and_then(|p| p.get("url")).and_then(Value::as_str);
            match (display, url) {
                (Some(d), Some(_)) => length_between(d, 1, 20, "Display text"),
                _ => Err(GraphError::required_missing(
                    "Parameters 'action.parameters.display_text' and 'action.parameters.url' are required",
                )),
            }
        }
        _ => Ok(()),
    }
}

fn interactive_header(header: &Value, media_ids: &mut Vec<String>) -> Check {
    let kind = header.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            let text = header.get("text").and_then(Value::as_str).unwrap_or("");
            length_between(text, 1, 60, "Header text")
        }
        "image" | "video" | "document" => match header.get(kind) {
            Some(m) => media(kind, m, media_ids),
            None => Err(GraphError::required_missing(&format!(
                "Parameter 'header.{kind}' is required"
            ))),
        },
        other => Err(GraphError::invalid_value(&format!(
            "Unsupported header type '{other}'"
        ))),
    }
}

fn buttons(action: &Map<String, Value>) -> Check {
    let list = action
        .get("buttons")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::required_missing("Parameter 'action.buttons' is required"))?;
    if list.is_empty() || list.len() > 3 {
        return Err(GraphError::invalid_value(
            "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3",
        ));
    }
    let mut ids = HashSet::new();
    let mut titles = HashSet::new();
    for b in list {
        let reply = b.get("reply").and_then(Value::as_object).ok_or_else(|| {
            GraphError::required_missing("Parameter 'buttons[].reply' is required")
        })?;
        let id = reply.get("id").and_then(Value::as_str).unwrap_or("");
        let title = reply.get("title").and_then(Value::as_str).unwrap_or("");
        length_between(id, 1, 256, "Button id")?;
        length_between(title, 1, 20, "Button title")?;
        if !ids.insert(id) {
            return Err(GraphError::invalid_value("Duplicate button id"));
        }
        if !titles.insert(title) {
            return Err(GraphError::invalid_value("Button title must be unique"));
        }
    }
    Ok(())
}

fn list(action: &Map<String, Value>) -> Check {
    let label = action
        .get("button")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::required_missing("Parameter 'action.button' is required"))?;
    length_between(label, 1, 20, "Button label")?;
    let sections = action
        .get("sections")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::required_missing("Parameter 'action.sections' is required"))?;
    if sections.is_empty() || sections.len() > 10 {
        return Err(GraphError::invalid_value(
            "Invalid sections count. Min allowed sections: 1, Max allowed sections: 10",
        ));
    }
    let mut ids = HashSet::new();
    let mut total = 0usize;
    for s in sections {
        if let Some(t) = s.get("title").and_then(Value::as_str) {
            length_between(t, 1, 24, "Section title")?;
        } else if sections.len() > 1 {
            return Err(GraphError::required_missing(
                "Parameter 'sections[].title' is required when there is more than one section",
            ));
        }
        let rows = s.get("rows").and_then(Value::as_array).ok_or_else(|| {
            GraphError::required_missing("Parameter 'sections[].rows' is required")
        })?;
        for r in rows {
            total += 1;
            let id = r.get("id").and_then(Value::as_str).unwrap_or("");
            let title = r.get("title").and_then(Value::as_str).unwrap_or("");
            length_between(id, 1, 200, "Row id")?;
            length_between(title, 1, 24, "Row title")?;
            if let Some(d) = r.get("description").and_then(Value::as_str) {
                max_len(d, 72, "Row description")?;
            }
            if !ids.insert(id) {
                return Err(GraphError::invalid_value("Row id must be unique"));
            }
        }
    }
    if total == 0 || total > 10 {
        return Err(GraphError::invalid_value(
            "Invalid rows count. Min allowed rows: 1, Max allowed rows: 10",
        ));
    }
    Ok(())
}
