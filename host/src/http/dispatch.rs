//! The catch-all for module routes: `/api/v1/{module}` and `/api/v1/{module}/{tail}` (and the
//! views under `/modules/{module}`). Looks the module up in the registry, matches the tail against
//! its route table, and calls the handler under the request timeout. Also serves every module's
//! `GET /api/v1/{module}/health`.
//!
//! This is the hot path of every module request, counted in instructions by `cargo xtask bench
//! dispatch` (docs/PERFORMANCE.md). It is actix's default service as a plain service function (no
//! extractors), reads a body only when the request has one, copies the headers without re-checking
//! ASCII text, decodes percent-escapes only where there are some, converts the common response
//! headers without parsing them, and keeps its future small (the timer of a slow call is boxed
//! apart).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use abi_stable::std_types::{RCowStr, ROption, Tuple2};
use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use plugin_api::ffi::{FfiAccess, FfiResponse, FfiSpecial};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth;
use super::error::{ApiError, ErrorBody, not_found};
use super::request::{Caller, ModuleRequest};
use super::site;
use super::views;
use crate::identity::{self, AuthError, Principal};
use crate::instance::{Instance, RouteMatch};
use crate::lifecycle::Hub;
use crate::metrics::{self, Callers};
use crate::registry::ModuleState;

/// A module's health report.
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `healthy`, `degraded` or `unhealthy`.
    status: String,
    detail: String,
}

/// What a module call takes from actix's request besides the request itself: its body and its
/// headers (taken out of the request's head: after routing nothing else reads them).
struct Parts {
    payload: Payload,
    headers: HeaderMap,
}

/// actix's default service: everything the hub's own routes did not take.
pub async fn service(mut req: ServiceRequest) -> Result<ServiceResponse, actix_web::Error> {
    // GET and HEAD (the hot path) change nothing: one comparison.
    if !req.method().is_safe()
        && let Some(from) = site::cross_site(req.method(), req.headers())
    {
        return Ok(refuse_cross_site(req, &from));
    }
    let parts = Parts {
        headers: std::mem::take(&mut req.head_mut().headers),
        payload: req.take_payload(),
    };
    let (req, _) = req.into_parts();
    let response = match req.app_data::<web::Data<Hub>>() {
        Some(hub) => catch_all(&req, parts, hub)
            .await
            .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e)),
        None => actix_web::ResponseError::error_response(&ApiError::internal(
            "the hub is not registered with the server",
        )),
    };
    Ok(ServiceResponse::new(req, response))
}

/// `/api/v1/{module}[/{tail}]` goes to the module (and `GET /api/v1/{module}/health` to its health
/// check), `/modules/{module}[/{tail}]` to its views, `GET /` is the home page; anything else is
/// 404. Matched by hand, not by actix patterns: those are regexes, tried one after another on
/// every request.
async fn catch_all(req: &HttpRequest, parts: Parts, hub: &Hub) -> Result<HttpResponse, ApiError> {
    let raw = req.path();
    if raw == "/" {
        if req.method() != actix_web::http::Method::GET {
            return Err(ApiError::method_not_allowed(
                format!("{} is not allowed on the home page: use GET", req.method()),
                "GET",
            ));
        }
        let user = auth::resolve(hub.identity(), req, &parts.headers).unwrap_or(None);
        return Ok(views::home(hub, user.as_deref()));
    }
    if let Some(rest) = raw.strip_prefix("/modules/") {
        let (module, path) = split_module(rest);
        let name = percent_decode(module).into_owned();
        if !name.is_empty() {
            if path.is_empty() {
                // Relative links in a module's pages need the trailing slash.
                return Ok(HttpResponse::PermanentRedirect()
                    .insert_header(("location", format!("/modules/{module}/")))
                    .finish());
            }
            return Ok(module_view(req, parts, hub, &name, path).await);
        }
    }
    let Some(rest) = raw.strip_prefix("/api/v1/") else {
        return not_found(req.clone()).await;
    };
    let (module, path) = split_module(rest);
    let path = if path.is_empty() { "/" } else { path };
    let name = percent_decode(module);
    if name.is_empty() {
        return not_found(req.clone()).await;
    }
    if path == "/health" {
        if req.method() != actix_web::http::Method::GET {
            return Err(ApiError::method_not_allowed(
                format!(
                    "{} is not allowed on a module's health check: use GET",
                    req.method()
                ),
                "GET",
            ));
        }
        return module_health(hub, &name).await;
    }
    module_api(req, parts, hub, &name, path).await
}

