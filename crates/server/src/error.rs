//! One error type for HTTP handlers, mapped to a JSON body `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("choose a new password first (POST /api/auth/password)")]
    PasswordChangeRequired,
    #[error("{1}")]
    Unsupported(&'static str, String),
    /// 422: understood but not acceptable yet; the object's fields are added to the error body.
    #[error("{1}")]
    Unprocessable(&'static str, String, serde_json::Value),
    /// 502: a service Atende depends on (Meta) failed or did not answer; details as for 422.
    #[error("{1}")]
    Upstream(&'static str, String, serde_json::Value),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest("bad_request", message.into())
    }

    /// 422 with every problem: `{"problems":[{"field","code","message","message_en"}]}`
    /// (message in pt-BR); the error's own message is the first problem's.
    pub fn problems(code: &'static str, problems: &[domain::template::Problem]) -> ApiError {
        let list: Vec<Value> = problems
            .iter()
            .map(|p| {
                json!({
                    "field": p.field,
                    "code": p.code,
                    "message": p.message_pt,
                    "message_en": p.message_en,
                })
            })
            .collect();
        let message = problems.first().map_or_else(
            || "Os dados enviados não são válidos.".to_owned(),
            |p| p.message_pt.clone(),
        );
        ApiError::Unprocessable(code, message, json!({ "problems": list }))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, code),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
            ApiError::Unsupported(code, _) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, code),
            ApiError::Unprocessable(code, _, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Upstream(code, _, _) => (StatusCode::BAD_GATEWAY, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::NotFound => ApiError::NotFound,
            store::StoreError::Conflict(message) => ApiError::Conflict("conflict", message),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let (
            ApiError::Unprocessable(_, _, Value::Object(details))
            | ApiError::Upstream(_, _, Value::Object(details)),
            Some(error),
        ) = (&self, error.as_object_mut())
        {
            error.extend(details.clone());
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
