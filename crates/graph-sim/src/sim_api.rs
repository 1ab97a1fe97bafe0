//! The Rust API of templates, permissions and the account checks, for tests (the control API in
//! `control_templates` mirrors it over JSON).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::PhoneSettings;
use crate::templates::review::{self, TemplateChange};
use crate::templates::{AutoReview, RecordedRequest, Template};
use crate::{GraphSim, SimError, StoredMedia, digits, ids};

/// Why a MARKETING template to a given recipient fails (asynchronously, in a `failed` status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketingFault {
    /// 131049: not delivered to maintain healthy ecosystem engagement (per-user marketing cap).
    EcosystemCap,
    /// 131050: the user stopped marketing messages from the business.
    StoppedMarketing,
}

impl MarketingFault {
    pub fn code(self) -> i64 {
        match self {
            MarketingFault::EcosystemCap => 131049,
            MarketingFault::StoppedMarketing => 131050,
        }
    }
}

type Answer = Result<Option<(u16, String)>, SimError>;

/// A template to put back with [`GraphSim::restore_template`].
#[derive(Debug, Clone)]
pub struct RestoredTemplate {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub components: Value,
    pub parameter_format: String,
}

impl GraphSim {
    /// Templates of every WABA, in creation order.
    pub fn templates(&self) -> Vec<Template> {
        self.shared.lock().templates.clone()
    }

    pub fn template(&self, id: &str) -> Option<Template> {
        self.shared
            .lock()
            .templates
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn template_by_name(&self, waba_id: &str, name: &str, language: &str) -> Option<Template> {
        self.shared
            .lock()
            .templates
            .iter()
            .find(|t| t.waba_id == waba_id && t.name == name && t.language == language)
            .cloned()
    }

    /// Registers a template directly (no HTTP, no checks, no webhook); returns its id.
    /// `components` is Meta's creation array, e.g. `[{"type":"BODY","text":"Olá {{1}}"}]`.
    pub fn add_template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
        category: &str,
        status: &str,
        components: Value,
    ) -> String {
        let id = ids::media_id();
        let t = Template::new(
            id.clone(),
            waba_id,
            name,
            language,
            category,
            status,
            components,
            "POSITIONAL",
        );
        self.shared.update(|s| s.templates.push(t));
        id
    }

    /// Puts back a template the simulator knew before a restart, under the same id (the demo
    /// restores what Atende has stored, since the simulator keeps nothing on disk). A template
    /// with that id already present is replaced.
    pub fn restore_template(&self, t: RestoredTemplate) {
        let restored = Template::new(
            t.id,
            &t.waba_id,
            &t.name,
            &t.language,
            &t.category,
            &t.status,
            t.components,
            &t.parameter_format,
        );
        self.shared.update(|s| {
            s.templates.retain(|known| known.id != restored.id);
            s.templates.push(restored);
        });
    }

