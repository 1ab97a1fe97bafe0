//! The WhatsApp Business Management API: message templates of a WhatsApp Business Account
//! (create, list page by page, get, edit, delete), what the token may do (`/debug_token`), the
//! app's webhook subscription to the WABA (`/{WABA-ID}/subscribed_apps`), the number's quality and
//! messaging limit (`GET /{Phone-Number-ID}?fields=...`) and the Resumable Upload API that
//! produces the handle of a media header's example.
//!
//! Bodies go out as Meta's JSON (the caller builds the template's `components`); answers are
//! decoded leniently, keeping the raw JSON where a screen may want more than the fields named here.
//! Refusals keep Meta's code, subcode, message and `error_user_msg` verbatim ([`GraphError::Api`]).

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, USER_AGENT};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ChannelCreds, GraphClient, USER_AGENT_VALUE, endpoint, not_sent, parse_json, transport_error,
    unexpected,
};
use crate::errors::GraphError;
use crate::lenient;

/// The permission a token needs to manage templates and the WABA.
pub const MANAGEMENT_SCOPE: &str = "whatsapp_business_management";
/// The permission a token needs to send messages.
pub const MESSAGING_SCOPE: &str = "whatsapp_business_messaging";

/// Fields asked for in template lists and gets: everything Atende stores.
pub const TEMPLATE_FIELDS: &str = "id,name,language,status,category,parameter_format,components,quality_score,rejected_reason,previous_category";

/// Fields of `GET /{Phone-Number-ID}` the prerequisites check reads.
pub const PHONE_HEALTH_FIELDS: &str = "quality_rating,messaging_limit_tier,whatsapp_business_manager_messaging_limit,verified_name,display_phone_number";

/// Page size of template lists (Graph's maximum is far higher, but pages this size stay small).
pub const TEMPLATE_PAGE_SIZE: u32 = 100;

/// A full import stops after this many pages rather than loop on a misbehaving cursor.
const MAX_PAGES: usize = 1000;

/// A template as Meta lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaTemplate {
    pub id: String,
    pub name: String,
    pub language: String,
    pub status: String,
    pub category: String,
    /// `POSITIONAL` when Meta leaves it out (its default).
    pub parameter_format: String,
    /// Meta's `components` array as it sent it.
    pub components: Value,
    /// `quality_score.score`: GREEN, YELLOW, RED, UNKNOWN.
    pub quality: Option<String>,
    /// `NONE` is reported as `None`.
    pub rejected_reason: Option<String>,
    pub previous_category: Option<String>,
}

impl MetaTemplate {
    /// Decodes one element of `data` (or a single `GET /{template-id}`); `None` without an id,
    /// a name or a language.
    pub fn from_json(v: &Value) -> Option<MetaTemplate> {
        let text = |k: &str| v.get(k).and_then(lenient::to_string);
        let rejected_reason = text("rejected_reason").filter(|r| r != "NONE" && !r.is_empty());
        Some(MetaTemplate {
            id: text("id")?,
            name: text("name")?,
            language: text("language")?,
            status: text("status").unwrap_or_else(|| "PENDING".into()),
            category: text("category").unwrap_or_default(),
            parameter_format: text("parameter_format").unwrap_or_else(|| "POSITIONAL".into()),
            components: v
                .get("components")
                .filter(|c| c.is_array())
                .cloned()
                .unwrap_or_else(|| Value::Array(Vec::new())),
            quality: v
                .pointer("/quality_score/score")
                .and_then(lenient::to_string),
            rejected_reason,
            previous_category: text("previous_category"),
        })
    }
}

/// One page of `GET /{WABA-ID}/message_templates`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePage {
    pub templates: Vec<MetaTemplate>,
    /// The cursor of the next page, present only when `paging.next` says there is one.
    pub after: Option<String>,
}

/// Meta's answer to a creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTemplate {
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub category: String,
}

/// What `GET /debug_token` says about the channel's own token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub is_valid: bool,
    pub app_id: Option<String>,
    pub scopes: Vec<String>,
    /// `granular_scopes`: the scope and the ids (WABAs) it is granted for, when Meta limits it.
    pub granular_scopes: Vec<(String, Option<Vec<String>>)>,
    /// 0 = never.
    pub expires_at: Option<i64>,
}

impl TokenInfo {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether `scope` covers `target` (a WABA id): granted without a target list, or with the
    /// target in it.
    pub fn scope_covers(&self, scope: &str, target: &str) -> bool {
        if !self.has_scope(scope) {
            return false;
        }
        match self.granular_scopes.iter().find(|(s, _)| s == scope) {
            Some((_, Some(targets))) => targets.iter().any(|t| t == target),
            _ => true,
        }
    }
}

