//! Graceful shutdown on SIGTERM or SIGINT: the first runs the stop the caller gives (the HTTP
//! server stops accepting connections and lets requests in flight finish, bounded by
//! `HUB_SHUTDOWN_GRACE_MS`); a second exits at once.

use std::future::Future;
use std::time::Duration;

#[cfg(unix)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Start listening now, so that a signal sent right after start-up is not missed.
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT: its name and number.
    async fn next(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.term.recv() => ("SIGTERM", 15),
            _ = self.int.recv() => ("SIGINT", 2),
        }
    }
}

#[cfg(not(unix))]
pub struct Signals;

#[cfg(not(unix))]
impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> (&'static str, i32) {
        let _ = tokio::signal::ctrl_c().await;
        ("Ctrl-C", 2)
    }
}

impl Signals {
    /// On the first signal, spawn `stop` (a graceful stop); on a second, exit the process at once.
    pub async fn stop_on_signal<F>(mut self, stop: F, grace: Duration)
    where
        F: Future<Output = ()> + 'static,
    {
        let (name, _) = self.next().await;
        tracing::info!(
            "{name} received: no new connections; requests in flight have {} ms (send it again to exit at once)",
            grace.as_millis()
        );
        tokio::task::spawn_local(stop);
        let (name, number) = self.next().await;
        tracing::warn!("{name} received again: exiting at once");
        std::process::exit(128 + number);
    }
}
