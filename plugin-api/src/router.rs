//! The author-facing route table: `r.get("/items/{id}", Self::get)`. The hub matches paths (with
//! matchit) from the table this builds; the module only runs the handler it is told to.

use std::future::Future;
use std::sync::Arc;

use crate::http::{IntoResponse, Request};

use crate::ffi::{Handler, erase_handler};

/// The routes of a module, each an HTTP method, a path pattern and an async handler.
///
/// Paths are relative to the module's mount point (`/api/v1/<name>`) and use matchit's syntax:
/// `/items/{id}` binds one segment, `/files/{*rest}` the rest of the path. `GET /health` is the
/// hub's own (it calls [`Module::health`](crate::Module::health)).
pub struct Router<M> {
    routes: Vec<Route<M>>,
}

struct Route<M> {
    method: &'static str,
    path: String,
    handler: Handler<M>,
}

impl<M: Send + Sync + 'static> Router<M> {
    pub(crate) fn new() -> Router<M> {
        Router { routes: Vec::new() }
    }

    /// Add a route for `method`. Panics (failing the module's start with this message) when
    /// `path` does not start with `/`.
    pub fn route<H, Fut, R>(&mut self, method: &'static str, path: &str, handler: H) -> &mut Self
    where
        H: Fn(Arc<M>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        assert!(
            path.starts_with('/'),
            "route path '{path}' must start with '/' (it is relative to /api/v1/<module>)"
        );
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            handler: erase_handler(handler),
        });
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

    pub(crate) fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|r| (r.method, r.path.as_str()))
    }

    pub(crate) fn handler(&self, index: usize) -> Option<&Handler<M>> {
        self.routes.get(index).map(|r| &r.handler)
    }
}
