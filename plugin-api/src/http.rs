//! Requests, responses and errors as a module author sees them, with JSON helpers. Errors render
//! as the hub's one error shape: `{"error": {"code", "message", "details"?}}`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use abi_stable::std_types::{RBox, RCowStr, ROption, RStr, RVec, Tuple2};

use crate::ctx::Ctx;
use crate::error::Error;
use crate::ffi::{
    FfiResponse, FfiSpecial, FfiTemplate, FfiUser, RequestBox, ResponseDoc, RouteDoc,
};

/// Another module's answer to [`Request::call`].
#[derive(Debug, Clone)]
pub struct Called {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Called {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, read into `T` (a 502 saying why otherwise).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                502,
                "call_failed",
                format!("the other module's answer is not the JSON expected: {e}"),
            )
        })
    }

    /// The other module's (or the hub's) error as this module's: the same status, code and
    /// message. `None` for a 2xx or 3xx answer.
    pub fn error(&self) -> Option<Error> {
        if self.status < 400 {
            return None;
        }
        let body: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let text = |key: &str| body["error"][key].as_str().unwrap_or_default().to_owned();
        Some(Error::new(self.status, text("code"), text("message")))
    }
}

/// An HTTP request routed to one of the module's handlers. It reads the hub's request through
/// the ABI: nothing is copied on the way in.
pub struct Request {
    inner: RequestBox,
    ctx: Ctx,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query_string())
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(inner: RequestBox, ctx: Ctx) -> Request {
        Request { inner, ctx }
    }

    /// The HTTP method, upper case.
    pub fn method(&self) -> &str {
        self.inner.method().as_str()
    }

    /// The path relative to the module's mount point, e.g. `/items/42`.
    pub fn path(&self) -> &str {
        self.inner.path().as_str()
    }

    /// The path parameter `name` (`{name}` in the route), percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.inner
            .param(name.into())
            .into_option()
            .map(|v| v.as_str())
    }

    /// The path parameter `name` parsed as `T`; a 400 `bad_parameter` naming it otherwise.
    pub fn param_as<T>(&self, name: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self
            .param(name)
            .ok_or_else(|| Error::internal(format!("route has no parameter '{name}'")))?;
        raw.parse().map_err(|e| {
            Error::new(
                400,
                "bad_parameter",
                format!("path parameter '{name}' = '{raw}' is invalid: {e}"),
            )
        })
    }

    /// The raw query string, without `?`.
    pub fn query_string(&self) -> &str {
        self.inner.query().as_str()
    }

    /// The query string deserialized into `T`; a 400 `bad_query` otherwise.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_str(self.query_string())
            .map_err(|e| Error::new(400, "bad_query", format!("invalid query string: {e}")))
    }

    /// The first header called `name` (case-insensitive); `None` also when its value is not
    /// UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .header(name.into())
            .into_option()
            .map(|v| v.as_str())
    }

    /// Every header whose value is UTF-8, as (lowercase name, value), in no particular order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .headers()
            .into_iter()
            .map(|Tuple2(k, v)| (k.as_str(), v.as_str()))
    }

    /// Call route `method path` of module `module` (one of this module's `dependencies`)
    /// in-process, as this request's caller: no HTTP, the same permission checks, the same
    /// request id. `path` is relative to the other module's mount point and may carry a query
    /// (`/customers/42`, `/customers?q=ada`). The answer is the other module's (or the hub's
    /// refusal: 403 `call_not_allowed` for a module not in `dependencies`, 404, 401, 403…).
    pub async fn call(&self, module: &str, method: &str, path: &str) -> Called {
        self.call_with_body(module, method, path, Vec::new()).await
    }

    /// [`Request::call`] with `body` as JSON.
    pub async fn call_json<T: Serialize + ?Sized>(
        &self,
        module: &str,
        method: &str,
        path: &str,
        body: &T,
    ) -> Result<Called, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("cannot write the call's body as JSON: {e}")))?;
        Ok(self.call_with_body(module, method, path, body).await)
    }

    async fn call_with_body(
        &self,
        module: &str,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Called {
        let response = self
            .inner
            .call(module.into(), method.into(), path.into(), RVec::from(body))
            .await;
        Called {
            status: response.status,
            body: response.body.into_vec(),
        }
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        self.inner.body().as_slice()
    }

    /// The body deserialized from JSON into `T`; a 400 `invalid_json` saying why otherwise.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.body()).map_err(|e| {
            Error::new(
                400,
                "invalid_json",
                format!("request body is not the expected JSON: {e}"),
            )
        })
    }

    /// The body of a submitted HTML form (`application/x-www-form-urlencoded`) deserialized
    /// into `T`; a 400 `bad_form` saying why otherwise.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_bytes(self.body())
            .map_err(|e| Error::new(400, "bad_form", format!("the form is invalid: {e}")))
    }

    /// The module's context: name, safety switches, settings.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Who is calling: a signed-in person, a service user's token, the bootstrap administrator,
    /// or (on a public route only) an anonymous caller. Filter data per caller with
    /// [`User::id`], check a permission with [`User::can`].
    pub fn user(&self) -> User {
        User(self.inner.user().into_option())
    }

    /// Write an entry in the hub's audit log: what the module did (`action`, e.g.
    /// `invoice.approve`), on what (`target`, e.g. the invoice's number) and anything else worth
    /// keeping (`details`). The hub tags it with the module and the caller, and writes it apart
    /// from the module's own database calls: a rolled-back (`DRY_RUN`) transaction keeps it.
    pub fn audit(&self, action: &str, target: &str, details: Value) {
        let details = details.to_string();
        self.inner
            .audit(action.into(), target.into(), details.as_str().into());
    }
}

