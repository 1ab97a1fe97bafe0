//! The HTTP side of template management: list, create, delete on `/{WABA-ID}/message_templates`,
//! get and edit on `/{TEMPLATE_ID}`. Order of checks, as everywhere in the simulator: fault,
//! token, permission, object, body (schema, then Meta's rules).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::rules::{self, Submitted};
use super::{Deleted, NAME_REUSE_BLOCK, Template, check_and_record};
use crate::account::{MANAGEMENT, authorize_scope, select, waba_known};
use crate::errors::GraphError;
use crate::graph::{Kill, gate, valid_version};
use crate::openapi::RequestKind;
use crate::{Endpoint, GraphSim, ids};

/// Fields of a template returned without `fields`.
const DEFAULT_FIELDS: &[&str] = &[
    "name",
    "parameter_format",
    "components",
    "language",
    "status",
    "category",
    "id",
];

async fn waba_gate(
    sim: &GraphSim,
    version: &str,
    waba: &str,
    method: &str,
    uri: &OriginalUri,
    kill: &Kill,
    headers: &HeaderMap,
) -> Result<(), Response> {
    if !valid_version(version) {
        return Err(GraphError::unknown_path(uri.path()).into_response());
    }
    gate(sim, Endpoint::Templates, kill).await?;
    authorize_scope(sim, headers, MANAGEMENT).map_err(IntoResponse::into_response)?;
    if !waba_known(sim, waba) {
        return Err(GraphError::unknown_object(method, waba).into_response());
    }
    Ok(())
}

fn fields_of(t: &Template, fields: Option<&str>) -> Result<Value, GraphError> {
    let mut all = t.to_json();
    if fields.is_none() {
        // previous_category only shows when there is one, as in the document's example.
        let keep: Vec<&str> = DEFAULT_FIELDS
            .iter()
            .copied()
            .chain(t.previous_category.as_ref().map(|_| "previous_category"))
            .collect();
        all.retain(|k, _| keep.contains(&k.as_str()));
        return Ok(Value::Object(all));
    }
    // Fields Meta knows but leaves out when they have no value are not errors.
    let requested: Vec<&str> = fields
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| all.contains_key(*f) || !OPTIONAL_FIELDS.contains(f))
        .collect();
    select(
        &all,
        Some(&requested.join(",")),
        DEFAULT_FIELDS,
        "WhatsAppMessageTemplate",
    )
}

/// Fields of the template node that are absent unless set.
const OPTIONAL_FIELDS: &[&str] = &[
    "previous_category",
    "sub_category",
    "correct_category",
    "library_template_name",
    "cta_url_link_tracking_opted_out",
    "message_send_ttl_seconds",
];

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

fn one_of(filter: Option<&String>, value: &str) -> bool {
    filter.is_none_or(|f| f.split(',').any(|v| v.trim().eq_ignore_ascii_case(value)))
}

pub(crate) async fn list(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "get", &uri, &kill, &headers).await {
        return r;
    }
    let matches = |t: &&Template| {
        t.waba_id == waba
            && q.get("name").is_none_or(|n| t.name.contains(n.as_str()))
            && one_of(q.get("status"), &t.status)
            && one_of(q.get("category"), &t.category)
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
    let (start, end) = match (q.get("after"), q.get("before")) {
        (Some(a), _) => {
            let s = decode_cursor(a).unwrap_or(0).min(all.len());
            (s, (s + limit).min(all.len()))
        }
        (None, Some(b)) => {
            let e = decode_cursor(b).unwrap_or(0).min(all.len());
            (e.saturating_sub(limit), e)
        }
        (None, None) => (0, limit.min(all.len())),
    };
    let fields = q.get("fields").map(String::as_str);
    let mut data = Vec::with_capacity(end - start);
    for t in &all[start..end] {
        match fields_of(t, fields) {
            Ok(v) => data.push(v),
            Err(e) => return e.into_response(),
        }
    }
    let mut body = json!({ "data": data });
    if start < end {
        body["paging"] =
            json!({"cursors": {"before": encode_cursor(start), "after": encode_cursor(end)}});
        let origin = crate::graph::request_origin(&sim, &headers);
        let link = |key: &str, cursor: String| {
            let mut next: Vec<(String, String)> = q
                .iter()
                .filter(|(k, _)| *k != "after" && *k != "before")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            next.push((key.to_owned(), cursor));
            next.push(("limit".to_owned(), limit.to_string()));
            next.sort();
            next.dedup_by(|a, b| a.0 == b.0);
            let query: Vec<String> = next.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{origin}{}?{}", uri.path(), query.join("&"))
        };
        if end < all.len() {
            body["paging"]["next"] = json!(link("after", encode_cursor(end)));
        }
        if start > 0 {
            body["paging"]["previous"] = json!(link("before", encode_cursor(start)));
        }
    }
    Json(body).into_response()
}

