//! Inactivity: a silent customer is reminded once, then the conversation closes as abandoned.

use super::*;

impl BotWorker {
    pub(super) fn timers(&self, loaded: &LoadedFlow) -> Timers {
        let i = &loaded.extras.inactivity;
        let ms = |secs: Option<u64>, default: Duration| {
            i64::try_from(secs.map(Duration::from_secs).unwrap_or(default).as_millis())
                .unwrap_or(i64::MAX / 2)
        };
        Timers {
            reminder_ms: ms(i.reminder_after_secs, self.inner.settings.reminder_after),
            close_ms: ms(i.close_after_secs, self.inner.settings.close_after),
        }
    }

    /// Reminds a silent customer once, then closes the conversation as abandoned in the bot.
    pub(super) async fn check_inactivity(
        &self,
        conv: &BotConversation,
        session: &BotSession,
        loaded: &LoadedFlow,
    ) -> anyhow::Result<()> {
        let now = store::now_ms();
        let close_due = session.close_due_at.is_some_and(|t| t <= now);
        let remind_due =
            session.reminder_sent_at.is_none() && session.reminder_due_at.is_some_and(|t| t <= now);
        if !close_due && !remind_due {
            return Ok(());
        }
        let ctx = flow_context(conv, &[], &[], now);
        let i = &loaded.extras.inactivity;
        if close_due {
            let template = i.close_text.as_deref().unwrap_or(DEFAULT_CLOSE_TEXT);
            let text = domain::text::render_template(template, &ctx.vars);
            let key = format!("bot:{}:close:{}", conv.id, session.last_input_message_id);
            let sends = match text.trim().is_empty() {
                true => Vec::new(),
                false => vec![bot_message(conv.id, text_send(text), key)?],
            };
            let closed = self
                .commit(BotTurn {
                    conversation_id: conv.id,
                    start_flow_version: None,
                    expect_last_input: session.last_input_message_id,
                    expect_started: true,
                    // The customer answered just now: not abandoned after all.
                    require_no_pending_input: true,
                    input_message_id: session.last_input_message_id,
                    state_json: session.state.clone(),
                    activity: false,
                    reminder_due_at: None,
                    close_due_at: None,
                    contact: ContactUpdate::default(),
                    fields: Vec::new(),
                    protocol_sent: false,
                    finish: Some(BotFinish {
                        outcome: BotOutcome::AbandonedInBot,
                        handoff: None,
                        last_bot_message_id: Some(session.last_input_message_id),
                    }),
                    sends,
                })
                .await?;
            if closed {
                tracing::info!(
                    conversation_id = conv.id,
                    "conversation closed: abandoned in the bot"
                );
            }
        } else {
            let template = i.reminder_text.as_deref().unwrap_or(DEFAULT_REMINDER_TEXT);
            let text = domain::text::render_template(template, &ctx.vars);
            let key = format!("bot:{}:reminder:{}", conv.id, session.last_input_message_id);
            if !text.trim().is_empty() {
                self.send(conv.id, text_send(text), key).await?;
            }
            self.inner
                .store
                .mark_bot_reminder(conv.id, session.last_activity_at)
                .await?;
        }
        Ok(())
    }
}
