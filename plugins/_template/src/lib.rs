//! `tmplmod`: the template every new module starts from. `cargo xtask new-module <name>` copies
//! this folder and replaces `tmplmod`, `Tmplmod` and `TMPLMOD` with the new name.
//!
//! It shows everything a module has: state built in `init`, a JSON API (`api.rs`), HTML views
//! with forms (`views.rs`), data in PostgreSQL through the hub's gateway (`items.rs`), a call to
//! another system through the hub's HTTP client (`GET /upstream`), an hourly background job, a
//! migration, templates and a static file compiled in, and a health check. See `README.md`.

mod api;
mod items;
mod views;

use std::sync::Arc;

use plugin_api::{Asset, Ctx, Error, Health, InitContext, Migration, Module, Router};

/// The module's state, built once per start in `init` and shared by every request.
pub struct Tmplmod {
    /// The heading of the pages (`config.title`, or `MODULES__TMPLMOD__TITLE`).
    title: String,
    /// How many items a list shows unless asked otherwise (`config.page_size`).
    page_size: i64,
    /// The upstream system's status page, fetched by `GET /upstream` (`config.status_url`; its
    /// host must be in module.json's `outbound`). Empty: not configured.
    status_url: String,
}

/// Compiled in: the module ships as one library (with its `module.json`).
const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "init",
    include_str!("../migrations/001_init.sql"),
)];

const TEMPLATES: &[Asset] = &[
    Asset::new("index.html", include_bytes!("../templates/index.html")),
    Asset::new("item.html", include_bytes!("../templates/item.html")),
    Asset::new("form.html", include_bytes!("../templates/form.html")),
];

const STATIC_FILES: &[Asset] = &[Asset::new(
    "tmplmod.css",
    include_bytes!("../static/tmplmod.css"),
)];

impl Module for Tmplmod {
    fn init(ctx: &InitContext) -> Result<Self, Error> {
        Ok(Tmplmod {
            title: ctx.config_or("title", "Tmplmod".to_owned())?,
            page_size: ctx.config_or("page_size", 50)?,
            status_url: ctx.config_or("status_url", String::new())?,
        })
    }

    fn routes(r: &mut Router<Self>) {
        // Declared on the handlers (`#[get("/items/{id}")]` in `api.rs`, `#[page("/")]` in
        // `views.rs`), each documented by its doc comment. Who may call a route is said there:
        // `public` (anyone), nothing (any signed-in caller), or `require = "…"` (a permission
        // the module declares in module.json's "permissions"). The JSON API is mounted under
        // /api/v1/tmplmod, the views under /modules/tmplmod (a browser that is not signed in is
        // sent to /login).
        Self::declared_routes(r);
        Self::view_routes(r);
        // A background job: once an hour across every hub, as the module itself (no caller),
        // with a timeout, retries and backoff (see docs/MODULE_SYSTEM.md, "Background jobs").
        r.every("count_items", "1h", Self::count_items)
            .timeout(std::time::Duration::from_secs(30))
            .attempts(3);
    }

    fn migrations() -> &'static [Migration] {
        MIGRATIONS
    }

    fn templates() -> &'static [Asset] {
        TEMPLATES
    }

    fn static_files() -> &'static [Asset] {
        STATIC_FILES
    }

    /// Healthy when the module's table can be read.
    async fn health(self: Arc<Self>, ctx: Ctx) -> Health {
        match ctx
            .db()
            .query("SELECT 1 FROM tmplmod_items LIMIT 1", &[])
            .await
        {
            Ok(_) => Health::healthy(),
            Err(e) => Health::unhealthy(format!("tmplmod_items is not readable: {e}")),
        }
    }
}

impl Tmplmod {
    /// The hourly job: how many items there are, in the hub's log.
    async fn count_items(self: Arc<Self>, job: plugin_api::Job) -> Result<(), Error> {
        let counts = items::count(job.ctx()).await?;
        plugin_api::tracing::info!("{} items, {} done", counts.items, counts.done);
        Ok(())
    }
}

plugin_api::export_module!(Tmplmod);
