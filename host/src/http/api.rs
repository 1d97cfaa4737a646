//! The hub's own HTTP routes: the management API (`/api/v1/modules…`, admin token required),
//! `/healthz` and `/ping`. Names from URLs are validated before anything else uses them, so no
//! request can name a path outside `MODULES_DIR`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody, not_found};
use crate::config::module as module_settings;
use crate::db::DbUnavailable;
use crate::db::identity::StoreError;
use crate::deps::document::{GraphDocument, document, svg};
use crate::identity::Event;
use crate::instance::Schedule;
use crate::lifecycle::{ActionError, GraphOptions, Hub};
use crate::manifest::Audience;
use crate::names;
use crate::registry::{ModuleEntry, State};
use crate::status::{self, ModuleObject};
use crate::usage::{Period, Report};

/// The hub's own health: it is up, and how many modules are in each state.
#[derive(Serialize, ToSchema)]
pub struct HubHealth {
    /// Always `ok` when the hub answers.
    status: String,
    modules: StateCounts,
}

#[derive(Serialize, ToSchema)]
pub struct StateCounts {
    running: usize,
    disabled: usize,
    failed: usize,
}

/// How enable and disable treat the modules around.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// `enable`: enable the dependencies that do not run first, in order.
    #[serde(default)]
    with_dependencies: bool,
    /// `disable`: disable the running modules that need it first, in reverse order.
    #[serde(default)]
    cascade: bool,
}

impl From<ActionQuery> for GraphOptions {
    fn from(q: ActionQuery) -> GraphOptions {
        GraphOptions {
            with_dependencies: q.with_dependencies,
            cascade: q.cascade,
        }
    }
}

/// A management action.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModuleAction {
    /// Set `enabled: true` in module.json and start the module (no-op when running).
    Enable,
    /// Set `enabled: false` in module.json and stop routing to the module.
    Disable,
    /// Read the module's folder again and apply it; a failed start keeps the old version.
    Reload,
}

/// The hub is up; counts of modules by state.
#[utoipa::path(get, path = "/healthz", tag = "hub",
    responses((status = 200, description = "The hub is up", body = HubHealth)))]
pub(crate) async fn healthz(hub: web::Data<Hub>) -> HttpResponse {
    let all = hub.registry().all();
    let count = |state| all.values().filter(|e| e.kind() == state).count();
    HttpResponse::Ok().json(HubHealth {
        status: "ok".to_owned(),
        modules: StateCounts {
            running: count(State::Running),
            disabled: count(State::Disabled),
            failed: count(State::Failed),
        },
    })
}

/// The cheapest answer the hub gives; also the native baseline of the dispatch benchmark.
#[utoipa::path(get, path = "/ping", tag = "hub",
    responses((status = 200, description = "Always `{\"pong\": true}`", body = Object)))]
pub(crate) async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(json!({"pong": true}))
}

/// Every module, by name.
#[utoipa::path(get, path = "/api/v1/modules", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "Every module, by name", body = [ModuleObject]),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
    ))]
pub(crate) async fn list(caller: Caller, hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(modules(&caller, &hub).await?))
}

/// Every module (needs `modules.read`): what `GET /api/v1/modules` and the console show.
pub(crate) async fn modules(caller: &Caller, hub: &Hub) -> Result<Vec<ModuleObject>, ApiError> {
    caller.require("modules.read")?;
    let all = hub.registry().all();
    let entries: Vec<_> = all.values().cloned().collect();
    Ok(objects(hub, &entries).await)
}

/// One module (needs `modules.read`).
pub(crate) async fn module(
    caller: &Caller,
    hub: &Hub,
    name: &str,
) -> Result<ModuleObject, ApiError> {
    caller.require("modules.read")?;
    let name = valid_name(name)?;
    let entry = hub.get(name).map_err(action_error)?;
    one(hub, entry)
        .await
        .ok_or_else(|| ApiError::module_not_found(name))
}

/// A job a module declares, as the jobs API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeclaredJob {
    name: String,
    /// A recurring job's period in milliseconds; `null` for one on a cron schedule or one the
    /// module enqueues.
    every_ms: Option<u64>,
    /// A recurring job's cron expression (UTC); `null` otherwise.
    cron: Option<String>,
    timeout_ms: u64,
    attempts: u32,
    /// The wait before the second attempt, doubled before each next one.
    backoff_ms: u64,
    /// When a recurring job's next period starts (its next run is made then).
    next_run: Option<chrono::DateTime<chrono::Utc>>,
}

