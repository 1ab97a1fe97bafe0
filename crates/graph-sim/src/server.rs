//! The accept loop.
//!
//! `axum::serve` gives handlers no way to abandon their connection, and
//! [`crate::Fault::DropConnection`] needs exactly that to look like a network
//! failure (no status line at all) to the client. So each connection is
//! served here with hyper directly, racing a per-connection kill switch that
//! handlers find in the request extensions.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Present in requests served by our own accept loop; absent when the router
/// is embedded in someone else's server.
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

impl ConnKill {
    pub(crate) fn kill(&self) {
        // notify_one stores a permit if the connection task is not polling
        // yet, so the kill cannot be lost.
        self.0.notify_one();
    }
}

pub(crate) fn spawn_accept_loop(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone()));
                }
                Err(e) => {
                    // Typically EMFILE under a load test; spinning would only
                    // make it worse.
                    tracing::warn!(error = %e, "graph-sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
}

async fn serve_connection(stream: TcpStream, router: Router) {
    // Small JSON answers must not wait for Nagle.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "graph-sim: set_nodelay failed");
    }
    let notify = Arc::new(Notify::new());
    let kill = ConnKill(notify.clone());
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(kill.clone());
        router.clone().oneshot(req.map(Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::trace!(error = %e, "graph-sim: connection ended with error");
            }
        }
        () = notify.notified() => {
            // Dropping the connection future closes the socket unanswered.
        }
    }
}
