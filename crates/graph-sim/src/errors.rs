//! Graph API error envelopes and the WhatsApp error-code catalogue.
//!
//! Consumers are told to branch on `error.code`, so every error the simulator
//! answers carries the code Meta would use; titles and details only need to be
//! plausible.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids;

/// Title Meta uses for a WhatsApp error code (the `title` of webhook errors).
pub fn error_title(code: i64) -> &'static str {
    match code {
        0 => "AuthException",
        4 => "API Too Many Calls",
        10 => "Permission Denied",
        100 => "Invalid parameter",
        190 => "Access token has expired",
        368 => "Temporarily blocked for policies violations",
        80007 => "Rate limit issues",
        130429 => "Rate limit hit",
        130472 => "User's number is part of an experiment",
        131000 => "Something went wrong",
        131005 => "Access denied",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131016 => "Service unavailable",
        131021 => "Recipient cannot be sender",
        131026 => "Message undeliverable",
        131030 => "Recipient phone number not in allowed list",
        131031 => "Account has been locked",
        131042 => "Business eligibility payment issue",
        131047 => "Re-engagement message",
        131048 => "Spam rate limit hit",
        131049 => "This message was not delivered to maintain healthy ecosystem engagement.",
        131050 => "User stopped marketing messages",
        131051 => "Message type unknown",
        131052 => "Media download error",
        131053 => "Media upload error",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        131057 => "Account in maintenance mode",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132005 => "Translated text too long",
        132007 => "Template Format Character Policy Violated",
        132012 => "Parameter format does not match format in the created template",
        132015 => "Template is Paused",
        132016 => "Template is Disabled",
        132018 => "There's an issue with the parameters in your template.",
        _ => "Unknown error",
    }
}

/// Longer explanation for the codes that arrive asynchronously in statuses.
pub(crate) fn error_details(code: i64) -> &'static str {
    match code {
        131026 => "Message Undeliverable.",
        131047 => {
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
        }
        131049 => {
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
        }
        131053 => "Unable to upload the media used in the message.",
        131056 => {
            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."
        }
        130472 => {
            "Failed to send message because this user's phone number is part of an experiment"
        }
        131000 => "Message failed to send due to an unknown error.",
        _ => error_title(code),
    }
}

/// An error answer of the Graph API: HTTP status plus the `{"error":{...}}` body.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    status: StatusCode,
    body: Value,
    oauth_challenge: bool,
}