/// A module's jobs: what its running version declares, and its last 50 runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsPage {
    declared: Vec<DeclaredJob>,
    runs: Vec<crate::db::jobs::JobRun>,
}

pub(super) fn jobs_store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(DbUnavailable::NotConfigured) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "jobs live in PostgreSQL: set DATABASE_URL",
        ),
        StoreError::Unavailable(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

/// A module's jobs and their recent runs (state, attempts, last error, next run).
#[utoipa::path(get, path = "/api/v1/modules/{name}/jobs", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    responses(
        (status = 200, description = "Declared jobs and recent runs", body = JobsPage),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 503, description = "No database (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn jobs(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(module_jobs(&caller, &hub, &name).await?))
}

/// A module's declared jobs and recent runs (needs `modules.read`).
pub(crate) async fn module_jobs(
    caller: &Caller,
    hub: &Hub,
    name: &str,
) -> Result<JobsPage, ApiError> {
    caller.require("modules.read")?;
    let name = valid_name(name)?;
    let entry = hub.get(name).map_err(action_error)?;
    let now = chrono::Utc::now();
    let declared = entry
        .instance()
        .map(|instance| instance.jobs().to_vec())
        .unwrap_or_default()
        .into_iter()
        .map(|job| {
            let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            let (every_ms, cron) = match &job.schedule {
                Schedule::Enqueued => (None, None),
                Schedule::Every(every) => (Some(millis(*every)), None),
                Schedule::Cron(text, _) => (None, Some(text.clone())),
            };
            DeclaredJob {
                every_ms,
                cron,
                timeout_ms: millis(job.timeout),
                attempts: job.attempts,
                backoff_ms: millis(job.backoff),
                next_run: job.next_run(now),
                name: job.name.clone(),
            }
        })
        .collect();
    let runs = crate::db::jobs::runs(hub.database(), name, 50)
        .await
        .map_err(jobs_store_error)?;
    Ok(JobsPage { declared, runs })
}

/// What can be done to a job's run.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// Queue a failed, cancelled or done run again, its attempts from zero.
    Retry,
    /// Cancel a queued or running run (a running one finishes its attempt, but is not tried
    /// again and its outcome is not written).
    Cancel,
}

