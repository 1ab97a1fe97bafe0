//! Message template management (`/{waba-id}/message_templates`,
//! `/{template-id}`) and, when enforcement is on, the template checks Meta
//! applies to template sends.
//!
//! Enforcement is off by default so that tests which only care about
//! sending do not have to create templates first.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::errors::GraphError;
use crate::graph::{Kill, authorize, gate, valid_version};
use crate::{Endpoint, GraphSim, ids};

/// A message template as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED...
    pub status: String,
    pub components: Value,
    pub parameter_format: String,
}

impl Template {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "quality_score": {"score": if self.status == "APPROVED" { "GREEN" } else { "UNKNOWN" }},
            "rejected_reason": if self.status == "REJECTED" { "INVALID_FORMAT" } else { "NONE" },
            "id": self.id,
        })
    }

    fn body_text(&self) -> Option<&str> {
        self.components.as_array()?.iter().find_map(|c| {
            let kind = c.get("type")?.as_str()?;
            if kind.eq_ignore_ascii_case("body") {
                c.get("text")?.as_str()
            } else {
                None
            }
        })
    }
}

/// Distinct `{{...}}` placeholders in a template text.
fn placeholders(text: &str) -> usize {
    let mut seen = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty() && !seen.contains(&name) {
            seen.push(name);
        }
        rest = &after[end + 2..];
    }
    seen.len()
}

fn waba_known(sim: &GraphSim, waba_id: &str) -> bool {
    sim.shared
        .phone_numbers
        .iter()
        .any(|p| p.waba_id == waba_id)
}

pub(crate) async fn list(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(resp) = gate(&sim, Endpoint::Templates, &kill).await {
        return resp;
    }
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    if !waba_known(&sim, &waba) {
        return GraphError::unknown_object("get", &waba).into_response();
    }
    let matches = |t: &&Template| {
        t.waba_id == waba
            && q.get("name").is_none_or(|n| t.name.contains(n.as_str()))
            && q.get("status")
                .is_none_or(|s| t.status.eq_ignore_ascii_case(s))
            && q.get("category")
                .is_none_or(|c| t.category.eq_ignore_ascii_case(c))
            && q.get("language").is_none_or(|l| t.language == *l)
    };
    let all: Vec<Template> = sim
        .shared
        .lock()
        .templates
        .iter()
        .filter(matches)
        .cloned()
        .collect();

    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(25)
        .min(1000);
    let start = q.get("after").and_then(|a| decode_cursor(a)).unwrap_or(0);
    let page: Vec<&Template> = all.iter().skip(start).take(limit).collect();
    let fields: Option<Vec<&str>> = q
        .get("fields")
        .map(|f| f.split(',').map(str::trim).collect());
    let data: Vec<Value> = page
        .iter()
        .map(|t| select_fields(t.to_json(), fields.as_deref()))
        .collect();

    let mut body = json!({ "data": data });
    if !page.is_empty() {
        let end = start + page.len();
        body["paging"] =
            json!({"cursors": {"before": encode_cursor(start), "after": encode_cursor(end)}});
        if end < all.len() {
            let mut next = q.clone();
            next.insert("after".into(), encode_cursor(end));
            next.insert("limit".into(), limit.to_string());
            let query: Vec<String> = next.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let origin = crate::graph::request_origin(&sim, &headers);
            body["paging"]["next"] = json!(format!("{origin}{}?{}", uri.path(), query.join("&")));
        }
    }
    Json(body).into_response()
}

