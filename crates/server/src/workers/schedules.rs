//! Fires scheduled messages and closes templates nobody answered.
//!
//! Every tick the worker claims the schedules that are due (`Store::claim_due_schedules`: one
//! instance gets each, `FOR UPDATE SKIP LOCKED` on PostgreSQL), and sends each through the same
//! road as a person would (`hsm::send_template_full`, or `hsm::deliver` for a free text) with
//! its claim: the message, its outbox job and the schedule marked `sent` commit together, so a
//! schedule fires exactly once whatever restarts or instances do. A claim abandoned by a crash
//! is taken again when its lease runs out. A schedule that can no longer be sent (template
//! paused, disabled or deleted, window closed for a free text) fails with its pt-BR reason.
//!
//! The same loop closes conversations still `awaiting_reply` whose reply routes expired, so the
//! customer's next message meets the bot (`Store::close_unanswered`).

use std::time::Duration;

use domain::template::Values;
use store::outbox::NewOutbound;
use store::reply_routes::ScheduleClaim;
use store::schedules::ScheduleRecord;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::hsm::{self, Delivery, Recipient, ReplyRouteSpec, TemplateSend};
use crate::live::Notice;
use crate::state::AppState;

/// How long one claim lasts before another worker may take the schedule again.
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 50;
/// A schedule that keeps hitting passing trouble (database, network) gives up after this many
/// claims.
const MAX_ATTEMPTS: i64 = 5;
const TICK: Duration = Duration::from_millis(250);
const SWEEP_EVERY: Duration = Duration::from_secs(2);

pub struct ScheduleWorker {
    pub app: AppState,
    pub worker_id: String,
}

/// Why a schedule did not go.
enum Failure {
    /// It never will: failed with this code and pt-BR reason.
    Permanent(String, String),
    /// It may later: released for another try.
    Passing(String),
    /// Not ours any more (cancelled meanwhile, or fired by another worker): nothing to do.
    Lost,
}

