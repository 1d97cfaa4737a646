//! The web console under `/admin`: pages rendered by the hub's templates (`templates/admin/`)
//! over the same operations as the management API (`api.rs`, `people.rs`): what a page shows
//! comes from them, and every form posts to a handler here that calls them, so there is one
//! implementation of each action, with its permission check and its audit row.
//!
//! Signed-in callers only (a session from `/login`, or a bearer token); anyone else is sent to
//! `/login`. Every state-changing form is a POST carrying the session's CSRF token
//! (`identity::csrf_token`), checked before anything else; unsafe requests from other sites are
//! refused by the `Caller` (403 `cross_site`). Actions the caller may not take are not shown, and
//! answered with the 403 page if posted anyway.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{self, SafetyChange};
use super::auth::{self, Caller};
use super::charts;
use super::error::ApiError;
use super::login::safe_next;
use super::people::{self, AuditQuery, NewToken, RoleChange, RoleObject};
use super::views;
use crate::deps::document::svg_linked;
use crate::identity::csrf_token;
use crate::lifecycle::{GraphOptions, Hub};
use crate::manifest::Audience;
use crate::usage::Period;

/// The console's script: the live table of modules, copy buttons.
const SCRIPT: &str = include_str!("../../../static/admin/console.js");

/// A signed-in caller of the console, and the CSRF token their forms carry.
struct Visit {
    caller: Caller,
    /// The session's CSRF token; `None` when the caller presented a bearer token (no ambient
    /// credential, nothing to forge).
    csrf: Option<String>,
}

impl Visit {
    /// The caller of `req`, or the answer for one who cannot be served: to `/login` when not
    /// signed in (back to this page afterwards), the error page otherwise.
    fn of(req: &HttpRequest, hub: &Hub) -> Result<Visit, Box<HttpResponse>> {
        let caller = auth::caller(req).map_err(|error| {
            Box::new(if error.status() == StatusCode::UNAUTHORIZED {
                if req.method() == actix_web::http::Method::GET {
                    views::to_login(req)
                } else {
                    HttpResponse::SeeOther()
                        .insert_header(("location", "/login?next=%2Fadmin"))
                        .finish()
                }
            } else {
                page_error(hub, None, &error)
            })
        })?;
        let presented = auth::presented(req.headers());
        let csrf = match (presented.authorization, presented.session) {
            (None, Some(session)) => Some(csrf_token(session)),
            _ => None,
        };
        Ok(Visit { caller, csrf })
    }

    /// `Ok` when a posted form carries this session's CSRF token (or the caller used a bearer
    /// token); else the 403 page.
    fn check(&self, hub: &Hub, form: &Form) -> Result<(), Box<HttpResponse>> {
        match &self.csrf {
            Some(expected) if form.csrf.as_deref() != Some(expected.as_str()) => {
                let error = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "the form does not carry this session's token (it is older than your \
                     session, or came from another page): open the page again and resend it",
                );
                Err(Box::new(self.error(hub, &error)))
            }
            _ => Ok(()),
        }
    }

    /// The context every console page starts from.
    fn context(&self, section: &str) -> Map<String, Value> {
        let can = |permission: &str| self.caller.can(permission);
        let mut context = Map::new();
        context.insert(
            "console".to_owned(),
            json!({
                "section": section,
                "csrf": self.csrf.clone().unwrap_or_default(),
                "can": {
                    "read": can("modules.read"),
                    "manage": can("modules.manage"),
                    "audit": can("audit.read"),
                    "users": can("users.manage"),
                    "install": can("modules.install"),
                },
            }),
        );
        context
    }

    fn render(
        &self,
        hub: &Hub,
        template: &str,
        context: Map<String, Value>,
        status: StatusCode,
    ) -> HttpResponse {
        let mut response = views::hub_page(
            hub,
            Some(&self.caller.principal),
            template,
            Value::Object(context),
            status,
        );
        no_store(&mut response);
        response
    }

    fn error(&self, hub: &Hub, error: &ApiError) -> HttpResponse {
        page_error(hub, Some(self), error)
    }
}