/// The caller of a request (see [`Request::user`]).
#[derive(Debug, Clone)]
pub struct User(Option<FfiUser>);

impl User {
    /// `true` for an anonymous caller of a public route.
    pub fn is_anonymous(&self) -> bool {
        self.0.is_none()
    }

    /// A stable id: the user's number as text, `admin` for the bootstrap administrator; `None`
    /// when anonymous.
    pub fn id(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.id.as_str())
    }

    /// The name to show; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.name.as_str())
    }

    pub fn email(&self) -> Option<&str> {
        self.0
            .as_ref()
            .and_then(|u| u.email.as_ref().into_option())
            .map(|e| e.as_str())
    }

    /// `person`, `service` (a service user's token) or `admin` (the bootstrap administrator);
    /// `None` when anonymous.
    pub fn kind(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.kind.as_str())
    }

    /// The caller's roles.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|u| u.roles.iter().map(|r| r.as_str()))
    }

    /// The caller's permissions of this module (as `module.json` declares them).
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|u| u.permissions.iter().map(|p| p.as_str()))
    }

    /// Whether the caller has this module's `permission` (`"items.write"`).
    pub fn can(&self, permission: &str) -> bool {
        self.permissions().any(|p| p == permission)
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    /// `Content-Type`, apart from the other headers: nearly every response has one, and this
    /// way it needs no allocation.
    content_type: Option<Cow<'static, str>>,
    // Kept in the boundary's own type, so that handing the response over moves it.
    headers: RVec<Tuple2<RCowStr<'static>, RCowStr<'static>>>,
    body: Vec<u8>,
    /// A template for the hub to render, with its context (see [`View`]).
    template: Option<(String, Value)>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: RVec::new(),
            body: Vec::new(),
            template: None,
        }
    }

    /// `value` as a JSON body with `status`.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Error::internal(format!("response is not serializable: {e}")).into_response(),
        }
    }

    /// `text` as a `text/plain` body with `status`.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    /// `204 No Content`.
    pub fn no_content() -> Response {
        Response::new(204)
    }

    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        let name = name.into();
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value.into());
        } else {
            self.headers.push(Tuple2(rcow(name), rcow(value.into())));
        }
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers as (name, value), `content-type` first.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.content_type
            .as_deref()
            .map(|v| ("content-type", v))
            .into_iter()
            .chain(
                self.headers
                    .iter()
                    .map(|Tuple2(k, v)| (k.as_ref(), v.as_ref())),
            )
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn into_ffi(self) -> FfiResponse {
        FfiResponse {
            status: self.status,
            content_type: match self.content_type {
                Some(value) => ROption::RSome(rcow(value)),
                None => ROption::RNone,
            },
            headers: self.headers,
            body: self.body.into(),
            special: match self.template {
                Some((name, context)) => {
                    ROption::RSome(RBox::new(FfiSpecial::Template(FfiTemplate {
                        name: name.into(),
                        context: context.to_string().into(),
                    })))
                }
                None => ROption::RNone,
            },
        }
    }
}

