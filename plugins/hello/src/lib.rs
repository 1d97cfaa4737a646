//! `hello`: the smallest useful module. It greets, reports its version and settings, and shows
//! the shape every module has: state built in `init`, routes declared on typed async handlers.

use std::sync::Arc;

use plugin_api::{
    Error, InitContext, Json, JsonSchema, Module, Path, Request, Router, Value, json, tracing,
};
use serde::{Deserialize, Serialize};

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
        Self::declared_routes(r);
    }
}

/// Who answers, in which version.
#[derive(Serialize, JsonSchema)]
struct About {
    /// The module's name.
    module: String,
    version: String,
    /// The greeting it is configured with.
    greeting: String,
}

/// Whom to greet.
#[derive(Deserialize, JsonSchema)]
struct Whom {
    /// A name of 1 to 64 characters.
    #[schemars(length(min = 1, max = 64))]
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Greeting {
    message: String,
}

#[derive(Serialize, JsonSchema)]
struct Echo {
    n: u64,
}

#[plugin_api::routes]
impl Hello {
    /// Who answers, in which version.
    #[get("/")]
    async fn about(self: Arc<Self>, req: Request) -> Json<About> {
        Json(About {
            module: req.ctx().module_name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            greeting: self.greeting.clone(),
        })
    }

    /// The cheapest possible answer: for anyone at `/ping`, for signed-in callers at `/pong`.
    ///
    /// The dispatch benchmark compares `/ping` with the hub's own `GET /ping`, and `/pong` with
    /// an API token with `/ping` anonymous.
    #[get("/ping", public)]
    #[get("/pong")]
    async fn ping(self: Arc<Self>) -> Json<Value> {
        Json(json!({"pong": true}))
    }

    /// `n` back, for anyone.
    ///
    /// The dispatch benchmark's typed route: a `Path<u64>` in, a `Json<T>` out.
    #[get("/echo/{n}", public)]
    async fn echo(self: Arc<Self>, Path(n): Path<u64>) -> Json<Echo> {
        Json(Echo { n })
    }

    /// A greeting for `name`.
    #[get("/greet/{name}")]
    async fn greet(self: Arc<Self>, Path(whom): Path<Whom>) -> Json<Greeting> {
        Json(Greeting {
            message: format!("{}, {}!", self.greeting, whom.name),
        })
    }
}

plugin_api::export_module!(Hello);
