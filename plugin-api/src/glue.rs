//! The glue between an author's [`Module`] and the ABI of `ffi.rs`: `export_module!`, the root
//! module's trampolines, and the adapter that turns a `Module` into a `ModuleObj`. This is the
//! only file of plugin-api with `unsafe` or an `extern "C"` function body.
//!
//! It also holds the module's global allocator (`HubAllocator`, installed by `export_module!`):
//! it forwards to the hub's allocator, found by name in the hub binary before the module's first
//! allocation, so values that cross the boundary are made and freed by one allocator; a library
//! loaded elsewhere (a test binary) keeps the system allocator.
//!
//! Rules this file keeps (see `docs/architecture.md`):
//! - A panic must never unwind across an `extern "C"` or `#[sabi_trait]` boundary: it aborts the
//!   whole hub. Every function the hub calls wraps the author's code in `catch_unwind`, and every
//!   future handed over is polled under `catch_unwind` too (`panic.rs`), so a panic becomes a
//!   value (an error or a 500 response carrying the panic message).

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use async_ffi::{FfiFuture, FutureExt as _};

use crate::ctx::Ctx;
use crate::error::Error;
use crate::ffi::{
    FfiAsset, FfiHealth, FfiJobDef, FfiMigration, FfiResponse, HOST_ALLOCATOR_SYMBOL,
    HostAllocator, InitArgs, JobRunBox, ModuleBox, ModuleInfo, ModuleObj, ModuleObj_TO, PluginRoot,
    PluginRootRef, RequestBox, RouteDef,
};
use crate::http::{IntoResponse, Request};
use crate::module::{Health, InitContext, Module};
use crate::panic::{caught, panic_message, panicked};
use crate::router::Router;

/// Compile-time facts about a module crate, implemented by [`export_module!`](crate::export_module).
#[doc(hidden)]
pub trait ModuleMeta {
    const CRATE_NAME: &'static str;
    const VERSION: &'static str;
}

/// The symbol abi_stable looks up in a library (`abi_stable::library::ROOT_MODULE_LOADER_NAME`);
/// a test keeps the two equal.
/// A module's global allocator: the hub's, when the library runs in a hub (found once, before
/// the first allocation, so every allocation of this copy of the library uses the same one), else
/// the system allocator.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct HubAllocator;

/// The allocator this copy of the library uses, once chosen.
static CHOSEN: AtomicPtr<HostAllocator> = AtomicPtr::new(std::ptr::null_mut());

/// The system allocator behind the same table, for a library loaded outside a hub.
static SYSTEM: HostAllocator = HostAllocator {
    alloc: system_alloc,
    alloc_zeroed: system_alloc_zeroed,
    dealloc: system_dealloc,
    realloc: system_realloc,
};

fn chosen() -> &'static HostAllocator {
    let chosen = CHOSEN.load(Ordering::Acquire);
    if !chosen.is_null() {
        // SAFETY: CHOSEN only ever holds a pointer to a `'static` HostAllocator (the hub's
        // exported one, or SYSTEM).
        return unsafe { &*chosen };
    }
    let found = find_host_allocator();
    let pick = if found.is_null() {
        (&raw const SYSTEM).cast_mut()
    } else {
        found
    };
    // Two threads racing here find the same symbol: they store the same pointer.
    CHOSEN.store(pick, Ordering::Release);
    // SAFETY: as above.
    unsafe { &*pick }
}

#[cfg(target_os = "linux")]
fn find_host_allocator() -> *mut HostAllocator {
    unsafe extern "C" {
        fn dlsym(
            handle: *mut std::ffi::c_void,
            symbol: *const std::ffi::c_char,
        ) -> *mut std::ffi::c_void;
    }
    // SAFETY: dlsym with RTLD_DEFAULT (a null handle on Linux) and a NUL-terminated name only
    // looks the name up; the hub exports a `HostAllocator` under it, never another type.
    unsafe { dlsym(std::ptr::null_mut(), HOST_ALLOCATOR_SYMBOL.as_ptr()) }.cast()
}

#[cfg(not(target_os = "linux"))]
fn find_host_allocator() -> *mut HostAllocator {
    std::ptr::null_mut()
}

