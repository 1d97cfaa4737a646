//! Module packages over HTTP: `POST /api/v1/packages` (install), `GET
//! /api/v1/modules/{name}/versions` (the kept versions) and `POST
//! /api/v1/modules/{name}/rollback` (the previous one, or `?to=`), each audited.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::api::{action_error, one, valid_name};
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::identity::Event;
use crate::lifecycle::{Hub, InstallError, Installed, UninstallPreview};
use crate::packages::PackageError;
use crate::packages::store::KeptVersion;
use crate::status::ModuleObject;

/// The error a client sees for a refused install or rollback.
fn install_error(error: InstallError) -> ApiError {
    let message = error.to_string();
    match error {
        InstallError::Package(e) => {
            let status = match e {
                PackageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                PackageError::Dependencies(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, e.code(), message)
        }
        InstallError::VersionConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
        }
        InstallError::NotFromPackage { ref files, .. } => {
            ApiError::new(StatusCode::CONFLICT, "not_from_package", message)
                .with_details(json!({"files": files}))
        }
        InstallError::StartFailed { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "start_failed", message)
        }
        InstallError::NoPrevious { .. } => {
            ApiError::new(StatusCode::CONFLICT, "no_previous_version", message)
        }
        InstallError::NotKept { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "version_not_kept", message)
        }
        InstallError::MigrationsAhead { ref migrations, .. } => {
            ApiError::new(StatusCode::CONFLICT, "migrations_ahead", message)
                .with_details(json!({"migrations": migrations}))
        }
        InstallError::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        ),
        InstallError::Io { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "write_failed", message)
        }
        InstallError::NotInCatalog { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_in_catalog", message)
        }
        InstallError::CatalogUnavailable(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "catalog_unavailable", message)
        }
        InstallError::CatalogHash(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", message)
        }
        InstallError::Action(e) => action_error(e),
    }
}

/// The body, within the package limit.
async fn read_package(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(install_error(InstallError::Package(
                PackageError::TooLarge {
                    limit,
                    what: "the request body is larger".to_owned(),
                },
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The audit log's entry of an install or a rollback.
fn audit(
    caller: &Caller,
    action: &str,
    module: Option<&str>,
    result: &Result<Installed, ApiError>,
    mut details: serde_json::Value,
) {
    let (outcome, target) = match result {
        Ok(installed) => {
            details["version"] = json!(installed.version);
            details["signer"] = json!(installed.signer);
            details["changed"] = json!(installed.changed);
            ("ok", Some(installed.version.as_str()))
        }
        Err(error) => {
            details["error"] = json!(error.body().error);
            ("failed", None)
        }
    };
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action,
            module,
            target,
            outcome,
            details: Some(details),
        },
    );
}

async fn answer(
    hub: &Hub,
    installed: Installed,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let name = installed.entry.name.clone();
    let object = one(hub, installed.entry)
        .await
        .ok_or_else(|| ApiError::module_not_found(&name))?;
    let Some(rollout) = installed.rollout else {
        return Ok(HttpResponse::build(status).json(object));
    };
    // Fleet mode: how the fleet applies it, next to the module as this hub runs it.
    let mut body = serde_json::to_value(object).unwrap_or_default();
    body["rollout"] = json!(rollout);
    Ok(HttpResponse::build(status).json(body))
}

/// How the fleet applies an install.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstallQuery {
    /// Fleet mode: `all` (every hub at once) or `rolling` (one hub at a time, each healthy
    /// before the next); default `HUB_FLEET_ROLLOUT`. A version with migrations not marked
    /// expand is applied all at once whatever is asked; the answer's `rollout` says so.
    #[param(pattern = "^(all|rolling)$")]
    rollout: Option<String>,
}

impl InstallQuery {
    fn rolling(&self) -> Result<Option<bool>, ApiError> {
        match self.rollout.as_deref() {
            None => Ok(None),
            Some("all") => Ok(Some(false)),
            Some("rolling") => Ok(Some(true)),
            Some(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!(
                    "rollout={other:?} is not understood: write rollout=all or rollout=rolling"
                ),
            )),
        }
    }
}

