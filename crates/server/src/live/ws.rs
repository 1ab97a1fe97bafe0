//! Live updates for the web app: one authenticated WebSocket per tab.
//!
//! The event log in the database is the source of truth. One [`EventTailer`] per instance reads
//! it in order (woken by this instance's [`Live`] notices, and polling for other instances'
//! writes) and fans each event out, with the conversation's current place (queue, agent), to the
//! sockets, which forward what their user may see. A reconnecting tab passes the last event id it
//! saw and first receives what it missed, read from the log.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::Store;
use store::auth::{Role, User};
use store::events::{ConversationPlace, EventRecord};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::live::Live;
use crate::state::AppState;

/// Catch-up further behind than this gets a `reset` (reload your lists) instead.
const MAX_CATCH_UP: i64 = 5_000;
/// How long a hole in event ids (a transaction that took an id but committed later) may hold
/// back the events after it before the tailer assumes the transaction rolled back.
const GAP_PATIENCE: Duration = Duration::from_secs(1);
/// Other instances' events are seen within this.
const POLL: Duration = Duration::from_millis(100);
/// Read and write buffer of one socket; messages are small JSON.
const SOCKET_BUFFER: usize = 4 * 1024;
/// "typing" lasts this long after the last keystroke notice.
const TYPING_MS: i64 = 4_000;

/// One event of the log as sockets get it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub conversation_id: Option<i64>,
    pub payload: Value,
    #[serde(skip)]
    pub place: Option<ConversationPlace>,
}

/// Who a user is, as far as conversation events go. Mirrors `access::access` for open
/// conversations: an admin sees everything; a supervisor their queues' conversations, the shared
/// line's (no queue, waiting or assigned: not the bot's) and their own; an agent their own, those
/// waiting in their personal line, and those waiting for anyone in their queues or the shared
/// line.
#[derive(Debug, Clone)]
struct Audience {
    user_id: i64,
    role: Role,
    queue_ids: HashSet<i64>,
}

impl Audience {
    fn sees(&self, place: Option<&ConversationPlace>) -> bool {
        let me = Some(self.user_id);
        match (self.role, place) {
            (Role::Admin, _) => true,
            (_, None) => false,
            (Role::Supervisor, Some(p)) => {
                let in_reach = match p.queue_id {
                    Some(q) => self.queue_ids.contains(&q),
                    // `access::in_shared_line` for open conversations; a conversation with the bot
                    // is for admins until it is handed to a queue. A closed one only reaches those
                    // told of it before (the feed's `told`).
                    None => {
                        p.state == store::conversations::QUEUED_STATE
                            || p.state == store::desk::ASSIGNED_STATE
                    }
                };
                in_reach || p.agent_id == me || p.waiting_agent_id == me
            }
            (Role::Agent, Some(p)) => {
                let waiting_for_anyone_here = p.state == store::conversations::QUEUED_STATE
                    && p.waiting_agent_id.is_none()
                    && p.queue_id.is_none_or(|q| self.queue_ids.contains(&q));
                p.agent_id == me || p.waiting_agent_id == me || waiting_for_anyone_here
            }
        }
    }
}

/// One channel per connected user (all their tabs), so an event wakes only the sockets of the
/// people it concerns.
struct Listener {
    audience: Audience,
    tx: broadcast::Sender<Arc<LiveEvent>>,
}

#[derive(Default)]
struct FeedState {
    listeners: HashMap<i64, Listener>,
    /// Per conversation, the users told about it and not yet told it left their reach.
    told: HashMap<i64, HashSet<i64>>,
}

/// The fan-out of the event log to this instance's sockets.
#[derive(Clone, Default)]
pub struct EventFeed {
    state: Arc<Mutex<FeedState>>,
    /// Every event up to this id has been dispatched.
    cursor: Arc<AtomicI64>,
}