fn text<'a>(req: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn parameter_format(req: &Map<String, Value>, default: &str) -> Result<String, GraphError> {
    let f = text(req, "parameter_format")
        .unwrap_or(default)
        .to_ascii_uppercase();
    if f == "POSITIONAL" || f == "NAMED" {
        Ok(f)
    } else {
        Err(GraphError::invalid_param(&format!(
            "Param parameter_format must be one of {{POSITIONAL, NAMED}} - got \"{f}\""
        )))
    }
}

fn category(raw: &str) -> Result<String, GraphError> {
    let c = raw.to_ascii_uppercase();
    if ["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&c.as_str()) {
        Ok(c)
    } else {
        Err(GraphError::invalid_param(&format!(
            "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{c}\""
        )))
    }
}

pub(crate) async fn create(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "post", &uri, &kill, &headers).await {
        return r;
    }
    let req = match check_and_record(&sim, RequestKind::TemplateCreate, uri.path(), &body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return GraphError::invalid_param("The body must be a JSON object").into_response();
        }
        Err(e) => return e.into_response(),
    };
    match new_template(&sim, &waba, &req) {
        Ok(t) => {
            let answer = json!({"id": t.id, "status": t.status, "category": t.category});
            let (id, revision) = (t.id.clone(), t.revision);
            sim.shared.update(|s| s.templates.push(t));
            super::review::schedule(&sim, &id, revision);
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
    let name = text(req, "name").ok_or_else(|| GraphError::param_required("name"))?;
    if !rules::valid_name(name) {
        return Err(GraphError::invalid_param(
            "Param name must contain only lowercase characters, numbers and underscores, at most 512",
        ));
    }
    let language = text(req, "language").ok_or_else(|| GraphError::param_required("language"))?;
    if !rules::LANGUAGES.contains(&language) {
        return Err(GraphError::invalid_param(&format!(
            "Param language must be a language Meta offers for templates, e.g. pt_BR - got \"{language}\""
        )));
    }
    let category =
        category(text(req, "category").ok_or_else(|| GraphError::param_required("category"))?)?;
    let format = parameter_format(req, "POSITIONAL")?;
    let components = req
        .get("components")
        .ok_or_else(|| GraphError::param_required("components"))?;
    let components = rules::check(
        sim,
        &Submitted {
            category: &category,
            parameter_format: &format,
            components,
        },
    )?;

    let now = sim.rule_now();
    let st = sim.shared.lock();
    let exists = st
        .templates
        .iter()
        .any(|t| t.waba_id == waba && t.name == name && t.language == language);
    if exists {
        return Err(GraphError::template_rule(
            Some(rules::SUB_EXISTS),
            "Content in this language already exists",
            &format!("Message template \"{name}\" already exists in language {language}."),
        ));
    }
    let live_name = st
        .templates
        .iter()
        .any(|t| t.waba_id == waba && t.name == name);
    let blocked = st.deleted_templates.iter().any(|d| {
        d.waba_id == waba
            && d.name == name
            && (d.language == language || !live_name)
            && now.saturating_sub(d.at) < NAME_REUSE_BLOCK.as_secs()
    });
    if blocked {
        return Err(GraphError::template_rule(
            Some(rules::SUB_BEING_DELETED),
            "Message template name is being deleted",
            &format!(
                "\"{name}\" was deleted less than 30 days ago and can't be used again yet. Try again in 4 weeks or make a new message template."
            ),
        ));
    }
    let count = st.templates.iter().filter(|t| t.waba_id == waba).count();
    if count >= st.template_limit {
        return Err(GraphError::template_rule(
            Some(rules::SUB_LIMIT),
            "Message template limit exceeded",
            &format!(
                "This WhatsApp Business Account has reached its limit of {} message templates.",
                st.template_limit
            ),
        ));
    }
    Ok(Template::new(
        ids::media_id(),
        waba,
        name,
        language,
        &category,
        &st.new_template_status,
        components,
        &format,
    ))
}

pub(crate) async fn delete(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "delete", &uri, &kill, &headers).await {
        return r;
    }
    let Some(name) = q.get("name").filter(|n| !n.is_empty()) else {
        return GraphError::param_required("name").into_response();
    };
    let hsm_id = q.get("hsm_id");
    let now = sim.rule_now();
    let removed = sim.shared.update(|s| {
        let (gone, kept): (Vec<Template>, Vec<Template>) =
            std::mem::take(&mut s.templates).into_iter().partition(|t| {
                t.waba_id == waba && t.name == *name && hsm_id.is_none_or(|id| t.id == *id)
            });
        s.templates = kept;
        for t in &gone {
            s.deleted_templates.push(Deleted {
                waba_id: t.waba_id.clone(),
                name: t.name.clone(),
                language: t.language.clone(),
                at: now,
            });
        }
        gone.len()
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
    let t = sim.template(id)?;
    Some(match fields_of(&t, fields) {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    })
}

const DAY: u64 = 24 * 3600;

/// `POST /{TEMPLATE_ID}`: new components and/or category. Only APPROVED, REJECTED and PAUSED
/// templates can be edited, an APPROVED one at most once a day and ten times in 30 days; the
/// edit goes back to review (the configured status for new templates).
pub(crate) fn edit(sim: &GraphSim, id: &str, path: &str, raw: &[u8]) -> Option<Response> {
    let t = sim.template(id)?;
    let req = match check_and_record(sim, RequestKind::TemplateEdit, path, raw) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Some(
                GraphError::invalid_param("The body must be a JSON object").into_response(),
            );
        }
        Err(e) => return Some(e.into_response()),
    };
    Some(match apply_edit(sim, &t, &req) {
        Ok(revision) => {
            super::review::schedule(sim, id, revision);
            Json(json!({"success": true})).into_response()
        }
        Err(e) => e.into_response(),
    })
}

