//! `tmplmod`: the template every new module starts from (`cargo xtask new-module <name>` copies
//! this folder and replaces `tmplmod`/`Tmplmod` with the new name). Keep it building and working:
//! it is built and tested like any module.

use std::sync::Arc;

use plugin_api::{Ctx, Error, Health, InitContext, Json, Module, Request, Router, Value, json};

/// The module's state, built once per start in `init`.
pub struct Tmplmod {
    title: String,
}

impl Module for Tmplmod {
    fn init(ctx: &InitContext) -> Result<Self, Error> {
        Ok(Tmplmod {
            title: ctx.config_or("title", "Tmplmod".to_owned())?,
        })
    }

    fn routes(r: &mut Router<Self>) {
        r.get("/", Self::index);
    }

    async fn health(self: Arc<Self>, _ctx: Ctx) -> Health {
        Health::healthy()
    }
}

impl Tmplmod {
    /// `GET /api/v1/tmplmod/`: the module's title and safety switches.
    async fn index(self: Arc<Self>, req: Request) -> Json<Value> {
        Json(json!({
            "title": self.title,
            "read_only": req.ctx().read_only(),
            "dry_run": req.ctx().dry_run(),
        }))
    }
}

plugin_api::export_module!(Tmplmod);