impl EventFeed {
    pub fn new() -> EventFeed {
        EventFeed::default()
    }

    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A tab of this user joins; `showing` are the conversations it may display now (a later
    /// move out of the user's reach must still reach it).
    fn subscribe(
        &self,
        audience: Audience,
        showing: &[i64],
    ) -> (broadcast::Receiver<Arc<LiveEvent>>, i64) {
        let mut state = self.lock();
        for id in showing {
            state.told.entry(*id).or_default().insert(audience.user_id);
        }
        let user_id = audience.user_id;
        let listener = state.listeners.entry(user_id).or_insert_with(|| Listener {
            audience: audience.clone(),
            tx: broadcast::channel(1024).0,
        });
        listener.audience = audience;
        // Read under the lock `dispatch` holds: the receiver gets every event after this id.
        (listener.tx.subscribe(), self.cursor())
    }

    /// People changed (deactivated, role, sessions ended): listeners of those who may no longer
    /// watch are dropped (their sockets end); the others get their current role and queues.
    fn set_people(&self, users: &[store::people::DeskUser], with_session: &[i64]) {
        let mut state = self.lock();
        state.listeners.retain(|user_id, listener| {
            let Some(user) = users.iter().find(|u| u.id == *user_id) else {
                return false;
            };
            let Some(role) = Role::parse(&user.role) else {
                return false;
            };
            listener.audience.role = role;
            listener.audience.queue_ids = user.queue_ids.iter().copied().collect();
            user.active && with_session.contains(user_id)
        });
    }

    /// Sends an event to the users who may see it, plus, for a change of the conversation
    /// itself, those who saw it until now (so it leaves their lists).
    fn dispatch(&self, event: Arc<LiveEvent>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        self.cursor.store(event.id, Ordering::Release);
        state.listeners.retain(|_, l| l.tx.receiver_count() > 0);
        let Some(conversation_id) = event.conversation_id else {
            for listener in state.listeners.values() {
                let _ = listener.tx.send(event.clone());
            }
            return;
        };
        let moved = event.kind.starts_with("conversation.");
        let before = state.told.remove(&conversation_id).unwrap_or_default();
        let mut now = HashSet::new();
        for (user_id, listener) in &state.listeners {
            if listener.audience.sees(event.place.as_ref()) {
                now.insert(*user_id);
                let _ = listener.tx.send(event.clone());
            } else if before.contains(user_id) {
                if moved {
                    let _ = listener.tx.send(event.clone());
                } else {
                    now.insert(*user_id);
                }
            }
        }
        // After the close itself nobody needs telling again (the place read for a batch may
        // already say closed for the events before the close: those keep the list).
        let closed = event.kind == "conversation.closed";
        if !now.is_empty() && !closed {
            state.told.insert(conversation_id, now);
        }
    }
}

/// Reads the event log in id order and broadcasts it.
pub struct EventTailer {
    pub store: Store,
    pub live: Live,
    pub feed: EventFeed,
    /// Woken when an event may let routing assign something.
    pub desk_wake: Arc<Notify>,
}

impl EventTailer {
    pub async fn start(self, shutdown: CancellationToken) {
        let mut notices = self.live.subscribe();
        let mut cursor = match self.store.latest_event_id().await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log; live updates are off");
                return;
            }
        };
        self.feed.cursor.store(cursor, Ordering::Release);
        let mut gap_since: Option<tokio::time::Instant> = None;
        loop {
            let mut more = false;
            match self.store.events_after(cursor, 1000).await {
                Ok(events) => {
                    let full = events.len() == 1000;
                    let (delivered, held_back) = self.deliver(events, cursor, &mut gap_since).await;
                    cursor = delivered;
                    self.feed.cursor.store(cursor, Ordering::Release);
                    more = full && !held_back;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the event log"),
            }
            if more {
                continue;
            }
            tokio::select! {
                r = notices.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = r { return; }
                }
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Broadcasts the events that follow `cursor` without a hole; returns the new cursor and
    /// whether a hole is holding events back.
    async fn deliver(
        &self,
        events: Vec<EventRecord>,
        mut cursor: i64,
        gap_since: &mut Option<tokio::time::Instant>,
    ) -> (i64, bool) {
        let ids: Vec<i64> = events.iter().filter_map(|e| e.conversation_id).collect();
        let places = match self.store.conversation_places(&ids).await {
            Ok(places) => places,
            Err(e) => {
                // Without places nobody could be told; try the same events again shortly.
                tracing::warn!(error = %e, "cannot read conversation places");
                return (cursor, true);
            }
        };
        let mut wake_routing = false;
        for event in events {
            if event.id != cursor + 1 {
                let since = gap_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() < GAP_PATIENCE {
                    self.finish(wake_routing);
                    return (cursor, true);
                }
            }
            *gap_since = None;
            cursor = event.id;
            wake_routing |= frees_or_adds_work(&event.kind);
            if event.kind == "queue.changed" || event.kind == "user.changed" {
                match (
                    self.store.desk_users().await,
                    self.store.users_with_sessions().await,
                ) {
                    (Ok(users), Ok(sessions)) => self.feed.set_people(&users, &sessions),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "cannot reload people for live updates")
                    }
                }
            }
            self.feed.dispatch(Arc::new(to_live(event, &places)));
        }
        self.finish(wake_routing);
        (cursor, false)
    }