/// Try a run of a module's job again, or cancel it.
#[utoipa::path(post, path = "/api/v1/modules/{name}/jobs/{id}/{action}", tag = "modules", security(("bearer" = ["modules.manage"]), ("session" = ["modules.manage"])),
    params(
        ("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"),
        ("id" = i64, Path, description = "The run's id"),
        ("action" = JobAction, Path, description = "retry or cancel"),
    ),
    responses(
        (status = 200, description = "The run after the action", body = crate::db::jobs::JobRun),
        (status = 400, description = "The name breaks the name rule, or the id is not a number", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.manage` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 404, description = "No such module, run or action (`job_not_found`)", body = ErrorBody),
        (status = 409, description = "The run's state does not allow it (`job_state`)", body = ErrorBody),
        (status = 503, description = "No database (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn job_action(
    caller: Caller,
    hub: web::Data<Hub>,
    path: web::Path<(String, i64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id, action) = path.into_inner();
    let run = act_on_job(&caller, &hub, &name, id, &action).await?;
    Ok(HttpResponse::Ok().json(run))
}

/// Try run `id` of `name`'s jobs again (`retry`) or cancel it (`cancel`), for `caller`; the
/// audit log records it. The API and the console both act through this.
pub(crate) async fn act_on_job(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    id: i64,
    action: &str,
) -> Result<crate::db::jobs::JobRun, ApiError> {
    caller.require("modules.manage")?;
    let name = valid_name(name)?;
    hub.get(name).map_err(action_error)?;
    let retry = match action {
        "retry" => true,
        "cancel" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "no job action '{other}': use retry or cancel"
            )));
        }
    };
    let changed = crate::db::jobs::act(hub.database(), name, id, retry)
        .await
        .map_err(jobs_store_error)?;
    let run = match changed {
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "job_not_found",
                format!("module '{name}' has no job run {id}"),
            ));
        }
        Some(Err(state)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_state",
                if retry {
                    format!(
                        "run {id} is {state}: only failed, cancelled or done runs can be tried again"
                    )
                } else {
                    format!("run {id} is {state}: only queued or running runs can be cancelled")
                },
            ));
        }
        Some(Ok(run)) => run,
    };
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: &format!("job.{action}"),
            module: Some(name),
            target: Some(&format!("{} #{id}", run.name)),
            outcome: "ok",
            details: None,
        },
    );
    Ok(run)
}

/// The span and period of a usage report.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// From this time on (RFC 3339; rounded down to its period's start). Default: 24 hours
    /// before `to` (`by=hour`), 30 days before it (`by=day`).
    pub(crate) from: Option<chrono::DateTime<chrono::Utc>>,
    /// Up to this time (RFC 3339, exclusive; rounded up to a period's end). Default: now.
    pub(crate) to: Option<chrono::DateTime<chrono::Utc>>,
    /// The length of each point of the series: `hour` (default) or `day` (days in UTC).
    pub(crate) by: Option<Period>,
}

/// At most this many periods in one report.
const MAX_PERIODS: i64 = 1000;

/// A module's usage: calls, errors, latency percentiles and distinct callers, as a series of
/// hours or days, with its routes, busiest first. Counts of other hubs sharing the database
/// are as they last flushed (about once a minute); this hub's are flushed first.
#[utoipa::path(get, path = "/api/v1/modules/{name}/usage", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    params(
        ("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"),
        UsageQuery,
    ),
    responses(
        (status = 200, description = "The module's usage", body = Report),
        (status = 400, description = "The name breaks the name rule, or a parameter is not a time / `hour` / `day` (`bad_query`)", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 422, description = "`from` is not before `to`, or the span has more than 1000 periods (`validation_failed`)", body = ErrorBody),
        (status = 503, description = "No database (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn usage(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(module_usage(&caller, &hub, &name, query.into_inner()).await?))
}

/// A module's usage report (needs `modules.read`).
pub(crate) async fn module_usage(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    query: UsageQuery,
) -> Result<Report, ApiError> {
    caller.require("modules.read")?;
    let name = valid_name(name)?;
    hub.get(name).map_err(action_error)?;
    let by = query.by.unwrap_or(Period::Hour);
    let to = query.to.unwrap_or_else(chrono::Utc::now);
    let from = query.from.unwrap_or_else(|| match by {
        Period::Hour => to - chrono::TimeDelta::hours(24),
        Period::Day => to - chrono::TimeDelta::days(30),
    });
    if from >= to {
        return Err(ApiError::invalid("from must be before to", "from"));
    }
    let seconds = match by {
        Period::Hour => 3600,
        Period::Day => 86_400,
    };
    if (to - from).num_seconds() / seconds >= MAX_PERIODS {
        return Err(ApiError::invalid(
            format!(
                "the span from {from} to {to} has more than {MAX_PERIODS} periods of one {}: ask for a shorter span or by=day",
                by.as_str()
            ),
            "from",
        ));
    }
    crate::usage::report(hub.database(), name, from, to, by)
        .await
        .map_err(|e| match e {
            StoreError::Unavailable(DbUnavailable::NotConfigured) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "usage analytics live in PostgreSQL: set DATABASE_URL",
            ),
            StoreError::Unavailable(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                e.to_string(),
            ),
            other => ApiError::internal(other.to_string()),
        })
}

/// The dependency graph: every module, and an edge from each to what it needs.
#[utoipa::path(get, path = "/api/v1/modules/graph", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "Nodes and edges", body = GraphDocument),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
    ))]
pub(crate) async fn graph(caller: Caller, hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(graph_document(&caller, &hub)?))
}

/// The dependency graph (needs `modules.read`).
pub(crate) fn graph_document(caller: &Caller, hub: &Hub) -> Result<GraphDocument, ApiError> {
    caller.require("modules.read")?;
    Ok(document(&hub.registry().all()))
}

/// The dependency graph as a picture: states coloured, unmet dependencies dashed red.
#[utoipa::path(get, path = "/api/v1/modules/graph.svg", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
    ))]
pub(crate) async fn graph_svg(
    caller: Caller,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    let document = graph_document(&caller, &hub)?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(svg(&document)))
}

/// One module.
#[utoipa::path(get, path = "/api/v1/modules/{name}", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    responses(
        (status = 200, description = "The module", body = ModuleObject),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
    ))]
pub(crate) async fn get(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(module(&caller, &hub, &name).await?))
}

/// Enable, disable or reload a module: effective at once, idempotent. Answers 200 with the
/// module object whenever the action was carried out, even if the module then failed to start
/// (`state` and `error` say so).
#[utoipa::path(post, path = "/api/v1/modules/{name}/{action}", tag = "modules", security(("bearer" = ["modules.manage"]), ("session" = ["modules.manage"])),
        params(
        ("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"),
        ("action" = ModuleAction, Path, description = "enable, disable or reload"),
        ActionQuery,
    ),
    responses(
        (status = 200, description = "The module after the action", body = ModuleObject),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.manage` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module or action", body = ErrorBody),
                (status = 409, description = "Dependencies not running (enable), or running dependents (disable); `details` names them", body = ErrorBody),
        (status = 403, description = "Sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 422, description = "module.json cannot be read; nothing was written", body = ErrorBody),
        (status = 500, description = "module.json could not be written (`write_failed`, with the OS error)", body = ErrorBody),
    ))]
