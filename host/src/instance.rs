//! A running module instance as the hub sees it: its route table (matched with matchit), calls
//! into its handlers and health check under a timeout with panics caught, and its shutdown hook,
//! run once after its last request (when the last `Arc<Instance>` drops) or at hub exit.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_ffi::FfiFuture;
use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use plugin_api::HealthStatus;
use plugin_api::ffi::{FfiRequest, FfiResponse, ModuleBox};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::db::migrate::MigrationSpec;
use crate::loader::LibraryInfo;
use crate::views::ModuleAssets;
/// Where a request's method and path lead within a module.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        index: u32,
        params: Vec<(String, String)>,
    },
    /// The path exists, with these methods only.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// The last health report of a module.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `healthy`, `degraded` or `unhealthy`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub detail: String,
    pub checked_at: DateTime<Utc>,
}

impl HealthReport {
    fn new(status: HealthStatus, detail: String) -> HealthReport {
        HealthReport {
            status: match status {
                HealthStatus::Healthy => "healthy",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Unhealthy => "unhealthy",
            },
            detail,
            checked_at: Utc::now(),
        }
    }

    pub fn is_unhealthy(&self) -> bool {
        self.status == "unhealthy"
    }
}

/// A route as the module object lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
}

/// One started module.
pub struct Instance {
    name: String,
    info: LibraryInfo,
    object: ModuleBox,
    router: matchit::Router<Vec<(String, u32)>>,
    views: matchit::Router<Vec<(String, u32)>>,
    routes: Vec<RouteInfo>,
    loaded_at: DateTime<Utc>,
    health: Mutex<Option<HealthReport>>,
    shutdown_started: AtomicBool,
    reaper: Reaper,
    migrations: Vec<MigrationSpec>,
    assets: ModuleAssets,
    pages: minijinja::Environment<'static>,
}
impl Instance {
    /// Wrap a freshly initialised module; `Err` when its route table is unusable.
    pub fn new(
        name: &str,
        info: LibraryInfo,
        object: ModuleBox,
        migrations: Vec<MigrationSpec>,
        assets: ModuleAssets,
        reaper: Reaper,
    ) -> Result<Instance, String> {
        // (API, views): path → [(method, index)]
        let mut by_path: [BTreeMap<String, Vec<(String, u32)>>; 2] = Default::default();
        let mut routes = vec![RouteInfo {
            method: "GET".to_owned(),
            path: format!("/api/v1/{name}/health"),
        }];
        for (index, def) in object.routes().into_iter().enumerate() {
            let method = def.method.as_str().to_ascii_uppercase();
            let path = def.path.into_string();
            let surface = if def.view { "view" } else { "route" };
            if !def.view && method == "GET" && path == "/health" {
                return Err("route GET /health is the hub's own (it calls the module's health hook): remove it from routes()".to_owned());
            }
            if def.view && (path == "/static" || path.starts_with("/static/")) {
                return Err(format!(
                    "view {method} {path} is the hub's: /static/… serves the module's static files"
                ));
            }
            let methods = by_path[usize::from(def.view)]
                .entry(path.clone())
                .or_default();
            if methods.iter().any(|(m, _)| *m == method) {
                return Err(format!("{surface} {method} {path} is declared twice"));
            }
            let index = u32::try_from(index).map_err(|_| "too many routes".to_owned())?;
            methods.push((method.clone(), index));
            let mount = if def.view {
                format!("/modules/{name}")
            } else {
                format!("/api/v1/{name}")
            };
            routes.push(RouteInfo {
                method,
                path: format!("{mount}{path}"),
            });
        }
        let [api, views] = by_path.map(|paths| {
            let mut router = matchit::Router::new();
            for (path, methods) in paths {
                router
                    .insert(path.clone(), methods)
                    .map_err(|e| format!("route {path} is invalid: {e}"))?;
            }
            Ok::<_, String>(router)
        });
        let pages = crate::views::module_environment(name, &assets)?;
        Ok(Instance {
            name: name.to_owned(),
            info,
            object,
            router: api?,
            views: views?,
            routes,
            loaded_at: Utc::now(),
            health: Mutex::new(None),
            shutdown_started: AtomicBool::new(false),
            reaper,
            migrations,
            assets,
            pages,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &LibraryInfo {
        &self.info
    }

    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// The migrations this version declares.
    pub fn migrations(&self) -> &[MigrationSpec] {
        &self.migrations
    }

    pub fn loaded_at(&self) -> DateTime<Utc> {
        self.loaded_at
    }

    /// Find the API handler for `method` and `path` (relative to `/api/v1/<name>`).
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        find(&self.router, method, path)
    }

    /// Find the view for `method` and `path` (relative to `/modules/<name>`).
    pub fn view(&self, method: &str, path: &str) -> RouteMatch {
        find(&self.views, method, path)
    }

    /// Whether the module has a page at its root, for links to it.
    pub fn has_home_page(&self) -> bool {
        matches!(self.view("GET", "/"), RouteMatch::Found { .. })
    }

    /// The module's templates and static files.
    pub fn assets(&self) -> &ModuleAssets {
        &self.assets
    }

    /// The module's templates, ready to render in the hub's layout.
    pub fn pages(&self) -> &minijinja::Environment<'static> {
        &self.pages
    }
}

fn find(router: &matchit::Router<Vec<(String, u32)>>, method: &str, path: &str) -> RouteMatch {
    {
        let Ok(found) = router.at(path) else {
            return RouteMatch::NotFound;
        };
        match found.value.iter().find(|(m, _)| m == method) {
            Some((_, index)) => RouteMatch::Found {
                index: *index,
                params: found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            },
            None => {
                RouteMatch::MethodNotAllowed(found.value.iter().map(|(m, _)| m.clone()).collect())
            }
        }
    }
}

impl Instance {
    /// Run handler `index`. `Err(message)` when it panicked past plugin-api's own guard.
    pub async fn call(&self, index: u32, request: FfiRequest) -> Result<FfiResponse, String> {
        let fut = self.object.call(index, request);
        AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .map_err(|panic| panic_text(&*panic))
    }