    fn finish(&self, wake_routing: bool) {
        if wake_routing {
            self.desk_wake.notify_one();
        }
    }
}

fn to_live(e: EventRecord, places: &HashMap<i64, ConversationPlace>) -> LiveEvent {
    LiveEvent {
        id: e.id,
        at: e.at,
        place: e.conversation_id.and_then(|id| places.get(&id).cloned()),
        kind: e.kind,
        conversation_id: e.conversation_id,
        payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
    }
}

/// Events after which routing may have something to assign.
fn frees_or_adds_work(kind: &str) -> bool {
    matches!(
        kind,
        "conversation.opened"
            | "conversation.queued"
            | "conversation.closed"
            | "conversation.transferred"
            | "presence.changed"
            | "queue.changed"
    )
}

/// Who is looking at which conversation and who is typing, on this instance.
#[derive(Clone)]
pub struct Viewers {
    inner: Arc<Mutex<HashMap<i64, HashMap<u64, Viewer>>>>,
    /// (conversation id, the `viewers` message for it)
    tx: broadcast::Sender<(i64, Value)>,
}

impl Default for Viewers {
    fn default() -> Self {
        Viewers {
            inner: Default::default(),
            tx: broadcast::channel(1024).0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Viewer {
    user_id: i64,
    name: String,
    #[serde(skip)]
    typing_until: i64,
}

impl Viewers {
    fn set(&self, socket: u64, conversation_id: Option<i64>, user: &User) {
        let mut changed = Vec::new();
        {
            let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            for (conversation, viewers) in map.iter_mut() {
                if Some(*conversation) != conversation_id && viewers.remove(&socket).is_some() {
                    changed.push(*conversation);
                }
            }
            map.retain(|_, v| !v.is_empty());
            if let Some(id) = conversation_id
                && let std::collections::hash_map::Entry::Vacant(slot) =
                    map.entry(id).or_default().entry(socket)
            {
                slot.insert(Viewer {
                    user_id: user.id,
                    name: user.name.clone(),
                    typing_until: 0,
                });
                changed.push(id);
            }
        }
        for id in changed {
            self.announce(id);
        }
    }

    fn typing(&self, socket: u64, conversation_id: i64) {
        {
            let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(viewer) = map
                .get_mut(&conversation_id)
                .and_then(|v| v.get_mut(&socket))
            else {
                return;
            };
            viewer.typing_until = store::now_ms() + TYPING_MS;
        }
        self.announce(conversation_id);
    }

    fn announce(&self, conversation_id: i64) {
        let now = store::now_ms();
        let list: Vec<Value> = {
            let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&conversation_id)
                .map(|v| {
                    v.values()
                        .map(|x| json!({ "user_id": x.user_id, "name": x.name, "typing": x.typing_until > now }))
                        .collect()
                })
                .unwrap_or_default()
        };
        let message =
            json!({ "type": "viewers", "conversation_id": conversation_id, "viewers": list });
        let _ = self.tx.send((conversation_id, message));
    }
}

#[derive(Deserialize)]
pub struct WsQuery {
    since: Option<i64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    View { conversation_id: Option<i64> },
    Typing { conversation_id: i64 },
    Ping,
}

/// `GET /api/ws?since=ID`.
pub async fn connect(
    State(app): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Principal::User(user) = who else {
        return Err(ApiError::Forbidden(
            "the live socket is for people signed in to the web app".into(),
        ));
    };
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden("cross-origin WebSocket refused".into()));
    }
    // Small buffers: tungstenite's defaults (128 KiB, zeroed before each read) cost a thousand
    // idle tabs 150 MB and most of the CPU under load (see docs/performance.md, `desk`).
    let upgrade = upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER);
    let session_hash = crate::http::auth::session_token_hash(&headers);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let session = Session::new(app, user, session_hash, q.since).await;
        if let Ok(session) = session {
            session.run(socket).await;
        }
    }))
}

