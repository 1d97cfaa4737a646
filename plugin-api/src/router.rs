//! The author-facing route table: `r.get("/items/{id}", Self::get)`. The hub matches paths (with
//! matchit) from the table this builds; the module only runs the handler it is told to.

use std::future::Future;
use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use async_ffi::{FfiFuture, FutureExt as _};

use serde_json::{Value, json};

use crate::error::Error;
use crate::extract::{FromRequest, FromRequestLast, Parts, RouteMeta};
use crate::ffi::{FfiAccess, FfiResponse, ResponseDoc, RouteDoc};
use crate::http::{IntoResponse, Request};
use crate::panic::{panic_message, panicked};

/// The routes of a module, each an HTTP method, a path pattern and an async handler: JSON API
/// routes (`get`, `post`, …, mounted under `/api/v1/<name>`) and HTML views (`page`, `form`,
/// mounted under `/modules/<name>`).
///
/// Paths are relative to the mount point and use matchit's syntax: `/items/{id}` binds one
/// segment, `/files/{*rest}` the rest of the path. `GET /health` of the API is the hub's own (it
/// calls [`Module::health`](crate::Module::health)); `/static/…` of the views serves the module's
/// [static files](crate::Module::static_files).
///
/// Who may call a route, said right after it: `.public()` (anyone), nothing (any signed-in
/// caller: the default), or `.require("items.write")` (a signed-in caller with that permission,
/// which the module declares in its `module.json`):
///
/// ```text
/// r.get("/ping", Self::ping).public();
/// r.get("/items", Self::list);
/// r.post("/items", Self::create).require("items.write");
/// ```
///
/// Handlers take typed arguments ([`Path`](crate::Path), [`Query`](crate::Query),
/// [`Json`](crate::Json), [`Form`](crate::Form), [`User`](crate::User), the [`Request`] last);
/// their types document the route, and the hub checks the request against them before the
/// handler runs. [`routes`](crate::routes) declares routes on the handlers themselves, with their
/// doc comments as documentation.
pub struct Router<M> {
    routes: Vec<Route<M>>,
    jobs: Vec<JobEntry<M>>,
}

/// A job's terms as the hub reads them.
pub(crate) struct JobTerms<'a> {
    pub name: &'a str,
    pub every: Option<std::time::Duration>,
    pub cron: Option<&'a str>,
    pub timeout: std::time::Duration,
    pub attempts: u32,
    pub backoff: std::time::Duration,
}

/// A job of the module's: how often (recurring) or none (enqueued), its limits, its handler.
struct JobEntry<M> {
    name: String,
    every: Option<std::time::Duration>,
    /// A cron expression (the hub reads it).
    cron: Option<String>,
    timeout: std::time::Duration,
    attempts: u32,
    backoff: std::time::Duration,
    handler: ErasedJob<M>,
}

type JobFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;
type ErasedJob<M> = Box<dyn Fn(Arc<M>, crate::jobs::Job) -> JobFuture + Send + Sync>;

struct Route<M> {
    method: &'static str,
    path: String,
    view: bool,
    access: FfiAccess,
    meta: RouteMeta,
    doc: RouteDoc,
    handler: Erased<M>,
}

