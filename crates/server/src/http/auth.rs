//! Who is calling: a browser session (cookie + CSRF header on writes) or an integration's API token
//! (`Authorization: Bearer`). Login, logout and the current user live here too.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use domain::throttle::{self, Policy, Verdict};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use store::auth::{EndSessions, NewSession, Role, User};

use crate::error::{ApiError, ApiResult};
use crate::passwords;
use crate::state::AppState;

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
            Err(ApiError::Forbidden(
                "Seu perfil não permite esta ação.".into(),
            ))
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
            // Refused when revoked or when its creator is no longer an active admin.
            let live = app
                .store
                .api_token(&passwords::token_hash(token))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            // The last use is informational: failing to record it must not refuse a valid token.
            if let Err(e) = app.store.note_api_token_use(&live).await {
                tracing::warn!(token_id = live.id, error = %e, "cannot record an API token's use");
            }
            return Ok(Principal::ApiToken {
                id: live.id,
                name: live.name,
            });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized)?;
        let (user, csrf) = app
            .store
            .session_user(&passwords::token_hash(&token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if user.must_change_password && !allowed_before_password_change(parts) {
            return Err(ApiError::PasswordChangeRequired);
        }
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            if sent != Some(csrf.as_str()) {
                return Err(ApiError::Forbidden(
                    "Cabeçalho X-CSRF-Token ausente ou incorreto: recarregue a página e tente de novo.".into(),
                ));
            }
        }
        Ok(Principal::User(user))
    }
}

/// While a person must choose a new password, the API answers only what the password dialog
/// needs.
fn allowed_before_password_change(parts: &Parts) -> bool {
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(parts.uri.path(), |u| u.path());
    matches!(
        path,
        "/api/auth/password" | "/api/auth/me" | "/api/auth/logout"
    )
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

/// The client's address: the TCP peer, or, when the peer is one of the configured trusted
/// proxies, the last address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

/// 429 with `Retry-After` (whole seconds, rounded up).
fn too_many_attempts(retry_after_ms: i64) -> Response {
    let secs = (retry_after_ms.max(0) + 999) / 1000;
    let mut response = ApiError::TooManyRequests(format!(
        "too many attempts for this account; try again in {secs} s"
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Checks a password of the account `email` under the login throttle: the attempt is reserved
/// before Argon2 runs (so parallel guesses cannot all be checked), a failure is counted against
/// the client's address and answered late when that address has failed a lot, and an unknown
/// e-mail costs the same time as a wrong password. `Err` is the response to send.
pub async fn check_password(
    app: &AppState,
    client: IpAddr,
    email: &str,
    user: Option<&User>,
    password: String,
) -> Result<(), Response> {
    let account = account_key(email);
    let now = store::now_ms();
    match app
        .store
        .reserve_login_attempt(&account, &Policy::ACCOUNT, now)
        .await
    {
        Ok(Verdict::Proceed) => {}
        Ok(Verdict::Wait { retry_after_ms }) => return Err(too_many_attempts(retry_after_ms)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    }
    let hash = user.filter(|u| u.active).map(|u| u.password_hash.clone());
    if passwords::verify_or_dummy(password, hash).await {
        if let Err(e) = app.store.clear_login_attempts(&account).await {
            return Err(ApiError::from(e).into_response());
        }
        return Ok(());
    }
    let address = format!("address:{client}");
    let failures = app
        .store
        .record_login_failure(&address, &Policy::ADDRESS, now)
        .await
        .unwrap_or(0);
    let delay = throttle::failure_delay_ms(&Policy::ADDRESS, failures);
    tracing::info!(client = %client, address_failures = failures, "failed password check");
    if delay > 0 {
        // Slows a guesser down without ever refusing a correct password from the same address.
        tokio::time::sleep(Duration::from_millis(delay.unsigned_abs())).await;
    }
    Err(ApiError::Unauthorized.into_response())
}

/// A new session for `user_id`, ending `ending` in the same write: its cookie and CSRF token.
pub async fn new_session(
    app: &AppState,
    user_id: i64,
    ending: EndSessions<'_>,
) -> ApiResult<(HeaderValue, String)> {
    let token = passwords::random_token();
    let csrf = passwords::random_token();
    let new = NewSession {
        token_hash: &passwords::token_hash(&token),
        user_id,
        csrf_token: &csrf,
        expires_at: store::now_ms() + SESSION_TTL_MS,
    };
    app.store.start_session(&new, ending).await?;
    Ok((session_cookie(app, &token)?, csrf))
}

pub fn session_cookie(app: &AppState, token: &str) -> ApiResult<HeaderValue> {
    let secure = if app.cookies_secure() { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        SESSION_TTL_MS / 1000
    );
    HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))
}

pub fn session_token_hash(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).map(|t| passwords::token_hash(&t))
}

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let client = client_ip(peer.ip(), &headers, &app.config.trusted_proxies);
    let user = app.store.user_by_email(&req.email).await?;
    if let Err(refused) =
        check_password(&app, client, &req.email, user.as_ref(), req.password).await
    {
        return Ok(refused);
    }
    let Some(user) = user else {
        return Err(ApiError::Unauthorized);
    };
    // Always a new session id: a session planted before login is never promoted.
    let planted = session_token_hash(&headers);
    let ending = planted
        .as_deref()
        .map_or(EndSessions::None, EndSessions::One);
    let (cookie, csrf) = new_session(&app, user.id, ending).await?;
    tracing::info!(user_id = user.id, client = %client, "login");
    let mut response = Json(json!({ "user": user, "csrf_token": csrf })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    who: Principal,
) -> ApiResult<Response> {
    if let Some(hash) = session_token_hash(&headers) {
        // The event tells this session's open sockets to close.
        app.store.delete_session(&hash, who.user_id()).await?;
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

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let headers = forwarded("203.0.113.9, 10.0.0.7");
        // Behind the proxies: the last hop that is not one of them.
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        // A direct client cannot choose its address with the header.
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        // With no proxies configured the peer is always the client.
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
        // A spoofed first hop does not win over the address the proxy saw.
        let spoofed = forwarded("1.2.3.4, 203.0.113.9");
        assert_eq!(
            client_ip(proxy, &spoofed, &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        // Only proxies in the header: the first of them.
        assert_eq!(
            client_ip(proxy, &forwarded("10.0.0.8"), &trusted),
            "10.0.0.8".parse::<IpAddr>().expect("ip")
        );
    }
}
