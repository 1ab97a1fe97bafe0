//! The two ways a caller gives a template's values: Atende's variables form and Meta's own
//! send-side `components` array. Both become `domain::template::Values`, which is what the local
//! check, the rendering and the stored message use.

use std::collections::BTreeMap;

use domain::template::{LocationValue, MediaValue, TemplateDefinition, Values};
use serde_json::Value;

/// The variables form: `{"1": "Ana", "2": "10/05"}` (body variables, by name or number), or
/// `{"header": {"1": "..."}, "body": {...}, "buttons": {"0": "abc"}, "header_media": {"link": "..."}}`.
pub fn from_variables(v: &Value) -> Result<Values, String> {
    let Some(obj) = v.as_object() else {
        return Err("variables must be an object".into());
    };
    let structured = ["header", "body", "buttons", "header_media"]
        .iter()
        .any(|k| obj.get(*k).is_some_and(Value::is_object));
    if !structured {
        return Ok(Values {
            body: string_map(obj)?,
            ..Values::default()
        });
    }
    let section = |key: &str| -> Result<BTreeMap<String, String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => string_map(m),
            Some(_) => Err(format!("variables.{key} must be an object")),
        }
    };
    let mut buttons = BTreeMap::new();
    for (index, value) in section("buttons")? {
        let index: usize = index
            .parse()
            .map_err(|_| format!("variables.buttons: {index:?} is not a button index"))?;
        buttons.insert(index, value);
    }
    let header_media = match obj.get("header_media") {
        None | Some(Value::Null) => None,
        Some(m) => Some(
            serde_json::from_value::<MediaValue>(m.clone())
                .map_err(|e| format!("variables.header_media: {e}"))?,
        ),
    };
    Ok(Values {
        header: section("header")?,
        header_media,
        body: section("body")?,
        buttons,
    })
}

fn string_map(m: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(format!("variable {k:?} must be a text")),
        })
        .collect()
}

/// Meta's form: `[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}, {"type":"button",
/// "sub_type":"url","index":"0","parameters":[{"type":"text","text":"abc"}]}, ...]`. Positional
/// parameters are named by the template's own variables, in order.
pub fn from_components(def: &TemplateDefinition, components: &Value) -> Result<Values, String> {
    let Some(items) = components.as_array() else {
        return Err("components must be an array".into());
    };
    let names = domain::template::parameters(def);
    let mut values = Values::default();
    for item in items {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let params = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match kind.as_str() {
            "header" => {
                for (i, p) in params.iter().enumerate() {
                    if let Some(media) = media_value(p) {
                        values.header_media = Some(media);
                    } else if let Some(text) = text_value(p) {
                        let name = param_name(p, names.header.get(i), i);
                        values.header.insert(name, text);
                    }
                }
            }
            "body" => {
                for (i, p) in params.iter().enumerate() {
                    let text = text_value(p).ok_or_else(|| {
                        format!("components: body parameter {} has no text", i + 1)
                    })?;
                    let name = param_name(p, names.body.get(i), i);
                    values.body.insert(name, text);
                }
            }
            "button" => {
                let sub_type = item
                    .get("sub_type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if sub_type == "quick_reply" {
                    // A payload is not a variable: Meta echoes it back when the button is tapped.
                    continue;
                }
                let index = item
                    .get("index")
                    .and_then(|i| match i {
                        Value::String(s) => s.parse::<usize>().ok(),
                        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
                        _ => None,
                    })
                    .ok_or_else(|| "components: a button needs its index".to_owned())?;
                if let Some(value) = params.first().and_then(|p| {
                    text_value(p).or_else(|| {
                        p.get("coupon_code")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                }) {
                    values.buttons.insert(index, value);
                }
            }
            other => return Err(format!("components: unknown component type {other:?}")),
        }
    }
    Ok(values)
}

fn param_name(p: &Value, known: Option<&String>, i: usize) -> String {
    p.get("parameter_name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| known.cloned())
        .unwrap_or_else(|| (i + 1).to_string())
}

fn text_value(p: &Value) -> Option<String> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("text");
    match kind {
        "text" => p.get("text").and_then(Value::as_str).map(str::to_owned),
        "currency" | "date_time" => p
            .get(kind)
            .and_then(|c| c.get("fallback_value"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn media_value(p: &Value) -> Option<MediaValue> {
    let kind = p.get("type").and_then(Value::as_str)?;
    match kind {
        "image" | "video" | "document" => {
            let media = p.get(kind)?;
            if let Some(link) = media.get("link").and_then(Value::as_str) {
                Some(MediaValue::Link(link.to_owned()))
            } else {
                media
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|id| MediaValue::Id(id.to_owned()))
            }
        }
        "location" => serde_json::from_value::<LocationValue>(p.get("location")?.clone())
            .ok()
            .map(MediaValue::Location),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_variables_are_body_variables() {
        let v = from_variables(&json!({"1": "Ana", "2": 3})).expect("values");
        assert_eq!(v.body.get("1").map(String::as_str), Some("Ana"));
        assert_eq!(v.body.get("2").map(String::as_str), Some("3"));
        assert!(v.header.is_empty());
    }

    #[test]
    fn structured_variables() {
        let v = from_variables(&json!({
            "header": {"1": "Pedido"}, "body": {"nome": "Ana"}, "buttons": {"0": "abc"},
            "header_media": {"link": "https://x/y.png"}
        }))
        .expect("values");
        assert_eq!(v.header["1"], "Pedido");
        assert_eq!(v.body["nome"], "Ana");
        assert_eq!(v.buttons[&0], "abc");
        assert_eq!(
            v.header_media,
            Some(MediaValue::Link("https://x/y.png".into()))
        );
        assert!(from_variables(&json!({"buttons": {"x": "1"}, "body": {}})).is_err());
        assert!(from_variables(&json!(["a"])).is_err());
    }

    #[test]
    fn meta_components() {
        let def: TemplateDefinition = serde_json::from_value(json!({
            "name": "t", "language": "pt_BR", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Oi {{1}}, {{2}}"}]
        }))
        .expect("definition");
        let v = from_components(
            &def,
            &json!([
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                    {"type": "currency", "currency": {"fallback_value": "R$ 10", "code": "BRL", "amount_1000": 10000}}]},
                {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "x9"}]},
                {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [{"type": "payload", "payload": "OK"}]}
            ]),
        )
        .expect("values");
        assert_eq!(v.body["1"], "Ana");
        assert_eq!(v.body["2"], "R$ 10");
        assert_eq!(v.buttons[&1], "x9");
        assert_eq!(v.buttons.len(), 1);
        assert_eq!(v.header_media, Some(MediaValue::Link("https://x".into())));
        assert!(from_components(&def, &json!([{"type": "footer"}])).is_err());
        assert!(from_components(&def, &json!({"type": "body"})).is_err());
    }
}