fn apply_edit(sim: &GraphSim, t: &Template, req: &Map<String, Value>) -> Result<u64, GraphError> {
    let refuse = |title: &str, msg: String| GraphError::template_rule(None, title, &msg);
    if !["APPROVED", "REJECTED", "PAUSED"].contains(&t.status.as_str()) {
        return Err(refuse(
            "Message template can't be edited",
            format!(
                "Only APPROVED, REJECTED or PAUSED templates can be edited; this one is {}.",
                t.status
            ),
        ));
    }
    for (key, current) in [("name", &t.name), ("language", &t.language)] {
        if text(req, key).is_some_and(|v| v != current.as_str()) {
            return Err(refuse(
                "Message template can't be edited",
                format!("The {key} of a template can't be changed."),
            ));
        }
    }
    let new_category = text(req, "category").map(category).transpose()?;
    if t.status == "APPROVED" && new_category.as_ref().is_some_and(|c| *c != t.category) {
        return Err(refuse(
            "Message template can't be edited",
            "The category of an APPROVED template can't be changed.".to_owned(),
        ));
    }
    let format = parameter_format(req, &t.parameter_format)?;
    let category = new_category.unwrap_or_else(|| t.category.clone());
    let components = match req.get("components") {
        Some(c) => Some(rules::check(
            sim,
            &Submitted {
                category: &category,
                parameter_format: &format,
                components: c,
            },
        )?),
        None if category == t.category => return Err(GraphError::param_required("components")),
        None => None,
    };
    let now = sim.rule_now();
    if t.status == "APPROVED" {
        let last_day = t.approved_edits.iter().filter(|e| now - **e < DAY).count();
        let last_month = t
            .approved_edits
            .iter()
            .filter(|e| now - **e < 30 * DAY)
            .count();
        if last_day >= 1 || last_month >= 10 {
            return Err(refuse(
                "Edit limit reached",
                "An approved template can be edited once every 24 hours and up to 10 times in 30 days.".to_owned(),
            ));
        }
    }
    let revision = sim.shared.update(|s| {
        let status = s.new_template_status.clone();
        let stored = s.templates.iter_mut().find(|x| x.id == t.id)?;
        if stored.status == "APPROVED" {
            stored.approved_edits.push(now);
        }
        if let Some(c) = components {
            stored.components = c;
        }
        stored.category = category;
        stored.parameter_format = format;
        stored.status = status;
        stored.rejected_reason = "NONE".to_owned();
        stored.revision += 1;
        Some(stored.revision)
    });
    revision.ok_or_else(|| GraphError::unknown_object("post", &t.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage"), None);
    }

    #[test]
    fn names() {
        assert!(rules::valid_name("pedido_atualizado_2"));
        assert!(!rules::valid_name("Pedido"));
        assert!(!rules::valid_name("com espaço"));
        assert!(!rules::valid_name(""));
    }
}