/// 403 `cross_site` for `req`: a page for a view, JSON for the rest.
#[cold]
fn refuse_cross_site(req: ServiceRequest, from: &str) -> ServiceResponse {
    let error = ApiError::cross_site(req.method().as_str(), req.path(), from);
    let response = if req.path().starts_with("/modules/") {
        let body = error.body();
        match req.app_data::<web::Data<Hub>>() {
            Some(hub) => views::error_page(
                hub,
                None,
                error.status(),
                &body.error.code,
                &body.error.message,
            ),
            None => actix_web::ResponseError::error_response(&error),
        }
    } else {
        actix_web::ResponseError::error_response(&error)
    };
    req.into_response(response)
}

/// `{module}` or `{module}/{tail}` → (module, `/tail` or empty); the module's path keeps its
/// slash.
pub fn split_module(rest: &str) -> (&str, &str) {
    // A byte search: names are short, and a `char` searcher costs more than the whole scan.
    match rest.bytes().position(|b| b == b'/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    }
}

/// Run a module's health check: 200 when healthy or degraded, 503 when unhealthy.
#[utoipa::path(get, path = "/api/v1/{module}/health", tag = "hub",
    params(("module" = String, Path, description = "The module's name")),
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthBody),
        (status = 503, description = "Unhealthy, or the module failed to start", body = HealthBody),
        (status = 404, description = "No such module, or disabled", body = ErrorBody),
    ))]
pub(crate) async fn module_health(hub: &Hub, name: &str) -> Result<HttpResponse, ApiError> {
    let instance = running_instance(hub, name)?;
    let report = instance.check_health(hub.config().health_timeout).await;
    let status = if report.is_unhealthy() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(HealthBody {
        status: report.status.to_owned(),
        detail: report.detail,
    }))
}

/// A request for one of module `name`'s JSON API routes; `path` is relative to its mount point.
async fn module_api(
    req: &HttpRequest,
    parts: Parts,
    hub: &Hub,
    name: &str,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let method = req.method().as_str();
    let instance =
        running_instance(hub, name).inspect_err(|e| unmatched(metrics::HUB, method, e))?;
    let (index, params) = match instance.route(method, path) {
        RouteMatch::Found { index, params } => (index, params),
        RouteMatch::NotFound => {
            // An audience hides the module before its routes are told apart.
            caller_of(hub, req, &parts.headers, &instance)?;
            let error = no_route(name, method, path);
            unmatched(instance.name(), method, &error);
            return Err(error);
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            caller_of(hub, req, &parts.headers, &instance)?;
            let allowed = allowed.join(", ");
            let error = ApiError::method_not_allowed(
                format!("module '{name}' has no route {method} {path}; it allows {allowed}"),
                &allowed,
            );
            unmatched(instance.name(), method, &error);
            return Err(error);
        }
    };
    let Some(series) = instance.route_metrics(index) else {
        return answer(req, parts, hub, &instance, path, index, params, None).await;
    };
    let flight = series.begin();
    let callers = series.callers();
    let result = answer(req, parts, hub, &instance, path, index, params, callers).await;
    flight.done(match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.status().as_u16(),
    });
    result
}

/// Route `index` of `instance` matched: who is calling (counted in `callers` while usage
/// analytics are on), then the call.
#[allow(clippy::too_many_arguments)]
async fn answer(
    req: &HttpRequest,
    parts: Parts,
    hub: &Hub,
    instance: &Arc<Instance>,
    path: &str,
    index: u32,
    params: Vec<(String, String)>,
    callers: Option<&Callers>,
) -> Result<HttpResponse, ApiError> {
    let (caller, outside) = caller_of(hub, req, &parts.headers, instance)?;
    hidden(instance, index, outside)?;
    let mut principal = admit(hub, req, &parts.headers, instance, index, caller)?;
    if let Some(callers) = callers {
        // A public route's caller is resolved for the count (and the module has it then).
        if let Caller::NotAsked = principal {
            principal =
                Caller::Known(auth::resolve(hub.identity(), req, &parts.headers).unwrap_or(None));
        }
        if let Caller::Known(known) = &principal {
            callers.count(known.as_deref().map(Principal::caller_key));
        }
    }
    let response = call_route(req, parts, hub, instance, path, index, params, principal).await?;
    Ok(into_http(instance.name(), response))
}

/// Count a request that reached no route of `module` (or no module: [`metrics::HUB`]), under
/// the route label `unmatched`; its method as a label only when it is a standard one.
#[cold]
fn unmatched(module: &str, method: &str, error: &ApiError) {
    let Some(metrics) = metrics::get() else {
        return;
    };
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    };
    metrics
        .route(module, metrics::UNMATCHED, method)
        .begin()
        .done(error.status().as_u16());
}