/// The error page for `error`, with its status.
fn page_error(hub: &Hub, visit: Option<&Visit>, error: &ApiError) -> HttpResponse {
    let body = error.body().error;
    let mut response = views::user_error_page(
        hub,
        visit.map(|v| v.caller.principal.as_ref()),
        error.status(),
        &body.code,
        &body.message,
    );
    no_store(&mut response);
    response
}

/// Console pages show the state of the moment and carry a CSRF token: never cached.
fn no_store(response: &mut HttpResponse) {
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", location))
        .finish()
}

/// Every field a console form may send; each handler reads its own.
#[derive(Debug, Default, Deserialize)]
struct Form {
    csrf: Option<String>,
    /// The console page to go back to.
    back: Option<String>,
    with_dependencies: Option<String>,
    cascade: Option<String>,
    /// `yes`: the confirmation was shown and accepted.
    confirmed: Option<String>,
    /// Safety: `read_only` or `dry_run`, and `on` or `off`.
    switch: Option<String>,
    value: Option<String>,
    /// Audience: `everyone`, or roles, groups (separated by commas or spaces) and a percentage.
    everyone: Option<String>,
    roles: Option<String>,
    groups: Option<String>,
    percent: Option<String>,
    /// Settings: a key, its new value (JSON, else text), or `remove`.
    key: Option<String>,
    remove: Option<String>,
    /// Tokens and roles.
    name: Option<String>,
    description: Option<String>,
    permissions: Option<String>,
    expires_in_days: Option<String>,
    /// Checkboxes: one `role` field per role given.
    #[serde(default)]
    role: Vec<String>,
    /// Jobs: the run to retry or cancel.
    run: Option<String>,
    /// Packages: the kept version to roll back to; `yes`: an uninstall drops the data too.
    to: Option<String>,
    purge: Option<String>,
    /// Catalogs: the version to install (default: the newest this hub can run).
    version: Option<String>,
}

impl Form {
    fn parse(visit: &Visit, hub: &Hub, body: &[u8]) -> Result<Form, Box<HttpResponse>> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
            Box::new(visit.error(
                hub,
                &ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_form",
                    format!("the form cannot be read: {e}"),
                ),
            ))
        })?;
        let mut form = Form::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "csrf" => &mut form.csrf,
                "back" => &mut form.back,
                "with_dependencies" => &mut form.with_dependencies,
                "cascade" => &mut form.cascade,
                "confirmed" => &mut form.confirmed,
                "switch" => &mut form.switch,
                "value" => &mut form.value,
                "everyone" => &mut form.everyone,
                "roles" => &mut form.roles,
                "groups" => &mut form.groups,
                "percent" => &mut form.percent,
                "key" => &mut form.key,
                "remove" => &mut form.remove,
                "name" => &mut form.name,
                "description" => &mut form.description,
                "permissions" => &mut form.permissions,
                "expires_in_days" => &mut form.expires_in_days,
                "run" => &mut form.run,
                "to" => &mut form.to,
                "purge" => &mut form.purge,
                "version" => &mut form.version,
                "role" => {
                    form.role.push(value);
                    continue;
                }
                _ => continue,
            };
            *slot = Some(value);
        }
        visit.check(hub, &form)?;
        Ok(form)
    }

    fn flag(value: &Option<String>) -> bool {
        matches!(value.as_deref(), Some("true" | "on" | "yes" | "1"))
    }

    /// Where to go afterwards: `back` if it is a console page, else `fallback`.
    fn back_or(&self, fallback: &str) -> String {
        match self.back.as_deref() {
            Some(back) if back.starts_with("/admin") => safe_next(Some(back)),
            _ => fallback.to_owned(),
        }
    }
}

