//! Pure contact-center rules; knows nothing of HTTP or SQL. Everything here is a
//! deterministic function of its arguments (clocks, randomness and persisted state
//! are passed in by the caller), so the server, the store and the tests can share
//! the same rules for Brazilian documents (CPF/CNPJ), SAC protocol numbers, the
//! WhatsApp 24 h service window, delivery statuses, retry backoff, rate limiting,
//! agent routing, text matching and the bot flow interpreter.

pub mod backoff;
pub mod document;
pub mod flow;
pub mod optout;
pub mod permissions;
pub mod phone;
pub mod protocol;
pub mod rate;
pub mod routing;
pub mod status;
pub mod template;
pub mod text;
pub mod throttle;
pub mod window;
