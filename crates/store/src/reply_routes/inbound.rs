//! What the inbound transaction does with a customer message and the routes: the plan
//! ([`plan_reply`], pure) and the two macros `Store::apply_inbound_batch` runs inside its
//! transaction (`plan_reply_routing!` before the message is stored, `apply_reply_plan!` after).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::AWAITING_REPLY_STATE;

/// What a quick-reply button does, from the template's `button_actions`
/// (`{"<button text or payload>": {"action": "route"} | {"action": "reply", "text": "..."}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ButtonAction {
    /// The reply is routed like any other (the default).
    Route,
    /// Answered with this text, without a person, and the conversation closes.
    Reply { text: String },
}

/// The action of a tapped button: by exact payload, then exact text, then text folded (case and
/// accents); a button without an entry routes.
pub fn button_action(actions_json: Option<&str>, tap: &ButtonTap) -> ButtonAction {
    let Some(actions) =
        actions_json.and_then(|j| serde_json::from_str::<BTreeMap<String, ButtonAction>>(j).ok())
    else {
        return ButtonAction::Route;
    };
    let exact = [tap.payload.as_deref(), tap.text.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|key| actions.get(key));
    if let Some(action) = exact {
        return action.clone();
    }
    let folded: Vec<String> = [tap.payload.as_deref(), tap.text.as_deref()]
        .into_iter()
        .flatten()
        .map(domain::text::fold_for_match)
        .collect();
    actions
        .iter()
        .find(|(key, _)| folded.contains(&domain::text::fold_for_match(key)))
        .map(|(_, action)| action.clone())
        .unwrap_or(ButtonAction::Route)
}

/// A quick-reply tap: a template button (`type: button`) or an interactive `button_reply`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ButtonTap {
    pub payload: Option<String>,
    pub text: Option<String>,
}

impl ButtonTap {
    /// The tap in an inbound message (Meta's JSON as stored), if it is one.
    pub fn of_message(kind: &str, content_json: &str) -> Option<ButtonTap> {
        if kind != "button" && kind != "interactive" {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(content_json).ok()?;
        let text = |p: &str| value.pointer(p).and_then(|v| v.as_str()).map(str::to_owned);
        let tap = if kind == "button" {
            ButtonTap {
                payload: text("/button/payload"),
                text: text("/button/text"),
            }
        } else {
            ButtonTap {
                payload: text("/interactive/button_reply/id"),
                text: text("/interactive/button_reply/title"),
            }
        };
        (tap.payload.is_some() || tap.text.is_some()).then_some(tap)
    }

    /// What is recorded on the route.
    pub fn recorded(&self) -> Option<String> {
        self.payload.clone().or_else(|| self.text.clone())
    }
}

/// The route of the inbound path, as read inside its transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenRoute {
    pub id: i64,
    pub conversation_id: i64,
    pub target: String,
    pub queue_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub fallback_queue_id: Option<i64>,
    pub button_actions: Option<String>,
}

/// What the inbound transaction does with a customer message, decided by [`plan_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyPlan {
    /// Nothing about routes: the usual path.
    Usual,
    /// The usual path (bot, or the queue without a flow) for a conversation that was awaiting a
    /// reply; `route_id` when a route (target bot) is answered by it.
    Bot { route_id: Option<i64> },
    /// Waits for a person: in `queue_id` (`None`: the shared line), in the personal line of
    /// `waiting_agent_id` when set (routing assigns it within their limit).
    Queue {
        route_id: i64,
        queue_id: Option<i64>,
        waiting_agent_id: Option<i64>,
        outcome: &'static str,
    },
    /// A quick-reply action answers with this text and the conversation closes.
    AutoReply { route_id: i64, text: String },
    /// A tap in a conversation people already work: only recorded on the route.
    Record { route_id: i64 },
}

impl ReplyPlan {
    /// Whether a conversation opened by this message skips the bot (it opens `awaiting_reply` and
    /// [`apply_reply_plan!`] moves it on).
    pub fn skips_bot(&self) -> bool {
        matches!(self, ReplyPlan::Queue { .. } | ReplyPlan::AutoReply { .. })
    }
}

