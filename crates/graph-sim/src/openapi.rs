//! Meta's published OpenAPI document (`openapi/business-messaging-api_v23.0.yaml`, MIT, copied
//! into this crate so it builds alone) as the contract for every template-related request body:
//! template creation (`POST /{WABA-ID}/message_templates`), template edits (`POST /{TEMPLATE_ID}`)
//! and template sends (`POST /{Phone-Number-ID}/messages` with `type: template`).
//!
//! The document is parsed once, patched where it is demonstrably wrong (each patch below names
//! the defect and the example of the document itself that proves it), and its schemas are checked
//! with a JSON Schema (2020-12) validator. OpenAPI's `discriminator` is honoured: a component of
//! `type: button` is checked against `ButtonComponent`, not only against the loose base object,
//! because plain JSON Schema would otherwise accept any `parameters` at all.
//!
//! Message schemas are `allOf [BaseMessageProperties, {additionalProperties: false, ...}]`, which
//! no body can satisfy, so the envelope of a send is checked here by hand and the `template`
//! object against `TemplateObject`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value, json};

const DOCUMENT: &str = include_str!("../openapi/business-messaging-api_v23.0.yaml");

const SEND_PATH: &str = "/{Version}/{Phone-Number-ID}/messages";
const TEMPLATES_PATH: &str = "/{Version}/{WABA-ID}/message_templates";
const TEMPLATE_PATH: &str = "/{Version}/{TEMPLATE_ID}";

/// `error_subcode` of the 400 answered for a body that does not conform to the document. Meta
/// has no single subcode for this (its own answers are `(#100) Param ... must be ...`), so this
/// one is the simulator's: recognisable, and outside Meta's template range (2388xxx).
pub const SCHEMA_SUBCODE: i64 = 9_100_001;

/// Which request body a schema check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `POST /{WABA-ID}/message_templates`.
    TemplateCreate,
    /// `POST /{TEMPLATE_ID}`.
    TemplateEdit,
    /// `POST /{Phone-Number-ID}/messages` with `type: template` (the whole body).
    TemplateSend,
}

impl RequestKind {
    /// The part of the document the body is checked against, for messages.
    pub fn schema_name(self) -> &'static str {
        match self {
            RequestKind::TemplateCreate => {
                "paths./{Version}/{WABA-ID}/message_templates.post.requestBody"
            }
            RequestKind::TemplateEdit => "paths./{Version}/{TEMPLATE_ID}.post.requestBody",
            RequestKind::TemplateSend => "components.schemas.TemplateObject",
        }
    }
}

/// One way a body breaks the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into the body, e.g. `/template/components/1/index`.
    pub instance_path: String,
    /// Where in the document's schemas, through `$ref`s, e.g.
    /// `/allOf/1/properties/components/items/...`.
    pub schema_path: String,
    pub message: String,
}

impl Violation {
    fn new(instance_path: &str, message: impl Into<String>) -> Violation {
        Violation {
            instance_path: instance_path.to_owned(),
            schema_path: String::new(),
            message: message.into(),
        }
    }

    /// `template['components'][1]['index']`, the way Graph names parameters in its errors.
    pub fn graph_param(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.instance_path.split('/').skip(1).enumerate() {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            if i == 0 {
                out.push_str(&seg);
            } else if seg.bytes().all(|b| b.is_ascii_digit()) && !seg.is_empty() {
                out.push_str(&format!("[{seg}]"));
            } else {
                out.push_str(&format!("['{seg}']"));
            }
        }
        if out.is_empty() {
            out.push_str("(body)");
        }
        out
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.graph_param(), self.message)
    }
}

/// The document could not be read or compiled; a bug of this crate, reported instead of a
/// panic so a server embedding the simulator keeps running.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Meta's OpenAPI document could not be loaded: {0}")]
pub struct ContractError(String);

struct Contract {
    document: Value,
    send: jsonschema::Validator,
    create: jsonschema::Validator,
    edit: jsonschema::Validator,
}

static CONTRACT: OnceLock<Result<Contract, ContractError>> = OnceLock::new();