/// A browser's `Origin` must name the host it connects to (a page of another site must not ride
/// the session cookie). Clients without `Origin` (not browsers) are let through.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

static NEXT_SOCKET: AtomicI64 = AtomicI64::new(1);

struct Session {
    app: AppState,
    user: User,
    /// The browser session the socket was opened with: when it ends (logout, password change),
    /// the socket ends too.
    session_hash: Option<String>,
    socket_id: u64,
    since: Option<i64>,
    audience: Audience,
    /// Conversations the tab may be showing: during a catch-up, the event that moved one out of
    /// the user's reach still reaches the tab (and the conversation leaves its list).
    known: HashSet<i64>,
    viewing: Option<i64>,
}

impl Session {
    async fn new(
        app: AppState,
        user: User,
        session_hash: Option<String>,
        since: Option<i64>,
    ) -> ApiResult<Session> {
        let queue_ids = app
            .store
            .user_queue_ids(user.id)
            .await?
            .into_iter()
            .collect();
        // What the tab may be showing now: a later move out of reach must still reach it.
        let viewer = match user.role {
            Role::Admin => store::desk_records::Viewer::Everything,
            Role::Supervisor => store::desk_records::Viewer::Supervisor(user.id),
            Role::Agent => store::desk_records::Viewer::Agent(user.id),
        };
        let known = app
            .store
            .desk_conversations(store::desk_records::ConversationQuery {
                viewer,
                me: user.id,
                scope: store::desk_records::Scope::All,
                open_only: true,
                limit: 1000,
            })
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        Ok(Session {
            socket_id: NEXT_SOCKET.fetch_add(1, Ordering::Relaxed).unsigned_abs(),
            audience: Audience {
                user_id: user.id,
                role: user.role,
                queue_ids,
            },
            app,
            user,
            session_hash,
            since,
            known,
            viewing: None,
        })
    }