/// Install a module package (a `.hubpkg` from `cargo xtask package`, as the body).
///
/// Checked whole before anything is written: size, archive, entries, hashes, signature (by a
/// key in `HUB_TRUSTED_KEYS`), name, platform, `hub_api`, dependencies. Then started through the
/// start protocol of a reload: if it does not run, the installed version keeps serving.
#[utoipa::path(post, path = "/api/v1/packages", tag = "packages",
    security(("bearer" = ["modules.install"]), ("session" = ["modules.install"])),
    params(InstallQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The package"),
    responses(
        (status = 200, description = "This version was installed already, with these bytes: nothing changed", body = ModuleObject),
        (status = 201, description = "Installed and running; `last_reload` says how the start went. In fleet mode the module object also carries `rollout` (`mode`, `reason`, `contract_pending`): how the other hubs apply it", body = ModuleObject),
        (status = 400, description = "The query is not understood", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.install` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 409, description = "Its dependencies are not installed (`dependencies_missing`), the version is installed with other bytes (`version_conflict`), or the module's folder holds files no package put there (`not_from_package`)", body = ErrorBody),
        (status = 413, description = "Larger than HUB_PACKAGE_MAX_BYTES, or unpacks to more (`package_too_large`)", body = ErrorBody),
        (status = 422, description = "Not a package (`bad_package`), an entry outside its folder or not a regular file (`unsafe_entry`), files that do not match their list (`hash_mismatch`), unsigned or not signed by a trusted key (`untrusted_package`), another platform (`wrong_platform`), another plugin-api (`incompatible_api`), or it did not start (`start_failed`: the old version keeps serving)", body = ErrorBody),
        (status = 503, description = "The kept versions cannot be read (`store_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn install(
    caller: Caller,
    hub: web::Data<Hub>,
    query: web::Query<InstallQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("modules.install")?;
    let rolling = query.rolling()?;
    let (size, result) = match read_package(payload, hub.config().package_max_bytes).await {
        Ok(bytes) => (
            bytes.len(),
            hub.install_package_rolling(bytes, &caller.actor.id, rolling)
                .await
                .map_err(install_error),
        ),
        Err(refused) => (0, Err(refused)),
    };
    let module = result.as_ref().ok().map(|i| i.entry.name.clone());
    audit(
        &caller,
        "package.install",
        module.as_deref(),
        &result,
        json!({"size": size}),
    );
    let installed = result?;
    let status = if installed.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    answer(&hub, installed, status).await
}

/// A kept version, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionObject {
    #[serde(flatten)]
    kept: KeptVersion,
    /// Whether this version serves now.
    serving: bool,
}

/// A module's kept versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Versions {
    /// The version that serves now (`null`: none runs).
    serving: Option<String>,
    /// The last installed first; at most HUB_PACKAGE_VERSIONS_KEPT.
    versions: Vec<VersionObject>,
}

/// The versions of a module kept for rollbacks: who installed each and when, who signed it,
/// which one serves.
#[utoipa::path(get, path = "/api/v1/modules/{name}/versions", tag = "packages",
    security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    responses(
        (status = 200, description = "Kept versions (none for a module not installed from a package)", body = Versions),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 503, description = "The kept versions cannot be read (`store_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn versions(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(versions_for(&caller, &hub, &name).await?))
}

/// Module `name`'s kept versions, as `caller` may see them.
pub(super) async fn versions_for(
    caller: &Caller,
    hub: &Hub,
    name: &str,
) -> Result<Versions, ApiError> {
    caller.require("modules.read")?;
    let name = valid_name(name)?;
    let entry = hub.get(name).map_err(action_error)?;
    let serving = entry.instance().map(|i| i.info().version.clone());
    let kept = hub.kept_versions(name).await.map_err(install_error)?;
    let versions = kept
        .into_iter()
        .map(|kept| VersionObject {
            serving: Some(&kept.version) == serving.as_ref(),
            kept,
        })
        .collect();
    Ok(Versions { serving, versions })
}

/// Which version a rollback goes to.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RollbackQuery {
    /// A kept version; default: the highest kept version below the serving one.
    to: Option<String>,
}

