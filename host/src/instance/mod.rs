//! A running module instance as the hub sees it: its route table, calls into its handlers and
//! health check under a timeout with panics caught, and its shutdown hook, run once after its
//! last request (when the last `Arc<Instance>` drops) or at hub exit.

mod checks;
mod routes;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_ffi::FfiFuture;
use chrono::{DateTime, SubsecRound as _, Utc};
use futures_util::FutureExt as _;
use plugin_api::HealthStatus;
use plugin_api::ffi::{FfiResponse, JobRunBox, ModuleBox, RequestBox};
use serde::Serialize;
use tokio::task::JoinHandle;

pub use self::checks::{Checks, Refusal};
pub use self::routes::{RouteInfo, RouteMatch, RouteTable};
use std::collections::BTreeMap;

use crate::assets::ModuleAssets;
use crate::db::migrate::MigrationSpec;
use crate::identity::Identity;
use crate::loader::LibraryInfo;
use crate::manifest::Audience;
use crate::templates::ModuleTemplates;

/// How many health reports an instance remembers.
pub const HEALTH_KEPT: usize = 20;

/// A health report of a module.
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

/// A job a module declares.
#[derive(Debug, Clone)]
pub struct JobDef {
    pub name: String,
    pub schedule: Schedule,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
}

/// When a job runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// When the module enqueues it.
    Enqueued,
    /// Once a period, the periods starting at multiples of its length since 1970 (UTC).
    Every(Duration),
    /// At each occurrence of a cron expression, in UTC.
    Cron(String, Box<croner::Cron>),
}

impl JobDef {
    /// The job of `declared`, its cron expression read (`Err` naming the job otherwise).
    fn read(module: &str, declared: plugin_api::ffi::FfiJobDef) -> Result<JobDef, String> {
        let name = declared.name.into_string();
        let cron = declared.cron.into_string();
        let schedule = if !cron.is_empty() {
            let parsed = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Optional)
                .build()
                .parse(&cron)
                .map_err(|e| {
                    format!(
                        "module '{module}': job '{name}' has the cron expression {cron:?}, which cannot be read ({e}): write five fields, minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\""
                    )
                })?;
            Schedule::Cron(cron, Box::new(parsed))
        } else if declared.every_ms > 0 {
            Schedule::Every(Duration::from_millis(declared.every_ms))
        } else {
            Schedule::Enqueued
        };
        Ok(JobDef {
            name,
            schedule,
            timeout: Duration::from_millis(declared.timeout_ms.max(1)),
            attempts: declared.attempts.max(1),
            backoff: Duration::from_millis(declared.backoff_ms),
        })
    }

    /// The period `now` is in: the start of the current period, or the cron expression's
    /// latest occurrence at or before `now`. `None` for an enqueued job.
    pub fn period(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.schedule {
            Schedule::Enqueued => None,
            Schedule::Every(every) => {
                let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
                DateTime::from_timestamp_millis(now.timestamp_millis() / every * every)
            }
            // Whole seconds: croner keeps the fraction of the time it starts from.
            Schedule::Cron(_, cron) => cron
                .find_previous_occurrence(&now.trunc_subsecs(0), true)
                .ok(),
        }
    }

    /// When the next period starts after `now`. `None` for an enqueued job.
    pub fn next_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.schedule {
            Schedule::Enqueued => None,
            Schedule::Every(every) => {
                let every = i64::try_from(every.as_millis()).ok()?.max(1);
                DateTime::from_timestamp_millis((now.timestamp_millis() / every + 1) * every)
            }
            Schedule::Cron(_, cron) => cron.find_next_occurrence(&now.trunc_subsecs(0), false).ok(),
        }
    }
}

/// Who may use a module.
pub struct Access {
    /// The module's permissions (`module.json`), name → description.
    pub permissions: BTreeMap<String, String>,
    pub audience: Option<Audience>,
    /// The hub's identity: the audit log of the module's requests.
    pub identity: Arc<Identity>,
    /// The modules it declares in `dependencies`: the ones it may call (`req.call`).
    pub dependencies: Vec<String>,
}

/// One started module.
pub struct Instance {
    name: String,
    access: Access,
    info: LibraryInfo,
    object: ModuleBox,
    routes: RouteTable,
    loaded_at: DateTime<Utc>,
    /// The last health reports, oldest first (at most [`HEALTH_KEPT`]).
    health: Mutex<std::collections::VecDeque<HealthReport>>,
    shutdown_started: AtomicBool,
    reaper: Reaper,
    migrations: Vec<MigrationSpec>,
    assets: ModuleAssets,
    templates: ModuleTemplates,
    /// The module's jobs, read once.
    jobs: Vec<JobDef>,
}

/// What a module library gave when its module was initialised.
pub struct Started {
    pub info: LibraryInfo,
    pub object: ModuleBox,
    pub migrations: Vec<MigrationSpec>,
    pub assets: ModuleAssets,
}

