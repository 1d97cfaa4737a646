//! HTML pages as HTTP answers: the hub's own (home, errors) and the modules' views, rendered by
//! `templates` inside the hub's layout (`templates/base.html`, whose navigation lists the running
//! modules), and a module's static files.
//!
//! The hub adds `hub` to every context: `hub.module` (`name`, `version`, `read_only`,
//! `dry_run`), `hub.modules` (the running modules: `name`, `version`, `description`, `views`:
//! whether it has a page at its root) and `hub.title`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use crate::identity::{self, Principal};
use crate::instance::Instance;
use crate::lifecycle::Hub;
use crate::templates;

/// `hub` of a page's context, for `user` (the modules outside their audience are not listed).
pub(super) fn hub_context(hub: &Hub, module: Option<&Instance>, user: Option<&Principal>) -> Value {
    let all = hub.registry().all();
    let modules: Vec<Value> = all
        .values()
        .filter_map(|e| {
            let instance = e.instance()?;
            if let Some(audience) = &instance.access().audience
                && !identity::in_audience(user, &e.name, audience)
            {
                return None;
            }
            let views = instance.has_home_page();
            Some(json!({
                "name": e.name,
                "version": instance.info().version,
                "description": e.manifest.as_ref().map(|m| m.description.clone()).unwrap_or_default(),
                                "views": views,
            }))
        })
        .collect();
    let current = module.map(|instance| {
        let entry = all.get(instance.name());
        let safety = entry.and_then(|e| e.state.safety());
        json!({
            "name": instance.name(),
            "version": instance.info().version,
            "read_only": safety.is_none_or(|s| s.read_only),
            "dry_run": safety.is_none_or(|s| s.dry_run),
        })
    });
    json!({
        "modules": modules,
        "user": user.map(|u| json!({
            "name": u.name,
            "kind": u.kind.as_str(),
            "console": may_use_console(u),
        })),
        "module": current,
        "title": module.map_or("BMC Hub", Instance::name),
    })
}

/// Whether `user` may see any page of the console beyond their own tokens.
pub fn may_use_console(user: &Principal) -> bool {
    ["modules.read", "audit.read", "users.manage"]
        .iter()
        .any(|p| user.permissions.can(p))
}

/// Render the hub's own `template` with `context` (a JSON object), `hub` added for `user`.
pub fn hub_page(
    hub: &Hub,
    user: Option<&Principal>,
    template: &str,
    mut context: Value,
    status: StatusCode,
) -> HttpResponse {
    if let Value::Object(object) = &mut context {
        object.insert("hub".to_owned(), hub_context(hub, None, user));
    }
    match templates::render_hub(template, context) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!("the hub's template {template} cannot render: {e}");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("<h1>500</h1><p>{}</p>", escape(&e)),
            )
        }
    }
}

/// The hub's error page for a signed-in `user`.
pub fn user_error_page(
    hub: &Hub,
    user: Option<&Principal>,
    status: StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    let context = json!({
        "status": status.as_u16(),
        "reason": status.canonical_reason().unwrap_or(""),
        "code": code,
        "message": message,
    });
    hub_page(hub, user, "error.html", context, status)
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// `GET /`: the running modules, with links to their views.
pub fn home(hub: &Hub, user: Option<&Principal>) -> HttpResponse {
    let context = json!({"hub": hub_context(hub, None, user)});
    match templates::render_hub("home.html", context) {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<h1>500</h1><p>{}</p>", escape(&e)),
        ),
    }
}

/// The hub's error page, for browsers.
pub fn error_page(
    hub: &Hub,
    module: Option<&Instance>,
    status: StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    let context = json!({
        "hub": hub_context(hub, module, None),
        "status": status.as_u16(),
        "reason": status.canonical_reason().unwrap_or(""),
        "code": code,
        "message": message,
    });
    match templates::render_hub("error.html", context) {
        Ok(body) => html(status, body),
        Err(_) => html(
            status,
            format!(
                "<h1>{status}</h1><p><code>{}</code>: {}</p>",
                escape(code),
                escape(message)
            ),
        ),
    }
}

/// Render `template` of `instance` with `context` (a JSON object) and `hub`; the page, or a
/// 500 page naming the module and the template.
pub fn page(
    hub: &Hub,
    instance: &Instance,
    user: Option<&Principal>,
    template: &str,
    context: &str,
    status: StatusCode,
) -> HttpResponse {
    let rendered = serde_json::from_str::<Value>(context)
        .map_err(|e| format!("the context is not JSON: {e}"))
        .and_then(|context| match context {
            Value::Object(mut object) => {
                object.insert("hub".to_owned(), hub_context(hub, Some(instance), user));
                Ok(Value::Object(object))
            }
            _ => Err("the context must be a JSON object".to_owned()),
        })
        .and_then(|context| instance.templates().render(template, context));
    match rendered {
        Ok(body) => html(status, body),
        Err(why) => {
            let message = format!(
                "template error in module '{}', template '{template}': {why}",
                instance.name()
            );
            tracing::warn!(module = %instance.name(), "{message}");
            error_page(
                hub,
                Some(instance),
                StatusCode::INTERNAL_SERVER_ERROR,
                "template_error",
                &message,
            )
        }
    }
}

/// `GET /modules/<name>/static/<path>`: a static file of the module.
pub fn static_file(instance: &Instance, path: &str) -> Option<HttpResponse> {
    let bytes = *instance.assets().statics.get(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    Some(
        HttpResponse::Ok()
            .content_type(mime.essence_str())
            // A reload may change it at any moment.
            .insert_header(("cache-control", "no-cache"))
            .body(bytes::Bytes::from_static(bytes)),
    )
}

/// The sign-in page: the token form, the single sign-on link when there is a provider, and
/// `message` (why the last attempt failed).
pub fn login_page(
    hub: &Hub,
    next: &str,
    message: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let context = json!({
        "hub": hub_context(hub, None, None),
        "next": next,
        "sso": hub.identity().has_provider(),
        "message": message,
    });
    match templates::render_hub("login.html", context) {
        Ok(body) => html(status, body),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<h1>500</h1><p>{}</p>", escape(&e)),
        ),
    }
}

/// 303 to `/login?next=<this page>`: a view that needs a signed-in caller, for a browser that is
/// not signed in.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    let here = match req.uri().query() {
        Some(query) => format!("{}?{query}", req.path()),
        None => req.path().to_owned(),
    };
    let next: String =
        percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC).collect();
    HttpResponse::SeeOther()
        .insert_header(("location", format!("/login?next={next}")))
        .finish()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
