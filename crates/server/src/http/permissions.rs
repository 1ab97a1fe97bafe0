//! The permission matrix on top of the roles: `GET/PUT /api/permissions` (admins: the matrix
//! screen) and `GET /api/me/permissions` (anyone signed in: what the app should offer them).
//! The admin row is fixed to every permission, so nobody can lock the installation out.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use domain::permissions::{Permission, ROLES, defaults};
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;

fn keys(list: &[Permission]) -> Vec<&'static str> {
    list.iter().map(|p| p.key()).collect()
}

async fn matrix_view(app: &AppState) -> ApiResult<Value> {
    let matrix = app.store.permission_matrix().await?;
    let roles: BTreeMap<&String, Vec<&str>> = matrix
        .iter()
        .map(|(role, list)| (role, keys(list)))
        .collect();
    let defaults: BTreeMap<&str, Vec<&str>> = ROLES
        .iter()
        .map(|role| (*role, keys(defaults(role))))
        .collect();
    let all: Vec<Value> = Permission::ALL
        .iter()
        .map(|p| json!({ "key": p.key(), "label_pt": p.label_pt(), "label_en": p.label_en() }))
        .collect();
    Ok(json!({
        "roles": roles,
        "defaults": defaults,
        "all": all,
        "fixed_roles": ["admin"],
    }))
}

/// `GET /api/permissions` (admin): `{roles: {admin: [...], supervisor: [...], agent: [...]},
/// defaults: {...}, all: [{key, label_pt, label_en}], fixed_roles: ["admin"]}`.
pub async fn get_matrix(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(&[Role::Admin])?;
    Ok(Json(matrix_view(&app).await?))
}

#[derive(Deserialize)]
pub struct MatrixInput {
    roles: BTreeMap<String, Vec<String>>,
}

/// `PUT /api/permissions` (admin) `{roles: {supervisor: ["run_broadcasts", ...], agent: [...]}}`:
/// each role given gets exactly these permissions; roles left out keep theirs. The admin row
/// cannot be reduced (422). Answers the matrix as the GET does.
pub async fn put_matrix(
    State(app): State<AppState>,
    who: Principal,
    Json(input): Json<MatrixInput>,
) -> ApiResult<Json<Value>> {
    who.require(&[Role::Admin])?;
    let mut changes: Vec<(&str, Vec<Permission>)> = Vec::new();
    for (role, list) in &input.roles {
        let Some(role) = ROLES.iter().copied().find(|r| r == role) else {
            return Err(ApiError::Unprocessable(
                "unknown_role",
                format!("Perfil desconhecido: «{role}» (use admin, supervisor ou agent)."),
                json!({ "role": role }),
            ));
        };
        let mut perms = Vec::new();
        for key in list {
            let Some(p) = Permission::from_key(key) else {
                return Err(ApiError::Unprocessable(
                    "unknown_permission",
                    format!("Permissão desconhecida: «{key}»."),
                    json!({ "permission": key }),
                ));
            };
            if !perms.contains(&p) {
                perms.push(p);
            }
        }
        if role == "admin" {
            if perms.len() != Permission::ALL.len() {
                return Err(ApiError::Unprocessable(
                    "admin_fixed",
                    "O perfil Administrador sempre tem todas as permissões; ele não pode ser alterado."
                        .into(),
                    json!({ "role": "admin" }),
                ));
            }
            continue;
        }
        changes.push((role, perms));
    }
    for (role, perms) in &changes {
        app.store.set_role_permissions(role, perms).await?;
        tracing::info!(role, permissions = ?keys(perms), by_user = ?who.user_id(), "role permissions changed");
    }
    Ok(Json(matrix_view(&app).await?))
}

/// `GET /api/me/permissions` (anyone signed in; API tokens act as admin): `{role,
/// permissions: [...]}`.
pub async fn mine(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    let role = who.role().as_str();
    let list = app.store.role_permissions(role).await?;
    Ok(Json(json!({ "role": role, "permissions": keys(&list) })))
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/permissions", get(get_matrix).put(put_matrix))
        .route("/me/permissions", get(mine))
}
