//! The catch-all for module routes: `/api/v1/{module}` and `/api/v1/{module}/{tail}`. Looks the
//! module up in the registry, matches the tail against its route table, and calls the handler
//! under the request timeout. Also serves every module's `GET /api/v1/{module}/health`.

use std::sync::Arc;

use abi_stable::std_types::{RString, Tuple2};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use plugin_api::ffi::{FfiRequest, FfiResponse};
use serde::Serialize;
use tracing::Instrument as _;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::hub::Hub;
use crate::instance::{Instance, RouteMatch};
use crate::registry::State;

/// A module's health report.
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `healthy`, `degraded` or `unhealthy`.
    status: String,
    detail: String,
}

/// Run a module's health check: 200 when healthy or degraded, 503 when unhealthy.
#[utoipa::path(get, path = "/api/v1/{module}/health", tag = "hub",
    params(("module" = String, Path, description = "The module's name")),
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthBody),
        (status = 503, description = "Unhealthy, or the module failed to start", body = HealthBody),
        (status = 404, description = "No such module, or disabled", body = ErrorBody),
    ))]
pub(crate) async fn module_health(
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let instance = running_instance(&hub, &name)?;
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

/// `ANY /api/v1/{module}[/{tail}]`.
pub async fn module_api(
    req: HttpRequest,
    payload: web::Payload,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    let name = req.match_info().get("module").unwrap_or_default();
    let path = format!("/{}", req.match_info().get("tail").unwrap_or_default());
    let method = req.method().as_str();
    let instance = running_instance(&hub, name)?;
    let (index, params) = match instance.route(method, &path) {
        RouteMatch::Found { index, params } => (index, params),
        RouteMatch::NotFound => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("module '{name}' has no route {method} {path}"),
            ));
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            let allowed = allowed.join(", ");
            let error = ApiError::method_not_allowed(format!(
                "module '{name}' has no route {method} {path}; it allows {allowed}"
            ));
            let mut response = actix_web::ResponseError::error_response(&error);
            if let Ok(value) = HeaderValue::from_str(&allowed) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            return Ok(response);
        }
    };
    let body = read_body(payload, hub.config().body_limit).await?;
    let request = FfiRequest {
        method: method.into(),
        path: path.as_str().into(),
        params: params
            .into_iter()
            .map(|(k, v)| Tuple2(k.into(), v.into()))
            .collect(),
        query: req.query_string().into(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes());
                Tuple2(RString::from(k.as_str()), RString::from(value.as_ref()))
            })
            .collect(),
        body: body.into(),
    };
    let timeout = hub.config().request_timeout;
    let span = tracing::info_span!("module_call", module = %name);
    let call = tokio::time::timeout(timeout, instance.call(index, request)).instrument(span);
    match call.await {
        Ok(Ok(response)) => Ok(into_http(name, response)),
        Ok(Err(panic)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler_panicked",
            format!("module '{name}' panicked in {method} {path}: {panic}"),
        )),
        Err(_) => {
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
fn running_instance(hub: &Hub, name: &str) -> Result<Arc<Instance>, ApiError> {
    let entry = hub
        .registry()
        .get(name)
        .ok_or_else(|| ApiError::module_not_found(name))?;
    match (entry.state, &entry.instance) {
        (State::Running, Some(instance)) => Ok(instance.clone()),
        (State::Failed, _) => Err(ApiError::module_failed(
            name,
            entry.error.as_deref().unwrap_or("unknown error"),
        )),
        _ => Err(ApiError::module_not_running(name)),
    }
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
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
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes (HUB_BODY_LIMIT_BYTES)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn into_http(module: &str, response: FfiResponse) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return actix_web::ResponseError::error_response(&ApiError::internal(format!(
            "module '{module}' answered with invalid status {}",
            response.status
        )));
    };
    let mut builder = HttpResponse::build(status);
    for Tuple2(name, value) in response.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                builder.append_header((name, value));
            }
            _ => tracing::warn!(module = %module, "dropped invalid response header {name:?}"),
        }
    }
    builder.body(response.body.into_vec())
}