pub(crate) async fn action(
    caller: Caller,
    req: HttpRequest,
    hub: web::Data<Hub>,
    path: web::Path<(String, String)>,
    options: web::Query<ActionQuery>,
) -> Result<HttpResponse, ApiError> {
    let (name, action) = path.into_inner();
    if !matches!(action.as_str(), "enable" | "disable" | "reload") {
        return Err(ApiError::not_found(format!(
            "unknown module action '{action}': use enable, disable or reload"
        )));
    }
    if req.method() != actix_web::http::Method::POST {
        return Err(ApiError::method_not_allowed(
            format!("{action} takes POST, not {}", req.method()),
            "POST",
        ));
    }
    let object = run_action(&caller, &hub, &name, &action, options.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(object))
}

/// Enable, disable or reload module `name` (needs `modules.manage`), audited: what the
/// management API and the console do.
pub(crate) async fn run_action(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    action: &str,
    options: GraphOptions,
) -> Result<ModuleObject, ApiError> {
    caller.require("modules.manage")?;
    let name = valid_name(name)?;
    let result = match action {
        "enable" => hub.set_enabled(name, true, options).await,
        "disable" => hub.set_enabled(name, false, options).await,
        "reload" => hub.reload(name).await,
        other => {
            return Err(ApiError::not_found(format!(
                "unknown module action '{other}': use enable, disable or reload"
            )));
        }
    }
    .map_err(action_error);
    let (outcome, details) = match &result {
        Ok(entry) => (
            entry.kind().as_str(),
            entry.state.error().map(|e| json!({"error": e.to_string()})),
        ),
        Err(error) => ("failed", Some(json!({"error": error.body().error}))),
    };
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: &format!("module.{action}"),
            module: Some(name),
            target: result.as_ref().ok().and_then(|e| e.version()),
            outcome,
            details,
        },
    );
    one(hub, result?)
        .await
        .ok_or_else(|| ApiError::module_not_found(name))
}