/// An app subscribed to the WABA's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribedApp {
    pub id: String,
    pub name: Option<String>,
    pub override_callback_uri: Option<String>,
}

/// What `GET /{Phone-Number-ID}?fields=...` tells of the number's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneHealth {
    /// GREEN, YELLOW, RED, NA/UNKNOWN.
    pub quality_rating: Option<String>,
    /// `whatsapp_business_manager_messaging_limit` (the portfolio's limit since Oct 2025), else
    /// the deprecated `messaging_limit_tier`: TIER_250, TIER_2K, TIER_10K, TIER_100K,
    /// TIER_UNLIMITED.
    pub messaging_limit_tier: Option<String>,
    pub verified_name: Option<String>,
    pub display_phone_number: Option<String>,
}

/// Unique customers per moving 24 h of a messaging limit tier; `None` for unlimited or unknown.
pub fn tier_limit(tier: &str) -> Option<i64> {
    let t = tier.trim().to_ascii_uppercase();
    let n = t.strip_prefix("TIER_")?;
    if n == "UNLIMITED" {
        return None;
    }
    let (digits, factor) = match n.strip_suffix('K') {
        Some(d) => (d, 1000),
        None => (n, 1),
    };
    digits.parse::<i64>().ok().map(|d| d * factor)
}

/// Which templates of a name to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteScope<'a> {
    /// Every language of the name.
    Name,
    /// One language: its template id.
    Language { template_id: &'a str },
}