/// The caller as far as it was resolved: `None` when nobody asked yet.
type Resolved = Option<Result<Option<Arc<Principal>>, AuthError>>;

/// The caller of a module's route, resolved here only when the module has an audience (`Err`
/// when the caller is outside it: 404, as if the module were disabled); refused credentials are
/// kept for [`admit`] to judge.
fn caller_of(
    hub: &Hub,
    req: &HttpRequest,
    headers: &HeaderMap,
    instance: &Instance,
) -> Result<(Resolved, Outside), ApiError> {
    let Some(audience) = &instance.access().audience else {
        return Ok((None, false));
    };
    let caller = auth::resolve(hub.identity(), req, headers);
    let principal = caller.as_ref().ok().and_then(|c| c.as_deref());
    if identity::in_audience(principal, instance.name(), audience) {
        return Ok((Some(caller), false));
    }
    // A signed-in caller outside the audience does not see the module. An anonymous one is told
    // to sign in where the route needs a caller (401, as anywhere), and 404 on a public route.
    if principal.is_some() {
        return Err(ApiError::module_not_found(instance.name()));
    }
    Ok((Some(caller), true))
}

/// An anonymous caller outside the module's audience: it sees only routes that need a caller
/// (and is asked to sign in), never the public ones.
type Outside = bool;

/// 404 for an anonymous caller outside the audience on a public route.
fn hidden(instance: &Instance, index: u32, outside: Outside) -> Result<(), ApiError> {
    if outside && matches!(instance.route_access(index), FfiAccess::Public) {
        return Err(ApiError::module_not_found(instance.name()));
    }
    Ok(())
}

/// Whether the caller may call route `index` of `instance`: who the module sees (on a public
/// route, resolved only if the module asks), or 401 `unauthenticated` / 403 `permission_denied`.
fn admit(
    hub: &Hub,
    req: &HttpRequest,
    headers: &HeaderMap,
    instance: &Instance,
    index: u32,
    caller: Resolved,
) -> Result<Caller, ApiError> {
    let resolve =
        |caller: Resolved| caller.unwrap_or_else(|| auth::resolve(hub.identity(), req, headers));
    match instance.route_access(index) {
        // Refused credentials on a public route: the caller is anonymous.
        FfiAccess::Public => Ok(match caller {
            Some(caller) => Caller::Known(caller.unwrap_or(None)),
            None => Caller::NotAsked,
        }),
        FfiAccess::SignedIn => resolve(caller)
            .map_err(auth::auth_error)?
            .map(|p| Caller::Known(Some(p)))
            .ok_or_else(sign_in_first),
        FfiAccess::Require(permission) => {
            let principal = resolve(caller)
                .map_err(auth::auth_error)?
                .ok_or_else(sign_in_first)?;
            if principal.permissions.can_in(instance.name(), permission) {
                return Ok(Caller::Known(Some(principal)));
            }
            let wanted = format!("{}:{permission}", instance.name());
            let actor = auth::actor(hub.identity(), req, Some(&principal));
            hub.identity().auditor.count(
                &actor,
                "permission.denied",
                Some(instance.name()),
                &wanted,
            );
            Err(ApiError::permission_denied(&wanted))
        }
    }
}

#[cold]
pub(super) fn sign_in_first() -> ApiError {
    ApiError::unauthenticated(
        "sign in first: send Authorization: Bearer <token> (the admin token or an API token), or sign in at /login",
    )
}

pub(super) fn no_route(name: &str, method: &str, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("module '{name}' has no route {method} {path}"),
    )
}

