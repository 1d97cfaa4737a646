//! A module's route table as the hub matches it: its API routes and its views, each a matchit
//! router of path → methods, built from the routes the module declares, with the rules the hub
//! keeps (`GET /health` and the views' `/static/…` are the hub's).

use std::collections::BTreeMap;

use plugin_api::ffi::{FfiAccess, RouteDef, RouteDoc};
use serde::Serialize;

use super::checks::Checks;

/// Where a request's method and path lead within a module.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        index: u32,
        params: Vec<(String, String)>,
    },
    /// The path exists, with these methods only.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// A route as the module object lists it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    /// Who may call it: `public`, `signed_in`, or the module's permission it requires
    /// (`<module>:<permission>`).
    pub access: String,
    /// What its handler declares about it (for the OpenAPI document).
    #[serde(skip)]
    #[schema(ignore)]
    pub doc: RouteDoc,
}

type Methods = Vec<(String, u32)>;

/// The API routes and views of one module.
pub struct RouteTable {
    api: matchit::Router<Methods>,
    views: matchit::Router<Methods>,
    /// Every route with its full path, the hub's health route first.
    listed: Vec<RouteInfo>,
    /// Who may call each route, by index.
    access: Vec<FfiAccess>,
    /// The checks of each route's typed inputs, by index (`None`: untyped).
    checks: Vec<Option<Checks>>,
    /// The series of each API route, by index, while metrics are on (`None` for views).
    metrics: Vec<Option<crate::metrics::RouteMetrics>>,
}

impl RouteTable {
    /// The table of module `name`'s declared `routes`; `Err` says which route is unusable.
    /// A route that requires a permission must require one of `declared` (the module's
    /// `permissions` in `module.json`).
    pub fn new(
        name: &str,
        routes: Vec<RouteDef>,
        declared: &BTreeMap<String, String>,
    ) -> Result<RouteTable, String> {
        // (API, views): path → [(method, index)]
        let mut by_path: [BTreeMap<String, Methods>; 2] = Default::default();
        let mut listed = vec![RouteInfo {
            method: "GET".to_owned(),
            path: format!("/api/v1/{name}/health"),
            access: "public".to_owned(),
            doc: RouteDoc::default(),
        }];
        let mut access = Vec::with_capacity(routes.len());
        let mut checks = Vec::with_capacity(routes.len());
        let mut metrics = Vec::with_capacity(routes.len());
        for (index, def) in routes.into_iter().enumerate() {
            let method = def.method.as_str().to_ascii_uppercase();
            let path = def.path.into_string();
            let surface = if def.view { "view" } else { "route" };
            if !def.view && method == "GET" && path == "/health" {
                return Err("route GET /health is the hub's own (it calls the module's health hook): remove it from routes()".to_owned());
            }
            if def.view && (path == "/static" || path.starts_with("/static/")) {
                return Err(format!(
                    "view {method} {path} is the hub's: /static/… serves the module's static files"
                ));
            }
            let methods = by_path[usize::from(def.view)]
                .entry(path.clone())
                .or_default();
            if methods.iter().any(|(m, _)| *m == method) {
                return Err(format!("{surface} {method} {path} is declared twice"));
            }
            let index = u32::try_from(index).map_err(|_| "too many routes".to_owned())?;
            let access_text = match &def.access {
                FfiAccess::Public => "public".to_owned(),
                FfiAccess::SignedIn => "signed_in".to_owned(),
                FfiAccess::Require(permission) if declared.contains_key(permission.as_str()) => {
                    format!("{name}:{permission}")
                }
                FfiAccess::Require(permission) => {
                    return Err(format!(
                        "{surface} {method} {path} requires permission '{permission}', which module.json does not declare: add it to \"permissions\" with a description"
                    ));
                }
            };
            let doc: RouteDoc = if def.doc.is_empty() {
                RouteDoc::default()
            } else {
                serde_json::from_str(def.doc.as_str()).map_err(|e| {
                    format!("{surface} {method} {path} declares unreadable documentation ({e}): rebuild the module against this hub's plugin-api")
                })?
            };
            checks.push(Checks::new(&doc).map_err(|e| format!("{surface} {method} {path}: {e}"))?);
            access.push(def.access.clone());
            metrics.push(
                crate::metrics::get()
                    .filter(|_| !def.view)
                    .map(|m| m.module_route(name, &path, &method)),
            );
            methods.push((method.clone(), index));
            let mount = if def.view {
                format!("/modules/{name}")
            } else {
                format!("/api/v1/{name}")
            };
            listed.push(RouteInfo {
                method,
                path: format!("{mount}{path}"),
                access: access_text,
                doc,
            });
        }
        let [api, views] = by_path.map(|paths| {
            let mut router = matchit::Router::new();
            for (path, methods) in paths {
                router
                    .insert(path.clone(), methods)
                    .map_err(|e| format!("route {path} is invalid: {e}"))?;
            }
            Ok::<_, String>(router)
        });
        Ok(RouteTable {
            api: api?,
            views: views?,
            listed,
            access,
            checks,
            metrics,
        })
    }

    /// The series of route `index`, while metrics are on.
    #[inline]
    pub fn metrics(&self, index: u32) -> Option<&crate::metrics::RouteMetrics> {
        self.metrics.get(index as usize)?.as_ref()
    }

    /// The checks of route `index`'s typed inputs; `None` for an untyped route.
    pub fn checks(&self, index: u32) -> Option<&Checks> {
        self.checks.get(index as usize)?.as_ref()
    }

    /// Who may call route `index`.
    pub fn access(&self, index: u32) -> &FfiAccess {
        self.access
            .get(index as usize)
            .unwrap_or(&FfiAccess::SignedIn)
    }

    /// Every route with its full path.
    pub fn listed(&self) -> &[RouteInfo] {
        &self.listed
    }

    /// Find the API handler for `method` and `path` (relative to `/api/v1/<name>`).
    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        find(&self.api, method, path)
    }

    /// Find the view for `method` and `path` (relative to `/modules/<name>`).
    pub fn view(&self, method: &str, path: &str) -> RouteMatch {
        find(&self.views, method, path)
    }
}

fn find(router: &matchit::Router<Methods>, method: &str, path: &str) -> RouteMatch {
    let Ok(found) = router.at(path) else {
        return RouteMatch::NotFound;
    };
    match found.value.iter().find(|(m, _)| m == method) {
        Some((_, index)) => RouteMatch::Found {
            index: *index,
            params: found
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        },
        None => RouteMatch::MethodNotAllowed(found.value.iter().map(|(m, _)| m.clone()).collect()),
    }
}
