//! The BMC Hub: an actix-web server whose features arrive as native modules.
//!
//! `serve` is the whole hub; `main.rs` and the tests both call it. The map of the code is in
//! `docs/architecture.md`.

pub mod api;
pub mod config;
pub mod db;
pub mod deps;
mod dispatch;
pub mod error;
pub mod hub;
pub mod instance;
pub mod loader;
pub mod logging;
pub mod manifest;
pub mod names;
mod openapi;
pub mod registry;
mod signals;
mod views;
mod watcher;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::api::AdminToken;
use crate::config::Config;
use crate::hub::Hub;

/// Run the hub until SIGINT/SIGTERM, then run module shutdown hooks and return.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let hub = Hub::new(config.clone())?;
    let token = match &config.admin_token {
        Some(token) => token.clone(),
        None => {
            let token = random_token()?;
            tracing::warn!("HUB_ADMIN_TOKEN is not set; the admin token of this run is {token}");
            token
        }
    };
    hub.prepare_database().await;
    hub.discover().await;
    tracing::info!("{}", startup_report(&hub));
    actix_web::rt::spawn(hub.clone().watch_database());
    // Kept until the server stops: dropping it stops watching.
    let _watch = if config.auto_reload && config.modules_enabled {
        match watcher::start(hub.clone()) {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} ({e}): changes apply only through POST /api/v1/modules/{{name}}/reload",
                    config.modules_dir.display()
                );
                None
            }
        }
    } else {
        tracing::info!(
            "MODULES_AUTO_RELOAD=false: file changes apply only through POST /api/v1/modules/{{name}}/reload"
        );
        None
    };
    let signals = signals::Signals::new().context("cannot listen for SIGTERM/SIGINT")?;
    let data = web::Data::from(hub.clone());
    let token = web::Data::new(AdminToken::new(&token));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(token.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                crate::error::ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("invalid query string: {e}"),
                )
                .into()
            }))
            .configure(api::configure)
            // Everything else: module routes, matched by the dispatcher without regexes.
            .default_service(web::to(dispatch::catch_all))
    })
    // Signals are handled below: actix would stop at once on SIGINT.
    .disable_signals()
    .shutdown_timeout(config.shutdown_grace.as_millis().div_ceil(1000).max(1) as u64);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let server = server
        .bind(config.bind)
        .with_context(|| format!("cannot listen on HUB_BIND={}", config.bind))?;
    for addr in server.addrs() {
        tracing::info!("listening on http://{addr}");
    }
    let server = server.run();
    actix_web::rt::spawn(signals.stop_on_signal(server.handle(), config.shutdown_grace));
    server
        .await
        .context("the HTTP server stopped with an error")?;
    tracing::info!("requests finished; running module shutdown hooks");
    hub.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The table of modules printed once discovery is done: name, version, state, error in one line.
fn startup_report(hub: &Hub) -> String {
    let dir = hub.config().modules_dir.display();
    if !hub.config().modules_enabled {
        return "module system is off (MODULES_ENABLED=false)".to_owned();
    }
    let all = hub.registry().all();
    if all.is_empty() {
        return format!("no modules in {dir}");
    }
    let rows: Vec<[String; 4]> = all
        .values()
        .map(|e| {
            let version = e
                .manifest
                .as_ref()
                .map_or("-".to_owned(), |m| m.version.clone());
            let state = serde_json::to_value(e.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let error = e.error.as_deref().unwrap_or_default();
            let mut error = error.lines().next().unwrap_or_default().to_owned();
            if error.chars().count() > 160 {
                error = format!("{}…", error.chars().take(159).collect::<String>());
            }
            [e.name.clone(), version, state, error]
        })
        .collect();
    let header = ["MODULE", "VERSION", "STATE", "ERROR"].map(str::to_owned);
    let width = |i: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |r: &[String; 4]| {
        format!(
            "  {:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_owned()
    };
    let mut out = format!("modules in {dir}:\n{}", line(&header));
    for row in &rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

/// 32 random bytes as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot generate an admin token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
