//! How templates and Meta's refusals look in the API: the template view (with the pt-BR names of
//! its status and rejection reason, what a send must supply and a preview with the examples), and
//! the mapping of a Graph failure to 422 (Meta refused: its error verbatim) or 502 (Meta failed).

use serde_json::{Value, json};
use store::templates::TemplateRecord;
use whatsapp::errors::GraphError;

use crate::error::ApiError;

/// The pt-BR name of a template status.
pub fn status_pt(status: &str) -> &'static str {
    match status {
        "APPROVED" => "Aprovado",
        "PENDING" => "Em análise",
        "REJECTED" => "Rejeitado",
        "PAUSED" => "Pausado",
        "DISABLED" => "Desativado",
        "IN_APPEAL" => "Em recurso",
        "PENDING_DELETION" => "Exclusão pendente",
        "DELETED" => "Excluído",
        "FLAGGED" => "Sinalizado",
        "REINSTATED" => "Reativado",
        "LIMIT_EXCEEDED" => "Limite excedido",
        "ARCHIVED" => "Arquivado",
        "LOCKED" => "Bloqueado",
        _ => "Outro",
    }
}

/// The pt-BR reading of Meta's rejection reason codes.
pub fn rejection_reason_pt(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "ABUSIVE_CONTENT" => "Conteúdo abusivo ou que viola as políticas do WhatsApp.",
        "INCORRECT_CATEGORY" => "A categoria escolhida não corresponde ao conteúdo.",
        "INVALID_FORMAT" => "O formato do template não é válido.",
        "PROMOTIONAL" => "Conteúdo promocional numa categoria que não é MARKETING.",
        "SCAM" => "A Meta considerou o conteúdo um possível golpe.",
        "TAG_CONTENT_MISMATCH" => "O conteúdo não corresponde à etiqueta do template.",
        _ => return None,
    })
}

/// A template as the API shows it. `components` and `button_actions` as JSON; `parameters` is
/// what a send must supply and `preview` the message with the examples filled in.
pub fn template_view(t: &TemplateRecord) -> Value {
    let components: Value = serde_json::from_str(&t.components).unwrap_or(Value::Null);
    let button_actions: Value = t
        .button_actions
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let (parameters, preview) = match t.definition() {
        Ok(def) => (
            serde_json::to_value(domain::template::parameters(&def)).unwrap_or(Value::Null),
            serde_json::to_value(domain::template::render(&def, &Default::default()))
                .unwrap_or(Value::Null),
        ),
        Err(_) => (Value::Null, Value::Null),
    };
    json!({
        "id": t.id,
        "waba_id": t.waba_id,
        "meta_id": t.meta_id,
        "name": t.name,
        "language": t.language,
        "category": t.category,
        "previous_category": t.previous_category,
        "status": t.status,
        "status_pt": status_pt(&t.status),
        "parameter_format": t.parameter_format,
        "components": components,
        "quality": t.quality,
        "rejected_reason": t.rejected_reason,
        "rejected_reason_pt": t.rejected_reason.as_deref().and_then(rejection_reason_pt),
        "rejection_recommendation": t.rejection_recommendation,
        "button_actions": button_actions,
        "parameters": parameters,
        "preview": preview,
        "created_by": t.created_by,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "synced_at": t.synced_at,
    })
}

/// Meta's error, field by field as it sent them.
pub fn meta_error_json(e: &GraphError) -> Value {
    match e {
        GraphError::Api {
            http_status,
            code,
            subcode,
            message,
            details,
            fbtrace_id,
            user,
        } => json!({
            "http_status": http_status,
            "code": code,
            "subcode": subcode,
            "message": message,
            "details": details,
            "error_user_title": user.as_ref().and_then(|u| u.title.clone()),
            "error_user_msg": user.as_ref().and_then(|u| u.message.clone()),
            "fbtrace_id": fbtrace_id,
        }),
        GraphError::Network(m) => json!({ "network": m }),
        GraphError::Timeout => json!({ "timeout": true }),
        GraphError::Unexpected { http_status, body } => {
            json!({ "http_status": http_status, "body": body })
        }
    }
}

/// A failed Graph call as an API error: Meta's refusal (a Graph error below HTTP 500) is 422
/// `meta_refused`; Meta failing or not answering is 502 `meta_unavailable`. Both carry
/// `meta: {code, subcode, message, error_user_title, error_user_msg, ...}` verbatim, and a pt-BR
/// message that quotes Meta's own words for the user when it sent some.
pub fn meta_api_error(e: &GraphError) -> ApiError {
    let mut message = e.explain_pt_br();
    if let GraphError::Api { user, code, .. } = e {
        message = format!("{message} (erro {code} da Meta)");
        let (title, text) = user
            .as_ref()
            .map(|u| (u.title.as_deref(), u.message.as_deref()))
            .unwrap_or_default();
        match (title, text) {
            (Some(t), Some(m)) => message = format!("{message}: {t} — {m}"),
            (None, Some(m)) | (Some(m), None) => message = format!("{message}: {m}"),
            (None, None) => {}
        }
    }
    let details = json!({ "meta": meta_error_json(e) });
    match e {
        GraphError::Api { http_status, .. } if *http_status < 500 => {
            ApiError::Unprocessable("meta_refused", message, details)
        }
        _ => ApiError::Upstream("meta_unavailable", message, details),
    }
}
