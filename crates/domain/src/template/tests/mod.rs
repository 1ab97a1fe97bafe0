//! Template tests: the validation table, Meta's own examples, and the send side
//! (parameters, check_values, render, send_components).

mod model;
mod sending;
mod table;

use super::*;
use serde_json::{Value, json};

pub(super) fn def(v: &Value) -> TemplateDefinition {
    serde_json::from_value(v.clone()).expect("test template parses")
}

pub(super) fn codes(v: &Value) -> Vec<(&'static str, String)> {
    validate(&def(v))
        .into_iter()
        .map(|p| (p.code, p.field))
        .collect()
}

/// A positional UTILITY template with every component.
pub(super) fn base() -> Value {
    json!({
        "name": "order_update", "language": "pt_BR", "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}",
             "example": {"header_text": ["#123"]}},
            {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega hoje.",
             "example": {"body_text": [["Ana", "#123"]]}},
            {"type": "FOOTER", "text": "Responda SAIR para não receber mais"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Falar com atendente"},
                {"type": "URL", "text": "Rastrear", "url": "https://loja.com.br/t/{{1}}",
                 "example": ["https://loja.com.br/t/123"]},
                {"type": "PHONE_NUMBER", "text": "Ligar", "phone_number": "+5511987654321"}
            ]}
        ]
    })
}

pub(super) fn named() -> Value {
    json!({
        "name": "boas_vindas", "language": "pt_BR", "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Oi {{primeiro_nome}}",
             "example": {"header_text_named_params": [{"param_name": "primeiro_nome", "example": "Ana"}]}},
            {"type": "BODY", "text": "Olá {{primeiro_nome}}, use o cupom {{cupom}} na sua próxima compra.",
             "example": {"body_text_named_params": [
                 {"param_name": "primeiro_nome", "example": "Ana"},
                 {"param_name": "cupom", "example": "BEMVINDO10"}]}}
        ]
    })
}

pub(super) fn media() -> Value {
    json!({
        "name": "promo_imagem", "language": "pt_BR", "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2UvanBn:ARY"]}},
            {"type": "BODY", "text": "Olá {{1}}, aproveite a promoção desta semana na loja.",
             "example": {"body_text": [["Ana"]]}},
            {"type": "BUTTONS", "buttons": [
                {"type": "COPY_CODE", "example": "PROMO25"},
                {"type": "URL", "text": "Ver loja", "url": "https://loja.com.br"}
            ]}
        ]
    })
}

pub(super) fn auth() -> Value {
    json!({
        "name": "codigo_acesso", "language": "pt_BR", "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "add_security_recommendation": true},
            {"type": "FOOTER", "code_expiration_minutes": 10},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copiar código"}]}
        ]
    })
}

pub(super) fn set(v: &mut Value, pointer: &str, to: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = to;
}

pub(super) fn components(v: &mut Value) -> &mut Vec<Value> {
    v["components"].as_array_mut().expect("components")
}

pub(super) fn buttons(v: &mut Value) -> &mut Vec<Value> {
    v["components"][3]["buttons"]
        .as_array_mut()
        .expect("buttons")
}

pub(super) fn body(v: &mut Value, text: &str, examples: Value) {
    set(v, "/components/1/text", json!(text));
    set(v, "/components/1/example", json!({"body_text": [examples]}));
}

pub(super) fn base_values() -> Values {
    Values {
        header: [("1".to_string(), "#987".to_string())].into(),
        body: [("1", "Bruno"), ("2", "#987")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        buttons: [(1, "987".to_string())].into(),
        ..Values::default()
    }
}

pub(super) fn check_codes(d: &Value, values: &Values) -> Vec<(&'static str, String)> {
    check_values(&def(d), values)
        .into_iter()
        .map(|p| (p.code, p.field))
        .collect()
}
