//! The permission matrix: which role may do what on top of its role (see
//! `domain::permissions`). Only deviations from the defaults matter, but the admin screen writes
//! the whole row of a role, so the table holds an explicit answer for every permission it saw.
//! The admin row is never stored: admins always have everything (nobody can lock themselves out).

use std::collections::BTreeMap;

use domain::permissions::{Permission, ROLES, defaults};

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

impl Store {
    /// The permissions of `role` now: the defaults with the admin's changes applied.
    pub async fn role_permissions(&self, role: &str) -> Result<Vec<Permission>> {
        if role == "admin" {
            return Ok(Permission::ALL.to_vec());
        }
        let rows: Vec<(String, bool)> = on_read!(self, pool => {
            sqlx::query_as("SELECT permission, allowed FROM role_permissions WHERE role = $1")
                .bind(role)
                .fetch_all(pool)
                .await?
        });
        Ok(resolve(role, &rows))
    }

    /// Whether `role` has `permission` now.
    pub async fn role_has_permission(&self, role: &str, permission: Permission) -> Result<bool> {
        if role == "admin" {
            return Ok(true);
        }
        let allowed: Option<bool> = on_read!(self, pool => {
            sqlx::query_scalar("SELECT allowed FROM role_permissions WHERE role = $1 AND permission = $2")
                .bind(role)
                .bind(permission.key())
                .fetch_optional(pool)
                .await?
        });
        Ok(allowed.unwrap_or_else(|| defaults(role).contains(&permission)))
    }

    /// The whole matrix, role → its permissions, for every role (admin included, always all).
    pub async fn permission_matrix(&self) -> Result<BTreeMap<String, Vec<Permission>>> {
        let rows: Vec<(String, String, bool)> = on_read!(self, pool => {
            sqlx::query_as("SELECT role, permission, allowed FROM role_permissions")
                .fetch_all(pool)
                .await?
        });
        let mut matrix = BTreeMap::new();
        for role in ROLES {
            let own: Vec<(String, bool)> = rows
                .iter()
                .filter(|(r, _, _)| r == role)
                .map(|(_, p, a)| (p.clone(), *a))
                .collect();
            matrix.insert(role.to_owned(), resolve(role, &own));
        }
        Ok(matrix)
    }

    /// Replaces the permissions of `role` by exactly `allowed` (one row per known permission).
    /// The admin row cannot be changed: `Conflict`.
    pub async fn set_role_permissions(&self, role: &str, allowed: &[Permission]) -> Result<()> {
        if role == "admin" {
            return Err(StoreError::Conflict(
                "the admin role always has every permission".into(),
            ));
        }
        if !ROLES.contains(&role) {
            return Err(StoreError::NotFound);
        }
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for p in Permission::ALL {
                sqlx::query(
                    "INSERT INTO role_permissions (role, permission, allowed, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (role, permission) DO UPDATE
                        SET allowed = excluded.allowed, updated_at = excluded.updated_at",
                )
                .bind(role)
                .bind(p.key())
                .bind(allowed.contains(&p))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// The defaults of `role` overridden by its stored rows; unknown permission keys are ignored
/// (a newer version may have written them).
fn resolve(role: &str, rows: &[(String, bool)]) -> Vec<Permission> {
    Permission::ALL
        .into_iter()
        .filter(|p| {
            rows.iter()
                .find(|(k, _)| k == p.key())
                .map(|(_, a)| *a)
                .unwrap_or_else(|| defaults(role).contains(p))
        })
        .collect()
}
