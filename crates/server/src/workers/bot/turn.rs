//! One turn executed: the plan committed with its messages, the hand-off to a queue.

use super::*;

impl BotWorker {
    /// One turn: the flow start (`input` None) or one customer message.
    pub(super) async fn turn(
        &self,
        conv: &BotConversation,
        session: &BotSession,
        loaded: &LoadedFlow,
        input: TurnInput,
    ) -> anyhow::Result<bool> {
        let store = &self.inner.store;
        let now = store::now_ms();
        let timers = self.timers(loaded);
        let (state, message, bot_input, binding) = match input {
            TurnInput::Start { opening, binding } => {
                (None, None, opening.as_ref().and_then(bot_input), binding)
            }
            TurnInput::Message { state, message } => {
                let input = bot_input(&message);
                (Some(state), Some(message), input, None)
            }
        };
        if let (Some(message), None) = (&message, &bot_input) {
            // Not an answer (a reaction, a system notice): consumed without a turn.
            return self
                .commit(BotTurn {
                    conversation_id: conv.id,
                    start_flow_version: None,
                    expect_last_input: session.last_input_message_id,
                    expect_started: true,
                    require_no_pending_input: false,
                    input_message_id: message.id,
                    state_json: session.state.clone(),
                    activity: false,
                    reminder_due_at: None,
                    close_due_at: None,
                    contact: ContactUpdate::default(),
                    fields: Vec::new(),
                    protocol_sent: false,
                    finish: None,
                    sends: Vec::new(),
                })
                .await;
        }
        let queues = store.queues().await?;
        let fields = store.conversation_fields(conv.id).await?;
        let mut ctx = flow_context(conv, &fields, &queues, now);
        let queue_names: HashMap<String, String> = queues
            .iter()
            .map(|q| (q.key.clone(), q.name.clone()))
            .collect();
        let mut outcome = plan_turn(
            loaded,
            &ctx,
            state.as_ref(),
            bot_input.as_ref(),
            &queue_names,
        );

        // Identification by Código: a CPF/CNPJ another contact already gave brings what we know of
        // that customer (name, e-mail), so the flow does not ask it again.
        let mut contact = ContactUpdate::default();
        if let Some(code) = saved_code(&outcome).map(str::to_owned)
            && conv.contact_code.as_deref() != Some(code.as_str())
            && let Some(other) = store
                .contacts_with_code(&code, conv.contact_id)
                .await?
                .into_iter()
                .next()
        {
            let mut recognized = false;
            if conv.contact_name.is_none()
                && let Some(name) = other.name.filter(|n| !n.trim().is_empty())
            {
                ctx.vars.insert("contact.name".into(), name.clone());
                ctx.fields.insert("contact.name".into(), name.clone());
                contact.name = Some(name);
                recognized = true;
            }
            if conv.contact_email.is_none()
                && let Some(email) = other.email.filter(|e| !e.trim().is_empty())
            {
                ctx.vars.insert("contact.email".into(), email.clone());
                ctx.fields.insert("contact.email".into(), email.clone());
                contact.email = Some(email);
                recognized = true;
            }
            if recognized {
                outcome = plan_turn(
                    loaded,
                    &ctx,
                    state.as_ref(),
                    bot_input.as_ref(),
                    &queue_names,
                );
            }
        }

        let key_base = match &message {
            Some(m) => format!("bot:{}:{}", conv.id, m.id),
            None => format!("bot:{}:start", conv.id),
        };
        let mut vars = ctx.vars.clone();
        let mut fields_out = Vec::new();
        let mut protocol_sent = false;
        let mut protocol_informed = conv.protocol_sent_at.is_some();
        let mut finish: Option<(BotOutcome, Option<(i64, i64)>)> = None;
        let mut sends = Vec::new();
        let mut reminders = Vec::new();
        for action in &outcome.actions {
            if let Some(send) = outbound_content(action) {
                sends.push(send);
                continue;
            }
            match action {
                Action::SaveField { field, value } => {
                    vars.insert(field.clone(), value.clone());
                    match field.as_str() {
                        "contact.code" => contact.code = Some(value.clone()),
                        "contact.name" => contact.name = Some(value.clone()),
                        "contact.email" => contact.email = Some(value.clone()),
                        _ => fields_out.push((field.clone(), value.clone())),
                    }
                }
                Action::SendProtocol => {
                    protocol_sent = true;
                    protocol_informed = true;
                }
                Action::Handoff { queue, priority } => {
                    // The SAC rule, enforced here whatever the flow did: the customer knows the
                    // protocol before a person takes over.
                    if !protocol_informed {
                        let text = domain::text::render_template(&loaded.flow.protocol_text, &vars);
                        sends.push(text_send(text));
                        protocol_sent = true;
                    }
                    let q = self.queue_for(&queues, queue).await?;
                    if hours::queue_open(q.business_hours.as_deref(), now) {
                        finish = Some((BotOutcome::Handoff, Some((q.id, i64::from(*priority)))));
                    } else {
                        if let Some(text) = q
                            .outside_hours_message
                            .as_deref()
                            .filter(|t| !t.trim().is_empty())
                        {
                            let mut vars = vars.clone();
                            vars.insert("fila".into(), q.name.clone());
                            let text = domain::text::render_template(text, &vars);
                            sends.push(text_send(text));
                        }
                        finish = Some(if q.outside_hours_action == "end" {
                            (BotOutcome::OutsideHours, None)
                        } else {
                            (BotOutcome::Handoff, Some((q.id, i64::from(*priority))))
                        });
                    }
                    break;
                }
                Action::End => {
                    finish = Some((BotOutcome::Ended, None));
                    break;
                }
                Action::ScheduleReminder {
                    template,
                    language,
                    when,
                    variables,
                } => reminders.push(super::reminders::Reminder {
                    template: template.clone(),
                    language: language.clone(),
                    when: when.clone(),
                    variables: variables.clone(),
                }),
                _ => {}
            }
        }
        // Before the commit, keyed by the turn's input: a retried or raced turn schedules once.
        self.schedule_reminders(conv, &reminders, &key_base).await?;
        let input_message_id = message
            .as_ref()
            .map(|m| m.id)
            .unwrap_or(session.last_input_message_id);
        let sends = sends
            .into_iter()
            .enumerate()
            .map(|(n, send)| bot_message(conv.id, send, format!("{key_base}:{n}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let state_json = match (&finish, &outcome.state) {
            (None, Some(state)) => Some(serde_json::to_string(state)?),
            _ => None,
        };
        // The interpreter always ends a turn waiting or done; "neither" would strand the customer.
        let finish = match (finish, &state_json) {
            (None, None) => Some((BotOutcome::Ended, None)),
            (f, _) => f,
        };
        self.commit(BotTurn {
            conversation_id: conv.id,
            start_flow_version: binding,
            expect_last_input: session.last_input_message_id,
            expect_started: session.state.is_some(),
            require_no_pending_input: false,
            input_message_id,
            state_json,
            activity: true,
            reminder_due_at: Some(now + timers.reminder_ms),
            close_due_at: Some(now + timers.close_ms),
            contact,
            fields: fields_out,
            protocol_sent,
            finish: finish.map(|(outcome, handoff)| BotFinish {
                outcome,
                handoff,
                last_bot_message_id: Some(input_message_id),
            }),
            sends,
        })
        .await
    }

    /// The queue a hand-off names; created (always open) when an admin has not created it yet, so
    /// the customer still reaches a person.
    pub(super) async fn queue_for(
        &self,
        queues: &[QueueRecord],
        key: &str,
    ) -> anyhow::Result<QueueRecord> {
        if let Some(q) = queues.iter().find(|q| q.key == key) {
            return Ok(q.clone());
        }
        tracing::warn!(
            queue = key,
            "a flow hands off to a queue that does not exist; creating it"
        );
        Ok(self
            .inner
            .store
            .ensure_queue(&NewQueue {
                key: key.to_owned(),
                name: key.to_owned(),
                priority: 0,
                business_hours: None,
                outside_hours_message: None,
                outside_hours_action: "wait".into(),
            })
            .await?)
    }
}