/// Words separated by commas, spaces or new lines.
fn words(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `GET /admin` and `GET /admin/modules/rows`'s filters.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

impl ListQuery {
    fn keeps(&self, module: &Value) -> bool {
        let state = self.state.as_deref().filter(|s| !s.is_empty());
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        state.is_none_or(|s| module["state"] == s)
            && q.is_none_or(|q| {
                module["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&q.to_ascii_lowercase()))
            })
    }

    fn as_query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [("state", &self.state), ("q", &self.q)]
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// The modules the list shows, as JSON for the templates.
async fn listed(
    visit: &Visit,
    hub: &Hub,
    query: &ListQuery,
) -> Result<(Vec<Value>, usize), ApiError> {
    let all = api::modules(&visit.caller, hub).await?;
    let total = all.len();
    let shown = all
        .into_iter()
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .filter(|m| query.keeps(m))
        .collect();
    Ok((shown, total))
}

/// `GET /admin`: every module, filtered by state and name, updating itself.
pub(crate) async fn modules_page(
    req: HttpRequest,
    hub: web::Data<Hub>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    if !visit.caller.can("modules.read") {
        // Someone with no console permission still has their tokens.
        return see_other("/admin/tokens");
    }
    let (modules, total) = match listed(&visit, &hub, &query).await {
        Ok(listed) => listed,
        Err(error) => return visit.error(&hub, &error),
    };
    let mut context = visit.context("modules");
    let here = query.as_query();
    context.insert("modules".to_owned(), json!(modules));
    context.insert("total".to_owned(), json!(total));
    context.insert(
        "filter".to_owned(),
        json!({"state": query.state, "q": query.q}),
    );
    context.insert(
        "back".to_owned(),
        json!(if here.is_empty() {
            "/admin".to_owned()
        } else {
            format!("/admin?{here}")
        }),
    );
    context.insert(
        "live".to_owned(),
        json!(if here.is_empty() {
            "/admin/modules/rows".to_owned()
        } else {
            format!("/admin/modules/rows?{here}")
        }),
    );
    visit.render(&hub, "admin/modules.html", context, StatusCode::OK)
}

/// `GET /admin/modules/rows`: the list's rows alone, for the page's script to swap in.
pub(crate) async fn module_rows(
    req: HttpRequest,
    hub: web::Data<Hub>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let Ok(caller) = auth::caller(&req) else {
        // The script reloads the page, which goes to /login.
        return HttpResponse::Unauthorized().finish();
    };
    let presented = auth::presented(req.headers());
    let csrf = match (presented.authorization, presented.session) {
        (None, Some(session)) => Some(csrf_token(session)),
        _ => None,
    };
    let visit = Visit { caller, csrf };
    let (modules, _) = match listed(&visit, &hub, &query).await {
        Ok(listed) => listed,
        Err(error) => return visit.error(&hub, &error),
    };
    let here = query.as_query();
    let mut context = visit.context("modules");
    context.insert("modules".to_owned(), json!(modules));
    context.insert(
        "back".to_owned(),
        json!(if here.is_empty() {
            "/admin".to_owned()
        } else {
            format!("/admin?{here}")
        }),
    );
    context.insert(
        "hub".to_owned(),
        views::hub_context(&hub, None, Some(&visit.caller.principal)),
    );
    let mut response = match crate::templates::render_hub("admin/rows.html", Value::Object(context))
    {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(e),
    };
    no_store(&mut response);
    response
}

/// `?done=` on a module's page: what was just done, in words.
fn done_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "enable" => "Enabled.",
        "disable" => "Disabled.",
        "reload" => "Reloaded.",
        "safety" => "Safety switches changed.",
        "audience" => "Audience changed.",
        "settings" => "Settings changed.",
        "rollback" => "Rolled back.",
        "install" => "Installed from the catalog.",
        "uninstall" => "Uninstalled.",
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
    /// The module page's usage span: `day` (30 days by day); else 24 hours by hour.
    #[serde(default)]
    usage: Option<String>,
}

/// The module page's usage: the report, its two charts and the span's name; `None` without a
/// database (or when it cannot be read: the page still shows the rest).
async fn usage_section(caller: &Caller, hub: &Hub, name: &str, span: Option<&str>) -> Value {
    if !hub.database().is_configured() {
        return Value::Null;
    }
    let by = match span {
        Some("day") => Period::Day,
        _ => Period::Hour,
    };
    let query = api::UsageQuery {
        by: Some(by),
        ..api::UsageQuery::default()
    };
    match api::module_usage(caller, hub, name, query).await {
        Ok(report) => json!({
            "by": by.as_str(),
            "calls_svg": charts::calls(&report),
            "latency_svg": charts::latency(&report),
            "busiest": report.routes.iter().take(10).collect::<Vec<_>>(),
            "total": report.total,
        }),
        Err(error) => json!({"by": by.as_str(), "error": error.to_string()}),
    }
}

/// `GET /admin/modules/{name}`: everything about one module.
pub(crate) async fn module_page(
    req: HttpRequest,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let module = match api::module(&visit.caller, &hub, &name).await {
        Ok(module) => module,
        Err(error) => return visit.error(&hub, &error),
    };
    // The module's audit entries, for those who may read the audit log.
    let audit = if visit.caller.can("audit.read") && hub.database().is_configured() {
        let query = AuditQuery {
            module: Some(module.name.clone()),
            limit: Some(20),
            ..AuditQuery::default()
        };
        people::audit_page(&visit.caller, &hub, query)
            .await
            .ok()
            .map(|page| serde_json::to_value(page).unwrap_or_default())
    } else {
        None
    };
    let views = hub
        .registry()
        .get(&module.name)
        .and_then(|e| e.instance().map(|i| i.has_home_page()))
        .unwrap_or(false);
    let usage = usage_section(&visit.caller, &hub, &module.name, query.usage.as_deref()).await;
    let jobs = if hub.database().is_configured() {
        api::module_jobs(&visit.caller, &hub, &module.name)
            .await
            .ok()
            .map(|page| serde_json::to_value(page).unwrap_or_default())
    } else {
        None
    };
    // Kept versions: none for a module not installed from a package.
    let versions = super::packages::versions_for(&visit.caller, &hub, &module.name)
        .await
        .ok();
    let mut context = visit.context("modules");
    context.insert("done".to_owned(), json!(done_text(query.done.as_deref())));
    context.insert("versions".to_owned(), json!(versions));
    context.insert("usage".to_owned(), usage);
    context.insert("jobs".to_owned(), json!(jobs));
    context.insert("views".to_owned(), json!(views));
    context.insert("audit".to_owned(), json!(audit));
    context.insert(
        "back".to_owned(),
        json!(format!("/admin/modules/{}", module.name)),
    );
    context.insert("module".to_owned(), json!(module));
    visit.render(&hub, "admin/module.html", context, StatusCode::OK)
}

/// `POST /admin/modules/{name}/{action}`: enable, disable, reload (asking first about the
/// modules around when the hub answers 409), safety switches (asking first before one goes
/// off), audience, settings, a job's run tried again or cancelled.
pub(crate) async fn module_action(
    req: HttpRequest,
    hub: web::Data<Hub>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    let (name, action) = path.into_inner();
    let done = format!("/admin/modules/{name}?done={action}");
    let result = match action.as_str() {
        "enable" | "disable" | "reload" => {
            let options = GraphOptions {
                with_dependencies: Form::flag(&form.with_dependencies),
                cascade: Form::flag(&form.cascade),
            };
            match api::run_action(&visit.caller, &hub, &name, &action, options).await {
                Err(error) if error.status() == StatusCode::CONFLICT => {
                    return confirm_graph(&visit, &hub, &name, &action, &form, &error);
                }
                other => other.map(drop),
            }
        }
        "rollback" => super::packages::rollback_for(&visit.caller, &hub, &name, form.to.clone())
            .await
            .map(drop),
        "uninstall" => {
            let purge = Form::flag(&form.purge);
            if !Form::flag(&form.confirmed) {
                return confirm_uninstall(&visit, &hub, &name, purge).await;
            }
            return match super::packages::uninstall_for(&visit.caller, &hub, &name, purge).await {
                Ok(_) => HttpResponse::SeeOther()
                    .insert_header(("location", "/admin?done=uninstall"))
                    .finish(),
                Err(error) => visit.error(&hub, &error),
            };
        }
        "safety" => {
            let on = match form.value.as_deref() {
                Some("on") => true,
                Some("off") => false,
                _ => {
                    return visit
                        .error(&hub, &ApiError::invalid("value must be on or off", "value"));
                }
            };
            let mut change = SafetyChange::default();
            match form.switch.as_deref() {
                Some("read_only") => change.read_only = Some(on),
                Some("dry_run") => change.dry_run = Some(on),
                _ => {
                    return visit.error(
                        &hub,
                        &ApiError::invalid("switch must be read_only or dry_run", "switch"),
                    );
                }
            }
            if !on && !Form::flag(&form.confirmed) {
                return confirm_safety(&visit, &hub, &name, &form);
            }
            api::change_safety(&visit.caller, &hub, &name, change)
                .await
                .map(drop)
        }
        "audience" => {
            let audience = if Form::flag(&form.everyone) {
                None
            } else {
                let percent = match form.percent.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(text) => match text.parse::<u8>() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            return visit.error(
                                &hub,
                                &ApiError::invalid(
                                    format!("percent {text:?} is not a whole number from 0 to 100"),
                                    "percent",
                                ),
                            );
                        }
                    },
                };
                Some(Audience {
                    roles: words(form.roles.as_deref()),
                    groups: words(form.groups.as_deref()),
                    percent,
                })
            };
            api::change_audience(&visit.caller, &hub, &name, audience)
                .await
                .map(drop)
        }
        "settings" => {
            let key = form.key.clone().unwrap_or_default().trim().to_owned();
            let value = if Form::flag(&form.remove) {
                Value::Null
            } else {
                let text = form.value.clone().unwrap_or_default();
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            let mut changes = Map::new();
            changes.insert(key, value);
            api::change_settings(&visit.caller, &hub, &name, changes)
                .await
                .map(drop)
        }
        "retry" | "cancel" => {
            let run = form.run.as_deref().unwrap_or_default().trim();
            let Ok(run) = run.parse::<i64>() else {
                return visit.error(
                    &hub,
                    &ApiError::invalid(format!("run {run:?} is not a run's number"), "run"),
                );
            };
            api::act_on_job(&visit.caller, &hub, &name, run, &action)
                .await
                .map(drop)
        }
        _ => Err(ApiError::not_found(format!(
            "the console has no module action '{action}'"
        ))),
    };
    match result {
        Ok(()) => see_other(&form.back_or(&done)),
        Err(error) => visit.error(&hub, &error),
    }
}

