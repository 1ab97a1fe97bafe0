//! The desk's engine: the worker that routes waiting conversations to agents and keeps waiting
//! customers informed ([`DeskWorker`]), the count of each person's open tabs ([`Sockets`]), and
//! the messages the platform itself sends to customers ([`send_system_text`]). Who may see what
//! is `crate::access`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::Store;
use store::auth::Role;
use store::conversations::ConversationSummary;
use store::desk::WaitingConversation;
use store::outbox::NewOutbound;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use whatsapp::send::OutboundContent;

use crate::live::{Live, Notice};
use crate::workers::outbound::Outbound;

/// Sends a text from the platform ("system") to the customer when the 24 h window allows it.
/// The idempotency key makes a retry or a second instance send it once. Returns whether it was
/// enqueued.
pub async fn send_system_text(
    store: &Store,
    outbound: &Outbound,
    conversation_id: i64,
    text: &str,
    key: String,
) -> anyhow::Result<bool> {
    let Some(conversation) = store.conversation(conversation_id).await? else {
        return Ok(false);
    };
    let window = domain::window::window_state(conversation.last_inbound_at, store::now_ms());
    if !window.is_open() || text.trim().is_empty() {
        return Ok(false);
    }
    let content = OutboundContent::Text {
        body: text.to_owned(),
        preview_url: false,
    };
    outbound
        .enqueue(NewOutbound {
            conversation_id,
            author: "system".into(),
            author_user_id: None,
            kind: "text".into(),
            body: Some(text.to_owned()),
            content_json: serde_json::to_string(&content)?,
            reply_to_wamid: None,
            media_id: None,
            idempotency_key: Some(key),
        })
        .await?;
    Ok(true)
}

/// The variables of messages about a conversation: `{{protocolo}}`, `{{fila}}`, `{{nome}}`,
/// `{{agente}}`, plus `{{posicao}}` when waiting.
pub fn template_vars(c: &ConversationSummary, position: Option<i64>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("protocolo".into(), c.protocol.clone());
    vars.insert("fila".into(), c.queue_name.clone().unwrap_or_default());
    vars.insert("nome".into(), c.contact_name.clone().unwrap_or_default());
    vars.insert("agente".into(), c.agent_name.clone().unwrap_or_default());
    if let Some(p) = position {
        vars.insert("posicao".into(), p.to_string());
    }
    vars
}

/// A first installation's desk, so the demo works end to end: every queue gets pt-BR waiting,
/// transfer and closing messages and the admins as members; a few dispositions and canned
/// responses.
pub async fn seed_desk_defaults(store: &Store) -> anyhow::Result<()> {
    let admins: Vec<i64> = store
        .desk_users()
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Admin.as_str())
        .map(|u| u.id)
        .collect();
    for queue in store.queues().await? {
        let desk = store::queues::QueueDesk {
            waiting_message: Some(
                "Você está na fila {{fila}}, posição {{posicao}}. Já vamos atender você.".into(),
            ),
            position_update_secs: 60,
            max_wait_secs: Some(600),
            max_wait_message: Some(
                "Nossos atendentes estão ocupados, mas você continua na fila. Obrigado pela paciência!".into(),
            ),
            default_max_concurrent: store::desk::DEFAULT_LIMIT,
            transfer_message: Some(
                "Transferimos seu atendimento (protocolo {{protocolo}}). Em instantes você continua a conversa com nossa equipe.".into(),
            ),
            closing_message: Some(
                "Atendimento finalizado. Seu protocolo é {{protocolo}}. Obrigado pelo contato!".into(),
            ),
        };
        store.update_queue_desk(queue.id, &desk).await?;
        if store.queue_member_ids(queue.id).await?.is_empty() {
            store.set_queue_members(queue.id, &admins).await?;
        }
    }
    if store.dispositions(None).await?.is_empty() {
        for label in [
            "Dúvida resolvida",
            "Problema resolvido",
            "Encaminhado a outro setor",
            "Sem retorno do cliente",
        ] {
            store.create_disposition(None, label).await?;
        }
    }
    if store.canned_responses().await?.is_empty() {
        let canned = [
            (
                "ola",
                "Saudação",
                "Olá, {{nome}}! Meu nome é {{agente}} e vou continuar seu atendimento (protocolo {{protocolo}}).",
            ),
            (
                "aguarde",
                "Aguarde",
                "Um momento, por favor, estou verificando.",
            ),
            (
                "obrigado",
                "Encerramento",
                "Obrigado pelo contato, {{nome}}! Seu protocolo é {{protocolo}}.",
            ),
        ];
        for (shortcut, title, body) in canned {
            store
                .save_canned_response(None, shortcut, title, body, None)
                .await?;
        }
    }
    Ok(())
}