    async fn run(mut self, mut socket: WebSocket) {
        let app = self.app.clone();
        app.sockets.opened(self.user.id);
        let _ = app.store.touch_sockets(&[self.user.id]).await;
        if let Err(e) = self.serve(&mut socket).await {
            tracing::debug!(user_id = self.user.id, error = %e, "socket ended");
        }
        app.viewers.set(self.socket_id, None, &self.user);
        let _ = app.store.touch_sockets(&[self.user.id]).await;
        app.sockets.closed(self.user.id);
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> anyhow::Result<()> {
        // Subscribe before reading the log so nothing falls between catch-up and live.
        let showing: Vec<i64> = self.known.iter().copied().collect();
        let (mut events, mut sent) = self.app.feed.subscribe(self.audience.clone(), &showing);
        let mut viewers = self.app.viewers.tx.subscribe();
        send(socket, json!({ "type": "hello", "last_event_id": sent })).await?;
        if let Some(since) = self.since {
            sent = self.catch_up(socket, since, sent).await?;
        }
        let shutdown = self.app.shutdown.clone();
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) if event.id > sent => {
                        // The feed sends only what this user may see.
                        sent = event.id;
                        if self.concerns_me(&event) && !self.session_alive().await? {
                            send(socket, json!({ "type": "session_ended" })).await?;
                            return Ok(());
                        }
                        send_event(socket, &event).await?;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        send(socket, json!({ "type": "reset" })).await?;
                        sent = self.app.feed.cursor();
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                update = viewers.recv() => {
                    if let Ok((conversation_id, message)) = update
                        && Some(conversation_id) == self.viewing
                    {
                        send(socket, message).await?;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_client(socket, text.as_str()).await?,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    fn concerns_me(&self, event: &LiveEvent) -> bool {
        event.kind == "user.changed" && event.payload["user_id"].as_i64() == Some(self.user.id)
    }

    /// Whether the browser session behind this socket still exists.
    async fn session_alive(&self) -> anyhow::Result<bool> {
        let Some(hash) = &self.session_hash else {
            return Ok(false);
        };
        Ok(self.app.store.session_user(hash).await?.is_some())
    }

    /// Sends what happened after `since` up to `upto` (where the live feed takes over).
    async fn catch_up(
        &mut self,
        socket: &mut WebSocket,
        since: i64,
        upto: i64,
    ) -> anyhow::Result<i64> {
        if upto - since > MAX_CATCH_UP || since > upto {
            send(socket, json!({ "type": "reset" })).await?;
            return Ok(upto);
        }
        let mut cursor = since;
        while cursor < upto {
            let batch = self.app.store.events_after(cursor, 500).await?;
            let batch: Vec<EventRecord> = batch.into_iter().filter(|e| e.id <= upto).collect();
            let Some(last) = batch.last().map(|e| e.id) else {
                break;
            };
            let ids: Vec<i64> = batch.iter().filter_map(|e| e.conversation_id).collect();
            let places = self.app.store.conversation_places(&ids).await?;
            for event in batch {
                let event = to_live(event, &places);
                if self.may_see(&event) {
                    send_event(socket, &event).await?;
                }
            }
            cursor = last;
        }
        Ok(upto)
    }

    /// For the catch-up, read from the log: what the user sees now, and the moves of the
    /// conversations the tab may be showing.
    fn may_see(&mut self, event: &LiveEvent) -> bool {
        let Some(conversation_id) = event.conversation_id else {
            return true;
        };
        if self.audience.sees(event.place.as_ref()) {
            self.known.insert(conversation_id);
            return true;
        }
        event.kind.starts_with("conversation.") && self.known.remove(&conversation_id)
    }

    async fn on_client(&mut self, socket: &mut WebSocket, text: &str) -> anyhow::Result<()> {
        let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
            return send(
                socket,
                json!({ "type": "error", "message": "unknown message" }),
            )
            .await;
        };
        match message {
            ClientMessage::Ping => send(socket, json!({ "type": "pong" })).await,
            ClientMessage::View { conversation_id } => {
                let allowed = match conversation_id {
                    None => true,
                    Some(id) => {
                        let who = Principal::User(self.user.clone());
                        crate::access::visible_conversation(&self.app, &who, id)
                            .await
                            .is_ok()
                    }
                };
                if allowed {
                    self.known.extend(conversation_id);
                    self.viewing = conversation_id;
                    self.app
                        .viewers
                        .set(self.socket_id, conversation_id, &self.user);
                }
                Ok(())
            }
            ClientMessage::Typing { conversation_id } => {
                if self.viewing == Some(conversation_id) {
                    self.app.viewers.typing(self.socket_id, conversation_id);
                }
                Ok(())
            }
        }
    }
}

async fn send_event(socket: &mut WebSocket, event: &LiveEvent) -> anyhow::Result<()> {
    let mut message = serde_json::to_value(event)?;
    message["type"] = "event".into();
    send(socket, message).await
}

async fn send(socket: &mut WebSocket, message: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::get;
    axum::Router::new().route("/ws", get(connect))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_pages_of_this_host_may_open_the_socket() {
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(same_origin(&headers(
            Some("https://atende.example.com"),
            "atende.example.com"
        )));
        assert!(same_origin(&headers(None, "127.0.0.1:8080")));
        assert!(!same_origin(&headers(
            Some("http://evil.example"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(
            Some("http://127.0.0.1:9999"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8080")));
    }

    #[test]
    fn routing_wakes_only_for_events_that_change_capacity_or_demand() {
        assert!(frees_or_adds_work("conversation.closed"));
        assert!(frees_or_adds_work("presence.changed"));
        assert!(!frees_or_adds_work("message.created"));
        assert!(!frees_or_adds_work("message.status"));
    }
}