/// The page that says what enabling with dependencies, or disabling with dependents, will do,
/// after the hub answered 409; its button sends the action again with that option.
fn confirm_graph(
    visit: &Visit,
    hub: &Hub,
    name: &str,
    action: &str,
    form: &Form,
    error: &ApiError,
) -> HttpResponse {
    let body = error.body().error;
    let details = body.details.clone().unwrap_or_default();
    let (others, option, steps) = if action == "enable" {
        let missing: Vec<String> =
            serde_json::from_value(details["missing"].clone()).unwrap_or_default();
        let mut steps: Vec<String> = missing.iter().map(|m| format!("enable {m}")).collect();
        steps.push(format!("enable {name}"));
        (missing, "with_dependencies", steps)
    } else {
        let dependents: Vec<String> =
            serde_json::from_value(details["dependents"].clone()).unwrap_or_default();
        let mut steps: Vec<String> = dependents.iter().map(|d| format!("disable {d}")).collect();
        steps.push(format!("disable {name}"));
        (dependents, "cascade", steps)
    };
    let mut context = visit.context("modules");
    context.insert(
        "confirm".to_owned(),
        json!({
            "title": format!("{} {name}?", capitalized(action)),
            "code": body.code,
            "message": body.message,
            "involved": others,
            "steps": steps,
            "action": format!("/admin/modules/{name}/{action}"),
            "fields": {option: "true", "back": form.back_or(&format!("/admin/modules/{name}"))},
            "button": if action == "enable" { "Enable all, in this order" } else { "Disable all, in this order" },
            "cancel": form.back_or(&format!("/admin/modules/{name}")),
        }),
    );
    visit.render(hub, "admin/confirm.html", context, StatusCode::CONFLICT)
}