fn encode_cursor(i: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("graph-sim:{i}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("graph-sim:")?
        .parse()
        .ok()
}

fn select_fields(v: Value, fields: Option<&[&str]>) -> Value {
    let (Some(fields), Value::Object(all)) = (fields, &v) else {
        return v;
    };
    let mut out = Map::new();
    for f in fields.iter().chain(&["id"]) {
        if let Some(x) = all.get(*f) {
            out.insert((*f).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub(crate) async fn create(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(resp) = gate(&sim, Endpoint::Templates, &kill).await {
        return resp;
    }
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    if !waba_known(&sim, &waba) {
        return GraphError::unknown_object("post", &waba).into_response();
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return GraphError::invalid_param(
            "Invalid parameter: the request body must be a JSON object",
        )
        .into_response();
    };
    match new_template(&sim, &waba, &req) {
        Ok(t) => {
            let answer = json!({"id": t.id, "status": t.status, "category": t.category});
            sim.shared.update(|s| s.templates.push(t));
            Json(answer).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn new_template(
    sim: &GraphSim,
    waba: &str,
    req: &Map<String, Value>,
) -> Result<Template, GraphError> {
    let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let name = text("name").ok_or_else(|| GraphError::param_required("name"))?;
    if !valid_name(name) {
        return Err(GraphError::invalid_param(
            "Param name must contain only lowercase characters, numbers and underscores, at most 512",
        ));
    }
    let language = text("language").ok_or_else(|| GraphError::param_required("language"))?;
    let category = text("category")
        .ok_or_else(|| GraphError::param_required("category"))?
        .to_ascii_uppercase();
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
        return Err(GraphError::invalid_param(&format!(
            "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{category}\""
        )));
    }
    let components = req
        .get("components")
        .filter(|c| c.is_array())
        .ok_or_else(|| GraphError::param_required("components"))?;
    let body = components.as_array().into_iter().flatten().find(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("body"))
    });
    match body.and_then(|b| b.get("text")).and_then(Value::as_str) {
        Some(text) => {
            if text.chars().count() > 1024 {
                return Err(
                    GraphError::invalid_param("Body text is too long. Max length: 1024")
                        .with("error_subcode", json!(2388040)),
                );
            }
            let trimmed = text.trim();
            if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
                return Err(GraphError::invalid_param(
                    "Variables can't be at the start or end of the template body",
                )
                .with("error_subcode", json!(2388299)));
            }
        }
        None if category != "AUTHENTICATION" => {
            return Err(GraphError::invalid_param(
                "A BODY component with text is required",
            ));
        }
        None => {}
    }
    let duplicate = sim
        .shared
        .lock()
        .templates
        .iter()
        .any(|t| t.waba_id == waba && t.name == name && t.language == language);
    if duplicate {
        return Err(GraphError::invalid_param(&format!(
            "Message template \"{name}\" already exists in language {language}"
        ))
        .with("error_subcode", json!(2388024)));
    }
    let parameter_format = text("parameter_format")
        .unwrap_or("POSITIONAL")
        .to_ascii_uppercase();
    Ok(Template {
        id: ids::media_id(),
        waba_id: waba.to_owned(),
        name: name.to_owned(),
        language: language.to_owned(),
        category,
        status: sim.shared.lock().new_template_status.clone(),
        components: components.clone(),
        parameter_format,
    })
}

pub(crate) async fn delete(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(resp) = gate(&sim, Endpoint::Templates, &kill).await {
        return resp;
    }
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    if !waba_known(&sim, &waba) {
        return GraphError::unknown_object("delete", &waba).into_response();
    }
    let Some(name) = q.get("name") else {
        return GraphError::param_required("name").into_response();
    };
    let hsm_id = q.get("hsm_id");
    let removed = sim.shared.update(|s| {
        let before = s.templates.len();
        s.templates.retain(|t| {
            !(t.waba_id == waba && t.name == *name && hsm_id.is_none_or(|id| t.id == *id))
        });
        before - s.templates.len()
    });
    if removed == 0 {
        return GraphError::invalid_param(&format!(
            "Message template \"{name}\" can't be deleted because it doesn't exist"
        ))
        .into_response();
    }
    Json(json!({"success": true})).into_response()
}

pub(crate) fn get_one(sim: &GraphSim, id: &str, fields: Option<&str>) -> Option<Response> {
    let t = sim
        .shared
        .lock()
        .templates
        .iter()
        .find(|t| t.id == id)
        .cloned()?;
    let fields: Option<Vec<&str>> = fields.map(|f| f.split(',').map(str::trim).collect());
    Some(Json(select_fields(t.to_json(), fields.as_deref())).into_response())
}

/// `POST /{template-id}` with new components and/or category; an edited
/// template goes back to review like on the real API, unless the simulator
/// approves new templates outright.
pub(crate) fn edit(sim: &GraphSim, id: &str, body: &[u8]) -> Option<Response> {
    if !sim.shared.lock().templates.iter().any(|t| t.id == id) {
        return None;
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return Some(
            GraphError::invalid_param("Invalid parameter: the request body must be a JSON object")
                .into_response(),
        );
    };
    sim.shared.update(|s| {
        let status = s.new_template_status.clone();
        if let Some(t) = s.templates.iter_mut().find(|t| t.id == id) {
            if let Some(c) = req.get("components").filter(|c| c.is_array()) {
                t.components = c.clone();
            }
            if let Some(c) = req.get("category").and_then(Value::as_str) {
                t.category = c.to_ascii_uppercase();
            }
            t.status = status;
        }
    });
    Some(Json(json!({"success": true})).into_response())
}

/// The template checks of a send, when enforcement is on.
pub(crate) fn check_send(sim: &GraphSim, waba: &str, template: &Value) -> Result<(), GraphError> {
    let st = sim.shared.lock();
    if !st.enforce_templates {
        return Ok(());
    }
    let name = template.get("name").and_then(Value::as_str).unwrap_or("");
    let language = template
        .pointer("/language/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(t) = st
        .templates
        .iter()
        .find(|t| t.waba_id == waba && t.name == name && t.language == language)
    else {
        return Err(GraphError::template(
            404,
            132001,
            &format!("template name ({name}) does not exist in {language}"),
        ));
    };
    match t.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => {
            return Err(GraphError::template(
                400,
                132015,
                &format!("Template {name} is paused"),
            ));
        }
        "DISABLED" => {
            return Err(GraphError::template(
                400,
                132016,
                &format!("Template {name} is disabled"),
            ));
        }
        other => {
            return Err(GraphError::template(
                404,
                132001,
                &format!("template name ({name}) is {other}, not approved, in {language}"),
            ));
        }
    }
    let expected = t.body_text().map_or(0, placeholders);
    let given = template
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("body"))
        .and_then(|c| c.get("parameters"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if expected != given {
        return Err(GraphError::template(
            400,
            132000,
            &format!(
                "body: number of localizable_params ({given}) does not match the expected number of params ({expected})"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_placeholders() {
        assert_eq!(placeholders("Oi {{1}}, pedido {{2}} saiu. {{1}}"), 2);
        assert_eq!(placeholders("Oi {{first_name}}!"), 1);
        assert_eq!(placeholders("sem variáveis"), 0);
        assert_eq!(placeholders("quebrado {{1"), 0);
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage"), None);
    }

    #[test]
    fn names() {
        assert!(valid_name("pedido_atualizado_2"));
        assert!(!valid_name("Pedido"));
        assert!(!valid_name("com espaço"));
        assert!(!valid_name(""));
    }
}
