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
use crate::deps::document::{GraphDocument, document, svg};
use crate::identity::Event;
use crate::lifecycle::{ActionError, GraphOptions, Hub};
use crate::manifest::Audience;
use crate::names;
use crate::registry::{ModuleEntry, State};
use crate::status::{self, ModuleObject};

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
    caller.require("modules.read")?;
    let all = hub.registry().all();
    let entries: Vec<_> = all.values().cloned().collect();
    let objects: Vec<ModuleObject> = objects(&hub, &entries).await;
    Ok(HttpResponse::Ok().json(objects))
}

/// The dependency graph: every module, and an edge from each to what it needs.
#[utoipa::path(get, path = "/api/v1/modules/graph", tag = "modules", security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "Nodes and edges", body = GraphDocument),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
    ))]
pub(crate) async fn graph(caller: Caller, hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    caller.require("modules.read")?;
    Ok(HttpResponse::Ok().json(document(&hub.registry().all())))
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
    caller.require("modules.read")?;
    let document = document(&hub.registry().all());
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
    caller.require("modules.read")?;
    let name = valid_name(&name)?;
    let entry = hub.get(name).map_err(action_error)?;
    Ok(HttpResponse::Ok().json(one(&hub, entry).await))
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
    caller.require("modules.manage")?;
    let name = valid_name(&name)?;
    let result = match action.as_str() {
        "enable" => {
            hub.set_enabled(name, true, options.into_inner().into())
                .await
        }
        "disable" => {
            hub.set_enabled(name, false, options.into_inner().into())
                .await
        }
        _ => hub.reload(name).await,
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
    Ok(HttpResponse::Ok().json(one(&hub, result?).await))
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
    caller.require("modules.manage")?;
    let name = valid_name(&name)?;
    let audience = body.into_inner();
    let details = json!({"audience": audience});
    let result = hub.set_audience(name, audience).await.map_err(action_error);
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: "module.audience",
            module: Some(name),
            target: None,
            outcome: if result.is_ok() { "ok" } else { "failed" },
            details: Some(details),
        },
    );
    Ok(HttpResponse::Ok().json(one(&hub, result?).await))
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
    status::objects(entries, &all, hub.database(), timeout).await
}

async fn one(hub: &Hub, entry: std::sync::Arc<ModuleEntry>) -> Option<ModuleObject> {
    objects(hub, &[entry]).await.pop()
}

fn valid_name(name: &str) -> Result<&str, ApiError> {
    names::validate(name).map(|()| name).map_err(|reason| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("module name {name:?} is invalid: {reason}"),
        )
    })
}

fn action_error(error: ActionError) -> ApiError {
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
    }
}