fn contract() -> Result<&'static Contract, ContractError> {
    CONTRACT.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Parses and compiles the document now rather than at the first template request (the first
/// parse takes a noticeable fraction of a second in debug builds).
pub fn preload() -> Result<(), ContractError> {
    contract().map(|_| ())
}

fn load() -> Result<Contract, ContractError> {
    let document: Value =
        serde_norway::from_str(DOCUMENT).map_err(|e| ContractError(e.to_string()))?;
    let mut schemas = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| ContractError("no components.schemas".into()))?;
    patch(&mut schemas)?;
    dispatch_discriminators(&mut schemas);
    let components = json!({ "schemas": schemas });

    let compile = |schema: Value| -> Result<jsonschema::Validator, ContractError> {
        let mut root = match schema {
            Value::Object(o) => o,
            other => return Err(ContractError(format!("schema is not an object: {other}"))),
        };
        root.insert("components".into(), components.clone());
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&Value::Object(root))
            .map_err(|e| ContractError(e.to_string()))
    };
    let body_schema = |path: &str| -> Result<Value, ContractError> {
        request_body(&document, path)
            .and_then(|b| b.get("schema"))
            .cloned()
            .ok_or_else(|| ContractError(format!("no request body schema for POST {path}")))
    };
    let send = compile(json!({"$ref": "#/components/schemas/TemplateObject"}))?;
    let create = compile(body_schema(TEMPLATES_PATH)?)?;
    let edit = compile(body_schema(TEMPLATE_PATH)?)?;
    Ok(Contract {
        document,
        send,
        create,
        edit,
    })
}

fn request_body<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    document
        .get("paths")?
        .get(path)?
        .pointer("/post/requestBody/content/application~1json")
}

fn schema_mut<'a>(
    schemas: &'a mut Map<String, Value>,
    name: &str,
) -> Result<&'a mut Value, ContractError> {
    schemas
        .get_mut(name)
        .ok_or_else(|| ContractError(format!("schema {name} missing")))
}

fn pointer_mut<'a>(v: &'a mut Value, pointer: &str) -> Result<&'a mut Value, ContractError> {
    v.pointer_mut(pointer)
        .ok_or_else(|| ContractError(format!("{pointer} missing")))
}

/// Sub-types of template button components that Meta documents; the document lists three.
const BUTTON_SUB_TYPES: &[&str] = &[
    "quick_reply",
    "url",
    "catalog",
    "flow",
    "copy_code",
    "mpm",
    "voice_call",
];

/// The document's defects, fixed in place. Each one is proved wrong by an example of the
/// document itself or by Meta's own description next to it.
fn patch(schemas: &mut Map<String, Value>) -> Result<(), ContractError> {
    // 1. `language.policy` is marked required, but Meta documents it as optional and seven of
    //    the nine template send examples ("Send Test Message", ...) omit it.
    *pointer_mut(schema_mut(schemas, "LanguageObject")?, "/required")? = json!(["code"]);

    // 2. Button `index` is typed string with the pattern `^[2-6, 11-14]$` (a character class
    //    that rejects "0"), while the description says "Position index of the button (0-9)" and
    //    the examples send `index: 0` ("Send Catalog Template Message") and `index: '0'`
    //    ("Send Message Template Interactive").
    let index = json!({"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 9},
        {"type": "string", "pattern": "^[0-9]$"},
    ]});
    // 3. `sub_type` lists quick_reply, url and catalog only; the examples send "flow"
    //    ("Send Flow Template Message") and "CATALOG" ("Send Catalog Template Message"). Meta's
    //    template guides add copy_code, mpm and voice_call.
    let mut sub_types: Vec<String> = BUTTON_SUB_TYPES.iter().map(|s| (*s).to_owned()).collect();
    sub_types.extend(BUTTON_SUB_TYPES.iter().map(|s| s.to_ascii_uppercase()));
    let sub_type = json!({"type": "string", "enum": sub_types});
    {
        let base = schema_mut(schemas, "TemplateComponent")?;
        *pointer_mut(base, "/properties/index")? = index.clone();
        *pointer_mut(base, "/properties/sub_type")? = sub_type.clone();
    }
    {
        let button = schema_mut(schemas, "ButtonComponent")?;
        *pointer_mut(button, "/allOf/1/properties/index")? = index;
        *pointer_mut(button, "/allOf/1/properties/sub_type")? = sub_type;
    }

    // 4. Button parameters are `payload` or `text` only, but the catalog and flow examples send
    //    `{"type": "action", "action": {...}}`, and copy-code buttons (Meta's coupon templates)
    //    take `{"type": "coupon_code", "coupon_code": "..."}`.
    {
        let base = schema_mut(schemas, "ButtonParameterObject")?;
        *pointer_mut(base, "/properties/type/enum")? =
            json!(["payload", "text", "action", "coupon_code"]);
        let mapping = pointer_mut(base, "/discriminator/mapping")?;
        mapping["action"] = json!("#/components/schemas/ButtonActionParameter");
        mapping["coupon_code"] = json!("#/components/schemas/ButtonCouponCodeParameter");
    }
    schemas.insert(
        "ButtonActionParameter".into(),
        json!({"allOf": [
            {"$ref": "#/components/schemas/ButtonParameterObject"},
            {"type": "object", "required": ["action"], "properties": {
                "type": {"enum": ["action"]},
                "action": {"type": "object"},
            }},
        ]}),
    );
    schemas.insert(
        "ButtonCouponCodeParameter".into(),
        json!({"allOf": [
            {"$ref": "#/components/schemas/ButtonParameterObject"},
            {"type": "object", "required": ["coupon_code"], "properties": {
                "type": {"enum": ["coupon_code"]},
                "coupon_code": {"type": "string", "minLength": 1, "maxLength": 15},
            }},
        ]}),
    );

    // 5. A button's text parameter is a string, but "Send Sample Issue Resolution Template"
    //    sends `"text": true` (Graph coerces scalars); booleans are let through, nothing else.
    *pointer_mut(
        schema_mut(schemas, "ButtonTextParameter")?,
        "/allOf/1/properties/text",
    )? = json!({"type": ["string", "boolean"]});

    // 6. Header parameters cannot be a location, although the document's own create examples
    //    include a LOCATION header template ("Create template w/ location header ..."), which
    //    is sent with `{"type": "location", "location": {latitude, longitude, name, address}}`.
    {
        let base = schema_mut(schemas, "ParameterObject")?;
        if let Some(list) = pointer_mut(base, "/properties/type/enum")?.as_array_mut() {
            list.push(json!("location"));
        }
        pointer_mut(base, "/discriminator/mapping")?["location"] =
            json!("#/components/schemas/LocationParameter");
    }
    schemas.insert(
        "LocationParameter".into(),
        json!({"allOf": [
            {"$ref": "#/components/schemas/ParameterObject"},
            {"type": "object", "required": ["location"], "properties": {
                "type": {"enum": ["location"]},
                "location": {"type": "object", "required": ["latitude", "longitude"], "properties": {
                    "latitude": {"type": ["number", "string"]},
                    "longitude": {"type": ["number", "string"]},
                    "name": {"type": "string"},
                    "address": {"type": "string"},
                }},
            }},
        ]}),
    );
    Ok(())
}

