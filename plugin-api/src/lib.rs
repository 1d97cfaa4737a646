//! The API a BMC Hub module is written against, and the stable ABI beneath it.
//!
//! A module author writes ordinary async Rust:
//!
//! ```
//! use std::sync::Arc;
//! use plugin_api::{Error, InitContext, Json, Module, Request, Router, json};
//!
//! struct Hello { greeting: String }
//!
//! impl Module for Hello {
//!     fn init(ctx: &InitContext) -> Result<Self, Error> {
//!         Ok(Hello { greeting: ctx.config_or("greeting", "Hello".to_owned())? })
//!     }
//!     fn routes(r: &mut Router<Self>) {
//!         r.get("/greet/{name}", Self::greet);
//!     }
//! }
//!
//! impl Hello {
//!     async fn greet(self: Arc<Self>, req: Request) -> Result<Json<plugin_api::Value>, Error> {
//!         let name = req.param("name").unwrap_or("world");
//!         Ok(Json(json!({ "message": format!("{}, {name}!", self.greeting) })))
//!     }
//! }
//!
//! plugin_api::export_module!(Hello);
//! ```
//!
//! The crate must be a `cdylib`. Logging with `plugin_api::tracing` (or the `log` crate) shows
//! in the hub's output with `module=<name>`.
//!
//! The rooms, bottom up (a room uses only rooms below it; `cargo test -p xtask tidy` checks it):
//! - [`ffi`]: every type that crosses the boundary, and nothing else; the hub reads these.
//! - `panic`, `error`, `ctx`: panics as values; the one error shape; the module's context and
//!   its calls into the hub.
//! - `http`, `router`, `module`, `db`, `log`: what an author writes against. `http` reads the
//!   hub's request through its object (`ffi::RequestObj`) and hands the response over as an
//!   `ffi::FfiResponse`.
//! - `glue`: `export_module!`, the root module's trampolines and the adapter from `Module` to the
//!   ABI; the only file with `unsafe`.

mod blocking;
mod ctx;
mod db;
mod error;
mod extract;
pub mod ffi;
mod glue;
mod http;
mod jobs;
mod log;
mod metrics;
mod module;
mod outbound;
mod panic;
mod queue;
mod router;
mod schema;

pub use ctx::Ctx;
pub use db::{Db, DbError, DbErrorKind, Rows};
pub use error::Error;
pub use extract::Form;
pub use extract::{
    FromRequest, FromRequestLast, Parts, Path, Query, RouteMeta, ViaParts, ViaRequest,
};
pub use ffi::{HealthStatus, LogLevel};
pub use http::{Called, IntoResponse, Json, Request, Response, User, View};
pub use jobs::Job;
pub use metrics::{Counter, Gauge, Histogram, Metrics};
pub use module::{Asset, Health, InitContext, Migration, Module};
pub use outbound::{Http, Inbound, Outbound};
pub use plugin_api_macros::routes;
pub use queue::Jobs;
pub use router::{Handler, Router};
pub use schema::schema_of;
pub use schemars::{self, JsonSchema};
pub use serde_json::{Value, json};
pub use tracing;

/// The plugin-api version this crate is; a module built against another minor does not load.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What [`export_module!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::{HubAllocator, ModuleMeta, root_module};
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}