impl ScheduleWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.fire_due().await {
                tracing::warn!(error = %format!("{e:#}"), "scheduled messages: round failed");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                match self.app.store.close_unanswered(store::now_ms(), 500).await {
                    Ok(closed) if !closed.is_empty() => {
                        tracing::info!(count = closed.len(), "unanswered templates closed");
                        self.app.live.publish(Notice::DeskChanged);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot close unanswered templates"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn fire_due(&self) -> anyhow::Result<()> {
        loop {
            let due = self
                .app
                .store
                .claim_due_schedules(&self.worker_id, LEASE_MS, BATCH)
                .await?;
            let full = due.len() as i64 == BATCH;
            for schedule in due {
                self.fire(schedule).await;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn fire(&self, s: ScheduleRecord) {
        let claim = ScheduleClaim {
            schedule_id: s.id,
            claimed_by: self.worker_id.clone(),
        };
        let outcome = match self.send(&s, &claim).await {
            Ok(message_id) => {
                tracing::info!(schedule_id = s.id, message_id, "scheduled message sent");
                return;
            }
            Err(Failure::Lost) => {
                tracing::info!(schedule_id = s.id, "schedule no longer ours; skipped");
                return;
            }
            Err(Failure::Passing(why)) if s.attempts < MAX_ATTEMPTS => {
                tracing::warn!(schedule_id = s.id, attempt = s.attempts, error = %why, "scheduled message will be retried");
                let retry_at = store::now_ms() + 5_000 * s.attempts.max(1);
                self.app
                    .store
                    .release_schedule(&claim, retry_at)
                    .await
                    .map(|_| ())
            }
            Err(Failure::Passing(why)) => {
                let reason = format!("Falha ao enviar depois de {} tentativas: {why}", s.attempts);
                self.fail(&s, &claim, "error", &reason).await
            }
            Err(Failure::Permanent(code, reason)) => self.fail(&s, &claim, &code, &reason).await,
        };
        if let Err(e) = outcome {
            tracing::error!(schedule_id = s.id, error = %e, "cannot record the schedule's outcome");
        }
    }

    async fn fail(
        &self,
        s: &ScheduleRecord,
        claim: &ScheduleClaim,
        code: &str,
        reason: &str,
    ) -> store::Result<()> {
        tracing::warn!(schedule_id = s.id, code, reason, "scheduled message failed");
        // The failure's system message and event are in the log; the tailers pick them up.
        if self.app.store.fail_schedule(claim, code, reason).await? {
            self.app.live.publish(Notice::DeskChanged);
        }
        Ok(())
    }

    /// Sends the schedule's message with its claim; the message id.
    async fn send(&self, s: &ScheduleRecord, claim: &ScheduleClaim) -> Result<i64, Failure> {
        let route: Option<ReplyRouteSpec> = match s.reply_route.as_deref() {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                Failure::Permanent("invalid".into(), format!("Rota de resposta ilegível: {e}"))
            })?),
            None => None,
        };
        let sent = match s.kind.as_str() {
            "template" => {
                let template_id = s.template_id.ok_or_else(|| {
                    let what = s.note.as_deref().unwrap_or("sem template");
                    Failure::Permanent(
                        "template_not_found".into(),
                        format!("O template do agendamento não existe nesta conta ({what})."),
                    )
                })?;
                let values: Values = match s.template_values.as_deref() {
                    Some(json) => serde_json::from_str(json).map_err(|e| {
                        Failure::Permanent("invalid".into(), format!("Valores ilegíveis: {e}"))
                    })?,
                    None => Values::default(),
                };
                let req = TemplateSend {
                    channel_id: s.channel_id,
                    to: Recipient::Contact(s.contact_id),
                    template_id,
                    values,
                    author: "schedule",
                    author_user_id: s.created_by,
                    reply_route: route,
                    idempotency_key: Some(format!("schedule:{}", s.id)),
                    components: None,
                };
                hsm::send_template_full(&self.app, req, Some(claim.clone())).await
            }
            _ => {
                let contact = self
                    .app
                    .store
                    .contact_brief(s.contact_id)
                    .await
                    .map_err(|e| Failure::Passing(e.to_string()))?
                    .ok_or_else(|| {
                        Failure::Permanent("not_found".into(), "O contato não existe mais.".into())
                    })?;
                let window = domain::window::window_state(contact.last_inbound_at, store::now_ms());
                if !window.is_open() {
                    return Err(Failure::Permanent(
                        "outside_service_window".into(),
                        "A janela de 24 horas do cliente fechou: uma mensagem livre não pode mais ser enviada; agende um template."
                            .into(),
                    ));
                }
                let body = s.body.clone().unwrap_or_default();
                let content = whatsapp::send::OutboundContent::Text {
                    body: body.clone(),
                    preview_url: false,
                };
                let content_json = serde_json::to_string(&content)
                    .map_err(|e| Failure::Permanent("invalid".into(), e.to_string()))?;
                let delivery = Delivery {
                    channel_id: s.channel_id,
                    to: Recipient::Contact(s.contact_id),
                    message: NewOutbound {
                        conversation_id: 0,
                        author: "schedule".into(),
                        author_user_id: s.created_by,
                        kind: "text".into(),
                        body: Some(body),
                        content_json,
                        reply_to_wamid: None,
                        media_id: None,
                        idempotency_key: Some(format!("schedule:{}", s.id)),
                    },
                    reply_route: route.unwrap_or(ReplyRouteSpec::ChannelDefault),
                    template_id: None,
                    button_actions: None,
                    schedule: Some(claim.clone()),
                };
                hsm::deliver(&self.app, delivery).await
            }
        };
        match sent {
            Ok(sent) if sent.created => Ok(sent.message.id),
            // The key was used: this schedule's message exists, so it was sent already.
            Ok(_) => Err(Failure::Lost),
            Err(e) => Err(classify(e)),
        }
    }
}

/// What an error of the send road means for a schedule.
fn classify(e: ApiError) -> Failure {
    match e {
        ApiError::Conflict("schedule_lost", _) => Failure::Lost,
        ApiError::Internal(e) => Failure::Passing(format!("{e:#}")),
        ApiError::NotFound => Failure::Permanent(
            "not_found".into(),
            "O template ou o contato não existe mais.".into(),
        ),
        ApiError::Unprocessable(code, reason, details) => {
            let problems: Vec<&str> = details["problems"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["message"].as_str()).collect())
                .unwrap_or_default();
            let reason = if problems.is_empty() {
                reason
            } else {
                format!(
                    "Os valores não servem mais ao template: {}",
                    problems.join(" ")
                )
            };
            Failure::Permanent(code.into(), reason)
        }
        ApiError::Conflict(code, reason) | ApiError::BadRequest(code, reason) => {
            Failure::Permanent(code.into(), reason)
        }
        other => Failure::Permanent("error".into(), other.to_string()),
    }
}
