//! One valid template per shape and one invalid case per rule, each asserting
//! the exact code and field.

use super::*;
use serde_json::{Value, json};

struct Case {
    label: &'static str,
    template: fn() -> Value,
    mutate: fn(&mut Value),
    /// `None`: no problem at all; else the code and field that must be reported.
    expect: Option<(&'static str, &'static str)>,
}

const fn ok(label: &'static str, template: fn() -> Value, mutate: fn(&mut Value)) -> Case {
    Case {
        label,
        template,
        mutate,
        expect: None,
    }
}

const fn bad(
    label: &'static str,
    template: fn() -> Value,
    mutate: fn(&mut Value),
    code: &'static str,
    field: &'static str,
) -> Case {
    Case {
        label,
        template,
        mutate,
        expect: Some((code, field)),
    }
}

fn same(_: &mut Value) {}

const BODY: &str = "components.body.text";
const BODY_EX: &str = "components.body.example";
const HEADER: &str = "components.header.text";
const FOOTER: &str = "components.footer.text";
const BUTTONS: &str = "components.buttons";

fn buttons_at(v: &mut Value, component: usize) -> &mut Vec<Value> {
    v["components"][component]["buttons"]
        .as_array_mut()
        .expect("buttons")
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Valid templates.
    ok("positional with every component", base, same),
    ok("named variables", named, same),
    ok("image header and copy code", media, same),
    ok("authentication copy code", auth, same),
    ok("authentication one tap", auth, |v| {
        set(v, "/components/2/buttons/0", json!({"type": "OTP", "otp_type": "ONE_TAP",
            "text": "Copiar código", "autofill_text": "Preencher", "package_name": "br.com.loja",
            "signature_hash": "K8a%2FAINcGX7"}));
    }),
    ok("location header", base, |v| set(v, "/components/0", json!({"type": "HEADER", "format": "LOCATION"}))),
    ok("document header", base, |v| {
        set(v, "/components/0", json!({"type": "HEADER", "format": "DOCUMENT",
            "example": {"header_handle": ["4::YXBwbGljYXRpb24vcGRm:ARZ"]}}));
    }),
    ok("no variables, no examples", base, |v| {
        components(v).remove(0);
        set(v, "/components/0", json!({"type": "BODY", "text": "Seu pedido saiu para entrega."}));
        components(v).pop();
    }),
    ok("repeated variable counts once", base, |v| {
        body(v, "Olá {{1}}, seu pedido {{2}} saiu hoje; obrigado pela compra, {{1}}!", json!(["Ana", "#1"]));
    }),
    ok("variables separated by punctuation", base, |v| {
        body(v, "Olá {{1}}, seu código é {{2}}, válido hoje.", json!(["Ana", "12"]));
    }),
    ok("quick replies after other buttons", base, |v| buttons(v).rotate_left(1)),
    ok("ten buttons", base, |v| {
        let b = buttons(v);
        b.clear();
        for i in 0..10 {
            b.push(json!({"type": "QUICK_REPLY", "text": format!("Opção {i}")}));
        }
    }),
    ok("unknown components and buttons are kept, not judged", base, |v| {
        components(v).push(json!({"type": "CAROUSEL", "cards": []}));
        buttons(v).push(json!({"type": "FLOW", "text": "Abrir", "flow_id": "1"}));
    }),
    ok("lowercase component type", base, |v| set(v, "/components/2/type", json!("footer"))),
    // One invalid case per rule.
    bad("name required", base, |v| set(v, "/name", json!("")), "name_required", "name"),
    bad("name syntax", base, |v| set(v, "/name", json!("Order-Update")), "name_invalid", "name"),
    bad("name length", base, |v| set(v, "/name", json!("a".repeat(513))), "name_too_long", "name"),
    bad("language", base, |v| set(v, "/language", json!("pt-BR")), "language_unsupported", "language"),
    bad("duplicate body", base, |v| {
        let b = v["components"][1].clone();
        components(v).push(b);
    }, "component_duplicate", "components.body"),
    bad("body required", base, |v| { components(v).remove(1); }, "body_required", BODY),
    bad("body blank", base, |v| set(v, "/components/1", json!({"type": "BODY", "text": "  "})), "body_required", BODY),
    bad("body length", base, |v| {
        let text = format!("Olá {{{{1}}}}, seu pedido {{{{2}}}} {} fim.", "x ".repeat(520));
        set(v, "/components/1/text", json!(text));
    }, "body_too_long", BODY),
    bad("header text required", base, |v| set(v, "/components/0/text", json!("")), "header_text_required", HEADER),
    bad("header length", base, |v| {
        set(v, "/components/0/text", json!(format!("Pedido {{{{1}}}} {}", "a".repeat(60))));
    }, "header_too_long", HEADER),
    bad("header two variables", base, |v| {
        set(v, "/components/0/text", json!("Pedido {{1}} de {{2}}"));
        set(v, "/components/0/example/header_text", json!(["#1", "Ana"]));
    }, "header_too_many_variables", HEADER),
    bad("media header without handle", base, |v| {
        set(v, "/components/0", json!({"type": "HEADER", "format": "IMAGE"}));
    }, "header_example_required", "components.header.example"),
    bad("footer blank", base, |v| set(v, "/components/2/text", json!("")), "footer_text_required", FOOTER),
    bad("footer length", base, |v| set(v, "/components/2/text", json!("a".repeat(61))), "footer_too_long", FOOTER),
    bad("footer variable", base, |v| set(v, "/components/2/text", json!("Código {{1}}")), "footer_variables", FOOTER),
    bad("variable with spaces", base, |v| {
        body(v, "Olá {{ 1 }}, seu pedido saiu para entrega hoje.", json!(["Ana"]));
    }, "variable_invalid", BODY),
    bad("named variable syntax", named, |v| {
        set(v, "/components/1/text", json!("Olá {{Primeiro_Nome}}, use o cupom {{cupom}} na sua próxima compra."));
    }, "variable_name_invalid", BODY),
    bad("named variable in positional template", base, |v| {
        set(v, "/components/1/text", json!("Olá {{nome}}, seu pedido {{2}} saiu para entrega hoje."));
    }, "variable_format_mismatch", BODY),
    bad("positional variable in named template", named, |v| {
        set(v, "/components/1/text", json!("Olá {{1}}, use o cupom {{cupom}} na sua próxima compra."));
    }, "variable_format_mismatch", BODY),
    bad("mixed variables", base, |v| {
        set(v, "/components/1/text", json!("Olá {{1}}, seu pedido {{pedido}} saiu para entrega hoje."));
    }, "variables_mixed", "components"),
    bad("gap in numbering", base, |v| {
        body(v, "Olá {{1}}, seu pedido {{3}} saiu para entrega hoje.", json!(["Ana", "#1"]));
    }, "variables_not_sequential", BODY),
    bad("numbering not from 1", base, |v| set(v, "/components/0/text", json!("Pedido {{2}}")), "variables_not_sequential", HEADER),
    bad("adjacent variables", base, |v| {
        body(v, "Olá {{1}}{{2}}, seu pedido saiu para entrega hoje.", json!(["Ana", "#1"]));
    }, "variables_adjacent", BODY),
    bad("variables with only a space between", base, |v| {
        body(v, "Olá {{1}} {{2}}, seu pedido saiu para entrega hoje.", json!(["Ana", "#1"]));
    }, "variables_adjacent", BODY),
    bad("variable at start", base, |v| {
        body(v, "{{1}}, seu pedido {{2}} saiu para entrega hoje.", json!(["Ana", "#1"]));
    }, "variable_at_start", BODY),
    bad("variable at end", base, |v| {
        body(v, "Olá {{1}}, seu pedido saiu para entrega hoje: {{2}}", json!(["Ana", "#1"]));
    }, "variable_at_end", BODY),
    bad("too many variables for the length", base, |v| {
        body(v, "Pedido {{1}} para {{2}}, ok.", json!(["#1", "Ana"]));
    }, "too_many_variables", BODY),
    bad("example missing", base, |v| {
        v["components"][1].as_object_mut().expect("body").remove("example");
    }, "example_required", BODY_EX),
    bad("header example missing", base, |v| {
        v["components"][0].as_object_mut().expect("header").remove("example");
    }, "example_required", "components.header.example"),
    bad("example count", base, |v| set(v, "/components/1/example/body_text", json!([["Ana"]])), "example_count_mismatch", BODY_EX),
    bad("named example missing a name", named, |v| {
        set(v, "/components/1/example/body_text_named_params/1/param_name", json!("codigo"));
    }, "example_count_mismatch", BODY_EX),
    bad("example blank", base, |v| set(v, "/components/1/example/body_text", json!([["Ana", " "]])), "example_empty", BODY_EX),
    bad("named examples on positional", base, |v| {
        set(v, "/components/1/example", json!({"body_text_named_params": [
            {"param_name": "1", "example": "Ana"}, {"param_name": "2", "example": "#1"}]}));
    }, "example_format_mismatch", BODY_EX),
    bad("no buttons", base, |v| buttons(v).clear(), "buttons_empty", BUTTONS),
    bad("eleven buttons", base, |v| {
        let b = buttons(v);
        b.clear();
        for i in 0..11 {
            b.push(json!({"type": "QUICK_REPLY", "text": format!("Opção {i}")}));
        }
    }, "buttons_too_many", BUTTONS),
    bad("three URL buttons", base, |v| {
        for i in 0..2 {
            buttons(v).push(json!({"type": "URL", "text": format!("Site {i}"), "url": "https://loja.com.br"}));
        }
    }, "url_buttons_too_many", BUTTONS),
    bad("two phone buttons", base, |v| {
        buttons(v).push(json!({"type": "PHONE_NUMBER", "text": "SAC", "phone_number": "+551133334444"}));
    }, "phone_buttons_too_many", BUTTONS),
    bad("two copy code buttons", media, |v| {
        buttons_at(v, 2).push(json!({"type": "COPY_CODE", "example": "X1"}));
    }, "copy_code_buttons_too_many", BUTTONS),
    bad("quick replies interleaved", base, |v| {
        buttons(v).push(json!({"type": "QUICK_REPLY", "text": "Confirmar"}));
    }, "quick_replies_not_grouped", BUTTONS),
    bad("button text blank", base, |v| set(v, "/components/3/buttons/0/text", json!(" ")), "button_text_required", "components.buttons[0].text"),
    bad("button text length", base, |v| set(v, "/components/3/buttons/0/text", json!("a".repeat(26))), "button_text_too_long", "components.buttons[0].text"),
    bad("button text repeated", base, |v| set(v, "/components/3/buttons/2/text", json!("rastrear")), "button_text_duplicate", "components.buttons[2].text"),
    bad("URL scheme", base, |v| {
        set(v, "/components/3/buttons/1/url", json!("ftp://loja.com.br/t"));
    }, "button_url_invalid", "components.buttons[1].url"),
    bad("URL length", base, |v| {
        set(v, "/components/3/buttons/1/url", json!(format!("https://loja.com.br/{}", "a".repeat(2000))));
    }, "button_url_too_long", "components.buttons[1].url"),
    bad("URL variable in the middle", base, |v| {
        set(v, "/components/3/buttons/1/url", json!("https://loja.com.br/{{1}}/detalhes"));
    }, "button_url_variable_position", "components.buttons[1].url"),
    bad("URL two variables", base, |v| {
        set(v, "/components/3/buttons/1/url", json!("https://loja.com.br/{{1}}/{{2}}"));
    }, "button_url_variable_position", "components.buttons[1].url"),
    bad("URL example missing", base, |v| {
        v["components"][3]["buttons"][1].as_object_mut().expect("url button").remove("example");
    }, "button_url_example_required", "components.buttons[1].example"),
    bad("phone number", base, |v| set(v, "/components/3/buttons/2/phone_number", json!("11-ABC")), "button_phone_invalid", "components.buttons[2].phone_number"),
    bad("copy code without example", media, |v| set(v, "/components/2/buttons/0", json!({"type": "COPY_CODE"})), "button_copy_code_example_required", "components.buttons[0].example"),
    bad("copy code too long", media, |v| set(v, "/components/2/buttons/0/example", json!("A".repeat(16))), "button_copy_code_example_too_long", "components.buttons[0].example"),
    bad("authentication without OTP", auth, |v| { components(v).pop(); }, "auth_otp_button_required", BUTTONS),
    bad("authentication with media header", auth, |v| {
        components(v).insert(0, json!({"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["h"]}}));
    }, "auth_header_not_allowed", "components.header"),
    bad("authentication with a quick reply", auth, |v| {
        buttons_at(v, 2).push(json!({"type": "QUICK_REPLY", "text": "Ajuda"}));
    }, "auth_button_not_allowed", "components.buttons[1].type"),
    bad("OTP outside authentication", base, |v| {
        buttons(v).push(json!({"type": "OTP", "otp_type": "COPY_CODE", "text": "Copiar"}));
    }, "otp_button_not_allowed", "components.buttons[3].type"),
    bad("OTP type", auth, |v| set(v, "/components/2/buttons/0/otp_type", json!("MAGIC")), "otp_type_invalid", "components.buttons[0].otp_type"),
];

/// Every code `validate` can report; each must have a case above.
const ALL_CODES: &[&str] = &[
    "name_required",
    "name_invalid",
    "name_too_long",
    "language_unsupported",
    "component_duplicate",
    "body_required",
    "body_too_long",
    "header_text_required",
    "header_too_long",
    "header_too_many_variables",
    "header_example_required",
    "footer_text_required",
    "footer_too_long",
    "footer_variables",
    "variable_invalid",
    "variable_name_invalid",
    "variable_format_mismatch",
    "variables_mixed",
    "variables_not_sequential",
    "variables_adjacent",
    "variable_at_start",
    "variable_at_end",
    "too_many_variables",
    "example_required",
    "example_count_mismatch",
    "example_empty",
    "example_format_mismatch",
    "buttons_empty",
    "buttons_too_many",
    "url_buttons_too_many",
    "phone_buttons_too_many",
    "copy_code_buttons_too_many",
    "quick_replies_not_grouped",
    "button_text_required",
    "button_text_too_long",
    "button_text_duplicate",
    "button_url_invalid",
    "button_url_too_long",
    "button_url_variable_position",
    "button_url_example_required",
    "button_phone_invalid",
    "button_copy_code_example_required",
    "button_copy_code_example_too_long",
    "auth_otp_button_required",
    "auth_header_not_allowed",
    "auth_button_not_allowed",
    "otp_button_not_allowed",
    "otp_type_invalid",
];

#[test]
fn validation_table() {
    let mut failures = Vec::new();
    for case in CASES {
        let mut v = (case.template)();
        (case.mutate)(&mut v);
        let found = codes(&v);
        match case.expect {
            None if !found.is_empty() => {
                failures.push(format!("{}: expected valid, got {found:?}", case.label))
            }
            Some((code, field)) if !found.iter().any(|(c, f)| *c == code && f == field) => failures
                .push(format!(
                    "{}: expected {code} at {field}, got {found:?}",
                    case.label
                )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_case_and_messages_in_both_languages() {
    for code in ALL_CODES {
        assert!(
            CASES
                .iter()
                .any(|c| c.expect.is_some_and(|(k, _)| k == *code)),
            "no case for {code}"
        );
    }
    for case in CASES {
        let mut v = (case.template)();
        (case.mutate)(&mut v);
        for p in validate(&def(&v)) {
            assert!(
                ALL_CODES.contains(&p.code),
                "{}: undocumented code {}",
                case.label,
                p.code
            );
            assert!(!p.message_pt.is_empty() && !p.message_en.is_empty());
            assert_ne!(p.message_pt, p.message_en, "{}", p.code);
        }
    }
}

#[test]
fn reports_every_problem_not_only_the_first() {
    let mut v = base();
    set(&mut v, "/name", json!("Nome Ruim"));
    set(&mut v, "/components/2/text", json!("a".repeat(61)));
    set(
        &mut v,
        "/components/3/buttons/0/text",
        json!("a".repeat(26)),
    );
    let found: Vec<&str> = codes(&v).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        found,
        vec!["name_invalid", "footer_too_long", "button_text_too_long"]
    );
}
