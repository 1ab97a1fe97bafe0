//! Properties over generated templates and arbitrary text.

use super::*;
use proptest::prelude::*;
use serde_json::json;

/// A valid positional template: `n` variables, each preceded by 2–4 fixed words,
/// ending with fixed text; a text header with at most one variable; optional footer
/// and buttons.
fn valid_positional() -> impl Strategy<Value = (TemplateDefinition, usize)> {
    let word = "[a-zà-ú]{1,8}";
    (
        1usize..=6,
        proptest::collection::vec(proptest::collection::vec(word, 2..=4), 7),
        proptest::collection::vec("[A-Za-z0-9#]{1,10}", 6),
        any::<bool>(),
        any::<bool>(),
        "[a-z][a-z0-9_]{0,20}",
    )
        .prop_map(|(n, words, examples, header_var, with_buttons, name)| {
            let mut body = String::new();
            for (i, w) in words.iter().take(n).enumerate() {
                body.push_str(&w.join(" "));
                body.push_str(&format!(" {{{{{}}}}}, ", i + 1));
            }
            body.push_str(&words[6].join(" "));
            body.push('.');
            let examples: Vec<String> = examples.into_iter().take(n).collect();
            let mut components = vec![];
            if header_var {
                components.push(json!({"type": "HEADER", "format": "TEXT", "text": "Aviso {{1}}",
                                       "example": {"header_text": ["X"]}}));
            } else {
                components.push(json!({"type": "HEADER", "format": "TEXT", "text": "Aviso"}));
            }
            components.push(json!({"type": "BODY", "text": body, "example": {"body_text": [examples]}}));
            components.push(json!({"type": "FOOTER", "text": "Atende"}));
            if with_buttons {
                components.push(json!({"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Sim"},
                    {"type": "QUICK_REPLY", "text": "Não"},
                    {"type": "URL", "text": "Ver", "url": "https://a.com.br/p/{{1}}", "example": ["https://a.com.br/p/1"]}
                ]}));
            }
            let def: TemplateDefinition = serde_json::from_value(json!({
                "name": name, "language": "pt_BR", "category": "MARKETING", "components": components
            }))
            .expect("generated template parses");
            (def, n)
        })
}

fn any_values() -> impl Strategy<Value = Values> {
    let map = proptest::collection::btree_map("[a-z0-9_]{1,6}", "\\PC{0,20}", 0..5);
    (
        map.clone(),
        map,
        proptest::collection::btree_map(0usize..12, "\\PC{0,20}", 0..4),
    )
        .prop_map(|(header, body, buttons)| Values {
            header,
            body,
            buttons,
            header_media: None,
        })
}

fn arbitrary_template() -> impl Strategy<Value = TemplateDefinition> {
    let text = "(\\PC|\\{\\{[a-z0-9 ]{0,3}\\}\\}){0,40}";
    (text, text, text, any::<bool>(), "\\PC{0,12}").prop_map(|(h, b, url, named, name)| {
        let fmt = if named { "NAMED" } else { "POSITIONAL" };
        serde_json::from_value(json!({
            "name": name, "language": "pt_BR", "category": "UTILITY", "parameter_format": fmt,
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": h, "example": {"header_text": ["x"]}},
                {"type": "BODY", "text": b, "example": {"body_text": [["a", "b"]]}},
                {"type": "FOOTER", "text": h},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "x", "url": url},
                    {"type": "COPY_CODE", "example": ["A"]},
                    {"type": "OTP", "otp_type": "COPY_CODE"}
                ]}
            ]
        }))
        .expect("arbitrary template parses")
    })
}

proptest! {
    #[test]
    fn generated_templates_are_valid_and_count_their_examples((def, n) in valid_positional()) {
        prop_assert_eq!(validate(&def), vec![]);
        let p = parameters(&def);
        let examples = def.body().and_then(|b| b.example.as_ref()).and_then(|e| e.body_text.as_ref())
            .map(|rows| rows[0].len()).unwrap_or(0);
        prop_assert_eq!(p.body.len(), n);
        prop_assert_eq!(p.body.len(), examples);
        // The preview uses every example and leaves no placeholder behind.
        let preview = render(&def, &Values::default());
        prop_assert!(!preview.body.contains("{{"));
        // Values made from the examples pass check_values and yield one parameter each.
        let values = Values {
            header: p.header.iter().map(|k| (k.clone(), "X".to_string())).collect(),
            body: p.body.iter().map(|k| (k.clone(), format!("v{k}"))).collect(),
            buttons: p.buttons.iter().map(|(i, _)| (*i, "1".to_string())).collect(),
            header_media: None,
        };
        prop_assert_eq!(check_values(&def, &values), vec![]);
        let components = send_components(&def, &values);
        let body = components.as_array().unwrap().iter()
            .find(|c| c["type"] == "body").expect("body component");
        prop_assert_eq!(body["parameters"].as_array().unwrap().len(), n);
        prop_assert_eq!(Values::from_components(&def, &components).unwrap(), values);
    }

    #[test]
    fn serde_round_trips((def, _) in valid_positional()) {
        let json = serde_json::to_value(&def).unwrap();
        let back: TemplateDefinition = serde_json::from_value(json.clone()).unwrap();
        prop_assert_eq!(&back, &def);
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }

    #[test]
    fn nothing_panics_on_arbitrary_input(def in arbitrary_template(), values in any_values()) {
        let _ = validate(&def);
        let _ = parameters(&def);
        let _ = check_values(&def, &values);
        let r = render(&def, &values);
        let _ = send_components(&def, &values);
        prop_assert_eq!(r.buttons.len(), 3);
    }

    #[test]
    fn values_are_inserted_verbatim(value in "\\PC{0,30}") {
        let def: TemplateDefinition = serde_json::from_value(json!({
            "name": "t", "language": "pt_BR", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Olá {{1}}, tudo bem {{2}} hoje?"}]
        })).unwrap();
        let values = Values::body([("1", value.as_str()), ("2", "X")]);
        prop_assert_eq!(render(&def, &values).body, format!("Olá {value}, tudo bem X hoje?"));
    }

    #[test]
    fn every_problem_names_a_field(def in arbitrary_template()) {
        for p in validate(&def) {
            prop_assert!(p.field == "name" || p.field == "language" || p.field.starts_with("components"));
        }
    }
}
