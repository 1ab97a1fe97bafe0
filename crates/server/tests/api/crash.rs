//! Crash safety of the webhook inbox, with the real binary: webhooks pour in from several
//! customers at once, the process is SIGKILLed mid-stream, and after a restart every webhook that
//! was answered 200 is a message exactly once, and nothing is stored twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use graph_sim::{Customer, WebhookBuilder};
use store::Store;

use crate::cli::{Install, post_webhook};
use crate::helpers::{Backend, wait_until};

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const APP_SECRET: &str = "crash-app-secret";
/// Concurrent senders, one customer each.
const SENDERS: usize = 8;
/// Acknowledged webhooks before the kill.
const ACKED_BEFORE_KILL: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_sigkill_exactly_once_sqlite() {
    if let Some(install) = Install::new(Backend::Sqlite).await {
        acknowledged_webhooks_survive_sigkill_exactly_once(install, Backend::Sqlite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_sigkill_exactly_once_postgres() {
    if let Some(install) = Install::new(Backend::Postgres).await {
        acknowledged_webhooks_survive_sigkill_exactly_once(install, Backend::Postgres).await;
    }
}

/// What one webhook POST came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered 200: it must be stored, exactly once.
    Acked,
    /// The request failed (the kill): it may or may not be stored, but at most once.
    Unknown,
}

async fn acknowledged_webhooks_survive_sigkill_exactly_once(install: Install, backend: Backend) {
    install
        .ok(
            &[
                "channel",
                "add",
                "--name",
                "Crash",
                "--phone-number-id",
                PNID,
                "--waba-id",
                WABA,
                "--graph-base-url",
                "http://127.0.0.1:9/v23.0",
            ],
            &format!("crash-access-token\n{APP_SECRET}\ncrash-verify\n"),
        )
        .await;
    let token = install
        .ok(&["token", "create", "--name", "crash"], "")
        .await
        .trim()
        .to_owned();
    let server = install.serve().await;

    let acked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let (http, url, acked) = (server.http.clone(), server.webhook_url(), acked.clone());
        senders.push(tokio::spawn(async move {
            let builder = WebhookBuilder::new(WABA, PNID, "5511900000000");
            let customer = Customer::new(
                format!("5511{:09}", 900_000_000 + i),
                format!("Cliente {i}"),
            );
            let mut outcomes = Vec::new();
            for n in 0.. {
                let (wamid, payload) =
                    builder.text(&customer, &format!("mensagem {n} do cliente {i}"));
                let body = graph_sim::to_meta_json(&payload);
                match post_webhook(&http, &url, &body, APP_SECRET).await {
                    Ok(resp) if resp.status() == 200 => {
                        outcomes.push((wamid, Outcome::Acked));
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        panic!(
                            "webhook answered {status}: {}",
                            resp.text().await.unwrap_or_default()
                        );
                    }
                    // The server is gone: this one is in doubt, and the sender stops.
                    Err(_) => {
                        outcomes.push((wamid, Outcome::Unknown));
                        return outcomes;
                    }
                }
            }
            unreachable!()
        }));
    }

    wait_until(
        "webhooks to be acknowledged",
        Duration::from_secs(60),
        || async { acked.load(Ordering::SeqCst) >= ACKED_BEFORE_KILL },
    )
    .await;
    // Requests are in flight: every sender is mid-loop.
    server.kill().await;
    let mut outcomes: HashMap<String, Outcome> = HashMap::new();
    for sender in senders {
        for (wamid, outcome) in sender.await.expect("sender") {
            assert!(
                outcomes.insert(wamid, outcome).is_none(),
                "wamids are unique"
            );
        }
    }
    let acked: HashSet<&str> = outcomes
        .iter()
        .filter(|(_, o)| **o == Outcome::Acked)
        .map(|(w, _)| w.as_str())
        .collect();
    assert!(
        acked.len() >= ACKED_BEFORE_KILL,
        "{} acknowledged",
        acked.len()
    );
    assert_eq!(
        outcomes.len() - acked.len(),
        SENDERS,
        "each sender ends on one request in doubt"
    );

    // Every acknowledged body is in the inbox, and the kill left work for the restart.
    let store = Store::connect(&install.database_url)
        .await
        .expect("open the database");
    let (pending_at_kill, done_at_kill, _) = store.inbox_counts().await.expect("inbox counts");
    assert!(
        (pending_at_kill + done_at_kill) as usize >= acked.len(),
        "{pending_at_kill} pending + {done_at_kill} done < {} acknowledged",
        acked.len()
    );

    // Restart on the same data and wait (bounded) until the inbox is drained: every acknowledged
    // message visible through the API, and nothing left pending.
    let server = install.serve().await;
    let restarted = Instant::now();
    wait_until(
        "the restarted server to drain the inbox",
        Duration::from_secs(60),
        || async {
            let (_, messages) = server.all_messages(&token).await;
            let seen: HashSet<&str> = messages
                .iter()
                .filter_map(|m| m["wamid"].as_str())
                .collect();
            acked.iter().all(|w| seen.contains(w))
                && store
                    .inbox_counts()
                    .await
                    .is_ok_and(|(pending, _, _)| pending == 0)
        },
    )
    .await;
    let drained_after = restarted.elapsed();

    let (conversations, messages) = server.all_messages(&token).await;
    let mut stored: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        let wamid = m["wamid"]
            .as_str()
            .unwrap_or_else(|| panic!("inbound message without wamid: {m}"));
        *stored.entry(wamid).or_default() += 1;
    }
    for wamid in &acked {
        assert_eq!(
            stored.get(wamid),
            Some(&1),
            "acknowledged {wamid} must be stored exactly once"
        );
    }
    for (wamid, count) in &stored {
        assert_eq!(*count, 1, "{wamid} stored {count} times");
        assert!(outcomes.contains_key(*wamid), "{wamid} was never sent");
    }
    let mut contacts = HashSet::new();
    for c in &conversations {
        assert!(
            contacts.insert(c["contact_wa_id"].to_string()),
            "two conversations for one contact: {c}"
        );
    }
    assert_eq!(conversations.len(), SENDERS);
    let (pending, done, dead) = store.inbox_counts().await.expect("inbox counts");
    assert_eq!(
        (pending, dead),
        (0, 0),
        "no body is pending or unreadable after the crash"
    );
    assert_eq!(done as usize, stored.len(), "one stored body per message");
    store.close().await;

    let in_doubt_stored = stored.len() - acked.len();
    eprintln!(
        "crash test on {backend:?}: {} acknowledged before SIGKILL, {} in doubt of which {in_doubt_stored} \
         stored; {pending_at_kill} pending at the kill, drained {drained_after:.1?} after restart",
        acked.len(),
        SENDERS,
    );
}
