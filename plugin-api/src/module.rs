//! The author-facing `Module` trait, what it declares (migrations, templates, static files,
//! health) and `InitContext`, what `init` receives.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::Error;
use crate::ffi::HealthStatus;
use crate::router::Router;

/// A BMC Hub module. Implement it for your module's state and export it with
/// [`export_module!`](crate::export_module).
///
/// Contract:
/// - `init` runs once per start (load, enable, reload); an `Err` or a panic leaves the module
///   `failed` with the reason, and the hub keeps serving.
/// - `routes` declares the module's JSON API, mounted under `/api/v1/<name>/`.
/// - Handlers and hooks are `async` and are polled on the hub's runtime: never block the thread
///   (no `std::thread::sleep`, no blocking I/O) and do not start a runtime of your own.
/// - A panic in a handler becomes a `500` carrying the panic message; dropping a future must not
///   panic (that aborts the hub), so keep the drops of your futures trivial.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a BMC Hub module",
    label = "export_module! needs a type implementing plugin_api::Module",
    note = "add `impl plugin_api::Module for {Self} {{ fn init(..) .. fn routes(..) .. }}`"
)]
pub trait Module: Sized + Send + Sync + 'static {
    /// Build the module's state. Read settings with [`Ctx::config`].
    fn init(ctx: &InitContext) -> Result<Self, Error>;

    /// Declare the module's routes: `r.get("/items/{id}", Self::get)`.
    fn routes(router: &mut Router<Self>);

    /// The module's schema migrations, in version order, compiled in:
    /// `const MIGRATIONS: &[Migration] = &[Migration::new(1, "init", include_str!("../migrations/001_init.sql"))];`
    /// and return `MIGRATIONS`. The hub applies the pending ones at each
    /// start, each in a transaction of its own, and refuses objects outside the module's table
    /// prefix. The default is none.
    fn migrations() -> &'static [Migration] {
        &[]
    }

    /// The module's templates (minijinja, `.html` autoescaped), compiled in:
    /// `const TEMPLATES: &[Asset] = &[Asset::new("index.html", include_bytes!("../templates/index.html"))];`.
    /// A view renders one with [`View::page`](crate::View::page). The default is none.
    fn templates() -> &'static [Asset] {
        &[]
    }

    /// The module's static files (CSS, images, …), compiled in, served under
    /// `/modules/<name>/static/<path>`. The default is none.
    fn static_files() -> &'static [Asset] {
        &[]
    }

    /// Report the module's health. At start an `unhealthy` answer (or a panic) fails the start;
    /// afterwards health only reports. The default is always healthy.
    fn health(self: Arc<Self>, ctx: Ctx) -> impl Future<Output = Health> + Send {
        let _ = (self, ctx);
        std::future::ready(Health::healthy())
    }

    /// Release what the module holds. Runs after the instance's last request, when the module is
    /// disabled, replaced or the hub stops; bounded by the hub's shutdown grace period.
    fn shutdown(self: Arc<Self>) -> impl Future<Output = ()> + Send {
        let _ = self;
        std::future::ready(())
    }
}

/// A file compiled into the module: a template or a static file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its name: `index.html`, `style.css`, `img/logo.svg`.
    pub path: &'static str,
    pub bytes: &'static [u8],
}

impl Asset {
    pub const fn new(path: &'static str, bytes: &'static [u8]) -> Asset {
        Asset { path, bytes }
    }
}

/// One schema migration: a version (1, 2, 3, …), a name, and its SQL. Never change one that
/// was applied: the hub refuses it by checksum; add a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub const fn new(version: u32, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql }
    }
}

/// A health report: status and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    pub detail: String,
}

impl Health {
    pub fn healthy() -> Health {
        Health {
            status: HealthStatus::Healthy,
            detail: String::new(),
        }
    }

    pub fn degraded(detail: impl Into<String>) -> Health {
        Health {
            status: HealthStatus::Degraded,
            detail: detail.into(),
        }
    }

    pub fn unhealthy(detail: impl Into<String>) -> Health {
        Health {
            status: HealthStatus::Unhealthy,
            detail: detail.into(),
        }
    }
}

/// What `init` receives: the module's [`Ctx`]. Keep a clone (`ctx.ctx()`) for later use.
#[derive(Debug)]
pub struct InitContext(Ctx);

impl InitContext {
    pub(crate) fn new(ctx: Ctx) -> InitContext {
        InitContext(ctx)
    }

    /// A clone of the module's context, to keep in the module's state.
    pub fn ctx(&self) -> Ctx {
        self.0.clone()
    }
}

impl Deref for InitContext {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.0
    }
}
