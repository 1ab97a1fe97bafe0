//! Permissions on top of the three roles: what an admin can grant or take from supervisors and
//! agents, and what each role may do out of the box. The matrix itself is stored (see
//! `store::permissions`); this module only names the permissions and their defaults.

use serde::{Deserialize, Serialize};

/// One thing a role may be allowed to do with active messaging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Create, edit, delete and sync templates; set their button actions.
    ManageTemplates,
    /// Send an approved template to one customer.
    SendTemplate,
    /// Create, start, pause and cancel broadcasts.
    RunBroadcasts,
    /// Schedule messages for later.
    ScheduleMessages,
}

/// The roles of Atende, in the order the matrix shows them.
pub const ROLES: [&str; 3] = ["admin", "supervisor", "agent"];

impl Permission {
    /// Every permission, in the order screens list them.
    pub const ALL: [Permission; 4] = [
        Permission::ManageTemplates,
        Permission::SendTemplate,
        Permission::RunBroadcasts,
        Permission::ScheduleMessages,
    ];

    /// The stable key, as stored and as in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Permission::ManageTemplates => "manage_templates",
            Permission::SendTemplate => "send_template",
            Permission::RunBroadcasts => "run_broadcasts",
            Permission::ScheduleMessages => "schedule_messages",
        }
    }

    pub fn from_key(key: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The name shown to people (pt-BR).
    pub fn label_pt(self) -> &'static str {
        match self {
            Permission::ManageTemplates => "Gerenciar templates",
            Permission::SendTemplate => "Enviar templates",
            Permission::RunBroadcasts => "Executar disparos",
            Permission::ScheduleMessages => "Agendar mensagens",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Permission::ManageTemplates => "Manage templates",
            Permission::SendTemplate => "Send templates",
            Permission::RunBroadcasts => "Run broadcasts",
            Permission::ScheduleMessages => "Schedule messages",
        }
    }

    /// The sentence of a refusal (pt-BR).
    pub fn denied_pt(self) -> String {
        format!("Seu perfil não tem a permissão «{}».", self.label_pt())
    }
}

/// What a role may do when the admin changed nothing. Admins have everything; supervisors run
/// broadcasts and schedules for their queues and send templates; agents send templates to the
/// customers of their queues. An unknown role has nothing.
pub fn defaults(role: &str) -> &'static [Permission] {
    match role {
        "admin" => &Permission::ALL,
        "supervisor" => &[
            Permission::SendTemplate,
            Permission::RunBroadcasts,
            Permission::ScheduleMessages,
        ],
        "agent" => &[Permission::SendTemplate],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_serde() {
        for p in Permission::ALL {
            assert_eq!(Permission::from_key(p.key()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.key()));
        }
        assert_eq!(Permission::from_key("fly"), None);
    }

    #[test]
    fn defaults_follow_the_issue() {
        assert_eq!(defaults("admin").len(), Permission::ALL.len());
        assert!(!defaults("supervisor").contains(&Permission::ManageTemplates));
        assert!(defaults("supervisor").contains(&Permission::RunBroadcasts));
        assert_eq!(defaults("agent"), &[Permission::SendTemplate]);
        assert!(defaults("guest").is_empty());
    }

    #[test]
    fn refusal_names_the_permission() {
        assert_eq!(
            Permission::SendTemplate.denied_pt(),
            "Seu perfil não tem a permissão «Enviar templates»."
        );
    }
}