/// The page that asks before a safety switch goes off, naming the module and the switch.
/// The page that asks before an uninstall, saying what goes (the preview of
/// `GET /api/v1/modules/{name}/uninstall`).
async fn confirm_uninstall(visit: &Visit, hub: &Hub, name: &str, purge: bool) -> HttpResponse {
    let preview = match super::packages::preview_for(&visit.caller, hub, name).await {
        Ok(preview) => preview,
        Err(error) => return visit.error(hub, &error),
    };
    let version = preview
        .version
        .clone()
        .unwrap_or_else(|| "(not running)".to_owned());
    let mut steps = vec![
        format!(
            "stop serving {name} {version} and remove its files ({})",
            preview.files.join(", ")
        ),
        format!(
            "delete its kept versions ({})",
            preview.kept_versions.join(", ")
        ),
    ];
    let tables: Vec<String> = preview
        .objects
        .tables
        .iter()
        .map(|t| format!("{} ({} rows)", t.name, t.rows))
        .collect();
    let message = match purge {
        true => {
            steps.push(format!(
                "drop its tables ({}), its other objects and its roles, and delete its migration rows",
                if tables.is_empty() { "none".to_owned() } else { tables.join(", ") }
            ));
            format!("{name} and its data will be gone; this cannot be undone.")
        }
        false => format!(
            "{name} will be gone; its tables ({}) stay in PostgreSQL.",
            if tables.is_empty() {
                "none".to_owned()
            } else {
                tables.join(", ")
            }
        ),
    };
    let mut context = visit.context("modules");
    context.insert(
        "confirm".to_owned(),
        json!({
            "title": format!("Uninstall {name}?"),
            "message": message,
            "involved": preview.dependents,
            "steps": steps,
            "action": format!("/admin/modules/{name}/uninstall"),
            "fields": {
                "purge": if purge { "yes" } else { "no" },
                "confirmed": "yes",
            },
            "button": format!("Uninstall {name}"),
            "cancel": format!("/admin/modules/{name}"),
        }),
    );
    visit.render(hub, "admin/confirm.html", context, StatusCode::OK)
}