/// Make a kept version serve again, in one call (through the same start protocol as an
/// install). Refused while the serving version applied migrations the older one does not know,
/// unless all of them are marked expand.
#[utoipa::path(post, path = "/api/v1/modules/{name}/rollback", tag = "packages",
    security(("bearer" = ["modules.install"]), ("session" = ["modules.install"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"), RollbackQuery),
    responses(
        (status = 200, description = "The kept version serves again", body = ModuleObject),
        (status = 400, description = "The name breaks the name rule, or the query is not understood", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.install` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 404, description = "No such module, or no such kept version (`version_not_kept`)", body = ErrorBody),
        (status = 409, description = "No earlier kept version (`no_previous_version`), or migrations the older version does not know (`migrations_ahead`, named in `details`)", body = ErrorBody),
        (status = 422, description = "The kept package is no longer accepted (its key is no longer trusted…) or it did not start (`start_failed`: the serving version keeps serving)", body = ErrorBody),
        (status = 503, description = "The kept versions cannot be read (`store_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn rollback(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    query: web::Query<RollbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let installed = rollback_for(&caller, &hub, &name, query.into_inner().to).await?;
    answer(&hub, installed, StatusCode::OK).await
}

/// Roll module `name` back to `to` (default: the highest kept version below the serving one)
/// for `caller`, audited.
pub(super) async fn rollback_for(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    to: Option<String>,
) -> Result<Installed, ApiError> {
    caller.require("modules.install")?;
    let name = valid_name(name)?;
    let result = hub
        .rollback(name, to.as_deref(), &caller.actor.id)
        .await
        .map_err(install_error);
    let from = result.as_ref().ok().map(|(from, _)| from.clone());
    let result = result.map(|(_, installed)| installed);
    audit(
        caller,
        "module.rollback",
        Some(name),
        &result,
        json!({"from": from, "to": to}),
    );
    result
}

/// What uninstalling a module would remove — its tables with their rows and sizes, its other
/// objects, its migration rows, its files and kept versions, its roles and grants — and the
/// modules or files that stop it.
#[utoipa::path(get, path = "/api/v1/modules/{name}/uninstall", tag = "packages",
    security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    responses(
        (status = 200, description = "The preview", body = UninstallPreview),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 503, description = "The database cannot be read (`store_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn uninstall_preview(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(preview_for(&caller, &hub, &name).await?))
}

/// What uninstalling module `name` would remove, as `caller` may see it.
pub(super) async fn preview_for(
    caller: &Caller,
    hub: &Hub,
    name: &str,
) -> Result<UninstallPreview, ApiError> {
    caller.require("modules.read")?;
    let name = valid_name(name)?;
    hub.uninstall_preview(name).await.map_err(install_error)
}

/// Whether an uninstall also drops the module's data.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UninstallQuery {
    /// Also drop its objects, its roles and its migration rows (one transaction). Default:
    /// its data stays.
    purge: Option<bool>,
}

/// What an uninstall removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uninstalled {
    /// What was removed (the preview, checked again just before).
    removed: UninstallPreview,
    /// Whether the module's data was dropped too.
    purged: bool,
    /// The migration rows a purge deleted.
    migrations_deleted: u64,
}

/// Remove a module: its files and kept versions; with `?purge=true` also its objects, roles and
/// migration rows. Refused while another module needs it, and for a folder holding files no
/// package put there.
#[utoipa::path(delete, path = "/api/v1/modules/{name}", tag = "packages",
    security(("bearer" = ["modules.install"]), ("session" = ["modules.install"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"), UninstallQuery),
    responses(
        (status = 200, description = "Removed", body = Uninstalled),
        (status = 400, description = "The name breaks the name rule, or the query is not understood", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.install` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 404, description = "No such module", body = ErrorBody),
        (status = 409, description = "Other modules need it (`has_dependents`), or its folder holds files no package put there (`not_from_package`)", body = ErrorBody),
        (status = 503, description = "The database cannot be reached (`store_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn uninstall(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    query: web::Query<UninstallQuery>,
) -> Result<HttpResponse, ApiError> {
    let purge = query.purge.unwrap_or(false);
    Ok(HttpResponse::Ok().json(uninstall_for(&caller, &hub, &name, purge).await?))
}

/// Uninstall module `name` (with `purge`, its data too) for `caller`, audited.
pub(super) async fn uninstall_for(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    purge: bool,
) -> Result<Uninstalled, ApiError> {
    caller.require("modules.install")?;
    let name = valid_name(name)?;
    let result = hub.uninstall(name, purge).await.map_err(install_error);
    let (outcome, details) = match &result {
        Ok((removed, migrations)) => (
            "ok",
            json!({
                "purge": purge,
                "version": removed.version,
                "files": removed.files,
                "kept_versions": removed.kept_versions,
                "dropped": if purge { json!({
                    "tables": removed.objects.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "other_objects": removed.objects.other_objects,
                    "roles": removed.objects.roles,
                    "migrations": migrations,
                }) } else { json!(null) },
            }),
        ),
        Err(error) => (
            "failed",
            json!({"purge": purge, "error": error.body().error}),
        ),
    };
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: "module.uninstall",
            module: Some(name),
            target: result.as_ref().ok().and_then(|(r, _)| r.version.as_deref()),
            outcome,
            details: Some(details),
        },
    );
    let (removed, migrations_deleted) = result?;
    Ok(Uninstalled {
        removed,
        purged: purge,
        migrations_deleted,
    })
}

/// A catalog that could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogError {
    catalog: String,
    error: String,
}

/// What the catalogs offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogPage {
    /// Every module offered, by name, with each version: whether this hub can run it (and why
    /// not), whether it is installed, and the upgrade.
    modules: Vec<crate::packages::catalog::Offer>,
    /// Catalogs of HUB_CATALOGS that could not be read.
    errors: Vec<CatalogError>,
}

/// What the catalogs of HUB_CATALOGS offer: modules and versions, what is installed, what can
/// be upgraded, what this hub cannot run and why.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "packages",
    security(("bearer" = ["modules.read"]), ("session" = ["modules.read"])),
    responses(
        (status = 200, description = "The offers (none without HUB_CATALOGS)", body = CatalogPage),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.read` (`permission_denied`)", body = ErrorBody),
    ))]
pub(crate) async fn catalog(caller: Caller, hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(catalog_for(&caller, &hub).await?))
}

/// What the catalogs offer, as `caller` may see it.
pub(super) async fn catalog_for(caller: &Caller, hub: &Hub) -> Result<CatalogPage, ApiError> {
    caller.require("modules.read")?;
    let (modules, errors) = hub.catalog().await;
    Ok(CatalogPage {
        modules,
        errors: errors
            .into_iter()
            .map(|(catalog, error)| CatalogError { catalog, error })
            .collect(),
    })
}

/// Which version to install from a catalog.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogInstallQuery {
    /// Default: the newest this hub can run.
    version: Option<String>,
    /// Install the dependencies it needs first (each the newest its range allows), in
    /// dependency order.
    with_dependencies: Option<bool>,
}

/// What an install from a catalog did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogInstalled {
    /// Each package installed, in order: name, version, whether anything changed.
    installed: Vec<serde_json::Value>,
    /// The module asked for, after its install.
    module: ModuleObject,
}

/// Install a module from a catalog: fetched, checked against the SHA-256 its index lists and
/// against a trusted signature, then installed as `POST /api/v1/packages` does.
#[utoipa::path(post, path = "/api/v1/catalog/{name}/install", tag = "packages",
    security(("bearer" = ["modules.install"]), ("session" = ["modules.install"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name"), CatalogInstallQuery),
    responses(
        (status = 201, description = "Installed (with its dependencies, when asked)", body = CatalogInstalled),
        (status = 400, description = "The query is not understood", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.install` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 404, description = "No catalog offers it in that version, or in one this hub can run (`not_in_catalog`)", body = ErrorBody),
        (status = 409, description = "Its dependencies are not installed (`dependencies_missing`: ask for ?with_dependencies=true)", body = ErrorBody),
        (status = 413, description = "Larger than HUB_PACKAGE_MAX_BYTES (`package_too_large`)", body = ErrorBody),
        (status = 422, description = "The package is not what its index lists (`hash_mismatch`), or refused as POST /api/v1/packages refuses it", body = ErrorBody),
        (status = 502, description = "The catalog cannot be read (`catalog_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn catalog_install(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    query: web::Query<CatalogInstallQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = name.as_str();
    let query = query.into_inner();
    let done = catalog_install_for(
        &caller,
        &hub,
        name,
        query.version,
        query.with_dependencies.unwrap_or(false),
    )
    .await?;
    let installed = done
        .iter()
        .map(|i| json!({"name": i.entry.name, "version": i.version, "changed": i.changed}))
        .collect();
    let last = done
        .into_iter()
        .last()
        .ok_or_else(|| ApiError::module_not_found(name))?;
    let module = one(&hub, last.entry)
        .await
        .ok_or_else(|| ApiError::module_not_found(name))?;
    Ok(HttpResponse::Created().json(CatalogInstalled { installed, module }))
}

/// Install `version` (default: the newest this hub can run) of `name` from the catalogs for
/// `caller`, its dependencies first when asked, audited: each install, in order.
pub(super) async fn catalog_install_for(
    caller: &Caller,
    hub: &Hub,
    name: &str,
    version: Option<String>,
    with_dependencies: bool,
) -> Result<Vec<Installed>, ApiError> {
    caller.require("modules.install")?;
    // Only a name a catalog offers is looked for; any other is not in the catalog (404). The
    // package's own name is checked by the install.
    let result = hub
        .install_from_catalog(
            name,
            version.as_deref(),
            with_dependencies,
            &caller.actor.id,
        )
        .await
        .map_err(install_error);
    let (outcome, details) = match &result {
        Ok(done) => (
            "ok",
            json!({"installed": done.iter().map(|i| json!({"name": i.entry.name, "version": i.version, "changed": i.changed, "signer": i.signer})).collect::<Vec<_>>()}),
        ),
        Err(error) => (
            "failed",
            json!({"version": version, "error": error.body().error}),
        ),
    };
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: "catalog.install",
            module: Some(name),
            target: version.as_deref(),
            outcome,
            details: Some(details),
        },
    );
    result
}

/// What `finish-migrations` ran.
#[derive(Debug, Serialize, ToSchema)]
pub struct Finished {
    pub module: String,
    pub version: String,
    /// The migrations applied now (`0002 narrow`); empty when none was waiting.
    pub applied: Vec<String>,
}

/// Run a module's contract migrations (those not marked expand) that wait until every live hub
/// serves its version; in fleet mode they run by themselves then unless
/// `HUB_FLEET_AUTO_FINISH=false`. Exactly once across the fleet.
#[utoipa::path(post, path = "/api/v1/modules/{name}/finish-migrations", tag = "packages",
    security(("bearer" = ["modules.install"]), ("session" = ["modules.install"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", example = "hello", description = "The module's name")),
    responses(
        (status = 200, description = "The waiting migrations ran (or none was waiting)", body = Finished),
        (status = 400, description = "The name breaks the name rule", body = ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Needs `modules.install` (`permission_denied`), or sent from another site's page (`cross_site`)", body = ErrorBody),
        (status = 404, description = "No such module (`module_not_found`)", body = ErrorBody),
        (status = 409, description = "It does not run here (`not_running`), or hubs that are up do not serve its version yet (`hubs_behind`, named in `details`)", body = ErrorBody),
        (status = 422, description = "A migration failed (`migration_failed`)", body = ErrorBody),
        (status = 503, description = "The database cannot be reached (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn finish_migrations(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("modules.install")?;
    let name = valid_name(&name)?;
    let entry = hub.get(name).map_err(action_error)?;
    let version = entry
        .instance()
        .map(|i| i.info().version.clone())
        .ok_or_else(|| action_error(crate::lifecycle::ActionError::NotRunning(name.to_owned())))?;
    let result = finish(&hub, name, &version).await;
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action: "module.finish_migrations",
            module: Some(name),
            target: Some(&version),
            outcome: if result.is_ok() { "ok" } else { "failed" },
            details: Some(match &result {
                Ok(applied) => json!({"applied": applied}),
                Err(e) => json!({"error": e.body().error}),
            }),
        },
    );
    Ok(HttpResponse::Ok().json(Finished {
        module: name.to_owned(),
        version,
        applied: result?,
    }))
}

/// In fleet mode, refused while a hub that is up does not serve `version`; then the waiting
/// migrations run.
async fn finish(hub: &Hub, name: &str, version: &str) -> Result<Vec<String>, ApiError> {
    if hub.in_fleet() {
        let view = crate::fleet::view(hub).await.map_err(|e| {
            action_error(crate::lifecycle::ActionError::FleetUnavailable(
                e.to_string(),
            ))
        })?;
        let behind = crate::fleet::behind(&view, name, version);
        if !behind.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "hubs_behind",
                format!(
                    "{name} {version} does not serve on every hub yet ({} not): its contract migrations would break the older version there; wait, or see GET /api/v1/fleet",
                    behind.join(", ")
                ),
            )
            .with_details(json!({"hubs": behind})));
        }
    }
    hub.finish_migrations(name).await.map_err(action_error)
}