impl GraphClient {
    /// `GET {base}/{WABA-ID}/message_templates`, one page of `limit` starting after `after`.
    pub async fn template_page(
        &self,
        c: &ChannelCreds,
        waba_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TemplatePage, GraphError> {
        let mut url = endpoint(&c.base_url, &[waba_id, "message_templates"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fields", TEMPLATE_FIELDS);
            q.append_pair("limit", &limit.to_string());
            if let Some(a) = after {
                q.append_pair("after", a);
            }
        }
        let (status, body) = self.call(c, self.http.get(url), "template_page").await?;
        let json = parse_json(status, &body)?;
        let data = json
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| unexpected(status, &body))?;
        let templates = data.iter().filter_map(MetaTemplate::from_json).collect();
        let has_next = json
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let after = if has_next {
            json.pointer("/paging/cursors/after")
                .and_then(lenient::to_string)
        } else {
            None
        };
        Ok(TemplatePage { templates, after })
    }

    /// Every template of the WABA, following the `after` cursor while Meta says there is a next
    /// page.
    pub async fn all_templates(
        &self,
        c: &ChannelCreds,
        waba_id: &str,
    ) -> Result<Vec<MetaTemplate>, GraphError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .template_page(c, waba_id, after.as_deref(), TEMPLATE_PAGE_SIZE)
                .await?;
            all.extend(page.templates);
            match page.after {
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(all),
            }
        }
        Err(not_sent(format!(
            "template list of {waba_id} has more than {MAX_PAGES} pages"
        )))
    }

    /// `GET {base}/{TEMPLATE_ID}`.
    pub async fn template(
        &self,
        c: &ChannelCreds,
        template_id: &str,
    ) -> Result<MetaTemplate, GraphError> {
        let mut url = endpoint(&c.base_url, &[template_id])?;
        url.query_pairs_mut().append_pair("fields", TEMPLATE_FIELDS);
        let (status, body) = self.call(c, self.http.get(url), "template").await?;
        let json = parse_json(status, &body)?;
        MetaTemplate::from_json(&json).ok_or_else(|| unexpected(status, &body))
    }

    /// `POST {base}/{WABA-ID}/message_templates` with Meta's creation body (name, language,
    /// category, parameter_format, components).
    pub async fn create_template(
        &self,
        c: &ChannelCreds,
        waba_id: &str,
        body: &Value,
    ) -> Result<CreatedTemplate, GraphError> {
        let url = endpoint(&c.base_url, &[waba_id, "message_templates"])?;
        let (status, response) = self
            .call(c, self.http.post(url).json(body), "create_template")
            .await?;
        let json = parse_json(status, &response)?;
        lenient::object_as(&json).ok_or_else(|| unexpected(status, &response))
    }

    /// `POST {base}/{TEMPLATE_ID}` with new `components` and/or `category`.
    pub async fn edit_template(
        &self,
        c: &ChannelCreds,
        template_id: &str,
        body: &Value,
    ) -> Result<(), GraphError> {
        let url = endpoint(&c.base_url, &[template_id])?;
        let (status, response) = self
            .call(c, self.http.post(url).json(body), "edit_template")
            .await?;
        expect_success(status, &response)
    }

    /// `DELETE {base}/{WABA-ID}/message_templates?name=...[&hsm_id=...]`.
    pub async fn delete_template(
        &self,
        c: &ChannelCreds,
        waba_id: &str,
        name: &str,
        scope: DeleteScope<'_>,
    ) -> Result<(), GraphError> {
        let mut url = endpoint(&c.base_url, &[waba_id, "message_templates"])?;
        {
            let mut q = url.query_pairs_mut();
            if let DeleteScope::Language { template_id } = scope {
                q.append_pair("hsm_id", template_id);
            }
            q.append_pair("name", name);
        }
        let (status, response) = self
            .call(c, self.http.delete(url), "delete_template")
            .await?;
        expect_success(status, &response)
    }

    /// `GET {base}/debug_token?input_token=<the channel's token>`.
    pub async fn debug_token(&self, c: &ChannelCreds) -> Result<TokenInfo, GraphError> {
        let mut url = endpoint(&c.base_url, &["debug_token"])?;
        url.query_pairs_mut()
            .append_pair("input_token", &c.access_token);
        let (status, body) = self.call(c, self.http.get(url), "debug_token").await?;
        let json = parse_json(status, &body)?;
        let data = json
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| unexpected(status, &body))?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(lenient::to_string).collect())
                .unwrap_or_default()
        };
        let granular_scopes = data
            .get("granular_scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| {
                        let scope = g.get("scope").and_then(lenient::to_string)?;
                        let targets = g
                            .get("target_ids")
                            .filter(|t| t.is_array())
                            .map(|t| strings(Some(t)));
                        Some((scope, targets))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TokenInfo {
            is_valid: data.get("is_valid").is_some_and(lenient::to_bool),
            app_id: data.get("app_id").and_then(lenient::to_string),
            scopes: strings(data.get("scopes")),
            granular_scopes,
            expires_at: data.get("expires_at").and_then(lenient::to_i64),
        })
    }

    /// `GET {base}/{WABA-ID}?fields=id,name`: whether the WABA answers to this token.
    pub async fn waba(&self, c: &ChannelCreds, waba_id: &str) -> Result<Value, GraphError> {
        let mut url = endpoint(&c.base_url, &[waba_id])?;
        url.query_pairs_mut().append_pair("fields", "id,name");
        let (status, body) = self.call(c, self.http.get(url), "waba").await?;
        parse_json(status, &body)
    }

    /// `GET {base}/{WABA-ID}/subscribed_apps`.
    pub async fn subscribed_apps(
        &self,
        c: &ChannelCreds,
        waba_id: &str,
    ) -> Result<Vec<SubscribedApp>, GraphError> {
        let url = endpoint(&c.base_url, &[waba_id, "subscribed_apps"])?;
        let (status, body) = self.call(c, self.http.get(url), "subscribed_apps").await?;
        let json = parse_json(status, &body)?;
        let data = json
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| unexpected(status, &body))?;
        Ok(data
            .iter()
            .filter_map(|entry| {
                let app = entry.get("whatsapp_business_api_data")?;
                Some(SubscribedApp {
                    id: app.get("id").and_then(lenient::to_string)?,
                    name: app.get("name").and_then(lenient::to_string),
                    override_callback_uri: entry
                        .get("override_callback_uri")
                        .and_then(lenient::to_string),
                })
            })
            .collect())
    }

    /// `POST {base}/{WABA-ID}/subscribed_apps` (no body: the app's own callback URL).
    pub async fn subscribe_app(&self, c: &ChannelCreds, waba_id: &str) -> Result<(), GraphError> {
        let url = endpoint(&c.base_url, &[waba_id, "subscribed_apps"])?;
        let (status, body) = self
            .call(
                c,
                self.http.post(url).json(&serde_json::json!({})),
                "subscribe_app",
            )
            .await?;
        expect_success(status, &body)
    }

    /// `GET {base}/{Phone-Number-ID}?fields=quality_rating,...`.
    pub async fn phone_health(&self, c: &ChannelCreds) -> Result<PhoneHealth, GraphError> {
        let mut url = endpoint(&c.base_url, &[&c.phone_number_id])?;
        url.query_pairs_mut()
            .append_pair("fields", PHONE_HEALTH_FIELDS);
        let (status, body) = self.call(c, self.http.get(url), "phone_health").await?;
        let json = parse_json(status, &body)?;
        if !json.is_object() {
            return Err(unexpected(status, &body));
        }
        let text = |k: &str| json.get(k).and_then(lenient::to_string);
        Ok(PhoneHealth {
            quality_rating: text("quality_rating"),
            messaging_limit_tier: text("whatsapp_business_manager_messaging_limit")
                .or_else(|| text("messaging_limit_tier")),
            verified_name: text("verified_name"),
            display_phone_number: text("display_phone_number"),
        })
    }

    /// The Resumable Upload API: `POST {base}/{app-id}/uploads?file_name&file_length&file_type`
    /// opens a session, `POST {base}/upload:{id}` with `file_offset` sends the bytes (resumed
    /// from where Meta says it got to), and the answer's `h` is the handle for a media
    /// header's `example.header_handle`.
    pub async fn resumable_upload(
        &self,
        c: &ChannelCreds,
        app_id: &str,
        file_name: &str,
        file_type: &str,
        bytes: Bytes,
    ) -> Result<String, GraphError> {
        let mut url = endpoint(&c.base_url, &[app_id, "uploads"])?;
        url.query_pairs_mut()
            .append_pair("file_name", file_name)
            .append_pair("file_length", &bytes.len().to_string())
            .append_pair("file_type", file_type);
        let (status, body) = self.call(c, self.http.post(url), "upload_session").await?;
        let session = parse_json(status, &body)?
            .get("id")
            .and_then(lenient::to_string)
            .ok_or_else(|| unexpected(status, &body))?;
        let mut offset = 0usize;
        // Each round sends what Meta does not have yet; a round that makes no progress ends it.
        for _ in 0..4 {
            let url = endpoint(&c.base_url, &[&session])?;
            let req = self
                .http
                .post(url)
                .header(AUTHORIZATION, format!("OAuth {}", c.access_token))
                .header(USER_AGENT, USER_AGENT_VALUE)
                .header("file_offset", offset.to_string())
                .timeout(self.timeout)
                .body(bytes.slice(offset..));
            let resp = req.send().await.map_err(transport_error)?;
            let status = resp.status().as_u16();
            let success = resp.status().is_success();
            let body = resp.bytes().await.map_err(transport_error)?;
            if !success {
                return Err(GraphError::from_response(status, &body));
            }
            let json = parse_json(status, &body)?;
            if let Some(h) = json.get("h").and_then(lenient::to_string) {
                tracing::debug!(op = "upload", phone_number_id = %c.phone_number_id, bytes = bytes.len(), "resumable upload done");
                return Ok(h);
            }
            let got = json
                .get("file_offset")
                .and_then(lenient::to_u64)
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| unexpected(status, &body))?;
            if got <= offset || got > bytes.len() {
                return Err(unexpected(status, &body));
            }
            offset = got;
        }
        Err(not_sent(format!(
            "upload {session} did not complete (stopped at byte {offset} of {})",
            bytes.len()
        )))
    }
}

