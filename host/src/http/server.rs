//! The HTTP server and the hub's run from start to stop: make the hub, reach the database,
//! discover modules, start the watcher, serve until SIGINT/SIGTERM, then run the modules'
//! shutdown hooks.

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use super::error::ApiError;
use crate::config::Config;
use crate::lifecycle::Hub;
use crate::signals::Signals;
use crate::{status, watcher};

/// Run the hub on a runtime of its own until it stops.
pub fn run(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(serve(config))
}

/// Run the hub until SIGINT/SIGTERM, then run module shutdown hooks and return.
async fn serve(config: Config) -> anyhow::Result<()> {
    let token = match &config.admin_token {
        Some(token) => token.clone(),
        None => {
            let token = crate::identity::random_admin_token()?;
            tracing::warn!("HUB_ADMIN_TOKEN is not set; the admin token of this run is {token}");
            token
        }
    };
    if config.allow_unsigned_packages {
        tracing::warn!(
            "HUB_ALLOW_UNSIGNED_PACKAGES=true: this hub installs module packages nobody signed; for development only"
        );
    }
    let hub = Hub::new(config.clone(), &token)?;
    super::calls::install(&hub);
    if hub.prepare_database().await
        && let Err(e) = hub.identity().refresh(true).await
    {
        tracing::warn!("cannot read users and tokens yet: {e}");
    }
    actix_web::rt::spawn(hub.identity().clone().tick(config.audit_retention_days));
    // Before the modules start: their routes' series are made with their route tables.
    if config.metrics_bind.is_some() || config.usage {
        let (pool, states) = (
            std::sync::Arc::downgrade(&hub),
            std::sync::Arc::downgrade(&hub),
        );
        crate::metrics::init(
            crate::metrics::Probes {
                pool: Box::new(move || pool.upgrade()?.database().pool_status()),
                states: Box::new(move || {
                    let counts = states
                        .upgrade()
                        .map(|hub| {
                            let all = hub.registry().all();
                            let count =
                                |state| all.values().filter(|e| e.kind() == state).count() as i64;
                            [
                                count(crate::registry::State::Running),
                                count(crate::registry::State::Disabled),
                                count(crate::registry::State::Failed),
                            ]
                        })
                        .unwrap_or_default();
                    [
                        ("running", counts[0]),
                        ("disabled", counts[1]),
                        ("failed", counts[2]),
                    ]
                }),
            },
            config.usage,
        );
    }
    if config.usage {
        actix_web::rt::spawn(crate::usage::run(
            hub.database_handle(),
            config.usage_flush,
            config.usage_retention_days,
        ));
    }
    hub.discover().await;
    crate::fleet::join(hub.clone()).await;
    if config.modules_enabled {
        let report = status::startup_report(&config.modules_dir, &hub.registry().all());
        tracing::info!("{report}");
    } else {
        tracing::info!("module system is off (MODULES_ENABLED=false)");
    }
    actix_web::rt::spawn(hub.clone().watch_database());
    actix_web::rt::spawn(crate::jobs::run(hub.clone()));
    actix_web::rt::spawn(crate::fleet::run(hub.clone()));
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
    let signals = Signals::new().context("cannot listen for SIGTERM/SIGINT")?;
    let data = web::Data::from(hub.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::FormConfig::default().error_handler(|e, _| {
                ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "bad_form",
                    format!("the form is invalid: {e}"),
                )
                .into()
            }))
            // curl -d sends a form's content type; the body is what counts.
            .app_data(
                web::JsonConfig::default()
                    .content_type_required(false)
                    .error_handler(|e, _| {
                        ApiError::new(
                            actix_web::http::StatusCode::BAD_REQUEST,
                            "invalid_json",
                            format!("request body is not the expected JSON: {e}"),
                        )
                        .into()
                    }),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "bad_parameter",
                    format!("invalid path parameter: {e}"),
                )
                .into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("invalid query string: {e}"),
                )
                .into()
            }))
            // Every request gets its id first: answered in a header, in every log line and audit
            // row made while it is answered.
            .wrap_fn(|req, srv| {
                let id = super::request_id::of(req.headers());
                let header = super::request_id::value(&id);
                let answer = actix_web::dev::Service::call(srv, req);
                crate::logging::with_request_id(id, async move {
                    let mut response = answer.await?;
                    if let Some(value) = header {
                        response
                            .headers_mut()
                            .insert(super::request_id::HEADER, value);
                    }
                    Ok(response)
                })
            })
            .configure(super::configure)
            // Everything else: module routes, matched by the dispatcher without regexes.
            .default_service(actix_web::dev::fn_service(super::dispatch::service))
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
    if let Some(addr) = server.addrs().first() {
        // The fleet names each hub by where it listens (behind a load balancer every hub has
        // the same HUB_PUBLIC_URL); with HUB_BIND's port 0, the port the system chose.
        crate::fleet::listening_on(*addr);
    }
    for addr in server.addrs() {
        tracing::info!("listening on http://{addr}");
    }
    let server = server.run();
    let handle = server.handle();
    let metrics_handle = match config.metrics_bind {
        Some(addr) => Some(metrics_server(addr)?),
        None => None,
    };
    actix_web::rt::spawn(signals.stop_on_signal(
        async move {
            if let Some(metrics) = metrics_handle {
                metrics.stop(true).await;
            }
            handle.stop(true).await
        },
        config.shutdown_grace,
    ));
    server
        .await
        .context("the HTTP server stopped with an error")?;
    if config.usage
        && let Err(e) = crate::usage::flush(hub.database()).await
    {
        tracing::warn!("usage analytics: the last counts could not be written: {e}");
    }
    tracing::info!("requests finished; running module shutdown hooks");
    hub.shutdown().await;
    crate::fleet::stopped(&hub).await;
    tracing::info!("stopped");
    Ok(())
}

/// The Prometheus listener: `GET /metrics` on `addr`, one worker, nothing else.
fn metrics_server(addr: std::net::SocketAddr) -> anyhow::Result<actix_web::dev::ServerHandle> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/metrics", web::get().to(metrics_page))
            .default_service(web::to(|| async {
                actix_web::HttpResponse::NotFound()
                    .content_type("text/plain; charset=utf-8")
                    .body("this listener serves GET /metrics only\n")
            }))
    })
    .disable_signals()
    .workers(1)
    .bind(addr)
    .with_context(|| format!("cannot listen on HUB_METRICS_BIND={addr}"))?;
    for addr in server.addrs() {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(handle)
}

async fn metrics_page() -> actix_web::HttpResponse {
    match crate::metrics::get().map(crate::metrics::Metrics::encode) {
        Some(Ok(text)) => actix_web::HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Some(Err(e)) => actix_web::HttpResponse::InternalServerError()
            .body(format!("cannot encode the metrics: {e}")),
        None => actix_web::HttpResponse::NotFound().body("metrics are off\n"),
    }
}
