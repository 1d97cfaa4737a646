//! The stable ABI between the hub and a module, and the trampolines that adapt an author's
//! [`Module`](crate::Module) to it.
//!
//! Everything that crosses the boundary is defined here: the root module every library exports,
//! the request/response/health types, the module object the hub calls and the host object the
//! module calls back. This is the only file of plugin-api with `extern "C"` or `unsafe`.
//!
//! Rules this file keeps (see `docs/architecture.md`):
//! - A panic must never unwind across an `extern "C"` or `#[sabi_trait]` boundary: it aborts the
//!   whole hub. Every function the hub calls wraps the author's code in `catch_unwind`, and every
//!   future handed over is polled under `catch_unwind` too, so a panic becomes a value (an error
//!   or a 500 response carrying the panic message).
//! - The root module and the trait objects only grow by appending after `last_prefix_field`.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RCowStr, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};
use async_ffi::{FfiFuture, FutureExt as _};

use crate::http::{Error, IntoResponse, Request};
use crate::module::{Ctx, Health, InitContext, Module};
use crate::router::Router;

/// Name, version and plugin-api version of a module library; read before `init`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ModuleInfo {
    /// The library's crate name (`[lib] name`).
    pub name: RString,
    /// The module crate's own version (`CARGO_PKG_VERSION`).
    pub version: RString,
    /// The plugin-api version the library was built against.
    pub api_version: RString,
}

/// One route of a module: an HTTP method and a path pattern relative to the module's mount point,
/// in matchit syntax (`/items/{id}`, `/files/{*rest}`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct RouteDef {
    pub method: RString,
    pub path: RString,
    /// An HTML view, mounted under `/modules/<name>`; else a JSON API route under
    /// `/api/v1/<name>`.
    pub view: bool,
}

/// A request as it crosses the boundary. `path` is relative to the module's mount point.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiRequest {
    /// Borrowed (static) for the standard methods.
    pub method: RCowStr<'static>,
    pub path: RString,
    pub params: RVec<Tuple2<RString, RString>>,
    pub query: RString,
    /// Every header as a `name: value` line (names lowercase), in one allocation.
    pub headers: RString,
    pub body: RVec<u8>,
}

/// A response as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiResponse {
    pub status: u16,
    /// Borrowed when the module wrote a `&'static str` (the library is never unloaded, so its
    /// statics outlive every response): the common headers cross without a copy.
    pub headers: RVec<Tuple2<RCowStr<'static>, RCowStr<'static>>>,
    pub body: RVec<u8>,
    /// Set when the handler panicked: the panic message. The hub then answers 500
    /// `handler_panicked` naming the module, the route and this message.
    pub panic: ROption<RString>,
    /// Set by a view that asks the hub to render a template of the module with a JSON context;
    /// `body` is then empty.
    pub template: ROption<FfiTemplate>,
}

/// A template to render: its name among the module's templates and the context, as JSON.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiTemplate {
    pub name: RString,
    pub context: RString,
}

/// A file compiled into the module: a template or a static file. The bytes are the library's
/// statics, which live as long as the hub.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiAsset {
    /// `true` for a template, `false` for a static file.
    pub template: bool,
    pub path: RStr<'static>,
    pub bytes: RSlice<'static, u8>,
}

/// The three health states of a module.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// A health report as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiHealth {
    pub status: HealthStatus,
    pub detail: RString,
}

/// Log levels, most severe first.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// What the hub hands a module's `init`.
#[repr(C)]
#[derive(StableAbi)]
pub struct InitArgs {
    /// The module's name (its folder under `MODULES_DIR`).
    pub module: RString,
    /// Callbacks into the hub, bound to this module.
    pub host: HostBox,
    /// Effective safety switches (manifest, overridden by the environment).
    pub read_only: bool,
    pub dry_run: bool,
    /// The most verbose level the hub will print; events above it are not forwarded.
    pub max_log_level: LogLevel,
}

pub use objects::*;

/// The two trait objects that cross the boundary. In a module of their own because the code
/// `#[sabi_trait]` generates implements foreign traits inside a const block.
mod objects {
    #![allow(non_local_definitions)]

    use super::*;