    /// Like [`GraphSim::add_template`] for a NAMED template (`{{first_name}}` variables).
    pub fn add_named_template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
        category: &str,
        status: &str,
        components: Value,
    ) -> String {
        let id = self.add_template(waba_id, name, language, category, status, components);
        self.shared.update(|s| {
            if let Some(t) = s.templates.iter_mut().find(|t| t.id == id) {
                t.parameter_format = "NAMED".to_owned();
            }
        });
        id
    }

    /// Changes a template's status (APPROVED, REJECTED, PAUSED, DISABLED, REINSTATED...) and
    /// posts the `message_template_status_update` webhook Meta would send (when a webhook URL
    /// is set). Returns the receiver's answer, if posted.
    pub async fn set_template_status(
        &self,
        template_id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Answer {
        let change = TemplateChange::Status {
            status: status.to_ascii_uppercase(),
            reason: reason.map(str::to_owned),
            recommendation: None,
            description: None,
        };
        self.change_template(template_id, change).await
    }

    /// Any change Meta makes, with its webhook.
    pub async fn change_template(&self, template_id: &str, change: TemplateChange) -> Answer {
        review::change(self, template_id, change).await
    }

    pub async fn approve_template(&self, template_id: &str) -> Answer {
        self.change_template(template_id, TemplateChange::status("APPROVED"))
            .await
    }

    /// REJECTED with `reason` (INVALID_FORMAT, PROMOTIONAL, INCORRECT_CATEGORY...) and Meta's
    /// recommendation in `rejection_info`.
    pub async fn reject_template(
        &self,
        template_id: &str,
        reason: &str,
        recommendation: Option<&str>,
    ) -> Answer {
        let change = TemplateChange::Status {
            status: "REJECTED".to_owned(),
            reason: Some(reason.to_ascii_uppercase()),
            recommendation: recommendation.map(str::to_owned),
            description: None,
        };
        self.change_template(template_id, change).await
    }

    pub async fn pause_template(&self, template_id: &str) -> Answer {
        self.change_template(template_id, TemplateChange::status("PAUSED"))
            .await
    }

    pub async fn disable_template(&self, template_id: &str) -> Answer {
        self.change_template(template_id, TemplateChange::status("DISABLED"))
            .await
    }

    /// Event REINSTATED; the template is APPROVED again.
    pub async fn reinstate_template(&self, template_id: &str) -> Answer {
        self.change_template(template_id, TemplateChange::status("REINSTATED"))
            .await
    }

    /// Quality score (GREEN, YELLOW, RED, UNKNOWN) with `message_template_quality_update`.
    pub async fn set_template_quality(&self, template_id: &str, quality: &str) -> Answer {
        let q = TemplateChange::Quality(quality.to_ascii_uppercase());
        self.change_template(template_id, q).await
    }

    /// Meta re-categorises the template, with `template_category_update`.
    pub async fn set_template_category(&self, template_id: &str, category: &str) -> Answer {
        let c = TemplateChange::Category(category.to_ascii_uppercase());
        self.change_template(template_id, c).await
    }

    /// When on, template sends must name an existing APPROVED template of the sender's WABA in
    /// that language, with the parameters its components need (else Meta's 132xxx errors).
    pub fn set_enforce_templates(&self, on: bool) {
        self.shared.update(|s| s.enforce_templates = on);
    }

    /// Status of templates created or edited over HTTP (default PENDING, as on the real API;
    /// APPROVED skips the review).
    pub fn set_new_template_status(&self, status: &str) {
        let status = status.to_ascii_uppercase();
        self.shared.update(|s| s.new_template_status = status);
    }

    /// Reviews PENDING templates by itself (with their webhook) after the delay; None (the
    /// default) leaves them pending until a test decides.
    pub fn set_template_review(&self, review: Option<AutoReview>) {
        self.shared.update(|s| s.review = review);
    }

    /// Most templates per WABA (default 250); beyond it creation fails with 2388019.
    pub fn set_template_limit(&self, limit: usize) {
        self.shared.update(|s| s.template_limit = limit);
    }

    /// Moves the clock of Meta's time rules forward (edit limits, 30-day name reuse).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.update(|s| s.clock_offset += by);
    }

    /// Unix seconds of the rules' clock.
    pub(crate) fn rule_now(&self) -> u64 {
        (ids::unix_now() + self.shared.lock().clock_offset).as_secs()
    }

    /// Every template-related request body (create, edit, template sends), in arrival order,
    /// with whether it conformed to Meta's OpenAPI document.
    pub fn template_requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().template_requests.clone()
    }

    /// Recording is on by default; a long benchmark can turn it off.
    pub fn set_record_template_requests(&self, on: bool) {
        self.shared.update(|s| s.record_template_requests = on);
    }

    /// Template webhooks built so far (status, quality, category), in order, whether or not a
    /// webhook URL was set.
    pub fn template_webhooks(&self) -> Vec<Value> {
        self.shared.lock().template_webhooks.clone()
    }

    /// Replaces the permissions of an access token (default: whatsapp_business_messaging and
    /// whatsapp_business_management). Calls needing a missing one get (#200) / (#10).
    pub fn set_token_scopes(&self, token: &str, scopes: &[&str]) {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shared
            .update(|s| s.token_scopes.insert(token.to_owned(), scopes));
    }

    /// Permissions of a token; None for a token the simulator does not accept.
    pub fn token_scopes(&self, token: &str) -> Option<Vec<String>> {
        self.shared.lock().token_scopes.get(token).cloned()
    }

    /// Whether the app is subscribed to the WABA's webhooks (default yes; also changed by
    /// POST/DELETE /{WABA-ID}/subscribed_apps).
    pub fn set_subscribed(&self, waba_id: &str, subscribed: bool) {
        self.shared.update(|s| {
            let entry = s.subscriptions.entry(waba_id.to_owned()).or_default();
            entry.subscribed = subscribed;
        });
    }

    pub fn is_subscribed(&self, waba_id: &str) -> bool {
        self.subscription(waba_id).subscribed
    }

    /// The number's messaging limit tier (TIER_250, TIER_2K, TIER_10K, TIER_100K,
    /// TIER_UNLIMITED), reported as `whatsapp_business_manager_messaging_limit` and
    /// `messaging_limit_tier`.
    pub fn set_messaging_limit_tier(&self, phone_number_id: &str, tier: &str) {
        self.set_phone_settings(
            phone_number_id,
            PhoneSettings {
                messaging_limit_tier: Some(tier.to_owned()),
                ..PhoneSettings::default()
            },
        );
    }

    /// The number's quality rating (GREEN, YELLOW, RED, NA).
    pub fn set_quality_rating(&self, phone_number_id: &str, rating: &str) {
        self.set_phone_settings(
            phone_number_id,
            PhoneSettings {
                quality_rating: Some(rating.to_owned()),
                ..PhoneSettings::default()
            },
        );
    }

    /// Overrides what GET /{Phone-Number-ID} reports (only the fields set).
    pub fn set_phone_settings(&self, phone_number_id: &str, settings: PhoneSettings) {
        self.shared.update(|s| {
            s.phone_settings
                .entry(phone_number_id.to_owned())
                .or_default()
                .merge(settings);
        });
    }

    /// MARKETING templates to this recipient are accepted and then fail with the fault's code
    /// (131049 or 131050) in a `failed` status; None clears it. Matched on the digits of `to`.
    pub fn set_marketing_fault(&self, to: &str, fault: Option<MarketingFault>) {
        let key = digits(to);
        self.shared.update(|s| match fault {
            Some(f) => {
                s.marketing_faults.insert(key, f.code());
            }
            None => {
                s.marketing_faults.remove(&key);
            }
        });
    }

    /// While on, every send of the number is accepted and then fails with 131048 (spam rate
    /// limit hit), as when Meta restricts a number for quality.
    pub fn set_spam_rate_limited(&self, phone_number_id: &str, on: bool) {
        self.shared.update(|s| {
            if on {
                s.spam_limited.insert(phone_number_id.to_owned());
            } else {
                s.spam_limited.remove(phone_number_id);
            }
        });
    }

    /// The file behind a Resumable Upload API handle.
    pub fn upload_handle(&self, handle: &str) -> Option<StoredMedia> {
        crate::uploads::resolve_handle(self, handle)
    }

    /// The Meta app id (`POST /{app-id}/uploads`).
    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }
}
