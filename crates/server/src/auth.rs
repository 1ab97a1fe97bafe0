//! Who is calling: a browser session (cookie + CSRF header on writes) or an integration's API token
//! (`Authorization: Bearer`). Login, logout and the current user live here too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use store::auth::{Role, User};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::passwords;

pub const SESSION_COOKIE: &str = "atende_session";
const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
pub enum Principal {
    User(User),
    /// Integrations act with an admin's reach.
    ApiToken {
        id: i64,
        name: String,
    },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::User(u) => u.role,
            Principal::ApiToken { .. } => Role::Admin,
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Principal::User(u) => Some(u.id),
            Principal::ApiToken { .. } => None,
        }
    }

    pub fn require(&self, allowed: &[Role]) -> ApiResult<()> {
        if allowed.contains(&self.role()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role does not allow this".into()))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            let (id, name) = app
                .store
                .api_token(&passwords::token_hash(token))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Principal::ApiToken { id, name });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized)?;
        let (user, csrf) = app
            .store
            .session_user(&passwords::token_hash(&token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            if sent != Some(csrf.as_str()) {
                return Err(ApiError::Forbidden(
                    "missing or wrong X-CSRF-Token header".into(),
                ));
            }
        }
        Ok(Principal::User(user))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Counts failed logins per account and per address in a sliding window.
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_ACCOUNT: u32 = 5;
const MAX_FAILURES_PER_ADDRESS: u32 = 20;

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl LoginThrottle {
    fn blocked(&self, key: &str, max: u32) -> bool {
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        map.get(key)
            .is_some_and(|(n, since)| *n >= max && since.elapsed() < THROTTLE_WINDOW)
    }

    fn record_failure(&self, key: String) {
        if let Ok(mut map) = self.failures.lock() {
            let entry = map.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= THROTTLE_WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    fn clear(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let account_key = format!("account:{}", req.email.trim().to_lowercase());
    let address_key = format!("address:{}", peer.ip());
    if app
        .login_throttle
        .blocked(&account_key, MAX_FAILURES_PER_ACCOUNT)
        || app
            .login_throttle
            .blocked(&address_key, MAX_FAILURES_PER_ADDRESS)
    {
        return Err(ApiError::TooManyRequests(
            "too many failed logins; try again in 15 minutes".into(),
        ));
    }
    let user = app.store.user_by_email(&req.email).await?;
    let valid = match &user {
        Some(u) if u.active => {
            passwords::verify_password_async(req.password, u.password_hash.clone()).await
        }
        _ => false,
    };
    let Some(user) = user.filter(|_| valid) else {
        app.login_throttle.record_failure(account_key);
        app.login_throttle.record_failure(address_key);
        tracing::info!("failed login");
        return Err(ApiError::Unauthorized);
    };
    app.login_throttle.clear(&account_key);
    let token = passwords::random_token();
    let csrf = passwords::random_token();
    app.store
        .create_session(
            &passwords::token_hash(&token),
            user.id,
            &csrf,
            store::now_ms() + SESSION_TTL_MS,
        )
        .await?;
    let secure = if app.cookies_secure() { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        SESSION_TTL_MS / 1000
    );
    tracing::info!(user_id = user.id, "login");
    let mut response = Json(json!({ "user": user, "csrf_token": csrf })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}

pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    _who: Principal,
) -> ApiResult<Response> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        app.store
            .delete_session(&passwords::token_hash(&token))
            .await?;
    }
    let mut response = Json(json!({ "ok": true })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("atende_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
    );
    Ok(response)
}

pub async fn me(
    State(app): State<AppState>,
    headers: HeaderMap,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    match who {
        Principal::User(user) => {
            let csrf = match cookie(&headers, SESSION_COOKIE) {
                Some(token) => app
                    .store
                    .session_user(&passwords::token_hash(&token))
                    .await?
                    .map(|(_, csrf)| csrf),
                None => None,
            };
            let mut view = serde_json::to_value(&user).map_err(|e| ApiError::Internal(e.into()))?;
            if let Some(desk) = app.store.desk_user(user.id).await? {
                view["presence"] = desk.presence.into();
                view["pause_reason"] = desk.pause_reason.into();
                view["max_concurrent"] = desk.max_concurrent.into();
                view["load"] = desk.load.into();
                view["queue_ids"] = desk.queue_ids.into();
            }
            Ok(Json(json!({ "user": view, "csrf_token": csrf })))
        }
        Principal::ApiToken { id, name } => {
            Ok(Json(json!({ "api_token": { "id": id, "name": name } })))
        }
    }
}
