//! `tmplmod`: the template every new module starts from. `cargo xtask new-module <name>` copies
//! this folder and replaces `tmplmod`, `Tmplmod` and `TMPLMOD` with the new name.
//!
//! It shows everything a module has: state built in `init`, a JSON API (`api.rs`), HTML views
//! with forms (`views.rs`), data in PostgreSQL through the hub's gateway (`items.rs`), a
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
        })
    }

    fn routes(r: &mut Router<Self>) {
        // JSON API, under /api/v1/tmplmod. Who may call a route is said right after it:
        // `.public()` (anyone), nothing (any signed-in caller), or `.require(…)` (a permission
        // the module declares in module.json's "permissions").
        r.get("/about", Self::about).public();
        r.get("/items", Self::list_items)
            .get("/items/{id}", Self::get_item);
        r.post("/items", Self::create_item).require("items.write");
        r.put("/items/{id}", Self::update_item)
            .require("items.write");
        r.delete("/items/{id}", Self::delete_item)
            .require("items.write");
        // HTML views, under /modules/tmplmod (a browser that is not signed in is sent to /login)
        r.page("/", Self::index_page)
            .page("/items/{id}", Self::item_page);
        r.page("/items/new", Self::new_page).require("items.write");
        r.form("/items/new", Self::create_form)
            .require("items.write");
        r.page("/items/{id}/edit", Self::edit_page)
            .require("items.write");
        r.form("/items/{id}/edit", Self::update_form)
            .require("items.write");
        r.form("/items/{id}/delete", Self::delete_form)
            .require("items.write");
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

plugin_api::export_module!(Tmplmod);
