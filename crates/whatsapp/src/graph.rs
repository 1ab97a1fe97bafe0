//! The Graph API HTTP client: sending, marking as read, and media.
//!
//! Every call gets the channel's credentials explicitly, so one client (one connection
//! pool) serves every phone number of every tenant.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::USER_AGENT;
use reqwest::multipart::{Form, Part};
use reqwest::{Body, RequestBuilder, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::{GraphError, body_excerpt};
use crate::lenient;
use crate::send::OutboundMessage;

pub mod management;

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com/v23.0";

const USER_AGENT_VALUE: &str = concat!("atende/", env!("CARGO_PKG_VERSION"));

/// Meta caps every media file at 100 MB; anything bigger is not media we asked for.
pub const MAX_DOWNLOAD_BYTES: usize = 100 * 1024 * 1024;

/// JSON answers are small; the cap only protects memory from a misbehaving endpoint.
const MAX_API_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// What a call needs to know about one channel (phone number).
#[derive(Clone)]
pub struct ChannelCreds {
    /// e.g. `"https://graph.facebook.com/v23.0"`, without a trailing slash.
    pub base_url: String,
    pub phone_number_id: String,
    pub access_token: String,
}

impl ChannelCreds {
    /// Credentials against Meta's production Graph API ([`DEFAULT_BASE_URL`]).
    pub fn new(phone_number_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        ChannelCreds {
            base_url: DEFAULT_BASE_URL.to_owned(),
            phone_number_id: phone_number_id.into(),
            access_token: access_token.into(),
        }
    }
}

impl fmt::Debug for ChannelCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelCreds")
            .field("base_url", &self.base_url)
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// Meta's answer to an accepted send. Acceptance is not delivery: that arrives as
/// status webhooks keyed by `wamid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    pub wamid: String,
    /// The recipient as WhatsApp normalised it (may differ from `to`, e.g. Brazil's 9th digit).
    pub wa_id: Option<String>,
    /// For templates: `accepted`, `held_for_quality_assessment`, `paused`.
    pub message_status: Option<String>,
}