/// Decides what a customer message does with the routes. `open_state`: the state of the
/// contact's open conversation (`None`: the message opens one); `agent_has_room`: for a route to
/// an agent, whether they are available and below their limit now.
pub fn plan_reply(
    open_state: Option<&str>,
    route: Option<&OpenRoute>,
    agent_has_room: bool,
    tap: Option<&ButtonTap>,
) -> ReplyPlan {
    let awaiting = open_state == Some(AWAITING_REPLY_STATE);
    if open_state.is_some() && !awaiting {
        return match (route, tap) {
            (Some(r), Some(_)) => ReplyPlan::Record { route_id: r.id },
            _ => ReplyPlan::Usual,
        };
    }
    let Some(route) = route else {
        return if awaiting {
            ReplyPlan::Bot { route_id: None }
        } else {
            ReplyPlan::Usual
        };
    };
    if let Some(tap) = tap
        && let ButtonAction::Reply { text } = button_action(route.button_actions.as_deref(), tap)
        && !text.trim().is_empty()
    {
        return ReplyPlan::AutoReply {
            route_id: route.id,
            text,
        };
    }
    match route.target.as_str() {
        "queue" => ReplyPlan::Queue {
            route_id: route.id,
            queue_id: route.queue_id,
            waiting_agent_id: None,
            outcome: "queued",
        },
        "agent" if agent_has_room && route.agent_id.is_some() => ReplyPlan::Queue {
            route_id: route.id,
            queue_id: route.fallback_queue_id,
            waiting_agent_id: route.agent_id,
            outcome: "waiting_agent",
        },
        "agent" => ReplyPlan::Queue {
            route_id: route.id,
            queue_id: route.fallback_queue_id,
            waiting_agent_id: None,
            outcome: "fallback",
        },
        _ => ReplyPlan::Bot {
            route_id: Some(route.id),
        },
    }
}

/// Inside the inbound transaction: the [`ReplyPlan`] of a customer message. `$open_state` is the
/// state of the contact's open conversation (`None` when the message opens one). Reads at most
/// the contact's newest unanswered, unexpired route (an index lookup) and, for a route to an
/// agent, that agent's presence and load; an ordinary message of an ongoing conversation reads
/// nothing.
macro_rules! plan_reply_routing {
    ($tx:expr, $now:expr, $contact_id:expr, $open_state:expr, $kind:expr, $content_json:expr) => {{
        let open_state: Option<&str> = $open_state;
        let tap = $crate::reply_routes::ButtonTap::of_message($kind, $content_json);
        // In an ongoing conversation only a template's own quick reply (`type: button`) is
        // about a route; an interactive reply answers the bot's or an agent's buttons.
        let consult = open_state.is_none_or(|s| s == $crate::reply_routes::AWAITING_REPLY_STATE)
            || (tap.is_some() && $kind == "button");
        if !consult {
            ($crate::reply_routes::ReplyPlan::Usual, None)
        } else {
            let route: Option<$crate::reply_routes::OpenRoute> = sqlx::query_as(
                "SELECT id, conversation_id, target, queue_id, agent_id, fallback_queue_id, button_actions
                 FROM reply_routes WHERE contact_id = $1 AND answered_at IS NULL AND expires_at > $2
                 ORDER BY id DESC LIMIT 1",
            )
            .bind($contact_id)
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?;
            let mut room = false;
            if let Some(r) = route.as_ref().filter(|r| r.target == "agent")
                && let Some(agent_id) = r.agent_id
            {
                let has_room: Option<bool> = sqlx::query_scalar(
                    "SELECT u.active = TRUE AND u.presence = 'available' AND
                        (SELECT COUNT(*) FROM conversations c WHERE c.agent_id = u.id AND c.state = 'assigned')
                        < COALESCE(u.max_concurrent,
                            (SELECT q.default_max_concurrent FROM queues q WHERE q.id = $2), $3)
                     FROM users u WHERE u.id = $1",
                )
                .bind(agent_id)
                .bind(r.fallback_queue_id)
                .bind($crate::desk::DEFAULT_LIMIT)
                .fetch_optional(&mut *$tx)
                .await?;
                room = has_room.unwrap_or(false);
            }
            let plan = $crate::reply_routes::plan_reply(open_state, route.as_ref(), room, tap.as_ref());
            (plan, tap)
        }
    }};
}
pub(crate) use plan_reply_routing;