    /// Run the health check, bounded by `timeout`; remember and return the report.
    pub async fn check_health(&self, timeout: Duration) -> HealthReport {
        let fut = AssertUnwindSafe(self.object.health()).catch_unwind();
        let report = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(health)) => HealthReport::new(health.status, health.detail.into_string()),
            Ok(Err(panic)) => HealthReport::new(
                HealthStatus::Unhealthy,
                format!("health check panicked: {}", panic_text(&*panic)),
            ),
            Err(_) => HealthReport::new(
                HealthStatus::Unhealthy,
                format!(
                    "health check did not answer within {} ms",
                    timeout.as_millis()
                ),
            ),
        };
        if let Ok(mut last) = self.health.lock() {
            *last = Some(report.clone());
        }
        report
    }

    /// The last health report, if any check ran.
    pub fn last_health(&self) -> Option<HealthReport> {
        self.health.lock().ok().and_then(|h| h.clone())
    }

    /// Start the shutdown hook now, unless it already started. The hub calls this at exit; for
    /// a replaced or disabled instance, `Drop` does it after the last request.
    pub fn begin_shutdown(&self) {
        if !self.shutdown_started.swap(true, Ordering::SeqCst) {
            self.reaper.run(self.name.clone(), self.object.shutdown());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Runs shutdown hooks on the hub's main runtime, each bounded by the grace period, and lets the
/// hub wait for the ones still running when it exits.
#[derive(Clone)]
pub struct Reaper {
    runtime: tokio::runtime::Handle,
    grace: Duration,
    running: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Reaper {
    /// A reaper on the current runtime (call from within it).
    pub fn new(grace: Duration) -> Reaper {
        Reaper {
            runtime: tokio::runtime::Handle::current(),
            grace,
            running: Arc::default(),
        }
    }

    fn run(&self, module: String, hook: FfiFuture<()>) {
        let grace = self.grace;
        let task = self.runtime.spawn(async move {
            let hook = AssertUnwindSafe(hook).catch_unwind();
            match tokio::time::timeout(grace, hook).await {
                Ok(Ok(())) => tracing::debug!(module = %module, "shutdown hook finished"),
                Ok(Err(panic)) => tracing::error!(
                    module = %module,
                    "shutdown hook panicked: {}",
                    panic_text(&*panic)
                ),
                Err(_) => tracing::warn!(
                    module = %module,
                    "shutdown hook still running after {} ms; abandoned",
                    grace.as_millis()
                ),
            }
        });
        if let Ok(mut running) = self.running.lock() {
            running.retain(|t| !t.is_finished());
            running.push(task);
        }
    }

    /// Wait for every tracked hook (each is bounded by the grace period already).
    pub async fn drain(&self) {
        let tasks = self
            .running
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
