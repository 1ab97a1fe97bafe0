//! Message template management as Meta's document describes it (`/{WABA-ID}/message_templates`:
//! list, create, delete; `/{TEMPLATE_ID}`: get, edit), the review that follows (`review`), and,
//! when enforcement is on, the checks Meta applies to template sends (`send`).
//!
//! Every template-related body is checked against Meta's OpenAPI document first ([`crate::openapi`])
//! and recorded, so a test can assert that everything Atende sent conformed; then Meta's own rules
//! ([`rules`]) apply, each answered with Meta's error code and subcode.
//!
//! Enforcement of sends is off by default so tests that only care about sending do not have to
//! create templates first.

mod handlers;
pub(crate) mod review;
mod rules;
pub(crate) mod send;

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::GraphSim;
use crate::errors::GraphError;
use crate::openapi::{self, RequestKind, Violation};

pub(crate) use handlers::{create, delete, edit, get_one, list};
pub use review::AutoReview;
pub use send::{RenderedButton, RenderedTemplate};

/// Meta's limit for a WABA whose business portfolio is not verified.
pub(crate) const DEFAULT_TEMPLATE_LIMIT: usize = 250;
/// A deleted name cannot be used again for this long.
pub(crate) const NAME_REUSE_BLOCK: Duration = Duration::from_secs(30 * 24 * 3600);

/// A message template as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED, IN_APPEAL...
    pub status: String,
    /// Meta's creation array, with `type`, `format` and button types in upper case.
    pub components: Value,
    /// POSITIONAL or NAMED.
    pub parameter_format: String,
    /// GREEN, YELLOW, RED or UNKNOWN.
    pub quality_score: String,
    /// NONE unless rejected (INVALID_FORMAT, PROMOTIONAL, INCORRECT_CATEGORY...).
    pub rejected_reason: String,
    /// Set when Meta re-categorised the template.
    pub previous_category: Option<String>,
    /// Edits made while APPROVED, in unix seconds of the simulated clock (Meta: at most one
    /// per 24 hours and ten per 30 days).
    pub approved_edits: Vec<u64>,
    /// Bumped on every change of content, so a pending automatic review of an older version
    /// does not judge the new one.
    #[serde(skip)]
    pub(crate) revision: u64,
}

impl Template {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        waba_id: &str,
        name: &str,
        language: &str,
        category: &str,
        status: &str,
        components: Value,
        parameter_format: &str,
    ) -> Template {
        Template {
            id,
            waba_id: waba_id.to_owned(),
            name: name.to_owned(),
            language: language.to_owned(),
            category: category.to_ascii_uppercase(),
            status: status.to_ascii_uppercase(),
            components,
            parameter_format: parameter_format.to_ascii_uppercase(),
            quality_score: if status.eq_ignore_ascii_case("APPROVED") {
                "GREEN".to_owned()
            } else {
                "UNKNOWN".to_owned()
            },
            rejected_reason: "NONE".to_owned(),
            previous_category: None,
            approved_edits: Vec::new(),
            revision: 0,
        }
    }

    /// Every field Graph can return for the node.
    pub(crate) fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("parameter_format".into(), json!(self.parameter_format));
        m.insert("components".into(), self.components.clone());
        m.insert("language".into(), json!(self.language));
        m.insert("status".into(), json!(self.status));
        m.insert("category".into(), json!(self.category));
        if let Some(p) = &self.previous_category {
            m.insert("previous_category".into(), json!(p));
        }
        m.insert("quality_score".into(), json!({"score": self.quality_score}));
        m.insert("rejected_reason".into(), json!(self.rejected_reason));
        m.insert("id".into(), json!(self.id));
        m
    }

    /// The component of this type (HEADER, BODY, FOOTER, BUTTONS).
    pub(crate) fn component(&self, kind: &str) -> Option<&Value> {
        component(&self.components, kind)
    }
}

pub(crate) fn component<'a>(components: &'a Value, kind: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// A deletion, for the 30-day block on reusing the name.
#[derive(Debug, Clone)]
pub(crate) struct Deleted {
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub at: u64,
}

/// A template-related request body as received, and whether it conformed to Meta's OpenAPI
/// document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// POST or DELETE.
    pub method: String,
    /// The request path, e.g. `/v23.0/123/message_templates` (without the query).
    pub path: String,
    pub kind: RequestKind,
    /// The body (a JSON string with the raw text if it was not JSON).
    pub body: Value,
    pub valid: bool,
    /// One line per violation: `template['components'][0]['type']: "BODY" is not one of ...`.
    pub errors: Vec<String>,
    #[serde(serialize_with = "crate::serialize_unix_millis")]
    pub received_at: SystemTime,
}