fn confirm_safety(visit: &Visit, hub: &Hub, name: &str, form: &Form) -> HttpResponse {
    let switch = form.switch.as_deref().unwrap_or_default();
    let (upper, consequence) = if switch == "read_only" {
        (
            "READ_ONLY",
            format!("{name} will be able to write to its tables in PostgreSQL."),
        )
    } else {
        (
            "DRY_RUN",
            format!(
                "{name}'s writes will be committed instead of rolled back, and it may send changes to other systems."
            ),
        )
    };
    let mut context = visit.context("modules");
    context.insert(
        "confirm".to_owned(),
        json!({
            "title": format!("Turn {upper} off for {name}?"),
            "message": consequence,
            "steps": [format!("set {upper} off in {name}'s module.json and reload {name}")],
            "action": format!("/admin/modules/{name}/safety"),
            "fields": {
                "switch": switch,
                "value": "off",
                "confirmed": "yes",
                "back": form.back_or(&format!("/admin/modules/{name}")),
            },
            "button": format!("Turn {upper} off for {name}"),
            "cancel": form.back_or(&format!("/admin/modules/{name}")),
        }),
    );
    visit.render(hub, "admin/confirm.html", context, StatusCode::OK)
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `GET /admin/graph`: the hub's picture of the dependencies, its nodes linking to the modules.
pub(crate) async fn graph_page(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let document = match api::graph_document(&visit.caller, &hub) {
        Ok(document) => document,
        Err(error) => return visit.error(&hub, &error),
    };
    let mut context = visit.context("graph");
    context.insert(
        "svg".to_owned(),
        json!(svg_linked(&document, Some("/admin/modules/"))),
    );
    visit.render(&hub, "admin/graph.html", context, StatusCode::OK)
}

/// `GET /admin/catalog`: what the catalogs of `HUB_CATALOGS` offer, with an Install button per
/// version this hub can run.
pub(crate) async fn catalog_page(
    req: HttpRequest,
    hub: web::Data<Hub>,
    query: web::Query<DoneQuery>,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let page = match super::packages::catalog_for(&visit.caller, &hub).await {
        Ok(page) => page,
        Err(error) => return visit.error(&hub, &error),
    };
    let mut context = visit.context("catalog");
    context.insert("done".to_owned(), json!(done_text(query.done.as_deref())));
    context.insert("catalog".to_owned(), json!(page));
    context.insert("catalogs".to_owned(), json!(hub.config().catalogs.clone()));
    visit.render(&hub, "admin/catalog.html", context, StatusCode::OK)
}

/// `POST /admin/catalog/{name}/install`: install a version (its dependencies first when the
/// form asks), then the module's page.
pub(crate) async fn catalog_install(
    req: HttpRequest,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    let version = form.version.clone().filter(|v| !v.is_empty());
    let with_dependencies = Form::flag(&form.with_dependencies);
    match super::packages::catalog_install_for(
        &visit.caller,
        &hub,
        &name,
        version,
        with_dependencies,
    )
    .await
    {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header(("location", format!("/admin/modules/{name}?done=install")))
            .finish(),
        Err(error) => visit.error(&hub, &error),
    }
}

/// `GET /admin/fleet`: the hubs on the database and, per module, what each runs against what
/// the fleet's state says, drift marked.
pub(crate) async fn fleet_page(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    if let Err(error) = visit.caller.require("modules.read") {
        return visit.error(&hub, &error);
    }
    let view = match crate::fleet::view(&hub).await {
        Ok(view) => view,
        Err(e) => return visit.error(&hub, &api::jobs_store_error(e)),
    };
    let mut context = visit.context("fleet");
    context.insert("fleet".to_owned(), json!(view));
    context.insert("fleet_mode".to_owned(), json!(hub.in_fleet()));
    visit.render(&hub, "admin/fleet.html", context, StatusCode::OK)
}

/// `GET /admin/audit`'s filters (times as RFC 3339 or a browser's `datetime-local`, in UTC).
#[derive(Debug, Default, Deserialize)]
pub struct AuditFilters {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

fn time(text: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ApiError::invalid(
                format!("{field} {text:?} is not a time: use 2026-12-01T09:30 (UTC) or RFC 3339"),
                field,
            )
        })
}

