//! The HTTP rooms: the server (`server.rs`), the hub's own routes (`api.rs`: management, health),
//! the admin token (`auth.rs`), the module catch-all (`dispatch.rs`), HTML pages (`views.rs`), the
//! OpenAPI document (`openapi.rs`) and the one error type (`error.rs`). Only these rooms know
//! actix-web.

mod api;
mod auth;
mod dispatch;
mod error;
mod openapi;
pub mod server;
mod views;

use actix_web::web;

/// Register the hub's routes. They come before the module catch-alls.
fn configure(cfg: &mut web::ServiceConfig) {
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
