//! Calls between modules (`req.call`): a module calls a route of one of its dependencies
//! in-process, through the same steps as a client's request after the HTTP parts — the route
//! matched, who may call it (the calling request's caller; audiences do not apply between
//! modules), the typed inputs checked, the handler called with the request timeout, the call
//! counted — with the calling request's id. No HTTP, no serialization beyond the ABI's.

use std::sync::{Arc, OnceLock, Weak};

use abi_stable::std_types::{RCowStr, RNone, RSome, RVec};
use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use async_ffi::{FfiFuture, FutureExt as _};
use plugin_api::ffi::{FfiAccess, FfiResponse, FfiSpecial};

use super::dispatch::{decoded, no_route, refused, running_instance, sign_in_first};
use super::error::ApiError;
use super::request::{Caller, ModuleRequest};
use crate::identity::Principal;
use crate::instance::{Instance, RouteMatch};
use crate::lifecycle::Hub;
use crate::logging::RequestId;

/// The hub calls are made in: set once when it starts serving.
static HUB: OnceLock<Weak<Hub>> = OnceLock::new();

/// Let modules call each other in `hub`, from requests and from job runs.
pub fn install(hub: &Arc<Hub>) {
    let _ = HUB.set(Arc::downgrade(hub));
    crate::jobs::install_calls(from_job);
}

/// `from` calls `method path` of `module` with `body`, as the calling request's caller.
pub(super) fn call(
    from: &ModuleRequest,
    module: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> FfiFuture<FfiResponse> {
    call_as(
        &from.instance,
        from.caller(),
        from.id(),
        from.peer,
        module,
        method,
        path,
        body,
    )
}

/// A job run of `from` calls `method path` of `module`, as the module's service identity.
fn from_job(
    from: Arc<Instance>,
    principal: Arc<Principal>,
    request_id: RequestId,
    module: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> FfiFuture<FfiResponse> {
    call_as(
        &from,
        Some(principal),
        Some(request_id),
        None,
        module,
        method,
        path,
        body,
    )
}

/// The module of `from` calls `method path` of `module` for `principal`: refused unless
/// `module` is one of its dependencies.
#[allow(clippy::too_many_arguments)]
fn call_as(
    from: &Instance,
    principal: Option<Arc<Principal>>,
    request_id: Option<RequestId>,
    peer: Option<std::net::IpAddr>,
    module: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> FfiFuture<FfiResponse> {
    let caller = from.name();
    if !from.access().dependencies.iter().any(|d| d == module) {
        let refusal = ApiError::new(
            StatusCode::FORBIDDEN,
            "call_not_allowed",
            format!(
                "module '{caller}' may call only the modules it depends on: add \"{module}\" to \"dependencies\" in its module.json"
            ),
        );
        return std::future::ready(answer(&refusal)).into_ffi();
    }
    let (module, method, path) = (module.to_owned(), method.to_owned(), path.to_owned());
    let scope = request_id.clone();
    let call = async move {
        match one(&module, &method, &path, body, principal, request_id, peer).await {
            Ok(response) => response,
            Err(refusal) => answer(&refusal),
        }
    };
    match scope {
        Some(id) => crate::logging::with_request_id(id, call).into_ffi(),
        None => call.into_ffi(),
    }
}

/// The call itself: the route, its access, its inputs, the handler.
async fn one(
    module: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
    principal: Option<Arc<Principal>>,
    request_id: Option<RequestId>,
    peer: Option<std::net::IpAddr>,
) -> Result<FfiResponse, ApiError> {
    let hub = HUB
        .get()
        .and_then(Weak::upgrade)
        .ok_or_else(|| ApiError::module_not_running(module))?;
    let instance = running_instance(&hub, module)?;
    let (route, query) = match path.split_once('?') {
        Some((route, query)) => (route, query),
        None => (path, ""),
    };
    let (index, params) = match instance.route(method, route) {
        RouteMatch::Found { index, params } => (index, params),
        RouteMatch::NotFound => return Err(no_route(module, method, route)),
        RouteMatch::MethodNotAllowed(allowed) => {
            let allowed = allowed.join(", ");
            return Err(ApiError::method_not_allowed(
                format!("module '{module}' has no route {method} {route}; it allows {allowed}"),
                &allowed,
            ));
        }
    };
    match instance.route_access(index) {
        FfiAccess::Public => {}
        FfiAccess::SignedIn if principal.is_some() => {}
        FfiAccess::SignedIn => return Err(sign_in_first()),
        FfiAccess::Require(permission) => {
            let Some(p) = &principal else {
                return Err(sign_in_first());
            };
            if !p.permissions.can_in(module, permission) {
                return Err(ApiError::permission_denied(&format!(
                    "{module}:{permission}"
                )));
            }
        }
    }
    let params = decoded(params);
    let body = bytes::Bytes::from(body);
    if let Some(checks) = instance.checks(index) {
        checks.check(&params, query, &body).map_err(refused)?;
    }
    let mut headers = HeaderMap::new();
    if let Some(id) = &request_id
        && let Ok(value) = HeaderValue::from_str(id.as_str())
    {
        headers.insert(super::request_id::HEADER, value);
    }
    if !body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mount = format!("/api/v1/{module}");
    let uri: Uri = format!("{mount}{path}").parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{path:?} is not a path: {e}"),
        )
    })?;
    let http_method = Method::from_bytes(method.as_bytes()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{method:?} is not an HTTP method"),
        )
    })?;
    if let Some(callers) = instance.route_metrics(index).and_then(|m| m.callers()) {
        callers.count(principal.as_deref().map(Principal::caller_key));
    }
    let flight = instance.route_metrics(index).map(|m| m.begin());
    let request = ModuleRequest {
        method: http_method,
        uri,
        path_from: Some(mount.len()),
        params,
        headers,
        body,
        principal: Caller::Known(principal),
        instance: instance.clone(),
        peer,
        request_id: OnceLock::from(request_id),
    };
    let timeout = hub.config().request_timeout;
    let outcome = tokio::time::timeout(timeout, instance.call(index, request.into_object())).await;
    let result = match outcome {
        Ok(Ok(response)) => match response.special.as_deref() {
            abi_stable::std_types::ROption::RSome(FfiSpecial::Panic(message)) => {
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "handler_panicked",
                    format!("module '{module}' panicked in {method} {route}: {message}"),
                ))
            }
            _ => Ok(response),
        },
        Ok(Err(panic)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler_panicked",
            format!("module '{module}' panicked in {method} {route}: {panic}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "handler_timeout",
            format!(
                "module '{module}' did not answer {method} {route} within {} ms (HUB_REQUEST_TIMEOUT_MS)",
                timeout.as_millis()
            ),
        )),
    };
    if let Some(flight) = flight {
        flight.done(match &result {
            Ok(response) => response.status,
            Err(e) => e.status().as_u16(),
        });
    }
    result
}

/// The hub's refusal as the calling module receives it: a response with the hub's error body.
fn answer(refusal: &ApiError) -> FfiResponse {
    FfiResponse {
        status: refusal.status().as_u16(),
        content_type: RSome(RCowStr::from("application/json")),
        headers: RVec::new(),
        body: serde_json::to_vec(&refusal.body())
            .unwrap_or_default()
            .into(),
        special: RNone,
    }
}