/// Checks `raw` against the document, records it, and answers the 400 Meta-style error when it
/// does not conform (or is not JSON at all).
pub(crate) fn check_and_record(
    sim: &GraphSim,
    kind: RequestKind,
    path: &str,
    raw: &[u8],
) -> Result<Value, GraphError> {
    let parsed: Result<Value, _> = serde_json::from_slice(raw);
    let (body, violations) = match parsed {
        Ok(v) => {
            let violations = openapi::validate(kind, &v)
                .map_err(|e| GraphError::new(500, 1, "GraphMethodException", &e.to_string()))?;
            (v, violations)
        }
        Err(e) => (
            Value::String(String::from_utf8_lossy(raw).into_owned()),
            vec![Violation {
                instance_path: String::new(),
                schema_path: String::new(),
                message: format!("the body is not JSON: {e}"),
            }],
        ),
    };
    finish(sim, kind, path, body, &violations)
}

/// [`check_and_record`] for a body already parsed.
pub(crate) fn check_value_and_record(
    sim: &GraphSim,
    kind: RequestKind,
    path: &str,
    body: &Value,
) -> Result<(), GraphError> {
    let violations = openapi::validate(kind, body)
        .map_err(|e| GraphError::new(500, 1, "GraphMethodException", &e.to_string()))?;
    finish(sim, kind, path, body.clone(), &violations).map(|_| ())
}

fn finish(
    sim: &GraphSim,
    kind: RequestKind,
    path: &str,
    body: Value,
    violations: &[Violation],
) -> Result<Value, GraphError> {
    record(sim, kind, path, &body, violations);
    if violations.is_empty() {
        Ok(body)
    } else {
        Err(GraphError::schema_violation(violations, kind.schema_name()))
    }
}

pub(crate) fn record(
    sim: &GraphSim,
    kind: RequestKind,
    path: &str,
    body: &Value,
    violations: &[Violation],
) {
    sim.shared.update(|s| {
        if !s.record_template_requests {
            return;
        }
        s.template_requests.push(RecordedRequest {
            method: "POST".to_owned(),
            path: path.to_owned(),
            kind,
            body: body.clone(),
            valid: violations.is_empty(),
            errors: violations.iter().map(ToString::to_string).collect(),
            received_at: SystemTime::now(),
        });
    });
}

/// One `{{...}}` of a template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub name: String,
    /// Byte range of the whole `{{name}}`.
    pub start: usize,
    pub end: usize,
}

/// The placeholders of `text` in order; `Err` names the first malformed one (`{{` without `}}`,
/// or a name that is neither a number nor a lowercase snake_case word).
pub(crate) fn placeholders(text: &str) -> Result<Vec<Placeholder>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        let Some(j) = text[start + 2..].find("}}") else {
            return Err(format!("\"{{{{\" at byte {start} is never closed"));
        };
        let name = &text[start + 2..start + 2 + j];
        let numeric = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
        let named = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !numeric && !named {
            return Err(format!("{{{{{name}}}}} is not a valid variable"));
        }
        let end = start + 2 + j + 2;
        out.push(Placeholder {
            name: name.to_owned(),
            start,
            end,
        });
        from = end;
    }
    Ok(out)
}

/// Distinct names in order of first appearance.
pub(crate) fn distinct(list: &[Placeholder]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for p in list {
        if !seen.contains(&p.name.as_str()) {
            seen.push(&p.name);
        }
    }
    seen
}

/// Replaces each placeholder by `value(name)`, or leaves it when there is none.
pub(crate) fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let Ok(list) = placeholders(text) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in list {
        out.push_str(&text[at..p.start]);
        match value(&p.name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&text[p.start..p.end]),
        }
        at = p.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders() {
        let p = placeholders("Oi {{1}}, pedido {{2}} saiu. {{1}}").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(distinct(&p), vec!["1", "2"]);
        assert_eq!(
            placeholders("Oi {{first_name}}!").unwrap()[0].name,
            "first_name"
        );
        assert!(placeholders("sem variáveis").unwrap().is_empty());
        assert!(placeholders("quebrado {{1").is_err());
        assert!(placeholders("{{ 1 }}").is_err());
        assert!(placeholders("{{Nome}}").is_err());
    }

    #[test]
    fn fills_placeholders() {
        let v = |n: &str| (n == "1").then(|| "Ana".to_owned());
        assert_eq!(fill("Oi {{1}}, {{2}}", v), "Oi Ana, {{2}}");
    }
}
