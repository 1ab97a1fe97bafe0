//! Shared state behind every clone of a `GraphSim`.
//!
//! One std mutex guards everything: no lock is held across an await, the
//! critical sections are tiny, and a single lock makes "check the throughput
//! window, then record the send" atomic without further thought.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::account::{PhoneSettings, Subscription};
use crate::templates::{AutoReview, Deleted, RecordedRequest};
use crate::uploads::UploadSession;
use crate::{
    AutoStatuses, Endpoint, Fault, PhoneNumber, SentMessage, StatusDelivery, StoredMedia, Template,
};

pub(crate) struct Shared {
    pub app_id: String,
    pub app_secret: String,
    pub access_tokens: Vec<String>,
    pub phone_numbers: Vec<PhoneNumber>,
    pub auto_statuses: AutoStatuses,
    pub media_url_ttl: Duration,
    /// Signs media download URLs; random per simulator so URLs from another
    /// run never validate.
    pub url_key: [u8; 32],
    pub client: reqwest::Client,
    state: Mutex<State>,
    /// Bumped after every recorded event so waiters re-check their condition.
    changed: watch::Sender<u64>,
    pub accept_task: Mutex<Option<AbortHandle>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub webhook_url: Option<String>,
    pub base_url: Option<String>,
    pub sent: Vec<SentMessage>,
    /// Acceptance instants per phone number id, in order.
    pub send_times: HashMap<String, Vec<Instant>>,
    /// Business uploads and customer media alike.
    pub media: HashMap<String, StoredMedia>,
    /// Business uploads only, for `uploads()`.
    pub upload_order: Vec<String>,
    pub faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub mark_read: Vec<String>,
    pub requests: HashMap<Endpoint, usize>,
    pub deliveries: Vec<StatusDelivery>,
    pub throughput_limit: Option<u32>,
    pub status_delay: Duration,
    pub webhook_retries: u32,
    pub wa_id_overrides: HashMap<String, String>,
    /// In creation order, which is also the listing order.
    pub templates: Vec<Template>,
    pub enforce_templates: bool,
    /// Status given to created (and edited) templates.
    pub new_template_status: String,
    /// What happens to a template waiting for review; None = it waits for a test.
    pub review: Option<AutoReview>,
    /// Deletions, for the 30-day block on reusing a name.
    pub deleted_templates: Vec<Deleted>,
    /// Most templates a WABA may hold (Meta: 250 for an unverified portfolio).
    pub template_limit: usize,
    /// Added to the wall clock for Meta's time rules (edit limits, name reuse), so a test can
    /// "wait" a day.
    pub clock_offset: Duration,
    /// Every template-related request body and whether it conformed to Meta's document.
    pub template_requests: Vec<RecordedRequest>,
    pub record_template_requests: bool,
    /// Template webhooks posted (status, quality, category), in order.
    pub template_webhooks: Vec<serde_json::Value>,
    /// Granted permissions per access token.
    pub token_scopes: HashMap<String, Vec<String>>,
    /// Per WABA; absent = subscribed.
    pub subscriptions: HashMap<String, Subscription>,
    /// Per phone number id; absent = the defaults.
    pub phone_settings: HashMap<String, PhoneSettings>,
    /// Resumable Upload API sessions by id (without the "upload:" prefix).
    pub upload_sessions: HashMap<String, UploadSession>,
    /// Handles returned by finished uploads: handle -> session id.
    pub upload_handles: HashMap<String, String>,
    /// Per recipient (digits): the error code a MARKETING template to them fails with.
    pub marketing_faults: HashMap<String, i64>,
    /// Phone number ids whose sends fail with 131048 (spam rate limit).
    pub spam_limited: std::collections::HashSet<String>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        app_id: String,
        app_secret: String,
        access_tokens: Vec<String>,
        phone_numbers: Vec<PhoneNumber>,
        auto_statuses: AutoStatuses,
        media_url_ttl: Duration,
        state: State,
        client: reqwest::Client,
    ) -> Shared {
        let mut url_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut url_key[..]);
        Shared {
            app_id,
            app_secret,
            access_tokens,
            phone_numbers,
            auto_statuses,
            media_url_ttl,
            url_key,
            client,
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
            accept_task: Mutex::new(None),
        }
    }

    /// A panic while holding the lock leaves plain data behind, still usable:
    /// recovering keeps one failed test from cascading into every later call.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the lock and wakes the waiters afterwards.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        out
    }

    pub(crate) fn phone(&self, id: &str) -> Option<&PhoneNumber> {
        self.phone_numbers.iter().find(|p| p.phone_number_id == id)
    }

    /// Waits until `done` holds or the timeout passes, then returns
    /// `result` of the final state either way.
    pub(crate) async fn wait_until<T>(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
        result: impl Fn(&State) -> T,
    ) -> T {
        // Subscribing before the first check means no update can slip
        // between the check and the wait.
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.lock()) {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => break,
            }
        }
        result(&self.lock())
    }
}

impl State {
    /// Pops the next fault for this request: faults aimed at the endpoint
    /// first, then those aimed at any endpoint.
    pub(crate) fn next_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        if let Some(f) = self.faults.get_mut(&endpoint).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        self.faults
            .get_mut(&Endpoint::Any)
            .and_then(VecDeque::pop_front)
    }

    /// Accepted sends of `phone_number_id` in the second before `now`.
    pub(crate) fn sends_in_last_second(&self, phone_number_id: &str, now: Instant) -> usize {
        let Some(times) = self.send_times.get(phone_number_id) else {
            return 0;
        };
        let since = now.checked_sub(Duration::from_secs(1));
        let first = match since {
            Some(since) => times.partition_point(|t| *t <= since),
            None => 0,
        };
        times.len() - first
    }
}

/// Largest number of instants that fit in any half-open window of one second.
pub(crate) fn max_in_any_second(times: &[Instant]) -> usize {
    let window = Duration::from_secs(1);
    let mut best = 0;
    let mut start = 0;
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_max() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times = [
            at(0),
            at(100),
            at(900),
            at(999),
            at(1000),
            at(1500),
            at(1950),
        ];
        // [0, 1000) and [900, 1900) hold 4 each; 1000 is outside the first.
        assert_eq!(max_in_any_second(&times), 4);
        assert_eq!(max_in_any_second(&[]), 0);
        assert_eq!(max_in_any_second(&[at(5)]), 1);
    }
}
