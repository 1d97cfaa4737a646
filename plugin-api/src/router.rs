//! The author-facing route table: `r.get("/items/{id}", Self::get)`. The hub matches paths (with
//! matchit) from the table this builds; the module only runs the handler it is told to.

use std::future::Future;
use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use async_ffi::{FfiFuture, FutureExt as _};

use crate::ffi::{FfiAccess, FfiResponse};
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
pub struct Router<M> {
    routes: Vec<Route<M>>,
}

struct Route<M> {
    method: &'static str,
    path: String,
    view: bool,
    access: FfiAccess,
    handler: Handler<M>,
}

impl<M: Send + Sync + 'static> Router<M> {
    pub(crate) fn new() -> Router<M> {
        Router { routes: Vec::new() }
    }

    /// Add a JSON API route for `method`. Panics (failing the module's start with this
    /// message) when `path` does not start with `/`.
    pub fn route<H, Fut, R>(&mut self, method: &'static str, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.add(method, path, false, handler)
    }

    /// Add an HTML view for `method`, mounted under `/modules/<name>`. Its handler returns a
    /// [`View`](crate::View) (a template with a context, or a redirect) or any response.
    pub fn view<H, Fut, R>(&mut self, method: &'static str, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.add(method, path, true, handler)
    }

    /// A `GET` view: a page.
    pub fn page<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.view("GET", path, handler)
    }

    /// A `POST` view: a form's target. Read the fields with [`Request::form`].
    pub fn form<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.view("POST", path, handler)
    }

    fn add<H, Fut, R>(
        &mut self,
        method: &'static str,
        path: &str,
        view: bool,
        handler: H,
    ) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        assert!(
            path.starts_with('/'),
            "route path '{path}' must start with '/' (it is relative to the module's mount point)"
        );
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            view,
            access: FfiAccess::SignedIn,
            handler: erase_handler(handler),
        });
        self
    }

    /// The route added last answers anyone, signed in or not (`req.user()` is then anonymous
    /// unless the caller sent credentials).
    pub fn public(&mut self) -> &mut Self {
        self.set_access(FfiAccess::Public)
    }

    /// The route added last needs `permission`, one of the module's own permissions (declared
    /// in `module.json`'s `permissions`; the module fails to start when it is not). Callers
    /// without it get 403 `permission_denied` naming it.
    pub fn require(&mut self, permission: &str) -> &mut Self {
        self.set_access(FfiAccess::Require(permission.into()))
    }

    fn set_access(&mut self, access: FfiAccess) -> &mut Self {
        let route = self
            .routes
            .last_mut()
            .expect("public() and require() apply to the route added just before them");
        route.access = access;
        self
    }

    pub fn get<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route("GET", path, handler)
    }

    pub fn post<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route("POST", path, handler)
    }

    pub fn put<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route("PUT", path, handler)
    }

    pub fn patch<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route("PATCH", path, handler)
    }

    pub fn delete<H, Fut, R>(&mut self, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route("DELETE", path, handler)
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = (&str, &str, bool, &FfiAccess)> {
        self.routes
            .iter()
            .map(|r| (r.method, r.path.as_str(), r.view, &r.access))
    }

    pub(crate) fn handler(&self, index: usize) -> Option<&Handler<M>> {
        self.routes.get(index).map(|r| &r.handler)
    }
}

/// A route handler as the router keeps it: called with the module and the request, it returns the
/// future the hub polls, boxed once.
pub(crate) type Handler<M> = Box<dyn Fn(Arc<M>, Request) -> FfiFuture<FfiResponse> + Send + Sync>;

/// Erase an author's async handler into a [`Handler`]: its future's panics become a
/// [`panicked`] response, its output an [`FfiResponse`].
fn erase_handler<M, H, Fut, R>(handler: H) -> Handler<M>
where
    H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    Box::new(move |module, request| {
        Guarded {
            handler: handler(module, request),
        }
        .into_ffi()
    })
}

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