// SAFETY: every method forwards the caller's layout unchanged to one allocator, chosen once per
// copy of the library, so memory is always freed by the allocator that made it.
unsafe impl GlobalAlloc for HubAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is the allocator's.
        unsafe { (chosen().alloc)(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { (chosen().alloc_zeroed)(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by the same chosen allocator with `layout`.
        unsafe { (chosen().dealloc)(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { (chosen().realloc)(ptr, layout.size(), layout.align(), new_size) }
    }
}

unsafe extern "C" fn system_alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: size and align come from a valid Layout (see `HubAllocator`).
    unsafe { System.alloc(Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn system_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    // SAFETY: as in `system_alloc`.
    unsafe { System.alloc_zeroed(Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn system_dealloc(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: as in `system_alloc`; `ptr` came from `System` with this layout.
    unsafe { System.dealloc(ptr, Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn system_realloc(
    ptr: *mut u8,
    size: usize,
    align: usize,
    new: usize,
) -> *mut u8 {
    // SAFETY: as in `system_dealloc`.
    unsafe { System.realloc(ptr, Layout::from_size_align_unchecked(size, align), new) }
}

#[cfg(test)]
const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

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
        $crate::export_module!($module, version = ::core::env!("CARGO_PKG_VERSION"));
    };
    ($module:ty, version = $version:expr) => {
        /// Every allocation of this library goes to the hub's allocator (see plugin-api's glue).
        #[global_allocator]
        static __BMC_HUB_ALLOCATOR: $crate::__private::HubAllocator =
            $crate::__private::HubAllocator;

        impl $crate::__private::ModuleMeta for $module {
            const CRATE_NAME: &'static str = ::core::env!("CARGO_CRATE_NAME");
            const VERSION: &'static str = $version;
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
            .map(|(method, path, view, access, doc)| RouteDef {
                method: method.into(),
                path: path.into(),
                view,
                access: access.clone(),
                doc: serde_json::to_string(doc).unwrap_or_default().into(),
            })
            .collect()
    }

    fn call(&self, route: u32, request: RequestBox) -> FfiFuture<FfiResponse> {
        let started = catch_unwind(AssertUnwindSafe(|| {
            self.router.call(
                route as usize,
                self.module.clone(),
                Request::new(request, self.ctx.clone()),
            )
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

    fn jobs(&self) -> RVec<FfiJobDef> {
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.router
            .jobs()
            .map(|j| FfiJobDef {
                name: j.name.into(),
                every_ms: j.every.map_or(0, millis),
                cron: j.cron.unwrap_or_default().into(),
                timeout_ms: millis(j.timeout),
                attempts: j.attempts,
                backoff_ms: millis(j.backoff),
            })
            .collect()
    }

    fn run_job(&self, job: u32, run: JobRunBox) -> FfiFuture<RResult<(), RString>> {
        let name = self
            .router
            .jobs()
            .nth(job as usize)
            .map(|j| j.name.to_owned())
            .unwrap_or_default();
        let run = crate::jobs::Job {
            id: run.id(),
            name,
            payload: serde_json::from_str(run.payload().as_str())
                .unwrap_or(serde_json::Value::Null),
            attempt: run.attempt(),
            ctx: self.ctx.clone(),
            run: std::sync::Arc::new(run),
        };
        let started = catch_unwind(AssertUnwindSafe(|| {
            self.router.run_job(job as usize, self.module.clone(), run)
        }));
        async move {
            let outcome = match started {
                Ok(Some(fut)) => match caught(fut).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.message().to_owned()),
                    Err(panic) => Err(format!("panicked: {panic}")),
                },
                Ok(None) => Err(format!("the module has no job #{job}")),
                Err(panic) => Err(format!("panicked: {}", panic_message(&*panic))),
            };
            match outcome {
                Ok(()) => RResult::ROk(()),
                Err(why) => RResult::RErr(why.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
        let macro_source = include_str!("glue.rs");
        assert!(macro_source.contains(&format!("export_name = \"{ROOT_MODULE_SYMBOL}\"")));
    }
}