/// `GET /admin/audit`: the audit log, filtered, 50 rows a page.
pub(crate) async fn audit_page(
    req: HttpRequest,
    hub: web::Data<Hub>,
    filters: web::Query<AuditFilters>,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let query = (|| {
        Ok::<_, ApiError>(AuditQuery {
            actor: text(&filters.actor),
            module: text(&filters.module),
            action: text(&filters.action),
            since: time(filters.since.as_deref(), "since")?,
            until: time(filters.until.as_deref(), "until")?,
            before: match text(&filters.before) {
                Some(b) => Some(b.parse().map_err(|_| {
                    ApiError::invalid("before must be a row id (1 or more)", "before")
                })?),
                None => None,
            },
            limit: Some(50),
        })
    })();
    let page = match query {
        Ok(query) => people::audit_page(&visit.caller, &hub, query).await,
        Err(error) => Err(error),
    };
    let page = match page {
        Ok(page) => page,
        Err(error) => return visit.error(&hub, &error),
    };
    let page = serde_json::to_value(page).unwrap_or_default();
    let mut filter_pairs: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("actor", &filters.actor),
        ("module", &filters.module),
        ("action", &filters.action),
        ("since", &filters.since),
        ("until", &filters.until),
    ] {
        if let Some(value) = text(value) {
            filter_pairs.push((key, value));
        }
    }
    let older = page["next"].as_i64().map(|next| {
        let mut pairs = filter_pairs.clone();
        pairs.push(("before", next.to_string()));
        format!(
            "/admin/audit?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    });
    let mut context = visit.context("audit");
    context.insert("entries".to_owned(), page["entries"].clone());
    context.insert("older".to_owned(), json!(older));
    context.insert(
        "newest".to_owned(),
        json!(filters.before.is_some().then(|| format!(
            "/admin/audit?{}",
            serde_urlencoded::to_string(&filter_pairs).unwrap_or_default()
        ))),
    );
    context.insert(
        "filter".to_owned(),
        json!({
            "actor": filters.actor, "module": filters.module, "action": filters.action,
            "since": filters.since, "until": filters.until,
        }),
    );
    visit.render(&hub, "admin/audit.html", context, StatusCode::OK)
}

/// `GET /admin/people`: users and their roles, roles and their permissions.
pub(crate) async fn people_page(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let (users, roles) = match (
        people::users(&visit.caller, &hub).await,
        people::roles(&visit.caller, &hub).await,
    ) {
        (Ok(users), Ok(roles)) => (users, roles),
        (Err(error), _) | (_, Err(error)) => return visit.error(&hub, &error),
    };
    let mut context = visit.context("people");
    context.insert("users".to_owned(), json!(users));
    context.insert("roles".to_owned(), json!(roles));
    visit.render(&hub, "admin/people.html", context, StatusCode::OK)
}

/// `POST /admin/users/{id}/roles`: give a user exactly the roles ticked.
pub(crate) async fn user_roles(
    req: HttpRequest,
    hub: web::Data<Hub>,
    id: web::Path<i64>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    match people::give_roles(&visit.caller, &hub, id.into_inner(), form.role).await {
        Ok(_) => see_other("/admin/people"),
        Err(error) => visit.error(&hub, &error),
    }
}

/// `POST /admin/roles` (a new role) and `POST /admin/roles/{name}` (its permissions changed).
pub(crate) async fn role(
    req: HttpRequest,
    hub: web::Data<Hub>,
    name: Option<web::Path<String>>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    let permissions = words(form.permissions.as_deref());
    let description = form.description.clone().unwrap_or_default();
    let result = match name {
        Some(name) => {
            let change = RoleChange {
                description,
                permissions,
            };
            people::change_role(&visit.caller, &hub, name.into_inner(), change)
                .await
                .map(drop)
        }
        None => {
            let role = RoleObject {
                name: form.name.clone().unwrap_or_default().trim().to_owned(),
                description,
                permissions,
                builtin: false,
            };
            people::add_role(&visit.caller, &hub, role).await.map(drop)
        }
    };
    match result {
        Ok(()) => see_other("/admin/people"),
        Err(error) => visit.error(&hub, &error),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TokensFilter {
    #[serde(default)]
    all: Option<String>,
}

/// `GET /admin/tokens`: the caller's tokens (with `users.manage`, everyone's on `?all=1`).
pub(crate) async fn tokens_page(
    req: HttpRequest,
    hub: web::Data<Hub>,
    filter: web::Query<TokensFilter>,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let all = Form::flag(&filter.all);
    tokens_view(&visit, &hub, all, None, StatusCode::OK).await
}

async fn tokens_view(
    visit: &Visit,
    hub: &Hub,
    all: bool,
    created: Option<Value>,
    status: StatusCode,
) -> HttpResponse {
    let tokens = match people::tokens(&visit.caller, hub, all).await {
        Ok(tokens) => tokens,
        Err(error) => return visit.error(hub, &error),
    };
    let mut context = visit.context("tokens");
    context.insert("tokens".to_owned(), json!(tokens));
    context.insert("all".to_owned(), json!(all));
    context.insert("created".to_owned(), json!(created));
    context.insert("mine".to_owned(), json!(visit.caller.principal.user_id));
    visit.render(hub, "admin/tokens.html", context, status)
}

/// `POST /admin/tokens`: a new token; its secret is shown on the page that answers, once.
pub(crate) async fn create_token(
    req: HttpRequest,
    hub: web::Data<Hub>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    let permissions = words(form.permissions.as_deref());
    let days = match form.expires_in_days.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                return visit.error(
                    &hub,
                    &ApiError::invalid("expires_in_days must be 1 to 3650", "expires_in_days"),
                );
            }
        },
    };
    let new = NewToken {
        name: form.name.clone().unwrap_or_default(),
        permissions: (!permissions.is_empty()).then_some(permissions),
        expires_in_days: days,
        user_id: None,
    };
    match people::new_token(&visit.caller, &hub, new).await {
        Ok(created) => {
            let created = serde_json::to_value(created).unwrap_or_default();
            tokens_view(&visit, &hub, false, Some(created), StatusCode::CREATED).await
        }
        Err(error) => visit.error(&hub, &error),
    }
}

/// `POST /admin/tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    req: HttpRequest,
    hub: web::Data<Hub>,
    id: web::Path<i64>,
    body: web::Bytes,
) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    let form = match Form::parse(&visit, &hub, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    match people::revoke(&visit.caller, &hub, id.into_inner()).await {
        Ok(()) => see_other(&form.back_or("/admin/tokens")),
        Err(error) => visit.error(&hub, &error),
    }
}

/// `GET /admin/static/console.js`.
pub(crate) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .body(SCRIPT)
}

/// Any other `/admin/…` path: the 404 page (signed in first).
pub(crate) async fn not_found(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    let visit = match Visit::of(&req, &hub) {
        Ok(visit) => visit,
        Err(answer) => return *answer,
    };
    visit.error(
        &hub,
        &ApiError::not_found(format!("the console has no page {}", req.path())),
    )
}
