//! The BMC Hub: an actix-web server whose features arrive as native modules.
//!
//! `main.rs` reads the configuration and calls [`run`]; the tests start the `hub` binary. The
//! rooms, bottom up (a room uses only rooms below it; `cargo test -p xtask tidy` checks it, and
//! `docs/architecture.md` draws it):
//! names, causes, manifest, assets → config, signals → templates, logging, db, outbound → identity, usage → loader →
//! instance → registry → deps → lifecycle, status → watcher, jobs → http.

pub mod assets;
pub mod causes;
pub mod config;
pub mod db;
pub mod deps;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod instance;
pub mod jobs;
pub mod lifecycle;
pub mod loader;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod outbound;
pub mod packages;
pub mod registry;
mod signals;
pub mod status;
pub mod templates;
pub mod usage;
mod watcher;

pub use http::server::run;
