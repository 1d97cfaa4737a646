//! The hub's own HTTP routes: the management API (`/api/v1/modules…`, admin token required) and
//! `/healthz`. Names from URLs are validated before anything else uses them, so no request can
//! name a path outside `MODULES_DIR`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::hub::{ActionError, GraphOptions, Hub};
use crate::names;
use crate::registry::{ModuleObject, State};

/// Register the hub's routes. They come before the module catch-alls.
pub fn configure(cfg: &mut web::ServiceConfig) {
    #[cfg(feature = "bench-routes")]
    cfg.service(web::resource("/bench/customer/{id}").route(web::get().to(bench_customer)));
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/ping")
            .route(web::get().to(ping))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/openapi.json")
            .route(web::get().to(openapi_json))
            .default_service(web::to(method_not_allowed)),
    )
    // A scope with a static prefix: requests for module routes skip it with one comparison.
    .service(
        web::scope("/api/v1/modules")
            // Before /{name}: "graph" is a reserved name, never a module's.
            .service(
                web::resource("/graph")
                    .route(web::get().to(graph))
                    .default_service(web::to(admin_method_not_allowed)),
            )
            .service(
                web::resource("/graph.svg")
                    .route(web::get().to(graph_svg))
                    .default_service(web::to(admin_method_not_allowed)),
            )
            .service(
                web::resource("")
                    .route(web::get().to(list))
                    .default_service(web::to(admin_method_not_allowed)),
            )
            .service(
                web::resource("/{name}")
                    .route(web::get().to(get))
                    .default_service(web::to(admin_method_not_allowed)),
            )
            .service(web::resource("/{name}/{action}").to(action))
            .default_service(web::to(admin_not_found)),
    );
}

/// The admin token, kept as its SHA-256 so comparisons take the same time whatever the input.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Sha256::digest(token.as_bytes()).into())
    }

    fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given.ct_eq(&self.0).into()
    }
}

/// Proof that the request carries the admin token; an extractor, so a handler cannot forget it.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let accepted = req
            .app_data::<web::Data<AdminToken>>()
            .is_some_and(|token| token.accepts(header));
        ready(if accepted {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized())
        })
    }
}

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
    let count = |state| all.values().filter(|e| e.state == state).count();
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

/// This document: the hub's routes and each running module's routes under its own tag.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "hub",
    responses((status = 200, description = "An OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi_json(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document(&hub))
}

/// Every module, by name.
#[utoipa::path(get, path = "/api/v1/modules", tag = "modules", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every module, by name", body = [ModuleObject]),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn list(_: Admin, hub: web::Data<Hub>) -> HttpResponse {
    let entries: Vec<_> = hub.registry().all().values().cloned().collect();
    let objects: Vec<ModuleObject> = hub.describe(&entries).await;
    HttpResponse::Ok().json(objects)
}

/// The dependency graph: every module, and an edge from each to what it needs.
#[utoipa::path(get, path = "/api/v1/modules/graph", tag = "modules", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Nodes and edges", body = crate::deps::GraphDocument),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn graph(_: Admin, hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(crate::deps::document(&hub.registry().all()))
}

/// The dependency graph as a picture: states coloured, unmet dependencies dashed red.
#[utoipa::path(get, path = "/api/v1/modules/graph.svg", tag = "modules", security(("admin_token" = [])),
    responses(
        (status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn graph_svg(_: Admin, hub: web::Data<Hub>) -> HttpResponse {
    let document = crate::deps::document(&hub.registry().all());
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(crate::deps::svg(&document))
}

/// One module.
#[utoipa::path(get, path = "/api/v1/modules/{name}", tag = "modules", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The module's name")),
    responses(
        (status = 200, description = "The module", body = ModuleObject),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
    ))]
pub(crate) async fn get(
    _: Admin,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = valid_name(&name)?;
    let entry = hub.get(name).map_err(action_error)?;
    Ok(HttpResponse::Ok().json(one(&hub, entry).await))
}

/// Enable, disable or reload a module: effective at once, idempotent. Answers 200 with the
/// module object whenever the action was carried out, even if the module then failed to start
/// (`state` and `error` say so).
#[utoipa::path(post, path = "/api/v1/modules/{name}/{action}", tag = "modules", security(("admin_token" = [])),
        params(
        ("name" = String, Path, description = "The module's name"),
        ("action" = ModuleAction, Path, description = "enable, disable or reload"),
        ActionQuery,
    ),
    responses(
        (status = 200, description = "The module after the action", body = ModuleObject),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such module or action", body = ErrorBody),
                (status = 409, description = "Dependencies not running (enable), or running dependents (disable); `details` names them", body = ErrorBody),
        (status = 422, description = "module.json cannot be read; nothing was written", body = ErrorBody),
    ))]
pub(crate) async fn action(
    _: Admin,
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
        return Err(ApiError::method_not_allowed(format!(
            "{action} takes POST, not {}",
            req.method()
        )));
    }
    let name = valid_name(&name)?;
    let entry = match action.as_str() {
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
    .map_err(action_error)?;
    Ok(HttpResponse::Ok().json(one(&hub, entry).await))
}

async fn admin_not_found(_: Admin, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    not_found(req).await
}

async fn admin_method_not_allowed(_: Admin, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    method_not_allowed(req).await
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

/// `cargo xtask bench db`'s baseline: the customers module's lookup by primary key, run by the
/// hub itself on the same pool, answered as the module answers it.
#[cfg(feature = "bench-routes")]
async fn bench_customer(hub: web::Data<Hub>, id: web::Path<i32>) -> Result<HttpResponse, ApiError> {
    let fail = |e: String| ApiError::internal(e);
    let client = hub
        .database()
        .client(crate::db::Access::ReadOnly)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let statement = client
        .prepare_cached("SELECT id, name, email, created_at FROM customers_customers WHERE id = $1")
        .await
        .map_err(|e| fail(crate::db::describe(&e)))?;
    let rows = client
        .query(&statement, &[&id.into_inner()])
        .await
        .map_err(|e| fail(crate::db::describe(&e)))?;
    match rows.first() {
        Some(row) => Ok(HttpResponse::Ok().json(crate::db::convert::row(row).map_err(fail)?)),
        None => Err(ApiError::not_found("no customer")),
    }
}

/// Anything no route matched.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

async fn one(
    hub: &Hub,
    entry: std::sync::Arc<crate::registry::ModuleEntry>,
) -> Option<ModuleObject> {
    hub.describe(&[entry]).await.pop()
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
        ActionError::Manifest(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_manifest",
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        let token = AdminToken::new("s3cret");
        assert!(token.accepts(Some("Bearer s3cret")));
        assert!(!token.accepts(Some("Bearer s3cre")));
        assert!(!token.accepts(Some("Bearer s3cret2")));
        assert!(!token.accepts(Some("s3cret")));
        assert!(!token.accepts(Some("Basic s3cret")));
        assert!(!token.accepts(None));
    }
}