impl<M: Send + Sync + 'static> Router<M> {
    pub(crate) fn new() -> Router<M> {
        Router {
            routes: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// A recurring job: `handler` runs once per `period` (`"30s"`, `"5m"`, `"1h"`, `"1d"`) across
    /// every hub on the database, as `async fn(self: Arc<Self>, job: Job) -> Result<(), Error>`.
    /// Defaults: a timeout of 60 s, 3 attempts, 10 s before the second (see [`Router::timeout`],
    /// [`Router::attempts`], [`Router::backoff`]). Panics (failing the start with this message)
    /// on a period it cannot read or a name used twice.
    pub fn every<F, Fut>(&mut self, name: &str, period: &str, handler: F) -> &mut Self
    where
        F: Fn(Arc<M>, crate::jobs::Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let every = crate::queue::parse_period(period).unwrap_or_else(|| {
            panic!("job '{name}': period {period:?} is not a duration: write e.g. \"30s\", \"5m\", \"1h\"")
        });
        self.add_job(name, Some(every), handler)
    }

    /// A recurring job on a cron schedule (`"0 3 * * *"`: every day at 03:00 UTC; five fields,
    /// minute hour day-of-month month day-of-week, or six with seconds first), once per
    /// occurrence across every hub on the database. The hub reads the expression when the module
    /// starts and refuses a start whose expression it cannot read, naming the job. Same defaults
    /// as [`Router::every`].
    pub fn cron<F, Fut>(&mut self, name: &str, expression: &str, handler: F) -> &mut Self
    where
        F: Fn(Arc<M>, crate::jobs::Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.add_job(name, None, handler);
        self.last_job().cron = Some(expression.trim().to_owned());
        self
    }

    /// A job the module enqueues (`ctx.jobs().enqueue(name, &payload)`), with the same defaults
    /// as [`Router::every`].
    pub fn job<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Arc<M>, crate::jobs::Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.add_job(name, None, handler)
    }

    fn add_job<F, Fut>(
        &mut self,
        name: &str,
        every: Option<std::time::Duration>,
        handler: F,
    ) -> &mut Self
    where
        F: Fn(Arc<M>, crate::jobs::Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        assert!(
            !name.is_empty()
                && name.len() <= 40
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "job name {name:?} must be 1 to 40 lowercase letters, digits and _"
        );
        assert!(
            self.jobs.iter().all(|j| j.name != name),
            "job '{name}' is declared twice"
        );
        self.jobs.push(JobEntry {
            name: name.to_owned(),
            every,
            cron: None,
            timeout: std::time::Duration::from_secs(60),
            attempts: 3,
            backoff: std::time::Duration::from_secs(10),
            handler: Box::new(move |module, job| Box::pin(handler(module, job))),
        });
        self
    }

    fn last_job(&mut self) -> &mut JobEntry<M> {
        self.jobs
            .last_mut()
            .expect("timeout(), attempts() and backoff() apply to the job added just before them")
    }

    /// The job added last is cancelled after `timeout` (and the attempt counts as failed).
    pub fn timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        self.last_job().timeout = timeout.max(std::time::Duration::from_millis(1));
        self
    }

    /// The job added last is tried at most `attempts` times (at least once).
    pub fn attempts(&mut self, attempts: u32) -> &mut Self {
        self.last_job().attempts = attempts.max(1);
        self
    }

    /// The job added last waits `backoff` before its second attempt, twice as long before each
    /// next one.
    pub fn backoff(&mut self, backoff: std::time::Duration) -> &mut Self {
        self.last_job().backoff = backoff;
        self
    }

    /// Each job: name, period, cron expression (neither: enqueued), timeout, attempts, backoff.
    pub(crate) fn jobs(&self) -> impl Iterator<Item = JobTerms<'_>> {
        self.jobs.iter().map(|j| JobTerms {
            name: &j.name,
            every: j.every,
            cron: j.cron.as_deref(),
            timeout: j.timeout,
            attempts: j.attempts,
            backoff: j.backoff,
        })
    }

    /// Run job `index` of the table on `module`; `None` when there is no such job.
    pub(crate) fn run_job(
        &self,
        index: usize,
        module: Arc<M>,
        job: crate::jobs::Job,
    ) -> Option<JobFuture> {
        let entry = self.jobs.get(index)?;
        Some((entry.handler)(module, job))
    }

    /// Add a JSON API route for `method`. Panics (failing the module's start with this
    /// message) when `path` does not start with `/`, or when the handler's [`Path`] does not
    /// fit the path's parameters.
    pub fn route<H, Args>(&mut self, method: &'static str, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.add(method, path, false, handler)
    }

    /// Add an HTML view for `method`, mounted under `/modules/<name>`. Its handler returns a
    /// [`View`](crate::View) (a template with a context, or a redirect) or any response.
    pub fn view<H, Args>(&mut self, method: &'static str, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.add(method, path, true, handler)
    }

    /// A `GET` view: a page.
    pub fn page<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.view("GET", path, handler)
    }

    /// A `POST` view: a form's target. Take the fields as a [`Form`](crate::Form) argument.
    pub fn form<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.view("POST", path, handler)
    }

    fn add<H, Args>(
        &mut self,
        method: &'static str,
        path: &str,
        view: bool,
        handler: H,
    ) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        assert!(
            path.starts_with('/'),
            "route path '{path}' must start with '/' (it is relative to the module's mount point)"
        );
        let meta = RouteMeta::of(path);
        let mut doc = RouteDoc::default();
        H::document(&mut doc);
        if let Some(schema) = doc.path.take() {
            match path_object(schema, &meta.params) {
                Ok(object) => doc.path = Some(object),
                Err(why) => panic!("route {method} {path}: {why}"),
            }
        }
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            view,
            access: FfiAccess::SignedIn,
            meta,
            doc,
            handler: Box::new(move |module, request, route| handler.call(module, request, route)),
        });
        self
    }

    /// The route added last answers anyone, signed in or not (`req.user()` is then anonymous
    /// unless the caller sent credentials).
    pub fn public(&mut self) -> &mut Self {
        self.last().access = FfiAccess::Public;
        self
    }

    /// The route added last needs `permission`, one of the module's own permissions (declared
    /// in `module.json`'s `permissions`; the module fails to start when it is not). Callers
    /// without it get 403 `permission_denied` naming it.
    pub fn require(&mut self, permission: &str) -> &mut Self {
        self.last().access = FfiAccess::Require(permission.into());
        self
    }

    /// The route added last documented: a summary (one line) and a description (Markdown).
    /// [`routes`](crate::routes) takes both from the handler's doc comment.
    pub fn doc(&mut self, summary: &str, description: &str) -> &mut Self {
        let doc = &mut self.last().doc;
        doc.summary = (!summary.is_empty()).then(|| summary.to_owned());
        doc.description = (!description.is_empty()).then(|| description.to_owned());
        self
    }

    /// The name of the route added last's handler (in its operation id).
    pub fn named(&mut self, handler: &str) -> &mut Self {
        self.last().doc.handler = Some(handler.to_owned());
        self
    }

    /// The status the route added last answers when it succeeds, when it is not what its type
    /// says (e.g. 201 for a handler returning `(201, Json(item))`).
    pub fn status(&mut self, status: u16) -> &mut Self {
        let doc = &mut self.last().doc;
        match &mut doc.response {
            Some(response) => response.status = status,
            None => {
                doc.response = Some(ResponseDoc {
                    status,
                    media_type: None,
                    schema: None,
                })
            }
        }
        self
    }

    /// The error statuses the handler of the route added last answers itself (e.g. 404 for an
    /// unknown id, 409 for a conflict), for its documentation; the hub's own (401, 403, 400 and
    /// 422 for the checked inputs, 500, 503, 504) are added by the hub.
    pub fn errors(&mut self, statuses: &[u16]) -> &mut Self {
        let errors = &mut self.last().doc.errors;
        for status in statuses {
            if !errors.contains(status) {
                errors.push(*status);
            }
        }
        self
    }

    fn last(&mut self) -> &mut Route<M> {
        self.routes
            .last_mut()
            .expect("public(), require(), doc(), status() and errors() apply to the route added just before them")
    }

    pub fn get<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.route("GET", path, handler)
    }

    pub fn post<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.route("POST", path, handler)
    }

    pub fn put<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.route("PUT", path, handler)
    }

    pub fn patch<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.route("PATCH", path, handler)
    }

    pub fn delete<H, Args>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Handler<M, Args>,
    {
        self.route("DELETE", path, handler)
    }

    /// Each route: method, path, view or not, access, documentation.
    pub(crate) fn routes(&self) -> impl Iterator<Item = (&str, &str, bool, &FfiAccess, &RouteDoc)> {
        self.routes
            .iter()
            .map(|r| (r.method, r.path.as_str(), r.view, &r.access, &r.doc))
    }

    /// Run route `index`'s handler on `request`.
    pub(crate) fn call(
        &self,
        index: usize,
        module: Arc<M>,
        request: Request,
    ) -> Option<FfiFuture<FfiResponse>> {
        let route = self.routes.get(index)?;
        Some((route.handler)(module, request, &route.meta))
    }
}