/// Set who sees a module (`module.json`'s `audience`; `null`: everyone who may call its
/// routes), applied at once as a reload.
#[utoipa::path(put, path = "/api/v1/modules/{name}/audience", tag = "modules",
    security(("bearer" = ["modules.manage"]), ("session" = ["modules.manage"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    request_body(content = Option<Audience>, description = "Roles, groups and/or a percentage of users; `null` for everyone"),
    responses(
        (status = 200, description = "The module after the change", body = ModuleObject),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.manage` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 422, description = "An audience the manifest rules refuse; nothing was written", body = ErrorBody),
    ))]
pub(crate) async fn set_audience(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    body: web::Json<Option<Audience>>,
) -> Result<HttpResponse, ApiError> {
    let object = change_audience(&caller, &hub, &name, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(object))
}

/// Set module `name`'s audience (needs `modules.manage`), audited.
pub(crate) async fn change_audience(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    audience: Option<Audience>,
) -> Result<ModuleObject, ApiError> {
    caller.require("modules.manage")?;
    let name = valid_name(name)?;
    let details = json!({"audience": audience});
    let result = hub.set_audience(name, audience).await;
    finish_change(caller, hub, name, "module.audience", details, result).await
}

/// Which safety switches to set (at least one); an absent one stays as it is. Its schema is
/// written by hand below (utoipa's derive writes `min_properties` as `maxProperties`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyChange {
    /// `true`: the module must not write (PostgreSQL refuses its writes).
    #[serde(default, deserialize_with = "switch")]
    pub read_only: Option<bool>,
    /// `true`: the module's writes are rolled back.
    #[serde(default, deserialize_with = "switch")]
    pub dry_run: Option<bool>,
}

/// A switch that is named must be `true` or `false` (`null` is refused, as the schema says).
fn switch<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(deserializer).map(Some)
}

impl utoipa::PartialSchema for SafetyChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
        let switch = |description: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Boolean))
                .description(Some(description))
        };
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Object))
                .description(Some(
                    "Which safety switches to set (at least one); an absent one stays as it is",
                ))
                .property(
                    "read_only",
                    switch("`true`: the module must not write (PostgreSQL refuses its writes)"),
                )
                .property(
                    "dry_run",
                    switch("`true`: the module's writes are rolled back"),
                )
                .min_properties(Some(1))
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for SafetyChange {}

/// Turn a module's safety switches on or off (`module.json`'s `safety`), applied at once as a
/// reload. A switch the hub's environment sets (`MODULES__{NAME}__READ_ONLY`) cannot be changed
/// here: the environment wins over module.json.
#[utoipa::path(put, path = "/api/v1/modules/{name}/safety", tag = "modules",
    security(("bearer" = ["modules.manage"]), ("session" = ["modules.manage"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    request_body(content = SafetyChange, description = "The switches to set"),
    responses(
        (status = 200, description = "The module after the change", body = ModuleObject),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.manage` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 409, description = "The hub's environment sets the switch (`set_by_environment`, naming the variable); nothing was written", body = ErrorBody),
        (status = 422, description = "No switch named (`validation_failed`), or module.json cannot be read; nothing was written", body = ErrorBody),
    ))]
pub(crate) async fn set_safety(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    body: web::Json<SafetyChange>,
) -> Result<HttpResponse, ApiError> {
    let object = change_safety(&caller, &hub, &name, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(object))
}

/// Set module `name`'s safety switches (needs `modules.manage`), audited.
pub(crate) async fn change_safety(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    change: SafetyChange,
) -> Result<ModuleObject, ApiError> {
    caller.require("modules.manage")?;
    let name = valid_name(name)?;
    if change.read_only.is_none() && change.dry_run.is_none() {
        return Err(ApiError::invalid(
            "name a switch to set: {\"read_only\": true|false} and/or {\"dry_run\": true|false}",
            "read_only",
        ));
    }
    let details = json!({"read_only": change.read_only, "dry_run": change.dry_run});
    let env = &hub.config().module_env;
    let result = hub
        .update_manifest(name, "safety", |manifest| {
            let mut safety = manifest.safety.clone();
            for (key, value, slot) in [
                ("READ_ONLY", change.read_only, &mut safety.read_only),
                ("DRY_RUN", change.dry_run, &mut safety.dry_run),
            ] {
                let Some(value) = value else { continue };
                if let Some(variable) = module_settings::environment_variable(manifest, env, key) {
                    return Err(ActionError::SetByEnvironment { variable });
                }
                *slot = Some(value);
            }
            Ok(Some(serde_json::to_value(safety).unwrap_or_default()))
        })
        .await;
    finish_change(caller, hub, name, "module.safety", details, result).await
}

