//! The stable ABI between the hub and a module: every type that crosses the boundary, and
//! nothing else. The root module every library exports, the request/response/health types, the
//! module object the hub calls and the host object the module calls back. The hub reads these
//! types; the glue that adapts an author's `Module` to them is in `glue.rs`.
//!
//! Rules this file keeps (see `docs/architecture.md`):
//! - The root module and the trait objects only grow by appending after `last_prefix_field`,
//!   and every such change bumps plugin-api's minor version.
//! - Nothing here depends on the rest of plugin-api: this is the bottom room.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RCowStr, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};
use async_ffi::FfiFuture;

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
    /// Who may call the route; the hub checks before calling the module.
    pub access: FfiAccess,
    /// The route's [`RouteDoc`] as JSON text: read once, when the module starts.
    pub doc: RString,
}

/// What a route declares about itself, from its handler's doc comment and its argument and
/// return types: the OpenAPI document is built from it, and the hub checks a request's path
/// parameters, query and body against its schemas before the module sees the request. The
/// schemas are JSON Schema (2020-12), subschemas inlined.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RouteDoc {
    /// The first paragraph of the handler's doc comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The rest of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The handler's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// The path parameters: an object schema with one property per `{name}` of the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<serde_json::Value>,
    /// The query parameters: an object schema with one property per parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyDoc>,
    /// The successful answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseDoc>,
    /// The error statuses the handler itself may answer (those the hub adds are not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<u16>,
}

/// A request body: its media type and schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BodyDoc {
    pub media_type: String,
    pub schema: serde_json::Value,
}

/// A successful answer: its status, media type and schema (none for an empty body).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseDoc {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

/// Who may call a route.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum FfiAccess {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in caller (the default).
    SignedIn,
    /// A signed-in caller with this permission of the module (declared in its `module.json`).
    Require(RString),
}

/// The caller of a request, as a module sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiUser {
    /// Stable id: a user's number, `admin` for the bootstrap administrator.
    pub id: RString,
    pub name: RString,
    pub email: ROption<RString>,
    /// `person`, `service` or `admin`.
    pub kind: RString,
    /// The caller's roles.
    pub roles: RVec<RString>,
    /// The caller's permissions of this module (as declared in its `module.json`, without the
    /// module's name).
    pub permissions: RVec<RString>,
}

/// A response as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiResponse {
    pub status: u16,
    /// `Content-Type`, apart from the other headers (nearly every response has one).
    pub content_type: ROption<RCowStr<'static>>,
    /// Borrowed when the module wrote a `&'static str` (the library is never unloaded, so its
    /// statics outlive every response): the common headers cross without a copy.
    pub headers: RVec<Tuple2<RCowStr<'static>, RCowStr<'static>>>,
    pub body: RVec<u8>,
    /// What few responses carry: a panic, a template to render. Boxed, because most responses
    /// carry neither and a response is moved several times on its way out.
    pub special: ROption<RBox<FfiSpecial>>,
}

/// The rare part of a response.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum FfiSpecial {
    /// The handler panicked, with this message. The hub answers 500 `handler_panicked` naming
    /// the module, the route and the message.
    Panic(RString),
    /// A view asks the hub to render a template of the module with a JSON context; `body` is
    /// then empty.
    Template(FfiTemplate),
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

/// The kinds of a module's own metrics.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Durations in seconds, in the hub's buckets (1 ms to 10 s).
    Histogram,
}

/// What an update of a metric does.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    Add,
    Set,
    Observe,
}

/// A request a module sends to another system.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiOutbound {
    pub method: RString,
    pub url: RString,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
    /// 0: the hub's default (10 s); at most 60 s.
    pub timeout_ms: u64,
    /// The largest body the module takes; 0: the hub's default (1 MiB); at most 16 MiB.
    pub max_bytes: u64,
    /// How many redirects to follow (each to an allowed host); the hub's default is 5.
    pub redirects: u32,
}

/// The other system's answer.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiInbound {
    pub status: u16,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
    /// `DRY_RUN` kept the request from being sent: `status` is 202 and the body empty.
    pub dry_run: bool,
}

