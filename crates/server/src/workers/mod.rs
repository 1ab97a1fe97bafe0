//! Background work: each worker runs on its own, driven by the in-process bus (`live::Live`)
//! and by sweeps of the database, so that nothing depends on one instance or one wake-up.
//!
//! - `inbox`: the webhook writer (group commit) and the processor that applies stored webhooks;
//! - `outbound`: enqueueing outbound messages and the sender workers (rate limit, order, retries);
//! - `media_download`: inbound files fetched from Meta;
//! - `bot`: the flow interpreter's worker;
//! - `broadcasts`: broadcasts' recipients into the outbox's bulk lane, their limits and stops;
//! - `routing`: the desk worker (waiting conversations to agents, messages to the waiting);
//! - `schedules`: scheduled messages fired once, and unanswered templates closed at expiry.

pub mod bot;
pub mod broadcasts;
pub mod inbox;
pub mod media_download;
pub mod outbound;
pub mod routing;
pub mod schedules;
pub mod template_sync;