    /// The services the hub offers a module. Implemented by the hub; every method catches panics on
    /// the hub's side.
    #[sabi_trait]
    pub trait HostObj: Send + Sync + 'static {
        /// Write one log line in the hub's output, tagged with the module's name.
        fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

        /// The module's setting `key` as JSON text: `MODULES__{NAME}__{KEY}` from the environment,
        /// else the manifest's `config`. `RNone` when neither has it.
        fn config(&self, key: RStr<'_>) -> ROption<RString>;

        /// A future that completes after `millis` milliseconds, on the hub's timer.
        fn sleep(&self, millis: u64) -> FfiFuture<()>;

        /// Run a database request (JSON: one statement or a transaction) through the hub's
        /// gateway; the result or the error, as JSON.
        #[sabi(last_prefix_field)]
        fn database(&self, request: RString) -> FfiFuture<RResult<RString, RString>>;
    }

    /// The host object as the module holds it.
    pub type HostBox = HostObj_TO<RBox<()>>;

    /// A module instance as the hub holds it. Implemented by plugin-api for every `Module`.
    #[sabi_trait]
    pub trait ModuleObj: Send + Sync + 'static {
        /// The route table; `call` takes an index into it.
        fn routes(&self) -> RVec<RouteDef>;

        /// Run the handler of route `route` on `request`.
        fn call(&self, route: u32, request: FfiRequest) -> FfiFuture<FfiResponse>;

        /// Run the module's health check.
        fn health(&self) -> FfiFuture<FfiHealth>;

        /// Run the module's shutdown hook; called once, after the instance's last request.
        #[sabi(last_prefix_field)]
        fn shutdown(&self) -> FfiFuture<()>;
    }

    /// A module instance as the hub holds it.
    pub type ModuleBox = ModuleObj_TO<RBox<()>>;
}

/// The root module every module library exports (through [`export_module!`](crate::export_module)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
#[sabi(missing_field(panic))]
pub struct PluginRoot {
    /// Name and versions of the library; never fails.
    pub info: extern "C" fn() -> ModuleInfo,
    /// Build a module instance. An error or a panic in the author's `init` or `routes` comes back
    /// as `RErr` with the reason.
    pub init: extern "C" fn(InitArgs) -> RResult<ModuleBox, RString>,
    /// The module's migrations, in order; readable before `init`.
    pub migrations: extern "C" fn() -> RResult<RVec<FfiMigration>, RString>,
    /// The module's templates and static files.
    #[sabi(last_prefix_field)]
    pub assets: extern "C" fn() -> RResult<RVec<FfiAsset>, RString>,
}

/// A migration as it crosses the boundary. The texts are the library's statics: libraries are
/// never unloaded, so they live as long as the hub.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiMigration {
    pub version: u32,
    pub name: RStr<'static>,
    pub sql: RStr<'static>,
}

