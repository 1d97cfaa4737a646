//! The BMC Hub: an actix-web server whose features arrive as native modules.
//!
//! `serve` is the whole hub; `main.rs` and the tests both call it. The map of the code is in
//! `docs/architecture.md`.

pub mod api;
pub mod config;
mod dispatch;
pub mod error;
pub mod hub;
pub mod instance;
mod loader;
pub mod logging;
pub mod manifest;
pub mod names;
mod openapi;
pub mod registry;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::api::AdminToken;
use crate::config::Config;
use crate::hub::Hub;

/// Run the hub until SIGINT/SIGTERM, then run module shutdown hooks and return.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let hub = Hub::new(config.clone()).with_context(|| {
        format!(
            "cannot create the hub's private folder for library copies in {} (HUB_RUNTIME_DIR)",
            config
                .runtime_dir
                .as_deref()
                .unwrap_or(&std::env::temp_dir())
                .display()
        )
    })?;
    let token = match &config.admin_token {
        Some(token) => token.clone(),
        None => {
            let token = random_token()?;
            tracing::warn!("HUB_ADMIN_TOKEN is not set; the admin token of this run is {token}");
            token
        }
    };
    hub.discover().await;
    let data = web::Data::from(hub.clone());
    let token = web::Data::new(AdminToken::new(&token));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(token.clone())
            .configure(api::configure)
            // GET only: other methods on .../health fall through to the module's own routes.
            .service(
                web::resource("/api/v1/{module}/health")
                    .guard(actix_web::guard::Get())
                    .to(dispatch::module_health),
            )
            .service(
                web::resource(["/api/v1/{module}", "/api/v1/{module}/{tail:.*}"])
                    .to(dispatch::module_api),
            )
            .default_service(web::to(api::not_found))
    })
    .shutdown_timeout(config.shutdown_grace.as_secs().max(1));
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let server = server
        .bind(config.bind)
        .with_context(|| format!("cannot listen on HUB_BIND={}", config.bind))?;
    for addr in server.addrs() {
        tracing::info!("listening on http://{addr}");
    }
    server
        .run()
        .await
        .context("the HTTP server stopped with an error")?;
    tracing::info!("stopping: running module shutdown hooks");
    hub.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// 32 random bytes as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot generate an admin token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