/// The schema of a handler's `Path<T>` as an object with one property per parameter of the
/// path: `T` itself when it is a struct (its fields must be the parameters), each item of a
/// tuple in order, or the one parameter's.
fn path_object(schema: Value, params: &[String]) -> Result<Value, String> {
    let properties: serde_json::Map<String, Value> = match schema
        .get("type")
        .and_then(Value::as_str)
    {
        Some("object") => {
            let fields: Vec<&String> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().collect())
                .unwrap_or_default();
            let mut expected: Vec<&String> = params.iter().collect();
            let mut found = fields.clone();
            expected.sort();
            found.sort();
            if expected != found {
                return Err(format!(
                    "its Path<T> has the fields {found:?}, and the path the parameters {expected:?}: make them the same"
                ));
            }
            let mut object = schema;
            if let Some(map) = object.as_object_mut() {
                map.insert("required".to_owned(), json!(params));
            }
            return Ok(object);
        }
        Some("array") => {
            let items = schema
                .get("prefixItems")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.len() != params.len() {
                return Err(format!(
                    "its Path<T> is a tuple of {}, and the path has {} parameters",
                    items.len(),
                    params.len()
                ));
            }
            params.iter().cloned().zip(items).collect()
        }
        _ => match params {
            [one] => [(one.clone(), schema)].into_iter().collect(),
            _ => {
                return Err(format!(
                    "its Path<T> is one value, and the path has {} parameters: take a tuple or a struct",
                    params.len()
                ));
            }
        },
    };
    Ok(json!({"type": "object", "properties": properties, "required": params}))
}

/// A route handler as the router keeps it: called with the module, the request and the route, it
/// returns the future the hub polls, boxed once.
type Erased<M> = Box<dyn Fn(Arc<M>, Request, &RouteMeta) -> FfiFuture<FfiResponse> + Send + Sync>;

