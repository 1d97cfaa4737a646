//! `hello`: the smallest useful module. It greets, reports its version and settings, and shows
//! the shape every module has: state built in `init`, routes, async handlers.

use std::sync::Arc;

use plugin_api::{Error, InitContext, Json, Module, Request, Router, Value, json, tracing};

pub struct Hello {
    greeting: String,
}

impl Module for Hello {
    fn init(ctx: &InitContext) -> Result<Self, Error> {
        let greeting: String = ctx.config_or("greeting", "Hello".to_owned())?;
        tracing::info!(greeting = %greeting, "hello is ready");
        Ok(Hello { greeting })
    }

    fn routes(r: &mut Router<Self>) {
        r.get("/", Self::about);
        // Public: the dispatch benchmark measures an anonymous call of it.
        r.get("/ping", Self::ping).public();
        // The same answer for signed-in callers only: the benchmark's call with a token.
        r.get("/pong", Self::ping);
        r.get("/greet/{name}", Self::greet);
    }
}

impl Hello {
    /// `GET /api/v1/hello/`: who answers, in which version.
    async fn about(self: Arc<Self>, req: Request) -> Json<Value> {
        Json(json!({
            "module": req.ctx().module_name(),
            "version": env!("CARGO_PKG_VERSION"),
            "greeting": self.greeting,
        }))
    }

    /// `GET /api/v1/hello/ping` (anyone) and `GET /api/v1/hello/pong` (signed-in callers): the
    /// cheapest possible answer (the dispatch benchmark uses both).
    async fn ping(self: Arc<Self>, _req: Request) -> Json<Value> {
        Json(json!({"pong": true}))
    }

    /// `GET /api/v1/hello/greet/{name}`: a greeting for `name` (1 to 64 characters).
    async fn greet(self: Arc<Self>, req: Request) -> Result<Json<Value>, Error> {
        let name = req.param("name").unwrap_or_default();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(Error::validation("name must be 1 to 64 characters")
                .with_details(json!({"name": "length must be 1 to 64"})));
        }
        Ok(Json(
            json!({"message": format!("{}, {name}!", self.greeting)}),
        ))
    }
}

plugin_api::export_module!(Hello);