/// The stored form of a text message (`whatsapp::send::OutboundContent::Text`), for the few texts
/// the inbound transaction writes itself (the protocol number, a quick-reply answer).
pub fn text_content_json(text: &str) -> String {
    serde_json::json!({ "type": "text", "body": text, "preview_url": false }).to_string()
}

/// Inside the inbound transaction, after the customer message `$message_id` was stored in
/// `$conversation_id`: carries out the plan. A conversation for a person gets the protocol number
/// first when it was never sent (SAC decree), as the bot's hand-off does. Pushes the conversations
/// that reached the desk to `$report.opened_conversations`.
macro_rules! apply_reply_plan {
    ($tx:expr, $now:expr, $conversation_id:expr, $contact_id:expr, $channel_id:expr, $message_id:expr, $plan:expr, $tap:expr, $report:expr) => {{
        use $crate::reply_routes::ReplyPlan;
        let plan: &ReplyPlan = $plan;
        let tap: &Option<$crate::reply_routes::ButtonTap> = $tap;
        let payload = tap.as_ref().and_then(|t| t.recorded());
        let now: i64 = $now;
        let conversation_id: i64 = $conversation_id;
        let answered: Option<(i64, &'static str)> = match plan {
            ReplyPlan::Usual => None,
            ReplyPlan::Record { route_id } => Some((*route_id, "recorded")),
            ReplyPlan::Bot { route_id } => {
                let flows: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM flows WHERE enabled = TRUE AND (channel_id IS NULL OR channel_id = $1)",
                )
                .bind($channel_id)
                .fetch_one(&mut *$tx)
                .await?;
                let state = if flows > 0 {
                    $crate::conversations::BOT_STATE
                } else {
                    $crate::conversations::INITIAL_STATE
                };
                let moved = sqlx::query(
                    "UPDATE conversations SET state = $2, agent_id = NULL,
                        queued_at = CASE WHEN $2 = 'queued' THEN $3 ELSE NULL END
                     WHERE id = $1 AND state = $4",
                )
                .bind(conversation_id)
                .bind(state)
                .bind(now)
                .bind($crate::reply_routes::AWAITING_REPLY_STATE)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if moved > 0 {
                    $crate::insert_event!($tx, now, "conversation.reopened", conversation_id, serde_json::json!({ "state": state, "by": "reply" }));
                    if !$report.opened_conversations.contains(&conversation_id) {
                        $report.opened_conversations.push(conversation_id);
                    }
                }
                route_id.map(|id| (id, "bot"))
            }
            ReplyPlan::Queue { route_id, queue_id, waiting_agent_id, outcome } => {
                sqlx::query(
                    "UPDATE conversations SET state = 'queued', queue_id = $2, waiting_agent_id = $3,
                        agent_id = NULL, queued_at = $4, position_notified = NULL,
                        position_notified_at = NULL, max_wait_notified_at = NULL
                     WHERE id = $1",
                )
                .bind(conversation_id)
                .bind(*queue_id)
                .bind(*waiting_agent_id)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
                let informed: Option<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT protocol, protocol_sent_at FROM conversations WHERE id = $1",
                )
                .bind(conversation_id)
                .fetch_optional(&mut *$tx)
                .await?;
                if let Some((number, None)) = informed {
                    let mut vars = std::collections::BTreeMap::new();
                    vars.insert("protocolo".to_owned(), number);
                    let text = domain::text::render_template(domain::flow::DEFAULT_PROTOCOL_TEXT, &vars);
                    let new = $crate::outbox::NewOutbound {
                        conversation_id,
                        author: "system".into(),
                        author_user_id: None,
                        kind: "text".into(),
                        body: Some(text.clone()),
                        content_json: $crate::reply_routes::text_content_json(&text),
                        reply_to_wamid: None,
                        media_id: None,
                        idempotency_key: Some(format!("hsm:{conversation_id}:protocol")),
                    };
                    $crate::outbox::insert_outbound!($tx, &new, now)?;
                    sqlx::query("UPDATE conversations SET protocol_sent_at = $2 WHERE id = $1")
                        .bind(conversation_id)
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?;
                }
                let event = serde_json::json!({
                    "queue_id": queue_id, "waiting_agent_id": waiting_agent_id, "by": "reply_route",
                    "route_id": route_id, "outcome": outcome,
                });
                $crate::insert_event!($tx, now, "conversation.queued", conversation_id, event);
                if !$report.opened_conversations.contains(&conversation_id) {
                    $report.opened_conversations.push(conversation_id);
                }
                Some((*route_id, *outcome))
            }
            ReplyPlan::AutoReply { route_id, text } => {
                let number: Option<String> =
                    sqlx::query_scalar("SELECT protocol FROM conversations WHERE id = $1")
                        .bind(conversation_id)
                        .fetch_optional(&mut *$tx)
                        .await?;
                let mut vars = std::collections::BTreeMap::new();
                vars.insert("protocolo".to_owned(), number.unwrap_or_default());
                let text = domain::text::render_template(text, &vars);
                let new = $crate::outbox::NewOutbound {
                    conversation_id,
                    author: "system".into(),
                    author_user_id: None,
                    kind: "text".into(),
                    body: Some(text.clone()),
                    content_json: $crate::reply_routes::text_content_json(&text),
                    reply_to_wamid: None,
                    media_id: None,
                    idempotency_key: Some(format!("hsm:{conversation_id}:auto:{}", $message_id)),
                };
                $crate::outbox::insert_outbound!($tx, &new, now)?;
                sqlx::query(
                    "UPDATE conversations SET state = 'closed', closed_at = $2, close_reason = $3,
                        agent_id = NULL, waiting_agent_id = NULL
                     WHERE id = $1 AND closed_at IS NULL",
                )
                .bind(conversation_id)
                .bind(now)
                .bind($crate::reply_routes::AUTO_REPLY_REASON)
                .execute(&mut *$tx)
                .await?;
                let event = serde_json::json!({ "reason": $crate::reply_routes::AUTO_REPLY_REASON, "route_id": route_id, "payload": payload });
                $crate::insert_event!($tx, now, "conversation.closed", conversation_id, event);
                Some((*route_id, "auto_reply"))
            }
        };
        if let Some((route_id, outcome)) = answered {
            sqlx::query(
                "UPDATE reply_routes SET answered_at = $2, answer_message_id = $3, payload = $4, outcome = $5
                 WHERE id = $1",
            )
            .bind(route_id)
            .bind(now)
            .bind($message_id)
            .bind(&payload)
            .bind(outcome)
            .execute(&mut *$tx)
            .await?;
            if outcome != "recorded" {
                // One answer settles every earlier template of this contact: a later conversation
                // must not be routed by a stale one.
                sqlx::query(
                    "UPDATE reply_routes SET answered_at = $2, outcome = 'superseded'
                     WHERE contact_id = $1 AND answered_at IS NULL AND id < $3",
                )
                .bind($contact_id)
                .bind(now)
                .bind(route_id)
                .execute(&mut *$tx)
                .await?;
            }
        }
    }};
}
pub(crate) use apply_reply_plan;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply_routes::insert_routes_sql;

    fn route(target: &str, actions: Option<&str>) -> OpenRoute {
        OpenRoute {
            id: 7,
            conversation_id: 3,
            target: target.into(),
            queue_id: Some(1),
            agent_id: Some(9),
            fallback_queue_id: Some(2),
            button_actions: actions.map(str::to_owned),
        }
    }

    fn tap(payload: Option<&str>, text: &str) -> ButtonTap {
        ButtonTap {
            payload: payload.map(str::to_owned),
            text: Some(text.to_owned()),
        }
    }

    #[test]
    fn an_ongoing_conversation_reads_no_route() {
        let r = route("queue", None);
        assert_eq!(
            plan_reply(Some("assigned"), Some(&r), false, None),
            ReplyPlan::Usual
        );
        assert_eq!(
            plan_reply(Some("bot"), Some(&r), false, Some(&tap(None, "Sim"))),
            ReplyPlan::Record { route_id: 7 }
        );
    }

    #[test]
    fn routes_by_target() {
        let queued = plan_reply(None, Some(&route("queue", None)), false, None);
        assert_eq!(
            queued,
            ReplyPlan::Queue {
                route_id: 7,
                queue_id: Some(1),
                waiting_agent_id: None,
                outcome: "queued"
            }
        );
        assert!(queued.skips_bot());
        let agent = plan_reply(
            Some(AWAITING_REPLY_STATE),
            Some(&route("agent", None)),
            true,
            None,
        );
        assert_eq!(
            agent,
            ReplyPlan::Queue {
                route_id: 7,
                queue_id: Some(2),
                waiting_agent_id: Some(9),
                outcome: "waiting_agent"
            }
        );
        let fallback = plan_reply(None, Some(&route("agent", None)), false, None);
        assert_eq!(
            fallback,
            ReplyPlan::Queue {
                route_id: 7,
                queue_id: Some(2),
                waiting_agent_id: None,
                outcome: "fallback"
            }
        );
        assert_eq!(
            plan_reply(None, Some(&route("bot", None)), false, None),
            ReplyPlan::Bot { route_id: Some(7) }
        );
        assert_eq!(plan_reply(None, None, false, None), ReplyPlan::Usual);
        assert_eq!(
            plan_reply(Some(AWAITING_REPLY_STATE), None, false, None),
            ReplyPlan::Bot { route_id: None }
        );
    }

    #[test]
    fn quick_reply_actions() {
        let actions = r#"{"Confirmar": {"action": "reply", "text": "Obrigado! Confirmado."},
            "falar com atendente": {"action": "route"}}"#;
        let r = route("queue", Some(actions));
        assert_eq!(
            plan_reply(
                None,
                Some(&r),
                false,
                Some(&tap(Some("Confirmar"), "Confirmar"))
            ),
            ReplyPlan::AutoReply {
                route_id: 7,
                text: "Obrigado! Confirmado.".into()
            }
        );
        // Folded match on the text when the payload is something else.
        assert!(matches!(
            plan_reply(
                None,
                Some(&r),
                false,
                Some(&tap(Some("p-1"), "Falar com Atendente"))
            ),
            ReplyPlan::Queue { .. }
        ));
        assert_eq!(
            button_action(Some(actions), &tap(None, "CONFIRMAR")),
            ButtonAction::Reply {
                text: "Obrigado! Confirmado.".into()
            }
        );
        assert_eq!(
            button_action(Some("not json"), &tap(None, "Confirmar")),
            ButtonAction::Route
        );
        assert_eq!(button_action(None, &tap(None, "x")), ButtonAction::Route);
    }

    #[test]
    fn taps_are_read_from_both_shapes() {
        let button = r#"{"type":"button","button":{"payload":"CONF","text":"Confirmar"}}"#;
        assert_eq!(
            ButtonTap::of_message("button", button),
            Some(tap(Some("CONF"), "Confirmar"))
        );
        let interactive = r#"{"type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b1","title":"Sim"}}}"#;
        assert_eq!(
            ButtonTap::of_message("interactive", interactive),
            Some(tap(Some("b1"), "Sim"))
        );
        assert_eq!(ButtonTap::of_message("text", button), None);
        let list = r#"{"type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"x","title":"X"}}}"#;
        assert_eq!(ButtonTap::of_message("interactive", list), None);
    }

    #[test]
    fn insert_sql_numbers_every_row() {
        let sql = insert_routes_sql(2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12), ($13,"));
        assert!(sql.ends_with("$24)"));
    }
}