/// An async function that handles a route: `async fn(self: Arc<Self>, …) -> R` where each
/// argument after the module is an extractor ([`Path`], [`Query`](crate::Query),
/// [`Json`](crate::Json), [`Form`](crate::Form), [`User`](crate::User) or your own
/// [`FromRequest`]), the last one may be the [`Request`] itself, and `R` is an
/// [`IntoResponse`]. Extractors run in order before the handler; the first that refuses answers
/// for it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a route handler",
    label = "not an `async fn(self: Arc<Self>, …extractors, [Request]) -> impl IntoResponse`",
    note = "each argument after the module must be an extractor (Path, Query, Json, Form, User); the Request, if taken, comes last; the answer must be an IntoResponse (a Json<T> needs T: Serialize + JsonSchema)"
)]
pub trait Handler<M, Args>: Send + Sync + 'static {
    fn call(&self, module: Arc<M>, request: Request, route: &RouteMeta) -> FfiFuture<FfiResponse>;

    /// What the handler's arguments and answer add to the route's documentation.
    fn document(doc: &mut RouteDoc);
}

/// An extractor's refusal, as the handler's answer.
#[cold]
fn refused(error: Error) -> FfiFuture<FfiResponse> {
    std::future::ready(error.into_response().into_ffi()).into_ffi()
}

impl<M, F, Fut, R> Handler<M, ()> for F
where
    M: Send + Sync + 'static,
    F: Fn(Arc<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, module: Arc<M>, _: Request, _: &RouteMeta) -> FfiFuture<FfiResponse> {
        Guarded {
            handler: self(module),
        }
        .into_ffi()
    }

    fn document(doc: &mut RouteDoc) {
        R::document(doc);
    }
}

macro_rules! handler {
    ($($arg:ident),*) => {
        impl<M, F, Fut, R, Via, $($arg,)* Last> Handler<M, (Via, $($arg,)* Last)> for F
        where
            M: Send + Sync + 'static,
            F: Fn(Arc<M>, $($arg,)* Last) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoResponse,
            $($arg: FromRequest,)*
            Last: FromRequestLast<Via>,
        {
            #[allow(non_snake_case)]
            #[inline]
            fn call(&self, module: Arc<M>, request: Request, route: &RouteMeta) -> FfiFuture<FfiResponse> {
                $(let $arg = match $arg::from_request(&Parts::new(&request, route)) {
                    Ok(value) => value,
                    Err(error) => return refused(error),
                };)*
                let last = match Last::from_request_last(request, route) {
                    Ok(value) => value,
                    Err(error) => return refused(error),
                };
                Guarded {
                    handler: self(module, $($arg,)* last),
                }
                .into_ffi()
            }

            fn document(doc: &mut RouteDoc) {
                $($arg::document(doc);)*
                Last::document(doc);
                R::document(doc);
            }
        }
    };
}

handler!();
handler!(A);
handler!(A, B);
handler!(A, B, C);
handler!(A, B, C, D);
handler!(A, B, C, D, E);

pin_project_lite::pin_project! {
    /// A handler's future, each poll guarded: a panic becomes the [`panicked`] response, the
    /// output an [`FfiResponse`]. One struct, not async blocks around the author's future, so it
    /// is moved once on its way into the hub's hands.
    struct Guarded<F> {
        #[pin]
        handler: F,
    }
}

impl<F: Future<Output = R>, R: IntoResponse> Future for Guarded<F> {
    type Output = FfiResponse;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FfiResponse> {
        let handler = self.project().handler;
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler
                .poll(cx)
                .map(|output| output.into_response().into_ffi())
        }));
        polled.unwrap_or_else(|panic| Poll::Ready(panicked(panic_message(&*panic))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_schemas_become_one_property_per_parameter() {
        let one = path_object(json!({"type": "integer", "minimum": 0}), &["id".to_owned()]);
        assert_eq!(
            one,
            Ok(
                json!({"type": "object", "properties": {"id": {"type": "integer", "minimum": 0}}, "required": ["id"]})
            )
        );
        let tuple = path_object(
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
            &["name".to_owned(), "n".to_owned()],
        );
        assert_eq!(
            tuple,
            Ok(
                json!({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name", "n"]})
            )
        );
        let wrong = path_object(
            json!({"type": "object", "properties": {"x": {"type": "string"}}}),
            &["id".to_owned()],
        );
        assert_eq!(
            wrong,
            Err(r#"its Path<T> has the fields ["x"], and the path the parameters ["id"]: make them the same"#.to_owned())
        );
        assert_eq!(
            path_object(json!({"type": "integer"}), &[]),
            Err(
                "its Path<T> is one value, and the path has 0 parameters: take a tuple or a struct"
                    .to_owned()
            )
        );
    }
}