const REF_PREFIX: &str = "#/components/schemas/";

/// Rewrites every base schema with a `discriminator` (and no `oneOf`/`anyOf` of its own) into a
/// dispatching twin, `X__dispatch` = X plus "if the property is v then the mapped schema", and
/// points every reference at the twin, except the mapped schemas' own `allOf` back to X (which
/// would otherwise recurse forever).
fn dispatch_discriminators(schemas: &mut Map<String, Value>) {
    let mut twins: BTreeMap<String, (Value, Vec<String>)> = BTreeMap::new();
    for (name, schema) in schemas.iter() {
        let Some(d) = schema.get("discriminator") else {
            continue;
        };
        if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
            continue;
        }
        let (Some(property), Some(mapping)) = (
            d.get("propertyName").and_then(Value::as_str),
            d.get("mapping").and_then(Value::as_object),
        ) else {
            continue;
        };
        let mut all_of = vec![json!({"$ref": format!("{REF_PREFIX}{name}")})];
        let mut targets = Vec::new();
        for (value, target) in mapping {
            let Some(target) = target.as_str() else {
                continue;
            };
            if let Some(t) = target.strip_prefix(REF_PREFIX) {
                targets.push(t.to_owned());
            }
            all_of.push(json!({
                "if": {"properties": {property: {"const": value}}, "required": [property]},
                "then": {"$ref": target},
            }));
        }
        twins.insert(name.clone(), (json!({ "allOf": all_of }), targets));
    }
    for schema in schemas.values_mut() {
        redirect_refs(schema, &twins);
    }
    for (name, (twin, targets)) in &twins {
        for t in targets {
            if let Some(Value::Array(parts)) = schemas.get_mut(t).and_then(|s| s.get_mut("allOf")) {
                for part in parts {
                    if part.get("$ref").and_then(Value::as_str)
                        == Some(&format!("{REF_PREFIX}{name}__dispatch"))
                    {
                        part["$ref"] = json!(format!("{REF_PREFIX}{name}"));
                    }
                }
            }
        }
        schemas.insert(format!("{name}__dispatch"), twin.clone());
    }
}

fn redirect_refs(v: &mut Value, twins: &BTreeMap<String, (Value, Vec<String>)>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(name) = r.strip_prefix(REF_PREFIX)
                && twins.contains_key(name)
            {
                *r = format!("{REF_PREFIX}{name}__dispatch");
            }
            for (k, child) in o.iter_mut() {
                // Discriminator mappings name the concrete schemas on purpose.
                if k != "discriminator" && k != "$ref" {
                    redirect_refs(child, twins);
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                redirect_refs(child, twins);
            }
        }
        _ => {}
    }
}