/// Management answers `{"success": true}`; `false` is a refusal without an error body.
fn expect_success(status: u16, body: &[u8]) -> Result<(), GraphError> {
    let json = parse_json(status, body)?;
    match json.get("success") {
        Some(v) if lenient::to_bool(v) => Ok(()),
        _ => Err(unexpected(status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiers() {
        assert_eq!(tier_limit("TIER_250"), Some(250));
        assert_eq!(tier_limit("TIER_2K"), Some(2000));
        assert_eq!(tier_limit("tier_100k"), Some(100_000));
        assert_eq!(tier_limit("TIER_UNLIMITED"), None);
        assert_eq!(tier_limit("garbage"), None);
    }

    #[test]
    fn template_from_list_item() {
        let t = MetaTemplate::from_json(&json!({
            "id": 920070352646140u64, "name": "promo", "language": "pt_BR", "status": "APPROVED",
            "category": "MARKETING", "components": [{"type": "BODY", "text": "Oi"}],
            "quality_score": {"score": "GREEN"}, "rejected_reason": "NONE"
        }))
        .unwrap();
        assert_eq!(t.id, "920070352646140");
        assert_eq!(t.parameter_format, "POSITIONAL");
        assert_eq!(t.quality.as_deref(), Some("GREEN"));
        assert_eq!(t.rejected_reason, None);
        assert!(MetaTemplate::from_json(&json!({"name": "x"})).is_none());
    }

    #[test]
    fn granular_scopes_limit_targets() {
        let info = TokenInfo {
            is_valid: true,
            app_id: None,
            scopes: vec![MANAGEMENT_SCOPE.into()],
            granular_scopes: vec![(MANAGEMENT_SCOPE.into(), Some(vec!["111".into()]))],
            expires_at: None,
        };
        assert!(info.scope_covers(MANAGEMENT_SCOPE, "111"));
        assert!(!info.scope_covers(MANAGEMENT_SCOPE, "222"));
        assert!(!info.scope_covers(MESSAGING_SCOPE, "111"));
    }
}