/// A job a module declares: `every_ms` > 0 for a recurring one (run once per period across every
/// hub), 0 for one the module enqueues.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiJobDef {
    pub name: RString,
    /// A recurring job's period (0: not one).
    pub every_ms: u64,
    /// A recurring job's cron expression, in UTC (empty: not one).
    pub cron: RString,
    /// A run longer than this is cancelled (and counts as a failed attempt).
    pub timeout_ms: u64,
    /// Attempts in all before the run is `failed`.
    pub attempts: u32,
    /// The wait before the second attempt; doubled before each next one.
    pub backoff_ms: u64,
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

        /// A series of the module's own metrics (plugin-api 0.5): `kind`, the name without the
        /// hub's prefix, its help text, and labels beside `module`. The same name and labels
        /// give the same series (a reloaded module counts on); an invalid name, label or kind
        /// is an error naming the rule.
        fn metric(
            &self,
            kind: MetricKind,
            name: RStr<'_>,
            help: RStr<'_>,
            labels: RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>,
        ) -> RResult<MetricBox, RString>;

        /// Send an HTTP request to another system through the hub's client (plugin-api 0.5):
        /// only to hosts the module's `outbound` list allows, not at all while `DRY_RUN` is on
        /// and the method may change something. The error is JSON: `{"code", "message"}`.
        fn http(&self, request: FfiOutbound) -> FfiFuture<RResult<FfiInbound, RString>>;

        /// Run `task` on the hub's blocking pool, at most `HUB_MODULE_BLOCKING_THREADS` of the
        /// module's at once (the others wait their turn) (plugin-api 0.5). Completes when it
        /// has run.
        fn spawn_blocking(&self, task: BlockingBox) -> FfiFuture<RResult<(), RString>>;

        /// Enqueue a run of the module's job `name` with a JSON `payload`, due in `delay_ms`
        /// (plugin-api 0.5): its row's id, or why not (no such job, no database).
        fn enqueue(
            &self,
            name: RStr<'_>,
            payload: RString,
            delay_ms: u64,
        ) -> FfiFuture<RResult<i64, RString>>;
    }

    /// Blocking or CPU-heavy work of a module's, run once on a thread of the hub's blocking
    /// pool. Implemented by plugin-api (which catches the work's panic).
    #[sabi_trait]
    pub trait BlockingObj: Send + Sync + 'static {
        #[sabi(last_prefix_field)]
        fn run(&self);
    }

    /// Blocking work as the hub holds it.
    pub type BlockingBox = BlockingObj_TO<RBox<()>>;

    /// One series of a module's metric, as the module holds it. Implemented by the hub.
    #[sabi_trait]
    pub trait MetricObj: Send + Sync + 'static {
        /// Count `value`: a counter adds it (whole, not negative), a gauge adds it (`Add`) or
        /// takes it (`Set`), a histogram observes it (seconds).
        #[sabi(last_prefix_field)]
        fn update(&self, op: MetricOp, value: f64);
    }

    /// A metric series as the module holds it.
    pub type MetricBox = MetricObj_TO<RBox<()>>;

    /// The host object as the module holds it.
    pub type HostBox = HostObj_TO<RBox<()>>;

    /// A request routed to a module, as an object of the hub's: the module reads it through
    /// these methods, so nothing is copied that the handler does not ask for (a handler that
    /// never reads a header costs no header). Implemented by the hub; every method catches
    /// panics on the hub's side.
    #[sabi_trait]
    pub trait RequestObj: Send + Sync + 'static {
        /// The HTTP method, upper case.
        fn method(&self) -> RStr<'_>;

        /// The path relative to the module's mount point, as sent (percent-encoded).
        fn path(&self) -> RStr<'_>;

        /// The path parameter `name` of the matched route, percent-decoded.
        fn param(&self, name: RStr<'_>) -> ROption<RStr<'_>>;

        /// The query string, without `?`.
        fn query(&self) -> RStr<'_>;

        /// The first value of header `name` (case-insensitive), if it is UTF-8.
        fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>>;

        /// Every header whose value is UTF-8, as (lowercase name, value).
        fn headers(&self) -> RVec<Tuple2<RStr<'_>, RStr<'_>>>;

        /// The body.
        fn body(&self) -> RSlice<'_, u8>;

        /// Who is calling; `RNone` for an anonymous caller of a public route.
        fn user(&self) -> ROption<FfiUser>;

        /// Write an entry in the hub's audit log, tagged with the module and the caller; never
        /// part of the module's own database transaction. `details` is JSON text.
        #[sabi(last_prefix_field)]
        fn audit(&self, action: RStr<'_>, target: RStr<'_>, details: RStr<'_>);

        /// Call route `method path` (`path` relative to the other module's mount point, with
        /// its query) of `module` in-process, for this request's caller and with its request id
        /// (plugin-api 0.5). Only a module named in `dependencies`; the route's permission is
        /// checked as for a client, its audience is not. The hub's refusals come back as
        /// responses with its error body.
        fn call(
            &self,
            module: RStr<'_>,
            method: RStr<'_>,
            path: RStr<'_>,
            body: RVec<u8>,
        ) -> FfiFuture<FfiResponse>;
    }

    /// A request as the module holds it.
    pub type RequestBox = RequestObj_TO<RBox<()>>;

    /// One run of a module's job, as an object of the hub's (plugin-api 0.5): the row, and what
    /// the run does as the module's service identity (there is no user behind a job). Every
    /// method catches panics on the hub's side.
    #[sabi_trait]
    pub trait JobRunObj: Send + Sync + 'static {
        /// The run's row in `hub_jobs`.
        fn id(&self) -> i64;

        /// The payload it was enqueued with, as JSON text (`null` for a recurring run).
        fn payload(&self) -> RStr<'_>;

        /// 1 for the first attempt, 2 after one failure, …
        fn attempt(&self) -> u32;

        /// Write an entry in the hub's audit log in the name of the module's service identity
        /// (`module:<name>`), tagged with the job and the run.
        fn audit(&self, action: RStr<'_>, target: RStr<'_>, details: RStr<'_>);

        /// Call route `method path` of `module` (one of `dependencies`) as the module's service
        /// identity: the route's permission is checked against the roles the operator gave
        /// `module:<name>`, as [`RequestObj::call`] checks the caller's.
        #[sabi(last_prefix_field)]
        fn call(
            &self,
            module: RStr<'_>,
            method: RStr<'_>,
            path: RStr<'_>,
            body: RVec<u8>,
        ) -> FfiFuture<FfiResponse>;
    }

    /// A job run as the module holds it.
    pub type JobRunBox = JobRunObj_TO<RBox<()>>;

    /// A module instance as the hub holds it. Implemented by plugin-api for every `Module`.
    #[sabi_trait]
    pub trait ModuleObj: Send + Sync + 'static {
        /// The route table; `call` takes an index into it.
        fn routes(&self) -> RVec<RouteDef>;

        /// Run the handler of route `route` on `request`.
        fn call(&self, route: u32, request: RequestBox) -> FfiFuture<FfiResponse>;

        /// Run the module's health check.
        fn health(&self) -> FfiFuture<FfiHealth>;

        /// Run the module's shutdown hook; called once, after the instance's last request.
        #[sabi(last_prefix_field)]
        fn shutdown(&self) -> FfiFuture<()>;

        /// The module's jobs (plugin-api 0.5): recurring ones and those it enqueues.
        fn jobs(&self) -> RVec<FfiJobDef>;

        /// Run job `job` (an index into [`ModuleObj::jobs`]) for `run` (its row, payload and
        /// attempt, and what it may do as the module's service identity); `RErr` with why it
        /// failed (a panic included).
        fn run_job(&self, job: u32, run: JobRunBox) -> FfiFuture<RResult<(), RString>>;
    }

    /// A module instance as the hub holds it.
    pub type ModuleBox = ModuleObj_TO<RBox<()>>;
}

/// The root module every module library exports (through `export_module!`).
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

/// The name under which the hub binary exports its allocator ([`HostAllocator`]), for modules to
/// find with `dlsym` before their first allocation (see `glue.rs`). The version is in the name:
/// a module that does not find it keeps the system allocator.
pub const HOST_ALLOCATOR_SYMBOL: &std::ffi::CStr = c"bmc_hub_allocator_v1";

/// The hub's allocator as a module calls it: every allocation a module makes (requests it
/// builds, responses it hands over) comes from, and returns to, the hub's allocator.
#[repr(C)]
pub struct HostAllocator {
    pub alloc: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub alloc_zeroed: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub dealloc: unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize),
    pub realloc:
        unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8,
}