impl Instance {
    /// Wrap a freshly initialised module; `Err` when its route table or its templates are
    /// unusable.
    pub fn new(
        name: &str,
        started: Started,
        reaper: Reaper,
        access: Access,
    ) -> Result<Instance, String> {
        let Started {
            info,
            object,
            migrations,
            assets,
        } = started;
        let routes = RouteTable::new(
            name,
            object.routes().into_iter().collect(),
            &access.permissions,
        )?;
        let templates = ModuleTemplates::new(name, &assets)?;
        let jobs = object
            .jobs()
            .into_iter()
            .map(|j| JobDef::read(name, j))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Instance {
            jobs,
            name: name.to_owned(),
            access,
            info,
            object,
            routes,
            loaded_at: Utc::now(),
            health: Mutex::new(std::collections::VecDeque::new()),
            shutdown_started: AtomicBool::new(false),
            reaper,
            migrations,
            assets,
            templates,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &LibraryInfo {
        &self.info
    }

    /// Who may use the module.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Who may call route `index`.
    pub fn route_access(&self, index: u32) -> &plugin_api::ffi::FfiAccess {
        self.routes.access(index)
    }

    /// The checks of route `index`'s typed inputs; `None` for an untyped route.
    pub fn checks(&self, index: u32) -> Option<&Checks> {
        self.routes.checks(index)
    }

    /// The metrics series of API route `index`, while metrics are on.
    #[inline]
    pub fn route_metrics(&self, index: u32) -> Option<&crate::metrics::RouteMetrics> {
        self.routes.metrics(index)
    }

    /// Every route with its full path.
    pub fn routes(&self) -> &[RouteInfo] {
        self.routes.listed()
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
        self.routes.route(method, path)
    }

    /// Find the view for `method` and `path` (relative to `/modules/<name>`).
    pub fn view(&self, method: &str, path: &str) -> RouteMatch {
        self.routes.view(method, path)
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
    pub fn templates(&self) -> &ModuleTemplates {
        &self.templates
    }
}

impl Instance {
    /// Run handler `index`: a future of its response, `Err(message)` when it panicked past
    /// plugin-api's own guard. `Unpin`, so the caller may poll it once in place and box it only
    /// if it has to wait.
    pub fn call(&self, index: u32, request: RequestBox) -> Call {
        Call(self.object.call(index, request))
    }

    /// The module's jobs, as it declares them.
    pub fn jobs(&self) -> &[JobDef] {
        &self.jobs
    }

    /// Run job `index` (into [`Instance::jobs`]) for `run`: `Err` with why it failed (a panic
    /// of the module's is caught on its side; one that escapes is caught here).
    pub async fn run_job(&self, index: u32, run: JobRunBox) -> Result<(), String> {
        let run = self.object.run_job(index, run);
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(outcome) => outcome.into_result().map_err(|e| e.into_string()),
            Err(panic) => Err(format!("panicked: {}", panic_text(&*panic))),
        }
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
        if let Ok(mut history) = self.health.lock() {
            if history.len() == HEALTH_KEPT {
                history.pop_front();
            }
            history.push_back(report.clone());
        }
        report
    }

    /// The last health report, if any check ran.
    pub fn last_health(&self) -> Option<HealthReport> {
        self.health.lock().ok().and_then(|h| h.back().cloned())
    }

    /// The last health reports, newest first.
    pub fn health_history(&self) -> Vec<HealthReport> {
        self.health
            .lock()
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default()
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

/// A call into a module's handler: its response, or the message of a panic that escaped
/// plugin-api's own guard (each poll is guarded).
pub struct Call(FfiFuture<FfiResponse>);

impl Future for Call {
    type Output = Result<FfiResponse, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| std::pin::Pin::new(fut).poll(cx))) {
            Ok(std::task::Poll::Ready(response)) => std::task::Poll::Ready(Ok(response)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic_text(&*panic))),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(every_ms: u64, cron: &str) -> plugin_api::ffi::FfiJobDef {
        plugin_api::ffi::FfiJobDef {
            name: "sync".into(),
            every_ms,
            cron: cron.into(),
            timeout_ms: 1000,
            attempts: 1,
            backoff_ms: 0,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn periods_start_on_multiples_of_their_length() {
        let job = JobDef::read("m", declared(60_000, "")).unwrap();
        let now = DateTime::from_timestamp_millis(1_000_000_123_456).unwrap();
        assert_eq!(
            job.period(now).map(|t| t.timestamp_millis()),
            Some(1_000_000_080_000)
        );
        assert_eq!(
            job.next_run(now).map(|t| t.timestamp_millis()),
            Some(1_000_000_140_000)
        );
        let job = JobDef::read("m", declared(0, "")).unwrap();
        assert_eq!((job.period(now), job.next_run(now)), (None, None));
    }

    #[test]
    fn a_cron_period_is_its_latest_occurrence_and_the_next_one_follows() {
        let job = JobDef::read("m", declared(0, "0 3 * * *")).unwrap();
        let now = at("2026-12-02T11:37:24Z");
        assert_eq!(job.period(now), Some(at("2026-12-02T03:00:00Z")));
        assert_eq!(job.next_run(now), Some(at("2026-12-03T03:00:00Z")));
        // At the occurrence itself, it is the current period.
        let now = at("2026-12-03T03:00:00Z");
        assert_eq!(job.period(now), Some(now));
        // With seconds.
        let job = JobDef::read("m", declared(0, "*/2 * * * * *")).unwrap();
        assert_eq!(
            job.period(at("2026-12-02T11:37:25.5Z")),
            Some(at("2026-12-02T11:37:24Z"))
        );
    }

    #[test]
    fn an_unreadable_cron_expression_names_the_module_and_the_job() {
        let error = JobDef::read("billing", declared(0, "every night")).unwrap_err();
        assert!(
            error.starts_with(
                "module 'billing': job 'sync' has the cron expression \"every night\", which cannot be read ("
            ),
            "{error}"
        );
        assert!(
            error.ends_with(
                "): write five fields, minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\""
            ),
            "{error}"
        );
    }
}