/// A request for one of module `name`'s HTML views: a page, a redirect, a static file, or an
/// error page (never JSON: a browser asked).
async fn module_view(
    req: &HttpRequest,
    parts: Parts,
    hub: &Hub,
    name: &str,
    path: &str,
) -> HttpResponse {
    let method = req.method().as_str();
    let page_of = |error: ApiError, instance: Option<&Instance>| {
        let body = error.body();
        let mut page = views::error_page(
            hub,
            instance,
            error.status(),
            &body.error.code,
            &body.error.message,
        );
        if let Some(allow) = error.allow().and_then(|a| HeaderValue::from_str(a).ok()) {
            page.headers_mut()
                .insert(actix_web::http::header::ALLOW, allow);
        }
        page
    };
    let instance = match running_instance(hub, name) {
        Ok(instance) => instance,
        Err(error) => return page_of(error, None),
    };
    let (caller, outside) = match caller_of(hub, req, &parts.headers, &instance) {
        Ok(caller) => caller,
        Err(error) => return page_of(error, None),
    };
    if let (Some(file), "GET") = (path.strip_prefix("/static/"), method) {
        return views::static_file(&instance, file).unwrap_or_else(|| {
            page_of(
                ApiError::not_found(format!("module '{name}' has no static file {file}")),
                Some(&instance),
            )
        });
    }
    let (index, params) = match instance.view(method, path) {
        RouteMatch::Found { index, params } => (index, params),
        RouteMatch::NotFound => return page_of(no_route(name, method, path), Some(&instance)),
        RouteMatch::MethodNotAllowed(allowed) => {
            let allowed = allowed.join(", ");
            let error = ApiError::method_not_allowed(
                format!("module '{name}' has no view {method} {path}; it allows {allowed}"),
                &allowed,
            );
            return page_of(error, Some(&instance));
        }
    };
    if let Err(error) = hidden(&instance, index, outside) {
        return page_of(error, None);
    }
    // A page shows who is signed in: resolved here, not on demand.
    let caller = caller.or_else(|| Some(auth::resolve(hub.identity(), req, &parts.headers)));
    let principal = match admit(hub, req, &parts.headers, &instance, index, caller) {
        Ok(principal) => principal,
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => {
            return views::to_login(req);
        }
        Err(error) => return page_of(error, Some(&instance)),
    };
    let user = match &principal {
        Caller::Known(principal) => principal.clone(),
        Caller::NotAsked => None,
    };
    let response =
        match call_route(req, parts, hub, &instance, path, index, params, principal).await {
            Ok(response) => response,
            Err(error) => return page_of(error, Some(&instance)),
        };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let ROption::RSome(FfiSpecial::Template(template)) = response.special.as_deref() {
        return views::page(
            hub,
            &instance,
            user.as_deref(),
            template.name.as_str(),
            template.context.as_str(),
            status,
        );
    }
    if status.is_client_error() || status.is_server_error() {
        // A handler's error: shown as a page, with its code and message when it has them.
        let error: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
        let (code, message) = error
            .map(|e| (e.error.code, e.error.message))
            .unwrap_or_else(|| {
                (
                    "error".to_owned(),
                    String::from_utf8_lossy(&response.body).into_owned(),
                )
            });
        return views::error_page(hub, Some(&instance), status, &code, &message);
    }
    let mut http = into_http(name, response);
    // A relative redirect is relative to the module's pages.
    let relative = http
        .headers()
        .get(actix_web::http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .filter(|l| !l.starts_with('/') && !l.contains("://"))
        .map(|l| format!("/modules/{name}/{l}"));
    if let Some(location) = relative.and_then(|l| HeaderValue::from_str(&l).ok()) {
        http.headers_mut()
            .insert(actix_web::http::header::LOCATION, location);
    }
    http
}

/// Call route `index` of `instance`: the body within its limit, the request, the call under the
/// request timeout; a panic or a timeout as the error the client should see.
#[allow(clippy::too_many_arguments)]
async fn call_route(
    req: &HttpRequest,
    parts: Parts,
    hub: &Hub,
    instance: &Arc<Instance>,
    path: &str,
    index: u32,
    params: Vec<(String, String)>,
    principal: Caller,
) -> Result<FfiResponse, ApiError> {
    let (name, method) = (instance.name(), req.method().as_str());
    let body = match parts.payload {
        // No body (a GET, or no Content-Length and no chunked encoding): nothing to read.
        Payload::None => bytes::Bytes::new(),
        payload => read_body(payload, hub.config().body_limit).await?,
    };
    let params = decoded(params);
    if let Some(checks) = instance.checks(index) {
        checks
            .check(&params, req.query_string(), &body)
            .map_err(refused)?;
    }
    let request = ModuleRequest {
        method: req.method().clone(),
        uri: req.uri().clone(),
        path_from: suffix_at(req.path(), path),
        params,
        headers: parts.headers,
        body,
        principal,
        instance: instance.clone(),
        peer: req.peer_addr().map(|a| a.ip()),
        request_id: std::sync::OnceLock::new(),
    };
    let timeout = hub.config().request_timeout;
    let mut call = instance.call(index, request.into_object());
    // Most handlers answer on their first poll: only a call that has to wait gets a timer, boxed,
    // so that the common path's future stays small.
    let outcome = match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut call).poll(cx))).await {
        Poll::Ready(response) => Ok(response),
        Poll::Pending => Box::pin(tokio::time::timeout(timeout, call)).await,
    };
    let panicked = |message: &str| {
        if let Some(metrics) = metrics::get() {
            metrics.panicked(name);
        }
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler_panicked",
            format!("module '{name}' panicked in {method} {path}: {message}"),
        )
    };
    match outcome {
        Ok(Ok(response)) => match response.special.as_deref() {
            ROption::RSome(FfiSpecial::Panic(message)) => Err(panicked(message.as_str())),
            _ => Ok(response),
        },
        Ok(Err(panic)) => Err(panicked(&panic)),
        Err(_) => {
            if let Some(metrics) = metrics::get() {
                metrics.timed_out(name);
            }
            tracing::warn!(module = %name, "{method} {path} cancelled after {} ms", timeout.as_millis());
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "handler_timeout",
                format!(
                    "module '{name}' did not answer {method} {path} within {} ms (HUB_REQUEST_TIMEOUT_MS)",
                    timeout.as_millis()
                ),
            ))
        }
    }
}

