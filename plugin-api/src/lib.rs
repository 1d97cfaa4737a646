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
//! The crate must be a `cdylib`. Everything that crosses into the hub is in [`ffi`]; nothing
//! else here knows about the ABI. Logging with `plugin_api::tracing` (or the `log` crate) shows
//! in the hub's output with `module=<name>`.

mod db;
pub mod ffi;
mod http;
mod log;
mod module;
mod router;

pub use db::{Db, DbError, DbErrorKind, Rows};
pub use ffi::{HealthStatus, LogLevel};
pub use http::{Error, IntoResponse, Json, Request, Response, View};
pub use module::{Asset, Ctx, Health, InitContext, Migration, Module};
pub use router::Router;
pub use serde_json::{Value, json};
pub use tracing;

/// The plugin-api version this crate is; a module built against another minor does not load.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What [`export_module!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::ffi::{ModuleMeta, root_module};
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}
