//! The HTTP rooms: the server (`server.rs`), the hub's own routes (`api.rs`: management, health),
//! the admin token (`auth.rs`), the module catch-all (`dispatch.rs`), HTML pages (`views.rs`), the
//! OpenAPI document (`openapi.rs`) and the one error type (`error.rs`). Only these rooms know
//! actix-web.

mod api;
mod auth;
mod dispatch;
mod error;
mod openapi;
mod request;
pub mod server;
mod site;
mod views;

/// How the catch-all reads a request's path (public for the property tests).
pub use self::dispatch::{percent_decode, split_module};

use actix_web::dev::{AppService, HttpServiceFactory, ResourceDef};
use actix_web::guard::{Guard, GuardContext};
use actix_web::web;

/// The first segments under `/api/v1/` that are the hub's own routes, registered after the
/// module surface (which lets them through).
const HUB_API_SEGMENTS: &[&str] = &["modules", "openapi.json"];

/// Register the routes: first the module surfaces (`/api/v1/…`, `/modules/…`: the hot path, one
/// prefix comparison away), then the hub's own routes; everything else reaches the default service
/// (the home page, or 404).
fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(ModuleSurface("/api/v1"))
        .service(ModuleSurface("/modules"));
    // Under a scope with a static prefix: every other request passes it with one comparison, so
    // the benchmark's own route does not tax the routes it measures (a pattern at the top level
    // is a regex tried on every request).
    #[cfg(feature = "bench-routes")]
    cfg.service(
        web::scope("/bench")
            .service(web::resource("/customer/{id}").route(web::get().to(api::bench_customer))),
    );
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(api::healthz))
            .default_service(web::to(api::method_not_allowed)),
    )
    .service(
        web::resource("/ping")
            .route(web::get().to(api::ping))
            .default_service(web::to(api::method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/openapi.json")
            .route(web::get().to(openapi::openapi_json))
            .default_service(web::to(api::method_not_allowed)),
    )
    // A scope with a static prefix: requests for module routes skip it with one comparison.
    .service(
        web::scope("/api/v1/modules")
            // Before /{name}: "graph" is a reserved name, never a module's.
            .service(
                web::resource("/graph")
                    .route(web::get().to(api::graph))
                    .default_service(web::to(api::admin_method_not_allowed)),
            )
            .service(
                web::resource("/graph.svg")
                    .route(web::get().to(api::graph_svg))
                    .default_service(web::to(api::admin_method_not_allowed)),
            )
            .service(
                web::resource("")
                    .route(web::get().to(api::list))
                    .default_service(web::to(api::admin_method_not_allowed)),
            )
            .service(
                web::resource("/{name}")
                    .route(web::get().to(api::get))
                    .default_service(web::to(api::admin_method_not_allowed)),
            )
            .service(web::resource("/{name}/{action}").to(api::action))
            .default_service(web::to(api::admin_not_found)),
    );
}

/// The requests for modules under `prefix`, dispatched by hand (`dispatch.rs`). Registered before
/// the hub's own routes: actix tries its routes one after another, each at a cost, and module
/// requests are the hub's hot path. A guard lets the hub's own `/api/v1/…` routes through.
struct ModuleSurface(&'static str);

impl HttpServiceFactory for ModuleSurface {
    fn register(self, config: &mut AppService) {
        let guards: Vec<Box<dyn Guard>> = vec![Box::new(NotTheHubs)];
        config.register_service(
            ResourceDef::root_prefix(self.0),
            Some(guards),
            actix_web::dev::fn_service(dispatch::service),
            None,
        );
    }
}

/// Refuses `/api/v1/<segment>` for the hub's own segments, so that their routes answer.
struct NotTheHubs;

impl Guard for NotTheHubs {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        let path = ctx.head().uri.path();
        let Some(rest) = path.strip_prefix("/api/v1/") else {
            return true;
        };
        let rest = rest.as_bytes();
        !HUB_API_SEGMENTS.iter().any(|segment| {
            rest.starts_with(segment.as_bytes())
                && matches!(rest.get(segment.len()), None | Some(b'/'))
        })
    }
}
