//! The HTTP rooms: the server (`server.rs`), the hub's own routes (`api.rs`: management, health;
//! `login.rs`: signing in and out; `people.rs`: tokens, users, roles, audit), who is calling
//! (`auth.rs`), the module catch-all (`dispatch.rs`), HTML pages (`views.rs`), the
//! OpenAPI document (`openapi.rs`) and the one error type (`error.rs`). Only these rooms know
//! actix-web.

mod api;
mod auth;
mod calls;
mod charts;
mod console;
mod dispatch;
mod docs;
mod error;
mod login;
mod openapi;
mod packages;
mod people;
mod request;
mod request_id;
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
const HUB_API_SEGMENTS: &[&str] = &[
    "modules",
    "openapi.json",
    "me",
    "tokens",
    "users",
    "roles",
    "audit",
    "packages",
    "catalog",
    "fleet",
];

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
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/ping")
            .route(web::get().to(api::ping))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/api/v1/openapi.json")
            .route(web::get().to(openapi::openapi_json))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/docs")
            .route(web::get().to(docs::page))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/docs/{file}")
            .route(web::get().to(docs_file))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/login")
            .route(web::get().to(login::login))
            .route(web::post().to(login::login_form))
            .default_service(web::to(api::not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/auth/callback")
            .route(web::get().to(login::callback))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/logout")
            .route(web::post().to(login::logout))
            .default_service(web::to(api::not_allowed("POST"))),
    )
    .service(
        web::resource("/api/v1/me")
            .route(web::get().to(login::me))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/api/v1/tokens")
            .route(web::get().to(people::list_tokens))
            .route(web::post().to(people::create_token))
            .default_service(web::to(api::not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/v1/tokens/{id}")
            .route(web::delete().to(people::revoke_token))
            .default_service(web::to(api::not_allowed("DELETE"))),
    )
    .service(
        web::resource("/api/v1/users")
            .route(web::get().to(people::list_users))
            .route(web::post().to(people::create_user))
            .default_service(web::to(api::not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/v1/users/{id}/roles")
            .route(web::put().to(people::set_roles))
            .default_service(web::to(api::not_allowed("PUT"))),
    )
    .service(
        web::resource("/api/v1/users/{id}/offboard")
            .route(web::post().to(people::offboard))
            .default_service(web::to(api::not_allowed("POST"))),
    )
    .service(
        web::resource("/api/v1/roles")
            .route(web::get().to(people::list_roles))
            .route(web::post().to(people::create_role))
            .default_service(web::to(api::not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/v1/roles/{name}")
            .route(web::put().to(people::update_role))
            .route(web::delete().to(people::delete_role))
            .default_service(web::to(api::not_allowed("PUT, DELETE"))),
    )
    .service(
        web::resource("/api/v1/packages")
            .route(web::post().to(packages::install))
            .default_service(web::to(api::not_allowed("POST"))),
    )
    .service(
        web::resource("/api/v1/fleet")
            .route(web::get().to(api::fleet))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/api/v1/catalog")
            .route(web::get().to(packages::catalog))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    .service(
        web::resource("/api/v1/catalog/{name}/install")
            .route(web::post().to(packages::catalog_install))
            .default_service(web::to(api::not_allowed("POST"))),
    )
    .service(
        web::resource("/api/v1/audit")
            .route(web::get().to(people::audit_log))
            .default_service(web::to(api::not_allowed("GET"))),
    )
    // The console: a scope with a static prefix, skipped with one comparison.
    .service(
        web::scope("/admin")
            .service(
                web::resource("")
                    .route(web::get().to(console::modules_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/static/console.js")
                    .route(web::get().to(console::script))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/modules/rows")
                    .route(web::get().to(console::module_rows))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/modules/{name}")
                    .route(web::get().to(console::module_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/modules/{name}/{action}")
                    .route(web::post().to(console::module_action))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .service(
                web::resource("/graph")
                    .route(web::get().to(console::graph_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/fleet")
                    .route(web::get().to(console::fleet_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/catalog")
                    .route(web::get().to(console::catalog_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/catalog/{name}/install")
                    .route(web::post().to(console::catalog_install))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .service(
                web::resource("/audit")
                    .route(web::get().to(console::audit_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/people")
                    .route(web::get().to(console::people_page))
                    .default_service(web::to(api::not_allowed("GET"))),
            )
            .service(
                web::resource("/users/{id}/roles")
                    .route(web::post().to(console::user_roles))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .service(
                web::resource("/roles")
                    .route(web::post().to(console::role))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .service(
                web::resource("/roles/{name}")
                    .route(web::post().to(console::role))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .service(
                web::resource("/tokens")
                    .route(web::get().to(console::tokens_page))
                    .route(web::post().to(console::create_token))
                    .default_service(web::to(api::not_allowed("GET, POST"))),
            )
            .service(
                web::resource("/tokens/{id}/revoke")
                    .route(web::post().to(console::revoke_token))
                    .default_service(web::to(api::not_allowed("POST"))),
            )
            .default_service(web::to(console::not_found)),
    )
    // A scope with a static prefix: requests for module routes skip it with one comparison.
    .service(
        web::scope("/api/v1/modules")
            // Before /{name}: "graph" is a reserved name, never a module's.
            .service(
                web::resource("/graph")
                    .route(web::get().to(api::graph))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/graph.svg")
                    .route(web::get().to(api::graph_svg))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("")
                    .route(web::get().to(api::list))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/{name}")
                    .route(web::get().to(api::get))
                    .route(web::delete().to(packages::uninstall))
                    .default_service(web::to(api::admin_not_allowed("GET, DELETE"))),
            )
            .service(
                web::resource("/{name}/uninstall")
                    .route(web::get().to(packages::uninstall_preview))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/{name}/audience")
                    .route(web::put().to(api::set_audience))
                    .default_service(web::to(api::admin_not_allowed("PUT"))),
            )
            .service(
                web::resource("/{name}/safety")
                    .route(web::put().to(api::set_safety))
                    .default_service(web::to(api::admin_not_allowed("PUT"))),
            )
            .service(
                web::resource("/{name}/jobs")
                    .route(web::get().to(api::jobs))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/{name}/jobs/{id}/{action}")
                    .route(web::post().to(api::job_action))
                    .default_service(web::to(api::admin_not_allowed("POST"))),
            )
            .service(
                web::resource("/{name}/usage")
                    .route(web::get().to(api::usage))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/{name}/versions")
                    .route(web::get().to(packages::versions))
                    .default_service(web::to(api::admin_not_allowed("GET"))),
            )
            .service(
                web::resource("/{name}/finish-migrations")
                    .route(web::post().to(packages::finish_migrations))
                    .default_service(web::to(api::admin_not_allowed("POST"))),
            )
            .service(
                web::resource("/{name}/rollback")
                    .route(web::post().to(packages::rollback))
                    .default_service(web::to(api::admin_not_allowed("POST"))),
            )
            .service(
                web::resource("/{name}/settings")
                    .route(web::put().to(api::set_settings))
                    .default_service(web::to(api::admin_not_allowed("PUT"))),
            )
            .service(web::resource("/{name}/{action}").to(api::action))
            .default_service(web::to(api::admin_not_found)),
    );
}

async fn docs_file(file: web::Path<String>) -> Result<actix_web::HttpResponse, error::ApiError> {
    docs::file(&file).ok_or_else(|| error::ApiError::not_found(format!("/docs has no file {file}")))
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