/// Live WebSockets per user on this instance, for presence: an agent whose every tab has been
/// gone longer than the grace period becomes offline.
#[derive(Clone, Default)]
pub struct Sockets(Arc<Mutex<HashMap<i64, usize>>>);

impl Sockets {
    pub fn opened(&self, user_id: i64) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(user_id).or_default() += 1;
        }
    }

    pub fn closed(&self, user_id: i64) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(&user_id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&user_id);
            }
        }
    }

    pub fn connected_users(&self) -> Vec<i64> {
        self.0
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// Routes waiting conversations (woken by anything that frees or adds capacity, and every
/// second), sends waiting customers their position and the max-wait notice, and turns agents
/// without a tab for too long offline.
pub struct DeskWorker {
    pub store: Store,
    pub outbound: Outbound,
    pub live: Live,
    pub wake: Arc<Notify>,
    pub sockets: Sockets,
    pub presence_grace: Duration,
}

const TICK: Duration = Duration::from_secs(1);

impl DeskWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_heartbeat = tokio::time::Instant::now();
        let heartbeat_every = (self.presence_grace / 4).max(Duration::from_millis(250));
        loop {
            if let Err(e) = self.route().await {
                tracing::warn!(error = %format!("{e:#}"), "routing failed");
            }
            if let Err(e) = self.inform_waiting().await {
                tracing::warn!(error = %format!("{e:#}"), "cannot inform waiting customers");
            }
            if last_heartbeat.elapsed() >= heartbeat_every {
                last_heartbeat = tokio::time::Instant::now();
                if let Err(e) = self.presence().await {
                    tracing::warn!(error = %format!("{e:#}"), "presence upkeep failed");
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK.min(heartbeat_every)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn route(&self) -> anyhow::Result<()> {
        let assigned = self.store.route_waiting().await?;
        for (conversation_id, agent_id) in &assigned {
            tracing::info!(conversation_id, agent_id, "conversation assigned");
        }
        if !assigned.is_empty() {
            self.live.publish(Notice::DeskChanged);
        }
        Ok(())
    }

    async fn inform_waiting(&self) -> anyhow::Result<()> {
        let now = store::now_ms();
        for w in self.store.waiting_conversations().await? {
            // One customer's trouble must not keep the others uninformed.
            if let Err(e) = self.inform_one(&w, now).await {
                tracing::warn!(conversation_id = w.conversation_id, error = %format!("{e:#}"), "cannot inform a waiting customer");
            }
        }
        Ok(())
    }

    async fn inform_one(&self, w: &WaitingConversation, now: i64) -> anyhow::Result<()> {
        let queued_at = w.queued_at.unwrap_or(now);
        if let Some(template) = w
            .waiting_message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
        {
            let first = w.position_notified.is_none();
            let interval_ms = w.position_update_secs.unwrap_or(0).saturating_mul(1000);
            let moved = w.position_notified != Some(w.position);
            let due = w
                .position_notified_at
                .is_none_or(|at| now - at >= interval_ms);
            if first || (interval_ms > 0 && moved && due) {
                self.send(
                    w,
                    template,
                    format!("wait-{}-{queued_at}-{}", w.conversation_id, w.position),
                )
                .await?;
                self.store
                    .mark_position_notified(w.conversation_id, w.position)
                    .await?;
            }
        }
        if let (Some(max_secs), Some(template)) = (w.max_wait_secs, w.max_wait_message.as_deref())
            && w.max_wait_notified_at.is_none()
            && now - queued_at >= max_secs.saturating_mul(1000)
        {
            self.send(
                w,
                template,
                format!("maxwait-{}-{queued_at}", w.conversation_id),
            )
            .await?;
            self.store.mark_max_wait_notified(w.conversation_id).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        w: &WaitingConversation,
        template: &str,
        key: String,
    ) -> anyhow::Result<()> {
        let Some(conversation) = self.store.conversation(w.conversation_id).await? else {
            return Ok(());
        };
        let text = domain::text::render_template(
            template,
            &template_vars(&conversation, Some(w.position)),
        );
        send_system_text(&self.store, &self.outbound, w.conversation_id, &text, key).await?;
        Ok(())
    }

    async fn presence(&self) -> anyhow::Result<()> {
        self.store
            .touch_sockets(&self.sockets.connected_users())
            .await?;
        let grace_ms = i64::try_from(self.presence_grace.as_millis()).unwrap_or(i64::MAX);
        let expired = self
            .store
            .expire_presence(store::now_ms() - grace_ms)
            .await?;
        for user_id in &expired {
            tracing::info!(
                user_id,
                "offline: every tab disconnected beyond the grace period"
            );
        }
        if !expired.is_empty() {
            self.live.publish(Notice::DeskChanged);
        }
        Ok(())
    }
}