/// `GET /{media-id}`: where to download a media file. The URL expires after 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    #[serde(deserialize_with = "lenient::required_string")]
    pub url: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mime_type: Option<String>,
    /// Hex here, unlike the base64 in webhooks.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl GraphClient {
    /// A client whose every call (connect to last body byte) must finish within `timeout`.
    ///
    /// Panics only where `reqwest::Client::new` does: when no TLS backend can be set up.
    pub fn new(timeout: Duration) -> Self {
        Self::with_http_client(reqwest::Client::new(), timeout)
    }

    /// Reuses an existing `reqwest::Client` (its pool, proxy and TLS settings).
    pub fn with_http_client(http: reqwest::Client, timeout: Duration) -> Self {
        GraphClient { http, timeout }
    }

    /// `POST {base}/{phone-number-id}/messages`.
    pub async fn send_message(
        &self,
        c: &ChannelCreds,
        msg: &OutboundMessage,
    ) -> Result<SendResponse, GraphError> {
        let url = endpoint(&c.base_url, &[&c.phone_number_id, "messages"])?;
        let req = self.http.post(url).json(&msg.to_json());
        let (status, body) = self.call(c, req, "send_message").await?;
        let json = parse_json(status, &body)?;
        let wamid = json
            .pointer("/messages/0/id")
            .and_then(lenient::to_string)
            .ok_or_else(|| unexpected(status, &body))?;
        Ok(SendResponse {
            wamid,
            wa_id: json
                .pointer("/contacts/0/wa_id")
                .and_then(lenient::to_string),
            message_status: json
                .pointer("/messages/0/message_status")
                .and_then(lenient::to_string),
        })
    }

    /// Marks an inbound message (and the ones before it) as read: the user sees blue ticks.
    pub async fn mark_read(&self, c: &ChannelCreds, wamid: &str) -> Result<(), GraphError> {
        self.read_receipt(
            c,
            json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid }),
        )
        .await
    }

    /// [`GraphClient::mark_read`] plus a typing indicator, shown until we reply or 25 s pass.
    pub async fn mark_read_with_typing(
        &self,
        c: &ChannelCreds,
        wamid: &str,
    ) -> Result<(), GraphError> {
        self.read_receipt(
            c,
            json!({
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": wamid,
                "typing_indicator": { "type": "text" },
            }),
        )
        .await
    }

    async fn read_receipt(&self, c: &ChannelCreds, body: Value) -> Result<(), GraphError> {
        let url = endpoint(&c.base_url, &[&c.phone_number_id, "messages"])?;
        let (status, response) = self
            .call(c, self.http.post(url).json(&body), "mark_read")
            .await?;
        let json = parse_json(status, &response)?;
        match json.get("success") {
            Some(Value::Bool(false)) => Err(unexpected(status, &response)),
            _ => Ok(()),
        }
    }

    /// `POST {base}/{phone-number-id}/media` as multipart (`file`, `type`,
    /// `messaging_product`); returns the media id, valid for 30 days.
    pub async fn upload_media(
        &self,
        c: &ChannelCreds,
        bytes: Bytes,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, GraphError> {
        let url = endpoint(&c.base_url, &[&c.phone_number_id, "media"])?;
        let len = bytes.len() as u64;
        let file = Part::stream_with_length(Body::from(bytes), len)
            .file_name(filename.to_owned())
            .mime_str(mime_type)
            .map_err(|e| not_sent(format!("invalid MIME type {mime_type:?}: {e}")))?;
        let form = Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_owned())
            .part("file", file);
        let (status, body) = self
            .call(c, self.http.post(url).multipart(form), "upload_media")
            .await?;
        parse_json(status, &body)?
            .get("id")
            .and_then(lenient::to_string)
            .ok_or_else(|| unexpected(status, &body))
    }

    /// `GET {base}/{media-id}`: a fresh download URL and the file's metadata.
    pub async fn media_info(
        &self,
        c: &ChannelCreds,
        media_id: &str,
    ) -> Result<MediaInfo, GraphError> {
        let url = endpoint(&c.base_url, &[media_id])?;
        let (status, body) = self.call(c, self.http.get(url), "media_info").await?;
        let json = parse_json(status, &body)?;
        lenient::object_as(&json).ok_or_else(|| unexpected(status, &body))
    }

    /// Downloads a URL from [`MediaInfo`]. It needs the same bearer token, so pass only
    /// URLs Meta gave us: the token goes wherever the URL points.
    pub async fn download(&self, c: &ChannelCreds, url: &str) -> Result<Bytes, GraphError> {
        let url = Url::parse(url).map_err(|e| not_sent(format!("invalid media URL: {e}")))?;
        let (_, body) = self
            .call_with_limit(c, self.http.get(url), "download", MAX_DOWNLOAD_BYTES)
            .await?;
        Ok(body)
    }

    /// `GET {base}/{phone-number-id}`: the number's profile, to test a channel's setup.
    pub async fn phone_number(&self, c: &ChannelCreds) -> Result<Value, GraphError> {
        let url = endpoint(&c.base_url, &[&c.phone_number_id])?;
        let (status, body) = self.call(c, self.http.get(url), "phone_number").await?;
        parse_json(status, &body)
    }

    async fn call(
        &self,
        c: &ChannelCreds,
        req: RequestBuilder,
        op: &'static str,
    ) -> Result<(u16, Bytes), GraphError> {
        self.call_with_limit(c, req, op, MAX_API_RESPONSE_BYTES)
            .await
    }

    /// Sends with auth, user agent and timeout; returns the 2xx status and body, or the
    /// classified failure.
    async fn call_with_limit(
        &self,
        c: &ChannelCreds,
        req: RequestBuilder,
        op: &'static str,
        max_body: usize,
    ) -> Result<(u16, Bytes), GraphError> {
        let result = async {
            let mut resp = req
                .bearer_auth(&c.access_token)
                .header(USER_AGENT, USER_AGENT_VALUE)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(transport_error)?;
            let status = resp.status().as_u16();
            let success = resp.status().is_success();
            if success
                && let Some(len) = resp.content_length()
                && len > max_body as u64
            {
                return Err(too_large(status, max_body));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > max_body {
                    if success {
                        return Err(too_large(status, max_body));
                    }
                    // The start of an error body is enough to classify it.
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            if success {
                Ok((status, Bytes::from(body)))
            } else {
                Err(GraphError::from_response(status, &body))
            }
        }
        .await;
        match &result {
            Ok((status, body)) => {
                tracing::debug!(op, phone_number_id = %c.phone_number_id, status, bytes = body.len(), "graph call ok");
            }
            Err(error) => {
                tracing::debug!(op, phone_number_id = %c.phone_number_id, %error, "graph call failed");
            }
        }
        result
    }
}

/// `{base}/{segments...}`, each segment percent-encoded so an id cannot change the path.
fn endpoint(base: &str, segments: &[&str]) -> Result<Url, GraphError> {
    let mut url =
        Url::parse(base).map_err(|e| not_sent(format!("invalid base URL {base:?}: {e}")))?;
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| not_sent(format!("base URL {base:?} cannot have a path")))?;
        path.pop_if_empty();
        for segment in segments {
            path.push(segment);
        }
    }
    Ok(url)
}

fn transport_error(e: reqwest::Error) -> GraphError {
    if e.is_timeout() {
        return GraphError::Timeout;
    }
    // reqwest's own message is generic ("error sending request"); the cause is below it.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    GraphError::Network(message)
}

fn parse_json(status: u16, body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(body).map_err(|_| unexpected(status, body))
}

fn unexpected(status: u16, body: &[u8]) -> GraphError {
    GraphError::Unexpected {
        http_status: status,
        body: body_excerpt(body),
    }
}

fn too_large(status: u16, max: usize) -> GraphError {
    GraphError::Unexpected {
        http_status: status,
        body: format!("response larger than {max} bytes"),
    }
}

fn not_sent(reason: String) -> GraphError {
    GraphError::Unexpected {
        http_status: 0,
        body: reason,
    }
}

#[cfg(test)]
mod tests;