impl GraphError {
    pub(crate) fn new(http_status: u16, code: i64, kind: &str, message: &str) -> GraphError {
        let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST);
        GraphError {
            status,
            body: json!({"error": {
                "message": message,
                "type": kind,
                "code": code,
                "fbtrace_id": ids::fbtrace_id(),
            }}),
            oauth_challenge: false,
        }
    }

    pub(crate) fn with(mut self, key: &str, value: Value) -> GraphError {
        if let Some(e) = self.body.get_mut("error").and_then(Value::as_object_mut) {
            e.insert(key.to_owned(), value);
        }
        self
    }

    /// WhatsApp-specific errors carry `error_data.details`, the part that
    /// actually says what is wrong.
    fn whatsapp(http_status: u16, code: i64, details: &str) -> GraphError {
        GraphError::new(
            http_status,
            code,
            "OAuthException",
            &format!("(#{code}) {}", error_title(code)),
        )
        .with(
            "error_data",
            json!({"messaging_product": "whatsapp", "details": details}),
        )
    }

    pub(crate) fn invalid_token(missing: bool) -> GraphError {
        let message = if missing {
            "An active access token must be used to query information about the current user."
        } else {
            "Invalid OAuth access token - Cannot parse access token"
        };
        let mut e = GraphError::new(401, 190, "OAuthException", message);
        e.oauth_challenge = true;
        e
    }

    /// `(#100) The parameter x is required.`
    pub(crate) fn param_required(name: &str) -> GraphError {
        GraphError::new(
            400,
            100,
            "OAuthException",
            &format!("(#100) The parameter {name} is required."),
        )
    }

    pub(crate) fn invalid_param(message: &str) -> GraphError {
        GraphError::new(400, 100, "OAuthException", &format!("(#100) {message}"))
    }

    pub(crate) fn required_missing(details: &str) -> GraphError {
        GraphError::whatsapp(400, 131008, details)
    }

    pub(crate) fn invalid_value(details: &str) -> GraphError {
        GraphError::whatsapp(400, 131009, details)
    }

    pub(crate) fn media_upload(details: &str) -> GraphError {
        GraphError::whatsapp(400, 131053, details)
    }

    pub(crate) fn unknown_object(method: &str, id: &str) -> GraphError {
        GraphError::new(
            400,
            100,
            "GraphMethodException",
            &format!(
                "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
        )
        .with("error_subcode", json!(33))
    }

    pub(crate) fn unknown_path(path: &str) -> GraphError {
        GraphError::new(
            400,
            2500,
            "OAuthException",
            &format!("Unknown path components: {path}"),
        )
    }

    /// Template sends that Meta refuses (132000, 132001, 132015, 132016).
    pub(crate) fn template(http_status: u16, code: i64, details: &str) -> GraphError {
        GraphError::whatsapp(http_status, code, details)
    }

    /// Template creation and edit refusals: Meta answers "Invalid parameter" and puts what is
    /// wrong in `error_user_title`/`error_user_msg`, with a subcode where it has one.
    pub(crate) fn template_rule(subcode: Option<i64>, title: &str, user_msg: &str) -> GraphError {
        let e = GraphError::new(400, 100, "OAuthException", "Invalid parameter")
            .with("is_transient", json!(false))
            .with("error_user_title", json!(title))
            .with("error_user_msg", json!(user_msg));
        match subcode {
            Some(s) => e.with("error_subcode", json!(s)),
            None => e,
        }
    }

    /// The token lacks a permission: (#200) for management calls, (#10) for messaging.
    pub(crate) fn missing_permission(scope: &str) -> GraphError {
        if scope == crate::account::MESSAGING {
            return GraphError::new(
                403,
                10,
                "OAuthException",
                "(#10) Application does not have permission for this action",
            );
        }
        GraphError::new(
            403,
            200,
            "OAuthException",
            &format!("(#200) Requires {scope} permission to manage the object"),
        )
    }

    /// A body that does not conform to Meta's OpenAPI document.
    pub(crate) fn schema_violation(
        violations: &[crate::openapi::Violation],
        schema: &str,
    ) -> GraphError {
        let first = violations
            .first()
            .map_or_else(|| "(body)".to_owned(), ToString::to_string);
        let details: Vec<String> = violations.iter().map(ToString::to_string).collect();
        GraphError::new(
            400,
            100,
            "OAuthException",
            &format!("(#100) Param {first} (does not conform to {schema})"),
        )
        .with("error_subcode", json!(crate::openapi::SCHEMA_SUBCODE))
        .with(
            "error_data",
            json!({"messaging_product": "whatsapp", "details": details.join("; ")}),
        )
    }

    pub(crate) fn server_error() -> GraphError {
        GraphError::whatsapp(500, 131000, "Something went wrong").with("is_transient", json!(true))
    }

    pub(crate) fn rate_limited() -> GraphError {
        GraphError::whatsapp(
            429,
            130429,
            "Cloud API message throughput has been reached.",
        )
    }

    /// A fault chosen by a test: the message doubles as the details.
    pub(crate) fn custom(http_status: u16, code: i64, message: &str) -> GraphError {
        if code == 190 {
            let mut e = GraphError::new(http_status, code, "OAuthException", message);
            e.oauth_challenge = true;
            return e;
        }
        GraphError::new(
            http_status,
            code,
            "OAuthException",
            &format!("(#{code}) {message}"),
        )
        .with(
            "error_data",
            json!({"messaging_product": "whatsapp", "details": message}),
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if self.oauth_challenge {
            // Meta sends this on 401s; clients that look at it should find it.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token\"",
                ),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_errors_have_details_and_trace() {
        let e = GraphError::invalid_value("bad to");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body["error"]["code"], 131009);
        assert_eq!(e.body["error"]["error_data"]["details"], "bad to");
        assert_eq!(
            e.body["error"]["message"],
            "(#131009) Parameter value is not valid"
        );
        assert!(e.body["error"]["fbtrace_id"].as_str().unwrap().len() > 10);
    }
}