impl RootModule for PluginRootRef {
    declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "bmc_hub_module";
    const NAME: &'static str = "bmc_hub_module";
    // The version of *this* crate: abi_stable refuses a library whose plugin-api differs in the
    // minor (0.x) or major version.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Compile-time facts about a module crate, implemented by [`export_module!`](crate::export_module).
#[doc(hidden)]
pub trait ModuleMeta {
    const CRATE_NAME: &'static str;
    const VERSION: &'static str;
}

/// The symbol abi_stable looks up in a library (`abi_stable::library::ROOT_MODULE_LOADER_NAME`);
/// a test keeps the two equal.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Export `$module` (a type implementing [`Module`](crate::Module)) as this library's module.
///
/// Use it once, at the root of a `cdylib` crate:
///
/// ```
/// # use plugin_api::{Error, InitContext, Module, Router};
/// struct Items;
/// impl Module for Items {
///     fn init(_: &InitContext) -> Result<Self, Error> { Ok(Items) }
///     fn routes(_: &mut Router<Self>) {}
/// }
/// plugin_api::export_module!(Items);
/// ```
#[macro_export]
macro_rules! export_module {
    ($module:ty) => {
        impl $crate::__private::ModuleMeta for $module {
            const CRATE_NAME: &'static str = ::core::env!("CARGO_CRATE_NAME");
            const VERSION: &'static str = ::core::env!("CARGO_PKG_VERSION");
        }

        /// The root module of this library, looked up by the hub when it loads the library.
        // The name must equal `abi_stable::library::ROOT_MODULE_LOADER_NAME` (plugin-api tests it).
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __BMC_HUB_ROOT_MODULE: $crate::__private::LibHeader = {
            extern "C" fn load() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(
                    $crate::__private::root_module::<$module>,
                )
            }
            // SAFETY: `load` returns the `PluginRootRef` built by `root_module`, the type the
            // header is declared with; abi_stable checks its layout when the hub loads it.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::PluginRootRef>(
                    load,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Build the root module of module type `M`. Called once per loaded copy of the library.
#[doc(hidden)]
pub fn root_module<M: Module + ModuleMeta>() -> PluginRootRef {
    PluginRoot {
        info: info::<M>,
        init: init::<M>,
        migrations: migrations::<M>,
        assets: assets::<M>,
    }
    .leak_into_prefix()
}

extern "C" fn info<M: ModuleMeta>() -> ModuleInfo {
    ModuleInfo {
        name: M::CRATE_NAME.into(),
        version: M::VERSION.into(),
        api_version: crate::API_VERSION.into(),
    }
}

extern "C" fn migrations<M: Module>() -> RResult<RVec<FfiMigration>, RString> {
    match catch_unwind(M::migrations) {
        Ok(list) => RResult::ROk(
            list.iter()
                .map(|m| FfiMigration {
                    version: m.version,
                    name: RStr::from_str(m.name),
                    sql: RStr::from_str(m.sql),
                })
                .collect(),
        ),
        Err(panic) => {
            RResult::RErr(format!("migrations() panicked: {}", panic_message(&*panic)).into())
        }
    }
}

extern "C" fn assets<M: Module>() -> RResult<RVec<FfiAsset>, RString> {
    let collect = || {
        let asset = |template: bool| {
            move |a: &crate::Asset| FfiAsset {
                template,
                path: RStr::from_str(a.path),
                bytes: RSlice::from_slice(a.bytes),
            }
        };
        M::templates()
            .iter()
            .map(asset(true))
            .chain(M::static_files().iter().map(asset(false)))
            .collect::<RVec<_>>()
    };
    match catch_unwind(collect) {
        Ok(list) => RResult::ROk(list),
        Err(panic) => RResult::RErr(
            format!(
                "templates() or static_files() panicked: {}",
                panic_message(&*panic)
            )
            .into(),
        ),
    }
}

extern "C" fn init<M: Module>(args: InitArgs) -> RResult<ModuleBox, RString> {
    match catch_unwind(AssertUnwindSafe(|| init_inner::<M>(args))) {
        Ok(Ok(module)) => RResult::ROk(module),
        Ok(Err(reason)) => RResult::RErr(reason.into()),
        Err(panic) => RResult::RErr(format!("init panicked: {}", panic_message(&*panic)).into()),
    }
}

fn init_inner<M: Module>(args: InitArgs) -> Result<ModuleBox, String> {
    let host = Arc::new(args.host);
    crate::log::install(host.clone(), args.max_log_level);
    let ctx = Ctx::new(args.module.to_string(), host, args.read_only, args.dry_run);
    let module = M::init(&InitContext::new(ctx.clone()))
        .map_err(|e| format!("init failed: {}", e.message()))?;
    let mut router = Router::new();
    M::routes(&mut router);
    let adapter = Adapter {
        module: Arc::new(module),
        router,
        ctx,
    };
    Ok(ModuleObj_TO::from_value(adapter, TD_Opaque))
}

/// Adapts an author's module to [`ModuleObj`].
struct Adapter<M> {
    module: Arc<M>,
    router: Router<M>,
    ctx: Ctx,
}

impl<M: Module> ModuleObj for Adapter<M> {
    fn routes(&self) -> RVec<RouteDef> {
        self.router
            .routes()
            .map(|(method, path, view)| RouteDef {
                method: method.into(),
                path: path.into(),
                view,
            })
            .collect()
    }

    fn call(&self, route: u32, request: FfiRequest) -> FfiFuture<FfiResponse> {
        let started = catch_unwind(AssertUnwindSafe(|| {
            let handler = self.router.handler(route as usize)?;
            Some(handler(
                self.module.clone(),
                Request::new(request, self.ctx.clone()),
            ))
        }));
        match started {
            Ok(Some(fut)) => fut,
            Ok(None) => {
                let error = Error::internal(format!("the module has no route #{route}"));
                std::future::ready(error.into_response().into_ffi()).into_ffi()
            }
            Err(panic) => std::future::ready(panicked(panic_message(&*panic))).into_ffi(),
        }
    }

    fn health(&self) -> FfiFuture<FfiHealth> {
        let module = self.module.clone();
        let ctx = self.ctx.clone();
        let started = catch_unwind(AssertUnwindSafe(|| M::health(module, ctx)));
        async move {
            let health = match started {
                Ok(fut) => caught(fut)
                    .await
                    .unwrap_or_else(|m| Health::unhealthy(format!("health check panicked: {m}"))),
                Err(panic) => {
                    Health::unhealthy(format!("health check panicked: {}", panic_message(&*panic)))
                }
            };
            FfiHealth {
                status: health.status,
                detail: health.detail.into(),
            }
        }
        .into_ffi()
    }

    fn shutdown(&self) -> FfiFuture<()> {
        let module = self.module.clone();
        let name = self.ctx.module_name().to_owned();
        let started = catch_unwind(AssertUnwindSafe(|| M::shutdown(module)));
        async move {
            let outcome = match started {
                Ok(fut) => caught(fut).await,
                Err(panic) => Err(panic_message(&*panic)),
            };
            if let Err(message) = outcome {
                tracing::error!("module '{name}' panicked in its shutdown hook: {message}");
            }
        }
        .into_ffi()
    }
}

impl Ctx {
    /// Ask the hub for a setting (see [`HostObj::config`]).
    pub(crate) fn host_config(&self, key: &str) -> Option<String> {
        self.host()
            .config(key.into())
            .into_option()
            .map(RString::into_string)
    }
}

impl Ctx {
    /// Wait on the hub's timer (see [`HostObj::sleep`]).
    pub(crate) fn host_sleep(&self, millis: u64) -> FfiFuture<()> {
        self.host().sleep(millis)
    }

    /// Send a gateway request (see [`HostObj::database`]).
    pub(crate) async fn host_database(&self, request: String) -> Result<String, String> {
        self.host()
            .database(request.into())
            .await
            .into_result()
            .map(RString::into_string)
            .map_err(RString::into_string)
    }
}

/// Forward one log line to the hub.
pub(crate) fn host_log(host: &HostBox, level: LogLevel, target: &str, message: &str) {
    host.log(level, target.into(), message.into());
}

/// A route handler as the router keeps it: called with the module and the request, it returns the
/// future the hub polls, boxed once.
pub(crate) type Handler<M> = Box<dyn Fn(Arc<M>, Request) -> FfiFuture<FfiResponse> + Send + Sync>;

/// Erase an author's async handler into a [`Handler`]: its future's panics become a
/// [`panicked`] response, its output an [`FfiResponse`].
pub(crate) fn erase_handler<M, H, Fut, R>(handler: H) -> Handler<M>
where
    H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    Box::new(move |module, request| {
        let fut = handler(module, request);
        async move {
            match caught(fut).await {
                Ok(output) => output.into_response().into_ffi(),
                Err(message) => panicked(message),
            }
        }
        .into_ffi()
    })
}

/// Poll `fut` to completion, turning a panic while polling into `Err(message)`.
async fn caught<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        },
    )
    .await
}

/// A `Cow` as the boundary's `RCow`: static text stays borrowed.
pub(crate) fn rcow(text: std::borrow::Cow<'static, str>) -> RCowStr<'static> {
    match text {
        std::borrow::Cow::Borrowed(s) => RCowStr::Borrowed(RStr::from_str(s)),
        std::borrow::Cow::Owned(s) => RCowStr::Owned(s.into()),
    }
}

/// The response of a handler that panicked: the hub turns it into its 500 `handler_panicked`.
fn panicked(message: String) -> FfiResponse {
    FfiResponse {
        status: 500,
        headers: RVec::new(),
        body: RVec::new(),
        panic: ROption::RSome(message.into()),
        template: ROption::RNone,
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
        let macro_source = include_str!("ffi.rs");
        assert!(macro_source.contains(&format!("export_name = \"{ROOT_MODULE_SYMBOL}\"")));
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let p = catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(&*p), "static text");
        let n = 7;
        let p = catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 7");
    }
}