/// The instance serving module `name`, or the error a client should see.
pub(super) fn running_instance(hub: &Hub, name: &str) -> Result<Arc<Instance>, ApiError> {
    hub.registry()
        .with(name, |entry| match entry.map(|e| &e.state) {
            Some(ModuleState::Running { instance, .. }) => Ok(instance.clone()),
            Some(ModuleState::Failed { .. }) => Err(ApiError::module_failed(name)),
            Some(ModuleState::Disabled { .. }) => Err(ApiError::module_not_running(name)),
            None => Err(ApiError::module_not_found(name)),
        })
}

/// The body, within `limit`: one chunk as it came, several joined.
async fn read_body(mut payload: Payload, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let mut chunks: Vec<bytes::Bytes> = Vec::new();
    let mut size = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the request body: {e}"),
            )
        })?;
        size += chunk.len();
        if size > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes (HUB_BODY_LIMIT_BYTES)"),
            ));
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        0 => bytes::Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

/// The path parameters with their values percent-decoded (in place: most have no `%`).
/// A typed route's refused inputs, as the client sees them.
#[cold]
pub(super) fn refused(refusal: crate::instance::Refusal) -> ApiError {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, refusal.code, refusal.message).with_details(refusal.details)
}

pub(super) fn decoded(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    for (_, value) in &mut params {
        if let Cow::Owned(decoded) = percent_decode(value) {
            *value = decoded;
        }
    }
    params
}

/// Where `part` starts in `whole`, when it is a slice of `whole`'s end (the module's path is cut
/// from the request's path; its root `/` is not).
fn suffix_at(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() == whole.len()).then_some(start)
}

/// `%xx` sequences decoded; invalid UTF-8 replaced. Text without `%` is returned as it is.
pub fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    percent_encoding::percent_decode_str(text).decode_utf8_lossy()
}

/// The module's response as actix's: status, headers (the common ones without parsing), and the
/// body where the module allocated it.
fn into_http(module: &str, response: FfiResponse) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return actix_web::ResponseError::error_response(&ApiError::internal(format!(
            "module '{module}' answered with invalid status {}",
            response.status
        )));
    };
    // The body stays where the module allocated it; no copy.
    let body = BoxBody::new(bytes::Bytes::from_owner(response.body));
    let mut http = HttpResponse::with_body(status, body);
    let headers = http.headers_mut();
    if let ROption::RSome(value) = &response.content_type {
        match header_value(value) {
            Some(value) => drop(headers.insert(header::CONTENT_TYPE, value)),
            None => tracing::warn!(module = %module, "dropped invalid content type {value:?}"),
        }
    }
    for Tuple2(name, value) in response.headers {
        match (header_name(&name), header_value(&value)) {
            (Some(name), Some(value)) => headers.append(name, value),
            _ => tracing::warn!(module = %module, "dropped invalid response header {name:?}"),
        }
    }
    http
}

/// A response header's name; the common ones without parsing.
fn header_name(name: &str) -> Option<HeaderName> {
    match name {
        "content-type" => Some(header::CONTENT_TYPE),
        "location" => Some(header::LOCATION),
        "cache-control" => Some(header::CACHE_CONTROL),
        other => HeaderName::from_bytes(other.as_bytes()).ok(),
    }
}

/// A response header's value; the common content types without checking them again.
fn header_value(value: &RCowStr<'static>) -> Option<HeaderValue> {
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
    const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
    match value {
        RCowStr::Borrowed(text) => match text.as_str() {
            "application/json" => Some(JSON),
            "text/html; charset=utf-8" => Some(HTML),
            "text/plain; charset=utf-8" => Some(TEXT),
            // A module's static text lives as long as the hub (libraries are never unloaded).
            other => {
                HeaderValue::from_maybe_shared(bytes::Bytes::from_static(other.as_bytes())).ok()
            }
        },
        RCowStr::Owned(text) => HeaderValue::from_str(text.as_str()).ok(),
    }
}