/// What an HTML view answers: a page (one of the module's templates, rendered by the hub inside
/// its layout with a JSON context), a redirect, or any other [`Response`].
///
/// The hub adds `hub` to every page's context: `hub.module` (`name`, `version`, `read_only`,
/// `dry_run`) and `hub.modules` (the running modules, for navigation). Templates are minijinja
/// (Jinja2) with autoescaping on; a module's templates extend `base.html`, the hub's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct View(Response);

impl View {
    /// Render the module's template `template` with `context`, status 200.
    pub fn page(template: impl Into<String>, context: Value) -> View {
        let mut response = Response::new(200);
        response.template = Some((template.into(), context));
        View(response)
    }

    /// Redirect the browser (303 See Other) to `to`: an absolute path (`/modules/x/items/1`),
    /// or one relative to the module's views (`items/1`).
    pub fn redirect(to: impl Into<String>) -> View {
        View(Response::new(303).with_header("location", to.into()))
    }

    /// The same view with another status, e.g. 422 for a form shown again with its errors.
    pub fn with_status(mut self, status: u16) -> View {
        self.0.status = status;
        self
    }
}

impl IntoResponse for View {
    fn into_response(self) -> Response {
        self.0
    }

    fn document(doc: &mut RouteDoc) {
        doc.response = Some(ResponseDoc {
            status: 200,
            media_type: Some("text/html".to_owned()),
            schema: None,
        });
    }
}

/// A JSON body: as a handler's answer, status 200 (`(201, Json(item))` for another status); as
/// a handler's argument, the request's body (see [`FromRequest`](crate::FromRequest)). `T`'s
/// schema (`#[derive(JsonSchema)]`) documents the route.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;

    /// What this answer adds to the route's documentation: its status, media type and schema.
    fn document(doc: &mut RouteDoc) {
        let _ = doc;
    }
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: Serialize + JsonSchema> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(200, &self.0)
    }

    fn document(doc: &mut RouteDoc) {
        doc.response = Some(ResponseDoc {
            status: 200,
            media_type: Some("application/json".to_owned()),
            schema: Some(crate::schema::schema_of::<T>()),
        });
    }
}

/// The status is known only when the handler answers: declare it with
/// [`Router::status`](crate::Router::status) (`status = 201` in [`routes`](crate::routes)).
impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        response.status = self.0;
        response
    }

    fn document(doc: &mut RouteDoc) {
        T::document(doc);
    }
}

/// An answer with headers of its own, as axum writes it:
/// `(201, [("x-dry-run", "true")], Json(item))`.
impl<T: IntoResponse, const N: usize> IntoResponse for (u16, [(&'static str, &'static str); N], T) {
    fn into_response(self) -> Response {
        let (status, headers, body) = self;
        let mut response = body.into_response();
        response.status = status;
        for (name, value) in headers {
            response = response.with_header(name, value);
        }
        response
    }

    fn document(doc: &mut RouteDoc) {
        T::document(doc);
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }

    fn document(doc: &mut RouteDoc) {
        T::document(doc);
        E::document(doc);
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::no_content()
    }

    fn document(doc: &mut RouteDoc) {
        doc.response = Some(ResponseDoc {
            status: 204,
            media_type: None,
            schema: None,
        });
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.into_parts();
        let mut error = serde_json::Map::new();
        error.insert("code".into(), Value::String(code.into_owned()));
        error.insert("message".into(), Value::String(message));
        if let Some(details) = details {
            error.insert("details".into(), details);
        }
        let mut body = serde_json::Map::new();
        body.insert("error".into(), Value::Object(error));
        Response::json(status, &body)
    }
}

/// A `Cow` as the boundary's `RCow`: static text stays borrowed.
fn rcow(text: Cow<'static, str>) -> RCowStr<'static> {
    match text {
        Cow::Borrowed(s) => RCowStr::Borrowed(RStr::from_str(s)),
        Cow::Owned(s) => RCowStr::Owned(s.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_the_one_error_shape() {
        let response = Error::validation("2 fields are invalid")
            .with_details(serde_json::json!({"title": "required"}))
            .into_response();
        assert_eq!(response.status(), 422);
        assert_eq!(
            std::str::from_utf8(response.body()).ok(),
            Some(
                r#"{"error":{"code":"validation_failed","message":"2 fields are invalid","details":{"title":"required"}}}"#
            )
        );
    }

    #[test]
    fn a_status_tuple_overrides_the_status() {
        let response = (201, Json(serde_json::json!({"id": 1}))).into_response();
        assert_eq!(response.status(), 201);
        assert_eq!(response.body(), br#"{"id":1}"#);
    }
}