/// Change a module's settings (`module.json`'s `config`): each key to its new value, `null`
/// removes it; the other keys stay. Applied at once as a reload. A key the hub's environment
/// sets (`MODULES__{NAME}__{KEY}`) cannot be changed here; the safety switches have their own
/// route.
#[utoipa::path(put, path = "/api/v1/modules/{name}/settings", tag = "modules",
    security(("bearer" = ["modules.manage"]), ("session" = ["modules.manage"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    request_body(content = SettingsChange, description = "Keys to set (any JSON value) or remove (`null`)"),
    responses(
        (status = 200, description = "The module after the change (secrets masked)", body = ModuleObject),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.manage` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 409, description = "The hub's environment sets a key (`set_by_environment`, naming the variable); nothing was written", body = ErrorBody),
        (status = 422, description = "A bad key (`validation_failed`), or module.json cannot be read; nothing was written", body = ErrorBody),
    ))]
pub(crate) async fn set_settings(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    body: web::Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let object = change_settings(&caller, &hub, &name, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(object))
}

/// The body of `PUT /api/v1/modules/{name}/settings`, as its schema: an object of at least one
/// key (letters, digits and `_`, 1 to 100, not a safety switch's name) to any JSON value.
pub struct SettingsChange;

impl utoipa::PartialSchema for SettingsChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
        // Any key of letters, digits and `_` but a safety switch's name, in any case.
        let key = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some(
                "^(?![Rr][Ee][Aa][Dd]_[Oo][Nn][Ll][Yy]$|[Dd][Rr][Yy]_[Rr][Uu][Nn]$)[A-Za-z0-9_]{1,100}$",
            ));
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Object))
                .description(Some(
                    "Settings to change: each key (letters, digits and `_`, not `read_only` or `dry_run`) to its new value, `null` to remove it",
                ))
                .property_names(Some(key))
                .min_properties(Some(1))
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
                .build(),
        )
        .into()
    }
}

impl utoipa::ToSchema for SettingsChange {}

/// Change module `name`'s settings (needs `modules.manage`), audited (secret values masked).
pub(crate) async fn change_settings(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    changes: serde_json::Map<String, serde_json::Value>,
) -> Result<ModuleObject, ApiError> {
    caller.require("modules.manage")?;
    let name = valid_name(name)?;
    if changes.is_empty() {
        return Err(ApiError::invalid(
            "name a setting to change: {\"key\": value}, or {\"key\": null} to remove it",
            "settings",
        ));
    }
    for key in changes.keys() {
        let valid = !key.is_empty()
            && key.len() <= 100
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ApiError::invalid(
                format!("setting {key:?} is not a key: use 1 to 100 letters, digits and _"),
                key,
            ));
        }
        if key.eq_ignore_ascii_case("read_only") || key.eq_ignore_ascii_case("dry_run") {
            return Err(ApiError::invalid(
                format!("{key} is a safety switch: PUT /api/v1/modules/{name}/safety"),
                key,
            ));
        }
    }
    let declared = hub.get(name).ok().and_then(|entry| entry.manifest.clone());
    let secret = |key: &str| match &declared {
        Some(manifest) => module_settings::is_secret(manifest, &hub.config().module_env, key),
        None => module_settings::looks_secret(key),
    };
    let details = json!({"settings": changes.iter().map(|(key, value)| {
        let shown = if secret(key) && !value.is_null() {
            json!(module_settings::MASK)
        } else {
            value.clone()
        };
        (key.clone(), shown)
    }).collect::<serde_json::Map<_, _>>()});
    let env = &hub.config().module_env;
    let result = hub
        .update_manifest(name, "config", |manifest| {
            let mut config = manifest.config.clone();
            for (key, value) in changes {
                if let Some(variable) = module_settings::environment_variable(manifest, env, &key) {
                    return Err(ActionError::SetByEnvironment { variable });
                }
                if value.is_null() {
                    config.shift_remove(&key);
                } else {
                    config.insert(key, value);
                }
            }
            Ok((!config.is_empty()).then_some(serde_json::Value::Object(config)))
        })
        .await;
    finish_change(caller, hub, name, "module.settings", details, result).await
}

/// Audit a change of module `name`'s manifest and answer with the module.
async fn finish_change(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    action: &str,
    details: serde_json::Value,
    result: Result<std::sync::Arc<ModuleEntry>, ActionError>,
) -> Result<ModuleObject, ApiError> {
    let result = result.map_err(action_error);
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action,
            module: Some(name),
            target: None,
            outcome: if result.is_ok() { "ok" } else { "failed" },
            details: Some(details),
        },
    );
    one(hub, result?)
        .await
        .ok_or_else(|| ApiError::module_not_found(name))
}

pub(crate) async fn admin_not_found(_: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    not_found(req).await
}

/// The answer of a hub route to a method it does not take: 405 with `Allow: <allowed>`.
pub(crate) fn not_allowed(
    allowed: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone {
    move |req| {
        std::future::ready(Err(ApiError::method_not_allowed(
            format!(
                "{} is not allowed on {}: use {allowed}",
                req.method(),
                req.path()
            ),
            allowed,
        )))
    }
}

/// The same for a management route: the caller must be signed in first (what the route is
/// and allows is not shown to anyone else).
pub(crate) fn admin_not_allowed(
    allowed: &'static str,
) -> impl Fn(Caller, HttpRequest) -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone {
    move |_, req| not_allowed(allowed)(req)
}

/// `cargo xtask bench db`'s baseline: the customers module's lookup by primary key, run by the
/// hub itself on the same pool, answered as the module answers it.
#[cfg(feature = "bench-routes")]
pub(crate) async fn bench_customer(
    hub: web::Data<Hub>,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let sql = "SELECT id, name, email, created_at FROM customers_customers WHERE id = $1";
    match hub
        .database()
        .bench_row(sql, id.into_inner())
        .await
        .map_err(ApiError::internal)?
    {
        Some(row) => Ok(HttpResponse::Ok().json(row)),
        None => Err(ApiError::not_found("no customer")),
    }
}

/// The module objects of `entries`, as the registry and the database have them now.
async fn objects(hub: &Hub, entries: &[std::sync::Arc<ModuleEntry>]) -> Vec<ModuleObject> {
    let all = hub.registry().all();
    let timeout = hub.config().db_pool_timeout;
    let env = &hub.config().module_env;
    status::objects(entries, &all, env, hub.database(), timeout).await
}

pub(super) async fn one(hub: &Hub, entry: std::sync::Arc<ModuleEntry>) -> Option<ModuleObject> {
    objects(hub, &[entry]).await.pop()
}

pub(super) fn valid_name(name: &str) -> Result<&str, ApiError> {
    names::validate(name).map(|()| name).map_err(|reason| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("module name {name:?} is invalid: {reason}"),
        )
    })
}

pub(super) fn action_error(error: ActionError) -> ApiError {
    match error {
        ActionError::NotInstalled(name) => ApiError::module_not_found(&name),
        ActionError::ModulesOff => ApiError::modules_off(),
        ActionError::DependenciesNotRunning { ref missing, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "dependencies_not_running",
            error.to_string(),
        )
        .with_details(json!({"missing": missing})),
        ActionError::HasDependents { ref dependents, .. } => {
            ApiError::new(StatusCode::CONFLICT, "has_dependents", error.to_string())
                .with_details(json!({"dependents": dependents}))
        }
        // The file could not be written (the disk, its permissions): the hub's trouble, not the
        // manifest's.
        ActionError::Manifest(e @ crate::manifest::ManifestError::Write { .. }) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            e.to_string(),
        ),
        ActionError::Manifest(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_manifest",
            e.to_string(),
        ),
        ActionError::SetByEnvironment { ref variable } => ApiError::new(
            StatusCode::CONFLICT,
            "set_by_environment",
            error.to_string(),
        )
        .with_details(json!({"variable": variable})),
        ActionError::NotRunning(_) => {
            ApiError::new(StatusCode::CONFLICT, "not_running", error.to_string())
        }
        ActionError::Migrations(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "migration_failed",
            error.to_string(),
        ),
        ActionError::NotInFleet(_) => {
            ApiError::new(StatusCode::CONFLICT, "not_in_fleet", error.to_string())
        }
        ActionError::FleetUnavailable(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            error.to_string(),
        ),
    }
}

/// The hubs on this hub's database (address, versions, started, last seen; up, gone or
/// stopped) and, per module, the version and state on each hub that is up, marked where they
/// differ (drift).
#[utoipa::path(get, path = "/api/v1/fleet", tag = "hub",
    security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "The fleet (this hub alone without a database)", body = crate::fleet::FleetView),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 503, description = "The database cannot be reached (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn fleet(caller: Caller, hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    caller.require("modules.read")?;
    let view = crate::fleet::view(&hub).await.map_err(jobs_store_error)?;
    Ok(HttpResponse::Ok().json(view))
}
