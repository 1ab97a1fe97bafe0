//! The channels the installation serves, with their credentials decrypted, cached in memory for the
//! webhook path (which must check a signature on every request without touching the database).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use store::Store;
use store::channels::ChannelRecord;
use whatsapp::graph::ChannelCreds;

use crate::secrets::SecretBox;

/// A channel with its secrets in clear; Debug never prints them.
#[derive(Clone)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub graph_base_url: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    pub rate_limit_per_sec: i64,
    pub mark_read: bool,
    pub enabled: bool,
    pub healthy: bool,
    pub is_simulator: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("phone_number_id", &self.phone_number_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub fn creds(&self) -> ChannelCreds {
        ChannelCreds {
            base_url: self.graph_base_url.clone(),
            phone_number_id: self.phone_number_id.clone(),
            access_token: self.access_token.clone(),
        }
    }
}

#[derive(Default)]
struct Snapshot {
    by_phone_number_id: HashMap<String, Arc<Channel>>,
    by_id: HashMap<i64, Arc<Channel>>,
}

/// Cheap to clone; `reload` after every change (and periodically, for other instances' changes).
#[derive(Clone)]
pub struct ChannelRegistry {
    store: Store,
    secrets: SecretBox,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

impl ChannelRegistry {
    pub fn new(store: Store, secrets: SecretBox) -> ChannelRegistry {
        ChannelRegistry {
            store,
            secrets,
            snapshot: Arc::default(),
        }
    }

    pub async fn reload(&self) -> anyhow::Result<()> {
        let records = self.store.channels().await?;
        let mut next = Snapshot::default();
        for record in records {
            match self.decrypt(&record) {
                Ok(channel) => {
                    let channel = Arc::new(channel);
                    next.by_phone_number_id
                        .insert(channel.phone_number_id.clone(), channel.clone());
                    next.by_id.insert(channel.id, channel);
                }
                Err(e) => {
                    tracing::error!(channel_id = record.id, error = %e, "cannot load channel")
                }
            }
        }
        if let Ok(mut guard) = self.snapshot.write() {
            *guard = Arc::new(next);
        }
        Ok(())
    }

    fn decrypt(&self, r: &ChannelRecord) -> Result<Channel, crate::secrets::SecretError> {
        Ok(Channel {
            id: r.id,
            name: r.name.clone(),
            phone_number_id: r.phone_number_id.clone(),
            waba_id: r.waba_id.clone(),
            graph_base_url: r.graph_base_url.clone(),
            access_token: self.secrets.decrypt(&r.access_token_enc)?,
            app_secret: self.secrets.decrypt(&r.app_secret_enc)?,
            verify_token: self.secrets.decrypt(&r.verify_token_enc)?,
            rate_limit_per_sec: r.rate_limit_per_sec,
            mark_read: r.mark_read,
            enabled: r.enabled,
            healthy: r.healthy,
            is_simulator: r.is_simulator,
        })
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn by_phone_number_id(&self, id: &str) -> Option<Arc<Channel>> {
        self.current().by_phone_number_id.get(id).cloned()
    }

    pub fn by_id(&self, id: i64) -> Option<Arc<Channel>> {
        self.current().by_id.get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Channel>> {
        let mut all: Vec<_> = self.current().by_id.values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// The distinct app secrets of all channels: a webhook must be signed with one of them.
    pub fn app_secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .current()
            .by_id
            .values()
            .map(|c| c.app_secret.clone())
            .collect();
        secrets.sort();
        secrets.dedup();
        secrets
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }
}

/// What an operator gives to create a channel (API or CLI), validated before anything is stored.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChannelInput {
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    #[serde(default)]
    pub graph_base_url: Option<String>,
    #[serde(default)]
    pub rate_limit_per_sec: Option<i64>,
    #[serde(default)]
    pub mark_read: Option<bool>,
}

/// Why a channel definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelInputError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("rate_limit_per_sec must be between 1 and 1000 (Meta's maximum throughput)")]
    Rate,
    #[error("graph_base_url must start with http:// or https://")]
    BaseUrl,
    #[error("phone_number_id must contain only digits or letters")]
    PhoneNumberId,
}

pub fn validate_rate(rate: i64) -> Result<i64, ChannelInputError> {
    if (1..=1000).contains(&rate) {
        Ok(rate)
    } else {
        Err(ChannelInputError::Rate)
    }
}

pub fn validate_base_url(url: &str) -> Result<String, ChannelInputError> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err(ChannelInputError::BaseUrl)
    }
}

impl ChannelInput {
    pub fn into_new_channel(
        self,
        secrets: &SecretBox,
        is_simulator: bool,
    ) -> Result<store::channels::NewChannel, ChannelInputError> {
        let required = [
            ("name", &self.name),
            ("phone_number_id", &self.phone_number_id),
            ("waba_id", &self.waba_id),
            ("access_token", &self.access_token),
            ("app_secret", &self.app_secret),
            ("verify_token", &self.verify_token),
        ];
        if let Some((field, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(ChannelInputError::Empty(field));
        }
        if !self
            .phone_number_id
            .trim()
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ChannelInputError::PhoneNumberId);
        }
        let graph_base_url = validate_base_url(
            self.graph_base_url
                .as_deref()
                .unwrap_or(whatsapp::graph::DEFAULT_BASE_URL),
        )?;
        Ok(store::channels::NewChannel {
            name: self.name.trim().to_owned(),
            phone_number_id: self.phone_number_id.trim().to_owned(),
            waba_id: self.waba_id.trim().to_owned(),
            display_phone_number: self.display_phone_number,
            access_token_enc: secrets.encrypt(self.access_token.trim()),
            app_secret_enc: secrets.encrypt(self.app_secret.trim()),
            verify_token_enc: secrets.encrypt(self.verify_token.trim()),
            graph_base_url,
            rate_limit_per_sec: validate_rate(self.rate_limit_per_sec.unwrap_or(80))?,
            mark_read: self.mark_read.unwrap_or(true),
            is_simulator,
        })
    }
}

/// A channel as the API shows it: never a secret.
#[derive(Debug, serde::Serialize)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: Option<String>,
    pub graph_base_url: String,
    pub rate_limit_per_sec: i64,
    pub mark_read: bool,
    pub enabled: bool,
    pub healthy: bool,
    pub health_note: Option<String>,
    pub is_simulator: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ChannelRecord> for ChannelView {
    fn from(r: ChannelRecord) -> Self {
        ChannelView {
            id: r.id,
            name: r.name,
            phone_number_id: r.phone_number_id,
            waba_id: r.waba_id,
            display_phone_number: r.display_phone_number,
            graph_base_url: r.graph_base_url,
            rate_limit_per_sec: r.rate_limit_per_sec,
            mark_read: r.mark_read,
            enabled: r.enabled,
            healthy: r.healthy,
            health_note: r.health_note,
            is_simulator: r.is_simulator,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