/// Every way `body` breaks the document (empty when it conforms).
pub fn validate(kind: RequestKind, body: &Value) -> Result<Vec<Violation>, ContractError> {
    let c = contract()?;
    Ok(match kind {
        RequestKind::TemplateCreate => schema_errors(&c.create, body, ""),
        RequestKind::TemplateEdit => schema_errors(&c.edit, body, ""),
        RequestKind::TemplateSend => send_errors(c, body),
    })
}

fn schema_errors(v: &jsonschema::Validator, instance: &Value, prefix: &str) -> Vec<Violation> {
    v.iter_errors(instance)
        .map(|e| Violation {
            instance_path: format!("{prefix}{}", e.instance_path()),
            schema_path: e.evaluation_path().to_string(),
            message: e.to_string(),
        })
        .collect()
}

/// The envelope of BaseMessageProperties by hand (see the module comment), then the template.
fn send_errors(c: &Contract, body: &Value) -> Vec<Violation> {
    let Some(o) = body.as_object() else {
        return vec![Violation::new("", "the body must be a JSON object")];
    };
    let mut out = Vec::new();
    if o.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        out.push(Violation::new(
            "/messaging_product",
            "messaging_product is required and must be \"whatsapp\"",
        ));
    }
    match o.get("to") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => out.push(Violation::new(
            "/to",
            "to is required and must be a non-empty string",
        )),
    }
    if o.get("type").and_then(Value::as_str) != Some("template") {
        out.push(Violation::new("/type", "type must be \"template\""));
    }
    if let Some(rt) = o.get("recipient_type")
        && !matches!(rt.as_str(), Some("individual" | "group"))
    {
        out.push(Violation::new(
            "/recipient_type",
            format!("{rt} is not one of [\"individual\", \"group\"]"),
        ));
    }
    if let Some(ctx) = o.get("context")
        && ctx.get("message_id").and_then(Value::as_str).is_none()
    {
        out.push(Violation::new(
            "/context/message_id",
            "context.message_id must be a string",
        ));
    }
    // biz_opaque_callback_data is missing from the document but documented by Meta for sends.
    const ENVELOPE: &[&str] = &[
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "template",
        "context",
        "biz_opaque_callback_data",
    ];
    for k in o.keys().filter(|k| !ENVELOPE.contains(&k.as_str())) {
        out.push(Violation::new(
            &format!("/{k}"),
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    match o.get("template") {
        Some(t) => out.extend(schema_errors(&c.send, t, "/template")),
        None => out.push(Violation::new(
            "/template",
            "template is required for type template",
        )),
    }
    out
}

/// The document's own request examples for this kind of body (named as in the document);
/// for sends, only the examples of `type: template`.
pub fn examples(kind: RequestKind) -> Result<Vec<(String, Value)>, ContractError> {
    let c = contract()?;
    let path = match kind {
        RequestKind::TemplateCreate => TEMPLATES_PATH,
        RequestKind::TemplateEdit => TEMPLATE_PATH,
        RequestKind::TemplateSend => SEND_PATH,
    };
    let list = request_body(&c.document, path)
        .and_then(|b| b.get("examples"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, ex)| Some((name.clone(), ex.get("value")?.clone())))
        .filter(|(_, v)| {
            kind != RequestKind::TemplateSend
                || v.get("type").and_then(Value::as_str) == Some("template")
        })
        .collect();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(kind: RequestKind, body: Value) -> Vec<Violation> {
        validate(kind, &body).expect("document loads")
    }

    fn send(template: Value) -> Value {
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
               "template": template})
    }

    #[test]
    fn every_template_example_of_the_document_validates() {
        for kind in [
            RequestKind::TemplateCreate,
            RequestKind::TemplateEdit,
            RequestKind::TemplateSend,
        ] {
            let list = examples(kind).unwrap();
            assert!(!list.is_empty(), "{kind:?} has examples");
            for (name, body) in list {
                let e = errors(kind, body);
                assert!(e.is_empty(), "{kind:?} example {name:?}: {e:?}");
            }
        }
        assert_eq!(examples(RequestKind::TemplateSend).unwrap().len(), 9);
        assert_eq!(examples(RequestKind::TemplateCreate).unwrap().len(), 11);
    }

    #[test]
    fn broken_sends_are_refused_with_the_path() {
        // Uppercase component type: the document says lowercase.
        let e = errors(
            RequestKind::TemplateSend,
            send(json!({"name": "x", "language": {"code": "pt_BR"},
                        "components": [{"type": "BODY", "parameters": []}]})),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].instance_path, "/template/components/0/type");
        assert_eq!(e[0].graph_param(), "template['components'][0]['type']");

        // The discriminator applies: a header parameter must be a known kind with its object.
        let e = errors(
            RequestKind::TemplateSend,
            send(
                json!({"name": "x", "language": {"code": "pt_BR"}, "components": [
                {"type": "header", "parameters": [{"type": "image"}]}]}),
            ),
        );
        assert!(
            e.iter()
                .any(|v| v.instance_path == "/template/components/0/parameters/0"),
            "{e:?}"
        );

        // Media needs exactly one of id and link.
        let e = errors(
            RequestKind::TemplateSend,
            send(
                json!({"name": "x", "language": {"code": "pt_BR"}, "components": [
                {"type": "header", "parameters": [{"type": "document",
                    "document": {"id": "1", "link": "https://x.y/a.pdf"}}]}]}),
            ),
        );
        assert!(!e.is_empty());

        // Buttons need sub_type, index and parameters; index 10 is out of range.
        let e = errors(
            RequestKind::TemplateSend,
            send(
                json!({"name": "x", "language": {"code": "pt_BR"}, "components": [
                {"type": "button", "index": 10, "sub_type": "url",
                 "parameters": [{"type": "text", "text": "abc"}]}]}),
            ),
        );
        assert!(
            e.iter()
                .any(|v| v.instance_path == "/template/components/0/index"),
            "{e:?}"
        );
        let e = errors(
            RequestKind::TemplateSend,
            send(
                json!({"name": "x", "language": {"code": "pt_BR"}, "components": [
                {"type": "button", "index": "0", "sub_type": "url"}]}),
            ),
        );
        assert!(!e.is_empty(), "parameters are required on a button");

        // Body text parameters must be strings; currency needs its three fields.
        let e = errors(
            RequestKind::TemplateSend,
            send(
                json!({"name": "x", "language": {"code": "pt_BR"}, "components": [
                {"type": "body", "parameters": [{"type": "text", "text": 5},
                    {"type": "currency", "currency": {"code": "BRL"}}]}]}),
            ),
        );
        assert!(e.len() >= 2, "{e:?}");

        // Envelope: missing name, unknown top-level key, numeric to.
        let mut body = send(json!({"language": {"code": "pt_BR"}}));
        body["to"] = json!(5511987654321u64);
        body["extra"] = json!(1);
        let e = errors(RequestKind::TemplateSend, body);
        let paths: Vec<&str> = e.iter().map(|v| v.instance_path.as_str()).collect();
        assert!(paths.contains(&"/to"), "{paths:?}");
        assert!(paths.contains(&"/extra"), "{paths:?}");
        assert!(paths.contains(&"/template"), "{paths:?}");
    }

    #[test]
    fn conforming_sends_of_every_kind_pass() {
        let body = send(
            json!({"name": "pedido", "language": {"code": "pt_BR"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.y/a.png"}}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ana", "parameter_name": "first_name"},
                {"type": "date_time", "date_time": {"fallback_value": "amanhã"}}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "abc"}]},
            {"type": "button", "sub_type": "copy_code", "index": 2,
             "parameters": [{"type": "coupon_code", "coupon_code": "OFF10"}]},
            {"type": "button", "sub_type": "quick_reply", "index": 0,
             "parameters": [{"type": "payload", "payload": "FALAR"}]}]}),
        );
        assert_eq!(errors(RequestKind::TemplateSend, body), vec![]);
        let location = send(
            json!({"name": "entrega", "language": {"code": "pt_BR", "policy": "deterministic"},
            "components": [{"type": "header", "parameters": [{"type": "location",
                "location": {"latitude": -23.5, "longitude": -46.6, "name": "Loja"}}]}]}),
        );
        assert_eq!(errors(RequestKind::TemplateSend, location), vec![]);
    }

    #[test]
    fn management_bodies_are_typed() {
        let e = errors(
            RequestKind::TemplateCreate,
            json!({"name": 5, "language": "pt_BR", "category": "UTILITY", "components": {}}),
        );
        let paths: Vec<&str> = e.iter().map(|v| v.instance_path.as_str()).collect();
        assert!(paths.contains(&"/name"), "{paths:?}");
        assert!(paths.contains(&"/components"), "{paths:?}");
        let e = errors(
            RequestKind::TemplateEdit,
            json!({"components": [{"type": "BODY", "text": ["not", "a", "string"]}]}),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].instance_path, "/components/0/text");
    }
}
