//! The hub's one HTTP error: a status, a stable `code`, a message that names the thing and the
//! fix, optional `details`; rendered as `{"error": {"code", "message", "details"?}}`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of every error the hub and its modules answer with.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, machine-readable: `module_not_found`, `unauthenticated`, `handler_timeout`, …
    pub code: String,
    /// For people: names the module, file or variable and says how to fix it.
    pub message: String,
    /// Extra facts, e.g. the names behind a 409 or the invalid fields of a 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Boxed: most errors have none, and an error travels in every `Result` of a handler.
    more: Option<Box<More>>,
}

/// What few errors carry besides their message.
#[derive(Debug, Clone, Default)]
struct More {
    details: Option<Value>,
    /// Seconds for `Retry-After` (429).
    retry_after: Option<u64>,
    /// The methods for `Allow` (405).
    allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            more: None,
        }
    }

    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.more().details = Some(details);
        self
    }

    /// 422 `validation_failed` for one field, named in `details`.
    pub fn invalid(message: impl Into<String>, field: &str) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message.clone(),
        )
        .with_details(serde_json::json!([{"field": field, "message": message}]))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 401: no credentials, or credentials that were refused (the message says which).
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: the caller lacks `permission` (a hub permission, or `<module>:<permission>`).
    pub fn permission_denied(permission: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!("this needs permission '{permission}': ask an administrator for a role that grants it"),
        )
        .with_details(serde_json::json!({"permission": permission}))
    }

    /// 429: too many failed attempts from the caller's address.
    pub fn too_many(message: impl Into<String>, retry_after: std::time::Duration) -> ApiError {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message);
        error.more().retry_after = Some(retry_after.as_secs().max(1));
        error
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn module_not_found(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "module_not_found",
            format!("no module '{name}' is installed"),
        )
    }

    pub fn module_not_running(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "module_not_found",
            format!(
                "module '{name}' is disabled: enable it with POST /api/v1/modules/{name}/enable"
            ),
        )
    }

    /// A failed module, as its routes answer anyone: the reason (file paths, SQL, PostgreSQL's
    /// words) stays in the hub's log and the management API.
    pub fn module_failed(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "module_failed",
            format!(
                "module '{name}' failed to start; why is in the hub's log and in GET /api/v1/modules/{name}"
            ),
        )
    }

    /// An unsafe method sent from another site's page.
    pub fn cross_site(method: &str, path: &str, from: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            format!(
                "{method} {path} from another site ({from}) is refused: the hub changes state only for its own pages and for clients that send no Origin (curl, scripts)"
            ),
        )
    }

    pub fn modules_off() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "module_not_found",
            "the module system is off (MODULES_ENABLED=false)",
        )
    }

    /// 405, with `Allow: <allowed>` (RFC 9110), e.g. `GET, POST`.
    pub fn method_not_allowed(message: impl Into<String>, allowed: &str) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        );
        error.more().allow = Some(allowed.to_owned());
        error
    }

    /// The methods of a 405's `Allow`.
    pub fn allow(&self) -> Option<&str> {
        self.more.as_ref()?.allow.as_deref()
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code.to_owned(),
                message: self.message.clone(),
                details: self.more.as_ref().and_then(|m| m.details.clone()),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Some(more) = &self.more {
            if let Some(seconds) = more.retry_after {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            if let Some(allow) = &more.allow {
                response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
        }
        response.json(self.body())
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
